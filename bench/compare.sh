#!/usr/bin/env bash
# Builds igvm-load and make-image, generates the benchmark images and times
# `igvm-load measure` against `openssl dgst -sha384` pair by pair in one run
# (bench/compare.py). Prints a Markdown report; exits 1 if a goal of issue 6
# does not hold. See BENCHMARKS.md.
#
#   bench/compare.sh [SIZE_MIB ...]        default: 16 64 256 1024
#
# Environment: ROUNDS (default 11), BENCH_DIR (images; default
# ${TMPDIR:-/tmp}/igvm-snp-bench), CARGO_TARGET_DIR as for cargo.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(16 64 256 1024)
dir="${BENCH_DIR:-${TMPDIR:-/tmp}/igvm-snp-bench}"
mkdir -p "$dir"

command -v openssl >/dev/null || { echo "error: openssl not found" >&2; exit 2; }
command -v python3 >/dev/null || { echo "error: python3 not found" >&2; exit 2; }

cargo build --release --quiet --example igvm-load --example make-image
target="${CARGO_TARGET_DIR:-$root/target}"
bin="$target/release/examples"

images=()
for s in "${sizes[@]}"; do
    f="$dir/image-${s}MiB.igvm"
    if [ ! -s "$f" ]; then
        echo "generating $f" >&2
        "$bin/make-image" "$s" "$f.tmp"
        mv "$f.tmp" "$f"
    fi
    images+=("$s=$f")
done

exec python3 bench/compare.py --loader "$bin/igvm-load" --rounds "${ROUNDS:-11}" --scaling "${images[@]}"

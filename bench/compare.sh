#!/usr/bin/env bash
# Builds igvm-load and make-image, generates the benchmark images and times
# `igvm-load measure` against `openssl dgst -sha384` pair by pair in one run
# (bench/compare.py), then on the two hostile files of bench/hostile.rs
# against the 64 MiB image (`measure`, and `launch --backend model` for its
# peak memory). Prints a Markdown report; exits 1 if a goal of
# issue 6 or 13 does not hold. See BENCHMARKS.md.
#
#   bench/compare.sh [SIZE_MIB ...]        default: 16 64 256 1024
#
# Environment: ROUNDS (default 11), BENCH_DIR (images; default
# ${TMPDIR:-/tmp}/igvm-snp-bench), HOSTILE=0 to leave out the hostile files
# (they need the 64 MiB image, which is then generated whatever the sizes),
# CARGO_TARGET_DIR as for cargo.
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

# make-image WHAT FILE, unless FILE is there.
make() {
    if [ ! -s "$2" ]; then
        echo "generating $2" >&2
        "$bin/make-image" "$1" "$2.tmp"
        mv "$2.tmp" "$2"
    fi
}

hostile=()
if [ "${HOSTILE:-1}" != 0 ]; then
    [[ " ${sizes[*]} " == *" 64 "* ]] || sizes+=(64)
    for h in dataless shared; do
        make "hostile-$h" "$dir/hostile-$h.igvm"
        hostile+=(--hostile "$h=$dir/hostile-$h.igvm")
    done
fi

images=()
for s in "${sizes[@]}"; do
    make "$s" "$dir/image-${s}MiB.igvm"
    images+=("$s=$dir/image-${s}MiB.igvm")
done

exec python3 bench/compare.py --loader "$bin/igvm-load" --rounds "${ROUNDS:-11}" --scaling \
    "${hostile[@]}" "${images[@]}"

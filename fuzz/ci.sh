#!/usr/bin/env bash
# CI for the fuzz targets, on a clean checkout:
#   1. installs cargo-fuzz if missing;
#   2. builds every target (libFuzzer + AddressSanitizer, as `cargo fuzz run`);
#   3. replays each target's committed regressions (fuzz/regressions/<target>)
#      and a freshly generated seed corpus once (-runs=0), then a short
#      deterministic fuzzing run (-seed=1) from them.
# Called from .ci/run. Stable toolchain: RUSTC_BOOTSTRAP=1 enables the
# sanitizer flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
# cargo-fuzz keeps its build in fuzz/target; a caller's target dir for the
# main workspace must not redirect it (it is kept for the seed writer).
caller_target_dir=${CARGO_TARGET_DIR-}
unset CARGO_TARGET_DIR

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

targets=(raw checksummed structured differential report)
flags=(-rss_limit_mb=2048 -timeout=10 -max_len=32768)

echo "== fuzz: build"
cargo fuzz build

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== fuzz: generate seeds"
(
    cd ..
    if [ -n "$caller_target_dir" ]; then export CARGO_TARGET_DIR="$caller_target_dir"; fi
    cargo run -q -p igvm-snp --example write-fuzz-seeds -- "$work/seeds"
)

for t in "${targets[@]}"; do
    # libFuzzer may write to its first corpus directory: give it a copy.
    mkdir -p "$work/corpus/$t" "$work/seeds/$t"
    if [ -d "regressions/$t" ]; then
        cp regressions/"$t"/* "$work/corpus/$t/" 2>/dev/null || true
    fi
    echo "== fuzz: $t: replay $(ls "$work/corpus/$t" | wc -l) regressions and $(ls "$work/seeds/$t" | wc -l) seeds"
    cargo fuzz run "$t" "$work/corpus/$t" "$work/seeds/$t" -- "${flags[@]}" -runs=0
    echo "== fuzz: $t: 500 deterministic runs"
    cargo fuzz run "$t" "$work/corpus/$t" "$work/seeds/$t" -- "${flags[@]}" -seed=1 -runs=500
done
echo "== fuzz: all targets replayed"

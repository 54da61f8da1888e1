#!/usr/bin/env bash
# Writes the generated seed corpus to fuzz/corpus/<target>/ (see
# crates/igvm-snp/examples/write-fuzz-seeds.rs and fuzz/src/support/seeds.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run -q -p igvm-snp --example write-fuzz-seeds -- "$PWD/fuzz/corpus"
ls fuzz/corpus/*

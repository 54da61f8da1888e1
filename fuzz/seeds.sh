#!/usr/bin/env bash
# Writes the generated seed corpus to fuzz/corpus/<target>/ (see
# crates/igvm-snp/tests/fuzz_seeds.rs and fuzz/src/support/seeds.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
IGVM_SNP_WRITE_SEEDS="$PWD/fuzz/corpus" \
    cargo test -q -p igvm-snp --test fuzz_seeds -- --exact write_seed_corpus_when_asked
mkdir -p fuzz/corpus/structured
ls fuzz/corpus/*

//! Shared code of the igvm-snp fuzz targets.
//!
//! `support` is also compiled into the main workspace's replay tests
//! (`crates/igvm-snp/tests/fuzz_*.rs`, via `#[path]`), so every regression
//! input is replayed through the same checks outside libFuzzer.

pub mod model;
pub mod record;
pub mod structured;
pub mod support;

//! Fuzz logic shared by the fuzz targets (`fuzz/fuzz_targets/`) and the
//! replay tests of the main workspace (`crates/igvm-snp/tests/fuzz_*.rs`),
//! which include this directory with `#[path]` so that a crashing input is
//! replayed through exactly the checks the fuzzer ran.
//!
//! Nothing here uses libFuzzer or `arbitrary`; the structure-aware input
//! type is `fuzz/src/structured.rs`, which the replay test includes too.

pub mod checks;
pub mod differential;
pub mod raw;
pub mod seeds;
pub mod targets;

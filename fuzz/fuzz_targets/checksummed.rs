//! Fuzz target `checksummed`; its body is `support::targets::checksummed` (documented
//! there), shared with the replay test crates/igvm-snp/tests/fuzz_regressions.rs.
#![no_main]

use igvm_snp_fuzz::record;
use igvm_snp_fuzz::support::targets;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    targets::checksummed(data, &mut |key| record::outcome("checksummed", &key));
});

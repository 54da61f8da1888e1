//! Fuzz target `report`: SEV-SNP attestation reports and AMD certificates;
//! its body is `support::targets::report` (documented there), shared with
//! the replay test crates/igvm-snp/tests/fuzz_regressions.rs.
#![no_main]

use igvm_snp_fuzz::record;
use igvm_snp_fuzz::support::targets;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    targets::report(data, &mut |key| record::outcome("report", &key));
});

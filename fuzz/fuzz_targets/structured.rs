//! Fuzz target `structured`; its body is `structured::run` (documented
//! there), shared with the replay test crates/igvm-snp/tests/fuzz_regressions.rs,
//! then the launch of every plan on the firmware model (`model::check`).
#![no_main]

use igvm_snp_fuzz::record;
use igvm_snp_fuzz::structured::{Input, run};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: Input| {
    run(&input, &mut |key| record::outcome("structured", &key));
    igvm_snp_fuzz::model::check(&input);
});

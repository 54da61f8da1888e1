//! Native runs of hand-built SEV-SNP IGVM files whose VMSAs start the guest
//! in 32-bit protected mode and in 64-bit long mode. Each guest sums the
//! bytes of a data page loaded just below 4 GiB (a region outside RAM) and
//! prints the sum, so the output depends on the pages the plan loaded;
//! the 64-bit guest also only runs if its page tables (page data in the
//! file) arrived intact.

use igvm_snp_test_support as common;

use std::time::Duration;

use common::asm;
use common::guests::{CODE, DATA, long_mode_file, long_mode_vmsa, protected_mode_file};
use common::{byte_sum_hex, pattern_page};
use igvm_defs::IgvmPageDataFlags;
use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, PageType, PlanOptions};
use igvm_snp_kvm::kvm_check::kvm_or_skip;
use igvm_snp_kvm::native::{NativeConfig, NativeOutcome, NativeVm};

fn ram() -> Vec<GpaRange> {
    vec![GpaRange::new(0, 2 << 20)]
}

/// Runs `bytes` natively; returns the outcome and the serial output.
fn run(bytes: &[u8]) -> (NativeOutcome, String) {
    let plan =
        LaunchPlan::new(bytes, &LaunchConfig::new(1, ram()), PlanOptions::default()).unwrap();
    let mut out = Vec::new();
    let config = NativeConfig::new(ram(), Duration::from_secs(10));
    let outcome = NativeVm::run_plan(&plan, &config, |b| out.extend_from_slice(b)).unwrap();
    (outcome, String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn protected_mode_guest_prints_its_data_sum() {
    if kvm_or_skip("protected_mode_guest_prints_its_data_sum").is_none() {
        return;
    }
    // The data page as a NORMAL, a shared (host-visible, loaded but not
    // launched) and an UNMEASURED page: each must reach guest memory.
    let flags = IgvmPageDataFlags::new();
    for (data, flags, planned_as) in [
        (pattern_page(13, 5), flags, Some(PageType::Normal)),
        (pattern_page(1, 200), flags.with_shared(true), None),
        (
            pattern_page(7, 1),
            flags.with_unmeasured(true),
            Some(PageType::Unmeasured),
        ),
    ] {
        let bytes = protected_mode_file(&data, flags);
        // The plan really treats the data page that way (None: shared run).
        let plan =
            LaunchPlan::new(&bytes, &LaunchConfig::new(1, ram()), PlanOptions::default()).unwrap();
        let step_type = plan
            .steps()
            .iter()
            .find(|s| s.gpa == DATA)
            .map(|s| s.page_type);
        assert_eq!(step_type, planned_as);
        assert_eq!(
            plan.shared_runs().iter().any(|r| r.gpa == DATA),
            planned_as.is_none()
        );
        let (outcome, out) = run(&bytes);
        assert!(
            matches!(outcome, NativeOutcome::Halted { .. }),
            "{outcome:?}"
        );
        assert_eq!(out, format!("PM32 sum {}\n", byte_sum_hex(&data)));
    }
}

#[test]
fn long_mode_guest_prints_its_data_sum() {
    if kvm_or_skip("long_mode_guest_prints_its_data_sum").is_none() {
        return;
    }
    for data in [pattern_page(31, 17), vec![0xFF; 4096]] {
        let code = asm::sum_and_print(CODE as u32, DATA as u32, "LM64 sum ");
        let (outcome, out) = run(&long_mode_file(code, &data, long_mode_vmsa()));
        assert!(
            matches!(outcome, NativeOutcome::Halted { .. }),
            "{outcome:?}"
        );
        assert_eq!(out, format!("LM64 sum {}\n", byte_sum_hex(&data)));
    }
    // All 0xFF bytes: 4096 * 255.
    assert_eq!(byte_sum_hex(&[0xFF; 4096]), "000FF000");
}

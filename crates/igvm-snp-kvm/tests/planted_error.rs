//! The register fallback's digest check catches a translation error.
//!
//! In the fallback the firmware model measures the VMSAs KVM would build
//! from the vCPUs' state read back from `/dev/kvm`; `measure --profile
//! kvm-legacy` predicts them from the file alone. The two digests agree
//! only when `vmsa_regs` really loaded every field the prediction expects.
//! Built with the test-only feature `planted-translation-error`,
//! `vmsa_regs::regs` leaves R15 out: the digests must then differ, and the
//! measured boot VMSA must differ from the prediction in R15 alone.
//! Without the feature the same launch must match the prediction.
//!
//! Run the planted case with
//! `cargo test -p igvm-snp-kvm --features planted-translation-error --test planted_error`.
//!
//! Needs /dev/kvm: skipped with a note without it, failing instead when
//! IGVM_SNP_REQUIRE_KVM=1.

use igvm_snp_test_support as common;

use common::{FallbackLaunch, demo_with_vmsa, fallback_on_model};
use igvm_snp::kvm_legacy::differing_fields;
use igvm_snp_kvm::kvm_check::kvm_or_skip;
use igvm_snp_kvm::sev::ModelConfig;

const VCPUS: u32 = 2;
/// R15 in the file's VMSA: a value the translation must carry.
const R15: u64 = 0x0123_4567_89AB_CDEF;

/// The demo with R15 set in its VMSA.
fn demo_with_r15() -> Vec<u8> {
    demo_with_vmsa(|v| v.r15 = R15)
}

/// Launches the demo with R15 set through the fallback on the model.
fn launch() -> FallbackLaunch {
    let bytes = demo_with_r15();
    let launch = fallback_on_model(&bytes, VCPUS, ModelConfig::default());
    assert_eq!(launch.vmsas.boot.r15, R15);
    launch
}

#[cfg(feature = "planted-translation-error")]
#[test]
fn a_register_left_out_of_the_translation_changes_the_digest() {
    if kvm_or_skip("a_register_left_out_of_the_translation_changes_the_digest").is_none() {
        return;
    }
    let FallbackLaunch {
        done,
        predicted,
        vmsas,
    } = launch();
    assert_eq!(done.launched.vcpus[0].get_regs().unwrap().r15, 0);
    assert_ne!(done.launched.report.launch_digest, Some(predicted));
    let measured = done.model.kvm_vmsas();
    assert_eq!(measured.len(), VCPUS as usize);
    assert_eq!(differing_fields(&measured[0], &vmsas.boot), ["r15"]);
    assert_eq!(measured[0].r15, 0);
    // The APs were never given state: unaffected.
    assert_eq!(
        differing_fields(&measured[1], &vmsas.ap),
        Vec::<&str>::new()
    );
}

#[cfg(not(feature = "planted-translation-error"))]
#[test]
fn every_register_reaches_the_measured_vmsa() {
    if kvm_or_skip("every_register_reaches_the_measured_vmsa").is_none() {
        return;
    }
    let FallbackLaunch {
        done,
        predicted,
        vmsas,
    } = launch();
    assert_eq!(done.launched.vcpus[0].get_regs().unwrap().r15, R15);
    assert_eq!(done.launched.report.launch_digest, Some(predicted));
    let measured = done.model.kvm_vmsas();
    assert_eq!(measured.len(), VCPUS as usize);
    assert_eq!(measured[0].r15, R15);
    assert_eq!(
        differing_fields(&measured[0], &vmsas.boot),
        Vec::<&str>::new()
    );
}

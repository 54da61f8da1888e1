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

mod common;

use common::demo_with_vmsa;
use igvm_snp::kvm_legacy::{FinishVmsas, KVM_RESET_RDX, KvmLegacyInputs, differing_fields};
use igvm_snp::{GpaRange, LaunchConfig, LaunchDigest, LaunchPlan, PlanOptions, VmsaPlacement};
use igvm_snp_kvm::kvm_check::kvm_or_skip;
use igvm_snp_kvm::launch::{LaunchOptions, ModelLaunch, VmsaFallback, launch_model};
use igvm_snp_kvm::sev::{FirmwareModel, ModelConfig};

const RAM: u64 = 16 << 20;
const VCPUS: u32 = 2;
/// R15 in the file's VMSA: a value the translation must carry.
const R15: u64 = 0x0123_4567_89AB_CDEF;

/// The demo with R15 set in its VMSA.
fn demo_with_r15() -> Vec<u8> {
    demo_with_vmsa(|v| v.r15 = R15)
}

/// Launches `bytes` on the model without the VMSA page type, with the
/// fallback; returns the launch, the kvm-legacy digest and KVM's predicted
/// VMSAs.
fn launch(bytes: &[u8]) -> (ModelLaunch, LaunchDigest, FinishVmsas) {
    let config = LaunchConfig::new(VCPUS, vec![GpaRange::new(0, RAM)]);
    let plan = LaunchPlan::new(bytes, &config, PlanOptions::default()).unwrap();
    assert_eq!(plan.vmsa().vmsa.r15, R15);
    let model = FirmwareModel::new(ModelConfig {
        vmsa_page_type: false,
        ..ModelConfig::default()
    });
    let options = LaunchOptions::new(vec![GpaRange::new(0, RAM)], VCPUS)
        .with_vmsa_fallback(VmsaFallback::TranslateToRegisters);
    let done = launch_model(&plan, &options, model).unwrap();
    let legacy = KvmLegacyInputs::new(VCPUS, plan.init2_vmsa_features(), KVM_RESET_RDX);
    let mut legacy_options = PlanOptions::default();
    legacy_options.vmsa = VmsaPlacement::KvmFinish(legacy);
    let predicted = LaunchPlan::new(bytes, &config, legacy_options)
        .unwrap()
        .launch_digest();
    let vmsas = FinishVmsas::new(&plan.vmsa().vmsa, legacy);
    (done, predicted, vmsas)
}

#[cfg(feature = "planted-translation-error")]
#[test]
fn a_register_left_out_of_the_translation_changes_the_digest() {
    if kvm_or_skip("a_register_left_out_of_the_translation_changes_the_digest").is_none() {
        return;
    }
    let (done, predicted, vmsas) = launch(&demo_with_r15());
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
    let (done, predicted, vmsas) = launch(&demo_with_r15());
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

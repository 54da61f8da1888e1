//! Helpers shared by the `sev_*` tests.
#![allow(dead_code)]

use igvm_snp::LaunchDigest;
use igvm_snp_kvm::sev::{
    FirmwareModel, LaunchStartInput, ModelConfig, ModelRejection, PrivateMemory, SevError,
    SnpFirmware,
};

/// The default test policy: SMT | reserved bit 17.
pub const POLICY: u64 = 0x30000;

/// A model after INIT2(`vmsa_features` 0) and LAUNCH_START, with
/// `[0, 16 MiB)` private.
pub fn started(config: ModelConfig) -> FirmwareModel {
    let mut m = no_vcpus(config);
    m.init2(0).unwrap();
    m.set_private(0, 16 << 20).unwrap();
    m.launch_start(&LaunchStartInput {
        policy: POLICY,
        gosvw: [0; 16],
    })
    .unwrap();
    m
}

/// A model of a VM without vCPUs: LAUNCH_FINISH without a VMSA page
/// measures no KVM VMSA (it refuses to guess when not told).
pub fn no_vcpus(config: ModelConfig) -> FirmwareModel {
    let mut m = FirmwareModel::new(config);
    m.set_kvm_vcpus(Vec::new());
    m
}

/// The VMSA of the notes' §4.3 vector, written at the §4.5 offsets:
/// zero except efer 0x1000, cr0 0x10, cr4 0x40, rflags 2, rip 0xfff0,
/// xcr0 1, sev_features; plus `vmpl`.
pub fn vmsa_page(vmpl: u8, sev_features: u64) -> Vec<u8> {
    let mut p = vec![0u8; 4096];
    let mut put = |off: usize, v: u64| p[off..off + 8].copy_from_slice(&v.to_le_bytes());
    put(0xD0, 0x1000); // efer
    put(0x148, 0x40); // cr4
    put(0x158, 0x10); // cr0
    put(0x170, 2); // rflags
    put(0x178, 0xfff0); // rip
    put(0x3B0, sev_features);
    put(0x3E8, 1); // xcr0
    p[0xCA] = vmpl;
    p
}

/// Lower-case hex.
pub fn hex(d: &LaunchDigest) -> String {
    d.0.iter().map(|b| format!("{b:02x}")).collect()
}

/// The model's reason in a [`SevError::ModelRejected`], or a panic naming
/// the error.
pub fn rejection(e: &SevError) -> ModelRejection {
    match e.model_rejection() {
        Some(r) => r.clone(),
        None => panic!("not a model rejection: {e}"),
    }
}

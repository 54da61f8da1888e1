//! The SEV-SNP command layer: the launch commands as one trait
//! ([`SnpFirmware`]), the real KVM implementation ([`KvmSnp`]), a software
//! model of the AMD Secure Processor ([`FirmwareModel`]), firmware status
//! codes by name, and the CPUID page with its entry-by-entry diff.
//!
//! Everything that issues `KVM_MEMORY_ENCRYPT_OP` goes through one
//! function in the private `ioctl` module, which logs (target
//! `igvm_snp_kvm::sev`) the command, GPA range, page type, errno and
//! firmware status.
//!
//! An executor drives both backends alike; here the model:
//!
//! ```
//! use igvm_snp::PageType;
//! use igvm_snp_kvm::sev::{
//!     FirmwareModel, LaunchFinishInput, LaunchStartInput, LaunchUpdate, PrivateMemory,
//!     SnpFirmware,
//! };
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut fw = FirmwareModel::default();
//! fw.init2(0)?;
//! fw.set_private(0x100000, 0x2000)?;
//! fw.launch_start(&LaunchStartInput { policy: 0x30000, gosvw: [0; 16] })?;
//! let mut page = vec![0x90u8; 4096];
//! let mut update = LaunchUpdate::with_source(0x100000, PageType::Normal, &mut page)?;
//! let report = fw.launch_update(&mut update)?;
//! assert_eq!((report.pages, report.ioctl_calls), (1, 1));
//! fw.launch_update(&mut LaunchUpdate::zero(0x101000, 1)?)?;
//! // No VMSA page was launched, so KVM would build one VMSA per vCPU at
//! // LAUNCH_FINISH; this VM has none (a launch reads them back:
//! // `FirmwareModel::read_back_vcpus`).
//! fw.set_kvm_vcpus(Vec::new());
//! fw.launch_finish(&LaunchFinishInput::new([0; 32]))?;
//! println!("launch digest {}", fw.launch_digest());
//! # Ok(()) }
//! ```

mod commands;
pub mod cpuid;
mod error;
mod firmware_error;
mod ioctl;
mod kvm;
pub mod model;
mod progress;
mod vmsa_check;

pub use commands::{
    CpuidRetry, GHCB_VERSION, IdInput, KVM_SEV_SNP_PAGE_TYPE_VMSA, LaunchFinishInput,
    LaunchStartInput, LaunchUpdate, PAGE_SIZE, PrivateMemory, SevCommand, SnpFirmware,
    UpdateReport, VmsaPageTypeSupport,
};
pub use cpuid::{CpuidDiff, CpuidFunction, CpuidMismatch, SnpCpuidInfo};
pub use error::{CommandContext, InputError, SevError};
pub use firmware_error::FirmwareError;
pub use kvm::{KvmSnp, SEV_DEVICE};
pub use model::ModelRejection;
#[cfg(any(test, feature = "firmware-model"))]
pub use model::{FirmwareModel, ModelConfig, ModelPhase};
pub use progress::MAX_TRANSIENT_RETRIES;
pub use vmsa_check::{VmsaProblem, check_launch_vmsa};

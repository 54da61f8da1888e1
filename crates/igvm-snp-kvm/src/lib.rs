//! # igvm-snp-kvm
//!
//! Executes an [`igvm_snp::LaunchPlan`] on Linux KVM. All of the project's
//! `unsafe` code (ioctls and mmaps, each with a `// SAFETY:` comment) lives
//! in this crate.
//!
//! * [`launch`]: the executor. [`launch::launch_snp`] runs a whole SEV-SNP
//!   launch (preflight, `KVM_X86_SNP_VM`, KVM_SEV_INIT2, guest_memfd memory,
//!   vCPUs, LAUNCH_START, one LAUNCH_UPDATE per plan step, LAUNCH_FINISH);
//!   [`launch::launch_model`] runs the same code against the firmware model;
//!   [`launch::Launcher`] is the type-state building block for a VMM that
//!   owns its VM.
//! * [`sev`]: the SEV-SNP commands behind one trait, [`sev::SnpFirmware`]:
//!   [`sev::KvmSnp`] issues the real ioctls through one logging choke point;
//!   [`sev::FirmwareModel`] is a software model of the AMD-SP's launch rules
//!   and digest (a model, never verified on hardware), for tests, dry runs
//!   and demos: it and [`launch::launch_model`] are behind the
//!   `firmware-model` feature, off by default.
//! * [`preflight`]: what the host offers for SEV-SNP, checked before any
//!   state changes.
//! * [`host`]: what this host's KVM offers (VM types, guest_memfd and memory
//!   attributes per VM type, SEV-SNP), and the switch that treats a feature
//!   as absent so every branch can be tested on any host.
//! * [`memory`]: guest memory regions and memslots, plain or guest_memfd.
//! * [`vmsa_regs`]: the translation of an SNP VMSA into KVM vCPU state (the
//!   fallback on kernels without the VMSA page type, and native runs).
//! * [`vmsa_sync`]: the VMSA today's KVM builds for a vCPU at
//!   SNP_LAUNCH_FINISH, from the vCPU's state read back from KVM (what the
//!   firmware model measures in the fallback).
//! * [`native`]: runs a plan on plain KVM (no SEV), relaying the serial port.
//! * [`mapped_file`]: a file mapped read-only, for parsing large images
//!   without copying them.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, PlanOptions};
//! use igvm_snp_kvm::launch::{LaunchOptions, launch_model};
//! use igvm_snp_kvm::sev::FirmwareModel;
//!
//! let bytes = igvm_snp::demo::demo_igvm();
//! let ram = vec![GpaRange::new(0, 16 << 20)];
//! let plan = LaunchPlan::new(&bytes, &LaunchConfig::new(1, ram.clone()), PlanOptions::default())?;
//! # if kvm_ioctls::Kvm::new().is_err() { return Ok(()) } // needs /dev/kvm
//! let done = launch_model(&plan, &LaunchOptions::new(ram, 1), FirmwareModel::default())?;
//! assert_eq!(done.launched.report.launch_digest, Some(plan.launch_digest()));
//! # Ok(()) }
//! ```

pub mod host;
#[doc(hidden)]
pub mod kvm_check;
pub mod launch;
pub mod mapped_file;
pub mod memory;
pub mod native;
pub mod preflight;
pub mod sev;
pub mod vmsa_regs;
pub mod vmsa_sync;

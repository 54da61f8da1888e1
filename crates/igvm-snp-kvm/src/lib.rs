//! # igvm-snp-kvm
//!
//! Executes an [`igvm_snp::LaunchPlan`] on Linux KVM.

#[doc(hidden)]
pub mod kvm_check;
pub mod launch;
pub mod mapped_file;
pub mod memory;
pub mod native;
pub mod preflight;
pub mod sev;
pub mod vmsa_regs;

//! # igvm-snp-kvm
//!
//! Executes an [`igvm_snp::LaunchPlan`] on Linux KVM.

pub mod preflight;
pub mod sev;

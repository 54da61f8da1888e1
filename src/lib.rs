//! Facade over the igvm-snp crates, owning the example loader and the
//! end-to-end tests.
//!
//! * [`plan`] is the core crate, `igvm-snp`: IGVM parsing, the SEV-SNP launch
//!   plan and the launch digest.
//! * [`kvm`] is the backend crate, `igvm-snp-kvm`: it executes a plan on
//!   `/dev/kvm`.

pub use igvm_snp as plan;
pub use igvm_snp_kvm as kvm;

/// The README's code blocks, compiled and run as doctests so its library
/// example stays correct.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

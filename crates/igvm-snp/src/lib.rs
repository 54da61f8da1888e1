//! # igvm-snp
//!
//! Turns an [IGVM] file into an ordered, inspectable AMD SEV-SNP launch plan
//! and predicts the launch digest the AMD Secure Processor will compute for
//! it. One plan drives both: the KVM backend crate (`igvm-snp-kvm`) issues
//! exactly the plan's SNP_LAUNCH_UPDATE steps, and
//! [`LaunchPlan::launch_digest`] hashes exactly those steps.
//!
//! * [`IgvmFile::parse`]: a validating, zero-copy parser of IGVM v1/v2.
//! * [`LaunchPlan::new`]: picks the SEV-SNP platform by compatibility mask,
//!   maps every directive to SNP page types in file order and coalesces
//!   contiguous same-type pages into steps; fills parameter areas from a
//!   [`LaunchConfig`]; gathers the LAUNCH_START policy and the LAUNCH_FINISH
//!   inputs (ID block, ID auth, host data).
//! * [`LaunchPlan::launch_digest`]: the digest, page hashes spread over
//!   every core with the sequential PAGE_INFO chain alongside;
//!   [`LaunchPlan::launch_digest_releasing`] also hands each hashed batch of
//!   file bytes back, so a caller that maps the file can drop it as it goes.
//! * [`DigestChain`]: the PAGE_INFO / SHA-384 chain, also usable on its own.
//! * [`attestation`]: SEV-SNP attestation reports, their signature and
//!   AMD's certificate chain, checked offline.
//!
//! The default rules are the IGVM specification's with the proposed KVM
//! `KVM_SEV_SNP_PAGE_TYPE_VMSA`: the VMSA is measured at its IGVM GPA, in
//! directive order, once, whatever the vCPU count. [`PlanOptions`] selects
//! the variants other loaders use.
//!
//! ```
//! # fn main() -> Result<(), igvm_snp::Error> {
//! use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, PlanOptions};
//! let bytes = igvm_snp::demo::demo_igvm();
//! let config = LaunchConfig::new(2, vec![GpaRange::new(0, 64 << 20)]);
//! let plan = LaunchPlan::new(&bytes, &config, PlanOptions::default())?;
//! let digest = plan.launch_digest();
//! plan.check_id_block(&digest)?;
//! println!("{} steps, digest {digest}", plan.steps().len());
//! # Ok(()) }
//! ```
//!
//! This crate contains no `unsafe` code and does no I/O.
//!
//! Feature `demo` (off by default) adds the `demo` module: a built-in demo file and
//! small SEV-SNP test-file builders, for documentation, tests and demos;
//! a VMM does not need it.
//!
//! [IGVM]: https://github.com/microsoft/igvm

#![forbid(unsafe_code)]

pub mod acpi;
pub mod attestation;
mod config;
#[cfg(any(test, feature = "demo"))]
pub mod demo;
mod digest;
mod error;
mod id_block;
pub mod id_sign;
pub mod kvm_legacy;
mod page_type;
mod params;
pub mod parse;
mod plan;
mod policy;
pub mod profile;
mod vmsa;

pub use config::{GpaRange, LaunchConfig};
pub use digest::{
    DigestChain, LaunchDigest, PAGE_SIZE, PageInfo, ParseDigestError, TraceEntry, page_hash,
    zero_page_hash,
};
pub use error::{Error, HeaderRef, Result, Section};
pub use id_block::{ID_BLOCK_VERSION, IdAuth, IdBlock, LaunchFinish, PublicKey, Signature};
pub use page_type::PageType;
pub use params::{ParameterArea, ParameterWrite, UnfilledParameter};
pub use parse::{IgvmFile, ParameterKind};
pub use plan::{
    HostVisibleRange, LaunchPlan, LaunchStep, MeasureStats, PageBytes, ParameterInserts,
    PlanOptions, RequiredMemory, SharedPages, SharedRun, SnpPlatform, StepSource, VmsaPlacement,
    ZeroPages,
};
pub use policy::{PolicySource, SnpPolicy};
pub use profile::Profile;
pub use vmsa::{BootVmsa, SEV_FEATURE_SNP_ACTIVE};

/// The VMSA layout (`igvm::snp_defs::SevVmsa`), re-exported for backends.
pub use igvm::snp_defs::SevVmsa;

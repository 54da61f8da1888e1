//! Executing a launch plan: exactly one SNP_LAUNCH_UPDATE per plan step, in
//! plan order, through the [`SnpFirmware`](crate::sev::SnpFirmware) trait, so the real KVM ioctls and
//! the firmware model are driven by the same code.
//!
//! * [`Launcher`] is the building block for a VMM that owns its VM: a
//!   type-state machine `New → Initialized → Loaded → Started → Updated →
//!   Finished`, over the VMM's own VM, vCPUs and vm-memory guest memory, so a
//!   LAUNCH_UPDATE after LAUNCH_FINISH, or before LAUNCH_START, does not
//!   compile.
//! * [`launch_snp`] is the one call for a whole SEV-SNP launch on KVM:
//!   preflight, SNP VM, KVM_SEV_INIT2, guest_memfd memory, vCPUs, the plan,
//!   LAUNCH_FINISH.
//! * [`launch_model`] runs the same plan against the software model of the
//!   AMD-SP on a plain KVM VM (memory, vCPUs and the VMSA fallback are real
//!   KVM objects; only the SEV commands are modelled).
//!
//! The VMSA: with the proposed `KVM_SEV_SNP_PAGE_TYPE_VMSA`, the plan's
//! VMSA step hands KVM the IGVM's VMSA for the boot vCPU and the launch
//! digest is the plan's. Kernels without it refuse the page type; the
//! caller may then opt into [`VmsaFallback::TranslateToRegisters`]: the
//! VMSA is translated into vCPU 0's register state and KVM measures its own
//! VMSA per vCPU at LAUNCH_FINISH, so the digest is KVM's (see
//! [`VmsaOutcome::Fallback`] and `igvm_snp::kvm_legacy`), not the plan's.

mod launcher;
mod run;

use std::num::NonZeroU64;
use std::time::Duration;

use igvm_snp::kvm_legacy::KvmLegacyInputs;
use igvm_snp::{GpaRange, HeaderRef, LaunchDigest, PageType};
use serde::Serialize;

pub use launcher::{BootVcpu, Finished, Initialized, Launcher, Loaded, New, Started, Updated};
pub use run::{LaunchedVm, launch_snp};
#[cfg(any(test, feature = "firmware-model"))]
pub use run::{ModelLaunch, launch_model};

use crate::memory::MemoryError;
use crate::preflight::{PolicyRefused, PreflightError};
use crate::sev::{CpuidDiff, CpuidRetry, InputError, SevError};
use crate::vmsa_regs::VcpuStateError;

/// What to do when the kernel does not accept the VMSA page type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VmsaFallback {
    /// Fail with [`LaunchError::VmsaPageTypeUnsupported`] (default): the
    /// plan's digest would not hold.
    #[default]
    Refuse,
    /// Translate the VMSA into vCPU 0's registers and let KVM build and
    /// measure one VMSA per vCPU at LAUNCH_FINISH.
    TranslateToRegisters,
}

/// Options of a launch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LaunchOptions {
    /// Guest RAM ranges; pages the plan loads outside them get their own
    /// memslots.
    pub ram: Vec<GpaRange>,
    /// vCPUs to create.
    pub vcpus: u32,
    /// What to do without the VMSA page type.
    pub vmsa_fallback: VmsaFallback,
    /// Whether a CPUID page the firmware rejects is retried once with the
    /// firmware's corrections.
    pub cpuid_retry: CpuidRetry,
    /// RDX of the APs in the fallback (the CPU signature, as QEMU writes
    /// it); `None` keeps KVM's reset value 0x600.
    pub ap_cpu_signature: Option<u32>,
    /// Load and launch each step at most this many pages at a time,
    /// discarding each window after its LAUNCH_UPDATE
    /// ([`Launcher::load_windowed`]); `None` (default): load every page
    /// before LAUNCH_START and keep it ([`Launcher::load`]).
    pub load_window: Option<NonZeroU64>,
}

impl LaunchOptions {
    /// Options with RAM and a vCPU count; no fallback, no CPUID retry.
    pub fn new(ram: Vec<GpaRange>, vcpus: u32) -> Self {
        LaunchOptions {
            ram,
            vcpus,
            vmsa_fallback: VmsaFallback::Refuse,
            cpuid_retry: CpuidRetry::Never,
            ap_cpu_signature: None,
            load_window: None,
        }
    }

    /// Loads and launches windows of `pages` pages, each discarded after
    /// its LAUNCH_UPDATE (see [`Launcher::load_windowed`]).
    pub fn with_load_window(mut self, pages: NonZeroU64) -> Self {
        self.load_window = Some(pages);
        self
    }

    /// Sets the VMSA fallback.
    pub fn with_vmsa_fallback(mut self, fallback: VmsaFallback) -> Self {
        self.vmsa_fallback = fallback;
        self
    }

    /// Sets the CPUID retry.
    pub fn with_cpuid_retry(mut self, retry: CpuidRetry) -> Self {
        self.cpuid_retry = retry;
        self
    }
}

/// How the boot VMSA was launched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum VmsaOutcome {
    /// Not launched yet.
    Pending,
    /// With the VMSA page type at the plan's GPA: the launch digest is the
    /// plan's, whatever the vCPU count.
    PageType {
        /// The VMSA's GPA.
        gpa: u64,
    },
    /// Translated into vCPU 0's registers: KVM measures one VMSA per vCPU
    /// at LAUNCH_FINISH; the launch digest is KVM's, which
    /// `igvm_snp::kvm_legacy` predicts from these inputs.
    Fallback {
        /// What KVM's VMSAs depend on.
        legacy: KvmLegacyInputs,
    },
}

/// One phase and how long it took.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseTime {
    /// The phase.
    pub phase: &'static str,
    /// Its duration in seconds.
    pub seconds: f64,
}

/// What a launch did.
#[derive(Debug, Clone, Serialize)]
pub struct LaunchReport {
    /// SNP_LAUNCH_UPDATE commands issued: one per executed plan step.
    pub launch_update_calls: u64,
    /// `KVM_MEMORY_ENCRYPT_OP` calls they took (more than the commands when
    /// the kernel reports partial progress or asks for a retry, when a
    /// windowed load issues a step window by window, and for CPUID pages,
    /// which go one per ioctl).
    pub launch_update_ioctls: u64,
    /// Pages launched.
    pub pages: u64,
    /// Pages per load window when the launch was windowed
    /// ([`Launcher::load_windowed`]; each window discarded after its
    /// LAUNCH_UPDATE); `None` when every page was loaded first and kept.
    pub load_window_pages: Option<u64>,
    /// How the VMSA was launched.
    pub vmsa: VmsaOutcome,
    /// CPUID corrections accepted on a retry, by plan step.
    #[serde(skip)]
    pub cpuid_corrections: Vec<(usize, CpuidDiff)>,
    /// The launch digest the backend reports, when it can: filled by
    /// [`launch_model`] (the firmware model's
    /// [`crate::sev::FirmwareModel::launch_digest`]; a VMM driving the
    /// [`Launcher`] itself reads it there); real hardware reports it only in
    /// attestation reports.
    pub launch_digest: Option<LaunchDigest>,
    /// Phase times.
    pub phases: Vec<PhaseTime>,
}

impl LaunchReport {
    pub(crate) fn new() -> Self {
        LaunchReport {
            launch_update_calls: 0,
            launch_update_ioctls: 0,
            pages: 0,
            load_window_pages: None,
            vmsa: VmsaOutcome::Pending,
            cpuid_corrections: Vec::new(),
            launch_digest: None,
            phases: Vec::new(),
        }
    }

    pub(crate) fn phase(&mut self, phase: &'static str, took: Duration) {
        self.phases.push(PhaseTime {
            phase,
            seconds: took.as_secs_f64(),
        });
    }
}

/// Errors of a launch. Every SEV command failure names the plan step, the
/// IGVM directive it came from, the GPA range and the page type; the
/// wrapped [`SevError`] adds the errno and the firmware status by name.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// The host cannot run SEV-SNP guests (nothing was changed).
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// KVM's SNP_LAUNCH_START would refuse the plan's guest policy.
    #[error(transparent)]
    PolicyRefused(#[from] PolicyRefused),
    /// The plan cannot be executed as configured.
    #[error("the plan cannot be executed: {0}")]
    Plan(#[from] igvm_snp::Error),
    /// A KVM call outside the SEV commands failed.
    #[error("{what} failed: {source}")]
    Kvm {
        /// What was attempted.
        what: &'static str,
        /// The errno.
        source: vmm_sys_util::errno::Error,
    },
    /// `/dev/sev` could not be opened.
    #[error("cannot open {path}: {source}")]
    SevDevice {
        /// The path.
        path: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// Guest memory could not be set up or written.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// A SEV command outside the plan's steps (INIT2, START, FINISH).
    #[error(transparent)]
    Sev(Box<SevError>),
    /// A plan step's LAUNCH_UPDATE failed.
    #[error(
        "plan step {step} ({page_type} {gpa:#x}, {pages} pages, from {directive}) failed: {source}"
    )]
    Update {
        /// Plan step.
        step: usize,
        /// The directive the step starts with.
        directive: HeaderRef,
        /// First GPA.
        gpa: u64,
        /// Pages.
        pages: u64,
        /// Page type.
        page_type: PageType,
        /// The failure.
        #[source]
        source: Box<SevError>,
    },
    /// A plan step could not be turned into a LAUNCH_UPDATE.
    #[error("plan step {step}: {source}")]
    Input {
        /// Plan step.
        step: usize,
        /// The problem.
        #[source]
        source: InputError,
    },
    /// The kernel does not accept the VMSA page type and the fallback was
    /// not allowed.
    #[error(
        "the kernel does not accept the VMSA page type (KVM_SEV_SNP_PAGE_TYPE_VMSA) for the VMSA \
         at {gpa:#x}; allow the register fallback to launch anyway, with KVM's per-vCPU digest"
    )]
    VmsaPageTypeUnsupported {
        /// The VMSA's GPA.
        gpa: u64,
    },
    /// KVM would refuse to build its VMSA from the file's VMSA state.
    #[error("the VMSA cannot go through the register fallback: {reason}")]
    FallbackRefused {
        /// Why.
        reason: String,
    },
    /// The VMM initialized the VM with other VMSA features than the plan needs.
    #[error(
        "the VM was initialized with VMSA features {vm:#x}, but the plan's VMSA asks for {plan:#x}"
    )]
    VmsaFeaturesMismatch {
        /// What the VMM's KVM_SEV_INIT2 used.
        vm: u64,
        /// What the plan's VMSA needs.
        plan: u64,
    },
    /// The launch would create another number of vCPUs (or KVM would
    /// measure VMSAs for another number) than the plan's configuration, whose
    /// VP count parameter the guest reads.
    #[error("{what}: {got} vCPU(s), but the plan was configured for {plan}")]
    VcpuCountMismatch {
        /// What disagrees: "the launch options", "the kvm-legacy inputs" or
        /// "the VM" (the vCPUs given to the firmware model).
        what: &'static str,
        /// Its count.
        got: u32,
        /// [`igvm_snp::LaunchPlan::vcpu_count`].
        plan: u32,
    },
    /// The kvm-legacy inputs of the fallback name other VMSA features than
    /// the plan's, which KVM_SEV_INIT2 took and KVM's VMSAs carry.
    #[error(
        "the kvm-legacy inputs have VMSA features {legacy:#x}, but the plan's VMSA (and so \
         KVM_SEV_INIT2) has {plan:#x}"
    )]
    LegacyFeaturesMismatch {
        /// The inputs' `vmsa_features`.
        legacy: u64,
        /// [`igvm_snp::LaunchPlan::init2_vmsa_features`].
        plan: u64,
    },
    /// The guest memory given to the [`Launcher`] does not hold the plan's
    /// configured RAM, which the guest's memory map describes.
    #[error("the plan's RAM {gpa:#x}+{size:#x} is not all in the guest memory given")]
    RamNotInMemory {
        /// First GPA of the RAM range.
        gpa: u64,
        /// Its size in bytes.
        size: u64,
    },
    /// A launch step's pages are not within one region of the guest memory
    /// given (missing, or across two regions): SNP_LAUNCH_UPDATE takes one
    /// contiguous source.
    #[error(
        "step {step} ({pages} page(s) from {gpa:#x}) is not within one region of the guest memory given"
    )]
    StepNotInOneRegion {
        /// The step.
        step: usize,
        /// Its first GPA.
        gpa: u64,
        /// Its pages.
        pages: u64,
    },
    /// The fallback needs vCPU 0 and the caller gave none.
    #[error("the VMSA fallback needs the boot vCPU, and none was given")]
    NoBootVcpu,
    /// Reading a vCPU's state back from KVM failed (the firmware model,
    /// before LAUNCH_FINISH).
    #[error("reading vCPU {vcpu}'s state back from KVM: {source}")]
    VcpuReadBack {
        /// vCPU index.
        vcpu: u32,
        /// The failure.
        #[source]
        source: VcpuStateError,
    },
    /// Translating the VMSA into vCPU state failed.
    #[error("setting vCPU {vcpu} state from the VMSA: {source}")]
    VcpuState {
        /// vCPU index.
        vcpu: u32,
        /// The failure.
        #[source]
        source: VcpuStateError,
    },
}

impl From<SevError> for LaunchError {
    fn from(e: SevError) -> Self {
        LaunchError::Sev(Box::new(e))
    }
}

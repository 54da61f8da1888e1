//! Why the firmware model refuses a command, and what the kernel / firmware
//! would report in its place.

use igvm_snp::LaunchDigest;

use super::super::firmware_error::FirmwareError;
use super::super::vmsa_check::VmsaProblem;
use crate::vmsa_sync::SyncRefused;

/// A rule of the KVM / AMD-SP launch flow the model enforces.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelRejection {
    /// KVM_SEV_INIT2 a second time.
    #[error("INIT2 was already issued")]
    Init2Repeated,
    /// KVM_SEV_INIT2 after LAUNCH_START.
    #[error("INIT2 after LAUNCH_START")]
    Init2AfterStart,
    /// `vmsa_features` outside the supported set.
    #[error("vmsa_features {requested:#x} not within the supported {supported:#x}")]
    UnsupportedVmsaFeatures {
        /// Requested.
        requested: u64,
        /// Supported.
        supported: u64,
    },
    /// LAUNCH_START before INIT2 (the VM is not an SNP VM yet).
    #[error("LAUNCH_START before INIT2")]
    StartBeforeInit2,
    /// LAUNCH_START a second time.
    #[error("LAUNCH_START was already issued")]
    StartRepeated,
    /// Policy bit 17 (reserved, must be one) is clear.
    #[error("policy {policy:#x} has bit 17 (must be one) clear")]
    PolicyReservedBitClear {
        /// The policy.
        policy: u64,
    },
    /// Policy bits outside the supported mask.
    #[error("policy {policy:#x} sets unsupported bits {unsupported:#x}")]
    PolicyUnsupportedBits {
        /// The policy.
        policy: u64,
        /// The offending bits.
        unsupported: u64,
    },
    /// The policy asks for a firmware ABI newer than the firmware's.
    #[error(
        "policy {policy:#x} asks for firmware ABI {}.{}, newer than the firmware's {}.{}",
        (policy >> 8) & 0xFF,
        policy & 0xFF,
        firmware.0,
        firmware.1
    )]
    PolicyAbiTooNew {
        /// The policy.
        policy: u64,
        /// The firmware's ABI (major, minor).
        firmware: (u8, u8),
    },
    /// The policy does not allow SMT, which the host has active.
    #[error("policy {policy:#x} does not allow SMT (bit 16), which the host has active")]
    PolicySmtActive {
        /// The policy.
        policy: u64,
    },
    /// SINGLE_SOCKET on a host with more than one socket.
    #[error("policy {policy:#x} asks for a single socket (bit 20); the host has {sockets}")]
    PolicySingleSocket {
        /// The policy.
        policy: u64,
        /// The host's sockets.
        sockets: u32,
    },
    /// LAUNCH_FINISH must build KVM's VMSAs (no VMSA page was launched)
    /// and the model was given no vCPU state.
    #[error(
        "no VMSA page was launched, so KVM builds one VMSA per vCPU at LAUNCH_FINISH, and the \
         model was given no vCPU state (FirmwareModel::read_back_vcpus)"
    )]
    NoVcpuState,
    /// LAUNCH_UPDATE before LAUNCH_START.
    #[error("LAUNCH_UPDATE before LAUNCH_START")]
    UpdateBeforeStart,
    /// LAUNCH_UPDATE after LAUNCH_FINISH.
    #[error("LAUNCH_UPDATE after LAUNCH_FINISH")]
    UpdateAfterFinish,
    /// The VMSA page type while the model is configured without it.
    #[error("the VMSA page type (2) is not supported")]
    VmsaPageTypeUnsupported,
    /// A page without source bytes reached the model (cannot happen through
    /// [`super::super::LaunchUpdate::check`]).
    #[error("no source bytes for the page at {gpa:#x}")]
    MissingSource {
        /// The page.
        gpa: u64,
    },
    /// The page was not marked private (KVM_SET_MEMORY_ATTRIBUTES).
    #[error("GPA {gpa:#x} is not private")]
    NotPrivate {
        /// The page.
        gpa: u64,
    },
    /// The page was already given to LAUNCH_UPDATE.
    #[error("GPA {gpa:#x} was already updated")]
    AlreadyUpdated {
        /// The page.
        gpa: u64,
    },
    /// The VMSA page breaks a rule.
    #[error("VMSA page at {gpa:#x}: {problem}")]
    Vmsa {
        /// The page.
        gpa: u64,
        /// The rule.
        problem: VmsaProblem,
    },
    /// LAUNCH_FINISH before LAUNCH_START.
    #[error("LAUNCH_FINISH before LAUNCH_START")]
    FinishBeforeStart,
    /// KVM would refuse to build a vCPU's VMSA at LAUNCH_FINISH
    /// (`sev_es_sync_vmsa()` fails with `EINVAL`).
    #[error("KVM cannot build the VMSA of vCPU {vcpu}: {refused}")]
    KvmVmsaRefused {
        /// The vCPU index.
        vcpu: usize,
        /// Why.
        refused: SyncRefused,
    },
    /// LAUNCH_FINISH a second time.
    #[error("LAUNCH_FINISH was already issued")]
    FinishRepeated,
    /// The ID block's `ld` is not the launch digest.
    #[error("ID block digest {id_block} differs from the launch digest {launch}")]
    IdBlockDigestMismatch {
        /// The ID block's `ld`.
        id_block: LaunchDigest,
        /// The model's digest.
        launch: LaunchDigest,
    },
    /// An ID signature does not verify: the ID key's over the ID block, or
    /// the author key's over the ID key (SNP_LAUNCH_FINISH checks them
    /// before the digest).
    #[error("the ID block's signatures do not verify: {reason}")]
    IdSignature {
        /// Why.
        reason: String,
    },
    /// The ID block's policy is not the launch policy.
    #[error("ID block policy {id_block:#x} differs from the launch policy {launch:#x}")]
    IdBlockPolicyMismatch {
        /// The ID block's policy.
        id_block: u64,
        /// The LAUNCH_START policy.
        launch: u64,
    },
}

impl ModelRejection {
    /// The errno and firmware status the kernel would report.
    pub fn kernel_result(&self) -> (i32, FirmwareError) {
        use ModelRejection::*;
        match self {
            StartBeforeInit2 => (libc::ENOTTY, FirmwareError::Success),
            // kvm_gmem_populate fails (EEXIST for a page already launched,
            // EINVAL for one not private) and snp_launch_update reports
            // every such failure as EIO, the firmware never having run.
            AlreadyUpdated { .. } | NotPrivate { .. } => (libc::EIO, FirmwareError::Success),
            UpdateAfterFinish | FinishRepeated => (libc::EIO, FirmwareError::InvalidGuestState),
            IdSignature { .. } => (libc::EIO, FirmwareError::BadSignature),
            IdBlockDigestMismatch { .. } => (libc::EIO, FirmwareError::BadMeasurement),
            // KVM passed the command on; the firmware refused the policy.
            IdBlockPolicyMismatch { .. }
            | PolicyAbiTooNew { .. }
            | PolicySmtActive { .. }
            | PolicySingleSocket { .. } => (libc::EIO, FirmwareError::PolicyFailure),
            Init2Repeated
            | Init2AfterStart
            | UnsupportedVmsaFeatures { .. }
            | StartRepeated
            | PolicyReservedBitClear { .. }
            | PolicyUnsupportedBits { .. }
            | UpdateBeforeStart
            | VmsaPageTypeUnsupported
            | MissingSource { .. }
            | Vmsa { .. }
            | FinishBeforeStart
            | NoVcpuState
            | KvmVmsaRefused { .. } => (libc::EINVAL, FirmwareError::Success),
        }
    }
}

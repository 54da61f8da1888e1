//! The typed errors of the SEV command layer.

use std::fmt;

use igvm_snp::PageType;
use vmm_sys_util::errno::Error as Errno;

use super::commands::{PAGE_SIZE, SevCommand};
use super::cpuid::CpuidDiff;
use super::firmware_error::FirmwareError;
use super::model::ModelRejection;
use super::vmsa_check::VmsaProblem;

/// Which command, and for LAUNCH_UPDATE which pages, an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandContext {
    /// The command.
    pub command: SevCommand,
    /// For LAUNCH_UPDATE: the first GPA of the range still to do.
    pub gpa: Option<u64>,
    /// For LAUNCH_UPDATE: the pages still to do from `gpa`.
    pub pages: u64,
    /// For LAUNCH_UPDATE: the page type.
    pub page_type: Option<PageType>,
}

impl CommandContext {
    /// A command without a GPA range.
    pub fn command(command: SevCommand) -> Self {
        CommandContext {
            command,
            gpa: None,
            pages: 0,
            page_type: None,
        }
    }

    /// A LAUNCH_UPDATE of `pages` pages of `page_type` at `gpa`.
    pub fn update(gpa: u64, pages: u64, page_type: PageType) -> Self {
        CommandContext {
            command: SevCommand::LaunchUpdate,
            gpa: Some(gpa),
            pages,
            page_type: Some(page_type),
        }
    }

    /// One past the last GPA of the range (saturating).
    pub fn end(&self) -> Option<u64> {
        self.gpa
            .map(|g| g.saturating_add(self.pages.saturating_mul(PAGE_SIZE)))
    }
}

impl fmt::Display for CommandContext {
    /// E.g. `SNP_LAUNCH_UPDATE of 2 CPUID page(s) [0x100000, 0x102000)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.command)?;
        if let (Some(gpa), Some(end)) = (self.gpa, self.end()) {
            write!(f, " of {}", self.pages)?;
            if let Some(t) = self.page_type {
                write!(f, " {t}")?;
            }
            write!(f, " page(s) [{gpa:#x}, {end:#x})")?;
        }
        Ok(())
    }
}

/// `, firmware status NAME (0xNN)`, or nothing when the firmware reported
/// success (KVM refused before reaching it).
fn firmware_note(firmware: FirmwareError) -> String {
    if firmware == FirmwareError::Success {
        String::new()
    } else {
        format!(", firmware status {firmware}")
    }
}

/// [`firmware_note`], and for a LAUNCH_UPDATE that failed with `EIO` and
/// no firmware status, that KVM refused it.
fn failure_note(context: &CommandContext, errno: Errno, firmware: FirmwareError) -> String {
    if firmware != FirmwareError::Success {
        firmware_note(firmware)
    } else if context.command == SevCommand::Init2 && errno.errno() == libc::ENOTTY {
        // kvm_arch_vm_ioctl without mem_enc_ioctl (no SEV in this KVM).
        ": this KVM has no memory-encryption commands (no SEV support on the host)".to_string()
    } else if context.command == SevCommand::Init2 && errno.errno() == libc::EINVAL {
        ": KVM refuses INIT2 for a VM not created as KVM_X86_SNP_VM, one that already has \
         vCPUs or was initialized, and vmsa_features it does not support"
            .to_string()
    } else if context.command == SevCommand::LaunchUpdate && errno.errno() == libc::EIO {
        // snp_launch_update turns every failure of kvm_gmem_populate into
        // EIO, with the firmware's status, 0 when it never ran.
        ", firmware status SUCCESS: KVM refused the pages before the firmware saw them \
         (a GFN not private, a page already launched, or a pending signal)"
            .to_string()
    } else {
        String::new()
    }
}

/// For LAUNCH_UPDATE: how far the range got.
fn progress_note(context: &CommandContext, completed_pages: u64, ioctl_calls: u32) -> String {
    if context.command == SevCommand::LaunchUpdate {
        format!(" ({completed_pages} page(s) done before, {ioctl_calls} call(s))")
    } else {
        String::new()
    }
}

/// A malformed command input, found before any ioctl.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The GPA is not 4 KiB-aligned.
    #[error("GPA {gpa:#x} is not page-aligned")]
    UnalignedGpa {
        /// The GPA.
        gpa: u64,
    },
    /// A range of zero pages.
    #[error("zero pages")]
    NoPages,
    /// The range does not fit in the address space.
    #[error("{pages} pages at {gpa:#x} overflow the address space")]
    RangeOverflow {
        /// The GPA.
        gpa: u64,
        /// The page count.
        pages: u64,
    },
    /// The source buffer is not `pages * 4096` bytes.
    #[error("source buffer of {len} bytes does not hold exactly {pages} page(s)")]
    SourceLength {
        /// The buffer's length.
        len: usize,
        /// The pages it should hold.
        pages: u64,
    },
    /// A ZERO update with a source buffer.
    #[error("ZERO pages take no source buffer")]
    SourceForZero,
    /// A non-ZERO update without a source buffer.
    #[error("{page_type} pages need a source buffer")]
    MissingSource {
        /// The page type.
        page_type: PageType,
    },
    /// A VMSA update of more than one page.
    #[error("a VMSA update is exactly one page, not {pages}")]
    VmsaPageCount {
        /// The pages given.
        pages: u64,
    },
    /// The VMSA page breaks a rule the kernel enforces.
    #[error("VMSA page: {0}")]
    Vmsa(VmsaProblem),
    /// An ID block without an ID authentication structure.
    #[error("an ID block needs an ID authentication structure")]
    IdBlockWithoutAuth,
}

/// An error of an SEV command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SevError {
    /// The input was malformed; nothing was issued.
    #[error("{context}: {problem}")]
    Input {
        /// The command.
        context: CommandContext,
        /// What is wrong.
        problem: InputError,
    },
    /// The kernel or the firmware refused the command.
    #[error(
        "{context}: {errno}{}{}",
        failure_note(.context, *.errno, *.firmware),
        progress_note(.context, *.completed_pages, *.ioctl_calls)
    )]
    Failed {
        /// The command and the range still to do.
        context: CommandContext,
        /// The errno of the ioctl.
        errno: Errno,
        /// `kvm_sev_cmd.error`.
        firmware: FirmwareError,
        /// Pages of this LAUNCH_UPDATE done before the failure.
        completed_pages: u64,
        /// Calls issued for this command.
        ioctl_calls: u32,
    },
    /// The firmware rejected a CPUID page (`EIO`, `INVALID_PARAM`) and
    /// wrote the values it expects back into the source buffer.
    #[error("{context}: firmware rejected the CPUID page ({errno}){}: {diff}",
        if *.retried { " again after one corrected retry" } else { "" })]
    CpuidRejected {
        /// The command and the range still to do.
        context: CommandContext,
        /// The errno (EIO).
        errno: Errno,
        /// The entries the firmware changed.
        diff: CpuidDiff,
        /// Whether this was the corrected retry.
        retried: bool,
    },
    /// LAUNCH_UPDATE of a VMSA page failed with `EINVAL` while every other
    /// field was checked valid: the kernel lacks the proposed
    /// `KVM_SEV_SNP_PAGE_TYPE_VMSA`. (On a kernel that has it, `EINVAL`
    /// can also mean the page is not in a guest_memfd memslot.)
    #[error("{context}: {errno}: the kernel does not accept the VMSA page type (2)")]
    VmsaPageTypeUnsupported {
        /// The command and page.
        context: CommandContext,
        /// The errno (EINVAL).
        errno: Errno,
    },
    /// The software model refused the command; it reports what the
    /// kernel / firmware would (`errno`, `firmware`) and why.
    #[error("{context}: model rejects: {rejection} (as {errno}{})", firmware_note(*.firmware))]
    ModelRejected {
        /// The command and the range still to do.
        context: CommandContext,
        /// The errno the kernel would return.
        errno: Errno,
        /// The firmware status it would report.
        firmware: FirmwareError,
        /// Why.
        rejection: Box<ModelRejection>,
    },
    /// A LAUNCH_UPDATE call succeeded without progress, or reported
    /// progress that does not fit the request.
    #[error(
        "{context}: kernel reported {pages_after} page(s) left at gfn {gfn_after:#x} \
         after a call with {pages_before} page(s) at gfn {gfn_before:#x}"
    )]
    BadProgress {
        /// The command and the range before the call.
        context: CommandContext,
        /// Pages left before the call.
        pages_before: u64,
        /// Pages left after it.
        pages_after: u64,
        /// GFN before the call.
        gfn_before: u64,
        /// GFN after it.
        gfn_after: u64,
    },
    /// `EAGAIN` / `EINTR` did not stop.
    #[error("{context}: still interrupted after {retries} retries")]
    TooManyRetries {
        /// The command and the range still to do.
        context: CommandContext,
        /// Retries made.
        retries: u32,
    },
    /// Marking memory private failed.
    #[error("KVM_SET_MEMORY_ATTRIBUTES(PRIVATE) [{gpa:#x}, +{size:#x}): {errno}")]
    SetPrivate {
        /// First GPA.
        gpa: u64,
        /// Bytes.
        size: u64,
        /// The errno.
        errno: Errno,
    },
}

impl SevError {
    /// The errno, when the kernel (or the model, as the kernel) gave one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            SevError::Failed { errno, .. }
            | SevError::CpuidRejected { errno, .. }
            | SevError::VmsaPageTypeUnsupported { errno, .. }
            | SevError::ModelRejected { errno, .. }
            | SevError::SetPrivate { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// The firmware status, when one was reported.
    pub fn firmware(&self) -> Option<FirmwareError> {
        match self {
            SevError::Failed { firmware, .. } | SevError::ModelRejected { firmware, .. } => {
                Some(*firmware)
            }
            SevError::CpuidRejected { .. } => Some(FirmwareError::InvalidParam),
            _ => None,
        }
    }

    /// The model's reason, for [`SevError::ModelRejected`].
    pub fn model_rejection(&self) -> Option<&ModelRejection> {
        match self {
            SevError::ModelRejected { rejection, .. } => Some(rejection),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_command_range_type_errno_and_firmware() {
        let e = SevError::Failed {
            context: CommandContext::update(0x80e000, 1, PageType::Cpuid),
            errno: Errno::new(libc::EIO),
            firmware: FirmwareError::InvalidAddress,
            completed_pages: 2,
            ioctl_calls: 3,
        };
        assert_eq!(
            e.to_string(),
            format!(
                "SNP_LAUNCH_UPDATE of 1 CPUID page(s) [0x80e000, 0x80f000): {}, \
                 firmware status INVALID_ADDRESS (0x09) (2 page(s) done before, 3 call(s))",
                Errno::new(libc::EIO)
            )
        );
        let e = SevError::Failed {
            context: CommandContext::command(SevCommand::LaunchFinish),
            errno: Errno::new(libc::EIO),
            firmware: FirmwareError::BadMeasurement,
            completed_pages: 0,
            ioctl_calls: 1,
        };
        assert_eq!(
            e.to_string(),
            format!(
                "SNP_LAUNCH_FINISH: {}, firmware status BAD_MEASUREMENT (0x0b)",
                Errno::new(libc::EIO)
            )
        );
        assert_eq!(e.firmware(), Some(FirmwareError::BadMeasurement));
        assert_eq!(e.errno(), Some(Errno::new(libc::EIO)));
    }

    /// EIO with no firmware status on LAUNCH_UPDATE is KVM's refusal (the
    /// kernel maps every populate failure to EIO), and says so.
    #[test]
    fn an_update_kvm_refused_says_the_firmware_never_saw_it() {
        let failed = |command, errno| SevError::Failed {
            context: command,
            errno: Errno::new(errno),
            firmware: FirmwareError::Success,
            completed_pages: 0,
            ioctl_calls: 1,
        };
        let e = failed(
            CommandContext::update(0x1000, 1, PageType::Normal),
            libc::EIO,
        );
        assert!(
            e.to_string()
                .contains("KVM refused the pages before the firmware saw them"),
            "{e}"
        );
        for e in [
            failed(
                CommandContext::update(0x1000, 1, PageType::Normal),
                libc::EINVAL,
            ),
            failed(CommandContext::command(SevCommand::LaunchFinish), libc::EIO),
        ] {
            assert!(!e.to_string().contains("firmware status"), "{e}");
        }
    }
}

//! The LAUNCH_UPDATE loop shared by the KVM backend and the model: one
//! range is issued call after call until the kernel reports nothing left,
//! with `EAGAIN` / `EINTR` retried and a rejected CPUID page diffed.
//!
//! KVM processes at most the part of the range inside one memslot per
//! call, stops early on a pending signal, and reports an error after at
//! least one page as partial success; each call writes the remaining
//! `gfn_start`, `uaddr` and `len` back.

use igvm_snp::PageType;
use vmm_sys_util::errno::Error as Errno;

use super::commands::{CpuidRetry, LaunchUpdate, PAGE_SIZE, UpdateReport};
use super::cpuid::CpuidDiff;
use super::error::{CommandContext, SevError};
use super::firmware_error::FirmwareError;
use super::model::ModelRejection;

/// Consecutive `EAGAIN` / `EINTR` results tolerated before giving up.
pub const MAX_TRANSIENT_RETRIES: u32 = 1000;

/// What one LAUNCH_UPDATE call is asked to do.
#[derive(Debug)]
pub(crate) struct CallRequest<'s> {
    /// First GFN.
    pub gfn: u64,
    /// Pages from `gfn`.
    pub pages: u64,
    /// The page type.
    pub page_type: PageType,
    /// The source of exactly these pages (None for ZERO).
    pub source: Option<&'s mut [u8]>,
}

/// The range a successful call left to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Remaining {
    /// Next GFN.
    pub gfn: u64,
    /// Pages left.
    pub pages: u64,
}

/// A failed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallFailure {
    /// The errno.
    pub errno: Errno,
    /// `kvm_sev_cmd.error`.
    pub firmware: FirmwareError,
    /// The model's reason (None from the real kernel).
    pub rejection: Option<Box<ModelRejection>>,
}

fn is_transient(f: &CallFailure) -> bool {
    f.rejection.is_none() && matches!(f.errno.errno(), libc::EAGAIN | libc::EINTR)
}

/// The first page whose bytes changed, diffed as a CPUID page.
fn cpuid_diff(first_gpa: u64, before: &[u8], after: &[u8]) -> CpuidDiff {
    let page = PAGE_SIZE as usize;
    let index = before
        .chunks(page)
        .zip(after.chunks(page))
        .position(|(a, b)| a != b)
        .unwrap_or(0);
    let gpa = first_gpa.saturating_add((index as u64).saturating_mul(PAGE_SIZE));
    let range = |s: &[u8]| s.get(index * page..).unwrap_or_default().to_vec();
    CpuidDiff::between(gpa, &range(before), &range(after)).unwrap_or(CpuidDiff {
        gpa,
        provided_count: 0,
        expected_count: 0,
        mismatches: Vec::new(),
    })
}

/// Runs `update` to completion through `call`, one LAUNCH_UPDATE per
/// invocation. `vmsa_probe`: an `EINVAL` on a VMSA page means the page
/// type is unsupported (the caller has not yet seen one accepted).
pub(crate) fn run_update<F>(
    update: &mut LaunchUpdate<'_>,
    vmsa_probe: bool,
    mut call: F,
) -> Result<UpdateReport, SevError>
where
    F: FnMut(CallRequest<'_>) -> Result<Remaining, CallFailure>,
{
    let page_type = update.page_type();
    let start_gfn = update.gpa() / PAGE_SIZE;
    let total = update.pages();
    let retry_cpuid = update.cpuid_retry_choice() == CpuidRetry::OnceWithCorrection;
    let mut report = UpdateReport::default();
    let mut done = 0u64;
    let mut consecutive = 0u32;
    let mut cpuid_retried = false;
    while done < total {
        let left = total - done;
        let gfn = start_gfn + done;
        let context = CommandContext::update(gfn * PAGE_SIZE, left, page_type);
        // `source` holds exactly `total` pages in a usize, so this fits.
        let offset = usize::try_from(done * PAGE_SIZE).unwrap_or(usize::MAX);
        let mut source = update
            .source_mut()
            .map(|s| s.get_mut(offset..).unwrap_or_default());
        let before = match (&source, page_type) {
            (Some(s), PageType::Cpuid) => Some(s.to_vec()),
            _ => None,
        };
        report.ioctl_calls = report.ioctl_calls.saturating_add(1);
        let request = CallRequest {
            gfn,
            pages: left,
            page_type,
            source: source.as_deref_mut(),
        };
        let failure = match call(request) {
            Ok(rem) => {
                let processed = left.saturating_sub(rem.pages);
                if rem.pages >= left || rem.gfn != gfn + processed {
                    return Err(SevError::BadProgress {
                        context,
                        pages_before: left,
                        pages_after: rem.pages,
                        gfn_before: gfn,
                        gfn_after: rem.gfn,
                    });
                }
                consecutive = 0;
                done += processed;
                continue;
            }
            Err(f) => f,
        };
        if is_transient(&failure) {
            consecutive += 1;
            report.transient_retries = report.transient_retries.saturating_add(1);
            if consecutive > MAX_TRANSIENT_RETRIES {
                return Err(SevError::TooManyRetries {
                    context,
                    retries: MAX_TRANSIENT_RETRIES,
                });
            }
            continue;
        }
        let CallFailure {
            errno,
            firmware,
            rejection,
        } = failure;
        if let (Some(before), Some(after)) = (&before, source.as_deref()) {
            if errno.errno() == libc::EIO && firmware == FirmwareError::InvalidParam {
                let diff = cpuid_diff(gfn * PAGE_SIZE, before, after);
                if retry_cpuid && !cpuid_retried {
                    cpuid_retried = true;
                    report.cpuid_corrected = Some(diff);
                    continue;
                }
                return Err(SevError::CpuidRejected {
                    context,
                    errno,
                    diff,
                    retried: cpuid_retried,
                });
            }
        }
        let unsupported_vmsa = match &rejection {
            Some(r) => **r == ModelRejection::VmsaPageTypeUnsupported,
            None => vmsa_probe && errno.errno() == libc::EINVAL,
        };
        if page_type == PageType::Vmsa && unsupported_vmsa {
            return Err(SevError::VmsaPageTypeUnsupported { context, errno });
        }
        return Err(match rejection {
            Some(rejection) => SevError::ModelRejected {
                context,
                errno,
                firmware,
                rejection,
            },
            None => SevError::Failed {
                context,
                errno,
                firmware,
                completed_pages: done,
                ioctl_calls: report.ioctl_calls,
            },
        });
    }
    report.pages = total;
    Ok(report)
}

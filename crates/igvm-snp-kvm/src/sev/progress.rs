//! The LAUNCH_UPDATE loop shared by the KVM backend and the model: one
//! range is issued call after call until the kernel reports nothing left,
//! with `EAGAIN` / `EINTR` retried (as the uAPI documentation describes;
//! the kernels read so far turn every populate failure, a pending signal
//! included, into `EIO`) and a rejected CPUID page diffed.
//!
//! KVM processes at most the part of the range inside one memslot per
//! call, stops early on a pending signal, and reports an error after at
//! least one page as partial success; each call writes the remaining
//! `gfn_start`, `uaddr` and `len` back.

use igvm_snp::PageType;
use vm_memory::VolatileSlice;
use vm_memory::bitmap::BitmapSlice;
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
pub(crate) struct CallRequest<'s, B = ()> {
    /// First GFN.
    pub gfn: u64,
    /// Pages from `gfn`.
    pub pages: u64,
    /// The page type.
    pub page_type: PageType,
    /// The source of exactly these pages (None for ZERO).
    pub source: Option<VolatileSlice<'s, B>>,
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

/// A copy of the bytes of `s`.
fn to_vec<B: BitmapSlice>(s: &VolatileSlice<'_, B>) -> Vec<u8> {
    let mut v = vec![0u8; s.len()];
    s.copy_to(&mut v[..]);
    v
}

/// Runs `update` to completion through `call`, one LAUNCH_UPDATE per
/// invocation. `vmsa_probe`: an `EINVAL` on a VMSA page means the page
/// type is unsupported (the caller has not yet seen one accepted).
pub(crate) fn run_update<B: BitmapSlice, F>(
    update: &mut LaunchUpdate<'_, B>,
    vmsa_probe: bool,
    mut call: F,
) -> Result<UpdateReport, SevError>
where
    F: FnMut(CallRequest<'_, B>) -> Result<Remaining, CallFailure>,
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
        // CPUID pages go one per call: when the firmware refuses page i > 0
        // of a call, KVM writes the corrected table into its source, stops
        // there and reports the pages before it as partial success, so the
        // next call would launch the corrected page without an error. One
        // page per call makes every refusal the call's own error.
        let left = if page_type == PageType::Cpuid {
            1
        } else {
            total - done
        };
        let gfn = start_gfn + done;
        let context = CommandContext::update(gfn * PAGE_SIZE, left, page_type);
        // `source` holds exactly `total` pages in a usize, so these fit.
        let offset = usize::try_from(done * PAGE_SIZE).unwrap_or(usize::MAX);
        let len = usize::try_from(left * PAGE_SIZE).unwrap_or(usize::MAX);
        let source = match update.source() {
            Some(s) => Some(s.subslice(offset, len).map_err(|_| SevError::BadProgress {
                context,
                pages_before: total,
                pages_after: left,
                gfn_before: start_gfn,
                gfn_after: gfn,
            })?),
            None => None,
        };
        let before = match (&source, page_type) {
            (Some(s), PageType::Cpuid) => Some(to_vec(s)),
            _ => None,
        };
        report.ioctl_calls = report.ioctl_calls.saturating_add(1);
        let request = CallRequest {
            gfn,
            pages: left,
            page_type,
            source: source.clone(),
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
        if let (Some(before), Some(after)) = (&before, source) {
            if errno.errno() == libc::EIO && firmware == FirmwareError::InvalidParam {
                let diff = cpuid_diff(gfn * PAGE_SIZE, before, &to_vec(&after));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(errno: i32, firmware: FirmwareError) -> CallFailure {
        CallFailure {
            errno: Errno::new(errno),
            firmware,
            rejection: None,
        }
    }

    /// One recorded call: gfn, pages, (first source byte, source length).
    type Call = (u64, u64, Option<(u8, usize)>);

    /// A kernel that does at most `per_call` pages, recording each call.
    fn chunked(
        per_call: u64,
        calls: &mut Vec<Call>,
    ) -> impl FnMut(CallRequest<'_>) -> Result<Remaining, CallFailure> + '_ {
        move |req| {
            calls.push((
                req.gfn,
                req.pages,
                req.source.map(|s| (to_vec(&s)[0], s.len())),
            ));
            let n = req.pages.min(per_call);
            Ok(Remaining {
                gfn: req.gfn + n,
                pages: req.pages - n,
            })
        }
    }

    #[test]
    fn each_call_gets_the_remaining_range_and_source() {
        let mut data: Vec<u8> = (0..5 * 4096).map(|i| (i / 4096) as u8).collect();
        let mut u = LaunchUpdate::with_source(0x10000, PageType::Normal, &mut data[..]).unwrap();
        let mut calls = Vec::new();
        let report = run_update(&mut u, false, chunked(2, &mut calls)).unwrap();
        assert_eq!((report.pages, report.ioctl_calls), (5, 3));
        assert_eq!(
            calls,
            vec![
                (0x10, 5, Some((0, 5 * 4096))),
                (0x12, 3, Some((2, 3 * 4096))),
                (0x14, 1, Some((4, 4096))),
            ]
        );
        let mut u = LaunchUpdate::zero(0x10000, 3).unwrap();
        let mut calls = Vec::new();
        run_update(&mut u, false, chunked(5, &mut calls)).unwrap();
        assert_eq!(calls, vec![(0x10, 3, None)]);
    }

    #[test]
    fn no_or_inconsistent_progress_is_an_error() {
        let context = CommandContext::update(0x10000, 2, PageType::Zero);
        let mut u = LaunchUpdate::zero(0x10000, 2).unwrap();
        let e = run_update(&mut u, false, |r| {
            Ok(Remaining {
                gfn: r.gfn,
                pages: r.pages,
            })
        })
        .unwrap_err();
        assert_eq!(
            e,
            SevError::BadProgress {
                context,
                pages_before: 2,
                pages_after: 2,
                gfn_before: 0x10,
                gfn_after: 0x10
            }
        );
        let e = run_update(&mut u, false, |r| {
            Ok(Remaining {
                gfn: r.gfn + 2,
                pages: r.pages - 1,
            })
        })
        .unwrap_err();
        assert!(matches!(
            e,
            SevError::BadProgress {
                gfn_after: 0x12,
                pages_after: 1,
                ..
            }
        ));
    }

    #[test]
    fn eintr_is_retried_other_errors_are_not() {
        let mut u = LaunchUpdate::zero(0x10000, 1).unwrap();
        let mut n = 0;
        let report = run_update(&mut u, false, |r| {
            n += 1;
            if n == 1 {
                return Err(fail(libc::EINTR, FirmwareError::Success));
            }
            Ok(Remaining {
                gfn: r.gfn + 1,
                pages: 0,
            })
        })
        .unwrap();
        assert_eq!((report.ioctl_calls, report.transient_retries), (2, 1));

        let e = run_update(&mut u, false, |_| {
            Err(fail(libc::EIO, FirmwareError::InvalidPageState))
        })
        .unwrap_err();
        assert_eq!(e.firmware(), Some(FirmwareError::InvalidPageState));
        assert!(matches!(
            e,
            SevError::Failed {
                ioctl_calls: 1,
                completed_pages: 0,
                ..
            }
        ));
    }

    #[test]
    fn einval_on_a_vmsa_page_means_unsupported_only_while_probing() {
        let mut page = vec![0u8; 4096];
        let mut u = LaunchUpdate::with_source(0x5000, PageType::Vmsa, &mut page[..]).unwrap();
        let e = run_update(&mut u, true, |_| {
            Err(fail(libc::EINVAL, FirmwareError::Success))
        })
        .unwrap_err();
        assert!(matches!(e, SevError::VmsaPageTypeUnsupported { .. }), "{e}");
        let e = run_update(&mut u, false, |_| {
            Err(fail(libc::EINVAL, FirmwareError::Success))
        })
        .unwrap_err();
        assert!(matches!(e, SevError::Failed { .. }), "{e}");
        let mut normal = vec![0u8; 4096];
        let mut u = LaunchUpdate::with_source(0x5000, PageType::Normal, &mut normal[..]).unwrap();
        let e = run_update(&mut u, true, |_| {
            Err(fail(libc::EINVAL, FirmwareError::Success))
        })
        .unwrap_err();
        assert!(matches!(e, SevError::Failed { .. }), "{e}");
    }

    #[test]
    fn cpuid_rejection_diffs_what_the_kernel_wrote_back() {
        let mut page = vec![0u8; 4096];
        page[0] = 1; // count
        page[16] = 7; // entries[0].eax_in
        let mut u = LaunchUpdate::with_source(0x80e000, PageType::Cpuid, &mut page[..]).unwrap();
        let e = run_update(&mut u, false, |r| {
            if let Some(s) = r.source {
                s.subslice(16 + 28, 1).unwrap().copy_from(&[0xffu8]); // entries[0].ebx
            }
            Err(fail(libc::EIO, FirmwareError::InvalidParam))
        })
        .unwrap_err();
        let SevError::CpuidRejected { diff, retried, .. } = e else {
            panic!("{e}");
        };
        assert!(!retried);
        assert_eq!(diff.mismatches.len(), 1);
        assert_eq!(
            (
                diff.mismatches[0].provided.ebx,
                diff.mismatches[0].expected.ebx
            ),
            (0, 0xff)
        );
        assert_eq!(to_vec(&u.source().unwrap())[16 + 28], 0xff);
        // EIO with another status on a CPUID page is a plain failure.
        let e = run_update(&mut u, false, |_| {
            Err(fail(libc::EIO, FirmwareError::InvalidAddress))
        })
        .unwrap_err();
        assert!(matches!(e, SevError::Failed { .. }), "{e}");
    }

    /// KVM as `kvm_gmem_populate` and `sev_gmem_post_populate` behave: the
    /// pages of a call are launched in order; a CPUID page the firmware
    /// refuses gets the corrected table written into its source, and the
    /// call fails only if it was the call's first page, else reports the
    /// pages before it as done. A refused second page must still be an
    /// error, and the corrected page must not be launched.
    #[test]
    fn a_refused_cpuid_page_after_the_first_is_an_error() {
        const BAD: u8 = 0xBA;
        let mut pages = vec![0u8; 3 * 4096];
        for p in pages.chunks_mut(4096) {
            p[0] = 1; // count
        }
        pages[4096 + 16 + 28] = BAD; // page 1, entries[0].ebx
        let mut launched = Vec::new();
        let mut u = LaunchUpdate::with_source(0x80_0000, PageType::Cpuid, &mut pages[..]).unwrap();
        let e = run_update(&mut u, false, |r| {
            let source = r.source.unwrap();
            for i in 0..r.pages {
                let page = source.offset(i as usize * 4096).unwrap();
                let ebx = page.subslice(16 + 28, 1).unwrap();
                if to_vec(&ebx)[0] == BAD {
                    ebx.copy_from(&[0x11u8]);
                    if i == 0 {
                        return Err(fail(libc::EIO, FirmwareError::InvalidParam));
                    }
                    return Ok(Remaining {
                        gfn: r.gfn + i,
                        pages: r.pages - i,
                    });
                }
                launched.push(r.gfn + i);
            }
            Ok(Remaining {
                gfn: r.gfn + r.pages,
                pages: 0,
            })
        })
        .unwrap_err();
        let SevError::CpuidRejected { diff, .. } = e else {
            panic!("{e}");
        };
        assert_eq!(diff.gpa, 0x80_1000);
        assert_eq!(launched, [0x800], "only the page before the refused one");
    }
}

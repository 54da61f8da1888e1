//! No GPA may be imported twice for SEV-SNP: the firmware refuses a second
//! LAUNCH_UPDATE of an assigned page, and shared pages or error ranges over
//! launched pages would silently replace measured contents. Checked over
//! whole steps (sorted intervals), so the cost follows the number of steps,
//! not pages; the offending directives are found only on failure.

use super::classify::classify;
use super::options::PlanOptions;
use super::{HostVisibleRange, LaunchStep, SharedRun, StepSource};
use crate::digest::PAGE_SIZE;
use crate::error::{Error, HeaderRef, Result};
use crate::parse::{DirectiveKind, IgvmFile};

const PAGE: u64 = PAGE_SIZE as u64;

#[derive(Clone, Copy)]
enum Owner {
    Step(usize),
    Shared(usize),
    Host(usize),
}

pub(super) fn check(
    file: &IgvmFile<'_>,
    mask: u32,
    options: PlanOptions,
    steps: &[LaunchStep],
    shared: &[SharedRun],
    host: &[HostVisibleRange],
) -> Result<()> {
    let mut spans: Vec<(u64, u64, Owner)> =
        Vec::with_capacity(steps.len() + shared.len() + host.len());
    for (i, s) in steps.iter().enumerate() {
        spans.push((s.gpa, s.gpa + s.pages * PAGE, Owner::Step(i)));
    }
    for (i, s) in shared.iter().enumerate() {
        spans.push((s.gpa, s.gpa + s.pages * PAGE, Owner::Shared(i)));
    }
    for (i, h) in host.iter().enumerate() {
        spans.push((h.range.gpa, h.range.gpa + h.range.size, Owner::Host(i)));
    }
    spans.retain(|s| s.0 < s.1);
    spans.sort_by_key(|s| (s.0, s.1));
    let mut widest: Option<(u64, Owner)> = None;
    for &(start, end, owner) in &spans {
        if let Some((w_end, w_owner)) = widest {
            if start < w_end {
                let find = |o| importer(file, mask, options, steps, shared, host, o, start);
                let (a, b) = (find(w_owner), find(owner));
                // Report in file order.
                let (first, second) = if (a.section as u8, a.index) <= (b.section as u8, b.index) {
                    (a, b)
                } else {
                    (b, a)
                };
                return Err(Error::GpaOverlap {
                    gpa: start,
                    first,
                    second,
                });
            }
        }
        if widest.is_none_or(|(w_end, _)| end > w_end) {
            widest = Some((end, owner));
        }
    }
    Ok(())
}

/// The directive of `owner` that imports `gpa`.
#[allow(clippy::too_many_arguments)]
fn importer(
    file: &IgvmFile<'_>,
    mask: u32,
    options: PlanOptions,
    steps: &[LaunchStep],
    shared: &[SharedRun],
    host: &[HostVisibleRange],
    owner: Owner,
    gpa: u64,
) -> HeaderRef {
    let range = match owner {
        Owner::Host(i) => return host[i].at,
        Owner::Step(i) if steps[i].source != StepSource::PageData => {
            return file.directives()[steps[i].directives.start].at;
        }
        Owner::Step(i) => steps[i].directives.clone(),
        Owner::Shared(i) => shared[i].directives.clone(),
    };
    let dirs = &file.directives()[range.clone()];
    dirs.iter()
        .find(|d| {
            let (Some((_, pages)), DirectiveKind::PageData { header, .. }) =
                (classify(d, mask, options), &d.kind)
            else {
                return false;
            };
            header.gpa <= gpa && gpa < header.gpa + pages * PAGE
        })
        .map_or(file.directives()[range.start].at, |d| d.at)
}

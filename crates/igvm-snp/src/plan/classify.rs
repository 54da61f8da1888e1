//! How one `PAGE_DATA` directive is launched on SEV-SNP. Both the planner
//! and the page iterators use this one function, so what is planned and what
//! is loaded and measured cannot disagree.

use igvm_defs::IgvmPageDataType;

use super::options::{PlanOptions, SharedPages, ZeroPages};
use crate::page_type::PageType;
use crate::parse::{Directive, DirectiveKind};

/// Where a page goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageClass {
    /// Launched with SNP_LAUNCH_UPDATE as this type.
    Launch(PageType),
    /// Loaded into host-visible memory, not launched.
    Shared,
}

/// The class and page count of a `PAGE_DATA` directive that applies to the
/// SEV-SNP mask; `None` for any other directive.
pub(crate) fn classify(
    d: &Directive<'_>,
    mask: u32,
    options: PlanOptions,
) -> Option<(PageClass, u64)> {
    let DirectiveKind::PageData { header, data } = &d.kind else {
        return None;
    };
    if header.compatibility_mask & mask == 0 {
        return None;
    }
    let pages = if header.flags.is_2mb_page() { 512 } else { 1 };
    let flags = header.flags;
    let class = match header.data_type {
        IgvmPageDataType::SECRETS => PageClass::Launch(PageType::Secrets),
        IgvmPageDataType::CPUID_DATA | IgvmPageDataType::CPUID_XF => {
            PageClass::Launch(PageType::Cpuid)
        }
        _ => {
            if flags.shared() && options.shared_pages == SharedPages::HostVisible {
                PageClass::Shared
            } else if flags.unmeasured() {
                PageClass::Launch(PageType::Unmeasured)
            } else if data.is_empty() && options.zero_pages == ZeroPages::NativeZero {
                PageClass::Launch(PageType::Zero)
            } else {
                PageClass::Launch(PageType::Normal)
            }
        }
    };
    Some((class, pages))
}

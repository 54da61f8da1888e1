//! The model's CPUID page check: the firmware compares each entry with what
//! the CPU allows and, on a mismatch, writes the values it expects into the
//! page and fails with `INVALID_PARAM`. The model's "CPU" is a list of
//! expected entries given by the test; entries are matched by function and
//! index, and all four output registers must be equal (the real firmware
//! checks per-leaf bit policies, which the model does not reproduce).

use zerocopy::IntoBytes;

use super::super::cpuid::{CPUID_MAX_ENTRIES, CpuidFunction, SnpCpuidInfo};

/// The verdict on a CPUID page.
#[derive(Debug)]
pub(crate) enum CpuidVerdict {
    /// Accepted.
    Valid,
    /// Rejected; the corrected table to write back, if any.
    Invalid(Option<Box<SnpCpuidInfo>>),
}

/// Checks `page` against `expected`.
pub(crate) fn check_cpuid_page(page: &[u8], expected: &[CpuidFunction]) -> CpuidVerdict {
    let Some(table) = SnpCpuidInfo::from_page(page) else {
        return CpuidVerdict::Invalid(None);
    };
    if usize::try_from(table.count).map_or(true, |n| n > CPUID_MAX_ENTRIES) {
        return CpuidVerdict::Invalid(None);
    }
    let mut corrected = Box::new(table);
    let mut changed = false;
    for entry in corrected
        .entries
        .iter_mut()
        .take(table.valid_entries().len())
    {
        let want = expected
            .iter()
            .find(|e| (e.eax_in, e.ecx_in) == (entry.eax_in, entry.ecx_in));
        if let Some(want) = want {
            if want.registers() != entry.registers() {
                entry.eax = want.eax;
                entry.ebx = want.ebx;
                entry.ecx = want.ecx;
                entry.edx = want.edx;
                changed = true;
            }
        }
    }
    if changed {
        CpuidVerdict::Invalid(Some(corrected))
    } else {
        CpuidVerdict::Valid
    }
}

/// Writes a corrected table over the start of `page`.
pub(crate) fn write_back(page: &mut [u8], table: &SnpCpuidInfo) {
    let bytes = table.as_bytes();
    if let Some(dst) = page.get_mut(..bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

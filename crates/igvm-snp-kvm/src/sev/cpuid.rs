//! The SEV-SNP CPUID page (`SNP_CPUID_INFO`) and the entry-by-entry diff
//! between a submitted page and the copy the firmware wrote back after
//! rejecting it.
//!
//! Layout (QEMU `SnpCpuidInfo`, packed, but naturally aligned so `repr(C)`
//! has no padding): `count u32, reserved u32, reserved u64`, then 64
//! entries of 48 bytes `{eax_in u32, ecx_in u32, xcr0_in u64, xss_in u64,
//! eax, ebx, ecx, edx u32, reserved u64}`. The rest of the 4 KiB page is
//! zero.
//!
//! When SNP_LAUNCH_UPDATE of a CPUID page fails with firmware status
//! `INVALID_PARAM` (0x16), KVM copies the page the firmware corrected back
//! into the caller's source buffer; [`CpuidDiff::between`] compares the two.

use std::fmt;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Entries a CPUID page holds.
pub const CPUID_MAX_ENTRIES: usize = 64;

/// One CPUID function entry of the SNP CPUID page (48 bytes).
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct CpuidFunction {
    /// Input EAX: the CPUID function (leaf).
    pub eax_in: u32,
    /// Input ECX: the index (sub-leaf).
    pub ecx_in: u32,
    /// Input XCR0 (for leaf 0xD).
    pub xcr0_in: u64,
    /// Input XSS (for leaf 0xD).
    pub xss_in: u64,
    /// Output EAX.
    pub eax: u32,
    /// Output EBX.
    pub ebx: u32,
    /// Output ECX.
    pub ecx: u32,
    /// Output EDX.
    pub edx: u32,
    /// Reserved, zero.
    pub reserved: u64,
}

impl CpuidFunction {
    /// The four output registers `[eax, ebx, ecx, edx]`.
    pub fn registers(&self) -> [u32; 4] {
        [self.eax, self.ebx, self.ecx, self.edx]
    }
}

/// The SNP CPUID page header and entries (3088 bytes at the start of the
/// page).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SnpCpuidInfo {
    /// Number of valid entries (at most 64).
    pub count: u32,
    /// Reserved.
    pub reserved1: u32,
    /// Reserved.
    pub reserved2: u64,
    /// The entries; only the first `count` are meaningful.
    pub entries: [CpuidFunction; CPUID_MAX_ENTRIES],
}

impl SnpCpuidInfo {
    /// Reads the table from the start of a page; `None` when `page` is
    /// shorter than the table.
    pub fn from_page(page: &[u8]) -> Option<Self> {
        SnpCpuidInfo::read_from_prefix(page).ok().map(|(t, _)| t)
    }

    /// The valid entries (`count` clamped to 64).
    pub fn valid_entries(&self) -> &[CpuidFunction] {
        let n = usize::try_from(self.count)
            .unwrap_or(usize::MAX)
            .min(CPUID_MAX_ENTRIES);
        &self.entries[..n]
    }
}

/// One entry the firmware changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuidMismatch {
    /// Position of the entry in the table.
    pub slot: usize,
    /// The entry as submitted.
    pub provided: CpuidFunction,
    /// The entry as the firmware expects it.
    pub expected: CpuidFunction,
}

impl fmt::Display for CpuidMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (p, e) = (&self.provided, &self.expected);
        write!(
            f,
            "function {:#x} index {:#x}: provided eax={:#010x} ebx={:#010x} ecx={:#010x} edx={:#010x}, \
             expected eax={:#010x} ebx={:#010x} ecx={:#010x} edx={:#010x}",
            p.eax_in, p.ecx_in, p.eax, p.ebx, p.ecx, p.edx, e.eax, e.ebx, e.ecx, e.edx
        )?;
        if (p.eax_in, p.ecx_in, p.xcr0_in, p.xss_in) != (e.eax_in, e.ecx_in, e.xcr0_in, e.xss_in) {
            write!(
                f,
                " (expected inputs function {:#x} index {:#x} xcr0 {:#x} xss {:#x})",
                e.eax_in, e.ecx_in, e.xcr0_in, e.xss_in
            )?;
        }
        Ok(())
    }
}

/// The differences between a submitted CPUID page and the firmware's
/// corrected copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuidDiff {
    /// GPA of the page.
    pub gpa: u64,
    /// `count` as submitted.
    pub provided_count: u32,
    /// `count` as the firmware wrote it back.
    pub expected_count: u32,
    /// The entries that differ, in table order.
    pub mismatches: Vec<CpuidMismatch>,
}

impl CpuidDiff {
    /// Compares the table at the start of `provided` with the one at the
    /// start of `expected`, slot by slot over the larger of the two counts
    /// (clamped to 64). `None` when either slice is shorter than the
    /// table.
    pub fn between(gpa: u64, provided: &[u8], expected: &[u8]) -> Option<Self> {
        let p = SnpCpuidInfo::from_page(provided)?;
        let e = SnpCpuidInfo::from_page(expected)?;
        let n = p.valid_entries().len().max(e.valid_entries().len());
        let mismatches = p
            .entries
            .iter()
            .zip(e.entries.iter())
            .take(n)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(slot, (a, b))| CpuidMismatch {
                slot,
                provided: *a,
                expected: *b,
            })
            .collect();
        Some(CpuidDiff {
            gpa,
            provided_count: p.count,
            expected_count: e.count,
            mismatches,
        })
    }

    /// Whether the firmware changed nothing it reports (no entry and the
    /// same count).
    pub fn is_empty(&self) -> bool {
        self.mismatches.is_empty() && self.provided_count == self.expected_count
    }
}

impl fmt::Display for CpuidDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CPUID page at {:#x}", self.gpa)?;
        if self.provided_count != self.expected_count {
            write!(
                f,
                "; count provided {} expected {}",
                self.provided_count, self.expected_count
            )?;
        }
        if self.mismatches.is_empty() {
            return write!(f, "; no entry differs");
        }
        for m in &self.mismatches {
            write!(f, "; {m}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn layout_is_pinned() {
        assert_eq!(size_of::<CpuidFunction>(), 48);
        assert_eq!(offset_of!(CpuidFunction, eax_in), 0);
        assert_eq!(offset_of!(CpuidFunction, ecx_in), 4);
        assert_eq!(offset_of!(CpuidFunction, xcr0_in), 8);
        assert_eq!(offset_of!(CpuidFunction, xss_in), 16);
        assert_eq!(offset_of!(CpuidFunction, eax), 24);
        assert_eq!(offset_of!(CpuidFunction, ebx), 28);
        assert_eq!(offset_of!(CpuidFunction, ecx), 32);
        assert_eq!(offset_of!(CpuidFunction, edx), 36);
        assert_eq!(offset_of!(CpuidFunction, reserved), 40);
        assert_eq!(offset_of!(SnpCpuidInfo, count), 0);
        assert_eq!(offset_of!(SnpCpuidInfo, reserved1), 4);
        assert_eq!(offset_of!(SnpCpuidInfo, reserved2), 8);
        assert_eq!(offset_of!(SnpCpuidInfo, entries), 16);
        assert_eq!(size_of::<SnpCpuidInfo>(), 16 + 64 * 48);
    }

    #[test]
    fn bytes_land_where_the_firmware_reads_them() {
        let mut page = vec![0u8; 4096];
        page[0] = 2; // count
        page[16..20].copy_from_slice(&0x8000_001du32.to_le_bytes()); // entries[0].eax_in
        page[16 + 4..16 + 8].copy_from_slice(&3u32.to_le_bytes()); // ecx_in
        page[16 + 36..16 + 40].copy_from_slice(&6u32.to_le_bytes()); // edx
        let t = SnpCpuidInfo::from_page(&page).unwrap();
        assert_eq!(t.count, 2);
        assert_eq!(t.entries[0].eax_in, 0x8000_001d);
        assert_eq!(t.entries[0].ecx_in, 3);
        assert_eq!(t.entries[0].edx, 6);
        assert_eq!(t.valid_entries().len(), 2);
    }

    #[test]
    fn count_is_clamped_and_short_pages_rejected() {
        let mut page = vec![0u8; 4096];
        page[..4].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(
            SnpCpuidInfo::from_page(&page)
                .unwrap()
                .valid_entries()
                .len(),
            64
        );
        assert!(SnpCpuidInfo::from_page(&page[..3000]).is_none());
        assert!(CpuidDiff::between(0, &page, &page[..100]).is_none());
    }

    #[test]
    fn diff_names_function_index_and_registers() {
        let mut provided = vec![0u8; 4096];
        provided[..4].copy_from_slice(&2u32.to_le_bytes());
        let mut expected = provided.clone();
        // entries[1] = leaf 0x8000001d index 3: edx provided 6, expected 2.
        for page in [&mut provided, &mut expected] {
            let base = 16 + 48;
            page[base..base + 4].copy_from_slice(&0x8000_001du32.to_le_bytes());
            page[base + 4..base + 8].copy_from_slice(&3u32.to_le_bytes());
        }
        let base = 16 + 48 + 36;
        provided[base..base + 4].copy_from_slice(&6u32.to_le_bytes());
        expected[base..base + 4].copy_from_slice(&2u32.to_le_bytes());
        let d = CpuidDiff::between(0x80e000, &provided, &expected).unwrap();
        assert_eq!(d.mismatches.len(), 1);
        let m = d.mismatches[0];
        assert_eq!(
            (m.slot, m.provided.eax_in, m.provided.ecx_in),
            (1, 0x8000_001d, 3)
        );
        assert_eq!((m.provided.edx, m.expected.edx), (6, 2));
        let text = d.to_string();
        assert!(text.contains("function 0x8000001d index 0x3"), "{text}");
        assert!(text.contains("edx=0x00000006"), "{text}");
        assert!(text.contains("edx=0x00000002"), "{text}");
        assert!(!d.is_empty());
        assert!(
            CpuidDiff::between(0, &provided, &provided)
                .unwrap()
                .is_empty()
        );
    }
}

//! Parameter areas and the values the loader writes into them.
//!
//! An area is kept as its initial file data (borrowed) plus its list of
//! writes; pages are materialized only when loaded, so a large area costs
//! nothing until it is written to guest memory. Every write of one kind
//! shares one copy of its value, and the bytes each write leaves visible
//! (later writes win) are worked out once per plan, so rendering an area
//! costs its pages plus its writes, however many writes overlap.

use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Included};
use std::sync::Arc;

use igvm_defs::{IGVM_VHS_MEMORY_MAP_ENTRY, IGVM_VHS_PARAMETER, MemoryMapEntryType};
use serde::Serialize;
use zerocopy::IntoBytes;

use crate::config::{GpaRange, LaunchConfig};
use crate::digest::PAGE_SIZE;
use crate::error::{Error, HeaderRef, Result};
use crate::parse::ParameterKind;

/// One value written into a parameter area.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParameterWrite {
    /// The parameter directive.
    pub directive: HeaderRef,
    /// Which parameter.
    pub kind: ParameterKind,
    /// Offset in the area.
    pub offset: u64,
    /// The bytes (one copy shared by every write of this kind in a plan).
    #[serde(skip)]
    pub bytes: Arc<[u8]>,
}

/// A parameter directive the configuration had no value for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnfilledParameter {
    /// The parameter directive.
    pub directive: HeaderRef,
    /// Which parameter.
    pub kind: ParameterKind,
    /// Area index.
    pub area_index: u32,
}

/// A parameter area with its contents.
#[derive(Debug, Clone, Serialize)]
pub struct ParameterArea<'a> {
    /// The `PARAMETER_AREA` directive.
    pub declared: HeaderRef,
    /// Area index.
    pub index: u32,
    /// Size in bytes (a multiple of 4 KiB).
    pub size: u64,
    /// Initial contents from the file (empty: zeros).
    #[serde(skip)]
    pub initial: &'a [u8],
    /// Values written by parameter directives, in directive order.
    writes: Vec<ParameterWrite>,
    /// GPA and directive of the insert, if inserted for SEV-SNP.
    pub inserted_at: Option<(u64, HeaderRef)>,
    /// What the writes leave visible, sorted by offset and disjoint.
    #[serde(skip)]
    visible: Vec<Visible>,
}

/// Bytes `start..end` of an area come from write `write`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Visible {
    start: u64,
    end: u64,
    write: usize,
}

impl<'a> ParameterArea<'a> {
    /// An area with no writes yet.
    pub(crate) fn new(declared: HeaderRef, index: u32, size: u64, initial: &'a [u8]) -> Self {
        ParameterArea {
            declared,
            index,
            size,
            initial,
            writes: Vec::new(),
            inserted_at: None,
            visible: Vec::new(),
        }
    }

    /// Adds a write (within the area: see [`check_fits`]); [`Self::finish`]
    /// once all are in.
    pub(crate) fn push(&mut self, write: ParameterWrite) {
        self.writes.push(write);
    }

    /// Works out, once all writes are in, which write each written byte
    /// comes from: the last one covering it, as if written in order.
    /// Walks the writes from the last, keeping the ranges already covered
    /// (merged, so each range is merged away at most once): `O(n log n)`
    /// for `n` writes, at most `2n` visible pieces.
    pub(crate) fn finish(&mut self) {
        let mut covered: BTreeMap<u64, u64> = BTreeMap::new();
        let mut merged = Vec::new();
        let mut visible = Vec::new();
        for (i, w) in self.writes.iter().enumerate().rev() {
            let (a, b) = (w.offset, w.offset + w.bytes.len() as u64);
            if a == b {
                continue;
            }
            let (mut lo, mut hi, mut cursor) = (a, b, a);
            if let Some((&s, &e)) = covered.range(..=a).next_back() {
                if e >= a {
                    (lo, hi, cursor) = (s, hi.max(e), e.max(a));
                    merged.push(s);
                }
            }
            for (&s, &e) in covered.range((Excluded(a), Included(b))) {
                if s > cursor {
                    visible.push(Visible {
                        start: cursor,
                        end: s,
                        write: i,
                    });
                }
                cursor = cursor.max(e);
                hi = hi.max(e);
                merged.push(s);
            }
            if cursor < b {
                visible.push(Visible {
                    start: cursor,
                    end: b,
                    write: i,
                });
            }
            for s in merged.drain(..) {
                covered.remove(&s);
            }
            covered.insert(lo, hi);
        }
        visible.sort_unstable_by_key(|v| v.start);
        self.visible = visible;
    }
}

impl ParameterArea<'_> {
    /// Pages in the area.
    pub fn pages(&self) -> u64 {
        self.size / PAGE_SIZE as u64
    }

    /// Values written by parameter directives, in directive order.
    pub fn writes(&self) -> &[ParameterWrite] {
        &self.writes
    }

    /// Writes page `page` of the area into `out` (which must be 4096 bytes):
    /// the initial data, then what the writes leave visible on it.
    pub fn write_page(&self, page: u64, out: &mut [u8]) {
        let out = &mut out[..PAGE_SIZE];
        out.fill(0);
        let start = page.saturating_mul(PAGE_SIZE as u64);
        let end = start.saturating_add(PAGE_SIZE as u64);
        if let Ok(s) = usize::try_from(start) {
            if s < self.initial.len() {
                let e = s + (self.initial.len() - s).min(PAGE_SIZE);
                out[..e - s].copy_from_slice(&self.initial[s..e]);
            }
        }
        let first = self.visible.partition_point(|v| v.end <= start);
        for v in self.visible[first..].iter().take_while(|v| v.start < end) {
            let w = &self.writes[v.write];
            let (lo, hi) = (v.start.max(start), v.end.min(end));
            let src = &w.bytes[(lo - w.offset) as usize..(hi - w.offset) as usize];
            out[(lo - start) as usize..(hi - start) as usize].copy_from_slice(src);
        }
    }
}

/// The bytes a parameter of `kind` writes, or `None` when the configuration
/// has no value for it; `at` is the first directive of that kind, named in
/// errors. Computed once per kind and plan, and shared by its writes.
pub(crate) fn value(
    at: HeaderRef,
    kind: ParameterKind,
    config: &LaunchConfig,
    memory: &[GpaRange],
) -> Result<Option<Arc<[u8]>>> {
    let invalid = |reason| Error::InvalidParameterValue {
        at,
        kind: kind.name(),
        reason,
    };
    let bytes = match kind {
        ParameterKind::VpCount => Some(config.vcpu_count.to_le_bytes().to_vec()),
        ParameterKind::EnvironmentInfo => {
            Some(u32::from(config.memory_is_shared).to_le_bytes().to_vec())
        }
        ParameterKind::CommandLine => match &config.command_line {
            None => None,
            Some(s) => {
                if s.as_bytes().contains(&0) {
                    return Err(invalid("the command line contains a NUL byte"));
                }
                let mut v = s.as_bytes().to_vec();
                v.push(0);
                Some(v)
            }
        },
        ParameterKind::MemoryMap => {
            if memory.is_empty() {
                None
            } else {
                // Sorted entries of type MEMORY, then a zero terminator.
                let mut v = Vec::with_capacity((memory.len() + 1) * 24);
                for r in memory {
                    let e = IGVM_VHS_MEMORY_MAP_ENTRY {
                        starting_gpa_page_number: r.gpa / PAGE_SIZE as u64,
                        number_of_pages: r.size / PAGE_SIZE as u64,
                        entry_type: MemoryMapEntryType::MEMORY,
                        flags: 0,
                        reserved: 0,
                    };
                    v.extend_from_slice(e.as_bytes());
                }
                v.extend_from_slice(&[0; 24]);
                Some(v)
            }
        }
        ParameterKind::MmioRanges => {
            if config.mmio_ranges.is_empty() {
                None
            } else if config.mmio_ranges.len() > 2 {
                return Err(invalid("at most two MMIO ranges fit"));
            } else {
                let mut v = vec![0u8; 32];
                for (i, r) in config.mmio_ranges.iter().enumerate() {
                    if r.gpa % 4096 != 0 || r.size % 4096 != 0 {
                        return Err(invalid("MMIO ranges must be 4 KiB aligned"));
                    }
                    if r.size == 0 {
                        return Err(invalid("an MMIO range is empty"));
                    }
                    if r.end().is_none() {
                        return Err(invalid(
                            "an MMIO range runs past the end of the address space",
                        ));
                    }
                    v[i * 16..i * 16 + 8].copy_from_slice(&(r.gpa / 4096).to_le_bytes());
                    v[i * 16 + 8..i * 16 + 16].copy_from_slice(&(r.size / 4096).to_le_bytes());
                }
                Some(v)
            }
        }
        ParameterKind::Madt => config.madt.clone(),
        ParameterKind::Srat => config.srat.clone(),
        ParameterKind::Slit => config.slit.clone(),
        ParameterKind::Pptt => config.pptt.clone(),
        ParameterKind::DeviceTree => config.device_tree.clone(),
    };
    Ok(bytes.map(Arc::from))
}

/// Checks that `len` bytes written at the directive's offset fit its area.
pub(crate) fn check_fits(
    at: HeaderRef,
    kind: ParameterKind,
    header: &IGVM_VHS_PARAMETER,
    len: usize,
    area_size: u64,
) -> Result<()> {
    let end = u64::from(header.byte_offset) + len as u64;
    if end > area_size {
        return Err(Error::ParameterOutOfBounds {
            at,
            kind: kind.name(),
            index: header.parameter_area_index,
            byte_offset: header.byte_offset,
            len: len as u64,
            area_size,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Section;

    fn at(index: usize) -> HeaderRef {
        HeaderRef {
            section: Section::Directive,
            index,
            offset: 0,
        }
    }

    /// Every page of `area` as `write_page` renders it.
    fn rendered(area: &ParameterArea<'_>) -> Vec<u8> {
        let mut out = vec![0xEE; area.size as usize];
        for (page, chunk) in out.chunks_exact_mut(PAGE_SIZE).enumerate() {
            area.write_page(page as u64, chunk);
        }
        out
    }

    /// The area written as the spec describes it: initial data, then each
    /// write in directive order over the whole area.
    fn painted(size: usize, initial: &[u8], writes: &[(u64, Arc<[u8]>)]) -> Vec<u8> {
        let mut out = vec![0u8; size];
        out[..initial.len()].copy_from_slice(initial);
        for (offset, bytes) in writes {
            let o = *offset as usize;
            out[o..o + bytes.len()].copy_from_slice(bytes);
        }
        out
    }

    /// Random writes (overlapping, nested, adjacent, repeated, empty,
    /// across page boundaries) render as painting them in order does.
    #[test]
    fn pages_show_the_last_write_over_each_byte() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for round in 0..200u64 {
            let pages = 1 + next(4) as usize;
            let size = pages * PAGE_SIZE;
            let initial: Vec<u8> = (0..next(size as u64 + 1)).map(|i| i as u8 | 1).collect();
            let values: Vec<Arc<[u8]>> = (0..4u8)
                .map(|k| {
                    let len = [0, 1, 5, 4100][k as usize] as usize;
                    (0..len).map(|i| k.wrapping_mul(40) ^ i as u8).collect()
                })
                .collect();
            let mut area = ParameterArea::new(at(0), 0, size as u64, &initial);
            let mut writes = Vec::new();
            for i in 0..next(40) {
                let bytes = values[next(4) as usize].clone();
                if bytes.len() > size {
                    continue;
                }
                // Offsets cluster so that writes meet and overlap.
                let room = (size - bytes.len()) as u64;
                let offset = if next(2) == 0 {
                    next(room + 1)
                } else {
                    (next(8) * 3).min(room)
                };
                writes.push((offset, bytes.clone()));
                area.push(ParameterWrite {
                    directive: at(i as usize),
                    kind: ParameterKind::VpCount,
                    offset,
                    bytes,
                });
            }
            area.finish();
            assert_eq!(
                rendered(&area),
                painted(size, &initial, &writes),
                "round {round}: {:?}",
                writes
                    .iter()
                    .map(|(o, b)| (*o, b.len()))
                    .collect::<Vec<_>>()
            );
            // At most two visible pieces per write.
            assert!(area.visible.len() <= 2 * writes.len().max(1));
        }
    }

    /// Many writes of one value at one offset leave one visible piece:
    /// rendering does not depend on how often the file repeats a write.
    #[test]
    fn repeated_writes_leave_one_visible_piece() {
        let value: Arc<[u8]> = Arc::from(vec![7u8; 6000]);
        let mut area = ParameterArea::new(at(0), 0, 0x4000, &[]);
        for i in 0..10_000 {
            area.push(ParameterWrite {
                directive: at(i),
                kind: ParameterKind::Madt,
                offset: 0x100,
                bytes: value.clone(),
            });
        }
        area.finish();
        assert_eq!(
            area.visible,
            [Visible {
                start: 0x100,
                end: 0x100 + 6000,
                write: 9_999
            }]
        );
    }
}

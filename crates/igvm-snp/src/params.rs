//! Parameter areas and the values the loader writes into them.
//!
//! An area is kept as its initial file data (borrowed) plus a short list of
//! writes; pages are materialized only when loaded, so a large area costs
//! nothing until it is written to guest memory.

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
    /// The bytes.
    #[serde(skip)]
    pub bytes: Vec<u8>,
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
    pub writes: Vec<ParameterWrite>,
    /// GPA and directive of the insert, if inserted for SEV-SNP.
    pub inserted_at: Option<(u64, HeaderRef)>,
}

impl ParameterArea<'_> {
    /// Pages in the area.
    pub fn pages(&self) -> u64 {
        self.size / PAGE_SIZE as u64
    }

    /// Writes page `page` of the area into `out` (which must be 4096 bytes).
    pub fn write_page(&self, page: u64, out: &mut [u8]) {
        let out = &mut out[..PAGE_SIZE];
        out.fill(0);
        let start = page * PAGE_SIZE as u64;
        let end = start + PAGE_SIZE as u64;
        if (start as usize) < self.initial.len() {
            let s = start as usize;
            let e = (end as usize).min(self.initial.len());
            out[..e - s].copy_from_slice(&self.initial[s..e]);
        }
        for w in &self.writes {
            let w_end = w.offset + w.bytes.len() as u64;
            let lo = w.offset.max(start);
            let hi = w_end.min(end);
            if lo < hi {
                let src = &w.bytes[(lo - w.offset) as usize..(hi - w.offset) as usize];
                out[(lo - start) as usize..(hi - start) as usize].copy_from_slice(src);
            }
        }
    }
}

/// The bytes a parameter directive writes, or `None` when the configuration
/// has no value for it.
pub(crate) fn value(
    at: HeaderRef,
    kind: ParameterKind,
    config: &LaunchConfig,
    memory: &[GpaRange],
    area_size: u64,
    header: &IGVM_VHS_PARAMETER,
) -> Result<Option<Vec<u8>>> {
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
    if let Some(b) = &bytes {
        let end = u64::from(header.byte_offset) + b.len() as u64;
        if end > area_size {
            return Err(Error::ParameterOutOfBounds {
                at,
                kind: kind.name(),
                index: header.parameter_area_index,
                byte_offset: header.byte_offset,
                len: b.len() as u64,
                area_size,
            });
        }
    }
    Ok(bytes)
}

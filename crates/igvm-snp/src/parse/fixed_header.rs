//! The fixed header: magic, version, section bounds and the CRC-32.

use igvm_defs::{IGVM_FIXED_HEADER, IGVM_FIXED_HEADER_V2, IGVM_MAGIC_VALUE};
use serde::Serialize;
use zerocopy::FromBytes;

use crate::error::{Error, Result};

/// The format revision of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Revision {
    /// Version 1: 24-byte fixed header, x64, 4 KiB pages.
    V1,
    /// Version 2: 32-byte fixed header with architecture and page size
    /// (accepted here for x64 and 4 KiB pages only).
    V2,
}

/// What the fixed header tells the rest of the parser.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub revision: Revision,
    /// Start of the variable-header section.
    pub var_start: usize,
    /// End of the variable-header section = start of the file-data section.
    pub data_start: usize,
}

const V1_LEN: usize = size_of::<IGVM_FIXED_HEADER>();
const V2_LEN: usize = size_of::<IGVM_FIXED_HEADER_V2>();

/// Reads and checks the fixed header and the checksum.
pub(crate) fn read(file: &[u8]) -> Result<Layout> {
    let (v1, _) =
        IGVM_FIXED_HEADER::read_from_prefix(file).map_err(|_| Error::TruncatedFixedHeader {
            len: file.len(),
            needed: V1_LEN,
        })?;
    if v1.magic != IGVM_MAGIC_VALUE {
        return Err(Error::BadMagic { found: v1.magic });
    }
    let (revision, fixed_len) = match v1.format_version {
        1 => (Revision::V1, V1_LEN),
        2 => {
            let (v2, _) = IGVM_FIXED_HEADER_V2::read_from_prefix(file).map_err(|_| {
                Error::TruncatedFixedHeader {
                    len: file.len(),
                    needed: V2_LEN,
                }
            })?;
            if v2.architecture.0 != 0 {
                return Err(Error::UnsupportedArchitecture(v2.architecture.0));
            }
            if v2.page_size != 4096 {
                return Err(Error::UnsupportedPageSize(v2.page_size));
            }
            (Revision::V2, V2_LEN)
        }
        other => return Err(Error::UnsupportedVersion(other)),
    };
    if v1.total_file_size as usize != file.len() {
        return Err(Error::FileSizeMismatch {
            header: v1.total_file_size,
            actual: file.len(),
        });
    }
    let var_start = v1.variable_header_offset as usize;
    let var_end = var_start as u64 + u64::from(v1.variable_header_size);
    if var_start < fixed_len || var_end > file.len() as u64 {
        return Err(Error::VariableHeaderSectionOutOfBounds {
            offset: v1.variable_header_offset,
            size: v1.variable_header_size,
            fixed_len,
            file_len: file.len(),
        });
    }
    if var_start % 8 != 0 {
        return Err(Error::VariableHeaderSectionUnaligned {
            offset: v1.variable_header_offset,
        });
    }
    let data_start = var_end as usize;

    // CRC-32 over the fixed header with its checksum field zeroed, then the
    // variable-header section. The checksum is the last u32 of the v1 part.
    let mut hasher = crc32fast::Hasher::new();
    let checksum_at = V1_LEN - 4;
    hasher.update(&file[..checksum_at]);
    hasher.update(&[0u8; 4]);
    hasher.update(&file[V1_LEN..fixed_len]);
    hasher.update(&file[var_start..data_start]);
    let computed = hasher.finalize();
    if computed != v1.checksum {
        return Err(Error::ChecksumMismatch {
            header: v1.checksum,
            computed,
        });
    }
    Ok(Layout {
        revision,
        var_start,
        data_start,
    })
}

/// Recomputes and stores the checksum of an IGVM file in place; for tests
/// and fuzzing that edit headers. Does nothing to inputs too short to have
/// a fixed header or whose variable-header section is out of bounds.
pub fn fix_checksum(file: &mut [u8]) {
    let Ok((v1, _)) = IGVM_FIXED_HEADER::read_from_prefix(file) else {
        return;
    };
    let fixed_len = if v1.format_version == 2 {
        V2_LEN
    } else {
        V1_LEN
    };
    let var_start = v1.variable_header_offset as usize;
    let var_end = var_start as u64 + u64::from(v1.variable_header_size);
    if file.len() < fixed_len || var_start < fixed_len || var_end > file.len() as u64 {
        return;
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&file[..V1_LEN - 4]);
    hasher.update(&[0u8; 4]);
    hasher.update(&file[V1_LEN..fixed_len]);
    hasher.update(&file[var_start..var_end as usize]);
    let sum = hasher.finalize();
    file[V1_LEN - 4..V1_LEN].copy_from_slice(&sum.to_le_bytes());
}

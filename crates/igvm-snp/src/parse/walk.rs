//! The type-length-value walk over the variable-header section: section
//! order, exact lengths, zero padding, and decoding each header into its
//! borrowed form.

use igvm_defs::{
    IGVM_VHS_CORIM_DATA, IGVM_VHS_ERROR_RANGE, IGVM_VHS_GUEST_POLICY, IGVM_VHS_PAGE_DATA,
    IGVM_VHS_PAGE_TABLE_RELOCATION, IGVM_VHS_PARAMETER, IGVM_VHS_PARAMETER_AREA,
    IGVM_VHS_PARAMETER_INSERT, IGVM_VHS_RELOCATABLE_REGION, IGVM_VHS_REQUIRED_MEMORY,
    IGVM_VHS_SNP_ID_BLOCK, IGVM_VHS_SUPPORTED_PLATFORM, IGVM_VHS_VARIABLE_HEADER,
    IGVM_VHS_VBS_MEASUREMENT, IGVM_VHS_VP_CONTEXT,
};
use zerocopy::FromBytes;

use super::header_types::{self as ht, OPTIONAL_BIT};
use super::{
    Directive, DirectiveKind, IgvmFile, Initialization, InitializationKind, ParameterKind,
    Platform,
};
use crate::error::{Error, HeaderRef, Result, Section};

const PAGE_4K: u64 = 4096;
const PAGE_2M: u64 = 2 << 20;

/// Reads a wire struct from the start of a header body whose length was
/// already checked.
fn body<T: FromBytes>(bytes: &[u8]) -> T {
    // The caller checked `bytes.len() == size_of::<T>()`; `read_from_prefix`
    // cannot fail then, but we avoid a panic path anyway.
    T::read_from_prefix(bytes)
        .map(|(v, _)| v)
        .unwrap_or_else(|_| T::new_zeroed())
}

/// Walks every header of the variable-header section into `file`.
pub(super) fn walk(file: &mut IgvmFile<'_>, var_start: usize) -> Result<()> {
    let bytes = file.bytes;
    let end = file.data_start;
    let mut pos = var_start;
    let mut stage = Section::Platform;
    while pos < end {
        let available = end - pos;
        let Ok((tl, _)) = IGVM_VHS_VARIABLE_HEADER::read_from_prefix(&bytes[pos..end]) else {
            return Err(Error::TruncatedHeader {
                offset: pos,
                needed: 8,
                available,
            });
        };
        let typ = tl.typ.0;
        let length = tl.length as usize;
        let body_start = pos + 8;
        let Some(body_end) = body_start.checked_add(length).filter(|e| *e <= end) else {
            return Err(Error::TruncatedHeader {
                offset: pos,
                needed: 8usize.saturating_add(length),
                available,
            });
        };
        // Each header starts 8-byte aligned; the padding must be zero. The
        // section may end without the padding of its last header.
        let next = (body_end + 7) & !7;
        let pad_end = next.min(end);
        if bytes[body_end..pad_end].iter().any(|b| *b != 0) {
            return Err(Error::NonZeroPadding { offset: pos });
        }
        let raw = &bytes[body_start..body_end];
        let base = typ & !OPTIONAL_BIT;
        let section = if ht::RANGE_PLATFORM.contains(&base) {
            Section::Platform
        } else if ht::RANGE_INIT.contains(&base) {
            Section::Initialization
        } else if ht::RANGE_DIRECTIVE.contains(&base) {
            Section::Directive
        } else if typ & OPTIONAL_BIT != 0 {
            // An optional header of a type outside every section: skipped,
            // in whatever section we are in.
            stage
        } else {
            return Err(Error::UnknownHeaderType { offset: pos, typ });
        };
        let order = |s: Section| match s {
            Section::Platform => 0,
            Section::Initialization => 1,
            Section::Directive => 2,
        };
        let index = match section {
            Section::Platform => file.platforms.len(),
            Section::Initialization => file.initializations.len(),
            Section::Directive => file.directives.len(),
        };
        let at = HeaderRef {
            section,
            index,
            offset: pos,
        };
        if order(section) < order(stage) {
            return Err(Error::HeaderOutOfOrder {
                at,
                name: ht::name(typ),
                after: stage.name(),
            });
        }
        stage = section;

        // Known types must have exactly their spec length; an unknown type
        // is an error unless marked optional.
        let known = if typ == ht::VERSION_STRING {
            true
        } else if let Some(size) = ht::body_size(typ) {
            if length != size {
                return Err(Error::HeaderLength {
                    at,
                    name: ht::name(typ),
                    length: tl.length,
                    expected: size,
                });
            }
            true
        } else {
            false
        };
        if !known {
            if typ & OPTIONAL_BIT == 0 {
                return Err(Error::UnknownHeaderType { offset: pos, typ });
            }
            match section {
                Section::Platform => {
                    // No optional platform header can be skipped safely: the
                    // platform list decides what applies.
                    return Err(Error::UnknownHeaderType { offset: pos, typ });
                }
                Section::Initialization => file.initializations.push(Initialization {
                    at,
                    kind: InitializationKind::Optional { typ },
                }),
                Section::Directive => file.directives.push(Directive {
                    at,
                    kind: DirectiveKind::Optional { typ },
                }),
            }
            pos = next;
            continue;
        }

        match section {
            Section::Platform => {
                let header: IGVM_VHS_SUPPORTED_PLATFORM = body(raw);
                file.platforms.push(Platform { at, header });
            }
            Section::Initialization => {
                let kind = initialization(file, at, typ, raw)?;
                file.initializations.push(Initialization { at, kind });
            }
            Section::Directive => {
                let kind = directive(file, at, typ, raw)?;
                file.directives.push(Directive { at, kind });
            }
        }
        pos = next;
    }
    Ok(())
}

/// The file data a header references: `len` bytes at absolute `file_offset`,
/// which must lie inside the file-data section.
fn file_data<'a>(
    file: &IgvmFile<'a>,
    at: HeaderRef,
    file_offset: u32,
    len: u64,
) -> Result<&'a [u8]> {
    let start = file_offset as usize;
    // `len` is a u64 the file claims (a parameter area's size): the sum
    // can wrap.
    match u64::from(file_offset).checked_add(len) {
        Some(end) if start >= file.data_start && end <= file.bytes.len() as u64 => {
            Ok(&file.bytes[start..end as usize])
        }
        _ => Err(Error::FileDataOutOfBounds {
            at,
            file_offset,
            len,
            data_start: file.data_start,
            file_len: file.bytes.len(),
        }),
    }
}

fn initialization<'a>(
    file: &IgvmFile<'a>,
    at: HeaderRef,
    typ: u32,
    raw: &'a [u8],
) -> Result<InitializationKind<'a>> {
    let reserved = |field| Error::ReservedNotZero {
        at,
        name: ht::name(typ),
        field,
    };
    Ok(match typ {
        ht::GUEST_POLICY => {
            let h: IGVM_VHS_GUEST_POLICY = body(raw);
            if h.reserved != 0 {
                return Err(reserved("reserved"));
            }
            InitializationKind::GuestPolicy(h)
        }
        ht::RELOCATABLE_REGION => {
            let h: IGVM_VHS_RELOCATABLE_REGION = body(raw);
            InitializationKind::RelocatableRegion {
                compatibility_mask: h.compatibility_mask,
            }
        }
        ht::PAGE_TABLE_RELOCATION_REGION => {
            let h: IGVM_VHS_PAGE_TABLE_RELOCATION = body(raw);
            if h.reserved != 0 {
                return Err(reserved("reserved"));
            }
            InitializationKind::PageTableRelocation {
                compatibility_mask: h.compatibility_mask,
            }
        }
        ht::CORIM_DOCUMENT | ht::CORIM_SIGNATURE => {
            let h: IGVM_VHS_CORIM_DATA = body(raw);
            if h.reserved != 0 {
                return Err(reserved("reserved"));
            }
            let data = file_data(file, at, h.file_offset, u64::from(h.size_bytes))?;
            InitializationKind::Corim {
                typ,
                compatibility_mask: h.compatibility_mask,
                data,
            }
        }
        ht::CCA_POLICY => {
            // The mask is the first u32 of the CCA policy.
            let mask: u32 = body(raw);
            InitializationKind::CcaPolicy {
                compatibility_mask: mask,
            }
        }
        ht::VERSION_STRING => InitializationKind::VersionString(raw),
        _ => return Err(Error::UnknownHeaderType { offset: at.offset, typ }),
    })
}

fn directive<'a>(
    file: &IgvmFile<'a>,
    at: HeaderRef,
    typ: u32,
    raw: &'a [u8],
) -> Result<DirectiveKind<'a>> {
    let reserved = |field| Error::ReservedNotZero {
        at,
        name: ht::name(typ),
        field,
    };
    let aligned = |what, value: u64, align: u64| {
        if value % align == 0 {
            Ok(())
        } else {
            Err(Error::Unaligned {
                at,
                what,
                value,
                align,
            })
        }
    };
    let parameter = |kind| DirectiveKind::Parameter {
        kind,
        header: body::<IGVM_VHS_PARAMETER>(raw),
    };
    Ok(match typ {
        ht::PAGE_DATA => {
            let h: IGVM_VHS_PAGE_DATA = body(raw);
            if h.reserved != 0 {
                return Err(reserved("reserved"));
            }
            if h.data_type.0 > 3 {
                return Err(Error::UnknownPageDataType {
                    at,
                    data_type: h.data_type.0,
                });
            }
            let flags = h.flags.into_bits();
            if flags & !0b111 != 0 {
                return Err(Error::ReservedPageFlags { at, flags });
            }
            let page = if h.flags.is_2mb_page() {
                PAGE_2M
            } else {
                PAGE_4K
            };
            aligned("gpa", h.gpa, page)?;
            let data = if h.file_offset == 0 {
                &[][..]
            } else {
                file_data(file, at, h.file_offset, page)?
            };
            DirectiveKind::PageData { header: h, data }
        }
        ht::PARAMETER_AREA => {
            let h: IGVM_VHS_PARAMETER_AREA = body(raw);
            // Size is checked (non-zero, page multiple, bounded) in rules.rs
            // before anything uses it; the initial data must be in the file.
            let initial = if h.file_offset == 0 {
                &[][..]
            } else {
                file_data(file, at, h.file_offset, h.number_of_bytes)?
            };
            DirectiveKind::ParameterArea { header: h, initial }
        }
        ht::PARAMETER_INSERT => {
            let h: IGVM_VHS_PARAMETER_INSERT = body(raw);
            aligned("gpa", h.gpa, PAGE_4K)?;
            DirectiveKind::ParameterInsert(h)
        }
        ht::VP_CONTEXT => {
            let h: IGVM_VHS_VP_CONTEXT = body(raw);
            if h.reserved != 0 {
                return Err(reserved("reserved"));
            }
            aligned("gpa", h.gpa.get(), PAGE_4K)?;
            let start = h.file_offset as usize;
            if h.file_offset != 0 && (start < file.data_start || start >= file.bytes.len()) {
                return Err(Error::FileDataOutOfBounds {
                    at,
                    file_offset: h.file_offset,
                    len: PAGE_4K,
                    data_start: file.data_start,
                    file_len: file.bytes.len(),
                });
            }
            let data = if h.file_offset == 0 {
                &[][..]
            } else {
                let end = start.saturating_add(PAGE_4K as usize).min(file.bytes.len());
                &file.bytes[start..end]
            };
            DirectiveKind::VpContext { header: h, data }
        }
        ht::REQUIRED_MEMORY => {
            let h: IGVM_VHS_REQUIRED_MEMORY = body(raw);
            if h.reserved != 0 {
                return Err(reserved("reserved"));
            }
            if h.flags.reserved() != 0 {
                return Err(reserved("flags"));
            }
            aligned("gpa", h.gpa, PAGE_4K)?;
            aligned("number_of_bytes", u64::from(h.number_of_bytes), PAGE_4K)?;
            DirectiveKind::RequiredMemory(h)
        }
        ht::ERROR_RANGE => {
            let h: IGVM_VHS_ERROR_RANGE = body(raw);
            aligned("gpa", h.gpa, PAGE_4K)?;
            aligned("size_bytes", u64::from(h.size_bytes), PAGE_4K)?;
            DirectiveKind::ErrorRange(h)
        }
        ht::SNP_ID_BLOCK => {
            let h: IGVM_VHS_SNP_ID_BLOCK = body(raw);
            if h.reserved != [0; 3] {
                return Err(reserved("reserved"));
            }
            DirectiveKind::SnpIdBlock(Box::new(h))
        }
        ht::VBS_MEASUREMENT => {
            let h: IGVM_VHS_VBS_MEASUREMENT = body(raw);
            DirectiveKind::VbsMeasurement {
                compatibility_mask: h.compatibility_mask,
            }
        }
        ht::VP_COUNT_PARAMETER => parameter(ParameterKind::VpCount),
        ht::SRAT => parameter(ParameterKind::Srat),
        ht::MADT => parameter(ParameterKind::Madt),
        ht::MMIO_RANGES => parameter(ParameterKind::MmioRanges),
        ht::MEMORY_MAP => parameter(ParameterKind::MemoryMap),
        ht::COMMAND_LINE => parameter(ParameterKind::CommandLine),
        ht::SLIT => parameter(ParameterKind::Slit),
        ht::PPTT => parameter(ParameterKind::Pptt),
        ht::DEVICE_TREE => parameter(ParameterKind::DeviceTree),
        ht::ENVIRONMENT_INFO_PARAMETER => parameter(ParameterKind::EnvironmentInfo),
        _ => return Err(Error::UnknownHeaderType { offset: at.offset, typ }),
    })
}

//! A validating, zero-copy parser of the IGVM binary format.
//!
//! [`IgvmFile::parse`] reads the fixed header (v1 or v2), checks the CRC-32,
//! walks the type-length-value headers in their three sections and checks
//! every rule that does not depend on which platform is launched (see
//! [`rules`](self) in the source). Page data, parameter-area contents and VP
//! contexts are slices of the input: nothing is copied and nothing is
//! allocated in proportion to a size the file claims.

mod fixed_header;
pub(crate) mod header_types;
mod rules;
mod walk;

use igvm_defs::{
    IGVM_VHS_ERROR_RANGE, IGVM_VHS_GUEST_POLICY, IGVM_VHS_PAGE_DATA, IGVM_VHS_PARAMETER,
    IGVM_VHS_PARAMETER_AREA, IGVM_VHS_PARAMETER_INSERT, IGVM_VHS_REQUIRED_MEMORY,
    IGVM_VHS_SNP_ID_BLOCK, IGVM_VHS_SUPPORTED_PLATFORM, IGVM_VHS_VP_CONTEXT, IgvmPlatformType,
};

pub use fixed_header::{Revision, fix_checksum};

use crate::error::{HeaderRef, Result};

/// Largest parameter area accepted (64 MiB). Parameter areas are filled by
/// the loader, not read from the file, so their size is not bounded by the
/// file; this bound keeps a small hostile file from claiming gigabytes.
pub const MAX_PARAMETER_AREA_BYTES: u64 = 64 << 20;

/// Largest sum of all parameter areas of a file (256 MiB).
pub const MAX_TOTAL_PARAMETER_BYTES: u64 = 256 << 20;

/// Most pages one plan may launch, together with the memory its
/// `REQUIRED_MEMORY` and `ERROR_RANGE` directives claim (2^22 pages,
/// 16 GiB). Many headers may share one file-data page, and a 2 MiB page
/// header is 24 bytes, so a small file can claim far more memory than any
/// launch could take; this bounds the work of measuring a hostile file and
/// the memory a launch of it must provide.
pub const MAX_LAUNCH_PAGES: u64 = 1 << 22;

/// A parsed IGVM file that borrows the bytes it was parsed from.
#[derive(Debug, Clone)]
pub struct IgvmFile<'a> {
    bytes: &'a [u8],
    revision: Revision,
    data_start: usize,
    platforms: Vec<Platform>,
    initializations: Vec<Initialization<'a>>,
    directives: Vec<Directive<'a>>,
}

/// A `SUPPORTED_PLATFORM` header.
#[derive(Debug, Clone)]
pub struct Platform {
    /// Where it is.
    pub at: HeaderRef,
    /// The header.
    pub header: IGVM_VHS_SUPPORTED_PLATFORM,
}

impl Platform {
    /// The platform's one-bit compatibility mask.
    pub fn mask(&self) -> u32 {
        self.header.compatibility_mask
    }

    /// The platform type.
    pub fn platform_type(&self) -> IgvmPlatformType {
        self.header.platform_type
    }
}

/// The name of a platform type, for messages.
pub fn platform_name(platform: IgvmPlatformType) -> String {
    match platform {
        IgvmPlatformType::NATIVE => "NATIVE".into(),
        IgvmPlatformType::VSM_ISOLATION => "VSM_ISOLATION".into(),
        IgvmPlatformType::SEV_SNP => "SEV_SNP".into(),
        IgvmPlatformType::TDX => "TDX".into(),
        IgvmPlatformType::SEV => "SEV".into(),
        IgvmPlatformType::SEV_ES => "SEV_ES".into(),
        IgvmPlatformType::CCA => "CCA".into(),
        other => format!("platform type {}", other.0),
    }
}

/// An initialization header.
#[derive(Debug, Clone)]
pub struct Initialization<'a> {
    /// Where it is.
    pub at: HeaderRef,
    /// What it is.
    pub kind: InitializationKind<'a>,
}

/// The initialization headers this parser knows.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum InitializationKind<'a> {
    /// `GUEST_POLICY`: the platform's guest policy (for SEV-SNP the
    /// SNP_LAUNCH_START policy).
    GuestPolicy(IGVM_VHS_GUEST_POLICY),
    /// `RELOCATABLE_REGION` (VBS only; rejected for SEV-SNP).
    RelocatableRegion {
        /// Compatibility mask.
        compatibility_mask: u32,
    },
    /// `PAGE_TABLE_RELOCATION_REGION` (VBS only; rejected for SEV-SNP).
    PageTableRelocation {
        /// Compatibility mask.
        compatibility_mask: u32,
    },
    /// `CORIM_DOCUMENT` or `CORIM_SIGNATURE`: a CoRIM blob in the file data.
    Corim {
        /// Header type.
        typ: u32,
        /// Compatibility mask.
        compatibility_mask: u32,
        /// The blob.
        data: &'a [u8],
    },
    /// `CCA_POLICY` (Arm CCA only).
    CcaPolicy {
        /// Compatibility mask.
        compatibility_mask: u32,
    },
    /// `VERSION_STRING`: free text.
    VersionString(&'a [u8]),
    /// A header of unknown type with the optional bit set, skipped.
    Optional {
        /// Header type.
        typ: u32,
    },
}

impl InitializationKind<'_> {
    /// The compatibility mask, if the header has one.
    pub fn compatibility_mask(&self) -> Option<u32> {
        match self {
            InitializationKind::GuestPolicy(h) => Some(h.compatibility_mask),
            InitializationKind::RelocatableRegion { compatibility_mask }
            | InitializationKind::PageTableRelocation { compatibility_mask }
            | InitializationKind::Corim {
                compatibility_mask, ..
            }
            | InitializationKind::CcaPolicy { compatibility_mask } => Some(*compatibility_mask),
            InitializationKind::VersionString(_) | InitializationKind::Optional { .. } => None,
        }
    }
}

/// A directive header.
#[derive(Debug, Clone)]
pub struct Directive<'a> {
    /// Where it is.
    pub at: HeaderRef,
    /// What it is.
    pub kind: DirectiveKind<'a>,
}

/// The kinds of parameter a loader writes into a parameter area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParameterKind {
    /// `VP_COUNT_PARAMETER`: u32 vCPU count.
    VpCount,
    /// `SRAT`: ACPI SRAT table.
    Srat,
    /// `MADT`: ACPI MADT table.
    Madt,
    /// `MMIO_RANGES`: two MMIO ranges.
    MmioRanges,
    /// `MEMORY_MAP`: array of memory map entries.
    MemoryMap,
    /// `COMMAND_LINE`: NUL-terminated command line.
    CommandLine,
    /// `SLIT`: ACPI SLIT table.
    Slit,
    /// `PPTT`: ACPI PPTT table.
    Pptt,
    /// `DEVICE_TREE`: flattened device tree.
    DeviceTree,
    /// `ENVIRONMENT_INFO_PARAMETER`: u32 environment flags.
    EnvironmentInfo,
}

impl ParameterKind {
    /// Spec name of the parameter.
    pub fn name(self) -> &'static str {
        match self {
            ParameterKind::VpCount => "VP_COUNT",
            ParameterKind::Srat => "SRAT",
            ParameterKind::Madt => "MADT",
            ParameterKind::MmioRanges => "MMIO_RANGES",
            ParameterKind::MemoryMap => "MEMORY_MAP",
            ParameterKind::CommandLine => "COMMAND_LINE",
            ParameterKind::Slit => "SLIT",
            ParameterKind::Pptt => "PPTT",
            ParameterKind::DeviceTree => "DEVICE_TREE",
            ParameterKind::EnvironmentInfo => "ENVIRONMENT_INFO",
        }
    }

    /// Bytes the parameter always takes, for kinds of fixed size.
    pub fn fixed_len(self) -> Option<u64> {
        match self {
            ParameterKind::VpCount | ParameterKind::EnvironmentInfo => Some(4),
            ParameterKind::MmioRanges => Some(32),
            _ => None,
        }
    }
}

/// The directive headers this parser knows.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DirectiveKind<'a> {
    /// `PAGE_DATA`: one 4 KiB (or 2 MiB) page. `data` is empty for a page
    /// of zeros (`file_offset` 0), else exactly the page size.
    PageData {
        /// The header.
        header: IGVM_VHS_PAGE_DATA,
        /// The page's contents in the file.
        data: &'a [u8],
    },
    /// `PARAMETER_AREA`: declares a parameter area. `initial` is empty when
    /// the area starts as zeros, else exactly `number_of_bytes` long.
    ParameterArea {
        /// The header.
        header: IGVM_VHS_PARAMETER_AREA,
        /// Initial contents in the file.
        initial: &'a [u8],
    },
    /// A parameter the loader writes into an area.
    Parameter {
        /// Which parameter.
        kind: ParameterKind,
        /// Area index and byte offset.
        header: IGVM_VHS_PARAMETER,
    },
    /// `PARAMETER_INSERT`: imports an area at a GPA.
    ParameterInsert(IGVM_VHS_PARAMETER_INSERT),
    /// `VP_CONTEXT`: a VP's initial state. For SEV-SNP `data` is the
    /// 4096-byte VMSA; for other platforms it is at most 4096 bytes from
    /// `file_offset` (their formats are not decoded here).
    VpContext {
        /// The header.
        header: IGVM_VHS_VP_CONTEXT,
        /// Up to 4096 bytes from `file_offset`.
        data: &'a [u8],
    },
    /// `REQUIRED_MEMORY`: memory that must exist.
    RequiredMemory(IGVM_VHS_REQUIRED_MEMORY),
    /// `SNP_ID_BLOCK`: the SEV-SNP ID block and its signatures.
    SnpIdBlock(Box<IGVM_VHS_SNP_ID_BLOCK>),
    /// `ERROR_RANGE`: host-visible memory for error reports.
    ErrorRange(IGVM_VHS_ERROR_RANGE),
    /// `VBS_MEASUREMENT` (VBS only; rejected for SEV-SNP).
    VbsMeasurement {
        /// Compatibility mask.
        compatibility_mask: u32,
    },
    /// A header of unknown type with the optional bit set, skipped.
    Optional {
        /// Header type.
        typ: u32,
    },
}

impl DirectiveKind<'_> {
    /// The compatibility mask; `None` for parameter areas and parameters,
    /// which apply to every platform.
    pub fn compatibility_mask(&self) -> Option<u32> {
        match self {
            DirectiveKind::PageData { header, .. } => Some(header.compatibility_mask),
            DirectiveKind::ParameterInsert(h) => Some(h.compatibility_mask),
            DirectiveKind::VpContext { header, .. } => Some(header.compatibility_mask),
            DirectiveKind::RequiredMemory(h) => Some(h.compatibility_mask),
            DirectiveKind::SnpIdBlock(h) => Some(h.compatibility_mask),
            DirectiveKind::ErrorRange(h) => Some(h.compatibility_mask),
            DirectiveKind::VbsMeasurement { compatibility_mask } => Some(*compatibility_mask),
            DirectiveKind::ParameterArea { .. }
            | DirectiveKind::Parameter { .. }
            | DirectiveKind::Optional { .. } => None,
        }
    }

    /// The spec name of the header type.
    pub fn name(&self) -> &'static str {
        match self {
            DirectiveKind::PageData { .. } => "PAGE_DATA",
            DirectiveKind::ParameterArea { .. } => "PARAMETER_AREA",
            DirectiveKind::Parameter { kind, .. } => kind.name(),
            DirectiveKind::ParameterInsert(_) => "PARAMETER_INSERT",
            DirectiveKind::VpContext { .. } => "VP_CONTEXT",
            DirectiveKind::RequiredMemory(_) => "REQUIRED_MEMORY",
            DirectiveKind::SnpIdBlock(_) => "SNP_ID_BLOCK",
            DirectiveKind::ErrorRange(_) => "ERROR_RANGE",
            DirectiveKind::VbsMeasurement { .. } => "VBS_MEASUREMENT",
            DirectiveKind::Optional { .. } => "optional (skipped)",
        }
    }
}

impl<'a> IgvmFile<'a> {
    /// Parses and validates an IGVM file.
    ///
    /// # Errors
    /// Any violation of the format or of the platform-independent rules, as
    /// an [`Error`](crate::Error) that names the header and file offset.
    ///
    /// # Example
    /// ```
    /// let err = igvm_snp::IgvmFile::parse(b"not an igvm file, far too short").unwrap_err();
    /// assert!(matches!(err, igvm_snp::Error::BadMagic { .. }));
    /// ```
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let layout = fixed_header::read(bytes)?;
        let mut file = IgvmFile {
            bytes,
            revision: layout.revision,
            data_start: layout.data_start,
            platforms: Vec::new(),
            initializations: Vec::new(),
            directives: Vec::new(),
        };
        walk::walk(&mut file, layout.var_start)?;
        rules::check(&file)?;
        Ok(file)
    }

    /// The bytes this file was parsed from.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The format revision.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// File offset where the file-data section starts.
    pub fn data_start(&self) -> usize {
        self.data_start
    }

    /// Platform headers, in file order.
    pub fn platforms(&self) -> &[Platform] {
        &self.platforms
    }

    /// Initialization headers, in file order.
    pub fn initializations(&self) -> &[Initialization<'a>] {
        &self.initializations
    }

    /// Directive headers, in file order.
    pub fn directives(&self) -> &[Directive<'a>] {
        &self.directives
    }

    /// The platform header of a platform type, if declared.
    pub fn platform(&self, platform: IgvmPlatformType) -> Option<&Platform> {
        self.platforms
            .iter()
            .find(|p| p.header.platform_type == platform)
    }

    /// Union of the masks of all declared platforms.
    pub fn declared_mask(&self) -> u32 {
        self.platforms.iter().fold(0, |m, p| m | p.mask())
    }
}

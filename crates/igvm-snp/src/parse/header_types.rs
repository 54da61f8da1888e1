//! Numeric IGVM header types, their names and the body size the spec gives
//! each (`igvm_defs` is the spec; sizes are pinned by tests against it).

use std::mem::size_of;

use igvm_defs::{
    IGVM_VHS_CCA_POLICY, IGVM_VHS_CORIM_DATA, IGVM_VHS_ERROR_RANGE, IGVM_VHS_GUEST_POLICY,
    IGVM_VHS_PAGE_DATA, IGVM_VHS_PAGE_TABLE_RELOCATION, IGVM_VHS_PARAMETER,
    IGVM_VHS_PARAMETER_AREA, IGVM_VHS_PARAMETER_INSERT, IGVM_VHS_RELOCATABLE_REGION,
    IGVM_VHS_REQUIRED_MEMORY, IGVM_VHS_SNP_ID_BLOCK, IGVM_VHS_SUPPORTED_PLATFORM,
    IGVM_VHS_VBS_MEASUREMENT, IGVM_VHS_VP_CONTEXT,
};

pub(crate) const SUPPORTED_PLATFORM: u32 = 0x001;
pub(crate) const GUEST_POLICY: u32 = 0x101;
pub(crate) const RELOCATABLE_REGION: u32 = 0x102;
pub(crate) const PAGE_TABLE_RELOCATION_REGION: u32 = 0x103;
pub(crate) const CORIM_DOCUMENT: u32 = 0x104;
pub(crate) const CORIM_SIGNATURE: u32 = 0x105;
pub(crate) const CCA_POLICY: u32 = 0x106;
pub(crate) const VERSION_STRING: u32 = 0x107;
pub(crate) const PARAMETER_AREA: u32 = 0x301;
pub(crate) const PAGE_DATA: u32 = 0x302;
pub(crate) const PARAMETER_INSERT: u32 = 0x303;
pub(crate) const VP_CONTEXT: u32 = 0x304;
pub(crate) const REQUIRED_MEMORY: u32 = 0x305;
pub(crate) const VP_COUNT_PARAMETER: u32 = 0x307;
pub(crate) const SRAT: u32 = 0x308;
pub(crate) const MADT: u32 = 0x309;
pub(crate) const MMIO_RANGES: u32 = 0x30A;
pub(crate) const SNP_ID_BLOCK: u32 = 0x30B;
pub(crate) const MEMORY_MAP: u32 = 0x30C;
pub(crate) const ERROR_RANGE: u32 = 0x30D;
pub(crate) const COMMAND_LINE: u32 = 0x30E;
pub(crate) const SLIT: u32 = 0x30F;
pub(crate) const PPTT: u32 = 0x310;
pub(crate) const VBS_MEASUREMENT: u32 = 0x311;
pub(crate) const DEVICE_TREE: u32 = 0x312;
pub(crate) const ENVIRONMENT_INFO_PARAMETER: u32 = 0x313;

/// Bit 31 of a header type: loaders that do not know the type may skip it.
pub(crate) const OPTIONAL_BIT: u32 = 1 << 31;

/// Type ranges of the three sections.
pub(crate) const RANGE_PLATFORM: std::ops::RangeInclusive<u32> = 0x1..=0x100;
pub(crate) const RANGE_INIT: std::ops::RangeInclusive<u32> = 0x101..=0x200;
pub(crate) const RANGE_DIRECTIVE: std::ops::RangeInclusive<u32> = 0x301..=0x400;

/// The spec name of a header type, for messages.
pub(crate) fn name(typ: u32) -> &'static str {
    match typ & !OPTIONAL_BIT {
        SUPPORTED_PLATFORM => "SUPPORTED_PLATFORM",
        GUEST_POLICY => "GUEST_POLICY",
        RELOCATABLE_REGION => "RELOCATABLE_REGION",
        PAGE_TABLE_RELOCATION_REGION => "PAGE_TABLE_RELOCATION_REGION",
        CORIM_DOCUMENT => "CORIM_DOCUMENT",
        CORIM_SIGNATURE => "CORIM_SIGNATURE",
        CCA_POLICY => "CCA_POLICY",
        VERSION_STRING => "VERSION_STRING",
        PARAMETER_AREA => "PARAMETER_AREA",
        PAGE_DATA => "PAGE_DATA",
        PARAMETER_INSERT => "PARAMETER_INSERT",
        VP_CONTEXT => "VP_CONTEXT",
        REQUIRED_MEMORY => "REQUIRED_MEMORY",
        VP_COUNT_PARAMETER => "VP_COUNT_PARAMETER",
        SRAT => "SRAT",
        MADT => "MADT",
        MMIO_RANGES => "MMIO_RANGES",
        SNP_ID_BLOCK => "SNP_ID_BLOCK",
        MEMORY_MAP => "MEMORY_MAP",
        ERROR_RANGE => "ERROR_RANGE",
        COMMAND_LINE => "COMMAND_LINE",
        SLIT => "SLIT",
        PPTT => "PPTT",
        VBS_MEASUREMENT => "VBS_MEASUREMENT",
        DEVICE_TREE => "DEVICE_TREE",
        ENVIRONMENT_INFO_PARAMETER => "ENVIRONMENT_INFO_PARAMETER",
        _ => "unknown",
    }
}

/// The body length the spec gives a header type; `None` for a type whose
/// length varies (the version string) or that this parser does not know.
pub(crate) fn body_size(typ: u32) -> Option<usize> {
    Some(match typ {
        SUPPORTED_PLATFORM => size_of::<IGVM_VHS_SUPPORTED_PLATFORM>(),
        GUEST_POLICY => size_of::<IGVM_VHS_GUEST_POLICY>(),
        RELOCATABLE_REGION => size_of::<IGVM_VHS_RELOCATABLE_REGION>(),
        PAGE_TABLE_RELOCATION_REGION => size_of::<IGVM_VHS_PAGE_TABLE_RELOCATION>(),
        CORIM_DOCUMENT | CORIM_SIGNATURE => size_of::<IGVM_VHS_CORIM_DATA>(),
        CCA_POLICY => size_of::<IGVM_VHS_CCA_POLICY>(),
        PARAMETER_AREA => size_of::<IGVM_VHS_PARAMETER_AREA>(),
        PAGE_DATA => size_of::<IGVM_VHS_PAGE_DATA>(),
        PARAMETER_INSERT => size_of::<IGVM_VHS_PARAMETER_INSERT>(),
        VP_CONTEXT => size_of::<IGVM_VHS_VP_CONTEXT>(),
        REQUIRED_MEMORY => size_of::<IGVM_VHS_REQUIRED_MEMORY>(),
        VP_COUNT_PARAMETER
        | SRAT
        | MADT
        | MMIO_RANGES
        | MEMORY_MAP
        | COMMAND_LINE
        | SLIT
        | PPTT
        | DEVICE_TREE
        | ENVIRONMENT_INFO_PARAMETER => size_of::<IGVM_VHS_PARAMETER>(),
        SNP_ID_BLOCK => size_of::<IGVM_VHS_SNP_ID_BLOCK>(),
        ERROR_RANGE => size_of::<IGVM_VHS_ERROR_RANGE>(),
        VBS_MEASUREMENT => size_of::<IGVM_VHS_VBS_MEASUREMENT>(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes as the IGVM spec (and notes §1.2) give them.
    #[test]
    fn body_sizes_match_the_spec() {
        assert_eq!(body_size(SUPPORTED_PLATFORM), Some(16));
        assert_eq!(body_size(GUEST_POLICY), Some(16));
        assert_eq!(body_size(RELOCATABLE_REGION), Some(48));
        assert_eq!(body_size(PAGE_TABLE_RELOCATION_REGION), Some(32));
        assert_eq!(body_size(CORIM_DOCUMENT), Some(16));
        assert_eq!(body_size(CCA_POLICY), Some(32));
        assert_eq!(body_size(PARAMETER_AREA), Some(16));
        assert_eq!(body_size(PAGE_DATA), Some(24));
        assert_eq!(body_size(PARAMETER_INSERT), Some(16));
        assert_eq!(body_size(VP_CONTEXT), Some(20));
        assert_eq!(body_size(REQUIRED_MEMORY), Some(24));
        assert_eq!(body_size(VP_COUNT_PARAMETER), Some(8));
        assert_eq!(body_size(SNP_ID_BLOCK), Some(696));
        assert_eq!(body_size(ERROR_RANGE), Some(16));
        assert_eq!(body_size(VBS_MEASUREMENT), Some(864));
        assert_eq!(body_size(VERSION_STRING), None);
        assert_eq!(body_size(0x306), None);
    }

    #[test]
    fn names() {
        assert_eq!(name(PAGE_DATA), "PAGE_DATA");
        assert_eq!(name(PAGE_DATA | OPTIONAL_BIT), "PAGE_DATA");
        assert_eq!(name(0x3ff), "unknown");
    }
}

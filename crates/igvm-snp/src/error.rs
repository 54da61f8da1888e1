//! The one error type of the core crate.
//!
//! Every variant says what is wrong and where: a [`HeaderRef`] (section,
//! index in that section, file offset) for anything found in the file, plus
//! the GPA, compatibility mask or parameter area it concerns.

use std::fmt;

use serde::Serialize;

use crate::digest::LaunchDigest;
use crate::policy::PolicySource;

/// The section of the variable-header area a header sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    /// Platform headers (types 0x001..=0x100).
    Platform,
    /// Initialization headers (types 0x101..=0x200).
    Initialization,
    /// Directive headers (types 0x301..=0x400).
    Directive,
}

impl Section {
    /// Lower-case name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Section::Platform => "platform",
            Section::Initialization => "initialization",
            Section::Directive => "directive",
        }
    }
}

/// Where a header is: its section, its index within that section (the index
/// the `igvm` crate's `platforms()`, `initializations()` and `directives()`
/// use) and the file offset of its type-length header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct HeaderRef {
    /// Section of the header.
    pub section: Section,
    /// Index of the header within its section.
    pub index: usize,
    /// File offset of the header's 8-byte type/length prefix.
    pub offset: usize,
}

impl fmt::Display for HeaderRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} #{} (file offset {:#x})",
            self.section.name(),
            self.index,
            self.offset
        )
    }
}

/// Errors from parsing an IGVM file, planning its launch or checking its
/// measurement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ----- fixed header -----
    /// The file is shorter than the fixed header.
    #[error("file is {len} bytes, shorter than the {needed}-byte IGVM fixed header")]
    TruncatedFixedHeader {
        /// File length.
        len: usize,
        /// Bytes the fixed header needs.
        needed: usize,
    },
    /// The magic value is not `IGVM`.
    #[error("bad magic {found:#010x} at file offset 0 (expected 0x4d564749, \"IGVM\")")]
    BadMagic {
        /// The value found.
        found: u32,
    },
    /// The format version is not 1 or 2.
    #[error("unsupported IGVM format version {0} (supported: 1 and 2)")]
    UnsupportedVersion(u32),
    /// A v2 file for an architecture other than x64.
    #[error("unsupported architecture {0} in the v2 fixed header (SEV-SNP needs x64 = 0)")]
    UnsupportedArchitecture(u32),
    /// A v2 file with a page size other than 4 KiB.
    #[error("unsupported page size {0} in the v2 fixed header (only 4096)")]
    UnsupportedPageSize(u32),
    /// `total_file_size` disagrees with the actual length.
    #[error("fixed header says the file is {header} bytes, but it is {actual}")]
    FileSizeMismatch {
        /// Value of `total_file_size`.
        header: u32,
        /// Actual length of the input.
        actual: usize,
    },
    /// The variable-header section is not inside the file.
    #[error(
        "variable header section {offset:#x}+{size:#x} is not inside the file \
         (fixed header ends at {fixed_len:#x}, file is {file_len:#x} bytes)"
    )]
    VariableHeaderSectionOutOfBounds {
        /// `variable_header_offset`.
        offset: u32,
        /// `variable_header_size`.
        size: u32,
        /// Size of the fixed header.
        fixed_len: usize,
        /// File length.
        file_len: usize,
    },
    /// The variable-header section does not start on an 8-byte boundary.
    #[error("variable header section offset {offset:#x} is not 8-byte aligned")]
    VariableHeaderSectionUnaligned {
        /// `variable_header_offset`.
        offset: u32,
    },
    /// CRC-32 over the fixed header (checksum zeroed) and the variable headers
    /// does not match.
    #[error("checksum mismatch: the fixed header says {header:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// Checksum stored in the fixed header.
        header: u32,
        /// Checksum computed over the file.
        computed: u32,
    },

    // ----- type-length-value walk -----
    /// A header runs past the end of the variable-header section.
    #[error(
        "header at file offset {offset:#x}: truncated, {needed} bytes needed but \
         {available} left in the variable header section"
    )]
    TruncatedHeader {
        /// File offset of the header.
        offset: usize,
        /// Bytes needed.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// A header type this parser does not know and that is not marked optional.
    #[error("header at file offset {offset:#x}: unknown header type {typ:#x}")]
    UnknownHeaderType {
        /// File offset of the header.
        offset: usize,
        /// The type value.
        typ: u32,
    },
    /// A header whose length is not the size the spec gives its type.
    #[error("{at}: {name} header has length {length}, the spec sizes it {expected}")]
    HeaderLength {
        /// The header.
        at: HeaderRef,
        /// Name of the header type.
        name: &'static str,
        /// Length found.
        length: u32,
        /// Length required.
        expected: usize,
    },
    /// A header in a section that already ended (platform, then
    /// initialization, then directives).
    #[error(
        "{at}: {name} header comes after a {after} header; sections must be in order platform, initialization, directive"
    )]
    HeaderOutOfOrder {
        /// The header.
        at: HeaderRef,
        /// Name of the header type.
        name: &'static str,
        /// Section already entered.
        after: &'static str,
    },
    /// Padding after a header is not zero.
    #[error("header at file offset {offset:#x}: padding bytes after the header are not zero")]
    NonZeroPadding {
        /// File offset of the header.
        offset: usize,
    },
    /// A reserved field is not zero.
    #[error("{at}: reserved field `{field}` of the {name} header is not zero")]
    ReservedNotZero {
        /// The header.
        at: HeaderRef,
        /// Name of the header type.
        name: &'static str,
        /// The field.
        field: &'static str,
    },
    /// File data referenced by a header is not inside the file-data section.
    #[error(
        "{at}: file data {file_offset:#x}+{len:#x} is not inside the file data section \
         {data_start:#x}..{file_len:#x}"
    )]
    FileDataOutOfBounds {
        /// The header.
        at: HeaderRef,
        /// `file_offset` of the header.
        file_offset: u32,
        /// Bytes the header needs.
        len: u64,
        /// Start of the file-data section.
        data_start: usize,
        /// File length.
        file_len: usize,
    },

    // ----- platforms -----
    /// A platform header whose compatibility mask does not have exactly one bit.
    #[error("{at}: platform compatibility mask {mask:#x} must have exactly one bit set")]
    PlatformMaskNotOneBit {
        /// The header.
        at: HeaderRef,
        /// The mask.
        mask: u32,
    },
    /// Two platform headers of one platform type.
    #[error("{at}: a second platform header for {platform}")]
    DuplicatePlatformType {
        /// The header.
        at: HeaderRef,
        /// Platform name.
        platform: String,
    },
    /// Two platform headers with the same mask bit.
    #[error("{at}: compatibility mask {mask:#x} is already used by another platform header")]
    DuplicatePlatformMask {
        /// The header.
        at: HeaderRef,
        /// The mask.
        mask: u32,
    },
    /// A platform header with a version other than 1.
    #[error("{at}: platform version {version} of {platform} is not supported (only 1)")]
    UnsupportedPlatformVersion {
        /// The header.
        at: HeaderRef,
        /// Platform name.
        platform: String,
        /// The version.
        version: u16,
    },
    /// A platform header with a `highest_vtl` other than 0 or 2.
    #[error("{at}: highest_vtl {vtl} is not 0 or 2")]
    InvalidHighestVtl {
        /// The header.
        at: HeaderRef,
        /// The value.
        vtl: u8,
    },
    /// The file has no platform header.
    #[error("the file has no platform header")]
    NoPlatforms,
    /// The file has no SEV-SNP platform header.
    #[error("the file declares no SEV-SNP platform; it declares: {found}")]
    NoSnpPlatform {
        /// The platforms the file declares, comma separated.
        found: String,
    },
    /// A header's compatibility mask shares no bit with a declared platform.
    #[error(
        "{at}: compatibility mask {mask:#x} matches no declared platform (declared: {declared:#x})"
    )]
    MaskMatchesNoPlatform {
        /// The header.
        at: HeaderRef,
        /// The mask.
        mask: u32,
        /// Union of the declared platform masks.
        declared: u32,
    },

    // ----- directives -----
    /// A GPA (or size) that is not aligned.
    #[error("{at}: {what} {value:#x} is not {align:#x}-byte aligned")]
    Unaligned {
        /// The header.
        at: HeaderRef,
        /// What is unaligned (e.g. "gpa").
        what: &'static str,
        /// The value.
        value: u64,
        /// Alignment required.
        align: u64,
    },
    /// A page-data type the spec does not define.
    #[error("{at}: unknown page data type {data_type}")]
    UnknownPageDataType {
        /// The header.
        at: HeaderRef,
        /// The value.
        data_type: u16,
    },
    /// Page-data flags with reserved bits set.
    #[error("{at}: page data flags {flags:#x} set reserved bits")]
    ReservedPageFlags {
        /// The header.
        at: HeaderRef,
        /// The flags.
        flags: u32,
    },
    /// A parameter area whose size is zero or not a multiple of 4 KiB.
    #[error("{at}: parameter area {index} has size {size:#x}, not a non-zero multiple of 4 KiB")]
    ParameterAreaSize {
        /// The header.
        at: HeaderRef,
        /// Area index.
        index: u32,
        /// Size claimed.
        size: u64,
    },
    /// A parameter area larger than this crate accepts.
    #[error("{at}: parameter area {index} claims {size:#x} bytes, more than the limit {limit:#x}")]
    ParameterAreaTooLarge {
        /// The header.
        at: HeaderRef,
        /// Area index.
        index: u32,
        /// Size claimed (for one area, or the running total).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A parameter area index declared twice.
    #[error("{at}: parameter area {index} is declared twice")]
    DuplicateParameterArea {
        /// The header.
        at: HeaderRef,
        /// Area index.
        index: u32,
    },
    /// A parameter or insert naming an area that was never declared.
    #[error("{at}: parameter area {index} is not declared before this use")]
    UnknownParameterArea {
        /// The header.
        at: HeaderRef,
        /// Area index.
        index: u32,
    },
    /// A parameter or insert naming an area that was already inserted.
    #[error("{at}: parameter area {index} was already inserted by directive #{inserted_by}")]
    ParameterAreaAlreadyInserted {
        /// The header.
        at: HeaderRef,
        /// Area index.
        index: u32,
        /// Directive index of the insert.
        inserted_by: usize,
    },
    /// A parameter that does not fit in its area.
    #[error(
        "{at}: {kind} parameter needs {len:#x} bytes at offset {byte_offset:#x} of parameter \
         area {index}, which is {area_size:#x} bytes"
    )]
    ParameterOutOfBounds {
        /// The header.
        at: HeaderRef,
        /// Parameter kind.
        kind: &'static str,
        /// Area index.
        index: u32,
        /// Offset in the area.
        byte_offset: u32,
        /// Bytes needed.
        len: u64,
        /// Area size.
        area_size: u64,
    },
    /// A VP context whose compatibility mask names more than one platform:
    /// its state has one platform's format (the `igvm` crate, and so
    /// igvmmeasure and QEMU, refuse it too).
    #[error(
        "{at}: VP context compatibility mask {mask:#x} must have exactly one bit set (one \
         platform's VP state)"
    )]
    VpContextMaskNotOneBit {
        /// The header.
        at: HeaderRef,
        /// The mask.
        mask: u32,
    },
    /// Two VP contexts for one VP index and platform.
    #[error("{at}: a second VP context for VP index {vp_index} (first: directive #{first})")]
    DuplicateVpContext {
        /// The header.
        at: HeaderRef,
        /// VP index.
        vp_index: u16,
        /// Directive index of the first one.
        first: usize,
    },
    /// One GPA imported twice for the SEV-SNP platform.
    #[error("GPA {gpa:#x} is imported twice for SEV-SNP: by {first} and by {second}")]
    GpaOverlap {
        /// First page imported twice.
        gpa: u64,
        /// First importer.
        first: HeaderRef,
        /// Second importer.
        second: HeaderRef,
    },
    /// A directive or initialization header that applies to SEV-SNP but
    /// cannot be launched there.
    #[error("{at}: {what} is not supported on SEV-SNP")]
    UnsupportedForSnp {
        /// The header.
        at: HeaderRef,
        /// What it is.
        what: &'static str,
    },
    /// A page run whose page count or GPA range overflows.
    #[error("{at}: GPA range {gpa:#x} + {pages} pages overflows")]
    GpaRangeOverflow {
        /// The header.
        at: HeaderRef,
        /// Start GPA.
        gpa: u64,
        /// Page count.
        pages: u64,
    },

    // ----- SEV-SNP rules -----
    /// The file has no VP context (VMSA) for SEV-SNP.
    #[error("the file has no SEV-SNP VP context (VMSA) for the boot CPU")]
    NoVmsa,
    /// A VP context for an AP; SEV-SNP launches take one VMSA, the boot CPU's.
    #[error(
        "{at}: VP context for VP index {vp_index}; an SEV-SNP launch takes only the boot CPU's (VP index 0)"
    )]
    ApVpContext {
        /// The header.
        at: HeaderRef,
        /// VP index.
        vp_index: u16,
    },
    /// The VMSA does not enable SNP (SEV_FEATURES bit 0).
    #[error("{at}: VMSA SEV features {sev_features:#x} do not set SNPActive (bit 0)")]
    VmsaNotSnp {
        /// The header.
        at: HeaderRef,
        /// SEV features.
        sev_features: u64,
    },
    /// The VMSA is not for VMPL 0.
    #[error("{at}: VMSA is for VMPL {vmpl}; the boot CPU must start at VMPL 0")]
    VmsaVmpl {
        /// The header.
        at: HeaderRef,
        /// The VMPL.
        vmpl: u8,
    },
    /// A launch would put the VMSA at a 2 MiB-aligned GPA (SNP erratum: RMP
    /// #PF on large pages; KVM avoids such GPAs for its own VMSAs and the
    /// proposed direct-VMSA interface refuses them). Measuring takes it.
    #[error(
        "{at}: VMSA GPA {gpa:#x} is 2 MiB aligned; KVM cannot launch a VMSA there (SNP erratum)"
    )]
    VmsaGpa2MbAligned {
        /// The header.
        at: HeaderRef,
        /// The GPA.
        gpa: u64,
    },
    /// A vCPU count KVM cannot create (the configuration's, the legacy VMSA
    /// measurement's, or a verifier's largest).
    #[error("{vcpus} vCPUs: KVM creates 1 to {max} (KVM_MAX_VCPUS)")]
    InvalidVcpuCount {
        /// The count given.
        vcpus: u32,
        /// KVM's limit (`KVM_MAX_VCPUS`).
        max: u32,
    },
    /// Two guest policy headers apply to SEV-SNP.
    #[error("{at}: a second guest policy for SEV-SNP (first: initialization #{first})")]
    DuplicateGuestPolicy {
        /// The header.
        at: HeaderRef,
        /// Index of the first.
        first: usize,
    },
    /// An SEV-SNP guest policy that is not valid.
    #[error("guest policy {policy:#x}: {reason}")]
    InvalidPolicy {
        /// The policy.
        policy: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The guest policy a launch would use is not valid.
    #[error("guest policy {policy:#x} from {from}: {reason}")]
    InvalidGuestPolicy {
        /// Where the policy comes from.
        from: PolicySource,
        /// The policy.
        policy: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// Two SNP ID blocks apply to SEV-SNP.
    #[error("{at}: a second SEV-SNP ID block (first: directive #{first})")]
    DuplicateIdBlock {
        /// The header.
        at: HeaderRef,
        /// Index of the first.
        first: usize,
    },
    /// The ID block's launch digest differs from the computed one.
    #[error(
        "the ID block's launch digest differs from the computed one: ID block {expected}, computed {computed}"
    )]
    IdBlockMismatch {
        /// `ld` from the ID block.
        expected: LaunchDigest,
        /// Digest the plan produces.
        computed: LaunchDigest,
    },

    // ----- configuration -----
    /// The plan would launch more pages than [`crate::parse::MAX_LAUNCH_PAGES`]
    /// (counting the memory required memory and error ranges claim before).
    #[error(
        "{at}: the file launches or claims more than {limit} pages for SEV-SNP (16 GiB); refused"
    )]
    TooManyPages {
        /// The directive that crossed the limit.
        at: HeaderRef,
        /// The limit.
        limit: u64,
    },
    /// Memory a `REQUIRED_MEMORY` or `ERROR_RANGE` directive claims, with
    /// the pages launched and claimed before it, is more than
    /// [`crate::parse::MAX_LAUNCH_PAGES`] pages. (A page directive that
    /// crosses the limit so counted is [`Error::TooManyPages`].)
    #[error(
        "{at}: {what} brings the memory the launch must provide above {limit} pages (16 GiB); refused"
    )]
    TooMuchMemory {
        /// The directive that crossed the limit.
        at: HeaderRef,
        /// Its type: `REQUIRED_MEMORY` or `ERROR_RANGE`.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// The configured vCPU count is zero.
    #[error("the configuration has 0 vCPUs; a launch needs at least the boot CPU")]
    NoVcpus,
    /// The kvm-legacy inputs describe another VM than the configuration or
    /// the file: one vCPU count and one set of VMSA features must serve the
    /// VP count parameter, KVM_SEV_INIT2 and KVM's VMSAs alike.
    #[error(
        "the kvm-legacy inputs ({what}: {legacy:#x}) differ from the {source_name}'s ({expected:#x})"
    )]
    LegacyInputsMismatch {
        /// Which input: "vCPUs" or "VMSA features".
        what: &'static str,
        /// The kvm-legacy input.
        legacy: u64,
        /// What the configuration or the file says.
        expected: u64,
        /// "configuration" (vCPUs) or "file's VMSA" (features).
        source_name: &'static str,
    },
    /// An SNP ID block whose fields are inconsistent.
    #[error("{at}: SNP ID block: {reason}")]
    InvalidIdBlock {
        /// The header.
        at: HeaderRef,
        /// What is wrong.
        reason: &'static str,
    },
    /// A configured RAM range is empty, unaligned, overlapping or overflowing.
    #[error("configured RAM range {gpa:#x}+{size:#x}: {reason}")]
    InvalidMemoryRange {
        /// GPA.
        gpa: u64,
        /// Size.
        size: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A parameter the file asks for but the configuration does not provide;
    /// reported when a plan is executed.
    #[error(
        "{at}: the file asks for a {kind} parameter (area {index}) but the configuration gives none"
    )]
    ParameterNotConfigured {
        /// The header.
        at: HeaderRef,
        /// Parameter kind.
        kind: &'static str,
        /// Area index.
        index: u32,
    },
    /// A MADT asked for a vCPU count it cannot describe.
    #[error("a MADT for {vcpus} vCPUs: 1 to {max} vCPUs can be described")]
    InvalidMadtVcpus {
        /// The count given.
        vcpus: u32,
        /// The limit ([`crate::acpi::MAX_VCPUS`]).
        max: u32,
    },
    /// A configuration value that cannot be encoded (e.g. a command line with
    /// a NUL byte).
    #[error("{at}: {kind} parameter: {reason}")]
    InvalidParameterValue {
        /// The header.
        at: HeaderRef,
        /// Parameter kind.
        kind: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

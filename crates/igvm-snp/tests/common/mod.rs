//! Shared test helpers: IGVM files built with the `igvm` crate's builder,
//! byte-level editing of serialized files, and an independent model of the
//! SEV-SNP measurement (the oracle) that does not use the crate under test.
//!
//! Everything here reads the IGVM layout from the spec (`igvm_defs`), never
//! from `igvm_snp`'s parser, so the tests do not check the parser against
//! itself.

#![allow(dead_code)]

use igvm::snp_defs::{SevFeatures, SevVmsa};
use igvm::{
    IgvmDirectiveHeader as D, IgvmFile as BuilderFile, IgvmInitializationHeader as I,
    IgvmPlatformHeader as P, IgvmRevision,
};
use igvm_defs::{
    IGVM_VHS_PARAMETER, IGVM_VHS_PARAMETER_INSERT, IGVM_VHS_SUPPORTED_PLATFORM, IgvmPageDataFlags,
    IgvmPageDataType, IgvmPlatformType,
};
use igvm_snp::{GpaRange, LaunchConfig};
use sha2::{Digest, Sha384};
use zerocopy::{FromZeros, IntoBytes};

// ----- header type numbers (igvm_defs `IgvmVariableHeaderType`) -----
pub const T_PLATFORM: u32 = 0x001;
pub const T_GUEST_POLICY: u32 = 0x101;
pub const T_RELOCATABLE_REGION: u32 = 0x102;
pub const T_PT_RELOCATION: u32 = 0x103;
pub const T_CCA_POLICY: u32 = 0x106;
pub const T_VERSION_STRING: u32 = 0x107;
pub const T_PARAMETER_AREA: u32 = 0x301;
pub const T_PAGE_DATA: u32 = 0x302;
pub const T_PARAMETER_INSERT: u32 = 0x303;
pub const T_VP_CONTEXT: u32 = 0x304;
pub const T_REQUIRED_MEMORY: u32 = 0x305;
pub const T_VP_COUNT: u32 = 0x307;
pub const T_MADT: u32 = 0x309;
pub const T_MMIO_RANGES: u32 = 0x30A;
pub const T_SNP_ID_BLOCK: u32 = 0x30B;
pub const T_MEMORY_MAP: u32 = 0x30C;
pub const T_ERROR_RANGE: u32 = 0x30D;
pub const T_COMMAND_LINE: u32 = 0x30E;
pub const T_VBS_MEASUREMENT: u32 = 0x311;
pub const OPTIONAL_BIT: u32 = 1 << 31;

/// The SEV-SNP compatibility mask used by most test files.
pub const SNP: u32 = 0x1;
/// A second platform's mask (TDX in most tests).
pub const TDX: u32 = 0x2;
/// The GPA KVM uses for VMSAs; not 2 MiB aligned.
pub const VMSA_GPA: u64 = 0xFFFF_FFFF_F000;
/// SVSM's default policy (SMT + reserved bit 17).
pub const POLICY: u64 = 0x30000;

// ----- builders -----

pub fn platform(mask: u32, platform_type: IgvmPlatformType) -> P {
    P::SupportedPlatform(IGVM_VHS_SUPPORTED_PLATFORM {
        compatibility_mask: mask,
        highest_vtl: 0,
        platform_type,
        platform_version: 1,
        shared_gpa_boundary: 0,
    })
}

pub fn snp_platform() -> P {
    platform(SNP, IgvmPlatformType::SEV_SNP)
}

pub fn policy(policy: u64, mask: u32) -> I {
    I::GuestPolicy {
        policy,
        compatibility_mask: mask,
    }
}

pub fn page_typed(
    gpa: u64,
    mask: u32,
    flags: IgvmPageDataFlags,
    data_type: IgvmPageDataType,
    data: Vec<u8>,
) -> D {
    D::PageData {
        gpa,
        compatibility_mask: mask,
        flags,
        data_type,
        data,
    }
}

/// A NORMAL page for SEV-SNP.
pub fn page(gpa: u64, data: Vec<u8>) -> D {
    page_typed(
        gpa,
        SNP,
        IgvmPageDataFlags::new(),
        IgvmPageDataType::NORMAL,
        data,
    )
}

/// A NORMAL page for a given mask.
pub fn page_for(gpa: u64, mask: u32, data: Vec<u8>) -> D {
    page_typed(
        gpa,
        mask,
        IgvmPageDataFlags::new(),
        IgvmPageDataType::NORMAL,
        data,
    )
}

pub fn unmeasured(gpa: u64, data: Vec<u8>) -> D {
    page_typed(
        gpa,
        SNP,
        IgvmPageDataFlags::new().with_unmeasured(true),
        IgvmPageDataType::NORMAL,
        data,
    )
}

pub fn shared(gpa: u64, data: Vec<u8>) -> D {
    page_typed(
        gpa,
        SNP,
        IgvmPageDataFlags::new().with_shared(true),
        IgvmPageDataType::NORMAL,
        data,
    )
}

pub fn secrets(gpa: u64) -> D {
    page_typed(
        gpa,
        SNP,
        IgvmPageDataFlags::new(),
        IgvmPageDataType::SECRETS,
        Vec::new(),
    )
}

pub fn cpuid(gpa: u64, data: Vec<u8>) -> D {
    page_typed(
        gpa,
        SNP,
        IgvmPageDataFlags::new(),
        IgvmPageDataType::CPUID_DATA,
        data,
    )
}

/// A data-less 2 MiB page.
pub fn page_2m(gpa: u64) -> D {
    page_typed(
        gpa,
        SNP,
        IgvmPageDataFlags::new().with_is_2mb_page(true),
        IgvmPageDataType::NORMAL,
        Vec::new(),
    )
}

/// `n` bytes of a pattern that depends on `seed`.
pub fn pattern(seed: u8, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A boot VMSA with SNPActive set.
pub fn vmsa() -> Box<SevVmsa> {
    let mut v = SevVmsa::new_zeroed();
    v.sev_features = SevFeatures::new().with_snp(true);
    v.cr0 = 0x31;
    v.rip = 0xfff0;
    v.efer = 0x1000;
    Box::new(v)
}

pub fn vp_context(gpa: u64, mask: u32, vp_index: u16, vmsa: Box<SevVmsa>) -> D {
    D::SnpVpContext {
        gpa,
        compatibility_mask: mask,
        vp_index,
        vmsa,
    }
}

/// The usual boot VMSA directive.
pub fn boot_vmsa() -> D {
    vp_context(VMSA_GPA, SNP, 0, vmsa())
}

pub fn area(index: u32, bytes: u64) -> D {
    D::ParameterArea {
        number_of_bytes: bytes,
        parameter_area_index: index,
        initial_data: Vec::new(),
    }
}

pub fn area_with(index: u32, bytes: u64, initial: Vec<u8>) -> D {
    D::ParameterArea {
        number_of_bytes: bytes,
        parameter_area_index: index,
        initial_data: initial,
    }
}

pub fn param(index: u32, offset: u32) -> IGVM_VHS_PARAMETER {
    IGVM_VHS_PARAMETER {
        parameter_area_index: index,
        byte_offset: offset,
    }
}

pub fn insert(gpa: u64, mask: u32, index: u32) -> D {
    D::ParameterInsert(IGVM_VHS_PARAMETER_INSERT {
        gpa,
        compatibility_mask: mask,
        parameter_area_index: index,
    })
}

pub fn required(gpa: u64, bytes: u32) -> D {
    D::RequiredMemory {
        gpa,
        compatibility_mask: SNP,
        number_of_bytes: bytes,
        vtl2_protectable: false,
    }
}

pub fn error_range(gpa: u64, bytes: u32) -> D {
    D::ErrorRange {
        gpa,
        compatibility_mask: SNP,
        size_bytes: bytes,
    }
}

#[allow(unused_imports)] // not every suite uses it
pub use igvm_snp_test_support::id_block;

/// Builds with the igvm crate's builder and serializes.
pub fn build_rev(
    revision: IgvmRevision,
    platforms: Vec<P>,
    inits: Vec<I>,
    dirs: Vec<D>,
) -> Vec<u8> {
    let file = BuilderFile::new(revision, platforms, inits, dirs).expect("igvm builder accepts");
    let mut out = Vec::new();
    file.serialize(&mut out).expect("igvm serialize");
    out
}

pub fn build(platforms: Vec<P>, inits: Vec<I>, dirs: Vec<D>) -> Vec<u8> {
    build_rev(IgvmRevision::V1, platforms, inits, dirs)
}

/// An SEV-SNP-only v1 file with policy 0x30000 and the given directives.
pub fn snp_file(dirs: Vec<D>) -> Vec<u8> {
    build(vec![snp_platform()], vec![policy(POLICY, SNP)], dirs)
}

/// A small valid SEV-SNP file: two pages, a parameter area with a VP count,
/// its insert, a required-memory range, an error range, the VMSA.
pub fn base_dirs() -> Vec<D> {
    vec![
        area(0, 4096),
        D::VpCount(param(0, 0)),
        insert(0x10000, SNP, 0),
        page(0x1000, pattern(1, 4096)),
        page(0x2000, Vec::new()),
        required(0x100000, 0x10000),
        error_range(0x200000, 0x1000),
        boot_vmsa(),
    ]
}

pub fn base_file() -> Vec<u8> {
    snp_file(base_dirs())
}

/// A configuration with one vCPU and 16 MiB of RAM at 0.
pub fn config() -> LaunchConfig {
    LaunchConfig::new(1, vec![GpaRange::new(0, 16 << 20)])
}

// ----- byte-level reading and editing -----

pub fn get_u16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
}
pub fn get_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}
pub fn set_u8(b: &mut [u8], off: usize, v: u8) {
    b[off] = v;
}
pub fn set_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
pub fn set_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
pub fn set_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Fixed-header field offsets (IGVM_FIXED_HEADER).
pub const FH_VERSION: usize = 4;
pub const FH_VAR_OFFSET: usize = 8;
pub const FH_VAR_SIZE: usize = 12;
pub const FH_TOTAL_SIZE: usize = 16;
pub const FH_CHECKSUM: usize = 20;

/// One type-length-value header of a serialized file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv {
    /// File offset of the 8-byte type/length prefix.
    pub offset: usize,
    pub typ: u32,
    pub length: u32,
}

impl Tlv {
    /// File offset of the body.
    pub fn body(&self) -> usize {
        self.offset + 8
    }
}

/// The variable-header section of a well-formed file.
pub fn var_section(b: &[u8]) -> (usize, usize) {
    let start = get_u32(b, FH_VAR_OFFSET) as usize;
    (start, start + get_u32(b, FH_VAR_SIZE) as usize)
}

/// Every TLV of a well-formed file, in order (walked here, not by the
/// crate under test).
pub fn tlvs(b: &[u8]) -> Vec<Tlv> {
    let (mut pos, end) = var_section(b);
    let mut out = Vec::new();
    while pos < end {
        let t = Tlv {
            offset: pos,
            typ: get_u32(b, pos),
            length: get_u32(b, pos + 4),
        };
        out.push(t);
        pos += (8 + t.length as usize).div_ceil(8) * 8;
    }
    out
}

/// The `nth` TLV of a type.
pub fn find(b: &[u8], typ: u32, nth: usize) -> Tlv {
    *tlvs(b)
        .iter()
        .filter(|t| t.typ == typ)
        .nth(nth)
        .unwrap_or_else(|| panic!("no TLV #{nth} of type {typ:#x}"))
}

/// Index of a TLV within its section, as `HeaderRef::index` counts it.
pub fn section_index(b: &[u8], tlv: Tlv) -> usize {
    let section = |t: u32| match t & !OPTIONAL_BIT {
        0x1..=0x100 => 0,
        0x101..=0x200 => 1,
        _ => 2,
    };
    tlvs(b)
        .iter()
        .take_while(|t| t.offset < tlv.offset)
        .filter(|t| section(t.typ) == section(tlv.typ))
        .count()
}

/// A copy of `b` edited by `f`, with the checksum recomputed so that the
/// parser reaches the checks after the CRC.
pub fn edit(b: &[u8], f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = b.to_vec();
    f(&mut out);
    igvm_snp::parse::fix_checksum(&mut out);
    out
}

/// Body offset of the `file_offset` field of the header types that have one.
fn file_offset_field(typ: u32) -> Option<usize> {
    match typ {
        T_PAGE_DATA | T_PARAMETER_AREA | T_VP_CONTEXT => Some(12),
        0x104 | 0x105 => Some(4),
        _ => None,
    }
}

/// Moves everything from `at` by `delta` bytes: updates section size, total
/// size and every absolute `file_offset`, then recomputes the checksum.
fn shift(mut out: Vec<u8>, skip: Option<usize>, delta: i64) -> Vec<u8> {
    let adj = |v: u32| (i64::from(v) + delta) as u32;
    let size = get_u32(&out, FH_VAR_SIZE);
    set_u32(&mut out, FH_VAR_SIZE, adj(size));
    let total = get_u32(&out, FH_TOTAL_SIZE);
    set_u32(&mut out, FH_TOTAL_SIZE, adj(total));
    for t in tlvs(&out) {
        if Some(t.offset) == skip {
            continue;
        }
        if let Some(f) = file_offset_field(t.typ) {
            let v = get_u32(&out, t.body() + f);
            if v != 0 {
                set_u32(&mut out, t.body() + f, adj(v));
            }
        }
    }
    igvm_snp::parse::fix_checksum(&mut out);
    out
}

/// Inserts a TLV before the `before`-th TLV of the file (or at the end of
/// the section when `before` is the TLV count), fixing sizes, file offsets
/// and checksum.
pub fn insert_tlv(b: &[u8], before: usize, typ: u32, body: &[u8]) -> Vec<u8> {
    let all = tlvs(b);
    let pos = all.get(before).map_or(var_section(b).1, |t| t.offset);
    let mut tlv = Vec::new();
    tlv.extend_from_slice(&typ.to_le_bytes());
    tlv.extend_from_slice(&(body.len() as u32).to_le_bytes());
    tlv.extend_from_slice(body);
    tlv.resize(tlv.len().div_ceil(8) * 8, 0);
    let n = tlv.len();
    let mut out = b[..pos].to_vec();
    out.extend_from_slice(&tlv);
    out.extend_from_slice(&b[pos..]);
    shift(out, Some(pos), n as i64)
}

/// Removes the `index`-th TLV, fixing sizes, file offsets and checksum.
pub fn remove_tlv(b: &[u8], index: usize) -> Vec<u8> {
    let all = tlvs(b);
    let t = all[index];
    let n = (8 + t.length as usize).div_ceil(8) * 8;
    let mut out = b[..t.offset].to_vec();
    out.extend_from_slice(&b[t.offset + n..]);
    shift(out, None, -(n as i64))
}

/// Index (among all TLVs) of the `nth` TLV of a type.
pub fn tlv_index(b: &[u8], typ: u32, nth: usize) -> usize {
    let t = find(b, typ, nth);
    tlvs(b).iter().position(|x| *x == t).unwrap()
}

// ----- independent SEV-SNP measurement model (the oracle) -----

/// SHA-384 of a page given as a prefix (zero-padded to 4096 bytes).
pub fn sha384_page(data: &[u8]) -> [u8; 48] {
    static ZERO: std::sync::OnceLock<[u8; 48]> = std::sync::OnceLock::new();
    if data.is_empty() {
        return *ZERO.get_or_init(|| Sha384::digest([0u8; 4096]).into());
    }
    let mut page = vec![0u8; 4096];
    page[..data.len()].copy_from_slice(data);
    Sha384::digest(&page).into()
}

/// One SNP_LAUNCH_UPDATE page: GPA, firmware page type, CONTENTS field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OraclePage {
    pub gpa: u64,
    pub page_type: u8,
    pub contents: [u8; 48],
}

/// Extends a launch digest by one page: SHA-384 over the 112-byte
/// PAGE_INFO laid out by hand from the AMD ABI table (notes §2).
pub fn page_info_update(ld: &[u8; 48], page: &OraclePage) -> [u8; 48] {
    let mut info = [0u8; 112];
    info[0x00..0x30].copy_from_slice(ld);
    info[0x30..0x60].copy_from_slice(&page.contents);
    info[0x60..0x62].copy_from_slice(&0x70u16.to_le_bytes());
    info[0x62] = page.page_type;
    // 0x63 IMI_PAGE, 0x64..0x68 reserved and VMPL permissions: all zero.
    info[0x68..0x70].copy_from_slice(&page.gpa.to_le_bytes());
    Sha384::digest(info).into()
}

/// The launch digest of a page sequence, and the running digest after each.
pub fn oracle_chain(pages: &[OraclePage]) -> ([u8; 48], Vec<[u8; 48]>) {
    let mut ld = [0u8; 48];
    let mut trace = Vec::with_capacity(pages.len());
    for p in pages {
        ld = page_info_update(&ld, p);
        trace.push(ld);
    }
    (ld, trace)
}

/// Planner options the oracle models (mirrors `PlanOptions`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OracleOpts {
    pub native_zero: bool,
    pub shared_measured: bool,
    pub insert_first_page_only: bool,
}

/// What one oracle step came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OracleKind {
    Page,
    Insert,
    Vmsa,
}

/// A coalesced step as the oracle expects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OracleStep {
    pub gpa: u64,
    pub pages: u64,
    pub page_type: u8,
    pub kind: OracleKind,
}

/// The page sequence the IGVM spec rules (notes §4, §8) give for a list of
/// builder directives on the platform `mask`, plus the coalesced steps:
/// consecutive page-data pages of one type with contiguous GPAs form one
/// step; inserts and the VMSA are steps of their own and end a run;
/// directives of other platforms and non-page directives do not.
pub fn oracle(dirs: &[D], mask: u32, o: OracleOpts) -> (Vec<OraclePage>, Vec<OracleStep>) {
    let mut pages = Vec::new();
    let mut steps: Vec<OracleStep> = Vec::new();
    let mut run_open = false;
    let mut areas = std::collections::HashMap::new();
    for d in dirs {
        if let Some(m) = d.compatibility_mask() {
            if m & mask == 0 {
                continue;
            }
        }
        match d {
            D::PageData {
                gpa,
                flags,
                data_type,
                data,
                ..
            } => {
                let (ty, contents) = match *data_type {
                    IgvmPageDataType::SECRETS => (5, None),
                    IgvmPageDataType::CPUID_DATA | IgvmPageDataType::CPUID_XF => (6, None),
                    _ if flags.shared() && !o.shared_measured => continue,
                    _ if flags.unmeasured() => (4, None),
                    _ if data.is_empty() && o.native_zero => (3, None),
                    _ => (1, Some(sha384_page(data))),
                };
                let n = if flags.is_2mb_page() { 512 } else { 1 };
                for i in 0..n {
                    pages.push(OraclePage {
                        gpa: gpa + i * 4096,
                        page_type: ty,
                        contents: contents.unwrap_or([0; 48]),
                    });
                }
                match steps.last_mut() {
                    Some(s) if run_open && s.page_type == ty && s.gpa + s.pages * 4096 == *gpa => {
                        s.pages += n;
                    }
                    _ => steps.push(OracleStep {
                        gpa: *gpa,
                        pages: n,
                        page_type: ty,
                        kind: OracleKind::Page,
                    }),
                }
                run_open = true;
            }
            D::ParameterArea {
                number_of_bytes,
                parameter_area_index,
                ..
            } => {
                areas.insert(*parameter_area_index, *number_of_bytes);
            }
            D::ParameterInsert(p) => {
                let n = if o.insert_first_page_only {
                    1
                } else {
                    areas[&p.parameter_area_index] / 4096
                };
                for i in 0..n {
                    pages.push(OraclePage {
                        gpa: p.gpa + i * 4096,
                        page_type: 4,
                        contents: [0; 48],
                    });
                }
                steps.push(OracleStep {
                    gpa: p.gpa,
                    pages: n,
                    page_type: 4,
                    kind: OracleKind::Insert,
                });
                run_open = false;
            }
            D::SnpVpContext { gpa, vmsa, .. } => {
                pages.push(OraclePage {
                    gpa: *gpa,
                    page_type: 2,
                    contents: Sha384::digest(vmsa.as_bytes()).into(),
                });
                steps.push(OracleStep {
                    gpa: *gpa,
                    pages: 1,
                    page_type: 2,
                    kind: OracleKind::Vmsa,
                });
                run_open = false;
            }
            _ => {}
        }
    }
    (pages, steps)
}

/// Upper-case hex, as igvmmeasure prints digests.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// Bytes from hex (either case).
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A small deterministic PRNG (xorshift64*) for the file generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform-ish in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Checks a plan's digest and its trace, page by page (GPA, type, CONTENTS,
/// running digest), against the oracle's page list.
pub fn assert_matches_oracle(plan: &igvm_snp::LaunchPlan<'_>, pages: &[OraclePage], ctx: &str) {
    let (ld, running) = oracle_chain(pages);
    let trace = plan.measure_trace();
    assert_eq!(trace.len(), pages.len(), "{ctx}");
    for ((t, p), d) in trace.iter().zip(pages).zip(&running) {
        assert_eq!(
            (t.gpa, t.page_type.value(), t.contents.0, t.digest.0),
            (p.gpa, p.page_type, p.contents, *d),
            "{ctx}"
        );
    }
    assert_eq!(plan.launch_digest().0, ld, "{ctx}");
}

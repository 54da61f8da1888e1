//! Every validation rule of the parser and the planner, each with an input
//! that breaks it and the exact typed error (variant and location fields)
//! it must produce. Inputs are built with the `igvm` crate's builder and,
//! where the builder refuses to produce them, by editing the serialized
//! bytes (with the checksum recomputed so the later checks are reached).

mod common;

use common::*;
use igvm::IgvmRevision;
use igvm_defs::{IgvmPageDataFlags, IgvmPageDataType, IgvmPlatformType};
use igvm_snp::parse::{DirectiveKind, MAX_PARAMETER_AREA_BYTES, MAX_TOTAL_PARAMETER_BYTES};
use igvm_snp::{
    Error, GpaRange, HeaderRef, IgvmFile, LaunchConfig, LaunchDigest, LaunchPlan, PlanOptions,
    PolicySource, Section,
};

fn parse_err(b: &[u8]) -> Error {
    let err = IgvmFile::parse(b).expect_err("parse must fail");
    // Planning parses first, so it must fail the same way.
    let plan = LaunchPlan::new(b, &config(), PlanOptions::default()).expect_err("plan must fail");
    assert_eq!(err, plan, "parse and plan disagree");
    err
}

fn plan_with(b: &[u8], cfg: &LaunchConfig) -> Error {
    IgvmFile::parse(b).expect("the file itself parses");
    LaunchPlan::new(b, cfg, PlanOptions::default()).expect_err("plan must fail")
}

fn plan_err(b: &[u8]) -> Error {
    plan_with(b, &config())
}

fn plans(b: &[u8]) -> LaunchPlan<'_> {
    LaunchPlan::new(b, &config(), PlanOptions::default()).expect("plan succeeds")
}

fn at(b: &[u8], section: Section, typ: u32, nth: usize) -> HeaderRef {
    let t = find(b, typ, nth);
    HeaderRef {
        section,
        index: section_index(b, t),
        offset: t.offset,
    }
}

fn dir(b: &[u8], typ: u32, nth: usize) -> HeaderRef {
    at(b, Section::Directive, typ, nth)
}

fn init(b: &[u8], typ: u32, nth: usize) -> HeaderRef {
    at(b, Section::Initialization, typ, nth)
}

fn plat(b: &[u8], nth: usize) -> HeaderRef {
    at(b, Section::Platform, T_PLATFORM, nth)
}

/// Edits a field of the `nth` TLV of type `typ`, at `field` bytes into its body.
fn edit_field(b: &[u8], typ: u32, nth: usize, f: impl FnOnce(&mut Vec<u8>, usize)) -> Vec<u8> {
    let body = find(b, typ, nth).body();
    edit(b, |v| f(v, body))
}

fn v2_file() -> Vec<u8> {
    build_rev(
        IgvmRevision::V2 {
            arch: igvm::Arch::X64,
            page_size: 4096,
        },
        vec![snp_platform()],
        vec![policy(POLICY, SNP)],
        base_dirs(),
    )
}

// ---------------------------------------------------------------- fixed header

#[test]
fn base_files_are_valid() {
    plans(&base_file());
    plans(&v2_file());
}

#[test]
fn truncated_fixed_header() {
    let b = base_file();
    assert_eq!(
        parse_err(&b[..10]),
        Error::TruncatedFixedHeader {
            len: 10,
            needed: 24
        }
    );
    assert_eq!(
        parse_err(&[]),
        Error::TruncatedFixedHeader { len: 0, needed: 24 }
    );
    // A v2 header is 32 bytes; 28 are enough for v1 fields only.
    let v2 = v2_file();
    assert_eq!(
        parse_err(&v2[..28]),
        Error::TruncatedFixedHeader {
            len: 28,
            needed: 32
        }
    );
}

#[test]
fn bad_magic() {
    let b = edit(&base_file(), |v| v[0..4].copy_from_slice(b"XGVM"));
    assert_eq!(
        parse_err(&b),
        Error::BadMagic {
            found: u32::from_le_bytes(*b"XGVM")
        }
    );
}

#[test]
fn bad_version() {
    for version in [0, 3, u32::MAX] {
        let b = edit(&base_file(), |v| set_u32(v, FH_VERSION, version));
        assert_eq!(parse_err(&b), Error::UnsupportedVersion(version));
    }
}

#[test]
fn v2_architecture_and_page_size() {
    let b = edit(&v2_file(), |v| set_u32(v, 24, 1));
    assert_eq!(parse_err(&b), Error::UnsupportedArchitecture(1));
    let b = edit(&v2_file(), |v| set_u32(v, 28, 8192));
    assert_eq!(parse_err(&b), Error::UnsupportedPageSize(8192));
}

#[test]
fn total_file_size_mismatch() {
    let mut b = base_file();
    let len = b.len();
    b.push(0);
    assert_eq!(
        parse_err(&b),
        Error::FileSizeMismatch {
            header: len as u32,
            actual: len + 1
        }
    );
    let b = edit(&base_file(), |v| set_u32(v, FH_TOTAL_SIZE, 7));
    assert_eq!(
        parse_err(&b),
        Error::FileSizeMismatch {
            header: 7,
            actual: len
        }
    );
}

#[test]
fn variable_header_section_out_of_bounds() {
    let b = base_file();
    let size = get_u32(&b, FH_VAR_SIZE);
    // Starts inside the fixed header.
    let e = edit(&b, |v| set_u32(v, FH_VAR_OFFSET, 16));
    assert_eq!(
        parse_err(&e),
        Error::VariableHeaderSectionOutOfBounds {
            offset: 16,
            size,
            fixed_len: 24,
            file_len: b.len()
        }
    );
    // Ends past the end of the file.
    let e = edit(&b, |v| set_u32(v, FH_VAR_SIZE, u32::MAX));
    assert_eq!(
        parse_err(&e),
        Error::VariableHeaderSectionOutOfBounds {
            offset: 24,
            size: u32::MAX,
            fixed_len: 24,
            file_len: b.len()
        }
    );
    // v2: 24 is inside the 32-byte fixed header.
    let v2 = v2_file();
    let size2 = get_u32(&v2, FH_VAR_SIZE);
    let e = edit(&v2, |v| set_u32(v, FH_VAR_OFFSET, 24));
    assert_eq!(
        parse_err(&e),
        Error::VariableHeaderSectionOutOfBounds {
            offset: 24,
            size: size2,
            fixed_len: 32,
            file_len: v2.len()
        }
    );
}

#[test]
fn variable_header_section_unaligned() {
    let b = base_file();
    let size = get_u32(&b, FH_VAR_SIZE);
    let e = edit(&b, |v| {
        set_u32(v, FH_VAR_OFFSET, 28);
        set_u32(v, FH_VAR_SIZE, size - 4);
    });
    assert_eq!(
        parse_err(&e),
        Error::VariableHeaderSectionUnaligned { offset: 28 }
    );
}

#[test]
fn checksum_mismatch() {
    let b = base_file();
    let stored = get_u32(&b, FH_CHECKSUM);
    let mut e = b.clone();
    let body = find(&b, T_PAGE_DATA, 0).body();
    e[body] ^= 0x10; // gpa 0x1000 -> 0x1010: the CRC check comes first
    // CRC-32 computed here, independently: fixed header with the checksum
    // zeroed, then the variable-header section.
    let (vs, ve) = var_section(&e);
    let mut h = crc32fast::Hasher::new();
    h.update(&e[..FH_CHECKSUM]);
    h.update(&[0; 4]);
    h.update(&e[vs..ve]);
    let computed = h.finalize();
    assert_ne!(computed, stored);
    assert_eq!(
        parse_err(&e),
        Error::ChecksumMismatch {
            header: stored,
            computed
        }
    );
    // The CRC does not cover the file data: changing page contents keeps the
    // file valid.
    let data = get_u32(&b, body + 12) as usize;
    let mut d = b.clone();
    d[data] ^= 0xff;
    IgvmFile::parse(&d).expect("file data is not checksummed");
}

// ---------------------------------------------------------------- TLV walk

#[test]
fn truncated_header() {
    let b = base_file();
    let (vs, ve) = var_section(&b);
    // A length running past the section.
    let t = find(&b, T_ERROR_RANGE, 0);
    let e = edit(&b, |v| set_u32(v, t.offset + 4, 0xFFFF_FFF0));
    assert_eq!(
        parse_err(&e),
        Error::TruncatedHeader {
            offset: t.offset,
            needed: 8 + 0xFFFF_FFF0,
            available: ve - t.offset
        }
    );
    // A section that ends 4 bytes into the last header's type/length.
    let last = *tlvs(&b).last().unwrap();
    let e = edit(&b, |v| {
        set_u32(v, FH_VAR_SIZE, (last.offset + 4 - vs) as u32)
    });
    assert_eq!(
        parse_err(&e),
        Error::TruncatedHeader {
            offset: last.offset,
            needed: 8,
            available: 4
        }
    );
    // A section that ends inside the last header's body.
    let e = edit(&b, |v| {
        set_u32(v, FH_VAR_SIZE, (last.offset + 12 - vs) as u32)
    });
    assert_eq!(
        parse_err(&e),
        Error::TruncatedHeader {
            offset: last.offset,
            needed: 8 + last.length as usize,
            available: 12
        }
    );
}

#[test]
fn unknown_header_type() {
    let b = base_file();
    let t = find(&b, T_ERROR_RANGE, 0);
    for typ in [0x3FF, 0x250, 0x0] {
        let e = edit(&b, |v| set_u32(v, t.offset, typ));
        assert_eq!(
            parse_err(&e),
            Error::UnknownHeaderType {
                offset: t.offset,
                typ
            }
        );
    }
    // Platform section: an optional unknown platform header cannot be skipped.
    let p = find(&b, T_PLATFORM, 0);
    let e = insert_tlv(&b, 1, 0x0FF | OPTIONAL_BIT, &[0; 16]);
    assert_eq!(
        parse_err(&e),
        Error::UnknownHeaderType {
            offset: p.offset + 24,
            typ: 0x0FF | OPTIONAL_BIT
        }
    );
}

#[test]
fn optional_unknown_header_is_skipped() {
    let b = base_file();
    let t = find(&b, T_ERROR_RANGE, 0);
    for typ in [0x3FF | OPTIONAL_BIT, 0x250 | OPTIONAL_BIT] {
        let e = edit(&b, |v| set_u32(v, t.offset, typ));
        let file = IgvmFile::parse(&e).expect("optional unknown header is skipped");
        let d = &file.directives()[section_index(&b, t)];
        assert!(matches!(d.kind, DirectiveKind::Optional { typ: x } if x == typ));
        let plan = plans(&e);
        // The replaced error range is gone; everything else is unchanged.
        assert!(plan.error_ranges().is_empty());
        assert_eq!(plan.launch_digest(), plans(&b).launch_digest());
    }
    // An optional header in the initialization section too.
    let e = insert_tlv(&b, 2, 0x1FF | OPTIONAL_BIT, b"anything");
    assert_eq!(plans(&e).launch_digest(), plans(&b).launch_digest());
}

#[test]
fn wrong_header_length() {
    let b = base_file();
    // VP_CONTEXT's body is 20 bytes, stored padded to 24: the length field
    // must still say 20.
    let cases = [
        (T_PAGE_DATA, Section::Directive, "PAGE_DATA", 16, 24),
        (T_VP_CONTEXT, Section::Directive, "VP_CONTEXT", 24, 20),
        (T_PLATFORM, Section::Platform, "SUPPORTED_PLATFORM", 8, 16),
    ];
    for (typ, section, name, length, expected) in cases {
        let e = edit(&b, |v| set_u32(v, find(&b, typ, 0).offset + 4, length));
        assert_eq!(
            parse_err(&e),
            Error::HeaderLength {
                at: at(&b, section, typ, 0),
                name,
                length,
                expected
            }
        );
    }
}

#[test]
fn header_out_of_section_order() {
    let b = base_file();
    // An initialization header (same 16-byte size) among the directives.
    let t = find(&b, T_ERROR_RANGE, 0);
    let e = edit(&b, |v| set_u32(v, t.offset, T_GUEST_POLICY));
    assert_eq!(
        parse_err(&e),
        Error::HeaderOutOfOrder {
            at: HeaderRef {
                section: Section::Initialization,
                index: 1,
                offset: t.offset
            },
            name: "GUEST_POLICY",
            after: "directive"
        }
    );
    // A platform header after the initialization section: a version string
    // opens that section, then the guest policy becomes a platform header.
    let b = insert_tlv(&b, 1, T_VERSION_STRING, b"1.0");
    let t = find(&b, T_GUEST_POLICY, 0);
    let e = edit(&b, |v| set_u32(v, t.offset, T_PLATFORM));
    assert_eq!(
        parse_err(&e),
        Error::HeaderOutOfOrder {
            at: HeaderRef {
                section: Section::Platform,
                index: 1,
                offset: t.offset
            },
            name: "SUPPORTED_PLATFORM",
            after: "initialization"
        }
    );
}

#[test]
fn non_zero_padding() {
    let b = base_file();
    let t = find(&b, T_VP_CONTEXT, 0);
    assert_eq!(t.length, 20);
    let e = edit(&b, |v| v[t.body() + 21] = 1);
    assert_eq!(parse_err(&e), Error::NonZeroPadding { offset: t.offset });
}

#[test]
fn reserved_fields_non_zero() {
    let b = snp_file([base_dirs(), vec![id_block([0; 48])]].concat());
    let cases: [(u32, usize, &str, &str, Section); 6] = [
        (T_PAGE_DATA, 22, "PAGE_DATA", "reserved", Section::Directive),
        (
            T_GUEST_POLICY,
            12,
            "GUEST_POLICY",
            "reserved",
            Section::Initialization,
        ),
        (
            T_VP_CONTEXT,
            18,
            "VP_CONTEXT",
            "reserved",
            Section::Directive,
        ),
        (
            T_REQUIRED_MEMORY,
            20,
            "REQUIRED_MEMORY",
            "reserved",
            Section::Directive,
        ),
        // RequiredMemoryFlags: bit 0 vtl2_protectable, the rest reserved.
        (
            T_REQUIRED_MEMORY,
            16,
            "REQUIRED_MEMORY",
            "flags",
            Section::Directive,
        ),
        (
            T_SNP_ID_BLOCK,
            5,
            "SNP_ID_BLOCK",
            "reserved",
            Section::Directive,
        ),
    ];
    for (typ, field_at, name, field, section) in cases {
        let e = edit_field(&b, typ, 0, |v, body| v[body + field_at] = 2);
        assert_eq!(
            parse_err(&e),
            Error::ReservedNotZero {
                at: at(&b, section, typ, 0),
                name,
                field
            },
            "{name}.{field}"
        );
    }
    // PAGE_TABLE_RELOCATION_REGION: mask, vp_index u16, vtl u8, reserved u8.
    let mut body = vec![0u8; 32];
    body[0] = 1;
    body[7] = 1;
    let e = insert_tlv(&b, 2, T_PT_RELOCATION, &body);
    assert_eq!(
        parse_err(&e),
        Error::ReservedNotZero {
            at: init(&e, T_PT_RELOCATION, 0),
            name: "PAGE_TABLE_RELOCATION_REGION",
            field: "reserved"
        }
    );
}

#[test]
fn file_data_out_of_bounds() {
    let b = base_file();
    let (_, data_start) = var_section(&b);
    let len = b.len();
    let page = find(&b, T_PAGE_DATA, 0);
    for off in [8u32, (data_start - 8) as u32, (len - 100) as u32, u32::MAX] {
        let e = edit(&b, |v| set_u32(v, page.body() + 12, off));
        assert_eq!(
            parse_err(&e),
            Error::FileDataOutOfBounds {
                at: dir(&b, T_PAGE_DATA, 0),
                file_offset: off,
                len: 4096,
                data_start,
                file_len: len
            },
            "page data at {off:#x}"
        );
    }
    let vp = find(&b, T_VP_CONTEXT, 0);
    for off in [8u32, len as u32] {
        let e = edit(&b, |v| set_u32(v, vp.body() + 12, off));
        assert_eq!(
            parse_err(&e),
            Error::FileDataOutOfBounds {
                at: dir(&b, T_VP_CONTEXT, 0),
                file_offset: off,
                len: 4096,
                data_start,
                file_len: len
            }
        );
    }
    // A VMSA that is cut short by the end of the file: found when planning.
    let e = edit(&b, |v| set_u32(v, vp.body() + 12, (len - 100) as u32));
    assert_eq!(
        plan_err(&e),
        Error::FileDataOutOfBounds {
            at: dir(&b, T_VP_CONTEXT, 0),
            file_offset: (len - 100) as u32,
            len: 4096,
            data_start,
            file_len: len
        }
    );
    // A parameter area whose initial data would run past the file.
    let a = find(&b, T_PARAMETER_AREA, 0);
    let e = edit(&b, |v| set_u32(v, a.body() + 12, data_start as u32));
    let e = edit(&e, |v| set_u64(v, a.body(), 0x10_0000));
    assert_eq!(
        parse_err(&e),
        Error::FileDataOutOfBounds {
            at: dir(&b, T_PARAMETER_AREA, 0),
            file_offset: data_start as u32,
            len: 0x10_0000,
            data_start,
            file_len: len
        }
    );
}

/// A parameter area size near `u64::MAX` with initial data used to overflow
/// `file_offset + len` (a panic in debug builds, an out-of-range slice in
/// release builds).
#[test]
fn parameter_area_initial_data_size_overflow() {
    let b = base_file();
    let (_, data_start) = var_section(&b);
    let a = find(&b, T_PARAMETER_AREA, 0);
    for size in [
        u64::MAX,
        u64::MAX - 4095,
        u64::MAX - (data_start as u64) + 1,
    ] {
        let e = edit(&b, |v| {
            set_u32(v, a.body() + 12, data_start as u32);
            set_u64(v, a.body(), size);
        });
        assert_eq!(
            parse_err(&e),
            Error::FileDataOutOfBounds {
                at: dir(&b, T_PARAMETER_AREA, 0),
                file_offset: data_start as u32,
                len: size,
                data_start,
                file_len: b.len()
            }
        );
    }
}

// ---------------------------------------------------------------- platforms

fn snp_tdx_file() -> Vec<u8> {
    build(
        vec![snp_platform(), platform(TDX, IgvmPlatformType::TDX)],
        vec![policy(POLICY, SNP)],
        [vec![page_for(0x1000, TDX, pattern(9, 4096))], base_dirs()].concat(),
    )
}

#[test]
fn platform_mask_not_one_bit() {
    let b = base_file();
    for mask in [0u32, 3, 0x8000_0001] {
        let e = edit_field(&b, T_PLATFORM, 0, |v, body| set_u32(v, body, mask));
        assert_eq!(
            parse_err(&e),
            Error::PlatformMaskNotOneBit {
                at: plat(&b, 0),
                mask
            }
        );
    }
}

#[test]
fn duplicate_platform_type_and_mask() {
    let b = snp_tdx_file();
    plans(&b);
    let e = edit_field(&b, T_PLATFORM, 1, |v, body| v[body + 5] = 2);
    assert_eq!(
        parse_err(&e),
        Error::DuplicatePlatformType {
            at: plat(&b, 1),
            platform: "SEV_SNP".into()
        }
    );
    let e = edit_field(&b, T_PLATFORM, 1, |v, body| set_u32(v, body, SNP));
    assert_eq!(
        parse_err(&e),
        Error::DuplicatePlatformMask {
            at: plat(&b, 1),
            mask: SNP
        }
    );
}

#[test]
fn platform_version_and_highest_vtl() {
    let b = base_file();
    let e = edit_field(&b, T_PLATFORM, 0, |v, body| set_u16(v, body + 6, 2));
    assert_eq!(
        parse_err(&e),
        Error::UnsupportedPlatformVersion {
            at: plat(&b, 0),
            platform: "SEV_SNP".into(),
            version: 2
        }
    );
    for vtl in [1u8, 3, 0xff] {
        let e = edit_field(&b, T_PLATFORM, 0, |v, body| v[body + 4] = vtl);
        assert_eq!(
            parse_err(&e),
            Error::InvalidHighestVtl {
                at: plat(&b, 0),
                vtl
            }
        );
    }
    let e = edit_field(&b, T_PLATFORM, 0, |v, body| v[body + 4] = 2);
    assert_eq!(plans(&e).platform().highest_vtl, 2);
}

#[test]
fn no_platform() {
    // The only platform header turned into a version string (an
    // initialization header of any length).
    let b = base_file();
    let e = edit_field(&b, T_PLATFORM, 0, |v, body| {
        set_u32(v, body - 8, T_VERSION_STRING)
    });
    assert_eq!(parse_err(&e), Error::NoPlatforms);
    // Removed altogether (masks then match nothing, but the missing
    // platform is reported first).
    let e = remove_tlv(&b, 0);
    assert_eq!(parse_err(&e), Error::NoPlatforms);
}

#[test]
fn no_snp_platform_names_the_platforms_found() {
    let b = build(
        vec![
            platform(0x1, IgvmPlatformType::TDX),
            platform(0x2, IgvmPlatformType::VSM_ISOLATION),
        ],
        vec![],
        vec![page_for(0x1000, 0x1, pattern(1, 4096))],
    );
    let e = plan_err(&b);
    assert_eq!(
        e,
        Error::NoSnpPlatform {
            found: "TDX, VSM_ISOLATION".into()
        }
    );
    assert!(e.to_string().contains("TDX, VSM_ISOLATION"), "{e}");
}

#[test]
fn mask_matching_no_declared_platform() {
    let dirs = |mask| {
        let mut d = base_dirs();
        d.insert(3, page_for(0x5000, mask, pattern(2, 4096)));
        d
    };
    let b = snp_file(dirs(0x4));
    assert_eq!(
        parse_err(&b),
        Error::MaskMatchesNoPlatform {
            at: dir(&b, T_PAGE_DATA, 0),
            mask: 0x4,
            declared: SNP
        }
    );
    // Undeclared extra bits next to the SNP bit are accepted.
    let b = snp_file(dirs(0x17));
    let plan = plans(&b);
    assert!(plan.steps().iter().any(|s| s.gpa == 0x5000 && s.pages == 1));
    // Initialization headers too.
    let b = build(
        vec![snp_platform()],
        vec![policy(POLICY, SNP), policy(POLICY, 0x8)],
        base_dirs(),
    );
    assert_eq!(
        parse_err(&b),
        Error::MaskMatchesNoPlatform {
            at: init(&b, T_GUEST_POLICY, 1),
            mask: 0x8,
            declared: SNP
        }
    );
}

// ---------------------------------------------------------------- directives

#[test]
fn unaligned_gpas() {
    let b = base_file();
    let cases: [(u32, usize, u64, &str, u64); 7] = [
        (T_PAGE_DATA, 0, 0x1800, "gpa", 0x1000),
        (T_PARAMETER_INSERT, 0, 0x10_0010, "gpa", 0x1000),
        (T_VP_CONTEXT, 0, VMSA_GPA + 8, "gpa", 0x1000),
        (T_REQUIRED_MEMORY, 0, 0x10_0800, "gpa", 0x1000),
        (T_REQUIRED_MEMORY, 12, 0x1_0010, "number_of_bytes", 0x1000),
        (T_ERROR_RANGE, 0, 0x20_0001, "gpa", 0x1000),
        (T_ERROR_RANGE, 12, 0x800, "size_bytes", 0x1000),
    ];
    for (typ, field, value, what, align) in cases {
        let e = edit_field(&b, typ, 0, |v, body| {
            if field == 0 {
                set_u64(v, body, value)
            } else {
                set_u32(v, body + field, value as u32)
            }
        });
        assert_eq!(
            parse_err(&e),
            Error::Unaligned {
                at: dir(&b, typ, 0),
                what,
                value,
                align
            },
            "{typ:#x} {what}"
        );
    }
}

#[test]
fn two_mib_page_must_be_2mib_aligned() {
    let b = snp_file(vec![
        page_2m(0x20_1000),
        page(0x1000, pattern(1, 64)),
        boot_vmsa(),
    ]);
    assert_eq!(
        parse_err(&b),
        Error::Unaligned {
            at: dir(&b, T_PAGE_DATA, 0),
            what: "gpa",
            value: 0x20_1000,
            align: 0x20_0000
        }
    );
}

#[test]
fn unknown_page_data_type() {
    let b = base_file();
    for t in [4u16, 0xffff] {
        let e = edit_field(&b, T_PAGE_DATA, 0, |v, body| set_u16(v, body + 20, t));
        assert_eq!(
            parse_err(&e),
            Error::UnknownPageDataType {
                at: dir(&b, T_PAGE_DATA, 0),
                data_type: t
            }
        );
    }
}

#[test]
fn reserved_page_flags() {
    let b = base_file();
    for flags in [0x8u32, 0x8000_0000, 0xf] {
        let e = edit_field(&b, T_PAGE_DATA, 0, |v, body| set_u32(v, body + 16, flags));
        assert_eq!(
            parse_err(&e),
            Error::ReservedPageFlags {
                at: dir(&b, T_PAGE_DATA, 0),
                flags
            }
        );
    }
}

fn with_areas(areas: Vec<igvm::IgvmDirectiveHeader>) -> Vec<u8> {
    snp_file([areas, base_dirs()].concat())
}

#[test]
fn parameter_area_size_zero_or_not_page_multiple() {
    let b = with_areas(vec![area(1, 0)]);
    assert_eq!(
        parse_err(&b),
        Error::ParameterAreaSize {
            at: dir(&b, T_PARAMETER_AREA, 0),
            index: 1,
            size: 0
        }
    );
    let b = with_areas(vec![area(1, 4096)]);
    let e = edit_field(&b, T_PARAMETER_AREA, 0, |v, body| set_u64(v, body, 0x1800));
    assert_eq!(
        parse_err(&e),
        Error::ParameterAreaSize {
            at: dir(&b, T_PARAMETER_AREA, 0),
            index: 1,
            size: 0x1800
        }
    );
}

#[test]
fn parameter_area_over_the_limits() {
    let too_big = MAX_PARAMETER_AREA_BYTES + 4096;
    let b = with_areas(vec![area(1, too_big)]);
    assert_eq!(
        parse_err(&b),
        Error::ParameterAreaTooLarge {
            at: dir(&b, T_PARAMETER_AREA, 0),
            index: 1,
            size: too_big,
            limit: MAX_PARAMETER_AREA_BYTES
        }
    );
    // At the limit: accepted (nothing is allocated for it).
    plans(&with_areas(vec![area(1, MAX_PARAMETER_AREA_BYTES)]));
    // The total: n areas at the single-area limit fill the total limit
    // exactly, one more page is too much.
    let only = |areas: Vec<igvm::IgvmDirectiveHeader>| {
        snp_file([areas, vec![page(0x1000, pattern(1, 64)), boot_vmsa()]].concat())
    };
    let n = (MAX_TOTAL_PARAMETER_BYTES / MAX_PARAMETER_AREA_BYTES) as u32;
    let mut areas: Vec<_> = (1..=n).map(|i| area(i, MAX_PARAMETER_AREA_BYTES)).collect();
    plans(&only(areas.clone()));
    areas.push(area(n + 1, 4096));
    let b = only(areas);
    assert_eq!(
        parse_err(&b),
        Error::ParameterAreaTooLarge {
            at: dir(&b, T_PARAMETER_AREA, n as usize),
            index: n + 1,
            size: MAX_TOTAL_PARAMETER_BYTES + 4096,
            limit: MAX_TOTAL_PARAMETER_BYTES
        }
    );
}

#[test]
fn duplicate_parameter_area() {
    let b = with_areas(vec![area(1, 4096)]);
    let e = edit_field(&b, T_PARAMETER_AREA, 1, |v, body| set_u32(v, body + 8, 1));
    assert_eq!(
        parse_err(&e),
        Error::DuplicateParameterArea {
            at: dir(&b, T_PARAMETER_AREA, 1),
            index: 1
        }
    );
}

#[test]
fn parameter_or_insert_on_unknown_area() {
    let b = base_file();
    let e = edit_field(&b, T_VP_COUNT, 0, |v, body| set_u32(v, body, 9));
    assert_eq!(
        parse_err(&e),
        Error::UnknownParameterArea {
            at: dir(&b, T_VP_COUNT, 0),
            index: 9
        }
    );
    let e = edit_field(&b, T_PARAMETER_INSERT, 0, |v, body| {
        set_u32(v, body + 12, 9)
    });
    assert_eq!(
        parse_err(&e),
        Error::UnknownParameterArea {
            at: dir(&b, T_PARAMETER_INSERT, 0),
            index: 9
        }
    );
    // A parameter before its area is declared (the builder refuses that
    // order, so the index is edited afterwards).
    let b = snp_file(vec![
        area(1, 4096),
        igvm::IgvmDirectiveHeader::VpCount(param(1, 0)),
        area(0, 4096),
        page(0x1000, pattern(1, 64)),
        boot_vmsa(),
    ]);
    let b = edit_field(&b, T_VP_COUNT, 0, |v, body| set_u32(v, body, 0));
    assert_eq!(
        parse_err(&b),
        Error::UnknownParameterArea {
            at: dir(&b, T_VP_COUNT, 0),
            index: 0
        }
    );
}

#[test]
fn use_of_an_area_after_its_insert() {
    // area 0 inserted, then a parameter and an insert for area 1, edited
    // to name area 0.
    let b = snp_file(vec![
        area(0, 4096),
        insert(0x10000, SNP, 0),
        area(1, 4096),
        igvm::IgvmDirectiveHeader::VpCount(param(1, 0)),
        insert(0x20000, SNP, 1),
        page(0x1000, pattern(1, 64)),
        boot_vmsa(),
    ]);
    plans(&b);
    let inserted_by = dir(&b, T_PARAMETER_INSERT, 0).index;
    let e = edit_field(&b, T_VP_COUNT, 0, |v, body| set_u32(v, body, 0));
    assert_eq!(
        parse_err(&e),
        Error::ParameterAreaAlreadyInserted {
            at: dir(&b, T_VP_COUNT, 0),
            index: 0,
            inserted_by
        }
    );
    let e = edit_field(&b, T_PARAMETER_INSERT, 1, |v, body| {
        set_u32(v, body + 12, 0)
    });
    assert_eq!(
        parse_err(&e),
        Error::ParameterAreaAlreadyInserted {
            at: dir(&b, T_PARAMETER_INSERT, 1),
            index: 0,
            inserted_by
        }
    );
}

#[test]
fn fixed_size_parameter_out_of_bounds_at_parse_time() {
    use igvm::IgvmDirectiveHeader as D;
    type Ctor = fn(igvm_defs::IGVM_VHS_PARAMETER) -> D;
    let cases: [(Ctor, u32, &str, u64); 3] = [
        (D::VpCount, T_VP_COUNT, "VP_COUNT", 4),
        (D::EnvironmentInfo, 0x313, "ENVIRONMENT_INFO", 4),
        (D::MmioRanges, 0x30A, "MMIO_RANGES", 32),
    ];
    for (ctor, typ, kind, len) in cases {
        let fits = (4096 - len) as u32;
        let b = snp_file(vec![
            area(0, 4096),
            ctor(param(0, fits)),
            page(0x1000, pattern(1, 64)),
            boot_vmsa(),
        ]);
        plans(&b);
        let b = snp_file(vec![
            area(0, 4096),
            ctor(param(0, fits + 1)),
            page(0x1000, pattern(1, 64)),
            boot_vmsa(),
        ]);
        assert_eq!(
            parse_err(&b),
            Error::ParameterOutOfBounds {
                at: dir(&b, typ, 0),
                kind,
                index: 0,
                byte_offset: fits + 1,
                len,
                area_size: 4096
            }
        );
    }
    // A variable-size parameter must have at least one byte in the area.
    let b = snp_file(vec![
        area(0, 4096),
        D::CommandLine(param(0, 4096)),
        page(0x1000, pattern(1, 64)),
        boot_vmsa(),
    ]);
    assert_eq!(
        parse_err(&b),
        Error::ParameterOutOfBounds {
            at: dir(&b, T_COMMAND_LINE, 0),
            kind: "COMMAND_LINE",
            index: 0,
            byte_offset: 4096,
            len: 1,
            area_size: 4096
        }
    );
}

#[test]
fn variable_size_parameter_out_of_bounds_at_plan_time() {
    use igvm::IgvmDirectiveHeader as D;
    let file = |p: D| {
        snp_file(vec![
            area(0, 4096),
            p,
            page(0x1000, pattern(1, 64)),
            boot_vmsa(),
        ])
    };
    // Command line: 100 characters + NUL at 3995 fits exactly; at 3996 not.
    let cfg = config().with_command_line("x".repeat(100));
    let b = file(D::CommandLine(param(0, 3995)));
    LaunchPlan::new(&b, &cfg, PlanOptions::default()).expect("fits exactly");
    let b = file(D::CommandLine(param(0, 3996)));
    assert_eq!(
        plan_with(&b, &cfg),
        Error::ParameterOutOfBounds {
            at: dir(&b, T_COMMAND_LINE, 0),
            kind: "COMMAND_LINE",
            index: 0,
            byte_offset: 3996,
            len: 101,
            area_size: 4096
        }
    );
    // Memory map: one RAM range = one 24-byte entry + a 24-byte terminator.
    let b = file(D::MemoryMap(param(0, 4096 - 48)));
    plans(&b);
    let b = file(D::MemoryMap(param(0, 4096 - 47)));
    assert_eq!(
        plan_err(&b),
        Error::ParameterOutOfBounds {
            at: dir(&b, T_MEMORY_MAP, 0),
            kind: "MEMORY_MAP",
            index: 0,
            byte_offset: 4096 - 47,
            len: 48,
            area_size: 4096
        }
    );
    // MADT bytes from the configuration.
    let mut cfg = config();
    cfg.madt = Some(vec![0xAA; 200]);
    let b = file(D::Madt(param(0, 4000)));
    assert_eq!(
        plan_with(&b, &cfg),
        Error::ParameterOutOfBounds {
            at: dir(&b, T_MADT, 0),
            kind: "MADT",
            index: 0,
            byte_offset: 4000,
            len: 200,
            area_size: 4096
        }
    );
}

#[test]
fn parameter_values_that_cannot_be_encoded() {
    use igvm::IgvmDirectiveHeader as D;
    let b = snp_file(vec![
        area(0, 4096),
        D::CommandLine(param(0, 0)),
        D::MmioRanges(param(0, 1024)),
        page(0x1000, pattern(1, 64)),
        boot_vmsa(),
    ]);
    let cfg = config().with_command_line("a\0b");
    assert_eq!(
        plan_with(&b, &cfg),
        Error::InvalidParameterValue {
            at: dir(&b, T_COMMAND_LINE, 0),
            kind: "COMMAND_LINE",
            reason: "the command line contains a NUL byte"
        }
    );
    let mut cfg = config();
    cfg.mmio_ranges = vec![GpaRange::new(0, 4096); 3];
    assert!(matches!(
        plan_with(&b, &cfg),
        Error::InvalidParameterValue {
            kind: "MMIO_RANGES",
            ..
        }
    ));
    cfg.mmio_ranges = vec![GpaRange::new(0x800, 4096)];
    assert!(matches!(
        plan_with(&b, &cfg),
        Error::InvalidParameterValue {
            kind: "MMIO_RANGES",
            ..
        }
    ));
    for (range, reason) in [
        (GpaRange::new(0xF000_0000, 0), "an MMIO range is empty"),
        (
            GpaRange::new(0xFFFF_FFFF_FFFF_F000, 0x10_0000),
            "an MMIO range runs past the end of the address space",
        ),
    ] {
        cfg.mmio_ranges = vec![GpaRange::new(0xE000_0000, 4096), range];
        assert_eq!(
            plan_with(&b, &cfg),
            Error::InvalidParameterValue {
                at: dir(&b, T_MMIO_RANGES, 0),
                kind: "MMIO_RANGES",
                reason
            },
            "{range:?}"
        );
    }
}

#[test]
fn unfilled_parameter_is_reported() {
    use igvm::IgvmDirectiveHeader as D;
    let b = snp_file(vec![
        area(0, 4096),
        D::CommandLine(param(0, 0)),
        insert(0x10000, SNP, 0),
        page(0x1000, pattern(1, 64)),
        boot_vmsa(),
    ]);
    let plan = plans(&b);
    assert_eq!(
        plan.require_all_parameters(),
        Err(Error::ParameterNotConfigured {
            at: dir(&b, T_COMMAND_LINE, 0),
            kind: "COMMAND_LINE",
            index: 0
        })
    );
    let cfg = config().with_command_line("quiet");
    let plan = LaunchPlan::new(&b, &cfg, PlanOptions::default()).unwrap();
    assert_eq!(plan.require_all_parameters(), Ok(()));
}

/// A VP context names one platform: its state has that platform's format.
/// The `igvm` crate refuses more bits (`InvalidVpContextPlatformType`), so
/// igvmmeasure and QEMU do; so does the parser, declared bit or not.
/// (Page masks may carry undeclared bits: igvmbuilder writes them.)
#[test]
fn vp_context_for_more_than_one_platform() {
    let b = base_file();
    for mask in [SNP | 0x1000_0000, SNP | 0x2, 0x3] {
        // IGVM_VHS_VP_CONTEXT: GPA u64, then the compatibility mask.
        let e = edit_field(&b, T_VP_CONTEXT, 0, |v, body| set_u32(v, body + 8, mask));
        assert_eq!(
            parse_err(&e),
            Error::VpContextMaskNotOneBit {
                at: dir(&e, T_VP_CONTEXT, 0),
                mask
            },
            "{mask:#x}"
        );
    }
}

#[test]
fn duplicate_vp_context() {
    let mut dirs = base_dirs();
    dirs.push(vp_context(VMSA_GPA - 0x1000, SNP, 0, vmsa()));
    let b = snp_file(dirs);
    assert_eq!(
        parse_err(&b),
        Error::DuplicateVpContext {
            at: dir(&b, T_VP_CONTEXT, 1),
            vp_index: 0,
            first: dir(&b, T_VP_CONTEXT, 0).index
        }
    );
}

// ---------------------------------------------------------------- GPA overlap

fn overlap(b: &[u8], gpa: u64, first: HeaderRef, second: HeaderRef) {
    assert_eq!(plan_err(b), Error::GpaOverlap { gpa, first, second });
}

#[test]
fn gpa_overlap_page_page() {
    let mut d = base_dirs();
    d.insert(4, page(0x1000, pattern(7, 10)));
    let b = snp_file(d);
    overlap(&b, 0x1000, dir(&b, T_PAGE_DATA, 0), dir(&b, T_PAGE_DATA, 1));
}

/// A file that cannot be planned reports its own error under every
/// profile: kvm-legacy inputs made up for it (`check` took VMSA features 0
/// when the file could not be planned) do not hide the overlap.
#[test]
fn an_overlap_comes_before_mismatched_kvm_legacy_inputs() {
    let mut d = base_dirs();
    d.insert(4, page(0x1000, pattern(7, 10)));
    let b = snp_file(d);
    let inputs = igvm_snp::kvm_legacy::KvmLegacyInputs::new(3, 0x7F, 0x600);
    let legacy = igvm_snp::Profile::KvmLegacy(inputs).options();
    assert_eq!(
        LaunchPlan::new(&b, &config(), legacy).err(),
        Some(Error::GpaOverlap {
            gpa: 0x1000,
            first: dir(&b, T_PAGE_DATA, 0),
            second: dir(&b, T_PAGE_DATA, 1)
        })
    );
}

#[test]
fn gpa_overlap_page_insert() {
    let b = snp_file(vec![
        area(0, 8192),
        insert(0x10000, SNP, 0),
        page(0x11000, pattern(7, 10)),
        boot_vmsa(),
    ]);
    overlap(
        &b,
        0x11000,
        dir(&b, T_PARAMETER_INSERT, 0),
        dir(&b, T_PAGE_DATA, 0),
    );
}

#[test]
fn gpa_overlap_page_vmsa() {
    let mut d = base_dirs();
    d.push(page(VMSA_GPA, pattern(7, 10)));
    let b = snp_file(d);
    overlap(
        &b,
        VMSA_GPA,
        dir(&b, T_VP_CONTEXT, 0),
        dir(&b, T_PAGE_DATA, 2),
    );
}

#[test]
fn gpa_overlap_shared_launched_and_error_range() {
    let mut d = base_dirs();
    d.push(shared(0x2000, pattern(7, 10)));
    let b = snp_file(d);
    overlap(&b, 0x2000, dir(&b, T_PAGE_DATA, 1), dir(&b, T_PAGE_DATA, 2));
    // With shared pages measured as NORMAL they are launched pages: the
    // same GPA is then a launch overlap.
    let mut o = PlanOptions::default();
    o.shared_pages = igvm_snp::SharedPages::MeasuredNormal;
    assert!(matches!(
        LaunchPlan::new(&b, &config(), o),
        Err(Error::GpaOverlap { gpa: 0x2000, .. })
    ));
    // An error range over a launched page.
    let mut d = base_dirs();
    d.push(error_range(0x1000, 0x2000));
    let b = snp_file(d);
    overlap(
        &b,
        0x1000,
        dir(&b, T_PAGE_DATA, 0),
        dir(&b, T_ERROR_RANGE, 1),
    );
}

#[test]
fn gpa_overlap_2mib_page_over_4k_page() {
    let b = snp_file(vec![
        page(0x20_3000, pattern(7, 10)),
        page_2m(0x20_0000),
        boot_vmsa(),
    ]);
    overlap(
        &b,
        0x20_3000,
        dir(&b, T_PAGE_DATA, 0),
        dir(&b, T_PAGE_DATA, 1),
    );
}

#[test]
fn same_gpa_on_another_platform_is_accepted() {
    let mut d = base_dirs();
    d.push(page_for(VMSA_GPA, TDX, pattern(3, 4096)));
    d.push(page_for(0x1000, TDX, pattern(4, 4096)));
    let b = build(
        vec![snp_platform(), platform(TDX, IgvmPlatformType::TDX)],
        vec![policy(POLICY, SNP)],
        d,
    );
    let plan = plans(&b);
    assert_eq!(plan.launch_digest(), plans(&base_file()).launch_digest());
}

#[test]
fn gpa_range_overflow() {
    let top = 0xFFFF_FFFF_FFFF_F000;
    let b = snp_file(vec![page(top, pattern(1, 64)), boot_vmsa()]);
    assert_eq!(
        plan_err(&b),
        Error::GpaRangeOverflow {
            at: dir(&b, T_PAGE_DATA, 0),
            gpa: top,
            pages: 1
        }
    );
    let b = snp_file(vec![
        area(0, 8192),
        insert(top, SNP, 0),
        page(0x1000, pattern(1, 64)),
        boot_vmsa(),
    ]);
    assert_eq!(
        plan_err(&b),
        Error::GpaRangeOverflow {
            at: dir(&b, T_PARAMETER_INSERT, 0),
            gpa: top,
            pages: 2
        }
    );
}

/// Required memory that runs past the end of the address space is refused
/// like any other range (it used to be planned with no end, and a backend's
/// layout then gave it no memory).
#[test]
fn required_memory_past_the_top_of_the_address_space() {
    let top = 0xFFFF_FFFF_FFFF_F000;
    let b = base_file();
    for (size, pages) in [(0x1000u64, 1), (0x2000, 2)] {
        let e = edit_field(&b, T_REQUIRED_MEMORY, 0, |v, body| set_u64(v, body, top));
        let e = edit_field(&e, T_REQUIRED_MEMORY, 0, |v, body| {
            set_u32(v, body + 12, size as u32)
        });
        assert_eq!(
            plan_err(&e),
            Error::GpaRangeOverflow {
                at: dir(&b, T_REQUIRED_MEMORY, 0),
                gpa: top,
                pages
            },
            "{size:#x} bytes"
        );
    }
}

/// A VMSA in the last page of the address space: its end overflows u64,
/// which used to panic in the overlap check (debug builds).
#[test]
fn vmsa_at_top_of_address_space() {
    let top = 0xFFFF_FFFF_FFFF_F000;
    let b = snp_file(vec![
        page(0x1000, pattern(1, 64)),
        vp_context(top, SNP, 0, vmsa()),
    ]);
    assert_eq!(
        plan_err(&b),
        Error::GpaRangeOverflow {
            at: dir(&b, T_VP_CONTEXT, 0),
            gpa: top,
            pages: 1
        }
    );
}

// ---------------------------------------------------------------- SEV-SNP rules

#[test]
fn ap_vp_context() {
    let mut d = base_dirs();
    d.push(vp_context(VMSA_GPA - 0x1000, SNP, 1, vmsa()));
    let b = snp_file(d);
    assert_eq!(
        plan_err(&b),
        Error::ApVpContext {
            at: dir(&b, T_VP_CONTEXT, 1),
            vp_index: 1
        }
    );
}

#[test]
fn vmsa_without_snp_vmpl_and_2mib_gpa() {
    let file = |v: Box<igvm::snp_defs::SevVmsa>, gpa| {
        snp_file(vec![
            page(0x1000, pattern(1, 64)),
            vp_context(gpa, SNP, 0, v),
        ])
    };
    for features in [0u64, 0x2, 0x20] {
        let mut v = vmsa();
        v.sev_features = igvm::snp_defs::SevFeatures::from_bits(features);
        let b = file(v, VMSA_GPA);
        assert_eq!(
            plan_err(&b),
            Error::VmsaNotSnp {
                at: dir(&b, T_VP_CONTEXT, 0),
                sev_features: features
            }
        );
    }
    let mut v = vmsa();
    v.vmpl = 1;
    let b = file(v, VMSA_GPA);
    assert_eq!(
        plan_err(&b),
        Error::VmsaVmpl {
            at: dir(&b, T_VP_CONTEXT, 0),
            vmpl: 1
        }
    );
    // A 2 MiB-aligned VMSA is measured (igvmmeasure does) but not
    // launched: KVM cannot put a VMSA there.
    for gpa in [0x20_0000, 0, 0xFFFF_FFE0_0000] {
        let b = file(vmsa(), gpa);
        let plan = plans(&b);
        assert_eq!(plan.vmsa_gpa_2mb_aligned(), Some(gpa));
        assert_eq!(
            plan.require_launchable(),
            Err(Error::VmsaGpa2MbAligned {
                at: dir(&b, T_VP_CONTEXT, 0),
                gpa
            })
        );
    }
    // One page off a 2 MiB boundary is launchable.
    let b = file(vmsa(), 0x20_1000);
    assert_eq!(plans(&b).require_launchable(), Ok(()));
}

#[test]
fn missing_guest_policy() {
    // No policy in the file: planned and measured; the launch policy is
    // QEMU's sev-snp-guest default, 0x30000.
    let b = build(vec![snp_platform()], vec![], base_dirs());
    let plan = plans(&b);
    assert_eq!(plan.policy_source(), PolicySource::Default);
    assert!(!plan.policy_source().in_file());
    assert_eq!(plan.policy().map(|p| p.bits()), Ok(0x30000));
    // The digest does not depend on the policy.
    let with_policy = build(
        vec![snp_platform()],
        vec![policy(0x70000, SNP)],
        base_dirs(),
    );
    assert_eq!(plan.launch_digest(), plans(&with_policy).launch_digest());
    // A configured default is used when the file has none.
    let cfg = config().with_default_policy(0x70000);
    let plan = LaunchPlan::new(&b, &cfg, PlanOptions::default()).unwrap();
    assert_eq!(plan.policy().map(|p| p.bits()), Ok(0x70000));
    assert_eq!(plan.policy_source(), PolicySource::Configuration);
    // A policy for another platform does not count.
    let b = build(
        vec![snp_platform(), platform(TDX, IgvmPlatformType::TDX)],
        vec![policy(POLICY, TDX)],
        base_dirs(),
    );
    assert_eq!(plans(&b).policy_source(), PolicySource::Default);
    // The file's policy wins over the configured default.
    let base = base_file();
    let plan = LaunchPlan::new(&base, &cfg, PlanOptions::default()).unwrap();
    assert_eq!(plan.policy().map(|p| p.bits()), Ok(POLICY));
    assert_eq!(
        plan.policy_source(),
        PolicySource::File {
            at: init(&base, T_GUEST_POLICY, 0)
        }
    );
}

#[test]
fn duplicate_guest_policy() {
    let b = build(
        vec![snp_platform(), platform(TDX, IgvmPlatformType::TDX)],
        vec![
            policy(POLICY, TDX),
            policy(POLICY, SNP),
            policy(0x20000, SNP | TDX),
        ],
        base_dirs(),
    );
    assert_eq!(
        plan_err(&b),
        Error::DuplicateGuestPolicy {
            at: init(&b, T_GUEST_POLICY, 2),
            first: 1
        }
    );
}

#[test]
fn invalid_policy() {
    // An invalid policy is not part of the digest: planned, not launched.
    for (bits, reason) in [
        (0x10000u64, "reserved bit 17 must be set"),
        (0, "reserved bit 17 must be set"),
        (
            0x20000 | (1 << 26),
            "bits 26..63 are reserved and must be zero",
        ),
        (
            0x20000 | (1 << 63),
            "bits 26..63 are reserved and must be zero",
        ),
    ] {
        let b = build(vec![snp_platform()], vec![policy(bits, SNP)], base_dirs());
        let plan = plans(&b);
        let want = Error::InvalidGuestPolicy {
            from: PolicySource::File {
                at: init(&b, T_GUEST_POLICY, 0),
            },
            policy: bits,
            reason,
        };
        assert_eq!(plan.policy_bits(), bits);
        assert_eq!(plan.policy(), Err(want.clone()));
        assert_eq!(plan.require_launchable(), Err(want));
    }
    // The configured default is validated the same way.
    let b = build(vec![snp_platform()], vec![], base_dirs());
    let cfg = config().with_default_policy(0x10000);
    let plan = LaunchPlan::new(&b, &cfg, PlanOptions::default()).unwrap();
    assert_eq!(
        plan.require_launchable(),
        Err(Error::InvalidGuestPolicy {
            from: PolicySource::Configuration,
            policy: 0x10000,
            reason: "reserved bit 17 must be set",
        })
    );
}

#[test]
fn duplicate_id_block() {
    let mut d = base_dirs();
    d.push(id_block([1; 48]));
    d.push(id_block([2; 48]));
    let b = snp_file(d);
    assert_eq!(
        plan_err(&b),
        Error::DuplicateIdBlock {
            at: dir(&b, T_SNP_ID_BLOCK, 1),
            first: dir(&b, T_SNP_ID_BLOCK, 0).index
        }
    );
}

#[test]
fn id_block_launch_digest_mismatch() {
    let dirs = base_dirs();
    // The expected digest from the independent model, not from the plan.
    let (pages, _) = oracle(&dirs, SNP, OracleOpts::default());
    let (ld, _) = oracle_chain(&pages);
    let good = snp_file([dirs.clone(), vec![id_block(ld)]].concat());
    let plan = plans(&good);
    assert_eq!(plan.check_id_block(&plan.launch_digest()), Ok(()));
    let finish = plan.finish();
    assert_eq!(finish.expected_digest, Some(LaunchDigest(ld)));
    let id = finish.id_block.expect("ID block");
    assert_eq!((id.version, id.policy, id.guest_svn), (1, POLICY, 7));
    assert_eq!((id.family_id, id.image_id), ([5; 16], [6; 16]));

    let bad = snp_file([dirs, vec![id_block([0xEE; 48])]].concat());
    let plan = plans(&bad);
    assert_eq!(
        plan.check_id_block(&plan.launch_digest()),
        Err(Error::IdBlockMismatch {
            expected: LaunchDigest([0xEE; 48]),
            computed: LaunchDigest(ld)
        })
    );
    // Without an ID block there is nothing to check.
    let base = base_file();
    let plan = plans(&base);
    assert_eq!(plan.check_id_block(&LaunchDigest([0; 48])), Ok(()));
}

#[test]
fn required_memory_outside_ram_is_planned() {
    // Required memory is not measured: outside the configured RAM, or
    // partly inside it, it is planned and kept for the backend, which gives
    // it memory of its own (as QEMU's igvm.N regions).
    let b = base_file(); // requires 0x100000 + 0x10000
    let expected = plans(&b).launch_digest();
    for ram in [
        vec![GpaRange::new(0, 0x10_0000)],
        vec![GpaRange::new(0, 0x10_4000)],
        vec![],
    ] {
        let cfg = LaunchConfig::new(1, ram);
        let plan = LaunchPlan::new(&b, &cfg, PlanOptions::default()).unwrap();
        assert_eq!(plan.launch_digest(), expected);
        let req = plan.required_memory();
        assert_eq!(req.len(), 1);
        assert_eq!(req[0].range, GpaRange::new(0x10_0000, 0x1_0000));
        assert_eq!(req[0].at, dir(&b, T_REQUIRED_MEMORY, 0));
    }
}

#[test]
fn invalid_ram_ranges() {
    let b = base_file();
    let cases = [
        (vec![GpaRange::new(0, 0)], 0, 0, "empty"),
        (
            vec![GpaRange::new(0x800, 0x1000)],
            0x800,
            0x1000,
            "not 4 KiB aligned",
        ),
        (
            vec![GpaRange::new(0, 0x1800)],
            0,
            0x1800,
            "not 4 KiB aligned",
        ),
        (
            vec![GpaRange::new(0, 0x2000), GpaRange::new(0x1000, 0x1000)],
            0x1000,
            0x1000,
            "overlaps another range",
        ),
        (
            vec![GpaRange::new(0xFFFF_FFFF_FFFF_F000, 0x2000)],
            0xFFFF_FFFF_FFFF_F000,
            0x2000,
            "overflows the address space",
        ),
    ];
    for (memory, gpa, size, reason) in cases {
        assert_eq!(
            plan_with(&b, &LaunchConfig::new(1, memory)),
            Error::InvalidMemoryRange { gpa, size, reason }
        );
    }
}

#[test]
fn headers_unsupported_for_snp() {
    let b = base_file();
    let directives = tlvs(&b).len();
    // (type, body size, TLV position, section, message); the mask is the
    // first u32 of each body. Initialization headers go after the policy.
    let cases = [
        (
            T_RELOCATABLE_REGION,
            48,
            2,
            Section::Initialization,
            "a relocatable region",
        ),
        (
            T_PT_RELOCATION,
            32,
            2,
            Section::Initialization,
            "a page table relocation region",
        ),
        (T_CCA_POLICY, 32, 2, Section::Initialization, "a CCA policy"),
        (
            T_VBS_MEASUREMENT,
            864,
            directives,
            Section::Directive,
            "a VBS measurement",
        ),
    ];
    for (typ, size, before, section, what) in cases {
        let mut body = vec![0u8; size];
        body[0] = SNP as u8;
        let e = insert_tlv(&b, before, typ, &body);
        assert_eq!(
            plan_err(&e),
            Error::UnsupportedForSnp {
                at: at(&e, section, typ, 0),
                what
            }
        );
    }
    let mut reloc = vec![0u8; 48];
    let mut vbs = vec![0u8; 864];
    // The same headers for another platform are ignored.
    let b = snp_tdx_file();
    reloc[0] = TDX as u8;
    vbs[0] = TDX as u8;
    let e = insert_tlv(&b, 3, T_RELOCATABLE_REGION, &reloc);
    let n = tlvs(&e).len();
    let e = insert_tlv(&e, n, T_VBS_MEASUREMENT, &vbs);
    assert_eq!(plans(&e).launch_digest(), plans(&b).launch_digest());
}

#[test]
fn no_vmsa() {
    let b = snp_file(vec![page(0x1000, pattern(1, 64))]);
    assert_eq!(plan_err(&b), Error::NoVmsa);
    // A VMSA for another platform only does not count.
    let b = build(
        vec![snp_platform(), platform(TDX, IgvmPlatformType::SEV_ES)],
        vec![policy(POLICY, SNP)],
        vec![
            page(0x1000, pattern(1, 64)),
            vp_context(VMSA_GPA, TDX, 0, vmsa()),
        ],
    );
    assert_eq!(plan_err(&b), Error::NoVmsa);
}

#[test]
fn data_less_vp_context() {
    // A VP context with file_offset 0 has no VMSA bytes.
    let b = base_file();
    let vp = find(&b, T_VP_CONTEXT, 0);
    let e = edit(&b, |v| set_u32(v, vp.body() + 12, 0));
    assert!(matches!(
        plan_err(&e),
        Error::FileDataOutOfBounds { file_offset: 0, .. }
    ));
}

#[test]
fn page_types_from_flags_are_accepted() {
    // All four data types and the flag combinations the spec allows parse
    // and plan.
    let b = snp_file(vec![
        page_typed(
            0x1000,
            SNP,
            IgvmPageDataFlags::new(),
            IgvmPageDataType::CPUID_XF,
            vec![],
        ),
        page_typed(
            0x2000,
            SNP,
            IgvmPageDataFlags::new().with_unmeasured(true),
            IgvmPageDataType::SECRETS,
            vec![],
        ),
        page(0x3000, pattern(1, 1)),
        boot_vmsa(),
    ]);
    plans(&b);
}

/// The optional bit lets loaders that do not recognize a header skip it.
/// A loader that does recognize the type must process it: a PAGE_DATA or
/// ERROR_RANGE marked optional is still launched.
#[test]
fn known_header_with_optional_bit_is_processed() {
    let b = base_file();
    let base = plans(&b);
    for typ in [T_PAGE_DATA, T_ERROR_RANGE, T_GUEST_POLICY] {
        let t = find(&b, typ, 0);
        let e = edit(&b, |v| set_u32(v, t.offset, typ | OPTIONAL_BIT));
        let plan = plans(&e);
        assert_eq!(plan.launch_digest(), base.launch_digest(), "{typ:#x}");
        assert_eq!(plan.error_ranges(), base.error_ranges(), "{typ:#x}");
        assert_eq!(plan.policy(), base.policy(), "{typ:#x}");
    }
    // Its length is checked like that of the plain type.
    let t = find(&b, T_PAGE_DATA, 0);
    let e = edit(&b, |v| {
        set_u32(v, t.offset, T_PAGE_DATA | OPTIONAL_BIT);
        set_u32(v, t.offset + 4, 16);
    });
    assert_eq!(
        parse_err(&e),
        Error::HeaderLength {
            at: dir(&b, T_PAGE_DATA, 0),
            name: "PAGE_DATA",
            length: 16,
            expected: 24
        }
    );
}

#[test]
fn corim_and_version_string_are_read_and_ignored() {
    let b = base_file();
    let base = plans(&b);
    let vmsa_data = get_u32(&b, find(&b, T_VP_CONTEXT, 0).body() + 12);
    // CORIM_DOCUMENT: mask, file_offset, size_bytes, reserved. The offset
    // is absolute in the file after the 24-byte TLV is inserted.
    let corim = |offset: u32, size: u32, reserved: u32| {
        let mut body = Vec::new();
        for v in [SNP, offset, size, reserved] {
            body.extend_from_slice(&v.to_le_bytes());
        }
        insert_tlv(&b, 2, 0x104, &body)
    };
    let e = corim(vmsa_data + 24, 100, 0);
    let file = IgvmFile::parse(&e).unwrap();
    match &file.initializations()[1].kind {
        igvm_snp::parse::InitializationKind::Corim { typ, data, .. } => {
            assert_eq!(*typ, 0x104);
            assert_eq!(*data, &b[vmsa_data as usize..vmsa_data as usize + 100]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(plans(&e).launch_digest(), base.launch_digest());
    let e = corim(vmsa_data + 24, 100, 1);
    assert_eq!(
        parse_err(&e),
        Error::ReservedNotZero {
            at: init(&e, 0x104, 0),
            name: "CORIM_DOCUMENT",
            field: "reserved"
        }
    );
    let e = corim(vmsa_data + 24, 0x10_0000, 0);
    assert!(matches!(
        parse_err(&e),
        Error::FileDataOutOfBounds { len: 0x10_0000, .. }
    ));
    let e = insert_tlv(&b, 2, T_VERSION_STRING, b"igvm-snp test 1.0");
    assert_eq!(plans(&e).launch_digest(), base.launch_digest());
}

/// Messages name what and where: the header, its index and file offset,
/// and the values involved.
#[test]
fn messages_name_the_location() {
    let b = base_file();
    let t = find(&b, T_PAGE_DATA, 0);
    let e = edit(&b, |v| set_u16(v, t.body() + 20, 7));
    let msg = parse_err(&e).to_string();
    let at = dir(&b, T_PAGE_DATA, 0);
    assert_eq!(
        msg,
        format!(
            "directive #{} (file offset {:#x}): unknown page data type 7",
            at.index, at.offset
        )
    );
    let mut d = base_dirs();
    d.push(page(0x1000, pattern(7, 10)));
    let b = snp_file(d);
    let msg = plan_err(&b).to_string();
    assert!(msg.contains("GPA 0x1000"), "{msg}");
    assert!(
        msg.contains(&format!("{:#x}", dir(&b, T_PAGE_DATA, 2).offset)),
        "{msg}"
    );
}

#[test]
fn zero_vcpus_rejected() {
    let b = base_file();
    let mut cfg = config();
    cfg.vcpu_count = 0;
    assert_eq!(plan_with(&b, &cfg), Error::NoVcpus);
}

/// More vCPUs than KVM creates is refused at planning, as kvm-legacy
/// inputs and the MADT builder refuse it, not once vCPUs are created.
#[test]
fn more_vcpus_than_kvm_creates_rejected() {
    let b = base_file();
    let mut cfg = config();
    for vcpus in [4097, u32::MAX] {
        cfg.vcpu_count = vcpus;
        assert_eq!(
            plan_with(&b, &cfg),
            Error::InvalidVcpuCount { vcpus, max: 4096 }
        );
    }
    cfg.vcpu_count = 4096;
    assert_eq!(
        LaunchPlan::new(&b, &cfg, PlanOptions::default())
            .unwrap()
            .vcpu_count(),
        4096
    );
}

#[test]
fn id_block_author_key_enabled_not_boolean() {
    let mut d = base_dirs();
    let mut block = id_block([1; 48]);
    if let igvm::IgvmDirectiveHeader::SnpIdBlock {
        author_key_enabled, ..
    } = &mut block
    {
        *author_key_enabled = 2;
    }
    d.push(block);
    let b = snp_file(d);
    assert_eq!(
        plan_err(&b),
        Error::InvalidIdBlock {
            at: dir(&b, T_SNP_ID_BLOCK, 0),
            reason: "author_key_enabled is neither 0 nor 1",
        }
    );
}

#[test]
fn shared_secrets_and_cpuid_pages_rejected() {
    for (data_type, data) in [
        (igvm_defs::IgvmPageDataType::SECRETS, Vec::new()),
        (igvm_defs::IgvmPageDataType::CPUID_DATA, pattern(3, 4096)),
    ] {
        let mut d = base_dirs();
        d.insert(
            d.len() - 1,
            igvm::IgvmDirectiveHeader::PageData {
                gpa: 0x30_0000,
                compatibility_mask: SNP,
                flags: igvm_defs::IgvmPageDataFlags::new().with_shared(true),
                data_type,
                data,
            },
        );
        let b = snp_file(d);
        assert_eq!(
            plan_err(&b),
            Error::UnsupportedForSnp {
                at: dir(&b, T_PAGE_DATA, 2),
                what: "a shared SECRETS or CPUID page",
            }
        );
    }
}

#[test]
fn too_many_launched_pages() {
    // 8193 data-less 2 MiB pages: 2^22 + 512 pages from a ~200 KB file.
    let n = (igvm_snp::parse::MAX_LAUNCH_PAGES / 512) + 1;
    let mut d: Vec<_> = (0..n)
        .map(|i| page_2m(0x1_0000_0000 + i * (2 << 20)))
        .collect();
    d.push(boot_vmsa());
    let b = snp_file(d);
    let err = plan_err(&b);
    assert!(
        matches!(
            err,
            Error::TooManyPages { limit, at } if limit == 1 << 22 && at.index as u64 == n - 1
        ),
        "{err:?}"
    );
    // Two headers fewer (2^22 - 512 pages, plus the VMSA) fit.
    let mut d: Vec<_> = (0..n - 2)
        .map(|i| page_2m(0x1_0000_0000 + i * (2 << 20)))
        .collect();
    d.push(boot_vmsa());
    let b = snp_file(d);
    let mut cfg = config();
    cfg.memory = Vec::new();
    LaunchPlan::new(&b, &cfg, PlanOptions::default()).expect("under 2^22 pages fit");
}

/// Memory claimed by REQUIRED_MEMORY and ERROR_RANGE directives counts
/// against the 2^22-page cap together with the launched pages: the
/// directive that crosses it is named, by type. Each file: optional 2 MiB
/// page, four required ranges of the largest size a header can claim
/// (4 GiB - 4 KiB, so 2^22 - 4 pages), an error range of `n` pages, the
/// VMSA (one page).
#[test]
fn required_memory_and_error_ranges_count_against_the_page_cap() {
    const LIMIT: u64 = 1 << 22;
    let mut cfg = config();
    cfg.memory = Vec::new();
    let file = |huge_page: bool, n: u32| {
        let mut d: Vec<_> = huge_page.then(|| page_2m(1 << 36)).into_iter().collect();
        d.extend((0..4u64).map(|i| required(i << 32, u32::MAX - 4095)));
        d.push(error_range(1 << 40, n * 4096));
        d.push(boot_vmsa());
        snp_file(d)
    };
    type Expect = fn(&[u8]) -> Error;
    let cases: [(bool, u32, Option<Expect>); 4] = [
        // 2^22 - 4 + 3 + 1: exactly the cap.
        (false, 3, None),
        // The error range's fifth page crosses.
        (
            false,
            5,
            Some(|b| Error::TooMuchMemory {
                at: dir(b, T_ERROR_RANGE, 0),
                what: "ERROR_RANGE",
                limit: LIMIT,
            }),
        ),
        // Claims count for the pages after them: the VMSA crosses.
        (
            false,
            4,
            Some(|b| Error::TooManyPages {
                at: dir(b, T_VP_CONTEXT, 0),
                limit: LIMIT,
            }),
        ),
        // Launched pages count for the claims after them: 512 pages, then
        // the fourth required range crosses.
        (
            true,
            1,
            Some(|b| Error::TooMuchMemory {
                at: dir(b, T_REQUIRED_MEMORY, 3),
                what: "REQUIRED_MEMORY",
                limit: LIMIT,
            }),
        ),
    ];
    for (huge_page, n, expect) in cases {
        let b = file(huge_page, n);
        let got = LaunchPlan::new(&b, &cfg, PlanOptions::default()).map(|_| ());
        assert_eq!(
            got,
            expect.map_or(Ok(()), |e| Err(e(&b))),
            "{huge_page} {n}"
        );
    }
    let e = plan_with(&file(true, 1), &cfg).to_string();
    assert!(
        e.contains("REQUIRED_MEMORY") && e.contains("4194304"),
        "{e}"
    );
}

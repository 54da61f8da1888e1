//! Generated seed files: every seed corpus entry is built here, from the
//! `igvm` crate's builder or the byte-level [`RawFile`](super::raw::RawFile)
//! writer, so no corpus file is a blob without an origin. Each seed states
//! what the library must do with it under the first configuration of
//! [`configs`](super::checks::configs), as written when the seed was built.

use igvm::snp_defs::SevVmsa;
use igvm::{
    IgvmDirectiveHeader, IgvmFile, IgvmInitializationHeader, IgvmPlatformHeader, IgvmRevision,
};
use igvm_defs::{
    IGVM_VHS_PAGE_DATA, IGVM_VHS_PARAMETER, IGVM_VHS_PARAMETER_AREA, IGVM_VHS_PARAMETER_INSERT,
    IGVM_VHS_SUPPORTED_PLATFORM, IGVM_VHS_VP_CONTEXT, IgvmPageDataFlags, IgvmPageDataType,
    IgvmPlatformType,
};
use zerocopy::{FromZeros, IntoBytes};

use super::raw::{RawFile, typ};

/// SEV-SNP compatibility mask of the seeds.
pub const SNP: u32 = 1;
/// NATIVE compatibility mask of the seeds that declare two platforms.
pub const NATIVE: u32 = 2;
/// The guest policy of the seeds (SMT allowed, reserved bit 17).
pub const POLICY: u64 = 0x30000;

/// What the library must do with a seed under the first configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Parses and plans.
    Plans,
    /// Fails to parse with this `Error` variant.
    ParseError(&'static str),
    /// Parses, fails to plan with this `Error` variant.
    PlanError(&'static str),
}

/// A generated seed.
#[derive(Debug, Clone)]
pub struct Seed {
    /// File name in the corpus.
    pub name: &'static str,
    /// The IGVM file.
    pub bytes: Vec<u8>,
    /// What the library must do with it.
    pub expect: Expect,
}

/// A version-1 platform header with VTL 0 and no shared boundary.
pub fn platform(mask: u32, platform_type: IgvmPlatformType) -> IgvmPlatformHeader {
    IgvmPlatformHeader::SupportedPlatform(IGVM_VHS_SUPPORTED_PLATFORM {
        compatibility_mask: mask,
        highest_vtl: 0,
        platform_type,
        platform_version: 1,
        shared_gpa_boundary: 0,
    })
}

fn page(
    gpa: u64,
    mask: u32,
    flags: IgvmPageDataFlags,
    data_type: IgvmPageDataType,
    data: Vec<u8>,
) -> IgvmDirectiveHeader {
    IgvmDirectiveHeader::PageData {
        gpa,
        compatibility_mask: mask,
        flags,
        data_type,
        data,
    }
}

/// The workspace's SNP ID block fixture (`igvm_snp_test_support::id_block`)
/// expecting the launch digest `ld`, with guest SVN `guest_svn`.
pub fn id_block(ld: [u8; 48], guest_svn: u32) -> IgvmDirectiveHeader {
    let mut block = igvm_snp_test_support::id_block(ld);
    if let IgvmDirectiveHeader::SnpIdBlock { guest_svn: svn, .. } = &mut block {
        *svn = guest_svn;
    }
    block
}

fn normal(gpa: u64, data: Vec<u8>) -> IgvmDirectiveHeader {
    page(
        gpa,
        SNP,
        IgvmPageDataFlags::new(),
        IgvmPageDataType::NORMAL,
        data,
    )
}

fn vmsa(gpa: u64, vp_index: u16) -> IgvmDirectiveHeader {
    IgvmDirectiveHeader::SnpVpContext {
        gpa,
        compatibility_mask: SNP,
        vp_index,
        vmsa: Box::new(igvm_snp::demo::vmsa()),
    }
}

/// Serializes a file of the given headers, or panics: the seeds are fixed
/// content the builder accepts.
fn build(
    revision: IgvmRevision,
    platforms: Vec<IgvmPlatformHeader>,
    inits: Vec<IgvmInitializationHeader>,
    directives: Vec<IgvmDirectiveHeader>,
) -> Vec<u8> {
    let file = IgvmFile::new(revision, platforms, inits, directives)
        .unwrap_or_else(|e| panic!("seed rejected by the igvm builder: {e}"));
    let mut out = Vec::new();
    file.serialize(&mut out)
        .unwrap_or_else(|e| panic!("seed does not serialize: {e}"));
    out
}

/// An SEV-SNP file (mask 1, policy 0x30000) with these directives.
fn snp(directives: Vec<IgvmDirectiveHeader>) -> Vec<u8> {
    build(
        IgvmRevision::V1,
        vec![platform(SNP, IgvmPlatformType::SEV_SNP)],
        vec![IgvmInitializationHeader::GuestPolicy {
            policy: POLICY,
            compatibility_mask: SNP,
        }],
        directives,
    )
}

fn pattern(seed: u8) -> Vec<u8> {
    (0..4096u32)
        .map(|i| (i as u8).wrapping_mul(seed) ^ seed)
        .collect()
}

fn flags() -> IgvmPageDataFlags {
    IgvmPageDataFlags::new()
}

/// Every header kind an SEV-SNP loader meets, for two platforms. Pages
/// reuse two contents (the builder stores each once) to stay small.
fn everything() -> Vec<u8> {
    let param = |index: u32, byte_offset: u32| IGVM_VHS_PARAMETER {
        parameter_area_index: index,
        byte_offset,
    };
    let mut d = Vec::new();
    let kinds: [fn(IGVM_VHS_PARAMETER) -> IgvmDirectiveHeader; 10] = [
        IgvmDirectiveHeader::VpCount,
        IgvmDirectiveHeader::EnvironmentInfo,
        IgvmDirectiveHeader::Srat,
        IgvmDirectiveHeader::Madt,
        IgvmDirectiveHeader::Slit,
        IgvmDirectiveHeader::Pptt,
        IgvmDirectiveHeader::MmioRanges,
        IgvmDirectiveHeader::MemoryMap,
        IgvmDirectiveHeader::CommandLine,
        IgvmDirectiveHeader::DeviceTree,
    ];
    for (i, kind) in kinds.iter().enumerate() {
        let index = i as u32;
        d.push(IgvmDirectiveHeader::ParameterArea {
            number_of_bytes: 4096,
            parameter_area_index: index,
            initial_data: if i == 0 { vec![0xee; 100] } else { Vec::new() },
        });
        d.push(kind(param(index, 16)));
        d.push(IgvmDirectiveHeader::ParameterInsert(
            IGVM_VHS_PARAMETER_INSERT {
                gpa: 0x10_0000 + 0x4000 * u64::from(index),
                compatibility_mask: SNP | NATIVE,
                parameter_area_index: index,
            },
        ));
    }
    d.push(normal(0x20_0000, pattern(3)));
    d.push(normal(0x20_1000, pattern(5)));
    d.push(normal(0x20_2000, Vec::new()));
    d.push(page(
        0x20_3000,
        SNP,
        flags().with_unmeasured(true),
        IgvmPageDataType::NORMAL,
        pattern(3),
    ));
    d.push(page(
        0x20_4000,
        SNP,
        flags().with_shared(true),
        IgvmPageDataType::NORMAL,
        pattern(5),
    ));
    d.push(page(
        0x20_5000,
        SNP,
        flags(),
        IgvmPageDataType::SECRETS,
        Vec::new(),
    ));
    d.push(page(
        0x20_6000,
        SNP,
        flags(),
        IgvmPageDataType::CPUID_DATA,
        pattern(3),
    ));
    d.push(page(
        0x20_7000,
        SNP,
        flags(),
        IgvmPageDataType::CPUID_XF,
        pattern(5),
    ));
    d.push(page(
        0x40_0000,
        SNP,
        flags().with_is_2mb_page(true),
        IgvmPageDataType::NORMAL,
        Vec::new(),
    ));
    d.push(page(
        0x20_0000,
        NATIVE,
        flags(),
        IgvmPageDataType::NORMAL,
        pattern(3),
    ));
    d.push(IgvmDirectiveHeader::RequiredMemory {
        gpa: 0x80_0000,
        compatibility_mask: SNP,
        number_of_bytes: 0x10_0000,
        vtl2_protectable: false,
    });
    d.push(IgvmDirectiveHeader::ErrorRange {
        gpa: 0x90_0000,
        compatibility_mask: SNP,
        size_bytes: 0x2000,
    });
    d.push(id_block([0x11; 48], 3));
    d.push(vmsa(0xFFFF_F000 - 0x1000, 0));
    build(
        IgvmRevision::V1,
        vec![
            platform(SNP, IgvmPlatformType::SEV_SNP),
            platform(NATIVE, IgvmPlatformType::NATIVE),
        ],
        vec![IgvmInitializationHeader::GuestPolicy {
            policy: POLICY,
            compatibility_mask: SNP,
        }],
        d,
    )
}

/// Byte-level SEV-SNP platform (mask 1) and guest policy headers.
pub fn raw_platform_and_policy(f: &mut RawFile) {
    f.header(
        typ::SUPPORTED_PLATFORM,
        &IGVM_VHS_SUPPORTED_PLATFORM {
            compatibility_mask: SNP,
            highest_vtl: 0,
            platform_type: IgvmPlatformType::SEV_SNP,
            platform_version: 1,
            shared_gpa_boundary: 0,
        },
    );
    f.header(
        typ::GUEST_POLICY,
        &igvm_defs::IGVM_VHS_GUEST_POLICY {
            policy: POLICY,
            compatibility_mask: SNP,
            reserved: 0,
        },
    );
}

/// A byte-level SNP file: platform, policy, then `directives` (type, body,
/// optional data with the body position of its file offset), then a VMSA.
fn raw_snp(build_directives: impl FnOnce(&mut RawFile)) -> Vec<u8> {
    let mut f = RawFile::new();
    raw_platform_and_policy(&mut f);
    build_directives(&mut f);
    let vmsa: SevVmsa = igvm_snp::demo::vmsa();
    let at = f.data(vmsa.as_bytes());
    f.header_with_data(
        typ::VP_CONTEXT,
        &IGVM_VHS_VP_CONTEXT {
            gpa: 0xFFFF_E000u64.into(),
            compatibility_mask: SNP,
            file_offset: at,
            vp_index: 0,
            reserved: 0,
        },
        12,
    );
    f.build()
}

fn raw_page(gpa: u64, flags: IgvmPageDataFlags, file_offset: u32) -> IGVM_VHS_PAGE_DATA {
    IGVM_VHS_PAGE_DATA {
        gpa,
        compatibility_mask: SNP,
        file_offset,
        flags,
        data_type: IgvmPageDataType::NORMAL,
        reserved: 0,
    }
}

/// All seeds.
pub fn seeds() -> Vec<Seed> {
    let demo = igvm_snp::demo::demo_file();
    let v2 = IgvmRevision::V2 {
        arch: igvm::Arch::X64,
        page_size: 4096,
    };
    vec![
        Seed {
            name: "demo-v1",
            bytes: igvm_snp::demo::demo_igvm(),
            expect: Expect::Plans,
        },
        Seed {
            name: "demo-v2",
            bytes: build(
                v2,
                demo.platforms().to_vec(),
                demo.initializations().to_vec(),
                demo.directives().to_vec(),
            ),
            expect: Expect::Plans,
        },
        Seed {
            name: "everything",
            bytes: everything(),
            expect: Expect::Plans,
        },
        Seed {
            name: "raw-optional-version-shared-data",
            bytes: raw_snp(|f| {
                f.header_bytes(typ::VERSION_STRING, b"fuzz seed 1\0".to_vec());
                let at = f.data(&pattern(17));
                // Two pages share one file offset (the builder dedups too).
                f.header_with_data(typ::PAGE_DATA, &raw_page(0x1000, flags(), at), 12);
                f.header_with_data(typ::PAGE_DATA, &raw_page(0x2000, flags(), at), 12);
                f.header_bytes(typ::OPTIONAL | 0x3F0, vec![0xAB; 12]);
                f.header(
                    typ::PAGE_DATA,
                    &raw_page(0x20_0000, flags().with_is_2mb_page(true), 0),
                );
            }),
            expect: Expect::Plans,
        },
        Seed {
            name: "bad-overlap",
            bytes: snp(vec![
                normal(0x1000, pattern(1)),
                normal(0x1000, pattern(2)),
                vmsa(0xFFFF_E000, 0),
            ]),
            expect: Expect::PlanError("GpaOverlap"),
        },
        Seed {
            // Measured (igvmmeasure does); only a launch refuses it.
            name: "vmsa-2mb-aligned",
            bytes: snp(vec![normal(0x1000, pattern(1)), vmsa(0x20_0000, 0)]),
            expect: Expect::Plans,
        },
        Seed {
            name: "bad-ap-context",
            bytes: snp(vec![vmsa(0xFFFF_E000, 0), vmsa(0xFFFF_D000, 1)]),
            expect: Expect::PlanError("ApVpContext"),
        },
        Seed {
            name: "bad-area-1gib",
            bytes: raw_snp(|f| {
                f.header(
                    typ::PARAMETER_AREA,
                    &IGVM_VHS_PARAMETER_AREA {
                        number_of_bytes: 1 << 30,
                        parameter_area_index: 0,
                        file_offset: 0,
                    },
                );
            }),
            expect: Expect::ParseError("ParameterAreaTooLarge"),
        },
        Seed {
            name: "bad-file-offset-wraps-u32",
            bytes: raw_snp(|f| {
                f.header(typ::PAGE_DATA, &raw_page(0x1000, flags(), 0xFFFF_F800));
            }),
            expect: Expect::ParseError("FileDataOutOfBounds"),
        },
    ]
}

/// The name of an `Error` variant (its `Debug` form up to the first
/// delimiter).
pub fn variant(e: &igvm_snp::Error) -> String {
    let s = format!("{e:?}");
    s.split([' ', '(', '{'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The throwaway test VCEK (tests/fixtures/attestation/README.md).
pub const TEST_VCEK: &[u8] = include_bytes!("../../../tests/fixtures/attestation/test-vcek.der");

/// Seeds of the `report` target: the real Milan report and its VCEK, the
/// test VCEK and AMD's Milan ARK (tests/fixtures/attestation/README.md),
/// and zeroed reports of each version.
pub fn report_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use zerocopy::IntoBytes;
    let fixture: [(&'static str, &[u8]); 4] = [
        (
            "milan-report",
            include_bytes!("../../../tests/fixtures/attestation/milan-report.bin"),
        ),
        (
            "milan-vcek",
            include_bytes!("../../../tests/fixtures/attestation/milan-vcek.der"),
        ),
        (
            "milan-ark",
            include_bytes!("../../../tests/fixtures/attestation/milan-ark.pem"),
        ),
        ("test-vcek", TEST_VCEK),
    ];
    let mut out: Vec<(&'static str, Vec<u8>)> =
        fixture.iter().map(|(n, b)| (*n, b.to_vec())).collect();
    for (name, version) in [("zero-v2", 2), ("zero-v3", 3), ("zero-v5", 5)] {
        let mut r = igvm_snp::attestation::RawReport::new_zeroed();
        r.version.set(version);
        out.push((name, r.as_bytes().to_vec()));
    }
    out
}

//! A small, complete SEV-SNP IGVM file built in memory with the `igvm`
//! crate's builder, for documentation examples, tests and the loader's
//! `demo` command.
//!
//! The guest is a 16-bit program at the x86 reset vector (CS selector
//! 0xF000, base 0xFFFF0000, RIP 0xFFF0). It writes a greeting to the serial
//! port 0x3F8, then the 16-bit sum of the bytes of its data page as four
//! hexadecimal digits and a newline, and halts. The sum depends on the data
//! page the loader loaded, so a native run shows that the plan's pages
//! reached guest memory.
//!
//! Layout (SEV-SNP compatibility mask 0x1, policy 0x30000):
//!
//! | GPA | what | plan |
//! |---|---|---|
//! | 0xFFFFB000 | parameter area 0 (VP count) | UNMEASURED |
//! | 0xFFFFC000 | data-less page | NORMAL zeros (ZERO with native-zero) |
//! | 0xFFFFE000 | data page: `i * 7 + 3` for byte `i` | NORMAL |
//! | 0xFFFFF000 | code page | NORMAL |
//! | 0xFFFFFFFFF000 | VMSA (VP 0) | VMSA |

use igvm::snp_defs::{SevFeatures, SevSelector, SevVmsa};
use igvm::{
    IgvmDirectiveHeader, IgvmFile, IgvmInitializationHeader, IgvmPlatformHeader, IgvmRevision,
};
use igvm_defs::{
    IGVM_VHS_PARAMETER, IGVM_VHS_PARAMETER_INSERT, IGVM_VHS_SUPPORTED_PLATFORM, IgvmPageDataFlags,
    IgvmPageDataType, IgvmPlatformType,
};
use zerocopy::FromZeros;

/// The greeting the demo guest prints before its checksum.
pub const GREETING: &str = "Hello from an IGVM guest; data page checksum ";

/// GPA of the demo's code page.
pub const CODE_GPA: u64 = 0xFFFF_F000;
/// GPA of the demo's data page.
pub const DATA_GPA: u64 = 0xFFFF_E000;
/// GPA of the demo's data-less page.
pub const ZERO_GPA: u64 = 0xFFFF_C000;
/// GPA of the demo's parameter area.
pub const PARAMETER_GPA: u64 = 0xFFFF_B000;
/// GPA of the demo's VMSA.
pub const VMSA_GPA: u64 = 0xFFFF_FFFF_F000;

/// The demo data page: byte `i` is `i * 7 + 3` (mod 256).
pub fn data_page() -> Vec<u8> {
    (0..4096u32).map(|i| (i * 7 + 3) as u8).collect()
}

/// The line the demo guest prints when its data page is [`data_page`].
pub fn expected_output() -> String {
    let sum = data_page()
        .iter()
        .fold(0u16, |s, b| s.wrapping_add(u16::from(*b)));
    format!("{GREETING}{sum:04X}\n")
}

/// The code page: a 16-bit program whose entry (offset 0xFF0 of the page,
/// RIP 0xFFF0 with CS base 0xFFFF0000) jumps to offset 0.
pub fn code_page() -> Vec<u8> {
    let mut c: Vec<u8> = Vec::new();
    // Offsets below are within the page; CS base 0xFFFF0000 puts the page at
    // CS offset 0xF000 and the data page at 0xE000.
    c.extend_from_slice(&[0xBA, 0xF8, 0x03]); // mov dx, 0x3f8
    let msg_fixup = c.len() + 1;
    c.extend_from_slice(&[0xBE, 0, 0]); // mov si, msg
    let print = c.len();
    c.extend_from_slice(&[0x2E, 0xAC]); // cs lodsb
    c.extend_from_slice(&[0x84, 0xC0]); // test al, al
    c.extend_from_slice(&[0x74, 0x03]); // jz +3 (over out and jmp)
    c.push(0xEE); // out dx, al
    let back = print as i64 - (c.len() as i64 + 2);
    c.extend_from_slice(&[0xEB, back as u8]); // jmp print
    c.extend_from_slice(&[0x31, 0xDB]); // xor bx, bx
    c.extend_from_slice(&[0xBE, 0x00, 0xE0]); // mov si, 0xE000
    c.extend_from_slice(&[0xB9, 0x00, 0x10]); // mov cx, 0x1000
    c.extend_from_slice(&[0x31, 0xC0]); // xor ax, ax
    let sum = c.len();
    c.extend_from_slice(&[0x2E, 0xAC]); // cs lodsb
    c.extend_from_slice(&[0x01, 0xC3]); // add bx, ax
    let back = sum as i64 - (c.len() as i64 + 2);
    c.extend_from_slice(&[0xE2, back as u8]); // loop sum
    c.extend_from_slice(&[0xB9, 0x04, 0x00]); // mov cx, 4
    let hex = c.len();
    c.extend_from_slice(&[0xC1, 0xC3, 0x04]); // rol bx, 4
    c.extend_from_slice(&[0x88, 0xD8]); // mov al, bl
    c.extend_from_slice(&[0x24, 0x0F]); // and al, 0x0f
    c.extend_from_slice(&[0x04, 0x30]); // add al, '0'
    c.extend_from_slice(&[0x3C, 0x39]); // cmp al, '9'
    c.extend_from_slice(&[0x76, 0x02]); // jbe +2
    c.extend_from_slice(&[0x04, 0x07]); // add al, 7
    c.push(0xEE); // out dx, al
    let back = hex as i64 - (c.len() as i64 + 2);
    c.extend_from_slice(&[0xE2, back as u8]); // loop hex
    c.extend_from_slice(&[0xB0, 0x0A]); // mov al, '\n'
    c.push(0xEE); // out dx, al
    let halt = c.len();
    c.push(0xF4); // hlt
    let back = halt as i64 - (c.len() as i64 + 2);
    c.extend_from_slice(&[0xEB, back as u8]); // jmp halt
    let msg = 0xF000 + c.len() as u16;
    c[msg_fixup..msg_fixup + 2].copy_from_slice(&msg.to_le_bytes());
    c.extend_from_slice(GREETING.as_bytes());
    c.push(0);

    let mut page = vec![0u8; 4096];
    page[..c.len()].copy_from_slice(&c);
    // Reset vector at page offset 0xFF0: jmp near to offset 0 (CS 0xF000).
    let rel = 0xF000i32 - (0xFFF0 + 3);
    page[0xFF0] = 0xE9;
    page[0xFF1..0xFF3].copy_from_slice(&(rel as i16).to_le_bytes());
    page
}

/// The demo's boot VMSA: x86 reset state at the reset vector, SNP active.
pub fn vmsa() -> SevVmsa {
    let mut v = SevVmsa::new_zeroed();
    let data = SevSelector {
        selector: 0,
        attrib: 0x93,
        limit: 0xFFFF,
        base: 0,
    };
    v.es = data;
    v.ss = data;
    v.ds = data;
    v.fs = data;
    v.gs = data;
    v.cs = SevSelector {
        selector: 0xF000,
        attrib: 0x9B,
        limit: 0xFFFF,
        base: 0xFFFF_0000,
    };
    v.gdtr = SevSelector {
        selector: 0,
        attrib: 0,
        limit: 0xFFFF,
        base: 0,
    };
    v.idtr = v.gdtr;
    v.ldtr = SevSelector {
        selector: 0,
        attrib: 0x82,
        limit: 0xFFFF,
        base: 0,
    };
    v.tr = SevSelector {
        selector: 0,
        attrib: 0x8B,
        limit: 0xFFFF,
        base: 0,
    };
    v.efer = 0x1000; // SVME, as KVM sets it in SNP VMSAs
    v.cr0 = 0x30;
    v.rflags = 2;
    v.rip = 0xFFF0;
    v.dr6 = 0xFFFF_0FF0;
    v.dr7 = 0x400;
    v.pat = 0x0007_0406_0007_0406;
    v.xcr0 = 1;
    v.mxcsr = 0x1F80;
    v.x87_fcw = 0x37F;
    v.sev_features = SevFeatures::new().with_snp(true);
    v
}

/// A 4 KiB parameter area (index 0) holding the VP count at offset 0,
/// inserted at `gpa` for compatibility mask 1: the three directives the
/// demo, the benchmark images and tests start with.
pub fn vp_count_area(gpa: u64) -> [IgvmDirectiveHeader; 3] {
    [
        IgvmDirectiveHeader::ParameterArea {
            number_of_bytes: 4096,
            parameter_area_index: 0,
            initial_data: Vec::new(),
        },
        IgvmDirectiveHeader::VpCount(IGVM_VHS_PARAMETER {
            parameter_area_index: 0,
            byte_offset: 0,
        }),
        IgvmDirectiveHeader::ParameterInsert(IGVM_VHS_PARAMETER_INSERT {
            gpa,
            compatibility_mask: 1,
            parameter_area_index: 0,
        }),
    ]
}

/// The one SEV-SNP platform header (compatibility mask 1) of the demo's
/// files.
fn snp_platform() -> IgvmPlatformHeader {
    IgvmPlatformHeader::SupportedPlatform(IGVM_VHS_SUPPORTED_PLATFORM {
        compatibility_mask: 1,
        highest_vtl: 0,
        platform_type: IgvmPlatformType::SEV_SNP,
        platform_version: 1,
        shared_gpa_boundary: 0,
    })
}

/// An IGVM file with one SEV-SNP platform (compatibility mask 1), guest
/// policy 0x30000 and `directives`, built with the `igvm` crate's builder:
/// the shape of the demo, the benchmarks' images and many tests' files.
///
/// # Errors
/// The builder's error when the directives break its invariants.
pub fn snp_file(directives: Vec<IgvmDirectiveHeader>) -> Result<IgvmFile, igvm::Error> {
    IgvmFile::new(
        IgvmRevision::V1,
        vec![snp_platform()],
        vec![IgvmInitializationHeader::GuestPolicy {
            policy: 0x30000,
            compatibility_mask: 1,
        }],
        directives,
    )
}

/// [`snp_file`], serialized.
///
/// # Errors
/// The builder's or the serializer's error.
pub fn snp_igvm(directives: Vec<IgvmDirectiveHeader>) -> Result<Vec<u8>, igvm::Error> {
    let mut out = Vec::new();
    snp_file(directives)?.serialize(&mut out)?;
    Ok(out)
}

/// A NORMAL `PAGE_DATA` directive: `data` (at most 4 KiB; empty for a
/// data-less page) at `gpa` for `compatibility_mask`, with `flags`.
pub fn page_data(
    gpa: u64,
    compatibility_mask: u32,
    flags: IgvmPageDataFlags,
    data: Vec<u8>,
) -> IgvmDirectiveHeader {
    IgvmDirectiveHeader::PageData {
        gpa,
        compatibility_mask,
        flags,
        data_type: IgvmPageDataType::NORMAL,
        data,
    }
}

/// The demo as an `igvm::IgvmFile`, before serialization.
pub fn demo_file() -> IgvmFile {
    let mask = 1;
    let page = |gpa, data| page_data(gpa, mask, IgvmPageDataFlags::new(), data);
    let mut directives = vp_count_area(PARAMETER_GPA).to_vec();
    directives.extend([
        page(ZERO_GPA, Vec::new()),
        page(DATA_GPA, data_page()),
        page(CODE_GPA, code_page()),
        IgvmDirectiveHeader::SnpVpContext {
            gpa: VMSA_GPA,
            compatibility_mask: mask,
            vp_index: 0,
            vmsa: Box::new(vmsa()),
        },
    ]);
    // The builder only fails on invariants this fixed content satisfies;
    // an empty file is the documented fallback and fails to parse.
    snp_file(directives).expect("the demo file satisfies the igvm builder's invariants")
}

/// The demo IGVM file, serialized.
pub fn demo_igvm() -> Vec<u8> {
    let mut out = Vec::new();
    demo_file()
        .serialize(&mut out)
        .expect("the demo file serializes");
    out
}

/// Where [`igvmbuilder_shaped_igvm`] requires memory: 16 MiB at
/// 0x7FF80000000, far above any RAM, as coconut-svsm's `igvmbuilder` does.
pub const REQUIRED_MEMORY_GPA: u64 = 0x7FF_8000_0000;
/// The size of that required memory.
pub const REQUIRED_MEMORY_SIZE: u32 = 16 << 20;
/// The compatibility mask of [`igvmbuilder_shaped_igvm`]'s pages: SEV-SNP's
/// bit 0 plus bits of platforms the file does not declare, as `igvmbuilder`
/// writes on its page-table pages.
pub const UNDECLARED_BITS_MASK: u32 = 0x17;

/// The demo guest in a file shaped as coconut-svsm's `igvmbuilder` writes
/// them, which this crate's own test files are not: no guest policy
/// header; first a REQUIRED_MEMORY of 16 MiB at [`REQUIRED_MEMORY_GPA`];
/// then parameter areas declared with indices out of order (2, 0, 1), the
/// parameters the builder uses (MADT, MEMORY_MAP, COMMAND_LINE, VP_COUNT,
/// ENVIRONMENT_INFO) and their inserts at non-ascending GPAs below 1 MiB;
/// then the page data (masks [`UNDECLARED_BITS_MASK`] and 1) and the VMSA.
///
/// | GPA | what |
/// |---|---|
/// | 0x7FF80000000 | required memory, 16 MiB |
/// | 0x9000 / 0x7000 / 0x8000 | parameter areas 2 (MADT), 0 (VP count, environment info, command line), 1 (memory map) |
/// | 0xFFFFC000, 0xFFFFE000, 0xFFFFF000 | the demo's zero, data and code pages |
/// | 0xFFFFFFFFF000 | VMSA |
///
/// # Errors
/// The `igvm` builder's error (none for this content).
pub fn igvmbuilder_shaped_file() -> Result<IgvmFile, igvm::Error> {
    let param = |area, offset| IGVM_VHS_PARAMETER {
        parameter_area_index: area,
        byte_offset: offset,
    };
    let area = |index| IgvmDirectiveHeader::ParameterArea {
        number_of_bytes: 4096,
        parameter_area_index: index,
        initial_data: Vec::new(),
    };
    let insert = |gpa, index| {
        IgvmDirectiveHeader::ParameterInsert(IGVM_VHS_PARAMETER_INSERT {
            gpa,
            compatibility_mask: 1,
            parameter_area_index: index,
        })
    };
    let page = |gpa, mask, data| page_data(gpa, mask, IgvmPageDataFlags::new(), data);
    let directives = vec![
        IgvmDirectiveHeader::RequiredMemory {
            gpa: REQUIRED_MEMORY_GPA,
            compatibility_mask: 1,
            number_of_bytes: REQUIRED_MEMORY_SIZE,
            vtl2_protectable: false,
        },
        area(2),
        area(0),
        area(1),
        IgvmDirectiveHeader::Madt(param(2, 0)),
        IgvmDirectiveHeader::MemoryMap(param(1, 0)),
        IgvmDirectiveHeader::VpCount(param(0, 0)),
        IgvmDirectiveHeader::EnvironmentInfo(param(0, 4)),
        IgvmDirectiveHeader::CommandLine(param(0, 8)),
        insert(0x9000, 2),
        insert(0x7000, 0),
        insert(0x8000, 1),
        page(ZERO_GPA, UNDECLARED_BITS_MASK, Vec::new()),
        page(DATA_GPA, UNDECLARED_BITS_MASK, data_page()),
        page(CODE_GPA, 1, code_page()),
        IgvmDirectiveHeader::SnpVpContext {
            gpa: VMSA_GPA,
            compatibility_mask: 1,
            vp_index: 0,
            vmsa: Box::new(vmsa()),
        },
    ];
    IgvmFile::new(
        IgvmRevision::V1,
        vec![snp_platform()],
        Vec::new(),
        directives,
    )
}

/// [`igvmbuilder_shaped_file`], serialized.
///
/// # Errors
/// The `igvm` builder's or serializer's error (none for this content).
pub fn igvmbuilder_shaped_igvm() -> Result<Vec<u8>, igvm::Error> {
    let mut out = Vec::new();
    igvmbuilder_shaped_file()?.serialize(&mut out)?;
    Ok(out)
}

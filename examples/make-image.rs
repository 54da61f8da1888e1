//! Writes a synthetic SEV-SNP IGVM image of a given size, for benchmarks.
//!
//! ```text
//! cargo run --release --example make-image -- SIZE_MIB FILE
//! ```
//!
//! The image has one SEV-SNP platform, a policy, SIZE_MIB MiB of distinct
//! data pages (pseudo-random, so the builder cannot deduplicate them) from
//! GPA 1 MiB, a parameter area, a data-less page and a VMSA: the shape of a
//! firmware or kernel image.

use std::process::ExitCode;

use igvm::{
    IgvmDirectiveHeader, IgvmFile, IgvmInitializationHeader, IgvmPlatformHeader, IgvmRevision,
};
use igvm_defs::{
    IGVM_VHS_PARAMETER, IGVM_VHS_PARAMETER_INSERT, IGVM_VHS_SUPPORTED_PLATFORM, IgvmPageDataFlags,
    IgvmPageDataType, IgvmPlatformType,
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(size), Some(path)) = (args.get(1).and_then(|s| s.parse::<u64>().ok()), args.get(2))
    else {
        eprintln!("usage: make-image SIZE_MIB FILE");
        return ExitCode::from(2);
    };
    let pages = size * 256;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut directives = vec![
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
            gpa: 0x8000,
            compatibility_mask: 1,
            parameter_area_index: 0,
        }),
        IgvmDirectiveHeader::PageData {
            gpa: 0x9000,
            compatibility_mask: 1,
            flags: IgvmPageDataFlags::new(),
            data_type: IgvmPageDataType::NORMAL,
            data: Vec::new(),
        },
    ];
    for i in 0..pages {
        let mut data = vec![0u8; 4096];
        for chunk in data.chunks_mut(8) {
            // xorshift64: distinct pages so the serializer keeps them all.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        directives.push(IgvmDirectiveHeader::PageData {
            gpa: 0x10_0000 + i * 4096,
            compatibility_mask: 1,
            flags: IgvmPageDataFlags::new(),
            data_type: IgvmPageDataType::NORMAL,
            data,
        });
    }
    directives.push(IgvmDirectiveHeader::SnpVpContext {
        gpa: 0xFFFF_FFFF_F000,
        compatibility_mask: 1,
        vp_index: 0,
        vmsa: Box::new(igvm_snp::demo::vmsa()),
    });
    let file = IgvmFile::new(
        IgvmRevision::V1,
        vec![IgvmPlatformHeader::SupportedPlatform(
            IGVM_VHS_SUPPORTED_PLATFORM {
                compatibility_mask: 1,
                highest_vtl: 0,
                platform_type: IgvmPlatformType::SEV_SNP,
                platform_version: 1,
                shared_gpa_boundary: 0,
            },
        )],
        vec![IgvmInitializationHeader::GuestPolicy {
            policy: 0x30000,
            compatibility_mask: 1,
        }],
        directives,
    );
    let mut out = Vec::new();
    match file.map(|f| f.serialize(&mut out)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    }
    if let Err(e) = std::fs::write(path, &out) {
        eprintln!("error: cannot write {path}: {e}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

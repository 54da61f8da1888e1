//! The synthetic SEV-SNP IGVM image of the benchmarks, shared by
//! `examples/make-image.rs` (files for bench/compare.sh) and
//! `crates/igvm-snp/benches/plan.rs` (criterion), which include this file.
//!
//! One SEV-SNP platform, a policy, `mib` MiB of distinct data pages
//! (pseudo-random, so the serializer cannot deduplicate them) from GPA
//! 1 MiB, a one-page parameter area with the vCPU count inserted at 0x8000,
//! a data-less page at 0x9000 and a VMSA: the shape of a firmware or kernel
//! image. Its plan has four steps whatever the size.

use igvm::IgvmDirectiveHeader;
use igvm_defs::{IgvmPageDataFlags, IgvmPageDataType};

/// The serialized image with `mib` MiB of data pages.
pub fn image(mib: u64) -> Result<Vec<u8>, String> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut directives = igvm_snp::demo::vp_count_area(0x8000).to_vec();
    directives.extend([IgvmDirectiveHeader::PageData {
        gpa: 0x9000,
        compatibility_mask: 1,
        flags: IgvmPageDataFlags::new(),
        data_type: IgvmPageDataType::NORMAL,
        data: Vec::new(),
    }]);
    for i in 0..mib * 256 {
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
    igvm_snp::demo::snp_igvm(directives).map_err(|e| e.to_string())
}

//! The two hostile SEV-SNP IGVM files of the benchmarks (issue 13): small
//! files that claim far more launched memory than they hold. They are
//! written byte by byte (`fuzz/src/support/raw.rs`, through the fuzz
//! support module that `examples/make-image.rs` includes) because the
//! `igvm` crate's builder refuses 2 MiB pages with data.
//!
//! Both have one SEV-SNP platform, a policy, 1,024 2 MiB NORMAL page
//! headers from GPA 4 GiB (2^19 pages, 2 GiB) and a VMSA:
//!
//! - [`Hostile::DataLess`]: the pages have no data (zeros); 37 KB.
//! - [`Hostile::SharedData`]: every page header points at the same 2 MiB
//!   of pseudo-random file data (as a builder that deduplicates identical
//!   pages writes them); 2.1 MB.

use igvm_defs::{IGVM_VHS_PAGE_DATA, IGVM_VHS_VP_CONTEXT, IgvmPageDataFlags, IgvmPageDataType};

use crate::support::raw::{RawFile, typ};
use crate::support::seeds::{SNP, raw_platform_and_policy};

/// 2 MiB page headers in each file.
pub const HUGE_PAGES: u64 = 1024;

/// Which hostile file.
#[derive(Debug, Clone, Copy)]
pub enum Hostile {
    /// 1,024 data-less 2 MiB pages.
    DataLess,
    /// 1,024 2 MiB pages sharing one 2 MiB data blob.
    SharedData,
}

/// The serialized file, with `huge_pages` 2 MiB page headers
/// ([`HUGE_PAGES`] in the benchmarks; fewer make a smaller guest for tests).
pub fn hostile(kind: Hostile, huge_pages: u64) -> Vec<u8> {
    let mut f = RawFile::new();
    raw_platform_and_policy(&mut f);
    let shared = match kind {
        Hostile::DataLess => None,
        Hostile::SharedData => {
            let mut state = 0x9E37_79B9_7F4A_7C15u64;
            let blob: Vec<u8> = (0..(2 << 20) / 8)
                .flat_map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state.to_le_bytes()
                })
                .collect();
            Some(f.data(&blob))
        }
    };
    for i in 0..huge_pages {
        let h = IGVM_VHS_PAGE_DATA {
            gpa: (1 << 32) + (i << 21),
            compatibility_mask: SNP,
            file_offset: shared.unwrap_or(0),
            flags: IgvmPageDataFlags::new().with_is_2mb_page(true),
            data_type: IgvmPageDataType::NORMAL,
            reserved: 0,
        };
        match shared {
            // The file offset is the u32 at byte 12 of the header body.
            Some(_) => f.header_with_data(typ::PAGE_DATA, &h, 12),
            None => f.header(typ::PAGE_DATA, &h),
        };
    }
    let vmsa = f.data(zerocopy::IntoBytes::as_bytes(&igvm_snp::demo::vmsa()));
    f.header_with_data(
        typ::VP_CONTEXT,
        &IGVM_VHS_VP_CONTEXT {
            gpa: igvm_snp::demo::VMSA_GPA.into(),
            compatibility_mask: SNP,
            file_offset: vmsa,
            vp_index: 0,
            reserved: 0,
        },
        12,
    );
    f.build()
}

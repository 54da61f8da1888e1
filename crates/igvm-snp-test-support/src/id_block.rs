//! The SNP ID block fixture the suites share.

use igvm::IgvmDirectiveHeader;
use igvm_defs::{IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY, IGVM_VHS_SNP_ID_BLOCK_SIGNATURE};
use zerocopy::FromZeros;

use crate::files::{MASK, demo_with};

/// An SNP ID block for compatibility mask 1 expecting the launch digest
/// `ld`: family ID 5s, image ID 6s, version 1, guest SVN 7, an ECDSA P-384
/// ID key (curve 2) and signature with marker bytes (r 0x11, s 0x22, qx
/// 0x33, qy 0x44: not a valid signature), no author key.
pub fn id_block(ld: [u8; 48]) -> IgvmDirectiveHeader {
    let mut sig = IGVM_VHS_SNP_ID_BLOCK_SIGNATURE::new_zeroed();
    sig.r_comp[0] = 0x11;
    sig.s_comp[0] = 0x22;
    let mut key = IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY::new_zeroed();
    key.curve = 2;
    key.qx[0] = 0x33;
    key.qy[0] = 0x44;
    IgvmDirectiveHeader::SnpIdBlock {
        compatibility_mask: MASK,
        author_key_enabled: 0,
        reserved: [0; 3],
        ld,
        family_id: [5; 16],
        image_id: [6; 16],
        version: 1,
        guest_svn: 7,
        id_key_algorithm: 1,
        author_key_algorithm: 0,
        id_key_signature: Box::new(sig),
        id_public_key: Box::new(key),
        author_key_signature: Box::new(IGVM_VHS_SNP_ID_BLOCK_SIGNATURE::new_zeroed()),
        author_public_key: Box::new(IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY::new_zeroed()),
    }
}

/// The demo file with [`id_block`]`(ld)` appended.
pub fn demo_with_id_block(ld: [u8; 48]) -> Vec<u8> {
    demo_with(|dirs| dirs.push(id_block(ld)))
}

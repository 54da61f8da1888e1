//! The SNP ID block fixture the suites share.

use igvm::IgvmDirectiveHeader;
use igvm_defs::{IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY, IGVM_VHS_SNP_ID_BLOCK_SIGNATURE};
use igvm_snp::{IdAuth, IdBlock, LaunchDigest, PublicKey, Signature, SnpPolicy};
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

/// The test ID key: a fixed P-384 scalar (it certifies nothing).
pub fn test_id_key() -> p384::ecdsa::SigningKey {
    p384::ecdsa::SigningKey::from_bytes(&[0x5A; 48].into()).expect("0x5A.. is a valid scalar")
}

/// The ID authentication structure for `block`, signed with
/// [`test_id_key`] (no author key), as SNP_LAUNCH_FINISH verifies it.
pub fn signed_id_auth(block: &IdBlock) -> IdAuth {
    use p384::ecdsa::signature::Signer;
    let key = test_id_key();
    let sig: p384::ecdsa::Signature = key.sign(igvm_snp::id_sign::id_block_message(block));
    IdAuth::new(
        Signature::from_p384(&sig),
        PublicKey::from_p384(key.verifying_key()),
        None,
    )
}

/// As [`id_block`], but validly signed with [`test_id_key`] for a file
/// whose guest policy is `policy` (the ID block's policy is the launch's).
pub fn signed_id_block(ld: [u8; 48], policy: u64) -> IgvmDirectiveHeader {
    let mut directive = id_block(ld);
    if let IgvmDirectiveHeader::SnpIdBlock {
        family_id,
        image_id,
        guest_svn,
        id_key_signature,
        id_public_key,
        ..
    } = &mut directive
    {
        let policy = SnpPolicy::new(policy).expect("a valid policy");
        let block = IdBlock::new(LaunchDigest(ld), policy, *family_id, *image_id, *guest_svn);
        let auth = signed_id_auth(&block);
        id_key_signature.r_comp = auth.id_block_sig.r;
        id_key_signature.s_comp = auth.id_block_sig.s;
        id_public_key.curve = auth.id_key.curve;
        id_public_key.qx = auth.id_key.qx;
        id_public_key.qy = auth.id_key.qy;
    }
    directive
}

/// The demo file (policy 0x30000) with [`signed_id_block`]`(ld)` appended.
pub fn demo_with_signed_id_block(ld: [u8; 48]) -> Vec<u8> {
    demo_with(|dirs| dirs.push(signed_id_block(ld, 0x30000)))
}

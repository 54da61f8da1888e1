//! The SEV-SNP ID block (96 bytes) and ID authentication structure (4096
//! bytes) that SNP_LAUNCH_FINISH takes, and their construction from an IGVM
//! `SNP_ID_BLOCK` directive.
//!
//! The mapping follows QEMU's IGVM loader: ID block `version` is always 1,
//! `policy` is the launch policy; signatures (r, s) and public keys (curve,
//! qx, qy) are copied into the firmware layout, dropping the IGVM public
//! key's extra reserved u32.

use igvm_defs::{
    IGVM_VHS_SNP_ID_BLOCK, IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY, IGVM_VHS_SNP_ID_BLOCK_SIGNATURE,
};
use serde::Serialize;
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::digest::LaunchDigest;
use crate::error::HeaderRef;
use crate::policy::SnpPolicy;

/// The ID block version SNP_LAUNCH_FINISH accepts.
pub const ID_BLOCK_VERSION: u32 = 1;

/// The SEV-SNP ID block, as SNP_LAUNCH_FINISH reads it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct IdBlock {
    /// Expected launch digest.
    pub ld: [u8; 48],
    /// Family ID chosen by the guest owner.
    pub family_id: [u8; 16],
    /// Image ID chosen by the guest owner.
    pub image_id: [u8; 16],
    /// Structure version, 1.
    pub version: u32,
    /// Guest security version number.
    pub guest_svn: u32,
    /// Guest policy; must equal the launch policy.
    pub policy: u64,
}

impl IdBlock {
    /// An unsigned ID block for a digest and policy, for an external signer.
    ///
    /// ```
    /// use igvm_snp::{IdBlock, LaunchDigest, SnpPolicy};
    /// let b = IdBlock::new(LaunchDigest([7; 48]), SnpPolicy::new(0x30000).unwrap(), [1; 16], [2; 16], 3);
    /// assert_eq!(zerocopy::IntoBytes::as_bytes(&b).len(), 96);
    /// assert_eq!(b.version, 1);
    /// ```
    pub fn new(
        ld: LaunchDigest,
        policy: SnpPolicy,
        family_id: [u8; 16],
        image_id: [u8; 16],
        guest_svn: u32,
    ) -> Self {
        IdBlock {
            ld: ld.0,
            family_id,
            image_id,
            version: ID_BLOCK_VERSION,
            guest_svn,
            policy: policy.bits(),
        }
    }
}

/// An ECDSA signature in the firmware layout: r and s little-endian,
/// zero-extended to 72 bytes, then reserved bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct Signature {
    /// r, little-endian.
    pub r: [u8; 72],
    /// s, little-endian.
    pub s: [u8; 72],
    /// Reserved, zero.
    pub reserved: [u8; 368],
}

/// An ECDSA public key in the firmware layout.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct PublicKey {
    /// Curve: 2 = P-384.
    pub curve: u32,
    /// x coordinate, little-endian.
    pub qx: [u8; 72],
    /// y coordinate, little-endian.
    pub qy: [u8; 72],
    /// Reserved, zero.
    pub reserved: [u8; 880],
}

/// The SEV-SNP ID authentication information structure.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub struct IdAuth {
    /// ID key algorithm (1 = ECDSA P-384 with SHA-384).
    pub id_key_algo: u32,
    /// Author key algorithm.
    pub auth_key_algo: u32,
    /// Reserved.
    pub reserved1: [u8; 56],
    /// Signature of the ID block by the ID key.
    pub id_block_sig: Signature,
    /// The ID public key.
    pub id_key: PublicKey,
    /// Reserved.
    pub reserved2: [u8; 60],
    /// Signature of the ID key by the author key.
    pub id_key_sig: Signature,
    /// The author public key.
    pub author_key: PublicKey,
    /// Reserved.
    pub reserved3: [u8; 892],
}

fn signature(s: &IGVM_VHS_SNP_ID_BLOCK_SIGNATURE) -> Signature {
    Signature {
        r: s.r_comp,
        s: s.s_comp,
        reserved: [0; 368],
    }
}

fn public_key(k: &IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY) -> PublicKey {
    PublicKey {
        curve: k.curve,
        qx: k.qx,
        qy: k.qy,
        reserved: [0; 880],
    }
}

/// The inputs of SNP_LAUNCH_FINISH.
#[derive(Debug, Clone, Serialize)]
pub struct LaunchFinish {
    /// The ID block, when the file carries one for SEV-SNP.
    #[serde(skip)]
    pub id_block: Option<IdBlock>,
    /// Its authentication structure.
    #[serde(skip)]
    pub id_auth: Option<Box<IdAuth>>,
    /// Whether the author key is used (`auth_key_en`).
    pub author_key_enabled: bool,
    /// Host data, from the caller's configuration.
    #[serde(serialize_with = "hex32")]
    pub host_data: [u8; 32],
    /// The SNP_ID_BLOCK directive the ID block came from.
    pub id_block_directive: Option<HeaderRef>,
    /// The launch digest the ID block expects (`ld`).
    pub expected_digest: Option<LaunchDigest>,
}

fn hex32<S: serde::Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::attestation::to_hex(v))
}

impl LaunchFinish {
    /// Finish inputs without an ID block.
    pub fn new(host_data: [u8; 32]) -> Self {
        LaunchFinish {
            id_block: None,
            id_auth: None,
            author_key_enabled: false,
            host_data,
            id_block_directive: None,
            expected_digest: None,
        }
    }

    /// Adds the ID block and ID auth built from an IGVM SNP_ID_BLOCK.
    pub(crate) fn set_from_igvm(&mut self, at: HeaderRef, h: &IGVM_VHS_SNP_ID_BLOCK, policy: u64) {
        let ld = LaunchDigest(h.ld);
        // The launch policy, valid or not: a launch validates it first.
        self.id_block = Some(IdBlock {
            ld: ld.0,
            family_id: h.family_id,
            image_id: h.image_id,
            version: ID_BLOCK_VERSION,
            guest_svn: h.guest_svn,
            policy,
        });
        let author = h.author_key_enabled == 1;
        self.id_auth = Some(Box::new(IdAuth {
            id_key_algo: h.id_key_algorithm,
            auth_key_algo: h.author_key_algorithm,
            reserved1: [0; 56],
            id_block_sig: signature(&h.id_key_signature),
            id_key: public_key(&h.id_public_key),
            reserved2: [0; 60],
            id_key_sig: if author {
                signature(&h.author_key_signature)
            } else {
                Signature::new_zeroed()
            },
            author_key: if author {
                public_key(&h.author_public_key)
            } else {
                PublicKey::new_zeroed()
            },
            reserved3: [0; 892],
        }));
        self.author_key_enabled = author;
        self.id_block_directive = Some(at);
        self.expected_digest = Some(ld);
    }
}

#[cfg(test)]
mod tests {
    use std::mem::offset_of;

    use super::*;

    #[test]
    fn id_block_layout() {
        assert_eq!(size_of::<IdBlock>(), 96);
        assert_eq!(offset_of!(IdBlock, family_id), 0x30);
        assert_eq!(offset_of!(IdBlock, image_id), 0x40);
        assert_eq!(offset_of!(IdBlock, version), 0x50);
        assert_eq!(offset_of!(IdBlock, guest_svn), 0x54);
        assert_eq!(offset_of!(IdBlock, policy), 0x58);
    }

    #[test]
    fn id_auth_layout() {
        assert_eq!(size_of::<IdAuth>(), 4096);
        assert_eq!(size_of::<Signature>(), 512);
        assert_eq!(size_of::<PublicKey>(), 1028);
        assert_eq!(offset_of!(IdAuth, auth_key_algo), 0x004);
        assert_eq!(offset_of!(IdAuth, id_block_sig), 0x040);
        assert_eq!(offset_of!(IdAuth, id_key), 0x240);
        assert_eq!(offset_of!(IdAuth, reserved2), 0x644);
        assert_eq!(offset_of!(IdAuth, id_key_sig), 0x680);
        assert_eq!(offset_of!(IdAuth, author_key), 0x880);
        assert_eq!(offset_of!(IdAuth, reserved3), 0xC84);
        assert_eq!(offset_of!(PublicKey, qx), 0x04);
        assert_eq!(offset_of!(PublicKey, qy), 0x4C);
        assert_eq!(offset_of!(Signature, s), 0x48);
    }
}

//! What an external signer needs for the SEV-SNP ID block, and a check of
//! a finished ID authentication structure. The loader never holds a private
//! key: it hands out the exact bytes to sign ([`id_block_message`],
//! [`id_key_message`]), takes P-384 signatures and public keys back in the
//! firmware layout ([`Signature::from_p384`], [`PublicKey::from_p384`],
//! [`IdAuth::new`]) and checks them ([`verify_id_auth`]).
//!
//! Layout (notes `kvm-snp-uapi.md` §5.2; coconut-svsm igvmmeasure
//! `id_block.rs`, virtee/sev `idblock_types`): algorithm 1 = ECDSA P-384
//! with SHA-384; r, s, qx and qy little-endian, zero-extended to 72 bytes;
//! curve 2 = P-384. The ID key signs the 96-byte ID block; the author key,
//! when enabled, signs the 1028-byte ID public key.

use p384::ecdsa::signature::Verifier;
use p384::ecdsa::{Signature as EcdsaSignature, VerifyingKey};
use p384::{EncodedPoint, FieldBytes};
use zerocopy::{FromZeros, IntoBytes};

use crate::id_block::{IdAuth, IdBlock, PublicKey, Signature};

/// `ID_KEY_ALGO` / `AUTH_KEY_ALGO` for ECDSA P-384 with SHA-384.
pub const ECDSA_P384_SHA384: u32 = 1;
/// The `CURVE` of a P-384 public key.
pub const CURVE_P384: u32 = 2;

const SCALAR: usize = 48;

/// Which key of the ID authentication structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    /// The ID key, which signs the ID block.
    Id,
    /// The author key, which signs the ID key.
    Author,
}

impl std::fmt::Display for KeyRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyRole::Id => "ID",
            KeyRole::Author => "author",
        })
    }
}

/// Why an ID authentication structure does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdAuthError {
    /// A key algorithm other than ECDSA P-384 with SHA-384.
    #[error("{role} key algorithm {algo} is not 1 (ECDSA P-384 with SHA-384)")]
    UnsupportedAlgorithm {
        /// The key.
        role: KeyRole,
        /// The algorithm field.
        algo: u32,
    },
    /// A public key curve other than P-384.
    #[error("{role} public key curve {curve} is not 2 (P-384)")]
    UnsupportedCurve {
        /// The key.
        role: KeyRole,
        /// The curve field.
        curve: u32,
    },
    /// A public key that is not a P-384 point.
    #[error("{role} public key (qx, qy) is not a point on P-384")]
    InvalidPublicKey {
        /// The key.
        role: KeyRole,
    },
    /// A signature whose r or s is not a P-384 scalar in 1..n.
    #[error("signature by the {role} key: r or s is not a valid P-384 scalar")]
    MalformedSignature {
        /// The signing key.
        role: KeyRole,
    },
    /// The ID key's signature does not match the ID block.
    #[error("the ID key's signature does not match the 96-byte ID block")]
    IdBlockSignature,
    /// The author key's signature does not match the ID key.
    #[error("the author key's signature does not match the 1028-byte ID public key")]
    IdKeySignature,
}

/// The bytes the ID key signs: the 96-byte ID block.
pub fn id_block_message(block: &IdBlock) -> &[u8] {
    block.as_bytes()
}

/// The bytes the author key signs: the 1028-byte ID public key field.
pub fn id_key_message(id_key: &PublicKey) -> &[u8] {
    id_key.as_bytes()
}

/// A 48-byte big-endian value as a little-endian, zero-extended 72-byte
/// field.
fn to_le72(be: &[u8]) -> [u8; 72] {
    let mut out = [0u8; 72];
    for (o, b) in out.iter_mut().zip(be.iter().rev()) {
        *o = *b;
    }
    out
}

/// A little-endian 72-byte field as 48 big-endian bytes; `None` when the
/// value does not fit in 48 bytes.
fn from_le72(le: &[u8; 72]) -> Option<FieldBytes> {
    if le[SCALAR..].iter().any(|b| *b != 0) {
        return None;
    }
    let mut be = FieldBytes::default();
    for (o, b) in be.iter_mut().zip(le[..SCALAR].iter().rev()) {
        *o = *b;
    }
    Some(be)
}

impl Signature {
    /// A P-384 ECDSA signature in the firmware layout.
    pub fn from_p384(sig: &EcdsaSignature) -> Self {
        let (r, s) = sig.split_bytes();
        Signature {
            r: to_le72(&r),
            s: to_le72(&s),
            reserved: [0; 368],
        }
    }

    /// The P-384 signature, if r and s are valid scalars.
    pub fn to_p384(&self) -> Option<EcdsaSignature> {
        EcdsaSignature::from_scalars(from_le72(&self.r)?, from_le72(&self.s)?).ok()
    }
}

impl PublicKey {
    /// A P-384 public key in the firmware layout (curve 2).
    pub fn from_p384(key: &VerifyingKey) -> Self {
        let point = key.to_encoded_point(false);
        let mut k = PublicKey::new_zeroed();
        k.curve = CURVE_P384;
        if let (Some(x), Some(y)) = (point.x(), point.y()) {
            k.qx = to_le72(x);
            k.qy = to_le72(y);
        }
        k
    }

    /// The P-384 public key.
    ///
    /// # Errors
    /// [`IdAuthError::UnsupportedCurve`] or [`IdAuthError::InvalidPublicKey`].
    pub fn to_p384(&self, role: KeyRole) -> Result<VerifyingKey, IdAuthError> {
        if self.curve != CURVE_P384 {
            return Err(IdAuthError::UnsupportedCurve {
                role,
                curve: self.curve,
            });
        }
        let bad = IdAuthError::InvalidPublicKey { role };
        let (x, y) = (
            from_le72(&self.qx).ok_or(bad.clone())?,
            from_le72(&self.qy).ok_or(bad.clone())?,
        );
        let point = EncodedPoint::from_affine_coordinates(&x, &y, false);
        VerifyingKey::from_encoded_point(&point).map_err(|_| bad)
    }
}

impl IdAuth {
    /// An ID authentication structure from the ID key's signature of the ID
    /// block and its public key, and optionally the author key's signature
    /// of the ID key and its public key. Algorithms are set to 1.
    pub fn new(
        id_block_sig: Signature,
        id_key: PublicKey,
        author: Option<(Signature, PublicKey)>,
    ) -> Self {
        let mut a = IdAuth::new_zeroed();
        a.id_key_algo = ECDSA_P384_SHA384;
        a.id_block_sig = id_block_sig;
        a.id_key = id_key;
        if let Some((sig, key)) = author {
            a.auth_key_algo = ECDSA_P384_SHA384;
            a.id_key_sig = sig;
            a.author_key = key;
        }
        a
    }

    /// Whether the author key is present (its field is not all zeros), as
    /// SNP_LAUNCH_FINISH's `auth_key_en` should be.
    pub fn author_key_present(&self) -> bool {
        self.author_key.as_bytes().iter().any(|b| *b != 0)
    }
}

fn verify(
    role: KeyRole,
    algo: u32,
    key: &PublicKey,
    sig: &Signature,
    message: &[u8],
    mismatch: IdAuthError,
) -> Result<(), IdAuthError> {
    if algo != ECDSA_P384_SHA384 {
        return Err(IdAuthError::UnsupportedAlgorithm { role, algo });
    }
    let key = key.to_p384(role)?;
    let sig = sig
        .to_p384()
        .ok_or(IdAuthError::MalformedSignature { role })?;
    key.verify(message, &sig).map_err(|_| mismatch)
}

/// Checks an ID authentication structure against an ID block: the ID key's
/// ECDSA P-384 / SHA-384 signature over the 96-byte ID block and, when the
/// author key is present ([`IdAuth::author_key_present`]), the author key's
/// signature over the 1028-byte ID public key.
///
/// # Errors
/// The first check that fails, as an [`IdAuthError`].
pub fn verify_id_auth(block: &IdBlock, auth: &IdAuth) -> Result<(), IdAuthError> {
    verify(
        KeyRole::Id,
        auth.id_key_algo,
        &auth.id_key,
        &auth.id_block_sig,
        id_block_message(block),
        IdAuthError::IdBlockSignature,
    )?;
    if auth.author_key_present() {
        verify(
            KeyRole::Author,
            auth.auth_key_algo,
            &auth.author_key,
            &auth.id_key_sig,
            id_key_message(&auth.id_key),
            IdAuthError::IdKeySignature,
        )?;
    }
    Ok(())
}

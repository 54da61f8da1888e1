//! The ID block helpers round-trip with keys generated here: the test signs
//! the bytes the crate hands out with its own P-384 key, lays the result
//! into an ID authentication structure, and the crate's check accepts it;
//! any flipped bit is a typed error.

use igvm_snp::id_sign::{
    CURVE_P384, IdAuthError, KeyRole, id_block_message, id_key_message, verify_id_auth,
};
use igvm_snp::{IdAuth, IdBlock, LaunchDigest, PublicKey, Signature, SnpPolicy};
use p384::ecdsa::signature::Signer;
use p384::ecdsa::{Signature as EcdsaSignature, SigningKey};
use rand_core::OsRng;
use zerocopy::IntoBytes;

fn block() -> IdBlock {
    IdBlock::new(
        LaunchDigest([0x5A; 48]),
        SnpPolicy::new(0x30000).unwrap(),
        [1; 16],
        [2; 16],
        7,
    )
}

fn signed(author: bool) -> (IdBlock, IdAuth) {
    let id = SigningKey::random(&mut OsRng);
    let b = block();
    let msg = id_block_message(&b);
    assert_eq!(msg.len(), 96);
    let sig: EcdsaSignature = id.sign(msg);
    let id_key = PublicKey::from_p384(id.verifying_key());
    let author = author.then(|| {
        let a = SigningKey::random(&mut OsRng);
        let m = id_key_message(&id_key);
        assert_eq!(m.len(), 1028);
        let s: EcdsaSignature = a.sign(m);
        (
            Signature::from_p384(&s),
            PublicKey::from_p384(a.verifying_key()),
        )
    });
    (b, IdAuth::new(Signature::from_p384(&sig), id_key, author))
}

#[test]
fn layout_is_little_endian_and_zero_extended() {
    let id = SigningKey::random(&mut OsRng);
    let b = block();
    let sig: EcdsaSignature = id.sign(id_block_message(&b));
    let (r, s) = sig.split_bytes();
    let l = Signature::from_p384(&sig);
    let mut r_le: Vec<u8> = r.to_vec();
    r_le.reverse();
    let mut s_le: Vec<u8> = s.to_vec();
    s_le.reverse();
    assert_eq!(&l.r[..48], &r_le[..]);
    assert_eq!(&l.s[..48], &s_le[..]);
    assert!(l.r[48..].iter().chain(&l.s[48..]).all(|b| *b == 0));
    let k = PublicKey::from_p384(id.verifying_key());
    assert_eq!(k.curve, CURVE_P384);
    let point = id.verifying_key().to_encoded_point(false);
    let mut x = point.x().unwrap().to_vec();
    x.reverse();
    assert_eq!(&k.qx[..48], &x[..]);
    assert_eq!(l.to_p384(), Some(sig));
}

#[test]
fn id_key_only_round_trip() {
    let (b, auth) = signed(false);
    assert_eq!(auth.id_key_algo, 1);
    assert_eq!(auth.auth_key_algo, 0);
    assert!(!auth.author_key_present());
    assert_eq!(verify_id_auth(&b, &auth), Ok(()));
}

#[test]
fn author_key_round_trip() {
    let (b, auth) = signed(true);
    assert!(auth.author_key_present());
    assert_eq!(verify_id_auth(&b, &auth), Ok(()));
}

#[test]
fn flipped_bits_are_typed_errors() {
    let (b, auth) = signed(true);

    let mut other = b;
    other.guest_svn ^= 1;
    assert_eq!(
        verify_id_auth(&other, &auth),
        Err(IdAuthError::IdBlockSignature)
    );
    let mut other = b;
    other.ld[0] ^= 0x80;
    assert_eq!(
        verify_id_auth(&other, &auth),
        Err(IdAuthError::IdBlockSignature)
    );

    let mut a = auth;
    a.id_block_sig.s[0] ^= 1;
    assert!(matches!(
        verify_id_auth(&b, &a),
        Err(IdAuthError::IdBlockSignature | IdAuthError::MalformedSignature { role: KeyRole::Id })
    ));

    let mut a = auth;
    a.id_key_sig.r[3] ^= 4;
    assert!(matches!(
        verify_id_auth(&b, &a),
        Err(IdAuthError::IdKeySignature
            | IdAuthError::MalformedSignature {
                role: KeyRole::Author
            })
    ));

    // A different ID key: its point is valid but signed nothing here, and
    // the author's signature covers the old key.
    let mut a = auth;
    a.id_key = PublicKey::from_p384(SigningKey::random(&mut OsRng).verifying_key());
    assert_eq!(verify_id_auth(&b, &a), Err(IdAuthError::IdBlockSignature));

    let mut a = auth;
    a.id_key.qy[0] ^= 1;
    assert_eq!(
        verify_id_auth(&b, &a),
        Err(IdAuthError::InvalidPublicKey { role: KeyRole::Id })
    );

    let mut a = auth;
    a.id_key.curve = 1;
    assert_eq!(
        verify_id_auth(&b, &a),
        Err(IdAuthError::UnsupportedCurve {
            role: KeyRole::Id,
            curve: 1
        })
    );

    let mut a = auth;
    a.auth_key_algo = 2;
    assert_eq!(
        verify_id_auth(&b, &a),
        Err(IdAuthError::UnsupportedAlgorithm {
            role: KeyRole::Author,
            algo: 2
        })
    );

    let mut a = auth;
    a.id_block_sig.r[70] = 1;
    assert_eq!(
        verify_id_auth(&b, &a),
        Err(IdAuthError::MalformedSignature { role: KeyRole::Id })
    );

    // The error names what failed.
    assert!(
        IdAuthError::IdKeySignature
            .to_string()
            .contains("author key")
    );
    assert_eq!(auth.as_bytes().len(), 4096);
}

//! # igvm-snp-test-support
//!
//! What the workspace's tests, benchmarks and examples share, so that no
//! test suite keeps its own copy: small SEV-SNP IGVM files built with the
//! `igvm` crate's builder ([`files`]), hand-assembled x86 guests that print
//! what they computed ([`asm`], [`guests`]), the ID block fixture
//! ([`id_block`](mod@id_block)), and launches on the firmware model that
//! tests compare ([`files::fallback_on_model`]).
//!
//! Not published, and no library crate depends on it: it is for testing
//! igvm-snp, not for VMMs.

pub mod asm;
pub mod files;
pub mod guests;
pub mod id_block;
pub mod scratch;

pub use files::*;
pub use id_block::{
    demo_with_id_block, demo_with_signed_id_block, id_block, signed_id_auth, signed_id_block,
    test_id_key,
};
pub use scratch::scratch_file;

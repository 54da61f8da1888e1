//! The SEV-SNP launch digest: a SHA-384 chain over PAGE_INFO structures,
//! one per 4 KiB page, in SNP_LAUNCH_UPDATE order.
//!
//! ```text
//! LD_0     = 48 zero bytes
//! LD_{n+1} = SHA-384(PAGE_INFO_n)
//! PAGE_INFO (112 bytes, little-endian):
//!   0x00 DIGEST_CUR [48]  LD_n
//!   0x30 CONTENTS   [48]  SHA-384(page) for NORMAL and VMSA, else zeros
//!   0x60 LENGTH     u16   0x70
//!   0x62 PAGE_TYPE  u8
//!   0x63 IMI_PAGE   u8    0 (KVM never sets it)
//!   0x64 reserved, VMPL3/2/1 permissions: 4 x u8, 0 for KVM launches
//!   0x68 GPA        u64
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::Serialize;
use sha2::{Digest, Sha384};
use zerocopy::{Immutable, IntoBytes, KnownLayout};

use crate::page_type::PageType;

/// Bytes in a page.
pub const PAGE_SIZE: usize = 4096;

/// A 48-byte SHA-384 value: a launch digest or a page-contents hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LaunchDigest(pub [u8; 48]);

impl LaunchDigest {
    /// The digest at SNP_LAUNCH_START: 48 zero bytes.
    pub const ZERO: LaunchDigest = LaunchDigest([0; 48]);

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 48] {
        &self.0
    }
}

impl fmt::Display for LaunchDigest {
    /// 96 upper-case hexadecimal digits, as igvmmeasure prints them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for LaunchDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LaunchDigest({self})")
    }
}

impl Serialize for LaunchDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Error parsing a hexadecimal digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a launch digest is 96 hexadecimal digits")]
pub struct ParseDigestError;

impl FromStr for LaunchDigest {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        // Digits only: `from_str_radix` alone would also take a sign.
        if s.len() != 96 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseDigestError);
        }
        let mut out = [0u8; 48];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| ParseDigestError)?;
        }
        Ok(LaunchDigest(out))
    }
}

/// The PAGE_INFO structure the firmware hashes for every page.
#[repr(C)]
#[derive(Debug, Clone, Copy, IntoBytes, Immutable, KnownLayout)]
pub struct PageInfo {
    /// The launch digest before this page.
    pub digest_cur: [u8; 48],
    /// SHA-384 of the page for NORMAL and VMSA, zeros otherwise.
    pub contents: [u8; 48],
    /// Size of this structure, 0x70.
    pub length: u16,
    /// Page type.
    pub page_type: u8,
    /// Bit 0: IMI page.
    pub imi_page: u8,
    /// Reserved.
    pub reserved: u8,
    /// VMPL3 permissions.
    pub vmpl3_perms: u8,
    /// VMPL2 permissions.
    pub vmpl2_perms: u8,
    /// VMPL1 permissions.
    pub vmpl1_perms: u8,
    /// Guest physical address of the page.
    pub gpa: u64,
}

/// A running launch digest that can be extended page by page, started from
/// zero or resumed from a known intermediate value.
///
/// ```
/// use igvm_snp::{DigestChain, PageType};
/// let mut chain = DigestChain::new();
/// chain.update(PageType::Zero, 0, &[0; 48]);
/// // Single ZERO page at GPA 0, vector from the notes (sev-snp-measure).
/// assert_eq!(
///     chain.digest().to_string().to_lowercase(),
///     "70c0ecaab9608f14ebf8ac6f0f07bcd8728f4e2ab30382b539b4de4de904ca9f\
///      8ebdf4b2cd3cd84dd996bd55dd794676"
/// );
/// ```
#[derive(Debug, Clone)]
pub struct DigestChain {
    ld: [u8; 48],
}

impl Default for DigestChain {
    fn default() -> Self {
        Self::new()
    }
}

impl DigestChain {
    /// A chain at the SNP_LAUNCH_START value (48 zero bytes).
    pub fn new() -> Self {
        DigestChain { ld: [0; 48] }
    }

    /// A chain resumed from an intermediate digest.
    pub fn resume(from: LaunchDigest) -> Self {
        DigestChain { ld: from.0 }
    }

    /// Extends the digest by one page.
    pub fn update(&mut self, page_type: PageType, gpa: u64, contents: &[u8; 48]) {
        let info = PageInfo {
            digest_cur: self.ld,
            contents: *contents,
            length: size_of::<PageInfo>() as u16,
            page_type: page_type.value(),
            imi_page: 0,
            reserved: 0,
            vmpl3_perms: 0,
            vmpl2_perms: 0,
            vmpl1_perms: 0,
            gpa,
        };
        #[cfg(feature = "openssl")]
        {
            let mut h = openssl::sha::Sha384::new();
            h.update(info.as_bytes());
            self.ld = h.finish();
        }
        #[cfg(not(feature = "openssl"))]
        {
            self.ld = Sha384::digest(info.as_bytes()).into();
        }
    }

    /// The current digest.
    pub fn digest(&self) -> LaunchDigest {
        LaunchDigest(self.ld)
    }
}

/// SHA-384 of a 4 KiB page given as a prefix of at most 4096 bytes; the rest
/// is zeros (hashed without building the padded page).
pub fn page_hash(data: &[u8]) -> [u8; 48] {
    if data.is_empty() {
        return *zero_page_hash();
    }
    let data = &data[..data.len().min(PAGE_SIZE)];
    #[cfg(feature = "openssl")]
    {
        let mut h = openssl::sha::Sha384::new();
        h.update(data);
        if data.len() < PAGE_SIZE {
            h.update(&ZEROS[..PAGE_SIZE - data.len()]);
        }
        h.finish()
    }
    #[cfg(not(feature = "openssl"))]
    {
        let mut h = Sha384::new();
        h.update(data);
        if data.len() < PAGE_SIZE {
            h.update(&ZEROS[..PAGE_SIZE - data.len()]);
        }
        h.finalize().into()
    }
}

static ZEROS: [u8; PAGE_SIZE] = [0; PAGE_SIZE];

/// SHA-384 of a page of zeros.
pub fn zero_page_hash() -> &'static [u8; 48] {
    static HASH: OnceLock<[u8; 48]> = OnceLock::new();
    HASH.get_or_init(|| Sha384::digest(ZEROS).into())
}

/// One page of a measurement trace.
#[derive(Debug, Clone, Serialize)]
pub struct TraceEntry {
    /// Plan step the page belongs to.
    pub step: usize,
    /// GPA of the page.
    pub gpa: u64,
    /// Page type.
    pub page_type: PageType,
    /// The CONTENTS field that entered PAGE_INFO.
    pub contents: LaunchDigest,
    /// The launch digest after this page.
    pub digest: LaunchDigest,
}

#[cfg(test)]
mod tests {
    use std::mem::offset_of;

    use super::*;

    #[test]
    fn page_info_layout() {
        assert_eq!(size_of::<PageInfo>(), 0x70);
        assert_eq!(offset_of!(PageInfo, contents), 0x30);
        assert_eq!(offset_of!(PageInfo, length), 0x60);
        assert_eq!(offset_of!(PageInfo, page_type), 0x62);
        assert_eq!(offset_of!(PageInfo, imi_page), 0x63);
        assert_eq!(offset_of!(PageInfo, gpa), 0x68);
    }

    #[test]
    fn single_normal_zero_page_vector() {
        // sev-snp-measure vector from the notes: NORMAL zero page at GPA 0.
        let mut c = DigestChain::new();
        c.update(PageType::Normal, 0, &page_hash(&[]));
        assert_eq!(
            c.digest().to_string().to_lowercase(),
            "9d13634b6014bb21cf059b2dc694e7bff01a8a7137041100cd2b695f3d10fb68\
             7267b97808b27f8f471d943bc6f53a20"
        );
    }

    #[test]
    fn short_page_hash_is_padded() {
        let mut full = [0u8; PAGE_SIZE];
        full[..3].copy_from_slice(&[1, 2, 3]);
        assert_eq!(
            page_hash(&[1, 2, 3]),
            <[u8; 48]>::from(Sha384::digest(full))
        );
    }

    /// With the `openssl` feature, page hashes come from libcrypto; sha2
    /// is then an independent oracle for full, short and empty pages.
    #[test]
    fn page_hash_matches_sha2() {
        let mut page = [0u8; PAGE_SIZE];
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for b in page.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        for len in [0, 1, 127, 128, 129, 4095, 4096] {
            let mut padded = [0u8; PAGE_SIZE];
            padded[..len].copy_from_slice(&page[..len]);
            let expect: [u8; 48] = Sha384::digest(padded).into();
            assert_eq!(page_hash(&page[..len]), expect, "{len} bytes");
        }
        assert_eq!(zero_page_hash(), &<[u8; 48]>::from(Sha384::digest(ZEROS)));
    }

    #[test]
    fn digest_hex_round_trip() {
        let d = LaunchDigest([0xab; 48]);
        assert_eq!(d.to_string().parse::<LaunchDigest>(), Ok(d));
        assert_eq!("xyz".parse::<LaunchDigest>(), Err(ParseDigestError));
        // 48 pairs "+a": 96 characters, each pair one from_str_radix takes.
        assert_eq!(
            "+a".repeat(48).parse::<LaunchDigest>(),
            Err(ParseDigestError)
        );
    }
}

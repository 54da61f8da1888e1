//! The model's own launch digest: the PAGE_INFO / SHA-384 chain of the SNP
//! firmware ABI (§8.17.2, as transcribed in the project notes §4.1),
//! written independently of `igvm_snp::DigestChain`.

use igvm_snp::LaunchDigest;
use sha2::{Digest, Sha384};

/// Bytes of PAGE_INFO.
const PAGE_INFO_LEN: u16 = 0x70;

/// GPA KVM records for the VMSAs it builds itself (measured at
/// LAUNCH_FINISH).
pub const KVM_INITIAL_VMSA_GPA: u64 = 0xFFFF_FFFF_F000;

/// The running launch digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ModelDigest {
    ld: [u8; 48],
}

impl ModelDigest {
    /// The digest at LAUNCH_START: 48 zero bytes.
    pub(crate) fn new() -> Self {
        ModelDigest { ld: [0; 48] }
    }

    /// The current value.
    pub(crate) fn value(&self) -> LaunchDigest {
        LaunchDigest(self.ld)
    }

    /// Folds in one page: `contents` is SHA-384 of the page for NORMAL and
    /// VMSA, 48 zeros for every other type.
    pub(crate) fn fold(&mut self, page_type: u8, gpa: u64, contents: [u8; 48]) {
        let mut info = [0u8; PAGE_INFO_LEN as usize];
        info[0x00..0x30].copy_from_slice(&self.ld);
        info[0x30..0x60].copy_from_slice(&contents);
        info[0x60..0x62].copy_from_slice(&PAGE_INFO_LEN.to_le_bytes());
        info[0x62] = page_type;
        // 0x63 IMI_PAGE, 0x64..0x68 reserved / VMPL permissions: all zero
        // for KVM launches.
        info[0x68..0x70].copy_from_slice(&gpa.to_le_bytes());
        self.ld = Sha384::digest(info).into();
    }

    /// SHA-384 of a page. A page of zeros (what a data-less page loads)
    /// takes the hash of the first zero page seen: comparing bytes costs a
    /// fraction of hashing them, and a plan of many data-less 2 MiB pages
    /// would otherwise hash gigabytes of zeros.
    pub(crate) fn page_hash(page: &[u8]) -> [u8; 48] {
        static ZERO_PAGE: std::sync::OnceLock<[u8; 48]> = std::sync::OnceLock::new();
        if page.len() == 4096 && page.iter().all(|&b| b == 0) {
            return *ZERO_PAGE.get_or_init(|| Sha384::digest(page).into());
        }
        Sha384::digest(page).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The zero-page shortcut gives SHA-384's value, and only for all-zero
    /// pages.
    #[test]
    fn zero_pages_hash_as_sha384() {
        let zero = [0u8; 4096];
        let mut last = [0u8; 4096];
        last[4095] = 1;
        for page in [&zero, &last, &zero] {
            let expected: [u8; 48] = Sha384::digest(page).into();
            assert_eq!(ModelDigest::page_hash(page), expected);
        }
        assert_ne!(ModelDigest::page_hash(&zero), ModelDigest::page_hash(&last));
    }

    fn hex(d: &LaunchDigest) -> String {
        d.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn single_step_vectors_from_the_notes() {
        // Notes §4.3, computed with sev-snp-measure's GCTX.
        let mut d = ModelDigest::new();
        d.fold(1, 0, ModelDigest::page_hash(&[0; 4096]));
        assert_eq!(
            hex(&d.value()),
            "9d13634b6014bb21cf059b2dc694e7bff01a8a7137041100cd2b695f3d10fb68\
             7267b97808b27f8f471d943bc6f53a20"
        );
        let mut d = ModelDigest::new();
        d.fold(3, 0, [0; 48]);
        assert_eq!(
            hex(&d.value()),
            "70c0ecaab9608f14ebf8ac6f0f07bcd8728f4e2ab30382b539b4de4de904ca9f\
             8ebdf4b2cd3cd84dd996bd55dd794676"
        );
    }
}

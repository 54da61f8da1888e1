//! The rules the proposed kernel support applies to a VMSA page given to
//! LAUNCH_UPDATE (`snp_check_launch_vmsa` in the posted patch): VMPL 0, and
//! SEV_FEATURES equal to the INIT2 `vmsa_features` plus SNPActive.

use igvm_snp::{SEV_FEATURE_SNP_ACTIVE, SevVmsa};
use zerocopy::FromBytes;

/// Why a VMSA page is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VmsaProblem {
    /// The page is not 4096 bytes.
    #[error("{len} bytes, not a 4096-byte VMSA")]
    Size {
        /// Its length.
        len: usize,
    },
    /// VMPL (offset 0xCA) is not 0.
    #[error("VMPL {vmpl} (offset 0xCA), the boot VMSA must be VMPL 0")]
    Vmpl {
        /// The VMPL.
        vmpl: u8,
    },
    /// SEV_FEATURES (offset 0x3B0) differ from INIT2's `vmsa_features | 1`.
    #[error("SEV_FEATURES {found:#x} (offset 0x3B0), INIT2 requires {expected:#x}")]
    SevFeatures {
        /// In the page.
        found: u64,
        /// `vmsa_features | SNP_ACTIVE`.
        expected: u64,
    },
}

/// Checks a VMSA page against the INIT2 `vmsa_features`.
///
/// # Errors
/// The first [`VmsaProblem`] found.
pub fn check_launch_vmsa(page: &[u8], init2_vmsa_features: u64) -> Result<(), VmsaProblem> {
    let vmsa = SevVmsa::ref_from_bytes(page).map_err(|_| VmsaProblem::Size { len: page.len() })?;
    if vmsa.vmpl != 0 {
        return Err(VmsaProblem::Vmpl { vmpl: vmsa.vmpl });
    }
    let found = vmsa.sev_features.into_bits();
    let expected = init2_vmsa_features | SEV_FEATURE_SNP_ACTIVE;
    if found != expected {
        return Err(VmsaProblem::SevFeatures { found, expected });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(vmpl: u8, features: u64) -> Vec<u8> {
        let mut p = vec![0u8; 4096];
        p[0xCA] = vmpl;
        p[0x3B0..0x3B8].copy_from_slice(&features.to_le_bytes());
        p
    }

    #[test]
    fn offsets_and_rules() {
        assert_eq!(check_launch_vmsa(&page(0, 1), 0), Ok(()));
        assert_eq!(check_launch_vmsa(&page(0, 0x21), 0x20), Ok(()));
        assert_eq!(
            check_launch_vmsa(&page(1, 1), 0),
            Err(VmsaProblem::Vmpl { vmpl: 1 })
        );
        assert_eq!(
            check_launch_vmsa(&page(0, 0), 0),
            Err(VmsaProblem::SevFeatures {
                found: 0,
                expected: 1
            })
        );
        assert_eq!(
            check_launch_vmsa(&page(0, 0x21), 0),
            Err(VmsaProblem::SevFeatures {
                found: 0x21,
                expected: 1
            })
        );
        assert_eq!(
            check_launch_vmsa(&[0; 10], 0),
            Err(VmsaProblem::Size { len: 10 })
        );
    }
}

//! The rules the proposed kernel support applies to a VMSA page given to
//! LAUNCH_UPDATE (`snp_check_launch_vmsa` in the posted patch): VMPL 0, and
//! SEV_FEATURES equal to the INIT2 `vmsa_features` plus SNPActive; and not
//! at a 2 MiB-aligned GPA: KVM refuses that for the VMSAs a guest creates
//! (`sev_snp_ap_creation`, an SNP erratum) and the redesign's selftest
//! expects `EINVAL` for a launched one; for the v1 page type it is assumed.

use igvm_snp::{SEV_FEATURE_SNP_ACTIVE, SevVmsa};
use zerocopy::FromBytes;

/// Why a VMSA page is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VmsaProblem {
    /// The VMSA's GPA is 2 MiB aligned, which KVM refuses (SNP erratum).
    #[error("GPA {gpa:#x} is 2 MiB aligned: KVM refuses a VMSA there (SNP erratum)")]
    Gpa2MbAligned {
        /// The GPA.
        gpa: u64,
    },
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

/// Checks a VMSA page for `gpa` against the INIT2 `vmsa_features`.
///
/// # Errors
/// The first [`VmsaProblem`] found.
pub fn check_launch_vmsa(
    gpa: u64,
    page: &[u8],
    init2_vmsa_features: u64,
) -> Result<(), VmsaProblem> {
    if gpa % (2 << 20) == 0 {
        return Err(VmsaProblem::Gpa2MbAligned { gpa });
    }
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
        const GPA: u64 = 0xFFFF_FFFF_F000;
        assert_eq!(check_launch_vmsa(GPA, &page(0, 1), 0), Ok(()));
        assert_eq!(check_launch_vmsa(GPA, &page(0, 0x21), 0x20), Ok(()));
        assert_eq!(
            check_launch_vmsa(GPA, &page(1, 1), 0),
            Err(VmsaProblem::Vmpl { vmpl: 1 })
        );
        assert_eq!(
            check_launch_vmsa(GPA, &page(0, 0), 0),
            Err(VmsaProblem::SevFeatures {
                found: 0,
                expected: 1
            })
        );
        assert_eq!(
            check_launch_vmsa(GPA, &page(0, 0x21), 0),
            Err(VmsaProblem::SevFeatures {
                found: 0x21,
                expected: 1
            })
        );
        assert_eq!(
            check_launch_vmsa(GPA, &[0; 10], 0),
            Err(VmsaProblem::Size { len: 10 })
        );
        // KVM's VMSA GPA rule, checked first.
        for gpa in [0, 0x20_0000, 0x1_0000_0000] {
            assert_eq!(
                check_launch_vmsa(gpa, &page(0, 1), 0),
                Err(VmsaProblem::Gpa2MbAligned { gpa })
            );
        }
        assert_eq!(check_launch_vmsa(0x20_1000, &page(0, 1), 0), Ok(()));
    }
}

//! SEV-SNP launch page types.

use serde::Serialize;

/// The page type of an SNP_LAUNCH_UPDATE, with the firmware's values (KVM's
/// `KVM_SEV_SNP_PAGE_TYPE_*` use the same numbers; VMSA = 2 is the value of
/// the proposed `KVM_SEV_SNP_PAGE_TYPE_VMSA`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[repr(u8)]
pub enum PageType {
    /// Contents measured (SHA-384 of the page) and encrypted.
    Normal = 1,
    /// The boot CPU's VMSA; contents measured.
    Vmsa = 2,
    /// Zero-filled by the firmware; only GPA and type measured.
    Zero = 3,
    /// Contents loaded but not measured.
    Unmeasured = 4,
    /// The firmware's secrets page.
    Secrets = 5,
    /// The CPUID page, checked by the firmware.
    Cpuid = 6,
}

impl PageType {
    /// The firmware / KVM numeric value.
    pub fn value(self) -> u8 {
        self as u8
    }

    /// The page type for a firmware value.
    pub fn from_value(value: u8) -> Option<Self> {
        Some(match value {
            1 => PageType::Normal,
            2 => PageType::Vmsa,
            3 => PageType::Zero,
            4 => PageType::Unmeasured,
            5 => PageType::Secrets,
            6 => PageType::Cpuid,
            _ => return None,
        })
    }

    /// Upper-case name, as in the firmware specification.
    pub fn name(self) -> &'static str {
        match self {
            PageType::Normal => "NORMAL",
            PageType::Vmsa => "VMSA",
            PageType::Zero => "ZERO",
            PageType::Unmeasured => "UNMEASURED",
            PageType::Secrets => "SECRETS",
            PageType::Cpuid => "CPUID",
        }
    }

    /// Whether the page's contents enter the launch digest (NORMAL, VMSA);
    /// for every other type the PAGE_INFO CONTENTS field is 48 zero bytes.
    pub fn measures_contents(self) -> bool {
        matches!(self, PageType::Normal | PageType::Vmsa)
    }

    /// Whether a LAUNCH_UPDATE of this type reads a source buffer (all but
    /// ZERO).
    pub fn has_source(self) -> bool {
        !matches!(self, PageType::Zero)
    }
}

impl std::fmt::Display for PageType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        for v in 0..=255u8 {
            if let Some(t) = PageType::from_value(v) {
                assert_eq!(t.value(), v);
            } else {
                assert!(v == 0 || v > 6);
            }
        }
    }
}

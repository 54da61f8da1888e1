//! The SEV-SNP guest policy given to SNP_LAUNCH_START.

use serde::Serialize;

use crate::error::{Error, HeaderRef, Result};

/// An SEV-SNP guest policy (firmware ABI "Guest Policy"). Bit layout: 7:0
/// ABI minor, 15:8 ABI major, 16 SMT, 17 reserved (must be 1), 18
/// MIGRATE_MA, 19 DEBUG, 20 SINGLE_SOCKET, 21 CXL_ALLOW, 22 MEM_AES_256_XTS,
/// 23 RAPL_DIS, 24 CIPHERTEXT_HIDING, 25 PAGE_SWAP_DISABLE; 63:26 reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct SnpPolicy(u64);

impl SnpPolicy {
    /// Bit 17, reserved, must be one.
    pub const RESERVED_MBO: u64 = 1 << 17;
    /// Bit 16: SMT allowed.
    pub const SMT: u64 = 1 << 16;
    /// Bit 18: a migration agent may be associated.
    pub const MIGRATE_MA: u64 = 1 << 18;
    /// Bit 19: debugging allowed.
    pub const DEBUG: u64 = 1 << 19;
    /// Bit 20: single socket only.
    pub const SINGLE_SOCKET: u64 = 1 << 20;
    /// Every bit the firmware ABI defines (0 to 25).
    pub const KNOWN_BITS: u64 = (1 << 26) - 1;
    /// The policy used when neither the file nor the configuration gives
    /// one: 0x30000 (SMT allowed, bit 17 set, ABI 0.0), the default of
    /// QEMU's `sev-snp-guest` object.
    pub const DEFAULT_BITS: u64 = 0x30000;

    /// Validates a raw policy.
    ///
    /// # Errors
    /// [`Error::InvalidPolicy`] when bit 17 is clear or an undefined bit is set.
    ///
    /// # Example
    /// ```
    /// use igvm_snp::SnpPolicy;
    /// assert_eq!(SnpPolicy::new(0x30000).unwrap().bits(), 0x30000);
    /// assert!(SnpPolicy::new(0x10000).is_err()); // bit 17 clear
    /// ```
    pub fn new(bits: u64) -> Result<Self> {
        if bits & Self::RESERVED_MBO == 0 {
            return Err(Error::InvalidPolicy {
                policy: bits,
                reason: "reserved bit 17 must be set",
            });
        }
        if bits & !Self::KNOWN_BITS != 0 {
            return Err(Error::InvalidPolicy {
                policy: bits,
                reason: "bits 26..63 are reserved and must be zero",
            });
        }
        Ok(SnpPolicy(bits))
    }

    /// The raw value.
    pub fn bits(self) -> u64 {
        self.0
    }

    /// Minimum ABI minor version.
    pub fn abi_minor(self) -> u8 {
        self.0 as u8
    }

    /// Minimum ABI major version.
    pub fn abi_major(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// Whether SMT is allowed.
    pub fn smt(self) -> bool {
        self.0 & Self::SMT != 0
    }

    /// Whether debugging is allowed.
    pub fn debug(self) -> bool {
        self.0 & Self::DEBUG != 0
    }
}

impl std::fmt::Display for SnpPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// Where a plan's guest policy comes from. The policy is not part of the
/// launch digest; it only matters to SNP_LAUNCH_START (and to an ID block,
/// which must name the launch policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "from")]
pub enum PolicySource {
    /// The file's `GUEST_POLICY` initialization header for SEV-SNP.
    File {
        /// The header.
        at: HeaderRef,
    },
    /// The file has none; [`LaunchConfig::default_policy`](crate::LaunchConfig::default_policy) gave it.
    Configuration,
    /// Neither the file nor the configuration gives one:
    /// [`SnpPolicy::DEFAULT_BITS`].
    Default,
}

impl PolicySource {
    /// Whether the file itself has a guest policy for SEV-SNP.
    pub fn in_file(&self) -> bool {
        matches!(self, PolicySource::File { .. })
    }
}

impl std::fmt::Display for PolicySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicySource::File { at } => write!(f, "the file's guest policy header ({at})"),
            PolicySource::Configuration => {
                f.write_str("the configuration (the file has no guest policy for SEV-SNP)")
            }
            PolicySource::Default => write!(
                f,
                "the default {:#x} (the file has no guest policy for SEV-SNP and the \
                 configuration gives none)",
                SnpPolicy::DEFAULT_BITS
            ),
        }
    }
}

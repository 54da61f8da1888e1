//! The AMD Secure Processor's status codes (`SEV_RET_*`), as KVM reports
//! them in `kvm_sev_cmd.error`, decoded by name.
//!
//! Values from the kernel's `include/uapi/linux/psp-sev.h` (explicit values
//! since the 2025 fix "crypto: ccp: Fix uAPI definitions of PSP errors");
//! 0x1E is not assigned.

use std::fmt;

macro_rules! firmware_errors {
    ($($(#[$doc:meta])* $variant:ident = $code:literal => $name:literal,)*) => {
        /// A firmware status word (`SEV_RET_*`).
        ///
        /// `Success` (0) also appears when a command failed in KVM before
        /// reaching the firmware. Unassigned values are kept as
        /// [`FirmwareError::Unknown`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum FirmwareError {
            $($(#[$doc])* $variant,)*
            /// A value the firmware ABI does not assign (as of 0x27).
            Unknown(u32),
        }

        impl FirmwareError {
            /// Decodes a status word.
            pub fn from_code(code: u32) -> Self {
                match code {
                    $($code => FirmwareError::$variant,)*
                    other => FirmwareError::Unknown(other),
                }
            }

            /// The status word.
            pub fn code(self) -> u32 {
                match self {
                    $(FirmwareError::$variant => $code,)*
                    FirmwareError::Unknown(code) => code,
                }
            }

            /// The `SEV_RET_*` name without the prefix, e.g. `BAD_MEASUREMENT`;
            /// `UNKNOWN` for an unassigned value.
            pub fn name(self) -> &'static str {
                match self {
                    $(FirmwareError::$variant => $name,)*
                    FirmwareError::Unknown(_) => "UNKNOWN",
                }
            }
        }
    };
}

firmware_errors! {
    /// 0x00: the command succeeded (or never reached the firmware).
    Success = 0x00 => "SUCCESS",
    /// 0x01: the platform state is invalid for this command.
    InvalidPlatformState = 0x01 => "INVALID_PLATFORM_STATE",
    /// 0x02: the guest state is invalid for this command.
    InvalidGuestState = 0x02 => "INVALID_GUEST_STATE",
    /// 0x03: the platform configuration is invalid.
    InvalidConfig = 0x03 => "INVALID_CONFIG",
    /// 0x04: a buffer is too small.
    InvalidLength = 0x04 => "INVALID_LEN",
    /// 0x05: the platform is already owned.
    AlreadyOwned = 0x05 => "ALREADY_OWNED",
    /// 0x06: a certificate is invalid.
    InvalidCertificate = 0x06 => "INVALID_CERTIFICATE",
    /// 0x07: the request is not allowed by the guest policy.
    PolicyFailure = 0x07 => "POLICY_FAILURE",
    /// 0x08: the guest is inactive.
    Inactive = 0x08 => "INACTIVE",
    /// 0x09: an address is invalid.
    InvalidAddress = 0x09 => "INVALID_ADDRESS",
    /// 0x0A: a signature (ID block or ID key) did not verify.
    BadSignature = 0x0A => "BAD_SIGNATURE",
    /// 0x0B: the launch digest differs from the ID block's.
    BadMeasurement = 0x0B => "BAD_MEASUREMENT",
    /// 0x0C: the ASID is already owned.
    AsidOwned = 0x0C => "ASID_OWNED",
    /// 0x0D: the ASID is invalid.
    InvalidAsid = 0x0D => "INVALID_ASID",
    /// 0x0E: WBINVD is required.
    WbinvdRequired = 0x0E => "WBINVD_REQUIRED",
    /// 0x0F: DF_FLUSH is required.
    DfFlushRequired = 0x0F => "DFFLUSH_REQUIRED",
    /// 0x10: the guest handle is invalid.
    InvalidGuest = 0x10 => "INVALID_GUEST",
    /// 0x11: the command is invalid.
    InvalidCommand = 0x11 => "INVALID_COMMAND",
    /// 0x12: the guest is active.
    Active = 0x12 => "ACTIVE",
    /// 0x13: a hardware error occurred; the platform state is unchanged.
    HwErrorPlatform = 0x13 => "HWSEV_RET_PLATFORM",
    /// 0x14: a hardware error occurred; the platform state is unsafe.
    HwErrorUnsafe = 0x14 => "HWSEV_RET_UNSAFE",
    /// 0x15: the feature is not supported.
    Unsupported = 0x15 => "UNSUPPORTED",
    /// 0x16: a parameter is invalid (for a CPUID page: the firmware wrote
    /// the values it expects back into the page).
    InvalidParam = 0x16 => "INVALID_PARAM",
    /// 0x17: a resource limit was reached.
    ResourceLimit = 0x17 => "RESOURCE_LIMIT",
    /// 0x18: the integrity check of secure data failed.
    SecureDataInvalid = 0x18 => "SECURE_DATA_INVALID",
    /// 0x19: the page size is invalid.
    InvalidPageSize = 0x19 => "INVALID_PAGE_SIZE",
    /// 0x1A: the RMP page state is invalid.
    InvalidPageState = 0x1A => "INVALID_PAGE_STATE",
    /// 0x1B: a metadata entry is invalid.
    InvalidMdataEntry = 0x1B => "INVALID_MDATA_ENTRY",
    /// 0x1C: the page owner is invalid.
    InvalidPageOwner = 0x1C => "INVALID_PAGE_OWNER",
    /// 0x1D: the AEAD counter overflowed.
    AeadOverflow = 0x1D => "AEAD_OFLOW",
    /// 0x1F: the ring buffer mode was exited.
    ExitRingBuffer = 0x1F => "EXIT_RING_BUFFER",
    /// 0x20: the RMP must be initialized first.
    RmpInitRequired = 0x20 => "RMP_INIT_REQUIRED",
    /// 0x21: the SVN is invalid.
    BadSvn = 0x21 => "BAD_SVN",
    /// 0x22: the version is invalid.
    BadVersion = 0x22 => "BAD_VERSION",
    /// 0x23: a shutdown is required.
    ShutdownRequired = 0x23 => "SHUTDOWN_REQUIRED",
    /// 0x24: the firmware update failed.
    UpdateFailed = 0x24 => "UPDATE_FAILED",
    /// 0x25: a restore is required.
    RestoreRequired = 0x25 => "RESTORE_REQUIRED",
    /// 0x26: RMP initialization failed.
    RmpInitializationFailed = 0x26 => "RMP_INITIALIZATION_FAILED",
    /// 0x27: the key is invalid.
    InvalidKey = 0x27 => "INVALID_KEY",
}

impl fmt::Display for FirmwareError {
    /// `NAME (0xNN)`, e.g. `BAD_MEASUREMENT (0x0b)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:#04x})", self.name(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_names_are_unique() {
        let mut names = std::collections::HashSet::new();
        for code in 0..0x40u32 {
            let e = FirmwareError::from_code(code);
            assert_eq!(e.code(), code);
            if !matches!(e, FirmwareError::Unknown(_)) {
                assert!(names.insert(e.name()), "duplicate name {}", e.name());
            }
        }
        // 0x00..=0x1D and 0x1F..=0x27 are assigned; 0x1E is not.
        assert_eq!(names.len(), 0x27);
        assert_eq!(FirmwareError::from_code(0x1E), FirmwareError::Unknown(0x1E));
    }

    #[test]
    fn known_values_match_the_abi() {
        assert_eq!(FirmwareError::from_code(0x07), FirmwareError::PolicyFailure);
        assert_eq!(FirmwareError::from_code(0x0A), FirmwareError::BadSignature);
        assert_eq!(
            FirmwareError::from_code(0x0B),
            FirmwareError::BadMeasurement
        );
        assert_eq!(FirmwareError::from_code(0x16), FirmwareError::InvalidParam);
        assert_eq!(FirmwareError::from_code(0x17), FirmwareError::ResourceLimit);
        assert_eq!(FirmwareError::from_code(0x27), FirmwareError::InvalidKey);
        assert_eq!(
            FirmwareError::BadMeasurement.to_string(),
            "BAD_MEASUREMENT (0x0b)"
        );
    }
}

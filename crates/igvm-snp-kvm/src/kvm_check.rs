//! Test support: the `IGVM_SNP_REQUIRE_KVM` rule. Tests that need
//! `/dev/kvm` call [`kvm_or_skip`]; with `IGVM_SNP_REQUIRE_KVM=1` a device
//! that cannot be opened fails the test instead of skipping it.

use std::ffi::CStr;
use std::os::unix::ffi::OsStrExt;

use kvm_ioctls::Kvm;

use crate::host::{DEFAULT_VM_TYPE, HostCapabilities, HostFeatures, Support};
use crate::memory::{MemoryError, Unavailable};

/// The environment variable that turns skips into failures.
pub const REQUIRE_KVM_VAR: &str = "IGVM_SNP_REQUIRE_KVM";

/// The KVM device.
pub const KVM_PATH: &CStr = c"/dev/kvm";

/// Opens `/dev/kvm` for test `test`. Returns `None` (after printing a note)
/// when it cannot be opened and `IGVM_SNP_REQUIRE_KVM` is not `1`.
///
/// # Panics
/// When the device cannot be opened and `IGVM_SNP_REQUIRE_KVM=1`.
pub fn kvm_or_skip(test: &str) -> Option<Kvm> {
    let required = std::env::var(REQUIRE_KVM_VAR).is_ok_and(|v| v == "1");
    open_or_skip(KVM_PATH, test, required)
}

/// [`kvm_or_skip`] for a given device path and requirement.
///
/// # Panics
/// When the device cannot be opened and `required` is set.
pub fn open_or_skip(path: &CStr, test: &str, required: bool) -> Option<Kvm> {
    let path_os = std::path::Path::new(std::ffi::OsStr::from_bytes(path.to_bytes()));
    match crate::preflight::open_kvm(path_os) {
        Ok(kvm) => Some(kvm),
        Err(e) => {
            assert!(
                !required,
                "{test}: {} cannot be opened ({e}) and {REQUIRE_KVM_VAR}=1",
                path.to_string_lossy()
            );
            eprintln!(
                "{test}: skipped, {} cannot be opened ({e}); set {REQUIRE_KVM_VAR}=1 to fail \
                 instead",
                path.to_string_lossy()
            );
            None
        }
    }
}

/// [`kvm_or_skip`], then probes the host and prints which guest_memfd
/// branch `test` takes on it.
///
/// # Panics
/// As [`kvm_or_skip`].
pub fn host_or_skip(test: &str) -> Option<(Kvm, HostCapabilities)> {
    let kvm = kvm_or_skip(test)?;
    let host = HostCapabilities::probe();
    eprintln!("{test}: {}", host.guest_memfd_branch());
    Some((kvm, host))
}

/// Asserts that `error` is how guest memory refuses a guest_memfd region
/// at `gpa` of `size` bytes on `host`, whose probe found none for the
/// default VM type: [`MemoryError::GuestMemfdUnavailable`] when disabled or
/// when KVM has no such ioctl (`ENOTTY`), else [`MemoryError::GuestMemfd`]
/// with the errno the probe saw.
///
/// # Panics
/// When it is not, or when the host has guest_memfd.
pub fn assert_guest_memfd_refused(
    error: &MemoryError,
    host: &HostCapabilities,
    gpa: u64,
    size: u64,
) {
    let probe = host.guest_memfd_support(DEFAULT_VM_TYPE);
    let expected = match probe {
        Support::Yes => panic!("the host has guest_memfd"),
        Support::Disabled => Some(Unavailable::Disabled),
        Support::No { errno: Some(e) } if e.errno() == libc::ENOTTY => Some(Unavailable::Host(e)),
        _ if host.disabled.contains(HostFeatures::GUEST_MEMFD) => Some(Unavailable::Disabled),
        _ => None,
    };
    match (error, expected, probe) {
        (
            MemoryError::GuestMemfdUnavailable {
                gpa: g,
                size: s,
                reason,
            },
            Some(want),
            _,
        ) => assert_eq!((*g, *s, *reason), (gpa, size, want), "{error}"),
        (
            MemoryError::GuestMemfd {
                gpa: g,
                size: s,
                source,
            },
            None,
            Support::No { errno: Some(e) },
        ) => assert_eq!((*g, *s, *source), (gpa, size, e), "{error}"),
        (other, _, _) => {
            panic!("guest_memfd is {probe} here; memory should refuse it, got {other:?}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MISSING: &CStr = c"/nonexistent/igvm-snp-test/kvm";

    #[test]
    fn missing_device_skips_when_not_required() {
        assert!(open_or_skip(MISSING, "t", false).is_none());
    }

    #[test]
    #[should_panic(expected = "IGVM_SNP_REQUIRE_KVM=1")]
    fn missing_device_fails_when_required() {
        open_or_skip(MISSING, "t", true);
    }
}

//! Test support: the `IGVM_SNP_REQUIRE_KVM` rule. Tests that need
//! `/dev/kvm` call [`kvm_or_skip`]; with `IGVM_SNP_REQUIRE_KVM=1` a device
//! that cannot be opened fails the test instead of skipping it.

use std::ffi::CStr;

use kvm_ioctls::Kvm;

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
    match Kvm::new_with_path(path) {
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

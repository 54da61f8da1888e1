//! Test support: the `IGVM_SNP_REQUIRE_KVM` rule. Tests that need
//! `/dev/kvm` call [`kvm_or_skip`]; with `IGVM_SNP_REQUIRE_KVM=1` a missing
//! device fails the test instead of skipping it.

/// The environment variable that turns skips into failures.
pub const REQUIRE_KVM_VAR: &str = "IGVM_SNP_REQUIRE_KVM";

/// Opens `/dev/kvm` for test `test`. Returns `None` (after printing a note)
/// when it cannot be opened and `IGVM_SNP_REQUIRE_KVM` is not `1`.
///
/// # Panics
/// When the device cannot be opened and `IGVM_SNP_REQUIRE_KVM=1`.
pub fn kvm_or_skip(test: &str) -> Option<kvm_ioctls::Kvm> {
    match kvm_ioctls::Kvm::new() {
        Ok(kvm) => Some(kvm),
        Err(e) => {
            let required = std::env::var(REQUIRE_KVM_VAR).is_ok_and(|v| v == "1");
            assert!(
                !required,
                "{test}: /dev/kvm cannot be opened ({e}) and {REQUIRE_KVM_VAR}=1"
            );
            eprintln!(
                "{test}: skipped, /dev/kvm cannot be opened ({e}); set {REQUIRE_KVM_VAR}=1 to fail instead"
            );
            None
        }
    }
}

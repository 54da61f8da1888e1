//! Turning command-line options into a launch configuration.

use std::time::Duration;

use igvm_snp::kvm_legacy::{KVM_RESET_RDX, KvmLegacyInputs};
use igvm_snp::{GpaRange, LaunchConfig, PlanOptions, Profile, ZeroPages};

use crate::cli::{LaunchArgs, ProfileArg};

/// Start of the 32-bit PCI hole: RAM beyond this goes above 4 GiB.
const LOW_RAM_LIMIT: u64 = 0xC000_0000;

/// Parses a size such as `512M`, `2G`, `4096` or `64K`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, shift) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 30),
        Some('T' | 't') => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a size like 512M or 2G"))?;
    let bytes = n
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("`{s}` is too large"))?;
    if bytes == 0 || bytes % 4096 != 0 {
        return Err(format!("`{s}` must be a non-zero multiple of 4 KiB"));
    }
    Ok(bytes)
}

/// Parses a time limit in seconds, e.g. `10` or `0.5`.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if secs <= 0.0 {
        return Err(format!("`{s}`: the time limit must be positive"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("`{s}`: {e}"))
}

/// Parses 64 hexadecimal digits.
pub fn parse_host_data(s: &str) -> Result<[u8; 32], String> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return Err("host data is 64 hexadecimal digits (32 bytes)".into());
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
            .map_err(|_| format!("`{s}` is not hexadecimal"))?;
    }
    Ok(out)
}

/// RAM ranges for a RAM size: below the 32-bit hole, then from 4 GiB.
pub fn ram_ranges(size: u64) -> Vec<GpaRange> {
    if size <= LOW_RAM_LIMIT {
        vec![GpaRange::new(0, size)]
    } else {
        vec![
            GpaRange::new(0, LOW_RAM_LIMIT),
            GpaRange::new(1 << 32, size - LOW_RAM_LIMIT),
        ]
    }
}

/// The launch configuration for the options.
pub fn launch_config(args: &LaunchArgs) -> LaunchConfig {
    let mut config = LaunchConfig::new(args.vcpus.max(), ram_ranges(args.memory));
    if let Some(c) = &args.cmdline {
        config = config.with_command_line(c.clone());
    }
    if let Some(h) = args.host_data {
        config = config.with_host_data(h);
    }
    config
}

/// The CPU signature in the APs' RDX.
pub fn cpu_signature(args: &LaunchArgs) -> u32 {
    args.cpu_signature.unwrap_or(KVM_RESET_RDX)
}

/// What KVM's own VMSAs depend on, for a file whose boot VMSA asks for
/// `init2_vmsa_features`.
pub fn legacy_inputs(args: &LaunchArgs, init2_vmsa_features: u64) -> KvmLegacyInputs {
    KvmLegacyInputs::new(args.vcpus.max(), init2_vmsa_features, cpu_signature(args))
}

/// The planner options for the options. `init2_vmsa_features` (the file's,
/// from a first plan) is only needed by the kvm-legacy profile.
pub fn plan_options(args: &LaunchArgs, init2_vmsa_features: u64) -> PlanOptions {
    let profile = match args.profile {
        ProfileArg::Spec => Profile::IgvmSpec,
        ProfileArg::NativeZero => Profile::NativeZero,
        ProfileArg::Igvmmeasure => Profile::Igvmmeasure,
        ProfileArg::KvmLegacy => Profile::KvmLegacy(legacy_inputs(args, init2_vmsa_features)),
    };
    let mut o = profile.options();
    if args.native_zero {
        o.zero_pages = ZeroPages::NativeZero;
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("1").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn ram_split() {
        assert_eq!(ram_ranges(1 << 30), vec![GpaRange::new(0, 1 << 30)]);
        let r = ram_ranges(4 << 30);
        assert_eq!(r[1], GpaRange::new(1 << 32, (4 << 30) - LOW_RAM_LIMIT));
    }

    #[test]
    fn host_data() {
        assert_eq!(parse_host_data(&"ab".repeat(32)), Ok([0xab; 32]));
        assert!(parse_host_data("abc").is_err());
        assert!(parse_host_data(&"zz".repeat(32)).is_err());
    }
}

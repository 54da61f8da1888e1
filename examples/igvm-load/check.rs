//! `igvm-load check FILE`: for every measurement profile, whether the file
//! can be launched that way, the digest it gives, and why profiles differ.

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use igvm_snp::id_sign::verify_id_auth;
use igvm_snp::kvm_legacy::{KVM_RESET_RDX, KvmLegacyInputs};
use igvm_snp::profile::{self, CompatReport};
use igvm_snp::{BootVmsa, IgvmFile, LaunchPlan, PlanOptions};

use crate::Failure;

/// Options of `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The IGVM file.
    pub file: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// vCPUs (VP count parameter and MADT; one KVM VMSA each in the kvm-legacy profile).
    #[arg(long, default_value_t = 1, value_parser = crate::cli::parse_vcpu_count)]
    pub vcpus: u32,
    /// CPU signature (CPUID 1 EAX) the VMM writes into the APs' RDX, hexadecimal, e.g.
    /// a00f11 for EPYC-Milan [default: 600, KVM's reset value].
    #[arg(long, value_parser = parse_hex_u32)]
    pub cpu_signature: Option<u32>,
    /// KVM_SEV_INIT2 vmsa_features for the kvm-legacy profile, hexadecimal [default: the
    /// file's VMSA SEV features without SNPActive].
    #[arg(long, value_parser = parse_hex_u64)]
    pub vmsa_features: Option<u64>,
    /// The VMSA features KVM supports (KVM_X86_SEV_VMSA_FEATURES), hexadecimal; without it
    /// the SEV feature check is skipped.
    #[arg(long, value_parser = parse_hex_u64)]
    pub supported_features: Option<u64>,
    /// Guest RAM, e.g. 512M or 2G.
    #[arg(long, default_value = "512M", value_parser = crate::config::parse_size)]
    pub memory: u64,
}

fn hex_digits(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s)
}

/// Parses a hexadecimal u32, with or without `0x`.
pub fn parse_hex_u32(s: &str) -> Result<u32, String> {
    u32::from_str_radix(hex_digits(s), 16).map_err(|e| format!("`{s}`: {e}"))
}

/// Parses a hexadecimal u64, with or without `0x`.
pub fn parse_hex_u64(s: &str) -> Result<u64, String> {
    u64::from_str_radix(hex_digits(s), 16).map_err(|e| format!("`{s}`: {e}"))
}

/// Runs `check`.
pub fn run(out: &mut impl Write, args: &CheckArgs) -> Result<ExitCode, Failure> {
    let bytes = crate::map(&args.file)?;
    // What `launch` fills in too: the MADT for the vCPUs (a file whose
    // MADT area is too small for them cannot launch) and the command line.
    let config = crate::config::vmm_config(args.vcpus, args.memory, String::new());
    let spec = LaunchPlan::new(&bytes, &config, PlanOptions::default()).ok();
    // The file's VMSA features, also when it cannot be planned under the
    // spec's rules (kvm-legacy, which launches no VMSA page, may still plan it).
    let file_features = || {
        let file = IgvmFile::parse(&bytes).ok()?;
        Some(BootVmsa::of_file(&file).ok()?.init2_vmsa_features())
    };
    let vmsa_features = args
        .vmsa_features
        .or(spec.as_ref().map(LaunchPlan::init2_vmsa_features))
        .or_else(file_features);
    let features_known = vmsa_features.is_some();
    let vmsa_features = vmsa_features.unwrap_or(0);
    // The file's ID block signatures, checked against its ID block.
    let id_auth = spec.as_ref().and_then(|p| {
        let f = p.finish();
        let (block, auth) = (f.id_block.as_ref()?, f.id_auth.as_ref()?);
        Some(verify_id_auth(block, auth).map_or_else(|e| e.to_string(), |()| "valid".into()))
    });
    let legacy = KvmLegacyInputs::new(
        args.vcpus,
        vmsa_features,
        args.cpu_signature.unwrap_or(KVM_RESET_RDX),
    );
    let release = |part: &[u8]| bytes.release_around(part);
    let report =
        profile::check_releasing(&bytes, &config, legacy, args.supported_features, release)
            .map_err(|e| format!("{}: {e}", args.file.display()))?;
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["file"] = serde_json::Value::String(args.file.display().to_string());
        if let Some(a) = &id_auth {
            v["id_auth"] = serde_json::Value::String(a.clone());
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        write!(
            out,
            "{}",
            text(&args.file, &legacy, features_known, &report)
        )?;
        if let Some(a) = &id_auth {
            writeln!(out, "ID auth signatures: {a}")?;
        }
    }
    // The report is the answer either way; the exit code says whether any
    // profile can launch the file, for scripts.
    if report.profiles.iter().any(|p| p.launchable) {
        Ok(ExitCode::SUCCESS)
    } else {
        out.flush()?;
        Err(format!("{}: no profile can launch this file", args.file.display()).into())
    }
}

/// The report as text.
/// `features_known`: the VMSA features come from the file or the command
/// line (a file without a readable SEV-SNP VMSA has none).
fn text(
    file: &std::path::Path,
    legacy: &KvmLegacyInputs,
    features_known: bool,
    r: &CompatReport,
) -> String {
    let mut s = String::new();
    let _ = write!(s, "{}:", file.display());
    if let (Some(gpa), Some(f)) = (r.vmsa_gpa, r.vmsa_sev_features) {
        let _ = write!(s, " VMSA at {gpa:#x}, SEV features {f:#x}");
    }
    let _ = writeln!(s);
    if let (Some(bits), Some(from)) = (r.policy, &r.policy_source) {
        let _ = writeln!(s, "guest policy: {bits:#x}, from {from}");
    }
    if let Some(ld) = r.id_block_digest {
        let _ = writeln!(s, "ID block expects {ld}");
    }
    let features = if features_known {
        format!("{:#x}", legacy.vmsa_features)
    } else {
        "unknown (no SEV-SNP VMSA found in the file)".to_string()
    };
    let _ = writeln!(
        s,
        "kvm-legacy inputs: {} vCPU(s), vmsa_features {features}, CPU signature {:#x}\n",
        legacy.vcpus, legacy.cpu_signature
    );
    for p in &r.profiles {
        let digest = p.digest.map_or_else(|| "-".to_string(), |d| d.to_string());
        let mut tags = Vec::new();
        if p.same_as_spec && p.name != "igvm-spec" {
            tags.push("same as igvm-spec");
        }
        if p.matches_id_block == Some(true) {
            tags.push("matches the ID block");
        }
        let _ = writeln!(
            s,
            "{:<12} {:<3} {digest} {}",
            p.name,
            if p.launchable { "ok" } else { "NO" },
            tags.join(", ")
        );
        let _ = writeln!(s, "    ({})", p.source);
        for b in &p.blockers {
            let _ = writeln!(s, "    cannot launch: {b}");
        }
        for d in &p.differences {
            let _ = writeln!(s, "    differs: {d}");
        }
        for n in &p.notes {
            let _ = writeln!(s, "    note: {n}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex() {
        assert_eq!(parse_hex_u32("0xA00F11"), Ok(0xA00F11));
        assert_eq!(parse_hex_u32("a00f11"), Ok(0xA00F11));
        assert!(parse_hex_u32("xyz").is_err());
        assert!(parse_hex_u32("1ffffffff").is_err());
        assert_eq!(parse_hex_u64("0x20"), Ok(0x20));
    }
}

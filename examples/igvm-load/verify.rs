//! `igvm-load verify --report REPORT FILE`: does this SEV-SNP attestation
//! report come from this IGVM file? Every check of
//! `igvm_snp::attestation::verify`, offline.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use clap::Args;
use igvm_snp::LaunchConfig;
use igvm_snp::attestation::{
    AttestationReport, Certificate, Certificates, Expected, MinTcb, REPORT_SIZE, Verdict,
    parse_utc_time, verify_releasing,
};
use igvm_snp::kvm_legacy::KVM_MAX_VCPUS;

use crate::Failure;

/// Options of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The attestation report: 1184 bytes, raw or as hexadecimal text.
    #[arg(long)]
    pub report: PathBuf,
    /// The IGVM file.
    pub file: PathBuf,
    /// The VCEK or VLEK certificate (DER or PEM) to check the report's signature, TCB and
    /// chip ID with; without it those checks are not made.
    #[arg(long)]
    pub vcek: Option<PathBuf>,
    /// The ASK (or ASVK) certificate: with --ark, the chain ARK -> ASK -> VCEK is checked.
    #[arg(long, requires_all = ["ark", "vcek"])]
    pub ask: Option<PathBuf>,
    /// The ARK certificate: one of AMD's root keys (Milan, Genoa, Turin), or any root with
    /// --trust-ark.
    #[arg(long, requires_all = ["ask", "vcek"])]
    pub ark: Option<PathBuf>,
    /// Anchor the chain in the ARK given even when it is not one of AMD's root keys (a test
    /// or private chain).
    #[arg(long, requires = "ark")]
    pub trust_ark: bool,
    /// Check the certificates' validity periods at TIME (YYYY-MM-DD or
    /// YYYY-MM-DDTHH:MM:SSZ, UTC) [default: now].
    #[arg(long, value_name = "TIME", value_parser = parse_time, requires = "vcek")]
    pub at: Option<SystemTime>,
    /// Exit 0 when every check made passes even though the report is not authenticated (its
    /// signature and chain not verified): only the report's consistency with the file is
    /// then shown, and anyone who can plan the file can write such a report.
    #[arg(long)]
    pub unauthenticated: bool,
    /// Expected HOST_DATA: 64 hexadecimal digits [default: not checked].
    #[arg(long, value_parser = crate::config::parse_host_data)]
    pub host_data: Option<[u8; 32]>,
    /// Expected REPORT_DATA (the nonce or key hash the guest put in its request): 128
    /// hexadecimal digits [default: not checked].
    #[arg(long, value_parser = crate::config::parse_report_data)]
    pub report_data: Option<[u8; 64]>,
    /// Expected guest policy, hexadecimal [default: the file's; without one, POLICY must not
    /// allow debugging or a migration agent].
    #[arg(long, value_parser = crate::check::parse_hex_u64)]
    pub policy: Option<u64>,
    /// The lowest REPORTED_TCB accepted, e.g. `bootloader=3,tee=0,snp=8,microcode=115` (and
    /// `fmc=N` on Turin and later); components left out may be anything [default: not
    /// checked].
    #[arg(long, value_name = "NAME=SVN,...")]
    pub min_tcb: Option<MinTcb>,
    /// Expected VMPL of the report's request, exactly [default: the file's boot VMPL or a
    /// less privileged one].
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=3))]
    pub vmpl: Option<u32>,
    /// The kvm-legacy profile is tried for 1 to this many vCPUs.
    #[arg(long, default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(KVM_MAX_VCPUS)))]
    pub max_vcpus: u32,
    /// Print one JSON object: {"measurement", "match", "checks", "authenticated", "passed",
    /// "accepted"}.
    #[arg(long)]
    pub json: bool,
}

/// Reads a report or certificate (a few KiB; at most 1 MiB), naming it in
/// the error.
fn read(path: &Path, what: &str) -> Result<Vec<u8>, Failure> {
    crate::read_at_most(path, what, 1 << 20)
}

/// A report given raw, or as hexadecimal text (as some tools save it).
fn report_bytes(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    if bytes.len() == REPORT_SIZE {
        return Ok(bytes);
    }
    let digits: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Ok(bytes);
    }
    if digits.len() != 2 * REPORT_SIZE {
        return Err(format!(
            "hexadecimal text of {} digits; a report is {} digits ({REPORT_SIZE} bytes)",
            digits.len(),
            2 * REPORT_SIZE
        ));
    }
    // ASCII hex digits (checked above), so also UTF-8.
    let text = std::str::from_utf8(&digits).unwrap_or_default();
    crate::config::parse_hex::<REPORT_SIZE>(text, "a report").map(|r| r.to_vec())
}

fn parse_time(text: &str) -> Result<SystemTime, String> {
    parse_utc_time(text)
        .ok_or_else(|| format!("{text:?} is not a UTC time: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ"))
}

fn certificate(path: &Option<PathBuf>, what: &str) -> Result<Option<Certificate>, Failure> {
    let Some(path) = path else {
        return Ok(None);
    };
    let bytes = read(path, what)?;
    Certificate::parse(&bytes)
        .map(Some)
        .map_err(|e| format!("{what} {}: {e}", path.display()).into())
}

/// Runs `verify`: the verdict on stdout, each failed check on stderr; exit
/// 1 when a check fails.
pub fn run(out: &mut impl Write, args: &VerifyArgs) -> Result<ExitCode, Failure> {
    let bytes = report_bytes(read(&args.report, "report")?)
        .map_err(|e| format!("report {}: {e}", args.report.display()))?;
    let report = AttestationReport::parse(&bytes)
        .map_err(|e| format!("report {}: {e}", args.report.display()))?;
    let certs = Certificates {
        vek: certificate(&args.vcek, "VCEK")?,
        ask: certificate(&args.ask, "ASK")?,
        ark: certificate(&args.ark, "ARK")?,
        trust_ark: args.trust_ark,
        valid_at: Some(args.at.unwrap_or_else(SystemTime::now)),
    };
    let file = crate::map(&args.file)?;
    let mut expected = Expected::default().with_max_vcpus(args.max_vcpus);
    if let Some(h) = args.host_data {
        expected = expected.with_host_data(h);
    }
    if let Some(d) = args.report_data {
        expected = expected.with_report_data(d);
    }
    if let Some(p) = args.policy {
        expected = expected.with_policy(p);
    }
    if let Some(v) = args.vmpl {
        expected = expected.with_vmpl(v);
    }
    if let Some(m) = args.min_tcb {
        expected = expected.with_min_tcb(m);
    }
    // RAM and the vCPU count do not enter the digest (parameter areas are
    // UNMEASURED); leaving RAM unknown plans files with required memory
    // anywhere.
    let config = LaunchConfig::new(1, Vec::new());
    let release = |part: &[u8]| file.release_around(part);
    let verdict = verify_releasing(&report, &file, &config, &expected, &certs, release)
        .map_err(|e| format!("{}: {e}", args.file.display()))?;
    let accepted = verdict.passed() || (args.unauthenticated && verdict.consistent());
    if args.json {
        let mut json = serde_json::to_value(&verdict)?;
        if let Some(map) = json.as_object_mut() {
            map.insert("authenticated".into(), verdict.authenticated().into());
            // `passed` is the library's rule (authenticated, every check
            // made passed); `accepted` is the exit code's, which
            // --unauthenticated relaxes.
            map.insert("passed".into(), verdict.passed().into());
            map.insert("accepted".into(), accepted.into());
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        write!(
            out,
            "{}",
            text(&args.report, &report, &verdict, args.unauthenticated)
        )?;
    }
    out.flush()?;
    if accepted {
        return Ok(ExitCode::SUCCESS);
    }
    let mut err = std::io::stderr().lock();
    for c in verdict.failures() {
        writeln!(err, "error: {}: {}", c.name, c.detail)?;
    }
    if !verdict.authenticated() && !args.unauthenticated {
        writeln!(err, "error: {NOT_AUTHENTICATED}")?;
    }
    Ok(ExitCode::from(1))
}

const NOT_AUTHENTICATED: &str = "the report is not authenticated: its signature and AMD's \
     chain (--vcek, --ask, --ark) were not both verified, and anyone who can plan the file can \
     write a report that matches it (--unauthenticated accepts the checks made alone)";

/// The verdict as text: what the report is, the profile that explains it,
/// then one line per check (`ok`, `FAIL`, or `-` for not checked).
fn text(path: &Path, report: &AttestationReport, v: &Verdict, unauthenticated: bool) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "{}: report version {}, VMPL {}, policy {:#x}",
        path.display(),
        report.version,
        report.vmpl,
        report.policy
    );
    if let Some(c) = report.cpuid {
        let _ = write!(
            s,
            ", CPUID family {:#x} model {:#x} stepping {}",
            c.family, c.model, c.stepping
        );
    }
    let _ = writeln!(s, "\nMEASUREMENT {}", v.measurement);
    let _ = match v.matched {
        Some(m) => match m.vcpus {
            Some(n) => writeln!(s, "explained by: {} with {n} vCPU(s)", m.profile),
            None => writeln!(s, "explained by: {}", m.profile),
        },
        None => writeln!(s, "explained by: no profile"),
    };
    for c in &v.checks {
        let mark = match c.ok {
            Some(true) => "ok",
            Some(false) => "FAIL",
            None => "-",
        };
        let _ = writeln!(s, "{mark:<4} {:<17} {}", c.name, c.detail);
    }
    let _ = writeln!(
        s,
        "{}",
        if v.passed() {
            "every check made passed, and the report is authenticated"
        } else if v.consistent() && unauthenticated {
            "every check made passed; the report is NOT authenticated (accepted with \
             --unauthenticated)"
        } else if v.consistent() {
            "verification FAILED: every check made passed, but the report is not authenticated"
        } else {
            "verification FAILED"
        }
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_reports() {
        let raw: Vec<u8> = (0..REPORT_SIZE).map(|i| i as u8).collect();
        let hex: String = raw.iter().map(|b| format!("{b:02X}")).collect();
        let wrapped = hex
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(report_bytes(wrapped.into_bytes()), Ok(raw.clone()));
        assert_eq!(report_bytes(raw.clone()), Ok(raw));
        // Neither: left for the parser to reject.
        assert_eq!(report_bytes(b"xyz".to_vec()), Ok(b"xyz".to_vec()));
        // Hex text of the wrong length: said so, not read as raw bytes.
        assert_eq!(
            report_bytes(hex.as_bytes()[..2000].to_vec()),
            Err("hexadecimal text of 2000 digits; a report is 2368 digits (1184 bytes)".into())
        );
    }
}

//! Does this attestation report come from this IGVM file? Every check the
//! inputs allow, each named, with what it compared:
//!
//! | check | compares | not checked when |
//! |---|---|---|
//! | `signature` | the report's signature with the VCEK/VLEK | no certificate |
//! | `certificate_chain` | ARK → ARK, ARK → ASK, ASK → VCEK, and the ARK is one of AMD's root keys (or one the caller trusts) | no ASK and ARK |
//! | `certificate_dates` | each certificate given is within its validity period at the time given ([`Certificates::valid_at`]) | no certificate; no time |
//! | `tcb` | the VCEK's TCB extensions with REPORTED_TCB | no certificate |
//! | `chip_id` | the VCEK's hwID with CHIP_ID | no certificate; a VLEK; a masked CHIP_ID |
//! | `measurement` | MEASUREMENT with every profile's digest (kvm-legacy for 1 to `max_vcpus` vCPUs) | never |
//! | `host_data` | HOST_DATA with the expected host data | none expected |
//! | `report_data` | REPORT_DATA with the expected report data (a nonce or key the guest put there) | none expected |
//! | `policy` | POLICY with the expected policy, else the file's; with neither, that POLICY allows neither debugging nor a migration agent | never |
//! | `id_block` | FAMILY_ID, IMAGE_ID, GUEST_SVN with the file's ID block (zeros without one) | never |
//! | `id_key_digest` | ID_KEY_DIGEST with SHA-384 of the file's ID public key (zeros without one) | never |
//! | `author_key_digest` | AUTHOR_KEY_DIGEST and AUTHOR_KEY_EN with the file's author key | never |
//! | `vmpl` | VMPL with the expected VMPL, else with the file's boot VMSA's VMPL (a report is requested at that VMPL or a less privileged one) | never |
//! | `min_tcb` | each component of REPORTED_TCB (the TCB the VCEK is derived for) with the expected minimum | no minimum expected |
//!
//! A report is *authenticated* when its signature verifies with the VCEK or
//! VLEK given and that certificate chains to one of AMD's root keys (or to
//! an ARK the caller chose to trust). [`Verdict::passed`] needs that as well
//! as every check made passing: without it, anyone who can plan the file
//! can write a report that matches it. [`Verdict::consistent`] is the
//! checks alone.
//!
//! The digest the kvm-legacy profile predicts depends on the CPU signature
//! the VMM writes into the APs' RDX: it is taken from the report's CPUID
//! fields (version 3 and later), else KVM's reset value 0x600.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use serde::Serialize;
use sha2::{Digest, Sha384};
use zerocopy::IntoBytes;

use super::certs::{
    Certificate, hw_id_matches, tcb_differences, utc_time, verify_chain, verify_report_signature,
};
use super::report::{AttestationReport, SigningKey, TcbVersion, to_hex, write_tcb};
use crate::config::LaunchConfig;
use crate::digest::LaunchDigest;
use crate::error::{Error, Result};
use crate::kvm_legacy::{KVM_MAX_VCPUS, KVM_RESET_RDX, KvmLegacyInputs};
use crate::plan::{LaunchPlan, PlanOptions};
use crate::policy::SnpPolicy;
use crate::profile::Profile;

/// Launch inputs the caller expects, besides the file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Expected {
    /// HOST_DATA given to SNP_LAUNCH_FINISH; `None`: not checked.
    pub host_data: Option<[u8; 32]>,
    /// REPORT_DATA the guest asked for (a nonce, a key's hash); `None`:
    /// not checked.
    pub report_data: Option<[u8; 64]>,
    /// The guest policy; `None`: the file's, or when the file has none,
    /// only that debugging and a migration agent are not allowed.
    pub policy: Option<u64>,
    /// The VMPL the report was requested at; `None`: the file's boot VMPL
    /// or a less privileged one.
    pub vmpl: Option<u32>,
    /// The kvm-legacy profile is tried for 1 to this many vCPUs.
    pub max_vcpus: u32,
    /// The lowest REPORTED_TCB accepted; `None`: not checked.
    pub min_tcb: Option<MinTcb>,
}

/// The lowest TCB a guest owner accepts: every component of the report's
/// TCB must be at least this. `fmc` exists on Turin and later only; a
/// minimum that names it fails for a report whose TCB has no FMC field.
///
/// ```
/// use igvm_snp::attestation::MinTcb;
/// let min: MinTcb = "snp=8,microcode=115".parse().unwrap();
/// assert_eq!((min.bootloader, min.snp, min.microcode, min.fmc), (0, 8, 115, None));
/// assert_eq!(min.to_string(), "bootloader 0, tee 0, snp 8, microcode 115");
/// assert!("snp=256".parse::<MinTcb>().is_err());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MinTcb {
    /// FMC SVN (Turin and later); `None`: no requirement.
    pub fmc: Option<u8>,
    /// PSP bootloader SVN.
    pub bootloader: u8,
    /// PSP OS (TEE) SVN.
    pub tee: u8,
    /// SNP firmware SVN.
    pub snp: u8,
    /// Microcode patch level.
    pub microcode: u8,
}

/// Error parsing a [`MinTcb`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0}: a minimum TCB is NAME=VALUE pairs separated by commas, NAME one of bootloader, tee, \
     snp, microcode, fmc, VALUE 0 to 255"
)]
pub struct ParseMinTcbError(String);

impl FromStr for MinTcb {
    type Err = ParseMinTcbError;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let mut min = MinTcb::default();
        let mut seen = Vec::new();
        for pair in s.split(',') {
            let bad = || ParseMinTcbError(format!("{pair:?}"));
            let (name, value) = pair.split_once('=').ok_or_else(bad)?;
            let (name, value) = (name.trim(), value.trim());
            // Digits only: `u8::from_str` would also take a sign.
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let value: u8 = value.parse().map_err(|_| bad())?;
            if seen.contains(&name) {
                return Err(ParseMinTcbError(format!("{name} given twice")));
            }
            match name {
                "bootloader" => min.bootloader = value,
                "tee" => min.tee = value,
                "snp" => min.snp = value,
                "microcode" => min.microcode = value,
                "fmc" => min.fmc = Some(value),
                _ => return Err(bad()),
            }
            seen.push(name);
        }
        Ok(min)
    }
}

impl fmt::Display for MinTcb {
    /// As a [`TcbVersion`] is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let svns = [self.bootloader, self.tee, self.snp, self.microcode];
        write_tcb(f, self.fmc, svns)
    }
}

impl MinTcb {
    /// The components of `tcb` below this minimum, as `name got < want`.
    pub fn shortfalls(&self, tcb: &TcbVersion) -> Vec<String> {
        let mut out = Vec::new();
        match (self.fmc, tcb.fmc) {
            (Some(want), Some(got)) if got < want => out.push(format!("fmc {got} < {want}")),
            (Some(want), None) => out.push(format!(
                "fmc: the TCB has no FMC field (a minimum of {want} is expected)"
            )),
            _ => {}
        }
        for (name, got, want) in [
            ("bootloader", tcb.bootloader, self.bootloader),
            ("tee", tcb.tee, self.tee),
            ("snp", tcb.snp, self.snp),
            ("microcode", tcb.microcode, self.microcode),
        ] {
            if got < want {
                out.push(format!("{name} {got} < {want}"));
            }
        }
        out
    }
}

impl Default for Expected {
    /// Nothing expected beyond the file; kvm-legacy up to 64 vCPUs.
    fn default() -> Self {
        Expected {
            host_data: None,
            report_data: None,
            policy: None,
            vmpl: None,
            max_vcpus: 64,
            min_tcb: None,
        }
    }
}

impl Expected {
    /// Expects this HOST_DATA.
    pub fn with_host_data(mut self, host_data: [u8; 32]) -> Self {
        self.host_data = Some(host_data);
        self
    }

    /// Expects this REPORT_DATA.
    pub fn with_report_data(mut self, report_data: [u8; 64]) -> Self {
        self.report_data = Some(report_data);
        self
    }

    /// Expects this guest policy, whatever the file's.
    pub fn with_policy(mut self, policy: u64) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Expects the report to be requested at exactly this VMPL.
    pub fn with_vmpl(mut self, vmpl: u32) -> Self {
        self.vmpl = Some(vmpl);
        self
    }

    /// Expects REPORTED_TCB to be at least `min_tcb`.
    pub fn with_min_tcb(mut self, min_tcb: MinTcb) -> Self {
        self.min_tcb = Some(min_tcb);
        self
    }

    /// Tries kvm-legacy for 1 to `max_vcpus` vCPUs.
    pub fn with_max_vcpus(mut self, max_vcpus: u32) -> Self {
        self.max_vcpus = max_vcpus;
        self
    }
}

/// The certificates given: the VCEK or VLEK, and its ASK (or ASVK) and ARK.
#[derive(Debug, Clone, Default)]
pub struct Certificates {
    /// The VCEK or VLEK.
    pub vek: Option<Certificate>,
    /// The ASK or ASVK.
    pub ask: Option<Certificate>,
    /// The ARK.
    pub ark: Option<Certificate>,
    /// Anchor the chain in `ark` even when it is not one of AMD's root
    /// keys (a test or private chain). Without it such a chain fails.
    pub trust_ark: bool,
    /// The time every certificate given must be valid at (normally now;
    /// the library reads no clock). `None`: validity periods are not
    /// checked.
    pub valid_at: Option<SystemTime>,
}

/// One check: passed (`Some(true)`), failed (`Some(false)`) or not made
/// (`None`), and what it compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// The check (module docs list them).
    pub name: &'static str,
    /// Its outcome; `None` when it could not be made.
    pub ok: Option<bool>,
    /// What was compared, or why it was not.
    pub detail: String,
}

impl Check {
    fn new(name: &'static str, ok: Option<bool>, detail: impl Into<String>) -> Self {
        Check {
            name,
            ok,
            detail: detail.into(),
        }
    }
}

/// The profile that explains a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProfileMatch {
    /// Its name ([`Profile::name`]).
    pub profile: &'static str,
    /// The vCPU count, for kvm-legacy.
    pub vcpus: Option<u32>,
}

/// Everything checked about a report.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The report's MEASUREMENT.
    pub measurement: LaunchDigest,
    /// The profile whose digest it is, if any.
    #[serde(rename = "match")]
    pub matched: Option<ProfileMatch>,
    /// Every check, in the order of the module docs.
    pub checks: Vec<Check>,
}

impl Verdict {
    /// Whether the report is authenticated (module docs) and every check
    /// made passed: what to act on.
    pub fn passed(&self) -> bool {
        self.authenticated() && self.consistent()
    }

    /// Whether the signature and the certificate chain checks passed: the
    /// report was signed by a VCEK or VLEK that chains to one of AMD's root
    /// keys (or to an ARK the caller trusts).
    pub fn authenticated(&self) -> bool {
        let ok = |name| {
            self.checks
                .iter()
                .any(|c| c.name == name && c.ok == Some(true))
        };
        ok("signature") && ok("certificate_chain")
    }

    /// Whether every check made passed, whether or not the report is
    /// authenticated (checks not made count neither way).
    pub fn consistent(&self) -> bool {
        self.checks.iter().all(|c| c.ok != Some(false))
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.ok == Some(false))
    }
}

/// Checks a report against an IGVM file, the certificates given and what
/// the caller expects. `config` is what the file is planned with (its vCPU
/// count and parameters do not enter the digest).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use igvm_snp::attestation::{verify, AttestationReport, Certificates, Expected, RawReport};
/// use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, PlanOptions};
/// use zerocopy::{FromZeros, IntoBytes};
/// let bytes = igvm_snp::demo::demo_igvm();
/// let config = LaunchConfig::new(1, vec![GpaRange::new(0, 16 << 20)]);
/// let plan = LaunchPlan::new(&bytes, &config, PlanOptions::default())?;
/// // A report of a launch with the spec's rules (unsigned, no certificates).
/// let mut raw = RawReport::new_zeroed();
/// raw.version.set(3);
/// raw.policy.set(plan.policy()?.bits());
/// raw.measurement = plan.launch_digest().0;
/// let report = AttestationReport::parse(raw.as_bytes())?;
/// let verdict = verify(&report, &bytes, &config, &Expected::default(), &Certificates::default())?;
/// assert_eq!(verdict.matched.unwrap().profile, "igvm-spec");
/// assert!(verdict.consistent());
/// let signature = verdict.checks.iter().find(|c| c.name == "signature").unwrap();
/// assert_eq!(signature.ok, None); // not checked: no certificate
/// assert!(!verdict.passed()); // so the report is not authenticated
/// # Ok(()) }
/// ```
///
/// # Errors
/// The file's planning error when it cannot be planned at all, or
/// [`Error::InvalidVcpuCount`] for `max_vcpus` 0 or above KVM's limit.
pub fn verify(
    report: &AttestationReport,
    file: &[u8],
    config: &LaunchConfig,
    expected: &Expected,
    certs: &Certificates,
) -> Result<Verdict> {
    verify_releasing(report, file, config, expected, certs, |_| {})
}

/// [`verify`], handing back the file's bytes as each profile's digest
/// hashes them (see [`LaunchPlan::launch_digest_releasing`]): for a caller
/// that maps the file.
///
/// # Errors
/// As [`verify`].
pub fn verify_releasing(
    report: &AttestationReport,
    file: &[u8],
    config: &LaunchConfig,
    expected: &Expected,
    certs: &Certificates,
    release: impl Fn(&[u8]) + Sync,
) -> Result<Verdict> {
    let mut checks = certificate_checks(report, certs);
    let (matched, file_checks) = file_checks_releasing(report, file, config, expected, &release)?;
    checks.extend(file_checks);
    // On the report alone, with what the caller expects.
    checks.push(min_tcb(report, expected.min_tcb.as_ref()));
    if matched.is_none() {
        let others: Vec<&str> = checks
            .iter()
            .filter(|c| c.ok == Some(false) && c.name != "measurement")
            .map(|c| c.name)
            .collect();
        if let Some(m) = checks.iter_mut().find(|c| c.name == "measurement") {
            if others.is_empty() {
                m.detail.push_str("; every other check made passes");
            } else {
                m.detail
                    .push_str(&format!("; other checks that fail: {}", others.join(", ")));
            }
        }
    }
    Ok(Verdict {
        measurement: report.measurement,
        matched,
        checks,
    })
}

/// The checks that need certificates: signature, chain, dates, TCB, chip
/// ID.
pub fn certificate_checks(report: &AttestationReport, certs: &Certificates) -> Vec<Check> {
    let Some(vek) = &certs.vek else {
        let none = "not checked: no VCEK or VLEK given";
        return vec![
            Check::new("signature", None, none),
            Check::new("certificate_chain", None, none),
            Check::new("certificate_dates", None, none),
            Check::new("tcb", None, none),
            Check::new("chip_id", None, none),
        ];
    };
    let mut out = Vec::new();
    // KEY_INFO.SIGNING_KEY says which key signed; the certificate must be
    // that kind (AMD names them by CN).
    let key_kind = match (report.key_info.signing_key, vek.common_name().as_deref()) {
        (SigningKey::Reserved(n), _) => Err(format!("SIGNING_KEY {n} is a reserved value")),
        (SigningKey::Vcek, Some("SEV-VLEK")) => Err(
            "SIGNING_KEY says the VCEK signed the report, but the certificate is a VLEK \
             (CN=SEV-VLEK)"
                .to_string(),
        ),
        (SigningKey::Vlek, Some("SEV-VCEK")) => Err(
            "SIGNING_KEY says a VLEK signed the report, but the certificate is a VCEK \
             (CN=SEV-VCEK)"
                .to_string(),
        ),
        _ => Ok(()),
    };
    out.push(match key_kind {
        Err(reason) => Check::new("signature", Some(false), reason),
        Ok(()) => match verify_report_signature(report, vek) {
            Ok(()) => Check::new(
                "signature",
                Some(true),
                format!("ECDSA P-384 signature verifies with \"{vek}\""),
            ),
            Err(e) => Check::new("signature", Some(false), e.to_string()),
        },
    });
    out.push(match (&certs.ask, &certs.ark) {
        (Some(ask), Some(ark)) => match verify_chain(ark, ask, vek) {
            Ok(()) => {
                let links =
                    format!("\"{ark}\" signs itself and \"{ask}\", which signs the VCEK/VLEK");
                match (ark.amd_root(), certs.trust_ark) {
                    (Some(g), _) => Check::new(
                        "certificate_chain",
                        Some(true),
                        format!("{links}; the ARK is AMD's {g} root key"),
                    ),
                    (None, true) => Check::new(
                        "certificate_chain",
                        Some(true),
                        format!(
                            "{links}; the ARK is not one of AMD's root keys (Milan, Genoa, \
                             Turin): trusted as asked"
                        ),
                    ),
                    (None, false) => Check::new(
                        "certificate_chain",
                        Some(false),
                        format!(
                            "{links}, but the ARK is not one of AMD's root keys (Milan, Genoa, \
                             Turin) and was not marked trusted"
                        ),
                    ),
                }
            }
            Err(e) => Check::new("certificate_chain", Some(false), e.to_string()),
        },
        _ => Check::new(
            "certificate_chain",
            None,
            "not checked: the ASK (or ASVK) and the ARK are both needed",
        ),
    });
    out.push(certificate_dates(vek, certs));
    match vek.vek_extensions() {
        Err(e) => {
            out.push(Check::new("tcb", Some(false), e.to_string()));
            out.push(Check::new("chip_id", Some(false), e.to_string()));
        }
        Ok(ext) => {
            let diff = tcb_differences(&report.reported_tcb, &ext);
            out.push(if diff.is_empty() {
                Check::new(
                    "tcb",
                    Some(true),
                    format!("REPORTED_TCB ({}) is the VCEK's", report.reported_tcb),
                )
            } else {
                Check::new(
                    "tcb",
                    Some(false),
                    format!(
                        "REPORTED_TCB is not the certificate's TCB: {}",
                        diff.join("; ")
                    ),
                )
            });
            out.push(match (&ext.hw_id, report.chip_id_masked()) {
                (_, true) => Check::new(
                    "chip_id",
                    None,
                    "not checked: CHIP_ID is masked (zeros) in the report",
                ),
                (None, _) if report.key_info.signing_key == SigningKey::Vlek => Check::new(
                    "chip_id",
                    None,
                    "not checked: a VLEK carries no hardware ID",
                ),
                (None, _) => Check::new(
                    "chip_id",
                    Some(false),
                    "the certificate has no hwID extension (1.3.6.1.4.1.3704.1.4)",
                ),
                (Some(id), _) if hw_id_matches(id, &report.chip_id) => Check::new(
                    "chip_id",
                    Some(true),
                    format!("CHIP_ID is the VCEK's hwID ({} bytes)", id.len()),
                ),
                (Some(id), _) => Check::new(
                    "chip_id",
                    Some(false),
                    format!(
                        "CHIP_ID {} is not the VCEK's hwID {}: another chip's certificate",
                        to_hex(&report.chip_id),
                        to_hex(id)
                    ),
                ),
            });
        }
    }
    out
}

/// Each certificate given within its validity period at
/// [`Certificates::valid_at`].
fn certificate_dates(vek: &Certificate, certs: &Certificates) -> Check {
    let Some(at) = certs.valid_at else {
        return Check::new("certificate_dates", None, "not checked: no time given");
    };
    let given = [
        ("VCEK/VLEK", Some(vek)),
        ("ASK", certs.ask.as_ref()),
        ("ARK", certs.ark.as_ref()),
    ];
    let mut valid = Vec::new();
    let mut invalid = Vec::new();
    for (what, cert) in given {
        let Some(cert) = cert else { continue };
        let period = cert.validity();
        if period.contains(at) {
            valid.push(format!("{what} {period}"));
        } else if at < period.not_before {
            invalid.push(format!(
                "the {what} is not valid before {}",
                utc_time(period.not_before)
            ));
        } else {
            invalid.push(format!(
                "the {what} expired at {}",
                utc_time(period.not_after)
            ));
        }
    }
    let at = utc_time(at);
    if invalid.is_empty() {
        Check::new(
            "certificate_dates",
            Some(true),
            format!("valid at {at}: {}", valid.join("; ")),
        )
    } else {
        Check::new(
            "certificate_dates",
            Some(false),
            format!("at {at}, {}", invalid.join("; ")),
        )
    }
}

/// The checks against the file: measurement, host data, policy, ID block,
/// key digests, VMPL.
///
/// # Errors
/// As [`verify`].
pub fn file_checks(
    report: &AttestationReport,
    file: &[u8],
    config: &LaunchConfig,
    expected: &Expected,
) -> Result<(Option<ProfileMatch>, Vec<Check>)> {
    file_checks_releasing(report, file, config, expected, &|_| {})
}

fn file_checks_releasing(
    report: &AttestationReport,
    file: &[u8],
    config: &LaunchConfig,
    expected: &Expected,
    release: &(dyn Fn(&[u8]) + Sync),
) -> Result<(Option<ProfileMatch>, Vec<Check>)> {
    if expected.max_vcpus == 0 || expected.max_vcpus > KVM_MAX_VCPUS {
        return Err(Error::InvalidVcpuCount {
            vcpus: expected.max_vcpus,
            max: KVM_MAX_VCPUS,
        });
    }
    // The policy does not enter the digest: a file without one plans all
    // the same, and only a policy the file has is compared.
    let spec = LaunchPlan::new(file, config, PlanOptions::default())?;
    let file_policy = spec.policy_source().in_file().then(|| spec.policy_bits());
    let mut checks = Vec::new();
    let (matched, detail) = measurement(report, file, config, &spec, expected.max_vcpus, release);
    checks.push(Check::new("measurement", Some(matched.is_some()), detail));

    checks.push(expected_field(
        ("host_data", "HOST_DATA", "the expected host data"),
        "no host data expected",
        &report.host_data,
        expected.host_data.as_ref().map(|h| &h[..]),
    ));
    checks.push(expected_field(
        ("report_data", "REPORT_DATA", "the expected report data"),
        "no report data expected (a nonce or key the guest put there)",
        &report.report_data,
        expected.report_data.as_ref().map(|d| &d[..]),
    ));

    let policy = |v: u64| format!("{v:#x}");
    checks.push(match (expected.policy, file_policy) {
        (Some(p), _) => compare(
            "policy",
            "POLICY",
            &policy(report.policy),
            "the expected policy",
            &policy(p),
        ),
        (None, Some(p)) => compare(
            "policy",
            "POLICY",
            &policy(report.policy),
            "the file's guest policy",
            &policy(p),
        ),
        (None, None) => {
            // Nothing to compare with, but a policy that lets the host or a
            // migration agent into the guest is never what a file without
            // one asked for.
            let risky: Vec<&str> = [
                (SnpPolicy::DEBUG, "DEBUG"),
                (SnpPolicy::MIGRATE_MA, "MIGRATE_MA"),
            ]
            .into_iter()
            .filter(|(bit, _)| report.policy & bit != 0)
            .map(|(_, name)| name)
            .collect();
            if risky.is_empty() {
                Check::new(
                    "policy",
                    Some(true),
                    format!(
                        "the file has no guest policy and none is expected; POLICY {} allows \
                         neither debugging nor a migration agent",
                        policy(report.policy)
                    ),
                )
            } else {
                Check::new(
                    "policy",
                    Some(false),
                    format!(
                        "POLICY {} sets {} (the host can read and change guest memory, or a \
                         migration agent can export it); the file has no guest policy and \
                         none is expected",
                        policy(report.policy),
                        risky.join(" and ")
                    ),
                )
            }
        }
    });
    checks.extend(id_checks(report, &spec));

    let boot_vmpl = u32::from(spec.vmsa().vmsa.vmpl);
    checks.push(match expected.vmpl {
        Some(want) => {
            let ok = report.vmpl == want;
            Check::new(
                "vmpl",
                Some(ok),
                format!(
                    "report requested at VMPL {}{} the expected VMPL {want}",
                    report.vmpl,
                    if ok { ", as" } else { ", not" }
                ),
            )
        }
        None => {
            let ok = report.vmpl <= 3 && report.vmpl >= boot_vmpl;
            Check::new(
                "vmpl",
                Some(ok),
                format!(
                    "report requested at VMPL {}; the file's boot VMSA runs at VMPL {boot_vmpl}{}",
                    report.vmpl,
                    if ok {
                        ""
                    } else {
                        " (a report can only be requested at that VMPL or a less privileged one, \
                         3 at most)"
                    }
                ),
            )
        }
    });
    Ok((matched, checks))
}

/// REPORTED_TCB against the minimum expected, if one is.
fn min_tcb(report: &AttestationReport, min: Option<&MinTcb>) -> Check {
    let tcb = &report.reported_tcb;
    let Some(min) = min else {
        return Check::new(
            "min_tcb",
            None,
            format!("not checked: no minimum TCB expected; REPORTED_TCB is {tcb}"),
        );
    };
    let short = min.shortfalls(tcb);
    if short.is_empty() {
        Check::new(
            "min_tcb",
            Some(true),
            format!("REPORTED_TCB ({tcb}) is at least the minimum ({min})"),
        )
    } else {
        Check::new(
            "min_tcb",
            Some(false),
            format!(
                "REPORTED_TCB ({tcb}) is below the minimum ({min}): {}",
                short.join(", ")
            ),
        )
    }
}

/// A report field compared with the value expected, when one is:
/// `(name, field, what)` as for [`compare`]; `absent` says why it is not
/// checked otherwise.
fn expected_field(
    (name, field, what): (&'static str, &str, &str),
    absent: &str,
    got: &[u8],
    want: Option<&[u8]>,
) -> Check {
    match want {
        None => Check::new(
            name,
            None,
            format!("not checked: {absent}; {field} is {}", to_hex(got)),
        ),
        Some(want) => compare(name, field, &to_hex(got), what, &to_hex(want)),
    }
}

fn compare(name: &'static str, field: &str, got: &str, what: &str, want: &str) -> Check {
    if got == want {
        Check::new(name, Some(true), format!("{field} is {what}: {want}"))
    } else {
        Check::new(
            name,
            Some(false),
            format!("{field} {got} is not {what} {want}"),
        )
    }
}

/// Which profile's digest the measurement is.
fn measurement(
    report: &AttestationReport,
    file: &[u8],
    config: &LaunchConfig,
    spec: &LaunchPlan<'_>,
    max_vcpus: u32,
    release: &(dyn Fn(&[u8]) + Sync),
) -> (Option<ProfileMatch>, String) {
    let m = report.measurement;
    let (cpu_signature, source) = match report.cpuid {
        Some(c) => (c.signature(), "from the report's CPUID fields"),
        None => (
            KVM_RESET_RDX,
            "KVM's reset value; the report has no CPUID fields",
        ),
    };
    let legacy = KvmLegacyInputs::new(max_vcpus, spec.init2_vmsa_features(), cpu_signature);
    // Planned for the largest count (the VP count parameter is not
    // measured); the digests of the smaller counts are prefixes of its
    // VMSAs.
    let mut config = config.clone();
    config.vcpu_count = max_vcpus;
    let config = &config;
    let mut matches: Vec<ProfileMatch> = Vec::new();
    let mut tried: Vec<String> = Vec::new();
    for profile in Profile::all(legacy) {
        let own;
        let plan = match profile {
            Profile::IgvmSpec => spec,
            _ => match LaunchPlan::new(file, config, profile.options()) {
                Ok(p) => {
                    own = p;
                    &own
                }
                Err(e) => {
                    tried.push(format!("{} cannot plan the file: {e}", profile.name()));
                    continue;
                }
            },
        };
        if let Some(digests) = plan.kvm_legacy_digests_releasing(release) {
            match digests.iter().position(|d| *d == m) {
                Some(i) => matches.push(ProfileMatch {
                    profile: profile.name(),
                    vcpus: u32::try_from(i + 1).ok(),
                }),
                None => tried.push(format!(
                    "kvm-legacy for 1 to {max_vcpus} vCPUs (CPU signature {cpu_signature:#x}, {source})"
                )),
            }
        } else {
            let d = plan.launch_digest_releasing(release);
            if d == m {
                matches.push(ProfileMatch {
                    profile: profile.name(),
                    vcpus: None,
                });
            } else {
                tried.push(format!("{} {d}", profile.name()));
            }
        }
    }
    let Some(first) = matches.first().copied() else {
        let mut detail = format!("no profile explains MEASUREMENT {m}: {}", tried.join("; "));
        if spec.finish().expected_digest == Some(m) {
            detail.push_str("; it is the digest the file's ID block expects");
        }
        return (None, detail);
    };
    let name = |p: &ProfileMatch| match p.vcpus {
        Some(n) => format!(
            "{} digest for {n} vCPU(s) (CPU signature {cpu_signature:#x}, {source})",
            p.profile
        ),
        None => format!("{} digest", p.profile),
    };
    let mut detail = format!("MEASUREMENT is the {}", name(&first));
    if matches.len() > 1 {
        let also: Vec<String> = matches[1..].iter().map(name).collect();
        detail.push_str(&format!(" (as are {})", also.join(", ")));
    }
    (Some(first), detail)
}

/// The ID block's fields and the key digests, against the file's ID block
/// (or zeros when it has none).
fn id_checks(report: &AttestationReport, plan: &LaunchPlan<'_>) -> Vec<Check> {
    let finish = plan.finish();
    let sha384 = |b: &[u8]| -> [u8; 48] { Sha384::digest(b).into() };
    let (family, image, svn, id_key, author_key) = match (&finish.id_block, &finish.id_auth) {
        (Some(block), Some(auth)) => (
            block.family_id,
            block.image_id,
            block.guest_svn,
            sha384(auth.id_key.as_bytes()),
            if finish.author_key_enabled {
                sha384(auth.author_key.as_bytes())
            } else {
                [0; 48]
            },
        ),
        _ => ([0; 16], [0; 16], 0, [0; 48], [0; 48]),
    };
    let has = finish.id_block.is_some();
    let source = if has {
        "those of the file's ID block"
    } else {
        "zeros, as the file has no ID block"
    };
    let mut out = Vec::new();
    let mut differ = Vec::new();
    if report.family_id != family {
        differ.push(format!(
            "FAMILY_ID {} vs {}",
            to_hex(&report.family_id),
            to_hex(&family)
        ));
    }
    if report.image_id != image {
        differ.push(format!(
            "IMAGE_ID {} vs {}",
            to_hex(&report.image_id),
            to_hex(&image)
        ));
    }
    if report.guest_svn != svn {
        differ.push(format!("GUEST_SVN {} vs {svn}", report.guest_svn));
    }
    out.push(if differ.is_empty() {
        Check::new(
            "id_block",
            Some(true),
            format!("FAMILY_ID, IMAGE_ID and GUEST_SVN are {source}"),
        )
    } else {
        Check::new(
            "id_block",
            Some(false),
            format!("report vs file: {} (expected {source})", differ.join("; ")),
        )
    });
    let what = if has {
        "SHA-384 of the file's ID public key"
    } else {
        "zeros (the file has no ID block)"
    };
    out.push(compare(
        "id_key_digest",
        "ID_KEY_DIGEST",
        &to_hex(&report.id_key_digest),
        what,
        &to_hex(&id_key),
    ));
    let what = if finish.author_key_enabled {
        "SHA-384 of the file's author public key"
    } else {
        "zeros (the file has no author key)"
    };
    let mut author = compare(
        "author_key_digest",
        "AUTHOR_KEY_DIGEST",
        &to_hex(&report.author_key_digest),
        what,
        &to_hex(&author_key),
    );
    if report.key_info.author_key_en != finish.author_key_enabled {
        author.ok = Some(false);
        author.detail.push_str(&format!(
            "; KEY_INFO.AUTHOR_KEY_EN is {} but the file's author key is {}",
            u8::from(report.key_info.author_key_en),
            if finish.author_key_enabled {
                "enabled"
            } else {
                "absent"
            }
        ));
    }
    out.push(author);
    out
}

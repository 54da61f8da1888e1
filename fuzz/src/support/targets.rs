//! The bodies of the byte-level fuzz targets, shared with the replay test so
//! that a committed regression input runs exactly what the fuzzer ran. Each
//! reports the kind of outcome through `record` (the fuzz targets tally
//! them; the tests ignore them).

use super::seeds::variant;
use super::{checks, differential};

/// Target 1, `raw`: the bytes as they are.
pub fn raw(data: &[u8], record: &mut dyn FnMut(String)) {
    let outcome = checks::exercise(data);
    if let Some(e) = &outcome.parse_error {
        record(format!("parse error {}", variant(e)));
    } else if outcome.planned() {
        record("planned".into());
    }
}

/// Target 2, `checksummed`: size and CRC-32 recomputed first.
pub fn checksummed(data: &[u8], record: &mut dyn FnMut(String)) {
    let outcome = checks::exercise(&checks::with_fixed_checksum(data));
    if let Some(e) = &outcome.parse_error {
        record(format!("parse error {}", variant(e)));
    }
    for plan in &outcome.plans {
        match plan {
            Ok(_) => record("planned".into()),
            Err(e) => record(format!("plan error {}", variant(e))),
        }
    }
}

/// Target 4, `differential`: size and CRC-32 recomputed, then both parsers;
/// a file either accepts also goes through parse → plan → digest.
pub fn differential(data: &[u8], record: &mut dyn FnMut(String)) {
    let bytes = checks::with_fixed_checksum(data);
    let verdict = differential::compare(&bytes);
    record(verdict.key());
    if !matches!(verdict, differential::Verdict::BothRejected) {
        checks::exercise(&bytes);
    }
}

/// Target 5, `report`: the bytes as an SEV-SNP attestation report, then as
/// an X.509 certificate (with the VCEK readers). A parsed report gives its
/// bytes back unchanged and checks its signature against the test VCEK.
pub fn report(data: &[u8], record: &mut dyn FnMut(String)) {
    use igvm_snp::attestation::{AttestationReport, Certificate, SIGNED_SIZE};
    match AttestationReport::parse(data) {
        Ok(r) => {
            assert_eq!(r.as_bytes(), data, "a parsed report keeps its bytes");
            assert_eq!(r.signed_bytes(), &data[..SIGNED_SIZE]);
            let _ = serde_json::to_string(&r);
            if let Ok(vcek) = Certificate::parse(super::seeds::TEST_VCEK) {
                let signed = igvm_snp::attestation::verify_report_signature(&r, &vcek);
                record(format!(
                    "report v{} signature {}",
                    r.version,
                    signed.is_ok()
                ));
            }
        }
        Err(e) => {
            let s = format!("{e:?}");
            let kind = s.split([' ', '(', '{']).next().unwrap_or_default();
            record(format!("report error {kind}"));
        }
    }
    if let Ok(cert) = Certificate::parse(data) {
        let _ = cert.subject();
        let ext = cert.vek_extensions().is_ok();
        let key = cert.p384_key().is_ok();
        let _ = cert.verify_issued_by(&cert);
        record(format!("certificate extensions {ext} p384 {key}"));
    }
}

//! Attestation reports and AMD's certificate chain: a real Milan report
//! with its VCEK and chain (virtee/sev test data, provenance in
//! tests/fixtures/attestation/README.md), and reports signed in the test by
//! the throwaway chain that `make-test-chain.sh` wrote with OpenSSL.

use igvm_snp::attestation::{
    AttestationReport, CertError, Certificate, RawReport, ReportError, SignatureError, TcbLayout,
    hw_id_matches, tcb_differences, verify_chain, verify_report_signature,
};
use p384::ecdsa::SigningKey;
use p384::pkcs8::DecodePrivateKey;
use zerocopy::{FromZeros, IntoBytes};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../tests/fixtures/attestation/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn cert(name: &str) -> Certificate {
    Certificate::parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn key(name: &str) -> SigningKey {
    SigningKey::from_pkcs8_pem(&String::from_utf8(fixture(name)).unwrap()).unwrap()
}

/// The real Milan report: fields as `xxd` shows them in the file (version
/// 2 at 0x0, policy 0x30000 at 0x8, VMPL 0 at 0x30, SIGNATURE_ALGO 1 at
/// 0x34, REPORTED_TCB
/// 03 00 00 00 00 00 08 73 at 0x180).
#[test]
fn real_milan_report_fields() {
    let r = AttestationReport::parse(&fixture("milan-report.bin")).unwrap();
    assert_eq!(r.version, 2);
    assert_eq!(r.policy, 0x30000);
    assert_eq!(r.vmpl, 0);
    assert_eq!(r.signature_algo, 1);
    assert_eq!(r.cpuid, None);
    assert_eq!(r.reported_tcb.layout, TcbLayout::MilanGenoa);
    assert_eq!(
        (
            r.reported_tcb.bootloader,
            r.reported_tcb.tee,
            r.reported_tcb.snp,
            r.reported_tcb.microcode
        ),
        (3, 0, 8, 0x73)
    );
    assert_eq!(r.chip_id[..4], [0xD4, 0x95, 0x54, 0xEC]);
}

/// The real report verifies with its VCEK, whose chain (Milan ASK and ARK)
/// verifies, whose TCB is the reported TCB and whose hwID is the CHIP_ID.
#[test]
fn real_milan_report_verifies() {
    let report = AttestationReport::parse(&fixture("milan-report.bin")).unwrap();
    let vcek = cert("milan-vcek.der");
    let (ask, ark) = (cert("milan-ask.pem"), cert("milan-ark.pem"));
    verify_report_signature(&report, &vcek).unwrap();
    verify_chain(&ark, &ask, &vcek).unwrap();
    assert_eq!(ark.amd_root(), Some("Milan"));
    assert_eq!(cert("test-ark.pem").amd_root(), None);
    assert_eq!(ask.amd_root(), None);
    let ext = vcek.vek_extensions().unwrap();
    assert_eq!(ext.product_name.as_deref(), Some("Milan-B0"));
    assert_eq!(
        tcb_differences(&report.reported_tcb, &ext),
        Vec::<String>::new()
    );
    assert!(hw_id_matches(
        ext.hw_id.as_deref().unwrap(),
        &report.chip_id
    ));
}

/// Any flipped bit in the signed part (or in R) breaks the signature.
#[test]
fn real_milan_report_flipped_bytes_fail() {
    let vcek = cert("milan-vcek.der");
    for at in [0x21, 0x90, 0x180, 0x1A0, 0x1F0, 0x2A0] {
        let mut bytes = fixture("milan-report.bin");
        bytes[at] ^= 0x01;
        let report = AttestationReport::parse(&bytes).unwrap();
        let err = verify_report_signature(&report, &vcek).unwrap_err();
        assert!(
            matches!(
                err,
                SignatureError::Mismatch { .. } | SignatureError::Malformed
            ),
            "byte {at:#x}: {err}"
        );
    }
}

/// A v3 report as a Milan guest would get it.
fn report(measurement: [u8; 48]) -> RawReport {
    let mut r = RawReport::new_zeroed();
    r.version.set(3);
    r.policy.set(0x30000);
    r.measurement = measurement;
    r.reported_tcb
        .set(u64::from_le_bytes([3, 0, 0, 0, 0, 0, 8, 0x73]));
    r.cpuid = [0x19, 0x01, 0x01];
    r.chip_id = [0xA1; 64];
    r
}

#[test]
fn test_chain_signs_and_verifies() {
    let mut raw = report([0x42; 48]);
    raw.sign_with(&key("test-vcek-key.pem"));
    let report = AttestationReport::parse(raw.as_bytes()).unwrap();
    let vcek = cert("test-vcek.der");
    verify_report_signature(&report, &vcek).unwrap();
    verify_chain(&cert("test-ark.pem"), &cert("test-ask.pem"), &vcek).unwrap();
    let ext = vcek.vek_extensions().unwrap();
    assert!(tcb_differences(&report.reported_tcb, &ext).is_empty());
    assert!(hw_id_matches(
        ext.hw_id.as_deref().unwrap(),
        &report.chip_id
    ));

    // A flipped byte.
    let mut bytes = raw.as_bytes().to_vec();
    bytes[0x90] ^= 0x80;
    let flipped = AttestationReport::parse(&bytes).unwrap();
    let err = verify_report_signature(&flipped, &vcek).unwrap_err();
    assert!(matches!(err, SignatureError::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains("does not verify"));

    // Another chip's VCEK: its key does not verify the signature, its hwID
    // is not the CHIP_ID; its chain is fine.
    let other = cert("test-vcek-other-chip.der");
    assert!(matches!(
        verify_report_signature(&report, &other),
        Err(SignatureError::Mismatch { .. })
    ));
    let ext = other.vek_extensions().unwrap();
    assert!(!hw_id_matches(
        ext.hw_id.as_deref().unwrap(),
        &report.chip_id
    ));
    verify_chain(&cert("test-ark.pem"), &cert("test-ask.pem"), &other).unwrap();
}

/// A TCB the VCEK was not derived for shows component by component.
#[test]
fn tcb_mismatch_is_named() {
    let mut raw = report([0; 48]);
    raw.reported_tcb
        .set(u64::from_le_bytes([3, 0, 0, 0, 0, 0, 7, 0x73]));
    let report = AttestationReport::parse(raw.as_bytes()).unwrap();
    let ext = cert("test-vcek.der").vek_extensions().unwrap();
    assert_eq!(
        tcb_differences(&report.reported_tcb, &ext),
        ["snp: certificate 8, report 7"]
    );
}

#[test]
fn broken_chains_fail_with_the_link() {
    let (ark, ask, vcek) = (
        cert("test-ark.pem"),
        cert("test-ask.pem"),
        cert("test-vcek.der"),
    );
    // ASK and ARK swapped: the ASK is not self-signed.
    assert!(matches!(
        verify_chain(&ask, &ark, &vcek),
        Err(CertError::IssuerMismatch { .. })
    ));
    // AMD's Milan ASK does not issue the test VCEK.
    let err = verify_chain(&cert("milan-ark.pem"), &cert("milan-ask.pem"), &vcek).unwrap_err();
    assert!(matches!(err, CertError::IssuerMismatch { .. }), "{err}");
    // A test ASK claiming AMD's ARK's name is still not signed by it.
    let err = ask.verify_issued_by(&cert("milan-ark.pem")).unwrap_err();
    assert!(matches!(err, CertError::IssuerMismatch { .. }), "{err}");
    // A VCEK (ECDSA) cannot sign a certificate here.
    let err = vcek.verify_issued_by(&vcek).unwrap_err();
    assert!(matches!(
        err,
        CertError::IssuerMismatch { .. } | CertError::NotRsaKey { .. }
    ));
    // An RSA key is not a VCEK.
    assert!(matches!(ark.p384_key(), Err(CertError::NotP384Key { .. })));
}

/// A signature tampered inside its own bytes, or in a certificate.
#[test]
fn tampered_certificate_signature_fails() {
    let mut der = fixture("test-vcek.der");
    let n = der.len();
    der[n - 10] ^= 1; // in the signature BIT STRING, at the end
    let bad = Certificate::parse(&der).unwrap();
    assert!(matches!(
        bad.verify_issued_by(&cert("test-ask.pem")),
        Err(CertError::BadSignature { .. })
    ));
}

#[test]
fn unsigned_and_odd_algorithms() {
    let mut raw = report([0; 48]);
    raw.key_info.set(7 << 2);
    let r = AttestationReport::parse(raw.as_bytes()).unwrap();
    assert_eq!(
        verify_report_signature(&r, &cert("test-vcek.der")),
        Err(SignatureError::NotSigned)
    );
    let mut raw = report([0; 48]);
    raw.sign_with(&key("test-vcek-key.pem"));
    raw.signature_algo.set(2);
    let r = AttestationReport::parse(raw.as_bytes()).unwrap();
    assert_eq!(
        verify_report_signature(&r, &cert("test-vcek.der")),
        Err(SignatureError::UnsupportedAlgorithm { algo: 2 })
    );
    // R = 0 is no signature.
    let r = AttestationReport::parse(report([0; 48]).as_bytes()).unwrap();
    let mut raw = report([0; 48]);
    raw.signature_algo.set(1);
    let r2 = AttestationReport::parse(raw.as_bytes()).unwrap();
    assert_eq!(
        verify_report_signature(&r2, &cert("test-vcek.der")),
        Err(SignatureError::Malformed)
    );
    assert!(r.key_info.signing_key == igvm_snp::attestation::SigningKey::Vcek);
}

#[test]
fn reserved_field_error_names_field_and_offset() {
    let mut raw = report([0; 48]);
    raw.reserved4[3] = 1;
    let err = AttestationReport::parse(raw.as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "reserved field after LAUNCH_TCB (mitigation vectors before version 5) \
         (offset 0x1f8, 168 bytes) is not zero: byte 0x20b is 0x01"
    );
    assert!(matches!(
        err,
        ReportError::ReservedNotZero { offset: 0x1F8, .. }
    ));
}

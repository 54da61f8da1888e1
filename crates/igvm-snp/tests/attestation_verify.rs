//! `attestation::verify`: a report against an IGVM file. Expected digests
//! come from planning with each profile (tested against independent
//! computations in tests/profiles.rs) or from igvmmeasure's output for the
//! igvmbuilder fixtures (tests/fixtures/igvmbuilder/expected.json); ID key
//! digests are built here from the `igvm` crate's reading of the file.

use igvm::IgvmDirectiveHeader;
use igvm_defs::IgvmPageDataFlags;
use igvm_snp::attestation::{
    AttestationReport, Certificate, Certificates, Expected, MinTcb, RawReport, Verdict,
    certificate_checks, parse_utc_time, verify,
};
use igvm_snp::kvm_legacy::KvmLegacyInputs;
use igvm_snp::{LaunchConfig, LaunchDigest, LaunchPlan, PlanOptions, Profile};
use p384::ecdsa::SigningKey;
use p384::pkcs8::DecodePrivateKey;
use sha2::{Digest, Sha384};
use zerocopy::{FromZeros, IntoBytes};

fn fixture(dir: &str, name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../tests/fixtures/{dir}/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn page(gpa: u64, flags: IgvmPageDataFlags, data: Vec<u8>) -> IgvmDirectiveHeader {
    igvm_snp::demo::page_data(gpa, 1, flags, data)
}

/// A file on which all four profiles give different digests: a data page,
/// a data-less page (native-zero), a shared page (igvmmeasure) and a VMSA
/// (kvm-legacy).
fn file() -> Vec<u8> {
    igvm_snp::demo::snp_igvm(vec![
        page(0x10_0000, IgvmPageDataFlags::new(), vec![0x5A; 100]),
        page(0x10_1000, IgvmPageDataFlags::new(), Vec::new()),
        page(
            0x10_2000,
            IgvmPageDataFlags::new().with_shared(true),
            vec![1; 10],
        ),
        IgvmDirectiveHeader::SnpVpContext {
            gpa: 0xFFFF_FFFF_F000,
            compatibility_mask: 1,
            vp_index: 0,
            vmsa: Box::new(igvm_snp::demo::vmsa()),
        },
    ])
    .unwrap()
}

fn config() -> LaunchConfig {
    // RAM unknown: it does not enter the digest.
    LaunchConfig::new(1, Vec::new())
}

fn digest(bytes: &[u8], profile: Profile) -> LaunchDigest {
    // A kvm-legacy plan is configured for the vCPUs KVM measures.
    let mut config = config();
    if let Profile::KvmLegacy(inputs) = profile {
        config.vcpu_count = inputs.vcpus;
    }
    LaunchPlan::new(bytes, &config, profile.options())
        .unwrap()
        .launch_digest()
}

fn features(bytes: &[u8]) -> u64 {
    LaunchPlan::new(bytes, &config(), PlanOptions::default())
        .unwrap()
        .init2_vmsa_features()
}

/// A v3 Milan report of a launch with policy 0x30000.
fn raw(measurement: LaunchDigest) -> RawReport {
    let mut r = RawReport::new_zeroed();
    r.version.set(3);
    r.policy.set(0x30000);
    r.measurement = measurement.0;
    r.cpuid = [0x19, 0x01, 0x01];
    r
}

fn run(raw: &RawReport, bytes: &[u8], expected: &Expected) -> Verdict {
    let report = AttestationReport::parse(raw.as_bytes()).unwrap();
    verify(
        &report,
        bytes,
        &config(),
        expected,
        &Certificates::default(),
    )
    .unwrap()
}

fn cert(name: &str) -> Certificate {
    Certificate::parse(&fixture("attestation", name)).unwrap()
}

fn check<'v>(v: &'v Verdict, name: &str) -> &'v igvm_snp::attestation::Check {
    v.checks.iter().find(|c| c.name == name).unwrap()
}

#[test]
fn profiles_are_distinct_here() {
    let bytes = file();
    let legacy = Profile::KvmLegacy(KvmLegacyInputs::new(1, features(&bytes), 0xA00F11));
    let d: Vec<_> = Profile::all(KvmLegacyInputs::new(1, 0, 0))
        .into_iter()
        .take(3)
        .chain([legacy])
        .map(|p| digest(&bytes, p))
        .collect();
    for i in 0..d.len() {
        for j in i + 1..d.len() {
            assert_ne!(d[i], d[j], "profiles {i} and {j}");
        }
    }
}

/// The validity periods, read with `openssl x509 -dates`: test-ark.pem and
/// test-ask.pem 2026-12-04T20:45:33Z to 2051-07-26T20:45:33Z, test-vcek.der
/// the same; milan-vcek.der 2023-04-03T19:23:43Z to 2030-04-03T19:23:43Z.
#[test]
fn certificates_are_checked_at_the_time_given() {
    let at = |t| parse_utc_time(t).unwrap();
    let test_chain = |valid_at| Certificates {
        vek: Some(cert("test-vcek.der")),
        ask: Some(cert("test-ask.pem")),
        ark: Some(cert("test-ark.pem")),
        trust_ark: true,
        valid_at: Some(valid_at),
    };
    let vcek = cert("test-vcek.der").validity();
    assert_eq!(
        vcek.to_string(),
        "2026-12-04T20:45:33Z to 2051-07-26T20:45:33Z"
    );
    let bytes = file();
    let report =
        AttestationReport::parse(raw(digest(&bytes, Profile::IgvmSpec)).as_bytes()).unwrap();
    let dates = |certs: &Certificates| {
        let checks = certificate_checks(&report, certs);
        checks
            .into_iter()
            .find(|c| c.name == "certificate_dates")
            .unwrap()
    };
    // Both ends of the period are within it.
    for t in ["2026-12-04T20:45:33Z", "2040-01-01", "2051-07-26T20:45:33Z"] {
        let c = dates(&test_chain(at(t)));
        assert_eq!(c.ok, Some(true), "{t}: {}", c.detail);
    }
    let c = dates(&test_chain(at("2026-12-04T20:45:32Z")));
    assert_eq!(c.ok, Some(false));
    assert_eq!(
        c.detail,
        "at 2026-12-04T20:45:32Z, the VCEK/VLEK is not valid before 2026-12-04T20:45:33Z; \
         the ASK is not valid before 2026-12-04T20:45:33Z; the ARK is not valid before \
         2026-12-04T20:45:33Z"
    );
    // AMD's Milan chain: the VCEK expires in 2030, the ASK and ARK in 2045.
    let milan = |t| Certificates {
        vek: Some(cert("milan-vcek.der")),
        ask: Some(cert("milan-ask.pem")),
        ark: Some(cert("milan-ark.pem")),
        trust_ark: false,
        valid_at: Some(at(t)),
    };
    assert_eq!(dates(&milan("2030-04-03T19:23:43Z")).ok, Some(true));
    let c = dates(&milan("2030-04-03T19:23:44Z"));
    assert_eq!(
        (c.ok, c.detail.as_str()),
        (
            Some(false),
            "at 2030-04-03T19:23:44Z, the VCEK/VLEK expired at 2030-04-03T19:23:43Z"
        )
    );
    // A failed date check fails the verdict, signature and chain aside.
    let milan_report =
        AttestationReport::parse(&fixture("attestation", "milan-report.bin")).unwrap();
    let checks = certificate_checks(&milan_report, &milan("2046-01-01"));
    let failed: Vec<_> = checks
        .iter()
        .filter(|c| c.ok == Some(false))
        .map(|c| c.name)
        .collect();
    assert_eq!(failed, ["certificate_dates"]);
    assert!(
        dates(&milan("2046-01-01"))
            .detail
            .ends_with("the ARK expired at 2045-10-22T17:23:05Z")
    );
}

/// REPORTED_TCB against a minimum: Milan's layout (bootloader byte 0, tee
/// 1, snp 6, microcode 7) and Turin's (fmc 0, bootloader 1, tee 2, snp 3,
/// microcode 7; family 0x1A), per the SNP ABI's TCB_VERSION.
#[test]
fn reported_tcb_is_checked_against_a_minimum() {
    let bytes = file();
    let run_min = |tcb: [u8; 8], family: u8, min: &str| {
        let mut r = raw(digest(&bytes, Profile::IgvmSpec));
        r.reported_tcb.set(u64::from_le_bytes(tcb));
        r.cpuid = [family, 0x01, 0x01];
        let min: MinTcb = min.parse().unwrap();
        let v = run(&r, &bytes, &Expected::default().with_min_tcb(min));
        check(&v, "min_tcb").clone()
    };
    let milan = [3, 0, 0, 0, 0, 0, 8, 0x73];
    let c = run_min(milan, 0x19, "bootloader=3,tee=0,snp=8,microcode=115");
    assert_eq!(c.ok, Some(true), "{}", c.detail);
    assert_eq!(
        c.detail,
        "REPORTED_TCB (bootloader 3, tee 0, snp 8, microcode 115) is at least the minimum \
         (bootloader 3, tee 0, snp 8, microcode 115)"
    );
    let c = run_min(milan, 0x19, "snp=9,microcode=116,bootloader=2");
    assert_eq!(c.ok, Some(false));
    assert!(
        c.detail.ends_with(": snp 8 < 9, microcode 115 < 116"),
        "{}",
        c.detail
    );
    let c = run_min(milan, 0x19, "fmc=0");
    assert_eq!(c.ok, Some(false));
    assert!(
        c.detail
            .ends_with("fmc: the TCB has no FMC field (a minimum of 0 is expected)")
    );
    // Turin: the same bytes mean fmc 3, bootloader 0, tee 0, snp 0.
    let c = run_min(milan, 0x1A, "fmc=3,snp=1");
    assert_eq!(c.ok, Some(false));
    assert!(
        c.detail.starts_with(
            "REPORTED_TCB (fmc 3, bootloader 0, tee 0, snp 0, microcode 115) is below"
        ) && c.detail.ends_with(": snp 0 < 1"),
        "{}",
        c.detail
    );
    let turin = [2, 4, 1, 0x18, 0, 0, 0, 0xD5];
    assert_eq!(
        run_min(turin, 0x1A, "fmc=2,bootloader=4,tee=1,snp=24,microcode=213").ok,
        Some(true)
    );
    assert_eq!(run_min(turin, 0x1A, "fmc=3").ok, Some(false));
    // Malformed minimums.
    for bad in [
        "",
        "snp",
        "snp=",
        "snp=+1",
        "snp=256",
        "smp=1",
        "snp=1,snp=2",
        "snp=0x10",
    ] {
        assert!(bad.parse::<MinTcb>().is_err(), "{bad:?}");
    }
}

#[test]
fn each_profile_digest_is_named() {
    let bytes = file();
    for profile in [Profile::IgvmSpec, Profile::NativeZero, Profile::Igvmmeasure] {
        let v = run(&raw(digest(&bytes, profile)), &bytes, &Expected::default());
        let m = v.matched.unwrap();
        assert_eq!((m.profile, m.vcpus), (profile.name(), None));
        assert!(v.consistent(), "{:?}", v.checks);
        assert_eq!(check(&v, "measurement").ok, Some(true));
        // Not given: not checked, never passed.
        for name in [
            "signature",
            "certificate_chain",
            "certificate_dates",
            "tcb",
            "chip_id",
            "host_data",
            "report_data",
            "min_tcb",
        ] {
            assert_eq!(check(&v, name).ok, None, "{name}");
        }
        // Unsigned and unchained: consistent with the file, but anyone who
        // can plan the file could have written it.
        assert!(!v.authenticated() && !v.passed());
    }
}

#[test]
fn kvm_legacy_names_the_vcpu_count() {
    let bytes = file();
    let f = features(&bytes);
    // The report's CPUID (Milan 0x19/1/1) gives the APs' RDX.
    let d = digest(
        &bytes,
        Profile::KvmLegacy(KvmLegacyInputs::new(4, f, 0xA00F11)),
    );
    let v = run(&raw(d), &bytes, &Expected::default());
    let m = v.matched.unwrap();
    assert_eq!((m.profile, m.vcpus), ("kvm-legacy", Some(4)));
    assert!(check(&v, "measurement").detail.contains("0xa00f11"));
    // A version 2 report has no CPUID: KVM's reset value 0x600.
    let d = digest(
        &bytes,
        Profile::KvmLegacy(KvmLegacyInputs::new(3, f, 0x600)),
    );
    let mut r = raw(d);
    r.version.set(2);
    r.cpuid = [0; 3];
    let m = run(&r, &bytes, &Expected::default()).matched.unwrap();
    assert_eq!((m.profile, m.vcpus), ("kvm-legacy", Some(3)));
    // Beyond --max-vcpus: not found.
    let d = digest(
        &bytes,
        Profile::KvmLegacy(KvmLegacyInputs::new(9, f, 0xA00F11)),
    );
    let v = run(&raw(d), &bytes, &Expected::default().with_max_vcpus(8));
    assert_eq!(v.matched, None);
    let v = run(&raw(d), &bytes, &Expected::default().with_max_vcpus(9));
    assert_eq!(v.matched.unwrap().vcpus, Some(9));
}

#[test]
fn unexplained_measurement_fails_and_says_what_else_differs() {
    let bytes = file();
    let mut r = raw(LaunchDigest([0x11; 48]));
    r.host_data = [2; 32];
    let v = run(&r, &bytes, &Expected::default().with_host_data([3; 32]));
    assert_eq!(v.matched, None);
    assert!(!v.passed());
    let m = check(&v, "measurement");
    assert_eq!(m.ok, Some(false));
    assert!(
        m.detail.starts_with("no profile explains MEASUREMENT 1111"),
        "{}",
        m.detail
    );
    assert!(
        m.detail.contains("other checks that fail: host_data"),
        "{}",
        m.detail
    );
    let names: Vec<_> = v.failures().map(|c| c.name).collect();
    assert_eq!(names, ["measurement", "host_data"]);
}

#[test]
fn host_data_and_policy_are_named() {
    let bytes = file();
    let d = digest(&bytes, Profile::IgvmSpec);
    let mut r = raw(d);
    r.host_data = [0xAB; 32];
    let ok = run(&r, &bytes, &Expected::default().with_host_data([0xAB; 32]));
    assert!(ok.consistent());
    assert_eq!(check(&ok, "host_data").ok, Some(true));
    let bad = run(&r, &bytes, &Expected::default().with_host_data([0xAC; 32]));
    assert_eq!(
        bad.failures().map(|c| c.name).collect::<Vec<_>>(),
        ["host_data"]
    );
    assert!(
        check(&bad, "host_data")
            .detail
            .starts_with("HOST_DATA abab")
    );

    // The demo file's policy is 0x30000; the report says 0x30000 | DEBUG.
    r.policy.set(0xB0000);
    let bad = run(&r, &bytes, &Expected::default());
    assert_eq!(
        bad.failures().map(|c| c.name).collect::<Vec<_>>(),
        ["policy"]
    );
    assert_eq!(
        check(&bad, "policy").detail,
        "POLICY 0xb0000 is not the file's guest policy 0x30000"
    );
    // An expected policy takes the file's place.
    assert!(run(&r, &bytes, &Expected::default().with_policy(0xB0000)).consistent());
}

#[test]
fn vmpl() {
    let bytes = file();
    let mut r = raw(digest(&bytes, Profile::IgvmSpec));
    for (vmpl, ok) in [(0, true), (3, true), (4, false)] {
        r.vmpl.set(vmpl);
        assert_eq!(
            check(&run(&r, &bytes, &Expected::default()), "vmpl").ok,
            Some(ok),
            "VMPL {vmpl}"
        );
    }
    // An expected VMPL is matched exactly: a report from a less privileged
    // VMPL (e.g. the guest OS under an SVSM) is not the one asked for.
    for (vmpl, ok) in [(0, true), (2, false)] {
        r.vmpl.set(vmpl);
        let v = run(&r, &bytes, &Expected::default().with_vmpl(0));
        assert_eq!(check(&v, "vmpl").ok, Some(ok), "VMPL {vmpl}");
    }
}

#[test]
fn report_data() {
    let bytes = file();
    let mut r = raw(digest(&bytes, Profile::IgvmSpec));
    r.report_data = [0x5C; 64];
    let v = run(
        &r,
        &bytes,
        &Expected::default().with_report_data([0x5C; 64]),
    );
    assert_eq!(check(&v, "report_data").ok, Some(true));
    let mut nonce = [0x5C; 64];
    nonce[63] = 0;
    let v = run(&r, &bytes, &Expected::default().with_report_data(nonce));
    assert_eq!(
        v.failures().map(|c| c.name).collect::<Vec<_>>(),
        ["report_data"]
    );
    assert!(
        check(&v, "report_data")
            .detail
            .starts_with("REPORT_DATA 5c5c")
    );
}

/// The SNP-format public key (curve u32, qx, qy, zeros to 0x404 bytes)
/// built from the IGVM public key, and its SHA-384.
fn key_digest(k: &igvm_defs::IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY) -> [u8; 48] {
    let mut b = vec![0u8; 0x404];
    b[..4].copy_from_slice(&k.curve.to_le_bytes());
    b[4..76].copy_from_slice(&k.qx);
    b[76..148].copy_from_slice(&k.qy);
    Sha384::digest(&b).into()
}

/// igvmbuilder's signed file: igvmmeasure's digest, and its ID block's
/// family, image, SVN and key digests, pass; zeros where the file has keys
/// fail.
#[test]
fn signed_igvmbuilder_file() {
    let bytes = fixture("igvmbuilder", "qemu-signed.igvm");
    let igvm = igvm::IgvmFile::new_from_binary(&bytes, None).unwrap();
    let Some(IgvmDirectiveHeader::SnpIdBlock {
        family_id,
        image_id,
        guest_svn,
        id_public_key,
        author_public_key,
        author_key_enabled: 1,
        ..
    }) = igvm
        .directives()
        .iter()
        .find(|d| matches!(d, IgvmDirectiveHeader::SnpIdBlock { .. }))
    else {
        panic!("no ID block with an author key");
    };
    // igvmmeasure's digest (expected.json).
    let measured: LaunchDigest = "A25369BB4DB67F334461E00D243082567C6DF385BE90D35D283E52EE701D7ECD27394C054E4A4D74A50FDD3F6C9CEB6D"
        .parse()
        .unwrap();
    let mut r = raw(measured);
    r.family_id = *family_id;
    r.image_id = *image_id;
    r.guest_svn.set(*guest_svn);
    r.id_key_digest = key_digest(id_public_key);
    r.author_key_digest = key_digest(author_public_key);
    r.key_info.set(1);
    let v = run(&r, &bytes, &Expected::default());
    assert!(v.consistent(), "{:#?}", v.checks);
    assert!(v.matched.is_some());
    assert!(check(&v, "measurement").detail.contains("igvmmeasure"));

    let mut unsigned = r;
    unsigned.id_key_digest = [0; 48];
    unsigned.author_key_digest = [0; 48];
    unsigned.key_info.set(0);
    let v = run(&unsigned, &bytes, &Expected::default());
    assert_eq!(
        v.failures().map(|c| c.name).collect::<Vec<_>>(),
        ["id_key_digest", "author_key_digest"]
    );
    assert!(
        check(&v, "author_key_digest")
            .detail
            .contains("AUTHOR_KEY_EN is 0")
    );
}

/// A file without a guest policy: POLICY is compared only when expected,
/// but it must not allow debugging or a migration agent either way.
#[test]
fn file_without_policy() {
    let bytes = fixture("igvmbuilder", "qemu-nopolicy.igvm");
    let measured: LaunchDigest = "A25369BB4DB67F334461E00D243082567C6DF385BE90D35D283E52EE701D7ECD27394C054E4A4D74A50FDD3F6C9CEB6D"
        .parse()
        .unwrap();
    let v = run(&raw(measured), &bytes, &Expected::default());
    assert!(v.consistent());
    assert_eq!(check(&v, "policy").ok, Some(true));
    for (policy, bits) in [
        (0xB0000, "DEBUG"),
        (0x70000, "MIGRATE_MA"),
        (0xF0000, "DEBUG and MIGRATE_MA"),
    ] {
        let mut r = raw(measured);
        r.policy.set(policy);
        let v = run(&r, &bytes, &Expected::default());
        assert_eq!(v.failures().map(|c| c.name).collect::<Vec<_>>(), ["policy"]);
        assert!(
            check(&v, "policy")
                .detail
                .contains(&format!("sets {bits} (")),
            "{}",
            check(&v, "policy").detail
        );
        // Expected, it passes.
        let v = run(&r, &bytes, &Expected::default().with_policy(policy));
        assert_eq!(check(&v, "policy").ok, Some(true));
    }
    let v = run(
        &raw(measured),
        &bytes,
        &Expected::default().with_policy(0x30000),
    );
    assert_eq!(check(&v, "policy").ok, Some(true));
}

/// Certificates given: a report signed by the test chain passes every
/// check; against another chip's VCEK it fails signature and chip ID.
#[test]
fn with_certificates() {
    let bytes = file();
    let key = SigningKey::from_pkcs8_pem(
        &String::from_utf8(fixture("attestation", "test-vcek-key.pem")).unwrap(),
    )
    .unwrap();
    let mut r = raw(digest(&bytes, Profile::IgvmSpec));
    r.reported_tcb
        .set(u64::from_le_bytes([3, 0, 0, 0, 0, 0, 8, 0x73]));
    r.chip_id = [0xA1; 64];
    r.sign_with(&key);
    let report = AttestationReport::parse(r.as_bytes()).unwrap();
    let mut certs = Certificates {
        vek: Some(cert("test-vcek.der")),
        ask: Some(cert("test-ask.pem")),
        ark: Some(cert("test-ark.pem")),
        trust_ark: true,
        valid_at: None,
    };
    let v = verify(&report, &bytes, &config(), &Expected::default(), &certs).unwrap();
    assert!(v.passed() && v.authenticated(), "{:#?}", v.checks);
    for name in ["signature", "certificate_chain", "tcb", "chip_id"] {
        assert_eq!(check(&v, name).ok, Some(true), "{name}");
    }
    assert_eq!(check(&v, "certificate_dates").ok, None);
    // The test ARK is not AMD's: unless trusted, the chain does not
    // authenticate the report.
    certs.trust_ark = false;
    let v = verify(&report, &bytes, &config(), &Expected::default(), &certs).unwrap();
    assert_eq!(
        v.failures().map(|c| c.name).collect::<Vec<_>>(),
        ["certificate_chain"]
    );
    assert!(
        check(&v, "certificate_chain").detail.ends_with(
            "is not one of AMD's root keys (Milan, Genoa, Turin) and was not marked trusted"
        ),
        "{}",
        check(&v, "certificate_chain").detail
    );
    assert!(!v.authenticated() && !v.passed() && !v.consistent());
    certs.trust_ark = true;
    // A VCEK whose hwID is DER-wrapped (newer VCEKs): same chip, same key.
    let der_hwid = Certificates {
        vek: Some(cert("test-vcek-hwid-der.der")),
        ..Certificates::default()
    };
    let v = verify(&report, &bytes, &config(), &Expected::default(), &der_hwid).unwrap();
    assert_eq!(check(&v, "chip_id").ok, Some(true), "{:#?}", v.checks);
    assert_eq!(check(&v, "signature").ok, Some(true));
    // KEY_INFO.SIGNING_KEY must name the certificate's kind: a VLEK (1) or
    // a reserved value (2) with a VCEK fails the signature check (the
    // report re-signed, so only the key kind differs).
    for (signing_key, why) in [
        (
            1u32,
            "SIGNING_KEY says a VLEK signed the report, but the certificate is a VCEK",
        ),
        (2, "SIGNING_KEY 2 is a reserved value"),
    ] {
        let mut other = r;
        other.key_info.set(signing_key << 2);
        other.sign_with(&key);
        let report = AttestationReport::parse(other.as_bytes()).unwrap();
        let v = verify(&report, &bytes, &config(), &Expected::default(), &certs).unwrap();
        let c = check(&v, "signature");
        assert_eq!(c.ok, Some(false));
        assert!(c.detail.starts_with(why), "{}", c.detail);
    }
    certs.vek = Some(cert("test-vcek-other-chip.der"));
    let v = verify(&report, &bytes, &config(), &Expected::default(), &certs).unwrap();
    assert_eq!(
        v.failures().map(|c| c.name).collect::<Vec<_>>(),
        ["signature", "chip_id"]
    );
    assert!(check(&v, "chip_id").detail.contains("another chip"));
    // Without the ARK the chain is not checked.
    certs.ark = None;
    let v = verify(&report, &bytes, &config(), &Expected::default(), &certs).unwrap();
    assert_eq!(check(&v, "certificate_chain").ok, None);
}

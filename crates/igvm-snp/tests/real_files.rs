//! Files shaped as real builders write them: coconut-svsm's `igvmbuilder`
//! (no guest policy, required memory far above RAM, MADT and command line
//! parameters, masks with undeclared bits). Measuring them needs nothing
//! but the file and the profile.

mod common;

use common::*;
use igvm_snp::demo::{
    REQUIRED_MEMORY_GPA, REQUIRED_MEMORY_SIZE, igvmbuilder_shaped_file, igvmbuilder_shaped_igvm,
};
use igvm_snp::{
    GpaRange, LaunchConfig, LaunchDigest, LaunchPlan, ParameterKind, PlanOptions, PolicySource,
    Profile, SnpPolicy,
};

#[test]
fn igvmbuilder_shape_measures_whatever_the_configuration() {
    let bytes = igvmbuilder_shaped_igvm().unwrap();
    let dirs = igvmbuilder_shaped_file().unwrap().directives().to_vec();
    // The expected digests from the independent oracle (tests/common).
    let expect = |o: OracleOpts| LaunchDigest(oracle_chain(&oracle(&dirs, SNP, o).0).0);
    let spec = expect(OracleOpts::default());
    let native_zero = expect(OracleOpts {
        native_zero: true,
        ..OracleOpts::default()
    });
    // No RAM, a little RAM, RAM that misses the required memory: the same.
    for ram in [
        vec![],
        vec![GpaRange::new(0, 1 << 20)],
        vec![GpaRange::new(0, 512 << 20)],
    ] {
        let config = LaunchConfig::new(1, ram);
        let plan = LaunchPlan::new(&bytes, &config, PlanOptions::default()).unwrap();
        assert_eq!(plan.launch_digest(), spec);
        let nz = LaunchPlan::new(&bytes, &config, Profile::NativeZero.options()).unwrap();
        assert_eq!(nz.launch_digest(), native_zero);
        // The plan keeps what a launch needs.
        assert_eq!(plan.policy_source(), PolicySource::Default);
        assert_eq!(
            plan.policy().map(SnpPolicy::bits),
            Ok(SnpPolicy::DEFAULT_BITS)
        );
        let req = plan.required_memory();
        assert_eq!(req.len(), 1);
        assert_eq!(
            req[0].range,
            GpaRange::new(REQUIRED_MEMORY_GPA, u64::from(REQUIRED_MEMORY_SIZE))
        );
        let unfilled: Vec<ParameterKind> =
            plan.unfilled_parameters().iter().map(|u| u.kind).collect();
        assert!(unfilled.contains(&ParameterKind::Madt), "{unfilled:?}");
        assert!(
            unfilled.contains(&ParameterKind::CommandLine),
            "{unfilled:?}"
        );
    }
    assert_ne!(spec, native_zero, "the file has a data-less page");
}

#[test]
fn parameters_never_change_the_digest() {
    let bytes = igvmbuilder_shaped_igvm().unwrap();
    let bare = LaunchPlan::new(
        &bytes,
        &LaunchConfig::new(1, vec![]),
        PlanOptions::default(),
    )
    .unwrap()
    .launch_digest();
    let mut full = LaunchConfig::new(4, vec![GpaRange::new(0, 512 << 20)])
        .with_command_line("console=ttyS0")
        .with_default_policy(0x70000);
    full.madt = Some(igvm_snp::acpi::madt_for_vcpus(4).unwrap());
    let plan = LaunchPlan::new(&bytes, &full, PlanOptions::default()).unwrap();
    assert_eq!(plan.launch_digest(), bare);
    assert_eq!(plan.unfilled_parameters(), &[]);
    assert_eq!(plan.require_launchable(), Ok(()));
    assert_eq!(plan.policy_source(), PolicySource::Configuration);
}

/// Real igvmbuilder output (tests/fixtures/igvmbuilder): the digests
/// igvmmeasure recorded in expected.json, with no configuration at all.
#[test]
fn real_igvmbuilder_files_match_igvmmeasure() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/igvmbuilder");
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    for e in expected.as_array().unwrap() {
        let name = e["file"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let config = LaunchConfig::new(1, vec![]);
        for (profile, key) in [
            (Profile::IgvmSpec, "digest"),
            (Profile::NativeZero, "digest_native_zero"),
            (Profile::Igvmmeasure, "digest"),
        ] {
            let plan = LaunchPlan::new(&bytes, &config, profile.options())
                .unwrap_or_else(|err| panic!("{name}: {err}"));
            assert_eq!(
                plan.launch_digest().to_string(),
                e[key].as_str().unwrap(),
                "{name} {profile:?}"
            );
        }
    }
}

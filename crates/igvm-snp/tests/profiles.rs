//! Every profile's digest, as `profile::check` and `LaunchPlan` give it,
//! equals an independent computation written here: the page list is derived
//! from the `igvm` builder's directives (not this crate's parser or
//! planner), PAGE_INFO is laid out by hand at the offsets of notes
//! `kvm-snp-uapi.md` §4.1, and the legacy VMSAs are written byte by byte at
//! the offsets of §4.5 from the table of §4.6 (not via `kvm_legacy`).

use std::collections::HashMap;

use igvm::IgvmDirectiveHeader;
use igvm::snp_defs::{SevFeatures, SevVmsa};
use igvm_defs::{
    IGVM_VHS_PARAMETER, IGVM_VHS_PARAMETER_INSERT, IgvmPageDataFlags, IgvmPageDataType,
};
use igvm_snp::kvm_legacy::KvmLegacyInputs;
use igvm_snp::profile::{self, CompatReport, Finding, ProfileReport};
use igvm_snp::{Error, GpaRange, LaunchConfig, LaunchPlan, PageType, Profile, VmsaPlacement};
use sha2::{Digest, Sha384};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

const KVM_VMSA_GPA: u64 = 0xFFFF_FFFF_F000;

// ----- independent digest -----------------------------------------------

fn sha384(b: &[u8]) -> [u8; 48] {
    Sha384::digest(b).into()
}

fn page(data: &[u8]) -> Vec<u8> {
    let mut p = data.to_vec();
    p.resize(4096, 0);
    p
}

/// PAGE_INFO laid out by hand (notes §4.1) and the SHA-384 chain.
fn fold(pages: &[(u64, u8, [u8; 48])]) -> String {
    let mut ld = [0u8; 48];
    for (gpa, ty, contents) in pages {
        let mut pi = [0u8; 112];
        pi[..48].copy_from_slice(&ld);
        pi[48..96].copy_from_slice(contents);
        pi[96..98].copy_from_slice(&0x70u16.to_le_bytes());
        pi[98] = *ty;
        pi[104..112].copy_from_slice(&gpa.to_le_bytes());
        ld = sha384(&pi);
    }
    ld.iter().map(|b| format!("{b:02X}")).collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Rules {
    Spec,
    NativeZero,
    Igvmmeasure,
    Legacy,
}

/// The pages each loader measures, derived from the builder's directives
/// with the rules of notes `igvm-snp-mapping.md` §3 and §5.
fn page_list(
    dirs: &[IgvmDirectiveHeader],
    rules: Rules,
    legacy: Option<&KvmLegacyInputs>,
) -> Vec<(u64, u8, [u8; 48])> {
    let zero = [0u8; 48];
    let mut out = Vec::new();
    let mut areas: HashMap<u32, u64> = HashMap::new();
    let mut boot = None;
    for d in dirs {
        match d {
            IgvmDirectiveHeader::ParameterArea {
                number_of_bytes,
                parameter_area_index,
                ..
            } => {
                areas.insert(*parameter_area_index, *number_of_bytes);
            }
            IgvmDirectiveHeader::ParameterInsert(p) => {
                let n = if rules == Rules::Igvmmeasure {
                    1
                } else {
                    areas[&p.parameter_area_index] / 4096
                };
                for i in 0..n {
                    out.push((p.gpa + i * 4096, 4, zero));
                }
            }
            IgvmDirectiveHeader::PageData {
                gpa,
                flags,
                data_type,
                data,
                ..
            } => {
                let entry = match *data_type {
                    IgvmPageDataType::SECRETS => Some((5, zero)),
                    IgvmPageDataType::CPUID_DATA | IgvmPageDataType::CPUID_XF => Some((6, zero)),
                    _ if flags.shared() && rules != Rules::Igvmmeasure => None,
                    _ if flags.unmeasured() => Some((4, zero)),
                    _ if data.is_empty() && rules == Rules::NativeZero => Some((3, zero)),
                    _ => Some((1, sha384(&page(data)))),
                };
                if let Some((ty, c)) = entry {
                    out.push((*gpa, ty, c));
                }
            }
            IgvmDirectiveHeader::SnpVpContext { gpa, vmsa, .. } => {
                if rules == Rules::Legacy {
                    boot = Some(vmsa.as_bytes().to_vec());
                } else {
                    out.push((*gpa, 2, sha384(vmsa.as_bytes())));
                }
            }
            _ => {}
        }
    }
    if let (Rules::Legacy, Some(inputs), Some(boot)) = (rules, legacy, boot) {
        out.push((KVM_VMSA_GPA, 2, sha384(&kvm_boot_vmsa(&boot, inputs))));
        let ap = sha384(&reset_vmsa_bytes(
            inputs.cpu_signature,
            inputs.vmsa_features | 1,
        ));
        for _ in 1..inputs.vcpus {
            out.push((KVM_VMSA_GPA, 2, ap));
        }
    }
    out
}

// ----- VMSAs from the notes, byte by byte --------------------------------

fn put(b: &mut [u8], off: usize, v: &[u8]) {
    b[off..off + v.len()].copy_from_slice(v);
}

fn seg(b: &mut [u8], off: usize, sel: u16, attrib: u16, limit: u32, base: u64) {
    put(b, off, &sel.to_le_bytes());
    put(b, off + 2, &attrib.to_le_bytes());
    put(b, off + 4, &limit.to_le_bytes());
    put(b, off + 8, &base.to_le_bytes());
}

fn get64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

/// The QEMU column of notes §4.6 for EIP 0xFFFFFFF0 at the §4.5 offsets.
fn reset_vmsa_bytes(signature: u32, sev_features: u64) -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    for off in [0x00, 0x30, 0x40, 0x50] {
        seg(&mut b, off, 0, 0x93, 0xFFFF, 0); // es ds fs gs
    }
    seg(&mut b, 0x10, 0xF000, 0x9B, 0xFFFF, 0xFFFF_0000); // cs
    seg(&mut b, 0x20, 0, 0x93, 0xFFFF, 0); // ss
    seg(&mut b, 0x60, 0, 0, 0xFFFF, 0); // gdtr
    seg(&mut b, 0x70, 0, 0x82, 0xFFFF, 0); // ldtr
    seg(&mut b, 0x80, 0, 0, 0xFFFF, 0); // idtr
    seg(&mut b, 0x90, 0, 0x8B, 0xFFFF, 0); // tr
    put(&mut b, 0xD0, &0x1000u64.to_le_bytes()); // efer
    put(&mut b, 0x148, &0x40u64.to_le_bytes()); // cr4
    put(&mut b, 0x158, &0x10u64.to_le_bytes()); // cr0
    put(&mut b, 0x160, &0x400u64.to_le_bytes()); // dr7
    put(&mut b, 0x168, &0xFFFF_0FF0u64.to_le_bytes()); // dr6
    put(&mut b, 0x170, &2u64.to_le_bytes()); // rflags
    put(&mut b, 0x178, &0xFFF0u64.to_le_bytes()); // rip
    put(&mut b, 0x268, &0x0007_0406_0007_0406u64.to_le_bytes()); // g_pat
    put(&mut b, 0x310, &u64::from(signature).to_le_bytes()); // rdx
    put(&mut b, 0x3B0, &sev_features.to_le_bytes());
    put(&mut b, 0x3E8, &1u64.to_le_bytes()); // xcr0
    put(&mut b, 0x408, &0x1F80u32.to_le_bytes()); // mxcsr
    put(&mut b, 0x410, &0x37Fu16.to_le_bytes()); // x87_fcw
    b
}

/// The boot VMSA KVM measures for the file's VMSA (real-mode, no LME): the
/// adjustments of notes §4.6 (EFER.SVME, CR4.MCE, CR0 CD/NW cleared, G_PAT
/// default when not set, SEV_FEATURES from INIT2) and the normalisations the
/// fallback and KVM's ioctls make (TR a busy TSS, RFLAGS bit 1, XCR0 ≥ 1);
/// MXCSR stays the file's, since the fallback loads it with KVM_SET_XSAVE.
fn kvm_boot_vmsa(file: &[u8], inputs: &KvmLegacyInputs) -> Vec<u8> {
    let mut b = file.to_vec();
    let efer = get64(&b, 0xD0) | 0x1000;
    put(&mut b, 0xD0, &efer.to_le_bytes());
    let cr4 = get64(&b, 0x148) | 0x40;
    put(&mut b, 0x148, &cr4.to_le_bytes());
    let cr0 = get64(&b, 0x158) & !0x6000_0000;
    put(&mut b, 0x158, &cr0.to_le_bytes());
    if get64(&b, 0x268) == 0 {
        put(&mut b, 0x268, &0x0007_0406_0007_0406u64.to_le_bytes());
    }
    put(&mut b, 0x3B0, &(inputs.vmsa_features | 1).to_le_bytes());
    if b[0x92] & 0xF != 3 && b[0x92] & 0xF != 11 {
        b[0x92] = 0x8B;
    }
    let rflags = get64(&b, 0x170) | 2;
    put(&mut b, 0x170, &rflags.to_le_bytes());
    let xcr0 = get64(&b, 0x3E8).max(1);
    put(&mut b, 0x3E8, &xcr0.to_le_bytes());
    b
}

// ----- files -------------------------------------------------------------

fn build(dirs: Vec<IgvmDirectiveHeader>) -> Vec<u8> {
    igvm_snp::demo::snp_igvm(dirs).unwrap()
}

fn page_data(
    gpa: u64,
    flags: IgvmPageDataFlags,
    ty: IgvmPageDataType,
    data: Vec<u8>,
) -> IgvmDirectiveHeader {
    IgvmDirectiveHeader::PageData {
        gpa,
        compatibility_mask: 1,
        flags,
        data_type: ty,
        data,
    }
}

fn normal(gpa: u64, data: Vec<u8>) -> IgvmDirectiveHeader {
    page_data(
        gpa,
        IgvmPageDataFlags::new(),
        IgvmPageDataType::NORMAL,
        data,
    )
}

fn area(bytes: u64) -> [IgvmDirectiveHeader; 2] {
    [
        IgvmDirectiveHeader::ParameterArea {
            number_of_bytes: bytes,
            parameter_area_index: 0,
            initial_data: Vec::new(),
        },
        IgvmDirectiveHeader::VpCount(IGVM_VHS_PARAMETER {
            parameter_area_index: 0,
            byte_offset: 0,
        }),
    ]
}

fn insert(gpa: u64) -> IgvmDirectiveHeader {
    IgvmDirectiveHeader::ParameterInsert(IGVM_VHS_PARAMETER_INSERT {
        gpa,
        compatibility_mask: 1,
        parameter_area_index: 0,
    })
}

fn vp(gpa: u64, vmsa: SevVmsa) -> IgvmDirectiveHeader {
    IgvmDirectiveHeader::SnpVpContext {
        gpa,
        compatibility_mask: 1,
        vp_index: 0,
        vmsa: Box::new(vmsa),
    }
}

/// The cross-check file of notes `igvm-snp-mapping.md` §7, with a
/// parameter area of `area_bytes`.
fn section7(area_bytes: u64) -> Vec<IgvmDirectiveHeader> {
    let mut vmsa = SevVmsa::new_zeroed();
    vmsa.sev_features = SevFeatures::new().with_snp(true);
    vmsa.cr0 = 0x31;
    vmsa.rip = 0xFFF0;
    vmsa.efer = 0x1000;
    let flags = IgvmPageDataFlags::new;
    let mut d = vec![
        IgvmDirectiveHeader::ParameterArea {
            number_of_bytes: area_bytes,
            parameter_area_index: 0,
            initial_data: Vec::new(),
        },
        IgvmDirectiveHeader::VpCount(IGVM_VHS_PARAMETER {
            parameter_area_index: 0,
            byte_offset: 0,
        }),
        IgvmDirectiveHeader::EnvironmentInfo(IGVM_VHS_PARAMETER {
            parameter_area_index: 0,
            byte_offset: 4,
        }),
        IgvmDirectiveHeader::MemoryMap(IGVM_VHS_PARAMETER {
            parameter_area_index: 0,
            byte_offset: 8,
        }),
        insert(0x10000),
    ];
    d.extend([
        normal(0x1000, vec![0xAB; 4096]),
        normal(0x2000, vec![0xCD; 100]),
        normal(0x3000, Vec::new()),
        page_data(
            0x4000,
            flags().with_unmeasured(true),
            IgvmPageDataType::NORMAL,
            vec![1; 4096],
        ),
        page_data(0x5000, flags(), IgvmPageDataType::SECRETS, Vec::new()),
        page_data(0x6000, flags(), IgvmPageDataType::CPUID_DATA, vec![2; 4096]),
        page_data(
            0x7000,
            flags().with_shared(true),
            IgvmPageDataType::NORMAL,
            vec![3; 4096],
        ),
        vp(KVM_VMSA_GPA, vmsa),
    ]);
    d
}

/// A file that breaks every legacy-KVM rule: VMSA at 0x9000 and not last,
/// a two-page parameter area, CR0 with CD set, CR4 and PAT left to KVM,
/// DebugSwap; and has a data-less and a shared page.
fn awkward() -> Vec<IgvmDirectiveHeader> {
    // Notes §4.6 reset state (the same bytes as the QEMU column), then
    // changes KVM rewrites (CR0.CD, CR4 and PAT left zero) and ones it
    // keeps (RIP, RSP).
    let mut b = reset_vmsa_bytes(0xA00F11, 0);
    put(&mut b, 0x148, &0u64.to_le_bytes()); // cr4
    put(&mut b, 0x268, &0u64.to_le_bytes()); // g_pat
    let mut vmsa = SevVmsa::read_from_bytes(&b).unwrap();
    vmsa.cr0 = 0x4000_0031;
    vmsa.rip = 0x1234;
    vmsa.rsp = 0x8000;
    vmsa.sev_features = SevFeatures::new().with_snp(true).with_debug_swap(true);
    let mut d = area(8192).to_vec();
    d.extend([
        insert(0x20000),
        normal(0x1000, (0..4096u32).map(|i| (i % 251) as u8).collect()),
        normal(0x2000, Vec::new()),
        vp(0x9000, vmsa),
        normal(0x5000, vec![0x5A; 4096]),
        page_data(
            0x6000,
            IgvmPageDataFlags::new().with_shared(true),
            IgvmPageDataType::NORMAL,
            vec![6; 4096],
        ),
    ]);
    d
}

// ----- the checks --------------------------------------------------------

fn config(vcpus: u32) -> LaunchConfig {
    LaunchConfig::new(vcpus, vec![GpaRange::new(0, 64 << 20)])
}

fn by_name<'r>(r: &'r CompatReport, name: &str) -> &'r ProfileReport {
    r.profiles.iter().find(|p| p.name == name).unwrap()
}

/// `profile::check` and `LaunchPlan` give the independent digest for every
/// profile.
fn assert_all_profiles(dirs: &[IgvmDirectiveHeader], legacy: KvmLegacyInputs) -> CompatReport {
    let bytes = build(dirs.to_vec());
    let config = config(legacy.vcpus);
    let report = profile::check(&bytes, &config, legacy, None).unwrap();
    let rules = [
        Rules::Spec,
        Rules::NativeZero,
        Rules::Igvmmeasure,
        Rules::Legacy,
    ];
    for (profile, rules) in Profile::all(legacy).into_iter().zip(rules) {
        let expected = fold(&page_list(dirs, rules, Some(&legacy)));
        let plan = LaunchPlan::new(&bytes, &config, profile.options()).unwrap();
        assert_eq!(
            plan.launch_digest().to_string(),
            expected,
            "{}",
            profile.name()
        );
        let entry = by_name(&report, profile.name());
        assert_eq!(
            entry.digest.unwrap().to_string(),
            expected,
            "{}",
            profile.name()
        );
    }
    report
}

#[test]
fn section7_file_all_profiles() {
    let legacy = KvmLegacyInputs::new(1, 0, 0xA00F11);
    let r = assert_all_profiles(&section7(4096), legacy);
    // Published vectors (notes igvm-snp-mapping.md §7), computed elsewhere.
    assert_eq!(
        by_name(&r, "igvm-spec").digest.unwrap().to_string(),
        "7AE5A1EF4F8683B91C32FA6B36A5D9240DA70B7FC5E41069ACD1B5A552D390ECA8185E9345345FA5E2B3A6E4576F7DF5"
    );
    assert_eq!(
        by_name(&r, "igvmmeasure").digest.unwrap().to_string(),
        "0210101ADD5491BC8E2FB6B1B9EFD46563C7FE5432E37DEAEF397BADC7D2E346AE603F60593AAF0ED661234DA2D33B39"
    );
    let m = by_name(&r, "igvmmeasure");
    assert!(m.launchable);
    assert_eq!(m.differences, vec![Finding::SharedPages { pages: 1 }]);
    assert_eq!(
        by_name(&r, "native-zero").differences,
        vec![Finding::ZeroPages {
            pages: 1,
            measured_as: PageType::Zero
        }]
    );
}

#[test]
fn section7_file_with_two_page_area() {
    let legacy = KvmLegacyInputs::new(2, 0, 0xA00F11);
    let r = assert_all_profiles(&section7(8192), legacy);
    assert_eq!(
        by_name(&r, "igvm-spec").digest.unwrap().to_string(),
        "02CF75105CAC86635F33C1E702291455A315EF9714F983EADE4A544C4571B078E024D623DF3BD3558CD528BFBBEBAD90"
    );
    let m = by_name(&r, "igvmmeasure");
    assert_eq!(
        m.digest.unwrap().to_string(),
        "0210101ADD5491BC8E2FB6B1B9EFD46563C7FE5432E37DEAEF397BADC7D2E346AE603F60593AAF0ED661234DA2D33B39"
    );
    assert!(!m.launchable);
    assert_eq!(
        m.blockers,
        vec![Finding::MultiPageParameterArea { index: 0, pages: 2 }]
    );
}

#[test]
fn awkward_file_all_profiles_and_reasons() {
    let legacy = KvmLegacyInputs::new(3, 0x20, 0xA00F11);
    let r = assert_all_profiles(&awkward(), legacy);
    assert_eq!(r.vmsa_gpa, Some(0x9000));
    assert_eq!(r.vmsa_sev_features, Some(0x21));
    let digests: Vec<_> = r.profiles.iter().map(|p| p.digest.unwrap()).collect();
    for (i, a) in digests.iter().enumerate() {
        for b in &digests[i + 1..] {
            assert_ne!(a, b);
        }
    }
    assert!(by_name(&r, "igvm-spec").differences.is_empty());
    let l = by_name(&r, "kvm-legacy");
    assert!(l.launchable);
    assert_eq!(
        l.differences,
        vec![
            Finding::VmsaGpa { gpa: 0x9000 },
            Finding::VmsaNotLast { pages_after: 1 },
            Finding::VmsaFields {
                fields: vec!["cr4", "cr0", "pat"]
            },
            Finding::ApVmsas { count: 2 },
        ]
    );
    assert_eq!(l.notes, vec![Finding::Cr0 { cr0: 0x4000_0031 }]);
    let m = by_name(&r, "igvmmeasure");
    assert_eq!(
        m.blockers,
        vec![Finding::MultiPageParameterArea { index: 0, pages: 2 }]
    );
    assert_eq!(m.differences, vec![Finding::SharedPages { pages: 1 }]);
    assert_eq!(m.notes.len(), 3);

    // With only SNPActive supported, DebugSwap (0x20) blocks every KVM launch.
    let bytes = build(awkward());
    let r = profile::check(&bytes, &config(3), legacy, Some(0x1)).unwrap();
    for p in &r.profiles {
        assert!(!p.launchable, "{}", p.name);
        assert!(p.blockers.contains(&Finding::UnsupportedSevFeatures {
            requested: 0x20,
            supported: 0
        }));
    }
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["profiles"][3]["name"], "kvm-legacy");
    assert_eq!(json["profiles"][3]["vcpus"], 3);
    assert_eq!(json["profiles"][3]["differences"][0]["kind"], "vmsa_gpa");
    assert_eq!(json["profiles"][3]["differences"][0]["gpa"], 0x9000);
    assert!(
        json["profiles"][3]["differences"][0]["message"]
            .as_str()
            .unwrap()
            .contains("0xfffffffff000")
    );
}

#[test]
fn legacy_plan_trace_and_step_digests() {
    let legacy = KvmLegacyInputs::new(3, 0x20, 0xA00F11);
    let bytes = build(awkward());
    let plan = LaunchPlan::new(&bytes, &config(3), Profile::KvmLegacy(legacy).options()).unwrap();
    assert_eq!(plan.options().vmsa, VmsaPlacement::KvmFinish(legacy));
    assert!(plan.steps().iter().all(|s| s.page_type != PageType::Vmsa));
    assert_eq!(plan.vmsa().gpa, 0x9000);
    let trace = plan.measure_trace();
    assert_eq!(trace.len() as u64, plan.launched_pages() + 3);
    let tail = &trace[trace.len() - 3..];
    assert!(tail.iter().all(|e| e.gpa == KVM_VMSA_GPA
        && e.page_type == PageType::Vmsa
        && e.step == plan.steps().len()));
    assert_eq!(tail[1].contents, tail[2].contents);
    assert_ne!(tail[0].contents, tail[1].contents);
    let steps = plan.step_digests();
    assert_eq!(steps.len(), plan.steps().len() + 1);
    assert_eq!(*steps.last().unwrap(), plan.launch_digest());
    assert_eq!(trace.last().unwrap().digest, plan.launch_digest());

    let bad = Profile::KvmLegacy(KvmLegacyInputs::new(0, 0, 0)).options();
    assert!(matches!(
        LaunchPlan::new(&bytes, &config(3), bad),
        Err(Error::InvalidVcpuCount { vcpus: 0, .. })
    ));
}

/// The AP VMSA built here from the notes' table hashes to the published
/// sev-snp-measure vector (EPYC-Milan, signature 0xA00F11, features 0x1).
#[test]
fn reset_table_matches_published_vector() {
    let h = sha384(&reset_vmsa_bytes(0xA00F11, 1));
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "728af287318db5f3fc4d2357a969483c4225956dc555b514a78d64ee372112d13b3dca8afd02cdbd1c55697d8ce087f5"
    );
}

/// One vCPU count and one set of VMSA features serve the VP count
/// parameter, KVM_SEV_INIT2 and KVM's VMSAs: kvm-legacy inputs that
/// describe another VM are refused, naming which input differs.
#[test]
fn kvm_legacy_inputs_must_match_the_configuration_and_the_file() {
    let bytes = igvm_snp::demo::demo_igvm();
    let config = LaunchConfig::new(2, vec![GpaRange::new(0, 16 << 20)]);
    let features = LaunchPlan::new(&bytes, &config, Default::default())
        .unwrap()
        .init2_vmsa_features();
    let plan_with = |inputs: KvmLegacyInputs| {
        LaunchPlan::new(&bytes, &config, Profile::KvmLegacy(inputs).options())
            .map(|p| p.vcpu_count())
    };
    assert_eq!(plan_with(KvmLegacyInputs::new(2, features, 0x600)), Ok(2));
    match plan_with(KvmLegacyInputs::new(4, features, 0x600)) {
        Err(Error::LegacyInputsMismatch {
            what,
            legacy,
            expected,
            ..
        }) => assert_eq!((what, legacy, expected), ("vCPUs", 4, 2)),
        other => panic!("unexpected {other:?}"),
    }
    match plan_with(KvmLegacyInputs::new(2, features | 0x20, 0x600)) {
        Err(
            e @ Error::LegacyInputsMismatch {
                what: "VMSA features",
                ..
            },
        ) => {
            assert!(e.to_string().contains("file's VMSA"), "{e}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// igvmbuilder's signed file: its ID block expects the spec's digest (as
/// igvmmeasure computed it, expected.json). A profile with another digest
/// cannot launch it, since SNP_LAUNCH_FINISH would refuse the ID block.
#[test]
fn profiles_whose_digest_the_id_block_does_not_expect_cannot_launch() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/igvmbuilder/qemu-signed.igvm"
    );
    let bytes = std::fs::read(path).unwrap();
    let expected: igvm_snp::LaunchDigest = "A25369BB4DB67F334461E00D243082567C6DF385BE90D35D283E52EE701D7ECD27394C054E4A4D74A50FDD3F6C9CEB6D"
        .parse()
        .unwrap();
    let features = LaunchPlan::new(&bytes, &config(1), igvm_snp::PlanOptions::default())
        .unwrap()
        .init2_vmsa_features();
    let legacy = KvmLegacyInputs::new(1, features, 0x600);
    let r = profile::check(&bytes, &config(1), legacy, None).unwrap();
    assert_eq!(r.id_block_digest, Some(expected));
    for name in ["igvm-spec", "igvmmeasure"] {
        let p = by_name(&r, name);
        assert!(
            p.launchable && p.matches_id_block == Some(true),
            "{name}: {p:?}"
        );
    }
    for name in ["native-zero", "kvm-legacy"] {
        let p = by_name(&r, name);
        assert_eq!(p.matches_id_block, Some(false), "{name}");
        assert!(!p.launchable, "{name}");
        assert!(
            p.blockers.iter().any(|b| matches!(
                b,
                Finding::IdBlockDigest { expected: e, digest } if *e == expected && Some(*digest) == p.digest
            )),
            "{name}: {:?}",
            p.blockers
        );
    }
}

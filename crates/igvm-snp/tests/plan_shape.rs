//! The shape of a launch plan: how pages coalesce into steps, that file
//! order is kept, 2 MiB pages, parameter inserts and the bytes written into
//! parameter areas, unfilled parameters, shared pages and the JSON form.

mod common;

use common::*;
use igvm::IgvmDirectiveHeader as D;
use igvm_defs::IgvmPlatformType;
use igvm_snp::{
    GpaRange, LaunchConfig, LaunchPlan, LaunchStep, PageBytes, PageType, ParameterInserts,
    ParameterKind, PlanOptions, StepSource,
};
use zerocopy::IntoBytes;

fn plan_of<'a>(bytes: &'a [u8], cfg: &LaunchConfig, o: PlanOptions) -> LaunchPlan<'a> {
    LaunchPlan::new(bytes, cfg, o).expect("plan")
}

fn shape(plan: &LaunchPlan<'_>) -> Vec<(u64, u64, PageType)> {
    plan.steps()
        .iter()
        .map(|s| (s.gpa, s.pages, s.page_type))
        .collect()
}

/// The oracle's coalesced steps as (gpa, pages, type).
fn oracle_shape(dirs: &[D], o: OracleOpts) -> Vec<(u64, u64, PageType)> {
    oracle(dirs, SNP, o)
        .1
        .iter()
        .map(|s| (s.gpa, s.pages, PageType::from_value(s.page_type).unwrap()))
        .collect()
}

/// The bytes of every page of a step.
fn step_bytes(plan: &LaunchPlan<'_>, step: &LaunchStep) -> Vec<(u64, Vec<u8>)> {
    plan.step_pages(step)
        .map(|(gpa, p)| {
            let mut buf = vec![0xEEu8; 4096];
            p.write_to(&mut buf);
            (gpa, buf)
        })
        .collect()
}

#[test]
fn coalescing() {
    let dirs = vec![
        // Three contiguous NORMAL pages (data and data-less): one step.
        page(0x1000, pattern(1, 4096)),
        page(0x2000, vec![]),
        page(0x3000, pattern(2, 10)),
        // A type change breaks the run.
        unmeasured(0x4000, vec![]),
        unmeasured(0x5000, pattern(3, 4096)),
        // A GPA gap breaks the run.
        unmeasured(0x7000, vec![]),
        // Another platform's page and non-page directives in between do not.
        page_for(0x50_0000, TDX, pattern(4, 4096)),
        area(0, 4096),
        D::VpCount(param(0, 0)),
        required(0x10_0000, 0x1000),
        error_range(0x30_0000, 0x1000),
        unmeasured(0x8000, vec![]),
        // A parameter insert breaks it, even at the next GPA.
        insert(0x9000, SNP, 0),
        unmeasured(0xA000, vec![]),
        // As does the VMSA.
        secrets(0xB000),
        boot_vmsa(),
        secrets(0xC000),
        cpuid(0xD000, vec![]),
        cpuid(0xE000, pattern(5, 4096)),
    ];
    let bytes = build(
        vec![snp_platform(), platform(TDX, IgvmPlatformType::TDX)],
        vec![policy(POLICY, SNP)],
        dirs.clone(),
    );
    let plan = plan_of(&bytes, &config(), PlanOptions::default());
    let expected = vec![
        (0x1000, 3, PageType::Normal),
        (0x4000, 2, PageType::Unmeasured),
        (0x7000, 2, PageType::Unmeasured),
        (0x9000, 1, PageType::Unmeasured),
        (0xA000, 1, PageType::Unmeasured),
        (0xB000, 1, PageType::Secrets),
        (VMSA_GPA, 1, PageType::Vmsa),
        (0xC000, 1, PageType::Secrets),
        (0xD000, 2, PageType::Cpuid),
    ];
    assert_eq!(shape(&plan), expected);
    assert_eq!(oracle_shape(&dirs, OracleOpts::default()), expected);
    // Sources and indices.
    let steps = plan.steps();
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s.index, i);
    }
    assert_eq!(
        steps[3].source,
        StepSource::ParameterArea {
            position: 0,
            index: 0
        }
    );
    assert_eq!(steps[6].source, StepSource::Vmsa);
    assert_eq!(steps[0].source, StepSource::PageData);
    // The directive range of a PAGE_DATA step covers its directives, and
    // the TDX page inside the third step is not one of its pages.
    assert_eq!(steps[0].directives, 0..3);
    assert_eq!(steps[2].directives, 5..12);
    let gpas: Vec<u64> = plan.step_pages(&steps[2]).map(|(g, _)| g).collect();
    assert_eq!(gpas, [0x7000, 0x8000]);
    assert_eq!(plan.launched_pages(), 14);
}

#[test]
fn native_zero_splits_runs_by_type() {
    let dirs = vec![
        page(0x1000, pattern(1, 4096)),
        page(0x2000, vec![]),
        page(0x3000, vec![]),
        page(0x4000, pattern(2, 4096)),
        boot_vmsa(),
    ];
    let bytes = snp_file(dirs.clone());
    let plan = plan_of(&bytes, &config(), PlanOptions::native_zero());
    let expected = vec![
        (0x1000, 1, PageType::Normal),
        (0x2000, 2, PageType::Zero),
        (0x4000, 1, PageType::Normal),
        (VMSA_GPA, 1, PageType::Vmsa),
    ];
    assert_eq!(shape(&plan), expected);
    let nz = OracleOpts {
        native_zero: true,
        ..Default::default()
    };
    assert_eq!(oracle_shape(&dirs, nz), expected);
    // A ZERO step has no source buffer, its pages read as zeros.
    assert!(!PageType::Zero.has_source());
    for (_, b) in step_bytes(&plan, &plan.steps()[1]) {
        assert!(b.iter().all(|x| *x == 0));
    }
}

#[test]
fn file_order_is_kept() {
    let dirs = vec![
        page(0x5000, pattern(1, 4096)),
        page(0x3000, pattern(2, 4096)),
        boot_vmsa(),
        page(0x1000, pattern(3, 4096)),
        page(0x2000, pattern(4, 4096)),
    ];
    let bytes = snp_file(dirs.clone());
    let plan = plan_of(&bytes, &config(), PlanOptions::default());
    assert_eq!(
        shape(&plan),
        vec![
            (0x5000, 1, PageType::Normal),
            (0x3000, 1, PageType::Normal),
            (VMSA_GPA, 1, PageType::Vmsa),
            (0x1000, 2, PageType::Normal),
        ]
    );
    let trace: Vec<u64> = plan.measure_trace().iter().map(|t| t.gpa).collect();
    assert_eq!(trace, [0x5000, 0x3000, VMSA_GPA, 0x1000, 0x2000]);
    // Sorting the same pages changes the digest: order is measured.
    let mut sorted = dirs.clone();
    sorted.swap(0, 1);
    let other = snp_file(sorted);
    assert_ne!(
        plan.launch_digest(),
        plan_of(&other, &config(), PlanOptions::default()).launch_digest()
    );
}

#[test]
fn two_mib_pages_are_512_pages() {
    let dirs = vec![
        page_2m(0x20_0000),
        page(0x40_0000, pattern(1, 4096)),
        boot_vmsa(),
    ];
    let bytes = snp_file(dirs.clone());
    let plan = plan_of(&bytes, &config(), PlanOptions::default());
    assert_eq!(shape(&plan)[0], (0x20_0000, 513, PageType::Normal));
    let trace = plan.measure_trace();
    assert_eq!(trace.len(), 514);
    for (i, t) in trace[..512].iter().enumerate() {
        assert_eq!(t.gpa, 0x20_0000 + i as u64 * 4096);
        assert_eq!(t.contents.0, sha384_page(&[]));
    }
    let (pages, _) = oracle(&dirs, SNP, OracleOpts::default());
    assert_eq!(plan.launch_digest().0, oracle_chain(&pages).0);
    // With native zero: 512 ZERO pages, then the data page.
    let plan = plan_of(&bytes, &config(), PlanOptions::native_zero());
    assert_eq!(
        shape(&plan)[..2],
        [
            (0x20_0000, 512, PageType::Zero),
            (0x40_0000, 1, PageType::Normal)
        ]
    );
}

#[test]
fn parameter_insert_is_unmeasured_area_pages_at_its_position() {
    let dirs = vec![
        page(0x1000, pattern(1, 4096)),
        area(3, 3 * 4096),
        D::VpCount(param(3, 8192 + 16)),
        page(0x2000, pattern(2, 4096)),
        insert(0x10_0000, SNP, 3),
        page(0x3000, pattern(3, 4096)),
        boot_vmsa(),
    ];
    let bytes = snp_file(dirs.clone());
    let cfg = LaunchConfig::new(7, vec![GpaRange::new(0, 16 << 20)]);
    let plan = plan_of(&bytes, &cfg, PlanOptions::default());
    let expected = vec![
        (0x1000, 2, PageType::Normal),
        (0x10_0000, 3, PageType::Unmeasured),
        (0x3000, 1, PageType::Normal),
        (VMSA_GPA, 1, PageType::Vmsa),
    ];
    assert_eq!(shape(&plan), expected);
    assert_eq!(oracle_shape(&dirs, OracleOpts::default()), expected);
    let area = &plan.parameter_areas()[0];
    assert_eq!((area.index, area.size, area.pages()), (3, 3 * 4096, 3));
    assert_eq!(area.inserted_at.map(|(gpa, _)| gpa), Some(0x10_0000));
    // The VP count sits in the third page of the area.
    let pages = step_bytes(&plan, &plan.steps()[1]);
    assert_eq!(
        pages.iter().map(|(g, _)| *g).collect::<Vec<_>>(),
        [0x10_0000, 0x10_1000, 0x10_2000]
    );
    let mut third = vec![0u8; 4096];
    third[16..20].copy_from_slice(&7u32.to_le_bytes());
    assert_eq!(pages[2].1, third);
    assert!(pages[0].1.iter().chain(&pages[1].1).all(|b| *b == 0));
    // igvmmeasure compatibility: only the first page.
    let mut o = PlanOptions::default();
    o.parameter_inserts = ParameterInserts::FirstPageOnly;
    let plan = plan_of(&bytes, &cfg, o);
    assert_eq!(shape(&plan)[1], (0x10_0000, 1, PageType::Unmeasured));
}

#[test]
fn parameter_contents() {
    let initial = pattern(0x40, 4096);
    let dirs = vec![
        area_with(0, 2 * 4096, initial.clone()),
        D::VpCount(param(0, 0)),
        D::EnvironmentInfo(param(0, 4)),
        D::MemoryMap(param(0, 64)),
        D::CommandLine(param(0, 1024)),
        D::Madt(param(0, 4096 - 8)),
        D::MmioRanges(param(0, 4096 + 512)),
        insert(0x10_0000, SNP, 0),
        page(0x1000, pattern(1, 4096)),
        boot_vmsa(),
    ];
    let bytes = snp_file(dirs);
    let mut cfg = LaunchConfig::new(
        3,
        vec![
            GpaRange::new(0x10_0000, 0x30_0000),
            GpaRange::new(0, 0xA_0000),
        ],
    )
    .with_command_line("console=ttyS0 quiet");
    cfg.memory_is_shared = true;
    let madt: Vec<u8> = (0..20u8).collect(); // crosses into the second page
    cfg.madt = Some(madt.clone());
    cfg.mmio_ranges = vec![GpaRange::new(0xF000_0000, 0x100_0000)];
    let plan = plan_of(&bytes, &cfg, PlanOptions::default());
    assert!(plan.unfilled_parameters().is_empty());
    plan.require_all_parameters().unwrap();

    // The expected area, laid out here byte by byte.
    let mut area = vec![0u8; 2 * 4096];
    area[..4096].copy_from_slice(&initial);
    area[0..4].copy_from_slice(&3u32.to_le_bytes());
    area[4..8].copy_from_slice(&1u32.to_le_bytes());
    // Memory map: sorted by GPA, 24-byte entries {start page u64, pages
    // u64, type u16 (MEMORY = 0), flags u16, reserved u32}, then a zero
    // terminator entry.
    let mut map = Vec::new();
    for (start, pages) in [(0u64, 0xA0u64), (0x100, 0x300)] {
        map.extend_from_slice(&start.to_le_bytes());
        map.extend_from_slice(&pages.to_le_bytes());
        map.extend_from_slice(&[0; 8]);
    }
    map.extend_from_slice(&[0; 24]);
    area[64..64 + map.len()].copy_from_slice(&map);
    let cmd = b"console=ttyS0 quiet\0";
    area[1024..1024 + cmd.len()].copy_from_slice(cmd);
    area[4088..4108].copy_from_slice(&madt);
    // MMIO ranges: {start page u64, pages u64} x 2, the second unused.
    area[4608..4616].copy_from_slice(&0xF_0000u64.to_le_bytes());
    area[4616..4624].copy_from_slice(&0x1000u64.to_le_bytes());
    area[4624..4640].fill(0);

    let step = &plan.steps()[0];
    assert_eq!(
        step.source,
        StepSource::ParameterArea {
            position: 0,
            index: 0
        }
    );
    let got: Vec<u8> = step_bytes(&plan, step)
        .into_iter()
        .flat_map(|(_, b)| b)
        .collect();
    assert_eq!(got, area);
    // The memory map entry layout is igvm_defs' IGVM_VHS_MEMORY_MAP_ENTRY.
    let entry = igvm_defs::IGVM_VHS_MEMORY_MAP_ENTRY {
        starting_gpa_page_number: 0x100,
        number_of_pages: 0x300,
        entry_type: igvm_defs::MemoryMapEntryType::MEMORY,
        flags: 0,
        reserved: 0,
    };
    assert_eq!(&got[64 + 24..64 + 48], entry.as_bytes());
    // The hash of a parameter page is the hash of those bytes.
    let (_, p) = plan.step_pages(step).next().unwrap();
    assert_eq!(p.hash(), sha384_page(&area[..4096]));
    // The writes are listed in directive order.
    let kinds: Vec<_> = plan.parameter_areas()[0]
        .writes()
        .iter()
        .map(|w| w.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            ParameterKind::VpCount,
            ParameterKind::EnvironmentInfo,
            ParameterKind::MemoryMap,
            ParameterKind::CommandLine,
            ParameterKind::Madt,
            ParameterKind::MmioRanges
        ]
    );
}

#[test]
fn unfilled_parameters_are_reported() {
    let dirs = vec![
        area(0, 4096),
        D::VpCount(param(0, 0)),
        D::MemoryMap(param(0, 8)),
        D::CommandLine(param(0, 512)),
        D::Srat(param(0, 1024)),
        D::DeviceTree(param(0, 2048)),
        insert(0x10_0000, SNP, 0),
        page(0x1000, pattern(1, 4096)),
        boot_vmsa(),
    ];
    let bytes = snp_file(dirs);
    let cfg = LaunchConfig::new(2, vec![]);
    let plan = plan_of(&bytes, &cfg, PlanOptions::default());
    let unfilled: Vec<_> = plan
        .unfilled_parameters()
        .iter()
        .map(|u| (u.kind, u.area_index, u.directive.index))
        .collect();
    assert_eq!(
        unfilled,
        [
            (ParameterKind::MemoryMap, 0, 2),
            (ParameterKind::CommandLine, 0, 3),
            (ParameterKind::Srat, 0, 4),
            (ParameterKind::DeviceTree, 0, 5)
        ]
    );
    // Unfilled parameters leave the area's initial contents (zeros); the
    // filled VP count is there.
    let step = &plan.steps()[0];
    let (_, page) = step_bytes(&plan, step).remove(0);
    let mut expected = vec![0u8; 4096];
    expected[..4].copy_from_slice(&2u32.to_le_bytes());
    assert_eq!(page, expected);
    // With everything configured nothing is reported.
    let mut cfg = config().with_command_line("x");
    cfg.srat = Some(vec![1, 2, 3]);
    cfg.device_tree = Some(vec![0xD0, 0x0D, 0xFE, 0xED]);
    let plan = plan_of(&bytes, &cfg, PlanOptions::default());
    assert!(plan.unfilled_parameters().is_empty());
}

#[test]
fn shared_pages_error_ranges_required_memory() {
    let dirs = vec![
        page(0x1000, pattern(1, 4096)),
        shared(0x2000, pattern(2, 4096)),
        shared(0x3000, vec![]),
        page(0x4000, pattern(3, 4096)),
        required(0x10_0000, 0x2000),
        error_range(0x20_0000, 0x3000),
        boot_vmsa(),
    ];
    let bytes = snp_file(dirs.clone());
    let plan = plan_of(&bytes, &config(), PlanOptions::default());
    // Shared pages are not launched.
    assert_eq!(
        shape(&plan),
        vec![
            (0x1000, 1, PageType::Normal),
            (0x4000, 1, PageType::Normal),
            (VMSA_GPA, 1, PageType::Vmsa)
        ]
    );
    let runs = plan.shared_runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].gpa, runs[0].pages, runs[0].directives.clone()),
        (0x2000, 2, 1..3)
    );
    let pages: Vec<(u64, Vec<u8>)> = plan
        .shared_pages(&runs[0])
        .map(|(g, p)| {
            let mut b = vec![0xEE; 4096];
            p.write_to(&mut b);
            (g, b)
        })
        .collect();
    assert_eq!(
        pages,
        vec![(0x2000, pattern(2, 4096)), (0x3000, vec![0; 4096])]
    );
    assert_eq!(
        plan.error_ranges()[0].range,
        GpaRange::new(0x20_0000, 0x3000)
    );
    assert_eq!(
        plan.required_memory()[0].range,
        GpaRange::new(0x10_0000, 0x2000)
    );
    assert!(!plan.required_memory()[0].vtl2_protectable);
    let loaded: Vec<GpaRange> = plan.loaded_ranges().collect();
    assert!(loaded.contains(&GpaRange::new(0x2000, 0x2000)));
    assert!(loaded.contains(&GpaRange::new(0x20_0000, 0x3000)));
    // Measured as NORMAL: they join the run.
    let mut o = PlanOptions::default();
    o.shared_pages = igvm_snp::SharedPages::MeasuredNormal;
    let plan = plan_of(&bytes, &config(), o);
    assert_eq!(shape(&plan)[0], (0x1000, 4, PageType::Normal));
    assert!(plan.shared_runs().is_empty());
    let o = OracleOpts {
        shared_measured: true,
        ..Default::default()
    };
    assert_eq!(
        plan.launch_digest().0,
        oracle_chain(&oracle(&dirs, SNP, o).0).0
    );
}

#[test]
fn vmsa_and_policy_accessors() {
    let mut v = vmsa();
    v.sev_features = igvm::snp_defs::SevFeatures::new()
        .with_snp(true)
        .with_debug_swap(true);
    let v_bytes = v.as_bytes().to_vec();
    let bytes = build(
        vec![snp_platform()],
        vec![policy(0x3_0000 | 0x1F, SNP)],
        vec![
            page(0x1000, pattern(1, 4096)),
            vp_context(0xABC_D000, SNP, 0, v),
        ],
    );
    let plan = plan_of(&bytes, &config(), PlanOptions::default());
    let boot = plan.vmsa();
    assert_eq!(boot.gpa, 0xABC_D000);
    assert_eq!(boot.vp_index, 0);
    assert_eq!(boot.bytes, &v_bytes[..]);
    assert_eq!(boot.sev_features(), 0x21);
    assert_eq!(plan.init2_vmsa_features(), 0x20);
    assert_eq!(plan.policy().unwrap().bits(), 0x3_001F);
    assert_eq!(plan.policy().unwrap().abi_minor(), 0x1F);
    assert!(plan.policy().unwrap().smt());
    let step = plan.steps().last().unwrap();
    let (gpa, page) = plan.step_pages(step).next().unwrap();
    assert_eq!(gpa, 0xABC_D000);
    assert!(matches!(page, PageBytes::Data(d) if d == &v_bytes[..]));
}

#[test]
fn json_has_the_steps() {
    let bytes = snp_file(vec![
        area(0, 4096),
        D::VpCount(param(0, 0)),
        insert(0x10_0000, SNP, 0),
        page(0x1000, pattern(1, 4096)),
        page(0x2000, vec![]),
        secrets(0x3000),
        shared(0x5000, vec![]),
        boot_vmsa(),
    ]);
    let plan = plan_of(
        &bytes,
        &config().with_host_data([0xAB; 32]),
        PlanOptions::default(),
    );
    let json = serde_json::to_value(&plan).unwrap();
    let steps = json["steps"].as_array().expect("steps array");
    assert_eq!(steps.len(), plan.steps().len());
    let got: Vec<(u64, u64, &str)> = steps
        .iter()
        .map(|s| {
            (
                s["gpa"].as_u64().unwrap(),
                s["pages"].as_u64().unwrap(),
                s["page_type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (0x10_0000, 1, "UNMEASURED"),
            (0x1000, 2, "NORMAL"),
            (0x3000, 1, "SECRETS"),
            (VMSA_GPA, 1, "VMSA")
        ]
    );
    assert_eq!(steps[0]["source"]["kind"], "parameter_area");
    assert_eq!(steps[3]["source"]["kind"], "vmsa");
    assert_eq!(json["launched_pages"], 5);
    assert_eq!(json["policy"], POLICY);
    assert_eq!(json["shared_runs"].as_array().unwrap().len(), 1);
    assert_eq!(json["finish"]["host_data"], "ab".repeat(32));
    assert_eq!(json["options"]["zero_pages"], "normal");
}

/// A 2 MiB page with data (which the igvm builder cannot make: it is
/// made here by turning the first of 512 data pages into a 2 MiB page and
/// moving the other 511 to another platform; the serializer stored their
/// distinct contents back to back, so the 2 MiB page reads all of them).
#[test]
fn two_mib_page_with_data() {
    let pages: Vec<D> = (0..512u64)
        .map(|i| {
            let mut d = pattern(i as u8, 4096);
            d[..2].copy_from_slice(&(i as u16).to_le_bytes());
            page(0x20_0000 + i * 4096, d)
        })
        .collect();
    let dirs = [pages, vec![boot_vmsa()]].concat();
    let bytes = build(
        vec![snp_platform(), platform(TDX, IgvmPlatformType::TDX)],
        vec![policy(POLICY, SNP)],
        dirs.clone(),
    );
    let first = find(&bytes, T_PAGE_DATA, 0);
    let mut edited = edit(&bytes, |v| set_u32(v, first.body() + 16, 1));
    for n in 1..512 {
        let t = find(&edited, T_PAGE_DATA, n);
        edited = edit(&edited, |v| set_u32(v, t.body() + 8, TDX));
    }
    let plan = plan_of(&edited, &config(), PlanOptions::default());
    assert_eq!(
        shape(&plan),
        vec![
            (0x20_0000, 512, PageType::Normal),
            (VMSA_GPA, 1, PageType::Vmsa)
        ]
    );
    // Same pages, contents and digest as the 512 separate pages.
    let got = step_bytes(&plan, &plan.steps()[0]);
    for (i, (gpa, b)) in got.iter().enumerate() {
        assert_eq!(*gpa, 0x20_0000 + i as u64 * 4096);
        assert_eq!(&b[..2], &(i as u16).to_le_bytes());
    }
    let (oracle_pages, _) = oracle(&dirs, SNP, OracleOpts::default());
    assert_eq!(plan.launch_digest().0, oracle_chain(&oracle_pages).0);
}

/// The SNP_LAUNCH_FINISH inputs built from an IGVM SNP_ID_BLOCK, checked
/// against the byte layouts in kvm-snp-uapi.md §5 (laid out here by hand).
#[test]
fn launch_finish_from_id_block() {
    use igvm_defs::{
        IGVM_VHS_SNP_ID_BLOCK_PUBLIC_KEY as Key, IGVM_VHS_SNP_ID_BLOCK_SIGNATURE as Sig,
    };
    let sig = |r: u8, s: u8| {
        Box::new(Sig {
            r_comp: [r; 72],
            s_comp: [s; 72],
        })
    };
    let key = |x: u8, y: u8| {
        Box::new(Key {
            curve: 2,
            reserved: 0,
            qx: [x; 72],
            qy: [y; 72],
        })
    };
    let block = |author: u8| D::SnpIdBlock {
        compatibility_mask: SNP,
        author_key_enabled: author,
        reserved: [0; 3],
        ld: [0x11; 48],
        family_id: [0x22; 16],
        image_id: [0x33; 16],
        version: 9, // replaced by 1
        guest_svn: 0x44,
        id_key_algorithm: 1,
        author_key_algorithm: 1,
        id_key_signature: sig(0xA1, 0xA2),
        id_public_key: key(0xB1, 0xB2),
        author_key_signature: sig(0xC1, 0xC2),
        author_public_key: key(0xD1, 0xD2),
    };
    for author in [0u8, 1] {
        let bytes = snp_file(vec![
            page(0x1000, pattern(1, 64)),
            block(author),
            boot_vmsa(),
        ]);
        let cfg = config().with_host_data([0x5A; 32]);
        let plan = plan_of(&bytes, &cfg, PlanOptions::default());
        let f = plan.finish();
        assert_eq!(f.host_data, [0x5A; 32]);
        assert_eq!(f.author_key_enabled, author == 1);

        let mut id = [0u8; 96];
        id[..0x30].fill(0x11);
        id[0x30..0x40].fill(0x22);
        id[0x40..0x50].fill(0x33);
        id[0x50..0x54].copy_from_slice(&1u32.to_le_bytes());
        id[0x54..0x58].copy_from_slice(&0x44u32.to_le_bytes());
        id[0x58..0x60].copy_from_slice(&POLICY.to_le_bytes());
        assert_eq!(f.id_block.unwrap().as_bytes(), &id[..]);

        let mut auth = vec![0u8; 4096];
        auth[0..4].copy_from_slice(&1u32.to_le_bytes());
        auth[4..8].copy_from_slice(&1u32.to_le_bytes());
        let put_sig = |a: &mut [u8], at: usize, r: u8, s: u8| {
            a[at..at + 72].fill(r);
            a[at + 0x48..at + 0x90].fill(s);
        };
        let put_key = |a: &mut [u8], at: usize, x: u8, y: u8| {
            a[at..at + 4].copy_from_slice(&2u32.to_le_bytes());
            a[at + 4..at + 0x4C].fill(x);
            a[at + 0x4C..at + 0x94].fill(y);
        };
        put_sig(&mut auth, 0x40, 0xA1, 0xA2);
        put_key(&mut auth, 0x240, 0xB1, 0xB2);
        if author == 1 {
            put_sig(&mut auth, 0x680, 0xC1, 0xC2);
            put_key(&mut auth, 0x880, 0xD1, 0xD2);
        }
        assert_eq!(
            f.id_auth.as_ref().unwrap().as_bytes(),
            &auth[..],
            "author {author}"
        );
    }
}

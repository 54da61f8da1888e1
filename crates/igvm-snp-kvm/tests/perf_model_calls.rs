//! One SNP_LAUNCH_UPDATE per maximal run of contiguous same-type pages
//! (issue 6), checked on the firmware model: a plan's steps, each issued as
//! one `launch_update`, give as many model calls as steps, and the model,
//! which coalesces the pages it measures into runs on its own, finds as many
//! runs as there are steps, i.e. no two consecutive steps could have been one
//! call. The model's digest equals the plan's.

use igvm::IgvmDirectiveHeader;
use igvm_defs::IgvmPageDataFlags;
use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, PageType, PlanOptions};
use igvm_snp_kvm::sev::{
    FirmwareModel, LaunchFinishInput, LaunchStartInput, LaunchUpdate, PrivateMemory, SnpFirmware,
};

const PAGE: u64 = 4096;

/// What a generated `PAGE_DATA` directive launches as.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// NORMAL with a data prefix.
    Data,
    /// NORMAL without data (ZERO under `ZeroPages::NativeZero`).
    Empty,
    /// The unmeasured flag.
    Unmeasured,
}

/// An SEV-SNP file: `dirs`, a parameter area inserted at `0x8000`, and a
/// VMSA.
fn serialize(mut dirs: Vec<IgvmDirectiveHeader>) -> Vec<u8> {
    let mut all = igvm_snp::demo::vp_count_area(0x8000).to_vec();
    all.append(&mut dirs);
    all.push(IgvmDirectiveHeader::SnpVpContext {
        gpa: 0xFFFF_FFFF_F000,
        compatibility_mask: 1,
        vp_index: 0,
        vmsa: Box::new(igvm_snp::demo::vmsa()),
    });
    igvm_snp::demo::snp_igvm(all).unwrap()
}

fn page(gpa: u64, kind: Kind, seed: u64) -> IgvmDirectiveHeader {
    let mut flags = IgvmPageDataFlags::new();
    if matches!(kind, Kind::Unmeasured) {
        flags.set_unmeasured(true);
    }
    let data = match kind {
        Kind::Data | Kind::Unmeasured => vec![(seed % 251) as u8 + 1; (seed % 4096) as usize + 1],
        Kind::Empty => Vec::new(),
    };
    igvm_snp::demo::page_data(gpa, 1, flags, data)
}

/// Pseudo-random runs of pages from 1 MiB up: kinds change and GPAs skip
/// ahead now and then, so that runs both continue and break across
/// directives.
fn random_pages(seed: u64, count: usize) -> Vec<IgvmDirectiveHeader> {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut gpa = 0x10_0000;
    let mut kind = Kind::Data;
    let mut out = Vec::new();
    for _ in 0..count {
        let r = next();
        if r % 5 == 0 {
            kind = [Kind::Data, Kind::Empty, Kind::Unmeasured][(r / 5 % 3) as usize];
        }
        if r % 7 == 0 {
            gpa += PAGE * (1 + r / 7 % 4);
        }
        out.push(page(gpa, kind, r));
        gpa += PAGE;
    }
    out
}

/// Issues every step of `plan` as one LAUNCH_UPDATE on a fresh model and
/// checks the call count, the model's runs and its digest.
fn check_one_call_per_maximal_run(plan: &LaunchPlan<'_>) {
    let mut m = FirmwareModel::default();
    m.init2(plan.init2_vmsa_features()).unwrap();
    for step in plan.steps() {
        m.set_private(step.gpa, step.pages * PAGE).unwrap();
    }
    m.launch_start(&LaunchStartInput::new(plan.policy().unwrap()))
        .unwrap();
    for step in plan.steps() {
        let mut buf = vec![0u8; usize::try_from(step.pages * PAGE).unwrap()];
        for (i, (_, page)) in plan.step_pages(step).enumerate() {
            page.write_to(&mut buf[i * 4096..(i + 1) * 4096]);
        }
        let mut u = if step.page_type == PageType::Zero {
            LaunchUpdate::zero(step.gpa, step.pages).unwrap()
        } else {
            LaunchUpdate::with_source(step.gpa, step.page_type, &mut buf[..]).unwrap()
        };
        m.launch_update(&mut u).unwrap();
    }
    m.launch_finish(&LaunchFinishInput::from_plan(plan.finish()).unwrap())
        .unwrap();

    let steps = plan.steps();
    assert_eq!(m.launch_update_calls(), steps.len() as u64);
    assert_eq!(m.update_ioctls(), steps.len() as u64);
    // The model coalesces consecutive contiguous same-type pages by itself:
    // as many runs as steps means no step continues the one before it.
    assert_eq!(m.measured().len(), steps.len(), "{steps:#?}");
    for pair in steps.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(
            !(a.page_type == b.page_type && a.gpa + a.pages * PAGE == b.gpa),
            "steps {} and {} could be one LAUNCH_UPDATE: {a:?} {b:?}",
            a.index,
            b.index
        );
    }
    let pages: u64 = m.measured().iter().map(|r| r.pages).sum();
    assert_eq!(pages, plan.launched_pages());
    assert_eq!(m.launch_digest(), plan.launch_digest());
}

fn plan_of<'a>(bytes: &'a [u8], options: PlanOptions) -> LaunchPlan<'a> {
    let config = LaunchConfig::new(2, vec![GpaRange::new(0, 64 << 20)]);
    LaunchPlan::new(bytes, &config, options).unwrap()
}

#[test]
fn benchmark_image_shape_is_one_call_per_run() {
    // The shape of examples/make-image.rs: parameter area, an empty NORMAL
    // page, a long run of data pages, the VMSA.
    let mut dirs = vec![page(0x9000, Kind::Empty, 0)];
    dirs.extend((0..300).map(|i| page(0x10_0000 + i * PAGE, Kind::Data, i)));
    let bytes = serialize(dirs);
    let plan = plan_of(&bytes, PlanOptions::default());
    // Parameter area, empty page, data run, VMSA.
    assert_eq!(plan.steps().len(), 4);
    assert_eq!(plan.steps()[2].pages, 300);
    check_one_call_per_maximal_run(&plan);
}

#[test]
fn random_runs_are_one_call_each() {
    for seed in [1, 2, 3, 0xDEAD_BEEF, 0x1234_5678_9ABC] {
        let bytes = serialize(random_pages(seed, 400));
        for options in [PlanOptions::default(), PlanOptions::native_zero()] {
            let plan = plan_of(&bytes, options);
            // Far fewer calls than pages: runs were coalesced.
            assert!(plan.steps().len() < 300, "{} steps", plan.steps().len());
            check_one_call_per_maximal_run(&plan);
        }
    }
}

#[test]
fn same_type_split_by_another_type_stays_split() {
    // NORMAL 1 MiB, NORMAL-empty elsewhere under NativeZero (ZERO), then
    // NORMAL at the page after the first: contiguous with it, but a ZERO
    // update came between, so the order forces three calls.
    let bytes = serialize(vec![
        page(0x10_0000, Kind::Data, 1),
        page(0x20_0000, Kind::Empty, 2),
        page(0x10_1000, Kind::Data, 3),
    ]);
    let plan = plan_of(&bytes, PlanOptions::native_zero());
    let types: Vec<PageType> = plan.steps().iter().map(|s| s.page_type).collect();
    assert_eq!(
        types,
        [
            PageType::Unmeasured,
            PageType::Normal,
            PageType::Zero,
            PageType::Normal,
            PageType::Vmsa
        ]
    );
    check_one_call_per_maximal_run(&plan);
}

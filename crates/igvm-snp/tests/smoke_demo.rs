//! The demo file plans, and its digest matches the igvm crate's (an
//! independent implementation of the same IGVM-spec rules).

use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, PageType, PlanOptions};

#[test]
fn demo_plans_and_matches_igvm_crate() {
    let bytes = igvm_snp::demo::demo_igvm();
    let config = LaunchConfig::new(1, vec![GpaRange::new(0, 1 << 20)]);
    let plan = LaunchPlan::new(&bytes, &config, PlanOptions::default()).unwrap();
    let types: Vec<_> = plan
        .steps()
        .iter()
        .map(|s| (s.gpa, s.pages, s.page_type))
        .collect();
    assert_eq!(
        types,
        vec![
            (0xFFFF_B000, 1, PageType::Unmeasured),
            (0xFFFF_C000, 1, PageType::Normal),
            (0xFFFF_E000, 2, PageType::Normal),
            (0xFFFF_FFFF_F000, 1, PageType::Vmsa),
        ]
    );
    let file = igvm_snp::demo::demo_file();
    let oracle =
        igvm::measurement::generate_snp_measurement(file.initializations(), file.directives(), 1)
            .unwrap();
    assert_eq!(plan.launch_digest().0, oracle);
}

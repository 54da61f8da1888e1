//! A plan's own heap grows with its steps, not its pages (issue 6): the
//! bytes `LaunchPlan::from_file` keeps allocated for a plan of one data
//! step and the VMSA are the same for 256 data pages and for 65,536. The
//! parsed file (one entry per directive, borrowed data) is made before the
//! count starts.

use std::alloc::System;

use igvm::IgvmDirectiveHeader;
use igvm_defs::{IgvmPageDataFlags, IgvmPageDataType};
use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, PlanOptions};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// `pages` contiguous data-less NORMAL pages from 1 MiB (one step) and
/// the VMSA (another).
fn file(pages: u64) -> Vec<u8> {
    let mut dirs: Vec<IgvmDirectiveHeader> = (0..pages)
        .map(|i| IgvmDirectiveHeader::PageData {
            gpa: 0x10_0000 + i * 4096,
            compatibility_mask: 1,
            flags: IgvmPageDataFlags::new(),
            data_type: IgvmPageDataType::NORMAL,
            data: Vec::new(),
        })
        .collect();
    dirs.push(IgvmDirectiveHeader::SnpVpContext {
        gpa: 0xFFFF_FFFF_F000,
        compatibility_mask: 1,
        vp_index: 0,
        vmsa: Box::new(igvm_snp::demo::vmsa()),
    });
    igvm_snp::demo::snp_igvm(dirs).unwrap()
}

/// Steps, and heap bytes held by the plan beyond its parsed file.
fn plan_heap(pages: u64) -> (usize, isize) {
    let bytes = file(pages);
    let config = LaunchConfig::new(1, vec![GpaRange::new(0, 1 << 30)]);
    let parsed = igvm_snp::IgvmFile::parse(&bytes).unwrap();
    let region = Region::new(GLOBAL);
    let plan = LaunchPlan::from_file(parsed, &config, PlanOptions::default()).unwrap();
    let change = region.change();
    let held = change.bytes_allocated as isize - change.bytes_deallocated as isize
        + change.bytes_reallocated;
    assert_eq!(plan.launched_pages(), pages + 1);
    (plan.steps().len(), held)
}

#[test]
fn plan_heap_grows_with_steps_not_pages() {
    let (small_steps, small) = plan_heap(256);
    let (large_steps, large) = plan_heap(65_536);
    assert_eq!(small_steps, 2);
    assert_eq!(large_steps, 2);
    assert!(small > 0, "the plan holds its steps on the heap");
    assert_eq!(
        small, large,
        "plan heap {small} bytes for 256 pages, {large} for 65536"
    );
}

//! The LAUNCH_UPDATE loop over partial progress and transient errors,
//! driven through the firmware model.

mod sev_support;

use igvm_snp::PageType;
use igvm_snp_kvm::sev::{
    CommandContext, LaunchUpdate, MAX_TRANSIENT_RETRIES, ModelConfig, SevError, SnpFirmware,
    UpdateReport,
};
use sev_support::started;

#[test]
fn loops_until_the_whole_range_is_done() {
    let mut m = started(ModelConfig {
        max_pages_per_call: Some(3),
        ..ModelConfig::default()
    });
    let mut data = vec![7u8; 10 * 4096];
    let report = m
        .launch_update(
            &mut LaunchUpdate::with_source(0x400000, PageType::Normal, &mut data[..]).unwrap(),
        )
        .unwrap();
    assert_eq!(
        report,
        UpdateReport {
            pages: 10,
            ioctl_calls: 4,
            transient_retries: 0,
            cpuid_corrected: None
        }
    );
    assert_eq!(m.launch_update_calls(), 1);
    assert_eq!(m.update_ioctls(), 4);
    let runs = m.measured();
    assert_eq!(runs.len(), 1);
    assert_eq!((runs[0].gpa, runs[0].pages), (0x400000, 10));
}

#[test]
fn retries_eagain_and_counts_it() {
    let mut m = started(ModelConfig {
        max_pages_per_call: Some(2),
        transient_failures: 2,
        ..ModelConfig::default()
    });
    let report = m
        .launch_update(&mut LaunchUpdate::zero(0x10000, 4).unwrap())
        .unwrap();
    assert_eq!(
        (report.pages, report.ioctl_calls, report.transient_retries),
        (4, 4, 2)
    );
}

#[test]
fn endless_eagain_gives_up_with_a_typed_error() {
    let mut m = started(ModelConfig {
        transient_failures: u32::MAX,
        ..ModelConfig::default()
    });
    let e = m
        .launch_update(&mut LaunchUpdate::zero(0x10000, 1).unwrap())
        .unwrap_err();
    assert_eq!(
        e,
        SevError::TooManyRetries {
            context: CommandContext::update(0x10000, 1, PageType::Zero),
            retries: MAX_TRANSIENT_RETRIES
        }
    );
}

#[test]
fn failure_after_partial_progress_names_the_remaining_range() {
    let mut m = started(ModelConfig {
        max_pages_per_call: Some(2),
        ..ModelConfig::default()
    });
    m.launch_update(&mut LaunchUpdate::zero(0x13000, 1).unwrap())
        .unwrap();
    // Pages 0x10000..0x13000 go fine over two calls; 0x13000 is a repeat.
    let e = m
        .launch_update(&mut LaunchUpdate::zero(0x10000, 5).unwrap())
        .unwrap_err();
    match &e {
        SevError::ModelRejected { context, errno, .. } => {
            assert_eq!(*context, CommandContext::update(0x13000, 2, PageType::Zero));
            assert_eq!(errno.errno(), libc::EIO);
        }
        other => panic!("{other}"),
    }
}

//! Target 3's launch on the firmware model: every plan the structured
//! target builds is executed step by step on `igvm_snp_kvm`'s software
//! model of the AMD-SP, through the same `SnpFirmware` trait the KVM
//! backend implements. The model computes the digest with its own
//! PAGE_INFO code and refuses a GPA launched twice, so this checks that
//! the plan's digest is what a launch of the plan measures and that no
//! plan launches a page twice.
//!
//! Each plan is also launched the way a VMM does, through the backend's
//! `Launcher` into anonymous vm-memory guest memory, loading windows of
//! one to five pages ([`launch_windowed`]): the same digest, one command
//! per step in one ioctl per window (per page for CPUID pages), and no
//! launched page left in memory.
//!
//! Only the fuzz crate compiles this (it needs the backend crate); CI
//! replays the structured regressions through it with `fuzz/ci.sh`.

use std::num::NonZeroU64;

use igvm_snp::{LaunchPlan, PAGE_SIZE, PageType};
use igvm_snp_kvm::launch::{LaunchError, Launcher, VmsaFallback};
use igvm_snp_kvm::memory::{Bytes, GuestAddress, LayoutOptions, anonymous, layout_for};
use igvm_snp_kvm::sev::{
    CpuidRetry, FirmwareModel, LaunchStartInput, LaunchUpdate, ModelConfig, PrivateMemory,
    SevError, SnpFirmware,
};

use crate::structured::Input;
use crate::support::checks;

/// Launches `plan` on a fresh model; returns the model after the last
/// LAUNCH_UPDATE, or `None` for a plan no launch takes (an invalid policy,
/// a VMSA at a 2 MiB boundary: measured, never launched) or when the
/// firmware refuses a CPUID page's contents (a table the firmware cannot
/// accept, e.g. more than 64 entries: a property of the file's data, which
/// the planner does not judge and which does not enter the digest).
///
/// # Panics
/// When the model refuses anything else: a plan the planner accepted must
/// launch (that is the invariant under test).
pub fn launch(plan: &LaunchPlan<'_>) -> Option<FirmwareModel> {
    // A plan the launch refuses up front (an invalid policy, a VMSA at a
    // 2 MiB boundary) is measured but not launched: nothing to model.
    let policy = plan.policy().ok()?;
    if plan.vmsa_gpa_2mb_aligned().is_some() {
        return None;
    }
    let mut model = any_features_model();
    model
        .init2(plan.init2_vmsa_features())
        .expect("INIT2 with the plan's features");
    model
        .launch_start(&LaunchStartInput::new(policy))
        .expect("LAUNCH_START with the plan's policy");
    for step in plan.steps() {
        let range = step.range();
        model
            .set_private(range.gpa, range.size)
            .expect("marking a step's range private");
        let mut buf = step.page_type.has_source().then(|| {
            let mut buf = vec![0u8; range.size as usize];
            for (i, (_, page)) in plan.step_pages(step).enumerate() {
                page.write_to(&mut buf[i * PAGE_SIZE..(i + 1) * PAGE_SIZE]);
            }
            buf
        });
        let source = buf.as_deref_mut().map(Into::into);
        let mut update = LaunchUpdate::new(step.gpa, step.pages, step.page_type, source)
            .expect("a plan step is a valid LAUNCH_UPDATE");
        match model.launch_update(&mut update) {
            Ok(_) => {}
            Err(SevError::CpuidRejected { .. }) => return None,
            Err(e) => panic!("the model refused plan step {}: {e}", step.index),
        }
    }
    Some(model)
}

/// A model that accepts any feature set the file asks for; it checks the
/// VMSA against INIT2's features, which come from the same VMSA.
fn any_features_model() -> FirmwareModel {
    FirmwareModel::new(ModelConfig {
        supported_vmsa_features: !igvm_snp::SEV_FEATURE_SNP_ACTIVE,
        ..ModelConfig::default()
    })
}

/// Guest memory a windowed launch may map (virtual, never all written).
const MAX_LAYOUT: u64 = 1 << 30;

/// Launches `plan` as a VMM does, through `Launcher` into fresh anonymous
/// guest memory covering what the plan loads and its RAM, each step loaded and
/// launched `window` pages at a time and each window discarded after its
/// LAUNCH_UPDATE. Skips plans a launch refuses up front (not launchable,
/// no layout, more than [`MAX_LAYOUT`] of memory outside RAM) and CPUID pages the
/// firmware rejects, as [`launch`] does.
///
/// # Panics
/// When the launch fails otherwise, when its digest is not the plan's,
/// when a step is not one command in one ioctl per window (per page for
/// CPUID pages), or when a
/// launched page is left in memory.
pub fn launch_windowed(plan: &LaunchPlan<'_>, window: NonZeroU64) {
    if plan.require_launchable().is_err() {
        return;
    }
    let options = LayoutOptions::new(52);
    let Ok(pages) = layout_for(plan, &[], &options) else {
        return;
    };
    if pages.iter().map(|r| r.size).sum::<u64>() > MAX_LAYOUT {
        return;
    }
    // The configured RAM too, which the launcher requires (mapped, not
    // written: the guest's memory map describes it).
    let Ok(layout) = layout_for(plan, plan.configured_memory(), &options) else {
        return;
    };
    let memory = anonymous(&layout).expect("anonymous memory for layout_for's layout");
    let loaded = Launcher::new(plan, any_features_model(), &memory)
        .and_then(Launcher::init2)
        .and_then(|l| l.load_windowed(window))
        .and_then(Launcher::start)
        .expect("a launchable plan loads and starts");
    let updated = match loaded.update(VmsaFallback::Refuse, None, CpuidRetry::Never) {
        Ok(updated) => updated,
        Err(LaunchError::Update { source, .. })
            if matches!(*source, SevError::CpuidRejected { .. }) =>
        {
            return;
        }
        Err(e) => panic!("the windowed launch failed: {e}"),
    };
    assert_eq!(
        updated.firmware().launch_digest(),
        plan.launch_digest(),
        "the windowed launch's digest differs from the plan's"
    );
    let report = updated.report();
    assert_eq!(report.launch_update_calls, plan.steps().len() as u64);
    let windows: u64 = plan
        .steps()
        .iter()
        .map(|s| match s.page_type {
            // CPUID pages go one per ioctl (a refusal must be its call's).
            PageType::Cpuid => s.pages,
            t if t.has_source() => s.pages.div_ceil(window.get()),
            _ => 1,
        })
        .sum();
    assert_eq!(
        report.launch_update_ioctls, windows,
        "one ioctl per window (per page for CPUID)"
    );
    let mut page = vec![0u8; PAGE_SIZE];
    for step in plan.steps().iter().filter(|s| s.page_type.has_source()) {
        for i in 0..step.pages {
            let gpa = step.gpa + i * PAGE_SIZE as u64;
            memory
                .read_slice(&mut page, GuestAddress(gpa))
                .expect("a launched page is in the layout");
            assert!(
                page.iter().all(|b| *b == 0),
                "launched page {gpa:#x} left in memory"
            );
        }
    }
}

/// Builds the input's file, plans it under every fuzz configuration and
/// launches each plan on the model: the model's digest must equal the
/// plan's, with one LAUNCH_UPDATE per step.
pub fn check(input: &Input) {
    let Some(file) = input.to_file() else { return };
    let mut bytes = Vec::new();
    if file.serialize(&mut bytes).is_err() {
        return;
    }
    for (config, options) in checks::configs() {
        let Ok(plan) = LaunchPlan::new(&bytes, &config, options) else {
            continue;
        };
        let window = NonZeroU64::new(1 + bytes.len() as u64 % 5).expect("non-zero");
        launch_windowed(&plan, window);
        let Some(model) = launch(&plan) else {
            continue;
        };
        assert_eq!(
            model.launch_update_calls(),
            plan.steps().len() as u64,
            "one LAUNCH_UPDATE per plan step"
        );
        assert_eq!(
            model.launch_digest(),
            plan.launch_digest(),
            "the model's digest differs from the plan's"
        );
    }
}

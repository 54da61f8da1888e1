//! The executor on the firmware model, with real KVM memory and vCPUs
//! (a plain VM): one LAUNCH_UPDATE per plan step, the model's digest (its
//! own PAGE_INFO code) equal to the plan's, the VMSA fallback setting vCPU
//! 0's registers for real, and LAUNCH_FINISH checking the ID block.
//!
//! Needs /dev/kvm: skipped with a note without it, failing instead when
//! IGVM_SNP_REQUIRE_KVM=1.

use igvm_snp_test_support as common;

use common::{demo_with, demo_with_vmsa};
use igvm_snp::kvm_legacy::{KVM_RESET_RDX, KvmLegacyInputs};
use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, PlanOptions, VmsaPlacement};
use igvm_snp_kvm::kvm_check::kvm_or_skip;
use igvm_snp_kvm::launch::{LaunchError, LaunchOptions, VmsaFallback, VmsaOutcome, launch_model};
use igvm_snp_kvm::memory::{Bytes, GuestAddress};
use igvm_snp_kvm::sev::{FirmwareModel, ModelConfig, SevError};

const RAM: u64 = 16 << 20;

fn config() -> LaunchConfig {
    LaunchConfig::new(2, vec![GpaRange::new(0, RAM)])
}

fn options() -> LaunchOptions {
    LaunchOptions::new(vec![GpaRange::new(0, RAM)], 2)
}

#[test]
fn demo_launches_with_the_plans_digest_and_one_update_per_step() {
    if kvm_or_skip("demo_launches_with_the_plans_digest").is_none() {
        return;
    }
    let bytes = igvm_snp::demo::demo_igvm();
    let plan = LaunchPlan::new(&bytes, &config(), PlanOptions::default()).unwrap();
    let model = FirmwareModel::new(ModelConfig {
        max_pages_per_call: Some(1),
        ..ModelConfig::default()
    });
    let done = launch_model(&plan, &options(), model).unwrap();
    let report = &done.launched.report;
    assert_eq!(report.launch_update_calls, plan.steps().len() as u64);
    assert_eq!(done.model.launch_update_calls(), plan.steps().len() as u64);
    // Partial progress: one ioctl per page.
    assert_eq!(report.launch_update_ioctls, plan.launched_pages());
    assert_eq!(report.pages, plan.launched_pages());
    assert_eq!(report.launch_digest, Some(plan.launch_digest()));
    assert_eq!(
        report.vmsa,
        VmsaOutcome::PageType {
            gpa: igvm_snp::demo::VMSA_GPA
        }
    );
    assert_eq!(done.launched.vcpus.len(), 2);
    // Every launched range was marked private first.
    for step in plan.steps() {
        assert!(done.model.is_private(step.gpa), "step {}", step.index);
    }
    // The shared view of memory holds the launched data page.
    let mut page = vec![0u8; 4096];
    done.launched
        .memory
        .read_slice(&mut page, GuestAddress(igvm_snp::demo::DATA_GPA))
        .unwrap();
    assert_eq!(page, igvm_snp::demo::data_page());
}

#[test]
fn without_the_vmsa_page_type_the_fallback_must_be_asked_for() {
    if kvm_or_skip("without_the_vmsa_page_type").is_none() {
        return;
    }
    let bytes = igvm_snp::demo::demo_igvm();
    let plan = LaunchPlan::new(&bytes, &config(), PlanOptions::default()).unwrap();
    let no_vmsa_type = || {
        FirmwareModel::new(ModelConfig {
            vmsa_page_type: false,
            ..ModelConfig::default()
        })
    };
    let err = launch_model(&plan, &options(), no_vmsa_type()).unwrap_err();
    assert!(
        matches!(err, LaunchError::VmsaPageTypeUnsupported { gpa } if gpa == igvm_snp::demo::VMSA_GPA),
        "{err}"
    );

    // The same upfront and in a windowed launch (one page per window).
    for window in [None, Some(std::num::NonZeroU64::MIN)] {
        let mut opts = options().with_vmsa_fallback(VmsaFallback::TranslateToRegisters);
        opts.load_window = window;
        let done = launch_model(&plan, &opts, no_vmsa_type()).unwrap();
        let legacy = KvmLegacyInputs::new(2, plan.init2_vmsa_features(), KVM_RESET_RDX);
        assert_eq!(done.launched.report.vmsa, VmsaOutcome::Fallback { legacy });
        // The digest is KVM's per-vCPU one, which the legacy profile predicts.
        let mut legacy_options = PlanOptions::default();
        legacy_options.vmsa = VmsaPlacement::KvmFinish(legacy);
        let legacy_plan = LaunchPlan::new(&bytes, &config(), legacy_options).unwrap();
        assert_eq!(
            done.launched.report.launch_digest,
            Some(legacy_plan.launch_digest()),
            "window {window:?}"
        );
        assert_ne!(legacy_plan.launch_digest(), plan.launch_digest());
        // vCPU 0 really holds the VMSA's state.
        let vcpu = &done.launched.vcpus[0];
        let regs = vcpu.get_regs().unwrap();
        let sregs = vcpu.get_sregs().unwrap();
        assert_eq!(regs.rip, plan.vmsa().vmsa.rip);
        assert_eq!(sregs.cs.base, plan.vmsa().vmsa.cs.base);
        assert_eq!(sregs.cs.selector, plan.vmsa().vmsa.cs.selector);
    }
}

#[test]
fn a_wrong_id_block_fails_launch_finish_with_bad_measurement() {
    if kvm_or_skip("a_wrong_id_block_fails_launch_finish").is_none() {
        return;
    }
    // Validly signed, for another digest: BAD_MEASUREMENT. The same block
    // with the fixture's marker bytes for a signature: BAD_SIGNATURE, which
    // the firmware checks first.
    for (bytes, status) in [
        (
            igvm_snp_test_support::demo_with_signed_id_block([0xAB; 48]),
            "BAD_MEASUREMENT",
        ),
        (
            igvm_snp_test_support::demo_with_id_block([0xAB; 48]),
            "BAD_SIGNATURE",
        ),
    ] {
        let plan = LaunchPlan::new(&bytes, &config(), PlanOptions::default()).unwrap();
        let err = launch_model(&plan, &options(), FirmwareModel::default()).unwrap_err();
        let LaunchError::Sev(sev) = &err else {
            panic!("expected a LAUNCH_FINISH failure, got {err}");
        };
        assert!(
            matches!(
                **sev,
                SevError::Failed { .. } | SevError::ModelRejected { .. }
            ),
            "{sev}"
        );
        assert!(err.to_string().contains(status), "{err}");
    }
    // Signed for the right digest, the launch finishes.
    let digest = LaunchPlan::new(
        &igvm_snp_test_support::demo_with_signed_id_block([0; 48]),
        &config(),
        PlanOptions::default(),
    )
    .unwrap()
    .launch_digest();
    let bytes = igvm_snp_test_support::demo_with_signed_id_block(digest.0);
    let plan = LaunchPlan::new(&bytes, &config(), PlanOptions::default()).unwrap();
    let launched = launch_model(&plan, &options(), FirmwareModel::default()).unwrap();
    assert_eq!(launched.launched.report.launch_digest, Some(digest));
}

#[test]
fn an_unconfigured_parameter_stops_the_launch_before_any_command() {
    if kvm_or_skip("an_unconfigured_parameter_stops_the_launch").is_none() {
        return;
    }
    let bytes = igvm_snp::demo::demo_igvm();
    // The demo's only parameter is the VP count, always configured; use a
    // config-free command line instead via a file that asks for one.
    let with_cmdline = demo_with(|dirs| {
        dirs.insert(
            1,
            igvm::IgvmDirectiveHeader::CommandLine(igvm_defs::IGVM_VHS_PARAMETER {
                parameter_area_index: 0,
                byte_offset: 8,
            }),
        )
    });
    assert_ne!(bytes, with_cmdline);
    let plan = LaunchPlan::new(&with_cmdline, &config(), PlanOptions::default()).unwrap();
    let model = FirmwareModel::default();
    let err = launch_model(&plan, &options(), model).unwrap_err();
    assert!(
        matches!(
            err,
            LaunchError::Plan(igvm_snp::Error::ParameterNotConfigured { .. })
        ),
        "{err}"
    );
}

/// This host has no SEV-SNP: the real launch stops at the preflight,
/// before creating anything, and says what is missing.
#[test]
fn launch_snp_without_snp_fails_in_preflight() {
    if kvm_or_skip("launch_snp_without_snp_fails_in_preflight").is_none() {
        return;
    }
    let report = igvm_snp_kvm::preflight::PreflightReport::probe();
    if report.require_snp().is_ok() {
        eprintln!("note: this host offers SEV-SNP; the preflight test has nothing to check");
        return;
    }
    let bytes = igvm_snp::demo::demo_igvm();
    let plan = LaunchPlan::new(&bytes, &config(), PlanOptions::default()).unwrap();
    let err = igvm_snp_kvm::launch::launch_snp(&plan, &options()).unwrap_err();
    assert!(matches!(err, LaunchError::Preflight(_)), "{err}");
    assert!(
        err.to_string().contains("SEV-SNP is not available"),
        "{err}"
    );
}

/// A CPUID page with one entry: function `leaf`, index 0, EBX = `ebx`
/// (count at 0, entries from 16, registers from +24 of an entry).
fn cpuid_page(leaf: u32, ebx: u32) -> Vec<u8> {
    let mut p = vec![0u8; 4096];
    p[..4].copy_from_slice(&1u32.to_le_bytes());
    p[16..20].copy_from_slice(&leaf.to_le_bytes());
    p[16 + 28..16 + 32].copy_from_slice(&ebx.to_le_bytes());
    p
}

/// A loaded launch on the model started, updated (no fallback) and
/// finished: the model's digest.
fn finished_digest<B: vm_memory::bitmap::Bitmap>(
    loaded: Result<
        igvm_snp_kvm::launch::Launcher<'_, '_, FirmwareModel, igvm_snp_kvm::launch::Loaded, B>,
        LaunchError,
    >,
) -> igvm_snp::LaunchDigest {
    use igvm_snp_kvm::launch::Launcher;
    let (model, _) = loaded
        .and_then(Launcher::start)
        .and_then(|l| {
            l.update(
                VmsaFallback::Refuse,
                None,
                igvm_snp_kvm::sev::CpuidRetry::Never,
            )
        })
        .and_then(Launcher::finish)
        .unwrap()
        .into_parts();
    model.launch_digest()
}

/// The plan's (one) CPUID step.
fn cpuid_step<'p>(plan: &'p LaunchPlan<'_>) -> &'p igvm_snp::LaunchStep {
    plan.steps()
        .iter()
        .find(|s| s.page_type == igvm_snp::PageType::Cpuid)
        .unwrap()
}

/// The demo with a CPUID page at 0x9000; the model's "CPU" wants EBX 0x20
/// where the file says 0x21.
fn demo_with_cpuid() -> (Vec<u8>, ModelConfig) {
    let bytes = demo_with(|dirs| {
        dirs.insert(
            3,
            igvm::IgvmDirectiveHeader::PageData {
                gpa: 0x9000,
                compatibility_mask: 1,
                flags: igvm_defs::IgvmPageDataFlags::new(),
                data_type: igvm_defs::IgvmPageDataType::CPUID_DATA,
                data: cpuid_page(7, 0x21),
            },
        )
    });
    let config = ModelConfig {
        cpuid_expected: vec![igvm_snp_kvm::sev::CpuidFunction {
            eax_in: 7,
            ebx: 0x20,
            ..Default::default()
        }],
        ..ModelConfig::default()
    };
    (bytes, config)
}

#[test]
fn a_rejected_cpuid_page_is_reported_entry_by_entry_and_retried_only_on_request() {
    if kvm_or_skip("a_rejected_cpuid_page").is_none() {
        return;
    }
    let (bytes, model_config) = demo_with_cpuid();
    let plan = LaunchPlan::new(&bytes, &config(), PlanOptions::default()).unwrap();
    let cpuid_step = cpuid_step(&plan).index;
    let err =
        launch_model(&plan, &options(), FirmwareModel::new(model_config.clone())).unwrap_err();
    let LaunchError::Update { step, source, .. } = &err else {
        panic!("expected a step failure, got {err}");
    };
    assert_eq!(*step, cpuid_step);
    let SevError::CpuidRejected { diff, .. } = &**source else {
        panic!("expected a CPUID rejection, got {source}");
    };
    let text = err.to_string() + &diff.to_string();
    assert!(text.contains("0x7"), "{text}");
    assert!(
        text.contains("ebx=0x00000021") && text.contains("ebx=0x00000020"),
        "{text}"
    );

    let opts = options().with_cpuid_retry(igvm_snp_kvm::sev::CpuidRetry::OnceWithCorrection);
    let done = launch_model(&plan, &opts, FirmwareModel::new(model_config)).unwrap();
    let corrections = &done.launched.report.cpuid_corrections;
    assert_eq!(corrections.len(), 1);
    assert_eq!(corrections[0].0, cpuid_step);
    // The retried page carries the firmware's value; CPUID pages are not
    // measured by contents, so the digest is still the plan's.
    assert_eq!(
        done.launched.report.launch_digest,
        Some(plan.launch_digest())
    );
    let mut page = vec![0u8; 4096];
    done.launched
        .memory
        .read_slice(&mut page, GuestAddress(0x9000))
        .unwrap();
    assert_eq!(page, cpuid_page(7, 0x20));
}

/// KVM refuses LAUNCH_FINISH when DR7 has bits other than 0x400; the
/// fallback says so before issuing anything more.
#[test]
fn the_fallback_refuses_a_vmsa_kvm_could_not_measure() {
    if kvm_or_skip("the_fallback_refuses_a_vmsa_kvm_could_not_measure").is_none() {
        return;
    }
    let bytes = demo_with_vmsa(|v| v.dr7 = 0x401);
    let plan = LaunchPlan::new(&bytes, &config(), PlanOptions::default()).unwrap();
    let model = FirmwareModel::new(ModelConfig {
        vmsa_page_type: false,
        ..ModelConfig::default()
    });
    let opts = options().with_vmsa_fallback(VmsaFallback::TranslateToRegisters);
    let err = launch_model(&plan, &opts, model).unwrap_err();
    assert!(
        matches!(&err, LaunchError::FallbackRefused { reason } if reason.contains("DR7 0x401")),
        "{err}"
    );
}

/// What is launched is one snapshot of the file's bytes, the one that was
/// planned and measured: the file changing afterwards (here: another data
/// page written over it, as an image rebuilt in place) changes neither the
/// launch nor its digest. The loader's `launch` and `run` read such a
/// snapshot (`std::fs::read`); mapping the file (`MappedFile::open`) is
/// `unsafe` because a mapping offers no such guarantee.
#[test]
fn the_snapshot_planned_is_the_snapshot_launched() {
    if kvm_or_skip("the_snapshot_planned_is_the_snapshot_launched").is_none() {
        return;
    }
    let path = std::env::temp_dir().join(format!("igvm-snp-snapshot-{}.igvm", std::process::id()));
    std::fs::write(&path, igvm_snp::demo::demo_igvm()).unwrap();
    let snapshot = std::fs::read(&path).unwrap();
    let plan = LaunchPlan::new(&snapshot, &config(), PlanOptions::default()).unwrap();
    let digest = plan.launch_digest();

    let rebuilt = demo_with(|dirs| {
        for d in dirs.iter_mut() {
            if let igvm::IgvmDirectiveHeader::PageData { gpa, data, .. } = d {
                if *gpa == igvm_snp::demo::DATA_GPA {
                    *data = vec![0x5A; 4096];
                }
            }
        }
    });
    std::fs::write(&path, &rebuilt).unwrap();
    let now = LaunchPlan::new(&rebuilt, &config(), PlanOptions::default()).unwrap();
    assert_ne!(now.launch_digest(), digest, "the file really changed");

    let done = launch_model(&plan, &options(), FirmwareModel::default()).unwrap();
    assert_eq!(done.launched.report.launch_digest, Some(digest));
    let mut page = vec![0u8; 4096];
    done.launched
        .memory
        .read_slice(&mut page, GuestAddress(igvm_snp::demo::DATA_GPA))
        .unwrap();
    assert_eq!(
        page,
        igvm_snp::demo::data_page(),
        "the planned bytes were loaded"
    );
    std::fs::remove_file(path).unwrap();
}

/// The launch creates the vCPUs the plan was configured for (its VP count
/// parameter tells the guest how many there are): other options are refused
/// before anything is created.
#[test]
fn the_launch_creates_the_plans_vcpu_count() {
    if kvm_or_skip("the_launch_creates_the_plans_vcpu_count").is_none() {
        return;
    }
    let bytes = igvm_snp::demo::demo_igvm();
    let plan = LaunchPlan::new(&bytes, &config(), PlanOptions::default()).unwrap();
    assert_eq!(plan.vcpu_count(), 2);
    let three = LaunchOptions::new(vec![GpaRange::new(0, RAM)], 3);
    match launch_model(&plan, &three, FirmwareModel::default()) {
        Err(LaunchError::VcpuCountMismatch { got, plan, .. }) => assert_eq!((got, plan), (3, 2)),
        other => panic!("unexpected {:?}", other.map(|_| ())),
    }
}

/// The launcher over memory the test owns (no KVM needed for the model's
/// commands): a VMM that issued KVM_SEV_INIT2 itself must have used the
/// plan's VMSA features, or the launch stops naming both values.
#[test]
fn a_vmm_initialized_vm_must_use_the_plans_vmsa_features() {
    use igvm_snp_kvm::launch::Launcher;
    use igvm_snp_kvm::memory::{LayoutOptions, anonymous, layout_for};
    use igvm_snp_kvm::sev::CpuidRetry;

    let bytes = igvm_snp::demo::demo_igvm();
    let plan = LaunchPlan::new(&bytes, &config(), PlanOptions::default()).unwrap();
    let layout = layout_for(&plan, &[GpaRange::new(0, RAM)], &LayoutOptions::new(48)).unwrap();
    let memory = anonymous(&layout).unwrap();
    let features = plan.init2_vmsa_features();
    match Launcher::new(&plan, FirmwareModel::default(), &memory)
        .unwrap()
        .initialized_by_vmm(features | 0x20)
    {
        Err(LaunchError::VmsaFeaturesMismatch { vm, plan }) => {
            assert_eq!((vm, plan), (features | 0x20, features));
        }
        other => panic!("unexpected {:?}", other.map(|_| ())),
    }
    let finished = Launcher::new(&plan, FirmwareModel::default(), &memory)
        .unwrap()
        .initialized_by_vmm(features)
        .unwrap()
        .load()
        .unwrap()
        .start()
        .unwrap()
        .update(VmsaFallback::Refuse, None, CpuidRetry::Never)
        .unwrap()
        .finish()
        .unwrap();
    assert_eq!(
        finished.into_parts().0.launch_digest(),
        plan.launch_digest()
    );
}

/// The VMSA fallback driven step by step, as a VMM with its own VM, vCPUs
/// and memory drives it on the firmware model: the kvm-legacy inputs must
/// describe the plan's vCPUs and VMSA features (KVM would measure other
/// VMSAs); the model must be given every vCPU's state before LAUNCH_FINISH
/// (`read_back_vcpus`: it cannot see the VM's vCPUs, and without them it
/// measured no VMSA at all); then the digest is the kvm-legacy profile's.
#[test]
fn the_fallback_step_by_step_checks_its_inputs_and_measures_every_vcpu() {
    use igvm_snp::Profile;
    use igvm_snp_kvm::launch::{BootVcpu, Launcher};
    use igvm_snp_kvm::memory::{LayoutOptions, MemoryFlavour, Memslots, anonymous, layout_for};
    use igvm_snp_kvm::sev::{CpuidRetry, ModelRejection, SevError};
    use igvm_snp_kvm::vmsa_regs;

    let Some(kvm) = kvm_or_skip("the_fallback_step_by_step_checks_its_inputs") else {
        return;
    };
    let bytes = igvm_snp::demo::demo_igvm();
    let plan = LaunchPlan::new(&bytes, &config(), PlanOptions::default()).unwrap();
    let features = plan.init2_vmsa_features();
    let layout = layout_for(&plan, &[GpaRange::new(0, RAM)], &LayoutOptions::new(48)).unwrap();
    let cpuid = kvm
        .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
        .unwrap();
    // One VM, its memory and vCPUs, the launch up to the updates.
    let attempt = |legacy: KvmLegacyInputs, vcpu_count: u64, read_back: bool| {
        let memory = anonymous(&layout).unwrap();
        let vm = std::sync::Arc::new(kvm.create_vm().unwrap());
        let _slots = Memslots::register(vm.clone(), &memory, MemoryFlavour::Plain, 0).unwrap();
        let model = FirmwareModel::new(ModelConfig {
            vmsa_page_type: false,
            ..ModelConfig::default()
        });
        let launcher = Launcher::new(&plan, model, &memory).unwrap().init2()?;
        let vcpus: Vec<_> = (0..vcpu_count)
            .map(|i| {
                let vcpu = vm.create_vcpu(i).unwrap();
                vcpu.set_cpuid2(&cpuid).unwrap();
                if i > 0 {
                    vmsa_regs::set_ap_reset_segments(&vcpu).unwrap();
                }
                vcpu
            })
            .collect();
        let boot = BootVcpu {
            vm: &vm,
            vcpu: &vcpus[0],
            cpuid: &cpuid,
            legacy,
        };
        let mut updated = launcher.load()?.start()?.update(
            VmsaFallback::TranslateToRegisters,
            Some(boot),
            CpuidRetry::Never,
        )?;
        if read_back {
            updated.firmware_mut().read_back_vcpus(&plan, &vcpus)?;
        }
        let (model, _) = updated.finish()?.into_parts();
        Ok::<_, LaunchError>(model.launch_digest())
    };
    let inputs = |vcpus, features| KvmLegacyInputs::new(vcpus, features, KVM_RESET_RDX);

    match attempt(inputs(3, features), 2, true) {
        Err(LaunchError::VcpuCountMismatch { got, plan, .. }) => assert_eq!((got, plan), (3, 2)),
        other => panic!("unexpected {other:?}"),
    }
    match attempt(inputs(2, features | 0x20), 2, true) {
        Err(e @ LaunchError::LegacyFeaturesMismatch { .. }) => assert_eq!(
            e.to_string(),
            format!(
                "the kvm-legacy inputs have VMSA features {:#x}, but the plan's VMSA (and so \
                 KVM_SEV_INIT2) has {features:#x}",
                features | 0x20
            )
        ),
        other => panic!("unexpected {other:?}"),
    }
    match attempt(inputs(2, features), 2, false) {
        Err(LaunchError::Sev(e)) => match *e {
            SevError::ModelRejected { rejection, .. } => {
                assert_eq!(*rejection, ModelRejection::NoVcpuState);
            }
            other => panic!("unexpected {other}"),
        },
        other => panic!("unexpected {other:?}"),
    }
    match attempt(inputs(2, features), 1, true) {
        Err(e @ LaunchError::VcpuCountMismatch { .. }) => assert_eq!(
            e.to_string(),
            "the VM: 1 vCPU(s), but the plan was configured for 2"
        ),
        other => panic!("unexpected {other:?}"),
    }
    // The digest KVM would measure, from the file alone.
    let legacy = Profile::KvmLegacy(inputs(2, features));
    let predicted = LaunchPlan::new(&bytes, &config(), legacy.options())
        .unwrap()
        .launch_digest();
    assert_eq!(attempt(inputs(2, features), 2, true).unwrap(), predicted);
    // The inputs the plan implies, without the VMM spelling them out.
    let vm = kvm.create_vm().unwrap();
    let vcpu = vm.create_vcpu(0).unwrap();
    let boot = BootVcpu::for_plan(&vm, &vcpu, &cpuid, &plan, KVM_RESET_RDX);
    assert_eq!(boot.legacy, inputs(2, features));
}

/// The demo plus seven consecutive data pages at 2 MiB (one plan step of
/// seven pages) and a shared (unmeasured) page at 3 MiB.
fn demo_with_a_long_step() -> Vec<u8> {
    demo_with(|dirs| {
        for i in 0..7u32 {
            dirs.push(igvm::IgvmDirectiveHeader::PageData {
                gpa: 0x20_0000 + u64::from(i) * 0x1000,
                compatibility_mask: 1,
                flags: igvm_defs::IgvmPageDataFlags::new(),
                data_type: igvm_defs::IgvmPageDataType::NORMAL,
                data: common::pattern_page(7, i),
            });
        }
        dirs.push(igvm::IgvmDirectiveHeader::PageData {
            gpa: 0x30_0000,
            compatibility_mask: 1,
            flags: igvm_defs::IgvmPageDataFlags::new().with_shared(true),
            data_type: igvm_defs::IgvmPageDataType::NORMAL,
            data: common::pattern_page(3, 1),
        });
    })
}

/// A windowed launch (two pages per window) issues the seven-page step as
/// four LAUNCH_UPDATE ioctls, still one command per step, and gets the
/// plan's digest (the firmware measures page by page); every launched
/// page is discarded after its window (the shared view reads zero there),
/// while the shared page the plan loads but does not launch stays.
#[test]
fn a_windowed_launch_gets_the_plans_digest_and_keeps_only_shared_pages() {
    if kvm_or_skip("a_windowed_launch_gets_the_plans_digest").is_none() {
        return;
    }
    let bytes = demo_with_a_long_step();
    let plan = LaunchPlan::new(&bytes, &config(), PlanOptions::default()).unwrap();
    let long = plan
        .steps()
        .iter()
        .find(|s| s.gpa == 0x20_0000)
        .expect("a step at 2 MiB");
    assert_eq!(long.pages, 7, "{:?}", plan.steps());
    let window = std::num::NonZeroU64::new(2).unwrap();

    let upfront = launch_model(&plan, &options(), FirmwareModel::default()).unwrap();
    let windowed = launch_model(
        &plan,
        &options().with_load_window(window),
        FirmwareModel::default(),
    )
    .unwrap();
    let report = &windowed.launched.report;
    assert_eq!(report.launch_digest, Some(plan.launch_digest()));
    assert_eq!(report.load_window_pages, Some(2));
    assert_eq!(upfront.launched.report.load_window_pages, None);
    assert_eq!(report.launch_update_calls, plan.steps().len() as u64);
    assert_eq!(report.pages, plan.launched_pages());
    // Each step of n pages took ceil(n / 2) ioctls.
    let windows: u64 = plan.steps().iter().map(|s| s.pages.div_ceil(2)).sum();
    assert_eq!(report.launch_update_ioctls, windows);
    assert_eq!(windowed.model.launch_update_calls(), windows);
    assert_eq!(
        upfront.launched.report.launch_update_ioctls,
        plan.steps().len() as u64
    );

    let page_at = |launch: &igvm_snp_kvm::launch::ModelLaunch, gpa: u64| {
        let mut page = vec![0u8; 4096];
        launch
            .launched
            .memory
            .read_slice(&mut page, GuestAddress(gpa))
            .unwrap();
        page
    };
    for i in 0..7u32 {
        let gpa = 0x20_0000 + u64::from(i) * 0x1000;
        assert_eq!(page_at(&upfront, gpa), common::pattern_page(7, i));
        assert_eq!(page_at(&windowed, gpa), vec![0u8; 4096], "GPA {gpa:#x}");
    }
    assert_eq!(
        page_at(&windowed, igvm_snp::demo::DATA_GPA),
        vec![0u8; 4096]
    );
    assert_eq!(page_at(&windowed, 0x30_0000), common::pattern_page(3, 1));
}

/// The Launcher checks the VMM's memory against the plan before anything is
/// issued: it must hold the configured RAM (the guest's memory map says it
/// is there), and each step with a source within one region (one
/// SNP_LAUNCH_UPDATE reads one contiguous range; the failure came only
/// after LAUNCH_START, without the step's number).
#[test]
fn the_launcher_checks_the_memory_against_the_plan() {
    use igvm_snp_kvm::launch::Launcher;
    use igvm_snp_kvm::memory::anonymous;

    let bytes = demo_with_a_long_step();
    let plan = LaunchPlan::new(&bytes, &config(), PlanOptions::default()).unwrap();
    let check = |regions: &[GpaRange]| {
        let memory = anonymous(regions).unwrap();
        Launcher::new(&plan, FirmwareModel::default(), &memory).map(|_| ())
    };
    // The demo's pages below 4 GiB and its VMSA page.
    let top = [
        GpaRange::new(0xFFFF_B000, 0x5000),
        GpaRange::new(igvm_snp::demo::VMSA_GPA, 0x1000),
    ];
    // RAM of 1 MiB where the plan was configured with 16 MiB.
    match check(&[&[GpaRange::new(0, 1 << 20)][..], &top].concat()) {
        Err(e @ LaunchError::RamNotInMemory { .. }) => assert_eq!(
            e.to_string(),
            "the plan's RAM 0x0+0x1000000 is not all in the guest memory given"
        ),
        other => panic!("unexpected {other:?}"),
    }
    // The RAM in two regions that split the seven-page step at 2 MiB.
    let step = plan
        .steps()
        .iter()
        .find(|s| s.gpa == 0x20_0000)
        .expect("the long step");
    let split = [
        GpaRange::new(0, 0x20_2000),
        GpaRange::new(0x20_2000, RAM - 0x20_2000),
    ];
    match check(&[&split[..], &top].concat()) {
        Err(LaunchError::StepNotInOneRegion {
            step: s,
            gpa,
            pages,
        }) => {
            assert_eq!((s, gpa, pages), (step.index, 0x20_0000, 7));
        }
        other => panic!("unexpected {other:?}"),
    }
    check(&[&[GpaRange::new(0, RAM)][..], &top].concat()).unwrap();

    // A step without a source (the data-less page as ZERO, native-zero)
    // must be in the memory too: KVM populates it like any other.
    let native_zero =
        LaunchPlan::new(&bytes, &config(), igvm_snp::Profile::NativeZero.options()).unwrap();
    let zero = native_zero
        .steps()
        .iter()
        .find(|s| s.gpa == igvm_snp::demo::ZERO_GPA)
        .unwrap();
    assert_eq!(zero.page_type, igvm_snp::PageType::Zero);
    let without_zero_page = [
        GpaRange::new(0, RAM),
        GpaRange::new(0xFFFF_B000, 0x1000),
        GpaRange::new(0xFFFF_E000, 0x2000),
        GpaRange::new(igvm_snp::demo::VMSA_GPA, 0x1000),
    ];
    let memory = anonymous(&without_zero_page).unwrap();
    match Launcher::new(&native_zero, FirmwareModel::default(), &memory) {
        Err(LaunchError::StepNotInOneRegion { step, .. }) => assert_eq!(step, zero.index),
        other => panic!("unexpected {:?}", other.map(|_| ())),
    }
}

/// Memory that is not fresh: `load` (and windowed loading) leaves a
/// data-less page as the memory has it, so old bytes there are launched
/// and measured (the model's digest differs from the plan's); told
/// `used_memory`, the launcher writes the zeros, whole or window by window.
#[test]
fn used_memory_gets_its_data_less_pages_zeroed() {
    use igvm_snp_kvm::launch::Launcher;
    use igvm_snp_kvm::memory::{LayoutOptions, anonymous, layout_for};

    let bytes = igvm_snp::demo::demo_igvm();
    let plan = LaunchPlan::new(&bytes, &config(), PlanOptions::default()).unwrap();
    let layout = layout_for(&plan, &[GpaRange::new(0, RAM)], &LayoutOptions::new(48)).unwrap();
    let digest = |used: bool, windowed: bool| {
        let memory = anonymous(&layout).unwrap();
        // Left over from an earlier use of this memory.
        memory
            .write_slice(&[0xAB; 64], GuestAddress(igvm_snp::demo::ZERO_GPA))
            .unwrap();
        let mut new = Launcher::new(&plan, FirmwareModel::default(), &memory).unwrap();
        if used {
            new = new.used_memory();
        }
        let init = new.init2().unwrap();
        let loaded = if windowed {
            init.load_windowed(std::num::NonZeroU64::new(1).unwrap())
        } else {
            init.load()
        };
        finished_digest(loaded)
    };
    for windowed in [false, true] {
        assert_ne!(digest(false, windowed), plan.launch_digest(), "{windowed}");
        assert_eq!(digest(true, windowed), plan.launch_digest(), "{windowed}");
    }
}

/// Guest memory with a dirty bitmap (`GuestMemoryMmap<AtomicBitmap>`, as
/// cloud-hypervisor keeps it) launches like plain memory, and every page
/// the launch changed is marked dirty: the loaded pages, a window discarded
/// after its update, and a CPUID page the firmware corrected in place.
#[test]
fn memory_with_a_dirty_bitmap_launches_and_records_its_writes() {
    use igvm_snp_kvm::launch::Launcher;
    use igvm_snp_kvm::memory::{
        GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, LayoutOptions, layout_for,
    };
    use igvm_snp_kvm::sev::CpuidRetry;
    use vm_memory::bitmap::{AtomicBitmap, Bitmap};

    let dirty = |memory: &GuestMemoryMmap<AtomicBitmap>, gpa: u64| {
        let region = memory.find_region(GuestAddress(gpa)).unwrap();
        let offset = (gpa - region.start_addr().0) as usize;
        region.bitmap().dirty_at(offset)
    };
    let new_memory = |layout: &[GpaRange]| {
        igvm_snp_kvm::memory::anonymous_with_bitmap::<AtomicBitmap>(layout).unwrap()
    };

    // The demo plus a long step, loaded whole and in windows.
    let bytes = demo_with_a_long_step();
    let plan = LaunchPlan::new(&bytes, &config(), PlanOptions::default()).unwrap();
    let layout = layout_for(&plan, &[GpaRange::new(0, RAM)], &LayoutOptions::new(48)).unwrap();
    for windowed in [false, true] {
        let memory = new_memory(&layout);
        assert!(!dirty(&memory, igvm_snp::demo::DATA_GPA));
        let init = Launcher::new(&plan, FirmwareModel::default(), &memory)
            .unwrap()
            .init2()
            .unwrap();
        let loaded = match windowed {
            true => init.load_windowed(std::num::NonZeroU64::new(2).unwrap()),
            false => init.load(),
        };
        assert_eq!(finished_digest(loaded), plan.launch_digest(), "{windowed}");
        for gpa in [igvm_snp::demo::DATA_GPA, 0x20_6000, 0x30_0000] {
            assert!(dirty(&memory, gpa), "{windowed}: {gpa:#x}");
        }
    }

    // A CPUID page the firmware corrects in the memory.
    let (bytes, model_config) = demo_with_cpuid();
    let plan = LaunchPlan::new(&bytes, &config(), PlanOptions::default()).unwrap();
    let cpuid_gpa = cpuid_step(&plan).gpa;
    let layout = layout_for(&plan, &[GpaRange::new(0, RAM)], &LayoutOptions::new(48)).unwrap();
    let memory = new_memory(&layout);
    let started = Launcher::new(&plan, FirmwareModel::new(model_config), &memory)
        .and_then(Launcher::init2)
        .and_then(Launcher::load)
        .and_then(Launcher::start)
        .unwrap();
    for region in memory.iter() {
        let mmap: &vm_memory::MmapRegion<AtomicBitmap> = region;
        mmap.bitmap().reset();
    }
    assert!(!dirty(&memory, cpuid_gpa));
    let result = started.update(VmsaFallback::Refuse, None, CpuidRetry::Never);
    assert!(result.is_err(), "the model rejects the CPUID page");
    assert!(dirty(&memory, cpuid_gpa), "the corrected page is dirty");
}

/// A window that cannot be discarded after its update (locked memory:
/// madvise refuses MADV_DONTNEED) stops the launch with the memory error
/// naming that window, not with a firmware error: the update itself went
/// through.
#[test]
fn a_window_that_cannot_be_discarded_stops_the_launch() {
    use igvm_snp_kvm::launch::Launcher;
    use igvm_snp_kvm::memory::{GuestMemoryMmap, LayoutOptions, MemoryError, layout_for};
    use igvm_snp_kvm::sev::CpuidRetry;
    use vm_memory::GuestRegionMmap;
    use vm_memory::mmap::MmapRegionBuilder;

    let bytes = demo_with_a_long_step();
    // No RAM configured (the demo has no memory map): locked memory for the
    // plan's pages alone.
    let config = LaunchConfig::new(2, Vec::new());
    let plan = LaunchPlan::new(&bytes, &config, PlanOptions::default()).unwrap();
    let layout = layout_for(&plan, &[], &LayoutOptions::new(48)).unwrap();
    let regions: Result<Vec<_>, _> = layout
        .iter()
        .map(|r| {
            MmapRegionBuilder::<()>::new(r.size as usize)
                .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
                .with_mmap_flags(libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_LOCKED)
                .build()
                .map(|m| GuestRegionMmap::new(m, GuestAddress(r.gpa)).unwrap())
        })
        .collect();
    let regions = match regions {
        Ok(regions) => regions,
        Err(e) => {
            // A host whose RLIMIT_MEMLOCK is below the plan's few pages.
            eprintln!("a_window_that_cannot_be_discarded_stops_the_launch: skipped: {e}");
            return;
        }
    };
    let memory = GuestMemoryMmap::from_regions(regions).unwrap();
    let started = Launcher::new(&plan, FirmwareModel::default(), &memory)
        .and_then(Launcher::init2)
        .and_then(|l| l.load_windowed(std::num::NonZeroU64::new(2).unwrap()))
        .and_then(Launcher::start)
        .unwrap();
    // The first step that loads pages (steps without a source load none).
    let first = plan
        .steps()
        .iter()
        .find(|s| s.page_type.has_source())
        .unwrap();
    match started.update(VmsaFallback::Refuse, None, CpuidRetry::Never) {
        Err(LaunchError::Memory(MemoryError::Discard { gpa, size, reason })) => {
            assert_eq!(gpa, first.gpa);
            assert_eq!(size, first.pages.min(2) * 4096);
            assert!(reason.contains("MADV_DONTNEED"), "{reason}");
        }
        other => panic!("unexpected {:?}", other.map(|_| ())),
    }
}

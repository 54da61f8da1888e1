//! What can run on a host without SEV-SNP: the preflight probe of the real
//! `/dev/kvm`, and SEV commands on a plain (type 0) VM, which KVM refuses
//! without touching anything — the refusal must map to typed errors.
//!
//! Needs `/dev/kvm`: skipped with a note when it cannot be opened, unless
//! `IGVM_SNP_REQUIRE_KVM=1`, which turns that into a failure.

use std::fs::File;

use igvm_snp::PageType;
use igvm_snp_kvm::preflight::{Missing, PreflightReport};
use igvm_snp_kvm::sev::{
    CommandContext, FirmwareError, FirmwareModel, KvmSnp, LaunchFinishInput, LaunchStartInput,
    LaunchUpdate, PrivateMemory, SevCommand, SevError, SnpFirmware, VmsaPageTypeSupport,
};
use kvm_ioctls::Kvm;

fn kvm() -> Option<Kvm> {
    match Kvm::new() {
        Ok(kvm) => Some(kvm),
        Err(e) if std::env::var("IGVM_SNP_REQUIRE_KVM").as_deref() == Ok("1") => {
            panic!("IGVM_SNP_REQUIRE_KVM=1 but /dev/kvm cannot be opened: {e}")
        }
        Err(e) => {
            eprintln!("note: skipping, /dev/kvm cannot be opened: {e}");
            None
        }
    }
}

/// What an executor does, generic over the backend.
fn drive<F: SnpFirmware + PrivateMemory>(fw: &mut F) -> Result<(), SevError> {
    fw.init2(0)?;
    fw.set_private(0x100000, 0x2000)?;
    fw.launch_start(&LaunchStartInput {
        policy: 0x30000,
        gosvw: [0; 16],
    })?;
    let mut page = vec![1u8; 4096];
    fw.launch_update(
        &mut LaunchUpdate::with_source(0x100000, PageType::Normal, &mut page).unwrap(),
    )?;
    fw.launch_update(&mut LaunchUpdate::zero(0x101000, 1).unwrap())?;
    fw.launch_finish(&LaunchFinishInput::new([0; 32]))
}

#[test]
fn preflight_on_this_host_is_clean() {
    if kvm().is_none() {
        return;
    }
    let report = PreflightReport::probe();
    println!("{report}");
    assert_eq!(report.kvm_error, None);
    assert!(
        report.vm_types & 1 != 0,
        "the default VM type is always there"
    );
    let missing = report.missing();
    assert_eq!(report.require_snp().is_ok(), missing.is_empty());
    if !report.snp_vm_type() {
        assert!(
            missing
                .iter()
                .any(|m| matches!(m, Missing::SnpVmType { .. }))
        );
    }
    if !std::path::Path::new("/dev/sev").exists() {
        let e = report.require_snp().unwrap_err();
        assert!(
            e.missing
                .iter()
                .any(|m| matches!(m, Missing::SevDevice { .. }))
        );
        let text = e.to_string();
        assert!(text.contains("/dev/sev cannot be opened"), "{text}");
        println!("{text}");
    }
}

#[test]
fn sev_commands_on_a_plain_vm_fail_typed() {
    let Some(kvm) = kvm() else { return };
    let vm = kvm.create_vm().unwrap();
    // Any fd will do as `sev_fd`: KVM refuses before using it.
    let mut snp = KvmSnp::new(&vm, File::open("/dev/null").unwrap());

    let e = snp.init2(0).unwrap_err();
    let SevError::Failed {
        context,
        errno,
        firmware,
        completed_pages,
        ioctl_calls,
    } = e
    else {
        panic!("{e}");
    };
    assert_eq!(context, CommandContext::command(SevCommand::Init2));
    // ENOTTY without SEV in KVM; EINVAL where SEV is on but the VM type is 0.
    assert!(
        [libc::ENOTTY, libc::EINVAL].contains(&errno.errno()),
        "{errno}"
    );
    assert_eq!(
        (firmware, completed_pages, ioctl_calls),
        (FirmwareError::Success, 0, 1)
    );
    // The message says which of the two it is.
    let message = e.to_string();
    let why = if errno.errno() == libc::ENOTTY {
        "this KVM has no memory-encryption commands"
    } else {
        "KVM refuses INIT2 for a VM not created as KVM_X86_SNP_VM"
    };
    assert!(message.contains(why), "{message}");

    let e = snp
        .launch_start(&LaunchStartInput {
            policy: 0x30000,
            gosvw: [0; 16],
        })
        .unwrap_err();
    assert!(
        matches!(e, SevError::Failed { context, .. } if context.command == SevCommand::LaunchStart)
    );

    let mut page = vec![0u8; 4096];
    let e = snp
        .launch_update(
            &mut LaunchUpdate::with_source(0x100000, PageType::Normal, &mut page).unwrap(),
        )
        .unwrap_err();
    match e {
        SevError::Failed {
            context,
            completed_pages,
            ioctl_calls,
            ..
        } => {
            assert_eq!(
                context,
                CommandContext::update(0x100000, 1, PageType::Normal)
            );
            assert_eq!((completed_pages, ioctl_calls), (0, 1));
        }
        other => panic!("{other}"),
    }

    // Without a successful LAUNCH_START here, a refused VMSA page is a plain
    // failure, not a sign that the page type is unsupported.
    let mut vmsa = vec![0u8; 4096];
    let e = snp
        .launch_update(&mut LaunchUpdate::with_source(0x200000, PageType::Vmsa, &mut vmsa).unwrap())
        .unwrap_err();
    assert!(matches!(e, SevError::Failed { .. }), "{e}");
    assert_eq!(snp.vmsa_page_type(), VmsaPageTypeSupport::Unknown);

    let e = snp
        .launch_finish(&LaunchFinishInput::new([0; 32]))
        .unwrap_err();
    assert!(
        matches!(e, SevError::Failed { context, .. } if context.command == SevCommand::LaunchFinish)
    );
    println!("{e}");
}

#[test]
fn an_unaligned_source_is_bounced_and_left_intact() {
    let Some(kvm) = kvm() else { return };
    let vm = kvm.create_vm().unwrap();
    let mut snp = KvmSnp::new(&vm, File::open("/dev/null").unwrap());
    let mut backing = vec![0x5au8; 3 * 4096];
    let start = backing.as_ptr().align_offset(4096) + 1;
    let source = &mut backing[start..start + 4096];
    assert_ne!(source.as_ptr() as usize % 4096, 0);
    let e = snp
        .launch_update(&mut LaunchUpdate::with_source(0x100000, PageType::Cpuid, source).unwrap())
        .unwrap_err();
    assert!(matches!(e, SevError::Failed { .. }), "{e}");
    assert!(backing.iter().all(|b| *b == 0x5a));
}

#[test]
fn set_private_on_a_plain_vm_fails_typed() {
    let Some(kvm) = kvm() else { return };
    let vm = kvm.create_vm().unwrap();
    let mut snp = KvmSnp::new(&vm, File::open("/dev/null").unwrap());
    match snp.set_private(0x100000, 0x1000).unwrap_err() {
        SevError::SetPrivate { gpa, size, errno } => {
            assert_eq!((gpa, size), (0x100000, 0x1000));
            assert!(
                [libc::EINVAL, libc::ENOTTY].contains(&errno.errno()),
                "{errno}"
            );
        }
        other => panic!("{other}"),
    }
}

/// Where /dev/sev cannot be opened (this host has none), the error says
/// which device it was.
#[test]
fn opening_the_sev_device_names_it() {
    let Some(kvm) = kvm() else { return };
    if std::path::Path::new(igvm_snp_kvm::sev::SEV_DEVICE).exists() {
        eprintln!("opening_the_sev_device_names_it: skipped: this host has /dev/sev");
        return;
    }
    let vm = kvm.create_vm().unwrap();
    let e = igvm_snp_kvm::sev::KvmSnp::open(&vm).unwrap_err();
    assert!(e.to_string().starts_with("/dev/sev: "), "{e}");
}

#[test]
fn one_driver_for_both_backends() {
    let mut model = FirmwareModel::default();
    // No VMSA page: KVM builds one VMSA per vCPU, and this VM has none.
    model.set_kvm_vcpus(Vec::new());
    drive(&mut model).unwrap();
    assert_eq!(model.launch_update_calls(), 2);

    let Some(kvm) = kvm() else { return };
    let vm = kvm.create_vm().unwrap();
    let mut snp = KvmSnp::new(&vm, File::open("/dev/null").unwrap());
    let e = drive(&mut snp).unwrap_err();
    assert!(matches!(e, SevError::Failed { context, .. } if context.command == SevCommand::Init2));
}

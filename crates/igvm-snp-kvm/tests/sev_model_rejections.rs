//! Every rule the firmware model enforces yields its typed error, with the
//! errno and firmware status the kernel would report.

mod sev_support;

use igvm_snp::{IdAuth, IdBlock, LaunchDigest, PageType};
use igvm_snp_kvm::sev::{
    CommandContext, FirmwareError, FirmwareModel, IdInput, InputError, LaunchFinishInput,
    LaunchStartInput, LaunchUpdate, ModelConfig, ModelPhase, ModelRejection, PrivateMemory,
    SevCommand, SevError, SnpFirmware, VmsaPageTypeSupport, VmsaProblem,
};
use sev_support::{POLICY, no_vcpus, rejection, started, vmsa_page};
use zerocopy::FromZeros;

fn start(policy: u64) -> LaunchStartInput {
    LaunchStartInput {
        policy,
        gosvw: [0; 16],
    }
}

fn errno(e: &SevError) -> i32 {
    e.errno().expect("errno").errno()
}

#[test]
fn init2_only_once_and_before_start() {
    let mut m = no_vcpus(ModelConfig::default());
    m.init2(0).unwrap();
    let e = m.init2(0).unwrap_err();
    assert_eq!(rejection(&e), ModelRejection::Init2Repeated);
    assert_eq!(errno(&e), libc::EINVAL);
    m.launch_start(&start(POLICY)).unwrap();
    let e = m.init2(0).unwrap_err();
    assert_eq!(rejection(&e), ModelRejection::Init2AfterStart);
    match e {
        SevError::ModelRejected { context, .. } => {
            assert_eq!(context, CommandContext::command(SevCommand::Init2));
        }
        other => panic!("{other}"),
    }
}

#[test]
fn init2_features_come_from_the_supported_set() {
    let mut m = FirmwareModel::new(ModelConfig {
        supported_vmsa_features: 1 << 5,
        ..ModelConfig::default()
    });
    let e = m.init2((1 << 5) | (1 << 7)).unwrap_err();
    assert_eq!(
        rejection(&e),
        ModelRejection::UnsupportedVmsaFeatures {
            requested: 0xa0,
            supported: 0x20
        }
    );
    assert_eq!(m.phase(), ModelPhase::New);
    m.init2(1 << 5).unwrap();
    assert_eq!(m.phase(), ModelPhase::Initialized);
}

#[test]
fn launch_start_order_and_policy() {
    let mut m = no_vcpus(ModelConfig::default());
    let e = m.launch_start(&start(POLICY)).unwrap_err();
    assert_eq!(rejection(&e), ModelRejection::StartBeforeInit2);
    assert_eq!(errno(&e), libc::ENOTTY);

    m.init2(0).unwrap();
    let e = m.launch_start(&start(0x10000)).unwrap_err();
    assert_eq!(
        rejection(&e),
        ModelRejection::PolicyReservedBitClear { policy: 0x10000 }
    );
    let e = m.launch_start(&start(POLICY | (1 << 30))).unwrap_err();
    assert_eq!(
        rejection(&e),
        ModelRejection::PolicyUnsupportedBits {
            policy: POLICY | (1 << 30),
            unsupported: 1 << 30
        }
    );

    let mut narrow = FirmwareModel::new(ModelConfig {
        supported_policy_bits: 0x3ffff,
        ..ModelConfig::default()
    });
    narrow.init2(0).unwrap();
    let e = narrow.launch_start(&start(POLICY | (1 << 19))).unwrap_err();
    assert!(matches!(
        rejection(&e),
        ModelRejection::PolicyUnsupportedBits { unsupported, .. } if unsupported == 1 << 19
    ));

    m.launch_start(&start(POLICY)).unwrap();
    let e = m.launch_start(&start(POLICY)).unwrap_err();
    assert_eq!(rejection(&e), ModelRejection::StartRepeated);
}

/// The firmware's own policy checks at SNP_LAUNCH_START, which KVM passes
/// on (EIO, POLICY_FAILURE): SMT not allowed while the host has it active,
/// SINGLE_SOCKET on several sockets, a policy asking for a newer ABI than
/// the firmware's. Each host property can be modelled the other way.
#[test]
fn launch_start_policy_against_the_platform() {
    let started_with = |config: ModelConfig, policy: u64| {
        let mut m = FirmwareModel::new(config);
        m.init2(0).unwrap();
        m.launch_start(&start(policy))
    };
    let policy_failure = |e: &SevError| {
        assert_eq!(errno(e), libc::EIO, "{e}");
        assert_eq!(e.firmware(), Some(FirmwareError::PolicyFailure), "{e}");
    };
    // The default host: SMT active, one socket, ABI 1.55.
    let e = started_with(ModelConfig::default(), 0x20000).unwrap_err();
    assert_eq!(
        rejection(&e),
        ModelRejection::PolicySmtActive { policy: 0x20000 }
    );
    policy_failure(&e);
    let no_smt = ModelConfig {
        smt_active: false,
        ..ModelConfig::default()
    };
    started_with(no_smt.clone(), 0x20000).unwrap();

    let single_socket = POLICY | 1 << 20;
    started_with(ModelConfig::default(), single_socket).unwrap();
    let two_sockets = ModelConfig {
        sockets: 2,
        ..ModelConfig::default()
    };
    let e = started_with(two_sockets, single_socket).unwrap_err();
    assert_eq!(
        rejection(&e),
        ModelRejection::PolicySingleSocket {
            policy: single_socket,
            sockets: 2
        }
    );
    policy_failure(&e);

    // ABI major.minor in bits 15:8 and 7:0: 1.55 is taken, 1.56 and 2.0
    // are not.
    started_with(ModelConfig::default(), POLICY | 0x0137).unwrap();
    for abi in [0x0138, 0x0200] {
        let e = started_with(ModelConfig::default(), POLICY | abi).unwrap_err();
        assert_eq!(
            rejection(&e),
            ModelRejection::PolicyAbiTooNew {
                policy: POLICY | abi,
                firmware: (1, 55)
            }
        );
        policy_failure(&e);
    }
    let e = started_with(ModelConfig::default(), POLICY | 0x0138).unwrap_err();
    assert!(
        e.to_string()
            .contains("asks for firmware ABI 1.56, newer than the firmware's 1.55"),
        "{e}"
    );
}

#[test]
fn updates_only_between_start_and_finish() {
    let mut m = no_vcpus(ModelConfig::default());
    m.init2(0).unwrap();
    m.set_private(0, 0x10000).unwrap();
    let e = m
        .launch_update(&mut LaunchUpdate::zero(0, 1).unwrap())
        .unwrap_err();
    assert_eq!(rejection(&e), ModelRejection::UpdateBeforeStart);
    assert_eq!(errno(&e), libc::EINVAL);

    m.launch_start(&start(POLICY)).unwrap();
    m.launch_update(&mut LaunchUpdate::zero(0, 1).unwrap())
        .unwrap();
    m.launch_finish(&LaunchFinishInput::new([0; 32])).unwrap();
    let e = m
        .launch_update(&mut LaunchUpdate::zero(0x1000, 1).unwrap())
        .unwrap_err();
    assert_eq!(rejection(&e), ModelRejection::UpdateAfterFinish);
    assert_eq!(e.firmware(), Some(FirmwareError::InvalidGuestState));
    assert_eq!(errno(&e), libc::EIO);
}

#[test]
fn a_gpa_updated_twice_is_rejected() {
    let mut m = started(ModelConfig::default());
    m.launch_update(&mut LaunchUpdate::zero(0x2000, 2).unwrap())
        .unwrap();
    let mut page = vec![1u8; 4096];
    let e = m
        .launch_update(&mut LaunchUpdate::with_source(0x3000, PageType::Normal, &mut page).unwrap())
        .unwrap_err();
    assert_eq!(
        rejection(&e),
        ModelRejection::AlreadyUpdated { gpa: 0x3000 }
    );
    // KVM reports every kvm_gmem_populate failure as EIO, the firmware
    // status 0 (it never ran).
    assert_eq!(errno(&e), libc::EIO);
    assert_eq!(e.firmware(), Some(FirmwareError::Success));
}

#[test]
fn a_page_not_private_is_rejected_at_its_gpa() {
    let mut m = no_vcpus(ModelConfig::default());
    m.init2(0).unwrap();
    m.set_private(0x100000, 0x1000).unwrap();
    m.set_private(0x102000, 0x1000).unwrap();
    m.launch_start(&start(POLICY)).unwrap();
    let e = m
        .launch_update(&mut LaunchUpdate::zero(0x100000, 3).unwrap())
        .unwrap_err();
    assert_eq!(rejection(&e), ModelRejection::NotPrivate { gpa: 0x101000 });
    assert_eq!(errno(&e), libc::EIO);
    assert_eq!(e.firmware(), Some(FirmwareError::Success));
    // The error names the range still to do: it starts at the failing page.
    match &e {
        SevError::ModelRejected { context, .. } => {
            assert_eq!(
                *context,
                CommandContext::update(0x101000, 2, PageType::Zero)
            );
        }
        other => panic!("{other}"),
    }
    let text = e.to_string();
    assert!(
        text.contains("SNP_LAUNCH_UPDATE of 2 ZERO page(s) [0x101000, 0x103000)"),
        "{text}"
    );
    // The first page was processed (partial progress) and measured.
    assert_eq!(m.measured().len(), 1);
    assert_eq!(m.update_ioctls(), 2);
}

#[test]
fn set_private_checks_like_the_ioctl() {
    let mut m = no_vcpus(ModelConfig::default());
    for (gpa, size) in [
        (0x1001, 0x1000),
        (0x1000, 0x800),
        (0x1000, 0),
        (u64::MAX - 0xfff, 0x2000),
    ] {
        let e = m.set_private(gpa, size).unwrap_err();
        assert_eq!(
            e,
            SevError::SetPrivate {
                gpa,
                size,
                errno: vmm_sys_util::errno::Error::new(libc::EINVAL)
            }
        );
    }
    m.set_private(0x1000, 0x2000).unwrap();
    assert!(m.is_private(0x2fff) && !m.is_private(0x3000) && !m.is_private(0xfff));
}

#[test]
fn source_must_match_the_page_type() {
    let mut m = started(ModelConfig::default());
    let mut page = vec![0u8; 4096];
    let e = m
        .launch_update(
            &mut LaunchUpdate::new(0, 1, PageType::Zero, Some((&mut page[..]).into())).unwrap(),
        )
        .unwrap_err();
    assert_eq!(
        e,
        SevError::Input {
            context: CommandContext::update(0, 1, PageType::Zero),
            problem: InputError::SourceForZero
        }
    );
    for t in [
        PageType::Normal,
        PageType::Unmeasured,
        PageType::Secrets,
        PageType::Cpuid,
        PageType::Vmsa,
    ] {
        let e = m
            .launch_update(&mut LaunchUpdate::new(0, 1, t, None).unwrap())
            .unwrap_err();
        assert!(
            matches!(e, SevError::Input { problem: InputError::MissingSource { page_type }, .. } if page_type == t),
            "{e}"
        );
    }
    assert_eq!(m.update_ioctls(), 0, "input errors issue nothing");
}

#[test]
fn vmsa_rules() {
    let mut m = started(ModelConfig::default());
    let mut bad_vmpl = vmsa_page(1, 1);
    let e = m
        .launch_update(
            &mut LaunchUpdate::with_source(0x5000, PageType::Vmsa, &mut bad_vmpl).unwrap(),
        )
        .unwrap_err();
    assert_eq!(
        rejection(&e),
        ModelRejection::Vmsa {
            gpa: 0x5000,
            problem: VmsaProblem::Vmpl { vmpl: 1 }
        }
    );
    // INIT2 had vmsa_features 0, so SEV_FEATURES must be exactly 1.
    let mut bad_features = vmsa_page(0, 0x21);
    let e = m
        .launch_update(
            &mut LaunchUpdate::with_source(0x5000, PageType::Vmsa, &mut bad_features).unwrap(),
        )
        .unwrap_err();
    assert_eq!(
        rejection(&e),
        ModelRejection::Vmsa {
            gpa: 0x5000,
            problem: VmsaProblem::SevFeatures {
                found: 0x21,
                expected: 1
            }
        }
    );
    assert_eq!(m.vmsa_page_type(), VmsaPageTypeSupport::Unknown);
    let mut good = vmsa_page(0, 1);
    m.launch_update(&mut LaunchUpdate::with_source(0x5000, PageType::Vmsa, &mut good).unwrap())
        .unwrap();
    assert_eq!(m.vmsa_page_type(), VmsaPageTypeSupport::Supported);
}

#[test]
fn vmsa_page_type_only_when_configured() {
    let mut m = started(ModelConfig {
        vmsa_page_type: false,
        ..ModelConfig::default()
    });
    let mut vmsa = vmsa_page(0, 1);
    let e = m
        .launch_update(&mut LaunchUpdate::with_source(0x5000, PageType::Vmsa, &mut vmsa).unwrap())
        .unwrap_err();
    match e {
        SevError::VmsaPageTypeUnsupported { context, errno } => {
            assert_eq!(errno.errno(), libc::EINVAL);
            assert_eq!(context, CommandContext::update(0x5000, 1, PageType::Vmsa));
        }
        other => panic!("{other}"),
    }
    assert_eq!(m.vmsa_page_type(), VmsaPageTypeSupport::Unsupported);
    // Nothing was measured: the fallback path can go on.
    assert!(m.measured().is_empty());
    m.launch_finish(&LaunchFinishInput::new([0; 32])).unwrap();
}

#[test]
fn finish_order() {
    let mut m = no_vcpus(ModelConfig::default());
    let e = m
        .launch_finish(&LaunchFinishInput::new([0; 32]))
        .unwrap_err();
    assert_eq!(rejection(&e), ModelRejection::FinishBeforeStart);
    let mut m = started(ModelConfig::default());
    m.launch_finish(&LaunchFinishInput::new([0; 32])).unwrap();
    assert_eq!(m.phase(), ModelPhase::Finished);
    let e = m
        .launch_finish(&LaunchFinishInput::new([0; 32]))
        .unwrap_err();
    assert_eq!(rejection(&e), ModelRejection::FinishRepeated);
}

/// LAUNCH_FINISH with `block`, signed with the test ID key as the
/// firmware verifies it.
fn finish_with(m: &mut FirmwareModel, block: &IdBlock) -> Result<(), SevError> {
    let auth = igvm_snp_test_support::signed_id_auth(block);
    finish_with_auth(m, block, &auth, false)
}

fn finish_with_auth(
    m: &mut FirmwareModel,
    block: &IdBlock,
    auth: &IdAuth,
    author_key_enabled: bool,
) -> Result<(), SevError> {
    m.launch_finish(&LaunchFinishInput {
        id: Some(IdInput {
            block,
            auth,
            author_key_enabled,
        }),
        vcek_disabled: false,
        host_data: [0; 32],
    })
}

/// SNP_LAUNCH_FINISH verifies the ID block's signature before its digest:
/// an unsigned ID auth, a signature over another block, or AUTH_KEY_EN
/// without an author key are BAD_SIGNATURE, even with the right digest.
#[test]
fn id_signatures_are_checked_before_the_digest() {
    let mut m = started(ModelConfig::default());
    m.launch_update(&mut LaunchUpdate::zero(0, 1).unwrap())
        .unwrap();
    let mut block = IdBlock::new_zeroed();
    block.policy = POLICY;
    block.version = 1;
    block.ld = m.launch_digest().0;
    let mut other = block;
    other.guest_svn = 1;
    for (auth, author, why) in [
        (IdAuth::new_zeroed(), false, "ID key algorithm 0"),
        (
            igvm_snp_test_support::signed_id_auth(&other),
            false,
            "ID block",
        ),
        (
            igvm_snp_test_support::signed_id_auth(&block),
            true,
            "AUTH_KEY_EN",
        ),
    ] {
        let e = finish_with_auth(&mut m, &block, &auth, author).unwrap_err();
        assert_eq!(e.firmware(), Some(FirmwareError::BadSignature), "{why}");
        assert_eq!(errno(&e), libc::EIO);
        let ModelRejection::IdSignature { reason } = rejection(&e) else {
            panic!("{e}");
        };
        assert!(reason.contains(why), "{why}: {reason}");
    }
    finish_with(&mut m, &block).unwrap();
}

#[test]
fn id_block_digest_and_policy_are_checked() {
    let mut m = started(ModelConfig::default());
    m.launch_update(&mut LaunchUpdate::zero(0, 1).unwrap())
        .unwrap();
    let mut block = IdBlock::new_zeroed();
    block.policy = POLICY;
    block.ld = [0xAA; 48];
    let e = finish_with(&mut m, &block).unwrap_err();
    assert_eq!(e.firmware(), Some(FirmwareError::BadMeasurement));
    assert_eq!(errno(&e), libc::EIO);
    assert_eq!(
        rejection(&e),
        ModelRejection::IdBlockDigestMismatch {
            id_block: LaunchDigest([0xAA; 48]),
            launch: m.launch_digest()
        }
    );
    assert!(e.to_string().contains("BAD_MEASUREMENT (0x0b)"), "{e}");

    block.ld = m.launch_digest().0;
    block.policy = POLICY | 1;
    let e = finish_with(&mut m, &block).unwrap_err();
    assert_eq!(e.firmware(), Some(FirmwareError::PolicyFailure));

    block.policy = POLICY;
    finish_with(&mut m, &block).unwrap();
    assert_eq!(m.phase(), ModelPhase::Finished);
}

//! The model's launch digest against vectors computed outside this crate
//! (notes §4.3: sev-snp-measure and the igvm crate agree on them) and
//! against the core crate's independent `DigestChain`.

mod sev_support;

use igvm_snp::{DigestChain, IdBlock, PageType, page_hash};
use igvm_snp_kvm::sev::model::{KVM_INITIAL_VMSA_GPA, ModelRejection};
use igvm_snp_kvm::sev::{
    FirmwareModel, IdInput, LaunchFinishInput, LaunchStartInput, LaunchUpdate, ModelConfig,
    PrivateMemory, SnpFirmware,
};
use igvm_snp_kvm::vmsa_sync::{SyncRefused, VcpuSnapshot};
use kvm_bindings::{kvm_regs, kvm_sregs};
use sev_support::{POLICY, hex, rejection, started, vmsa_page};
use zerocopy::FromZeros;

const VECTOR_4_3: &str = "d37c1c61f57e6c28202bc1dea89bd62837f512bad73229a624193609e83c8aff\
                          627f7582a3e20e24a1079372b930d8a5";

fn update(m: &mut FirmwareModel, gpa: u64, t: PageType, bytes: &mut [u8]) {
    m.launch_update(&mut LaunchUpdate::with_source(gpa, t, bytes).unwrap())
        .unwrap();
}

/// The §4.3 sequence through the trait.
fn run_vector(m: &mut FirmwareModel) {
    let mut normal: Vec<u8> = (0..4096).map(|i| (i % 251) as u8).collect();
    let mut zeros = [vec![0u8; 4096], vec![0u8; 4096], vec![0u8; 4096]];
    let mut vmsa = vmsa_page(0, 1);
    update(m, 0x100000, PageType::Normal, &mut normal);
    update(m, 0x101000, PageType::Unmeasured, &mut zeros[0]);
    update(m, 0x102000, PageType::Secrets, &mut zeros[1]);
    // An empty CPUID table (count 0) is valid.
    update(m, 0x103000, PageType::Cpuid, &mut zeros[2]);
    update(m, 0x104000, PageType::Vmsa, &mut vmsa);
}

#[test]
fn notes_vector_with_vmsa_page() {
    let mut m = started(ModelConfig::default());
    run_vector(&mut m);
    assert_eq!(hex(&m.launch_digest()), VECTOR_4_3);
    assert_eq!(m.launch_update_calls(), 5);
    assert_eq!(m.update_ioctls(), 5);
    let types: Vec<PageType> = m.measured().iter().map(|r| r.page_type).collect();
    assert_eq!(
        types,
        [
            PageType::Normal,
            PageType::Unmeasured,
            PageType::Secrets,
            PageType::Cpuid,
            PageType::Vmsa
        ]
    );
}

#[test]
fn notes_vector_survives_partial_progress() {
    let mut m = started(ModelConfig {
        max_pages_per_call: Some(1),
        transient_failures: 3,
        ..ModelConfig::default()
    });
    run_vector(&mut m);
    assert_eq!(hex(&m.launch_digest()), VECTOR_4_3);
}

#[test]
fn single_page_vectors() {
    // Notes §4.3: ZERO page at GPA 0, and NORMAL all-zero page at GPA 0.
    let mut m = started(ModelConfig::default());
    m.launch_update(&mut LaunchUpdate::zero(0, 1).unwrap())
        .unwrap();
    assert_eq!(
        hex(&m.launch_digest()),
        "70c0ecaab9608f14ebf8ac6f0f07bcd8728f4e2ab30382b539b4de4de904ca9f\
         8ebdf4b2cd3cd84dd996bd55dd794676"
    );
    let mut m = started(ModelConfig::default());
    update(&mut m, 0, PageType::Normal, &mut [0u8; 4096]);
    assert_eq!(
        hex(&m.launch_digest()),
        "9d13634b6014bb21cf059b2dc694e7bff01a8a7137041100cd2b695f3d10fb68\
         7267b97808b27f8f471d943bc6f53a20"
    );
}

#[test]
fn multi_page_ranges_match_digest_chain() {
    let mut m = started(ModelConfig {
        max_pages_per_call: Some(3),
        ..ModelConfig::default()
    });
    let mut data: Vec<u8> = (0..8 * 4096).map(|i| (i * 7 % 256) as u8).collect();
    let mut expect = DigestChain::new();
    for (i, page) in data.chunks(4096).enumerate() {
        expect.update(
            PageType::Normal,
            0x200000 + i as u64 * 4096,
            &page_hash(page),
        );
    }
    for i in 0..5u64 {
        expect.update(PageType::Zero, 0x300000 + i * 4096, &[0; 48]);
    }
    update(&mut m, 0x200000, PageType::Normal, &mut data);
    m.launch_update(&mut LaunchUpdate::zero(0x300000, 5).unwrap())
        .unwrap();
    assert_eq!(m.launch_digest(), expect.digest());
}

/// A vCPU at `rip` whose KVM VMSA is [`vmsa_page`]`(0, 1)` apart from RIP:
/// CR0 0x60000010 (CD and NW cleared in the VMCB), EFER 0 (SVME added),
/// CR4 0 (MCE added), RFLAGS 2, XCR0 1, all else 0.
fn snapshot(rip: u64) -> VcpuSnapshot {
    VcpuSnapshot {
        regs: kvm_regs {
            rip,
            rflags: 2,
            ..Default::default()
        },
        sregs: kvm_sregs {
            cr0: 0x6000_0010,
            ..Default::default()
        },
        xcr0: 1,
        ..Default::default()
    }
}

#[test]
fn kvm_built_vmsas_are_measured_at_finish_before_the_id_block_check() {
    let mut m = started(ModelConfig {
        vmsa_page_type: false,
        ..ModelConfig::default()
    });
    update(&mut m, 0x100000, PageType::Normal, &mut [5u8; 4096]);
    let bsp = vmsa_page(0, 1);
    let mut ap = vmsa_page(0, 1);
    ap[0x178] = 0x42;
    let mut expect = DigestChain::new();
    expect.update(PageType::Normal, 0x100000, &page_hash(&[5u8; 4096]));
    expect.update(PageType::Vmsa, KVM_INITIAL_VMSA_GPA, &page_hash(&bsp));
    expect.update(PageType::Vmsa, KVM_INITIAL_VMSA_GPA, &page_hash(&ap));
    m.set_kvm_vcpus(vec![snapshot(0xfff0), snapshot(0xff42)]);
    assert!(m.kvm_vmsas().is_empty());

    let mut block = IdBlock::new_zeroed();
    block.ld = expect.digest().0;
    block.policy = POLICY;
    let auth = igvm_snp_test_support::signed_id_auth(&block);
    m.launch_finish(&LaunchFinishInput {
        id: Some(IdInput {
            block: &block,
            auth: &auth,
            author_key_enabled: false,
        }),
        vcek_disabled: false,
        host_data: [0; 32],
    })
    .unwrap();
    assert_eq!(m.launch_digest(), expect.digest());
    let built: Vec<u64> = m.kvm_vmsas().iter().map(|v| v.rip).collect();
    assert_eq!(built, [0xfff0, 0xff42]);
}

/// KVM refuses LAUNCH_FINISH when it cannot build a vCPU's VMSA; the model
/// names the vCPU and measures nothing.
#[test]
fn a_vcpu_kvm_cannot_build_a_vmsa_for_fails_launch_finish() {
    let mut m = started(ModelConfig {
        vmsa_page_type: false,
        ..ModelConfig::default()
    });
    let before = m.launch_digest();
    let mut bad = snapshot(0xfff0);
    bad.debug.dr7 = 0x402;
    m.set_kvm_vcpus(vec![snapshot(0xfff0), bad]);
    let err = m
        .launch_finish(&LaunchFinishInput {
            id: None,
            vcek_disabled: false,
            host_data: [0; 32],
        })
        .unwrap_err();
    assert_eq!(
        rejection(&err),
        ModelRejection::KvmVmsaRefused {
            vcpu: 1,
            refused: SyncRefused::Dr7 { dr7: 0x402 }
        }
    );
    assert!(err.to_string().contains("vCPU 1"), "{err}");
    assert_eq!(m.launch_digest(), before);
}

#[test]
fn demo_plan_digest_matches_the_plan() {
    use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, PlanOptions};
    let bytes = igvm_snp::demo::demo_igvm();
    let config = LaunchConfig::new(1, vec![GpaRange::new(0, 64 << 20)]);
    let plan = LaunchPlan::new(&bytes, &config, PlanOptions::default()).unwrap();

    let mut m = FirmwareModel::default();
    m.init2(plan.init2_vmsa_features()).unwrap();
    for step in plan.steps() {
        m.set_private(step.gpa, step.pages * 4096).unwrap();
    }
    m.launch_start(&LaunchStartInput::new(plan.policy().unwrap()))
        .unwrap();
    for step in plan.steps() {
        let mut buf = vec![0u8; usize::try_from(step.pages).unwrap() * 4096];
        for (i, (_, page)) in plan.step_pages(step).enumerate() {
            page.write_to(&mut buf[i * 4096..(i + 1) * 4096]);
        }
        let mut u = if step.page_type == PageType::Zero {
            LaunchUpdate::zero(step.gpa, step.pages).unwrap()
        } else {
            LaunchUpdate::with_source(step.gpa, step.page_type, &mut buf).unwrap()
        };
        m.launch_update(&mut u).unwrap();
    }
    let finish = plan.finish();
    m.launch_finish(&LaunchFinishInput::from_plan(finish).unwrap())
        .unwrap();
    assert_eq!(m.launch_digest(), plan.launch_digest());
    assert_eq!(m.launch_update_calls(), plan.steps().len() as u64);
}

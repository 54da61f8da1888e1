//! The VMSA fallback against the model of KVM's own VMSAs.
//!
//! On kernels without `KVM_SEV_SNP_PAGE_TYPE_VMSA` the backend loads the
//! file's VMSA into vCPU 0 (`vmsa_regs::apply`), and at SNP_LAUNCH_FINISH
//! KVM builds the measured VMSA from that vCPU's state (`sev_es_sync_vmsa()`
//! in arch/x86/kvm/svm/sev.c). `igvm_snp::kvm_legacy::boot_vmsa` predicts
//! that page from the file alone. Here each test VMSA is applied to vCPU 0
//! of a plain VM on the real `/dev/kvm`, read back
//! (`vmsa_sync::VcpuSnapshot::read`), rebuilt as the page KVM would
//! measure (`vmsa_sync::sync_vmsa`, what the firmware model measures), and
//! compared with the prediction field by field and byte by byte.
//!
//! This checks the prediction against plain KVM; it is not hardware
//! verification. No SEV-SNP command runs here, and this host's KVM is not
//! kvm_amd, so what the SVM code does inside its setters is applied by
//! `sync_vmsa` from the kernel source (see `vmsa_sync`).
//!
//! Needs /dev/kvm: skipped with a note without it, failing instead when
//! IGVM_SNP_REQUIRE_KVM=1.

use igvm_snp_test_support as common;

use common::{flat_vmsa, seg};
use igvm::snp_defs::{SevFeatures, SevVmsa, SevXmmRegister};
use igvm_snp::kvm_legacy::{
    DR7_FIXED_1, KVM_RESET_RDX, KvmLegacyInputs, boot_vmsa, boot_vmsa_refused, cpu_signature,
    differing_fields, reset_vmsa,
};
use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, PlanOptions};
use igvm_snp_kvm::kvm_check::kvm_or_skip;
use igvm_snp_kvm::vmsa_regs::{self, VcpuStateError};
use igvm_snp_kvm::vmsa_sync::{SyncRefused, VcpuSnapshot, sync_vmsa};
use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use zerocopy::{FromZeros, IntoBytes};

struct Vcpu {
    vm: VmFd,
    vcpu: VcpuFd,
    cpuid: CpuId,
}

fn vcpu(kvm: &Kvm) -> Vcpu {
    let vm = kvm.create_vm_with_type(0).unwrap();
    let vcpu = vm.create_vcpu(0).unwrap();
    let cpuid = kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).unwrap();
    Vcpu { vm, vcpu, cpuid }
}

/// Applies `file` to a fresh vCPU and reads it back, with the segments
/// written (which KVM's getters need not report unchanged; checked to agree
/// with what they do report).
fn applied(kvm: &Kvm, file: &SevVmsa) -> VcpuSnapshot {
    let v = vcpu(kvm);
    vmsa_regs::apply(&v.vm, &v.vcpu, &v.cpuid, file).unwrap();
    let read = VcpuSnapshot::read(&v.vcpu).unwrap();
    let written = vmsa_regs::sregs(file, &read.sregs);
    read.with_written_segments(&written).unwrap()
}

/// The page KVM would build from the read-back state equals the
/// prediction from the file, field by field and byte for byte.
fn check(kvm: &Kvm, name: &str, file: &SevVmsa, vmsa_features: u64) {
    let inputs = KvmLegacyInputs::new(1, vmsa_features, KVM_RESET_RDX);
    let model = boot_vmsa(file, &inputs);
    let synced = sync_vmsa(&applied(kvm, file), vmsa_features).unwrap();
    assert_eq!(
        differing_fields(&synced, &model),
        Vec::<&str>::new(),
        "{name}: read-back VMSA vs kvm_legacy::boot_vmsa"
    );
    assert!(
        synced.as_bytes() == model.as_bytes(),
        "{name}: pages differ"
    );
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

/// Writes ST(`i`) (64-bit mantissa, sign and exponent) into the VMSA's x87
/// area in KVM's layout: mantissa at `8i`, sign/exponent at `64 + 2i`.
fn set_st(v: &mut SevVmsa, i: usize, mantissa: u64, sign_exp: u16) {
    let mut area = [0u8; 80];
    area[..32].copy_from_slice(&v.x87_registers1);
    area[32..64].copy_from_slice(&v.x87_registers2);
    area[64..].copy_from_slice(&v.x87_registers3);
    area[8 * i..8 * i + 8].copy_from_slice(&mantissa.to_le_bytes());
    area[64 + 2 * i..64 + 2 * i + 2].copy_from_slice(&sign_exp.to_le_bytes());
    v.x87_registers1.copy_from_slice(&area[..32]);
    v.x87_registers2.copy_from_slice(&area[32..64]);
    v.x87_registers3.copy_from_slice(&area[64..]);
}

/// x87 values: 1.0, -2.5 and pi as (mantissa, sign and exponent).
const ONE: (u64, u16) = (0x8000_0000_0000_0000, 0x3FFF);
const MINUS_2_5: (u64, u16) = (0xA000_0000_0000_0000, 0xC000);
const PI: (u64, u16) = (0xC90F_DAA2_2168_C235, 0x4000);

/// A 64-bit VMSA: non-zero x87 registers and x87 control state, MXCSR
/// 0x1FA0, XMM and general registers, a non-default PAT, SYSCALL and
/// SYSENTER MSRs with 64-bit addresses, DR0 and a non-reset DR6.
fn long_mode() -> SevVmsa {
    let mut v = flat_vmsa(0xFFFF_8000_0010_0000, 0xA9B, 0x6000);
    v.cr0 = 0x8005_0033;
    v.cr3 = 0x2000;
    v.cr4 = 0x6A0; // PAE, PGE, OSFXSR, OSXMMEXCPT
    v.efer = 0x1D01; // SVME, NXE, LMA, LME, SCE
    v.fs.base = 0x1111_0000;
    v.gs.base = 0x2222_0000;
    v.idtr = seg(0, 0, 0xFFF, 0x7000);
    v.tr = seg(0x28, 0x89, 0x67, 0x5000);
    let gprs = [
        &mut v.rax, &mut v.rbx, &mut v.rcx, &mut v.rdx, &mut v.rsi, &mut v.rdi, &mut v.rsp,
        &mut v.rbp, &mut v.r8, &mut v.r9, &mut v.r10, &mut v.r11, &mut v.r12, &mut v.r13,
        &mut v.r14, &mut v.r15,
    ];
    for (i, r) in (1u64..).zip(gprs) {
        *r = 0xFFFF_8000_0000_0000 | (i << 40) | i;
    }
    v.rflags = 0x246;
    v.pat = 0x0007_0406_0007_0405;
    v.star = 0x0023_0010_0000_0000;
    v.lstar = 0xFFFF_8000_0000_1000;
    v.cstar = 0xFFFF_8000_0000_2000;
    v.sfmask = 0x4_7700;
    v.kernel_gs_base = 0xFFFF_8000_0000_3000;
    v.sysenter_cs = 0x10;
    v.sysenter_esp = 0xFFFF_8000_0000_9000;
    v.sysenter_eip = 0xFFFF_8000_0000_A000;
    v.xcr0 = 3;
    v.x87_fcw = 0x27F;
    v.x87_fsw = 0x3000; // TOP = 6
    v.x87_ftw = 0xC1; // ST(0), ST(6), ST(7) in use (abridged tags)
    v.x87_op = 0x1DD;
    v.x87_rip = 0xFFFF_8000_0000_4000;
    v.x87dp = 0xFFFF_8000_0000_5000;
    v.mxcsr = 0x1FA0;
    set_st(&mut v, 0, ONE.0, ONE.1);
    set_st(&mut v, 3, MINUS_2_5.0, MINUS_2_5.1);
    set_st(&mut v, 7, PI.0, PI.1);
    v.xmm_registers[5] = SevXmmRegister {
        low: 0x1122_3344_5566_7788,
        high: 0x99AA_BBCC_DDEE_FF00,
    };
    v.xmm_registers[15] = SevXmmRegister {
        low: u64::MAX,
        high: 1,
    };
    v.dr0 = 0x1234;
    v.dr6 = 0xFFFF_4FF1;
    v.dr7 = DR7_FIXED_1;
    v
}

/// A 32-bit protected-mode VMSA with CR0.CD/NW set, an attrib-0 TR and
/// LDTR, CPL 1, PAT 0 (left unset), and 32-bit SYSENTER values. Without
/// paging: this host's KVM (kvm_pvm) drops CR0.PG outside long mode
/// (observed: CR0 0x80000011 reads back as 0x11), which KVM on SVM does not.
fn protected_mode() -> SevVmsa {
    let mut v = flat_vmsa(0x10_0000, 0xC9B, 0x6000);
    v.cr0 = 0x6000_0011; // CD, NW, ET, PE
    v.cr3 = 0x3000;
    v.cr4 = 0x10; // PSE
    v.efer = 0x1000;
    v.tr = seg(0, 0, 0, 0);
    v.ldtr = seg(0, 0, 0, 0);
    v.ss.attrib = 0xCB3; // DPL 1: CPL follows SS.DPL
    v.cs.attrib = 0xCBB;
    (v.rax, v.rbx, v.rsi, v.rsp) = (0x1BADB002, 0x9500, 0x7C00, 0x9_0000);
    v.rflags = 0x2;
    v.pat = 0;
    v.sysenter_cs = 0x08;
    v.sysenter_esp = 0x8000_1000;
    v.sysenter_eip = 0xC000_2000;
    v.xcr0 = 1;
    v.x87_fcw = 0x37F;
    v.mxcsr = 0x1F80;
    v.dr6 = 0xFFFF_0FF0;
    v.dr7 = 0;
    v
}

/// A flat 32-bit VMSA whose segments KVM's getters report changed:
/// data segments without the accessed bit, a 4 GiB ES with G clear, a
/// 64 KiB FS with G set, a non-present GS that keeps its attributes, and a
/// CS without the accessed bit. KVM's VMCB (and so its VMSA) keeps them as
/// written; on kvm_amd `KVM_GET_SREGS` reports them otherwise.
fn unusual_segments() -> SevVmsa {
    let mut v = flat_vmsa(0x10_0000, 0xC9A, 0x6000);
    v.ds.attrib = 0xC92;
    v.ss.attrib = 0xC92;
    v.es.attrib = 0x493;
    v.fs = seg(0x10, 0x893, 0xFFFF, 0);
    v.gs.attrib = 0xC13;
    v
}

/// A VMSA that sets almost nothing (as in notes `igvm-snp-mapping.md` §7):
/// PAT, MXCSR, FCW, XCR0, DR6/DR7 and TR attributes all 0.
fn mostly_zero() -> SevVmsa {
    let mut v = SevVmsa::new_zeroed();
    v.cr0 = 0x31;
    v.rip = 0xFFF0;
    v.efer = 0x1000;
    v.sev_features = SevFeatures::new().with_snp(true);
    v
}

#[test]
fn demo_vmsa_from_the_plan_matches_the_model() {
    let Some(kvm) = kvm_or_skip("demo_vmsa_from_the_plan_matches_the_model") else {
        return;
    };
    let bytes = igvm_snp::demo::demo_igvm();
    let config = LaunchConfig::new(1, vec![GpaRange::new(0, 16 << 20)]);
    let plan = LaunchPlan::new(&bytes, &config, PlanOptions::default()).unwrap();
    let file = &plan.vmsa().vmsa;
    // What only the SVM setters change: the plain vCPU has no SVME in EFER
    // and no MCE in CR4.
    let rb = applied(&kvm, file);
    assert_eq!((rb.sregs.efer, rb.sregs.cr4), (0, 0));
    check(&kvm, "demo", file, plan.init2_vmsa_features());
}

#[test]
fn long_mode_vmsa_with_x87_state_matches_the_model() {
    let Some(kvm) = kvm_or_skip("long_mode_vmsa_with_x87_state_matches_the_model") else {
        return;
    };
    let file = long_mode();
    let rb = applied(&kvm, &file);
    // The x87 registers reach KVM's FXSAVE slots as the values written
    // above, and MXCSR and FTW as given.
    let x = &rb.fpu.legacy;
    let st = |i: usize| {
        let slot = &x[32 + 16 * i..48 + 16 * i];
        (u64_at(slot, 0), u16_at(slot, 8))
    };
    assert_eq!((st(0), st(3), st(7)), (ONE, MINUS_2_5, PI));
    assert_eq!(st(1), (0, 0));
    assert_eq!(u32_at(x, 24), 0x1FA0);
    assert_eq!(u16_at(x, 4), 0xC1);
    // KVM's generic code keeps all 64 bits of SYSENTER_ESP; the VMCB 32.
    assert_eq!(rb.msrs.sysenter_esp, file.sysenter_esp);

    check(&kvm, "long mode", &file, 0x20);
    let model = boot_vmsa(&file, &KvmLegacyInputs::new(1, 0x20, KVM_RESET_RDX));
    assert_eq!(
        (
            model.x87_registers1,
            model.x87_registers2,
            model.x87_registers3
        ),
        (
            file.x87_registers1,
            file.x87_registers2,
            file.x87_registers3
        )
    );
    assert_eq!(
        (model.mxcsr, model.dr0, model.dr6),
        (0x1FA0, 0, 0xFFFF_4FF1)
    );
}

#[test]
fn protected_mode_vmsa_matches_the_model() {
    let Some(kvm) = kvm_or_skip("protected_mode_vmsa_matches_the_model") else {
        return;
    };
    let file = protected_mode();
    let rb = applied(&kvm, &file);
    // PAT 0 is not written: the vCPU keeps its reset PAT. CD and NW stay
    // set outside the VMCB.
    assert_eq!(rb.msrs.pat, 0x0007_0406_0007_0406);
    assert_eq!(rb.sregs.cr0, file.cr0);
    check(&kvm, "protected mode", &file, 0);
    let model = boot_vmsa(&file, &KvmLegacyInputs::new(1, 0, KVM_RESET_RDX));
    assert_eq!(
        (model.cpl, model.tr.attrib, model.ldtr.attrib),
        (1, 0x8B, 0)
    );
}

#[test]
fn unusual_segment_attributes_match_the_model() {
    let Some(kvm) = kvm_or_skip("unusual_segment_attributes_match_the_model") else {
        return;
    };
    let file = unusual_segments();
    check(&kvm, "unusual segments", &file, 0);
    let model = boot_vmsa(&file, &KvmLegacyInputs::new(1, 0, KVM_RESET_RDX));
    assert_eq!(
        [model.cs, model.ds, model.es, model.fs, model.gs].map(|s| s.attrib),
        [0xC9A, 0xC92, 0x493, 0x893, 0xC13]
    );
}

#[test]
fn mostly_zero_vmsa_matches_the_model() {
    let Some(kvm) = kvm_or_skip("mostly_zero_vmsa_matches_the_model") else {
        return;
    };
    let file = mostly_zero();
    check(&kvm, "mostly zero", &file, 0);
    let model = boot_vmsa(&file, &KvmLegacyInputs::new(1, 0, KVM_RESET_RDX));
    assert_eq!(
        (model.pat, model.mxcsr, model.x87_fcw, model.xcr0),
        (0x0007_0406_0007_0406, 0, 0, 1)
    );
}

#[test]
fn dr7_kvm_refuses_is_refused_by_the_model_too() {
    let Some(kvm) = kvm_or_skip("dr7_kvm_refuses_is_refused_by_the_model_too") else {
        return;
    };
    let mut file = long_mode();
    file.dr7 = 0x401;
    assert_eq!(
        sync_vmsa(&applied(&kvm, &file), 0),
        Err(SyncRefused::Dr7 { dr7: 0x401 })
    );
    assert!(boot_vmsa_refused(&file).is_some());
    file.dr7 = 0;
    assert!(sync_vmsa(&applied(&kvm, &file), 0).is_ok());
    assert!(boot_vmsa_refused(&file).is_none());
}

#[test]
fn mxcsr_kvm_refuses_names_the_ioctl() {
    let Some(kvm) = kvm_or_skip("mxcsr_kvm_refuses_names_the_ioctl") else {
        return;
    };
    let mut file = long_mode();
    file.mxcsr = 0xFFFF_FFFF; // reserved bits set
    let v = vcpu(&kvm);
    match vmsa_regs::apply(&v.vm, &v.vcpu, &v.cpuid, &file) {
        Err(VcpuStateError::Ioctl { ioctl, .. }) => assert_eq!(ioctl, "KVM_SET_XSAVE"),
        other => panic!("unexpected {other:?}"),
    }
}

/// The APs: a vCPU at KVM's reset state, given the CPUID table, the reset
/// segments and RDX = the CPU signature as the executor does, rebuilt as
/// KVM's VMSA, equals `kvm_legacy::reset_vmsa` (the sev-snp-measure
/// vector's model). The vCPU's segments start as AMD's `init_vmcb()`
/// leaves them (CS 0x9A, data 0x92, TR 0x83; this host's KVM may start
/// elsewhere), so the test holds only if `set_ap_reset_segments` sets them.
#[test]
fn ap_reset_state_matches_the_reset_model() {
    let Some(kvm) = kvm_or_skip("ap_reset_state_matches_the_reset_model") else {
        return;
    };
    let sig = cpu_signature(0x19, 1, 1);
    let v = vcpu(&kvm);
    v.vcpu.set_cpuid2(&v.cpuid).unwrap();
    let mut svm = v.vcpu.get_sregs().unwrap();
    for s in [
        &mut svm.ds,
        &mut svm.es,
        &mut svm.fs,
        &mut svm.gs,
        &mut svm.ss,
    ] {
        s.type_ = 2;
        // A base too, which no getter changes: kvm_amd would report the
        // accessed bit set whether or not the reset segments were written.
        s.base = 0x1000;
    }
    svm.cs.type_ = 0xA;
    svm.tr.type_ = 3;
    v.vcpu.set_sregs(&svm).unwrap();
    vmsa_regs::set_ap_reset_segments(&v.vcpu).unwrap();
    let mut regs = v.vcpu.get_regs().unwrap();
    assert_eq!(regs.rdx, u64::from(KVM_RESET_RDX));
    regs.rdx = u64::from(sig);
    v.vcpu.set_regs(&regs).unwrap();
    let rb = VcpuSnapshot::read(&v.vcpu).unwrap();
    let written = vmsa_regs::ap_reset_sregs(&rb.sregs);
    let rb = rb.with_written_segments(&written).unwrap();
    // CD and NW are set at reset; only the VMCB clears them.
    assert_eq!(rb.sregs.cr0, 0x6000_0010);
    let synced = sync_vmsa(&rb, 0).unwrap();
    let model = reset_vmsa(&KvmLegacyInputs::new(2, 0, sig));
    assert_eq!(differing_fields(&synced, &model), Vec::<&str>::new());
    assert!(synced.as_bytes() == model.as_bytes());
}

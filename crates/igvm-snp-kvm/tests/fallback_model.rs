//! The VMSA fallback against the model of KVM's own VMSAs.
//!
//! On kernels without `KVM_SEV_SNP_PAGE_TYPE_VMSA` the backend loads the
//! file's VMSA into vCPU 0 (`vmsa_regs::apply`), and at SNP_LAUNCH_FINISH
//! KVM builds the measured VMSA from that vCPU's state (`sev_es_sync_vmsa()`
//! in arch/x86/kvm/svm/sev.c). `igvm_snp::kvm_legacy::boot_vmsa` predicts
//! that page. Here each test VMSA is applied to vCPU 0 of a plain VM on the
//! real `/dev/kvm`, the state is read back (KVM_GET_REGS, _SREGS, _XSAVE,
//! _XCRS, _MSRS, _DEBUGREGS), the page KVM would build is rebuilt from the
//! read-back state by this file's own mapping of `sev_es_sync_vmsa()`'s
//! field list ([`synced_vmsa`]), and the result is compared with the model
//! field by field and byte by byte.
//!
//! This checks the model against plain KVM; it is not hardware
//! verification. No SEV-SNP command runs here, and this host's KVM is not
//! kvm_amd, so what the SVM code does inside its setters cannot be read
//! back and is applied from the kernel source instead ([`svm_adjustments`],
//! each one tested to be needed and sufficient):
//! * EFER.SVME set (`svm_set_efer`);
//! * CR0.CD and CR0.NW cleared in the VMCB (`svm_set_cr0`,
//!   `KVM_X86_QUIRK_CD_NW_CLEARED`);
//! * CR4.MCE ORed in from the host (`svm_set_cr4`; assumed set, as on
//!   SEV-SNP hosts);
//! * SYSENTER_ESP/EIP kept as 32 bits in the VMCB (`svm_set_msr`);
//! * SEV_FEATURES from KVM_SEV_INIT2's `vmsa_features` and SNPActive.
//!
//! Needs /dev/kvm: skipped with a note without it, failing instead when
//! IGVM_SNP_REQUIRE_KVM=1.

mod common;

use common::{flat_vmsa, seg};
use igvm::snp_defs::{SevFeatures, SevSelector, SevVmsa, SevXmmRegister};
use igvm_snp::kvm_legacy::{
    DR7_FIXED_1, KVM_RESET_RDX, KvmLegacyInputs, boot_vmsa, boot_vmsa_refused, cpu_signature,
    differing_fields, reset_vmsa,
};
use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, PlanOptions};
use igvm_snp_kvm::kvm_check::kvm_or_skip;
use igvm_snp_kvm::vmsa_regs::{self, VcpuStateError};
use kvm_bindings::{
    CpuId, KVM_MAX_CPUID_ENTRIES, Msrs, kvm_debugregs, kvm_msr_entry, kvm_regs, kvm_segment,
    kvm_sregs,
};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use zerocopy::{FromZeros, IntoBytes};

// ----- reading the vCPU back --------------------------------------------

/// The MSRs read back: PAT, STAR, LSTAR, CSTAR, SFMASK, KERNEL_GS_BASE,
/// SYSENTER_CS/ESP/EIP, XSS.
const READ_MSRS: [u32; 10] = [
    0x277,
    0xC000_0081,
    0xC000_0082,
    0xC000_0083,
    0xC000_0084,
    0xC000_0102,
    0x174,
    0x175,
    0x176,
    0xDA0,
];

/// vCPU state as KVM reports it after `apply`.
struct ReadBack {
    regs: kvm_regs,
    sregs: kvm_sregs,
    /// The 4096-byte `kvm_xsave` region (standard XSAVE layout).
    xsave: Vec<u8>,
    xcr0: u64,
    /// Values in the order of [`READ_MSRS`].
    msrs: [u64; 10],
    debug: kvm_debugregs,
    /// Offset of PKRU in the XSAVE region (CPUID 0xD.9 EBX), if supported.
    pkru_offset: Option<usize>,
}

fn read_back(vcpu: &VcpuFd, cpuid: &CpuId) -> ReadBack {
    let xsave = vcpu.get_xsave().unwrap();
    let xsave: Vec<u8> = xsave.region.iter().flat_map(|w| w.to_le_bytes()).collect();
    let xcrs = vcpu.get_xcrs().unwrap();
    let xcr0 = xcrs.xcrs[..xcrs.nr_xcrs as usize]
        .iter()
        .find(|x| x.xcr == 0)
        .expect("KVM_GET_XCRS reports XCR0")
        .value;
    let entries: Vec<kvm_msr_entry> = READ_MSRS
        .iter()
        .map(|&index| kvm_msr_entry {
            index,
            ..Default::default()
        })
        .collect();
    let mut list = Msrs::from_entries(&entries).unwrap();
    assert_eq!(vcpu.get_msrs(&mut list).unwrap(), READ_MSRS.len());
    let mut msrs = [0u64; 10];
    for (out, e) in msrs.iter_mut().zip(list.as_slice()) {
        *out = e.data;
    }
    let pkru_offset = cpuid
        .as_slice()
        .iter()
        .find(|e| e.function == 0xD && e.index == 9 && e.eax != 0)
        .map(|e| e.ebx as usize);
    ReadBack {
        regs: vcpu.get_regs().unwrap(),
        sregs: vcpu.get_sregs().unwrap(),
        xsave,
        xcr0,
        msrs,
        debug: vcpu.get_debug_regs().unwrap(),
        pkru_offset,
    }
}

// ----- sev_es_sync_vmsa(), from the read-back state -----------------------

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

/// `svm_set_segment()`: the VMCB's 12-bit attribute from a `kvm_segment`
/// (P only when present and usable).
fn vmcb_segment(s: &kvm_segment) -> SevSelector {
    let present = s.present & 1 == 1 && s.unusable == 0;
    let attrib = u16::from(s.type_ & 0xF)
        | (u16::from(s.s & 1) << 4)
        | (u16::from(s.dpl & 3) << 5)
        | (u16::from(present) << 7)
        | (u16::from(s.avl & 1) << 8)
        | (u16::from(s.l & 1) << 9)
        | (u16::from(s.db & 1) << 10)
        | (u16::from(s.g & 1) << 11);
    SevSelector {
        selector: s.selector,
        attrib,
        limit: s.limit,
        base: s.base,
    }
}

fn xmm_block(b: &[u8]) -> [SevXmmRegister; 16] {
    let mut out = [SevXmmRegister { low: 0, high: 0 }; 16];
    for (reg, src) in out.iter_mut().zip(b.chunks_exact(16)) {
        reg.low = u64_at(src, 0);
        reg.high = u64_at(src, 8);
    }
    out
}

/// The page `sev_es_sync_vmsa()` builds from this state, before the SVM
/// setters' own adjustments ([`svm_adjustments`]): the VMCB save area
/// (segments, descriptor tables, CPL, EFER, CR0/3/4, DR7, RFLAGS, the
/// syscall/sysenter MSRs, G_PAT), then RAX–R15 and RIP, XCR0, PKRU, XSS,
/// DR6, and for SNP VMs the x87/SSE/AVX state from the guest FPU. CR2 (only
/// put in the VMCB at VMRUN), DR0–DR3 (not in the VMCB) and everything
/// else stay 0. `Err` when KVM refuses: DR7 with a bit other than 0x400.
fn synced_vmsa(rb: &ReadBack) -> Result<SevVmsa, String> {
    if rb.debug.dr7 & !DR7_FIXED_1 != 0 {
        return Err(format!("DR7 {:#x}", rb.debug.dr7));
    }
    let s = &rb.sregs;
    let mut v = SevVmsa::new_zeroed();
    v.es = vmcb_segment(&s.es);
    v.cs = vmcb_segment(&s.cs);
    v.ss = vmcb_segment(&s.ss);
    v.ds = vmcb_segment(&s.ds);
    v.fs = vmcb_segment(&s.fs);
    v.gs = vmcb_segment(&s.gs);
    v.ldtr = vmcb_segment(&s.ldt);
    v.tr = vmcb_segment(&s.tr);
    // svm_set_gdt/idt: base and limit; selector and attributes stay 0.
    v.gdtr = seg(0, 0, u32::from(s.gdt.limit), s.gdt.base);
    v.idtr = seg(0, 0, u32::from(s.idt.limit), s.idt.base);
    v.cpl = s.ss.dpl & 3;
    v.efer = s.efer;
    v.cr0 = s.cr0;
    v.cr3 = s.cr3;
    v.cr4 = s.cr4;
    v.dr7 = rb.debug.dr7;
    v.rflags = rb.regs.rflags;
    let m = &rb.msrs;
    (v.pat, v.star, v.lstar, v.cstar, v.sfmask) = (m[0], m[1], m[2], m[3], m[4]);
    (v.kernel_gs_base, v.sysenter_cs) = (m[5], m[6]);
    (v.sysenter_esp, v.sysenter_eip) = (m[7], m[8]);

    let r = &rb.regs;
    (v.rax, v.rbx, v.rcx, v.rdx) = (r.rax, r.rbx, r.rcx, r.rdx);
    (v.rsp, v.rbp, v.rsi, v.rdi) = (r.rsp, r.rbp, r.rsi, r.rdi);
    (v.r8, v.r9, v.r10, v.r11) = (r.r8, r.r9, r.r10, r.r11);
    (v.r12, v.r13, v.r14, v.r15) = (r.r12, r.r13, r.r14, r.r15);
    v.rip = r.rip;

    let x = &rb.xsave;
    let xstate_bv = u64_at(x, 512);
    v.xcr0 = rb.xcr0;
    v.xss = m[9];
    v.dr6 = rb.debug.dr6;

    // FXSAVE layout: FCW 0, FSW 2, FTW 4 (16 bits), FOP 6, FIP 8, FDP 16,
    // MXCSR 24, ST0–7 at 32 (16 bytes each), XMM0–15 at 160.
    v.x87dp = u64_at(x, 16);
    v.mxcsr = u32_at(x, 24);
    v.x87_ftw = u16_at(x, 4);
    v.x87_fsw = u16_at(x, 2);
    v.x87_fcw = u16_at(x, 0);
    v.x87_op = u16_at(x, 6);
    v.x87_rip = u64_at(x, 8);
    // Bytes 0–7 of each register first, then bytes 8–9 of each.
    let mut fpreg = [0u8; 80];
    for (i, st) in x[32..160].chunks_exact(16).enumerate() {
        fpreg[8 * i..8 * i + 8].copy_from_slice(&st[..8]);
        fpreg[64 + 2 * i..64 + 2 * i + 2].copy_from_slice(&st[8..10]);
    }
    v.x87_registers1.copy_from_slice(&fpreg[..32]);
    v.x87_registers2.copy_from_slice(&fpreg[32..64]);
    v.x87_registers3.copy_from_slice(&fpreg[64..]);
    v.xmm_registers = xmm_block(&x[160..416]);
    // get_xsave_addr() is NULL for a component in its initial state.
    if xstate_bv & (1 << 2) != 0 {
        v.ymm_registers = xmm_block(&x[576..832]);
    }
    if let Some(off) = rb.pkru_offset.filter(|_| xstate_bv & (1 << 9) != 0) {
        // sev_es_sync_vmsa() copies arch.pkru, which KVM_GET_XSAVE reports
        // in the PKRU component (0 when the component is in its initial
        // state, as after `apply`). igvm's SevVmsa has no named PKRU field
        // and the model predicts 0, so a nonzero PKRU fails here.
        assert_eq!(u32_at(x, off), 0, "PKRU");
    }
    Ok(v)
}

/// The VMSA fields [`svm_adjustments`] changes.
const SVM_ADJUSTED: [&str; 6] = [
    "efer",
    "cr4",
    "cr0",
    "sysenter_esp",
    "sysenter_eip",
    "sev_features",
];

/// What KVM's SVM setters do that a plain VM's read-back cannot show (see
/// the module docs).
fn svm_adjustments(v: &mut SevVmsa, vmsa_features: u64) {
    v.efer |= 1 << 12;
    v.cr0 &= !((1 << 30) | (1 << 29));
    v.cr4 |= 1 << 6;
    v.sysenter_esp &= 0xFFFF_FFFF;
    v.sysenter_eip &= 0xFFFF_FFFF;
    v.sev_features = SevFeatures::from_bits(vmsa_features | 1);
}

// ----- the check ----------------------------------------------------------

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

/// Applies `file` to a fresh vCPU and reads it back.
fn applied(kvm: &Kvm, file: &SevVmsa) -> ReadBack {
    let v = vcpu(kvm);
    vmsa_regs::apply(&v.vm, &v.vcpu, &v.cpuid, file).unwrap();
    read_back(&v.vcpu, &v.cpuid)
}

/// The fields where the read-back page differs from the model before the
/// SVM adjustments; after them the two must be equal byte for byte.
fn check(kvm: &Kvm, name: &str, file: &SevVmsa, vmsa_features: u64) -> Vec<&'static str> {
    let inputs = KvmLegacyInputs::new(1, vmsa_features, KVM_RESET_RDX);
    let model = boot_vmsa(file, &inputs);
    let plain = synced_vmsa(&applied(kvm, file)).unwrap();
    let before = differing_fields(&plain, &model);
    let mut adjusted = plain;
    svm_adjustments(&mut adjusted, vmsa_features);
    assert_eq!(
        differing_fields(&adjusted, &model),
        Vec::<&str>::new(),
        "{name}: fallback read-back vs kvm_legacy::boot_vmsa"
    );
    assert!(
        adjusted.as_bytes() == model.as_bytes(),
        "{name}: pages differ"
    );
    for f in &before {
        assert!(SVM_ADJUSTED.contains(f), "{name}: {f} differs before SVM");
    }
    before
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
    let before = check(&kvm, "demo", &plan.vmsa().vmsa, plan.init2_vmsa_features());
    // Real mode, CR0 0x30 → KVM leaves it (ET|NE); CR4 0 gets MCE.
    assert_eq!(before, ["efer", "cr4", "sev_features"]);
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
    let st = |i: usize| {
        let slot = &rb.xsave[32 + 16 * i..48 + 16 * i];
        (u64_at(slot, 0), u16_at(slot, 8))
    };
    assert_eq!((st(0), st(3), st(7)), (ONE, MINUS_2_5, PI));
    assert_eq!(st(1), (0, 0));
    assert_eq!(u32_at(&rb.xsave, 24), 0x1FA0);
    assert_eq!(u16_at(&rb.xsave, 4), 0xC1);

    let before = check(&kvm, "long mode", &file, 0x20);
    assert_eq!(
        before,
        [
            "efer",
            "cr4",
            "sysenter_esp",
            "sysenter_eip",
            "sev_features"
        ]
    );
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
    // PAT 0 is not written: the vCPU keeps its reset PAT.
    assert_eq!(rb.msrs[0], 0x0007_0406_0007_0406);
    let before = check(&kvm, "protected mode", &file, 0);
    assert_eq!(before, ["efer", "cr4", "cr0", "sev_features"]);
    let model = boot_vmsa(&file, &KvmLegacyInputs::new(1, 0, KVM_RESET_RDX));
    assert_eq!(
        (model.cpl, model.tr.attrib, model.ldtr.attrib),
        (1, 0x8B, 0)
    );
}

#[test]
fn mostly_zero_vmsa_matches_the_model() {
    let Some(kvm) = kvm_or_skip("mostly_zero_vmsa_matches_the_model") else {
        return;
    };
    let file = mostly_zero();
    let before = check(&kvm, "mostly zero", &file, 0);
    assert_eq!(before, ["efer", "cr4", "sev_features"]);
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
    assert!(synced_vmsa(&applied(&kvm, &file)).is_err());
    assert!(boot_vmsa_refused(&file).is_some());
    file.dr7 = 0;
    assert!(synced_vmsa(&applied(&kvm, &file)).is_ok());
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

/// The APs: a vCPU left at KVM's reset state, given the CPUID table and
/// RDX = the CPU signature as the executor does, rebuilt as KVM's VMSA,
/// equals `kvm_legacy::reset_vmsa` (the sev-snp-measure vector's model).
#[test]
fn ap_reset_state_matches_the_reset_model() {
    let Some(kvm) = kvm_or_skip("ap_reset_state_matches_the_reset_model") else {
        return;
    };
    let sig = cpu_signature(0x19, 1, 1);
    let v = vcpu(&kvm);
    v.vcpu.set_cpuid2(&v.cpuid).unwrap();
    let mut regs = v.vcpu.get_regs().unwrap();
    assert_eq!(regs.rdx, u64::from(KVM_RESET_RDX));
    regs.rdx = u64::from(sig);
    v.vcpu.set_regs(&regs).unwrap();
    let mut plain = synced_vmsa(&read_back(&v.vcpu, &v.cpuid)).unwrap();
    let model = reset_vmsa(&KvmLegacyInputs::new(2, 0, sig));
    assert_eq!(
        differing_fields(&plain, &model),
        ["efer", "cr4", "cr0", "sev_features"]
    );
    svm_adjustments(&mut plain, 0);
    assert_eq!(differing_fields(&plain, &model), Vec::<&str>::new());
    assert!(plain.as_bytes() == model.as_bytes());
}

//! A model of the VMSAs today's upstream KVM measures at SNP_LAUNCH_FINISH.
//!
//! Kernels without the proposed `KVM_SEV_SNP_PAGE_TYPE_VMSA` take no VMSA
//! from userspace. At SNP_LAUNCH_FINISH, `snp_launch_update_vmsa()` runs
//! `sev_es_sync_vmsa()` for every vCPU in vCPU-index order and measures each
//! resulting page as a VMSA at `INITIAL_VMSA_GPA = 0xFFFFFFFFF000`, after
//! every page the VMM launched (notes `kvm-snp-uapi.md` §1.7, §4.7). What
//! each page holds is the vCPU state the VMM set, as KVM stores and adjusts
//! it. This module predicts those pages:
//!
//! * vCPU 0 (boot CPU): the file's VMSA as the backend's fallback loads it
//!   (`igvm-snp-kvm` `vmsa_regs`: `KVM_SET_SREGS`, `KVM_SET_REGS`,
//!   `KVM_SET_XSAVE`, `KVM_SET_XCRS`, `KVM_SET_MSRS`, `KVM_SET_DEBUGREGS`),
//!   then what KVM keeps of it. [`boot_vmsa`] documents every field.
//! * other vCPUs: the x86 reset state as QEMU writes it, RDX set to the CPU
//!   signature ([`reset_vmsa`], notes §4.6). KVM's own state for a vCPU it
//!   just created differs on AMD (segment types without the accessed bit),
//!   so the backend sets the APs' segments (`igvm-snp-kvm`
//!   `vmsa_regs::set_ap_reset_segments`), as QEMU does at every reset.
//!
//! This is a **model** built from reading KVM's source (`arch/x86/kvm/svm/
//! sev.c` `sev_es_sync_vmsa`, `svm.c` `svm_set_segment`/`svm_set_cr0`/
//! `svm_set_cr4`/`svm_set_efer`/`svm_set_msr`/`sev_post_set_cr3`, `x86.c`
//! `kvm_arch_vcpu_ioctl_set_fpu`, `kvm_vcpu_reset`). The reset VMSA
//! reproduces the published sev-snp-measure vector (QEMU EPYC-Milan,
//! `728af287…`, notes §4.6; the field values also agree with
//! virtee/sev-snp-measure `vmsa.py`, whose older revisions lack MXCSR and
//! FCW, as KVM before 6.10 did: the x87/SSE sync into the VMSA came with
//! the 6.10 pull, for the new VM types that KVM_X86_SNP_VM is one of);
//! `tests/profiles.rs` rebuilds both VMSAs
//! byte by byte from the notes' table, independently of this module. The
//! boot VMSA rules have not been checked against a real SEV-SNP launch.
//! Nothing here is verified on hardware.
//!
//! For the prediction to hold, the fallback that loads the boot VMSA must:
//!
//! * run KVM_SEV_INIT2 with [`KvmLegacyInputs::vmsa_features`];
//! * not write a zero PAT (KVM keeps a written 0; the model assumes the
//!   reset value, as for any VMSA that leaves PAT unset);
//! * load MXCSR through `KVM_SET_XSAVE` (`KVM_SET_FPU` ignores
//!   `kvm_fpu.mxcsr`), so the file's MXCSR, 0 included, is what KVM
//!   measures;
//! * decode the VMSA's x87 registers in KVM's layout (bytes 0–7 of each
//!   register, then bytes 8–9 of each) rather than as packed 10-byte
//!   registers, so they round-trip unchanged;
//! * write RDX = [`KvmLegacyInputs::cpu_signature`] into every AP, as QEMU
//!   does, or leave KVM's reset value and pass [`KVM_RESET_RDX`].
//!
//! Fields KVM does not take from the vCPU state (CR2, which reaches the
//! VMCB only at VMRUN; DR0–DR3; exit information) and fields it does take
//! but the fallback does not set (XSS, PKRU and the YMM upper halves, which
//! `sev_es_sync_vmsa()` copies from `ia32_xss`, `pkru` and the guest FPU;
//! CET, DBGCTL/LBR, SPEC_CTRL) are 0 in the prediction; a file VMSA that
//! sets them differs, and `profile::check` lists such fields.

use igvm::snp_defs::{SevFeatures, SevSelector, SevVmsa};
use serde::Serialize;
use sha2::{Digest, Sha384};
use zerocopy::{FromZeros, IntoBytes};

use crate::error::{Error, Result};
use crate::vmsa::SEV_FEATURE_SNP_ACTIVE;

/// The GPA KVM records for every VMSA it measures (`INITIAL_VMSA_GPA`).
pub const KVM_VMSA_GPA: u64 = 0xFFFF_FFFF_F000;
/// KVM's vCPU limit on x86 (`KVM_MAX_VCPUS`).
pub const KVM_MAX_VCPUS: u32 = 4096;
/// RDX after `kvm_vcpu_reset()` when no CPUID table is set yet (family 6).
pub const KVM_RESET_RDX: u32 = 0x600;
/// The PAT MSR at reset (`MSR_IA32_CR_PAT_DEFAULT`).
pub const PAT_DEFAULT: u64 = 0x0007_0406_0007_0406;
/// DR6 at reset (`DR6_ACTIVE_LOW`).
pub const DR6_RESET: u64 = 0xFFFF_0FF0;
/// DR7 at reset; `sev_es_sync_vmsa()` refuses any other bit (`DR7_FIXED_1`).
pub const DR7_FIXED_1: u64 = 0x400;
/// MXCSR at reset.
pub const MXCSR_RESET: u32 = 0x1F80;
/// x87 control word at reset.
pub const FCW_RESET: u16 = 0x37F;

const EFER_SVME: u64 = 1 << 12;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const CR0_PG: u64 = 1 << 31;
const CR0_CD: u64 = 1 << 30;
const CR0_NW: u64 = 1 << 29;
const CR4_MCE: u64 = 1 << 6;
const RFLAGS_FIXED: u64 = 1 << 1;

/// What the legacy measurement depends on besides the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct KvmLegacyInputs {
    /// vCPUs the VM has; KVM measures one VMSA per vCPU.
    pub vcpus: u32,
    /// `vmsa_features` given to KVM_SEV_INIT2 (without SNPActive, which KVM
    /// adds for SNP VMs).
    pub vmsa_features: u64,
    /// The CPU signature (CPUID 1 EAX) the VMM writes into RDX of the APs;
    /// see [`cpu_signature`]. [`KVM_RESET_RDX`] if the VMM leaves KVM's
    /// reset value.
    pub cpu_signature: u32,
}

impl KvmLegacyInputs {
    /// Inputs for `vcpus` vCPUs.
    pub fn new(vcpus: u32, vmsa_features: u64, cpu_signature: u32) -> Self {
        KvmLegacyInputs {
            vcpus,
            vmsa_features,
            cpu_signature,
        }
    }

    /// SEV_FEATURES of every VMSA KVM builds: `vmsa_features | SNPActive`.
    pub fn sev_features(&self) -> u64 {
        self.vmsa_features | SEV_FEATURE_SNP_ACTIVE
    }

    /// Checks the vCPU count: 1 to [`KVM_MAX_VCPUS`].
    ///
    /// # Errors
    /// [`Error::InvalidVcpuCount`].
    pub fn check(&self) -> Result<()> {
        if self.vcpus == 0 || self.vcpus > KVM_MAX_VCPUS {
            return Err(Error::InvalidVcpuCount {
                vcpus: self.vcpus,
                max: KVM_MAX_VCPUS,
            });
        }
        Ok(())
    }
}

/// The CPU signature (CPUID 1 EAX) of a family, model and stepping, with
/// the extended family and model fields: sev-snp-measure `cpu_sig` (notes
/// §4.6). EPYC-Milan (family 0x19, model 1, stepping 1) is `0xA00F11`.
///
/// ```
/// assert_eq!(igvm_snp::kvm_legacy::cpu_signature(0x19, 1, 1), 0xA00F11);
/// assert_eq!(igvm_snp::kvm_legacy::cpu_signature(0x17, 0x31, 0), 0x830F10);
/// ```
pub fn cpu_signature(family: u32, model: u32, stepping: u32) -> u32 {
    let (family_low, family_high) = if family > 0xF {
        (0xF, (family - 0xF) & 0xFF)
    } else {
        (family, 0)
    };
    let model_low = model & 0xF;
    let model_high = (model >> 4) & 0xF;
    (family_high << 20)
        | (model_high << 16)
        | (family_low << 8)
        | (model_low << 4)
        | (stepping & 0xF)
}

fn sel(selector: u16, attrib: u16, limit: u32, base: u64) -> SevSelector {
    SevSelector {
        selector,
        attrib,
        limit,
        base,
    }
}

/// The VMSA KVM builds for a vCPU in the x86 reset state as QEMU sets it,
/// with RDX set to `inputs.cpu_signature`: `kvm_vcpu_reset()` and
/// `init_vmcb()`, with the segments QEMU writes at reset through
/// `KVM_SET_SREGS` (accessed code and data types: CS 0x9B, data 0x93, TR
/// 0x8B; `init_vmcb()` alone leaves 0x9A, 0x92 and 0x83), then the
/// adjustments `svm_set_efer` (EFER.SVME), `svm_set_cr0` (CD and NW
/// cleared, leaving ET) and `svm_set_cr4` (the host's CR4.MCE) make, the
/// x87/SSE reset state `sev_es_sync_vmsa()` copies for SNP VMs, and
/// SEV_FEATURES from KVM_SEV_INIT2. This is sev-snp-measure's QEMU VMSA for
/// EIP 0xFFFFFFF0 (notes §4.6).
pub fn reset_vmsa(inputs: &KvmLegacyInputs) -> SevVmsa {
    let mut v = SevVmsa::new_zeroed();
    let data = sel(0, 0x93, 0xFFFF, 0);
    v.es = data;
    v.ss = data;
    v.ds = data;
    v.fs = data;
    v.gs = data;
    v.cs = sel(0xF000, 0x9B, 0xFFFF, 0xFFFF_0000);
    v.gdtr = sel(0, 0, 0xFFFF, 0);
    v.idtr = sel(0, 0, 0xFFFF, 0);
    v.ldtr = sel(0, 0x82, 0xFFFF, 0);
    v.tr = sel(0, 0x8B, 0xFFFF, 0);
    v.efer = EFER_SVME;
    v.cr4 = CR4_MCE;
    v.cr0 = 0x10;
    v.dr7 = DR7_FIXED_1;
    v.dr6 = DR6_RESET;
    v.rflags = RFLAGS_FIXED;
    v.rip = 0xFFF0;
    v.pat = PAT_DEFAULT;
    v.rdx = u64::from(inputs.cpu_signature);
    v.sev_features = SevFeatures::from_bits(inputs.sev_features());
    v.xcr0 = 1;
    v.mxcsr = MXCSR_RESET;
    v.x87_fcw = FCW_RESET;
    v
}

/// A segment after the fallback decodes it into a `kvm_segment` and KVM's
/// `svm_set_segment()` encodes it again: the 12 attribute bits survive
/// (type, S, DPL, P, AVL, L, D/B, G); bits 15:12 are lost.
fn segment(s: &SevSelector) -> SevSelector {
    SevSelector {
        attrib: s.attrib & 0xFFF,
        ..*s
    }
}

/// TR as the fallback loads it (always a present, busy TSS: type 1 → 3,
/// types 3 and 11 kept, anything else → 11; S clear), then re-encoded.
fn task_register(s: &SevSelector) -> SevSelector {
    let ty = match s.attrib & 0xF {
        1 => 3,
        3 => 3,
        _ => 11,
    };
    SevSelector {
        attrib: (s.attrib & 0xF60) | 0x80 | ty,
        ..*s
    }
}

/// GDTR/IDTR: `svm_set_gdt`/`svm_set_idt` store base and the 16-bit limit
/// of `kvm_dtable`; selector and attributes stay 0 from `init_vmcb()`.
fn table(s: &SevSelector) -> SevSelector {
    sel(0, 0, s.limit & 0xFFFF, s.base)
}

/// The VMSA KVM builds for the boot vCPU after the fallback loaded `file`
/// into it. Field by field (`sev_es_sync_vmsa()` copies the VMCB save area,
/// then overwrites GPRs, RIP, XCR0, PKRU, XSS, DR6, SEV_FEATURES and the
/// x87/SSE state):
///
/// | Field | Measured value | Why |
/// |---|---|---|
/// | es, cs, ss, ds, fs, gs, ldtr | file, attrib bits 11:0 | `svm_set_segment` re-encodes the decoded `kvm_segment` |
/// | tr | file, made a present busy TSS | the fallback's `task_register` |
/// | gdtr, idtr | base, limit & 0xFFFF; selector, attrib 0 | `kvm_dtable` has a 16-bit limit only |
/// | cpl | SS.DPL | `svm_set_segment` for SS |
/// | vmpl | 0 | KVM never sets it |
/// | efer | fallback's EFER (SVME cleared, LMA = LME && PG) \| SVME | `svm_set_efer` |
/// | cr0 | file & !(CD \| NW) | `svm_set_cr0` (`KVM_X86_QUIRK_CD_NW_CLEARED`) |
/// | cr3 | file | `sev_post_set_cr3` |
/// | cr4 | file \| MCE | `svm_set_cr4` ORs the host's CR4.MCE |
/// | cr2 | 0 | only written to the VMCB at VMRUN |
/// | dr7, dr6 | file | `KVM_SET_DEBUGREGS`; dr7 must be 0x400 or 0 or KVM fails LAUNCH_FINISH |
/// | dr0–dr3 | 0 | kept outside the VMCB save area |
/// | rflags | file \| 2 | `kvm_set_rflags` |
/// | rip, rsp, rax…r15 | file | register cache |
/// | star, lstar, cstar, sfmask, kernel_gs_base, sysenter_cs | file | `svm_set_msr` |
/// | sysenter_esp, sysenter_eip | file & 0xFFFFFFFF | `svm_set_msr` keeps 32 bits in the VMCB |
/// | pat | file, or 0x0007040600070406 when the file's is 0 | requires the fallback to skip a zero PAT |
/// | xcr0 | max(file, 1) | the fallback's `xcrs` |
/// | xss, pkru, spec_ctrl, dbgctl, CET, LBR, exit info | 0 | the fallback does not set them |
/// | sev_features | `vmsa_features \| 1` | `sev->vmsa_features` |
/// | x87 fcw, fsw, fop, dp, rip, mxcsr; ftw (low byte) | file | the fallback's `KVM_SET_XSAVE` (legacy area) |
/// | x87_ds, x87_cs | 0 | `sev_es_sync_vmsa` |
/// | x87 registers | file | read and written in the same split layout (bytes 0–7 of each register, then bytes 8–9 of each) |
/// | xmm0–15 | file | `KVM_SET_XSAVE` |
/// | ymm (high halves) | 0 | not loaded |
/// | everything else | 0 | |
pub fn boot_vmsa(file: &SevVmsa, inputs: &KvmLegacyInputs) -> SevVmsa {
    let mut v = SevVmsa::new_zeroed();
    v.es = segment(&file.es);
    v.cs = segment(&file.cs);
    v.ss = segment(&file.ss);
    v.ds = segment(&file.ds);
    v.fs = segment(&file.fs);
    v.gs = segment(&file.gs);
    v.ldtr = segment(&file.ldtr);
    v.tr = task_register(&file.tr);
    v.gdtr = table(&file.gdtr);
    v.idtr = table(&file.idtr);
    v.cpl = ((file.ss.attrib >> 5) & 3) as u8;

    let mut efer = file.efer & !EFER_SVME;
    if efer & EFER_LME != 0 && file.cr0 & CR0_PG != 0 {
        efer |= EFER_LMA;
    } else {
        efer &= !EFER_LMA;
    }
    v.efer = efer | EFER_SVME;
    v.cr0 = file.cr0 & !(CR0_CD | CR0_NW);
    v.cr3 = file.cr3;
    v.cr4 = file.cr4 | CR4_MCE;
    v.dr7 = file.dr7;
    v.dr6 = file.dr6;
    v.rflags = file.rflags | RFLAGS_FIXED;

    v.rip = file.rip;
    v.rsp = file.rsp;
    v.rax = file.rax;
    v.rbx = file.rbx;
    v.rcx = file.rcx;
    v.rdx = file.rdx;
    v.rbp = file.rbp;
    v.rsi = file.rsi;
    v.rdi = file.rdi;
    v.r8 = file.r8;
    v.r9 = file.r9;
    v.r10 = file.r10;
    v.r11 = file.r11;
    v.r12 = file.r12;
    v.r13 = file.r13;
    v.r14 = file.r14;
    v.r15 = file.r15;

    v.star = file.star;
    v.lstar = file.lstar;
    v.cstar = file.cstar;
    v.sfmask = file.sfmask;
    v.kernel_gs_base = file.kernel_gs_base;
    v.sysenter_cs = file.sysenter_cs;
    v.sysenter_esp = file.sysenter_esp & 0xFFFF_FFFF;
    v.sysenter_eip = file.sysenter_eip & 0xFFFF_FFFF;
    v.pat = if file.pat == 0 { PAT_DEFAULT } else { file.pat };

    v.xcr0 = file.xcr0.max(1);
    v.sev_features = SevFeatures::from_bits(inputs.sev_features());

    v.x87dp = file.x87dp;
    v.mxcsr = file.mxcsr;
    v.x87_ftw = file.x87_ftw & 0xFF;
    v.x87_fsw = file.x87_fsw;
    v.x87_fcw = file.x87_fcw;
    v.x87_op = file.x87_op;
    v.x87_rip = file.x87_rip;
    v.x87_registers1 = file.x87_registers1;
    v.x87_registers2 = file.x87_registers2;
    v.x87_registers3 = file.x87_registers3;
    v.xmm_registers = file.xmm_registers;
    v
}

/// Why KVM would refuse to build the boot VMSA from `file` at
/// LAUNCH_FINISH: `sev_es_sync_vmsa()` fails with `-EINVAL` when DR7 has a
/// bit other than `DR7_FIXED_1`.
pub fn boot_vmsa_refused(file: &SevVmsa) -> Option<String> {
    (file.dr7 & !DR7_FIXED_1 != 0).then(|| {
        format!(
            "DR7 {:#x} has bits other than 0x400; KVM refuses LAUNCH_FINISH",
            file.dr7
        )
    })
}

/// The VMSAs KVM measures at LAUNCH_FINISH, in vCPU order: the boot
/// vCPU's, then `vcpus - 1` copies of the reset VMSA.
#[derive(Debug, Clone)]
pub struct FinishVmsas {
    /// vCPU 0's VMSA ([`boot_vmsa`]).
    pub boot: Box<SevVmsa>,
    /// Every other vCPU's VMSA ([`reset_vmsa`]).
    pub ap: Box<SevVmsa>,
    /// The vCPU count.
    pub vcpus: u32,
}

impl FinishVmsas {
    /// The VMSAs for a file's boot VMSA and the inputs.
    pub fn new(file: &SevVmsa, inputs: KvmLegacyInputs) -> Self {
        FinishVmsas {
            boot: Box::new(boot_vmsa(file, &inputs)),
            ap: Box::new(reset_vmsa(&inputs)),
            vcpus: inputs.vcpus,
        }
    }

    /// SHA-384 of each measured VMSA page, in vCPU order (`vcpus` values).
    pub fn hashes(&self) -> impl Iterator<Item = [u8; 48]> + use<> {
        let boot: [u8; 48] = Sha384::digest(self.boot.as_bytes()).into();
        let ap: [u8; 48] = Sha384::digest(self.ap.as_bytes()).into();
        (0..self.vcpus).map(move |i| if i == 0 { boot } else { ap })
    }
}

/// A named field of the VMSA and its bytes.
type Field = (&'static str, for<'a> fn(&'a SevVmsa) -> &'a [u8]);

/// The VMSA fields [`differing_fields`] compares, by name.
const FIELDS: &[Field] = &[
    ("es", |v| v.es.as_bytes()),
    ("cs", |v| v.cs.as_bytes()),
    ("ss", |v| v.ss.as_bytes()),
    ("ds", |v| v.ds.as_bytes()),
    ("fs", |v| v.fs.as_bytes()),
    ("gs", |v| v.gs.as_bytes()),
    ("gdtr", |v| v.gdtr.as_bytes()),
    ("ldtr", |v| v.ldtr.as_bytes()),
    ("idtr", |v| v.idtr.as_bytes()),
    ("tr", |v| v.tr.as_bytes()),
    ("cpl", |v| v.cpl.as_bytes()),
    ("efer", |v| v.efer.as_bytes()),
    ("xss", |v| v.xss.as_bytes()),
    ("cr4", |v| v.cr4.as_bytes()),
    ("cr3", |v| v.cr3.as_bytes()),
    ("cr0", |v| v.cr0.as_bytes()),
    ("dr7", |v| v.dr7.as_bytes()),
    ("dr6", |v| v.dr6.as_bytes()),
    ("rflags", |v| v.rflags.as_bytes()),
    ("rip", |v| v.rip.as_bytes()),
    ("dr0", |v| v.dr0.as_bytes()),
    ("dr1", |v| v.dr1.as_bytes()),
    ("dr2", |v| v.dr2.as_bytes()),
    ("dr3", |v| v.dr3.as_bytes()),
    ("rsp", |v| v.rsp.as_bytes()),
    ("rax", |v| v.rax.as_bytes()),
    ("star", |v| v.star.as_bytes()),
    ("lstar", |v| v.lstar.as_bytes()),
    ("cstar", |v| v.cstar.as_bytes()),
    ("sfmask", |v| v.sfmask.as_bytes()),
    ("kernel_gs_base", |v| v.kernel_gs_base.as_bytes()),
    ("sysenter_cs", |v| v.sysenter_cs.as_bytes()),
    ("sysenter_esp", |v| v.sysenter_esp.as_bytes()),
    ("sysenter_eip", |v| v.sysenter_eip.as_bytes()),
    ("cr2", |v| v.cr2.as_bytes()),
    ("pat", |v| v.pat.as_bytes()),
    ("rcx", |v| v.rcx.as_bytes()),
    ("rdx", |v| v.rdx.as_bytes()),
    ("rbx", |v| v.rbx.as_bytes()),
    ("rbp", |v| v.rbp.as_bytes()),
    ("rsi", |v| v.rsi.as_bytes()),
    ("rdi", |v| v.rdi.as_bytes()),
    ("r8", |v| v.r8.as_bytes()),
    ("r9", |v| v.r9.as_bytes()),
    ("r10", |v| v.r10.as_bytes()),
    ("r11", |v| v.r11.as_bytes()),
    ("r12", |v| v.r12.as_bytes()),
    ("r13", |v| v.r13.as_bytes()),
    ("r14", |v| v.r14.as_bytes()),
    ("r15", |v| v.r15.as_bytes()),
    ("sev_features", |v| v.sev_features.as_bytes()),
    ("virtual_tom", |v| v.virtual_tom.as_bytes()),
    ("v_intr_cntrl", |v| v.v_intr_cntrl.as_bytes()),
    ("event_inject", |v| v.event_inject.as_bytes()),
    ("spec_ctrl", |v| v.spec_ctrl.as_bytes()),
    ("dbgctl", |v| v.dbgctl.as_bytes()),
    ("xcr0", |v| v.xcr0.as_bytes()),
    ("x87_dp", |v| v.x87dp.as_bytes()),
    ("mxcsr", |v| v.mxcsr.as_bytes()),
    ("x87_ftw", |v| v.x87_ftw.as_bytes()),
    ("x87_fsw", |v| v.x87_fsw.as_bytes()),
    ("x87_fcw", |v| v.x87_fcw.as_bytes()),
    ("x87_fop", |v| v.x87_op.as_bytes()),
    ("x87_ds", |v| v.x87_ds.as_bytes()),
    ("x87_cs", |v| v.x87_cs.as_bytes()),
    ("x87_rip", |v| v.x87_rip.as_bytes()),
    ("x87_registers", |v| v.x87_registers1.as_bytes()),
    ("x87_registers", |v| v.x87_registers2.as_bytes()),
    ("x87_registers", |v| v.x87_registers3.as_bytes()),
    ("xmm", |v| v.xmm_registers.as_bytes()),
    ("ymm", |v| v.ymm_registers.as_bytes()),
];

/// The VMSA fields a VMM may set through registers for KVM to build the
/// VMSA from: the list QEMU's `check_vmsa_supported` (`target/i386/sev.c`)
/// clears before requiring the rest of an IGVM VMSA to be zero.
/// `sev_features` comes from KVM_SEV_INIT2. `sev_es_sync_vmsa()` copies
/// more (the syscall MSRs, CPL, the x87 and vector registers, XSS, PKRU),
/// which this list, like QEMU, does not offer.
pub const KVM_SYNCED_FIELDS: &[&str] = &[
    "es",
    "cs",
    "ss",
    "ds",
    "fs",
    "gs",
    "gdtr",
    "idtr",
    "ldtr",
    "tr",
    "efer",
    "cr0",
    "cr3",
    "cr4",
    "xcr0",
    "dr6",
    "dr7",
    "rax",
    "rcx",
    "rdx",
    "rbx",
    "rsp",
    "rbp",
    "rsi",
    "rdi",
    "r8",
    "r9",
    "r10",
    "r11",
    "r12",
    "r13",
    "r14",
    "r15",
    "rip",
    "rflags",
    "pat",
    "x87_fcw",
    "mxcsr",
    "sev_features",
];

/// The non-zero fields of `vmsa` outside [`KVM_SYNCED_FIELDS`], each name
/// once, in layout order (`"other"` for bytes outside the named fields):
/// state today's KVM cannot reproduce when the VMSA goes into vCPU
/// registers, which QEMU refuses.
pub fn fields_kvm_cannot_set(vmsa: &SevVmsa) -> Vec<&'static str> {
    let base = vmsa.as_bytes();
    let start = base.as_ptr() as usize;
    // Every byte of a synced field, and of every named field, by offset.
    let mut synced = vec![false; base.len()];
    let mut named = vec![false; base.len()];
    let mut out: Vec<&'static str> = Vec::new();
    for (name, get) in FIELDS {
        let field = get(vmsa);
        let at = field.as_ptr() as usize - start;
        let keep = KVM_SYNCED_FIELDS.contains(name);
        for i in at..at + field.len() {
            named[i] = true;
            synced[i] = keep;
        }
        if !keep && field.iter().any(|&b| b != 0) && !out.contains(name) {
            out.push(name);
        }
    }
    let other = base
        .iter()
        .enumerate()
        .any(|(i, &b)| b != 0 && !named[i] && !synced[i]);
    if other {
        out.push("other");
    }
    out
}

/// A VMSA field where two VMSAs differ, with both values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDifference<'a> {
    /// The field's name (`"other"` for bytes outside the named fields).
    pub field: &'static str,
    /// Its bytes in the first VMSA.
    pub left: &'a [u8],
    /// Its bytes in the second VMSA.
    pub right: &'a [u8],
}

impl FieldDifference<'_> {
    /// A field's bytes for display: a little-endian hexadecimal number for
    /// fields of up to 8 bytes, else the bytes in hexadecimal, in order.
    pub fn value(bytes: &[u8]) -> String {
        if bytes.len() <= 8 {
            let mut v = [0u8; 8];
            v[..bytes.len()].copy_from_slice(bytes);
            format!("{:#x}", u64::from_le_bytes(v))
        } else {
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }
    }
}

/// The fields where two VMSAs differ, each name once (its first differing
/// part), in layout order; one `"other"` entry with the whole pages when
/// they differ only outside the named fields.
pub fn field_differences<'a>(a: &'a SevVmsa, b: &'a SevVmsa) -> Vec<FieldDifference<'a>> {
    let mut out: Vec<FieldDifference<'a>> = Vec::new();
    for (field, get) in FIELDS {
        let (left, right) = (get(a), get(b));
        if left != right && !out.iter().any(|d| d.field == *field) {
            out.push(FieldDifference { field, left, right });
        }
    }
    if out.is_empty() && a.as_bytes() != b.as_bytes() {
        out.push(FieldDifference {
            field: "other",
            left: a.as_bytes(),
            right: b.as_bytes(),
        });
    }
    out
}

/// The names of the fields where two VMSAs differ (each name once, in
/// layout order); `"other"` when they differ only outside the named fields.
pub fn differing_fields(a: &SevVmsa, b: &SevVmsa) -> Vec<&'static str> {
    field_differences(a, b).iter().map(|d| d.field).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_kvm_cannot_set_follow_qemus_list() {
        // The demo's reset-state VMSA sets only fields KVM synchronises.
        let demo = crate::demo::vmsa();
        assert_eq!(fields_kvm_cannot_set(&demo), Vec::<&str>::new());
        let mut v = demo;
        v.lstar = 0xFFFF_8000_0000_0000;
        v.dr0 = 1;
        v.cr3 = 0x1000; // synchronised: not reported
        assert_eq!(fields_kvm_cannot_set(&v), vec!["dr0", "lstar"]);
        let mut v = demo;
        v.s_cet = 1; // not one of the named fields
        assert_eq!(fields_kvm_cannot_set(&v), vec!["other"]);
        // Named: hyper-v's VMSA sets virtual_tom (tests/fixtures/igvmbuilder).
        v.virtual_tom = 1 << 46;
        v.spec_ctrl = 1;
        assert_eq!(
            fields_kvm_cannot_set(&v),
            vec!["virtual_tom", "spec_ctrl", "other"]
        );
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The published sev-snp-measure vector (notes §4.6): QEMU EPYC-Milan
    /// BSP VMSA, signature 0xA00F11, features 0x1.
    #[test]
    fn reset_vmsa_matches_sev_snp_measure_vector() {
        let v = reset_vmsa(&KvmLegacyInputs::new(1, 0, cpu_signature(0x19, 1, 1)));
        assert_eq!(
            hex(&Sha384::digest(v.as_bytes())),
            "728af287318db5f3fc4d2357a969483c4225956dc555b514a78d64ee372112d1\
             3b3dca8afd02cdbd1c55697d8ce087f5"
        );
    }

    /// The file's VMSA equal to KVM's reset state (as the demo's is, with
    /// RDX = the signature) survives the fallback and KVM unchanged.
    #[test]
    fn reset_state_round_trips_through_the_boot_model() {
        let inputs = KvmLegacyInputs::new(1, 0, 0xA00F11);
        let reset = reset_vmsa(&inputs);
        let boot = boot_vmsa(&reset, &inputs);
        assert_eq!(differing_fields(&reset, &boot), Vec::<&str>::new());
    }

    #[test]
    fn kvm_overrides_are_modelled() {
        let inputs = KvmLegacyInputs::new(1, 0x20, 0x600);
        let mut file = reset_vmsa(&inputs);
        file.cr0 = 0x6000_0031;
        file.cr4 = 0;
        file.cr2 = 5;
        file.dr0 = 7;
        file.pat = 0;
        file.mxcsr = 0x1F00;
        file.efer = 0;
        file.xcr0 = 0;
        file.tr.attrib = 0;
        file.gdtr = sel(3, 4, 0x1_0027, 0x9000);
        file.sysenter_eip = 0x1_2345_6789;
        let v = boot_vmsa(&file, &inputs);
        assert_eq!(v.cr0, 0x31);
        assert_eq!(v.cr4, 0x40);
        assert_eq!((v.cr2, v.dr0), (0, 0));
        assert_eq!(v.pat, PAT_DEFAULT);
        assert_eq!(v.mxcsr, 0x1F00);
        assert_eq!(v.efer, 0x1000);
        assert_eq!(v.xcr0, 1);
        assert_eq!(v.tr.attrib, 0x8B);
        assert_eq!(v.gdtr, sel(0, 0, 0x27, 0x9000));
        assert_eq!(v.sysenter_eip, 0x2345_6789);
        assert_eq!(v.sev_features.into_bits(), 0x21);
        assert_eq!(
            differing_fields(&file, &v),
            [
                "gdtr",
                "tr",
                "efer",
                "cr4",
                "cr0",
                "dr0",
                "sysenter_eip",
                "cr2",
                "pat",
                "xcr0"
            ]
        );
    }

    #[test]
    fn long_mode_efer_and_x87_layout() {
        let inputs = KvmLegacyInputs::new(1, 0, 0);
        let mut file = SevVmsa::new_zeroed();
        file.efer = 0x1500;
        file.cr0 = 0x8000_0011;
        file.x87_registers1[..10].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        file.x87_registers3[14..].copy_from_slice(&[0xFF, 0x7F]);
        file.mxcsr = 0;
        let v = boot_vmsa(&file, &inputs);
        assert_eq!(v.efer, 0x1500);
        let mut e = SevVmsa::new_zeroed();
        e.efer = 0x500;
        assert_eq!(boot_vmsa(&e, &inputs).efer, 0x1000 | 0x100);
        // The fallback reads and KVM writes the same split layout.
        assert_eq!(v.x87_registers1, file.x87_registers1);
        assert_eq!(v.x87_registers2, file.x87_registers2);
        assert_eq!(v.x87_registers3, file.x87_registers3);
        assert_eq!(v.mxcsr, 0);
    }

    #[test]
    fn vcpu_count_bounds_and_hashes() {
        assert!(KvmLegacyInputs::new(0, 0, 0).check().is_err());
        assert!(KvmLegacyInputs::new(4097, 0, 0).check().is_err());
        assert!(KvmLegacyInputs::new(4096, 0, 0).check().is_ok());
        let inputs = KvmLegacyInputs::new(3, 0, 0xA00F11);
        let f = FinishVmsas::new(&reset_vmsa(&inputs), inputs);
        let h: Vec<_> = f.hashes().collect();
        assert_eq!(h.len(), 3);
        assert_eq!(h[0], h[1]);
        assert_eq!(h[1], h[2]);
    }

    #[test]
    fn field_differences_carry_both_values() {
        let a = SevVmsa::new_zeroed();
        let mut b = SevVmsa::new_zeroed();
        b.r15 = 0x1234;
        b.cs.attrib = 0x9B;
        b.xmm_registers[0].low = 0xAB;
        let d = field_differences(&a, &b);
        let shown: Vec<(&str, String, String)> = d
            .iter()
            .map(|d| {
                (
                    d.field,
                    FieldDifference::value(d.left),
                    FieldDifference::value(d.right),
                )
            })
            .collect();
        // Segments (16 bytes) and XMM (256 bytes) as bytes in order; the
        // attribute is bytes 2–3 of a segment.
        let cs = "00009b".to_string() + &"00".repeat(13);
        let xmm = "ab".to_string() + &"00".repeat(255);
        assert_eq!(
            shown,
            [
                ("cs", "00".repeat(16), cs),
                ("r15", "0x0".into(), "0x1234".into()),
                ("xmm", "00".repeat(256), xmm),
            ]
        );
        // Outside the named fields: one "other" entry.
        let mut c = SevVmsa::new_zeroed();
        c.vmsa_reserved7[3] = 1;
        assert_eq!(differing_fields(&a, &c), ["other"]);
        assert_eq!(field_differences(&a, &c)[0].left.len(), 4096);
    }

    #[test]
    fn dr7_refusal() {
        let mut v = SevVmsa::new_zeroed();
        v.dr7 = 0x400;
        assert!(boot_vmsa_refused(&v).is_none());
        v.dr7 = 0x401;
        assert!(boot_vmsa_refused(&v).is_some());
    }
}

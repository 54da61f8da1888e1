//! The VMSA today's KVM builds for a vCPU at SNP_LAUNCH_FINISH, from that
//! vCPU's state as `/dev/kvm` reports it.
//!
//! Kernels without the VMSA page type take no VMSA from userspace: at
//! SNP_LAUNCH_FINISH, `snp_launch_update_vmsa()` runs `sev_es_sync_vmsa()`
//! (arch/x86/kvm/svm/sev.c) for every vCPU and measures the page it builds.
//! That page is the vCPU's VMCB save area, as KVM's SVM setters stored the
//! state userspace gave it, overlaid with the general registers, RIP, XCR0,
//! PKRU, XSS, DR6, SEV_FEATURES and (for every VM type but the default one)
//! the x87/SSE/AVX state from the guest FPU.
//!
//! [`VcpuSnapshot::read`] reads a vCPU back (`KVM_GET_REGS`, `_SREGS`,
//! `_XSAVE`, `_XCRS`, `_MSRS`, `_DEBUGREGS`, `_CPUID2` for the XSAVE
//! layout); [`sync_vmsa`] builds the page from it by those rules. The firmware
//! model measures these pages at LAUNCH_FINISH, so its digest depends on the
//! state the VMSA fallback really left in each vCPU, not on a prediction
//! from the file.
//!
//! Segment registers are the exception to reading back: KVM_GET_SREGS does
//! not report what KVM_SET_SREGS stored. `svm_get_segment()` makes G up from
//! the limit, sets the accessed bit of usable DS/ES/FS/GS and the busy bit
//! of TR, and reports a segment without P as unusable (older kernels also
//! one of type 0); with unrestricted guests VMX sets the accessed bit of
//! every segment but LDTR when it is written, and kernels before 6.2
//! (a44b331614e6) report an unusable segment without its attributes. The
//! VMCB, and so the measured VMSA, holds what was written. So the model takes segments from what the
//! launch wrote ([`VcpuSnapshot::with_written_segments`]) after checking
//! that the read-back differs from it by no more than those getters change
//! ([`read_back_agrees`]); otherwise the model's digest would depend on the
//! host's vendor module for files with unusual segment attributes.
//!
//! A snapshot from a plain (non-SEV) VM shows the state as KVM's generic
//! code holds it. What the SVM setters change on the way into the VMCB,
//! which a plain VM — or a host that is not AMD — cannot show, is applied
//! here from the kernel source:
//! * segments: `svm_set_segment()` keeps the 12 attribute bits, with P only
//!   when the segment is present and usable; CPL is SS.DPL;
//! * GDTR/IDTR: `svm_set_gdt()`/`svm_set_idt()` store base and limit; their
//!   selector and attributes stay 0 (`init_vmcb()`);
//! * EFER: `svm_set_efer()` adds SVME;
//! * CR0: `svm_set_cr0()` clears CD and NW (`KVM_X86_QUIRK_CD_NW_CLEARED`,
//!   on by default);
//! * CR4: `svm_set_cr4()` ORs in the host's CR4.MCE, taken as set (it is on
//!   every SEV-SNP host this crate knows of);
//! * CR3: written to the VMCB at once for SEV-ES/SNP guests
//!   (`svm_post_set_cr3()`); CR2 only at VMRUN, so 0 here;
//! * SYSENTER_ESP/EIP: `svm_set_msr()` keeps 32 bits in the VMCB;
//! * SEV_FEATURES: KVM_SEV_INIT2's `vmsa_features` with SNPActive, which
//!   KVM adds for SNP VMs (`__sev_guest_init()`);
//! * DR0–DR3 are not in the save area (0); DR7 with a bit other than
//!   `DR7_FIXED_1` makes KVM refuse ([`SyncRefused`]).
//!
//! Not read back, and 0 in the page: CET state (S_CET, SSP, ISST, the
//! per-level SSPs), SPEC_CTRL (in the VMCB only on hosts with V_SPEC_CTRL),
//! the LBR from/to MSRs, TSC_AUX, exit information, and anything else the
//! save area holds but userspace cannot set before the first VMRUN. KVM also
//! refuses a vCPU with `KVM_SET_GUEST_DEBUG` active; that state cannot be
//! read back, and the launch never sets it.

use igvm::snp_defs::{SevFeatures, SevSelector, SevXmmRegister};
use igvm_snp::SevVmsa;
use kvm_bindings::{
    CpuId, KVM_MAX_CPUID_ENTRIES, Msrs, kvm_debugregs, kvm_msr_entry, kvm_regs, kvm_segment,
    kvm_sregs,
};
use kvm_ioctls::VcpuFd;
use zerocopy::{FromZeros, IntoBytes};

use crate::vmsa_regs::{MSRS, VcpuStateError};

/// DR7's fixed bit; `sev_es_sync_vmsa()` refuses a DR7 with any other bit.
pub const DR7_FIXED_1: u64 = 0x400;
/// EFER.SVME, which `svm_set_efer()` always sets in the VMCB.
pub const EFER_SVME: u64 = 1 << 12;
/// CR0.CD and CR0.NW, which `svm_set_cr0()` clears in the VMCB.
pub const CR0_CD_NW: u64 = (1 << 30) | (1 << 29);
/// CR4.MCE, which `svm_set_cr4()` takes from the host.
pub const CR4_MCE: u64 = 1 << 6;
/// SEV_FEATURES bit 0, SNPActive: KVM adds it to INIT2's `vmsa_features`.
pub const SEV_FEATURE_SNP_ACTIVE: u64 = 1;
/// Byte offset of PKRU in the VMSA page (igvm's `SevVmsa` has no named
/// field for it: it is `vmsa_reserved7[0]`).
pub const VMSA_PKRU_OFFSET: usize = 0x2E8;

/// The MSRs [`VcpuSnapshot::read`] reads besides those the fallback writes
/// (`vmsa_regs::MSRS`), with their names.
pub const EXTRA_MSRS: [(u32, &str); 2] = [(0xDA0, "XSS"), (0x1D9, "DEBUGCTL")];

/// How many MSRs a snapshot holds.
const SNAPSHOT_MSR_COUNT: usize = MSRS.len() + EXTRA_MSRS.len();

/// The MSRs [`VcpuSnapshot::read`] reads, in order: `vmsa_regs::MSRS`, then
/// [`EXTRA_MSRS`].
fn snapshot_msrs() -> impl Iterator<Item = (u32, &'static str)> {
    MSRS.into_iter().chain(EXTRA_MSRS)
}

/// The MSR values of a [`VcpuSnapshot`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsrSnapshot {
    /// IA32_PAT.
    pub pat: u64,
    /// STAR.
    pub star: u64,
    /// LSTAR.
    pub lstar: u64,
    /// CSTAR.
    pub cstar: u64,
    /// SFMASK.
    pub sfmask: u64,
    /// KERNEL_GS_BASE.
    pub kernel_gs_base: u64,
    /// SYSENTER_CS.
    pub sysenter_cs: u64,
    /// SYSENTER_ESP (all 64 bits, as KVM's generic code reports it).
    pub sysenter_esp: u64,
    /// SYSENTER_EIP (all 64 bits).
    pub sysenter_eip: u64,
    /// IA32_XSS.
    pub xss: u64,
    /// IA32_DEBUGCTL.
    pub debugctl: u64,
}

impl MsrSnapshot {
    /// The values in the order of [`snapshot_msrs`].
    fn from_values(v: [u64; SNAPSHOT_MSR_COUNT]) -> Self {
        MsrSnapshot {
            pat: v[0],
            star: v[1],
            lstar: v[2],
            cstar: v[3],
            sfmask: v[4],
            kernel_gs_base: v[5],
            sysenter_cs: v[6],
            sysenter_esp: v[7],
            sysenter_eip: v[8],
            xss: v[9],
            debugctl: v[10],
        }
    }
}

/// Size of the legacy (FXSAVE-format) region of an XSAVE area.
pub const FXSAVE_SIZE: usize = 512;

/// The guest FPU state of a [`VcpuSnapshot`], from `KVM_GET_XSAVE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FpuSnapshot {
    /// The legacy region: FCW 0, FSW 2, FTW 4 (16 bits), FOP 6, FIP 8,
    /// FDP 16, MXCSR 24, ST0–7 from 32 (16 bytes each), XMM0–15 from 160.
    pub legacy: [u8; FXSAVE_SIZE],
    /// The upper halves of YMM0–15; `None` when the AVX component is in
    /// its initial state (XSTATE_BV bit 2 clear), where `sev_es_sync_vmsa()`
    /// writes zeros.
    pub ymm: Option<[u8; 256]>,
    /// PKRU (`vcpu->arch.pkru`, which KVM reports in the PKRU component);
    /// 0 when the vCPU's CPUID has no PKRU component.
    pub pkru: u32,
}

impl Default for FpuSnapshot {
    fn default() -> Self {
        FpuSnapshot {
            legacy: [0; FXSAVE_SIZE],
            ymm: None,
            pkru: 0,
        }
    }
}

/// Byte offset of XSTATE_BV in an XSAVE area.
const XSTATE_BV: usize = 512;
/// XSAVE component numbers.
const XFEATURE_YMM: u32 = 2;
const XFEATURE_PKRU: u32 = 9;

/// A vCPU's state as KVM reports it: everything `sev_es_sync_vmsa()` reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VcpuSnapshot {
    /// `KVM_GET_REGS`.
    pub regs: kvm_regs,
    /// `KVM_GET_SREGS`.
    pub sregs: kvm_sregs,
    /// `KVM_GET_DEBUGREGS`.
    pub debug: kvm_debugregs,
    /// XCR0 from `KVM_GET_XCRS`.
    pub xcr0: u64,
    /// `KVM_GET_MSRS` of `vmsa_regs::MSRS` and [`EXTRA_MSRS`].
    pub msrs: MsrSnapshot,
    /// `KVM_GET_XSAVE`.
    pub fpu: FpuSnapshot,
}

fn ioctl(ioctl: &'static str) -> impl FnOnce(vmm_sys_util::errno::Error) -> VcpuStateError {
    move |source| VcpuStateError::Ioctl { ioctl, source }
}

/// Where the standard-format XSAVE area holds component `n`, from the
/// vCPU's CPUID leaf 0xD (EAX size, EBX offset); `None` when CPUID does
/// not describe it.
fn xsave_component(cpuid: &CpuId, n: u32) -> Option<(usize, usize)> {
    cpuid
        .as_slice()
        .iter()
        .find(|e| e.function == 0xD && e.index == n && e.eax != 0)
        .map(|e| (e.ebx as usize, e.eax as usize))
}

fn area_slice(area: &[u8], offset: usize, len: usize) -> Option<&[u8]> {
    area.get(offset..offset.checked_add(len)?)
}

impl VcpuSnapshot {
    /// Reads `vcpu` back from KVM.
    ///
    /// # Errors
    /// [`VcpuStateError::Ioctl`] naming the ioctl KVM refused;
    /// [`VcpuStateError::MsrUnreadable`] naming the first MSR KVM did not
    /// report; [`VcpuStateError::XsaveComponent`] when the XSAVE area
    /// claims a component the vCPU's CPUID does not place within it.
    pub fn read(vcpu: &VcpuFd) -> Result<Self, VcpuStateError> {
        let regs = vcpu.get_regs().map_err(ioctl("KVM_GET_REGS"))?;
        let sregs = vcpu.get_sregs().map_err(ioctl("KVM_GET_SREGS"))?;
        let debug = vcpu.get_debug_regs().map_err(ioctl("KVM_GET_DEBUGREGS"))?;
        let xcrs = vcpu.get_xcrs().map_err(ioctl("KVM_GET_XCRS"))?;
        let xcr0 = xcrs
            .xcrs
            .iter()
            .take(xcrs.nr_xcrs as usize)
            .find(|x| x.xcr == 0)
            .map_or(1, |x| x.value);
        let cpuid = vcpu
            .get_cpuid2(KVM_MAX_CPUID_ENTRIES)
            .map_err(ioctl("KVM_GET_CPUID2"))?;
        let xsave = vcpu.get_xsave().map_err(ioctl("KVM_GET_XSAVE"))?;
        let fpu = fpu_from_xsave(xsave.region.as_bytes(), &cpuid)?;
        Ok(VcpuSnapshot {
            regs,
            sregs,
            debug,
            xcr0,
            msrs: read_msrs(vcpu)?,
            fpu,
        })
    }

    /// The snapshot with the segment registers (CS, DS, ES, FS, GS, SS, TR,
    /// LDTR) that `KVM_SET_SREGS` was last given, `written`, in place of what
    /// `KVM_GET_SREGS` reported: those are what KVM's SVM code stores in the
    /// VMCB and copies into the VMSA (see the module documentation).
    ///
    /// # Errors
    /// [`VcpuStateError::SegmentReadBack`] for the first register whose
    /// read-back differs from `written` beyond [`read_back_agrees`].
    pub fn with_written_segments(mut self, written: &kvm_sregs) -> Result<Self, VcpuStateError> {
        let read = self.sregs;
        for (register, w, r) in [
            ("CS", written.cs, read.cs),
            ("DS", written.ds, read.ds),
            ("ES", written.es, read.es),
            ("FS", written.fs, read.fs),
            ("GS", written.gs, read.gs),
            ("SS", written.ss, read.ss),
            ("TR", written.tr, read.tr),
            ("LDTR", written.ldt, read.ldt),
        ] {
            if !read_back_agrees(register, &w, &r) {
                return Err(VcpuStateError::SegmentReadBack {
                    register,
                    written: w,
                    read: r,
                });
            }
        }
        let s = &mut self.sregs;
        (s.cs, s.ds, s.es, s.fs, s.gs) =
            (written.cs, written.ds, written.es, written.fs, written.gs);
        (s.ss, s.tr, s.ldt) = (written.ss, written.tr, written.ldt);
        Ok(self)
    }
}

/// Whether `KVM_GET_SREGS` may report `read` for the segment register named
/// `register` (`CS`, `DS`, `ES`, `FS`, `GS`, `SS`, `TR`, `LDTR`) after
/// `KVM_SET_SREGS` was given `written`, on a host whose KVM keeps what was
/// written. Selector, base and limit must match, and so must usability
/// (present and not unusable). For a usable segment S, DPL, AVL, L and D/B
/// must match too; what KVM's getters change is allowed
/// (arch/x86/kvm/svm/svm.c `svm_get_segment()`, vmx/vmx.c
/// `__vmx_set_segment()` and `vmx_get_segment()`, current and older
/// kernels): the accessed bit (type bit 0) of any register but LDTR, TR's
/// busy bit (type bit 1), a G bit made up from the limit (`limit >
/// 0xFFFFF`), and a present type-0 segment reported unusable (older SVM
/// code). An unusable segment's attributes are not compared (VMX before
/// 6.2 drops them).
pub fn read_back_agrees(register: &str, written: &kvm_segment, read: &kvm_segment) -> bool {
    let usable = |s: &kvm_segment| s.present & 1 == 1 && s.unusable == 0;
    if (written.selector, written.base, written.limit) != (read.selector, read.base, read.limit) {
        return false;
    }
    match (usable(written), usable(read)) {
        (true, true) => {}
        (false, false) => return true,
        // Older SVM code reads a present type-0 segment back as unusable.
        (true, false) => return written.type_ & 0xF == 0,
        (false, true) => return false,
    }
    let mut ignored_type_bits = 0u8;
    if register != "LDTR" {
        ignored_type_bits |= 1;
    }
    if register == "TR" {
        ignored_type_bits |= 2;
    }
    let g_made_up = u8::from(read.limit > 0xF_FFFF);
    (written.type_ | ignored_type_bits) == (read.type_ | ignored_type_bits)
        && (written.s, written.dpl, written.avl, written.l, written.db)
            == (read.s, read.dpl, read.avl, read.l, read.db)
        && (read.g == written.g || read.g == g_made_up)
}

/// The FPU part of a snapshot from a `KVM_GET_XSAVE` area and the vCPU's
/// CPUID (for where YMM and PKRU are).
///
/// # Errors
/// [`VcpuStateError::XsaveComponent`] when XSTATE_BV claims the AVX
/// component and CPUID does not place it within `area`.
pub fn fpu_from_xsave(area: &[u8], cpuid: &CpuId) -> Result<FpuSnapshot, VcpuStateError> {
    let mut fpu = FpuSnapshot::default();
    let legacy = area
        .get(..FXSAVE_SIZE)
        .ok_or(VcpuStateError::XsaveComponent { component: 0 })?;
    fpu.legacy.copy_from_slice(legacy);
    let xstate_bv = area
        .get(XSTATE_BV..XSTATE_BV + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes);
    if xstate_bv & (1 << XFEATURE_YMM) != 0 {
        let ymm = xsave_component(cpuid, XFEATURE_YMM)
            .and_then(|(off, _)| area_slice(area, off, 256))
            .ok_or(VcpuStateError::XsaveComponent {
                component: XFEATURE_YMM,
            })?;
        let mut out = [0u8; 256];
        out.copy_from_slice(ymm);
        fpu.ymm = Some(out);
    }
    // KVM writes `vcpu->arch.pkru` into the PKRU component whatever
    // XSTATE_BV says (fpu_copy_guest_fpstate_to_uabi()).
    if let Some(bytes) = xsave_component(cpuid, XFEATURE_PKRU)
        .and_then(|(off, _)| area_slice(area, off, 4))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
    {
        fpu.pkru = u32::from_le_bytes(bytes);
    }
    Ok(fpu)
}

fn read_msrs(vcpu: &VcpuFd) -> Result<MsrSnapshot, VcpuStateError> {
    let entries: Vec<kvm_msr_entry> = snapshot_msrs()
        .map(|(index, _)| kvm_msr_entry {
            index,
            ..Default::default()
        })
        .collect();
    let mut list =
        Msrs::from_entries(&entries).map_err(|e| VcpuStateError::MsrList(format!("{e:?}")))?;
    let read = vcpu.get_msrs(&mut list).map_err(ioctl("KVM_GET_MSRS"))?;
    if let Some((index, name)) = snapshot_msrs().nth(read) {
        return Err(VcpuStateError::MsrUnreadable { name, index });
    }
    let mut values = [0u64; SNAPSHOT_MSR_COUNT];
    for (out, e) in values.iter_mut().zip(list.as_slice()) {
        *out = e.data;
    }
    Ok(MsrSnapshot::from_values(values))
}

/// Why KVM would refuse to build a vCPU's VMSA (`sev_es_sync_vmsa()`
/// returns `-EINVAL`, failing SNP_LAUNCH_FINISH).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SyncRefused {
    /// DR7 has a bit other than `DR7_FIXED_1` (0x400).
    #[error("DR7 {dr7:#x} has bits other than 0x400")]
    Dr7 {
        /// The vCPU's DR7.
        dr7: u64,
    },
}

/// `svm_set_segment()`: the VMCB's 12-bit attribute of a `kvm_segment`,
/// with P only when the segment is present and usable.
pub fn vmcb_segment(s: &kvm_segment) -> SevSelector {
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

fn u16_at(b: &[u8; FXSAVE_SIZE], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8; FXSAVE_SIZE], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(v)
}

fn xmm_block(b: &[u8]) -> [SevXmmRegister; 16] {
    let mut out = [SevXmmRegister { low: 0, high: 0 }; 16];
    for (reg, src) in out.iter_mut().zip(b.chunks_exact(16)) {
        reg.low = u64_at(src, 0);
        reg.high = u64_at(src, 8);
    }
    out
}

/// The VMSA page KVM builds for a vCPU in state `s` at SNP_LAUNCH_FINISH
/// of a VM whose KVM_SEV_INIT2 asked for `vmsa_features` (see the module
/// documentation for every rule).
///
/// # Errors
/// [`SyncRefused`] where KVM refuses to build the page.
pub fn sync_vmsa(s: &VcpuSnapshot, vmsa_features: u64) -> Result<SevVmsa, SyncRefused> {
    if s.debug.dr7 & !DR7_FIXED_1 != 0 {
        return Err(SyncRefused::Dr7 { dr7: s.debug.dr7 });
    }
    let mut v = SevVmsa::new_zeroed();
    // The VMCB save area, as the SVM setters stored the state.
    let sr = &s.sregs;
    v.es = vmcb_segment(&sr.es);
    v.cs = vmcb_segment(&sr.cs);
    v.ss = vmcb_segment(&sr.ss);
    v.ds = vmcb_segment(&sr.ds);
    v.fs = vmcb_segment(&sr.fs);
    v.gs = vmcb_segment(&sr.gs);
    v.ldtr = vmcb_segment(&sr.ldt);
    v.tr = vmcb_segment(&sr.tr);
    v.gdtr.limit = u32::from(sr.gdt.limit);
    v.gdtr.base = sr.gdt.base;
    v.idtr.limit = u32::from(sr.idt.limit);
    v.idtr.base = sr.idt.base;
    v.cpl = sr.ss.dpl & 3;
    v.efer = sr.efer | EFER_SVME;
    v.cr0 = sr.cr0 & !CR0_CD_NW;
    v.cr3 = sr.cr3;
    v.cr4 = sr.cr4 | CR4_MCE;
    v.dr7 = s.debug.dr7;
    v.rflags = s.regs.rflags;
    let m = &s.msrs;
    v.pat = m.pat;
    v.star = m.star;
    v.lstar = m.lstar;
    v.cstar = m.cstar;
    v.sfmask = m.sfmask;
    v.kernel_gs_base = m.kernel_gs_base;
    v.sysenter_cs = m.sysenter_cs;
    v.sysenter_esp = m.sysenter_esp & 0xFFFF_FFFF;
    v.sysenter_eip = m.sysenter_eip & 0xFFFF_FFFF;
    v.dbgctl = m.debugctl;

    // sev_es_sync_vmsa(): the register cache and the other synced fields.
    let r = &s.regs;
    (v.rax, v.rbx, v.rcx, v.rdx) = (r.rax, r.rbx, r.rcx, r.rdx);
    (v.rsp, v.rbp, v.rsi, v.rdi) = (r.rsp, r.rbp, r.rsi, r.rdi);
    (v.r8, v.r9, v.r10, v.r11) = (r.r8, r.r9, r.r10, r.r11);
    (v.r12, v.r13, v.r14, v.r15) = (r.r12, r.r13, r.r14, r.r15);
    v.rip = r.rip;
    v.xcr0 = s.xcr0;
    v.vmsa_reserved7[0] = s.fpu.pkru;
    v.xss = m.xss;
    v.dr6 = s.debug.dr6;
    v.sev_features = SevFeatures::from_bits(vmsa_features | SEV_FEATURE_SNP_ACTIVE);

    // The guest FPU (every VM type but KVM_X86_DEFAULT_VM).
    let x = &s.fpu.legacy;
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
    if let Some(ymm) = &s.fpu.ymm {
        v.ymm_registers = xmm_block(ymm);
    }
    Ok(v)
}

/// [`sync_vmsa`] as the 4096-byte page.
///
/// # Errors
/// As [`sync_vmsa`].
pub fn sync_vmsa_page(s: &VcpuSnapshot, vmsa_features: u64) -> Result<[u8; 4096], SyncRefused> {
    let v = sync_vmsa(s, vmsa_features)?;
    let mut page = [0u8; 4096];
    page.copy_from_slice(v.as_bytes());
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_bindings::{kvm_cpuid_entry2, kvm_dtable};
    use sha2::{Digest, Sha384};

    fn seg(selector: u16, base: u64, limit: u32, type_: u8, s: u8) -> kvm_segment {
        kvm_segment {
            base,
            limit,
            selector,
            type_,
            present: 1,
            s,
            ..Default::default()
        }
    }

    /// A vCPU as `kvm_vcpu_reset()` leaves it on SVM (CR0 0x60000010, the
    /// x87/SSE reset values), with RDX = `rdx`.
    fn reset_snapshot(rdx: u64) -> VcpuSnapshot {
        let data = seg(0, 0, 0xFFFF, 3, 1);
        let table = kvm_dtable {
            base: 0,
            limit: 0xFFFF,
            padding: [0; 3],
        };
        let mut fpu = FpuSnapshot::default();
        fpu.legacy[0..2].copy_from_slice(&0x37Fu16.to_le_bytes());
        fpu.legacy[24..28].copy_from_slice(&0x1F80u32.to_le_bytes());
        VcpuSnapshot {
            regs: kvm_regs {
                rdx,
                rip: 0xFFF0,
                rflags: 2,
                ..Default::default()
            },
            sregs: kvm_sregs {
                cs: seg(0xF000, 0xFFFF_0000, 0xFFFF, 0xB, 1),
                ds: data,
                es: data,
                fs: data,
                gs: data,
                ss: data,
                tr: seg(0, 0, 0xFFFF, 0xB, 0),
                ldt: seg(0, 0, 0xFFFF, 2, 0),
                gdt: table,
                idt: table,
                cr0: 0x6000_0010,
                ..Default::default()
            },
            debug: kvm_debugregs {
                dr6: 0xFFFF_0FF0,
                dr7: 0x400,
                ..Default::default()
            },
            xcr0: 1,
            msrs: MsrSnapshot {
                pat: 0x0007_0406_0007_0406,
                ..Default::default()
            },
            fpu,
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The published sev-snp-measure vector (notes kvm-snp-uapi.md §4.6):
    /// KVM's VMSA of a vCPU at reset with RDX = EPYC-Milan's signature and
    /// SEV features 0x1 hashes to `728af287…`.
    #[test]
    fn reset_state_gives_the_published_qemu_vmsa() {
        let page = sync_vmsa_page(&reset_snapshot(0xA00F11), 0).unwrap();
        assert_eq!(
            hex(&Sha384::digest(page)),
            "728af287318db5f3fc4d2357a969483c4225956dc555b514a78d64ee372112d1\
             3b3dca8afd02cdbd1c55697d8ce087f5"
        );
    }

    #[test]
    fn svm_setter_rules() {
        let mut s = reset_snapshot(0x600);
        s.sregs.efer = 0xD01;
        s.sregs.cr0 = 0xE005_0033;
        s.sregs.cr2 = 0x1234;
        s.sregs.cr3 = 0x5000;
        s.sregs.cr4 = 0x20;
        // Unusable LDT: no P in the VMCB.
        s.sregs.ldt.unusable = 1;
        s.sregs.ss.dpl = 3;
        s.sregs.gdt = kvm_dtable {
            base: 0x9000,
            limit: 0x27,
            padding: [0; 3],
        };
        s.debug.db = [1, 2, 3, 4];
        s.msrs.sysenter_esp = 0xFFFF_8000_1234_5678;
        s.msrs.sysenter_eip = 0x1_0000_0010;
        s.msrs.xss = 0x100;
        let v = sync_vmsa(&s, 0x20).unwrap();
        assert_eq!(v.efer, 0x1D01);
        assert_eq!(v.cr0, 0x8005_0033);
        assert_eq!((v.cr2, v.cr3, v.cr4), (0, 0x5000, 0x60));
        assert_eq!(v.ldtr.attrib, 0x02);
        assert_eq!((v.ss.attrib, v.cpl), (0xF3, 3));
        assert_eq!((v.cs.attrib, v.tr.attrib), (0x9B, 0x8B));
        assert_eq!(
            (v.gdtr.selector, v.gdtr.attrib, v.gdtr.limit, v.gdtr.base),
            (0, 0, 0x27, 0x9000)
        );
        assert_eq!((v.dr0, v.dr1, v.dr2, v.dr3), (0, 0, 0, 0));
        assert_eq!((v.sysenter_esp, v.sysenter_eip), (0x1234_5678, 0x10));
        assert_eq!(v.xss, 0x100);
        assert_eq!(v.sev_features.into_bits(), 0x21);
    }

    /// KVM_GET_SREGS on kvm_amd after KVM_SET_SREGS of `w`: the VMCB
    /// holds `vmcb_segment(w)`, which `svm_get_segment()` decodes (G from
    /// the limit, accessed bit on usable data segments, busy bit on TR,
    /// SS's D/B cleared when unusable). Unusable is "no P" in current
    /// kernels, "no P or type 0" in `old` ones.
    fn svm_read_back(register: &str, w: &kvm_segment, old: bool) -> kvm_segment {
        let v = vmcb_segment(w);
        let bit = |n: u16| ((v.attrib >> n) & 1) as u8;
        let mut r = kvm_segment {
            base: v.base,
            limit: v.limit,
            selector: v.selector,
            type_: (v.attrib & 0xF) as u8,
            s: bit(4),
            dpl: ((v.attrib >> 5) & 3) as u8,
            present: bit(7),
            avl: bit(8),
            l: bit(9),
            db: bit(10),
            g: u8::from(v.limit > 0xF_FFFF),
            ..Default::default()
        };
        r.unusable = u8::from(r.present == 0 || (old && r.type_ == 0));
        match register {
            "TR" => r.type_ |= 2,
            "DS" | "ES" | "FS" | "GS" if r.unusable == 0 => r.type_ |= 1,
            "SS" if r.unusable == 1 => r.db = 0,
            _ => {}
        }
        r
    }

    /// KVM_GET_SREGS on kvm_intel with unrestricted guests after
    /// KVM_SET_SREGS of `w`: `__vmx_set_segment()` sets the accessed bit
    /// of all but LDTR; `vmx_segment_access_rights()` marks an unusable or
    /// non-present segment with bit 16 and keeps its attributes (since 6.2,
    /// a44b331614e6) or, in `old` kernels, keeps bit 16 alone;
    /// `vmx_get_segment()` decodes the AR bytes.
    fn vmx_read_back(register: &str, w: &kvm_segment, old: bool) -> kvm_segment {
        let mut w = *w;
        if register != "LDTR" {
            w.type_ |= 1;
        }
        let unusable = w.unusable != 0 || w.present == 0;
        let ar: u32 = if unusable && old {
            1 << 16
        } else {
            u32::from(w.type_ & 15)
                | u32::from(w.s & 1) << 4
                | u32::from(w.dpl & 3) << 5
                | u32::from(w.present & 1) << 7
                | u32::from(w.avl & 1) << 12
                | u32::from(w.l & 1) << 13
                | u32::from(w.db & 1) << 14
                | u32::from(w.g & 1) << 15
                | u32::from(unusable) << 16
        };
        let bit = |n: u32| ((ar >> n) & 1) as u8;
        kvm_segment {
            base: w.base,
            limit: w.limit,
            selector: w.selector,
            unusable: bit(16),
            type_: (ar & 15) as u8,
            s: bit(4),
            dpl: ((ar >> 5) & 3) as u8,
            present: 1 - bit(16),
            avl: bit(12),
            l: bit(13),
            db: bit(14),
            g: bit(15),
            padding: 0,
        }
    }

    type ReadBack = fn(&str, &kvm_segment) -> kvm_segment;

    /// The getters, current and older, of both vendors.
    const GETTERS: [(&str, ReadBack); 4] = [
        ("svm", |r, w| svm_read_back(r, w, false)),
        ("svm (older)", |r, w| svm_read_back(r, w, true)),
        ("vmx", |r, w| vmx_read_back(r, w, false)),
        ("vmx (before 6.2)", |r, w| vmx_read_back(r, w, true)),
    ];

    /// Segments a file may hold that KVM's getters do not report as written.
    fn unusual_segments() -> Vec<(&'static str, kvm_segment)> {
        let data = |type_, limit, g| kvm_segment {
            selector: 0x10,
            limit,
            type_,
            s: 1,
            present: 1,
            db: 1,
            g,
            ..Default::default()
        };
        let mut unusable = data(3, 0xFFFF, 0);
        unusable.present = 0;
        unusable.unusable = 1;
        unusable.dpl = 2;
        let mut ss_unusable = unusable;
        ss_unusable.dpl = 0;
        let mut type0 = data(0, 0xFFFF, 0);
        type0.s = 0;
        let mut tr = data(9, 0x67, 0);
        (tr.s, tr.db) = (0, 0);
        let mut ldt = data(2, 0xFFFF, 0);
        (ldt.s, ldt.db) = (0, 0);
        vec![
            ("DS", data(2, 0xFFFF_FFFF, 1)), // accessed bit clear
            ("ES", data(3, 0xFFFF_FFFF, 0)), // 4 GiB limit, G clear
            ("FS", data(3, 0xFFFF, 1)),      // 64 KiB limit, G set
            ("GS", unusable),                // attributes of an unusable segment
            ("SS", ss_unusable),
            ("CS", data(0xA, 0xFFFF_FFFF, 1)), // code, accessed bit clear
            ("TR", tr),                        // an available 32-bit TSS
            ("LDTR", ldt),
            ("DS", type0), // present, type 0
        ]
    }

    #[test]
    fn read_back_agrees_with_what_kvm_getters_report() {
        for (register, w) in unusual_segments() {
            for (getter, read_back) in GETTERS {
                let r = read_back(register, &w);
                assert!(
                    read_back_agrees(register, &w, &r),
                    "{getter} {register}: wrote {w:?}, read {r:?}"
                );
            }
            assert!(read_back_agrees(register, &w, &w), "transparent {register}");
        }
    }

    #[test]
    fn the_vmsa_holds_the_written_segments_whatever_the_getters_report() {
        for (register, w) in unusual_segments() {
            let mut written = reset_snapshot(0).sregs;
            set_segment(&mut written, register, w);
            let expect = vmcb_segment(&w);
            let mut getters_show = false;
            for (_, read_back) in GETTERS {
                let mut read = reset_snapshot(0);
                read.sregs = written;
                set_segment(&mut read.sregs, register, read_back(register, &w));
                // Measured from the read-back alone, the getters can show.
                let plain = sync_vmsa(&read, 0).unwrap();
                getters_show |= segment_of(&plain, register).attrib != expect.attrib;
                let vmsa = sync_vmsa(&read.with_written_segments(&written).unwrap(), 0).unwrap();
                let got = segment_of(&vmsa, register);
                assert_eq!(
                    (got.attrib, got.limit, got.base, got.selector),
                    (expect.attrib, expect.limit, expect.base, expect.selector),
                    "{register}: {w:?}"
                );
            }
            // Each case but LDTR's is one a getter changes (the unusable GS
            // only VMX before 6.2).
            assert_eq!(getters_show, register != "LDTR", "{register}: {w:?}");
        }
    }

    fn set_segment(s: &mut kvm_sregs, register: &str, v: kvm_segment) {
        match register {
            "CS" => s.cs = v,
            "DS" => s.ds = v,
            "ES" => s.es = v,
            "FS" => s.fs = v,
            "GS" => s.gs = v,
            "SS" => s.ss = v,
            "TR" => s.tr = v,
            _ => s.ldt = v,
        }
    }

    fn segment_of(v: &SevVmsa, register: &str) -> SevSelector {
        match register {
            "CS" => v.cs,
            "DS" => v.ds,
            "ES" => v.es,
            "FS" => v.fs,
            "GS" => v.gs,
            "SS" => v.ss,
            "TR" => v.tr,
            _ => v.ldtr,
        }
    }

    #[test]
    fn read_back_that_kvm_did_not_keep_is_refused() {
        let w = kvm_segment {
            selector: 0x10,
            limit: 0xFFFF_FFFF,
            type_: 3,
            s: 1,
            present: 1,
            db: 1,
            g: 1,
            ..Default::default()
        };
        type Change = (&'static str, fn(&mut kvm_segment));
        let changed: [Change; 9] = [
            ("base", |r| r.base = 0x1000),
            ("limit", |r| r.limit = 0xFFFF),
            ("selector", |r| r.selector = 0x18),
            ("dpl", |r| r.dpl = 3),
            ("s", |r| r.s = 0),
            ("l", |r| r.l = 1),
            ("db", |r| r.db = 0),
            ("writable bit", |r| r.type_ = 1),
            ("usability", |r| r.unusable = 1),
        ];
        for (what, change) in changed {
            let mut r = w;
            change(&mut r);
            assert!(!read_back_agrees("DS", &w, &r), "{what}");
        }
        // G is made up from the limit or kept, never anything else.
        let mut small = w;
        (small.limit, small.g) = (0xFFFF, 1);
        let mut r = small;
        r.g = 0;
        assert!(read_back_agrees("DS", &small, &r));
        let mut big = w;
        big.g = 1;
        let mut r = big;
        r.g = 0;
        assert!(!read_back_agrees("DS", &big, &r));
        // LDTR's accessed bit is kept by every getter.
        let mut ldt = w;
        (ldt.type_, ldt.s) = (2, 0);
        let mut r = ldt;
        r.type_ = 3;
        assert!(!read_back_agrees("LDTR", &ldt, &r));
        // An unusable segment read back usable: KVM did not take it.
        let mut gone = w;
        gone.present = 0;
        assert!(!read_back_agrees("DS", &gone, &w));

        let mut snapshot = reset_snapshot(0);
        let written = snapshot.sregs;
        snapshot.sregs.gs.base = 0x2000;
        match snapshot.with_written_segments(&written) {
            Err(VcpuStateError::SegmentReadBack { register, .. }) => assert_eq!(register, "GS"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn long_mode_code_segment_attributes() {
        let mut s = reset_snapshot(0);
        s.sregs.cs = kvm_segment {
            base: 0,
            limit: 0xFFFF_FFFF,
            selector: 8,
            type_: 0xB,
            present: 1,
            dpl: 0,
            db: 0,
            s: 1,
            l: 1,
            g: 1,
            avl: 1,
            unusable: 0,
            padding: 0,
        };
        assert_eq!(sync_vmsa(&s, 0).unwrap().cs.attrib, 0xB9B);
    }

    #[test]
    fn fpu_layout_pkru_and_ymm() {
        let mut s = reset_snapshot(0);
        let x = &mut s.fpu.legacy;
        x[2..4].copy_from_slice(&0x3800u16.to_le_bytes()); // FSW
        x[4..6].copy_from_slice(&0x0081u16.to_le_bytes()); // FTW
        x[6..8].copy_from_slice(&0x01DDu16.to_le_bytes()); // FOP
        x[8..16].copy_from_slice(&0x1111u64.to_le_bytes()); // FIP
        x[16..24].copy_from_slice(&0x2222u64.to_le_bytes()); // FDP
        // ST1 = bytes 1..=10, XMM15 = 0xE5.
        for (i, b) in x[48..58].iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        x[400..416].fill(0xE5);
        s.fpu.pkru = 0x5555_0004;
        let v = sync_vmsa(&s, 0).unwrap();
        assert_eq!((v.x87_fsw, v.x87_ftw, v.x87_op), (0x3800, 0x81, 0x1DD));
        assert_eq!((v.x87_rip, v.x87dp), (0x1111, 0x2222));
        assert_eq!((v.x87_ds, v.x87_cs), (0, 0));
        // ST1's bytes 0–7 at 8..16 of the area, bytes 8–9 at 66..68.
        assert_eq!(&v.x87_registers1[8..16], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&v.x87_registers3[2..4], &[9, 10]);
        assert_eq!(v.xmm_registers[15].low, 0xE5E5_E5E5_E5E5_E5E5);
        let page = v.as_bytes();
        assert_eq!(&page[0x2E8..0x2EC], &[4, 0, 0x55, 0x55]);
        // YMM: zero in the initial state, else copied.
        assert_eq!(&page[0x570..0x670], &[0u8; 256][..]);
        let mut ymm = [0u8; 256];
        ymm[16] = 0x77;
        s.fpu.ymm = Some(ymm);
        let v = sync_vmsa(&s, 0).unwrap();
        assert_eq!(v.ymm_registers[1].low, 0x77);
        assert_eq!(v.as_bytes()[0x580], 0x77);
    }

    #[test]
    fn dr7_beyond_the_fixed_bit_is_refused() {
        let mut s = reset_snapshot(0);
        s.debug.dr7 = 0x401;
        assert_eq!(sync_vmsa(&s, 0), Err(SyncRefused::Dr7 { dr7: 0x401 }));
        s.debug.dr7 = 0;
        assert!(sync_vmsa(&s, 0).is_ok());
    }

    fn cpuid(entries: &[(u32, u32, u32)]) -> CpuId {
        let list: Vec<kvm_cpuid_entry2> = entries
            .iter()
            .map(|&(index, eax, ebx)| kvm_cpuid_entry2 {
                function: 0xD,
                index,
                eax,
                ebx,
                ..Default::default()
            })
            .collect();
        CpuId::from_entries(&list).unwrap()
    }

    #[test]
    fn xsave_components_are_found_through_cpuid() {
        let mut area = vec![0u8; 4096];
        area[0] = 0x7F;
        area[576] = 0xAA;
        area[2688..2692].copy_from_slice(&8u32.to_le_bytes());
        let table = cpuid(&[(2, 256, 576), (9, 8, 2688)]);
        // AVX in its initial state: no YMM; PKRU read regardless.
        let f = fpu_from_xsave(&area, &table).unwrap();
        assert_eq!((f.legacy[0], f.ymm, f.pkru), (0x7F, None, 8));
        area[512] = 0b111;
        let f = fpu_from_xsave(&area, &table).unwrap();
        assert_eq!(f.ymm.map(|y| y[0]), Some(0xAA));
        // AVX claimed, but CPUID does not place it.
        assert!(matches!(
            fpu_from_xsave(&area, &cpuid(&[(9, 8, 2688)])),
            Err(VcpuStateError::XsaveComponent { component: 2 })
        ));
        // No PKRU in CPUID: 0.
        assert_eq!(
            fpu_from_xsave(&area, &cpuid(&[(2, 256, 576)]))
                .unwrap()
                .pkru,
            0
        );
        assert!(fpu_from_xsave(&area[..100], &table).is_err());
    }
}

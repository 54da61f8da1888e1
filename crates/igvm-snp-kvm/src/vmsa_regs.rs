//! Translating an SEV-SNP VMSA into KVM vCPU state, for native runs and for
//! the fallback on kernels that cannot take a VMSA page.
//!
//! The pure functions ([`segment`], [`sregs`], [`regs`], [`fpu`], [`xcrs`],
//! [`msrs`]) map fields by name from [`SevVmsa`]; [`apply`] issues the
//! ioctls in the order KVM needs: `KVM_SET_CPUID2` (KVM checks CR4 against
//! the guest CPUID), `KVM_SET_SREGS`, `KVM_SET_REGS`, x87/SSE state through
//! `KVM_SET_XSAVE` (see [`write_xsave_legacy`] for why not `KVM_SET_FPU`),
//! `KVM_SET_XCRS`, `KVM_SET_MSRS`, `KVM_SET_DEBUGREGS`.
//!
//! In the fallback, KVM builds vCPU 0's VMSA from this state at
//! SNP_LAUNCH_FINISH (`sev_es_sync_vmsa()`); `igvm_snp::kvm_legacy::
//! boot_vmsa` predicts that page from the file's VMSA, and the two agree
//! field by field (`tests/fallback_model.rs` checks it against state read
//! back from `/dev/kvm`). Three choices here exist for that agreement: the
//! x87 registers are read in the VMSA's split layout ([`fpu`]), MXCSR goes
//! through `KVM_SET_XSAVE` ([`write_xsave_legacy`]), and a PAT of 0 is not
//! written ([`msr_writes`]). CR2 and DR0–DR3 are set, but only matter for
//! native runs: KVM's VMSA does not take them from the vCPU. The VMSA's YMM
//! upper halves, XSS, CET, DBGCTL and SPEC_CTRL are not loaded at all.

use igvm::snp_defs::SevSelector;
use igvm_snp::SevVmsa;
use kvm_bindings::{
    CpuId, Msrs, kvm_debugregs, kvm_dtable, kvm_fpu, kvm_msr_entry, kvm_regs, kvm_segment,
    kvm_sregs, kvm_xcrs, kvm_xsave,
};
use kvm_ioctls::{Cap, VcpuFd, VmFd};
use vmm_sys_util::errno;
use zerocopy::IntoBytes;

/// EFER.SVME: set in every SNP VMSA, meaningless (and harmful: it enables
/// nested SVM on AMD hosts) for a native guest.
pub const EFER_SVME: u64 = 1 << 12;
/// EFER.LME.
pub const EFER_LME: u64 = 1 << 8;
/// EFER.LMA.
pub const EFER_LMA: u64 = 1 << 10;
/// CR0.PG.
pub const CR0_PG: u64 = 1 << 31;

/// MSR numbers [`msrs`] sets, with their names.
pub const MSRS: [(u32, &str); 9] = [
    (MSR_PAT, "PAT"),
    (0xC000_0081, "STAR"),
    (0xC000_0082, "LSTAR"),
    (0xC000_0083, "CSTAR"),
    (0xC000_0084, "SFMASK"),
    (0xC000_0102, "KERNEL_GS_BASE"),
    (0x174, "SYSENTER_CS"),
    (0x175, "SYSENTER_ESP"),
    (0x176, "SYSENTER_EIP"),
];

/// Errors applying vCPU state or reading it back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VcpuStateError {
    /// An ioctl failed.
    #[error("{ioctl} failed: {source}")]
    Ioctl {
        /// The ioctl.
        ioctl: &'static str,
        /// The error.
        source: errno::Error,
    },
    /// `KVM_SET_MSRS` stopped early.
    #[error("KVM_SET_MSRS refused MSR {name} ({index:#x}) = {value:#x}")]
    MsrRefused {
        /// The MSR's name.
        name: &'static str,
        /// The MSR number.
        index: u32,
        /// The value.
        value: u64,
    },
    /// Building the MSR list failed.
    #[error("building the MSR list failed: {0}")]
    MsrList(String),
    /// `KVM_GET_MSRS` stopped early.
    #[error("KVM_GET_MSRS did not report MSR {name} ({index:#x})")]
    MsrUnreadable {
        /// The MSR's name.
        name: &'static str,
        /// The MSR number.
        index: u32,
    },
    /// `KVM_GET_XSAVE` reports an XSAVE component the vCPU's CPUID does not
    /// place within the area.
    #[error(
        "KVM_GET_XSAVE reports XSAVE component {component}, which CPUID does not place in the area"
    )]
    XsaveComponent {
        /// The component number (0 when the area is too short for the legacy region).
        component: u32,
    },
    /// KVM's XSAVE area is larger than `struct kvm_xsave` (dynamic XSTATE
    /// features such as AMX are enabled for guests of this process).
    #[error("KVM's XSAVE area is {size} bytes, more than the 4096 this crate passes")]
    XsaveTooLarge {
        /// The size `KVM_CAP_XSAVE2` reports.
        size: i32,
    },
    /// `KVM_GET_SREGS` reports a segment register that differs from the one
    /// `KVM_SET_SREGS` was given by more than KVM's getters change
    /// (`vmsa_sync::read_back_agrees`): KVM did not keep what was written.
    #[error("KVM_GET_SREGS reports {register} as {read:?}, but {written:?} was written")]
    SegmentReadBack {
        /// The register's name (`CS`, `TR`, ...).
        register: &'static str,
        /// What `KVM_SET_SREGS` was given.
        written: kvm_segment,
        /// What `KVM_GET_SREGS` reported.
        read: kvm_segment,
    },
}

/// Decodes a VMSA segment: AMD's 12-bit `attrib` has type(4) S DPL(2) P in
/// bits 7:0 and AVL L D/B G in bits 11:8. The limit is byte-granular as
/// stored (never shifted for G); `unusable` is `!present`.
pub fn segment(s: &SevSelector) -> kvm_segment {
    let a = s.attrib;
    let bit = |n: u16| ((a >> n) & 1) as u8;
    let present = bit(7);
    kvm_segment {
        base: s.base,
        limit: s.limit,
        selector: s.selector,
        type_: (a & 0xF) as u8,
        s: bit(4),
        dpl: ((a >> 5) & 3) as u8,
        present,
        avl: bit(8),
        l: bit(9),
        db: bit(10),
        g: bit(11),
        unusable: u8::from(present == 0),
        padding: 0,
    }
}

/// Decodes TR: as [`segment`], but always a present busy TSS — attrib 0
/// becomes a busy 32/64-bit TSS (type 11) and an available TSS type (1 or 9)
/// its busy form, since VMX refuses any other TR state.
pub fn task_register(s: &SevSelector) -> kvm_segment {
    let mut seg = segment(s);
    seg.type_ = match seg.type_ {
        1 => 3,
        3 | 11 => seg.type_,
        _ => 11,
    };
    seg.s = 0;
    seg.present = 1;
    seg.unusable = 0;
    seg
}

/// GDTR/IDTR: base and (16-bit) limit.
pub fn dtable(s: &SevSelector) -> kvm_dtable {
    kvm_dtable {
        base: s.base,
        limit: s.limit as u16,
        padding: [0; 3],
    }
}

/// EFER for KVM: SVME cleared, LMA = LME && CR0.PG (KVM_SET_SREGS refuses
/// LME+PG without LMA), every other bit kept.
pub fn efer(vmsa_efer: u64, cr0: u64) -> u64 {
    let mut efer = vmsa_efer & !EFER_SVME;
    if efer & EFER_LME != 0 && cr0 & CR0_PG != 0 {
        efer |= EFER_LMA;
    } else {
        efer &= !EFER_LMA;
    }
    efer
}

/// The special registers from the VMSA; `base` supplies what the VMSA does
/// not hold (APIC base, CR8, pending-interrupt bitmap).
pub fn sregs(v: &SevVmsa, base: &kvm_sregs) -> kvm_sregs {
    kvm_sregs {
        cs: segment(&v.cs),
        ds: segment(&v.ds),
        es: segment(&v.es),
        fs: segment(&v.fs),
        gs: segment(&v.gs),
        ss: segment(&v.ss),
        tr: task_register(&v.tr),
        ldt: segment(&v.ldtr),
        gdt: dtable(&v.gdtr),
        idt: dtable(&v.idtr),
        cr0: v.cr0,
        cr2: v.cr2,
        cr3: v.cr3,
        cr4: v.cr4,
        efer: efer(v.efer, v.cr0),
        ..*base
    }
}

/// Gives an AP the x86 reset segments as QEMU writes them at every reset
/// (`KVM_SET_SREGS`: accessed code and data types, CS 0x9B, data 0x93, TR
/// a busy 32-bit TSS 0x8B, LDTR 0x82), which is what
/// `igvm_snp::kvm_legacy::reset_vmsa` predicts and sev-snp-measure's QEMU
/// vectors hold. A vCPU KVM has only created differs by vendor: on AMD
/// `init_vmcb()` leaves CS 0x9A, data 0x92 and TR 0x83, so without this an
/// AP's VMSA, and the launch digest of two or more vCPUs, would not be the
/// predicted one. Everything but the segments is left as KVM reset it.
///
/// # Errors
/// [`VcpuStateError::Ioctl`] naming `KVM_GET_SREGS` or `KVM_SET_SREGS`.
pub fn set_ap_reset_segments(vcpu: &VcpuFd) -> Result<(), VcpuStateError> {
    let ioctl = |ioctl| move |source| VcpuStateError::Ioctl { ioctl, source };
    let current = vcpu.get_sregs().map_err(ioctl("KVM_GET_SREGS"))?;
    vcpu.set_sregs(&ap_reset_sregs(&current))
        .map_err(ioctl("KVM_SET_SREGS"))
}

/// What [`set_ap_reset_segments`] writes over a vCPU's `current` special
/// registers: the reset segments (CS, DS, ES, FS, GS, SS, TR, LDTR), the
/// rest as `current` has it.
pub fn ap_reset_sregs(current: &kvm_sregs) -> kvm_sregs {
    let inputs = igvm_snp::kvm_legacy::KvmLegacyInputs::new(1, 0, 0);
    let reset = sregs(&igvm_snp::kvm_legacy::reset_vmsa(&inputs), current);
    kvm_sregs {
        cs: reset.cs,
        ds: reset.ds,
        es: reset.es,
        fs: reset.fs,
        gs: reset.gs,
        ss: reset.ss,
        tr: reset.tr,
        ldt: reset.ldt,
        ..*current
    }
}

/// The general registers, RIP and RFLAGS.
///
/// With the test-only feature `planted-translation-error`, R15 is left out
/// (0), a translation error the fallback's digest check must catch.
pub fn regs(v: &SevVmsa) -> kvm_regs {
    let regs = kvm_regs {
        rax: v.rax,
        rbx: v.rbx,
        rcx: v.rcx,
        rdx: v.rdx,
        rsi: v.rsi,
        rdi: v.rdi,
        rsp: v.rsp,
        rbp: v.rbp,
        r8: v.r8,
        r9: v.r9,
        r10: v.r10,
        r11: v.r11,
        r12: v.r12,
        r13: v.r13,
        r14: v.r14,
        r15: v.r15,
        rip: v.rip,
        rflags: v.rflags,
    };
    #[cfg(feature = "planted-translation-error")]
    let regs = kvm_regs { r15: 0, ..regs };
    regs
}

/// x87 and SSE state. The VMSA keeps the abridged (FXSAVE) tag word, as
/// `kvm_fpu.ftwx` does. Its 80 bytes of x87 registers are not eight packed
/// 10-byte registers: bytes 0–7 of ST(i) are at `8i`, bytes 8–9 (sign and
/// exponent) at `64 + 2i` — the layout KVM writes in `sev_es_sync_vmsa()`
/// (arch/x86/kvm/svm/sev.c: "an 8*8 bytes area with bytes 0-7, and an 8*2
/// bytes area with bytes 8-9 of each register"), so a register read here and
/// synced back by KVM lands where the file had it.
pub fn fpu(v: &SevVmsa) -> kvm_fpu {
    let mut x87 = [0u8; 80];
    x87[..32].copy_from_slice(&v.x87_registers1);
    x87[32..64].copy_from_slice(&v.x87_registers2);
    x87[64..].copy_from_slice(&v.x87_registers3);
    let (mantissas, exponents) = x87.split_at(64);
    let mut fpr = [[0u8; 16]; 8];
    for ((reg, low), high) in fpr
        .iter_mut()
        .zip(mantissas.chunks_exact(8))
        .zip(exponents.chunks_exact(2))
    {
        reg[..8].copy_from_slice(low);
        reg[8..10].copy_from_slice(high);
    }
    let mut xmm = [[0u8; 16]; 16];
    for (reg, src) in xmm.iter_mut().zip(v.xmm_registers.iter()) {
        reg[..8].copy_from_slice(&src.low.to_le_bytes());
        reg[8..].copy_from_slice(&src.high.to_le_bytes());
    }
    kvm_fpu {
        fpr,
        fcw: v.x87_fcw,
        fsw: v.x87_fsw,
        ftwx: v.x87_ftw as u8,
        pad1: 0,
        last_opcode: v.x87_op,
        last_ip: v.x87_rip,
        last_dp: v.x87dp,
        xmm,
        mxcsr: v.mxcsr,
        pad2: 0,
    }
}

/// XCR0. A VMSA XCR0 of 0 (not a valid XCR0) becomes the reset value 1.
pub fn xcrs(v: &SevVmsa) -> kvm_xcrs {
    let mut x = kvm_xcrs {
        nr_xcrs: 1,
        ..Default::default()
    };
    x.xcrs[0].xcr = 0;
    x.xcrs[0].value = v.xcr0.max(1);
    x
}

/// The MSR values, in the order of [`MSRS`].
pub fn msr_values(v: &SevVmsa) -> [u64; 9] {
    [
        v.pat,
        v.star,
        v.lstar,
        v.cstar,
        v.sfmask,
        v.kernel_gs_base,
        v.sysenter_cs,
        v.sysenter_esp,
        v.sysenter_eip,
    ]
}

/// The MSRs [`apply`] writes, in the order of [`MSRS`], as `(index, name,
/// value)`: every one except a PAT of 0. A VMSA that leaves PAT 0 leaves it
/// unset, and the vCPU keeps its reset value 0x0007040600070406 — what
/// `igvm_snp::kvm_legacy::boot_vmsa` predicts KVM measures (KVM would keep
/// a written 0, a valid all-uncacheable PAT).
pub fn msr_writes(v: &SevVmsa) -> impl Iterator<Item = (u32, &'static str, u64)> + use<> {
    MSRS.into_iter()
        .zip(msr_values(v))
        .filter(|&((index, _), value)| !(index == MSR_PAT && value == 0))
        .map(|((index, name), value)| (index, name, value))
}

/// The PAT MSR.
const MSR_PAT: u32 = 0x277;

/// The `KVM_SET_MSRS` list: [`msr_writes`].
///
/// # Errors
/// [`VcpuStateError::MsrList`] if the list cannot be allocated.
pub fn msrs(v: &SevVmsa) -> Result<Msrs, VcpuStateError> {
    let entries: Vec<kvm_msr_entry> = msr_writes(v)
        .map(|(index, _, data)| kvm_msr_entry {
            index,
            data,
            ..Default::default()
        })
        .collect();
    Msrs::from_entries(&entries).map_err(|e| VcpuStateError::MsrList(format!("{e:?}")))
}

/// DR0–DR3, DR6, DR7.
pub fn debug_regs(v: &SevVmsa) -> kvm_debugregs {
    kvm_debugregs {
        db: [v.dr0, v.dr1, v.dr2, v.dr3],
        dr6: v.dr6,
        dr7: v.dr7,
        ..Default::default()
    }
}

/// Byte offset of XSTATE_BV in the XSAVE area.
const XSTATE_BV: usize = 512;
/// XSTATE_BV bits of the x87 and SSE components.
const XSTATE_X87_SSE: u8 = 0b11;

/// Writes x87/SSE state into the legacy (FXSAVE-format) part of an XSAVE
/// area — FCW 0, FSW 2, abridged FTW 4 (and 0 in its reserved byte 5), FOP 6, FIP 8, FDP 16, MXCSR 24,
/// ST0–7 from 32, XMM0–15 from 160; MXCSR_MASK (28) is left as KVM gave it —
/// and marks both components present in XSTATE_BV. A present bit matters:
/// KVM exports and loads a component whose bit is clear as its initial
/// state, whatever the area holds (observed: FCW set with `KVM_SET_FPU`
/// alone reads back 0x37F through `KVM_GET_XSAVE`). Areas shorter than the
/// legacy part plus the XSAVE header are left alone.
pub fn write_xsave_legacy(area: &mut [u8], f: &kvm_fpu) {
    if area.len() < XSTATE_BV + 8 {
        return;
    }
    area[0..2].copy_from_slice(&f.fcw.to_le_bytes());
    area[2..4].copy_from_slice(&f.fsw.to_le_bytes());
    // FTW is a 16-bit field whose high byte is reserved: KVM copies all 16
    // bits into the VMSA's x87_ftw, so clear the high byte.
    area[4..6].copy_from_slice(&u16::from(f.ftwx).to_le_bytes());
    area[6..8].copy_from_slice(&f.last_opcode.to_le_bytes());
    area[8..16].copy_from_slice(&f.last_ip.to_le_bytes());
    area[16..24].copy_from_slice(&f.last_dp.to_le_bytes());
    area[24..28].copy_from_slice(&f.mxcsr.to_le_bytes());
    for (dst, src) in area[32..160].chunks_exact_mut(16).zip(f.fpr.iter()) {
        dst.copy_from_slice(src);
    }
    for (dst, src) in area[160..416].chunks_exact_mut(16).zip(f.xmm.iter()) {
        dst.copy_from_slice(src);
    }
    area[XSTATE_BV] |= XSTATE_X87_SSE;
}

/// Sets the x87/SSE state (including MXCSR, which `KVM_SET_FPU` does not
/// transfer) through `KVM_GET_XSAVE`/`KVM_SET_XSAVE` with the 4096-byte
/// `kvm_xsave`, after checking that KVM's XSAVE size (`KVM_CAP_XSAVE2`)
/// fits it; larger sizes only arise when the process enabled dynamic XSTATE
/// features (AMX) for guests.
fn set_fpu_state(vm: &VmFd, vcpu: &VcpuFd, f: &kvm_fpu) -> Result<(), VcpuStateError> {
    let ioctl = |ioctl| move |source| VcpuStateError::Ioctl { ioctl, source };
    let size = vm.check_extension_int(Cap::Xsave2);
    if size < 0 {
        // The size is unknown: refuse rather than guess it fits.
        return Err(ioctl("KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2)")(
            errno::Error::last(),
        ));
    }
    if usize::try_from(size).is_ok_and(|s| s > std::mem::size_of::<kvm_xsave>()) {
        return Err(VcpuStateError::XsaveTooLarge { size });
    }
    let mut xsave = vcpu.get_xsave().map_err(ioctl("KVM_GET_XSAVE"))?;
    write_xsave_legacy(xsave.region.as_mut_bytes(), f);
    // SAFETY: KVM_SET_XSAVE reads KVM's XSAVE size for this vCPU, which
    // KVM_CAP_XSAVE2 reports (0 for kernels without it, which predate
    // dynamic sizes and read exactly `sizeof(struct kvm_xsave)`; checked
    // above to be at most that, the size of `xsave`). The size cannot grow
    // between the check and this call: the guest's XSTATE permissions are
    // locked once a vCPU exists, as `vcpu` does, and KVM_GET_XSAVE above
    // would also have failed (EINVAL) for a larger one.
    unsafe { vcpu.set_xsave(&xsave) }.map_err(ioctl("KVM_SET_XSAVE"))
}

/// Loads the VMSA into a vCPU of `vm`: `KVM_SET_CPUID2` with `cpuid`
/// (normally `Kvm::get_supported_cpuid`) first, then special registers,
/// general registers, x87/SSE state, XCR0, MSRs and debug registers.
///
/// # Errors
/// [`VcpuStateError::Ioctl`] naming the ioctl KVM refused, or
/// [`VcpuStateError::MsrRefused`] naming the first MSR it did not set.
pub fn apply(vm: &VmFd, vcpu: &VcpuFd, cpuid: &CpuId, v: &SevVmsa) -> Result<(), VcpuStateError> {
    let ioctl = |ioctl| move |source| VcpuStateError::Ioctl { ioctl, source };
    vcpu.set_cpuid2(cpuid).map_err(ioctl("KVM_SET_CPUID2"))?;
    let current = vcpu.get_sregs().map_err(ioctl("KVM_GET_SREGS"))?;
    vcpu.set_sregs(&sregs(v, &current))
        .map_err(ioctl("KVM_SET_SREGS"))?;
    vcpu.set_regs(&regs(v)).map_err(ioctl("KVM_SET_REGS"))?;
    set_fpu_state(vm, vcpu, &fpu(v))?;
    vcpu.set_xcrs(&xcrs(v)).map_err(ioctl("KVM_SET_XCRS"))?;
    let list = msrs(v)?;
    let set = vcpu.set_msrs(&list).map_err(ioctl("KVM_SET_MSRS"))?;
    if let Some((index, name, value)) = msr_writes(v).nth(set) {
        return Err(VcpuStateError::MsrRefused { name, index, value });
    }
    vcpu.set_debug_regs(&debug_regs(v))
        .map_err(ioctl("KVM_SET_DEBUGREGS"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use igvm::snp_defs::SevXmmRegister;
    use zerocopy::FromZeros;

    fn sel(selector: u16, attrib: u16, limit: u32, base: u64) -> SevSelector {
        SevSelector {
            selector,
            attrib,
            limit,
            base,
        }
    }

    #[test]
    fn long_mode_code_segment_decodes() {
        let s = segment(&sel(0x08, 0xA9B, 0xFFFF_FFFF, 0x1234));
        assert_eq!(s.type_, 0xB);
        assert_eq!((s.s, s.dpl, s.present), (1, 0, 1));
        assert_eq!((s.avl, s.l, s.db, s.g), (0, 1, 0, 1));
        assert_eq!(s.unusable, 0);
        assert_eq!((s.selector, s.limit, s.base), (0x08, 0xFFFF_FFFF, 0x1234));
    }

    #[test]
    fn every_attribute_bit_lands_in_its_field() {
        // DPL 3, AVL, D/B; type 0x3, not S, not present.
        let s = segment(&sel(0, 0x0563, 0, 0));
        assert_eq!(s.type_, 3);
        assert_eq!(s.s, 0);
        assert_eq!(s.dpl, 3);
        assert_eq!(s.present, 0);
        assert_eq!(s.unusable, 1);
        assert_eq!((s.avl, s.l, s.db, s.g), (1, 0, 1, 0));
        // S alone and DPL 1.
        let s = segment(&sel(0, 0x0030, 0, 0));
        assert_eq!((s.s, s.dpl, s.type_), (1, 1, 0));
    }

    #[test]
    fn limit_is_not_scaled_by_granularity() {
        let s = segment(&sel(0x10, 0xC93, 0xFFFF_FFFF, 0));
        assert_eq!((s.g, s.db, s.limit), (1, 1, 0xFFFF_FFFF));
        let s = segment(&sel(0x10, 0x893, 0xFFFFF, 0));
        assert_eq!((s.g, s.limit), (1, 0xFFFFF));
    }

    #[test]
    fn task_register_always_busy_and_present() {
        let t = task_register(&sel(0, 0, 0xFFFF, 0));
        assert_eq!((t.type_, t.present, t.unusable, t.s), (11, 1, 0, 0));
        assert_eq!(task_register(&sel(0, 0x89, 0x67, 0)).type_, 11);
        assert_eq!(task_register(&sel(0, 0x81, 0x67, 0)).type_, 3);
        assert_eq!(task_register(&sel(0, 0x83, 0x67, 0)).type_, 3);
        let t = task_register(&sel(0x28, 0x8B, 0x67, 0x5000));
        assert_eq!(
            (t.type_, t.selector, t.limit, t.base),
            (11, 0x28, 0x67, 0x5000)
        );
    }

    #[test]
    fn efer_drops_svme_and_derives_lma() {
        assert_eq!(efer(0x1000, 0x11), 0);
        assert_eq!(efer(0x1D00, 0x8000_0011), 0xD00);
        assert_eq!(efer(0x1100, 0x8000_0011), 0x500);
        // LME without paging: no LMA, even if the VMSA claims it.
        assert_eq!(efer(0x500, 0x11), 0x100);
        // NXE (bit 11) and SCE (bit 0) survive.
        assert_eq!(efer(0x1901, 0x8000_0011), 0xD01);
    }

    fn sample() -> SevVmsa {
        let mut v = SevVmsa::new_zeroed();
        v.es = sel(1, 0x93, 0x11, 0x100);
        v.cs = sel(2, 0x9B, 0x22, 0x200);
        v.ss = sel(3, 0x93, 0x33, 0x300);
        v.ds = sel(4, 0x93, 0x44, 0x400);
        v.fs = sel(5, 0x93, 0x55, 0x500);
        v.gs = sel(6, 0x93, 0x66, 0x600);
        v.gdtr = sel(0, 0, 0x1_0027, 0x7000);
        v.idtr = sel(0, 0, 0xFF, 0x8000);
        v.ldtr = sel(7, 0x82, 0x77, 0x700);
        v.tr = sel(8, 0x8B, 0x88, 0x800);
        v.cr0 = 0x8000_0011;
        v.cr2 = 0xC2;
        v.cr3 = 0x3000;
        v.cr4 = 0x20;
        v.efer = 0x1500;
        v
    }

    #[test]
    fn sregs_map_segments_by_name() {
        let v = sample();
        let base = kvm_sregs {
            apic_base: 0xFEE0_0900,
            cr8: 5,
            ..Default::default()
        };
        let s = sregs(&v, &base);
        // kvm_sregs order (cs, ds, es, fs, gs, ss) differs from the VMSA's
        // (es, cs, ss, ds, fs, gs): each must keep its own selector.
        let got = [
            s.es.selector,
            s.cs.selector,
            s.ss.selector,
            s.ds.selector,
            s.fs.selector,
            s.gs.selector,
        ];
        assert_eq!(got, [1, 2, 3, 4, 5, 6]);
        assert_eq!((s.cs.base, s.cs.limit, s.cs.type_), (0x200, 0x22, 0xB));
        assert_eq!((s.ds.base, s.ss.base, s.gs.limit), (0x400, 0x300, 0x66));
        assert_eq!((s.ldt.selector, s.ldt.type_, s.ldt.base), (7, 2, 0x700));
        assert_eq!((s.tr.selector, s.tr.type_, s.tr.base), (8, 11, 0x800));
        // 16-bit limits.
        assert_eq!((s.gdt.base, s.gdt.limit), (0x7000, 0x0027));
        assert_eq!((s.idt.base, s.idt.limit), (0x8000, 0xFF));
        assert_eq!(
            (s.cr0, s.cr2, s.cr3, s.cr4),
            (0x8000_0011, 0xC2, 0x3000, 0x20)
        );
        assert_eq!(s.efer, 0x500);
        assert_eq!((s.apic_base, s.cr8), (0xFEE0_0900, 5));
    }

    #[test]
    fn real_mode_cs_base_comes_from_the_vmsa() {
        let mut v = SevVmsa::new_zeroed();
        v.cs = sel(0xF000, 0x9B, 0xFFFF, 0xFFFF_0000);
        let s = sregs(&v, &kvm_sregs::default());
        assert_eq!(s.cs.base, 0xFFFF_0000);
        assert_eq!(s.cs.selector, 0xF000);
    }

    #[test]
    fn general_registers_by_name() {
        let mut v = SevVmsa::new_zeroed();
        v.rax = 1;
        v.rbx = 2;
        v.rcx = 3;
        v.rdx = 4;
        v.rsi = 5;
        v.rdi = 6;
        v.rsp = 7;
        v.rbp = 8;
        v.r8 = 9;
        v.r9 = 10;
        v.r10 = 11;
        v.r11 = 12;
        v.r12 = 13;
        v.r13 = 14;
        v.r14 = 15;
        v.r15 = 16;
        v.rip = 17;
        v.rflags = 0x202;
        let r = regs(&v);
        let got = [
            r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rsp, r.rbp, r.r8, r.r9, r.r10, r.r11,
            r.r12, r.r13, r.r14, r.r15, r.rip,
        ];
        assert_eq!(
            got,
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]
        );
        assert_eq!(r.rflags, 0x202);
    }

    #[test]
    fn fpu_state() {
        let mut v = SevVmsa::new_zeroed();
        v.x87_fcw = 0x37F;
        v.x87_fsw = 0x1234;
        v.x87_ftw = 0x00FF;
        v.x87_op = 0x5A5;
        v.x87_rip = 0xAABB;
        v.x87dp = 0xCCDD;
        v.mxcsr = 0x1F80;
        for i in 0..32 {
            v.x87_registers1[i] = i as u8;
            v.x87_registers2[i] = 32 + i as u8;
        }
        for i in 0..16 {
            v.x87_registers3[i] = 64 + i as u8;
        }
        v.xmm_registers[3] = SevXmmRegister {
            low: 0x0706_0504_0302_0100,
            high: 0x0F0E_0D0C_0B0A_0908,
        };
        let f = fpu(&v);
        assert_eq!((f.fcw, f.fsw, f.ftwx), (0x37F, 0x1234, 0xFF));
        assert_eq!(
            (f.last_opcode, f.last_ip, f.last_dp),
            (0x5A5, 0xAABB, 0xCCDD)
        );
        assert_eq!(f.mxcsr, 0x1F80);
        // ST(1): bytes 8..16 of the area, then bytes 66..68; the rest of
        // its 16-byte slot is 0.
        assert_eq!(
            f.fpr[1],
            [8, 9, 10, 11, 12, 13, 14, 15, 66, 67, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            f.fpr[7],
            [56, 57, 58, 59, 60, 61, 62, 63, 78, 79, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(&f.fpr[0][..10], &[0, 1, 2, 3, 4, 5, 6, 7, 64, 65]);
        assert_eq!(
            f.xmm[3],
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
        );
        assert_eq!(f.xmm[2], [0; 16]);
    }

    #[test]
    fn xsave_legacy_area_layout() {
        let mut f = kvm_fpu {
            fcw: 0x027F,
            fsw: 0x3800,
            ftwx: 0x81,
            last_opcode: 0x0123,
            last_ip: 0x1122_3344_5566_7788,
            last_dp: 0x99AA_BBCC_DDEE_FF00,
            mxcsr: 0x1FA0,
            ..Default::default()
        };
        f.fpr[1] = [0xF1; 16];
        f.xmm[15] = [0xE5; 16];
        let mut area = vec![0u8; 4096];
        area[28..32].copy_from_slice(&0xFFFFu32.to_le_bytes()); // MXCSR_MASK
        area[512] = 0b100; // AVX already present
        area[5] = 0xEE; // FTW's reserved high byte: cleared
        write_xsave_legacy(&mut area, &f);
        assert_eq!(&area[0..8], &[0x7F, 0x02, 0x00, 0x38, 0x81, 0, 0x23, 0x01]);
        assert_eq!(&area[8..16], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(&area[16..24], &0x99AA_BBCC_DDEE_FF00u64.to_le_bytes());
        assert_eq!(&area[24..32], &[0xA0, 0x1F, 0, 0, 0xFF, 0xFF, 0, 0]);
        assert_eq!(&area[32..48], &[0; 16]);
        assert_eq!(&area[48..64], &[0xF1; 16]);
        assert_eq!(&area[400..416], &[0xE5; 16]);
        assert_eq!(&area[416..512], &[0; 96]);
        assert_eq!(area[512], 0b111);
        // Too short for the header: untouched.
        let mut short = vec![0u8; 516];
        write_xsave_legacy(&mut short, &f);
        assert!(short.iter().all(|&b| b == 0));
    }

    #[test]
    fn xcr0_msrs_and_debug_registers() {
        let mut v = SevVmsa::new_zeroed();
        assert_eq!(xcrs(&v).xcrs[0].value, 1);
        // A zero PAT is left unwritten; the other MSRs are written as 0.
        let unset: Vec<u32> = msrs(&v)
            .unwrap()
            .as_slice()
            .iter()
            .map(|e| e.index)
            .collect();
        assert_eq!(unset, MSRS[1..].iter().map(|m| m.0).collect::<Vec<_>>());
        assert_eq!(msr_writes(&v).next(), Some((0xC000_0081, "STAR", 0)));
        v.xcr0 = 7;
        let x = xcrs(&v);
        assert_eq!((x.nr_xcrs, x.xcrs[0].xcr, x.xcrs[0].value), (1, 0, 7));
        v.pat = 0x0007_0406_0007_0406;
        v.star = 2;
        v.lstar = 3;
        v.cstar = 4;
        v.sfmask = 5;
        v.kernel_gs_base = 6;
        v.sysenter_cs = 7;
        v.sysenter_esp = 8;
        v.sysenter_eip = 9;
        let list = msrs(&v).unwrap();
        let got: Vec<(u32, u64)> = list.as_slice().iter().map(|e| (e.index, e.data)).collect();
        assert_eq!(
            got,
            vec![
                (0x277, 0x0007_0406_0007_0406),
                (0xC000_0081, 2),
                (0xC000_0082, 3),
                (0xC000_0083, 4),
                (0xC000_0084, 5),
                (0xC000_0102, 6),
                (0x174, 7),
                (0x175, 8),
                (0x176, 9),
            ]
        );
        v.dr0 = 1;
        v.dr3 = 4;
        v.dr6 = 0xFFFF_0FF0;
        v.dr7 = 0x400;
        let d = debug_regs(&v);
        assert_eq!((d.db, d.dr6, d.dr7), ([1, 0, 0, 4], 0xFFFF_0FF0, 0x400));
    }
}

//! `vmsa_regs::apply` on a real vCPU: every translated field reads back
//! from KVM as the VMSA gave it (with EFER.SVME dropped), and a value KVM
//! refuses is reported by name.

use igvm_snp_test_support as common;

use common::flat_vmsa;
use igvm::snp_defs::{SevVmsa, SevXmmRegister};
use igvm_snp_kvm::kvm_check::kvm_or_skip;
use igvm_snp_kvm::vmsa_regs::{self, MSRS, VcpuStateError};
use kvm_bindings::{KVM_MAX_CPUID_ENTRIES, Msrs, kvm_msr_entry};
use kvm_ioctls::VcpuFd;

/// A 64-bit VMSA with a distinct value in every field `apply` sets.
fn long_mode_vmsa() -> SevVmsa {
    let mut v = flat_vmsa(0x1000, 0xA9B, 0x6000);
    v.cr0 = 0x8000_0011;
    v.cr3 = 0x2000;
    v.cr4 = 0x20;
    v.efer = 0x1500; // SVME | LMA | LME
    v.fs.base = 0x1111_0000;
    v.gs.base = 0x2222_0000;
    v.idtr.base = 0x7000;
    v.idtr.limit = 0xFFF;
    (v.rax, v.rbx, v.rcx, v.rdx) = (0xA1, 0xB2, 0xC3, 0xD4);
    (v.rsi, v.rdi, v.rsp, v.rbp) = (0x51, 0xD1, 0x8000, 0xB9);
    (v.r8, v.r9, v.r10, v.r11) = (8, 9, 10, 11);
    (v.r12, v.r13, v.r14, v.r15) = (12, 13, 14, 15);
    v.rflags = 0x46;
    v.pat = 0x0007_0406_0007_0405;
    v.star = 0x0023_0010_0000_0000;
    v.lstar = 0xFFFF_8000_0000_1000;
    v.cstar = 0xFFFF_8000_0000_2000;
    v.sfmask = 0x4_7700;
    v.kernel_gs_base = 0xFFFF_8000_0000_3000;
    v.sysenter_cs = 0x10;
    v.sysenter_esp = 0x9000;
    v.sysenter_eip = 0xA000;
    v.xcr0 = 3;
    v.x87_fcw = 0x27F;
    v.mxcsr = 0x1FA0;
    v.xmm_registers[5] = SevXmmRegister {
        low: 0x1122_3344_5566_7788,
        high: 0x99AA_BBCC_DDEE_FF00,
    };
    v.dr0 = 0x1234;
    v.dr7 = 0x401;
    v
}

/// Applies `v` to vCPU 0 of a new VM; `None` when KVM is skipped.
fn applied(test: &str, v: &SevVmsa) -> Option<(VcpuFd, Result<(), VcpuStateError>)> {
    let kvm = kvm_or_skip(test)?;
    let vm = kvm.create_vm_with_type(0).unwrap();
    let vcpu = vm.create_vcpu(0).unwrap();
    let cpuid = kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).unwrap();
    let result = vmsa_regs::apply(&vm, &vcpu, &cpuid, v);
    Some((vcpu, result))
}

#[test]
fn applied_state_reads_back() {
    let Some((vcpu, result)) = applied("applied_state_reads_back", &long_mode_vmsa()) else {
        return;
    };
    result.unwrap();

    let s = vcpu.get_sregs().unwrap();
    assert_eq!((s.cs.selector, s.cs.l, s.cs.db, s.cs.g), (0x08, 1, 0, 1));
    assert_eq!(
        (s.cs.type_, s.cs.present, s.cs.limit),
        (0xB, 1, 0xFFFF_FFFF)
    );
    assert_eq!(
        (s.ds.selector, s.ss.selector, s.es.selector),
        (0x10, 0x10, 0x10)
    );
    assert_eq!((s.fs.base, s.gs.base), (0x1111_0000, 0x2222_0000));
    assert_eq!((s.gdt.base, s.gdt.limit), (0x6000, 23));
    assert_eq!((s.idt.base, s.idt.limit), (0x7000, 0xFFF));
    assert_eq!((s.cr0, s.cr3, s.cr4), (0x8000_0011, 0x2000, 0x20));
    assert_eq!(s.efer, 0x500);
    assert_eq!((s.tr.type_, s.tr.present), (11, 1));

    let r = vcpu.get_regs().unwrap();
    assert_eq!((r.rax, r.rbx, r.rcx, r.rdx), (0xA1, 0xB2, 0xC3, 0xD4));
    assert_eq!((r.rsi, r.rdi, r.rsp, r.rbp), (0x51, 0xD1, 0x8000, 0xB9));
    assert_eq!((r.r8, r.r9, r.r10, r.r11), (8, 9, 10, 11));
    assert_eq!((r.r12, r.r13, r.r14, r.r15), (12, 13, 14, 15));
    assert_eq!((r.rip, r.rflags), (0x1000, 0x46));

    let f = vcpu.get_fpu().unwrap();
    assert_eq!(f.fcw, 0x27F);
    // MXCSR is byte 24 of the XSAVE area (KVM_GET_FPU does not report it).
    let xsave = vcpu.get_xsave().unwrap();
    assert_eq!(xsave.region[6], 0x1FA0);
    assert_eq!(
        f.xmm[5],
        [
            0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x00, 0xFF, 0xEE, 0xDD, 0xCC, 0xBB,
            0xAA, 0x99
        ]
    );

    let x = vcpu.get_xcrs().unwrap();
    assert_eq!((x.nr_xcrs, x.xcrs[0].xcr, x.xcrs[0].value), (1, 0, 3));

    let entries: Vec<kvm_msr_entry> = MSRS
        .iter()
        .map(|&(index, _)| kvm_msr_entry {
            index,
            ..Default::default()
        })
        .collect();
    let mut msrs = Msrs::from_entries(&entries).unwrap();
    assert_eq!(vcpu.get_msrs(&mut msrs).unwrap(), MSRS.len());
    let got: Vec<u64> = msrs.as_slice().iter().map(|e| e.data).collect();
    assert_eq!(
        got,
        vec![
            0x0007_0406_0007_0405,
            0x0023_0010_0000_0000,
            0xFFFF_8000_0000_1000,
            0xFFFF_8000_0000_2000,
            0x4_7700,
            0xFFFF_8000_0000_3000,
            0x10,
            0x9000,
            0xA000,
        ]
    );

    let d = vcpu.get_debug_regs().unwrap();
    assert_eq!((d.db[0], d.dr7), (0x1234, 0x401));
}

#[test]
fn refused_msr_is_named() {
    let mut v = long_mode_vmsa();
    // A non-canonical LSTAR: KVM refuses it (and stops at it).
    v.lstar = 0x8000_0000_0000_0000;
    let Some((_, result)) = applied("refused_msr_is_named", &v) else {
        return;
    };
    match result {
        Err(VcpuStateError::MsrRefused { name, index, value }) => {
            assert_eq!(
                (name, index, value),
                ("LSTAR", 0xC000_0082, 0x8000_0000_0000_0000)
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn long_mode_without_pae_is_refused_with_the_ioctl_named() {
    let mut v = long_mode_vmsa();
    v.cr4 = 0; // LMA without CR4.PAE is not a valid state.
    let test = "long_mode_without_pae_is_refused_with_the_ioctl_named";
    let Some((_, result)) = applied(test, &v) else {
        return;
    };
    match result {
        Err(VcpuStateError::Ioctl { ioctl, .. }) => assert_eq!(ioctl, "KVM_SET_SREGS"),
        other => panic!("unexpected {other:?}"),
    }
}

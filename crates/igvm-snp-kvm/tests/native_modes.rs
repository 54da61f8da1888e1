//! Native runs of hand-built SEV-SNP IGVM files whose VMSAs start the guest
//! in 32-bit protected mode and in 64-bit long mode. Each guest sums the
//! bytes of a data page loaded just below 4 GiB (a region outside RAM) and
//! prints the sum, so the output depends on the pages the plan loaded;
//! the 64-bit guest also only runs if its page tables (page data in the
//! file) arrived intact.

mod common;

use std::time::Duration;

use common::asm;
use common::{byte_sum_hex, flat_vmsa, pattern_page, snp_igvm, snp_igvm_with_flags};
use igvm::snp_defs::SevVmsa;
use igvm_defs::IgvmPageDataFlags;
use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, PageType, PlanOptions};
use igvm_snp_kvm::kvm_check::kvm_or_skip;
use igvm_snp_kvm::native::{NativeConfig, NativeOutcome, NativeVm};

const CODE: u64 = 0x1000;
const PML4: u64 = 0x2000;
const PDPT: u64 = 0x3000;
const PD_LOW: u64 = 0x4000;
const PD_4G: u64 = 0x5000;
const GDT: u64 = 0x6000;
/// The data page, outside the 2 MiB of RAM.
const DATA: u64 = 0xFFFF_E000;

fn ram() -> Vec<GpaRange> {
    vec![GpaRange::new(0, 2 << 20)]
}

/// Runs `bytes` natively; returns the outcome and the serial output.
fn run(bytes: &[u8]) -> (NativeOutcome, String) {
    let plan =
        LaunchPlan::new(bytes, &LaunchConfig::new(1, ram()), PlanOptions::default()).unwrap();
    let mut out = Vec::new();
    let config = NativeConfig::new(ram(), Duration::from_secs(10));
    let outcome = NativeVm::run_plan(&plan, &config, |b| out.extend_from_slice(b)).unwrap();
    (outcome, String::from_utf8_lossy(&out).into_owned())
}

/// Flat 32-bit protected mode: CS attrib 0xC9B (type 0xB, S, P, D/B, G),
/// GDTR at a real GDT, CR0 = PE|ET, no paging.
fn protected_mode_vmsa() -> SevVmsa {
    flat_vmsa(CODE, 0xC9B, GDT)
}

/// A protected-mode file whose data page has page-data `flags`.
fn protected_mode_file(data: &[u8], flags: IgvmPageDataFlags) -> Vec<u8> {
    let code = asm::sum_and_print(CODE as u32, DATA as u32, "PM32 sum ");
    let normal = IgvmPageDataFlags::new();
    snp_igvm_with_flags(
        &[
            (CODE, code, normal),
            (GDT, asm::gdt32(), normal),
            (DATA, data.to_vec(), flags),
        ],
        protected_mode_vmsa(),
    )
}

/// 64-bit long mode: CS 0x08 with attrib 0xA9B (L=1, D/B=0, G, P, S, type
/// 0xB); CR0 = PG|PE|ET, CR4 = PAE, EFER = LME|LMA (|SVME, as in SNP
/// VMSAs; the translation drops it), CR3 at a PML4 from the file.
fn long_mode_vmsa() -> SevVmsa {
    let mut v = flat_vmsa(CODE, 0xA9B, GDT);
    v.cr0 = 0x8000_0011;
    v.cr3 = PML4;
    v.cr4 = 0x20;
    v.efer = 0x1500;
    v
}

/// A long-mode file: `code` at CODE, page tables, GDT and `data` at DATA.
fn long_mode_file(code: Vec<u8>, data: &[u8], vmsa: SevVmsa) -> Vec<u8> {
    // Identity map with 2 MiB pages (P|RW|PS = 0x83): PD_LOW[0] maps
    // 0..2 MiB (code, tables), PD_4G[511] maps 0xFFE00000..4 GiB (data).
    let pml4 = asm::table(&[(0, PDPT | 3)]);
    let pdpt = asm::table(&[(0, PD_LOW | 3), (3, PD_4G | 3)]);
    let pd_low = asm::table(&[(0, 0x83)]);
    let pd_4g = asm::table(&[(511, 0xFFE0_0000 | 0x83)]);
    snp_igvm(
        &[
            (CODE, code),
            (PML4, pml4),
            (PDPT, pdpt),
            (PD_LOW, pd_low),
            (PD_4G, pd_4g),
            (GDT, asm::gdt64()),
            (DATA, data.to_vec()),
        ],
        vmsa,
    )
}

#[test]
fn protected_mode_guest_prints_its_data_sum() {
    if kvm_or_skip("protected_mode_guest_prints_its_data_sum").is_none() {
        return;
    }
    // The data page as a NORMAL, a shared (host-visible, loaded but not
    // launched) and an UNMEASURED page: each must reach guest memory.
    let flags = IgvmPageDataFlags::new();
    for (data, flags, planned_as) in [
        (pattern_page(13, 5), flags, Some(PageType::Normal)),
        (pattern_page(1, 200), flags.with_shared(true), None),
        (
            pattern_page(7, 1),
            flags.with_unmeasured(true),
            Some(PageType::Unmeasured),
        ),
    ] {
        let bytes = protected_mode_file(&data, flags);
        // The plan really treats the data page that way (None: shared run).
        let plan =
            LaunchPlan::new(&bytes, &LaunchConfig::new(1, ram()), PlanOptions::default()).unwrap();
        let step_type = plan
            .steps()
            .iter()
            .find(|s| s.gpa == DATA)
            .map(|s| s.page_type);
        assert_eq!(step_type, planned_as);
        assert_eq!(
            plan.shared_runs().iter().any(|r| r.gpa == DATA),
            planned_as.is_none()
        );
        let (outcome, out) = run(&bytes);
        assert!(
            matches!(outcome, NativeOutcome::Halted { .. }),
            "{outcome:?}"
        );
        assert_eq!(out, format!("PM32 sum {}\n", byte_sum_hex(&data)));
    }
}

#[test]
fn long_mode_guest_prints_its_data_sum() {
    if kvm_or_skip("long_mode_guest_prints_its_data_sum").is_none() {
        return;
    }
    for data in [pattern_page(31, 17), vec![0xFF; 4096]] {
        let code = asm::sum_and_print(CODE as u32, DATA as u32, "LM64 sum ");
        let (outcome, out) = run(&long_mode_file(code, &data, long_mode_vmsa()));
        assert!(
            matches!(outcome, NativeOutcome::Halted { .. }),
            "{outcome:?}"
        );
        assert_eq!(out, format!("LM64 sum {}\n", byte_sum_hex(&data)));
    }
    // All 0xFF bytes: 4096 * 255.
    assert_eq!(byte_sum_hex(&[0xFF; 4096]), "000FF000");
}

//! Tiny SEV-SNP IGVM guests that run natively: their VMSAs start them in
//! 32-bit protected mode or 64-bit long mode; each sums the bytes of a data
//! page loaded just below 4 GiB and prints the sum on COM1, so their output
//! depends on the pages the plan loaded (and, in long mode, on the file's
//! page tables arriving intact).

use igvm::snp_defs::SevVmsa;
use igvm_defs::IgvmPageDataFlags;

use crate::asm;
use crate::files::{flat_vmsa, snp_igvm, snp_igvm_with_flags};

/// The code page.
pub const CODE: u64 = 0x1000;
/// The long-mode page tables: PML4, PDPT and two page directories.
pub const PML4: u64 = 0x2000;
/// The PDPT.
pub const PDPT: u64 = 0x3000;
/// The page directory of the low 1 GiB.
pub const PD_LOW: u64 = 0x4000;
/// The page directory of the 1 GiB below 4 GiB.
pub const PD_4G: u64 = 0x5000;
/// The GDT.
pub const GDT: u64 = 0x6000;
/// The data page, outside 2 MiB of RAM.
pub const DATA: u64 = 0xFFFF_E000;

/// Flat 32-bit protected mode: CS attrib 0xC9B (type 0xB, S, P, D/B, G),
/// GDTR at a real GDT, CR0 = PE|ET, no paging.
pub fn protected_mode_vmsa() -> SevVmsa {
    flat_vmsa(CODE, 0xC9B, GDT)
}

/// A protected-mode file whose data page has page-data `flags`.
pub fn protected_mode_file(data: &[u8], flags: IgvmPageDataFlags) -> Vec<u8> {
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
pub fn long_mode_vmsa() -> SevVmsa {
    let mut v = flat_vmsa(CODE, 0xA9B, GDT);
    v.cr0 = 0x8000_0011;
    v.cr3 = PML4;
    v.cr4 = 0x20;
    v.efer = 0x1500;
    v
}

/// A long-mode file: `code` at CODE, page tables, GDT and `data` at DATA.
pub fn long_mode_file(code: Vec<u8>, data: &[u8], vmsa: SevVmsa) -> Vec<u8> {
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

/// A protected-mode guest printing `PM32 sum ` and the byte sum of `data`.
pub fn protected_mode_guest(data: &[u8]) -> Vec<u8> {
    protected_mode_file(data, IgvmPageDataFlags::new())
}

/// A long-mode guest printing `LM64 sum ` and the byte sum of `data`.
pub fn long_mode_guest(data: &[u8]) -> Vec<u8> {
    let code = asm::sum_and_print(CODE as u32, DATA as u32, "LM64 sum ");
    long_mode_file(code, data, long_mode_vmsa())
}

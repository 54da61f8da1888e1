//! Guest memory as a rust-vmm VMM holds it: vm-memory's
//! [`GuestMemoryMmap`] (the VMM's, or [`anonymous`] memory made here),
//! reached only through volatile accesses, since a running vCPU may write it
//! at any time.
//!
//! * [`layout_for`]: which GPA ranges a plan needs (RAM, required memory,
//!   pages loaded outside RAM); [`regions_outside_ram`]: the same without
//!   RAM, for a VMM that maps its RAM itself.
//! * [`load_plan`]: writes a plan's pages into any
//!   [`GuestMemoryBackend`] (as linux-loader's loaders take their memory).
//! * [`discard`]: gives a range's pages back to the host (it reads as zero
//!   again), e.g. a launched window whose private copy lives in guest_memfd.
//! * [`Memslots`]: registers a [`GuestMemoryMmap`] with a KVM VM, in two
//!   flavours: plain (`KVM_SET_USER_MEMORY_REGION`, native VMs) and
//!   guest_memfd-backed (`KVM_CREATE_GUEST_MEMFD` +
//!   `KVM_SET_USER_MEMORY_REGION2`, SEV-SNP, whose private pages live in the
//!   guest_memfd while the mapping holds the shared view); memory
//!   attributes. Memslots are deleted before the memory they use can be
//!   unmapped.

mod discard;
mod layout;
mod load;
mod memslots;

use std::io;

use igvm_snp::{GpaRange, PAGE_SIZE};
use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::Kvm;
use vm_memory::bitmap::NewBitmap;
use vmm_sys_util::errno;

pub use discard::discard;
pub use layout::{LayoutOptions, layout_for, regions_outside_ram};
pub use load::{LoadOptions, load_pages, load_plan};
pub use memslots::{Memslots, VmHandle};
pub use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

const PAGE: u64 = PAGE_SIZE as u64;

/// Errors of guest memory setup and access.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryError {
    /// A layout range is empty, unaligned or overflows.
    #[error("invalid memory range {gpa:#x}+{size:#x}: {reason}")]
    InvalidRange {
        /// First GPA.
        gpa: u64,
        /// Size in bytes.
        size: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// Two layout ranges overlap.
    #[error("memory ranges overlap at GPA {gpa:#x}")]
    Overlap {
        /// First GPA of the later range.
        gpa: u64,
    },
    /// A region ends above the host's physical address width.
    #[error(
        "guest memory up to {end:#x} is above the host's {phys_bits}-bit physical address \
         width: KVM cannot map GPA {gpa:#x}"
    )]
    AboveHostWidth {
        /// First GPA the host cannot map.
        gpa: u64,
        /// End of the region.
        end: u64,
        /// The host width.
        phys_bits: u8,
    },
    /// Memory the file needs (a plan step, required memory, a parameter
    /// area, the VMSA) lies partly in RAM and partly outside it: a VMM can
    /// neither use the RAM for it nor give it a region of its own (QEMU's
    /// `qigvm_prepare_memory` refuses the same).
    #[error(
        "{directive}: GPA range {gpa:#x}+{size:#x} lies partly in the configured RAM and partly \
         outside it"
    )]
    RegionPartlyInRam {
        /// The directive that needs the memory.
        directive: igvm_snp::HeaderRef,
        /// First GPA.
        gpa: u64,
        /// Size in bytes.
        size: u64,
    },
    /// Memory the file needs outside RAM ends above the host's physical
    /// address width, where KVM cannot map it.
    #[error(
        "{directive}: GPA range {gpa:#x}+{size:#x} ends above the host's {phys_bits}-bit \
         physical address width; KVM cannot map it"
    )]
    RegionAboveHostWidth {
        /// The directive that needs the memory.
        directive: igvm_snp::HeaderRef,
        /// First GPA.
        gpa: u64,
        /// Size in bytes.
        size: u64,
        /// The host width.
        phys_bits: u8,
    },
    /// The memory has more regions than KVM has memslots left from
    /// `first_slot` (`KVM_CAP_NR_MEMSLOTS`); each region takes one.
    #[error(
        "{regions} memory regions need memslots {first_slot} to {}, but KVM has {limit} \
         (KVM_CAP_NR_MEMSLOTS)",
        u64::from(*first_slot) + *regions as u64 - 1
    )]
    TooManyMemslots {
        /// Regions to register.
        regions: usize,
        /// The first slot asked for.
        first_slot: u32,
        /// KVM's number of memslots.
        limit: u32,
    },
    /// `mmap` of a region failed.
    #[error("mmap of {size:#x} bytes for guest memory at GPA {gpa:#x} failed: {source}")]
    Mmap {
        /// First GPA of the region.
        gpa: u64,
        /// Size in bytes.
        size: u64,
        /// The OS error.
        source: io::Error,
    },
    /// This host gives the VM no guest_memfd (`KVM_CREATE_GUEST_MEMFD` says
    /// `ENOTTY`), or the library was told to treat it as absent
    /// ([`crate::host::HOST_WITHOUT_VAR`]). Probe first with
    /// [`crate::host::HostCapabilities`]; plain memory works everywhere.
    #[error("guest_memfd memory for GPA {gpa:#x}+{size:#x} is not available: {reason}")]
    GuestMemfdUnavailable {
        /// First GPA of the region.
        gpa: u64,
        /// Size in bytes.
        size: u64,
        /// Why.
        reason: Unavailable,
    },
    /// `KVM_CREATE_GUEST_MEMFD` failed.
    #[error("KVM_CREATE_GUEST_MEMFD of {size:#x} bytes for GPA {gpa:#x} failed: {source}")]
    GuestMemfd {
        /// First GPA of the region.
        gpa: u64,
        /// Size in bytes.
        size: u64,
        /// The ioctl error.
        source: errno::Error,
    },
    /// Registering a memslot failed.
    #[error("registering memslot {slot} for GPA {gpa:#x}+{size:#x} failed: {source}")]
    Memslot {
        /// Slot number.
        slot: u32,
        /// First GPA.
        gpa: u64,
        /// Size in bytes.
        size: u64,
        /// The ioctl error.
        source: errno::Error,
    },
    /// An access reaches a GPA no region covers.
    #[error("GPA {gpa:#x} is not in guest memory (access of {len:#x} bytes)")]
    Unmapped {
        /// First uncovered GPA.
        gpa: u64,
        /// Length of the whole access.
        len: u64,
    },
    /// A page-range borrow is not page aligned or not within one region.
    #[error("GPA range {gpa:#x}+{len:#x}: {reason}")]
    BadPageRange {
        /// First GPA.
        gpa: u64,
        /// Length in bytes.
        len: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// Memory attributes were requested for memory without guest_memfd.
    #[error("GPA {gpa:#x} is not guest_memfd-backed memory; it cannot be made private")]
    NotGuestMemfd {
        /// First GPA not backed by a guest_memfd.
        gpa: u64,
    },
    /// The VM has no memory attributes (`KVM_SET_MEMORY_ATTRIBUTES` says
    /// `ENOTTY`), or the library was told to treat them as absent.
    #[error(
        "memory attributes ({attributes:#x}) for GPA {gpa:#x}+{size:#x} are not available: {reason}"
    )]
    MemoryAttributesUnavailable {
        /// First GPA.
        gpa: u64,
        /// Size in bytes.
        size: u64,
        /// Attributes requested.
        attributes: u64,
        /// Why.
        reason: Unavailable,
    },
    /// `KVM_SET_MEMORY_ATTRIBUTES` failed.
    #[error(
        "KVM_SET_MEMORY_ATTRIBUTES({attributes:#x}) on GPA {gpa:#x}+{size:#x} failed: {source}"
    )]
    SetAttributes {
        /// First GPA.
        gpa: u64,
        /// Size in bytes.
        size: u64,
        /// Attributes requested.
        attributes: u64,
        /// The ioctl error.
        source: errno::Error,
    },
    /// Guest memory could not be discarded ([`discard`]).
    #[error("discarding guest memory at GPA {gpa:#x}+{size:#x}: {reason}")]
    Discard {
        /// First GPA.
        gpa: u64,
        /// Size in bytes.
        size: u64,
        /// Why.
        reason: String,
    },
    /// Reading the host CPUID through KVM failed.
    #[error("KVM_GET_SUPPORTED_CPUID failed: {0}")]
    Cpuid(errno::Error),
}

/// Why a host feature cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    /// KVM has no such ioctl for this VM (`ENOTTY`).
    #[error("KVM has none for this VM type ({0})")]
    Host(errno::Error),
    /// Treated as absent by [`crate::host::HOST_WITHOUT_VAR`].
    #[error("disabled by {}", crate::host::HOST_WITHOUT_VAR)]
    Disabled,
}

/// How guest memory is registered with KVM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryFlavour {
    /// `KVM_SET_USER_MEMORY_REGION` over the host mapping (native VMs).
    Plain,
    /// A guest_memfd per region plus `KVM_SET_USER_MEMORY_REGION2` with
    /// `KVM_MEM_GUEST_MEMFD`; the host mapping is the shared view.
    GuestMemfd,
}

/// Whether [`load_plan`] writes the plan's VMSA page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmsaPage {
    /// Write it like any other page.
    Load,
    /// Leave it out (native runs translate it to registers instead; its GPA
    /// is often not mapped at all).
    Skip,
}

/// A region of guest memory as registered with KVM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionInfo {
    /// The GPA range.
    pub range: GpaRange,
    /// The KVM memslot number.
    pub slot: u32,
    /// Host virtual address of the region's first byte.
    pub host_addr: u64,
    /// Whether a guest_memfd backs the region.
    pub guest_memfd: bool,
}

/// Fresh anonymous guest memory, one region per `layout` range (sorted
/// first; each 4 KiB aligned, non-empty, not overlapping), as a VMM that
/// does not bring its own would create it: vm-memory's [`GuestMemoryMmap`]
/// (private anonymous mappings, `MAP_NORESERVE`, zero until written).
///
/// # Errors
/// [`MemoryError::InvalidRange`] / [`MemoryError::Overlap`] for a bad
/// layout, [`MemoryError::Mmap`] when the host cannot map it.
///
/// ```
/// use igvm_snp::GpaRange;
/// use igvm_snp_kvm::memory::{Bytes, GuestAddress, anonymous};
/// let mem = anonymous(&[GpaRange::new(0x1000, 0x2000)])?;
/// mem.write_slice(&[0xF4], GuestAddress(0x1000))?; // hlt
/// assert!(mem.write_slice(&[0], GuestAddress(0x3000)).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn anonymous(layout: &[GpaRange]) -> Result<GuestMemoryMmap, MemoryError> {
    anonymous_with_bitmap(layout)
}

/// As [`anonymous`], with a dirty bitmap `B` per region (e.g.
/// `vm_memory::bitmap::AtomicBitmap`, vm-memory's `backend-bitmap`
/// feature).
///
/// # Errors
/// As [`anonymous`].
pub fn anonymous_with_bitmap<B: NewBitmap>(
    layout: &[GpaRange],
) -> Result<GuestMemoryMmap<B>, MemoryError> {
    let ranges = checked_layout(layout)?;
    let mut spec = Vec::with_capacity(ranges.len());
    for r in &ranges {
        let size = usize::try_from(r.size).map_err(|_| MemoryError::InvalidRange {
            gpa: r.gpa,
            size: r.size,
            reason: "larger than the host address space",
        })?;
        spec.push((GuestAddress(r.gpa), size));
    }
    GuestMemoryMmap::from_ranges(&spec).map_err(|source| {
        let first = ranges.first().copied().unwrap_or(GpaRange::new(0, 0));
        MemoryError::Mmap {
            gpa: first.gpa,
            size: ranges.iter().map(|r| r.size).sum(),
            source: io::Error::other(source.to_string()),
        }
    })
}

/// `layout` sorted, after checking each range and that none overlap.
pub(crate) fn checked_layout(layout: &[GpaRange]) -> Result<Vec<GpaRange>, MemoryError> {
    let mut ranges = layout.to_vec();
    ranges.sort();
    let mut prev_end = 0u64;
    for (i, r) in ranges.iter().enumerate() {
        let end = page_span_end(r).map_err(|reason| MemoryError::InvalidRange {
            gpa: r.gpa,
            size: r.size,
            reason,
        })?;
        if i > 0 && r.gpa < prev_end {
            return Err(MemoryError::Overlap { gpa: r.gpa });
        }
        prev_end = end;
    }
    Ok(ranges)
}

/// The end of a non-empty, 4 KiB-aligned range that does not overflow, or
/// what is wrong with it.
fn page_span_end(r: &GpaRange) -> Result<u64, &'static str> {
    if r.size == 0 {
        return Err("empty");
    }
    if r.gpa % PAGE != 0 || r.size % PAGE != 0 {
        return Err("not 4 KiB aligned");
    }
    r.end().ok_or("overflows the address space")
}

/// The host physical address width KVM reports (CPUID 0x80000008 EAX bits 7:0
/// of `KVM_GET_SUPPORTED_CPUID`, 36 if the leaf is missing). With
/// two-dimensional paging KVM refuses memslots above it; its limit can be
/// higher otherwise (on the nested development host, whose CPU shows no SVM
/// flag, a slot at 1 << 48 registers although the width is 48), so the
/// value is a conservative bound for [`LayoutOptions::phys_bits`].
///
/// # Errors
/// [`MemoryError::Cpuid`] when the ioctl fails.
pub fn host_phys_bits(kvm: &Kvm) -> Result<u8, MemoryError> {
    let cpuid = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(MemoryError::Cpuid)?;
    Ok(cpuid
        .as_slice()
        .iter()
        .find(|e| e.function == 0x8000_0008)
        .map_or(36, |e| (e.eax & 0xFF) as u8))
}

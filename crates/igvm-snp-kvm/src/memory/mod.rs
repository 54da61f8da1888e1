//! Guest memory: anonymous host mappings registered as KVM memslots, in two
//! flavours — plain (`KVM_SET_USER_MEMORY_REGION`, for native VMs) and
//! guest_memfd-backed (`KVM_CREATE_GUEST_MEMFD` +
//! `KVM_SET_USER_MEMORY_REGION2`, for SEV-SNP, whose private pages live in
//! the guest_memfd while the mapping holds the shared view and serves as
//! the SNP_LAUNCH_UPDATE source).
//!
//! Memslots are deleted before their mappings are unmapped, so the guest
//! can never reach host memory that a later `mmap` reuses; if deleting a
//! slot fails the mapping is leaked instead.

mod layout;
mod mapping;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use igvm_snp::{GpaRange, LaunchPlan, PAGE_SIZE, StepSource};
use kvm_bindings::{
    KVM_MAX_CPUID_ENTRIES, KVM_MEM_GUEST_MEMFD, KVM_MEMORY_ATTRIBUTE_PRIVATE,
    kvm_create_guest_memfd, kvm_memory_attributes, kvm_userspace_memory_region,
    kvm_userspace_memory_region2,
};
use kvm_ioctls::{Kvm, VmFd};
use vmm_sys_util::errno;

pub use layout::{LayoutOptions, layout_for};
use mapping::Mapping;

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
    /// Reading the host CPUID through KVM failed.
    #[error("KVM_GET_SUPPORTED_CPUID failed: {0}")]
    Cpuid(errno::Error),
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

/// Whether [`GuestMemory::load_plan`] writes the plan's VMSA page.
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

#[derive(Debug)]
struct Region {
    gpa: u64,
    slot: u32,
    mapping: Mapping,
    gmem: Option<OwnedFd>,
}

impl Region {
    fn end(&self) -> u64 {
        self.gpa + self.mapping.len() as u64
    }

    fn contains(&self, gpa: u64) -> bool {
        gpa >= self.gpa && gpa < self.end()
    }
}

/// Guest RAM of one VM: one host mapping and one KVM memslot per region.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use igvm_snp::GpaRange;
/// use igvm_snp_kvm::memory::{GuestMemory, MemoryFlavour};
/// let kvm = kvm_ioctls::Kvm::new()?;
/// let vm = Arc::new(kvm.create_vm()?);
/// let layout = [GpaRange::new(0, 2 << 20)];
/// let mut mem = GuestMemory::new(vm, &layout, MemoryFlavour::Plain, 0)?;
/// mem.write(0x1000, &[0xF4])?; // hlt
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct GuestMemory {
    vm: Arc<VmFd>,
    flavour: MemoryFlavour,
    regions: Vec<Region>,
}

impl GuestMemory {
    /// Maps and registers one region per `layout` range (sorted first), as
    /// memslots `first_slot`, `first_slot + 1`, …
    ///
    /// # Errors
    /// [`MemoryError::InvalidRange`] / [`MemoryError::Overlap`] for a bad
    /// layout; [`MemoryError::Mmap`], [`MemoryError::GuestMemfd`],
    /// [`MemoryError::Memslot`] when the host refuses. Regions created
    /// before the failure are removed again.
    pub fn new(
        vm: Arc<VmFd>,
        layout: &[GpaRange],
        flavour: MemoryFlavour,
        first_slot: u32,
    ) -> Result<Self, MemoryError> {
        let mut ranges = layout.to_vec();
        ranges.sort();
        let mut prev_end = 0u64;
        for (i, r) in ranges.iter().enumerate() {
            let bad = |reason| MemoryError::InvalidRange {
                gpa: r.gpa,
                size: r.size,
                reason,
            };
            let end = page_span_end(r).map_err(bad)?;
            if usize::try_from(r.size).is_err() {
                return Err(bad("larger than the host address space"));
            }
            if i > 0 && r.gpa < prev_end {
                return Err(MemoryError::Overlap { gpa: r.gpa });
            }
            prev_end = end;
        }
        let mut mem = GuestMemory {
            vm,
            flavour,
            regions: Vec::with_capacity(ranges.len()),
        };
        for (i, r) in ranges.iter().enumerate() {
            let slot = u32::try_from(i)
                .ok()
                .and_then(|i| first_slot.checked_add(i))
                .ok_or(MemoryError::InvalidRange {
                    gpa: r.gpa,
                    size: r.size,
                    reason: "too many regions for the memslot numbers",
                })?;
            let region = mem.add_region(*r, slot)?;
            mem.regions.push(region);
        }
        Ok(mem)
    }

    fn add_region(&self, r: GpaRange, slot: u32) -> Result<Region, MemoryError> {
        // `new` checked that the size fits usize.
        let len = usize::try_from(r.size).map_err(|_| MemoryError::InvalidRange {
            gpa: r.gpa,
            size: r.size,
            reason: "larger than the host address space",
        })?;
        let mapping = Mapping::new(len).map_err(|source| MemoryError::Mmap {
            gpa: r.gpa,
            size: r.size,
            source,
        })?;
        let memslot_err = |source| MemoryError::Memslot {
            slot,
            gpa: r.gpa,
            size: r.size,
            source,
        };
        match self.flavour {
            MemoryFlavour::Plain => {
                let region = kvm_userspace_memory_region {
                    slot,
                    flags: 0,
                    guest_phys_addr: r.gpa,
                    memory_size: r.size,
                    userspace_addr: mapping.host_addr(),
                };
                // SAFETY: the mapping covers `memory_size` bytes at
                // `userspace_addr` and stays mapped while the slot exists:
                // `GuestMemory::drop` deletes the slot before unmapping (or
                // leaks the mapping when deletion fails), and on the error
                // path below the slot was never created.
                unsafe { self.vm.set_user_memory_region(region) }.map_err(memslot_err)?;
                Ok(Region {
                    gpa: r.gpa,
                    slot,
                    mapping,
                    gmem: None,
                })
            }
            MemoryFlavour::GuestMemfd => {
                let raw = self
                    .vm
                    .create_guest_memfd(kvm_create_guest_memfd {
                        size: r.size,
                        flags: 0,
                        ..Default::default()
                    })
                    .map_err(|source| MemoryError::GuestMemfd {
                        gpa: r.gpa,
                        size: r.size,
                        source,
                    })?;
                // SAFETY: `raw` is a new file descriptor the kernel just
                // returned to us; nothing else owns or closes it.
                let gmem = unsafe { OwnedFd::from_raw_fd(raw) };
                let gmem_fd = u32::try_from(gmem.as_raw_fd())
                    .map_err(|_| memslot_err(errno::Error::new(libc::EBADF)))?;
                let region = kvm_userspace_memory_region2 {
                    slot,
                    flags: KVM_MEM_GUEST_MEMFD,
                    guest_phys_addr: r.gpa,
                    memory_size: r.size,
                    userspace_addr: mapping.host_addr(),
                    guest_memfd_offset: 0,
                    guest_memfd: gmem_fd,
                    ..Default::default()
                };
                // SAFETY: as for the plain slot: the shared mapping outlives
                // the slot (deleted in `drop` before unmapping); the
                // guest_memfd is owned by the region and covers `size`
                // bytes from offset 0.
                unsafe { self.vm.set_user_memory_region2(region) }.map_err(memslot_err)?;
                Ok(Region {
                    gpa: r.gpa,
                    slot,
                    mapping,
                    gmem: Some(gmem),
                })
            }
        }
    }

    /// The flavour the memory was created with.
    pub fn flavour(&self) -> MemoryFlavour {
        self.flavour
    }

    /// The regions, sorted by GPA.
    pub fn regions(&self) -> impl Iterator<Item = RegionInfo> + '_ {
        self.regions.iter().map(|r| RegionInfo {
            range: GpaRange::new(r.gpa, r.mapping.len() as u64),
            slot: r.slot,
            host_addr: r.mapping.host_addr(),
            guest_memfd: r.gmem.is_some(),
        })
    }

    fn region_index(&self, gpa: u64) -> Option<usize> {
        self.regions.iter().position(|r| r.contains(gpa))
    }

    /// Writes `bytes` at `gpa`; the range may span adjacent regions.
    ///
    /// # Errors
    /// [`MemoryError::Unmapped`] naming the first GPA no region covers
    /// (nothing is written then).
    pub fn write(&mut self, gpa: u64, bytes: &[u8]) -> Result<(), MemoryError> {
        let len = bytes.len() as u64;
        let pieces = self.pieces(gpa, len)?;
        let mut done = 0usize;
        for (idx, offset, n) in pieces {
            let dst = self.regions[idx]
                .mapping
                .slice_mut(offset, n)
                .ok_or(MemoryError::Unmapped { gpa, len })?;
            dst.copy_from_slice(&bytes[done..done + n]);
            done += n;
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes at `gpa`; the range may span adjacent
    /// regions.
    ///
    /// # Errors
    /// [`MemoryError::Unmapped`] naming the first GPA no region covers.
    pub fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let len = buf.len() as u64;
        let mut done = 0usize;
        for (idx, offset, n) in self.pieces(gpa, len)? {
            let src = self.regions[idx]
                .mapping
                .slice(offset, n)
                .ok_or(MemoryError::Unmapped { gpa, len })?;
            buf[done..done + n].copy_from_slice(src);
            done += n;
        }
        Ok(())
    }

    /// Splits `gpa..gpa + len` into `(region index, offset, length)` pieces,
    /// failing before any access when a byte is uncovered.
    fn pieces(&self, gpa: u64, len: u64) -> Result<Vec<(usize, usize, usize)>, MemoryError> {
        let mut out = Vec::new();
        let mut cur = gpa;
        let mut left = len;
        while left > 0 {
            let idx = self
                .region_index(cur)
                .ok_or(MemoryError::Unmapped { gpa: cur, len })?;
            let r = &self.regions[idx];
            let n = left.min(r.end() - cur);
            // Both fit usize: they are bounded by the mapping length.
            out.push((idx, (cur - r.gpa) as usize, n as usize));
            cur += n;
            left -= n;
        }
        Ok(out)
    }

    /// Borrows the host view of a page-aligned GPA range within one region,
    /// e.g. as the source buffer of SNP_LAUNCH_UPDATE: the address handed to
    /// the kernel stays tied to this borrow.
    ///
    /// # Errors
    /// [`MemoryError::BadPageRange`] when the range is empty, unaligned or
    /// not inside a single region.
    pub fn page_range_mut(&mut self, range: GpaRange) -> Result<&mut [u8], MemoryError> {
        let bad = |reason| MemoryError::BadPageRange {
            gpa: range.gpa,
            len: range.size,
            reason,
        };
        let end = page_span_end(&range).map_err(bad)?;
        let idx = self
            .region_index(range.gpa)
            .ok_or_else(|| bad("not in guest memory"))?;
        let r = &mut self.regions[idx];
        if end > r.end() {
            return Err(bad("not within one memory region"));
        }
        let offset = (range.gpa - r.gpa) as usize;
        r.mapping
            .slice_mut(offset, range.size as usize)
            .ok_or_else(|| bad("not within one memory region"))
    }

    /// Marks a page-aligned GPA range private (`KVM_SET_MEMORY_ATTRIBUTES`
    /// with `KVM_MEMORY_ATTRIBUTE_PRIVATE`), in one call for the whole range.
    ///
    /// # Errors
    /// [`MemoryError::BadPageRange`] for an unaligned range,
    /// [`MemoryError::NotGuestMemfd`] when a page is not guest_memfd-backed,
    /// [`MemoryError::SetAttributes`] when KVM refuses (e.g. `ENOTTY` on a
    /// VM type without private memory).
    pub fn set_private(&self, range: GpaRange) -> Result<(), MemoryError> {
        self.set_attributes(range, u64::from(KVM_MEMORY_ATTRIBUTE_PRIVATE))
    }

    /// Marks a page-aligned GPA range shared again (attributes 0).
    ///
    /// # Errors
    /// As [`GuestMemory::set_private`].
    pub fn set_shared(&self, range: GpaRange) -> Result<(), MemoryError> {
        self.set_attributes(range, 0)
    }

    fn set_attributes(&self, range: GpaRange, attributes: u64) -> Result<(), MemoryError> {
        let bad = |reason| MemoryError::BadPageRange {
            gpa: range.gpa,
            len: range.size,
            reason,
        };
        let end = page_span_end(&range).map_err(bad)?;
        let mut cur = range.gpa;
        while cur < end {
            match self.regions.iter().find(|r| r.contains(cur)) {
                Some(r) if r.gmem.is_some() => cur = r.end(),
                _ => return Err(MemoryError::NotGuestMemfd { gpa: cur }),
            }
        }
        self.vm
            .set_memory_attributes(kvm_memory_attributes {
                address: range.gpa,
                size: range.size,
                attributes,
                flags: 0,
            })
            .map_err(|source| MemoryError::SetAttributes {
                gpa: range.gpa,
                size: range.size,
                attributes,
                source,
            })
    }

    /// Writes every page of every launch step and every shared run of
    /// `plan` into memory (data-less pages as zeros); returns the number of
    /// pages written.
    ///
    /// # Errors
    /// [`MemoryError::Unmapped`] for a page outside memory (use
    /// [`layout_for`] to size the memory).
    pub fn load_plan(&mut self, plan: &LaunchPlan<'_>, vmsa: VmsaPage) -> Result<u64, MemoryError> {
        let mut pages = 0u64;
        for step in plan.steps() {
            if step.source == StepSource::Vmsa && vmsa == VmsaPage::Skip {
                continue;
            }
            for (gpa, bytes) in plan.step_pages(step) {
                bytes.write_to(self.page_mut(gpa)?);
                pages += 1;
            }
        }
        for run in plan.shared_runs() {
            for (gpa, bytes) in plan.shared_pages(run) {
                bytes.write_to(self.page_mut(gpa)?);
                pages += 1;
            }
        }
        Ok(pages)
    }

    fn page_mut(&mut self, gpa: u64) -> Result<&mut [u8], MemoryError> {
        self.page_range_mut(GpaRange::new(gpa, PAGE))
            .map_err(|_| MemoryError::Unmapped { gpa, len: PAGE })
    }
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        for region in self.regions.drain(..) {
            let delete = kvm_userspace_memory_region {
                slot: region.slot,
                flags: 0,
                guest_phys_addr: region.gpa,
                memory_size: 0,
                userspace_addr: 0,
            };
            // SAFETY: a zero-sized region deletes the slot; KVM then no
            // longer references the mapping, which is unmapped afterwards.
            match unsafe { self.vm.set_user_memory_region(delete) } {
                Ok(()) => drop(region),
                Err(error) => {
                    tracing::error!(
                        slot = region.slot,
                        gpa = region.gpa,
                        %error,
                        "deleting a memslot failed; leaking its mapping so the guest \
                         cannot reach reused host memory"
                    );
                    std::mem::forget(region);
                }
            }
        }
    }
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

//! Registering a VMM's guest memory with a KVM VM.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use igvm_snp::{GpaRange, PAGE_SIZE};
use kvm_bindings::{
    KVM_MEM_GUEST_MEMFD, KVM_MEMORY_ATTRIBUTE_PRIVATE, kvm_create_guest_memfd,
    kvm_memory_attributes, kvm_userspace_memory_region, kvm_userspace_memory_region2,
};
use kvm_ioctls::{Cap, VmFd};
use vm_memory::bitmap::Bitmap;
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, MemoryRegionAddress};
use vmm_sys_util::errno;

use super::{MemoryError, MemoryFlavour, RegionInfo, Unavailable, page_span_end};
use crate::host::HostFeatures;

#[derive(Debug)]
struct Slot {
    range: GpaRange,
    slot: u32,
    host_addr: u64,
    gmem: Option<OwnedFd>,
}

impl Slot {
    fn end(&self) -> u64 {
        self.range.gpa + self.range.size
    }

    fn contains(&self, gpa: u64) -> bool {
        gpa >= self.range.gpa && gpa < self.end()
    }
}

/// A VM the memslots belong to, owned or borrowed: `Arc<VmFd>`, `&VmFd` or
/// `VmFd`. Sealed: the slots must be deleted on the VM they were made on,
/// which an arbitrary `Borrow<VmFd>` (free to return another VM each time)
/// would not promise.
pub trait VmHandle: sealed::Sealed {
    /// The VM.
    fn vm_fd(&self) -> &VmFd;
}

mod sealed {
    use super::*;
    pub trait Sealed {}
    impl Sealed for VmFd {}
    impl Sealed for &VmFd {}
    impl Sealed for Arc<VmFd> {}
}

impl VmHandle for VmFd {
    fn vm_fd(&self) -> &VmFd {
        self
    }
}

impl VmHandle for &VmFd {
    fn vm_fd(&self) -> &VmFd {
        self
    }
}

impl VmHandle for Arc<VmFd> {
    fn vm_fd(&self) -> &VmFd {
        self
    }
}

/// The KVM memslots of one [`GuestMemoryMmap`]: one per region, numbered
/// from a first slot, plain or guest_memfd-backed. Holds a clone of the
/// memory (its regions are reference-counted), so the mappings KVM uses stay
/// mapped while the slots exist; dropping it deletes the slots first. If
/// deleting a slot fails, that region's mapping is leaked rather than ever
/// unmapped under the guest.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use igvm_snp::GpaRange;
/// use igvm_snp_kvm::memory::{Memslots, MemoryFlavour, anonymous};
/// # let Ok(kvm) = kvm_ioctls::Kvm::new() else { return Ok(()) }; // needs /dev/kvm
/// let vm = Arc::new(kvm.create_vm()?);
/// let memory = anonymous(&[GpaRange::new(0, 2 << 20)])?; // or the VMM's own
/// let slots = Memslots::register(vm, &memory, MemoryFlavour::Plain, 0)?;
/// assert_eq!(slots.regions().count(), 1);
/// drop(slots);
/// // A VM the VMM owns outright is lent instead.
/// let own = kvm.create_vm()?;
/// let lent = Memslots::register(&own, &memory, MemoryFlavour::Plain, 0)?;
/// assert!(std::ptr::eq(lent.vm(), &own));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Memslots<B: Bitmap = (), V: VmHandle = Arc<VmFd>> {
    vm: V,
    flavour: MemoryFlavour,
    slots: Vec<Slot>,
    /// Keeps every region KVM maps alive until the slots are deleted.
    memory: Option<GuestMemoryMmap<B>>,
}

/// KVM's largest memslot, `KVM_MEM_MAX_NR_PAGES` (2^31 - 1) pages.
const MAX_SLOT_PAGES: u64 = (1 << 31) - 1;

/// A region one memslot can take: page aligned, not overflowing, at most
/// [`MAX_SLOT_PAGES`] pages.
fn check_slot_range(range: &GpaRange) -> Result<(), MemoryError> {
    let invalid = |reason| MemoryError::InvalidRange {
        gpa: range.gpa,
        size: range.size,
        reason,
    };
    page_span_end(range).map_err(invalid)?;
    if range.size / PAGE_SIZE as u64 > MAX_SLOT_PAGES {
        return Err(invalid(
            "larger than one KVM memslot takes (2^31 - 1 pages, just under 8 TiB)",
        ));
    }
    Ok(())
}

impl<B: Bitmap, V: VmHandle> Memslots<B, V> {
    /// Registers every region of `memory` as memslots of `vm` (shared, as an
    /// `Arc<VmFd>`, borrowed, as a `&VmFd`, or owned) `first_slot`,
    /// `first_slot + 1`, … in GPA order. With
    /// [`MemoryFlavour::GuestMemfd`] each region gets a guest_memfd of its
    /// size and the region's mapping becomes its shared view.
    ///
    /// # Errors
    /// [`MemoryError::InvalidRange`] for a region that is not 4 KiB aligned,
    /// [`MemoryError::GuestMemfdUnavailable`] where the VM has no guest_memfd,
    /// [`MemoryError::GuestMemfd`] / [`MemoryError::Memslot`] when KVM
    /// refuses. Slots registered before the failure are deleted again.
    pub fn register(
        vm: V,
        memory: &GuestMemoryMmap<B>,
        flavour: MemoryFlavour,
        first_slot: u32,
    ) -> Result<Self, MemoryError> {
        // Refused up front, before any slot exists: KVM's EINVAL for the
        // slot past its limit, or for a slot past its size limit, names
        // neither (and undoing thousands of slots takes seconds).
        let limit = u32::try_from(vm.vm_fd().check_extension_int(Cap::NrMemslots)).unwrap_or(0);
        let regions = memory.num_regions();
        if limit > 0 && u64::from(first_slot) + regions as u64 > u64::from(limit) {
            return Err(MemoryError::TooManyMemslots {
                regions,
                first_slot,
                limit,
            });
        }
        for region in memory.iter() {
            let range = GpaRange::new(region.start_addr().0, region.len());
            check_slot_range(&range)?;
        }
        let mut slots = Memslots {
            vm,
            flavour,
            slots: Vec::with_capacity(regions),
            memory: Some(memory.clone()),
        };
        for (i, region) in memory.iter().enumerate() {
            let range = GpaRange::new(region.start_addr().0, region.len());
            let slot = u32::try_from(i)
                .ok()
                .and_then(|i| first_slot.checked_add(i))
                .ok_or(MemoryError::InvalidRange {
                    gpa: range.gpa,
                    size: range.size,
                    reason: "too many regions for the memslot numbers",
                })?;
            let host_addr = region
                .get_host_address(MemoryRegionAddress(0))
                .map_err(|_| MemoryError::InvalidRange {
                    gpa: range.gpa,
                    size: range.size,
                    reason: "has no host mapping",
                })? as u64;
            let registered = slots.add(range, slot, host_addr)?;
            slots.slots.push(registered);
        }
        Ok(slots)
    }

    fn add(&self, r: GpaRange, slot: u32, host_addr: u64) -> Result<Slot, MemoryError> {
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
                    userspace_addr: host_addr,
                };
                // SAFETY: `host_addr` is the start of a mapping of the
                // region's `memory_size` bytes, owned by a region of the
                // GuestMemoryMmap that `self.memory` keeps alive until
                // `drop` has deleted this slot (or forever, when deleting
                // fails); on the error path the slot was never created.
                unsafe { self.vm().set_user_memory_region(region) }.map_err(memslot_err)?;
                Ok(Slot {
                    range: r,
                    slot,
                    host_addr,
                    gmem: None,
                })
            }
            MemoryFlavour::GuestMemfd => {
                let unavailable = |reason| MemoryError::GuestMemfdUnavailable {
                    gpa: r.gpa,
                    size: r.size,
                    reason,
                };
                if HostFeatures::disabled_by_environment().contains(HostFeatures::GUEST_MEMFD) {
                    return Err(unavailable(Unavailable::Disabled));
                }
                let raw = self
                    .vm()
                    .create_guest_memfd(kvm_create_guest_memfd {
                        size: r.size,
                        flags: 0,
                        ..Default::default()
                    })
                    .map_err(|source| match source.errno() {
                        libc::ENOTTY => unavailable(Unavailable::Host(source)),
                        _ => MemoryError::GuestMemfd {
                            gpa: r.gpa,
                            size: r.size,
                            source,
                        },
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
                    userspace_addr: host_addr,
                    guest_memfd_offset: 0,
                    guest_memfd: gmem_fd,
                    ..Default::default()
                };
                // SAFETY: as for the plain slot: the shared mapping outlives
                // the slot (kept alive by `self.memory`, deleted in `drop`
                // first); the guest_memfd is owned by the slot and covers
                // `size` bytes from offset 0.
                unsafe { self.vm().set_user_memory_region2(region) }.map_err(memslot_err)?;
                Ok(Slot {
                    range: r,
                    slot,
                    host_addr,
                    gmem: Some(gmem),
                })
            }
        }
    }

    /// The flavour the slots were registered with.
    pub fn flavour(&self) -> MemoryFlavour {
        self.flavour
    }

    /// The VM.
    pub fn vm(&self) -> &VmFd {
        self.vm.vm_fd()
    }

    /// The slots, in GPA order.
    pub fn regions(&self) -> impl Iterator<Item = RegionInfo> + '_ {
        self.slots.iter().map(|s| RegionInfo {
            range: s.range,
            slot: s.slot,
            host_addr: s.host_addr,
            guest_memfd: s.gmem.is_some(),
        })
    }

    /// Marks a page-aligned GPA range private (`KVM_SET_MEMORY_ATTRIBUTES`
    /// with `KVM_MEMORY_ATTRIBUTE_PRIVATE`), in one call for the whole range.
    ///
    /// # Errors
    /// [`MemoryError::BadPageRange`] for an unaligned range,
    /// [`MemoryError::NotGuestMemfd`] when a page is not guest_memfd-backed,
    /// [`MemoryError::MemoryAttributesUnavailable`] on a VM type without
    /// memory attributes (or when told to treat them as absent),
    /// [`MemoryError::SetAttributes`] when KVM refuses otherwise.
    pub fn set_private(&self, range: GpaRange) -> Result<(), MemoryError> {
        self.set_attributes(range, u64::from(KVM_MEMORY_ATTRIBUTE_PRIVATE))
    }

    /// Marks a page-aligned GPA range shared again (attributes 0).
    ///
    /// # Errors
    /// As [`Memslots::set_private`].
    pub fn set_shared(&self, range: GpaRange) -> Result<(), MemoryError> {
        self.set_attributes(range, 0)
    }

    fn set_attributes(&self, range: GpaRange, attributes: u64) -> Result<(), MemoryError> {
        let end = page_span_end(&range).map_err(|reason| MemoryError::BadPageRange {
            gpa: range.gpa,
            len: range.size,
            reason,
        })?;
        let mut cur = range.gpa;
        while cur < end {
            match self.slots.iter().find(|s| s.contains(cur)) {
                Some(s) if s.gmem.is_some() => cur = s.end(),
                _ => return Err(MemoryError::NotGuestMemfd { gpa: cur }),
            }
        }
        let unavailable = |reason| MemoryError::MemoryAttributesUnavailable {
            gpa: range.gpa,
            size: range.size,
            attributes,
            reason,
        };
        if HostFeatures::disabled_by_environment().contains(HostFeatures::MEMORY_ATTRIBUTES) {
            return Err(unavailable(Unavailable::Disabled));
        }
        self.vm()
            .set_memory_attributes(kvm_memory_attributes {
                address: range.gpa,
                size: range.size,
                attributes,
                flags: 0,
            })
            .map_err(|source| match source.errno() {
                libc::ENOTTY => unavailable(Unavailable::Host(source)),
                _ => MemoryError::SetAttributes {
                    gpa: range.gpa,
                    size: range.size,
                    attributes,
                    source,
                },
            })
    }
}

impl<B: Bitmap, V: VmHandle> Drop for Memslots<B, V> {
    fn drop(&mut self) {
        let mut leak = false;
        for slot in self.slots.drain(..) {
            let delete = kvm_userspace_memory_region {
                slot: slot.slot,
                flags: 0,
                guest_phys_addr: slot.range.gpa,
                memory_size: 0,
                userspace_addr: 0,
            };
            // SAFETY: a zero-sized region deletes the slot; KVM then no
            // longer references the mapping, which `self.memory` may unmap
            // afterwards.
            if let Err(error) = unsafe { self.vm.vm_fd().set_user_memory_region(delete) } {
                tracing::error!(
                    slot = slot.slot,
                    gpa = slot.range.gpa,
                    %error,
                    "deleting a memslot failed; leaking guest memory so the guest cannot \
                     reach reused host memory"
                );
                leak = true;
            }
        }
        if leak {
            std::mem::forget(self.memory.take());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// KVM_MEM_MAX_NR_PAGES: 2^31 - 1 pages fit one memslot, one more does
    /// not (KVM answers EINVAL); checked without mapping 8 TiB.
    #[test]
    fn a_region_larger_than_a_memslot_is_refused() {
        let most = MAX_SLOT_PAGES * PAGE_SIZE as u64;
        check_slot_range(&GpaRange::new(0, most)).unwrap();
        let err = check_slot_range(&GpaRange::new(0, most + PAGE_SIZE as u64)).unwrap_err();
        assert!(
            err.to_string()
                .contains("larger than one KVM memslot takes"),
            "{err}"
        );
    }
}

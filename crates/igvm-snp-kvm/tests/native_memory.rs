//! Guest memory on the real /dev/kvm: both flavours register, accessors
//! check bounds, slots are deleted on drop, and guest_memfd and memory
//! attributes behave as this host's KVM offers them. Hosts differ (some give
//! VM type 0 a guest_memfd, some do not; few have memory attributes): each
//! test that depends on it probes the host (`igvm_snp_kvm::host`), prints
//! the branch it takes and checks what that branch must show. With
//! `IGVM_SNP_HOST_WITHOUT=guest_memfd,memory_attributes` every host takes
//! the "absent" branches.

use std::sync::Arc;

use igvm_snp::GpaRange;
use igvm_snp_kvm::host::{DEFAULT_VM_TYPE, HostCapabilities};
use igvm_snp_kvm::kvm_check::{assert_guest_memfd_refused, host_or_skip, kvm_or_skip};
use igvm_snp_kvm::memory::{GuestMemory, MemoryError, MemoryFlavour, RegionInfo, Unavailable};
use kvm_ioctls::VmFd;

fn vm(test: &str) -> Option<Arc<VmFd>> {
    let kvm = kvm_or_skip(test)?;
    Some(Arc::new(kvm.create_vm_with_type(0).unwrap()))
}

/// A VM of type 0 and the probe of this host, with the branch printed.
fn vm_and_host(test: &str) -> Option<(Arc<VmFd>, HostCapabilities)> {
    let (kvm, host) = host_or_skip(test)?;
    Some((Arc::new(kvm.create_vm_with_type(0).unwrap()), host))
}

fn layout() -> Vec<GpaRange> {
    // Given unsorted: low RAM and two pages just below 4 GiB.
    vec![
        GpaRange::new(0xFFFF_E000, 0x2000),
        GpaRange::new(0, 0x10_0000),
    ]
}

#[test]
fn both_flavours_register_sorted_regions() {
    let Some((vm, host)) = vm_and_host("both_flavours_register_sorted_regions") else {
        return;
    };
    for (flavour, first_slot) in [(MemoryFlavour::Plain, 0), (MemoryFlavour::GuestMemfd, 10)] {
        let mem = GuestMemory::new(Arc::clone(&vm), &layout(), flavour, first_slot);
        if flavour == MemoryFlavour::GuestMemfd && !host.guest_memfd(DEFAULT_VM_TYPE) {
            // The first region (sorted: low RAM) is refused, nothing is left
            // registered: the same slots take plain memory afterwards.
            assert_guest_memfd_refused(&mem.unwrap_err(), &host, 0, 0x10_0000);
            GuestMemory::new(Arc::clone(&vm), &layout(), MemoryFlavour::Plain, first_slot).unwrap();
            continue;
        }
        let mem = mem.unwrap();
        let regions: Vec<RegionInfo> = mem.regions().collect();
        let gmem = flavour == MemoryFlavour::GuestMemfd;
        assert_eq!(regions.len(), 2);
        assert_eq!(regions[0].range, GpaRange::new(0, 0x10_0000));
        assert_eq!(regions[1].range, GpaRange::new(0xFFFF_E000, 0x2000));
        assert_eq!(
            (regions[0].slot, regions[1].slot),
            (first_slot, first_slot + 1)
        );
        assert!(
            regions
                .iter()
                .all(|r| r.guest_memfd == gmem && r.host_addr != 0)
        );
        assert_eq!(mem.flavour(), flavour);
        drop(mem);
    }
}

#[test]
fn writes_and_reads_are_bounds_checked() {
    let Some(vm) = vm("writes_and_reads_are_bounds_checked") else {
        return;
    };
    let mut mem = GuestMemory::new(vm, &layout(), MemoryFlavour::Plain, 0).unwrap();
    mem.write(0xFFFF_FFFC, &[1, 2, 3, 4]).unwrap();
    let mut buf = [0u8; 6];
    mem.read(0xFFFF_FFFA, &mut buf).unwrap();
    assert_eq!(buf, [0, 0, 1, 2, 3, 4]);
    // One byte past the top of the region: nothing written, first GPA named.
    match mem.write(0xFFFF_FFFE, &[9, 9, 9]) {
        Err(MemoryError::Unmapped { gpa, len }) => assert_eq!((gpa, len), (0x1_0000_0000, 3)),
        other => panic!("unexpected {other:?}"),
    }
    mem.read(0xFFFF_FFFA, &mut buf).unwrap();
    assert_eq!(buf, [0, 0, 1, 2, 3, 4]);
    // In the gap between the regions.
    let err = mem.write(0x10_0000, &[1]).unwrap_err();
    assert!(err.to_string().contains("0x100000"), "{err}");
    let mut one = [0u8; 1];
    assert!(matches!(
        mem.read(0x8000_0000, &mut one),
        Err(MemoryError::Unmapped {
            gpa: 0x8000_0000,
            ..
        })
    ));
}

#[test]
fn adjacent_regions_take_spanning_writes_but_not_page_borrows() {
    let Some(vm) = vm("adjacent_regions_take_spanning_writes_but_not_page_borrows") else {
        return;
    };
    let layout = [GpaRange::new(0, 0x2000), GpaRange::new(0x2000, 0x1000)];
    let mut mem = GuestMemory::new(vm, &layout, MemoryFlavour::Plain, 0).unwrap();
    mem.write(0x1FFE, &[7, 8, 9, 10]).unwrap();
    let mut buf = [0u8; 4];
    mem.read(0x1FFE, &mut buf).unwrap();
    assert_eq!(buf, [7, 8, 9, 10]);
    let page = mem.page_range_mut(GpaRange::new(0x1000, 0x1000)).unwrap();
    assert_eq!(page.len(), 4096);
    assert_eq!(&page[0xFFE..], &[7, 8]);
    page[0] = 0x42;
    mem.read(0x1000, &mut buf[..1]).unwrap();
    assert_eq!(buf[0], 0x42);
    for (range, reason) in [
        (
            GpaRange::new(0x1000, 0x2000),
            "not within one memory region",
        ),
        (GpaRange::new(0x1800, 0x1000), "not 4 KiB aligned"),
        (GpaRange::new(0x1000, 0), "empty"),
        (GpaRange::new(0x5000, 0x1000), "not in guest memory"),
    ] {
        match mem.page_range_mut(range) {
            Err(MemoryError::BadPageRange { reason: r, gpa, .. }) => {
                assert_eq!((r, gpa), (reason, range.gpa));
            }
            other => panic!("{range:?}: unexpected {other:?}"),
        }
    }
}

#[test]
fn bad_layouts_are_refused() {
    let Some(vm) = vm("bad_layouts_are_refused") else {
        return;
    };
    let overlap = [GpaRange::new(0, 0x2000), GpaRange::new(0x1000, 0x1000)];
    assert!(matches!(
        GuestMemory::new(Arc::clone(&vm), &overlap, MemoryFlavour::Plain, 0),
        Err(MemoryError::Overlap { gpa: 0x1000 })
    ));
    let unaligned = [GpaRange::new(0x10, 0x1000)];
    assert!(matches!(
        GuestMemory::new(Arc::clone(&vm), &unaligned, MemoryFlavour::Plain, 0),
        Err(MemoryError::InvalidRange {
            reason: "not 4 KiB aligned",
            ..
        })
    ));
    // KVM refuses a slot above its address limit: the error names the slot
    // and GPA, and the region created before it is removed again (the same
    // GPA can be registered afterwards in another slot).
    let too_high = [GpaRange::new(0, 0x1000), GpaRange::new(1 << 60, 0x1000)];
    match GuestMemory::new(Arc::clone(&vm), &too_high, MemoryFlavour::Plain, 3) {
        Err(MemoryError::Memslot { slot, gpa, .. }) => assert_eq!((slot, gpa), (4, 1 << 60)),
        other => panic!("unexpected {other:?}"),
    }
    GuestMemory::new(vm, &[GpaRange::new(0, 0x1000)], MemoryFlavour::Plain, 7).unwrap();
}

#[test]
fn dropping_memory_deletes_its_slots() {
    let Some((vm, host)) = vm_and_host("dropping_memory_deletes_its_slots") else {
        return;
    };
    let range = [GpaRange::new(0x10_0000, 0x4000)];
    let mut flavours = vec![MemoryFlavour::Plain];
    if host.guest_memfd(DEFAULT_VM_TYPE) {
        flavours.push(MemoryFlavour::GuestMemfd);
    } else {
        let refused = GuestMemory::new(Arc::clone(&vm), &range, MemoryFlavour::GuestMemfd, 0);
        assert_guest_memfd_refused(&refused.unwrap_err(), &host, 0x10_0000, 0x4000);
    }
    for flavour in flavours {
        let first = GuestMemory::new(Arc::clone(&vm), &range, flavour, 0).unwrap();
        // While it lives, the same GPA in another slot overlaps (EEXIST).
        match GuestMemory::new(Arc::clone(&vm), &range, flavour, 1) {
            Err(MemoryError::Memslot {
                slot: 1, source, ..
            }) => {
                assert_eq!(source.errno(), libc::EEXIST);
            }
            other => panic!("unexpected {other:?}"),
        }
        drop(first);
        // Once dropped, another slot may take the range.
        GuestMemory::new(Arc::clone(&vm), &range, flavour, 2).unwrap();
    }
}

#[test]
fn memory_attributes_follow_the_host_capability() {
    let Some((vm, host)) = vm_and_host("memory_attributes_follow_the_host_capability") else {
        return;
    };
    let plain = GuestMemory::new(
        Arc::clone(&vm),
        &[GpaRange::new(0x10_0000, 0x1000)],
        MemoryFlavour::Plain,
        1,
    )
    .unwrap();
    // Checked before any ioctl: plain memory cannot be made private.
    assert!(matches!(
        plain.set_private(GpaRange::new(0x10_0000, 0x1000)),
        Err(MemoryError::NotGuestMemfd { gpa: 0x10_0000 })
    ));
    let gmem_range = [GpaRange::new(0, 0x4000)];
    let gmem = GuestMemory::new(Arc::clone(&vm), &gmem_range, MemoryFlavour::GuestMemfd, 0);
    if !host.guest_memfd(DEFAULT_VM_TYPE) {
        eprintln!("memory_attributes_follow_the_host_capability: no guest_memfd, so no attributes");
        assert_guest_memfd_refused(&gmem.unwrap_err(), &host, 0, 0x4000);
        return;
    }
    let gmem = gmem.unwrap();
    assert!(matches!(
        gmem.set_private(GpaRange::new(0x3000, 0x2000)),
        Err(MemoryError::NotGuestMemfd { gpa: 0x4000 })
    ));
    assert!(matches!(
        gmem.set_private(GpaRange::new(0x800, 0x1000)),
        Err(MemoryError::BadPageRange { .. })
    ));
    let range = GpaRange::new(0x1000, 0x2000);
    let result = gmem.set_private(range);
    if host.private_memory(DEFAULT_VM_TYPE) {
        eprintln!("memory_attributes_follow_the_host_capability: private attribute present");
        result.unwrap();
        gmem.set_shared(range).unwrap();
    } else {
        eprintln!("memory_attributes_follow_the_host_capability: private attribute absent");
        let reason = match result {
            Err(MemoryError::MemoryAttributesUnavailable {
                gpa,
                size,
                attributes,
                reason,
            }) => {
                assert_eq!((gpa, size, attributes), (0x1000, 0x2000, 8));
                reason
            }
            other => panic!("unexpected {other:?}"),
        };
        let disabled = host
            .vm_type(DEFAULT_VM_TYPE)
            .is_some_and(|v| v.memory_attributes_disabled);
        if disabled {
            assert_eq!(reason, Unavailable::Disabled);
        } else {
            // KVM has no KVM_SET_MEMORY_ATTRIBUTES for this VM type.
            assert!(
                matches!(reason, Unavailable::Host(e) if e.errno() == libc::ENOTTY),
                "{reason:?}"
            );
        }
    }
}

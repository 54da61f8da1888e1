//! Guest memory on the real /dev/kvm: vm-memory memory (the VMM's) is
//! registered as memslots of both flavours, accesses are volatile and
//! bounds-checked, slots are deleted on drop and keep their memory mapped
//! until then, the plan loader leaves data-less pages unwritten, and
//! guest_memfd and memory attributes behave as this host's KVM offers them. Hosts differ (some give
//! VM type 0 a guest_memfd, some do not; few have memory attributes): each
//! test that depends on it probes the host (`igvm_snp_kvm::host`), prints
//! the branch it takes and checks what that branch must show. With
//! `IGVM_SNP_HOST_WITHOUT=guest_memfd,memory_attributes` every host takes
//! the "absent" branches.

use std::sync::Arc;

use igvm_snp::GpaRange;
use igvm_snp_kvm::host::{DEFAULT_VM_TYPE, HostCapabilities};
use igvm_snp_kvm::kvm_check::{assert_guest_memfd_refused, host_or_skip, kvm_or_skip};
use igvm_snp_kvm::memory::{
    Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, LoadOptions, MemoryError,
    MemoryFlavour, Memslots, RegionInfo, Unavailable, VmsaPage, anonymous, load_plan,
};
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

/// Fresh memory for `layout`, registered as slots from `first_slot`.
fn register(
    vm: &Arc<VmFd>,
    layout: &[GpaRange],
    flavour: MemoryFlavour,
    first_slot: u32,
) -> Result<(GuestMemoryMmap, Memslots), MemoryError> {
    let memory = anonymous(layout)?;
    let slots = Memslots::register(Arc::clone(vm), &memory, flavour, first_slot)?;
    Ok((memory, slots))
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
        let mem = register(&vm, &layout(), flavour, first_slot);
        if flavour == MemoryFlavour::GuestMemfd && !host.guest_memfd(DEFAULT_VM_TYPE) {
            // The first region (sorted: low RAM) is refused, nothing is left
            // registered: the same slots take plain memory afterwards.
            assert_guest_memfd_refused(&mem.unwrap_err(), &host, 0, 0x10_0000);
            register(&vm, &layout(), MemoryFlavour::Plain, first_slot).unwrap();
            continue;
        }
        let (_memory, mem) = mem.unwrap();
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

/// Accesses go through vm-memory (volatile), spanning adjacent regions and
/// refused wholly where a byte is outside memory.
#[test]
fn accesses_are_volatile_and_bounds_checked() {
    let Some(vm) = vm("accesses_are_volatile_and_bounds_checked") else {
        return;
    };
    let adjacent = [GpaRange::new(0, 0x2000), GpaRange::new(0x2000, 0x1000)];
    let (mem, _slots) = register(&vm, &adjacent, MemoryFlavour::Plain, 0).unwrap();
    mem.write_slice(&[7, 8, 9, 10], GuestAddress(0x1FFE))
        .unwrap();
    let mut buf = [0u8; 4];
    mem.read_slice(&mut buf, GuestAddress(0x1FFE)).unwrap();
    assert_eq!(buf, [7, 8, 9, 10]);
    // One byte past the top: refused.
    assert!(mem.write_slice(&[9, 9], GuestAddress(0x2FFF)).is_err());
    let mut one = [0u8; 1];
    assert!(mem.read_slice(&mut one, GuestAddress(0x3000)).is_err());
    // A volatile slice of one region only.
    assert!(mem.get_slice(GuestAddress(0x1000), 0x2000).is_err());
    assert_eq!(
        mem.get_slice(GuestAddress(0x1000), 0x1000).unwrap().len(),
        0x1000
    );
}

/// The memslots hold the memory mapped while KVM may use it: dropping the
/// VMM's handle leaves the mapping in place; dropping the slots unmaps it.
/// The memory maps a file of its own, so /proc/self/maps names it: an
/// address alone could be reused at once by another test thread's mapping.
#[test]
fn memslots_keep_their_memory_mapped() {
    let Some(vm) = vm("memslots_keep_their_memory_mapped") else {
        return;
    };
    let (path, file) = igvm_snp_test_support::scratch_file("memslots-mapped", 0x4000, 0);
    let memory = GuestMemoryMmap::<()>::from_ranges_with_files(&[(
        GuestAddress(0),
        0x4000,
        Some(vm_memory::FileOffset::new(file, 0)),
    )])
    .unwrap();
    let slots = Memslots::register(Arc::clone(&vm), &memory, MemoryFlavour::Plain, 0).unwrap();
    let name = path.to_str().unwrap().to_owned();
    let mapped = || {
        std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .any(|l| l.ends_with(&name) || l.ends_with(&format!("{name} (deleted)")))
    };
    std::fs::remove_file(&path).unwrap();
    assert!(mapped());
    drop(memory);
    assert!(mapped(), "the slots keep the region mapped");
    drop(slots);
    assert!(!mapped(), "unmapped once the slots are gone");
}

/// The loader writes data and parameter pages but leaves data-less pages
/// alone (fresh memory is zero, and untouched memory stays unbacked);
/// asked to, it writes their zeros.
#[test]
fn the_plan_loader_leaves_data_less_pages_unwritten() {
    let bytes = igvm_snp::demo::demo_igvm();
    let ram = vec![GpaRange::new(0, 16 << 20)];
    let config = igvm_snp::LaunchConfig::new(1, ram.clone());
    let plan =
        igvm_snp::LaunchPlan::new(&bytes, &config, igvm_snp::PlanOptions::default()).unwrap();
    let memory = anonymous(&[ram[0], GpaRange::new(0xFFFF_B000, 0x5000)]).unwrap();
    let zero = GuestAddress(igvm_snp::demo::ZERO_GPA);
    memory.write_slice(&[0xFF; 4096], zero).unwrap();
    let written = load_plan(&plan, &memory, LoadOptions::new(VmsaPage::Skip)).unwrap();
    let mut page = vec![0u8; 4096];
    memory.read_slice(&mut page, zero).unwrap();
    assert_eq!(page, vec![0xFF; 4096], "the data-less page was not written");
    memory
        .read_slice(&mut page, GuestAddress(igvm_snp::demo::DATA_GPA))
        .unwrap();
    assert_eq!(page, igvm_snp::demo::data_page());
    let all = load_plan(
        &plan,
        &memory,
        LoadOptions::new(VmsaPage::Skip).writing_zero_pages(),
    )
    .unwrap();
    assert_eq!(all, written + 1);
    memory.read_slice(&mut page, zero).unwrap();
    assert_eq!(page, vec![0; 4096]);
    // Memory without the plan's pages: the first missing page is named.
    let small = anonymous(&ram).unwrap();
    match load_plan(&plan, &small, LoadOptions::new(VmsaPage::Skip)) {
        Err(MemoryError::Unmapped { gpa, len }) => {
            assert_eq!((gpa, len), (igvm_snp::demo::PARAMETER_GPA, 4096));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn bad_layouts_are_refused() {
    let Some(vm) = vm("bad_layouts_are_refused") else {
        return;
    };
    let overlap = [GpaRange::new(0, 0x2000), GpaRange::new(0x1000, 0x1000)];
    assert!(matches!(
        anonymous(&overlap),
        Err(MemoryError::Overlap { gpa: 0x1000 })
    ));
    let unaligned = [GpaRange::new(0x10, 0x1000)];
    assert!(matches!(
        anonymous(&unaligned),
        Err(MemoryError::InvalidRange {
            reason: "not 4 KiB aligned",
            ..
        })
    ));
    // KVM refuses a slot above its address limit: the error names the slot
    // and GPA, and the region created before it is removed again (the same
    // GPA can be registered afterwards in another slot).
    let too_high = [GpaRange::new(0, 0x1000), GpaRange::new(1 << 60, 0x1000)];
    match register(&vm, &too_high, MemoryFlavour::Plain, 3) {
        Err(MemoryError::Memslot { slot, gpa, .. }) => assert_eq!((slot, gpa), (4, 1 << 60)),
        other => panic!("unexpected {:?}", other.map(|_| ())),
    }
    register(&vm, &[GpaRange::new(0, 0x1000)], MemoryFlavour::Plain, 7).unwrap();
}

/// More regions than KVM has memslots left from `first_slot` are refused
/// before any slot exists, naming the count and KVM's limit; the last
/// slot itself can be used.
#[test]
fn regions_beyond_kvms_memslots_are_refused_up_front() {
    let Some(vm) = vm("regions_beyond_kvms_memslots_are_refused_up_front") else {
        return;
    };
    let limit = u32::try_from(vm.check_extension_int(kvm_ioctls::Cap::NrMemslots)).unwrap();
    assert!(limit > 2, "KVM_CAP_NR_MEMSLOTS {limit}");
    let two = [GpaRange::new(0, 0x1000), GpaRange::new(0x10_0000, 0x1000)];
    match register(&vm, &two, MemoryFlavour::Plain, limit - 1) {
        Err(MemoryError::TooManyMemslots {
            regions,
            first_slot,
            limit: l,
        }) => assert_eq!((regions, first_slot, l), (2, limit - 1, limit)),
        other => panic!("unexpected {:?}", other.map(|_| ())),
    }
    // Nothing was registered: both GPAs take slots 0 and 1 afterwards.
    let (_memory, _slots) = register(&vm, &two, MemoryFlavour::Plain, 0).unwrap();
    let last = [GpaRange::new(0x20_0000, 0x1000)];
    register(&vm, &last, MemoryFlavour::Plain, limit - 1).unwrap();
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
        let refused = register(&vm, &range, MemoryFlavour::GuestMemfd, 0);
        assert_guest_memfd_refused(&refused.unwrap_err(), &host, 0x10_0000, 0x4000);
    }
    for flavour in flavours {
        let first = register(&vm, &range, flavour, 0).unwrap();
        // While it lives, the same GPA in another slot overlaps (EEXIST).
        match register(&vm, &range, flavour, 1).map(|_| ()) {
            Err(MemoryError::Memslot {
                slot: 1, source, ..
            }) => {
                assert_eq!(source.errno(), libc::EEXIST);
            }
            other => panic!("unexpected {other:?}"),
        }
        drop(first);
        // Once dropped, another slot may take the range.
        register(&vm, &range, flavour, 2).unwrap();
    }
}

/// A VMM that owns its `VmFd` outright lends it: the slots borrow the VM
/// and are deleted when dropped, as with an `Arc`.
#[test]
fn a_borrowed_vm_takes_slots_and_gets_them_deleted() {
    let Some(vm) = vm("a_borrowed_vm_takes_slots_and_gets_them_deleted") else {
        return;
    };
    let owned: &VmFd = &vm;
    let memory = anonymous(&[GpaRange::new(0x10_0000, 0x4000)]).unwrap();
    let slots = Memslots::register(owned, &memory, MemoryFlavour::Plain, 0).unwrap();
    assert_eq!(slots.regions().count(), 1);
    assert!(std::ptr::eq(slots.vm(), owned));
    let again = Memslots::register(owned, &memory, MemoryFlavour::Plain, 1);
    assert!(matches!(
        again.map(|_| ()),
        Err(MemoryError::Memslot { slot: 1, .. })
    ));
    drop(slots);
    Memslots::register(owned, &memory, MemoryFlavour::Plain, 1).unwrap();
}

#[test]
fn memory_attributes_follow_the_host_capability() {
    let Some((vm, host)) = vm_and_host("memory_attributes_follow_the_host_capability") else {
        return;
    };
    let (_plain_memory, plain) = register(
        &vm,
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
    let gmem = register(&vm, &gmem_range, MemoryFlavour::GuestMemfd, 0);
    if !host.guest_memfd(DEFAULT_VM_TYPE) {
        eprintln!("memory_attributes_follow_the_host_capability: no guest_memfd, so no attributes");
        assert_guest_memfd_refused(&gmem.unwrap_err(), &host, 0, 0x4000);
        return;
    }
    let (_gmem_memory, gmem) = gmem.unwrap();
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

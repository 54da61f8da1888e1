//! The core crate's demo IGVM file runs natively on /dev/kvm and prints
//! exactly its expected line (its data-page checksum proves the pages the
//! plan loaded reached guest memory).

use std::time::Duration;

use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, PlanOptions, demo};
use igvm_snp_kvm::host::DEFAULT_VM_TYPE;
use igvm_snp_kvm::kvm_check::{assert_guest_memfd_refused, host_or_skip, kvm_or_skip};
use igvm_snp_kvm::memory::{Bytes, GuestAddress, MemoryError, MemoryFlavour};
use igvm_snp_kvm::native::{NativeConfig, NativeError, NativeOutcome, NativeVm};

/// The demo's plan for `vcpus` vCPUs and 2 MiB of RAM, and a native
/// configuration with that RAM and a 10 s limit.
fn demo_plan(bytes: &[u8], vcpus: u32) -> (LaunchPlan<'_>, NativeConfig) {
    let ram = vec![GpaRange::new(0, 2 << 20)];
    let config = LaunchConfig::new(vcpus, ram.clone());
    let plan = LaunchPlan::new(bytes, &config, PlanOptions::default()).unwrap();
    (plan, NativeConfig::new(ram, Duration::from_secs(10)))
}

#[test]
fn demo_prints_expected_output() {
    if kvm_or_skip("demo_prints_expected_output").is_none() {
        return;
    }
    let bytes = demo::demo_igvm();
    let (plan, config) = demo_plan(&bytes, 1);
    assert_prints_the_greeting(&plan, &config);
}

/// Runs `plan` and checks that the demo guest halts after its greeting.
fn assert_prints_the_greeting(plan: &LaunchPlan<'_>, config: &NativeConfig) {
    let mut out = Vec::new();
    let outcome = NativeVm::run_plan(plan, config, |b| out.extend_from_slice(b)).unwrap();
    assert!(
        matches!(outcome, NativeOutcome::Halted { .. }),
        "{outcome:?}"
    );
    assert_eq!(String::from_utf8_lossy(&out), demo::expected_output());
}

/// Where the host gives VM type 0 a guest_memfd, the demo runs from
/// guest_memfd memslots. Where it does not (or `IGVM_SNP_HOST_WITHOUT`
/// says so), asking for them is a typed error naming the first region, and
/// the documented way on (plain memory, `run --native`'s default) runs it.
#[test]
fn demo_runs_from_guest_memfd_memslots() {
    let Some((_, host)) = host_or_skip("demo_runs_from_guest_memfd_memslots") else {
        return;
    };
    let bytes = demo::demo_igvm();
    let (plan, mut config) = demo_plan(&bytes, 1);
    config.memory_flavour = MemoryFlavour::GuestMemfd;
    if !host.guest_memfd(DEFAULT_VM_TYPE) {
        match NativeVm::new(&plan, &config) {
            Err(NativeError::Memory(e)) => assert_guest_memfd_refused(&e, &host, 0, 2 << 20),
            other => panic!("unexpected {:?}", other.map(|_| ())),
        }
        config.memory_flavour = MemoryFlavour::Plain;
        assert_prints_the_greeting(&plan, &config);
        return;
    }
    let mut vm = NativeVm::new(&plan, &config).unwrap();
    assert!(vm.memslots().regions().all(|r| r.guest_memfd));
    let mut out = Vec::new();
    let outcome = vm.run(&config, |b| out.extend_from_slice(b)).unwrap();
    assert!(
        matches!(outcome, NativeOutcome::Halted { .. }),
        "{outcome:?}"
    );
    assert_eq!(String::from_utf8_lossy(&out), demo::expected_output());
    // Resuming after the HLT reaches the guest's next HLT (`hlt; jmp hlt`)
    // without printing more.
    out.clear();
    let again = vm.run(&config, |b| out.extend_from_slice(b)).unwrap();
    assert!(matches!(again, NativeOutcome::Halted { .. }), "{again:?}");
    assert!(out.is_empty());
}

#[test]
fn demo_loads_every_page_but_the_vmsa() {
    if kvm_or_skip("demo_loads_every_page_but_the_vmsa").is_none() {
        return;
    }
    let bytes = demo::demo_igvm();
    let (plan, config) = demo_plan(&bytes, 3);
    let vm = NativeVm::new(&plan, &config).unwrap();
    // Parameter, data and code pages; not the data-less page (fresh memory
    // is zero: nothing is written there), not the VMSA.
    assert_eq!(vm.pages_loaded(), 3);
    let mut page = vec![0u8; 4096];
    vm.memory()
        .read_slice(&mut page, GuestAddress(demo::DATA_GPA))
        .unwrap();
    assert_eq!(page, demo::data_page());
    vm.memory()
        .read_slice(&mut page, GuestAddress(demo::CODE_GPA))
        .unwrap();
    assert_eq!(page, demo::code_page());
    // The VP count parameter (3) was written into the parameter page.
    vm.memory()
        .read_slice(&mut page, GuestAddress(demo::PARAMETER_GPA))
        .unwrap();
    assert_eq!(&page[..4], &3u32.to_le_bytes());
    let mut one = [0u8; 1];
    assert!(
        vm.memory()
            .read_slice(&mut one, GuestAddress(demo::VMSA_GPA))
            .is_err()
    );
}

#[test]
fn bad_native_ram_is_a_typed_error() {
    if kvm_or_skip("bad_native_ram_is_a_typed_error").is_none() {
        return;
    }
    let bytes = demo::demo_igvm();
    let (plan, mut config) = demo_plan(&bytes, 1);
    config.ram = vec![GpaRange::new(0x10_0800, 0x1000)];
    match NativeVm::new(&plan, &config) {
        Err(NativeError::Memory(MemoryError::InvalidRange { gpa, reason, .. })) => {
            assert_eq!((gpa, reason), (0x10_0800, "not 4 KiB aligned"));
        }
        other => panic!("unexpected {:?}", other.map(|_| ())),
    }
}

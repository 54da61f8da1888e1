//! The host probe on the real /dev/kvm answers what the library then does:
//! guest memory of the probed kind is created exactly when the probe says
//! so, the SEV-SNP VM type is probed exactly when KVM lists it, and a
//! feature treated as absent is absent everywhere (probe and preflight).

use std::sync::Arc;

use igvm_snp::GpaRange;
use igvm_snp_kvm::host::{DEFAULT_VM_TYPE, HostFeatures, SNP_VM_TYPE, Support};
use igvm_snp_kvm::kvm_check::{assert_guest_memfd_refused, host_or_skip};
use igvm_snp_kvm::memory::{MemoryFlavour, Memslots, anonymous};
use igvm_snp_kvm::preflight::Missing;

#[test]
fn the_probe_answers_what_memory_then_does() {
    let Some((kvm, host)) = host_or_skip("the_probe_answers_what_memory_then_does") else {
        return;
    };
    assert!(host.kvm());
    let vm0 = host.vm_type(DEFAULT_VM_TYPE).expect("VM type 0 is probed");
    assert_eq!(vm0.create_error, None);
    assert_ne!(vm0.guest_memfd, Support::NotProbed);
    assert_eq!(
        host.vm_type(SNP_VM_TYPE).is_some(),
        host.preflight.snp_vm_type(),
        "{host}"
    );
    let vm = Arc::new(kvm.create_vm_with_type(DEFAULT_VM_TYPE).unwrap());
    let range = [GpaRange::new(0x20_0000, 0x1000)];
    let memory = anonymous(&range).unwrap();
    let mem = Memslots::register(Arc::clone(&vm), &memory, MemoryFlavour::GuestMemfd, 0);
    if host.guest_memfd(DEFAULT_VM_TYPE) {
        let mem = mem.unwrap();
        assert!(mem.regions().all(|r| r.guest_memfd));
    } else {
        assert_guest_memfd_refused(&mem.unwrap_err(), &host, 0x20_0000, 0x1000);
    }

    let masked = host.clone().without(HostFeatures::all());
    for vm in &masked.vm_types {
        assert_eq!(vm.guest_memfd, Support::Disabled);
        assert_eq!(vm.memory_attributes, 0);
    }
    let missing = masked.preflight.missing();
    assert!(missing.contains(&Missing::GuestMemfd), "{missing:?}");
    assert!(
        missing.contains(&Missing::PrivateMemoryAttribute {
            memory_attributes: 0
        }),
        "{missing:?}"
    );
    let text = masked.to_string();
    assert!(
        text.contains("guest_memfd no (disabled by IGVM_SNP_HOST_WITHOUT)"),
        "{text}"
    );
}

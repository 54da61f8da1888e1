//! The MADT builder against tables written out by hand from the ACPI
//! specification (6.5, §5.2.12), not from the builder.

use igvm_snp::Error;
use igvm_snp::acpi::{MAX_VCPUS, Madt, madt_for_vcpus};

/// Sum of all bytes modulo 256 (the ACPI checksum rule: the whole table
/// sums to zero).
fn sum(t: &[u8]) -> u8 {
    t.iter().fold(0u8, |a, b| a.wrapping_add(*b))
}

#[test]
fn two_vcpus_byte_for_byte() {
    #[rustfmt::skip]
    let mut want: Vec<u8> = vec![
        // Header: "APIC", length 88 (0x58: 44 + 2 * 8 + 12 + 10 + 6), revision 3, checksum (below),
        // OEM ID, OEM table ID, OEM revision 1, creator "IGVM", revision 1.
        b'A', b'P', b'I', b'C', 0x58, 0, 0, 0, 3, 0xEE,
        b'I', b'G', b'V', b'M', b'S', b'N',
        b'I', b'G', b'V', b'M', b'M', b'A', b'D', b'T',
        1, 0, 0, 0, b'I', b'G', b'V', b'M', 1, 0, 0, 0,
        // Local APIC address 0xFEE00000, flags PCAT_COMPAT.
        0x00, 0x00, 0xE0, 0xFE, 1, 0, 0, 0,
        // Processor Local APIC: type 0, length 8, UID 0, APIC ID 0, enabled.
        0, 8, 0, 0, 1, 0, 0, 0,
        // UID 1, APIC ID 1.
        0, 8, 1, 1, 1, 0, 0, 0,
        // I/O APIC: type 1, length 12, ID 0, reserved, 0xFEC00000, GSI base 0.
        1, 12, 0, 0, 0x00, 0x00, 0xC0, 0xFE, 0, 0, 0, 0,
        // Interrupt source override: type 2, length 10, ISA, IRQ 0 -> GSI 2.
        2, 10, 0, 0, 2, 0, 0, 0, 0, 0,
        // Local APIC NMI: type 4, length 6, all processors, flags 0, LINT1.
        4, 6, 0xFF, 0, 0, 1,
    ];
    assert_eq!(want.len(), 0x58);
    // The checksum byte makes the sum zero.
    want[9] = 0;
    want[9] = 0u8.wrapping_sub(sum(&want));
    let got = madt_for_vcpus(2).unwrap();
    assert_eq!(got, want);
    assert_eq!(sum(&got), 0);
}

#[test]
fn entries_per_vcpu_and_x2apic_beyond_254() {
    for vcpus in [1u32, 7, 255, 256, 300] {
        let t = madt_for_vcpus(vcpus).unwrap();
        assert_eq!(sum(&t), 0, "{vcpus}");
        assert_eq!(
            u32::from_le_bytes(t[4..8].try_into().unwrap()) as usize,
            t.len()
        );
        // Walk the structures after the 44-byte header.
        let mut at = 44;
        let (mut lapic, mut x2apic, mut ioapic) = (0u32, 0u32, 0);
        while at < t.len() {
            let (ty, len) = (t[at], t[at + 1] as usize);
            match (ty, len) {
                (0, 8) => {
                    assert_eq!(t[at + 3] as u32, lapic, "APIC IDs in order");
                    lapic += 1;
                }
                (9, 16) => {
                    let id = u32::from_le_bytes(t[at + 4..at + 8].try_into().unwrap());
                    assert_eq!(id, 255 + x2apic);
                    x2apic += 1;
                }
                (1, 12) => ioapic += 1,
                (2, 10) | (4, 6) | (0xA, 12) => {}
                other => panic!("unexpected structure {other:?}"),
            }
            at += len;
        }
        assert_eq!(at, t.len());
        assert_eq!(lapic + x2apic, vcpus);
        assert_eq!(lapic, vcpus.min(255));
        assert_eq!(ioapic, 1);
    }
}

#[test]
fn vcpu_count_is_checked() {
    for vcpus in [0, MAX_VCPUS + 1] {
        assert_eq!(
            Madt::for_vcpus(vcpus).to_bytes(),
            Err(Error::InvalidMadtVcpus {
                vcpus,
                max: MAX_VCPUS
            })
        );
    }
    assert!(madt_for_vcpus(MAX_VCPUS).is_ok());
}

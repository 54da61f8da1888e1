//! ACPI tables a VMM writes into IGVM parameter areas.
//!
//! An IGVM file may ask the loader for the guest's ACPI MADT (a `MADT`
//! parameter), as coconut-svsm's `igvmbuilder` files do: the SVSM reads the
//! processor topology from it before any firmware runs. QEMU answers with
//! the MADT it builds for its own ACPI tables (`hw/i386/acpi-common.c`);
//! [`Madt`] builds the same kind of table for a VMM that has none: one
//! processor local APIC per vCPU, one I/O APIC, the ISA IRQ 0 to GSI 2
//! override and the LINT1 NMI of a PC.
//!
//! Layout: ACPI 6.5, §5.2.12 "Multiple APIC Description Table".
//!
//! ```
//! let madt = igvm_snp::acpi::madt_for_vcpus(4)?;
//! assert_eq!(&madt[..4], b"APIC");
//! assert_eq!(madt.iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
//! # Ok::<(), igvm_snp::Error>(())
//! ```

use crate::error::{Error, Result};

/// The local APIC's physical address on x86 (the MADT header's "Local
/// Interrupt Controller Address").
pub const LOCAL_APIC_ADDRESS: u32 = 0xFEE0_0000;
/// The I/O APIC's physical address on a PC.
pub const IO_APIC_ADDRESS: u32 = 0xFEC0_0000;
/// MADT flag: the system also has a PC-AT-compatible dual 8259 setup.
pub const PCAT_COMPAT: u32 = 1;
/// The MADT revision written (3, as QEMU's x86 MADT).
pub const MADT_REVISION: u8 = 3;
/// The most vCPUs [`Madt`] describes (KVM's `KVM_MAX_VCPUS`).
pub const MAX_VCPUS: u32 = 4096;
/// APIC IDs from this one on need x2APIC structures.
const FIRST_X2APIC_ID: u32 = 0xFF;

/// A MADT for a machine whose vCPU `i` has APIC ID and ACPI processor UID
/// `i`, all enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Madt {
    /// vCPUs (1 to [`MAX_VCPUS`]).
    pub vcpus: u32,
    /// The I/O APIC's ID.
    pub io_apic_id: u8,
    /// The I/O APIC's address.
    pub io_apic_address: u32,
    /// OEM ID in the table header (6 bytes).
    pub oem_id: [u8; 6],
    /// OEM table ID in the table header (8 bytes).
    pub oem_table_id: [u8; 8],
}

impl Madt {
    /// The MADT of a PC with `vcpus` vCPUs: I/O APIC 0 at
    /// [`IO_APIC_ADDRESS`], OEM "IGVMSN" / "IGVMMADT".
    pub fn for_vcpus(vcpus: u32) -> Self {
        Madt {
            vcpus,
            io_apic_id: 0,
            io_apic_address: IO_APIC_ADDRESS,
            oem_id: *b"IGVMSN",
            oem_table_id: *b"IGVMMADT",
        }
    }

    /// The table's bytes, checksummed: the header, then per vCPU a
    /// Processor Local APIC structure (type 0, 8 bytes; type 9, Processor
    /// Local x2APIC, 16 bytes, for APIC IDs from 255 on), then the I/O APIC
    /// (type 1, 12 bytes), the interrupt source override of ISA IRQ 0 to
    /// GSI 2 (type 2, 10 bytes) and the NMI on LINT1 of every processor
    /// (type 4, 6 bytes; with x2APIC structures also type 0xA, 12 bytes).
    ///
    /// # Errors
    /// [`Error::InvalidMadtVcpus`] for 0 or more than [`MAX_VCPUS`] vCPUs.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        if self.vcpus == 0 || self.vcpus > MAX_VCPUS {
            return Err(Error::InvalidMadtVcpus {
                vcpus: self.vcpus,
                max: MAX_VCPUS,
            });
        }
        let mut t = Vec::with_capacity(44 + 16 * self.vcpus as usize + 40);
        // System description table header (36 bytes).
        t.extend_from_slice(b"APIC");
        t.extend_from_slice(&0u32.to_le_bytes()); // length, below
        t.push(MADT_REVISION);
        t.push(0); // checksum, below
        t.extend_from_slice(&self.oem_id);
        t.extend_from_slice(&self.oem_table_id);
        t.extend_from_slice(&1u32.to_le_bytes()); // OEM revision
        t.extend_from_slice(b"IGVM"); // creator ID
        t.extend_from_slice(&1u32.to_le_bytes()); // creator revision
        t.extend_from_slice(&LOCAL_APIC_ADDRESS.to_le_bytes());
        t.extend_from_slice(&PCAT_COMPAT.to_le_bytes());
        for id in 0..self.vcpus {
            if id < FIRST_X2APIC_ID {
                // Processor Local APIC: UID, APIC ID, flags (enabled).
                t.extend_from_slice(&[0, 8, id as u8, id as u8]);
                t.extend_from_slice(&1u32.to_le_bytes());
            } else {
                // Processor Local x2APIC: reserved, x2APIC ID, flags, UID.
                t.extend_from_slice(&[9, 16, 0, 0]);
                t.extend_from_slice(&id.to_le_bytes());
                t.extend_from_slice(&1u32.to_le_bytes());
                t.extend_from_slice(&id.to_le_bytes());
            }
        }
        // I/O APIC: ID, reserved, address, global system interrupt base.
        t.extend_from_slice(&[1, 12, self.io_apic_id, 0]);
        t.extend_from_slice(&self.io_apic_address.to_le_bytes());
        t.extend_from_slice(&0u32.to_le_bytes());
        // Interrupt source override: bus ISA, IRQ 0, GSI 2, flags 0
        // (conforms to the bus).
        t.extend_from_slice(&[2, 10, 0, 0]);
        t.extend_from_slice(&2u32.to_le_bytes());
        t.extend_from_slice(&0u16.to_le_bytes());
        // Local APIC NMI: every processor (0xFF), flags 0, LINT1.
        t.extend_from_slice(&[4, 6, 0xFF, 0, 0, 1]);
        if self.vcpus > FIRST_X2APIC_ID {
            // Local x2APIC NMI: flags 0, every processor, LINT1, reserved.
            t.extend_from_slice(&[0xA, 12, 0, 0]);
            t.extend_from_slice(&u32::MAX.to_le_bytes());
            t.extend_from_slice(&[1, 0, 0, 0]);
        }
        let len = t.len() as u32;
        t[4..8].copy_from_slice(&len.to_le_bytes());
        let sum = t.iter().fold(0u8, |a, b| a.wrapping_add(*b));
        t[9] = 0u8.wrapping_sub(sum);
        Ok(t)
    }
}

/// The bytes of [`Madt::for_vcpus`]`(vcpus)`.
///
/// # Errors
/// As [`Madt::to_bytes`].
pub fn madt_for_vcpus(vcpus: u32) -> Result<Vec<u8>> {
    Madt::for_vcpus(vcpus).to_bytes()
}

//! What the VMM tells the planner: vCPUs, RAM, parameter values, host data.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::parse::ParameterKind;

/// A guest-physical range in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct GpaRange {
    /// First byte.
    pub gpa: u64,
    /// Length in bytes.
    pub size: u64,
}

impl GpaRange {
    /// A range.
    pub const fn new(gpa: u64, size: u64) -> Self {
        GpaRange { gpa, size }
    }

    /// One past the last byte, if it does not overflow.
    pub fn end(&self) -> Option<u64> {
        self.gpa.checked_add(self.size)
    }

    /// Whether `other` lies within this range.
    pub fn contains(&self, other: &GpaRange) -> bool {
        match (self.end(), other.end()) {
            (Some(e), Some(oe)) => other.gpa >= self.gpa && oe <= e,
            _ => false,
        }
    }
}

/// The VMM's configuration of a launch: everything the IGVM file's
/// parameters and finish step take from the host.
///
/// ```
/// use igvm_snp::{GpaRange, LaunchConfig};
/// let config = LaunchConfig::new(4, vec![GpaRange::new(0, 512 << 20)])
///     .with_command_line("console=ttyS0");
/// assert_eq!(config.vcpu_count, 4);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LaunchConfig {
    /// vCPUs the VM will have (`VP_COUNT_PARAMETER`): 1 to
    /// [`crate::kvm_legacy::KVM_MAX_VCPUS`], else planning fails.
    pub vcpu_count: u32,
    /// Guest RAM ranges, 4 KiB aligned, not overlapping. They fill
    /// `MEMORY_MAP`; planning does not hold them against `REQUIRED_MEMORY`
    /// (a VMM gives required memory outside RAM regions of its own: the
    /// backend's memory layout places it and refuses a range that lies
    /// partly in RAM). Empty means "not known yet": a memory map parameter
    /// then stays unfilled.
    pub memory: Vec<GpaRange>,
    /// Kernel command line (`COMMAND_LINE`), written NUL-terminated.
    pub command_line: Option<String>,
    /// `ENVIRONMENT_INFO` bit 0, `memory_is_shared`. QEMU writes 1 for
    /// SEV-SNP, OpenVMM 0; the default here is 0 (guest memory starts private).
    pub memory_is_shared: bool,
    /// Up to two MMIO ranges (`MMIO_RANGES`).
    pub mmio_ranges: Vec<GpaRange>,
    /// ACPI MADT table bytes (`MADT`).
    pub madt: Option<Vec<u8>>,
    /// ACPI SRAT table bytes (`SRAT`).
    pub srat: Option<Vec<u8>>,
    /// ACPI SLIT table bytes (`SLIT`).
    pub slit: Option<Vec<u8>>,
    /// ACPI PPTT table bytes (`PPTT`).
    pub pptt: Option<Vec<u8>>,
    /// Flattened device tree bytes (`DEVICE_TREE`).
    pub device_tree: Option<Vec<u8>>,
    /// HOST_DATA for SNP_LAUNCH_FINISH (appears in attestation reports).
    pub host_data: [u8; 32],
    /// A guest policy to use when the file has none for SEV-SNP. A policy in
    /// the file always wins.
    pub default_policy: Option<u64>,
}

impl LaunchConfig {
    /// A configuration with a vCPU count and RAM ranges; everything else
    /// empty.
    pub fn new(vcpu_count: u32, memory: Vec<GpaRange>) -> Self {
        LaunchConfig {
            vcpu_count,
            memory,
            ..Default::default()
        }
    }

    /// Sets the command line.
    pub fn with_command_line(mut self, command_line: impl Into<String>) -> Self {
        self.command_line = Some(command_line.into());
        self
    }

    /// Sets the host data.
    pub fn with_host_data(mut self, host_data: [u8; 32]) -> Self {
        self.host_data = host_data;
        self
    }

    /// Sets the policy used when the file has none.
    pub fn with_default_policy(mut self, policy: u64) -> Self {
        self.default_policy = Some(policy);
        self
    }

    /// Gives the tables a VMM may leave out (SRAT, SLIT, PPTT, device tree)
    /// that are not set yet as empty: a file asking for one then keeps its
    /// area's initial contents, as QEMU leaves them, instead of being
    /// refused for a missing parameter.
    ///
    /// ```
    /// use igvm_snp::LaunchConfig;
    /// let config = LaunchConfig::new(1, Vec::new()).leaving_optional_tables_unset();
    /// assert_eq!(config.device_tree, Some(Vec::new()));
    /// assert_eq!(config.srat, Some(Vec::new()));
    /// assert_eq!(config.madt, None); // not optional: a VMM gives its MADT
    /// ```
    pub fn leaving_optional_tables_unset(mut self) -> Self {
        for kind in Self::OPTIONAL_TABLES {
            if let Some(table) = self.table_mut(kind) {
                table.get_or_insert_with(Vec::new);
            }
        }
        self
    }

    /// The parameters a VMM may leave out (QEMU writes none of them), which
    /// [`LaunchConfig::leaving_optional_tables_unset`] leaves unset.
    pub const OPTIONAL_TABLES: [ParameterKind; 4] = [
        ParameterKind::Srat,
        ParameterKind::Slit,
        ParameterKind::Pptt,
        ParameterKind::DeviceTree,
    ];

    /// The configuration's value for a table parameter (`None` for the
    /// parameters that are not tables).
    fn table_mut(&mut self, kind: ParameterKind) -> Option<&mut Option<Vec<u8>>> {
        match kind {
            ParameterKind::Madt => Some(&mut self.madt),
            ParameterKind::Srat => Some(&mut self.srat),
            ParameterKind::Slit => Some(&mut self.slit),
            ParameterKind::Pptt => Some(&mut self.pptt),
            ParameterKind::DeviceTree => Some(&mut self.device_tree),
            _ => None,
        }
    }

    /// The RAM ranges sorted, after checking alignment, emptiness, overflow
    /// and overlap.
    pub(crate) fn sorted_memory(&self) -> Result<Vec<GpaRange>> {
        let mut ranges = self.memory.clone();
        ranges.sort();
        let mut prev_end = 0u64;
        for (i, r) in ranges.iter().enumerate() {
            let bad = |reason| Error::InvalidMemoryRange {
                gpa: r.gpa,
                size: r.size,
                reason,
            };
            if r.size == 0 {
                return Err(bad("empty"));
            }
            if r.gpa % 4096 != 0 || r.size % 4096 != 0 {
                return Err(bad("not 4 KiB aligned"));
            }
            let Some(end) = r.end() else {
                return Err(bad("overflows the address space"));
            };
            if i > 0 && r.gpa < prev_end {
                return Err(bad("overlaps another range"));
            }
            prev_end = end;
        }
        Ok(ranges)
    }
}

//! Choices that change what is launched and therefore the digest.
//!
//! The defaults follow the IGVM specification with the SEV-SNP VMSA page
//! type. Each alternative names the loader that behaves that way (sources:
//! shared notes, `igvm-snp-mapping.md` §3 and §5).

use serde::Serialize;

/// How data-less pages (`file_offset` 0) are launched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ZeroPages {
    /// A NORMAL page of zeros: the IGVM spec, QEMU, igvmmeasure's default,
    /// the `igvm` crate.
    #[default]
    Normal,
    /// The firmware's ZERO page type: cloud-hypervisor on KVM, igvmmeasure
    /// `--native-zero`.
    NativeZero,
}

/// How pages with the `shared` flag are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SharedPages {
    /// Host visible, loaded into shared memory, not measured: the IGVM spec,
    /// the `igvm` crate, OpenVMM.
    #[default]
    HostVisible,
    /// Launched and measured as NORMAL pages: QEMU, igvmmeasure,
    /// cloud-hypervisor (which ignore the flag).
    MeasuredNormal,
}

/// How a `PARAMETER_INSERT` is launched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParameterInserts {
    /// Every 4 KiB page of the area as UNMEASURED: the IGVM spec, the `igvm`
    /// crate, QEMU, cloud-hypervisor, OpenVMM.
    #[default]
    EveryPage,
    /// Only the first page: coconut-svsm's igvmmeasure (which measures one
    /// page whatever the area's size).
    FirstPageOnly,
}

/// Options of the planner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct PlanOptions {
    /// Data-less pages.
    pub zero_pages: ZeroPages,
    /// Shared pages.
    pub shared_pages: SharedPages,
    /// Parameter inserts.
    pub parameter_inserts: ParameterInserts,
}

impl PlanOptions {
    /// Options with data-less pages as the firmware's ZERO type.
    pub fn native_zero() -> Self {
        PlanOptions {
            zero_pages: ZeroPages::NativeZero,
            ..Default::default()
        }
    }
}

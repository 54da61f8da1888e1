//! Choices that change what is launched and therefore the digest.
//!
//! The defaults follow the IGVM specification with the SEV-SNP VMSA page
//! type. Each alternative names the loader that behaves that way (sources:
//! shared notes, `igvm-snp-mapping.md` §3 and §5).

use serde::Serialize;

use crate::kvm_legacy::KvmLegacyInputs;

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

/// Where and when the boot VMSA is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum VmsaPlacement {
    /// A VMSA step at the file's VMSA GPA, in directive order, once: the
    /// IGVM spec and the proposed `KVM_SEV_SNP_PAGE_TYPE_VMSA` (notes
    /// `kvm-snp-uapi.md` §2).
    #[default]
    LaunchUpdate,
    /// Today's upstream KVM: no VMSA step; at SNP_LAUNCH_FINISH KVM measures
    /// one VMSA per vCPU at `0xFFFFFFFFF000`, built from the vCPU state
    /// (notes `kvm-snp-uapi.md` §1.7, §4.7). The plan keeps the boot VMSA
    /// ([`LaunchPlan::vmsa`](crate::LaunchPlan::vmsa)) for the backend to
    /// load into the boot vCPU; the digest appends the VMSAs of
    /// [`crate::kvm_legacy`] after every page.
    KvmFinish(KvmLegacyInputs),
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
    /// The boot VMSA.
    pub vmsa: VmsaPlacement,
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

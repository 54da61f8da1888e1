//! Measurement profiles, one concept: the rule sets loaders in use apply to
//! the same IGVM file ([`Profile`], each a [`PlanOptions`]), and the
//! comparison of a file under all of them ([`check`]: which profiles can
//! launch it, each one's digest, and why they differ). Planning with a
//! profile's options gives both the launch that loader performs and the
//! digest it yields, so the two cannot disagree.
//!
//! Sources: shared notes `igvm-snp-mapping.md` §3 and §5 (loaders) and
//! `kvm-snp-uapi.md` §1.7, §2 and §4.7 (KVM).

mod compare;

use serde::Serialize;

pub use compare::{CompatReport, Finding, ProfileReport, check, check_releasing};

use crate::kvm_legacy::KvmLegacyInputs;
use crate::plan::{ParameterInserts, PlanOptions, SharedPages, VmsaPlacement, ZeroPages};

/// A named set of measurement rules.
///
/// ```
/// use igvm_snp::{LaunchConfig, LaunchPlan, GpaRange, Profile};
/// use igvm_snp::kvm_legacy::KvmLegacyInputs;
/// let bytes = igvm_snp::demo::demo_igvm();
/// let config = LaunchConfig::new(2, vec![GpaRange::new(0, 16 << 20)]);
/// for profile in Profile::all(KvmLegacyInputs::new(2, 0, 0xA00F11)) {
///     let plan = LaunchPlan::new(&bytes, &config, profile.options())?;
///     println!("{:<12} {}", profile.name(), plan.launch_digest());
/// }
/// # Ok::<(), igvm_snp::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case", tag = "profile")]
pub enum Profile {
    /// The IGVM specification with the SEV-SNP VMSA page type: data-less
    /// pages as NORMAL zero pages, shared pages host visible and not
    /// measured, every page of a parameter area UNMEASURED, the VMSA at its
    /// IGVM GPA in directive order, once. The `igvm` crate's
    /// `generate_snp_measurement` and OpenVMM apply these rules; on KVM it
    /// needs the proposed `KVM_SEV_SNP_PAGE_TYPE_VMSA` (not merged). The
    /// default.
    #[default]
    IgvmSpec,
    /// As [`Profile::IgvmSpec`] with data-less pages as the firmware's ZERO
    /// page type: cloud-hypervisor on KVM, and coconut-svsm igvmmeasure
    /// `--native-zero` on files without shared pages (it measures those,
    /// as [`Profile::Igvmmeasure`] does; its `--native-zero` digest is that
    /// profile's options with [`ZeroPages::NativeZero`]).
    NativeZero,
    /// coconut-svsm `igvmmeasure` (tools/igvmmeasure): shared pages measured
    /// as NORMAL (the flag is ignored), one UNMEASURED page per parameter
    /// insert whatever the area's size, the VMSA at its GPA in file order.
    /// SVSM documents it as the expected digest of QEMU + KVM.
    Igvmmeasure,
    /// Today's upstream KVM through this library's fallback: the plan's
    /// pages under the spec's rules, then at SNP_LAUNCH_FINISH one VMSA per
    /// vCPU at 0xFFFFFFFFF000 as KVM builds it ([`crate::kvm_legacy`], a
    /// model).
    KvmLegacy(KvmLegacyInputs),
}

impl Profile {
    /// Every profile, the spec's first.
    pub fn all(legacy: KvmLegacyInputs) -> [Profile; 4] {
        [
            Profile::IgvmSpec,
            Profile::NativeZero,
            Profile::Igvmmeasure,
            Profile::KvmLegacy(legacy),
        ]
    }

    /// The planner options of the profile.
    pub fn options(&self) -> PlanOptions {
        let spec = PlanOptions::default();
        match self {
            Profile::IgvmSpec => spec,
            Profile::NativeZero => PlanOptions {
                zero_pages: ZeroPages::NativeZero,
                ..spec
            },
            Profile::Igvmmeasure => PlanOptions {
                shared_pages: SharedPages::MeasuredNormal,
                parameter_inserts: ParameterInserts::FirstPageOnly,
                ..spec
            },
            Profile::KvmLegacy(inputs) => PlanOptions {
                vmsa: VmsaPlacement::KvmFinish(*inputs),
                ..spec
            },
        }
    }

    /// A short name: `igvm-spec`, `native-zero`, `igvmmeasure`,
    /// `kvm-legacy`.
    pub fn name(&self) -> &'static str {
        match self {
            Profile::IgvmSpec => "igvm-spec",
            Profile::NativeZero => "native-zero",
            Profile::Igvmmeasure => "igvmmeasure",
            Profile::KvmLegacy(_) => "kvm-legacy",
        }
    }

    /// Who measures this way.
    pub fn source(&self) -> &'static str {
        match self {
            Profile::IgvmSpec => "IGVM spec + proposed KVM VMSA page type; igvm crate, OpenVMM",
            Profile::NativeZero => {
                "cloud-hypervisor on KVM; igvmmeasure --native-zero where no page is shared"
            }
            Profile::Igvmmeasure => "coconut-svsm igvmmeasure (expected digest for QEMU + KVM)",
            Profile::KvmLegacy(_) => {
                "upstream KVM today: per-vCPU VMSAs at LAUNCH_FINISH (model, not verified on hardware)"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_per_profile() {
        let k = KvmLegacyInputs::new(2, 0, 0x600);
        let [spec, zero, measure, legacy] = Profile::all(k);
        assert_eq!(spec.options(), PlanOptions::default());
        assert_eq!(zero.options(), PlanOptions::native_zero());
        let m = measure.options();
        assert_eq!(m.shared_pages, SharedPages::MeasuredNormal);
        assert_eq!(m.parameter_inserts, ParameterInserts::FirstPageOnly);
        assert_eq!(m.zero_pages, ZeroPages::Normal);
        assert_eq!(m.vmsa, VmsaPlacement::LaunchUpdate);
        let l = legacy.options();
        assert_eq!(l.vmsa, VmsaPlacement::KvmFinish(k));
        assert_eq!(l.shared_pages, SharedPages::HostVisible);
        assert_eq!(
            Profile::all(k).map(|p| p.name()),
            ["igvm-spec", "native-zero", "igvmmeasure", "kvm-legacy"]
        );
    }
}

//! The SEV-SNP launch plan: an ordered list of SNP_LAUNCH_UPDATE steps plus
//! the LAUNCH_START and LAUNCH_FINISH inputs, built from a parsed file and
//! the VMM's configuration. The same steps drive execution (the backend
//! crate) and the launch digest ([`LaunchPlan::launch_digest`]).

mod build;
mod classify;
mod measure;
mod options;
mod overlap;

use std::ops::Range;

use serde::Serialize;

pub(crate) use build::snp_platform;
pub use measure::MeasureStats;
pub use options::{ParameterInserts, PlanOptions, SharedPages, VmsaPlacement, ZeroPages};

use crate::config::{GpaRange, LaunchConfig};
use crate::digest::{LaunchDigest, PAGE_SIZE, page_hash};
use crate::error::{Error, HeaderRef, Result};
use crate::id_block::LaunchFinish;
use crate::page_type::PageType;
use crate::params::{ParameterArea, UnfilledParameter};
use crate::parse::{DirectiveKind, IgvmFile};
use crate::policy::{PolicySource, SnpPolicy};
use crate::vmsa::BootVmsa;

use classify::PageClass;

/// The SEV-SNP platform chosen from the file.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SnpPlatform {
    /// The platform header.
    pub at: HeaderRef,
    /// Its one-bit compatibility mask; a header applies to SEV-SNP when its
    /// mask shares this bit.
    pub compatibility_mask: u32,
    /// Highest VTL (VMPL) the file uses.
    pub highest_vtl: u8,
    /// The shared GPA boundary (vTOM) the file declares.
    pub shared_gpa_boundary: u64,
}

/// Where a step's pages come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum StepSource {
    /// `PAGE_DATA` directives within the step's directive range.
    PageData,
    /// A parameter area.
    ParameterArea {
        /// Its position in [`LaunchPlan::parameter_areas`].
        position: usize,
        /// Its index in the file (`PARAMETER_AREA`'s `parameter_area_index`,
        /// as [`crate::ParameterArea::index`]), which the file's parameter
        /// directives name it by.
        index: u32,
    },
    /// The boot VMSA ([`LaunchPlan::vmsa`]).
    Vmsa,
}

/// One SNP_LAUNCH_UPDATE: a run of contiguous 4 KiB pages of one type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaunchStep {
    /// Position in the plan.
    pub index: usize,
    /// First GPA.
    pub gpa: u64,
    /// Number of 4 KiB pages.
    pub pages: u64,
    /// Page type of every page.
    pub page_type: PageType,
    /// Where the contents come from.
    pub source: StepSource,
    /// Directives (indices into [`IgvmFile::directives`]) the step came
    /// from; for `PageData` every page-importing SEV-SNP directive in this
    /// range belongs to the step, in order.
    pub directives: Range<usize>,
}

impl LaunchStep {
    /// The GPA range the step launches.
    pub fn range(&self) -> GpaRange {
        GpaRange::new(self.gpa, self.pages * PAGE_SIZE as u64)
    }
}

/// Pages loaded into shared (host-visible) memory and not launched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharedRun {
    /// First GPA.
    pub gpa: u64,
    /// Pages.
    pub pages: u64,
    /// Directives the pages came from.
    pub directives: Range<usize>,
}

/// A host-visible range from an `ERROR_RANGE` directive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostVisibleRange {
    /// The directive.
    pub at: HeaderRef,
    /// The range.
    pub range: GpaRange,
}

/// A `REQUIRED_MEMORY` directive for SEV-SNP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequiredMemory {
    /// The directive.
    pub at: HeaderRef,
    /// The range.
    pub range: GpaRange,
    /// Whether VTL2 may protect it.
    pub vtl2_protectable: bool,
}

/// The contents of one 4 KiB page of a plan.
#[derive(Debug, Clone, Copy)]
pub enum PageBytes<'p> {
    /// All zeros.
    Zero,
    /// A prefix of the page (at most 4096 bytes, the rest zeros), borrowed.
    Data(&'p [u8]),
    /// Page `page` of a parameter area.
    Parameter {
        /// The area.
        area: &'p ParameterArea<'p>,
        /// Page index within the area.
        page: u64,
    },
}

impl PageBytes<'_> {
    /// Writes the page into `out` (which must be 4096 bytes long).
    pub fn write_to(&self, out: &mut [u8]) {
        match self {
            PageBytes::Zero => out[..PAGE_SIZE].fill(0),
            PageBytes::Data(d) => {
                let n = d.len().min(PAGE_SIZE);
                out[..n].copy_from_slice(&d[..n]);
                out[n..PAGE_SIZE].fill(0);
            }
            PageBytes::Parameter { area, page } => area.write_page(*page, out),
        }
    }

    /// SHA-384 of the 4096-byte page.
    pub fn hash(&self) -> [u8; 48] {
        match self {
            PageBytes::Zero => page_hash(&[]),
            PageBytes::Data(d) => page_hash(d),
            PageBytes::Parameter { .. } => {
                let mut buf = [0u8; PAGE_SIZE];
                self.write_to(&mut buf);
                page_hash(&buf)
            }
        }
    }
}

/// An ordered, inspectable SEV-SNP launch plan.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let bytes = igvm_snp::demo::demo_igvm();
/// use igvm_snp::{LaunchConfig, LaunchPlan, PlanOptions, GpaRange};
/// let config = LaunchConfig::new(1, vec![GpaRange::new(0, 16 << 20)]);
/// let plan = LaunchPlan::new(&bytes, &config, PlanOptions::default())?;
/// for step in plan.steps() {
///     println!("{:#x} {} x{}", step.gpa, step.page_type, step.pages);
/// }
/// println!("launch digest {}", plan.launch_digest());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct LaunchPlan<'a> {
    file: IgvmFile<'a>,
    options: PlanOptions,
    platform: SnpPlatform,
    policy_bits: u64,
    policy_source: PolicySource,
    steps: Vec<LaunchStep>,
    vmsa: BootVmsa<'a>,
    parameter_areas: Vec<ParameterArea<'a>>,
    shared: Vec<SharedRun>,
    error_ranges: Vec<HostVisibleRange>,
    required_memory: Vec<RequiredMemory>,
    finish: LaunchFinish,
    unfilled: Vec<UnfilledParameter>,
    config_memory: Vec<GpaRange>,
    vcpu_count: u32,
}

impl<'a> LaunchPlan<'a> {
    /// Parses `bytes` and plans its SEV-SNP launch.
    ///
    /// # Errors
    /// Any parse error, any SEV-SNP rule the file breaks, or a configuration
    /// that does not fit the file.
    pub fn new(bytes: &'a [u8], config: &LaunchConfig, options: PlanOptions) -> Result<Self> {
        Self::from_file(IgvmFile::parse(bytes)?, config, options)
    }

    /// Plans the SEV-SNP launch of a parsed file.
    ///
    /// # Errors
    /// As [`LaunchPlan::new`], without the parse errors.
    pub fn from_file(
        file: IgvmFile<'a>,
        config: &LaunchConfig,
        options: PlanOptions,
    ) -> Result<Self> {
        build::build(file, config, options)
    }

    /// The configured vCPU count ([`LaunchConfig::vcpu_count`]): what the
    /// VP count parameter says, and what a launch must create.
    pub fn vcpu_count(&self) -> u32 {
        self.vcpu_count
    }

    /// The parsed file.
    pub fn file(&self) -> &IgvmFile<'a> {
        &self.file
    }

    /// The options the plan was built with.
    pub fn options(&self) -> PlanOptions {
        self.options
    }

    /// The SEV-SNP platform.
    pub fn platform(&self) -> &SnpPlatform {
        &self.platform
    }

    /// The SNP_LAUNCH_START policy, validated: the file's, else the
    /// configuration's, else [`SnpPolicy::DEFAULT_BITS`] (see
    /// [`LaunchPlan::policy_source`]). The policy is not part of the launch
    /// digest, so planning never fails on it; launching does.
    ///
    /// # Errors
    /// [`Error::InvalidGuestPolicy`] naming where the policy came from.
    pub fn policy(&self) -> Result<SnpPolicy> {
        SnpPolicy::new(self.policy_bits).map_err(|e| match e {
            Error::InvalidPolicy { policy, reason } => Error::InvalidGuestPolicy {
                from: self.policy_source,
                policy,
                reason,
            },
            other => other,
        })
    }

    /// The guest policy's raw bits, valid or not.
    pub fn policy_bits(&self) -> u64 {
        self.policy_bits
    }

    /// Where the guest policy comes from; [`PolicySource::in_file`] says
    /// whether the file has one.
    pub fn policy_source(&self) -> PolicySource {
        self.policy_source
    }

    /// The SNP_LAUNCH_UPDATE steps, in order.
    pub fn steps(&self) -> &[LaunchStep] {
        &self.steps
    }

    /// The boot CPU's VMSA.
    pub fn vmsa(&self) -> &BootVmsa<'a> {
        &self.vmsa
    }

    /// The `vmsa_features` KVM_SEV_INIT2 needs so that KVM accepts the VMSA.
    pub fn init2_vmsa_features(&self) -> u64 {
        self.vmsa.init2_vmsa_features()
    }

    /// Parameter areas, in declaration order.
    pub fn parameter_areas(&self) -> &[ParameterArea<'a>] {
        &self.parameter_areas
    }

    /// Host-visible pages, loaded into shared memory and not launched.
    pub fn shared_runs(&self) -> &[SharedRun] {
        &self.shared
    }

    /// Host-visible error-report ranges.
    pub fn error_ranges(&self) -> &[HostVisibleRange] {
        &self.error_ranges
    }

    /// Memory the file requires.
    pub fn required_memory(&self) -> &[RequiredMemory] {
        &self.required_memory
    }

    /// The SNP_LAUNCH_FINISH inputs.
    pub fn finish(&self) -> &LaunchFinish {
        &self.finish
    }

    /// Parameters the configuration had no value for (left as the area's
    /// initial contents). Measurement does not depend on them; execution
    /// should refuse them (see [`LaunchPlan::require_all_parameters`]).
    pub fn unfilled_parameters(&self) -> &[UnfilledParameter] {
        &self.unfilled
    }

    /// The configured RAM ranges, sorted.
    pub fn configured_memory(&self) -> &[GpaRange] {
        &self.config_memory
    }

    /// Fails on the first parameter the configuration did not fill.
    ///
    /// # Errors
    /// [`Error::ParameterNotConfigured`].
    pub fn require_all_parameters(&self) -> Result<()> {
        match self.unfilled.first() {
            None => Ok(()),
            Some(u) => Err(Error::ParameterNotConfigured {
                at: u.directive,
                kind: u.kind.name(),
                index: u.area_index,
            }),
        }
    }

    /// Fails on the first thing a launch of this plan cannot do: an invalid
    /// guest policy, a parameter the configuration did not fill, or a VMSA
    /// launched at a 2 MiB-aligned GPA. None of these changes the digest, so
    /// planning and measuring take them; a backend calls this before it
    /// launches.
    ///
    /// # Errors
    /// [`Error::InvalidGuestPolicy`], [`Error::ParameterNotConfigured`],
    /// [`Error::VmsaGpa2MbAligned`].
    pub fn require_launchable(&self) -> Result<()> {
        self.policy()?;
        self.require_all_parameters()?;
        if let Some(gpa) = self.vmsa_gpa_2mb_aligned() {
            return Err(Error::VmsaGpa2MbAligned {
                at: self.vmsa.at,
                gpa,
            });
        }
        Ok(())
    }

    /// The VMSA's GPA when the plan launches it (a VMSA step) at a 2 MiB
    /// boundary. An SNP erratum makes the firmware fault on VMSA pages that
    /// can be part of a 2 MiB page: KVM never places its own VMSAs there,
    /// and the proposed direct-VMSA interface refuses such a GPA.
    pub fn vmsa_gpa_2mb_aligned(&self) -> Option<u64> {
        let launched = self.steps.iter().any(|s| s.source == StepSource::Vmsa);
        (launched && self.vmsa.gpa % (2 << 20) == 0).then_some(self.vmsa.gpa)
    }

    /// Total pages launched.
    pub fn launched_pages(&self) -> u64 {
        self.steps.iter().map(|s| s.pages).sum()
    }

    /// Every GPA range the plan writes (launched and shared), unsorted.
    pub fn loaded_ranges(&self) -> impl Iterator<Item = GpaRange> + '_ {
        self.steps
            .iter()
            .map(LaunchStep::range)
            .chain(
                self.shared
                    .iter()
                    .map(|s| GpaRange::new(s.gpa, s.pages * PAGE_SIZE as u64)),
            )
            .chain(self.error_ranges.iter().map(|e| e.range))
    }

    /// The pages of a step, in ascending GPA order, with their contents.
    pub fn step_pages<'p>(
        &'p self,
        step: &'p LaunchStep,
    ) -> impl Iterator<Item = (u64, PageBytes<'p>)> + 'p {
        StepPages::new(self, step)
    }

    /// The `PAGE_DATA` directives a step launches, in order (none for a
    /// step of another source).
    fn step_directives<'p>(
        &'p self,
        step: &'p LaunchStep,
    ) -> impl Iterator<Item = &'p crate::parse::Directive<'p>> + Send + 'p {
        let range = match step.source {
            StepSource::PageData => step.directives.clone(),
            _ => 0..0,
        };
        self.file.directives()[range]
            .iter()
            .filter(move |d| self.launches_into(d, step))
    }

    /// Whether directive `d` launches pages of `step` (when `step` comes
    /// from `PAGE_DATA` directives and `d` is in its range).
    fn launches_into(&self, d: &crate::parse::Directive<'_>, step: &LaunchStep) -> bool {
        matches!(classify::classify(d, self.platform.compatibility_mask, self.options),
            Some((PageClass::Launch(t), _)) if t == step.page_type)
    }

    /// The pages of a shared run, in ascending GPA order.
    pub fn shared_pages<'p>(
        &'p self,
        run: &'p SharedRun,
    ) -> impl Iterator<Item = (u64, PageBytes<'p>)> + 'p {
        let mask = self.platform.compatibility_mask;
        let options = self.options;
        self.file.directives()[run.directives.clone()]
            .iter()
            .filter(move |d| {
                matches!(
                    classify::classify(d, mask, options),
                    Some((PageClass::Shared, _))
                )
            })
            .flat_map(page_data_pages)
    }

    /// Checks the ID block's expected digest against `computed` (normally
    /// [`LaunchPlan::launch_digest`]). Passes when the file has no ID block.
    ///
    /// # Errors
    /// [`Error::IdBlockMismatch`] with both values.
    pub fn check_id_block(&self, computed: &LaunchDigest) -> Result<()> {
        match self.finish.expected_digest {
            Some(expected) if expected != *computed => Err(Error::IdBlockMismatch {
                expected,
                computed: *computed,
            }),
            _ => Ok(()),
        }
    }
}

/// The pages of one `PAGE_DATA` directive (1, or 512 for a 2 MiB page).
fn page_data_pages<'p>(
    d: &'p crate::parse::Directive<'p>,
) -> impl Iterator<Item = (u64, PageBytes<'p>)> + 'p {
    let (gpa, data, pages) = match &d.kind {
        DirectiveKind::PageData { header, data } => {
            let pages = if header.flags.is_2mb_page() { 512 } else { 1 };
            (header.gpa, *data, pages)
        }
        _ => (0, &[][..], 0),
    };
    (0..pages).map(move |p| {
        let off = p as usize * PAGE_SIZE;
        let bytes = if data.is_empty() {
            PageBytes::Zero
        } else {
            PageBytes::Data(&data[off..off + PAGE_SIZE])
        };
        (gpa + p * PAGE_SIZE as u64, bytes)
    })
}

/// Iterator over a step's pages.
struct StepPages<'p> {
    inner: Box<dyn Iterator<Item = (u64, PageBytes<'p>)> + Send + 'p>,
}

impl<'p> StepPages<'p> {
    fn new(plan: &'p LaunchPlan<'p>, step: &'p LaunchStep) -> Self {
        let inner: Box<dyn Iterator<Item = (u64, PageBytes<'p>)> + Send + 'p> = match step.source {
            StepSource::PageData => Box::new(plan.step_directives(step).flat_map(page_data_pages)),
            StepSource::ParameterArea { position, .. } => {
                let area = &plan.parameter_areas[position];
                let gpa = step.gpa;
                Box::new((0..step.pages).map(move |p| {
                    (
                        gpa + p * PAGE_SIZE as u64,
                        PageBytes::Parameter { area, page: p },
                    )
                }))
            }
            StepSource::Vmsa => Box::new(std::iter::once((
                step.gpa,
                PageBytes::Data(plan.vmsa.bytes),
            ))),
        };
        StepPages { inner }
    }
}

impl<'p> Iterator for StepPages<'p> {
    type Item = (u64, PageBytes<'p>);

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }
}

/// The JSON form of a plan.
#[derive(Serialize)]
struct PlanJson<'p> {
    platform: &'p SnpPlatform,
    policy: u64,
    policy_source: PolicySource,
    options: PlanOptions,
    vmsa: &'p BootVmsa<'p>,
    sev_features: u64,
    init2_vmsa_features: u64,
    launched_pages: u64,
    steps: &'p [LaunchStep],
    parameter_areas: &'p [ParameterArea<'p>],
    shared_runs: &'p [SharedRun],
    error_ranges: &'p [HostVisibleRange],
    required_memory: &'p [RequiredMemory],
    unfilled_parameters: &'p [UnfilledParameter],
    finish: &'p LaunchFinish,
}

impl Serialize for LaunchPlan<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        PlanJson {
            platform: &self.platform,
            policy: self.policy_bits,
            policy_source: self.policy_source,
            options: self.options,
            vmsa: &self.vmsa,
            sev_features: self.vmsa.sev_features(),
            init2_vmsa_features: self.init2_vmsa_features(),
            launched_pages: self.launched_pages(),
            steps: &self.steps,
            parameter_areas: &self.parameter_areas,
            shared_runs: &self.shared,
            error_ranges: &self.error_ranges,
            required_memory: &self.required_memory,
            unfilled_parameters: &self.unfilled,
            finish: &self.finish,
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::LaunchPlan;

    /// A VMM shares a plan between threads (e.g. measuring while loading).
    #[test]
    fn plan_is_send_sync_debug() {
        fn check<T: Send + Sync + std::fmt::Debug>() {}
        check::<LaunchPlan<'static>>();
    }
}

//! The planner: one pass over the directives in file order, emitting maximal
//! runs of contiguous same-type pages. Nothing is reordered.

use std::collections::HashMap;
use std::sync::Arc;

use igvm_defs::IgvmPlatformType;

use super::classify::{PageClass, classify};
use super::options::{ParameterInserts, PlanOptions, VmsaPlacement};
use super::{
    HostVisibleRange, LaunchPlan, LaunchStep, RequiredMemory, SharedRun, SnpPlatform, StepSource,
    overlap,
};
use crate::config::{GpaRange, LaunchConfig};
use crate::digest::PAGE_SIZE;
use crate::error::{Error, HeaderRef, Result};
use crate::id_block::LaunchFinish;
use crate::kvm_legacy::KVM_MAX_VCPUS;
use crate::page_type::PageType;
use crate::params::{self, ParameterArea, ParameterWrite, UnfilledParameter};
use crate::parse::{
    DirectiveKind, IgvmFile, InitializationKind, MAX_LAUNCH_PAGES, ParameterKind, platform_name,
};
use crate::policy::{PolicySource, SnpPolicy};
use crate::vmsa::BootVmsa;

const PAGE: u64 = PAGE_SIZE as u64;

/// The SEV-SNP platform of a file.
pub(crate) fn snp_platform(file: &IgvmFile<'_>) -> Result<SnpPlatform> {
    let Some(p) = file.platform(IgvmPlatformType::SEV_SNP) else {
        let found = file
            .platforms()
            .iter()
            .map(|p| platform_name(p.platform_type()))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Error::NoSnpPlatform { found });
    };
    Ok(SnpPlatform {
        at: p.at,
        compatibility_mask: p.mask(),
        highest_vtl: p.header.highest_vtl,
        shared_gpa_boundary: p.header.shared_gpa_boundary,
    })
}

/// The guest policy for SEV-SNP and where it comes from (the file's wins,
/// then the configuration's, then [`SnpPolicy::DEFAULT_BITS`]), and a check
/// of the other initialization headers that apply to it. The policy is not
/// validated here: it is not part of the digest, and a launch validates it
/// ([`LaunchPlan::policy`]).
fn policy(file: &IgvmFile<'_>, mask: u32, config: &LaunchConfig) -> Result<(u64, PolicySource)> {
    let mut found: Option<(u64, HeaderRef)> = None;
    for init in file.initializations() {
        match init.kind.compatibility_mask() {
            Some(m) if m & mask != 0 => {}
            _ => continue,
        }
        match &init.kind {
            InitializationKind::GuestPolicy(h) => {
                if let Some((_, first)) = found {
                    return Err(Error::DuplicateGuestPolicy {
                        at: init.at,
                        first: first.index,
                    });
                }
                found = Some((h.policy, init.at));
            }
            InitializationKind::RelocatableRegion { .. } => {
                return Err(Error::UnsupportedForSnp {
                    at: init.at,
                    what: "a relocatable region",
                });
            }
            InitializationKind::PageTableRelocation { .. } => {
                return Err(Error::UnsupportedForSnp {
                    at: init.at,
                    what: "a page table relocation region",
                });
            }
            InitializationKind::CcaPolicy { .. } => {
                return Err(Error::UnsupportedForSnp {
                    at: init.at,
                    what: "a CCA policy",
                });
            }
            // CoRIM documents describe the image; they are not launched.
            _ => {}
        }
    }
    Ok(match (found, config.default_policy) {
        (Some((bits, at)), _) => (bits, PolicySource::File { at }),
        (None, Some(bits)) => (bits, PolicySource::Configuration),
        (None, None) => (SnpPolicy::DEFAULT_BITS, PolicySource::Default),
    })
}

fn end_of(at: HeaderRef, gpa: u64, pages: u64) -> Result<u64> {
    pages
        .checked_mul(PAGE)
        .and_then(|len| gpa.checked_add(len))
        .ok_or(Error::GpaRangeOverflow { at, gpa, pages })
}

struct Builder {
    /// Pages launched so far.
    launched: u64,
    /// Pages of required memory and error ranges so far.
    claimed: u64,
    steps: Vec<LaunchStep>,
    run: Option<LaunchStep>,
    shared: Vec<SharedRun>,
}

impl Builder {
    /// Pages the launch must provide so far: launched, required, reported.
    fn total(&self) -> u64 {
        self.launched.saturating_add(self.claimed)
    }

    /// Counts the `bytes` a REQUIRED_MEMORY or ERROR_RANGE directive
    /// (`what`) claims: the memory a launch must provide follows the cap on
    /// launched pages, together with them (as claimed: overlaps count twice).
    fn claim(&mut self, at: HeaderRef, what: &'static str, bytes: u64) -> Result<()> {
        self.claimed = self.claimed.saturating_add(bytes.div_ceil(PAGE));
        if self.total() > MAX_LAUNCH_PAGES {
            return Err(Error::TooMuchMemory {
                at,
                what,
                limit: MAX_LAUNCH_PAGES,
            });
        }
        Ok(())
    }

    fn flush(&mut self) {
        if let Some(mut run) = self.run.take() {
            run.index = self.steps.len();
            self.steps.push(run);
        }
    }

    fn push(&mut self, mut step: LaunchStep) {
        self.flush();
        self.launched = self.launched.saturating_add(step.pages);
        step.index = self.steps.len();
        self.steps.push(step);
    }

    fn page(&mut self, ty: PageType, gpa: u64, pages: u64, directive: usize) {
        self.launched = self.launched.saturating_add(pages);
        if let Some(run) = &mut self.run {
            if run.page_type == ty && run.gpa + run.pages * PAGE == gpa {
                run.pages += pages;
                run.directives.end = directive + 1;
                return;
            }
        }
        self.flush();
        self.run = Some(LaunchStep {
            index: 0,
            gpa,
            pages,
            page_type: ty,
            source: StepSource::PageData,
            directives: directive..directive + 1,
        });
    }

    fn shared(&mut self, gpa: u64, pages: u64, directive: usize) {
        if let Some(run) = self.shared.last_mut() {
            if run.gpa + run.pages * PAGE == gpa && run.directives.end == directive {
                run.pages += pages;
                run.directives.end = directive + 1;
                return;
            }
        }
        self.shared.push(SharedRun {
            gpa,
            pages,
            directives: directive..directive + 1,
        });
    }
}

pub(super) fn build<'a>(
    file: IgvmFile<'a>,
    config: &LaunchConfig,
    options: PlanOptions,
) -> Result<LaunchPlan<'a>> {
    if config.vcpu_count == 0 {
        return Err(Error::NoVcpus);
    }
    // The VP count parameter tells the guest how many vCPUs it has; a count
    // no KVM VM can have would only fail once vCPUs are being created.
    if config.vcpu_count > KVM_MAX_VCPUS {
        return Err(Error::InvalidVcpuCount {
            vcpus: config.vcpu_count,
            max: KVM_MAX_VCPUS,
        });
    }
    if let VmsaPlacement::KvmFinish(k) = options.vmsa {
        k.check()?;
    }
    let platform = snp_platform(&file)?;
    let mask = platform.compatibility_mask;
    let memory = config.sorted_memory()?;
    let (policy_bits, policy_source) = policy(&file, mask, config)?;

    let mut b = Builder {
        launched: 0,
        claimed: 0,
        steps: Vec::new(),
        run: None,
        shared: Vec::new(),
    };
    let mut areas: Vec<ParameterArea<'a>> = Vec::new();
    let mut area_of: HashMap<u32, usize> = HashMap::new();
    let mut vmsa: Option<BootVmsa<'a>> = None;
    let mut finish = LaunchFinish::new(config.host_data);
    let mut unfilled = Vec::new();
    let mut values: HashMap<ParameterKind, Option<Arc<[u8]>>> = HashMap::new();
    let mut required = Vec::new();
    let mut host_visible = Vec::new();

    for (i, d) in file.directives().iter().enumerate() {
        // Bound the work of measuring a hostile file (many headers can
        // share one page of data).
        if b.total() > MAX_LAUNCH_PAGES {
            return Err(Error::TooManyPages {
                at: file.directives()[i - 1].at,
                limit: MAX_LAUNCH_PAGES,
            });
        }
        if let Some(m) = d.kind.compatibility_mask() {
            if m & mask == 0 {
                continue;
            }
        }
        match &d.kind {
            DirectiveKind::PageData { header, .. } => {
                let Some((class, pages)) = classify(d, mask, options) else {
                    continue;
                };
                // A SECRETS or CPUID page belongs to the firmware; it cannot
                // also be host visible (the igvm crate skips such pages,
                // QEMU launches them: reject rather than pick one).
                if header.flags.shared()
                    && matches!(
                        class,
                        PageClass::Launch(PageType::Secrets | PageType::Cpuid)
                    )
                {
                    return Err(Error::UnsupportedForSnp {
                        at: d.at,
                        what: "a shared SECRETS or CPUID page",
                    });
                }
                end_of(d.at, header.gpa, pages)?;
                match class {
                    PageClass::Launch(ty) => b.page(ty, header.gpa, pages, i),
                    PageClass::Shared => b.shared(header.gpa, pages, i),
                }
            }
            DirectiveKind::ParameterArea { header, initial } => {
                area_of.insert(header.parameter_area_index, areas.len());
                areas.push(ParameterArea::new(
                    d.at,
                    header.parameter_area_index,
                    header.number_of_bytes,
                    initial,
                ));
            }
            DirectiveKind::Parameter { kind, header } => {
                let index = header.parameter_area_index;
                let Some(&ai) = area_of.get(&index) else {
                    return Err(Error::UnknownParameterArea { at: d.at, index });
                };
                let area = &mut areas[ai];
                // One value per kind, shared by all its directives: the
                // plan's memory follows the file's directives, not their
                // count times the configured table's size.
                let bytes = match values.get(kind) {
                    Some(bytes) => bytes.clone(),
                    None => {
                        let bytes = params::value(d.at, *kind, config, &memory)?;
                        values.insert(*kind, bytes.clone());
                        bytes
                    }
                };
                match bytes {
                    Some(bytes) => {
                        params::check_fits(d.at, *kind, header, bytes.len(), area.size)?;
                        area.push(ParameterWrite {
                            directive: d.at,
                            kind: *kind,
                            offset: u64::from(header.byte_offset),
                            bytes,
                        });
                    }
                    None => unfilled.push(UnfilledParameter {
                        directive: d.at,
                        kind: *kind,
                        area_index: index,
                    }),
                }
            }
            DirectiveKind::ParameterInsert(h) => {
                let index = h.parameter_area_index;
                let Some(&ai) = area_of.get(&index) else {
                    return Err(Error::UnknownParameterArea { at: d.at, index });
                };
                let area = &mut areas[ai];
                area.inserted_at = Some((h.gpa, d.at));
                let pages = match options.parameter_inserts {
                    ParameterInserts::EveryPage => area.pages(),
                    ParameterInserts::FirstPageOnly => 1,
                };
                end_of(d.at, h.gpa, pages)?;
                b.push(LaunchStep {
                    index: 0,
                    gpa: h.gpa,
                    pages,
                    page_type: PageType::Unmeasured,
                    source: StepSource::ParameterArea {
                        position: ai,
                        index: area.index,
                    },
                    directives: i..i + 1,
                });
            }
            DirectiveKind::VpContext { header, data } => {
                if header.vp_index != 0 {
                    return Err(Error::ApVpContext {
                        at: d.at,
                        vp_index: header.vp_index,
                    });
                }
                if data.len() != PAGE_SIZE {
                    return Err(Error::FileDataOutOfBounds {
                        at: d.at,
                        file_offset: header.file_offset,
                        len: PAGE,
                        data_start: file.data_start(),
                        file_len: file.bytes().len(),
                    });
                }
                // A 2 MiB-aligned GPA is measured as any other (igvmmeasure
                // does); `LaunchPlan::require_launchable` refuses to launch it.
                let gpa = header.gpa.get();
                // The page's end must be representable (the overlap check
                // adds the page size to every step's GPA).
                end_of(d.at, gpa, 1)?;
                vmsa = Some(BootVmsa::new(d.at, gpa, header.vp_index, data)?);
                if let VmsaPlacement::KvmFinish(_) = options.vmsa {
                    // KVM measures its own VMSAs at LAUNCH_FINISH.
                    continue;
                }
                b.push(LaunchStep {
                    index: 0,
                    gpa,
                    pages: 1,
                    page_type: PageType::Vmsa,
                    source: StepSource::Vmsa,
                    directives: i..i + 1,
                });
            }
            DirectiveKind::RequiredMemory(h) => {
                // Required memory is not measured: wherever it lies, it
                // does not block planning. A VMM gives memory outside its
                // RAM a region of its own (QEMU's `igvm.N` regions).
                let range = GpaRange::new(h.gpa, u64::from(h.number_of_bytes));
                end_of(d.at, h.gpa, range.size / PAGE)?;
                b.claim(d.at, "REQUIRED_MEMORY", range.size)?;
                required.push(RequiredMemory {
                    at: d.at,
                    range,
                    vtl2_protectable: h.flags.vtl2_protectable(),
                });
            }
            DirectiveKind::SnpIdBlock(h) => {
                if let Some(first) = finish.id_block_directive {
                    return Err(Error::DuplicateIdBlock {
                        at: d.at,
                        first: first.index,
                    });
                }
                // The IGVM spec: author fields must be zero unless the
                // author key is enabled (1).
                if h.author_key_enabled > 1 {
                    return Err(Error::InvalidIdBlock {
                        at: d.at,
                        reason: "author_key_enabled is neither 0 nor 1",
                    });
                }
                finish.set_from_igvm(d.at, h, policy_bits);
            }
            DirectiveKind::ErrorRange(h) => {
                let range = GpaRange::new(h.gpa, u64::from(h.size_bytes));
                end_of(d.at, h.gpa, range.size / PAGE)?;
                b.claim(d.at, "ERROR_RANGE", range.size)?;
                host_visible.push(HostVisibleRange { at: d.at, range });
            }
            DirectiveKind::VbsMeasurement { .. } => {
                return Err(Error::UnsupportedForSnp {
                    at: d.at,
                    what: "a VBS measurement",
                });
            }
            DirectiveKind::Optional { .. } => {}
        }
    }
    b.flush();
    for area in &mut areas {
        area.finish();
    }
    if b.total() > MAX_LAUNCH_PAGES {
        let last = file.directives().len().saturating_sub(1);
        return Err(Error::TooManyPages {
            at: file.directives()[last].at,
            limit: MAX_LAUNCH_PAGES,
        });
    }
    let vmsa = vmsa.ok_or(Error::NoVmsa)?;
    overlap::check(&file, mask, options, &b.steps, &b.shared, &host_visible)?;
    // The kvm-legacy inputs are checked last: an error in the file itself
    // (an overlap above) is the one to report, not inputs derived from a
    // file that could not be planned.
    if let VmsaPlacement::KvmFinish(k) = options.vmsa {
        let mismatch = |what, legacy: u64, expected: u64, source_name| {
            (legacy != expected).then_some(Error::LegacyInputsMismatch {
                what,
                legacy,
                expected,
                source_name,
            })
        };
        let vcpus = u64::from(config.vcpu_count);
        let features = vmsa.init2_vmsa_features();
        if let Some(e) = mismatch("vCPUs", u64::from(k.vcpus), vcpus, "configuration")
            .or_else(|| mismatch("VMSA features", k.vmsa_features, features, "file's VMSA"))
        {
            return Err(e);
        }
    }

    Ok(LaunchPlan {
        file,
        options,
        platform,
        policy_bits,
        policy_source,
        steps: b.steps,
        vmsa,
        parameter_areas: areas,
        shared: b.shared,
        error_ranges: host_visible,
        required_memory: required,
        finish,
        unfilled,
        config_memory: memory,
        vcpu_count: config.vcpu_count,
    })
}

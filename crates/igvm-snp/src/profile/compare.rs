//! Which measurement profiles can launch a file, the digest each gives, and
//! why they differ (the `check` command's report).
//!
//! The rules come from the shared notes: `igvm-snp-mapping.md` §5 (loader
//! disagreements) and §8.9 (KVM constraints, coconut-svsm igvmmeasure
//! `--check-kvm`), `kvm-snp-uapi.md` §1.3 (INIT2 feature checks), §1.7 and
//! §4.6 (the VMSAs KVM builds).

use std::fmt;

use igvm_defs::IgvmPageDataType;
use serde::Serialize;

use super::Profile;
use crate::config::LaunchConfig;
use crate::digest::LaunchDigest;
use crate::error::Result;
use crate::kvm_legacy::{
    FinishVmsas, KVM_VMSA_GPA, KvmLegacyInputs, boot_vmsa_refused, differing_fields,
    fields_kvm_cannot_set,
};
use crate::page_type::PageType;
use crate::parse::{Directive, DirectiveKind, IgvmFile};
use crate::plan::{LaunchPlan, StepSource};
use crate::policy::PolicySource;
use crate::vmsa::SEV_FEATURE_SNP_ACTIVE;

/// One reason a profile cannot launch a file, or measures it differently
/// from the IGVM spec profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum Finding {
    /// The plan could not be built with this profile's options.
    PlanError {
        /// The error.
        message: String,
    },
    /// Data-less pages: NORMAL zero pages here, ZERO pages elsewhere (or the
    /// reverse).
    ZeroPages {
        /// Pages.
        pages: u64,
        /// How this profile measures them.
        measured_as: PageType,
    },
    /// Pages with the `shared` flag: measured as NORMAL by this profile,
    /// host visible and not measured by the spec.
    SharedPages {
        /// Pages.
        pages: u64,
    },
    /// A parameter area larger than one page: this profile measures (and
    /// would launch) only its first page.
    MultiPageParameterArea {
        /// The area's index.
        index: u32,
        /// Its size in pages.
        pages: u64,
    },
    /// Shared pages the native-zero profile leaves unmeasured, as the spec
    /// does, while igvmmeasure `--native-zero` measures them as NORMAL:
    /// `--profile igvmmeasure --native-zero` gives its digest.
    SharedPagesNotMeasured {
        /// Shared pages.
        pages: u64,
    },
    /// KVM measures its VMSAs at 0xFFFFFFFFF000, not at the file's GPA.
    VmsaGpa {
        /// The file's VMSA GPA.
        gpa: u64,
    },
    /// Pages are launched after the VMSA in the file; KVM measures its
    /// VMSAs after every page.
    VmsaNotLast {
        /// Pages after the VMSA.
        pages_after: u64,
    },
    /// CR0 is not 0x30 or 0x31, which coconut-svsm igvmmeasure
    /// `--check-kvm` requires ("overridden by KVM").
    Cr0 {
        /// The file's CR0.
        cr0: u64,
    },
    /// The VMSA KVM builds for the boot vCPU differs from the file's.
    VmsaFields {
        /// The fields that differ.
        fields: Vec<&'static str>,
    },
    /// KVM also measures a reset-state VMSA for each AP.
    ApVmsas {
        /// AP VMSAs measured.
        count: u32,
    },
    /// SEV features KVM_SEV_INIT2 would refuse.
    UnsupportedSevFeatures {
        /// The `vmsa_features` the launch needs.
        requested: u64,
        /// Those KVM supports.
        supported: u64,
    },
    /// KVM refuses to build the boot VMSA.
    KvmRefusesVmsa {
        /// Why.
        reason: String,
    },
    /// The VMSA is launched at a 2 MiB-aligned GPA, which KVM refuses (an
    /// SNP erratum; the proposed direct-VMSA interface refuses it too).
    VmsaGpa2MbAligned {
        /// The GPA.
        gpa: u64,
    },
    /// Non-zero VMSA fields KVM does not build from vCPU state: a launch
    /// through registers cannot reproduce them (QEMU's
    /// `check_vmsa_supported` refuses such a VMSA).
    VmsaFieldsNotSynced {
        /// The fields ([`crate::kvm_legacy::fields_kvm_cannot_set`]).
        fields: Vec<&'static str>,
    },
    /// The guest policy a launch would use is not valid.
    InvalidPolicy {
        /// Why.
        message: String,
    },
    /// The file's ID block expects another launch digest: SNP_LAUNCH_FINISH
    /// with it would fail (BAD_MEASUREMENT).
    IdBlockDigest {
        /// The digest the ID block expects.
        expected: LaunchDigest,
        /// This profile's digest.
        digest: LaunchDigest,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::PlanError { message } => write!(f, "cannot plan: {message}"),
            Finding::ZeroPages { pages, measured_as } => write!(
                f,
                "{pages} data-less page(s) measured as {measured_as} (NORMAL zero pages in the spec, ZERO pages in native-zero)"
            ),
            Finding::SharedPages { pages } => write!(
                f,
                "{pages} shared page(s) measured as NORMAL (the spec loads them host visible, unmeasured)"
            ),
            Finding::SharedPagesNotMeasured { pages } => write!(
                f,
                "{pages} shared page(s) not measured; igvmmeasure --native-zero measures them \
                 (--profile igvmmeasure --native-zero)"
            ),
            Finding::MultiPageParameterArea { index, pages } => write!(
                f,
                "parameter area {index} has {pages} pages; only its first page is measured and launched"
            ),
            Finding::VmsaGpa { gpa } => write!(
                f,
                "VMSA GPA {gpa:#x}: KVM measures its VMSAs at {KVM_VMSA_GPA:#x}"
            ),
            Finding::VmsaNotLast { pages_after } => write!(
                f,
                "{pages_after} page(s) follow the VMSA in the file; KVM measures its VMSAs after every page"
            ),
            Finding::Cr0 { cr0 } => write!(
                f,
                "VMSA CR0 {cr0:#x} is not 0x30 or 0x31 (igvmmeasure --check-kvm: CR0 is overridden by KVM)"
            ),
            Finding::VmsaFields { fields } => write!(
                f,
                "the boot VMSA KVM builds differs from the file's in: {}",
                fields.join(", ")
            ),
            Finding::ApVmsas { count } => {
                write!(f, "KVM measures {count} more VMSA(s), one per AP")
            }
            Finding::UnsupportedSevFeatures {
                requested,
                supported,
            } => write!(
                f,
                "vmsa_features {requested:#x} include bits KVM does not support ({:#x} outside {supported:#x})",
                requested & !supported
            ),
            Finding::KvmRefusesVmsa { reason } => f.write_str(reason),
            Finding::VmsaGpa2MbAligned { gpa } => write!(
                f,
                "VMSA GPA {gpa:#x} is 2 MiB aligned: KVM cannot launch a VMSA there (SNP erratum)"
            ),
            Finding::VmsaFieldsNotSynced { fields } => write!(
                f,
                "VMSA fields KVM does not set from vCPU registers are not zero: {} (QEMU refuses \
                 such a VMSA)",
                fields.join(", ")
            ),
            Finding::InvalidPolicy { message } => f.write_str(message),
            Finding::IdBlockDigest { expected, .. } => write!(
                f,
                "the file's ID block expects digest {expected}, not this one: SNP_LAUNCH_FINISH \
                 with it would fail (BAD_MEASUREMENT)"
            ),
        }
    }
}

/// What one profile does with the file.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileReport {
    /// The profile.
    #[serde(flatten)]
    pub profile: Profile,
    /// Its short name.
    pub name: &'static str,
    /// Who measures this way.
    pub source: &'static str,
    /// Whether the file can be launched with this profile's rules.
    pub launchable: bool,
    /// The launch digest, when the plan could be built.
    pub digest: Option<LaunchDigest>,
    /// Whether the digest equals the IGVM spec profile's.
    pub same_as_spec: bool,
    /// Whether the digest equals the file's ID block, when it has one.
    pub matches_id_block: Option<bool>,
    /// Why it cannot launch the file.
    #[serde(serialize_with = "with_messages")]
    pub blockers: Vec<Finding>,
    /// Why its digest differs from the IGVM spec profile's.
    #[serde(serialize_with = "with_messages")]
    pub differences: Vec<Finding>,
    /// Rules of the loader the profile stands for that the file breaks
    /// without changing this profile's digest (igvmmeasure `--check-kvm`:
    /// VMSA GPA, VMSA last, CR0).
    #[serde(serialize_with = "with_messages")]
    pub notes: Vec<Finding>,
}

/// A finding with its message, as JSON shows it.
#[derive(Serialize)]
struct Described<'f> {
    #[serde(flatten)]
    finding: &'f Finding,
    message: String,
}

fn with_messages<S: serde::Serializer>(
    findings: &[Finding],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(findings.iter().map(|finding| Described {
        finding,
        message: finding.to_string(),
    }))
}

/// The compatibility report of one file.
#[derive(Debug, Clone, Serialize)]
pub struct CompatReport {
    /// The guest policy a launch would use, when the file plans.
    pub policy: Option<u64>,
    /// Where it comes from; [`PolicySource::in_file`] says whether the
    /// file has one.
    pub policy_source: Option<PolicySource>,
    /// The file's VMSA GPA, when it has one.
    pub vmsa_gpa: Option<u64>,
    /// Its SEV features.
    pub vmsa_sev_features: Option<u64>,
    /// The file's ID block digest, when it has one.
    pub id_block_digest: Option<LaunchDigest>,
    /// One entry per profile, the spec's first.
    pub profiles: Vec<ProfileReport>,
}

/// Facts about the file under the spec's rules that decide where profiles
/// differ.
struct Facts {
    zero_pages: u64,
    shared_pages: u64,
    multi_page_areas: Vec<(u32, u64)>,
    vmsa_gpa: u64,
    pages_after_vmsa: u64,
    cr0: u64,
    init2_features: u64,
}

impl Facts {
    fn new(spec: &LaunchPlan<'_>) -> Self {
        let vmsa_step = spec
            .steps()
            .iter()
            .position(|s| s.source == StepSource::Vmsa);
        let pages_after_vmsa = vmsa_step.map_or(0, |i| {
            spec.steps()
                .get(i + 1..)
                .unwrap_or(&[])
                .iter()
                .map(|s| s.pages)
                .sum()
        });
        Facts {
            zero_pages: spec
                .file()
                .directives()
                .iter()
                .map(|d| zero_pages(d, spec.platform().compatibility_mask))
                .sum(),
            shared_pages: spec.shared_runs().iter().map(|r| r.pages).sum(),
            multi_page_areas: spec
                .parameter_areas()
                .iter()
                .filter(|a| a.inserted_at.is_some() && a.pages() > 1)
                .map(|a| (a.index, a.pages()))
                .collect(),
            vmsa_gpa: spec.vmsa().gpa,
            pages_after_vmsa,
            cr0: spec.vmsa().vmsa.cr0,
            init2_features: spec.init2_vmsa_features(),
        }
    }
}

/// The data-less, measured, private NORMAL pages a directive imports for
/// the SEV-SNP mask (512 for a 2 MiB page).
fn zero_pages(d: &Directive<'_>, mask: u32) -> u64 {
    match &d.kind {
        DirectiveKind::PageData { header, data }
            if header.compatibility_mask & mask != 0
                && header.data_type == IgvmPageDataType::NORMAL
                && !header.flags.unmeasured()
                && !header.flags.shared()
                && data.is_empty() =>
        {
            if header.flags.is_2mb_page() {
                512
            } else {
                1
            }
        }
        _ => 0,
    }
}

fn unsupported(requested: u64, supported: Option<u64>) -> Option<Finding> {
    let supported = supported? & !SEV_FEATURE_SNP_ACTIVE;
    (requested & !supported != 0).then_some(Finding::UnsupportedSevFeatures {
        requested,
        supported,
    })
}

/// Plans `bytes` with every profile and reports, per profile, whether it
/// can launch the file, its digest, and why it differs from the spec.
///
/// `supported_vmsa_features` is what KVM reports for
/// `KVM_X86_SEV_VMSA_FEATURES`; `None` skips that check.
///
/// # Errors
/// Only a file that does not parse; planning errors are reported per
/// profile as [`Finding::PlanError`].
pub fn check(
    bytes: &[u8],
    config: &LaunchConfig,
    legacy: KvmLegacyInputs,
    supported_vmsa_features: Option<u64>,
) -> Result<CompatReport> {
    check_releasing(bytes, config, legacy, supported_vmsa_features, |_| {})
}

/// [`check`], handing back the file's bytes as each profile's digest
/// hashes them (see [`LaunchPlan::launch_digest_releasing`]): for a caller
/// that maps the file. Each profile's digest is computed once.
///
/// # Errors
/// As [`check`].
pub fn check_releasing(
    bytes: &[u8],
    config: &LaunchConfig,
    legacy: KvmLegacyInputs,
    supported_vmsa_features: Option<u64>,
    release: impl Fn(&[u8]) + Sync,
) -> Result<CompatReport> {
    let file = IgvmFile::parse(bytes)?;
    let plans: Vec<(Profile, Result<LaunchPlan<'_>>)> = Profile::all(legacy)
        .into_iter()
        .map(|p| (p, LaunchPlan::from_file(file.clone(), config, p.options())))
        .collect();
    let digests: Vec<Option<LaunchDigest>> = plans
        .iter()
        .map(|(_, plan)| {
            plan.as_ref()
                .ok()
                .map(|p| p.launch_digest_releasing(&release))
        })
        .collect();
    let spec = plans.first().and_then(|(_, p)| p.as_ref().ok());
    let facts = spec.map(Facts::new);
    let spec_digest = digests.first().copied().flatten();
    let id_block_digest = spec.and_then(|p| p.finish().expected_digest);

    let profiles = plans
        .iter()
        .zip(digests)
        .map(|((profile, plan), digest)| {
            let mut blockers = Vec::new();
            let mut differences = Vec::new();
            let mut notes = Vec::new();
            if let Err(e) = plan {
                blockers.push(Finding::PlanError {
                    message: e.to_string(),
                });
            }
            if let (Some(expected), Some(digest)) = (id_block_digest, digest) {
                if expected != digest {
                    blockers.push(Finding::IdBlockDigest { expected, digest });
                }
            }
            if let (Some(facts), Ok(plan)) = (&facts, plan) {
                findings(
                    profile,
                    plan,
                    facts,
                    supported_vmsa_features,
                    Lists {
                        blockers: &mut blockers,
                        differences: &mut differences,
                        notes: &mut notes,
                    },
                );
            }
            ProfileReport {
                profile: *profile,
                name: profile.name(),
                source: profile.source(),
                launchable: blockers.is_empty(),
                digest,
                same_as_spec: digest.is_some() && digest == spec_digest,
                matches_id_block: id_block_digest.zip(digest).map(|(a, b)| a == b),
                blockers,
                differences,
                notes,
            }
        })
        .collect();
    Ok(CompatReport {
        policy: spec.map(LaunchPlan::policy_bits),
        policy_source: spec.map(LaunchPlan::policy_source),
        vmsa_gpa: spec.map(|p| p.vmsa().gpa),
        vmsa_sev_features: spec.map(|p| p.vmsa().sev_features()),
        id_block_digest,
        profiles,
    })
}

/// Where [`findings`] puts what it finds.
struct Lists<'l> {
    blockers: &'l mut Vec<Finding>,
    differences: &'l mut Vec<Finding>,
    notes: &'l mut Vec<Finding>,
}

fn findings(
    profile: &Profile,
    plan: &LaunchPlan<'_>,
    facts: &Facts,
    supported: Option<u64>,
    out: Lists<'_>,
) {
    let Lists {
        blockers,
        differences,
        notes,
    } = out;
    if let Err(e) = plan.policy() {
        blockers.push(Finding::InvalidPolicy {
            message: e.to_string(),
        });
    }
    if let Some(gpa) = plan.vmsa_gpa_2mb_aligned() {
        blockers.push(Finding::VmsaGpa2MbAligned { gpa });
    }
    match profile {
        Profile::IgvmSpec => {
            blockers.extend(unsupported(facts.init2_features, supported));
        }
        Profile::NativeZero => {
            blockers.extend(unsupported(facts.init2_features, supported));
            if facts.zero_pages > 0 {
                differences.push(Finding::ZeroPages {
                    pages: facts.zero_pages,
                    measured_as: PageType::Zero,
                });
            }
            if facts.shared_pages > 0 {
                notes.push(Finding::SharedPagesNotMeasured {
                    pages: facts.shared_pages,
                });
            }
        }
        Profile::Igvmmeasure => {
            blockers.extend(unsupported(facts.init2_features, supported));
            for &(index, pages) in &facts.multi_page_areas {
                blockers.push(Finding::MultiPageParameterArea { index, pages });
            }
            if facts.shared_pages > 0 {
                differences.push(Finding::SharedPages {
                    pages: facts.shared_pages,
                });
            }
            // Not digest differences: what igvmmeasure --check-kvm rejects
            // because KVM would not measure the file this way.
            kvm_vmsa_placement(facts, notes);
            kvm_cr0_rule(facts, notes);
        }
        Profile::KvmLegacy(inputs) => {
            blockers.extend(unsupported(inputs.vmsa_features, supported));
            let file_vmsa = &plan.vmsa().vmsa;
            if let Some(reason) = boot_vmsa_refused(file_vmsa) {
                blockers.push(Finding::KvmRefusesVmsa { reason });
            }
            let fields = fields_kvm_cannot_set(file_vmsa);
            if !fields.is_empty() {
                blockers.push(Finding::VmsaFieldsNotSynced { fields });
            }
            kvm_vmsa_placement(facts, differences);
            // Whether KVM really changes CR0 shows in VmsaFields; the rule
            // itself is coconut's.
            kvm_cr0_rule(facts, notes);
            let built = FinishVmsas::new(file_vmsa, *inputs);
            let fields = differing_fields(file_vmsa, &built.boot);
            if !fields.is_empty() {
                differences.push(Finding::VmsaFields { fields });
            }
            if inputs.vcpus > 1 {
                differences.push(Finding::ApVmsas {
                    count: inputs.vcpus - 1,
                });
            }
        }
    }
}

/// Where KVM measures its VMSAs: at 0xFFFFFFFFF000, after every page.
fn kvm_vmsa_placement(facts: &Facts, out: &mut Vec<Finding>) {
    if facts.vmsa_gpa != KVM_VMSA_GPA {
        out.push(Finding::VmsaGpa {
            gpa: facts.vmsa_gpa,
        });
    }
    if facts.pages_after_vmsa > 0 {
        out.push(Finding::VmsaNotLast {
            pages_after: facts.pages_after_vmsa,
        });
    }
}

/// coconut-svsm igvmmeasure `--check-kvm`: CR0 must be 0x30 or 0x31.
fn kvm_cr0_rule(facts: &Facts, out: &mut Vec<Finding>) {
    if facts.cr0 != 0x30 && facts.cr0 != 0x31 {
        out.push(Finding::Cr0 { cr0: facts.cr0 });
    }
}

//! `igvm-load launch FILE --backend kvm|model`: executes the plan, one
//! SNP_LAUNCH_UPDATE per plan step issued in 16 MiB windows
//! (`Launcher::load_windowed`), and reports what the backend did.

use std::fmt::Write as _;
use std::io::Write;
use std::num::NonZeroU64;
use std::process::ExitCode;

use igvm_snp::kvm_legacy::{FieldDifference, FinishVmsas, KvmLegacyInputs, field_differences};
use igvm_snp::{LaunchDigest, LaunchPlan, PAGE_SIZE, VmsaPlacement};
use igvm_snp_kvm::launch::{
    LaunchError, LaunchOptions, LaunchReport, VmsaFallback, VmsaOutcome, launch_model, launch_snp,
};
use igvm_snp_kvm::sev::{CpuidRetry, FirmwareModel, ModelConfig};

use crate::cli::{Backend, LaunchCmd};
use crate::failure::context;
use crate::progress::Progress;
use crate::{Failure, config};

/// What `launch` found, besides the backend's report.
struct Outcome {
    backend: Backend,
    report: LaunchReport,
    /// The plan's digest (model backend).
    plan_digest: Option<LaunchDigest>,
    /// With the fallback: the digest KVM's per-vCPU VMSAs give, predicted by
    /// planning the file with them (model backend).
    predicted_legacy: Option<(KvmLegacyInputs, LaunchDigest)>,
    /// With the fallback on the model: where the VMSAs the model built from
    /// the vCPUs' read-back state differ from kvm_legacy's prediction.
    vmsa_differences: Vec<VmsaDifference>,
}

/// One VMSA field where the model's VMSA of a vCPU differs from the
/// predicted one.
#[derive(Debug, serde::Serialize)]
struct VmsaDifference {
    vcpu: usize,
    field: &'static str,
    /// The value in the VMSA the model built from the read-back state.
    backend: String,
    /// The value kvm_legacy predicts from the file.
    predicted: String,
}

/// The differences between the VMSAs the model measured and the ones
/// `kvm_legacy` predicts for `legacy`, per vCPU.
fn vmsa_differences(
    plan: &LaunchPlan<'_>,
    legacy: KvmLegacyInputs,
    measured: &[igvm_snp::SevVmsa],
) -> Vec<VmsaDifference> {
    let predicted = FinishVmsas::new(&plan.vmsa().vmsa, legacy);
    measured
        .iter()
        .enumerate()
        .flat_map(|(vcpu, got)| {
            let want = if vcpu == 0 {
                &predicted.boot
            } else {
                &predicted.ap
            };
            field_differences(got, want)
                .into_iter()
                .map(move |d| VmsaDifference {
                    vcpu,
                    field: d.field,
                    backend: FieldDifference::value(d.left),
                    predicted: FieldDifference::value(d.right),
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

impl Outcome {
    /// The digest the backend should have reported, when known.
    fn expected(&self) -> Option<LaunchDigest> {
        self.predicted_legacy
            .map(|(_, d)| d)
            .or(self.plan_digest)
            .filter(|_| self.backend == Backend::Model)
    }

    /// Whether the backend's digest differs from the prediction.
    fn mismatch(&self) -> bool {
        matches!((self.report.launch_digest, self.expected()), (Some(a), Some(b)) if a != b)
    }
}

/// The launch options for the command.
fn options(cmd: &LaunchCmd) -> LaunchOptions {
    let mut options = LaunchOptions::new(
        config::ram_ranges(cmd.launch.memory),
        cmd.launch.vcpus.max(),
    )
    .with_vmsa_fallback(if cmd.allow_vmsa_fallback {
        VmsaFallback::TranslateToRegisters
    } else {
        VmsaFallback::Refuse
    })
    .with_cpuid_retry(if cmd.cpuid_retry {
        CpuidRetry::OnceWithCorrection
    } else {
        CpuidRetry::Never
    });
    options.ap_cpu_signature = cmd.launch.cpu_signature;
    // The VM is dropped after the report: load and launch 16 MiB at a
    // time, so the launch holds a window, not the image (with guest_memfd
    // the launched pages live there; on the model this is a dry run).
    options.with_load_window(LOAD_WINDOW_PAGES)
}

/// Pages per load window of `launch`: 16 MiB.
const LOAD_WINDOW_PAGES: NonZeroU64 = NonZeroU64::new(4096).unwrap();

/// The VMSA features the model accepts: `--model-vmsa-features`, or
/// upstream KVM's plus the plan's, with a note on stderr when the plan asks
/// for more than upstream KVM offers (real files do: coconut-svsm's
/// igvmbuilder sets RestrictedInjection, which needs a KVM that supports it).
fn model_vmsa_features(cmd: &LaunchCmd, plan: &LaunchPlan<'_>) -> u64 {
    if let Some(features) = cmd.model_vmsa_features {
        return features;
    }
    let upstream = ModelConfig::default().supported_vmsa_features;
    let wanted = plan.init2_vmsa_features();
    if wanted & !upstream != 0 {
        eprintln!(
            "note: the file's VMSA asks for VMSA features {wanted:#x}; upstream KVM offers \
             {upstream:#x}, so KVM_SEV_INIT2 needs a KVM with the others: the model accepts them \
             (--model-vmsa-features {upstream:x} models upstream KVM)"
        );
    }
    upstream | wanted
}

/// Runs `launch`.
pub fn run(out: &mut impl Write, cmd: &LaunchCmd, progress: Progress) -> Result<ExitCode, Failure> {
    let bytes = crate::snapshot(&cmd.file)?;
    let plan = crate::launch_plan(&cmd.file, &bytes, &cmd.launch)?;
    let file = cmd.file.display();
    let options = options(cmd);
    let pages = plan.launched_pages();
    let outcome = match cmd.backend {
        Backend::Kvm => {
            let launched = progress
                .phase("launching", pages, || launch_snp(&plan, &options))
                .map_err(|e| context(format!("{file}: cannot launch with the kvm backend"), e))?;
            Outcome {
                backend: cmd.backend,
                report: launched.report,
                plan_digest: None,
                predicted_legacy: None,
                vmsa_differences: Vec::new(),
            }
        }
        Backend::Model => {
            let model = FirmwareModel::new(ModelConfig {
                vmsa_page_type: !cmd.model_no_vmsa_type,
                supported_vmsa_features: model_vmsa_features(cmd, &plan),
                smt_active: !cmd.model_no_smt,
                ..ModelConfig::default()
            });
            let done = progress
                .phase("launching", pages, || launch_model(&plan, &options, model))
                .map_err(|e| {
                    let hint = if matches!(e, LaunchError::VmsaPageTypeUnsupported { .. }) {
                        " (--allow-vmsa-fallback launches with KVM's per-vCPU VMSAs)"
                    } else {
                        ""
                    };
                    context(
                        format!("{file}: launch on the firmware model failed{hint}"),
                        e,
                    )
                })?;
            let vmsa_differences = match done.launched.report.vmsa {
                VmsaOutcome::Fallback { legacy } => {
                    vmsa_differences(&plan, legacy, done.model.kvm_vmsas())
                }
                _ => Vec::new(),
            };
            let report = done.launched.report;
            let plan_digest = progress.phase("hashing", pages, || plan.launch_digest());
            let predicted_legacy = match report.vmsa {
                VmsaOutcome::Fallback { legacy } => Some((
                    legacy,
                    legacy_digest(&cmd.file, &bytes, cmd, &plan, legacy)?,
                )),
                _ => None,
            };
            Outcome {
                backend: cmd.backend,
                report,
                plan_digest: Some(plan_digest),
                predicted_legacy,
                vmsa_differences,
            }
        }
    };
    if cmd.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&json(&outcome)?)?)?;
    } else {
        write!(out, "{}", text(&outcome))?;
    }
    out.flush()?;
    if outcome.mismatch() {
        let expected = outcome
            .expected()
            .map(|d| d.to_string())
            .unwrap_or_default();
        let got = outcome
            .report
            .launch_digest
            .map(|d| d.to_string())
            .unwrap_or_default();
        let mut fields: Vec<String> = outcome
            .vmsa_differences
            .iter()
            .map(|d| format!("vCPU {} {}", d.vcpu, d.field))
            .collect();
        fields.dedup();
        let why = if fields.is_empty() {
            String::new()
        } else {
            format!(
                "; the VMSAs built from the vCPUs' state differ from the prediction in: {}",
                fields.join(", ")
            )
        };
        return Err(format!(
            "{file}: the firmware model's digest {got} differs from the predicted {expected}{why}"
        )
        .into());
    }
    Ok(ExitCode::SUCCESS)
}

/// The digest of the file planned with KVM's per-vCPU VMSAs.
fn legacy_digest(
    path: &std::path::Path,
    bytes: &[u8],
    cmd: &LaunchCmd,
    plan: &LaunchPlan<'_>,
    legacy: KvmLegacyInputs,
) -> Result<LaunchDigest, Failure> {
    let mut options = plan.options();
    options.vmsa = VmsaPlacement::KvmFinish(legacy);
    let legacy_plan = LaunchPlan::new(
        bytes,
        &config::launch_config_for_launch(&cmd.launch)?,
        options,
    )
    .map_err(|e| format!("{}: planning with KVM's VMSAs: {e}", path.display()))?;
    Ok(legacy_plan.launch_digest())
}

/// The report as JSON.
fn json(o: &Outcome) -> Result<serde_json::Value, Failure> {
    let mut v = serde_json::to_value(&o.report)?;
    v["backend"] = serde_json::Value::String(backend_name(o.backend).into());
    if let Some(d) = o.plan_digest {
        v["plan_digest"] = serde_json::Value::String(d.to_string());
    }
    if let Some((_, d)) = o.predicted_legacy {
        v["predicted_legacy_digest"] = serde_json::Value::String(d.to_string());
        v["vmsa_differences"] = serde_json::to_value(&o.vmsa_differences)?;
    }
    Ok(v)
}

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Kvm => "kvm",
        Backend::Model => "model",
    }
}

/// The report as text.
fn text(o: &Outcome) -> String {
    let r = &o.report;
    let mut s = String::new();
    let _ = match o.backend {
        Backend::Kvm => writeln!(s, "backend: SEV-SNP on KVM"),
        Backend::Model => writeln!(
            s,
            "backend: firmware model (a software model of the AMD-SP; memory and vCPUs are a \
             plain KVM VM's, the SEV commands are modelled, not run on hardware)"
        ),
    };
    let _ = writeln!(
        s,
        "SNP_LAUNCH_UPDATE commands: {} ({} ioctls), {} pages",
        r.launch_update_calls, r.launch_update_ioctls, r.pages
    );
    if let Some(window) = r.load_window_pages {
        let _ = writeln!(
            s,
            "loaded in windows of {window} pages ({} MiB), each discarded after its update",
            (window * PAGE_SIZE as u64) >> 20
        );
    }
    let _ = match r.vmsa {
        VmsaOutcome::Pending => writeln!(s, "VMSA: not launched"),
        VmsaOutcome::PageType { gpa } => {
            writeln!(s, "VMSA: launched with the VMSA page type at {gpa:#x}")
        }
        VmsaOutcome::Fallback { legacy } => writeln!(
            s,
            "VMSA: the kernel refuses the VMSA page type; the VMSA went into vCPU 0's registers.\n\
             The measurement is KVM's per-vCPU one: {} VMSA(s) built by KVM at LAUNCH_FINISH \
             (vmsa_features {:#x}, AP CPU signature {:#x}), not the plan's VMSA.{}",
            legacy.vcpus,
            legacy.vmsa_features,
            legacy.cpu_signature,
            if o.backend == Backend::Model {
                "\nThe firmware model built them from the vCPUs' state read back from KVM; the \
                 predicted KVM digest comes from the file alone."
            } else {
                ""
            }
        ),
    };
    for (step, diff) in &r.cpuid_corrections {
        let _ = writeln!(
            s,
            "CPUID page of step {step} corrected by the firmware: {diff}"
        );
    }
    let phases: Vec<String> = r
        .phases
        .iter()
        .map(|p| format!("{} {:.3} s", p.phase, p.seconds))
        .collect();
    let _ = writeln!(s, "phases: {}", phases.join(", "));
    let verdict = |d: LaunchDigest| match r.launch_digest {
        Some(got) if got == d => "(equal)",
        Some(_) => "(DIFFERS)",
        None => "",
    };
    if let Some(d) = o.plan_digest {
        let note = if o.predicted_legacy.is_some() {
            "(not what this launch measures)"
        } else {
            verdict(d)
        };
        let _ = writeln!(s, "plan digest:            {d} {note}");
    }
    if let Some((_, d)) = o.predicted_legacy {
        let _ = writeln!(s, "predicted KVM digest:   {d} {}", verdict(d));
        if !o.vmsa_differences.is_empty() {
            let _ = writeln!(
                s,
                "KVM's VMSAs, built from the vCPUs' state read back from KVM, differ from the \
                 prediction:"
            );
        }
        for d in &o.vmsa_differences {
            let _ = writeln!(
                s,
                "  vCPU {} {}: backend {}, predicted {}",
                d.vcpu, d.field, d.backend, d.predicted
            );
        }
    }
    let _ = match r.launch_digest {
        Some(d) => writeln!(s, "launch digest (backend): {d}"),
        None => writeln!(
            s,
            "launch digest: not reported by KVM (read it from an attestation report)"
        ),
    };
    s
}

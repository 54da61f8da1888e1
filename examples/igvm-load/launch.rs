//! `igvm-load launch FILE --backend kvm|model`: executes the plan, one
//! SNP_LAUNCH_UPDATE per plan step, and reports what the backend did.

use std::fmt::Write as _;
use std::io::Write;
use std::process::ExitCode;

use igvm_snp::kvm_legacy::KvmLegacyInputs;
use igvm_snp::{LaunchDigest, LaunchPlan, VmsaPlacement};
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
    options
}

/// Runs `launch`.
pub fn run(out: &mut impl Write, cmd: &LaunchCmd, progress: Progress) -> Result<ExitCode, Failure> {
    let bytes = crate::read(&cmd.file)?;
    let plan = crate::plan(&cmd.file, &bytes, &cmd.launch)?;
    let options = options(cmd);
    let file = cmd.file.display();
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
            }
        }
        Backend::Model => {
            let model = FirmwareModel::new(ModelConfig {
                vmsa_page_type: !cmd.model_no_vmsa_type,
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
        return Err(format!(
            "{file}: the firmware model's digest {got} differs from the predicted {expected}"
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
    let legacy_plan = LaunchPlan::new(bytes, &config::launch_config(&cmd.launch), options)
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
    let _ = match r.vmsa {
        VmsaOutcome::Pending => writeln!(s, "VMSA: not launched"),
        VmsaOutcome::PageType { gpa } => {
            writeln!(s, "VMSA: launched with the VMSA page type at {gpa:#x}")
        }
        VmsaOutcome::Fallback { legacy } => writeln!(
            s,
            "VMSA: the kernel refuses the VMSA page type; the VMSA went into vCPU 0's registers.\n\
             The measurement is KVM's per-vCPU one: {} VMSA(s) built by KVM at LAUNCH_FINISH \
             (vmsa_features {:#x}, AP CPU signature {:#x}), not the plan's VMSA.",
            legacy.vcpus, legacy.vmsa_features, legacy.cpu_signature
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

//! Human-readable views of a plan.

use std::fmt::Write as _;

use igvm_snp::kvm_legacy::KVM_VMSA_GPA;
use igvm_snp::{LaunchPlan, PAGE_SIZE, StepSource, TraceEntry, VmsaPlacement};

/// One line on the guest policy: its value, where it comes from (the file
/// may have none; a launch then uses the configuration's or the default),
/// and whether a launch would refuse it.
pub fn policy_line(plan: &LaunchPlan<'_>) -> String {
    let mut s = format!(
        "guest policy: {:#x}, from {}",
        plan.policy_bits(),
        plan.policy_source()
    );
    if let Err(e) = plan.policy() {
        let _ = write!(s, "; a launch refuses it: {e}");
    }
    s
}

/// The plan as a table: one row per SNP_LAUNCH_UPDATE step, with the
/// directive it came from and the running digest after the step.
pub fn plan_table(plan: &LaunchPlan<'_>) -> String {
    let mut s = String::new();
    let p = plan.platform();
    let _ = writeln!(
        s,
        "SEV-SNP platform: mask {:#x}, VMSA at {:#x} (SEV features {:#x}, INIT2 vmsa_features {:#x})",
        p.compatibility_mask,
        plan.vmsa().gpa,
        plan.vmsa().sev_features(),
        plan.init2_vmsa_features()
    );
    let _ = writeln!(s, "{}", policy_line(plan));
    let _ = writeln!(
        s,
        "{:>4}  {:<33}  {:>7}  {:<10}  {:<18}  digest after step",
        "step", "GPA range", "pages", "type", "directive"
    );
    let digests = plan.step_digests();
    for (step, digest) in plan.steps().iter().zip(&digests) {
        let end = step.gpa + step.pages * PAGE_SIZE as u64 - 1;
        let dirs = &step.directives;
        let source = match step.source {
            StepSource::PageData if dirs.len() > 1 => format!("#{}..#{}", dirs.start, dirs.end - 1),
            StepSource::PageData => format!("#{}", dirs.start),
            StepSource::ParameterArea { area } => {
                format!(
                    "#{} area {}",
                    dirs.start,
                    plan.parameter_areas()[area].index
                )
            }
            StepSource::Vmsa => format!("#{} VMSA", dirs.start),
        };
        let d = digest.to_string();
        let _ = writeln!(
            s,
            "{:>4}  {:#015x}-{:#015x}  {:>7}  {:<10}  {:<18}  {}…",
            step.index,
            step.gpa,
            end,
            step.pages,
            step.page_type.name(),
            source,
            d.get(..16).unwrap_or_default()
        );
    }
    if let VmsaPlacement::KvmFinish(legacy) = plan.options().vmsa {
        let d = digests.last().map(ToString::to_string).unwrap_or_default();
        let _ = writeln!(
            s,
            "   -  {:#015x}-{:#015x}  {:>7}  {:<10}  {:<18}  {}…",
            KVM_VMSA_GPA,
            KVM_VMSA_GPA + PAGE_SIZE as u64 - 1,
            legacy.vcpus,
            "VMSA",
            "KVM, at FINISH",
            d.get(..16).unwrap_or_default()
        );
    }
    for run in plan.shared_runs() {
        let _ = writeln!(
            s,
            "   -  {:#015x} shared (host visible, not measured) x{}",
            run.gpa, run.pages
        );
    }
    for area in plan.parameter_areas() {
        for w in &area.writes {
            let _ = writeln!(
                s,
                "param  area {} +{:#x}: {} ({} bytes)",
                area.index,
                w.offset,
                w.kind.name(),
                w.bytes.len()
            );
        }
    }
    for u in plan.unfilled_parameters() {
        let _ = writeln!(
            s,
            "param  area {}: {} not configured (left as in the file)",
            u.area_index,
            u.kind.name()
        );
    }
    if let Some(ld) = plan.finish().expected_digest {
        let _ = writeln!(s, "ID block expects digest {ld}");
    }
    // The last running digest is the launch digest: no second hashing pass.
    let digest = digests
        .last()
        .copied()
        .unwrap_or_else(|| plan.launch_digest());
    let _ = writeln!(
        s,
        "{} steps, {} pages launched, launch digest {digest}",
        plan.steps().len(),
        plan.launched_pages(),
    );
    s
}

/// The per-page trace as text.
pub fn trace_table(trace: &[TraceEntry]) -> String {
    let mut s = String::new();
    for e in trace {
        let _ = writeln!(
            s,
            "{:>4} {:#015x} {:<10} {} {}",
            e.step,
            e.gpa,
            e.page_type.name(),
            e.contents,
            e.digest
        );
    }
    s
}

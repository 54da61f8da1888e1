//! Human-readable views of a plan.

use std::fmt::Write as _;
use std::io;

use igvm_snp::kvm_legacy::KVM_VMSA_GPA;
use igvm_snp::{LaunchDigest, LaunchPlan, PAGE_SIZE, StepSource, TraceEntry, VmsaPlacement};

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
/// directive it came from and the running digest after the step;
/// `release` gets the file's bytes as they are hashed
/// ([`LaunchPlan::step_digests_releasing`]).
pub fn plan_table(plan: &LaunchPlan<'_>, release: impl Fn(&[u8]) + Sync) -> String {
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
    let digests = plan.step_digests_releasing(release);
    for (step, digest) in plan.steps().iter().zip(&digests) {
        let end = step.gpa + step.pages * PAGE_SIZE as u64 - 1;
        let dirs = &step.directives;
        let source = match step.source {
            StepSource::PageData if dirs.len() > 1 => format!("#{}..#{}", dirs.start, dirs.end - 1),
            StepSource::PageData => format!("#{}", dirs.start),
            StepSource::ParameterArea { index, .. } => format!("#{} area {index}", dirs.start),
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
        for w in area.writes() {
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

/// One page of the trace as a line of text.
pub fn write_trace_line(out: &mut impl io::Write, e: &TraceEntry) -> io::Result<()> {
    writeln!(
        out,
        "{:>4} {:#015x} {:<10} {} {}",
        e.step,
        e.gpa,
        e.page_type.name(),
        e.contents,
        e.digest
    )
}

/// `measure --json --trace`, written as the trace comes instead of held:
/// the object `{"id_block_digest"?, "trace": [...], "launch_digest"}`
/// (in that order: the digest is known last), pretty-printed.
pub struct JsonTrace<W: io::Write> {
    out: W,
    entries: u64,
}

impl<W: io::Write> JsonTrace<W> {
    /// Opens the object and its trace array.
    pub fn start(mut out: W, id_block_digest: Option<LaunchDigest>) -> io::Result<Self> {
        out.write_all(b"{\n")?;
        if let Some(d) = id_block_digest {
            writeln!(out, "  \"id_block_digest\": \"{d}\",")?;
        }
        out.write_all(b"  \"trace\": [")?;
        Ok(JsonTrace { out, entries: 0 })
    }

    /// One element of the trace array.
    pub fn entry(&mut self, e: &TraceEntry) -> io::Result<()> {
        let text = serde_json::to_string_pretty(e)?;
        let sep = if self.entries == 0 { "\n" } else { ",\n" };
        self.out.write_all(sep.as_bytes())?;
        for (i, line) in text.lines().enumerate() {
            if i > 0 {
                self.out.write_all(b"\n")?;
            }
            write!(self.out, "    {line}")?;
        }
        self.entries += 1;
        Ok(())
    }

    /// Closes the array and the object with the launch digest.
    pub fn finish(mut self, digest: LaunchDigest) -> io::Result<W> {
        if self.entries > 0 {
            self.out.write_all(b"\n  ")?;
        }
        writeln!(self.out, "],\n  \"launch_digest\": \"{digest}\"\n}}")?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streamed JSON parses to what `serde_json` makes of the whole
    /// trace at once.
    #[test]
    fn json_trace_is_the_whole_object() {
        let bytes = igvm_snp::demo::demo_igvm();
        let config = igvm_snp::LaunchConfig::new(1, vec![igvm_snp::GpaRange::new(0, 16 << 20)]);
        let plan = LaunchPlan::new(&bytes, &config, igvm_snp::PlanOptions::default()).unwrap();
        let trace = plan.measure_trace();
        let digest = plan.launch_digest();
        for (entries, id_block) in [
            (&trace[..], None),
            (&trace[..], Some(digest)),
            (&[][..], None),
        ] {
            let mut j = JsonTrace::start(Vec::new(), id_block).unwrap();
            for e in entries {
                j.entry(e).unwrap();
            }
            let out = j.finish(digest).unwrap();
            let got: serde_json::Value = serde_json::from_slice(&out).unwrap();
            let mut want = serde_json::json!({
                "launch_digest": digest.to_string(),
                "trace": serde_json::to_value(entries).unwrap(),
            });
            if let Some(d) = id_block {
                want["id_block_digest"] = d.to_string().into();
            }
            assert_eq!(got, want, "{}", String::from_utf8_lossy(&out));
        }
    }
}

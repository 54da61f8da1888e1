//! `igvm-load run --native FILE`: the plan on a plain KVM VM (no SEV), the
//! guest's serial output streamed to stdout as it comes.

use std::io::Write;
use std::process::ExitCode;

use igvm_snp::LaunchPlan;
use igvm_snp_kvm::memory::MemoryFlavour;
use igvm_snp_kvm::native::{NativeConfig, NativeOutcome, NativeVm, UnexpectedExit};

use crate::cli::RunCmd;
use crate::failure::context;
use crate::progress::Progress;
use crate::{Failure, config};

/// Runs `run --native`.
pub fn run(out: &mut impl Write, cmd: &RunCmd, progress: Progress) -> Result<ExitCode, Failure> {
    let bytes = crate::snapshot(&cmd.file)?;
    let plan = crate::launch_plan(&cmd.file, &bytes, &cmd.launch)?;
    let mut native = NativeConfig::new(config::ram_ranges(cmd.launch.memory), cmd.time_limit);
    if cmd.guest_memfd {
        native.memory_flavour = MemoryFlavour::GuestMemfd;
    }
    run_plan(
        out,
        &cmd.file.display().to_string(),
        &plan,
        &native,
        progress,
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Loads `plan` into a plain KVM VM and runs vCPU 0 until it halts, writing
/// its serial output to `out`. `name` names the file in errors.
///
/// # Errors
/// When the VM cannot be set up or run, or the guest does not halt.
pub fn run_plan(
    out: &mut impl Write,
    name: &str,
    plan: &LaunchPlan<'_>,
    native: &NativeConfig,
    progress: Progress,
) -> Result<(), Failure> {
    let mut vm = progress
        .phase("loading", plan.launched_pages(), || {
            NativeVm::new(plan, native)
        })
        .map_err(|e| context(format!("{name}: cannot set up the native VM"), e))?;
    let mut write_error = None;
    let mut wrote = false;
    let outcome = vm
        .run(native, |bytes| {
            wrote |= !bytes.is_empty();
            if write_error.is_none() {
                if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
                    write_error = Some(e);
                }
            }
        })
        .map_err(|e| context(format!("{name}: the native run failed"), e))?;
    if let Some(e) = write_error {
        return Err(context("cannot write the guest's output", e));
    }
    let limit = native.time_limit.as_secs_f64();
    Err(match outcome {
        NativeOutcome::Halted { rip } => {
            if !wrote {
                // Success, but a silent one: say what happened.
                eprintln!("note: {name}: the guest halted at RIP {rip:#x} without serial output");
            }
            return Ok(());
        }
        NativeOutcome::TimedOut { rip } => {
            format!("{name}: the guest did not halt within {limit} s (stopped at RIP {rip:#x})")
        }
        NativeOutcome::Shutdown { rip } => {
            format!("{name}: the guest shut down (e.g. a triple fault) at RIP {rip:#x}")
        }
        NativeOutcome::UnexpectedExit { exit, rip } => {
            format!(
                "{name}: the guest stopped at RIP {rip:#x}: {}",
                describe(&exit)
            )
        }
        other => format!("{name}: the guest stopped: {other:?}"),
    }
    .into())
}

/// An unexpected VM exit in words.
fn describe(exit: &UnexpectedExit) -> String {
    match exit {
        UnexpectedExit::MmioRead { gpa, len } => {
            format!("a {len}-byte read of unmapped guest memory at {gpa:#x}")
        }
        UnexpectedExit::MmioWrite { gpa, data } => format!(
            "a {}-byte write to unmapped guest memory at {gpa:#x}",
            data.len()
        ),
        UnexpectedExit::FailEntry { reason, cpu } => {
            format!("KVM could not enter the guest (reason {reason:#x}, host CPU {cpu})")
        }
        UnexpectedExit::InternalError { suberror, data } => {
            // KVM_INTERNAL_ERROR_* (include/uapi/linux/kvm.h).
            let what = match suberror {
                1 => ": KVM could not emulate an instruction (e.g. no code where the guest runs)",
                2 => ": a simultaneous exception",
                3 => ": an event was being delivered",
                4 => ": unexpected exit reason",
                _ => "",
            };
            format!("KVM internal error {suberror}{what} (data {data:x?})")
        }
        UnexpectedExit::Other(what) => format!("unhandled VM exit {what}"),
        other => format!("unhandled VM exit {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// KVM's internal-error suberrors are named (KVM_INTERNAL_ERROR_*).
    #[test]
    fn internal_errors_are_named() {
        let e = |suberror| UnexpectedExit::InternalError {
            suberror,
            data: vec![0, 0x1000],
        };
        assert_eq!(
            describe(&e(1)),
            "KVM internal error 1: KVM could not emulate an instruction (e.g. no code where the \
             guest runs) (data [0, 1000])"
        );
        assert!(describe(&e(4)).contains(": unexpected exit reason"));
        assert_eq!(describe(&e(9)), "KVM internal error 9 (data [0, 1000])");
    }
}

//! `igvm-load`: inspect, measure and launch IGVM files as AMD SEV-SNP guests.
//!
//! ```text
//! cargo run --release --example igvm-load -- demo
//! cargo run --release --example igvm-load -- plan FILE [--json]
//! cargo run --release --example igvm-load -- measure FILE [--native-zero] [--json] [--trace]
//! ```
//!
//! Exit codes: 0 success; 1 a bad file or a failed launch (`error: …` on
//! stderr with its causes); 2 a usage error.

mod cli;
mod config;
mod report;

use std::error::Error as StdError;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use igvm_snp::LaunchPlan;

use cli::{Cli, Command, LaunchArgs};

/// A failure: a message and its causes.
type Failure = Box<dyn StdError + Send + Sync>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            let mut cause = e.source();
            while let Some(c) = cause {
                eprintln!("  caused by: {c}");
                cause = c.source();
            }
            ExitCode::from(1)
        }
    }
}

/// Maps a file (no copy; BENCHMARKS.md), naming it in the error.
fn read(path: &Path) -> Result<igvm_snp_kvm::mapped_file::MappedFile, Failure> {
    igvm_snp_kvm::mapped_file::MappedFile::open(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()).into())
}

/// Plans a file, naming it in the error.
fn plan<'a>(path: &Path, bytes: &'a [u8], args: &LaunchArgs) -> Result<LaunchPlan<'a>, Failure> {
    LaunchPlan::new(
        bytes,
        &config::launch_config(args),
        config::plan_options(args),
    )
    .map_err(|e| format!("{}: {e}", path.display()).into())
}

fn run(cli: &Cli) -> Result<ExitCode, Failure> {
    let mut out = std::io::stdout().lock();
    match &cli.command {
        Command::Plan { file, json, launch } => {
            let bytes = read(file)?;
            let plan = plan(file, &bytes, launch)?;
            if *json {
                let mut v = serde_json::to_value(&plan)?;
                v["launch_digest"] = serde_json::Value::String(plan.launch_digest().to_string());
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                write!(out, "{}", report::plan_table(&plan))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Measure {
            file,
            json,
            trace,
            launch,
        } => {
            let bytes = read(file)?;
            let plan = plan(file, &bytes, launch)?;
            let digest = plan.launch_digest();
            if *json {
                let mut v = serde_json::json!({ "launch_digest": digest.to_string() });
                if *trace {
                    v["trace"] = serde_json::to_value(plan.measure_trace())?;
                }
                if let Some(ld) = plan.finish().expected_digest {
                    v["id_block_digest"] = serde_json::Value::String(ld.to_string());
                }
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                if *trace {
                    write!(out, "{}", report::trace_table(&plan))?;
                }
                writeln!(out, "{digest}")?;
            }
            out.flush()?;
            if let Err(e) = plan.check_id_block(&digest) {
                eprintln!("error: {}: {e}", file.display());
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { write } => demo(&mut out, write.as_deref(), cli.quiet),
    }
}

fn demo(out: &mut impl Write, write: Option<&Path>, _quiet: bool) -> Result<ExitCode, Failure> {
    let bytes = igvm_snp::demo::demo_igvm();
    if let Some(path) = write {
        std::fs::write(path, &bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        writeln!(out, "wrote {} ({} bytes)", path.display(), bytes.len())?;
    }
    let args = LaunchArgs {
        memory: 16 << 20,
        vcpus: 1,
        cmdline: None,
        host_data: None,
        native_zero: false,
        profile: cli::ProfileArg::Spec,
    };
    let plan = plan(Path::new("demo.igvm"), &bytes, &args)?;
    writeln!(out, "Demo IGVM file: {} bytes\n", bytes.len())?;
    write!(out, "{}", report::plan_table(&plan))?;
    Ok(ExitCode::SUCCESS)
}

//! `igvm-load`: inspect, measure and launch IGVM files as AMD SEV-SNP guests.
//!
//! ```text
//! cargo run --release --example igvm-load -- demo [--write FILE]
//! cargo run --release --example igvm-load -- plan FILE [--json]
//! cargo run --release --example igvm-load -- measure FILE [--native-zero] [--json] [--trace]
//! cargo run --release --example igvm-load -- measure FILE --profile kvm-legacy --vcpus 1,2,4,8 [--json]
//! cargo run --release --example igvm-load -- launch FILE --backend kvm|model [--json]
//! cargo run --release --example igvm-load -- run --native FILE
//! cargo run --release --example igvm-load -- check FILE [--json] [--vcpus N] [--cpu-signature HEX]
//! cargo run --release --example igvm-load -- host [--json]
//! cargo run --release --example igvm-load -- verify --report REPORT FILE [--vcek CERT] [--ask CERT --ark CERT]
//!     [--host-data HEX] [--policy HEX] [--max-vcpus N] [--json]
//! ```
//!
//! Exit codes: 0 success; 1 a bad file, a failed launch or a failed check
//! of `verify` (`error: …` on stderr with its causes); 2 a usage error.

mod check;
mod cli;
mod config;
mod failure;
mod launch;
mod native;
mod progress;
mod report;
mod verify;

use std::error::Error as StdError;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use igvm_snp::{LaunchPlan, PlanOptions};
use igvm_snp_kvm::native::NativeConfig;

use cli::{Backend, Cli, Command, LaunchArgs, ProfileArg, VcpuCounts};
use progress::Progress;

/// A failure: a message and its causes.
type Failure = Box<dyn StdError + Send + Sync>;

/// Guest RAM of the demo.
const DEMO_MEMORY: u64 = 16 << 20;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Some(error) = igvm_snp_kvm::host::HostFeatures::environment_error() {
        eprintln!(
            "warning: {} ignored: {error}",
            igvm_snp_kvm::host::HOST_WITHOUT_VAR
        );
    }
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            let _ = failure::write_failure(&mut std::io::stderr().lock(), e.as_ref());
            ExitCode::from(1)
        }
    }
}

/// Standard output whose write errors say they are stdout's (a full disk
/// behind a redirection printed only "No space left on device").
struct Stdout(std::io::Stdout);

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map_err(on_stdout)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.write_all(buf).map_err(on_stdout)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().map_err(on_stdout)
    }
}

fn on_stdout(e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("cannot write to stdout: {e}"))
}

/// Maps a file (no copy; BENCHMARKS.md) for commands that only read it
/// (`plan`, `measure`, `check`), naming it in the error.
fn map(path: &Path) -> Result<igvm_snp_kvm::mapped_file::MappedFile, Failure> {
    // Only a regular file can be mapped whole: a directory or a pipe would
    // fail or read as empty.
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!(
            "cannot read {}: {}",
            path.display(),
            if meta.is_dir() {
                "it is a directory"
            } else {
                "not a regular file (plan, measure, check and verify map their input; save a \
                 pipe to a file first)"
            }
        )
        .into());
    }
    // SAFETY: the loader's documented contract (README) is that the file is
    // not written or truncated while igvm-load inspects it, as for any tool
    // that maps its input; `launch` and `run` take a private snapshot
    // instead (`snapshot`), so what they hash and load cannot change.
    unsafe { igvm_snp_kvm::mapped_file::MappedFile::open(path) }
        .map_err(|e| format!("cannot read {}: {e}", path.display()).into())
}

/// Reads a file into memory for commands that launch it (`launch`, `run`):
/// one private snapshot of the bytes is both hashed and loaded, whatever
/// happens to the file afterwards.
fn snapshot(path: &Path) -> Result<Vec<u8>, Failure> {
    use std::io::Read;
    use zerocopy::FromBytes;
    let cannot =
        |e: std::io::Error| -> Failure { format!("cannot read {}: {e}", path.display()).into() };
    // A pipe or device has no size to check first: read the fixed header,
    // then no more than the total size it gives (one byte more, so that a
    // longer input still fails the parser's size check). What is not an
    // IGVM file stops at its header, for the parser to name.
    let mut file = std::fs::File::open(path).map_err(cannot)?;
    let header_len = size_of::<igvm_defs::IGVM_FIXED_HEADER>() as u64;
    let mut bytes = Vec::new();
    (&mut file)
        .take(header_len)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    let total = match igvm_defs::IGVM_FIXED_HEADER::read_from_prefix(&bytes) {
        Ok((h, _)) if h.magic == igvm_defs::IGVM_MAGIC_VALUE => u64::from(h.total_file_size),
        _ => return Ok(bytes),
    };
    file.take(total.saturating_sub(header_len) + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    Ok(bytes)
}

/// Reads `path` (a regular file, a pipe, a device) whole, refusing more than
/// `limit` bytes: `/dev/zero` or an endless pipe is an error, not all of
/// the host's memory. `what` names the file in errors ("" for the input).
pub fn read_at_most(path: &Path, what: &str, limit: u64) -> Result<Vec<u8>, Failure> {
    use std::io::Read;
    let name = if what.is_empty() {
        path.display().to_string()
    } else {
        format!("{what} {}", path.display())
    };
    let cannot = |e: std::io::Error| -> Failure { format!("cannot read {name}: {e}").into() };
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > limit {
        return Err(format!("cannot read {name}: more than {limit} bytes").into());
    }
    Ok(bytes)
}

/// Plans a file, naming it in the error. The kvm-legacy profile needs the
/// file's VMSA features, so it plans twice.
fn plan<'a>(path: &Path, bytes: &'a [u8], args: &LaunchArgs) -> Result<LaunchPlan<'a>, Failure> {
    let config = config::launch_config(args).map_err(|e| -> Failure { e.into() })?;
    let plan = plan_with(path, bytes, args, &config)?;
    for note in config::unused_option_notes(&plan, args) {
        eprintln!("{note}");
    }
    Ok(plan)
}

/// Plans a file for `launch` or `run`: the optional tables the options do
/// not give stay as the file has them (as QEMU leaves them), with a note on
/// stderr for each; then every parameter must be filled.
fn launch_plan<'a>(
    path: &Path,
    bytes: &'a [u8],
    args: &LaunchArgs,
) -> Result<LaunchPlan<'a>, Failure> {
    let bare = plan(path, bytes, args)?;
    for note in config::optional_parameter_notes(&bare) {
        eprintln!("{note}");
    }
    let config = config::launch_config_for_launch(args).map_err(|e| -> Failure { e.into() })?;
    let plan = plan_with(path, bytes, args, &config)?;
    config::require_parameters(&plan).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(plan)
}

fn plan_with<'a>(
    path: &Path,
    bytes: &'a [u8],
    args: &LaunchArgs,
    config: &igvm_snp::LaunchConfig,
) -> Result<LaunchPlan<'a>, Failure> {
    let named = |e: igvm_snp::Error| -> Failure {
        // The hint is about the MADT built for --vcpus, not one given.
        let given_madt = args
            .acpi_tables
            .iter()
            .any(|(t, _)| *t == config::AcpiTable::Madt);
        let e = if given_madt {
            e.to_string()
        } else {
            config::explain_plan_error(&e, args.vcpus.max())
        };
        format!("{}: {e}", path.display()).into()
    };
    let features = if args.profile == ProfileArg::KvmLegacy {
        LaunchPlan::new(bytes, config, PlanOptions::default())
            .map_err(named)?
            .init2_vmsa_features()
    } else {
        0
    };
    LaunchPlan::new(bytes, config, config::plan_options(args, features)).map_err(named)
}

/// The plan as a table, announcing the hashing when it is long; `release`
/// gets the file's bytes as they are hashed.
fn plan_table(plan: &LaunchPlan<'_>, progress: Progress, release: impl Fn(&[u8]) + Sync) -> String {
    progress.phase("hashing", plan.launched_pages(), || {
        report::plan_table(plan, release)
    })
}

/// Exits with a usage error (2) when `--vcpus` lists several counts for a
/// command that runs or plans one VM.
fn one_vcpu_count(args: &LaunchArgs, command: &str) {
    if args.vcpus.is_list() {
        usage_error(
            command,
            format!("{command} takes one --vcpus count; only measure takes a list"),
        );
    }
}

/// Exits with a usage error (2) for options that cannot go together:
/// `--native-zero` with the kvm-legacy profile, a combination no loader
/// measures with (with `--profile igvmmeasure` it gives `igvmmeasure
/// --native-zero`'s digest), and one `--acpi-table` kind given twice.
fn check_launch_args(args: &LaunchArgs, command: &str) {
    for (i, (kind, _)) in args.acpi_tables.iter().enumerate() {
        if args.acpi_tables[..i].iter().any(|(k, _)| k == kind) {
            usage_error(
                command,
                format!("--acpi-table {} is given twice", kind.name()),
            );
        }
    }
    if args.native_zero && args.profile == ProfileArg::KvmLegacy {
        usage_error(
            command,
            "--native-zero applies to --profile spec (the native-zero profile) and \
             --profile igvmmeasure (igvmmeasure --native-zero), not to kvm-legacy",
        );
    }
}

/// A usage error of `subcommand` found after parsing: clap's message and
/// exit code 2, with the subcommand's usage line.
fn usage_error(subcommand: &str, message: impl std::fmt::Display) -> ! {
    let mut cli = Cli::command();
    cli.build();
    match cli.find_subcommand_mut(subcommand) {
        Some(sub) => sub
            .error(clap::error::ErrorKind::ArgumentConflict, message)
            .exit(),
        None => cli
            .error(clap::error::ErrorKind::ArgumentConflict, message)
            .exit(),
    }
}

/// `measure --trace`: prints the trace on stdout as the PAGE_INFO chain
/// reaches each page (text lines, or the JSON object with the trace array
/// first and the launch digest last), holding no entry, and returns the
/// launch digest. The entries come from the hashing threads, so stdout is
/// not locked by the caller meanwhile.
fn print_trace(plan: &LaunchPlan<'_>, json: bool) -> Result<igvm_snp::LaunchDigest, Failure> {
    let out = std::io::BufWriter::with_capacity(1 << 16, Stdout(std::io::stdout()));
    let mut failed: Option<std::io::Error> = None;
    let mut keep = |r: std::io::Result<()>| {
        if let Err(e) = r {
            failed.get_or_insert(e);
        }
    };
    let digest = if json {
        let mut json = report::JsonTrace::start(out, plan.finish().expected_digest)?;
        let stats = plan.measure_trace_with(|e| keep(json.entry(&e)));
        json.finish(stats.digest)?.flush()?;
        stats.digest
    } else {
        let mut out = out;
        let stats = plan.measure_trace_with(|e| keep(report::write_trace_line(&mut out, &e)));
        writeln!(out, "{}", stats.digest)?;
        out.flush()?;
        stats.digest
    };
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(digest),
    }
}

fn run(cli: &Cli) -> Result<ExitCode, Failure> {
    // Not locked for the whole run: `measure --trace` writes from the
    // hashing threads.
    let mut out = Stdout(std::io::stdout());
    let progress = Progress::new(cli.quiet);
    match &cli.command {
        Command::Plan { file, json, launch } => {
            one_vcpu_count(launch, "plan");
            check_launch_args(launch, "plan");
            let bytes = map(file)?;
            let plan = plan(file, &bytes, launch)?;
            if *json {
                let mut v = serde_json::to_value(&plan)?;
                let digest = progress.phase("hashing", plan.launched_pages(), || {
                    plan.launch_digest_releasing(|part| bytes.release_around(part))
                });
                v["launch_digest"] = serde_json::Value::String(digest.to_string());
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                let table = plan_table(&plan, progress, |part| bytes.release_around(part));
                write!(out, "{table}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Measure {
            file,
            json,
            trace,
            launch,
        } => {
            check_launch_args(launch, "measure");
            if launch.vcpus.is_list() {
                if *trace {
                    usage_error("measure", "--trace takes one --vcpus count");
                }
                return measure_counts(&mut out, file, launch, *json, progress);
            }
            let bytes = map(file)?;
            let plan = plan(file, &bytes, launch)?;
            let pages = plan.launched_pages();
            let digest = if *trace {
                progress.phase("hashing", pages, || print_trace(&plan, *json))?
            } else {
                // Drop each batch of the mapped file once it is hashed:
                // measuring holds a few MiB of the image, not all of it.
                let digest = progress.phase("hashing", pages, || {
                    plan.launch_digest_releasing(|part| bytes.release_around(part))
                });
                if *json {
                    let mut v = serde_json::json!({ "launch_digest": digest.to_string() });
                    if let Some(ld) = plan.finish().expected_digest {
                        v["id_block_digest"] = serde_json::Value::String(ld.to_string());
                    }
                    writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                } else {
                    writeln!(out, "{digest}")?;
                }
                digest
            };
            out.flush()?;
            plan.check_id_block(&digest)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Launch(cmd) => {
            if cmd.launch.profile == ProfileArg::KvmLegacy {
                usage_error(
                    "launch",
                    "launch executes the file's VMSA step; for KVM's per-vCPU measurement \
                     use --allow-vmsa-fallback instead of --profile kvm-legacy",
                );
            }
            let model_options =
                cmd.model_no_vmsa_type || cmd.model_vmsa_features.is_some() || cmd.model_no_smt;
            if cmd.backend == Backend::Kvm && model_options {
                usage_error(
                    "launch",
                    "--model-no-vmsa-type, --model-vmsa-features and --model-no-smt configure \
                     the firmware model (--backend model)",
                );
            }
            one_vcpu_count(&cmd.launch, "launch");
            check_launch_args(&cmd.launch, "launch");
            launch::run(&mut out, cmd, progress)
        }
        Command::Run(cmd) => {
            let l = &cmd.launch;
            let sev_options = l.profile != ProfileArg::Spec
                || l.native_zero
                || l.host_data.is_some()
                || l.policy.is_some();
            if sev_options {
                usage_error(
                    "run",
                    "--profile, --native-zero, --host-data and --policy are for SEV-SNP \
                     launches (measure, launch); run --native uses none of them",
                );
            }
            one_vcpu_count(&cmd.launch, "run");
            check_launch_args(&cmd.launch, "run");
            native::run(&mut out, cmd, progress)
        }
        Command::Verify(args) => verify::run(&mut out, args),
        Command::Check(args) => check::run(&mut out, args),
        Command::Host { json } => {
            let host = igvm_snp_kvm::host::HostCapabilities::probe();
            if *json {
                let mut v = serde_json::to_value(&host)?;
                v["kvm"] = host.kvm().into();
                v["snp_missing"] = host
                    .preflight
                    .missing()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .into();
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                writeln!(out, "{host}")?;
                match host.preflight.require_snp() {
                    Ok(()) => writeln!(out, "SEV-SNP launches: possible")?,
                    Err(e) => writeln!(out, "SEV-SNP launches: not possible: {e}")?,
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { write } => demo(&mut out, write.as_deref(), progress),
    }
}

/// `measure --vcpus 1,2,4`: one digest per count. With kvm-legacy, KVM
/// measures one VMSA per vCPU after the pages, so one pass over the pages
/// gives every count; with other profiles the count does not enter the
/// digest (the VP count parameter is UNMEASURED) and every count has the
/// same one. With an ID block, every count's digest must be the one it
/// expects (as for one count), or the command fails naming the others.
fn measure_counts(
    out: &mut impl Write,
    file: &Path,
    launch: &LaunchArgs,
    json: bool,
    progress: Progress,
) -> Result<ExitCode, Failure> {
    let bytes = map(file)?;
    let plan = plan(file, &bytes, launch)?;
    let digests = progress.phase("hashing", plan.launched_pages(), || {
        let release = |part: &[u8]| bytes.release_around(part);
        plan.kvm_legacy_digests_releasing(release)
            .unwrap_or_else(|| {
                vec![plan.launch_digest_releasing(release); launch.vcpus.max() as usize]
            })
    });
    let by_count: Vec<(u32, String)> = launch
        .vcpus
        .all()
        .iter()
        .map(|&n| {
            let d = digests.get(n as usize - 1).map(ToString::to_string);
            (n, d.unwrap_or_default())
        })
        .collect();
    // As for one count: the file's ID block must expect each digest, or
    // SNP_LAUNCH_FINISH with it fails.
    let expected = plan.finish().expected_digest.map(|d| d.to_string());
    let refused: Vec<String> = match &expected {
        Some(e) => by_count
            .iter()
            .filter(|(_, d)| d != e)
            .map(|(n, _)| n.to_string())
            .collect(),
        None => Vec::new(),
    };
    if json {
        let map: serde_json::Map<String, serde_json::Value> = by_count
            .into_iter()
            .map(|(n, d)| (n.to_string(), d.into()))
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&map)?)?;
    } else {
        for (n, d) in by_count {
            writeln!(out, "{n} {d}")?;
        }
    }
    out.flush()?;
    match expected {
        Some(e) if !refused.is_empty() => Err(format!(
            "{}: the ID block expects launch digest {e}, which {} vCPU(s) do not give: \
             SNP_LAUNCH_FINISH with it would fail",
            file.display(),
            refused.join(", ")
        )
        .into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// `demo`: the built-in demo file's plan and digest, then a native run on
/// /dev/kvm when it opens.
fn demo(
    out: &mut impl Write,
    write: Option<&Path>,
    progress: Progress,
) -> Result<ExitCode, Failure> {
    let bytes = igvm_snp::demo::demo_igvm();
    if let Some(path) = write {
        std::fs::write(path, &bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        writeln!(out, "wrote {} ({} bytes)", path.display(), bytes.len())?;
    }
    let args = LaunchArgs {
        memory: DEMO_MEMORY,
        vcpus: VcpuCounts::one(1),
        cmdline: None,
        policy: None,
        acpi_tables: Vec::new(),
        device_tree: None,
        host_data: None,
        native_zero: false,
        profile: ProfileArg::Spec,
        cpu_signature: None,
    };
    let name = "demo.igvm";
    let plan = plan(Path::new(name), &bytes, &args)?;
    writeln!(
        out,
        "Demo IGVM file: {} bytes, built in memory with the igvm crate's builder \
         (one SEV-SNP platform, a VMSA, a 16-bit guest at the reset vector)\n",
        bytes.len()
    )?;
    write!(out, "{}", plan_table(&plan, progress, |_| {}))?;
    writeln!(out)?;
    let kvm = igvm_snp_kvm::preflight::KVM_DEVICE;
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open(kvm) {
        writeln!(
            out,
            "{kvm} cannot be opened ({e}): skipping the native run."
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "Running it natively on {kvm} (a plain KVM VM, no SEV); the guest's serial output:"
    )?;
    out.flush()?;
    let native = NativeConfig::new(config::ram_ranges(DEMO_MEMORY), Duration::from_secs(10));
    native::run_plan(out, name, &plan, &native, progress)?;
    writeln!(out, "The guest halted.")?;
    Ok(ExitCode::SUCCESS)
}

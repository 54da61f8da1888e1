//! `vmm-embed`: a minimal VMM that links igvm-snp in, as a rust-vmm VMM
//! would. The VMM owns every object: the KVM VM and vCPU fds, and guest
//! memory as a vm-memory `GuestMemoryMmap`. The library plans the IGVM
//! file, says which memory the plan needs, writes the plan's pages into the
//! VMM's memory, registers it with the VMM's VM, and turns the file's VMSA
//! into the VMM's vCPU state; the run loop and the serial port are the
//! VMM's.
//!
//! ```text
//! cargo run --release --example vmm-embed -- FILE [--model] [--memory-mib N] [--time-limit SECS]
//! ```
//!
//! Natively (no SEV): the guest's COM1 output on stdout; exit 0 when the
//! guest halts, 1 with a message otherwise. With `--model` the file is
//! launched on the software model of the AMD-SP instead (the VMM's VM,
//! memory and vCPU are still real KVM objects) and the launch digest is
//! printed, checked against the plan's.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, PAGE_SIZE, PlanOptions};
use igvm_snp_kvm::launch::{Launcher, VmsaFallback};
use igvm_snp_kvm::memory::{
    GuestAddress, GuestMemoryMmap, LayoutOptions, LoadOptions, MemoryFlavour, Memslots, VmsaPage,
    host_phys_bits, layout_for, load_plan,
};
use igvm_snp_kvm::sev::{CpuidRetry, FirmwareModel, ModelConfig};
use igvm_snp_kvm::vmsa_regs;
use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};

/// The VMM's serial port: COM1.
const COM1: u16 = 0x3F8;

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Command-line options.
struct Options {
    file: String,
    model: bool,
    memory: u64,
    time_limit: Duration,
}

const USAGE: &str = "usage: vmm-embed FILE [--model] [--memory-mib N] [--time-limit SECS]\n\
     runs an IGVM file natively on /dev/kvm (serial output on stdout), or with --model\n\
     launches it on the SEV-SNP firmware model and prints the launch digest";

/// What to do: run with these options, or print the usage (`--help`).
enum Parsed {
    Run(Options),
    Help,
}

fn parse() -> Result<Parsed, String> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        file: String::new(),
        model: false,
        memory: 64 << 20,
        time_limit: Duration::from_secs(10),
    };
    while let Some(arg) = args.next() {
        let mut value = |what: &str| args.next().ok_or(format!("{arg} needs {what}"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--model" => options.model = true,
            "--memory-mib" => {
                let text = value("a size in MiB")?;
                options.memory = text
                    .parse::<u64>()
                    .ok()
                    .filter(|&mib| mib > 0)
                    .and_then(|mib| mib.checked_mul(1 << 20))
                    .ok_or(format!("--memory-mib {text}: a size in MiB, at least 1"))?;
            }
            "--time-limit" => {
                let text = value("seconds")?;
                options.time_limit = text
                    .parse::<f64>()
                    .ok()
                    .filter(|&secs| secs > 0.0)
                    .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                    .ok_or(format!("--time-limit {text}: seconds, more than 0"))?;
            }
            _ if arg.starts_with('-') => return Err(format!("unknown option {arg}")),
            _ if !options.file.is_empty() => return Err(format!("a second file: {arg}")),
            _ => options.file = arg,
        }
    }
    if options.file.is_empty() {
        return Err("no IGVM file given".to_string());
    }
    Ok(Parsed::Run(options))
}

fn main() -> ExitCode {
    let options = match parse() {
        Ok(Parsed::Run(options)) => options,
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(reason) => {
            eprintln!("error: {reason}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut message = e.to_string();
            eprintln!("error: {}: {message}", options.file);
            let mut source = e.source();
            while let Some(s) = source {
                // Errors that already print their cause are not repeated.
                let text = s.to_string();
                if !message.contains(&text) {
                    eprintln!("  caused by: {text}");
                }
                message = text;
                source = s.source();
            }
            ExitCode::from(1)
        }
    }
}

/// The VMM's own objects: its VM, memory and the memslots over it.
struct Vmm {
    kvm: Kvm,
    vm: Arc<VmFd>,
    memory: GuestMemoryMmap,
    _memslots: Memslots,
}

impl Vmm {
    /// Creates the VM and the memory `plan` needs beyond `ram` (the VMM's
    /// choice of memory: vm-memory's mmap backend), leaving out `exclude`.
    fn new(
        plan: &LaunchPlan<'_>,
        ram: &[GpaRange],
        exclude: Option<GpaRange>,
    ) -> Result<Self, Failure> {
        let kvm = Kvm::new().map_err(|e| format!("cannot open /dev/kvm: {e}"))?;
        let vm = Arc::new(kvm.create_vm()?);
        let mut layout_options = LayoutOptions::new(host_phys_bits(&kvm)?);
        if let Some(range) = exclude {
            layout_options = layout_options.excluding(range);
        }
        let layout = layout_for(plan, ram, &layout_options)?;
        let ranges: Vec<(GuestAddress, usize)> = layout
            .iter()
            .map(|r| Ok((GuestAddress(r.gpa), usize::try_from(r.size)?)))
            .collect::<Result<_, std::num::TryFromIntError>>()?;
        let memory = GuestMemoryMmap::from_ranges(&ranges)?;
        let memslots = Memslots::register(Arc::clone(&vm), &memory, MemoryFlavour::Plain, 0)?;
        Ok(Vmm {
            kvm,
            vm,
            memory,
            _memslots: memslots,
        })
    }
}

fn run(options: &Options) -> Result<(), Failure> {
    let bytes = std::fs::read(&options.file)?;
    let ram = vec![GpaRange::new(0, options.memory)];
    // What this VMM provides to the file's parameters: one vCPU, its RAM,
    // an empty command line, a MADT for one vCPU, and no device tree, SRAT,
    // SLIT or PPTT (empty: their areas stay as the file has them, as QEMU
    // leaves them).
    let mut config = LaunchConfig::new(1, ram.clone())
        .with_command_line("")
        .leaving_optional_tables_unset();
    config.madt = Some(igvm_snp::acpi::madt_for_vcpus(1)?);
    let plan = LaunchPlan::new(&bytes, &config, PlanOptions::default())?;
    if options.model {
        launch_on_model(&plan, &ram)
    } else {
        run_natively(&plan, &ram, options.time_limit)
    }
}

/// The plan's pages in the VMM's memory, the VMSA in the VMM's vCPU, then
/// the VMM's run loop.
fn run_natively(plan: &LaunchPlan<'_>, ram: &[GpaRange], limit: Duration) -> Result<(), Failure> {
    let vmsa = plan.vmsa();
    // The VMSA page itself becomes vCPU state, not memory.
    let vmm = Vmm::new(plan, ram, Some(GpaRange::new(vmsa.gpa, PAGE_SIZE as u64)))?;
    load_plan(plan, &vmm.memory, LoadOptions::new(VmsaPage::Skip))?;
    let vcpu = vmm.vm.create_vcpu(0)?;
    let cpuid = vmm.kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)?;
    vmsa_regs::apply(&vmm.vm, &vcpu, &cpuid, &vmsa.vmsa)?;
    // The vCPU runs on a thread of its own; past the time limit the VMM
    // stops waiting and exits (which ends the vCPU thread with it).
    let (done, outcome) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(run_vcpu(vcpu));
    });
    match outcome.recv_timeout(limit) {
        Ok(result) => result,
        Err(_) => {
            // The vCPU thread is still in KVM_RUN on this VM and memory:
            // exit now, with them alive, rather than return and drop them
            // under a running vCPU. (A VMM that goes on would kick the vCPU
            // out of KVM_RUN and join its thread first.)
            eprintln!(
                "error: the guest did not halt within {} s",
                limit.as_secs_f64()
            );
            std::process::exit(1);
        }
    }
}

/// The VMM's KVM_RUN loop: a 16550 COM1 just good enough for output (data
/// written to stdout unless the divisor latch is selected; the line status
/// register always "transmitter empty and idle", which firmware such as
/// OVMF waits for), HLT ends the run.
fn run_vcpu(mut vcpu: VcpuFd) -> Result<(), Failure> {
    const LCR: u16 = COM1 + 3;
    const LSR: u16 = COM1 + 5;
    const LCR_DLAB: u8 = 0x80;
    const LSR_THRE_TEMT: u8 = 0x60;
    let mut stdout = std::io::stdout().lock();
    let mut lcr = 0u8;
    loop {
        let exit = match vcpu.run() {
            Ok(exit) => exit,
            // A signal interrupted KVM_RUN (EINTR): run again.
            Err(e) if interrupted(e.errno()) => continue,
            Err(e) => return Err(e.into()),
        };
        match exit {
            VcpuExit::IoOut(COM1, data) if lcr & LCR_DLAB == 0 => {
                stdout.write_all(data)?;
                stdout.flush()?;
            }
            VcpuExit::IoOut(LCR, data) => lcr = data.first().copied().unwrap_or(0),
            VcpuExit::IoIn(port, data) => {
                let value = if port == LSR { LSR_THRE_TEMT } else { 0xFF };
                data.fill(value);
            }
            VcpuExit::IoOut(..) => {}
            VcpuExit::Hlt => return Ok(()),
            VcpuExit::MmioRead(gpa, data) => {
                let len = data.len();
                return Err(
                    format!("the guest read {len} byte(s) of unmapped memory at {gpa:#x}").into(),
                );
            }
            VcpuExit::MmioWrite(gpa, data) => {
                let len = data.len();
                return Err(format!(
                    "the guest wrote {len} byte(s) to unmapped memory at {gpa:#x}"
                )
                .into());
            }
            other => return Err(format!("the guest stopped: {other:?}").into()),
        }
    }
}

fn interrupted(errno: i32) -> bool {
    std::io::Error::from_raw_os_error(errno).kind() == std::io::ErrorKind::Interrupted
}

/// The same VMM objects, launched as an SEV-SNP guest on the firmware
/// model, step by step as a VMM interleaves them with its own setup.
fn launch_on_model(plan: &LaunchPlan<'_>, ram: &[GpaRange]) -> Result<(), Failure> {
    let vmm = Vmm::new(plan, ram, None)?;
    let model = FirmwareModel::new(ModelConfig {
        supported_vmsa_features: ModelConfig::default().supported_vmsa_features
            | plan.init2_vmsa_features(),
        ..ModelConfig::default()
    });
    let initialized = Launcher::new(plan, model, &vmm.memory)?.init2()?;
    // vCPUs only after KVM_SEV_INIT2: the VMM creates its own.
    let _vcpu = vmm.vm.create_vcpu(0)?;
    // A dry run: load and launch 16 MiB at a time, each window discarded
    // after its LAUNCH_UPDATE (with guest_memfd the launched copy lives
    // there; here the memory keeps none).
    let window = std::num::NonZeroU64::new(4096).expect("non-zero");
    let finished = initialized
        .load_windowed(window)?
        .start()?
        .update(VmsaFallback::Refuse, None, CpuidRetry::Never)?
        .finish()?;
    let (model, report) = finished.into_parts();
    let digest = model.launch_digest();
    if digest != plan.launch_digest() {
        return Err(format!(
            "the model measured {digest}, the plan predicts {}",
            plan.launch_digest()
        )
        .into());
    }
    println!(
        "launched on the firmware model: {} SNP_LAUNCH_UPDATE commands, {} pages",
        report.launch_update_calls, report.pages
    );
    println!("launch digest {digest}");
    Ok(())
}

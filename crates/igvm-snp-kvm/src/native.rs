//! Native runs: an SEV-SNP IGVM plan executed on a plain KVM VM (type 0),
//! without SEV. Every page the plan loads is mapped and filled, the boot
//! VMSA is translated into vCPU state ([`crate::vmsa_regs`]) and vCPU 0 runs
//! until it halts, shuts down, exits unexpectedly or hits a time limit.
//! Bytes the guest writes to the serial port go to the caller.
//!
//! The time limit is enforced from the calling thread: once it passes, the
//! vCPU thread is interrupted with a real-time signal (a no-op handler is
//! installed for it; see [`NativeConfig::kick_signal`]) until it stops.

use std::os::raw::c_int;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use igvm_snp::{GpaRange, LaunchPlan, PAGE_SIZE};
use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};
use vmm_sys_util::errno;
use vmm_sys_util::signal::{Killable, SIGRTMAX, SIGRTMIN, register_signal_handler};

use crate::memory::{
    GuestMemoryMmap, LayoutOptions, LoadOptions, MemoryError, MemoryFlavour, Memslots, VmsaPage,
    anonymous, host_phys_bits, layout_for, load_plan,
};
use crate::vmsa_regs::{self, VcpuStateError};

/// The legacy PC serial port (COM1).
pub const COM1: u16 = 0x3F8;

/// How long the watchdog waits between signals once the limit has passed.
const KICK_INTERVAL: Duration = Duration::from_millis(5);

/// Configuration of a native run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NativeConfig {
    /// Guest RAM ranges (4 KiB aligned). Pages the plan loads outside them
    /// get their own memory too; the VMSA's GPA gets none.
    pub ram: Vec<GpaRange>,
    /// Wall-clock limit for the vCPU run.
    pub time_limit: Duration,
    /// Port whose output bytes are relayed (default [`COM1`]). Reads of
    /// `port + 5` (the 16550 line status) return "transmitter empty"; other
    /// port reads return 0xFF and other port writes are ignored.
    pub serial_port: u16,
    /// Offset from `SIGRTMIN` of the signal used to interrupt `KVM_RUN`
    /// (default 2; from 0 to `SIGRTMAX - SIGRTMIN`, else
    /// [`NativeError::Signal`]). The process-wide handler installed for it
    /// does nothing.
    pub kick_signal: c_int,
    /// How guest memory is registered (default [`MemoryFlavour::Plain`]).
    /// [`MemoryFlavour::GuestMemfd`] runs the guest from guest_memfd-backed
    /// memslots with every page shared, as an SNP VM's memory starts.
    pub memory_flavour: MemoryFlavour,
}

impl NativeConfig {
    /// A configuration with RAM and a time limit, relaying [`COM1`].
    pub fn new(ram: Vec<GpaRange>, time_limit: Duration) -> Self {
        NativeConfig {
            ram,
            time_limit,
            serial_port: COM1,
            kick_signal: 2,
            memory_flavour: MemoryFlavour::Plain,
        }
    }
}

/// How a native run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NativeOutcome {
    /// The guest executed HLT.
    Halted {
        /// RIP after the HLT.
        rip: u64,
    },
    /// The time limit passed first.
    TimedOut {
        /// RIP when stopped.
        rip: u64,
    },
    /// The guest shut down (e.g. a triple fault).
    Shutdown {
        /// RIP at the shutdown.
        rip: u64,
    },
    /// A VM exit the native runner does not handle.
    UnexpectedExit {
        /// What happened.
        exit: UnexpectedExit,
        /// RIP at the exit.
        rip: u64,
    },
}

/// Details of an unexpected VM exit.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnexpectedExit {
    /// A read of unmapped guest-physical memory.
    MmioRead {
        /// The GPA.
        gpa: u64,
        /// Bytes read.
        len: usize,
    },
    /// A write to unmapped guest-physical memory.
    MmioWrite {
        /// The GPA.
        gpa: u64,
        /// The bytes written.
        data: Vec<u8>,
    },
    /// KVM could not enter the guest (`KVM_EXIT_FAIL_ENTRY`).
    FailEntry {
        /// Hardware entry failure reason.
        reason: u64,
        /// Host CPU.
        cpu: u32,
    },
    /// `KVM_EXIT_INTERNAL_ERROR` (e.g. an instruction KVM cannot emulate).
    InternalError {
        /// `KVM_INTERNAL_ERROR_*` (1 = emulation failure, 3 = delivery
        /// event, …).
        suberror: u32,
        /// The extra data KVM reported (at most 16 words).
        data: Vec<u64>,
    },
    /// Any other exit, as KVM reported it.
    Other(String),
}

/// Errors of a native run (not of the guest: see [`NativeOutcome`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NativeError {
    /// `/dev/kvm` cannot be opened.
    #[error("opening /dev/kvm failed: {0}")]
    OpenKvm(errno::Error),
    /// `KVM_CREATE_VM` failed.
    #[error("KVM_CREATE_VM (type 0) failed: {0}")]
    CreateVm(errno::Error),
    /// `KVM_CREATE_VCPU` failed.
    #[error("KVM_CREATE_VCPU 0 failed: {0}")]
    CreateVcpu(errno::Error),
    /// `KVM_GET_SUPPORTED_CPUID` failed.
    #[error("KVM_GET_SUPPORTED_CPUID failed: {0}")]
    Cpuid(errno::Error),
    /// Guest memory setup or loading failed.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// The VMSA could not be loaded into the vCPU.
    #[error("loading the boot VMSA into vCPU 0: {0}")]
    VcpuState(#[from] VcpuStateError),
    /// Installing the kick signal's handler failed.
    #[error("installing a handler for signal SIGRTMIN+{offset} failed: {source}")]
    Signal {
        /// Offset from SIGRTMIN.
        offset: c_int,
        /// The error.
        source: errno::Error,
    },
    /// Starting the vCPU thread failed.
    #[error("starting the vCPU thread failed: {0}")]
    Spawn(std::io::Error),
    /// The vCPU thread panicked.
    #[error("the vCPU thread panicked")]
    VcpuThreadPanicked,
    /// An earlier run lost the vCPU (its thread or the output callback
    /// panicked).
    #[error("vCPU 0 was lost in an earlier run")]
    VcpuLost,
    /// `KVM_RUN` failed.
    #[error("KVM_RUN failed: {0}")]
    Run(errno::Error),
    /// Reading the registers after the run failed.
    #[error("KVM_GET_REGS failed: {0}")]
    GetRegs(errno::Error),
}

/// A plain KVM VM loaded with a plan, ready to run vCPU 0.
#[derive(Debug)]
pub struct NativeVm {
    memory: GuestMemoryMmap,
    slots: Memslots,
    vcpu: Option<VcpuFd>,
    vm: Arc<VmFd>,
    pages_loaded: u64,
}

impl NativeVm {
    /// Creates the VM and its memory, loads every page of `plan` (except
    /// the VMSA, which becomes vCPU 0's state) and sets up vCPU 0.
    ///
    /// # Errors
    /// [`NativeError`] naming the step that failed.
    pub fn new(plan: &LaunchPlan<'_>, config: &NativeConfig) -> Result<Self, NativeError> {
        let kvm = Kvm::new().map_err(NativeError::OpenKvm)?;
        let vmsa = plan.vmsa();
        let options = LayoutOptions::new(host_phys_bits(&kvm)?)
            .excluding(GpaRange::new(vmsa.gpa, PAGE_SIZE as u64));
        let layout = layout_for(plan, &config.ram, &options)?;
        let vm = Arc::new(kvm.create_vm_with_type(0).map_err(NativeError::CreateVm)?);
        let memory = anonymous(&layout)?;
        let slots = Memslots::register(Arc::clone(&vm), &memory, config.memory_flavour, 0)?;
        let pages_loaded = load_plan(plan, &memory, LoadOptions::new(VmsaPage::Skip))?;
        let vcpu = vm.create_vcpu(0).map_err(NativeError::CreateVcpu)?;
        let cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(NativeError::Cpuid)?;
        vmsa_regs::apply(&vm, &vcpu, &cpuid, &vmsa.vmsa)?;
        Ok(NativeVm {
            memory,
            slots,
            vcpu: Some(vcpu),
            vm,
            pages_loaded,
        })
    }

    /// Builds the VM for `plan` and runs it once: see [`NativeVm::new`] and
    /// [`NativeVm::run`].
    ///
    /// # Errors
    /// As [`NativeVm::new`] and [`NativeVm::run`].
    pub fn run_plan(
        plan: &LaunchPlan<'_>,
        config: &NativeConfig,
        out: impl FnMut(&[u8]),
    ) -> Result<NativeOutcome, NativeError> {
        NativeVm::new(plan, config)?.run(config, out)
    }

    /// The guest's memory (e.g. to inspect it after a run, through
    /// vm-memory's volatile [`Bytes`](crate::memory::Bytes) accesses).
    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.memory
    }

    /// The memslots the guest's memory is registered as.
    pub fn memslots(&self) -> &Memslots {
        &self.slots
    }

    /// The VM.
    pub fn vm(&self) -> &VmFd {
        &self.vm
    }

    /// Pages written from the plan.
    pub fn pages_loaded(&self) -> u64 {
        self.pages_loaded
    }

    /// Runs vCPU 0 until it halts, shuts down, exits unexpectedly or
    /// `config.time_limit` passes, relaying serial output to `out` on the
    /// calling thread. It can be called again to resume after a halt.
    ///
    /// # Errors
    /// [`NativeError`] when the host fails (KVM_RUN errors other than
    /// interruptions, signal setup, thread start).
    pub fn run(
        &mut self,
        config: &NativeConfig,
        mut out: impl FnMut(&[u8]),
    ) -> Result<NativeOutcome, NativeError> {
        // Only a real-time signal: vmm-sys-util would also take a standard
        // one, and a no-op handler for e.g. SIGSEGV or SIGBUS would replace
        // the Rust runtime's (a fault or stack overflow would then hang).
        if !(0..=SIGRTMAX() - SIGRTMIN()).contains(&config.kick_signal) {
            return Err(NativeError::Signal {
                offset: config.kick_signal,
                source: errno::Error::new(libc::EINVAL),
            });
        }
        let signum = SIGRTMIN() + config.kick_signal;
        register_signal_handler(signum, kick_handler).map_err(|source| NativeError::Signal {
            offset: config.kick_signal,
            source,
        })?;
        let vcpu = self.vcpu.take().ok_or(NativeError::VcpuLost)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let serial = config.serial_port;
        let thread_stop = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("igvm-native-vcpu0".into())
            .spawn(move || vcpu_loop(vcpu, &thread_stop, &tx, serial))
            .map_err(NativeError::Spawn)?;
        let mut guard = Watchdog {
            handle: Some(handle),
            stop,
            signum,
        };
        // A limit too large for an `Instant` means no limit.
        let deadline = Instant::now().checked_add(config.time_limit);
        loop {
            let wait = if guard.stopping() {
                KICK_INTERVAL
            } else {
                deadline.map_or(Duration::MAX, |d| {
                    d.saturating_duration_since(Instant::now())
                })
            };
            match rx.recv_timeout(wait) {
                Ok(bytes) => out(&bytes),
                Err(RecvTimeoutError::Timeout) => guard.kick(),
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let (vcpu, ended) = guard.join()?;
        let ended = ended.map_err(NativeError::Run);
        let rip = vcpu.get_regs().map(|r| r.rip).map_err(NativeError::GetRegs);
        self.vcpu = Some(vcpu);
        let (ended, rip) = (ended?, rip?);
        Ok(match ended {
            Ended::Halted => NativeOutcome::Halted { rip },
            Ended::Stopped => NativeOutcome::TimedOut { rip },
            Ended::Shutdown => NativeOutcome::Shutdown { rip },
            Ended::Unexpected(exit) => NativeOutcome::UnexpectedExit { exit, rip },
        })
    }
}

/// The kick signal's handler: interrupting `KVM_RUN` is all it is for.
extern "C" fn kick_handler(_: c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Why the vCPU loop returned.
enum Ended {
    Halted,
    Stopped,
    Shutdown,
    Unexpected(UnexpectedExit),
}

/// Runs the vCPU until an exit that ends the run; serial bytes go to `tx`.
fn vcpu_loop(
    mut vcpu: VcpuFd,
    stop: &AtomicBool,
    tx: &Sender<Vec<u8>>,
    serial: u16,
) -> (VcpuFd, Result<Ended, errno::Error>) {
    let ended = loop {
        if stop.load(Ordering::SeqCst) {
            break Ok(Ended::Stopped);
        }
        let exit = match vcpu.run() {
            Ok(VcpuExit::IoOut(port, data)) => {
                // A send only fails once the caller stopped listening, when
                // output no longer matters.
                if port == serial {
                    let _ = tx.send(data.to_vec());
                }
                continue;
            }
            Ok(VcpuExit::IoIn(port, data)) => {
                // 16550 LSR: transmitter holding register and line idle.
                let value = if port == serial.wrapping_add(5) {
                    0x60
                } else {
                    0xFF
                };
                data.fill(value);
                continue;
            }
            Ok(VcpuExit::Intr) => continue,
            Ok(VcpuExit::Hlt) => Ended::Halted,
            Ok(VcpuExit::Shutdown) => Ended::Shutdown,
            Ok(VcpuExit::MmioRead(gpa, data)) => Ended::Unexpected(UnexpectedExit::MmioRead {
                gpa,
                len: data.len(),
            }),
            Ok(VcpuExit::MmioWrite(gpa, data)) => Ended::Unexpected(UnexpectedExit::MmioWrite {
                gpa,
                data: data.to_vec(),
            }),
            Ok(VcpuExit::FailEntry(reason, cpu)) => {
                Ended::Unexpected(UnexpectedExit::FailEntry { reason, cpu })
            }
            Ok(VcpuExit::InternalError) => Ended::Unexpected(internal_error(&mut vcpu)),
            Ok(other) => Ended::Unexpected(UnexpectedExit::Other(format!("{other:?}"))),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => continue,
            Err(e) => break Err(e),
        };
        break Ok(exit);
    };
    (vcpu, ended)
}

/// The details of a `KVM_EXIT_INTERNAL_ERROR` from the vCPU's `kvm_run`.
fn internal_error(vcpu: &mut VcpuFd) -> UnexpectedExit {
    // SAFETY: the last exit was KVM_EXIT_INTERNAL_ERROR, for which KVM
    // fills the `internal` member of the `kvm_run` union; it is plain data
    // (integers only), so any bit pattern is valid.
    let internal = unsafe { vcpu.get_kvm_run().__bindgen_anon_1.internal };
    let n = (internal.ndata as usize).min(internal.data.len());
    UnexpectedExit::InternalError {
        suberror: internal.suberror,
        data: internal.data[..n].to_vec(),
    }
}

type VcpuThread = JoinHandle<(VcpuFd, Result<Ended, errno::Error>)>;

/// Stops and joins the vCPU thread, also when the caller's `out` panics.
struct Watchdog {
    handle: Option<VcpuThread>,
    stop: Arc<AtomicBool>,
    signum: c_int,
}

impl Watchdog {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Asks the vCPU thread to stop and interrupts `KVM_RUN`.
    fn kick(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = &self.handle {
            // The handle is not joined yet, so its pthread is valid. A
            // failure leaves the next kick to retry.
            let _ = h.kill(self.signum);
        }
    }

    fn join(&mut self) -> Result<(VcpuFd, Result<Ended, errno::Error>), NativeError> {
        let handle = self.handle.take().ok_or(NativeError::VcpuThreadPanicked)?;
        handle.join().map_err(|_| NativeError::VcpuThreadPanicked)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let Some(handle) = self.handle.take() else {
            return;
        };
        self.stop.store(true, Ordering::SeqCst);
        while !handle.is_finished() {
            let _ = handle.kill(self.signum);
            std::thread::sleep(KICK_INTERVAL);
        }
        let _ = handle.join();
    }
}

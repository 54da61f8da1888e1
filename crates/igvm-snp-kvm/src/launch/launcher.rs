//! The launch as a type-state machine over any [`SnpFirmware`].

use std::marker::PhantomData;
use std::num::NonZeroU64;
use std::time::Instant;

use igvm_snp::kvm_legacy::{KvmLegacyInputs, boot_vmsa_refused, fields_kvm_cannot_set};
use igvm_snp::{GpaRange, LaunchPlan, LaunchStep, PAGE_SIZE, PageType};
use kvm_bindings::CpuId;
use kvm_ioctls::{VcpuFd, VmFd};

use super::{LaunchError, LaunchReport, VmsaFallback, VmsaOutcome};
use crate::memory::{
    GuestAddress, GuestMemoryBackend, GuestMemoryMmap, LoadOptions, MemoryError, VmsaPage, discard,
    load_pages, load_plan,
};
use crate::sev::{
    CpuidRetry, LaunchFinishInput, LaunchStartInput, LaunchUpdate, PrivateMemory, SevError,
    SnpFirmware,
};
use crate::vmsa_regs;
use vm_memory::bitmap::{BS, Bitmap};

/// State: nothing issued yet; the plan is known to be executable.
#[derive(Debug)]
pub struct New;
/// State: KVM_SEV_INIT2 done (by the launcher or by the VMM). vCPUs may be
/// created now (not before INIT2).
#[derive(Debug)]
pub struct Initialized;
/// State: the plan's pages written to the shared view of guest memory, the
/// source of each LAUNCH_UPDATE ([`Launcher::load`]), or the shared pages
/// written and the launched ones to be written window by window
/// ([`Launcher::load_windowed`]).
#[derive(Debug)]
pub struct Loaded;
/// State: SNP_LAUNCH_START done.
#[derive(Debug)]
pub struct Started;
/// State: every plan step launched.
#[derive(Debug)]
pub struct Updated;
/// State: SNP_LAUNCH_FINISH done; the guest can run.
#[derive(Debug)]
pub struct Finished;

/// The boot vCPU, for the VMSA fallback.
#[derive(Debug, Clone, Copy)]
pub struct BootVcpu<'a> {
    /// The VM.
    pub vm: &'a VmFd,
    /// vCPU 0.
    pub vcpu: &'a VcpuFd,
    /// The CPUID to give it (KVM_SET_CPUID2 precedes the register state).
    pub cpuid: &'a CpuId,
    /// The inputs of KVM's own VMSAs (reported to the caller).
    pub legacy: KvmLegacyInputs,
}

impl<'a> BootVcpu<'a> {
    /// The boot vCPU of a launch of `plan`, with the kvm-legacy inputs the
    /// plan implies: its vCPU count and VMSA features, and
    /// `ap_cpu_signature`, the CPU signature the VMM writes into the APs'
    /// RDX (KVM's reset value, `igvm_snp::kvm_legacy::KVM_RESET_RDX`, when
    /// it writes none). The VMM must have created exactly
    /// [`LaunchPlan::vcpu_count`] vCPUs: taken from the plan, the count
    /// cannot disagree with it here, and KVM measures one VMSA per vCPU the
    /// VM really has.
    pub fn for_plan(
        vm: &'a VmFd,
        vcpu: &'a VcpuFd,
        cpuid: &'a CpuId,
        plan: &LaunchPlan<'_>,
        ap_cpu_signature: u32,
    ) -> Self {
        BootVcpu {
            vm,
            vcpu,
            cpuid,
            legacy: KvmLegacyInputs::new(
                plan.vcpu_count(),
                plan.init2_vmsa_features(),
                ap_cpu_signature,
            ),
        }
    }
}

/// An SEV-SNP launch of one plan on one firmware, in type states:
/// [`New`] → [`Initialized`] (KVM_SEV_INIT2, or the VMM's own) → [`Loaded`]
/// (pages written into the VMM's guest memory) → [`Started`] → [`Updated`]
/// → [`Finished`]. A VMM interleaves its own setup between the steps
/// (vCPUs after INIT2, its devices, …); [`Launcher::init`] does the first
/// three at once. Guest memory is the VMM's vm-memory [`GuestMemoryMmap`],
/// with or without a dirty bitmap `B` (cloud-hypervisor keeps
/// `GuestMemoryMmap<AtomicBitmap>`: every page the launch writes, discards
/// or has corrected is marked dirty), only ever accessed through volatile
/// slices.
///
/// What the launcher cannot see, the VMM must get right:
/// * **vCPUs.** Create exactly [`LaunchPlan::vcpu_count`] of them (the
///   guest's VP count parameter says so, and KVM measures a VMSA for every
///   vCPU the VM has when it builds them itself), after INIT2.
/// * **The VMSA fallback** (kernels without the VMSA page type): the
///   [`BootVcpu`]'s kvm-legacy inputs must be the plan's vCPU count and
///   VMSA features (checked), and the APs need the reset segments
///   ([`crate::vmsa_regs::set_ap_reset_segments`]) the prediction assumes.
/// * **On the firmware model**, which sees neither: after
///   [`Launcher::update`], give it every vCPU
///   (`FirmwareModel::read_back_vcpus`, which checks their count) so that
///   LAUNCH_FINISH measures KVM's VMSAs as KVM would; it refuses to finish
///   without them when no VMSA page was launched. Files whose VMSA asks for
///   SEV features beyond upstream KVM's need a `ModelConfig` that supports
///   them (`supported_vmsa_features`); the example's demo file asks for
///   none.
/// * **Memory** that is fresh (zero) where the plan has data-less pages,
///   or [`Launcher::used_memory`]; it must hold the plan's RAM and every
///   step, each step with a source within one region (checked by
///   [`Launcher::new`]).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, PlanOptions};
/// use igvm_snp_kvm::launch::{Launcher, VmsaFallback};
/// use igvm_snp_kvm::memory::{Memslots, MemoryFlavour, LayoutOptions, anonymous, layout_for};
/// use igvm_snp_kvm::sev::{CpuidRetry, FirmwareModel};
///
/// let bytes = igvm_snp::demo::demo_igvm();
/// let ram = vec![GpaRange::new(0, 16 << 20)];
/// let plan = LaunchPlan::new(&bytes, &LaunchConfig::new(1, ram.clone()), PlanOptions::default())?;
/// # let Ok(kvm) = kvm_ioctls::Kvm::new() else { return Ok(()) }; // needs /dev/kvm
/// let vm = Arc::new(kvm.create_vm()?);
/// let layout = layout_for(&plan, &ram, &LayoutOptions::new(48))?;
/// let memory = anonymous(&layout)?; // the VMM's own GuestMemoryMmap
/// let _slots = Memslots::register(vm, &memory, MemoryFlavour::Plain, 0)?;
///
/// let launcher = Launcher::new(&plan, FirmwareModel::default(), &memory)?.init2()?;
/// // ... create the vCPUs here, after KVM_SEV_INIT2 ...
/// let finished = launcher
///     .load()?
///     .start()?
///     .update(VmsaFallback::Refuse, None, CpuidRetry::Never)?
///     .finish()?;
/// assert_eq!(finished.report().launch_update_calls, plan.steps().len() as u64);
/// let (model, _report) = finished.into_parts();
/// assert_eq!(model.launch_digest(), plan.launch_digest());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Launcher<'l, 'p, F, S, B: Bitmap = ()> {
    plan: &'l LaunchPlan<'p>,
    fw: F,
    memory: &'l GuestMemoryMmap<B>,
    /// Windowed loading: pages per window.
    window: Option<NonZeroU64>,
    /// Every load also writes zeros for data-less pages.
    used_memory: bool,
    report: LaunchReport,
    state: PhantomData<S>,
}

impl<'l, 'p, F: SnpFirmware + PrivateMemory, S, B: Bitmap> Launcher<'l, 'p, F, S, B> {
    fn to<T>(self) -> Launcher<'l, 'p, F, T, B> {
        Launcher {
            plan: self.plan,
            fw: self.fw,
            memory: self.memory,
            window: self.window,
            used_memory: self.used_memory,
            report: self.report,
            state: PhantomData,
        }
    }

    /// How this launch writes pages into the memory.
    fn load_options(&self) -> LoadOptions {
        let options = LoadOptions::new(VmsaPage::Load);
        match self.used_memory {
            true => options.writing_zero_pages(),
            false => options,
        }
    }

    /// What the launch has done so far.
    pub fn report(&self) -> &LaunchReport {
        &self.report
    }

    /// The firmware.
    pub fn firmware(&self) -> &F {
        &self.fw
    }

    /// The firmware, mutably (e.g. to give the firmware model the vCPUs'
    /// state before LAUNCH_FINISH).
    pub fn firmware_mut(&mut self) -> &mut F {
        &mut self.fw
    }
}

impl<'l, 'p, F: SnpFirmware + PrivateMemory, B: Bitmap> Launcher<'l, 'p, F, New, B> {
    /// A launch of `plan` on `fw` into `memory` (the VMM's guest memory,
    /// already registered with its VM), once the plan is known to be
    /// executable ([`LaunchPlan::require_launchable`]: a valid policy, every
    /// parameter configured, no VMSA at a 2 MiB-aligned GPA). Nothing is
    /// issued yet. `memory` must hold the plan's configured RAM (which its
    /// MEMORY_MAP tells the guest about) and every launch step, each step
    /// with a source within one of its regions (an SNP_LAUNCH_UPDATE reads
    /// one contiguous range).
    ///
    /// # Errors
    /// [`LaunchError::Plan`] when the plan cannot be launched;
    /// [`LaunchError::RamNotInMemory`] and [`LaunchError::StepNotInOneRegion`]
    /// for memory that does not fit the plan.
    pub fn new(
        plan: &'l LaunchPlan<'p>,
        fw: F,
        memory: &'l GuestMemoryMmap<B>,
    ) -> Result<Self, LaunchError> {
        plan.require_launchable()?;
        for ram in plan.configured_memory() {
            let fits = usize::try_from(ram.size)
                .is_ok_and(|len| memory.check_range(GuestAddress(ram.gpa), len));
            if !fits {
                return Err(LaunchError::RamNotInMemory {
                    gpa: ram.gpa,
                    size: ram.size,
                });
            }
        }
        for step in plan.steps() {
            let range = step.range();
            // A source is one contiguous range; pages without one (ZERO,
            // SECRETS, ...) need only be in the memory.
            let fits = usize::try_from(range.size).is_ok_and(|len| {
                let at = GuestAddress(range.gpa);
                match step.page_type.has_source() {
                    true => memory.get_slice(at, len).is_ok(),
                    false => memory.check_range(at, len),
                }
            });
            if !fits {
                return Err(LaunchError::StepNotInOneRegion {
                    step: step.index,
                    gpa: range.gpa,
                    pages: step.pages,
                });
            }
        }
        Ok(Launcher {
            plan,
            fw,
            memory,
            window: None,
            used_memory: false,
            report: LaunchReport::new(),
            state: PhantomData,
        })
    }

    /// The memory is not fresh (reused, or written by the VMM before):
    /// every load ([`Launcher::load`], [`Launcher::load_windowed`]'s
    /// windows) also writes zeros where the plan has data-less pages, which
    /// would otherwise launch, and measure, whatever the memory holds there.
    pub fn used_memory(mut self) -> Self {
        self.used_memory = true;
        self
    }

    /// New, INIT2 and load in one go.
    ///
    /// # Errors
    /// As the three steps.
    pub fn init(
        plan: &'l LaunchPlan<'p>,
        fw: F,
        memory: &'l GuestMemoryMmap<B>,
    ) -> Result<Launcher<'l, 'p, F, Loaded, B>, LaunchError> {
        Launcher::new(plan, fw, memory)?.init2()?.load()
    }

    /// KVM_SEV_INIT2 with the plan's VMSA features.
    ///
    /// # Errors
    /// [`LaunchError::Sev`].
    pub fn init2(mut self) -> Result<Launcher<'l, 'p, F, Initialized, B>, LaunchError> {
        let t = Instant::now();
        self.fw.init2(self.plan.init2_vmsa_features())?;
        self.report.phase("init2", t.elapsed());
        Ok(self.to())
    }

    /// The VMM issued KVM_SEV_INIT2 itself, with `vmsa_features`: they must
    /// be the plan's (its VMSA's SEV features less SNPActive), or the
    /// firmware would refuse the VMSA, or measure other VMSAs.
    ///
    /// # Errors
    /// [`LaunchError::VmsaFeaturesMismatch`]; [`LaunchError::Sev`].
    pub fn initialized_by_vmm(
        mut self,
        vmsa_features: u64,
    ) -> Result<Launcher<'l, 'p, F, Initialized, B>, LaunchError> {
        let plan = self.plan.init2_vmsa_features();
        if vmsa_features != plan {
            return Err(LaunchError::VmsaFeaturesMismatch {
                vm: vmsa_features,
                plan,
            });
        }
        self.fw.init2_done(vmsa_features)?;
        Ok(self.to())
    }
}

impl<'l, 'p, F: SnpFirmware + PrivateMemory, B: Bitmap> Launcher<'l, 'p, F, Initialized, B> {
    /// Writes every page of the plan into the shared view of guest memory
    /// (volatile writes), which is where each LAUNCH_UPDATE takes its
    /// source from. Data-less pages are not written: the memory must be
    /// fresh (zero) there, as memory a VMM has just mapped is, or the
    /// launcher told otherwise ([`Launcher::used_memory`]).
    ///
    /// # Errors
    /// [`LaunchError::Memory`] naming the first page outside the memory.
    pub fn load(mut self) -> Result<Launcher<'l, 'p, F, Loaded, B>, LaunchError> {
        let t = Instant::now();
        load_plan(self.plan, self.memory, self.load_options())?;
        self.report.phase("load", t.elapsed());
        Ok(self.to())
    }

    /// Writes the plan's shared pages now and each launch step's pages a
    /// window of at most `window_pages` at a time, just before that
    /// window's LAUNCH_UPDATE, [discarding](crate::memory::discard) the
    /// window right after it: the memory the launch holds follows the
    /// window, not the image (a file of a few MB whose pages share one blob
    /// can give the guest GBs). Each step is still one SNP_LAUNCH_UPDATE
    /// command, issued window by window as KVM's partial progress would
    /// ([`LaunchReport::launch_update_ioctls`] counts the ioctls); the
    /// digest is the same, since the firmware measures page by page.
    ///
    /// Right when the launched pages live elsewhere afterwards: with
    /// guest_memfd memory KVM copies each source page into the guest_memfd
    /// and the shared view of a private GPA is not what the guest reads.
    /// On plain memory (the firmware model's) the VM keeps no copy of the
    /// launched image: a dry run that checks the launch and its digest.
    /// The memory must be fresh (zero) where the plan has data-less pages,
    /// as for [`Launcher::load`] (or [`Launcher::used_memory`]), and its
    /// shared view not a mapping of the
    /// guest_memfd itself (see [`crate::memory::discard`]).
    ///
    /// # Errors
    /// [`LaunchError::Memory`] naming the first shared page outside the
    /// memory.
    pub fn load_windowed(
        mut self,
        window_pages: NonZeroU64,
    ) -> Result<Launcher<'l, 'p, F, Loaded, B>, LaunchError> {
        let t = Instant::now();
        load_plan(self.plan, self.memory, self.load_options().shared_only())?;
        self.window = Some(window_pages);
        self.report.load_window_pages = Some(window_pages.get());
        self.report.phase("load", t.elapsed());
        Ok(self.to())
    }
}

impl<'l, 'p, F: SnpFirmware + PrivateMemory, B: Bitmap> Launcher<'l, 'p, F, Loaded, B> {
    /// SNP_LAUNCH_START with the plan's policy.
    ///
    /// # Errors
    /// [`LaunchError::Plan`] for an invalid policy, [`LaunchError::Sev`].
    pub fn start(mut self) -> Result<Launcher<'l, 'p, F, Started, B>, LaunchError> {
        let t = Instant::now();
        let policy = self.plan.policy()?;
        self.fw.launch_start(&LaunchStartInput::new(policy))?;
        self.report.phase("launch_start", t.elapsed());
        Ok(self.to())
    }
}

impl<'l, 'p, F: SnpFirmware + PrivateMemory, B: Bitmap> Launcher<'l, 'p, F, Started, B> {
    /// Launches every plan step, in order: marks its range private, then
    /// one SNP_LAUNCH_UPDATE whose source is the range in guest memory
    /// (none for ZERO). A VMSA step the kernel refuses is handled as
    /// `fallback` says, with `boot` the vCPU to translate it into.
    ///
    /// # Errors
    /// [`LaunchError::Update`] naming the step, directive, GPA range and
    /// page type; [`LaunchError::VmsaPageTypeUnsupported`] when the kernel
    /// refuses the VMSA page type and the fallback is refused.
    pub fn update(
        mut self,
        fallback: VmsaFallback,
        boot: Option<BootVcpu<'_>>,
        cpuid_retry: CpuidRetry,
    ) -> Result<Launcher<'l, 'p, F, Updated, B>, LaunchError> {
        let t = Instant::now();
        for step in self.plan.steps() {
            self.step(step, fallback, boot, cpuid_retry)?;
        }
        self.report.phase("launch_update", t.elapsed());
        Ok(self.to())
    }

    fn step(
        &mut self,
        step: &LaunchStep,
        fallback: VmsaFallback,
        boot: Option<BootVcpu<'_>>,
        cpuid_retry: CpuidRetry,
    ) -> Result<(), LaunchError> {
        let range = step.range();
        let fail = |source| LaunchError::Update {
            step: step.index,
            directive: self.plan.file().directives()[step.directives.start].at,
            gpa: step.gpa,
            pages: step.pages,
            page_type: step.page_type,
            source: Box::new(source),
        };
        self.fw.set_private(range.gpa, range.size).map_err(fail)?;
        tracing::info!(
            step = step.index,
            gpa = format_args!("{:#x}", step.gpa),
            pages = step.pages,
            page_type = %step.page_type,
            "SNP_LAUNCH_UPDATE"
        );
        // Windowed loading applies to steps with a source only.
        let window = match self.window {
            Some(w) if step.page_type.has_source() => Some(w.get()),
            _ => None,
        };
        let mut pages = self.plan.step_pages(step).peekable();
        let mut done = 0u64;
        while done < step.pages {
            let count = window.map_or(step.pages - done, |w| w.min(step.pages - done));
            let gpa = step.gpa + done * PAGE_SIZE as u64;
            let end = gpa + count * PAGE_SIZE as u64;
            if window.is_some() {
                let in_window = std::iter::from_fn(|| pages.next_if(|(g, _)| *g < end));
                load_pages(self.memory, in_window, self.load_options())?;
            }
            let source = if step.page_type.has_source() {
                Some(self.source(gpa, count)?)
            } else {
                None
            };
            let mut update = LaunchUpdate::with_bitmap(gpa, count, step.page_type, source)
                .map_err(|source| LaunchError::Input {
                    step: step.index,
                    source,
                })?
                .cpuid_retry(cpuid_retry);
            // A failed update's own error says more than a discard's, so
            // the window is discarded only once the update is through.
            let result = self.fw.launch_update(&mut update);
            let discard_window = || match window {
                Some(_) => discard(self.memory, GpaRange::new(gpa, count * PAGE_SIZE as u64)),
                None => Ok(()),
            };
            match result {
                Ok(r) => {
                    discard_window()?;
                    self.report.launch_update_ioctls += u64::from(r.ioctl_calls);
                    self.report.pages += r.pages;
                    if let Some(diff) = r.cpuid_corrected {
                        self.report.cpuid_corrections.push((step.index, diff));
                    }
                }
                Err(SevError::VmsaPageTypeUnsupported { .. })
                    if step.page_type == PageType::Vmsa =>
                {
                    discard_window()?;
                    self.report.launch_update_calls += 1;
                    return self.vmsa_fallback(step, fallback, boot);
                }
                Err(e) => return Err(fail(e)),
            }
            done += count;
        }
        self.report.launch_update_calls += 1;
        if step.page_type == PageType::Vmsa {
            self.report.vmsa = VmsaOutcome::PageType { gpa: step.gpa };
        }
        Ok(())
    }

    /// The shared view of `pages` pages from `gpa`, a LAUNCH_UPDATE source.
    fn source(
        &self,
        gpa: u64,
        pages: u64,
    ) -> Result<vm_memory::VolatileSlice<'l, BS<'l, B>>, MemoryError> {
        let size = pages * PAGE_SIZE as u64;
        let bad = |reason| MemoryError::BadPageRange {
            gpa,
            len: size,
            reason,
        };
        let len = usize::try_from(size).map_err(|_| bad("larger than the host address space"))?;
        self.memory
            .get_slice(GuestAddress(gpa), len)
            .map_err(|_| bad("not within one memory region"))
    }

    /// The kernel refused the VMSA page type for `step`: refuse, or
    /// translate the VMSA into the boot vCPU's registers.
    fn vmsa_fallback(
        &mut self,
        step: &LaunchStep,
        fallback: VmsaFallback,
        boot: Option<BootVcpu<'_>>,
    ) -> Result<(), LaunchError> {
        if fallback == VmsaFallback::Refuse {
            return Err(LaunchError::VmsaPageTypeUnsupported { gpa: step.gpa });
        }
        let boot = boot.ok_or(LaunchError::NoBootVcpu)?;
        if boot.legacy.vcpus != self.plan.vcpu_count() {
            return Err(LaunchError::VcpuCountMismatch {
                what: "the kvm-legacy inputs",
                got: boot.legacy.vcpus,
                plan: self.plan.vcpu_count(),
            });
        }
        // INIT2 took the plan's features (init2, or initialized_by_vmm's
        // check): KVM's VMSAs carry them, whatever the inputs say.
        let features = self.plan.init2_vmsa_features();
        if boot.legacy.vmsa_features != features {
            return Err(LaunchError::LegacyFeaturesMismatch {
                legacy: boot.legacy.vmsa_features,
                plan: features,
            });
        }
        // Fail now rather than at LAUNCH_FINISH, where KVM would
        // refuse to build its VMSA from this state.
        if let Some(reason) = boot_vmsa_refused(&self.plan.vmsa().vmsa) {
            return Err(LaunchError::FallbackRefused { reason });
        }
        // State KVM would not carry from the registers into its
        // VMSA (QEMU's check_vmsa_supported refuses the same).
        let fields = fields_kvm_cannot_set(&self.plan.vmsa().vmsa);
        if !fields.is_empty() {
            return Err(LaunchError::FallbackRefused {
                reason: format!(
                    "non-zero VMSA fields KVM does not set from vCPU registers: {}",
                    fields.join(", ")
                ),
            });
        }
        tracing::warn!(
            "the kernel refuses the VMSA page type: the VMSA goes into vCPU 0's \
             registers and KVM measures its own VMSAs at LAUNCH_FINISH"
        );
        vmsa_regs::apply(boot.vm, boot.vcpu, boot.cpuid, &self.plan.vmsa().vmsa)
            .map_err(|source| LaunchError::VcpuState { vcpu: 0, source })?;
        self.report.vmsa = VmsaOutcome::Fallback {
            legacy: boot.legacy,
        };
        Ok(())
    }
}

impl<'l, 'p, F: SnpFirmware + PrivateMemory, B: Bitmap> Launcher<'l, 'p, F, Updated, B> {
    /// SNP_LAUNCH_FINISH with the plan's ID block, ID auth and host data.
    ///
    /// # Errors
    /// [`LaunchError::Sev`], e.g. `BAD_MEASUREMENT` when the ID block
    /// expects another digest.
    pub fn finish(mut self) -> Result<Launcher<'l, 'p, F, Finished, B>, LaunchError> {
        let t = Instant::now();
        let input = LaunchFinishInput::from_plan(self.plan.finish()).map_err(|source| {
            LaunchError::Input {
                step: self.plan.steps().len(),
                source,
            }
        })?;
        self.fw.launch_finish(&input)?;
        self.report.phase("launch_finish", t.elapsed());
        Ok(self.to())
    }
}

impl<F: SnpFirmware + PrivateMemory, B: Bitmap> Launcher<'_, '_, F, Finished, B> {
    /// The firmware and the report. With [`crate::sev::KvmSnp`], keep its
    /// `/dev/sev` file ([`crate::sev::KvmSnp::into_sev_file`]) open while
    /// the VM runs: KVM issues the guest's SNP guest requests through it.
    pub fn into_parts(self) -> (F, LaunchReport) {
        (self.fw, self.report)
    }
}

//! The launch as a type-state machine over any [`SnpFirmware`].

use std::marker::PhantomData;
use std::time::Instant;

use igvm_snp::kvm_legacy::{KvmLegacyInputs, boot_vmsa_refused, fields_kvm_cannot_set};
use igvm_snp::{LaunchPlan, LaunchStep, PageType};
use kvm_bindings::CpuId;
use kvm_ioctls::{VcpuFd, VmFd};

use super::{LaunchError, LaunchReport, VmsaFallback, VmsaOutcome};
use crate::memory::{
    GuestAddress, GuestMemoryBackend, GuestMemoryMmap, LoadOptions, MemoryError, VmsaPage,
    load_plan,
};
use crate::sev::{
    CpuidRetry, LaunchFinishInput, LaunchStartInput, LaunchUpdate, PrivateMemory, SevError,
    SnpFirmware,
};
use crate::vmsa_regs;

/// State: nothing issued yet; the plan is known to be executable.
#[derive(Debug)]
pub struct New;
/// State: KVM_SEV_INIT2 done (by the launcher or by the VMM). vCPUs may be
/// created now (not before INIT2).
#[derive(Debug)]
pub struct Initialized;
/// State: the plan's pages written to the shared view of guest memory, the
/// source of each LAUNCH_UPDATE.
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

/// An SEV-SNP launch of one plan on one firmware, in type states:
/// [`New`] → [`Initialized`] (KVM_SEV_INIT2, or the VMM's own) → [`Loaded`]
/// (pages written into the VMM's guest memory) → [`Started`] → [`Updated`]
/// → [`Finished`]. A VMM interleaves its own setup between the steps
/// (vCPUs after INIT2, its devices, …); [`Launcher::init`] does the first
/// three at once. Guest memory is the VMM's vm-memory [`GuestMemoryMmap`],
/// only ever accessed through volatile slices.
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
pub struct Launcher<'l, 'p, F, S> {
    plan: &'l LaunchPlan<'p>,
    fw: F,
    memory: &'l GuestMemoryMmap,
    report: LaunchReport,
    state: PhantomData<S>,
}

impl<'l, 'p, F: SnpFirmware + PrivateMemory, S> Launcher<'l, 'p, F, S> {
    fn to<T>(self) -> Launcher<'l, 'p, F, T> {
        Launcher {
            plan: self.plan,
            fw: self.fw,
            memory: self.memory,
            report: self.report,
            state: PhantomData,
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

impl<'l, 'p, F: SnpFirmware + PrivateMemory> Launcher<'l, 'p, F, New> {
    /// A launch of `plan` on `fw` into `memory` (the VMM's guest memory,
    /// already registered with its VM), once the plan is known to be
    /// executable ([`LaunchPlan::require_launchable`]: a valid policy, every
    /// parameter configured, no VMSA at a 2 MiB-aligned GPA). Nothing is
    /// issued yet.
    ///
    /// # Errors
    /// [`LaunchError::Plan`] when the plan cannot be launched.
    pub fn new(
        plan: &'l LaunchPlan<'p>,
        fw: F,
        memory: &'l GuestMemoryMmap,
    ) -> Result<Self, LaunchError> {
        plan.require_launchable()?;
        Ok(Launcher {
            plan,
            fw,
            memory,
            report: LaunchReport::new(),
            state: PhantomData,
        })
    }

    /// New, INIT2 and load in one go.
    ///
    /// # Errors
    /// As the three steps.
    pub fn init(
        plan: &'l LaunchPlan<'p>,
        fw: F,
        memory: &'l GuestMemoryMmap,
    ) -> Result<Launcher<'l, 'p, F, Loaded>, LaunchError> {
        Launcher::new(plan, fw, memory)?.init2()?.load()
    }

    /// KVM_SEV_INIT2 with the plan's VMSA features.
    ///
    /// # Errors
    /// [`LaunchError::Sev`].
    pub fn init2(mut self) -> Result<Launcher<'l, 'p, F, Initialized>, LaunchError> {
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
    ) -> Result<Launcher<'l, 'p, F, Initialized>, LaunchError> {
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

impl<'l, 'p, F: SnpFirmware + PrivateMemory> Launcher<'l, 'p, F, Initialized> {
    /// Writes every page of the plan into the shared view of guest memory
    /// (volatile writes), which is where each LAUNCH_UPDATE takes its
    /// source from. Data-less pages are not written: the memory must be
    /// fresh (zero) there, as memory a VMM has just mapped is.
    ///
    /// # Errors
    /// [`LaunchError::Memory`] naming the first page outside the memory.
    pub fn load(mut self) -> Result<Launcher<'l, 'p, F, Loaded>, LaunchError> {
        let t = Instant::now();
        load_plan(self.plan, self.memory, LoadOptions::new(VmsaPage::Load))?;
        self.report.phase("load", t.elapsed());
        Ok(self.to())
    }
}

impl<'l, 'p, F: SnpFirmware + PrivateMemory> Launcher<'l, 'p, F, Loaded> {
    /// SNP_LAUNCH_START with the plan's policy.
    ///
    /// # Errors
    /// [`LaunchError::Plan`] for an invalid policy, [`LaunchError::Sev`].
    pub fn start(mut self) -> Result<Launcher<'l, 'p, F, Started>, LaunchError> {
        let t = Instant::now();
        let policy = self.plan.policy()?;
        self.fw.launch_start(&LaunchStartInput::new(policy))?;
        self.report.phase("launch_start", t.elapsed());
        Ok(self.to())
    }
}

impl<'l, 'p, F: SnpFirmware + PrivateMemory> Launcher<'l, 'p, F, Started> {
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
    ) -> Result<Launcher<'l, 'p, F, Updated>, LaunchError> {
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
        let source = if step.page_type.has_source() {
            let bad = |reason| MemoryError::BadPageRange {
                gpa: range.gpa,
                len: range.size,
                reason,
            };
            let len = usize::try_from(range.size)
                .map_err(|_| bad("larger than the host address space"))?;
            Some(
                self.memory
                    .get_slice(GuestAddress(range.gpa), len)
                    .map_err(|_| bad("not within one memory region"))?,
            )
        } else {
            None
        };
        let mut update = LaunchUpdate::new(step.gpa, step.pages, step.page_type, source)
            .map_err(|source| LaunchError::Input {
                step: step.index,
                source,
            })?
            .cpuid_retry(cpuid_retry);
        tracing::info!(
            step = step.index,
            gpa = format_args!("{:#x}", step.gpa),
            pages = step.pages,
            page_type = %step.page_type,
            "SNP_LAUNCH_UPDATE"
        );
        match self.fw.launch_update(&mut update) {
            Ok(r) => {
                self.report.launch_update_calls += 1;
                self.report.launch_update_ioctls += u64::from(r.ioctl_calls);
                self.report.pages += r.pages;
                if let Some(diff) = r.cpuid_corrected {
                    self.report.cpuid_corrections.push((step.index, diff));
                }
                if step.page_type == PageType::Vmsa {
                    self.report.vmsa = VmsaOutcome::PageType { gpa: step.gpa };
                }
                Ok(())
            }
            Err(SevError::VmsaPageTypeUnsupported { .. }) if step.page_type == PageType::Vmsa => {
                self.report.launch_update_calls += 1;
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
            Err(e) => Err(fail(e)),
        }
    }
}

impl<'l, 'p, F: SnpFirmware + PrivateMemory> Launcher<'l, 'p, F, Updated> {
    /// SNP_LAUNCH_FINISH with the plan's ID block, ID auth and host data.
    ///
    /// # Errors
    /// [`LaunchError::Sev`], e.g. `BAD_MEASUREMENT` when the ID block
    /// expects another digest.
    pub fn finish(mut self) -> Result<Launcher<'l, 'p, F, Finished>, LaunchError> {
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

impl<F: SnpFirmware + PrivateMemory> Launcher<'_, '_, F, Finished> {
    /// The firmware and the report.
    pub fn into_parts(self) -> (F, LaunchReport) {
        (self.fw, self.report)
    }
}

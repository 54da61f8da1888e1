//! The whole launch in one call: on SEV-SNP KVM, or on the firmware model.

use std::fs::File;
use std::sync::Arc;
use std::time::Instant;

use igvm_snp::kvm_legacy::KVM_RESET_RDX;
use igvm_snp::{GpaRange, LaunchPlan};
use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES, KVM_X86_SNP_VM};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};

use super::{BootVcpu, LaunchError, LaunchOptions, LaunchReport, Launcher};
use crate::memory::{
    GuestMemoryMmap, LayoutOptions, MemoryFlavour, Memslots, anonymous, host_phys_bits, layout_for,
};
use crate::preflight::PreflightReport;
#[cfg(any(test, feature = "firmware-model"))]
use crate::sev::FirmwareModel;
use crate::sev::{KvmSnp, PrivateMemory, SEV_DEVICE, SnpFirmware};
use crate::vmsa_regs;

/// A launched VM: ready to run.
#[derive(Debug)]
pub struct LaunchedVm {
    /// The vCPUs, vCPU 0 first.
    pub vcpus: Vec<VcpuFd>,
    /// Guest memory (its shared view), read and written through vm-memory's
    /// volatile [`Bytes`](crate::memory::Bytes) accesses.
    pub memory: GuestMemoryMmap,
    /// Its memslots.
    pub memslots: Memslots,
    /// The VM.
    pub vm: Arc<VmFd>,
    /// The `/dev/sev` file KVM was given at SNP_LAUNCH_START (`None` on the
    /// firmware model). KVM issues the guest's SNP guest requests
    /// (attestation reports, …) through that fd number while the guest
    /// runs: keep it open as long as the VM.
    pub sev_device: Option<File>,
    /// What the launch did.
    pub report: LaunchReport,
}

#[cfg(any(test, feature = "firmware-model"))]
/// A launch on the firmware model.
#[derive(Debug)]
pub struct ModelLaunch {
    /// The VM (a plain KVM VM: memory and vCPUs are real).
    pub launched: LaunchedVm,
    /// The model after LAUNCH_FINISH (its digest, call counts, measured
    /// runs).
    pub model: FirmwareModel,
}

fn kvm_err(what: &'static str) -> impl FnOnce(vmm_sys_util::errno::Error) -> LaunchError {
    move |source| LaunchError::Kvm { what, source }
}

/// The launch options must create the vCPUs the plan was configured for.
fn check_vcpus(plan: &LaunchPlan<'_>, options: &LaunchOptions) -> Result<(), LaunchError> {
    if options.vcpus == plan.vcpu_count() {
        Ok(())
    } else {
        Err(LaunchError::VcpuCountMismatch {
            what: "the launch options",
            got: options.vcpus,
            plan: plan.vcpu_count(),
        })
    }
}

/// Creates the vCPUs (after INIT2) and gives each the host's supported
/// CPUID; the APs get the reset segments KVM's legacy VMSAs are predicted
/// with ([`vmsa_regs::set_ap_reset_segments`]) and, in the fallback, RDX =
/// the CPU signature.
fn create_vcpus(
    kvm: &Kvm,
    vm: &VmFd,
    options: &LaunchOptions,
) -> Result<(Vec<VcpuFd>, CpuId), LaunchError> {
    let cpuid = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(kvm_err("KVM_GET_SUPPORTED_CPUID"))?;
    let mut vcpus = Vec::new();
    for i in 0..options.vcpus {
        let vcpu = vm
            .create_vcpu(u64::from(i))
            .map_err(kvm_err("KVM_CREATE_VCPU"))?;
        vcpu.set_cpuid2(&cpuid).map_err(kvm_err("KVM_SET_CPUID2"))?;
        if i > 0 {
            vmsa_regs::set_ap_reset_segments(&vcpu)
                .map_err(|source| LaunchError::VcpuState { vcpu: i, source })?;
            if let Some(sig) = options.ap_cpu_signature {
                let mut regs = vcpu.get_regs().map_err(kvm_err("KVM_GET_REGS"))?;
                regs.rdx = u64::from(sig);
                vcpu.set_regs(&regs).map_err(kvm_err("KVM_SET_REGS"))?;
            }
        }
        vcpus.push(vcpu);
    }
    Ok((vcpus, cpuid))
}

/// Runs the launch state machine over `fw` once memory and the VM exist;
/// `before_finish` sees the firmware and the vCPUs just before
/// LAUNCH_FINISH.
fn drive<F: SnpFirmware + PrivateMemory>(
    kvm: &Kvm,
    vm: &Arc<VmFd>,
    plan: &LaunchPlan<'_>,
    options: &LaunchOptions,
    fw: F,
    memory: &GuestMemoryMmap,
    before_finish: impl FnOnce(&mut F, &[VcpuFd]) -> Result<(), LaunchError>,
) -> Result<(F, Vec<VcpuFd>, LaunchReport), LaunchError> {
    let initialized = Launcher::new(plan, fw, memory)?.init2()?;
    let launcher = match options.load_window {
        Some(pages) => initialized.load_windowed(pages)?,
        None => initialized.load()?,
    };
    // vCPUs only after KVM_SEV_INIT2.
    let t = Instant::now();
    let (vcpus, cpuid) = create_vcpus(kvm, vm, options)?;
    let vcpu_time = t.elapsed();
    let signature = options.ap_cpu_signature.unwrap_or(KVM_RESET_RDX);
    let boot = vcpus
        .first()
        .map(|vcpu| BootVcpu::for_plan(vm, vcpu, &cpuid, plan, signature));
    let mut updated = launcher
        .start()?
        .update(options.vmsa_fallback, boot, options.cpuid_retry)?;
    before_finish(updated.firmware_mut(), &vcpus)?;
    let launcher = updated.finish()?;
    let (fw, mut report) = launcher.into_parts();
    report.phase("create_vcpus", vcpu_time);
    Ok((fw, vcpus, report))
}

/// The memory layout for a launch: RAM, required memory and every page the
/// plan loads (including the VMSA page, which LAUNCH_UPDATE reads from
/// guest memory like any other).
fn layout(
    kvm: &Kvm,
    plan: &LaunchPlan<'_>,
    options: &LaunchOptions,
) -> Result<Vec<GpaRange>, LaunchError> {
    let opts = LayoutOptions::new(host_phys_bits(kvm)?);
    Ok(layout_for(plan, &options.ram, &opts)?)
}

/// Launches `plan` as an SEV-SNP guest on this host's KVM: checks the host
/// first (nothing is changed when it cannot run SNP guests), creates a
/// `KVM_X86_SNP_VM`, issues KVM_SEV_INIT2 with the plan's VMSA features,
/// backs memory with guest_memfd, creates the vCPUs, then LAUNCH_START,
/// one LAUNCH_UPDATE per plan step and LAUNCH_FINISH. With
/// [`LaunchOptions::load_window`] set, the shared view keeps no copy of the
/// launched pages (their private copies live in the guest_memfd), so the
/// image does not take its memory twice.
///
/// # Errors
/// [`LaunchError::Preflight`] listing what the host lacks; any later
/// failure names its step. File descriptors and mappings are released on
/// every error path (they are owned values).
pub fn launch_snp(
    plan: &LaunchPlan<'_>,
    options: &LaunchOptions,
) -> Result<LaunchedVm, LaunchError> {
    let t = Instant::now();
    let host = PreflightReport::probe();
    host.require_snp()?;
    plan.require_launchable()?;
    host.check_policy(plan.policy()?.bits())?;
    check_vcpus(plan, options)?;
    let preflight = t.elapsed();
    let kvm = Kvm::new().map_err(kvm_err("opening /dev/kvm"))?;
    let vm = Arc::new(
        kvm.create_vm_with_type(u64::from(KVM_X86_SNP_VM))
            .map_err(kvm_err("KVM_CREATE_VM (SNP)"))?,
    );
    let layout = layout(&kvm, plan, options)?;
    let t = Instant::now();
    let memory = anonymous(&layout)?;
    let memslots = Memslots::register(Arc::clone(&vm), &memory, MemoryFlavour::GuestMemfd, 0)?;
    let memory_time = t.elapsed();
    let fw = KvmSnp::open(&vm).map_err(|source| LaunchError::SevDevice {
        path: SEV_DEVICE,
        source,
    })?;
    let (fw, vcpus, mut report) = drive(&kvm, &vm, plan, options, fw, &memory, |_, _| Ok(()))?;
    report.phase("preflight", preflight);
    report.phase("memory", memory_time);
    let sev_device = Some(fw.into_sev_file());
    Ok(LaunchedVm {
        vcpus,
        memory,
        memslots,
        sev_device,
        vm,
        report,
    })
}

#[cfg(any(test, feature = "firmware-model"))]
/// Launches `plan` on the firmware model: memory and vCPUs are a plain KVM
/// VM's (so the VMSA fallback really sets vCPU 0's registers); the SEV
/// commands go to `model`. Without the VMSA page type in the model's
/// configuration, every vCPU's state is read back from KVM just before
/// LAUNCH_FINISH ([`FirmwareModel::read_back_vcpus`]: segment registers as
/// written, once the read-back agrees with them),
/// and the model builds and measures the VMSA KVM would build from it
/// (`vmsa_sync`), so the digest shows what the fallback really loaded, not
/// what `igvm_snp::kvm_legacy` predicts from the file.
///
/// # Errors
/// As [`launch_snp`], without the preflight; [`LaunchError::VcpuReadBack`]
/// when a vCPU cannot be read back.
pub fn launch_model(
    plan: &LaunchPlan<'_>,
    options: &LaunchOptions,
    model: FirmwareModel,
) -> Result<ModelLaunch, LaunchError> {
    plan.require_launchable()?;
    check_vcpus(plan, options)?;
    let kvm = Kvm::new().map_err(kvm_err("opening /dev/kvm"))?;
    let vm = Arc::new(kvm.create_vm().map_err(kvm_err("KVM_CREATE_VM"))?);
    let layout = layout(&kvm, plan, options)?;
    let t = Instant::now();
    let memory = anonymous(&layout)?;
    let memslots = Memslots::register(Arc::clone(&vm), &memory, MemoryFlavour::Plain, 0)?;
    let memory_time = t.elapsed();
    let mut read_back_time = None;
    let read_back = |model: &mut FirmwareModel, vcpus: &[VcpuFd]| {
        let t = Instant::now();
        if model.read_back_vcpus(plan, vcpus)? > 0 {
            read_back_time = Some(t.elapsed());
        }
        Ok(())
    };
    let (model, vcpus, mut report) = drive(&kvm, &vm, plan, options, model, &memory, read_back)?;
    if let Some(took) = read_back_time {
        report.phase("read_back_vcpus", took);
    }
    report.phase("memory", memory_time);
    report.launch_digest = Some(model.launch_digest());
    Ok(ModelLaunch {
        launched: LaunchedVm {
            vcpus,
            memory,
            memslots,
            sev_device: None,
            vm,
            report,
        },
        model,
    })
}

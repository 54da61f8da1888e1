//! A software model of the AMD Secure Processor's SEV-SNP launch flow as
//! KVM exposes it, implementing [`SnpFirmware`](super::SnpFirmware) for tests and for dry runs
//! (the loader's `--backend model`).
//!
//! It enforces the command order (INIT2 once, before LAUNCH_START;
//! LAUNCH_START once; updates between start and finish), the INIT2
//! `vmsa_features` and policy checks, the LAUNCH_UPDATE preconditions
//! (page private, not updated twice, VMSA rules, VMSA page type only when
//! configured), the CPUID page check (with write-back), and at
//! LAUNCH_FINISH the ID block's digest and policy. It computes the launch
//! digest with its own PAGE_INFO / SHA-384 code.
//!
//! It is a model written from the published interface descriptions, not
//! the firmware: it was never compared against hardware, it does not check
//! signatures, and its CPUID check is an exact match against a list the
//! test provides.

//!
//! The model itself is behind the `firmware-model` feature (off by
//! default: it is for tests, dry runs and demos, not for launching guests);
//! [`ModelRejection`], part of [`super::SevError`], is always there.

#[cfg(any(test, feature = "firmware-model"))]
mod cpuid_check;
#[cfg(any(test, feature = "firmware-model"))]
mod digest;
#[cfg(any(test, feature = "firmware-model"))]
mod ranges;
mod rejection;

#[cfg(any(test, feature = "firmware-model"))]
pub use digest::KVM_INITIAL_VMSA_GPA;
#[cfg(any(test, feature = "firmware-model"))]
pub use firmware::*;
pub use rejection::ModelRejection;

/// The model: its configuration, phases and the [`SnpFirmware`](super::SnpFirmware)
/// implementation.
#[cfg(any(test, feature = "firmware-model"))]
mod firmware {
    use igvm_snp::{LaunchDigest, PageType, SevVmsa, SnpPolicy};
    use vm_memory::bitmap::BitmapSlice;
    use vmm_sys_util::errno::Error as Errno;
    use zerocopy::IntoBytes;

    use super::super::commands::{
        LaunchFinishInput, LaunchStartInput, LaunchUpdate, PAGE_SIZE, PrivateMemory, SevCommand,
        SnpFirmware, UpdateReport, VmsaPageTypeSupport,
    };
    use super::super::cpuid::CpuidFunction;
    use super::super::error::{CommandContext, SevError};
    use super::super::firmware_error::FirmwareError;
    use super::super::progress::{CallFailure, CallRequest, Remaining, run_update};
    use super::super::vmsa_check::check_launch_vmsa;
    use super::ModelRejection;
    use super::cpuid_check::{CpuidVerdict, check_cpuid_page, write_back};
    use super::digest::KVM_INITIAL_VMSA_GPA;
    use super::digest::ModelDigest;
    use super::ranges::RangeSet;
    use crate::launch::LaunchError;
    use crate::vmsa_regs;
    use crate::vmsa_sync::{VcpuSnapshot, sync_vmsa};

    /// SEV_FEATURES bit 5, DebugSwap.
    pub const SEV_FEATURE_DEBUG_SWAP: u64 = 1 << 5;
    /// SEV_FEATURES bit 9, SecureTSC.
    pub const SEV_FEATURE_SECURE_TSC: u64 = 1 << 9;

    /// What the modelled platform supports and how it behaves.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ModelConfig {
        /// The `vmsa_features` INIT2 accepts (KVM's `KVM_X86_SEV_VMSA_FEATURES`).
        /// Default: DebugSwap | SecureTSC, what current KVM can offer.
        pub supported_vmsa_features: u64,
        /// The policy bits LAUNCH_START accepts. Default: every bit the ABI
        /// defines (0..=25).
        pub supported_policy_bits: u64,
        /// Whether LAUNCH_UPDATE accepts the VMSA page type. Default: true.
        pub vmsa_page_type: bool,
        /// At most this many pages per LAUNCH_UPDATE call (partial progress);
        /// `None` (default): the whole range.
        pub max_pages_per_call: Option<u64>,
        /// The next this-many LAUNCH_UPDATE calls fail with `EAGAIN`.
        pub transient_failures: u32,
        /// The CPUID entries the "CPU" allows; a submitted entry with the same
        /// function and index but other registers is corrected and the page
        /// rejected.
        pub cpuid_expected: Vec<CpuidFunction>,
        /// Whether the modelled host has SMT active: LAUNCH_START then
        /// refuses a policy without SMT (POLICY_FAILURE). Default: true, as
        /// on most hosts.
        pub smt_active: bool,
        /// The modelled host's CPU sockets: with more than one, LAUNCH_START
        /// refuses SINGLE_SOCKET (POLICY_FAILURE). Default: 1.
        pub sockets: u32,
        /// The firmware's ABI version (major, minor): LAUNCH_START refuses
        /// a policy asking for a newer one (POLICY_FAILURE). Default: 1.55.
        pub firmware_abi: (u8, u8),
    }

    impl Default for ModelConfig {
        fn default() -> Self {
            ModelConfig {
                supported_vmsa_features: SEV_FEATURE_DEBUG_SWAP | SEV_FEATURE_SECURE_TSC,
                supported_policy_bits: SnpPolicy::KNOWN_BITS,
                vmsa_page_type: true,
                max_pages_per_call: None,
                transient_failures: 0,
                cpuid_expected: Vec::new(),
                smt_active: true,
                sockets: 1,
                firmware_abi: (1, 55),
            }
        }
    }

    /// Where the modelled launch is.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum ModelPhase {
        /// Nothing issued.
        New,
        /// INIT2 done.
        Initialized,
        /// LAUNCH_START done.
        Started,
        /// LAUNCH_FINISH done.
        Finished,
    }

    /// A run of pages the model measured, in order.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct MeasuredRun {
        /// Page type.
        pub page_type: PageType,
        /// First GPA.
        pub gpa: u64,
        /// Pages.
        pub pages: u64,
    }

    /// The software AMD-SP. See the module documentation.
    #[derive(Debug, Clone)]
    pub struct FirmwareModel {
        config: ModelConfig,
        phase: ModelPhase,
        vmsa_features: u64,
        policy: u64,
        private: RangeSet,
        updated: RangeSet,
        digest: ModelDigest,
        launch_update_calls: u64,
        update_ioctls: u64,
        transient_left: u32,
        vmsa_support: VmsaPageTypeSupport,
        measured: Vec<MeasuredRun>,
        kvm_vcpus: Option<Vec<VcpuSnapshot>>,
        kvm_vmsas: Option<Vec<SevVmsa>>,
    }

    impl Default for FirmwareModel {
        fn default() -> Self {
            FirmwareModel::new(ModelConfig::default())
        }
    }

    /// A page's failure in one call, with the CPUID write-back it causes.
    struct PageFailure {
        failure: CallFailure,
        cpuid_write_back: Option<Box<crate::sev::cpuid::SnpCpuidInfo>>,
    }

    fn reject(context: CommandContext, rejection: ModelRejection) -> SevError {
        let (errno, firmware) = rejection.kernel_result();
        SevError::ModelRejected {
            context,
            errno: Errno::new(errno),
            firmware,
            rejection: Box::new(rejection),
        }
    }

    fn call_failure(rejection: ModelRejection) -> CallFailure {
        let (errno, firmware) = rejection.kernel_result();
        CallFailure {
            errno: Errno::new(errno),
            firmware,
            rejection: Some(Box::new(rejection)),
        }
    }

    impl FirmwareModel {
        /// A fresh model.
        pub fn new(config: ModelConfig) -> Self {
            FirmwareModel {
                transient_left: config.transient_failures,
                config,
                phase: ModelPhase::New,
                vmsa_features: 0,
                policy: 0,
                private: RangeSet::default(),
                updated: RangeSet::default(),
                digest: ModelDigest::new(),
                launch_update_calls: 0,
                update_ioctls: 0,
                vmsa_support: VmsaPageTypeSupport::Unknown,
                measured: Vec::new(),
                kvm_vcpus: None,
                kvm_vmsas: None,
            }
        }

        /// The configuration.
        pub fn config(&self) -> &ModelConfig {
            &self.config
        }

        /// Where the launch is.
        pub fn phase(&self) -> ModelPhase {
            self.phase
        }

        /// The launch digest so far, computed by the model.
        pub fn launch_digest(&self) -> LaunchDigest {
            self.digest.value()
        }

        /// [`SnpFirmware::launch_update`] calls made.
        pub fn launch_update_calls(&self) -> u64 {
            self.launch_update_calls
        }

        /// Simulated LAUNCH_UPDATE ioctls (more than the calls with partial
        /// progress or transient failures).
        pub fn update_ioctls(&self) -> u64 {
            self.update_ioctls
        }

        /// The measured pages, in order, coalesced into runs.
        pub fn measured(&self) -> &[MeasuredRun] {
            &self.measured
        }

        /// Whether `gpa` was marked private.
        pub fn is_private(&self, gpa: u64) -> bool {
            self.private.contains(gpa)
        }

        /// The private ranges, merged, in order.
        pub fn private_ranges(&self) -> impl Iterator<Item = std::ops::Range<u64>> + '_ {
            self.private.iter().map(|(s, e)| s..e)
        }

        /// The vCPUs' state as KVM holds it at LAUNCH_FINISH (the path without
        /// the VMSA page type), in vCPU-index order. LAUNCH_FINISH builds each
        /// vCPU's VMSA from it as KVM does (`vmsa_sync::sync_vmsa`, with this
        /// model's INIT2 `vmsa_features`) and measures the pages, in this order,
        /// at [`KVM_INITIAL_VMSA_GPA`], before the ID block is checked. Without
        /// a launched VMSA page LAUNCH_FINISH refuses to run until it has been
        /// given ([`ModelRejection::NoVcpuState`]): the model cannot see the
        /// VM's vCPUs. [`FirmwareModel::read_back_vcpus`] reads them from KVM.
        pub fn set_kvm_vcpus(&mut self, vcpus: Vec<VcpuSnapshot>) {
            self.kvm_vcpus = Some(vcpus);
        }

        /// What a VMM driving the [`crate::launch::Launcher`] on the model
        /// calls after [`crate::launch::Launcher::update`] and before
        /// `finish`, with all of its vCPUs in index order (any iterator of
        /// `&VcpuFd`, wherever the VMM keeps them; none of them running, as
        /// none may before LAUNCH_FINISH): when no VMSA page
        /// was launched (the VMSA fallback), reads each vCPU back from KVM
        /// ([`VcpuSnapshot::read`], with the segment registers the launch
        /// wrote: the plan's VMSA's for vCPU 0, the reset ones for the APs,
        /// [`VcpuSnapshot::with_written_segments`]) and gives the states to
        /// [`FirmwareModel::set_kvm_vcpus`], as KVM would take them at
        /// LAUNCH_FINISH. With a launched VMSA page it does nothing: KVM
        /// builds no VMSA then. Returns how many vCPUs it read.
        ///
        /// # Errors
        /// [`LaunchError::VcpuCountMismatch`] when `vcpus` is not the plan's
        /// vCPU count (KVM measures one VMSA per vCPU the VM has);
        /// [`LaunchError::VcpuReadBack`] when a vCPU cannot be read back or
        /// does not hold what the launch wrote.
        pub fn read_back_vcpus<'v>(
            &mut self,
            plan: &igvm_snp::LaunchPlan<'_>,
            vcpus: impl IntoIterator<Item = &'v kvm_ioctls::VcpuFd>,
        ) -> Result<usize, LaunchError> {
            if self.vmsa_launched() {
                return Ok(0);
            }
            let vcpus: Vec<&kvm_ioctls::VcpuFd> = vcpus.into_iter().collect();
            let got = u32::try_from(vcpus.len()).unwrap_or(u32::MAX);
            if got != plan.vcpu_count() {
                return Err(LaunchError::VcpuCountMismatch {
                    what: "the VM",
                    got,
                    plan: plan.vcpu_count(),
                });
            }
            let states = (0u32..)
                .zip(vcpus)
                .map(|(vcpu, fd)| {
                    let read = || {
                        let snapshot = VcpuSnapshot::read(fd)?;
                        let written = if vcpu == 0 {
                            vmsa_regs::sregs(&plan.vmsa().vmsa, &snapshot.sregs)
                        } else {
                            vmsa_regs::ap_reset_sregs(&snapshot.sregs)
                        };
                        snapshot.with_written_segments(&written)
                    };
                    read().map_err(|source| LaunchError::VcpuReadBack { vcpu, source })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let read = states.len();
            self.set_kvm_vcpus(states);
            Ok(read)
        }

        /// The VMSAs LAUNCH_FINISH built from [`FirmwareModel::set_kvm_vcpus`]
        /// and measured, in vCPU order; empty before LAUNCH_FINISH and when no
        /// vCPU state was given.
        pub fn kvm_vmsas(&self) -> &[SevVmsa] {
            self.kvm_vmsas.as_deref().unwrap_or_default()
        }

        /// Whether a VMSA page was launched (KVM then builds no VMSA).
        fn vmsa_launched(&self) -> bool {
            self.measured.iter().any(|r| r.page_type == PageType::Vmsa)
        }

        fn record(&mut self, page_type: PageType, gpa: u64) {
            if let Some(last) = self.measured.last_mut() {
                let next = last
                    .gpa
                    .saturating_add(last.pages.saturating_mul(PAGE_SIZE));
                if last.page_type == page_type && next == gpa {
                    last.pages += 1;
                    return;
                }
            }
            self.measured.push(MeasuredRun {
                page_type,
                gpa,
                pages: 1,
            });
        }

        /// Checks one page without changing any state.
        fn check_page(
            &self,
            page_type: PageType,
            gpa: u64,
            page: Option<&[u8]>,
        ) -> Result<(), PageFailure> {
            let fail = |r| PageFailure {
                failure: call_failure(r),
                cpuid_write_back: None,
            };
            if !self.private.contains(gpa) {
                return Err(fail(ModelRejection::NotPrivate { gpa }));
            }
            if self.updated.contains(gpa) {
                return Err(fail(ModelRejection::AlreadyUpdated { gpa }));
            }
            let page = match (page_type, page) {
                (PageType::Zero, _) => return Ok(()),
                (_, Some(p)) => p,
                (_, None) => return Err(fail(ModelRejection::MissingSource { gpa })),
            };
            match page_type {
                PageType::Vmsa => check_launch_vmsa(gpa, page, self.vmsa_features)
                    .map_err(|problem| fail(ModelRejection::Vmsa { gpa, problem })),
                PageType::Cpuid => match check_cpuid_page(page, &self.config.cpuid_expected) {
                    CpuidVerdict::Valid => Ok(()),
                    CpuidVerdict::Invalid(write_back) => Err(PageFailure {
                        failure: CallFailure {
                            errno: Errno::new(libc::EIO),
                            firmware: FirmwareError::InvalidParam,
                            rejection: None,
                        },
                        cpuid_write_back: write_back,
                    }),
                },
                _ => Ok(()),
            }
        }

        /// One simulated KVM_SEV_SNP_LAUNCH_UPDATE ioctl. Like KVM, a failure
        /// after at least one page is reported as partial success; unlike KVM,
        /// the failing page's CPUID write-back happens only when it is the
        /// first page of the call.
        fn update_call<B: BitmapSlice>(
            &mut self,
            req: CallRequest<'_, B>,
        ) -> Result<Remaining, CallFailure> {
            self.update_ioctls += 1;
            if self.transient_left > 0 {
                self.transient_left -= 1;
                return Err(CallFailure {
                    errno: Errno::new(libc::EAGAIN),
                    firmware: FirmwareError::Success,
                    rejection: None,
                });
            }
            match self.phase {
                ModelPhase::New | ModelPhase::Initialized => {
                    return Err(call_failure(ModelRejection::UpdateBeforeStart));
                }
                ModelPhase::Finished => {
                    return Err(call_failure(ModelRejection::UpdateAfterFinish));
                }
                ModelPhase::Started => {}
            }
            if req.page_type == PageType::Vmsa && !self.config.vmsa_page_type {
                return Err(call_failure(ModelRejection::VmsaPageTypeUnsupported));
            }
            let limit = req
                .pages
                .min(self.config.max_pages_per_call.unwrap_or(u64::MAX).max(1));
            let mut processed = 0;
            // The firmware reads each source page once, into its own memory:
            // guest memory may change under a volatile slice, a copy cannot.
            let mut copy = [0u8; PAGE_SIZE as usize];
            for i in 0..limit {
                let gpa = (req.gfn + i) * PAGE_SIZE;
                let start = usize::try_from(i * PAGE_SIZE).unwrap_or(usize::MAX);
                let slice = req
                    .source
                    .as_ref()
                    .and_then(|s| s.subslice(start, PAGE_SIZE as usize).ok());
                let page = slice.as_ref().map(|s| {
                    s.copy_to(&mut copy[..]);
                    &mut copy
                });
                if let Err(f) = self.check_page(req.page_type, gpa, page.as_deref().map(|p| &p[..]))
                {
                    if i > 0 {
                        break;
                    }
                    if let (Some(table), Some(page), Some(slice)) =
                        (f.cpuid_write_back, page, slice)
                    {
                        write_back(&mut page[..], &table);
                        slice.copy_from(&page[..]);
                    }
                    return Err(f.failure);
                }
                let contents = match (req.page_type.measures_contents(), page) {
                    (true, Some(p)) => ModelDigest::page_hash(&p[..]),
                    _ => [0; 48],
                };
                self.digest.fold(req.page_type.value(), gpa, contents);
                self.updated.insert(gpa, gpa + PAGE_SIZE);
                self.record(req.page_type, gpa);
                processed += 1;
            }
            Ok(Remaining {
                gfn: req.gfn + processed,
                pages: req.pages - processed,
            })
        }
    }

    impl SnpFirmware for FirmwareModel {
        fn init2(&mut self, vmsa_features: u64) -> Result<(), SevError> {
            let context = CommandContext::command(SevCommand::Init2);
            match self.phase {
                ModelPhase::New => {}
                ModelPhase::Initialized => {
                    return Err(reject(context, ModelRejection::Init2Repeated));
                }
                _ => return Err(reject(context, ModelRejection::Init2AfterStart)),
            }
            let supported = self.config.supported_vmsa_features;
            if vmsa_features & !supported != 0 {
                return Err(reject(
                    context,
                    ModelRejection::UnsupportedVmsaFeatures {
                        requested: vmsa_features,
                        supported,
                    },
                ));
            }
            self.vmsa_features = vmsa_features;
            self.phase = ModelPhase::Initialized;
            Ok(())
        }

        /// The model has no VMM of its own: the same checks and state as
        /// [`SnpFirmware::init2`].
        fn init2_done(&mut self, vmsa_features: u64) -> Result<(), SevError> {
            self.init2(vmsa_features)
        }

        fn launch_start(&mut self, input: &LaunchStartInput) -> Result<(), SevError> {
            let context = CommandContext::command(SevCommand::LaunchStart);
            match self.phase {
                ModelPhase::Initialized => {}
                ModelPhase::New => return Err(reject(context, ModelRejection::StartBeforeInit2)),
                _ => return Err(reject(context, ModelRejection::StartRepeated)),
            }
            let policy = input.policy;
            let unsupported = policy & !self.config.supported_policy_bits;
            if unsupported != 0 {
                return Err(reject(
                    context,
                    ModelRejection::PolicyUnsupportedBits {
                        policy,
                        unsupported,
                    },
                ));
            }
            if policy & SnpPolicy::RESERVED_MBO == 0 {
                return Err(reject(
                    context,
                    ModelRejection::PolicyReservedBitClear { policy },
                ));
            }
            // The firmware's own checks (SNP ABI, SNP_LAUNCH_START).
            let abi = (((policy >> 8) & 0xFF) as u8, (policy & 0xFF) as u8);
            if abi > self.config.firmware_abi {
                return Err(reject(
                    context,
                    ModelRejection::PolicyAbiTooNew {
                        policy,
                        firmware: self.config.firmware_abi,
                    },
                ));
            }
            if self.config.smt_active && policy & SnpPolicy::SMT == 0 {
                return Err(reject(context, ModelRejection::PolicySmtActive { policy }));
            }
            if self.config.sockets > 1 && policy & SnpPolicy::SINGLE_SOCKET != 0 {
                return Err(reject(
                    context,
                    ModelRejection::PolicySingleSocket {
                        policy,
                        sockets: self.config.sockets,
                    },
                ));
            }
            self.policy = policy;
            self.phase = ModelPhase::Started;
            Ok(())
        }

        fn launch_update<B: BitmapSlice>(
            &mut self,
            update: &mut LaunchUpdate<'_, B>,
        ) -> Result<UpdateReport, SevError> {
            self.launch_update_calls += 1;
            let page_type = update.page_type();
            update.check().map_err(|problem| SevError::Input {
                context: CommandContext::update(update.gpa(), update.pages(), page_type),
                problem,
            })?;
            let probe = self.vmsa_support != VmsaPageTypeSupport::Supported;
            let result = run_update(update, probe, |req| self.update_call(req));
            self.vmsa_support.observe(page_type, &result);
            result
        }

        fn launch_finish(&mut self, input: &LaunchFinishInput<'_>) -> Result<(), SevError> {
            let context = CommandContext::command(SevCommand::LaunchFinish);
            match self.phase {
                ModelPhase::Started => {}
                ModelPhase::Finished => {
                    return Err(reject(context, ModelRejection::FinishRepeated));
                }
                _ => return Err(reject(context, ModelRejection::FinishBeforeStart)),
            }
            if self.kvm_vmsas.is_none() && !self.vmsa_launched() {
                // KVM's snp_launch_update_vmsa(): sev_es_sync_vmsa() for every
                // vCPU, each page measured as a VMSA at INITIAL_VMSA_GPA.
                let Some(states) = &self.kvm_vcpus else {
                    return Err(reject(context, ModelRejection::NoVcpuState));
                };
                let vmsas = states
                    .iter()
                    .enumerate()
                    .map(|(vcpu, s)| {
                        sync_vmsa(s, self.vmsa_features).map_err(|refused| {
                            reject(context, ModelRejection::KvmVmsaRefused { vcpu, refused })
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                for vmsa in &vmsas {
                    let hash = ModelDigest::page_hash(vmsa.as_bytes());
                    self.digest
                        .fold(PageType::Vmsa.value(), KVM_INITIAL_VMSA_GPA, hash);
                }
                self.kvm_vmsas = Some(vmsas);
            }
            if let Some(id) = input.id {
                // The firmware checks the signatures first: the ID key's
                // over the ID block, and with AUTH_KEY_EN the author key's
                // over the ID key.
                let verify = |auth| {
                    igvm_snp::id_sign::verify_id_auth(id.block, auth).map_err(|e| e.to_string())
                };
                let signed = match (id.author_key_enabled, id.auth.author_key_present()) {
                    (true, true) => verify(id.auth),
                    (true, false) => {
                        Err("AUTH_KEY_EN is set, but the ID auth has no author key".to_string())
                    }
                    (false, _) => {
                        // Without AUTH_KEY_EN the author fields are ignored.
                        let mut id_key_only = *id.auth;
                        id_key_only.author_key = zerocopy::FromZeros::new_zeroed();
                        verify(&id_key_only)
                    }
                };
                if let Err(reason) = signed {
                    return Err(reject(context, ModelRejection::IdSignature { reason }));
                }
                let launch = self.digest.value();
                if id.block.ld != launch.0 {
                    return Err(reject(
                        context,
                        ModelRejection::IdBlockDigestMismatch {
                            id_block: LaunchDigest(id.block.ld),
                            launch,
                        },
                    ));
                }
                if id.block.policy != self.policy {
                    return Err(reject(
                        context,
                        ModelRejection::IdBlockPolicyMismatch {
                            id_block: id.block.policy,
                            launch: self.policy,
                        },
                    ));
                }
            }
            self.phase = ModelPhase::Finished;
            Ok(())
        }

        fn vmsa_page_type(&self) -> VmsaPageTypeSupport {
            self.vmsa_support
        }
    }

    impl PrivateMemory for FirmwareModel {
        /// Like `KVM_SET_MEMORY_ATTRIBUTES`: `EINVAL` for a zero, unaligned or
        /// overflowing range.
        fn set_private(&mut self, gpa: u64, size: u64) -> Result<(), SevError> {
            let end = gpa.checked_add(size);
            match end {
                Some(end) if size != 0 && gpa % PAGE_SIZE == 0 && size % PAGE_SIZE == 0 => {
                    self.private.insert(gpa, end);
                    Ok(())
                }
                _ => Err(SevError::SetPrivate {
                    gpa,
                    size,
                    errno: Errno::new(libc::EINVAL),
                }),
            }
        }
    }
}

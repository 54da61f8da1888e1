//! The SEV-SNP launch commands as one narrow trait, [`SnpFirmware`], with
//! typed inputs, implemented by the KVM backend ([`super::KvmSnp`]) and by
//! the software model ([`super::FirmwareModel`]). An executor drives either
//! the same way:
//!
//! ```text
//! init2(vmsa_features)              KVM_SEV_INIT2, before any vCPU exists
//! set_private(gpa, size) ...        KVM_SET_MEMORY_ATTRIBUTES(PRIVATE), [`PrivateMemory`]
//! launch_start(&LaunchStartInput)   KVM_SEV_SNP_LAUNCH_START
//! launch_update(&mut LaunchUpdate)  KVM_SEV_SNP_LAUNCH_UPDATE, one plan step each,
//!                                   looping over partial progress internally
//! launch_finish(&LaunchFinishInput) KVM_SEV_SNP_LAUNCH_FINISH
//! ```
//!
//! Inputs that carry user addresses borrow their buffers, so an address
//! handed to the kernel cannot outlive its memory.

use std::fmt;

use igvm_snp::{IdAuth, IdBlock, LaunchFinish, PageType, SnpPolicy};
use vm_memory::VolatileSlice;
use vm_memory::bitmap::BitmapSlice;

use super::cpuid::CpuidDiff;
use super::error::{InputError, SevError};

/// Bytes in a page.
pub const PAGE_SIZE: u64 = 4096;

/// The value of the proposed `KVM_SEV_SNP_PAGE_TYPE_VMSA` (the firmware's
/// `SNP_PAGE_TYPE_VMSA`). Not in upstream `kvm-bindings`; current kernels
/// reject it with `EINVAL` before changing any state.
pub const KVM_SEV_SNP_PAGE_TYPE_VMSA: u8 = 2;

/// The GHCB protocol version requested at KVM_SEV_INIT2 (SNP needs 2).
pub const GHCB_VERSION: u16 = 2;

/// The SEV commands this crate issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SevCommand {
    /// `KVM_SEV_INIT2` (22).
    Init2,
    /// `KVM_SEV_SNP_LAUNCH_START` (100).
    LaunchStart,
    /// `KVM_SEV_SNP_LAUNCH_UPDATE` (101).
    LaunchUpdate,
    /// `KVM_SEV_SNP_LAUNCH_FINISH` (102).
    LaunchFinish,
}

impl SevCommand {
    /// The `sev_cmd_id` KVM expects in `kvm_sev_cmd.id`.
    pub fn id(self) -> u32 {
        match self {
            SevCommand::Init2 => kvm_bindings::sev_cmd_id_KVM_SEV_INIT2,
            SevCommand::LaunchStart => kvm_bindings::sev_cmd_id_KVM_SEV_SNP_LAUNCH_START,
            SevCommand::LaunchUpdate => kvm_bindings::sev_cmd_id_KVM_SEV_SNP_LAUNCH_UPDATE,
            SevCommand::LaunchFinish => kvm_bindings::sev_cmd_id_KVM_SEV_SNP_LAUNCH_FINISH,
        }
    }

    /// The command's name, e.g. `SNP_LAUNCH_UPDATE`.
    pub fn name(self) -> &'static str {
        match self {
            SevCommand::Init2 => "SEV_INIT2",
            SevCommand::LaunchStart => "SNP_LAUNCH_START",
            SevCommand::LaunchUpdate => "SNP_LAUNCH_UPDATE",
            SevCommand::LaunchFinish => "SNP_LAUNCH_FINISH",
        }
    }
}

impl fmt::Display for SevCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Input of SNP_LAUNCH_START.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchStartInput {
    /// The guest policy, raw (the backend checks it, as the firmware does).
    pub policy: u64,
    /// Guest-OS-visible workarounds.
    pub gosvw: [u8; 16],
}

impl LaunchStartInput {
    /// From a validated policy, with no workarounds.
    pub fn new(policy: SnpPolicy) -> Self {
        LaunchStartInput {
            policy: policy.bits(),
            gosvw: [0; 16],
        }
    }
}

/// Whether the CPUID page is submitted again after the firmware rejected
/// it. Default: [`CpuidRetry::Never`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CpuidRetry {
    /// Fail with [`SevError::CpuidRejected`] and the diff.
    #[default]
    Never,
    /// Submit the firmware-corrected page once more; on success the
    /// correction is returned in [`UpdateReport::cpuid_corrected`] (the
    /// caller should then also correct the vCPUs' CPUID).
    OnceWithCorrection,
}

/// Input of SNP_LAUNCH_UPDATE: `pages` pages of `page_type` at `gpa`.
///
/// `source` holds `pages * 4096` bytes, or is `None` for ZERO pages. It is
/// mutable because for a rejected CPUID page the kernel writes the
/// firmware-corrected page back into it. `B` is the source slice's dirty
/// bitmap (none by default; a slice of guest memory with one, e.g. of a
/// VMM's `GuestMemoryMmap<AtomicBitmap>`, has the type
/// `vm_memory::bitmap::BS<'_, AtomicBitmap>` here, and gets such writes
/// marked dirty).
#[derive(Debug)]
pub struct LaunchUpdate<'a, B = ()> {
    gpa: u64,
    pages: u64,
    page_type: PageType,
    source: Option<VolatileSlice<'a, B>>,
    cpuid_retry: CpuidRetry,
}

impl<'a> LaunchUpdate<'a> {
    /// A LAUNCH_UPDATE of `pages` pages at `gpa`, from a source without a
    /// dirty bitmap ([`LaunchUpdate::with_bitmap`] takes one with).
    ///
    /// # Errors
    /// As [`LaunchUpdate::with_bitmap`].
    pub fn new(
        gpa: u64,
        pages: u64,
        page_type: PageType,
        source: Option<VolatileSlice<'a>>,
    ) -> Result<Self, InputError> {
        LaunchUpdate::with_bitmap(gpa, pages, page_type, source)
    }

    /// A LAUNCH_UPDATE whose pages are the whole of `source`, a buffer of
    /// the caller's.
    ///
    /// # Errors
    /// As [`LaunchUpdate::new`]; `source` must be a non-empty multiple of
    /// 4096 bytes.
    pub fn with_source(
        gpa: u64,
        page_type: PageType,
        source: &'a mut [u8],
    ) -> Result<Self, InputError> {
        LaunchUpdate::with_volatile_source(gpa, page_type, source.into())
    }

    /// A LAUNCH_UPDATE of `pages` ZERO pages.
    ///
    /// # Errors
    /// As [`LaunchUpdate::new`].
    pub fn zero(gpa: u64, pages: u64) -> Result<Self, InputError> {
        LaunchUpdate::new(gpa, pages, PageType::Zero, None)
    }
}

impl<'a, B: BitmapSlice> LaunchUpdate<'a, B> {
    /// A LAUNCH_UPDATE of `pages` pages at `gpa`.
    ///
    /// # Errors
    /// [`InputError`] when `gpa` is not page-aligned, `pages` is 0, the
    /// range overflows, or `source` is not exactly `pages * 4096` bytes.
    /// The source is a volatile slice (e.g. of guest memory from
    /// `vm_memory::GuestMemoryBackend::get_slice`, or `(&mut buf[..]).into()`):
    /// the kernel reads it, and writes a corrected CPUID page back into it.
    /// Whether the page type needs a source is checked when the command is
    /// issued ([`LaunchUpdate::check`]).
    pub fn with_bitmap(
        gpa: u64,
        pages: u64,
        page_type: PageType,
        source: Option<VolatileSlice<'a, B>>,
    ) -> Result<Self, InputError> {
        if gpa % PAGE_SIZE != 0 {
            return Err(InputError::UnalignedGpa { gpa });
        }
        if pages == 0 {
            return Err(InputError::NoPages);
        }
        let len = pages
            .checked_mul(PAGE_SIZE)
            .filter(|len| gpa.checked_add(*len).is_some())
            .ok_or(InputError::RangeOverflow { gpa, pages })?;
        if let Some(src) = &source {
            if u64::try_from(src.len()).ok() != Some(len) {
                return Err(InputError::SourceLength {
                    len: src.len(),
                    pages,
                });
            }
        }
        Ok(LaunchUpdate {
            gpa,
            pages,
            page_type,
            source,
            cpuid_retry: CpuidRetry::Never,
        })
    }

    /// A LAUNCH_UPDATE whose pages are the whole of `source`, e.g. guest
    /// memory from `vm_memory::GuestMemoryBackend::get_slice`.
    ///
    /// # Errors
    /// As [`LaunchUpdate::with_source`].
    pub fn with_volatile_source(
        gpa: u64,
        page_type: PageType,
        source: VolatileSlice<'a, B>,
    ) -> Result<Self, InputError> {
        let len = u64::try_from(source.len()).unwrap_or(u64::MAX);
        if len % PAGE_SIZE != 0 {
            return Err(InputError::SourceLength {
                len: source.len(),
                pages: len / PAGE_SIZE,
            });
        }
        LaunchUpdate::with_bitmap(gpa, len / PAGE_SIZE, page_type, Some(source))
    }

    /// Sets what happens when the firmware rejects a CPUID page.
    pub fn cpuid_retry(mut self, retry: CpuidRetry) -> Self {
        self.cpuid_retry = retry;
        self
    }

    /// First GPA.
    pub fn gpa(&self) -> u64 {
        self.gpa
    }

    /// Number of pages.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// One past the last GPA.
    pub fn end(&self) -> u64 {
        // Cannot overflow: checked in `new`.
        self.gpa + self.pages * PAGE_SIZE
    }

    /// The page type.
    pub fn page_type(&self) -> PageType {
        self.page_type
    }

    /// The CPUID retry choice.
    pub fn cpuid_retry_choice(&self) -> CpuidRetry {
        self.cpuid_retry
    }

    /// The source (after a CPUID rejection: the corrected page).
    pub fn source(&self) -> Option<VolatileSlice<'a, B>> {
        self.source.clone()
    }

    /// A copy of the source's first page, e.g. a VMSA to check.
    pub(crate) fn first_source_page(&self) -> Option<Box<[u8; PAGE_SIZE as usize]>> {
        let source = self.source.as_ref()?;
        let mut page = Box::new([0u8; PAGE_SIZE as usize]);
        (source.copy_to(&mut page[..]) == page.len()).then_some(page)
    }

    /// Checks what the kernel checks before touching any state: ZERO pages
    /// carry no source, every other type does, and a VMSA is one page.
    ///
    /// # Errors
    /// [`InputError::SourceForZero`], [`InputError::MissingSource`] or
    /// [`InputError::VmsaPageCount`].
    pub fn check(&self) -> Result<(), InputError> {
        match (self.page_type, self.source.is_some()) {
            (PageType::Zero, true) => return Err(InputError::SourceForZero),
            (t, false) if t != PageType::Zero => {
                return Err(InputError::MissingSource { page_type: t });
            }
            _ => {}
        }
        if self.page_type == PageType::Vmsa && self.pages != 1 {
            return Err(InputError::VmsaPageCount { pages: self.pages });
        }
        Ok(())
    }
}

/// What one [`SnpFirmware::launch_update`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateReport {
    /// Pages processed (all of them, on success).
    pub pages: u64,
    /// `KVM_MEMORY_ENCRYPT_OP` calls issued, including retried ones.
    pub ioctl_calls: u32,
    /// Calls retried after `EAGAIN` / `EINTR`.
    pub transient_retries: u32,
    /// The correction accepted on a CPUID retry
    /// ([`CpuidRetry::OnceWithCorrection`]).
    pub cpuid_corrected: Option<CpuidDiff>,
}

/// The ID block and its authentication structure for LAUNCH_FINISH.
#[derive(Debug, Clone, Copy)]
pub struct IdInput<'a> {
    /// The 96-byte ID block.
    pub block: &'a IdBlock,
    /// The 4096-byte ID authentication structure.
    pub auth: &'a IdAuth,
    /// Whether the author key in `auth` is used (`auth_key_en`).
    pub author_key_enabled: bool,
}

/// Input of SNP_LAUNCH_FINISH.
#[derive(Debug, Clone, Copy)]
pub struct LaunchFinishInput<'a> {
    /// ID block and ID auth, when the launch is to be checked against one.
    pub id: Option<IdInput<'a>>,
    /// Disables the VCEK for attestation (`vcek_disabled`).
    pub vcek_disabled: bool,
    /// 32 bytes of host data placed in the attestation report.
    pub host_data: [u8; 32],
}

impl<'a> LaunchFinishInput<'a> {
    /// Finish with no ID block.
    pub fn new(host_data: [u8; 32]) -> Self {
        LaunchFinishInput {
            id: None,
            vcek_disabled: false,
            host_data,
        }
    }

    /// Borrows a launch plan's finish inputs (`plan.finish()`).
    ///
    /// # Errors
    /// [`InputError::IdBlockWithoutAuth`] when an ID block has no ID
    /// authentication structure (KVM reads both when the ID block is
    /// enabled).
    pub fn from_plan(finish: &'a LaunchFinish) -> Result<Self, InputError> {
        let id = match (&finish.id_block, &finish.id_auth) {
            (None, _) => None,
            (Some(block), Some(auth)) => Some(IdInput {
                block,
                auth,
                author_key_enabled: finish.author_key_enabled,
            }),
            (Some(_), None) => return Err(InputError::IdBlockWithoutAuth),
        };
        Ok(LaunchFinishInput {
            id,
            vcek_disabled: false,
            host_data: finish.host_data,
        })
    }
}

/// Whether LAUNCH_UPDATE accepts the VMSA page type (2).
///
/// No capability number is known for the proposed kernel support, so
/// backends find out by trying: current kernels reject type 2 with
/// `EINVAL` in their first parameter check, before any state changes. The
/// backends check every other field first (shape, source, one page, the
/// VMSA's VMPL and SEV_FEATURES against INIT2, LAUNCH_START done), so that
/// `EINVAL` on a VMSA page is taken to mean "unsupported" (see
/// [`SevError::VmsaPageTypeUnsupported`]). What they cannot check is the
/// memory: on a kernel with the page type, a VMSA GPA outside a
/// guest_memfd memslot also gives `EINVAL` (one that is not private gives
/// `EIO`, as every failure inside `kvm_gmem_populate` does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VmsaPageTypeSupport {
    /// No VMSA page has been submitted yet.
    #[default]
    Unknown,
    /// A VMSA page was accepted.
    Supported,
    /// A VMSA page was rejected with `EINVAL`: use KVM's own VMSAs
    /// (measured at LAUNCH_FINISH).
    Unsupported,
}

impl VmsaPageTypeSupport {
    /// Updates the knowledge from a LAUNCH_UPDATE's outcome.
    pub(crate) fn observe(&mut self, page_type: PageType, result: &Result<UpdateReport, SevError>) {
        match (page_type, result) {
            (PageType::Vmsa, Ok(_)) => *self = VmsaPageTypeSupport::Supported,
            (_, Err(SevError::VmsaPageTypeUnsupported { .. })) => {
                *self = VmsaPageTypeSupport::Unsupported;
            }
            _ => {}
        }
    }
}

/// The SEV-SNP launch commands.
///
/// Implemented by [`super::KvmSnp`] (the real ioctls) and
/// [`super::FirmwareModel`] (a software model for tests and dry runs).
pub trait SnpFirmware {
    /// KVM_SEV_INIT2 with these VMSA features (SEV_FEATURES without
    /// SNPActive, which KVM adds) and GHCB version 2. Must come before any
    /// vCPU is created.
    ///
    /// # Errors
    /// [`SevError`] with the errno and firmware status.
    fn init2(&mut self, vmsa_features: u64) -> Result<(), SevError>;

    /// Records that the VMM issued KVM_SEV_INIT2 itself, with these VMSA
    /// features (a VMM that sets up its SNP VM its own way). Nothing is
    /// sent; later checks (a VMSA page's SEV features) use the features.
    ///
    /// # Errors
    /// The model refuses what it would refuse for [`SnpFirmware::init2`].
    fn init2_done(&mut self, vmsa_features: u64) -> Result<(), SevError>;

    /// SNP_LAUNCH_START.
    ///
    /// # Errors
    /// [`SevError`] with the errno and firmware status.
    fn launch_start(&mut self, input: &LaunchStartInput) -> Result<(), SevError>;

    /// SNP_LAUNCH_UPDATE of the whole range, looping while the kernel
    /// reports partial progress and retrying on `EAGAIN` / `EINTR`; CPUID
    /// pages one per ioctl, so that the firmware's refusal of any of them
    /// is an error rather than a corrected page launched by the next call.
    ///
    /// # Errors
    /// [`SevError`] naming the remaining GPA range, page type, errno and
    /// firmware status; for a rejected CPUID page,
    /// [`SevError::CpuidRejected`] with the entry diff; for a VMSA page
    /// the kernel does not accept, [`SevError::VmsaPageTypeUnsupported`].
    ///
    /// An implementation that writes into the source (a corrected CPUID
    /// page) marks what it wrote in the source's dirty bitmap `B`, as
    /// vm-memory's volatile writes do; a write through the raw address, as
    /// the kernel's, must be marked by hand. (Generic over `B`, the trait
    /// is not object safe.)
    fn launch_update<B: BitmapSlice>(
        &mut self,
        update: &mut LaunchUpdate<'_, B>,
    ) -> Result<UpdateReport, SevError>;

    /// SNP_LAUNCH_FINISH.
    ///
    /// # Errors
    /// [`SevError`] with the errno and firmware status, e.g.
    /// `BAD_MEASUREMENT` when the ID block's digest is not the launch's.
    fn launch_finish(&mut self, input: &LaunchFinishInput<'_>) -> Result<(), SevError>;

    /// What is known about the VMSA page type so far.
    fn vmsa_page_type(&self) -> VmsaPageTypeSupport;
}

/// Marking guest memory private (`KVM_SET_MEMORY_ATTRIBUTES` with
/// `KVM_MEMORY_ATTRIBUTE_PRIVATE`), which every LAUNCH_UPDATE range needs
/// beforehand. The software model tracks it to enforce that rule.
pub trait PrivateMemory {
    /// Marks `[gpa, gpa + size)` private. Both must be page-aligned.
    ///
    /// # Errors
    /// [`SevError::SetPrivate`] with the errno.
    fn set_private(&mut self, gpa: u64, size: u64) -> Result<(), SevError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_errors_are_typed() {
        let mut page = vec![0u8; 4096];
        assert_eq!(
            LaunchUpdate::new(0x1001, 1, PageType::Normal, None).unwrap_err(),
            InputError::UnalignedGpa { gpa: 0x1001 }
        );
        assert_eq!(LaunchUpdate::zero(0, 0).unwrap_err(), InputError::NoPages);
        assert_eq!(
            LaunchUpdate::zero(u64::MAX - 0xfff, 2).unwrap_err(),
            InputError::RangeOverflow {
                gpa: u64::MAX - 0xfff,
                pages: 2
            }
        );
        assert_eq!(
            LaunchUpdate::new(0, 2, PageType::Normal, Some((&mut page[..]).into())).unwrap_err(),
            InputError::SourceLength {
                len: 4096,
                pages: 2
            }
        );
        assert_eq!(
            LaunchUpdate::with_source(0, PageType::Normal, &mut page[..100]).unwrap_err(),
            InputError::SourceLength { len: 100, pages: 0 }
        );
        let u = LaunchUpdate::new(0, 1, PageType::Zero, Some((&mut page[..]).into())).unwrap();
        assert_eq!(u.check(), Err(InputError::SourceForZero));
        let u = LaunchUpdate::new(0, 1, PageType::Cpuid, None).unwrap();
        assert_eq!(
            u.check(),
            Err(InputError::MissingSource {
                page_type: PageType::Cpuid
            })
        );
        let u = LaunchUpdate::new(0, 2, PageType::Vmsa, None).unwrap();
        assert_eq!(
            u.check(),
            Err(InputError::MissingSource {
                page_type: PageType::Vmsa
            })
        );
        let mut two = vec![0u8; 8192];
        let u = LaunchUpdate::with_source(0, PageType::Vmsa, &mut two[..]).unwrap();
        assert_eq!(u.check(), Err(InputError::VmsaPageCount { pages: 2 }));
        let u = LaunchUpdate::zero(0x2000, 3).unwrap();
        assert_eq!((u.gpa(), u.end(), u.check()), (0x2000, 0x5000, Ok(())));
    }

    #[test]
    fn page_type_values_match_kvm() {
        use kvm_bindings::*;
        let kvm = [
            (PageType::Normal, KVM_SEV_SNP_PAGE_TYPE_NORMAL),
            (PageType::Zero, KVM_SEV_SNP_PAGE_TYPE_ZERO),
            (PageType::Unmeasured, KVM_SEV_SNP_PAGE_TYPE_UNMEASURED),
            (PageType::Secrets, KVM_SEV_SNP_PAGE_TYPE_SECRETS),
            (PageType::Cpuid, KVM_SEV_SNP_PAGE_TYPE_CPUID),
        ];
        for (t, v) in kvm {
            assert_eq!(u32::from(t.value()), v, "{t}");
        }
        assert_eq!(PageType::Vmsa.value(), KVM_SEV_SNP_PAGE_TYPE_VMSA);
    }

    #[test]
    fn command_ids_match_the_uapi() {
        assert_eq!(SevCommand::Init2.id(), 22);
        assert_eq!(SevCommand::LaunchStart.id(), 100);
        assert_eq!(SevCommand::LaunchUpdate.id(), 101);
        assert_eq!(SevCommand::LaunchFinish.id(), 102);
    }
}

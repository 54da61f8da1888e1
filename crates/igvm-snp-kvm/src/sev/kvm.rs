//! The SEV-SNP launch commands on a real KVM VM (`KVM_MEMORY_ENCRYPT_OP`
//! with the kvm-bindings payloads and the `/dev/sev` fd).
//!
//! Cannot run on a host without SEV-SNP; reviewed against the uAPI notes
//! (`kvm_sev_init` with GHCB version 2, `kvm_sev_snp_launch_start`,
//! `kvm_sev_snp_launch_update` looped until `len` is 0, the 88-byte
//! `kvm_sev_snp_launch_finish`).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use igvm_snp::PageType;
use kvm_bindings::{KVM_MEMORY_ATTRIBUTE_PRIVATE, kvm_memory_attributes};
use kvm_ioctls::VmFd;
use vm_memory::VolatileSlice;
use vm_memory::bitmap::BitmapSlice;
use vmm_sys_util::errno::Error as Errno;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::commands::{
    LaunchFinishInput, LaunchStartInput, LaunchUpdate, PAGE_SIZE, PrivateMemory, SevCommand,
    SnpFirmware, UpdateReport, VmsaPageTypeSupport,
};
use super::error::{CommandContext, InputError, SevError};
use super::firmware_error::FirmwareError;
use super::ioctl::{Payload, SevPayload, encrypt_op};
use super::progress::{CallFailure, CallRequest, Remaining, run_update};
use super::vmsa_check::check_launch_vmsa;

/// The SEV firmware device.
pub const SEV_DEVICE: &str = "/dev/sev";

/// A page-aligned page, for bouncing unaligned sources (KVM requires
/// `uaddr` to be 4 KiB-aligned).
#[repr(C, align(4096))]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout)]
struct AlignedPage([u8; 4096]);

/// The SEV-SNP launch commands on a KVM VM created with type
/// `KVM_X86_SNP_VM` (4).
///
/// ```no_run
/// use igvm_snp_kvm::sev::{KvmSnp, LaunchStartInput, PrivateMemory, SnpFirmware};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let kvm = kvm_ioctls::Kvm::new()?;
/// let vm = kvm.create_vm_with_type(u64::from(kvm_bindings::KVM_X86_SNP_VM))?;
/// let mut snp = KvmSnp::open(&vm)?;
/// snp.init2(0)?; // before any vCPU exists
/// // ... guest_memfd-backed memslots ...
/// snp.set_private(0, 2 << 20)?;
/// snp.launch_start(&LaunchStartInput { policy: 0x30000, gosvw: [0; 16] })?;
/// // ... launch_update per plan step, launch_finish ...
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct KvmSnp<'vm> {
    vm: &'vm VmFd,
    sev: File,
    vmsa_features: Option<u64>,
    started: bool,
    vmsa_support: VmsaPageTypeSupport,
}

impl<'vm> KvmSnp<'vm> {
    /// Commands for `vm`, with `sev` an open `/dev/sev` (passed to KVM as
    /// `sev_fd`).
    pub fn new(vm: &'vm VmFd, sev: File) -> Self {
        KvmSnp {
            vm,
            sev,
            vmsa_features: None,
            started: false,
            vmsa_support: VmsaPageTypeSupport::Unknown,
        }
    }

    /// Opens [`SEV_DEVICE`] read-write (close-on-exec) for `vm`, which must
    /// have been created as `KVM_X86_SNP_VM` (KVM refuses INIT2 otherwise).
    ///
    /// # Errors
    /// The open's I/O error, its message naming the device.
    pub fn open(vm: &'vm VmFd) -> io::Result<Self> {
        let sev = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(SEV_DEVICE)
            .map_err(|e| io::Error::new(e.kind(), format!("{SEV_DEVICE}: {e}")))?;
        Ok(KvmSnp::new(vm, sev))
    }

    /// The `/dev/sev` file given to KVM, for the VM's lifetime: KVM keeps
    /// its fd number from SNP_LAUNCH_START and issues the guest's SNP guest
    /// requests (attestation reports, …) through it while the guest runs,
    /// so it must stay open, at that number, until the VM is gone.
    pub fn into_sev_file(self) -> File {
        self.sev
    }

    fn issue<T: SevPayload>(
        &self,
        payload: &mut Payload<'_, T>,
        context: &CommandContext,
    ) -> Result<(), CallFailure> {
        encrypt_op(self.vm, self.sev.as_raw_fd(), payload, context)
    }

    fn single<T: SevPayload>(
        &self,
        payload: &mut Payload<'_, T>,
        command: SevCommand,
    ) -> Result<(), SevError> {
        let context = CommandContext::command(command);
        self.issue(payload, &context).map_err(|f| SevError::Failed {
            context,
            errno: f.errno,
            firmware: f.firmware,
            completed_pages: 0,
            ioctl_calls: 1,
        })
    }

    /// One KVM_SEV_SNP_LAUNCH_UPDATE ioctl.
    fn update_call<B: BitmapSlice>(
        &self,
        req: CallRequest<'_, B>,
    ) -> Result<Remaining, CallFailure> {
        let context = CommandContext::update(req.gfn * PAGE_SIZE, req.pages, req.page_type);
        let page_type = req.page_type;
        let source = req.source.clone();
        let mut payload =
            Payload::launch_update(req.gfn, req.pages, req.page_type.value(), req.source)
                // `run_update` passes exactly `pages` pages of source.
                .ok_or(CallFailure {
                    errno: Errno::new(libc::EFAULT),
                    firmware: FirmwareError::Success,
                    rejection: None,
                })?;
        let result = self.issue(&mut payload, &context);
        mark_kernel_write(page_type, source.as_ref(), result.is_err());
        result?;
        Ok(payload.remaining())
    }
}

/// After an SNP_LAUNCH_UPDATE call: for a refused CPUID page the kernel has
/// written the firmware's corrected table into the source through its user
/// address, past any dirty bitmap, so the source is marked dirty here. No
/// other failure, and no success, writes the source.
fn mark_kernel_write<B: BitmapSlice>(
    page_type: PageType,
    source: Option<&VolatileSlice<'_, B>>,
    failed: bool,
) {
    if let (true, PageType::Cpuid, Some(source)) = (failed, page_type, source) {
        source.bitmap().mark_dirty(0, source.len());
    }
}

fn is_page_aligned<B: BitmapSlice>(s: &VolatileSlice<'_, B>) -> bool {
    s.ptr_guard().as_ptr() as usize % PAGE_SIZE as usize == 0
}

/// [`run_update`], but a source that is not 4 KiB-aligned (KVM requires
/// `uaddr` to be) goes through a page-aligned copy, which is copied back
/// afterwards so the caller sees a CPUID page the firmware corrected.
fn run_aligned<B, F, G>(
    update: &mut LaunchUpdate<'_, B>,
    probe: bool,
    call: F,
    bounced_call: G,
) -> Result<UpdateReport, SevError>
where
    B: BitmapSlice,
    F: FnMut(CallRequest<'_, B>) -> Result<Remaining, CallFailure>,
    G: FnMut(CallRequest<'_>) -> Result<Remaining, CallFailure>,
{
    let (gpa, pages, page_type) = (update.gpa(), update.pages(), update.page_type());
    let retry = update.cpuid_retry_choice();
    match update.source() {
        Some(source) if !is_page_aligned(&source) => {
            let pages_len = source.len().div_ceil(PAGE_SIZE as usize);
            let mut bounce: Vec<AlignedPage> =
                (0..pages_len).map(|_| AlignedPage([0; 4096])).collect();
            source.copy_to(bounce.as_mut_bytes());
            let bytes = &mut bounce.as_mut_bytes()[..source.len()];
            let mut inner = LaunchUpdate::new(gpa, pages, page_type, Some(bytes.into()))
                .map_err(|problem| SevError::Input {
                    context: CommandContext::update(gpa, pages, page_type),
                    problem,
                })?
                .cpuid_retry(retry);
            let result = run_update(&mut inner, probe, bounced_call);
            // Only a CPUID page can come back changed (refused, or corrected
            // and retried); copying back anything else would rewrite (and
            // mark dirty) pages as they were.
            if page_type == PageType::Cpuid {
                source.copy_from(&bounce.as_bytes()[..source.len()]);
            }
            result
        }
        _ => run_update(update, probe, call),
    }
}

impl SnpFirmware for KvmSnp<'_> {
    fn init2(&mut self, vmsa_features: u64) -> Result<(), SevError> {
        self.single(&mut Payload::init2(vmsa_features), SevCommand::Init2)?;
        self.vmsa_features = Some(vmsa_features);
        Ok(())
    }

    fn init2_done(&mut self, vmsa_features: u64) -> Result<(), SevError> {
        self.vmsa_features = Some(vmsa_features);
        Ok(())
    }

    fn launch_start(&mut self, input: &LaunchStartInput) -> Result<(), SevError> {
        let mut payload = Payload::launch_start(input.policy, input.gosvw);
        self.single(&mut payload, SevCommand::LaunchStart)?;
        self.started = true;
        Ok(())
    }

    /// Checks the input (and a VMSA page against the INIT2 features) so
    /// that an `EINVAL` on a VMSA page can only mean the page type is
    /// unsupported or the memory is not set up; then loops over partial
    /// progress, bouncing an unaligned source (see `run_aligned`).
    fn launch_update<B: BitmapSlice>(
        &mut self,
        update: &mut LaunchUpdate<'_, B>,
    ) -> Result<UpdateReport, SevError> {
        let (gpa, pages, page_type) = (update.gpa(), update.pages(), update.page_type());
        let context = CommandContext::update(gpa, pages, page_type);
        let input = |problem| SevError::Input { context, problem };
        update.check().map_err(input)?;
        if let (PageType::Vmsa, Some(features), Some(page)) =
            (page_type, self.vmsa_features, update.first_source_page())
        {
            check_launch_vmsa(gpa, &page[..], features).map_err(|p| input(InputError::Vmsa(p)))?;
        }
        // Before LAUNCH_START KVM answers EINVAL to every update, so only
        // after it does EINVAL on a VMSA page say anything about the type.
        let probe = self.started && self.vmsa_support != VmsaPageTypeSupport::Supported;
        let this = &*self;
        let result = run_aligned(
            update,
            probe,
            |req| this.update_call(req),
            |req| this.update_call(req),
        );
        self.vmsa_support.observe(page_type, &result);
        result
    }

    fn launch_finish(&mut self, input: &LaunchFinishInput<'_>) -> Result<(), SevError> {
        let mut payload = Payload::launch_finish(input.id, input.vcek_disabled, input.host_data);
        self.single(&mut payload, SevCommand::LaunchFinish)
    }

    fn vmsa_page_type(&self) -> VmsaPageTypeSupport {
        self.vmsa_support
    }
}

impl PrivateMemory for KvmSnp<'_> {
    /// `KVM_SET_MEMORY_ATTRIBUTES` with `KVM_MEMORY_ATTRIBUTE_PRIVATE`.
    fn set_private(&mut self, gpa: u64, size: u64) -> Result<(), SevError> {
        let attributes = kvm_memory_attributes {
            address: gpa,
            size,
            attributes: u64::from(KVM_MEMORY_ATTRIBUTE_PRIVATE),
            flags: 0,
        };
        tracing::debug!(target: "igvm_snp_kvm::sev", "set private [{gpa:#x}, +{size:#x})");
        self.vm
            .set_memory_attributes(attributes)
            .map_err(|errno| SevError::SetPrivate { gpa, size, errno })
    }
}

#[cfg(test)]
mod tests {
    use std::mem::{align_of, offset_of, size_of};

    use super::*;

    #[test]
    fn kvm_memory_attributes_layout() {
        assert_eq!(size_of::<kvm_memory_attributes>(), 32);
        assert_eq!(offset_of!(kvm_memory_attributes, address), 0);
        assert_eq!(offset_of!(kvm_memory_attributes, size), 8);
        assert_eq!(offset_of!(kvm_memory_attributes, attributes), 16);
        assert_eq!(offset_of!(kvm_memory_attributes, flags), 24);
        assert_eq!(KVM_MEMORY_ATTRIBUTE_PRIVATE, 8);
    }

    #[test]
    fn unaligned_sources_are_bounced_and_copied_back() {
        let mut backing = vec![0u8; 3 * 4096];
        let start = backing.as_ptr().align_offset(4096) + 8;
        let source = &mut backing[start..start + 4096];
        source[0] = 1; // CPUID count
        let mut u = LaunchUpdate::with_source(0x80e000, PageType::Cpuid, source).unwrap();
        let mut seen_aligned = Vec::new();
        let call = std::cell::RefCell::new(|req: CallRequest<'_>| {
            let s = req.source.unwrap();
            seen_aligned.push(is_page_aligned(&s));
            // entries[0].eax, as the firmware corrects it
            s.subslice(16 + 24, 1).unwrap().copy_from(&[0x42u8]);
            Err(CallFailure {
                errno: Errno::new(libc::EIO),
                firmware: FirmwareError::InvalidParam,
                rejection: None,
            })
        });
        // Without a bitmap, the direct and the bounced call are the same.
        let e = run_aligned(
            &mut u,
            false,
            |req| (call.borrow_mut())(req),
            |req| (call.borrow_mut())(req),
        )
        .unwrap_err();
        assert_eq!(seen_aligned, [true]);
        let SevError::CpuidRejected { diff, .. } = e else {
            panic!("{e}");
        };
        assert_eq!(diff.mismatches[0].expected.eax, 0x42);
        assert_eq!(backing[start + 16 + 24], 0x42, "written back to the caller");
        assert_eq!(backing[start - 1], 0, "nothing outside the source");
    }

    #[test]
    fn aligned_sources_are_passed_as_they_are() {
        let mut pages: Vec<AlignedPage> = (0..2).map(|_| AlignedPage([3; 4096])).collect();
        let bytes = pages.as_mut_bytes();
        let addr = bytes.as_ptr() as usize;
        let mut u = LaunchUpdate::with_source(0x1000, PageType::Normal, bytes).unwrap();
        let mut seen = Vec::new();
        let call = std::cell::RefCell::new(|req: CallRequest<'_>| {
            seen.push(req.source.unwrap().ptr_guard().as_ptr() as usize);
            Ok(Remaining {
                gfn: req.gfn + req.pages,
                pages: 0,
            })
        });
        run_aligned(
            &mut u,
            false,
            |req| (call.borrow_mut())(req),
            |req| (call.borrow_mut())(req),
        )
        .unwrap();
        assert_eq!(seen, [addr]);
    }

    /// The kernel's in-place CPUID correction bypasses a dirty bitmap:
    /// marked for a refused CPUID page, and only then.
    #[test]
    fn a_kernel_corrected_cpuid_source_is_marked_dirty() {
        use vm_memory::bitmap::{AtomicBitmap, Bitmap};
        use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
        let memory =
            GuestMemoryMmap::<AtomicBitmap>::from_ranges(&[(GuestAddress(0), 0x4000)]).unwrap();
        let page = |gpa| memory.get_slice(GuestAddress(gpa), 4096).unwrap();
        let dirty = |gpa| page(gpa).bitmap().dirty_at(0);
        mark_kernel_write(PageType::Cpuid, Some(&page(0x1000)), false);
        mark_kernel_write(PageType::Normal, Some(&page(0x2000)), true);
        mark_kernel_write(PageType::Cpuid, Some(&page(0x3000)), true);
        assert_eq!(
            [dirty(0x1000), dirty(0x2000), dirty(0x3000)],
            [false, false, true]
        );
    }

    #[test]
    fn bounce_pages_are_page_aligned() {
        assert_eq!(
            (size_of::<AlignedPage>(), align_of::<AlignedPage>()),
            (4096, 4096)
        );
        let v: Vec<AlignedPage> = (0..3).map(|_| AlignedPage([0; 4096])).collect();
        assert_eq!(v.as_bytes().as_ptr() as usize % 4096, 0);
        assert_eq!(v.as_bytes().len(), 3 * 4096);
    }
}

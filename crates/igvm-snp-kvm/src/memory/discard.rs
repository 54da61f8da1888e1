//! Giving guest memory back to the host once its contents are not needed.

use igvm_snp::{GpaRange, PAGE_SIZE};
use vm_memory::bitmap::Bitmap;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use super::MemoryError;

const PAGE: u64 = PAGE_SIZE as u64;

/// Discards `range` of `memory`: the host frees its pages and the range
/// reads as zero afterwards, as fresh memory does. `madvise(MADV_DONTNEED)`
/// for private anonymous regions ([`super::anonymous`]'s),
/// `madvise(MADV_REMOVE)` for shared ones (a memfd or shared memory file
/// the VMM maps: the file itself loses the range's pages, so every other
/// mapping of it reads zeros there too); a private mapping of a file is
/// refused, since discarding it would bring back the file's contents
/// instead of zeros. Locked memory is refused by the kernel. Like any other
/// writer of guest memory, it does not wait for a running vCPU: what a vCPU
/// writes into the range meanwhile may be lost. With a dirty bitmap
/// (`GuestMemoryMmap<AtomicBitmap>`, …) the range is marked dirty: its
/// contents changed.
///
/// A windowed launch ([`crate::launch::Launcher::load_windowed`]) discards
/// each window after its SNP_LAUNCH_UPDATE: with guest_memfd memory the
/// launched page then lives in the guest_memfd and the shared view of that
/// GPA is no longer what the guest reads. (Not for a shared view that is a
/// mapping of the guest_memfd itself, where KVM allows that: MADV_REMOVE
/// would punch the launched page out of the guest_memfd too.)
///
/// # Errors
/// [`MemoryError::BadPageRange`] when the range is not page aligned or not
/// within one region; [`MemoryError::Discard`] when the mapping cannot be
/// discarded or `madvise` fails (e.g. locked memory, or a huge-page
/// mapping and a range not aligned to its pages).
///
/// ```
/// use igvm_snp::GpaRange;
/// use igvm_snp_kvm::memory::{Bytes, GuestAddress, anonymous, discard};
/// let mem = anonymous(&[GpaRange::new(0x1000, 0x2000)])?;
/// mem.write_slice(&[0xF4; 16], GuestAddress(0x2000))?;
/// discard(&mem, GpaRange::new(0x2000, 0x1000))?;
/// let mut back = [0xFFu8; 16];
/// mem.read_slice(&mut back, GuestAddress(0x2000))?;
/// assert_eq!(back, [0; 16]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn discard<B: Bitmap>(memory: &GuestMemoryMmap<B>, range: GpaRange) -> Result<(), MemoryError> {
    let bad = |reason| MemoryError::BadPageRange {
        gpa: range.gpa,
        len: range.size,
        reason,
    };
    if range.size == 0 {
        return Ok(());
    }
    if range.gpa % PAGE != 0 || range.size % PAGE != 0 {
        return Err(bad("not 4 KiB aligned"));
    }
    let region = memory
        .find_region(GuestAddress(range.gpa))
        .ok_or(MemoryError::Unmapped {
            gpa: range.gpa,
            len: range.size,
        })?;
    let offset = range.gpa - region.start_addr().0;
    let in_region = offset
        .checked_add(range.size)
        .is_some_and(|end| end <= region.len());
    if !in_region {
        return Err(bad("not within one memory region"));
    }
    let flags = region.flags();
    let advice = if flags & libc::MAP_SHARED != 0 {
        libc::MADV_REMOVE
    } else if region.file_offset().is_none() {
        libc::MADV_DONTNEED
    } else {
        return Err(MemoryError::Discard {
            gpa: range.gpa,
            size: range.size,
            reason: "a private mapping of a file would read back the file, not zeros".into(),
        });
    };
    let (Ok(offset), Ok(len)) = (usize::try_from(offset), usize::try_from(range.size)) else {
        return Err(bad("larger than the host address space"));
    };
    // `offset + len <= region.len()`, the size of the region's mapping.
    let addr = region.as_ptr().wrapping_add(offset);
    // SAFETY: `addr..addr + len` lies inside the mapping of `region`
    // (checked above), which stays mapped while `memory` is borrowed, so
    // madvise touches no other mapping. The advice only replaces the pages'
    // contents with zeros (private anonymous: fresh zero pages on the next
    // access; shared: the backing pages are freed, see madvise(2)): guest
    // memory is only ever reached through vm-memory's volatile accesses,
    // which already allow for a vCPU changing it at any time, and no Rust
    // reference into it exists.
    let rc = unsafe { libc::madvise(addr.cast(), len, advice) };
    // Marked whether or not it failed: a failing MADV_REMOVE may have
    // punched part of the range already.
    region.bitmap().mark_dirty(offset, len);
    if rc != 0 {
        return Err(MemoryError::Discard {
            gpa: range.gpa,
            size: range.size,
            reason: format!(
                "madvise({}) failed: {}",
                if advice == libc::MADV_REMOVE {
                    "MADV_REMOVE"
                } else {
                    "MADV_DONTNEED"
                },
                std::io::Error::last_os_error()
            ),
        });
    }
    Ok(())
}

//! A whole file mapped read-only, as a byte slice: the input of
//! `igvm_snp::LaunchPlan::new` without copying the file into a buffer.
//!
//! Reading a 64 MiB image with `std::fs::read` spends about a quarter of a
//! `measure` run in the kernel, zeroing the new buffer and copying the page
//! cache into it (BENCHMARKS.md). A private read-only mapping shares the page
//! cache instead, and [`MappedFile::release`] lets a reader that is done with
//! part of the file (the hashing threads of
//! `igvm_snp::LaunchPlan::launch_digest_releasing`) drop it from memory.
//!
//! The caveat of every file mapping, and why [`MappedFile::open`] is
//! `unsafe`: the bytes are the file's, so another process that writes the
//! file while it is mapped changes what the slice shows (a `&[u8]` whose
//! bytes change is undefined behaviour), and one that truncates it makes a
//! later read of the lost pages fault (`SIGBUS`). A `MAP_PRIVATE` mapping is
//! no snapshot: pages not yet read, and pages dropped by
//! [`MappedFile::release`], are read from the file as it is then. Map only
//! files nothing else writes while they are mapped, e.g. an image being
//! measured. What is launched should come from one snapshot of the bytes
//! that is both hashed and loaded: read the file with [`std::fs::read`] for
//! that (the loader's `launch` and `run` do).

use std::fs::File;
use std::io;
use std::ops::Deref;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::ptr::NonNull;

/// A file mapped `PROT_READ`, `MAP_PRIVATE`, unmapped on drop. Derefs to
/// the file's bytes.
///
/// ```no_run
/// # fn main() -> std::io::Result<()> {
/// // SAFETY: nothing writes or truncates guest.igvm while it is mapped.
/// let image = unsafe { igvm_snp_kvm::mapped_file::MappedFile::open("guest.igvm".as_ref())? };
/// let bytes: &[u8] = &image;
/// println!("{} bytes", bytes.len());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MappedFile {
    /// Start of the mapping; dangling (and never dereferenced with a
    /// non-zero length) for an empty file, which cannot be mapped.
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned by this value and only read; moving the
// owner moves the only handle that unmaps it.
unsafe impl Send for MappedFile {}
// SAFETY: shared references give out only `&[u8]` of read-only memory.
unsafe impl Sync for MappedFile {}

impl MappedFile {
    /// Maps the whole file at `path`. Pages are mapped on first touch, a
    /// fault per 64 KiB: with `MAP_POPULATE` the calling thread mapped all
    /// of a 64 MiB image (6 ms) before any hashing started, while on first
    /// touch the hashing threads share that work (BENCHMARKS.md).
    ///
    /// # Safety
    /// Nothing may write to or truncate the file while the returned value
    /// lives (this process included): the slice it hands out would change
    /// under its borrowers, or fault. See the [module](self) documentation.
    ///
    /// # Errors
    /// Opening or `fstat` of the file fails, the file does not fit in the
    /// address space, or `mmap` fails (e.g. a file system without mappings;
    /// read such files with [`std::fs::read`]).
    pub unsafe fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let len = usize::try_from(file.metadata()?.len())
            .map_err(|_| io::Error::from(io::ErrorKind::FileTooLarge))?;
        if len == 0 {
            return Ok(MappedFile {
                ptr: NonNull::dangling(),
                len: 0,
            });
        }
        // SAFETY: a new private read-only mapping at an address of the
        // kernel's choice aliases no Rust object; the result is checked
        // below. The descriptor may be closed after mmap returns.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        match NonNull::new(ptr.cast::<u8>()) {
            Some(ptr) => Ok(MappedFile { ptr, len }),
            None => Err(io::Error::from(io::ErrorKind::AddrNotAvailable)),
        }
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self
    }

    /// Drops the pages wholly inside `part` (a sub-slice of [`Self::bytes`])
    /// from this process's resident set; a later read maps them again from
    /// the file, so `part` and every other borrow keep reading the same
    /// bytes. Pages `part` only partly covers, and slices from elsewhere,
    /// are left alone.
    ///
    /// Made for [`igvm_snp::LaunchPlan::launch_digest_releasing`]: measuring
    /// an image then holds a few MiB of it at a time instead of all of it,
    /// and exits with nothing left to unmap (BENCHMARKS.md). This is
    /// advice to the kernel: a failure is logged, not returned.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, PlanOptions};
    /// use igvm_snp_kvm::mapped_file::MappedFile;
    /// // SAFETY: nothing writes or truncates guest.igvm while it is mapped.
    /// let image = unsafe { MappedFile::open("guest.igvm".as_ref())? };
    /// let config = LaunchConfig::new(1, vec![GpaRange::new(0, 1 << 30)]);
    /// let plan = LaunchPlan::new(&image, &config, PlanOptions::default())?;
    /// println!("{}", plan.launch_digest_releasing(|part| image.release_around(part)));
    /// # Ok(()) }
    /// ```
    pub fn release(&self, part: &[u8]) {
        let Some((start, end)) = self.addresses_of(part) else {
            return;
        };
        let base = self.ptr.as_ptr().addr();
        // x86-64 pages; on a system with larger ones, madvise refuses an
        // unaligned start (logged below) and rounds a length up, dropping
        // at worst a page that is read again from the file.
        let page = igvm_snp::PAGE_SIZE;
        let first = start.next_multiple_of(page);
        let last = end - end % page;
        if first >= last {
            return;
        }
        let offset = first - base;
        // SAFETY: `offset..offset + (last - first)` is a page-aligned range
        // inside this mapping (checked above), so madvise touches no other
        // memory. The mapping is private, read-only and never written, so it
        // holds no copy-on-write pages: MADV_DONTNEED only drops page-table
        // entries, and the next read maps the file's page again (madvise(2):
        // private file mappings are repopulated from the mapped file). The
        // bytes any borrow reads stay the file's, as before the call.
        let rc = unsafe {
            libc::madvise(
                self.ptr.as_ptr().add(offset).cast(),
                last - first,
                libc::MADV_DONTNEED,
            )
        };
        if rc != 0 {
            tracing::debug!(
                offset,
                len = last - first,
                error = %io::Error::last_os_error(),
                "madvise(MADV_DONTNEED) of a mapped file failed"
            );
        }
    }

    /// [`MappedFile::release`] of `part` widened by [`FAULT_AROUND`] on each
    /// side (within the mapping). Reading a page maps its neighbours in the
    /// page cache along with it (the kernel's fault-around, 64 KiB by
    /// default), so threads that read and release neighbouring batches map
    /// back pages another thread has already released, and the exact
    /// release leaves them resident: the loader's `measure` of a 64 MiB
    /// image peaked at 26–73 MiB that way, depending on scheduling, and at
    /// 15 MiB with this (debug build, 2 cores and 1). Pages of the widening
    /// that another thread still reads are mapped again on its next read,
    /// with the same bytes.
    pub fn release_around(&self, part: &[u8]) {
        let Some((start, end)) = self.addresses_of(part) else {
            return;
        };
        let base = self.ptr.as_ptr().addr();
        let from = start.saturating_sub(FAULT_AROUND).max(base) - base;
        let to = end.saturating_add(FAULT_AROUND).min(base + self.len) - base;
        self.release(&self[from..to]);
    }

    /// The first and one-past-last address of `part`, when it lies within
    /// the mapping.
    fn addresses_of(&self, part: &[u8]) -> Option<(usize, usize)> {
        let base = self.ptr.as_ptr().addr();
        let start = part.as_ptr().addr();
        let end = start.checked_add(part.len())?;
        (start >= base && end <= base + self.len).then_some((start, end))
    }
}

/// The widening of [`MappedFile::release_around`]: Linux's default
/// `fault_around_bytes`.
pub const FAULT_AROUND: usize = 64 << 10;

impl Deref for MappedFile {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + len` is the live readable mapping made in
        // `open` (or a dangling pointer with length 0), kept mapped until
        // `self` drops, which the borrow does not outlive. The mapping is
        // read-only, so nothing writes through it; that no one writes or
        // truncates the file itself while `self` lives (any process, this
        // one included, through any descriptor) is the contract the caller
        // of the unsafe `open` took on, and is what keeps the bytes
        // unchanged and readable for the borrow.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        // SAFETY: `ptr`/`len` are exactly the mapping created in `open`, and
        // no borrow of it can outlive `self`.
        let rc = unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        if rc != 0 {
            tracing::error!(
                len = self.len,
                error = %io::Error::last_os_error(),
                "munmap of a mapped file failed"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn temp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("igvm-snp-mapped-{}-{name}", std::process::id()));
        let mut f = File::create(&path).unwrap();
        f.write_all(bytes).unwrap();
        path
    }

    /// Maps a file of this test's own, which nothing else writes.
    fn open(path: &Path) -> io::Result<MappedFile> {
        // SAFETY: each test maps a file it made itself under a name with
        // the process id and the test's name, and neither writes nor
        // truncates it while it is mapped.
        unsafe { MappedFile::open(path) }
    }

    #[test]
    fn maps_the_file_bytes() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let path = temp("data", &data);
        let m = open(&path).unwrap();
        assert_eq!(m.bytes(), &data[..]);
        assert_eq!(m.len(), 10_000);
        drop(m);
        std::fs::remove_file(path).unwrap();
    }

    /// The resident size of the mapping starting at `addr`, from
    /// /proc/self/smaps, in KiB.
    fn resident_kib(addr: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let head = format!("{addr:x}-");
        let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&head));
        assert!(lines.next().is_some(), "mapping at {addr:#x} not in smaps");
        let rss = lines.find(|l| l.starts_with("Rss:")).unwrap();
        rss.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Released pages leave the resident set, and reading them again gives
    /// the file's bytes; pages a part only touches, and slices from
    /// elsewhere, stay.
    #[test]
    fn release_drops_whole_pages_and_keeps_the_bytes() {
        let data: Vec<u8> = (0..64 * 4096u32).map(|i| (i % 253) as u8).collect();
        let path = temp("release", &data);
        let m = open(&path).unwrap();
        let addr = m.bytes().as_ptr().addr();
        let sum = |b: &[u8]| b.iter().map(|&x| u64::from(x)).sum::<u64>();
        let expected = sum(&data);
        assert_eq!(sum(m.bytes()), expected);
        assert_eq!(resident_kib(addr), 256, "every page read");

        m.release(&data[..4096 * 8]); // not the mapping's bytes
        assert_eq!(resident_kib(addr), 256);
        m.release(&m[100..4096 + 100]); // covers no page wholly
        assert_eq!(resident_kib(addr), 256);
        m.release(&m[4096 * 8 - 1..4096 * 40 + 1]); // pages 8..40
        assert_eq!(resident_kib(addr), 256 - 32 * 4);
        m.release(&m);
        assert_eq!(resident_kib(addr), 0);

        assert_eq!(m.bytes(), &data[..], "read back from the file");
        assert_eq!(resident_kib(addr), 256);
        drop(m);
        std::fs::remove_file(path).unwrap();
    }

    /// `release_around` also drops the 16 pages on each side, within the
    /// mapping.
    #[test]
    fn release_around_takes_the_fault_around_neighbours() {
        let data: Vec<u8> = (0..64 * 4096u32).map(|i| (i % 251) as u8).collect();
        let path = temp("release_around", &data);
        let m = open(&path).unwrap();
        let addr = m.bytes().as_ptr().addr();
        assert_eq!(m.bytes(), &data[..]);
        assert_eq!(resident_kib(addr), 256);
        m.release_around(&m[4096 * 20..4096 * 21]); // pages 4..37
        assert_eq!(resident_kib(addr), 256 - 33 * 4);
        assert_eq!(m.bytes(), &data[..]);
        m.release_around(&m[4096 * 2 + 1..4096 * 3]); // pages 0..18
        assert_eq!(resident_kib(addr), 256 - 19 * 4);
        drop(m);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn empty_file_is_an_empty_slice() {
        let path = temp("empty", &[]);
        let m = open(&path).unwrap();
        assert!(m.is_empty());
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn missing_file_is_an_error() {
        let e = open(Path::new("/nonexistent/igvm-snp/none.igvm")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn directory_is_an_error() {
        assert!(open(&std::env::temp_dir()).is_err());
    }
}

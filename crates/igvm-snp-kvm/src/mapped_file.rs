//! A whole file mapped read-only, as a byte slice: the input of
//! `igvm_snp::LaunchPlan::new` without copying the file into a buffer.
//!
//! Reading a 64 MiB image with `std::fs::read` spends about a quarter of a
//! `measure` run in the kernel, zeroing the new buffer and copying the page
//! cache into it (BENCHMARKS.md). A private read-only mapping shares the page
//! cache instead.
//!
//! The one caveat of every file mapping: the bytes are the file's, so
//! another process that writes the file while it is mapped changes what the
//! slice shows, and one that truncates it makes a later read of the lost
//! pages fault (`SIGBUS`). Map only files nothing else is writing, e.g. an
//! image being measured or launched; otherwise read them with
//! [`std::fs::read`].

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
/// let image = igvm_snp_kvm::mapped_file::MappedFile::open("guest.igvm".as_ref())?;
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
    /// # Errors
    /// Opening or `fstat` of the file fails, the file does not fit in the
    /// address space, or `mmap` fails (e.g. a file system without mappings;
    /// read such files with [`std::fs::read`]).
    pub fn open(path: &Path) -> io::Result<Self> {
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
}

impl Deref for MappedFile {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + len` is the live readable mapping made in
        // `open` (or a dangling pointer with length 0), kept mapped until
        // `self` drops, which the borrow outlives not. The file is opened
        // read-only and mapped privately, so this process cannot write it;
        // the module documentation states the caveat about other writers.
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

    #[test]
    fn maps_the_file_bytes() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let path = temp("data", &data);
        let m = MappedFile::open(&path).unwrap();
        assert_eq!(m.bytes(), &data[..]);
        assert_eq!(m.len(), 10_000);
        drop(m);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn empty_file_is_an_empty_slice() {
        let path = temp("empty", &[]);
        let m = MappedFile::open(&path).unwrap();
        assert!(m.is_empty());
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn missing_file_is_an_error() {
        let e = MappedFile::open(Path::new("/nonexistent/igvm-snp/none.igvm")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn directory_is_an_error() {
        assert!(MappedFile::open(&std::env::temp_dir()).is_err());
    }
}

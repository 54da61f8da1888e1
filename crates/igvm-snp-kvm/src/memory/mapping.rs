//! One anonymous shared mapping of host memory, unmapped on drop.

use std::io;
use std::ptr::NonNull;

/// An anonymous `MAP_SHARED` mapping, readable and writable, owned.
///
/// The mapping backs guest RAM. The host only touches it through the
/// borrow-checked accessors below; the guest may write it while a vCPU runs,
/// which is why nothing here hands out references across a run (the native
/// runner and the SNP executor only write before running).
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is exclusively owned memory; moving the owner to
// another thread moves the only handle to it.
unsafe impl Send for Mapping {}
// SAFETY: shared references only give out `&[u8]`; mutation needs `&mut`.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes (a non-zero multiple of the page size) of zeroed
    /// memory.
    pub(crate) fn new(len: usize) -> io::Result<Self> {
        if len == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        // SAFETY: an anonymous mapping at an address of the kernel's choice
        // aliases no existing Rust object; the result is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        match NonNull::new(ptr.cast::<u8>()) {
            Some(ptr) => Ok(Mapping { ptr, len }),
            None => Err(io::Error::from(io::ErrorKind::AddrNotAvailable)),
        }
    }

    /// Host virtual address of the first byte.
    pub(crate) fn host_addr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The bytes `offset..offset + len`, or `None` when out of bounds.
    pub(crate) fn slice(&self, offset: usize, len: usize) -> Option<&[u8]> {
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // SAFETY: `offset..end` lies within the live mapping (checked above),
        // which is readable; the shared borrow of `self` keeps it mapped and
        // excludes host writers through `slice_mut`.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(offset), len) })
    }

    /// The bytes `offset..offset + len` for writing, or `None` when out of
    /// bounds.
    pub(crate) fn slice_mut(&mut self, offset: usize, len: usize) -> Option<&mut [u8]> {
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // SAFETY: `offset..end` lies within the live, writable mapping
        // (checked above); the exclusive borrow of `self` makes this the
        // only host reference to it for its lifetime.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(offset), len) })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping created in `new`, and
        // no borrow of it can outlive `self`. The owner (GuestMemory) removes
        // the KVM memslot before dropping, or leaks the mapping instead.
        let rc = unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        if rc != 0 {
            tracing::error!(
                addr = self.host_addr(),
                len = self.len,
                error = %io::Error::last_os_error(),
                "munmap of guest memory failed"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_and_bounds_checked() {
        let mut m = Mapping::new(8192).unwrap();
        assert_eq!(m.len(), 8192);
        assert!(m.slice(0, 8192).unwrap().iter().all(|&b| b == 0));
        m.slice_mut(4095, 2).unwrap().copy_from_slice(&[1, 2]);
        assert_eq!(m.slice(4094, 4).unwrap(), &[0, 1, 2, 0]);
        assert!(m.slice(8192, 1).is_none());
        assert!(m.slice_mut(1, 8192).is_none());
        assert!(m.slice(usize::MAX, 2).is_none());
        assert!(Mapping::new(0).is_err());
    }
}

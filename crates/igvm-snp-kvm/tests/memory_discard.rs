//! `memory::discard` on each kind of mapping a VMM may bring: private
//! anonymous (the pages read as zero again), a shared file mapping (the
//! file's pages are punched out, so the file reads zero too), a private
//! file mapping (refused: the file's bytes would come back, not zeros),
//! locked memory (the kernel's refusal reported, the bytes kept), and
//! ranges that are not page aligned or span regions (refused).

use std::io::{Read, Seek, SeekFrom};

use igvm_snp::GpaRange;
use igvm_snp_kvm::memory::{Bytes, GuestAddress, GuestMemoryMmap, MemoryError, anonymous, discard};
use igvm_snp_test_support::scratch_file;
use vm_memory::mmap::MmapRegionBuilder;
use vm_memory::{FileOffset, GuestRegionMmap};

fn read(mem: &GuestMemoryMmap, gpa: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0xEE; len];
    mem.read_slice(&mut v, GuestAddress(gpa)).unwrap();
    v
}

#[test]
fn anonymous_memory_reads_zero_after_discard_and_neighbours_keep_theirs() {
    let mem = anonymous(&[GpaRange::new(0x10000, 0x4000)]).unwrap();
    mem.write_slice(&[0xAB; 0x4000], GuestAddress(0x10000))
        .unwrap();
    discard(&mem, GpaRange::new(0x11000, 0x2000)).unwrap();
    assert_eq!(read(&mem, 0x10000, 0x1000), vec![0xAB; 0x1000]);
    assert_eq!(read(&mem, 0x11000, 0x2000), vec![0; 0x2000]);
    assert_eq!(read(&mem, 0x13000, 0x1000), vec![0xAB; 0x1000]);
}

#[test]
fn a_shared_file_mapping_is_punched_out() {
    let (path, file) = scratch_file("discard-shared", 0x3000, 0x5A);
    let mem = GuestMemoryMmap::<()>::from_ranges_with_files(&[(
        GuestAddress(0x1000),
        0x3000,
        Some(FileOffset::new(file.try_clone().unwrap(), 0)),
    )])
    .unwrap();
    discard(&mem, GpaRange::new(0x2000, 0x1000)).unwrap();
    assert_eq!(read(&mem, 0x1000, 0x1000), vec![0x5A; 0x1000]);
    assert_eq!(read(&mem, 0x2000, 0x1000), vec![0; 0x1000]);
    // The file itself lost the page: another mapping of it sees zeros.
    let mut f = file;
    let mut on_disk = vec![0xEE; 0x3000];
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_exact(&mut on_disk).unwrap();
    assert_eq!(on_disk[0x1000..0x2000], [0; 0x1000]);
    assert_eq!(on_disk[..0x1000], [0x5A; 0x1000]);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_private_file_mapping_is_refused() {
    let (path, file) = scratch_file("discard-private", 0x2000, 0x5A);
    let region = MmapRegionBuilder::new(0x2000)
        .with_file_offset(FileOffset::new(file, 0))
        .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
        .with_mmap_flags(libc::MAP_PRIVATE)
        .build()
        .unwrap();
    let mem = GuestMemoryMmap::<()>::from_regions(vec![
        GuestRegionMmap::new(region, GuestAddress(0)).unwrap(),
    ])
    .unwrap();
    mem.write_slice(&[1; 16], GuestAddress(0)).unwrap();
    let err = discard(&mem, GpaRange::new(0, 0x1000)).unwrap_err();
    assert!(
        matches!(
            err,
            MemoryError::Discard {
                gpa: 0,
                size: 0x1000,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("private mapping of a file"),
        "{err}"
    );
    // Nothing was discarded.
    assert_eq!(read(&mem, 0, 16), vec![1; 16]);
    std::fs::remove_file(path).unwrap();
}

/// madvise(2) refuses MADV_DONTNEED on locked pages (EINVAL): the error
/// names the range and the advice, and the guest's bytes stay.
#[test]
fn a_failing_madvise_is_reported_and_keeps_the_bytes() {
    let region = match MmapRegionBuilder::new(0x2000)
        .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
        .with_mmap_flags(libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_LOCKED)
        .build()
    {
        Ok(region) => region,
        Err(e) => {
            // A host whose RLIMIT_MEMLOCK allows no locked memory.
            eprintln!("a_failing_madvise_is_reported_and_keeps_the_bytes: skipped: {e}");
            return;
        }
    };
    let mem = GuestMemoryMmap::<()>::from_regions(vec![
        GuestRegionMmap::new(region, GuestAddress(0x4000)).unwrap(),
    ])
    .unwrap();
    mem.write_slice(&[7; 0x2000], GuestAddress(0x4000)).unwrap();
    let err = discard(&mem, GpaRange::new(0x5000, 0x1000)).unwrap_err();
    assert!(
        matches!(
            &err,
            MemoryError::Discard { gpa: 0x5000, size: 0x1000, reason }
                if reason.starts_with("madvise(MADV_DONTNEED) failed")
        ),
        "{err}"
    );
    assert_eq!(read(&mem, 0x4000, 0x2000), vec![7; 0x2000]);
}

#[test]
fn unaligned_and_cross_region_ranges_are_refused() {
    let mem = anonymous(&[GpaRange::new(0, 0x2000), GpaRange::new(0x2000, 0x2000)]).unwrap();
    for (range, why) in [
        (GpaRange::new(0x800, 0x1000), "not 4 KiB aligned"),
        (
            GpaRange::new(0x1000, 0x2000),
            "not within one memory region",
        ),
    ] {
        let err = discard(&mem, range).unwrap_err();
        assert!(
            matches!(err, MemoryError::BadPageRange { reason, .. } if reason == why),
            "{range:?}: {err}"
        );
    }
    let err = discard(&mem, GpaRange::new(0x8000, 0x1000)).unwrap_err();
    assert!(
        matches!(err, MemoryError::Unmapped { gpa: 0x8000, .. }),
        "{err}"
    );
}

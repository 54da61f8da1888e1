//! Resource bounds on hostile files: memory is bounded by a constant times
//! the file size, whatever the file claims, and the work of parsing and
//! planning grows linearly with the file. Memory is counted by this test
//! binary's global allocator (per thread, so parallel tests do not mix);
//! work is counted as allocations, never as wall time.
//!
//! The bound: peak heap during parse → plan (→ digest) of a file of `len`
//! bytes is at most `MEM_PER_FILE_BYTE * len + MEM_CONSTANT` (32 × len +
//! 256 KiB; the densest files measured about 13 × len when this was
//! written). An allocation proportional to a size the file claims (a
//! parameter area, a page count) breaks it by orders of magnitude.

mod common;
#[path = "../../../bench/hostile.rs"]
mod hostile;
#[allow(dead_code)]
#[path = "../../../fuzz/src/support/mod.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use igvm_defs::{
    IGVM_VHS_ERROR_RANGE, IGVM_VHS_PAGE_DATA, IGVM_VHS_PARAMETER, IGVM_VHS_PARAMETER_AREA,
    IGVM_VHS_PARAMETER_INSERT, IGVM_VHS_REQUIRED_MEMORY, IgvmPageDataFlags, IgvmPageDataType,
    RequiredMemoryFlags,
};
use igvm_snp::{Error, GpaRange, LaunchConfig, LaunchPlan, PageType, PlanOptions};

use support::raw::{RawFile, typ};
use support::seeds::{SNP, raw_platform_and_policy};

/// Heap bytes allowed per byte of file.
const MEM_PER_FILE_BYTE: usize = 32;
/// Heap bytes allowed whatever the file (config, tables, hash state).
const MEM_CONSTANT: usize = 256 << 10;

/// Counts the calling thread's heap use while [`measure`] runs; forwards
/// every request to the system allocator unchanged.
struct Counting;

thread_local! {
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
    static TOTAL: Cell<usize> = const { Cell::new(0) };
}

fn on_alloc(size: usize) {
    // `try_with`: the thread's slots may already be gone at thread exit.
    let _ = ACTIVE.try_with(|active| {
        if active.get() {
            let live = LIVE.with(|l| {
                l.set(l.get() + size);
                l.get()
            });
            PEAK.with(|p| p.set(p.get().max(live)));
            ALLOCS.with(|a| a.set(a.get() + 1));
            TOTAL.with(|t| t.set(t.get() + size));
        }
    });
}

fn on_free(size: usize) {
    let _ = ACTIVE.try_with(|active| {
        if active.get() {
            LIVE.with(|l| l.set(l.get().saturating_sub(size)));
        }
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; the bookkeeping only touches
// const-initialized thread-local `Cell`s, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which
        // is `System.alloc`'s.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            on_alloc(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            on_alloc(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, i.e. by `System`,
        // with `layout` (the caller's contract).
        unsafe { System.dealloc(ptr, layout) };
        on_free(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `System` with `layout`; `new_size` obeys
        // `realloc`'s contract (the caller's).
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            on_free(layout.size());
            on_alloc(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap use of one measured call.
#[derive(Debug, Clone, Copy)]
struct Usage {
    /// Highest live heap bytes above the start.
    peak: usize,
    /// Allocations made.
    allocs: usize,
    /// Bytes allocated in total.
    total: usize,
}

fn measure<R>(f: impl FnOnce() -> R) -> (R, Usage) {
    LIVE.with(|c| c.set(0));
    PEAK.with(|c| c.set(0));
    ALLOCS.with(|c| c.set(0));
    TOTAL.with(|c| c.set(0));
    ACTIVE.with(|a| a.set(true));
    let r = f();
    ACTIVE.with(|a| a.set(false));
    let usage = Usage {
        peak: PEAK.with(Cell::get),
        allocs: ALLOCS.with(Cell::get),
        total: TOTAL.with(Cell::get),
    };
    (r, usage)
}

fn config() -> LaunchConfig {
    LaunchConfig::new(2, vec![GpaRange::new(0, 1 << 40)])
}

/// A plan step as (GPA, pages, type).
type Step = (u64, u64, PageType);

/// Parses and plans `bytes` (and digests when `digest`), measuring the heap;
/// asserts the memory bound and returns the plan's outcome.
fn bounded(bytes: &[u8], digest: bool) -> (Result<Vec<Step>, Error>, Usage) {
    bounded_with(bytes, &config(), digest)
}

/// [`bounded`] with a given configuration (allocated before measuring).
fn bounded_with(
    bytes: &[u8],
    config: &LaunchConfig,
    digest: bool,
) -> (Result<Vec<Step>, Error>, Usage) {
    let (result, usage) = measure(|| {
        LaunchPlan::new(bytes, config, PlanOptions::default()).map(|plan| {
            if digest {
                let _ = plan.launch_digest();
            }
            plan.steps()
                .iter()
                .map(|s| (s.gpa, s.pages, s.page_type))
                .collect::<Vec<Step>>()
        })
    });
    let limit = MEM_PER_FILE_BYTE * bytes.len() + MEM_CONSTANT;
    assert!(
        usage.peak <= limit,
        "peak heap {} bytes for a {}-byte file exceeds {limit}",
        usage.peak,
        bytes.len()
    );
    (result, usage)
}

/// A page header with data at `data` (offset in the data section), or
/// without data when `data` is `None`.
fn page_header(f: &mut RawFile, gpa: u64, huge: bool, data: Option<u32>) {
    let h = IGVM_VHS_PAGE_DATA {
        gpa,
        compatibility_mask: SNP,
        file_offset: data.unwrap_or(0),
        flags: IgvmPageDataFlags::new().with_is_2mb_page(huge),
        data_type: IgvmPageDataType::NORMAL,
        reserved: 0,
    };
    match data {
        Some(_) => f.header_with_data(typ::PAGE_DATA, &h, 12),
        None => f.header(typ::PAGE_DATA, &h),
    };
}

/// The boot VMSA, last, at a GPA no test uses for pages.
fn vmsa(f: &mut RawFile) {
    let at = f.data(zerocopy::IntoBytes::as_bytes(&igvm_snp::demo::vmsa()));
    f.header_with_data(
        typ::VP_CONTEXT,
        &igvm_defs::IGVM_VHS_VP_CONTEXT {
            gpa: 0xFFFF_F000u64.into(),
            compatibility_mask: SNP,
            file_offset: at,
            vp_index: 0,
            reserved: 0,
        },
        12,
    );
}

/// 4096 page headers share one 4 KiB of file data: the file is ~140 KiB,
/// the pages 16 MiB; nothing is copied per page.
#[test]
fn many_pages_sharing_one_file_offset() {
    let n = 4096u64;
    let mut f = RawFile::new();
    raw_platform_and_policy(&mut f);
    let shared = f.data(&[0x5A; 4096]);
    for i in 0..n {
        page_header(&mut f, i * 4096, false, Some(shared));
    }
    vmsa(&mut f);
    let bytes = f.build();
    let (steps, _) = bounded(&bytes, true);
    assert_eq!(
        steps.unwrap(),
        vec![(0, n, PageType::Normal), (0xFFFF_F000, 1, PageType::Vmsa)]
    );
}

/// 2 MiB pages sharing one 2 MiB of file data: 64 headers claim 128 MiB.
#[test]
fn many_2mib_pages_sharing_one_file_offset() {
    let n = 64u64;
    let mut f = RawFile::new();
    raw_platform_and_policy(&mut f);
    let shared = f.data(&vec![0xA5; 2 << 20]);
    for i in 0..n {
        page_header(&mut f, (1 << 32) + (i << 21), true, Some(shared));
    }
    vmsa(&mut f);
    let bytes = f.build();
    let (steps, usage) = bounded(&bytes, false);
    assert_eq!(steps.unwrap()[0], (1 << 32, n * 512, PageType::Normal));
    assert!(usage.peak < (n as usize) << 21 >> 6, "{usage:?}");
}

/// Page headers that share file data: 32 2 MiB headers on one 2 MiB blob,
/// 64 4 KiB headers on one page, one 4 KiB header on a page inside the
/// blob (the same file offset as the blob's sixth page) and one a byte
/// further in (overlapping, a different slice), one page of its own. The
/// digest is the independent model's (`common::oracle_chain`, sha2 and a
/// hand-laid PAGE_INFO), and each distinct page slice is hashed once: the
/// work reported equals the distinct slices counted here, and the file
/// bytes handed back for release are those slices once each.
#[test]
fn shared_file_data_is_hashed_once() {
    let mut f = RawFile::new();
    raw_platform_and_policy(&mut f);
    let blob: Vec<u8> = (0..2u32 << 20)
        .map(|i| (i / 4096 + i % 251) as u8)
        .collect();
    let blob_at = f.data(&blob);
    let page_at = f.data(&[0x5A; 4096]);
    let own_at = f.data(&[0xC3; 4096]);
    // (GPA, 4 KiB pages, the file data of each page) in plan order.
    let mut expect: Vec<(u64, [u8; 48])> = Vec::new();
    let blob_pages: Vec<[u8; 48]> = blob.chunks(4096).map(common::sha384_page).collect();
    for i in 0..32u64 {
        let gpa = (1 << 32) + (i << 21);
        page_header(&mut f, gpa, true, Some(blob_at));
        expect.extend((0..512).map(|p| (gpa + p * 4096, blob_pages[p as usize])));
    }
    let page_hash = common::sha384_page(&[0x5A; 4096]);
    for i in 0..64u64 {
        page_header(&mut f, 0x10_0000 + i * 4096, false, Some(page_at));
        expect.push((0x10_0000 + i * 4096, page_hash));
    }
    page_header(&mut f, 0x20_0000, false, Some(blob_at + 5 * 4096));
    expect.push((0x20_0000, blob_pages[5]));
    page_header(&mut f, 0x20_1000, false, Some(blob_at + 1));
    expect.push((0x20_1000, common::sha384_page(&blob[1..4097])));
    page_header(&mut f, 0x20_2000, false, Some(own_at));
    expect.push((0x20_2000, common::sha384_page(&[0xC3; 4096])));
    vmsa(&mut f);
    let vmsa_bytes = igvm_snp::demo::vmsa();
    let vmsa_bytes = zerocopy::IntoBytes::as_bytes(&vmsa_bytes);
    let bytes = f.build();

    // The independent model: NORMAL pages (type 1), then the VMSA (type 2).
    let mut pages: Vec<common::OraclePage> = expect
        .iter()
        .map(|&(gpa, contents)| common::OraclePage {
            gpa,
            page_type: 1,
            contents,
        })
        .collect();
    pages.push(common::OraclePage {
        gpa: 0xFFFF_F000,
        page_type: 2,
        contents: common::sha384_page(vmsa_bytes),
    });
    let (oracle, _) = common::oracle_chain(&pages);
    // Distinct page slices: the blob's 512 pages, the shared page, the
    // overlapping page, the page of its own, the VMSA.
    let distinct = 512 + 1 + 1 + 1 + 1;

    let (plan, _) = bounded(&bytes, true);
    plan.unwrap();
    let plan = LaunchPlan::new(&bytes, &config(), PlanOptions::default()).unwrap();
    let stats = plan.measure_trace_with(|_| {});
    assert_eq!(stats.digest.0, oracle);
    assert_eq!(stats.pages, pages.len() as u64);
    assert_eq!(stats.contents_hashed, distinct, "{stats:?}");
    assert_eq!(
        stats.contents_reused,
        pages.len() as u64 - distinct,
        "{stats:?}"
    );
    let released = std::sync::Mutex::new(0usize);
    let digest = plan.launch_digest_releasing(|part| *released.lock().unwrap() += part.len());
    assert_eq!(digest.0, oracle);
    assert_eq!(released.into_inner().unwrap(), distinct as usize * 4096);
    // The step digests hand back the same bytes.
    let released = std::sync::Mutex::new(0usize);
    let steps = plan.step_digests_releasing(|part| *released.lock().unwrap() += part.len());
    assert_eq!(steps.last().map(|d| d.0), Some(oracle));
    assert_eq!(released.into_inner().unwrap(), distinct as usize * 4096);
}

/// Every other entry point that hashes a plan's pages hands the file's
/// bytes back as it goes, for a caller that maps the file: kvm-legacy's
/// digests per vCPU count, `profile::check` (one digest per profile) and
/// `attestation::verify`; and each gives what its plain form gives.
#[test]
fn every_hashing_entry_point_releases_the_file() {
    use igvm_snp::Profile;
    use igvm_snp::attestation::{
        AttestationReport, Certificates, Expected, verify, verify_releasing,
    };
    use igvm_snp::kvm_legacy::KvmLegacyInputs;
    use igvm_snp::profile::{check, check_releasing};

    let bytes = igvm_snp::demo::demo_igvm();
    let in_file = |part: &[u8]| {
        let (start, end) = (bytes.as_ptr().addr(), bytes.as_ptr().addr() + bytes.len());
        assert!(part.as_ptr().addr() >= start && part.as_ptr().addr() + part.len() <= end);
        part.len()
    };
    let legacy = KvmLegacyInputs::new(4, 0, 0xA00F11);
    let legacy_plan = LaunchPlan::new(
        &bytes,
        &LaunchConfig::new(4, vec![GpaRange::new(0, 16 << 20)]),
        Profile::KvmLegacy(legacy).options(),
    )
    .unwrap();
    let released = std::sync::Mutex::new(0usize);
    let release = |part: &[u8]| *released.lock().unwrap() += in_file(part);
    assert_eq!(
        legacy_plan.kvm_legacy_digests_releasing(release),
        legacy_plan.kvm_legacy_digests()
    );
    assert!(std::mem::take(&mut *released.lock().unwrap()) > 0);

    let config = LaunchConfig::new(1, vec![GpaRange::new(0, 16 << 20)]);
    let report = check_releasing(&bytes, &config, legacy, None, release).unwrap();
    let plain = check(&bytes, &config, legacy, None).unwrap();
    assert_eq!(format!("{report:?}"), format!("{plain:?}"));
    assert!(std::mem::take(&mut *released.lock().unwrap()) > 0);

    let spec = LaunchPlan::new(&bytes, &config, PlanOptions::default()).unwrap();
    let mut raw = <igvm_snp::attestation::RawReport as zerocopy::FromZeros>::new_zeroed();
    raw.version.set(3);
    raw.policy.set(spec.policy().unwrap().bits());
    raw.measurement = spec.launch_digest().0;
    let att = AttestationReport::parse(zerocopy::IntoBytes::as_bytes(&raw)).unwrap();
    let (expected, certs) = (Expected::default(), Certificates::default());
    let verdict = verify_releasing(&att, &bytes, &config, &expected, &certs, release).unwrap();
    let plain = verify(&att, &bytes, &config, &expected, &certs).unwrap();
    assert!(verdict.consistent());
    assert_eq!(format!("{verdict:?}"), format!("{plain:?}"));
    assert!(std::mem::take(&mut *released.lock().unwrap()) > 0);
}

/// Overlapping data at different byte offsets is not deduplicated: 80
/// pairs of 2 MiB headers, each pair on the same 2 MiB of one blob, the
/// pairs one byte apart (40,960 repeated page slices, more than the
/// kept-hash budget of a 2 MiB file allows). The digest is still the
/// independent model's, memory stays within the file's bound, every
/// distinct slice is hashed, and the slices beyond the budget are hashed
/// for each page (at most twice each here).
#[test]
fn repeated_slices_beyond_the_budget_are_hashed_again() {
    let pairs = 80usize;
    let mut f = RawFile::new();
    raw_platform_and_policy(&mut f);
    let blob: Vec<u8> = (0..(2u32 << 20) + 4096)
        .map(|i| (i % 253) as u8 ^ (i >> 12) as u8)
        .collect();
    let blob_at = f.data(&blob);
    let mut pages = Vec::new();
    for k in 0..2 * pairs {
        let r = k / 2;
        let gpa = (1u64 << 32) + ((k as u64) << 21);
        page_header(&mut f, gpa, true, Some(blob_at + r as u32));
        pages.extend((0..512).map(|p| common::OraclePage {
            gpa: gpa + p as u64 * 4096,
            page_type: 1,
            contents: common::sha384_page(&blob[r + p * 4096..r + (p + 1) * 4096]),
        }));
    }
    vmsa(&mut f);
    let vmsa_bytes = igvm_snp::demo::vmsa();
    pages.push(common::OraclePage {
        gpa: 0xFFFF_F000,
        page_type: 2,
        contents: common::sha384_page(zerocopy::IntoBytes::as_bytes(&vmsa_bytes)),
    });
    let (oracle, _) = common::oracle_chain(&pages);
    let bytes = f.build();

    let (plan, _) = bounded(&bytes, true);
    plan.unwrap();
    let plan = LaunchPlan::new(&bytes, &config(), PlanOptions::default()).unwrap();
    let stats = plan.measure_trace_with(|_| {});
    assert_eq!(stats.digest.0, oracle);
    let distinct = pairs as u64 * 512 + 1;
    assert!(
        stats.contents_hashed > distinct && stats.contents_hashed < 2 * distinct,
        "{stats:?}"
    );
    assert_eq!(
        stats.contents_hashed + stats.contents_reused,
        pages.len() as u64
    );
}

fn area(f: &mut RawFile, index: u32, number_of_bytes: u64) {
    f.header(
        typ::PARAMETER_AREA,
        &IGVM_VHS_PARAMETER_AREA {
            number_of_bytes,
            parameter_area_index: index,
            file_offset: 0,
        },
    );
}

fn insert(f: &mut RawFile, index: u32, gpa: u64) {
    f.header(
        typ::PARAMETER_INSERT,
        &IGVM_VHS_PARAMETER_INSERT {
            gpa,
            compatibility_mask: SNP,
            parameter_area_index: index,
        },
    );
}

/// A 1 GiB parameter area, and a 2^32-page (16 TiB) one, are refused at
/// parse time without allocating anything near their size.
#[test]
fn huge_parameter_areas_are_refused_before_allocation() {
    for size in [1u64 << 30, 1 << 44, u64::MAX - 4095] {
        let mut f = RawFile::new();
        raw_platform_and_policy(&mut f);
        area(&mut f, 0, size);
        insert(&mut f, 0, 0);
        vmsa(&mut f);
        let bytes = f.build();
        let (result, usage) = bounded(&bytes, true);
        let err = result.unwrap_err();
        assert!(
            matches!(err, Error::ParameterAreaTooLarge { size: s, .. } if s == size),
            "{err:?}"
        );
        assert!(usage.peak < 64 << 10, "{usage:?}");
    }
}

/// The largest accepted areas (4 × 64 MiB, 65536 pages) are planned and
/// digested without materializing them: pages are produced when written.
#[test]
fn largest_accepted_parameter_areas_are_not_materialized() {
    let mut f = RawFile::new();
    raw_platform_and_policy(&mut f);
    for i in 0..4 {
        area(&mut f, i, 64 << 20);
        f.header(
            typ::VP_COUNT_PARAMETER,
            &IGVM_VHS_PARAMETER {
                parameter_area_index: i,
                byte_offset: 0,
            },
        );
        insert(&mut f, i, u64::from(i) << 26);
    }
    vmsa(&mut f);
    let bytes = f.build();
    let (steps, _) = bounded(&bytes, true);
    let steps = steps.unwrap();
    assert_eq!(steps.len(), 5);
    assert!(
        steps[..4]
            .iter()
            .all(|s| s.1 == 16384 && s.2 == PageType::Unmeasured)
    );

    // A fifth area passes the per-area limit but not the total.
    area(&mut f, 4, 64 << 20);
    let (result, _) = bounded(&f.build(), false);
    assert!(
        matches!(result, Err(Error::ParameterAreaTooLarge { .. })),
        "{result:?}"
    );
}

/// 2^21 pages (8 GiB) claimed by 4096 data-less 2 MiB page headers, plus
/// the largest required-memory and error ranges: planned in memory bounded
/// by the file, not by the page count.
#[test]
fn page_counts_claimed_by_headers_do_not_allocate() {
    let mut f = RawFile::new();
    raw_platform_and_policy(&mut f);
    for i in 0..4096u64 {
        page_header(&mut f, (1 << 33) + (i << 21), true, None);
    }
    f.header(
        typ::REQUIRED_MEMORY,
        &IGVM_VHS_REQUIRED_MEMORY {
            gpa: 0,
            compatibility_mask: SNP,
            number_of_bytes: u32::MAX - 4095,
            flags: RequiredMemoryFlags::new(),
            reserved: 0,
        },
    );
    f.header(
        typ::ERROR_RANGE,
        &IGVM_VHS_ERROR_RANGE {
            gpa: 1 << 35,
            compatibility_mask: SNP,
            size_bytes: u32::MAX - 4095,
        },
    );
    vmsa(&mut f);
    let bytes = f.build();
    let (steps, _) = bounded(&bytes, false);
    assert_eq!(steps.unwrap()[0], (1 << 33, 4096 * 512, PageType::Normal));
}

/// The densest header section: 2^18 headers of 16 bytes (a 4 MiB file of
/// VP_COUNT parameters into one area).
#[test]
fn densest_header_section_is_bounded() {
    let bytes = dense_parameters(1 << 18);
    let (result, _) = bounded(&bytes, false);
    result.unwrap();
}

/// 2^16 MADT and command-line directives (a 1 MiB file) with the largest
/// MADT the library builds (4,096 vCPUs, 63,580 bytes) and a 60 KB command
/// line: each directive used to copy its value (2^16 x 62 KB, 4 GB), now
/// all share one copy per kind.
#[test]
fn configured_tables_are_shared_by_their_directives() {
    use igvm_defs::IgvmVariableHeaderType as T;
    let mut f = RawFile::new();
    raw_platform_and_policy(&mut f);
    area(&mut f, 0, 128 << 10);
    for i in 0..1u32 << 16 {
        let kind = if i % 2 == 0 {
            T::IGVM_VHT_MADT
        } else {
            T::IGVM_VHT_COMMAND_LINE
        };
        f.header(
            kind.0,
            &IGVM_VHS_PARAMETER {
                parameter_area_index: 0,
                byte_offset: (i % 64) * 16,
            },
        );
    }
    insert(&mut f, 0, 0x10_0000);
    vmsa(&mut f);
    let bytes = f.build();
    let mut config = config();
    config.madt = Some(igvm_snp::acpi::madt_for_vcpus(4096).unwrap());
    config.command_line = Some("x".repeat(60_000));
    let (result, _) = bounded_with(&bytes, &config, true);
    result.unwrap();
}

fn dense_parameters(n: u32) -> Vec<u8> {
    let mut f = RawFile::new();
    raw_platform_and_policy(&mut f);
    area(&mut f, 0, 4096);
    for _ in 0..n {
        f.header(
            typ::VP_COUNT_PARAMETER,
            &IGVM_VHS_PARAMETER {
                parameter_area_index: 0,
                byte_offset: 0,
            },
        );
    }
    insert(&mut f, 0, 0x10_0000);
    vmsa(&mut f);
    f.build()
}

/// A mix of every directive that plans, `n` times over, at fresh GPAs.
fn mixed(n: u64) -> Vec<u8> {
    let mut f = RawFile::new();
    raw_platform_and_policy(&mut f);
    let data = f.data(&[0x33; 4096]);
    for i in 0..n {
        let base = i * 0x10_0000;
        page_header(&mut f, base, false, Some(data));
        page_header(&mut f, base + 0x1000, false, None);
        area(&mut f, i as u32, 4096);
        f.header(
            typ::VP_COUNT_PARAMETER,
            &IGVM_VHS_PARAMETER {
                parameter_area_index: i as u32,
                byte_offset: 0,
            },
        );
        insert(&mut f, i as u32, base + 0x3000);
        f.header(
            typ::ERROR_RANGE,
            &IGVM_VHS_ERROR_RANGE {
                gpa: base + 0x8000,
                compatibility_mask: SNP,
                size_bytes: 0x1000,
            },
        );
    }
    vmsa(&mut f);
    f.build()
}

/// Doubling the file at most doubles the work (allocations and allocated
/// bytes, plus a constant), for mixed directives and for dense parameters.
#[test]
fn parse_and_plan_work_is_linear() {
    let work = |bytes: &[u8]| {
        let (result, usage) = bounded(bytes, false);
        result.unwrap();
        usage
    };
    let check = |name: &str, a: Usage, b: Usage| {
        assert!(
            b.allocs <= 2 * a.allocs + 64,
            "{name}: allocations {a:?} -> {b:?}"
        );
        assert!(
            b.total <= 2 * a.total + (64 << 10),
            "{name}: bytes {a:?} -> {b:?}"
        );
        assert!(b.total > a.total, "{name}: no work counted");
    };
    let mut previous = work(&mixed(512));
    for n in [1024, 2048] {
        let next = work(&mixed(n));
        check("mixed", previous, next);
        previous = next;
    }
    let mut previous = work(&dense_parameters(1 << 14));
    for n in [1 << 15, 1 << 16] {
        let next = work(&dense_parameters(n));
        check("dense", previous, next);
        previous = next;
    }
}

/// The benchmarks' hostile files (bench/hostile.rs). The data-less one is
/// the committed fixture tests/fixtures/hostile/dataless.igvm, byte for
/// byte, and its digests are the ones igvmmeasure computed for it
/// (expected.json; data-less pages as NORMAL zeros, and as ZERO pages with
/// `--native-zero`; the library's igvmmeasure profile differs from the
/// spec's only in ways this file does not touch). The shared-blob one, which igvmmeasure cannot measure,
/// hashes its 2 MiB blob's 512 page slices once each.
#[test]
fn hostile_files_match_igvmmeasure_and_hash_each_slice_once() {
    use igvm_snp::Profile;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hostile");
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let e = &expected[0];
    let bytes = hostile::hostile(hostile::Hostile::DataLess, hostile::HUGE_PAGES);
    assert_eq!(
        bytes,
        std::fs::read(dir.join(e["file"].as_str().unwrap())).unwrap(),
        "bench/hostile.rs no longer writes the fixture"
    );
    for (profile, key) in [
        (Profile::IgvmSpec, "digest"),
        (Profile::NativeZero, "digest_native_zero"),
    ] {
        let plan = LaunchPlan::new(&bytes, &config(), profile.options()).unwrap();
        assert_eq!(plan.launched_pages(), hostile::HUGE_PAGES * 512 + 1);
        assert_eq!(
            plan.launch_digest().to_string(),
            e[key].as_str().unwrap(),
            "{profile:?}"
        );
    }

    let shared = hostile::hostile(hostile::Hostile::SharedData, 4);
    let plan = LaunchPlan::new(&shared, &config(), PlanOptions::default()).unwrap();
    let stats = plan.measure_trace_with(|_| {});
    assert_eq!(stats.pages, 4 * 512 + 1);
    assert_eq!(stats.contents_hashed, 512 + 1, "{stats:?}");
}

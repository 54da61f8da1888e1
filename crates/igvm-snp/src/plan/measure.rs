//! The launch digest of a plan, computed over exactly its steps.
//!
//! Contents hashes (SHA-384 of each NORMAL or VMSA page) are independent of
//! each other; only the PAGE_INFO chain (112 bytes per page) is sequential.
//! One thread per core takes the measured pages that need hashing in plan
//! order, [`BATCH`] pages at a time (borrowed, never copied), from a shared
//! cursor over the plan; a thread that has hashed a batch also advances the
//! chain over every batch completed so far, unless another thread is doing
//! so, so the chain runs alongside the hashing instead of after it. The
//! hashes wait for the chain in a window of [`WINDOW`] pages; when it is
//! full, the threads stop, the chain catches up and the next window starts.
//! Memory is bounded by the window, whatever the number of pages (a 2 MiB
//! page without data is 512 pages from a 32-byte header). Pages whose hash
//! is known without hashing (pages without data: the zero page's hash;
//! repeated data, below) never go to the threads: the chain ([`Chainer`])
//! takes their hash itself, so 2^19 data-less pages cost the chain alone.
//!
//! [`LaunchPlan::launch_digest_releasing`] also hands each batch's file
//! bytes back to the caller once they are hashed, so a caller that maps the
//! file can drop them from memory while the rest is being hashed.
//!
//! Each distinct page of file data is hashed once. Many page headers may
//! point at the same file data (a builder that deduplicates identical pages
//! writes them so, and a hostile file of 1,024 2 MiB page headers sharing
//! one 2 MiB blob claims 2 GiB of pages from 2 MiB of data). Before
//! hashing, [`Repeats`] finds, from the measured directives' file offsets
//! alone (work and memory bounded by the number of headers, nothing when
//! the data of the plan's directives lies in increasing file order), the
//! page slices (file offset, 4096 bytes) that more than one measured page
//! reads. The first page of such a slice is hashed and its hash kept (48
//! bytes); the later ones take the kept hash. A page whose slice is read
//! once is hashed as before, with no memory kept.
//!
//! Slices are the same only at the same file offset: pages whose data
//! overlaps at different byte offsets (a header pointing one byte further
//! into the same blob) are distinct slices and each is hashed in full. What
//! still bounds the hashing then is the plan's cap: at most 4 KiB hashed a
//! launched page, 16 GiB at [`MAX_LAUNCH_PAGES`] (each of a file's bytes can
//! start a distinct slice). The kept hashes take at most the file's size in
//! memory ([`Repeats::new`]); repeated slices beyond that are hashed for
//! every page, with the same bound.
//!
//! [`MAX_LAUNCH_PAGES`]: crate::parse::MAX_LAUNCH_PAGES

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;

use serde::Serialize;

use super::options::VmsaPlacement;
use super::{LaunchPlan, LaunchStep, PageBytes, StepSource};
use crate::digest::{DigestChain, LaunchDigest, PAGE_SIZE, TraceEntry, page_hash, zero_page_hash};
use crate::kvm_legacy::{FinishVmsas, KVM_VMSA_GPA};
use crate::page_type::PageType;
use crate::parse::DirectiveKind;

/// Pages per work item: large enough that taking a batch and publishing its
/// hashes cost little next to hashing it (256 KiB), small enough to keep
/// the cores balanced.
const BATCH: usize = 64;

/// Pages per window (64 MiB of contents): their hashes take 48 bytes a
/// page, so 768 KiB. Unit tests use small windows to cross their
/// boundaries.
const WINDOW: usize = if cfg!(test) { 4 * BATCH } else { 256 * BATCH };

/// Below this many measured pages, hashing stays on the calling thread.
const PARALLEL_THRESHOLD: u64 = 256;

/// The contents hashes of one batch, in page order.
type BatchHashes = [[u8; 48]; BATCH];

/// What one measurement computed and the work it took
/// ([`LaunchPlan::measure_trace_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MeasureStats {
    /// The launch digest.
    pub digest: LaunchDigest,
    /// PAGE_INFO structures chained: the launched pages, and with
    /// [`VmsaPlacement::KvmFinish`] the VMSAs KVM measures at
    /// SNP_LAUNCH_FINISH.
    pub pages: u64,
    /// Page contents hashed (SHA-384 over 4 KiB): file data read for the
    /// first time, parameter-area pages, VMSAs.
    pub contents_hashed: u64,
    /// Measured pages whose contents hash was already known: a page of
    /// file data that an earlier page of the plan also reads (same file
    /// offset; see the module documentation), or a page of zeros.
    pub contents_reused: u64,
}

/// Work counted by the hashing threads.
#[derive(Default)]
struct Counts {
    hashed: AtomicU64,
}

impl LaunchPlan<'_> {
    /// The launch digest the AMD-SP computes for this plan.
    ///
    /// With [`VmsaPlacement::KvmFinish`] it includes the VMSAs KVM measures
    /// at SNP_LAUNCH_FINISH, after every step (a model, see
    /// [`crate::kvm_legacy`]).
    pub fn launch_digest(&self) -> LaunchDigest {
        self.walk(|_, _, _, _, _| {}, &|_| {}).digest
    }

    /// [`LaunchPlan::launch_digest`], handing back the file's bytes as they
    /// are hashed: `release` gets runs of [`IgvmFile::bytes`] (contiguous
    /// page data, at most 256 KiB at a time) whose pages have been hashed,
    /// from the hashing threads, while the rest is still being hashed.
    ///
    /// For a caller that maps the file: dropping those pages from its
    /// resident set as it goes (e.g. `igvm_snp_kvm::mapped_file::MappedFile::release`)
    /// keeps the memory of measuring an image of any size to a few MiB,
    /// and leaves less to unmap at the end. The bytes stay borrowed, so a
    /// release can only be advice: the same bytes can come again, or be
    /// read again later, when directives share file data.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let bytes = igvm_snp::demo::demo_igvm();
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, PlanOptions};
    /// let config = LaunchConfig::new(1, vec![GpaRange::new(0, 16 << 20)]);
    /// let plan = LaunchPlan::new(&bytes, &config, PlanOptions::default())?;
    /// let released = AtomicUsize::new(0);
    /// let digest = plan.launch_digest_releasing(|part| {
    ///     released.fetch_add(part.len(), Ordering::Relaxed);
    /// });
    /// assert_eq!(digest, plan.launch_digest());
    /// assert!(released.into_inner() > 0);
    /// # Ok(()) }
    /// ```
    ///
    /// [`IgvmFile::bytes`]: crate::IgvmFile::bytes
    pub fn launch_digest_releasing(&self, release: impl Fn(&[u8]) + Sync) -> LaunchDigest {
        self.walk(|_, _, _, _, _| {}, &release).digest
    }

    /// The launch digest after each step, in step order (the last one is
    /// [`LaunchPlan::launch_digest`]). With [`VmsaPlacement::KvmFinish`]
    /// there is one more, final entry: the digest after the VMSAs KVM
    /// measures at SNP_LAUNCH_FINISH.
    pub fn step_digests(&self) -> Vec<LaunchDigest> {
        self.step_digests_releasing(|_| {})
    }

    /// [`LaunchPlan::step_digests`], handing back the file's bytes as they
    /// are hashed, as [`LaunchPlan::launch_digest_releasing`] does.
    pub fn step_digests_releasing(&self, release: impl Fn(&[u8]) + Sync) -> Vec<LaunchDigest> {
        let extra = usize::from(matches!(self.options.vmsa, VmsaPlacement::KvmFinish(_)));
        let mut out = vec![LaunchDigest::ZERO; self.steps.len() + extra];
        self.walk(
            |step, _, _, _, c| {
                if let Some(slot) = out.get_mut(step) {
                    *slot = c.digest();
                }
            },
            &release,
        );
        out
    }

    /// The measurement page by page: GPA, type, contents hash and the
    /// running digest after each page. With [`VmsaPlacement::KvmFinish`]
    /// the VMSAs KVM measures at SNP_LAUNCH_FINISH come last, with step
    /// index `steps().len()`.
    ///
    /// One entry per launched page, held at once (a 2 MiB page header of
    /// 32 bytes is 512 entries): [`LaunchPlan::measure_trace_with`] streams
    /// them instead.
    pub fn measure_trace(&self) -> Vec<TraceEntry> {
        let mut out = Vec::new();
        self.measure_trace_with(|entry| out.push(entry));
        out
    }

    /// The trace of [`LaunchPlan::measure_trace`], one entry at a time:
    /// calls `f` with each entry in plan order as the PAGE_INFO chain
    /// reaches it (from whichever hashing thread advances the chain, so `f`
    /// must be `Send`), and holds no entry itself. Returns the digest and
    /// the work done.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let bytes = igvm_snp::demo::demo_igvm();
    /// use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, PlanOptions};
    /// let config = LaunchConfig::new(1, vec![GpaRange::new(0, 16 << 20)]);
    /// let plan = LaunchPlan::new(&bytes, &config, PlanOptions::default())?;
    /// let mut pages = 0;
    /// let stats = plan.measure_trace_with(|entry| {
    ///     pages += 1;
    ///     println!("{:#x} {} {}", entry.gpa, entry.page_type, entry.digest);
    /// });
    /// assert_eq!(stats.digest, plan.launch_digest());
    /// assert_eq!(stats.pages, pages);
    /// # Ok(()) }
    /// ```
    pub fn measure_trace_with(&self, mut f: impl FnMut(TraceEntry) + Send) -> MeasureStats {
        self.walk(
            |step, page_type, gpa, contents, c| {
                f(TraceEntry {
                    step,
                    gpa,
                    page_type,
                    contents: LaunchDigest(*contents),
                    digest: c.digest(),
                });
            },
            &|_| {},
        )
    }

    /// Runs the PAGE_INFO chain over every page and calls `f(step index,
    /// page type, gpa, contents, chain after the page)` in plan order (from
    /// whichever thread holds the chain), and `release` with the file
    /// bytes of each hashed batch; returns the final digest and the work.
    fn walk<F, R>(&self, f: F, release: &R) -> MeasureStats
    where
        F: FnMut(usize, PageType, u64, &[u8; 48], &DigestChain) + Send,
        R: Fn(&[u8]) + Sync,
    {
        self.walk_steps(f, release, true)
    }

    /// [`LaunchPlan::walk`] over the steps, and over the VMSAs KVM measures
    /// at SNP_LAUNCH_FINISH when `finish` is set.
    fn walk_steps<F, R>(&self, f: F, release: &R, finish: bool) -> MeasureStats
    where
        F: FnMut(usize, PageType, u64, &[u8; 48], &DigestChain) + Send,
        R: Fn(&[u8]) + Sync,
    {
        let file = self.file.bytes();
        let repeats = Repeats::new(self);
        // At most this many pages go to the hashing threads (fewer when
        // file data repeats).
        let measured: u64 = self
            .measuring_steps()
            .map(|step| match step.source {
                StepSource::PageData => self
                    .step_directives(step)
                    .map(|d| match &d.kind {
                        DirectiveKind::PageData { header, data } if !data.is_empty() => {
                            if header.flags.is_2mb_page() { 512 } else { 1 }
                        }
                        _ => 0,
                    })
                    .sum(),
                _ => step.pages,
            })
            .sum();
        let cores = if measured < PARALLEL_THRESHOLD {
            1
        } else {
            thread::available_parallelism().map_or(1, NonZeroUsize::get)
        };
        let mut feed = Mutex::new(Feed {
            pages: self.fed_pages(&repeats),
            batches: 0,
            fed: 0,
            done: false,
        });
        // As many slots as the pages need, up to a window, and at least one:
        // taking no pages from it is how the threads find the feed empty.
        let window = usize::try_from(measured).map_or(WINDOW, |m| m.clamp(1, WINDOW));
        let mut slots: Vec<OnceLock<BatchHashes>> = (0..window.div_ceil(BATCH))
            .map(|_| OnceLock::new())
            .collect();
        let mut chainer = Chainer::new(self, &repeats, f);
        let counts = Counts::default();
        let hashing = Hashing {
            slots: &[],
            file,
            repeats: &repeats,
            counts: &counts,
        };
        loop {
            let left = measured.saturating_sub(lock(&feed).fed);
            let threads =
                cores.min(usize::try_from(left.div_ceil(PARALLEL_THRESHOLD)).unwrap_or(cores));
            let shared = Mutex::new(chainer);
            let hashing = Hashing {
                slots: &slots,
                ..hashing
            };
            let work = || hash_batches(&feed, &hashing, &shared, release);
            if threads <= 1 {
                work();
            } else {
                thread::scope(|scope| {
                    for _ in 1..threads {
                        scope.spawn(work);
                    }
                    work();
                });
            }
            chainer = shared.into_inner().unwrap_or_else(PoisonError::into_inner);
            // Every hash of the window is in: chain to its end.
            chainer.advance(&slots, false);
            let feed = feed.get_mut().unwrap_or_else(PoisonError::into_inner);
            if feed.done {
                break;
            }
            feed.batches = 0;
            slots.fill_with(OnceLock::new);
            chainer.start_window();
        }
        chainer.advance(&[], true);
        let mut pages = chainer.chained;
        let mut hashed = counts.hashed.into_inner();
        if let (true, VmsaPlacement::KvmFinish(inputs)) = (finish, self.options.vmsa) {
            let vmsas = FinishVmsas::new(&self.vmsa.vmsa, inputs);
            for contents in vmsas.hashes() {
                pages += 1;
                hashed += 1;
                chainer
                    .chain
                    .update(PageType::Vmsa, KVM_VMSA_GPA, &contents);
                (chainer.f)(
                    self.steps.len(),
                    PageType::Vmsa,
                    KVM_VMSA_GPA,
                    &contents,
                    &chainer.chain,
                );
            }
        }
        MeasureStats {
            digest: chainer.chain.digest(),
            pages,
            contents_hashed: hashed,
            contents_reused: chainer.reused,
        }
    }

    /// With [`VmsaPlacement::KvmFinish`]: the launch digest for every vCPU
    /// count from 1 to the inputs' `vcpus` (element `i` is for `i + 1`
    /// vCPUs), hashing the pages once. KVM measures its VMSAs after every
    /// page, boot vCPU first, then one reset VMSA per AP, so the digest for
    /// `n + 1` vCPUs extends the one for `n` by a single VMSA. The pages do
    /// not depend on the count (parameter areas, where the VP count goes,
    /// are launched UNMEASURED). `None` for other placements.
    ///
    /// ```
    /// # fn main() -> Result<(), igvm_snp::Error> {
    /// use igvm_snp::kvm_legacy::KvmLegacyInputs;
    /// use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, Profile};
    /// let bytes = igvm_snp::demo::demo_igvm();
    /// let plan = |vcpus| {
    ///     let config = LaunchConfig::new(vcpus, vec![GpaRange::new(0, 16 << 20)]);
    ///     let profile = Profile::KvmLegacy(KvmLegacyInputs::new(vcpus, 0, 0xA00F11));
    ///     LaunchPlan::new(&bytes, &config, profile.options())
    /// };
    /// let digests = plan(8)?.kvm_legacy_digests().unwrap();
    /// assert_eq!(digests.len(), 8);
    /// assert_eq!(digests[3], plan(4)?.launch_digest());
    /// # Ok(()) }
    /// ```
    pub fn kvm_legacy_digests(&self) -> Option<Vec<LaunchDigest>> {
        self.kvm_legacy_digests_releasing(|_| {})
    }

    /// [`LaunchPlan::kvm_legacy_digests`], handing back the file's bytes as
    /// they are hashed, as [`LaunchPlan::launch_digest_releasing`] does.
    pub fn kvm_legacy_digests_releasing(
        &self,
        release: impl Fn(&[u8]) + Sync,
    ) -> Option<Vec<LaunchDigest>> {
        let VmsaPlacement::KvmFinish(inputs) = self.options.vmsa else {
            return None;
        };
        let pages = self.walk_steps(|_, _, _, _, _| {}, &release, false).digest;
        let mut chain = DigestChain::resume(pages);
        let vmsas = FinishVmsas::new(&self.vmsa.vmsa, inputs);
        Some(
            vmsas
                .hashes()
                .map(|contents| {
                    chain.update(PageType::Vmsa, KVM_VMSA_GPA, &contents);
                    chain.digest()
                })
                .collect(),
        )
    }

    /// The digest after the plan's steps: [`LaunchPlan::launch_digest`]
    /// without the VMSAs KVM measures at SNP_LAUNCH_FINISH (the same value
    /// for other placements).
    pub fn pages_digest(&self) -> LaunchDigest {
        self.walk_steps(|_, _, _, _, _| {}, &|_| {}, false).digest
    }

    /// The steps whose pages' contents are hashed (NORMAL and VMSA).
    fn measuring_steps(&self) -> impl Iterator<Item = &LaunchStep> + Send + '_ {
        self.steps
            .iter()
            .filter(|s| s.page_type.measures_contents())
    }

    /// The pages the hashing threads hash, in plan order: every page of
    /// the measured steps whose contents the chain cannot take from what
    /// it already knows ([`Chainer`]): not the pages without data (their
    /// hash is the zero page's), nor a page of repeated file data after its
    /// first (its hash is kept). `None` for a page a step declares but its
    /// source does not yield (its contents field is then 48 zero bytes).
    fn fed_pages<'p>(
        &'p self,
        repeats: &'p Repeats,
    ) -> impl Iterator<Item = Option<PageBytes<'p>>> + Send + 'p {
        let file = self.file.bytes();
        let mut taken = vec![false; repeats.slots.len()];
        self.measuring_steps()
            .flat_map(move |step| {
                // (from a PAGE_DATA directive, the page)
                let data = self
                    .step_directives(step)
                    .filter(|d| {
                        matches!(&d.kind, DirectiveKind::PageData { data, .. } if !data.is_empty())
                    })
                    .flat_map(super::page_data_pages)
                    .map(|(_, page)| (true, Some(page)));
                let other = (step.source != StepSource::PageData).then(|| {
                    let mut pages = self.step_pages(step);
                    (0..step.pages).map(move |_| (false, pages.next().map(|(_, page)| page)))
                });
                data.chain(other.into_iter().flatten())
            })
            .filter_map(move |(page_data, page)| match page {
                Some(PageBytes::Data(d)) if page_data => match repeats.index(file, d) {
                    Some(i) if taken.get(i).is_some_and(|t| *t) => None,
                    Some(i) => {
                        if let Some(t) = taken.get_mut(i) {
                            *t = true;
                        }
                        Some(page)
                    }
                    None => Some(page),
                },
                _ => Some(page),
            })
    }
}

/// The cursor the hashing threads take their batches from.
struct Feed<I> {
    /// The measured pages not taken yet, in plan order.
    pages: I,
    /// Batches taken in this window.
    batches: usize,
    /// Pages taken so far.
    fed: u64,
    /// `pages` has run out.
    done: bool,
}

/// The file-data page slices that more than one measured page of a plan
/// reads (module documentation), with their hashes once computed.
#[derive(Default)]
struct Repeats {
    /// Runs of repeated slices, disjoint and sorted by (file offset modulo
    /// the page size, file offset): the page slices from `start` (a file
    /// offset) up to `end`, whose hashes are kept from `slots[slot]` on.
    runs: Vec<RepeatRun>,
    slots: Vec<OnceLock<[u8; 48]>>,
}

#[derive(Debug, Clone, Copy)]
struct RepeatRun {
    start: usize,
    end: usize,
    slot: usize,
}

impl Repeats {
    /// Finds the repeated slices from the file offsets of the plan's
    /// measured `PAGE_DATA` directives (a page of them is 4096 bytes from
    /// the directive's offset plus a multiple of 4096), without looking at
    /// a page. Allocates nothing when the measured data lies in increasing
    /// file order; otherwise 16 bytes a directive while it sorts them. The
    /// kept hashes take at most the file's size: runs beyond that budget
    /// are left out (hashed for every page, as unique slices are).
    fn new(plan: &LaunchPlan<'_>) -> Self {
        let file = plan.file.bytes();
        let ranges = || {
            plan.measuring_steps()
                .flat_map(|step| plan.step_directives(step))
                .filter_map(|d| match &d.kind {
                    DirectiveKind::PageData { data, .. } if !data.is_empty() => {
                        file_range(file, data)
                    }
                    _ => None,
                })
        };
        // Data in increasing file order, without overlap: no slice twice.
        let mut reached = 0;
        if ranges().all(|(start, end)| std::mem::replace(&mut reached, end) <= start) {
            return Repeats::default();
        }
        let mut ranges: Vec<(usize, usize)> = ranges().collect();
        // Only ranges whose offsets agree modulo the page size can share a
        // page slice: sweep each such class in offset order. The part of a
        // range that an earlier-starting range of its class still covers is
        // read at least twice; those parts, merged, are written back over
        // the ranges already read.
        ranges.sort_unstable_by_key(|&(start, _)| (start % PAGE_SIZE, start));
        let mut runs: usize = 0;
        let mut cover: Option<(usize, usize)> = None;
        for i in 0..ranges.len() {
            let (start, end) = ranges[i];
            let class = start % PAGE_SIZE;
            let covered = match cover {
                Some((c, reach)) if c == class => reach,
                _ => start,
            };
            let twice = end.min(covered);
            if start < twice {
                match runs.checked_sub(1).map(|last| &mut ranges[last]) {
                    Some(last) if last.0 % PAGE_SIZE == class && start <= last.1 => {
                        last.1 = last.1.max(twice);
                    }
                    _ => {
                        ranges[runs] = (start, twice);
                        runs += 1;
                    }
                }
            }
            cover = Some((class, covered.max(end)));
        }
        ranges.truncate(runs);
        // A kept hash, and a flag each in the feed and the chain.
        let budget = file.len() / (size_of::<OnceLock<[u8; 48]>>() + 2);
        let mut slots = 0;
        let runs: Vec<RepeatRun> = ranges
            .into_iter()
            .map_while(|(start, end)| {
                let pages = ((end - start) / PAGE_SIZE).min(budget - slots);
                let run = RepeatRun {
                    start,
                    end: start + pages * PAGE_SIZE,
                    slot: slots,
                };
                slots += pages;
                (pages > 0).then_some(run)
            })
            .collect();
        Repeats {
            runs,
            slots: (0..slots).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The index of the kept hash of the page slice `page` (of `file`), if
    /// it is repeated.
    fn index(&self, file: &[u8], page: &[u8]) -> Option<usize> {
        if self.runs.is_empty() {
            return None;
        }
        let (start, _) = file_range(file, page)?;
        let key = |offset: usize| (offset % PAGE_SIZE, offset);
        let i = self
            .runs
            .partition_point(|r| key(r.start) <= key(start))
            .checked_sub(1)?;
        let run = self.runs[i];
        if run.start % PAGE_SIZE != start % PAGE_SIZE || start >= run.end {
            return None;
        }
        Some(run.slot + (start - run.start) / PAGE_SIZE)
    }
}

/// What the hashing threads share besides the feed and the chain.
#[derive(Clone, Copy)]
struct Hashing<'h> {
    /// The window's hashes, a slot per batch.
    slots: &'h [OnceLock<BatchHashes>],
    /// The file the plan's data borrows from.
    file: &'h [u8],
    repeats: &'h Repeats,
    counts: &'h Counts,
}

/// Locks a mutex, taking over the data of a thread that panicked with it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One thread's share: takes the next batch until the pages or the window
/// run out, hashes it, publishes the hashes, releases its file bytes and
/// advances the chain if it is free.
fn hash_batches<'p, I, F, R>(
    feed: &Mutex<Feed<I>>,
    hashing: &Hashing<'_>,
    chainer: &Mutex<Chainer<'_, F>>,
    release: &R,
) where
    I: Iterator<Item = Option<PageBytes<'p>>>,
    F: FnMut(usize, PageType, u64, &[u8; 48], &DigestChain),
    R: Fn(&[u8]),
{
    let Hashing {
        slots,
        file,
        repeats,
        counts,
    } = *hashing;
    let mut buf = [0u8; PAGE_SIZE];
    let mut batch: [Option<PageBytes<'p>>; BATCH] = [None; BATCH];
    loop {
        let (index, taken) = {
            let mut feed = lock(feed);
            if feed.done || feed.batches >= slots.len() {
                return;
            }
            let taken = batch
                .iter_mut()
                .zip(&mut feed.pages)
                .map(|(b, p)| *b = p)
                .count();
            if taken < BATCH {
                feed.done = true;
            }
            if taken == 0 {
                return;
            }
            feed.batches += 1;
            feed.fed += taken as u64;
            (feed.batches - 1, taken)
        };
        let pages = &batch[..taken];
        let mut hashes = [[0u8; 48]; BATCH];
        let mut hashed = 0;
        for (hash, page) in hashes.iter_mut().zip(pages) {
            *hash = match page {
                None => continue,
                Some(PageBytes::Zero) => *zero_page_hash(),
                Some(PageBytes::Data(d)) => {
                    let h = page_hash(d);
                    // The first page of a repeated slice: the chain takes
                    // the later ones from here.
                    if let Some(kept) = repeats.index(file, d).and_then(|i| repeats.slots.get(i)) {
                        let _ = kept.set(h);
                    }
                    h
                }
                // Rendered into a reused stack buffer: no allocation per page.
                Some(p @ PageBytes::Parameter { .. }) => {
                    p.write_to(&mut buf);
                    page_hash(&buf)
                }
            };
            hashed += 1;
        }
        counts.hashed.fetch_add(hashed, Ordering::Relaxed);
        if let Some(slot) = slots.get(index) {
            let _ = slot.set(hashes);
        }
        let read_data = pages.iter().filter_map(|page| match page {
            Some(PageBytes::Data(d)) => Some(*d),
            _ => None,
        });
        release_runs(read_data, file, release);
        // A batch that lands while another thread holds the chain is taken
        // by that thread's next turn, or by the sweep at the window's end.
        if let Ok(mut c) = chainer.try_lock() {
            c.advance(slots, false);
        }
    }
}

/// Calls `release` once for each run of consecutive file bytes among
/// `pages` (one call for a batch read from one stretch of the file).
fn release_runs<'d, R: Fn(&[u8])>(pages: impl Iterator<Item = &'d [u8]>, file: &[u8], release: &R) {
    let mut run: Option<(usize, usize)> = None;
    for d in pages {
        let Some((start, end)) = file_range(file, d) else {
            continue;
        };
        run = match run {
            Some((s, e)) if e == start => Some((s, end)),
            Some((s, e)) => {
                release(&file[s..e]);
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    if let Some((s, e)) = run {
        release(&file[s..e]);
    }
}

/// Where `part` lies in `file`, if it is a sub-slice of it.
fn file_range(file: &[u8], part: &[u8]) -> Option<(usize, usize)> {
    let start = part.as_ptr().addr().checked_sub(file.as_ptr().addr())?;
    let end = start.checked_add(part.len())?;
    (end <= file.len()).then_some((start, end))
}

/// The sequential PAGE_INFO chain and where it is in the plan. It walks
/// the plan's steps and, within a step of `PAGE_DATA` pages, their
/// directives: a page without data takes the zero page's hash here, and a
/// page of repeated file data after its first the kept hash; every other
/// measured page takes its hash from the hashing threads' window, in the
/// order they were fed ([`LaunchPlan::fed_pages`] leaves out the same
/// pages).
struct Chainer<'p, F> {
    plan: &'p LaunchPlan<'p>,
    repeats: &'p Repeats,
    /// Repeated slices whose first page has been chained.
    seen: Vec<bool>,
    f: F,
    chain: DigestChain,
    /// Step and page within it of the next page to chain.
    step: usize,
    page: u64,
    /// In a `PAGE_DATA` step: the directive (an index into the file's
    /// directives) of the next page, that page within it, and its page
    /// count (0 until the directive is found).
    dir: usize,
    dir_page: u64,
    dir_pages: u64,
    /// Fed pages of the current window chained so far (an index into its
    /// batches).
    measured: usize,
    /// Pages chained so far.
    chained: u64,
    /// Measured pages whose hash the chain knew.
    reused: u64,
}

/// Where the contents field of the next page comes from.
enum Contents {
    /// Known here: zeros for an unmeasured page, or (`true`, a reused
    /// hash) the zero page's or a kept one.
    Known([u8; 48], bool),
    /// From the hashing threads; for the first page of a repeated slice,
    /// with its index.
    Fed(Option<usize>),
}

impl<'p, F> Chainer<'p, F>
where
    F: FnMut(usize, PageType, u64, &[u8; 48], &DigestChain),
{
    fn new(plan: &'p LaunchPlan<'p>, repeats: &'p Repeats, f: F) -> Self {
        Chainer {
            plan,
            repeats,
            seen: vec![false; repeats.slots.len()],
            f,
            chain: DigestChain::new(),
            step: 0,
            page: 0,
            dir: plan.steps.first().map_or(0, |s| s.directives.start),
            dir_page: 0,
            dir_pages: 0,
            measured: 0,
            chained: 0,
            reused: 0,
        }
    }

    /// Starts the next window (after the previous window's pages are all
    /// chained).
    fn start_window(&mut self) {
        self.measured = 0;
    }

    /// Where the contents of the next page, of `step`, come from; moves the
    /// directive cursor to the directive that holds it.
    fn contents(&mut self, step: &LaunchStep) -> Contents {
        if !step.page_type.measures_contents() {
            return Contents::Known([0; 48], false);
        }
        if step.source != StepSource::PageData {
            return Contents::Fed(None);
        }
        let directives = self.plan.file.directives();
        while self.dir_pages == 0 || self.dir_page >= self.dir_pages {
            if self.dir_pages != 0 {
                self.dir += 1;
            }
            self.dir_page = 0;
            self.dir_pages = 0;
            let d = match directives.get(self.dir) {
                Some(d) if self.dir < step.directives.end => d,
                // A page the step declares but no directive yields.
                _ => return Contents::Known([0; 48], false),
            };
            match &d.kind {
                DirectiveKind::PageData { header, .. } if self.plan.launches_into(d, step) => {
                    self.dir_pages = if header.flags.is_2mb_page() { 512 } else { 1 };
                }
                _ => self.dir += 1,
            }
        }
        let DirectiveKind::PageData { data, .. } = &directives[self.dir].kind else {
            return Contents::Known([0; 48], false);
        };
        if data.is_empty() {
            return Contents::Known(*zero_page_hash(), true);
        }
        let at = usize::try_from(self.dir_page).map_or(usize::MAX, |p| p * PAGE_SIZE);
        let page = data.get(at..at + PAGE_SIZE).unwrap_or_default();
        match self.repeats.index(self.plan.file.bytes(), page) {
            Some(i) if self.seen.get(i) == Some(&true) => {
                match self.repeats.slots.get(i).and_then(OnceLock::get) {
                    Some(hash) => Contents::Known(*hash, true),
                    // Not reached: the first page was hashed before it was
                    // chained.
                    None => Contents::Known(page_hash(page), false),
                }
            }
            first => Contents::Fed(first),
        }
    }

    /// Chains pages until one whose hash is not ready yet (or lies beyond
    /// this window); with `last`, every window is done and a fed page
    /// without a hash, which the feed never leaves, would count as 48 zero
    /// bytes.
    fn advance(&mut self, slots: &[OnceLock<BatchHashes>], last: bool) {
        let steps = &self.plan.steps;
        while let Some(step) = steps.get(self.step) {
            if self.page >= step.pages {
                self.step += 1;
                self.page = 0;
                self.dir = steps.get(self.step).map_or(0, |s| s.directives.start);
                self.dir_page = 0;
                self.dir_pages = 0;
                continue;
            }
            let contents = match self.contents(step) {
                Contents::Known(hash, reused) => {
                    self.reused += u64::from(reused);
                    hash
                }
                Contents::Fed(first) => {
                    let ready = slots.get(self.measured / BATCH).and_then(OnceLock::get);
                    let hash = match ready {
                        Some(hashes) => hashes[self.measured % BATCH],
                        None if last => [0; 48],
                        None => return,
                    };
                    self.measured += 1;
                    if let Some(seen) = first.and_then(|i| self.seen.get_mut(i)) {
                        *seen = true;
                    }
                    hash
                }
            };
            let gpa = step.gpa + self.page * PAGE_SIZE as u64;
            self.chain.update(step.page_type, gpa, &contents);
            (self.f)(step.index, step.page_type, gpa, &contents, &self.chain);
            self.page += 1;
            self.dir_page += 1;
            self.chained += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use igvm::IgvmDirectiveHeader;
    use igvm_defs::IgvmPageDataFlags;

    use super::*;
    use crate::{GpaRange, LaunchConfig, PlanOptions};

    /// A NORMAL `PAGE_DATA` directive for the SEV-SNP mask.
    fn normal(gpa: u64, flags: IgvmPageDataFlags, data: Vec<u8>) -> IgvmDirectiveHeader {
        crate::demo::page_data(gpa, 1, flags, data)
    }

    /// A file with `n` data pages in two runs, split by a data-less page.
    fn file(n: u64) -> Vec<u8> {
        let mut dirs: Vec<IgvmDirectiveHeader> = (0..n)
            .map(|i| {
                normal(
                    0x10_0000 + i * 4096 + if i >= n / 2 { 4096 } else { 0 },
                    IgvmPageDataFlags::new(),
                    vec![(i % 251) as u8; (i % 4096) as usize + 1],
                )
            })
            .collect();
        let mut vmsa = crate::demo::vmsa();
        vmsa.rip = n;
        dirs.push(IgvmDirectiveHeader::SnpVpContext {
            gpa: 0xFFFF_FFFF_F000,
            compatibility_mask: 1,
            vp_index: 0,
            vmsa: Box::new(vmsa),
        });
        crate::demo::snp_igvm(dirs).unwrap()
    }

    /// The parallel split gives the same digest as hashing page by page on
    /// one thread, for sizes around the thread, batch and window
    /// boundaries (windows of 256 pages in unit tests).
    #[test]
    fn parallel_hashing_matches_sequential() {
        for n in [1, 63, 64, 65, 255, 256, 257, 512, 700, 1100] {
            let bytes = file(n);
            let config = LaunchConfig::new(1, vec![GpaRange::new(0, 16 << 20)]);
            let plan = LaunchPlan::new(&bytes, &config, PlanOptions::default()).unwrap();
            let mut chain = DigestChain::new();
            for step in plan.steps() {
                for (gpa, page) in plan.step_pages(step) {
                    let c = if step.page_type.measures_contents() {
                        page.hash()
                    } else {
                        [0; 48]
                    };
                    chain.update(step.page_type, gpa, &c);
                }
            }
            assert_eq!(plan.launch_digest(), chain.digest(), "{n} pages");
            assert_eq!(*plan.step_digests().last().unwrap(), chain.digest());
            assert_eq!(plan.measure_trace().len() as u64, plan.launched_pages());
        }
    }

    /// Pages the chain resolves itself (data-less, repeated data after its
    /// first page) interleaved with fed ones and with host-visible pages
    /// inside the same run of directives, across window boundaries: the
    /// digest is the page-by-page one, and only distinct data is hashed.
    #[test]
    fn chain_resolved_pages_match_sequential() {
        let mut dirs = Vec::new();
        for i in 0..700u64 {
            let data = match i % 5 {
                0 => Vec::new(),
                1 | 2 => vec![0xA5; 4096],
                _ => vec![(i % 7) as u8; 4096],
            };
            dirs.push(normal(0x10_0000 + i * 4096, IgvmPageDataFlags::new(), data));
            if i % 97 == 0 {
                dirs.push(normal(
                    0x8000_0000 + i * 4096,
                    IgvmPageDataFlags::new().with_shared(true),
                    vec![0xA5; 4096],
                ));
            }
        }
        dirs.push(IgvmDirectiveHeader::SnpVpContext {
            gpa: 0xFFFF_FFFF_F000,
            compatibility_mask: 1,
            vp_index: 0,
            vmsa: Box::new(crate::demo::vmsa()),
        });
        let bytes = crate::demo::snp_igvm(dirs).unwrap();
        let config = LaunchConfig::new(1, vec![GpaRange::new(0, 16 << 20)]);
        let plan = LaunchPlan::new(&bytes, &config, PlanOptions::default()).unwrap();
        let mut chain = DigestChain::new();
        for step in plan.steps() {
            for (gpa, page) in plan.step_pages(step) {
                chain.update(step.page_type, gpa, &page.hash());
            }
        }
        let stats = plan.measure_trace_with(|_| {});
        assert_eq!(stats.digest, chain.digest());
        // Distinct data: the 0xA5 page, seven patterns, the VMSA.
        assert_eq!(stats.contents_hashed, 1 + 7 + 1, "{stats:?}");
        assert_eq!(stats.contents_hashed + stats.contents_reused, 701);
    }

    /// Merges ranges into a sorted list of disjoint ones.
    fn union(mut ranges: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
        ranges.sort_unstable();
        let mut out: Vec<(usize, usize)> = Vec::new();
        for (s, e) in ranges {
            match out.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => out.push((s, e)),
            }
        }
        out
    }

    /// Releasing hands back exactly the file bytes of the hashed pages, as
    /// sub-slices of the file, merged into one call per batch where the
    /// file data is contiguous, and changes nothing in the digest.
    #[test]
    fn releasing_hands_back_the_hashed_file_bytes() {
        for n in [1, 63, 65, 300, 700] {
            let bytes = file(n);
            let config = LaunchConfig::new(1, vec![GpaRange::new(0, 16 << 20)]);
            let plan = LaunchPlan::new(&bytes, &config, PlanOptions::default()).unwrap();
            let released = Mutex::new(Vec::new());
            let digest = plan.launch_digest_releasing(|part| {
                let range = file_range(&bytes, part).expect("a part of the file");
                released.lock().unwrap().push(range);
            });
            assert_eq!(digest, plan.launch_digest(), "{n} pages");
            let released = released.into_inner().unwrap();
            let data: Vec<(usize, usize)> = plan
                .steps()
                .iter()
                .filter(|s| s.page_type.measures_contents())
                .flat_map(|s| plan.step_pages(s))
                .filter_map(|(_, page)| match page {
                    PageBytes::Data(d) => file_range(&bytes, d),
                    _ => None,
                })
                .collect();
            // One call per batch, plus one per break in the file order of
            // the data (the igvm crate stores identical pages once).
            let breaks = data.windows(2).filter(|w| w[0].1 != w[1].0).count();
            let bound = data.len().div_ceil(BATCH) + breaks;
            assert_eq!(union(released.clone()), union(data), "{n} pages");
            assert!(
                released.len() <= bound,
                "{n} pages: {} calls, at most {bound} expected",
                released.len()
            );
        }
    }

    /// The digests by vCPU count are each count's own launch digest, and
    /// the pages' digest is the last step's.
    #[test]
    fn kvm_legacy_digests_by_count() {
        let bytes = file(70);
        let plan = |vcpus| {
            let config = LaunchConfig::new(vcpus, vec![GpaRange::new(0, 16 << 20)]);
            let inputs = crate::kvm_legacy::KvmLegacyInputs::new(vcpus, 0, 0xA00F11);
            let options = PlanOptions {
                vmsa: VmsaPlacement::KvmFinish(inputs),
                ..PlanOptions::default()
            };
            LaunchPlan::new(&bytes, &config, options).unwrap()
        };
        let all = plan(5).kvm_legacy_digests().unwrap();
        assert_eq!(all.len(), 5);
        for n in 1..=5u32 {
            assert_eq!(all[n as usize - 1], plan(n).launch_digest(), "{n} vCPUs");
        }
        let p = plan(2);
        assert_eq!(p.pages_digest(), p.step_digests()[p.steps().len() - 1]);
        let config = LaunchConfig::new(1, vec![GpaRange::new(0, 16 << 20)]);
        let spec = LaunchPlan::new(&bytes, &config, PlanOptions::default()).unwrap();
        assert_eq!(spec.kvm_legacy_digests(), None);
        assert_eq!(spec.pages_digest(), spec.launch_digest());
    }

    /// A plan that measures no page contents (its VMSAs are KVM's, at
    /// LAUNCH_FINISH, and its one page is data-less) still gets its digest.
    #[test]
    fn no_measured_contents() {
        let bytes = crate::demo::snp_igvm(vec![
            normal(0x10_0000, IgvmPageDataFlags::new(), Vec::new()),
            IgvmDirectiveHeader::SnpVpContext {
                gpa: 0xFFFF_FFFF_F000,
                compatibility_mask: 1,
                vp_index: 0,
                vmsa: Box::new(crate::demo::vmsa()),
            },
        ])
        .unwrap();
        let config = LaunchConfig::new(1, vec![GpaRange::new(0, 16 << 20)]);
        let inputs =
            crate::kvm_legacy::KvmLegacyInputs::new(1, 0, crate::kvm_legacy::KVM_RESET_RDX);
        let options = PlanOptions {
            vmsa: VmsaPlacement::KvmFinish(inputs),
            zero_pages: crate::ZeroPages::NativeZero,
            ..PlanOptions::default()
        };
        let plan = LaunchPlan::new(&bytes, &config, options).unwrap();
        assert!(
            plan.steps()
                .iter()
                .all(|s| !s.page_type.measures_contents())
        );
        let trace = plan.measure_trace();
        assert_eq!(trace.len(), 2, "the zero page and KVM's VMSA");
        assert_eq!(plan.launch_digest(), trace[1].digest);
    }
}

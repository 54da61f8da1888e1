//! The launch digest of a plan, computed over exactly its steps.
//!
//! Contents hashes (SHA-384 of each NORMAL or VMSA page) are independent of
//! each other; only the PAGE_INFO chain (112 bytes per page) is sequential.
//! The measured pages are taken in plan order a window of [`WINDOW`] pages
//! at a time (borrowed, never copied), and each window is cut into batches
//! of [`BATCH`] pages that one thread per core takes in turn. A thread that
//! has hashed a batch also advances the chain over every batch completed so
//! far, unless another thread is doing so, so the chain runs alongside the
//! hashing instead of after it. Memory is bounded by the window, whatever
//! the number of pages (a 2 MiB page without data is 512 pages from a
//! 32-byte header).

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread;

use super::options::VmsaPlacement;
use super::{LaunchPlan, LaunchStep, PageBytes};
use crate::digest::{DigestChain, LaunchDigest, PAGE_SIZE, TraceEntry, page_hash, zero_page_hash};
use crate::kvm_legacy::{FinishVmsas, KVM_VMSA_GPA};
use crate::page_type::PageType;

/// Pages per work item: large enough that taking a batch and publishing its
/// hashes cost little next to hashing it (256 KiB), small enough to keep
/// the cores balanced.
const BATCH: usize = 64;

/// Pages per window (64 MiB of contents): the list of pages and their
/// hashes take 72 bytes a page, so at most 1.1 MiB. Unit tests use small
/// windows to cross their boundaries.
const WINDOW: usize = if cfg!(test) { 4 * BATCH } else { 256 * BATCH };

/// Below this many measured pages, hashing stays on the calling thread.
const PARALLEL_THRESHOLD: usize = 256;

/// The contents hashes of one batch, in page order.
type BatchHashes = [[u8; 48]; BATCH];

impl LaunchPlan<'_> {
    /// The launch digest the AMD-SP computes for this plan.
    ///
    /// With [`VmsaPlacement::KvmFinish`] it includes the VMSAs KVM measures
    /// at SNP_LAUNCH_FINISH, after every step (a model, see
    /// [`crate::kvm_legacy`]).
    pub fn launch_digest(&self) -> LaunchDigest {
        self.walk(|_, _, _, _, _| {})
    }

    /// The launch digest after each step, in step order (the last one is
    /// [`LaunchPlan::launch_digest`]). With [`VmsaPlacement::KvmFinish`]
    /// there is one more, final entry: the digest after the VMSAs KVM
    /// measures at SNP_LAUNCH_FINISH.
    pub fn step_digests(&self) -> Vec<LaunchDigest> {
        let extra = usize::from(matches!(self.options.vmsa, VmsaPlacement::KvmFinish(_)));
        let mut out = vec![LaunchDigest::ZERO; self.steps.len() + extra];
        self.walk(|step, _, _, _, c| {
            if let Some(slot) = out.get_mut(step) {
                *slot = c.digest();
            }
        });
        out
    }

    /// The measurement page by page: GPA, type, contents hash and the
    /// running digest after each page. With [`VmsaPlacement::KvmFinish`]
    /// the VMSAs KVM measures at SNP_LAUNCH_FINISH come last, with step
    /// index `steps().len()`.
    pub fn measure_trace(&self) -> Vec<TraceEntry> {
        let mut out = Vec::new();
        self.walk(|step, page_type, gpa, contents, c| {
            out.push(TraceEntry {
                step,
                gpa,
                page_type,
                contents: LaunchDigest(*contents),
                digest: c.digest(),
            });
        });
        out
    }

    /// Runs the PAGE_INFO chain over every page and calls `f(step index,
    /// page type, gpa, contents, chain after the page)` in plan order (from whichever
    /// thread holds the chain); returns the final digest.
    fn walk<F>(&self, f: F) -> LaunchDigest
    where
        F: FnMut(usize, PageType, u64, &[u8; 48], &DigestChain) + Send,
    {
        let mut chainer = Chainer::new(&self.steps, f);
        let mut source = self.measured_pages();
        let mut pages: Vec<Option<PageBytes<'_>>> = Vec::new();
        let cores = thread::available_parallelism().map_or(1, NonZeroUsize::get);
        loop {
            pages.clear();
            pages.extend(source.by_ref().take(WINDOW));
            if pages.is_empty() {
                break;
            }
            let slots: Vec<OnceLock<BatchHashes>> = (0..pages.len().div_ceil(BATCH))
                .map(|_| OnceLock::new())
                .collect();
            let next = AtomicUsize::new(0);
            chainer.start_window(pages.len());
            let shared = Mutex::new(chainer);
            let threads = cores.min(pages.len().div_ceil(PARALLEL_THRESHOLD));
            let work = || hash_batches(&pages, &next, &slots, &shared);
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
            // Every hash of the window is in: chain up to the next window.
            chainer.advance(&slots, false);
        }
        chainer.advance(&[], true);
        if let VmsaPlacement::KvmFinish(inputs) = self.options.vmsa {
            let vmsas = FinishVmsas::new(&self.vmsa.vmsa, inputs);
            for contents in vmsas.hashes() {
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
        chainer.chain.digest()
    }

    /// Every page whose contents are measured, in plan order: `None` for a
    /// page a step declares but its source does not yield (its contents
    /// field is then 48 zero bytes).
    fn measured_pages(&self) -> impl Iterator<Item = Option<PageBytes<'_>>> + '_ {
        self.steps
            .iter()
            .filter(|s| s.page_type.measures_contents())
            .flat_map(move |step| {
                let mut pages = self.step_pages(step);
                (0..step.pages).map(move |_| pages.next().map(|(_, page)| page))
            })
    }
}

/// One thread's share: takes the next batch until none is left, hashes it,
/// publishes the hashes and advances the chain if it is free.
fn hash_batches<F>(
    pages: &[Option<PageBytes<'_>>],
    next: &AtomicUsize,
    slots: &[OnceLock<BatchHashes>],
    chainer: &Mutex<Chainer<'_, F>>,
) where
    F: FnMut(usize, PageType, u64, &[u8; 48], &DigestChain),
{
    let mut buf = [0u8; PAGE_SIZE];
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        let (Some(slot), Some(batch)) = (slots.get(index), pages.chunks(BATCH).nth(index)) else {
            return;
        };
        let mut hashes = [[0u8; 48]; BATCH];
        for (hash, page) in hashes.iter_mut().zip(batch) {
            *hash = match page {
                None => [0; 48],
                Some(PageBytes::Zero) => *zero_page_hash(),
                Some(PageBytes::Data(d)) => page_hash(d),
                // Rendered into a reused stack buffer: no allocation per page.
                Some(p @ PageBytes::Parameter { .. }) => {
                    p.write_to(&mut buf);
                    page_hash(&buf)
                }
            };
        }
        let _ = slot.set(hashes);
        // A batch that lands while another thread holds the chain is taken
        // by that thread's next turn, or by the final sweep in `walk`.
        if let Ok(mut c) = chainer.try_lock() {
            c.advance(slots, false);
        }
    }
}

/// The sequential PAGE_INFO chain and where it is in the plan.
struct Chainer<'s, F> {
    steps: &'s [LaunchStep],
    f: F,
    chain: DigestChain,
    /// Step and page within it of the next page to chain.
    step: usize,
    page: u64,
    /// Measured pages of the current window chained so far (index into
    /// its batches), and the window's length.
    measured: usize,
    window: usize,
}

impl<'s, F> Chainer<'s, F>
where
    F: FnMut(usize, PageType, u64, &[u8; 48], &DigestChain),
{
    fn new(steps: &'s [LaunchStep], f: F) -> Self {
        Chainer {
            steps,
            f,
            chain: DigestChain::new(),
            step: 0,
            page: 0,
            measured: 0,
            window: 0,
        }
    }

    /// Starts a window of `len` measured pages (after the previous window's
    /// pages are all chained).
    fn start_window(&mut self, len: usize) {
        self.measured = 0;
        self.window = len;
    }

    /// Chains pages until one whose hash is not ready yet (or lies beyond
    /// this window); with `last`, every window is done and a measured page
    /// without a hash, which the page list never leaves, would count as 48
    /// zero bytes.
    fn advance(&mut self, slots: &[OnceLock<BatchHashes>], last: bool) {
        while let Some(step) = self.steps.get(self.step) {
            if self.page >= step.pages {
                self.step += 1;
                self.page = 0;
                continue;
            }
            let contents = if step.page_type.measures_contents() {
                let ready = if self.measured < self.window {
                    slots.get(self.measured / BATCH).and_then(OnceLock::get)
                } else {
                    None
                };
                let hash = match ready {
                    Some(hashes) => hashes[self.measured % BATCH],
                    None if last => [0; 48],
                    None => return,
                };
                self.measured += 1;
                hash
            } else {
                [0; 48]
            };
            let gpa = step.gpa + self.page * PAGE_SIZE as u64;
            self.chain.update(step.page_type, gpa, &contents);
            (self.f)(step.index, step.page_type, gpa, &contents, &self.chain);
            self.page += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use igvm::IgvmDirectiveHeader;
    use igvm_defs::{IgvmPageDataFlags, IgvmPageDataType};

    use super::*;
    use crate::{GpaRange, LaunchConfig, PlanOptions};

    /// A file with `n` data pages in two runs, split by a data-less page.
    fn file(n: u64) -> Vec<u8> {
        let mut dirs: Vec<IgvmDirectiveHeader> = (0..n)
            .map(|i| IgvmDirectiveHeader::PageData {
                gpa: 0x10_0000 + i * 4096 + if i >= n / 2 { 4096 } else { 0 },
                compatibility_mask: 1,
                flags: IgvmPageDataFlags::new(),
                data_type: IgvmPageDataType::NORMAL,
                data: vec![(i % 251) as u8; (i % 4096) as usize + 1],
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
}

//! The launch digest of a plan, computed over exactly its steps.
//!
//! Contents hashes (SHA-384 of each NORMAL or VMSA page) are independent of
//! each other; only the PAGE_INFO chain (112 bytes per page) is sequential.
//! The calling thread walks the plan's measured pages in order and hands
//! them out in batches of [`BATCH`] pages (borrowed, never copied) to one
//! worker per core. A worker that has hashed a batch also advances the chain
//! over every batch completed so far, if no other worker is doing so, so the
//! chain runs alongside the hashing instead of after it.

use std::num::NonZeroUsize;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread;

use super::{LaunchPlan, LaunchStep, PageBytes};
use crate::digest::{DigestChain, LaunchDigest, PAGE_SIZE, TraceEntry, page_hash, zero_page_hash};

/// Pages per work item: large enough that handing out a batch costs little
/// next to hashing it (256 KiB), small enough to balance the cores.
const BATCH: usize = 64;

/// Below this many measured pages, hashing stays on the calling thread.
const PARALLEL_THRESHOLD: u64 = 256;

/// The contents hashes of one batch, in page order.
type BatchHashes = [[u8; 48]; BATCH];

/// One batch of measured pages: `None` for a page a step declares but its
/// source does not yield (hashed as 48 zero bytes, as before).
type Batch<'p> = [Option<PageBytes<'p>>; BATCH];

impl LaunchPlan<'_> {
    /// The launch digest the AMD-SP computes for this plan.
    pub fn launch_digest(&self) -> LaunchDigest {
        self.walk(|_, _, _, _| {})
    }

    /// The launch digest after each step, in step order (the last one is
    /// [`LaunchPlan::launch_digest`]).
    pub fn step_digests(&self) -> Vec<LaunchDigest> {
        let mut out = vec![LaunchDigest::ZERO; self.steps.len()];
        self.walk(|step, _, _, c| {
            if let Some(slot) = out.get_mut(step.index) {
                *slot = c.digest();
            }
        });
        out
    }

    /// The measurement page by page: GPA, type, contents hash and the
    /// running digest after each page.
    pub fn measure_trace(&self) -> Vec<TraceEntry> {
        let mut out = Vec::new();
        self.walk(|step, gpa, contents, c| {
            out.push(TraceEntry {
                step: step.index,
                gpa,
                page_type: step.page_type,
                contents: LaunchDigest(*contents),
                digest: c.digest(),
            });
        });
        out
    }

    /// Runs the PAGE_INFO chain over every page and calls `f(step, gpa,
    /// contents, chain after the page)` in plan order (from whichever
    /// thread holds the chain); returns the final digest.
    fn walk<F>(&self, f: F) -> LaunchDigest
    where
        F: FnMut(&LaunchStep, u64, &[u8; 48], &DigestChain) + Send,
    {
        let measured: u64 = self
            .steps
            .iter()
            .filter(|s| s.page_type.measures_contents())
            .map(|s| s.pages)
            .sum();
        let batches = usize::try_from(measured.div_ceil(BATCH as u64)).unwrap_or(usize::MAX);
        let slots: Vec<OnceLock<BatchHashes>> = (0..batches).map(|_| OnceLock::new()).collect();
        let chainer = Mutex::new(Chainer::new(&self.steps, f));
        let threads = thread::available_parallelism()
            .map_or(1, NonZeroUsize::get)
            .min(usize::try_from(measured.div_ceil(PARALLEL_THRESHOLD)).unwrap_or(usize::MAX));
        if threads <= 1 {
            self.for_each_batch(|index, batch| {
                finish_batch(&slots, &chainer, index, &hash_batch(batch));
            });
        } else {
            let (tx, rx) = sync_channel::<(usize, Batch<'_>)>(2 * threads);
            let rx = Mutex::new(rx);
            thread::scope(|scope| {
                for _ in 0..threads {
                    scope.spawn(|| worker(&rx, &slots, &chainer));
                }
                self.feed(tx);
            });
        }
        let mut chainer = chainer.into_inner().unwrap_or_else(PoisonError::into_inner);
        chainer.advance(&slots, true);
        chainer.chain.digest()
    }

    /// Sends every batch of measured pages to the workers; dropping the
    /// sender at the end tells them to stop.
    fn feed<'p>(&'p self, tx: SyncSender<(usize, Batch<'p>)>) {
        self.for_each_batch(|index, batch| {
            // A send fails only when every worker has gone, i.e. panicked;
            // the scope then propagates the panic.
            let _ = tx.send((index, *batch));
        });
    }

    /// Calls `f(index, batch)` for each batch of [`BATCH`] measured pages in
    /// plan order (the last one padded with `None`).
    fn for_each_batch<'p>(&'p self, mut f: impl FnMut(usize, &Batch<'p>)) {
        let mut batch: Batch<'p> = [None; BATCH];
        let mut filled = 0;
        let mut index = 0;
        for step in self
            .steps
            .iter()
            .filter(|s| s.page_type.measures_contents())
        {
            let mut pages = self.step_pages(step);
            for _ in 0..step.pages {
                batch[filled] = pages.next().map(|(_, page)| page);
                filled += 1;
                if filled == BATCH {
                    f(index, &batch);
                    index += 1;
                    filled = 0;
                }
            }
        }
        if filled > 0 {
            batch[filled..].fill(None);
            f(index, &batch);
        }
    }
}

/// A hashing thread: takes batches until the feeder is done.
fn worker<F>(
    rx: &Mutex<Receiver<(usize, Batch<'_>)>>,
    slots: &[OnceLock<BatchHashes>],
    chainer: &Mutex<Chainer<'_, F>>,
) where
    F: FnMut(&LaunchStep, u64, &[u8; 48], &DigestChain),
{
    loop {
        let next = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok((index, batch)) = next else { return };
        finish_batch(slots, chainer, index, &hash_batch(&batch));
    }
}

/// Stores a batch's hashes and, unless another thread is at it, advances
/// the chain over every batch ready so far.
fn finish_batch<F>(
    slots: &[OnceLock<BatchHashes>],
    chainer: &Mutex<Chainer<'_, F>>,
    index: usize,
    hashes: &BatchHashes,
) where
    F: FnMut(&LaunchStep, u64, &[u8; 48], &DigestChain),
{
    if let Some(slot) = slots.get(index) {
        let _ = slot.set(*hashes);
    }
    // A batch that lands while another thread holds the chain is picked up
    // by that thread's next call, or by the final sweep in `walk`.
    if let Ok(mut c) = chainer.try_lock() {
        c.advance(slots, false);
    }
}

/// SHA-384 of each page of a batch.
fn hash_batch(batch: &Batch<'_>) -> BatchHashes {
    let mut out = [[0u8; 48]; BATCH];
    let mut buf = [0u8; PAGE_SIZE];
    for (slot, page) in out.iter_mut().zip(batch) {
        *slot = match page {
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
    out
}

/// The sequential PAGE_INFO chain and where it is in the plan.
struct Chainer<'s, F> {
    steps: &'s [LaunchStep],
    f: F,
    chain: DigestChain,
    /// Step and page within it of the next page to chain.
    step: usize,
    page: u64,
    /// Measured pages chained so far (index into the batches).
    measured: usize,
}

impl<'s, F> Chainer<'s, F>
where
    F: FnMut(&LaunchStep, u64, &[u8; 48], &DigestChain),
{
    fn new(steps: &'s [LaunchStep], f: F) -> Self {
        Chainer {
            steps,
            f,
            chain: DigestChain::new(),
            step: 0,
            page: 0,
            measured: 0,
        }
    }

    /// Chains pages until one whose hash is not ready yet; with `last`, all
    /// hashes have been produced and a missing one counts as 48 zero bytes.
    fn advance(&mut self, slots: &[OnceLock<BatchHashes>], last: bool) {
        while let Some(step) = self.steps.get(self.step) {
            if self.page >= step.pages {
                self.step += 1;
                self.page = 0;
                continue;
            }
            let contents = if step.page_type.measures_contents() {
                let ready = slots.get(self.measured / BATCH).and_then(OnceLock::get);
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
            (self.f)(step, gpa, &contents, &self.chain);
            self.page += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use igvm::{
        IgvmDirectiveHeader, IgvmFile, IgvmInitializationHeader, IgvmPlatformHeader, IgvmRevision,
    };
    use igvm_defs::{
        IGVM_VHS_SUPPORTED_PLATFORM, IgvmPageDataFlags, IgvmPageDataType, IgvmPlatformType,
    };

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
        let f = IgvmFile::new(
            IgvmRevision::V1,
            vec![IgvmPlatformHeader::SupportedPlatform(
                IGVM_VHS_SUPPORTED_PLATFORM {
                    compatibility_mask: 1,
                    highest_vtl: 0,
                    platform_type: IgvmPlatformType::SEV_SNP,
                    platform_version: 1,
                    shared_gpa_boundary: 0,
                },
            )],
            vec![IgvmInitializationHeader::GuestPolicy {
                policy: 0x30000,
                compatibility_mask: 1,
            }],
            dirs,
        )
        .unwrap();
        let mut out = Vec::new();
        f.serialize(&mut out).unwrap();
        out
    }

    /// The parallel split gives the same digest as hashing page by page on
    /// one thread, for sizes around the thread boundaries.
    #[test]
    fn parallel_hashing_matches_sequential() {
        for n in [1, 255, 257, 700] {
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

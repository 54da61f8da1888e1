//! The launch digest of a plan, computed over exactly its steps.
//!
//! Contents hashes (SHA-384 of each NORMAL or VMSA page) are independent of
//! each other, so they are computed on all cores; only the PAGE_INFO chain
//! (112 bytes per page) is sequential.

use std::num::NonZeroUsize;
use std::thread;

use super::options::VmsaPlacement;
use super::{LaunchPlan, LaunchStep};
use crate::digest::{DigestChain, LaunchDigest, PAGE_SIZE, TraceEntry};
use crate::kvm_legacy::{FinishVmsas, KVM_VMSA_GPA};
use crate::page_type::PageType;

/// Below this many measured pages, hashing stays on the calling thread.
const PARALLEL_THRESHOLD: u64 = 256;

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
    /// page type, gpa, contents, chain after the page)`; returns the final
    /// digest.
    fn walk(
        &self,
        mut f: impl FnMut(usize, PageType, u64, &[u8; 48], &DigestChain),
    ) -> LaunchDigest {
        let hashes = self.content_hashes();
        let mut next_hash = hashes.iter();
        let mut chain = DigestChain::new();
        for step in &self.steps {
            for p in 0..step.pages {
                let gpa = step.gpa + p * PAGE_SIZE as u64;
                let contents = if step.page_type.measures_contents() {
                    next_hash.next().copied().unwrap_or([0; 48])
                } else {
                    [0; 48]
                };
                chain.update(step.page_type, gpa, &contents);
                f(step.index, step.page_type, gpa, &contents, &chain);
            }
        }
        if let VmsaPlacement::KvmFinish(inputs) = self.options.vmsa {
            let vmsas = FinishVmsas::new(&self.vmsa.vmsa, inputs);
            for contents in vmsas.hashes() {
                chain.update(PageType::Vmsa, KVM_VMSA_GPA, &contents);
                f(
                    self.steps.len(),
                    PageType::Vmsa,
                    KVM_VMSA_GPA,
                    &contents,
                    &chain,
                );
            }
        }
        chain.digest()
    }

    /// SHA-384 of every page whose contents are measured, in plan order.
    fn content_hashes(&self) -> Vec<[u8; 48]> {
        let measured: Vec<&LaunchStep> = self
            .steps
            .iter()
            .filter(|s| s.page_type.measures_contents())
            .collect();
        let total: u64 = measured.iter().map(|s| s.pages).sum();
        let mut out = vec![[0u8; 48]; total as usize];
        let threads = thread::available_parallelism()
            .map_or(1, NonZeroUsize::get)
            .min(total.div_ceil(PARALLEL_THRESHOLD).max(1) as usize);
        if threads <= 1 {
            self.hash_range(&measured, 0, &mut out);
            return out;
        }
        let per = out.len().div_ceil(threads);
        thread::scope(|scope| {
            for (i, chunk) in out.chunks_mut(per).enumerate() {
                let measured = &measured;
                scope.spawn(move || self.hash_range(measured, (i * per) as u64, chunk));
            }
        });
        out
    }

    /// Hashes the measured pages `first .. first + out.len()` into `out`.
    fn hash_range(&self, measured: &[&LaunchStep], first: u64, out: &mut [[u8; 48]]) {
        let mut skip = first;
        let mut slots = out.iter_mut();
        for step in measured {
            if skip >= step.pages {
                skip -= step.pages;
                continue;
            }
            for (_, page) in self.step_pages(step).skip(skip as usize) {
                match slots.next() {
                    Some(slot) => *slot = page.hash(),
                    None => return,
                }
            }
            skip = 0;
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

//! Parse, plan and digest benchmarks on generated images, each group with
//! its baseline in the same run: SHA-384 over the file's bytes once, on one
//! core (what `openssl dgst -sha384` does).
//!
//! `cargo bench -p igvm-snp` — BENCHMARKS.md explains how to read the ratios.

// criterion_group! and criterion_main! generate public functions without docs.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use igvm::{
    IgvmDirectiveHeader, IgvmFile, IgvmInitializationHeader, IgvmPlatformHeader, IgvmRevision,
};
use igvm_defs::{
    IGVM_VHS_SUPPORTED_PLATFORM, IgvmPageDataFlags, IgvmPageDataType, IgvmPlatformType,
};
use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, PlanOptions};
use sha2::{Digest, Sha384};

/// An image with `mib` MiB of distinct data pages and a VMSA.
fn image(mib: u64) -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut dirs: Vec<IgvmDirectiveHeader> = (0..mib * 256)
        .map(|i| {
            let mut data = vec![0u8; 4096];
            for c in data.chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                c.copy_from_slice(&state.to_le_bytes());
            }
            IgvmDirectiveHeader::PageData {
                gpa: 0x10_0000 + i * 4096,
                compatibility_mask: 1,
                flags: IgvmPageDataFlags::new(),
                data_type: IgvmPageDataType::NORMAL,
                data,
            }
        })
        .collect();
    dirs.push(IgvmDirectiveHeader::SnpVpContext {
        gpa: 0xFFFF_FFFF_F000,
        compatibility_mask: 1,
        vp_index: 0,
        vmsa: Box::new(igvm_snp::demo::vmsa()),
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
    .expect("valid benchmark image");
    let mut out = Vec::new();
    f.serialize(&mut out).expect("serializes");
    out
}

fn benches(c: &mut Criterion) {
    let config = LaunchConfig::new(1, vec![GpaRange::new(0, 4 << 30)]);
    for mib in [4u64, 16, 64] {
        let bytes = image(mib);
        let mut g = c.benchmark_group(format!("{mib}MiB"));
        g.sample_size(10);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(BenchmarkId::new("baseline_sha384_file", mib), |b| {
            b.iter(|| Sha384::digest(&bytes))
        });
        g.bench_function(BenchmarkId::new("parse", mib), |b| {
            b.iter(|| igvm_snp::IgvmFile::parse(&bytes).expect("parses"))
        });
        g.bench_function(BenchmarkId::new("plan", mib), |b| {
            b.iter(|| LaunchPlan::new(&bytes, &config, PlanOptions::default()).expect("plans"))
        });
        let plan = LaunchPlan::new(&bytes, &config, PlanOptions::default()).expect("plans");
        g.bench_function(BenchmarkId::new("digest", mib), |b| {
            b.iter(|| plan.launch_digest())
        });
        g.bench_function(BenchmarkId::new("parse_plan_digest", mib), |b| {
            b.iter(|| {
                LaunchPlan::new(&bytes, &config, PlanOptions::default())
                    .expect("plans")
                    .launch_digest()
            })
        });
        g.finish();
    }
}

criterion_group!(plan_benches, benches);
criterion_main!(plan_benches);

//! Parse, plan and digest benchmarks on generated images (bench/image.rs),
//! each size with its baselines in the same run: SHA-384 over the file's
//! bytes once, on one core, with sha2 and (with the `openssl` feature) with
//! libcrypto, which is what `openssl dgst -sha384` does.
//!
//! ```text
//! cargo bench -p igvm-snp --features openssl --bench plan
//! cargo bench -p igvm-snp --bench plan          # page hashes on sha2
//! ```
//!
//! BENCHMARKS.md explains how to read the ratios.

// criterion_group! and criterion_main! generate public functions without docs.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, PlanOptions};
use sha2::{Digest, Sha384};

#[path = "../../../bench/image.rs"]
mod image;

fn benches(c: &mut Criterion) {
    let config = LaunchConfig::new(1, vec![GpaRange::new(0, 4 << 30)]);
    let sizes: Vec<u64> = match std::env::var("IGVM_SNP_BENCH_MIB") {
        Ok(s) => s.split(',').filter_map(|v| v.trim().parse().ok()).collect(),
        Err(_) => vec![4, 16, 64],
    };
    for mib in sizes {
        let bytes = image::image(mib).expect("benchmark image");
        let mut g = c.benchmark_group(format!("{mib}MiB"));
        g.sample_size(10);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(BenchmarkId::new("baseline_sha2_sha384_file", mib), |b| {
            b.iter(|| Sha384::digest(&bytes))
        });
        #[cfg(feature = "openssl")]
        g.bench_function(BenchmarkId::new("baseline_openssl_sha384_file", mib), |b| {
            b.iter(|| openssl::sha::sha384(&bytes))
        });
        g.bench_function(BenchmarkId::new("parse", mib), |b| {
            b.iter(|| igvm_snp::IgvmFile::parse(&bytes).expect("parses"))
        });
        g.bench_function(BenchmarkId::new("plan", mib), |b| {
            b.iter(|| LaunchPlan::new(&bytes, &config, PlanOptions::default()).expect("plans"))
        });
        let plan = LaunchPlan::new(&bytes, &config, PlanOptions::default()).expect("plans");
        assert_eq!(plan.steps().len(), 4, "bench/image.rs promises four steps");
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

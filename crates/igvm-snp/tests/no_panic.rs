//! Nothing panics on input: systematic mutations of valid files (every
//! header byte, every aligned 32/64-bit field set to edge values, every
//! truncation, random multi-byte edits), each with the checksum and file
//! size fixed up so the mutation reaches the deeper checks, go through
//! parse, plan and every plan accessor. A panic fails the test; errors are
//! expected.

mod common;

use common::*;
use igvm::IgvmDirectiveHeader as D;
use igvm_defs::IgvmPlatformType;
use igvm_snp::{IgvmFile, LaunchConfig, LaunchPlan, PlanOptions, SharedPages};

/// Seed files: together they contain every header type the parser decodes.
fn seeds() -> Vec<Vec<u8>> {
    let mut all = base_dirs();
    all.extend([
        area_with(1, 8192, pattern(1, 5000)),
        D::EnvironmentInfo(param(1, 4)),
        D::MemoryMap(param(1, 64)),
        D::CommandLine(param(1, 1024)),
        D::Madt(param(1, 4096)),
        D::MmioRanges(param(1, 8000)),
        insert(0x40_0000, SNP, 1),
        unmeasured(0x3000, pattern(2, 4096)),
        shared(0x5000, vec![]),
        secrets(0x6000),
        cpuid(0x7000, pattern(3, 4096)),
        page_2m(0x60_0000),
        page_for(0x1000, TDX, pattern(4, 4096)),
        id_block([9; 48]),
    ]);
    let full = build(
        vec![snp_platform(), platform(TDX, IgvmPlatformType::TDX)],
        vec![policy(POLICY, SNP), policy(POLICY, TDX)],
        all,
    );
    let v2 = build_rev(
        igvm::IgvmRevision::V2 {
            arch: igvm::Arch::X64,
            page_size: 4096,
        },
        vec![snp_platform()],
        vec![policy(POLICY, SNP)],
        base_dirs(),
    );
    // Initialization headers the builder cannot make here.
    let mut reloc = vec![0u8; 48];
    reloc[0] = 1;
    let with_inits = insert_tlv(&base_file(), 2, T_RELOCATABLE_REGION, &reloc);
    let with_inits = insert_tlv(&with_inits, 2, T_VERSION_STRING, b"version 1");
    vec![base_file(), full, v2, with_inits]
}

fn config_full() -> LaunchConfig {
    let mut c = config().with_command_line("console=ttyS0");
    c.madt = Some(vec![1; 64]);
    c.mmio_ranges = vec![igvm_snp::GpaRange::new(0xF000_0000, 0x1000)];
    c
}

/// Runs everything a caller can do with an input. `deep` also hashes
/// (slow in debug builds, so not for every mutant).
fn exercise(bytes: &[u8], deep: bool) {
    let Ok(file) = IgvmFile::parse(bytes) else {
        return;
    };
    let _ = file.declared_mask();
    let mut options = vec![PlanOptions::default(), PlanOptions::native_zero()];
    let mut o = PlanOptions::default();
    o.shared_pages = SharedPages::MeasuredNormal;
    o.parameter_inserts = igvm_snp::ParameterInserts::FirstPageOnly;
    options.push(o);
    for (i, o) in options.into_iter().enumerate() {
        let cfg = if i == 0 { config_full() } else { config() };
        let Ok(plan) = LaunchPlan::new(bytes, &cfg, o) else {
            continue;
        };
        let _ = plan.require_all_parameters();
        let _ = serde_json::to_string(&plan).expect("a plan serializes");
        let mut buf = vec![0u8; 4096];
        // Bounded: a mutant may insert a 64 MiB area.
        for step in plan.steps() {
            for (_, page) in plan.step_pages(step).take(16) {
                page.write_to(&mut buf);
            }
        }
        for run in plan.shared_runs() {
            for (_, page) in plan.shared_pages(run).take(16) {
                page.write_to(&mut buf);
            }
        }
        let _ = plan.loaded_ranges().count();
        if deep && plan.launched_pages() <= 1100 {
            let d = plan.launch_digest();
            let _ = plan.check_id_block(&d);
            assert_eq!(plan.measure_trace().last().map(|t| t.digest), Some(d));
        }
    }
}

/// Rewrites the fixed header's total size to the actual length and the
/// checksum, so that an edit is not caught by those two checks first.
fn fixed_up(mut b: Vec<u8>) -> Vec<u8> {
    if b.len() >= 24 {
        let len = b.len() as u32;
        set_u32(&mut b, FH_TOTAL_SIZE, len);
    }
    igvm_snp::parse::fix_checksum(&mut b);
    b
}

#[test]
fn seeds_are_valid() {
    let seeds = seeds();
    for (i, s) in seeds[..3].iter().enumerate() {
        LaunchPlan::new(s, &config_full(), PlanOptions::default())
            .unwrap_or_else(|e| panic!("seed {i}: {e}"));
    }
    // The relocatable region makes the last seed unplannable, on purpose.
    IgvmFile::parse(&seeds[3]).unwrap();
}

#[test]
fn every_header_byte() {
    for (n, seed) in seeds().iter().enumerate() {
        let (_, end) = var_section(seed);
        // The ID block's key and signature bytes are copied, never checked.
        let opaque: Vec<_> = tlvs(seed)
            .into_iter()
            .filter(|t| t.typ == T_SNP_ID_BLOCK)
            .map(|t| t.body() + 8..t.body() + t.length as usize)
            .collect();
        for at in (0..end).filter(|at| !opaque.iter().any(|r| r.contains(at))) {
            let orig = seed[at];
            for v in [0x00, 0xFF, orig ^ 0x01, orig ^ 0x80] {
                if v == orig {
                    continue;
                }
                let mut b = seed.clone();
                b[at] = v;
                let b = if !(FH_TOTAL_SIZE..24).contains(&at) {
                    fixed_up(b)
                } else {
                    b
                };
                exercise(&b, (at + n) % 127 == 0);
            }
        }
    }
}

#[test]
fn every_field_to_edge_values() {
    let seed = &seeds()[1];
    let (start, end) = var_section(seed);
    let len = seed.len() as u64;
    let u32s = [
        0,
        1,
        0xFFF,
        0x1000,
        0x8000_0000,
        u32::MAX,
        u32::MAX - 0xFFF,
        end as u32,
        len as u32,
        len as u32 - 1,
        len as u32 - 4096,
    ];
    let u64s = [
        u64::MAX,
        u64::MAX - 0xFFF,
        1 << 63,
        0xFFFF_FFFF_F000,
        0x20_0000,
        0,
    ];
    for at in (start..end).step_by(4) {
        for v in u32s {
            let mut b = seed.clone();
            set_u32(&mut b, at, v);
            exercise(&fixed_up(b), false);
        }
        if at % 8 == 0 && at + 8 <= end {
            for v in u64s {
                let mut b = seed.clone();
                set_u64(&mut b, at, v);
                exercise(&fixed_up(b), false);
            }
        }
    }
    // The fixed header's fields, with and without fix-ups.
    for at in (0..24).step_by(4) {
        for v in u32s {
            let mut b = seed.clone();
            set_u32(&mut b, at, v);
            exercise(&b, false);
            exercise(&fixed_up(b), false);
        }
    }
}

#[test]
fn every_truncation() {
    for seed in seeds() {
        let (_, end) = var_section(&seed);
        let lens = (0..end + 64).chain((end + 64..seed.len()).step_by(509));
        for len in lens {
            let b = seed[..len].to_vec();
            exercise(&b, false);
            exercise(&fixed_up(b.clone()), false);
            // Also with the section shortened to fit.
            if len >= 24 {
                let mut b = b;
                let start = get_u32(&b, FH_VAR_OFFSET) as usize;
                set_u32(&mut b, FH_VAR_SIZE, len.saturating_sub(start) as u32);
                exercise(&fixed_up(b), false);
            }
        }
    }
}

#[test]
fn random_multi_byte_edits() {
    let seeds = seeds();
    let mut r = Rng::new(0x5eed);
    for i in 0..3000 {
        let seed = &seeds[i % seeds.len()];
        let (_, end) = var_section(seed);
        let mut b = seed.clone();
        for _ in 0..1 + r.below(6) {
            // Mostly header bytes, sometimes file data.
            let at = if r.chance(85) {
                r.below(end as u64) as usize
            } else {
                r.below(b.len() as u64) as usize
            };
            b[at] = r.next() as u8;
        }
        exercise(&fixed_up(b), i % 97 == 0);
    }
}

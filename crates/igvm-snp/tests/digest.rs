//! The launch digest against values that do not come from the crate under
//! test: the vectors recorded in the shared notes (igvm-snp-mapping.md §7,
//! kvm-snp-uapi.md §4.3), the independent PAGE_INFO model in
//! `common::oracle*`, and the `igvm` crate's own `generate_snp_measurement`.

mod common;

use common::*;
use igvm::IgvmDirectiveHeader as D;
use igvm_defs::{IgvmPageDataFlags, IgvmPageDataType};
use igvm_snp::{
    DigestChain, LaunchPlan, PageType, ParameterInserts, PlanOptions, SharedPages, ZeroPages,
};
use sha2::{Digest, Sha256};

/// The file of igvm-snp-mapping.md §7, with a parameter area of `area_bytes`.
fn notes_s7_dirs(area_bytes: u64) -> Vec<D> {
    let flags = IgvmPageDataFlags::new;
    vec![
        area(0, area_bytes),
        D::VpCount(param(0, 0)),
        D::EnvironmentInfo(param(0, 4)),
        D::MemoryMap(param(0, 8)),
        insert(0x10000, SNP, 0),
        page(0x1000, vec![0xAB; 4096]),
        page(0x2000, vec![0xCD; 100]),
        page(0x3000, vec![]),
        page_typed(
            0x4000,
            SNP,
            flags().with_unmeasured(true),
            IgvmPageDataType::NORMAL,
            vec![0x01; 4096],
        ),
        page_typed(0x5000, SNP, flags(), IgvmPageDataType::SECRETS, vec![]),
        page_typed(
            0x6000,
            SNP,
            flags(),
            IgvmPageDataType::CPUID_DATA,
            vec![0x02; 4096],
        ),
        page_typed(
            0x7000,
            SNP,
            flags().with_shared(true),
            IgvmPageDataType::NORMAL,
            vec![0x03; 4096],
        ),
        vp_context(0xFFFF_FFFF_F000, SNP, 0, vmsa()),
    ]
}

fn igvmmeasure_options() -> PlanOptions {
    let mut o = PlanOptions::default();
    o.shared_pages = SharedPages::MeasuredNormal;
    o.parameter_inserts = ParameterInserts::FirstPageOnly;
    o
}

const S7_IGVM_4096: &str = "7AE5A1EF4F8683B91C32FA6B36A5D9240DA70B7FC5E41069ACD1B5A552D390ECA8185E9345345FA5E2B3A6E4576F7DF5";
const S7_IGVM_8192: &str = "02CF75105CAC86635F33C1E702291455A315EF9714F983EADE4A544C4571B078E024D623DF3BD3558CD528BFBBEBAD90";
const S7_IGVMMEASURE: &str = "0210101ADD5491BC8E2FB6B1B9EFD46563C7FE5432E37DEAEF397BADC7D2E346AE603F60593AAF0ED661234DA2D33B39";

#[test]
fn notes_s7_file_is_the_one_the_notes_describe() {
    let bytes = snp_file(notes_s7_dirs(4096));
    assert_eq!(bytes.len(), 25_000);
    assert_eq!(
        hex(&Sha256::digest(&bytes)),
        "d06c0e8d7060ebfed8513c023aa7cbe806293822226c890ad2d509c61aa33e29".to_uppercase()
    );
}

#[test]
fn notes_s7_vectors() {
    for (area_bytes, igvm_rules) in [(4096, S7_IGVM_4096), (8192, S7_IGVM_8192)] {
        let dirs = notes_s7_dirs(area_bytes);
        let bytes = snp_file(dirs.clone());
        // Default options = IGVM spec = igvm crate rules.
        let plan = LaunchPlan::new(&bytes, &config(), PlanOptions::default()).unwrap();
        assert_eq!(
            plan.launch_digest().to_string(),
            igvm_rules,
            "area {area_bytes}"
        );
        // The oracle model agrees with the vector.
        let (pages, _) = oracle(&dirs, SNP, OracleOpts::default());
        assert_eq!(hex(&oracle_chain(&pages).0), igvm_rules);
        // igvmmeasure rules: shared measured NORMAL, one insert page; the
        // value does not depend on the area size.
        let plan = LaunchPlan::new(&bytes, &config(), igvmmeasure_options()).unwrap();
        assert_eq!(
            plan.launch_digest().to_string(),
            S7_IGVMMEASURE,
            "area {area_bytes}"
        );
        let o = OracleOpts {
            shared_measured: true,
            insert_first_page_only: true,
            ..Default::default()
        };
        assert_eq!(
            hex(&oracle_chain(&oracle(&dirs, SNP, o).0).0),
            S7_IGVMMEASURE
        );
    }
}

#[test]
fn notes_s7_matches_igvm_crate_measurement() {
    for area_bytes in [4096, 8192, 3 * 4096] {
        let bytes = snp_file(notes_s7_dirs(area_bytes));
        let parsed = igvm::IgvmFile::new_from_binary(&bytes, None).unwrap();
        let theirs = igvm::measurement::generate_snp_measurement(
            parsed.initializations(),
            parsed.directives(),
            SNP,
        )
        .unwrap();
        let plan = LaunchPlan::new(&bytes, &config(), PlanOptions::default()).unwrap();
        assert_eq!(plan.launch_digest().0, theirs, "area {area_bytes}");
    }
}

/// kvm-snp-uapi.md §4.3: checked there with sev-snp-measure and the igvm crate.
#[test]
fn kvm_notes_vector() {
    let mut v = vmsa();
    v.efer = 0x1000;
    v.cr0 = 0x10;
    v.cr4 = 0x40;
    v.rflags = 2;
    v.rip = 0xfff0;
    v.xcr0 = 1;
    let normal: Vec<u8> = (0..4096).map(|i| (i % 251) as u8).collect();
    let dirs = vec![
        page(0x10_0000, normal),
        unmeasured(0x10_1000, pattern(3, 4096)),
        secrets(0x10_2000),
        cpuid(0x10_3000, pattern(4, 4096)),
        vp_context(0x10_4000, SNP, 0, v),
    ];
    let expected = "d37c1c61f57e6c28202bc1dea89bd62837f512bad73229a624193609e83c8aff627f7582a3e20e24a1079372b930d8a5";
    let bytes = snp_file(dirs.clone());
    let plan = LaunchPlan::new(&bytes, &config(), PlanOptions::default()).unwrap();
    assert_eq!(plan.launch_digest().to_string().to_lowercase(), expected);
    let (pages, _) = oracle(&dirs, SNP, OracleOpts::default());
    assert_eq!(hex(&oracle_chain(&pages).0).to_lowercase(), expected);
    let types: Vec<_> = plan.steps().iter().map(|s| s.page_type).collect();
    assert_eq!(
        types,
        [
            PageType::Normal,
            PageType::Unmeasured,
            PageType::Secrets,
            PageType::Cpuid,
            PageType::Vmsa
        ]
    );
}

/// kvm-snp-uapi.md §4.3 single-page vectors (sev-snp-measure): a NORMAL
/// zero page and a ZERO page at GPA 0.
#[test]
fn zero_page_vectors_and_native_zero() {
    const NORMAL_ZERO: &str = "9d13634b6014bb21cf059b2dc694e7bff01a8a7137041100cd2b695f3d10fb687267b97808b27f8f471d943bc6f53a20";
    const ZERO: &str = "70c0ecaab9608f14ebf8ac6f0f07bcd8728f4e2ab30382b539b4de4de904ca9f8ebdf4b2cd3cd84dd996bd55dd794676";
    // The oracle reproduces both from the PAGE_INFO layout.
    let zero_page = OraclePage {
        gpa: 0,
        page_type: 1,
        contents: sha384_page(&[]),
    };
    assert_eq!(
        hex(&oracle_chain(&[zero_page]).0).to_lowercase(),
        NORMAL_ZERO
    );
    let native = OraclePage {
        page_type: 3,
        contents: [0; 48],
        ..zero_page
    };
    assert_eq!(hex(&oracle_chain(&[native]).0).to_lowercase(), ZERO);

    // The plan: a data-less page at GPA 0 is NORMAL by default, ZERO with
    // native_zero(); the first trace entry is the single-page digest.
    let dirs = vec![page(0, vec![]), page(0x1000, pattern(1, 4096)), boot_vmsa()];
    let bytes = snp_file(dirs.clone());
    let plan = LaunchPlan::new(&bytes, &config(), PlanOptions::default()).unwrap();
    let trace = plan.measure_trace();
    assert_eq!(trace[0].page_type, PageType::Normal);
    assert_eq!(trace[0].digest.to_string().to_lowercase(), NORMAL_ZERO);
    let plan_nz = LaunchPlan::new(&bytes, &config(), PlanOptions::native_zero()).unwrap();
    assert_eq!(plan_nz.options().zero_pages, ZeroPages::NativeZero);
    let trace_nz = plan_nz.measure_trace();
    assert_eq!(trace_nz[0].page_type, PageType::Zero);
    assert_eq!(trace_nz[0].digest.to_string().to_lowercase(), ZERO);
    // Data pages are unaffected: the zero page now is a step of its own.
    assert_eq!(plan.steps().len(), 2);
    assert_eq!(plan_nz.steps().len(), 3);
    assert_eq!(plan_nz.steps()[0].page_type, PageType::Zero);
    assert_eq!(plan_nz.steps()[1].page_type, PageType::Normal);
    // Both whole digests agree with the oracle under the same rule, and
    // differ from each other.
    let normal = oracle_chain(&oracle(&dirs, SNP, OracleOpts::default()).0).0;
    let nz = OracleOpts {
        native_zero: true,
        ..Default::default()
    };
    let zero = oracle_chain(&oracle(&dirs, SNP, nz).0).0;
    assert_eq!(plan.launch_digest().0, normal);
    assert_eq!(plan_nz.launch_digest().0, zero);
    assert_ne!(normal, zero);
}

#[test]
fn digest_chain_matches_hand_laid_page_info() {
    let pages = [
        OraclePage {
            gpa: 0x1234_5000,
            page_type: 1,
            contents: sha384_page(&pattern(5, 4096)),
        },
        OraclePage {
            gpa: 0xFFFF_FFFF_F000,
            page_type: 2,
            contents: sha384_page(&pattern(6, 77)),
        },
        OraclePage {
            gpa: 0x7000,
            page_type: 6,
            contents: [0; 48],
        },
    ];
    let mut chain = DigestChain::new();
    for p in &pages {
        chain.update(
            PageType::from_value(p.page_type).unwrap(),
            p.gpa,
            &p.contents,
        );
    }
    assert_eq!(chain.digest().0, oracle_chain(&pages).0);
    assert_eq!(
        igvm_snp::page_hash(&pattern(6, 77)),
        sha384_page(&pattern(6, 77))
    );
    assert_eq!(*igvm_snp::zero_page_hash(), sha384_page(&[]));
}

/// The trace page by page equals the oracle's page list and running
/// digests, under every option combination.
#[test]
fn measure_trace_equals_oracle_under_all_options() {
    let dirs = notes_s7_dirs(3 * 4096);
    let bytes = snp_file(dirs.clone());
    for native_zero in [false, true] {
        for shared_measured in [false, true] {
            for first_only in [false, true] {
                let mut o = PlanOptions::default();
                if native_zero {
                    o.zero_pages = ZeroPages::NativeZero;
                }
                if shared_measured {
                    o.shared_pages = SharedPages::MeasuredNormal;
                }
                if first_only {
                    o.parameter_inserts = ParameterInserts::FirstPageOnly;
                }
                let oo = OracleOpts {
                    native_zero,
                    shared_measured,
                    insert_first_page_only: first_only,
                };
                let plan = LaunchPlan::new(&bytes, &config(), o).unwrap();
                let (pages, _) = oracle(&dirs, SNP, oo);
                assert_matches_oracle(&plan, &pages, &format!("{oo:?}"));
            }
        }
    }
}

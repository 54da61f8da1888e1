//! The fuzz seed corpus: generated files (fuzz/src/support/seeds.rs) that
//! must do what each seed says, replayed through the fuzzers' own checks.
//!
//! The example `write-fuzz-seeds` writes them for the fuzzers
//! (`fuzz/seeds.sh`, `fuzz/ci.sh`).

#[allow(dead_code)]
#[path = "../../../fuzz/src/support/mod.rs"]
mod support;

use support::checks;
use support::differential::{self, Verdict};
use support::seeds::{Expect, seeds, variant};

#[test]
fn every_seed_does_what_it_says() {
    for seed in seeds() {
        let outcome = checks::exercise(&seed.bytes);
        let got = match (&outcome.parse_error, outcome.plans.first()) {
            (Some(e), _) => Expect::ParseError(leak(variant(e))),
            (None, Some(Ok(_))) => Expect::Plans,
            (None, Some(Err(e))) => Expect::PlanError(leak(variant(e))),
            (None, None) => panic!("{}: parsed but not planned", seed.name),
        };
        assert_eq!(got, seed.expect, "seed {}", seed.name);
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Files the `igvm` crate's builder wrote are read alike by both parsers;
/// the byte-level seeds show the known disagreements.
#[test]
fn seeds_through_the_differential() {
    for seed in seeds() {
        let verdict = differential::compare(&seed.bytes);
        let expected = match seed.name {
            // An optional header of unknown type: the igvm crate rejects
            // every unknown type, the spec lets loaders skip optional ones.
            "raw-optional-version-shared-data" => {
                assert!(
                    matches!(verdict, Verdict::OnlyOursAccepted { .. }),
                    "{}: {verdict:?}",
                    seed.name
                );
                continue;
            }
            // The igvm crate has no bound on parameter areas.
            "bad-area-1gib" => Verdict::OnlyIgvmAccepted {
                ours: "ParameterAreaTooLarge".into(),
            },
            "bad-file-offset-wraps-u32" => Verdict::BothRejected,
            _ => Verdict::BothAccepted { notes: Vec::new() },
        };
        assert_eq!(verdict, expected, "seed {}", seed.name);
    }
}

#[test]
fn seeds_are_distinct_and_small() {
    let all = seeds();
    for (i, a) in all.iter().enumerate() {
        assert!(
            a.bytes.len() <= 64 << 10,
            "{} is {} bytes",
            a.name,
            a.bytes.len()
        );
        for b in &all[i + 1..] {
            assert_ne!(a.name, b.name);
            assert_ne!(
                a.bytes, b.bytes,
                "{} and {} are the same file",
                a.name, b.name
            );
        }
    }
}

/// The fuzzers' own PAGE_INFO chain reproduces the single-page vectors of
/// sev-snp-measure (shared notes), so it is a fair judge of the library's.
#[test]
fn independent_chain_matches_published_vectors() {
    let hex = |d: [u8; 48]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    // ZERO page at GPA 0: contents field zero.
    assert_eq!(
        hex(checks::page_info_link(&[0; 48], &[0; 48], 3, 0)),
        "70c0ecaab9608f14ebf8ac6f0f07bcd8728f4e2ab30382b539b4de4de904ca9f\
         8ebdf4b2cd3cd84dd996bd55dd794676"
    );
    // NORMAL page of zeros at GPA 0: contents = SHA-384 of 4096 zero bytes.
    use sha2::{Digest, Sha384};
    let zeros: [u8; 48] = Sha384::digest([0u8; 4096]).into();
    assert_eq!(
        hex(checks::page_info_link(&[0; 48], &zeros, 1, 0)),
        "9d13634b6014bb21cf059b2dc694e7bff01a8a7137041100cd2b695f3d10fb68\
         7267b97808b27f8f471d943bc6f53a20"
    );
}

/// The report target's seeds, through its body: the real report parses and
/// verifies with its own VCEK only, not the test one; zeroed reports parse.
#[test]
fn report_seeds_run_through_the_report_target() {
    let mut kinds = Vec::new();
    for (name, bytes) in support::seeds::report_seeds() {
        support::targets::report(&bytes, &mut |k| kinds.push(format!("{name}: {k}")));
    }
    for expected in [
        "milan-report: report v2 signature false",
        "milan-vcek: certificate extensions true p384 true",
        "milan-ark: certificate extensions true p384 false",
        "test-vcek: certificate extensions true p384 true",
        "zero-v5: report v5 signature false",
    ] {
        assert!(kinds.iter().any(|k| k == expected), "{expected}: {kinds:?}");
    }
}

//! Replays every committed fuzz regression input (`fuzz/regressions/<target>/`)
//! through the body of the target that found it, outside libFuzzer, plus the
//! hostile files the fuzzing issue names, each rejected with a stated reason.
//! Origins of the committed inputs: fuzz/README.md.

#[allow(dead_code)]
#[path = "../../../fuzz/src/support/mod.rs"]
mod support;

#[allow(dead_code)]
#[path = "../../../fuzz/src/structured.rs"]
mod structured;

use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use igvm_defs::{
    IGVM_VHS_PAGE_DATA, IGVM_VHS_PARAMETER_AREA, IGVM_VHS_RELOCATABLE_REGION, IGVM_VHS_VP_CONTEXT,
    IgvmPageDataFlags, IgvmPageDataType,
};
use igvm_snp::{Error, LaunchConfig, LaunchPlan, PlanOptions};
use zerocopy::FromZeros;

use support::raw::{RawFile, typ};
use support::seeds::{POLICY, SNP, raw_platform_and_policy, variant};
use support::{checks, targets};

fn regressions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions")
}

/// The committed inputs of one target, sorted by name.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = regressions().join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("readable regression input"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_committed_regression_replays() {
    let mut replayed = 0;
    let mut ignore = |_: String| {};
    for target in ["raw", "checksummed", "differential", "structured", "report"] {
        for (name, bytes) in inputs(target) {
            eprintln!("replaying {target}/{name}");
            match target {
                "raw" => targets::raw(&bytes, &mut ignore),
                "report" => targets::report(&bytes, &mut ignore),
                "checksummed" => targets::checksummed(&bytes, &mut ignore),
                "differential" => targets::differential(&bytes, &mut ignore),
                _ => {
                    let input = structured::Input::arbitrary_take_rest(Unstructured::new(&bytes))
                        .expect("libFuzzer found this input decodable");
                    structured::run(&input, &mut ignore);
                }
            }
            replayed += 1;
        }
    }
    // Every directory under fuzz/regressions is a target replayed above.
    for entry in std::fs::read_dir(regressions()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            ["raw", "checksummed", "differential", "structured"].contains(&name.as_str()),
            "fuzz/regressions/{name} is not a target"
        );
    }
    assert!(
        replayed > 0,
        "no regression input found in {:?}",
        regressions()
    );
}

/// The first crash the fuzzer found, `structured/vmsa-at-last-page`: a VP
/// context at GPA 2^64 - 4096, whose end overflowed in the overlap check. It
/// must be refused as a GPA range overflow.
#[test]
fn vmsa_on_the_last_page_is_an_overflow_error() {
    let bytes = inputs("structured")
        .into_iter()
        .find(|(n, _)| n == "vmsa-at-last-page")
        .expect("committed input")
        .1;
    let input = structured::Input::arbitrary_take_rest(Unstructured::new(&bytes)).unwrap();
    let mut file = Vec::new();
    input.to_file().unwrap().serialize(&mut file).unwrap();
    let config = LaunchConfig::new(1, Vec::new()).with_default_policy(POLICY);
    let err = LaunchPlan::new(&file, &config, PlanOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::GpaRangeOverflow {
                gpa: 0xFFFF_FFFF_FFFF_F000,
                pages: 1,
                ..
            }
        ),
        "{err:?}"
    );
}

fn parse_err(bytes: &[u8]) -> Error {
    let outcome = checks::exercise(bytes);
    outcome.parse_error.expect("the file must not parse")
}

/// From the issue: a file offset plus size wrapping past u32.
#[test]
fn page_data_offset_plus_size_wrapping_u32_is_refused() {
    for (file_offset, flags) in [
        (0xFFFF_F001u32, IgvmPageDataFlags::new()),
        (0xFFFF_FFFF, IgvmPageDataFlags::new()),
        (0xFFE0_0001, IgvmPageDataFlags::new().with_is_2mb_page(true)),
    ] {
        let mut f = RawFile::new();
        raw_platform_and_policy(&mut f);
        f.header(
            typ::PAGE_DATA,
            &IGVM_VHS_PAGE_DATA {
                gpa: 0,
                compatibility_mask: SNP,
                file_offset,
                flags,
                data_type: IgvmPageDataType::NORMAL,
                reserved: 0,
            },
        );
        f.data(&[0xAA; 64]);
        let err = parse_err(&f.build());
        assert!(
            matches!(err, Error::FileDataOutOfBounds { file_offset: o, .. } if o == file_offset),
            "{err:?}"
        );
    }
}

/// Found by the `checksummed` target
/// (`checksummed/parameter-area-offset-plus-size-wraps-u64`): a parameter
/// area with initial data at a file offset and a size near 2^64, whose end
/// wrapped (a panic under overflow checks) before the size was checked.
#[test]
fn parameter_area_offset_plus_size_wrapping_u64_is_refused() {
    for number_of_bytes in [u64::MAX - 1, u64::MAX - 4095, u64::MAX] {
        let mut f = RawFile::new();
        raw_platform_and_policy(&mut f);
        let at = f.data(&[0x22; 64]);
        f.header_with_data(
            typ::PARAMETER_AREA,
            &IGVM_VHS_PARAMETER_AREA {
                number_of_bytes,
                parameter_area_index: 0,
                file_offset: at,
            },
            12,
        );
        let err = parse_err(&f.build());
        assert!(
            matches!(err, Error::FileDataOutOfBounds { len, .. } if len == number_of_bytes),
            "{err:?}"
        );
    }
}

/// From the issue: a variable-header section whose offset plus size wraps
/// past u32.
#[test]
fn header_section_wrapping_u32_is_refused() {
    let mut bytes = igvm_snp::demo::demo_igvm();
    // variable_header_size at offset 12 of the fixed header.
    bytes[12..16].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let err = parse_err(&bytes);
    assert!(
        matches!(
            err,
            Error::VariableHeaderSectionOutOfBounds {
                size: 0xFFFF_FFF0,
                ..
            }
        ),
        "{err:?}"
    );
    // Same with the checksum made to match, as the `checksummed` target does.
    let err = parse_err(&checks::with_fixed_checksum(&bytes));
    assert!(
        matches!(err, Error::VariableHeaderSectionOutOfBounds { .. }),
        "{err:?}"
    );
}

/// From the issue: an alignment of zero. A relocatable region (whose
/// alignment other loaders divide by) is refused for SEV-SNP without using
/// the alignment; a zero-sized parameter area is refused at parse time.
#[test]
fn zero_alignment_and_zero_sizes_are_refused() {
    let mut f = RawFile::new();
    raw_platform_and_policy(&mut f);
    let mut region = IGVM_VHS_RELOCATABLE_REGION::new_zeroed();
    region.compatibility_mask = SNP;
    region.relocation_alignment = 0;
    region.relocation_region_size = 0x1000;
    f.header(0x102, &region);
    let bytes = f.build();
    let outcome = checks::exercise(&bytes);
    assert!(outcome.parse_error.is_none(), "{:?}", outcome.parse_error);
    for plan in &outcome.plans {
        let err = plan.as_ref().unwrap_err();
        assert!(matches!(err, Error::UnsupportedForSnp { .. }), "{err:?}");
    }

    let mut f = RawFile::new();
    raw_platform_and_policy(&mut f);
    f.header(
        typ::PARAMETER_AREA,
        &IGVM_VHS_PARAMETER_AREA {
            number_of_bytes: 0,
            parameter_area_index: 0,
            file_offset: 0,
        },
    );
    let err = parse_err(&f.build());
    assert!(
        matches!(err, Error::ParameterAreaSize { size: 0, .. }),
        "{err:?}"
    );
}

/// A VP context whose 4 KiB VMSA would run past the end of the file is not
/// read past it.
#[test]
fn vmsa_running_past_the_file_end_is_refused() {
    let mut f = RawFile::new();
    raw_platform_and_policy(&mut f);
    let at = f.data(&[0x11; 100]);
    f.header_with_data(
        typ::VP_CONTEXT,
        &IGVM_VHS_VP_CONTEXT {
            gpa: 0x1000u64.into(),
            compatibility_mask: SNP,
            file_offset: at,
            vp_index: 0,
            reserved: 0,
        },
        12,
    );
    let outcome = checks::exercise(&f.build());
    let errors: Vec<String> = match &outcome.parse_error {
        Some(e) => vec![variant(e)],
        None => outcome
            .plans
            .iter()
            .map(|p| variant(p.as_ref().unwrap_err()))
            .collect(),
    };
    assert!(
        errors.iter().all(|e| e == "FileDataOutOfBounds"),
        "{errors:?}"
    );
}

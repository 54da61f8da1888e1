//! A CPUID page the firmware rejects: the corrected entries come back in
//! the caller's buffer, the error lists the differences entry by entry,
//! and the one-time retry is the caller's explicit choice.

mod sev_support;

use igvm_snp::PageType;
use igvm_snp_kvm::sev::{
    CpuidFunction, CpuidRetry, FirmwareError, LaunchUpdate, ModelConfig, SevError, SnpCpuidInfo,
    SnpFirmware,
};
use sev_support::started;
use zerocopy::IntoBytes;

fn entry(eax_in: u32, ecx_in: u32, regs: [u32; 4]) -> CpuidFunction {
    CpuidFunction {
        eax_in,
        ecx_in,
        eax: regs[0],
        ebx: regs[1],
        ecx: regs[2],
        edx: regs[3],
        ..CpuidFunction::default()
    }
}

/// A CPUID page with these entries, built byte by byte at the ABI offsets
/// (count at 0, entries from 16, 48 bytes each, registers from +24).
fn page(entries: &[(u32, u32, [u32; 4])]) -> Vec<u8> {
    let mut p = vec![0u8; 4096];
    p[..4].copy_from_slice(&(entries.len() as u32).to_le_bytes());
    for (i, (leaf, sub, regs)) in entries.iter().enumerate() {
        let base = 16 + 48 * i;
        p[base..base + 4].copy_from_slice(&leaf.to_le_bytes());
        p[base + 4..base + 8].copy_from_slice(&sub.to_le_bytes());
        for (r, v) in regs.iter().enumerate() {
            let at = base + 24 + 4 * r;
            p[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
    }
    p
}

fn config() -> ModelConfig {
    ModelConfig {
        cpuid_expected: vec![
            entry(0x8000_001d, 3, [0x163, 0x3c0_003f, 0x3fff, 2]),
            entry(7, 0, [0, 0x219c_91a9, 0, 0]),
        ],
        ..ModelConfig::default()
    }
}

const SUBMITTED: [(u32, u32, [u32; 4]); 3] = [
    (1, 0, [0xa00f11, 0x800, 0x7ed8_320b, 0x178b_fbff]),
    (0x8000_001d, 3, [0x163, 0x3c0_003f, 0x3fff, 6]),
    (7, 0, [0, 0x219c_91ab, 0, 0]),
];

#[test]
fn rejection_writes_back_and_lists_each_entry() {
    let mut m = started(config());
    let mut buf = page(&SUBMITTED);
    let submitted = buf.clone();
    let e = m
        .launch_update(&mut LaunchUpdate::with_source(0x80e000, PageType::Cpuid, &mut buf).unwrap())
        .unwrap_err();
    let SevError::CpuidRejected {
        context,
        errno,
        diff,
        retried,
    } = &e
    else {
        panic!("{e}");
    };
    assert_eq!(errno.errno(), libc::EIO);
    assert_eq!(e.firmware(), Some(FirmwareError::InvalidParam));
    assert!(!retried);
    assert_eq!(context.gpa, Some(0x80e000));
    assert_eq!(diff.gpa, 0x80e000);
    assert_eq!((diff.provided_count, diff.expected_count), (3, 3));
    type Row = (usize, u32, u32, [u32; 4], [u32; 4]);
    let got: Vec<Row> = diff
        .mismatches
        .iter()
        .map(|m| {
            (
                m.slot,
                m.provided.eax_in,
                m.provided.ecx_in,
                m.provided.registers(),
                m.expected.registers(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                1,
                0x8000_001d,
                3,
                [0x163, 0x3c0_003f, 0x3fff, 6],
                [0x163, 0x3c0_003f, 0x3fff, 2]
            ),
            (2, 7, 0, [0, 0x219c_91ab, 0, 0], [0, 0x219c_91a9, 0, 0]),
        ]
    );
    let text = e.to_string();
    assert!(text.contains("function 0x8000001d index 0x3"), "{text}");
    assert!(text.contains("function 0x7 index 0x0"), "{text}");

    // The caller's buffer now holds the firmware's values; leaf 1 kept.
    let corrected = SnpCpuidInfo::from_page(&buf).unwrap();
    assert_eq!(corrected.entries[0].as_bytes(), &submitted[16..64]);
    assert_eq!(corrected.entries[1].edx, 2);
    assert_eq!(corrected.entries[2].ebx, 0x219c_91a9);
    // Nothing was measured; submitting the corrected page now succeeds.
    assert!(m.measured().is_empty());
    m.launch_update(&mut LaunchUpdate::with_source(0x80e000, PageType::Cpuid, &mut buf).unwrap())
        .unwrap();
    assert_eq!(m.measured().len(), 1);
}

#[test]
fn retry_once_when_the_caller_asks() {
    let mut m = started(config());
    let mut buf = page(&SUBMITTED);
    let mut u = LaunchUpdate::with_source(0x80e000, PageType::Cpuid, &mut buf)
        .unwrap()
        .cpuid_retry(CpuidRetry::OnceWithCorrection);
    let report = m.launch_update(&mut u).unwrap();
    assert_eq!(report.ioctl_calls, 2);
    let diff = report.cpuid_corrected.expect("the accepted correction");
    assert_eq!(diff.mismatches.len(), 2);
    assert_eq!(m.update_ioctls(), 2);
    assert_eq!(m.measured().len(), 1);
}

#[test]
fn retry_that_fails_again_is_reported_as_retried() {
    // A count above 64 is rejected without correction, so the retry fails.
    let mut m = started(config());
    let mut buf = page(&SUBMITTED);
    buf[..4].copy_from_slice(&65u32.to_le_bytes());
    let mut u = LaunchUpdate::with_source(0x80e000, PageType::Cpuid, &mut buf)
        .unwrap()
        .cpuid_retry(CpuidRetry::OnceWithCorrection);
    let e = m.launch_update(&mut u).unwrap_err();
    assert!(
        matches!(e, SevError::CpuidRejected { retried: true, .. }),
        "{e}"
    );
    assert_eq!(m.update_ioctls(), 2);
}

#[test]
fn a_valid_page_passes_untouched() {
    let mut m = started(config());
    let mut buf = page(&[(0x8000_001d, 3, [0x163, 0x3c0_003f, 0x3fff, 2])]);
    let before = buf.clone();
    let report = m
        .launch_update(&mut LaunchUpdate::with_source(0x80e000, PageType::Cpuid, &mut buf).unwrap())
        .unwrap();
    assert_eq!((report.ioctl_calls, report.cpuid_corrected), (1, None));
    assert_eq!(buf, before);
}

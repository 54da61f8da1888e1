//! The bodies of the byte-level fuzz targets, shared with the replay test so
//! that a committed regression input runs exactly what the fuzzer ran. Each
//! reports the kind of outcome through `record` (the fuzz targets tally
//! them; the tests ignore them).

use super::seeds::variant;
use super::{checks, differential};

/// Target 1, `raw`: the bytes as they are.
pub fn raw(data: &[u8], record: &mut dyn FnMut(String)) {
    let outcome = checks::exercise(data);
    if let Some(e) = &outcome.parse_error {
        record(format!("parse error {}", variant(e)));
    } else if outcome.planned() {
        record("planned".into());
    }
}

/// Target 2, `checksummed`: size and CRC-32 recomputed first.
pub fn checksummed(data: &[u8], record: &mut dyn FnMut(String)) {
    let outcome = checks::exercise(&checks::with_fixed_checksum(data));
    if let Some(e) = &outcome.parse_error {
        record(format!("parse error {}", variant(e)));
    }
    for plan in &outcome.plans {
        match plan {
            Ok(_) => record("planned".into()),
            Err(e) => record(format!("plan error {}", variant(e))),
        }
    }
}

/// Target 4, `differential`: size and CRC-32 recomputed, then both parsers;
/// a file either accepts also goes through parse → plan → digest.
pub fn differential(data: &[u8], record: &mut dyn FnMut(String)) {
    let bytes = checks::with_fixed_checksum(data);
    let verdict = differential::compare(&bytes);
    record(verdict.key());
    if !matches!(verdict, differential::Verdict::BothRejected) {
        checks::exercise(&bytes);
    }
}

//! Tallies of outcomes seen while fuzzing. Each kind is printed to stderr
//! the first time it is seen, and appended to the file named by
//! `IGVM_SNP_FUZZ_LOG` when that is set, so a run's findings (for example
//! every kind of parser disagreement) can be written into fuzz/README.md.

use std::collections::HashSet;
use std::io::Write;
use std::sync::Mutex;

static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Records one outcome of `target`, printing it if it is new.
pub fn outcome(target: &str, key: &str) {
    let Ok(mut seen) = SEEN.lock() else { return };
    let seen = seen.get_or_insert_with(HashSet::new);
    if seen.contains(key) {
        return;
    }
    seen.insert(key.to_owned());
    let line = format!("[{target}] new outcome: {key}");
    eprintln!("{line}");
    let file = std::env::var_os("IGVM_SNP_FUZZ_LOG").and_then(|path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
    });
    if let Some(mut f) = file {
        let _ = writeln!(f, "{line}");
    }
}

//! Writes the fuzz seed corpus (`fuzz/src/support/seeds.rs`) to
//! `DIR/<target>/<name>` for the fuzz targets whose input is an IGVM file,
//! and the report target's seeds to `DIR/report`; the structure-aware
//! target starts from an empty `DIR/structured`.
//!
//! ```text
//! cargo run -p igvm-snp --example write-fuzz-seeds -- DIR
//! ```
//!
//! `fuzz/ci.sh` and `fuzz/seeds.sh` call it. A tool, not a test: what the
//! seeds must do is checked by `crates/igvm-snp/tests/fuzz_seeds.rs`.

#[allow(dead_code)]
#[path = "../../../fuzz/src/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::ExitCode;

/// Targets whose input is an IGVM file.
const FILE_TARGETS: [&str; 3] = ["raw", "checksummed", "differential"];

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: write-fuzz-seeds DIR");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    let seeds = support::seeds::seeds();
    let write = || -> std::io::Result<()> {
        for target in FILE_TARGETS {
            let dir = dir.join(target);
            std::fs::create_dir_all(&dir)?;
            for seed in &seeds {
                std::fs::write(dir.join(seed.name), &seed.bytes)?;
            }
        }
        let reports = dir.join("report");
        std::fs::create_dir_all(&reports)?;
        for (name, bytes) in support::seeds::report_seeds() {
            std::fs::write(reports.join(name), bytes)?;
        }
        std::fs::create_dir_all(dir.join("structured"))
    };
    match write() {
        Ok(()) => {
            println!(
                "wrote {} seeds for each of {} and {} for report under {}",
                seeds.len(),
                FILE_TARGETS.join(", "),
                support::seeds::report_seeds().len(),
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot write the seeds under {}: {e}", dir.display());
            ExitCode::from(1)
        }
    }
}

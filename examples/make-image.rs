//! Writes a synthetic SEV-SNP IGVM image of a given size, for benchmarks
//! (bench/compare.sh; the shape is described in bench/image.rs).
//!
//! ```text
//! cargo run --release --example make-image -- SIZE_MIB FILE
//! ```

use std::process::ExitCode;

#[path = "../bench/image.rs"]
mod image;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(size), Some(path)) = (args.get(1).and_then(|s| s.parse::<u64>().ok()), args.get(2))
    else {
        eprintln!("usage: make-image SIZE_MIB FILE");
        return ExitCode::from(2);
    };
    let bytes = match image::image(size) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = std::fs::write(path, &bytes) {
        eprintln!("error: cannot write {path}: {e}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

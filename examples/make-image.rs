//! Writes a synthetic SEV-SNP IGVM image for benchmarks (bench/compare.sh):
//! an honest image of a given size (the shape is described in
//! bench/image.rs), or one of the two hostile files of bench/hostile.rs.
//!
//! ```text
//! cargo run --release --example make-image -- SIZE_MIB FILE
//! cargo run --release --example make-image -- hostile-dataless FILE
//! cargo run --release --example make-image -- hostile-shared FILE
//! cargo run --release --example make-image -- hostile-shared FILE 64   # 64 2 MiB pages, not 1,024
//! ```

use std::process::ExitCode;

#[path = "../bench/hostile.rs"]
mod hostile;
#[path = "../bench/image.rs"]
mod image;
#[allow(dead_code)]
#[path = "../fuzz/src/support/mod.rs"]
mod support;

use hostile::Hostile;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(what), Some(path)) = (args.get(1), args.get(2)) else {
        eprintln!(
            "usage: make-image SIZE_MIB FILE | make-image hostile-dataless|hostile-shared FILE [HUGE_PAGES]"
        );
        return ExitCode::from(2);
    };
    let bytes = match what.as_str() {
        "hostile-dataless" | "hostile-shared" => {
            let kind = if what == "hostile-shared" {
                Hostile::SharedData
            } else {
                Hostile::DataLess
            };
            match args.get(3).map(|n| n.parse::<u64>()) {
                None => Ok(hostile::hostile(kind, hostile::HUGE_PAGES)),
                Some(Ok(n)) if (1..=hostile::HUGE_PAGES).contains(&n) => {
                    Ok(hostile::hostile(kind, n))
                }
                Some(_) => {
                    eprintln!("error: HUGE_PAGES is 1 to {}", hostile::HUGE_PAGES);
                    return ExitCode::from(2);
                }
            }
        }
        size => match size.parse::<u64>() {
            // The image is built in memory: up to 4 GiB, the most an IGVM
            // file's 32-bit offsets address.
            Ok(size @ 0..=4095) => image::image(size),
            Ok(_) => {
                eprintln!("error: SIZE_MIB is at most 4095 (an IGVM file is under 4 GiB)");
                return ExitCode::from(2);
            }
            Err(_) => {
                eprintln!(
                    "usage: make-image SIZE_MIB FILE | make-image hostile-dataless|hostile-shared FILE [HUGE_PAGES]"
                );
                return ExitCode::from(2);
            }
        },
    };
    let bytes = match bytes {
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

//! Scratch files for tests that map files into guest memory.

use std::fs::File;
use std::path::PathBuf;

/// A new read-write file of `len` bytes in the temporary directory, named
/// after `name` and this process (so /proc/self/maps names it uniquely),
/// filled with `fill`; the caller removes it.
///
/// # Panics
/// When the file cannot be created or written (a test setup failure).
pub fn scratch_file(name: &str, len: usize, fill: u8) -> (PathBuf, File) {
    use std::io::Write;
    let path = std::env::temp_dir().join(format!("igvm-snp-{name}-{}", std::process::id()));
    let mut file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    file.write_all(&vec![fill; len])
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    (path, file)
}

//! Progress lines on stderr for long phases: "hashing 16384 pages…" before,
//! "done in 1.23 s" after. Only when stderr is a terminal and `--quiet` is
//! not given, and only for phases of at least [`LONG_PHASE_PAGES`] pages.

use std::io::{IsTerminal, Write};
use std::time::Instant;

/// Phases over fewer pages (64 MiB) are quick enough to go unannounced.
pub const LONG_PHASE_PAGES: u64 = 16384;

/// Where progress goes, if anywhere.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    enabled: bool,
}

impl Progress {
    /// Progress on stderr when it is a terminal and not `quiet`.
    pub fn new(quiet: bool) -> Self {
        Progress {
            enabled: !quiet && std::io::stderr().is_terminal(),
        }
    }

    /// Runs `f`, announcing it as "`what` `pages` pages…" when it is long.
    pub fn phase<T>(&self, what: &str, pages: u64, f: impl FnOnce() -> T) -> T {
        if self.enabled {
            phase_to(&mut std::io::stderr().lock(), what, pages, f)
        } else {
            f()
        }
    }
}

/// [`Progress::phase`] writing to `w`. Progress is best effort: a write
/// error is ignored.
fn phase_to<T>(w: &mut impl Write, what: &str, pages: u64, f: impl FnOnce() -> T) -> T {
    if pages < LONG_PHASE_PAGES {
        return f();
    }
    let _ = write!(w, "{what} {pages} pages…");
    let _ = w.flush();
    let start = Instant::now();
    let out = f();
    let _ = writeln!(w, " done in {:.2} s", start.elapsed().as_secs_f64());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_phases_are_announced_and_timed() {
        let mut w = Vec::new();
        let v = phase_to(&mut w, "hashing", LONG_PHASE_PAGES, || 7);
        assert_eq!(v, 7);
        let text = String::from_utf8(w).unwrap();
        assert!(text.starts_with("hashing 16384 pages… done in "), "{text}");
        assert!(text.ends_with(" s\n"), "{text}");
    }

    #[test]
    fn short_phases_are_silent() {
        let mut w = Vec::new();
        phase_to(&mut w, "hashing", LONG_PHASE_PAGES - 1, || ());
        assert!(w.is_empty());
    }

    #[test]
    fn disabled_progress_runs_the_phase() {
        let p = Progress { enabled: false };
        assert_eq!(p.phase("loading", u64::MAX, || 3), 3);
    }
}

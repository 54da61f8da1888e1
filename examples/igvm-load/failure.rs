//! Failures as the user sees them: `error: what and where`, then one
//! `caused by:` line per cause.

use std::error::Error as StdError;
use std::fmt;
use std::io::Write;

use crate::Failure;

/// A failure with context: what was being done, and the error that stopped it.
#[derive(Debug)]
pub struct Context {
    what: String,
    source: Failure,
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl StdError for Context {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self.source.as_ref())
    }
}

/// Wraps an error with what was being done.
pub fn context(what: impl Into<String>, source: impl Into<Failure>) -> Failure {
    Box::new(Context {
        what: what.into(),
        source: source.into(),
    })
}

/// Writes `error: …` and its causes. A cause whose text its parent already
/// shows (errors that print their source inline) is not repeated.
pub fn write_failure(w: &mut impl Write, e: &(dyn StdError + 'static)) -> std::io::Result<()> {
    let mut shown = e.to_string();
    writeln!(w, "error: {shown}")?;
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !shown.contains(&text) {
            writeln!(w, "  caused by: {text}")?;
        }
        shown = text;
        cause = c.source();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that shows its source inline, as many `thiserror` ones do.
    #[derive(Debug)]
    struct Inline(std::io::Error);

    impl fmt::Display for Inline {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "step 3 failed: {}", self.0)
        }
    }

    impl StdError for Inline {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn causes_follow_and_inline_ones_are_not_repeated() {
        let io = std::io::Error::other("disk on fire");
        let e = context("demo.igvm: launch failed", Inline(io));
        let mut w = Vec::new();
        write_failure(&mut w, e.as_ref()).unwrap();
        assert_eq!(
            String::from_utf8(w).unwrap(),
            "error: demo.igvm: launch failed\n  caused by: step 3 failed: disk on fire\n"
        );
    }
}

//! What a command concluded, and the exit code that tells a script.
//!
//! Every command but `run` (which exits with its command's own code) ends in an [`Outcome`];
//! the codes are documented in `cli::EXIT_CODES` and the man pages.

use std::process::ExitCode;

/// What a command concluded, as an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 0: success, or a positive answer.
    Success,
    /// 1: a negative answer (`fits` does not fit, `ps --exit-status` found nothing).
    No,
    /// 2: could not measure, or bad usage.
    CouldNotTell,
}

impl From<Outcome> for u8 {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Success => 0,
            Outcome::No => 1,
            Outcome::CouldNotTell => 2,
        }
    }
}

impl From<Outcome> for ExitCode {
    fn from(outcome: Outcome) -> Self {
        Self::from(u8::from(outcome))
    }
}

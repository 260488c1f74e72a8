//! The terminal `hmn top` draws on: raw mode and the alternate screen, restored on exit, on a
//! panic and on SIGTERM; the size, with fallbacks when the terminal reports 0×0; and the
//! event loop that redraws only on new data or input.

use crate::cli::{GlobalArgs, TopArgs};
use crate::outcome::Outcome;
use crate::output::Output;

/// Runs the screen until the user quits.
pub(crate) fn run(_global: &GlobalArgs, _args: &TopArgs, out: &Output) -> Outcome {
    out.say("hmn top: not built yet");
    Outcome::CouldNotTell
}

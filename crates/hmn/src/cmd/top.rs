//! `hmn top`: a screen a person keeps open on a GPU machine.
//!
//! Why: `hmn watch` is a log that scrolls; the tools people keep open (nvtop, nvitop, btop)
//! freeze or truncate with 8–64 GPUs, miss processes in containers, show unknown figures as
//! 0 and draw history only as wide as the terminal. `top` is one more view on the library's
//! [`hypomnesis::Monitor`]: the same frames every other command shows, with the monitor's
//! min/max-preserving history behind the charts.
//!
//! How, module by module:
//! - [`app`]: the whole state of the screen and the one function that changes it
//!   ([`app::App::update`]), pure, so every key and click is tested without a terminal;
//! - [`rows`] the process table's rows (sort, tree, filter applied) and [`filter`] its query
//!   language;
//! - [`charts`]: the history the chart shows, read from the monitor when a frame arrives;
//! - [`ui`]: drawing the state into a ratatui buffer (layout, panels, overlays) and
//!   [`theme`] its colours;
//! - [`source`]: where frames come from (a live monitor, or a recording played back);
//!   [`recording`] writes what `R` records; [`terminal`] owns the terminal (raw mode, the
//!   alternate screen, restoring it on exit, panic and SIGTERM);
//! - [`fleet`]: the fleet screen (`--hosts`, `--prometheus`, …), one row per node, any node's
//!   devices and processes on the panels above.

pub(crate) mod app;
pub(crate) mod charts;
pub(crate) mod filter;
pub(crate) mod fleet;
pub(crate) mod lineage;
pub(crate) mod recording;
pub(crate) mod rows;
pub(crate) mod signal;
pub(crate) mod source;
pub(crate) mod terminal;
pub(crate) mod theme;
pub(crate) mod ui;

use crate::cli::{GlobalArgs, TopArgs};
use crate::outcome::Outcome;
use crate::output::Output;

/// Runs `hmn top` until the user quits. Exit 2 when stdout or stdin is not a terminal.
pub(crate) fn run(global: &GlobalArgs, args: &TopArgs, out: &Output) -> Outcome {
    if let Some(outcome) = fleet::run(args, out) {
        return outcome;
    }
    terminal::run(global, args, out)
}

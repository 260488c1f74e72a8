//! `hmn top --hosts…|--hostfile…|--targets-from…|--prometheus…`: the fleet screen, one row
//! per node of many machines, and any one node's devices and processes on demand.
//!
//! Why a screen of its own: the question on a fleet is "which node has room now, and which
//! nodes are not answering?", not "what is this machine doing?". So the first screen lists
//! nodes — NODE, STATE (up / stale / down, with the reason on the notes lines), GPUS, LARGEST
//! FREE (the most room on one GPU, what a job asks for), TOTAL FREE, HOST AVAIL and AGE —
//! largest free first; past 100 nodes, or when the rows do not fit, a heat grid with one
//! cell per node coloured by its free fraction. `Enter` opens one node on the local screen's
//! own panels (devices with MIG instances, the history chart, the process table), rebuilt
//! from the node's figures, so a node reads exactly like `hmn top` on that machine.
//!
//! Read-only: the processes shown run on other machines, so there is no signal menu (`k`
//! says why) and no recording (`R` says what to use instead).
//!
//! How, module by module:
//! - [`nodes`]: the node list's columns, order, filter and the reasons behind every `?`
//!   (pure);
//! - [`state`]: the whole state of the fleet screen and the one function that changes it
//!   ([`state::FleetApp::update`]), pure like the local screen's;
//! - [`drill`]: one node rebuilt as a [`hypomnesis::Frame`], so the local screen's `App` and
//!   drawing show it;
//! - [`draw`]: the node list, the heat grid, the header, notes, footer and overlays;
//! - [`reader`]: [`crate::fleet::collect`] every interval on a thread of its own, so a slow
//!   or dead node never blocks a key;
//! - [`screen`]: the terminal loop (the local screen's terminal handling, reused).
//!
//! `fleet` (the model and the sources) never imports `cmd`; this module only reads it.

pub(crate) mod draw;
pub(crate) mod drill;
pub(crate) mod nodes;
pub(crate) mod reader;
pub(crate) mod screen;
pub(crate) mod state;
#[cfg(test)]
mod tests;

use std::time::Duration;

use crate::cli::TopArgs;
use crate::fleet::{CollectOptions, Source};
use crate::outcome::Outcome;
use crate::output::Output;

/// How often the fleet is read when `--interval` is not given: `hmn serve` samples every 5 s
/// by default, so reading more often shows nothing new and costs every node a scrape.
pub(crate) const FLEET_INTERVAL: Duration = Duration::from_secs(5);

/// Runs the fleet screen when the command line names a fleet; `None` when it does not (the
/// local screen runs). A source that cannot be used (a hostfile that cannot be read) exits 2
/// with the message, before the terminal is touched.
pub(crate) fn run(args: &TopArgs, out: &Output) -> Option<Outcome> {
    let source = match Source::from_args(&args.fleet)? {
        Ok(_) if !cfg!(feature = "fleet") => {
            out.say(&format!("hmn top: {}", crate::fleet::FleetError::NotBuilt));
            return Some(Outcome::CouldNotTell);
        }
        Ok(source) => source,
        Err(e) => {
            out.say(&format!("hmn top: {e}"));
            return Some(Outcome::CouldNotTell);
        }
    };
    let options = CollectOptions {
        timeout: args
            .fleet
            .fleet_timeout
            .unwrap_or(CollectOptions::default().timeout),
        ..CollectOptions::default()
    };
    Some(screen::run(args, source, options, out))
}

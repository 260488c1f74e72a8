//! `hmn spill -- CMD`: the original hypomnesis crate's command, kept so its users' scripts and
//! habits keep working. It is `hmn run` showing only the spill part of its report: CMD runs
//! the same way (same stdio, signals, exit codes), the same trackers read each GPU's spill
//! from a baseline taken before CMD starts, and when CMD ends stderr gets how it ended and the
//! spill lines (`--json`: the report's `spill` object alone on stdout, CMD's stdout going to
//! stderr as under `hmn run --json`).
//!
//! Two differences from `hmn run`, both the original's: readings default to every 100 ms, and
//! `--interval 250` (a bare number) means milliseconds.

use std::process::ExitCode;

use super::run::{View, run_as};
use crate::cli::{GlobalArgs, RunArgs, SpillArgs};
use crate::output::Output;

pub fn run(global: &GlobalArgs, args: &SpillArgs, out: &Output) -> ExitCode {
    let run = RunArgs {
        shared: args.shared.clone(),
        interval: args.interval,
        record: None,
        plot: None,
        json_out: None,
        follow_descendants: false,
        command: args.command.clone(),
    };
    run_as(global, &run, View::Spill, out)
}

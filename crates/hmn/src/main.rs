//! `hmn`: GPU and process memory at a glance.
//!
//! A thin shell over the `hypomnesis` library: each command (one module under [`cmd`], and
//! `serve`) reads the machine through the library, formats what it gets, and maps the
//! outcome to an exit code scripts can rely on. stdout is data (text or `--json`), stderr is
//! talk (summaries, warnings, reasons). This file only parses the command line and hands it
//! to the command; nothing imports from here.

mod cli;
mod cmd;
mod driver;
mod fleet;
mod json;
mod outcome;
mod output;
mod plot;
mod record;
#[cfg(feature = "serve")]
mod serve;
mod signals;
mod size;
mod spill;
mod table;
mod text;
mod time;
mod values;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, GlobalArgs};
use driver::{one_shot_probe, with_watchdog};
use output::{OnStdoutFailure, Output};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let global = match cli.resolve() {
        Ok(global) => global,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    let out = output_for(cli.command.as_ref(), &global);
    dispatch(cli.command.as_ref(), &global, &out)
}

/// The output of `command`, and what it does when stdout goes away: `watch` stops, the
/// commands that run something (`run`, `serve`) carry on, the others finish quietly.
fn output_for(command: Option<&Command>, global: &GlobalArgs) -> Output {
    let on_stdout_failure = match command {
        Some(Command::Watch(_)) => OnStdoutFailure::Stop,
        Some(Command::Run(_) | Command::Spill(_)) => OnStdoutFailure::CarryOn,
        #[cfg(feature = "serve")]
        Some(Command::Serve(_)) => OnStdoutFailure::CarryOn,
        _ => OnStdoutFailure::Finish,
    };
    let out = Output::new(global.color).on_stdout_failure(on_stdout_failure);
    if on_stdout_failure == OnStdoutFailure::Stop {
        output::end_when_stdout_reader_leaves();
    }
    out
}

/// Runs `command`. The one-shot commands (the summary, `ps`, `fits`) are bounded by the
/// `--timeout` watchdog; the long-running ones bound each driver call themselves.
fn dispatch(command: Option<&Command>, global: &GlobalArgs, out: &Output) -> ExitCode {
    if let Some(outcome) = fleet_dispatch(command, global, out) {
        return ExitCode::from(outcome);
    }
    let timeout = global.timeout;
    let one_shot = |command: &dyn Fn(&hypomnesis::Probe) -> outcome::Outcome| {
        ExitCode::from(with_watchdog(timeout, || command(&one_shot_probe(timeout))))
    };
    match command {
        None => one_shot(&|probe| cmd::summary::run(probe, global, out)),
        Some(Command::Ps(args)) => one_shot(&|probe| cmd::ps::run(probe, global, args, out)),
        Some(Command::Fits(args)) => one_shot(&|probe| cmd::fits::run(probe, global, args, out)),
        Some(Command::Run(args)) => cmd::run::run(global, args, out),
        Some(Command::Spill(args)) => cmd::spill::run(global, args, out),
        Some(Command::Watch(args)) => cmd::watch::run(global, args, out).into(),
        #[cfg(feature = "top")]
        Some(Command::Top(args)) => cmd::top::run(global, args, out).into(),
        #[cfg(feature = "serve")]
        Some(Command::Serve(args)) => {
            serve::run(driver::guarded_probe(timeout), global, args, out).into()
        }
        Some(Command::Completions { shell }) => cmd::completions::run(*shell, out).into(),
        Some(Command::Man(args)) => cmd::man::run(args, out).into(),
    }
}

/// The fleet forms of the summary, `ps` and `fits` when a fleet flag names one (`None`: this
/// machine's). `top` reads its fleet itself.
fn fleet_dispatch(
    command: Option<&Command>,
    global: &GlobalArgs,
    out: &Output,
) -> Option<outcome::Outcome> {
    if !matches!(command, None | Some(Command::Ps(_) | Command::Fits(_))) {
        return None;
    }
    let fleet = match cmd::fleet::read(&global.fleet, out)? {
        Ok(fleet) => fleet,
        Err(outcome) => return Some(outcome),
    };
    let (json, wide) = (global.json, global.wide);
    Some(match command {
        Some(Command::Ps(args)) => cmd::fleet::ps::run(&fleet, json, wide, args, out),
        Some(Command::Fits(args)) => cmd::fleet::fits::run(&fleet, json, wide, args, out),
        _ => cmd::fleet::summary::run(&fleet, json, wide, out),
    })
}

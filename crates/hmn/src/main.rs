//! `hmn`: GPU and process memory at a glance.
//!
//! A thin shell over the `hypomnesis` library: each command asks a [`hypomnesis::Probe`],
//! formats what it gets, and maps the outcome to an exit code scripts can rely on. stdout is
//! data (text or `--json`), stderr is talk (summaries, warnings, reasons).

mod cli;
mod cmd;
mod json;
mod man;
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

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use cli::{Cli, Command};
use cmd::{fits, ps, run, summary, watch};
use output::{OnStdoutFailure, Output};

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

/// Runs a one-shot command, giving up after `timeout_secs` (0: never). A driver call that
/// hangs (a GPU fallen off the bus, a wedged kernel module) never returns and cannot be
/// interrupted, so the watchdog ends the whole process: it says so on stderr and exits 2
/// ("could not measure") without running exit handlers, which could wait on the very lock
/// the hung call holds.
fn with_watchdog(timeout_secs: u64, work: impl FnOnce() -> Outcome) -> Outcome {
    use std::sync::mpsc::{RecvTimeoutError, channel};
    if timeout_secs == 0 {
        return work();
    }
    let (finished, wait) = channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if let Err(RecvTimeoutError::Timeout) =
            wait.recv_timeout(std::time::Duration::from_secs(timeout_secs))
        {
            eprintln!(
                "hmn: no answer from the GPU driver after {timeout_secs} s: the driver or a GPU \
                 is hung (look for Xid / GPU-has-fallen-off-the-bus messages in `dmesg`, or run \
                 `nvidia-smi` to see whether it hangs too); giving up. `--timeout 0` waits \
                 forever."
            );
            exit_now(2);
        }
    });
    let outcome = work();
    drop(finished);
    let _ = watchdog.join();
    outcome
}

/// The probe of a long-running command (`watch`, `run`): with `--timeout`, a GPU call that
/// overruns is abandoned (`ProbeBuilder::driver_timeout`), so a hung driver costs a sample,
/// not the whole command.
fn guarded_probe(timeout_secs: u64) -> hypomnesis::Probe {
    let builder = hypomnesis::Probe::builder();
    if timeout_secs == 0 {
        builder.build()
    } else {
        builder
            .driver_timeout(std::time::Duration::from_secs(timeout_secs))
            .build()
    }
}

/// The probe of a one-shot command (summary, `ps`, `fits`): the watchdog bounds the command,
/// and `--timeout` also bounds each `nvidia-smi` query (0: no bound).
fn one_shot_probe(timeout_secs: u64) -> hypomnesis::Probe {
    let timeout = match timeout_secs {
        0 => std::time::Duration::MAX,
        secs => std::time::Duration::from_secs(secs),
    };
    hypomnesis::Probe::builder()
        .nvidia_smi_timeout(timeout)
        .build()
}

/// Ends the process with `code` at once when a GPU call of `probe` is still blocked in the
/// driver: a normal exit runs the vendor library's exit handlers, which may wait on the hung
/// call. Otherwise returns.
fn leave_if_driver_hung(probe: &hypomnesis::Probe, code: i32) {
    if let Some(stuck) = probe.stuck_driver_call() {
        eprintln!(
            "hmn: a GPU driver call has not returned after {:.0} s (a hung driver or GPU); \
             exiting without waiting for it",
            stuck.as_secs_f64()
        );
        exit_now(code);
    }
}

/// Ends the process at once, skipping exit handlers and library destructors; helper processes
/// (a hung `nvidia-smi`) are killed first, as no destructor will.
fn exit_now(code: i32) -> ! {
    use std::io::Write;
    hypomnesis::kill_helper_processes();
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    #[cfg(unix)]
    {
        // SAFETY: `_exit` has no preconditions; it ends the process without returning.
        unsafe { libc::_exit(code) }
    }
    #[cfg(not(unix))]
    {
        std::process::exit(code)
    }
}

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
    let on_stdout_failure = match &cli.command {
        Some(Command::Watch(_)) => OnStdoutFailure::Stop,
        Some(Command::Run(_)) => OnStdoutFailure::CarryOn,
        #[cfg(feature = "serve")]
        Some(Command::Serve(_)) => OnStdoutFailure::CarryOn,
        _ => OnStdoutFailure::Finish,
    };
    let out = Output::new(global.color).on_stdout_failure(on_stdout_failure);
    if on_stdout_failure == OnStdoutFailure::Stop {
        output::end_when_stdout_reader_leaves();
    }
    let timeout = global.timeout;
    let outcome = match &cli.command {
        None => with_watchdog(timeout, || {
            summary::run(&one_shot_probe(timeout), &global, &out)
        }),
        Some(Command::Ps(args)) => with_watchdog(timeout, || {
            ps::run(&one_shot_probe(timeout), &global, args, &out)
        }),
        Some(Command::Fits(args)) => with_watchdog(timeout, || {
            fits::run(&one_shot_probe(timeout), &global, args, &out)
        }),
        // `run` exits with the command's own code, not an Outcome; a report that could not
        // be written to stdout makes CMD's success "outputs incomplete" (CMD's own failure
        // code is kept), as a recording or a plot that could not be written does.
        Some(Command::Run(args)) => {
            let code = run::run(&global, args, &out);
            return if out.stdout_failed() && code == ExitCode::SUCCESS {
                ExitCode::from(run::OUTPUTS_INCOMPLETE)
            } else {
                code
            };
        }
        Some(Command::Watch(args)) => watch::run(&global, args, &out),
        #[cfg(feature = "serve")]
        Some(Command::Serve(args)) => serve::run(guarded_probe(timeout), &global, args, &out),
        Some(Command::Completions { shell }) => {
            let mut text = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "hmn", &mut text);
            out.data(&String::from_utf8_lossy(&text));
            Outcome::Success
        }
        Some(Command::Man(args)) => man::run(args, &out),
    };
    outcome.into()
}

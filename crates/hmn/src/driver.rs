//! Living with a GPU driver that may hang: the probes hmn's commands use, the watchdog of the
//! one-shot commands, and how to leave when a driver call never returns.
//!
//! A driver call that hangs (a GPU fallen off the bus, a wedged kernel module) never returns
//! and cannot be interrupted. A one-shot command (the summary, `ps`, `fits`) is bounded as a
//! whole by a watchdog that ends the process; a long-running one (`watch`, `run`, `serve`)
//! gives each GPU call a deadline (`ProbeBuilder::driver_timeout`) and loses a sample, not
//! the command. Either way the process must then end without running exit handlers, which
//! could wait on the very lock the hung call holds.

use std::time::Duration;

use hypomnesis::Probe;

use crate::outcome::Outcome;

/// Runs a one-shot command, giving up after `timeout_secs` (0: never): the watchdog says so
/// on stderr and exits 2 ("could not measure") at once.
pub fn with_watchdog(timeout_secs: u64, work: impl FnOnce() -> Outcome) -> Outcome {
    use std::sync::mpsc::{RecvTimeoutError, channel};
    if timeout_secs == 0 {
        return work();
    }
    let (finished, wait) = channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if let Err(RecvTimeoutError::Timeout) = wait.recv_timeout(Duration::from_secs(timeout_secs))
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

/// The probe of a long-running command (`watch`, `run`, `serve`): with `--timeout`, a GPU
/// call that overruns is abandoned (`ProbeBuilder::driver_timeout`), so a hung driver costs a
/// sample, not the whole command.
pub fn guarded_probe(timeout_secs: u64) -> Probe {
    let builder = Probe::builder();
    if timeout_secs == 0 {
        builder.build()
    } else {
        builder
            .driver_timeout(Duration::from_secs(timeout_secs))
            .build()
    }
}

/// The probe of a one-shot command (summary, `ps`, `fits`): the watchdog bounds the command,
/// and `--timeout` also bounds each `nvidia-smi` query (0: no bound).
pub fn one_shot_probe(timeout_secs: u64) -> Probe {
    let timeout = match timeout_secs {
        0 => Duration::MAX,
        secs => Duration::from_secs(secs),
    };
    Probe::builder().nvidia_smi_timeout(timeout).build()
}

/// Ends the process with `code` at once when a GPU call of `probe` is still blocked in the
/// driver: a normal exit runs the vendor library's exit handlers, which may wait on the hung
/// call. Otherwise returns.
pub fn leave_if_driver_hung(probe: &Probe, code: i32) {
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
pub fn exit_now(code: i32) -> ! {
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

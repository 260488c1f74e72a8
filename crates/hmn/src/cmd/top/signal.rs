//! Sending the signal `k` chose, and saying what came of it.
//!
//! Why a trait: the only side effect of the signal menu goes through [`SignalSender`], so a
//! fake sender in tests proves that `--readonly` sends nothing whatever is pressed and that
//! nothing is sent without the `y` confirmation, while the real one ([`OsSignals`]) stays a
//! few lines. Another user's process may be signalled: `top` does not guess permissions, the
//! OS decides, and its refusal is what the status line shows.
//!
//! Unix: `kill(2)` with the matching signal. Windows has no signals; ending a process there
//! (`TerminateProcess`) would need bindings `hmn` does not carry, so the sender says it is
//! unsupported and names the tool that does it.

use super::app::{App, Effect, Signal};

/// Sends signals to processes.
pub(crate) trait SignalSender {
    /// Sends `signal` to `pid`; the error is the OS's refusal in words.
    fn send(&mut self, pid: u32, signal: Signal) -> Result<(), String>;
}

/// The OS's own signals.
#[derive(Debug, Default)]
pub(crate) struct OsSignals;

#[cfg(unix)]
impl SignalSender for OsSignals {
    fn send(&mut self, pid: u32, signal: Signal) -> Result<(), String> {
        let number = match signal {
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
            Signal::Int => libc::SIGINT,
            Signal::Hup => libc::SIGHUP,
            Signal::Stop => libc::SIGSTOP,
            Signal::Cont => libc::SIGCONT,
        };
        // 0 or a negative pid would signal a whole process group: never what a row means.
        let target = libc::pid_t::try_from(pid)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{pid} is not a process id that can be signalled"))?;
        // SAFETY: kill takes two integers and touches no memory of ours.
        let result = unsafe { libc::kill(target, number) };
        if result == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error().to_string())
        }
    }
}

#[cfg(not(unix))]
impl SignalSender for OsSignals {
    fn send(&mut self, pid: u32, signal: Signal) -> Result<(), String> {
        Err(format!(
            "sending {} is not supported on this platform; end the process with `taskkill /PID {pid}` (add /F to force)",
            signal.name()
        ))
    }
}

/// Carries out the [`Effect::Signal`]s among `effects` through `sender`, setting `app`'s
/// status to what happened ("sent SIGTERM to 1234 (python)", or the OS's refusal). Other
/// effects are left to the caller. A signal effect in a `--readonly` or replay session (which
/// [`App::update`] never returns) is refused here too.
pub(crate) fn carry_out(effects: &[Effect], sender: &mut dyn SignalSender, app: &mut App) {
    for effect in effects {
        let Effect::Signal { pid, signal } = *effect else {
            continue;
        };
        if app.settings.readonly || app.settings.replay {
            app.status = Some(format!("{} not sent: signals are off", signal.name()));
            continue;
        }
        let who = app
            .rows
            .iter()
            .chain(&app.all_rows)
            .find(|r| r.pid == pid)
            .and_then(|r| r.name.as_deref())
            .map_or_else(|| pid.to_string(), |name| format!("{pid} ({name})"));
        app.status = Some(match sender.send(pid, signal) {
            Ok(()) => format!("sent {} to {who}", signal.name()),
            Err(why) => format!("could not send {} to {who}: {why}", signal.name()),
        });
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn the_os_refuses_a_process_that_does_not_exist_and_says_why() {
        // Beyond the largest pid Linux hands out (4194304), so no process has it.
        let error = OsSignals.send(99_999_999, Signal::Cont).unwrap_err();
        assert!(error.contains("No such process"), "{error}");
    }

    #[test]
    fn a_continue_signal_reaches_a_live_process() {
        // SIGCONT to ourselves: delivered, and harmless to a running process.
        assert_eq!(OsSignals.send(std::process::id(), Signal::Cont), Ok(()));
    }

    #[test]
    fn pid_zero_is_refused_rather_than_signalling_the_process_group() {
        let error = OsSignals.send(0, Signal::Term).unwrap_err();
        assert!(error.contains("0 is not a process id"), "{error}");
    }
}

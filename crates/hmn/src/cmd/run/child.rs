//! CMD itself: how it is started, how hmn waits for it, and how its end is told (exit codes
//! as shells give them, signal names, its command line as typed).

use std::ffi::OsString;
use std::path::Path;

#[cfg(unix)]
use crate::signals;

/// How CMD ended.
#[derive(Debug, Clone, Copy)]
pub struct Ending {
    /// hmn's exit code: CMD's code, or 128 + the signal.
    pub code: u8,
    /// The signal that killed CMD.
    pub signal: Option<i32>,
    /// `ru_maxrss` of CMD and its waited-for descendants, bytes.
    pub max_rss_bytes: Option<u64>,
}

/// Shells' codes for a command that could not be started: 127 when it was not found, 126
/// when it was found but could not be executed (no permission, not an executable format, a
/// directory, a script whose interpreter is missing).
pub(super) fn start_failure_code(e: &std::io::Error, command: &[OsString]) -> u8 {
    let program = command.first().map(Path::new);
    let names_a_file = program.is_some_and(|p| p.components().count() > 1 && p.exists());
    if e.kind() == std::io::ErrorKind::NotFound && !names_a_file {
        127
    } else {
        126
    }
}

/// Starts CMD with hmn's stdin, stdout and stderr, or with its stdout sent to hmn's stderr
/// (`--json` without `--json-out`: stdout then carries the report alone).
pub(super) fn spawn(
    command: &[OsString],
    stdout_to_stderr: bool,
) -> std::io::Result<std::process::Child> {
    let (program, rest) = command
        .split_first()
        .ok_or_else(|| std::io::Error::other("no command"))?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(rest);
    if stdout_to_stderr {
        cmd.stdout(std::process::Stdio::from(std::io::stderr()));
    }
    cmd.spawn()
}

/// The command as a person would type it (arguments with spaces quoted).
pub fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if w.is_empty() || w.contains(|c: char| c.is_whitespace() || "'\"$`\\".contains(c)) {
                format!("'{}'", w.replace('\'', r"'\''"))
            } else {
                w.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `SIGINT`, or `signal 42`.
pub fn signal_name(signal: i32) -> String {
    #[cfg(unix)]
    {
        let names = [
            (libc::SIGHUP, "SIGHUP"),
            (libc::SIGINT, "SIGINT"),
            (libc::SIGQUIT, "SIGQUIT"),
            (libc::SIGILL, "SIGILL"),
            (libc::SIGTRAP, "SIGTRAP"),
            (libc::SIGABRT, "SIGABRT"),
            (libc::SIGBUS, "SIGBUS"),
            (libc::SIGFPE, "SIGFPE"),
            (libc::SIGKILL, "SIGKILL"),
            (libc::SIGUSR1, "SIGUSR1"),
            (libc::SIGSEGV, "SIGSEGV"),
            (libc::SIGUSR2, "SIGUSR2"),
            (libc::SIGPIPE, "SIGPIPE"),
            (libc::SIGALRM, "SIGALRM"),
            (libc::SIGTERM, "SIGTERM"),
            (libc::SIGCONT, "SIGCONT"),
            (libc::SIGXCPU, "SIGXCPU"),
            (libc::SIGXFSZ, "SIGXFSZ"),
            (libc::SIGVTALRM, "SIGVTALRM"),
            (libc::SIGPROF, "SIGPROF"),
            (libc::SIGWINCH, "SIGWINCH"),
            (libc::SIGSYS, "SIGSYS"),
        ];
        if let Some((_, name)) = names.iter().find(|(n, _)| *n == signal) {
            return (*name).to_owned();
        }
    }
    #[cfg(not(unix))]
    {
        let name = match signal {
            2 => "SIGINT",
            15 => "SIGTERM",
            _ => "",
        };
        if !name.is_empty() {
            return name.to_owned();
        }
    }
    format!("signal {signal}")
}

/// hmn's own peak resident memory, bytes: what a child's `ru_maxrss` starts from, since
/// `exec` keeps the high-water mark of the memory the child had before (hmn's, shared by
/// `posix_spawn`'s vfork or copied by fork).
#[cfg(unix)]
pub(super) fn own_max_rss() -> Option<u64> {
    // SAFETY: a zeroed rusage is a valid buffer for getrusage to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is valid for writing.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut usage) };
    if rc != 0 {
        return None;
    }
    u64::try_from(usage.ru_maxrss).ok().map(|v| {
        // KiB on Linux, bytes on macOS.
        if cfg!(target_os = "macos") {
            v
        } else {
            v * 1024
        }
    })
}

#[cfg(not(unix))]
pub(super) fn own_max_rss() -> Option<u64> {
    None
}

/// Waits for CMD and says how it ended.
#[cfg(unix)]
pub(super) fn wait(child: std::process::Child) -> Ending {
    let pid = libc::pid_t::try_from(child.id()).unwrap_or(0);
    // Learn that it ended without reaping it (its pid cannot be reused yet), so no signal is
    // forwarded to a stranger, then reap it with its resource usage.
    loop {
        // SAFETY: a zeroed siginfo_t is a valid buffer for waitid to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is valid for writing; P_PID names our own child.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                libc::id_t::try_from(pid).unwrap_or(0),
                &raw mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break;
        }
    }
    signals::clear_child();
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: a zeroed rusage is a valid buffer for wait4 to fill.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `status` and `usage` are valid for writing; `pid` is our own child.
        let rc = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
        if rc == pid {
            let max_rss = u64::try_from(usage.ru_maxrss).ok().map(|v| {
                // KiB on Linux, bytes on macOS.
                if cfg!(target_os = "macos") {
                    v
                } else {
                    v * 1024
                }
            });
            let (code, signal) = if libc::WIFSIGNALED(status) {
                let signal = libc::WTERMSIG(status);
                (u8::try_from(128 + signal).unwrap_or(255), Some(signal))
            } else {
                (u8::try_from(libc::WEXITSTATUS(status)).unwrap_or(1), None)
            };
            return Ending {
                code,
                signal,
                max_rss_bytes: max_rss.filter(|&b| b > 0),
            };
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Ending {
                code: 1,
                signal: None,
                max_rss_bytes: None,
            };
        }
    }
}

#[cfg(not(unix))]
pub(super) fn wait(mut child: std::process::Child) -> Ending {
    match child.wait() {
        Ok(status) => Ending {
            code: status
                .code()
                .and_then(|c| u8::try_from(c).ok())
                .unwrap_or(1),
            signal: None,
            max_rss_bytes: None,
        },
        Err(_) => Ending {
            code: 1,
            signal: None,
            max_rss_bytes: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_shown_as_typed() {
        let words = |w: &[&str]| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(shell_words(&words(&["make", "-j8"])), "make -j8");
        assert_eq!(
            shell_words(&words(&["python3", "-c", "print('hi there')"])),
            r"python3 -c 'print('\''hi there'\'')'"
        );
        assert_eq!(shell_words(&words(&["echo", ""])), "echo ''");
    }

    #[test]
    fn signals_have_their_names() {
        assert_eq!(signal_name(2), "SIGINT");
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(42), "signal 42");
    }

    #[test]
    fn not_found_is_127_and_found_but_not_executable_is_126() {
        let not_found = std::io::Error::from(std::io::ErrorKind::NotFound);
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let cmd = |p: &str| vec![OsString::from(p)];
        assert_eq!(start_failure_code(&not_found, &cmd("no-such-tool")), 127);
        assert_eq!(start_failure_code(&not_found, &cmd("/nonexistent/x")), 127);
        assert_eq!(start_failure_code(&denied, &cmd("./script.sh")), 126);
        // A script whose interpreter is missing: the file exists, exec says ENOENT.
        assert_eq!(start_failure_code(&not_found, &cmd("/bin/sh")), 126);
    }
}

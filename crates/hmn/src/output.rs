//! Where text goes, whether it is coloured, how wide the terminal is, and what a failed write
//! to stdout means.
//!
//! stdout carries data and stderr carries talk. A closed stdout (`hmn ps | head -1`) is not
//! an error: the reader has what it wanted, so nothing is said about it. Any other failure
//! (`hmn ps --json > /dev/full`: no space left) loses data the user asked for, so it is
//! reported on stderr, naming stdout and the OS error, and ends in exit 2. What happens next
//! depends on the command ([`OnStdoutFailure`]): a one-shot command finishes, `watch` stops at
//! once, and `run` / `serve` carry on (CMD must never be cut short by hmn's own stdout).
//!
//! Colour follows `--color`, then `NO_COLOR`, then whether stdout is a terminal. Tables fit
//! the terminal they are written to ([`terminal_columns`]); a pipe or a file gets them whole.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU8, Ordering};

use crate::cli::ColorChoice;

/// A terminal colour for emphasis.
#[derive(Debug, Clone, Copy)]
pub enum Tone {
    Good,
    Warn,
    Bad,
}

/// What a failed write to stdout does to the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStdoutFailure {
    /// One-shot commands (the summary, `ps`, `fits`, `completions`, `man`): a closed pipe is
    /// ignored and the command finishes with its own exit code; any other failure is
    /// reported and ends hmn at once with exit 2.
    Finish,
    /// `watch`, which writes for as long as it runs: a closed pipe ends hmn at once with
    /// exit 0 (nobody reads any more); any other failure is reported and ends it with exit 2.
    Stop,
    /// `run` and `serve`, whose work is not their stdout (CMD runs, the server serves): a
    /// failure is reported (a closed pipe quietly) and remembered ([`Output::stdout_failed`]),
    /// and the command carries on.
    CarryOn,
}

/// What has happened to stdout so far.
const STDOUT_OK: u8 = 0;
const STDOUT_CLOSED: u8 = 1;
const STDOUT_FAILED: u8 = 2;

/// stdout/stderr writer with the colour decision made once.
#[derive(Debug)]
pub struct Output {
    color: bool,
    on_failure: OnStdoutFailure,
    stdout: AtomicU8,
}

impl Output {
    pub fn new(choice: ColorChoice) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => !no_color && std::io::stdout().is_terminal(),
        };
        Self {
            color,
            on_failure: OnStdoutFailure::Finish,
            stdout: AtomicU8::new(STDOUT_OK),
        }
    }

    /// Sets what a failed write to stdout does (default [`OnStdoutFailure::Finish`]).
    pub fn on_stdout_failure(mut self, policy: OnStdoutFailure) -> Self {
        self.on_failure = policy;
        self
    }

    /// Writes data to stdout; a failure is handled as [`OnStdoutFailure`] says.
    pub fn data(&self, text: &str) {
        if self.stdout.load(Ordering::Relaxed) != STDOUT_OK {
            return; // already closed or failed: the rest would fail the same way
        }
        let result = {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
        };
        if let Err(e) = result {
            self.stdout_write_failed(&e);
        }
    }

    fn stdout_write_failed(&self, e: &std::io::Error) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            self.stdout.store(STDOUT_CLOSED, Ordering::Relaxed);
            if self.on_failure == OnStdoutFailure::Stop {
                crate::driver::exit_now(0);
            }
            return;
        }
        self.stdout.store(STDOUT_FAILED, Ordering::Relaxed);
        self.say(&format!("cannot write to stdout: {e}"));
        if self.on_failure != OnStdoutFailure::CarryOn {
            crate::driver::exit_now(2);
        }
    }

    /// Whether a write to stdout failed for another reason than a closed pipe (reported on
    /// stderr when it happened). Only [`OnStdoutFailure::CarryOn`] gets to ask.
    pub fn stdout_failed(&self) -> bool {
        self.stdout.load(Ordering::Relaxed) == STDOUT_FAILED
    }

    /// Writes one line of talk to stderr, prefixed `hmn: `. Names that others chose must be
    /// escaped already ([`crate::text::Shown`]).
    pub fn say(&self, line: &str) {
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "hmn: {line}");
    }

    /// `text` in `tone`'s colour when colour is on.
    pub fn paint(&self, text: &str, tone: Tone) -> String {
        if !self.color {
            return text.to_owned();
        }
        let code = match tone {
            Tone::Good => "32",
            Tone::Warn => "33",
            Tone::Bad => "31",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }

    /// Serialises `value` as pretty JSON on stdout, streamed through a buffer: `ps --json` of a
    /// large listing is megabytes, and building it as one string first (then copying it to
    /// add the newline) cost a third of the command's time in allocation and page faults.
    /// A failed write is handled as [`OnStdoutFailure`] says.
    pub fn json<T: serde::Serialize>(&self, value: &T) {
        if self.stdout.load(Ordering::Relaxed) != STDOUT_OK {
            return;
        }
        let mut writer = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
        let written = match serde_json::to_writer_pretty(&mut writer, value) {
            Ok(()) => writer.write_all(b"\n").and_then(|()| writer.flush()),
            Err(e) if e.is_io() => Err(std::io::Error::from(e)),
            Err(e) => {
                // Nothing of ours fails to encode; were it to, what was written stands.
                self.say(&format!("could not encode JSON: {e}"));
                return;
            }
        };
        if let Err(e) = written {
            // Whatever is left in the buffer would fail the same way: drop it unwritten.
            let (_, _) = writer.into_parts();
            self.stdout_write_failed(&e);
        }
    }
}

/// Ends hmn (exit 0) as soon as nobody reads its stdout any more, rather than at its next
/// write: `hmn watch --interval 1m | head -1` ends when `head` does, not a minute later.
///
/// A thread waits in `poll(2)` on stdout for nothing but an error or a hang-up: the write
/// end of a pipe whose reader has gone reports `POLLERR`, a terminal that hung up `POLLHUP`;
/// a file or `/dev/null` reports neither, and the thread waits for ever, harmlessly. Unix
/// only; elsewhere the next write finds the pipe closed ([`OnStdoutFailure::Stop`]).
pub fn end_when_stdout_reader_leaves() {
    #[cfg(unix)]
    {
        let spawned = std::thread::Builder::new()
            .name("hmn-stdout-reader".to_owned())
            .spawn(|| {
                loop {
                    let mut fd = libc::pollfd {
                        fd: libc::STDOUT_FILENO,
                        events: 0,
                        revents: 0,
                    };
                    // SAFETY: `fd` is one valid pollfd that outlives the call, and the count
                    // says one.
                    let ready = unsafe { libc::poll(&raw mut fd, 1, -1) };
                    if ready > 0 && fd.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
                        crate::driver::exit_now(0);
                    }
                    if ready > 0 && fd.revents & libc::POLLNVAL != 0 {
                        return; // stdout is not open: nothing to watch
                    }
                    if ready < 0
                        && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
                    {
                        return;
                    }
                }
            });
        // Without the thread, the next write still finds the pipe closed.
        drop(spawned);
    }
}

/// The width a table on stdout may take: none with `--wide`, else [`terminal_columns`].
pub fn table_width(wide: bool) -> Option<usize> {
    if wide {
        None
    } else {
        terminal_columns(Stream::Stdout)
    }
}

/// The stream a table is written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// How many columns a table written to `stream` may take: `None` (no limit) when the stream
/// is not a terminal — a pipe or a file gets every character — else `COLUMNS` when it is a
/// positive number (as `ls` and `ps` honour it), else the terminal's own width.
pub fn terminal_columns(stream: Stream) -> Option<usize> {
    let is_terminal = match stream {
        Stream::Stdout => std::io::stdout().is_terminal(),
        Stream::Stderr => std::io::stderr().is_terminal(),
    };
    if !is_terminal {
        return None;
    }
    let from_env = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0);
    from_env.or_else(|| {
        let size = match stream {
            Stream::Stdout => terminal_size::terminal_size_of(std::io::stdout()),
            Stream::Stderr => terminal_size::terminal_size_of(std::io::stderr()),
        };
        size.map(|(terminal_size::Width(w), _)| usize::from(w))
            .filter(|&w| w > 0)
    })
}

/// Removes a file hmn created and could not finish (a report, a recording or a plot cut short
/// by a full disk); `Ok(false)` when there is nothing to remove. Only a regular file is
/// removed: `--record /dev/null` or a FIFO stays (hmn runs as root at times, and a device node
/// removed is a broken system).
pub fn remove_partial(path: &std::path::Path) -> std::io::Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_file() => std::fs::remove_file(path).map(|()| true),
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(all(test, unix))] // FIFOs and symlinks
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_are_removed_as_partial_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("report.json");
        std::fs::write(&file, "{").unwrap();
        assert!(remove_partial(&file).unwrap());
        assert!(!file.exists());
        assert!(!remove_partial(&file).unwrap(), "nothing left to remove");
        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: `c_path` is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        assert!(!remove_partial(&fifo).unwrap());
        assert!(fifo.exists(), "a FIFO (like a device node) is left alone");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        assert!(
            !remove_partial(&link).unwrap(),
            "a symlink is not followed or removed"
        );
        assert!(link.symlink_metadata().is_ok());
    }
}

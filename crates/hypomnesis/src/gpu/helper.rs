//! Helper processes (`nvidia-smi`) run with a bound on time, on output and on what they leave.
//!
//! Why: a helper may hang (a wedged driver), print without end, or start something that
//! outlives it and keeps its stdout open (a wrapper script that leaves a daemon behind). A
//! library that waits on such a child, or leaves a thread blocked on its pipe, piles up threads
//! and processes in every long-running caller, one sample after another; a program that ends
//! with `_exit` while a helper runs leaves it, and whatever it started, orphaned.
//!
//! How, on Unix: the child runs in a process group of its own, recorded in a small process-wide
//! registry while it lives. Both pipes are read on the caller's thread with `poll(2)` (no
//! helper threads at all) until the child exits or the deadline passes. The exit is noticed
//! with `waitid(WNOWAIT)`, which leaves the child a zombie: its pid, which is the group id,
//! cannot be reused before we reap it, so killing the group can only ever reach what the child
//! started. What the child wrote before it exited is in the pipes; whatever still holds them
//! after that is a leftover, not part of the answer. Every run ends the same way, on success,
//! timeout, error or unwinding: SIGKILL to the group, out of the registry, the child reaped,
//! our pipe ends closed. Helpers still running when the program calls `exit` are killed by an
//! `atexit` handler; a program about to end with `_exit` calls [`kill_helper_processes`] first.
//!
//! Output is read up to a cap and no further: a child that prints more is killed, so memory
//! never grows past the cap whatever it prints. Diagnostics on stderr are kept up to a small
//! size and the rest is read and dropped, so a chatty child never stalls on a full pipe.
//!
//! Elsewhere (Windows) there are no process groups to kill: the pipes are drained on two
//! threads and the child alone is killed at the deadline.
//!
//! Hand-rolled rather than a process crate's "communicate with a timeout": those read on
//! threads or wait for the pipes to close, and none kills a process group or keeps a registry
//! for an `_exit` path.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How much of stderr is kept: diagnostics are a few lines; the rest is read and dropped.
const STDERR_KEEP: usize = 64 * 1024;
/// Bytes read from a pipe at a time.
const CHUNK: usize = 64 * 1024;

/// What a helper that exited printed.
#[derive(Debug)]
pub(crate) struct Captured {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: Vec<u8>,
    /// The first [`STDERR_KEEP`] bytes of stderr.
    pub(crate) stderr: Vec<u8>,
}

/// Why a helper gave no answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// It could not be started.
    Spawn(std::io::Error),
    /// It was still running at the deadline; it and everything it started were killed.
    TimedOut,
    /// It printed more than the cap on stdout; it was killed.
    TooMuchOutput { limit: usize },
    /// Waiting for it or reading its pipes failed; it was killed.
    Io(std::io::Error),
}

/// Runs `command` with stdin from `/dev/null`, stdout and stderr captured, until it exits or
/// `timeout` passes; at most `stdout_limit` bytes of stdout are accepted. Nothing it started
/// is left running when this returns (on Unix: nothing in its process group).
pub(crate) fn run(
    command: &mut Command,
    timeout: Duration,
    stdout_limit: usize,
) -> Result<Captured, Failure> {
    let now = Instant::now();
    // A timeout too large to add to the clock waits a day instead of panicking.
    let deadline = now
        .checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(24 * 60 * 60));
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    imp::run(command, deadline, stdout_limit)
}

/// Kills every helper process this library is running at the moment (on Unix, each one's
/// whole process group), without waiting for them. For a program about to end with `_exit`
/// or `abort`, which run no destructors: a helper killed here is reaped by whoever adopts it.
/// Helpers started afterwards are not affected. Does nothing on platforms without process
/// groups.
pub fn kill_helper_processes() {
    #[cfg(unix)]
    imp::registry::kill_all();
}

/// Bytes read from one pipe, up to a limit.
struct Sink {
    bytes: Vec<u8>,
    limit: usize,
    /// Past the limit: fail (stdout) or keep reading and drop the rest (stderr).
    fail_past_limit: bool,
    overflowed: bool,
}

impl Sink {
    fn new(limit: usize, fail_past_limit: bool) -> Self {
        Self {
            bytes: Vec::new(),
            limit,
            fail_past_limit,
            overflowed: false,
        }
    }

    fn take(&mut self, chunk: &[u8]) {
        let room = self.limit.saturating_sub(self.bytes.len());
        if chunk.len() > room {
            self.overflowed = true;
        }
        self.bytes
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    fn failed(&self) -> bool {
        self.fail_past_limit && self.overflowed
    }
}

#[cfg(unix)]
mod imp {
    use super::{CHUNK, Captured, Failure, Read, STDERR_KEEP, Sink};
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, kill_process_group, waitid};
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command, ExitStatus};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    /// The longest pause between two looks at whether the child has exited while something
    /// else still holds its pipes open.
    const MAX_PAUSE: Duration = Duration::from_millis(25);
    /// How long a killed child may take to die before it is left for a later run to reap (a
    /// process blocked in the driver does not die until the driver lets it go).
    const REAP_WAIT: Duration = Duration::from_secs(1);

    /// Children that did not die within [`REAP_WAIT`] of SIGKILL, reaped by later runs.
    static UNREAPED: Mutex<Vec<Child>> = Mutex::new(Vec::new());

    pub(super) fn run(
        command: &mut Command,
        deadline: Instant,
        stdout_limit: usize,
    ) -> Result<Captured, Failure> {
        reap_leftovers();
        command.process_group(0);
        let mut child = command.spawn().map_err(Failure::Spawn)?;
        let mut stdout = Pipe::new(child.stdout.take(), Sink::new(stdout_limit, true));
        let mut stderr = Pipe::new(child.stderr.take(), Sink::new(STDERR_KEEP, false));
        let running = Running::new(child);

        let mut pause = Duration::from_millis(1);
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(Failure::TimedOut);
            }
            let progressed = read_ready(&mut stdout, &mut stderr, pause.min(deadline - now))
                .map_err(Failure::Io)?;
            if stdout.sink.failed() {
                return Err(Failure::TooMuchOutput {
                    limit: stdout.sink.limit,
                });
            }
            if running.has_exited().map_err(Failure::Io)? {
                // All it wrote is in the pipes now. Whatever it left running is killed first,
                // so that what is there can be taken without waiting for an end of file that
                // a leftover holding the pipes (or writing on) would never send.
                running.kill_group();
                while (stdout.open() || stderr.open())
                    && Instant::now() < deadline
                    && read_ready(&mut stdout, &mut stderr, Duration::ZERO).map_err(Failure::Io)?
                {
                }
                if stdout.sink.failed() {
                    return Err(Failure::TooMuchOutput {
                        limit: stdout.sink.limit,
                    });
                }
                let status = running.finish()?;
                return Ok(Captured {
                    status,
                    stdout: stdout.sink.bytes,
                    stderr: stderr.sink.bytes,
                });
            }
            // Quick looks right after output (the exit follows the end of file closely),
            // slower ones while nothing happens.
            pause = if progressed {
                Duration::from_millis(1)
            } else {
                (pause * 2).min(MAX_PAUSE)
            };
        }
    }

    /// A child's pipe: open until it reads an end of file.
    struct Pipe<R> {
        reader: Option<R>,
        sink: Sink,
    }

    impl<R: Read + std::os::fd::AsFd> Pipe<R> {
        fn new(reader: Option<R>, sink: Sink) -> Self {
            Self { reader, sink }
        }

        fn open(&self) -> bool {
            self.reader.is_some()
        }

        /// One read, after `poll` said it will not block.
        fn read_once(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
            let Some(reader) = self.reader.as_mut() else {
                return Ok(());
            };
            match reader.read(buf) {
                Ok(0) => self.reader = None,
                Ok(n) => self.sink.take(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            Ok(())
        }
    }

    /// Waits up to `wait` for either open pipe to be readable and reads once from each that
    /// is. Returns whether anything was ready. With both pipes closed it just sleeps.
    fn read_ready<A, B>(a: &mut Pipe<A>, b: &mut Pipe<B>, wait: Duration) -> std::io::Result<bool>
    where
        A: Read + std::os::fd::AsFd,
        B: Read + std::os::fd::AsFd,
    {
        let timeout = Timespec::try_from(wait).unwrap_or(Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        });
        let (ready_a, ready_b) = {
            let mut fds = Vec::with_capacity(2);
            if let Some(r) = a.reader.as_ref() {
                fds.push(PollFd::new(r, PollFlags::IN));
            }
            if let Some(r) = b.reader.as_ref() {
                fds.push(PollFd::new(r, PollFlags::IN));
            }
            if fds.is_empty() {
                if !wait.is_zero() {
                    std::thread::sleep(wait);
                }
                return Ok(false);
            }
            match poll(&mut fds, Some(&timeout)) {
                Ok(_) => {}
                // Interrupted: as if something were ready, so that a drain goes on.
                Err(rustix::io::Errno::INTR) => return Ok(true),
                Err(e) => return Err(e.into()),
            }
            // An end of file, a hang-up or an error all make the next read return at once.
            let ready = |fd: &PollFd<'_>| !fd.revents().is_empty();
            let mut it = fds.iter();
            let ready_a = a.open() && it.next().is_some_and(ready);
            let ready_b = b.open() && it.next().is_some_and(ready);
            (ready_a, ready_b)
        };
        let mut buf = [0u8; CHUNK];
        if ready_a {
            a.read_once(&mut buf)?;
        }
        if ready_b {
            b.read_once(&mut buf)?;
        }
        Ok(ready_a || ready_b)
    }

    /// A started child: on drop, its process group is killed, it leaves the registry and it
    /// is reaped, in that order (the group id stays reserved until the reaping).
    struct Running {
        child: Option<Child>,
        /// The child's pid, which is also its process group's id.
        pid: Option<Pid>,
        registration: Option<registry::Registration>,
    }

    impl Running {
        fn new(child: Child) -> Self {
            let pid = i32::try_from(child.id()).ok().and_then(Pid::from_raw);
            Self {
                registration: pid.map(registry::register),
                child: Some(child),
                pid,
            }
        }

        /// Whether the child has exited, without reaping it.
        fn has_exited(&self) -> std::io::Result<bool> {
            let Some(pid) = self.pid else {
                return Ok(false);
            };
            let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
            match waitid(WaitId::Pid(pid), options) {
                Ok(status) => Ok(status.is_some()),
                Err(rustix::io::Errno::INTR) => Ok(false),
                Err(e) => Err(e.into()),
            }
        }

        /// Ends the run of a child that has exited and returns its exit status.
        fn finish(mut self) -> Result<ExitStatus, Failure> {
            self.end().ok_or_else(|| {
                Failure::Io(std::io::Error::other(
                    "the exited child could not be reaped",
                ))
            })
        }

        /// SIGKILL to everything in the child's process group. The child stays unreaped, so
        /// the group id cannot have been reused.
        fn kill_group(&self) {
            if let Some(pid) = self.pid {
                // ESRCH (nothing left in the group) is the usual answer and needs nothing.
                let _ = kill_process_group(pid, Signal::KILL);
            }
        }

        fn end(&mut self) -> Option<ExitStatus> {
            self.kill_group();
            self.pid = None;
            if let Some(registration) = self.registration.take() {
                registration.leave();
            }
            reap(self.child.take()?)
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            self.end();
        }
    }

    /// Waits up to [`REAP_WAIT`] for a killed child; one that is still alive (blocked in the
    /// driver) is kept for a later run to reap, so that no call blocks on it.
    fn reap(mut child: Child) -> Option<ExitStatus> {
        // The group is killed already; this covers a child whose pid was not a group id.
        let _ = child.kill();
        let give_up = Instant::now() + REAP_WAIT;
        let mut pause = Duration::from_millis(1);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < give_up => std::thread::sleep(pause),
                Ok(None) => break,
                Err(_) => return None,
            }
            pause = (pause * 2).min(MAX_PAUSE);
        }
        if let Ok(mut unreaped) = UNREAPED.lock() {
            unreaped.push(child);
        }
        None
    }

    /// Reaps children that outlived their run's SIGKILL and have died since.
    fn reap_leftovers() {
        if let Ok(mut unreaped) = UNREAPED.lock() {
            unreaped.retain_mut(|child| !matches!(child.try_wait(), Ok(Some(_)) | Err(_)));
        }
    }

    /// The process groups of running helpers, for [`super::kill_helper_processes`].
    ///
    /// A fixed array of atomics rather than a locked list, so that a sweep from another
    /// thread (a watchdog about to `_exit`) never waits on a lock a stuck thread holds. A slot
    /// is 0 (free), a group id (a running helper), or minus a group id (being killed by a
    /// sweep: its owner waits for the sweep to finish before reaping, so the sweep never
    /// signals a reused id).
    pub(super) mod registry {
        use rustix::process::{Pid, Signal, kill_process_group};
        use std::sync::atomic::{AtomicI32, Ordering};

        /// More helpers than a program runs at once; one past this runs unregistered (still
        /// killed by its own run, only missed by a sweep).
        const SLOTS: usize = 64;
        static LIVE: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];

        pub(in super::super) struct Registration {
            slot: Option<usize>,
            group: i32,
        }

        pub(in super::super) fn register(group: Pid) -> Registration {
            static AT_EXIT: std::sync::Once = std::sync::Once::new();
            AT_EXIT.call_once(|| {
                // SAFETY: `kill_all_at_exit` is a plain `extern "C" fn()` that cannot unwind
                // (it only loads atomics and sends signals). A failure to register (no room in
                // the table) only loses the sweep at `exit`.
                unsafe {
                    libc::atexit(kill_all_at_exit);
                }
            });
            let group = group.as_raw_nonzero().get();
            let slot = LIVE.iter().position(|slot| {
                slot.compare_exchange(0, group, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            });
            Registration { slot, group }
        }

        impl Registration {
            /// Leaves the registry, after any sweep that is killing this group is done.
            pub(in super::super) fn leave(self) {
                let Some(slot) = self.slot.and_then(|i| LIVE.get(i)) else {
                    return;
                };
                loop {
                    match slot.compare_exchange(self.group, 0, Ordering::AcqRel, Ordering::Acquire)
                    {
                        Err(now) if now == -self.group => std::thread::yield_now(),
                        _ => return,
                    }
                }
            }
        }

        /// Run by `exit(3)` (a return from `main`, `std::process::exit`): helpers still
        /// running in other threads would otherwise outlive the program.
        extern "C" fn kill_all_at_exit() {
            kill_all();
        }

        pub(in super::super) fn kill_all() {
            for slot in &LIVE {
                let group = slot.load(Ordering::Acquire);
                if group <= 0
                    || slot
                        .compare_exchange(group, -group, Ordering::AcqRel, Ordering::Acquire)
                        .is_err()
                {
                    continue;
                }
                if let Some(pid) = Pid::from_raw(group) {
                    let _ = kill_process_group(pid, Signal::KILL);
                }
                let _ = slot.compare_exchange(-group, 0, Ordering::AcqRel, Ordering::Acquire);
            }
        }
    }
}

#[cfg(not(unix))]
mod imp {
    use super::{CHUNK, Captured, Failure, Read, STDERR_KEEP, Sink};
    use std::process::{Child, Command};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    pub(super) fn run(
        command: &mut Command,
        deadline: Instant,
        stdout_limit: usize,
    ) -> Result<Captured, Failure> {
        let mut child = command.spawn().map_err(Failure::Spawn)?;
        let drains = (
            drain(child.stdout.take(), Sink::new(stdout_limit, true)),
            drain(child.stderr.take(), Sink::new(STDERR_KEEP, false)),
        );
        let (stdout, stderr) = match drains {
            (Ok(stdout), Ok(stderr)) => (stdout, stderr),
            (Err(e), _) | (_, Err(e)) => {
                kill(&mut child);
                return Err(Failure::Io(e));
            }
        };
        let status = match wait_until(&mut child, deadline) {
            Ok(Some(status)) => status,
            Ok(None) => {
                kill(&mut child);
                return Err(Failure::TimedOut);
            }
            Err(e) => {
                kill(&mut child);
                return Err(Failure::Io(e));
            }
        };
        let grace = deadline.max(Instant::now() + Duration::from_millis(200));
        let (Some(stdout), Some(stderr)) = (stdout.collect(grace), stderr.collect(grace)) else {
            return Err(Failure::TimedOut);
        };
        if stdout.failed() {
            return Err(Failure::TooMuchOutput {
                limit: stdout.limit,
            });
        }
        Ok(Captured {
            status,
            stdout: stdout.bytes,
            stderr: stderr.bytes,
        })
    }

    /// A pipe read on a helper thread until its end or, for a sink that fails past its
    /// limit, until the limit.
    struct Drain(Option<mpsc::Receiver<Sink>>);

    fn drain(pipe: Option<impl Read + Send + 'static>, mut sink: Sink) -> std::io::Result<Drain> {
        let Some(mut pipe) = pipe else {
            return Ok(Drain(None));
        };
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("hypomnesis-helper-pipe".into())
            .spawn(move || {
                let mut buf = vec![0u8; CHUNK];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    sink.take(buf.get(..n).unwrap_or_default());
                    if sink.failed() {
                        break;
                    }
                }
                let _ = tx.send(sink);
            })?;
        Ok(Drain(Some(rx)))
    }

    impl Drain {
        fn collect(self, deadline: Instant) -> Option<Sink> {
            let Some(rx) = self.0 else {
                return Some(Sink::new(0, false));
            };
            let wait = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(sink) => Some(sink),
                Err(mpsc::RecvTimeoutError::Disconnected) => Some(Sink::new(0, false)),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
            }
        }
    }

    fn wait_until(
        child: &mut Child,
        deadline: Instant,
    ) -> std::io::Result<Option<std::process::ExitStatus>> {
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(Some(status));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(25));
        }
    }

    fn kill(child: &mut Child) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

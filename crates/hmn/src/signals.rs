//! Catching signals: forwarded to the running command (`run`), or a request to stop (`watch`).
//!
//! `run` catches every signal whose default action would end hmn and that another process
//! may reasonably send to ask something of the command: SIGHUP, SIGINT, SIGQUIT, SIGTERM,
//! SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, and on Linux the real-time signals (a job
//! scheduler's warnings); and SIGCONT and SIGWINCH, harmless to hmn but meant for the command.
//! Each is forwarded to CMD when a process sent it (a signal from the terminal reached CMD by
//! itself). Faults (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS) are hmn's own
//! and keep their default; SIGKILL and SIGSTOP cannot be caught; SIGTSTP, SIGTTIN and SIGTTOU
//! stop the whole foreground group already. SIGXFSZ is caught and not forwarded: a recording
//! past a file-size limit then fails with `EFBIG` (reported) instead of killing hmn. A caught
//! signal's handler is reset to the default in CMD by `exec`, so CMD sees them all as usual.
/// Whether a stop was requested (SIGINT, SIGTERM, SIGHUP or SIGQUIT caught).
pub fn stop_requested() -> bool {
    imp::stops() != 0
}

/// How many stop signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT) were caught so far.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub fn stops() -> u32 {
    imp::stops()
}

/// Signals forwarded to the command so far.
pub fn forwarded() -> Vec<i32> {
    let mask = imp::forwarded();
    (1..=64).filter(|s| mask & bit(*s) != 0).collect()
}

/// The mask bit of `signal` (1 to 64).
fn bit(signal: i32) -> u64 {
    u32::try_from(signal - 1)
        .ok()
        .and_then(|shift| 1_u64.checked_shl(shift))
        .unwrap_or(0)
}

pub use imp::{clear_child, install, install_for_run, set_child};

#[cfg(unix)]
mod imp {
    use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

    use super::bit;

    static CHILD: AtomicI32 = AtomicI32::new(0);
    static RECEIVED: AtomicU64 = AtomicU64::new(0);
    static STOPS: AtomicU32 = AtomicU32::new(0);
    static FORWARDED: AtomicU64 = AtomicU64::new(0);

    /// The signals that ask hmn (`watch`) to stop.
    const STOP: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

    /// Signals `run` forwards, beyond [`STOP`] and the real-time ones.
    const FORWARD: [libc::c_int; 8] = [
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGCONT,
        libc::SIGWINCH,
        libc::SIGXFSZ,
    ];

    fn forwarded_by_run(signal: libc::c_int) -> bool {
        signal != libc::SIGXFSZ
    }

    extern "C" fn on_signal(
        signal: libc::c_int,
        info: *mut libc::siginfo_t,
        _context: *mut libc::c_void,
    ) {
        RECEIVED.fetch_or(bit(signal), Ordering::SeqCst);
        if STOP.contains(&signal) {
            STOPS.fetch_add(1, Ordering::SeqCst);
        }
        let child = CHILD.load(Ordering::SeqCst);
        // A signal from the terminal (no sending process) reached the whole foreground
        // process group, CMD included: do not deliver it twice.
        if child > 0 && sender(info) != 0 && forwarded_by_run(signal) {
            // SAFETY: kill is async-signal-safe; `child` is our unreaped child.
            unsafe { libc::kill(child, signal) };
            FORWARDED.fetch_or(bit(signal), Ordering::SeqCst);
        }
    }

    /// The pid that sent the signal; 0 when the kernel did (a terminal).
    fn sender(info: *mut libc::siginfo_t) -> libc::pid_t {
        if info.is_null() {
            return 0;
        }
        #[cfg(target_os = "linux")]
        {
            // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
            unsafe { (*info).si_pid() }
        }
        #[cfg(not(target_os = "linux"))]
        {
            // SAFETY: as above.
            unsafe { (*info).si_pid }
        }
    }

    fn catch(signals: &[libc::c_int]) -> std::io::Result<()> {
        for &signal in signals {
            // SAFETY: a zeroed sigaction is valid to fill in.
            let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
            action.sa_sigaction = on_signal
                as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
                as libc::sighandler_t;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            // SAFETY: `action` is initialised and the old-action pointer may be null; the
            // handler only touches atomics and calls kill, both async-signal-safe.
            let rc = unsafe { libc::sigaction(signal, &raw const action, std::ptr::null_mut()) };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// The signals `run` catches: see the module docs.
    fn caught_by_run() -> Vec<libc::c_int> {
        let all = STOP.iter().chain(&FORWARD).copied();
        #[cfg(target_os = "linux")]
        let all = all.chain(libc::SIGRTMIN()..=libc::SIGRTMAX());
        all.collect()
    }

    /// `watch`: SIGINT, SIGTERM, SIGHUP and SIGQUIT request a stop.
    pub fn install() -> std::io::Result<()> {
        catch(&STOP)
    }

    /// `run`: every signal of the module docs is caught, to be forwarded.
    pub fn install_for_run() -> std::io::Result<()> {
        catch(&caught_by_run())
    }

    pub fn set_child(pid: u32) {
        let child = i32::try_from(pid).unwrap_or(0);
        CHILD.store(child, Ordering::SeqCst);
        // A signal caught before the command existed is delivered now.
        let pending = RECEIVED.load(Ordering::SeqCst);
        for signal in caught_by_run() {
            if pending & bit(signal) != 0 && forwarded_by_run(signal) && child > 0 {
                // SAFETY: kill on our own child.
                unsafe { libc::kill(child, signal) };
                FORWARDED.fetch_or(bit(signal), Ordering::SeqCst);
            }
        }
    }

    pub fn clear_child() {
        CHILD.store(0, Ordering::SeqCst);
    }

    pub fn stops() -> u32 {
        STOPS.load(Ordering::SeqCst)
    }

    pub fn forwarded() -> u64 {
        FORWARDED.load(Ordering::SeqCst)
    }
}

#[cfg(not(unix))]
mod imp {
    use std::sync::atomic::{AtomicU32, Ordering};

    static STOPS: AtomicU32 = AtomicU32::new(0);

    /// Ctrl-C and console close reach the command through the console by themselves; hmn
    /// only has to survive them to write its report.
    pub fn install() -> std::io::Result<()> {
        ctrlc::set_handler(|| {
            STOPS.fetch_add(1, Ordering::SeqCst);
        })
        .map_err(std::io::Error::other)
    }

    pub fn install_for_run() -> std::io::Result<()> {
        install()
    }

    pub fn set_child(_pid: u32) {}

    pub fn clear_child() {}

    pub fn stops() -> u32 {
        STOPS.load(Ordering::SeqCst)
    }

    pub fn forwarded() -> u64 {
        0
    }
}

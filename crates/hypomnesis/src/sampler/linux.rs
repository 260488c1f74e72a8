//! Linux readers for the sampler: each tracked process's `statm` kept open, its `status` read
//! for the kernel's high-water mark, and discovery of new processes, all without allocating
//! once warm.
//!
//! Costs that shape this module (measured on Linux 6.x): `pread` of a kept-open `statm`
//! ~1 µs, of `status` ~14 µs (the kernel formats every line), open + read + close of a `stat`
//! ~10 µs, `getdents64` over a `/proc` of 90 processes ~50 µs, `/proc/loadavg` ~1 µs.
//!
//! Discovery therefore reads `/proc/loadavg` every tick: its last field is the pid most
//! recently handed out. When it has not moved, no process (or thread) was created and there is
//! nothing to do. When it moved forward by a little, only the pids in between are probed;
//! anything else (a wrap past `pid_max`, a burst, an unreadable `loadavg`, and every
//! [`FULL_SCAN_EVERY`] as a safety net) lists `/proc` with `getdents64` into a kept buffer and
//! reads `stat` for the pids the previous listing did not have. A pid probed by number may be
//! a thread (threads have pids too, hidden from the `/proc` listing); a candidate whose parent
//! is tracked is checked against its `Tgid` before it is taken as a process.
//!
//! A tracked process is read through its own open `statm` descriptor, which stays bound to
//! that process: when it exits the reads fail with `ESRCH`, even if its pid is reused at once.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::ProbeHandle;
use crate::os::procfs::{self as parse, Stat};

/// How often discovery lists all of `/proc` even when `loadavg` says nothing new started.
pub(super) const FULL_SCAN_EVERY: Duration = Duration::from_secs(2);

/// The widest jump of the last pid that is probed pid by pid rather than by a full listing.
const RANGE_PROBE_MAX: u32 = 512;

/// Path and read buffers reused by every read of a sampler, so reads do not allocate.
#[derive(Debug)]
pub(super) struct Scratch {
    path: OsString,
    buf: Vec<u8>,
}

impl Scratch {
    pub(super) fn new() -> Self {
        Self {
            path: OsString::with_capacity(256),
            buf: vec![0; 16 * 1024],
        }
    }

    /// Opens `<root>/<pid>/<leaf>` (or `<root>/<leaf>` without a pid). `File::open` converts
    /// paths shorter than a few hundred bytes on the stack, so this does not allocate once
    /// `path` has grown to the root's length.
    fn open(&mut self, root: &Path, pid: Option<u32>, leaf: &str) -> io::Result<File> {
        self.path.clear();
        self.path.push(root.as_os_str());
        self.path.push("/");
        if let Some(pid) = pid {
            let mut digits = [0; 10];
            self.path
                .push(OsStr::from_bytes(parse::decimal(pid, &mut digits)));
            self.path.push("/");
        }
        self.path.push(leaf);
        File::open(Path::new(&self.path))
    }

    /// The whole of `file` from offset 0, into the kept buffer (grown, rarely, when a file
    /// does not fit).
    ///
    /// A `/proc` file is produced whole by the kernel on every read: a read that returns less
    /// than asked has reached the end, and asking again at an offset would make the kernel
    /// produce the file a second time. So a file that fits takes one `pread`.
    fn read(&mut self, file: &File) -> io::Result<&[u8]> {
        loop {
            let mut len = 0;
            while let Some(window) = self.buf.get_mut(len..).filter(|w| !w.is_empty()) {
                let asked = window.len();
                match file.read_at(window, u64::try_from(len).unwrap_or(u64::MAX)) {
                    Ok(n) => {
                        len += n;
                        if n < asked {
                            return Ok(self.buf.get(..len).unwrap_or_default());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            // Full: the file may be longer; read it again whole into a bigger buffer.
            let bigger = self.buf.len().saturating_mul(2).max(4096);
            self.buf.resize(bigger, 0);
        }
    }

    /// Opens and reads `<root>/<pid>/<leaf>` in one go.
    fn read_file(&mut self, root: &Path, pid: Option<u32>, leaf: &str) -> io::Result<&[u8]> {
        let file = self.open(root, pid, leaf)?;
        self.read(&file)
    }
}

/// What the sampler's process readers share: the `/proc` root, the page size, the buffers.
#[derive(Debug)]
pub(super) struct Env {
    root: PathBuf,
    page: u64,
    scratch: Scratch,
}

impl Env {
    pub(super) fn new(probe: &ProbeHandle) -> Self {
        Self {
            root: probe.proc_root().to_path_buf(),
            page: page_size(),
            scratch: Scratch::new(),
        }
    }

    /// A reader for `pid`; `None` when there is no such process.
    pub(super) fn open(&mut self, pid: u32) -> Option<Reader> {
        Reader::open(&mut self.scratch, &self.root, pid)
    }

    pub(super) fn rss(&mut self, reader: &Reader) -> Reading {
        reader.rss(&mut self.scratch, &self.root, self.page)
    }

    pub(super) fn hwm(&mut self, reader: &Reader) -> Option<u64> {
        reader.hwm(&mut self.scratch, &self.root, self.page)
    }

    pub(super) fn is_process(&mut self, found: &Found) -> bool {
        found.is_process(&mut self.scratch, &self.root)
    }

    pub(super) fn discovery(&mut self) -> Discovery {
        Discovery::new(&self.root, &mut self.scratch)
    }

    pub(super) fn poll(&mut self, discovery: &mut Discovery, now: Instant) {
        discovery.poll(&mut self.scratch, &self.root, now);
    }
}

/// `sysconf(_SC_PAGESIZE)`, or 4096 when it fails.
pub(super) fn page_size() -> u64 {
    // SAFETY: sysconf takes an integer name, touches no caller memory and is thread-safe.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

/// CPU time the calling thread has used (`getrusage(RUSAGE_THREAD)`), user + system.
pub(super) fn thread_cpu_time() -> Option<Duration> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is valid for writing one `rusage`; RUSAGE_THREAD reads the caller's own
    // counters and has no other effect.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: getrusage returned 0, so it filled the struct (which was zeroed before anyway).
    let usage = unsafe { usage.assume_init() };
    let time = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    Some(time(usage.ru_utime) + time(usage.ru_stime))
}

/// `stat` of `pid`, when it exists.
pub(super) fn read_stat(scratch: &mut Scratch, root: &Path, pid: u32) -> Option<Stat> {
    parse::parse_stat(scratch.read_file(root, Some(pid), "stat").ok()?)
}

/// Whether `pid` is a thread of another process rather than a process (its `Tgid` differs).
/// Unreadable counts as a thread, so nothing unknown is added.
fn is_thread(scratch: &mut Scratch, root: &Path, pid: u32) -> bool {
    match scratch.read_file(root, Some(pid), "status") {
        Ok(text) => parse::status_u32(text, b"Tgid") != Some(pid),
        Err(_) => true,
    }
}

/// What one read of a tracked process gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reading {
    /// Resident bytes.
    Rss(u64),
    /// The process has exited (and been reaped).
    Gone,
    /// This read failed for another reason; try again next tick.
    Failed,
}

/// One tracked process's open `statm`.
#[derive(Debug)]
pub(super) struct Reader {
    pid: u32,
    /// `None` when the process ran out of file descriptors at open time: then `statm` is
    /// opened by path on every read.
    statm: Option<File>,
}

impl Reader {
    /// Opens `pid`'s `statm`; `None` when there is no such process.
    pub(super) fn open(scratch: &mut Scratch, root: &Path, pid: u32) -> Option<Self> {
        match scratch.open(root, Some(pid), "statm") {
            Ok(file) => Some(Self {
                pid,
                statm: Some(file),
            }),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                Some(Self { pid, statm: None })
            }
            Err(_) => None,
        }
    }

    /// Resident bytes now.
    pub(super) fn rss(&self, scratch: &mut Scratch, root: &Path, page: u64) -> Reading {
        let text = match &self.statm {
            Some(file) => scratch.read(file),
            None => scratch.read_file(root, Some(self.pid), "statm"),
        };
        match text {
            Ok(text) => match parse::parse_statm_resident(text) {
                Some(pages) => Reading::Rss(pages.saturating_mul(page)),
                None => Reading::Failed,
            },
            Err(e) if gone(&e) => Reading::Gone,
            Err(_) => Reading::Failed,
        }
    }

    /// The kernel's high-water mark of the process's resident memory (`VmHWM`), bytes.
    ///
    /// `status` is opened by path, which could name a new process if this one had exited and
    /// its pid been reused; the open `statm` is read afterwards to rule that out (a pid cannot
    /// be reused while its process is alive).
    pub(super) fn hwm(&self, scratch: &mut Scratch, root: &Path, page: u64) -> Option<u64> {
        let hwm = parse::status_kib_as_bytes(
            scratch.read_file(root, Some(self.pid), "status").ok()?,
            b"VmHWM",
        )?;
        match self.rss(scratch, root, page) {
            Reading::Rss(_) => Some(hwm),
            Reading::Gone | Reading::Failed => None,
        }
    }
}

fn gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// A process seen by discovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Found {
    pub(super) pid: u32,
    pub(super) ppid: u32,
    pub(super) start_ticks: u64,
    /// Probed by number, so possibly a thread: check before tracking.
    maybe_thread: bool,
}

impl Found {
    /// Whether this is really a process (not a thread of one). Costs a `status` read for a
    /// candidate probed by number.
    pub(super) fn is_process(&self, scratch: &mut Scratch, root: &Path) -> bool {
        !self.maybe_thread || !is_thread(scratch, root, self.pid)
    }
}

/// Finds processes created since the last poll (see the module docs).
#[derive(Debug)]
pub(super) struct Discovery {
    loadavg: Option<File>,
    proc_dir: Option<File>,
    last_pid: Option<u32>,
    last_full: Option<Instant>,
    dents: Vec<u8>,
    /// The pids of the previous full listing, sorted.
    listed: Vec<u32>,
    listing: Vec<u32>,
    found: Vec<Found>,
    /// Full listings done, for tests and the bench.
    pub(super) full_scans: u64,
}

impl Discovery {
    pub(super) fn new(root: &Path, scratch: &mut Scratch) -> Self {
        Self {
            loadavg: scratch.open(root, None, "loadavg").ok(),
            proc_dir: File::open(root).ok(),
            last_pid: None,
            last_full: None,
            dents: vec![0; 32 * 1024],
            listed: Vec::with_capacity(1024),
            listing: Vec::with_capacity(1024),
            found: Vec::with_capacity(256),
            full_scans: 0,
        }
    }

    /// The processes found by the last [`Discovery::poll`], by ascending pid.
    pub(super) fn found(&self) -> &[Found] {
        &self.found
    }

    /// Looks for processes created since the previous poll.
    pub(super) fn poll(&mut self, scratch: &mut Scratch, root: &Path, now: Instant) {
        self.found.clear();
        let last_pid = match &self.loadavg {
            Some(file) => scratch
                .read(file)
                .ok()
                .and_then(parse::parse_loadavg_last_pid),
            None => None,
        };
        let due = self
            .last_full
            .is_none_or(|at| now.saturating_duration_since(at) >= FULL_SCAN_EVERY);
        match (self.last_pid, last_pid) {
            (Some(previous), Some(current)) if !due && current == previous => {}
            (Some(previous), Some(current))
                if !due && current > previous && current - previous <= RANGE_PROBE_MAX =>
            {
                for pid in previous + 1..=current {
                    if let Some(stat) = read_stat(scratch, root, pid) {
                        self.found.push(Found {
                            pid,
                            ppid: stat.ppid,
                            start_ticks: stat.start_ticks,
                            maybe_thread: true,
                        });
                    }
                }
            }
            _ => {
                self.full_scan(scratch, root);
                self.last_full = Some(now);
            }
        }
        self.last_pid = last_pid;
    }

    /// Lists `/proc` and reads `stat` of every pid the previous listing did not have.
    fn full_scan(&mut self, scratch: &mut Scratch, root: &Path) {
        self.full_scans += 1;
        self.listing.clear();
        let Some(dir) = self.proc_dir.as_mut() else {
            return;
        };
        if dir.seek(SeekFrom::Start(0)).is_err() {
            return;
        }
        loop {
            let n = match getdents(dir, &mut self.dents) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let filled = self.dents.get(..n).unwrap_or_default();
            self.listing.extend(
                parse::dirent_names(filled)
                    .filter_map(parse::parse_u64)
                    .filter_map(|p| u32::try_from(p).ok()),
            );
        }
        self.listing.sort_unstable();
        let mut previous = self.listed.iter().copied().peekable();
        for &pid in &self.listing {
            while previous.next_if(|&p| p < pid).is_some() {}
            if previous.next_if_eq(&pid).is_some() {
                continue;
            }
            if let Some(stat) = read_stat(scratch, root, pid) {
                self.found.push(Found {
                    pid,
                    ppid: stat.ppid,
                    start_ticks: stat.start_ticks,
                    maybe_thread: false,
                });
            }
        }
        std::mem::swap(&mut self.listed, &mut self.listing);
    }
}

/// One `getdents64(2)` call into `buf`; 0 at the end of the directory.
fn getdents(dir: &File, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the descriptor is an open directory owned by `dir` for the whole call, and the
    // kernel writes at most `buf.len()` bytes into `buf`, which is valid for writes.
    let n = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            dir.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_own_process_is_read_through_its_open_statm() {
        let mut scratch = Scratch::new();
        let root = Path::new("/proc");
        let reader = Reader::open(&mut scratch, root, std::process::id()).unwrap();
        let Reading::Rss(rss) = reader.rss(&mut scratch, root, page_size()) else {
            panic!("own statm unreadable");
        };
        assert!(rss > 0);
        let hwm = reader.hwm(&mut scratch, root, page_size()).unwrap();
        assert!(hwm >= rss / 2, "VmHWM {hwm} vs RSS {rss}");
    }

    #[test]
    fn a_full_scan_lists_this_process_and_its_parent() {
        let mut scratch = Scratch::new();
        let root = Path::new("/proc");
        let mut discovery = Discovery::new(root, &mut scratch);
        discovery.poll(&mut scratch, root, Instant::now());
        assert_eq!(discovery.full_scans, 1);
        let own = std::process::id();
        let me = discovery.found().iter().find(|f| f.pid == own).unwrap();
        assert_eq!(me.ppid, std::os::unix::process::parent_id());
        assert!(me.is_process(&mut scratch, root));
    }

    #[test]
    fn a_thread_probed_by_number_is_not_a_process() {
        let mut scratch = Scratch::new();
        let root = Path::new("/proc");
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            tx.send(unsafe { libc::gettid() }).unwrap();
            done_rx.recv().unwrap();
        });
        let tid = u32::try_from(rx.recv().unwrap()).unwrap();
        let stat = read_stat(&mut scratch, root, tid).unwrap();
        let found = Found {
            pid: tid,
            ppid: stat.ppid,
            start_ticks: stat.start_ticks,
            maybe_thread: true,
        };
        assert!(!found.is_process(&mut scratch, root));
        done_tx.send(()).unwrap();
        thread.join().unwrap();
    }

    #[test]
    fn a_missing_process_has_no_reader() {
        let mut scratch = Scratch::new();
        let tmp = tempfile::tempdir().unwrap();
        assert!(Reader::open(&mut scratch, tmp.path(), 77).is_none());
    }

    #[test]
    fn thread_cpu_time_is_readable() {
        assert!(thread_cpu_time().is_some());
    }
}

//! Readers for platforms without `/proc`: each tracked process is read through
//! [`crate::Probe::process_memory`] (Windows `K32GetProcessMemoryInfo`, macOS
//! `proc_pid_rusage`), which also gives the OS's peak (`PeakWorkingSetSize`, the lifetime
//! maximum footprint).
//!
//! Trees are discovered from a process table of (pid, parent pid, start time) rows, judged by
//! the pure walk in `tree.rs` (which checks start times, so a reused parent pid adopts nothing):
//! - **Windows**: one `CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS)` of every process
//!   (`th32ParentProcessID`), then `OpenProcess` + `GetProcessTimes` for the creation time of
//!   the tree's members and candidate descendants only — a handful of handles, not one per
//!   process on the system.
//! - **macOS**: `proc_listpids(PROC_PPID_ONLY)` for the children of each member, and
//!   `proc_pidinfo(PROC_PIDTBSDINFO)` of each (parent pid, start time), down the generations.
//!   Orphans are re-parented to `launchd` there, as on Linux, so a descendant whose parent
//!   exited before it was found is lost.
//!
//! The table is read at most every [`DISCOVERY_EVERY`] (and at the first sample), not every
//! tick: a snapshot costs far more than a tick's reads. Not measured here (no Windows or macOS
//! machine runs the benches): a Toolhelp32 snapshot walks every process on the system, commonly
//! a millisecond or so for a few hundred processes; the macOS calls are one system call per
//! member and per child. At one read per 500 ms either stays well under 1 % of one core. A
//! descendant is sampled from the first read after it starts; one that starts and ends
//! between two reads is missed.
//!
//! Other platforms have no table reader: a tree target samples its root only, and the report
//! says so.

use std::cell::Cell;
use std::time::{Duration, Instant};

use super::ProbeHandle;
use super::tree::{self, Known, ProcRow, Walk};
use crate::error::HypomnesisError;
use crate::ram::MemoryDetail;

/// How often a tree's process table is read again.
pub(super) const DISCOVERY_EVERY: Duration = Duration::from_millis(500);

/// Whether this platform can discover a tree's descendants.
pub(super) const FOLLOWS_TREES: bool = cfg!(any(windows, target_os = "macos"));

/// What the sampler's process readers share: the probe.
#[derive(Debug)]
pub(super) struct Env {
    probe: ProbeHandle,
}

impl Env {
    pub(super) fn new(probe: &ProbeHandle) -> Self {
        Self {
            probe: probe.clone(),
        }
    }

    /// A reader for `pid`; `None` when there is no such process.
    pub(super) fn open(&mut self, pid: u32) -> Option<Reader> {
        (self.probe.process_exists(pid) != Some(false)).then(|| Reader {
            pid,
            peak: Cell::new(None),
        })
    }

    pub(super) fn rss(&mut self, reader: &Reader) -> Reading {
        match self
            .probe
            .process_memory(Some(reader.pid), MemoryDetail::Fast)
        {
            Ok(memory) => {
                reader.peak.set(memory.peak_rss_bytes);
                Reading::Rss(memory.rss_bytes)
            }
            Err(HypomnesisError::ProcessNotFound { .. }) => Reading::Gone,
            Err(_) => Reading::Failed,
        }
    }

    /// The OS's peak for the process, read now.
    pub(super) fn hwm(&mut self, reader: &Reader) -> Option<u64> {
        match self.rss(reader) {
            Reading::Rss(_) => reader.peak.get(),
            Reading::Gone | Reading::Failed => None,
        }
    }
}

/// Not measured off Linux.
pub(super) fn thread_cpu_time() -> Option<Duration> {
    None
}

/// When `pid` started, in the unit of [`ProcRow::start`]; `None` when it cannot be read.
pub(super) fn start_time(pid: u32) -> Option<u64> {
    os::start_time(pid)
}

/// What one read of a tracked process gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reading {
    /// Resident bytes (the platform's figure, see [`crate::ProcessMemory::rss_bytes`]).
    Rss(u64),
    /// The process has exited.
    Gone,
    /// This read failed for another reason; try again next tick.
    Failed,
}

/// One tracked process.
#[derive(Debug)]
pub(super) struct Reader {
    pid: u32,
    /// The OS peak seen with the latest read.
    peak: Cell<Option<u64>>,
}

/// One tree's discovery: the process table and the walk's buffers, kept between reads.
#[derive(Debug, Default)]
pub(super) struct Discovery {
    table: Vec<ProcRow>,
    members: Vec<Known>,
    walk: Walk,
    found: tree::Found,
    last: Option<Instant>,
    /// Why the table could not be read, until that has been reported once.
    error: Option<String>,
    error_reported: bool,
    /// Tables read, for tests.
    pub(super) scans: u64,
}

impl Discovery {
    /// Whether a read is due at `now`.
    pub(super) fn due(&self, now: Instant) -> bool {
        FOLLOWS_TREES
            && self
                .last
                .is_none_or(|at| now.saturating_duration_since(at) >= DISCOVERY_EVERY)
    }

    /// Reads the table and walks it from `members`; `None` when the table could not be read
    /// (see [`Discovery::take_error`]).
    pub(super) fn scan(
        &mut self,
        members: impl Iterator<Item = Known>,
        now: Instant,
    ) -> Option<&tree::Found> {
        self.last = Some(now);
        self.scans += 1;
        self.members.clear();
        self.members.extend(members);
        if let Err(e) = os::read_table(&self.members, &mut self.table) {
            self.error.get_or_insert(e);
            return None;
        }
        self.walk.discover(
            &mut self.table,
            &self.members,
            os::start_time,
            &mut self.found,
        );
        Some(&self.found)
    }

    /// Why the table could not be read, the first time it could not.
    pub(super) fn take_error(&mut self) -> Option<String> {
        if self.error_reported {
            return None;
        }
        let error = self.error.take()?;
        self.error_reported = true;
        Some(error)
    }
}

#[cfg(windows)]
mod os {
    use std::io;
    use std::mem::size_of;

    use windows_sys::Win32::Foundation::{
        CloseHandle, ERROR_NO_MORE_FILES, FILETIME, HANDLE, INVALID_HANDLE_VALUE,
    };
    use windows_sys::Win32::System::Diagnostics::ToolHelp::{
        CreateToolhelp32Snapshot, PROCESSENTRY32W, Process32FirstW, Process32NextW,
        TH32CS_SNAPPROCESS,
    };
    use windows_sys::Win32::System::Threading::{
        GetProcessTimes, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
    };

    use super::{Known, ProcRow};

    /// A process or snapshot handle, closed on drop.
    struct Handle(HANDLE);

    impl Drop for Handle {
        fn drop(&mut self) {
            // SAFETY: the handle was returned open by OpenProcess / CreateToolhelp32Snapshot
            // and is closed exactly once, here.
            unsafe { CloseHandle(self.0) };
        }
    }

    /// Every process with its parent, from one Toolhelp32 snapshot. Start times are left
    /// `None`: the walk asks [`start_time`] for the few rows that need one.
    pub(super) fn read_table(_members: &[Known], table: &mut Vec<ProcRow>) -> Result<(), String> {
        table.clear();
        // SAFETY: CreateToolhelp32Snapshot takes plain values and returns a handle or
        // INVALID_HANDLE_VALUE.
        let raw = unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0) };
        if raw == INVALID_HANDLE_VALUE || raw.is_null() {
            return Err(format!(
                "CreateToolhelp32Snapshot failed: {}",
                io::Error::last_os_error()
            ));
        }
        let snapshot = Handle(raw);
        let mut entry = PROCESSENTRY32W {
            dwSize: u32::try_from(size_of::<PROCESSENTRY32W>()).unwrap_or(u32::MAX),
            ..PROCESSENTRY32W::default()
        };
        // SAFETY: `snapshot` is an open process snapshot; `entry` is live with `dwSize` set.
        let mut ok = unsafe { Process32FirstW(snapshot.0, &raw mut entry) };
        if ok == 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error().and_then(|c| u32::try_from(c).ok()) {
                Some(ERROR_NO_MORE_FILES) => Ok(()),
                _ => Err(format!("Process32FirstW failed: {err}")),
            };
        }
        while ok != 0 {
            table.push(ProcRow {
                pid: entry.th32ProcessID,
                ppid: entry.th32ParentProcessID,
                start: None,
            });
            // SAFETY: as above.
            ok = unsafe { Process32NextW(snapshot.0, &raw mut entry) };
        }
        Ok(())
    }

    /// The creation time of `pid` (`GetProcessTimes`), in 100 ns units since 1601; `None`
    /// when the process is gone or refuses a limited-information handle (protected).
    pub(super) fn start_time(pid: u32) -> Option<u64> {
        // SAFETY: OpenProcess takes plain values and returns a handle or null.
        let raw = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
        if raw.is_null() {
            return None;
        }
        let process = Handle(raw);
        let mut creation = FILETIME::default();
        let mut exit = FILETIME::default();
        let mut kernel = FILETIME::default();
        let mut user = FILETIME::default();
        // SAFETY: `process` is open with PROCESS_QUERY_LIMITED_INFORMATION, which
        // GetProcessTimes needs; the four FILETIMEs are live and writable.
        let ok = unsafe {
            GetProcessTimes(
                process.0,
                &raw mut creation,
                &raw mut exit,
                &raw mut kernel,
                &raw mut user,
            )
        };
        let time = (u64::from(creation.dwHighDateTime) << 32) | u64::from(creation.dwLowDateTime);
        (ok != 0 && time > 0).then_some(time)
    }
}

#[cfg(target_os = "macos")]
mod os {
    use std::mem::size_of;

    use libc::c_int;

    use super::{Known, ProcRow};

    /// `PROC_PPID_ONLY` (`<sys/proc_info.h>`): list the processes whose parent is the argument.
    const PROC_PPID_ONLY: u32 = 6;
    /// More rows than any tree should have: a bound on the walk down the generations.
    const MAX_ROWS: usize = 65_536;

    /// The members and their descendants, generation by generation, each with its parent pid
    /// and start time.
    pub(super) fn read_table(members: &[Known], table: &mut Vec<ProcRow>) -> Result<(), String> {
        table.clear();
        table.extend(members.iter().filter_map(|m| row(m.pid)));
        let mut children: Vec<c_int> = Vec::new();
        let mut parents: Vec<u32> = members.iter().map(|m| m.pid).collect();
        let mut next = 0;
        let mut listed_any = false;
        while let Some(&parent) = parents.get(next) {
            next += 1;
            if list_children(parent, &mut children).is_err() {
                continue;
            }
            listed_any = true;
            for child in children.iter().filter_map(|&c| u32::try_from(c).ok()) {
                if child == 0 || table.len() >= MAX_ROWS || table.iter().any(|r| r.pid == child) {
                    continue;
                }
                // The listing and the info are two calls: keep the child only if it still
                // names this parent.
                if let Some(found) = row(child).filter(|r| r.ppid == parent) {
                    table.push(found);
                    parents.push(child);
                }
            }
        }
        if !listed_any && !members.is_empty() {
            return Err(format!(
                "proc_listpids(PROC_PPID_ONLY) failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }

    /// The children of `parent` (`proc_listpids(PROC_PPID_ONLY)`, which returns bytes).
    fn list_children(parent: u32, out: &mut Vec<c_int>) -> std::io::Result<()> {
        out.clear();
        let mut slots = 64;
        loop {
            out.resize(slots, 0);
            let bytes = c_int::try_from(slots * size_of::<c_int>()).unwrap_or(c_int::MAX);
            // SAFETY: `out` has `bytes` writable bytes; proc_listpids fills at most that many
            // and returns how many it filled.
            let filled = unsafe {
                libc::proc_listpids(PROC_PPID_ONLY, parent, out.as_mut_ptr().cast(), bytes)
            };
            let Ok(filled) = usize::try_from(filled) else {
                return Err(std::io::Error::last_os_error());
            };
            let count = filled / size_of::<c_int>();
            if count < slots || slots >= MAX_ROWS {
                out.truncate(count.min(slots));
                return Ok(());
            }
            slots *= 4;
        }
    }

    fn bsd_info(pid: u32) -> Option<libc::proc_bsdinfo> {
        let raw_pid = c_int::try_from(pid).ok()?;
        // SAFETY: proc_bsdinfo is plain old data; all zeroes is a valid value.
        let mut info: libc::proc_bsdinfo = unsafe { std::mem::zeroed() };
        let size = c_int::try_from(size_of::<libc::proc_bsdinfo>()).ok()?;
        // SAFETY: `info` is a live proc_bsdinfo of `size` bytes; proc_pidinfo writes at most
        // that many.
        let len = unsafe {
            libc::proc_pidinfo(
                raw_pid,
                libc::PROC_PIDTBSDINFO,
                0,
                (&raw mut info).cast(),
                size,
            )
        };
        (len == size).then_some(info)
    }

    fn row(pid: u32) -> Option<ProcRow> {
        let info = bsd_info(pid)?;
        Some(ProcRow {
            pid,
            ppid: info.pbi_ppid,
            start: start_of(&info),
        })
    }

    fn start_of(info: &libc::proc_bsdinfo) -> Option<u64> {
        info.pbi_start_tvsec
            .checked_mul(1_000_000)?
            .checked_add(info.pbi_start_tvusec)
    }

    /// When `pid` started (`pbi_start_tvsec` / `_tvusec`), µs since 1970.
    pub(super) fn start_time(pid: u32) -> Option<u64> {
        bsd_info(pid).as_ref().and_then(start_of)
    }
}

#[cfg(not(any(windows, target_os = "macos")))]
mod os {
    use super::{Known, ProcRow};

    pub(super) fn read_table(_members: &[Known], table: &mut Vec<ProcRow>) -> Result<(), String> {
        table.clear();
        Err("no process table reader on this platform".to_owned())
    }

    pub(super) fn start_time(_pid: u32) -> Option<u64> {
        None
    }
}

#[cfg(all(test, windows))]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_this_process_under_its_parent_with_a_start_time() {
        let mut table = Vec::new();
        os::read_table(&[], &mut table).unwrap();
        let own = std::process::id();
        let me = table.iter().find(|r| r.pid == own).unwrap();
        assert_ne!(me.ppid, own);
        assert!(start_time(own).is_some());
        // This process started after its parent, if the parent is still there to say.
        if let (Some(mine), Some(parent)) = (start_time(own), start_time(me.ppid)) {
            assert!(parent <= mine, "parent {parent} > own {mine}");
        }
    }

    #[test]
    fn a_child_is_discovered_under_this_process() {
        // An interactive cmd.exe waiting on its stdin: no grandchild that would outlive the
        // kill below and linger into the next test program under Wine.
        let mut child = std::process::Command::new("cmd.exe")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut discovery = Discovery::default();
        let own = Known {
            pid: std::process::id(),
            start: start_time(std::process::id()),
        };
        let found = discovery
            .scan(std::iter::once(own), Instant::now())
            .unwrap();
        let found_child = found.new.iter().any(|r| r.pid == child.id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(found_child, "{:?}", discovery.found.new);
    }
}

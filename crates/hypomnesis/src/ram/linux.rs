//! Readers for `/proc/<pid>` memory files.
//!
//! The calling process's RSS is asked for in loops, so [`StatmReader`] keeps
//! `/proc/self/statm` open and reads it with one `pread` into a stack buffer: about 2 µs, no
//! allocation. Everything else opens its file per call: `status` (~12 µs) for RSS, peak, swap
//! and the anon/file split, and on explicit request `smaps_rollup`, whose cost grows with the
//! resident size (tens of milliseconds at gigabytes) because the kernel walks the page tables.
//!
//! errno mapping: `ENOENT` (no `/proc/<pid>`) and `ESRCH` (the process exited while its files
//! were open) mean the process is gone; `EACCES`/`EPERM` mean it is someone else's
//! (`smaps_rollup` and `exe` need ptrace read access; `status` and `statm` usually do not).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::parse::{self, Status};
use super::{MemoryDetail, ProcessMemory};
use crate::error::{HypomnesisError, Result};

/// The kernel keeps at most this many bytes of a process name in `comm` (`TASK_COMM_LEN` −
/// 1); a `comm` of exactly this length may have been cut.
const COMM_MAX_LEN: usize = 15;

/// Keeps `<proc>/self/statm` open so RSS is one `pread` and no allocation.
#[derive(Debug)]
pub(crate) struct StatmReader {
    file: File,
    path: PathBuf,
    page_size: u64,
}

impl StatmReader {
    /// Opens `<proc_root>/self/statm` and reads the page size, once.
    pub(crate) fn open(proc_root: &Path) -> Result<Self> {
        let path = proc_root.join("self/statm");
        let file = File::open(&path).map_err(|e| HypomnesisError::io(&path, &e))?;
        let page_size = page_size().ok_or(HypomnesisError::Unsupported {
            what: "resident memory from statm",
            context: "when sysconf(_SC_PAGESIZE) fails",
        })?;
        Ok(Self {
            file,
            path,
            page_size,
        })
    }

    /// Resident pages × page size, from one `pread` at offset 0.
    pub(crate) fn rss_bytes(&self) -> Result<u64> {
        // statm is seven numbers of at most 20 digits each: 160 bytes at most.
        let mut buf = [0_u8; 256];
        let len = loop {
            match self.file.read_at(&mut buf, 0) {
                Ok(len) => break len,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(HypomnesisError::io(&self.path, &e)),
            }
        };
        let text = buf.get(..len).unwrap_or_default();
        let pages = parse::parse_statm_resident_pages(text)
            .map_err(|m| HypomnesisError::parse("statm", &self.path, m.into_detail()))?;
        pages.checked_mul(self.page_size).ok_or_else(|| {
            HypomnesisError::parse("statm", &self.path, "resident pages × page size overflows")
        })
    }
}

/// `sysconf(_SC_PAGESIZE)`, or `None` when it fails.
fn page_size() -> Option<u64> {
    // SAFETY: sysconf takes an integer name, touches no caller memory and is thread-safe.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&size| size > 0)
}

/// RAM of `pid` (`None` = the calling process, through `<proc_root>/self`).
///
/// `pid` in the result is the `Tgid` of the status file: the process id as numbered by the
/// `/proc` mount (so a thread id resolves to its process, and `self` to the id `/proc`
/// knows it by). RSS is `VmRSS`; a process without an address space (a kernel thread) has
/// none, and its RSS is `statm`'s, 0.
///
/// With [`MemoryDetail::WithPss`], `smaps_rollup` is read too: when the kernel has none
/// (< 4.14) or the process has no address space, PSS and USS are `None`; when it is not
/// readable (another user's process), the whole call fails with `PermissionDenied`, since
/// PSS was asked for explicitly.
pub(crate) fn read_process_memory(
    proc_root: &Path,
    pid: Option<u32>,
    detail: MemoryDetail,
) -> Result<ProcessMemory> {
    let target = Target {
        asked: pid,
        dir: match pid {
            Some(pid) => proc_root.join(pid.to_string()),
            None => proc_root.join("self"),
        },
    };

    let status_path = target.dir.join("status");
    let status_text = read_proc_text(&status_path).map_err(|e| target.failure(&status_path, &e))?;
    let status = parse::parse_status(&status_text)
        .map_err(|m| HypomnesisError::parse("status", &status_path, m.into_detail()))?;

    let rss_bytes = match status.vm_rss {
        Some(rss) => rss,
        None => target.statm_rss()?,
    };

    let (pss_bytes, uss_bytes) = match detail {
        MemoryDetail::Fast => (None, None),
        MemoryDetail::WithPss => target.smaps_rollup(&status)?,
    };

    Ok(ProcessMemory {
        pid: status.tgid.unwrap_or_else(|| target.pid()),
        rss_bytes,
        peak_rss_bytes: status.vm_hwm,
        swap_bytes: status.vm_swap,
        rss_anon_bytes: status.rss_anon,
        rss_file_bytes: status.rss_file,
        pss_bytes,
        uss_bytes,
        private_bytes: None,
        resident_bytes: None,
        graphics_bytes: None,
    })
}

/// The process a [`read_process_memory`] call reads.
struct Target {
    /// The pid asked for; `None` for the calling process.
    asked: Option<u32>,
    /// `<proc_root>/<pid>` or `<proc_root>/self`.
    dir: PathBuf,
}

impl Target {
    fn pid(&self) -> u32 {
        self.asked.unwrap_or_else(std::process::id)
    }

    /// The error for a failed read of `path`, one of this process's files.
    fn failure(&self, path: &Path, err: &io::Error) -> HypomnesisError {
        match (self.asked, classify(err)) {
            (Some(pid), Failure::Gone) => HypomnesisError::ProcessNotFound { pid },
            (_, Failure::Denied) => HypomnesisError::PermissionDenied {
                pid: self.pid(),
                detail: format!("{}: {err}", path.display()),
            },
            // `/proc/self` missing means `/proc` is not mounted, not that we do not exist.
            (None, Failure::Gone) | (_, Failure::Other) => HypomnesisError::io(path, err),
        }
    }

    /// `statm` resident pages × page size.
    fn statm_rss(&self) -> Result<u64> {
        let path = self.dir.join("statm");
        let text = std::fs::read(&path).map_err(|e| self.failure(&path, &e))?;
        let pages = parse::parse_statm_resident_pages(&text)
            .map_err(|m| HypomnesisError::parse("statm", &path, m.into_detail()))?;
        page_size()
            .and_then(|size| pages.checked_mul(size))
            .ok_or_else(|| {
                HypomnesisError::parse(
                    "statm",
                    &path,
                    "resident pages × page size unknown or too large",
                )
            })
    }

    /// PSS and USS from `smaps_rollup`.
    fn smaps_rollup(&self, status: &Status) -> Result<(Option<u64>, Option<u64>)> {
        let path = self.dir.join("smaps_rollup");
        match read_proc_text(&path) {
            Ok(text) => {
                let rollup = parse::parse_smaps_rollup(&text)
                    .map_err(|m| HypomnesisError::parse("smaps_rollup", &path, m.into_detail()))?;
                Ok((rollup.pss, rollup.uss))
            }
            // No smaps_rollup while the process is still there: a kernel older than 4.14.
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.dir.join("status").exists() => {
                Ok((None, None))
            }
            // The kernel answers ESRCH for a process without an address space (a kernel
            // thread, a zombie); its status has no `VmRSS`.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) && status.vm_rss.is_none() => {
                Ok((None, None))
            }
            Err(e) => Err(self.failure(&path, &e)),
        }
    }
}

/// What an I/O error on a `/proc/<pid>` file means.
enum Failure {
    /// The process does not exist (any more).
    Gone,
    /// It exists but is not ours to read.
    Denied,
    /// Anything else.
    Other,
}

fn classify(err: &io::Error) -> Failure {
    if err.kind() == io::ErrorKind::NotFound {
        return Failure::Gone;
    }
    match err.raw_os_error() {
        Some(libc::ESRCH) => Failure::Gone,
        Some(libc::EACCES | libc::EPERM) => Failure::Denied,
        _ => Failure::Other,
    }
}

/// The name of `pid`: `comm`, extended when the kernel cut it.
///
/// `comm` keeps only the first 15 bytes of a name. When it is exactly that long, the name is
/// taken from the file name of the `exe` link (without the ` (deleted)` the kernel appends
/// for a replaced binary), else from the file name of `argv[0]` in `cmdline`, if that name
/// starts with the `comm` text; a process that renamed itself keeps its `comm`. `None` when
/// `comm` is not readable (no such process).
#[cfg(test)]
pub(crate) fn process_name(proc_root: &Path, pid: u32) -> Option<String> {
    process_name_or_error(proc_root, pid).ok().flatten()
}

/// The name of `pid` as described above, with why `comm` could not be read (`NotFound`: no
/// such process in this procfs).
pub(crate) fn process_name_or_error(proc_root: &Path, pid: u32) -> std::io::Result<Option<String>> {
    let dir = proc_root.join(pid.to_string());
    let mut comm = read_proc_file(&dir.join("comm"), Ends::AtShortRead)?;
    if comm.last() == Some(&b'\n') {
        comm.pop();
    }
    if comm.is_empty() {
        return Ok(None);
    }
    if comm.len() == COMM_MAX_LEN
        && let Some(full) = name_from_exe(&dir, &comm).or_else(|| name_from_cmdline(&dir, &comm))
    {
        return Ok(Some(full));
    }
    Ok(Some(String::from_utf8_lossy(&comm).into_owned()))
}

/// Where a procfs file's text ends, for [`read_proc_file`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ends {
    /// At the first read that fills less than asked: files the kernel generates whole on the
    /// first read (`comm`, `status`: `seq_file`), and regular files.
    AtShortRead,
    /// At a read that returns nothing: `cmdline`, copied from the process's memory a page at
    /// a time.
    AtEmptyRead,
}

/// A procfs text file, read as bytes and converted lossily: a process chooses its own name
/// (`prctl(PR_SET_NAME)`, its executable's file name), which need not be UTF-8, and a strict
/// read would lose every number in the file with it. Only the name is ever affected.
pub(crate) fn read_proc_text(path: &Path) -> std::io::Result<String> {
    let bytes = read_proc_file(path, Ends::AtShortRead)?;
    Ok(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// A small procfs file, read whole with `open` and `read`s only: naming a listing's rows reads
/// three files per process, and `std::fs::read` adds a `statx` for a size hint procfs does not
/// give (it reports 0) and, for most files, a final empty `read`.
pub(crate) fn read_proc_file(path: &Path, ends: Ends) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    read_to_end(&file, &mut bytes, ends)?;
    Ok(bytes)
}

/// Appends what `fd` holds from offset `bytes.len()` on to `bytes` (`pread`), until the text
/// ends as `ends` says. procfs and sysfs generate a file's text again on a read at offset 0,
/// so a kept-open file is read afresh by clearing `bytes` first.
pub(crate) fn read_to_end(
    fd: impl rustix::fd::AsFd,
    bytes: &mut Vec<u8>,
    ends: Ends,
) -> std::io::Result<()> {
    const CHUNK: usize = 4096;
    loop {
        let start = bytes.len();
        bytes.resize(start + CHUNK, 0);
        let offset = u64::try_from(start).unwrap_or(u64::MAX);
        let read = match rustix::io::pread(&fd, &mut bytes[start..], offset) {
            Ok(read) => read,
            Err(rustix::io::Errno::INTR) => {
                bytes.truncate(start);
                continue;
            }
            Err(e) => {
                bytes.truncate(start);
                return Err(e.into());
            }
        };
        bytes.truncate(start + read);
        if read == 0 || (ends == Ends::AtShortRead && read < CHUNK) {
            return Ok(());
        }
    }
}

/// The file name of `<dir>/exe`'s target, when it extends `comm`.
fn name_from_exe(dir: &Path, comm: &[u8]) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let target = std::fs::read_link(dir.join("exe")).ok()?;
    let name = target.file_name()?.as_bytes();
    let name = name.strip_suffix(b" (deleted)").unwrap_or(name);
    extends(name, comm)
}

/// The file name of `argv[0]` in `<dir>/cmdline`, when it extends `comm`.
fn name_from_cmdline(dir: &Path, comm: &[u8]) -> Option<String> {
    let cmdline = read_proc_file(&dir.join("cmdline"), Ends::AtEmptyRead).ok()?;
    let argv0 = cmdline.split(|&b| b == 0).next()?;
    let name = argv0.rsplit(|&b| b == b'/').next()?;
    extends(name, comm)
}

fn extends(name: &[u8], comm: &[u8]) -> Option<String> {
    (name.len() > comm.len() && name.starts_with(comm))
        .then(|| String::from_utf8_lossy(name).into_owned())
}

/// Whether `pid` is a live process (not a thread of one): `<proc_root>/<pid>/status` exists
/// and its `Tgid` is `pid`. `None` when that cannot be told (the file is unreadable for
/// another reason than absence, or has no readable `Tgid`).
pub(crate) fn process_exists(proc_root: &Path, pid: u32) -> Option<bool> {
    if pid == 0 {
        return Some(false);
    }
    let path = proc_root.join(pid.to_string()).join("status");
    match read_proc_text(&path) {
        Ok(text) => {
            let tgid = parse::parse_status(&text).ok()?.tgid?;
            Some(tgid == pid)
        }
        Err(e) => match classify(&e) {
            Failure::Gone => Some(false),
            Failure::Denied | Failure::Other => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_read_whole_at_any_length() {
        let dir = tempfile::tempdir().unwrap();
        // Around the read size: one short read, a full one then an empty one, several.
        for length in [0, 1, 4095, 4096, 4097, 3 * 4096 + 17] {
            let text: Vec<u8> = (0..length).map(|i| b'a' + (i % 26) as u8).collect();
            let path = dir.path().join(format!("file{length}"));
            std::fs::write(&path, &text).unwrap();
            for ends in [Ends::AtShortRead, Ends::AtEmptyRead] {
                assert_eq!(
                    read_proc_file(&path, ends).unwrap(),
                    text,
                    "{length} {ends:?}"
                );
            }
        }
        // Real procfs: this process's command line, which does not change while it runs.
        let cmdline = Path::new("/proc/self/cmdline");
        assert_eq!(
            read_proc_file(cmdline, Ends::AtEmptyRead).unwrap(),
            std::fs::read(cmdline).unwrap()
        );
        let missing = read_proc_file(&dir.path().join("gone"), Ends::AtShortRead);
        assert_eq!(missing.unwrap_err().kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn statm_reader_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<StatmReader>();
    }

    #[test]
    fn page_size_is_a_power_of_two() {
        let size = page_size().unwrap();
        assert!(size.is_power_of_two() && size >= 4096, "{size}");
    }

    #[test]
    fn errno_esrch_means_the_process_is_gone() {
        let err = io::Error::from_raw_os_error(libc::ESRCH);
        assert!(matches!(classify(&err), Failure::Gone));
        let err = io::Error::from_raw_os_error(libc::EACCES);
        assert!(matches!(classify(&err), Failure::Denied));
        let err = io::Error::from_raw_os_error(libc::EIO);
        assert!(matches!(classify(&err), Failure::Other));
    }

    /// A `status` as Linux writes it for a process that named itself `gpu\xff\xfejob`: the
    /// kernel escapes spaces and backslashes in `Name:` but passes other bytes through.
    const NON_UTF8_STATUS: &[u8] = b"Name:\tgpu\xff\xfejob\nUmask:\t0022\nState:\tS (sleeping)\n\
        Tgid:\t4242\nNgid:\t0\nPid:\t4242\nPPid:\t1\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n\
        VmPeak:\t  9000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nRssAnon:\t     512 kB\n\
        RssFile:\t     512 kB\nVmSwap:\t       4 kB\n";

    #[test]
    fn a_status_whose_name_is_not_utf8_keeps_every_number() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("4242");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("status"), NON_UTF8_STATUS).unwrap();
        std::fs::write(dir.join("comm"), b"gpu\xff\xfejob\n").unwrap();
        std::fs::write(dir.join("cmdline"), b"./gpu\xff\xfejob\0--serve\0").unwrap();
        let memory = read_process_memory(root.path(), Some(4242), MemoryDetail::Fast).unwrap();
        assert_eq!(memory.rss_bytes, 1024 << 10);
        assert_eq!(memory.peak_rss_bytes, Some(2048 << 10));
        assert_eq!(memory.swap_bytes, Some(4 << 10));
        assert_eq!(process_exists(root.path(), 4242), Some(true));
        let user = crate::process_info::linux::process_user(root.path(), 4242);
        assert!(user.is_some(), "uid 0 must still be read");
        assert_eq!(
            process_name(root.path(), 4242).as_deref(),
            Some("gpu\u{FFFD}\u{FFFD}job"),
            "the name is converted lossily for display"
        );
        let command = crate::process_info::linux::process_command(root.path(), 4242);
        assert_eq!(command.as_deref(), Some("./gpu\u{FFFD}\u{FFFD}job --serve"));
    }

    /// The same through a real process: this test's own child process renames itself (its
    /// main thread, through `/proc/self/comm`, as `prctl(PR_SET_NAME)` does for a thread) to
    /// bytes that are not UTF-8, and reads itself back.
    #[test]
    fn a_process_that_renames_itself_to_invalid_utf8_keeps_its_figures() {
        test_support::in_own_process(
            "ram::linux::tests::a_process_that_renames_itself_to_invalid_utf8_keeps_its_figures",
            Vec::new,
            || {
                let proc_root = Path::new("/proc");
                std::fs::write("/proc/self/comm", b"gpu\xff\xfejob").unwrap();
                let pid = std::process::id();
                let status = std::fs::read(proc_root.join(pid.to_string()).join("status")).unwrap();
                assert!(
                    std::str::from_utf8(&status).is_err(),
                    "the kernel passed the name through as bytes"
                );
                let memory = read_process_memory(proc_root, Some(pid), MemoryDetail::Fast).unwrap();
                assert!(memory.rss_bytes > 0);
                assert!(memory.peak_rss_bytes.is_some());
                assert_eq!(process_exists(proc_root, pid), Some(true));
                assert!(crate::process_info::linux::process_user(proc_root, pid).is_some());
                let name = process_name(proc_root, pid).unwrap();
                assert!(name.contains('\u{FFFD}'), "{name}");
            },
        );
    }

    /// A `/proc/<pid>` with `comm`, optionally `cmdline` and an `exe` link to `exe`.
    fn process_dir(comm: &str, exe: Option<&str>, cmdline: Option<&[u8]>) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("77");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
        if let Some(exe) = exe {
            std::os::unix::fs::symlink(exe, dir.join("exe")).unwrap();
        }
        if let Some(cmdline) = cmdline {
            std::fs::write(dir.join("cmdline"), cmdline).unwrap();
        }
        root
    }

    #[test]
    fn a_cut_comm_is_extended_from_the_exe_link() {
        let root = process_dir(
            "inference-serve",
            Some("/opt/models/bin/inference-server"),
            Some(b"inference-serve\0--port=8000\0"),
        );
        assert_eq!(
            process_name(root.path(), 77).as_deref(),
            Some("inference-server")
        );
    }

    #[test]
    fn a_deleted_exe_is_named_without_the_deleted_suffix() {
        let root = process_dir(
            "inference-serve",
            Some("/opt/bin/inference-server (deleted)"),
            None,
        );
        assert_eq!(
            process_name(root.path(), 77).as_deref(),
            Some("inference-server")
        );
    }

    #[test]
    fn a_cut_comm_is_extended_from_argv0_when_exe_is_unreadable() {
        let root = process_dir(
            "data-loader-wor",
            None,
            Some(b"/usr/local/bin/data-loader-worker\0--shard=3\0"),
        );
        assert_eq!(
            process_name(root.path(), 77).as_deref(),
            Some("data-loader-worker")
        );
    }

    #[test]
    fn a_process_that_renamed_itself_keeps_its_comm() {
        let root = process_dir("tokio-runtime-w", Some("/usr/bin/myapp"), Some(b"myapp\0"));
        assert_eq!(
            process_name(root.path(), 77).as_deref(),
            Some("tokio-runtime-w")
        );
    }

    #[test]
    fn a_short_comm_is_not_replaced_by_the_exe_name() {
        let root = process_dir(
            "python3",
            Some("/usr/bin/python3.11"),
            Some(b"python3\0-c\0"),
        );
        assert_eq!(process_name(root.path(), 77).as_deref(), Some("python3"));
    }

    #[test]
    fn a_kernel_thread_with_a_cut_comm_keeps_it() {
        let root = process_dir("kworker/R-rcu_g", None, Some(b""));
        assert_eq!(
            process_name(root.path(), 77).as_deref(),
            Some("kworker/R-rcu_g")
        );
    }

    #[test]
    fn a_missing_process_has_no_name() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(process_name(root.path(), 77), None);
    }

    #[test]
    fn a_name_extends_comm_only_when_it_is_longer_and_starts_with_it() {
        assert_eq!(
            extends(b"inference-server", b"inference-serve").as_deref(),
            Some("inference-server")
        );
        assert_eq!(extends(b"inference-serve", b"inference-serve"), None);
        assert_eq!(extends(b"python3.11", b"inference-serve"), None);
    }
}

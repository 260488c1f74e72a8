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
use crate::os::linux::{Failure, classify};
// The OS primitives that lived here, at their old paths while callers move to `crate::os`.
#[cfg(test)]
use crate::os::linux::process_name;
#[allow(unused_imports)]
pub(crate) use crate::os::linux::{
    Ends, process_exists, process_name_or_error, read_proc_file, read_proc_text, read_to_end,
};

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
pub(crate) fn page_size() -> Option<u64> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

//! Linux process facts and procfs reading, shared by every module that looks at processes.
//!
//! RAM, the GPU listings, the sampler, PID namespaces and process details all read the same
//! `/proc/<pid>` files and ask the same questions (does this pid exist, what is it called,
//! when did it start). They used to do it inside whichever measurement module came first, so
//! others imported measurement modules for a file reader; here they are one layer below all
//! of them. Every function takes the procfs root as a parameter (a fixture tree in tests, a
//! host's `/proc` mounted into a container).
//!
//! Facts relied on: `comm` is cut at 15 bytes (`TASK_COMM_LEN` − 1); procfs reports a size of
//! 0 and generates a file's text on a read at offset 0; `ENOENT` and `ESRCH` mean the process
//! is gone, `EACCES` and `EPERM` that it is someone else's.

use std::io;
use std::path::Path;

use super::procfs;

/// The kernel keeps at most this many bytes of a process name in `comm` (`TASK_COMM_LEN` −
/// 1); a `comm` of exactly this length may have been cut.
const COMM_MAX_LEN: usize = 15;

/// What an I/O error on a `/proc/<pid>` file means.
pub(crate) enum Failure {
    /// The process does not exist (any more).
    Gone,
    /// It exists but is not ours to read.
    Denied,
    /// Anything else.
    Other,
}

pub(crate) fn classify(err: &io::Error) -> Failure {
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
    match read_proc_file(&path, Ends::AtShortRead) {
        Ok(text) => {
            let tgid = procfs::status_u32(&text, b"Tgid")?;
            Some(tgid == pid)
        }
        Err(e) => match classify(&e) {
            Failure::Gone => Some(false),
            Failure::Denied | Failure::Other => None,
        },
    }
}

/// When process `pid` started, in clock ticks after boot: field 22 of `<proc_root>/<pid>/stat`.
/// With the pid, it identifies a process: a pid the OS reused belongs to a process with a
/// later start time. `None` when the process does not exist or cannot be read.
pub(crate) fn process_start_ticks(proc_root: &Path, pid: u32) -> Option<u64> {
    let text = read_proc_file(
        &proc_root.join(pid.to_string()).join("stat"),
        Ends::AtShortRead,
    )
    .ok()?;
    procfs::parse_stat(&text).map(|s| s.start_ticks)
}

/// Process `pid`'s parent: field 4 of `<proc_root>/<pid>/stat`. `None` when the process does
/// not exist or cannot be read.
pub(crate) fn process_parent(proc_root: &Path, pid: u32) -> Option<u32> {
    let text = read_proc_file(
        &proc_root.join(pid.to_string()).join("stat"),
        Ends::AtShortRead,
    )
    .ok()?;
    procfs::parse_stat(&text).map(|s| s.ppid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_parent_is_field_four_of_its_stat_under_the_given_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("4242")).unwrap();
        let stat =
            "4242 (py (worker)) S 4100 4242 4100 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 31337 0 0";
        std::fs::write(dir.path().join("4242/stat"), stat).unwrap();
        assert_eq!(process_parent(dir.path(), 4242), Some(4100));
        assert_eq!(process_parent(dir.path(), 4243), None);
        // Real procfs: this process's parent.
        assert_eq!(
            process_parent(Path::new("/proc"), std::process::id()),
            Some(std::os::unix::process::parent_id())
        );
    }

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
    fn errno_esrch_means_the_process_is_gone() {
        let err = io::Error::from_raw_os_error(libc::ESRCH);
        assert!(matches!(classify(&err), Failure::Gone));
        let err = io::Error::from_raw_os_error(libc::EACCES);
        assert!(matches!(classify(&err), Failure::Denied));
        let err = io::Error::from_raw_os_error(libc::EIO);
        assert!(matches!(classify(&err), Failure::Other));
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

//! Every process's DRM clients, from `<proc>/<pid>/fd` and `<proc>/<pid>/fdinfo`.
//!
//! A machine has thousands of fds and a handful of DRM clients, so the scan filters before it
//! reads: one `readlink` per fd, whose text alone says "DRM node" (`/dev/dri/*`,
//! `/dev/accel/*`, or `…/dri/renderD*` when a container mounts `/dev` elsewhere) or "not
//! DRM" (sockets, pipes, files, `/dev/null`, terminals). Only an unfamiliar `/dev/*` path is
//! `stat`ed, for character-device major 226 (DRM) or 261 (accel). Only DRM fds have their
//! fdinfo read.
//!
//! Deduplication: a DRM client (`struct drm_file`) appears once per fd that refers to it —
//! `dup`, `fork` and fd passing share it — and its `drm-client-id` (legacy amdgpu: its
//! `pasid`) identifies it on its device. Clients are keyed by (device, id): within a process
//! dup'd fds count once. A client held by several processes is counted in `shared_clients`
//! and keeps every holder: each holder's row shows it (so `hmn ps --pid CHILD` finds a child
//! that inherited its parent's client), and its memory is counted once in totals, for the
//! holder that **started first** (`/proc/<pid>/stat` start time): for an fd inherited across
//! `fork` that is the opener, also after PID wraparound handed the child a lower PID. Holders
//! that started in the same clock tick, or whose start time cannot be read, fall back to the
//! lowest PID, so the choice is deterministic.
//!
//! A DRM node fd whose fdinfo has no `drm-` keys (nouveau, kernels before DRM fdinfo) is a
//! client without figures: its process is listed with unknown memory rather than not at all.
//!
//! Races and permissions: a process or fd that disappears mid-scan (`ENOENT`, `ESRCH`) is
//! skipped. A process whose `fd` directory or a DRM fd's fdinfo cannot be read for another
//! reason (`EACCES` for other users' processes, without root) is counted in
//! `unreadable_pids`, never shown as 0.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, RawDir, openat, readlinkat_raw, statat};
use rustix::io::Errno;

use super::parse::{
    ACCEL_MAJOR, ClientId, DRM_MAJOR, FdInfo, FdTarget, RegionClass, classify_fd_target,
    normalize_pci_slot, parse_fdinfo,
};
use super::sysfs::link_name;
use crate::error::{HypomnesisError, Result};
use crate::ram::linux::{Ends, read_to_end};
use crate::snapshot::SharedClient;

/// One DRM client and the process it is attributed to.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    /// PID (procfs numbering) the client is attributed to (counted for in totals).
    pub(crate) pid: u32,
    /// Every process holding it (procfs numbering), sorted; `[pid]` when not shared.
    pub(crate) holders: Vec<u32>,
    /// Device key: normalised PCI slot, or the platform device's name.
    pub(crate) device: String,
    /// What its fdinfo says.
    pub(crate) info: FdInfo,
}

/// The result of a scan.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Every distinct client, attributed.
    pub(crate) clients: Vec<Client>,
    /// Processes whose fds could not be read (sorted, procfs numbering).
    pub(crate) unreadable_pids: Vec<u32>,
    /// fdinfo lines that could not be read.
    pub(crate) malformed_lines: u32,
}

/// Below this many processes one thread scans; above it, up to [`MAX_THREADS`] share the work.
const PARALLEL_FROM: usize = 256;
/// Most threads a scan uses: a scan is a burst of system calls (one `readlink` per fd, about
/// a microsecond each), so a few cores cut its wall time without taking the machine.
const MAX_THREADS: usize = 4;
/// Processes a scan thread takes at a time.
const BATCH: usize = 16;

/// Longest fd link target read in full. A longer one (a deep file path) is cut short by
/// `readlink` and is not a DRM node, whose targets are `/dev/dri/renderD128`-short.
const LINK_BUFFER: usize = 1024;
/// `getdents` buffer per scanner: one call lists about 150 fds.
const DIR_BUFFER: usize = 8 * 1024;

/// Reads fds of every process under `proc_root`.
pub(crate) fn scan_all(proc_root: &Path, sys_root: &Path) -> Result<Scan> {
    #[cfg(test)]
    SCANS.with(|n| n.set(n.get() + 1));
    scan(proc_root, sys_root, false).map(|(scan, _)| scan)
}

#[cfg(test)]
thread_local! {
    /// How many times this thread walked a whole procfs with [`scan_all`], for the tests
    /// that prove one walk answers every device.
    pub(crate) static SCANS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// As [`scan_all`], keeping the DRM clients' fdinfo files open for [`rescan_kept`]; `None`
/// when there were more than [`MAX_KEPT`] of them.
pub(crate) fn scan_all_keeping(
    proc_root: &Path,
    sys_root: &Path,
) -> Result<(Scan, Option<KeptClients>)> {
    let (scan, files) = scan(proc_root, sys_root, true)?;
    let kept = files.map(|files| KeptClients {
        files,
        unreadable_pids: scan.unreadable_pids.clone(),
        proc_root: proc_root.to_owned(),
    });
    Ok((scan, kept))
}

/// The clients of the files `kept` holds, read again (one `pread` each, no directory walk):
/// a client opened since the full scan is not among them, one closed since is dropped.
/// Processes the full scan could not read stay counted as unreadable.
pub(crate) fn rescan_kept(kept: &mut KeptClients, sys_root: &Path) -> Scan {
    let mut scanner = Scanner::new(sys_root);
    scanner.proc_root = Some(&kept.proc_root);
    scanner.reread(&mut kept.files);
    scanner.unreadable.extend_from_slice(&kept.unreadable_pids);
    scanner.finish()
}

fn scan(proc_root: &Path, sys_root: &Path, keep: bool) -> Result<(Scan, Option<Vec<KeptFd>>)> {
    let new_scanner = || {
        let mut scanner = Scanner::new(sys_root);
        scanner.proc_root = Some(proc_root);
        if keep {
            scanner.kept = Some(Vec::new());
        }
        scanner
    };
    let root = open_dir(CWD, proc_root).map_err(|e| HypomnesisError::io(proc_root, &e.into()))?;
    let pids = list_pids(root.as_fd()).map_err(|e| HypomnesisError::io(proc_root, &e.into()))?;
    // `available_parallelism` reads cgroup files: asked only when a scan is large.
    let threads = if pids.len() < PARALLEL_FROM {
        1
    } else {
        std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .min(MAX_THREADS)
    };
    let root = root.as_fd();
    // Work is handed out in small batches, so a thread that drew processes with many fds
    // does not leave the others idle at the end.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = |scanner: &mut Scanner<'_>| loop {
        let start = next.fetch_add(BATCH, std::sync::atomic::Ordering::Relaxed);
        let Some(batch) = pids.get(start..pids.len().min(start.saturating_add(BATCH))) else {
            break;
        };
        if batch.is_empty() {
            break;
        }
        for &pid in batch {
            scanner.process_under(root, pid);
        }
    };
    // The calling thread is one of the scanners, so a two-core machine starts one thread.
    let mut mine = new_scanner();
    let theirs: Vec<Scanner<'_>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (1..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut scanner = new_scanner();
                    work(&mut scanner);
                    scanner
                })
            })
            .collect();
        work(&mut mine);
        // A worker only reads files and does not panic; were one to, its part is skipped.
        workers.into_iter().filter_map(|w| w.join().ok()).collect()
    });
    for scanner in theirs {
        mine.merge(scanner);
    }
    let kept = mine.kept.take();
    Ok((mine.finish(), kept))
}

/// The PIDs `proc_root` lists (one `getdents` pass): for telling, in a large listing, the
/// processes that are not in this procfs without opening a file for each.
pub(crate) fn procfs_pids(proc_root: &Path) -> Result<std::collections::HashSet<u32>> {
    let root = open_dir(CWD, proc_root).map_err(|e| HypomnesisError::io(proc_root, &e.into()))?;
    let pids = list_pids(root.as_fd()).map_err(|e| HypomnesisError::io(proc_root, &e.into()))?;
    Ok(pids.into_iter().collect())
}

/// The numeric entries (PIDs) of the freshly opened `<proc>` directory, listed with
/// `getdents` into one buffer (no allocation per entry, unlike `read_dir`). Listing moves the
/// directory's position, which the `*at` calls that use it as a base ignore.
fn list_pids(root: BorrowedFd<'_>) -> rustix::io::Result<Vec<u32>> {
    let mut buffer = vec![MaybeUninit::<u8>::uninit(); DIR_BUFFER];
    let mut entries = RawDir::new(root, &mut buffer);
    let mut pids = Vec::new();
    while let Some(entry) = entries.next() {
        let entry = entry?;
        if let Some(pid) = std::str::from_utf8(entry.file_name().to_bytes())
            .ok()
            .and_then(|name| name.parse::<u32>().ok())
        {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// Reads the fds of one process directory (`<proc>/self` or `<proc>/<pid>`) only, without
/// attributing shared clients elsewhere: every client the process holds counts.
pub(crate) fn scan_one(proc_dir: &Path, pid: u32, sys_root: &Path) -> Scan {
    let mut scanner = Scanner::new(sys_root);
    match open_dir(CWD, proc_dir) {
        Ok(dir) => scanner.process(dir.as_fd(), "", pid),
        Err(e) => {
            if let Failure::Unreadable = classify(e) {
                scanner.unreadable.push(pid);
            }
        }
    }
    scanner.finish()
}

/// Opens a directory for `*at` calls.
fn open_dir(base: BorrowedFd<'_>, path: impl rustix::path::Arg) -> rustix::io::Result<OwnedFd> {
    openat(
        base,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Reads a whole file relative to `base` into `text` (replacing what it held).
///
/// procfs and sysfs files report size 0, so `read_to_string`'s size probe (an `fstat`) buys
/// nothing; this reads into a buffer sized for the largest fdinfo seen so far and stops at a
/// short read: procfs (`seq_file`) fills a read up to the requested size whenever more text
/// remains, so a short read is its end.
pub(crate) fn read_text_at(
    base: BorrowedFd<'_>,
    path: &str,
    text: &mut String,
) -> io::Result<OwnedFd> {
    let fd = openat(base, path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    read_text_from(&fd, text)?;
    Ok(fd)
}

/// Reads an open file from its start into `text` (replacing what it held); procfs and sysfs
/// generate the text again for a read at offset 0.
fn read_text_from(fd: &OwnedFd, text: &mut String) -> io::Result<()> {
    let mut bytes = std::mem::take(text).into_bytes();
    bytes.clear();
    let result = read_to_end(fd, &mut bytes, Ends::AtShortRead);
    *text = String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    result
}

/// Per-scan state.
///
/// The scan walks `<proc>` with `*at` calls relative to open directories (`openat` of
/// `<pid>/fd`, `getdents` into a kept buffer, `readlinkat` of each entry's bare name), so
/// the kernel resolves one path component per fd instead of the whole path, and nothing is
/// allocated per fd. On a 2-core VM this halves a `read_dir` + `read_link` walk. `rustix`
/// provides the calls without `unsafe` here.
struct Scanner<'a> {
    sys_root: &'a Path,
    /// Where holders' start times are read to attribute a shared client; `None` (one
    /// process's scan) attributes to the lowest PID.
    proc_root: Option<&'a Path>,
    /// (device, client) → (info, every pid holding it).
    clients: HashMap<(String, ClientKey), (FdInfo, Vec<u32>)>,
    unreadable: Vec<u32>,
    malformed: u32,
    /// Node name (`renderD128`) → device key, for fdinfo without `drm-pdev`.
    node_devices: HashMap<String, Option<String>>,
    /// `getdents` buffer.
    dir_buffer: Vec<MaybeUninit<u8>>,
    /// `readlink` buffer.
    link_buffer: Vec<u8>,
    /// Relative path being built (`<pid>/fdinfo/<fd>`).
    path: String,
    /// fdinfo text being read.
    text: String,
    /// The DRM clients' open fdinfo files, when the caller keeps them ([`scan_all_keeping`]);
    /// `None` also once there were more than [`MAX_KEPT`].
    kept: Option<Vec<KeptFd>>,
}

/// Most fdinfo files a scan keeps open for [`rescan_kept`]: past this many DRM clients, every
/// sample scans in full rather than hold hundreds of descriptors.
const MAX_KEPT: usize = 256;

/// One DRM client's fdinfo file, kept open between samples.
#[derive(Debug)]
pub(crate) struct KeptFd {
    pid: u32,
    fd: String,
    node: Option<String>,
    file: OwnedFd,
}

/// What a full scan found, kept to be read again by [`rescan_kept`].
#[derive(Debug)]
pub(crate) struct KeptClients {
    files: Vec<KeptFd>,
    /// Processes the full scan could not read (their clients are not in `files`).
    unreadable_pids: Vec<u32>,
    /// The procfs scanned, for attributing shared clients on a re-read.
    proc_root: PathBuf,
}

/// What a client is known by: its id, or (without one) the fd it was read through.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ClientKey {
    Id(ClientId),
    Fd(u32, String),
}

/// Why a read failed.
enum Failure {
    /// The process or fd is gone: skip.
    Gone,
    /// Not ours to read: count.
    Unreadable,
}

fn classify(err: Errno) -> Failure {
    if err == Errno::NOENT || err == Errno::SRCH {
        Failure::Gone
    } else {
        Failure::Unreadable
    }
}

fn classify_io(err: &io::Error) -> Failure {
    match err.raw_os_error() {
        Some(code) => classify(Errno::from_raw_os_error(code)),
        None => Failure::Unreadable,
    }
}

impl<'a> Scanner<'a> {
    fn new(sys_root: &'a Path) -> Self {
        Self {
            sys_root,
            proc_root: None,
            clients: HashMap::new(),
            unreadable: Vec::new(),
            malformed: 0,
            node_devices: HashMap::new(),
            dir_buffer: Vec::new(),
            link_buffer: Vec::new(),
            path: String::new(),
            text: String::new(),
            kept: None,
        }
    }

    /// Reads process `pid` under the open `<proc>` directory.
    fn process_under(&mut self, proc_dir: BorrowedFd<'_>, pid: u32) {
        self.process(proc_dir, &format!("{pid}/"), pid);
    }

    /// Reads one process, whose directory is `<base>/<prefix>` (`prefix` is empty or ends in
    /// `/`); its clients are merged after the whole process was read, so dup'd fds count once
    /// and a half-read process (gone mid-scan) contributes what was read.
    fn process(&mut self, base: BorrowedFd<'_>, prefix: &str, pid: u32) {
        self.set_path(prefix, "fd", "");
        let fd_dir = match open_dir(base, self.path.as_str()) {
            Ok(dir) => dir,
            Err(e) => {
                // A kernel thread (empty `cmdline`, readable by anyone) holds no fds: its
                // closed `fd` directory hides nothing.
                if let Failure::Unreadable = classify(e) {
                    self.set_path(prefix, "cmdline", "");
                    let mut text = std::mem::take(&mut self.text);
                    let kernel_thread =
                        read_text_at(base, &self.path, &mut text).is_ok() && text.is_empty();
                    self.text = text;
                    if !kernel_thread {
                        self.unreadable.push(pid);
                    }
                }
                return;
            }
        };
        if self.dir_buffer.len() < DIR_BUFFER {
            self.dir_buffer.resize(DIR_BUFFER, MaybeUninit::uninit());
        }
        if self.link_buffer.len() < LINK_BUFFER {
            self.link_buffer.resize(LINK_BUFFER, 0);
        }
        let mut dir_buffer = std::mem::take(&mut self.dir_buffer);
        let mut link_buffer = std::mem::take(&mut self.link_buffer);
        let mut own: HashMap<(String, ClientKey), FdInfo> = HashMap::new();
        let mut unreadable = false;
        let mut entries = RawDir::new(fd_dir.as_fd(), &mut dir_buffer);
        while let Some(entry) = entries.next() {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    if let Failure::Unreadable = classify(e) {
                        unreadable = true;
                    }
                    break;
                }
            };
            let name = entry.file_name();
            let Ok(fd) = std::str::from_utf8(name.to_bytes()) else {
                continue;
            };
            if fd.starts_with('.') {
                continue;
            }
            let length = match readlinkat_raw(fd_dir.as_fd(), name, &mut link_buffer[..]) {
                Ok(length) => length,
                Err(e) => {
                    if let Failure::Unreadable = classify(e) {
                        unreadable = true;
                    }
                    continue;
                }
            };
            // A full buffer may be a cut-short long path: not a DRM node.
            let Some(target) = link_buffer
                .get(..length)
                .filter(|_| length < link_buffer.len())
                .and_then(|t| std::str::from_utf8(t).ok())
            else {
                continue;
            };
            let node = match classify_fd_target(target) {
                FdTarget::NotDrm => continue,
                FdTarget::Drm(node) => Some(node.to_owned()),
                FdTarget::MaybeDevice => match self.device_node(fd_dir.as_fd(), name) {
                    Some(node) => Some(node),
                    None => continue,
                },
            };
            self.set_path(prefix, "fdinfo/", fd);
            let mut text = std::mem::take(&mut self.text);
            let read = read_text_at(base, &self.path, &mut text);
            match read {
                Ok(file) => {
                    let is_drm = self.absorb(pid, fd, node.as_deref(), &text, &mut own);
                    if is_drm && let Some(kept) = self.kept.as_mut() {
                        kept.push(KeptFd {
                            pid,
                            fd: fd.to_owned(),
                            node,
                            file,
                        });
                        if kept.len() > MAX_KEPT {
                            self.kept = None;
                        }
                    }
                }
                Err(e) => {
                    if let Failure::Unreadable = classify_io(&e) {
                        unreadable = true;
                    }
                }
            }
            self.text = text;
        }
        self.dir_buffer = dir_buffer;
        self.link_buffer = link_buffer;
        if unreadable {
            self.unreadable.push(pid);
        }
        self.adopt(pid, own);
    }

    /// Reads the kept fdinfo files again (one process's run of them at a time) instead of
    /// walking every process; files whose fd or process is gone are dropped from `kept`.
    fn reread(&mut self, kept: &mut Vec<KeptFd>) {
        let mut own: HashMap<(String, ClientKey), FdInfo> = HashMap::new();
        let mut current: Option<u32> = None;
        let mut unreadable: Vec<u32> = Vec::new();
        let mut text = std::mem::take(&mut self.text);
        kept.retain(|entry| {
            if current != Some(entry.pid) {
                if let Some(pid) = current {
                    self.adopt(pid, std::mem::take(&mut own));
                }
                current = Some(entry.pid);
            }
            match read_text_from(&entry.file, &mut text) {
                Ok(()) => {
                    self.absorb(entry.pid, &entry.fd, entry.node.as_deref(), &text, &mut own);
                    true
                }
                Err(e) => {
                    if let Failure::Unreadable = classify_io(&e) {
                        unreadable.push(entry.pid);
                    }
                    false
                }
            }
        });
        if let Some(pid) = current {
            self.adopt(pid, own);
        }
        self.text = text;
        self.unreadable.extend(unreadable);
    }

    /// Parses one DRM fd's fdinfo `text` into `own` (the process's clients so far); whether
    /// it was a DRM client's.
    fn absorb(
        &mut self,
        pid: u32,
        fd: &str,
        node: Option<&str>,
        text: &str,
        own: &mut HashMap<(String, ClientKey), FdInfo>,
    ) -> bool {
        raw!("DRM fdinfo pid {pid} fd {fd}: {text:?}");
        let mut info = parse_fdinfo(text);
        self.malformed = self.malformed.saturating_add(info.malformed_lines);
        if !info.is_drm {
            // An fd on a DRM node whose driver prints no `drm-` keys (nouveau, old kernels):
            // a client all the same, held with memory unknown. Keyed by its fd (no id to
            // deduplicate on), placed by its node.
            let Some(device) = node.and_then(|n| self.node_device(n)) else {
                return false;
            };
            own.entry((device, ClientKey::Fd(pid, fd.to_owned())))
                .or_default();
            return true;
        }
        // The slot moves into the client's key (`Client::device`).
        let Some(device) = info
            .pdev
            .take()
            .or_else(|| node.and_then(|n| self.node_device(n)))
        else {
            return false;
        };
        let key = match info.client() {
            Some(id) => ClientKey::Id(id),
            None => ClientKey::Fd(pid, fd.to_owned()),
        };
        own.entry((device, key)).or_insert(info);
        true
    }

    /// Takes in process `pid`'s clients: dup'd fds already count once in `own`; a client
    /// another process also holds gains `pid` as a holder.
    fn adopt(&mut self, pid: u32, own: HashMap<(String, ClientKey), FdInfo>) {
        for (key, info) in own {
            self.clients
                .entry(key)
                .and_modify(|(_, holders)| holders.push(pid))
                .or_insert_with(|| (info, vec![pid]));
        }
    }

    /// `self.path = prefix + a + b`.
    fn set_path(&mut self, prefix: &str, a: &str, b: &str) {
        self.path.clear();
        self.path.push_str(prefix);
        self.path.push_str(a);
        self.path.push_str(b);
    }

    /// Takes in what another scanner (of other processes) found.
    fn merge(&mut self, other: Self) {
        self.clients.reserve(other.clients.len());
        match (self.kept.as_mut(), other.kept) {
            (Some(mine), Some(theirs)) if mine.len() + theirs.len() <= MAX_KEPT => {
                mine.extend(theirs);
            }
            _ => self.kept = None,
        }
        for (key, (info, holders)) in other.clients {
            match self.clients.entry(key) {
                std::collections::hash_map::Entry::Occupied(mut mine) => {
                    mine.get_mut().1.extend(holders);
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert((info, holders));
                }
            }
        }
        self.unreadable.extend(other.unreadable);
        self.malformed = self.malformed.saturating_add(other.malformed);
    }

    /// The node name of a `/dev/*` fd (entry `fd` of the open `fd_dir`) that is a DRM or
    /// accel character device, found through `stat` and `<sys>/dev/char/<major>:<minor>`.
    fn device_node(&self, fd_dir: BorrowedFd<'_>, fd: &CStr) -> Option<String> {
        let stat = statat(fd_dir, fd, AtFlags::empty()).ok()?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::CharacterDevice {
            return None;
        }
        let major = rustix::fs::major(stat.st_rdev);
        if major != DRM_MAJOR && major != ACCEL_MAJOR {
            return None;
        }
        let char_link = self
            .sys_root
            .join("dev/char")
            .join(format!("{major}:{}", rustix::fs::minor(stat.st_rdev)));
        link_name(&char_link)
    }

    /// The device key of a node (`renderD128` → `00000000:03:00.0`, `fb000000.gpu`).
    fn node_device(&mut self, node: &str) -> Option<String> {
        if let Some(known) = self.node_devices.get(node) {
            return known.clone();
        }
        let class = if node.starts_with("accel") {
            "class/accel"
        } else {
            "class/drm"
        };
        let path: PathBuf = self.sys_root.join(class).join(node).join("device");
        let key = link_name(&path).map(|slot| normalize_pci_slot(&slot).unwrap_or(slot));
        self.node_devices.insert(node.to_owned(), key.clone());
        key
    }

    fn finish(self) -> Scan {
        // Start times of shared clients' holders, each read once.
        let mut started: HashMap<u32, Option<u64>> = HashMap::new();
        let proc_root = self.proc_root;
        let mut clients: Vec<Client> = self
            .clients
            .into_iter()
            .map(|((device, _), (info, mut holders))| {
                holders.sort_unstable();
                holders.dedup();
                let pid = if holders.len() > 1 {
                    counted_for(&holders, |pid| {
                        *started
                            .entry(pid)
                            .or_insert_with(|| proc_root.and_then(|root| start_ticks(root, pid)))
                    })
                } else {
                    holders.first().copied().unwrap_or_default()
                };
                Client {
                    pid,
                    holders,
                    device,
                    info,
                }
            })
            .collect();
        clients.sort_by(|a, b| a.pid.cmp(&b.pid).then_with(|| a.device.cmp(&b.device)));
        let mut unreadable_pids = self.unreadable;
        unreadable_pids.sort_unstable();
        unreadable_pids.dedup();
        Scan {
            clients,
            unreadable_pids,
            malformed_lines: self.malformed,
        }
    }
}

/// The holder a shared client's memory is counted for: the one that started first (for an
/// inherited fd, the opener), then the lowest PID. `holders` is sorted and not empty; a
/// holder whose start time is unknown ranks after those whose is known.
fn counted_for(holders: &[u32], mut started: impl FnMut(u32) -> Option<u64>) -> u32 {
    holders
        .iter()
        .copied()
        .min_by_key(|&pid| (started(pid).map_or((1, 0), |ticks| (0, ticks)), pid))
        .unwrap_or_default()
}

/// When process `pid` started, in clock ticks after boot (`<proc>/<pid>/stat` field 22).
fn start_ticks(proc_root: &Path, pid: u32) -> Option<u64> {
    let path = proc_root.join(pid.to_string()).join("stat");
    let text = crate::ram::linux::read_proc_file(&path, Ends::AtShortRead).ok()?;
    crate::os::procfs::parse_stat(&text).map(|s| s.start_ticks)
}

/// One process's memory on one device: sums over every client it holds, shared ones
/// included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProcessMemory {
    /// Resident device memory (VRAM / local), bytes; `None` when no client printed it.
    pub(crate) device: Option<u64>,
    /// Resident GTT / system memory, bytes; `None` when no client printed it.
    pub(crate) system: Option<u64>,
    /// Shared bytes; `None` when no client printed `drm-shared-*`.
    pub(crate) shared: Option<u64>,
    /// The clients it holds with other processes.
    pub(crate) shared_clients: Vec<SharedClient>,
}

fn add(acc: Option<u64>, x: Option<u64>) -> Option<u64> {
    match (acc, x) {
        (None, x) => x,
        (acc, None) => acc,
        (Some(a), Some(b)) => Some(a.saturating_add(b)),
    }
}

impl Scan {
    /// Per-process sums on device `key`, by PID (procfs numbering): every holder of a
    /// client gets it, and a shared client is listed in each holder's `shared_clients`.
    pub(crate) fn per_process(&self, key: &str) -> BTreeMap<u32, ProcessMemory> {
        let mut out: BTreeMap<u32, ProcessMemory> = BTreeMap::new();
        for client in self.clients.iter().filter(|c| c.device == key) {
            let device = client.info.resident(RegionClass::Device);
            let system = client.info.resident(RegionClass::System);
            for &holder in &client.holders {
                let sums = out.entry(holder).or_default();
                sums.device = add(sums.device, device);
                sums.system = add(sums.system, system);
                sums.shared = add(sums.shared, client.info.shared());
                if client.holders.len() > 1 {
                    sums.shared_clients.push(SharedClient {
                        client_id: client.info.client().map(|id| match id {
                            ClientId::Drm(n) | ClientId::Pasid(n) => n,
                        }),
                        holders: client.holders.clone(),
                        counted_for: client.pid,
                        used_bytes: device,
                        system_bytes: system,
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An fdinfo file kept open for one of this process's own fds, read through the real
    /// procfs (any fd: whether it is a DRM client is decided by the text).
    fn kept_own(fd: i32) -> KeptFd {
        let file = openat(
            CWD,
            format!("/proc/self/fdinfo/{fd}").as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        KeptFd {
            pid: std::process::id(),
            fd: fd.to_string(),
            node: None,
            file,
        }
    }

    #[test]
    fn a_kept_fdinfo_whose_fd_was_closed_is_dropped_on_the_next_read() {
        // In a process of its own: fd numbers are per process, and another test thread could
        // open a file on the closed fd's number between the close and the read.
        test_support::in_own_process(
            "gpu::drm::fdinfo::tests::a_kept_fdinfo_whose_fd_was_closed_is_dropped_on_the_next_read",
            Vec::new,
            closed_fd_is_dropped,
        );
    }

    fn closed_fd_is_dropped() {
        use std::os::fd::AsRawFd;
        let (reader, writer) = std::io::pipe().unwrap();
        let mut kept = KeptClients {
            files: vec![kept_own(reader.as_raw_fd()), kept_own(writer.as_raw_fd())],
            unreadable_pids: vec![4242],
            proc_root: PathBuf::from("/proc"),
        };
        let sys = tempfile::tempdir().unwrap();
        // Both fds open: their fdinfo reads (not DRM, so no clients), nothing dropped.
        let scan = rescan_kept(&mut kept, sys.path());
        assert!(scan.clients.is_empty());
        assert_eq!(kept.files.len(), 2);
        // The full scan's unreadable processes stay counted.
        assert_eq!(scan.unreadable_pids, vec![4242]);
        drop(writer);
        rescan_kept(&mut kept, sys.path());
        assert_eq!(
            kept.files.len(),
            1,
            "the closed fd's fdinfo reads ENOENT: gone"
        );
        assert_eq!(kept.files[0].fd, reader.as_raw_fd().to_string());
    }

    #[test]
    fn a_shared_client_counts_for_the_holder_that_started_first_then_the_lowest_pid() {
        let started = |pid| match pid {
            300 => Some(900),
            500 => Some(100),
            700 => Some(100),
            _ => None,
        };
        assert_eq!(counted_for(&[300, 500], started), 500, "earlier start wins");
        assert_eq!(
            counted_for(&[500, 700], started),
            500,
            "same tick: lower pid"
        );
        assert_eq!(
            counted_for(&[42, 300], started),
            300,
            "unknown start ranks last"
        );
        assert_eq!(
            counted_for(&[42, 43], started),
            42,
            "nothing known: lower pid"
        );
    }

    #[test]
    fn a_kept_file_that_cannot_be_read_counts_its_process_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        // A directory opened as a file: `pread` fails with EISDIR, which is not "gone".
        let file = open_dir(CWD, dir.path()).unwrap();
        let mut kept = KeptClients {
            files: vec![KeptFd {
                pid: 77,
                fd: "3".into(),
                node: None,
                file,
            }],
            unreadable_pids: Vec::new(),
            proc_root: dir.path().to_owned(),
        };
        let scan = rescan_kept(&mut kept, dir.path());
        assert_eq!(scan.unreadable_pids, vec![77]);
        assert!(kept.files.is_empty());
    }
}

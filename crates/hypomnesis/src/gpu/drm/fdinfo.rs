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
//! dup'd fds count once; a client held by several processes is attributed to the **lowest
//! PID** among them and counted in `shared_clients`; the others get no row for it.
//!
//! Races and permissions: a process or fd that disappears mid-scan (`ENOENT`, `ESRCH`) is
//! skipped. A process whose `fd` directory or a DRM fd's fdinfo cannot be read for another
//! reason (`EACCES` for other users' processes, without root) is counted in
//! `unreadable_pids`, never shown as 0.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};

use super::parse::{
    ACCEL_MAJOR, ClientId, DRM_MAJOR, FdInfo, FdTarget, RegionClass, classify_fd_target, dev_major,
    dev_minor, normalize_pci_slot, parse_fdinfo,
};
use super::sysfs::link_name;
use crate::error::{HypomnesisError, Result};

/// One DRM client and the process it is attributed to.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    /// PID (procfs numbering) the client is attributed to.
    pub(crate) pid: u32,
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
    /// Clients seen in more than one process.
    pub(crate) shared_clients: u32,
    /// fdinfo lines that could not be read.
    pub(crate) malformed_lines: u32,
}

/// Below this many processes one thread scans; above it, up to [`MAX_THREADS`] share the work.
const PARALLEL_FROM: usize = 256;
/// Most threads a scan uses: a scan is a burst of system calls (one `readlink` per fd, a few
/// microseconds each), so a few cores cut its wall time without taking the machine.
const MAX_THREADS: usize = 4;

/// Reads fds of every process under `proc_root`.
pub(crate) fn scan_all(proc_root: &Path, sys_root: &Path) -> Result<Scan> {
    let entries = std::fs::read_dir(proc_root).map_err(|e| HypomnesisError::io(proc_root, &e))?;
    let pids: Vec<u32> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(MAX_THREADS);
    if pids.len() < PARALLEL_FROM || threads < 2 {
        let mut scanner = Scanner::new(sys_root);
        for &pid in &pids {
            scanner.process(&proc_root.join(pid.to_string()), pid);
        }
        return Ok(scanner.finish());
    }
    let chunk = pids.len().div_ceil(threads);
    let scanners: Vec<Scanner<'_>> = std::thread::scope(|scope| {
        let workers: Vec<_> = pids
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut scanner = Scanner::new(sys_root);
                    for &pid in part {
                        scanner.process(&proc_root.join(pid.to_string()), pid);
                    }
                    scanner
                })
            })
            .collect();
        // A worker only reads files and does not panic; were one to, its part is skipped.
        workers.into_iter().filter_map(|w| w.join().ok()).collect()
    });
    let mut merged = Scanner::new(sys_root);
    for scanner in scanners {
        merged.merge(scanner);
    }
    Ok(merged.finish())
}

/// Reads the fds of one process directory (`<proc>/self` or `<proc>/<pid>`) only, without
/// attributing shared clients elsewhere: every client the process holds counts.
pub(crate) fn scan_one(proc_dir: &Path, pid: u32, sys_root: &Path) -> Scan {
    let mut scanner = Scanner::new(sys_root);
    scanner.process(proc_dir, pid);
    scanner.finish()
}

/// Per-scan state.
struct Scanner<'a> {
    sys_root: &'a Path,
    /// (device, client) → (lowest pid, info, how many processes hold it).
    clients: HashMap<(String, ClientKey), (u32, FdInfo, u32)>,
    unreadable: Vec<u32>,
    malformed: u32,
    /// Node name (`renderD128`) → device key, for fdinfo without `drm-pdev`.
    node_devices: HashMap<String, Option<String>>,
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

fn classify(err: &io::Error) -> Failure {
    if err.kind() == io::ErrorKind::NotFound || err.raw_os_error() == Some(libc::ESRCH) {
        Failure::Gone
    } else {
        Failure::Unreadable
    }
}

impl<'a> Scanner<'a> {
    fn new(sys_root: &'a Path) -> Self {
        Self {
            sys_root,
            clients: HashMap::new(),
            unreadable: Vec::new(),
            malformed: 0,
            node_devices: HashMap::new(),
        }
    }

    /// Reads one process; its clients are merged after the whole process was read, so dup'd
    /// fds count once and a half-read process (gone mid-scan) contributes what was read.
    fn process(&mut self, dir: &Path, pid: u32) {
        let fd_dir = dir.join("fd");
        let entries = match std::fs::read_dir(&fd_dir) {
            Ok(entries) => entries,
            Err(e) => {
                // A kernel thread (empty `cmdline`, readable by anyone) holds no fds: its
                // closed `fd` directory hides nothing.
                if let Failure::Unreadable = classify(&e)
                    && std::fs::read(dir.join("cmdline")).map_or(true, |c| !c.is_empty())
                {
                    self.unreadable.push(pid);
                }
                return;
            }
        };
        let mut own: HashMap<(String, ClientKey), FdInfo> = HashMap::new();
        let mut unreadable = false;
        for entry in entries.flatten() {
            let fd = entry.file_name();
            let Some(fd) = fd.to_str() else { continue };
            let link = entry.path();
            let target = match std::fs::read_link(&link) {
                Ok(target) => target,
                Err(e) => {
                    if let Failure::Unreadable = classify(&e) {
                        unreadable = true;
                    }
                    continue;
                }
            };
            let Some(target) = target.to_str() else {
                continue;
            };
            let node = match classify_fd_target(target) {
                FdTarget::NotDrm => continue,
                FdTarget::Drm(node) => Some(node.to_owned()),
                FdTarget::MaybeDevice => match self.device_node(&link) {
                    Some(node) => Some(node),
                    None => continue,
                },
            };
            let fdinfo = dir.join("fdinfo").join(fd);
            let text = match std::fs::read_to_string(&fdinfo) {
                Ok(text) => text,
                Err(e) => {
                    if let Failure::Unreadable = classify(&e) {
                        unreadable = true;
                    }
                    continue;
                }
            };
            let info = parse_fdinfo(&text);
            self.malformed = self.malformed.saturating_add(info.malformed_lines);
            if !info.is_drm {
                continue;
            }
            let Some(device) = info
                .pdev
                .clone()
                .or_else(|| node.and_then(|n| self.node_device(&n)))
            else {
                continue;
            };
            let key = match info.client() {
                Some(id) => ClientKey::Id(id),
                None => ClientKey::Fd(pid, fd.to_owned()),
            };
            own.entry((device, key)).or_insert(info);
        }
        if unreadable {
            self.unreadable.push(pid);
        }
        for (key, info) in own {
            self.clients
                .entry(key)
                .and_modify(|(owner, _, holders)| {
                    *owner = (*owner).min(pid);
                    *holders = holders.saturating_add(1);
                })
                .or_insert((pid, info, 1));
        }
    }

    /// Takes in what another scanner (of other processes) found.
    fn merge(&mut self, other: Self) {
        for (key, (pid, info, holders)) in other.clients {
            self.clients
                .entry(key)
                .and_modify(|(owner, _, count)| {
                    *owner = (*owner).min(pid);
                    *count = count.saturating_add(holders);
                })
                .or_insert((pid, info, holders));
        }
        self.unreadable.extend(other.unreadable);
        self.malformed = self.malformed.saturating_add(other.malformed);
    }

    /// The node name of a `/dev/*` fd that is a DRM or accel character device, found through
    /// `stat` and `<sys>/dev/char/<major>:<minor>`.
    fn device_node(&self, link: &Path) -> Option<String> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let meta = std::fs::metadata(link).ok()?;
        if !meta.file_type().is_char_device() {
            return None;
        }
        let rdev = meta.rdev();
        let major = dev_major(rdev);
        if major != DRM_MAJOR && major != ACCEL_MAJOR {
            return None;
        }
        let char_link = self
            .sys_root
            .join("dev/char")
            .join(format!("{major}:{}", dev_minor(rdev)));
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
        let mut shared_clients = 0_u32;
        let mut clients: Vec<Client> = self
            .clients
            .into_iter()
            .map(|((device, _), (pid, info, holders))| {
                if holders > 1 {
                    shared_clients = shared_clients.saturating_add(1);
                }
                Client { pid, device, info }
            })
            .collect();
        clients.sort_by(|a, b| a.pid.cmp(&b.pid).then_with(|| a.device.cmp(&b.device)));
        let mut unreadable_pids = self.unreadable;
        unreadable_pids.sort_unstable();
        unreadable_pids.dedup();
        Scan {
            clients,
            unreadable_pids,
            shared_clients,
            malformed_lines: self.malformed,
        }
    }
}

/// One process's memory on one device: sums over its clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ProcessMemory {
    /// Resident device memory (VRAM / local), bytes; `None` when no client printed it.
    pub(crate) device: Option<u64>,
    /// Resident GTT / system memory, bytes; `None` when no client printed it.
    pub(crate) system: Option<u64>,
    /// Shared bytes; `None` when no client printed `drm-shared-*`.
    pub(crate) shared: Option<u64>,
}

fn add(acc: Option<u64>, x: Option<u64>) -> Option<u64> {
    match (acc, x) {
        (None, x) => x,
        (acc, None) => acc,
        (Some(a), Some(b)) => Some(a.saturating_add(b)),
    }
}

impl Scan {
    /// Per-process sums on device `key`, by PID (procfs numbering).
    pub(crate) fn per_process(&self, key: &str) -> BTreeMap<u32, ProcessMemory> {
        let mut out: BTreeMap<u32, ProcessMemory> = BTreeMap::new();
        for client in self.clients.iter().filter(|c| c.device == key) {
            let sums = out.entry(client.pid).or_default();
            sums.device = add(sums.device, client.info.resident(RegionClass::Device));
            sums.system = add(sums.system, client.info.resident(RegionClass::System));
            sums.shared = add(sums.shared, client.info.shared());
        }
        out
    }
}

//! The GPU dispatcher: which backend answers which question, and what happens when one fails.
//!
//! Every source of GPU facts — NVML, `nvidia-smi`, DRM, DXGI, PDH, Metal — is a [`Backend`],
//! and the dispatcher treats them as equals: it walks the platform's [`order::Order`], a
//! table saying which backend answers which question first, and builds one device listing
//! per question. NVIDIA's two sources are alternatives for the same cards (NVML, else
//! `nvidia-smi`); [`nvidia`] owns them and the patching of NVML's unusable answers from
//! `nvidia-smi`. When nothing can answer, the error lists every backend tried and why it
//! failed; a backend compiled out or switched off has no entry in the backends, and its reason
//! comes from the table.
//!
//! A question is answered within one [`Pass`]: a memo the backends keep what they read in
//! (`nvidia-smi`'s two queries, the `/proc` scan of the DRM clients, the device listing), so
//! that each source runs at most once per question and once per [`crate::Frame`].
//!
//! Process names come from `/proc` (the full executable name, not the 15-byte `comm`). Only a
//! process `/proc` does not have (another container's) is named by the driver
//! (`nvmlSystemGetProcessName`), whose copy the workload controls; the listing then says the
//! process is not in this `/proc` and how to see it (`--pid=host`, `HYPOMNESIS_PROC_ROOT`).

use std::any::{Any, TypeId};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::error::{BackendAttempt, HypomnesisError, Result};
use crate::snapshot::{
    GpuDeviceInfo, GpuProcessEntry, GpuProcessListing, GpuQuerySource, ProcessGpuInfo,
};
use crate::telemetry::DeviceTelemetry;
use crate::unavailable::TelemetryField;

// The parsers build everywhere (and are tested everywhere); the readers are Linux-only.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) mod drm;
// Windows (DXGI, PDH) and macOS (Metal): pure parts build and are tested everywhere; the
// OS calls are behind each file's own cfg.
pub(crate) mod dxgi;
// Always built: `kill_helper_processes` is public API whatever the features.
#[cfg_attr(not(feature = "nvidia-smi-fallback"), allow(dead_code))]
pub(crate) mod helper;
pub(crate) mod metal;
pub(crate) mod nvidia;
pub(crate) mod order;
pub(crate) mod pdh;

use order::{Answer, Order};

/// What the GPU backends need to know; filled by [`crate::ProbeBuilder`].
#[derive(Debug, Clone)]
#[cfg_attr(
    not(all(feature = "nvml", feature = "nvidia-smi-fallback")),
    allow(dead_code) // the switched-off backend's settings
)]
pub(crate) struct GpuConfig {
    pub(crate) nvml_lib: Option<PathBuf>,
    pub(crate) use_nvml: bool,
    pub(crate) nvidia_smi: PathBuf,
    pub(crate) nvidia_smi_timeout: Duration,
    pub(crate) use_nvidia_smi: bool,
}

/// One source of GPU facts. Every method but [`Backend::devices`] may decline (`None`),
/// leaving the question to the next backend of the [`Order`].
pub(crate) trait Backend: Send + Sync + std::fmt::Debug {
    /// The backend's name in records and errors.
    fn source(&self) -> GpuQuerySource;

    /// The devices this backend lists that are not among `claimed` (the devices backends
    /// earlier in the order listed: match by PCI bus id or UUID so a GPU is never listed
    /// twice), numbered from 0 in the backend's own order; the dispatcher numbers them after
    /// the earlier backends' devices. `Err`: why the backend cannot be used (without its own
    /// name, which the attempt carries).
    fn devices(&self, pass: &Pass, claimed: &[GpuDeviceInfo]) -> Result<Devices, String>;

    /// The same devices as [`Backend::devices`], in the same order, for finding a device
    /// again (telemetry): a backend may answer from a cache it keeps valid for the device
    /// *set*, so the memory figures may be stale. The default reads them afresh.
    fn identities(&self, pass: &Pass, claimed: &[GpuDeviceInfo]) -> Result<Devices, String> {
        self.devices(pass, claimed)
    }

    /// How many indices [`Backend::devices`] uses, when nothing is claimed before it (the
    /// first backends of the order): answers "is device `i` this backend's?" without reading
    /// every device. The default lists them.
    fn count(&self, pass: &Pass) -> Result<u32, String> {
        self.devices(pass, &[]).map(|d| d.slots)
    }

    /// Device `local` (this backend's own numbering) alone; as [`Backend::count`], only when
    /// nothing is claimed before the backend. The default lists them all.
    fn device(&self, pass: &Pass, local: u32) -> Result<GpuDeviceInfo> {
        let devices = self
            .devices(pass, &[])
            .map_err(|why| HypomnesisError::NoGpuSource {
                attempts: vec![BackendAttempt::new(self.source(), why)],
            })?;
        pick_device(devices.list, local, devices.slots)
    }

    /// Device `local` to find it again (telemetry), as [`Backend::device`] but with memory
    /// figures that may be unusable: nothing else is asked to patch them. The default reads
    /// the device.
    fn identity(&self, pass: &Pass, local: u32) -> Result<GpuDeviceInfo> {
        self.device(pass, local)
    }

    /// Cards this backend can see that belong to `unusable` (backends that could not be
    /// used, `why`): listed with unknown memory and that reason rather than left out. The
    /// default has none.
    fn orphans(&self, pass: &Pass, unusable: &[GpuQuerySource], why: &str) -> Vec<GpuDeviceInfo> {
        let _ = (pass, unusable, why);
        Vec::new()
    }

    /// Every process holding memory on `device`, with what the backend could not see
    /// (unreadable processes, clients shared between processes), rows unnamed or named by
    /// the backend.
    fn process_listing(&self, pass: &Pass, device: &Listed) -> Option<Result<GpuProcessListing>>;

    /// Process `pid`'s own memory on `device`, when this backend can tell.
    fn own_process(&self, pass: &Pass, device: &Listed, pid: u32)
    -> Option<Result<ProcessGpuInfo>>;

    /// Utilization, temperature, power and clocks of `device`, when this backend can read
    /// them.
    fn telemetry(&self, pass: &Pass, device: &Listed) -> Option<Result<DeviceTelemetry>> {
        let _ = (pass, device);
        None
    }

    /// A meter of `device`'s dedicated and shared memory, for spill detection, when this
    /// backend can read them repeatedly.
    #[cfg_attr(not(all(windows, feature = "pdh")), allow(dead_code))] // PDH only
    fn spill_meter(&self, device: &Listed) -> Option<Result<Box<dyn SpillMeter>>> {
        let _ = device;
        None
    }

    /// The driver's name for process `pid` of a row from `source` (in the driver's PID
    /// numbering), for a process the OS cannot describe. The default knows none.
    fn process_name(&self, source: GpuQuerySource, pid: u32) -> Option<String> {
        let _ = (source, pid);
        None
    }
}

/// One device's dedicated and shared memory, read again on every call (an open query): what
/// [`crate::spill`] judges. Not `Send`: PDH's query belongs to the thread that opened it.
#[cfg_attr(not(all(windows, feature = "pdh")), allow(dead_code))] // PDH only
pub(crate) trait SpillMeter: std::fmt::Debug {
    fn sample(&self) -> Result<MemoryShares>;
}

/// One reading of a [`SpillMeter`], bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(all(windows, feature = "pdh")), allow(dead_code))] // PDH only
pub(crate) struct MemoryShares {
    /// Dedicated (device) memory in use.
    pub(crate) dedicated_used: u64,
    /// Dedicated memory the device has.
    pub(crate) dedicated_limit: u64,
    /// Shared (system) memory the device uses.
    pub(crate) shared_used: u64,
}

/// A backend's devices.
#[derive(Debug, Clone, Default)]
pub(crate) struct Devices {
    /// Numbered from 0 in the backend's own order.
    pub(crate) list: Vec<GpuDeviceInfo>,
    /// How many indices the backend uses: its device count, including devices whose record
    /// could not be read (NVML numbers them, so the next backend's devices come after).
    pub(crate) slots: u32,
    /// The devices counted in `slots` whose record could not be read, by their index in
    /// the backend's own numbering, with why.
    pub(crate) unreadable: Vec<(u32, HypomnesisError)>,
}

impl Devices {
    /// `list`, numbered 0, 1, … in its order.
    #[cfg_attr(
        not(any(
            target_os = "linux",
            all(windows, feature = "dxgi"),
            all(target_os = "macos", feature = "metal")
        )),
        allow(dead_code) // only NVIDIA's backends, which number their own devices
    )]
    pub(crate) fn numbered(mut list: Vec<GpuDeviceInfo>) -> Self {
        for (at, device) in list.iter_mut().enumerate() {
            device.index = u32::try_from(at).unwrap_or(u32::MAX);
        }
        Self {
            slots: u32::try_from(list.len()).unwrap_or(u32::MAX),
            list,
            unreadable: Vec::new(),
        }
    }
}

/// A device, with the backend that listed it.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    /// The record, numbered among all backends' devices.
    pub(crate) info: GpuDeviceInfo,
    /// The backend that listed it.
    pub(crate) by: GpuQuerySource,
    /// Its index in that backend's own numbering.
    #[cfg_attr(
        not(any(feature = "nvml", feature = "nvidia-smi-fallback")),
        allow(dead_code) // only NVIDIA's backends number devices with gaps
    )]
    pub(crate) local: u32,
    /// Why the backends tried before `by` for the same devices could not be used (`by`'s
    /// own failures name them too: NVML's reason next to `nvidia-smi`'s).
    skipped: Vec<BackendAttempt>,
}

impl Listed {
    /// `info`, listed by `by` (numbered as it numbers it).
    #[cfg(all(test, target_os = "linux"))] // the DRM tests
    pub(crate) fn new(info: GpuDeviceInfo, by: GpuQuerySource) -> Self {
        Self {
            local: info.index,
            info,
            by,
            skipped: Vec::new(),
        }
    }
}

/// What a question has read so far, for the backends to share: each source runs at most
/// once per pass. Dropped when the question (or the frame) is answered, so nothing read here
/// outlives it.
#[derive(Default)]
pub(crate) struct Pass {
    memo: Mutex<Vec<(TypeId, Arc<dyn Any + Send + Sync>)>>,
}

impl std::fmt::Debug for Pass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pass").finish_non_exhaustive()
    }
}

impl Pass {
    /// The value of type `T` read in this pass, computed by `compute` the first time. Each
    /// memo has a type of its own (a newtype), which is its key.
    pub(crate) fn memo<T: Any + Send + Sync>(&self, compute: impl FnOnce() -> T) -> Arc<T> {
        let key = TypeId::of::<T>();
        let found = self
            .memo
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, value)| Arc::clone(value));
        if let Some(value) = found.and_then(|v| v.downcast::<T>().ok()) {
            return value;
        }
        // Not under the lock: computing one memo may read another.
        let value = Arc::new(compute());
        let stored: Arc<dyn Any + Send + Sync> = value.clone();
        self.memo
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((key, stored));
        value
    }
}

/// Every backend's devices at one moment.
#[derive(Debug, Clone, Default)]
struct Listing {
    devices: Vec<Listed>,
    /// Every index used, the devices that could not be read included.
    slots: u32,
    /// The devices that could not be read, by index, with why.
    unreadable: Vec<(u32, HypomnesisError)>,
    /// Why each backend of a group that listed nothing could not be used.
    attempts: Vec<BackendAttempt>,
    /// The first group of the order (NVIDIA) could not be used.
    first_failed: bool,
}

/// The listing with current memory figures.
struct FreshListing(Listing);
/// The listing, other backends' devices possibly from their caches.
struct IdentityListing(Listing);

impl Listing {
    /// `NoGpuSource` when the first group failed and no other backend found anything.
    fn check(&self) -> Result<()> {
        if self.first_failed && self.devices.is_empty() {
            return Err(HypomnesisError::NoGpuSource {
                attempts: self.attempts.clone(),
            });
        }
        Ok(())
    }

    /// Device `index`.
    fn find(&self, index: u32) -> Result<Listed> {
        self.check()?;
        self.devices
            .iter()
            .find(|d| d.info.index == index)
            .cloned()
            .ok_or(HypomnesisError::DeviceIndexOutOfRange {
                index,
                count: self.slots,
            })
    }

    fn infos(&self) -> Vec<GpuDeviceInfo> {
        self.devices.iter().map(|d| d.info.clone()).collect()
    }
}

/// How a device found again is read.
#[derive(Debug, Clone, Copy)]
enum Read<'a> {
    /// Its current record.
    Fresh,
    /// Enough to find it (its memory figures may be unusable).
    Identity,
    /// Not at all: the caller has it.
    Like(&'a GpuDeviceInfo),
}

/// Why a backend of the order is not among the backends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Absent {
    pub(crate) source: GpuQuerySource,
    pub(crate) reason: &'static str,
    /// Switched off by the caller (rather than compiled out).
    pub(crate) by_caller: bool,
}

/// The GPU backends of one [`crate::Probe`].
#[derive(Debug)]
pub(crate) struct GpuBackends {
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    proc_root: PathBuf,
    order: &'static Order,
    backends: Vec<Box<dyn Backend>>,
    absent: Vec<Absent>,
    /// What naming read of each process lately, by procfs pid (see [`KnownProcess`]).
    #[cfg(target_os = "linux")]
    known: Mutex<std::collections::HashMap<u32, KnownProcess>>,
}

/// What naming a process read from procfs (name, user, command line, cgroup), kept so that
/// a monitor scanning a thousand GPU processes every few seconds reads one file per process
/// (`stat`: its start time, to know it is still the same process, and its resident pages)
/// instead of five. Why: `hmn top` on 1,000 processes spent 1.85 % of a core in these reads,
/// almost all of its CPU. A pid given to a new process has a new start time and is read
/// afresh; what a process may change about itself (its command line, its cgroup when moved,
/// its user after setuid) is re-read every [`REDESCRIBE_AFTER`] (a minute).
#[cfg(target_os = "linux")]
#[derive(Debug, Clone)]
struct KnownProcess {
    start_ticks: u64,
    name: Option<String>,
    user: Option<String>,
    command: Option<String>,
    /// `None` when the description was read without details (no cgroup read).
    cgroup: Option<Option<String>>,
    described_at: std::time::Instant,
    seen_at: std::time::Instant,
}

/// How long a process's description is reused before it is read again: a command line
/// rewritten or a cgroup moved shows within a minute, and a monitor scanning every 3 s reads
/// each process in full once in 20 scans.
#[cfg(target_os = "linux")]
const REDESCRIBE_AFTER: Duration = Duration::from_secs(60);

/// A process not listed for this long is forgotten.
#[cfg(target_os = "linux")]
const FORGET_AFTER: Duration = Duration::from_secs(120);

impl GpuBackends {
    pub(crate) fn new(config: GpuConfig, proc_root: PathBuf, sys_root: &std::path::Path) -> Self {
        let (backends, absent) = order::backends(&config, &proc_root, sys_root);
        Self {
            proc_root,
            order: &order::ORDER,
            backends,
            absent,
            #[cfg(target_os = "linux")]
            known: Mutex::default(),
        }
    }

    fn backend(&self, source: GpuQuerySource) -> Option<&dyn Backend> {
        self.backends
            .iter()
            .find(|b| b.source() == source)
            .map(AsRef::as_ref)
    }

    /// Why `source` is not among the backends; `None` when it is not expected on this
    /// platform at all.
    fn absent(&self, source: GpuQuerySource) -> Option<&Absent> {
        self.absent.iter().find(|a| a.source == source)
    }

    fn fresh_listing(&self, pass: &Pass) -> Arc<FreshListing> {
        pass.memo(|| FreshListing(self.build_listing(pass, true)))
    }

    fn identity_listing(&self, pass: &Pass) -> Arc<IdentityListing> {
        pass.memo(|| IdentityListing(self.build_listing(pass, false)))
    }

    /// Walks the order's device groups: in each, the first backend that can be used lists
    /// the group's devices, numbered after the groups before; a group none of whose backends
    /// could be used leaves its cards to the backends that list orphans (after all others).
    fn build_listing(&self, pass: &Pass, fresh: bool) -> Listing {
        let mut listing = Listing::default();
        let mut orphaned = Vec::new();
        for (at, group) in self.order.devices.iter().enumerate() {
            let claimed = listing.infos();
            let mut tried = Vec::new();
            let mut answered = false;
            for &source in group.answered_by {
                let Some(backend) = self.backend(source) else {
                    if let Some(absent) = self.absent(source) {
                        tried.push(BackendAttempt::new(source, absent.reason));
                    }
                    continue;
                };
                let found = if fresh {
                    backend.devices(pass, &claimed)
                } else {
                    backend.identities(pass, &claimed)
                };
                match found {
                    Ok(found) => {
                        for mut info in found.list {
                            let local = info.index;
                            info.index = listing.slots.saturating_add(local);
                            info.refuse_impossible_memory();
                            listing.devices.push(Listed {
                                info,
                                by: source,
                                local,
                                skipped: tried.clone(),
                            });
                        }
                        for (local, why) in found.unreadable {
                            listing
                                .unreadable
                                .push((listing.slots.saturating_add(local), why));
                        }
                        listing.slots = listing.slots.saturating_add(found.slots);
                        answered = true;
                        break;
                    }
                    Err(why) => tried.push(BackendAttempt::new(source, why)),
                }
            }
            if answered {
                continue;
            }
            listing.first_failed |= at == 0;
            // Cards these backends should have read, when they are wanted but unusable:
            // shown with unknown memory and why rather than not at all.
            let wanted = group
                .answered_by
                .iter()
                .any(|&s| self.absent(s).is_none_or(|a| !a.by_caller));
            if wanted && !group.orphans_listed_by.is_empty() {
                let why = tried
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                orphaned.push((group, why));
            }
            listing.attempts.extend(tried);
        }
        for (group, why) in orphaned {
            for &source in group.orphans_listed_by {
                let Some(backend) = self.backend(source) else {
                    continue;
                };
                for mut info in backend.orphans(pass, group.answered_by, &why) {
                    info.index = listing.slots;
                    listing.slots = listing.slots.saturating_add(1);
                    listing.devices.push(Listed {
                        local: info.index,
                        info,
                        by: source,
                        skipped: Vec::new(),
                    });
                }
            }
        }
        listing
    }

    /// Device `index` when the order's first backends number it: found without listing the
    /// other backends' devices (the hot path of NVIDIA machines). Its record is read as
    /// `read` says. `None`: not theirs, look in the whole listing.
    fn find_first(&self, pass: &Pass, index: u32, read: Read<'_>) -> Option<Result<Listed>> {
        let group = self.order.devices.first()?;
        let mut skipped = Vec::new();
        for &source in group.answered_by {
            let Some(backend) = self.backend(source) else {
                if let Some(absent) = self.absent(source) {
                    skipped.push(BackendAttempt::new(source, absent.reason));
                }
                continue;
            };
            match backend.count(pass) {
                Ok(count) if index < count => {
                    let info = match read {
                        Read::Like(like) => Ok(like.clone()),
                        Read::Identity => backend.identity(pass, index),
                        Read::Fresh => backend.device(pass, index),
                    };
                    let info = info.map(|mut info| {
                        info.refuse_impossible_memory();
                        info
                    });
                    return Some(info.map(|info| Listed {
                        info,
                        by: source,
                        local: index,
                        skipped,
                    }));
                }
                Ok(_) => return None,
                Err(why) => skipped.push(BackendAttempt::new(source, why)),
            }
        }
        None
    }

    /// Device `index` with current figures.
    fn find(&self, pass: &Pass, index: u32) -> Result<Listed> {
        match self.find_first(pass, index, Read::Fresh) {
            Some(found) => found,
            None => self.fresh_listing(pass).0.find(index),
        }
    }

    /// Device `index` to find it again: other backends' devices may come from their caches
    /// (memory figures possibly stale).
    fn find_identity(&self, pass: &Pass, index: u32) -> Result<Listed> {
        match self.find_first(pass, index, Read::Identity) {
            Some(found) => found,
            None => self.identity_listing(pass).0.find(index),
        }
    }

    /// The first answer to a question about `device`, asking the backends in `order`; an
    /// error of the backend that listed the device names the backends tried before it too.
    fn ask<T>(
        &self,
        order: &[Answer],
        device: &Listed,
        question: impl Fn(&dyn Backend) -> Option<Result<T>>,
    ) -> Option<Result<T>> {
        order.iter().find_map(|answer| {
            let source = match *answer {
                Answer::Lister => device.by,
                Answer::Backend(source) => source,
            };
            let answer = question(self.backend(source)?)?;
            Some(answer.map_err(|e| match e {
                HypomnesisError::NoGpuSource { attempts } if source == device.by => {
                    HypomnesisError::NoGpuSource {
                        attempts: device.skipped.iter().cloned().chain(attempts).collect(),
                    }
                }
                other => other,
            }))
        })
    }

    pub(crate) fn device_count(&self) -> Result<u32> {
        let pass = Pass::default();
        let listing = self.fresh_listing(&pass);
        listing.0.check()?;
        Ok(listing.0.slots)
    }

    pub(crate) fn devices(&self) -> Result<Vec<GpuDeviceInfo>> {
        let pass = Pass::default();
        let listing = self.fresh_listing(&pass);
        listing.0.check()?;
        Ok(listing.0.infos())
    }

    pub(crate) fn device_info(&self, index: u32) -> Result<GpuDeviceInfo> {
        self.find(&Pass::default(), index).map(|d| d.info)
    }

    pub(crate) fn processes(&self, index: u32) -> Result<Vec<GpuProcessEntry>> {
        Ok(self.process_listing(index)?.rows)
    }

    /// The rows of `index`, named and with PIDs as the caller's namespace numbers them
    /// (NVML's host PIDs mapped through `NSpid`, see [`crate::pidns`]), and the counts of
    /// what could not be seen.
    pub(crate) fn process_listing(&self, index: u32) -> Result<GpuProcessListing> {
        let pass = Pass::default();
        let device = self.find(&pass, index)?;
        self.listing_of(&pass, &device, false)
    }

    /// `device`'s processes, named; with `details`, each row's resident memory and cgroup.
    fn listing_of(&self, pass: &Pass, device: &Listed, details: bool) -> Result<GpuProcessListing> {
        let mut listing = self
            .ask(self.order.processes, device, |b| {
                b.process_listing(pass, device)
            })
            .unwrap_or_else(|| {
                Err(HypomnesisError::NoGpuSource {
                    attempts: vec![BackendAttempt::new(
                        device.by,
                        "no backend lists the processes of this device",
                    )],
                })
            })?;
        listing.refuse_implausible_rows(Some(&device.info));
        self.name_rows(&mut listing, device, details);
        listing.rows.sort_by_key(|r| r.pid);
        listing.absent_pids.sort_unstable();
        listing.refused_pids.sort_unstable();
        Ok(listing)
    }

    pub(crate) fn telemetry(&self, index: u32) -> Result<DeviceTelemetry> {
        let pass = Pass::default();
        let device = self.find_identity(&pass, index)?;
        self.telemetry_of(&pass, &device)
    }

    fn telemetry_of(&self, pass: &Pass, device: &Listed) -> Result<DeviceTelemetry> {
        if let Some(answer) = self.ask(self.order.telemetry, device, |b| b.telemetry(pass, device))
        {
            return answer;
        }
        let mut telemetry = DeviceTelemetry::empty(device.info.index, device.info.source);
        for field in [
            TelemetryField::GpuUtilizationPercent,
            TelemetryField::TemperatureCelsius,
            TelemetryField::PowerWatts,
        ] {
            telemetry.mark_unavailable(
                field,
                format!("no telemetry source for a {} device", device.info.source),
            );
        }
        Ok(telemetry)
    }

    /// Telemetry of every device, listing the devices once. A device whose reading fails is
    /// left out; its error is returned in the second list.
    pub(crate) fn telemetry_all(&self) -> Result<(Vec<DeviceTelemetry>, Vec<HypomnesisError>)> {
        let pass = Pass::default();
        let listing = self.identity_listing(&pass);
        listing.0.check()?;
        let mut readings = Vec::with_capacity(listing.0.devices.len());
        let mut errors = Vec::new();
        for device in &listing.0.devices {
            match self.telemetry_of(&pass, device) {
                Ok(t) => readings.push(t),
                Err(e) => errors.push(e),
            }
        }
        Ok((readings, errors))
    }

    /// Every device, with its telemetry and processes when `request` asks for them: the GPU
    /// part of a [`crate::Frame`], every source read at most once. `Err` only when no
    /// backend can list devices.
    /// The second list: the devices the backends count but whose record could not be read.
    pub(crate) fn frame(
        &self,
        request: crate::FrameRequest,
    ) -> Result<(Vec<crate::DeviceFrame>, Vec<crate::UnreadableDevice>)> {
        let pass = Pass::default();
        let listing = self.fresh_listing(&pass);
        listing.0.check()?;
        let unreadable = listing
            .0
            .unreadable
            .iter()
            .map(|(index, error)| crate::UnreadableDevice {
                index: *index,
                error: error.clone(),
            })
            .collect();
        let mut frames = Vec::with_capacity(listing.0.devices.len());
        for device in &listing.0.devices {
            let mut frame = crate::DeviceFrame::new(device.info.clone());
            if request.telemetry {
                match self.telemetry_of(&pass, device) {
                    Ok(t) => frame.telemetry = Some(t),
                    Err(e) => frame.telemetry_error = Some(e),
                }
            }
            if request.processes {
                match self.listing_of(&pass, device, request.process_details) {
                    Ok(listing) => frame.processes = Some(listing),
                    Err(e) => frame.processes_error = Some(e),
                }
            }
            frames.push(frame);
        }
        Ok((frames, unreadable))
    }

    /// Device `index`, with the backend that listed it, for questions asked later.
    #[cfg_attr(not(all(windows, feature = "pdh")), allow(dead_code))] // the spill meter
    pub(crate) fn locate(&self, index: u32) -> Result<Listed> {
        self.find(&Pass::default(), index)
    }

    /// A meter of `device`'s dedicated and shared memory, from the first backend of the
    /// order's `spill` that can give one.
    #[cfg_attr(not(all(windows, feature = "pdh")), allow(dead_code))] // PDH only
    pub(crate) fn spill_meter(&self, device: &Listed) -> Result<Box<dyn SpillMeter>> {
        self.ask(self.order.spill, device, |b| b.spill_meter(device))
            .unwrap_or_else(|| {
                Err(HypomnesisError::NoGpuSource {
                    attempts: vec![BackendAttempt::new(
                        device.by,
                        "no backend reads dedicated and shared memory of this device",
                    )],
                })
            })
    }

    pub(crate) fn own_process(&self, index: u32, pid: u32) -> Result<ProcessGpuInfo> {
        let pass = Pass::default();
        let device = self.find(&pass, index)?;
        self.own_process_of(&pass, &device, pid)
    }

    /// [`GpuBackends::own_process`] for a device already read (a snapshot has it), so the
    /// device is not queried twice.
    pub(crate) fn own_process_on(
        &self,
        device: &GpuDeviceInfo,
        pid: u32,
    ) -> Result<ProcessGpuInfo> {
        let pass = Pass::default();
        let listed = match self.find_first(&pass, device.index, Read::Like(device)) {
            Some(found) => found?,
            None => {
                let mut listed = self.identity_listing(&pass).0.find(device.index)?;
                listed.info = device.clone();
                listed
            }
        };
        self.own_process_of(&pass, &listed, pid)
    }

    fn own_process_of(&self, pass: &Pass, device: &Listed, pid: u32) -> Result<ProcessGpuInfo> {
        self.ask(self.order.own_process, device, |b| {
            b.own_process(pass, device, pid)
        })
        .unwrap_or_else(|| {
            Err(HypomnesisError::NoGpuSource {
                attempts: vec![BackendAttempt::new(
                    device.by,
                    "no backend measures a process's memory on this device",
                )],
            })
        })
        .and_then(|own| plausible_own(own, &device.info, pid))
    }

    /// Names the rows of `device`'s listing from the OS (the driver's name where the OS has
    /// none), maps their PIDs to the caller's namespace, and counts what could not be seen.
    fn name_rows(&self, listing: &mut GpuProcessListing, device: &Listed, details: bool) {
        let lister = self.backend(device.by);
        let driver_name = |source, pid| lister.and_then(|b| b.process_name(source, pid));
        #[cfg(target_os = "linux")]
        {
            use crate::pidns::Placement;
            let mut view = crate::pidns::PidView::detect(&self.proc_root);
            // Where each row's process is, in this procfs; `None`: not visible.
            let mut procfs_pids: Vec<Option<u32>> = Vec::with_capacity(listing.rows.len());
            // The PID each row's backend reported, for asking the driver for a name.
            let driver_pids: Vec<u32> = listing.rows.iter().map(|r| r.pid).collect();
            for row in &mut listing.rows {
                let placement = if row.source.reports_host_pids() {
                    view.host_pid(row.pid)
                } else {
                    view.procfs_pid(row.pid)
                };
                procfs_pids.push(match placement {
                    Placement::Local { local, procfs } => {
                        row.pid = local;
                        Some(procfs)
                    }
                    Placement::Outside { procfs } => {
                        listing.hidden_by_pid_namespace =
                            listing.hidden_by_pid_namespace.saturating_add(1);
                        Some(procfs)
                    }
                    // A DRM row's process that is gone by now is not a namespace matter.
                    Placement::Hidden if row.source == GpuQuerySource::Drm => None,
                    Placement::Hidden => {
                        listing.hidden_by_pid_namespace =
                            listing.hidden_by_pid_namespace.saturating_add(1);
                        None
                    }
                });
                // Shared DRM clients name their holders in procfs numbering, as rows do.
                for client in &mut row.shared_clients {
                    let mut local = |pid| match view.procfs_pid(pid) {
                        Placement::Local { local, .. } => local,
                        _ => pid,
                    };
                    client.counted_for = local(client.counted_for);
                    for holder in &mut client.holders {
                        *holder = local(*holder);
                    }
                    client.holders.sort_unstable();
                }
            }
            let described = self.describe_all(&mut listing.rows, &procfs_pids, details);
            self.forget_unlisted();
            for (at, outcome) in described.into_iter().enumerate() {
                let Some(row) = listing.rows.get_mut(at) else {
                    continue;
                };
                match outcome {
                    Described::Named | Described::NotLooked => continue,
                    Described::Absent => listing.absent_pids.push(row.pid),
                    Described::Refused => listing.refused_pids.push(row.pid),
                }
                // The driver may know a name /proc cannot give (NVML: the host's process
                // table, also for a process in another container).
                if row.name.is_none()
                    && let Some(&driver_pid) = driver_pids.get(at)
                {
                    row.name = driver_name(row.source, driver_pid);
                }
            }
            // SAFETY: geteuid takes no arguments, cannot fail and touches no memory of ours.
            listing.running_as_root = unsafe { libc::geteuid() } == 0;
        }
        #[cfg(not(target_os = "linux"))]
        for row in &mut listing.rows {
            match self.describe_process(row, row.pid, details) {
                Described::Named | Described::NotLooked => continue,
                Described::Absent => listing.absent_pids.push(row.pid),
                Described::Refused => listing.refused_pids.push(row.pid),
            }
            // As on Linux: the driver may name what the OS would not.
            if row.name.is_none() {
                row.name = driver_name(row.source, row.pid);
            }
        }
    }

    /// Fills `row` from what an earlier naming read of the process `stat` shows is still
    /// running, and its resident memory from `stat`; `false` when there is no such reading
    /// (a new process, a reused pid, a description older than [`REDESCRIBE_AFTER`], or one
    /// read without the details now asked for): the caller then reads the process afresh.
    #[cfg(target_os = "linux")]
    fn describe_from_known(
        &self,
        row: &mut GpuProcessEntry,
        procfs_pid: u32,
        stat: &crate::os::procfs::Stat,
        details: bool,
        now: std::time::Instant,
    ) -> bool {
        let rss_bytes = stat
            .rss_pages
            .zip(crate::ram::linux::page_size())
            .and_then(|(pages, size)| pages.checked_mul(size));
        if details && rss_bytes.is_none() {
            return false;
        }
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(entry) = known.get_mut(&procfs_pid) else {
            return false;
        };
        let fresh = now.saturating_duration_since(entry.described_at) < REDESCRIBE_AFTER;
        if entry.start_ticks != stat.start_ticks || !fresh || (details && entry.cgroup.is_none()) {
            return false;
        }
        entry.seen_at = now;
        if entry.name.is_some() {
            row.name.clone_from(&entry.name);
        }
        row.user.clone_from(&entry.user);
        row.command.clone_from(&entry.command);
        if details {
            row.rss_bytes = rss_bytes;
            row.cgroup = entry.cgroup.clone().flatten();
        }
        true
    }

    /// Forgets processes not listed for [`FORGET_AFTER`], so the memo stays as large as the
    /// GPU processes of the last minute.
    #[cfg(target_os = "linux")]
    fn forget_unlisted(&self) {
        let now = std::time::Instant::now();
        self.known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, k| now.saturating_duration_since(k.seen_at) < FORGET_AFTER);
    }

    /// Names `rows` (row `i` is process `procfs_pids[i]`, when visible), and says for each
    /// whether it could. Naming reads three files per process (about 20 µs on a VM), so a
    /// listing of hundreds of rows shares the work among a few threads, as the DRM scan does.
    #[cfg(target_os = "linux")]
    fn describe_all(
        &self,
        rows: &mut [GpuProcessEntry],
        procfs_pids: &[Option<u32>],
        details: bool,
    ) -> Vec<Described> {
        /// Below this many rows one thread names them.
        const PARALLEL_FROM: usize = 128;
        // A large listing lists the procfs once (one `getdents` pass) so that the processes
        // not in it — another container's, a scenario's — cost no failed open each.
        let present = (rows.len() >= PARALLEL_FROM)
            .then(|| drm::fdinfo::procfs_pids(&self.proc_root).ok())
            .flatten();
        let describe = |rows: &mut [GpuProcessEntry], pids: &[Option<u32>]| -> Vec<Described> {
            rows.iter_mut()
                .zip(pids)
                .map(|(row, pid)| match *pid {
                    Some(pid) if present.as_ref().is_some_and(|p| !p.contains(&pid)) => {
                        Described::Absent
                    }
                    Some(pid) => self.describe_process(row, pid, details),
                    None => Described::NotLooked,
                })
                .collect()
        };
        let threads = if rows.len() < PARALLEL_FROM {
            1
        } else {
            std::thread::available_parallelism()
                .map_or(1, std::num::NonZeroUsize::get)
                .min(4)
        };
        let chunk = rows.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let mut parts = rows.chunks_mut(chunk).zip(procfs_pids.chunks(chunk));
            // The calling thread names the first part itself.
            let first = parts.next();
            let others: Vec<_> = parts
                .map(|(rows, pids)| scope.spawn(move || describe(rows, pids)))
                .collect();
            let mut outcomes = first.map_or_else(Vec::new, |(rows, pids)| describe(rows, pids));
            for (other, pids) in others.into_iter().zip(procfs_pids.chunks(chunk).skip(1)) {
                // Naming reads files and does not panic; were it to, the part counts as
                // not looked at.
                outcomes.extend(
                    other
                        .join()
                        .unwrap_or_else(|_| vec![Described::NotLooked; pids.len()]),
                );
            }
            outcomes
        })
    }

    /// Name, user and command line from the OS, which knows them better than the driver, and
    /// with `details` resident memory and cgroup; `procfs_pid` is the process's number in the
    /// procfs (its host PID when the caller reads a host `/proc` from a container), so every
    /// figure is the row's process's, whichever namespace the caller is in.
    fn describe_process(
        &self,
        row: &mut GpuProcessEntry,
        procfs_pid: u32,
        details: bool,
    ) -> Described {
        #[cfg(target_os = "linux")]
        {
            use crate::process_info::linux::{process_cgroup, process_command, process_user};
            let now = std::time::Instant::now();
            let stat = crate::os::linux::read_proc_file(
                &self.proc_root.join(procfs_pid.to_string()).join("stat"),
                crate::os::linux::Ends::AtShortRead,
            )
            .ok()
            .and_then(|text| crate::os::procfs::parse_stat(&text));
            if let Some(stat) = stat
                && self.describe_from_known(row, procfs_pid, &stat, details, now)
            {
                return Described::Named;
            }
            match crate::ram::linux::process_name_or_error(&self.proc_root, procfs_pid) {
                Ok(name) => {
                    if name.is_some() {
                        row.name = name;
                    }
                }
                // `comm` is readable by anyone: a process without it is not in this procfs,
                // and its other files would fail the same way (three failed opens per row
                // of a large listing of another container's processes).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Described::Absent,
                Err(_) => return Described::Refused,
            }
            row.user = process_user(&self.proc_root, procfs_pid);
            row.command = process_command(&self.proc_root, procfs_pid);
            if details {
                row.rss_bytes = crate::ram::linux::read_process_memory(
                    &self.proc_root,
                    Some(procfs_pid),
                    crate::MemoryDetail::Fast,
                )
                .ok()
                .map(|m| m.rss_bytes);
                row.cgroup = process_cgroup(&self.proc_root, procfs_pid);
            }
            if let Some(stat) = stat {
                let known = KnownProcess {
                    start_ticks: stat.start_ticks,
                    name: row.name.clone(),
                    user: row.user.clone(),
                    command: row.command.clone(),
                    cgroup: details.then(|| row.cgroup.clone()),
                    described_at: now,
                    seen_at: now,
                };
                self.known
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(procfs_pid, known);
            }
            Described::Named
        }
        #[cfg(windows)]
        {
            use crate::ram::windows::{ImageName, image_name, resolve_name, snapshot_names};
            if details {
                row.rss_bytes = crate::ram::windows::read_process_memory(
                    Some(procfs_pid),
                    crate::MemoryDetail::Fast,
                )
                .ok()
                .map(|m| m.rss_bytes);
            }
            if row.name.is_none() {
                let image = image_name(procfs_pid);
                // Only a refused image name needs the (costlier) Toolhelp32 snapshot.
                let snapshot = matches!(image, ImageName::Refused)
                    .then(snapshot_names)
                    .flatten();
                row.name = resolve_name(procfs_pid, &image, snapshot.as_ref());
                if row.name.is_none() {
                    return match image {
                        ImageName::Gone => Described::Absent,
                        _ => Described::Refused,
                    };
                }
            }
            Described::Named
        }
        #[cfg(target_os = "macos")]
        {
            if details {
                row.rss_bytes = crate::ram::macos::read_process_memory(
                    Some(procfs_pid),
                    crate::MemoryDetail::Fast,
                )
                .ok()
                .map(|m| m.rss_bytes);
            }
            Described::NotLooked
        }
        #[cfg(not(any(target_os = "linux", windows, target_os = "macos")))]
        {
            let _ = (row, procfs_pid, details);
            Described::NotLooked
        }
    }
}

/// Whether a row's process could be described from the OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
enum Described {
    /// Read (fields the OS would not give stay `None`).
    Named,
    /// Not in this procfs (another container's process, or exited).
    Absent,
    /// In this procfs, but its files could not be read.
    Refused,
    /// Not looked up (not visible from this namespace, counted elsewhere).
    NotLooked,
}

/// `own` when its figure can be true on `device` (the rule the listings follow: no more than
/// the device holds — on a unified device its memory and its system-memory aperture
/// together, since the figure adds both), else an error saying why.
fn plausible_own(own: ProcessGpuInfo, device: &GpuDeviceInfo, pid: u32) -> Result<ProcessGpuInfo> {
    let limit = if device.unified_memory {
        device
            .total_bytes
            .zip(device.system_total_bytes)
            .map(|(t, s)| t.saturating_add(s))
    } else {
        device.total_bytes
    };
    match crate::snapshot::implausible_process_bytes(own.upper_bound_bytes(), limit) {
        None => Ok(own),
        Some(why) => Err(HypomnesisError::NoGpuSource {
            attempts: vec![BackendAttempt::new(
                own.source,
                format!("reports an implausible figure for pid {pid}: {why}"),
            )],
        }),
    }
}

/// Device `index` of `devices`, which use `count` indices.
pub(crate) fn pick_device(
    devices: Vec<GpuDeviceInfo>,
    index: u32,
    count: u32,
) -> Result<GpuDeviceInfo> {
    devices
        .into_iter()
        .find(|d| d.index == index)
        .ok_or(HypomnesisError::DeviceIndexOutOfRange { index, count })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_own_figure_larger_than_the_device_is_an_error_on_other_backends_too() {
        let mut device = GpuDeviceInfo::new(0, crate::GpuVendor::Amd, GpuQuerySource::Drm);
        device.total_bytes = Some(16 << 30);
        let own = |bytes: u64| ProcessGpuInfo::own(bytes, 0, GpuQuerySource::Drm);
        assert!(plausible_own(own(17 << 30), &device, 7).is_err());
        assert!(plausible_own(own(u64::MAX), &device, 7).is_err());
        assert_eq!(
            plausible_own(own(16 << 30), &device, 7)
                .unwrap()
                .process_bytes,
            Some(16 << 30)
        );
        // An APU's own figure adds VRAM and GTT: bounded by both together.
        device.unified_memory = true;
        device.total_bytes = Some(512 << 20);
        device.system_total_bytes = Some(48 << 30);
        assert!(plausible_own(own(24 << 30), &device, 7).is_ok());
        assert!(plausible_own(own(49 << 30), &device, 7).is_err());
    }

    /// Twelve amdgpu cards, each with one process holding two clients (24 DRM fds), and
    /// the backends reading them (NVIDIA's switched off).
    #[cfg(target_os = "linux")]
    fn twelve_cards() -> (drm::telemetry::tree::DrmTree, GpuBackends) {
        use drm::telemetry::tree;
        let tree = tree::DrmTree::new();
        let text = tree::fdinfo("amdgpu-6.13-current");
        for card in 0..12_u32 {
            let slot = format!("0000:{:02x}:00.0", 0x10 + card);
            let mut spec = tree::standard_amdgpu();
            spec.card = card;
            spec.render = Some(128 + card);
            spec.slot = &slot;
            tree.pci_card(&spec);
            let pid = 1000 + card;
            tree.process(pid, "worker", None);
            for fd in 0..2 {
                let fdinfo = text.replace("0000:03:00.0", &slot).replace(
                    "drm-client-id:\t218",
                    &format!("drm-client-id:\t{}", card * 2 + fd),
                );
                tree.fd(
                    pid,
                    3 + fd,
                    &format!("/dev/dri/renderD{}", 128 + card),
                    Some(&fdinfo),
                );
            }
        }
        let config = GpuConfig {
            nvml_lib: None,
            use_nvml: false,
            nvidia_smi: PathBuf::from("nvidia-smi"),
            nvidia_smi_timeout: Duration::from_secs(1),
            use_nvidia_smi: false,
        };
        let gpu = GpuBackends::new(config, tree.proc(), &tree.sys());
        (tree, gpu)
    }

    /// How many times this thread has walked a whole procfs for DRM clients.
    #[cfg(target_os = "linux")]
    fn proc_scans() -> usize {
        drm::fdinfo::SCANS.with(std::cell::Cell::get)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_frame_walks_proc_once_for_twelve_drm_cards() {
        let (_tree, gpu) = twelve_cards();
        let before = proc_scans();
        let (frames, _) = gpu.frame(crate::FrameRequest::ALL).unwrap();
        assert_eq!(proc_scans() - before, 1);
        assert_eq!(frames.len(), 12);
        for (card, frame) in (0..).zip(&frames) {
            let listing = frame.processes.as_ref().unwrap();
            let pids: Vec<u32> = listing.rows.iter().map(|r| r.pid).collect();
            assert_eq!(pids, [1000 + card]);
            // Two clients of 100 MiB resident VRAM each.
            assert_eq!(listing.rows[0].used_bytes, Some(200 << 20));
        }
    }

    /// `stat` of a fixture process: started at `start_ticks`, `rss_pages` resident.
    #[cfg(target_os = "linux")]
    fn write_stat(
        tree: &drm::telemetry::tree::DrmTree,
        pid: u32,
        start_ticks: u64,
        rss_pages: u64,
    ) {
        let text = format!(
            "{pid} (worker) S 1 {pid} {pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 {start_ticks} \
             9011200 {rss_pages} 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
        );
        std::fs::write(tree.proc().join(pid.to_string()).join("stat"), text).unwrap();
    }

    /// The row of `pid` in a fresh frame of `gpu` with process details.
    #[cfg(target_os = "linux")]
    fn row_of(gpu: &GpuBackends, pid: u32) -> GpuProcessEntry {
        let request = crate::FrameRequest::ALL.with_processes(true, true);
        let (frames, _) = gpu.frame(request).unwrap();
        frames
            .iter()
            .filter_map(|f| f.processes.as_ref())
            .flat_map(|l| l.rows.iter())
            .find(|r| r.pid == pid)
            .cloned()
            .unwrap()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_process_still_running_is_named_from_its_first_reading_and_its_rss_read_from_stat() {
        let (tree, gpu) = twelve_cards();
        let page = crate::ram::linux::page_size().unwrap();
        write_stat(&tree, 1000, 31_337, 100);
        let first = row_of(&gpu, 1000);
        assert_eq!(first.name.as_deref(), Some("worker"));
        assert_eq!(first.command.as_deref(), Some("/usr/bin/worker --fixture"));

        // The same process (same start time): its name, command line and cgroup are not
        // read again; its resident memory is, from stat.
        let dir = tree.proc().join("1000");
        std::fs::write(dir.join("comm"), "renamed\n").unwrap();
        std::fs::write(dir.join("cmdline"), "/usr/bin/renamed\0").unwrap();
        write_stat(&tree, 1000, 31_337, 300);
        let again = row_of(&gpu, 1000);
        assert_eq!(again.name.as_deref(), Some("worker"));
        assert_eq!(again.command.as_deref(), Some("/usr/bin/worker --fixture"));
        assert_eq!(again.user, first.user);
        assert_eq!(again.cgroup, first.cgroup);
        assert_eq!(again.rss_bytes, Some(300 * page));

        // The pid given to another process (a later start time) is read afresh.
        write_stat(&tree, 1000, 40_000, 300);
        let reused = row_of(&gpu, 1000);
        assert_eq!(reused.name.as_deref(), Some("renamed"));
        assert_eq!(reused.command.as_deref(), Some("/usr/bin/renamed"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_process_without_a_readable_stat_is_read_in_full_every_time() {
        let (tree, gpu) = twelve_cards();
        assert_eq!(row_of(&gpu, 1001).name.as_deref(), Some("worker"));
        std::fs::write(tree.proc().join("1001").join("comm"), "renamed\n").unwrap();
        assert_eq!(row_of(&gpu, 1001).name.as_deref(), Some("renamed"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn one_devices_process_listing_walks_proc_once() {
        let (_tree, gpu) = twelve_cards();
        let before = proc_scans();
        let listing = gpu.process_listing(11).unwrap();
        assert_eq!(proc_scans() - before, 1);
        assert_eq!(listing.rows.len(), 1);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_frame_without_processes_does_not_walk_proc() {
        let (_tree, gpu) = twelve_cards();
        let before = proc_scans();
        let request = crate::FrameRequest::ALL.with_processes(false, false);
        assert_eq!(gpu.frame(request).unwrap().0.len(), 12);
        assert_eq!(proc_scans() - before, 0);
    }

    #[test]
    fn a_pass_computes_each_memo_once() {
        struct Runs(u32);
        let pass = Pass::default();
        let mut computed = 0;
        for _ in 0..3 {
            let runs = pass.memo(|| {
                computed += 1;
                Runs(7)
            });
            assert_eq!(runs.0, 7);
        }
        assert_eq!(computed, 1);
    }
}

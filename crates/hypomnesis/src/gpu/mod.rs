//! The GPU dispatcher: which backend answers which question, and what happens when one fails.
//!
//! NVIDIA GPUs are read through NVML (loaded once, lazily, at run time). When NVML cannot be
//! used at all — library missing, driver not loaded, version mismatch — `nvidia-smi` answers
//! instead. When NVML works but one answer is unusable (a refused process list, the
//! `u64::MAX` "not available" sentinel, `used > total`), `nvidia-smi` is asked for that answer
//! only. When nothing can answer, the error lists every backend tried and why it failed.
//!
//! Process names come from `/proc` (the full executable name, not the 15-byte `comm`). Only a
//! process `/proc` does not have (another container's) is named by the driver
//! (`nvmlSystemGetProcessName`), whose copy the workload controls; the listing then says the
//! process is not in this `/proc` and how to see it (`--pid=host`, `HYPOMNESIS_PROC_ROOT`).

use std::path::PathBuf;
#[cfg(any(feature = "nvml", target_os = "linux"))]
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::{BackendAttempt, HypomnesisError, Result};
use crate::snapshot::{
    GpuDeviceInfo, GpuProcessEntry, GpuProcessListing, GpuQuerySource, ProcessGpuInfo,
};
use crate::telemetry::DeviceTelemetry;
use crate::unavailable::{DeviceField, TelemetryField};

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
#[cfg(feature = "nvidia-smi-fallback")]
pub(crate) mod nvidia_smi;
#[cfg(feature = "nvml")]
pub(crate) mod nvml;
#[cfg(feature = "nvml")]
pub(crate) mod nvml_strings;
pub(crate) mod pdh;

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

/// The GPU backends of one [`crate::Probe`].
#[derive(Debug)]
pub(crate) struct GpuBackends {
    config: GpuConfig,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    proc_root: PathBuf,
    #[cfg(feature = "nvml")]
    nvml: OnceLock<Result<nvml::NvmlBackend>>,
    #[cfg(feature = "nvidia-smi-fallback")]
    smi: nvidia_smi::NvidiaSmi,
    /// The calling process's PID in the root namespace, once known (Linux).
    #[cfg(target_os = "linux")]
    own_host_pid: OnceLock<Option<u32>>,
    /// Backends for everything that is not NVIDIA-through-NVML, numbered after NVIDIA.
    extras: Vec<Box<dyn ExtraBackend>>,
}

/// A GPU backend besides NVML / `nvidia-smi`: DRM on Linux, DXGI and PDH on Windows, Metal on
/// macOS. Its devices are numbered after NVIDIA's; it may also answer process questions for
/// any device it can see (PDH does for NVIDIA GPUs under WDDM, where NVML cannot).
pub(crate) trait ExtraBackend: Send + Sync + std::fmt::Debug {
    /// The backend's name in records and errors.
    fn source(&self) -> GpuQuerySource;
    /// Devices this backend sees that are not among `nvidia` (the NVIDIA devices already
    /// listed; match by PCI bus id or UUID so a GPU is never listed twice). The dispatcher
    /// sets their `index`.
    fn devices(&self, nvidia: &[GpuDeviceInfo]) -> Result<Vec<GpuDeviceInfo>>;
    /// The same devices as [`ExtraBackend::devices`], in the same order, for finding a
    /// device again (telemetry): a backend may answer from a cache it keeps valid for the
    /// device *set*, so the memory figures may be stale. The default reads them afresh.
    fn identities(&self, nvidia: &[GpuDeviceInfo]) -> Result<Vec<GpuDeviceInfo>> {
        self.devices(nvidia)
    }
    /// Every process holding memory on `device`, when this backend can list them; `None`
    /// leaves the device to the other backends.
    fn processes(&self, device: &GpuDeviceInfo) -> Option<Result<Vec<GpuProcessEntry>>>;
    /// As [`ExtraBackend::processes`], with what the backend could not see (unreadable
    /// processes, clients shared between processes). The default has rows only.
    fn process_listing(&self, device: &GpuDeviceInfo) -> Option<Result<GpuProcessListing>> {
        self.processes(device)
            .map(|rows| rows.map(GpuProcessListing::from_rows))
    }
    /// Process `pid`'s own memory on `device`, when this backend can tell; `None` as above.
    fn own_process(&self, device: &GpuDeviceInfo, pid: u32) -> Option<Result<ProcessGpuInfo>>;
    /// Cards this backend can see that are NVIDIA's to read (bound to the `nvidia` driver)
    /// while NVIDIA's own backends could not be used (`why`): listed with unknown memory and
    /// that reason rather than left out. The default has none.
    fn unclaimed_nvidia(&self, why: &str) -> Vec<GpuDeviceInfo> {
        let _ = why;
        Vec::new()
    }
    /// Utilization, temperature, power and clocks of `device`, when this backend can read
    /// them; `None` leaves the device to the other backends.
    fn telemetry(&self, device: &GpuDeviceInfo) -> Option<Result<DeviceTelemetry>> {
        let _ = device;
        None
    }
}

/// Every backend's devices at one moment.
struct Listing {
    nvidia: std::result::Result<Vec<GpuDeviceInfo>, Vec<BackendAttempt>>,
    nvidia_count: u32,
    extra: Vec<GpuDeviceInfo>,
    extra_attempts: Vec<BackendAttempt>,
}

impl Listing {
    /// Device `index` of the listing (NVIDIA's, then the others').
    fn device(self, index: u32) -> Result<GpuDeviceInfo> {
        self.check()?;
        let total = self
            .nvidia_count
            .saturating_add(u32::try_from(self.extra.len()).unwrap_or(u32::MAX));
        let mut all = self.nvidia.unwrap_or_default();
        all.extend(self.extra);
        all.into_iter()
            .find(|d| d.index == index)
            .ok_or(HypomnesisError::DeviceIndexOutOfRange {
                index,
                count: total,
            })
    }

    /// `NoGpuSource` when NVIDIA failed and no other backend found anything.
    fn check(&self) -> Result<()> {
        match &self.nvidia {
            Err(nvidia_attempts) if self.extra.is_empty() => Err(HypomnesisError::NoGpuSource {
                attempts: nvidia_attempts
                    .iter()
                    .chain(&self.extra_attempts)
                    .cloned()
                    .collect(),
            }),
            _ => Ok(()),
        }
    }
}

impl GpuBackends {
    pub(crate) fn new(config: GpuConfig, proc_root: PathBuf, sys_root: &std::path::Path) -> Self {
        Self {
            #[cfg(feature = "nvidia-smi-fallback")]
            smi: nvidia_smi::NvidiaSmi::new(config.nvidia_smi.clone(), config.nvidia_smi_timeout),
            #[cfg(feature = "nvml")]
            nvml: OnceLock::new(),
            extras: extra_backends(&proc_root, sys_root),
            #[cfg(target_os = "linux")]
            own_host_pid: OnceLock::new(),
            config,
            proc_root,
        }
    }

    /// NVML, loaded on first use. `Err` says why it cannot be used.
    #[cfg(feature = "nvml")]
    fn nvml(&self) -> std::result::Result<&nvml::NvmlBackend, BackendAttempt> {
        if !self.config.use_nvml {
            return Err(BackendAttempt::new(
                GpuQuerySource::Nvml,
                "disabled by the caller",
            ));
        }
        self.nvml
            .get_or_init(|| nvml::NvmlBackend::load(self.config.nvml_lib.as_deref()))
            .as_ref()
            .map_err(|e| BackendAttempt::new(GpuQuerySource::Nvml, strip_backend_prefix(e)))
    }

    #[cfg(not(feature = "nvml"))]
    fn nvml(&self) -> std::result::Result<&NoNvml, BackendAttempt> {
        Err(BackendAttempt::new(
            GpuQuerySource::Nvml,
            "not compiled in (feature `nvml` is off)",
        ))
    }

    /// `nvidia-smi`, when the fallback is compiled in and enabled.
    #[cfg(feature = "nvidia-smi-fallback")]
    fn smi(&self) -> std::result::Result<&nvidia_smi::NvidiaSmi, BackendAttempt> {
        if self.config.use_nvidia_smi {
            Ok(&self.smi)
        } else {
            Err(BackendAttempt::new(
                GpuQuerySource::NvidiaSmi,
                "disabled by the caller",
            ))
        }
    }

    #[cfg(not(feature = "nvidia-smi-fallback"))]
    fn smi(&self) -> std::result::Result<&NoSmi, BackendAttempt> {
        let _ = (&self.config.nvidia_smi, self.config.nvidia_smi_timeout);
        Err(BackendAttempt::new(
            GpuQuerySource::NvidiaSmi,
            "not compiled in (feature `nvidia-smi-fallback` is off)",
        ))
    }

    /// NVIDIA's device count: NVML's, else `nvidia-smi`'s; `Err` lists why both failed.
    fn nvidia_count(&self) -> std::result::Result<u32, Vec<BackendAttempt>> {
        let nvml_attempt = match self.nvml() {
            Ok(nvml) => return Ok(nvml.device_count()),
            Err(attempt) => attempt,
        };
        match self.smi().and_then(smi_devices) {
            Ok(devices) => Ok(u32::try_from(devices.len()).unwrap_or(u32::MAX)),
            Err(smi_attempt) => Err(vec![nvml_attempt, smi_attempt]),
        }
    }

    /// NVIDIA's readable devices: NVML's, else `nvidia-smi`'s.
    fn nvidia_devices(&self) -> std::result::Result<Vec<GpuDeviceInfo>, Vec<BackendAttempt>> {
        let nvml_attempt = match self.nvml() {
            Ok(nvml) => {
                return Ok((0..nvml.device_count())
                    .filter_map(|index| self.device_from_nvml(nvml, index).ok())
                    .collect());
            }
            Err(attempt) => attempt,
        };
        self.smi()
            .and_then(smi_devices)
            .map_err(|smi_attempt| vec![nvml_attempt, smi_attempt])
    }

    /// Every other backend's devices, numbered from `first_index`, and why any failed.
    fn extra_devices(
        &self,
        nvidia: &[GpuDeviceInfo],
        first_index: u32,
        identities_only: bool,
    ) -> (Vec<GpuDeviceInfo>, Vec<BackendAttempt>) {
        let mut devices = Vec::new();
        let mut attempts = Vec::new();
        for backend in &self.extras {
            let found = if identities_only {
                backend.identities(nvidia)
            } else {
                backend.devices(nvidia)
            };
            match found {
                Ok(found) => devices.extend(found),
                Err(e) => attempts.push(BackendAttempt::new(
                    backend.source(),
                    strip_backend_prefix(&e),
                )),
            }
        }
        for (offset, device) in devices.iter_mut().enumerate() {
            device.index = first_index.saturating_add(u32::try_from(offset).unwrap_or(u32::MAX));
            device.refuse_impossible_memory();
        }
        (devices, attempts)
    }

    /// NVIDIA's devices (or why there are none), and every other backend's after them.
    fn listing(&self) -> Listing {
        self.listing_of(false)
    }

    /// As [`GpuBackends::listing`], the other backends' devices possibly from their caches
    /// ([`ExtraBackend::identities`]): to find devices again, not for their memory figures.
    fn identity_listing(&self) -> Listing {
        self.listing_of(true)
    }

    fn listing_of(&self, identities_only: bool) -> Listing {
        let nvidia = self.nvidia_devices();
        let nvidia_count = self.nvidia_count().unwrap_or(0);
        let (mut extra, extra_attempts) = match &nvidia {
            Ok(list) => self.extra_devices(list, nvidia_count, identities_only),
            Err(_) => self.extra_devices(&[], 0, identities_only),
        };
        // A card NVIDIA's backends should have read, when they are wanted but unusable: shown
        // with unknown memory and why, after the others, rather than not at all.
        if let Err(attempts) = &nvidia
            && (self.config.use_nvml || self.config.use_nvidia_smi)
        {
            let why = attempts
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            for backend in &self.extras {
                for mut device in backend.unclaimed_nvidia(&why) {
                    device.index = u32::try_from(extra.len()).unwrap_or(u32::MAX);
                    extra.push(device);
                }
            }
        }
        Listing {
            nvidia,
            nvidia_count,
            extra,
            extra_attempts,
        }
    }

    pub(crate) fn device_count(&self) -> Result<u32> {
        if self.extras.is_empty() {
            return self
                .nvidia_count()
                .map_err(|attempts| HypomnesisError::NoGpuSource { attempts });
        }
        let listing = self.listing();
        listing.check()?;
        let extra = u32::try_from(listing.extra.len()).unwrap_or(u32::MAX);
        Ok(listing.nvidia_count.saturating_add(extra))
    }

    pub(crate) fn devices(&self) -> Result<Vec<GpuDeviceInfo>> {
        if self.extras.is_empty() {
            return self
                .nvidia_devices()
                .map_err(|attempts| HypomnesisError::NoGpuSource { attempts });
        }
        let listing = self.listing();
        listing.check()?;
        let mut devices = listing.nvidia.unwrap_or_default();
        devices.extend(listing.extra);
        Ok(devices)
    }

    /// Device `index` to find it again: as [`GpuBackends::device_info`], but other backends'
    /// devices may come from their caches (memory figures possibly stale).
    fn identity(&self, index: u32) -> Result<GpuDeviceInfo> {
        if self.extras.is_empty() {
            return self.device_info(index);
        }
        if let Ok(nvml) = self.nvml()
            && index < nvml.device_count()
        {
            return self.device_info(index);
        }
        self.identity_listing().device(index)
    }

    pub(crate) fn device_info(&self, index: u32) -> Result<GpuDeviceInfo> {
        // NVIDIA devices come first; answering them needs no other backend (the hot path).
        if let Ok(nvml) = self.nvml()
            && index < nvml.device_count()
        {
            return self.device_from_nvml(nvml, index);
        }
        if self.extras.is_empty() {
            return match self.nvml() {
                Ok(nvml) => self.device_from_nvml(nvml, index),
                Err(nvml_attempt) => match self.smi().and_then(smi_devices) {
                    Ok(devices) => pick_device(devices, index),
                    Err(smi_attempt) => Err(HypomnesisError::NoGpuSource {
                        attempts: vec![nvml_attempt, smi_attempt],
                    }),
                },
            };
        }
        self.listing().device(index)
    }

    /// NVML's record for `index`; where NVML's memory figures are unusable (failed query,
    /// sentinel, `used > total`) and `nvidia-smi` can supply them, they are taken from it.
    #[cfg(feature = "nvml")]
    fn device_from_nvml(&self, nvml: &nvml::NvmlBackend, index: u32) -> Result<GpuDeviceInfo> {
        let mut info = nvml.device_info(index)?;
        if info.total_bytes.is_none()
            && !info.unified_memory
            && let Ok(smi) = self.smi()
            && let Ok(devices) = smi.devices()
            && let Some(from_smi) = devices.into_iter().find(|d| same_device(d, &info))
            && from_smi.total_bytes.is_some()
        {
            info.total_bytes = from_smi.total_bytes;
            info.free_bytes = from_smi.free_bytes;
            info.used_bytes = from_smi.used_bytes;
            info.reserved_bytes = from_smi.reserved_bytes;
            info.unavailable.retain(|u| {
                !matches!(
                    u.field,
                    DeviceField::TotalBytes
                        | DeviceField::FreeBytes
                        | DeviceField::UsedBytes
                        | DeviceField::ReservedBytes
                )
            });
            info.unavailable.extend(from_smi.unavailable);
            info.source = GpuQuerySource::NvidiaSmi;
        }
        info.refuse_impossible_memory();
        Ok(info)
    }

    #[cfg(not(feature = "nvml"))]
    fn device_from_nvml(&self, nvml: &NoNvml, _index: u32) -> Result<GpuDeviceInfo> {
        match *nvml {}
    }

    pub(crate) fn processes(&self, index: u32) -> Result<Vec<GpuProcessEntry>> {
        Ok(self.process_listing(index)?.rows)
    }

    /// The rows of `index`, named and with PIDs as the caller's namespace numbers them
    /// (NVML's host PIDs mapped through `NSpid`, see [`crate::pidns`]), and the counts of
    /// what could not be seen.
    pub(crate) fn process_listing(&self, index: u32) -> Result<GpuProcessListing> {
        let (mut listing, device) = self.processes_unnamed(index)?;
        listing.refuse_implausible_rows(device.as_ref());
        #[cfg(target_os = "linux")]
        {
            use crate::pidns::Placement;
            let mut view = crate::pidns::PidView::detect(&self.proc_root);
            // Where each row's process is, in this procfs; `None`: not visible.
            let mut procfs_pids: Vec<Option<u32>> = Vec::with_capacity(listing.rows.len());
            // The PID each row's backend reported, for asking NVML for a name.
            let driver_pids: Vec<u32> = listing.rows.iter().map(|r| r.pid).collect();
            for row in &mut listing.rows {
                let placement = match row.source {
                    GpuQuerySource::Nvml | GpuQuerySource::NvidiaSmi => view.host_pid(row.pid),
                    _ => view.procfs_pid(row.pid),
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
            let described = self.describe_all(&mut listing.rows, &procfs_pids);
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
                    row.name = self.driver_process_name(row.source, driver_pid);
                }
            }
            // SAFETY: geteuid takes no arguments, cannot fail and touches no memory of ours.
            listing.running_as_root = unsafe { libc::geteuid() } == 0;
        }
        #[cfg(not(target_os = "linux"))]
        for row in &mut listing.rows {
            match self.describe_process(row, row.pid) {
                Described::Named | Described::NotLooked => continue,
                Described::Absent => listing.absent_pids.push(row.pid),
                Described::Refused => listing.refused_pids.push(row.pid),
            }
            // As on Linux: the driver may name what the OS would not.
            if row.name.is_none() {
                row.name = self.driver_process_name(row.source, row.pid);
            }
        }
        listing.rows.sort_by_key(|r| r.pid);
        listing.absent_pids.sort_unstable();
        listing.refused_pids.sort_unstable();
        Ok(listing)
    }

    /// The name the driver has for process `pid` (its own numbering): NVML's
    /// `nvmlSystemGetProcessName`; `None` for other backends or when it does not know.
    fn driver_process_name(&self, source: GpuQuerySource, pid: u32) -> Option<String> {
        if !matches!(source, GpuQuerySource::Nvml | GpuQuerySource::NvidiaSmi) {
            return None;
        }
        #[cfg(feature = "nvml")]
        {
            self.nvml().ok()?.process_name(pid)
        }
        #[cfg(not(feature = "nvml"))]
        {
            let _ = pid;
            None
        }
    }

    /// Names `rows` (row `i` is process `procfs_pids[i]`, when visible), and says for each
    /// whether it could. Naming reads three files per process (about 20 µs on a VM), so a
    /// listing of hundreds of rows shares the work among a few threads, as the DRM scan does.
    #[cfg(target_os = "linux")]
    fn describe_all(
        &self,
        rows: &mut [GpuProcessEntry],
        procfs_pids: &[Option<u32>],
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
                    Some(pid) => self.describe_process(row, pid),
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

    /// The listing of device `index`, and the device's record when it could be read (for
    /// the plausibility of the rows' figures).
    fn processes_unnamed(&self, index: u32) -> Result<(GpuProcessListing, Option<GpuDeviceInfo>)> {
        let device = if self.extras.is_empty() {
            None
        } else {
            let device = self.device_info(index)?;
            if let Some(result) = self.extras.iter().find_map(|b| b.process_listing(&device)) {
                return result.map(|listing| (listing, Some(device)));
            }
            Some(device)
        };
        let (rows, from) = self.nvidia_processes(index)?;
        let mut listing = GpuProcessListing::from_rows(rows);
        listing.compute_only = from == GpuQuerySource::NvidiaSmi;
        let device = device.or_else(|| self.device_info(index).ok());
        Ok((listing, device))
    }

    /// NVIDIA's rows for `index`, and which backend listed them (`nvidia-smi` lists compute
    /// processes only).
    fn nvidia_processes(&self, index: u32) -> Result<(Vec<GpuProcessEntry>, GpuQuerySource)> {
        match self.nvml() {
            Ok(nvml) => self.processes_from_nvml(nvml, index),
            Err(nvml_attempt) => self
                .smi_processes(index)
                .map(|rows| (rows, GpuQuerySource::NvidiaSmi))
                .map_err(|smi_attempt| HypomnesisError::NoGpuSource {
                    attempts: vec![nvml_attempt, smi_attempt],
                }),
        }
    }

    /// NVML's process list for `index`. A refused or failed list is retried through
    /// `nvidia-smi`; rows whose memory NVML could not give (sentinel, `used > total`) get
    /// `nvidia-smi`'s figure when it has one.
    #[cfg(feature = "nvml")]
    fn processes_from_nvml(
        &self,
        nvml: &nvml::NvmlBackend,
        index: u32,
    ) -> Result<(Vec<GpuProcessEntry>, GpuQuerySource)> {
        match nvml.processes(index) {
            Ok(mut rows) => {
                // Per-process utilization samples since this probe's previous listing.
                nvml.fill_process_utilization(index, &mut rows);
                if rows.iter().any(|r| r.used_bytes.is_none())
                    && let Ok(from_smi) = self.smi_processes(index)
                {
                    let smi_used: std::collections::HashMap<u32, u64> = from_smi
                        .iter()
                        .filter_map(|s| Some((s.pid, s.used_bytes?)))
                        .collect();
                    for row in rows.iter_mut().filter(|r| r.used_bytes.is_none()) {
                        if let Some(&used) = smi_used.get(&row.pid) {
                            row.used_bytes = Some(used);
                            row.source = GpuQuerySource::NvidiaSmi;
                        }
                    }
                }
                Ok((rows, GpuQuerySource::Nvml))
            }
            Err(HypomnesisError::DeviceIndexOutOfRange { index, count }) => {
                Err(HypomnesisError::DeviceIndexOutOfRange { index, count })
            }
            Err(nvml_error) => self
                .smi_processes(index)
                .map(|rows| (rows, GpuQuerySource::NvidiaSmi))
                .map_err(|smi_attempt| HypomnesisError::NoGpuSource {
                    attempts: vec![
                        BackendAttempt::new(
                            GpuQuerySource::Nvml,
                            strip_backend_prefix(&nvml_error),
                        ),
                        smi_attempt,
                    ],
                }),
        }
    }

    #[cfg(not(feature = "nvml"))]
    fn processes_from_nvml(
        &self,
        nvml: &NoNvml,
        _index: u32,
    ) -> Result<(Vec<GpuProcessEntry>, GpuQuerySource)> {
        match *nvml {}
    }

    /// `nvidia-smi`'s rows for device `index`.
    fn smi_processes(
        &self,
        index: u32,
    ) -> std::result::Result<Vec<GpuProcessEntry>, BackendAttempt> {
        let smi = self.smi()?;
        let devices = smi_devices(smi)?;
        if !devices.iter().any(|d| d.index == index) {
            return Err(BackendAttempt::new(
                GpuQuerySource::NvidiaSmi,
                format!(
                    "device index {index} out of range (have {} devices)",
                    devices.len()
                ),
            ));
        }
        let rows = smi_call(smi.processes(&devices))?;
        Ok(rows
            .into_iter()
            .filter(|r| r.device_index == index)
            .collect())
    }

    pub(crate) fn telemetry(&self, index: u32) -> Result<DeviceTelemetry> {
        if let Ok(nvml) = self.nvml()
            && index < nvml.device_count()
        {
            return nvml.telemetry(index);
        }
        let device = self.identity(index)?;
        if let Some(result) = self.extras.iter().find_map(|b| b.telemetry(&device)) {
            return result;
        }
        let mut telemetry = DeviceTelemetry::empty(index, device.source);
        for field in [
            TelemetryField::GpuUtilizationPercent,
            TelemetryField::TemperatureCelsius,
            TelemetryField::PowerWatts,
        ] {
            telemetry.mark_unavailable(
                field,
                format!("no telemetry source for a {} device", device.source),
            );
        }
        Ok(telemetry)
    }

    /// Telemetry of every device, listing the devices once (rather than once per device, as
    /// [`GpuBackends::telemetry`] must for a single index). A device whose reading fails is
    /// left out; its error is returned in the second list.
    pub(crate) fn telemetry_all(&self) -> Result<(Vec<DeviceTelemetry>, Vec<HypomnesisError>)> {
        let devices = if self.extras.is_empty() {
            self.devices()?
        } else {
            let listing = self.identity_listing();
            listing.check()?;
            let mut devices = listing.nvidia.unwrap_or_default();
            devices.extend(listing.extra);
            devices
        };
        let mut readings = Vec::with_capacity(devices.len());
        let mut errors = Vec::new();
        for device in &devices {
            let reading = match self.nvml() {
                Ok(nvml) if device.source == GpuQuerySource::Nvml => nvml.telemetry(device.index),
                _ => match self.extras.iter().find_map(|b| b.telemetry(device)) {
                    Some(result) => result,
                    None => self.telemetry(device.index),
                },
            };
            match reading {
                Ok(t) => readings.push(t),
                Err(e) => errors.push(e),
            }
        }
        Ok((readings, errors))
    }

    /// Every device, with its telemetry and processes when `request` asks for them: the GPU
    /// part of a [`crate::Frame`]. `Err` only when no backend can list devices.
    pub(crate) fn frame(&self, request: crate::FrameRequest) -> Result<Vec<crate::DeviceFrame>> {
        let devices = self.devices()?;
        let mut frames: Vec<crate::DeviceFrame> =
            devices.into_iter().map(crate::DeviceFrame::new).collect();
        if request.telemetry {
            match self.telemetry_all() {
                Ok((readings, _)) => {
                    for frame in &mut frames {
                        let index = frame.device.index;
                        match readings.iter().find(|t| t.index == index) {
                            Some(t) => frame.telemetry = Some(t.clone()),
                            None => frame.telemetry_error = self.telemetry(index).err(),
                        }
                    }
                }
                Err(e) => frames
                    .iter_mut()
                    .for_each(|f| f.telemetry_error = Some(e.clone())),
            }
        }
        if request.processes {
            for frame in &mut frames {
                match self.process_listing(frame.device.index) {
                    Ok(listing) => frame.processes = Some(listing),
                    Err(e) => frame.processes_error = Some(e),
                }
            }
        }
        Ok(frames)
    }

    pub(crate) fn own_process(&self, index: u32, pid: u32) -> Result<ProcessGpuInfo> {
        if self.extras.is_empty() {
            return self.own_process_from_nvidia(index, pid);
        }
        self.own_process_on(&self.device_info(index)?, pid)
    }

    /// [`GpuBackends::own_process`] for a device already read (a snapshot has it), so the
    /// device is not queried twice.
    pub(crate) fn own_process_on(
        &self,
        device: &GpuDeviceInfo,
        pid: u32,
    ) -> Result<ProcessGpuInfo> {
        if let Some(result) = self.extras.iter().find_map(|b| b.own_process(device, pid)) {
            return result.and_then(|own| plausible_own(own, device, pid));
        }
        self.own_process_from_nvidia(device.index, pid)
    }

    fn own_process_from_nvidia(&self, index: u32, pid: u32) -> Result<ProcessGpuInfo> {
        match self.nvml() {
            Ok(nvml) => {
                let pid = self.nvml_pid(pid)?;
                // The common case needs no fallback: answer from NVML's list directly, so a
                // snapshot never spawns nvidia-smi because of some other process's sentinel.
                let own = match nvml.processes(index).map(|rows| own_row(&rows, index, pid)) {
                    Ok(Ok(own)) => own,
                    _ => own_row(&self.processes_from_nvml(nvml, index)?.0, index, pid)?,
                };
                match crate::snapshot::implausible_process_bytes(
                    own.upper_bound_bytes(),
                    nvml.cached_total(index),
                ) {
                    None => Ok(own),
                    Some(why) => Err(HypomnesisError::NoGpuSource {
                        attempts: vec![BackendAttempt::new(
                            GpuQuerySource::Nvml,
                            format!("reports an implausible figure for pid {pid}: {why}"),
                        )],
                    }),
                }
            }
            Err(nvml_attempt) => {
                // Without NVML only the device-wide figure is known: report it as an upper
                // bound and say so (`process_bytes: None`).
                let smi_result = self.smi().and_then(smi_devices);
                match smi_result {
                    Ok(devices) => {
                        let device = pick_device(devices, index)?;
                        match device.used_bytes {
                            Some(used) => Ok(ProcessGpuInfo::device_wide(
                                used,
                                index,
                                GpuQuerySource::NvidiaSmi,
                            )),
                            None => Err(HypomnesisError::NoGpuSource {
                                attempts: vec![
                                    nvml_attempt,
                                    BackendAttempt::new(
                                        GpuQuerySource::NvidiaSmi,
                                        "reports no memory figures for this device",
                                    ),
                                ],
                            }),
                        }
                    }
                    Err(smi_attempt) => Err(HypomnesisError::NoGpuSource {
                        attempts: vec![nvml_attempt, smi_attempt],
                    }),
                }
            }
        }
    }

    /// `pid` as NVML numbers it (the root PID namespace). Inside a container whose `/proc`
    /// cannot see the host's PIDs, the calling process's NVML PID is unknown: an error, so
    /// that it is never reported as holding 0 bytes by mistake.
    fn nvml_pid(&self, pid: u32) -> Result<u32> {
        #[cfg(target_os = "linux")]
        {
            if pid != std::process::id() {
                return Ok(pid);
            }
            let host_pid = *self
                .own_host_pid
                .get_or_init(|| crate::pidns::PidView::detect(&self.proc_root).own_host_pid(pid));
            host_pid.ok_or_else(|| HypomnesisError::NoGpuSource {
                attempts: vec![BackendAttempt::new(
                    GpuQuerySource::Nvml,
                    "reports host PIDs, and this process's host PID is not visible from its PID namespace (mount the host's /proc and set HYPOMNESIS_PROC_ROOT to it)",
                )],
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            Ok(pid)
        }
    }

    /// Name, user and command line from the OS, which knows them better than the driver;
    /// `procfs_pid` is the process's number in the procfs (its host PID when the caller reads
    /// a host `/proc` from a container).
    fn describe_process(&self, row: &mut GpuProcessEntry, procfs_pid: u32) -> Described {
        #[cfg(target_os = "linux")]
        {
            use crate::process_info::linux::{process_command, process_user};
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
            Described::Named
        }
        #[cfg(windows)]
        {
            use crate::ram::windows::{ImageName, image_name, resolve_name, snapshot_names};
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
        #[cfg(not(any(target_os = "linux", windows)))]
        {
            let _ = (row, procfs_pid);
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

/// The backends besides NVIDIA's for this platform, in the order their devices are numbered.
#[allow(clippy::vec_init_then_push)] // one push per platform, each behind its own cfg
fn extra_backends(
    proc_root: &std::path::Path,
    sys_root: &std::path::Path,
) -> Vec<Box<dyn ExtraBackend>> {
    let _ = (proc_root, sys_root);
    #[allow(unused_mut)]
    let mut backends: Vec<Box<dyn ExtraBackend>> = Vec::new();
    #[cfg(target_os = "linux")]
    backends.push(Box::new(drm::DrmBackend::new(proc_root, sys_root)));
    #[cfg(all(windows, feature = "dxgi"))]
    backends.push(Box::new(dxgi::DxgiBackend::new()));
    #[cfg(all(target_os = "macos", feature = "metal"))]
    backends.push(Box::new(metal::MetalBackend::new()));
    backends
}

/// The calling process's row, or 0 bytes when the complete list does not contain it (the
/// process holds no context on the device — a measurement, not a guess). A row whose
/// figure the driver would not give is an error, never 0.
fn own_row(rows: &[GpuProcessEntry], index: u32, pid: u32) -> Result<ProcessGpuInfo> {
    let Some(row) = rows.iter().find(|r| r.pid == pid) else {
        return Ok(ProcessGpuInfo::own(0, index, GpuQuerySource::Nvml));
    };
    match row.used_bytes {
        Some(used_bytes) => Ok(ProcessGpuInfo::own(used_bytes, index, row.source)),
        None => Err(HypomnesisError::NoGpuSource {
            attempts: vec![BackendAttempt::new(
                row.source,
                format!("lists pid {pid} on device {index} but reports no figure for its memory"),
            )],
        }),
    }
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

fn pick_device(devices: Vec<GpuDeviceInfo>, index: u32) -> Result<GpuDeviceInfo> {
    let count = u32::try_from(devices.len()).unwrap_or(u32::MAX);
    devices
        .into_iter()
        .find(|d| d.index == index)
        .ok_or(HypomnesisError::DeviceIndexOutOfRange { index, count })
}

/// Whether two records describe the same physical GPU (by UUID, then PCI bus id, then index).
#[cfg(feature = "nvml")]
fn same_device(a: &GpuDeviceInfo, b: &GpuDeviceInfo) -> bool {
    match (&a.uuid, &b.uuid) {
        (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
        _ => match (&a.pci_bus_id, &b.pci_bus_id) {
            (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
            _ => a.index == b.index,
        },
    }
}

#[cfg(feature = "nvidia-smi-fallback")]
fn smi_devices(
    smi: &nvidia_smi::NvidiaSmi,
) -> std::result::Result<Vec<GpuDeviceInfo>, BackendAttempt> {
    let mut devices = smi_call(smi.devices())?;
    devices
        .iter_mut()
        .for_each(GpuDeviceInfo::refuse_impossible_memory);
    Ok(devices)
}

#[cfg(not(feature = "nvidia-smi-fallback"))]
fn smi_devices(smi: &NoSmi) -> std::result::Result<Vec<GpuDeviceInfo>, BackendAttempt> {
    match *smi {}
}

fn smi_call<T>(result: Result<T>) -> std::result::Result<T, BackendAttempt> {
    result.map_err(|e| BackendAttempt::new(GpuQuerySource::NvidiaSmi, strip_backend_prefix(&e)))
}

/// An error's text without the `"NVML: "` / `"nvidia-smi: "` prefix, which the attempt list
/// already names.
fn strip_backend_prefix(error: &HypomnesisError) -> String {
    let text = error.to_string();
    for prefix in ["NVML: ", "nvidia-smi: "] {
        if let Some(rest) = text.strip_prefix(prefix) {
            return rest.to_owned();
        }
    }
    text
}

/// Stands in for NVML when the feature is off; has no values, so its methods never run.
#[cfg(not(feature = "nvml"))]
#[derive(Debug)]
enum NoNvml {}

#[cfg(not(feature = "nvml"))]
impl NoNvml {
    fn device_count(&self) -> u32 {
        match *self {}
    }

    fn processes(&self, _index: u32) -> Result<Vec<GpuProcessEntry>> {
        match *self {}
    }

    fn telemetry(&self, _index: u32) -> Result<DeviceTelemetry> {
        match *self {}
    }

    fn cached_total(&self, _index: u32) -> Option<u64> {
        match *self {}
    }
}

/// Stands in for `nvidia-smi` when the feature is off; has no values, so its methods never
/// run.
#[cfg(not(feature = "nvidia-smi-fallback"))]
#[derive(Debug)]
enum NoSmi {}

#[cfg(not(feature = "nvidia-smi-fallback"))]
impl NoSmi {
    #[cfg_attr(not(feature = "nvml"), allow(dead_code))] // asked only to patch NVML's figures
    fn devices(&self) -> Result<Vec<GpuDeviceInfo>> {
        match *self {}
    }

    fn processes(&self, _devices: &[GpuDeviceInfo]) -> Result<Vec<GpuProcessEntry>> {
        match *self {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pid: u32, used: Option<u64>) -> GpuProcessEntry {
        let mut row = GpuProcessEntry::new(pid, 0, GpuQuerySource::Nvml);
        row.used_bytes = used;
        row
    }

    #[test]
    fn own_row_is_found_by_pid() {
        let rows = [row(10, Some(5)), row(42, Some(7 << 20))];
        let own = own_row(&rows, 0, 42).unwrap();
        assert_eq!(own.process_bytes, Some(7 << 20));
    }

    #[test]
    fn a_process_missing_from_a_complete_list_holds_zero_bytes() {
        let own = own_row(&[row(10, Some(5))], 0, 42).unwrap();
        assert_eq!(own.process_bytes, Some(0));
    }

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

    #[test]
    fn a_listed_process_without_a_figure_is_an_error_not_zero() {
        assert!(own_row(&[row(42, None)], 0, 42).is_err());
    }
}

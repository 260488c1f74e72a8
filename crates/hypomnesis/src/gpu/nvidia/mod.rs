//! NVIDIA GPUs: NVML, and `nvidia-smi` where NVML cannot answer.
//!
//! NVML (loaded once, lazily, at run time) is the source; `nvidia-smi` is its fallback, in
//! two ways. When NVML cannot be used at all — library missing, driver not loaded, version
//! mismatch — `nvidia-smi` lists the devices instead (the dispatcher's order has both for the
//! same cards, NVML first). When NVML works but one answer is unusable (a refused process
//! list, the `u64::MAX` "not available" sentinel, `used > total`), `nvidia-smi` is asked for
//! that answer only, here: device figures, per-row figures and refused lists are patched from
//! it. Its two queries run at most once per [`Pass`], whoever asks (both backends share them).

use std::path::Path;
#[cfg(feature = "nvidia-smi-fallback")]
use std::sync::Arc;

use super::{Absent, Backend, GpuConfig};
#[cfg(any(feature = "nvml", feature = "nvidia-smi-fallback"))]
use super::{Devices, Listed, Pass};
#[cfg(any(feature = "nvml", feature = "nvidia-smi-fallback"))]
use crate::error::{BackendAttempt, HypomnesisError, Result};
#[cfg(any(feature = "nvml", feature = "nvidia-smi-fallback"))]
use crate::snapshot::{
    GpuDeviceInfo, GpuProcessEntry, GpuProcessListing, GpuQuerySource, ProcessGpuInfo,
};
#[cfg(feature = "nvml")]
use crate::telemetry::DeviceTelemetry;

#[cfg(feature = "nvml")]
pub(crate) mod nvml;
#[cfg(feature = "nvml")]
pub(crate) mod nvml_strings;
#[cfg(feature = "nvidia-smi-fallback")]
pub(crate) mod smi;

use crate::snapshot::GpuQuerySource as Source;

/// Why NVML is not among the backends, when it is not.
#[cfg(not(feature = "nvml"))]
const NVML_NOT_COMPILED: &str = "not compiled in (feature `nvml` is off)";
/// Why `nvidia-smi` is not among the backends, when it is not.
#[cfg(not(feature = "nvidia-smi-fallback"))]
const SMI_NOT_COMPILED: &str = "not compiled in (feature `nvidia-smi-fallback` is off)";
#[cfg(any(feature = "nvml", feature = "nvidia-smi-fallback"))]
const DISABLED: &str = "disabled by the caller";

/// NVIDIA's backends for `config`, and why any of NVML and `nvidia-smi` is not among them.
pub(crate) fn backends(
    config: &GpuConfig,
    proc_root: &Path,
    backends: &mut Vec<Box<dyn Backend>>,
    absent: &mut Vec<Absent>,
) {
    let _ = proc_root;
    let mut missing = |source, reason, by_caller| {
        absent.push(Absent {
            source,
            reason,
            by_caller,
        });
    };
    #[cfg(feature = "nvidia-smi-fallback")]
    let smi = if config.use_nvidia_smi {
        Ok(Arc::new(Smi::new(
            config.nvidia_smi.clone(),
            config.nvidia_smi_timeout,
        )))
    } else {
        Err(DISABLED)
    };
    #[cfg(feature = "nvml")]
    if config.use_nvml {
        backends.push(Box::new(Nvml::new(
            config,
            proc_root,
            #[cfg(feature = "nvidia-smi-fallback")]
            smi.clone(),
        )));
    } else {
        missing(Source::Nvml, DISABLED, true);
    }
    #[cfg(not(feature = "nvml"))]
    missing(Source::Nvml, NVML_NOT_COMPILED, false);
    #[cfg(feature = "nvidia-smi-fallback")]
    match smi {
        Ok(smi) => backends.push(Box::new(SmiBackend(smi))),
        Err(reason) => missing(Source::NvidiaSmi, reason, true),
    }
    #[cfg(not(feature = "nvidia-smi-fallback"))]
    {
        let _ = (&config.nvidia_smi, config.nvidia_smi_timeout, &backends);
        missing(Source::NvidiaSmi, SMI_NOT_COMPILED, false);
    }
}

// ---------------------------------------------------------------------------------------------
// nvidia-smi

/// `nvidia-smi`'s devices in this pass, impossible figures refused; `Err`: why it failed.
#[cfg(feature = "nvidia-smi-fallback")]
struct SmiDevices(std::result::Result<Vec<GpuDeviceInfo>, String>);

/// `nvidia-smi`'s process rows (every device's) in this pass; `Err`: why it failed.
#[cfg(feature = "nvidia-smi-fallback")]
struct SmiProcesses(std::result::Result<Vec<GpuProcessEntry>, String>);

/// `nvidia-smi`, run at most once per query and pass.
#[cfg(feature = "nvidia-smi-fallback")]
#[derive(Debug)]
pub(crate) struct Smi {
    run: smi::NvidiaSmi,
}

#[cfg(feature = "nvidia-smi-fallback")]
impl Smi {
    fn new(path: std::path::PathBuf, timeout: std::time::Duration) -> Self {
        Self {
            run: smi::NvidiaSmi::new(path, timeout),
        }
    }

    /// Every device `nvidia-smi` lists (`--query-gpu`, once per pass).
    fn devices(&self, pass: &Pass) -> Arc<SmiDevices> {
        pass.memo(|| {
            SmiDevices(
                self.run
                    .devices()
                    .map(|mut devices| {
                        devices
                            .iter_mut()
                            .for_each(GpuDeviceInfo::refuse_impossible_memory);
                        devices
                    })
                    .map_err(|e| e.backend_reason()),
            )
        })
    }

    /// `nvidia-smi`'s rows of device `index` (`--query-compute-apps`, once per pass).
    fn rows(&self, pass: &Pass, index: u32) -> std::result::Result<Vec<GpuProcessEntry>, String> {
        let devices = self.devices(pass);
        let devices = devices.0.as_ref().map_err(Clone::clone)?;
        if !devices.iter().any(|d| d.index == index) {
            return Err(format!(
                "device index {index} out of range (have {} devices)",
                devices.len()
            ));
        }
        let all =
            pass.memo(|| SmiProcesses(self.run.processes(devices).map_err(|e| e.backend_reason())));
        Ok(all
            .0
            .as_ref()
            .map_err(Clone::clone)?
            .iter()
            .filter(|r| r.device_index == index)
            .cloned()
            .collect())
    }
}

/// `nvidia-smi` as a backend: NVIDIA's devices when NVML cannot be used.
#[cfg(feature = "nvidia-smi-fallback")]
#[derive(Debug)]
struct SmiBackend(Arc<Smi>);

#[cfg(feature = "nvidia-smi-fallback")]
fn smi_error(why: String) -> HypomnesisError {
    HypomnesisError::NoGpuSource {
        attempts: vec![BackendAttempt::new(Source::NvidiaSmi, why)],
    }
}

#[cfg(feature = "nvidia-smi-fallback")]
impl Backend for SmiBackend {
    fn source(&self) -> GpuQuerySource {
        Source::NvidiaSmi
    }

    fn devices(&self, pass: &Pass, claimed: &[GpuDeviceInfo]) -> Result<Devices, String> {
        let _ = claimed;
        let devices = self.0.devices(pass).0.clone()?;
        Ok(Devices {
            slots: u32::try_from(devices.len()).unwrap_or(u32::MAX),
            list: devices,
        })
    }

    /// `nvidia-smi` lists compute processes only, and says so (`compute_only`).
    fn process_listing(&self, pass: &Pass, device: &Listed) -> Option<Result<GpuProcessListing>> {
        Some(
            self.0
                .rows(pass, device.local)
                .map(|rows| {
                    let mut listing = GpuProcessListing::from_rows(rows);
                    listing.compute_only = true;
                    listing
                })
                .map_err(smi_error),
        )
    }

    /// Without NVML only the device-wide figure is known: reported as an upper bound and
    /// said so (`process_bytes: None`).
    fn own_process(
        &self,
        pass: &Pass,
        device: &Listed,
        pid: u32,
    ) -> Option<Result<ProcessGpuInfo>> {
        let _ = (pass, pid);
        Some(match device.info.used_bytes {
            Some(used) => Ok(ProcessGpuInfo::device_wide(
                used,
                device.info.index,
                Source::NvidiaSmi,
            )),
            None => Err(smi_error(
                "reports no memory figures for this device".to_owned(),
            )),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// NVML

/// NVML as a backend, patching its unusable answers from `nvidia-smi`.
#[cfg(feature = "nvml")]
#[derive(Debug)]
pub(crate) struct Nvml {
    lib: Option<std::path::PathBuf>,
    /// NVML, loaded on first use; `Err` says why it cannot be used.
    loaded: std::sync::OnceLock<Result<nvml::NvmlBackend>>,
    /// `nvidia-smi`, for the answers NVML could not give; `Err`: why it cannot be asked.
    #[cfg(feature = "nvidia-smi-fallback")]
    smi: std::result::Result<Arc<Smi>, &'static str>,
    #[cfg(target_os = "linux")]
    proc_root: std::path::PathBuf,
    /// The calling process's PID in the root namespace, once known (Linux).
    #[cfg(target_os = "linux")]
    own_host_pid: std::sync::OnceLock<Option<u32>>,
}

#[cfg(feature = "nvml")]
impl Nvml {
    fn new(
        config: &GpuConfig,
        proc_root: &Path,
        #[cfg(feature = "nvidia-smi-fallback")] smi: std::result::Result<Arc<Smi>, &'static str>,
    ) -> Self {
        let _ = proc_root;
        Self {
            lib: config.nvml_lib.clone(),
            loaded: std::sync::OnceLock::new(),
            #[cfg(feature = "nvidia-smi-fallback")]
            smi,
            #[cfg(target_os = "linux")]
            proc_root: proc_root.to_owned(),
            #[cfg(target_os = "linux")]
            own_host_pid: std::sync::OnceLock::new(),
        }
    }

    fn nvml(&self) -> std::result::Result<&nvml::NvmlBackend, String> {
        self.loaded
            .get_or_init(|| nvml::NvmlBackend::load(self.lib.as_deref()))
            .as_ref()
            .map_err(HypomnesisError::backend_reason)
    }

    fn nvml_or_error(&self) -> Result<&nvml::NvmlBackend> {
        self.nvml().map_err(|why| HypomnesisError::NoGpuSource {
            attempts: vec![BackendAttempt::new(Source::Nvml, why)],
        })
    }

    /// `nvidia-smi`'s devices, when it can be asked.
    fn smi_devices(&self, pass: &Pass) -> Option<Vec<GpuDeviceInfo>> {
        #[cfg(feature = "nvidia-smi-fallback")]
        {
            self.smi.as_ref().ok()?.devices(pass).0.clone().ok()
        }
        #[cfg(not(feature = "nvidia-smi-fallback"))]
        {
            let _ = pass;
            None
        }
    }

    /// `nvidia-smi`'s rows of device `index`, or why it could not give them.
    fn smi_rows(
        &self,
        pass: &Pass,
        index: u32,
    ) -> std::result::Result<Vec<GpuProcessEntry>, BackendAttempt> {
        #[cfg(feature = "nvidia-smi-fallback")]
        {
            let smi = self
                .smi
                .as_ref()
                .map_err(|why| BackendAttempt::new(Source::NvidiaSmi, *why))?;
            smi.rows(pass, index)
                .map_err(|why| BackendAttempt::new(Source::NvidiaSmi, why))
        }
        #[cfg(not(feature = "nvidia-smi-fallback"))]
        {
            let _ = (pass, index);
            Err(BackendAttempt::new(Source::NvidiaSmi, SMI_NOT_COMPILED))
        }
    }

    /// NVML's record for `index`; where NVML's memory figures are unusable (failed query,
    /// sentinel, `used > total`) and `nvidia-smi` can supply them, they are taken from it.
    fn device_from_nvml(
        &self,
        pass: &Pass,
        nvml: &nvml::NvmlBackend,
        index: u32,
    ) -> Result<GpuDeviceInfo> {
        let mut info = nvml.device_info(index)?;
        if info.total_bytes.is_none()
            && !info.unified_memory
            && let Some(devices) = self.smi_devices(pass)
            && let Some(from_smi) = devices.into_iter().find(|d| same_device(d, &info))
            && from_smi.total_bytes.is_some()
        {
            info.total_bytes = from_smi.total_bytes;
            info.free_bytes = from_smi.free_bytes;
            info.used_bytes = from_smi.used_bytes;
            info.reserved_bytes = from_smi.reserved_bytes;
            info.unavailable
                .retain(|u| !crate::unavailable::DeviceField::MEMORY.contains(&u.field));
            info.unavailable.extend(from_smi.unavailable);
            info.source = Source::NvidiaSmi;
        }
        info.refuse_impossible_memory();
        Ok(info)
    }

    /// NVML's process list for `index`. A refused or failed list is retried through
    /// `nvidia-smi`; rows whose memory NVML could not give (sentinel, `used > total`) get
    /// `nvidia-smi`'s figure when it has one. Also says which backend listed the rows
    /// (`nvidia-smi` lists compute processes only).
    fn processes_from_nvml(
        &self,
        pass: &Pass,
        nvml: &nvml::NvmlBackend,
        index: u32,
    ) -> Result<(Vec<GpuProcessEntry>, GpuQuerySource)> {
        match nvml.processes(index) {
            Ok(mut rows) => {
                // Per-process utilization samples since this probe's previous listing.
                nvml.fill_process_utilization(index, &mut rows);
                if rows.iter().any(|r| r.used_bytes.is_none())
                    && let Ok(from_smi) = self.smi_rows(pass, index)
                {
                    let smi_used: std::collections::HashMap<u32, u64> = from_smi
                        .iter()
                        .filter_map(|s| Some((s.pid, s.used_bytes?)))
                        .collect();
                    for row in rows.iter_mut().filter(|r| r.used_bytes.is_none()) {
                        if let Some(&used) = smi_used.get(&row.pid) {
                            row.used_bytes = Some(used);
                            row.source = Source::NvidiaSmi;
                        }
                    }
                }
                Ok((rows, Source::Nvml))
            }
            Err(HypomnesisError::DeviceIndexOutOfRange { index, count }) => {
                Err(HypomnesisError::DeviceIndexOutOfRange { index, count })
            }
            Err(nvml_error) => self
                .smi_rows(pass, index)
                .map(|rows| (rows, Source::NvidiaSmi))
                .map_err(|smi_attempt| HypomnesisError::NoGpuSource {
                    attempts: vec![
                        BackendAttempt::new(Source::Nvml, nvml_error.backend_reason()),
                        smi_attempt,
                    ],
                }),
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
                    Source::Nvml,
                    "reports host PIDs, and this process's host PID is not visible from its PID namespace (mount the host's /proc and set HYPOMNESIS_PROC_ROOT to it)",
                )],
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            Ok(pid)
        }
    }
}

#[cfg(feature = "nvml")]
impl Backend for Nvml {
    fn source(&self) -> GpuQuerySource {
        Source::Nvml
    }

    /// NVIDIA's readable devices; the count includes those that could not be read.
    fn devices(&self, pass: &Pass, claimed: &[GpuDeviceInfo]) -> Result<Devices, String> {
        let _ = claimed;
        let nvml = self.nvml()?;
        Ok(Devices {
            list: (0..nvml.device_count())
                .filter_map(|index| self.device_from_nvml(pass, nvml, index).ok())
                .collect(),
            slots: nvml.device_count(),
        })
    }

    fn count(&self, pass: &Pass) -> Result<u32, String> {
        let _ = pass;
        Ok(self.nvml()?.device_count())
    }

    fn device(&self, pass: &Pass, local: u32) -> Result<GpuDeviceInfo> {
        self.device_from_nvml(pass, self.nvml_or_error()?, local)
    }

    /// NVML's record alone: finding a device for telemetry never runs `nvidia-smi`.
    fn identity(&self, pass: &Pass, local: u32) -> Result<GpuDeviceInfo> {
        let _ = pass;
        self.nvml_or_error()?.device_info(local)
    }

    fn process_listing(&self, pass: &Pass, device: &Listed) -> Option<Result<GpuProcessListing>> {
        let nvml = match self.nvml_or_error() {
            Ok(nvml) => nvml,
            Err(e) => return Some(Err(e)),
        };
        Some(
            self.processes_from_nvml(pass, nvml, device.local)
                .map(|(rows, from)| {
                    let mut listing = GpuProcessListing::from_rows(rows);
                    listing.compute_only = from == Source::NvidiaSmi;
                    listing
                }),
        )
    }

    fn own_process(
        &self,
        pass: &Pass,
        device: &Listed,
        pid: u32,
    ) -> Option<Result<ProcessGpuInfo>> {
        Some((|| {
            let nvml = self.nvml_or_error()?;
            let pid = self.nvml_pid(pid)?;
            let (local, index) = (device.local, device.info.index);
            // The common case needs no fallback: answer from NVML's list directly, so a
            // snapshot never spawns nvidia-smi because of some other process's sentinel.
            let own = match nvml.processes(local).map(|rows| own_row(&rows, index, pid)) {
                Ok(Ok(own)) => own,
                _ => own_row(&self.processes_from_nvml(pass, nvml, local)?.0, index, pid)?,
            };
            match crate::snapshot::implausible_process_bytes(
                own.upper_bound_bytes(),
                nvml.cached_total(local),
            ) {
                None => Ok(own),
                Some(why) => Err(HypomnesisError::NoGpuSource {
                    attempts: vec![BackendAttempt::new(
                        Source::Nvml,
                        format!("reports an implausible figure for pid {pid}: {why}"),
                    )],
                }),
            }
        })())
    }

    fn telemetry(&self, pass: &Pass, device: &Listed) -> Option<Result<DeviceTelemetry>> {
        let _ = pass;
        Some(
            self.nvml_or_error()
                .and_then(|nvml| nvml.telemetry(device.local)),
        )
    }

    /// `nvmlSystemGetProcessName`, for rows NVML or `nvidia-smi` listed (host PIDs).
    fn process_name(&self, source: GpuQuerySource, pid: u32) -> Option<String> {
        if !matches!(source, Source::Nvml | Source::NvidiaSmi) {
            return None;
        }
        self.nvml().ok()?.process_name(pid)
    }
}

/// The calling process's row, or 0 bytes when the complete list does not contain it (the
/// process holds no context on the device — a measurement, not a guess). A row whose
/// figure the driver would not give is an error, never 0.
#[cfg(feature = "nvml")]
fn own_row(rows: &[GpuProcessEntry], index: u32, pid: u32) -> Result<ProcessGpuInfo> {
    let Some(row) = rows.iter().find(|r| r.pid == pid) else {
        return Ok(ProcessGpuInfo::own(0, index, Source::Nvml));
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

#[cfg(all(test, feature = "nvml"))]
mod tests {
    use super::*;

    fn row(pid: u32, used: Option<u64>) -> GpuProcessEntry {
        let mut row = GpuProcessEntry::new(pid, 0, Source::Nvml);
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
    fn a_listed_process_without_a_figure_is_an_error_not_zero() {
        assert!(own_row(&[row(42, None)], 0, 42).is_err());
    }
}

//! NVIDIA GPUs through NVML, the library `nvidia-smi` itself is built on.
//!
//! NVML is loaded at run time through `nvml-wrapper` (so a binary starts on machines without
//! it) and initialised once per [`crate::Probe`]; device handles and the facts that never
//! change (name, UUID, PCI bus id, driver version, total memory) are read once at load. A
//! snapshot then costs one memory query and two process-list queries.
//!
//! The driver has known traps, each handled here and tested against the NVML double:
//! - memory comes from `nvmlDeviceGetMemoryInfo_v2` (version constant `0x02000028`), whose
//!   `used` excludes the driver's reserved memory, as `nvidia-smi` shows it; drivers before
//!   R510 lack the symbol, so `nvmlDeviceGetMemoryInfo` (v1) is used and `reserved` is `None`;
//! - unified-memory devices (GB10) answer NOT_SUPPORTED to both memory calls: reported as
//!   unified, not as 0 bytes (a driver that refuses only v2 is asked v1 first);
//! - impossible figures (`u64::MAX` "not available", parts past the total, a process larger
//!   than its device) are dropped with a reason by the library's one rule
//!   (`snapshot::impossible_memory`, `snapshot::implausible_process_bytes`), never shown;
//! - process lists are read with the documented size-then-data protocol, retried while the
//!   count grows between the two calls (nvml-wrapper allows +5 headroom and gives up), and the
//!   compute and graphics lists are merged per pid.
//!
//! `nvml-wrapper` is used for loading, init/shutdown and the simple getters; its raw `lib()`
//! only where it lacks something (the v1 memory fallback, the retrying process lists and the
//! incremental per-process utilization) or cannot be trusted (strings, see `nvml_strings`).
//!
//! Telemetry (utilization, temperature, power, clocks, fan, PCIe link) is one getter per
//! figure; each that fails leaves its figure `None` with NVML's reason. A GPU that answers
//! GPU_IS_LOST to the first of them fails the whole reading, so a watcher reports it and goes
//! on with the others. Per-process utilization comes from `nvmlDeviceGetProcessUtilization`,
//! which returns the samples newer than a timestamp: the backend keeps the newest timestamp it
//! saw per device, so each reading covers the time since the previous one.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString, c_uint};
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::error::NvmlError;
use nvml_wrapper_sys::bindings::{
    nvmlDevice_t, nvmlMemory_t, nvmlProcessInfo_t, nvmlProcessUtilizationSample_t, nvmlReturn_t,
};

use super::nvml_strings;
use crate::error::{HypomnesisError, Result, error_chain};
use crate::snapshot::{
    GpuDeviceInfo, GpuProcessEntry, GpuProcessKind, GpuQuerySource, GpuVendor, MigInstance,
};
use crate::telemetry::DeviceTelemetry;
use crate::unavailable::{DeviceField, TelemetryField};

const NVML_SUCCESS: nvmlReturn_t = 0;
const NVML_ERROR_NOT_SUPPORTED: nvmlReturn_t = 3;
const NVML_ERROR_NOT_FOUND: nvmlReturn_t = 6;
const NVML_ERROR_INSUFFICIENT_SIZE: nvmlReturn_t = 7;
const NVML_ERROR_ARGUMENT_VERSION_MISMATCH: nvmlReturn_t = 25;
/// `NVML_VALUE_NOT_AVAILABLE`, `(unsigned long long)-1`.
const VALUE_NOT_AVAILABLE: u64 = u64::MAX;
/// How many times a process list is re-read while its count keeps growing.
const PROCESS_LIST_ATTEMPTS: usize = 8;
/// No real device runs more processes than this; a larger count is garbage.
const MAX_PROCESSES: c_uint = 1 << 16;

/// The library name the loader searches for when no path is given.
#[cfg(windows)]
const DEFAULT_LIB: &str = "nvml.dll";
#[cfg(not(windows))]
const DEFAULT_LIB: &str = "libnvidia-ml.so.1";

/// Where Windows drivers put `nvml.dll`, in the order NVIDIA's own Python binding tries
/// them: `%WINDIR%\System32` (DCH drivers, the norm since 2019), then `%ProgramFiles%\NVIDIA
/// Corporation\NVSMI` (older drivers), then the bare name through the loader's search path.
#[cfg_attr(not(windows), allow(dead_code))]
fn windows_candidates(windir: Option<OsString>, program_files: Option<OsString>) -> Vec<OsString> {
    let mut candidates = Vec::with_capacity(3);
    if let Some(mut path) = windir.filter(|d| !d.is_empty()) {
        path.push("\\System32\\nvml.dll");
        candidates.push(path);
    }
    if let Some(mut path) = program_files.filter(|d| !d.is_empty()) {
        path.push("\\NVIDIA Corporation\\NVSMI\\nvml.dll");
        candidates.push(path);
    }
    candidates.push(OsString::from(DEFAULT_LIB));
    candidates
}

/// The libraries to try, in order, when no path is given.
fn default_libs() -> Vec<OsString> {
    #[cfg(windows)]
    {
        windows_candidates(
            std::env::var_os("WINDIR").or_else(|| std::env::var_os("SystemRoot")),
            std::env::var_os("ProgramFiles"),
        )
    }
    #[cfg(not(windows))]
    {
        vec![OsString::from(DEFAULT_LIB)]
    }
}

/// Loads and initialises the first of `candidates` that loads. A library that loads but
/// fails to initialise (driver not loaded, version mismatch) is the answer: later candidates
/// would only be older copies of the same driver's library.
fn load_first(candidates: &[OsString]) -> Result<Nvml> {
    let mut failures = Vec::new();
    for lib_path in candidates {
        match Nvml::builder().lib_path(lib_path).init() {
            Ok(nvml) => return Ok(nvml),
            Err(e @ NvmlError::LibloadingError(_)) if candidates.len() > 1 => {
                failures.push(load_error(lib_path, &e));
            }
            Err(e) => return Err(load_error(lib_path, &e)),
        }
    }
    Err(HypomnesisError::Nvml {
        call: "load",
        code: None,
        detail: failures
            .iter()
            .map(|f| match f {
                HypomnesisError::Nvml { detail, .. } => detail.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join("; "),
    })
}

/// An NVML device handle. NVML handles are opaque pointers owned by the library, valid until
/// `nvmlShutdown`, which only happens when the owning [`NvmlBackend`] drops.
#[derive(Debug, Clone, Copy)]
struct RawHandle(nvmlDevice_t);

// SAFETY: a handle is an opaque token that NVML accepts from any thread; nvml.h documents
// every NVML entry point as thread-safe. The handle is never dereferenced by this crate.
unsafe impl Send for RawHandle {}
// SAFETY: as above; sharing the token between threads only lets them pass it to NVML.
unsafe impl Sync for RawHandle {}

/// What is known about one device from the moment NVML was loaded.
#[derive(Debug)]
struct CachedDevice {
    handle: Result<RawHandle>,
    name: Option<String>,
    uuid: Option<String>,
    pci_bus_id: Option<String>,
    /// Total memory, for sanity-checking per-process figures. `None` when unknown.
    total_bytes: Option<u64>,
    /// MIG mode at load (`None`: not supported, or unknown). Utilization is not available on
    /// a MIG-enabled parent device.
    mig_enabled: Option<bool>,
}

/// A loaded and initialised NVML, with its devices.
pub(crate) struct NvmlBackend {
    devices: Vec<CachedDevice>,
    driver_version: Option<String>,
    cuda_driver_version: Option<String>,
    /// Per device, the newest process-utilization sample timestamp seen (CPU µs; 0 before
    /// the first reading, which asks NVML for every buffered sample).
    last_sample_us: Mutex<Vec<u64>>,
    /// Declared last so that it drops (and shuts NVML down) after everything else.
    nvml: Nvml,
}

impl std::fmt::Debug for NvmlBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlBackend")
            .field("devices", &self.devices)
            .field("driver_version", &self.driver_version)
            .finish_non_exhaustive()
    }
}

impl NvmlBackend {
    /// Loads NVML from `lib` (or the platform default), initialises it and reads every
    /// device's identity.
    pub(crate) fn load(lib: Option<&Path>) -> Result<Self> {
        let candidates = lib.map_or_else(default_libs, |p| vec![p.as_os_str().to_owned()]);
        let nvml = load_first(&candidates)?;
        let count = nvml
            .device_count()
            .map_err(|e| call_error("nvmlDeviceGetCount_v2", &e))?;
        let driver_version = nvml_strings::driver_version(&nvml);
        let cuda_driver_version = nvml.sys_cuda_driver_version().ok().map(format_cuda_version);
        let devices: Vec<CachedDevice> = (0..count.min(MAX_PROCESSES))
            .map(|index| cache_device(&nvml, index))
            .collect();
        Ok(Self {
            last_sample_us: Mutex::new(vec![0; devices.len()]),
            devices,
            driver_version,
            cuda_driver_version,
            nvml,
        })
    }

    /// How many devices NVML reported at load.
    pub(crate) fn device_count(&self) -> u32 {
        u32::try_from(self.devices.len()).unwrap_or(u32::MAX)
    }

    fn cached(&self, index: u32) -> Result<(&CachedDevice, RawHandle)> {
        let device = usize::try_from(index)
            .ok()
            .and_then(|i| self.devices.get(i))
            .ok_or(HypomnesisError::DeviceIndexOutOfRange {
                index,
                count: self.device_count(),
            })?;
        let handle = device.handle.clone()?;
        Ok((device, handle))
    }

    /// Device `index` with its current memory figures.
    pub(crate) fn device_info(&self, index: u32) -> Result<GpuDeviceInfo> {
        let (cached, handle) = self.cached(index)?;
        let mut info = GpuDeviceInfo::new(index, GpuVendor::Nvidia, GpuQuerySource::Nvml);
        info.name.clone_from(&cached.name);
        info.uuid.clone_from(&cached.uuid);
        info.pci_bus_id.clone_from(&cached.pci_bus_id);
        info.driver_version.clone_from(&self.driver_version);
        info.cuda_driver_version
            .clone_from(&self.cuda_driver_version);
        if info.name.is_none() {
            info.mark_unavailable(DeviceField::Name, "nvmlDeviceGetName failed");
        }
        self.fill_memory(handle, &mut info);
        if cached.mig_enabled == Some(true) {
            info.mig_instances = mig_instances(&self.nvml, handle);
        }
        Ok(info)
    }

    fn fill_memory(&self, handle: RawHandle, info: &mut GpuDeviceInfo) {
        let figures = match read_memory(&self.nvml, handle) {
            Ok((m, v1_because)) => {
                if let Some(why) = v1_because {
                    // v1's `used` includes whatever the driver set aside.
                    info.mark_unavailable(
                        DeviceField::ReservedBytes,
                        format!("{why}, so used includes reserved"),
                    );
                }
                Ok(m)
            }
            Err(e) => Err(e),
        };
        match figures {
            Ok(m) => {
                raw!(
                    "NVML GPU {}: nvmlDeviceGetMemoryInfo total={} free={} used={} reserved={:?}",
                    info.index,
                    m.total,
                    m.free,
                    m.used,
                    m.reserved
                );
                info.total_bytes = Some(m.total);
                info.free_bytes = Some(m.free);
                info.used_bytes = Some(m.used);
                info.reserved_bytes = m.reserved;
                // The library's one rule refuses impossible figures (the dispatcher applies
                // it again to every backend's records; it is idempotent).
                info.refuse_impossible_memory();
            }
            Err(NvmlError::NotSupported) => {
                info.unified_memory = true;
                mark_memory_unavailable(
                    info,
                    "NVML reports memory queries as not supported: a unified-memory device that shares system RAM (see host memory)",
                );
            }
            Err(e) => mark_memory_unavailable(
                info,
                &format!("nvmlDeviceGetMemoryInfo failed: {}", nvml_error_text(&e)),
            ),
        }
    }
}

/// A device's memory: `nvmlDeviceGetMemoryInfo_v2`, else v1 with the reason v2 was not
/// used. v1 is tried when v2 is missing (before R510), refuses the version constant, or
/// answers NOT_SUPPORTED (some drivers support only v1); only when v1 too is NOT_SUPPORTED
/// is the answer NOT_SUPPORTED, which callers take as a unified-memory device.
fn read_memory(
    nvml: &Nvml,
    handle: RawHandle,
) -> std::result::Result<(MemoryFigures, Option<&'static str>), NvmlError> {
    // SAFETY: `handle` came from nvmlDeviceGetHandleByIndex_v2 on this `nvml`, which is
    // still initialised (its owner keeps it so while handles are used).
    let device = unsafe { nvml_wrapper::Device::new(handle.0, nvml) };
    let why_v1 = match device.memory_info() {
        Ok(m) => {
            return Ok((
                MemoryFigures {
                    total: m.total,
                    free: m.free,
                    used: m.used,
                    reserved: Some(m.reserved),
                },
                None,
            ));
        }
        Err(
            NvmlError::FailedToLoadSymbol(_)
            | NvmlError::FunctionNotFound
            | NvmlError::UnexpectedVariant(NVML_ERROR_ARGUMENT_VERSION_MISMATCH),
        ) => "the driver has no nvmlDeviceGetMemoryInfo_v2 (before R510)",
        Err(NvmlError::NotSupported) => {
            // Without v1 either, NOT_SUPPORTED is the driver's whole answer.
            return memory_v1(nvml, handle)
                .map(|m| {
                    (
                        m,
                        Some("the driver answers nvmlDeviceGetMemoryInfo_v2 with NOT_SUPPORTED but v1 works"),
                    )
                })
                .map_err(|e| match e {
                    NvmlError::FailedToLoadSymbol(_) => NvmlError::NotSupported,
                    other => other,
                });
        }
        Err(e) => return Err(e),
    };
    memory_v1(nvml, handle).map(|m| (m, Some(why_v1)))
}

impl NvmlBackend {
    /// Device `index`'s total memory as read at load (v2 or v1), for the plausibility of
    /// per-process figures. `None` when unknown.
    pub(crate) fn cached_total(&self, index: u32) -> Option<u64> {
        self.cached(index).ok().and_then(|(c, _)| c.total_bytes)
    }
}

/// The MIG devices of a device in MIG mode, each with its GPU instance's memory; empty when
/// NVML cannot list them (a driver without the MIG calls, an unprivileged container that
/// sees only its own instance through another handle).
fn mig_instances(nvml: &Nvml, handle: RawHandle) -> Vec<MigInstance> {
    let lib = nvml.lib();
    let (Ok(max_count), Ok(by_index), Ok(gi_of), Ok(ci_of)) = (
        lib.nvmlDeviceGetMaxMigDeviceCount.as_ref(),
        lib.nvmlDeviceGetMigDeviceHandleByIndex.as_ref(),
        lib.nvmlDeviceGetGpuInstanceId.as_ref(),
        lib.nvmlDeviceGetComputeInstanceId.as_ref(),
    ) else {
        return Vec::new();
    };
    let mut count: c_uint = 0;
    // SAFETY: nvml.h's signature (bindgen); `handle` is live (owned NVML); `count` is a
    // valid, writable unsigned int for the call.
    if unsafe { max_count(handle.0, &raw mut count) } != NVML_SUCCESS {
        return Vec::new();
    }
    let mut instances = Vec::new();
    // No GPU has more than 7 MIG devices today; a larger count is garbage, bounded anyway.
    for index in 0..count.min(64) {
        let mut mig: nvmlDevice_t = std::ptr::null_mut();
        // SAFETY: as above; `mig` is a valid, writable handle slot. NOT_FOUND marks an
        // index with no MIG device, which is skipped.
        if unsafe { by_index(handle.0, index, &raw mut mig) } != NVML_SUCCESS || mig.is_null() {
            continue;
        }
        let id = |f: unsafe extern "C" fn(nvmlDevice_t, *mut c_uint) -> nvmlReturn_t| {
            let mut value: c_uint = 0;
            // SAFETY: as above; `mig` came from NVML for this device and stays valid while
            // NVML is initialised; `value` is writable.
            (unsafe { f(mig, &raw mut value) } == NVML_SUCCESS).then_some(value)
        };
        let memory = read_memory(nvml, RawHandle(mig))
            .ok()
            .map(|(m, _)| (m.total, m.free, m.used, m.reserved));
        instances.push(MigInstance::new(
            id(*gi_of),
            id(*ci_of),
            // Not nvml-wrapper's getter: it reads past a buffer without a NUL.
            nvml_strings::device_uuid(nvml, mig),
            memory,
        ));
    }
    instances
}

/// `nvmlDeviceGetMemoryInfo` (v1), which nvml-wrapper no longer calls.
fn memory_v1(nvml: &Nvml, handle: RawHandle) -> std::result::Result<MemoryFigures, NvmlError> {
    {
        let symbol = nvml
            .lib()
            .nvmlDeviceGetMemoryInfo
            .as_ref()
            .map_err(|e| NvmlError::FailedToLoadSymbol(e.to_string()))?;
        let mut memory = nvmlMemory_t {
            total: 0,
            free: 0,
            used: 0,
        };
        // SAFETY: the symbol has nvml.h's signature (bindgen-generated); `handle` is live (see
        // `read_memory`); `memory` is a valid, writable nvmlMemory_t for the call's duration.
        let code = unsafe { symbol(handle.0, &raw mut memory) };
        match code {
            NVML_SUCCESS => Ok(MemoryFigures {
                total: memory.total,
                free: memory.free,
                used: memory.used,
                reserved: None,
            }),
            NVML_ERROR_NOT_SUPPORTED => Err(NvmlError::NotSupported),
            other => Err(NvmlError::UnexpectedVariant(other)),
        }
    }
}

impl NvmlBackend {
    /// The driver's name for process `pid` (a host PID), `nvmlSystemGetProcessName`: the
    /// fallback for a process `/proc` cannot describe (another container's). `None` when
    /// NVML does not know it.
    #[doc(alias = "nvmlSystemGetProcessName")]
    pub(crate) fn process_name(&self, pid: u32) -> Option<String> {
        /// nvml.h has no constant for it; NVIDIA's samples and pynvml use 1024.
        const NAME_LENGTH: usize = 1024;
        self.nvml
            .sys_process_name(pid, NAME_LENGTH)
            .ok()
            .filter(|name| !name.is_empty())
    }

    /// Every process on device `index`, compute and graphics merged per pid; names unset.
    pub(crate) fn processes(&self, index: u32) -> Result<Vec<GpuProcessEntry>> {
        let (_, handle) = self.cached(index)?;
        let lib = self.nvml.lib();
        let v3_stride = v3_process_stride(
            lib.nvmlDeviceGetConfComputeMemSizeInfo.is_ok(),
            lib.nvmlDeviceGetRunningProcessDetailList.is_ok(),
        );
        let compute = match lib.nvmlDeviceGetComputeRunningProcesses_v3.as_ref() {
            Ok(f) => list_processes(
                *f,
                handle,
                "nvmlDeviceGetComputeRunningProcesses_v3",
                v3_stride,
            )?,
            Err(_) => match lib.nvmlDeviceGetComputeRunningProcesses_v2.as_ref() {
                Ok(f) => list_processes(
                    *f,
                    handle,
                    "nvmlDeviceGetComputeRunningProcesses_v2",
                    PROCESS_INFO_SIZE,
                )?,
                Err(e) => {
                    return Err(HypomnesisError::Nvml {
                        call: "nvmlDeviceGetComputeRunningProcesses_v3",
                        code: Some(13),
                        detail: format!("symbol missing from the library: {e}"),
                    });
                }
            },
        };
        // Compute-only devices may not support graphics lists; that leaves nothing out.
        let graphics = match lib.nvmlDeviceGetGraphicsRunningProcesses_v3.as_ref() {
            Ok(f) => match list_processes(
                *f,
                handle,
                "nvmlDeviceGetGraphicsRunningProcesses_v3",
                v3_stride,
            ) {
                Ok(rows) => rows,
                Err(HypomnesisError::Nvml { code: Some(3), .. }) => Vec::new(),
                Err(e) => return Err(e),
            },
            Err(_) => Vec::new(),
        };
        Ok(merge_process_lists(index, &compute, &graphics))
    }
}

impl NvmlBackend {
    /// Utilization, temperature, power, clocks, fan and PCIe link of device `index`: one
    /// getter per figure, each failure leaving that figure `None` with NVML's reason.
    ///
    /// # Errors
    /// An index out of range, a device whose handle could not be had, and a device that
    /// answers GPU_IS_LOST (so that a watcher reports it instead of a row of `None`s).
    pub(crate) fn telemetry(&self, index: u32) -> Result<DeviceTelemetry> {
        let (cached, handle) = self.cached(index)?;
        // SAFETY: `handle` came from nvmlDeviceGetHandleByIndex_v2 on this `nvml`, which is
        // still initialised (it is owned by `self`).
        let device = unsafe { nvml_wrapper::Device::new(handle.0, &self.nvml) };
        let mig = cached.mig_enabled == Some(true);
        let mut t = DeviceTelemetry::empty(index, GpuQuerySource::Nvml);

        const UTILIZATION: &str = "nvmlDeviceGetUtilizationRates";
        match device.utilization_rates() {
            Ok(u) => {
                t.gpu_utilization_percent =
                    percent(&mut t, TelemetryField::GpuUtilizationPercent, u.gpu);
                t.memory_utilization_percent =
                    percent(&mut t, TelemetryField::MemoryUtilizationPercent, u.memory);
            }
            Err(NvmlError::GpuLost) => return Err(call_error(UTILIZATION, &NvmlError::GpuLost)),
            Err(e) => {
                let reason = if mig && matches!(e, NvmlError::NotSupported) {
                    MIG_UTILIZATION.to_owned()
                } else {
                    reason(UTILIZATION, &e)
                };
                t.mark_unavailable(TelemetryField::GpuUtilizationPercent, reason.clone());
                t.mark_unavailable(TelemetryField::MemoryUtilizationPercent, reason);
            }
        }
        let codec = |t: &mut DeviceTelemetry, field, call, r: std::result::Result<_, _>| match r {
            Ok(nvml_wrapper::structs::device::UtilizationInfo { utilization, .. }) => {
                percent(t, field, utilization)
            }
            Err(e) => {
                t.mark_unavailable(field, reason(call, &e));
                None
            }
        };
        t.encoder_utilization_percent = codec(
            &mut t,
            TelemetryField::EncoderUtilizationPercent,
            "nvmlDeviceGetEncoderUtilization",
            device.encoder_utilization(),
        );
        t.decoder_utilization_percent = codec(
            &mut t,
            TelemetryField::DecoderUtilizationPercent,
            "nvmlDeviceGetDecoderUtilization",
            device.decoder_utilization(),
        );
        t.temperature_celsius = got(
            &mut t,
            TelemetryField::TemperatureCelsius,
            "nvmlDeviceGetTemperature",
            device.temperature(TemperatureSensor::Gpu),
        )
        .map(f64::from);
        t.power_watts = got(
            &mut t,
            TelemetryField::PowerWatts,
            "nvmlDeviceGetPowerUsage",
            device.power_usage(),
        )
        .map(milliwatts_to_watts);
        t.power_limit_watts = got(
            &mut t,
            TelemetryField::PowerLimitWatts,
            "nvmlDeviceGetEnforcedPowerLimit",
            device.enforced_power_limit(),
        )
        .map(milliwatts_to_watts);
        t.sm_clock_mhz = got(
            &mut t,
            TelemetryField::SmClockMhz,
            "nvmlDeviceGetClockInfo",
            device.clock_info(Clock::Graphics),
        );
        t.memory_clock_mhz = got(
            &mut t,
            TelemetryField::MemoryClockMhz,
            "nvmlDeviceGetClockInfo",
            device.clock_info(Clock::Memory),
        );
        t.fan_percent = match device.fan_speed(0) {
            // Passively cooled cards (SXM, most datacenter PCIe) have no fan to report.
            Err(NvmlError::NotSupported) => {
                t.mark_unavailable(
                    TelemetryField::FanPercent,
                    "not supported by this GPU/driver (no fan, e.g. a passively cooled card)",
                );
                None
            }
            other => got(
                &mut t,
                TelemetryField::FanPercent,
                "nvmlDeviceGetFanSpeed_v2",
                other,
            )
            .and_then(|p| percent(&mut t, TelemetryField::FanPercent, p)),
        };
        t.pcie_link_generation = got(
            &mut t,
            TelemetryField::PcieLinkGeneration,
            "nvmlDeviceGetCurrPcieLinkGeneration",
            device.current_pcie_link_gen(),
        );
        t.pcie_link_width = got(
            &mut t,
            TelemetryField::PcieLinkWidth,
            "nvmlDeviceGetCurrPcieLinkWidth",
            device.current_pcie_link_width(),
        );
        Ok(t)
    }

    /// Fills `utilization_percent` of `rows` (NVML rows of device `index`, host PIDs) with
    /// each process's mean SM utilization over the samples NVML took since the previous
    /// reading of this device. Rows without a new sample keep `None` (see
    /// [`GpuProcessEntry::utilization_percent`] for why).
    pub(crate) fn fill_process_utilization(&self, index: u32, rows: &mut [GpuProcessEntry]) {
        if rows.is_empty() {
            return;
        }
        if let Ok(by_pid) = self.process_utilization(index) {
            for row in rows {
                row.utilization_percent = by_pid.get(&row.pid).copied();
            }
        }
    }

    /// Mean SM utilization per host PID over the samples newer than the last reading.
    fn process_utilization(&self, index: u32) -> std::result::Result<BTreeMap<u32, f64>, String> {
        let (cached, handle) = self.cached(index).map_err(|e| e.to_string())?;
        if cached.mig_enabled == Some(true) {
            return Err(MIG_UTILIZATION.to_owned());
        }
        const CALL: &str = "nvmlDeviceGetProcessUtilization";
        let function = *self
            .nvml
            .lib()
            .nvmlDeviceGetProcessUtilization
            .as_ref()
            .map_err(|_| format!("the driver's NVML has no {CALL}"))?;
        let slot = usize::try_from(index).map_err(|_| "device index out of range".to_owned())?;
        // The lock is held across the call so that two readers never both take the same
        // samples as "new" (nor skip each other's).
        let mut last_seen = self
            .last_sample_us
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let since = last_seen.get(slot).copied().unwrap_or(0);
        let samples = match read_samples(function, handle, since) {
            Ok(samples) => samples,
            Err(NVML_ERROR_NOT_FOUND) => return Err(NO_NEW_SAMPLE.to_owned()),
            Err(NVML_ERROR_NOT_SUPPORTED) => {
                return Err("not supported by this GPU/driver".to_owned());
            }
            Err(code) => return Err(format!("{CALL} failed: {}", code_text(code))),
        };
        let mut sums: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
        let mut newest = since;
        for s in &samples {
            newest = newest.max(s.timeStamp);
            // A share above 100 % is not a measurement.
            if s.smUtil <= 100 {
                let entry = sums.entry(s.pid).or_insert((0, 0));
                entry.0 += u64::from(s.smUtil);
                entry.1 += 1;
            }
        }
        if let Some(seen) = last_seen.get_mut(slot) {
            *seen = newest;
        }
        #[allow(clippy::cast_precision_loss)] // sums of percentages over a few samples
        Ok(sums
            .into_iter()
            .map(|(pid, (sum, n))| (pid, sum as f64 / n as f64))
            .collect())
    }
}

/// Why utilization is missing on a MIG-enabled device.
const MIG_UTILIZATION: &str =
    "not supported while MIG is enabled (NVML documents utilization as unsupported on MIG)";
/// Why a process has no utilization figure when NVML answered NOT_FOUND.
const NO_NEW_SAMPLE: &str = "no sample since the last reading";

type ProcessUtilizationFn = unsafe extern "C" fn(
    nvmlDevice_t,
    *mut nvmlProcessUtilizationSample_t,
    *mut c_uint,
    std::ffi::c_ulonglong,
) -> nvmlReturn_t;

/// The samples newer than `since`: a count query with a NULL buffer, then the data, repeated
/// while the count grows between the calls. `Err` is NVML's code (NOT_FOUND: none newer).
fn read_samples(
    function: ProcessUtilizationFn,
    handle: RawHandle,
    since: u64,
) -> std::result::Result<Vec<nvmlProcessUtilizationSample_t>, nvmlReturn_t> {
    let mut needed: c_uint = 0;
    // SAFETY: a NULL buffer is nvml.h's documented count query; `needed` is a valid writable
    // c_uint; `handle` is live (owned by the initialised backend).
    let mut code = unsafe { function(handle.0, std::ptr::null_mut(), &raw mut needed, since) };
    if code == NVML_SUCCESS {
        return Ok(Vec::new());
    }
    for _ in 0..PROCESS_LIST_ATTEMPTS {
        if code != NVML_ERROR_INSUFFICIENT_SIZE {
            return Err(code);
        }
        if needed > MAX_PROCESSES {
            return Err(NVML_ERROR_INSUFFICIENT_SIZE);
        }
        let capacity = needed.saturating_add(needed / 4).saturating_add(8);
        let empty = nvmlProcessUtilizationSample_t {
            pid: 0,
            timeStamp: 0,
            smUtil: 0,
            memUtil: 0,
            encUtil: 0,
            decUtil: 0,
        };
        let mut buffer = vec![empty; capacity as usize];
        let mut count = capacity;
        // SAFETY: `buffer` holds `capacity` initialised 32-byte samples and `count` tells
        // NVML so; both outlive the call; `handle` is live.
        code = unsafe { function(handle.0, buffer.as_mut_ptr(), &raw mut count, since) };
        if code == NVML_SUCCESS {
            buffer.truncate(count.min(capacity) as usize);
            return Ok(buffer);
        }
        needed = count;
    }
    Err(NVML_ERROR_INSUFFICIENT_SIZE)
}

/// A percentage, or `None` (with the reason) when above 100, which no counter produces.
fn percent(t: &mut DeviceTelemetry, field: TelemetryField, value: u32) -> Option<f64> {
    if value <= 100 {
        Some(f64::from(value))
    } else {
        t.mark_unavailable(
            field,
            format!("NVML reported an impossible {value} %; ignored"),
        );
        None
    }
}

/// The figure, or `None` with the reason recorded for `field`.
fn got<T>(
    t: &mut DeviceTelemetry,
    field: TelemetryField,
    call: &'static str,
    result: std::result::Result<T, NvmlError>,
) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            t.mark_unavailable(field, reason(call, &e));
            None
        }
    }
}

/// Why a telemetry figure is missing, in words.
fn reason(call: &str, error: &NvmlError) -> String {
    match error {
        NvmlError::NotSupported => "not supported by this GPU/driver".to_owned(),
        NvmlError::FailedToLoadSymbol(_) | NvmlError::FunctionNotFound => {
            format!("the driver's NVML has no {call}")
        }
        NvmlError::NoPermission => format!("{call}: insufficient permissions (re-run elevated)"),
        other => format!("{call} failed: {}", nvml_error_text(other)),
    }
}

fn milliwatts_to_watts(milliwatts: u32) -> f64 {
    f64::from(milliwatts) / 1000.0
}

/// `0xFFFFFFFF` means MIG is off.
fn mig_id(raw: c_uint) -> Option<u32> {
    (raw != c_uint::MAX).then_some(raw)
}

type ProcessListFn =
    unsafe extern "C" fn(nvmlDevice_t, *mut c_uint, *mut nvmlProcessInfo_t) -> nvmlReturn_t;

/// Bytes per `nvmlProcessInfo_t` (`_v2` / `_v3` process lists): pid, 4 bytes of padding,
/// used bytes, GPU and compute instance ids.
const PROCESS_INFO_SIZE: usize = 24;
/// Bytes per entry an early R535 driver's `_v3` process lists wrote: the same fields, then
/// `usedGpuCcProtectedMemory`.
const EARLY_R535_PROCESS_INFO_SIZE: usize = 32;

/// The entry size of `_v3` process lists. Early R535 drivers (535.54, CUDA 12.2) wrote
/// 32-byte entries without a version bump, so a 24-byte reader got garbage from the second
/// entry on (pynvml#48/#50, go-nvml#75); later drivers went back to 24 bytes and moved the
/// longer layout to `nvmlDeviceGetRunningProcessDetailList`. The drivers tell themselves
/// apart by symbols (nvitop's rule): confidential-computing calls without the detail list
/// mean the 32-byte layout.
fn v3_process_stride(has_conf_compute: bool, has_detail_list: bool) -> usize {
    if has_conf_compute && !has_detail_list {
        EARLY_R535_PROCESS_INFO_SIZE
    } else {
        PROCESS_INFO_SIZE
    }
}

/// The compute and graphics lists of device `index` merged into one row per pid, in the
/// order pids first appear. Both lists report a process's whole allocation on the device, so
/// a pid in both gets the larger figure, never the sum (which would count it twice). Linear:
/// a pid's row is found through a map, since a busy node lists tens of thousands of pids.
fn merge_process_lists(
    index: u32,
    compute: &[RawProcess],
    graphics: &[RawProcess],
) -> Vec<GpuProcessEntry> {
    let mut rows: Vec<GpuProcessEntry> = Vec::with_capacity(compute.len() + graphics.len());
    let mut row_of: HashMap<u32, usize> = HashMap::with_capacity(rows.capacity());
    let lists = [
        (compute, GpuProcessKind::Compute),
        (graphics, GpuProcessKind::Graphics),
    ];
    for (list, kind) in lists {
        for raw in list {
            // Only the "not available" sentinel is dropped here: a figure larger than the
            // device is refused, with a note, by the dispatcher for every backend.
            let used = (raw.used != VALUE_NOT_AVAILABLE).then_some(raw.used);
            let gpu_instance = mig_id(raw.gpu_instance);
            let compute_instance = mig_id(raw.compute_instance);
            if let Some(row) = row_of.get(&raw.pid).and_then(|&at| rows.get_mut(at)) {
                row.kind = row.kind.merge(kind);
                row.used_bytes = match (row.used_bytes, used) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                row.gpu_instance_id = row.gpu_instance_id.or(gpu_instance);
                row.compute_instance_id = row.compute_instance_id.or(compute_instance);
            } else {
                let mut row = GpuProcessEntry::new(raw.pid, index, GpuQuerySource::Nvml);
                row.used_bytes = used;
                row.kind = kind;
                row.gpu_instance_id = gpu_instance;
                row.compute_instance_id = compute_instance;
                row_of.insert(raw.pid, rows.len());
                rows.push(row);
            }
        }
    }
    rows
}

/// One process-list entry, whatever its layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RawProcess {
    pid: u32,
    used: u64,
    gpu_instance: u32,
    compute_instance: u32,
}

/// The first `count` entries of `bytes`, `stride` bytes apart (the fields at offsets 0, 8,
/// 16 and 20 in both layouts, native byte order as NVML wrote them).
fn parse_process_entries(bytes: &[u8], count: usize, stride: usize) -> Vec<RawProcess> {
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_ne_bytes)
    };
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_ne_bytes)
    };
    (0..count)
        .map_while(|i| {
            let at = i.checked_mul(stride)?;
            Some(RawProcess {
                pid: u32_at(at)?,
                used: u64_at(at + 8)?,
                gpu_instance: u32_at(at + 16)?,
                compute_instance: u32_at(at + 20)?,
            })
        })
        .collect()
}

/// The documented size-then-data protocol, repeated while the count grows between calls;
/// entries are `stride` bytes apart ([`v3_process_stride`]).
fn list_processes(
    function: ProcessListFn,
    handle: RawHandle,
    call: &'static str,
    stride: usize,
) -> Result<Vec<RawProcess>> {
    let mut needed: c_uint = 0;
    // SAFETY: a zero count with a NULL buffer is nvml.h's documented size query; `needed` is a
    // valid writable c_uint; `handle` is live (owned by the initialised backend).
    let mut code = unsafe { function(handle.0, &raw mut needed, std::ptr::null_mut()) };
    if code == NVML_SUCCESS {
        return Ok(Vec::new());
    }
    for _ in 0..PROCESS_LIST_ATTEMPTS {
        if code != NVML_ERROR_INSUFFICIENT_SIZE {
            return Err(code_error(call, code));
        }
        if needed > MAX_PROCESSES {
            return Err(HypomnesisError::Nvml {
                call,
                code: Some(7),
                detail: format!("implausible process count {needed}"),
            });
        }
        // Headroom for processes that start between this call and the next.
        let capacity = needed.saturating_add(needed / 4).saturating_add(8);
        // `u64`s, so the buffer has the entries' 8-byte alignment.
        let words = (capacity as usize).saturating_mul(stride).div_ceil(8);
        let mut buffer = vec![0_u64; words];
        let mut count = capacity;
        // SAFETY: `buffer` holds `capacity` entries of `stride` bytes, 8-byte aligned and
        // zeroed — room for what the driver writes for `count = capacity` in either layout —
        // and `count` tells NVML so; both outlive the call.
        code = unsafe {
            function(
                handle.0,
                &raw mut count,
                buffer.as_mut_ptr().cast::<nvmlProcessInfo_t>(),
            )
        };
        if code == NVML_SUCCESS {
            let bytes: Vec<u8> = buffer.iter().flat_map(|w| w.to_ne_bytes()).collect();
            let rows = parse_process_entries(&bytes, count.min(capacity) as usize, stride);
            raw!("NVML {call}: count={count} rows={rows:?}");
            return Ok(rows);
        }
        needed = count;
    }
    Err(HypomnesisError::Nvml {
        call,
        code: Some(7),
        detail: format!("the process count kept growing over {PROCESS_LIST_ATTEMPTS} attempts"),
    })
}

#[derive(Debug, Clone, Copy)]
struct MemoryFigures {
    total: u64,
    free: u64,
    used: u64,
    reserved: Option<u64>,
}

fn mark_memory_unavailable(info: &mut GpuDeviceInfo, reason: &str) {
    for field in DeviceField::MEMORY {
        if info.unavailable_reason(field).is_none() {
            info.mark_unavailable(field, reason);
        }
    }
    info.total_bytes = None;
    info.free_bytes = None;
    info.used_bytes = None;
    info.reserved_bytes = None;
}

fn cache_device(nvml: &Nvml, index: u32) -> CachedDevice {
    match nvml.device_by_index(index) {
        Ok(device) => {
            // SAFETY: the handle is only passed back to this same NVML, which outlives it.
            let handle = unsafe { device.handle() };
            let total_bytes = read_memory(nvml, RawHandle(handle))
                .ok()
                .map(|(m, _)| m.total)
                .filter(|&t| t != VALUE_NOT_AVAILABLE && t > 0);
            CachedDevice {
                handle: Ok(RawHandle(handle)),
                // Not nvml-wrapper's getters: they read past a buffer without a NUL.
                name: nvml_strings::device_name(nvml, handle),
                uuid: nvml_strings::device_uuid(nvml, handle),
                pci_bus_id: nvml_strings::pci_bus_id(nvml, handle),
                total_bytes,
                mig_enabled: device.mig_mode().ok().map(|m| m.current == 1),
            }
        }
        Err(e) => CachedDevice {
            handle: Err(call_error("nvmlDeviceGetHandleByIndex_v2", &e)),
            name: None,
            uuid: None,
            pci_bus_id: None,
            total_bytes: None,
            mig_enabled: None,
        },
    }
}

/// `12020` → `"12.2"`, as `nvidia-smi` prints it.
fn format_cuda_version(raw: i32) -> String {
    format!("{}.{}", raw / 1000, (raw % 1000) / 10)
}

fn load_error(lib_path: &OsStr, error: &NvmlError) -> HypomnesisError {
    match error {
        NvmlError::LibloadingError(e) => HypomnesisError::Nvml {
            call: "load",
            code: None,
            detail: format!(
                "{} could not be loaded ({})",
                lib_path.to_string_lossy(),
                error_chain(e)
            ),
        },
        other => call_error("nvmlInit_v2", other),
    }
}

fn call_error(call: &'static str, error: &NvmlError) -> HypomnesisError {
    HypomnesisError::Nvml {
        call,
        code: nvml_error_code(error),
        detail: nvml_error_text(error),
    }
}

fn code_error(call: &'static str, code: nvmlReturn_t) -> HypomnesisError {
    HypomnesisError::Nvml {
        call,
        code: i32::try_from(code).ok(),
        detail: code_text(code).to_owned(),
    }
}

/// NVML's own wording for a return code (as `nvmlErrorString` and pynvml give it).
fn code_text(code: nvmlReturn_t) -> &'static str {
    match code {
        1 => "Uninitialized",
        2 => "Invalid Argument",
        3 => "Not Supported",
        4 => "Insufficient Permissions",
        6 => "Not Found",
        7 => "Insufficient Size",
        9 => "Driver Not Loaded",
        10 => "Timeout",
        12 => "NVML Shared Library Not Found",
        13 => "Function Not Found",
        15 => "GPU is lost",
        17 => "Operating System error",
        18 => "RM has detected an NVML/RM version mismatch.",
        20 => "Insufficient Memory",
        25 => "Argument Version Mismatch",
        _ => "Unknown Error",
    }
}

/// The `nvmlReturn_t` behind an nvml-wrapper error, where there is one. (nvml-wrapper maps
/// codes above 22 to `UnexpectedVariant(code)`.)
fn nvml_error_code(error: &NvmlError) -> Option<i32> {
    Some(match error {
        NvmlError::Uninitialized => 1,
        NvmlError::InvalidArg => 2,
        NvmlError::NotSupported => 3,
        NvmlError::NoPermission => 4,
        #[allow(deprecated)] // still a code NVML can return
        NvmlError::AlreadyInitialized => 5,
        NvmlError::NotFound => 6,
        NvmlError::InsufficientSize(_) => 7,
        NvmlError::InsufficientPower => 8,
        NvmlError::DriverNotLoaded => 9,
        NvmlError::Timeout => 10,
        NvmlError::IrqIssue => 11,
        NvmlError::LibraryNotFound => 12,
        NvmlError::FunctionNotFound | NvmlError::FailedToLoadSymbol(_) => 13,
        NvmlError::CorruptedInfoROM => 14,
        NvmlError::GpuLost => 15,
        NvmlError::ResetRequired => 16,
        NvmlError::OperatingSystem => 17,
        NvmlError::LibRmVersionMismatch => 18,
        NvmlError::InUse => 19,
        NvmlError::InsufficientMemory => 20,
        NvmlError::NoData => 21,
        NvmlError::VgpuEccNotSupported => 22,
        NvmlError::Unknown => 999,
        NvmlError::UnexpectedVariant(code) => return i32::try_from(*code).ok(),
        _ => return None,
    })
}

fn nvml_error_text(error: &NvmlError) -> String {
    match nvml_error_code(error) {
        Some(code) if !matches!(error, NvmlError::FailedToLoadSymbol(_)) => {
            code_text(u32::try_from(code).unwrap_or(999)).to_owned()
        }
        _ => error_chain(error),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn windows_tries_system32_then_nvsmi_then_the_search_path() {
        use std::ffi::OsString;
        let candidates = super::windows_candidates(
            Some(OsString::from("C:\\Windows")),
            Some(OsString::from("C:\\Program Files")),
        );
        assert_eq!(
            candidates,
            [
                "C:\\Windows\\System32\\nvml.dll",
                "C:\\Program Files\\NVIDIA Corporation\\NVSMI\\nvml.dll",
                super::DEFAULT_LIB,
            ]
        );
        assert_eq!(
            super::windows_candidates(None, Some(OsString::new())),
            [super::DEFAULT_LIB],
            "unset or empty variables are skipped"
        );
    }

    use super::*;

    /// Entries laid out as NVML writes them: pid, padding, used, GPU / compute instance, and
    /// for the 32-byte layout `usedGpuCcProtectedMemory`.
    fn entries(rows: &[(u32, u64, u32, u32)], stride: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for &(pid, used, gi, ci) in rows {
            bytes.extend(pid.to_ne_bytes());
            bytes.extend(0xAAAA_AAAA_u32.to_ne_bytes());
            bytes.extend(used.to_ne_bytes());
            bytes.extend(gi.to_ne_bytes());
            bytes.extend(ci.to_ne_bytes());
            if stride == EARLY_R535_PROCESS_INFO_SIZE {
                bytes.extend(0x5555_u64.to_ne_bytes());
            }
        }
        bytes
    }

    #[test]
    fn only_conf_compute_without_the_detail_list_means_32_byte_entries() {
        assert_eq!(v3_process_stride(true, false), 32);
        assert_eq!(v3_process_stride(true, true), 24);
        assert_eq!(v3_process_stride(false, false), 24);
        assert_eq!(v3_process_stride(false, true), 24);
    }

    #[test]
    fn process_entries_are_read_at_their_stride() {
        let rows = [(101, 1 << 30, u32::MAX, u32::MAX), (202, 2 << 30, 1, 0)];
        let want: Vec<RawProcess> = rows
            .iter()
            .map(|&(pid, used, gpu_instance, compute_instance)| RawProcess {
                pid,
                used,
                gpu_instance,
                compute_instance,
            })
            .collect();
        for stride in [PROCESS_INFO_SIZE, EARLY_R535_PROCESS_INFO_SIZE] {
            assert_eq!(
                parse_process_entries(&entries(&rows, stride), 2, stride),
                want
            );
        }
        // The trap itself: 32-byte entries read 24 bytes apart go wrong from the second on.
        let misread = parse_process_entries(&entries(&rows, 32), 2, 24);
        assert_eq!(misread[0], want[0]);
        assert_ne!(misread[1], want[1]);
    }

    #[test]
    fn a_count_past_the_buffer_yields_only_whole_entries() {
        let bytes = entries(&[(7, 9, 0, 0)], 24);
        assert_eq!(parse_process_entries(&bytes, 5, 24).len(), 1);
        assert_eq!(parse_process_entries(&bytes[..20], 1, 24), Vec::new());
        assert_eq!(parse_process_entries(&[], 3, 32), Vec::new());
    }

    #[test]
    fn cuda_versions_print_as_nvidia_smi_does() {
        assert_eq!(format_cuda_version(12020), "12.2");
        assert_eq!(format_cuda_version(13010), "13.1");
        assert_eq!(format_cuda_version(11080), "11.8");
    }

    #[test]
    fn a_pid_in_both_lists_gets_the_larger_figure_whichever_list_has_it() {
        let raw = |pid, used| RawProcess {
            pid,
            used,
            gpu_instance: u32::MAX,
            compute_instance: u32::MAX,
        };
        let compute = [raw(10, 3 << 30), raw(20, 1 << 20), raw(30, 5 << 20)];
        let graphics = [raw(20, 512 << 20), raw(10, 1 << 29), raw(40, 7 << 20)];
        let rows = merge_process_lists(0, &compute, &graphics);
        let got: Vec<(u32, Option<u64>, GpuProcessKind)> =
            rows.iter().map(|r| (r.pid, r.used_bytes, r.kind)).collect();
        assert_eq!(
            got,
            [
                (10, Some(3 << 30), GpuProcessKind::ComputeAndGraphics),
                (20, Some(512 << 20), GpuProcessKind::ComputeAndGraphics),
                (30, Some(5 << 20), GpuProcessKind::Compute),
                (40, Some(7 << 20), GpuProcessKind::Graphics),
            ]
        );
    }

    #[test]
    fn a_sentinel_in_one_list_leaves_the_other_lists_figure() {
        let raw = |used| RawProcess {
            pid: 7,
            used,
            gpu_instance: 1,
            compute_instance: 0,
        };
        let rows = merge_process_lists(2, &[raw(u64::MAX)], &[raw(1 << 30)]);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].used_bytes, Some(1 << 30));
        assert_eq!(rows[0].device_index, 2);
        assert_eq!(rows[0].gpu_instance_id, Some(1));
    }

    #[test]
    fn mig_ids_of_all_ones_mean_mig_is_off() {
        assert_eq!(mig_id(0xFFFF_FFFF), None);
        assert_eq!(mig_id(3), Some(3));
    }

    #[test]
    fn wrapper_errors_map_back_to_nvml_codes() {
        assert_eq!(nvml_error_code(&NvmlError::DriverNotLoaded), Some(9));
        assert_eq!(nvml_error_code(&NvmlError::LibRmVersionMismatch), Some(18));
        assert_eq!(
            nvml_error_code(&NvmlError::FailedToLoadSymbol("x".into())),
            Some(13)
        );
        assert_eq!(
            nvml_error_text(&NvmlError::DriverNotLoaded),
            "Driver Not Loaded"
        );
    }
}

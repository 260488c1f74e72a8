//! The scenario file: what the double pretends the machine has.
//!
//! Parsed by hand from a `serde_json::Value` (no derive, so the double builds quickly in the
//! separate target dir the tests use). Parsing is strict: an unknown key, a wrong type, a zero
//! error code or an unknown function name is an error, so a typo in a fixture cannot silently
//! turn into "the double did something else".
//!
//! Function names are kept internally WITHOUT their `nvml` prefix (`DeviceGetName` for
//! `nvmlDeviceGetName`). test-support removes a symbol by overwriting every `\0nvml…\0` string
//! in the library file; keeping the prefix out of the double's own string data means such a
//! patch can never alter the double's own tables.

use std::collections::BTreeMap;
use std::ffi::c_int;

use serde_json::{Map, Value};

/// The most devices a scenario may declare (the handle table is static).
pub const MAX_DEVICES: usize = 64;
/// MIG devices per GPU: what `nvmlDeviceGetMaxMigDeviceCount` answers (7 on A100 / H100).
pub const MAX_MIG_DEVICES: usize = 7;

/// Every exported function that returns an `nvmlReturn_t`, by its name without `nvml`.
/// (`ErrorString` returns a string, so it cannot be made to fail.)
pub const SYSTEM_FUNCTIONS: &[&str] = &[
    "Init_v2",
    "InitWithFlags",
    "Init",
    "Shutdown",
    "SystemGetDriverVersion",
    "SystemGetNVMLVersion",
    "SystemGetCudaDriverVersion",
    "SystemGetCudaDriverVersion_v2",
    "SystemGetProcessName",
    "DeviceGetCount_v2",
    "DeviceGetCount",
];

/// Functions that act on one device: allowed in a device's own `errors` (and at top level).
pub const DEVICE_FUNCTIONS: &[&str] = &[
    "DeviceGetHandleByIndex_v2",
    "DeviceGetHandleByIndex",
    "DeviceGetIndex",
    "DeviceGetName",
    "DeviceGetUUID",
    "DeviceGetPciInfo_v3",
    "DeviceGetPciInfo_v2",
    "DeviceGetPciInfo",
    "DeviceGetMemoryInfo",
    "DeviceGetMemoryInfo_v2",
    "DeviceGetComputeRunningProcesses_v3",
    "DeviceGetComputeRunningProcesses_v2",
    "DeviceGetComputeRunningProcesses",
    "DeviceGetGraphicsRunningProcesses_v3",
    "DeviceGetGraphicsRunningProcesses_v2",
    "DeviceGetGraphicsRunningProcesses",
    "DeviceGetMPSComputeRunningProcesses_v3",
    "DeviceGetMPSComputeRunningProcesses_v2",
    "DeviceGetMPSComputeRunningProcesses",
    "DeviceGetMigMode",
    "DeviceGetMaxMigDeviceCount",
    "DeviceGetMigDeviceHandleByIndex",
    "DeviceGetGpuInstanceId",
    "DeviceGetComputeInstanceId",
    "DeviceGetCudaComputeCapability",
    "DeviceGetUtilizationRates",
    "DeviceGetTemperature",
    "DeviceGetPowerUsage",
    "DeviceGetEnforcedPowerLimit",
    "DeviceGetClockInfo",
    "DeviceGetFanSpeed",
    "DeviceGetFanSpeed_v2",
    "DeviceGetCurrPcieLinkGeneration",
    "DeviceGetCurrPcieLinkWidth",
    "DeviceGetEncoderUtilization",
    "DeviceGetDecoderUtilization",
    "DeviceGetProcessUtilization",
    "DeviceGetConfComputeMemSizeInfo",
    "DeviceGetRunningProcessDetailList",
];

/// Every exported symbol, for `missing_symbols` (which the double itself ignores).
const OTHER_SYMBOLS: &[&str] = &["ErrorString"];

#[derive(Debug)]
pub struct Scenario {
    pub driver_version: String,
    pub nvml_version: String,
    pub cuda_driver_version: c_int,
    pub init_error: Option<c_int>,
    /// Keyed by function name without the `nvml` prefix.
    pub errors: BTreeMap<String, c_int>,
    pub devices: Vec<Device>,
    /// The first declared `name` of each pid (any device, compute list before graphics), for
    /// `nvmlSystemGetProcessName`: an index, so that naming every row of a scenario with tens
    /// of thousands of processes stays linear.
    pub process_names: std::collections::HashMap<u32, String>,
    /// Every string buffer is filled to its end after the text, with no NUL (a driver that
    /// breaks the NUL-termination contract).
    pub strings_without_nul: bool,
}

#[derive(Debug)]
pub struct Device {
    pub name: String,
    pub uuid: String,
    pub pci: Pci,
    pub memory: Option<Memory>,
    pub compute: Vec<Process>,
    pub graphics: Vec<Process>,
    pub mig_mode: Option<(u32, u32)>,
    /// The MIG devices (one per compute instance), in `nvmlDeviceGetMigDeviceHandleByIndex`
    /// order.
    pub mig_devices: Vec<MigDevice>,
    pub cuda_compute_capability: (c_int, c_int),
    pub undercount: Option<Undercount>,
    /// Bytes per entry the `_v3` process-list functions write: 24 (`nvmlProcessInfo_t`), or
    /// 32 to play an early R535 driver (535.54, CUDA 12.2), which wrote the v2 fields plus
    /// `usedGpuCcProtectedMemory` without a version bump.
    pub process_info_stride: u32,
    /// Keyed by function name without the `nvml` prefix.
    pub errors: BTreeMap<String, c_int>,
    /// Milliseconds a function of this device sleeps before answering (a hung driver),
    /// keyed like `errors`.
    pub delays_ms: BTreeMap<String, u64>,
    /// From this many ms after the first successful init on, `delays_ms` applies (before
    /// it, calls answer at once); `None`: from the start.
    pub delays_from_ms: Option<u64>,
    /// `{gpu, memory}` percent; `None` → NOT_SUPPORTED.
    pub utilization: Option<(u32, u32)>,
    /// Degrees Celsius; `None` → NOT_SUPPORTED.
    pub temperature: Option<u32>,
    /// Milliwatts; `None` → NOT_SUPPORTED.
    pub power_usage_mw: Option<u32>,
    /// Milliwatts; `None` → NOT_SUPPORTED.
    pub power_limit_mw: Option<u32>,
    /// `{graphics, memory}` MHz; `None` → NOT_SUPPORTED.
    pub clocks: Option<(u32, u32)>,
    /// Percent; `None` → NOT_SUPPORTED.
    pub fan_speed: Option<u32>,
    /// `{generation, width}`; `None` → NOT_SUPPORTED.
    pub pcie: Option<(u32, u32)>,
    /// Encoder utilization, percent; `None` → NOT_SUPPORTED.
    pub encoder: Option<u32>,
    /// Decoder utilization, percent; `None` → NOT_SUPPORTED.
    pub decoder: Option<u32>,
    /// Per-process utilization samples, in the order declared.
    pub process_utilization: Vec<UtilSample>,
    /// From this many ms after the first successful init on, every call on this device
    /// returns GPU_IS_LOST (15).
    pub lost_after_ms: Option<u64>,
}

/// One `nvmlProcessUtilizationSample_t`.
#[derive(Debug, Clone, Copy)]
pub struct UtilSample {
    pub pid: u32,
    /// CPU timestamp in µs, written as is. The sample exists from `timestamp / 1000` ms
    /// after the first successful init on.
    pub timestamp: u64,
    pub sm_util: u32,
    pub mem_util: u32,
    pub enc_util: u32,
    pub dec_util: u32,
}

#[derive(Debug)]
pub struct Pci {
    pub bus_id: String,
    pub bus_id_legacy: String,
    pub domain: u32,
    pub bus: u32,
    pub device: u32,
    pub device_id: u32,
    pub subsystem_id: u32,
}

/// One MIG device: a compute instance of a GPU instance, with the GPU instance's memory.
#[derive(Debug, Clone)]
pub struct MigDevice {
    pub gpu_instance_id: u32,
    pub compute_instance_id: u32,
    pub uuid: String,
    pub memory: Memory,
}

#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub total: u64,
    pub reserved: u64,
    pub free: u64,
    pub used: u64,
}

#[derive(Debug, Clone)]
pub struct Process {
    pub pid: u32,
    pub used_gpu_memory: u64,
    /// `(ms after the first successful init, bytes)`, strictly increasing in time: from each
    /// step's time on, the process holds its bytes. Before the first step (and when empty),
    /// it holds `used_gpu_memory`.
    pub used_gpu_memory_steps: Vec<(u64, u64)>,
    pub gpu_instance_id: u32,
    pub compute_instance_id: u32,
    pub name: Option<String>,
}

impl Process {
    /// What the process holds `ms` milliseconds after the first successful init.
    pub fn used_at(&self, ms: u64) -> u64 {
        self.used_gpu_memory_steps
            .iter()
            .take_while(|(at, _)| *at <= ms)
            .last()
            .map_or(self.used_gpu_memory, |(_, bytes)| *bytes)
    }
}

impl Device {
    /// The device's memory `ms` milliseconds after the first successful init: `used` grows
    /// (and `free` shrinks, saturating) by how far each process's memory has moved from its
    /// `used_gpu_memory`. Without steps this is `memory` as declared.
    pub fn memory_at(&self, ms: u64) -> Option<Memory> {
        let mut m = self.memory?;
        let delta: i128 = self
            .compute
            .iter()
            .chain(&self.graphics)
            .filter(|p| !p.used_gpu_memory_steps.is_empty())
            .map(|p| i128::from(p.used_at(ms)) - i128::from(p.used_gpu_memory))
            .sum();
        let clamp = |v: i128| u64::try_from(v.max(0)).unwrap_or(u64::MAX);
        m.used = clamp(i128::from(m.used) + delta);
        m.free = clamp(i128::from(m.free) - delta);
        Some(m)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Undercount {
    pub by: u32,
    pub times: u32,
}

type Res<T> = Result<T, String>;

/// Reads and parses the file named by `NVML_DOUBLE_SCENARIO`.
pub fn load_from_env() -> Res<Scenario> {
    let path = std::env::var_os("NVML_DOUBLE_SCENARIO")
        .ok_or_else(|| "NVML_DOUBLE_SCENARIO is not set".to_string())?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read scenario {}: {e}", path.to_string_lossy()))?;
    parse(&text).map_err(|e| format!("invalid scenario {}: {e}", path.to_string_lossy()))
}

/// Parses a scenario document.
pub fn parse(text: &str) -> Res<Scenario> {
    let root: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let obj = object(&root, "the top level")?;
    check_keys(
        obj,
        "the top level",
        &[
            "description",
            "driver_version",
            "nvml_version",
            "cuda_driver_version",
            "init_error",
            "errors",
            "missing_symbols",
            "devices",
            "strings_without_nul",
        ],
    )?;
    if let Some(v) = obj.get("description") {
        string(v, "description")?;
    }
    let driver_version = opt_string(obj, "driver_version", "")?.unwrap_or("590.48.01".into());
    let cuda_driver_version = match obj.get("cuda_driver_version") {
        None => 13010,
        Some(v) => int_in::<c_int>(v, "cuda_driver_version")?,
    };
    let nvml_version = opt_string(obj, "nvml_version", "")?
        .unwrap_or_else(|| format!("{}.{driver_version}", cuda_driver_version / 1000));
    let init_error = match obj.get("init_error") {
        None | Some(Value::Null) => None,
        Some(v) => Some(error_code(v, "init_error")?),
    };
    let all: Vec<&str> = SYSTEM_FUNCTIONS
        .iter()
        .chain(DEVICE_FUNCTIONS)
        .copied()
        .collect();
    let errors = error_map(obj.get("errors"), "errors", &all)?;
    if let Some(v) = obj.get("missing_symbols") {
        let names = array(v, "missing_symbols")?;
        let symbols: Vec<&str> = all.iter().chain(OTHER_SYMBOLS).copied().collect();
        for (i, n) in names.iter().enumerate() {
            let where_ = format!("missing_symbols[{i}]");
            function_name(string(n, &where_)?, &where_, &symbols)?;
        }
    }
    let devices = match obj.get("devices") {
        None => return Err("\"devices\" is required (use [] for none)".into()),
        Some(v) => array(v, "devices")?,
    };
    if devices.len() > MAX_DEVICES {
        return Err(format!("at most {MAX_DEVICES} devices are supported"));
    }
    let devices = devices
        .iter()
        .enumerate()
        .map(|(i, d)| device(d, &format!("devices[{i}]")))
        .collect::<Res<Vec<_>>>()?;
    let mut process_names = std::collections::HashMap::new();
    for process in devices
        .iter()
        .flat_map(|d| d.compute.iter().chain(&d.graphics))
    {
        if let Some(name) = &process.name {
            process_names
                .entry(process.pid)
                .or_insert_with(|| name.clone());
        }
    }
    let strings_without_nul = match obj.get("strings_without_nul") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or("\"strings_without_nul\" must be true or false")?,
    };
    Ok(Scenario {
        driver_version,
        nvml_version,
        cuda_driver_version,
        init_error,
        errors,
        devices,
        process_names,
        strings_without_nul,
    })
}

fn device(v: &Value, at: &str) -> Res<Device> {
    let obj = object(v, at)?;
    check_keys(
        obj,
        at,
        &[
            "name",
            "uuid",
            "pci_bus_id",
            "pci_device_id",
            "pci_subsystem_id",
            "memory",
            "compute_processes",
            "graphics_processes",
            "mig_mode",
            "mig_devices",
            "cuda_compute_capability",
            "process_undercount",
            "process_info_stride",
            "errors",
            "delays_ms",
            "delays_from_ms",
            "utilization",
            "temperature",
            "power_usage_mw",
            "power_limit_mw",
            "clocks",
            "fan_speed",
            "pcie",
            "encoder",
            "decoder",
            "process_utilization",
            "lost_after_ms",
        ],
    )?;
    let name = req_string(obj, "name", at)?;
    let uuid = req_string(obj, "uuid", at)?;
    let bus_id = req_string(obj, "pci_bus_id", at)?;
    let (domain, bus, dev, function) = parse_bus_id(&bus_id)
        .ok_or_else(|| format!("{at}.pci_bus_id {bus_id:?} is not of the form 00000000:1B:00.0"))?;
    let canonical = format!("{domain:08X}:{bus:02X}:{dev:02X}.{function:X}");
    if canonical != bus_id {
        return Err(format!(
            "{at}.pci_bus_id {bus_id:?} must be written as NVML writes it: {canonical:?}"
        ));
    }
    let bus_id_legacy = format!("{:04X}:{bus:02X}:{dev:02X}.{function:X}", domain & 0xFFFF);
    let pci = Pci {
        bus_id,
        bus_id_legacy,
        domain,
        bus,
        device: dev,
        device_id: req_int(obj, "pci_device_id", at)?,
        subsystem_id: match obj.get("pci_subsystem_id") {
            None => 0,
            Some(v) => int_in(v, &format!("{at}.pci_subsystem_id"))?,
        },
    };
    let memory = match obj.get("memory") {
        None => {
            return Err(format!(
                "{at}.memory is required (null means the memory queries are NOT_SUPPORTED)"
            ));
        }
        Some(Value::Null) => None,
        Some(v) => Some(memory(v, &format!("{at}.memory"))?),
    };
    let compute = processes(
        obj.get("compute_processes"),
        &format!("{at}.compute_processes"),
    )?;
    let graphics = processes(
        obj.get("graphics_processes"),
        &format!("{at}.graphics_processes"),
    )?;
    let mig_mode = match obj.get("mig_mode") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let w = format!("{at}.mig_mode");
            let m = object(v, &w)?;
            check_keys(m, &w, &["current", "pending"])?;
            Some((req_int(m, "current", &w)?, req_int(m, "pending", &w)?))
        }
    };
    let mig_devices = mig_devices(obj.get("mig_devices"), &format!("{at}.mig_devices"))?;
    if !mig_devices.is_empty() && mig_mode.is_none() {
        return Err(format!("{at}.mig_devices needs a mig_mode"));
    }
    let cuda_compute_capability = match obj.get("cuda_compute_capability") {
        None | Some(Value::Null) => (9, 0),
        Some(v) => {
            let w = format!("{at}.cuda_compute_capability");
            let m = object(v, &w)?;
            check_keys(m, &w, &["major", "minor"])?;
            (req_int(m, "major", &w)?, req_int(m, "minor", &w)?)
        }
    };
    let undercount = match obj.get("process_undercount") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let w = format!("{at}.process_undercount");
            let m = object(v, &w)?;
            check_keys(m, &w, &["by", "times"])?;
            Some(Undercount {
                by: req_int(m, "by", &w)?,
                times: req_int(m, "times", &w)?,
            })
        }
    };
    let process_info_stride = match obj.get("process_info_stride") {
        None | Some(Value::Null) => 24,
        Some(v) => {
            let w = format!("{at}.process_info_stride");
            match int_in(v, &w)? {
                stride @ (24 | 32) => stride,
                other => return Err(format!("{w}: must be 24 or 32, not {other}")),
            }
        }
    };
    let errors = error_map(obj.get("errors"), &format!("{at}.errors"), DEVICE_FUNCTIONS)?;
    let mut delays_ms = BTreeMap::new();
    if let Some(v) = obj.get("delays_ms").filter(|v| !v.is_null()) {
        let w = format!("{at}.delays_ms");
        for (name, ms) in object(v, &w)? {
            let at = format!("{w}.{name}");
            let short = function_name(name, &at, DEVICE_FUNCTIONS)?;
            delays_ms.insert(short.to_string(), int_in(ms, &at)?);
        }
    }
    let pair = |key: &str, a: &str, b: &str| -> Res<Option<(u32, u32)>> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                let w = format!("{at}.{key}");
                let m = object(v, &w)?;
                check_keys(m, &w, &[a, b])?;
                Ok(Some((req_int(m, a, &w)?, req_int(m, b, &w)?)))
            }
        }
    };
    let single = |key: &str| -> Res<Option<u32>> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => Ok(Some(int_in(v, &format!("{at}.{key}"))?)),
        }
    };
    let utilization = pair("utilization", "gpu", "memory")?;
    let clocks = pair("clocks", "graphics", "memory")?;
    let pcie = pair("pcie", "generation", "width")?;
    let delays_from_ms = match obj.get("delays_from_ms") {
        None | Some(Value::Null) => None,
        Some(v) => Some(int_in(v, &format!("{at}.delays_from_ms"))?),
    };
    let lost_after_ms = match obj.get("lost_after_ms") {
        None | Some(Value::Null) => None,
        Some(v) => Some(int_in(v, &format!("{at}.lost_after_ms"))?),
    };
    Ok(Device {
        utilization,
        temperature: single("temperature")?,
        power_usage_mw: single("power_usage_mw")?,
        power_limit_mw: single("power_limit_mw")?,
        clocks,
        fan_speed: single("fan_speed")?,
        pcie,
        encoder: single("encoder")?,
        decoder: single("decoder")?,
        process_utilization: samples(
            obj.get("process_utilization"),
            &format!("{at}.process_utilization"),
        )?,
        lost_after_ms,
        name,
        uuid,
        pci,
        memory,
        compute,
        graphics,
        mig_mode,
        mig_devices,
        cuda_compute_capability,
        undercount,
        process_info_stride,
        errors,
        delays_ms,
        delays_from_ms,
    })
}

fn memory(v: &Value, at: &str) -> Res<Memory> {
    let m = object(v, at)?;
    check_keys(m, at, &["total", "reserved", "free", "used"])?;
    Ok(Memory {
        total: req_int(m, "total", at)?,
        reserved: req_int(m, "reserved", at)?,
        free: req_int(m, "free", at)?,
        used: req_int(m, "used", at)?,
    })
}

fn mig_devices(v: Option<&Value>, at: &str) -> Res<Vec<MigDevice>> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let list = array(v, at)?;
    if list.len() > MAX_MIG_DEVICES {
        return Err(format!("{at}: at most {MAX_MIG_DEVICES} MIG devices"));
    }
    list.iter()
        .enumerate()
        .map(|(i, d)| {
            let w = format!("{at}[{i}]");
            let m = object(d, &w)?;
            check_keys(
                m,
                &w,
                &["gpu_instance_id", "compute_instance_id", "uuid", "memory"],
            )?;
            Ok(MigDevice {
                gpu_instance_id: req_int(m, "gpu_instance_id", &w)?,
                compute_instance_id: req_int(m, "compute_instance_id", &w)?,
                uuid: req_string(m, "uuid", &w)?,
                memory: memory(
                    m.get("memory")
                        .ok_or_else(|| format!("{w}.memory is required"))?,
                    &format!("{w}.memory"),
                )?,
            })
        })
        .collect()
}

const PROCESS_KEYS: &[&str] = &[
    "pid",
    "used_gpu_memory",
    "used_gpu_memory_steps",
    "gpu_instance_id",
    "compute_instance_id",
    "name",
];

/// One process entry at `w`, every check with the error message naming it.
fn process_checked(p: &Value, w: &str) -> Res<Process> {
    let m = object(p, w)?;
    check_keys(m, w, PROCESS_KEYS)?;
    let instance = |key: &str| -> Res<u32> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(u32::MAX),
            Some(v) => int_in(v, &format!("{w}.{key}")),
        }
    };
    Ok(Process {
        pid: req_int(m, "pid", w)?,
        used_gpu_memory: req_int(m, "used_gpu_memory", w)?,
        used_gpu_memory_steps: steps(m.get("used_gpu_memory_steps"), w)?,
        gpu_instance_id: instance("gpu_instance_id")?,
        compute_instance_id: instance("compute_instance_id")?,
        name: opt_string(m, "name", w)?,
    })
}

fn processes(v: Option<&Value>, at: &str) -> Res<Vec<Process>> {
    let Some(v) = v else { return Ok(Vec::new()) };
    array(v, at)?
        .iter()
        .enumerate()
        .map(|(i, p)| {
            // Most scenarios' processes are valid: the path is formatted again only for an
            // error, not once per process.
            let parsed = (|| -> Result<Process, ()> {
                let m = p.as_object().ok_or(())?;
                if m.keys().any(|k| !PROCESS_KEYS.contains(&k.as_str())) {
                    return Err(());
                }
                if m.get("used_gpu_memory_steps").is_some_and(|v| !v.is_null()) {
                    return Err(()); // the rare, fully checked path below
                }
                let instance = |key: &str| -> Result<u32, ()> {
                    match m.get(key) {
                        None | Some(Value::Null) => Ok(u32::MAX),
                        Some(v) => int_value(v).map_err(|_| ()),
                    }
                };
                Ok(Process {
                    pid: int_value(m.get("pid").ok_or(())?).map_err(|_| ())?,
                    used_gpu_memory: int_value(m.get("used_gpu_memory").ok_or(())?)
                        .map_err(|_| ())?,
                    used_gpu_memory_steps: Vec::new(),
                    gpu_instance_id: instance("gpu_instance_id")?,
                    compute_instance_id: instance("compute_instance_id")?,
                    name: match m.get("name") {
                        None | Some(Value::Null) => None,
                        Some(v) => Some(string_value(v).map_err(|_| ())?.to_string()),
                    },
                })
            })();
            match parsed {
                Ok(process) => Ok(process),
                Err(()) => process_checked(p, &format!("{at}[{i}]")),
            }
        })
        .collect()
}

/// `[{pid, timestamp, sm_util, mem_util, enc_util, dec_util}, …]`; the last four default to 0.
fn samples(v: Option<&Value>, at: &str) -> Res<Vec<UtilSample>> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    array(v, at)?
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let w = format!("{at}[{i}]");
            let m = object(s, &w)?;
            check_keys(
                m,
                &w,
                &[
                    "pid",
                    "timestamp",
                    "sm_util",
                    "mem_util",
                    "enc_util",
                    "dec_util",
                ],
            )?;
            let pct = |key: &str| -> Res<u32> {
                match m.get(key) {
                    None | Some(Value::Null) => Ok(0),
                    Some(v) => int_in(v, &format!("{w}.{key}")),
                }
            };
            Ok(UtilSample {
                pid: req_int(m, "pid", &w)?,
                timestamp: req_int(m, "timestamp", &w)?,
                sm_util: pct("sm_util")?,
                mem_util: pct("mem_util")?,
                enc_util: pct("enc_util")?,
                dec_util: pct("dec_util")?,
            })
        })
        .collect()
}

/// `[[ms, bytes], …]`, times strictly increasing; absent or null is no steps.
fn steps(v: Option<&Value>, at: &str) -> Res<Vec<(u64, u64)>> {
    let w = format!("{at}.used_gpu_memory_steps");
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (i, step) in array(v, &w)?.iter().enumerate() {
        let ws = format!("{w}[{i}]");
        let pair = array(step, &ws)?;
        let [ms, bytes] = pair.as_slice() else {
            return Err(format!("{ws} must be [ms_since_init, bytes]"));
        };
        let ms: u64 = int_in(ms, &format!("{ws}[0]"))?;
        let bytes: u64 = int_in(bytes, &format!("{ws}[1]"))?;
        if out.last().is_some_and(|(last, _)| *last >= ms) {
            return Err(format!("{ws}: step times must be strictly increasing"));
        }
        out.push((ms, bytes));
    }
    Ok(out)
}

/// `DDDDDDDD:BB:DD.F` (hex) → (domain, bus, device, function).
fn parse_bus_id(s: &str) -> Option<(u32, u32, u32, u32)> {
    let (domain, rest) = s.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (dev, function) = rest.split_once('.')?;
    let hex = |t: &str, max_len: usize| -> Option<u32> {
        if t.is_empty() || t.len() > max_len {
            return None;
        }
        u32::from_str_radix(t, 16).ok()
    };
    Some((
        hex(domain, 8)?,
        hex(bus, 2)?,
        hex(dev, 2)?,
        hex(function, 1)?,
    ))
}

fn error_map(v: Option<&Value>, at: &str, allowed: &[&str]) -> Res<BTreeMap<String, c_int>> {
    let mut out = BTreeMap::new();
    let Some(v) = v else { return Ok(out) };
    if v.is_null() {
        return Ok(out);
    }
    for (name, code) in object(v, at)? {
        let w = format!("{at}.{name}");
        let short = function_name(name, &w, allowed)?;
        out.insert(short.to_string(), error_code(code, &w)?);
    }
    Ok(out)
}

/// Checks that `name` is `nvml` + one of `allowed`; returns the name without the prefix.
fn function_name<'a>(name: &'a str, at: &str, allowed: &[&str]) -> Res<&'a str> {
    match name.strip_prefix("nvml") {
        Some(short) if allowed.contains(&short) => Ok(short),
        _ => Err(format!(
            "{at}: {name:?} is not a function the double exports here (allowed: {})",
            allowed
                .iter()
                .map(|n| format!("nvml{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn error_code(v: &Value, at: &str) -> Res<c_int> {
    let code: c_int = int_in(v, at)?;
    if code == 0 {
        return Err(format!("{at}: 0 is NVML_SUCCESS, not an error code"));
    }
    Ok(code)
}

fn object<'a>(v: &'a Value, at: &str) -> Res<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| format!("{at} must be an object, got {v}"))
}

fn array<'a>(v: &'a Value, at: &str) -> Res<&'a Vec<Value>> {
    v.as_array()
        .ok_or_else(|| format!("{at} must be an array, got {v}"))
}

fn string<'a>(v: &'a Value, at: &str) -> Res<&'a str> {
    string_value(v).map_err(|e| e.at(at))
}

fn check_keys(obj: &Map<String, Value>, at: &str, known: &[&str]) -> Res<()> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "unknown key {k:?} in {at} (known: {})",
            known.join(", ")
        )),
        None => Ok(()),
    }
}

/// `key` of the object at `at`, as error messages name it. Only formatted when an error is
/// reported: a scenario with tens of thousands of processes would otherwise spend most of its
/// parse formatting paths that are never shown.
fn key_path(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

fn req_string(obj: &Map<String, Value>, key: &str, at: &str) -> Res<String> {
    match obj.get(key) {
        Some(v) => Ok(string_value(v)
            .map_err(|e| e.at(&key_path(at, key)))?
            .to_string()),
        None => Err(format!("{} is required", key_path(at, key))),
    }
}

fn opt_string(obj: &Map<String, Value>, key: &str, at: &str) -> Res<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => Ok(Some(
            string_value(v)
                .map_err(|e| e.at(&key_path(at, key)))?
                .to_string(),
        )),
    }
}

fn req_int<T: TryFrom<i128>>(obj: &Map<String, Value>, key: &str, at: &str) -> Res<T> {
    match obj.get(key) {
        Some(v) => int_value(v).map_err(|e| e.at(&key_path(at, key))),
        None => Err(format!("{} is required", key_path(at, key))),
    }
}

fn int_in<T: TryFrom<i128>>(v: &Value, at: &str) -> Res<T> {
    int_value(v).map_err(|e| e.at(at))
}

/// What was wrong with a value, before the path naming it is known.
enum ValueError<'a> {
    NotInteger(&'a Value),
    OutOfRange(i128),
    NotString(&'a Value),
    Nul,
}

impl ValueError<'_> {
    fn at(self, at: &str) -> String {
        match self {
            Self::NotInteger(v) => format!("{at} must be an integer, got {v}"),
            Self::OutOfRange(wide) => format!("{at} = {wide} is out of range"),
            Self::NotString(v) => format!("{at} must be a string, got {v}"),
            Self::Nul => format!("{at} must not contain NUL"),
        }
    }
}

fn int_value<T: TryFrom<i128>>(v: &Value) -> Result<T, ValueError<'_>> {
    let wide: i128 = if let Some(u) = v.as_u64() {
        u.into()
    } else if let Some(i) = v.as_i64() {
        i.into()
    } else {
        return Err(ValueError::NotInteger(v));
    };
    T::try_from(wide).map_err(|_| ValueError::OutOfRange(wide))
}

fn string_value(v: &Value) -> Result<&str, ValueError<'_>> {
    let s = v.as_str().ok_or(ValueError::NotString(v))?;
    if s.contains('\0') {
        return Err(ValueError::Nul);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{"devices": [{"name": "G", "uuid": "GPU-1",
        "pci_bus_id": "00000000:1B:00.0", "pci_device_id": 591597790, "memory": null}]}"#;

    #[test]
    fn a_bad_process_entry_is_named_by_its_path_whatever_is_wrong_with_it() {
        let with = |process: &str| {
            let text = MINIMAL.replace(
                r#""memory": null"#,
                &format!(r#""memory": null, "compute_processes": [{{"pid": 1, "used_gpu_memory": 2}}, {process}]"#),
            );
            parse(&text).err().unwrap_or_default()
        };
        assert_eq!(with(r#"{"pid": 3, "used_gpu_memory": 4}"#), "");
        for (process, message) in [
            (
                r#"{"pid": 3, "used_gpu_memory": 4, "colour": 1}"#,
                "unknown key \"colour\" in devices[0].compute_processes[1]",
            ),
            (
                r#"{"pid": -3, "used_gpu_memory": 4}"#,
                "devices[0].compute_processes[1].pid = -3 is out of range",
            ),
            (
                r#"{"pid": 3}"#,
                "devices[0].compute_processes[1].used_gpu_memory is required",
            ),
            (
                r#"{"pid": 3, "used_gpu_memory": "4"}"#,
                "devices[0].compute_processes[1].used_gpu_memory must be an integer",
            ),
            (
                r#"{"pid": 3, "used_gpu_memory": 4, "name": 5}"#,
                "devices[0].compute_processes[1].name must be a string",
            ),
            (
                r#"{"pid": 3, "used_gpu_memory": 4, "gpu_instance_id": "x"}"#,
                "devices[0].compute_processes[1].gpu_instance_id must be an integer",
            ),
            ("7", "devices[0].compute_processes[1] must be an object"),
        ] {
            let error = with(process);
            assert!(error.contains(message), "{process}: {error}");
        }
    }

    #[test]
    fn minimal_scenario_gets_defaults() {
        let s = parse(MINIMAL).expect("parses");
        assert_eq!(s.driver_version, "590.48.01");
        assert_eq!(s.nvml_version, "13.590.48.01");
        assert_eq!(s.cuda_driver_version, 13010);
        let d = &s.devices[0];
        assert!(d.memory.is_none());
        assert_eq!(d.pci.bus_id_legacy, "0000:1B:00.0");
        assert_eq!((d.pci.domain, d.pci.bus, d.pci.device), (0, 0x1B, 0));
        assert_eq!(d.cuda_compute_capability, (9, 0));
        assert_eq!(d.mig_mode, None);
    }

    #[test]
    fn strings_without_nul_is_off_unless_asked_for_and_must_be_a_bool() {
        assert!(!parse(MINIMAL).expect("parses").strings_without_nul);
        let asked = MINIMAL.replacen('{', r#"{"strings_without_nul": true, "#, 1);
        assert!(parse(&asked).expect("parses").strings_without_nul);
        let wrong = MINIMAL.replacen('{', r#"{"strings_without_nul": 1, "#, 1);
        let err = parse(&wrong).unwrap_err();
        assert!(err.contains("strings_without_nul"), "{err}");
    }

    #[test]
    fn sentinel_and_null_instances() {
        let s = parse(
            r#"{"devices": [{"name": "G", "uuid": "GPU-1", "pci_bus_id": "00000000:1B:00.0",
            "pci_device_id": 1, "memory": null, "compute_processes": [
            {"pid": 7, "used_gpu_memory": 18446744073709551615, "gpu_instance_id": null}]}]}"#,
        )
        .expect("parses");
        let p = &s.devices[0].compute[0];
        assert_eq!(p.used_gpu_memory, u64::MAX);
        assert_eq!(p.gpu_instance_id, u32::MAX);
        assert_eq!(p.compute_instance_id, u32::MAX);
    }

    #[test]
    fn steps_change_a_process_and_its_device_over_time() {
        let s = parse(
            r#"{"devices": [{"name": "G", "uuid": "GPU-1", "pci_bus_id": "00000000:1B:00.0",
            "pci_device_id": 1,
            "memory": {"total": 1000, "reserved": 0, "free": 900, "used": 100},
            "compute_processes": [
              {"pid": 7, "used_gpu_memory": 60, "used_gpu_memory_steps": [[100, 300], [250, 20]]},
              {"pid": 8, "used_gpu_memory": 40}]}]}"#,
        )
        .expect("parses");
        let d = &s.devices[0];
        let p = &d.compute[0];
        assert_eq!(
            [0, 99, 100, 249, 250, 10_000].map(|ms| p.used_at(ms)),
            [60, 60, 300, 300, 20, 20]
        );
        assert_eq!(d.compute[1].used_at(500), 40, "no steps: constant");
        let at = |ms| d.memory_at(ms).map(|m| (m.used, m.free));
        assert_eq!(at(0), Some((100, 900)));
        assert_eq!(at(150), Some((340, 660)));
        assert_eq!(at(300), Some((60, 940)));
    }

    #[test]
    fn steps_must_be_pairs_in_increasing_time() {
        let scenario = |steps: &str| {
            format!(
                r#"{{"devices": [{{"name": "G", "uuid": "GPU-1", "pci_bus_id": "00000000:1B:00.0",
                "pci_device_id": 1, "memory": null, "compute_processes": [
                {{"pid": 7, "used_gpu_memory": 1, "used_gpu_memory_steps": {steps}}}]}}]}}"#
            )
        };
        assert!(parse(&scenario("null")).is_ok());
        assert!(parse(&scenario("[]")).is_ok());
        for (bad, needle) in [
            ("[[10, 1], [10, 2]]", "strictly increasing"),
            ("[[10]]", "[ms_since_init, bytes]"),
            ("[[10, -1]]", "out of range"),
            ("{}", "must be an array"),
        ] {
            let e = parse(&scenario(bad)).expect_err(bad);
            assert!(e.contains(needle), "{e:?} should mention {needle:?}");
        }
    }

    #[test]
    fn telemetry_keys_parse_and_default_to_not_supported() {
        let s = parse(MINIMAL).expect("parses");
        let d = &s.devices[0];
        assert!(d.utilization.is_none() && d.temperature.is_none() && d.pcie.is_none());
        assert!(d.process_utilization.is_empty() && d.lost_after_ms.is_none());
        let s = parse(&MINIMAL.replace(
            "\"memory\": null",
            r#""memory": null, "utilization": {"gpu": 87, "memory": 41}, "temperature": 64,
            "power_usage_mw": 412000, "power_limit_mw": 700000,
            "clocks": {"graphics": 1755, "memory": 2619}, "fan_speed": 30,
            "pcie": {"generation": 5, "width": 16}, "encoder": 3, "decoder": 12,
            "process_utilization": [{"pid": 7, "timestamp": 500, "sm_util": 80}],
            "lost_after_ms": 1500"#,
        ))
        .expect("parses");
        let d = &s.devices[0];
        assert_eq!(d.utilization, Some((87, 41)));
        assert_eq!(d.clocks, Some((1755, 2619)));
        assert_eq!(d.pcie, Some((5, 16)));
        assert_eq!(d.power_usage_mw, Some(412_000));
        assert_eq!(d.process_utilization[0].sm_util, 80);
        assert_eq!(d.process_utilization[0].mem_util, 0);
        assert_eq!(d.lost_after_ms, Some(1500));
        let e = parse(&MINIMAL.replace(
            "\"memory\": null",
            r#""memory": null, "clocks": {"graphics": 1, "sm": 2}"#,
        ))
        .expect_err("unknown clock key");
        assert!(e.contains("unknown key"), "{e}");
    }

    #[test]
    fn stride_and_delays_parse_and_reject_what_no_driver_does() {
        let d = &parse(MINIMAL).expect("parses").devices[0];
        assert_eq!(d.process_info_stride, 24);
        assert!(d.delays_ms.is_empty() && d.delays_from_ms.is_none());
        let s = parse(&MINIMAL.replace(
            "\"memory\": null",
            r#""memory": null, "process_info_stride": 32,
            "delays_ms": {"nvmlDeviceGetMemoryInfo_v2": 60000}, "delays_from_ms": 300"#,
        ))
        .expect("parses");
        let d = &s.devices[0];
        assert_eq!(d.process_info_stride, 32);
        assert_eq!(d.delays_ms.get("DeviceGetMemoryInfo_v2"), Some(&60_000));
        assert_eq!(d.delays_from_ms, Some(300));
        for (bad, needle) in [
            (r#""process_info_stride": 28"#, "must be 24 or 32"),
            (
                r#""delays_ms": {"nvmlNoSuchCall": 1}"#,
                "not a function the double exports",
            ),
            (r#""delays_ms": {"nvmlDeviceGetName": -1}"#, "out of range"),
        ] {
            let e =
                parse(&MINIMAL.replace("\"memory\": null", &format!("\"memory\": null, {bad}")))
                    .expect_err(bad);
            assert!(e.contains(needle), "{e:?} should mention {needle:?}");
        }
    }

    #[test]
    fn strictness() {
        let bad = [
            (r#"{"devices": [], "typo": 1}"#, "unknown key"),
            (r#"{}"#, "devices"),
            (
                r#"{"devices": [], "errors": {"nvmlDeviceGetMemoryInfo_v3": 3}}"#,
                "not a function",
            ),
            (
                r#"{"devices": [], "errors": {"nvmlDeviceGetName": 0}}"#,
                "NVML_SUCCESS",
            ),
            (r#"{"devices": [], "missing_symbols": ["foo"]}"#, "foo"),
            (
                &MINIMAL.replace("00000000:1B:00.0", "0000:1b:00.0"),
                "must be written",
            ),
            (&MINIMAL.replace(", \"memory\": null", ""), "memory"),
            (
                &MINIMAL.replace("591597790", "-1"),
                "pci_device_id = -1 is out of range",
            ),
        ];
        for (text, needle) in bad {
            let e = parse(text).expect_err(text);
            assert!(e.contains(needle), "{e:?} should mention {needle:?}");
        }
        // Device-only errors are refused at device level for system functions.
        let e = parse(&MINIMAL.replace(
            "\"memory\": null",
            "\"memory\": null, \"errors\": {\"nvmlSystemGetDriverVersion\": 3}",
        ))
        .expect_err("system function in device errors");
        assert!(e.contains("not a function"), "{e}");
    }
}

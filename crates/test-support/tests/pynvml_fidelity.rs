//! The NVML double agrees with NVIDIA's own Python binding.
//!
//! Every scenario in `fixtures/nvml/` is read through `pynvml` (package `nvidia-ml-py`) by
//! `pynvml_read.py`, in its own process, with the double loaded as `libnvidia-ml.so.1` through
//! `LD_LIBRARY_PATH`. This file parses the scenario on its own (plain `serde_json::Value`, not
//! the double's parser), computes what pynvml must report, and compares the whole document.
//! A few scenario-specific assertions then spell out the properties the scenarios exist for,
//! so a fixture and the model cannot drift together unnoticed.
//!
//! No Python, no venv, no Python package index: the test fails, loudly (see
//! `test_support::pynvml_python`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{Map, Value, json};

const FUNCTION_NOT_FOUND: u64 = 13;
const INSUFFICIENT_SIZE: u64 = 7;
const NOT_SUPPORTED: u64 = 3;
const NOT_FOUND: u64 = 6;
/// The sampling period the double reports with encoder/decoder utilization, µs.
const CODEC_SAMPLING_PERIOD_US: u64 = 167_000;
const UNINITIALIZED: u64 = 1;
const MEMORY_V2_VERSION: u64 = 0x0200_0028;
const NOT_AVAILABLE: u64 = u64::MAX;
const NO_INSTANCE: u64 = 0xFFFF_FFFF;
const MIB: u64 = 1 << 20;
/// pynvml_read.py retries a process list at most this many times in all.
const MAX_LIST_ATTEMPTS: usize = 3;

/// The scenario files the project promises (more may exist; all are checked).
const REQUIRED: &[&str] = &[
    "no_gpus",
    "one_gpu",
    "four_gpus",
    "reserved",
    "pre_r510",
    "sentinel",
    "used_gt_total",
    "init_driver_not_loaded",
    "init_version_mismatch",
    "no_permission",
    "count_grows",
    "mig",
    "unified_memory",
    "telemetry",
    "gpu_lost",
];

fn scenarios() -> Vec<PathBuf> {
    let dir = test_support::fixtures_dir().join("nvml");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .expect("scenario file name")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn every_scenario_reads_back_through_pynvml() {
    let python = test_support::pynvml_python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pynvml_read.py");
    let files = scenarios();
    let names: Vec<String> = files.iter().map(|p| stem(p)).collect();
    for required in REQUIRED {
        assert!(
            names.iter().any(|n| n == required),
            "fixtures/nvml/{required}.json is missing"
        );
    }

    let mut failures = Vec::new();
    for scenario in &files {
        let name = stem(scenario);
        let started = Instant::now();
        let doc = load(scenario);
        let model = Model::new(&doc);
        let pids = model.named_pids();
        let lib_dir = test_support::nvml_double_for(scenario);
        let out = Command::new(&python)
            .arg(&script)
            .args(pids.iter().map(u64::to_string))
            .env("LD_LIBRARY_PATH", &lib_dir)
            .env("NVML_DOUBLE_SCENARIO", scenario)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            failures.push(format!(
                "{name}: pynvml_read.py failed ({}):\n{stderr}",
                out.status
            ));
            continue;
        }
        let actual: Value = match serde_json::from_slice(&out.stdout) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!(
                    "{name}: output is not JSON ({e}); stderr:\n{stderr}"
                ));
                continue;
            }
        };
        let expected = model.expected(&pids);
        let mut diffs = Vec::new();
        diff("", &expected, &actual, &mut diffs);
        diffs.extend(error_string_mismatches(&actual));
        diffs.extend(specific_checks(&name, &actual));
        if !stderr.trim().is_empty() {
            diffs.push(format!("unexpected stderr: {stderr}"));
        }
        eprintln!(
            "{name}: {} ({} ms)",
            if diffs.is_empty() { "ok" } else { "MISMATCH" },
            started.elapsed().as_millis()
        );
        for d in diffs {
            failures.push(format!("{name}: {d}"));
        }
    }
    assert!(
        failures.is_empty(),
        "the NVML double and pynvml disagree:\n{}",
        failures.join("\n")
    );
}

/// Byte figures are whole MiB, so nvidia-smi-style MiB comparisons stay exact
/// (`u64::MAX`, NVML's "not available", excepted).
#[test]
fn scenario_byte_values_are_whole_mib() {
    fn walk(v: &Value, key: &str, at: &str, bad: &mut Vec<String>) {
        match v {
            Value::Object(m) => m
                .iter()
                .for_each(|(k, v)| walk(v, k, &format!("{at}.{k}"), bad)),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, v)| walk(v, key, &format!("{at}[{i}]"), bad)),
            Value::Number(n) => {
                let bytes = ["total", "reserved", "free", "used", "used_gpu_memory"];
                if bytes.contains(&key)
                    && n.as_u64()
                        .is_none_or(|b| b != NOT_AVAILABLE && b % MIB != 0)
                {
                    bad.push(format!("{at} = {n}"));
                }
            }
            _ => {}
        }
    }
    let mut bad = Vec::new();
    for scenario in scenarios() {
        walk(&load(&scenario), "", &stem(&scenario), &mut bad);
    }
    assert!(bad.is_empty(), "not whole MiB: {}", bad.join(", "));
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// The model: what pynvml_read.py must print for a scenario.

struct Model<'a> {
    doc: &'a Value,
    missing: Vec<&'a str>,
    errors: Option<&'a Map<String, Value>>,
}

fn u(v: &Value, what: &str) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{what} must be an unsigned integer, found {v}"))
}

fn list(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn ok(v: Value) -> Value {
    json!({ "value": v })
}

fn err(code: u64) -> Value {
    json!({ "error": code })
}

impl<'a> Model<'a> {
    fn new(doc: &'a Value) -> Self {
        let missing = list(doc.get("missing_symbols"))
            .iter()
            .map(|v| v.as_str().expect("missing_symbols holds strings"))
            .collect();
        Model {
            doc,
            missing,
            errors: doc.get("errors").and_then(Value::as_object),
        }
    }

    fn devices(&self) -> &'a [Value] {
        list(self.doc.get("devices"))
    }

    fn named_pids(&self) -> Vec<u64> {
        let mut pids: Vec<u64> = self
            .devices()
            .iter()
            .flat_map(|d| {
                list(d.get("compute_processes"))
                    .iter()
                    .chain(list(d.get("graphics_processes")))
            })
            .filter(|p| p.get("name").is_some())
            .map(|p| u(&p["pid"], "pid"))
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// The error pynvml reports for `symbol` before the double's answer, if any:
    /// a missing symbol, then the top-level `errors`, then the device's.
    fn failure(&self, symbol: &str, dev: Option<&'a Value>) -> Option<u64> {
        if self.missing.contains(&symbol) {
            return Some(FUNCTION_NOT_FOUND);
        }
        let device_errors = dev.and_then(|d| d.get("errors")).and_then(Value::as_object);
        [self.errors, device_errors]
            .into_iter()
            .flatten()
            .find_map(|errors| errors.get(symbol))
            .map(|c| u(c, symbol))
    }

    fn call(
        &self,
        symbol: &str,
        dev: Option<&'a Value>,
        answer: impl FnOnce() -> Result<Value, u64>,
    ) -> Value {
        match self.failure(symbol, dev) {
            Some(code) => err(code),
            None => match answer() {
                Ok(v) => ok(v),
                Err(code) => err(code),
            },
        }
    }

    fn init(&self) -> Value {
        if self.missing.contains(&"nvmlInitWithFlags") {
            return err(FUNCTION_NOT_FOUND);
        }
        if let Some(code) = self.doc.get("init_error").and_then(Value::as_u64) {
            return err(code);
        }
        self.call("nvmlInitWithFlags", None, || Ok(Value::Null))
    }

    fn expected(&self, pids: &[u64]) -> Value {
        let init = self.init();
        let mut out = Map::new();
        out.insert("init".into(), init.clone());
        // error_strings are checked separately (their content is pynvml's own table).
        if init.get("error").is_some() {
            return Value::Object(out);
        }
        let s = |key: &str, default: Value| self.doc.get(key).cloned().unwrap_or(default);
        let driver = s("driver_version", json!("590.48.01"));
        let cuda = s("cuda_driver_version", json!(13010));
        let nvml = s(
            "nvml_version",
            json!(format!(
                "{}.{}",
                u(&cuda, "cuda_driver_version") / 1000,
                driver.as_str().expect("driver_version")
            )),
        );
        out.insert(
            "driver_version".into(),
            self.call("nvmlSystemGetDriverVersion", None, || Ok(driver.clone())),
        );
        out.insert(
            "nvml_version".into(),
            self.call("nvmlSystemGetNVMLVersion", None, || Ok(nvml.clone())),
        );
        out.insert(
            "cuda_driver_version".into(),
            self.call("nvmlSystemGetCudaDriverVersion", None, || Ok(cuda.clone())),
        );
        out.insert(
            "cuda_driver_version_v2".into(),
            self.call("nvmlSystemGetCudaDriverVersion_v2", None, || {
                Ok(cuda.clone())
            }),
        );
        let mut names = Map::new();
        for pid in pids {
            let name = self
                .devices()
                .iter()
                .flat_map(|d| {
                    list(d.get("compute_processes"))
                        .iter()
                        .chain(list(d.get("graphics_processes")))
                })
                .filter(|p| p["pid"].as_u64() == Some(*pid))
                .find_map(|p| p.get("name").cloned())
                .expect("named pid");
            names.insert(
                pid.to_string(),
                self.call("nvmlSystemGetProcessName", None, || Ok(name)),
            );
        }
        out.insert("process_names".into(), Value::Object(names));
        let n = self.devices().len() as u64;
        let count = self.call("nvmlDeviceGetCount_v2", None, || Ok(json!(n)));
        let listed = count.get("value").and_then(Value::as_u64).unwrap_or(0);
        out.insert("device_count".into(), count);
        let devices: Vec<Value> = self.devices()[..listed as usize]
            .iter()
            .enumerate()
            .map(|(i, d)| self.device(i, d))
            .collect();
        out.insert("devices".into(), Value::Array(devices));
        out.insert("refcount".into(), self.refcount(n));
        Value::Object(out)
    }

    fn refcount(&self, n: u64) -> Value {
        // One init so far; pynvml_read.py then does: init, shutdown, count, shutdown, count,
        // shutdown.
        let mut inits = 1u32;
        let mut seq = Vec::new();
        let init = self.init();
        if init.get("error").is_none() {
            inits += 1;
        }
        seq.push(init);
        let shutdown = |inits: &mut u32| -> Value {
            if *inits == 0 {
                return err(UNINITIALIZED);
            }
            let r = self.call("nvmlShutdown", None, || Ok(Value::Null));
            if r.get("error").is_none() {
                *inits -= 1;
            }
            r
        };
        let count = |inits: u32| -> Value {
            if inits == 0 {
                err(UNINITIALIZED)
            } else {
                self.call("nvmlDeviceGetCount_v2", None, || Ok(json!(n)))
            }
        };
        seq.push(shutdown(&mut inits));
        seq.push(count(inits));
        seq.push(shutdown(&mut inits));
        seq.push(count(inits));
        seq.push(shutdown(&mut inits));
        Value::Array(seq)
    }

    fn device(&self, index: usize, d: &'a Value) -> Value {
        let dev = Some(d);
        let handle = self.call("nvmlDeviceGetHandleByIndex_v2", dev, || Ok(Value::Null));
        if handle.get("error").is_some() {
            return json!({ "handle": handle });
        }
        let mem = d.get("memory").filter(|m| !m.is_null());
        let field = |k: &str| u(&mem.expect("memory")[k], k);
        let memory_v1 = self.call("nvmlDeviceGetMemoryInfo", dev, || match mem {
            None => Err(NOT_SUPPORTED),
            Some(_) => Ok(json!({
                "total": field("total"),
                "free": field("free"),
                "used": field("used") + field("reserved"),
            })),
        });
        let memory_v2 = self.call("nvmlDeviceGetMemoryInfo_v2", dev, || match mem {
            None => Err(NOT_SUPPORTED),
            Some(_) => Ok(json!({
                "version": MEMORY_V2_VERSION,
                "total": field("total"),
                "reserved": field("reserved"),
                "free": field("free"),
                "used": field("used"),
            })),
        });
        let bus_id = d["pci_bus_id"].as_str().expect("pci_bus_id");
        let parts: Vec<u64> = bus_id
            .split([':', '.'])
            .map(|h| u64::from_str_radix(h, 16).expect("hex bus id"))
            .collect();
        let pci = json!({
            "busId": bus_id,
            "busIdLegacy": format!("{:04X}:{:02X}:{:02X}.{:X}", parts[0] & 0xFFFF, parts[1], parts[2], parts[3]),
            "domain": parts[0],
            "bus": parts[1],
            "device": parts[2],
            "pciDeviceId": d["pci_device_id"],
            "pciSubSystemId": d.get("pci_subsystem_id").cloned().unwrap_or(json!(0)),
        });
        let compute = list(d.get("compute_processes"));
        let graphics = list(d.get("graphics_processes"));
        let mut undercount = d
            .get("process_undercount")
            .filter(|v| !v.is_null())
            .map(|v| (u(&v["by"], "by"), u(&v["times"], "times")));
        let mig = d.get("mig_mode").filter(|v| !v.is_null());
        let cc = d.get("cuda_compute_capability").filter(|v| !v.is_null());
        json!({
            "handle": handle,
            "index": self.call("nvmlDeviceGetIndex", dev, || Ok(json!(index))),
            "name": self.call("nvmlDeviceGetName", dev, || Ok(d["name"].clone())),
            "uuid": self.call("nvmlDeviceGetUUID", dev, || Ok(d["uuid"].clone())),
            "pci": self.call("nvmlDeviceGetPciInfo_v3", dev, || Ok(pci)),
            "memory_v1": memory_v1,
            "memory_v2": memory_v2,
            // Same order as pynvml_read.py: the undercount is shared by all compute versions.
            "compute": self.listing("nvmlDeviceGetComputeRunningProcesses_v3", true, dev, compute, &mut undercount),
            "compute_v2": self.listing("nvmlDeviceGetComputeRunningProcesses_v2", false, dev, compute, &mut undercount),
            "graphics": self.listing("nvmlDeviceGetGraphicsRunningProcesses_v3", true, dev, graphics, &mut None),
            "graphics_v2": self.listing("nvmlDeviceGetGraphicsRunningProcesses_v2", false, dev, graphics, &mut None),
            "mps": self.listing("nvmlDeviceGetMPSComputeRunningProcesses_v3", true, dev, &[], &mut None),
            "mig_mode": self.call("nvmlDeviceGetMigMode", dev, || match mig {
                None => Err(NOT_SUPPORTED),
                Some(m) => Ok(json!([m["current"], m["pending"]])),
            }),
            "mig_devices": self.call("nvmlDeviceGetMaxMigDeviceCount", dev, || match mig {
                None => Err(NOT_SUPPORTED),
                Some(_) => Ok(Value::Array(
                    list(d.get("mig_devices"))
                        .iter()
                        .map(|m| {
                            let mem = &m["memory"];
                            json!({
                                "gpu_instance_id": m["gpu_instance_id"],
                                "compute_instance_id": m["compute_instance_id"],
                                "uuid": m["uuid"],
                                "memory_v2": {
                                    "version": MEMORY_V2_VERSION,
                                    "total": mem["total"],
                                    "reserved": mem["reserved"],
                                    "free": mem["free"],
                                    "used": mem["used"],
                                },
                            })
                        })
                        .collect(),
                )),
            }),
            "cuda_compute_capability": self.call("nvmlDeviceGetCudaComputeCapability", dev, || {
                Ok(cc.map_or(json!([9, 0]), |c| json!([c["major"], c["minor"]])))
            }),
            "telemetry": self.telemetry(d),
        })
    }

    /// What pynvml_read.py's `telemetry` reads: each figure declared, or NOT_SUPPORTED.
    fn telemetry(&self, d: &'a Value) -> Value {
        let dev = Some(d);
        let declared = |key: &str| d.get(key).filter(|v| !v.is_null());
        let figure = |symbol: &str, value: Option<Value>| {
            self.call(symbol, dev, || value.ok_or(NOT_SUPPORTED))
        };
        let of = |key: &str, sub: &str| declared(key).map(|v| v[sub].clone());
        // Samples the double has taken by the time pynvml reads (well within a second).
        let samples: Vec<Value> = list(d.get("process_utilization"))
            .iter()
            .filter(|s| u(&s["timestamp"], "timestamp") < 1_000_000)
            .map(|s| {
                let pct = |k: &str| s.get(k).cloned().unwrap_or(json!(0));
                json!({
                    "pid": s["pid"],
                    "timeStamp": s["timestamp"],
                    "smUtil": pct("sm_util"),
                    "memUtil": pct("mem_util"),
                    "encUtil": pct("enc_util"),
                    "decUtil": pct("dec_util"),
                })
            })
            .collect();
        let util_symbol = "nvmlDeviceGetProcessUtilization";
        let all = self.call(util_symbol, dev, || {
            if samples.is_empty() {
                Err(NOT_FOUND)
            } else {
                Ok(Value::Array(samples.clone()))
            }
        });
        let since_newest = self.call(util_symbol, dev, || Err(NOT_FOUND));
        json!({
            "utilization": figure(
                "nvmlDeviceGetUtilizationRates",
                declared("utilization").map(|v| json!({"gpu": v["gpu"], "memory": v["memory"]})),
            ),
            "temperature": figure("nvmlDeviceGetTemperature", declared("temperature").cloned()),
            "power_usage": figure("nvmlDeviceGetPowerUsage", declared("power_usage_mw").cloned()),
            "enforced_power_limit": figure(
                "nvmlDeviceGetEnforcedPowerLimit",
                declared("power_limit_mw").cloned(),
            ),
            "clock_graphics": figure("nvmlDeviceGetClockInfo", of("clocks", "graphics")),
            "clock_sm": figure("nvmlDeviceGetClockInfo", of("clocks", "graphics")),
            "clock_memory": figure("nvmlDeviceGetClockInfo", of("clocks", "memory")),
            "fan_speed": figure("nvmlDeviceGetFanSpeed", declared("fan_speed").cloned()),
            "fan_speed_v2": figure("nvmlDeviceGetFanSpeed_v2", declared("fan_speed").cloned()),
            "pcie_generation": figure(
                "nvmlDeviceGetCurrPcieLinkGeneration",
                of("pcie", "generation"),
            ),
            "pcie_width": figure("nvmlDeviceGetCurrPcieLinkWidth", of("pcie", "width")),
            "encoder": figure(
                "nvmlDeviceGetEncoderUtilization",
                declared("encoder").map(|v| json!([v, CODEC_SAMPLING_PERIOD_US])),
            ),
            "decoder": figure(
                "nvmlDeviceGetDecoderUtilization",
                declared("decoder").map(|v| json!([v, CODEC_SAMPLING_PERIOD_US])),
            ),
            "process_utilization": {"all": all, "since_newest": since_newest},
        })
    }

    /// pynvml's algorithm (size query with count 0, then a buffer of `2n + 5`, one data call)
    /// against the double's protocol, retried by pynvml_read.py while INSUFFICIENT_SIZE.
    fn listing(
        &self,
        symbol: &str,
        unversioned_wrapper: bool,
        dev: Option<&'a Value>,
        processes: &[Value],
        undercount: &mut Option<(u64, u64)>,
    ) -> Value {
        if let Some(code) = self.failure(symbol, dev) {
            let mut v = json!({ "error": code, "attempts": [] });
            if code == FUNCTION_NOT_FOUND && self.missing.contains(&symbol) && unversioned_wrapper {
                // pynvml's throwOnVersionMismatch turns it into NVMLLibraryMismatchError.
                v["library_mismatch"] = json!(true);
            }
            return v;
        }
        let n = processes.len() as u64;
        let mut attempts = Vec::new();
        for attempt in 0..MAX_LIST_ATTEMPTS {
            let fits = n == 0 || {
                let reported = match undercount {
                    Some((by, times)) if *times > 0 => {
                        *times -= 1;
                        n.saturating_sub(*by)
                    }
                    _ => n,
                };
                2 * reported + 5 >= n
            };
            if fits {
                let early_r535 = unversioned_wrapper
                    && dev.is_some_and(|d| d["process_info_stride"].as_u64() == Some(32));
                let entries: Vec<Value> = if early_r535 {
                    misread_early_r535(processes)
                } else {
                    processes.iter().map(entry).collect()
                };
                return json!({ "attempts": attempts, "value": entries });
            }
            if attempt + 1 == MAX_LIST_ATTEMPTS {
                break;
            }
            attempts.push(INSUFFICIENT_SIZE);
        }
        json!({ "attempts": attempts, "error": INSUFFICIENT_SIZE })
    }
}

/// What pynvml, which reads `_v3` lists as 24-byte `nvmlProcessInfo_t`, reports for the
/// 32-byte entries of an early R535 driver (`process_info_stride: 32`): the bytes the double
/// writes (pid, zero padding, used, GPU / compute instance, zero `usedGpuCcProtectedMemory`)
/// re-cut 24 bytes apart. That pynvml reports exactly this proves the double writes the
/// early R535 layout byte for byte (pynvml#48).
fn misread_early_r535(processes: &[Value]) -> Vec<Value> {
    let mut bytes: Vec<u8> = Vec::new();
    for p in processes {
        let instance = |k: &str| p.get(k).and_then(Value::as_u64).unwrap_or(NO_INSTANCE);
        bytes.extend((u(&p["pid"], "pid") as u32).to_ne_bytes());
        bytes.extend(0_u32.to_ne_bytes());
        bytes.extend(u(&p["used_gpu_memory"], "used_gpu_memory").to_ne_bytes());
        bytes.extend((instance("gpu_instance_id") as u32).to_ne_bytes());
        bytes.extend((instance("compute_instance_id") as u32).to_ne_bytes());
        bytes.extend(0_u64.to_ne_bytes());
    }
    let u32_at = |at: usize| u64::from(u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap()));
    let u64_at = |at: usize| u64::from_ne_bytes(bytes[at..at + 8].try_into().unwrap());
    (0..processes.len())
        .map(|i| {
            let at = i * 24;
            let used = u64_at(at + 8);
            json!({
                "pid": u32_at(at),
                "usedGpuMemory": if used == NOT_AVAILABLE { Value::Null } else { json!(used) },
                "gpuInstanceId": u32_at(at + 16),
                "computeInstanceId": u32_at(at + 20),
            })
        })
        .collect()
}

/// A scenario process as pynvml reports it.
fn entry(p: &Value) -> Value {
    let used = u(&p["used_gpu_memory"], "used_gpu_memory");
    let instance = |k: &str| p.get(k).and_then(Value::as_u64).unwrap_or(NO_INSTANCE);
    json!({
        "pid": p["pid"],
        // pynvml turns NVML_VALUE_NOT_AVAILABLE into None.
        "usedGpuMemory": if used == NOT_AVAILABLE { Value::Null } else { json!(used) },
        "gpuInstanceId": instance("gpu_instance_id"),
        "computeInstanceId": instance("compute_instance_id"),
    })
}

// ---------------------------------------------------------------------------------------------
// Comparison

/// Every key of `expected` must be in `actual` with an equal value, and vice versa
/// (`error_strings` excepted: it is checked on its own).
fn diff(path: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let p = format!("{path}/{k}");
                match a.get(k) {
                    Some(av) => diff(&p, ev, av, out),
                    None => out.push(format!("{p}: missing, expected {ev}")),
                }
            }
            for k in a.keys() {
                let checked_apart = path.is_empty() && k == "error_strings";
                if !e.contains_key(k) && !checked_apart {
                    out.push(format!("{path}/{k}: unexpected {}", a[k]));
                }
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                diff(&format!("{path}[{i}]"), ev, av, out);
            }
        }
        (Value::Array(e), Value::Array(a)) => out.push(format!(
            "{path}: expected {} entries, pynvml gave {}: expected {expected}, got {actual}",
            e.len(),
            a.len()
        )),
        _ if expected == actual => {}
        _ => out.push(format!("{path}: expected {expected}, pynvml gave {actual}")),
    }
}

/// nvmlErrorString must give pynvml's own text for every code pynvml knows.
fn error_string_mismatches(actual: &Value) -> Vec<String> {
    let Some(table) = actual.get("error_strings").and_then(Value::as_object) else {
        return vec!["error_strings missing".into()];
    };
    let mut out = Vec::new();
    for code in [
        "1", "2", "3", "4", "6", "7", "9", "12", "13", "15", "18", "20", "999",
    ] {
        if !table.contains_key(code) {
            out.push(format!("pynvml has no text for code {code}?"));
        }
    }
    for (code, pair) in table {
        if pair[0] != pair[1] {
            out.push(format!(
                "nvmlErrorString({code}) = {}, pynvml says {}",
                pair[0], pair[1]
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// What each scenario is for, spelled out.

fn specific_checks(name: &str, a: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |cond: bool, what: &str| {
        if !cond {
            out.push(format!("property failed: {what}"));
        }
    };
    let dev = |i: usize| &a["devices"][i];
    let procs = |i: usize, key: &str| -> Vec<Value> {
        dev(i)[key]["value"].as_array().cloned().unwrap_or_default()
    };
    let pids = |v: &[Value]| -> Vec<u64> { v.iter().filter_map(|p| p["pid"].as_u64()).collect() };

    // Everywhere: v1 used == v2 used + reserved when both answer.
    for (i, d) in a["devices"].as_array().into_iter().flatten().enumerate() {
        let (v1, v2) = (&d["memory_v1"]["value"], &d["memory_v2"]["value"]);
        if v1.is_object() && v2.is_object() {
            check(
                v1["used"].as_u64()
                    == Some(u(&v2["used"], "used") + u(&v2["reserved"], "reserved")),
                &format!("device {i}: v1 used == v2 used + reserved"),
            );
            check(
                v1["total"] == v2["total"] && v1["free"] == v2["free"],
                "v1/v2 total and free agree",
            );
        }
    }
    match name {
        "no_gpus" => check(a["device_count"] == ok(json!(0)), "0 devices"),
        "init_driver_not_loaded" => check(a["init"] == err(9), "init fails with 9"),
        "init_version_mismatch" => check(a["init"] == err(18), "init fails with 18"),
        "one_gpu" => {
            let (c, g) = (pids(&procs(0, "compute")), pids(&procs(0, "graphics")));
            check(c.len() == 2 && g.len() == 1, "2 compute + 1 graphics");
            check(c.iter().any(|p| g.contains(p)), "a pid in both lists");
            check(
                dev(0)["memory_v2"]["value"]["total"] == json!(81559 * MIB)
                    && dev(0)["memory_v2"]["value"]["used"] == json!(19818 * MIB),
                "nvidia-smi's H100 figures",
            );
        }
        "four_gpus" => {
            check(a["device_count"] == ok(json!(4)), "4 devices");
            let on: Vec<Vec<u64>> = (0..4).map(|i| pids(&procs(i, "compute"))).collect();
            check(
                on.iter()
                    .flatten()
                    .any(|p| on.iter().filter(|l| l.contains(p)).count() >= 2),
                "a pid on two GPUs",
            );
        }
        "reserved" => {
            let v2 = &dev(0)["memory_v2"]["value"];
            check(
                v2["used"] == json!(0) && v2["reserved"] == json!(479 * MIB),
                "idle, 479 MiB reserved",
            );
            check(
                dev(0)["memory_v1"]["value"]["used"] == json!(479 * MIB),
                "v1 used shows the reserved 479 MiB",
            );
        }
        "pre_r510" => {
            check(
                dev(0)["memory_v2"] == err(FUNCTION_NOT_FOUND),
                "memory v2: FunctionNotFound",
            );
            check(
                dev(0)["memory_v1"].get("value").is_some(),
                "memory v1 works",
            );
            check(
                a["driver_version"] == ok(json!("470.256.02")),
                "driver 470.256.02",
            );
        }
        "pre_r510_no_v3" => {
            check(
                dev(0)["compute"]["library_mismatch"] == json!(true),
                "pynvml: library mismatch for _v3",
            );
            check(!procs(0, "compute_v2").is_empty(), "processes through _v2");
        }
        "sentinel" => {
            let c = procs(0, "compute");
            check(
                c.iter().any(|p| p["usedGpuMemory"].is_null()),
                "u64::MAX reaches pynvml as 'not available'",
            );
            check(
                c.iter().any(|p| p["usedGpuMemory"].is_u64()),
                "next to a normal process",
            );
        }
        "used_gt_total" => {
            let v2 = &dev(0)["memory_v2"]["value"];
            let total = v2["total"].as_u64().unwrap_or(0);
            check(
                v2["used"].as_u64().unwrap_or(0) > total,
                "device used > total",
            );
            check(
                procs(0, "compute")
                    .iter()
                    .any(|p| p["usedGpuMemory"].as_u64().unwrap_or(0) > total),
                "a process larger than the device",
            );
        }
        "no_permission" => {
            for key in ["compute", "compute_v2", "graphics", "graphics_v2", "mps"] {
                check(
                    dev(0)[key]["error"] == json!(4),
                    &format!("device 0 {key}: NO_PERMISSION"),
                );
            }
            check(
                !procs(1, "compute").is_empty(),
                "device 1 lists its processes",
            );
        }
        "count_grows" => {
            check(
                dev(0)["compute"]["attempts"] == json!([INSUFFICIENT_SIZE]),
                "first attempt: INSUFFICIENT_SIZE",
            );
            check(
                procs(0, "compute").len() == 80,
                "all 80 processes after the retry",
            );
        }
        "mig" => {
            check(dev(0)["mig_mode"] == ok(json!([1, 1])), "MIG 1/1");
            check(
                procs(0, "compute").iter().all(|p| {
                    p["gpuInstanceId"] != json!(NO_INSTANCE)
                        && p["computeInstanceId"] != json!(NO_INSTANCE)
                }),
                "instance ids set",
            );
            check(
                dev(0)["mig_devices"]["value"]
                    .as_array()
                    .is_some_and(|m| m.len() == 3),
                "three MIG devices through their own handles",
            );
        }
        "gpu_steps" => {
            // The double's clock starts at the first init; pynvml reads within milliseconds,
            // long before the first step at 1000 ms, so it sees the declared base figures
            // (the comparison above checks them all). The steps themselves are checked
            // against the clock in nvml_double_abi.rs.
            check(
                procs(0, "compute")
                    .first()
                    .is_some_and(|p| p["usedGpuMemory"] == json!(2048 * MIB)),
                "the growing process reads its base 2 GiB before its first step",
            );
        }
        "unified_memory" => {
            check(dev(0)["name"] == ok(json!("NVIDIA GB10")), "GB10");
            check(
                dev(0)["memory_v1"] == err(NOT_SUPPORTED)
                    && dev(0)["memory_v2"] == err(NOT_SUPPORTED),
                "memory NOT_SUPPORTED",
            );
            check(
                procs(0, "compute")
                    .iter()
                    .any(|p| p["usedGpuMemory"].as_u64().is_some_and(|m| m > 0)),
                "a process with real used memory",
            );
        }
        "telemetry" => {
            let t = |i: usize, key: &str| dev(i)["telemetry"][key].clone();
            check(
                t(0, "utilization") == ok(json!({"gpu": 87, "memory": 41})),
                "H100 busy 87 %, memory 41 %",
            );
            check(
                t(0, "power_usage") == ok(json!(412_345)),
                "power in milliwatts",
            );
            check(
                t(0, "fan_speed") == err(NOT_SUPPORTED),
                "SXM H100: no fan, NOT_SUPPORTED",
            );
            check(
                t(1, "enforced_power_limit") == err(NOT_SUPPORTED)
                    && t(1, "encoder") == err(NOT_SUPPORTED),
                "L4: power limit and encoder NOT_SUPPORTED",
            );
            let all = &t(0, "process_utilization")["all"]["value"];
            check(
                all.as_array().is_some_and(|s| s.len() == 3)
                    && all[0]["smUtil"] == json!(80)
                    && all[0]["timeStamp"] == json!(100),
                "three 32-byte samples read back field by field",
            );
            check(
                t(0, "process_utilization")["since_newest"] == err(NOT_FOUND),
                "nothing newer than the newest sample: NOT_FOUND",
            );
            check(
                t(1, "process_utilization")["all"] == err(NOT_FOUND),
                "no samples at all: NOT_FOUND",
            );
        }
        "gpu_lost" => check(
            dev(1)["telemetry"]["temperature"] == ok(json!(41)),
            "GPU 1 still answers within the first second",
        ),
        _ => {}
    }
    out
}

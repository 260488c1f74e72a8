//! `hmn`: GPU and process memory at a glance.
//!
//! This first version prints the device summary (one line per GPU, then the host's memory)
//! or, with `--json`, the same as JSON on stdout. stdout carries data, stderr carries talk;
//! when there is no GPU to show, stderr says which sources were tried and why each failed.
//!
//! Exit codes: 0 success; 2 could not measure (no GPU source) or bad usage.

use std::io::Write;
use std::process::ExitCode;

use hypomnesis::{GpuDeviceInfo, HostMemory, HypomnesisError, Probe};

const USAGE: &str = "\
hmn — GPU and process memory at a glance

Usage: hmn [--json]

Prints one line per GPU (free / total / reserved memory, name, driver) and the host's memory.

Options:
  --json       print the devices and host memory as JSON on stdout
  -h, --help   print this help
  -V, --version

Environment:
  HYPOMNESIS_NVML_LIB     NVML library to load instead of libnvidia-ml.so.1
  HYPOMNESIS_NVIDIA_SMI   nvidia-smi executable to run instead of the one on PATH

Exit codes: 0 success; 2 could not measure (no GPU source) or bad usage.
";

fn main() -> ExitCode {
    let mut json = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--json" => json = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "-V" | "--version" => {
                println!("hmn {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("hmn: unknown argument `{other}` (try `hmn --help`)");
                return ExitCode::from(2);
            }
        }
    }
    let probe = Probe::new();
    let devices = probe.devices();
    let host = probe.host_memory();
    let code = if json {
        print_json(&devices, &host)
    } else {
        print_summary(&probe, &devices, &host)
    };
    ExitCode::from(code)
}

/// Writes to stdout, treating a closed pipe (`hmn | head -1`) as success.
fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

fn print_summary(
    probe: &Probe,
    devices: &Result<Vec<GpuDeviceInfo>, HypomnesisError>,
    host: &Result<HostMemory, HypomnesisError>,
) -> u8 {
    let mut text = String::new();
    let code = match devices {
        Ok(list) if list.is_empty() => {
            match probe.device_count() {
                Ok(0) | Err(_) => eprintln!("hmn: no visible GPUs."),
                Ok(n) => eprintln!("hmn: {n} GPU(s) enumerated but none readable."),
            }
            0
        }
        Ok(list) => {
            for device in list {
                text.push_str(&device_line(device));
                text.push('\n');
            }
            0
        }
        Err(e) => {
            eprintln!("hmn: no visible GPUs: {e}");
            2
        }
    };
    match host {
        Ok(h) => {
            text.push_str(&host_line(h));
            text.push('\n');
        }
        Err(e) => eprintln!("hmn: host memory unavailable: {e}"),
    }
    emit(&text);
    code
}

fn print_json(
    devices: &Result<Vec<GpuDeviceInfo>, HypomnesisError>,
    host: &Result<HostMemory, HypomnesisError>,
) -> u8 {
    let (device_value, code) = match devices {
        Ok(list) => (serde_json::to_value(list).unwrap_or_default(), 0),
        Err(e) => {
            eprintln!("hmn: no visible GPUs: {e}");
            (serde_json::Value::Array(Vec::new()), 2)
        }
    };
    let host_value = match host {
        Ok(h) => serde_json::to_value(h).unwrap_or_default(),
        Err(e) => {
            eprintln!("hmn: host memory unavailable: {e}");
            serde_json::Value::Null
        }
    };
    let document = serde_json::json!({ "devices": device_value, "host": host_value });
    emit(&format!("{document:#}\n"));
    code
}

const MIB: u64 = 1024 * 1024;

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "n/a".to_owned(), |b| format!("{} MiB", b / MIB))
}

/// `GPU 0 [NVIDIA H100 80GB HBM3]: free 61263 MiB / 81559 MiB (479 MiB reserved), driver 590.48.01`
fn device_line(device: &GpuDeviceInfo) -> String {
    let mut line = format!(
        "GPU {} [{}]: free {} / {}",
        device.index,
        device.name_or_unknown(),
        mib(device.free_bytes),
        mib(device.total_bytes)
    );
    if let Some(reserved) = device.reserved_bytes {
        line.push_str(&format!(" ({} MiB reserved)", reserved / MIB));
    }
    if device.unified_memory {
        line.push_str(" (unified memory: shares host RAM)");
    } else if device.total_bytes.is_none()
        && let Some(reason) = device.unavailable_reason("total_bytes")
    {
        line.push_str(&format!(" ({reason})"));
    }
    if let Some(driver) = &device.driver_version {
        line.push_str(&format!(", driver {driver}"));
    }
    line
}

/// Formats bytes as GiB with one decimal.
#[allow(clippy::cast_precision_loss)] // display only
fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1024.0 * 1024.0 * 1024.0))
}

/// `host: 31.3 GiB total, 20.1 GiB available; cgroup limit 8.0 GiB (v1, 2.3 GiB used)`
fn host_line(host: &HostMemory) -> String {
    let mut line = format!("host: {} total", gib(host.total_bytes));
    if let Some(available) = host.available_bytes {
        line.push_str(&format!(", {} available", gib(available)));
    }
    if let Some(cgroup) = &host.cgroup
        && let Some(limit) = cgroup.limit_bytes
    {
        let version = match cgroup.version {
            hypomnesis::CgroupVersion::V1 => "v1",
            _ => "v2",
        };
        line.push_str(&format!("; cgroup limit {} ({version}", gib(limit)));
        if let Some(usage) = cgroup.usage_bytes {
            line.push_str(&format!(", {} used", gib(usage)));
        }
        line.push(')');
    }
    line
}

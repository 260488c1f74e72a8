//! `hmn` with no command: one line per GPU, then the host's memory.
//!
//! `GPU 0 [NVIDIA H100 80GB HBM3]: free 61263 MiB / 81559 MiB (479 MiB reserved), driver 590.48.01`
//! — MiB as `nvidia-smi` prints them, so the two can be compared at a glance. `--json` prints
//! the array of device records (the original crate's shape, with more fields).

use hypomnesis::{CgroupVersion, GpuDeviceInfo, HostMemory, Probe};

use crate::Outcome;
use crate::cli::GlobalArgs;
use crate::output::{Output, Tone};
use crate::size::{format_size, mib};

pub fn run(probe: &Probe, global: &GlobalArgs, out: &Output) -> Outcome {
    let (devices, outcome) = collect(probe, global.device, out);
    if global.json {
        if outcome == Outcome::Success {
            out.json(&devices);
        }
        return outcome;
    }
    let mut text = String::new();
    for device in &devices {
        text.push_str(&device_line(device, out));
        text.push('\n');
    }
    match probe.host_memory() {
        Ok(host) => {
            text.push_str(&host_line(&host));
            text.push('\n');
        }
        Err(e) => out.say(&format!("host memory unavailable: {e}")),
    }
    out.data(&text);
    outcome
}

/// The devices to show; every problem is explained on stderr here.
fn collect(probe: &Probe, only: Option<u32>, out: &Output) -> (Vec<GpuDeviceInfo>, Outcome) {
    if let Some(index) = only {
        return match probe.device_info(index) {
            Ok(device) => (vec![device], Outcome::Success),
            Err(e) => {
                out.say(&format!("cannot read GPU {index}: {e}"));
                (Vec::new(), Outcome::CouldNotTell)
            }
        };
    }
    let count = match probe.device_count() {
        Ok(count) => count,
        Err(e) => {
            out.say(&format!("no visible GPUs: {e}"));
            return (Vec::new(), Outcome::CouldNotTell);
        }
    };
    let mut devices = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for index in 0..count {
        match probe.device_info(index) {
            Ok(device) => devices.push(device),
            Err(e) => failures.push(format!("GPU {index}: {e}")),
        }
    }
    if count == 0 {
        out.say("no visible GPUs.");
    } else if devices.is_empty() {
        out.say(&format!(
            "{count} GPU(s) enumerated but none readable: {}",
            failures.join("; ")
        ));
        return (devices, Outcome::CouldNotTell);
    }
    for failure in failures {
        out.say(&format!("skipped {failure}"));
    }
    (devices, Outcome::Success)
}

fn mib_text(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "n/a".to_owned(), |b| format!("{} MiB", mib(b)))
}

pub fn device_line(device: &GpuDeviceInfo, out: &Output) -> String {
    let free = mib_text(device.free_bytes);
    let free = match (device.free_bytes, device.total_bytes) {
        (Some(f), Some(t)) if t > 0 => {
            let tone = match f.saturating_mul(100) / t {
                0..10 => Tone::Bad,
                10..25 => Tone::Warn,
                _ => Tone::Good,
            };
            out.paint(&free, tone)
        }
        _ => free,
    };
    let mut line = format!(
        "GPU {} [{}]: free {free} / {}",
        device.index,
        device.name_or_unknown(),
        mib_text(device.total_bytes)
    );
    if let Some(reserved) = device.reserved_bytes {
        line.push_str(&format!(" ({} MiB reserved)", mib(reserved)));
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

/// `host: 31.3 GiB total, 20.1 GiB available; cgroup limit 8.0 GiB (v1, 2.3 GiB used)`
pub fn host_line(host: &HostMemory) -> String {
    let mut line = format!("host: {} total", format_size(host.total_bytes));
    if let Some(available) = host.available_bytes {
        line.push_str(&format!(", {} available", format_size(available)));
    }
    if let Some(cgroup) = &host.cgroup
        && let Some(limit) = cgroup.limit_bytes
    {
        let version = match cgroup.version {
            CgroupVersion::V1 => "v1",
            _ => "v2",
        };
        line.push_str(&format!("; cgroup limit {} ({version}", format_size(limit)));
        if let Some(usage) = cgroup.usage_bytes {
            line.push_str(&format!(", {} used", format_size(usage)));
        }
        line.push(')');
    }
    line
}

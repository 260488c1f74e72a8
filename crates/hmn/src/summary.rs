//! `hmn` with no command: one line per GPU, then the host's memory.
//!
//! `GPU 0 [NVIDIA H100 80GB HBM3]: free 61263 MiB / 81559 MiB (479 MiB reserved), driver 590.48.01`
//! — MiB as `nvidia-smi` prints them, so the two can be compared at a glance. `--json` prints
//! the array of device records (the original crate's shape, with more fields).
//!
//! `-a` / `--all` adds a second, indented line per GPU with its utilization, temperature,
//! power and clocks (`telemetry` in JSON). The host line ends with the memory pressure level:
//! macOS's own, or on Linux one derived from PSI `some avg10` (see [`psi_level`]).

use hypomnesis::{CgroupVersion, DeviceTelemetry, GpuDeviceInfo, HostMemory, PressureLevel, Probe};
use serde::Serialize;

use crate::Outcome;
use crate::cli::GlobalArgs;
use crate::output::{Output, Tone};
use crate::size::{format_size, mib};

pub fn run(probe: &Probe, global: &GlobalArgs, out: &Output) -> Outcome {
    let (devices, outcome) = collect(probe, global.device, out);
    let telemetry: Vec<Option<DeviceTelemetry>> = if global.all {
        devices
            .iter()
            .map(|d| match probe.telemetry(d.index) {
                Ok(t) => Some(t),
                Err(e) => {
                    out.say(&format!("GPU {}: telemetry unavailable: {e}", d.index));
                    None
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    if global.json {
        if outcome == Outcome::Success {
            if global.all {
                let rows: Vec<DeviceWithTelemetry<'_>> = devices
                    .iter()
                    .zip(&telemetry)
                    .map(|(device, telemetry)| DeviceWithTelemetry {
                        device,
                        telemetry: telemetry.as_ref(),
                    })
                    .collect();
                out.json(&rows);
            } else {
                out.json(&devices);
            }
        }
        return outcome;
    }
    let mut text = String::new();
    for (i, device) in devices.iter().enumerate() {
        text.push_str(&device_line(device, out));
        text.push('\n');
        if let Some(Some(t)) = telemetry.get(i) {
            text.push_str("  ");
            text.push_str(&telemetry_line(t));
            text.push('\n');
        }
    }
    match probe.host_memory() {
        Ok(host) => {
            text.push_str(&host_line(&host, out));
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

/// A device record with its telemetry (`hmn --json -a`).
#[derive(Serialize)]
struct DeviceWithTelemetry<'a> {
    #[serde(flatten)]
    device: &'a GpuDeviceInfo,
    /// `null` when the reading failed (the reason is on stderr).
    telemetry: Option<&'a DeviceTelemetry>,
}

/// `util 87 % (memory 41 %), 64 °C, 412 W / 700 W, SM 1755 MHz, memory 2619 MHz, fan n/a,
/// PCIe 5 x16` — every figure `n/a` when unknown, never 0.
pub fn telemetry_line(t: &DeviceTelemetry) -> String {
    let na = || "n/a".to_owned();
    let pct = |v: Option<f64>| v.map_or_else(na, |p| format!("{p:.0} %"));
    let mut line = format!(
        "util {} (memory {}), {}, power {} / {}, SM {}, memory {}",
        pct(t.gpu_utilization_percent),
        pct(t.memory_utilization_percent),
        t.temperature_celsius
            .map_or_else(|| "temperature n/a".to_owned(), |c| format!("{c:.0} °C")),
        t.power_watts.map_or_else(na, |w| format!("{w:.0} W")),
        t.power_limit_watts.map_or_else(na, |w| format!("{w:.0} W")),
        t.sm_clock_mhz.map_or_else(na, |m| format!("{m} MHz")),
        t.memory_clock_mhz.map_or_else(na, |m| format!("{m} MHz")),
    );
    if let Some(fan) = t.fan_percent {
        line.push_str(&format!(", fan {fan:.0} %"));
    }
    if t.encoder_utilization_percent.is_some() || t.decoder_utilization_percent.is_some() {
        line.push_str(&format!(
            ", enc {} dec {}",
            pct(t.encoder_utilization_percent),
            pct(t.decoder_utilization_percent)
        ));
    }
    if let (Some(generation), Some(width)) = (t.pcie_link_generation, t.pcie_link_width) {
        line.push_str(&format!(", PCIe {generation} x{width}"));
    }
    line
}

/// Linux's pressure level from PSI `some avg10` (percent of the last 10 s in which at least
/// one task stalled on memory): below 10 % normal, from 10 % warning, from 40 % critical.
/// Occasional stalls are normal under load; a tenth of the time stalled is reclaim working
/// hard, and 40 % is thrashing (systemd-oomd's default kill threshold is 60 % over 20 s).
pub fn psi_level(some_avg10: f64) -> PressureLevel {
    if some_avg10 >= 40.0 {
        PressureLevel::Critical
    } else if some_avg10 >= 10.0 {
        PressureLevel::Warning
    } else {
        PressureLevel::Normal
    }
}

/// The host's pressure level: macOS's own, else derived from Linux PSI.
fn pressure_level(host: &HostMemory) -> Option<PressureLevel> {
    host.pressure_level
        .or_else(|| host.pressure.as_ref().map(|p| psi_level(p.some_avg10)))
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
        line.push_str(" (unified memory: shares host RAM");
        // The library's budget (fits and the exporter use the same figure).
        if let (Some(budget), Some(basis)) = (device.budget_bytes, device.budget_basis) {
            line.push_str(&format!(
                "; budget {} MiB, bounded by {}",
                mib(budget),
                basis.as_str().replace('_', " ")
            ));
        }
        line.push(')');
    } else if let Some(reason) = [
        ("total_bytes", device.total_bytes),
        ("free_bytes", device.free_bytes),
    ]
    .into_iter()
    .find_map(|(field, figure)| {
        figure
            .is_none()
            .then(|| device.unavailable_reason(field))
            .flatten()
    }) {
        line.push_str(&format!(" ({reason})"));
    }
    if let Some(driver) = &device.driver_version {
        line.push_str(&format!(", driver {driver}"));
    }
    line
}

/// `host: 31.3 GiB total, 20.1 GiB available; cgroup limit 8.0 GiB (v1, 2.3 GiB used);
/// pressure normal`
pub fn host_line(host: &HostMemory, out: &Output) -> String {
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
    if let Some(level) = pressure_level(host) {
        let (word, tone) = match level {
            PressureLevel::Critical => ("critical", Tone::Bad),
            PressureLevel::Warning => ("warning", Tone::Warn),
            _ => ("normal", Tone::Good),
        };
        line.push_str(&format!("; pressure {}", out.paint(word, tone)));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_thresholds_split_normal_warning_critical() {
        assert_eq!(psi_level(0.0), PressureLevel::Normal);
        assert_eq!(psi_level(9.99), PressureLevel::Normal);
        assert_eq!(psi_level(10.0), PressureLevel::Warning);
        assert_eq!(psi_level(39.9), PressureLevel::Warning);
        assert_eq!(psi_level(40.0), PressureLevel::Critical);
    }
}

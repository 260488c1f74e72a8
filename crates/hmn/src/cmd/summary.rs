//! `hmn` with no command: one line per GPU, then the host's memory.
//!
//! `GPU 0 [NVIDIA H100 80GB HBM3]: free 61263 MiB / 81559 MiB (479 MiB reserved), driver 590.48.01`
//! — MiB as `nvidia-smi` prints them, so the two can be compared at a glance. `--json` prints
//! the array of device records (the original crate's shape, with more fields).
//!
//! `-a` / `--all` adds a second, indented line per GPU with its utilization, temperature,
//! power and clocks (`telemetry` in JSON). The host line ends with the memory pressure level:
//! macOS's own, or on Linux one derived from PSI `some avg10` (see [`psi_level`]).
//!
//! Everything comes from one [`Frame`] (devices and host, with telemetry under `-a`), so the
//! lines agree with each other and with the other views. The one exception is a GPU in MIG
//! mode, whose processes are listed for its MIG lines ([`mig_lines`]): a frame lists every
//! device's processes or none, and a plain `hmn` on a machine without MIG should not pay for a
//! process scan.

use std::collections::{BTreeMap, BTreeSet};

use hypomnesis::{
    CgroupMemory, CgroupVersion, DeviceFrame, DeviceTelemetry, Frame, FrameRequest, GpuDeviceInfo,
    GpuProcessEntry, GpuQuerySource, HostMemory, MemoryPressure, MigInstance, PressureLevel, Probe,
};
use serde::Serialize;

use crate::cli::GlobalArgs;
use crate::outcome::Outcome;
use crate::output::{Output, Tone};
use crate::size::{format_size, mib};
use crate::text::Shown;

pub fn run(probe: &Probe, global: &GlobalArgs, out: &Output) -> Outcome {
    let frame = probe.frame(FrameRequest::DEVICES.with_telemetry(global.all));
    let (devices, outcome) = shown_devices(&frame, global.device, out);
    if global.all {
        for d in &devices {
            if let Some(e) = &d.telemetry_error {
                out.say(&format!(
                    "GPU {}: telemetry unavailable: {}",
                    d.device.index,
                    Shown(&e.to_string())
                ));
            }
        }
    }
    if let Some(e) = &frame.host_error {
        out.say(&format!(
            "host memory unavailable: {}",
            Shown(&e.to_string())
        ));
    }
    if global.json {
        out.json(&SummaryRecord {
            devices: devices
                .iter()
                .map(|d| DeviceWithTelemetry {
                    device: &d.device,
                    telemetry: global.all.then_some(d.telemetry.as_ref()),
                })
                .collect(),
            host: frame.host.as_ref().map(HostRecord::from),
        });
        return outcome;
    }
    out.data(&text(probe, &devices, frame.host.as_ref(), out));
    outcome
}

/// The summary's text: a line per device (with its telemetry and MIG instances indented
/// under it), then the host's line.
fn text(
    probe: &Probe,
    devices: &[&DeviceFrame],
    host: Option<&HostMemory>,
    out: &Output,
) -> String {
    let mut text = String::new();
    for d in devices {
        text.push_str(&device_line(&d.device, out));
        text.push('\n');
        let indented = d
            .telemetry
            .as_ref()
            .map(telemetry_line)
            .into_iter()
            .chain(mig_lines(probe, &d.device));
        for line in indented {
            text.push_str("  ");
            text.push_str(&line);
            text.push('\n');
        }
    }
    if let Some(host) = host {
        text.push_str(&host_line(host, out));
        text.push('\n');
    }
    text
}

/// `hmn --json`: the devices and the host, as the text shows them.
#[derive(Serialize)]
struct SummaryRecord<'a> {
    devices: Vec<DeviceWithTelemetry<'a>>,
    /// `null` when host memory could not be read (the reason is on stderr).
    host: Option<HostRecord<'a>>,
}

/// The host as the summary's text shows it: memory, swap, pressure and the cgroup.
#[derive(Serialize)]
struct HostRecord<'a> {
    total_bytes: u64,
    available_bytes: Option<u64>,
    swap_total_bytes: Option<u64>,
    swap_free_bytes: Option<u64>,
    /// macOS's own level, else the one derived from Linux PSI ([`psi_level`]).
    pressure_level: Option<PressureLevel>,
    /// Linux PSI as read.
    pressure: Option<&'a MemoryPressure>,
    cgroup: Option<&'a CgroupMemory>,
}

impl<'a> From<&'a HostMemory> for HostRecord<'a> {
    fn from(host: &'a HostMemory) -> Self {
        Self {
            total_bytes: host.total_bytes,
            available_bytes: host.available_bytes,
            swap_total_bytes: host.swap_total_bytes,
            swap_free_bytes: host.swap_free_bytes,
            pressure_level: pressure_level(host),
            pressure: host.pressure.as_ref(),
            cgroup: host.cgroup.as_ref(),
        }
    }
}

/// A MIG device's GPU instances, one line each, from what the library lists of them (each
/// GPU instance's free and total memory, also for an instance no process uses) and from its
/// processes (what they hold, on which compute instances):
/// `MIG GPU instance 1: free 9.5 GiB / 19.5 GiB; 9.5 GiB held by 1 process (compute instance 0)`.
/// Empty for a device the library lists no MIG instances for (not in MIG mode).
///
/// NVML answers MIG ids with each process, so only NVML devices in MIG mode are asked for
/// processes: the list costs a process listing (and naming every row), which a device
/// without MIG, and the JSON path, never pay.
fn mig_lines(probe: &Probe, device: &GpuDeviceInfo) -> Vec<String> {
    if device.mig_instances.is_empty() {
        return Vec::new();
    }
    let processes = if device.source == GpuQuerySource::Nvml {
        probe.processes(device.index).unwrap_or_default()
    } else {
        Vec::new()
    };
    mig_instances(&device.mig_instances, &processes)
}

/// The lines of [`mig_lines`], from a device's MIG instances and its processes.
pub fn mig_instances(listed: &[MigInstance], processes: &[GpuProcessEntry]) -> Vec<String> {
    /// What the library and the processes of one GPU instance show of it.
    #[derive(Default)]
    struct Instance {
        /// (free, total) of the GPU instance, when the library listed it.
        memory: Option<(Option<u64>, Option<u64>)>,
        held: Option<u64>,
        pids: BTreeSet<u32>,
        compute_instances: BTreeSet<u32>,
    }
    let mut instances: BTreeMap<u32, Instance> = BTreeMap::new();
    for mig in listed {
        let Some(gi) = mig.gpu_instance_id else {
            continue;
        };
        let instance = instances.entry(gi).or_default();
        // Every compute instance of a GPU instance reports the GPU instance's memory.
        instance
            .memory
            .get_or_insert((mig.free_bytes, mig.total_bytes));
        if let Some(ci) = mig.compute_instance_id {
            instance.compute_instances.insert(ci);
        }
    }
    for p in processes {
        let Some(gi) = p.gpu_instance_id else {
            continue;
        };
        let instance = instances.entry(gi).or_default();
        if let Some(used) = p.used_bytes {
            instance.held = Some(instance.held.unwrap_or(0).saturating_add(used));
        }
        instance.pids.insert(p.pid);
        if let Some(ci) = p.compute_instance_id {
            instance.compute_instances.insert(ci);
        }
    }
    let size = |bytes: Option<u64>| bytes.map_or_else(|| "n/a".to_owned(), format_size);
    instances
        .into_iter()
        .map(|(gi, instance)| {
            let mut line = format!("MIG GPU instance {gi}: ");
            if let Some((free, total)) = instance.memory {
                line.push_str(&format!("free {} / {}; ", size(free), size(total)));
            }
            let count = instance.pids.len();
            if count == 0 {
                line.push_str("no process");
            } else {
                let noun = if count == 1 { "process" } else { "processes" };
                line.push_str(&format!("{} held by {count} {noun}", size(instance.held)));
            }
            let cis = instance.compute_instances;
            if !cis.is_empty() {
                let cis: Vec<String> = cis.iter().map(u32::to_string).collect();
                let word = if cis.len() == 1 {
                    "instance"
                } else {
                    "instances"
                };
                line.push_str(&format!(" (compute {word} {})", cis.join(", ")));
            }
            line
        })
        .collect()
}

/// The devices of `frame` to show (all, or `only`); why there are none is said on stderr
/// here, and is not a success.
fn shown_devices<'f>(
    frame: &'f Frame,
    only: Option<u32>,
    out: &Output,
) -> (Vec<&'f DeviceFrame>, Outcome) {
    if let Some(index) = only {
        return match frame.device(index) {
            Some(device) => (vec![device], Outcome::Success),
            None => {
                let why = super::missing_device(frame, index);
                out.say(&format!(
                    "cannot read GPU {index}: {}",
                    Shown(&why.to_string())
                ));
                (Vec::new(), Outcome::CouldNotTell)
            }
        };
    }
    if let Some(e) = &frame.gpu_error {
        out.say(&format!("no visible GPUs: {}", Shown(&e.to_string())));
        return (Vec::new(), Outcome::CouldNotTell);
    }
    if frame.devices.is_empty() {
        out.say("no visible GPUs.");
    }
    (frame.devices.iter().collect(), Outcome::Success)
}

/// A device record, with its telemetry under `-a`.
#[derive(Serialize)]
struct DeviceWithTelemetry<'a> {
    #[serde(flatten)]
    device: &'a GpuDeviceInfo,
    /// Absent without `-a`; `null` when the reading failed (the reason is on stderr).
    #[serde(skip_serializing_if = "Option::is_none")]
    telemetry: Option<Option<&'a DeviceTelemetry>>,
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
        Shown(device.name_or_unknown()),
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
        (hypomnesis::DeviceField::TotalBytes, device.total_bytes),
        (hypomnesis::DeviceField::FreeBytes, device.free_bytes),
    ]
    .into_iter()
    .find_map(|(field, figure)| {
        figure
            .is_none()
            .then(|| device.unavailable_reason(field))
            .flatten()
    }) {
        line.push_str(&format!(" ({})", Shown(reason)));
    }
    if let Some(driver) = &device.driver_version {
        line.push_str(&format!(", driver {}", Shown(driver)));
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
    fn mig_instances_list_each_gpu_instance_with_the_memory_its_processes_hold() {
        let entry = |pid: u32, gi: Option<u32>, ci: Option<u32>, used: u64| {
            let mut e = GpuProcessEntry::builder(pid).used_bytes(used).build();
            e.gpu_instance_id = gi;
            e.compute_instance_id = ci;
            e
        };
        let processes = [
            entry(1, Some(1), Some(0), 10 << 30),
            entry(2, Some(2), Some(0), 4 << 30),
            entry(3, Some(2), Some(1), 1 << 30),
        ];
        assert_eq!(
            mig_instances(&[], &processes),
            [
                "MIG GPU instance 1: 10.0 GiB held by 1 process (compute instance 0)",
                "MIG GPU instance 2: 5.0 GiB held by 2 processes (compute instances 0, 1)",
            ]
        );
        assert!(mig_instances(&[], &[entry(4, None, None, 1 << 30)]).is_empty());
    }

    #[test]
    fn mig_instances_listed_by_the_library_show_their_memory_even_without_a_process() {
        let processes = [{
            let mut e = GpuProcessEntry::builder(7).used_bytes(3 << 30).build();
            e.gpu_instance_id = Some(1);
            e.compute_instance_id = Some(0);
            e
        }];
        let mig = |gi: u32, ci: u32, total: u64, free: u64| {
            MigInstance::for_test(gi, ci, Some((total, free, total - free)))
        };
        let listed = [
            mig(1, 0, 20 << 30, 17 << 30),
            mig(2, 0, 10 << 30, 10 << 30),
            mig(2, 1, 10 << 30, 10 << 30),
        ];
        assert_eq!(
            mig_instances(&listed, &processes),
            [
                "MIG GPU instance 1: free 17.0 GiB / 20.0 GiB; 3.0 GiB held by 1 process (compute instance 0)",
                "MIG GPU instance 2: free 10.0 GiB / 10.0 GiB; no process (compute instances 0, 1)",
            ]
        );
    }

    #[test]
    fn a_device_name_cannot_inject_escape_sequences() {
        let mut device = hypomnesis::GpuDeviceInfo::builder().build();
        device.name = Some("GPU\x1b]0;pwned\x07\u{202e}".into());
        device.driver_version = Some("1\n2".into());
        let line = device_line(&device, &Output::new(crate::cli::ColorChoice::Never));
        assert!(line.contains("[GPU\\e]0;pwned\\x07\\u{202e}]"), "{line}");
        assert!(line.ends_with("driver 1\\n2"), "{line}");
    }

    #[test]
    fn psi_thresholds_split_normal_warning_critical() {
        assert_eq!(psi_level(0.0), PressureLevel::Normal);
        assert_eq!(psi_level(9.99), PressureLevel::Normal);
        assert_eq!(psi_level(10.0), PressureLevel::Warning);
        assert_eq!(psi_level(39.9), PressureLevel::Warning);
        assert_eq!(psi_level(40.0), PressureLevel::Critical);
    }
}

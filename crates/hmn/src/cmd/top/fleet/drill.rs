//! One node of the fleet as the local screen shows a machine: its figures rebuilt as a
//! [`Frame`], shown by the local screen's own [`App`] and drawing (devices panel with MIG
//! instances, history chart, process table, notes).
//!
//! Why rebuild a frame rather than draw a panel of our own: the local screen already sorts,
//! filters, nests, charts and degrades at every size; a node shown through it reads like
//! `hmn top` on that machine, and gains every later fix. The cost is this file: a node's
//! figures mapped onto the library's records (`recorded` constructors, every figure unknown
//! until set), and the reasons behind figures an exporter does not carry.
//!
//! What the frame leaves out: host memory (the fleet screen's own node line shows it; the
//! local header's reasons speak of this machine's kernel, not the node's exporter), each
//! process's RSS, command line, cgroup and start time (no exporter sends them).

use std::time::{Duration, Instant};

use hypomnesis::monitor::HistoryLimits;
use hypomnesis::{
    DeviceField, DeviceFrame, DeviceTelemetry, Frame, FrameRequest, GpuProcessEntry,
    GpuProcessListing, GpuQuerySource, GpuVendor, History, MigInstance, TelemetryField,
    Unavailable,
};

use crate::fleet::{Node, NodeDevice};

use super::nodes::exporter_name;

/// The note on the first device's process list: why RSS and AGE are `?` on a node.
pub(crate) const PROCESS_NOTE: &str =
    "exporters send no RSS, command line or start time per process: RSS and AGE are ? here";

/// The history a node keeps while the fleet screen runs, as the local screen keeps its own:
/// an hour, every read.
pub(crate) fn history(interval: Duration) -> History {
    History::new(HistoryLimits::new(
        Duration::from_secs(3600),
        interval.max(Duration::from_millis(100)),
        1,
    ))
}

fn vendor(name: Option<&str>) -> GpuVendor {
    match name.map(str::to_ascii_lowercase).as_deref() {
        Some("nvidia") => GpuVendor::Nvidia,
        Some("amd") => GpuVendor::Amd,
        Some("intel") => GpuVendor::Intel,
        Some("apple") => GpuVendor::Apple,
        _ => GpuVendor::Other,
    }
}

/// `node` as a frame taken at `taken`: each whole GPU with its MIG instances as children,
/// telemetry, and processes; every figure the exporter did not send unknown, with why.
pub(crate) fn frame(node: &Node, taken: Instant, taken_at: std::time::SystemTime) -> Frame {
    let mut frame = Frame::empty(FrameRequest::ALL);
    frame.taken = taken;
    frame.taken_at = taken_at;
    frame.processes_taken = Some(taken);
    frame.processes_taken_at = Some(taken_at);
    let missing = format!("{} exported no figure for it", exporter_name(node.exporter));
    for d in node.devices.iter().filter(|d| d.mig.is_none()) {
        frame.devices.push(device(d, &missing));
    }
    for d in node.devices.iter() {
        let Some(mig) = &d.mig else { continue };
        if frame.device(d.index).is_none() {
            // An instance whose whole GPU the exporter did not list: the GPU, figures unknown.
            let whole = NodeDevice {
                mig: None,
                total_bytes: None,
                used_bytes: None,
                free_bytes: None,
                reserved_bytes: None,
                budget_bytes: None,
                utilization_ratio: None,
                temperature_celsius: None,
                power_watts: None,
                ..d.clone()
            };
            frame.devices.push(device(&whole, &missing));
        }
        let mut m = MigInstance::recorded(Some(mig.gpu_instance), mig.compute_instance);
        m.uuid.clone_from(&d.uuid);
        m.total_bytes = d.total_bytes;
        m.used_bytes = d.used_bytes;
        m.free_bytes = d.free_bytes;
        if let Some(parent) = frame.devices.iter_mut().find(|p| p.device.index == d.index) {
            parent.device.mig_instances.push(m);
        }
    }
    frame.devices.sort_by_key(|d| d.device.index);
    for p in &node.processes {
        let mut row = GpuProcessEntry::recorded(p.pid, p.gpu, GpuQuerySource::Nvml);
        row.name.clone_from(&p.name);
        row.user.clone_from(&p.user);
        row.used_bytes = p.used_bytes;
        row.system_bytes = p.system_bytes;
        if let Some(d) = frame.devices.iter_mut().find(|d| d.device.index == p.gpu) {
            d.processes
                .get_or_insert_with(GpuProcessListing::default)
                .rows
                .push(row);
        }
    }
    for d in &mut frame.devices {
        d.processes
            .get_or_insert_with(GpuProcessListing::default)
            .rows
            .sort_by_key(|r| r.pid);
    }
    if !node.processes.is_empty()
        && let Some(first) = frame.devices.first_mut()
        && let Some(listing) = first.processes.as_mut()
    {
        listing.other_notes.push(PROCESS_NOTE.to_owned());
    }
    frame
}

/// One whole GPU of a node.
fn device(d: &NodeDevice, missing: &str) -> DeviceFrame {
    let mut out = DeviceFrame::recorded(d.index, vendor(d.vendor.as_deref()), GpuQuerySource::Nvml);
    let info = &mut out.device;
    info.name.clone_from(&d.name);
    info.uuid.clone_from(&d.uuid);
    info.total_bytes = d.total_bytes;
    info.used_bytes = d.used_bytes;
    info.free_bytes = d.free_bytes;
    info.reserved_bytes = d.reserved_bytes;
    info.budget_bytes = d.budget_bytes;
    for (field, value) in [
        (DeviceField::TotalBytes, d.total_bytes),
        (DeviceField::UsedBytes, d.used_bytes),
        (DeviceField::FreeBytes, d.free_bytes),
    ] {
        if value.is_none() {
            info.unavailable.push(Unavailable::new(field, missing));
        }
    }
    let mut t = DeviceTelemetry::empty(d.index, GpuQuerySource::Nvml);
    t.gpu_utilization_percent = d.utilization_ratio.map(|r| r * 100.0);
    t.temperature_celsius = d.temperature_celsius;
    t.power_watts = d.power_watts;
    for (field, known) in [
        (
            TelemetryField::GpuUtilizationPercent,
            d.utilization_ratio.is_some(),
        ),
        (
            TelemetryField::TemperatureCelsius,
            d.temperature_celsius.is_some(),
        ),
        (TelemetryField::PowerWatts, d.power_watts.is_some()),
    ] {
        if !known {
            t.unavailable.push(Unavailable::new(field, missing));
        }
    }
    out.telemetry = Some(t);
    out
}

/// `node`'s memory in use at each time Prometheus kept (`past`, each GPU's points), as frames
/// on this screen's clock: a point taken at wall time `t` is placed at
/// `now − (now_wall − t)`. Points that cannot be placed (later than `now_wall`, older than the
/// monotonic clock reaches) or not older than `before` (the live frame that follows them) are
/// skipped. Only memory in use is known then; every other figure is unknown, and there are no
/// processes.
#[cfg(feature = "fleet")]
pub(crate) fn past_frames(
    node: &Node,
    past: &[crate::fleet::prometheus::DeviceHistory],
    now: Instant,
    now_wall: std::time::SystemTime,
    before: Instant,
) -> Vec<Frame> {
    use std::collections::BTreeMap;
    let mut at: BTreeMap<std::time::SystemTime, Vec<(u32, u64)>> = BTreeMap::new();
    for d in past {
        for &(t, used) in &d.points {
            at.entry(t).or_default().push((d.index, used));
        }
    }
    at.into_iter()
        .filter_map(|(t, used)| {
            let taken = now.checked_sub(now_wall.duration_since(t).ok()?)?;
            if taken >= before {
                return None;
            }
            let devices = used
                .into_iter()
                .map(|(index, used)| {
                    let known = node
                        .devices
                        .iter()
                        .find(|d| d.index == index && d.mig.is_none());
                    NodeDevice {
                        index,
                        mig: None,
                        uuid: known.and_then(|d| d.uuid.clone()),
                        name: known.and_then(|d| d.name.clone()),
                        vendor: known.and_then(|d| d.vendor.clone()),
                        total_bytes: known.and_then(|d| d.total_bytes),
                        used_bytes: Some(used),
                        free_bytes: None,
                        reserved_bytes: None,
                        budget_bytes: None,
                        utilization_ratio: None,
                        temperature_celsius: None,
                        power_watts: None,
                        pod: known.and_then(|d| d.pod.clone()),
                    }
                })
                .collect();
            let then = Node {
                devices,
                processes: Vec::new(),
                ..node.clone()
            };
            Some(frame(&then, taken, t))
        })
        .collect()
}

//! `hmn run`'s report (`--json`, the recording's `summary` record; `docs/json.md`): what the
//! sampler saw, said with how each figure was found, and nothing unknown written as 0.

use std::time::Duration;

use hypomnesis::{Metric, Peak, PeakSource, Report, Target, TargetId};
use serde::Serialize;

use super::child::{Ending, signal_name};
use crate::json::DeviceRecord;
use crate::signals;
use crate::spill::SpillReport;
use crate::time::millis;

/// One device as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceReport {
    /// Which device (`index`, `name`, `total_bytes`), as every record names it.
    #[serde(flatten)]
    pub device: DeviceRecord,
    /// Largest GPU memory the tree held on this device at one sample.
    pub tree_peak_bytes: Option<u64>,
    pub tree_peak_at_ms: Option<u64>,
    /// Largest memory in use on the whole device at one sample.
    pub device_peak_used_bytes: Option<u64>,
    pub device_peak_at_ms: Option<u64>,
    /// Samples in which this device could not be read (a GPU lost mid-run): its peaks are
    /// those of the other samples.
    pub missed_samples: u64,
}

/// The tree's RAM.
#[derive(Debug, Clone, Serialize)]
pub struct TreeReport {
    pub root_pid: u32,
    /// `None` when no sample could see a single process of the tree.
    pub processes_seen: Option<u32>,
    pub peak_rss_bytes: Option<u64>,
    pub peak_rss_at_ms: Option<u64>,
    /// `"sampled"`: the largest sum at one sample; `"largest_process"`: no sample saw more
    /// than the largest single process held, so that is a floor for the sum.
    pub peak_rss_source: Option<&'static str>,
    pub largest_process_peak_rss_bytes: Option<u64>,
    pub largest_process_pid: Option<u32>,
    pub largest_process_source: Option<&'static str>,
    /// When the largest process's peak is unknown: what it was at most (the kernel's figure
    /// for CMD, which includes hmn's own memory when it started CMD).
    pub largest_process_at_most_bytes: Option<u64>,
    /// Descendants still running when CMD ended (Linux): pids.
    pub descendants_left: Vec<u32>,
    /// Whether hmn kept sampling until they ended (`--follow-descendants`).
    pub followed_descendants: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub total_bytes: Option<u64>,
    pub available_min_bytes: Option<u64>,
    pub available_min_at_ms: Option<u64>,
    /// Why host memory (and with it the cgroup) could not be read.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CgroupReport {
    pub version: &'static str,
    pub path: String,
    pub limit_bytes: Option<u64>,
    pub peak_bytes: Option<u64>,
    pub usage_peak_bytes: Option<u64>,
}

/// `hmn run --json`, and the `summary` record of `--record`. Fields are in `docs/json.md`.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub command: Vec<String>,
    pub exit_code: u8,
    pub signal: Option<String>,
    pub forwarded_signals: Vec<String>,
    pub wall_time_ms: u64,
    pub interval_ms: u64,
    pub samples: u64,
    pub late_samples: u64,
    pub tree: TreeReport,
    pub devices: Vec<DeviceReport>,
    pub gpu_note: Option<String>,
    pub host: HostReport,
    pub cgroup: Option<CgroupReport>,
    pub spill: SpillReport,
    /// Whether the recording, the plot and the `--json-out` report were all written whole.
    /// When not and CMD exited 0, hmn exits [`super::OUTPUTS_INCOMPLETE`].
    pub outputs_complete: bool,
    /// With `--follow-descendants` and descendants left: CMD's own run time
    /// (`wall_time_ms` then runs until the last descendant ended).
    pub command_wall_time_ms: Option<u64>,
    /// Why the recording stopped before the end.
    pub recording_error: Option<String>,
    /// Why the plot could not be drawn.
    pub plot_error: Option<String>,
    /// What the reader should know about the figures (one line each).
    pub notes: Vec<String>,
}

impl RunReport {
    /// Takes a kernel peak of a descendant waited for after CMD ended into the largest
    /// process's figure.
    pub(super) fn raise_largest_process(&mut self, bytes: u64) {
        let tree = &mut self.tree;
        if tree
            .largest_process_peak_rss_bytes
            .is_none_or(|b| bytes > b)
        {
            tree.largest_process_peak_rss_bytes = Some(bytes);
            tree.largest_process_at_most_bytes = None;
            tree.largest_process_pid = None;
            tree.largest_process_source = Some("kernel");
        }
        if tree.peak_rss_bytes.is_none() {
            tree.peak_rss_bytes = Some(bytes);
            tree.peak_rss_at_ms = None;
            tree.peak_rss_source = Some("largest_process");
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn build_report(
    command: &[String],
    pid: u32,
    ending: &Ending,
    wall: Duration,
    interval: Duration,
    report: Option<&Report>,
    devices: &[DeviceRecord],
    gpu_note: Option<String>,
    spill: SpillReport,
) -> RunReport {
    let host_target = target_id(report, &Target::Host);
    let available = peak(report, host_target, Metric::HostAvailable);
    let host = report.and_then(|r| r.host.as_ref());
    let cgroup = host.and_then(|h| h.cgroup.as_ref()).map(|c| CgroupReport {
        version: match c.version {
            hypomnesis::CgroupVersion::V1 => "v1",
            _ => "v2",
        },
        path: c.path.clone(),
        limit_bytes: c.limit_bytes,
        peak_bytes: host.and_then(|h| h.cgroup_peak_bytes),
        usage_peak_bytes: peak(report, host_target, Metric::CgroupUsage).map(|p| p.max),
    });
    RunReport {
        command: command.to_vec(),
        exit_code: ending.code,
        signal: ending.signal.map(signal_name),
        forwarded_signals: signals::forwarded().into_iter().map(signal_name).collect(),
        wall_time_ms: millis(wall),
        interval_ms: millis(interval),
        samples: report.map_or(0, |r| r.samples),
        late_samples: report.map_or(0, |r| r.late_samples),
        tree: tree_report(pid, ending, report),
        devices: device_reports(pid, devices, report),
        gpu_note,
        host: HostReport {
            total_bytes: host.and_then(|h| h.total_bytes),
            available_min_bytes: available.map(|p| p.min),
            available_min_at_ms: available.map(|p| millis(p.min_at)),
            error: None,
        },
        cgroup,
        spill,
        outputs_complete: true,
        command_wall_time_ms: None,
        recording_error: None,
        plot_error: None,
        notes: Vec::new(),
    }
}

/// The tree's RAM: the sampler's largest sum, and the largest single process from the
/// kernel's high-water mark or the samples, whichever is larger.
fn tree_report(pid: u32, ending: &Ending, report: Option<&Report>) -> TreeReport {
    // A sum of 0 means every read found the tree's processes gone (CMD ended before a sample
    // saw it resident): that is no measurement.
    let tree = target_id(report, &Target::Tree(pid));
    let tree_peak = peak(report, tree, Metric::Rss).filter(|p| p.max > 0);
    let sampled = report
        .zip(tree)
        .and_then(|(r, t)| r.target(t))
        .and_then(|t| t.largest_process)
        .filter(|s| s.peak_rss_bytes > 0);
    // The largest single process: the larger of the kernel's ru_maxrss for the waited-for
    // tree and what the sampler found; exact when a kernel figure wins.
    let (largest_bytes, largest_pid, largest_source) = match (ending.max_rss_bytes, sampled) {
        (Some(kernel), Some(s)) if s.peak_rss_bytes > kernel.saturating_add(kernel / 32) => (
            Some(s.peak_rss_bytes),
            Some(s.pid),
            Some(source_name(s.source)),
        ),
        (Some(kernel), Some(s)) => (
            Some(kernel),
            (s.peak_rss_bytes.saturating_add(s.peak_rss_bytes / 32) >= kernel).then_some(s.pid),
            Some("kernel"),
        ),
        (Some(kernel), None) => (Some(kernel), None, Some("kernel")),
        (None, Some(s)) => (
            Some(s.peak_rss_bytes),
            Some(s.pid),
            Some(source_name(s.source)),
        ),
        (None, None) => (None, None, None),
    };
    // The tree's sum is at least its largest process: when no sample saw the tree resident
    // (a command shorter than the interval), that is the figure, labelled as a floor.
    let (tree_bytes, tree_at, tree_source) = match (tree_peak, largest_bytes) {
        (Some(p), _) => (Some(p.max), Some(millis(p.max_at)), Some("sampled")),
        (None, Some(l)) => (Some(l), None, Some("largest_process")),
        (None, None) => (None, None, None),
    };
    TreeReport {
        root_pid: pid,
        processes_seen: report
            .zip(tree)
            .and_then(|(r, t)| r.target(t))
            .map(|t| t.processes_seen)
            .filter(|&n| n > 0),
        peak_rss_bytes: tree_bytes,
        peak_rss_at_ms: tree_at,
        peak_rss_source: tree_source,
        largest_process_peak_rss_bytes: largest_bytes,
        largest_process_pid: largest_pid,
        largest_process_source: largest_source,
        largest_process_at_most_bytes: None,
        descendants_left: Vec::new(),
        followed_descendants: false,
    }
}

/// Each sampled device's peaks: the tree's on it and the whole device's.
fn device_reports(
    pid: u32,
    devices: &[DeviceRecord],
    report: Option<&Report>,
) -> Vec<DeviceReport> {
    let tree = target_id(report, &Target::Tree(pid));
    devices
        .iter()
        .map(|d| {
            let device = target_id(report, &Target::Device(d.index));
            let used = peak(report, device, Metric::DeviceUsed);
            let tree_gpu = peak(report, tree, Metric::Gpu { device: d.index });
            DeviceReport {
                device: d.clone(),
                tree_peak_bytes: tree_gpu.map(|p| p.max),
                tree_peak_at_ms: tree_gpu.map(|p| millis(p.max_at)),
                device_peak_used_bytes: used.map(|p| p.max),
                device_peak_at_ms: used.map(|p| millis(p.max_at)),
                missed_samples: missed(report, tree, Metric::Gpu { device: d.index }).max(missed(
                    report,
                    device,
                    Metric::DeviceUsed,
                )),
            }
        })
        .collect()
}

/// The sampler's handle for `target`, when it was sampled.
fn target_id(report: Option<&Report>, target: &Target) -> Option<TargetId> {
    report.and_then(|r| r.target_id(target))
}

/// The peak of one series.
fn peak(report: Option<&Report>, target: Option<TargetId>, metric: Metric) -> Option<&Peak> {
    report
        .zip(target)
        .and_then(|(r, t)| r.series_summary(t, metric))
        .and_then(|s| s.peak.as_ref())
}

/// Samples that could not read one series.
fn missed(report: Option<&Report>, target: Option<TargetId>, metric: Metric) -> u64 {
    report
        .zip(target)
        .and_then(|(r, t)| r.series_summary(t, metric))
        .map_or(0, |s| s.missed)
}

/// Says what could not be known and why, so no unknown reads as 0 or as "none".
pub(super) fn explain_unknowns(
    r: &mut RunReport,
    report: Option<&Report>,
    host_error: Option<String>,
    notes: &mut Vec<String>,
) {
    let root_missing = format!("pid {} did not exist at the start", r.tree.root_pid);
    if let Some(report) = report {
        notes.extend(report.notes.iter().cloned());
        for target in &report.targets {
            notes.extend(target.notes.iter().filter(|n| **n != root_missing).cloned());
        }
    }
    if r.tree.processes_seen.is_none() && report.is_some() {
        notes.push(
            "no sample saw the command's processes: it ended before the first sample, or the \
             process table could not be read"
                .to_owned(),
        );
    }
    r.host.error = host_error.or_else(|| {
        (report.is_some() && r.host.available_min_bytes.is_none())
            .then(|| "no sample could read it".to_owned())
    });
}

pub(super) fn source_name(source: PeakSource) -> &'static str {
    match source {
        PeakSource::KernelHighWaterMark => "kernel",
        _ => "sampled",
    }
}

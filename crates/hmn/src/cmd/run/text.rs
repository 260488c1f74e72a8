//! The `time -v`-style report `hmn run` writes on stderr when CMD ends.

use std::io::Write;
use std::time::Duration;

use super::report::RunReport;
use crate::size::format_size;
use crate::time::{millis, seconds};

pub(super) fn join_pids(pids: &[u32]) -> String {
    pids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn opt_size(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "n/a".to_owned(), format_size)
}

/// The `time -v`-style report, on stderr.
pub(super) fn write_text_report(shown: &str, r: &RunReport, interval: Duration) {
    let every = format!("sampled every {}", seconds(millis(interval)));
    let mut lines = Vec::new();
    status_lines(&mut lines, shown, r);
    tree_lines(&mut lines, r, &every);
    gpu_lines(&mut lines, r, &every);
    host_lines(&mut lines, r, &every);
    closing_lines(&mut lines, r);
    let mut stderr = std::io::stderr().lock();
    for line in lines {
        let _ = writeln!(stderr, "{line}");
    }
}

/// How CMD ended, the signals passed on, the descendants left.
fn status_lines(lines: &mut Vec<String>, shown: &str, r: &RunReport) {
    let status = match &r.signal {
        Some(signal) => format!("{} (killed by {signal})", r.exit_code),
        None => r.exit_code.to_string(),
    };
    let after = r.command_wall_time_ms.unwrap_or(r.wall_time_ms);
    lines.push(format!(
        "hmn: `{shown}` exited with status {status} after {}",
        seconds(after)
    ));
    if !r.forwarded_signals.is_empty() {
        lines.push(format!(
            "\tSignals forwarded to the command: {}",
            r.forwarded_signals.join(", ")
        ));
    }
    if !r.tree.descendants_left.is_empty() {
        let n = r.tree.descendants_left.len();
        let what = if r.tree.followed_descendants {
            format!(
                "followed until the last ended, {} after the start",
                seconds(r.wall_time_ms)
            )
        } else {
            "not followed (--follow-descendants waits for them)".to_owned()
        };
        lines.push(format!(
            "\tDescendants still running when it ended: {n} (pid {}); {what}",
            join_pids(&r.tree.descendants_left)
        ));
    }
}

/// The tree's RAM: its peak sum, its largest process, how many processes.
fn tree_lines(lines: &mut Vec<String>, r: &RunReport, every: &str) {
    let tree_peak = match (r.tree.peak_rss_bytes, r.tree.peak_rss_source) {
        (Some(bytes), Some("largest_process")) => format!(
            "at least {} (no sample saw more: the largest single process's peak)",
            format_size(bytes)
        ),
        (Some(bytes), _) => format!(
            "{}{}",
            format_size(bytes),
            r.tree
                .peak_rss_at_ms
                .map(|at| format!(" at +{}", seconds(at)))
                .unwrap_or_default()
        ),
        (None, _) => "unknown (no sample measured it)".to_owned(),
    };
    lines.push(format!(
        "\tPeak RSS, whole tree ({every}; the sum at one sample): {tree_peak}"
    ));
    let largest_how = match r.tree.largest_process_source {
        Some("kernel") => "exact: kernel high-water mark".to_owned(),
        Some(_) => every.to_owned(),
        None if r.tree.largest_process_at_most_bytes.is_some() => {
            "kernel high-water mark, which bounds it from above".to_owned()
        }
        None => "not measured".to_owned(),
    };
    let largest = match (
        r.tree.largest_process_peak_rss_bytes,
        r.tree.largest_process_at_most_bytes,
    ) {
        (Some(bytes), _) => format!(
            "{}{}",
            format_size(bytes),
            r.tree
                .largest_process_pid
                .map(|pid| format!(" (pid {pid})"))
                .unwrap_or_default()
        ),
        (None, Some(bound)) => format!(
            "unknown, at most {} (the kernel's figure for the command includes hmn's own \
             memory when it started it)",
            format_size(bound)
        ),
        (None, None) => "unknown".to_owned(),
    };
    lines.push(format!(
        "\tPeak RSS, largest single process ({largest_how}): {largest}"
    ));
    lines.push(format!(
        "\tProcesses seen: {}",
        r.tree
            .processes_seen
            .map_or_else(|| "unknown (see the notes)".to_owned(), |n| n.to_string())
    ));
}

/// Each device's peaks, or why GPU memory was not sampled.
fn gpu_lines(lines: &mut Vec<String>, r: &RunReport, every: &str) {
    for d in &r.devices {
        let name = d
            .device
            .name
            .as_deref()
            .map(|n| format!(" [{}]", crate::text::Shown(n)))
            .unwrap_or_default();
        let missed = if d.missed_samples > 0 {
            format!(
                " ({} of {} samples could not read this GPU: the peaks are those of the others)",
                d.missed_samples, r.samples
            )
        } else {
            String::new()
        };
        lines.push(format!(
            "\tPeak GPU memory, GPU {}{name} ({every}): tree {}, whole device {}{}{missed}",
            d.device.index,
            opt_size(d.tree_peak_bytes),
            opt_size(d.device_peak_used_bytes),
            d.device
                .total_bytes
                .map(|t| format!(" of {}", format_size(t)))
                .unwrap_or_default()
        ));
    }
    if r.devices.is_empty() {
        lines.push(format!(
            "\tPeak GPU memory: not sampled ({})",
            r.gpu_note.as_deref().unwrap_or("no GPU")
        ));
    } else if let Some(note) = &r.gpu_note {
        lines.push(format!("\tGPU memory not sampled on: {note}"));
    }
}

/// Host memory's low point and the cgroup.
fn host_lines(lines: &mut Vec<String>, r: &RunReport, every: &str) {
    let available = match (&r.host.error, r.host.available_min_bytes) {
        (Some(e), None) => format!("unknown ({e})"),
        (_, bytes) => format!(
            "{}{}",
            opt_size(bytes),
            r.host
                .total_bytes
                .map(|t| format!(" of {}", format_size(t)))
                .unwrap_or_default()
        ),
    };
    lines.push(format!(
        "\tHost memory available, low point ({every}): {available}"
    ));
    match (&r.cgroup, &r.host.error) {
        (Some(c), _) => {
            let limit = c.limit_bytes.map_or_else(|| "none".to_owned(), format_size);
            let peak = c.peak_bytes.map_or_else(
                || "not above its earlier peak".to_owned(),
                |p| format!("{} (exact: kernel high-water mark)", format_size(p)),
            );
            lines.push(format!(
                "\tCgroup memory limit: {limit} (cgroup {} {}; peak during the run: {peak})",
                c.version, c.path
            ));
        }
        (None, Some(_)) => lines.push(
            "\tCgroup memory limit: unknown (host memory could not be read, see above)".to_owned(),
        ),
        (None, None) => {
            lines.push("\tCgroup memory limit: none (not in a limited cgroup)".to_owned());
        }
    }
}

/// `hmn spill`'s report, on stderr: how CMD ended and the spill lines.
pub(super) fn write_spill_report(shown: &str, r: &RunReport) {
    let mut lines = Vec::new();
    status_lines(&mut lines, shown, r);
    spill_lines(&mut lines, r);
    let mut stderr = std::io::stderr().lock();
    for line in lines {
        let _ = writeln!(stderr, "{line}");
    }
}

/// Spill, the samples taken, incomplete outputs and the notes.
fn closing_lines(lines: &mut Vec<String>, r: &RunReport) {
    spill_lines(lines, r);
    lines.push(format!(
        "\tSamples: {}{}",
        r.samples,
        if r.late_samples > 0 {
            let noun = if r.late_samples == 1 {
                "interval"
            } else {
                "intervals"
            };
            format!(" ({} {noun} skipped: a sample took longer)", r.late_samples)
        } else {
            String::new()
        }
    ));
    if let Some(e) = &r.recording_error {
        lines.push(format!("\tRecording: INCOMPLETE, {e}"));
    }
    if let Some(e) = &r.plot_error {
        lines.push(format!("\tPlot: not drawn, {e}"));
    }
    for note in &r.notes {
        lines.push(format!("\tNote: {note}"));
    }
}

/// Each device's spill, or why it could not be measured.
fn spill_lines(lines: &mut Vec<String>, r: &RunReport) {
    let label = |index: u32| match r
        .devices
        .iter()
        .find_map(|d| (d.device.index == index).then_some(d.device.name.as_deref()?))
    {
        Some(name) => format!("GPU {index} [{}]", crate::text::Shown(name)),
        None => format!("GPU {index}"),
    };
    lines.extend(
        r.spill
            .run_lines(label)
            .into_iter()
            .map(|l| format!("\t{l}")),
    );
}

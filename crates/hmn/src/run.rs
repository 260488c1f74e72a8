//! `hmn run -- CMD`: run a command and report what its process tree peaked at.
//!
//! The command runs with hmn's stdin, stdout and stderr. A [`hypomnesis::Sampler`] follows
//! its whole process tree (children forked later included), the GPUs and the host from the
//! moment it starts; when it ends, a `time -v`-style report goes to stderr (`--json`: also a
//! JSON report on stdout), the recording gets its summary record and the plot is drawn.
//!
//! Which figure is which (the report says it next to each):
//! - **peak RSS, whole tree**: the largest sum of the tree's resident memory at one sample.
//!   The kernel keeps no high-water mark for a sum, so this is sampled, at the interval.
//! - **peak RSS, largest process**: exact — the kernel's high-water mark of the single
//!   largest process: `wait4`'s `ru_maxrss` for CMD and every descendant that was waited for
//!   (KiB on Linux, bytes on macOS), and `VmHWM` read while processes were alive.
//! - **GPU memory**: sampled (drivers keep no peak), per device, for the tree and the whole
//!   device.
//! - **host available low point**: sampled. **cgroup peak**: exact (`memory.peak` /
//!   `memory.max_usage_in_bytes`), when it rose during the run.
//! - **spill** (Windows): each device's `SpillTracker`, read on its own thread every interval
//!   (at least 100 ms) from a baseline taken before CMD starts; see `crate::spill`. Elsewhere
//!   the report says spill is not measurable.
//!
//! Signals: SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to hmn by another process are forwarded
//! to CMD (a terminal's Ctrl-C reaches CMD by itself, being in the same process group, and is
//! not sent twice); hmn keeps waiting, so the report and the recording are still completed.
//! hmn exits with CMD's code, 128 + N when CMD was killed by signal N, 127 when CMD could not
//! be started, 2 when hmn's own arguments are unusable (before CMD starts).

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use hypomnesis::{Metric, PeakSource, Probe, Report, Sampler, Target};
use serde::Serialize;

use crate::cli::{GlobalArgs, RunArgs};
use crate::output::Output;
use crate::plot::{PlotData, PlotSeries};
use crate::record::{Format, Recorder, SampleRecord, StartDevice};
use crate::size::format_size;
use crate::spill::{SpillReport, Watcher};

/// Parses `50ms`, `0.5s`, `2s`, `1m`, `1h`, or a bare number of seconds (`2`, `0.25`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration `{text}`: expected e.g. 50ms, 0.5s, 2s, 1m"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "invalid duration `{text}`: unknown unit `{other}` (use ms, s, m or h)"
            ));
        }
    };
    let duration = Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("invalid duration `{text}`: out of range"))?;
    if duration < Duration::from_millis(1) {
        return Err(format!("invalid duration `{text}`: at least 1ms"));
    }
    Ok(duration)
}

/// One device as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceReport {
    pub index: u32,
    pub name: Option<String>,
    pub total_bytes: Option<u64>,
    /// Largest GPU memory the tree held on this device at one sample.
    pub tree_peak_bytes: Option<u64>,
    pub tree_peak_at_ms: Option<u64>,
    /// Largest memory in use on the whole device at one sample.
    pub device_peak_used_bytes: Option<u64>,
    pub device_peak_at_ms: Option<u64>,
}

/// The tree's RAM.
#[derive(Debug, Clone, Serialize)]
pub struct TreeReport {
    pub root_pid: u32,
    pub processes_seen: u32,
    pub peak_rss_bytes: Option<u64>,
    pub peak_rss_at_ms: Option<u64>,
    pub largest_process_peak_rss_bytes: Option<u64>,
    pub largest_process_pid: Option<u32>,
    pub largest_process_source: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub total_bytes: Option<u64>,
    pub available_min_bytes: Option<u64>,
    pub available_min_at_ms: Option<u64>,
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
}

/// How CMD ended.
#[derive(Debug, Clone, Copy)]
pub struct Ending {
    /// hmn's exit code: CMD's code, or 128 + the signal.
    pub code: u8,
    /// The signal that killed CMD.
    pub signal: Option<i32>,
    /// `ru_maxrss` of CMD and its waited-for descendants, bytes.
    pub max_rss_bytes: Option<u64>,
}

pub fn run(global: &GlobalArgs, args: &RunArgs, out: &Output) -> ExitCode {
    let probe = Arc::new(crate::guarded_probe(global.timeout));
    let code = run_with(&probe, global, args, out);
    crate::leave_if_driver_hung(&probe, i32::from(code));
    ExitCode::from(code)
}

/// `run`, returning hmn's exit code.
fn run_with(probe: &Arc<Probe>, global: &GlobalArgs, args: &RunArgs, out: &Output) -> u8 {
    let command: Vec<String> = args
        .command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let shown = shell_words(&command);
    if let Some(plot) = &args.plot
        && !has_extension(plot, "svg")
    {
        out.say(&format!(
            "run: --plot {} must name an .svg file",
            plot.display()
        ));
        return 2;
    }

    let (devices, gpu_note) = devices_to_sample(probe, global.device);

    let recorder = match &args.record {
        Some(path) => match Recorder::create(path, Format::for_path(path)) {
            Ok(r) => Some(Arc::new(Mutex::new(r))),
            Err(e) => {
                out.say(&format!("run: cannot create {}: {e}", path.display()));
                return 2;
            }
        },
        None => None,
    };

    let forwarding = signals::install();
    if let Err(e) = &forwarding {
        out.say(&format!(
            "run: cannot catch signals ({e}); Ctrl-C will stop hmn without a report"
        ));
    }

    // Spill trackers take their baseline reading before CMD starts.
    let indices: Vec<u32> = devices.iter().map(|d| d.index).collect();
    let spill = Watcher::start(probe, &indices, args.interval);

    let started = Instant::now();
    let started_wall = SystemTime::now();
    let child = match spawn(&args.command) {
        Ok(child) => child,
        Err(e) => {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                " (is it installed and on PATH?)"
            } else {
                ""
            };
            out.say(&format!("run: cannot run `{shown}`: {e}{hint}"));
            if let Some(path) = &args.record {
                let _ = std::fs::remove_file(path);
            }
            return 127;
        }
    };
    let pid = child.id();
    signals::set_child(pid);

    if let Some(recorder) = &recorder {
        let start_devices: Vec<StartDevice> = devices
            .iter()
            .map(|d| StartDevice {
                index: d.index,
                name: d.name.clone(),
                total_bytes: d.total_bytes,
            })
            .collect();
        lock(recorder).start(
            started_wall,
            &command,
            pid,
            args.interval,
            &start_devices,
            probe.host_memory().ok().map(|h| h.total_bytes),
        );
    }

    let plot = args
        .plot
        .as_ref()
        .map(|_| Arc::new(Mutex::new(PlotData::new(devices.len()))));
    let sampler = start_sampler(
        probe,
        args.interval,
        pid,
        &devices,
        recorder.clone(),
        plot.clone(),
    );
    let sampler = match sampler {
        Ok(s) => Some(s),
        Err(e) => {
            out.say(&format!(
                "run: cannot sample ({e}); only the exit status is reported"
            ));
            None
        }
    };

    let ending = wait(child);
    signals::clear_child();
    let wall = started.elapsed();
    let report = sampler.map(Sampler::stop);
    let spill = spill.stop();

    let run_report = build_report(
        &command,
        pid,
        &ending,
        wall,
        args.interval,
        report.as_ref(),
        &devices,
        gpu_note,
        spill,
    );
    write_text_report(&shown, &run_report, args.interval);
    if global.json {
        out.json(&run_report);
    }
    if let Some(recorder) = &recorder {
        let mut recorder = lock(recorder);
        recorder.summary(&run_report);
        if let Some(e) = recorder.finish() {
            out.say(&format!(
                "run: recording to {} failed: {e}",
                args.record.as_deref().unwrap_or(Path::new("?")).display()
            ));
        }
    }
    if let (Some(path), Some(plot)) = (&args.plot, &plot) {
        let data = lock(plot);
        let names: Vec<String> = devices.iter().map(|d| d.label()).collect();
        if let Err(e) = crate::plot::draw(path, &format!("hmn run: {shown}"), &data, &names) {
            out.say(&format!("run: cannot draw {}: {e}", path.display()));
        }
    }
    ending.code
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension()
        .is_some_and(|e| e.to_string_lossy().eq_ignore_ascii_case(ext))
}

/// A device sampled during the run.
#[derive(Debug, Clone)]
pub struct Device {
    pub index: u32,
    pub name: Option<String>,
    pub total_bytes: Option<u64>,
}

impl Device {
    fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("GPU {} [{name}]", self.index),
            None => format!("GPU {}", self.index),
        }
    }
}

/// The devices to sample (`--device`, or all), and why there are none when there are none.
fn devices_to_sample(probe: &Probe, only: Option<u32>) -> (Vec<Device>, Option<String>) {
    let indices: Vec<u32> = match only {
        Some(index) => vec![index],
        None => match probe.device_count() {
            Ok(count) => (0..count).collect(),
            Err(e) => return (Vec::new(), Some(e.to_string())),
        },
    };
    let mut devices = Vec::new();
    let mut notes = Vec::new();
    for index in indices {
        match probe.device_info(index) {
            Ok(info) => devices.push(Device {
                index,
                name: info.name,
                total_bytes: info.total_bytes,
            }),
            Err(e) => notes.push(format!("GPU {index}: {e}")),
        }
    }
    let note = (!notes.is_empty()).then(|| notes.join("; "));
    (devices, note)
}

fn spawn(command: &[OsString]) -> std::io::Result<std::process::Child> {
    let (program, rest) = command
        .split_first()
        .ok_or_else(|| std::io::Error::other("no command"))?;
    std::process::Command::new(program).args(rest).spawn()
}

fn start_sampler(
    probe: &Arc<Probe>,
    interval: Duration,
    pid: u32,
    devices: &[Device],
    recorder: Option<Arc<Mutex<Recorder>>>,
    plot: Option<Arc<Mutex<PlotData>>>,
) -> hypomnesis::Result<Sampler> {
    let mut builder = Sampler::builder()
        .probe(Arc::clone(probe))
        .interval(interval)
        .target(Target::Tree(pid))
        .gpu_devices(devices.iter().map(|d| d.index));
    for device in devices {
        builder = builder.target(Target::Device(device.index));
    }
    let host = 1 + devices.len();
    builder = builder.target(Target::Host);
    let device_indices: Vec<u32> = devices.iter().map(|d| d.index).collect();
    builder
        .on_sample(move |sample| {
            let gpus: Vec<(u32, Option<u64>, Option<u64>)> = device_indices
                .iter()
                .enumerate()
                .map(|(k, &index)| {
                    (
                        index,
                        sample.get(0, Metric::Gpu { device: index }),
                        sample.get(1 + k, Metric::DeviceUsed),
                    )
                })
                .collect();
            let record = SampleRecord {
                elapsed: sample.elapsed,
                wall_clock: sample.wall_clock,
                tree_rss_bytes: sample.get(0, Metric::Rss),
                processes: sample.get(0, Metric::Processes),
                gpus: &gpus,
                host_available_bytes: sample.get(host, Metric::HostAvailable),
                cgroup_usage_bytes: sample.get(host, Metric::CgroupUsage),
            };
            if let Some(recorder) = &recorder {
                lock(recorder).sample(&record);
            }
            if let Some(plot) = &plot {
                lock(plot).push(&PlotSeries {
                    seconds: sample.elapsed.as_secs_f64(),
                    ram: record.tree_rss_bytes,
                    gpu_tree: gpus.iter().map(|g| g.1).collect(),
                    gpu_used: gpus.iter().map(|g| g.2).collect(),
                });
            }
        })
        .start()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    command: &[String],
    pid: u32,
    ending: &Ending,
    wall: Duration,
    interval: Duration,
    report: Option<&Report>,
    devices: &[Device],
    gpu_note: Option<String>,
    spill: SpillReport,
) -> RunReport {
    let peak = |target: usize, metric: Metric| report.and_then(|r| r.peak(target, metric));
    let tree_peak = peak(0, Metric::Rss);
    let sampled = report
        .and_then(|r| r.targets.first())
        .and_then(|t| t.largest_process);
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
    let host_target = 1 + devices.len();
    let available = peak(host_target, Metric::HostAvailable);
    let host = report.and_then(|r| r.host.as_ref());
    let cgroup = host.and_then(|h| h.cgroup.as_ref()).map(|c| CgroupReport {
        version: match c.version {
            hypomnesis::CgroupVersion::V1 => "v1",
            _ => "v2",
        },
        path: c.path.clone(),
        limit_bytes: c.limit_bytes,
        peak_bytes: host.and_then(|h| h.cgroup_peak_bytes),
        usage_peak_bytes: peak(host_target, Metric::CgroupUsage).map(|p| p.max),
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
        tree: TreeReport {
            root_pid: pid,
            processes_seen: report
                .and_then(|r| r.targets.first())
                .map_or(0, |t| t.processes_seen),
            peak_rss_bytes: tree_peak.map(|p| p.max),
            peak_rss_at_ms: tree_peak.map(|p| millis(p.max_at)),
            largest_process_peak_rss_bytes: largest_bytes,
            largest_process_pid: largest_pid,
            largest_process_source: largest_source,
        },
        devices: devices
            .iter()
            .enumerate()
            .map(|(k, d)| {
                let tree = peak(0, Metric::Gpu { device: d.index });
                let used = peak(1 + k, Metric::DeviceUsed);
                DeviceReport {
                    index: d.index,
                    name: d.name.clone(),
                    total_bytes: d.total_bytes,
                    tree_peak_bytes: tree.map(|p| p.max),
                    tree_peak_at_ms: tree.map(|p| millis(p.max_at)),
                    device_peak_used_bytes: used.map(|p| p.max),
                    device_peak_at_ms: used.map(|p| millis(p.max_at)),
                }
            })
            .collect(),
        gpu_note,
        host: HostReport {
            total_bytes: host.and_then(|h| h.total_bytes),
            available_min_bytes: available.map(|p| p.min),
            available_min_at_ms: available.map(|p| millis(p.min_at)),
        },
        cgroup,
        spill,
    }
}

fn source_name(source: PeakSource) -> &'static str {
    match source {
        PeakSource::KernelHighWaterMark => "kernel",
        _ => "sampled",
    }
}

/// `1.23 s`, `850 ms`.
pub fn seconds(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{}.{:02} s", ms / 1000, (ms % 1000) / 10)
    }
}

fn opt_size(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "n/a".to_owned(), format_size)
}

/// The `time -v`-style report, on stderr.
fn write_text_report(shown: &str, r: &RunReport, interval: Duration) {
    let every = format!("sampled every {}", seconds(millis(interval)));
    let mut lines = Vec::new();
    let status = match &r.signal {
        Some(signal) => format!("{} (killed by {signal})", r.exit_code),
        None => r.exit_code.to_string(),
    };
    lines.push(format!(
        "hmn: `{shown}` exited with status {status} after {}",
        seconds(r.wall_time_ms)
    ));
    if !r.forwarded_signals.is_empty() {
        lines.push(format!(
            "\tSignals forwarded to the command: {}",
            r.forwarded_signals.join(", ")
        ));
    }
    lines.push(format!(
        "\tPeak RSS, whole tree ({every}; the sum at one sample): {}{}",
        opt_size(r.tree.peak_rss_bytes),
        r.tree
            .peak_rss_at_ms
            .map(|at| format!(" at +{}", seconds(at)))
            .unwrap_or_default()
    ));
    let largest_how = match r.tree.largest_process_source {
        Some("kernel") => "exact: kernel high-water mark".to_owned(),
        Some(_) => every.clone(),
        None => "not measured".to_owned(),
    };
    lines.push(format!(
        "\tPeak RSS, largest single process ({largest_how}): {}{}",
        opt_size(r.tree.largest_process_peak_rss_bytes),
        r.tree
            .largest_process_pid
            .map(|pid| format!(" (pid {pid})"))
            .unwrap_or_default()
    ));
    lines.push(format!("\tProcesses seen: {}", r.tree.processes_seen));
    for d in &r.devices {
        let name = d
            .name
            .as_deref()
            .map(|n| format!(" [{n}]"))
            .unwrap_or_default();
        lines.push(format!(
            "\tPeak GPU memory, GPU {}{name} ({every}): tree {}, whole device {}{}",
            d.index,
            opt_size(d.tree_peak_bytes),
            opt_size(d.device_peak_used_bytes),
            d.total_bytes
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
    lines.push(format!(
        "\tHost memory available, low point ({every}): {}{}",
        opt_size(r.host.available_min_bytes),
        r.host
            .total_bytes
            .map(|t| format!(" of {}", format_size(t)))
            .unwrap_or_default()
    ));
    match &r.cgroup {
        Some(c) => {
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
        None => lines.push("\tCgroup memory limit: none (not in a limited cgroup)".to_owned()),
    }
    let label = |index: u32| match r.devices.iter().find(|d| d.index == index) {
        Some(DeviceReport {
            name: Some(name), ..
        }) => format!("GPU {index} [{name}]"),
        _ => format!("GPU {index}"),
    };
    lines.extend(
        r.spill
            .run_lines(label)
            .into_iter()
            .map(|l| format!("\t{l}")),
    );
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
    let mut stderr = std::io::stderr().lock();
    for line in lines {
        let _ = writeln!(stderr, "{line}");
    }
}

/// The command as a person would type it (arguments with spaces quoted).
pub fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if w.is_empty() || w.contains(|c: char| c.is_whitespace() || "'\"$`\\".contains(c)) {
                format!("'{}'", w.replace('\'', r"'\''"))
            } else {
                w.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `SIGINT`, or `signal 42`.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        6 => "SIGABRT",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => return format!("signal {signal}"),
    };
    name.to_owned()
}

/// Waits for CMD and says how it ended.
#[cfg(unix)]
fn wait(child: std::process::Child) -> Ending {
    let pid = libc::pid_t::try_from(child.id()).unwrap_or(0);
    // Learn that it ended without reaping it (its pid cannot be reused yet), so no signal is
    // forwarded to a stranger, then reap it with its resource usage.
    loop {
        // SAFETY: a zeroed siginfo_t is a valid buffer for waitid to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is valid for writing; P_PID names our own child.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                libc::id_t::try_from(pid).unwrap_or(0),
                &raw mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break;
        }
    }
    signals::clear_child();
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: a zeroed rusage is a valid buffer for wait4 to fill.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `status` and `usage` are valid for writing; `pid` is our own child.
        let rc = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
        if rc == pid {
            let max_rss = u64::try_from(usage.ru_maxrss).ok().map(|v| {
                // KiB on Linux, bytes on macOS.
                if cfg!(target_os = "macos") {
                    v
                } else {
                    v * 1024
                }
            });
            let (code, signal) = if libc::WIFSIGNALED(status) {
                let signal = libc::WTERMSIG(status);
                (u8::try_from(128 + signal).unwrap_or(255), Some(signal))
            } else {
                (u8::try_from(libc::WEXITSTATUS(status)).unwrap_or(1), None)
            };
            return Ending {
                code,
                signal,
                max_rss_bytes: max_rss.filter(|&b| b > 0),
            };
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Ending {
                code: 1,
                signal: None,
                max_rss_bytes: None,
            };
        }
    }
}

#[cfg(not(unix))]
fn wait(mut child: std::process::Child) -> Ending {
    match child.wait() {
        Ok(status) => Ending {
            code: status
                .code()
                .and_then(|c| u8::try_from(c).ok())
                .unwrap_or(1),
            signal: None,
            max_rss_bytes: None,
        },
        Err(_) => Ending {
            code: 1,
            signal: None,
            max_rss_bytes: None,
        },
    }
}

/// Catching SIGINT / SIGTERM / SIGHUP / SIGQUIT: forwarded to the running command (`run`),
/// or a request to stop (`watch`).
pub mod signals {
    /// Whether a stop was requested (any caught signal).
    pub fn stop_requested() -> bool {
        imp::received() != 0
    }

    /// Signals forwarded to the command so far.
    pub fn forwarded() -> Vec<i32> {
        let mask = imp::forwarded();
        (1..32).filter(|s| mask & (1 << s) != 0).collect()
    }

    pub use imp::{clear_child, install, set_child};

    #[cfg(unix)]
    mod imp {
        use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

        static CHILD: AtomicI32 = AtomicI32::new(0);
        static RECEIVED: AtomicU32 = AtomicU32::new(0);
        static FORWARDED: AtomicU32 = AtomicU32::new(0);

        const CAUGHT: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

        extern "C" fn on_signal(
            signal: libc::c_int,
            info: *mut libc::siginfo_t,
            _context: *mut libc::c_void,
        ) {
            let bit = 1_u32.checked_shl(signal.cast_unsigned()).unwrap_or(0);
            RECEIVED.fetch_or(bit, Ordering::SeqCst);
            let child = CHILD.load(Ordering::SeqCst);
            // A signal from the terminal (no sending process) reached the whole foreground
            // process group, CMD included: do not deliver it twice.
            if child > 0 && sender(info) != 0 {
                // SAFETY: kill is async-signal-safe; `child` is our unreaped child.
                unsafe { libc::kill(child, signal) };
                FORWARDED.fetch_or(bit, Ordering::SeqCst);
            }
        }

        /// The pid that sent the signal; 0 when the kernel did (a terminal).
        fn sender(info: *mut libc::siginfo_t) -> libc::pid_t {
            if info.is_null() {
                return 0;
            }
            #[cfg(target_os = "linux")]
            {
                // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
                unsafe { (*info).si_pid() }
            }
            #[cfg(not(target_os = "linux"))]
            {
                // SAFETY: as above.
                unsafe { (*info).si_pid }
            }
        }

        pub fn install() -> std::io::Result<()> {
            for signal in CAUGHT {
                // SAFETY: a zeroed sigaction is valid to fill in.
                let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
                action.sa_sigaction = on_signal
                    as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
                    as libc::sighandler_t;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                // SAFETY: `action` is initialised and the old-action pointer may be null; the
                // handler only touches atomics and calls kill, both async-signal-safe.
                let rc =
                    unsafe { libc::sigaction(signal, &raw const action, std::ptr::null_mut()) };
                if rc != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        }

        pub fn set_child(pid: u32) {
            CHILD.store(i32::try_from(pid).unwrap_or(0), Ordering::SeqCst);
            // A signal caught before the command existed is delivered now.
            let pending = RECEIVED.load(Ordering::SeqCst);
            for signal in CAUGHT {
                if pending & (1 << signal) != 0 {
                    // SAFETY: kill on our own child.
                    unsafe { libc::kill(i32::try_from(pid).unwrap_or(0), signal) };
                    FORWARDED.fetch_or(1 << signal, Ordering::SeqCst);
                }
            }
        }

        pub fn clear_child() {
            CHILD.store(0, Ordering::SeqCst);
        }

        pub fn received() -> u32 {
            RECEIVED.load(Ordering::SeqCst)
        }

        pub fn forwarded() -> u32 {
            FORWARDED.load(Ordering::SeqCst)
        }
    }

    #[cfg(not(unix))]
    mod imp {
        use std::sync::atomic::{AtomicU32, Ordering};

        static RECEIVED: AtomicU32 = AtomicU32::new(0);

        /// Ctrl-C and console close reach the command through the console by themselves; hmn
        /// only has to survive them to write its report.
        pub fn install() -> std::io::Result<()> {
            ctrlc::set_handler(|| {
                RECEIVED.fetch_or(1 << 2, Ordering::SeqCst);
            })
            .map_err(std::io::Error::other)
        }

        pub fn set_child(_pid: u32) {}

        pub fn clear_child() {}

        pub fn received() -> u32 {
            RECEIVED.load(Ordering::SeqCst)
        }

        pub fn forwarded() -> u32 {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_or_bare_seconds() {
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("0.5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "fast", "5 parsecs", "0ms", "0.1ms", "-1s", "1e3s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(
            parse_duration("5 parsecs")
                .unwrap_err()
                .contains("ms, s, m or h")
        );
    }

    #[test]
    fn commands_are_shown_as_typed() {
        let words = |w: &[&str]| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(shell_words(&words(&["make", "-j8"])), "make -j8");
        assert_eq!(
            shell_words(&words(&["python3", "-c", "print('hi there')"])),
            r"python3 -c 'print('\''hi there'\'')'"
        );
        assert_eq!(shell_words(&words(&["echo", ""])), "echo ''");
    }

    #[test]
    fn signals_have_their_names() {
        assert_eq!(signal_name(2), "SIGINT");
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(42), "signal 42");
    }

    #[test]
    fn short_and_long_times_read_naturally() {
        assert_eq!(seconds(850), "850 ms");
        assert_eq!(seconds(12_345), "12.34 s");
    }
}

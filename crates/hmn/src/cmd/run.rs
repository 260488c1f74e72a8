//! `hmn run -- CMD`: run a command and report what its process tree peaked at.
//!
//! The command runs with hmn's stdin, stdout and stderr. A [`hypomnesis::Sampler`] follows
//! its whole process tree (children forked later included), the GPUs and the host from the
//! moment it starts; when it ends, the plot is drawn, the recording gets its summary record and
//! a `time -v`-style report goes to stderr (`--json`: also a JSON report on stdout).
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
//! Signals: those another process may send to ask something of CMD (SIGINT, SIGTERM, SIGUSR1
//! and more, see [`signals`]) are forwarded to CMD when sent to hmn (a terminal's Ctrl-C
//! reaches CMD by itself, being in the same process group, and is not sent twice); hmn keeps
//! waiting, so the report and the recording are still completed. Descendants that outlive CMD
//! are listed, and followed on request ([`descendants`]).
//!
//! Outputs that fail (a full disk) are said when it happens and in the report; a recording cut
//! short keeps only whole lines ([`crate::record`]), a plot that cannot be written leaves no
//! file. hmn exits with CMD's code, 128 + N when CMD was killed by signal N, 127 when CMD was
//! not found and 126 when it could not be executed (as shells do), 2 when hmn's own arguments
//! are unusable (before CMD starts), and [`OUTPUTS_INCOMPLETE`] (74) when CMD exited 0 but an
//! output could not be written whole.
//!
//! `--json` makes stdout the report's alone: CMD's stdout goes to hmn's stderr. `--json-out
//! FILE` writes the report to FILE instead and leaves stdout to CMD.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use hypomnesis::{Metric, PeakSource, Probe, Report, Sampler, Target};
use serde::Serialize;

use crate::cli::{GlobalArgs, RunArgs};
use crate::json::DeviceRecord;
use crate::output::Output;
use crate::output::remove_partial;
use crate::plot::{PlotData, PlotSeries};
use crate::record::{Format, Recorder, SampleRecord};
use crate::signals;
use crate::size::format_size;
use crate::spill::{SpillReport, Watcher};
use crate::time::{millis, seconds};

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
    /// When not and CMD exited 0, hmn exits [`OUTPUTS_INCOMPLETE`].
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
    fn raise_largest_process(&mut self, bytes: u64) {
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

/// hmn's exit code when CMD exited 0 but the recording, the plot or the `--json-out` report
/// could not be written whole (`EX_IOERR` of sysexits.h): a script that checks `$?` learns
/// that the outputs are incomplete. A non-zero code of CMD's own is never replaced.
pub const OUTPUTS_INCOMPLETE: u8 = 74;

/// Where the JSON report goes.
enum JsonTo {
    /// No JSON report.
    Nowhere,
    /// stdout, which then carries nothing else: CMD's stdout goes to hmn's stderr.
    Stdout,
    /// `--json-out FILE`, created before CMD starts; CMD keeps stdout.
    File(std::fs::File, std::path::PathBuf),
}

/// `run`, returning hmn's exit code.
#[allow(clippy::too_many_lines)]
fn run_with(probe: &Arc<Probe>, global: &GlobalArgs, args: &RunArgs, out: &Output) -> u8 {
    let command: Vec<String> = args
        .command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // As typed; escaped for a terminal (the report, messages) — the plot escapes its title
    // for XML itself.
    let typed = shell_words(&command);
    let shown = crate::text::escape(&typed).into_owned();
    if let Some(plot) = &args.plot
        && !has_extension(plot, "svg")
    {
        out.say(&format!(
            "run: --plot {} must name an .svg file",
            plot.display()
        ));
        return 2;
    }

    let json_to = match &args.json_out {
        Some(path) => match std::fs::File::create(path) {
            Ok(file) => JsonTo::File(file, path.clone()),
            Err(e) => {
                out.say(&format!("run: cannot create {}: {e}", path.display()));
                return 2;
            }
        },
        None if global.json => JsonTo::Stdout,
        None => JsonTo::Nowhere,
    };

    let (devices, gpu_note) = devices_to_sample(probe, global.device);
    let host_start = probe.host_memory();

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

    let forwarding = signals::install_for_run();
    if let Err(e) = &forwarding {
        out.say(&format!(
            "run: cannot catch signals ({e}); Ctrl-C will stop hmn without a report"
        ));
    }
    let adopting = descendants::adopt_orphans();

    // Spill trackers take their baseline reading before CMD starts.
    let indices: Vec<u32> = devices.iter().map(|d| d.index).collect();
    let spill = Watcher::start(probe, &indices, args.interval);

    let started = Instant::now();
    let started_wall = SystemTime::now();
    let stdout_to_stderr = matches!(json_to, JsonTo::Stdout);
    let own_peak = own_max_rss();
    let child = match spawn(&args.command, stdout_to_stderr) {
        Ok(child) => child,
        Err(e) => {
            let code = start_failure_code(&e, &args.command);
            let hint = match code {
                127 => " (is it installed and on PATH?)",
                _ if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    " (is it executable? `chmod +x` it, or run it through its interpreter)"
                }
                _ => "",
            };
            out.say(&format!("run: cannot run `{shown}`: {e}{hint}"));
            if let Some(path) = &args.record {
                let _ = remove_partial(path);
            }
            if let JsonTo::File(_, path) = &json_to {
                let _ = remove_partial(path);
            }
            return code;
        }
    };
    let pid = child.id();
    signals::set_child(pid);

    if let Some(recorder) = &recorder {
        lock(recorder).start(
            started_wall,
            &command,
            pid,
            args.interval,
            &devices,
            host_start.as_ref().ok().map(|h| h.total_bytes),
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

    let reaper = adopting
        .as_ref()
        .ok()
        .map(|()| descendants::Reaper::start(pid));
    let mut ending = wait(child);
    signals::clear_child();
    // CMD's `ru_maxrss` includes the memory it had before `exec`: hmn's own. A figure no
    // larger than hmn's peak says nothing about CMD, only that CMD peaked no higher.
    let mut largest_at_most = None;
    if let (Some(kernel), Some(own)) = (ending.max_rss_bytes, own_peak)
        && kernel <= own + own / 32
    {
        ending.max_rss_bytes = None;
        largest_at_most = Some(kernel);
    }
    let cmd_wall = started.elapsed();
    let mut notes = Vec::new();
    if let Err(e) = &adopting {
        notes.push(format!(
            "descendants that outlive the command cannot be found ({e})"
        ));
    }
    let mut left = reaper.map(descendants::Reaper::stop).unwrap_or_default();
    let mut followed = false;
    if !left.pids.is_empty() && args.follow_descendants {
        out.say(&format!(
            "run: `{shown}` exited; following {} descendant{} that outlived it (pid {}) until \
             they end",
            left.pids.len(),
            if left.pids.len() == 1 { "" } else { "s" },
            join_pids(&left.pids)
        ));
        left = descendants::follow(left, args.interval);
        followed = true;
    }
    let wall = started.elapsed();
    let report = sampler.map(Sampler::stop);
    let spill = spill.stop();

    let mut run_report = build_report(
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
    if run_report.tree.largest_process_peak_rss_bytes.is_none() {
        run_report.tree.largest_process_at_most_bytes = largest_at_most;
    }
    run_report.tree.descendants_left = left.pids.clone();
    run_report.tree.followed_descendants = followed;
    if followed {
        run_report.command_wall_time_ms = Some(millis(cmd_wall));
    }
    if let Some(orphans_peak) = left.max_rss_bytes {
        run_report.raise_largest_process(orphans_peak);
    }
    let host_error = host_start.as_ref().err().map(ToString::to_string);
    explain_unknowns(&mut run_report, report.as_ref(), host_error, &mut notes);
    run_report.notes = notes;

    // Every output is finished before the report says which are incomplete; the recording's
    // summary record is the report as it stands then (a failure to write it is in neither).
    if let (Some(path), Some(plot)) = (&args.plot, &plot) {
        let data = lock(plot);
        let names: Vec<String> = devices.iter().map(DeviceRecord::label).collect();
        if let Err(e) = crate::plot::draw(path, &format!("hmn run: {typed}"), &data, &names) {
            let error = format!("cannot draw {}: {e}", path.display());
            out.say(&format!("run: {error}"));
            run_report.plot_error = Some(error);
        }
    }
    if let Some(recorder) = &recorder {
        let mut recorder = lock(recorder);
        run_report.recording_error = recorder.failure().map(str::to_owned);
        run_report.outputs_complete =
            run_report.recording_error.is_none() && run_report.plot_error.is_none();
        recorder.summary(&run_report);
        run_report.recording_error = recorder.failure().map(str::to_owned);
    }
    run_report.outputs_complete =
        run_report.recording_error.is_none() && run_report.plot_error.is_none();
    if let JsonTo::File(file, path) = &json_to
        && let Err(e) = write_json_file(file, &run_report)
    {
        let removed = match remove_partial(path) {
            Ok(true) => "; the partial file was removed".to_owned(),
            Ok(false) => String::new(),
            Err(r) => format!("; the partial file could not be removed either ({r})"),
        };
        out.say(&format!(
            "run: cannot write the report to {}: {e}{removed}",
            path.display()
        ));
        run_report.outputs_complete = false;
    }
    let code = if ending.code == 0 && !run_report.outputs_complete {
        OUTPUTS_INCOMPLETE
    } else {
        ending.code
    };
    write_text_report(&shown, &run_report, args.interval);
    if code != ending.code {
        out.say(&format!(
            "run: exiting {code}: the command succeeded but an output is incomplete (above)"
        ));
    }
    if matches!(json_to, JsonTo::Stdout) {
        out.json(&run_report);
    }
    code
}

/// Shells' codes for a command that could not be started: 127 when it was not found, 126
/// when it was found but could not be executed (no permission, not an executable format, a
/// directory, a script whose interpreter is missing).
fn start_failure_code(e: &std::io::Error, command: &[OsString]) -> u8 {
    let program = command.first().map(Path::new);
    let names_a_file = program.is_some_and(|p| p.components().count() > 1 && p.exists());
    if e.kind() == std::io::ErrorKind::NotFound && !names_a_file {
        127
    } else {
        126
    }
}

fn write_json_file(mut file: &std::fs::File, report: &RunReport) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    text.push('\n');
    file.write_all(text.as_bytes())
}

fn join_pids(pids: &[u32]) -> String {
    pids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension()
        .is_some_and(|e| e.to_string_lossy().eq_ignore_ascii_case(ext))
}

/// The devices to sample (`--device`, or all), and why there are none when there are none.
fn devices_to_sample(probe: &Probe, only: Option<u32>) -> (Vec<DeviceRecord>, Option<String>) {
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
            Ok(info) => devices.push(DeviceRecord::from(&info)),
            Err(e) => notes.push(format!("GPU {index}: {e}")),
        }
    }
    let note = (!notes.is_empty()).then(|| notes.join("; "));
    (devices, note)
}

/// Starts CMD with hmn's stdin, stdout and stderr, or with its stdout sent to hmn's stderr
/// (`--json` without `--json-out`: stdout then carries the report alone).
fn spawn(command: &[OsString], stdout_to_stderr: bool) -> std::io::Result<std::process::Child> {
    let (program, rest) = command
        .split_first()
        .ok_or_else(|| std::io::Error::other("no command"))?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(rest);
    if stdout_to_stderr {
        cmd.stdout(std::process::Stdio::from(std::io::stderr()));
    }
    cmd.spawn()
}

fn start_sampler(
    probe: &Arc<Probe>,
    interval: Duration,
    pid: u32,
    devices: &[DeviceRecord],
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

#[allow(clippy::too_many_arguments)]
fn build_report(
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
    let peak = |target: usize, metric: Metric| report.and_then(|r| r.peak(target, metric));
    // A sum of 0 means every read found the tree's processes gone (CMD ended before a sample
    // saw it resident): that is no measurement.
    let tree_peak = peak(0, Metric::Rss).filter(|p| p.max > 0);
    let sampled = report
        .and_then(|r| r.targets.first())
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
    let missed = |target: usize, metric: Metric| {
        report.map_or(0, |r| {
            r.series
                .iter()
                .filter(|s| s.series.target == target && s.series.metric == metric)
                .map(|s| s.missed)
                .sum::<u64>()
        })
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
        },
        devices: devices
            .iter()
            .enumerate()
            .map(|(k, d)| {
                let tree = peak(0, Metric::Gpu { device: d.index });
                let used = peak(1 + k, Metric::DeviceUsed);
                DeviceReport {
                    device: d.clone(),
                    tree_peak_bytes: tree.map(|p| p.max),
                    tree_peak_at_ms: tree.map(|p| millis(p.max_at)),
                    device_peak_used_bytes: used.map(|p| p.max),
                    device_peak_at_ms: used.map(|p| millis(p.max_at)),
                    missed_samples: missed(0, Metric::Gpu { device: d.index })
                        .max(missed(1 + k, Metric::DeviceUsed)),
                }
            })
            .collect(),
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

/// Says what could not be known and why, so no unknown reads as 0 or as "none".
fn explain_unknowns(
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

fn source_name(source: PeakSource) -> &'static str {
    match source {
        PeakSource::KernelHighWaterMark => "kernel",
        _ => "sampled",
    }
}

fn opt_size(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "n/a".to_owned(), format_size)
}

/// The `time -v`-style report, on stderr.
#[allow(clippy::too_many_lines)]
fn write_text_report(shown: &str, r: &RunReport, interval: Duration) {
    let every = format!("sampled every {}", seconds(millis(interval)));
    let mut lines = Vec::new();
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
        Some(_) => every.clone(),
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
    #[cfg(unix)]
    {
        let names = [
            (libc::SIGHUP, "SIGHUP"),
            (libc::SIGINT, "SIGINT"),
            (libc::SIGQUIT, "SIGQUIT"),
            (libc::SIGILL, "SIGILL"),
            (libc::SIGTRAP, "SIGTRAP"),
            (libc::SIGABRT, "SIGABRT"),
            (libc::SIGBUS, "SIGBUS"),
            (libc::SIGFPE, "SIGFPE"),
            (libc::SIGKILL, "SIGKILL"),
            (libc::SIGUSR1, "SIGUSR1"),
            (libc::SIGSEGV, "SIGSEGV"),
            (libc::SIGUSR2, "SIGUSR2"),
            (libc::SIGPIPE, "SIGPIPE"),
            (libc::SIGALRM, "SIGALRM"),
            (libc::SIGTERM, "SIGTERM"),
            (libc::SIGCONT, "SIGCONT"),
            (libc::SIGXCPU, "SIGXCPU"),
            (libc::SIGXFSZ, "SIGXFSZ"),
            (libc::SIGVTALRM, "SIGVTALRM"),
            (libc::SIGPROF, "SIGPROF"),
            (libc::SIGWINCH, "SIGWINCH"),
            (libc::SIGSYS, "SIGSYS"),
        ];
        if let Some((_, name)) = names.iter().find(|(n, _)| *n == signal) {
            return (*name).to_owned();
        }
    }
    #[cfg(not(unix))]
    {
        let name = match signal {
            2 => "SIGINT",
            15 => "SIGTERM",
            _ => "",
        };
        if !name.is_empty() {
            return name.to_owned();
        }
    }
    format!("signal {signal}")
}

/// hmn's own peak resident memory, bytes: what a child's `ru_maxrss` starts from, since
/// `exec` keeps the high-water mark of the memory the child had before (hmn's, shared by
/// `posix_spawn`'s vfork or copied by fork).
#[cfg(unix)]
fn own_max_rss() -> Option<u64> {
    // SAFETY: a zeroed rusage is a valid buffer for getrusage to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is valid for writing.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut usage) };
    if rc != 0 {
        return None;
    }
    u64::try_from(usage.ru_maxrss).ok().map(|v| {
        // KiB on Linux, bytes on macOS.
        if cfg!(target_os = "macos") {
            v
        } else {
            v * 1024
        }
    })
}

#[cfg(not(unix))]
fn own_max_rss() -> Option<u64> {
    None
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

pub mod descendants;

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
    fn a_stat_line_gives_the_process_name_and_state_even_with_parentheses_in_the_name() {
        assert_eq!(
            descendants::parse_stat("42 (sleep) S 1 42 42 0 -1"),
            Some(("sleep", 'S', 1))
        );
        assert_eq!(
            descendants::parse_stat("7 (a) (b) Z 1 7 7"),
            Some(("a) (b", 'Z', 1))
        );
        assert_eq!(descendants::parse_stat("garbage"), None);
    }

    #[test]
    fn the_gpu_helper_is_known_by_its_name_cut_as_the_kernel_cuts_it() {
        assert_eq!(descendants::helper_comm(None), "nvidia-smi");
        assert_eq!(
            descendants::helper_comm(Some(std::ffi::OsStr::new("/opt/x/nvidia-smi-wrapper.sh"))),
            "nvidia-smi-wrap"
        );
    }

    #[test]
    fn not_found_is_127_and_found_but_not_executable_is_126() {
        let not_found = std::io::Error::from(std::io::ErrorKind::NotFound);
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let cmd = |p: &str| vec![OsString::from(p)];
        assert_eq!(start_failure_code(&not_found, &cmd("no-such-tool")), 127);
        assert_eq!(start_failure_code(&not_found, &cmd("/nonexistent/x")), 127);
        assert_eq!(start_failure_code(&denied, &cmd("./script.sh")), 126);
        // A script whose interpreter is missing: the file exists, exec says ENOENT.
        assert_eq!(start_failure_code(&not_found, &cmd("/bin/sh")), 126);
    }
}

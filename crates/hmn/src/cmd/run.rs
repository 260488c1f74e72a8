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
//!
//! The devices sampled and the host's size are read before CMD starts, from one
//! [`hypomnesis::Frame`]; the samples themselves come from the library's sampler, which is
//! built for fast peak sampling. Where the parts are: [`child`] starts CMD and tells how it
//! ended, [`report`] builds the report from the samples, [`text`] writes it on stderr.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use hypomnesis::{Frame, FrameRequest, Metric, Probe, Report, Sampler, Target, TargetId};

use child::{Ending, own_max_rss, shell_words, spawn, start_failure_code, wait};
use report::{RunReport, build_report, explain_unknowns};
use text::{join_pids, write_spill_report, write_text_report};

use crate::cli::{GlobalArgs, RunArgs};
use crate::json::DeviceRecord;
use crate::output::Output;
use crate::output::remove_partial;
use crate::plot::{PlotData, PlotSeries};
use crate::record::{Format, Recorder, SampleRecord};
use crate::signals;
use crate::spill::{SpillReport, Watcher};
use crate::time::millis;

pub fn run(global: &GlobalArgs, args: &RunArgs, out: &Output) -> ExitCode {
    run_as(global, args, View::Full, out)
}

/// What is written when CMD ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// `hmn run`: the whole report.
    Full,
    /// `hmn spill`: how CMD ended and the spill lines; with `--json`, the `spill` object alone.
    Spill,
}

/// `run`, writing `view` of the report.
pub fn run_as(global: &GlobalArgs, args: &RunArgs, view: View, out: &Output) -> ExitCode {
    let probe = Arc::new(crate::driver::guarded_probe(global.timeout));
    let code = run_with(&probe, global, args, view, out);
    crate::driver::leave_if_driver_hung(&probe, i32::from(code));
    // A report that could not be written to stdout makes CMD's success "outputs incomplete"
    // (CMD's own failure code is kept), as a recording or a plot that could not be written does.
    if out.stdout_failed() && code == 0 {
        return ExitCode::from(OUTPUTS_INCOMPLETE);
    }
    ExitCode::from(code)
}

/// hmn's exit code when CMD exited 0 but the recording, the plot or the `--json-out` report
/// could not be written whole (`EX_IOERR` of sysexits.h): a script that checks `$?` learns
/// that the outputs are incomplete. A non-zero code of CMD's own is never replaced.
pub const OUTPUTS_INCOMPLETE: u8 = 74;

/// The recording, written by the sampler's thread and, at the end, by `run`.
type SharedRecorder = Arc<Mutex<Recorder>>;

/// Where the JSON report goes.
enum JsonTo {
    /// No JSON report.
    Nowhere,
    /// stdout, which then carries nothing else: CMD's stdout goes to hmn's stderr.
    Stdout,
    /// `--json-out FILE`, created before CMD starts; CMD keeps stdout.
    File(std::fs::File, std::path::PathBuf),
}

/// `run`, returning hmn's exit code: the outputs opened, the machine read, CMD started,
/// sampled and waited for, the report built and every output finished.
fn run_with(
    probe: &Arc<Probe>,
    global: &GlobalArgs,
    args: &RunArgs,
    view: View,
    out: &Output,
) -> u8 {
    let command: Vec<String> = args
        .command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // As typed; escaped for a terminal (the report, messages) — the plot escapes its title
    // for XML itself.
    let typed = shell_words(&command);
    let shown = crate::text::escape(&typed).into_owned();
    let (json_to, recorder) = match open_outputs(global, args, out) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let before = Before::read(probe, global.device);

    let forwarding = signals::install_for_run();
    if let Err(e) = &forwarding {
        out.say(&format!(
            "run: cannot catch signals ({e}); Ctrl-C will stop hmn without a report"
        ));
    }
    let adopting = descendants::adopt_orphans();
    // Spill trackers take their baseline reading before CMD starts.
    let indices: Vec<u32> = before.devices.iter().map(|d| d.index).collect();
    let spill = Watcher::start(probe, &indices, args.interval);

    let started = Instant::now();
    let started_wall = SystemTime::now();
    let own_peak = own_max_rss();
    let child = match spawn(&args.command, matches!(json_to, JsonTo::Stdout)) {
        Ok(child) => child,
        Err(e) => return could_not_start(&e, args, &json_to, &shown, out),
    };
    let pid = child.id();
    signals::set_child(pid);
    if let Some(recorder) = &recorder {
        lock(recorder).start(
            started_wall,
            &command,
            pid,
            args.interval,
            &before.devices,
            before.host_total_bytes,
        );
    }
    let (sampler, plot) = start_sampling(probe, args, pid, &before, recorder.as_ref(), out);

    let reaper = adopting
        .as_ref()
        .ok()
        .map(|()| descendants::Reaper::start(pid));
    let ended = wait_for_end(child, reaper, own_peak, started, args, &shown, out);
    let report = sampler.map(Sampler::stop);
    let mut run_report = full_report(
        &command,
        pid,
        &ended,
        args.interval,
        report.as_ref(),
        &before,
        spill.stop(),
        adopting.err(),
    );
    let plot = plot.zip(args.plot.as_deref());
    finish_outputs(
        &mut run_report,
        &before,
        plot,
        recorder.as_deref(),
        &json_to,
        &typed,
        out,
    );
    let code = if ended.ending.code == 0 && !run_report.outputs_complete {
        OUTPUTS_INCOMPLETE
    } else {
        ended.ending.code
    };
    match view {
        View::Full => write_text_report(&shown, &run_report, args.interval),
        View::Spill => write_spill_report(&shown, &run_report),
    }
    if code != ended.ending.code {
        out.say(&format!(
            "run: exiting {code}: the command succeeded but an output is incomplete (above)"
        ));
    }
    if matches!(json_to, JsonTo::Stdout) {
        match view {
            View::Full => out.json(&run_report),
            View::Spill => out.json(&run_report.spill),
        }
    }
    code
}

/// Starts the sampler on CMD's tree, the devices and the host, feeding the recording and the
/// plot; without a sampler only the exit status is reported.
fn start_sampling(
    probe: &Arc<Probe>,
    args: &RunArgs,
    pid: u32,
    before: &Before,
    recorder: Option<&SharedRecorder>,
    out: &Output,
) -> (Option<Sampler>, Option<Arc<Mutex<PlotData>>>) {
    let plot = args
        .plot
        .as_ref()
        .map(|_| Arc::new(Mutex::new(PlotData::new(before.devices.len()))));
    let sampler = start_sampler(
        probe,
        args.interval,
        pid,
        &before.devices,
        recorder.cloned(),
        plot.clone(),
    )
    .map_err(|e| {
        out.say(&format!(
            "run: cannot sample ({e}); only the exit status is reported"
        ));
    })
    .ok();
    (sampler, plot)
}

/// The report: the sampler's figures, what only the end tells, and why anything is unknown.
#[allow(clippy::too_many_arguments)]
fn full_report(
    command: &[String],
    pid: u32,
    ended: &Ended,
    interval: Duration,
    report: Option<&Report>,
    before: &Before,
    spill: SpillReport,
    adopting_error: Option<std::io::Error>,
) -> RunReport {
    let mut run_report = build_report(
        command,
        pid,
        &ended.ending,
        ended.wall,
        interval,
        report,
        &before.devices,
        before.gpu_note.clone(),
        spill,
    );
    ended.complete(&mut run_report);
    let mut notes = Vec::new();
    if let Some(e) = adopting_error {
        notes.push(format!(
            "descendants that outlive the command cannot be found ({e})"
        ));
    }
    explain_unknowns(
        &mut run_report,
        report,
        before.host_error.clone(),
        &mut notes,
    );
    run_report.notes = notes;
    run_report
}

/// Where the report goes and the recording, opened before anything is read or started; `Err`
/// holds the exit code (2) when an output cannot be created or named.
fn open_outputs(
    global: &GlobalArgs,
    args: &RunArgs,
    out: &Output,
) -> Result<(JsonTo, Option<SharedRecorder>), u8> {
    if let Some(plot) = &args.plot
        && !has_extension(plot, "svg")
    {
        out.say(&format!(
            "run: --plot {} must name an .svg file",
            plot.display()
        ));
        return Err(2);
    }
    let json_to = match &args.json_out {
        Some(path) => match std::fs::File::create(path) {
            Ok(file) => JsonTo::File(file, path.clone()),
            Err(e) => {
                out.say(&format!("run: cannot create {}: {e}", path.display()));
                return Err(2);
            }
        },
        None if global.json => JsonTo::Stdout,
        None => JsonTo::Nowhere,
    };
    let recorder = match &args.record {
        Some(path) => match Recorder::create(path, Format::for_path(path)) {
            Ok(r) => Some(Arc::new(Mutex::new(r))),
            Err(e) => {
                out.say(&format!("run: cannot create {}: {e}", path.display()));
                return Err(2);
            }
        },
        None => None,
    };
    Ok((json_to, recorder))
}

/// CMD could not be started: says why (with a hint), removes the outputs created for it, and
/// gives the shell's code (127 or 126).
fn could_not_start(
    e: &std::io::Error,
    args: &RunArgs,
    json_to: &JsonTo,
    shown: &str,
    out: &Output,
) -> u8 {
    let code = start_failure_code(e, &args.command);
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
    if let JsonTo::File(_, path) = json_to {
        let _ = remove_partial(path);
    }
    code
}

/// How CMD (and the descendants followed) ended, as hmn saw it.
struct Ended {
    ending: Ending,
    /// CMD's kernel peak when it was no larger than hmn's own: a bound, not a measure.
    largest_at_most: Option<u64>,
    /// CMD's own time, start to end.
    command_wall: Duration,
    /// Until the last followed descendant ended (CMD's time when none was followed).
    wall: Duration,
    left: descendants::Left,
    followed: bool,
}

impl Ended {
    /// Adds to the report what only the end tells: descendants left, CMD's own time, the
    /// largest process's bound or its orphans' peak.
    fn complete(&self, r: &mut RunReport) {
        if r.tree.largest_process_peak_rss_bytes.is_none() {
            r.tree.largest_process_at_most_bytes = self.largest_at_most;
        }
        r.tree.descendants_left = self.left.pids.clone();
        r.tree.followed_descendants = self.followed;
        if self.followed {
            r.command_wall_time_ms = Some(millis(self.command_wall));
        }
        if let Some(orphans_peak) = self.left.max_rss_bytes {
            r.raise_largest_process(orphans_peak);
        }
    }
}

/// Waits for CMD, then (with `--follow-descendants`) for the descendants that outlived it.
fn wait_for_end(
    child: std::process::Child,
    reaper: Option<descendants::Reaper>,
    own_peak: Option<u64>,
    started: Instant,
    args: &RunArgs,
    shown: &str,
    out: &Output,
) -> Ended {
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
    let command_wall = started.elapsed();
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
    Ended {
        ending,
        largest_at_most,
        command_wall,
        wall: started.elapsed(),
        left,
        followed,
    }
}

/// Finishes the plot, the recording's summary and the `--json-out` report, in that order,
/// and says in the report which are incomplete; the recording's summary record is the report
/// as it stands then (a failure to write it is in neither).
fn finish_outputs(
    r: &mut RunReport,
    before: &Before,
    plot: Option<(Arc<Mutex<PlotData>>, &Path)>,
    recorder: Option<&Mutex<Recorder>>,
    json_to: &JsonTo,
    typed: &str,
    out: &Output,
) {
    if let Some((plot, path)) = plot {
        let data = lock(&plot);
        let names: Vec<String> = before.devices.iter().map(DeviceRecord::label).collect();
        if let Err(e) = crate::plot::draw(path, &format!("hmn run: {typed}"), &data, &names) {
            let error = format!("cannot draw {}: {e}", path.display());
            out.say(&format!("run: {error}"));
            r.plot_error = Some(error);
        }
    }
    if let Some(recorder) = recorder {
        let mut recorder = lock(recorder);
        r.recording_error = recorder.failure().map(str::to_owned);
        r.outputs_complete = r.recording_error.is_none() && r.plot_error.is_none();
        recorder.summary(r);
        r.recording_error = recorder.failure().map(str::to_owned);
    }
    r.outputs_complete = r.recording_error.is_none() && r.plot_error.is_none();
    if let JsonTo::File(file, path) = json_to
        && let Err(e) = write_json_file(file, r)
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
        r.outputs_complete = false;
    }
}

fn write_json_file(mut file: &std::fs::File, report: &RunReport) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    text.push('\n');
    file.write_all(text.as_bytes())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension()
        .is_some_and(|e| e.to_string_lossy().eq_ignore_ascii_case(ext))
}

/// What hmn knows before CMD starts, from one frame of the machine: the devices to sample
/// (`--device`, or all) and the host.
struct Before {
    devices: Vec<DeviceRecord>,
    /// Why GPU memory is not sampled on some or all devices.
    gpu_note: Option<String>,
    host_total_bytes: Option<u64>,
    /// Why host memory could not be read.
    host_error: Option<String>,
}

impl Before {
    fn read(probe: &Probe, only: Option<u32>) -> Self {
        let frame = probe.frame(FrameRequest::DEVICES);
        let (devices, gpu_note) = devices_to_sample(probe, &frame, only);
        Self {
            devices,
            gpu_note,
            host_total_bytes: frame.host.as_ref().map(|h| h.total_bytes),
            host_error: frame.host_error.as_ref().map(ToString::to_string),
        }
    }
}

/// The devices to sample (`--device`, or all) in `frame`, and why there are none when there
/// are none. A device the frame left out (its description could not be read) is asked alone,
/// only then, for its reason.
fn devices_to_sample(
    probe: &Probe,
    frame: &Frame,
    only: Option<u32>,
) -> (Vec<DeviceRecord>, Option<String>) {
    let indices: Vec<u32> = match (only, &frame.gpu_error) {
        (Some(index), Some(e)) => return (Vec::new(), Some(format!("GPU {index}: {e}"))),
        (None, Some(e)) => return (Vec::new(), Some(e.to_string())),
        (Some(index), None) => vec![index],
        // Every device the backends count, described or not.
        (None, None) => {
            let described = frame.devices.iter().map(|d| d.device.index);
            let counted = 0..probe.device_count().unwrap_or(0);
            let mut all: Vec<u32> = described.chain(counted).collect();
            all.sort_unstable();
            all.dedup();
            all
        }
    };
    let mut devices = Vec::new();
    let mut notes = Vec::new();
    for index in indices {
        match frame.device(index) {
            Some(d) => devices.push(DeviceRecord::from(&d.device)),
            None => match probe.device_info(index) {
                Ok(info) => devices.push(DeviceRecord::from(&info)),
                Err(e) => notes.push(format!("GPU {index}: {e}")),
            },
        }
    }
    let note = (!notes.is_empty()).then(|| notes.join("; "));
    (devices, note)
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
        .gpu_devices(devices.iter().map(|d| d.index));
    let tree = builder.add(Target::Tree(pid));
    let device_targets: Vec<(u32, TargetId)> = devices
        .iter()
        .map(|d| (d.index, builder.add(Target::Device(d.index))))
        .collect();
    let host = builder.add(Target::Host);
    builder
        .on_sample(move |sample| {
            let gpus: Vec<(u32, Option<u64>, Option<u64>)> = device_targets
                .iter()
                .map(|&(index, device)| {
                    (
                        index,
                        sample.get(tree, Metric::Gpu { device: index }),
                        sample.get(device, Metric::DeviceUsed),
                    )
                })
                .collect();
            let record = SampleRecord {
                elapsed: sample.elapsed,
                wall_clock: sample.wall_clock,
                tree_rss_bytes: sample.get(tree, Metric::Rss),
                processes: sample.get(tree, Metric::Processes),
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

mod child;
pub mod descendants;
mod report;
mod text;

#[cfg(test)]
mod tests {
    use super::*;

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
}

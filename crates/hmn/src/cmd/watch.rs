//! `hmn watch [PID…]`: processes' GPU memory and RAM over time.
//!
//! nvitop and gpustat show every GPU, and a process is often on another GPU than the first:
//! `watch` therefore reads every device's process list each interval, all in one
//! [`hypomnesis::Frame`] of the machine (`--device N` narrows the rows to one device). A watched process gets one row per device whose list holds it (`VRAM`: device
//! memory; `SYS`: GPU buffers in system RAM — GTT, Intel system memory, Windows shared usage —
//! where the backend reports it; the same names and meanings as `hmn ps`), and its own RSS is
//! read once per interval. Rows go to stdout (a table, or NDJSON `sample` records with
//! `--json`, each naming its device); notices go to stderr. At the end (`--duration`, or
//! Ctrl-C / SIGTERM) a per-process, per-device summary gives each baseline (first sample) and
//! peak.
//!
//! A GPU figure is only a number when it was measured. Each row says how its figures were
//! found (`presence`): in the device's list; absent from a list that was read (0: the process
//! holds nothing there — only for a device it was seen on before, or the one `--device`
//! names); in no watched device's list (`n/a`: not seen, never 0); unreadable (Linux DRM
//! without the rights to read its fds); or missing because the device's list could not be
//! read this interval (a lost or hung GPU: said on stderr when it starts and ends, and counted
//! in the summary). A DRM client inherited across `fork` is held by every process that holds
//! it: each row carries the client's memory and says it is shared (`shared_bytes`).
//!
//! Which processes: the PIDs given, or the `--top N` largest GPU processes (all watched
//! devices together, narrowed by `--filter` and `--min`), chosen once, or again every interval
//! with `--follow-new`. Processes are named as `hmn ps` names them (the library's naming: the
//! full executable name, not `comm` cut at 15 bytes).
//!
//! PID reuse: a pid is bound to the process that had it when watching began, identified by
//! its start time (Linux `/proc/<pid>/stat`). When the start time changes, the OS gave the pid
//! to a new process: the baseline and peak are reset and the old process's summary is kept.
//! Where the start time cannot be read (a GPU process outside this PID namespace, other
//! platforms), a change of name is taken as the sign instead.
//!
//! Spill (Windows, see `crate::spill`): each watched device's spill tracker is read once per
//! interval, before the processes. Its first reading is the baseline; each row's SPILL cell
//! says whether the row's device spilled at that reading (`PAGED` when the process itself
//! holds ≥ 256 MiB in system RAM there), and the summary gives the episodes. A device that
//! already spills when watching begins is reported then: its spill is in the baseline, and
//! only further growth counts. Elsewhere spill is not measurable and the cells read `n/a`.
//!
//! Exit: 0 after a normal end or Ctrl-C with no spill seen (also where spill cannot be
//! measured); 1 when a watched device spilled (Windows); 2 when there is nothing to watch or
//! the arguments do not fit together (checked before any hardware call).
//!
//! Where the parts are: `listing` says what one frame tells of each watched process on each
//! device (pure, tested on inline rows); `track` follows a process over time (identity,
//! baselines, peaks); `records` holds the NDJSON records and `text` the rows and cells; this
//! module runs the steps, one frame per interval.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use hypomnesis::{Frame, FrameRequest, MemoryDetail, Probe};
use serde::Serialize;

mod listing;
mod records;
mod text;
mod track;

use listing::{Gpu, Interval, Listing, Place, Presence, max_opt};
use records::{
    DeviceSummary, FORMAT_VERSION, SampleRecord, Selection, StartRecord, SummaryRecord,
    TelemetryRecord,
};
use text::{ROW_HEADER, delta, opt_size, paged_cell, row_text, signed};
use track::{Identity, PerPid, Watched, identity};

use crate::cli::{GlobalArgs, WatchArgs};
use crate::json::DeviceRecord;
use crate::outcome::Outcome;
use crate::output::Output;
use crate::signals;
use crate::size::format_size;
use crate::spill::{DeviceSpill, SpillReport};
use crate::table::{Align, Table};
use crate::time::{millis, wall_clock_text};

/// A named process that grows this much without a name is worth a notice.
const UNNAMED_GROWTH_NOTICE: u64 = 256 << 20;

/// One interval's reading: one frame of the machine (the devices, every device's process
/// list, with `-a` their telemetry), and the watched devices' lists in it.
struct Reading {
    frame: Frame,
    interval: Interval,
}

impl Reading {
    /// Why device `d`'s list could not be read at this interval, if it could not.
    fn error(&self, d: u32) -> Option<&str> {
        self.interval
            .devices
            .iter()
            .find(|(index, _)| *index == d)
            .and_then(|(_, read)| read.as_ref().err())
            .map(String::as_str)
    }
}

/// Takes one frame per interval and finds the watched devices in it.
struct Reader<'a> {
    probe: &'a Probe,
    request: FrameRequest,
    /// The watched devices, in order.
    devices: Vec<u32>,
}

impl Reader<'_> {
    fn read(&self) -> Reading {
        self.reading(self.probe.frame(self.request))
    }

    fn reading(&self, frame: Frame) -> Reading {
        let interval = Interval::from_frame(&frame, &self.devices, |d| why_missing(self.probe, d));
        Reading { frame, interval }
    }
}

/// Why device `d` is not in a frame (its description could not be read this time: a GPU that
/// fell off the bus). Asked of that device alone, and only then, so that the notice names the
/// driver's own reason (`GPU is lost`).
fn why_missing(probe: &Probe, d: u32) -> String {
    match probe.device_info(d) {
        Err(e) => e.to_string(),
        Ok(_) => format!("GPU {d} was missing from this interval's device list"),
    }
}

/// `-a`: one telemetry record (JSON) or line (text) for `device`, from the interval's frame. A
/// device that stops answering is reported on stderr and the watch goes on.
fn sample_telemetry(sink: &Sink<'_>, reading: &Reading, device: u32) {
    let found = reading.frame.device(device);
    let telemetry = match found.map(|d| (&d.telemetry, &d.telemetry_error)) {
        Some((Some(t), _)) => Ok(t),
        Some((None, Some(e))) => Err(e.to_string()),
        Some((None, None)) => Err("not read".to_owned()),
        None => Err(reading.error(device).unwrap_or("not read").to_owned()),
    };
    match telemetry {
        Ok(telemetry) => {
            if sink.json {
                sink.record(&TelemetryRecord {
                    kind: "telemetry",
                    t_ms: millis(sink.started.elapsed()),
                    wall_clock: wall_clock_text(SystemTime::now()),
                    telemetry,
                });
            } else {
                sink.out.data(&format!(
                    "{}  GPU {device}: {}\n",
                    sink.at(),
                    crate::cmd::summary::telemetry_line(telemetry)
                ));
            }
        }
        Err(e) => sink.notice(&format!(
            "telemetry of GPU {device} failed at {} ({e})",
            sink.at()
        )),
    }
}

/// How the watched set is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Explicit,
    Top,
    FollowNew,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Explicit => "explicit",
            Self::Top => "top",
            Self::FollowNew => "follow_new",
        }
    }
}

/// Where rows and notices go.
struct Sink<'a> {
    out: &'a Output,
    json: bool,
    /// `--wide`: the summary table is never cut to the terminal.
    wide: bool,
    started: Instant,
}

impl Sink<'_> {
    fn at(&self) -> String {
        format!("+{:.1}s", self.started.elapsed().as_secs_f64())
    }

    fn notice(&self, text: &str) {
        self.out.say(&format!("watch: {text}"));
    }

    fn record<T: Serialize>(&self, value: &T) {
        match serde_json::to_string(value) {
            Ok(text) => self.out.data(&format!("{text}\n")),
            Err(e) => self.out.say(&format!("watch: could not encode JSON: {e}")),
        }
    }
}

pub fn run(global: &GlobalArgs, args: &WatchArgs, out: &Output) -> Outcome {
    let probe = crate::driver::guarded_probe(global.timeout);
    let outcome = watch(&probe, global, args, out);
    crate::driver::leave_if_driver_hung(&probe, i32::from(u8::from(outcome)));
    outcome
}

/// Whether each watched device's list could be read, for notices when that changes and the
/// summary's counts.
#[derive(Debug, Clone)]
struct DeviceHealth {
    index: u32,
    read: u64,
    missing: u64,
    /// Missed in a row so far (0: it answers).
    missing_run: u64,
    last_error: Option<String>,
}

impl DeviceHealth {
    fn new(index: u32) -> Self {
        Self {
            index,
            read: 0,
            missing: 0,
            missing_run: 0,
            last_error: None,
        }
    }

    /// Counts this interval's read of the device; says when it starts or stops failing.
    fn observe(&mut self, sink: &Sink<'_>, result: &Result<Listing, String>) {
        match result {
            Ok(_) => {
                if self.missing_run > 0 {
                    sink.notice(&format!(
                        "GPU {} answers again at {} after {} missing {}",
                        self.index,
                        sink.at(),
                        self.missing_run,
                        if self.missing_run == 1 {
                            "sample"
                        } else {
                            "samples"
                        }
                    ));
                }
                self.read += 1;
                self.missing_run = 0;
            }
            Err(e) => {
                if self.missing_run == 0 {
                    sink.notice(&format!(
                        "sample of GPU {} failed at {} ({e}); skipping interval for it: its \
                         figures read n/a (not 0) until it answers again",
                        self.index,
                        sink.at()
                    ));
                }
                self.missing += 1;
                self.missing_run += 1;
                self.last_error = Some(e.clone());
            }
        }
    }

    fn summary(&self) -> DeviceSummary {
        DeviceSummary {
            index: self.index,
            samples_read: self.read,
            samples_missing: self.missing,
            last_error: self.last_error.clone(),
        }
    }
}

fn watch(probe: &Probe, global: &GlobalArgs, args: &WatchArgs, out: &Output) -> Outcome {
    let mode = match choose_mode(args, out) {
        Ok(mode) => mode,
        Err(outcome) => return outcome,
    };
    if let Err(e) = signals::install() {
        out.say(&format!(
            "watch: cannot catch Ctrl-C ({e}); it will end hmn without a summary"
        ));
    }
    // Every device's list is read each interval (in one frame), so a process on another GPU
    // than the first is seen; RSS and start times are read for the watched processes alone.
    let request = FrameRequest::DEVICES
        .with_processes(true, false)
        .with_telemetry(global.all);
    let first_frame = probe.frame(request);
    let devices = match choose_devices(probe, &first_frame, global.device, mode, out) {
        Ok(found) => found,
        Err(outcome) => return outcome,
    };
    let reader = Reader {
        probe,
        request,
        devices: devices.iter().map(|d| d.index).collect(),
    };
    let sink = Sink {
        out,
        json: global.json,
        wide: global.wide,
        started: Instant::now(),
    };
    let started_wall = SystemTime::now();
    let spill: Vec<(u32, DeviceSpill)> = reader
        .devices
        .iter()
        .map(|&d| (d, DeviceSpill::new(probe, d)))
        .collect();

    let first = reader.reading(first_frame);
    let initial = match initial_pids(mode, args, &first.interval, out) {
        Ok(pids) => pids,
        Err(outcome) => return outcome,
    };
    let watched = attach(probe, &sink, mode, args, &first.interval, &initial);
    let single = global.device.is_some();
    if let (true, Some(&only)) = (single && mode == Mode::Explicit, reader.devices.first()) {
        say_where_else(probe, &sink, only, &first.frame, &first.interval, &initial);
    }
    announce(&sink, args, mode, &devices, single, watched.len());
    let spill_measurable = spill.iter().any(|(_, s)| s.is_measurable());
    begin(
        &sink,
        args,
        mode,
        &devices,
        &initial,
        started_wall,
        spill_measurable,
    );
    say_already_spilling(probe, &sink, &spill);

    let mut session = Session {
        health: reader
            .devices
            .iter()
            .map(|&i| DeviceHealth::new(i))
            .collect(),
        reader,
        sink,
        args,
        mode,
        single,
        telemetry: global.all,
        spill,
        watched,
        finished: Vec::new(),
        samples: 0,
    };
    let interrupted = session.run(first);
    session.finish(interrupted)
}

/// How the watched set is chosen; `Err` (exit 2) when the arguments do not fit together.
fn choose_mode(args: &WatchArgs, out: &Output) -> Result<Mode, Outcome> {
    if !args.pids.is_empty() && (args.follow_new || !args.filter.is_empty() || args.min.is_some()) {
        out.say(
            "watch: --follow-new, --filter and --min choose the processes to watch; they cannot \
             be combined with explicit PIDs",
        );
        return Err(Outcome::CouldNotTell);
    }
    Ok(if !args.pids.is_empty() {
        Mode::Explicit
    } else if args.follow_new {
        Mode::FollowNew
    } else {
        Mode::Top
    })
}

/// The processes to watch at the start, from the first interval's lists; `Err` (exit 2) when
/// no watched device's list could be read, or no process matches `--top`.
fn initial_pids(
    mode: Mode,
    args: &WatchArgs,
    first: &Interval,
    out: &Output,
) -> Result<Vec<u32>, Outcome> {
    if !first.devices.is_empty() && first.listings().next().is_none() {
        for (d, read) in &first.devices {
            if let Err(e) = read {
                out.say(&format!("watch: cannot list the processes of GPU {d}: {e}"));
            }
        }
        return Err(Outcome::CouldNotTell);
    }
    let initial = match mode {
        Mode::Explicit => {
            let mut pids = args.pids.clone();
            pids.dedup();
            pids
        }
        Mode::Top | Mode::FollowNew => first.select(args.top, &args.filter, args.min),
    };
    if initial.is_empty() && mode == Mode::Top {
        out.say("watch: no GPU process matches, so there is nothing to watch");
        return Err(Outcome::CouldNotTell);
    }
    Ok(initial)
}

/// The processes first watched, named from the first interval's lists (else from the OS),
/// with what is worth saying about them.
fn attach(
    probe: &Probe,
    sink: &Sink<'_>,
    mode: Mode,
    args: &WatchArgs,
    first: &Interval,
    pids: &[u32],
) -> Vec<Watched> {
    let mut watched = Vec::new();
    for &pid in pids {
        let name = first
            .row(pid)
            .and_then(|r| r.name.clone())
            .or_else(|| probe.process_name(pid));
        if mode == Mode::Explicit
            && first.row(pid).is_none()
            && probe.process_exists(pid) == Some(false)
        {
            sink.notice(&format!("pid={pid} names no running process in this /proc"));
        }
        if name.is_none() && !args.filter.is_empty() {
            sink.notice(&format!(
                "pid={pid} has no resolvable name; --filter cannot match it"
            ));
        }
        watched.push(Watched::new(
            pid,
            name,
            hypomnesis::process_start_ticks(probe, pid),
        ));
    }
    watched
}

/// The opening line on stderr: which GPUs, the interval, which processes.
fn announce(
    sink: &Sink<'_>,
    args: &WatchArgs,
    mode: Mode,
    devices: &[DeviceRecord],
    single: bool,
    count: usize,
) {
    let selection = match mode {
        Mode::Explicit => format!("watching {count} PID(s)"),
        Mode::Top | Mode::FollowNew => {
            let mut what = format!("top {} by GPU memory", args.top);
            if !args.filter.is_empty() {
                let quoted: Vec<String> = args.filter.iter().map(|f| format!("{f:?}")).collect();
                what.push_str(&format!(
                    " among names containing {} (case-insensitive)",
                    quoted.join(" or ")
                ));
            }
            if let Some(min) = args.min {
                what.push_str(&format!(" with footprint >= {}", format_size(min)));
            }
            if mode == Mode::FollowNew {
                format!("following {what} (re-selected every interval), {count} initially")
            } else {
                format!("watching {count} PID(s) ({what})")
            }
        }
    };
    let named = |d: &DeviceRecord| match &d.name {
        Some(name) => format!("{} [{}]", d.index, crate::text::Shown(name)),
        None => d.index.to_string(),
    };
    let device_text = match (devices, single) {
        ([], _) => "no GPU (RAM only)".to_owned(),
        ([only], true) => format!("GPU {} (--device)", named(only)),
        (all, _) => format!(
            "every GPU: {}",
            all.iter().map(named).collect::<Vec<_>>().join(", ")
        ),
    };
    sink.out.say(&format!(
        "watch: {device_text}, interval {:.1}s, {selection}",
        args.interval.as_secs_f64()
    ));
}

/// The `start` record (`--json`), or the rows' header.
fn begin(
    sink: &Sink<'_>,
    args: &WatchArgs,
    mode: Mode,
    devices: &[DeviceRecord],
    initial: &[u32],
    started_wall: SystemTime,
    spill_measurable: bool,
) {
    if !sink.json {
        sink.out.data(&format!("{ROW_HEADER}\n"));
        return;
    }
    let argv: Vec<String> = std::env::args()
        .enumerate()
        .map(|(i, a)| {
            if i == 0 {
                std::path::Path::new(&a)
                    .file_name()
                    .map_or(a.clone(), |n| n.to_string_lossy().into_owned())
            } else {
                a
            }
        })
        .collect();
    sink.record(&StartRecord {
        kind: "start",
        format_version: FORMAT_VERSION,
        t_ms: 0,
        wall_clock: wall_clock_text(started_wall),
        hmn_version: env!("CARGO_PKG_VERSION"),
        argv,
        devices,
        interval_ms: millis(args.interval),
        duration_ms: args.duration.map(millis),
        selection: Selection {
            mode: mode.as_str(),
            pids: initial.to_vec(),
            top: (mode != Mode::Explicit).then_some(args.top),
            filters: args.filter.clone(),
            min_bytes: args.min,
        },
        spill_measurable,
    });
}

/// A device that already spills as watching begins is said: its spill is in the baseline.
fn say_already_spilling(probe: &Probe, sink: &Sink<'_>, spill: &[(u32, DeviceSpill)]) {
    for (d, s) in spill {
        if s.is_measurable() && hypomnesis::spill::device_is_spilling(probe, *d) == Some(true) {
            sink.notice(&format!(
                "GPU {d} is already spilling as watching begins (dedicated ≥ 85 %, system RAM \
                 ≥ 256 MiB): that spill is in the baseline, and only further growth counts"
            ));
        }
    }
}

/// The watch from one interval to the next.
struct Session<'a> {
    reader: Reader<'a>,
    sink: Sink<'a>,
    args: &'a WatchArgs,
    mode: Mode,
    /// `--device N`: a process absent from that device's list gets a measured 0 there.
    single: bool,
    /// `-a`: a telemetry record per watched device each interval.
    telemetry: bool,
    spill: Vec<(u32, DeviceSpill)>,
    health: Vec<DeviceHealth>,
    watched: Vec<Watched>,
    /// Processes no longer watched (left the followed set, or their pid was reused).
    finished: Vec<Watched>,
    samples: u64,
}

impl Session<'_> {
    /// Samples every interval, `first` first, until `--duration` ends (`false`) or a signal
    /// (`true`).
    fn run(&mut self, first: Reading) -> bool {
        let mut pending = Some(first);
        let mut next = Instant::now();
        loop {
            let elapsed = self.sink.started.elapsed();
            let spilling: BTreeMap<u32, Option<bool>> = self
                .spill
                .iter_mut()
                .map(|(d, s)| (*d, s.observe(elapsed)))
                .collect();
            let reading = pending.take().unwrap_or_else(|| self.reader.read());
            self.step(&reading, &spilling);
            next += self.args.interval;
            // A sample that overran (a slow or hung driver) is not followed by a burst of
            // catch-up samples.
            next = next.max(Instant::now());
            match pause_until(next, self.args.duration.map(|d| self.sink.started + d)) {
                Pause::Next => {}
                Pause::Duration => return false,
                Pause::Signal => return true,
            }
        }
    }

    /// One interval: device health, the followed set, every watched process's rows, and
    /// with `-a` the telemetry.
    fn step(&mut self, reading: &Reading, spilling: &BTreeMap<u32, Option<bool>>) {
        for (h, (_, read)) in self.health.iter_mut().zip(&reading.interval.devices) {
            h.observe(&self.sink, read);
        }
        let probe = self.reader.probe;
        if self.mode == Mode::FollowNew && self.samples > 0 {
            follow(
                probe,
                &self.sink,
                &reading.interval,
                self.args,
                &mut self.watched,
                &mut self.finished,
            );
        }
        let stamp = Stamp {
            elapsed: self.sink.started.elapsed(),
            wall_clock: wall_clock_text(SystemTime::now()),
        };
        for w in &mut self.watched {
            sample(
                probe,
                &self.sink,
                &stamp,
                &reading.interval,
                self.single,
                spilling,
                w,
                &mut self.finished,
            );
        }
        self.samples += 1;
        if self.telemetry {
            for &index in &self.reader.devices {
                sample_telemetry(&self.sink, reading, index);
            }
        }
    }

    /// The summary, and the exit: 1 when a watched device spilled.
    fn finish(mut self, interrupted: bool) -> Outcome {
        self.finished.append(&mut self.watched);
        let spill = SpillReport::build(
            self.spill.iter().map(|(_, s)| s.report()).collect(),
            self.args.interval,
            hypomnesis::is_spill_measurable(),
        );
        summarize(
            &self.sink,
            &self.finished,
            self.samples,
            interrupted,
            &self.health,
            &spill,
        );
        if spill.spilled == Some(true) {
            Outcome::No
        } else {
            Outcome::Success
        }
    }
}

/// The devices to watch, from the first frame: every device, or the one `--device` names;
/// `Err` (exit 2) when nothing can be watched.
fn choose_devices(
    probe: &Probe,
    frame: &Frame,
    asked: Option<u32>,
    mode: Mode,
    out: &Output,
) -> Result<Vec<DeviceRecord>, Outcome> {
    if let Some(index) = asked {
        let found = match (frame.device(index), &frame.gpu_error) {
            (Some(d), _) => Ok(DeviceRecord::from(&d.device)),
            (None, Some(e)) => Err(e.to_string()),
            // Not in the frame: the device's own error says why (out of range, lost).
            (None, None) => probe
                .device_info(index)
                .map(|info| DeviceRecord::from(&info))
                .map_err(|e| e.to_string()),
        };
        return found.map(|d| vec![d]).map_err(|e| {
            out.say(&format!("watch: cannot read device {index}: {e}"));
            Outcome::CouldNotTell
        });
    }
    let why = match &frame.gpu_error {
        Some(e) => e.to_string(),
        None if frame.devices.is_empty() => "no GPU is visible".to_owned(),
        None => return Ok(with_undescribed(probe, frame)),
    };
    if mode == Mode::Explicit {
        out.say(&format!("watch: no GPU to read ({why}); watching RAM only"));
        Ok(Vec::new())
    } else {
        out.say(&format!(
            "watch: no GPU to read ({why}); give PIDs to watch their RAM"
        ));
        Err(Outcome::CouldNotTell)
    }
}

/// The frame's devices, and those it left out because their description could not be read
/// (counted by the backends, once): such a device is still watched, since its process list may
/// answer, and when it does not, its rows say so.
fn with_undescribed(probe: &Probe, frame: &Frame) -> Vec<DeviceRecord> {
    let mut devices: Vec<DeviceRecord> = frame
        .devices
        .iter()
        .map(|d| DeviceRecord::from(&d.device))
        .collect();
    let count = probe.device_count().unwrap_or(0);
    for index in 0..count {
        if frame.device(index).is_none() {
            devices.push(DeviceRecord::unnamed(index));
        }
    }
    devices.sort_by_key(|d| d.index);
    devices
}

/// `--device N` with explicit PIDs: for a process not on GPU N, says where its GPU memory is
/// (the other devices' lists in the same frame), so that its `0 B` on GPU N is not taken for
/// "no GPU memory".
fn say_where_else(
    probe: &Probe,
    sink: &Sink<'_>,
    only: u32,
    frame: &Frame,
    first: &Interval,
    pids: &[u32],
) {
    let missing: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|&pid| first.row(pid).is_none())
        .collect();
    if missing.is_empty() {
        return;
    }
    let others: Vec<u32> = frame
        .devices
        .iter()
        .map(|d| d.device.index)
        .filter(|&d| d != only)
        .collect();
    let elsewhere = Interval::from_frame(frame, &others, |d| why_missing(probe, d));
    for pid in missing {
        let on: Vec<String> = elsewhere
            .devices
            .iter()
            .filter(|(_, l)| l.as_ref().is_ok_and(|l| l.by_pid.contains_key(&pid)))
            .map(|(d, _)| format!("GPU {d}"))
            .collect();
        if on.is_empty() {
            sink.notice(&format!(
                "pid={pid} holds no memory on GPU {only} (its rows read 0 B there) and is on no \
                 other GPU's list"
            ));
        } else {
            sink.notice(&format!(
                "pid={pid} holds no memory on GPU {only} (its rows read 0 B there) but holds some \
                 on {}: watch without --device to see it",
                on.join(", ")
            ));
        }
    }
}

/// `--follow-new`: choose the top N again; say who entered and who left.
fn follow(
    probe: &Probe,
    sink: &Sink<'_>,
    interval: &Interval,
    args: &WatchArgs,
    watched: &mut Vec<Watched>,
    finished: &mut Vec<Watched>,
) {
    let chosen = interval.select(args.top, &args.filter, args.min);
    let describe = |pid: u32, name: Option<&str>| {
        format!("pid={pid} ({})", crate::text::Shown(name.unwrap_or("?")))
    };
    let mut entered = Vec::new();
    for &pid in &chosen {
        if !watched.iter().any(|w| w.pid == pid) {
            let name = interval
                .row(pid)
                .and_then(|r| r.name.clone())
                .or_else(|| probe.process_name(pid));
            entered.push(describe(pid, name.as_deref()));
            watched.push(Watched::new(
                pid,
                name,
                hypomnesis::process_start_ticks(probe, pid),
            ));
        }
    }
    let mut left = Vec::new();
    let (stay, gone): (Vec<Watched>, Vec<Watched>) =
        watched.drain(..).partition(|w| chosen.contains(&w.pid));
    for w in gone {
        left.push(describe(w.pid, w.name.as_deref()));
        finished.push(w);
    }
    *watched = stay;
    if !entered.is_empty() || !left.is_empty() {
        let mut parts = Vec::new();
        if !entered.is_empty() {
            parts.push(format!("entered {}", entered.join(", ")));
        }
        if !left.is_empty() {
            parts.push(format!("left {}", left.join(", ")));
        }
        sink.notice(&format!(
            "{} followed set changed: {}",
            sink.at(),
            parts.join("; ")
        ));
    }
}

/// When one interval's rows were taken: every row of an interval carries the same time.
struct Stamp {
    elapsed: Duration,
    wall_clock: String,
}

/// One sample of watched process `w`: its identity, its RSS, and a row per device its GPU
/// memory was looked for on; `spilling` is each device's spill verdict at this interval
/// (`None`: not measured).
#[allow(clippy::too_many_arguments)]
fn sample(
    probe: &Probe,
    sink: &Sink<'_>,
    stamp: &Stamp,
    interval: &Interval,
    single: bool,
    spilling: &BTreeMap<u32, Option<bool>>,
    w: &mut Watched,
    finished: &mut Vec<Watched>,
) {
    check_identity(probe, sink, interval, w, finished);
    let memory = probe.process_memory(Some(w.pid), MemoryDetail::Fast).ok();
    let rss = memory.as_ref().map(|m| m.rss_bytes);
    if let Some(hwm) = memory.and_then(|m| m.peak_rss_bytes) {
        w.high_water_mark = Some(hwm);
    }
    let base_rss = *w.baseline_rss.get_or_insert(rss);
    w.peak_rss = max_opt(w.peak_rss, rss);
    w.samples += 1;

    let places = interval.rows_of(w.pid, &w.gpus, single);
    let unseen = places.iter().all(|p| p.presence == Presence::NotSeen);
    if unseen && !w.unseen_noticed {
        sink.notice(&format!(
            "pid={} is on no GPU's process list at {}: its GPU memory reads n/a (not seen, \
             not 0)",
            w.pid,
            sink.at()
        ));
    }
    w.unseen_noticed = unseen;
    for place in places {
        let spilling = place
            .device
            .and_then(|d| spilling.get(&d).copied().flatten());
        write_row(sink, stamp, w, &place, spilling, (rss, base_rss));
    }
}

/// Whether `w`'s pid still names the process watched; a new process under it (the OS reused
/// the pid) is said, and watched afresh, the old one's figures kept for the summary.
fn check_identity(
    probe: &Probe,
    sink: &Sink<'_>,
    interval: &Interval,
    w: &mut Watched,
    finished: &mut Vec<Watched>,
) {
    let start = hypomnesis::process_start_ticks(probe, w.pid);
    let name = interval
        .row(w.pid)
        .and_then(|r| r.name.clone())
        .or_else(|| probe.process_name(w.pid));
    match identity(w.start_ticks, start, w.name.as_deref(), name.as_deref()) {
        Identity::Same => {}
        Identity::NewStartTime { .. } => {
            sink.notice(&format!(
                "pid={} is a new process ({} → {}): the OS reused the PID (its start time \
                 changed); baseline reset",
                w.pid,
                w.name.as_deref().unwrap_or("?"),
                name.as_deref().unwrap_or("?")
            ));
            finished.push(w.clone());
            *w = Watched::new(w.pid, name.clone(), start);
        }
        Identity::NewName { was, now } => {
            sink.notice(&format!(
                "pid={} name changed ({was} → {now}) — likely PID reuse by the OS; baseline \
                 reset",
                w.pid
            ));
            finished.push(w.clone());
            *w = Watched::new(w.pid, name.clone(), start);
        }
    }
    if w.name.is_none() {
        w.name = name;
    }
    if w.start_ticks.is_none() {
        w.start_ticks = start;
    }
}

/// One row of `w` at `place`: its series there is updated, and the row written (a `sample`
/// record, or a text line). `rss` is the RSS now and at the baseline.
fn write_row(
    sink: &Sink<'_>,
    stamp: &Stamp,
    w: &mut Watched,
    place: &Place,
    spilling: Option<bool>,
    rss: (Option<u64>, Option<u64>),
) {
    // Every row with a device has its series there (rows without the driver's figures only
    // come for a device the process was seen on, or the one `--device` names).
    let base = match place.device {
        Some(d) => w.gpus.entry(d).or_default().observe(place),
        None => Gpu::default(),
    };
    let paged = crate::spill::paged(spilling, place.gpu.system);
    w.paged = match (w.paged, paged) {
        (Some(a), Some(b)) => Some(a || b),
        (a, b) => a.or(b),
    };
    let grew = delta(place.gpu.used, base.used);
    if w.name.is_none()
        && !w.growth_noticed
        && grew.is_some_and(|d| d >= i128::from(UNNAMED_GROWTH_NOTICE))
    {
        w.growth_noticed = true;
        sink.notice(&format!(
            "unresolved pid={} grew {} since attach — re-run as root to identify it",
            w.pid,
            signed(grew)
        ));
    }
    if sink.json {
        let d = |a: Option<u64>, b: Option<u64>| {
            delta(a, b).map(|x| i64::try_from(x).unwrap_or(i64::MAX))
        };
        sink.record(&SampleRecord {
            kind: "sample",
            t_ms: millis(stamp.elapsed),
            wall_clock: stamp.wall_clock.clone(),
            pid: w.pid,
            name: w.name.clone(),
            device: place.device,
            presence: place.presence,
            used_bytes: place.gpu.used,
            used_delta_bytes: d(place.gpu.used, base.used),
            system_bytes: place.gpu.system,
            system_delta_bytes: d(place.gpu.system, base.system),
            shared_bytes: place.shared,
            shared_with: place.shared_with.clone(),
            rss_bytes: rss.0,
            rss_delta_bytes: d(rss.0, rss.1),
            spilling,
            paged,
        });
    } else {
        let cell = crate::spill::cell(spilling, paged, hypomnesis::is_spill_measurable());
        sink.out.data(&format!(
            "{}\n",
            row_text(&sink.at(), w, place, base, rss, cell)
        ));
    }
}

enum Pause {
    Next,
    Duration,
    Signal,
}

/// Sleeps until `next` in short steps, watching for a signal and the end of `--duration`.
fn pause_until(next: Instant, end: Option<Instant>) -> Pause {
    loop {
        if signals::stop_requested() {
            return Pause::Signal;
        }
        let now = Instant::now();
        if end.is_some_and(|end| now >= end) {
            return Pause::Duration;
        }
        if now >= next {
            return Pause::Next;
        }
        let mut until = next;
        if let Some(end) = end {
            until = until.min(end);
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}

/// The per-process summary: a table on stderr, or a `summary` record.
fn summarize(
    sink: &Sink<'_>,
    finished: &[Watched],
    samples: u64,
    interrupted: bool,
    health: &[DeviceHealth],
    spill: &SpillReport,
) {
    let per_pid: Vec<PerPid> = finished.iter().flat_map(PerPid::of).collect();
    if sink.json {
        sink.record(&SummaryRecord {
            kind: "summary",
            t_ms: millis(sink.started.elapsed()),
            samples,
            interrupted,
            devices: health.iter().map(DeviceHealth::summary).collect(),
            spill_measurable: spill.measurable,
            spill,
            per_pid: &per_pid,
        });
    }
    for h in health.iter().filter(|h| h.missing > 0) {
        sink.notice(&format!(
            "GPU {}: {} of {samples} samples missing (last error: {}); its figures for them \
             read n/a, and its peaks are over the samples read",
            h.index,
            h.missing,
            h.last_error.as_deref().unwrap_or("unknown")
        ));
    }
    sink.notice(&format!(
        "{} samples{}; {}; per-PID memory below",
        samples,
        if interrupted { " (interrupted)" } else { "" },
        spill.watch_phrase()
    ));
    let mut table = Table::new(vec![
        ("PID", Align::Right),
        ("NAME", Align::Left),
        ("GPU", Align::Left),
        ("BASELINE VRAM", Align::Right),
        ("PEAK VRAM", Align::Right),
        ("BASELINE SYS", Align::Right),
        ("PEAK SYS", Align::Right),
        ("BASELINE RSS", Align::Right),
        ("PEAK RSS", Align::Right),
        ("PAGED", Align::Left),
    ])
    .flexible("NAME", 12)
    .optional("PAGED", 0);
    for p in &per_pid {
        table.push(vec![
            p.pid.to_string(),
            p.name.clone().unwrap_or_else(|| "?".to_owned()),
            p.device.map_or_else(|| "-".to_owned(), |d| d.to_string()),
            opt_size(p.baseline_used_bytes),
            opt_size(p.peak_used_bytes),
            opt_size(p.baseline_system_bytes),
            opt_size(p.peak_system_bytes),
            opt_size(p.baseline_rss_bytes),
            opt_size(p.peak_rss_bytes),
            paged_cell(p.paged, hypomnesis::is_spill_measurable()).to_owned(),
        ]);
    }
    let mut stderr = std::io::stderr().lock();
    let width = (!sink.wide)
        .then(|| crate::output::terminal_columns(crate::output::Stream::Stderr))
        .flatten();
    let _ = stderr.write_all(table.render_within(width).as_bytes());
}

//! `hmn watch [PID…]`: processes' GPU memory and RAM over time.
//!
//! Every interval, one process listing of the device gives each watched process's GPU memory
//! (`VRAM`: device memory; `SHARED`: GPU buffers in system RAM, where the backend reports it),
//! and the process's own RSS is read. Rows go to stdout (a table, or NDJSON `sample` records
//! with `--json`); notices go to stderr. At the end (`--duration`, or Ctrl-C / SIGTERM) a
//! per-PID summary gives each process's baseline (its first sample) and peak.
//!
//! Which processes: the PIDs given, or the `--top N` largest GPU processes of the device
//! (narrowed by `--filter` and `--min`), chosen once, or again every interval with
//! `--follow-new`.
//!
//! PID reuse: a pid is bound to the process that had it when watching began, identified by
//! its start time (Linux `/proc/<pid>/stat`). When the start time changes, the OS gave the pid
//! to a new process: the baseline and peak are reset and the old process's summary is kept.
//! Where the start time cannot be read (a GPU process outside this PID namespace, other
//! platforms), a change of name is taken as the sign instead.
//!
//! Spill (Windows, see `crate::spill`): the watched device's spill tracker is read once per
//! interval, before the processes. Its first reading is the baseline; each row's SPILL cell
//! says whether the device spilled at that reading (`PAGED` when the process itself holds
//! ≥ 256 MiB of shared memory), and the summary gives the episodes. A device that already
//! spills when watching begins is reported then: its spill is in the baseline, and only
//! further growth counts. Elsewhere spill is not measurable and the cells read `n/a`.
//!
//! Exit: 0 after a normal end or Ctrl-C with no spill seen (also where spill cannot be
//! measured); 1 when the watched device spilled (Windows); 2 when there is nothing to watch or
//! the arguments do not fit together (checked before any hardware call).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use hypomnesis::{DeviceTelemetry, GpuProcessEntry, MemoryDetail, Probe};
use serde::Serialize;

use crate::Outcome;
use crate::cli::{GlobalArgs, WatchArgs};
use crate::output::Output;
use crate::record::wall_clock_text;
use crate::run::signals;
use crate::size::format_size;
use crate::spill::{DeviceSpill, SpillReport};
use crate::table::{Align, Table};

/// A named process that grows this much without a name is worth a notice.
const UNNAMED_GROWTH_NOTICE: u64 = 256 << 20;

/// GPU and RAM figures of one process at one sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Figures {
    used: Option<u64>,
    system: Option<u64>,
    rss: Option<u64>,
}

fn max_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

impl Figures {
    fn max(self, other: Self) -> Self {
        Self {
            used: max_opt(self.used, other.used),
            system: max_opt(self.system, other.system),
            rss: max_opt(self.rss, other.rss),
        }
    }
}

/// One process watched: its identity, baseline and peak.
#[derive(Debug, Clone)]
struct Watched {
    pid: u32,
    name: Option<String>,
    start_ticks: Option<u64>,
    baseline: Option<Figures>,
    peak: Figures,
    samples: u64,
    high_water_mark: Option<u64>,
    growth_noticed: bool,
    /// Whether it was paged out at any sample; `None` while that could not be told.
    paged: Option<bool>,
}

impl Watched {
    fn new(pid: u32, name: Option<String>, start_ticks: Option<u64>) -> Self {
        Self {
            pid,
            name,
            start_ticks,
            baseline: None,
            peak: Figures::default(),
            samples: 0,
            high_water_mark: None,
            growth_noticed: false,
            paged: None,
        }
    }
}

/// Whether a pid still names the same process.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Identity {
    Same,
    /// The start time changed: a new process under the same pid.
    NewStartTime {
        was: u64,
        now: u64,
    },
    /// No start time to compare, and the name changed.
    NewName {
        was: String,
        now: String,
    },
}

fn identity(
    known_start: Option<u64>,
    start: Option<u64>,
    known_name: Option<&str>,
    name: Option<&str>,
) -> Identity {
    match (known_start, start) {
        (Some(was), Some(now)) if was != now => Identity::NewStartTime { was, now },
        (Some(_), Some(_)) => Identity::Same,
        _ => match (known_name, name) {
            (Some(was), Some(now)) if was != now => Identity::NewName {
                was: was.to_owned(),
                now: now.to_owned(),
            },
            _ => Identity::Same,
        },
    }
}

/// One summary row (`docs/json.md`, `hmn watch --json` `summary`).
#[derive(Debug, Clone, Serialize)]
struct PerPid {
    pid: u32,
    name: Option<String>,
    samples: u64,
    baseline_used_bytes: Option<u64>,
    peak_used_bytes: Option<u64>,
    baseline_system_bytes: Option<u64>,
    peak_system_bytes: Option<u64>,
    baseline_rss_bytes: Option<u64>,
    peak_rss_bytes: Option<u64>,
    rss_high_water_mark_bytes: Option<u64>,
    paged: Option<bool>,
}

impl From<&Watched> for PerPid {
    fn from(w: &Watched) -> Self {
        let base = w.baseline.unwrap_or_default();
        Self {
            pid: w.pid,
            name: w.name.clone(),
            samples: w.samples,
            baseline_used_bytes: base.used,
            peak_used_bytes: w.peak.used,
            baseline_system_bytes: base.system,
            peak_system_bytes: w.peak.system,
            baseline_rss_bytes: base.rss,
            peak_rss_bytes: w.peak.rss,
            rss_high_water_mark_bytes: w.high_water_mark,
            paged: w.paged,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `{"kind":"start"}` (`docs/json.md`).
#[derive(Debug, Serialize)]
struct StartRecord {
    kind: &'static str,
    t_ms: u64,
    wall_clock: String,
    hmn_version: &'static str,
    argv: Vec<String>,
    device: Option<u32>,
    device_name: Option<String>,
    interval_ms: u64,
    duration_ms: Option<u64>,
    selection: Selection,
    spill_measurable: bool,
}

#[derive(Debug, Serialize)]
struct Selection {
    mode: &'static str,
    pids: Vec<u32>,
    top: Option<u32>,
    filters: Vec<String>,
    min_bytes: Option<u64>,
}

/// `{"kind":"sample"}`: one process at one sample.
#[derive(Debug, Serialize)]
struct SampleRecord {
    kind: &'static str,
    t_ms: u64,
    wall_clock: String,
    pid: u32,
    name: Option<String>,
    used_bytes: Option<u64>,
    used_delta_bytes: Option<i64>,
    system_bytes: Option<u64>,
    system_delta_bytes: Option<i64>,
    rss_bytes: Option<u64>,
    rss_delta_bytes: Option<i64>,
    spilling: Option<bool>,
    paged: Option<bool>,
}

/// `{"kind":"telemetry"}` (`-a`): the watched device's utilization, temperature, power and
/// clocks at one sample.
#[derive(Serialize)]
struct TelemetryRecord<'a> {
    kind: &'static str,
    t_ms: u64,
    wall_clock: String,
    #[serde(flatten)]
    telemetry: &'a DeviceTelemetry,
}

/// `-a`: one telemetry record (JSON) or line (text) for `device`. A device that stops
/// answering is reported on stderr and the watch goes on.
fn sample_telemetry(probe: &Probe, sink: &Sink<'_>, device: u32) {
    match probe.telemetry(device) {
        Ok(telemetry) => {
            if sink.json {
                sink.record(&TelemetryRecord {
                    kind: "telemetry",
                    t_ms: millis(sink.started.elapsed()),
                    wall_clock: wall_clock_text(SystemTime::now()),
                    telemetry: &telemetry,
                });
            } else {
                sink.out.data(&format!(
                    "{}  GPU {device}: {}\n",
                    sink.at(),
                    crate::summary::telemetry_line(&telemetry)
                ));
            }
        }
        Err(e) => sink.notice(&format!(
            "telemetry of GPU {device} failed at {} ({e})",
            sink.at()
        )),
    }
}

/// `{"kind":"summary"}`.
#[derive(Debug, Serialize)]
struct SummaryRecord<'a> {
    kind: &'static str,
    t_ms: u64,
    samples: u64,
    interrupted: bool,
    spill_measurable: bool,
    spill: &'a SpillReport,
    per_pid: &'a [PerPid],
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

/// The device's rows, by pid (a pid with several rows is summed).
#[derive(Debug, Default)]
struct Listing {
    by_pid: BTreeMap<u32, Row>,
    any_system: bool,
    /// Whether this is a device's list (without a GPU, GPU figures are unknown, not 0).
    from_device: bool,
}

#[derive(Debug, Clone, Default)]
struct Row {
    name: Option<String>,
    command: Option<String>,
    used: Option<u64>,
    system: Option<u64>,
}

impl Listing {
    fn new(rows: Vec<GpuProcessEntry>) -> Self {
        let mut listing = Self {
            from_device: true,
            ..Self::default()
        };
        for r in rows {
            listing.any_system |= r.system_bytes.is_some();
            let row = listing.by_pid.entry(r.pid).or_default();
            row.name = row.name.take().or(r.name);
            row.command = row.command.take().or(r.command);
            row.used = match (row.used, r.used_bytes) {
                (None, u) => u,
                (Some(a), Some(b)) => Some(a.saturating_add(b)),
                (Some(a), None) => Some(a),
            };
            row.system = match (row.system, r.system_bytes) {
                (None, s) => s,
                (Some(a), Some(b)) => Some(a.saturating_add(b)),
                (Some(a), None) => Some(a),
            };
        }
        listing
    }

    /// The `top` largest processes matching the filters, by GPU memory.
    fn select(&self, top: u32, filters: &[String], min: Option<u64>) -> Vec<u32> {
        let patterns: Vec<String> = filters.iter().map(|f| f.to_lowercase()).collect();
        let mut chosen: Vec<(u64, u32)> = self
            .by_pid
            .iter()
            .filter(|(_, r)| {
                patterns.is_empty()
                    || patterns.iter().any(|p| {
                        [r.name.as_deref(), r.command.as_deref()]
                            .into_iter()
                            .flatten()
                            .any(|t| t.to_lowercase().contains(p))
                    })
            })
            .map(|(&pid, r)| {
                (
                    r.used.unwrap_or(0).saturating_add(r.system.unwrap_or(0)),
                    pid,
                )
            })
            .filter(|(footprint, _)| min.is_none_or(|m| *footprint >= m))
            .collect();
        chosen.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        chosen
            .into_iter()
            .take(usize::try_from(top).unwrap_or(usize::MAX))
            .map(|(_, pid)| pid)
            .collect()
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

fn signed(delta: Option<i128>) -> String {
    match delta {
        None => "n/a".to_owned(),
        Some(d) => {
            let size = format_size(u64::try_from(d.unsigned_abs()).unwrap_or(u64::MAX));
            if d < 0 {
                format!("-{size}")
            } else {
                format!("+{size}")
            }
        }
    }
}

fn delta(now: Option<u64>, base: Option<u64>) -> Option<i128> {
    Some(i128::from(now?) - i128::from(base?))
}

fn opt_size(v: Option<u64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), format_size)
}

const ROW_HEADER: &str = "TIME      PID      NAME              VRAM       ΔVRAM      SHARED     ΔSHARED    RSS        ΔRSS       SPILL";

fn row_text(at: &str, w: &Watched, now: Figures, spill: &str) -> String {
    let base = w.baseline.unwrap_or_default();
    let cell = |text: String| format!("{text:<10} ");
    format!(
        "{at:<9} {:<8} {:<17} {}{}{}{}{}{}{spill}",
        w.pid,
        crate::text::escape(w.name.as_deref().unwrap_or("?")),
        cell(opt_size(now.used)),
        cell(signed(delta(now.used, base.used))),
        cell(opt_size(now.system)),
        cell(signed(delta(now.system, base.system))),
        cell(opt_size(now.rss)),
        cell(signed(delta(now.rss, base.rss))),
    )
}

pub fn run(global: &GlobalArgs, args: &WatchArgs, out: &Output) -> Outcome {
    let probe = crate::guarded_probe(global.timeout);
    let outcome = watch(&probe, global, args, out);
    crate::leave_if_driver_hung(&probe, i32::from(u8::from(outcome)));
    outcome
}

fn watch(probe: &Probe, global: &GlobalArgs, args: &WatchArgs, out: &Output) -> Outcome {
    if !args.pids.is_empty() && (args.follow_new || !args.filter.is_empty() || args.min.is_some()) {
        out.say(
            "watch: --follow-new, --filter and --min choose the processes to watch; they cannot \
             be combined with explicit PIDs",
        );
        return Outcome::CouldNotTell;
    }
    let mode = if !args.pids.is_empty() {
        Mode::Explicit
    } else if args.follow_new {
        Mode::FollowNew
    } else {
        Mode::Top
    };
    if let Err(e) = signals::install() {
        out.say(&format!(
            "watch: cannot catch Ctrl-C ({e}); it will end hmn without a summary"
        ));
    }

    let (device, device_name) = match choose_device(probe, global.device, mode, out) {
        Ok(found) => found,
        Err(outcome) => return outcome,
    };
    let sink = Sink {
        out,
        json: global.json,
        wide: global.wide,
        started: Instant::now(),
    };
    let started_wall = SystemTime::now();
    let mut spill = device.map(|d| DeviceSpill::new(probe, d));

    let listing = match device.map(|d| probe.processes(d)) {
        Some(Ok(rows)) => Listing::new(rows),
        Some(Err(e)) => {
            out.say(&format!(
                "watch: cannot list the processes of device {}: {e}",
                device.unwrap_or(0)
            ));
            return Outcome::CouldNotTell;
        }
        None => Listing::default(),
    };
    let initial: Vec<u32> = match mode {
        Mode::Explicit => {
            let mut pids = args.pids.clone();
            pids.dedup();
            pids
        }
        Mode::Top | Mode::FollowNew => listing.select(args.top, &args.filter, args.min),
    };
    if initial.is_empty() && mode == Mode::Top {
        out.say("watch: no GPU process matches, so there is nothing to watch");
        return Outcome::CouldNotTell;
    }
    let mut watched: Vec<Watched> = Vec::new();
    for &pid in &initial {
        let row = listing.by_pid.get(&pid);
        let name = row
            .and_then(|r| r.name.clone())
            .or_else(|| local_name(probe, pid));
        if mode == Mode::Explicit && row.is_none() && probe.process_exists(pid) == Some(false) {
            sink.notice(&format!(
                "pid={pid} names no running process; its rows will read 0 B of GPU memory"
            ));
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

    let selection = match mode {
        Mode::Explicit => format!("watching {} PID(s)", watched.len()),
        Mode::Top | Mode::FollowNew => {
            let mut what = format!("top {} by VRAM", args.top);
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
                format!(
                    "following {what} (re-selected every interval), {} initially",
                    watched.len()
                )
            } else {
                format!("watching {} PID(s) ({what})", watched.len())
            }
        }
    };
    let device_text = match (device, &device_name) {
        (Some(d), Some(name)) => format!("device {d} [{}]", crate::text::Shown(name)),
        (Some(d), None) => format!("device {d}"),
        (None, _) => "no GPU (RAM only)".to_owned(),
    };
    out.say(&format!(
        "watch: {device_text}, interval {:.1}s, {selection}",
        args.interval.as_secs_f64()
    ));

    if sink.json {
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
            t_ms: 0,
            wall_clock: wall_clock_text(started_wall),
            hmn_version: env!("CARGO_PKG_VERSION"),
            argv,
            device,
            device_name: device_name.clone(),
            interval_ms: millis(args.interval),
            duration_ms: args.duration.map(millis),
            selection: Selection {
                mode: mode.as_str(),
                pids: initial.clone(),
                top: (mode != Mode::Explicit).then_some(args.top),
                filters: args.filter.clone(),
                min_bytes: args.min,
            },
            spill_measurable: spill.as_ref().is_some_and(DeviceSpill::is_measurable),
        });
    } else {
        out.data(&format!("{ROW_HEADER}\n"));
    }
    if let (Some(d), Some(spill)) = (device, &spill)
        && spill.is_measurable()
        && hypomnesis::spill::device_is_spilling(probe, d) == Some(true)
    {
        sink.notice(&format!(
            "device {d} is already spilling as watching begins (dedicated ≥ 85 %, shared \
             ≥ 256 MiB): that spill is in the baseline, and only further growth counts"
        ));
    }

    let mut finished: Vec<Watched> = Vec::new();
    let mut samples: u64 = 0;
    let mut listing = Some(listing);
    let mut next = Instant::now();
    let interrupted = loop {
        let spilling = spill
            .as_mut()
            .and_then(|s| s.observe(sink.started.elapsed()));
        let this = listing
            .take()
            .or_else(|| match device.map(|d| probe.processes(d)) {
                Some(Ok(rows)) => Some(Listing::new(rows)),
                Some(Err(e)) => {
                    sink.notice(&format!(
                        "sample failed at {} ({e}); skipping interval",
                        sink.at()
                    ));
                    None
                }
                None => Some(Listing::default()),
            });
        if let Some(this) = this {
            if mode == Mode::FollowNew && samples > 0 {
                follow(probe, &sink, &this, args, &mut watched, &mut finished);
            }
            sample(probe, &sink, &this, spilling, &mut watched, &mut finished);
            samples += 1;
        }
        if global.all
            && let Some(index) = device
        {
            sample_telemetry(probe, &sink, index);
        }
        next += args.interval;
        // A sample that overran (a slow or hung driver) is not followed by a burst of
        // catch-up samples.
        next = next.max(Instant::now());
        match pause_until(next, args.duration.map(|d| sink.started + d)) {
            Pause::Next => {}
            Pause::Duration => break false,
            Pause::Signal => break true,
        }
    };

    finished.extend(watched);
    let spill = SpillReport::build(
        spill.iter().map(DeviceSpill::report).collect(),
        args.interval,
        hypomnesis::is_spill_measurable(),
    );
    summarize(&sink, &finished, samples, interrupted, &spill);
    if spill.spilled == Some(true) {
        Outcome::No
    } else {
        Outcome::Success
    }
}

/// The device to watch, and its name; `Err` (exit 2) when nothing can be watched.
fn choose_device(
    probe: &Probe,
    asked: Option<u32>,
    mode: Mode,
    out: &Output,
) -> Result<(Option<u32>, Option<String>), Outcome> {
    match asked {
        Some(index) => match probe.device_info(index) {
            Ok(info) => Ok((Some(index), info.name)),
            Err(e) => {
                out.say(&format!("watch: cannot read device {index}: {e}"));
                Err(Outcome::CouldNotTell)
            }
        },
        None => match probe.device_count() {
            Ok(count) if count > 0 => Ok((Some(0), probe.device_info(0).ok().and_then(|d| d.name))),
            other => {
                let why = match other {
                    Err(e) => e.to_string(),
                    Ok(_) => "no GPU is visible".to_owned(),
                };
                if mode == Mode::Explicit {
                    out.say(&format!("watch: no GPU to read ({why}); watching RAM only"));
                    Ok((None, None))
                } else {
                    out.say(&format!(
                        "watch: no GPU to read ({why}); give PIDs to watch their RAM"
                    ));
                    Err(Outcome::CouldNotTell)
                }
            }
        },
    }
}

/// `--follow-new`: choose the top N again; say who entered and who left.
fn follow(
    probe: &Probe,
    sink: &Sink<'_>,
    listing: &Listing,
    args: &WatchArgs,
    watched: &mut Vec<Watched>,
    finished: &mut Vec<Watched>,
) {
    let chosen = listing.select(args.top, &args.filter, args.min);
    let describe = |pid: u32, name: Option<&str>| {
        format!("pid={pid} ({})", crate::text::Shown(name.unwrap_or("?")))
    };
    let mut entered = Vec::new();
    for &pid in &chosen {
        if !watched.iter().any(|w| w.pid == pid) {
            let name = listing.by_pid.get(&pid).and_then(|r| r.name.clone());
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

/// One sample of every watched process; `spilling` is the device's spill verdict at this
/// interval (`None`: not measured).
fn sample(
    probe: &Probe,
    sink: &Sink<'_>,
    listing: &Listing,
    spilling: Option<bool>,
    watched: &mut [Watched],
    finished: &mut Vec<Watched>,
) {
    let elapsed = sink.started.elapsed();
    let wall = wall_clock_text(SystemTime::now());
    for w in watched.iter_mut() {
        let row = listing.by_pid.get(&w.pid);
        let start = hypomnesis::process_start_ticks(probe, w.pid);
        let name = row
            .and_then(|r| r.name.clone())
            .or_else(|| local_name(probe, w.pid));
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
        let memory = probe.process_memory(Some(w.pid), MemoryDetail::Fast).ok();
        let now = Figures {
            used: match row {
                Some(r) => r.used,
                None => listing.from_device.then_some(0),
            },
            system: match row {
                Some(r) => r.system,
                None => (listing.from_device && listing.any_system).then_some(0),
            },
            rss: memory.as_ref().map(|m| m.rss_bytes),
        };
        if let Some(hwm) = memory.and_then(|m| m.peak_rss_bytes) {
            w.high_water_mark = Some(hwm);
        }
        let base = *w.baseline.get_or_insert(now);
        w.peak = if w.samples == 0 { now } else { w.peak.max(now) };
        let paged = crate::spill::paged(spilling, now.system);
        w.paged = match (w.paged, paged) {
            (Some(a), Some(b)) => Some(a || b),
            (a, b) => a.or(b),
        };
        w.samples += 1;
        if w.name.is_none()
            && !w.growth_noticed
            && delta(now.used, base.used).is_some_and(|d| d >= i128::from(UNNAMED_GROWTH_NOTICE))
        {
            w.growth_noticed = true;
            sink.notice(&format!(
                "unresolved pid={} grew {} since attach — re-run as root to identify it",
                w.pid,
                signed(delta(now.used, base.used))
            ));
        }
        if sink.json {
            let d = |a: Option<u64>, b: Option<u64>| {
                delta(a, b).map(|x| i64::try_from(x).unwrap_or(i64::MAX))
            };
            sink.record(&SampleRecord {
                kind: "sample",
                t_ms: millis(elapsed),
                wall_clock: wall.clone(),
                pid: w.pid,
                name: w.name.clone(),
                used_bytes: now.used,
                used_delta_bytes: d(now.used, base.used),
                system_bytes: now.system,
                system_delta_bytes: d(now.system, base.system),
                rss_bytes: now.rss,
                rss_delta_bytes: d(now.rss, base.rss),
                spilling,
                paged,
            });
        } else {
            let cell = crate::spill::cell(spilling, paged, hypomnesis::is_spill_measurable());
            sink.out
                .data(&format!("{}\n", row_text(&sink.at(), w, now, cell)));
        }
    }
}

/// The name of a process that is not a GPU row (Linux `/proc/<pid>/comm`).
fn local_name(probe: &Probe, pid: u32) -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        let comm =
            std::fs::read_to_string(probe.proc_root().join(pid.to_string()).join("comm")).ok()?;
        let comm = comm.trim_end_matches('\n');
        (!comm.is_empty()).then(|| comm.to_owned())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (probe, pid);
        None
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

/// The per-PID summary: a table on stderr, or a `summary` record.
fn summarize(
    sink: &Sink<'_>,
    finished: &[Watched],
    samples: u64,
    interrupted: bool,
    spill: &SpillReport,
) {
    let per_pid: Vec<PerPid> = finished.iter().map(PerPid::from).collect();
    if sink.json {
        sink.record(&SummaryRecord {
            kind: "summary",
            t_ms: millis(sink.started.elapsed()),
            samples,
            interrupted,
            spill_measurable: spill.measurable,
            spill,
            per_pid: &per_pid,
        });
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
        ("BASELINE VRAM", Align::Right),
        ("PEAK VRAM", Align::Right),
        ("BASELINE SHARED", Align::Right),
        ("PEAK SHARED", Align::Right),
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

/// The summary's PAGED cell: `yes`, `no`, `?` (could not tell), `n/a` (cannot be measured
/// here).
fn paged_cell(paged: Option<bool>, platform: bool) -> &'static str {
    match (platform, paged) {
        (false, _) => "n/a",
        (true, Some(true)) => "yes",
        (true, Some(false)) => "no",
        (true, None) => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypomnesis::GpuQuerySource;

    fn entry(pid: u32, name: &str, used: u64) -> GpuProcessEntry {
        GpuProcessEntry::builder(pid)
            .name(name)
            .used_bytes(used)
            .source(GpuQuerySource::Nvml)
            .build()
    }

    #[test]
    fn a_changed_start_time_is_a_new_process_even_with_the_same_name() {
        assert_eq!(
            identity(Some(100), Some(250), Some("python3"), Some("python3")),
            Identity::NewStartTime { was: 100, now: 250 }
        );
        assert_eq!(
            identity(Some(100), Some(100), Some("python3"), Some("bash")),
            Identity::Same,
            "same start time: the process renamed itself"
        );
    }

    #[test]
    fn without_start_times_a_changed_name_means_reuse() {
        assert_eq!(
            identity(None, None, Some("a"), Some("b")),
            Identity::NewName {
                was: "a".into(),
                now: "b".into()
            }
        );
        assert_eq!(identity(None, None, None, Some("b")), Identity::Same);
        assert_eq!(
            identity(None, Some(5), Some("a"), Some("a")),
            Identity::Same
        );
    }

    #[test]
    fn the_top_processes_are_the_largest_matching_ones() {
        let listing = Listing::new(vec![
            entry(1, "python3", 5 << 30),
            entry(2, "llama-server", 9 << 30),
            entry(3, "python3", 1 << 30),
            entry(1, "python3", 1 << 30),
        ]);
        assert_eq!(
            listing.by_pid[&1].used,
            Some(6 << 30),
            "rows of one pid are summed"
        );
        assert_eq!(listing.select(2, &[], None), [2, 1]);
        assert_eq!(listing.select(5, &["PYTHON".into()], None), [1, 3]);
        assert_eq!(listing.select(5, &[], Some(2 << 30)), [2, 1]);
    }

    #[test]
    fn the_summary_paged_cell_says_yes_no_unknown_or_not_applicable() {
        assert_eq!(paged_cell(Some(true), true), "yes");
        assert_eq!(paged_cell(Some(false), true), "no");
        assert_eq!(paged_cell(None, true), "?");
        assert_eq!(paged_cell(Some(true), false), "n/a");
        assert_eq!(paged_cell(None, false), "n/a");
    }

    #[test]
    fn deltas_are_signed_sizes() {
        assert_eq!(signed(Some(0)), "+0 B");
        assert_eq!(signed(Some(-(4 << 20))), "-4 MiB");
        assert_eq!(signed(Some(3 << 30)), "+3.0 GiB");
        assert_eq!(signed(None), "n/a");
    }
}

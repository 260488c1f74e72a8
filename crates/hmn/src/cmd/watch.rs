//! `hmn watch [PID…]`: processes' GPU memory and RAM over time.
//!
//! nvitop and gpustat show every GPU, and a process is often on another GPU than the first:
//! `watch` therefore reads every device's process list each interval (`--device N` narrows it
//! to one). A watched process gets one row per device whose list holds it (`VRAM`: device
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

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use hypomnesis::{DeviceTelemetry, GpuProcessListing, MemoryDetail, Probe};
use serde::Serialize;

use crate::Outcome;
use crate::cli::{GlobalArgs, WatchArgs};
use crate::json::DeviceRecord;
use crate::output::Output;
use crate::signals;
use crate::size::format_size;
use crate::spill::{DeviceSpill, SpillReport};
use crate::table::{Align, Table};
use crate::time::{millis, wall_clock_text};

/// The shape of the NDJSON records, in the `start` record. 1: one device (`device`,
/// `device_name` in `start`, samples without a device); 2: every device, each sample naming its
/// device and how its figures were found (`docs/json.md`).
const FORMAT_VERSION: u32 = 2;

/// A named process that grows this much without a name is worth a notice.
const UNNAMED_GROWTH_NOTICE: u64 = 256 << 20;

/// GPU figures of one process on one device at one sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Gpu {
    used: Option<u64>,
    system: Option<u64>,
}

fn max_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn sum_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.saturating_add(b)),
        (a, b) => a.or(b),
    }
}

impl Gpu {
    fn max(self, other: Self) -> Self {
        Self {
            used: max_opt(self.used, other.used),
            system: max_opt(self.system, other.system),
        }
    }
}

/// One process's series on one device: its baseline (the first sample whose figures were
/// measured there) and peak.
#[derive(Debug, Clone, Copy, Default)]
struct GpuTrack {
    baseline: Option<Gpu>,
    peak: Gpu,
    samples: u64,
}

impl GpuTrack {
    /// Counts one sample of the device; returns the baseline to take deltas from.
    fn observe(&mut self, place: &Place) -> Gpu {
        let measured = matches!(place.presence, Presence::Listed | Presence::Absent);
        if measured && self.baseline.is_none() {
            self.baseline = Some(place.gpu);
        }
        self.peak = self.peak.max(place.gpu);
        self.samples += 1;
        self.baseline.unwrap_or_default()
    }
}

/// One process watched: its identity, baselines and peaks.
#[derive(Debug, Clone)]
struct Watched {
    pid: u32,
    name: Option<String>,
    start_ticks: Option<u64>,
    samples: u64,
    /// RSS at the first sample (`Some(None)`: taken, unknown), and its peak.
    baseline_rss: Option<Option<u64>>,
    peak_rss: Option<u64>,
    high_water_mark: Option<u64>,
    /// One series per device the process was seen on.
    gpus: BTreeMap<u32, GpuTrack>,
    growth_noticed: bool,
    /// Whether "seen on no GPU" was said (said once, until it is seen again).
    unseen_noticed: bool,
    /// Whether it was paged out at any sample; `None` while that could not be told.
    paged: Option<bool>,
}

impl Watched {
    fn new(pid: u32, name: Option<String>, start_ticks: Option<u64>) -> Self {
        Self {
            pid,
            name,
            start_ticks,
            samples: 0,
            baseline_rss: None,
            peak_rss: None,
            high_water_mark: None,
            gpus: BTreeMap::new(),
            growth_noticed: false,
            unseen_noticed: false,
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

/// One summary row (`docs/json.md`, `hmn watch --json` `summary`): a process on one device,
/// or a process seen on no device (`device: None`, GPU figures unknown).
#[derive(Debug, Clone, Serialize)]
struct PerPid {
    pid: u32,
    name: Option<String>,
    device: Option<u32>,
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

impl PerPid {
    fn of(w: &Watched) -> Vec<Self> {
        let base = |device: Option<u32>, samples: u64, gpu: Option<&GpuTrack>| Self {
            pid: w.pid,
            name: w.name.clone(),
            device,
            samples,
            baseline_used_bytes: gpu.and_then(|g| g.baseline?.used),
            peak_used_bytes: gpu.and_then(|g| g.peak.used),
            baseline_system_bytes: gpu.and_then(|g| g.baseline?.system),
            peak_system_bytes: gpu.and_then(|g| g.peak.system),
            baseline_rss_bytes: w.baseline_rss.flatten(),
            peak_rss_bytes: w.peak_rss,
            rss_high_water_mark_bytes: w.high_water_mark,
            paged: w.paged,
        };
        if w.gpus.is_empty() {
            return vec![base(None, w.samples, None)];
        }
        w.gpus
            .iter()
            .map(|(&d, g)| base(Some(d), g.samples, Some(g)))
            .collect()
    }
}

/// `{"kind":"start"}` (`docs/json.md`).
#[derive(Debug, Serialize)]
struct StartRecord<'a> {
    kind: &'static str,
    format_version: u32,
    t_ms: u64,
    wall_clock: String,
    hmn_version: &'static str,
    argv: Vec<String>,
    devices: &'a [DeviceRecord],
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

/// How a row's GPU figures were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Presence {
    /// In the device's process list: the driver's figures.
    Listed,
    /// Not in the device's list, which was read: the process holds nothing there (0).
    Absent,
    /// In no watched device's list: unknown, not 0.
    NotSeen,
    /// Its GPU use could not be read (Linux DRM: its fds, without root).
    Unreadable,
    /// The device's list could not be read at this interval (a lost or hung GPU).
    Missing,
    /// No GPU to read (RAM only).
    NoGpu,
}

impl Presence {
    /// The table's NOTE cell.
    fn note(self) -> &'static str {
        match self {
            Self::Listed => "",
            Self::Absent => "none on this GPU",
            Self::NotSeen => "on no GPU's list",
            Self::Unreadable => "GPU use unreadable",
            Self::Missing => "GPU not read",
            Self::NoGpu => "no GPU",
        }
    }
}

/// `{"kind":"sample"}`: one process on one device (or on none) at one sample.
#[derive(Debug, Serialize)]
struct SampleRecord {
    kind: &'static str,
    t_ms: u64,
    wall_clock: String,
    pid: u32,
    name: Option<String>,
    device: Option<u32>,
    presence: Presence,
    used_bytes: Option<u64>,
    used_delta_bytes: Option<i64>,
    system_bytes: Option<u64>,
    system_delta_bytes: Option<i64>,
    shared_bytes: Option<u64>,
    shared_with: Vec<u32>,
    rss_bytes: Option<u64>,
    rss_delta_bytes: Option<i64>,
    spilling: Option<bool>,
    paged: Option<bool>,
}

/// `{"kind":"telemetry"}` (`-a`): a watched device's utilization, temperature, power and
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
                    crate::cmd::summary::telemetry_line(&telemetry)
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
    devices: Vec<DeviceSummary>,
    spill_measurable: bool,
    spill: &'a SpillReport,
    per_pid: &'a [PerPid],
}

/// How often a watched device's process list was read, and how often it could not be.
#[derive(Debug, Clone, Serialize)]
struct DeviceSummary {
    index: u32,
    samples_read: u64,
    samples_missing: u64,
    last_error: Option<String>,
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

/// One device's rows, by pid (a pid with several rows is summed).
#[derive(Debug, Default)]
struct Listing {
    by_pid: BTreeMap<u32, Row>,
    /// Processes whose GPU use could not be read (Linux DRM).
    unreadable: BTreeSet<u32>,
    /// Whether the backend reports GPU buffers in system RAM (then an absent process holds
    /// 0 there too; NVML has no such figure).
    any_system: bool,
    /// Whether the backend reports device memory (VRAM) for its processes: not on a GPU
    /// without VRAM (panfrost, an Intel iGPU), whose rows give only system memory. An absent
    /// process then reads VRAM `n/a` like the listed ones, not a 0 no row shows.
    any_used: bool,
}

#[derive(Debug, Clone, Default)]
struct Row {
    name: Option<String>,
    command: Option<String>,
    used: Option<u64>,
    system: Option<u64>,
    shared: Option<u64>,
    /// Other processes holding some of its DRM clients (inherited across `fork`, passed): the
    /// clients' memory is in this row's figures and in theirs.
    shared_with: BTreeSet<u32>,
}

impl Listing {
    fn new(listing: GpuProcessListing) -> Self {
        let mut out = Self {
            unreadable: listing.unreadable_pids.into_iter().collect(),
            ..Self::default()
        };
        // With no rows at all, nothing says the device lacks VRAM: absent reads 0 there.
        out.any_used = listing.rows.is_empty();
        for r in listing.rows {
            out.any_system |= r.system_bytes.is_some();
            out.any_used |= r.used_bytes.is_some() || r.system_bytes.is_none();
            let row = out.by_pid.entry(r.pid).or_default();
            row.shared_with.extend(r.shared_with());
            row.name = row.name.take().or(r.name);
            row.command = row.command.take().or(r.command);
            row.used = sum_opt(row.used, r.used_bytes);
            row.system = sum_opt(row.system, r.system_bytes);
            row.shared = sum_opt(row.shared, r.shared_bytes);
        }
        out
    }
}

/// One interval's process lists: one per watched device, in device order; `Err` holds why the
/// device's list could not be read.
#[derive(Debug, Default)]
struct Interval {
    devices: Vec<(u32, Result<Listing, String>)>,
}

impl Interval {
    fn read(probe: &Probe, devices: &[u32]) -> Self {
        Self {
            devices: devices
                .iter()
                .map(|&d| {
                    let listing = probe
                        .gpu_process_listing(d)
                        .map(Listing::new)
                        .map_err(|e| e.to_string());
                    (d, listing)
                })
                .collect(),
        }
    }

    fn listings(&self) -> impl Iterator<Item = &Listing> {
        self.devices.iter().filter_map(|(_, l)| l.as_ref().ok())
    }

    /// The process's first row on any device (for its name and command line).
    fn row(&self, pid: u32) -> Option<&Row> {
        self.listings().find_map(|l| l.by_pid.get(&pid))
    }

    /// The `top` largest processes matching the filters, by GPU memory summed over the
    /// devices.
    fn select(&self, top: u32, filters: &[String], min: Option<u64>) -> Vec<u32> {
        let patterns: Vec<String> = filters.iter().map(|f| f.to_lowercase()).collect();
        let mut footprint: BTreeMap<u32, u64> = BTreeMap::new();
        for listing in self.listings() {
            for (&pid, r) in &listing.by_pid {
                let held = r.used.unwrap_or(0).saturating_add(r.system.unwrap_or(0));
                let sum = footprint.entry(pid).or_insert(0);
                *sum = sum.saturating_add(held);
            }
        }
        let mut chosen: Vec<(u64, u32)> = footprint
            .into_iter()
            .filter(|&(pid, _)| {
                patterns.is_empty()
                    || self.row(pid).is_some_and(|r| {
                        patterns.iter().any(|p| {
                            [r.name.as_deref(), r.command.as_deref()]
                                .into_iter()
                                .flatten()
                                .any(|t| t.to_lowercase().contains(p))
                        })
                    })
            })
            .filter(|&(_, held)| min.is_none_or(|m| held >= m))
            .map(|(pid, held)| (held, pid))
            .collect();
        chosen.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        chosen
            .into_iter()
            .take(usize::try_from(top).unwrap_or(usize::MAX))
            .map(|(_, pid)| pid)
            .collect()
    }

    /// The rows of process `pid` at this interval: one per device whose list holds it, per
    /// device it was seen on before (`tracked`: absent now, or missing), and for the one
    /// device `--device` names; one row without a device when that gives none.
    fn rows_of(&self, pid: u32, tracked: &BTreeMap<u32, GpuTrack>, single: bool) -> Vec<Place> {
        let mut rows = Vec::new();
        for (d, read) in &self.devices {
            let wanted = single || tracked.contains_key(d);
            match read {
                Ok(listing) => {
                    if let Some(row) = listing.by_pid.get(&pid) {
                        rows.push(Place::listed(*d, row));
                    } else if wanted && listing.unreadable.contains(&pid) {
                        rows.push(Place::unknown(Some(*d), Presence::Unreadable));
                    } else if wanted {
                        rows.push(Place {
                            device: Some(*d),
                            presence: Presence::Absent,
                            gpu: Gpu {
                                used: listing.any_used.then_some(0),
                                system: listing.any_system.then_some(0),
                            },
                            shared: listing.any_system.then_some(0),
                            shared_with: Vec::new(),
                        });
                    }
                }
                Err(_) if wanted => rows.push(Place::unknown(Some(*d), Presence::Missing)),
                Err(_) => {}
            }
        }
        if rows.is_empty() {
            let presence = if self.devices.is_empty() {
                Presence::NoGpu
            } else if self.listings().any(|l| l.unreadable.contains(&pid)) {
                Presence::Unreadable
            } else if self.devices.iter().any(|(_, l)| l.is_err()) {
                Presence::Missing
            } else {
                Presence::NotSeen
            };
            rows.push(Place::unknown(None, presence));
        }
        rows
    }
}

/// One row's device, how its figures were found, and the figures.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Place {
    device: Option<u32>,
    presence: Presence,
    gpu: Gpu,
    shared: Option<u64>,
    shared_with: Vec<u32>,
}

impl Place {
    fn listed(device: u32, row: &Row) -> Self {
        Self {
            device: Some(device),
            presence: Presence::Listed,
            gpu: Gpu {
                used: row.used,
                system: row.system,
            },
            shared: row.shared,
            shared_with: row.shared_with.iter().copied().collect(),
        }
    }

    fn unknown(device: Option<u32>, presence: Presence) -> Self {
        Self {
            device,
            presence,
            gpu: Gpu::default(),
            shared: None,
            shared_with: Vec::new(),
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

/// `VRAM` and `SYS` as in `hmn ps`; `GPU` the row's device (`-`: none); `NOTE` says how a row
/// without the driver's figures was found, and what of its memory is shared with other
/// processes.
const ROW_HEADER: &str = "TIME      PID      NAME              GPU  VRAM       ΔVRAM      SYS        ΔSYS       RSS        ΔRSS       SPILL  NOTE";

/// The text of one row: `base` is the process's baseline on the row's device.
fn row_text(
    at: &str,
    w: &Watched,
    place: &Place,
    base: Gpu,
    rss: (Option<u64>, Option<u64>),
    spill: &str,
) -> String {
    let cell = |text: String| format!("{text:<10} ");
    let device = place
        .device
        .map_or_else(|| "-".to_owned(), |d| d.to_string());
    let mut note = place.presence.note().to_owned();
    if let Some(shared) = place.shared.filter(|&s| s > 0) {
        if !note.is_empty() {
            note.push_str("; ");
        }
        note.push_str(&format!(
            "{} shared with other processes",
            format_size(shared)
        ));
    }
    if !place.shared_with.is_empty() {
        if !note.is_empty() {
            note.push_str("; ");
        }
        let pids: Vec<String> = place.shared_with.iter().map(u32::to_string).collect();
        let noun = if pids.len() == 1 { "pid" } else { "pids" };
        note.push_str(&format!(
            "GPU client shared with {noun} {} (its memory is in both rows)",
            pids.join(", ")
        ));
    }
    let line = format!(
        "{at:<9} {:<8} {:<17} {device:<4} {}{}{}{}{}{}{spill:<6} {note}",
        w.pid,
        crate::text::escape(w.name.as_deref().unwrap_or("?")),
        cell(opt_size(place.gpu.used)),
        cell(signed(delta(place.gpu.used, base.used))),
        cell(opt_size(place.gpu.system)),
        cell(signed(delta(place.gpu.system, base.system))),
        cell(opt_size(rss.0)),
        cell(signed(delta(rss.0, rss.1))),
    );
    line.trim_end().to_owned()
}

pub fn run(global: &GlobalArgs, args: &WatchArgs, out: &Output) -> Outcome {
    let probe = crate::guarded_probe(global.timeout);
    let outcome = watch(&probe, global, args, out);
    crate::leave_if_driver_hung(&probe, i32::from(u8::from(outcome)));
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

    let devices = match choose_devices(probe, global.device, mode, out) {
        Ok(found) => found,
        Err(outcome) => return outcome,
    };
    let indices: Vec<u32> = devices.iter().map(|d| d.index).collect();
    let single = global.device.is_some();
    let sink = Sink {
        out,
        json: global.json,
        wide: global.wide,
        started: Instant::now(),
    };
    let started_wall = SystemTime::now();
    let mut spill: Vec<(u32, DeviceSpill)> = indices
        .iter()
        .map(|&d| (d, DeviceSpill::new(probe, d)))
        .collect();

    let first = Interval::read(probe, &indices);
    if !first.devices.is_empty() && first.listings().next().is_none() {
        for (d, read) in &first.devices {
            if let Err(e) = read {
                out.say(&format!("watch: cannot list the processes of GPU {d}: {e}"));
            }
        }
        return Outcome::CouldNotTell;
    }
    let initial: Vec<u32> = match mode {
        Mode::Explicit => {
            let mut pids = args.pids.clone();
            pids.dedup();
            pids
        }
        Mode::Top | Mode::FollowNew => first.select(args.top, &args.filter, args.min),
    };
    if initial.is_empty() && mode == Mode::Top {
        out.say("watch: no GPU process matches, so there is nothing to watch");
        return Outcome::CouldNotTell;
    }
    let mut watched: Vec<Watched> = Vec::new();
    for &pid in &initial {
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
    if let (true, Some(&only)) = (single && mode == Mode::Explicit, indices.first()) {
        say_where_else(probe, &sink, only, &first, &initial);
    }

    let selection = match mode {
        Mode::Explicit => format!("watching {} PID(s)", watched.len()),
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
                format!(
                    "following {what} (re-selected every interval), {} initially",
                    watched.len()
                )
            } else {
                format!("watching {} PID(s) ({what})", watched.len())
            }
        }
    };
    let named = |d: &DeviceRecord| match &d.name {
        Some(name) => format!("{} [{}]", d.index, crate::text::Shown(name)),
        None => d.index.to_string(),
    };
    let device_text = match (devices.as_slice(), single) {
        ([], _) => "no GPU (RAM only)".to_owned(),
        ([only], true) => format!("GPU {} (--device)", named(only)),
        (all, _) => format!(
            "every GPU: {}",
            all.iter().map(named).collect::<Vec<_>>().join(", ")
        ),
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
            format_version: FORMAT_VERSION,
            t_ms: 0,
            wall_clock: wall_clock_text(started_wall),
            hmn_version: env!("CARGO_PKG_VERSION"),
            argv,
            devices: &devices,
            interval_ms: millis(args.interval),
            duration_ms: args.duration.map(millis),
            selection: Selection {
                mode: mode.as_str(),
                pids: initial.clone(),
                top: (mode != Mode::Explicit).then_some(args.top),
                filters: args.filter.clone(),
                min_bytes: args.min,
            },
            spill_measurable: spill.iter().any(|(_, s)| s.is_measurable()),
        });
    } else {
        out.data(&format!("{ROW_HEADER}\n"));
    }
    for (d, s) in &spill {
        if s.is_measurable() && hypomnesis::spill::device_is_spilling(probe, *d) == Some(true) {
            sink.notice(&format!(
                "GPU {d} is already spilling as watching begins (dedicated ≥ 85 %, system RAM \
                 ≥ 256 MiB): that spill is in the baseline, and only further growth counts"
            ));
        }
    }

    let mut health: Vec<DeviceHealth> = indices
        .iter()
        .map(|&index| DeviceHealth {
            index,
            read: 0,
            missing: 0,
            missing_run: 0,
            last_error: None,
        })
        .collect();
    let mut finished: Vec<Watched> = Vec::new();
    let mut samples: u64 = 0;
    let mut pending = Some(first);
    let mut next = Instant::now();
    let interrupted = loop {
        let spilling: BTreeMap<u32, Option<bool>> = spill
            .iter_mut()
            .map(|(d, s)| (*d, s.observe(sink.started.elapsed())))
            .collect();
        let this = pending
            .take()
            .unwrap_or_else(|| Interval::read(probe, &indices));
        for (h, (_, read)) in health.iter_mut().zip(&this.devices) {
            h.observe(&sink, read);
        }
        if mode == Mode::FollowNew && samples > 0 {
            follow(probe, &sink, &this, args, &mut watched, &mut finished);
        }
        sample(
            probe,
            &sink,
            &this,
            single,
            &spilling,
            &mut watched,
            &mut finished,
        );
        samples += 1;
        if global.all {
            for &index in &indices {
                sample_telemetry(probe, &sink, index);
            }
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
        spill.iter().map(|(_, s)| s.report()).collect(),
        args.interval,
        hypomnesis::is_spill_measurable(),
    );
    summarize(&sink, &finished, samples, interrupted, &health, &spill);
    if spill.spilled == Some(true) {
        Outcome::No
    } else {
        Outcome::Success
    }
}

/// The devices to watch, with their names: every device, or the one `--device` names; `Err`
/// (exit 2) when nothing can be watched.
fn choose_devices(
    probe: &Probe,
    asked: Option<u32>,
    mode: Mode,
    out: &Output,
) -> Result<Vec<DeviceRecord>, Outcome> {
    match asked {
        Some(index) => match probe.device_info(index) {
            Ok(info) => Ok(vec![DeviceRecord::from(&info)]),
            Err(e) => {
                out.say(&format!("watch: cannot read device {index}: {e}"));
                Err(Outcome::CouldNotTell)
            }
        },
        None => match probe.device_count() {
            // A device whose description cannot be read is still watched: its process list
            // may answer, and when it does not, its rows say so.
            Ok(count) if count > 0 => Ok((0..count)
                .map(|index| {
                    probe
                        .device_info(index)
                        .map_or_else(|_| DeviceRecord::unnamed(index), |d| DeviceRecord::from(&d))
                })
                .collect()),
            other => {
                let why = match other {
                    Err(e) => e.to_string(),
                    Ok(_) => "no GPU is visible".to_owned(),
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
        },
    }
}

/// `--device N` with explicit PIDs: for a process not on GPU N, says where its GPU memory is
/// (the other devices' lists, read once), so that its `0 B` on GPU N is not taken for "no GPU
/// memory".
fn say_where_else(probe: &Probe, sink: &Sink<'_>, only: u32, first: &Interval, pids: &[u32]) {
    let missing: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|&pid| first.row(pid).is_none())
        .collect();
    if missing.is_empty() {
        return;
    }
    let others: Vec<u32> = (0..probe.device_count().unwrap_or(0))
        .filter(|&d| d != only)
        .collect();
    let elsewhere = Interval::read(probe, &others);
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

/// One sample of every watched process; `spilling` is each device's spill verdict at this
/// interval (`None`: not measured).
fn sample(
    probe: &Probe,
    sink: &Sink<'_>,
    interval: &Interval,
    single: bool,
    spilling: &BTreeMap<u32, Option<bool>>,
    watched: &mut [Watched],
    finished: &mut Vec<Watched>,
) {
    let elapsed = sink.started.elapsed();
    let wall = wall_clock_text(SystemTime::now());
    for w in watched.iter_mut() {
        let row = interval.row(w.pid);
        let start = hypomnesis::process_start_ticks(probe, w.pid);
        let name = row
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
            // Every row with a device has its series there (rows without the driver's figures
            // only come for a device the process was seen on, or the one `--device` names).
            let base = match place.device {
                Some(d) => w.gpus.entry(d).or_default().observe(&place),
                None => Gpu::default(),
            };
            let spilling = place
                .device
                .and_then(|d| spilling.get(&d).copied().flatten());
            let paged = crate::spill::paged(spilling, place.gpu.system);
            w.paged = match (w.paged, paged) {
                (Some(a), Some(b)) => Some(a || b),
                (a, b) => a.or(b),
            };
            if w.name.is_none()
                && !w.growth_noticed
                && delta(place.gpu.used, base.used)
                    .is_some_and(|d| d >= i128::from(UNNAMED_GROWTH_NOTICE))
            {
                w.growth_noticed = true;
                sink.notice(&format!(
                    "unresolved pid={} grew {} since attach — re-run as root to identify it",
                    w.pid,
                    signed(delta(place.gpu.used, base.used))
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
                    device: place.device,
                    presence: place.presence,
                    used_bytes: place.gpu.used,
                    used_delta_bytes: d(place.gpu.used, base.used),
                    system_bytes: place.gpu.system,
                    system_delta_bytes: d(place.gpu.system, base.system),
                    shared_bytes: place.shared,
                    shared_with: place.shared_with.clone(),
                    rss_bytes: rss,
                    rss_delta_bytes: d(rss, base_rss),
                    spilling,
                    paged,
                });
            } else {
                let cell = crate::spill::cell(spilling, paged, hypomnesis::is_spill_measurable());
                sink.out.data(&format!(
                    "{}\n",
                    row_text(&sink.at(), w, &place, base, (rss, base_rss), cell)
                ));
            }
        }
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
    use hypomnesis::{GpuProcessEntry, GpuQuerySource};

    fn entry(pid: u32, name: &str, used: u64) -> GpuProcessEntry {
        GpuProcessEntry::builder(pid)
            .name(name)
            .used_bytes(used)
            .source(GpuQuerySource::Nvml)
            .build()
    }

    fn listing(rows: Vec<GpuProcessEntry>, unreadable: Vec<u32>) -> Listing {
        let mut raw = GpuProcessListing::default();
        raw.rows = rows;
        raw.unreadable_pids = unreadable;
        Listing::new(raw)
    }

    fn places(
        interval: &Interval,
        pid: u32,
        tracked: &[u32],
        single: bool,
    ) -> Vec<(Option<u32>, Presence, Option<u64>)> {
        let tracks: BTreeMap<u32, GpuTrack> =
            tracked.iter().map(|&d| (d, GpuTrack::default())).collect();
        interval
            .rows_of(pid, &tracks, single)
            .into_iter()
            .map(|p| (p.device, p.presence, p.gpu.used))
            .collect()
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
    fn the_top_processes_are_the_largest_matching_ones_over_every_device() {
        let interval = Interval {
            devices: vec![
                (
                    0,
                    Ok(listing(
                        vec![
                            entry(1, "python3", 5 << 30),
                            entry(2, "llama-server", 9 << 30),
                            entry(3, "python3", 1 << 30),
                            entry(1, "python3", 1 << 30),
                        ],
                        vec![],
                    )),
                ),
                (1, Ok(listing(vec![entry(1, "python3", 4 << 30)], vec![]))),
                (2, Err("GPU is lost".into())),
            ],
        };
        let Ok(first) = &interval.devices[0].1 else {
            panic!("device 0 was listed")
        };
        assert_eq!(
            first.by_pid[&1].used,
            Some(6 << 30),
            "rows of one pid on one device are summed"
        );
        assert_eq!(
            interval.select(2, &[], None),
            [1, 2],
            "pid 1 holds 6 GiB on GPU 0 and 4 GiB on GPU 1"
        );
        assert_eq!(interval.select(5, &["PYTHON".into()], None), [1, 3]);
        assert_eq!(interval.select(5, &[], Some(2 << 30)), [1, 2]);
    }

    #[test]
    fn a_process_gets_a_row_per_device_it_is_listed_on_and_none_elsewhere() {
        let interval = Interval {
            devices: vec![
                (0, Ok(listing(vec![entry(7, "train", 40 << 30)], vec![]))),
                (1, Ok(listing(vec![entry(7, "train", 30 << 30)], vec![]))),
                (2, Ok(listing(vec![], vec![]))),
            ],
        };
        assert_eq!(
            places(&interval, 7, &[], false),
            [
                (Some(0), Presence::Listed, Some(40 << 30)),
                (Some(1), Presence::Listed, Some(30 << 30)),
            ]
        );
    }

    #[test]
    fn a_process_on_no_device_is_not_seen_and_unknown_not_zero() {
        let interval = Interval {
            devices: vec![
                (0, Ok(listing(vec![entry(7, "train", 40 << 30)], vec![]))),
                (1, Ok(listing(vec![], vec![]))),
            ],
        };
        assert_eq!(
            places(&interval, 8, &[], false),
            [(None, Presence::NotSeen, None)]
        );
    }

    #[test]
    fn with_one_device_named_an_absent_process_holds_a_measured_zero_there() {
        let interval = Interval {
            devices: vec![(1, Ok(listing(vec![entry(7, "train", 1 << 30)], vec![])))],
        };
        assert_eq!(
            places(&interval, 8, &[], true),
            [(Some(1), Presence::Absent, Some(0))]
        );
    }

    #[test]
    fn on_a_gpu_without_vram_an_absent_process_reads_vram_unknown_and_system_zero() {
        let mut igpu_row = GpuProcessEntry::builder(7)
            .name("glxgears")
            .device_index(1)
            .source(GpuQuerySource::Drm)
            .system_bytes(64_u64 << 20)
            .build();
        igpu_row.used_bytes = None;
        let interval = Interval {
            devices: vec![(1, Ok(listing(vec![igpu_row], vec![])))],
        };
        let rows = interval.rows_of(8, &BTreeMap::new(), true);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].presence, Presence::Absent);
        assert_eq!(
            rows[0].gpu.used, None,
            "no row of this GPU has a VRAM figure"
        );
        assert_eq!(rows[0].gpu.system, Some(0));
    }

    #[test]
    fn a_device_a_process_was_on_keeps_its_row_zero_when_left_and_unknown_when_lost() {
        let interval = Interval {
            devices: vec![
                (0, Ok(listing(vec![], vec![]))),
                (1, Err("GPU is lost".into())),
            ],
        };
        assert_eq!(
            places(&interval, 7, &[0, 1], false),
            [
                (Some(0), Presence::Absent, Some(0)),
                (Some(1), Presence::Missing, None),
            ]
        );
        assert_eq!(
            places(&interval, 8, &[], false),
            [(None, Presence::Missing, None)],
            "not on the devices read, and one could not be read: unknown, not 'not seen'"
        );
    }

    #[test]
    fn an_unreadable_process_is_unknown_not_zero() {
        let interval = Interval {
            devices: vec![(0, Ok(listing(vec![], vec![9])))],
        };
        assert_eq!(
            places(&interval, 9, &[], true),
            [(Some(0), Presence::Unreadable, None)]
        );
        assert_eq!(
            places(&interval, 9, &[], false),
            [(None, Presence::Unreadable, None)]
        );
    }

    #[test]
    fn without_a_gpu_the_row_says_so() {
        assert_eq!(
            places(&Interval::default(), 9, &[], false),
            [(None, Presence::NoGpu, None)]
        );
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

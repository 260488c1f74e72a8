//! `R`: record what `top` sees as NDJSON in `hmn watch --json`'s format (`docs/json.md`), for
//! `hmn top --replay` or any NDJSON reader.
//!
//! Why watch's format: a recording made in `top` is read by the same scripts and tools as a
//! `hmn watch --json` log (a `start` record, then `sample` records per process and device).
//! Watch records processes only; a screen also needs the devices' memory and the host, so
//! `top` adds `device` and `host` records each interval (and watch's own `telemetry`
//! records), which readers of watch's records skip by their `kind`.
//!
//! How: [`Recorder`] turns each frame into lines ([`Lines::frame`], pure, tested on frames
//! built by hand) and writes them to a file, flushed after every frame so that a recording
//! cut short (a full disk, a crash) ends in whole lines. A write that fails stops the
//! recording and says why; the screen carries on.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use hypomnesis::{DeviceTelemetry, Frame};
use serde::Serialize;

use crate::time::{millis, wall_clock_text};

/// The `start` record's `format_version`: watch's (2), whose records name their device.
pub(crate) const FORMAT_VERSION: u32 = 2;

/// `{"kind":"start"}`: watch's start record; `selection.mode` is `"all"` (every GPU process).
#[derive(Debug, Serialize)]
struct StartRecord<'a> {
    kind: &'static str,
    format_version: u32,
    t_ms: u64,
    wall_clock: String,
    hmn_version: &'static str,
    argv: Vec<String>,
    devices: Vec<StartDevice<'a>>,
    interval_ms: u64,
    duration_ms: Option<u64>,
    selection: Selection,
    spill_measurable: bool,
}

#[derive(Debug, Serialize)]
struct StartDevice<'a> {
    index: u32,
    name: Option<&'a str>,
    total_bytes: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Selection {
    mode: &'static str,
    pids: Vec<u32>,
    top: Option<u32>,
    filters: Vec<String>,
    min_bytes: Option<u64>,
}

/// `{"kind":"sample"}`: watch's sample record, plus the user, command line and cgroup that
/// `top`'s table shows.
#[derive(Debug, Serialize)]
struct SampleRecord<'a> {
    kind: &'static str,
    t_ms: u64,
    wall_clock: &'a str,
    pid: u32,
    name: Option<&'a str>,
    device: Option<u32>,
    presence: &'static str,
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
    user: Option<&'a str>,
    command: Option<&'a str>,
    cgroup: Option<&'a str>,
}

/// `{"kind":"device"}`: one device's memory at one interval.
#[derive(Debug, Serialize)]
struct DeviceRecord<'a> {
    kind: &'static str,
    t_ms: u64,
    wall_clock: &'a str,
    index: u32,
    name: Option<&'a str>,
    vendor: &'static str,
    source: &'static str,
    total_bytes: Option<u64>,
    free_bytes: Option<u64>,
    used_bytes: Option<u64>,
    reserved_bytes: Option<u64>,
    system_total_bytes: Option<u64>,
    system_used_bytes: Option<u64>,
    unified_memory: bool,
}

/// `{"kind":"host"}`: the host's memory at one interval.
#[derive(Debug, Serialize)]
struct HostRecord<'a> {
    kind: &'static str,
    t_ms: u64,
    wall_clock: &'a str,
    total_bytes: u64,
    available_bytes: Option<u64>,
    swap_total_bytes: Option<u64>,
    swap_free_bytes: Option<u64>,
    cgroup_limit_bytes: Option<u64>,
    cgroup_usage_bytes: Option<u64>,
    cgroup_peak_bytes: Option<u64>,
}

/// `{"kind":"telemetry"}`: watch's telemetry record.
#[derive(Serialize)]
struct TelemetryRecord<'a> {
    kind: &'static str,
    t_ms: u64,
    wall_clock: &'a str,
    #[serde(flatten)]
    telemetry: &'a DeviceTelemetry,
}

/// Turns frames into NDJSON lines: remembers when the recording started (for `t_ms`), each
/// process's first figures on each device (the baselines of the deltas) and which process
/// scan it wrote last (a scan is written once, though frames carry it over).
#[derive(Debug)]
pub(crate) struct Lines {
    start: Option<Instant>,
    interval_ms: u64,
    baselines: HashMap<(u32, u32), Baseline>,
    last_scan: Option<Instant>,
}

/// A process's first (used, system, RSS) figures on a device.
type Baseline = (Option<u64>, Option<u64>, Option<u64>);

fn delta(now: Option<u64>, base: Option<u64>) -> Option<i64> {
    let (now, base) = (i64::try_from(now?).ok()?, i64::try_from(base?).ok()?);
    now.checked_sub(base)
}

impl Lines {
    pub(crate) fn new(interval: std::time::Duration) -> Self {
        Self {
            start: None,
            interval_ms: millis(interval),
            baselines: HashMap::new(),
            last_scan: None,
        }
    }

    /// The lines for `frame` (each without its newline): the `start` record before the first
    /// frame, then the frame's devices, host, telemetry and, when it carries a process scan
    /// not written yet, one `sample` per process and device.
    pub(crate) fn frame(&mut self, frame: &Frame) -> Vec<String> {
        let mut lines = Vec::new();
        let start = if let Some(start) = self.start {
            start
        } else {
            lines.push(line(&self.start_record(frame)));
            self.start = Some(frame.taken);
            frame.taken
        };
        let t_ms = millis(frame.taken.saturating_duration_since(start));
        let wall_clock = wall_clock_text(frame.taken_at);
        for d in &frame.devices {
            let info = &d.device;
            lines.push(line(&DeviceRecord {
                kind: "device",
                t_ms,
                wall_clock: &wall_clock,
                index: info.index,
                name: info.name.as_deref(),
                vendor: vendor_name(info.vendor),
                source: info.source.as_str(),
                total_bytes: info.total_bytes,
                free_bytes: info.free_bytes,
                used_bytes: info.used_bytes,
                reserved_bytes: info.reserved_bytes,
                system_total_bytes: info.system_total_bytes,
                system_used_bytes: info.system_used_bytes,
                unified_memory: info.unified_memory,
            }));
        }
        if let Some(host) = &frame.host {
            let cgroup = host.cgroup.as_ref();
            lines.push(line(&HostRecord {
                kind: "host",
                t_ms,
                wall_clock: &wall_clock,
                total_bytes: host.total_bytes,
                available_bytes: host.available_bytes,
                swap_total_bytes: host.swap_total_bytes,
                swap_free_bytes: host.swap_free_bytes,
                cgroup_limit_bytes: cgroup.and_then(|c| c.limit_bytes),
                cgroup_usage_bytes: cgroup.and_then(|c| c.usage_bytes),
                cgroup_peak_bytes: cgroup.and_then(|c| c.peak_bytes),
            }));
        }
        for d in &frame.devices {
            if let Some(telemetry) = &d.telemetry {
                lines.push(line(&TelemetryRecord {
                    kind: "telemetry",
                    t_ms,
                    wall_clock: &wall_clock,
                    telemetry,
                }));
            }
        }
        if frame.processes_taken.is_some() && frame.processes_taken != self.last_scan {
            self.last_scan = frame.processes_taken;
            for row in frame.processes() {
                let base = *self
                    .baselines
                    .entry((row.pid, row.device_index))
                    .or_insert((row.used_bytes, row.system_bytes, row.rss_bytes));
                lines.push(line(&SampleRecord {
                    kind: "sample",
                    t_ms,
                    wall_clock: &wall_clock,
                    pid: row.pid,
                    name: row.name.as_deref(),
                    device: Some(row.device_index),
                    presence: "listed",
                    used_bytes: row.used_bytes,
                    used_delta_bytes: delta(row.used_bytes, base.0),
                    system_bytes: row.system_bytes,
                    system_delta_bytes: delta(row.system_bytes, base.1),
                    shared_bytes: row.shared_bytes,
                    shared_with: row.shared_with(),
                    rss_bytes: row.rss_bytes,
                    rss_delta_bytes: delta(row.rss_bytes, base.2),
                    spilling: None,
                    paged: None,
                    user: row.user.as_deref(),
                    command: row.command.as_deref(),
                    cgroup: row.cgroup.as_deref(),
                }));
            }
        }
        lines
    }

    fn start_record<'a>(&self, frame: &'a Frame) -> StartRecord<'a> {
        StartRecord {
            kind: "start",
            format_version: FORMAT_VERSION,
            t_ms: 0,
            wall_clock: wall_clock_text(frame.taken_at),
            hmn_version: env!("CARGO_PKG_VERSION"),
            argv: argv(),
            devices: frame
                .devices
                .iter()
                .map(|d| StartDevice {
                    index: d.device.index,
                    name: d.device.name.as_deref(),
                    total_bytes: d.device.total_bytes,
                })
                .collect(),
            interval_ms: self.interval_ms,
            duration_ms: None,
            selection: Selection {
                mode: "all",
                pids: frame.processes().map(|r| r.pid).collect(),
                top: None,
                filters: Vec::new(),
                min_bytes: None,
            },
            spill_measurable: false,
        }
    }
}

/// hmn's arguments, the program as a file name only (as watch's `argv`).
fn argv() -> Vec<String> {
    let mut args: Vec<String> = std::env::args().collect();
    if let Some(first) = args.first_mut()
        && let Some(name) = Path::new(first.as_str()).file_name()
    {
        *first = name.to_string_lossy().into_owned();
    }
    args
}

/// The vendor as `hmn --json` spells it.
pub(crate) fn vendor_name(vendor: hypomnesis::GpuVendor) -> &'static str {
    use hypomnesis::GpuVendor;
    match vendor {
        GpuVendor::Nvidia => "nvidia",
        GpuVendor::Amd => "amd",
        GpuVendor::Intel => "intel",
        GpuVendor::Apple => "apple",
        _ => "other",
    }
}

fn line<T: Serialize>(value: &T) -> String {
    // Serializing these plain structs cannot fail (no maps with non-string keys, no
    // fallible Serialize impls); an empty line would be skipped by readers.
    serde_json::to_string(value).unwrap_or_default()
}

/// A recording in progress: the file and what has been written.
#[derive(Debug)]
pub(crate) struct Recorder {
    path: PathBuf,
    file: BufWriter<File>,
    lines: Lines,
    records: u64,
}

impl Recorder {
    /// Starts a recording in `dir` (the current directory when `None`), named after the
    /// local time: `hmn-top-2026-12-06T08-15-03.ndjson`.
    pub(crate) fn start(dir: Option<&Path>, interval: std::time::Duration) -> Result<Self, String> {
        let dir = dir.map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let path = dir.join(file_name(SystemTime::now()));
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| format!("cannot record to {}: {e}", path.display()))?;
        Ok(Self {
            path,
            file: BufWriter::new(file),
            lines: Lines::new(interval),
            records: 0,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn records(&self) -> u64 {
        self.records
    }

    /// Writes `frame`'s records and flushes them.
    pub(crate) fn write(&mut self, frame: &Frame) -> std::io::Result<()> {
        for line in self.lines.frame(frame) {
            self.file.write_all(line.as_bytes())?;
            self.file.write_all(b"\n")?;
            self.records += 1;
        }
        self.file.flush()
    }

    /// Ends the recording: flushes what is buffered.
    pub(crate) fn finish(mut self) -> std::io::Result<PathBuf> {
        self.file.flush()?;
        self.file.get_ref().sync_data()?;
        Ok(self.path)
    }
}

/// `hmn-top-<local time>.ndjson`, without `:` (not allowed in Windows file names).
pub(crate) fn file_name(at: SystemTime) -> String {
    format!("hmn-top-{}.ndjson", local_time_text(at))
}

/// `2026-12-06T08-15-03` in local time; in UTC with a `Z` where the local time zone is not
/// known (off Unix).
fn local_time_text(at: SystemTime) -> String {
    #[cfg(unix)]
    {
        let secs = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // The type is inferred from localtime_r's argument: naming `libc::time_t` is
        // deprecated on musl (whose time_t changed width in 1.2).
        let time = secs.try_into().unwrap_or(0);
        // SAFETY: a zeroed `tm` is a valid value for localtime_r to overwrite.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers refer to live values of the right types for the call;
        // localtime_r is the re-entrant form and keeps neither.
        let ok = unsafe { !libc::localtime_r(&raw const time, &raw mut tm).is_null() };
        if ok {
            return format!(
                "{:04}-{:02}-{:02}T{:02}-{:02}-{:02}",
                tm.tm_year + 1900,
                tm.tm_mon + 1,
                tm.tm_mday,
                tm.tm_hour,
                tm.tm_min,
                tm.tm_sec
            );
        }
    }
    // `2026-12-06T08:15:03.482Z` → `2026-12-06T08-15-03Z`.
    let utc = wall_clock_text(at);
    format!("{}Z", utc.get(..19).unwrap_or(&utc).replace(':', "-"))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use hypomnesis::{
        DeviceFrame, FrameRequest, GpuDeviceInfo, GpuProcessEntry, GpuProcessListing, HostMemory,
    };
    use serde_json::Value;

    use super::*;

    const GIB: u64 = 1 << 30;

    pub(crate) fn frame_at(base: Instant, secs: u64, used: u64, scan: bool) -> Frame {
        let mut frame = Frame::empty(FrameRequest::ALL);
        frame.taken = base + Duration::from_secs(secs);
        frame.taken_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs);
        let mut host = HostMemory::for_test(64 * GIB);
        host.available_bytes = Some(40 * GIB);
        frame.host = Some(host);
        let info = GpuDeviceInfo::builder()
            .index(0)
            .name("GPU Zero")
            .total_bytes(80 * GIB)
            .used_bytes(used)
            .free_bytes(80 * GIB - used)
            .build();
        let mut device = DeviceFrame::new(info);
        let row = GpuProcessEntry::builder(4242)
            .name("train")
            .user("ada")
            .used_bytes(used)
            .build();
        let mut listing = GpuProcessListing::default();
        listing.rows.push(row);
        device.processes = Some(listing);
        frame.devices.push(device);
        frame.processes_taken = Some(if scan { frame.taken } else { base });
        frame
    }

    fn parse(lines: &[String]) -> Vec<Value> {
        lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn the_first_frame_starts_with_a_version_2_start_record_naming_the_devices() {
        let base = Instant::now();
        let mut lines = Lines::new(Duration::from_secs(1));
        let records = parse(&lines.frame(&frame_at(base, 0, GIB, true)));
        assert_eq!(records[0]["kind"], "start");
        assert_eq!(records[0]["format_version"], 2);
        assert_eq!(records[0]["devices"][0]["name"], "GPU Zero");
        assert_eq!(records[0]["selection"]["mode"], "all");
        let kinds: Vec<&str> = records
            .iter()
            .map(|r| r["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["start", "device", "host", "sample"]);
        assert_eq!(records[3]["used_delta_bytes"], 0);
        assert_eq!(records[3]["user"], "ada");
    }

    #[test]
    fn a_process_scan_carried_over_is_not_written_twice_and_deltas_follow_the_baseline() {
        let base = Instant::now();
        let mut lines = Lines::new(Duration::from_secs(1));
        lines.frame(&frame_at(base, 0, GIB, true));
        let carried = parse(&lines.frame(&frame_at(base, 1, 2 * GIB, false)));
        assert!(carried.iter().all(|r| r["kind"] != "sample"), "{carried:?}");
        assert_eq!(carried[0]["t_ms"], 1000);
        assert_eq!(carried[0]["used_bytes"], 2 * GIB);
        let scanned = parse(&lines.frame(&frame_at(base, 3, 3 * GIB, true)));
        let sample = scanned.iter().find(|r| r["kind"] == "sample").unwrap();
        assert_eq!(sample["used_delta_bytes"], 2 * GIB);
        assert_eq!(sample["t_ms"], 3000);
    }

    #[test]
    fn an_unknown_figure_is_recorded_as_null_never_zero() {
        let base = Instant::now();
        let mut frame = frame_at(base, 0, GIB, true);
        frame.devices[0].device.used_bytes = None;
        if let Some(l) = frame.devices[0].processes.as_mut() {
            l.rows[0].used_bytes = None;
        }
        let records = parse(&Lines::new(Duration::from_secs(1)).frame(&frame));
        let device = records.iter().find(|r| r["kind"] == "device").unwrap();
        assert!(device["used_bytes"].is_null());
        let sample = records.iter().find(|r| r["kind"] == "sample").unwrap();
        assert!(sample["used_bytes"].is_null() && sample["used_delta_bytes"].is_null());
    }

    use test_support::json_docs::{documented, emitted};

    #[test]
    fn the_records_are_exactly_the_documented_ones() {
        let records = parse(&Lines::new(Duration::from_secs(1)).frame(&frame_at(
            Instant::now(),
            0,
            GIB,
            true,
        )));
        for kind in ["start", "sample", "device", "host"] {
            let found = records.iter().find(|r| r["kind"] == kind).unwrap();
            assert_eq!(
                emitted(found),
                documented("`hmn top` — what `R` records", &format!("`{kind}`")),
                "{kind}"
            );
        }
    }

    #[test]
    fn the_file_name_has_no_colon() {
        let name = file_name(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        assert!(
            name.starts_with("hmn-top-20") && name.ends_with(".ndjson"),
            "{name}"
        );
        assert!(!name.contains(':'), "{name}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_write_that_fails_is_an_error_not_a_panic() {
        // /dev/full: every write fails with ENOSPC, as a full disk.
        let file = File::options().write(true).open("/dev/full").unwrap();
        let mut recorder = Recorder {
            path: PathBuf::from("/dev/full"),
            file: BufWriter::new(file),
            lines: Lines::new(Duration::from_secs(1)),
            records: 0,
        };
        let frame = frame_at(Instant::now(), 0, GIB, true);
        assert!(recorder.write(&frame).is_err());
    }
}

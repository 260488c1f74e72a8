//! Where `hmn top`'s frames come from: a live [`hypomnesis::Monitor`], or a recording played
//! back (`--replay FILE`).
//!
//! Why one type for both: the terminal loop asks the same three things of either — is there
//! a newer frame, what history goes with it, how long may I wait for input — so a recording
//! is shown by exactly the code that shows the machine.
//!
//! A recording is what `R` writes or what `hmn watch --json` prints (`docs/json.md`): it is
//! read whole ([`parse_recording`], pure), rebuilt into [`Frame`]s, and each frame is fed to
//! a [`History`] of its own when its time comes, in real time or faster (`--replay-speed`);
//! after the last, the screen stays on it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hypomnesis::monitor::HistoryLimits;
use hypomnesis::{
    DeviceFrame, DeviceTelemetry, Frame, FrameRequest, GpuProcessEntry, GpuProcessListing,
    GpuQuerySource, GpuVendor, History, HostMemory, Monitor,
};
use serde_json::Value;

use super::charts::HistorySource;

/// How often `top` asks for new data while waiting for input: a new frame is shown at most
/// this late. Cheap (one lock of the monitor's latest frame per wake-up).
const POLL: Duration = Duration::from_millis(100);

/// How often `top` looks for the monitor's first frame.
const FIRST_POLL: Duration = Duration::from_millis(5);

/// Frames from the machine or from a recording.
pub(crate) enum Source {
    Live(Live),
    Replay(Box<Replay>),
}

impl Source {
    /// The newest frame not shown yet, and the moment to show it at (its time for charts and
    /// ages); `None` when nothing new came.
    pub(crate) fn poll(&mut self, now: Instant) -> Option<(Arc<Frame>, Instant)> {
        match self {
            Self::Live(live) => live.poll(now),
            Self::Replay(replay) => replay.poll(now),
        }
    }

    /// The history the charts read.
    pub(crate) fn history(&self) -> &dyn HistorySource {
        match self {
            Self::Live(live) => &live.monitor,
            Self::Replay(replay) => &replay.history,
        }
    }

    /// How long the loop may wait for input before asking [`Source::poll`] again.
    pub(crate) fn wait(&self, now: Instant) -> Duration {
        match self {
            // Before the first frame, look often: the first screen should come as soon as
            // the monitor has read the machine (budget: 100 ms from start).
            Self::Live(live) if live.seen == 0 => FIRST_POLL,
            Self::Live(_) => POLL,
            Self::Replay(replay) => replay.wait(now),
        }
    }

    /// A line for the footer about the source itself: a driver call that is late, or where a
    /// replay is.
    pub(crate) fn status(&self) -> Option<String> {
        match self {
            Self::Live(live) if live.monitor.thread_error().is_some() => live
                .monitor
                .thread_error()
                .map(|e| format!("cannot read the machine: the OS refused a thread ({e})")),
            Self::Live(live) => live.monitor.stalled_for().map(|d| {
                format!(
                    "the GPU driver has not answered for {:.0} s; showing the last frame",
                    d.as_secs_f64()
                )
            }),
            Self::Replay(replay) => Some(replay.status()),
        }
    }
}

/// The machine, read by a monitor on its own thread.
pub(crate) struct Live {
    pub(crate) monitor: Monitor,
    seen: u64,
}

impl Live {
    pub(crate) fn new(monitor: Monitor) -> Self {
        Self { monitor, seen: 0 }
    }

    fn poll(&mut self, now: Instant) -> Option<(Arc<Frame>, Instant)> {
        if self.monitor.sequence() <= self.seen {
            return None;
        }
        let (seq, frame) = self.monitor.wait_newer(self.seen, Duration::ZERO)?;
        self.seen = seq;
        Some((frame, now))
    }
}

/// A recording played back.
pub(crate) struct Replay {
    /// Each frame with its time after the first.
    frames: Vec<(Duration, Arc<Frame>)>,
    next: usize,
    started: Option<Instant>,
    speed: f64,
    history: History,
    name: String,
}

impl Replay {
    /// Plays `recording` (named `name` in the footer) at `speed` times real time.
    pub(crate) fn new(recording: Recording, speed: f64, name: String) -> Self {
        let history = History::new(recording.limits());
        Self {
            frames: recording.frames,
            next: 0,
            started: None,
            speed: if speed.is_finite() && speed > 0.0 {
                speed
            } else {
                1.0
            },
            history,
            name,
        }
    }

    fn elapsed(&self, now: Instant) -> Duration {
        let started = self.started.unwrap_or(now);
        now.saturating_duration_since(started).mul_f64(self.speed)
    }

    fn poll(&mut self, now: Instant) -> Option<(Arc<Frame>, Instant)> {
        self.started.get_or_insert(now);
        let elapsed = self.elapsed(now);
        let mut newest = None;
        while let Some((at, frame)) = self.frames.get(self.next)
            && *at <= elapsed
        {
            self.history.record(frame);
            newest = Some(Arc::clone(frame));
            self.next += 1;
        }
        newest.map(|f| {
            let taken = f.taken;
            (f, taken)
        })
    }

    fn wait(&self, now: Instant) -> Duration {
        let Some((at, _)) = self.frames.get(self.next) else {
            // The end: only input wakes the loop (bounded, to notice signals).
            return POLL * 5;
        };
        at.saturating_sub(self.elapsed(now))
            .div_f64(self.speed)
            .clamp(Duration::from_millis(1), POLL * 5)
    }

    fn status(&self) -> String {
        let total = self.frames.len();
        if self.next >= total {
            format!("replay of {}: the end ({total} frames)", self.name)
        } else {
            format!("replay of {}: frame {} of {total}", self.name, self.next)
        }
    }
}

/// A recording read back: its frames, stamped relative to the moment it was read.
#[derive(Debug)]
pub(crate) struct Recording {
    pub(crate) frames: Vec<(Duration, Arc<Frame>)>,
    pub(crate) interval: Duration,
    /// Process scans come every this many frames.
    pub(crate) process_every: u32,
}

impl Recording {
    /// History limits that keep the whole recording (at least ten minutes).
    fn limits(&self) -> HistoryLimits {
        let length = self.frames.last().map_or(Duration::ZERO, |(at, _)| *at);
        let window = length.max(hypomnesis::monitor::DEFAULT_WINDOW) + self.interval;
        HistoryLimits::new(window, self.interval, self.process_every)
    }
}

/// What was wrong with a recording: the line (1-based) and what was wrong on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadRecording {
    pub(crate) line: usize,
    pub(crate) what: String,
}

impl std::fmt::Display for BadRecording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.what)
    }
}

/// One `t_ms`'s records, gathered before they become a frame.
#[derive(Default)]
struct Moment {
    t_ms: u64,
    devices: BTreeMap<u32, DeviceFrame>,
    host: Option<HostMemory>,
    telemetry: BTreeMap<u32, DeviceTelemetry>,
    samples: Vec<GpuProcessEntry>,
}

/// Reads a recording (`R`'s, or `hmn watch --json`'s output) into frames stamped from `base`
/// (`taken = base + t_ms`). Every line must be a JSON object with a `kind`; the first is the
/// `start` record. Kinds this reader does not use (`summary`, kinds added later) are skipped.
pub(crate) fn parse_recording(text: &str, base: Instant) -> Result<Recording, BadRecording> {
    let wall_base = SystemTime::now();
    let mut start: Option<Start> = None;
    let mut moment: Option<Moment> = None;
    let mut builder = FrameBuilder::default();
    let mut frames = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let bad = |what: String| BadRecording { line, what };
        if raw.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(raw).map_err(|e| bad(format!("not a JSON record ({e})")))?;
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no \"kind\": not an hmn record".into()))?;
        let Some(started) = &start else {
            if kind != "start" {
                return Err(bad(format!(
                    "the first record must be the \"start\" record, found \"{kind}\" (is this \
                     the output of `hmn watch --json` or a recording made with `R`?)"
                )));
            }
            start = Some(Start::read(&value).map_err(bad)?);
            continue;
        };
        if !matches!(kind, "sample" | "device" | "host" | "telemetry") {
            continue;
        }
        let t_ms = value
            .get("t_ms")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad(format!("a \"{kind}\" record without a whole \"t_ms\"")))?;
        if let Some(m) = &moment
            && m.t_ms != t_ms
        {
            if t_ms < m.t_ms {
                return Err(bad(format!(
                    "t_ms goes back in time ({t_ms} after {})",
                    m.t_ms
                )));
            }
            if let Some(done) = moment.take() {
                frames.push(builder.frame(done, started, base, wall_base));
            }
        }
        let m = moment.get_or_insert_with(|| Moment {
            t_ms,
            ..Moment::default()
        });
        read_record(kind, &value, m).map_err(bad)?;
    }
    let Some(start) = start else {
        return Err(BadRecording {
            line: 1,
            what: "the recording is empty".into(),
        });
    };
    if let Some(done) = moment.take() {
        frames.push(builder.frame(done, &start, base, wall_base));
    }
    if frames.is_empty() {
        return Err(BadRecording {
            line: text.lines().count().max(1),
            what: "the recording has a start record but no samples".into(),
        });
    }
    let scans = builder.scans.max(1);
    let process_every = u32::try_from(frames.len().div_ceil(scans))
        .unwrap_or(1)
        .max(1);
    Ok(Recording {
        frames,
        interval: start.interval,
        process_every,
    })
}

/// What the `start` record says.
struct Start {
    interval: Duration,
    /// The devices it names: index, name, total.
    devices: Vec<(u32, Option<String>, Option<u64>)>,
}

impl Start {
    fn read(value: &Value) -> Result<Self, String> {
        match value.get("format_version").and_then(Value::as_u64) {
            None | Some(1 | 2) => {}
            Some(v) => {
                return Err(format!(
                    "format_version {v} is newer than this hmn reads (1 and 2); use a newer hmn"
                ));
            }
        }
        let interval_ms = value
            .get("interval_ms")
            .and_then(Value::as_u64)
            .ok_or("the start record has no whole \"interval_ms\"")?;
        let mut devices = Vec::new();
        if let Some(list) = value.get("devices").and_then(Value::as_array) {
            for d in list {
                let index = index_of(d, "index")?;
                let name = d.get("name").and_then(Value::as_str).map(str::to_owned);
                devices.push((index, name, bytes(d, "total_bytes")?));
            }
        }
        Ok(Self {
            interval: Duration::from_millis(interval_ms.max(1)),
            devices,
        })
    }
}

fn index_of(value: &Value, field: &str) -> Result<u32, String> {
    value
        .get(field)
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| format!("\"{field}\" is missing or not a device index"))
}

/// A byte count: absent or `null` is unknown; anything but a whole number is an error.
fn bytes(value: &Value, field: &str) -> Result<Option<u64>, String> {
    match value.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("\"{field}\" is not a byte count: {v}")),
    }
}

fn number(value: &Value, field: &str) -> Result<Option<f64>, String> {
    match value.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| format!("\"{field}\" is not a number: {v}")),
    }
}

fn whole(value: &Value, field: &str) -> Result<Option<u32>, String> {
    match value.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| format!("\"{field}\" is not a whole number: {v}")),
    }
}

fn text(value: &Value, field: &str) -> Option<String> {
    value.get(field).and_then(Value::as_str).map(str::to_owned)
}

fn source_named(name: Option<&str>) -> Result<GpuQuerySource, String> {
    Ok(match name {
        // Watch's records do not say; NVML is the common case and only labels the device.
        None | Some("nvml") => GpuQuerySource::Nvml,
        Some("nvidia-smi") => GpuQuerySource::NvidiaSmi,
        Some("drm") => GpuQuerySource::Drm,
        Some("dxgi") => GpuQuerySource::Dxgi,
        Some("pdh") => GpuQuerySource::Pdh,
        Some("metal") => GpuQuerySource::Metal,
        Some(other) => return Err(format!("\"source\" is not a known backend: \"{other}\"")),
    })
}

fn vendor_named(name: Option<&str>) -> GpuVendor {
    match name {
        Some("nvidia") => GpuVendor::Nvidia,
        Some("amd") => GpuVendor::Amd,
        Some("intel") => GpuVendor::Intel,
        Some("apple") => GpuVendor::Apple,
        _ => GpuVendor::Other,
    }
}

fn read_record(kind: &str, value: &Value, m: &mut Moment) -> Result<(), String> {
    match kind {
        "device" => {
            let index = index_of(value, "index")?;
            let source = source_named(value.get("source").and_then(Value::as_str))?;
            let vendor = vendor_named(value.get("vendor").and_then(Value::as_str));
            let mut d = DeviceFrame::recorded(index, vendor, source);
            let info = &mut d.device;
            info.name = text(value, "name");
            info.total_bytes = bytes(value, "total_bytes")?;
            info.free_bytes = bytes(value, "free_bytes")?;
            info.used_bytes = bytes(value, "used_bytes")?;
            info.reserved_bytes = bytes(value, "reserved_bytes")?;
            info.system_total_bytes = bytes(value, "system_total_bytes")?;
            info.system_used_bytes = bytes(value, "system_used_bytes")?;
            info.unified_memory = value
                .get("unified_memory")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            m.devices.insert(index, d);
        }
        "host" => {
            let total = bytes(value, "total_bytes")?.ok_or("a host record without total_bytes")?;
            let mut host = HostMemory::recorded(total);
            host.available_bytes = bytes(value, "available_bytes")?;
            host.swap_total_bytes = bytes(value, "swap_total_bytes")?;
            host.swap_free_bytes = bytes(value, "swap_free_bytes")?;
            m.host = Some(host);
        }
        "telemetry" => {
            let index = index_of(value, "index")?;
            let source = source_named(value.get("source").and_then(Value::as_str))?;
            let mut t = DeviceTelemetry::empty(index, source);
            t.gpu_utilization_percent = number(value, "gpu_utilization_percent")?;
            t.memory_utilization_percent = number(value, "memory_utilization_percent")?;
            t.encoder_utilization_percent = number(value, "encoder_utilization_percent")?;
            t.decoder_utilization_percent = number(value, "decoder_utilization_percent")?;
            t.temperature_celsius = number(value, "temperature_celsius")?;
            t.power_watts = number(value, "power_watts")?;
            t.power_limit_watts = number(value, "power_limit_watts")?;
            t.fan_percent = number(value, "fan_percent")?;
            t.sm_clock_mhz = whole(value, "sm_clock_mhz")?;
            t.memory_clock_mhz = whole(value, "memory_clock_mhz")?;
            m.telemetry.insert(index, t);
        }
        "sample" => {
            let pid = index_of(value, "pid")?;
            // Only a process on a device's list is a row; `absent`, `not_seen`, `missing`
            // and the rest say it held nothing measurable there.
            let listed = value.get("presence").and_then(Value::as_str);
            let device = match value.get("device") {
                None => Some(0), // format 1: one device, and samples do not name it.
                Some(Value::Null) => None,
                Some(_) => Some(index_of(value, "device")?),
            };
            let Some(device) = device else {
                return Ok(());
            };
            if listed.is_some_and(|p| p != "listed") {
                return Ok(());
            }
            let mut row = GpuProcessEntry::recorded(pid, device, GpuQuerySource::Nvml);
            row.name = text(value, "name");
            row.user = text(value, "user");
            row.command = text(value, "command");
            row.cgroup = text(value, "cgroup");
            row.used_bytes = bytes(value, "used_bytes")?;
            row.system_bytes = bytes(value, "system_bytes")?;
            row.shared_bytes = bytes(value, "shared_bytes")?;
            row.rss_bytes = bytes(value, "rss_bytes")?;
            m.samples.push(row);
        }
        _ => {}
    }
    Ok(())
}

/// Builds frames from moments, carrying devices and process listings over from the moments
/// before as a monitor does (a process scan is not in every frame).
#[derive(Default)]
struct FrameBuilder {
    devices: BTreeMap<u32, DeviceFrame>,
    host: Option<HostMemory>,
    listings: BTreeMap<u32, GpuProcessListing>,
    scanned: Option<(Instant, SystemTime)>,
    scans: usize,
}

impl FrameBuilder {
    fn frame(
        &mut self,
        m: Moment,
        start: &Start,
        base: Instant,
        wall_base: SystemTime,
    ) -> (Duration, Arc<Frame>) {
        let at = Duration::from_millis(m.t_ms);
        let mut frame = Frame::empty(FrameRequest::ALL);
        frame.taken = base + at;
        frame.taken_at = wall_base + at;
        if self.devices.is_empty() {
            // A watch log has no device records: the devices its start names.
            for (index, name, total) in &start.devices {
                let mut d = DeviceFrame::recorded(*index, GpuVendor::Other, GpuQuerySource::Nvml);
                d.device.name.clone_from(name);
                d.device.total_bytes = *total;
                self.devices.insert(*index, d);
            }
        }
        for (index, mut d) in m.devices {
            if d.device.name.is_none()
                && let Some(old) = self.devices.get(&index)
            {
                d.device.name.clone_from(&old.device.name);
            }
            self.devices.insert(index, d);
        }
        if m.host.is_some() {
            self.host = m.host;
        }
        if !m.samples.is_empty() {
            self.listings.clear();
            for row in m.samples {
                self.devices.entry(row.device_index).or_insert_with(|| {
                    DeviceFrame::recorded(row.device_index, GpuVendor::Other, GpuQuerySource::Nvml)
                });
                self.listings
                    .entry(row.device_index)
                    .or_default()
                    .rows
                    .push(row);
            }
            for listing in self.listings.values_mut() {
                listing.rows.sort_by_key(|r| r.pid);
            }
            self.scanned = Some((frame.taken, frame.taken_at));
            self.scans += 1;
        }
        frame.request = FrameRequest::ALL.with_telemetry(!m.telemetry.is_empty());
        frame.host.clone_from(&self.host);
        let mut telemetry = m.telemetry;
        for (index, d) in &self.devices {
            let mut d = d.clone();
            d.telemetry = telemetry.remove(index);
            if self.scanned.is_some() {
                d.processes = Some(self.listings.get(index).cloned().unwrap_or_default());
            }
            frame.devices.push(d);
        }
        frame.processes_taken = self.scanned.map(|(t, _)| t);
        frame.processes_taken_at = self.scanned.map(|(_, w)| w);
        (at, Arc::new(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn recording(lines: &[&str]) -> Result<Recording, BadRecording> {
        parse_recording(&lines.join("\n"), Instant::now())
    }

    const START: &str = r#"{"kind":"start","format_version":2,"t_ms":0,"interval_ms":1000,"devices":[{"index":0,"name":"GPU Zero","total_bytes":85899345920}]}"#;

    #[test]
    fn a_watch_log_becomes_one_frame_per_interval_with_its_processes() {
        let r = recording(&[
            START,
            r#"{"kind":"sample","t_ms":0,"pid":7,"name":"train","device":0,"presence":"listed","used_bytes":1073741824}"#,
            r#"{"kind":"sample","t_ms":0,"pid":8,"name":"idle","device":null,"presence":"not_seen","used_bytes":null}"#,
            r#"{"kind":"sample","t_ms":5000,"pid":7,"name":"train","device":0,"presence":"listed","used_bytes":2147483648}"#,
            r#"{"kind":"summary","t_ms":6000}"#,
        ])
        .unwrap();
        assert_eq!(r.frames.len(), 2);
        assert_eq!(r.frames[1].0, Duration::from_secs(5));
        let first = &r.frames[0].1;
        assert_eq!(first.devices[0].device.name.as_deref(), Some("GPU Zero"));
        assert_eq!(first.devices[0].device.total_bytes, Some(80 * GIB));
        // Watch records no device figure: unknown, not 0.
        assert_eq!(first.devices[0].device.used_bytes, None);
        let rows: Vec<_> = first.processes().map(|p| (p.pid, p.used_bytes)).collect();
        assert_eq!(rows, [(7, Some(GIB))]);
        assert!(first.scanned_processes());
    }

    #[test]
    fn a_top_recording_carries_the_last_process_scan_over_to_frames_without_one() {
        let r = recording(&[
            START,
            r#"{"kind":"device","t_ms":0,"index":0,"name":"GPU Zero","vendor":"nvidia","source":"nvml","total_bytes":100,"free_bytes":60,"used_bytes":40,"reserved_bytes":null,"system_total_bytes":null,"system_used_bytes":null,"unified_memory":false}"#,
            r#"{"kind":"host","t_ms":0,"total_bytes":1000,"available_bytes":400,"swap_total_bytes":null,"swap_free_bytes":null}"#,
            r#"{"kind":"sample","t_ms":0,"pid":7,"device":0,"presence":"listed","used_bytes":40,"user":"ada"}"#,
            r#"{"kind":"device","t_ms":1000,"index":0,"source":"nvml","used_bytes":50}"#,
            r#"{"kind":"telemetry","t_ms":1000,"index":0,"source":"nvml","gpu_utilization_percent":93.0,"temperature_celsius":61.0}"#,
        ])
        .unwrap();
        assert_eq!(r.frames.len(), 2);
        let second = &r.frames[1].1;
        assert_eq!(second.devices[0].device.used_bytes, Some(50));
        assert_eq!(second.devices[0].device.name.as_deref(), Some("GPU Zero"));
        assert_eq!(
            second.devices[0]
                .telemetry
                .as_ref()
                .and_then(|t| t.gpu_utilization_percent),
            Some(93.0)
        );
        assert_eq!(
            second.host.as_ref().and_then(|h| h.available_bytes),
            Some(400)
        );
        assert!(!second.scanned_processes());
        assert_eq!(
            second.processes().next().and_then(|p| p.user.as_deref()),
            Some("ada")
        );
        assert_eq!(r.process_every, 2);
    }

    #[test]
    fn a_malformed_line_is_named_with_what_was_wrong() {
        let err = recording(&[START, "{not json"]).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.what.contains("not a JSON record"), "{err}");

        let err = recording(&[
            START,
            r#"{"kind":"sample","t_ms":0,"pid":7,"device":0,"presence":"listed","used_bytes":"lots"}"#,
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2: \"used_bytes\" is not a byte count: \"lots\""
        );

        let err = recording(&[r#"{"kind":"sample","t_ms":0}"#]).unwrap_err();
        assert_eq!(err.line, 1);
        assert!(
            err.what.contains("first record must be the \"start\""),
            "{err}"
        );

        let err = recording(&[START, r#"{"t_ms":0}"#]).unwrap_err();
        assert!(err.what.contains("no \"kind\""), "{err}");

        let err = recording(&[]).unwrap_err();
        assert!(err.what.contains("empty"), "{err}");

        let err = recording(&[START]).unwrap_err();
        assert!(err.what.contains("no samples"), "{err}");

        let err = recording(&[
            START,
            r#"{"kind":"device","t_ms":1000,"index":0}"#,
            r#"{"kind":"device","t_ms":0,"index":0}"#,
        ])
        .unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.what.contains("back in time"), "{err}");
    }

    #[test]
    fn a_replay_shows_each_frame_when_its_time_comes_then_stays_on_the_last() {
        let r = recording(&[
            START,
            r#"{"kind":"device","t_ms":0,"index":0,"used_bytes":1}"#,
            r#"{"kind":"device","t_ms":2000,"index":0,"used_bytes":2}"#,
        ])
        .unwrap();
        let mut replay = Replay::new(r, 2.0, "rec".into());
        let t0 = Instant::now();
        let (first, _) = replay.poll(t0).unwrap();
        assert_eq!(first.devices[0].device.used_bytes, Some(1));
        assert!(replay.poll(t0 + Duration::from_millis(500)).is_none());
        // Twice real time: the frame at 2 s comes after 1 s.
        assert_eq!(
            replay.wait(t0 + Duration::from_millis(500)),
            Duration::from_millis(500)
        );
        let (second, _) = replay.poll(t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(second.devices[0].device.used_bytes, Some(2));
        assert!(replay.poll(t0 + Duration::from_secs(60)).is_none());
        assert!(replay.status().contains("the end"), "{}", replay.status());
        assert!(replay.history.newest().is_some());
    }

    #[test]
    fn what_r_records_plays_back_as_the_frames_it_recorded() {
        use super::super::recording::Lines;
        let base = Instant::now();
        let mut lines = Lines::new(Duration::from_secs(1));
        let mut text = String::new();
        for (secs, used, scan) in [(0, GIB, true), (1, 2 * GIB, false), (3, 3 * GIB, true)] {
            let frame = super::super::recording::tests::frame_at(base, secs, used, scan);
            for l in lines.frame(&frame) {
                text.push_str(&l);
                text.push('\n');
            }
        }
        let r = parse_recording(&text, Instant::now()).unwrap();
        let used: Vec<_> = r
            .frames
            .iter()
            .map(|(_, f)| f.devices[0].device.used_bytes)
            .collect();
        assert_eq!(used, [Some(GIB), Some(2 * GIB), Some(3 * GIB)]);
        let last = &r.frames[2].1;
        let row = last.processes().next().unwrap();
        assert_eq!((row.pid, row.used_bytes), (4242, Some(3 * GIB)));
        assert_eq!(row.user.as_deref(), Some("ada"));
        assert_eq!(last.host.as_ref().map(|h| h.total_bytes), Some(64 * GIB));
    }
}

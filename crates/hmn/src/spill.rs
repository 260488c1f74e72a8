//! Spill episodes for `hmn run` and `hmn watch`: one [`hypomnesis::SpillTracker`] per GPU,
//! read over the run, folded into the report's `spill` object and its text lines.
//!
//! Only Windows can measure spill (the `\GPU Adapter Memory` performance counters, see
//! `hypomnesis::spill`): a device is spilling when its dedicated use is ≥ 85 % of its memory
//! and its shared use has grown ≥ 256 MiB over the first reading. Elsewhere — and on a Windows
//! without the counters (before 10 1709, Wine) — each device says why it cannot be measured,
//! never "no spill".
//!
//! A tracker keeps a PDH query open, so it is not `Send` on Windows: `hmn run` builds and reads
//! its trackers on a thread of their own ([`Watcher`]) and gets plain figures back when CMD
//! ends; `hmn watch` keeps its one tracker on its main loop.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hypomnesis::spill::DEFAULT_SHARED_GROWTH_BYTES;
use hypomnesis::{Probe, SpillTracker};
use serde::Serialize;

use crate::size::format_size;

/// The shortest interval between two readings: the counters move no faster, and `hmn run`'s
/// default 50 ms would only add cost (the original crate's `hmn spill` read every 100 ms).
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// How long `hmn run` waits for the baseline readings before starting CMD anyway.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The reason when the platform itself cannot measure spill.
const NOT_ON_THIS_PLATFORM: &str = "not measurable on this platform";

/// One device in the report (`docs/json.md`, `spill.devices[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpillDevice {
    pub index: u32,
    /// Whether the device's spill could be read here.
    pub measurable: bool,
    /// Why not, or why no reading succeeded; `None` when it was read.
    pub reason: Option<String>,
    /// Whether any reading spilled; `None` when none was taken.
    pub spilled: Option<bool>,
    /// Separate runs of spilling readings; `None` when none was taken.
    pub episodes: Option<u64>,
    /// Readings taken.
    pub observations: u64,
    /// When the first spilling reading was taken, after the start.
    pub first_spill_at_ms: Option<u64>,
    pub peak_dedicated_bytes: Option<u64>,
    pub dedicated_limit_bytes: Option<u64>,
    pub peak_shared_bytes: Option<u64>,
    /// Shared use at the first reading: the baseline growth is measured from.
    pub baseline_shared_bytes: Option<u64>,
}

impl SpillDevice {
    fn unmeasured(index: u32, reason: String) -> Self {
        Self {
            index,
            measurable: false,
            reason: Some(reason),
            spilled: None,
            episodes: None,
            observations: 0,
            first_spill_at_ms: None,
            peak_dedicated_bytes: None,
            dedicated_limit_bytes: None,
            peak_shared_bytes: None,
            baseline_shared_bytes: None,
        }
    }
}

/// The `spill` object of `hmn run`'s report and of `hmn watch`'s summary (`docs/json.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpillReport {
    /// Whether spill could be read on at least one device.
    pub measurable: bool,
    /// Why it could not be read on any; `None` when it was.
    pub reason: Option<String>,
    /// Whether any device spilled; `None` when no reading was taken.
    pub spilled: Option<bool>,
    /// Time between two readings; `None` when none was taken.
    pub interval_ms: Option<u64>,
    pub devices: Vec<SpillDevice>,
}

impl SpillReport {
    /// The report over `devices`. `platform` says whether this build can measure spill at
    /// all ([`hypomnesis::is_spill_measurable`]).
    pub fn build(devices: Vec<SpillDevice>, interval: Duration, platform: bool) -> Self {
        let measurable = devices.iter().any(|d| d.measurable);
        let reason = if measurable {
            None
        } else if !platform {
            Some(NOT_ON_THIS_PLATFORM.to_owned())
        } else {
            let mut reasons = devices.iter().filter_map(|d| d.reason.as_deref());
            Some(match reasons.next() {
                None => "not measured: no GPU was sampled".to_owned(),
                Some(first) if reasons.all(|r| r == first) => format!("not measurable: {first}"),
                Some(_) => "not measurable on any sampled GPU".to_owned(),
            })
        };
        let spilled = devices
            .iter()
            .filter_map(|d| d.spilled)
            .reduce(|a, b| a || b);
        let millis = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        Self {
            measurable,
            reason,
            spilled,
            interval_ms: devices.iter().any(|d| d.observations > 0).then_some(millis),
            devices,
        }
    }

    /// Whether the report is one line: nothing could be measured, for one reason.
    fn is_one_line(&self) -> bool {
        !self.measurable && {
            let mut reasons = self.devices.iter().map(|d| d.reason.as_deref());
            let first = reasons.next();
            reasons.all(|r| Some(r) == first)
        }
    }

    /// `hmn run`'s lines (without the leading tab): `Spill: not measurable on this platform`,
    /// or one line per device.
    pub fn run_lines(&self, label: impl Fn(u32) -> String) -> Vec<String> {
        if self.is_one_line() {
            return vec![format!("Spill: {}", self.reason())];
        }
        let every = self
            .interval_ms
            .map(|ms| format!(" (read every {})", crate::time::seconds(ms)))
            .unwrap_or_default();
        self.devices
            .iter()
            .map(|d| {
                let every = if d.observations > 0 {
                    every.as_str()
                } else {
                    ""
                };
                format!("Spill, {}{every}: {}", label(d.index), device_text(d))
            })
            .collect()
    }

    /// `hmn watch`'s phrase: `spill not measurable on this platform`, or the device's verdict.
    pub fn watch_phrase(&self) -> String {
        if self.is_one_line() {
            return format!("spill {}", self.reason());
        }
        self.devices
            .iter()
            .map(|d| format!("spill on device {}: {}", d.index, device_text(d)))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn reason(&self) -> &str {
        self.reason.as_deref().unwrap_or("not measured")
    }
}

/// One device's verdict: `no spill observed; peak dedicated …`, `spilled, 2 episodes, …`,
/// `not measurable: …`.
fn device_text(d: &SpillDevice) -> String {
    if !d.measurable {
        return format!(
            "not measurable: {}",
            d.reason.as_deref().unwrap_or("unknown")
        );
    }
    if d.observations == 0 {
        return d
            .reason
            .clone()
            .unwrap_or_else(|| "no reading succeeded".to_owned());
    }
    let verdict = match (d.spilled, d.episodes) {
        (Some(true), Some(n)) => {
            let noun = if n == 1 { "episode" } else { "episodes" };
            let first = d
                .first_spill_at_ms
                .map(|ms| format!(", the first at +{}", crate::time::seconds(ms)))
                .unwrap_or_default();
            format!("spilled, {n} {noun}{first}")
        }
        _ => "no spill observed".to_owned(),
    };
    let size = |b: Option<u64>| b.map_or_else(|| "n/a".to_owned(), format_size);
    let limit = d
        .dedicated_limit_bytes
        .map(|l| format!(" of {}", format_size(l)))
        .unwrap_or_default();
    format!(
        "{verdict}; peak dedicated {}{limit}, peak shared {} (baseline {})",
        size(d.peak_dedicated_bytes),
        size(d.peak_shared_bytes),
        size(d.baseline_shared_bytes)
    )
}

/// The SPILL cell of `hmn ps` and `hmn watch`: `PAGED` (the device spills and this process
/// holds ≥ 256 MiB of shared memory), `device` (it spills, through others), `no`, `?` (could
/// not tell), or `n/a` where the platform cannot measure spill at all.
pub fn cell(spilling: Option<bool>, paged: Option<bool>, platform: bool) -> &'static str {
    if !platform {
        return "n/a";
    }
    match (spilling, paged) {
        (Some(true), Some(true)) => "PAGED",
        (Some(true), _) => "device",
        (Some(false), _) => "no",
        (None, _) => "?",
    }
}

/// Whether a process holding `shared` bytes of shared GPU memory is paged out on a device
/// whose spill verdict is `spilling`.
pub fn paged(spilling: Option<bool>, shared: Option<u64>) -> Option<bool> {
    match spilling {
        Some(true) => shared.map(|s| s >= DEFAULT_SHARED_GROWTH_BYTES),
        Some(false) => Some(false),
        None => None,
    }
}

/// One device's tracker, and when it first spilled.
#[derive(Debug)]
pub struct DeviceSpill {
    index: u32,
    tracker: Result<SpillTracker, String>,
    first_spill_at: Option<Duration>,
}

impl DeviceSpill {
    /// A tracker for device `index`; one that cannot be built is kept with its error.
    pub fn new(probe: &Probe, index: u32) -> Self {
        Self::from_tracker(
            index,
            SpillTracker::new(probe, index).map_err(|e| e.to_string()),
        )
    }

    fn from_tracker(index: u32, tracker: Result<SpillTracker, String>) -> Self {
        Self {
            index,
            tracker,
            first_spill_at: None,
        }
    }

    pub fn is_measurable(&self) -> bool {
        self.tracker.as_ref().is_ok_and(SpillTracker::is_measurable)
    }

    /// One reading, taken `at` after the start: whether it spills; `None` when no reading
    /// could be taken.
    pub fn observe(&mut self, at: Duration) -> Option<bool> {
        let verdict = self.tracker.as_mut().ok().and_then(SpillTracker::observe);
        self.note(verdict, at)
    }

    fn note(&mut self, verdict: Option<bool>, at: Duration) -> Option<bool> {
        if verdict == Some(true) && self.first_spill_at.is_none() {
            self.first_spill_at = Some(at);
        }
        verdict
    }

    pub fn report(&self) -> SpillDevice {
        let tracker = match &self.tracker {
            Ok(t) if t.is_measurable() => t,
            Ok(t) => {
                let why = t.unmeasurable_reason().unwrap_or("unknown");
                return SpillDevice::unmeasured(self.index, why.to_owned());
            }
            Err(e) => return SpillDevice::unmeasured(self.index, e.clone()),
        };
        let observations = u64::try_from(tracker.observations()).unwrap_or(u64::MAX);
        let read = observations > 0;
        SpillDevice {
            index: self.index,
            measurable: true,
            reason: (!read).then(|| "no reading of the GPU counters succeeded".to_owned()),
            spilled: read.then(|| tracker.has_spilled()),
            episodes: read.then(|| u64::try_from(tracker.episodes()).unwrap_or(u64::MAX)),
            observations,
            first_spill_at_ms: self
                .first_spill_at
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            peak_dedicated_bytes: read.then(|| tracker.peak_dedicated_bytes()),
            dedicated_limit_bytes: Some(tracker.dedicated_limit_bytes()).filter(|&l| l > 0),
            peak_shared_bytes: read.then(|| tracker.peak_shared_bytes()),
            baseline_shared_bytes: tracker.baseline_shared_bytes(),
        }
    }
}

/// `hmn run`'s trackers, read every interval on a thread of their own while CMD runs.
#[derive(Debug)]
pub struct Watcher {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<Vec<SpillDevice>>>,
    devices: Vec<u32>,
    /// The figures, when no thread was needed (nothing to read) or none could start.
    done: Option<Vec<SpillDevice>>,
    pub interval: Duration,
}

impl Watcher {
    /// Builds a tracker per device and takes each one's first reading (the baseline) before
    /// returning (waiting at most two seconds), so that it precedes CMD; then reads them every
    /// `interval` (at least [`MIN_INTERVAL`]) until [`Watcher::stop`].
    pub fn start(probe: &Arc<Probe>, devices: &[u32], interval: Duration) -> Self {
        let interval = interval.max(MIN_INTERVAL);
        let devices = devices.to_vec();
        if !hypomnesis::is_spill_measurable() {
            let done = devices
                .iter()
                .map(|&i| DeviceSpill::new(probe, i).report())
                .collect();
            return Self::finished(devices, done, interval);
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let (ready, is_ready) = mpsc::channel::<()>();
        let probe = Arc::clone(probe);
        let indices = devices.clone();
        let spawned = std::thread::Builder::new()
            .name("hmn-spill".to_owned())
            .spawn(move || {
                let started = Instant::now();
                let mut spills: Vec<DeviceSpill> = indices
                    .iter()
                    .map(|&i| DeviceSpill::new(&probe, i))
                    .collect();
                let measurable = spills.iter().any(DeviceSpill::is_measurable);
                for s in &mut spills {
                    s.observe(started.elapsed());
                }
                let _ = ready.send(());
                if measurable {
                    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                        for s in &mut spills {
                            s.observe(started.elapsed());
                        }
                    }
                    // The end of the run, read once more.
                    for s in &mut spills {
                        s.observe(started.elapsed());
                    }
                }
                spills.iter().map(DeviceSpill::report).collect()
            });
        match spawned {
            Ok(thread) => {
                // A driver that hangs must not hold CMD back for long.
                let _ = is_ready.recv_timeout(READY_TIMEOUT);
                Self {
                    stop: Some(stop),
                    thread: Some(thread),
                    devices,
                    done: None,
                    interval,
                }
            }
            Err(e) => {
                let done = devices
                    .iter()
                    .map(|&i| SpillDevice::unmeasured(i, format!("no thread could read it ({e})")))
                    .collect();
                Self::finished(devices, done, interval)
            }
        }
    }

    const fn finished(devices: Vec<u32>, done: Vec<SpillDevice>, interval: Duration) -> Self {
        Self {
            stop: None,
            thread: None,
            devices,
            done: Some(done),
            interval,
        }
    }

    /// Takes a last reading, stops the thread and returns the report.
    pub fn stop(mut self) -> SpillReport {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let devices = match (self.done.take(), self.thread.take()) {
            (Some(done), _) => done,
            (None, Some(thread)) => thread.join().unwrap_or_else(|_| {
                self.devices
                    .iter()
                    .map(|&i| SpillDevice::unmeasured(i, "the spill thread failed".to_owned()))
                    .collect()
            }),
            (None, None) => Vec::new(),
        };
        SpillReport::build(devices, self.interval, hypomnesis::is_spill_measurable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypomnesis::SpillSample;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    /// A device fed `readings` (dedicated, shared) of a 16 GiB card, one per second.
    fn replayed(index: u32, readings: &[(u64, u64)]) -> DeviceSpill {
        let mut spill = DeviceSpill::from_tracker(index, Ok(SpillTracker::replay(index)));
        for (k, &(dedicated, shared)) in readings.iter().enumerate() {
            let tracker = spill.tracker.as_mut().unwrap();
            let verdict = tracker.observe_sample(SpillSample::new(dedicated, 16 * GIB, shared));
            spill.note(Some(verdict), Duration::from_secs(k as u64));
        }
        spill
    }

    /// Idle, load, full, spill, spill, back off, spill again, done: two episodes.
    const TWO_EPISODES: [(u64, u64); 8] = [
        (GIB, 160 * MIB),
        (9 * GIB, 170 * MIB),
        (15 * GIB, 200 * MIB),
        (15 * GIB, 900 * MIB),
        (15 * GIB, 2 * GIB),
        (14 * GIB, 300 * MIB),
        (15 * GIB, 1200 * MIB),
        (2 * GIB, 180 * MIB),
    ];

    #[test]
    fn a_replayed_run_reports_its_episodes_peaks_baseline_and_first_spill() {
        let d = replayed(0, &TWO_EPISODES).report();
        assert_eq!(
            d,
            SpillDevice {
                index: 0,
                measurable: true,
                reason: None,
                spilled: Some(true),
                episodes: Some(2),
                observations: 8,
                first_spill_at_ms: Some(3000),
                peak_dedicated_bytes: Some(15 * GIB),
                dedicated_limit_bytes: Some(16 * GIB),
                peak_shared_bytes: Some(2 * GIB),
                baseline_shared_bytes: Some(160 * MIB),
            }
        );
    }

    #[test]
    fn a_full_card_without_shared_growth_is_measured_as_no_spill() {
        let d = replayed(1, &[(GIB, 160 * MIB), (15 * GIB, 300 * MIB)]).report();
        assert_eq!(d.spilled, Some(false));
        assert_eq!(d.episodes, Some(0));
        assert_eq!(d.first_spill_at_ms, None);
        let report = SpillReport::build(vec![d], Duration::from_millis(100), true);
        assert!(report.measurable);
        assert_eq!(report.reason, None);
        assert_eq!(report.spilled, Some(false));
        assert_eq!(report.interval_ms, Some(100));
        assert_eq!(
            report.run_lines(|i| format!("GPU {i}")),
            [
                "Spill, GPU 1 (read every 100 ms): no spill observed; peak dedicated 15.0 GiB \
                 of 16.0 GiB, peak shared 300 MiB (baseline 160 MiB)"
            ]
        );
    }

    #[test]
    fn a_measurable_device_without_readings_is_not_a_no() {
        let d = replayed(0, &[]).report();
        assert!(d.measurable);
        assert_eq!((d.spilled, d.episodes, d.observations), (None, None, 0));
        assert!(d.reason.is_some());
        let report = SpillReport::build(vec![d], Duration::from_millis(100), true);
        assert_eq!(report.spilled, None);
        assert_eq!(report.interval_ms, None);
        assert_eq!(
            report.run_lines(|i| format!("GPU {i}")),
            ["Spill, GPU 0: no reading of the GPU counters succeeded"]
        );
    }

    #[test]
    fn any_spilling_device_makes_the_run_spilled_and_each_device_gets_a_line() {
        let calm = replayed(0, &[(GIB, 160 * MIB), (2 * GIB, 170 * MIB)]).report();
        let spilling = replayed(1, &TWO_EPISODES).report();
        let blind = SpillDevice::unmeasured(2, "no DXGI adapter matches device 2".to_owned());
        let report = SpillReport::build(
            vec![calm, spilling, blind],
            Duration::from_millis(250),
            true,
        );
        assert!(report.measurable);
        assert_eq!(report.spilled, Some(true));
        let lines = report.run_lines(|i| format!("GPU {i} [card {i}]"));
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("Spill, GPU 0 [card 0] (read every 250 ms): no spill observed"),
            "{lines:?}"
        );
        assert_eq!(
            lines[1],
            "Spill, GPU 1 [card 1] (read every 250 ms): spilled, 2 episodes, the first at \
             +3.00 s; peak dedicated 15.0 GiB of 16.0 GiB, peak shared 2.0 GiB (baseline 160 MiB)"
        );
        assert_eq!(
            lines[2],
            "Spill, GPU 2 [card 2]: not measurable: no DXGI adapter matches device 2"
        );
        assert_eq!(
            report.watch_phrase().split("; spill on").count(),
            3,
            "{}",
            report.watch_phrase()
        );
    }

    #[test]
    fn off_windows_spill_is_one_line_saying_it_is_not_measurable() {
        let probe = Probe::builder()
            .use_nvml(false)
            .use_nvidia_smi(false)
            .build();
        let devices: Vec<SpillDevice> = [0, 1]
            .iter()
            .map(|&i| DeviceSpill::new(&probe, i).report())
            .collect();
        if hypomnesis::is_spill_measurable() {
            return;
        }
        assert!(devices.iter().all(|d| !d.measurable && d.reason.is_some()));
        let report = SpillReport::build(devices, Duration::from_millis(50), false);
        assert_eq!(
            (report.measurable, report.spilled, report.interval_ms),
            (false, None, None)
        );
        assert_eq!(
            report.reason.as_deref(),
            Some("not measurable on this platform")
        );
        assert_eq!(
            report.run_lines(|i| format!("GPU {i}")),
            ["Spill: not measurable on this platform"]
        );
        assert_eq!(
            report.watch_phrase(),
            "spill not measurable on this platform"
        );
        let none = SpillReport::build(Vec::new(), Duration::from_millis(50), false);
        assert_eq!(
            none.run_lines(|i| format!("GPU {i}")),
            ["Spill: not measurable on this platform"]
        );
    }

    #[test]
    fn without_gpu_counters_windows_says_why_on_one_line() {
        // What Wine gives: every device fails to open the adapter counters alike.
        let why = "no GPU source available: PDH: PdhAddCounterW failed: PDH_CSTATUS_NO_OBJECT";
        let devices = vec![
            SpillDevice::unmeasured(0, why.to_owned()),
            SpillDevice::unmeasured(1, why.to_owned()),
        ];
        let report = SpillReport::build(devices, Duration::from_millis(100), true);
        assert_eq!(report.spilled, None);
        assert_eq!(
            report.run_lines(|i| format!("GPU {i}")),
            [format!("Spill: not measurable: {why}")]
        );
        let none = SpillReport::build(Vec::new(), Duration::from_millis(100), true);
        assert_eq!(
            none.reason.as_deref(),
            Some("not measured: no GPU was sampled")
        );
        let mixed = SpillReport::build(
            vec![
                SpillDevice::unmeasured(0, "a".to_owned()),
                SpillDevice::unmeasured(1, "b".to_owned()),
            ],
            Duration::from_millis(100),
            true,
        );
        assert_eq!(
            mixed.reason.as_deref(),
            Some("not measurable on any sampled GPU")
        );
        assert_eq!(mixed.run_lines(|i| format!("GPU {i}")).len(), 2);
    }

    #[test]
    fn cells_and_paging_follow_the_spill_verdict() {
        assert_eq!(cell(None, None, false), "n/a");
        assert_eq!(cell(Some(true), Some(true), false), "n/a");
        assert_eq!(cell(Some(true), Some(true), true), "PAGED");
        assert_eq!(cell(Some(true), None, true), "device");
        assert_eq!(cell(Some(false), Some(false), true), "no");
        assert_eq!(cell(None, None, true), "?");
        assert_eq!(paged(Some(true), Some(256 * MIB)), Some(true));
        assert_eq!(paged(Some(true), Some(100 * MIB)), Some(false));
        assert_eq!(paged(Some(true), None), None);
        assert_eq!(paged(Some(false), None), Some(false));
        assert_eq!(paged(None, Some(GIB)), None);
    }

    #[test]
    fn a_watcher_off_windows_reports_without_a_thread() {
        if hypomnesis::is_spill_measurable() {
            return;
        }
        let probe = Arc::new(
            Probe::builder()
                .use_nvml(false)
                .use_nvidia_smi(false)
                .build(),
        );
        let watcher = Watcher::start(&probe, &[0], Duration::from_millis(20));
        assert!(watcher.thread.is_none());
        assert_eq!(watcher.interval, MIN_INTERVAL);
        let report = watcher.stop();
        assert_eq!(report.devices.len(), 1);
        assert!(!report.measurable);
    }
}

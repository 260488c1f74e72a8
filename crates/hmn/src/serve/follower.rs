//! Following the library's monitor, so a scrape never waits on a driver.
//!
//! A driver call can hang (a wedged GPU, an NVML lock held by a dying process, an `nvidia-smi`
//! stuck in D state). If scrapes queried the driver, a hang would turn into a hung endpoint,
//! Prometheus would mark the target down, and the host and process figures would vanish with
//! it. Instead a [`hypomnesis::Monitor`] takes a frame of the machine every `--interval` on its
//! own thread, the one every other view reads too, and one more thread here, the *follower*,
//! waits for each new frame:
//!
//! - it encodes the frame once, in both formats, and publishes the encoding for scrapes to
//!   copy (a scrape adds only the health families, which change with every scrape);
//! - it counts what the frame could not read as sampling errors, by backend, and logs them;
//! - every interval without a new frame while the monitor is still reading one begun more
//!   than an interval ago is a missed tick, counted as a sampling error against the backend
//!   the monitor is most likely waiting on, and the sample's age keeps growing: a hang shows
//!   up as `hypomnesis_sample_age_seconds` rising and `hypomnesis_sample_errors_total`
//!   counting, while `/metrics` keeps answering with the last good figures.
//!
//! The follower, not the scrape handler, does this because errors must be counted for every
//! frame, not only for those a scrape happens to see, and a hang must be logged even when no
//! one scrapes.
//!
//! A failure that lasts must not flood the log (a hung driver fails every pass, and its error
//! text carries the time it has been stuck, so no two lines are alike): each failing part of the
//! frame, and a hang, is logged when it begins, reminded after 10 s, 30 s, 1 min and 5 min and
//! then every 5 min while it lasts ([`Ongoing`]), and logged once when it ends.
//!
//! Tests feed [`Shared::observe`] frames built by hand; the whole loop runs on a real monitor
//! below (a fixture `/proc`, no GPU) and against the NVML double in `tests/serve*.rs`.

use std::collections::HashMap;
use std::mem::{Discriminant, discriminant};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use hypomnesis::{Frame, HypomnesisError, Monitor, Probe};

use super::attribution::Attribution;
use super::metrics::{Exposition, Format, Health, Sample, View, encode_labelled, render};

/// What to export and how often frames come.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub interval: Duration,
    /// What each exposition shows (`--no-processes`, `--device`).
    pub view: View,
}

/// Where log lines go (`hmn: ` is prefixed by the logger).
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// A published sample: its encoding and when its frame arrived.
#[derive(Debug, Default)]
struct Published {
    exposition: Exposition,
    arrived: Option<Instant>,
}

/// The state scrapes read and the follower writes.
pub struct Shared {
    started: Instant,
    published: RwLock<Arc<Published>>,
    /// The scrape-time families; owns the sampling error counter.
    health: Health,
    /// While frames are overdue: the backend blamed and the log schedule of the hang.
    stall: Mutex<Option<Stall>>,
    /// The parts of a frame that are failing (`"GPU devices"`, `"processes on GPU 0"`), so a
    /// lasting failure is logged when it begins, reminded with backoff and logged when it ends.
    failing: Mutex<HashMap<String, Failing>>,
    log: Log,
    /// Pod and job labels for each frame's series.
    attribution: Attribution,
}

/// Frames have stopped coming.
#[derive(Debug, Clone, Copy)]
struct Stall {
    backend: &'static str,
    /// When the monitor began reading the frame it is stuck in.
    since: Instant,
    /// The missed ticks and when the next reminder is due.
    ongoing: Ongoing,
}

/// A part of the frame that fails in every frame.
#[derive(Debug)]
struct Failing {
    /// What failed: the backend and the kind of error. Another backend or kind is a new
    /// failure, logged as such; the same kind with other text (a hang's growing duration) is not.
    kind: (&'static str, Discriminant<HypomnesisError>),
    ongoing: Ongoing,
}

/// A condition that lasts, and when it is next worth a log line: reminders after 10 s, 30 s,
/// 1 min, 5 min, then every 5 min. Counts the occurrences (failed frames, missed ticks) since.
#[derive(Debug, Clone, Copy)]
struct Ongoing {
    since: Instant,
    occurrences: u64,
    reminders: u32,
}

impl Ongoing {
    fn new(now: Instant) -> Self {
        Self {
            since: now,
            occurrences: 1,
            reminders: 0,
        }
    }

    /// How long after the start reminder number `n` (from 0) is due.
    fn reminder_after(n: u32) -> Duration {
        match n {
            0 => Duration::from_secs(10),
            1 => Duration::from_secs(30),
            2 => Duration::from_secs(60),
            n => Duration::from_secs(300) * (n - 2),
        }
    }

    /// Counts one more occurrence at `now`; `true` when a reminder is due (it is then taken).
    fn recur(&mut self, now: Instant) -> bool {
        self.occurrences += 1;
        let due = now.saturating_duration_since(self.since) >= Self::reminder_after(self.reminders);
        if due {
            self.reminders += 1;
        }
        due
    }
}

/// A duration for a log line: seconds with one decimal below a minute, else whole minutes and
/// seconds.
fn lasted(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        let whole = d.as_secs();
        format!("{} min {} s", whole / 60, whole % 60)
    }
}

/// The GPU layer's error, named by backend when the error names one.
fn gpu_backend(error: &HypomnesisError, guess: &'static str) -> &'static str {
    match error {
        HypomnesisError::Nvml { .. } => "nvml",
        HypomnesisError::NvidiaSmi { .. } => "nvidia-smi",
        HypomnesisError::NoGpuSource { .. } => "gpu",
        _ => guess,
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// The state of an exporter whose monitor samples every `interval`.
    pub fn new(log: Log, interval: Duration) -> Self {
        Self {
            started: Instant::now(),
            published: RwLock::new(Arc::default()),
            health: Health::new(interval),
            stall: Mutex::new(None),
            failing: Mutex::new(HashMap::new()),
            log,
            attribution: Attribution::default(),
        }
    }

    /// Labels every frame's series from `attribution`'s sources.
    #[must_use]
    pub fn with_attribution(mut self, attribution: Attribution) -> Self {
        self.attribution = attribution;
        self
    }

    /// The exposition a scrape answers with, in `format`: the latest published sample plus the
    /// health families as of now. Never waits for a frame.
    pub fn scrape(&self, format: Format) -> String {
        let published = Arc::clone(
            &self
                .published
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let age = published.arrived.unwrap_or(self.started).elapsed();
        render(format, &published.exposition, &self.health, age)
    }

    /// How many sampling errors have been counted for `backend`.
    #[cfg(test)]
    pub fn errors(&self, backend: &'static str) -> u64 {
        self.health.errors().get(backend)
    }

    /// A new frame arrived: ends a stall, counts and logs what the frame could not read (for
    /// the devices `view` shows), and publishes its encoding. `guess` is the backend a hang
    /// will be blamed on, learned from the devices seen; `own_rss` is `hmn serve`'s own
    /// resident memory, read as the frame arrived.
    pub fn observe(
        &self,
        frame: Arc<Frame>,
        own_rss: hypomnesis::Result<u64>,
        view: View,
        guess: &mut &'static str,
    ) {
        let arrived = Instant::now();
        self.resume(arrived);
        match &frame.host_error {
            Some(e) => self.fail("host", "host memory", e),
            None => self.succeed("host memory"),
        }
        let own_rss_bytes = match own_rss {
            Ok(rss) => {
                self.succeed("own RSS");
                Some(rss)
            }
            Err(e) => {
                self.fail("host", "own RSS", &e);
                None
            }
        };
        if let Some(e) = &frame.gpu_error {
            self.fail(gpu_backend(e, guess), "GPU devices", e);
        } else {
            self.succeed("GPU devices");
        }
        if let Some(first) = frame.devices.iter().find(|d| view.shows(d)) {
            *guess = first.device.source.as_str();
        }
        // A listing carried over from an earlier scan was counted with that scan.
        if view.processes && frame.scanned_processes() {
            for device in frame.devices.iter().filter(|d| view.shows(d)) {
                let backend = device.device.source.as_str();
                let what = format!("processes on GPU {}", device.device.index);
                match &device.processes_error {
                    Some(e) => self.fail(gpu_backend(e, backend), &what, e),
                    None => self.succeed(&what),
                }
            }
        }
        let duration = arrived.saturating_duration_since(frame.taken);
        let labelling = self.attribution.labelling(&frame, view);
        let sample = Sample {
            frame,
            own_rss_bytes,
            duration,
        };
        let published = Arc::new(Published {
            exposition: encode_labelled(sample, view, labelling),
            arrived: Some(arrived),
        });
        *self
            .published
            .write()
            .unwrap_or_else(PoisonError::into_inner) = published;
    }

    fn fail(&self, backend: &'static str, what: &str, error: &HypomnesisError) {
        self.health.errors().inc(backend);
        let now = Instant::now();
        let kind = (backend, discriminant(error));
        let mut failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        match failing.get_mut(what) {
            Some(f) if f.kind == kind => {
                if f.ongoing.recur(now) {
                    (self.log)(&format!(
                        "sampling {what} still fails ({backend}) after {}, {} failed passes; \
                         the latest: {error}",
                        lasted(now.saturating_duration_since(f.ongoing.since)),
                        f.ongoing.occurrences
                    ));
                }
            }
            _ => {
                (self.log)(&format!(
                    "sampling {what} failed ({backend}): {error} (counted in \
                     hypomnesis_sample_errors_total; logged again if it changes, as a reminder \
                     after 10 s, 30 s, 1 min, 5 min and every 5 min while it lasts, and when it \
                     recovers)"
                ));
                failing.insert(
                    what.to_owned(),
                    Failing {
                        kind,
                        ongoing: Ongoing::new(now),
                    },
                );
            }
        }
    }

    /// `what` was sampled: if it was failing, say that it recovered.
    fn succeed(&self, what: &str) {
        let mut failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        if failing.is_empty() {
            return;
        }
        if let Some(f) = failing.remove(what) {
            (self.log)(&format!(
                "sampling {what} works again ({}) after {} and {} failed passes",
                f.kind.0,
                lasted(f.ongoing.since.elapsed()),
                f.ongoing.occurrences
            ));
        }
    }

    /// A tick found the monitor still reading a frame, for `waited` so far: one missed tick,
    /// counted as an error against `backend`; the hang is logged when first seen and then as
    /// reminders with backoff.
    pub fn overdue(&self, backend: &'static str, waited: Duration, interval: Duration) {
        let now = Instant::now();
        let mut stall = self.stall.lock().unwrap_or_else(PoisonError::into_inner);
        let line = match stall.as_mut() {
            None => {
                *stall = Some(Stall {
                    backend,
                    since: now.checked_sub(waited).unwrap_or(now),
                    ongoing: Ongoing::new(now),
                });
                Some(format!(
                    "sampling has been waiting on {backend} for {} (interval {:.1} s); /metrics \
                     keeps serving the last sample, and hypomnesis_sample_age_seconds shows its \
                     age",
                    lasted(waited),
                    interval.as_secs_f64()
                ))
            }
            Some(s) => s.ongoing.recur(now).then(|| {
                format!(
                    "sampling still waits on {}, for {} now ({} missed ticks)",
                    s.backend,
                    lasted(waited),
                    s.ongoing.occurrences
                )
            }),
        };
        let blamed = stall.as_ref().map_or(backend, |s| s.backend);
        drop(stall);
        self.health.errors().inc(blamed);
        if let Some(line) = line {
            (self.log)(&line);
        }
    }

    /// A frame arrived at `now`: if frames had stopped, say that they came back.
    fn resume(&self, now: Instant) {
        let ended = self
            .stall
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(stall) = ended {
            (self.log)(&format!(
                "sampling resumed: the pass held up by {} finished after {} ({} missed ticks)",
                stall.backend,
                lasted(now.saturating_duration_since(stall.since)),
                stall.ongoing.occurrences
            ));
        }
    }
}

/// The running follower. Dropping the handle stops it at its next wake (within an interval).
#[derive(Debug)]
pub struct Follower {
    stop: Arc<AtomicBool>,
}

impl Follower {
    /// Follows `monitor`'s frames into `shared`, reading `probe` for `hmn serve`'s own RSS.
    ///
    /// # Errors
    /// When the OS refuses a thread.
    pub fn start(
        monitor: Arc<Monitor>,
        probe: Arc<Probe>,
        config: Config,
        shared: Arc<Shared>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let follower_stop = Arc::clone(&stop);
        thread::Builder::new()
            .name("hmn-follower".into())
            .spawn(move || follow(&monitor, &probe, config, &shared, &follower_stop))?;
        Ok(Self { stop })
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Waits for each new frame and publishes it. Every interval without one, asks the monitor
/// whether it is still reading a frame begun more than an interval ago: that is a missed tick
/// (before `serve` followed the monitor, its own ticker counted a tick that found the previous
/// pass still running).
fn follow(monitor: &Monitor, probe: &Probe, config: Config, shared: &Shared, stop: &AtomicBool) {
    let mut seen = 0;
    let mut guess = "gpu";
    while !stop.load(Ordering::Relaxed) {
        match monitor.wait_newer(seen, config.interval) {
            Some((sequence, frame)) => {
                seen = sequence;
                shared.observe(frame, probe.process_rss(), config.view, &mut guess);
            }
            None => {
                if let Some(waited) = monitor.stalled_for() {
                    shared.overdue(guess, waited, config.interval);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypomnesis::{
        DeviceFrame, FrameRequest, GpuDeviceInfo, GpuProcessEntry, GpuProcessListing,
        GpuQuerySource, GpuVendor, HostMemory,
    };

    fn collecting_log() -> (Log, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        (
            Arc::new(move |l: &str| sink.lock().unwrap().push(l.to_owned())),
            lines,
        )
    }

    fn lost(call: u32) -> HypomnesisError {
        HypomnesisError::Nvml {
            call: "nvmlDeviceGetCount_v2",
            code: Some(15),
            detail: format!("GPU is lost (call {call})"),
        }
    }

    /// GPU 0 (NVML) with one process, GPU 1 (DRM) whose listing failed, and the host.
    fn frame() -> Frame {
        let mut frame = Frame::empty(FrameRequest::DEVICES.with_processes(true, false));
        let mut nvidia = DeviceFrame::new(
            GpuDeviceInfo::builder()
                .index(0)
                .name("Stub GPU")
                .used_bytes(1_234_u64)
                .build(),
        );
        let mut listing = GpuProcessListing::default();
        listing.rows = vec![
            GpuProcessEntry::builder(42)
                .name("stub")
                .used_bytes(1_000_u64)
                .build(),
        ];
        nvidia.processes = Some(listing);
        let mut amd = DeviceFrame::new(
            GpuDeviceInfo::builder()
                .index(1)
                .vendor(GpuVendor::Amd)
                .source(GpuQuerySource::Drm)
                .used_bytes(5_678_u64)
                .build(),
        );
        amd.processes_error = Some(HypomnesisError::Unsupported {
            what: "DRM fdinfo",
            context: "in this test",
        });
        frame.devices = vec![nvidia, amd];
        frame.host = Some(HostMemory::for_test(1 << 30));
        frame
    }

    /// A frame in which no GPU could be read: only the host.
    fn without_gpu(error: HypomnesisError) -> Arc<Frame> {
        let mut frame = frame();
        frame.devices.clear();
        frame.gpu_error = Some(error);
        Arc::new(frame)
    }

    fn observe(shared: &Shared, frame: Arc<Frame>, view: View, guess: &mut &'static str) {
        shared.observe(frame, Ok(1 << 20), view, guess);
    }

    #[test]
    fn a_frame_is_published_for_scrapes_with_its_figures_and_own_rss() {
        let (log, lines) = collecting_log();
        let shared = Shared::new(log, Duration::from_millis(20));
        let mut guess = "gpu";
        observe(&shared, Arc::new(frame()), View::default(), &mut guess);
        let text = shared.scrape(Format::Prometheus);
        assert!(text.contains(
            "hypomnesis_gpu_memory_used_bytes{gpu=\"0\",uuid=\"\",name=\"Stub GPU\",vendor=\"nvidia\"} 1234"
        ), "{text}");
        assert!(text.contains("hypomnesis_gpu_process_memory_bytes{gpu=\"0\",pid=\"42\""));
        assert!(
            text.contains("\nprocess_resident_memory_bytes 1048576\n"),
            "{text}"
        );
        assert!(text.contains("hypomnesis_host_memory_total_bytes 1073741824"));
        // GPU 1's failed listing is counted and said once.
        assert_eq!(shared.errors("drm"), 1);
        assert_eq!(guess, "nvml");
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("sampling processes on GPU 1 failed (drm)"));
    }

    #[test]
    fn failures_of_a_device_not_exported_are_not_counted() {
        let (log, lines) = collecting_log();
        let shared = Shared::new(log, Duration::from_millis(20));
        let mut guess = "gpu";
        let only_gpu_0 = View {
            processes: true,
            device: Some(0),
        };
        observe(&shared, Arc::new(frame()), only_gpu_0, &mut guess);
        assert_eq!(shared.errors("drm"), 0);
        assert!(lines.lock().unwrap().is_empty());
        // Without process metrics no listing failure counts either.
        let no_processes = View {
            processes: false,
            device: None,
        };
        observe(&shared, Arc::new(frame()), no_processes, &mut guess);
        assert_eq!(shared.errors("drm"), 0);
        assert!(
            !shared
                .scrape(Format::Prometheus)
                .contains("hypomnesis_gpu_process")
        );
    }

    /// The monitor's frames between two process scans carry the older scan's listings, and
    /// its failures: those were counted when the scan was new.
    #[test]
    fn a_listing_carried_over_from_an_earlier_scan_is_not_counted_again() {
        let (log, _) = collecting_log();
        let shared = Shared::new(log, Duration::from_millis(20));
        let mut guess = "gpu";
        observe(&shared, Arc::new(frame()), View::default(), &mut guess);
        assert_eq!(shared.errors("drm"), 1);
        let mut carried = frame();
        carried.processes_taken = carried.taken.checked_sub(Duration::from_millis(1));
        assert!(!carried.scanned_processes());
        observe(&shared, Arc::new(carried), View::default(), &mut guess);
        assert_eq!(shared.errors("drm"), 1);
    }

    #[test]
    fn failures_are_counted_per_backend_and_logged_once() {
        let (log, lines) = collecting_log();
        let shared = Shared::new(log, Duration::from_millis(20));
        let mut guess = "gpu";
        for call in 0..3 {
            observe(
                &shared,
                without_gpu(lost(call)),
                View::default(),
                &mut guess,
            );
        }
        assert_eq!(shared.errors("nvml"), 3);
        let text = shared.scrape(Format::Prometheus);
        // Host figures are still published.
        assert!(text.contains("hypomnesis_host_memory_total_bytes 1073741824"));
        assert!(!text.contains("hypomnesis_gpu_memory"));
        let lines = lines.lock().unwrap();
        let failures: Vec<_> = lines.iter().filter(|l| l.contains("GPU is lost")).collect();
        assert_eq!(failures.len(), 1, "{lines:?}");
        assert!(failures[0].starts_with("sampling GPU devices failed (nvml): NVML:"));
    }

    #[test]
    fn a_lasting_failure_whose_text_changes_is_logged_when_it_begins_and_when_it_ends() {
        let (log, lines) = collecting_log();
        let shared = Shared::new(log, Duration::from_millis(20));
        let mut guess = "gpu";
        for call in 0..10 {
            observe(
                &shared,
                without_gpu(lost(call)),
                View::default(),
                &mut guess,
            );
        }
        {
            let lines = lines.lock().unwrap();
            assert_eq!(lines.len(), 1, "{lines:?}");
            assert!(lines[0].contains("GPU is lost (call 0)"), "{lines:?}");
        }
        let only_gpu_0 = View {
            processes: true,
            device: Some(0),
        };
        observe(&shared, Arc::new(frame()), only_gpu_0, &mut guess);
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[1].starts_with("sampling GPU devices works again (nvml) after"),
            "{lines:?}"
        );
    }

    /// The monitor's pass hangs: every overdue tick counts against the backend the devices came
    /// from, scrapes keep answering with the last figures, and the hang is logged when it
    /// begins and when it ends.
    #[test]
    fn a_hang_is_counted_at_every_overdue_tick_and_logged_when_it_begins_and_ends() {
        let (log, lines) = collecting_log();
        let shared = Shared::new(log, Duration::from_millis(20));
        let mut guess = "gpu";
        observe(&shared, Arc::new(frame()), View::default(), &mut guess);
        for waited in 1..=5 {
            shared.overdue(
                guess,
                Duration::from_millis(20 * waited),
                Duration::from_millis(20),
            );
        }
        assert_eq!(shared.errors("nvml"), 5);
        let during = shared.scrape(Format::OpenMetrics);
        assert!(during.contains("hypomnesis_sample_errors_total{backend=\"nvml\"} 5"));
        assert!(during.contains("hypomnesis_gpu_memory_used_bytes{gpu=\"0\""));
        assert!(during.ends_with("# EOF\n"));
        let waiting = |lines: &[String]| {
            lines
                .iter()
                .filter(|l| l.contains("waiting on nvml"))
                .count()
        };
        assert_eq!(waiting(&lines.lock().unwrap()), 1);

        observe(&shared, Arc::new(frame()), View::default(), &mut guess);
        let lines = lines.lock().unwrap();
        assert_eq!(waiting(&lines), 1);
        assert!(
            lines.last().is_some_and(|l| l
                .starts_with("sampling resumed: the pass held up by nvml")
                && l.ends_with("(5 missed ticks)")),
            "{lines:?}"
        );
    }

    /// Polls `done` until it holds; panics after a generous bound (the condition is an event,
    /// not a timing claim).
    #[cfg(target_os = "linux")]
    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < deadline, "gave up waiting for {what}");
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The whole loop on a real monitor: a machine with a fixture `/proc` and no GPU library.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_follower_publishes_the_monitors_frames_and_counts_what_they_could_not_read() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join("meminfo"),
            "MemTotal:       1048576 kB\nMemFree:         1000 kB\nMemAvailable:    524288 kB\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.path().join("self")).unwrap();
        std::fs::write(root.path().join("self/cgroup"), "0::/\n").unwrap();
        std::fs::write(root.path().join("self/statm"), "1000 500 100 10 0 400 0\n").unwrap();
        let probe = Arc::new(
            Probe::builder()
                .proc_root(root.path())
                .sys_root(root.path().join("sys"))
                .nvml_lib("/nonexistent/libnvidia-ml.so.1")
                .use_nvidia_smi(false)
                .build(),
        );
        let config = Config {
            interval: Duration::from_millis(20),
            view: View::default(),
        };
        let monitor = Arc::new(super::super::start_monitor(&probe, &config, false));
        let (log, lines) = collecting_log();
        let shared = Arc::new(Shared::new(log, config.interval));
        let follower =
            Follower::start(Arc::clone(&monitor), probe, config, Arc::clone(&shared)).unwrap();
        wait_for("three frames without a GPU", || shared.errors("gpu") >= 3);
        drop(follower);
        let text = shared.scrape(Format::Prometheus);
        assert!(
            text.contains("\nhypomnesis_host_memory_total_bytes 1073741824\n"),
            "{text}"
        );
        assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
        assert!(!text.contains("{gpu="), "{text}");
        let lines = lines.lock().unwrap();
        assert!(
            lines[0].starts_with("sampling GPU devices failed (gpu): no GPU source available"),
            "{lines:?}"
        );
        assert_eq!(lines.len(), 1, "{lines:?}");
    }

    #[test]
    fn reminders_back_off_to_every_five_minutes() {
        let start = Instant::now();
        let mut ongoing = Ongoing::new(start);
        let mut reminded = Vec::new();
        // One occurrence a second for 20 minutes.
        for s in 1..=1200 {
            if ongoing.recur(start + Duration::from_secs(s)) {
                reminded.push(s);
            }
        }
        assert_eq!(reminded, [10, 30, 60, 300, 600, 900, 1200]);
        assert_eq!(ongoing.occurrences, 1201);
    }

    #[test]
    fn durations_in_log_lines_read_as_seconds_then_minutes() {
        assert_eq!(lasted(Duration::from_millis(2_540)), "2.5 s");
        assert_eq!(lasted(Duration::from_secs(330)), "5 min 30 s");
    }

    #[test]
    fn before_the_first_frame_the_age_counts_from_start() {
        let (log, _) = collecting_log();
        let shared = Shared::new(log, Duration::from_millis(20));
        thread::sleep(Duration::from_millis(20));
        let text = shared.scrape(Format::Prometheus);
        let age: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("hypomnesis_sample_age_seconds "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(age > 0.0, "{text}");
        assert!(text.contains("hypomnesis_build_info{version="));
    }
}

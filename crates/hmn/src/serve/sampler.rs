//! Sampling on its own thread, so a scrape never waits on a driver.
//!
//! A driver call can hang (a wedged GPU, an NVML lock held by a dying process, an `nvidia-smi`
//! stuck in D state). If scrapes queried the driver, a hang would turn into a hung endpoint,
//! Prometheus would mark the target down, and the host and process figures would vanish with
//! it. Instead two threads share the work:
//!
//! - the *worker* runs one sampling pass (host, then devices, then processes) each time it is
//!   told to, encodes the result, and publishes it for scrapes to copy;
//! - the *ticker* tells it to, every `--interval`. When a tick finds the worker still busy with
//!   the previous pass, the tick is skipped and counted as a sampling error against the backend
//!   the worker is waiting on, and the sample's age keeps growing: a hang shows up as
//!   `hypomnesis_sample_age_seconds` rising and `hypomnesis_sample_errors_total` counting, while
//!   `/metrics` keeps answering with the last good figures.
//!
//! A failure that lasts must not flood the log (a hung driver fails every pass, and its error
//! text carries the time it has been stuck, so no two lines are alike): each failing part of the
//! pass, and a pass that stays stuck, is logged when it begins, reminded after 10 s, 30 s, 1 min
//! and 5 min and then every 5 min while it lasts ([`Ongoing`]), and logged once when it ends.
//!
//! The worker's inputs go through [`Source`], so the tests can hang or fail a backend at will.

use std::collections::HashMap;
use std::mem::{Discriminant, discriminant};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use hypomnesis::{
    DeviceFrame, Frame, FrameRequest, GpuDeviceInfo, GpuProcessEntry, GpuProcessListing,
    HostMemory, HypomnesisError, Probe,
};

use super::metrics::{Exposition, Format, Health, Sample, View, encode_sample, render};

/// Where a pass gets its figures: a [`Probe`] in `hmn serve`, a stand-in in tests.
pub trait Source: Send + Sync + 'static {
    fn host(&self) -> hypomnesis::Result<HostMemory>;
    fn own_rss(&self) -> hypomnesis::Result<u64>;
    fn devices(&self) -> hypomnesis::Result<Vec<GpuDeviceInfo>>;
    fn processes(&self, index: u32) -> hypomnesis::Result<Vec<GpuProcessEntry>>;
}

impl Source for Probe {
    fn host(&self) -> hypomnesis::Result<HostMemory> {
        self.host_memory()
    }

    fn own_rss(&self) -> hypomnesis::Result<u64> {
        self.process_rss()
    }

    fn devices(&self) -> hypomnesis::Result<Vec<GpuDeviceInfo>> {
        Probe::devices(self)
    }

    fn processes(&self, index: u32) -> hypomnesis::Result<Vec<GpuProcessEntry>> {
        Probe::processes(self, index)
    }
}

/// What to sample and how often.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub interval: Duration,
    /// Export per-process metrics.
    pub processes: bool,
    /// Only this GPU (`--device`).
    pub device: Option<u32>,
}

/// Where log lines go (`hmn: ` is prefixed by the logger).
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// A published sample: its encoding and when its pass finished.
#[derive(Debug, Default)]
struct Published {
    exposition: Exposition,
    finished: Option<Instant>,
}

/// The state scrapes read and the sampler writes.
pub struct Shared {
    started: Instant,
    published: RwLock<Arc<Published>>,
    /// The scrape-time families; owns the sampling error counter.
    health: Health,
    /// While a pass runs: the backend it is waiting on, when the pass started, and, once a
    /// tick has found it still running, the log schedule of that hang.
    busy: Mutex<Option<Busy>>,
    /// The parts of a pass that are failing (`"GPU devices"`, `"processes on GPU 0"`), so a
    /// lasting failure is logged when it begins, reminded with backoff and logged when it ends.
    failing: Mutex<HashMap<String, Failing>>,
    log: Log,
}

#[derive(Debug, Clone, Copy)]
struct Busy {
    backend: &'static str,
    since: Instant,
    /// Set when a tick has found the pass still running (the hang has been logged).
    stuck: Option<Ongoing>,
}

/// A part of the pass that fails on every pass.
#[derive(Debug)]
struct Failing {
    /// What failed: the backend and the kind of error. Another backend or kind is a new
    /// failure, logged as such; the same kind with other text (a hang's growing duration) is not.
    kind: (&'static str, Discriminant<HypomnesisError>),
    ongoing: Ongoing,
}

/// A condition that lasts, and when it is next worth a log line: reminders after 10 s, 30 s,
/// 1 min, 5 min, then every 5 min. Counts the occurrences (failed passes, missed ticks) since.
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

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub fn new(log: Log) -> Self {
        Self {
            started: Instant::now(),
            published: RwLock::new(Arc::default()),
            health: Health::default(),
            busy: Mutex::new(None),
            failing: Mutex::new(HashMap::new()),
            log,
        }
    }

    /// The exposition a scrape answers with, in `format`: the latest published sample plus the
    /// health families as of now. Never waits for a pass.
    pub fn scrape(&self, format: Format) -> String {
        let published = Arc::clone(
            &self
                .published
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let age = published.finished.unwrap_or(self.started).elapsed();
        render(format, &published.exposition, &self.health, age)
    }

    /// How many sampling errors have been counted for `backend`.
    #[cfg(test)]
    pub fn errors(&self, backend: &'static str) -> u64 {
        self.health.errors().get(backend)
    }

    fn publish(&self, sample: Sample, view: View) {
        let published = Arc::new(Published {
            exposition: encode_sample(sample, view),
            finished: Some(Instant::now()),
        });
        *self
            .published
            .write()
            .unwrap_or_else(PoisonError::into_inner) = published;
    }

    fn set_busy(&self, backend: Option<&'static str>) {
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = *busy;
        *busy = backend.map(|backend| Busy {
            backend,
            since: previous.map_or_else(Instant::now, |b| b.since),
            stuck: previous.and_then(|b| b.stuck),
        });
        drop(busy);
        if let (
            None,
            Some(Busy {
                backend,
                since,
                stuck: Some(stuck),
            }),
        ) = (backend, previous)
        {
            (self.log)(&format!(
                "sampling resumed: the pass held up by {backend} finished after {} ({} missed \
                 ticks)",
                lasted(since.elapsed()),
                stuck.occurrences
            ));
        }
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

    /// A tick arrived: `true` when the worker is free to take it. Otherwise the tick is counted
    /// as an error against the backend the worker waits on, and the hang is logged when first
    /// seen and then as reminders with backoff.
    fn tick(&self, interval: Duration) -> bool {
        let now = Instant::now();
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(b) = busy.as_mut() else {
            return true;
        };
        let backend = b.backend;
        let waited = now.saturating_duration_since(b.since);
        let line = match b.stuck.as_mut() {
            None => {
                b.stuck = Some(Ongoing::new(now));
                Some(format!(
                    "sampling has been waiting on {backend} for {} (interval {:.1} s); /metrics \
                     keeps serving the last sample, and hypomnesis_sample_age_seconds shows its \
                     age",
                    lasted(waited),
                    interval.as_secs_f64()
                ))
            }
            Some(stuck) => stuck.recur(now).then(|| {
                format!(
                    "sampling still waits on {backend}, for {} now ({} missed ticks)",
                    lasted(waited),
                    stuck.occurrences
                )
            }),
        };
        drop(busy);
        self.health.errors().inc(backend);
        if let Some(line) = line {
            (self.log)(&line);
        }
        false
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

/// One pass: host, own RSS, devices, processes. Failures are counted and leave their part
/// empty; `busy` follows the pass so a hang can be blamed on the right backend.
fn sample_once(
    source: &dyn Source,
    config: &Config,
    shared: &Shared,
    guess: &mut &'static str,
) -> Sample {
    let start = Instant::now();
    let mut frame = Frame::empty(FrameRequest::DEVICES.with_processes(config.processes, false));
    let mut own_rss_bytes = None;

    shared.set_busy(Some("host"));
    match source.host() {
        Ok(host) => {
            frame.host = Some(host);
            shared.succeed("host memory");
        }
        Err(e) => shared.fail("host", "host memory", &e),
    }
    match source.own_rss() {
        Ok(rss) => {
            own_rss_bytes = Some(rss);
            shared.succeed("own RSS");
        }
        Err(e) => shared.fail("host", "own RSS", &e),
    }

    shared.set_busy(Some(*guess));
    match source.devices() {
        Ok(mut devices) => {
            if let Some(only) = config.device {
                devices.retain(|d| d.index == only);
            }
            if let Some(first) = devices.first() {
                *guess = first.source.as_str();
            }
            frame.devices = devices.into_iter().map(DeviceFrame::new).collect();
            shared.succeed("GPU devices");
        }
        Err(e) => shared.fail(gpu_backend(&e, guess), "GPU devices", &e),
    }

    if config.processes {
        for device in &mut frame.devices {
            let backend = device.device.source.as_str();
            shared.set_busy(Some(backend));
            let what = format!("processes on GPU {}", device.device.index);
            match source.processes(device.device.index) {
                Ok(rows) => {
                    let mut listing = GpuProcessListing::default();
                    listing.rows = rows;
                    device.processes = Some(listing);
                    shared.succeed(&what);
                }
                Err(e) => shared.fail(gpu_backend(&e, backend), &what, &e),
            }
        }
    }
    Sample {
        frame: Arc::new(frame),
        own_rss_bytes,
        duration: start.elapsed(),
    }
}

/// The running sampler threads. Dropping the handle stops the ticker; the worker ends after
/// its current pass.
#[derive(Debug)]
pub struct Sampler {
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling `source` into `shared`; the first pass starts at once.
    ///
    /// # Errors
    /// When the OS refuses a thread.
    pub fn start(
        source: Arc<dyn Source>,
        config: Config,
        shared: Arc<Shared>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<()>(1);
        let worker_shared = Arc::clone(&shared);
        thread::Builder::new()
            .name("hmn-sampler".into())
            .spawn(move || worker(source.as_ref(), &config, &worker_shared, &rx))?;
        let stop = Arc::new(AtomicBool::new(false));
        let ticker_stop = Arc::clone(&stop);
        let ticker = thread::Builder::new()
            .name("hmn-ticker".into())
            .spawn(move || ticker(&tx, config.interval, &shared, &ticker_stop))?;
        Ok(Self {
            stop,
            ticker: Some(ticker),
        })
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            ticker.thread().unpark();
            let _ = ticker.join();
        }
    }
}

fn worker(source: &dyn Source, config: &Config, shared: &Shared, rx: &Receiver<()>) {
    let mut guess = "gpu";
    while rx.recv().is_ok() {
        let sample = sample_once(source, config, shared, &mut guess);
        shared.publish(
            sample,
            View {
                processes: config.processes,
                device: config.device,
            },
        );
        shared.set_busy(None);
    }
}

fn ticker(tx: &SyncSender<()>, interval: Duration, shared: &Shared, stop: &AtomicBool) {
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now < next {
            thread::park_timeout(next - now);
            continue;
        }
        if shared.tick(interval) {
            match tx.try_send(()) {
                // Full: the worker has a tick queued it has not started yet; nothing to add.
                Ok(()) | Err(TrySendError::Full(())) => {}
                Err(TrySendError::Disconnected(())) => return,
            }
        }
        next += interval;
        if next < now {
            // Behind by more than a whole interval (a suspended machine): restart the beat.
            next = now + interval;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypomnesis::GpuQuerySource;
    use std::sync::mpsc;

    /// A source whose GPU calls block until released, or fail, as the test says.
    struct Stub {
        gate: Mutex<Option<mpsc::Receiver<()>>>,
        entered: Mutex<Option<mpsc::Sender<()>>>,
        fail_devices: AtomicBool,
        /// How many times `devices` has been called: a failure's text carries it, as a hung
        /// driver's carries the time it has been stuck.
        calls: std::sync::atomic::AtomicU64,
    }

    impl Stub {
        /// A source whose device reads always fail, never blocking.
        fn failing() -> Arc<Self> {
            Arc::new(Self {
                gate: Mutex::new(None),
                entered: Mutex::new(None),
                fail_devices: AtomicBool::new(true),
                calls: Default::default(),
            })
        }
    }

    impl Stub {
        fn device() -> GpuDeviceInfo {
            GpuDeviceInfo::builder()
                .index(0)
                .name("Stub GPU")
                .used_bytes(1_234_u64)
                .source(GpuQuerySource::Nvml)
                .build()
        }
    }

    impl Source for Stub {
        fn host(&self) -> hypomnesis::Result<HostMemory> {
            Ok(HostMemory::for_test(1 << 30))
        }
        fn own_rss(&self) -> hypomnesis::Result<u64> {
            Ok(1 << 20)
        }
        fn devices(&self) -> hypomnesis::Result<Vec<GpuDeviceInfo>> {
            // One-shot: only the first call blocks, and no lock is held while it does.
            let entered = self.entered.lock().unwrap().take();
            if let Some(entered) = entered {
                let _ = entered.send(());
            }
            let gate = self.gate.lock().unwrap().take();
            if let Some(gate) = gate {
                let _ = gate.recv();
            }
            let call = self.calls.fetch_add(1, Ordering::Relaxed);
            if self.fail_devices.load(Ordering::Relaxed) {
                return Err(HypomnesisError::Nvml {
                    call: "nvmlDeviceGetCount_v2",
                    code: Some(15),
                    detail: format!("GPU is lost (call {call})"),
                });
            }
            Ok(vec![Self::device()])
        }
        fn processes(&self, _: u32) -> hypomnesis::Result<Vec<GpuProcessEntry>> {
            Ok(vec![
                GpuProcessEntry::builder(42)
                    .name("stub")
                    .used_bytes(1_000_u64)
                    .build(),
            ])
        }
    }

    fn collecting_log() -> (Log, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        (
            Arc::new(move |l: &str| sink.lock().unwrap().push(l.to_owned())),
            lines,
        )
    }

    /// Polls `done` until it holds; panics after a generous bound (the condition is an event,
    /// not a timing claim).
    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < deadline, "gave up waiting for {what}");
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn config() -> Config {
        Config {
            interval: Duration::from_millis(20),
            processes: true,
            device: None,
        }
    }

    #[test]
    fn a_hung_backend_is_stale_and_counted_while_scrapes_keep_answering() {
        let (release, gate) = mpsc::channel();
        let (entered_tx, entered) = mpsc::channel();
        let stub = Arc::new(Stub {
            gate: Mutex::new(Some(gate)),
            entered: Mutex::new(Some(entered_tx)),
            fail_devices: AtomicBool::new(false),
            calls: Default::default(),
        });
        let (log, lines) = collecting_log();
        let shared = Arc::new(Shared::new(log));
        let sampler = Sampler::start(stub.clone(), config(), Arc::clone(&shared)).unwrap();

        entered.recv().unwrap(); // the first pass is now stuck in devices()
        wait_for("missed ticks to be counted", || shared.errors("gpu") >= 3);
        // A scrape answers while the driver call hangs, with no GPU figures yet.
        let during = shared.scrape(Format::OpenMetrics);
        assert!(during.contains("hypomnesis_sample_errors_total{backend=\"gpu\"}"));
        assert!(!during.contains("hypomnesis_gpu_memory_used_bytes{"));
        assert!(during.ends_with("# EOF\n"));
        // The hang is logged once, not at every missed tick.
        let hang_lines = |lines: &[String]| {
            lines
                .iter()
                .filter(|l| l.contains("waiting on gpu"))
                .count()
        };
        assert_eq!(hang_lines(&lines.lock().unwrap()), 1);

        // Released: the pass completes and publishes; the backend is now known as NVML.
        release.send(()).unwrap();
        wait_for("a sample with GPU figures", || {
            shared
                .scrape(Format::Prometheus)
                .contains("hypomnesis_gpu_memory_used_bytes{gpu=\"0\",uuid=\"\",name=\"Stub GPU\",vendor=\"nvidia\"} 1234")
        });
        let after = shared.scrape(Format::Prometheus);
        assert!(after.contains("hypomnesis_gpu_process_memory_bytes{gpu=\"0\",pid=\"42\""));
        drop(sampler);
        assert_eq!(hang_lines(&lines.lock().unwrap()), 1);
    }

    #[test]
    fn failures_are_counted_per_backend_and_logged_once() {
        let stub = Stub::failing();
        let (log, lines) = collecting_log();
        let shared = Arc::new(Shared::new(log));
        let sampler = Sampler::start(stub, config(), Arc::clone(&shared)).unwrap();
        wait_for("three failed passes", || shared.errors("nvml") >= 3);
        drop(sampler);
        let text = shared.scrape(Format::Prometheus);
        // Host figures are still published.
        assert!(text.contains("hypomnesis_host_memory_total_bytes 1073741824"));
        let lines = lines.lock().unwrap();
        let failures: Vec<_> = lines.iter().filter(|l| l.contains("GPU is lost")).collect();
        assert_eq!(failures.len(), 1, "{lines:?}");
        assert!(failures[0].starts_with("sampling GPU devices failed (nvml): NVML:"));
    }

    #[test]
    fn a_lasting_failure_whose_text_changes_is_logged_when_it_begins_and_when_it_ends() {
        let stub = Stub::failing();
        let (log, lines) = collecting_log();
        let shared = Arc::new(Shared::new(log));
        let sampler = Sampler::start(stub.clone(), config(), Arc::clone(&shared)).unwrap();
        wait_for("ten failed passes", || shared.errors("nvml") >= 10);
        {
            let lines = lines.lock().unwrap();
            assert_eq!(lines.len(), 1, "{lines:?}");
            assert!(lines[0].contains("GPU is lost (call 0)"), "{lines:?}");
        }
        stub.fail_devices.store(false, Ordering::Relaxed);
        wait_for("the recovery line", || lines.lock().unwrap().len() >= 2);
        drop(sampler);
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[1].starts_with("sampling GPU devices works again (nvml) after"),
            "{lines:?}"
        );
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
    fn before_the_first_pass_the_age_counts_from_start() {
        let (log, _) = collecting_log();
        let shared = Shared::new(log);
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

    #[test]
    fn device_filter_keeps_one_gpu_and_process_switch_drops_process_families() {
        let stub = Stub {
            gate: Mutex::new(None),
            entered: Mutex::new(None),
            fail_devices: AtomicBool::new(false),
            calls: Default::default(),
        };
        let (log, _) = collecting_log();
        let shared = Shared::new(log);
        let mut guess = "gpu";
        let none = sample_once(
            &stub,
            &Config {
                device: Some(3),
                processes: false,
                ..config()
            },
            &shared,
            &mut guess,
        );
        assert!(none.frame.devices.is_empty());
        assert!(!none.frame.request.processes);
        let one = sample_once(
            &stub,
            &Config {
                device: Some(0),
                ..config()
            },
            &shared,
            &mut guess,
        );
        assert_eq!(one.frame.devices.len(), 1);
        assert_eq!(one.frame.processes().count(), 1);
        assert_eq!(guess, "nvml");
    }
}

//! A machine watched over time: frames refreshed on a thread of their own, with history.
//!
//! Why: a terminal UI, an exporter or a scheduler keeps asking "how is the machine now, and
//! how was it over the last minutes". Reading the GPUs on the caller's thread would freeze its
//! screen or its HTTP answer whenever a driver is slow, and each of them would keep its own
//! history, each downsampling its own way. A [`Monitor`] reads [`Frame`]s on a background
//! thread and keeps per-device and per-process series ([`History`]) that any view can chart
//! at any zoom without losing a peak.
//!
//! How: two cadences, as amdgpu_top does. Device memory and telemetry are read every
//! [`MonitorBuilder::interval`] (default 1 s) — a few driver calls per GPU. The process scan,
//! which names every GPU process and reads its files, runs with every
//! [`MonitorBuilder::process_every`]-th refresh (default 3: every 3 s while refreshes keep
//! time). The frame a caller sees ([`Monitor::latest`]) combines the newest device
//! figures with the newest process listings; [`Frame::processes_taken`] says how old those
//! are. A tick that would fall while the previous frame is still being read is skipped (never
//! caught up in a burst), and shows as a gap in the history.
//!
//! It never blocks its caller: [`Monitor::latest`] copies an `Arc` under a lock held for
//! nothing else, and [`Monitor::stop`] waits a bounded time for the thread, leaving it behind
//! when it is stuck in a driver call that does not return. Build the probe with
//! [`ProbeBuilder::driver_timeout`](crate::ProbeBuilder::driver_timeout) so that a hung
//! driver costs frames only the timeout: they then carry [`Frame::gpu_error`], and the
//! history a gap.

pub mod history;

use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::frame::{Frame, FrameRequest};
use crate::probe::Probe;

pub use history::{
    DEFAULT_BLOCK_TICKS, DEFAULT_LONG_WINDOW, DEFAULT_MAX_PROCESS_SERIES, DeviceMetric, History,
    HistoryLimits, HistoryPoint, ProcessMetric, Unit,
};

/// Default [`MonitorBuilder::interval`]: device memory and telemetry once a second.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// Default [`MonitorBuilder::process_every`]: the process scan with every third refresh.
pub const DEFAULT_PROCESS_EVERY: u32 = 3;
/// Default [`MonitorBuilder::window`]: ten minutes of every reading.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(600);
/// Default [`MonitorBuilder::stop_wait`]: how long [`Monitor::stop`] waits for the thread.
pub const DEFAULT_STOP_WAIT: Duration = Duration::from_secs(2);

/// Settings for a [`Monitor`]; start it with [`MonitorBuilder::start`].
#[derive(Debug, Clone)]
#[must_use]
pub struct MonitorBuilder {
    interval: Duration,
    process_every: u32,
    window: Duration,
    long_window: Duration,
    telemetry: bool,
    process_details: bool,
    max_process_series: usize,
    stop_wait: Duration,
}

impl Default for MonitorBuilder {
    fn default() -> Self {
        Self {
            interval: DEFAULT_INTERVAL,
            process_every: DEFAULT_PROCESS_EVERY,
            window: DEFAULT_WINDOW,
            long_window: DEFAULT_LONG_WINDOW,
            telemetry: true,
            process_details: true,
            max_process_series: DEFAULT_MAX_PROCESS_SERIES,
            stop_wait: DEFAULT_STOP_WAIT,
        }
    }
}

impl MonitorBuilder {
    /// How often device memory and telemetry are read (default [`DEFAULT_INTERVAL`]; at
    /// least 1 ms).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Scan processes with every `ticks`-th refresh (default [`DEFAULT_PROCESS_EVERY`]): the
    /// first frame scans, then every `ticks` intervals while refreshes keep time. 1 scans with
    /// every refresh, 0 never scans.
    pub fn process_every(mut self, ticks: u32) -> Self {
        self.process_every = ticks;
        self
    }

    /// How much history is kept reading by reading (default [`DEFAULT_WINDOW`]).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// How much history is kept in all (default [`DEFAULT_LONG_WINDOW`], an hour): past
    /// [`MonitorBuilder::window`], readings are folded into min/max/last blocks of 10 ticks
    /// (see [`History`]). At most the window: nothing is kept past it.
    pub fn long_window(mut self, long_window: Duration) -> Self {
        self.long_window = long_window;
        self
    }

    /// Whether each tick reads utilization, temperature and power (default on).
    pub fn telemetry(mut self, telemetry: bool) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// Whether process scans read each process's RSS and cgroup (default on).
    pub fn process_details(mut self, details: bool) -> Self {
        self.process_details = details;
        self
    }

    /// At most this many (pid, device) series in the history (default
    /// [`DEFAULT_MAX_PROCESS_SERIES`]).
    pub fn max_process_series(mut self, max: usize) -> Self {
        self.max_process_series = max;
        self
    }

    /// How long [`Monitor::stop`] (and dropping the monitor) waits for the thread to finish
    /// its frame (default [`DEFAULT_STOP_WAIT`]); past it the thread is left behind, stuck in
    /// a driver call.
    pub fn stop_wait(mut self, wait: Duration) -> Self {
        self.stop_wait = wait;
        self
    }

    fn limits(&self) -> HistoryLimits {
        HistoryLimits::new(self.window, self.interval, self.process_every.max(1))
            .with_long_window(self.long_window)
            .with_max_process_series(self.max_process_series)
    }

    /// Starts the thread reading `probe`. The first frame (with a process scan) is read at
    /// once; [`Monitor::wait_newer`] waits for it.
    ///
    /// When the OS refuses a thread, the monitor runs without one: every call answers as for
    /// a monitor that has not read a frame yet, and [`Monitor::thread_error`] says why.
    #[must_use]
    pub fn start(self, probe: Arc<Probe>) -> Monitor {
        let shared = Arc::new(Shared {
            latest: Mutex::new(Latest::default()),
            fresh: Condvar::new(),
            history: Mutex::new(History::new(self.limits())),
            control: Mutex::new(Control::default()),
            wake: Condvar::new(),
            done: Condvar::new(),
        });
        let worker = Worker {
            shared: Arc::clone(&shared),
            probe,
            settings: self.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("hypomnesis-monitor".into())
            .spawn(move || worker.run());
        let (thread, thread_error) = match spawned {
            Ok(thread) => (Some(thread), None),
            Err(e) => {
                lock(&shared.control).finished = true;
                (None, Some(e.to_string()))
            }
        };
        Monitor {
            shared,
            thread,
            thread_error,
            settings: self,
        }
    }
}

/// What a [`Monitor`]'s thread has done so far ([`Monitor::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MonitorStats {
    /// Frames read and published (each is one device refresh).
    pub frames: u64,
    /// Of them, frames that also scanned processes.
    pub process_scans: u64,
    /// Ticks skipped because the frame before ran past them (a slow or hung driver, an
    /// overloaded machine): each is a gap in the history.
    pub skipped_ticks: u64,
}

/// Frames of the machine refreshed on a background thread, with history; see the module docs.
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
/// use hypomnesis::{DeviceMetric, Monitor, Probe};
///
/// let probe = Arc::new(Probe::builder().driver_timeout(Duration::from_secs(2)).build());
/// let monitor = Monitor::builder().start(probe);
/// let mut seen = 0;
/// while let Some((seq, frame)) = monitor.wait_newer(seen, Duration::from_secs(5)) {
///     seen = seq;
///     for d in &frame.devices {
///         let chart = monitor.device_history(d.device.index, DeviceMetric::Used,
///                                            Duration::from_secs(600), 80);
///         let peak = chart.iter().filter_map(|p| p.max).fold(0.0_f64, f64::max);
///         println!("GPU {}: peak {peak} bytes over 10 min", d.device.index);
///     }
/// #   break;
/// }
/// monitor.stop();
/// ```
pub struct Monitor {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    thread_error: Option<String>,
    settings: MonitorBuilder,
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor")
            .field("settings", &self.settings)
            .field("sequence", &lock(&self.shared.latest).sequence)
            .field("thread_error", &self.thread_error)
            .finish_non_exhaustive()
    }
}

impl Monitor {
    /// A builder with the defaults: 1 s interval, process scan every 3 ticks, 10 min of
    /// readings and an hour of blocks, telemetry and process details on.
    pub fn builder() -> MonitorBuilder {
        MonitorBuilder::default()
    }

    /// The newest frame: the newest device figures with the newest process listings.
    /// `None` before the first frame. Never waits for the thread.
    #[must_use]
    pub fn latest(&self) -> Option<Arc<Frame>> {
        lock(&self.shared.latest).frame.clone()
    }

    /// Waits at most `timeout` for a frame newer than sequence number `seen` (0 for any),
    /// and returns it with its sequence number. `None` when none came in time, or the monitor
    /// stopped. Frames published while the caller was away are skipped: the newest is
    /// returned.
    #[must_use]
    pub fn wait_newer(&self, seen: u64, timeout: Duration) -> Option<(u64, Arc<Frame>)> {
        let latest = lock(&self.shared.latest);
        let (latest, _) = self
            .shared
            .fresh
            .wait_timeout_while(latest, timeout, |l| l.sequence <= seen && !l.closed)
            .unwrap_or_else(PoisonError::into_inner);
        if latest.sequence <= seen {
            return None;
        }
        latest.frame.clone().map(|f| (latest.sequence, f))
    }

    /// The sequence number of the newest frame (0 before the first).
    #[must_use]
    pub fn sequence(&self) -> u64 {
        lock(&self.shared.latest).sequence
    }

    /// How many frames the thread has read, how many of them scanned processes, and how
    /// many ticks it skipped because a frame took longer than the interval.
    #[must_use]
    pub fn stats(&self) -> MonitorStats {
        lock(&self.shared.latest).stats
    }

    /// Device `index`'s `metric` over the last `span`, in `buckets` buckets, oldest first
    /// (see [`History::device`]). The newest bucket holds now and ends at most one bucket
    /// later: buckets lie on a fixed grid ([`History::aligned_end`]), so a chart redrawn
    /// every frame moves by whole buckets and a peak keeps its bucket.
    #[must_use]
    pub fn device_history(
        &self,
        index: u32,
        metric: DeviceMetric,
        span: Duration,
        buckets: usize,
    ) -> Vec<HistoryPoint> {
        let history = lock(&self.shared.history);
        let end = history.aligned_end(Instant::now(), span, buckets);
        history.device(index, metric, end, span, buckets)
    }

    /// Process `pid`'s `metric` on device `device` over the last `span`, in `buckets` buckets
    /// (see [`History::process`]), on the same grid as [`Monitor::device_history`].
    #[must_use]
    pub fn process_history(
        &self,
        pid: u32,
        device: u32,
        metric: ProcessMetric,
        span: Duration,
        buckets: usize,
    ) -> Vec<HistoryPoint> {
        let history = lock(&self.shared.history);
        let end = history.aligned_end(Instant::now(), span, buckets);
        history.process(pid, device, metric, end, span, buckets)
    }

    /// The largest reading of device `index`'s `metric` since the monitor started.
    #[must_use]
    pub fn device_peak(&self, index: u32, metric: DeviceMetric) -> Option<f64> {
        lock(&self.shared.history).device_peak(index, metric)
    }

    /// The largest reading of process `pid`'s `metric` on `device` since it was first seen
    /// (see [`History::process_peak`]).
    #[must_use]
    pub fn process_peak(&self, pid: u32, device: u32, metric: ProcessMetric) -> Option<f64> {
        lock(&self.shared.history).process_peak(pid, device, metric)
    }

    /// Runs `f` on the history under its lock, for queries the methods above do not cover
    /// (several charts at one instant). Keep `f` short: the thread waits for it to record.
    pub fn with_history<R>(&self, f: impl FnOnce(&History) -> R) -> R {
        f(&lock(&self.shared.history))
    }

    /// How long the thread has been reading the current frame, when that is longer than
    /// the interval: a driver call is slow or hung. `None` while frames come in time.
    #[must_use]
    pub fn stalled_for(&self) -> Option<Duration> {
        let since = lock(&self.shared.control).reading_since?;
        let elapsed = since.elapsed();
        (elapsed > self.settings.interval).then_some(elapsed)
    }

    /// How often device memory and telemetry are read.
    #[must_use]
    pub fn interval(&self) -> Duration {
        self.settings.interval
    }

    /// With every how many refreshes processes are scanned (0: never).
    #[must_use]
    pub fn process_every(&self) -> u32 {
        self.settings.process_every
    }

    /// How much history is kept reading by reading.
    #[must_use]
    pub fn window(&self) -> Duration {
        self.settings.window
    }

    /// How much history is kept in all (in blocks past [`Monitor::window`]).
    #[must_use]
    pub fn long_window(&self) -> Duration {
        self.settings.long_window.max(self.settings.window)
    }

    /// Why the monitor has no thread (the OS refused one); `None` normally.
    #[must_use]
    pub fn thread_error(&self) -> Option<&str> {
        self.thread_error.as_deref()
    }

    /// Stops the thread: waits at most [`MonitorBuilder::stop_wait`] for the frame in
    /// progress, then leaves a thread stuck in a driver call behind. Returns whether the
    /// thread finished.
    #[allow(clippy::must_use_candidate)]
    pub fn stop(mut self) -> bool {
        self.halt()
    }

    fn halt(&mut self) -> bool {
        lock(&self.shared.control).stop = true;
        self.shared.wake.notify_all();
        {
            let mut latest = lock(&self.shared.latest);
            latest.closed = true;
        }
        self.shared.fresh.notify_all();
        let Some(thread) = self.thread.take() else {
            return true;
        };
        let control = lock(&self.shared.control);
        let (control, _) = self
            .shared
            .done
            .wait_timeout_while(control, self.settings.stop_wait, |c| !c.finished)
            .unwrap_or_else(PoisonError::into_inner);
        let finished = control.finished;
        drop(control);
        if finished {
            // The thread has left its loop; joining only reaps it.
            thread.join().is_ok()
        } else {
            // Joining would wait for a driver call that may never return.
            drop(thread);
            false
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.halt();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic mid-update elsewhere; the data is still usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the monitor's callers and its thread share.
struct Shared {
    latest: Mutex<Latest>,
    /// Signalled when a frame is published or the monitor stops.
    fresh: Condvar,
    history: Mutex<History>,
    control: Mutex<Control>,
    /// Wakes the thread early (to stop).
    wake: Condvar,
    /// Signalled when the thread finishes.
    done: Condvar,
}

#[derive(Default)]
struct Latest {
    sequence: u64,
    stats: MonitorStats,
    frame: Option<Arc<Frame>>,
    /// The monitor stopped: waiters return.
    closed: bool,
}

#[derive(Default)]
struct Control {
    stop: bool,
    finished: bool,
    /// When the thread began reading the frame it is reading; `None` between frames.
    reading_since: Option<Instant>,
}

/// Marks the thread finished when dropped: on return and on unwinding alike.
struct FinishedOnDrop(Arc<Shared>);

impl Drop for FinishedOnDrop {
    fn drop(&mut self) {
        let mut control = lock(&self.0.control);
        control.finished = true;
        control.reading_since = None;
        drop(control);
        self.0.done.notify_all();
    }
}

struct Worker {
    shared: Arc<Shared>,
    probe: Arc<Probe>,
    settings: MonitorBuilder,
}

impl Worker {
    fn run(self) {
        let _finished = FinishedOnDrop(Arc::clone(&self.shared));
        let interval = self.settings.interval;
        let device_request = FrameRequest::DEVICES.with_telemetry(self.settings.telemetry);
        let scan_request = device_request.with_processes(true, self.settings.process_details);
        let every = u64::from(self.settings.process_every);
        let start = Instant::now();
        let mut tick: u64 = 0;
        let mut refreshes: u64 = 0;
        let mut last_scan: Option<Arc<Frame>> = None;
        loop {
            // Counted in refreshes, not ticks: when refreshes run late the scans space out
            // with them, and never outnumber a third (by default) of the frames.
            let scan = every > 0 && refreshes.is_multiple_of(every);
            if !self.begin_reading() {
                return;
            }
            let frame = self
                .probe
                .frame(if scan { scan_request } else { device_request });
            lock(&self.shared.control).reading_since = None;
            refreshes += 1;
            lock(&self.shared.history).record(&frame);
            let published = if scan {
                let frame = Arc::new(frame);
                last_scan = Some(Arc::clone(&frame));
                frame
            } else {
                Arc::new(combine(frame, last_scan.as_deref()))
            };
            let (next, offset) = next_slot(start.elapsed(), interval, tick);
            self.publish(published, scan, next - tick - 1);
            tick = next;
            let wake_at = start
                .checked_add(offset)
                .unwrap_or_else(|| Instant::now() + interval);
            if !self.sleep_until(wake_at) {
                return;
            }
        }
    }

    /// Marks a frame begun; `false` when the monitor is stopping.
    fn begin_reading(&self) -> bool {
        let mut control = lock(&self.shared.control);
        if control.stop {
            return false;
        }
        control.reading_since = Some(Instant::now());
        true
    }

    fn publish(&self, frame: Arc<Frame>, scanned: bool, skipped_ticks: u64) {
        let mut latest = lock(&self.shared.latest);
        latest.sequence += 1;
        latest.stats.frames += 1;
        latest.stats.process_scans += u64::from(scanned);
        latest.stats.skipped_ticks += skipped_ticks;
        latest.frame = Some(frame);
        drop(latest);
        self.shared.fresh.notify_all();
    }

    /// Sleeps until `at`; `false` when woken to stop.
    fn sleep_until(&self, at: Instant) -> bool {
        let mut control = lock(&self.shared.control);
        loop {
            if control.stop {
                return false;
            }
            let now = Instant::now();
            if now >= at {
                return true;
            }
            control = self
                .shared
                .wake
                .wait_timeout(control, at - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// The tick after `tick` on the grid `k·interval` (from the monitor's start) that is still
/// ahead `elapsed` after the start, and its offset from the start: slots that passed while a
/// frame was read are skipped, not caught up.
fn next_slot(elapsed: Duration, interval: Duration, tick: u64) -> (u64, Duration) {
    let interval_ns = interval.as_nanos().max(1);
    let due = u64::try_from(elapsed.as_nanos() / interval_ns)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let next = due.max(tick.saturating_add(1));
    let offset = interval_ns.saturating_mul(u128::from(next));
    let offset = Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX));
    (next, offset)
}

/// `devices` (a frame without a process scan) with the process listings of `scan`, the newest
/// scan: each device gets the listing of the device with the same index, and the frame says
/// when the listings were taken. A device the scan did not see gets no listing, with the
/// scan's GPU error, if any, as the reason.
#[must_use]
pub fn combine(mut devices: Frame, scan: Option<&Frame>) -> Frame {
    let Some(scan) = scan else {
        return devices;
    };
    if devices.devices.is_empty() {
        // Nothing to attach listings to (no GPU, or the driver did not answer).
        return devices;
    }
    for device in &mut devices.devices {
        match scan.device(device.device.index) {
            Some(scanned) => {
                device.processes.clone_from(&scanned.processes);
                device.processes_error.clone_from(&scanned.processes_error);
            }
            None => {
                device.processes = None;
                device.processes_error.clone_from(&scan.gpu_error);
            }
        }
    }
    devices.request = devices
        .request
        .with_processes(scan.request.processes, scan.request.process_details);
    devices.processes_taken_at = scan.processes_taken_at;
    devices.processes_taken = scan.processes_taken;
    devices
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_monitor_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Monitor>();
        assert_send_sync::<History>();
    }

    #[test]
    fn the_next_tick_is_the_next_slot_still_ahead() {
        let ms = Duration::from_millis;
        // On time: the next slot.
        assert_eq!(next_slot(ms(1_003), ms(1_000), 1), (2, ms(2_000)));
        // A frame that ran 2.5 intervals: the two slots that passed are skipped.
        assert_eq!(next_slot(ms(3_500), ms(1_000), 1), (4, ms(4_000)));
        // Past 2^32 ticks (50 days at 1 ms) the slot is still ahead, not stuck in the past
        // (which would make the thread spin).
        let elapsed = Duration::from_secs(50 * 86_400);
        let (tick, offset) = next_slot(elapsed, ms(1), 4_320_000_000);
        assert_eq!(tick, 4_320_000_001);
        assert!(offset > elapsed, "{offset:?}");
    }

    #[test]
    fn the_history_limits_follow_the_builder() {
        let builder = Monitor::builder()
            .interval(Duration::from_millis(250))
            .process_every(4)
            .window(Duration::from_secs(3_600))
            .long_window(Duration::from_secs(7_200))
            .max_process_series(10);
        let limits = builder.limits();
        assert_eq!(limits.device_cadence, Duration::from_millis(250));
        assert_eq!(limits.process_cadence, Duration::from_secs(1));
        assert_eq!(limits.window, Duration::from_secs(3_600));
        assert_eq!(limits.long_window, Duration::from_secs(7_200));
        let defaults = Monitor::builder().limits();
        assert_eq!(
            (defaults.window, defaults.long_window),
            (DEFAULT_WINDOW, DEFAULT_LONG_WINDOW)
        );
        assert_eq!(limits.max_process_series, 10);
    }
}

//! Memory over time: a background thread that samples chosen targets at an interval and keeps
//! their peaks.
//!
//! "What did my job peak at?" is answered badly by polling and keeping the maximum: a spike
//! between two polls is missed. Where the kernel keeps a high-water mark, the figure does not
//! depend on the interval at all, so the sampler reports two kinds of peak and says which is
//! which ([`PeakSource`]):
//!
//! - **Exact** — the kernel's own high-water mark for one process: Linux `VmHWM` (the same
//!   counter as `getrusage`'s `ru_maxrss`), Windows `PeakWorkingSetSize`, macOS the lifetime
//!   maximum footprint; and the cgroup's `memory.peak` / `memory.max_usage_in_bytes`. A
//!   high-water mark covers the process's whole life, so it counts as this run's peak only
//!   when the process started during the run or its mark rose during the run.
//! - **Sampled** — everything else: the sum of a process tree's resident memory (the kernel
//!   keeps no high-water mark for a sum), GPU memory (drivers keep none), host available
//!   memory. These are as good as the interval: [`Report::interval`] belongs next to them.
//!
//! # Targets
//! A [`Sampler`] watches [`Target`]s: the calling process, a fixed set of pids, a process tree
//! (descendants forked after the start included), GPU devices, and the host. Each gives
//! [`Series`] ([`Metric`]s), and each series gets a [`Peak`] (min / max / mean / last, with
//! the time of the peak). An optional bounded [`Timeline`] keeps the latest points, and an
//! [`SamplerBuilder::on_sample`] callback sees every sample as it is taken (to record it).
//!
//! # Cost and allocation
//! The thread reads every process of a target once per tick through a kept-open
//! `/proc/<pid>/statm` (about 1 µs each on Linux), and finds new processes of a tree from
//! `/proc/loadavg`'s last pid, listing `/proc` only when that moved far or every two seconds
//! (see `sampler/linux.rs`). The kernel's high-water mark (`status`, ~14 µs) is read when a
//! process's resident memory passes it, and every two seconds otherwise. At a 10 ms interval, a
//! 20-process tree costs well under 1 % of one core (`benches/sampler.rs`).
//!
//! Windows and macOS read each process through an OS call per tick, and find a tree's new
//! processes from a process table read at most every 500 ms — a Toolhelp32 snapshot of the
//! system on Windows, the members' children on macOS (see `sampler/portable.rs`; not measured
//! here, as no Windows or macOS machine runs the benches).
//!
//! On Linux, once warm, a tick of process targets (own process, pids, trees) allocates
//! nothing: paths and read buffers are kept, the timeline is preallocated, and the figures go
//! into fixed slots (`tests/sampler.rs` checks this with a counting allocator). Buffers grow
//! only when a tree grows past its largest size so far. GPU and host targets read through the [`Probe`],
//! whose backends build their records (a process list with names, `meminfo` as text) on every
//! call: those allocate a bounded amount per tick and free it within the tick.
//!
//! ```no_run
//! // The calling process around a closure:
//! use hypomnesis::{MEASURE_TARGET, Metric};
//!
//! let (sum, report) = hypomnesis::measure(|| (0..1_000_000_u64).sum::<u64>());
//! let ram = report.peak(MEASURE_TARGET, Metric::Rss).map(|p| p.max);
//! println!("{sum}: peak RSS {ram:?} bytes (sampled every {:?})", report.interval);
//! if let Some(largest) = report.target(MEASURE_TARGET).and_then(|t| t.largest_process) {
//!     println!("kernel high-water mark: {} bytes ({:?})", largest.peak_rss_bytes, largest.source);
//! }
//! ```

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::error::{HypomnesisError, Result};
use crate::host::{CgroupMemory, HostMemory};
use crate::probe::Probe;
use crate::ram::MemoryDetail;
use crate::snapshot::{GpuProcessEntry, GpuQuerySource};

#[cfg(target_os = "linux")]
mod linux;
// The procfs parsers moved to the OS layer; the old path stays while callers move over.
#[allow(unused_imports)]
pub(crate) use crate::os::procfs as parse;
#[cfg(not(target_os = "linux"))]
mod portable;
mod tree;

#[cfg(target_os = "linux")]
use linux as platform;
#[cfg(not(target_os = "linux"))]
use portable as platform;

/// The interval of a [`SamplerBuilder`] unless set: 50 ms.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(50);
/// The interval of [`measure`]: 10 ms.
pub const MEASURE_INTERVAL: Duration = Duration::from_millis(10);
/// The shortest interval a sampler accepts; shorter ones are raised to it.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// How often a tracked process's kernel high-water mark is re-read when its resident memory
/// has not passed it.
const HWM_EVERY: Duration = Duration::from_secs(2);

/// What a [`Sampler`] watches.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Target {
    /// The calling process. Series: [`Metric::Rss`], [`Metric::Processes`], and
    /// [`Metric::Gpu`] per sampled device.
    OwnProcess,
    /// A fixed set of processes, summed. Each pid is bound to the process that has it when
    /// sampling starts: one that exits leaves the set, and a later process given the same
    /// pid is not followed. Series as for [`Target::OwnProcess`].
    Pids(Vec<u32>),
    /// A process and all its descendants, summed, including those started after the start.
    /// Linux finds them within one interval (within two seconds on a system that starts many
    /// processes); Windows and macOS read a process table at most every 500 ms, so a
    /// descendant is found within 500 ms or one interval, whichever is longer, and one that
    /// lives shorter than that may be missed. A descendant stays in the tree when its parent
    /// exits, once found. On other platforms the root alone is sampled (the report notes it).
    /// Series as for [`Target::OwnProcess`].
    Tree(u32),
    /// A GPU's memory in use, whole device (all processes). Series: [`Metric::DeviceUsed`].
    Device(u32),
    /// The host's available memory and the memory cgroup's usage. Series:
    /// [`Metric::HostAvailable`], [`Metric::CgroupUsage`].
    Host,
}

impl Target {
    fn is_processes(&self) -> bool {
        matches!(self, Self::OwnProcess | Self::Pids(_) | Self::Tree(_))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OwnProcess => f.write_str("this process"),
            Self::Pids(pids) => {
                f.write_str("pids")?;
                for (i, pid) in pids.iter().enumerate() {
                    write!(f, "{}{pid}", if i == 0 { " " } else { "," })?;
                }
                Ok(())
            }
            Self::Tree(root) => write!(f, "process tree of pid {root}"),
            Self::Device(index) => write!(f, "GPU {index}"),
            Self::Host => f.write_str("host"),
        }
    }
}

/// One figure sampled for a target. All are bytes except [`Metric::Processes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Metric {
    /// Resident memory summed over the target's live processes at one instant (see
    /// [`crate::ProcessMemory::rss_bytes`] for what "resident" is on each platform).
    Rss,
    /// How many of the target's processes were alive (a count, not bytes).
    Processes,
    /// GPU memory the target's processes hold on `device`, summed (NVML's per-process
    /// figure, DRM's fdinfo, Windows PDH).
    Gpu {
        /// The device index.
        device: u32,
    },
    /// The device's memory in use by all processes ([`crate::GpuDeviceInfo::used_bytes`]).
    DeviceUsed,
    /// Memory available to new allocations on the host
    /// ([`crate::HostMemory::available_bytes`]).
    HostAvailable,
    /// Usage of the memory cgroup bounding this process ([`CgroupMemory::usage_bytes`]).
    CgroupUsage,
}

/// A handle on one target of a sampler, returned by [`SamplerBuilder::add`]: it names the
/// target's figures in every [`Report`] and [`Sample`] of that sampler, so a program never
/// counts positions (`1 + devices.len()` for "the host") to find them.
///
/// A handle is meaningful only for the sampler it was added to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct TargetId(usize);

impl TargetId {
    /// The target's position among the sampler's targets (the order they were added), which
    /// is also its place in [`Report::targets`]; JSON shows this number.
    #[must_use]
    pub const fn index(self) -> usize {
        self.0
    }
}

/// The one target of a [`measure`] report: [`Target::OwnProcess`].
pub const MEASURE_TARGET: TargetId = TargetId(0);

/// One sampled figure: which target and which metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Series {
    /// The target, as [`SamplerBuilder::add`] returned it.
    pub target: TargetId,
    /// What is measured.
    pub metric: Metric,
}

/// Summary of one series over the samples that measured it.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Peak {
    /// Smallest value.
    pub min: u64,
    /// Largest value: the sampled peak.
    pub max: u64,
    /// Arithmetic mean of the values.
    pub mean: f64,
    /// The latest value.
    pub last: u64,
    /// How many samples measured the series.
    pub samples: u64,
    /// When the smallest value was first seen, after the start.
    pub min_at: Duration,
    /// When the largest value was first seen, after the start.
    pub max_at: Duration,
}

/// A series and its summary.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SeriesSummary {
    /// Which series.
    pub series: Series,
    /// Its summary; `None` when no sample could measure it.
    pub peak: Option<Peak>,
    /// Samples in which it could not be measured (a failed read, a GPU listing that failed).
    pub missed: u64,
}

/// Where a peak figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum PeakSource {
    /// The kernel's high-water mark (Linux `VmHWM` / `ru_maxrss`, Windows
    /// `PeakWorkingSetSize`, macOS lifetime maximum footprint, cgroup `memory.peak`): exact,
    /// whatever the interval.
    KernelHighWaterMark,
    /// The largest of the samples: a spike shorter than the interval may be missed.
    Sampled,
}

/// The peak of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ProcessPeak {
    /// The process.
    pub pid: u32,
    /// Its peak resident memory during the run, bytes.
    pub peak_rss_bytes: u64,
    /// Whether the figure is the kernel's or sampled.
    pub source: PeakSource,
}

/// Per-target results beyond the series.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct TargetSummary {
    /// The target.
    pub target: Target,
    /// Process targets: the process with the largest peak during the run. Its figure is exact
    /// ([`PeakSource::KernelHighWaterMark`]) when the kernel's high-water mark for it was read
    /// and counts for this run (the process started during the run, or its mark rose);
    /// otherwise it is its largest sampled resident memory. `None` for other targets.
    pub largest_process: Option<ProcessPeak>,
    /// Process targets: how many distinct processes were seen in the target.
    pub processes_seen: u32,
    /// What the reader should know about this target's figures (English, one line each).
    pub notes: Vec<String>,
}

/// Host figures read at the start and the end of sampling.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct HostSummary {
    /// Installed RAM, bytes.
    pub total_bytes: Option<u64>,
    /// The memory cgroup at the end (at the start while sampling goes on): its limit, usage
    /// and all-time peak. `None` outside a limitable cgroup and off Linux.
    pub cgroup: Option<CgroupMemory>,
    /// The cgroup's peak usage reached *during* the run, bytes: its kernel high-water mark at
    /// the end, when that rose above the mark at the start (then it is exact). `None` when it
    /// did not rise (the run's peak was lower than an earlier one) or is not known.
    pub cgroup_peak_bytes: Option<u64>,
}

/// Points kept by a sampler built with [`SamplerBuilder::timeline`], oldest first.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Timeline {
    /// The series, in the order of each point's values.
    pub series: Vec<Series>,
    /// The kept points.
    pub points: Vec<TimelinePoint>,
    /// Points dropped because the timeline was full (the oldest go first).
    pub dropped: u64,
}

/// One sample in a [`Timeline`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct TimelinePoint {
    /// When, after the start.
    pub elapsed: Duration,
    /// One value per series (`None`: not measured in this sample).
    pub values: Vec<Option<u64>>,
}

/// What a sampler found.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Report {
    /// The sampling interval: the resolution of every sampled figure.
    pub interval: Duration,
    /// Time from the start to the last sample.
    pub elapsed: Duration,
    /// Samples taken.
    pub samples: u64,
    /// Interval slots skipped because a sample took longer than the interval.
    pub late_samples: u64,
    /// One summary per series, in [`Sampler::series`] order.
    pub series: Vec<SeriesSummary>,
    /// One summary per target, in the builder's order.
    pub targets: Vec<TargetSummary>,
    /// Host figures, when a [`Target::Host`] was sampled.
    pub host: Option<HostSummary>,
    /// The kept points, when a timeline was asked for.
    pub timeline: Option<Timeline>,
    /// CPU time the sampling thread used (Linux: `getrusage(RUSAGE_THREAD)`); `None` while
    /// sampling goes on and off Linux.
    pub sampler_cpu_time: Option<Duration>,
    /// What the reader should know about the whole run (a device that could not be sampled).
    pub notes: Vec<String>,
}

impl Report {
    /// The summary of `metric` for `target`; `None` when the sampler had no such series or
    /// no sample could measure it.
    #[must_use]
    pub fn peak(&self, target: TargetId, metric: Metric) -> Option<&Peak> {
        self.series_summary(target, metric)
            .and_then(|s| s.peak.as_ref())
    }

    /// The series `metric` of `target` with its summary and missed samples.
    #[must_use]
    pub fn series_summary(&self, target: TargetId, metric: Metric) -> Option<&SeriesSummary> {
        self.series
            .iter()
            .find(|s| s.series.target == target && s.series.metric == metric)
    }

    /// What was found for `target` beyond its series (largest process, notes).
    #[must_use]
    pub fn target(&self, target: TargetId) -> Option<&TargetSummary> {
        self.targets.get(target.0)
    }

    /// The handle of the first target equal to `target`, for a sampler built with
    /// [`SamplerBuilder::target`] (which returns none).
    #[must_use]
    pub fn target_id(&self, target: &Target) -> Option<TargetId> {
        self.targets
            .iter()
            .position(|t| t.target == *target)
            .map(TargetId)
    }
}

/// One sample, as [`SamplerBuilder::on_sample`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// 0 for the first sample, then 1, 2, …
    pub index: u64,
    /// When, after the start.
    pub elapsed: Duration,
    /// When, by the wall clock.
    pub wall_clock: SystemTime,
    series: &'a [Series],
    values: &'a [Option<u64>],
}

impl Sample<'_> {
    /// The series, in the order of [`Sample::values`].
    #[must_use]
    pub fn series(&self) -> &[Series] {
        self.series
    }

    /// One value per series; `None` when not measured in this sample.
    #[must_use]
    pub fn values(&self) -> &[Option<u64>] {
        self.values
    }

    /// The value of `metric` for `target`, when measured.
    #[must_use]
    pub fn get(&self, target: TargetId, metric: Metric) -> Option<u64> {
        self.series
            .iter()
            .position(|s| s.target == target && s.metric == metric)
            .and_then(|i| self.values.get(i).copied().flatten())
    }
}

/// The probe a sampler reads through: shared with the caller, or the crate's global one.
#[derive(Debug, Clone)]
enum ProbeHandle {
    Shared(Arc<Probe>),
    Global(&'static Probe),
}

impl Deref for ProbeHandle {
    type Target = Probe;

    fn deref(&self) -> &Probe {
        match self {
            Self::Shared(probe) => probe,
            Self::Global(probe) => probe,
        }
    }
}

/// Which GPUs process targets' memory is sampled on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Devices {
    None,
    All,
    Only(Vec<u32>),
}

type Callback = Box<dyn FnMut(&Sample<'_>) + Send>;

/// Configures and starts a [`Sampler`].
#[must_use]
pub struct SamplerBuilder {
    probe: Option<ProbeHandle>,
    interval: Duration,
    targets: Vec<Target>,
    devices: Devices,
    timeline: usize,
    on_sample: Option<Callback>,
}

impl fmt::Debug for SamplerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SamplerBuilder")
            .field("probe", &self.probe)
            .field("interval", &self.interval)
            .field("targets", &self.targets)
            .field("devices", &self.devices)
            .field("timeline", &self.timeline)
            .field("on_sample", &self.on_sample.as_ref().map(|_| "…"))
            .finish()
    }
}

impl Default for SamplerBuilder {
    fn default() -> Self {
        Self {
            probe: None,
            interval: DEFAULT_INTERVAL,
            targets: Vec::new(),
            devices: Devices::None,
            timeline: 0,
            on_sample: None,
        }
    }
}

impl SamplerBuilder {
    /// Read through `probe` (default: the crate's process-wide probe, the one behind
    /// [`crate::process_rss`]).
    pub fn probe(mut self, probe: Arc<Probe>) -> Self {
        self.probe = Some(ProbeHandle::Shared(probe));
        self
    }

    /// Sample every `interval` (default [`DEFAULT_INTERVAL`]; at least [`MIN_INTERVAL`]).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(MIN_INTERVAL);
        self
    }

    /// Sample `target` too, and return its handle, by which every [`Report`] and [`Sample`]
    /// of the sampler names its figures. With no target at all, the sampler watches
    /// [`Target::OwnProcess`].
    ///
    /// ```no_run
    /// use hypomnesis::{Metric, Sampler, Target};
    ///
    /// let mut builder = Sampler::builder();
    /// let me = builder.add(Target::OwnProcess);
    /// let host = builder.add(Target::Host);
    /// let sampler = builder.start()?;
    /// let report = sampler.stop();
    /// println!("RSS peak {:?}", report.peak(me, Metric::Rss).map(|p| p.max));
    /// println!("host low {:?}", report.peak(host, Metric::HostAvailable).map(|p| p.min));
    /// # Ok::<(), hypomnesis::HypomnesisError>(())
    /// ```
    pub fn add(&mut self, target: Target) -> TargetId {
        self.targets.push(target);
        TargetId(self.targets.len() - 1)
    }

    /// Sample `target` too, chaining; [`SamplerBuilder::add`] does the same and returns the
    /// target's handle (without it, [`Report::target_id`] finds the target in a report).
    pub fn target(mut self, target: Target) -> Self {
        self.add(target);
        self
    }

    /// Sample the GPU memory of the process targets on these devices ([`Metric::Gpu`]).
    pub fn gpu_devices(mut self, devices: impl IntoIterator<Item = u32>) -> Self {
        self.devices = Devices::Only(devices.into_iter().collect());
        self
    }

    /// Sample the GPU memory of the process targets on every visible device.
    pub fn all_gpu_devices(mut self) -> Self {
        self.devices = Devices::All;
        self
    }

    /// Keep the latest `capacity` samples in a [`Timeline`] (default 0: none). The space is
    /// reserved when sampling starts.
    pub fn timeline(mut self, capacity: usize) -> Self {
        self.timeline = capacity;
        self
    }

    /// Call `f` on the sampling thread after every sample (to record it). Sampling waits
    /// for `f`: keep it short.
    pub fn on_sample(mut self, f: impl FnMut(&Sample<'_>) + Send + 'static) -> Self {
        self.on_sample = Some(Box::new(f));
        self
    }

    /// Takes the first sample on the calling thread, then starts the sampling thread.
    ///
    /// # Errors
    /// [`HypomnesisError::Unsupported`] when the OS refuses to start a thread.
    pub fn start(self) -> Result<Sampler> {
        let (meta, thread) = self.launch();
        let thread = thread.map_err(|_| HypomnesisError::Unsupported {
            what: "a sampling thread",
            context: "because the OS refused to start one",
        })?;
        Ok(Sampler {
            meta,
            thread: Some(thread),
        })
    }

    /// Samples while `f` runs; returns what `f` returned and the report. When no sampling
    /// thread can be started, `f` still runs, and the report holds the first sample (taken
    /// before `f`) and says so in a note.
    pub fn measure<R>(self, f: impl FnOnce() -> R) -> (R, Report) {
        let (meta, thread) = self.launch();
        match thread {
            Ok(thread) => {
                let sampler = Sampler {
                    meta,
                    thread: Some(thread),
                };
                let value = f();
                (value, sampler.stop())
            }
            Err(_) => {
                let value = f();
                let mut report = meta.report(&lock(&meta.shared.progress));
                report.notes.push(
                    "no sampling thread could be started: only the first sample was taken"
                        .to_owned(),
                );
                (value, report)
            }
        }
    }

    /// A sampler without a thread, for a program that already has a loop: it takes the first
    /// sample now, then one on every [`ManualSampler::sample`]. The interval is only what
    /// reports state as the resolution.
    pub fn manual(self) -> ManualSampler {
        let (mut engine, meta) = Engine::new(self);
        engine.start = Instant::now();
        engine.start_wall = SystemTime::now();
        engine.tick(engine.start);
        ManualSampler { engine, meta }
    }

    /// Builds the engine, takes the first sample here, and hands the engine to a thread.
    fn launch(self) -> (Meta, std::io::Result<JoinHandle<()>>) {
        let (mut engine, meta) = Engine::new(self);
        engine.start = Instant::now();
        engine.start_wall = SystemTime::now();
        engine.tick(engine.start);
        let thread = std::thread::Builder::new()
            .name("hypomnesis-sampler".to_owned())
            .spawn(move || {
                let _finished = FinishedOnDrop(Arc::clone(&engine.shared));
                engine.run();
            });
        (meta, thread)
    }
}

/// Samples targets on a background thread until stopped. Dropping it stops the thread too.
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
/// use hypomnesis::{Metric, Probe, Sampler, Target};
///
/// let child = std::process::Command::new("make").arg("-j8").spawn()?;
/// let mut builder = Sampler::builder()
///     .probe(Arc::new(Probe::new()))
///     .interval(Duration::from_millis(20));
/// let tree = builder.add(Target::Tree(child.id()));
/// let host = builder.add(Target::Host);
/// let sampler = builder.start()?;
/// # let mut child = child;
/// child.wait()?;
/// let report = sampler.stop();
/// let tree = report.peak(tree, Metric::Rss).map(|p| p.max);
/// let low = report.peak(host, Metric::HostAvailable).map(|p| p.min);
/// println!("tree peak {tree:?} B, host available low point {low:?} B");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Sampler {
    meta: Meta,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for Sampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sampler")
            .field("series", &self.meta.series)
            .field("interval", &self.meta.interval)
            .finish_non_exhaustive()
    }
}

impl Sampler {
    /// A builder: no targets, [`DEFAULT_INTERVAL`], the global probe.
    pub fn builder() -> SamplerBuilder {
        SamplerBuilder::default()
    }

    /// The sampled series, in the order of every sample's values.
    #[must_use]
    pub fn series(&self) -> &[Series] {
        &self.meta.series
    }

    /// The figures so far, while sampling goes on.
    #[must_use]
    pub fn report(&self) -> Report {
        self.meta.report(&lock(&self.meta.shared.progress))
    }

    /// Takes a last sample, stops the thread and returns the report.
    #[must_use]
    pub fn stop(mut self) -> Report {
        self.halt();
        self.meta.report(&lock(&self.meta.shared.progress))
    }

    fn halt(&mut self) {
        *lock(&self.meta.shared.stop) = true;
        self.meta.shared.wake.notify_all();
        let Some(thread) = self.thread.take() else {
            return;
        };
        let shared = &self.meta.shared;
        let finished = shared
            .done
            .wait_timeout_while(lock(&shared.finished), STOP_WAIT, |finished| !*finished)
            .map_or_else(
                |poisoned| *poisoned.into_inner().0,
                |(finished, _)| *finished,
            );
        if !finished {
            // Left running: joining would wait for a call that may never return.
            drop(thread);
            lock(&shared.progress).notes.push(format!(
                "the sampling thread did not stop within {} s (a GPU driver call that does not \
                 return?); figures are those it published before",
                STOP_WAIT.as_secs()
            ));
            return;
        }
        if thread.join().is_err() {
            lock(&shared.progress)
                .notes
                .push("the sampling thread failed; figures are those before it did".into());
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.halt();
    }
}

/// A sampler that samples when told to (see [`SamplerBuilder::manual`]).
pub struct ManualSampler {
    engine: Engine,
    meta: Meta,
}

impl fmt::Debug for ManualSampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualSampler")
            .field("series", &self.meta.series)
            .field("samples", &self.engine.samples)
            .finish_non_exhaustive()
    }
}

impl ManualSampler {
    /// Takes one sample of every target now.
    pub fn sample(&mut self) {
        self.engine.tick(Instant::now());
    }

    /// The sampled series, in the order of every sample's values.
    #[must_use]
    pub fn series(&self) -> &[Series] {
        &self.meta.series
    }

    /// The figures so far.
    #[must_use]
    pub fn report(&self) -> Report {
        self.meta.report(&lock(&self.meta.shared.progress))
    }

    /// Takes a last sample and the end-of-run readings (high-water marks, the cgroup's
    /// peak), and returns the report.
    #[must_use]
    pub fn finish(mut self) -> Report {
        self.engine.tick(Instant::now());
        self.engine.finish();
        self.report()
    }
}

/// Samples the calling process while `f` runs, every [`MEASURE_INTERVAL`], with its GPU
/// memory on every visible device; returns `f`'s result and the report. Its one target,
/// [`Target::OwnProcess`], is [`MEASURE_TARGET`].
///
/// ```no_run
/// use hypomnesis::{MEASURE_TARGET, Metric};
///
/// let (out, report) = hypomnesis::measure(|| vec![1_u8; 256 << 20].len());
/// let sampled = report.peak(MEASURE_TARGET, Metric::Rss).map(|p| p.max);
/// let gpu = report.peak(MEASURE_TARGET, Metric::Gpu { device: 0 }).map(|p| p.max);
/// println!("{out} bytes; sampled RSS peak {sampled:?}, GPU 0 peak {gpu:?}");
/// if let Some(peak) = report.target(MEASURE_TARGET).and_then(|t| t.largest_process) {
///     println!("peak RSS {} bytes ({:?})", peak.peak_rss_bytes, peak.source);
/// }
/// ```
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Report) {
    Sampler::builder()
        .interval(MEASURE_INTERVAL)
        .target(Target::OwnProcess)
        .all_gpu_devices()
        .measure(f)
}

/// When process `pid` started, in clock ticks after boot (Linux: field 22 of
/// `/proc/<pid>/stat`, under the probe's `/proc` root). With the pid, it identifies a
/// process: a pid the OS reused belongs to a process with a later start time. `None` when the
/// process does not exist, cannot be read, or off Linux.
#[must_use]
pub fn process_start_ticks(probe: &Probe, pid: u32) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        crate::os::linux::process_start_ticks(probe.proc_root(), pid)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (probe, pid);
        None
    }
}

/// Process `pid`'s parent process id (Linux: field 4 of `/proc/<pid>/stat`, under the probe's
/// `/proc` root; a process whose parent exited has been re-parented, usually to 1). `None`
/// when the process does not exist, cannot be read, or off Linux.
#[must_use]
pub fn process_parent(probe: &Probe, pid: u32) -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        crate::os::linux::process_parent(probe.proc_root(), pid)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (probe, pid);
        None
    }
}

/// When `pid` started, for telling a reused pid apart: Linux clock ticks after boot
/// ([`process_start_ticks`]), elsewhere the process table's unit.
fn start_time(probe: &Probe, pid: u32) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        process_start_ticks(probe, pid)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = probe;
        portable::start_time(pid)
    }
}

/// Whether a tree target follows descendants on this platform.
const fn follows_trees() -> bool {
    #[cfg(target_os = "linux")]
    {
        true
    }
    #[cfg(not(target_os = "linux"))]
    {
        portable::FOLLOWS_TREES
    }
}

// ---------------------------------------------------------------------------------------------
// Shared state

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a callback panicked mid-update; the figures are still usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct Shared {
    stop: Mutex<bool>,
    wake: Condvar,
    progress: Mutex<Progress>,
    /// Set by the thread when it is done (or died); `done` tells the stopper.
    finished: Mutex<bool>,
    done: Condvar,
}

/// How long [`Sampler::stop`] waits for the thread's last sample. A GPU driver call that
/// hangs never returns and cannot be interrupted; past this the thread is left behind and
/// the report is what it published before.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Marks the thread finished when dropped: on return and on unwinding alike.
struct FinishedOnDrop(Arc<Shared>);

impl Drop for FinishedOnDrop {
    fn drop(&mut self) {
        *lock(&self.0.finished) = true;
        self.0.done.notify_all();
    }
}

/// What the thread publishes after every sample.
#[derive(Debug)]
struct Progress {
    accs: Vec<Acc>,
    samples: u64,
    late: u64,
    elapsed: Duration,
    largest: Vec<Option<ProcessPeak>>,
    seen: Vec<u32>,
    ring: Option<Ring>,
    host: Option<HostSummary>,
    cpu: Option<Duration>,
    notes: Vec<String>,
}

/// Running summary of one series.
#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    n: u64,
    missed: u64,
    min: u64,
    max: u64,
    sum: u128,
    last: u64,
    min_at: Duration,
    max_at: Duration,
}

impl Acc {
    fn add(&mut self, value: Option<u64>, at: Duration) {
        let Some(v) = value else {
            self.missed += 1;
            return;
        };
        if self.n == 0 || v < self.min {
            self.min = v;
            self.min_at = at;
        }
        if self.n == 0 || v > self.max {
            self.max = v;
            self.max_at = at;
        }
        self.n += 1;
        self.sum += u128::from(v);
        self.last = v;
    }

    fn peak(&self) -> Option<Peak> {
        #[allow(clippy::cast_precision_loss)] // a mean needs no more than f64's 53 bits
        let mean = self.sum as f64 / self.n as f64;
        (self.n > 0).then_some(Peak {
            min: self.min,
            max: self.max,
            mean,
            last: self.last,
            samples: self.n,
            min_at: self.min_at,
            max_at: self.max_at,
        })
    }
}

/// A preallocated ring of the latest samples.
#[derive(Debug)]
struct Ring {
    width: usize,
    times: Vec<Duration>,
    values: Vec<Option<u64>>,
    head: usize,
    len: usize,
    dropped: u64,
}

impl Ring {
    fn new(capacity: usize, width: usize) -> Self {
        Self {
            width,
            times: vec![Duration::ZERO; capacity],
            values: vec![None; capacity.saturating_mul(width)],
            head: 0,
            len: 0,
            dropped: 0,
        }
    }

    fn push(&mut self, at: Duration, values: &[Option<u64>]) {
        let capacity = self.times.len();
        if capacity == 0 {
            return;
        }
        if let Some(slot) = self.times.get_mut(self.head) {
            *slot = at;
        }
        let start = self.head * self.width;
        if let Some(row) = self.values.get_mut(start..start + self.width) {
            row.copy_from_slice(values);
        }
        self.head = (self.head + 1) % capacity;
        if self.len == capacity {
            self.dropped += 1;
        } else {
            self.len += 1;
        }
    }

    fn timeline(&self, series: &[Series]) -> Timeline {
        let capacity = self.times.len();
        let first = (self.head + capacity - self.len) % capacity.max(1);
        let points = (0..self.len)
            .map(|k| {
                let i = (first + k) % capacity;
                TimelinePoint {
                    elapsed: self.times.get(i).copied().unwrap_or_default(),
                    values: self
                        .values
                        .get(i * self.width..(i + 1) * self.width)
                        .map(<[Option<u64>]>::to_vec)
                        .unwrap_or_default(),
                }
            })
            .collect();
        Timeline {
            series: series.to_vec(),
            points,
            dropped: self.dropped,
        }
    }
}

/// What the caller's handle keeps to build reports.
#[derive(Debug)]
struct Meta {
    shared: Arc<Shared>,
    interval: Duration,
    series: Vec<Series>,
    targets: Vec<Target>,
    target_notes: Vec<Vec<String>>,
}

impl Meta {
    fn report(&self, progress: &Progress) -> Report {
        Report {
            interval: self.interval,
            elapsed: progress.elapsed,
            samples: progress.samples,
            late_samples: progress.late,
            series: self
                .series
                .iter()
                .zip(&progress.accs)
                .map(|(series, acc)| SeriesSummary {
                    series: *series,
                    peak: acc.peak(),
                    missed: acc.missed,
                })
                .collect(),
            targets: self
                .targets
                .iter()
                .enumerate()
                .map(|(i, target)| TargetSummary {
                    target: target.clone(),
                    largest_process: progress.largest.get(i).copied().flatten(),
                    processes_seen: progress.seen.get(i).copied().unwrap_or(0),
                    notes: self.target_notes.get(i).cloned().unwrap_or_default(),
                })
                .collect(),
            host: progress.host.clone(),
            timeline: progress.ring.as_ref().map(|r| r.timeline(&self.series)),
            sampler_cpu_time: progress.cpu,
            notes: progress.notes.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The sampling thread

/// A process tracked in a pid-set or tree target.
#[derive(Debug)]
struct Member {
    pid: u32,
    /// When it started, in the platform's unit (Linux: clock ticks after boot; Windows and
    /// macOS: see `tree::ProcRow::start`): with the pid, it tells a reused pid apart.
    start_ticks: Option<u64>,
    reader: platform::Reader,
    /// Started (or was first seen) after the first sample: its whole high-water mark belongs
    /// to the run.
    new: bool,
    hwm_first: Option<u64>,
    hwm: Option<u64>,
    hwm_read_at: Instant,
    /// The resident memory sampled when the mark was last read.
    rss_at_hwm_read: u64,
    sampled_max: u64,
}

impl Member {
    fn peak(&self) -> ProcessPeak {
        let counts = self
            .hwm
            .filter(|&h| self.new || self.hwm_first.is_some_and(|first| h > first));
        match counts {
            Some(hwm) if mark_holds(hwm, self.sampled_max) => ProcessPeak {
                pid: self.pid,
                peak_rss_bytes: hwm,
                source: PeakSource::KernelHighWaterMark,
            },
            _ => ProcessPeak {
                pid: self.pid,
                peak_rss_bytes: self.sampled_max,
                source: PeakSource::Sampled,
            },
        }
    }
}

/// Whether a kernel high-water mark accounts for the largest sample. Linux keeps a process's
/// RSS in per-CPU counters and reads them approximately, at different instants for `statm`
/// and for the mark, so the two may differ by a little either way; a mark more than 1/32
/// below a sample was read before the process grew further (it is stale) and is not used.
fn mark_holds(mark: u64, sampled: u64) -> bool {
    mark >= sampled - sampled / 32
}

fn larger(a: Option<ProcessPeak>, b: ProcessPeak) -> ProcessPeak {
    match a {
        Some(a) if a.peak_rss_bytes >= b.peak_rss_bytes => a,
        _ => b,
    }
}

/// The processes of a [`Target::Pids`] or [`Target::Tree`].
#[derive(Debug)]
struct ProcSet {
    is_tree: bool,
    members: Vec<Member>,
    departed: Option<ProcessPeak>,
    seen: u32,
    /// A tree's process-table discovery (Linux shares one `/proc` discovery between trees).
    #[cfg(not(target_os = "linux"))]
    discovery: Option<Box<portable::Discovery>>,
}

impl ProcSet {
    fn contains(&self, pid: u32) -> bool {
        self.members.iter().any(|m| m.pid == pid)
    }

    fn add(&mut self, env: &mut platform::Env, pid: u32, start_ticks: Option<u64>, new: bool) {
        let Some(reader) = env.open(pid) else {
            return;
        };
        let hwm = env.hwm(&reader);
        self.members.push(Member {
            pid,
            start_ticks,
            reader,
            new,
            hwm_first: hwm,
            hwm,
            hwm_read_at: Instant::now(),
            rss_at_hwm_read: 0,
            sampled_max: 0,
        });
        self.seen = self.seen.saturating_add(1);
    }

    /// Takes in the processes discovery found whose parent is a member, to a fixed point
    /// (a child and its own child found in the same poll).
    #[cfg(target_os = "linux")]
    fn adopt(&mut self, env: &mut platform::Env, found: &[linux::Found], new: bool) {
        loop {
            let mut adopted = false;
            for f in found {
                if let Some(i) = self.members.iter().position(|m| m.pid == f.pid) {
                    // Already tracked, unless this is a new process under a reused pid.
                    if self.members.get(i).and_then(|m| m.start_ticks) == Some(f.start_ticks) {
                        continue;
                    }
                    self.retire(i);
                }
                if self.contains(f.ppid) && env.is_process(f) {
                    self.add(env, f.pid, Some(f.start_ticks), new);
                    adopted = true;
                }
            }
            if !adopted {
                break;
            }
        }
    }

    /// Takes in the descendants a process-table read finds, when one is due, and retires the
    /// members whose pid the OS gave to another process. Returns why the table could not be
    /// read, the first time it could not.
    #[cfg(not(target_os = "linux"))]
    fn discover(&mut self, env: &mut platform::Env, now: Instant, new: bool) -> Option<String> {
        let mut discovery = self.discovery.take()?;
        if discovery.due(now) {
            let members = self.members.iter().map(|m| tree::Known {
                pid: m.pid,
                start: m.start_ticks,
            });
            if let Some(found) = discovery.scan(members, now) {
                for &pid in &found.reused {
                    if let Some(i) = self.members.iter().position(|m| m.pid == pid) {
                        self.retire(i);
                    }
                }
                for row in &found.new {
                    if !self.contains(row.pid) {
                        self.add(env, row.pid, row.start, new);
                    }
                }
            }
        }
        let error = discovery.take_error();
        self.discovery = Some(discovery);
        error
    }

    fn retire(&mut self, index: usize) {
        if index < self.members.len() {
            let member = self.members.swap_remove(index);
            self.departed = Some(larger(self.departed, member.peak()));
        }
    }

    /// Resident memory summed over the live members (`None` when a read failed), and their
    /// count.
    fn sample(&mut self, env: &mut platform::Env, now: Instant) -> (Option<u64>, u64) {
        let mut sum: u64 = 0;
        let mut failed = false;
        let mut i = 0;
        while let Some(member) = self.members.get_mut(i) {
            match env.rss(&member.reader) {
                platform::Reading::Rss(bytes) => {
                    sum = sum.saturating_add(bytes);
                    member.sampled_max = member.sampled_max.max(bytes);
                    // The mark is re-read when the process grew past it since the last read
                    // (a steady process whose counters read a page above its mark is not
                    // re-read every sample), and every HWM_EVERY for spikes between samples.
                    let due = now.saturating_duration_since(member.hwm_read_at) >= HWM_EVERY;
                    let grew = member
                        .hwm
                        .is_none_or(|h| bytes > h && bytes > member.rss_at_hwm_read);
                    if due || grew {
                        member.hwm_read_at = now;
                        member.rss_at_hwm_read = bytes;
                        if let Some(hwm) = env.hwm(&member.reader) {
                            member.hwm = Some(hwm);
                        }
                    }
                    i += 1;
                }
                platform::Reading::Gone => self.retire(i),
                platform::Reading::Failed => {
                    failed = true;
                    i += 1;
                }
            }
        }
        let count = u64::try_from(self.members.len()).unwrap_or(u64::MAX);
        ((!failed).then_some(sum), count)
    }

    /// Re-reads every live member's high-water mark (at the end).
    fn refresh_hwm(&mut self, env: &mut platform::Env) {
        for member in &mut self.members {
            if let Some(hwm) = env.hwm(&member.reader) {
                member.hwm = Some(hwm);
            }
        }
    }

    fn largest(&self) -> Option<ProcessPeak> {
        self.members
            .iter()
            .map(Member::peak)
            .fold(self.departed, |best, peak| Some(larger(best, peak)))
    }

    /// GPU memory of the members on one device, from its process list.
    fn gpu_bytes(&self, rows: &[GpuProcessEntry]) -> Option<u64> {
        // A DRM client a child inherited is in both rows: counted once.
        GpuProcessEntry::sum_used_once(rows.iter().filter(|r| self.contains(r.pid)))
    }
}

/// The calling process as a target.
#[derive(Debug)]
struct Own {
    pid: u32,
    hwm_start: Option<u64>,
    sampled_max: u64,
}

impl Own {
    fn largest(&self, hwm_end: Option<u64>) -> ProcessPeak {
        match (self.hwm_start, hwm_end) {
            (Some(start), Some(end)) if end > start && mark_holds(end, self.sampled_max) => {
                ProcessPeak {
                    pid: self.pid,
                    peak_rss_bytes: end,
                    source: PeakSource::KernelHighWaterMark,
                }
            }
            _ => ProcessPeak {
                pid: self.pid,
                peak_rss_bytes: self.sampled_max,
                source: PeakSource::Sampled,
            },
        }
    }
}

#[derive(Debug)]
enum State {
    Own(Own),
    Procs(ProcSet),
    Device(u32),
    Host,
}

/// One target's state and the index of its first series.
#[derive(Debug)]
struct TargetState {
    state: State,
    first_series: usize,
}

/// The sampling thread's state.
struct Engine {
    probe: ProbeHandle,
    env: platform::Env,
    #[cfg(target_os = "linux")]
    discovery: Option<linux::Discovery>,
    targets: Vec<TargetState>,
    devices: Vec<u32>,
    series: Vec<Series>,
    values: Vec<Option<u64>>,
    start: Instant,
    start_wall: SystemTime,
    interval: Duration,
    samples: u64,
    late: u64,
    on_sample: Option<Callback>,
    shared: Arc<Shared>,
    host_start: Option<HostMemory>,
    cpu_start: Option<Duration>,
}

impl Engine {
    fn new(builder: SamplerBuilder) -> (Self, Meta) {
        let probe = builder
            .probe
            .unwrap_or_else(|| ProbeHandle::Global(crate::probe::global()));
        let mut env = platform::Env::new(&probe);
        let mut notes = Vec::new();
        let mut targets = builder.targets;
        if targets.is_empty() {
            targets.push(Target::OwnProcess);
        }
        let devices = if targets.iter().any(Target::is_processes) {
            sampled_devices(&probe, &builder.devices, &mut notes)
        } else {
            Vec::new()
        };

        let mut series = Vec::new();
        let mut states = Vec::with_capacity(targets.len());
        let mut target_notes = Vec::with_capacity(targets.len());
        let mut host_start = None;
        for (index, target) in targets.iter().enumerate() {
            let first_series = series.len();
            let mut these_notes = Vec::new();
            let metrics: Vec<Metric> = match target {
                Target::OwnProcess | Target::Pids(_) | Target::Tree(_) => {
                    let mut m = vec![Metric::Rss, Metric::Processes];
                    m.extend(devices.iter().map(|&device| Metric::Gpu { device }));
                    m
                }
                Target::Device(_) => vec![Metric::DeviceUsed],
                Target::Host => vec![Metric::HostAvailable, Metric::CgroupUsage],
            };
            series.extend(metrics.into_iter().map(|metric| Series {
                target: TargetId(index),
                metric,
            }));
            let state = match target {
                Target::OwnProcess => State::Own(Own {
                    pid: std::process::id(),
                    hwm_start: probe
                        .process_memory(None, MemoryDetail::Fast)
                        .ok()
                        .and_then(|m| m.peak_rss_bytes),
                    sampled_max: 0,
                }),
                Target::Pids(pids) => {
                    let mut set = ProcSet {
                        is_tree: false,
                        members: Vec::with_capacity(pids.len()),
                        departed: None,
                        seen: 0,
                        #[cfg(not(target_os = "linux"))]
                        discovery: None,
                    };
                    for &pid in pids {
                        if set.contains(pid) {
                            continue;
                        }
                        set.add(&mut env, pid, start_time(&probe, pid), false);
                        if !set.contains(pid) {
                            these_notes.push(format!("pid {pid} did not exist at the start"));
                        }
                    }
                    State::Procs(set)
                }
                Target::Tree(root) => {
                    let mut set = ProcSet {
                        is_tree: true,
                        members: Vec::with_capacity(64),
                        departed: None,
                        seen: 0,
                        #[cfg(not(target_os = "linux"))]
                        discovery: Some(Box::default()),
                    };
                    set.add(&mut env, *root, start_time(&probe, *root), false);
                    if !set.contains(*root) {
                        these_notes.push(format!("pid {root} did not exist at the start"));
                    }
                    if !follows_trees() {
                        these_notes.push(
                            "descendants are not followed on this platform: the root alone is \
                             sampled"
                                .to_owned(),
                        );
                    }
                    State::Procs(set)
                }
                Target::Device(device) => State::Device(*device),
                Target::Host => {
                    host_start = probe.host_memory().ok();
                    State::Host
                }
            };
            states.push(TargetState {
                state,
                first_series,
            });
            target_notes.push(these_notes);
        }

        #[cfg(target_os = "linux")]
        let discovery = states
            .iter()
            .any(|t| matches!(&t.state, State::Procs(set) if set.is_tree))
            .then(|| env.discovery());

        let width = series.len();
        let host = host_start.as_ref().map(|h| HostSummary {
            total_bytes: Some(h.total_bytes),
            cgroup: h.cgroup.clone(),
            cgroup_peak_bytes: None,
        });
        let shared = Arc::new(Shared {
            stop: Mutex::new(false),
            wake: Condvar::new(),
            progress: Mutex::new(Progress {
                accs: vec![Acc::default(); width],
                samples: 0,
                late: 0,
                elapsed: Duration::ZERO,
                largest: vec![None; targets.len()],
                seen: vec![0; targets.len()],
                ring: (builder.timeline > 0).then(|| Ring::new(builder.timeline, width)),
                host,
                cpu: None,
                notes: notes.clone(),
            }),
            finished: Mutex::new(false),
            done: Condvar::new(),
        });
        let meta = Meta {
            shared: Arc::clone(&shared),
            interval: builder.interval,
            series: series.clone(),
            targets: targets.clone(),
            target_notes,
        };
        let engine = Self {
            probe,
            env,
            #[cfg(target_os = "linux")]
            discovery,
            targets: states,
            devices,
            series,
            values: vec![None; width],
            start: Instant::now(),
            start_wall: SystemTime::now(),
            interval: builder.interval,
            samples: 0,
            late: 0,
            on_sample: builder.on_sample,
            shared,
            host_start,
            cpu_start: None,
        };
        (engine, meta)
    }

    /// The thread's body: a sample per interval slot until stopped, then a last one.
    fn run(mut self) {
        self.cpu_start = platform::thread_cpu_time();
        let mut next = self.start;
        loop {
            next = self.next_slot(next);
            let mut stop = lock(&self.shared.stop);
            loop {
                if *stop {
                    drop(stop);
                    self.tick(Instant::now());
                    self.finish();
                    return;
                }
                let now = Instant::now();
                if now >= next {
                    break;
                }
                stop = self
                    .shared
                    .wake
                    .wait_timeout(stop, next - now)
                    .map(|(guard, _)| guard)
                    .unwrap_or_else(|poisoned| poisoned.into_inner().0);
            }
            drop(stop);
            self.tick(Instant::now());
        }
    }

    /// The slot after `previous`, skipping (and counting) slots already past.
    fn next_slot(&mut self, previous: Instant) -> Instant {
        let now = Instant::now();
        let next = previous.checked_add(self.interval).unwrap_or(now);
        if next > now {
            return next;
        }
        let step = self.interval.as_nanos().max(1);
        let missed = now.duration_since(next).as_nanos() / step + 1;
        self.late = self
            .late
            .saturating_add(u64::try_from(missed).unwrap_or(u64::MAX));
        let ahead = u64::try_from(missed.saturating_mul(step)).unwrap_or(u64::MAX);
        next.checked_add(Duration::from_nanos(ahead))
            .unwrap_or_else(|| now + self.interval)
    }

    /// Takes one sample of every target and publishes it.
    fn tick(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.start);
        self.values.fill(None);

        #[cfg(target_os = "linux")]
        if let Some(discovery) = self.discovery.as_mut() {
            self.env.poll(discovery, now);
        }

        for target in &mut self.targets {
            let slot = target.first_series;
            match &mut target.state {
                State::Own(own) => {
                    let rss = self.probe.process_rss().ok();
                    if let Some(rss) = rss {
                        own.sampled_max = own.sampled_max.max(rss);
                    }
                    set(&mut self.values, slot, rss);
                    set(&mut self.values, slot + 1, Some(1));
                }
                State::Procs(set_) => {
                    #[cfg(target_os = "linux")]
                    if let Some(discovery) = self.discovery.as_ref()
                        && set_.is_tree
                    {
                        set_.adopt(&mut self.env, discovery.found(), self.samples > 0);
                    }
                    #[cfg(not(target_os = "linux"))]
                    if set_.is_tree
                        && let Some(e) = set_.discover(&mut self.env, now, self.samples > 0)
                    {
                        lock(&self.shared.progress).notes.push(format!(
                            "a process tree's descendants could not be listed ({e}): only those \
                             found so far are sampled"
                        ));
                    }
                    let (rss, count) = set_.sample(&mut self.env, now);
                    set(&mut self.values, slot, rss);
                    set(&mut self.values, slot + 1, Some(count));
                }
                State::Device(_) | State::Host => {}
            }
        }

        self.sample_gpus();
        self.sample_devices_and_host();
        self.samples += 1;
        self.publish(elapsed);

        if let Some(callback) = self.on_sample.as_mut() {
            let sample = Sample {
                index: self.samples - 1,
                elapsed,
                wall_clock: self
                    .start_wall
                    .checked_add(elapsed)
                    .unwrap_or(self.start_wall),
                series: &self.series,
                values: &self.values,
            };
            callback(&sample);
        }
    }

    /// [`Metric::Gpu`] of every process target, one process listing per device.
    fn sample_gpus(&mut self) {
        for (k, &device) in self.devices.iter().enumerate() {
            let mut rows: Option<Option<Vec<GpuProcessEntry>>> = None;
            for target in &self.targets {
                let slot = target.first_series + 2 + k;
                let value = match &target.state {
                    State::Own(_) => self
                        .probe
                        .process_gpu_info(device)
                        .ok()
                        .and_then(|g| g.process_bytes),
                    State::Procs(set_) => rows
                        .get_or_insert_with(|| self.probe.processes(device).ok())
                        .as_deref()
                        .and_then(|rows| set_.gpu_bytes(rows)),
                    State::Device(_) | State::Host => continue,
                };
                set(&mut self.values, slot, value);
            }
        }
    }

    fn sample_devices_and_host(&mut self) {
        for target in &self.targets {
            let slot = target.first_series;
            match target.state {
                State::Device(device) => {
                    let used = self
                        .probe
                        .device_info(device)
                        .ok()
                        .and_then(|d| d.used_bytes);
                    set(&mut self.values, slot, used);
                }
                State::Host => {
                    let host = self.probe.host_memory().ok();
                    let available = host.as_ref().and_then(|h| h.available_bytes);
                    let cgroup = host
                        .as_ref()
                        .and_then(|h| h.cgroup.as_ref())
                        .and_then(|c| c.usage_bytes);
                    set(&mut self.values, slot, available);
                    set(&mut self.values, slot + 1, cgroup);
                }
                State::Own(_) | State::Procs(_) => {}
            }
        }
    }

    fn publish(&mut self, elapsed: Duration) {
        let mut progress = lock(&self.shared.progress);
        for (acc, value) in progress.accs.iter_mut().zip(&self.values) {
            acc.add(*value, elapsed);
        }
        progress.samples = self.samples;
        progress.late = self.late;
        progress.elapsed = elapsed;
        for (i, target) in self.targets.iter().enumerate() {
            let (largest, seen) = match &target.state {
                State::Own(own) => (Some(own.largest(None)), 1),
                State::Procs(set_) => (set_.largest(), set_.seen),
                State::Device(_) | State::Host => (None, 0),
            };
            if let Some(slot) = progress.largest.get_mut(i) {
                *slot = largest;
            }
            if let Some(slot) = progress.seen.get_mut(i) {
                *slot = seen;
            }
        }
        if let Some(ring) = progress.ring.as_mut() {
            ring.push(elapsed, &self.values);
        }
    }

    /// End-of-run readings: high-water marks, the cgroup's peak, the thread's CPU time.
    fn finish(&mut self) {
        let mut largest = Vec::with_capacity(self.targets.len());
        for target in &mut self.targets {
            largest.push(match &mut target.state {
                State::Own(own) => {
                    let hwm_end = self
                        .probe
                        .process_memory(None, MemoryDetail::Fast)
                        .ok()
                        .and_then(|m| m.peak_rss_bytes);
                    Some(own.largest(hwm_end))
                }
                State::Procs(set_) => {
                    set_.refresh_hwm(&mut self.env);
                    set_.largest()
                }
                State::Device(_) | State::Host => None,
            });
        }
        let host = self.host_start.as_ref().map(|start| {
            let end = self.probe.host_memory().ok();
            let cgroup_end = end.as_ref().and_then(|e| e.cgroup.clone());
            let peak_start = start.cgroup.as_ref().and_then(|c| c.peak_bytes);
            let peak_end = cgroup_end.as_ref().and_then(|c| c.peak_bytes);
            HostSummary {
                total_bytes: Some(start.total_bytes),
                cgroup: cgroup_end.or_else(|| start.cgroup.clone()),
                cgroup_peak_bytes: match (peak_start, peak_end) {
                    (Some(s), Some(e)) if e > s => Some(e),
                    _ => None,
                },
            }
        });
        let cpu = match (self.cpu_start, platform::thread_cpu_time()) {
            (Some(start), Some(end)) => Some(end.saturating_sub(start)),
            _ => None,
        };
        let mut progress = lock(&self.shared.progress);
        progress.largest = largest;
        if host.is_some() {
            progress.host = host;
        }
        progress.cpu = cpu;
    }
}

fn set(values: &mut [Option<u64>], slot: usize, value: Option<u64>) {
    if let Some(v) = values.get_mut(slot) {
        *v = value;
    }
}

/// The devices to sample process targets' GPU memory on. A device readable only through
/// `nvidia-smi` is left out (one subprocess per sample is too slow), with a note.
fn sampled_devices(probe: &Probe, devices: &Devices, notes: &mut Vec<String>) -> Vec<u32> {
    let asked: Vec<u32> = match devices {
        Devices::None => return Vec::new(),
        Devices::Only(list) => list.clone(),
        Devices::All => match probe.device_count() {
            Ok(count) => (0..count).collect(),
            Err(e) => {
                notes.push(format!("GPU memory not sampled: {e}"));
                return Vec::new();
            }
        },
    };
    asked
        .into_iter()
        .filter(|&index| match probe.device_info(index) {
            Ok(info) if info.source == GpuQuerySource::NvidiaSmi => {
                notes.push(format!(
                    "GPU {index} not sampled: only nvidia-smi can read it, one subprocess per \
                     sample is too slow"
                ));
                false
            }
            Ok(_) => true,
            Err(e) => {
                notes.push(format!("GPU {index} not sampled: {e}"));
                false
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peak_keeps_min_max_mean_last_and_when() {
        let mut acc = Acc::default();
        for (v, ms) in [
            (Some(5), 0),
            (Some(9), 10),
            (None, 20),
            (Some(1), 30),
            (Some(9), 40),
        ] {
            acc.add(v, Duration::from_millis(ms));
        }
        let p = acc.peak().unwrap();
        assert_eq!((p.min, p.max, p.last, p.samples), (1, 9, 9, 4));
        assert_eq!(
            p.max_at,
            Duration::from_millis(10),
            "first time the max was seen"
        );
        assert_eq!(p.min_at, Duration::from_millis(30));
        assert!((p.mean - 6.0).abs() < f64::EPSILON);
        assert_eq!(acc.missed, 1);
        assert_eq!(Acc::default().peak(), None);
    }

    #[test]
    fn a_full_ring_keeps_the_latest_points_in_order() {
        let series = [Series {
            target: TargetId(0),
            metric: Metric::Rss,
        }];
        let mut ring = Ring::new(3, 1);
        for i in 0..5_u64 {
            ring.push(Duration::from_millis(i), &[Some(i)]);
        }
        let timeline = ring.timeline(&series);
        let values: Vec<Option<u64>> = timeline.points.iter().map(|p| p.values[0]).collect();
        assert_eq!(values, [Some(2), Some(3), Some(4)]);
        assert_eq!(timeline.dropped, 2);
        assert!(Ring::new(0, 1).timeline(&series).points.is_empty());
    }

    fn member(new: bool, first: Option<u64>, hwm: Option<u64>, sampled: u64) -> ProcessPeak {
        let mut env = platform::Env::new(&ProbeHandle::Global(crate::probe::global()));
        let reader = env.open(std::process::id()).unwrap();
        Member {
            pid: 7,
            start_ticks: None,
            reader,
            new,
            hwm_first: first,
            hwm,
            hwm_read_at: Instant::now(),
            rss_at_hwm_read: 0,
            sampled_max: sampled,
        }
        .peak()
    }

    #[test]
    fn a_high_water_mark_counts_only_when_it_belongs_to_the_run() {
        let exact = PeakSource::KernelHighWaterMark;
        let sampled = PeakSource::Sampled;
        // Born during the run: its whole mark is the run's.
        assert_eq!(member(true, Some(10), Some(10), 8).source, exact);
        // Older than the run, mark unchanged: the mark may come from before.
        let old = member(false, Some(50), Some(50), 20);
        assert_eq!((old.source, old.peak_rss_bytes), (sampled, 20));
        // Older, but its mark rose during the run.
        let rose = member(false, Some(50), Some(70), 60);
        assert_eq!((rose.source, rose.peak_rss_bytes), (exact, 70));
        // A stale mark well below a later sample is not reported as exact...
        assert_eq!(member(true, Some(10), Some(10), 12).source, sampled);
        // ... but counter noise of a few pages is not staleness.
        let noisy = member(true, Some(1000), Some(1000), 1010);
        assert_eq!((noisy.source, noisy.peak_rss_bytes), (exact, 1000));
    }

    #[test]
    fn the_own_process_peak_is_exact_only_when_its_mark_rose() {
        let own = Own {
            pid: 1,
            hwm_start: Some(100),
            sampled_max: 90,
        };
        assert_eq!(
            own.largest(Some(150)).source,
            PeakSource::KernelHighWaterMark
        );
        assert_eq!(own.largest(Some(150)).peak_rss_bytes, 150);
        assert_eq!(own.largest(Some(100)).source, PeakSource::Sampled);
        assert_eq!(own.largest(Some(100)).peak_rss_bytes, 90);
        assert_eq!(own.largest(None).source, PeakSource::Sampled);
    }

    #[test]
    fn targets_read_as_english() {
        assert_eq!(Target::Pids(vec![1, 22]).to_string(), "pids 1,22");
        assert_eq!(Target::Tree(5).to_string(), "process tree of pid 5");
        assert_eq!(Target::Device(0).to_string(), "GPU 0");
    }

    #[test]
    fn sampler_and_report_are_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Sampler>();
        assert_send::<Report>();
        assert_send::<Engine>();
    }
}

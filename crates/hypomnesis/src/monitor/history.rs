//! The monitor's memory of the last minutes: per-device and per-process series, and charts of
//! them at any zoom.
//!
//! Why: a view that charts "memory used over the last 10 minutes" into 80 columns, then 200,
//! then zooms to the last minute, must never lose the peak that made the job die, and must
//! never draw a line through minutes the driver did not answer. So a query splits a span into
//! buckets and reports per bucket the smallest, largest and last reading
//! ([`HistoryPoint`]): a peak shows at every zoom, and a bucket without readings is a gap
//! (`None`), never 0 and never interpolated.
//!
//! How: readings are kept raw, one `f64` per series per tick (NaN marks a recorded gap: the
//! device was absent, the figure unknown, the driver timed out), beside one list of tick
//! times shared by every series of the same cadence. A reading stands from its tick until the
//! next tick of its series, or for at most one and a half cadences when no next tick came (a tick
//! the monitor skipped, a driver stuck in a call): past that the chart shows a gap. So a
//! process series scanned every 3 s reads as a continuous line in 1-s buckets, and a stalled
//! monitor shows as a gap on the right edge.
//!
//! An hour of raw readings of 64 GPUs and 1,000 processes is ~40 MB, too much for a view
//! that should stay near 30 MiB; ten minutes is a quarter of it. So readings are kept raw
//! for the window ([`HistoryLimits::window`], 10 minutes by default) and, as they leave it,
//! folded into coarse blocks kept up to the long window ([`HistoryLimits::long_window`], an
//! hour): per block of [`HistoryLimits::block_ticks`] ticks (10 s of device readings, 30 s of
//! process scans at the defaults), the smallest, largest and last reading that stood in it
//! and how many were taken, on a grid anchored at the first tick. A block is exactly a bucket
//! of the raw chart, so a query reaching past the window answers from the blocks for that
//! part and from the raw readings after the newest folded block: a peak an hour ago still
//! shows, a block in which nothing stood is a gap, and the tiers meet on a block boundary
//! with no hole and no reading counted twice (buckets on the blocks' grid read exactly as
//! they would from raw readings). Finer than a block, the coarse part is block-wide: a block
//! straddling two buckets is in both, and a gap shorter than a block does not show there.
//!
//! Blocks older than the long window are evicted, series with nothing known left in either
//! tier are dropped (a process gone keeps only its blocks), and the number of process series
//! is capped — a process seen now takes the place of one known only from its blocks — so
//! memory stays bounded however many processes come and go.
//!
//! The store is pure: it is fed [`Frame`]s with their own timestamps ([`History::record`])
//! and queried with an explicit end instant, so it is tested without threads or clocks, and a
//! recording can be replayed into it.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::frame::{DeviceFrame, Frame};
use crate::snapshot::GpuProcessEntry;

/// A device figure the monitor keeps a series of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DeviceMetric {
    /// Memory allocated by contexts, bytes ([`crate::GpuDeviceInfo::used_bytes`]).
    Used,
    /// Memory not allocated, bytes ([`crate::GpuDeviceInfo::free_bytes`]).
    Free,
    /// Memory reserved by driver and firmware, bytes ([`crate::GpuDeviceInfo::reserved_bytes`]).
    Reserved,
    /// GPU buffers held in system RAM (GTT, shared memory), bytes
    /// ([`crate::GpuDeviceInfo::system_used_bytes`]).
    SystemUsed,
    /// What a new allocation can still get, bytes ([`crate::GpuDeviceInfo::budget_bytes`]).
    Budget,
    /// Compute/graphics engine utilization, percent
    /// ([`crate::DeviceTelemetry::gpu_utilization_percent`]).
    Utilization,
    /// Core temperature, °C ([`crate::DeviceTelemetry::temperature_celsius`]).
    Temperature,
    /// Power draw, W ([`crate::DeviceTelemetry::power_watts`]).
    Power,
}

impl DeviceMetric {
    /// Every device metric, in the order of the enum.
    pub const ALL: [Self; 8] = [
        Self::Used,
        Self::Free,
        Self::Reserved,
        Self::SystemUsed,
        Self::Budget,
        Self::Utilization,
        Self::Temperature,
        Self::Power,
    ];

    /// The JSON name of the figure (`"used_bytes"`, `"power_watts"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Used => "used_bytes",
            Self::Free => "free_bytes",
            Self::Reserved => "reserved_bytes",
            Self::SystemUsed => "system_used_bytes",
            Self::Budget => "budget_bytes",
            Self::Utilization => "gpu_utilization_percent",
            Self::Temperature => "temperature_celsius",
            Self::Power => "power_watts",
        }
    }

    /// The unit of its values.
    #[must_use]
    pub const fn unit(self) -> Unit {
        match self {
            Self::Used | Self::Free | Self::Reserved | Self::SystemUsed | Self::Budget => {
                Unit::Bytes
            }
            Self::Utilization => Unit::Percent,
            Self::Temperature => Unit::Celsius,
            Self::Power => Unit::Watts,
        }
    }

    /// The figure in `device`, as `f64`; `None` when unknown or not read.
    #[must_use]
    pub fn read(self, device: &DeviceFrame) -> Option<f64> {
        let info = &device.device;
        let telemetry = device.telemetry.as_ref();
        #[allow(clippy::cast_precision_loss)] // bytes below 2^53 (8 PiB) are exact
        let bytes = |b: Option<u64>| b.map(|b| b as f64);
        match self {
            Self::Used => bytes(info.used_bytes),
            Self::Free => bytes(info.free_bytes),
            Self::Reserved => bytes(info.reserved_bytes),
            Self::SystemUsed => bytes(info.system_used_bytes),
            Self::Budget => bytes(info.budget_bytes),
            Self::Utilization => telemetry.and_then(|t| t.gpu_utilization_percent),
            Self::Temperature => telemetry.and_then(|t| t.temperature_celsius),
            Self::Power => telemetry.and_then(|t| t.power_watts),
        }
    }

    const fn slot(self) -> usize {
        self as usize
    }
}

/// A per-process figure the monitor keeps a series of, per (pid, device).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ProcessMetric {
    /// The process's device memory on this device (VRAM), bytes
    /// ([`GpuProcessEntry::used_bytes`]).
    Used,
    /// Its GPU buffers in system RAM (GTT, shared memory), bytes
    /// ([`GpuProcessEntry::system_bytes`]).
    System,
    /// Its resident memory, bytes ([`GpuProcessEntry::rss_bytes`]; read only with process
    /// details).
    Rss,
}

impl ProcessMetric {
    /// Every process metric, in the order of the enum.
    pub const ALL: [Self; 3] = [Self::Used, Self::System, Self::Rss];

    /// The JSON name of the figure (`"used_bytes"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Used => "used_bytes",
            Self::System => "system_bytes",
            Self::Rss => "rss_bytes",
        }
    }

    /// The unit of its values (bytes).
    #[must_use]
    pub const fn unit(self) -> Unit {
        Unit::Bytes
    }

    /// The figure in `row`, as `f64`; `None` when unknown or not read.
    #[must_use]
    pub fn read(self, row: &GpuProcessEntry) -> Option<f64> {
        let figure = match self {
            Self::Used => row.used_bytes,
            Self::System => row.system_bytes,
            Self::Rss => row.rss_bytes,
        };
        #[allow(clippy::cast_precision_loss)] // bytes below 2^53 (8 PiB) are exact
        figure.map(|b| b as f64)
    }

    const fn slot(self) -> usize {
        self as usize
    }
}

/// The unit of a metric's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Unit {
    /// Bytes.
    Bytes,
    /// Percent, 0–100.
    Percent,
    /// Degrees Celsius.
    Celsius,
    /// Watts.
    Watts,
}

/// One bucket of a history query: the readings that stood during `[start, end)`.
///
/// `min`, `max` and `last` are `None` together: the bucket is a gap (no reading stood in it:
/// the device was absent, the figure unknown, the driver did not answer, a tick was skipped,
/// or the bucket lies before the history begins).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct HistoryPoint {
    /// Where the bucket begins.
    pub start: Instant,
    /// Where it ends (exclusive); `end - start` is the bucket's width.
    pub end: Instant,
    /// How long before the query's end the bucket ends (0 for the newest bucket): the
    /// x position of a chart whose right edge is "now".
    pub ago: Duration,
    /// The smallest reading that stood in the bucket.
    pub min: Option<f64>,
    /// The largest reading that stood in the bucket: a peak is in the max of the bucket it
    /// was read in, at every zoom.
    pub max: Option<f64>,
    /// The newest reading that stood in the bucket.
    pub last: Option<f64>,
    /// How many readings (with a value) were taken inside the bucket. A bucket narrower than
    /// the series' cadence can have values with 0 samples: a reading taken before it still
    /// stood. Past the raw window a coarse block's readings count in the bucket the block
    /// begins in (none when it begins before the span).
    pub samples: u32,
}

impl HistoryPoint {
    /// Whether no reading stood in the bucket.
    #[must_use]
    pub fn is_gap(&self) -> bool {
        self.last.is_none()
    }
}

/// How much a [`History`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HistoryLimits {
    /// How far back every reading is kept (the raw tier).
    pub window: Duration,
    /// How far back readings are kept folded into blocks (the coarse tier): older than
    /// `window`, younger than this. At most `window` means no coarse tier.
    pub long_window: Duration,
    /// How many ticks of a cadence one coarse block spans: blocks are
    /// `block_ticks × device_cadence` wide for devices and `block_ticks × process_cadence`
    /// for processes (10 s and 30 s at the monitor's defaults).
    pub block_ticks: u32,
    /// The device ticks' nominal spacing (the monitor's interval).
    pub device_cadence: Duration,
    /// The process scans' nominal spacing (the interval times the scan period).
    pub process_cadence: Duration,
    /// At most this many (pid, device) series are kept; past it the new processes with the
    /// least memory go without a series.
    pub max_process_series: usize,
}

/// Default [`HistoryLimits::max_process_series`]: 4,096 processes × 3 figures × 200 scans
/// (10 minutes at 3 s) is about 20 MB of readings at worst, and as much again for their
/// hour of blocks.
pub const DEFAULT_MAX_PROCESS_SERIES: usize = 4096;

/// Default [`HistoryLimits::long_window`]: an hour, the widest zoom of `hmn top`.
pub const DEFAULT_LONG_WINDOW: Duration = Duration::from_secs(3_600);

/// Default [`HistoryLimits::block_ticks`]: a block of 10 ticks (10 s of device readings and
/// 30 s of process scans at the monitor's defaults), under the 18 s a column of an hour's
/// chart 200 columns wide spans.
pub const DEFAULT_BLOCK_TICKS: u32 = 10;

impl HistoryLimits {
    /// Limits for a monitor ticking every `interval`, scanning processes every
    /// `process_every` ticks, keeping `window` raw and up to [`DEFAULT_LONG_WINDOW`] (or
    /// `window`, when longer) in blocks of [`DEFAULT_BLOCK_TICKS`].
    #[must_use]
    pub fn new(window: Duration, interval: Duration, process_every: u32) -> Self {
        Self {
            window,
            long_window: window.max(DEFAULT_LONG_WINDOW),
            block_ticks: DEFAULT_BLOCK_TICKS,
            device_cadence: interval,
            process_cadence: interval.saturating_mul(process_every.max(1)),
            max_process_series: DEFAULT_MAX_PROCESS_SERIES,
        }
    }

    /// These limits keeping blocks up to `long_window` back (at most the raw window: no
    /// coarse tier).
    #[must_use]
    pub const fn with_long_window(mut self, long_window: Duration) -> Self {
        self.long_window = long_window;
        self
    }

    /// These limits with coarse blocks `ticks` ticks wide (at least 1).
    #[must_use]
    pub const fn with_block_ticks(mut self, ticks: u32) -> Self {
        self.block_ticks = if ticks == 0 { 1 } else { ticks };
        self
    }

    /// Whether readings older than the window are kept in blocks.
    const fn has_coarse_tier(&self) -> bool {
        self.long_window.as_nanos() > self.window.as_nanos()
    }

    /// These limits with at most `max` process series.
    #[must_use]
    pub const fn with_max_process_series(mut self, max: usize) -> Self {
        self.max_process_series = max;
        self
    }
}

/// The times of one cadence's ticks, oldest first; tick `seq` is at
/// `times[seq - first_seq]`.
#[derive(Debug, Clone)]
struct Ticks {
    first_seq: u64,
    times: VecDeque<Instant>,
    cadence: Duration,
    /// The width of this cadence's coarse blocks; block `k` covers
    /// `[origin + k·block, origin + (k + 1)·block)`, `origin` the first tick of the history.
    block: Duration,
    /// Blocks before this one are folded into the coarse tier; the raw tier answers from its
    /// start on. 0 while nothing is folded.
    folded: u64,
}

impl Ticks {
    fn new(cadence: Duration, block_ticks: u32) -> Self {
        Self {
            first_seq: 0,
            times: VecDeque::new(),
            cadence,
            block: cadence
                .saturating_mul(block_ticks)
                .max(Duration::from_nanos(1)),
            folded: 0,
        }
    }

    /// Where block `k` begins.
    fn block_start(&self, origin: Instant, k: u64) -> Instant {
        let ns = self.block.as_nanos().saturating_mul(u128::from(k));
        origin
            .checked_add(Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX)))
            .unwrap_or(origin)
    }

    /// The block `at` lies in (0 before the origin).
    fn block_of(&self, origin: Instant, at: Instant) -> u64 {
        let since = at.saturating_duration_since(origin).as_nanos();
        u64::try_from(since / self.block.as_nanos().max(1)).unwrap_or(u64::MAX)
    }

    /// Drops the ticks whose reading stands only before `boundary` (the next tick is at or
    /// before it); the newest tick before it stays, since its reading stands past it.
    /// Returns the first kept sequence number.
    fn evict_standing_before(&mut self, boundary: Instant) -> u64 {
        while self.times.get(1).is_some_and(|&next| next <= boundary) {
            self.times.pop_front();
            self.first_seq += 1;
        }
        self.first_seq
    }

    /// The next tick's sequence number.
    fn next_seq(&self) -> u64 {
        self.first_seq + self.times.len() as u64
    }

    fn at(&self, seq: u64) -> Option<Instant> {
        let i = usize::try_from(seq.checked_sub(self.first_seq)?).ok()?;
        self.times.get(i).copied()
    }

    /// Appends a tick at `at` and returns its sequence number; `None` when `at` is not after
    /// the newest tick (a frame out of order is not recorded).
    fn push(&mut self, at: Instant) -> Option<u64> {
        if self.times.back().is_some_and(|&newest| at <= newest) {
            return None;
        }
        let seq = self.next_seq();
        self.times.push_back(at);
        Some(seq)
    }

    /// Drops ticks before `cutoff`; returns the first kept sequence number.
    fn evict_before(&mut self, cutoff: Instant) -> u64 {
        while self.times.front().is_some_and(|&t| t < cutoff) {
            self.times.pop_front();
            self.first_seq += 1;
        }
        self.first_seq
    }
}

/// What stood in one coarse block of one figure (or in one bucket of a chart).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Summary {
    min: f64,
    max: f64,
    last: f64,
    samples: u32,
}

impl Summary {
    fn of(point: &HistoryPoint) -> Option<Self> {
        Some(Self {
            min: point.min?,
            max: point.max?,
            last: point.last?,
            samples: point.samples,
        })
    }
}

/// One figure's coarse blocks, oldest first: what stood in each (NaN in all three where
/// nothing did), and how many readings were taken in it. Empty while every block of the
/// series is a gap for this figure (a figure the driver never reports costs nothing).
#[derive(Debug, Clone, Default)]
struct Blocks {
    min: VecDeque<f64>,
    max: VecDeque<f64>,
    last: VecDeque<f64>,
    /// Saturating: a block of more than 65,535 readings says 65,535.
    samples: VecDeque<u16>,
}

impl Blocks {
    fn push(&mut self, summary: Option<Summary>) {
        let s = summary.unwrap_or(Summary {
            min: f64::NAN,
            max: f64::NAN,
            last: f64::NAN,
            samples: 0,
        });
        self.min.push_back(s.min);
        self.max.push_back(s.max);
        self.last.push_back(s.last);
        self.samples
            .push_back(u16::try_from(s.samples).unwrap_or(u16::MAX));
    }

    fn reserve(&mut self, blocks: usize) {
        self.min.reserve_exact(blocks);
        self.max.reserve_exact(blocks);
        self.last.reserve_exact(blocks);
        self.samples.reserve_exact(blocks);
    }

    fn pop_front(&mut self) {
        self.min.pop_front();
        self.max.pop_front();
        self.last.pop_front();
        self.samples.pop_front();
    }

    fn get(&self, i: usize) -> Option<Summary> {
        let last = *self.last.get(i)?;
        if last.is_nan() {
            return None;
        }
        Some(Summary {
            min: *self.min.get(i)?,
            max: *self.max.get(i)?,
            last,
            samples: u32::from(*self.samples.get(i)?),
        })
    }
}

/// The coarse tier of `N` figures of one thing: blocks from `first_block` on, `len` of them
/// (every figure's [`Blocks`] holds `len` or, while all gaps, none).
#[derive(Debug, Clone)]
struct Coarse<const N: usize> {
    first_block: u64,
    len: u64,
    /// How many blocks a figure's [`Blocks`] is given room for when its first is known.
    capacity: usize,
    figures: [Blocks; N],
    /// The newest block with at least one figure known.
    last_known_block: Option<u64>,
}

impl<const N: usize> Coarse<N> {
    fn new(capacity: usize) -> Self {
        Self {
            first_block: 0,
            len: 0,
            capacity,
            figures: std::array::from_fn(|_| Blocks::default()),
            last_known_block: None,
        }
    }

    /// Records block `block` (after every block kept), filling the blocks between with gaps.
    fn push(&mut self, block: u64, summaries: [Option<Summary>; N]) {
        if self.len == 0 {
            self.first_block = block;
        }
        let missing = block.saturating_sub(self.first_block + self.len);
        for (figure, summary) in self.figures.iter_mut().zip(summaries) {
            let gaps = if figure.last.is_empty() {
                if summary.is_none() {
                    continue;
                }
                figure.reserve(self.capacity);
                self.len + missing
            } else {
                missing
            };
            for _ in 0..gaps {
                figure.push(None);
            }
            figure.push(summary);
        }
        self.len += missing + 1;
        if summaries.iter().any(Option::is_some) {
            self.last_known_block = Some(block);
        }
    }

    /// Drops the blocks before `first_kept`.
    fn evict_before(&mut self, first_kept: u64) {
        while self.len > 0 && self.first_block < first_kept {
            for figure in &mut self.figures {
                figure.pop_front();
            }
            self.first_block += 1;
            self.len -= 1;
        }
        if self.len == 0 {
            self.first_block = self.first_block.max(first_kept);
            for figure in &mut self.figures {
                *figure = Blocks::default();
            }
        }
    }

    fn is_spent(&self) -> bool {
        self.last_known_block
            .is_none_or(|block| block < self.first_block)
    }

    /// Figure `slot` in block `block`; `None` for a gap or a block not kept.
    fn get(&self, slot: usize, block: u64) -> Option<Summary> {
        let i = usize::try_from(block.checked_sub(self.first_block)?).ok()?;
        self.figures.get(slot)?.get(i)
    }
}

/// How much room a new series is given up front: what a full window holds (up to a bound),
/// allocated once, instead of grown by doubling to up to twice that — at 64 GPUs and 1,000
/// processes the difference is most of 10 MB.
#[derive(Debug, Clone, Copy)]
struct Room {
    readings: usize,
    blocks: usize,
}

impl Room {
    /// At most this much is reserved ahead; past it a series grows as it fills.
    const MAX: usize = 4_096;

    /// The room for a series of `ticks`' cadence under `limits`.
    fn of(ticks: &Ticks, limits: &HistoryLimits) -> Self {
        let per = |span: Duration, width: Duration| {
            let n = span.as_nanos() / width.as_nanos().max(1);
            usize::try_from(n).unwrap_or(usize::MAX).min(Self::MAX)
        };
        let coarse = limits.has_coarse_tier();
        // The raw tier holds the window and, with blocks, up to a block being folded.
        let readings = per(limits.window, ticks.cadence)
            + if coarse {
                per(ticks.block, ticks.cadence)
            } else {
                0
            }
            + 2;
        let blocks = if coarse {
            per(
                limits.long_window.saturating_sub(limits.window),
                ticks.block,
            ) + 2
        } else {
            0
        };
        Self {
            readings: readings.min(Self::MAX),
            blocks: blocks.min(Self::MAX),
        }
    }
}

/// Readings of `N` figures of one thing (a device, a process on a device), one per tick from
/// `first_seq` on (NaN is a gap), and the blocks they were folded into once older than the
/// window.
#[derive(Debug, Clone)]
struct Readings<const N: usize> {
    first_seq: u64,
    values: [VecDeque<f64>; N],
    /// The largest reading of each figure since the series began.
    peaks: [Option<f64>; N],
    /// The newest tick with at least one figure known; `None` before the first.
    last_known_seq: Option<u64>,
    coarse: Coarse<N>,
}

impl<const N: usize> Readings<N> {
    /// A series from tick `first_seq` on, with the `room` a full window needs.
    fn new(first_seq: u64, room: Room) -> Self {
        Self {
            first_seq,
            values: std::array::from_fn(|_| VecDeque::with_capacity(room.readings)),
            peaks: [None; N],
            last_known_seq: None,
            coarse: Coarse::new(room.blocks),
        }
    }

    /// Records tick `seq`'s figures (`None` where unknown), filling skipped ticks of this
    /// series with gaps.
    fn push(&mut self, seq: u64, figures: [Option<f64>; N]) {
        let len = self.values[0].len() as u64;
        let missing = seq.saturating_sub(self.first_seq + len);
        for series in &mut self.values {
            for _ in 0..missing {
                series.push_back(f64::NAN);
            }
        }
        let mut known = false;
        for ((series, peak), figure) in self.values.iter_mut().zip(&mut self.peaks).zip(figures) {
            let value = figure.filter(|v| v.is_finite());
            series.push_back(value.unwrap_or(f64::NAN));
            if let Some(v) = value {
                known = true;
                *peak = Some(peak.map_or(v, |p: f64| p.max(v)));
            }
        }
        if known {
            self.last_known_seq = Some(seq);
        }
    }

    /// Drops readings before tick `first_kept`.
    fn evict_before(&mut self, first_kept: u64) {
        while self.first_seq < first_kept && !self.values[0].is_empty() {
            for series in &mut self.values {
                series.pop_front();
            }
            self.first_seq += 1;
        }
        if self.values[0].is_empty() {
            self.first_seq = self.first_seq.max(first_kept);
        }
    }

    /// Whether no raw reading with a value is left: everything known was evicted, or nothing
    /// was ever known (the raw tier would chart as gaps only).
    fn raw_spent(&self) -> bool {
        self.last_known_seq.is_none_or(|seq| seq < self.first_seq)
    }

    /// Whether nothing known is left in either tier: the series can go.
    fn is_spent(&self) -> bool {
        self.raw_spent() && self.coarse.is_spent()
    }

    /// Drops raw readings that are all gaps (a process that exited, a device gone, kept for
    /// their blocks), so a series kept only for its past costs only its blocks.
    fn forget_raw_gaps(&mut self) {
        if self.raw_spent() && !self.values[0].is_empty() {
            self.first_seq += self.values[0].len() as u64;
            for series in &mut self.values {
                *series = VecDeque::new();
            }
        }
    }

    /// Folds the raw readings standing in blocks `from..to` of `ticks` into coarse blocks.
    fn fold(&mut self, ticks: &Ticks, origin: Instant, from: u64, to: u64) {
        if self.raw_spent() || to <= from {
            return;
        }
        let start = ticks.block_start(origin, from);
        let end = ticks.block_start(origin, to);
        let blocks = usize::try_from(to - from).unwrap_or(usize::MAX);
        let charts: [Vec<HistoryPoint>; N] = std::array::from_fn(|slot| {
            chart(
                ticks,
                Some(origin),
                Some((self, slot)),
                end,
                end.saturating_duration_since(start),
                blocks,
            )
        });
        for (b, block) in (from..to).enumerate() {
            let summaries: [Option<Summary>; N] =
                std::array::from_fn(|slot| charts[slot].get(b).and_then(Summary::of));
            if summaries.iter().any(Option::is_some) {
                self.coarse.push(block, summaries);
            }
        }
    }
}

/// Per-device and per-process series over a bounded window; see the module docs.
#[derive(Debug, Clone)]
pub struct History {
    limits: HistoryLimits,
    device_ticks: Ticks,
    process_ticks: Ticks,
    devices: HashMap<u32, Readings<{ DeviceMetric::ALL.len() }>>,
    /// The largest reading of each device figure since the history began; unlike the series,
    /// never evicted.
    device_peaks: HashMap<(u32, DeviceMetric), f64>,
    processes: HashMap<(u32, u32), Readings<{ ProcessMetric::ALL.len() }>>,
    /// Process rows that got no series because of the cap, over the whole history.
    uncharted_rows: u64,
    /// The first tick ever recorded: the anchor of [`History::aligned_end`]'s grid.
    origin: Option<Instant>,
}

impl History {
    /// An empty history keeping what `limits` say.
    #[must_use]
    pub fn new(limits: HistoryLimits) -> Self {
        Self {
            limits,
            device_ticks: Ticks::new(limits.device_cadence, limits.block_ticks),
            process_ticks: Ticks::new(limits.process_cadence, limits.block_ticks),
            devices: HashMap::new(),
            device_peaks: HashMap::new(),
            processes: HashMap::new(),
            uncharted_rows: 0,
            origin: None,
        }
    }

    /// The limits it keeps.
    #[must_use]
    pub fn limits(&self) -> HistoryLimits {
        self.limits
    }

    /// Records `frame` at its own time ([`Frame::taken`]): a device tick, and a process tick
    /// when the frame scanned processes itself ([`Frame::scanned_processes`]; listings carried
    /// over from an earlier scan are not recorded twice). A device missing from the frame, or
    /// a frame without devices ([`Frame::gpu_error`]), is a gap in every known device's
    /// series; likewise a failed listing for that device's processes. Frames not newer than
    /// the newest recorded are ignored. Then evicts what has left the window.
    pub fn record(&mut self, frame: &Frame) {
        self.origin.get_or_insert(frame.taken);
        if let Some(seq) = self.device_ticks.push(frame.taken) {
            self.record_devices(seq, frame);
        }
        if frame.scanned_processes()
            && let Some(seq) = self.process_ticks.push(frame.taken)
        {
            self.record_processes(seq, frame);
        }
        self.evict(frame.taken);
    }

    fn record_devices(&mut self, seq: u64, frame: &Frame) {
        let room = Room::of(&self.device_ticks, &self.limits);
        for device in &frame.devices {
            let index = device.device.index;
            let figures = DeviceMetric::ALL.map(|m| m.read(device));
            for (metric, figure) in DeviceMetric::ALL.into_iter().zip(figures) {
                if let Some(v) = figure.filter(|v| v.is_finite()) {
                    self.device_peaks
                        .entry((index, metric))
                        .and_modify(|p| *p = p.max(v))
                        .or_insert(v);
                }
            }
            self.devices
                .entry(index)
                .or_insert_with(|| Readings::new(seq, room))
                .push(seq, figures);
        }
        // Devices the frame did not list: a gap at this tick (pushed so that the gap is
        // explicit even if the series has no later tick). A series kept only for its blocks
        // needs none.
        for (index, readings) in &mut self.devices {
            if frame.device(*index).is_none() && !readings.raw_spent() {
                readings.push(seq, [None; DeviceMetric::ALL.len()]);
            }
        }
    }

    fn record_processes(&mut self, seq: u64, frame: &Frame) {
        let room = Room::of(&self.process_ticks, &self.limits);
        let mut rows: Vec<&GpuProcessEntry> = frame.processes().collect();
        // Under the cap, the processes holding the most memory get series first.
        rows.sort_by_key(|row| std::cmp::Reverse(row.used_bytes));
        // At the cap, a process seen now takes the place of one known only from its blocks
        // (gone from the window), the longest gone first: the past gives way to the present.
        let mut past: Option<Vec<(u32, u32)>> = None;
        for row in rows {
            let key = (row.pid, row.device_index);
            let figures = ProcessMetric::ALL.map(|m| m.read(row));
            if let Some(readings) = self.processes.get_mut(&key) {
                readings.push(seq, figures);
                continue;
            }
            if self.processes.len() >= self.limits.max_process_series {
                let past = past.get_or_insert_with(|| self.past_processes());
                if let Some(gone) = past.pop() {
                    self.processes.remove(&gone);
                }
            }
            if self.processes.len() < self.limits.max_process_series {
                let mut readings = Readings::new(seq, room);
                readings.push(seq, figures);
                self.processes.insert(key, readings);
            } else {
                self.uncharted_rows += 1;
            }
        }
        // Series this scan did not extend: a gap (the process exited, or the listing of its
        // device failed).
        for readings in self.processes.values_mut() {
            if readings.first_seq + (readings.values[0].len() as u64) <= seq
                && !readings.raw_spent()
            {
                readings.push(seq, [None; ProcessMetric::ALL.len()]);
            }
        }
    }

    /// The process series with nothing known in the raw window, the longest gone last.
    fn past_processes(&self) -> Vec<(u32, u32)> {
        let mut past: Vec<(Option<u64>, (u32, u32))> = self
            .processes
            .iter()
            .filter(|(_, r)| r.raw_spent())
            .map(|(key, r)| (r.coarse.last_known_block, *key))
            .collect();
        past.sort_unstable_by(|a, b| b.cmp(a));
        past.into_iter().map(|(_, key)| key).collect()
    }

    fn evict(&mut self, newest: Instant) {
        let Some(cutoff) = newest.checked_sub(self.limits.window) else {
            return;
        };
        let Some(origin) = self.origin.filter(|_| self.limits.has_coarse_tier()) else {
            let first_device = self.device_ticks.evict_before(cutoff);
            let first_process = self.process_ticks.evict_before(cutoff);
            self.devices.retain(|_, r| {
                r.evict_before(first_device);
                !r.is_spent()
            });
            self.processes.retain(|_, r| {
                r.evict_before(first_process);
                !r.is_spent()
            });
            return;
        };
        let long_cutoff = newest.checked_sub(self.limits.long_window);
        tier_out(
            &mut self.device_ticks,
            &mut self.devices,
            origin,
            cutoff,
            long_cutoff,
        );
        tier_out(
            &mut self.process_ticks,
            &mut self.processes,
            origin,
            cutoff,
            long_cutoff,
        );
    }

    /// Device `index`'s `metric` over the `span` ending at `end`, in `buckets` buckets of
    /// equal width, oldest first. Empty when `buckets` or `span` is 0; all gaps for a device
    /// with no readings in the long window. Past the raw window the answer comes from coarse
    /// blocks (see the module docs).
    #[must_use]
    pub fn device(
        &self,
        index: u32,
        metric: DeviceMetric,
        end: Instant,
        span: Duration,
        buckets: usize,
    ) -> Vec<HistoryPoint> {
        let readings = self.devices.get(&index);
        chart(
            &self.device_ticks,
            self.origin,
            readings.map(|r| (r, metric.slot())),
            end,
            span,
            buckets,
        )
    }

    /// Process `pid`'s `metric` on device `device` over the `span` ending at `end`, as
    /// [`History::device`].
    #[must_use]
    pub fn process(
        &self,
        pid: u32,
        device: u32,
        metric: ProcessMetric,
        end: Instant,
        span: Duration,
        buckets: usize,
    ) -> Vec<HistoryPoint> {
        let readings = self.processes.get(&(pid, device));
        chart(
            &self.process_ticks,
            self.origin,
            readings.map(|r| (r, metric.slot())),
            end,
            span,
            buckets,
        )
    }

    /// The largest reading of device `index`'s `metric` since the history began (kept after
    /// the reading leaves the window). `None` when it was never known.
    #[must_use]
    pub fn device_peak(&self, index: u32, metric: DeviceMetric) -> Option<f64> {
        self.device_peaks.get(&(index, metric)).copied()
    }

    /// The largest reading of process `pid`'s `metric` on `device` since its series began.
    /// `None` when never known, or when the series was dropped (the process left the long
    /// window, or got none under the cap).
    #[must_use]
    pub fn process_peak(&self, pid: u32, device: u32, metric: ProcessMetric) -> Option<f64> {
        self.processes
            .get(&(pid, device))
            .and_then(|r| r.peaks[metric.slot()])
    }

    /// The devices with a series, sorted.
    #[must_use]
    pub fn devices(&self) -> Vec<u32> {
        let mut devices: Vec<u32> = self.devices.keys().copied().collect();
        devices.sort_unstable();
        devices
    }

    /// The (pid, device) pairs with a series, sorted.
    #[must_use]
    pub fn processes(&self) -> Vec<(u32, u32)> {
        let mut keys: Vec<(u32, u32)> = self.processes.keys().copied().collect();
        keys.sort_unstable();
        keys
    }

    /// How many process rows went without a series because of
    /// [`HistoryLimits::max_process_series`], over the whole history (one per row per scan).
    #[must_use]
    pub fn uncharted_rows(&self) -> u64 {
        self.uncharted_rows
    }

    /// The end for a chart of `buckets` buckets over `span` drawn at `now`: `now` rounded up
    /// to the next bucket boundary of a grid anchored at the first recorded tick. Charts
    /// redrawn with it move by whole buckets, so a reading stays in its bucket as time passes
    /// instead of its peak flickering between neighbours; the newest bucket ends at most one
    /// bucket width after `now`. `now` itself before the first record.
    #[must_use]
    pub fn aligned_end(&self, now: Instant, span: Duration, buckets: usize) -> Instant {
        let Some(origin) = self.origin else {
            return now;
        };
        let width = span.as_nanos() / buckets.max(1) as u128;
        let Some(since) = now.checked_duration_since(origin) else {
            return now;
        };
        if width == 0 {
            return now;
        }
        let steps = since.as_nanos().div_ceil(width);
        let offset = u64::try_from(steps.saturating_mul(width)).unwrap_or(u64::MAX);
        origin + Duration::from_nanos(offset)
    }

    /// The newest recorded device tick.
    #[must_use]
    pub fn newest(&self) -> Option<Instant> {
        self.device_ticks.times.back().copied()
    }
}

/// Signed nanoseconds from `origin` to `t`.
fn nanos_from(origin: Instant, t: Instant) -> i128 {
    match t.checked_duration_since(origin) {
        Some(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
        None => -i128::try_from(origin.duration_since(t).as_nanos()).unwrap_or(i128::MAX),
    }
}

/// Moves one cadence's readings out of the raw window: folds the blocks that ended before
/// `cutoff` into the coarse tier, drops the raw ticks standing only in them, drops the blocks
/// that ended before `long_cutoff`, and then the series with nothing known left.
fn tier_out<K, const N: usize>(
    ticks: &mut Ticks,
    series: &mut HashMap<K, Readings<N>>,
    origin: Instant,
    cutoff: Instant,
    long_cutoff: Option<Instant>,
) {
    let first_block = long_cutoff.map_or(0, |c| ticks.block_of(origin, c));
    let target = ticks.block_of(origin, cutoff);
    if target > ticks.folded {
        // After a long pause (a suspended machine) only the blocks still kept are folded.
        let from = ticks.folded.max(first_block.min(target));
        for readings in series.values_mut() {
            readings.fold(ticks, origin, from, target);
        }
        ticks.folded = target;
    }
    let first_seq = ticks.evict_standing_before(ticks.block_start(origin, ticks.folded));
    series.retain(|_, r| {
        r.evict_before(first_seq);
        r.forget_raw_gaps();
        r.coarse.evict_before(first_block);
        !r.is_spent()
    });
}

/// Where a merged reading or block leaves a bucket.
fn merge(point: &mut HistoryPoint, min: f64, max: f64, last: f64) {
    point.min = Some(point.min.map_or(min, |m| m.min(min)));
    point.max = Some(point.max.map_or(max, |m| m.max(max)));
    point.last = Some(last);
}

/// The buckets of figure `slot` of one series; see the module docs for how long a reading
/// stands, and which tier answers where.
fn chart<const N: usize>(
    ticks: &Ticks,
    origin: Option<Instant>,
    series: Option<(&Readings<N>, usize)>,
    end: Instant,
    span: Duration,
    buckets: usize,
) -> Vec<HistoryPoint> {
    if buckets == 0 || span.is_zero() {
        return Vec::new();
    }
    let Some(start) = end.checked_sub(span) else {
        return Vec::new();
    };
    let span_ns = i128::try_from(span.as_nanos()).unwrap_or(i128::MAX);
    let n = i128::try_from(buckets).unwrap_or(i128::MAX);
    // Bucket i covers [bounds[i], bounds[i + 1]) nanoseconds after `start`, bounds[i] =
    // i·span/n: integer bounds, so the buckets tile the span exactly.
    let bounds: Vec<i128> = (0..=n).map(|i| span_ns.saturating_mul(i) / n).collect();
    let instant = |ns: i128| -> Instant {
        start + Duration::from_nanos(u64::try_from(ns.max(0)).unwrap_or(u64::MAX))
    };
    let mut points: Vec<HistoryPoint> = bounds
        .windows(2)
        .map(|pair| HistoryPoint {
            start: instant(pair[0]),
            end: instant(pair[1]),
            ago: Duration::from_nanos(u64::try_from(span_ns - pair[1]).unwrap_or(0)),
            min: None,
            max: None,
            last: None,
            samples: 0,
        })
        .collect();
    let Some((readings, slot)) = series else {
        return points;
    };
    let (first_seq, Some(values)) = (readings.first_seq, readings.values.get(slot)) else {
        return points;
    };
    // Before `floor` (the end of the folded blocks) the coarse tier answers, from it on the
    // raw tier: a reading taken before it is in its block, and counts here only for the time
    // it stood after it.
    let folded = origin.filter(|_| ticks.folded > 0);
    let floor = folded.map_or(i128::MIN, |origin| {
        nanos_from(start, ticks.block_start(origin, ticks.folded))
    });
    if let Some(origin) = folded
        && floor > 0
    {
        chart_blocks(&mut points, &bounds, ticks, origin, start, (readings, slot));
    }
    // How long a reading stands without a next tick: one and a half cadences, long enough
    // for a late tick (scheduling jitter), short enough that a skipped tick shows as a gap.
    let hold = i128::try_from(ticks.cadence.as_nanos())
        .unwrap_or(i128::MAX)
        .saturating_mul(3)
        / 2;
    // Readings come oldest first, so the bucket of each one's start only moves forward: a
    // cursor finds it without a division or a search. The first reading looked at is the
    // newest one taken before the span, whose hold may reach into it.
    let before_span = ticks.times.partition_point(|&t| t < start);
    let first_tick = ticks.first_seq + before_span.saturating_sub(1) as u64;
    let skip = usize::try_from(first_tick.saturating_sub(first_seq)).unwrap_or(usize::MAX);
    let mut cursor = 0_usize;
    for (offset, &value) in values.iter().enumerate().skip(skip) {
        let seq = first_seq + offset as u64;
        let Some(taken) = ticks.at(seq) else {
            continue;
        };
        let from = nanos_from(start, taken);
        if from >= span_ns {
            break;
        }
        if value.is_nan() {
            continue;
        }
        let until = match ticks.at(seq + 1) {
            Some(next) => nanos_from(start, next).min(from.saturating_add(hold)),
            None => from.saturating_add(hold),
        }
        .max(from + 1);
        let stands_from = from.max(floor);
        if until <= 0 || until <= stands_from {
            continue;
        }
        while cursor + 1 < buckets && bounds[cursor + 1] <= stands_from {
            cursor += 1;
        }
        let mut i = cursor;
        while i < buckets && bounds[i] < until {
            let point = &mut points[i];
            merge(point, value, value, value);
            if i == cursor && from >= 0 && from >= floor {
                point.samples += 1;
            }
            i += 1;
        }
    }
    points
}

/// Merges the coarse blocks of one series that overlap the span into `points` (bucket `i`
/// covering `[bounds[i], bounds[i + 1])` ns after `start`): a block overlapping several
/// buckets is in each, so a peak it holds shows in all of them; its samples count in the
/// bucket it begins in.
fn chart_blocks<const N: usize>(
    points: &mut [HistoryPoint],
    bounds: &[i128],
    ticks: &Ticks,
    origin: Instant,
    start: Instant,
    (readings, slot): (&Readings<N>, usize),
) {
    let coarse = &readings.coarse;
    let buckets = points.len();
    let span_ns = bounds.last().copied().unwrap_or(0);
    let width = i128::try_from(ticks.block.as_nanos()).unwrap_or(i128::MAX);
    let first = ticks.block_of(origin, start).max(coarse.first_block);
    let last = ticks.folded.min(coarse.first_block + coarse.len);
    let mut cursor = 0_usize;
    for block in first..last {
        let block_start = nanos_from(start, ticks.block_start(origin, block));
        if block_start >= span_ns {
            break;
        }
        let block_end = block_start.saturating_add(width);
        if block_end <= 0 {
            continue;
        }
        let Some(summary) = coarse.get(slot, block) else {
            continue;
        };
        let from = block_start.max(0);
        while cursor + 1 < buckets && bounds[cursor + 1] <= from {
            cursor += 1;
        }
        let mut i = cursor;
        while i < buckets && bounds[i] < block_end {
            merge(&mut points[i], summary.min, summary.max, summary.last);
            i += 1;
        }
        if block_start >= 0
            && let Some(point) = points.get_mut(cursor)
        {
            point.samples += summary.samples;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{DeviceFrame, FrameRequest};
    use crate::snapshot::{GpuDeviceInfo, GpuProcessListing, GpuQuerySource, GpuVendor};
    use proptest::prelude::*;

    const S: Duration = Duration::from_secs(1);

    fn limits() -> HistoryLimits {
        HistoryLimits::new(Duration::from_secs(600), S, 3)
    }

    fn device(index: u32, used: Option<u64>) -> DeviceFrame {
        let mut info = GpuDeviceInfo::new(index, GpuVendor::Nvidia, GpuQuerySource::Nvml);
        info.used_bytes = used;
        DeviceFrame::new(info)
    }

    /// A device frame at `at` with `devices` as (index, used bytes).
    fn devices_at(at: Instant, devices: &[(u32, Option<u64>)]) -> Frame {
        let mut frame = Frame::empty(FrameRequest::DEVICES);
        frame.taken = at;
        frame.devices = devices.iter().map(|&(i, u)| device(i, u)).collect();
        frame
    }

    /// A frame with a process scan at `at`: `rows` as (pid, device, used bytes); every device
    /// named in `rows` is listed.
    fn scan_at(at: Instant, rows: &[(u32, u32, Option<u64>)]) -> Frame {
        let mut frame = Frame::empty(FrameRequest::DEVICES.with_processes(true, false));
        frame.taken = at;
        frame.processes_taken = Some(at);
        let mut indices: Vec<u32> = rows.iter().map(|r| r.1).collect();
        indices.sort_unstable();
        indices.dedup();
        for index in indices {
            let mut d = device(index, Some(1));
            let listed = rows
                .iter()
                .filter(|r| r.1 == index)
                .map(|&(pid, dev, used)| {
                    let mut row = GpuProcessEntry::new(pid, dev, GpuQuerySource::Nvml);
                    row.used_bytes = used;
                    row
                })
                .collect();
            d.processes = Some(GpuProcessListing {
                rows: listed,
                ..GpuProcessListing::default()
            });
            frame.devices.push(d);
        }
        frame
    }

    fn maxes(points: &[HistoryPoint]) -> Vec<Option<f64>> {
        points.iter().map(|p| p.max).collect()
    }

    #[test]
    fn a_one_tick_peak_shows_at_every_zoom() {
        let t0 = Instant::now();
        let mut history = History::new(limits());
        for k in 0..600_u32 {
            let used = if k == 377 {
                9_000
            } else {
                1_000 + u64::from(k % 7)
            };
            history.record(&devices_at(t0 + S * k, &[(0, Some(used))]));
        }
        let end = t0 + S * 600;
        for buckets in [1, 7, 60, 80, 200, 599, 600, 1000] {
            let points = history.device(
                0,
                DeviceMetric::Used,
                end,
                Duration::from_secs(600),
                buckets,
            );
            assert_eq!(points.len(), buckets);
            let peak = points.iter().filter_map(|p| p.max).fold(0.0, f64::max);
            assert!(
                (peak - 9_000.0).abs() < f64::EPSILON,
                "{buckets} buckets: {peak}"
            );
            let low = points.iter().filter_map(|p| p.min).fold(f64::MAX, f64::min);
            assert!(
                (low - 1_000.0).abs() < f64::EPSILON,
                "{buckets} buckets: {low}"
            );
        }
        assert_eq!(history.device_peak(0, DeviceMetric::Used), Some(9_000.0));
    }

    #[test]
    fn buckets_tile_the_span_and_end_at_the_query_end() {
        let t0 = Instant::now();
        let history = History::new(limits());
        let end = t0 + Duration::from_secs(100);
        let points = history.device(0, DeviceMetric::Used, end, Duration::from_secs(60), 7);
        assert_eq!(points.len(), 7);
        assert_eq!(points[0].start, end - Duration::from_secs(60));
        assert_eq!(points[6].end, end);
        assert_eq!(points[6].ago, Duration::ZERO);
        for pair in points.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        assert!(
            points.iter().all(HistoryPoint::is_gap),
            "no readings: all gaps"
        );
    }

    #[test]
    fn aligned_ends_move_by_whole_buckets() {
        let t0 = Instant::now();
        let mut history = History::new(limits());
        assert_eq!(
            history.aligned_end(t0, S * 60, 60),
            t0,
            "nothing recorded yet"
        );
        history.record(&devices_at(t0, &[(0, Some(1))]));
        let ms = Duration::from_millis;
        // Buckets of 1 s: anywhere in (t0 + 10 s, t0 + 11 s] ends the chart at t0 + 11 s.
        for now in [ms(10_001), ms(10_500), ms(11_000)] {
            assert_eq!(history.aligned_end(t0 + now, S * 60, 60), t0 + S * 11);
        }
        assert_eq!(
            history.aligned_end(t0 + ms(11_001), S * 60, 60),
            t0 + S * 12
        );
        // Buckets of 2 s.
        assert_eq!(
            history.aligned_end(t0 + ms(10_001), S * 120, 60),
            t0 + S * 12
        );
    }

    #[test]
    fn an_absent_device_an_unknown_figure_and_a_failed_frame_are_gaps_not_zero() {
        let t0 = Instant::now();
        let mut history = History::new(limits());
        for k in 0..10_u32 {
            let at = t0 + S * k;
            let frame = match k {
                3 => devices_at(at, &[(1, Some(5))]), // device 0 absent
                4 => devices_at(at, &[(0, None)]),    // figure unknown
                5 => {
                    let mut f = devices_at(at, &[]);
                    f.gpu_error = Some(crate::HypomnesisError::Timeout {
                        what: "the GPU driver".into(),
                        after: S,
                    });
                    f
                }
                _ => devices_at(at, &[(0, Some(100))]),
            };
            history.record(&frame);
        }
        // One bucket per tick, the newest ending a second after the last tick.
        let points = history.device(0, DeviceMetric::Used, t0 + S * 10, S * 10, 10);
        let expected: Vec<Option<f64>> = (0..10)
            .map(|k| (!(3..=5).contains(&k)).then_some(100.0))
            .collect();
        assert_eq!(maxes(&points), expected);
        assert!(
            points[3..=5]
                .iter()
                .all(|p| p.samples == 0 && p.min.is_none())
        );
    }

    #[test]
    fn a_skipped_tick_is_a_gap_and_a_stalled_monitor_leaves_the_right_edge_empty() {
        let t0 = Instant::now();
        let mut history = History::new(limits());
        for k in [0_u32, 1, 2, 6, 7] {
            history.record(&devices_at(t0 + S * k, &[(0, Some(7))]));
        }
        let points = history.device(0, DeviceMetric::Used, t0 + S * 12, S * 12, 12);
        let known: Vec<bool> = points.iter().map(|p| !p.is_gap()).collect();
        // Ticks 0–2 stand until 3 (1.5 s hold from 2 covers part of bucket 3), 6–7 until 8.5.
        assert_eq!(
            known,
            [
                true, true, true, true, false, false, true, true, true, false, false, false
            ]
        );
    }

    #[test]
    fn a_process_reading_stands_until_the_next_scan_but_a_missed_scan_is_a_gap() {
        let t0 = Instant::now();
        let mut history = History::new(limits());
        // Scans every 3 s at 0, 3, 6, then one missed (9), then 12.
        for k in [0_u32, 3, 6, 12] {
            history.record(&scan_at(t0 + S * k, &[(42, 0, Some(1 << 30))]));
        }
        let points = history.process(42, 0, ProcessMetric::Used, t0 + S * 15, S * 15, 15);
        let known: Vec<bool> = points.iter().map(|p| !p.is_gap()).collect();
        let mut expected = vec![true; 15];
        // The reading at 6 stands 4.5 s (to 10.5): buckets 10 (partly) … 11 have none.
        expected[11] = false;
        assert_eq!(known, expected);
        let samples: u32 = points.iter().map(|p| p.samples).sum();
        assert_eq!(samples, 4);
    }

    #[test]
    fn listings_carried_over_from_an_earlier_scan_are_not_recorded_again() {
        let t0 = Instant::now();
        let mut history = History::new(limits());
        let scan = scan_at(t0, &[(42, 0, Some(10))]);
        history.record(&scan);
        let carried = crate::monitor::combine(devices_at(t0 + S, &[(0, Some(1))]), Some(&scan));
        assert!(!carried.scanned_processes());
        assert_eq!(carried.processes().count(), 1);
        history.record(&carried);
        let points = history.process(42, 0, ProcessMetric::Used, t0 + S * 3, S * 3, 3);
        assert_eq!(points.iter().map(|p| p.samples).sum::<u32>(), 1);
    }

    #[test]
    fn a_frame_without_devices_carries_no_listings_from_the_last_scan() {
        let t0 = Instant::now();
        let scan = scan_at(t0, &[(42, 0, Some(10))]);
        let mut failed = devices_at(t0 + S, &[]);
        failed.gpu_error = Some(crate::HypomnesisError::Timeout {
            what: "the GPU driver".into(),
            after: S,
        });
        let combined = crate::monitor::combine(failed, Some(&scan));
        assert_eq!(combined.processes_taken, None);
        assert_eq!(combined.processes().count(), 0);
        // A device the scan did not see gets no listing.
        let combined = crate::monitor::combine(
            devices_at(t0 + S, &[(0, Some(1)), (5, Some(1))]),
            Some(&scan),
        );
        assert_eq!(combined.processes_taken, Some(t0));
        assert!(combined.device(5).is_some_and(|d| d.processes.is_none()));
        assert_eq!(combined.device(0).map(|d| d.rows().len()), Some(1));
    }

    #[test]
    fn the_window_evicts_old_readings_and_exited_processes_but_keeps_the_device_peak() {
        let t0 = Instant::now();
        let window = Duration::from_secs(60);
        let mut history = History::new(HistoryLimits::new(window, S, 1).with_long_window(window));
        history.record(&scan_at(t0, &[(7, 0, Some(5_000)), (8, 0, Some(1))]));
        for k in 1..=120_u32 {
            history.record(&scan_at(t0 + S * k, &[(8, 0, Some(1))]));
        }
        assert_eq!(
            history.processes(),
            vec![(8, 0)],
            "pid 7 left 2 minutes ago"
        );
        assert_eq!(history.process_peak(7, 0, ProcessMetric::Used), None);
        let end = t0 + S * 121;
        let old = history.device(0, DeviceMetric::Used, end, S * 121, 121);
        assert!(old[..60].iter().all(HistoryPoint::is_gap), "evicted");
        assert!(old[62..].iter().all(|p| !p.is_gap()));
        assert_eq!(history.device_ticks.times.len(), 61);
        assert_eq!(history.devices.get(&0).map(|r| r.values[0].len()), Some(61));
        // The peak since start outlives the window.
        history.record(&devices_at(t0 + S * 121, &[(0, Some(3))]));
        assert_eq!(history.device_peak(0, DeviceMetric::Used), Some(3.0));
    }

    #[test]
    fn process_series_are_capped_and_the_largest_processes_get_them() {
        let t0 = Instant::now();
        let mut history = History::new(limits().with_max_process_series(3));
        let rows: Vec<(u32, u32, Option<u64>)> = (1..=10)
            .map(|pid| (pid, 0, Some(u64::from(pid) * 100)))
            .collect();
        history.record(&scan_at(t0, &rows));
        history.record(&scan_at(t0 + S * 3, &rows));
        assert_eq!(history.processes(), vec![(8, 0), (9, 0), (10, 0)]);
        assert_eq!(history.uncharted_rows(), 14);
    }

    /// Readings: each tick's time offset (ms after the previous) and value (`None`: a gap).
    fn series() -> impl Strategy<Value = Vec<(u64, Option<f64>)>> {
        prop::collection::vec(
            (
                prop_oneof![4 => 900_u64..1_100, 1 => 1_100_u64..5_000],
                prop::option::weighted(0.85, -1e12_f64..1e12),
            ),
            1..300,
        )
    }

    /// One bucket's min, max, last and sample count.
    type Bucket = (Option<f64>, Option<f64>, Option<f64>, u32);

    /// The buckets as the module docs define them, computed the slow way: every reading
    /// against every bucket.
    fn reference_chart(
        taken: &[(Instant, Option<f64>)],
        cadence: Duration,
        end: Instant,
        span: Duration,
        buckets: usize,
    ) -> Vec<Bucket> {
        let start = end - span;
        let span_ns = span.as_nanos();
        let bound =
            |i: usize| start + Duration::from_nanos((span_ns * i as u128 / buckets as u128) as u64);
        (0..buckets)
            .map(|i| {
                let (lo, hi) = (bound(i), bound(i + 1));
                let mut out = (None, None, None, 0);
                for (j, &(t, value)) in taken.iter().enumerate() {
                    let Some(v) = value else { continue };
                    let held = t + cadence * 3 / 2;
                    let until = taken.get(j + 1).map_or(held, |next| next.0.min(held));
                    let until = until.max(t + Duration::from_nanos(1));
                    if t < hi && until > lo {
                        out.0 = Some(out.0.map_or(v, |m: f64| m.min(v)));
                        out.1 = Some(out.1.map_or(v, |m: f64| m.max(v)));
                        out.2 = Some(v);
                        if lo <= t && t < hi {
                            out.3 += 1;
                        }
                    }
                }
                out
            })
            .collect()
    }

    proptest! {
        /// The chart is the module docs' definition, computed fast.
        #[test]
        fn charts_match_the_definition_computed_the_slow_way(
            readings in series(),
            span_ms in 1_u64..400_000,
            end_back_ms in 0_u64..100_000,
            buckets in 1_usize..300,
        ) {
            let t0 = Instant::now();
            let mut history = History::new(HistoryLimits::new(Duration::from_secs(3_600), S, 1));
            let mut at = t0 + Duration::from_secs(1_000);
            let mut taken = Vec::new();
            for &(step, value) in &readings {
                at += Duration::from_millis(step);
                let value = value.map(|v| v.abs() as u64);
                history.record(&devices_at(at, &[(0, value)]));
                taken.push((at, value.map(|v| v as f64)));
            }
            let end = at - Duration::from_millis(end_back_ms);
            let span = Duration::from_millis(span_ms);
            let points = history.device(0, DeviceMetric::Used, end, span, buckets);
            let got: Vec<_> = points.iter().map(|p| (p.min, p.max, p.last, p.samples)).collect();
            prop_assert_eq!(got, reference_chart(&taken, S, end, span, buckets));
        }
    }

    proptest! {
        /// Every reading taken inside the queried span lies within the min and max of the
        /// bucket it was taken in, and every bucket's figures are readings: at any zoom no
        /// peak or trough is lost and nothing is invented.
        #[test]
        fn downsampling_keeps_every_buckets_min_and_max(
            readings in series(),
            span_ms in 1_u64..400_000,
            end_back_ms in 0_u64..100_000,
            buckets in 1_usize..700,
        ) {
            let t0 = Instant::now();
            // One history keeps every reading raw, the other only the last minute, the rest
            // in blocks of 10 s.
            let raw = HistoryLimits::new(Duration::from_secs(3_600), S, 1);
            let tiered = HistoryLimits::new(Duration::from_secs(60), S, 1);
            for limits in [raw, tiered] {
            let mut history = History::new(limits);
            let mut at = t0;
            let mut taken = Vec::new();
            for &(step, value) in &readings {
                at += Duration::from_millis(step);
                history.record(&devices_at(at, &[(0, value.map(|v| v.abs() as u64))]));
                taken.push((at, value.map(|v| (v.abs() as u64) as f64)));
            }
            let end = at.checked_sub(Duration::from_millis(end_back_ms)).unwrap_or(t0)
                .max(t0 + Duration::from_millis(1));
            let span = Duration::from_millis(span_ms);
            let points = history.device(0, DeviceMetric::Used, end, span, buckets);
            prop_assert_eq!(points.len(), buckets);
            let values: Vec<f64> = taken.iter().filter_map(|t| t.1).collect();
            for &(t, value) in &taken {
                let Some(v) = value else { continue };
                let Some(p) = points.iter().find(|p| p.start <= t && t < p.end) else { continue };
                prop_assert!(p.min.is_some_and(|m| m <= v) && p.max.is_some_and(|m| m >= v),
                    "reading {} at bucket {:?}", v, p);
                // (A block's samples count where it begins, maybe a bucket before.)
                prop_assert!(p.samples >= 1 || limits == tiered);
            }
            for p in &points {
                for figure in [p.min, p.max, p.last].into_iter().flatten() {
                    prop_assert!(values.contains(&figure), "{} is no reading", figure);
                }
                prop_assert_eq!(p.min.is_none(), p.max.is_none());
                prop_assert_eq!(p.min.is_none(), p.last.is_none());
            }
            }
        }
    }

    /// Default limits: 10 minutes raw, an hour in blocks of 10 s (devices) and 30 s
    /// (processes, scanned every 3 s).
    fn hour() -> HistoryLimits {
        HistoryLimits::new(Duration::from_secs(600), S, 3)
    }

    /// The end of a chart `span` wide in `buckets` drawn `after` the first tick `t0`.
    fn chart_end(
        history: &History,
        t0: Instant,
        after: Duration,
        span: Duration,
        n: usize,
    ) -> Instant {
        history.aligned_end(t0 + after, span, n)
    }

    #[test]
    fn a_one_tick_peak_fifty_minutes_ago_shows_at_the_hour_zoom() {
        let t0 = Instant::now();
        let mut history = History::new(hour());
        for k in 0..3_600_u32 {
            let used = if k == 600 {
                9_000
            } else {
                1_000 + u64::from(k % 5)
            };
            history.record(&devices_at(t0 + S * k, &[(0, Some(used))]));
        }
        let hour = Duration::from_secs(3_600);
        for buckets in [1, 7, 60, 80, 200, 359, 1_000] {
            let end = chart_end(&history, t0, S * 3_600, hour, buckets);
            let points = history.device(0, DeviceMetric::Used, end, hour, buckets);
            let peak = points.iter().filter_map(|p| p.max).fold(0.0, f64::max);
            assert!(
                (peak - 9_000.0).abs() < f64::EPSILON,
                "{buckets} buckets: {peak}"
            );
            let at = t0 + S * 600;
            let holding = points.iter().find(|p| p.start <= at && at < p.end);
            assert_eq!(
                holding.and_then(|p| p.max),
                Some(9_000.0),
                "{buckets} buckets"
            );
            let low = points.iter().filter_map(|p| p.min).fold(f64::MAX, f64::min);
            assert!(
                (low - 1_000.0).abs() < f64::EPSILON,
                "{buckets} buckets: {low}"
            );
        }
        // The raw tier holds 10 minutes (and the block being folded), the coarse tier the
        // rest of the hour in 10-s blocks.
        assert!(history.device_ticks.times.len() <= 600 + 10 + 1);
        let series = &history.devices[&0];
        assert!(series.values[0].len() <= 600 + 10 + 1);
        assert!(series.coarse.len <= 300, "{}", series.coarse.len);
    }

    #[test]
    fn the_tiers_meet_without_a_hole_or_a_reading_counted_twice() {
        let t0 = Instant::now();
        let mut history = History::new(hour());
        // A reading a second, valued by its second, for 20 minutes, some late enough to
        // stand across a block's end.
        let taken = |k: u32| t0 + S * k + Duration::from_millis(u64::from(k % 3) * 300);
        for k in 0..1_200_u32 {
            history.record(&devices_at(taken(k), &[(0, Some(u64::from(k)))]));
        }
        // The newest reading taken before `t`.
        let newest_before = |t: Instant| (0..1_200).rev().find(|&k| taken(k) < t).map(f64::from);
        let span = Duration::from_secs(1_200);
        let end = t0 + span;
        let floor = history
            .device_ticks
            .block_start(t0, history.device_ticks.folded);
        assert!(
            floor > t0 + S * 500 && floor < t0 + S * 700,
            "the tiers meet mid-chart"
        );
        for buckets in [1, 3, 7, 120, 200, 1_200] {
            let points = history.device(0, DeviceMetric::Used, end, span, buckets);
            assert!(
                points.iter().all(|p| !p.is_gap()),
                "{buckets} buckets: a gap at {:?}",
                points.iter().find(|p| p.is_gap()).map(|p| p.start - t0)
            );
            let samples: u32 = points.iter().map(|p| p.samples).sum();
            assert_eq!(
                samples, 1_200,
                "{buckets} buckets: every reading counted once"
            );
            for p in &points {
                let standing = newest_before(p.start + Duration::from_nanos(1));
                let newest = newest_before(p.end);
                assert!(p.min <= standing.or(Some(0.0)), "{buckets}: {p:?}");
                assert!(p.max >= newest, "{buckets}: {p:?}");
                // On the blocks' grid, the newest reading that stood in the bucket.
                if (1_200 / buckets) % 10 == 0 {
                    assert_eq!(p.last, newest, "{buckets}: {p:?}");
                }
            }
        }
    }

    #[test]
    fn gaps_stay_gaps_in_the_coarse_tier() {
        let t0 = Instant::now();
        let mut history = History::new(hour());
        // Device 0 absent from minute 10 to 12, unknown from minute 20 to 21; all else 5.
        for k in 0..3_600_u32 {
            let at = t0 + S * k;
            let frame = match k {
                600..720 => devices_at(at, &[(1, Some(1))]),
                1_200..1_260 => devices_at(at, &[(0, None)]),
                _ => devices_at(at, &[(0, Some(5))]),
            };
            history.record(&frame);
        }
        let hour = Duration::from_secs(3_600);
        let end = chart_end(&history, t0, S * 3_600, hour, 360);
        assert_eq!(end, t0 + S * 3_600);
        let points = history.device(0, DeviceMetric::Used, end, hour, 360);
        for (i, p) in points.iter().enumerate() {
            let second = i as u32 * 10;
            let gap = (600..720).contains(&second) || (1_200..1_260).contains(&second);
            assert_eq!(p.is_gap(), gap, "block at {second} s: {p:?}");
        }
    }

    #[test]
    fn blocks_past_the_long_window_are_evicted_and_then_the_series() {
        let t0 = Instant::now();
        let limits = hour().with_long_window(Duration::from_secs(1_200));
        let mut history = History::new(limits);
        for k in 0..600_u32 {
            history.record(&devices_at(t0 + S * k, &[(0, Some(1)), (1, Some(2))]));
        }
        // Device 1 leaves at 10 minutes; 20 minutes later its blocks are past the window.
        for k in 600..1_790_u32 {
            history.record(&devices_at(t0 + S * k, &[(0, Some(1))]));
        }
        assert_eq!(history.devices(), vec![0, 1], "still in the long window");
        let series = &history.devices[&1];
        assert!(
            series.values[0].is_empty(),
            "no raw gaps kept for a device gone"
        );
        for k in 1_790..1_830_u32 {
            history.record(&devices_at(t0 + S * k, &[(0, Some(1))]));
        }
        assert_eq!(history.devices(), vec![0]);
        let coarse = &history.devices[&0].coarse;
        assert_eq!(coarse.len, 60, "{} blocks of 10 s", coarse.len);
        assert_eq!(history.device_peak(1, DeviceMetric::Used), Some(2.0));
    }

    #[test]
    fn a_process_gone_half_an_hour_charts_at_the_hour_zoom() {
        let t0 = Instant::now();
        let mut history = History::new(hour());
        for k in (0..3_600_u32).step_by(3) {
            let mut rows = vec![(1, 0, Some(100))];
            if (300..900).contains(&k) {
                rows.push((42, 0, Some(if k == 450 { 7_000 } else { 4_000 })));
            }
            history.record(&scan_at(t0 + S * k, &rows));
        }
        assert_eq!(history.processes(), vec![(1, 0), (42, 0)]);
        assert_eq!(
            history.process_peak(42, 0, ProcessMetric::Used),
            Some(7_000.0)
        );
        let hour = Duration::from_secs(3_600);
        let end = chart_end(&history, t0, S * 3_600, hour, 120);
        let points = history.process(42, 0, ProcessMetric::Used, end, hour, 120);
        let known: Vec<usize> = (0..120).filter(|&i| !points[i].is_gap()).collect();
        assert_eq!(
            known,
            (10..30).collect::<Vec<_>>(),
            "30-s blocks 300 s … 900 s"
        );
        assert_eq!(points[15].max, Some(7_000.0));
        let samples: u32 = points.iter().map(|p| p.samples).sum();
        assert_eq!(samples, 200);
    }

    #[test]
    fn at_the_cap_a_new_process_takes_the_place_of_one_known_only_from_its_blocks() {
        let t0 = Instant::now();
        let mut history = History::new(hour().with_max_process_series(2));
        for k in (0..900_u32).step_by(3) {
            let other = if k < 60 { 7 } else { 8 };
            history.record(&scan_at(
                t0 + S * k,
                &[(1, 0, Some(100)), (other, 0, Some(1))],
            ));
        }
        // Pid 7 left the raw window 4 minutes ago; pid 8, alive, took its place (it went
        // without a series while pid 7 was still in the raw window).
        assert_eq!(history.processes(), vec![(1, 0), (8, 0)]);
        let minute = Duration::from_secs(60);
        let end = chart_end(&history, t0, S * 900, minute, 20);
        let points = history.process(8, 0, ProcessMetric::Used, end, minute, 20);
        assert!(
            points[..19].iter().all(|p| p.max == Some(1.0)),
            "{points:?}"
        );
    }

    proptest! {
        /// Buckets on the blocks' grid read the same from two tiers as from raw readings:
        /// the tiers meet without a hole or a reading counted twice, and folding keeps each
        /// block's min, max, last and samples.
        #[test]
        fn block_aligned_charts_read_the_same_from_two_tiers_as_from_raw_readings(
            readings in series(),
            blocks_per_bucket in 1_u32..7,
            buckets in 1_usize..80,
            end_block in 0_u32..200,
        ) {
            let t0 = Instant::now() + Duration::from_secs(10_000);
            let raw_limits = HistoryLimits::new(Duration::from_secs(3_600), S, 1);
            let tiered_limits = HistoryLimits::new(Duration::from_secs(60), S, 1);
            let mut raw = History::new(raw_limits);
            let mut tiered = History::new(tiered_limits);
            let mut at = t0;
            for &(step, value) in &readings {
                let frame = devices_at(at, &[(0, value.map(|v| v.abs() as u64))]);
                raw.record(&frame);
                tiered.record(&frame);
                at += Duration::from_millis(step);
            }
            let block = S * 10;
            let end = t0 + block * end_block;
            let span = block * blocks_per_bucket * u32::try_from(buckets).unwrap();
            let read = |h: &History| -> Vec<Bucket> {
                h.device(0, DeviceMetric::Used, end, span, buckets)
                    .iter()
                    .map(|p| (p.min, p.max, p.last, p.samples))
                    .collect()
            };
            prop_assert_eq!(read(&tiered), read(&raw));
        }
    }
}

//! Spill: is a GPU run overflowing dedicated VRAM into shared system memory?
//!
//! On Windows (WDDM) an allocation that no longer fits in a discrete GPU's dedicated memory
//! does not fail: the driver places it in *shared* memory — system RAM the GPU reaches over
//! PCIe, many times slower. A model that "fits" may so run at a fraction of its speed, and
//! nothing reports an error. The graphics kernel's counters show it happening: the adapter's
//! `\GPU Adapter Memory(*)\Dedicated Usage` sits near the card's size while its `Shared Usage`
//! grows.
//!
//! The rule, per sample of one device:
//! - **dedicated** use ≥ [`DEFAULT_DEDICATED_THRESHOLD_PCT`] (85 %) of the adapter's
//!   dedicated video memory (DXGI `DedicatedVideoMemory`), **and**
//! - **shared** use ≥ a baseline + [`DEFAULT_SHARED_GROWTH_BYTES`] (256 MiB).
//!
//! Both are needed: a full card alone is a well-sized job, and some shared use is normal (the
//! desktop and drivers keep ~100–160 MiB there at idle). The 85 % leaves room for the
//! driver's own reservations, which keep dedicated use from ever reaching 100 %. A
//! [`SpillTracker`] takes its first sample's shared use as the baseline and reports growth
//! from it; a single reading ([`snapshot_is_spilling`], `hmn ps`) has no history, so its
//! baseline is 0 and shared use must exceed 256 MiB outright.
//!
//! Only Windows with the GPU counters (Windows 10 1709+, feature `pdh`) can measure this;
//! elsewhere every answer is "not measurable" (`None`), never "not spilling". Linux and macOS
//! have no such silent overflow to detect: CUDA allocations fail instead, and Apple's GPU
//! uses RAM to begin with.

use crate::error::{HypomnesisError, Result};
use crate::probe::Probe;

/// Dedicated use, as a percentage of dedicated video memory, from which a device counts as
/// full.
pub const DEFAULT_DEDICATED_THRESHOLD_PCT: u64 = 85;
/// Shared use above the baseline from which a full device counts as spilling, bytes.
pub const DEFAULT_SHARED_GROWTH_BYTES: u64 = 256 * 1024 * 1024;

/// The two thresholds of the spill rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpillThresholds {
    /// Dedicated use, percent of the dedicated limit, from which the device is full.
    pub dedicated_pct: u64,
    /// Growth of shared use over the baseline, bytes, from which a full device spills.
    pub shared_growth_bytes: u64,
}

impl SpillThresholds {
    /// 85 % and 256 MiB.
    pub const DEFAULT: Self = Self {
        dedicated_pct: DEFAULT_DEDICATED_THRESHOLD_PCT,
        shared_growth_bytes: DEFAULT_SHARED_GROWTH_BYTES,
    };

    /// Custom thresholds.
    #[must_use]
    pub const fn new(dedicated_pct: u64, shared_growth_bytes: u64) -> Self {
        Self {
            dedicated_pct,
            shared_growth_bytes,
        }
    }
}

impl Default for SpillThresholds {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One reading of a device's dedicated and shared GPU memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SpillSample {
    /// Dedicated (VRAM) use of the whole device, bytes (`\GPU Adapter Memory(*)\Dedicated
    /// Usage`).
    pub dedicated_used_bytes: u64,
    /// The device's dedicated memory, bytes (DXGI `DedicatedVideoMemory`).
    pub dedicated_limit_bytes: u64,
    /// Shared (system RAM) use of the whole device, bytes (`\GPU Adapter Memory(*)\Shared
    /// Usage`).
    pub shared_used_bytes: u64,
}

impl SpillSample {
    /// A sample from its three figures.
    #[must_use]
    pub const fn new(
        dedicated_used_bytes: u64,
        dedicated_limit_bytes: u64,
        shared_used_bytes: u64,
    ) -> Self {
        Self {
            dedicated_used_bytes,
            dedicated_limit_bytes,
            shared_used_bytes,
        }
    }

    /// Whether dedicated use is at least `thresholds.dedicated_pct` of the limit. A device
    /// whose limit is unknown (0) is never full.
    #[must_use]
    pub const fn dedicated_is_full(&self, thresholds: SpillThresholds) -> bool {
        self.dedicated_limit_bytes > 0
            && (self.dedicated_used_bytes as u128) * 100
                >= (self.dedicated_limit_bytes as u128) * (thresholds.dedicated_pct as u128)
    }

    /// The spill rule: dedicated full, and shared use at least `baseline_shared_bytes +
    /// thresholds.shared_growth_bytes`.
    #[must_use]
    pub const fn is_spilling(
        &self,
        baseline_shared_bytes: u64,
        thresholds: SpillThresholds,
    ) -> bool {
        self.dedicated_is_full(thresholds)
            && self.shared_used_bytes
                >= baseline_shared_bytes.saturating_add(thresholds.shared_growth_bytes)
    }
}

/// Whether this build on this platform can measure spill at all: Windows with the `pdh`
/// feature. (Whether this machine can — Windows 10 1709+, not Wine — shows in
/// [`SpillTracker::is_measurable`] or a `None` from [`snapshot_is_spilling`].)
#[must_use]
pub const fn is_spill_measurable() -> bool {
    cfg!(all(windows, feature = "pdh"))
}

/// One reading of device `device_index`'s dedicated and shared memory.
///
/// # Errors
/// [`HypomnesisError::Unsupported`] off Windows (or without feature `pdh`); on Windows, the
/// device lookup's error, or [`HypomnesisError::NoGpuSource`] naming DXGI or PDH when the
/// device has no DXGI adapter or the GPU counters are missing (before Windows 10 1709, Wine).
pub fn sample(probe: &Probe, device_index: u32) -> Result<SpillSample> {
    #[cfg(all(windows, feature = "pdh"))]
    {
        read(probe.spill_meter(device_index)?.as_ref())
    }
    #[cfg(not(all(windows, feature = "pdh")))]
    {
        let _ = (probe, device_index);
        Err(not_measurable())
    }
}

/// Whether device `device_index` is spilling now, from one reading through the process-wide
/// probe (baseline 0: shared use must exceed 256 MiB outright). `None` when it cannot be
/// measured — off Windows, or without the GPU counters — never `Some(false)` for "unknown".
#[must_use]
pub fn snapshot_is_spilling(device_index: u32) -> Option<bool> {
    device_is_spilling(crate::probe::global(), device_index)
}

/// [`snapshot_is_spilling`] through `probe`.
#[must_use]
pub fn device_is_spilling(probe: &Probe, device_index: u32) -> Option<bool> {
    sample(probe, device_index)
        .ok()
        .map(|s| s.is_spilling(0, SpillThresholds::DEFAULT))
}

/// One reading of `meter` (the GPU backends' meter of a device's memory).
#[cfg(all(windows, feature = "pdh"))]
fn read(meter: &dyn crate::gpu::SpillMeter) -> Result<SpillSample> {
    meter
        .sample()
        .map(|m| SpillSample::new(m.dedicated_used, m.dedicated_limit, m.shared_used))
}

#[cfg(not(all(windows, feature = "pdh")))]
fn not_measurable() -> HypomnesisError {
    HypomnesisError::Unsupported {
        what: "spill detection",
        context: "on this platform: it needs Windows' GPU performance counters (feature `pdh`)",
    }
}

/// What a [`SpillTracker`] has seen so far: the pure part, fed one sample at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SpillState {
    thresholds: SpillThresholds,
    baseline_shared: Option<u64>,
    spilling: bool,
    spilled: bool,
    episodes: usize,
    observations: usize,
    peak_dedicated: u64,
    peak_shared: u64,
    dedicated_limit: u64,
}

impl SpillState {
    const fn new(thresholds: SpillThresholds) -> Self {
        Self {
            thresholds,
            baseline_shared: None,
            spilling: false,
            spilled: false,
            episodes: 0,
            observations: 0,
            peak_dedicated: 0,
            peak_shared: 0,
            dedicated_limit: 0,
        }
    }

    fn fold(&mut self, sample: SpillSample) -> bool {
        let baseline = *self.baseline_shared.get_or_insert(sample.shared_used_bytes);
        let now = sample.is_spilling(baseline, self.thresholds);
        if now && !self.spilling {
            self.episodes += 1;
        }
        self.spilling = now;
        self.spilled |= now;
        self.observations += 1;
        self.peak_dedicated = self.peak_dedicated.max(sample.dedicated_used_bytes);
        self.peak_shared = self.peak_shared.max(sample.shared_used_bytes);
        self.dedicated_limit = sample.dedicated_limit_bytes;
        now
    }
}

/// Watches one device over time: the first sample's shared use is the baseline, and each
/// later sample is judged by the spill rule against it.
///
/// On Windows the tracker keeps one PDH query open between samples (a sample is then one
/// `PdhCollectQueryData`, microseconds), so it is neither `Send` nor `Sync` there.
#[derive(Debug)]
pub struct SpillTracker {
    state: SpillState,
    device_index: u32,
    unmeasurable: Option<String>,
    #[cfg(all(windows, feature = "pdh"))]
    source: Option<Box<dyn crate::gpu::SpillMeter>>,
}

impl SpillTracker {
    /// A tracker for device `device_index`. Off Windows it is built and is not measurable;
    /// on Windows without GPU counters likewise, with the reason in
    /// [`SpillTracker::unmeasurable_reason`].
    ///
    /// # Errors
    /// On Windows, when device `device_index` does not exist or cannot be read.
    pub fn new(probe: &Probe, device_index: u32) -> Result<Self> {
        let state = SpillState::new(SpillThresholds::DEFAULT);
        #[cfg(all(windows, feature = "pdh"))]
        {
            let (source, unmeasurable) = match probe.spill_meter(device_index) {
                Ok(source) => (Some(source), None),
                Err(
                    e
                    @ (HypomnesisError::DeviceIndexOutOfRange { .. } | HypomnesisError::Io { .. }),
                ) => return Err(e),
                Err(e) => (None, Some(e.to_string())),
            };
            Ok(Self {
                state,
                device_index,
                unmeasurable,
                source,
            })
        }
        #[cfg(not(all(windows, feature = "pdh")))]
        {
            let _ = probe;
            Ok(Self {
                state,
                device_index,
                unmeasurable: Some(not_measurable().to_string()),
            })
        }
    }

    /// A measurable tracker for device `device_index` that takes no readings of its own: it
    /// judges only what [`SpillTracker::observe_sample`] gives it ([`SpillTracker::observe`]
    /// returns `None`). For tests that replay readings on any platform (feature
    /// `test-helpers`).
    #[cfg(feature = "test-helpers")]
    #[must_use]
    pub const fn replay(device_index: u32) -> Self {
        Self {
            state: SpillState::new(SpillThresholds::DEFAULT),
            device_index,
            unmeasurable: None,
            #[cfg(all(windows, feature = "pdh"))]
            source: None,
        }
    }

    /// Uses `thresholds` instead of the defaults.
    #[must_use]
    pub const fn with_thresholds(mut self, thresholds: SpillThresholds) -> Self {
        self.state.thresholds = thresholds;
        self
    }

    /// Takes one sample and judges it; `None` when no sample could be taken (not
    /// measurable, or this reading failed — a failed reading is skipped, not counted).
    pub fn observe(&mut self) -> Option<bool> {
        #[cfg(all(windows, feature = "pdh"))]
        {
            let sample = read(self.source.as_deref()?).ok()?;
            Some(self.state.fold(sample))
        }
        #[cfg(not(all(windows, feature = "pdh")))]
        {
            None
        }
    }

    /// Judges a sample taken elsewhere (for replaying recorded readings) and returns whether
    /// it spills.
    pub fn observe_sample(&mut self, sample: SpillSample) -> bool {
        self.state.fold(sample)
    }

    /// The device this tracker watches.
    #[must_use]
    pub const fn device_index(&self) -> u32 {
        self.device_index
    }

    /// Whether samples can be taken here.
    #[must_use]
    pub fn is_measurable(&self) -> bool {
        self.unmeasurable.is_none()
    }

    /// Why samples cannot be taken here, when they cannot.
    #[must_use]
    pub fn unmeasurable_reason(&self) -> Option<&str> {
        self.unmeasurable.as_deref()
    }

    /// Whether the latest sample spilled.
    #[must_use]
    pub const fn is_spilling(&self) -> bool {
        self.state.spilling
    }

    /// Whether any sample spilled.
    #[must_use]
    pub const fn has_spilled(&self) -> bool {
        self.state.spilled
    }

    /// How many separate spill episodes (runs of spilling samples) were seen.
    #[must_use]
    pub const fn episodes(&self) -> usize {
        self.state.episodes
    }

    /// How many samples were judged.
    #[must_use]
    pub const fn observations(&self) -> usize {
        self.state.observations
    }

    /// The first sample's shared use, bytes; `None` before any sample.
    #[must_use]
    pub const fn baseline_shared_bytes(&self) -> Option<u64> {
        self.state.baseline_shared
    }

    /// The highest shared use seen, bytes.
    #[must_use]
    pub const fn peak_shared_bytes(&self) -> u64 {
        self.state.peak_shared
    }

    /// The highest dedicated use seen, bytes.
    #[must_use]
    pub const fn peak_dedicated_bytes(&self) -> u64 {
        self.state.peak_dedicated
    }

    /// The device's dedicated memory, bytes, as of the latest sample (0 before any).
    #[must_use]
    pub const fn dedicated_limit_bytes(&self) -> u64 {
        self.state.dedicated_limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    #[test]
    fn a_full_card_alone_is_not_a_spill() {
        let full = SpillSample::new(15 * GIB, 16 * GIB, 150 * MIB);
        assert!(full.dedicated_is_full(SpillThresholds::DEFAULT));
        assert!(!full.is_spilling(0, SpillThresholds::DEFAULT));
    }

    #[test]
    fn growing_shared_memory_alone_is_not_a_spill() {
        let roomy = SpillSample::new(4 * GIB, 16 * GIB, 3 * GIB);
        assert!(!roomy.is_spilling(0, SpillThresholds::DEFAULT));
    }

    #[test]
    fn full_dedicated_and_grown_shared_is_a_spill() {
        let spill = SpillSample::new(14 * GIB, 16 * GIB, 163 * MIB + 256 * MIB);
        assert!(spill.is_spilling(163 * MIB, SpillThresholds::DEFAULT));
        assert!(
            !spill.is_spilling(164 * MIB, SpillThresholds::DEFAULT),
            "growth just under 256 MiB"
        );
        let threshold = (16 * GIB * 85).div_ceil(100);
        assert!(
            SpillSample::new(threshold, 16 * GIB, 0).dedicated_is_full(SpillThresholds::DEFAULT)
        );
        assert!(
            !SpillSample::new(threshold - 1, 16 * GIB, 0)
                .dedicated_is_full(SpillThresholds::DEFAULT)
        );
    }

    #[test]
    fn an_unknown_limit_is_never_full() {
        let s = SpillSample::new(u64::MAX, 0, u64::MAX);
        assert!(!s.is_spilling(0, SpillThresholds::DEFAULT));
    }

    #[test]
    fn custom_thresholds_apply() {
        let s = SpillSample::new(12 * GIB, 16 * GIB, 600 * MIB);
        assert!(
            !s.is_spilling(0, SpillThresholds::DEFAULT),
            "75 % is not full"
        );
        assert!(s.is_spilling(0, SpillThresholds::new(70, 512 * MIB)));
    }

    /// A run replayed from adapter readings — (dedicated, shared) every second on a 16 GiB
    /// card, in the shape `typeperf "\GPU Adapter Memory(*)\Dedicated Usage"` prints. The
    /// numbers are illustrative, not a capture from hardware: idle baseline, load, a spill
    /// that backs off and comes back, and the end of the run.
    #[test]
    fn a_replayed_run_counts_episodes_from_the_first_samples_baseline() {
        let limit = 16 * GIB;
        let readings = [
            (GIB, 160 * MIB),       // idle desktop: the baseline
            (9 * GIB, 170 * MIB),   // model loading
            (15 * GIB, 200 * MIB),  // full, not spilling
            (15 * GIB, 900 * MIB),  // spilling
            (15 * GIB, 2 * GIB),    // still spilling
            (14 * GIB, 300 * MIB),  // batch shrank: back under growth
            (15 * GIB, 1200 * MIB), // spilling again
            (2 * GIB, 180 * MIB),   // done
        ];
        let mut state = SpillState::new(SpillThresholds::DEFAULT);
        let verdicts: Vec<bool> = readings
            .iter()
            .map(|&(d, s)| state.fold(SpillSample::new(d, limit, s)))
            .collect();
        assert_eq!(
            verdicts,
            [false, false, false, true, true, false, true, false]
        );
        assert_eq!(state.episodes, 2);
        assert!(state.spilled);
        assert!(!state.spilling);
        assert_eq!(state.baseline_shared, Some(160 * MIB));
        assert_eq!(state.peak_shared, 2 * GIB);
        assert_eq!(state.peak_dedicated, 15 * GIB);
        assert_eq!(state.observations, 8);
    }

    #[test]
    fn a_run_that_starts_spilled_needs_growth_beyond_its_first_sample() {
        let mut state = SpillState::new(SpillThresholds::DEFAULT);
        assert!(!state.fold(SpillSample::new(15 * GIB, 16 * GIB, 3 * GIB)));
        assert!(state.fold(SpillSample::new(15 * GIB, 16 * GIB, 3 * GIB + 256 * MIB)));
    }

    #[test]
    fn off_windows_spill_is_not_measurable_rather_than_false() {
        if is_spill_measurable() {
            return;
        }
        let probe = Probe::builder()
            .use_nvml(false)
            .use_nvidia_smi(false)
            .build();
        assert_eq!(device_is_spilling(&probe, 0), None);
        let mut tracker = SpillTracker::new(&probe, 0).unwrap();
        assert!(!tracker.is_measurable());
        assert!(tracker.unmeasurable_reason().is_some());
        assert_eq!(tracker.observe(), None);
        assert!(!tracker.observe_sample(SpillSample::new(15 * GIB, 16 * GIB, 0)));
    }
}

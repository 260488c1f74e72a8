//! What the history chart shows, read from the monitor's history when a frame arrives:
//! drawing never touches the history, so it takes no lock.
//!
//! Memory used per device, or the selected process's, over the zoom's span, min/max per
//! bucket so a peak never vanishes, gaps (`None`) where samples are missing.

use std::time::{Duration, Instant};

use hypomnesis::{DeviceMetric, Frame, History, HistoryPoint, ProcessMetric};

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
///
/// Everything is read in one visit to the history (one lock of a live monitor, a few
/// microseconds per series), the end aligned to the history's bucket grid so a peak stays in
/// its column as time passes. Devices come in the frame's order; the selected process's
/// series one per device the frame shows it on.
pub(crate) fn read(
    frame: &Frame,
    zoom: Zoom,
    selected: Option<u32>,
    history: &dyn HistorySource,
    now: Instant,
    buckets: usize,
) -> Charts {
    let span = zoom.span();
    let buckets = buckets.max(1);
    let mut process_devices: Vec<u32> = selected
        .map(|pid| {
            frame
                .processes()
                .filter(|p| p.pid == pid)
                .map(|p| p.device_index)
                .collect()
        })
        .unwrap_or_default();
    process_devices.dedup();
    let mut charts = Charts {
        span,
        device_used: Vec::with_capacity(frame.devices.len()),
        process_used: Vec::with_capacity(process_devices.len()),
        device_peak_used: Vec::with_capacity(frame.devices.len()),
    };
    history.with_history(&mut |h: &History| {
        // Just past `now`, so a reading taken at `now` itself (a replayed frame is shown at
        // its own instant) falls inside the newest bucket rather than just past it.
        let end = h.aligned_end(now + Duration::from_nanos(1), span, buckets);
        for d in &frame.devices {
            let index = d.device.index;
            charts.device_used.push((
                index,
                h.device(index, DeviceMetric::Used, end, span, buckets),
            ));
            if let Some(peak) = h.device_peak(index, DeviceMetric::Used) {
                charts.device_peak_used.push((index, peak));
            }
        }
        if let Some(pid) = selected {
            for &device in &process_devices {
                charts.process_used.push((
                    device,
                    h.process(pid, device, ProcessMetric::Used, end, span, buckets),
                ));
            }
        }
    });
    charts
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hypomnesis::monitor::HistoryLimits;
    use hypomnesis::{
        DeviceFrame, FrameRequest, GpuDeviceInfo, GpuProcessEntry, GpuProcessListing,
    };

    use super::*;

    const GIB: u64 = 1 << 30;

    fn frame(at: Instant, used: u64) -> Frame {
        let mut frame = Frame::empty(FrameRequest::ALL);
        frame.taken = at;
        frame.processes_taken = Some(at);
        let mut device = DeviceFrame::new(
            GpuDeviceInfo::builder()
                .index(0)
                .total_bytes(80 * GIB)
                .used_bytes(used)
                .free_bytes(80 * GIB - used)
                .build(),
        );
        let mut listing = GpuProcessListing::default();
        listing.rows = vec![GpuProcessEntry::builder(42).used_bytes(used).build()];
        device.processes = Some(listing);
        frame.devices.push(device);
        frame
    }

    fn history(start: Instant, readings: &[u64]) -> History {
        let mut history = History::new(HistoryLimits::new(
            Duration::from_secs(600),
            Duration::from_secs(1),
            1,
        ));
        for (i, &used) in readings.iter().enumerate() {
            history.record(&frame(start + Duration::from_secs(i as u64), used));
        }
        history
    }

    #[test]
    fn a_one_second_peak_survives_a_ten_minute_chart_thirty_columns_wide() {
        let start = Instant::now();
        let mut readings = vec![10 * GIB; 600];
        readings[300] = 70 * GIB;
        let history = history(start, &readings);
        let now = start + Duration::from_secs(599);
        let charts = read(
            &frame(now, 10 * GIB),
            Zoom::TenMinutes,
            None,
            &history,
            now,
            30,
        );
        assert_eq!(charts.span, Duration::from_secs(600));
        let (index, points) = &charts.device_used[0];
        assert_eq!((*index, points.len()), (0, 30));
        let top = points.iter().filter_map(|p| p.max).fold(0.0, f64::max);
        assert_eq!(top, (70 * GIB) as f64);
        assert_eq!(charts.device_peak_used, vec![(0, (70 * GIB) as f64)]);
        assert!(charts.process_used.is_empty(), "no process is selected");
    }

    #[test]
    fn the_selected_process_gets_its_series_on_each_device_it_is_on() {
        let start = Instant::now();
        let history = history(start, &[GIB, 2 * GIB, 3 * GIB]);
        let now = start + Duration::from_secs(2);
        let shown = Arc::new(frame(now, 3 * GIB));
        let charts = read(&shown, Zoom::OneMinute, Some(42), &history, now, 60);
        assert_eq!(charts.process_used.len(), 1);
        let (device, points) = &charts.process_used[0];
        assert_eq!((*device, points.len()), (0, 60));
        let top = points.iter().filter_map(|p| p.max).fold(0.0, f64::max);
        assert_eq!(top, (3 * GIB) as f64);
        // Before the history began the chart is a gap, never 0.
        assert!(points[0].is_gap());
    }

    #[test]
    fn a_pid_the_frame_does_not_show_gets_no_series() {
        let start = Instant::now();
        let history = history(start, &[GIB]);
        let charts = read(
            &frame(start, GIB),
            Zoom::OneMinute,
            Some(7),
            &history,
            start,
            10,
        );
        assert!(charts.process_used.is_empty());
    }
}

//! The monitor against the NVML double: its two cadences, the frames it publishes, its
//! history, and a driver that stops answering.
//!
//! Each test runs in a process of its own (NVML state is process-wide; see
//! `test_support::with_nvml_double`). No test asserts how long anything took; the few bounds
//! on elapsed time are tens of seconds against calls that would otherwise block for 60 s, and
//! only prove "does not wait for the hung call".
#![cfg(target_os = "linux")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use hypomnesis::{DeviceMetric, HypomnesisError, Monitor, Probe, ProcessMetric};

const GIB: f64 = 1_073_741_824.0;

fn probe(lib: std::path::PathBuf) -> Arc<Probe> {
    Arc::new(Probe::builder().nvml_lib(lib).use_nvidia_smi(false).build())
}

/// Waits (at most a minute, a bound the test must never reach) until the monitor has read
/// `frames` frames.
fn wait_for_frames(monitor: &Monitor, frames: u64) {
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while monitor.stats().frames < frames {
        assert!(Instant::now() < deadline, "{:?}", monitor.stats());
        if let Some((seq, _)) = monitor.wait_newer(seen, Duration::from_secs(5)) {
            seen = seq;
        }
    }
}

/// Frames are counted, not time: whatever the machine's load, the first frame and every
/// third after it scanned processes.
#[test]
fn processes_are_scanned_with_every_third_refresh() {
    test_support::with_nvml_double(
        "processes_are_scanned_with_every_third_refresh",
        "four_gpus",
        |lib, _| {
            let monitor = Monitor::builder()
                .interval(Duration::from_millis(20))
                .process_every(3)
                .start(probe(lib));
            wait_for_frames(&monitor, 31);
            // Frames and scans are counted together, so any moment's pair is consistent.
            let stats = monitor.stats();
            assert!(stats.frames >= 31, "{stats:?}");
            assert_eq!(stats.process_scans, stats.frames.div_ceil(3), "{stats:?}");
            assert!(monitor.stop(), "the thread finished");
        },
    );
}

#[test]
fn frames_between_scans_carry_the_last_scans_listings_and_say_when_it_was() {
    test_support::with_nvml_double(
        "frames_between_scans_carry_the_last_scans_listings_and_say_when_it_was",
        "four_gpus",
        |lib, _| {
            let monitor = Monitor::builder()
                .interval(Duration::from_millis(20))
                .process_every(3)
                .start(probe(lib));
            let mut seen = 0;
            let (mut fresh, mut carried) = (0, 0);
            let deadline = Instant::now() + Duration::from_secs(60);
            while fresh == 0 || carried == 0 {
                assert!(Instant::now() < deadline);
                let Some((seq, frame)) = monitor.wait_newer(seen, Duration::from_secs(5)) else {
                    continue;
                };
                assert!(seq > seen);
                seen = seq;
                let taken = frame.processes_taken.expect("every frame carries listings");
                assert!(frame.processes_taken_at.is_some());
                let pids: Vec<u32> = frame.devices[0].rows().iter().map(|r| r.pid).collect();
                assert_eq!(pids, [4_030_001, 4_030_002]);
                assert!(
                    frame.devices[0].telemetry.is_some()
                        || frame.devices[0].telemetry_error.is_some()
                );
                if frame.scanned_processes() {
                    fresh += 1;
                } else {
                    assert!(taken < frame.taken, "an older scan");
                    carried += 1;
                }
            }
            monitor.stop();
        },
    );
}

#[test]
fn history_and_peaks_follow_the_devices_and_processes() {
    test_support::with_nvml_double(
        "history_and_peaks_follow_the_devices_and_processes",
        "four_gpus",
        |lib, scenario| {
            let declared: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(scenario).unwrap()).unwrap();
            let used0 = declared["devices"][0]["memory"]["used"].as_f64().unwrap();
            let monitor = Monitor::builder()
                .interval(Duration::from_millis(20))
                .process_every(3)
                .start(probe(lib));
            wait_for_frames(&monitor, 10);
            assert_eq!(monitor.device_peak(0, DeviceMetric::Used), Some(used0));
            assert_eq!(
                monitor.device_peak(3, DeviceMetric::Used),
                Some(0.0),
                "an idle GPU is 0 bytes, known"
            );
            let chart = monitor.device_history(0, DeviceMetric::Used, Duration::from_secs(60), 60);
            assert_eq!(chart.len(), 60);
            assert_eq!(chart.last().and_then(|p| p.max), Some(used0));
            assert!(
                chart.first().is_some_and(|p| p.is_gap()),
                "before the monitor started"
            );
            let process = monitor.process_history(
                4_030_001,
                1,
                ProcessMetric::Used,
                Duration::from_secs(60),
                60,
            );
            assert!(process.last().and_then(|p| p.max).is_some_and(|v| v > GIB));
            assert!(
                monitor
                    .process_peak(4_030_001, 1, ProcessMetric::Used)
                    .is_some()
            );
            assert!(
                monitor
                    .process_history(
                        4_030_001,
                        3,
                        ProcessMetric::Used,
                        Duration::from_secs(60),
                        60
                    )
                    .iter()
                    .all(|p| p.is_gap())
            );
            monitor.stop();
        },
    );
}

/// `one_gpu` whose memory query sleeps 60 s from 300 ms after init on.
fn hangs_after_300_ms(name: &str) -> std::path::PathBuf {
    test_support::nvml_scenario_variant("one_gpu", name, |scenario| {
        scenario["description"] =
            serde_json::json!("one_gpu whose memory query hangs after 300 ms");
        scenario["devices"][0]["delays_ms"] =
            serde_json::json!({ "nvmlDeviceGetMemoryInfo_v2": 60_000 });
        scenario["devices"][0]["delays_from_ms"] = serde_json::json!(300);
    })
}

/// With `driver_timeout`, a driver that stops answering costs each frame the timeout: frames
/// go on, carrying the timeout as their GPU error, the history shows a gap where figures were,
/// and `stop` finds the thread finished.
#[test]
fn with_a_driver_timeout_a_hung_driver_becomes_frames_with_a_gpu_error_and_a_gap() {
    let path = hangs_after_300_ms("monitor_hang_with_timeout");
    test_support::with_nvml_double_scenario(
        "with_a_driver_timeout_a_hung_driver_becomes_frames_with_a_gpu_error_and_a_gap",
        &path,
        |lib, _| {
            let probe = Arc::new(
                Probe::builder()
                    .nvml_lib(lib)
                    .use_nvidia_smi(false)
                    .driver_timeout(Duration::from_millis(200))
                    .build(),
            );
            let monitor = Monitor::builder()
                .interval(Duration::from_millis(20))
                .start(probe);
            // Frames before the hang have figures; wait for frames after it.
            let mut seen = 0;
            let mut figures_before = false;
            let deadline = Instant::now() + Duration::from_secs(50);
            let hung = loop {
                assert!(Instant::now() < deadline, "no frame with the timeout");
                let Some((seq, frame)) = monitor.wait_newer(seen, Duration::from_secs(5)) else {
                    continue;
                };
                seen = seq;
                if frame.gpu_error.is_none() {
                    figures_before |= frame
                        .devices
                        .first()
                        .is_some_and(|d| d.device.used_bytes.is_some());
                } else {
                    break frame;
                }
            };
            assert!(figures_before);
            assert!(
                matches!(hung.gpu_error, Some(HypomnesisError::Timeout { .. })),
                "{:?}",
                hung.gpu_error
            );
            assert!(hung.host.is_some(), "host memory is still read");
            // More frames come while the call stays hung.
            let (_, later) = monitor
                .wait_newer(seen, Duration::from_secs(10))
                .expect("frames go on");
            assert!(later.gpu_error.is_some());
            let chart = monitor.device_history(0, DeviceMetric::Used, Duration::from_secs(60), 600);
            let newest = chart.last().unwrap();
            assert!(newest.is_gap(), "{newest:?}");
            assert!(
                chart.iter().any(|p| !p.is_gap()),
                "the figures from before the hang stay"
            );
            assert!(monitor.device_peak(0, DeviceMetric::Used).is_some());
            assert!(
                monitor.stop(),
                "frames return within the timeout, so the thread stops"
            );
        },
    );
}

/// Without `driver_timeout` the thread itself is stuck in the driver call (60 s): `latest`
/// still answers at once with the frame from before, the monitor says it is stalled, and
/// `stop` returns after its bounded wait, leaving the thread behind. Were `stop` to join the
/// thread, it would return after 60 s and fail the 30-s bound.
#[test]
fn a_thread_stuck_in_the_driver_blocks_neither_latest_nor_stop() {
    let path = hangs_after_300_ms("monitor_hang_without_timeout");
    test_support::with_nvml_double_scenario(
        "a_thread_stuck_in_the_driver_blocks_neither_latest_nor_stop",
        &path,
        |lib, _| {
            let monitor = Monitor::builder()
                .interval(Duration::from_millis(20))
                .stop_wait(Duration::from_millis(500))
                .start(probe(lib));
            wait_for_frames(&monitor, 1);
            let deadline = Instant::now() + Duration::from_secs(30);
            while monitor
                .stalled_for()
                .is_none_or(|s| s < Duration::from_secs(1))
            {
                assert!(Instant::now() < deadline, "the thread never stalled");
                std::thread::sleep(Duration::from_millis(50));
            }
            let started = Instant::now();
            let latest = monitor.latest().expect("the frame from before the hang");
            assert!(latest.gpu_error.is_none());
            assert!(
                monitor
                    .wait_newer(monitor.sequence(), Duration::from_millis(100))
                    .is_none()
            );
            let _ = monitor.device_history(0, DeviceMetric::Used, Duration::from_secs(10), 10);
            assert!(!monitor.stop(), "the thread is still in the driver call");
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "did not wait for the 60-s call"
            );
        },
    );
}

//! The Windows backends against a real Windows API: under Wine in CI (`.ci/run`), or on
//! Windows by hand (`cargo test -p hypomnesis --test windows`).
//!
//! `.ci/run` says what the environment can do through `HYPOMNESIS_TEST_ENV`:
//! - `wine-display`: Wine 8 under Xvfb. DXGI enumerates one invented adapter ("NVIDIA GeForce
//!   GTX 470"); the GPU performance counters do not exist (`PDH_CSTATUS_NO_OBJECT`), so the
//!   PDH fallback runs for real; `nvml.dll` is nowhere.
//! - `wine-headless`: the same without an X display: `CreateDXGIFactory1` fails with
//!   `DXGI_ERROR_UNSUPPORTED`.
//!
//! Unset (a real Windows machine), only what holds on every Windows is checked.
#![cfg(windows)]

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use hypomnesis::{
    DeviceField, HypomnesisError, MemoryDetail, Probe, Snapshot, SpillTracker, TelemetryField,
    is_spill_measurable, snapshot_is_spilling,
};

const MIB: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Env {
    WineDisplay,
    WineHeadless,
    Unknown,
}

fn env() -> Env {
    match std::env::var("HYPOMNESIS_TEST_ENV").as_deref() {
        Ok("wine-display") => Env::WineDisplay,
        Ok("wine-headless") => Env::WineHeadless,
        _ => Env::Unknown,
    }
}

/// A probe with only the Windows backends (DXGI, PDH): NVIDIA's are switched off.
fn windows_only() -> Probe {
    Probe::builder()
        .use_nvml(false)
        .use_nvidia_smi(false)
        .build()
}

#[test]
fn own_working_set_is_plausible() {
    let rss = hypomnesis::process_rss().unwrap();
    let host = hypomnesis::host_memory().unwrap();
    assert!(
        rss > MIB,
        "a running test binary holds more than 1 MiB: {rss}"
    );
    assert!(rss < host.total_bytes, "{rss} >= host {}", host.total_bytes);
}

#[test]
fn own_process_memory_has_a_peak_at_least_the_working_set() {
    let probe = windows_only();
    let mem = probe.process_memory(None, MemoryDetail::WithPss).unwrap();
    assert_eq!(mem.pid, std::process::id());
    assert!(mem.rss_bytes > MIB);
    let peak = mem
        .peak_rss_bytes
        .expect("PeakWorkingSetSize is always filled");
    assert!(
        peak >= mem.rss_bytes,
        "peak {peak} < working set {}",
        mem.rss_bytes
    );
    if let Some(private) = mem.private_bytes {
        assert!(
            private > 0,
            "a reported commit is a measurement, never a placeholder 0"
        );
    }
    assert_eq!(
        mem.swap_bytes, None,
        "Windows has no per-process swap figure"
    );
    assert_eq!(
        mem.resident_bytes, None,
        "rss_bytes is the resident figure on Windows"
    );
    assert_eq!(mem.pss_bytes, None);
}

/// Runs this test binary again as a child that sleeps, so there is another live process.
fn sleeping_child() -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "helper_sleeps_while_the_parent_reads_it",
            "--nocapture",
        ])
        .env("HYPOMNESIS_SLEEPING_CHILD", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
#[ignore = "a helper process for another_process_is_read_through_a_handle, not a test"]
fn helper_sleeps_while_the_parent_reads_it() {
    if std::env::var_os("HYPOMNESIS_SLEEPING_CHILD").is_some() {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[test]
fn another_process_is_read_through_a_handle_and_then_is_gone() {
    let probe = windows_only();
    let mut child = sleeping_child();
    let pid = child.id();
    // The child needs a moment to map its image; its working set only grows.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mem = loop {
        let mem = probe.process_memory(Some(pid), MemoryDetail::Fast).unwrap();
        if mem.rss_bytes > MIB || Instant::now() > deadline {
            break mem;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(mem.pid, pid);
    assert!(mem.rss_bytes > MIB, "{mem:?}");
    assert_eq!(probe.process_exists(pid), Some(true));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(matches!(
        probe.process_memory(Some(pid), MemoryDetail::Fast),
        Err(HypomnesisError::ProcessNotFound { pid: p }) if p == pid
    ));
    assert_eq!(probe.process_exists(pid), Some(false));
}

#[test]
fn a_pid_that_never_existed_is_not_found() {
    let probe = windows_only();
    // Windows pids are multiples of 4 below 2^32; this one is never handed out in practice.
    let pid = 0xFFFF_FFF0;
    assert!(matches!(
        probe.process_memory(Some(pid), MemoryDetail::Fast),
        Err(HypomnesisError::ProcessNotFound { .. })
    ));
    assert_eq!(probe.process_exists(pid), Some(false));
    assert_eq!(probe.process_exists(std::process::id()), Some(true));
}

#[test]
fn host_memory_reports_commit_not_swap() {
    let host = hypomnesis::host_memory().unwrap();
    assert!(host.total_bytes > 256 * MIB);
    let available = host.available_bytes.unwrap();
    assert!(available <= host.total_bytes);
    let limit = host.commit_limit_bytes.unwrap();
    let left = host.commit_available_bytes.unwrap();
    assert!(left <= limit, "{left} > {limit}");
    assert!(host.memory_load_percent.unwrap() <= 100);
    assert_eq!(host.swap_total_bytes, None);
    assert_eq!(host.pressure, None);
    assert_eq!(host.page_states, None);
}

#[test]
fn dxgi_enumeration_succeeds_with_a_display_and_fails_cleanly_without() {
    let probe = windows_only();
    match env() {
        Env::WineDisplay => {
            let devices = probe.devices().unwrap();
            assert!(!devices.is_empty(), "Wine under Xvfb shows one adapter");
            let first = &devices[0];
            assert_eq!(first.source.as_str(), "dxgi");
            let name = first.name.as_deref().unwrap();
            assert!(!name.is_empty() && !name.contains('\0'), "{name:?}");
            assert!(first.total_bytes.is_some_and(|t| t > 0));
            assert_eq!(
                probe.device_count().unwrap(),
                u32::try_from(devices.len()).unwrap()
            );
        }
        Env::WineHeadless => {
            let err = probe.device_count().unwrap_err();
            let text = err.to_string();
            assert!(text.contains("0x887A0004"), "{text}");
            assert!(text.contains("DXGI_ERROR_UNSUPPORTED"), "{text}");
            assert!(matches!(err, HypomnesisError::NoGpuSource { .. }));
        }
        Env::Unknown => {
            // Any Windows: an answer or a reason, never a crash.
            if let Err(e) = probe.devices() {
                assert!(!e.to_string().is_empty());
            }
        }
    }
}

#[test]
fn missing_gpu_counters_fall_back_without_touching_the_rest_of_pdh() {
    if env() != Env::WineDisplay {
        return;
    }
    let probe = windows_only();
    let device = probe.device_info(0).unwrap();
    assert_eq!(device.used_bytes, None, "no counters: unknown, not 0");
    let reason = device.unavailable_reason(DeviceField::UsedBytes).unwrap();
    assert!(reason.contains("0xC0000BB9"), "{reason}");
    assert!(reason.contains("PDH_CSTATUS_NO_OBJECT"), "{reason}");
    // Listing processes adds the \GPU Process Memory counter, which fails the same way; had
    // the code gone on to PdhGetFormattedCounterArrayW, Wine would have aborted this process.
    let err = probe.processes(0).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("GPU Process Memory"), "{text}");
    assert!(text.contains("PDH_CSTATUS_NO_OBJECT"), "{text}");
}

#[test]
fn own_gpu_memory_comes_from_dxgi() {
    let probe = windows_only();
    match env() {
        Env::WineDisplay => {
            let own = probe.process_gpu_info(0).unwrap();
            assert_eq!(own.source.as_str(), "dxgi");
            assert!(own.process_bytes.is_some());
            assert_eq!(own.device_index, 0);
        }
        Env::WineHeadless => assert!(probe.process_gpu_info(0).is_err()),
        Env::Unknown => {}
    }
}

#[test]
fn snapshot_now_always_has_ram_and_explains_a_missing_gpu() {
    let snap = Snapshot::now(0).unwrap();
    assert!(snap.ram_bytes > MIB);
    match env() {
        Env::WineDisplay => {
            let device = snap.gpu_device.as_ref().unwrap();
            assert_eq!(device.source.as_str(), "dxgi");
            assert!(snap.gpu.is_some(), "{:?}", snap.gpu_error);
        }
        Env::WineHeadless => {
            assert!(snap.gpu_device.is_none());
            let why = snap.gpu_error.as_ref().unwrap().to_string();
            assert!(why.contains("DXGI"), "{why}");
            assert!(why.contains("nvml.dll"), "{why}");
        }
        Env::Unknown => {}
    }
}

#[test]
fn nvml_is_looked_for_in_system32_then_nvsmi_then_the_search_path() {
    if env() != Env::WineHeadless {
        return;
    }
    let probe = Probe::builder().use_nvidia_smi(false).build();
    let text = probe.device_count().unwrap_err().to_string();
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle} not in {text}"))
    };
    let system32 = at("System32\\nvml.dll");
    let nvsmi = at("NVIDIA Corporation\\NVSMI\\nvml.dll");
    assert!(system32 < nvsmi, "{text}");
}

#[test]
fn spill_is_unknown_not_false_without_counters() {
    assert!(
        is_spill_measurable(),
        "Windows with feature pdh measures spill"
    );
    let probe = windows_only();
    match env() {
        Env::WineDisplay | Env::WineHeadless => {
            assert_eq!(snapshot_is_spilling(0), None);
            let mut tracker = SpillTracker::new(&probe, 0).unwrap();
            assert!(!tracker.is_measurable());
            assert_eq!(tracker.observe(), None);
            if env() == Env::WineDisplay {
                let why = tracker.unmeasurable_reason().unwrap();
                assert!(why.contains("PDH_CSTATUS_NO_OBJECT"), "{why}");
            }
        }
        Env::Unknown => {
            if let Ok(mut tracker) = SpillTracker::new(&probe, 0) {
                let _ = tracker.observe();
            }
        }
    }
}

#[test]
fn telemetry_without_engine_counters_is_ok_with_a_reason() {
    if env() != Env::WineDisplay {
        return;
    }
    let probe = windows_only();
    // Adding \GPU Engine(*)\Utilization Percentage fails under Wine; had the code gone on to
    // PdhGetFormattedCounterArrayW, Wine would have aborted this process.
    let t = probe.telemetry(0).unwrap();
    assert_eq!(t.index, 0);
    assert_eq!(
        t.gpu_utilization_percent, None,
        "no counters: unknown, not 0"
    );
    let reason = t
        .unavailable_reason(TelemetryField::GpuUtilizationPercent)
        .unwrap();
    assert!(reason.contains("GPU Engine"), "{reason}");
    assert!(reason.contains("PDH_CSTATUS_NO_OBJECT"), "{reason}");
    assert!(
        t.unavailable_reason(TelemetryField::TemperatureCelsius)
            .is_some()
    );
    let (all, errors) = probe.telemetry_all().unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(all.first().map(|t| t.index), Some(0));
}

#[test]
fn a_process_tree_is_followed_into_the_children_of_its_root() {
    // cmd.exe (the root) starts ping.exe (its child), which waits about two seconds.
    let mut root = Command::new("cmd.exe")
        .args(["/c", "ping -n 3 127.0.0.1 >NUL"])
        .spawn()
        .unwrap();
    let sampler = hypomnesis::Sampler::builder()
        .probe(std::sync::Arc::new(windows_only()))
        .interval(Duration::from_millis(20))
        .target(hypomnesis::Target::Tree(root.id()))
        .start()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let seen = loop {
        let report = sampler.report();
        let seen = report.targets[0].processes_seen;
        if seen >= 2 || Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    root.wait().unwrap();
    let report = sampler.stop();
    assert!(seen >= 2, "the child was not found: {report:?}");
    assert!(
        report.targets[0].notes.is_empty(),
        "{:?}",
        report.targets[0].notes
    );
    assert!(report.notes.is_empty(), "{:?}", report.notes);
}

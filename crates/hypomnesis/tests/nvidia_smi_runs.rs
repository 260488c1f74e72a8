//! How often `nvidia-smi` runs when NVML cannot be used: each query at most once per frame
//! and per call, however many GPUs there are (it used to be run about twice per GPU: 18
//! times for a plain `hmn` on eight GPUs).
//!
//! The stand-in `fixtures/nvidia-smi/bin/nvidia-smi` replays `eight_h100` through a symlink in
//! a directory of the test's own; the `runs` file beside the symlink gets one line per run
//! with the query it was (`gpu` or `apps`). NVML is pointed at a library that does not exist,
//! so it is tried and found unusable, as on a machine whose driver is not loaded.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use hypomnesis::{FrameRequest, GpuQuerySource, Probe};

/// A directory holding `eight_h100/nvidia-smi` (the stand-in), an empty `runs` file beside
/// it, and empty `proc/` and `sys/` roots (no local process can take a fixture's pid, and no
/// DRM card is listed).
struct Machine {
    dir: tempfile::TempDir,
}

impl Machine {
    fn new() -> Self {
        let stand_in = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/nvidia-smi/bin/nvidia-smi")
            .canonicalize()
            .expect("the stand-in fixtures/nvidia-smi/bin/nvidia-smi exists");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let fixture = dir.path().join("eight_h100");
        std::fs::create_dir(&fixture).unwrap();
        std::os::unix::fs::symlink(&stand_in, fixture.join("nvidia-smi")).unwrap();
        std::fs::write(fixture.join("runs"), "").unwrap();
        std::fs::create_dir(dir.path().join("proc")).unwrap();
        std::fs::create_dir(dir.path().join("sys")).unwrap();
        Self { dir }
    }

    fn probe(&self) -> Probe {
        self.probe_with_nvml(&self.dir.path().join("libnvidia-ml.so.1"))
    }

    /// A probe whose NVML is `nvml_lib`.
    fn probe_with_nvml(&self, nvml_lib: &Path) -> Probe {
        Probe::builder()
            .nvml_lib(nvml_lib)
            .nvidia_smi(self.dir.path().join("eight_h100/nvidia-smi"))
            .nvidia_smi_timeout(Duration::from_secs(10))
            .proc_root(self.dir.path().join("proc"))
            .sys_root(self.dir.path().join("sys"))
            .build()
    }

    /// The queries run so far, in order.
    fn runs(&self) -> Vec<String> {
        let path: PathBuf = self.dir.path().join("eight_h100/runs");
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

#[test]
fn a_whole_frame_of_eight_gpus_runs_each_nvidia_smi_query_once() {
    let machine = Machine::new();
    let frame = machine.probe().frame(FrameRequest::ALL);
    assert!(frame.gpu_error.is_none(), "{:?}", frame.gpu_error);
    assert_eq!(frame.devices.len(), 8);
    for d in &frame.devices {
        assert_eq!(d.device.source, GpuQuerySource::NvidiaSmi);
        let listing = d.processes.as_ref().expect("every device's processes");
        let expected: Vec<u32> = if d.device.index % 2 == 0 {
            vec![21000 + d.device.index]
        } else {
            Vec::new()
        };
        assert_eq!(
            listing.rows.iter().map(|r| r.pid).collect::<Vec<_>>(),
            expected
        );
    }
    assert_eq!(machine.runs(), ["gpu", "apps"]);
}

#[test]
fn listing_the_devices_runs_nvidia_smi_once() {
    let machine = Machine::new();
    let probe = machine.probe();
    assert_eq!(probe.devices().unwrap().len(), 8);
    assert_eq!(machine.runs(), ["gpu"]);
    assert_eq!(probe.device_count().unwrap(), 8);
    assert_eq!(machine.runs(), ["gpu", "gpu"]);
}

#[test]
fn one_devices_process_listing_runs_each_query_once() {
    let machine = Machine::new();
    let listing = machine.probe().gpu_process_listing(6).unwrap();
    assert_eq!(
        listing.rows.iter().map(|r| r.pid).collect::<Vec<_>>(),
        [21006]
    );
    assert_eq!(machine.runs(), ["gpu", "apps"]);
}

#[test]
fn a_frame_of_devices_only_does_not_list_processes() {
    let machine = Machine::new();
    let frame = machine.probe().frame(FrameRequest::DEVICES);
    assert_eq!(frame.devices.len(), 8);
    assert_eq!(machine.runs(), ["gpu"]);
}

/// NVML works but refuses every memory query of its one GPU (the NVML double's `one_gpu`
/// with both memory calls answering UNKNOWN): the device's figures are asked of
/// `nvidia-smi`, and nothing else is.
fn with_memory_refused(test: &str, body: impl FnOnce(PathBuf)) {
    let one_gpu = std::fs::read_to_string(test_support::nvml_scenario("one_gpu")).unwrap();
    let mut scenario: serde_json::Value = serde_json::from_str(&one_gpu).unwrap();
    scenario["devices"][0]["errors"] = serde_json::json!({
        "nvmlDeviceGetMemoryInfo_v2": 999,
        "nvmlDeviceGetMemoryInfo": 999,
    });
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{test}.json"));
    std::fs::write(&path, scenario.to_string()).unwrap();
    test_support::with_nvml_double_scenario(test, &path, |lib, _| body(lib));
}

#[test]
fn telemetry_of_a_device_with_refused_memory_does_not_run_nvidia_smi() {
    with_memory_refused(
        "telemetry_of_a_device_with_refused_memory_does_not_run_nvidia_smi",
        |lib| {
            let machine = Machine::new();
            let probe = machine.probe_with_nvml(&lib);
            assert!(probe.telemetry(0).is_ok());
            assert!(machine.runs().is_empty(), "{:?}", machine.runs());
            // Reading the device itself asks nvidia-smi for the figures NVML refused.
            assert!(probe.device_info(0).is_ok());
            assert_eq!(machine.runs(), ["gpu"]);
        },
    );
}

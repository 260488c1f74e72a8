//! The `nvidia-smi` fallback, end to end through the public API, against the stand-in
//! executable `fixtures/nvidia-smi/bin/nvidia-smi` replaying captured outputs.
//!
//! NVML is switched off (`use_nvml(false)`) so that every answer comes from `nvidia-smi`. Each
//! fixture is reached through a symlink `<tempdir>/<fixture>/nvidia-smi` → the stand-in, which
//! takes the fixture's name from the directory it was run from: symlinks, unlike freshly
//! written wrapper scripts, cannot fail with ETXTBSY while other test threads fork. The `/proc`
//! root is an empty directory, so the dispatcher cannot replace the names `nvidia-smi` printed
//! with those of unrelated local processes that happen to have the fixtures' pids.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hypomnesis::{
    DeviceField, GpuDeviceInfo, GpuProcessKind, GpuQuerySource, GpuVendor, HypomnesisError, Probe,
};

const MIB: u64 = 1_048_576;
const TIMEOUT: Duration = Duration::from_secs(2);

const FIXTURES: &[&str] = &[
    "h100_idle",
    "h100_loaded",
    "four_h100",
    "wddm",
    "mig_unprivileged",
    "gb10",
    "old_driver",
    "driver_not_loaded",
    "version_mismatch",
    "no_devices",
    "hang",
    "chatty",
];

/// A temporary directory holding `<fixture>/nvidia-smi` symlinks and an empty `proc/`.
fn links() -> &'static Path {
    static LINKS: OnceLock<tempfile::TempDir> = OnceLock::new();
    LINKS
        .get_or_init(|| {
            let stand_in = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../fixtures/nvidia-smi/bin/nvidia-smi")
                .canonicalize()
                .expect("the stand-in fixtures/nvidia-smi/bin/nvidia-smi exists");
            let dir = tempfile::tempdir().expect("a temporary directory");
            for fixture in FIXTURES {
                let fixture_dir = dir.path().join(fixture);
                std::fs::create_dir(&fixture_dir).unwrap();
                std::os::unix::fs::symlink(&stand_in, fixture_dir.join("nvidia-smi")).unwrap();
            }
            std::fs::create_dir(dir.path().join("proc")).unwrap();
            dir
        })
        .path()
}

fn probe_with(nvidia_smi: PathBuf) -> Probe {
    Probe::builder()
        .use_nvml(false)
        .nvidia_smi(nvidia_smi)
        .nvidia_smi_timeout(TIMEOUT)
        .proc_root(links().join("proc"))
        .build()
}

/// A probe whose `nvidia-smi` replays `fixture`.
fn probe(fixture: &str) -> Probe {
    assert!(FIXTURES.contains(&fixture), "unknown fixture {fixture}");
    probe_with(links().join(fixture).join("nvidia-smi"))
}

/// The `nvidia-smi` attempt's reason in a `NoGpuSource` error, after checking that NVML was
/// reported as switched off.
fn smi_reason(err: &HypomnesisError) -> &str {
    let HypomnesisError::NoGpuSource { attempts } = err else {
        panic!("expected NoGpuSource, got {err:?}");
    };
    let nvml = attempts
        .iter()
        .find(|a| a.backend == GpuQuerySource::Nvml)
        .unwrap_or_else(|| panic!("no NVML attempt in {attempts:?}"));
    assert_eq!(nvml.reason, "disabled by the caller");
    &attempts
        .iter()
        .find(|a| a.backend == GpuQuerySource::NvidiaSmi)
        .unwrap_or_else(|| panic!("no nvidia-smi attempt in {attempts:?}"))
        .reason
}

fn assert_h100_identity(d: &GpuDeviceInfo) {
    assert_eq!(d.index, 0);
    assert_eq!(d.name.as_deref(), Some("NVIDIA H100 80GB HBM3"));
    assert_eq!(
        d.uuid.as_deref(),
        Some("GPU-5b1c7b2e-3f4a-4d7e-9c1a-0b2d3e4f5a6b")
    );
    assert_eq!(d.pci_bus_id.as_deref(), Some("00000000:00:09.0"));
    assert_eq!(d.driver_version.as_deref(), Some("590.48.01"));
    assert_eq!(d.vendor, GpuVendor::Nvidia);
    assert_eq!(d.source, GpuQuerySource::NvidiaSmi);
    assert!(!d.unified_memory);
}

#[test]
fn idle_h100_is_one_device_with_exact_byte_figures_and_no_processes() {
    let p = probe("h100_idle");
    assert_eq!(p.device_count().unwrap(), 1);
    let devices = p.devices().unwrap();
    assert_eq!(devices.len(), 1);
    let d = p.device_info(0).unwrap();
    assert_eq!(devices[0], d);
    assert_h100_identity(&d);
    assert_eq!(d.total_bytes, Some(81559 * MIB));
    assert_eq!(d.used_bytes, Some(0));
    assert_eq!(d.free_bytes, Some(81081 * MIB));
    assert_eq!(d.reserved_bytes, Some(479 * MIB));
    assert_eq!(d.unavailable_reason(DeviceField::TotalBytes), None);

    assert!(p.processes(0).unwrap().is_empty());
    let own = p.process_gpu_info(0).unwrap();
    assert_eq!((own.process_bytes, own.device_used_bytes), (None, Some(0)));
    assert_eq!(own.device_index, 0);
    assert_eq!(own.source, GpuQuerySource::NvidiaSmi);
}

#[test]
fn a_device_index_past_the_last_gpu_is_out_of_range() {
    let err = probe("h100_idle").device_info(1).unwrap_err();
    assert!(
        matches!(
            err,
            HypomnesisError::DeviceIndexOutOfRange { index: 1, count: 1 }
        ),
        "{err:?}"
    );
}

#[test]
fn loaded_h100_lists_gpu_burn_and_a_name_with_commas_whole() {
    let p = probe("h100_loaded");
    let d = p.device_info(0).unwrap();
    assert_h100_identity(&d);
    assert_eq!(d.total_bytes, Some(81559 * MIB));
    assert_eq!(d.used_bytes, Some(19818 * MIB));
    assert_eq!(d.free_bytes, Some(61263 * MIB));
    assert_eq!(d.reserved_bytes, Some(479 * MIB));

    let rows = p.processes(0).unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].pid, 11345);
    assert_eq!(rows[0].name.as_deref(), Some("./gpu_burn"));
    assert_eq!(rows[0].used_bytes, Some(15690 * MIB));
    assert_eq!(rows[1].pid, 11402);
    assert_eq!(
        rows[1].name.as_deref(),
        Some("python3 serve.py --models llama,mistral, --port 8000")
    );
    assert_eq!(rows[1].used_bytes, Some(4128 * MIB));
    for row in &rows {
        assert_eq!(row.device_index, 0);
        assert_eq!(row.kind, GpuProcessKind::Compute);
        assert_eq!(row.source, GpuQuerySource::NvidiaSmi);
    }

    // Without NVML only the device-wide figure is known: an upper bound, said to be one.
    let own = p.process_gpu_info(0).unwrap();
    assert_eq!(own.process_bytes, None);
    assert_eq!(own.device_used_bytes, Some(19818 * MIB));
    assert_eq!(own.upper_bound_bytes(), 19818 * MIB);
    assert_eq!(own.source, GpuQuerySource::NvidiaSmi);
}

/// `four_h100`'s GPUs: UUID, PCI bus id, used and free MiB (see its README).
const FOUR_H100: [(&str, &str, u64, u64); 4] = [
    (
        "GPU-5b1c7b2e-3f4a-4d7e-9c1a-0b2d3e4f5a6b",
        "00000000:1B:00.0",
        31252,
        49828,
    ),
    (
        "GPU-0e8d2c41-7b6a-4f3e-8d2c-5a9b1e0f7c3d",
        "00000000:43:00.0",
        30216,
        50864,
    ),
    (
        "GPU-c7a94f10-2d5e-4b81-a3f6-9e0d8c1b2a47",
        "00000000:52:00.0",
        0,
        81081,
    ),
    (
        "GPU-91f3e6d8-4c2b-4a7e-b5d0-3f8e2a6c1d94",
        "00000000:61:00.0",
        45906,
        35174,
    ),
];

#[test]
fn four_gpus_are_numbered_by_their_index_each_with_its_own_identity_and_figures() {
    let p = probe("four_h100");
    assert_eq!(p.device_count().unwrap(), 4);
    let devices = p.devices().unwrap();
    assert_eq!(devices.len(), 4);
    for (i, (uuid, bus, used, free)) in FOUR_H100.iter().enumerate() {
        let index = u32::try_from(i).unwrap();
        let d = p.device_info(index).unwrap();
        assert_eq!(devices[i], d);
        assert_eq!(d.index, index);
        assert_eq!(d.uuid.as_deref(), Some(*uuid), "GPU {i}");
        assert_eq!(d.pci_bus_id.as_deref(), Some(*bus), "GPU {i}");
        assert_eq!(d.name.as_deref(), Some("NVIDIA H100 80GB HBM3"));
        assert_eq!(d.total_bytes, Some(81559 * MIB), "GPU {i}");
        assert_eq!(d.used_bytes, Some(used * MIB), "GPU {i}");
        assert_eq!(d.free_bytes, Some(free * MIB), "GPU {i}");
        assert_eq!(d.reserved_bytes, Some(479 * MIB), "GPU {i}");
        assert_eq!(d.source, GpuQuerySource::NvidiaSmi);
    }
    assert!(matches!(
        p.device_info(4),
        Err(HypomnesisError::DeviceIndexOutOfRange { index: 4, count: 4 })
    ));
}

#[test]
fn each_process_row_goes_to_the_gpu_whose_uuid_it_names() {
    let p = probe("four_h100");
    let listed = |index: u32| -> Vec<(u32, Option<&'static str>, Option<u64>)> {
        p.processes(index)
            .unwrap()
            .into_iter()
            .map(|row| {
                assert_eq!(row.device_index, index, "{row:?}");
                assert_eq!(row.kind, GpuProcessKind::Compute);
                assert_eq!(row.source, GpuQuerySource::NvidiaSmi);
                let name = match row.name.as_deref() {
                    Some("python3") => Some("python3"),
                    Some("./gpu_burn") => Some("./gpu_burn"),
                    other => panic!("unexpected name {other:?}"),
                };
                (row.pid, name, row.used_bytes)
            })
            .collect()
    };
    let py = Some("python3");
    // Ranks 1 and 2 (20482, 20483) have a stray context on GPU 0 besides their own GPU.
    assert_eq!(
        listed(0),
        vec![
            (20481, py, Some(30216 * MIB)),
            (20482, py, Some(518 * MIB)),
            (20483, py, Some(518 * MIB)),
        ]
    );
    assert_eq!(listed(1), vec![(20482, py, Some(30216 * MIB))]);
    assert_eq!(listed(2), vec![], "the idle GPU has no rows");
    assert_eq!(
        listed(3),
        vec![
            (11345, Some("./gpu_burn"), Some(15690 * MIB)),
            (20483, py, Some(30216 * MIB)),
        ],
        "sorted by pid"
    );
    // Each device's rows add up to its used figure.
    for (i, (_, _, used, _)) in FOUR_H100.iter().enumerate() {
        let index = u32::try_from(i).unwrap();
        let sum: u64 = listed(index).iter().filter_map(|r| r.2).sum();
        assert_eq!(sum, used * MIB, "GPU {i}");
    }
}

#[test]
fn without_nvml_the_own_figure_of_each_gpu_is_that_gpus_used_memory() {
    let p = probe("four_h100");
    for (i, (_, _, used, _)) in FOUR_H100.iter().enumerate() {
        let index = u32::try_from(i).unwrap();
        let own = p.process_gpu_info(index).unwrap();
        assert_eq!(own.device_index, index);
        assert_eq!(
            (own.process_bytes, own.device_used_bytes),
            (None, Some(used * MIB)),
            "GPU {i}: the device-wide upper bound"
        );
    }
}

#[test]
fn without_nvml_the_own_figure_is_never_given_as_the_processs_own() {
    let p = probe("h100_loaded");
    let own = p.process_gpu_info(0).unwrap();
    assert_eq!(
        own.process_bytes, None,
        "nvidia-smi cannot tell one process's use"
    );
    assert_eq!(own.device_used_bytes, Some(19818 * MIB));
}

#[test]
#[allow(deprecated)] // the original crate's fields, kept for its users
fn the_original_crates_used_bytes_and_is_per_process_keep_their_meaning() {
    let own = probe("h100_loaded").process_gpu_info(0).unwrap();
    assert_eq!(own.used_bytes, 19818 * MIB);
    assert!(!own.is_per_process);
}

#[test]
fn the_nvidia_smi_listing_says_it_lists_compute_processes_only() {
    for fixture in ["h100_loaded", "h100_idle"] {
        let listing = probe(fixture).gpu_process_listing(0).unwrap();
        assert!(listing.compute_only, "{fixture}");
        let notes = listing.findings();
        let note = notes
            .iter()
            .find(|n| n.kind == hypomnesis::ListingNoteKind::ComputeOnly)
            .unwrap_or_else(|| panic!("{fixture}: {notes:?}"));
        assert!(
            note.message.contains("compute processes only"),
            "{}",
            note.message
        );
    }
}

#[test]
fn wddm_has_device_figures_but_no_per_process_figures() {
    let p = probe("wddm");
    assert_eq!(p.device_count().unwrap(), 1);
    let d = p.device_info(0).unwrap();
    assert_eq!(d.name.as_deref(), Some("NVIDIA GeForce RTX 2080 SUPER"));
    assert_eq!(d.driver_version.as_deref(), Some("591.86"));
    assert_eq!(d.total_bytes, Some(8192 * MIB));
    assert_eq!(d.used_bytes, Some(702 * MIB));
    assert_eq!(d.free_bytes, Some(7286 * MIB));
    assert_eq!(d.reserved_bytes, Some(205 * MIB));

    let rows = p.processes(0).unwrap();
    let got: Vec<_> = rows
        .iter()
        .map(|r| (r.pid, r.name.as_deref(), r.used_bytes))
        .collect();
    assert_eq!(
        got,
        [
            (2056, Some("C:\\Windows\\System32\\dwm.exe"), None),
            (7310, Some("C:\\Program Files\\Python311\\python.exe"), None),
        ]
    );
    let own = p.process_gpu_info(0).unwrap();
    assert_eq!(
        (own.process_bytes, own.device_used_bytes),
        (None, Some(702 * MIB))
    );
}

#[test]
fn mig_without_privileges_gives_identity_but_no_memory_and_no_process_list() {
    let p = probe("mig_unprivileged");
    assert_eq!(p.device_count().unwrap(), 1);
    let d = p.device_info(0).unwrap();
    assert_eq!(d.name.as_deref(), Some("NVIDIA A100-SXM4-40GB"));
    assert_eq!(
        (d.total_bytes, d.used_bytes, d.free_bytes, d.reserved_bytes),
        (None, None, None, None)
    );
    for field in [
        DeviceField::TotalBytes,
        DeviceField::UsedBytes,
        DeviceField::FreeBytes,
        DeviceField::ReservedBytes,
    ] {
        let reason = d.unavailable_reason(field).unwrap_or_default();
        assert!(
            reason.contains("[Insufficient Permissions]"),
            "{field}: {reason:?}"
        );
    }
    assert!(!d.unified_memory);

    // The rows' pids are hidden: an empty list would claim no process uses the GPU.
    let err = p.processes(0).unwrap_err();
    let reason = smi_reason(&err);
    assert!(reason.contains("[Insufficient Permissions]"), "{reason}");
    assert!(reason.contains("incomplete"), "{reason}");

    let err = p.process_gpu_info(0).unwrap_err();
    assert!(smi_reason(&err).contains("no memory figures"), "{err}");
}

#[test]
fn gb10_reports_unified_memory_and_no_invented_device_figures() {
    let p = probe("gb10");
    let d = p.device_info(0).unwrap();
    assert_eq!(d.name.as_deref(), Some("NVIDIA GB10"));
    assert!(d.unified_memory);
    assert_eq!(
        (d.total_bytes, d.used_bytes, d.free_bytes, d.reserved_bytes),
        (None, None, None, None)
    );
    let reason = d
        .unavailable_reason(DeviceField::TotalBytes)
        .unwrap_or_default();
    assert!(reason.contains("[N/A]"), "{reason:?}");
    assert!(p.processes(0).unwrap().is_empty());
    assert!(p.process_gpu_info(0).is_err());
}

#[test]
fn an_old_driver_refusing_memory_reserved_is_asked_again_without_it() {
    let p = probe("old_driver");
    let d = p.device_info(0).unwrap();
    assert_eq!(d.name.as_deref(), Some("Tesla V100-SXM2-16GB"));
    assert_eq!(d.driver_version.as_deref(), Some("470.182.03"));
    assert_eq!(d.total_bytes, Some(16160 * MIB));
    assert_eq!(d.used_bytes, Some(1210 * MIB));
    assert_eq!(d.free_bytes, Some(14950 * MIB));
    assert_eq!(d.reserved_bytes, None);
    assert_eq!(
        d.unavailable_reason(DeviceField::ReservedBytes),
        Some("nvidia-smi on this driver has no memory.reserved field")
    );
    // A second question on the same probe goes straight to the query without the field.
    assert_eq!(p.devices().unwrap(), vec![d]);
    let rows = p.processes(0).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].pid, rows[0].used_bytes), (4021, Some(1206 * MIB)));
}

#[test]
fn driver_not_loaded_keeps_nvidia_smis_message_and_exit_code_9() {
    let p = probe("driver_not_loaded");
    let errors = [
        p.device_count().map(|_| ()).unwrap_err(),
        p.devices().map(|_| ()).unwrap_err(),
        p.device_info(0).map(|_| ()).unwrap_err(),
        p.processes(0).map(|_| ()).unwrap_err(),
        p.process_gpu_info(0).map(|_| ()).unwrap_err(),
    ];
    for err in &errors {
        let reason = smi_reason(err);
        assert!(
            reason.contains("couldn't communicate with the NVIDIA driver"),
            "{reason}"
        );
        assert!(reason.contains("exited with code 9"), "{reason}");
        assert!(reason.contains("driver is not loaded"), "{reason}");
    }
}

#[test]
fn a_driver_library_version_mismatch_keeps_both_lines_and_exit_code_18() {
    let err = probe("version_mismatch").device_count().unwrap_err();
    let reason = smi_reason(&err);
    assert!(reason.contains("exited with code 18"), "{reason}");
    assert!(
        reason.contains("Failed to initialize NVML: Driver/library version mismatch"),
        "{reason}"
    );
    assert!(reason.contains("NVML library version: 535.161"), "{reason}");
}

/// Exit 6 "No devices were found" means the driver answered and there is no NVIDIA GPU: that
/// is zero devices, as NVML would count them, not a failure of the backend.
#[test]
fn no_devices_found_is_zero_gpus_not_an_error() {
    let p = probe("no_devices");
    assert_eq!(p.device_count().unwrap(), 0);
    assert!(p.devices().unwrap().is_empty());
    assert!(
        matches!(
            p.device_info(0),
            Err(HypomnesisError::DeviceIndexOutOfRange { index: 0, count: 0 })
        ),
        "{:?}",
        p.device_info(0)
    );
    assert!(matches!(
        p.process_gpu_info(0),
        Err(HypomnesisError::DeviceIndexOutOfRange { index: 0, count: 0 })
    ));
    assert!(matches!(
        p.processes(0),
        Err(HypomnesisError::DeviceIndexOutOfRange { index: 0, count: 0 })
    ));
}

#[test]
fn a_hanging_nvidia_smi_is_killed_at_the_timeout() {
    let p = probe("hang");
    let started = Instant::now();
    let err = p.device_count().unwrap_err();
    let elapsed = started.elapsed();
    let reason = smi_reason(&err);
    assert!(reason.contains("did not answer within 2s"), "{reason}");
    assert!(reason.contains("--query-gpu"), "{reason}");
    // The stand-in sleeps 30 s: returning well before that proves it was abandoned.
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
}

#[test]
fn megabytes_of_warnings_on_stderr_do_not_stall_the_answer() {
    let d = probe("chatty").device_info(0).unwrap();
    assert_eq!(d.total_bytes, Some(81559 * MIB));
}

#[test]
fn a_missing_executable_is_reported_as_not_found_with_its_path() {
    let missing = links().join("no-such-dir").join("nvidia-smi");
    let err = probe_with(missing.clone()).device_count().unwrap_err();
    let reason = smi_reason(&err);
    assert!(reason.contains("not found"), "{reason}");
    assert!(reason.contains(&missing.display().to_string()), "{reason}");
}

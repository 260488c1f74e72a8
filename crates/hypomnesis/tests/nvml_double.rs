//! The NVML backend against the NVML double, one scenario per process.
//!
//! NVML's state is process-wide and cargo runs tests as threads of one process, so each test
//! re-runs this test binary filtered to itself, with the scenario in the environment, and the
//! body runs in that child. The child prints a marker so that a filter matching nothing can
//! never pass vacuously. Expected values are read from the scenario file itself, so a test
//! checks that the library reports what the (pynvml-checked) double declares.
#![cfg(target_os = "linux")]

use hypomnesis::{DeviceField, GpuProcessKind, GpuQuerySource, HypomnesisError, Probe};
use serde_json::Value;

/// Runs `body` with a probe on the double loaded with `scenario`, in a process of its own;
/// `body` also gets the scenario's declared values.
fn in_scenario(test: &str, scenario: &str, body: impl FnOnce(Probe, Value)) {
    test_support::with_nvml_double(test, scenario, |lib, path| {
        let probe = Probe::builder().nvml_lib(lib).use_nvidia_smi(false).build();
        let declared: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        body(probe, declared);
    });
}

fn device(declared: &Value, index: usize) -> &Value {
    &declared["devices"][index]
}

fn u64_at(value: &Value, key: &str) -> u64 {
    value[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {value}"))
}

fn unique_pids(device: &Value) -> Vec<u64> {
    let mut pids: Vec<u64> = ["compute_processes", "graphics_processes"]
        .iter()
        .flat_map(|list| device[*list].as_array().cloned().unwrap_or_default())
        .map(|p| u64_at(&p, "pid"))
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

#[test]
fn no_gpus_means_zero_devices_and_ram_still_measured() {
    in_scenario(
        "no_gpus_means_zero_devices_and_ram_still_measured",
        "no_gpus",
        |probe, _| {
            assert_eq!(probe.device_count().unwrap(), 0);
            assert!(probe.devices().unwrap().is_empty());
            assert!(matches!(
                probe.device_info(0),
                Err(HypomnesisError::DeviceIndexOutOfRange { index: 0, count: 0 })
            ));
            let snap = probe.snapshot(0).unwrap();
            assert!(snap.ram_bytes > 0);
            assert!(snap.gpu_device.is_none());
            assert!(snap.gpu_error.is_some());
        },
    );
}

#[test]
fn one_gpu_reports_v2_memory_identity_and_driver() {
    in_scenario(
        "one_gpu_reports_v2_memory_identity_and_driver",
        "one_gpu",
        |probe, declared| {
            let want = device(&declared, 0);
            let info = probe.device_info(0).unwrap();
            assert_eq!(info.source, GpuQuerySource::Nvml);
            assert_eq!(info.name.as_deref(), want["name"].as_str());
            assert_eq!(info.uuid.as_deref(), want["uuid"].as_str());
            assert_eq!(info.pci_bus_id.as_deref(), want["pci_bus_id"].as_str());
            assert_eq!(
                info.driver_version.as_deref(),
                declared["driver_version"].as_str()
            );
            let memory = &want["memory"];
            assert_eq!(info.total_bytes, Some(u64_at(memory, "total")));
            assert_eq!(info.free_bytes, Some(u64_at(memory, "free")));
            assert_eq!(info.used_bytes, Some(u64_at(memory, "used")));
            assert_eq!(info.reserved_bytes, Some(u64_at(memory, "reserved")));
            assert!(!info.unified_memory);
            assert!(info.unavailable.is_empty(), "{:?}", info.unavailable);
        },
    );
}

#[test]
fn compute_and_graphics_lists_are_merged_per_pid() {
    in_scenario(
        "compute_and_graphics_lists_are_merged_per_pid",
        "one_gpu",
        |probe, declared| {
            let want = device(&declared, 0);
            let rows = probe.processes(0).unwrap();
            let pids: Vec<u64> = rows.iter().map(|r| u64::from(r.pid)).collect();
            assert_eq!(pids, unique_pids(want), "one row per pid, sorted");
            let compute: Vec<u64> = want["compute_processes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| u64_at(p, "pid"))
                .collect();
            let graphics: Vec<u64> = want["graphics_processes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| u64_at(p, "pid"))
                .collect();
            let both: Vec<&u64> = compute.iter().filter(|p| graphics.contains(p)).collect();
            assert!(!both.is_empty(), "scenario must have a pid in both lists");
            for row in &rows {
                let pid = u64::from(row.pid);
                let expected = match (compute.contains(&pid), graphics.contains(&pid)) {
                    (true, true) => GpuProcessKind::ComputeAndGraphics,
                    (true, false) => GpuProcessKind::Compute,
                    _ => GpuProcessKind::Graphics,
                };
                assert_eq!(row.kind, expected, "pid {pid}");
                assert_eq!(row.device_index, 0);
                assert!(row.used_bytes.is_some());
            }
            // The calling process holds no context in this scenario: 0 bytes, and it says it is
            // a per-process figure.
            let own = probe.process_gpu_info(0).unwrap();
            assert_eq!((own.process_bytes, own.device_used_bytes), (Some(0), None));
        },
    );
}

#[test]
fn four_gpus_are_enumerated_and_a_process_on_two_appears_on_each() {
    in_scenario(
        "four_gpus_are_enumerated_and_a_process_on_two_appears_on_each",
        "four_gpus",
        |probe, declared| {
            assert_eq!(probe.device_count().unwrap(), 4);
            let devices = probe.devices().unwrap();
            let indices: Vec<u32> = devices.iter().map(|d| d.index).collect();
            assert_eq!(indices, vec![0, 1, 2, 3]);
            for (i, info) in devices.iter().enumerate() {
                let want = device(&declared, i);
                assert_eq!(info.uuid.as_deref(), want["uuid"].as_str());
                assert_eq!(info.total_bytes, Some(u64_at(&want["memory"], "total")));
                let pids: Vec<u64> = probe
                    .processes(u32::try_from(i).unwrap())
                    .unwrap()
                    .iter()
                    .map(|r| u64::from(r.pid))
                    .collect();
                assert_eq!(pids, unique_pids(want), "device {i}");
            }
            let per_device: Vec<Vec<u64>> =
                (0..4).map(|i| unique_pids(device(&declared, i))).collect();
            let on_two = per_device
                .iter()
                .flatten()
                .any(|pid| per_device.iter().filter(|l| l.contains(pid)).count() >= 2);
            assert!(on_two, "scenario must have a pid on two GPUs");
            let snaps = probe.snapshot_all().unwrap();
            assert_eq!(snaps.len(), 4);
            assert!(snaps.iter().all(|s| s.ram_bytes == snaps[0].ram_bytes));
        },
    );
}

#[test]
fn reserved_memory_is_reported_and_adds_up_to_total() {
    in_scenario(
        "reserved_memory_is_reported_and_adds_up_to_total",
        "reserved",
        |probe, declared| {
            let info = probe.device_info(0).unwrap();
            let reserved = u64_at(&device(&declared, 0)["memory"], "reserved");
            assert!(reserved > 0);
            assert_eq!(info.reserved_bytes, Some(reserved));
            // The scenario is built from an nvidia-smi capture, whose MiB rounding leaves the
            // parts within 1 MiB of the total, as on real H100s.
            let parts =
                info.reserved_bytes.unwrap() + info.free_bytes.unwrap() + info.used_bytes.unwrap();
            assert!(
                info.total_bytes.unwrap().abs_diff(parts) <= 1 << 20,
                "total {} vs reserved + free + used {parts}",
                info.total_bytes.unwrap()
            );
        },
    );
}

#[test]
fn pre_r510_driver_falls_back_to_v1_without_reserved() {
    in_scenario(
        "pre_r510_driver_falls_back_to_v1_without_reserved",
        "pre_r510",
        |probe, declared| {
            let info = probe.device_info(0).unwrap();
            let memory = &device(&declared, 0)["memory"];
            assert_eq!(info.reserved_bytes, None);
            let reason = info.unavailable_reason(DeviceField::ReservedBytes).unwrap();
            assert!(reason.contains("R510"), "{reason}");
            assert_eq!(info.total_bytes, Some(u64_at(memory, "total")));
            // v1 folds the reserved memory into `used`.
            assert_eq!(
                info.used_bytes,
                Some(u64_at(memory, "used") + u64_at(memory, "reserved"))
            );
        },
    );
}

#[test]
fn not_available_sentinel_becomes_none_never_a_number() {
    in_scenario(
        "not_available_sentinel_becomes_none_never_a_number",
        "sentinel",
        |probe, _| {
            let rows = probe.processes(0).unwrap();
            assert!(rows.len() >= 2);
            assert!(rows.iter().any(|r| r.used_bytes.is_none()));
            assert!(rows.iter().any(|r| r.used_bytes.is_some()));
            assert!(rows.iter().all(|r| r.used_bytes != Some(u64::MAX)));
        },
    );
}

#[test]
fn used_greater_than_total_is_dropped_with_a_reason() {
    in_scenario(
        "used_greater_than_total_is_dropped_with_a_reason",
        "used_gt_total",
        |probe, _| {
            let info = probe.device_info(0).unwrap();
            // The installed memory is kept; the use figures that contradict it are not.
            assert_eq!(info.total_bytes, Some(85_520_809_984));
            assert_eq!(info.used_bytes, None);
            assert_eq!(info.free_bytes, None);
            let reason = info.unavailable_reason(DeviceField::UsedBytes).unwrap();
            assert!(reason.contains("impossible"), "{reason}");
            let rows = probe.processes(0).unwrap();
            assert!(rows.iter().any(|r| r.used_bytes.is_none()));
        },
    );
}

#[test]
fn driver_not_loaded_says_so_and_ram_still_works() {
    in_scenario(
        "driver_not_loaded_says_so_and_ram_still_works",
        "init_driver_not_loaded",
        |probe, _| {
            let Err(HypomnesisError::NoGpuSource { attempts }) = probe.device_count() else {
                panic!("expected NoGpuSource");
            };
            let nvml = attempts
                .iter()
                .find(|a| a.backend == GpuQuerySource::Nvml)
                .unwrap();
            assert!(nvml.reason.contains("Driver Not Loaded"), "{}", nvml.reason);
            assert!(
                nvml.reason.contains("driver is not loaded"),
                "{}",
                nvml.reason
            );
            let snap = probe.snapshot(0).unwrap();
            assert!(snap.ram_bytes > 0);
            assert!(snap.gpu_error.is_some());
        },
    );
}

#[test]
fn version_mismatch_is_reported_with_its_remedy() {
    in_scenario(
        "version_mismatch_is_reported_with_its_remedy",
        "init_version_mismatch",
        |probe, _| {
            let err = probe.device_info(0).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("version mismatch"), "{text}");
            assert!(text.contains("reboot or reinstall"), "{text}");
        },
    );
}

#[test]
fn refused_process_list_is_an_error_not_an_empty_list() {
    in_scenario(
        "refused_process_list_is_an_error_not_an_empty_list",
        "no_permission",
        |probe, _| {
            let err = probe.processes(0).unwrap_err();
            let HypomnesisError::NoGpuSource { attempts } = &err else {
                panic!("expected NoGpuSource, got {err}");
            };
            let nvml = attempts
                .iter()
                .find(|a| a.backend == GpuQuerySource::Nvml)
                .unwrap();
            assert!(
                nvml.reason.contains("Insufficient Permissions"),
                "{}",
                nvml.reason
            );
            // Device memory is still readable.
            assert!(probe.device_info(0).unwrap().total_bytes.is_some());
        },
    );
}

#[test]
fn process_list_that_grows_between_calls_is_read_completely() {
    in_scenario(
        "process_list_that_grows_between_calls_is_read_completely",
        "count_grows",
        |probe, declared| {
            let want = unique_pids(device(&declared, 0)).len();
            assert!(want > 64, "scenario must exceed a 64-slot buffer");
            assert_eq!(probe.processes(0).unwrap().len(), want);
        },
    );
}

#[test]
fn mig_instance_ids_are_kept() {
    in_scenario("mig_instance_ids_are_kept", "mig", |probe, declared| {
        let rows = probe.processes(0).unwrap();
        for want in device(&declared, 0)["compute_processes"]
            .as_array()
            .unwrap()
        {
            let pid = u32::try_from(u64_at(want, "pid")).unwrap();
            let row = rows.iter().find(|r| r.pid == pid).unwrap();
            assert_eq!(
                row.gpu_instance_id.map(u64::from),
                want["gpu_instance_id"].as_u64(),
                "pid {pid}"
            );
            assert_eq!(
                row.compute_instance_id.map(u64::from),
                want["compute_instance_id"].as_u64(),
                "pid {pid}"
            );
        }
        assert!(rows.iter().any(|r| r.gpu_instance_id.is_some()));
    });
}

#[test]
fn unified_memory_device_is_flagged_not_reported_as_zero() {
    in_scenario(
        "unified_memory_device_is_flagged_not_reported_as_zero",
        "unified_memory",
        |probe, _| {
            let info = probe.device_info(0).unwrap();
            assert!(info.unified_memory);
            assert_eq!(info.total_bytes, None);
            assert_eq!(info.free_bytes, None);
            assert!(
                info.unavailable_reason(DeviceField::TotalBytes)
                    .unwrap()
                    .contains("unified")
            );
            let rows = probe.processes(0).unwrap();
            assert!(rows.iter().all(|r| r.used_bytes.is_some_and(|b| b > 0)));
        },
    );
}

/// An early R535 driver writes 32-byte `_v3` process entries; the library tells it by its
/// symbols and reads every entry right (a 24-byte reader would see garbage from the second
/// on — `pynvml_fidelity.rs` shows pynvml doing exactly that on this scenario).
#[test]
fn early_r535_32_byte_process_entries_are_read_right() {
    in_scenario(
        "early_r535_32_byte_process_entries_are_read_right",
        "early_r535",
        |probe, declared| {
            let want = device(&declared, 0);
            assert_eq!(
                want["process_info_stride"], 32,
                "the scenario plays the trap"
            );
            let rows = probe.processes(0).unwrap();
            let pids: Vec<u64> = rows.iter().map(|r| u64::from(r.pid)).collect();
            assert_eq!(pids, unique_pids(want));
            for list in ["compute_processes", "graphics_processes"] {
                for p in want[list].as_array().unwrap() {
                    let row = rows
                        .iter()
                        .find(|r| u64::from(r.pid) == u64_at(p, "pid"))
                        .unwrap();
                    assert_eq!(row.used_bytes, Some(u64_at(p, "used_gpu_memory")));
                    assert_eq!(row.gpu_instance_id, None, "MIG off, not a garbage id");
                    assert_eq!(row.compute_instance_id, None);
                }
            }
        },
    );
}

/// `one_gpu` with its memory query made to sleep `hang_ms`.
fn hung_memory_query_scenario(name: &str, hang_ms: u64) -> std::path::PathBuf {
    test_support::nvml_scenario_variant("one_gpu", name, |scenario| {
        scenario["description"] = serde_json::json!("one_gpu whose memory query hangs");
        scenario["devices"][0]["delays_ms"] =
            serde_json::json!({ "nvmlDeviceGetMemoryInfo_v2": hang_ms });
    })
}

/// A driver call that never returns (the double's memory query sleeps 60 s) costs a probe
/// built with `driver_timeout` only the timeout: the call fails with `Timeout`, and while it
/// stays blocked every GPU question fails at once, saying so, and RAM is still measured.
/// Without the guard `device_info` would answer after 60 s, with figures, and fail the test.
#[test]
fn a_hung_driver_call_is_abandoned_after_the_driver_timeout() {
    let path = hung_memory_query_scenario("probe_hung_memory_query", 60_000);
    test_support::with_nvml_double_scenario(
        "a_hung_driver_call_is_abandoned_after_the_driver_timeout",
        &path,
        |lib, _| {
            let probe = Probe::builder()
                .nvml_lib(lib)
                .use_nvidia_smi(false)
                .driver_timeout(std::time::Duration::from_millis(500))
                .build();
            let started = std::time::Instant::now();
            let first = probe.device_info(0);
            assert!(
                matches!(&first, Err(HypomnesisError::Timeout { what, .. }) if what.contains("device_info")),
                "{first:?}"
            );
            // Not a timing budget: the hung call lasts 60 s, and the answer came long before.
            assert!(started.elapsed() < std::time::Duration::from_secs(30));
            std::thread::sleep(std::time::Duration::from_millis(600));
            assert!(probe.stuck_driver_call().is_some());
            let second = probe.processes(0);
            assert!(
                matches!(&second, Err(HypomnesisError::Timeout { what, .. }) if what.contains("processes not attempted")),
                "{second:?}"
            );
            let snapshot = probe.snapshot(0).unwrap();
            assert!(snapshot.ram_bytes > 0);
            assert!(
                matches!(snapshot.gpu_error, Some(HypomnesisError::Timeout { .. })),
                "{snapshot:?}"
            );
            let all = probe.snapshot_all().unwrap();
            assert_eq!(all.len(), 1);
            assert!(matches!(
                all[0].gpu_error,
                Some(HypomnesisError::Timeout { .. })
            ));
        },
    );
}

/// Through the guard's worker thread, a probe answers what a probe without one answers.
#[test]
fn a_probe_with_a_driver_timeout_reads_the_same_figures() {
    test_support::with_nvml_double(
        "a_probe_with_a_driver_timeout_reads_the_same_figures",
        "four_gpus",
        |lib, _| {
            let direct = Probe::builder()
                .nvml_lib(&lib)
                .use_nvidia_smi(false)
                .build();
            let guarded = Probe::builder()
                .nvml_lib(&lib)
                .use_nvidia_smi(false)
                .driver_timeout(std::time::Duration::from_secs(30))
                .build();
            assert_eq!(guarded.device_count().unwrap(), 4);
            assert_eq!(guarded.devices().unwrap(), direct.devices().unwrap());
            for index in 0..4 {
                assert_eq!(
                    guarded.processes(index).unwrap(),
                    direct.processes(index).unwrap()
                );
            }
            assert!(guarded.stuck_driver_call().is_none());
        },
    );
}

#[test]
fn a_process_larger_than_its_device_is_refused_when_the_total_came_from_v1() {
    in_scenario(
        "a_process_larger_than_its_device_is_refused_when_the_total_came_from_v1",
        "pre_r510_oversized_process",
        |probe, declared| {
            let want = device(&declared, 0);
            let info = probe.device_info(0).unwrap();
            assert_eq!(info.total_bytes, Some(u64_at(&want["memory"], "total")));
            let listing = probe.gpu_process_listing(0).unwrap();
            let huge = listing.rows.iter().find(|r| r.pid == 4_090_001).unwrap();
            assert_eq!(huge.used_bytes, None, "100 GB on a 32 GB card is not shown");
            let normal = listing.rows.iter().find(|r| r.pid == 4_090_002).unwrap();
            assert_eq!(normal.used_bytes, Some(3_053_453_312));
            let notes = listing.notes().join("\n");
            assert!(
                notes.contains("pid 4090001") && notes.contains("implausible"),
                "{notes}"
            );
        },
    );
}

#[test]
fn processes_missing_from_proc_get_nvmls_name_and_a_note_that_says_how_to_see_them() {
    test_support::with_nvml_double(
        "processes_missing_from_proc_get_nvmls_name_and_a_note_that_says_how_to_see_them",
        "one_gpu",
        |lib, _| {
            // A procfs with one of the two processes (4012001); 4011345 is another
            // container's: absent here, named by NVML (`./gpu_burn` in the scenario).
            let proc = tempfile::tempdir().unwrap();
            let dir = proc.path().join("4012001");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("comm"), "from-proc\n").unwrap();
            let probe = Probe::builder()
                .nvml_lib(lib)
                .use_nvidia_smi(false)
                .proc_root(proc.path())
                .build();
            let listing = probe.gpu_process_listing(0).unwrap();
            let names: Vec<(u32, Option<&str>)> = listing
                .rows
                .iter()
                .map(|r| (r.pid, r.name.as_deref()))
                .collect();
            assert_eq!(
                names,
                [
                    (4_011_345, Some("./gpu_burn")),
                    (4_012_001, Some("from-proc"))
                ]
            );
            assert_eq!(listing.absent_pids, vec![4_011_345]);
            assert!(listing.refused_pids.is_empty());
            let notes = listing.findings();
            let note = notes
                .iter()
                .find(|n| n.kind == hypomnesis::ListingNoteKind::NotInProcfs)
                .unwrap_or_else(|| panic!("{notes:?}"));
            assert_eq!(note.pids, vec![4_011_345]);
            assert!(
                note.message.contains("not in this /proc")
                    && note.message.contains("--pid=host")
                    && note.message.contains("HYPOMNESIS_PROC_ROOT"),
                "{}",
                note.message
            );
            assert!(
                !notes.iter().any(|n| n.message.contains("re-run as root")),
                "re-running as root would not help: {notes:?}"
            );
        },
    );
}

/// Checks that every row's memory is the larger of the figures the scenario declares for its
/// pid in the compute and graphics lists: both lists report the process's whole allocation
/// on the device, so the merge takes the maximum (not the first, the last, the smaller or the
/// sum). The scenario must have a pid in both lists with two different figures.
fn assert_merged_rows_take_the_larger_figure(probe: &Probe, declared: &Value) {
    let want = device(declared, 0);
    let figures = |list: &str| -> Vec<(u64, u64)> {
        want[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (u64_at(p, "pid"), u64_at(p, "used_gpu_memory")))
            .collect()
    };
    let (compute, graphics) = (figures("compute_processes"), figures("graphics_processes"));
    let differing = compute
        .iter()
        .filter(|(pid, used)| graphics.iter().any(|(p, u)| p == pid && u != used))
        .count();
    assert!(
        differing > 0,
        "the scenario needs a pid in both lists with different figures"
    );
    let rows = probe.processes(0).unwrap();
    assert_eq!(
        rows.iter().map(|r| u64::from(r.pid)).collect::<Vec<_>>(),
        unique_pids(want)
    );
    for row in &rows {
        let pid = u64::from(row.pid);
        let expected = compute
            .iter()
            .chain(&graphics)
            .filter(|(p, _)| *p == pid)
            .map(|(_, used)| *used)
            .max();
        assert_eq!(row.used_bytes, expected, "pid {pid}: {row:?}");
    }
}

#[test]
fn a_pid_in_both_lists_gets_the_larger_compute_figure() {
    // one_gpu: python3 (4012001) holds 3.5 GiB by the compute list, 512 MiB by the graphics one.
    in_scenario(
        "a_pid_in_both_lists_gets_the_larger_compute_figure",
        "one_gpu",
        |probe, declared| assert_merged_rows_take_the_larger_figure(&probe, &declared),
    );
}

#[test]
fn a_pid_in_both_lists_gets_the_larger_graphics_figure() {
    // The same pid with the larger figure in the graphics list, which is merged second.
    let path = test_support::nvml_scenario_variant("one_gpu", "graphics_figure_larger", |s| {
        s["description"] =
            serde_json::json!("one_gpu whose shared pid's graphics figure is larger");
        s["devices"][0]["graphics_processes"][0]["used_gpu_memory"] =
            serde_json::json!(6_442_450_944_u64);
    });
    test_support::with_nvml_double_scenario(
        "a_pid_in_both_lists_gets_the_larger_graphics_figure",
        &path,
        |lib, path| {
            let probe = Probe::builder().nvml_lib(lib).use_nvidia_smi(false).build();
            let declared: Value =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            assert_merged_rows_take_the_larger_figure(&probe, &declared);
        },
    );
}

#[test]
fn memory_v2_not_supported_tries_v1_before_calling_the_device_unified() {
    in_scenario(
        "memory_v2_not_supported_tries_v1_before_calling_the_device_unified",
        "memory_v2_not_supported",
        |probe, declared| {
            let memory = &device(&declared, 0)["memory"];
            let info = probe.device_info(0).unwrap();
            assert!(!info.unified_memory, "v1 answered: a discrete device");
            assert_eq!(info.total_bytes, Some(u64_at(memory, "total")));
            assert_eq!(info.free_bytes, Some(u64_at(memory, "free")));
            assert_eq!(info.reserved_bytes, None);
            let reason = info.unavailable_reason(DeviceField::ReservedBytes).unwrap();
            assert!(reason.contains("NOT_SUPPORTED"), "{reason}");
        },
    );
}

#[test]
fn device_parts_adding_up_past_the_total_are_refused() {
    in_scenario(
        "device_parts_adding_up_past_the_total_are_refused",
        "parts_exceed_total",
        |probe, _| {
            let info = probe.device_info(0).unwrap();
            assert_eq!(info.free_bytes, None);
            assert_eq!(info.used_bytes, None);
            assert_eq!(info.reserved_bytes, None);
            let reason = info.unavailable_reason(DeviceField::FreeBytes).unwrap();
            assert!(reason.contains("impossible"), "{reason}");
            assert!(!info.unified_memory);
        },
    );
}

#[test]
fn mig_devices_are_listed_with_their_gpu_instance_memory_and_budget_the_roomiest() {
    in_scenario(
        "mig_devices_are_listed_with_their_gpu_instance_memory_and_budget_the_roomiest",
        "mig",
        |probe, declared| {
            let want = device(&declared, 0)["mig_devices"]
                .as_array()
                .unwrap()
                .clone();
            let info = probe.device_info(0).unwrap();
            assert_eq!(info.mig_instances.len(), want.len());
            for (got, want) in info.mig_instances.iter().zip(&want) {
                assert_eq!(
                    got.gpu_instance_id.map(u64::from),
                    want["gpu_instance_id"].as_u64()
                );
                assert_eq!(
                    got.compute_instance_id.map(u64::from),
                    want["compute_instance_id"].as_u64()
                );
                assert_eq!(got.uuid.as_deref(), want["uuid"].as_str());
                assert_eq!(got.total_bytes, Some(u64_at(&want["memory"], "total")));
                assert_eq!(got.free_bytes, Some(u64_at(&want["memory"], "free")));
            }
            let roomiest = info.roomiest_mig_instance().unwrap();
            assert_eq!(roomiest.gpu_instance_id, Some(2));
            assert_eq!(info.budget_bytes, Some(11 << 30));
            assert_eq!(
                info.budget_basis,
                Some(hypomnesis::BudgetBasis::MigInstanceFree)
            );
        },
    );
}

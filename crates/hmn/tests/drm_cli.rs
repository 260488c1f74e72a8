//! `hmn` and `hmn ps` list AMD / Intel / other DRM GPUs and their processes, read from a
//! fixture `/sys` and `/proc` (`fixtures/drm/tree.rs`) named by `HYPOMNESIS_SYS_ROOT` and
//! `HYPOMNESIS_PROC_ROOT`, with NVIDIA's backends pointed at nothing.
#![cfg(target_os = "linux")]

#[path = "../../../fixtures/drm/tree.rs"]
mod tree;

use std::process::{Command, Output};

use serde_json::Value;

fn hmn(tree: &tree::DrmTree, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hmn"))
        .args(args)
        .env("HYPOMNESIS_SYS_ROOT", tree.sys())
        .env("HYPOMNESIS_PROC_ROOT", tree.proc())
        .env("HYPOMNESIS_NVML_LIB", "/nonexistent")
        .env("HYPOMNESIS_NVIDIA_SMI", "/nonexistent")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_summary_lists_every_drm_gpu_in_pci_order() {
    let tree = tree::standard();
    let output = hmn(&tree, &[]);
    let (stdout, stderr) = text(&output);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let gpu_lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("GPU ")).collect();
    assert_eq!(gpu_lines.len(), 6, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(gpu_lines[0].starts_with("GPU 0 [Intel"), "{}", gpu_lines[0]);
    // 23 605 542 912 free / 25 753 026 560 total bytes, in whole MiB.
    assert_eq!(
        gpu_lines[1],
        "GPU 1 [AMD Radeon RX 7900 XTX]: free 22512 MiB / 24560 MiB"
    );
    assert!(gpu_lines[2].contains("/ 12288 MiB"), "{}", gpu_lines[2]);
    assert!(
        gpu_lines[3].contains("free 212 MiB / 512 MiB"),
        "{}",
        gpu_lines[3]
    );
    assert!(gpu_lines[3].contains("unified memory"), "{}", gpu_lines[3]);
    assert!(gpu_lines[4].starts_with("GPU 4 [panfrost GPU fb000000.gpu]"));
    // The card bound to `nvidia`, with NVML and nvidia-smi unusable: listed last, memory
    // unknown, and why.
    assert!(
        gpu_lines[5]
            .starts_with("GPU 5 [NVIDIA GPU 0x2204]: free n/a / n/a (bound to the nvidia driver")
            && gpu_lines[5].contains("/nonexistent could not be loaded"),
        "{}",
        gpu_lines[5]
    );
}

#[test]
fn the_json_summary_carries_gtt_and_the_drm_source() {
    let tree = tree::standard();
    let output = hmn(&tree, &["--json"]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "stderr:\n{stderr}");
    let json: Value = serde_json::from_str(&stdout).unwrap();
    let devices = json
        .as_array()
        .or_else(|| json["devices"].as_array())
        .unwrap_or_else(|| panic!("no device array in {json}"));
    let apu = devices
        .iter()
        .find(|d| d["pci_bus_id"] == "00000000:C4:00.0")
        .unwrap_or_else(|| panic!("no APU in {json}"));
    assert_eq!(apu["source"], "drm");
    assert_eq!(apu["vendor"], "amd");
    assert_eq!(apu["system_total_bytes"], 64_424_509_440_u64);
    assert_eq!(apu["system_used_bytes"], 25_769_803_776_u64);
    assert_eq!(apu["unified_memory"], true);
}

#[test]
fn ps_lists_drm_processes_with_their_devices() {
    let tree = tree::standard();
    let output = hmn(&tree, &["ps", "--sort", "pid"]);
    let (stdout, stderr) = text(&output);
    // The nvidia-bound card (device 5) cannot be listed without NVIDIA's tools: said, and not
    // a success.
    assert_eq!(
        output.status.code(),
        Some(2),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("ps failed to query device 5") && stderr.contains("nvidia driver"),
        "{stderr}"
    );
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let listed: Vec<(&str, &str)> = rows.iter().map(|r| (r[0], r[2])).collect();
    assert_eq!(
        listed,
        vec![
            ("100", "Xorg"),
            ("200", "llama-server"),
            ("250", "helper"),
            ("300", "game"),
            ("400", "oldgame"),
            ("500", "xe-app"),
            ("600", "glmark2"),
        ],
        "stdout:\n{stdout}"
    );
    let game = stdout.lines().find(|l| l.contains(" game ")).unwrap();
    // 2068 KiB + 100 MiB = 106 975 232 bytes of VRAM.
    assert!(game.contains("GPU 1"), "{game}");
    assert!(stderr.contains("7 GPU processes found"), "{stderr}");
    // 200 and 250 share the APU's client: its memory is in both rows and the total once.
    assert!(
        stderr.contains("1 GPU client shared between processes: every holder is listed"),
        "{stderr}"
    );
}

#[test]
fn ps_json_has_vram_gtt_and_shared_bytes_per_process() {
    let tree = tree::standard();
    let output = hmn(&tree, &["ps", "--json"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "stderr:\n{stderr}");
    let ps: Value = serde_json::from_str(&stdout).unwrap();
    let rows = ps["processes"].as_array().unwrap();
    let by_pid = |pid: u64| {
        rows.iter()
            .find(|r| r["pid"] == pid)
            .unwrap_or_else(|| panic!("no pid {pid} in {stdout}"))
    };
    let llama = by_pid(200);
    assert_eq!(llama["device_index"], 3);
    assert_eq!(llama["used_bytes"], 5348 * 1024);
    assert_eq!(llama["system_bytes"], 25_258_000_u64 * 1024);
    assert_eq!(llama["shared_bytes"], 1024 * 1024);
    assert_eq!(llama["source"], "drm");
    let game = by_pid(300);
    assert_eq!(game["used_bytes"], 2068 * 1024 + 100 * 1024 * 1024);
    assert_eq!(game["system_bytes"], 8192 * 1024 + 2 * 1024 * 1024);
    let xorg = by_pid(100);
    assert_eq!(xorg["used_bytes"], Value::Null);
    assert_eq!(xorg["system_bytes"], 6044 * 1024);
    // 250 holds llama-server's passed client: listed with it, marked as sharing it with 200,
    // and the client counted for 200.
    let helper = by_pid(250);
    assert_eq!(helper["used_bytes"], 5348 * 1024);
    assert_eq!(helper["shared_with"], serde_json::json!([200]));
    assert_eq!(llama["shared_with"], serde_json::json!([250]));
    let client = &helper["shared_clients"][0];
    assert_eq!(
        client.as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "client_id",
            "counted_for",
            "holders",
            "system_bytes",
            "used_bytes"
        ]
    );
    assert_eq!(client["holders"], serde_json::json!([200, 250]));
    assert_eq!(client["counted_for"], 200);
    assert_eq!(client["system_bytes"], 25_258_000_u64 * 1024);
    // What the text puts on stderr is in the JSON: the unreadable process 800, the shared
    // client, the malformed lines.
    let kinds: Vec<&str> = ps["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    for kind in ["unreadable", "shared_clients", "malformed_lines"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let unreadable = ps["notes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == "unreadable")
        .unwrap();
    assert_eq!(unreadable["pids"], serde_json::json!([800]));
    // The nvidia-bound card with NVML and nvidia-smi unusable: a failed device, with why.
    let failed = ps["failed_devices"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["device_index"], 5);
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("bound to the nvidia driver"),
        "{failed:?}"
    );
}

#[test]
fn ps_total_counts_a_shared_client_once_and_a_child_alone_shows_its_memory() {
    let tree = tree::standard();
    // Device 3 (the APU): 200 and 250 hold one client of 5348 KiB VRAM + 25 258 000 KiB GTT.
    let output = hmn(&tree, &["ps", "--device", "3"]);
    let (_, stderr) = text(&output);
    assert!(
        stderr.contains(
            "2 GPU processes found matching device=3 (5 MiB total, 24.1 GiB in system RAM)"
        ),
        "{stderr}"
    );
    // The helper alone (`--pid`): its row, with the client's memory, not "0 processes".
    let output = hmn(&tree, &["ps", "--pid", "250"]);
    let (stdout, stderr) = text(&output);
    assert!(stdout.contains("helper"), "{stdout}");
    assert!(
        stderr
            .contains("1 GPU process found matching pid=250 (5 MiB total, 24.1 GiB in system RAM)"),
        "{stderr}"
    );
}

/// The standard tree's APU (GPU 3): a 512 MiB carve-out with 212 MiB free, and 60 GiB of GTT
/// of which llama-server holds 24 GiB. The GPU allocates from GTT, so 8 GiB fits.
#[test]
fn fits_on_an_apu_budgets_gtt_and_host_memory_not_the_carve_out() {
    let tree = tree::standard();
    let meminfo = |available_kib: u64| {
        format!(
            "MemTotal:       65536000 kB\nMemFree:         1000000 kB\nMemAvailable:   {available_kib} kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n"
        )
    };
    std::fs::write(tree.proc().join("meminfo"), meminfo(40 << 20)).unwrap();
    let output = hmn(&tree, &["fits", "8589934592", "--device", "3", "--json"]);
    let (stdout, stderr) = text(&output);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let verdict: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(verdict["fits"], true, "{verdict}");
    assert_eq!(verdict["budget_bytes"], 64_424_509_440_u64 - 25_769_803_776);
    assert_eq!(verdict["budget_source"], "gpu_system_limit");

    // Less host memory available than GTT room: the host binds, and the summary and its
    // JSON show the same budget.
    std::fs::write(tree.proc().join("meminfo"), meminfo(20 << 20)).unwrap();
    let output = hmn(&tree, &["fits", "8589934592", "--device", "3"]);
    let (_, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("20.0 GiB host memory available"),
        "{stderr}"
    );
    let output = hmn(&tree, &["--json"]);
    let json: Value = serde_json::from_str(&text(&output).0).unwrap();
    let apu = json
        .as_array()
        .or_else(|| json["devices"].as_array())
        .and_then(|d| d.iter().find(|d| d["index"] == 3))
        .cloned()
        .unwrap_or_else(|| panic!("no GPU 3 in {json}"));
    assert_eq!(apu["budget_bytes"], 20_u64 << 30);
    assert_eq!(apu["budget_basis"], "host_available");
}

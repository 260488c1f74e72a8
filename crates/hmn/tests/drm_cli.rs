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
    assert_eq!(gpu_lines.len(), 5, "stdout:\n{stdout}\nstderr:\n{stderr}");
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
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
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
    assert!(stderr.contains("6 GPU processes found"), "{stderr}");
}

#[test]
fn ps_json_has_vram_gtt_and_shared_bytes_per_process() {
    let tree = tree::standard();
    let output = hmn(&tree, &["ps", "--json"]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "stderr:\n{stderr}");
    let rows: Value = serde_json::from_str(&stdout).unwrap();
    let rows = rows.as_array().unwrap();
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
    assert!(
        rows.iter().all(|r| r["pid"] != 250),
        "a passed client counts once"
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

//! `hmn watch` over every GPU: each sample names its device, `--device N` narrows, a process
//! on another GPU or on none is never a measured 0, a GPU lost mid-watch is said, and names
//! and column words mean what they mean in `hmn ps`.
//!
//! NVIDIA through the NVML double (`fixtures/nvml/four_gpus.json`, `gpu_lost.json`); AMD /
//! Intel through the DRM fixture tree (`fixtures/drm/tree.rs`).
#![cfg(target_os = "linux")]

#[path = "../../../fixtures/drm/tree.rs"]
mod tree;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command};

use serde_json::Value;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn hmn() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hmn"));
    cmd.env_remove("HYPOMNESIS_PROC_ROOT")
        .env_remove("HYPOMNESIS_SYS_ROOT")
        .env("NO_COLOR", "1")
        .env("HYPOMNESIS_NVML_LIB", "/nonexistent/libnvidia-ml.so.1")
        .env("HYPOMNESIS_NVIDIA_SMI", "/nonexistent/nvidia-smi");
    cmd
}

/// `hmn` against the NVML double playing `fixtures/nvml/<scenario>.json`.
fn hmn_nvml(scenario: &str) -> Command {
    let path = test_support::nvml_scenario(scenario);
    let lib = test_support::nvml_double_for(&path).join("libnvidia-ml.so.1");
    let mut cmd = hmn();
    cmd.env("HYPOMNESIS_NVML_LIB", lib)
        .env("NVML_DOUBLE_SCENARIO", &path);
    cmd
}

/// `hmn` reading the DRM fixture tree, with NVIDIA's backends pointed at nothing.
fn hmn_drm(tree: &tree::DrmTree) -> Command {
    let mut cmd = hmn();
    cmd.env("HYPOMNESIS_SYS_ROOT", tree.sys())
        .env("HYPOMNESIS_PROC_ROOT", tree.proc());
    cmd
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command, args: &[&str]) -> Run {
    let output = cmd.args(args).output().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

fn records(r: &Run) -> Vec<Value> {
    assert_eq!(r.code, 0, "stderr:\n{}", r.stderr);
    r.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn samples(records: &[Value]) -> Vec<&Value> {
    records.iter().filter(|r| r["kind"] == "sample").collect()
}

/// (pid, device, used_bytes) of every sample.
fn seen(records: &[Value]) -> BTreeSet<(u64, Option<u64>, Option<u64>)> {
    samples(records)
        .into_iter()
        .map(|s| {
            (
                s["pid"].as_u64().unwrap(),
                s["device"].as_u64(),
                s["used_bytes"].as_u64(),
            )
        })
        .collect()
}

const SHORT: [&str; 4] = ["--interval", "100ms", "--duration", "250ms"];

/// A process that holds no GPU memory, killed when dropped.
struct Idle(Child);

impl Idle {
    fn start(program: &Path) -> Self {
        Self(Command::new(program).arg("30").spawn().unwrap())
    }

    fn pid(&self) -> String {
        self.0.id().to_string()
    }
}

impl Drop for Idle {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn watch_reads_every_gpu_by_default_and_each_sample_names_its_device() {
    let r = run(
        hmn_nvml("four_gpus").args(["watch", "--json", "--top", "5"]),
        &SHORT,
    );
    let records = records(&r);
    assert_eq!(records[0]["format_version"], 2);
    let devices: Vec<u64> = records[0]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["index"].as_u64().unwrap())
        .collect();
    assert_eq!(devices, [0, 1, 2, 3]);
    assert_eq!(
        seen(&records),
        BTreeSet::from([
            (4_030_001, Some(0), Some(40 * GIB)),
            (4_030_001, Some(1), Some(40 * GIB)),
            (4_030_002, Some(0), Some(8 * GIB)),
            (4_030_003, Some(2), Some(2 * GIB)),
        ])
    );
    assert!(
        samples(&records).iter().all(|s| s["presence"] == "listed"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains("every GPU: 0 [NVIDIA H100"),
        "{}",
        r.stderr
    );
}

#[test]
fn the_text_rows_say_which_gpu_each_figure_is_on() {
    let r = run(hmn_nvml("four_gpus").args(["watch", "4030001"]), &SHORT);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut lines = r.stdout.lines();
    let header = lines.next().unwrap();
    assert!(header.contains(" GPU  VRAM "), "{header}");
    let rows: Vec<&str> = lines.take(2).collect();
    for (row, gpu) in rows.iter().zip(["0", "1"]) {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[3], gpu, "{row}");
        assert_eq!(cells[4..6], ["40.0", "GiB"], "{row}");
    }
}

#[test]
fn device_narrows_the_watch_to_one_gpu() {
    let r = run(
        hmn_nvml("four_gpus").args(["watch", "--json", "--top", "5", "--device", "1"]),
        &SHORT,
    );
    let records = records(&r);
    assert_eq!(records[0]["devices"][0]["index"], 1);
    assert_eq!(records[0]["devices"].as_array().unwrap().len(), 1);
    assert_eq!(
        seen(&records),
        BTreeSet::from([(4_030_001, Some(1), Some(40 * GIB))])
    );
    assert!(
        r.stderr
            .contains("GPU 1 [NVIDIA H100 80GB HBM3] (--device)")
    );
}

#[test]
fn a_process_on_another_gpu_than_the_first_reads_its_memory_there_not_zero() {
    let r = run(
        hmn_nvml("four_gpus").args(["watch", "4030003", "--json"]),
        &SHORT,
    );
    let records = records(&r);
    assert_eq!(
        seen(&records),
        BTreeSet::from([(4_030_003, Some(2), Some(2 * GIB))])
    );
}

#[test]
fn with_device_a_process_elsewhere_reads_a_measured_zero_and_is_told_where_it_is() {
    let r = run(
        hmn_nvml("four_gpus").args(["watch", "4030003", "--json", "--device", "0"]),
        &SHORT,
    );
    let records = records(&r);
    let all = samples(&records);
    assert!(!all.is_empty());
    for s in all {
        assert_eq!(s["device"], 0);
        assert_eq!(s["presence"], "absent", "{s}");
        assert_eq!(s["used_bytes"], 0, "{s}");
    }
    assert!(
        r.stderr.contains(
            "pid=4030003 holds no memory on GPU 0 (its rows read 0 B there) but holds some on GPU 2"
        ),
        "{}",
        r.stderr
    );
}

#[test]
fn a_process_on_no_gpu_reads_unknown_never_zero() {
    let idle = Idle::start(Path::new("/bin/sleep"));
    let r = run(
        hmn_nvml("four_gpus").args(["watch", &idle.pid(), "--json"]),
        &SHORT,
    );
    let records = records(&r);
    let all = samples(&records);
    assert!(!all.is_empty());
    for s in &all {
        assert_eq!(s["presence"], "not_seen", "{s}");
        assert_eq!(s["device"], Value::Null, "{s}");
        assert_eq!(s["used_bytes"], Value::Null, "{s}");
        assert!(
            s["rss_bytes"].as_u64().unwrap() > 0,
            "its RAM is still read"
        );
    }
    let summary = records.last().unwrap();
    assert_eq!(summary["per_pid"][0]["device"], Value::Null);
    assert_eq!(summary["per_pid"][0]["peak_used_bytes"], Value::Null);
    assert!(
        r.stderr.contains("is on no GPU's process list"),
        "{}",
        r.stderr
    );

    let r = run(hmn_nvml("four_gpus").args(["watch", &idle.pid()]), &SHORT);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let row = r.stdout.lines().nth(1).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[3..6], ["-", "n/a", "n/a"], "{row}");
    assert!(row.ends_with("on no GPU's list"), "{row}");
}

#[test]
fn a_gpu_lost_mid_watch_is_said_once_and_its_samples_read_unknown_never_zero() {
    // GPU 1 of gpu_lost stops answering 1.5 s after init; 4015002 (vllm, 512 MiB) is on it.
    let r = run(
        hmn_nvml("gpu_lost").args(["watch", "4015002", "--json"]),
        &["--interval", "250ms", "--duration", "2500ms"],
    );
    let records = records(&r);
    let all = samples(&records);
    assert!(all.iter().all(|s| s["device"] == 1), "{}", r.stdout);
    let listed: Vec<_> = all.iter().filter(|s| s["presence"] == "listed").collect();
    let missing: Vec<_> = all.iter().filter(|s| s["presence"] == "missing").collect();
    assert!(!listed.is_empty(), "{}", r.stdout);
    assert!(!missing.is_empty(), "{}", r.stdout);
    assert_eq!(listed.len() + missing.len(), all.len(), "{}", r.stdout);
    assert!(listed.iter().all(|s| s["used_bytes"] == 512 * MIB));
    assert!(missing.iter().all(|s| s["used_bytes"].is_null()));
    assert_eq!(
        r.stderr.matches("sample of GPU 1 failed").count(),
        1,
        "said when it starts, not every interval:\n{}",
        r.stderr
    );
    assert!(r.stderr.contains("GPU is lost"), "{}", r.stderr);
    let summary = records.last().unwrap();
    assert_eq!(summary["kind"], "summary");
    let gpu1 = &summary["devices"][1];
    assert_eq!(gpu1["index"], 1);
    assert_eq!(
        gpu1["samples_missing"].as_u64().unwrap(),
        missing.len() as u64
    );
    assert!(gpu1["last_error"].as_str().unwrap().contains("GPU is lost"));
    assert_eq!(summary["per_pid"][0]["peak_used_bytes"], 512 * MIB);
    assert!(
        r.stderr.contains(&format!(
            "GPU 1: {} of {} samples missing",
            missing.len(),
            summary["samples"]
        )),
        "{}",
        r.stderr
    );
}

/// A GPU that fell off the bus before the watch begins cannot even be opened (its handle
/// answers GPU_IS_LOST), but the driver still counts it: it is watched, unnamed, and every
/// sample of it reads unknown with the driver's reason, said once.
#[test]
fn a_gpu_lost_before_the_watch_begins_is_still_watched_and_reads_unknown_never_zero() {
    let scenario = test_support::nvml_scenario_variant("gpu_lost", "gpu_lost_at_start", |s| {
        s["devices"][1]["errors"] = serde_json::json!({ "nvmlDeviceGetHandleByIndex_v2": 15 });
    });
    let lib = test_support::nvml_double_for(&scenario).join("libnvidia-ml.so.1");
    let mut cmd = hmn();
    cmd.env("HYPOMNESIS_NVML_LIB", lib)
        .env("NVML_DOUBLE_SCENARIO", &scenario);
    let r = run(
        cmd.args(["watch", "4015001", "--json"]),
        &["--interval", "100ms", "--duration", "350ms"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let records = records(&r);
    let devices = &records[0]["devices"];
    assert_eq!(devices.as_array().unwrap().len(), 2, "{}", r.stdout);
    assert_eq!(devices[1]["index"], 1);
    assert!(devices[1]["name"].is_null(), "{}", r.stdout);
    assert_eq!(
        r.stderr.matches("sample of GPU 1 failed").count(),
        1,
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("GPU is lost"), "{}", r.stderr);
    let summary = records.last().unwrap();
    assert_eq!(summary["devices"][1]["samples_read"], 0, "{}", r.stdout);
    assert!(summary["devices"][1]["samples_missing"].as_u64().unwrap() > 0);
    assert!(samples(&records).iter().all(|s| s["device"] == 0));
}

#[test]
fn watch_names_a_process_as_ps_does_not_by_its_cut_kernel_name() {
    let dir = tempfile::tempdir().unwrap();
    let long = dir.path().join("a-rather-long-program-name");
    std::fs::copy("/bin/sleep", &long).unwrap();
    let idle = Idle::start(&long);
    let r = run(hmn().args(["watch", &idle.pid(), "--json"]), &SHORT);
    let records = records(&r);
    assert_eq!(
        samples(&records)[0]["name"],
        "a-rather-long-program-name",
        "not comm's 15 bytes"
    );
}

#[test]
fn gtt_is_sys_in_watch_as_in_ps_and_shared_means_only_shared() {
    let tree = tree::standard();
    // llama-server (pid 200) on the APU (GPU 3): its buffers are in GTT.
    // (`--device 3`: the tree's card bound to nvidia cannot be listed without NVML, and
    // `ps` says so with exit 2.)
    let ps = run(
        &mut hmn_drm(&tree),
        &["ps", "--json", "--pid", "200", "--device", "3"],
    );
    assert_eq!(ps.code, 0, "{}", ps.stderr);
    let ps: Value = serde_json::from_str(&ps.stdout).unwrap();
    // `ps --json`: an array of rows, or an object whose `processes` are the rows.
    let rows = ps
        .as_array()
        .or_else(|| ps["processes"].as_array())
        .unwrap_or_else(|| panic!("no rows in {ps}"));
    let ps = &rows[0];
    let r = run(hmn_drm(&tree).args(["watch", "200", "--json"]), &SHORT);
    let records = records(&r);
    let sample = samples(&records)[0];
    assert_eq!(sample["device"], ps["device_index"]);
    for field in ["used_bytes", "system_bytes", "shared_bytes"] {
        assert_eq!(sample[field], ps[field], "{field}");
    }
    assert!(sample["system_bytes"].as_u64().unwrap() > GIB);

    let r = run(hmn_drm(&tree).args(["watch", "200"]), &SHORT);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let header = r.stdout.lines().next().unwrap();
    assert!(header.contains(" SYS "), "{header}");
    assert!(!header.contains("SHARED"), "{header}");
    assert!(r.stderr.contains("PEAK SYS"), "{}", r.stderr);
    assert!(!r.stderr.contains("SHARED"), "{}", r.stderr);
}

#[test]
fn a_process_whose_gpu_use_cannot_be_read_reads_unknown_never_zero() {
    // pid 800 of the standard tree holds a DRM fd whose fdinfo cannot be read.
    let tree = tree::standard();
    for device in [None, Some("1")] {
        let mut cmd = hmn_drm(&tree);
        cmd.args(["watch", "800", "--json"]);
        if let Some(d) = device {
            cmd.args(["--device", d]);
        }
        let records = records(&run(&mut cmd, &SHORT));
        for s in samples(&records) {
            assert_eq!(s["presence"], "unreadable", "{s}");
            assert_eq!(s["used_bytes"], Value::Null, "{s}");
            assert_eq!(s["system_bytes"], Value::Null, "{s}");
            assert_eq!(s["device"].as_u64(), device.map(|d| d.parse().unwrap()));
        }
    }
}

#[test]
fn a_child_sharing_its_parents_drm_client_shows_the_shared_memory_marked_shared_never_zero() {
    // In the standard tree, helper (pid 250) holds the APU client llama-server (pid 200)
    // opened: the same drm-client-id through an inherited fd.
    let tree = tree::standard();
    let parent = records(&run(
        hmn_drm(&tree).args(["watch", "200", "--json"]),
        &SHORT,
    ));
    let parent = samples(&parent)[0].clone();
    for device in [None, Some("3")] {
        let mut cmd = hmn_drm(&tree);
        cmd.args(["watch", "250", "--json"]);
        if let Some(d) = device {
            cmd.args(["--device", d]);
        }
        let records = records(&run(&mut cmd, &SHORT));
        for s in samples(&records) {
            assert_eq!(s["presence"], "listed", "{s}");
            assert_eq!(s["device"], 3, "{s}");
            assert_eq!(s["shared_with"], serde_json::json!([200]), "{s}");
            assert_eq!(s["system_bytes"], parent["system_bytes"], "{s}");
            assert!(s["system_bytes"].as_u64().unwrap() > GIB, "{s}");
        }
    }
    assert_eq!(parent["shared_with"], serde_json::json!([250]));
    let r = run(hmn_drm(&tree).args(["watch", "250"]), &SHORT);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let row = r.stdout.lines().nth(1).unwrap();
    assert!(row.contains(" 24.1 GiB "), "{row}");
    assert!(
        row.contains("GPU client shared with pid 200 (its memory is in both rows)"),
        "{row}"
    );
}

/// With NVML unusable, `nvidia-smi` answers for every GPU. `watch` reads one frame per
/// interval, so on eight GPUs each query runs once per interval (plus the start's few), not
/// once or twice per GPU per interval as when each device's list was read on its own.
#[cfg(unix)]
#[test]
fn watch_on_eight_gpus_runs_each_nvidia_smi_query_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = dir.path().join("eight_h100");
    std::fs::create_dir(&fixture).unwrap();
    std::os::unix::fs::symlink(
        test_support::fixtures_dir().join("nvidia-smi/bin/nvidia-smi"),
        fixture.join("nvidia-smi"),
    )
    .unwrap();
    std::fs::write(fixture.join("runs"), "").unwrap();
    std::fs::create_dir(dir.path().join("sys")).unwrap();
    let mut cmd = hmn();
    cmd.env("HYPOMNESIS_NVIDIA_SMI", fixture.join("nvidia-smi"))
        .env("HYPOMNESIS_SYS_ROOT", dir.path().join("sys"));
    let r = run(
        cmd.args(["watch", "--top", "2", "--json"]),
        &["--interval", "200ms", "--duration", "1s"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let records = records(&r);
    assert_eq!(records[0]["devices"].as_array().unwrap().len(), 8);
    let intervals = records.last().unwrap()["samples"].as_u64().unwrap();
    assert!(intervals >= 2, "{}", r.stdout);
    let runs = std::fs::read_to_string(fixture.join("runs")).unwrap();
    let count = |query: &str| runs.lines().filter(|l| *l == query).count() as u64;
    // Each interval's frame: one `gpu` and one `apps` query. The start adds the device count
    // (one `gpu`) and the first frame is the first interval's.
    assert!(
        count("apps") <= intervals,
        "{} apps queries for {intervals} intervals",
        count("apps")
    );
    assert!(
        count("gpu") <= intervals + 2,
        "{} gpu queries for {intervals} intervals",
        count("gpu")
    );
}

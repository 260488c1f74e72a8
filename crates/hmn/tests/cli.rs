//! `hmn` end to end against the NVML double and a fixture `/proc`: every output format is
//! snapshot-tested (`insta`), every exit code is checked, and the JSON fields are checked
//! against `docs/json.md`.
#![cfg(target_os = "linux")]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use std::process::Command;

/// A fixture `/proc` with names for some of a scenario's pids, and a fixed `meminfo`.
struct FakeProc {
    dir: tempfile::TempDir,
}

impl FakeProc {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("meminfo"),
            "MemTotal:       65536000 kB\nMemFree:        1000000 kB\nMemAvailable:   32768000 kB\nSwapTotal:      0 kB\nSwapFree:       0 kB\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("self")).unwrap();
        std::fs::write(dir.path().join("self/cgroup"), "0::/\n").unwrap();
        std::fs::write(dir.path().join("self/statm"), "1000 500 100 10 0 400 0\n").unwrap();
        Self { dir }
    }

    fn process(&self, pid: u64, comm: &str, cmdline: &[&str], uid: u32) -> &Self {
        let p = self.dir.path().join(pid.to_string());
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("comm"), format!("{comm}\n")).unwrap();
        std::fs::write(p.join("cmdline"), cmdline.join("\0") + "\0").unwrap();
        std::fs::write(
            p.join("status"),
            format!("Name:\t{comm}\nTgid:\t{pid}\nPid:\t{pid}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"),
        )
        .unwrap();
        self
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn scenario(name: &str) -> (PathBuf, Value) {
    let path = test_support::nvml_scenario(name);
    let declared = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    (path, declared)
}

fn pids(declared: &Value, device: usize) -> Vec<u64> {
    let mut pids: Vec<u64> = ["compute_processes", "graphics_processes"]
        .iter()
        .flat_map(|l| {
            declared["devices"][device][*l]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|p| p["pid"].as_u64())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// `hmn` on scenario `name`, with a fixture `/proc` that names the scenario's first pids
/// (one with a CJK name) and leaves the rest unreadable.
fn hmn(name: &str) -> (Command, FakeProc) {
    let (path, declared) = scenario(name);
    let lib = test_support::nvml_double_for(&path).join("libnvidia-ml.so.1");
    let fake = FakeProc::new();
    let all = pids(&declared, 0);
    let names: [(&str, &[&str], u32); 2] = [
        ("训练脚本", &["python3", "train.py", "--model", "llama"], 0),
        (
            "llama-server-long-name",
            &["/opt/llama/llama-server-long-name", "-m", "model.gguf"],
            4242,
        ),
    ];
    for (pid, (comm, cmdline, uid)) in all.iter().zip(names) {
        // comm is cut at 15 bytes by the kernel; the full name comes from cmdline.
        let cut: String = comm
            .chars()
            .scan(0, |n, c| {
                *n += c.len_utf8();
                (*n <= 15).then_some(c)
            })
            .collect();
        fake.process(*pid, &cut, cmdline, uid);
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hmn"));
    cmd.env("HYPOMNESIS_NVML_LIB", lib)
        .env("NVML_DOUBLE_SCENARIO", &path)
        .env("HYPOMNESIS_NVIDIA_SMI", "/nonexistent/nvidia-smi")
        .env("HYPOMNESIS_PROC_ROOT", fake.path())
        .env("HYPOMNESIS_SYS_ROOT", fake.path().join("sys"))
        .env_remove("NO_COLOR");
    (cmd, fake)
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(name: &str, args: &[&str]) -> Run {
    let (mut cmd, _fake) = hmn(name);
    let output = cmd.args(args).output().unwrap();
    Run {
        code: output.status.code().unwrap(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

fn snapshot_of(run: &Run) -> String {
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        run.code, run.stdout, run.stderr
    )
}

macro_rules! snap {
    ($name:literal, $scenario:literal, $args:expr) => {{
        let r = run($scenario, $args);
        // The fixture /proc and /sys live in a fresh temporary directory per run.
        insta::with_settings!({filters => vec![(r"/tmp/\.tmp[A-Za-z0-9]+", "[FIXTURE]")]}, {
            insta::assert_snapshot!($name, snapshot_of(&r));
        });
        r
    }};
}

#[test]
fn summary_snapshots() {
    snap!("summary_no_gpus", "no_gpus", &[]);
    snap!("summary_one_gpu", "one_gpu", &[]);
    snap!("summary_four_gpus", "four_gpus", &[]);
    snap!("summary_pre_r510", "pre_r510", &[]);
    snap!("summary_unified", "unified_memory", &[]);
    snap!("summary_used_gt_total", "used_gt_total", &[]);
    snap!("summary_mig", "mig", &[]);
    snap!("summary_device_1", "four_gpus", &["--device", "1"]);
    let r = snap!("summary_driver_not_loaded", "init_driver_not_loaded", &[]);
    assert_eq!(r.code, 2);
    let r = snap!("summary_bad_device", "one_gpu", &["--device", "7"]);
    assert_eq!(r.code, 2);
}

#[test]
fn summary_all_snapshots() {
    // Every figure the double declares, the H100's missing fan and the L4's missing power
    // limit as n/a.
    snap!("summary_all_telemetry", "telemetry", &["-a"]);
    // A driver that exposes no telemetry: n/a everywhere, never 0.
    snap!("summary_all_one_gpu", "one_gpu", &["--all"]);
    snap!("summary_json_all_telemetry", "telemetry", &["--json", "-a"]);
}

#[test]
fn summary_json_snapshots() {
    snap!("summary_json_one_gpu", "one_gpu", &["--json"]);
    snap!("summary_json_no_gpus", "no_gpus", &["--json"]);
    snap!("summary_json_unified", "unified_memory", &["--json"]);
    let r = snap!(
        "summary_json_driver_not_loaded",
        "init_driver_not_loaded",
        &["--json"]
    );
    assert_eq!(r.code, 2);
    // No GPU source works, but the host was measured: the JSON says so, as the text does.
    let document: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(document["devices"], serde_json::json!([]));
    assert_eq!(document["host"]["total_bytes"], 67_108_864_000_u64);
}

#[test]
fn ps_snapshots() {
    snap!("ps_one_gpu", "one_gpu", &["ps"]);
    snap!("ps_one_gpu_full", "one_gpu", &["ps", "--full"]);
    snap!("ps_four_gpus", "four_gpus", &["ps"]);
    snap!(
        "ps_four_gpus_device_2",
        "four_gpus",
        &["ps", "--device", "2", "--sort", "pid"]
    );
    snap!("ps_sentinel", "sentinel", &["ps"]);
    snap!("ps_mig_json", "mig", &["ps", "--json"]);
    snap!("ps_mig", "mig", &["ps"]);
    snap!("ps_one_gpu_json", "one_gpu", &["ps", "--json"]);
    snap!(
        "ps_filter",
        "one_gpu",
        &["ps", "--filter", "LLAMA", "--min", "1MiB"]
    );
    let r = snap!("ps_no_permission", "no_permission", &["ps"]);
    assert_eq!(
        r.code, 2,
        "device 1 was listed; device 0 is reported as skipped, which is not a success"
    );
    assert!(
        r.stderr.contains("failed to query device 0"),
        "{}",
        r.stderr
    );
    let r = snap!(
        "ps_no_permission_device_0",
        "no_permission",
        &["ps", "--device", "0"]
    );
    assert_eq!(r.code, 2, "the only device asked for could not be listed");
    let r = run("no_permission", &["ps", "--exit-status"]);
    assert_eq!(r.code, 2, "--exit-status: a device was skipped");
    let r = snap!("ps_driver_not_loaded", "init_driver_not_loaded", &["ps"]);
    assert_eq!(r.code, 2);
}

/// `ps` reads each listed process's resident memory and cgroup from the OS: an `RSS` column
/// in the table (only when some row has a figure, as the fixtures without `VmRSS` show) and
/// `rss_bytes` / `cgroup` in JSON.
#[test]
fn ps_shows_each_processs_resident_memory_and_cgroup() {
    let ps = |args: &[&str]| {
        let (mut cmd, fake) = hmn("one_gpu");
        let pid = pids(&scenario("one_gpu").1, 0)[0];
        let dir = fake.path().join(pid.to_string());
        let status = std::fs::read_to_string(dir.join("status")).unwrap();
        std::fs::write(dir.join("status"), status + "VmRSS:\t2097152 kB\n").unwrap();
        std::fs::write(dir.join("cgroup"), "0::/system.slice/docker-abc.scope\n").unwrap();
        let output = cmd.args(args).output().unwrap();
        (pid, String::from_utf8(output.stdout).unwrap())
    };
    let (pid, text) = ps(&["ps"]);
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["PID", "USER", "NAME", "VRAM", "RSS", "DEVICE", "SPILL"],
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with(&pid.to_string()))
        .unwrap();
    assert!(row.contains("2.0 GiB  GPU 0"), "{text}");
    let other = text.lines().nth(2).unwrap();
    assert!(
        other.contains("n/a  GPU 0"),
        "unknown RSS is n/a, never 0: {text}"
    );
    let (_, json) = ps(&["ps", "--json"]);
    let json: Value = serde_json::from_str(&json).unwrap();
    let rows = json["processes"].as_array().unwrap();
    let row = rows.iter().find(|r| r["pid"] == pid).unwrap();
    assert_eq!(row["rss_bytes"], 2_147_483_648_u64);
    assert_eq!(row["cgroup"], "/system.slice/docker-abc.scope");
    let other = rows.iter().find(|r| r["pid"] != pid).unwrap();
    assert_eq!(other["rss_bytes"], Value::Null, "unknown is null, never 0");
}

#[test]
fn ps_shows_per_process_gpu_utilization() {
    let r = snap!("ps_telemetry", "telemetry", &["ps"]);
    assert!(r.stdout.contains("GPU%"), "{}", r.stdout);
    let ps: Value = serde_json::from_str(&run("telemetry", &["ps", "--json"]).stdout).unwrap();
    let rows = &ps["processes"];
    let util: Vec<&Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["utilization_percent"])
        .collect();
    assert_eq!(util.len(), 2);
    assert!(util.contains(&&serde_json::json!(85.0)), "{rows}");
    assert!(util.contains(&&serde_json::json!(12.0)), "{rows}");
    // No samples at all: the column is left out.
    assert!(!run("one_gpu", &["ps"]).stdout.contains("GPU%"));
}

#[test]
fn ps_exit_status() {
    assert_eq!(run("one_gpu", &["ps", "--exit-status"]).code, 0);
    let none = run("one_gpu", &["ps", "--exit-status", "--pid", "1"]);
    assert_eq!(none.code, 1, "{}", none.stderr);
    assert_eq!(
        run("no_gpus", &["ps", "--exit-status"]).code,
        2,
        "no device queried"
    );
    assert_eq!(
        run("one_gpu", &["ps", "--pid", "1"]).code,
        0,
        "without --exit-status"
    );
    let bad = run("one_gpu", &["ps", "--device", "9"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}

/// A `--device` the machine does not have is the same fact in every view: exit 2 and
/// "device index 7 out of range (have 1 devices)".
#[test]
fn a_device_beyond_the_machine_is_out_of_range_in_every_view() {
    for args in [
        &["--device", "7"][..],
        &["ps", "--device", "7"],
        &["fits", "1G", "--device", "7"],
    ] {
        let r = run("one_gpu", args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr
                .contains("device index 7 out of range (have 1 devices)"),
            "{args:?}: {}",
            r.stderr
        );
    }
}

#[test]
fn fits_snapshots_and_exit_codes() {
    let yes = snap!("fits_yes", "one_gpu", &["fits", "1GiB"]);
    assert_eq!(yes.code, 0);
    let no = snap!("fits_no", "one_gpu", &["fits", "900GiB"]);
    assert_eq!(no.code, 1);
    let json = snap!("fits_json", "one_gpu", &["fits", "12 GiB", "--json"]);
    assert_eq!(json.code, 0);
    let cannot = snap!(
        "fits_driver_not_loaded",
        "init_driver_not_loaded",
        &["fits", "1G"]
    );
    assert_eq!(cannot.code, 2);
    let bad = run("one_gpu", &["fits", "12 parsecs"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("accepted forms"), "{}", bad.stderr);
    let unified = run("unified_memory", &["fits", "1GiB"]);
    assert_eq!(unified.code, 0, "budget is host memory: {}", unified.stderr);
    assert!(
        unified.stderr.contains("unified memory"),
        "{}",
        unified.stderr
    );
}

/// An R470 driver (no v2 memory call) on a 32 GB V100 reports a 100 GB process: `ps` shows
/// it without a figure and says why, instead of 97.7 GiB.
#[test]
fn ps_refuses_a_process_larger_than_its_device_on_an_old_driver() {
    let text = run("pre_r510_oversized_process", &["ps"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(!text.stdout.contains("97.7 GiB"), "{}", text.stdout);
    assert!(
        text.stderr.contains("pid 4090001") && text.stderr.contains("implausible"),
        "{}",
        text.stderr
    );
    assert!(
        text.stderr.contains("covering 1 of 2 processes"),
        "{}",
        text.stderr
    );
    let json = run("pre_r510_oversized_process", &["ps", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let huge = rows["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["pid"] == 4_090_001)
        .unwrap();
    assert!(huge["used_bytes"].is_null(), "{huge}");
    let note = rows["notes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == "implausible_figure")
        .unwrap_or_else(|| panic!("the JSON carries the reason too, by kind: {rows}"));
    assert_eq!(note["pids"], serde_json::json!([4_090_001]), "{note}");
    assert!(
        note["message"].as_str().unwrap().contains("implausible"),
        "{note}"
    );
}

/// The MIG scenario's H100 reports 59.7 GiB free as a whole, but its GPU instances have
/// 10.5 GiB (instance 1) and 11 GiB (instance 2) free: an allocation cannot cross instances.
#[test]
fn fits_on_a_mig_gpu_answers_per_gpu_instance_and_names_it() {
    let exact = run("mig", &["fits", "11GiB", "--json"]);
    assert_eq!(
        exact.code, 0,
        "exactly an instance's free memory fits: {}",
        exact.stderr
    );
    let verdict: serde_json::Value = serde_json::from_str(&exact.stdout).unwrap();
    assert_eq!(verdict["gpu_instance_id"], 2, "{verdict}");
    assert_eq!(verdict["budget_bytes"], 11_u64 << 30);
    assert_eq!(verdict["budget_source"], "mig_instance_free");
    assert_eq!(verdict["headroom_bytes"], 0);
    assert!(
        exact.stderr.contains("MIG GPU instance 2"),
        "{}",
        exact.stderr
    );
    let too_big = run("mig", &["fits", "12GiB"]);
    assert_eq!(
        too_big.code, 1,
        "no instance has 12 GiB, whatever the whole device has free: {}",
        too_big.stderr
    );
    assert!(
        too_big.stderr.contains("MIG GPU instance 2"),
        "{}",
        too_big.stderr
    );
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    assert_eq!(run("one_gpu", &["--bogus"]).code, 2);
    assert_eq!(run("one_gpu", &["ps", "--sort", "size"]).code, 2);
    let help = run("one_gpu", &["--help"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("Exit codes:"), "{}", help.stdout);
    assert!(
        help.stdout.contains("Windows"),
        "per-platform limitations in --help"
    );
    let version = run("one_gpu", &["--version"]);
    assert_eq!(version.code, 0);
    assert!(version.stdout.starts_with("hmn "));
}

#[test]
fn completions_and_man_page_are_generated() {
    let bash = run("no_gpus", &["completions", "bash"]);
    assert_eq!(bash.code, 0);
    assert!(bash.stdout.contains("_hmn()"), "{}", bash.stdout);
    assert!(bash.stdout.contains("--exit-status"));
    let man = run("no_gpus", &["man"]);
    assert_eq!(man.code, 0);
    assert!(
        man.stdout.contains(".TH hmn"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
}

#[test]
fn color_follows_the_flag_and_no_color() {
    let always = run("one_gpu", &["--color", "always"]);
    assert!(always.stdout.contains("\x1b["), "{}", always.stdout);
    let never = run("one_gpu", &["--color", "never"]);
    assert!(!never.stdout.contains("\x1b["));
    let (mut cmd, _fake) = hmn("one_gpu");
    let piped = cmd.env("NO_COLOR", "1").output().unwrap();
    assert!(!String::from_utf8_lossy(&piped.stdout).contains("\x1b["));
}

#[test]
fn a_closed_stdout_exits_quietly_with_success() {
    use std::io::Read;
    use std::process::Stdio;
    let (mut cmd, _fake) = hmn("count_grows");
    let mut child = cmd
        .args(["ps", "--full"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away at once, like `| head -0`
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status:?} {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
}

/// Field names of the tables under `heading` in docs/json.md.
fn documented_fields(heading: &str) -> BTreeSet<String> {
    let doc = std::fs::read_to_string(test_support::workspace_root().join("docs/json.md")).unwrap();
    let section = doc.split("\n## ").find(|s| s.starts_with(heading)).unwrap();
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn emitted_json_fields_are_exactly_the_documented_ones() {
    let summary: Value = serde_json::from_str(&run("one_gpu", &["--json"]).stdout).unwrap();
    let documented = documented_fields("`hmn --json`");
    let device_fields: BTreeSet<String> = documented
        .iter()
        .filter(|f| !f.contains('.') && *f != "devices" && *f != "host")
        .cloned()
        .collect();
    let host_fields: BTreeSet<String> = documented
        .iter()
        .filter_map(|f| f.strip_prefix("host."))
        .filter(|f| !f.contains('.'))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        keys(&summary),
        ["devices".to_owned(), "host".to_owned()].into()
    );
    assert_eq!(keys(&summary["devices"][0]), device_fields);
    assert_eq!(keys(&summary["host"]), host_fields);
    let ps: Value = serde_json::from_str(&run("one_gpu", &["ps", "--json"]).stdout).unwrap();
    // The object, its rows, a note (one of mig's PIDs is not in this /proc) and a failed
    // device's entry; shared DRM clients' fields are checked against a DRM tree in drm_cli.rs.
    let failed: Value =
        serde_json::from_str(&run("no_permission", &["ps", "--json"]).stdout).unwrap();
    let noted: Value = serde_json::from_str(&run("mig", &["ps", "--json"]).stdout).unwrap();
    let mut emitted = keys(&ps);
    emitted.extend(keys(&ps["processes"][0]));
    emitted.extend(keys(&noted["notes"][0]));
    emitted.extend(keys(&failed["failed_devices"][0]));
    emitted.extend(["client_id", "holders", "counted_for"].map(str::to_owned));
    assert_eq!(emitted, documented_fields("`hmn ps --json`"));
    let fits: Value =
        serde_json::from_str(&run("one_gpu", &["fits", "1G", "--json"]).stdout).unwrap();
    assert_eq!(keys(&fits), documented_fields("`hmn fits SIZE --json`"));
    let all: Value = serde_json::from_str(&run("telemetry", &["--json", "-a"]).stdout).unwrap();
    let mut device_keys = device_fields;
    device_keys.insert("telemetry".to_owned());
    assert_eq!(keys(&all["devices"][0]), device_keys);
    let mut telemetry_keys = keys(&all["devices"][0]["telemetry"]);
    telemetry_keys.insert("telemetry".to_owned());
    assert_eq!(telemetry_keys, documented_fields("`hmn --json -a`"));
}

/// A driver call that never returns (a hung GPU) ends `hmn` after `--timeout` with exit 2
/// and a message, instead of hanging the shell. The double's call sleeps 60 s: were the
/// watchdog broken, `hmn` would finish then with exit 0 and this test would fail.
#[test]
fn a_hung_driver_call_ends_in_exit_2_after_the_timeout() {
    let hung = test_support::nvml_scenario_variant("one_gpu", "cli_hung_memory_query", |s| {
        s["devices"][0]["delays_ms"] = serde_json::json!({ "nvmlDeviceGetMemoryInfo_v2": 60_000 });
        s["description"] = serde_json::json!("one_gpu whose memory query hangs");
    });
    let lib = test_support::nvml_double_for(&hung).join("libnvidia-ml.so.1");
    let fake = FakeProc::new();
    for args in [&["--timeout", "1"][..], &["ps", "--timeout", "1"][..]] {
        let output = Command::new(env!("CARGO_BIN_EXE_hmn"))
            .args(args)
            .env("HYPOMNESIS_NVML_LIB", &lib)
            .env("NVML_DOUBLE_SCENARIO", &hung)
            .env("HYPOMNESIS_NVIDIA_SMI", "/nonexistent/nvidia-smi")
            .env("HYPOMNESIS_PROC_ROOT", fake.path())
            .env("HYPOMNESIS_SYS_ROOT", fake.path().join("sys"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("no answer from the GPU driver after 1 s"),
            "{args:?}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{args:?}: nothing half-printed");
    }
}

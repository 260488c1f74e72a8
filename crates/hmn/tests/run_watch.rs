//! `hmn run` and `hmn watch` end to end: real processes with known memory patterns
//! (`ram-pattern` from test-support), the NVML double with process memory that changes over
//! time (`fixtures/nvml/gpu_steps.json`), signals sent mid-run, and the records checked
//! against `docs/json.md`.
//!
//! Figures are compared with the kernel's own (`VmHWM` written by the process itself,
//! `getrusage(RUSAGE_CHILDREN)`); no test asserts how long anything took. Snapshots redact
//! what depends on the machine or the moment (times, RAM sizes, pids, paths).
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn hmn() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hmn"));
    cmd.env_remove("NO_COLOR")
        .env_remove("HYPOMNESIS_PROC_ROOT")
        .env_remove("HYPOMNESIS_SYS_ROOT")
        // No GPU source unless a test gives one.
        .env("HYPOMNESIS_NVML_LIB", "/nonexistent/libnvidia-ml.so.1")
        .env("HYPOMNESIS_NVIDIA_SMI", "/nonexistent/nvidia-smi");
    cmd
}

/// `hmn` against the NVML double running `scenario`.
fn hmn_with_gpu(scenario: &Path) -> Command {
    let lib = test_support::nvml_double_for(scenario).join("libnvidia-ml.so.1");
    let mut cmd = hmn();
    cmd.env("HYPOMNESIS_NVML_LIB", lib)
        .env("NVML_DOUBLE_SCENARIO", scenario);
    cmd
}

fn ram_pattern() -> String {
    test_support::ram_pattern().to_string_lossy().into_owned()
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn finish(output: Output) -> Run {
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

fn run(cmd: &mut Command) -> Run {
    finish(cmd.output().unwrap())
}

fn within(value: u64, truth: u64, percent: u64) -> bool {
    value.abs_diff(truth) * 100 <= truth * percent
}

fn ndjson(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Replaces the values of `keys` (at any depth) with a marker, for snapshots.
fn redact(value: &mut Value, keys: &[&str]) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if keys.contains(&k.as_str()) {
                    *v = Value::String(format!("[{k}]"));
                } else {
                    redact(v, keys);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact(v, keys)),
        _ => {}
    }
}

/// The report on stderr, with what varies from run to run replaced.
fn redact_report(stderr: &str) -> String {
    stderr
        .lines()
        .map(|line| {
            let varying = [
                "\tPeak RSS",
                "\tProcesses seen",
                "\tHost memory",
                "\tCgroup",
                "\tSamples",
            ];
            if line.starts_with("\tPeak RSS, largest single process") {
                // Exact or sampled depends on whether the command's mark rose after the first
                // sample (a small command's `ru_maxrss` is hmn's own, and is not used).
                "\tPeak RSS, largest single process ([exact or sampled]): [varies]".to_owned()
            } else if line.starts_with("\tCgroup") {
                "\tCgroup memory limit: [varies with the machine]".to_owned()
            } else if line.starts_with("\tSamples") {
                "\tSamples: [varies]".to_owned()
            } else if varying.iter().any(|v| line.starts_with(v)) {
                let (label, _) = line.rsplit_once(": ").unwrap_or((line, ""));
                format!("{label}: [varies]")
            } else if let Some((head, _)) = line.split_once(" after ") {
                let head = head.replace(&ram_pattern(), "ram-pattern");
                format!("{head} after [time]")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------------
// hmn run: RAM

/// `getrusage(RUSAGE_CHILDREN)` covers every child this process reaped, and the other tests
/// of this binary run as threads that reap their own children: the RAM test therefore runs in
/// a process of its own, where only its children count.
fn alone(test: &str, body: impl FnOnce()) {
    test_support::in_own_process(test, Vec::new, body);
}

#[test]
fn run_reports_a_200_mib_spike_in_a_child_within_5_percent_and_as_the_kernel_does() {
    alone(
        "run_reports_a_200_mib_spike_in_a_child_within_5_percent_and_as_the_kernel_does",
        spike_body,
    );
}

fn spike_body() {
    let dir = tempfile::tempdir().unwrap();
    let truth_file = dir.path().join("hwm");
    let r = run(hmn().args([
        "run",
        "--interval",
        "20ms",
        "--json",
        "--",
        &ram_pattern(),
        "spike",
        "--child",
        "--size",
        "200MiB",
        "--hold-ms",
        "300",
        "--report",
        truth_file.to_str().unwrap(),
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The kernel's figure for the process that held the spike, read by that process.
    let truth: u64 = std::fs::read_to_string(&truth_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(truth >= 200 * MIB);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    let tree = &report["tree"];
    let sampled = tree["peak_rss_bytes"].as_u64().unwrap();
    let largest = tree["largest_process_peak_rss_bytes"].as_u64().unwrap();
    assert!(
        within(sampled, truth, 5),
        "tree peak {sampled} vs truth {truth}"
    );
    // Linux keeps RSS in per-CPU counters and sums them approximately: two readings of the
    // same mark may differ by a few pages.
    assert!(
        within(largest, truth, 1),
        "largest {largest} vs the process's own VmHWM {truth}"
    );
    assert_eq!(tree["largest_process_source"], "kernel");
    assert_eq!(tree["processes_seen"], 2);

    // And the kernel's figure for this test's children (hmn and, through hmn's wait, the
    // tree): the largest process any of them was.
    // SAFETY: a zeroed rusage is valid for getrusage to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is valid for writing.
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &raw mut usage) },
        0
    );
    let children_max = u64::try_from(usage.ru_maxrss).unwrap() * 1024;
    assert!(
        within(largest, children_max, 2),
        "hmn's exact figure {largest} vs getrusage(RUSAGE_CHILDREN) {children_max}"
    );
    assert!(
        r.stderr
            .contains("Peak RSS, largest single process (exact: kernel high-water mark)"),
        "{}",
        r.stderr
    );
}

#[test]
fn run_follows_descendants_forked_later() {
    let r = run(hmn().args([
        "run",
        "--interval",
        "10ms",
        "--json",
        "--",
        &ram_pattern(),
        "chain",
        "--depth",
        "3",
        "--delay-ms",
        "150",
        "--size",
        "32MiB",
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["tree"]["processes_seen"], 3, "{}", r.stdout);
    assert!(report["tree"]["peak_rss_bytes"].as_u64().unwrap() >= 32 * MIB);
}

#[test]
fn run_exits_with_the_commands_code_or_128_plus_its_signal() {
    let r = run(hmn().args(["run", "--", &ram_pattern(), "exit", "7"]));
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(r.stderr.contains("exited with status 7"), "{}", r.stderr);
    let r = run(hmn().args(["run", "--", "sh", "-c", "kill -KILL $$"]));
    assert_eq!(r.code, 128 + 9);
    assert!(r.stderr.contains("137 (killed by SIGKILL)"), "{}", r.stderr);
}

#[test]
fn a_command_that_cannot_start_exits_127_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("rec.ndjson");
    let r = run(hmn().args([
        "run",
        "--record",
        record.to_str().unwrap(),
        "--",
        "/nonexistent/train.py",
        "--epochs",
        "3",
    ]));
    assert_eq!(r.code, 127);
    assert_eq!(
        r.stderr,
        "hmn: run: cannot run `/nonexistent/train.py --epochs 3`: No such file or directory \
         (os error 2) (is it installed and on PATH?)\n"
    );
    assert!(r.stdout.is_empty());
    assert!(!record.exists(), "no recording of a run that never started");
}

#[test]
fn bad_arguments_exit_2_before_running_anything() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let touch = ["--", "touch", marker.to_str().unwrap()];
    let r = run(hmn().args(["run", "--plot", "out.png"]).args(touch));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("must name an .svg file"), "{}", r.stderr);
    let r = run(hmn()
        .args(["run", "--record", "/nonexistent/dir/rec.ndjson"])
        .args(touch));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("cannot create /nonexistent/dir/rec.ndjson")
    );
    let r = run(hmn().args(["run", "--interval", "0ms"]).args(touch));
    assert_eq!(r.code, 2);
    assert!(!marker.exists());
}

// ---------------------------------------------------------------------------------------------
// hmn run: signals

/// `hmn run --record` of a command that waits for a signal; sends `signal` to hmn once the
/// command is ready. Returns the run, the recording and what the command logged.
fn signalled_run(signal: libc::c_int) -> (Run, Vec<Value>, String) {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let log = dir.path().join("log");
    let record = dir.path().join("rec.ndjson");
    let child = hmn()
        .args([
            "run",
            "--interval",
            "20ms",
            "--record",
            record.to_str().unwrap(),
            "--",
            &ram_pattern(),
            "wait",
            "--ready",
            ready.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "the command never got ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    // A few samples into the run.
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: kill(2) on the hmn process this test started.
    assert_eq!(
        unsafe { libc::kill(i32::try_from(child.id()).unwrap(), signal) },
        0
    );
    let r = finish(child.wait_with_output().unwrap());
    let recording = ndjson(&std::fs::read_to_string(&record).unwrap());
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    (r, recording, logged)
}

fn check_signalled(signal: libc::c_int, name: &str) {
    let (r, recording, logged) = signalled_run(signal);
    assert_eq!(logged.trim(), name, "the command got the signal");
    assert_eq!(r.code, 128 + signal, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "exited with status {} (killed by {name})",
            128 + signal
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("Signals forwarded to the command: {name}")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("\tPeak RSS, whole tree"),
        "report printed"
    );
    let kinds: Vec<&str> = recording
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"start"));
    assert_eq!(
        kinds.last(),
        Some(&"summary"),
        "the recording was completed"
    );
    assert!(kinds[1..kinds.len() - 1].iter().all(|k| *k == "sample"));
    assert!(kinds.len() >= 4, "{kinds:?}");
    let summary = recording.last().unwrap();
    assert_eq!(summary["signal"], name);
    assert_eq!(summary["forwarded_signals"][0], name);
}

#[test]
fn sigint_is_forwarded_and_the_report_and_recording_are_completed() {
    check_signalled(libc::SIGINT, "SIGINT");
}

#[test]
fn sigterm_is_forwarded_and_the_report_and_recording_are_completed() {
    check_signalled(libc::SIGTERM, "SIGTERM");
}

// ---------------------------------------------------------------------------------------------
// hmn run: GPU (the double's process grows 2 → 12 GiB at 1.0 s, drops to 4 GiB at 2.0 s; the
// device's used memory moves with it, from 3 GiB to 13 GiB to 5 GiB). The double's pids are
// not this run's tree, so the tree's own GPU memory is 0.

fn gpu_steps() -> PathBuf {
    test_support::nvml_scenario("gpu_steps")
}

#[test]
fn run_reports_the_peak_gpu_memory_of_a_scenario_that_changes_over_time() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("rec.ndjson");
    let plot = dir.path().join("plot.svg");
    let r = run(hmn_with_gpu(&gpu_steps()).args([
        "run",
        "--interval",
        "50ms",
        "--json",
        "--record",
        record.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
        "--",
        "sleep",
        "2.5",
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    let device = &report["devices"][0];
    assert_eq!(device["device_peak_used_bytes"], 13 * GIB, "{device}");
    assert_eq!(device["tree_peak_bytes"], 0);
    insta::assert_snapshot!("run_gpu_report", redact_report(&r.stderr));

    let recording = ndjson(&std::fs::read_to_string(&record).unwrap());
    let used: Vec<u64> = recording
        .iter()
        .filter(|r| r["kind"] == "sample")
        .map(|r| r["gpus"][0]["used_bytes"].as_u64().unwrap())
        .collect();
    assert_eq!(used.first(), Some(&(3 * GIB)));
    assert!(
        used.contains(&(13 * GIB)) && used.last() == Some(&(5 * GIB)),
        "{used:?}"
    );
    let mut start = recording[0].clone();
    redact(
        &mut start,
        &["wall_clock", "pid", "host_total_bytes", "command"],
    );
    insta::assert_json_snapshot!("run_record_start", start);
    let mut sample = recording[1].clone();
    redact(
        &mut sample,
        &[
            "wall_clock",
            "t_ms",
            "tree_rss_bytes",
            "processes",
            "host_available_bytes",
            "cgroup_usage_bytes",
            "used_bytes",
            "tree_bytes",
        ],
    );
    insta::assert_json_snapshot!("run_record_sample", sample);

    let svg = std::fs::read_to_string(&plot).unwrap();
    insta::assert_snapshot!("run_plot_structure", svg_structure(&svg));
}

/// What an SVG plot is made of: its size, its texts that are not tick labels, and how many
/// long series lines it has.
fn svg_structure(svg: &str) -> String {
    let mut out = Vec::new();
    out.push(svg.lines().next().unwrap_or("").to_owned());
    let texts: Vec<String> = svg
        .split("<text")
        .skip(1)
        .filter_map(|t| t.split_once('>').map(|(_, rest)| rest))
        .filter_map(|t| t.split("</text>").next())
        .map(|t| t.trim().to_owned())
        .filter(|t| t.parse::<f64>().is_err())
        .collect();
    for t in texts {
        out.push(format!("text: {t}"));
    }
    let lines = svg
        .split("<polyline")
        .skip(1)
        .filter(|p| p.contains("stroke-width=\"2\""))
        .filter_map(|p| p.split("points=\"").nth(1)?.split('"').next())
        .filter(|points| points.split_whitespace().count() > 10)
        .count();
    out.push(format!("series lines with more than 10 points: {lines}"));
    out.join("\n")
}

#[test]
fn run_records_csv_when_the_file_ends_in_csv() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("rec.csv");
    let r = run(hmn_with_gpu(&gpu_steps()).args([
        "run",
        "--interval",
        "20ms",
        "--record",
        record.to_str().unwrap(),
        "--",
        "sleep",
        "0.2",
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(&record).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(
            "t_ms,wall_clock,tree_rss_bytes,processes,host_available_bytes,cgroup_usage_bytes,\
             gpu0_tree_bytes,gpu0_used_bytes"
        )
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.len() >= 3);
    assert!(rows.iter().all(|r| r.len() == 8));
    assert!(rows.iter().all(|r| r[7] == (3 * GIB).to_string()));
}

// ---------------------------------------------------------------------------------------------
// hmn watch

#[test]
fn watch_gives_each_pid_its_baseline_and_peak() {
    let r = run(hmn_with_gpu(&gpu_steps()).args([
        "watch",
        "4013001",
        "--interval",
        "100ms",
        "--duration",
        "2500ms",
        "--json",
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let records = ndjson(&r.stdout);
    let mut start = records[0].clone();
    redact(&mut start, &["wall_clock"]);
    insta::assert_json_snapshot!("watch_start_record", start);
    let samples: Vec<&Value> = records.iter().filter(|r| r["kind"] == "sample").collect();
    assert_eq!(samples[0]["used_bytes"], 2 * GIB);
    assert_eq!(samples[0]["used_delta_bytes"], 0);
    assert!(
        samples
            .iter()
            .any(|s| s["used_bytes"] == 12 * GIB && s["used_delta_bytes"] == 10 * GIB)
    );
    let mut summary = records.last().unwrap().clone();
    assert_eq!(summary["kind"], "summary");
    redact(&mut summary, &["t_ms", "samples", "samples_read"]);
    insta::assert_json_snapshot!("watch_summary_record", summary);
    let stderr = r
        .stderr
        .lines()
        .map(|l| {
            if l.contains(" samples;") {
                "hmn: watch: [N] samples; spill not measurable on this platform; per-PID memory below"
                    .to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!("watch_stderr", stderr);
}

#[test]
fn watch_without_pids_takes_the_largest_gpu_processes_in_a_table() {
    let r = run(hmn_with_gpu(&gpu_steps()).args([
        "watch",
        "--top",
        "1",
        "--interval",
        "100ms",
        "--duration",
        "250ms",
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut lines = r.stdout.lines();
    assert!(lines.next().unwrap().starts_with("TIME      PID      NAME"));
    let first = lines.next().unwrap();
    assert!(first.starts_with("+0.0s     4013001"), "{first}");
    assert!(first.contains("2.0 GiB    +0 B"), "{first}");
    assert!(r.stderr.contains(
        "hmn: watch: every GPU: 0 [NVIDIA H100 80GB HBM3], interval 0.1s, watching 1 PID(s) (top 1 by GPU memory)"
    ));
}

#[test]
fn explicit_pids_do_not_mix_with_automatic_choice() {
    for flags in [
        &["--follow-new"][..],
        &["--filter", "py"],
        &["--min", "1GiB"],
    ] {
        let r = run(
            hmn_with_gpu(&test_support::nvml_scenario("init_driver_not_loaded"))
                .args(["watch", "42"])
                .args(flags),
        );
        assert_eq!(r.code, 2, "{flags:?}");
        assert!(
            r.stderr.contains("cannot be combined with explicit PIDs"),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn watch_with_nothing_to_watch_exits_2() {
    let r = run(hmn().args(["watch", "--duration", "1s"]));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("give PIDs to watch their RAM"),
        "{}",
        r.stderr
    );
    let r = run(hmn_with_gpu(&gpu_steps()).args(["watch", "--min", "100GiB", "--duration", "1s"]));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no GPU process matches"), "{}", r.stderr);
}

#[test]
fn watch_without_a_gpu_watches_the_ram_of_explicit_pids() {
    let me = std::process::id().to_string();
    let r = run(hmn().args([
        "watch",
        &me,
        "--interval",
        "50ms",
        "--duration",
        "120ms",
        "--json",
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("watching RAM only"), "{}", r.stderr);
    let records = ndjson(&r.stdout);
    let summary = records.last().unwrap();
    assert!(summary["per_pid"][0]["peak_rss_bytes"].as_u64().unwrap() > 0);
    assert!(
        summary["per_pid"][0]["name"].is_string(),
        "named from /proc"
    );
    assert_eq!(summary["per_pid"][0]["baseline_used_bytes"], Value::Null);
}

/// Reads NDJSON records from a running `hmn watch` until `count` samples have come.
fn read_samples(reader: &mut impl BufRead, count: usize) -> Vec<Value> {
    let mut records = Vec::new();
    let mut samples = 0;
    let mut line = String::new();
    while samples < count {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "hmn ended early");
        let record: Value = serde_json::from_str(&line).unwrap();
        if record["kind"] == "sample" {
            samples += 1;
        }
        records.push(record);
    }
    records
}

#[test]
fn ctrl_c_ends_watch_with_the_summary() {
    let mut child = hmn_with_gpu(&gpu_steps())
        .args(["watch", "4013001", "--interval", "50ms", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    read_samples(&mut stdout, 3);
    // SAFETY: kill(2) on the hmn process this test started.
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGINT) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let r = finish(child.wait_with_output().unwrap());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let summary = ndjson(&rest).pop().unwrap();
    assert_eq!(summary["kind"], "summary");
    assert_eq!(summary["interrupted"], true);
    assert_eq!(summary["per_pid"][0]["baseline_used_bytes"], 2 * GIB);
    assert!(r.stderr.contains("(interrupted)"), "{}", r.stderr);
    assert!(r.stderr.contains("BASELINE VRAM"), "{}", r.stderr);
}

#[test]
fn a_reused_pid_is_told_by_its_start_time_and_gets_a_new_baseline() {
    // A fixture /proc where pid 4013002 (a GPU process of the scenario) is llama-server,
    // started at tick 1000; the test then replaces it with another process under the same pid.
    let proc = tempfile::tempdir().unwrap();
    std::fs::write(
        proc.path().join("meminfo"),
        "MemTotal: 65536000 kB\nMemAvailable: 32768000 kB\n",
    )
    .unwrap();
    std::fs::create_dir_all(proc.path().join("self")).unwrap();
    let pid_dir = proc.path().join("4013002");
    std::fs::create_dir_all(&pid_dir).unwrap();
    let become_ = |comm: &str, start: u64| {
        std::fs::write(pid_dir.join("comm"), format!("{comm}\n")).unwrap();
        std::fs::write(
            pid_dir.join("status"),
            format!("Name:\t{comm}\nTgid:\t4013002\nPid:\t4013002\nUid:\t0\t0\t0\t0\n"),
        )
        .unwrap();
        std::fs::write(
            pid_dir.join("stat"),
            format!("4013002 ({comm}) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0\n"),
        )
        .unwrap();
    };
    become_("llama-server", 1000);
    let mut child = hmn_with_gpu(&gpu_steps())
        .env("HYPOMNESIS_PROC_ROOT", proc.path())
        .args(["watch", "4013002", "--interval", "50ms", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let first = read_samples(&mut stdout, 2);
    assert_eq!(first[1]["name"], "llama-server");
    become_("python3", 2000);
    let later = read_samples(&mut stdout, 3);
    // SAFETY: kill(2) on the hmn process this test started.
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGTERM) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let r = finish(child.wait_with_output().unwrap());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "pid=4013002 is a new process (llama-server → python3): the OS reused the PID (its \
             start time changed); baseline reset"
        ),
        "{}",
        r.stderr
    );
    assert!(later.iter().any(|s| s["name"] == "python3"));
    let summary = ndjson(&rest).pop().unwrap();
    let names: Vec<&str> = summary["per_pid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["llama-server", "python3"], "two processes, one pid");
}

#[test]
fn follow_new_says_who_entered_and_who_left() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("follow.json");
    std::fs::write(
        &scenario,
        r#"{"devices": [{"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-1",
            "pci_bus_id": "00000000:00:09.0", "pci_device_id": 590352606,
            "memory": {"total": 85520809984, "reserved": 502267904,
                       "free": 81797316608, "used": 3221225472},
            "compute_processes": [
              {"pid": 4014001, "used_gpu_memory": 2147483648},
              {"pid": 4014002, "used_gpu_memory": 1073741824,
               "used_gpu_memory_steps": [[400, 5368709120]]}]}]}"#,
    )
    .unwrap();
    let r = run(hmn_with_gpu(&scenario).args([
        "watch",
        "--top",
        "1",
        "--follow-new",
        "--interval",
        "100ms",
        "--duration",
        "1200ms",
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("following top 1 by GPU memory (re-selected every interval), 1 initially"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("followed set changed: entered pid=4014002 (?); left pid=4014001 (?)"),
        "{}",
        r.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// docs/json.md agrees with what is emitted

use test_support::json_docs::{documented, emitted};

#[test]
fn emitted_records_are_exactly_the_documented_ones() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("rec.ndjson");
    let r = run(hmn_with_gpu(&gpu_steps()).args([
        "run",
        "--json",
        "--interval",
        "20ms",
        "--record",
        record.to_str().unwrap(),
        "--",
        "sleep",
        "0.1",
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    let run_section = "`hmn run`";
    assert_eq!(emitted(&report), documented(run_section, "The report"));
    let records = ndjson(&std::fs::read_to_string(&record).unwrap());
    for (kind, heading) in [
        ("start", "`start`"),
        ("sample", "`sample`"),
        ("summary", "`summary`"),
    ] {
        let found = records.iter().find(|r| r["kind"] == kind).unwrap();
        let mut expected = documented(run_section, heading);
        if kind == "summary" {
            expected.extend(documented(run_section, "The report"));
        }
        assert_eq!(emitted(found), expected, "run --record {kind}");
    }

    let r = run(hmn_with_gpu(&gpu_steps()).args([
        "watch",
        "4013001",
        "--json",
        "--interval",
        "50ms",
        "--duration",
        "120ms",
    ]));
    let records = ndjson(&r.stdout);
    for kind in ["start", "sample", "summary"] {
        let found = records.iter().find(|r| r["kind"] == kind).unwrap();
        assert_eq!(
            emitted(found),
            documented("`hmn watch --json`", &format!("`{kind}`")),
            "watch {kind}"
        );
    }
}

/// A GPU that cannot be opened (its handle answers GPU_IS_LOST) but is counted by the driver
/// is not sampled, and the report says which and why rather than leaving it out silently.
#[test]
fn run_says_which_gpu_it_could_not_sample_and_why() {
    let scenario = test_support::nvml_scenario_variant("gpu_lost", "run_gpu_lost_at_start", |s| {
        s["devices"][1]["errors"] = serde_json::json!({ "nvmlDeviceGetHandleByIndex_v2": 15 });
    });
    let r =
        run(hmn_with_gpu(&scenario).args(["run", "--json", "--interval", "20ms", "--", "true"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    let devices = report["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1, "{}", r.stdout);
    assert_eq!(devices[0]["index"], 0);
    let note = report["gpu_note"].as_str().unwrap();
    assert!(note.starts_with("GPU 1: "), "{note}");
    assert!(note.contains("GPU is lost"), "{note}");
    assert!(
        r.stderr.contains("GPU memory not sampled on: GPU 1: "),
        "{}",
        r.stderr
    );
}

#[test]
fn watch_all_streams_telemetry_and_survives_a_lost_gpu() {
    // Documented fields, on the telemetry scenario (the H100 has no fan: `unavailable`).
    let r = run(
        hmn_with_gpu(&test_support::nvml_scenario("telemetry")).args([
            "watch",
            "-a",
            "--json",
            "--top",
            "1",
            "--interval",
            "50ms",
            "--duration",
            "120ms",
        ]),
    );
    let records = ndjson(&r.stdout);
    let telemetry = records.iter().find(|r| r["kind"] == "telemetry").unwrap();
    assert_eq!(telemetry["temperature_celsius"], 64.0);
    assert_eq!(
        emitted(telemetry),
        documented("`hmn watch --json`", "`telemetry`"),
    );
    // GPU 1 of gpu_lost stops answering 1.5 s after init: records before, a notice after,
    // and the watch still ends with its summary.
    let r = run(
        hmn_with_gpu(&test_support::nvml_scenario("gpu_lost")).args([
            "watch",
            "-a",
            "--json",
            "--device",
            "1",
            "--interval",
            "250ms",
            "--duration",
            "2500ms",
        ]),
    );
    let records = ndjson(&r.stdout);
    let count = records.iter().filter(|r| r["kind"] == "telemetry").count();
    assert!(
        (2..10).contains(&count),
        "{count} telemetry records\n{}",
        r.stdout
    );
    assert!(
        r.stderr.contains("telemetry of GPU 1 failed"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("GPU is lost"), "{}", r.stderr);
    assert_eq!(records.last().unwrap()["kind"], "summary");
}

// ---------------------------------------------------------------------------------------------
// A driver that hangs mid-way

/// `one_gpu` whose process-list call sleeps 60 s from 1.2 s after the first `nvmlInit` on:
/// a driver that hangs while `watch` or `run` is under way.
fn hangs_after_a_while(name: &str) -> PathBuf {
    test_support::nvml_scenario_variant("one_gpu", name, |scenario| {
        scenario["description"] = serde_json::json!("one_gpu whose process list hangs after 1.2 s");
        scenario["devices"][0]["delays_ms"] =
            serde_json::json!({ "nvmlDeviceGetComputeRunningProcesses_v3": 60_000 });
        scenario["devices"][0]["delays_from_ms"] = serde_json::json!(1_200);
    })
}

/// With `--timeout 1`, `watch` abandons the sample whose driver call hangs, says so, keeps
/// its interval until `--duration` ends, prints its summary, and exits without waiting for
/// the blocked call. Were the call not abandoned, `watch` would sit in it for 60 s and then
/// report no skipped interval.
#[test]
fn watch_skips_the_samples_of_a_hung_driver_and_still_ends_on_time() {
    let scenario = hangs_after_a_while("watch_hung_process_list");
    let started = std::time::Instant::now();
    let r = run(hmn_with_gpu(&scenario).args([
        "watch",
        "--top",
        "1",
        "--interval",
        "200ms",
        "--duration",
        "4s",
        "--timeout",
        "1",
    ]));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(40),
        "not the 60 s hang"
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("skipping interval"), "{}", r.stderr);
    assert!(
        r.stderr.contains("did not answer within 1s"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("samples;"),
        "summary printed: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains("exiting without waiting for it"),
        "{}",
        r.stderr
    );
}

/// `run` under a driver that hangs mid-run: CMD's exit code, a report, and no 60 s wait.
#[test]
fn run_reports_and_ends_when_the_driver_hangs_mid_run() {
    let scenario = hangs_after_a_while("run_hung_process_list");
    let started = std::time::Instant::now();
    let r = run(hmn_with_gpu(&scenario).args([
        "run",
        "--interval",
        "200ms",
        "--timeout",
        "1",
        "--",
        "sh",
        "-c",
        "sleep 3; exit 3",
    ]));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(40),
        "not the 60 s hang"
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("exiting without waiting for it"),
        "{}",
        r.stderr
    );
}

//! What `hmn` writes, held against hostile names, full disks, closed pipes, narrow terminals
//! and flags given where they mean nothing: end to end against the NVML double and a fixture
//! `/proc`.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The raw bytes of a process name that tries to take over the terminal: set its title
/// (OSC 0), clear the screen, forge a table row with a newline, hide itself behind a
/// right-to-left override, and ring the bell with a C1 string terminator.
const EVIL_NAME: &str = "x\x1b]0;pwned\x07\x1b[2J\nfake 1 root\u{202e}exe.txt\u{9c}\x7f";
/// How `hmn` shows it on a terminal.
const EVIL_SHOWN: &str = "x\\e]0;pwned\\x07\\e[2J\\nfake 1 root\\u{202e}exe.txt\\u{9c}\\x7f";

struct Fixture {
    dir: tempfile::TempDir,
    scenario: PathBuf,
    lib: PathBuf,
}

impl Fixture {
    /// `one_gpu`, with the GPU named `gpu_name`, and a fixture `/proc` in which the
    /// scenario's processes are called `name` and run `name --flag`.
    fn new(variant: &str, gpu_name: &str, name: &str) -> Self {
        let gpu_name = gpu_name.to_owned();
        let scenario = test_support::nvml_scenario_variant("one_gpu", variant, move |s| {
            s["devices"][0]["name"] = Value::String(gpu_name.clone());
            s["description"] = Value::String("one_gpu under another name".into());
        });
        let lib = test_support::nvml_double_for(&scenario).join("libnvidia-ml.so.1");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(
            root.join("meminfo"),
            "MemTotal:       65536000 kB\nMemFree:        1000000 kB\nMemAvailable:   32768000 kB\nSwapTotal:      0 kB\nSwapFree:       0 kB\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("self")).unwrap();
        std::fs::write(root.join("self/cgroup"), "0::/\n").unwrap();
        std::fs::write(root.join("self/statm"), "1000 500 100 10 0 400 0\n").unwrap();
        let declared: Value =
            serde_json::from_str(&std::fs::read_to_string(&scenario).unwrap()).unwrap();
        for list in ["compute_processes", "graphics_processes"] {
            for process in declared["devices"][0][list].as_array().unwrap() {
                let pid = process["pid"].as_u64().unwrap();
                let p = root.join(pid.to_string());
                std::fs::create_dir_all(&p).unwrap();
                std::fs::write(p.join("comm"), format!("{name}\n")).unwrap();
                std::fs::write(p.join("cmdline"), format!("{name}\0--flag\0")).unwrap();
                std::fs::write(
                    p.join("status"),
                    format!("Name:\tx\nTgid:\t{pid}\nPid:\t{pid}\nUid:\t0\t0\t0\t0\n"),
                )
                .unwrap();
            }
        }
        Self { dir, scenario, lib }
    }

    fn plain() -> Self {
        Self::new("output_safety_plain", "NVIDIA H100 80GB HBM3", "python3")
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn hmn(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hmn"));
        cmd.args(args)
            .env("HYPOMNESIS_NVML_LIB", &self.lib)
            .env("NVML_DOUBLE_SCENARIO", &self.scenario)
            .env("HYPOMNESIS_NVIDIA_SMI", "/nonexistent/nvidia-smi")
            .env("HYPOMNESIS_PROC_ROOT", self.root())
            .env("HYPOMNESIS_SYS_ROOT", self.root().join("sys"))
            .env_remove("NO_COLOR")
            .env_remove("COLUMNS");
        cmd
    }
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn ran(mut cmd: Command) -> Ran {
    let output = cmd.output().unwrap();
    Ran {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn evil() -> Fixture {
    Fixture::new(
        "output_safety_evil",
        &format!("H100 {EVIL_NAME}"),
        EVIL_NAME,
    )
}

#[test]
fn process_names_and_command_lines_are_escaped_in_ps_text_and_raw_in_json() {
    let fixture = evil();
    let text = ran(fixture.hmn(&["ps", "--full"]));
    assert_eq!(text.code, Some(0), "{}", text.stderr);
    assert!(!text.stdout.contains('\x1b'), "{}", text.stdout);
    assert!(!text.stdout.contains('\u{202e}'), "{}", text.stdout);
    assert!(!text.stdout.contains('\u{9c}'), "{}", text.stdout);
    assert!(text.stdout.contains(EVIL_SHOWN), "{}", text.stdout);
    assert!(
        text.stdout.contains(&format!("{EVIL_SHOWN} --flag")),
        "the command line too: {}",
        text.stdout
    );
    // One header and one line per process: the newline forged no row.
    assert_eq!(text.stdout.lines().count(), 3, "{}", text.stdout);

    let json = ran(fixture.hmn(&["ps", "--json"]));
    let rows: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        rows["processes"][0]["name"], EVIL_NAME,
        "JSON keeps the raw name"
    );
}

#[test]
fn a_device_name_is_escaped_in_the_summary_and_fits_and_raw_in_json() {
    let fixture = evil();
    let summary = ran(fixture.hmn(&[]));
    assert!(
        summary.stdout.contains(&format!("[H100 {EVIL_SHOWN}]")),
        "{}",
        summary.stdout
    );
    assert!(!summary.stdout.contains('\x1b'), "{}", summary.stdout);
    let fits = ran(fixture.hmn(&["fits", "1G", "--color", "never"]));
    assert!(!fits.stderr.contains('\x1b'), "{}", fits.stderr);
    assert!(fits.stderr.contains(EVIL_SHOWN), "{}", fits.stderr);
    let json: Value = serde_json::from_str(&ran(fixture.hmn(&["--json"])).stdout).unwrap();
    assert_eq!(json["devices"][0]["name"], format!("H100 {EVIL_NAME}"));
}

#[test]
fn watch_escapes_the_names_it_prints() {
    let fixture = evil();
    let watch = ran(fixture.hmn(&["watch", "--interval", "50ms", "--duration", "120ms"]));
    assert!(!watch.stdout.contains('\x1b'), "{}", watch.stdout);
    assert!(!watch.stderr.contains('\x1b'), "{}", watch.stderr);
    assert!(watch.stdout.contains("x\\e]0;pwned"), "{}", watch.stdout);
}

#[test]
fn a_full_disk_on_stdout_is_reported_and_exits_2() {
    let fixture = Fixture::plain();
    for args in [&["ps", "--json"][..], &["ps"], &[], &["--json"], &["man"]] {
        let mut cmd = fixture.hmn(args);
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full exists on Linux");
        cmd.stdout(full);
        let output = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("cannot write to stdout: No space left on device"),
            "{args:?}: {stderr}"
        );
    }
}

/// `run`'s report comes after CMD has ended: a stdout that cannot take it never cuts CMD
/// short, and a failed report turns CMD's success into 74 (outputs incomplete).
#[test]
fn run_finishes_its_command_whatever_happens_to_stdout() {
    let fixture = Fixture::plain();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("finished");
    let script = format!("sleep 0.2; echo done > '{}'", marker.display());
    let mut cmd = fixture.hmn(&[
        "run",
        "--json",
        "--interval",
        "50ms",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    cmd.stdout(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap(),
    );
    let output = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(marker.exists(), "CMD did not run to its end: {stderr}");
    assert_eq!(output.status.code(), Some(74), "{stderr}");
    assert!(
        stderr.contains("cannot write to stdout: No space left on device"),
        "{stderr}"
    );

    std::fs::remove_file(&marker).unwrap();
    let mut child = fixture
        .hmn(&[
            "run",
            "--json",
            "--interval",
            "50ms",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone before the report
    let output = child.wait_with_output().unwrap();
    assert!(marker.exists(), "CMD did not run to its end");
    assert_eq!(
        output.status.code(),
        Some(0),
        "a closed pipe is not an error"
    );
}

/// `hmn watch | head -1`: once the reader has gone, watch ends with exit 0 — at its next
/// write at the latest, and at once where stdout can be watched (Unix).
fn watch_ends_after_its_reader_goes_away(interval: &str) {
    let fixture = Fixture::plain();
    let mut child = fixture
        .hmn(&["watch", "--interval", interval])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert!(first.contains("PID"), "{first}");
    drop(reader); // like `hmn watch | head -1`
    // A generous bound, far below the hour-long interval. Without the fix watch samples
    // into the closed pipe until killed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let status = status.unwrap_or_else(|| {
        panic!("hmn watch --interval {interval} was still running 30 s after its reader went away")
    });
    assert_eq!(status.code(), Some(0), "a closed pipe is not an error");
}

#[test]
fn watch_ends_at_its_next_write_after_its_reader_goes_away() {
    watch_ends_after_its_reader_goes_away("50ms");
}

#[test]
fn watch_ends_without_waiting_for_its_next_sample_when_its_reader_goes_away() {
    watch_ends_after_its_reader_goes_away("1h");
}

#[test]
fn a_bare_fraction_is_not_a_size() {
    let fixture = Fixture::plain();
    let fits = ran(fixture.hmn(&["fits", "1.5"]));
    assert_eq!(fits.code, Some(2), "{}", fits.stderr);
    assert!(
        fits.stderr.contains("invalid size `1.5`"),
        "{}",
        fits.stderr
    );
    assert!(fits.stderr.contains("accepted forms"), "{}", fits.stderr);
}

#[test]
fn flags_that_would_do_nothing_are_usage_errors() {
    let fixture = Fixture::plain();
    for args in [
        &["ps", "-a"][..],
        &["fits", "-a", "1G"],
        &["man", "--json"],
        &["completions", "bash", "--device", "0"],
        &["-a", "ps"],
        &["--json", "man"],
    ] {
        let r = ran(fixture.hmn(args));
        assert_eq!(r.code, Some(2), "{args:?} was accepted: {}", r.stdout);
        assert!(r.stdout.is_empty(), "{args:?}");
    }
    #[cfg(feature = "serve")]
    assert_eq!(ran(fixture.hmn(&["serve", "-a"])).code, Some(2));
}

#[test]
fn the_summary_json_carries_the_host_pressure_and_cgroup_that_the_text_shows() {
    let fixture = Fixture::plain();
    let root = fixture.root();
    std::fs::create_dir_all(root.join("pressure")).unwrap();
    std::fs::write(
        root.join("pressure/memory"),
        "some avg10=12.50 avg60=3.00 avg300=1.00 total=123456\nfull avg10=1.00 avg60=0.50 avg300=0.10 total=2345\n",
    )
    .unwrap();
    std::fs::write(root.join("self/cgroup"), "0::/job\n").unwrap();
    let cgroup = root.join("sys/fs/cgroup");
    std::fs::create_dir_all(cgroup.join("job")).unwrap();
    std::fs::write(cgroup.join("cgroup.controllers"), "cpu memory\n").unwrap();
    std::fs::write(cgroup.join("job/memory.max"), "8589934592\n").unwrap();
    std::fs::write(cgroup.join("job/memory.current"), "2147483648\n").unwrap();

    let text = ran(fixture.hmn(&["--color", "never"]));
    assert!(
        text.stdout
            .contains("cgroup limit 8.0 GiB (v2, 2.0 GiB used); pressure warning"),
        "{}",
        text.stdout
    );
    let json: Value = serde_json::from_str(&ran(fixture.hmn(&["--json"])).stdout).unwrap();
    let host = &json["host"];
    assert_eq!(host["total_bytes"], 67_108_864_000_u64);
    assert_eq!(host["available_bytes"], 33_554_432_000_u64);
    assert_eq!(host["pressure_level"], "warning");
    assert_eq!(host["pressure"]["some_avg10"], 12.5);
    assert_eq!(host["cgroup"]["version"], "v2");
    assert_eq!(host["cgroup"]["limit_bytes"], 8_589_934_592_u64);
    assert_eq!(host["cgroup"]["usage_bytes"], 2_147_483_648_u64);
    assert_eq!(json["devices"][0]["index"], 0);
    // Every nested field is documented in docs/json.md, and nothing more.
    let doc = std::fs::read_to_string(test_support::workspace_root().join("docs/json.md")).unwrap();
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("`hmn --json` "))
        .unwrap();
    for object in ["pressure", "cgroup"] {
        let prefix = format!("host.{object}.");
        let documented: std::collections::BTreeSet<String> = section
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .filter_map(|f| f.strip_prefix(prefix.as_str()))
            .map(str::to_owned)
            .collect();
        let emitted: std::collections::BTreeSet<String> =
            host[object].as_object().unwrap().keys().cloned().collect();
        assert_eq!(emitted, documented, "host.{object}");
    }
}

#[test]
fn a_pipe_gets_the_whole_table_whatever_columns_says() {
    let fixture = Fixture::new(
        "output_safety_long",
        "NVIDIA H100 80GB HBM3",
        "a-process-name-far-longer-than-any-terminal-would-show-in-one-column",
    );
    let mut cmd = fixture.hmn(&["ps", "--full"]);
    cmd.env("COLUMNS", "40");
    let r = ran(cmd);
    assert!(!r.stdout.contains('…'), "{}", r.stdout);
    assert!(
        r.stdout.contains(
            "a-process-name-far-longer-than-any-terminal-would-show-in-one-column --flag"
        ),
        "{}",
        r.stdout
    );
}

#[test]
fn man_dir_writes_every_page_that_hmn_1_refers_to() {
    let fixture = Fixture::plain();
    let dir = tempfile::tempdir().unwrap();
    let r = ran(fixture.hmn(&["man", "--dir", dir.path().to_str().unwrap()]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let main_page = std::fs::read_to_string(dir.path().join("hmn.1")).unwrap();
    for command in ["ps", "fits", "run", "watch", "completions", "man"] {
        assert!(
            main_page.contains(&format!("hmn\\-{command}(1)")),
            "{command}"
        );
        let page = std::fs::read_to_string(dir.path().join(format!("hmn-{command}.1")))
            .unwrap_or_else(|e| panic!("hmn-{command}.1: {e}"));
        assert!(page.contains(&format!(".TH hmn-{command} 1")), "{page}");
    }
    let ps = ran(fixture.hmn(&["man", "ps"]));
    assert!(ps.stdout.contains(".TH hmn-ps 1"), "{}", ps.stdout);
}

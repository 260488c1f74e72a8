//! `hmn run` under hostile conditions: a disk that fills mid-run (a file-size limit set on
//! hmn with `setrlimit(RLIMIT_FSIZE)`), a command that prints to stdout under `--json`,
//! signals other than Ctrl-C, a command that leaves a daemon behind, a command that cannot be
//! executed, a command shorter than the interval, an unreadable `/proc`, a GPU lost mid-run,
//! and control characters in the command's arguments.
//!
//! No test asserts how long anything took: where an order matters (the failure is reported
//! while the command still runs), the command waits for a file the test creates once it saw
//! what it waits for. Every hmn runs under a [`Running`] guard: one that has not ended within a
//! minute fails its test, and a test that fails kills its hmn with the command, so no test
//! can hang or leave a process behind.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

fn hmn() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hmn"));
    cmd.env_remove("NO_COLOR")
        .env_remove("HYPOMNESIS_PROC_ROOT")
        .env_remove("HYPOMNESIS_SYS_ROOT")
        .env("HYPOMNESIS_NVML_LIB", "/nonexistent/libnvidia-ml.so.1")
        .env("HYPOMNESIS_NVIDIA_SMI", "/nonexistent/nvidia-smi");
    cmd
}

/// hmn may write at most `bytes` into any file, as on a disk with that much room left. The
/// limit's signal, SIGXFSZ, keeps its default action (death): hmn must deal with it.
fn with_file_size_limit(cmd: &mut Command, bytes: u64) -> &mut Command {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: setrlimit is async-signal-safe, the only kind of call allowed between fork and
    // exec; `limit` is a plain value copied into the child.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_FSIZE, &raw const limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        })
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// How long a test waits for hmn to end before it fails (and kills it).
const HMN_MAY_TAKE: Duration = Duration::from_secs(60);

/// An hmn this test started, in a process group of its own with the command it runs. Dropped
/// before it was seen to end (a failed assertion, a timeout), it is killed with its whole
/// group: a test that failed once left its hmn spinning at a full core for half an hour, the
/// command a zombie it never reaped.
struct Running {
    child: Child,
    ended: bool,
}

impl Running {
    /// Starts `cmd` (stdin empty, as `Command::output` has it).
    fn spawn(cmd: &mut Command) -> Self {
        let child = cmd.stdin(Stdio::null()).process_group(0).spawn().unwrap();
        Self {
            child,
            ended: false,
        }
    }

    fn id(&self) -> u32 {
        self.child.id()
    }

    /// hmn's status when it has ended.
    fn try_wait(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().unwrap();
        self.ended |= status.is_some();
        status
    }

    /// Waits for hmn to end; fails the test (and the drop kills hmn) when it has not within
    /// [`HMN_MAY_TAKE`].
    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + HMN_MAY_TAKE;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "hmn (pid {}) has not ended within {HMN_MAY_TAKE:?}",
                self.id()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for hmn to end, reading its stdout and stderr when they were piped (and not
    /// taken).
    fn finish(mut self) -> Run {
        let stdout = self.child.stdout.take().map(read_all);
        let stderr = self.child.stderr.take().map(read_all);
        let status = self.wait();
        let text = |reader: Option<std::thread::JoinHandle<Vec<u8>>>| {
            String::from_utf8(reader.map(|r| r.join().unwrap()).unwrap_or_default()).unwrap()
        };
        Run {
            code: status.code().unwrap_or(-1),
            stdout: text(stdout),
            stderr: text(stderr),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.ended || matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // Not reaped yet, so its pid, which is also its group's id, is still its own.
        let group = libc::pid_t::try_from(self.child.id()).unwrap_or(0);
        if group > 0 {
            // SAFETY: kill(2) on the process group this test started and has not reaped.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
        let _ = self.child.wait();
    }
}

/// Reads `pipe` to its end on a thread of its own (hmn may fill one pipe while the test
/// waits).
fn read_all(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// Runs hmn to its end with stdout and stderr captured, as `Command::output` does, under a
/// [`Running`] guard.
fn run_to_end(cmd: &mut Command) -> Run {
    Running::spawn(cmd.stdout(Stdio::piped()).stderr(Stdio::piped())).finish()
}

/// A shell command that waits until `file` exists (for at most a minute).
fn wait_for(file: &Path) -> String {
    format!(
        "i=0; while [ ! -e '{}' ] && [ $i -lt 3000 ]; do sleep 0.02; i=$((i+1)); done",
        file.display()
    )
}

/// Spawns `cmd` with stderr piped; its lines arrive on the returned channel as they come.
fn spawn_reading_stderr(cmd: &mut Command) -> (Running, mpsc::Receiver<String>) {
    let mut child = Running::spawn(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()));
    let stderr = child.child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Lines from `rx` until one contains `needle`; panics after a minute without it.
fn lines_until(rx: &mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(_) => panic!("no line with {needle:?} while the command ran; saw {seen:#?}"),
        }
    }
}

fn rest(rx: &mpsc::Receiver<String>) -> String {
    rx.iter().collect::<Vec<_>>().join("\n")
}

// ---------------------------------------------------------------------------------------------
// A disk that fills mid-run

#[test]
fn a_recording_on_a_filling_disk_is_reported_at_once_keeps_whole_lines_and_exits_74() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("rec.ndjson");
    let go = dir.path().join("go");
    let finished = dir.path().join("finished");
    let script = format!("{}; touch '{}'", wait_for(&go), finished.display());
    let mut cmd = hmn();
    cmd.args(["run", "--interval", "5ms", "--record"])
        .arg(&record)
        .args(["--", "sh", "-c", &script]);
    with_file_size_limit(&mut cmd, 4000);
    let (child, rx) = spawn_reading_stderr(&mut cmd);
    // The failure is said while the command still waits for `go`.
    let before = lines_until(&rx, "stopped");
    let said = before.last().unwrap();
    assert!(
        said.starts_with("hmn: run: recording to ") && said.contains("File too large"),
        "{said}"
    );
    assert!(said.contains("the command keeps running"), "{said}");
    std::fs::write(&go, "").unwrap();
    let ended = child.finish();
    let stderr = rest(&rx);
    assert!(finished.exists(), "the command ran to its end");
    assert_eq!(ended.code, 74, "{stderr}");
    assert_eq!(
        before
            .iter()
            .chain(std::iter::once(&stderr))
            .filter(|l| l.contains("stopped:"))
            .count(),
        2,
        "said once when it happened, once in the report: {before:?} {stderr}"
    );
    assert!(
        stderr.contains("\tRecording: INCOMPLETE, recording to "),
        "{stderr}"
    );
    assert!(stderr.contains("hmn: run: exiting 74"), "{stderr}");

    let text = std::fs::read_to_string(&record).unwrap();
    assert!(text.len() <= 4000);
    assert!(
        text.ends_with('\n'),
        "no cut last line: {:?}",
        &text[text.len() - 40..]
    );
    let kinds: Vec<String> = text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            v["kind"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(kinds[0], "start");
    assert!(
        kinds.len() > 2 && kinds[1..].iter().all(|k| k == "sample"),
        "{kinds:?}"
    );
}

#[test]
fn a_command_that_fails_keeps_its_own_code_when_the_recording_fails_too() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("rec.csv");
    let mut cmd = hmn();
    cmd.args(["run", "--interval", "5ms", "--record"])
        .arg(&record)
        .args(["--", "sh", "-c", "sleep 0.5; exit 3"]);
    with_file_size_limit(&mut cmd, 1000);
    let r = run_to_end(&mut cmd);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("\tRecording: INCOMPLETE"), "{}", r.stderr);
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(text.ends_with('\n'));
    let columns = text.lines().next().unwrap().split(',').count();
    assert!(
        text.lines().all(|l| l.split(',').count() == columns),
        "{text}"
    );
}

#[test]
fn a_plot_that_cannot_be_written_is_reported_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("plot.svg");
    let mut cmd = hmn();
    cmd.args(["run", "--interval", "20ms", "--plot"])
        .arg(&plot)
        .args(["--", "sleep", "0.3"]);
    with_file_size_limit(&mut cmd, 2000);
    let r = run_to_end(&mut cmd);
    assert_eq!(r.code, 74, "{}", r.stderr);
    assert!(r.stderr.contains("hmn: run: cannot draw "), "{}", r.stderr);
    assert!(r.stderr.contains("\tPlot: not drawn"), "{}", r.stderr);
    assert!(!plot.exists(), "no empty or cut SVG is left");
}

// ---------------------------------------------------------------------------------------------
// A descendant gone between two reads

/// How many of the pids after the last one handed out get a process in the fake `/proc`:
/// hmn's command takes one of them unless the machine starts that many processes and threads
/// while the test writes them and hmn starts.
const PREDICTED_PIDS: u32 = 1000;

/// A `/proc` under `root` in which each of the next [`PREDICTED_PIDS`] pids (hmn's command
/// gets one) is a process with a child that the listing and `stat` show but whose `statm` is
/// gone: a `sleep` of the command's shell loop that exits between the sampler's two reads,
/// held at that instant. Returns the pids.
fn proc_where_each_next_pid_has_a_child_gone(root: &Path) -> Vec<u32> {
    let number = |text: &str| -> u32 { text.trim().parse().unwrap() };
    let pid_max = number(&std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap());
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap();
    let last = number(loadavg.split_whitespace().last().unwrap());
    let stat = |pid: u32, comm: &str, ppid: u32| {
        format!("{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0\n")
    };
    // The sampler reads neither a process's own pid from its `stat` nor its `Tgid` here
    // (the processes are found by listing, not probed by number): the candidates share one
    // directory, each named by a symlink, which keeps the writing short.
    let shared = root.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("stat"), stat(0, "sh", 1)).unwrap();
    std::fs::write(shared.join("statm"), "1000 10 0 0 0 0 0\n").unwrap();
    std::fs::write(shared.join("status"), "Name:\tsh\nVmHWM:\t40 kB\n").unwrap();
    let pids: Vec<u32> = (1..=PREDICTED_PIDS)
        .map(|i| {
            // Past pid_max the kernel goes on from 300 (its reserved pids end there).
            let pid = if last + i < pid_max {
                last + i
            } else {
                last + i - pid_max + 300
            };
            std::os::unix::fs::symlink(&shared, root.join(pid.to_string())).unwrap();
            // Above pid_max: never a real process, never one of the pids above.
            let gone = pid_max + i;
            let dir = root.join(gone.to_string());
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("stat"), stat(gone, "sleep", pid)).unwrap();
            pid
        })
        .collect();
    // The last pid never moves: the sampler lists this `/proc` at its first sample and every
    // two seconds.
    std::fs::write(root.join("loadavg"), "0.00 0.00 0.00 1/1 1\n").unwrap();
    pids
}

/// The scenario of a run found spinning at a full core for half an hour, its command a zombie
/// it never reaped: the first sample's search for the tree's new processes retried the
/// `statm` of a `sleep` that had exited since its `stat` was read, without end, on the thread
/// that was to wait for the command. Same options as that run (a recording at 5 ms on a disk
/// that fills), with a command that exits 3 at once.
#[test]
fn a_descendant_gone_before_it_is_sampled_does_not_keep_hmn_from_reaping_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let proc = dir.path().join("proc");
    std::fs::create_dir(&proc).unwrap();
    let record = dir.path().join("rec.ndjson");
    let pids = proc_where_each_next_pid_has_a_child_gone(&proc);
    let mut cmd = hmn();
    cmd.env("HYPOMNESIS_PROC_ROOT", &proc)
        .args(["run", "--json", "--interval", "5ms", "--record"])
        .arg(&record)
        .args(["--", "sh", "-c", "exit 3"]);
    with_file_size_limit(&mut cmd, 4000);
    let r = run_to_end(&mut cmd);
    assert_eq!(r.code, 3, "hmn exits with the command's code: {}", r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    let root = u32::try_from(report["tree"]["root_pid"].as_u64().unwrap()).unwrap();
    assert!(
        pids.contains(&root),
        "the command's pid {root} is not one of the {PREDICTED_PIDS} after the last one when \
         the test started (the machine started that many processes meanwhile?): the test \
         proves nothing, run it again"
    );
    assert_eq!(
        report["tree"]["processes_seen"], 1,
        "the command was sampled, its gone child was not: {}",
        report["tree"]
    );
}

// ---------------------------------------------------------------------------------------------
// --json and --json-out

#[test]
fn a_json_out_report_that_cannot_be_written_is_reported_removed_and_exits_74() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let mut cmd = hmn();
    cmd.args(["run", "--json-out"])
        .arg(&report)
        .args(["--", "true"]);
    with_file_size_limit(&mut cmd, 100);
    let r = run_to_end(&mut cmd);
    assert_eq!(r.code, 74, "{}", r.stderr);
    assert!(
        r.stderr.contains("hmn: run: cannot write the report to "),
        "{}",
        r.stderr
    );
    assert!(!report.exists(), "no cut report is left");
}

#[test]
fn json_stdout_is_one_document_while_the_command_prints_to_stdout() {
    let r = run_to_end(hmn().args([
        "run",
        "--json",
        "--",
        "sh",
        "-c",
        "echo hello; echo '{\"not\": 1}'",
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report: Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", r.stdout));
    assert_eq!(report["command"][0], "sh");
    assert!(
        r.stderr.starts_with("hello\n{\"not\": 1}\n"),
        "{}",
        r.stderr
    );
}

#[test]
fn json_out_writes_the_report_to_a_file_and_leaves_stdout_to_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let r = run_to_end(
        hmn()
            .args(["run", "--json-out"])
            .arg(&report)
            .args(["--", "echo", "hello"]),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "hello\n");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["command"][1], "hello");
    assert_eq!(report["outputs_complete"], true);
}

// ---------------------------------------------------------------------------------------------
// Signals

fn forwarded(signal: libc::c_int, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("rec.ndjson");
    let ready = dir.path().join("ready");
    let log = dir.path().join("log");
    let script = format!(
        "trap 'echo {name} > \"{}\"; exit 5' {}; touch '{}'; i=0; while [ $i -lt 3000 ]; do \
         sleep 0.02; i=$((i+1)); done",
        log.display(),
        name.trim_start_matches("SIG"),
        ready.display()
    );
    let child = Running::spawn(
        hmn()
            .args(["run", "--interval", "20ms", "--record"])
            .arg(&record)
            .args(["--", "sh", "-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "the command never got ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: kill(2) on the hmn process this test started.
    assert_eq!(
        unsafe { libc::kill(i32::try_from(child.id()).unwrap(), signal) },
        0
    );
    let r = child.finish();
    assert_eq!(
        r.code, 5,
        "hmn survived and exited with the command's code: {}",
        r.stderr
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap().trim(), name);
    assert!(
        r.stderr
            .contains(&format!("Signals forwarded to the command: {name}")),
        "{}",
        r.stderr
    );
    let text = std::fs::read_to_string(&record).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["kind"], "summary", "the recording was completed");
    assert_eq!(last["forwarded_signals"][0], name);
}

#[test]
fn sigusr1_is_forwarded_and_hmn_completes_its_report() {
    forwarded(libc::SIGUSR1, "SIGUSR1");
}

#[test]
fn sigusr2_is_forwarded_and_hmn_completes_its_report() {
    forwarded(libc::SIGUSR2, "SIGUSR2");
}

#[test]
fn sigalrm_is_forwarded_and_hmn_completes_its_report() {
    forwarded(libc::SIGALRM, "SIGALRM");
}

// ---------------------------------------------------------------------------------------------
// Descendants that outlive the command

#[test]
fn descendants_that_outlive_the_command_are_listed_with_their_pids() {
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let pidfile = dir.path().join("pid");
    // The descendant lets go of hmn's stdout and stderr, so the test reads them to their end.
    let script = format!(
        "({}) >/dev/null 2>&1 & echo $! > '{}'",
        wait_for(&go),
        pidfile.display()
    );
    let r = run_to_end(hmn().args(["run", "--json", "--", "sh", "-c", &script]));
    std::fs::write(&go, "").unwrap();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let pid: u64 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["tree"]["descendants_left"], serde_json::json!([pid]));
    assert_eq!(report["tree"]["followed_descendants"], false);
    assert!(
        r.stderr.contains(&format!(
            "\tDescendants still running when it ended: 1 (pid {pid}); not followed"
        )),
        "{}",
        r.stderr
    );
}

#[test]
fn follow_descendants_keeps_hmn_until_the_last_descendant_ends() {
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let done = dir.path().join("done");
    let report = dir.path().join("report.json");
    let script = format!("({}; touch '{}') &", wait_for(&go), done.display());
    let (mut child, rx) = spawn_reading_stderr(
        hmn()
            .args(["run", "--follow-descendants", "--json-out"])
            .arg(&report)
            .args(["--", "sh", "-c", &script]),
    );
    lines_until(&rx, "following 1 descendant that outlived it");
    assert!(child.try_wait().is_none(), "hmn waits for the descendant");
    std::fs::write(&go, "").unwrap();
    let status = child.wait();
    let stderr = rest(&rx);
    assert!(done.exists(), "hmn ended after the descendant");
    assert_eq!(status.code(), Some(0), "{stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["tree"]["followed_descendants"], true);
    assert_eq!(
        report["tree"]["descendants_left"].as_array().unwrap().len(),
        1
    );
    assert!(report["command_wall_time_ms"].is_u64());
    assert!(stderr.contains("followed until the last ended"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// Exit codes and unknowns

#[test]
fn a_command_that_is_not_executable_exits_126_as_shells_do() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let r = run_to_end(hmn().arg("run").arg("--").arg(&script));
    assert_eq!(r.code, 126, "{}", r.stderr);
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
    let r = run_to_end(hmn().args(["run", "--", "/nonexistent/cmd"]));
    assert_eq!(r.code, 127, "not found stays 127: {}", r.stderr);
}

#[test]
fn a_command_shorter_than_the_interval_is_not_reported_as_0_bytes() {
    let r = run_to_end(hmn().args(["run", "--json", "--interval", "10s", "--", "false"]));
    assert_eq!(r.code, 1, "{}", r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    let tree = &report["tree"];
    // A figure — from a sample, when the first one caught CMD alive (a race on a loaded
    // machine), else the largest process's, labelled as a floor — or unknown: never 0.
    match tree["peak_rss_bytes"].as_u64() {
        Some(bytes) if tree["peak_rss_source"] == "sampled" => assert!(bytes > 0, "{tree}"),
        Some(bytes) => {
            assert!(bytes > 0, "{tree}");
            assert_eq!(tree["peak_rss_source"], "largest_process", "{tree}");
            assert!(
                r.stderr.contains(
                    "whole tree (sampled every 10.00 s; the sum at one sample): at least "
                ),
                "{}",
                r.stderr
            );
        }
        None => assert!(
            r.stderr
                .contains("the sum at one sample): unknown (no sample measured it)"),
            "{}",
            r.stderr
        ),
    }
    assert!(!r.stderr.contains(": 0 B"), "{}", r.stderr);
}

/// hmn is larger than a small command, and the kernel's `ru_maxrss` of the command starts from
/// hmn's own peak (exec keeps the high-water mark of the memory before it): that figure must
/// not be reported as the command's.
#[test]
fn a_small_command_is_not_given_hmns_own_peak_as_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let truth_file = dir.path().join("hwm");
    let r = run_to_end(
        hmn()
            .args(["run", "--json", "--interval", "20ms", "--"])
            .arg(test_support::ram_pattern())
            .args(["spike", "--size", "1MiB", "--hold-ms", "300", "--report"])
            .arg(&truth_file),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let truth: u64 = std::fs::read_to_string(&truth_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    let tree = &report["tree"];
    let largest = tree["largest_process_peak_rss_bytes"].as_u64().unwrap();
    assert!(
        largest.abs_diff(truth) * 100 <= truth * 5,
        "largest {largest} vs the process's own VmHWM {truth}: {tree}"
    );
}

#[test]
fn an_unreadable_proc_root_is_said_and_not_shown_as_zero_or_none() {
    let r = run_to_end(
        hmn()
            .env("HYPOMNESIS_PROC_ROOT", "/etc/hostname")
            .args(["run", "--json", "--", "sleep", "0.2"]),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["tree"]["processes_seen"], Value::Null);
    assert!(
        report["host"]["error"]
            .as_str()
            .unwrap()
            .contains("/etc/hostname")
    );
    for said in [
        "\tProcesses seen: unknown",
        "\tHost memory available, low point (sampled every 50 ms): unknown (",
        "\tCgroup memory limit: unknown",
        "\tNote: no sample saw the command's processes",
    ] {
        assert!(r.stderr.contains(said), "missing {said:?}: {}", r.stderr);
    }
    for wrong in ["Processes seen: 0", "not in a limited cgroup", ": 0 B"] {
        assert!(!r.stderr.contains(wrong), "{wrong:?}: {}", r.stderr);
    }
}

#[test]
fn a_gpu_lost_mid_run_is_noted_next_to_its_peak() {
    let scenario = test_support::nvml_scenario("gpu_lost");
    let lib = test_support::nvml_double_for(&scenario).join("libnvidia-ml.so.1");
    let r = run_to_end(
        hmn()
            .env("HYPOMNESIS_NVML_LIB", lib)
            .env("NVML_DOUBLE_SCENARIO", &scenario)
            .args(["run", "--json", "--interval", "50ms", "--", "sleep", "2.5"]),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["devices"][0]["missed_samples"], 0);
    let missed = report["devices"][1]["missed_samples"].as_u64().unwrap();
    assert!(missed > 0, "{}", report["devices"][1]);
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("Peak GPU memory, GPU 1"))
        .unwrap();
    assert!(
        line.contains(&format!(
            "({missed} of {} samples could not read this GPU",
            report["samples"]
        )),
        "{line}"
    );
}

// ---------------------------------------------------------------------------------------------
// Control characters

#[test]
fn control_characters_in_the_command_keep_the_plot_valid_xml() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("plot.svg");
    let record = dir.path().join("rec.ndjson");
    let hostile = "a\x1b[31mred\x07\x01\u{7f}\u{9b}end";
    let r = run_to_end(
        hmn()
            .args(["run", "--interval", "20ms", "--plot"])
            .arg(&plot)
            .arg("--record")
            .arg(&record)
            .args(["--", "sh", "-c", "sleep 0.1", hostile]),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let svg = std::fs::read_to_string(&plot).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("invalid XML: {e}"));
    let texts: String = doc
        .descendants()
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join("|");
    assert!(
        texts.contains(r"a\x1b[31mred\x07\x01\x7f\x9bend"),
        "{texts}"
    );
    // The recording keeps JSON's own escaping: the argument reads back as it was.
    let start: Value = serde_json::from_str(
        std::fs::read_to_string(&record)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(start["command"][3], hostile);
}

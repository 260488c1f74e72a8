//! `hmn top` in a real pseudo-terminal: it draws a first screen, takes keys, quits with exit
//! 0 and gives the terminal back as it found it (cooked mode and echo, the normal screen, the
//! cursor shown) — after `q`, on a terminal that reports 0×0, and on SIGTERM. Off a terminal
//! it explains and exits 2; a recording plays back.
//!
//! The terminal is a pty from `openpty` (nix); `hmn top` runs in a session of its own with
//! the pty as its controlling terminal (`/dev/tty`, which crossterm opens). What it writes is
//! read on a thread and turned back into the screen's text by a terminal emulator (vt100),
//! since ratatui skips unchanged cells and moves the cursor between words.
//!
//! NVIDIA comes from the NVML double playing `fixtures/nvml/four_gpus.json`.
//!
//! Linux only: the double is built as a Linux library. A pty that cannot be opened fails the
//! test (with the reason), it is never skipped.
#![cfg(target_os = "linux")]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::pty::{Winsize, openpty};
use nix::sys::signal::{Signal, kill};
use nix::sys::termios::{LocalFlags, tcgetattr};
use nix::unistd::Pid;

/// How long anything may take before the test gives up (a liveness bound, not a measured
/// time: a first screen normally comes within a fraction of a second).
const PATIENCE: Duration = Duration::from_secs(30);

/// The sequences crossterm writes when `top` gives the terminal back.
const LEAVE_ALTERNATE_SCREEN: &str = "\x1b[?1049l";
const SHOW_CURSOR: &str = "\x1b[?25h";

/// `hmn` against the NVML double playing `scenario`, nothing else of the machine's GPUs.
fn hmn(scenario: &str) -> Command {
    let path = test_support::nvml_scenario(scenario);
    let lib = test_support::nvml_double_for(&path).join("libnvidia-ml.so.1");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hmn"));
    cmd.env_remove("HYPOMNESIS_PROC_ROOT")
        .env_remove("HYPOMNESIS_SYS_ROOT")
        .env_remove("COLUMNS")
        .env_remove("LINES")
        .env_remove("NO_COLOR")
        .env("TERM", "xterm-256color")
        .env("HYPOMNESIS_NVML_LIB", lib)
        .env("NVML_DOUBLE_SCENARIO", &path)
        .env("HYPOMNESIS_NVIDIA_SMI", "/nonexistent/nvidia-smi");
    cmd
}

/// `hmn top` running in a pseudo-terminal of `cols`×`rows`.
struct Top {
    child: Child,
    /// Our end: keys are written to it.
    master: File,
    /// A second handle on the terminal's side, to read its modes after `top` exits.
    slave: OwnedFd,
    /// Everything `top` wrote, as it comes.
    output: Arc<Mutex<Vec<u8>>>,
    rows: u16,
    cols: u16,
}

impl Top {
    fn start(mut cmd: Command, cols: u16, rows: u16) -> Self {
        let size = Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(Some(&size), None)
            .unwrap_or_else(|e| panic!("no pseudo-terminal: openpty failed: {e}"));
        let modes = tcgetattr(&pty.slave).unwrap();
        assert!(
            modes
                .local_flags
                .contains(LocalFlags::ICANON | LocalFlags::ECHO),
            "a new pty starts cooked, with echo"
        );
        let stdio = || Stdio::from(pty.slave.try_clone().unwrap());
        cmd.stdin(stdio()).stdout(stdio()).stderr(stdio());
        // SAFETY: between fork and exec only async-signal-safe calls: setsid makes the child a
        // session leader without a terminal, TIOCSCTTY makes its stdin (the pty) the session's
        // controlling terminal, so `/dev/tty` is the pty.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start hmn top");
        drop(cmd); // its copies of the terminal's side
        let master = File::from(pty.master);
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buf = [0_u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Self {
            child,
            master,
            slave: pty.slave,
            output,
            rows,
            cols,
        }
    }

    fn output(&self) -> Vec<u8> {
        self.output.lock().unwrap().clone()
    }

    /// The screen as a terminal of this size shows it after everything written so far.
    fn screen(&self, cols: u16, rows: u16) -> String {
        let mut parser = vt100::Parser::new(rows, cols, 0);
        parser.process(&self.output());
        parser.screen().contents()
    }

    /// Waits until the screen shows one of `texts`; panics with the screen when it does not.
    fn wait_for_screen(&self, texts: &[&str]) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let screen = self.screen(self.cols, self.rows);
            if texts.iter().any(|t| screen.contains(t)) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed any of {texts:?}; it shows:\n{screen}\nraw: {:?}",
                String::from_utf8_lossy(&self.output())
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn press(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
        self.master.flush().unwrap();
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // What it wrote last reaches the reader thread a moment later.
                self.wait_for_output(SHOW_CURSOR);
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "hmn top did not exit; it showed:\n{}",
                    self.screen(self.cols, self.rows)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_for_output(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if String::from_utf8_lossy(&self.output()).contains(text) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the terminal is in cooked mode with echo (as a shell expects it).
    fn cooked(&self) -> bool {
        let modes = tcgetattr(&self.slave).unwrap();
        modes
            .local_flags
            .contains(LocalFlags::ICANON | LocalFlags::ECHO)
    }

    /// `top` left the terminal as it found it: cooked, echoing, the normal screen back and
    /// the cursor shown.
    fn assert_restored(&self) {
        assert!(self.cooked(), "the terminal was left in raw mode");
        let written = String::from_utf8_lossy(&self.output()).into_owned();
        let leave = written.rfind(LEAVE_ALTERNATE_SCREEN);
        let show = written.rfind(SHOW_CURSOR);
        assert!(leave.is_some(), "the alternate screen was never left");
        assert!(show.is_some(), "the cursor was never shown again");
        let enter = written.rfind("\x1b[?1049h");
        assert!(
            enter < leave,
            "the alternate screen was entered after it was left"
        );
    }
}

impl Drop for Top {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the first screen of the four-GPU double shows: the GPUs' name.
const FOUR_GPUS: &[&str] = &["H100"];

#[test]
fn top_draws_the_double_takes_keys_and_gives_the_terminal_back_on_q() {
    let mut cmd = hmn("four_gpus");
    cmd.arg("top");
    let mut top = Top::start(cmd, 120, 40);
    top.wait_for_screen(FOUR_GPUS);
    assert!(!top.cooked(), "the screen runs in raw mode");
    top.press("?");
    top.press("q");
    let status = top.wait_exit();
    assert_eq!(status.code(), Some(0), "{status}");
    top.assert_restored();
}

#[test]
fn a_terminal_reporting_zero_by_zero_is_drawn_at_columns_by_lines() {
    let dir = tempfile::tempdir().unwrap();
    let timing = dir.path().join("timing");
    let mut cmd = hmn("four_gpus");
    cmd.arg("top")
        .env("COLUMNS", "90")
        .env("LINES", "20")
        .env("HMN_TOP_TIMING_FILE", &timing);
    let mut top = Top::start(cmd, 0, 0);
    top.cols = 90;
    top.rows = 20;
    top.wait_for_screen(FOUR_GPUS);
    top.press("q");
    let status = top.wait_exit();
    assert_eq!(status.code(), Some(0), "{status}");
    top.assert_restored();
    let said = std::fs::read_to_string(&timing).unwrap();
    assert!(said.contains("size=90x20"), "{said}");
}

#[test]
fn a_terminal_reporting_zero_by_zero_without_columns_or_lines_is_drawn_at_80_by_24() {
    let dir = tempfile::tempdir().unwrap();
    let timing = dir.path().join("timing");
    let mut cmd = hmn("four_gpus");
    cmd.arg("top").env("HMN_TOP_TIMING_FILE", &timing);
    let mut top = Top::start(cmd, 0, 0);
    top.cols = 80;
    top.rows = 24;
    top.wait_for_screen(FOUR_GPUS);
    top.press("q");
    assert_eq!(top.wait_exit().code(), Some(0));
    top.assert_restored();
    let said = std::fs::read_to_string(&timing).unwrap();
    assert!(said.contains("size=80x24"), "{said}");
    assert!(said.contains("first_screen_us="), "{said}");
}

#[test]
fn sigterm_quits_with_exit_0_and_gives_the_terminal_back() {
    let mut cmd = hmn("four_gpus");
    cmd.arg("top");
    let mut top = Top::start(cmd, 100, 30);
    top.wait_for_screen(FOUR_GPUS);
    let pid = Pid::from_raw(i32::try_from(top.child.id()).unwrap());
    kill(pid, Signal::SIGTERM).unwrap();
    let status = top.wait_exit();
    assert_eq!(status.code(), Some(0), "{status}");
    top.assert_restored();
}

#[test]
fn sighup_gives_the_terminal_back_too() {
    let mut cmd = hmn("four_gpus");
    cmd.arg("top");
    let mut top = Top::start(cmd, 100, 30);
    top.wait_for_screen(FOUR_GPUS);
    let pid = Pid::from_raw(i32::try_from(top.child.id()).unwrap());
    kill(pid, Signal::SIGHUP).unwrap();
    assert_eq!(top.wait_exit().code(), Some(0));
    top.assert_restored();
}

#[test]
fn a_panic_gives_the_terminal_back_then_prints_its_message_on_the_normal_screen() {
    let mut cmd = hmn("four_gpus");
    cmd.arg("top").env("HMN_TOP_TEST_PANIC", "1");
    let mut top = Top::start(cmd, 100, 30);
    let status = top.wait_exit_any();
    assert_eq!(status.code(), Some(101), "{status}");
    top.wait_for_output("panicking after the first screen");
    top.assert_restored();
    let written = String::from_utf8_lossy(&top.output()).into_owned();
    let message = written.find("panicking after the first screen");
    assert!(
        message > written.rfind(LEAVE_ALTERNATE_SCREEN),
        "the panic message must come after the screen is left: {written:?}"
    );
}

#[test]
fn off_a_terminal_top_explains_suggests_watch_and_exits_2() {
    // `hmn top < /dev/null | cat`
    let out = hmn("four_gpus")
        .arg("top")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs a terminal"), "{stderr}");
    assert!(stderr.contains("hmn watch"), "{stderr}");
    // Nothing was written to the terminal it does not have: no escape sequence.
    assert!(
        out.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn top_refuses_json_and_points_to_watch() {
    for args in [&["top", "--json"][..], &["--json", "top"]] {
        let out = hmn("four_gpus").args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("`--json` does not apply to `hmn top`"),
            "{stderr}"
        );
        assert!(stderr.contains("hmn watch --json"), "{stderr}");
    }
}

/// A recording as `R` writes it: one GPU named `Replayed-X1` and a process `replayed_job`.
fn write_recording(path: &Path) {
    let lines = [
        r#"{"kind":"start","format_version":2,"t_ms":0,"wall_clock":"2026-12-06T08:00:00.000Z","hmn_version":"0","argv":["hmn","top"],"devices":[{"index":0,"name":"Replayed-X1","total_bytes":85899345920}],"interval_ms":1000,"duration_ms":null,"selection":{"mode":"all","pids":[4242],"top":null,"filters":[],"min_bytes":null},"spill_measurable":false}"#,
        r#"{"kind":"device","t_ms":0,"wall_clock":"2026-12-06T08:00:00.000Z","index":0,"name":"Replayed-X1","vendor":"nvidia","source":"nvml","total_bytes":85899345920,"free_bytes":64424509440,"used_bytes":21474836480,"reserved_bytes":null,"system_total_bytes":null,"system_used_bytes":null,"unified_memory":false}"#,
        r#"{"kind":"host","t_ms":0,"wall_clock":"2026-12-06T08:00:00.000Z","total_bytes":68719476736,"available_bytes":34359738368,"swap_total_bytes":null,"swap_free_bytes":null,"cgroup_limit_bytes":null,"cgroup_usage_bytes":null,"cgroup_peak_bytes":null}"#,
        r#"{"kind":"sample","t_ms":0,"wall_clock":"2026-12-06T08:00:00.000Z","pid":4242,"name":"replayed_job","device":0,"presence":"listed","used_bytes":21474836480,"used_delta_bytes":0,"system_bytes":null,"system_delta_bytes":null,"shared_bytes":null,"shared_with":[],"rss_bytes":null,"rss_delta_bytes":null,"spilling":null,"paged":null,"user":"ada","command":"replayed_job --big","cgroup":null}"#,
    ];
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn a_recording_plays_back_in_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("rec.ndjson");
    write_recording(&recording);
    let mut cmd = hmn("no_gpus");
    cmd.arg("top").arg("--replay").arg(&recording);
    let mut top = Top::start(cmd, 120, 40);
    let screen = top.wait_for_screen(&["Replayed-X1"]);
    // Its process, from the recording's sample (the screen shows it once drawn whole).
    let screen = if screen.contains("replayed_job") {
        screen
    } else {
        top.wait_for_screen(&["replayed_job"])
    };
    assert!(screen.contains("ada"), "the recorded user:\n{screen}");
    top.press("q");
    assert_eq!(top.wait_exit().code(), Some(0));
    top.assert_restored();
}

#[test]
fn a_malformed_recording_is_refused_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("rec.ndjson");
    write_recording(&recording);
    let mut text = std::fs::read_to_string(&recording).unwrap();
    text.push_str("{\"kind\":\"sample\",\"t_ms\":1000,\"pid\":\"x\"}\n");
    std::fs::write(&recording, text).unwrap();
    let mut cmd = hmn("no_gpus");
    cmd.arg("top").arg("--replay").arg(&recording);
    let mut top = Top::start(cmd, 100, 30);
    let status = top.wait_exit_any();
    assert_eq!(status.code(), Some(2));
    top.wait_for_output("line 5");
    let said = String::from_utf8_lossy(&top.output()).into_owned();
    assert!(said.contains("line 5"), "{said}");
    assert!(said.contains("\"pid\""), "{said}");
    assert!(top.cooked());
}

#[test]
fn r_records_what_top_sees_in_watchs_format_into_the_record_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = hmn("four_gpus");
    cmd.arg("top")
        .arg("--record-dir")
        .arg(dir.path())
        .arg("--interval")
        .arg("100ms");
    let mut top = Top::start(cmd, 120, 40);
    top.wait_for_screen(FOUR_GPUS);
    top.press("R");
    // A few frames, then stop and quit.
    let deadline = Instant::now() + PATIENCE;
    let file = loop {
        let found = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "ndjson"));
        if let Some(file) = found
            && std::fs::read_to_string(&file)
                .unwrap()
                .lines()
                .filter(|l| l.contains("\"kind\":\"device\""))
                .count()
                >= 8
        {
            break file;
        }
        assert!(Instant::now() < deadline, "R wrote no recording");
        std::thread::sleep(Duration::from_millis(50));
    };
    top.press("q");
    assert_eq!(top.wait_exit().code(), Some(0));
    top.assert_restored();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("hmn-top-") && !name.contains(':'),
        "{name}"
    );
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records[0]["kind"], "start");
    assert_eq!(records[0]["format_version"], 2);
    assert_eq!(records[0]["devices"].as_array().unwrap().len(), 4);
    let sample = records.iter().find(|r| r["kind"] == "sample").unwrap();
    assert_eq!(sample["presence"], "listed");
    assert!(sample["used_bytes"].is_u64(), "{sample}");
    // And it plays back.
    let mut cmd = hmn("no_gpus");
    cmd.arg("top").arg("--replay").arg(&file);
    let mut replay = Top::start(cmd, 120, 40);
    replay.wait_for_screen(FOUR_GPUS);
    replay.press("q");
    assert_eq!(replay.wait_exit().code(), Some(0));
}

impl Top {
    /// Waits for the process to end, whatever it wrote.
    fn wait_exit_any(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // What it wrote last reaches the reader thread a moment later.
                std::thread::sleep(Duration::from_millis(300));
                return status;
            }
            assert!(Instant::now() < deadline, "hmn top did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The fleet screen (`hmn top --hosts…|--prometheus…`).

/// A port on this machine nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn a_fleet_that_cannot_be_read_says_why_on_the_screen_and_quits_on_q() {
    let server = format!("http://127.0.0.1:{}", closed_port());
    let mut cmd = hmn("no_gpus");
    cmd.args(["top", "--prometheus", &server, "--interval", "200ms"]);
    let mut top = Top::start(cmd, 120, 30);
    let screen = top.wait_for_screen(&["cannot read the fleet"]);
    assert!(screen.contains("retrying every 200ms"), "{screen}");
    assert!(screen.contains("waiting for the first read"), "{screen}");
    // Read-only, and the footer says why before `k` is pressed.
    assert!(screen.contains("no k: remote processes"), "{screen}");
    top.press("k");
    top.wait_for_screen(&["sends no signals"]);
    top.press("q");
    assert_eq!(top.wait_exit().code(), Some(0));
    top.assert_restored();
}

#[test]
fn a_hostfile_that_cannot_be_read_exits_2_before_the_screen_starts() {
    let out = hmn("no_gpus")
        .args(["top", "--hostfile", "/nonexistent/fleet/hosts.txt"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/fleet/hosts.txt"), "{stderr}");
    assert!(
        !stderr.contains("needs a terminal"),
        "the hostfile is read first: {stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing drawn");
}

#[test]
fn replay_and_a_fleet_cannot_be_combined() {
    let out = hmn("no_gpus")
        .args(["top", "--replay", "rec.ndjson", "--hosts", "node-a:9464"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--hosts"), "{stderr}");
}

/// `hmn serve` on the NVML double playing `scenario`, on a free port; killed when dropped.
struct Serve {
    child: Child,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Serve {
    fn start(scenario: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let stderr = dir.path().join("stderr");
        let mut child = hmn(scenario)
            .args(["serve", "--listen", "127.0.0.1:0", "--interval", "1s"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .expect("start hmn serve");
        let addr = test_support::serve_address(&mut child, &stderr);
        // Listening comes before the first sample: a fleet read in between sees a node with
        // no GPU yet, and the screen would show it until its next read, 5 s later.
        let deadline = Instant::now() + PATIENCE;
        while !test_support::servers::http_get(addr, "/metrics")
            .1
            .contains("hypomnesis_gpu_memory_total_bytes")
        {
            assert!(
                Instant::now() < deadline,
                "hmn serve on {scenario} never published a sample; its stderr:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn hosts_running_hmn_serve_are_listed_one_row_per_node_and_a_node_opens_with_enter() {
    let one = Serve::start("one_gpu");
    let four = Serve::start("four_gpus");
    let dead = format!("127.0.0.1:{}", closed_port());
    let hosts = format!("{},{},{dead}", one.addr, four.addr);
    let mut cmd = hmn("no_gpus");
    cmd.args(["top", "--hosts", &hosts, "--interval", "1s"]);
    let mut top = Top::start(cmd, 160, 40);
    let screen = top.wait_for_screen(&["3 nodes: 2 up"]);
    assert!(screen.contains("1 down"), "{screen}");
    // One row per node: each endpoint's instance is its name.
    for addr in [one.addr.to_string(), four.addr.to_string(), dead.clone()] {
        let row = screen.lines().find(|l| l.starts_with(addr.as_str()));
        assert!(row.is_some(), "no row for {addr}:\n{screen}");
    }
    let row = |addr: &str| {
        screen
            .lines()
            .find(|l| l.starts_with(addr))
            .unwrap()
            .to_owned()
    };
    assert!(row(&four.addr.to_string()).contains(" up "), "{screen}");
    assert!(row(&dead).contains(" down "), "{screen}");
    // Largest free first: the four-GPU node's largest free is listed before the dead node.
    let at = |addr: &str| screen.find(addr).unwrap();
    assert!(at(&four.addr.to_string()) < at(&dead), "{screen}");
    // Open the first row (the selection starts there), then back, then quit.
    top.press("\r");
    let node = top.wait_for_screen(&["Esc back"]);
    assert!(
        node.contains("H100"),
        "the node's GPUs on the local panels:\n{node}"
    );
    top.press("\x1b");
    top.wait_for_screen(&["Enter node"]);
    top.press("q");
    assert_eq!(top.wait_exit().code(), Some(0));
    top.assert_restored();
}

#[test]
fn a_node_in_mig_mode_opens_with_its_instances_under_its_gpu() {
    let mig = Serve::start("mig");
    let mut cmd = hmn("no_gpus");
    cmd.args(["top", "--hosts", &mig.addr.to_string()]);
    let mut top = Top::start(cmd, 160, 48);
    top.wait_for_screen(&["1 node: 1 up"]);
    top.press("\r");
    let node = top.wait_for_screen(&["MIG "]);
    assert!(node.contains("Esc back"), "{node}");
    top.press("q");
    assert_eq!(top.wait_exit().code(), Some(0));
    top.assert_restored();
}

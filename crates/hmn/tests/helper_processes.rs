//! `hmn`'s helper processes (`nvidia-smi`) never outlive their use: not when a one-shot command
//! gives up on a hung one at `--timeout` and ends at once, not when `serve` keeps querying a
//! wrapper that leaves a process behind holding its stdout.
//!
//! Each `hmn` runs with a variable in its environment unique to the test; every process it
//! starts, and everything those start, inherits it, so the processes carrying it are its
//! helpers and their leftovers wherever they were reparented. The stand-in
//! `fixtures/nvidia-smi/bin/nvidia-smi` plays `nvidia-smi` (`hang`: sleeps 30 s first;
//! `linger`: answers, exits, and leaves a `sleep 60` holding its stdout).
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use test_support::{leftover_processes_with_env, processes_with_env};

const TAG: &str = "HYPOMNESIS_TEST_HELPER_TAG";

/// `<dir>/<fixture>/nvidia-smi`, a symlink to the stand-in that replays `fixture`.
fn stand_in(dir: &Path, fixture: &str) -> PathBuf {
    let link = dir.join(fixture).join("nvidia-smi");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(
        test_support::fixtures_dir().join("nvidia-smi/bin/nvidia-smi"),
        &link,
    )
    .unwrap();
    link
}

/// `hmn` with NVML unloadable, `nvidia-smi` replaying `fixture`, no DRM devices, and `tag`.
fn hmn(dir: &Path, fixture: &str, tag: &str) -> Command {
    let sys = dir.join("sys");
    std::fs::create_dir_all(&sys).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hmn"));
    cmd.env("HYPOMNESIS_NVML_LIB", "/nonexistent/libnvidia-ml.so.1")
        .env("HYPOMNESIS_NVIDIA_SMI", stand_in(dir, fixture))
        .env("HYPOMNESIS_SYS_ROOT", sys)
        .env(TAG, tag)
        .stdin(Stdio::null());
    cmd
}

#[test]
fn a_one_shot_command_giving_up_on_a_hung_nvidia_smi_leaves_nothing_running() {
    let dir = tempfile::tempdir().unwrap();
    for (i, args) in [&["--timeout", "1"][..], &["--timeout", "1", "ps"]]
        .iter()
        .enumerate()
    {
        let tag = format!("one-shot-{i}-{}", std::process::id());
        let run_dir = dir.path().join(i.to_string());
        let output = hmn(&run_dir, "hang", &tag).args(*args).output().unwrap();
        let left = leftover_processes_with_env(TAG, &tag);
        assert!(
            left.is_empty(),
            "hmn {args:?} (exit {:?}) left {left:?}; stderr:\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The case: a wrapper leaving a child on its stdout took `serve` from 6 to 14
/// threads in 45 s, and each pass left a process. Now every pass gets its answer when the
/// wrapper exits, and the leftover is killed with it.
#[test]
fn serve_querying_a_wrapper_that_leaves_a_process_on_its_stdout_piles_up_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("serve-{}", std::process::id());
    let mut child = hmn(dir.path(), "linger", &tag)
        .args(["serve", "--listen", "127.0.0.1:0", "--interval", "100ms"])
        .args(["--timeout", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = KillOnDrop(child.id());
    let mut url = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let addr = url
        .trim()
        .strip_prefix("http://")
        .and_then(|u| u.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("hmn serve printed {url:?} instead of its URL"))
        .to_owned();

    wait_for_gpu_figures(&addr);
    let threads_first = threads_of(server.0);
    // Twenty more passes or so, each with two queries.
    std::thread::sleep(Duration::from_secs(2));
    assert!(scrape(&addr).contains("hypomnesis_gpu_memory_total_bytes"));
    assert_eq!(threads_of(server.0), threads_first, "threads piled up");
    // At most the query in flight (and one being killed) has a `sleep` left.
    let sleeps: Vec<_> = processes_with_env(TAG, &tag)
        .into_iter()
        .filter(|(_, cmdline)| cmdline.starts_with("sleep"))
        .collect();
    assert!(sleeps.len() <= 2, "processes piled up: {sleeps:?}");
    drop(server);
    let _ = child.wait();
}

struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.to_string()).status();
    }
}

fn threads_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count()
}

fn scrape(addr: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

/// Waits up to 30 s for a scrape with GPU figures (from `nvidia-smi`).
fn wait_for_gpu_figures(addr: &str) {
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        let body = scrape(addr);
        if body.contains("hypomnesis_gpu_memory_total_bytes") {
            return;
        }
        assert!(
            Instant::now() < give_up,
            "no GPU figures from the nvidia-smi wrapper within 30 s; last scrape:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A service manager stops `serve` with SIGTERM. The `nvidia-smi` in flight runs in its own
/// process group, so the signal does not reach it: `serve` must end it itself, or one hung in
/// the driver outlives the server.
#[test]
fn serve_stopped_by_sigterm_ends_the_hung_nvidia_smi_it_was_waiting_for() {
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("serve-term-{}", std::process::id());
    let mut child = hmn(dir.path(), "hang", &tag)
        .args(["serve", "--listen", "127.0.0.1:0", "--interval", "100ms"])
        .args(["--timeout", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let server = KillOnDrop(child.id());
    let give_up = Instant::now() + Duration::from_secs(30);
    while !processes_with_env(TAG, &tag)
        .iter()
        .any(|(_, cmdline)| cmdline.starts_with("sleep"))
    {
        assert!(
            Instant::now() < give_up,
            "the hung nvidia-smi stand-in never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = Command::new("kill")
        .args(["-TERM", &server.0.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    assert!(stderr.contains("SIGTERM: stopping"), "stderr:\n{stderr}");
    let left = leftover_processes_with_env(TAG, &tag);
    assert!(left.is_empty(), "serve left {left:?}; stderr:\n{stderr}");
}

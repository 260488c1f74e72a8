//! `hmn serve` under pressure, end to end against the NVML double: clients that hold
//! connections open to lock scrapers out, a driver that hangs for the rest of the run (and
//! would flood the log), and the threads the server runs.
//!
//! Every server is stopped by PID when its guard drops, also when a test fails. No test asserts
//! a duration: waits are for events, with generous bounds; the latency budgets under the same
//! attack are measured by `cargo bench -p hmn --bench serve`.
#![cfg(all(target_os = "linux", feature = "serve"))]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A running `hmn serve --listen LISTEN ARGS` on an NVML double scenario, killed (by PID) and
/// reaped on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(listen: &str, scenario: &Path, args: &[&str]) -> Self {
        let lib = test_support::nvml_double_for(scenario).join("libnvidia-ml.so.1");
        let dir = tempfile::tempdir().unwrap();
        let stderr = dir.path().join("stderr");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hmn"))
            .arg("serve")
            .args(["--listen", listen])
            .args(args)
            .env("HYPOMNESIS_NVML_LIB", lib)
            .env("NVML_DOUBLE_SCENARIO", scenario)
            .env("HYPOMNESIS_NVIDIA_SMI", "/nonexistent/nvidia-smi")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let addr = test_support::serve_address(&mut child, &stderr);
        Self {
            child,
            addr,
            stderr,
            _dir: dir,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until a scrape holds `needle`.
    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let body = scrape(self.addr).map(|(_, body)| body).unwrap_or_default();
            if body.contains(needle) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "no scrape held {needle:?}; last:\n{body}\nstderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The value of `series` (name and labels, exactly) in a scrape; 0 when absent.
    fn counter(&self, series: &str) -> u64 {
        scrape(self.addr)
            .map(|(_, body)| body)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    }

    /// The server's threads, as `/proc/<pid>/task` lists them.
    fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.child.id()))
            .unwrap()
            .count()
    }
}

/// One scrape on a new connection (HTTP/1.0: the server closes after answering): the status
/// and the body, or the I/O error that ended it (a reset, a timeout).
fn scrape(addr: SocketAddr) -> std::io::Result<(u16, String)> {
    scrape_counting_retransmissions(addr).map(|(status, body, _)| (status, body))
}

/// [`scrape`], and how many TCP segments the client had to send again (`tcpi_total_retrans`):
/// a connection attempt the server's kernel dropped costs a retransmission after a second.
fn scrape_counting_retransmissions(addr: SocketAddr) -> std::io::Result<(u16, String, u32)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned(), retransmissions(&stream)))
}

fn retransmissions(stream: &TcpStream) -> u32 {
    use std::os::fd::AsRawFd;
    // SAFETY: all-zero bytes are a valid `tcp_info` (integers only).
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the fd is open for the life of `stream`; `info` and `len` are valid for writes
    // and `len` says how large `info` is.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &raw mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    info.tcpi_total_retrans
}

// ---------------------------------------------------------------------------------------------
// Connection exhaustion

/// 150 idle and 150 slowloris clients, each reconnecting as soon as it is cut, hold far more
/// connections than the server allows (128). A scraper that sends its request at once must
/// still be answered: at least 99 % of its scrapes get a 200 (before, every one got 503), and
/// at most 1 % have to retry their connection (with the kernel's default accept queue, the
/// reconnecting clients kept it full and scrapers' connection attempts were dropped).
#[test]
fn a_scraper_keeps_being_answered_while_300_idle_and_slow_clients_hold_the_port() {
    let server = Server::start(
        "127.0.0.1:0",
        &test_support::nvml_scenario("one_gpu"),
        &["--interval", "1s"],
    );
    server.wait_for("hypomnesis_gpu_memory_used_bytes{");
    let stop = AtomicBool::new(false);
    let connected = AtomicUsize::new(0);
    let (ok, retried, failures) = std::thread::scope(|s| {
        for i in 0..300 {
            let (stop, connected) = (&stop, &connected);
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn_scoped(s, move || {
                    test_support::hold_connections_open(server.addr, i % 2 == 1, stop, connected)
                })
                .unwrap();
        }
        // Every attacker has connected, and the cap has been passed by hundreds of connections.
        let deadline = Instant::now() + Duration::from_secs(60);
        while connected.load(Ordering::Relaxed) < 600 {
            assert!(Instant::now() < deadline, "the attackers never got going");
            std::thread::sleep(Duration::from_millis(10));
        }
        let (mut ok, mut retried) = (0, 0);
        let mut failures = Vec::new();
        for _ in 0..300 {
            match scrape_counting_retransmissions(server.addr) {
                Ok((200, body, retransmitted))
                    if body.contains("hypomnesis_gpu_memory_used_bytes{") =>
                {
                    ok += 1;
                    retried += usize::from(retransmitted > 0);
                }
                Ok((status, _, _)) => failures.push(format!("status {status}")),
                Err(e) => failures.push(e.to_string()),
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        failures.truncate(10);
        (ok, retried, failures)
    });
    eprintln!(
        "{ok} of 300 scrapes answered ({retried} after a retransmission) while attackers made {} \
         connections; the first failures: {failures:?}",
        connected.load(Ordering::Relaxed)
    );
    assert!(
        ok >= 297,
        "only {ok} of 300 scrapes answered, the first failures: {failures:?}\nstderr:\n{}",
        server.stderr()
    );
    assert!(
        retried <= 3,
        "{retried} of 300 scrapes had to retransmit: the accept queue overflowed"
    );
    // The server is still whole afterwards.
    assert_eq!(scrape(server.addr).unwrap().0, 200);
}

// ---------------------------------------------------------------------------------------------
// Log floods

/// A driver that hangs mid-run and stays hung: the memory query sleeps 60 s from 1 s after
/// init, `--timeout 1` abandons it, and every later pass fails at once with an error whose
/// text carries how long the driver has been stuck. The failure is logged when it begins, not
/// once per pass (before: a new line every tick, as the text changed each time).
#[test]
fn a_driver_that_stays_hung_is_logged_once_not_at_every_tick() {
    let hung =
        test_support::nvml_scenario_variant("one_gpu", "serve_pressure_hangs_mid_run", |s| {
            s["description"] = serde_json::json!("one_gpu whose memory query hangs after 1 s");
            s["devices"][0]["delays_ms"] =
                serde_json::json!({ "nvmlDeviceGetMemoryInfo_v2": 60_000 });
            s["devices"][0]["delays_from_ms"] = serde_json::json!(1_000);
        });
    let server = Server::start(
        "127.0.0.1:0",
        &hung,
        &["--interval", "200ms", "--timeout", "1"],
    );
    server.wait_for("hypomnesis_gpu_memory_used_bytes{");
    // Twenty failed passes (a pass every 200 ms: about 4 s, before the first reminder is due
    // at 10 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.counter("hypomnesis_sample_errors_total{backend=\"nvml\"}") < 20 {
        assert!(
            Instant::now() < deadline,
            "the failures were not counted: {}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let stderr = server.stderr();
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("hmn: sampling"))
        .collect();
    // The pass that hung (its stuck tick and its end), the processes query it abandoned, and
    // the devices query that fails on every pass since: each said once.
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("hmn: sampling GPU devices failed"))
            .count(),
        1,
        "{stderr}"
    );
    assert!(lines.len() <= 4, "{} lines: {stderr}", lines.len());
}

// ---------------------------------------------------------------------------------------------
// Threads and addresses

/// The threads `hmn serve` runs, as the docs list them: main (the HTTP server), the library's
/// monitor, the follower that encodes its frames, and the worker that makes NVML calls so a
/// hung one can be abandoned.
#[test]
fn serve_runs_the_four_threads_the_docs_list() {
    let server = Server::start(
        "127.0.0.1:0",
        &test_support::nvml_scenario("one_gpu"),
        &["--interval", "200ms"],
    );
    server.wait_for("hypomnesis_gpu_memory_used_bytes{");
    for _ in 0..50 {
        assert_eq!(scrape(server.addr).unwrap().0, 200);
    }
    assert_eq!(server.threads(), 4, "{}", server.stderr());
}

/// `[::ffff:127.0.0.1]` is IPv4 loopback written as IPv6: reachable from this machine only, so
/// no warning (before, it warned as if public).
#[test]
fn an_ipv4_mapped_loopback_address_is_served_without_a_warning() {
    let server = Server::start(
        "[::ffff:127.0.0.1]:0",
        &test_support::nvml_scenario("one_gpu"),
        &[],
    );
    server.wait_for("hypomnesis_gpu_memory_used_bytes{");
    let stderr = server.stderr();
    assert!(!stderr.contains("warning"), "{stderr}");
}

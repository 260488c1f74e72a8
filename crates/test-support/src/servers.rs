//! Exporters and a real Prometheus for end-to-end tests and benches of the fleet views:
//! `hmn serve` processes on the NVML double ([`Serve`]), endpoints serving a canned `/metrics`
//! body or never answering ([`Canned`], [`Silent`]), and Debian's Prometheus scraping them
//! through a `file_sd` target file ([`Prometheus`]).
//!
//! Every process started here is killed by PID and reaped when its guard drops, also when a
//! test fails; every in-process endpoint stops when its guard drops.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A fixture `/proc` for `hmn serve`: fixed `meminfo` (64000 MiB total, 32000 MiB available),
/// a root cgroup, and a `comm` for each of `pids` (`proc<pid>`).
pub struct FakeProc {
    pub dir: tempfile::TempDir,
}

/// `FakeProc`'s `MemTotal` and `MemAvailable`, bytes.
pub const FAKE_HOST_TOTAL_BYTES: u64 = 65_536_000 * 1024;
pub const FAKE_HOST_AVAILABLE_BYTES: u64 = 32_768_000 * 1024;

impl FakeProc {
    pub fn new(pids: &[u64]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let root = dir.path();
        let write = |path: PathBuf, text: String| {
            std::fs::write(&path, text)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()))
        };
        write(
            root.join("meminfo"),
            format!(
                "MemTotal:       {} kB\nMemFree:        1000000 kB\nMemAvailable:   {} kB\n\
                 SwapTotal:      0 kB\nSwapFree:       0 kB\n",
                FAKE_HOST_TOTAL_BYTES / 1024,
                FAKE_HOST_AVAILABLE_BYTES / 1024
            ),
        );
        std::fs::create_dir_all(root.join("self")).expect("self");
        write(root.join("self/cgroup"), "0::/\n".into());
        write(root.join("self/statm"), "1000 500 100 10 0 400 0\n".into());
        for pid in pids {
            let p = root.join(pid.to_string());
            std::fs::create_dir_all(&p).expect("pid dir");
            write(p.join("comm"), format!("proc{pid}\n"));
            write(p.join("cmdline"), format!("proc{pid}\0"));
            write(
                p.join("status"),
                format!("Name:\tproc{pid}\nTgid:\t{pid}\nPid:\t{pid}\nUid:\t0\t0\t0\t0\n"),
            );
        }
        Self { dir }
    }
}

/// Every pid of every device of an NVML scenario (compute and graphics), sorted, once each.
pub fn scenario_pids(scenario: &Value) -> Vec<u64> {
    let mut pids: Vec<u64> = scenario["devices"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|d| {
            ["compute_processes", "graphics_processes"]
                .iter()
                .flat_map(|l| d[*l].as_array().cloned().unwrap_or_default())
                .collect::<Vec<_>>()
        })
        .filter_map(|p| p["pid"].as_u64())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// A running `hmn serve` on the NVML double, killed (by PID) and reaped on drop.
pub struct Serve {
    child: Child,
    pub addr: SocketAddr,
    stderr: PathBuf,
    _proc: FakeProc,
    _dir: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// `HMN serve --listen 127.0.0.1:0 ARGS` on NVML scenario `name` (in `fixtures/nvml`),
    /// with a [`FakeProc`] naming its processes; returns once it listens. `hmn` is the binary
    /// (`env!("CARGO_BIN_EXE_hmn")` in hmn's tests).
    pub fn start(hmn: &Path, name: &str, args: &[&str]) -> Self {
        let path = crate::nvml_scenario(name);
        let declared: Value = serde_json::from_str(
            &std::fs::read_to_string(&path).expect("the scenario is readable"),
        )
        .expect("the scenario is JSON");
        let lib = crate::nvml_double_for(&path).join("libnvidia-ml.so.1");
        let fake = FakeProc::new(&scenario_pids(&declared));
        let dir = tempfile::tempdir().expect("a temporary directory");
        let stderr = dir.path().join("stderr");
        let mut child = Command::new(hmn)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("HYPOMNESIS_NVML_LIB", lib)
            .env("NVML_DOUBLE_SCENARIO", &path)
            .env("HYPOMNESIS_NVIDIA_SMI", "/nonexistent/nvidia-smi")
            .env("HYPOMNESIS_PROC_ROOT", fake.dir.path())
            .env("HYPOMNESIS_SYS_ROOT", fake.dir.path().join("sys"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", hmn.display()));
        let addr = crate::serve_address(&mut child, &stderr);
        Self {
            child,
            addr,
            stderr,
            _proc: fake,
            _dir: dir,
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until a scrape holds `needle` (the first sample has been published); returns it.
    pub fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, body) = http_get(self.addr, "/metrics");
            if body.contains(needle) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "no scrape of {} held {needle:?}; last:\n{body}\nstderr:\n{}",
                self.addr,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `GET path` over HTTP/1.0 from `addr`: the status and the body (`(0, "")` when the
/// exchange failed).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let exchange = || -> std::io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf)?;
        Ok(buf)
    };
    let Ok(raw) = exchange() else {
        return (0, String::new());
    };
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

/// Percent-encodes `text` for a URL query value.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An in-process endpoint answering every request with one canned `/metrics` body (the
/// Prometheus text format), on its own thread; stops on drop.
pub struct Canned {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Canned {
    pub fn start(body: Arc<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("its address");
        listener.set_nonblocking(true).expect("non-blocking");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => answer(stream, &body),
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Self { addr, stop }
    }
}

impl Drop for Canned {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads one request head from `stream` and answers it with `body`, then closes.
fn answer(mut stream: TcpStream, body: &str) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0_u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes());
}

/// A port that accepts connections (the kernel's backlog does) and never answers: a hung
/// node. Held until drop.
pub struct Silent {
    pub addr: SocketAddr,
    _listener: TcpListener,
}

impl Silent {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        Self {
            addr: listener.local_addr().expect("its address"),
            _listener: listener,
        }
    }
}

/// A `file_sd` target file's JSON: one group per target, with its labels.
pub fn file_sd(targets: &[(SocketAddr, BTreeMap<String, String>)]) -> String {
    let groups: Vec<Value> = targets
        .iter()
        .map(
            |(addr, labels)| serde_json::json!({ "targets": [addr.to_string()], "labels": labels }),
        )
        .collect();
    Value::Array(groups).to_string()
}

fn loud(lines: &[&str]) -> String {
    let bar = "!".repeat(76);
    let body: Vec<String> = lines.iter().map(|l| format!("!!! {l}")).collect();
    format!("\n{bar}\n{}\n{bar}", body.join("\n"))
}

/// Debian's Prometheus server, unpacked (not installed) under `<workspace>/target/
/// prometheus-debian` by `scripts/fetch-prometheus-debian.sh` on first use (later runs reuse
/// it). When it cannot be had this panics, loudly: a test that needs it must never pass
/// without it.
pub fn prometheus_binary() -> PathBuf {
    let workspace = crate::workspace_root();
    let script = workspace.join("scripts/fetch-prometheus-debian.sh");
    let dest = workspace.join("target/prometheus-debian");
    let output = Command::new("bash")
        .arg(&script)
        .arg(&dest)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}\n{stdout}{}",
        loud(&[
            "Debian's prometheus package could not be fetched: the real-Prometheus test cannot \
             run.",
            &format!(
                "{} {} exited with {}; it needs apt-get, dpkg-deb and the Debian archive \
                 (HYPOMNESIS_DEBIAN_MIRROR names another mirror). Its output:",
                script.display(),
                dest.display(),
                output.status
            ),
        ]),
        String::from_utf8_lossy(&output.stderr),
    );
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("PROMETHEUS="))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no PROMETHEUS= line in the script's output:\n{stdout}"))
}

/// A loopback port free now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A real Prometheus scraping the targets of a `file_sd` file every second, killed (by PID)
/// and reaped on drop.
pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts `binary` with job `hmn` scraping `targets` (written to `targets.json`, a
    /// `file_sd` file) every second; returns once it is ready.
    pub fn start(binary: &Path, targets: &[(SocketAddr, BTreeMap<String, String>)]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let targets_file = dir.path().join("targets.json");
        std::fs::write(&targets_file, file_sd(targets)).expect("targets.json");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: hmn\n    file_sd_configs:\n      - files: [\"{}\"]\n",
                targets_file.display()
            ),
        )
        .expect("prometheus.yml");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("an address");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.err")).expect("log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let prometheus = Self { child, addr, dir };
        prometheus.wait("Prometheus is ready", |p| {
            http_get(p.addr, "/-/ready").0 == 200
        });
        prometheus
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `file_sd` file it reads (a `--hostfile` for the same targets).
    pub fn targets_file(&self) -> PathBuf {
        self.dir.path().join("targets.json")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.err")).unwrap_or_default()
    }

    /// A `GET` of its HTTP API, as JSON; fails the test on another status than 200.
    pub fn api(&self, path_and_query: &str) -> Value {
        let (status, body) = http_get(self.addr, path_and_query);
        assert_eq!(status, 200, "{path_and_query}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path_and_query}: {e}: {body}"))
    }

    /// The result vector of the instant query `expr`.
    pub fn query(&self, expr: &str) -> Vec<Value> {
        self.api(&format!("/api/v1/query?query={}", percent_encode(expr)))["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits (up to 90 s) until `done`; fails the test with Prometheus's log otherwise.
    pub fn wait(&self, what: &str, done: impl Fn(&Prometheus) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: not within 90 s; Prometheus's log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Waits until every one of `n` targets is up.
    pub fn wait_for_targets_up(&self, n: usize) {
        self.wait(&format!("{n} targets up"), |p| {
            let targets = p.api("/api/v1/targets");
            let active = targets["data"]["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            active.len() == n && active.iter().all(|t| t["health"] == "up")
        });
    }
}

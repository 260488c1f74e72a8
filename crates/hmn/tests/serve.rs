//! `hmn serve` end to end: the real binary on a loopback port, against the NVML double (or a
//! DRM fixture tree) and a fixture `/proc`, read by a plain HTTP client, by the reference
//! OpenMetrics parser (`prometheus-client` from the Python package index), by a real
//! Prometheus and linted by its `promtool` (Debian's, unpacked under `target/` by
//! `scripts/fetch-prometheus-debian.sh`).
//!
//! Every server and Prometheus started here is stopped by PID when its guard drops, also when
//! a test fails. No test asserts a duration: waits are for events, with generous bounds.
#![cfg(all(target_os = "linux", feature = "serve"))]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../../../fixtures/drm/tree.rs"]
mod tree;

// ---------------------------------------------------------------------------------------------
// Fixtures and the server under test

/// A fixture `/proc`: fixed `meminfo`, a root cgroup, and names for two pids of a scenario
/// (a CJK name, and one that needs escaping in a label value).
struct FakeProc {
    dir: tempfile::TempDir,
}

impl FakeProc {
    fn new(named: &[u64]) -> Self {
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
        let names = [
            ("训练脚本", "python3 train.py"),
            ("say \"hi\" \\ now", "/opt/say"),
        ];
        for (pid, (comm, cmdline)) in named.iter().zip(names) {
            let p = root.join(pid.to_string());
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("comm"), format!("{comm}\n")).unwrap();
            std::fs::write(p.join("cmdline"), cmdline.replace(' ', "\0") + "\0").unwrap();
            std::fs::write(
                p.join("status"),
                format!("Name:\t{comm}\nTgid:\t{pid}\nPid:\t{pid}\nUid:\t0\t0\t0\t0\n"),
            )
            .unwrap();
        }
        Self { dir }
    }
}

fn scenario(name: &str) -> (PathBuf, Value) {
    let path = test_support::nvml_scenario(name);
    let declared = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    (path, declared)
}

/// A running `hmn serve`, killed (by PID) and reaped on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: PathBuf,
    _fake: FakeProc,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `hmn serve --listen 127.0.0.1:0 ARGS` on scenario `name`; returns once it listens (its
    /// first stdout line is the metrics URL).
    fn start(name: &str, args: &[&str]) -> Self {
        Self::start_with(name, args, |_| {})
    }

    fn start_with(name: &str, args: &[&str], env: impl FnOnce(&mut Command)) -> Self {
        Self::start_on("127.0.0.1:0", name, args, env)
    }

    fn start_on(listen: &str, name: &str, args: &[&str], env: impl FnOnce(&mut Command)) -> Self {
        let (path, declared) = scenario(name);
        let lib = test_support::nvml_double_for(&path).join("libnvidia-ml.so.1");
        let mut pids: Vec<u64> = ["compute_processes", "graphics_processes"]
            .iter()
            .flat_map(|l| {
                declared["devices"][0][*l]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|p| p["pid"].as_u64())
            .collect();
        pids.sort_unstable();
        pids.dedup();
        let fake = FakeProc::new(&pids);
        let dir = tempfile::tempdir().unwrap();
        let stderr = dir.path().join("stderr");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hmn"));
        cmd.arg("serve")
            .args(["--listen", listen])
            .args(args)
            .env("HYPOMNESIS_NVML_LIB", lib)
            .env("NVML_DOUBLE_SCENARIO", &path)
            .env("HYPOMNESIS_NVIDIA_SMI", "/nonexistent/nvidia-smi")
            .env("HYPOMNESIS_PROC_ROOT", fake.dir.path())
            .env("HYPOMNESIS_SYS_ROOT", fake.dir.path().join("sys"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap());
        env(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let addr = test_support::serve_address(&mut child, &stderr);
        Self {
            child,
            addr,
            stderr,
            _fake: fake,
            _dir: dir,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn get(&self, path: &str, accept: Option<&str>) -> Reply {
        get(self.addr, path, accept)
    }

    /// Waits until a scrape holds `needle` (the first sampling pass has been published).
    fn wait_for(&self, needle: &str) -> Reply {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let reply = self.get("/metrics", None);
            if reply.body.contains(needle) {
                return reply;
            }
            assert!(
                Instant::now() < deadline,
                "no scrape held {needle:?}; last:\n{}\nstderr:\n{}",
                reply.body,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `VmRSS` and `Threads` of the server, from `/proc/<pid>/status`.
    fn rss_and_threads(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in status"))
        };
        (field("VmRSS:") * 1024, field("Threads:"))
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.0 client (the server closes after each answer), and raw sockets for abuse

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

fn exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.write_all(request)?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf)?;
    Ok(buf)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

fn get(addr: SocketAddr, path: &str, accept: Option<&str>) -> Reply {
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n{accept}\r\n");
    parse_reply(&exchange(addr, request.as_bytes()).unwrap())
}

/// The value of the series whose line starts with `series ` (name and labels, exactly).
fn value_of(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

const OPENMETRICS: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

// ---------------------------------------------------------------------------------------------
// What it serves

#[test]
fn metrics_carry_the_scenario_figures_in_both_formats() {
    let (_, declared) = scenario("one_gpu");
    let memory = &declared["devices"][0]["memory"];
    let server = Server::start("one_gpu", &["--interval", "1s"]);
    let text = server.wait_for("hypomnesis_gpu_memory_used_bytes{");
    assert_eq!(text.status, 200);
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let labels = r#"{gpu="0",uuid="GPU-5a5c4d1e-1f9b-4a7d-9c1e-2b3f4a5b6c7d",name="NVIDIA H100 80GB HBM3",vendor="nvidia"}"#;
    for (field, metric) in [
        ("used", "hypomnesis_gpu_memory_used_bytes"),
        ("total", "hypomnesis_gpu_memory_total_bytes"),
        ("free", "hypomnesis_gpu_memory_free_bytes"),
        ("reserved", "hypomnesis_gpu_memory_reserved_bytes"),
    ] {
        assert_eq!(
            value_of(&text.body, &format!("{metric}{labels}")),
            memory[field].as_f64(),
            "{metric}\n{}",
            text.body
        );
    }
    // Names come from the fixture /proc, escaped in the label value.
    assert_eq!(
        value_of(
            &text.body,
            r#"hypomnesis_gpu_process_memory_bytes{gpu="0",pid="4011345",process="训练脚本",user="root",kind="compute"}"#
        ),
        Some(16_452_157_440.0),
        "{}",
        text.body
    );
    assert!(
        text.body
            .contains(r#"process="say \"hi\" \\ now",user="root",kind="compute_and_graphics"}"#),
        "{}",
        text.body
    );
    assert_eq!(
        value_of(&text.body, "hypomnesis_host_memory_total_bytes"),
        Some(65_536_000.0 * 1024.0)
    );
    assert!(!text.body.contains("# EOF"));

    let om = server.get("/metrics", Some(OPENMETRICS));
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(om.body.ends_with("# EOF\n"));
    assert!(
        om.body
            .contains("# UNIT hypomnesis_gpu_memory_used_bytes bytes\n")
    );
    assert_eq!(
        value_of(
            &om.body,
            &format!("hypomnesis_gpu_memory_used_bytes{labels}")
        ),
        memory["used"].as_f64()
    );

    let health = server.get("/healthz", None);
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    assert_eq!(server.get("/", None).status, 404);
    assert_eq!(server.get("/metrics/../x", None).status, 404);
    let post = parse_reply(
        &exchange(
            server.addr,
            b"POST /metrics HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello",
        )
        .unwrap(),
    );
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    let head = parse_reply(&exchange(server.addr, b"HEAD /metrics HTTP/1.0\r\n\r\n").unwrap());
    assert_eq!((head.status, head.body.as_str()), (200, ""));
}

/// The `telemetry` scenario with per-process utilization samples every 100 ms for five minutes
/// (python3 80 %, llama-server 12 %), so that every frame has new samples for both: the
/// scenario's own four samples are all taken by the first frame, and later frames rightly show
/// no figure for processes without a new sample.
fn steady_telemetry_scenario() -> PathBuf {
    test_support::nvml_scenario_variant("telemetry", "serve_steady_process_utilization", |s| {
        s["description"] = serde_json::json!(
            "telemetry whose two processes keep the SMs 80 % and 12 % busy, sampled every 100 ms"
        );
        s["devices"][0]["process_utilization"] = (1..=3_000_u64)
            .flat_map(|i| {
                [
                    serde_json::json!({"pid": 4_014_001, "timestamp": i * 100_000, "sm_util": 80}),
                    serde_json::json!({"pid": 4_014_002, "timestamp": i * 100_000 + 1, "sm_util": 12}),
                ]
            })
            .collect();
    })
}

/// `hmn serve` on [`steady_telemetry_scenario`].
fn steady_telemetry_server(args: &[&str]) -> Server {
    let steady = steady_telemetry_scenario();
    let lib = test_support::nvml_double_for(&steady).join("libnvidia-ml.so.1");
    Server::start_with("telemetry", args, |cmd| {
        cmd.env("HYPOMNESIS_NVML_LIB", &lib)
            .env("NVML_DOUBLE_SCENARIO", &steady);
    })
}

#[test]
fn telemetry_is_exported_per_device_and_per_process_as_the_scenario_declares() {
    let (_, declared) = scenario("telemetry");
    let server = steady_telemetry_server(&["--interval", "1s"]);
    let reply = server.wait_for("hypomnesis_gpu_process_sm_utilization_ratio{");
    let body = &reply.body;
    let h100 = &declared["devices"][0];
    let l4 = &declared["devices"][1];
    let f = |v: &Value| v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    let h100_labels = r#"{gpu="0",uuid="GPU-5a5c4d1e-1f9b-4a7d-9c1e-2b3f4a5b6c7d",name="NVIDIA H100 80GB HBM3",vendor="nvidia"}"#;
    let l4_labels = r#"{gpu="1",uuid="GPU-0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",name="NVIDIA L4",vendor="nvidia"}"#;
    for (family, expected) in [
        (
            "hypomnesis_gpu_utilization_ratio",
            f(&h100["utilization"]["gpu"]) / 100.0,
        ),
        (
            "hypomnesis_gpu_memory_bandwidth_utilization_ratio",
            f(&h100["utilization"]["memory"]) / 100.0,
        ),
        (
            "hypomnesis_gpu_encoder_utilization_ratio",
            f(&h100["encoder"]) / 100.0,
        ),
        (
            "hypomnesis_gpu_decoder_utilization_ratio",
            f(&h100["decoder"]) / 100.0,
        ),
        (
            "hypomnesis_gpu_temperature_celsius",
            f(&h100["temperature"]),
        ),
        (
            "hypomnesis_gpu_power_watts",
            f(&h100["power_usage_mw"]) / 1000.0,
        ),
        (
            "hypomnesis_gpu_power_limit_watts",
            f(&h100["power_limit_mw"]) / 1000.0,
        ),
        (
            "hypomnesis_gpu_sm_clock_hertz",
            f(&h100["clocks"]["graphics"]) * 1e6,
        ),
        (
            "hypomnesis_gpu_memory_clock_hertz",
            f(&h100["clocks"]["memory"]) * 1e6,
        ),
        (
            "hypomnesis_gpu_pcie_link_generation",
            f(&h100["pcie"]["generation"]),
        ),
        ("hypomnesis_gpu_pcie_link_width", f(&h100["pcie"]["width"])),
    ] {
        assert_eq!(
            value_of(body, &format!("{family}{h100_labels}")),
            Some(expected),
            "{family}\n{body}"
        );
    }
    // What a device lacks has no series: the H100 has no fan; the L4 no enforced power limit,
    // and its encoder query is refused.
    assert_eq!(
        value_of(body, &format!("hypomnesis_gpu_fan_speed_ratio{l4_labels}")),
        Some(f(&l4["fan_speed"]) / 100.0)
    );
    for absent in [
        format!("hypomnesis_gpu_fan_speed_ratio{h100_labels}"),
        format!("hypomnesis_gpu_power_limit_watts{l4_labels}"),
        format!("hypomnesis_gpu_encoder_utilization_ratio{l4_labels}"),
    ] {
        assert!(!body.contains(&absent), "{absent}\n{body}");
    }
    assert_eq!(
        value_of(
            body,
            r#"hypomnesis_gpu_process_sm_utilization_ratio{gpu="0",pid="4014001",process="训练脚本",user="root",kind="compute"}"#
        ),
        Some(0.8),
        "{body}"
    );
    assert_eq!(
        value_of(
            body,
            r#"hypomnesis_gpu_process_sm_utilization_ratio{gpu="0",pid="4014002",process="say \"hi\" \\ now",user="root",kind="compute"}"#
        ),
        Some(0.12),
        "{body}"
    );
    assert_eq!(
        value_of(body, "hypomnesis_sample_interval_seconds"),
        Some(1.0)
    );
    assert!(value_of(body, "hypomnesis_sample_age_seconds").is_some());

    let om = server.get("/metrics", Some(OPENMETRICS)).body;
    assert!(
        om.contains("# UNIT hypomnesis_gpu_power_watts watts\n"),
        "{om}"
    );
    assert!(
        om.contains("# UNIT hypomnesis_gpu_sm_clock_hertz hertz\n"),
        "{om}"
    );
    assert!(
        om.contains("# UNIT hypomnesis_gpu_utilization_ratio ratio\n"),
        "{om}"
    );
}

/// [`tree::telemetry_tree`] (four DRM GPUs with sysfs and hwmon figures) with a host
/// `meminfo`, and the environment that points `hmn serve` at it and NVIDIA's backends at
/// nothing.
fn drm_telemetry_tree() -> tree::DrmTree {
    let tree = tree::telemetry_tree();
    std::fs::write(
        tree.proc().join("meminfo"),
        "MemTotal:       65536000 kB\nMemFree:        1000000 kB\nMemAvailable:   32768000 kB\n",
    )
    .unwrap();
    tree
}

fn on_drm_tree(cmd: &mut Command, tree: &tree::DrmTree) {
    cmd.env("HYPOMNESIS_SYS_ROOT", tree.sys())
        .env("HYPOMNESIS_PROC_ROOT", tree.proc())
        .env("HYPOMNESIS_NVML_LIB", "/nonexistent/libnvidia-ml.so.1");
}

/// The value of the first series of `family` whose labels contain `labels`.
fn value_where(body: &str, family: &str, labels: &str) -> Option<f64> {
    body.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains(labels))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn drm_telemetry_is_exported_from_sysfs_and_hwmon() {
    let tree = drm_telemetry_tree();
    let server = Server::start_with("one_gpu", &["--interval", "1s"], |cmd| {
        on_drm_tree(cmd, &tree);
    });
    let body = server.wait_for("hypomnesis_gpu_temperature_celsius{").body;
    let amd = r#"name="AMD Radeon RX 7900 XTX",vendor="amd""#;
    for (family, expected) in [
        ("hypomnesis_gpu_utilization_ratio", 0.37),
        ("hypomnesis_gpu_memory_bandwidth_utilization_ratio", 0.12),
        ("hypomnesis_gpu_temperature_celsius", 45.0),
        ("hypomnesis_gpu_power_watts", 212.0),
        ("hypomnesis_gpu_power_limit_watts", 303.0),
        ("hypomnesis_gpu_sm_clock_hertz", 2_482e6),
        ("hypomnesis_gpu_memory_clock_hertz", 1_250e6),
        ("hypomnesis_gpu_fan_speed_ratio", 0.4),
        ("hypomnesis_gpu_pcie_link_generation", 4.0),
        ("hypomnesis_gpu_pcie_link_width", 16.0),
    ] {
        assert_eq!(
            value_where(&body, family, amd),
            Some(expected),
            "{family}\n{body}"
        );
    }
    // The APU (GPU 3) has no power cap and no fan; DRM has no per-process utilization.
    let apu = r#"{gpu="3","#;
    assert_eq!(
        value_where(&body, "hypomnesis_gpu_temperature_celsius", apu),
        Some(52.0),
        "{body}"
    );
    assert_eq!(
        value_where(&body, "hypomnesis_gpu_power_limit_watts", apu),
        None
    );
    assert_eq!(
        value_where(&body, "hypomnesis_gpu_fan_speed_ratio", apu),
        None
    );
    assert!(
        !body.contains("hypomnesis_gpu_process_sm_utilization"),
        "{body}"
    );
}

#[test]
fn no_processes_leaves_process_names_out() {
    let server = Server::start("one_gpu", &["--interval", "1s", "--no-processes"]);
    let reply = server.wait_for("hypomnesis_gpu_memory_used_bytes{");
    assert!(!reply.body.contains("hypomnesis_gpu_process"));
    assert!(!reply.body.contains("训练脚本"));
    assert!(server.stderr().contains("process metrics off"));
}

#[test]
fn device_flag_exports_one_gpu() {
    let server = Server::start("four_gpus", &["--interval", "1s", "--device", "2"]);
    let reply = server.wait_for("hypomnesis_gpu_memory_used_bytes{");
    assert!(
        reply
            .body
            .contains("hypomnesis_gpu_memory_used_bytes{gpu=\"2\"")
    );
    assert!(!reply.body.contains("{gpu=\"0\""), "{}", reply.body);
    assert!(!reply.body.contains("{gpu=\"3\""), "{}", reply.body);
}

#[test]
fn no_gpu_source_still_serves_host_memory_and_counts_the_failure() {
    let server = Server::start_with("one_gpu", &["--interval", "200ms"], |cmd| {
        cmd.env("HYPOMNESIS_NVML_LIB", "/nonexistent/libnvidia-ml.so.1");
    });
    // The series is there at 0 from the start; the pass that publishes the host has counted.
    let reply = server.wait_for("hypomnesis_host_memory_total_bytes 67108864000");
    assert!(
        !reply
            .body
            .contains("hypomnesis_sample_errors_total{backend=\"gpu\"} 0\n")
    );
    assert!(!reply.body.contains("hypomnesis_gpu_memory"));
    // Logged once, with the reasons, however many passes fail.
    server.wait_for("hypomnesis_sample_errors_total{backend=\"gpu\"} 3");
    let stderr = server.stderr();
    assert_eq!(
        stderr.matches("sampling GPU devices failed").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("libnvidia-ml.so.1"), "{stderr}");
}

/// Processes are scanned in every frame (`--interval` is the monitor's interval, and its
/// process scan runs at every tick): a process series is never older than the device series
/// beside it. The double's gpu_burn grows by 1 GiB every 300 ms, and the device's `used` with
/// it; in every scrape the process figure has grown at least as much as the device figure. A
/// scan every few ticks (the library monitor's default) would show a device that grew under
/// a process that did not.
#[test]
fn process_series_are_as_fresh_as_the_device_series_in_every_scrape() {
    const GIB: u64 = 1 << 30;
    let (_, declared) = scenario("one_gpu");
    let used0 = declared["devices"][0]["memory"]["used"].as_u64().unwrap();
    let held0 = declared["devices"][0]["compute_processes"][0]["used_gpu_memory"]
        .as_u64()
        .unwrap();
    let growing = test_support::nvml_scenario_variant("one_gpu", "serve_growing_process", |s| {
        s["description"] = serde_json::json!("one_gpu whose gpu_burn grows by 1 GiB every 300 ms");
        s["devices"][0]["compute_processes"][0]["used_gpu_memory_steps"] = (1..=12_u64)
            .map(|i| serde_json::json!([i * 300, held0 + i * GIB]))
            .collect();
    });
    let lib = test_support::nvml_double_for(&growing).join("libnvidia-ml.so.1");
    let server = Server::start_with("one_gpu", &["--interval", "100ms"], |cmd| {
        cmd.env("HYPOMNESIS_NVML_LIB", &lib)
            .env("NVML_DOUBLE_SCENARIO", &growing);
    });
    let device = r#"hypomnesis_gpu_memory_used_bytes{gpu="0",uuid="GPU-5a5c4d1e-1f9b-4a7d-9c1e-2b3f4a5b6c7d",name="NVIDIA H100 80GB HBM3",vendor="nvidia"}"#;
    let process = r#"hypomnesis_gpu_process_memory_bytes{gpu="0",pid="4011345",process="训练脚本",user="root",kind="compute"}"#;
    server.wait_for(process);
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 8 {
        assert!(
            Instant::now() < deadline,
            "the device grew to only {} figures: {seen:?}",
            seen.len()
        );
        let body = server.get("/metrics", None).body;
        let (Some(used), Some(held)) = (value_of(&body, device), value_of(&body, process)) else {
            panic!("a scrape without the device or the process:\n{body}");
        };
        let (used, held) = (used as u64, held as u64);
        assert!(
            held - held0 >= used - used0,
            "the device grew by {} bytes but the process only by {}: its scan is older than \
             the device's figures\n{body}",
            used - used0,
            held - held0
        );
        seen.insert(used);
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The nvidia-smi fallback hangs (a wedged driver): scrapes keep answering at once, the sample
/// age grows and missed ticks are counted. The stand-in exits when hmn does.
#[test]
fn a_hung_backend_shows_as_stale_not_as_a_hung_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let smi = dir.path().join("nvidia-smi");
    std::fs::write(
        &smi,
        "#!/bin/sh\n# A wedged nvidia-smi: never answers; gone when its parent is.\nwhile kill -0 $PPID 2>/dev/null; do sleep 0.1; done\n",
    )
    .unwrap();
    let mut perms = std::fs::metadata(&smi).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&smi, perms).unwrap();

    let server = Server::start_with("one_gpu", &["--interval", "200ms"], |cmd| {
        cmd.env("HYPOMNESIS_NVML_LIB", "/nonexistent/libnvidia-ml.so.1")
            .env("HYPOMNESIS_NVIDIA_SMI", &smi);
    });
    let first = server.wait_for("hypomnesis_sample_errors_total{backend=\"gpu\"} 2");
    let age = |body: &str| value_of(body, "hypomnesis_sample_age_seconds").unwrap();
    let later = server.wait_for("hypomnesis_sample_errors_total{backend=\"gpu\"} 4");
    assert!(age(&later.body) > age(&first.body));
    // The first pass never finished: nothing measured is served, and nothing is invented.
    assert!(!later.body.contains("hypomnesis_gpu_memory"));
    assert!(!later.body.contains("hypomnesis_host_memory"));
    assert_eq!(server.get("/healthz", None).status, 200);
    let stderr = server.stderr();
    assert_eq!(
        stderr.matches("sampling has been waiting on gpu").count(),
        1,
        "{stderr}"
    );
}

/// An NVML call that never returns (the double's memory query sleeps 60 s) is abandoned
/// after `--timeout`: the pass goes on and publishes the host's figures, the GPU failure is
/// counted on every pass after, and scrapes keep answering. Without the timeout the first
/// pass would stay blocked and no host figure would ever be served (as with the hung
/// nvidia-smi above, which has no NVML to time out).
#[test]
fn a_hung_nvml_call_is_abandoned_and_host_figures_stay_fresh() {
    let hung = test_support::nvml_scenario_variant("one_gpu", "serve_hung_memory_query", |s| {
        s["description"] = serde_json::json!("one_gpu whose memory query hangs");
        s["devices"][0]["delays_ms"] = serde_json::json!({ "nvmlDeviceGetMemoryInfo_v2": 60_000 });
    });
    let lib = test_support::nvml_double_for(&hung).join("libnvidia-ml.so.1");
    let server = Server::start_with(
        "one_gpu",
        &["--interval", "200ms", "--timeout", "1"],
        |cmd| {
            cmd.env("HYPOMNESIS_NVML_LIB", &lib)
                .env("NVML_DOUBLE_SCENARIO", &hung);
        },
    );
    let first = server.wait_for("hypomnesis_host_memory");
    assert!(
        !first.body.contains("hypomnesis_gpu_memory"),
        "{}",
        first.body
    );
    // Later passes fail at once on the GPU and keep publishing the host.
    let later = server.wait_for("hypomnesis_sample_errors_total{backend=\"gpu\"} 5");
    let age = value_of(&later.body, "hypomnesis_sample_age_seconds").unwrap();
    assert!(age < 5.0, "a fresh sample, not the first one aging: {age}");
    assert_eq!(server.get("/healthz", None).status, 200);
    let stderr = server.stderr();
    assert!(stderr.contains("did not answer within 1s"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// Abuse and load

#[test]
fn garbage_oversized_and_slow_clients_are_refused_and_serving_goes_on() {
    let server = Server::start("one_gpu", &["--interval", "1s"]);
    server.wait_for("hypomnesis_gpu_memory_used_bytes{");

    let garbage = parse_reply(&exchange(server.addr, b"\x16\x03\x01garbage\x00\r\n\r\n").unwrap());
    assert_eq!(garbage.status, 400);
    let bad_header = parse_reply(
        &exchange(
            server.addr,
            b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
        )
        .unwrap(),
    );
    assert_eq!(bad_header.status, 400);

    let big = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    assert_eq!(
        parse_reply(&exchange(server.addr, big.as_bytes()).unwrap()).status,
        431
    );
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    assert_eq!(
        parse_reply(&exchange(server.addr, many.as_bytes()).unwrap()).status,
        431
    );
    // A huge declared body is never read: the answer comes at once, then the connection closes.
    let post = parse_reply(
        &exchange(
            server.addr,
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\nxx",
        )
        .unwrap(),
    );
    assert_eq!(post.status, 405);

    // Slow clients: 100 connections that never finish their request head. While they hang,
    // scrapes are served; then the server closes them (the header read timeout).
    let (_, threads_before) = server.rss_and_threads();
    let mut slow: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: slow\r\n")
                .unwrap();
            s
        })
        .collect();
    for _ in 0..20 {
        assert_eq!(server.get("/metrics", None).status, 200);
    }
    let (_, threads_during) = server.rss_and_threads();
    assert_eq!(
        threads_during, threads_before,
        "connections must not cost threads"
    );
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut rest = Vec::new();
        // Closed by the server (EOF, possibly after a 408) — not left open forever.
        let _ = s.read_to_end(&mut rest);
    }
    assert_eq!(server.get("/metrics", None).status, 200);

    // A client that sends requests and never reads answers blocks only itself.
    let mut greedy = TcpStream::connect(server.addr).unwrap();
    let pipelined = "GET /metrics HTTP/1.1\r\nHost: g\r\n\r\n".repeat(2000);
    greedy
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = greedy.write_all(pipelined.as_bytes());
    assert_eq!(server.get("/metrics", None).status, 200);
    drop(greedy);
    assert_eq!(server.get("/healthz", None).status, 200);
}

/// Past the connection limit a new client is served, and the connection that has waited
/// longest for a request (here the first of 128 idle ones) is closed to make room.
#[test]
fn past_the_connection_limit_the_longest_idle_connection_makes_room() {
    let server = Server::start("one_gpu", &["--interval", "1s"]);
    server.wait_for("hypomnesis_gpu_memory_used_bytes{");
    let mut held: Vec<TcpStream> = Vec::new();
    for _ in 0..128 {
        held.push(TcpStream::connect(server.addr).unwrap());
        // Accepted in this order, so the first is the longest waiter.
        assert_eq!(get(server.addr, "/healthz", None).status, 200);
    }
    assert_eq!(get(server.addr, "/metrics", None).status, 200);
    held[0]
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut rest = Vec::new();
    // Closed by the server (EOF or a reset), not left open.
    let _ = held[0].read_to_end(&mut rest);
    assert!(rest.is_empty());
}

/// 10,000 scrapes from 64 concurrent clients: every one answered, memory and threads flat.
/// Figures (requests/s, p99, release RSS) come from `cargo bench -p hmn --bench serve`.
#[test]
fn ten_thousand_scrapes_leave_rss_and_threads_bounded() {
    let server = Server::start("four_gpus", &["--interval", "500ms"]);
    server.wait_for("hypomnesis_gpu_memory_used_bytes{");
    let scrape_many = |total: usize| {
        let per = total / 64;
        std::thread::scope(|s| {
            for _ in 0..64 {
                s.spawn(|| {
                    for i in 0..per {
                        let accept = (i % 2 == 0).then_some(OPENMETRICS);
                        let reply = get(server.addr, "/metrics", accept);
                        assert_eq!(reply.status, 200);
                        assert!(reply.body.contains("hypomnesis_sample_age_seconds"));
                    }
                });
            }
        });
    };
    scrape_many(1_024);
    let (rss_warm, threads_warm) = server.rss_and_threads();
    scrape_many(10_048);
    let (rss_after, threads_after) = server.rss_and_threads();
    eprintln!(
        "hmn serve (debug build): RSS {:.1} MiB after warm-up, {:.1} MiB after 10,048 more scrapes; {threads_after} threads",
        rss_warm as f64 / 1048576.0,
        rss_after as f64 / 1048576.0
    );
    assert_eq!(threads_after, threads_warm);
    assert!(
        rss_after < rss_warm + 4 * 1024 * 1024,
        "RSS grew from {rss_warm} to {rss_after} bytes over 10,000 scrapes"
    );
    assert!(rss_after < 64 * 1024 * 1024, "RSS {rss_after} bytes");
}

// ---------------------------------------------------------------------------------------------
// Command line

#[test]
fn a_public_address_is_served_with_a_warning() {
    let server = Server::start_on("0.0.0.0:0", "one_gpu", &[], |_| {});
    let stderr = server.stderr();
    assert!(
        stderr.contains("warning: listening on 0.0.0.0:"),
        "{stderr}"
    );
    assert!(stderr.contains("--no-processes"), "{stderr}");
    let loopback = Server::start("one_gpu", &[]);
    assert!(!loopback.stderr().contains("warning"));
}

#[test]
fn a_taken_port_or_a_bare_port_exits_2_with_advice() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = Command::new(env!("CARGO_BIN_EXE_hmn"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("HYPOMNESIS_NVML_LIB", "/nonexistent/libnvidia-ml.so.1")
        .env("HYPOMNESIS_NVIDIA_SMI", "/nonexistent/nvidia-smi")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(stderr.contains("--listen"), "{stderr}");
    assert!(out.stdout.is_empty());

    let bare = Command::new(env!("CARGO_BIN_EXE_hmn"))
        .args(["serve", "--listen", ":9464"])
        .output()
        .unwrap();
    assert_eq!(bare.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bare.stderr).contains("0.0.0.0:9464 (every interface)"));
}

// ---------------------------------------------------------------------------------------------
// The reference OpenMetrics parser (prometheus-client, from the Python package index)

/// What the venv installs; pinned so a new release cannot change CI under us.
const PROMETHEUS_CLIENT_REQUIREMENT: &str = "prometheus-client==0.26.0";

fn loud(lines: &[&str]) -> String {
    let bar = "!".repeat(78);
    let mut text = format!("\n{bar}\n");
    for line in lines {
        text.push_str(&format!("!!! {line}\n"));
    }
    text + &bar
}

/// The Python of `<workspace>/target/openmetrics-venv`, with `prometheus-client`; created on
/// first use in a fresh directory and renamed into place, so that test binaries running at
/// once never see a half-built venv (the venv's `bin/python` and `pyvenv.cfg` do not depend on
/// its own path). Panics loudly when it cannot be made: the check is never skipped.
fn openmetrics_python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let target = test_support::workspace_root().join("target");
            let venv = target.join("openmetrics-venv");
            let ready = |dir: &Path| {
                std::fs::read_to_string(dir.join(".hypomnesis-ready")).ok().as_deref()
                    == Some(PROMETHEUS_CLIENT_REQUIREMENT)
            };
            if !ready(&venv) {
                std::fs::create_dir_all(&target).unwrap();
                let building = tempfile::tempdir_in(&target).unwrap().keep();
                let run = |what: &str, cmd: &mut Command| {
                    let out = cmd.output().unwrap();
                    assert!(
                        out.status.success(),
                        "{}\n{}",
                        loud(&[
                            &format!(
                                "cannot build a venv with {PROMETHEUS_CLIENT_REQUIREMENT}: {what} failed"
                            ),
                            "The OpenMetrics output cannot be checked by the reference parser.",
                            "Needs python3 with venv (Debian: python3-venv) and the Python package index.",
                        ]),
                        String::from_utf8_lossy(&out.stderr)
                    );
                };
                run(
                    "python3 -m venv",
                    Command::new("python3").args(["-m", "venv"]).arg(&building),
                );
                run(
                    "pip install",
                    Command::new(building.join("bin/python")).args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        "--no-input",
                        PROMETHEUS_CLIENT_REQUIREMENT,
                    ]),
                );
                std::fs::write(
                    building.join(".hypomnesis-ready"),
                    PROMETHEUS_CLIENT_REQUIREMENT,
                )
                .unwrap();
                if !ready(&venv) {
                    let _ = std::fs::remove_dir_all(&venv);
                }
                // Another test binary may have won the race: then its venv is as good.
                if std::fs::rename(&building, &venv).is_err() {
                    let _ = std::fs::remove_dir_all(&building);
                }
                assert!(ready(&venv), "no usable venv at {}", venv.display());
            }
            venv.join("bin/python")
        })
        .clone()
}

/// Parses `text` with `parser` (`openmetrics` or `text`) of `prometheus-client`; returns
/// `{family: {"type": …, "samples": [[name, labels, value], …]}}`, or panics with the error.
fn python_parse(parser: &str, text: &str) -> Value {
    let module = match parser {
        "openmetrics" => "prometheus_client.openmetrics.parser",
        _ => "prometheus_client.parser",
    };
    let script = format!(
        "import json, sys\n\
         from {module} import text_string_to_metric_families\n\
         out = {{}}\n\
         for f in text_string_to_metric_families(sys.stdin.read()):\n\
         \x20   out[f.name] = {{'type': f.type, 'unit': getattr(f, 'unit', ''), 'samples': [[s.name, s.labels, s.value] for s in f.samples]}}\n\
         print(json.dumps(out))\n"
    );
    let mut child = Command::new(openmetrics_python())
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the {parser} parser rejected the exposition: {}\n--- exposition\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_reference_openmetrics_parser_accepts_the_output() {
    let server = Server::start("one_gpu", &["--interval", "1s"]);
    server.wait_for("hypomnesis_gpu_process_memory_bytes{");
    let om = server.get("/metrics", Some(OPENMETRICS)).body;
    let families = python_parse("openmetrics", &om);
    let used = &families["hypomnesis_gpu_memory_used_bytes"];
    assert_eq!(used["type"], "gauge");
    assert_eq!(used["unit"], "bytes");
    assert_eq!(used["samples"][0][2], 20_780_679_168.0_f64);
    assert_eq!(families["hypomnesis_gpu"]["type"], "info");
    assert_eq!(families["hypomnesis_build"]["type"], "info");
    assert_eq!(families["hypomnesis_sample_age_seconds"]["unit"], "seconds");
    let processes = families["hypomnesis_gpu_process_memory_bytes"]["samples"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = processes
        .iter()
        .filter_map(|s| s[1]["process"].as_str())
        .collect();
    assert_eq!(names, ["训练脚本", "say \"hi\" \\ now"]);

    // The Prometheus text output, by the same library's text parser.
    let text = server.get("/metrics", None).body;
    let families = python_parse("text", &text);
    assert_eq!(
        families["hypomnesis_gpu_memory_used_bytes"]["samples"][0][2],
        20_780_679_168.0_f64
    );
}

// ---------------------------------------------------------------------------------------------
// A real Prometheus

/// Debian's Prometheus server, unpacked (not installed) under `<workspace>/target/
/// prometheus-debian` by `scripts/fetch-prometheus-debian.sh` on first use (about 19 MB, a few
/// seconds; later runs reuse it), the way `real_nvidia.rs` gets NVIDIA's binaries, so a plain
/// `cargo test` runs the real-Prometheus test too. When it cannot be had the test fails,
/// loudly: a skipped test would pass without proving anything.
fn prometheus_binary() -> PathBuf {
    let workspace = test_support::workspace_root();
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
        "{}
{stdout}{}",
        loud(&[
            "Debian's prometheus package could not be fetched: the real-Prometheus test of hmn \
             serve cannot run.",
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

/// Debian's `promtool`, from the same package as [`prometheus_binary`]; fails loudly when it
/// is not there.
fn promtool() -> PathBuf {
    let promtool = prometheus_binary().with_file_name("promtool");
    assert!(
        promtool.is_file(),
        "{}",
        loud(&[
            &format!("{} is missing:", promtool.display()),
            "the exporter's output cannot be linted. Debian's prometheus package ships it next \
             to the server; remove target/prometheus-debian to fetch it again.",
        ])
    );
    promtool
}

/// What `promtool check metrics` finds in `text` (Prometheus text format): empty when clean.
fn lint(promtool: &Path, text: &str) -> String {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", promtool.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        String::new()
    } else {
        format!(
            "promtool exited with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// Every shape of output the exporter has — device figures with and without processes, no GPU
/// at all, telemetry with per-process utilization, MIG, four GPUs and one of them, DRM GPUs
/// with hwmon telemetry — passes `promtool check metrics` with no finding (names, units,
/// `_total` on counters only, help texts, label names), and its OpenMetrics form parses with
/// the reference parser (`promtool` 2.42 reads the Prometheus text format only: OpenMetrics'
/// `info` type stops it).
#[test]
fn promtool_finds_nothing_to_lint_in_any_exporter_output() {
    let promtool = promtool();
    // The linter itself must see a defect, or a clean result would prove nothing.
    assert!(
        !lint(
            &promtool,
            "# HELP x_seconds a\n# TYPE x_seconds counter\nx_seconds 1\n"
        )
        .is_empty(),
        "promtool accepted a counter without _total: it is not linting"
    );
    let drm = drm_telemetry_tree();
    let variants: Vec<(&str, Server)> = vec![
        ("one_gpu", Server::start("one_gpu", &["--interval", "1s"])),
        (
            "one_gpu --no-processes",
            Server::start("one_gpu", &["--interval", "1s", "--no-processes"]),
        ),
        (
            "no GPU library",
            Server::start_with("one_gpu", &["--interval", "1s"], |cmd| {
                cmd.env("HYPOMNESIS_NVML_LIB", "/nonexistent/libnvidia-ml.so.1");
            }),
        ),
        (
            "telemetry, with per-process utilization",
            steady_telemetry_server(&["--interval", "1s"]),
        ),
        ("mig", Server::start("mig", &["--interval", "1s"])),
        (
            "four_gpus",
            Server::start("four_gpus", &["--interval", "1s"]),
        ),
        (
            "four_gpus --device 2",
            Server::start("four_gpus", &["--interval", "1s", "--device", "2"]),
        ),
        (
            "DRM telemetry tree",
            Server::start_with("one_gpu", &["--interval", "1s"], |cmd| {
                on_drm_tree(cmd, &drm);
            }),
        ),
    ];
    let mut findings = Vec::new();
    for (what, server) in &variants {
        let needle = match *what {
            "no GPU library" => "hypomnesis_host_memory_total_bytes",
            "telemetry, with per-process utilization" => {
                "hypomnesis_gpu_process_sm_utilization_ratio{"
            }
            "DRM telemetry tree" => "hypomnesis_gpu_temperature_celsius{",
            _ => "hypomnesis_gpu_info{",
        };
        let text = server.wait_for(needle).body;
        let found = lint(&promtool, &text);
        if !found.is_empty() {
            findings.push(format!("{what}: {found}\n--- exposition\n{text}"));
        }
        python_parse(
            "openmetrics",
            &server.get("/metrics", Some(OPENMETRICS)).body,
        );
    }
    assert!(findings.is_empty(), "{}", findings.join("\n\n"));
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Prometheus process, killed (by PID) and reaped on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn api(&self, path_and_query: &str) -> Value {
        let reply = get(self.addr, path_and_query, None);
        assert_eq!(reply.status, 200, "{path_and_query}: {}", reply.body);
        serde_json::from_str(&reply.body).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn start_prometheus(binary: &Path, dir: &Path, target: SocketAddr) -> Prometheus {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: hmn\n    static_configs:\n      - targets: [\"{target}\"]\n"
        ),
    )
    .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = dir.join("prometheus.log");
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.join("prometheus.err")).unwrap())
        .spawn()
        .unwrap();
    Prometheus {
        child,
        addr,
        log: dir.join("prometheus.err"),
    }
}

#[test]
fn a_real_prometheus_scrapes_it_in_openmetrics() {
    let binary = prometheus_binary();
    let (_, declared) = scenario("one_gpu");
    let server = Server::start("one_gpu", &["--interval", "1s"]);
    let dir = tempfile::tempdir().unwrap();
    let prometheus = start_prometheus(&binary, dir.path(), server.addr);

    // The target is up, its last scrape had no error.
    let deadline = Instant::now() + Duration::from_secs(90);
    let target = loop {
        let ready = exchange(prometheus.addr, b"GET /-/ready HTTP/1.0\r\n\r\n");
        if ready.is_ok_and(|r| parse_reply(&r).status == 200) {
            let targets = prometheus.api("/api/v1/targets");
            let target = targets["data"]["activeTargets"][0].clone();
            if target["health"] == "up" {
                break target;
            }
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw the target up; its log:\n{}",
            prometheus.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(target["lastError"], "", "{target}");
    assert_eq!(
        target["scrapeUrl"],
        format!("http://{}/metrics", server.addr)
    );

    // The value Prometheus stored is the scenario's.
    let deadline = Instant::now() + Duration::from_secs(60);
    let result = loop {
        let reply = prometheus.api("/api/v1/query?query=hypomnesis_gpu_memory_used_bytes");
        let result = reply["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !result.is_empty() {
            break result;
        }
        assert!(Instant::now() < deadline, "no sample stored");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(result.len(), 1);
    let sample = &result[0];
    assert_eq!(
        sample["value"][1]
            .as_str()
            .and_then(|v| v.parse::<u64>().ok()),
        declared["devices"][0]["memory"]["used"].as_u64()
    );
    assert_eq!(
        sample["metric"]["uuid"],
        "GPU-5a5c4d1e-1f9b-4a7d-9c1e-2b3f4a5b6c7d"
    );
    assert_eq!(sample["metric"]["job"], "hmn");

    // OpenMetrics was negotiated and parsed: only its `# UNIT` and `info` type reach the
    // metadata; the Prometheus text format has neither.
    let metadata = prometheus.api("/api/v1/targets/metadata?match_target=%7Bjob%3D%22hmn%22%7D");
    let entries = metadata["data"].as_array().unwrap();
    let entry = |metric: &str| {
        entries
            .iter()
            .find(|e| e["metric"] == metric)
            .unwrap_or_else(|| panic!("no metadata for {metric}: {metadata}"))
    };
    assert_eq!(entry("hypomnesis_gpu_memory_used_bytes")["unit"], "bytes");
    assert_eq!(entry("hypomnesis_gpu")["type"], "info");

    // Process names with escapes survive the trip.
    let procs = prometheus
        .api("/api/v1/query?query=hypomnesis_gpu_process_memory_bytes%7Bpid%3D%224011345%22%7D");
    assert_eq!(procs["data"]["result"][0]["metric"]["process"], "训练脚本");
    let health = prometheus.api("/api/v1/query?query=up%7Bjob%3D%22hmn%22%7D");
    assert_eq!(health["data"]["result"][0]["value"][1], "1");

    // Every query of the Grafana dashboard parses, and the device, process and host panels
    // have data.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(
            test_support::workspace_root().join("docs/grafana/hypomnesis.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut with_data = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$instance", ".*")
                .replace("$__rate_interval", "1m");
            let reply = prometheus.api(&format!("/api/v1/query?query={}", percent_encode(&expr)));
            assert_eq!(reply["status"], "success", "{expr}: {reply}");
            if reply["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
            {
                with_data.push(panel["title"].as_str().unwrap().to_owned());
            }
        }
    }
    for title in [
        "GPU memory in use",
        "GPU memory: used, reserved, free",
        "Top 10 processes by GPU memory",
        "Host memory",
        "Sample age",
    ] {
        assert!(
            with_data.iter().any(|t| t == title),
            "panel {title:?} has no data"
        );
    }
    eprintln!(
        "real Prometheus scraped hmn serve: target up, lastError empty, OpenMetrics units stored"
    );
}

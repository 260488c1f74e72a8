//! Budgets (issue 17, "Beyond one machine"), whole `hmn` processes, wall time:
//!
//! - `hmn fits 40GiB --hosts` over 128 endpoints ≤ 1 s (64 read at once), and one dead host
//!   (a port that accepts and never answers) costs no more than the timeout
//!   (`--fleet-timeout 1s` here);
//! - `hmn fits 40GiB --prometheus` against a real Prometheus with 16 targets ≤ 100 ms.
//!
//! Compared in the same run with what an operator would otherwise write over the same
//! endpoints: a Python script (standard library only: `urllib` in a 64-thread pool, each
//! scrape's `hypomnesis_gpu_memory_free_bytes` lines compared with 40 GiB; for Prometheus one
//! `urllib` query `hypomnesis_gpu_memory_free_bytes >= 40 GiB`) and `curl` (64 at once through
//! `xargs -P 64`, filtered by `awk`; for Prometheus one `curl` of the same query).
//!
//! The endpoints are in-process listeners serving one real body: the `/metrics` of an
//! `hmn serve` on the NVML double's `four_gpus` scenario (two GPUs with 40 GiB free each), read
//! once at the start. Prometheus is Debian's (`scripts/fetch-prometheus-debian.sh`, as the
//! tests use it), scraping the 16 endpoints every second through a `file_sd` file.
//!
//! Run with `cargo bench -p hmn --bench fleet` (add `-- --warm-up-time 1 --measurement-time 3`
//! for a quick look).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use criterion::Criterion;
use test_support::servers::{Canned, Prometheus, Serve, Silent, prometheus_binary};

const FORTY_GIB: u64 = 40 << 30;

/// Runs `command`; the exit code must be 0 (something fits), else the comparison is void.
fn run(command: &mut Command) {
    let output = command.stdout(Stdio::null()).output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

fn hmn() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hmn"));
    c.env("HYPOMNESIS_NVML_LIB", "/nonexistent/libnvidia-ml.so.1");
    c
}

const PYTHON_SCRAPE: &str = r#"
import sys, urllib.request, concurrent.futures as cf
need, hosts = int(sys.argv[1]), sys.argv[2].split(",")
def scrape(host):
    try:
        with urllib.request.urlopen(f"http://{host}/metrics", timeout=float(sys.argv[3])) as r:
            text = r.read().decode()
    except Exception:
        return []
    return [float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
            if l.startswith("hypomnesis_gpu_memory_free_bytes{")]
with cf.ThreadPoolExecutor(64) as pool:
    free = [f for fs in pool.map(scrape, hosts) for f in fs]
fits = [f for f in free if f >= need]
print(len(fits), "GPUs fit")
sys.exit(0 if fits else 1)
"#;

const PYTHON_QUERY: &str = r#"
import sys, json, urllib.parse, urllib.request
query = urllib.parse.urlencode({"query": f"hypomnesis_gpu_memory_free_bytes >= {sys.argv[2]}"})
with urllib.request.urlopen(f"{sys.argv[1]}/api/v1/query?{query}", timeout=2) as r:
    result = json.load(r)["data"]["result"]
print(len(result), "GPUs fit")
sys.exit(0 if result else 1)
"#;

/// `curl` 64 at once over `hosts`, the free-memory lines compared with 40 GiB by `awk`.
fn curl_scrape(hosts: &[String], timeout_s: u32) -> Command {
    let mut c = Command::new("bash");
    c.arg("-c")
        .arg(format!(
            "printf '%s\\n' \"$@\" | xargs -P 64 -I{{}} curl -s --max-time {timeout_s} \
             http://{{}}/metrics | awk '/^hypomnesis_gpu_memory_free_bytes\\{{/ && $NF >= \
             {FORTY_GIB} {{n++}} END {{exit n ? 0 : 1}}'"
        ))
        .arg("curl-scrape")
        .args(hosts);
    c
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let hmn_path = env!("CARGO_BIN_EXE_hmn");

    // One real exporter's body, served by 128 in-process endpoints.
    let body = {
        let serve = Serve::start(Path::new(hmn_path), "four_gpus", &["--interval", "5s"]);
        Arc::new(serve.wait_for("hypomnesis_gpu_process_memory_bytes{"))
    };
    let endpoints: Vec<Canned> = (0..128).map(|_| Canned::start(Arc::clone(&body))).collect();
    let hosts: Vec<String> = endpoints.iter().map(|e| e.addr.to_string()).collect();
    let dead = Silent::start();
    let mut with_dead = hosts[..127].to_vec();
    with_dead.push(dead.addr.to_string());
    let size = FORTY_GIB.to_string();

    {
        let mut group = criterion.benchmark_group("fleet_fits_hosts_128");
        group.sample_size(10);
        group.bench_function("hmn fits 40GiB --hosts (128)", |b| {
            b.iter(|| run(hmn().args(["fits", "40GiB", "--hosts", &hosts.join(",")])));
        });
        group.bench_function(
            "hmn fits 40GiB --hosts (127 + 1 dead, --fleet-timeout 1s)",
            |b| {
                b.iter(|| {
                    run(hmn().args([
                        "fits",
                        "40GiB",
                        "--fleet-timeout",
                        "1s",
                        "--hosts",
                        &with_dead.join(","),
                    ]))
                });
            },
        );
        group.bench_function("python urllib, 64 threads (128)", |b| {
            b.iter(|| {
                run(Command::new("python3").args([
                    "-c",
                    PYTHON_SCRAPE,
                    &size,
                    &hosts.join(","),
                    "2",
                ]))
            });
        });
        group.bench_function(
            "python urllib, 64 threads (127 + 1 dead, 1 s timeout)",
            |b| {
                b.iter(|| {
                    run(Command::new("python3").args([
                        "-c",
                        PYTHON_SCRAPE,
                        &size,
                        &with_dead.join(","),
                        "1",
                    ]))
                });
            },
        );
        group.bench_function("curl, xargs -P 64 (128)", |b| {
            b.iter(|| run(&mut curl_scrape(&hosts, 2)));
        });
        group.finish();
    }

    // A real Prometheus scraping 16 of them.
    let binary = prometheus_binary();
    let targets: Vec<_> = endpoints[..16]
        .iter()
        .enumerate()
        .map(|(i, e)| {
            (
                e.addr,
                BTreeMap::from([("node".to_owned(), format!("node-{i:02}"))]),
            )
        })
        .collect();
    let prometheus = Prometheus::start(&binary, &targets);
    prometheus.wait_for_targets_up(16);
    prometheus.wait("16 targets' GPUs stored", |p| {
        p.query("hypomnesis_gpu_memory_free_bytes").len() == 16 * 4
    });
    let url = prometheus.url();
    {
        let mut group = criterion.benchmark_group("fleet_fits_prometheus_16");
        group.sample_size(20);
        group.bench_function("hmn fits 40GiB --prometheus", |b| {
            b.iter(|| run(hmn().args(["fits", "40GiB", "--prometheus", &url])));
        });
        group.bench_function("python urllib query", |b| {
            b.iter(|| run(Command::new("python3").args(["-c", PYTHON_QUERY, &url, &size])));
        });
        group.bench_function("curl query", |b| {
            b.iter(|| {
                run(Command::new("curl").args([
                    "-sf",
                    "-G",
                    "--data-urlencode",
                    &format!("query=hypomnesis_gpu_memory_free_bytes >= {FORTY_GIB}"),
                    &format!("{url}/api/v1/query"),
                ]))
            });
        });
        group.finish();
    }
    criterion.final_summary();
}

//! The fleet views end to end: three `hmn serve` processes, each on its own NVML double
//! scenario (one H100; four H100s; an H100 in MIG mode), read by `hmn fits`, `hmn ps` and
//! `hmn` (the summary) through a real Prometheus scraping them via `file_sd`
//! (`--prometheus`), and directly (`--hosts`, `--hostfile`). What the fleet views say of each
//! node must be exactly what the same hmn says of that scenario on its own machine, and the
//! scenario's own figures.
//!
//! Every process started here is stopped by PID when its guard drops. No test asserts a
//! duration: waits are for events, with generous bounds.
#![cfg(all(target_os = "linux", feature = "serve", feature = "fleet"))]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use test_support::servers::{FakeProc, Prometheus, Serve, prometheus_binary, scenario_pids};

const HMN: &str = env!("CARGO_BIN_EXE_hmn");
const SCENARIOS: [&str; 3] = ["one_gpu", "four_gpus", "mig"];
const GIB: u64 = 1 << 30;

fn declared(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(test_support::nvml_scenario(name)).unwrap())
        .unwrap()
}

/// The three exporters, each once its first sample is published, with their scenarios.
fn three_exporters() -> Vec<(&'static str, Serve)> {
    SCENARIOS
        .iter()
        .map(|name| {
            let serve = Serve::start(Path::new(HMN), name, &["--interval", "1s"]);
            serve.wait_for("hypomnesis_gpu_process_memory_bytes{");
            (*name, serve)
        })
        .collect()
}

/// `hmn ARGS` with no GPU of its own (a fleet view must not need one).
fn hmn(args: &[&str]) -> Output {
    Command::new(HMN)
        .args(args)
        .env("HYPOMNESIS_NVML_LIB", "/nonexistent/libnvidia-ml.so.1")
        .env("HYPOMNESIS_NVIDIA_SMI", "/nonexistent/nvidia-smi")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// `hmn ARGS --json` on scenario `name`'s machine itself (the double, a fixture /proc).
fn local_json(name: &str, args: &[&str]) -> Value {
    let path = test_support::nvml_scenario(name);
    let lib = test_support::nvml_double_for(&path).join("libnvidia-ml.so.1");
    let fake = FakeProc::new(&scenario_pids(&declared(name)));
    let out = Command::new(HMN)
        .args(args)
        .arg("--json")
        .env("HYPOMNESIS_NVML_LIB", lib)
        .env("NVML_DOUBLE_SCENARIO", &path)
        .env("HYPOMNESIS_NVIDIA_SMI", "/nonexistent/nvidia-smi")
        .env("HYPOMNESIS_PROC_ROOT", fake.dir.path())
        .env("HYPOMNESIS_SYS_ROOT", fake.dir.path().join("sys"))
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{name} {args:?}: {e}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn json_of(out: &Output, what: &str) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: {e}\n--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Which scenario a node's endpoint (`http://127.0.0.1:PORT/metrics`, or the Prometheus
/// `instance` `127.0.0.1:PORT`) belongs to.
fn scenario_of(endpoint: &str, exporters: &[(&'static str, Serve)]) -> &'static str {
    exporters
        .iter()
        .find(|(_, s)| endpoint.contains(&s.addr.to_string()))
        .map(|(name, _)| *name)
        .unwrap_or_else(|| panic!("no exporter at {endpoint}"))
}

/// A place SIZE fits: (scenario, GPU, MIG GPU instance, room).
type Place = (&'static str, u64, Option<u64>, u64);

/// `hmn fits SIZE`'s places as each scenario's own `hmn fits SIZE --gpus 9 --json` lists them
/// (every place that fits; the scenarios have fewer GPUs).
fn expected_places(size: &str) -> Vec<Place> {
    let mut places: Vec<Place> = SCENARIOS
        .iter()
        .flat_map(|name| {
            let local = local_json(name, &["fits", size, "--gpus", "9"]);
            local["fitting"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    (
                        *name,
                        f["device_index"].as_u64().unwrap(),
                        f["gpu_instance_id"].as_u64(),
                        f["budget_bytes"].as_u64().unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    places.sort_by_key(|p| (std::cmp::Reverse(p.3), p.0, p.1, p.2));
    places
}

/// The scenario figures behind [`expected_places`] for 40 GiB: four_gpus' GPUs 3 and 2 and
/// one_gpu's GPU, by free memory; the MIG GPU's room is its roomiest GPU instance (11 GiB).
fn declared_places_for_40_gib() -> Vec<Place> {
    let free = |name: &str, i: usize| {
        declared(name)["devices"][i]["memory"]["free"]
            .as_u64()
            .unwrap()
    };
    let mut places = vec![
        ("four_gpus", 3, None, free("four_gpus", 3)),
        ("four_gpus", 2, None, free("four_gpus", 2)),
        ("one_gpu", 0, None, free("one_gpu", 0)),
    ];
    places.sort_by_key(|p| std::cmp::Reverse(p.3));
    assert!(places.iter().all(|p| p.3 >= 40 * GIB));
    assert!(free("four_gpus", 1) < 40 * GIB && free("four_gpus", 0) < 40 * GIB);
    places
}

fn fleet_places(fits: &Value, exporters: &[(&'static str, Serve)]) -> Vec<Place> {
    fits["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(d["counted"], true, "{d}");
            (
                scenario_of(d["endpoint"].as_str().unwrap(), exporters),
                d["gpu"].as_u64().unwrap(),
                d["gpu_instance"].as_u64(),
                d["free_bytes"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// `hmn ps`'s rows, (scenario, GPU, pid, used bytes), as each scenario's own `hmn ps --json`
/// lists them.
fn expected_rows() -> BTreeSet<(&'static str, u64, u64, Option<u64>)> {
    SCENARIOS
        .iter()
        .flat_map(|name| {
            let local = local_json(name, &["ps"]);
            local["processes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        *name,
                        r["device_index"].as_u64().unwrap(),
                        r["pid"].as_u64().unwrap(),
                        r["used_bytes"].as_u64(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn fleet_rows(
    ps: &Value,
    exporters: &[(&'static str, Serve)],
) -> BTreeSet<(&'static str, u64, u64, Option<u64>)> {
    ps["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                scenario_of(r["endpoint"].as_str().unwrap(), exporters),
                r["gpu"].as_u64().unwrap(),
                r["pid"].as_u64().unwrap(),
                r["used_bytes"].as_u64(),
            )
        })
        .collect()
}

/// Checks `hmn fits`, `hmn ps` and the summary read through `source` (`--prometheus URL`,
/// `--hosts A,B,C`, `--hostfile FILE`) against the scenarios.
fn check_views(source: &[&str], exporters: &[(&'static str, Serve)]) {
    let with = |args: &[&str]| -> Vec<String> {
        args.iter().chain(source).map(|s| (*s).to_owned()).collect()
    };
    let run = |args: &[&str]| {
        let args = with(args);
        hmn(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let fits = run(&["fits", "40GiB", "--json"]);
    assert_eq!(fits.status.code(), Some(0), "{source:?}: {fits:?}");
    let verdict = json_of(&fits, "fits 40GiB");
    assert_eq!(verdict["fits"], true);
    let places = fleet_places(&verdict, exporters);
    assert_eq!(
        places,
        expected_places("40GiB"),
        "{source:?}: as each machine says"
    );
    assert_eq!(
        places,
        declared_places_for_40_gib(),
        "{source:?}: the scenarios' figures"
    );
    assert!(verdict["down"].as_array().unwrap().is_empty(), "{verdict}");

    // 10 GiB fits every GPU, and on the MIG one each GPU instance (10.5 and 11 GiB free),
    // once however many compute instances it has: when the exporter exports the instances
    // (`hypomnesis_gpu_mig_memory_*`). Without them the MIG GPU is one place whose room is its
    // roomiest GPU instance (the exporter's budget).
    let fits = run(&["fits", "10GiB", "--json"]);
    let mut places = fleet_places(&json_of(&fits, "fits 10GiB"), exporters);
    places.sort_by_key(|p| (std::cmp::Reverse(p.3), p.0, p.1, p.2));
    let mut expected = expected_places("10GiB");
    let mig_server = &exporters.iter().find(|(n, _)| *n == "mig").unwrap().1;
    if !mig_server
        .wait_for("hypomnesis_gpu_")
        .contains("hypomnesis_gpu_mig_memory_free_bytes")
    {
        let roomiest = expected.iter().filter(|p| p.0 == "mig").map(|p| p.3).max();
        expected.retain(|p| p.0 != "mig");
        expected.push(("mig", 0, None, roomiest.unwrap()));
        expected.sort_by_key(|p| (std::cmp::Reverse(p.3), p.0, p.1, p.2));
    }
    assert_eq!(places, expected, "{source:?}");

    let text = run(&["fits", "40GiB"]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert_eq!(
        stdout.lines().count(),
        4,
        "a header and three places:\n{stdout}"
    );
    assert!(
        stdout.lines().next().unwrap().starts_with("NODE"),
        "{stdout}"
    );

    let four_on_one = run(&["fits", "1GiB", "--gpus", "4", "--same-node", "--json"]);
    assert_eq!(four_on_one.status.code(), Some(0), "{four_on_one:?}");
    let nodes = json_of(&four_on_one, "--gpus 4 --same-node")["nodes"].clone();
    assert_eq!(
        nodes.as_array().unwrap().len(),
        1,
        "only four_gpus: {nodes}"
    );
    let too_big = run(&["fits", "80GiB"]);
    assert_eq!(too_big.status.code(), Some(1), "{too_big:?}");

    let ps = run(&["ps", "--json"]);
    assert_eq!(ps.status.code(), Some(0), "{source:?}: {ps:?}");
    let ps = json_of(&ps, "ps");
    assert_eq!(fleet_rows(&ps, exporters), expected_rows(), "{source:?}");
    let text = run(&["ps"]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.starts_with("NODE"), "{stdout}");
    assert_eq!(
        stdout.lines().count(),
        1 + expected_rows().len(),
        "{stdout}"
    );

    let summary = run(&["--json"]);
    assert_eq!(summary.status.code(), Some(0), "{summary:?}");
    let summary = json_of(&summary, "summary");
    let gpus: BTreeMap<&str, u64> = summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            assert_eq!(n["state"], "up", "{n}");
            (
                scenario_of(n["endpoint"].as_str().unwrap(), exporters),
                n["gpus"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        gpus,
        BTreeMap::from([("four_gpus", 4), ("mig", 1), ("one_gpu", 1)])
    );
}

#[test]
fn fits_ps_and_the_summary_through_a_real_prometheus_give_the_scenarios_figures() {
    let binary = prometheus_binary();
    let exporters = three_exporters();
    let targets: Vec<_> = exporters
        .iter()
        .map(|(name, s)| {
            (
                s.addr,
                BTreeMap::from([("scenario".to_owned(), (*name).to_owned())]),
            )
        })
        .collect();
    let prometheus = Prometheus::start(&binary, &targets);
    prometheus.wait_for_targets_up(3);
    // Every exporter's devices and processes are stored (1 + 4 + 1 GPUs).
    prometheus.wait("every GPU stored", |p| {
        p.query("hypomnesis_gpu_memory_used_bytes").len() == 6
            && p.query("count by (instance) (hypomnesis_gpu_process_memory_bytes)")
                .len()
                == 3
    });
    check_views(&["--prometheus", &prometheus.url()], &exporters);

    // --hostfile reads the same file_sd file Prometheus does.
    let hostfile = prometheus.targets_file();
    check_views(&["--hostfile", hostfile.to_str().unwrap()], &exporters);
}

#[test]
fn fits_ps_and_the_summary_over_hosts_give_the_scenarios_figures() {
    let exporters = three_exporters();
    let hosts: Vec<String> = exporters.iter().map(|(_, s)| s.addr.to_string()).collect();
    check_views(&["--hosts", &hosts.join(",")], &exporters);
}

#[test]
fn a_down_host_is_listed_with_its_reason_and_the_others_still_answer() {
    let exporters = three_exporters();
    let silent = test_support::servers::Silent::start();
    let hosts = format!("{},{}", exporters[1].1.addr, silent.addr);
    let out = hmn(&["fits", "40GiB", "--hosts", &hosts, "--fleet-timeout", "1s"]);
    assert_eq!(out.status.code(), Some(0), "four_gpus has room: {out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("down: ") && l.contains(&silent.addr.to_string())),
        "the dead host is in the footer:\n{stdout}"
    );
    let ps = hmn(&["ps", "--hosts", &hosts, "--fleet-timeout", "1s"]);
    assert_eq!(
        ps.status.code(),
        Some(2),
        "a down node's processes are unknown: {ps:?}"
    );
    let summary = json_of(
        &hmn(&["--hosts", &hosts, "--fleet-timeout", "1s", "--json"]),
        "summary",
    );
    let down = summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["state"] == "down")
        .unwrap_or_else(|| panic!("no down node: {summary}"));
    assert!(
        down["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{down}"
    );
    assert_eq!(down["gpus"], Value::Null, "unknown, never 0");
}

#[test]
fn bad_fleet_sources_exit_2_saying_what_was_wrong() {
    let missing = hmn(&["fits", "1G", "--hostfile", "/nonexistent/hosts.json"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/hosts.json"),
        "{missing:?}"
    );
    let device = hmn(&["ps", "--hosts", "a:1", "--device", "0"]);
    assert_eq!(device.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&device.stderr).contains("different GPU on every node"),
        "{device:?}"
    );
}

#[test]
fn fits_gpus_and_headroom_on_this_machine_follow_the_fleet_rules() {
    // four_gpus: 30.7, 38.7, 76.7 and 79.2 GiB free of 79.6 GiB.
    let two = local_json("four_gpus", &["fits", "39GiB", "--gpus", "2"]);
    assert_eq!(two["fits"], true, "{two}");
    let three = local_json("four_gpus", &["fits", "39GiB", "--gpus", "3"]);
    assert_eq!(
        three["fits"], false,
        "39 GiB on each of 3, not spread: {three}"
    );
    // 75 GiB + 2% of 79.6 GiB (1.6 GiB) fits on GPU 2 (76.7 GiB free) and 3 (79.2); + 6%
    // (4.8 GiB) on neither.
    let kept = local_json(
        "four_gpus",
        &["fits", "75GiB", "--headroom", "2%", "--gpus", "2"],
    );
    assert_eq!(kept["fits"], true, "{kept}");
    let kept = local_json("four_gpus", &["fits", "75GiB", "--headroom", "6%"]);
    assert_eq!(kept["fits"], false, "{kept}");
}

//! Budgets (DESIGN §6), each compared in the same run with what a user would otherwise pick:
//! - own RSS ≤ 3 µs median, against `sysinfo`'s single-process refresh and `memory-stats`;
//! - `Probe::snapshot(0)` against the NVML double ≤ 25 µs median, against the original
//!   crate's pattern of loading NVML, initialising, querying and shutting down on every call;
//!   and the same snapshot with `ProbeBuilder::driver_timeout` set (no budget: what the
//!   worker-thread hand-off costs).
//!
//! Run with `cargo bench -p hypomnesis --bench probe`. The double is built on first use.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use hypomnesis::Probe;

fn own_rss(c: &mut Criterion) {
    let mut group = c.benchmark_group("own_rss");
    let probe = Probe::new();
    group.bench_function("hypomnesis Probe::process_rss", |b| {
        b.iter(|| black_box(probe.process_rss().unwrap()));
    });
    group.bench_function("hypomnesis::process_rss (global probe)", |b| {
        b.iter(|| black_box(hypomnesis::process_rss().unwrap()));
    });
    let pid = sysinfo::Pid::from_u32(std::process::id());
    let mut system = sysinfo::System::new().unwrap();
    group.bench_function("sysinfo refresh_processes(one pid)", |b| {
        b.iter(|| {
            system.refresh_processes_specifics(
                sysinfo::ProcessesToUpdate::Some(&[pid]),
                false,
                sysinfo::ProcessRefreshKind::nothing().with_memory(),
            );
            black_box(system.process(pid).map(sysinfo::Process::memory))
        });
    });
    group.bench_function("memory-stats memory_stats()", |b| {
        b.iter(|| black_box(memory_stats::memory_stats().map(|s| s.physical_mem)));
    });
    group.finish();
}

/// What the original crate does on every `Snapshot::now`: load NVML, init, query memory and
/// the process list, shut down, and read RSS from `/proc/self/status`.
fn seed_pattern_snapshot(lib: &Path) -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let nvml = nvml_wrapper::Nvml::builder()
        .lib_path(lib.as_os_str())
        .init()
        .unwrap();
    let device = nvml.device_by_index(0).unwrap();
    let memory = device.memory_info().unwrap();
    let processes = device.running_compute_processes().unwrap();
    black_box(processes.len());
    (rss_kib * 1024, memory.used)
}

fn snapshot(c: &mut Criterion) {
    let scenario = test_support::nvml_scenario("one_gpu");
    let lib = test_support::nvml_double_for(&scenario).join("libnvidia-ml.so.1");
    // SAFETY: set before any thread that reads the environment is started by this bench.
    unsafe { std::env::set_var("NVML_DOUBLE_SCENARIO", &scenario) };
    let mut group = c.benchmark_group("snapshot_vs_double");
    let probe = Probe::builder()
        .nvml_lib(&lib)
        .use_nvidia_smi(false)
        .build();
    assert!(probe.snapshot(0).unwrap().gpu_device.is_some());
    group.bench_function("hypomnesis Probe::snapshot(0)", |b| {
        b.iter(|| black_box(probe.snapshot(0).unwrap()));
    });
    // The price of `driver_timeout`: the same snapshot through the guard's worker thread.
    let guarded = Probe::builder()
        .nvml_lib(&lib)
        .use_nvidia_smi(false)
        .driver_timeout(std::time::Duration::from_secs(10))
        .build();
    assert!(guarded.snapshot(0).unwrap().gpu_device.is_some());
    group.bench_function("hypomnesis Probe::snapshot(0), driver_timeout set", |b| {
        b.iter(|| black_box(guarded.snapshot(0).unwrap()));
    });
    group.bench_function("seed pattern: load+init+query+shutdown", |b| {
        b.iter(|| black_box(seed_pattern_snapshot(&lib)));
    });
    group.finish();
}

/// `Probe::telemetry(0)`: ten NVML getters on the double (budget: ≤ 30 µs median).
///
/// The double reads its scenario once per loaded copy, so this group loads its own copy
/// (`nvml_double_for` gives each scenario its own file) with the telemetry scenario.
fn telemetry(c: &mut Criterion) {
    let scenario = test_support::nvml_scenario("telemetry");
    let lib = test_support::nvml_double_for(&scenario).join("libnvidia-ml.so.1");
    // SAFETY: no other thread of this bench reads the environment while it is set.
    unsafe { std::env::set_var("NVML_DOUBLE_SCENARIO", &scenario) };
    let probe = Probe::builder()
        .nvml_lib(&lib)
        .use_nvidia_smi(false)
        .build();
    let first = probe.telemetry(0).unwrap();
    assert_eq!(
        first.temperature_celsius,
        Some(64.0),
        "the telemetry scenario is loaded"
    );
    let mut group = c.benchmark_group("telemetry_vs_double");
    group.bench_function("hypomnesis Probe::telemetry(0)", |b| {
        b.iter(|| black_box(probe.telemetry(0).unwrap()));
    });
    group.bench_function(
        "hypomnesis Probe::telemetry(1) (two figures unsupported)",
        |b| {
            b.iter(|| black_box(probe.telemetry(1).unwrap()));
        },
    );
    group.finish();
}

criterion_group!(benches, own_rss, snapshot, telemetry);
criterion_main!(benches);

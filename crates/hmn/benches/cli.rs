//! Budget (issue "hmn, the command-line tool"): `hmn --json` as a whole process, against the
//! NVML double, ≤ 15 ms median — compared in the same run with `gpustat --json` and
//! `nvitop -1` (from the Python package index, in a venv under `target/`) reading the same
//! double through NVIDIA's own Python binding.
//!
//! `ps_at_scale` (issue 13, "Scale"): `hmn ps --json` against a one-GPU scenario with 10,000
//! and 60,000 NVML processes (compute list, every other pid also in the graphics list, none
//! of them in this machine's `/proc`), budgets ≤ 40 ms and ≤ 250 ms median, beside `nvitop -1`
//! on the same scenario and, as a reference, `hmn --json` (process start, the NVML double's
//! load and parse of the scenario, the device and the own process's row). Both read an
//! optimised build of the double (`test_support::nvml_double_optimised`).
//!
//! Run with `cargo bench -p hmn --bench cli`. The release `hmn` is built by cargo for the
//! bench; the venv is created on first use (needs the Python package index).

use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::{Criterion, criterion_group, criterion_main};

fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn with_double<'a>(command: &'a mut Command, scenario: &Path, lib_dir: &Path) -> &'a mut Command {
    command
        .env("NVML_DOUBLE_SCENARIO", scenario)
        .env("LD_LIBRARY_PATH", lib_dir)
        .env("HYPOMNESIS_NVML_LIB", lib_dir.join("libnvidia-ml.so.1"))
}

fn whole_process(c: &mut Criterion) {
    let scenario = test_support::nvml_scenario("four_gpus");
    let lib_dir = test_support::nvml_double_for(&scenario);
    let hmn = env!("CARGO_BIN_EXE_hmn");
    let bin = test_support::python_bench_tools();
    let mut group = c.benchmark_group("whole_process_json_four_gpus");
    group.sample_size(20);
    group.bench_function("hmn --json", |b| {
        b.iter(|| run(with_double(&mut Command::new(hmn), &scenario, &lib_dir).arg("--json")));
    });
    group.bench_function("hmn ps --json", |b| {
        b.iter(|| {
            run(with_double(&mut Command::new(hmn), &scenario, &lib_dir).args(["ps", "--json"]))
        });
    });
    group.bench_function("gpustat --json", |b| {
        b.iter(|| {
            run(
                with_double(&mut Command::new(bin.join("gpustat")), &scenario, &lib_dir)
                    .arg("--json"),
            );
        });
    });
    group.bench_function("nvitop -1", |b| {
        b.iter(|| {
            run(with_double(&mut Command::new(bin.join("nvitop")), &scenario, &lib_dir).arg("-1"));
        });
    });
    group.finish();
}

/// One H100 (from `one_gpu`) with `count` compute processes, every other one also holding a
/// graphics context (so the merge has work to do).
fn many_processes(count: u32) -> PathBuf {
    test_support::nvml_scenario_variant("one_gpu", &format!("ps_at_scale_{count}"), |s| {
        let process = |pid: u32, mib: u32| {
            serde_json::json!({
                "pid": pid,
                "used_gpu_memory": u64::from(mib) << 20,
                "gpu_instance_id": null,
                "compute_instance_id": null,
                "name": format!("worker-{pid}"),
            })
        };
        let device = &mut s["devices"][0];
        device["compute_processes"] = (0..count)
            .map(|i| process(1_000_000 + i, i % 64 + 1))
            .collect();
        device["graphics_processes"] = (0..count)
            .step_by(2)
            .map(|i| process(1_000_000 + i, i % 32 + 1))
            .collect();
    })
}

fn ps_at_scale(c: &mut Criterion) {
    let hmn = env!("CARGO_BIN_EXE_hmn");
    let bin = test_support::python_bench_tools();
    let lib_dir = test_support::nvml_double_optimised();
    for count in [10_000, 60_000] {
        let scenario = many_processes(count);
        let mut group = c.benchmark_group(format!("ps_at_scale_{count}"));
        group.sample_size(10);
        group.bench_function("hmn ps --json", |b| {
            b.iter(|| {
                run(with_double(&mut Command::new(hmn), &scenario, &lib_dir)
                    .args(["ps", "--json"]));
            });
        });
        group.bench_function("hmn --json (floor: start, NVML double load)", |b| {
            b.iter(|| run(with_double(&mut Command::new(hmn), &scenario, &lib_dir).arg("--json")));
        });
        // nvitop takes ~12 s at 10,000 rows and ~160 s at 60,000: ten criterion samples of
        // the latter would take half an hour, so it is timed at 10,000 only (BENCHMARKS.md
        // gives a one-off `/usr/bin/time` figure for 60,000).
        if count <= 10_000 {
            group.bench_function("nvitop -1", |b| {
                b.iter(|| {
                    run(
                        with_double(&mut Command::new(bin.join("nvitop")), &scenario, &lib_dir)
                            .arg("-1"),
                    );
                });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, whole_process, ps_at_scale);
criterion_main!(benches);

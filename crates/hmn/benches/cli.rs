//! Budget (issue "hmn, the command-line tool"): `hmn --json` as a whole process, against the
//! NVML double, ≤ 15 ms median — compared in the same run with `gpustat --json` and
//! `nvitop -1` (from the Python package index, in a venv under `target/`) reading the same
//! double through NVIDIA's own Python binding.
//!
//! Run with `cargo bench -p hmn --bench cli`. The release `hmn` is built by cargo for the
//! bench; the venv is created on first use (needs the Python package index).

use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::{Criterion, criterion_group, criterion_main};

fn python_tools() -> PathBuf {
    let venv = test_support::workspace_root().join("target/bench-venv");
    let bin = venv.join("bin");
    if !bin.join("gpustat").exists() || !bin.join("nvitop").exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(bin.join("pip"))
                .args(["install", "-q", "gpustat", "nvitop"])
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            ok,
            "could not create {} with gpustat and nvitop",
            venv.display()
        );
    }
    bin
}

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
    let bin = python_tools();
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

criterion_group!(benches, whole_process);
criterion_main!(benches);

//! The Python package's budgets (issue 18), measured from Python next to what a Python user
//! would otherwise call, in the same run:
//!
//! | call | budget |
//! |---|---|
//! | `hypomnesis.process_rss()` | ≤ 2 µs, ≥ 5× faster than `psutil.Process().memory_info()` |
//! | `hypomnesis.device(0)` on the NVML double | ≤ 10 µs, ≥ 10× faster than pynvml's and nvitop's `Device(0).memory_info()` |
//! | `with hypomnesis.measure(): pass` | ≤ 1 ms |
//!
//! The wheel is built with `maturin build --release`, installed into the benches' Python venv
//! (`test_support::python_bench_tools`, which has nvitop and with it NVIDIA's `nvidia-ml-py`;
//! psutil is added), and `python_calls.py` times each call in a process of its own. Every
//! NVIDIA figure comes from the optimised NVML double (`test_support::nvml_double_optimised`)
//! with `fixtures/nvml/one_gpu.json`: pynvml and nvitop find it through `LD_LIBRARY_PATH`,
//! hypomnesis through `HYPOMNESIS_NVML_LIB`. Linux only (the double is a Linux library).
//!
//! `HYPOMNESIS_PY_BENCH_ROUNDS` sets the rounds per figure (default 15); the figure is their
//! median. Results are printed and written to `target/python-bench.txt`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One timed call, its budget and what it is compared with.
struct Figure {
    name: &'static str,
    label: &'static str,
    budget_us: Option<f64>,
}

const FIGURES: &[Figure] = &[
    Figure {
        name: "floor_python_call",
        label: "floor: os.getpid()",
        budget_us: None,
    },
    Figure {
        name: "floor_pread_statm",
        label: "floor: os.pread of a kept-open /proc/self/statm",
        budget_us: None,
    },
    Figure {
        name: "floor_thread_start_join",
        label: "floor: start and join a Python thread",
        budget_us: None,
    },
    Figure {
        name: "hypomnesis_process_rss",
        label: "hypomnesis.process_rss()",
        budget_us: Some(2.0),
    },
    Figure {
        name: "psutil_memory_info",
        label: "psutil.Process().memory_info()",
        budget_us: None,
    },
    Figure {
        name: "psutil_kept_process_memory_info",
        label: "p.memory_info() (psutil.Process kept)",
        budget_us: None,
    },
    Figure {
        name: "hypomnesis_device",
        label: "hypomnesis.device(0)",
        budget_us: Some(10.0),
    },
    Figure {
        name: "pynvml_memory_info",
        label: "pynvml.nvmlDeviceGetMemoryInfo(handle) (handle kept)",
        budget_us: None,
    },
    Figure {
        name: "pynvml_device_figures",
        label: "pynvml: device(0)'s figures, handle kept (5 calls)",
        budget_us: None,
    },
    Figure {
        name: "pynvml_init_query_shutdown",
        label: "pynvml: init + handle + memory + shutdown",
        budget_us: None,
    },
    Figure {
        name: "nvitop_device_memory_info",
        label: "nvitop Device(0).memory_info()",
        budget_us: None,
    },
    Figure {
        name: "nvitop_kept_device_memory_info",
        label: "d.memory_info() (nvitop Device kept)",
        budget_us: None,
    },
    Figure {
        name: "hypomnesis_measure_empty",
        label: "with hypomnesis.measure(): pass",
        budget_us: Some(1000.0),
    },
];

/// The ratios the issue asks for: (faster, slower, at least; `None`: shown, no budget).
const RATIOS: &[(&str, &str, Option<f64>)] = &[
    ("hypomnesis_process_rss", "psutil_memory_info", Some(5.0)),
    ("hypomnesis_process_rss", "floor_pread_statm", None),
    ("hypomnesis_measure_empty", "floor_thread_start_join", None),
    ("hypomnesis_device", "pynvml_memory_info", Some(10.0)),
    ("hypomnesis_device", "pynvml_device_figures", Some(10.0)),
    (
        "hypomnesis_device",
        "pynvml_init_query_shutdown",
        Some(10.0),
    ),
    ("hypomnesis_device", "nvitop_device_memory_info", Some(10.0)),
];

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} could not start: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `maturin build --release` of the package; returns the wheel.
fn release_wheel(root: &Path, python: &Path) -> PathBuf {
    let build = root.join("target/python-wheel-release");
    let out = build.join("wheels-bench");
    let _ = std::fs::remove_dir_all(&out);
    let maturin_venv = root.join("target/python-build-venv");
    let maturin = maturin_venv.join("bin/maturin");
    if !maturin.is_file() {
        run(Command::new("python3")
            .args(["-m", "venv"])
            .arg(&maturin_venv));
        run(Command::new(maturin_venv.join("bin/pip")).args(["install", "-q", "maturin==1.16.0"]));
    }
    run(Command::new(maturin)
        .current_dir(root)
        .args([
            "build",
            "--quiet",
            "--release",
            "-m",
            "crates/hypomnesis-py/Cargo.toml",
        ])
        .arg("--target-dir")
        .arg(&build)
        .arg("-o")
        .arg(&out)
        .arg("--interpreter")
        .arg(python));
    std::fs::read_dir(&out)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", out.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .unwrap_or_else(|| panic!("maturin left no wheel in {}", out.display()))
}

fn main() {
    let root = test_support::workspace_root();
    let bin = test_support::python_bench_tools();
    let python = bin.join("python");
    let wheel = release_wheel(&root, &python);
    // `python -m pip`, not `bin/pip`: a venv copied from elsewhere keeps its old path in the
    // scripts' first lines, and `bin/pip` would install into that other venv.
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--force-reinstall",
            "--no-deps",
        ])
        .arg(&wheel));
    run(Command::new(&python).args(["-m", "pip", "install", "-q", "psutil"]));
    let lib_dir = test_support::nvml_double_optimised();
    let scenario = test_support::nvml_scenario("one_gpu");
    let script = root.join("crates/hypomnesis-py/benches/python_calls.py");
    let rounds = std::env::var("HYPOMNESIS_PY_BENCH_ROUNDS").unwrap_or_else(|_| "15".into());

    let mut medians = Vec::new();
    for figure in FIGURES {
        let line = run(Command::new(&python)
            .arg(&script)
            .arg(figure.name)
            .arg(&rounds)
            .env("LD_LIBRARY_PATH", &lib_dir)
            .env("HYPOMNESIS_NVML_LIB", lib_dir.join("libnvidia-ml.so.1"))
            .env("NVML_DOUBLE_SCENARIO", &scenario)
            .env(
                "HYPOMNESIS_NVIDIA_SMI",
                root.join("target/no-such-nvidia-smi"),
            ));
        let seconds: f64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("python_calls.py printed {line:?}"));
        medians.push((figure, seconds * 1e6));
    }

    let mut report = String::from("Python package (median per call, µs)\n");
    for (figure, us) in &medians {
        let verdict = match figure.budget_us {
            Some(budget) if *us <= budget => format!("budget {budget} µs: within"),
            Some(budget) => format!("budget {budget} µs: OVER"),
            None => String::new(),
        };
        let _ = writeln!(report, "  {:<55} {:>12.3}  {verdict}", figure.label, us);
    }
    let of = |name: &str| {
        medians
            .iter()
            .find(|(f, _)| f.name == name)
            .map_or(f64::NAN, |(_, us)| *us)
    };
    for (fast, slow, at_least) in RATIOS {
        let ratio = of(slow) / of(fast);
        let verdict = match at_least {
            Some(at_least) if ratio >= *at_least => format!(" (budget >= {at_least}x: within)"),
            Some(at_least) => format!(" (budget >= {at_least}x: OVER)"),
            None => String::new(),
        };
        let _ = writeln!(report, "  {fast} vs {slow}: {ratio:.2}x faster{verdict}");
    }
    print!("{report}");
    let out = root.join("target/python-bench.txt");
    std::fs::write(&out, &report).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}

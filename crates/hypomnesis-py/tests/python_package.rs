//! The Python package as a user gets it: the wheel built by maturin, `pip install`ed into a
//! fresh venv, then its pytest suite (`tests/python/`, the NVML double's scenarios, `measure`,
//! the `Sampler`) and `mypy --strict` on an example against the stubs.
//!
//! This is how `cargo test --workspace` — the README's test command — runs the Python tests.
//! It needs `python3` with venv and the Python package index (maturin, pytest, mypy, numpy);
//! when either is missing it fails, loudly, never skips. Fast when nothing changed: the wheel
//! is rebuilt (a cargo no-op and a re-zip, byte-identical when the code is unchanged) and the
//! venv is kept while the wheel's hash is the one it was made for.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The build tool, pinned so that a new release cannot change CI under us.
const MATURIN: &str = "maturin==1.16.0";
/// What the suite runs with, besides the wheel.
const TEST_REQUIREMENTS: &[&str] = &["pytest", "mypy", "numpy"];

fn loud(what: &str, detail: &str) -> ! {
    panic!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !!! the Python package cannot be tested: {what}\n\
         !!! Needs python3 with venv/ensurepip (Debian: apt-get install python3-venv)\n\
         !!! and the Python package index reachable for {MATURIN} and {TEST_REQUIREMENTS:?}.\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n{detail}"
    )
}

fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| loud(what, &format!("{cmd:?} could not start: {e}")));
    if !out.status.success() {
        loud(
            what,
            &format!(
                "{cmd:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        );
    }
    out
}

fn python_of(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// A venv at `venv` holding `requirements`, made fresh unless its marker says it was made for
/// `key`.
fn venv_for(venv: &Path, key: &str, requirements: &[&str]) -> PathBuf {
    let python = python_of(venv);
    let marker = venv.join(".hypomnesis-ready");
    if python.is_file() && fs::read_to_string(&marker).ok().as_deref() == Some(key) {
        return python;
    }
    let _ = fs::remove_file(&marker);
    let system_python = if cfg!(windows) { "python" } else { "python3" };
    run(
        Command::new(system_python)
            .args(["-m", "venv", "--clear"])
            .arg(venv),
        "python3 -m venv failed",
    );
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--quiet",
            ])
            .args(requirements),
        "pip install failed",
    );
    fs::write(&marker, key).unwrap_or_else(|e| panic!("cannot write {}: {e}", marker.display()));
    python
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Builds the wheel (dev profile, in its own target dir so it never waits on the outer
/// `cargo test`'s lock) and returns its path.
fn build_wheel(root: &Path, tools_python: &Path) -> PathBuf {
    let build = root.join("target/python-wheel-build");
    let out = build.join("wheels-test");
    let _ = fs::remove_dir_all(&out);
    let maturin = tools_python.with_file_name(if cfg!(windows) {
        "maturin.exe"
    } else {
        "maturin"
    });
    run(
        Command::new(maturin)
            .current_dir(root)
            .args(["build", "--quiet", "-m", "crates/hypomnesis-py/Cargo.toml"])
            .arg("--target-dir")
            .arg(&build)
            .arg("-o")
            .arg(&out)
            .arg("--interpreter")
            .arg(tools_python)
            // Without debug info the extension is a fifth of the size: faster to zip and
            // install, and this wheel only runs tests.
            .env("CARGO_PROFILE_DEV_DEBUG", "0"),
        "maturin build failed",
    );
    let wheels: Vec<PathBuf> = fs::read_dir(&out)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", out.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "whl"))
        .collect();
    match wheels.as_slice() {
        [wheel] => wheel.clone(),
        other => panic!("expected one wheel in {}, found {other:?}", out.display()),
    }
}

#[test]
fn the_wheel_installs_into_a_fresh_venv_and_passes_pytest_and_mypy() {
    let root = test_support::workspace_root();
    let target = root.join("target");
    let tools = venv_for(&target.join("python-build-venv"), MATURIN, &[MATURIN]);
    let wheel = build_wheel(&root, &tools);
    let bytes = fs::read(&wheel).unwrap_or_else(|e| panic!("cannot read {}: {e}", wheel.display()));
    let key = format!("{:016x} {}", fnv1a(&bytes), TEST_REQUIREMENTS.join(" "));
    let wheel_arg = wheel.to_string_lossy().into_owned();
    let mut requirements = vec![wheel_arg.as_str()];
    requirements.extend_from_slice(TEST_REQUIREMENTS);
    let python = venv_for(&target.join("python-package-venv"), &key, &requirements);

    let out = Command::new(&python)
        .current_dir(root.join("crates/hypomnesis-py"))
        .args([
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-rfEs",
            "tests/python",
        ])
        .env("HYPOMNESIS_TEST_NVML_DOUBLE", test_support::nvml_double())
        .output()
        .unwrap_or_else(|e| loud("pytest could not start", &e.to_string()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pytest failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.contains(" passed") && !summary.contains("skipped") && !summary.contains("failed"),
        "every Python test must run and pass; pytest said: {summary}\n{stdout}"
    );
}

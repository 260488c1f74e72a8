//! `Probe::new` honours the crate's environment variables; `ignore_environment` does not.
//!
//! The variables are set on a child process (this test binary re-run on one test), never on
//! the test process itself: changing the environment of a running multi-threaded test binary
//! races with every other test reading it.

use std::path::Path;
use std::process::Command;

use hypomnesis::{NVML_LIB_ENV, PROC_ROOT_ENV, Probe, SYS_ROOT_ENV};

/// Set on the child, naming the test it runs.
const CHILD: &str = "HYPOMNESIS_ENV_TEST_CHILD";
const NVML_FROM_ENV: &str = "/nonexistent/from-the-environment/libnvidia-ml.so.1";

/// Runs test `name` in a child whose environment points every root at `dir` and NVML at a
/// library that does not exist.
fn run_child(name: &str, dir: &Path) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, name)
        .env(PROC_ROOT_ENV, dir)
        .env(SYS_ROOT_ENV, dir.join("sys"))
        .env(NVML_LIB_ENV, NVML_FROM_ENV)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child {name} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_child(name: &str) -> bool {
    std::env::var(CHILD).as_deref() == Ok(name)
}

#[test]
fn probe_new_reads_its_roots_and_nvml_library_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    run_child("child_honours_the_environment", dir.path());
}

#[test]
#[ignore = "the child half of a test: run by its parent with the environment set"]
fn child_honours_the_environment() {
    assert!(
        is_child("child_honours_the_environment"),
        "run by its parent test, which sets the environment"
    );
    let root = std::env::var_os(PROC_ROOT_ENV).unwrap();
    let probe = Probe::builder().use_nvidia_smi(false).build();
    assert_eq!(probe.proc_root(), Path::new(&root));
    // Linux: the empty root has no `self/statm`: the RSS read goes there and fails. (Other
    // platforms read the calling process's memory from the OS, not a procfs root.)
    #[cfg(target_os = "linux")]
    assert!(probe.process_rss().is_err());
    match probe.device_count() {
        Err(e) => {
            let err = e.to_string();
            assert!(err.contains(NVML_FROM_ENV), "{err}");
        }
        // Windows with a display: DXGI lists the adapter whatever NVML says, so the listing
        // succeeds and NVML's reason is part of no answer. Nowhere else can a device appear
        // (the roots are empty).
        Ok(count) => {
            let only_dxgi_can_list = cfg!(windows);
            assert!(only_dxgi_can_list, "{count} devices from empty roots");
        }
    }
}

#[test]
fn ignore_environment_keeps_the_platform_roots_and_library_whatever_the_environment_says() {
    let dir = tempfile::tempdir().unwrap();
    run_child("child_ignores_the_environment", dir.path());
}

#[test]
#[ignore = "the child half of a test: run by its parent with the environment set"]
fn child_ignores_the_environment() {
    assert!(
        is_child("child_ignores_the_environment"),
        "run by its parent test, which sets the environment"
    );
    let probe = Probe::builder()
        .ignore_environment()
        .use_nvidia_smi(false)
        .build();
    assert_eq!(probe.proc_root(), Path::new("/proc"));
    #[cfg(target_os = "linux")]
    assert!(
        probe.process_rss().unwrap() > 0,
        "the real /proc/self/statm"
    );
    if let Err(e) = probe.device_count() {
        let err = e.to_string();
        assert!(!err.contains(NVML_FROM_ENV), "{err}");
    }
    // A builder setting still wins over the default.
    let elsewhere = Probe::builder()
        .ignore_environment()
        .proc_root("/elsewhere")
        .build();
    assert_eq!(elsewhere.proc_root(), Path::new("/elsewhere"));
}

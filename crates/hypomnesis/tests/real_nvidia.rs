//! NVIDIA's real `libnvidia-ml.so.1` and `nvidia-smi` (Debian's non-free packages), on a
//! machine with no NVIDIA kernel driver: the path of every user whose driver is not loaded.
//!
//! The binaries are fetched on first run by `scripts/fetch-nvidia-debian.sh` into
//! `<workspace>/target/nvidia-debian` (about 1 MB, a few seconds; later runs reuse them), so
//! `cargo test` needs no manual set-up. When they cannot be fetched the tests fail loudly: a
//! skipped test would pass without proving anything.
//!
//! These tests assume the machine has no NVIDIA driver (development and CI machines of this
//! project have no GPU). On a machine with a working driver they fail, and say so.
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use hypomnesis::{GpuQuerySource, HypomnesisError, Probe};

/// The real binaries, and wrappers that run the real `nvidia-smi` with and without the real
/// library on `LD_LIBRARY_PATH`.
struct Real {
    nvml_lib: PathBuf,
    smi_with_lib: PathBuf,
    smi_without_lib: PathBuf,
    _wrappers: tempfile::TempDir,
}

/// Fetches the binaries and writes the wrappers, once per test process. Every test calls this
/// first, so the wrapper scripts are written and closed before any test starts a process (a
/// script still open for writing in a forked child cannot be executed: ETXTBSY).
fn real() -> &'static Real {
    static REAL: OnceLock<Real> = OnceLock::new();
    REAL.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let script = workspace.join("scripts/fetch-nvidia-debian.sh");
        let dest = workspace.join("target/nvidia-debian");
        let output = Command::new("bash")
            .arg(&script)
            .arg(&dest)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "\n\nTHE REAL NVIDIA BINARIES COULD NOT BE FETCHED: {} {} exited with {}.\n\
             These tests need Debian's libnvidia-ml1 and nvidia-smi packages (network access \
             to a Debian mirror). Its output:\n{}{}\n",
            script.display(),
            dest.display(),
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr),
        );
        let value = |key: &str| {
            stdout
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .map(PathBuf::from)
                .unwrap_or_else(|| panic!("no {key} line in the script's output:\n{stdout}"))
        };
        let nvml_lib = value("NVML_LIB=");
        let smi = value("NVIDIA_SMI=");
        let lib_dir = nvml_lib.parent().expect("the library is in a directory");

        let wrappers = tempfile::tempdir().expect("a temporary directory");
        let smi_with_lib = write_wrapper(
            wrappers.path(),
            "with-lib",
            &format!(
                "LD_LIBRARY_PATH={} exec {} \"$@\"",
                quote(lib_dir),
                quote(&smi)
            ),
        );
        // Cargo puts target directories on LD_LIBRARY_PATH, where the NVML double may be.
        let smi_without_lib = write_wrapper(
            wrappers.path(),
            "without-lib",
            &format!("unset LD_LIBRARY_PATH\nexec {} \"$@\"", quote(&smi)),
        );
        Real {
            nvml_lib,
            smi_with_lib,
            smi_without_lib,
            _wrappers: wrappers,
        }
    })
}

/// `<dir>/<name>/nvidia-smi`, a shell script running `body`.
fn write_wrapper(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name).join("nvidia-smi");
    std::fs::create_dir(dir.join(name)).unwrap();
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// `path` in single quotes for `sh`.
fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// The attempts of a `NoGpuSource` error.
fn attempts(err: &HypomnesisError) -> Vec<(GpuQuerySource, String)> {
    let HypomnesisError::NoGpuSource { attempts } = err else {
        panic!("expected NoGpuSource, got {err:?}");
    };
    attempts
        .iter()
        .map(|a| (a.backend, a.reason.clone()))
        .collect()
}

fn reason_of(err: &HypomnesisError, backend: GpuQuerySource) -> String {
    attempts(err)
        .into_iter()
        .find(|(b, _)| *b == backend)
        .unwrap_or_else(|| panic!("no {backend} attempt in {err}"))
        .1
}

fn assert_says_driver_not_loaded(reason: &str) {
    let lower = reason.to_lowercase();
    assert!(
        lower.contains("driver") && lower.contains("not loaded"),
        "expected a 'driver not loaded' reason (is an NVIDIA driver loaded on this machine? \
         these tests assume none), got: {reason}"
    );
}

#[test]
fn real_nvml_without_a_driver_says_the_driver_is_not_loaded() {
    let real = real();
    let probe = Probe::builder()
        .nvml_lib(&real.nvml_lib)
        .use_nvidia_smi(false)
        .build();

    let snap = probe
        .snapshot(0)
        .expect("RAM is measured even when the GPU is not");
    assert!(snap.ram_bytes > 0);
    assert_eq!(snap.gpu, None);
    assert_eq!(snap.gpu_device, None);
    let gpu_error = snap
        .gpu_error
        .expect("the GPU failure is kept in the snapshot");
    assert_says_driver_not_loaded(&reason_of(&gpu_error, GpuQuerySource::Nvml));

    let err = probe.device_count().unwrap_err();
    assert_says_driver_not_loaded(&reason_of(&err, GpuQuerySource::Nvml));
    assert_eq!(
        reason_of(&err, GpuQuerySource::NvidiaSmi),
        "disabled by the caller"
    );
}

#[test]
fn real_nvidia_smi_without_a_driver_exits_9_with_its_own_message() {
    let probe = Probe::builder()
        .use_nvml(false)
        .nvidia_smi(&real().smi_with_lib)
        .nvidia_smi_timeout(Duration::from_secs(30))
        .build();
    let errors = [
        probe.device_count().map(|_| ()).unwrap_err(),
        probe.devices().map(|_| ()).unwrap_err(),
        probe.processes(0).map(|_| ()).unwrap_err(),
    ];
    for err in &errors {
        let reason = reason_of(err, GpuQuerySource::NvidiaSmi);
        assert!(reason.contains("exited with code 9"), "{reason}");
        assert!(
            reason.contains(
                "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver"
            ),
            "{reason}"
        );
        assert_says_driver_not_loaded(&reason);
    }
}

#[test]
fn real_nvidia_smi_without_its_library_exits_12_saying_so() {
    let probe = Probe::builder()
        .use_nvml(false)
        .nvidia_smi(&real().smi_without_lib)
        .nvidia_smi_timeout(Duration::from_secs(30))
        .build();
    let err = probe.device_count().unwrap_err();
    let reason = reason_of(&err, GpuQuerySource::NvidiaSmi);
    assert!(reason.contains("exited with code 12"), "{reason}");
    assert!(
        reason.contains("NVIDIA-SMI couldn't find libnvidia-ml.so library in your system"),
        "{reason}"
    );
}

#[test]
fn with_both_real_backends_the_error_lists_nvml_then_nvidia_smi_each_with_its_reason() {
    let real = real();
    let probe = Probe::builder()
        .nvml_lib(&real.nvml_lib)
        .nvidia_smi(&real.smi_with_lib)
        .nvidia_smi_timeout(Duration::from_secs(30))
        .build();
    let err = probe.device_count().unwrap_err();
    let got = attempts(&err);
    // NVIDIA's two sources first, in that order; DRM (no /sys/class/drm here) may follow.
    assert_eq!(
        got.iter().map(|(b, _)| *b).take(2).collect::<Vec<_>>(),
        [GpuQuerySource::Nvml, GpuQuerySource::NvidiaSmi],
        "{err}"
    );
    assert_says_driver_not_loaded(&got[0].1);
    assert!(got[1].1.contains("exited with code 9"), "{err}");
}

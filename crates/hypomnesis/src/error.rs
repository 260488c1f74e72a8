//! One error type for the whole library.
//!
//! Callers branch on the structured fields; `Display` is English prose meant for a person and
//! may be reworded between releases. Every variant says what was tried and, where the user can
//! act, what to do. Underlying causes (a `dlopen` message, an errno, a subprocess's stderr) are
//! kept as text in `detail` fields so that the error is `Clone` and can be stored in snapshots
//! and reports, and so that the real cause is never reduced to "dlopen failed".

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::model::GpuQuerySource;

/// Shorthand for results of this crate.
pub type Result<T, E = HypomnesisError> = std::result::Result<T, E>;

/// Everything that can go wrong while measuring memory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HypomnesisError {
    /// A file under `/proc` or `/sys` (or another OS source) could not be read.
    #[error("cannot read {}: {detail}", path.display())]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// The OS error text.
        detail: String,
        /// The raw OS error number, when there was one.
        errno: Option<i32>,
    },

    /// A file was read but its text did not have the expected shape.
    #[error("cannot parse {what} from {}: {detail}", source_path.display())]
    Parse {
        /// What was being parsed (`"statm"`, `"meminfo"`, `"nvidia-smi --query-gpu output"`).
        what: &'static str,
        /// Where the text came from (a path, or a command line).
        source_path: PathBuf,
        /// What was wrong with it.
        detail: String,
    },

    /// The process does not exist (or is not visible from this PID namespace).
    #[error("no process with pid {pid} (it exited, or it is not visible from here)")]
    ProcessNotFound {
        /// The process id asked for.
        pid: u32,
    },

    /// The OS refused to reveal a process's memory.
    #[error(
        "permission denied reading memory of pid {pid} ({detail}); re-run as root or as the process's owner"
    )]
    PermissionDenied {
        /// The process id asked for.
        pid: u32,
        /// The OS error text.
        detail: String,
    },

    /// An NVML call failed.
    #[error("NVML: {}{detail}{}", nvml_call_prefix(call), nvml_hint(*code))]
    Nvml {
        /// The NVML entry point (`"nvmlInit_v2"`, `"nvmlDeviceGetMemoryInfo_v2"`, ...) or
        /// `"load"` when the library itself could not be loaded.
        call: &'static str,
        /// The `nvmlReturn_t` value, when the call returned one.
        code: Option<i32>,
        /// The cause, including the loader's own message when loading failed.
        detail: String,
    },

    /// `nvidia-smi` failed, exited non-zero, timed out or printed something unexpected.
    #[error("nvidia-smi: {detail}")]
    NvidiaSmi {
        /// The exit code, when the process exited with one.
        exit_code: Option<i32>,
        /// What went wrong (with the first line of its output where useful).
        detail: String,
    },

    /// A device index beyond the devices that exist.
    #[error("device index {index} out of range (have {count} devices)")]
    DeviceIndexOutOfRange {
        /// The index asked for.
        index: u32,
        /// How many devices there are.
        count: u32,
    },

    /// No backend could answer a GPU question. Each attempt says why.
    #[error("no GPU source available: {}", format_attempts(attempts))]
    NoGpuSource {
        /// Every backend tried, in order, with the reason it could not answer.
        attempts: Vec<BackendAttempt>,
    },

    /// A subprocess or driver call did not answer in time and was abandoned.
    #[error("{what} did not answer within {after:?}; abandoned so the caller is not blocked")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long we waited.
        after: Duration,
    },

    /// The measurement does not exist on this platform or build.
    #[error("{what} is not supported {context}")]
    Unsupported {
        /// What was asked for.
        what: &'static str,
        /// Where it is not supported (`"on this platform"`, `"in this build (feature nvml off)"`).
        context: &'static str,
    },
}

/// One backend's failed attempt, carried by [`HypomnesisError::NoGpuSource`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct BackendAttempt {
    /// The backend that was tried.
    pub backend: GpuQuerySource,
    /// Why it could not answer, as one line of English.
    pub reason: String,
}

impl BackendAttempt {
    /// An attempt of `backend` that failed for `reason`.
    #[must_use]
    pub fn new(backend: GpuQuerySource, reason: impl Into<String>) -> Self {
        Self {
            backend,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for BackendAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.backend, self.reason)
    }
}

fn format_attempts(attempts: &[BackendAttempt]) -> String {
    if attempts.is_empty() {
        return "no backend is compiled into this build".to_owned();
    }
    attempts
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// `"nvmlInit_v2 failed: "`, or nothing when the library itself did not load (the detail
/// then says which file could not be loaded and why).
fn nvml_call_prefix(call: &str) -> String {
    if call == "load" {
        String::new()
    } else {
        format!("{call} failed: ")
    }
}

/// What a user can do about the common NVML failures.
fn nvml_hint(code: Option<i32>) -> &'static str {
    match code {
        Some(9) => " (the NVIDIA kernel driver is not loaded: install or load the NVIDIA driver)",
        Some(18) => {
            " (the NVML library and the kernel driver are different versions: reboot or reinstall the driver)"
        }
        Some(4) => " (re-run as root or as the owner of the GPU processes)",
        Some(12) => " (install the NVIDIA driver, or set HYPOMNESIS_NVML_LIB to libnvidia-ml.so.1)",
        _ => "",
    }
}

impl HypomnesisError {
    /// An [`HypomnesisError::Io`] for `path` from an [`std::io::Error`].
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))] // used by the /proc readers
    pub(crate) fn io(path: impl Into<PathBuf>, err: &std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            detail: err.to_string(),
            errno: err.raw_os_error(),
        }
    }

    /// A [`HypomnesisError::Parse`] of `what` from `source_path`.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))] // used by the /proc readers
    pub(crate) fn parse(
        what: &'static str,
        source_path: impl Into<PathBuf>,
        detail: impl Into<String>,
    ) -> Self {
        Self::Parse {
            what,
            source_path: source_path.into(),
            detail: detail.into(),
        }
    }

    /// The error's text without the backend's name in front (`"NVML: "`, `"nvidia-smi: "`):
    /// the reason of a [`BackendAttempt`], which names its backend itself.
    #[cfg_attr(
        not(any(
            feature = "nvml",
            feature = "nvidia-smi-fallback",
            target_os = "linux",
            all(windows, feature = "dxgi"),
            all(target_os = "macos", feature = "metal")
        )),
        allow(dead_code) // a build without any backend that reports errors
    )]
    pub(crate) fn backend_reason(&self) -> String {
        match self {
            Self::Nvml { call, code, detail } => {
                format!("{}{detail}{}", nvml_call_prefix(call), nvml_hint(*code))
            }
            Self::NvidiaSmi { detail, .. } => detail.clone(),
            other => other.to_string(),
        }
    }

    /// The raw NVML return code, when this is an NVML error that carries one.
    #[must_use]
    pub fn nvml_code(&self) -> Option<i32> {
        match self {
            Self::Nvml { code, .. } => *code,
            Self::Io { .. }
            | Self::Parse { .. }
            | Self::ProcessNotFound { .. }
            | Self::PermissionDenied { .. }
            | Self::NvidiaSmi { .. }
            | Self::DeviceIndexOutOfRange { .. }
            | Self::NoGpuSource { .. }
            | Self::Timeout { .. }
            | Self::Unsupported { .. } => None,
        }
    }
}

/// Joins an error and all of its `source()`s into one line, so that the real cause (for
/// example the `dlopen` message under libloading's "dlopen failed") is never lost.
#[cfg_attr(not(feature = "nvml"), allow(dead_code))] // the NVML loader's messages
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_gpu_source_lists_every_attempt_with_its_reason() {
        let err = HypomnesisError::NoGpuSource {
            attempts: vec![
                BackendAttempt::new(GpuQuerySource::Nvml, "libnvidia-ml.so.1 not found"),
                BackendAttempt::new(GpuQuerySource::NvidiaSmi, "not on PATH"),
            ],
        };
        assert_eq!(
            err.to_string(),
            "no GPU source available: NVML: libnvidia-ml.so.1 not found; nvidia-smi: not on PATH"
        );
    }

    #[test]
    fn driver_not_loaded_tells_the_user_to_load_the_driver() {
        let err = HypomnesisError::Nvml {
            call: "nvmlInit_v2",
            code: Some(9),
            detail: "Driver Not Loaded".into(),
        };
        let text = err.to_string();
        assert!(
            text.contains("nvmlInit_v2 failed: Driver Not Loaded"),
            "{text}"
        );
        assert!(text.contains("driver is not loaded"), "{text}");
        assert_eq!(err.nvml_code(), Some(9));
    }

    #[test]
    fn error_chain_keeps_the_inner_cause() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("dlopen failed")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let err = Outer(std::io::Error::other(
            "libnvidia-ml.so.1: cannot open shared object file",
        ));
        assert_eq!(
            error_chain(&err),
            "dlopen failed: libnvidia-ml.so.1: cannot open shared object file"
        );
    }
}

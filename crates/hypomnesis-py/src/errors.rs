//! `HypomnesisError` as Python exceptions: one class per error kind, all under
//! `hypomnesis.HypomnesisError`, each carrying the variant's structured fields as attributes.
//!
//! The classes are defined in Python (`python/hypomnesis/_errors.py`) rather than with
//! `create_exception!`, because several also derive from the built-in exception a Python
//! caller already catches (`TimeoutError`, `PermissionError`, `IndexError`, ...), which
//! `create_exception!` cannot express. They are looked up once and cached.

use hypomnesis::HypomnesisError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyTuple, PyType};

const ERRORS_MODULE: &str = "hypomnesis._errors";

/// The Python class for one error kind, imported from [`ERRORS_MODULE`] once.
fn class<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
) -> PyResult<&'py Bound<'py, PyType>> {
    cell.import(py, ERRORS_MODULE, name)
}

macro_rules! error_classes {
    ($($cell:ident => $name:literal),* $(,)?) => {
        $(static $cell: PyOnceLock<Py<PyType>> = PyOnceLock::new();)*
    };
}

error_classes! {
    BASE => "HypomnesisError",
    IO => "IoError",
    PARSE => "ParseError",
    PROCESS_NOT_FOUND => "ProcessNotFoundError",
    PERMISSION_DENIED => "PermissionDeniedError",
    NVML => "NvmlError",
    NVIDIA_SMI => "NvidiaSmiError",
    DEVICE_INDEX => "DeviceIndexOutOfRangeError",
    NO_GPU_SOURCE => "NoGpuSourceError",
    TIMEOUT => "TimeoutError",
    UNSUPPORTED => "UnsupportedError",
}

/// The exception instance for `error` (not raised): its message is the library's `Display`
/// text, its attributes the variant's fields.
pub fn exception<'py>(py: Python<'py>, error: &HypomnesisError) -> PyResult<Bound<'py, PyAny>> {
    let message = error.to_string();
    let (cell, name, fields): (_, _, Vec<(&str, Bound<'py, PyAny>)>) = match error {
        HypomnesisError::Io {
            path,
            detail,
            errno,
        } => (
            &IO,
            "IoError",
            vec![
                ("path", path.to_string_lossy().into_pyobject(py)?.into_any()),
                ("detail", detail.into_pyobject(py)?.into_any()),
                ("errno", errno.into_pyobject(py)?.into_any()),
            ],
        ),
        HypomnesisError::Parse {
            what,
            source_path,
            detail,
        } => (
            &PARSE,
            "ParseError",
            vec![
                ("what", what.into_pyobject(py)?.into_any()),
                (
                    "source_path",
                    source_path.to_string_lossy().into_pyobject(py)?.into_any(),
                ),
                ("detail", detail.into_pyobject(py)?.into_any()),
            ],
        ),
        HypomnesisError::ProcessNotFound { pid } => (
            &PROCESS_NOT_FOUND,
            "ProcessNotFoundError",
            vec![("pid", pid.into_pyobject(py)?.into_any())],
        ),
        HypomnesisError::PermissionDenied { pid, detail } => (
            &PERMISSION_DENIED,
            "PermissionDeniedError",
            vec![
                ("pid", pid.into_pyobject(py)?.into_any()),
                ("detail", detail.into_pyobject(py)?.into_any()),
            ],
        ),
        HypomnesisError::Nvml { call, code, detail } => (
            &NVML,
            "NvmlError",
            vec![
                ("call", call.into_pyobject(py)?.into_any()),
                ("code", code.into_pyobject(py)?.into_any()),
                ("detail", detail.into_pyobject(py)?.into_any()),
            ],
        ),
        HypomnesisError::NvidiaSmi { exit_code, detail } => (
            &NVIDIA_SMI,
            "NvidiaSmiError",
            vec![
                ("exit_code", exit_code.into_pyobject(py)?.into_any()),
                ("detail", detail.into_pyobject(py)?.into_any()),
            ],
        ),
        HypomnesisError::DeviceIndexOutOfRange { index, count } => (
            &DEVICE_INDEX,
            "DeviceIndexOutOfRangeError",
            vec![
                ("index", index.into_pyobject(py)?.into_any()),
                ("count", count.into_pyobject(py)?.into_any()),
            ],
        ),
        HypomnesisError::NoGpuSource { attempts } => {
            let pairs = attempts
                .iter()
                .map(|a| PyTuple::new(py, [a.backend.as_str(), a.reason.as_str()]))
                .collect::<PyResult<Vec<_>>>()?;
            (
                &NO_GPU_SOURCE,
                "NoGpuSourceError",
                vec![("attempts", PyList::new(py, pairs)?.into_any())],
            )
        }
        HypomnesisError::Timeout { what, after } => (
            &TIMEOUT,
            "TimeoutError",
            vec![
                ("what", what.into_pyobject(py)?.into_any()),
                ("after", after.as_secs_f64().into_pyobject(py)?.into_any()),
            ],
        ),
        HypomnesisError::Unsupported { what, context } => (
            &UNSUPPORTED,
            "UnsupportedError",
            vec![
                ("what", what.into_pyobject(py)?.into_any()),
                ("context", context.into_pyobject(py)?.into_any()),
            ],
        ),
        // A kind added to the library after this layer: still a `HypomnesisError`.
        _ => (&BASE, "HypomnesisError", Vec::new()),
    };
    let instance = class(py, cell, name)?.call1((message,))?;
    for (attribute, value) in fields {
        instance.setattr(attribute, value)?;
    }
    Ok(instance)
}

/// `error` as a raisable [`PyErr`].
pub fn to_py_err(py: Python<'_>, error: &HypomnesisError) -> PyErr {
    match exception(py, error) {
        Ok(instance) => PyErr::from_value(instance),
        // Building the exception failed (the errors module missing from a broken install):
        // raise that, it says what is wrong.
        Err(e) => e,
    }
}

/// Shorthand: a library result as a Python result.
pub trait IntoPy<T> {
    /// The value, or the mapped exception.
    fn py(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPy<T> for hypomnesis::Result<T> {
    fn py(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py_err(py, &e))
    }
}

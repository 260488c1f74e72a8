//! The `hypomnesis` Python package's native module (`hypomnesis._native`).
//!
//! People who ask "will this fit" and "what did my job peak at" mostly write Python, and the
//! tools they have there cost hundreds of microseconds to milliseconds a call. This module
//! gives them the library itself: every function is one call into a long-lived
//! [`hypomnesis::Probe`] and a copy of its record into a Python object — no measurement logic
//! of its own, so the numbers are the ones `hmn` and the Rust API give.
//!
//! Calls that may reach a GPU driver, a helper process or the host's files release the GIL
//! (`Python::detach`), so a hung driver never freezes the other Python threads; with
//! `Probe(driver_timeout=...)` it also never blocks the caller for longer than the timeout.
//! `process_rss()` keeps the GIL: it is one `pread` of a kept-open file, cheaper than
//! releasing and re-taking the GIL.
//!
//! The Python-facing surface (`measure`, the exceptions, the re-exports) lives in
//! `python/hypomnesis/`; the stubs in `python/hypomnesis/_native.pyi` describe this module.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[macro_use]
mod records;
mod errors;
mod sampling;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use errors::IntoPy;
use records::{
    DeviceTelemetry, GpuDeviceInfo, GpuProcessEntry, HostMemory, ProcessGpuInfo, ProcessMemory,
    Snapshot,
};

/// The probe behind the module's functions, built on first use. It honours the library's
/// environment variables (`HYPOMNESIS_NVML_LIB`, ...), read once, then.
fn default_probe() -> &'static Arc<hypomnesis::Probe> {
    static PROBE: OnceLock<Arc<hypomnesis::Probe>> = OnceLock::new();
    PROBE.get_or_init(|| Arc::new(hypomnesis::Probe::new()))
}

/// `probe`'s session, or the module's.
fn probe_or_default(probe: Option<&Bound<'_, Probe>>) -> Arc<hypomnesis::Probe> {
    probe.map_or_else(
        || Arc::clone(default_probe()),
        |p| Arc::clone(&p.get().inner),
    )
}

/// A non-negative, finite number of seconds as a `Duration`.
fn seconds(what: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        PyValueError::new_err(format!(
            "{what} must be a non-negative, finite number of seconds, not {value}"
        ))
    })
}

/// Runs `call` with the GIL released and maps its error to the Python exception.
fn detached<T: Send>(
    py: Python<'_>,
    call: impl FnOnce() -> hypomnesis::Result<T> + Send,
) -> PyResult<T> {
    py.detach(call).py(py)
}

/// A long-lived measuring session (the library's `Probe`): NVML loaded and initialised once,
/// device handles and `/proc/self/statm` kept open. Build one with overrides, or use the
/// module's functions, which share a default one.
#[pyclass(frozen, module = "hypomnesis._native")]
#[derive(Debug)]
pub struct Probe {
    inner: Arc<hypomnesis::Probe>,
}

#[pymethods]
impl Probe {
    #[new]
    #[pyo3(signature = (
        *,
        nvml_lib = None,
        proc_root = None,
        sys_root = None,
        nvidia_smi = None,
        nvidia_smi_timeout = None,
        use_nvml = None,
        use_nvidia_smi = None,
        driver_timeout = None,
        ignore_environment = false,
    ))]
    #[allow(clippy::too_many_arguments)] // one keyword argument per builder setting
    fn py_new(
        nvml_lib: Option<PathBuf>,
        proc_root: Option<PathBuf>,
        sys_root: Option<PathBuf>,
        nvidia_smi: Option<PathBuf>,
        nvidia_smi_timeout: Option<f64>,
        use_nvml: Option<bool>,
        use_nvidia_smi: Option<bool>,
        driver_timeout: Option<f64>,
        ignore_environment: bool,
    ) -> PyResult<Self> {
        let mut builder = hypomnesis::Probe::builder();
        if ignore_environment {
            builder = builder.ignore_environment();
        }
        if let Some(path) = nvml_lib {
            builder = builder.nvml_lib(path);
        }
        if let Some(root) = proc_root {
            builder = builder.proc_root(root);
        }
        if let Some(root) = sys_root {
            builder = builder.sys_root(root);
        }
        if let Some(path) = nvidia_smi {
            builder = builder.nvidia_smi(path);
        }
        if let Some(t) = nvidia_smi_timeout {
            builder = builder.nvidia_smi_timeout(seconds("nvidia_smi_timeout", t)?);
        }
        if let Some(on) = use_nvml {
            builder = builder.use_nvml(on);
        }
        if let Some(on) = use_nvidia_smi {
            builder = builder.use_nvidia_smi(on);
        }
        if let Some(t) = driver_timeout {
            builder = builder.driver_timeout(seconds("driver_timeout", t)?);
        }
        Ok(Self {
            inner: Arc::new(builder.build()),
        })
    }

    /// Resident memory of the calling process, bytes.
    fn process_rss(&self, py: Python<'_>) -> PyResult<u64> {
        self.inner.process_rss().py(py)
    }

    /// RAM of process `pid` (`None`: this process); `pss=True` also reads PSS and USS.
    #[pyo3(signature = (pid = None, *, pss = false))]
    fn process_memory(
        &self,
        py: Python<'_>,
        pid: Option<u32>,
        pss: bool,
    ) -> PyResult<ProcessMemory> {
        let detail = if pss {
            hypomnesis::MemoryDetail::WithPss
        } else {
            hypomnesis::MemoryDetail::Fast
        };
        let inner = &self.inner;
        detached(py, || inner.process_memory(pid, detail)).map(|m| ProcessMemory::from(&m))
    }

    /// Host memory: total / available / swap, pressure, and the cgroup bounding this process.
    fn host_memory(&self, py: Python<'_>) -> PyResult<HostMemory> {
        let inner = &self.inner;
        let host = detached(py, || inner.host_memory())?;
        HostMemory::new(py, &host)
    }

    /// How many GPUs the backends can see.
    fn device_count(&self, py: Python<'_>) -> PyResult<u32> {
        let inner = &self.inner;
        detached(py, || inner.device_count())
    }

    /// Every GPU (a device whose query failed is left out).
    fn devices(&self, py: Python<'_>) -> PyResult<Vec<GpuDeviceInfo>> {
        let inner = &self.inner;
        detached(py, || inner.devices())?
            .into_iter()
            .map(|d| GpuDeviceInfo::new(py, d))
            .collect()
    }

    /// One GPU: memory, identity, budget.
    #[pyo3(signature = (index = 0))]
    fn device(&self, py: Python<'_>, index: u32) -> PyResult<GpuDeviceInfo> {
        let inner = &self.inner;
        GpuDeviceInfo::new(py, detached(py, || inner.device_info(index))?)
    }

    /// Utilization, temperature, power and clocks of GPU `index`.
    #[pyo3(signature = (index = 0))]
    fn telemetry(&self, py: Python<'_>, index: u32) -> PyResult<DeviceTelemetry> {
        let inner = &self.inner;
        detached(py, || inner.telemetry(index)).map(|t| DeviceTelemetry::from(&t))
    }

    /// Every process holding memory on GPU `index`, sorted by pid; on every GPU when `index`
    /// is `None` (device by device).
    #[pyo3(signature = (index = None))]
    fn processes(&self, py: Python<'_>, index: Option<u32>) -> PyResult<Vec<GpuProcessEntry>> {
        let inner = &self.inner;
        let rows = detached(py, || match index {
            Some(index) => inner.processes(index),
            None => {
                let mut rows = Vec::new();
                for index in 0..inner.device_count()? {
                    rows.extend(inner.processes(index)?);
                }
                Ok(rows)
            }
        })?;
        rows.into_iter()
            .map(|r| GpuProcessEntry::new(py, r))
            .collect()
    }

    /// The calling process's own memory on GPU `index`.
    #[pyo3(signature = (index = 0))]
    fn process_gpu_info(&self, py: Python<'_>, index: u32) -> PyResult<ProcessGpuInfo> {
        let inner = &self.inner;
        detached(py, || inner.process_gpu_info(index)).map(|g| ProcessGpuInfo::from(&g))
    }

    /// RAM plus device `index` and this process's memory on it; a GPU failure is kept in
    /// `gpu_error` rather than raised.
    #[pyo3(signature = (index = 0))]
    fn snapshot(&self, py: Python<'_>, index: u32) -> PyResult<Snapshot> {
        let inner = &self.inner;
        Snapshot::new(py, detached(py, || inner.snapshot(index))?)
    }

    /// One snapshot per GPU, sharing one RAM reading.
    fn snapshot_all(&self, py: Python<'_>) -> PyResult<Vec<Snapshot>> {
        let inner = &self.inner;
        detached(py, || inner.snapshot_all())?
            .into_iter()
            .map(|s| Snapshot::new(py, s))
            .collect()
    }

    /// Seconds the GPU call in flight has overrun `driver_timeout` (a hung driver); `None`
    /// without a timeout or while calls answer in time.
    fn stuck_driver_call(&self) -> Option<f64> {
        self.inner.stuck_driver_call().map(|d| d.as_secs_f64())
    }

    fn __repr__(&self) -> String {
        format!("Probe(proc_root={:?})", self.inner.proc_root())
    }
}

/// Resident memory of the calling process, bytes.
#[pyfunction]
fn process_rss(py: Python<'_>) -> PyResult<u64> {
    default_probe().process_rss().py(py)
}

/// RAM of process `pid` (`None`: this process).
#[pyfunction]
#[pyo3(signature = (pid = None, *, pss = false))]
fn process_memory(py: Python<'_>, pid: Option<u32>, pss: bool) -> PyResult<ProcessMemory> {
    default().process_memory(py, pid, pss)
}

/// The module's probe as a Python-facing `Probe`, for its methods.
fn default() -> Probe {
    Probe {
        inner: Arc::clone(default_probe()),
    }
}

/// Host memory and the cgroup bounding this process.
#[pyfunction]
fn host_memory(py: Python<'_>) -> PyResult<HostMemory> {
    default().host_memory(py)
}

/// How many GPUs are visible.
#[pyfunction]
fn device_count(py: Python<'_>) -> PyResult<u32> {
    default().device_count(py)
}

/// Every GPU.
#[pyfunction]
fn devices(py: Python<'_>) -> PyResult<Vec<GpuDeviceInfo>> {
    default().devices(py)
}

/// One GPU: memory, identity, budget.
#[pyfunction]
#[pyo3(signature = (index = 0))]
fn device(py: Python<'_>, index: u32) -> PyResult<GpuDeviceInfo> {
    default().device(py, index)
}

/// Utilization, temperature, power and clocks of GPU `index`.
#[pyfunction]
#[pyo3(signature = (index = 0))]
fn telemetry(py: Python<'_>, index: u32) -> PyResult<DeviceTelemetry> {
    default().telemetry(py, index)
}

/// Every process holding GPU memory (on GPU `index`, or on all when `None`).
#[pyfunction]
#[pyo3(signature = (index = None))]
fn processes(py: Python<'_>, index: Option<u32>) -> PyResult<Vec<GpuProcessEntry>> {
    default().processes(py, index)
}

/// The calling process's own memory on GPU `index`.
#[pyfunction]
#[pyo3(signature = (index = 0))]
fn process_gpu_info(py: Python<'_>, index: u32) -> PyResult<ProcessGpuInfo> {
    default().process_gpu_info(py, index)
}

/// RAM plus device `index` and this process's memory on it.
#[pyfunction]
#[pyo3(signature = (index = 0))]
fn snapshot(py: Python<'_>, index: u32) -> PyResult<Snapshot> {
    default().snapshot(py, index)
}

/// One snapshot per GPU.
#[pyfunction]
fn snapshot_all(py: Python<'_>) -> PyResult<Vec<Snapshot>> {
    default().snapshot_all(py)
}

#[pymodule(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Probe>()?;
    m.add_class::<records::HostMemory>()?;
    m.add_class::<records::MemoryPressure>()?;
    m.add_class::<records::CgroupMemory>()?;
    m.add_class::<records::PageStates>()?;
    m.add_class::<records::ProcessMemory>()?;
    m.add_class::<records::GpuDeviceInfo>()?;
    m.add_class::<records::MigInstance>()?;
    m.add_class::<records::GpuProcessEntry>()?;
    m.add_class::<records::SharedClient>()?;
    m.add_class::<records::ProcessGpuInfo>()?;
    m.add_class::<records::Snapshot>()?;
    m.add_class::<records::DeviceTelemetry>()?;
    m.add_class::<sampling::Target>()?;
    m.add_class::<sampling::Series>()?;
    m.add_class::<sampling::Peak>()?;
    m.add_class::<sampling::SeriesSummary>()?;
    m.add_class::<sampling::ProcessPeak>()?;
    m.add_class::<sampling::TargetSummary>()?;
    m.add_class::<sampling::HostSummary>()?;
    m.add_class::<sampling::Timeline>()?;
    m.add_class::<sampling::Report>()?;
    m.add_class::<sampling::Sampler>()?;
    m.add_function(wrap_pyfunction!(process_rss, m)?)?;
    m.add_function(wrap_pyfunction!(process_memory, m)?)?;
    m.add_function(wrap_pyfunction!(host_memory, m)?)?;
    m.add_function(wrap_pyfunction!(device_count, m)?)?;
    m.add_function(wrap_pyfunction!(devices, m)?)?;
    m.add_function(wrap_pyfunction!(device, m)?)?;
    m.add_function(wrap_pyfunction!(telemetry, m)?)?;
    m.add_function(wrap_pyfunction!(processes, m)?)?;
    m.add_function(wrap_pyfunction!(process_gpu_info, m)?)?;
    m.add_function(wrap_pyfunction!(snapshot, m)?)?;
    m.add_function(wrap_pyfunction!(snapshot_all, m)?)?;
    Ok(())
}

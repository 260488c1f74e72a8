//! The library's `Sampler` and `Report` for Python.
//!
//! The sampling thread is the library's own (a Rust thread that never takes the GIL), so a
//! Python program busy in a C extension or holding the GIL is sampled all the same; only
//! `start` and `stop` (the first and last samples, which may call a GPU driver) wait, with the
//! GIL released. A time series is copied out once, when a report is made: as lists, or as
//! NumPy arrays (float64, NaN where a sample could not measure) when NumPy can be imported —
//! NumPy is never required.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hypomnesis::{Metric, PeakSource};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyList;

use crate::records::CgroupMemory;

/// What a sampler watches: `Target("own_process")`, `Target("pids", [1, 2])`,
/// `Target("tree", pid)`, `Target("device", 0)`, `Target("host")`.
#[pyclass(frozen, module = "hypomnesis._native")]
#[derive(Debug, Clone)]
pub struct Target {
    target: hypomnesis::Target,
}

#[pymethods]
impl Target {
    #[new]
    #[pyo3(signature = (kind, value = None))]
    fn py_new(kind: &str, value: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let need = |what: &str| {
            PyValueError::new_err(format!(
                "Target({kind:?}) needs {what} as its second argument"
            ))
        };
        let target = match (kind, value) {
            ("own_process", None) => hypomnesis::Target::OwnProcess,
            ("host", None) => hypomnesis::Target::Host,
            ("pids", Some(v)) => hypomnesis::Target::Pids(v.extract()?),
            ("pids", None) => return Err(need("a list of pids")),
            ("tree", Some(v)) => hypomnesis::Target::Tree(v.extract()?),
            ("tree", None) => return Err(need("the pid of the tree's root")),
            ("device", Some(v)) => hypomnesis::Target::Device(v.extract()?),
            ("device", None) => return Err(need("a device index")),
            ("own_process" | "host", Some(_)) => {
                return Err(PyValueError::new_err(format!(
                    "Target({kind:?}) takes no second argument"
                )));
            }
            _ => {
                return Err(PyValueError::new_err(format!(
                    "unknown target kind {kind:?}: use \"own_process\", \"pids\", \"tree\", \"device\" or \"host\""
                )));
            }
        };
        Ok(Self { target })
    }

    /// `"own_process"`, `"pids"`, `"tree"`, `"device"` or `"host"`.
    #[getter]
    fn kind(&self) -> &'static str {
        match &self.target {
            hypomnesis::Target::OwnProcess => "own_process",
            hypomnesis::Target::Pids(_) => "pids",
            hypomnesis::Target::Tree(_) => "tree",
            hypomnesis::Target::Device(_) => "device",
            hypomnesis::Target::Host => "host",
            _ => "other",
        }
    }

    /// The pids of a `"pids"` target, the root of a `"tree"`, the index of a `"device"`;
    /// `None` for the others.
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(match &self.target {
            hypomnesis::Target::Pids(pids) => Some(PyList::new(py, pids)?.into_any()),
            hypomnesis::Target::Tree(n) | hypomnesis::Target::Device(n) => {
                Some(n.into_pyobject(py)?.into_any())
            }
            _ => None,
        })
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(match self.value(py)? {
            None => format!("Target({:?})", self.kind()),
            Some(v) => format!("Target({:?}, {})", self.kind(), v.repr()?),
        })
    }

    fn __eq__(&self, other: &Self) -> bool {
        self.target == other.target
    }

    fn __str__(&self) -> String {
        self.target.to_string()
    }
}

/// `("rss", None)`, `("gpu", 0)`, ... for a metric.
fn metric_name(metric: Metric) -> (&'static str, Option<u32>) {
    match metric {
        Metric::Rss => ("rss", None),
        Metric::Processes => ("processes", None),
        Metric::Gpu { device } => ("gpu", Some(device)),
        Metric::DeviceUsed => ("device_used", None),
        Metric::HostAvailable => ("host_available", None),
        Metric::CgroupUsage => ("cgroup_usage", None),
        _ => ("other", None),
    }
}

/// The metric named `name` (and `device`, for `"gpu"`).
fn parse_metric(name: &str, device: Option<u32>) -> PyResult<Metric> {
    Ok(match (name, device) {
        ("rss", None) => Metric::Rss,
        ("processes", None) => Metric::Processes,
        ("gpu", Some(device)) => Metric::Gpu { device },
        ("gpu", None) => {
            return Err(PyValueError::new_err("metric \"gpu\" needs device=<index>"));
        }
        ("device_used", None) => Metric::DeviceUsed,
        ("host_available", None) => Metric::HostAvailable,
        ("cgroup_usage", None) => Metric::CgroupUsage,
        (_, Some(_)) if name != "gpu" => {
            return Err(PyValueError::new_err(format!(
                "metric {name:?} takes no device (only \"gpu\" does)"
            )));
        }
        _ => {
            return Err(PyValueError::new_err(format!(
                "unknown metric {name:?}: use \"rss\", \"processes\", \"gpu\", \"device_used\", \"host_available\" or \"cgroup_usage\""
            )));
        }
    })
}

record! {
    /// One sampled figure: a target (its position among the sampler's targets), a metric, and
    /// for `"gpu"` the device.
    Series { target: usize, metric: &'static str, device: Option<u32> }
}

record! {
    /// Summary of one series: min / max / mean / last (bytes, except `"processes"`), how many
    /// samples, and when (seconds after the start) the min and the max were first seen.
    Peak { min: u64, max: u64, mean: f64, last: u64, samples: u64, min_at: f64, max_at: f64 }
}

record! {
    /// A series, its summary (`None` when no sample measured it) and the samples that missed.
    SeriesSummary { series: Py<Series>, peak: Option<Py<Peak>>, missed: u64 }
}

record! {
    /// The peak of one process; `source` is `"kernel_high_water_mark"` (exact) or `"sampled"`.
    ProcessPeak { pid: u32, peak_rss_bytes: u64, source: &'static str }
}

record! {
    /// Per-target results beyond the series.
    TargetSummary {
        target: Py<Target>,
        largest_process: Option<Py<ProcessPeak>>,
        processes_seen: u32,
        notes: Vec<String>,
    }
}

record! {
    /// Host figures read at the start and at the end of sampling.
    HostSummary {
        total_bytes: Option<u64>,
        cgroup: Option<Py<CgroupMemory>>,
        cgroup_peak_bytes: Option<u64>,
    }
}

/// The kept points of a sampler built with `timeline=N`, oldest first, one column per series.
#[pyclass(frozen, module = "hypomnesis._native")]
#[derive(Debug)]
pub struct Timeline {
    /// The series, in column order.
    #[pyo3(get)]
    series: Vec<Py<Series>>,
    /// Seconds after the start of each point (a list, or a NumPy array).
    #[pyo3(get)]
    elapsed: Py<PyAny>,
    /// Points dropped because the timeline was full (the oldest go first).
    #[pyo3(get)]
    dropped: u64,
    keys: Vec<hypomnesis::Series>,
    columns: Vec<Py<PyAny>>,
}

#[pymethods]
impl Timeline {
    /// The values of one series over time: bytes (a count for `"processes"`), `None` (NaN in
    /// a NumPy array) where a sample could not measure it.
    #[pyo3(signature = (target = 0, metric = "rss", device = None))]
    fn values(
        &self,
        py: Python<'_>,
        target: usize,
        metric: &str,
        device: Option<u32>,
    ) -> PyResult<Py<PyAny>> {
        let metric = parse_metric(metric, device)?;
        self.keys
            .iter()
            .position(|s| s.target.index() == target && s.metric == metric)
            .and_then(|i| self.columns.get(i))
            .map(|c| c.clone_ref(py))
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "this timeline has no series {:?} for target {target}",
                    metric_name(metric).0
                ))
            })
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.elapsed.bind(py).len()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Timeline(series={}, points={}, dropped={})",
            self.series.len(),
            self.__len__(py)?,
            self.dropped
        ))
    }
}

/// What a sampler found (the library's `Report`). Durations are seconds.
#[pyclass(frozen, get_all, module = "hypomnesis._native")]
#[derive(Debug)]
pub struct Report {
    /// The sampling interval: the resolution of every sampled figure, seconds.
    interval: f64,
    /// Time from the start to the last sample, seconds.
    elapsed: f64,
    /// Samples taken.
    samples: u64,
    /// Interval slots skipped because a sample took longer than the interval.
    late_samples: u64,
    /// One summary per series.
    series: Vec<Py<SeriesSummary>>,
    /// One summary per target, in the sampler's order.
    targets: Vec<Py<TargetSummary>>,
    /// Host figures, when a `"host"` target was sampled.
    host: Option<Py<HostSummary>>,
    /// The kept points, when a timeline was asked for.
    timeline: Option<Py<Timeline>>,
    /// CPU time of the sampling thread, seconds (Linux, after stop).
    sampler_cpu_time: Option<f64>,
    /// What the reader should know about the run.
    notes: Vec<String>,
}

#[pymethods]
impl Report {
    /// The summary of `metric` for target `target` (its position; 0 is `measure()`'s only
    /// target); `None` when there is no such series or no sample measured it.
    #[pyo3(signature = (target = 0, metric = "rss", device = None))]
    fn peak(
        &self,
        py: Python<'_>,
        target: usize,
        metric: &str,
        device: Option<u32>,
    ) -> PyResult<Option<Py<Peak>>> {
        let (name, device) = metric_name(parse_metric(metric, device)?);
        for summary in &self.series {
            let summary = summary.get();
            let series = summary.series.get();
            if series.target == target && series.metric == name && series.device == device {
                return Ok(summary.peak.as_ref().map(|p| p.clone_ref(py)));
            }
        }
        Ok(None)
    }

    fn __repr__(&self) -> String {
        format!(
            "Report(interval={}, elapsed={}, samples={}, series={}, notes={:?})",
            self.interval,
            self.elapsed,
            self.samples,
            self.series.len(),
            self.notes
        )
    }
}

/// NumPy, when it can be imported.
fn numpy(py: Python<'_>) -> Option<&Bound<'_, PyModule>> {
    static NUMPY: PyOnceLock<Option<Py<PyModule>>> = PyOnceLock::new();
    NUMPY
        .get_or_init(py, || py.import("numpy").ok().map(Bound::unbind))
        .as_ref()
        .map(|m| m.bind(py))
}

/// A list, or a float64 NumPy array when NumPy is there (`None` becomes NaN).
fn column<'py, T>(py: Python<'py>, values: Vec<T>) -> PyResult<Py<PyAny>>
where
    T: IntoPyObject<'py>,
{
    let list = PyList::new(py, values)?;
    match numpy(py) {
        Some(np) => Ok(np.call_method1("array", (list, "float64"))?.unbind()),
        None => Ok(list.into_any().unbind()),
    }
}

impl Report {
    pub fn new(py: Python<'_>, r: &hypomnesis::Report) -> PyResult<Self> {
        let series_obj = |s: &hypomnesis::Series| {
            let (metric, device) = metric_name(s.metric);
            Py::new(
                py,
                Series {
                    target: s.target.index(),
                    metric,
                    device,
                },
            )
        };
        let peak = |p: &hypomnesis::Peak| {
            Py::new(
                py,
                Peak {
                    min: p.min,
                    max: p.max,
                    mean: p.mean,
                    last: p.last,
                    samples: p.samples,
                    min_at: p.min_at.as_secs_f64(),
                    max_at: p.max_at.as_secs_f64(),
                },
            )
        };
        let series = r
            .series
            .iter()
            .map(|s| {
                Py::new(
                    py,
                    SeriesSummary {
                        series: series_obj(&s.series)?,
                        peak: s.peak.as_ref().map(peak).transpose()?,
                        missed: s.missed,
                    },
                )
            })
            .collect::<PyResult<_>>()?;
        let targets = r
            .targets
            .iter()
            .map(|t| {
                let largest_process = t
                    .largest_process
                    .map(|p| {
                        Py::new(
                            py,
                            ProcessPeak {
                                pid: p.pid,
                                peak_rss_bytes: p.peak_rss_bytes,
                                source: match p.source {
                                    PeakSource::KernelHighWaterMark => "kernel_high_water_mark",
                                    _ => "sampled",
                                },
                            },
                        )
                    })
                    .transpose()?;
                Py::new(
                    py,
                    TargetSummary {
                        target: Py::new(
                            py,
                            Target {
                                target: t.target.clone(),
                            },
                        )?,
                        largest_process,
                        processes_seen: t.processes_seen,
                        notes: t.notes.clone(),
                    },
                )
            })
            .collect::<PyResult<_>>()?;
        let host = r
            .host
            .as_ref()
            .map(|h| {
                Py::new(
                    py,
                    HostSummary {
                        total_bytes: h.total_bytes,
                        cgroup: h
                            .cgroup
                            .as_ref()
                            .map(|c| Py::new(py, CgroupMemory::from(c)))
                            .transpose()?,
                        cgroup_peak_bytes: h.cgroup_peak_bytes,
                    },
                )
            })
            .transpose()?;
        let timeline = r
            .timeline
            .as_ref()
            .map(|t| {
                let columns = (0..t.series.len())
                    .map(|i| {
                        column(
                            py,
                            t.points
                                .iter()
                                .map(|p| p.values.get(i).copied().flatten())
                                .collect(),
                        )
                    })
                    .collect::<PyResult<_>>()?;
                Py::new(
                    py,
                    Timeline {
                        series: t.series.iter().map(series_obj).collect::<PyResult<_>>()?,
                        elapsed: column(
                            py,
                            t.points.iter().map(|p| p.elapsed.as_secs_f64()).collect(),
                        )?,
                        dropped: t.dropped,
                        keys: t.series.clone(),
                        columns,
                    },
                )
            })
            .transpose()?;
        Ok(Self {
            interval: r.interval.as_secs_f64(),
            elapsed: r.elapsed.as_secs_f64(),
            samples: r.samples,
            late_samples: r.late_samples,
            series,
            targets,
            host,
            timeline,
            sampler_cpu_time: r.sampler_cpu_time.map(|d| d.as_secs_f64()),
            notes: r.notes.clone(),
        })
    }
}

/// Which GPUs the process targets' memory is sampled on.
#[derive(Debug, Clone)]
enum Gpus {
    None,
    All,
    Only(Vec<u32>),
}

#[derive(Debug)]
enum State {
    Ready,
    Running(hypomnesis::Sampler),
    Stopped(hypomnesis::Report),
}

/// Samples targets on a background thread between `start()` and `stop()` (the library's
/// `Sampler`); also a context manager that starts on entry and stops on exit.
#[pyclass(frozen, module = "hypomnesis._native")]
#[derive(Debug)]
pub struct Sampler {
    probe: Arc<hypomnesis::Probe>,
    interval: Duration,
    targets: Vec<hypomnesis::Target>,
    gpus: Gpus,
    timeline: usize,
    state: Mutex<State>,
}

impl Sampler {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[pymethods]
impl Sampler {
    #[new]
    #[pyo3(signature = (targets = None, *, interval = 0.05, gpu_devices = None, timeline = 0, probe = None))]
    fn py_new(
        targets: Option<Vec<Bound<'_, Target>>>,
        interval: f64,
        gpu_devices: Option<&Bound<'_, PyAny>>,
        timeline: usize,
        probe: Option<&Bound<'_, crate::Probe>>,
    ) -> PyResult<Self> {
        let interval = crate::seconds("interval", interval)?;
        let gpus = match gpu_devices {
            None => Gpus::None,
            Some(v) if v.extract::<String>().is_ok_and(|s| s == "all") => Gpus::All,
            Some(v) => Gpus::Only(v.extract().map_err(|_| {
                PyValueError::new_err(
                    "gpu_devices must be None, \"all\" or a list of device indices",
                )
            })?),
        };
        Ok(Self {
            probe: crate::probe_or_default(probe),
            interval,
            targets: targets
                .unwrap_or_default()
                .iter()
                .map(|t| t.get().target.clone())
                .collect(),
            gpus,
            timeline,
            state: Mutex::new(State::Ready),
        })
    }

    /// Takes the first sample and starts the sampling thread.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        let mut state = self.lock();
        if matches!(*state, State::Running(_)) {
            return Err(PyRuntimeError::new_err("this sampler is already running"));
        }
        let mut builder = hypomnesis::Sampler::builder()
            .probe(Arc::clone(&self.probe))
            .interval(self.interval)
            .timeline(self.timeline);
        for target in &self.targets {
            builder = builder.target(target.clone());
        }
        builder = match &self.gpus {
            Gpus::None => builder,
            Gpus::All => builder.all_gpu_devices(),
            Gpus::Only(devices) => builder.gpu_devices(devices.iter().copied()),
        };
        let sampler = py
            .detach(|| builder.start())
            .map_err(|e| crate::errors::to_py_err(py, &e))?;
        *state = State::Running(sampler);
        Ok(())
    }

    /// Takes a last sample, stops the thread and returns the report.
    fn stop(&self, py: Python<'_>) -> PyResult<Report> {
        let mut state = self.lock();
        let report = match std::mem::replace(&mut *state, State::Ready) {
            State::Running(sampler) => py.detach(|| sampler.stop()),
            other => {
                *state = other;
                return Err(PyRuntimeError::new_err("this sampler is not running"));
            }
        };
        let out = Report::new(py, &report);
        *state = State::Stopped(report);
        out
    }

    /// The figures so far while running; after `stop()`, its report.
    fn report(&self, py: Python<'_>) -> PyResult<Report> {
        let state = self.lock();
        match &*state {
            State::Running(sampler) => Report::new(py, &sampler.report()),
            State::Stopped(report) => Report::new(py, report),
            State::Ready => Err(PyRuntimeError::new_err("this sampler has not started")),
        }
    }

    /// Whether the sampling thread runs.
    #[getter]
    fn running(&self) -> bool {
        matches!(*self.lock(), State::Running(_))
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        slf.get().start(slf.py())?;
        Ok(slf)
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.stop(py)?;
        Ok(false)
    }
}

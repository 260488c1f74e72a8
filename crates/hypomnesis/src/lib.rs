//! hypomnesis — process RAM and GPU memory, measured from outside the code that uses it.
//!
//! A model runner asks *will this fit*, a trainer *what did my job peak at*, an operator *who
//! holds the GPU*. This crate answers with bytes: the calling process's RAM, its own GPU
//! memory, every process's GPU memory, each GPU's total / free / used / reserved memory, and
//! the host's memory and cgroup limit. What cannot be measured is `None` with a reason, never
//! 0.
//!
//! Two ways in:
//! - the free functions ([`process_rss`], [`device_count`], [`device_info`],
//!   [`process_gpu_info`], [`gpu_processes`], [`Snapshot::now`], [`Snapshot::all`]) — the names
//!   of the original hypomnesis crate — which share one lazily built process-wide [`Probe`];
//! - an explicit [`Probe`], built once with [`Probe::builder`] to override the NVML library,
//!   the `/proc` and `/sys` roots or the `nvidia-smi` executable.
//!
//! Vendor libraries are loaded at run time: a binary using this crate starts on a machine with
//! no GPU and no GPU libraries, and says why there is nothing to report.
//!
//! ```no_run
//! let snap = hypomnesis::Snapshot::now(0)?;
//! println!("RAM: {} bytes", snap.ram_bytes);
//! match (&snap.gpu_device, &snap.gpu_error) {
//!     (Some(dev), _) => println!("{}: {:?} bytes free", dev.name_or_unknown(), dev.free_bytes),
//!     (None, Some(why)) => println!("no GPU figures: {why}"),
//!     (None, None) => {}
//! }
//! # Ok::<(), hypomnesis::HypomnesisError>(())
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![warn(missing_docs)]

/// Traces a raw value as a driver or the OS gave it, before the library interprets it (feature
/// `debug-output`): NVML's memory figures and process rows, `nvidia-smi`'s output, the DRM
/// sysfs files, DXGI's and PDH's numbers, Metal's budget.
///
/// Through the `log` facade, at debug level, target `hypomnesis::raw`: a library must not
/// write on its caller's stderr, so nothing appears unless the application installs a logger
/// and enables that target (`RUST_LOG=hypomnesis::raw=debug` with `env_logger`). `log` rather
/// than `tracing`: these are single events, not spans; `log` has no dependencies and costs one
/// relaxed atomic load when no logger listens; and `tracing` subscribers receive `log` records
/// through `tracing-log`, while the reverse needs `tracing`'s own `log` feature. Without the
/// feature the call compiles to nothing, but its arguments are still type-checked (and count as
/// used) through a `format_args!` that never runs.
// A build with no GPU backend (`--no-default-features` off Linux) reads no driver values.
#[allow(unused_macros)]
macro_rules! raw {
    ($($arg:tt)+) => {{
        #[cfg(feature = "debug-output")]
        ::log::debug!(target: "hypomnesis::raw", $($arg)+);
        #[cfg(not(feature = "debug-output"))]
        if false {
            let _ = format_args!($($arg)+);
        }
    }};
}

pub mod error;
pub mod frame;
mod gpu;
mod guard;
pub mod host;
mod model;
pub mod monitor;
mod os;
mod pidns;
mod probe;
mod process_info;
pub mod ram;
#[cfg(feature = "report")]
pub mod report;
pub mod sampler;
pub mod snapshot;
pub mod spill;
pub mod telemetry;
mod unavailable;

#[doc(no_inline)]
pub use error::{BackendAttempt, HypomnesisError, Result};
#[doc(no_inline)]
pub use frame::{DeviceFrame, Frame, FrameNote, FrameNoteKind, FrameRequest, UnreadableDevice};
pub use gpu::helper::kill_helper_processes;
#[doc(no_inline)]
pub use host::{
    CgroupMemory, CgroupVersion, HostMemory, MemoryPressure, PageStates, PressureLevel,
};
#[doc(no_inline)]
pub use monitor::{
    DeviceMetric, History, HistoryPoint, Monitor, MonitorBuilder, MonitorStats, ProcessMetric,
};
pub use probe::{
    DEFAULT_NVIDIA_SMI_TIMEOUT, NVIDIA_SMI_ENV, NVML_LIB_ENV, PROC_ROOT_ENV, Probe, ProbeBuilder,
    SYS_ROOT_ENV,
};
#[doc(no_inline)]
pub use ram::{MemoryDetail, ProcessMemory};
#[cfg(feature = "report")]
#[doc(no_inline)]
pub use report::MemoryReport;
#[doc(no_inline)]
pub use sampler::{
    HostSummary, MEASURE_TARGET, ManualSampler, Metric, Peak, PeakSource, ProcessPeak, Report,
    Sample, Sampler, SamplerBuilder, Series, SeriesSummary, Target, TargetId, TargetSummary,
    Timeline, TimelinePoint, measure, process_parent, process_start_ticks,
};
#[doc(no_inline)]
pub use snapshot::{
    BudgetBasis, GpuDeviceInfo, GpuProcessEntry, GpuProcessKind, GpuProcessListing, GpuQuerySource,
    GpuVendor, ListingNote, ListingNoteKind, MigInstance, ProcessGpuInfo, SharedClient, Snapshot,
};
#[cfg(feature = "test-helpers")]
#[doc(no_inline)]
pub use snapshot::{
    GpuDeviceInfoBuilder, GpuProcessEntryBuilder, ProcessGpuInfoBuilder, SnapshotBuilder,
};
#[doc(no_inline)]
pub use spill::{
    SpillSample, SpillThresholds, SpillTracker, is_spill_measurable, snapshot_is_spilling,
};
#[doc(no_inline)]
pub use telemetry::DeviceTelemetry;
pub use unavailable::{DeviceField, TelemetryField, Unavailable};

/// Resident memory of the calling process, bytes.
///
/// # Errors
/// When the OS source cannot be read (see [`Probe::process_rss`]).
pub fn process_rss() -> Result<u64> {
    probe::global().process_rss()
}

/// How many GPUs are visible.
///
/// # Errors
/// [`HypomnesisError::NoGpuSource`] listing every backend tried and why it failed.
pub fn device_count() -> Result<u32> {
    probe::global().device_count()
}

/// One GPU's memory and identity (see [`Probe::device_info`]).
///
/// ```no_run
/// let gpu = hypomnesis::device_info(0)?;
/// println!("{}: {:?} of {:?} bytes free", gpu.name_or_unknown(), gpu.free_bytes, gpu.total_bytes);
/// # Ok::<(), hypomnesis::HypomnesisError>(())
/// ```
///
/// # Errors
/// See [`Probe::device_info`].
pub fn device_info(device_index: u32) -> Result<GpuDeviceInfo> {
    probe::global().device_info(device_index)
}

/// The calling process's own memory on GPU `device_index`.
///
/// # Errors
/// See [`Probe::process_gpu_info`].
pub fn process_gpu_info(device_index: u32) -> Result<ProcessGpuInfo> {
    probe::global().process_gpu_info(device_index)
}

/// Every process holding memory on GPU `device_index`, sorted by pid.
///
/// ```no_run
/// for row in hypomnesis::gpu_processes(0)? {
///     println!("{}: {:?} bytes", row.pid, row.used_bytes);
/// }
/// # Ok::<(), hypomnesis::HypomnesisError>(())
/// ```
///
/// # Errors
/// See [`Probe::processes`].
pub fn gpu_processes(device_index: u32) -> Result<Vec<GpuProcessEntry>> {
    probe::global().processes(device_index)
}

/// Host memory and the cgroup bounding this process.
///
/// ```no_run
/// let host = hypomnesis::host_memory()?;
/// println!("{:?} of {} bytes available", host.available_bytes, host.total_bytes);
/// # Ok::<(), hypomnesis::HypomnesisError>(())
/// ```
///
/// # Errors
/// See [`Probe::host_memory`].
pub fn host_memory() -> Result<HostMemory> {
    probe::global().host_memory()
}

/// Whether a process exists; `None` when it cannot be told.
#[must_use]
pub fn process_exists(pid: u32) -> Option<bool> {
    probe::global().process_exists(pid)
}

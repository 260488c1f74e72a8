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

pub mod error;
pub mod frame;
mod gpu;
mod guard;
pub mod host;
pub mod monitor;
mod pidns;
mod probe;
mod process_info;
pub mod ram;
pub mod sampler;
pub mod snapshot;
pub mod spill;
pub mod telemetry;
mod unavailable;

pub use error::{BackendAttempt, HypomnesisError, Result};
pub use frame::{DeviceFrame, Frame, FrameNote, FrameNoteKind, FrameRequest};
pub use gpu::helper::kill_helper_processes;
pub use host::{
    CgroupMemory, CgroupVersion, HostMemory, MemoryPressure, PageStates, PressureLevel,
};
pub use monitor::{
    DeviceMetric, History, HistoryPoint, Monitor, MonitorBuilder, MonitorStats, ProcessMetric,
};
pub use probe::{
    DEFAULT_NVIDIA_SMI_TIMEOUT, NVIDIA_SMI_ENV, NVML_LIB_ENV, PROC_ROOT_ENV, Probe, ProbeBuilder,
    SYS_ROOT_ENV,
};
pub use ram::{MemoryDetail, ProcessMemory};
pub use sampler::{
    HostSummary, ManualSampler, Metric, Peak, PeakSource, ProcessPeak, Report, Sample, Sampler,
    SamplerBuilder, Series, SeriesSummary, Target, TargetSummary, Timeline, TimelinePoint, measure,
    process_start_ticks,
};
pub use snapshot::{
    BudgetBasis, GpuDeviceInfo, GpuProcessEntry, GpuProcessKind, GpuProcessListing, GpuQuerySource,
    GpuVendor, ListingNote, ListingNoteKind, MigInstance, ProcessGpuInfo, SharedClient, Snapshot,
};
pub use spill::{
    SpillSample, SpillThresholds, SpillTracker, is_spill_measurable, snapshot_is_spilling,
};
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

/// One GPU's memory and identity.
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
/// # Errors
/// See [`Probe::processes`].
pub fn gpu_processes(device_index: u32) -> Result<Vec<GpuProcessEntry>> {
    probe::global().processes(device_index)
}

/// Host memory and the cgroup bounding this process.
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

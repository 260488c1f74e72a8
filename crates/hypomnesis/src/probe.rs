//! `Probe`: the long-lived measuring session.
//!
//! Loading NVML and initialising it costs milliseconds; reading `/proc/self/statm` costs
//! microseconds only when the file is already open. A program that measures in a loop should
//! pay the first cost once, so a `Probe` loads every backend at most once (lazily, on the first
//! question that needs it), keeps device handles and static device facts, and keeps
//! `/proc/self/statm` open. The free functions of the crate use one process-wide `Probe`.
//!
//! Every root the backends read from is a builder parameter, so tests point a `Probe` at
//! fixture trees, at the NVML double, and at a stand-in `nvidia-smi`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::error::{HypomnesisError, Result};
use crate::frame::{Frame, FrameRequest};
use crate::gpu::GpuBackends;
use crate::guard::DriverGuard;
use crate::host::HostMemory;
use crate::ram::{MemoryDetail, ProcessMemory};
use crate::snapshot::{
    GpuDeviceInfo, GpuProcessEntry, GpuProcessListing, ProcessGpuInfo, Snapshot,
};

/// Environment variable naming the NVML library to load instead of the platform default.
pub const NVML_LIB_ENV: &str = "HYPOMNESIS_NVML_LIB";
/// Environment variable naming the `nvidia-smi` executable to run instead of the one on `PATH`.
pub const NVIDIA_SMI_ENV: &str = "HYPOMNESIS_NVIDIA_SMI";
/// Environment variable naming the procfs root to read instead of `/proc` (e.g. a host's
/// `/proc` mounted into a monitoring container, or a fixture tree in tests).
pub const PROC_ROOT_ENV: &str = "HYPOMNESIS_PROC_ROOT";
/// Environment variable naming the sysfs root to read instead of `/sys`.
pub const SYS_ROOT_ENV: &str = "HYPOMNESIS_SYS_ROOT";

/// How long an `nvidia-smi` query may take before it is killed.
pub const DEFAULT_NVIDIA_SMI_TIMEOUT: Duration = Duration::from_secs(10);

/// A long-lived measuring session. Build once, ask many times; `Send + Sync`, so one `Probe`
/// can be shared by every thread of a program.
///
/// ```no_run
/// let probe = hypomnesis::Probe::new();
/// for _ in 0..3 {
///     let snap = probe.snapshot(0)?;
///     println!("RAM {} bytes, GPU {:?}", snap.ram_bytes, snap.gpu.and_then(|g| g.process_bytes));
/// }
/// # Ok::<(), hypomnesis::HypomnesisError>(())
/// ```
#[derive(Debug)]
pub struct Probe {
    proc_root: PathBuf,
    sys_root: PathBuf,
    own_rss: OwnRss,
    gpu: Arc<GpuBackends>,
    /// GPU calls go through it when [`ProbeBuilder::driver_timeout`] was set.
    guard: Option<DriverGuard>,
}

/// Builds a [`Probe`] with overridden roots and paths.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ProbeBuilder {
    nvml_lib: Option<PathBuf>,
    proc_root: Option<PathBuf>,
    sys_root: Option<PathBuf>,
    nvidia_smi: Option<PathBuf>,
    nvidia_smi_timeout: Option<Duration>,
    use_nvml: Option<bool>,
    use_nvidia_smi: Option<bool>,
    driver_timeout: Option<Duration>,
    ignore_environment: bool,
}

impl ProbeBuilder {
    /// Load NVML from `path` instead of the platform default (`libnvidia-ml.so.1` through the
    /// loader's search path). Default: `$HYPOMNESIS_NVML_LIB` when set.
    pub fn nvml_lib(mut self, path: impl Into<PathBuf>) -> Self {
        self.nvml_lib = Some(path.into());
        self
    }

    /// Read process files under `root` instead of `/proc`. Default: `$HYPOMNESIS_PROC_ROOT`
    /// when set.
    pub fn proc_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.proc_root = Some(root.into());
        self
    }

    /// Read device and cgroup files under `root` instead of `/sys`. Default:
    /// `$HYPOMNESIS_SYS_ROOT` when set.
    pub fn sys_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.sys_root = Some(root.into());
        self
    }

    /// Run `path` as `nvidia-smi`. Default: `$HYPOMNESIS_NVIDIA_SMI` when set, else
    /// `nvidia-smi` from `PATH`.
    pub fn nvidia_smi(mut self, path: impl Into<PathBuf>) -> Self {
        self.nvidia_smi = Some(path.into());
        self
    }

    /// Kill an `nvidia-smi` query (and whatever it started) that has not finished after
    /// `timeout`. Default: [`ProbeBuilder::driver_timeout`] when set, else 10 s.
    pub fn nvidia_smi_timeout(mut self, timeout: Duration) -> Self {
        self.nvidia_smi_timeout = Some(timeout);
        self
    }

    /// Whether to use NVML at all (default: yes, when built with feature `nvml`).
    pub fn use_nvml(mut self, enabled: bool) -> Self {
        self.use_nvml = Some(enabled);
        self
    }

    /// Whether to fall back to `nvidia-smi` (default: yes, when built with feature
    /// `nvidia-smi-fallback`).
    pub fn use_nvidia_smi(mut self, enabled: bool) -> Self {
        self.use_nvidia_smi = Some(enabled);
        self
    }

    /// Give up on a GPU question after `timeout` instead of blocking forever when the driver
    /// or a GPU hangs (default: no limit). GPU calls then run one at a time on a worker
    /// thread of the probe's own, which costs a thread hand-off per call (tens of
    /// microseconds); a call that has not answered within `timeout` (time spent queued behind
    /// another thread's call included) returns [`HypomnesisError::Timeout`], and while an
    /// abandoned call stays blocked in the driver, every GPU question fails at once with the
    /// same error ([`Probe::stuck_driver_call`] says for how long). RAM and host questions
    /// are not affected.
    ///
    /// The same `timeout` bounds each `nvidia-smi` query unless
    /// [`ProbeBuilder::nvidia_smi_timeout`] says otherwise, so that an abandoned call does not
    /// keep a hung `nvidia-smi` (and the worker) for the 10 s default.
    pub fn driver_timeout(mut self, timeout: Duration) -> Self {
        self.driver_timeout = Some(timeout);
        self
    }

    /// Do not read `HYPOMNESIS_NVML_LIB`, `HYPOMNESIS_NVIDIA_SMI`, `HYPOMNESIS_PROC_ROOT` or
    /// `HYPOMNESIS_SYS_ROOT`: every root and path is then the builder's setting or the
    /// platform default. For a program that embeds the crate and must not let its own
    /// users' environment point it at another `/proc`, another NVML library or another
    /// executable to run.
    ///
    /// What still comes from the environment, because the OS defines it rather than this
    /// crate: `PATH`, searched for `nvidia-smi` unless [`ProbeBuilder::nvidia_smi`] names it;
    /// on Windows `WINDIR` / `SystemRoot` and `ProgramFiles`, where `nvml.dll` is looked for
    /// unless [`ProbeBuilder::nvml_lib`] names it; and whatever the vendor libraries read
    /// themselves (`CUDA_VISIBLE_DEVICES` is not one NVML honours).
    ///
    /// ```
    /// let probe = hypomnesis::Probe::builder().ignore_environment().build();
    /// assert_eq!(probe.proc_root(), std::path::Path::new("/proc"));
    /// ```
    pub fn ignore_environment(mut self) -> Self {
        self.ignore_environment = true;
        self
    }

    /// The value of the crate's environment variable `name`, unless it is ignored.
    fn env(&self, name: &str) -> Option<PathBuf> {
        if self.ignore_environment {
            return None;
        }
        std::env::var_os(name).map(PathBuf::from)
    }

    /// How long an `nvidia-smi` query may run: its own setting, else the driver timeout,
    /// else the default.
    fn effective_nvidia_smi_timeout(&self) -> Duration {
        self.nvidia_smi_timeout
            .or(self.driver_timeout)
            .unwrap_or(DEFAULT_NVIDIA_SMI_TIMEOUT)
    }

    /// The probe. Never fails: a backend that cannot load reports why when it is first asked.
    #[must_use]
    pub fn build(self) -> Probe {
        let nvidia_smi_timeout = self.effective_nvidia_smi_timeout();
        let proc_root = self
            .proc_root
            .clone()
            .or_else(|| self.env(PROC_ROOT_ENV))
            .unwrap_or_else(|| PathBuf::from("/proc"));
        let sys_root = self
            .sys_root
            .clone()
            .or_else(|| self.env(SYS_ROOT_ENV))
            .unwrap_or_else(|| PathBuf::from("/sys"));
        let nvml_lib = self.nvml_lib.clone().or_else(|| self.env(NVML_LIB_ENV));
        let nvidia_smi = self
            .nvidia_smi
            .clone()
            .or_else(|| self.env(NVIDIA_SMI_ENV))
            .unwrap_or_else(|| PathBuf::from("nvidia-smi"));
        let gpu = GpuBackends::new(
            crate::gpu::GpuConfig {
                nvml_lib,
                use_nvml: self.use_nvml.unwrap_or(true),
                nvidia_smi,
                nvidia_smi_timeout,
                use_nvidia_smi: self.use_nvidia_smi.unwrap_or(true),
            },
            proc_root.clone(),
            &sys_root,
        );
        Probe {
            own_rss: OwnRss::open(&proc_root),
            proc_root,
            sys_root,
            gpu: Arc::new(gpu),
            guard: self.driver_timeout.map(DriverGuard::new),
        }
    }
}

impl Default for Probe {
    fn default() -> Self {
        Self::new()
    }
}

impl Probe {
    /// A probe with the platform's roots and libraries, unless the environment says
    /// otherwise. It honours four variables, read once, here:
    ///
    /// | variable | replaces | builder setting |
    /// |---|---|---|
    /// | `HYPOMNESIS_NVML_LIB` ([`NVML_LIB_ENV`]) | the NVML library (`libnvidia-ml.so.1`, `nvml.dll`) | [`ProbeBuilder::nvml_lib`] |
    /// | `HYPOMNESIS_NVIDIA_SMI` ([`NVIDIA_SMI_ENV`]) | `nvidia-smi` found on `PATH` | [`ProbeBuilder::nvidia_smi`] |
    /// | `HYPOMNESIS_PROC_ROOT` ([`PROC_ROOT_ENV`]) | `/proc` | [`ProbeBuilder::proc_root`] |
    /// | `HYPOMNESIS_SYS_ROOT` ([`SYS_ROOT_ENV`]) | `/sys` | [`ProbeBuilder::sys_root`] |
    ///
    /// A builder setting wins over its variable. A program embedding the crate that must not
    /// be redirected by its users' environment builds with
    /// [`ProbeBuilder::ignore_environment`] (which also lists what the OS itself still
    /// reads: `PATH`, and on Windows the system directories).
    ///
    /// ```no_run
    /// let probe = hypomnesis::Probe::new();
    /// println!("{} GPU(s)", probe.device_count()?);
    /// # Ok::<(), hypomnesis::HypomnesisError>(())
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for overriding roots and paths.
    pub fn builder() -> ProbeBuilder {
        ProbeBuilder::default()
    }

    /// Resident memory of the calling process, bytes. Linux: one `pread` of the kept-open
    /// `/proc/self/statm`, resident pages × page size. Windows: the working set
    /// (`K32GetProcessMemoryInfo`). macOS: the physical footprint (`task_info(TASK_VM_INFO)`),
    /// which includes Metal buffers — see [`ProcessMemory::rss_bytes`].
    ///
    /// # Errors
    /// When `statm` cannot be opened, read or parsed, or on platforms not yet supported.
    pub fn process_rss(&self) -> Result<u64> {
        self.own_rss.read()
    }

    /// RAM of process `pid` (`None` = the calling process): RSS, peak, swap, and with
    /// [`MemoryDetail::WithPss`] also PSS and USS.
    ///
    /// ```
    /// use hypomnesis::{MemoryDetail, Probe};
    ///
    /// let probe = Probe::new();
    /// # if cfg!(any(target_os = "linux", windows, target_os = "macos")) {
    /// let me = probe.process_memory(None, MemoryDetail::Fast)?;
    /// println!("pid {}: {} bytes resident, peak {:?}", me.pid, me.rss_bytes, me.peak_rss_bytes);
    /// # }
    /// # Ok::<(), hypomnesis::HypomnesisError>(())
    /// ```
    ///
    /// # Errors
    /// [`HypomnesisError::ProcessNotFound`] when there is no such process,
    /// [`HypomnesisError::PermissionDenied`] when its files are not readable, or a parse error
    /// naming the malformed file.
    pub fn process_memory(&self, pid: Option<u32>, detail: MemoryDetail) -> Result<ProcessMemory> {
        #[cfg(target_os = "linux")]
        {
            crate::ram::linux::read_process_memory(&self.proc_root, pid, detail)
        }
        #[cfg(windows)]
        {
            crate::ram::windows::read_process_memory(pid, detail)
        }
        #[cfg(target_os = "macos")]
        {
            crate::ram::macos::read_process_memory(pid, detail)
        }
        #[cfg(not(any(target_os = "linux", windows, target_os = "macos")))]
        {
            let _ = (pid, detail);
            Err(HypomnesisError::Unsupported {
                what: "per-process memory",
                context: "on this platform yet",
            })
        }
    }

    /// Host memory: total / available / swap, pressure, and the cgroup bounding this process.
    ///
    /// ```no_run
    /// let host = hypomnesis::Probe::new().host_memory()?;
    /// println!("{} bytes installed, {:?} available", host.total_bytes, host.available_bytes);
    /// if let Some(limit) = host.cgroup.as_ref().and_then(|c| c.limit_bytes) {
    ///     println!("this process's cgroup may use {limit} bytes");
    /// }
    /// # Ok::<(), hypomnesis::HypomnesisError>(())
    /// ```
    ///
    /// # Errors
    /// When `/proc/meminfo` cannot be read or parsed.
    pub fn host_memory(&self) -> Result<HostMemory> {
        #[cfg(target_os = "linux")]
        {
            crate::host::linux::read_host_memory(&self.proc_root, &self.sys_root)
        }
        #[cfg(windows)]
        {
            let _ = &self.sys_root;
            crate::host::windows::read_host_memory()
        }
        #[cfg(target_os = "macos")]
        {
            let _ = &self.sys_root;
            crate::host::macos::read_host_memory()
        }
        #[cfg(not(any(target_os = "linux", windows, target_os = "macos")))]
        {
            let _ = &self.sys_root;
            Err(HypomnesisError::Unsupported {
                what: "host memory",
                context: "on this platform yet",
            })
        }
    }

    /// Whether a process with this pid exists. `None` when it cannot be told.
    #[must_use]
    pub fn process_exists(&self, pid: u32) -> Option<bool> {
        #[cfg(target_os = "linux")]
        {
            crate::os::linux::process_exists(&self.proc_root, pid)
        }
        #[cfg(windows)]
        {
            crate::os::windows::process_exists(pid)
        }
        #[cfg(target_os = "macos")]
        {
            crate::os::macos::process_exists(pid)
        }
        #[cfg(not(any(target_os = "linux", windows, target_os = "macos")))]
        {
            let _ = pid;
            None
        }
    }

    /// The name of process `pid`, as [`GpuProcessEntry::name`] gives it for GPU rows, so that
    /// a process is named the same whether or not it holds GPU memory. Linux: `comm`, or the
    /// full executable name when `comm` was cut at 15 bytes. macOS (feature `metal`): the
    /// executable's file name. `None` when the process cannot be read, and on Windows.
    #[must_use]
    pub fn process_name(&self, pid: u32) -> Option<String> {
        #[cfg(target_os = "linux")]
        {
            crate::os::linux::process_name_or_error(&self.proc_root, pid)
                .ok()
                .flatten()
        }
        #[cfg(all(target_os = "macos", feature = "metal"))]
        {
            crate::os::macos::process_name(pid)
        }
        #[cfg(not(any(target_os = "linux", all(target_os = "macos", feature = "metal"))))]
        {
            let _ = pid;
            None
        }
    }

    /// The user running process `pid`, named as [`GpuProcessEntry::user`] names them (a user
    /// name, or the numeric uid when the user database does not know it), so a view can tell
    /// "my processes" from the rows. Linux only; `None` elsewhere (rows carry no user there)
    /// and when the process cannot be read.
    #[must_use]
    pub fn process_user(&self, pid: u32) -> Option<String> {
        #[cfg(target_os = "linux")]
        {
            crate::process_info::linux::process_user(&self.proc_root, pid)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = pid;
            None
        }
    }

    /// How many GPUs the backends can see.
    ///
    /// # Errors
    /// [`HypomnesisError::NoGpuSource`] listing every backend tried and why it failed.
    pub fn device_count(&self) -> Result<u32> {
        self.gpu_call("device_count", |gpu| gpu.device_count())?
    }

    /// Every GPU. A device whose query failed is left out; [`Probe::device_count`] still counts
    /// it.
    ///
    /// # Errors
    /// [`HypomnesisError::NoGpuSource`] when no backend can enumerate GPUs.
    pub fn devices(&self) -> Result<Vec<GpuDeviceInfo>> {
        let mut devices = self.gpu_call("devices", |gpu| gpu.devices())??;
        self.fill_budgets(devices.iter_mut());
        Ok(devices)
    }

    /// Decides every device's [`GpuDeviceInfo::budget_bytes`]; host memory is read once, and
    /// only when a unified device needs it.
    fn fill_budgets<'a>(&self, devices: impl Iterator<Item = &'a mut GpuDeviceInfo>) {
        let mut host: Option<Option<HostMemory>> = None;
        for device in devices {
            let host = if device.unified_memory {
                host.get_or_insert_with(|| self.host_memory().ok()).as_ref()
            } else {
                None
            };
            device.fill_budget(host);
        }
    }

    /// One GPU: its memory (total, free, used, reserved), identity and budget. A figure the
    /// backend could not read is `None`, and [`GpuDeviceInfo::unavailable_reason`] says why.
    ///
    /// ```no_run
    /// let gpu = hypomnesis::Probe::new().device_info(0)?;
    /// match gpu.free_bytes {
    ///     Some(free) => println!("{}: {free} bytes free", gpu.name_or_unknown()),
    ///     None => println!(
    ///         "free memory unknown: {:?}",
    ///         gpu.unavailable_reason(hypomnesis::DeviceField::FreeBytes)
    ///     ),
    /// }
    /// # Ok::<(), hypomnesis::HypomnesisError>(())
    /// ```
    ///
    /// # Errors
    /// [`HypomnesisError::DeviceIndexOutOfRange`], [`HypomnesisError::NoGpuSource`], or the
    /// backend's error when every source failed for this device.
    pub fn device_info(&self, index: u32) -> Result<GpuDeviceInfo> {
        let mut device = self.gpu_call("device_info", move |gpu| gpu.device_info(index))??;
        self.fill_budgets(std::iter::once(&mut device));
        Ok(device)
    }

    /// Utilization, temperature, power and clocks of GPU `index`; every figure optional,
    /// with the reason when absent. Rates that need two readings are computed across calls
    /// (the first call reports them as warming up).
    ///
    /// # Errors
    /// [`HypomnesisError::DeviceIndexOutOfRange`] or [`HypomnesisError::NoGpuSource`].
    pub fn telemetry(&self, index: u32) -> Result<crate::DeviceTelemetry> {
        self.gpu_call("telemetry", move |gpu| gpu.telemetry(index))?
    }

    /// Telemetry of every GPU, listing the devices once: cheaper than calling
    /// [`Probe::telemetry`] per index when there are DRM or other non-NVML devices. A device
    /// whose reading failed (a GPU that stopped answering) is left out of the first list and
    /// its error is in the second.
    ///
    /// # Errors
    /// [`HypomnesisError::NoGpuSource`] when no backend can enumerate GPUs.
    pub fn telemetry_all(&self) -> Result<(Vec<crate::DeviceTelemetry>, Vec<HypomnesisError>)> {
        self.gpu_call("telemetry_all", |gpu| gpu.telemetry_all())?
    }

    /// Every process holding memory on GPU `index`, sorted by pid, with names. A short list
    /// may not be complete (processes of other users without root): see
    /// [`Probe::gpu_process_listing`] for what could not be seen.
    ///
    /// ```no_run
    /// for row in hypomnesis::Probe::new().processes(0)? {
    ///     let name = row.name.as_deref().unwrap_or("?");
    ///     println!("{} {name}: {:?} bytes", row.pid, row.used_bytes);
    /// }
    /// # Ok::<(), hypomnesis::HypomnesisError>(())
    /// ```
    ///
    /// # Errors
    /// As for [`Probe::device_info`], or when the process list is refused (NO_PERMISSION) and
    /// no fallback could list it.
    pub fn processes(&self, index: u32) -> Result<Vec<GpuProcessEntry>> {
        self.gpu_call("processes", move |gpu| gpu.processes(index))?
    }

    /// As [`Probe::processes`], plus what the listing could not see: processes whose GPU use
    /// was unreadable (Linux DRM without root), rows outside the caller's PID namespace
    /// (NVML's host PIDs in a container), DRM clients shared between processes. See
    /// [`GpuProcessListing::notes`].
    ///
    /// # Errors
    /// As for [`Probe::processes`].
    pub fn gpu_process_listing(&self, index: u32) -> Result<GpuProcessListing> {
        self.gpu_call("gpu_process_listing", move |gpu| gpu.process_listing(index))?
    }

    /// The calling process's own memory on GPU `index`.
    ///
    /// # Errors
    /// As for [`Probe::processes`].
    pub fn process_gpu_info(&self, index: u32) -> Result<ProcessGpuInfo> {
        let own_pid = std::process::id();
        self.gpu_call("process_gpu_info", move |gpu| {
            gpu.own_process(index, own_pid)
        })?
    }

    /// RAM plus device `index` and this process's memory on it. Fails only on RAM; GPU
    /// failures are kept in [`Snapshot::gpu_error`].
    ///
    /// # Errors
    /// When the process's resident memory cannot be read.
    pub fn snapshot(&self, index: u32) -> Result<Snapshot> {
        let ram_bytes = self.process_rss()?;
        let own_pid = std::process::id();
        let (gpu_device, gpu, gpu_error) = self
            .gpu_call("snapshot", move |gpu| own_gpu_part(gpu, index, own_pid))
            .unwrap_or_else(|timeout| (None, None, Some(timeout)));
        let mut gpu_device = gpu_device;
        self.fill_budgets(gpu_device.iter_mut());
        Ok(Snapshot {
            ram_bytes,
            gpu,
            gpu_device,
            gpu_error,
            telemetry: None,
        })
    }

    /// One snapshot per GPU, sharing one RAM reading; empty when there is no GPU. When the
    /// GPU driver did not answer within [`ProbeBuilder::driver_timeout`], one snapshot whose
    /// [`Snapshot::gpu_error`] says so.
    ///
    /// # Errors
    /// When the process's resident memory cannot be read.
    pub fn snapshot_all(&self) -> Result<Vec<Snapshot>> {
        let ram_bytes = self.process_rss()?;
        let own_pid = std::process::id();
        let parts = self
            .gpu_call("snapshot_all", move |gpu| {
                let count = gpu.device_count().unwrap_or(0);
                (0..count)
                    .map(|index| own_gpu_part(gpu, index, own_pid))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_else(|timeout| vec![(None, None, Some(timeout))]);
        let mut parts = parts;
        self.fill_budgets(
            parts
                .iter_mut()
                .filter_map(|(device, _, _)| device.as_mut()),
        );
        Ok(parts
            .into_iter()
            .map(|(gpu_device, gpu, gpu_error)| Snapshot {
                ram_bytes,
                gpu,
                gpu_device,
                gpu_error,
                telemetry: None,
            })
            .collect())
    }

    /// As [`Probe::snapshot_all`], with each device's [`Snapshot::telemetry`] filled. A
    /// device whose telemetry cannot be read (a lost GPU) keeps `telemetry: None`, and
    /// `gpu_error` carries the reason when nothing else failed; the other devices are read
    /// as usual.
    ///
    /// # Errors
    /// When the process's resident memory cannot be read.
    pub fn snapshot_all_with_telemetry(&self) -> Result<Vec<Snapshot>> {
        let mut snapshots = self.snapshot_all()?;
        for (index, snapshot) in (0_u32..).zip(snapshots.iter_mut()) {
            match self.telemetry(index) {
                Ok(telemetry) => snapshot.telemetry = Some(telemetry),
                Err(e) => {
                    if snapshot.gpu_error.is_none() {
                        snapshot.gpu_error = Some(e);
                    }
                }
            }
        }
        Ok(snapshots)
    }

    /// One observation of the whole machine: host memory, pressure and cgroup; every GPU with
    /// its memory, identity, MIG instances and (as `request` asks) telemetry and processes;
    /// and what could not be seen. Each source is read at most once. Never fails as a whole:
    /// see [`Frame`] for where each failure is kept.
    ///
    /// ```no_run
    /// let probe = hypomnesis::Probe::new();
    /// let frame = probe.frame(hypomnesis::FrameRequest::ALL);
    /// for d in &frame.devices {
    ///     println!("GPU {}: {:?} bytes free", d.device.index, d.device.free_bytes);
    /// }
    /// for row in frame.processes() {
    ///     println!("pid {} holds {:?} bytes on GPU {}", row.pid, row.used_bytes, row.device_index);
    /// }
    /// for note in frame.notes() {
    ///     eprintln!("{}", note.message);
    /// }
    /// ```
    #[must_use]
    pub fn frame(&self, request: FrameRequest) -> Frame {
        let mut frame = Frame::empty(request);
        match self.host_memory() {
            Ok(host) => frame.host = Some(host),
            Err(e) => frame.host_error = Some(e),
        }
        match self
            .gpu_call("frame", move |gpu| gpu.frame(request))
            .and_then(|gpu| gpu)
        {
            Ok((devices, unreadable)) => {
                frame.devices = devices;
                frame.unreadable_devices = unreadable;
            }
            Err(e) => frame.gpu_error = Some(e),
        }
        let host = frame.host.as_ref();
        for d in &mut frame.devices {
            d.device
                .fill_budget(host.filter(|_| d.device.unified_memory));
        }
        frame
    }

    /// A meter of device `index`'s dedicated and shared memory, from the backend the GPU
    /// order names for it (PDH): the device is found through the guard like any GPU call, the
    /// meter opened on the caller's thread (its PDH query is not `Send`).
    #[cfg(all(windows, feature = "pdh"))]
    pub(crate) fn spill_meter(&self, index: u32) -> Result<Box<dyn crate::gpu::SpillMeter>> {
        let device = self.gpu_call("spill_meter", move |gpu| gpu.locate(index))??;
        self.gpu.spill_meter(&device)
    }

    /// How long the GPU call in flight has been running, when it has overrun
    /// [`ProbeBuilder::driver_timeout`]: the driver or a GPU is hung, and GPU questions fail at
    /// once until the call returns. `None` without a timeout, or while calls answer in time.
    ///
    /// A program that sees `Some` when it ends should exit without unloading vendor libraries
    /// (`std::process::exit` runs their exit handlers, which may wait on the hung call).
    #[must_use]
    pub fn stuck_driver_call(&self) -> Option<Duration> {
        self.guard.as_ref().and_then(DriverGuard::stuck_for)
    }

    /// Runs a GPU call: on the caller's thread, or with [`ProbeBuilder::driver_timeout`] on
    /// the guard's worker, bounded by the timeout.
    fn gpu_call<R: Send + 'static>(
        &self,
        what: &str,
        call: impl FnOnce(&GpuBackends) -> R + Send + 'static,
    ) -> Result<R> {
        match &self.guard {
            None => Ok(call(&self.gpu)),
            Some(guard) => {
                let gpu = Arc::clone(&self.gpu);
                guard.call(what, move || call(&gpu))
            }
        }
    }

    /// The `/proc` root this probe reads.
    #[must_use]
    pub fn proc_root(&self) -> &Path {
        &self.proc_root
    }
}

/// Device `index` and process `pid`'s memory on it, for a snapshot.
fn own_gpu_part(
    gpu: &GpuBackends,
    index: u32,
    pid: u32,
) -> (
    Option<GpuDeviceInfo>,
    Option<ProcessGpuInfo>,
    Option<HypomnesisError>,
) {
    match gpu.device_info(index) {
        Ok(device) => match gpu.own_process_on(&device, pid) {
            Ok(own) => (Some(device), Some(own), None),
            Err(e) => (Some(device), None, Some(e)),
        },
        Err(e) => (None, None, Some(e)),
    }
}

/// The calling process's RSS source, opened once.
#[derive(Debug)]
struct OwnRss {
    #[cfg(target_os = "linux")]
    statm: Result<crate::ram::linux::StatmReader>,
}

impl OwnRss {
    fn open(proc_root: &Path) -> Self {
        #[cfg(target_os = "linux")]
        {
            Self {
                statm: crate::ram::linux::StatmReader::open(proc_root),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = proc_root;
            Self {}
        }
    }

    fn read(&self) -> Result<u64> {
        #[cfg(target_os = "linux")]
        {
            match &self.statm {
                Ok(reader) => reader.rss_bytes(),
                Err(e) => Err(e.clone()),
            }
        }
        #[cfg(windows)]
        {
            crate::ram::windows::own_rss()
        }
        #[cfg(target_os = "macos")]
        {
            crate::ram::macos::own_rss()
        }
        #[cfg(not(any(target_os = "linux", windows, target_os = "macos")))]
        {
            Err(HypomnesisError::Unsupported {
                what: "process RSS",
                context: "on this platform yet",
            })
        }
    }
}

static GLOBAL: OnceLock<Probe> = OnceLock::new();

// The original crate's free-standing snapshot functions, defined here rather than with the
// record (snapshot.rs) so that the data module never calls the probe that fills it.
impl Snapshot {
    /// RAM plus device `device_index`, through the process-wide [`Probe`]. Fails only when
    /// RAM cannot be read; GPU failures leave `gpu`/`gpu_device` `None` and are kept in
    /// `gpu_error`.
    ///
    /// # Errors
    /// When the process's resident memory cannot be read.
    pub fn now(device_index: u32) -> Result<Self> {
        global().snapshot(device_index)
    }

    /// One snapshot per GPU, sharing one RAM reading. Empty when there is no GPU.
    ///
    /// # Errors
    /// When the process's resident memory cannot be read.
    pub fn all() -> Result<Vec<Self>> {
        global().snapshot_all()
    }
}

/// The process-wide probe behind the crate's free functions, built on first use.
pub(crate) fn global() -> &'static Probe {
    GLOBAL.get_or_init(Probe::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn a_process_user_is_named_from_the_probes_proc_root_as_rows_name_it() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("4242");
        std::fs::create_dir_all(&dir).unwrap();
        // A uid no user database knows: named by its number, as a row's `user` would be.
        std::fs::write(dir.join("status"), "Name:\tjob\nUid:\t3999999\t0\t0\t0\n").unwrap();
        let probe = Probe::builder().proc_root(root.path()).build();
        assert_eq!(probe.process_user(4242).as_deref(), Some("3999999"));
        assert_eq!(probe.process_user(4243), None);
    }

    #[test]
    fn probe_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Probe>();
    }

    #[test]
    fn the_driver_timeout_also_bounds_nvidia_smi_unless_it_has_its_own() {
        let second = Duration::from_secs(1);
        let builder = Probe::builder();
        assert_eq!(
            builder.effective_nvidia_smi_timeout(),
            DEFAULT_NVIDIA_SMI_TIMEOUT
        );
        let builder = builder.driver_timeout(second);
        assert_eq!(builder.effective_nvidia_smi_timeout(), second);
        let builder = builder.nvidia_smi_timeout(3 * second);
        assert_eq!(builder.effective_nvidia_smi_timeout(), 3 * second);
    }
}

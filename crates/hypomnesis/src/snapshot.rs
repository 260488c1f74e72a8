//! The records every backend fills in: one device, one process on a device, the calling
//! process's own GPU memory, and a snapshot tying them to the process's RAM.
//!
//! The same types are returned on every platform and by every backend, so a program (or
//! `hmn --json`) sees one shape whether the numbers came from NVML, `nvidia-smi` or, later,
//! DRM, DXGI or Metal. All sizes are bytes. A figure that could not be measured is `None`,
//! and [`GpuDeviceInfo::unavailable`] says why — a missing number is never reported as 0.

use crate::error::HypomnesisError;
#[doc(inline)]
pub use crate::model::{GpuQuerySource, GpuVendor};
use crate::unavailable::{DeviceField, Unavailable};

/// One GPU, as a whole device.
///
/// NVIDIA figures follow NVML's `nvmlMemory_v2_t` (R510+), the same as `nvidia-smi`:
/// `total = reserved + free + used`, where `reserved` is memory the driver and firmware set
/// aside and `used` is what contexts have allocated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct GpuDeviceInfo {
    /// The index callers pass to [`crate::device_info`] and friends. For NVIDIA this is NVML's
    /// index (the same as `nvidia-smi`'s, which is not always `CUDA_VISIBLE_DEVICES` order).
    pub index: u32,
    /// Marketing name (`"NVIDIA H100 80GB HBM3"`). `None` when the driver would not say.
    pub name: Option<String>,
    /// Who made it.
    pub vendor: GpuVendor,
    /// Stable identifier (`"GPU-…"` for NVIDIA, `"MIG-…"` for a MIG instance). `None` when
    /// the backend has no UUID.
    pub uuid: Option<String>,
    /// PCI bus id in NVML's form, `"00000000:00:09.0"`. `None` when unknown.
    pub pci_bus_id: Option<String>,
    /// Kernel driver version (`"590.48.01"` for NVIDIA). `None` when unknown.
    pub driver_version: Option<String>,
    /// Highest CUDA version the driver supports (`"12.2"`). `None` off NVIDIA or when unknown.
    pub cuda_driver_version: Option<String>,
    /// Installed device memory, bytes. `None` when the device has no dedicated memory the
    /// driver will report (unified-memory parts such as GB10) or the query failed.
    pub total_bytes: Option<u64>,
    /// Memory no context has allocated, bytes. `None` as for `total_bytes`.
    pub free_bytes: Option<u64>,
    /// Memory allocated by contexts, bytes, *excluding* `reserved_bytes`. `None` as for
    /// `total_bytes`.
    pub used_bytes: Option<u64>,
    /// Memory reserved by the driver and firmware, bytes (inside `total_bytes`). `None` when
    /// the driver predates `nvmlDeviceGetMemoryInfo_v2` (before R510) or the backend cannot
    /// tell; `used_bytes` then includes it.
    pub reserved_bytes: Option<u64>,
    /// System RAM the GPU may map for its buffers, bytes: amdgpu's GTT size, Windows
    /// DXGI's `SharedSystemMemory`. `None` when the platform has no such figure.
    pub system_total_bytes: Option<u64>,
    /// GPU buffers currently held in system RAM, bytes: amdgpu's GTT in use, Windows PDH
    /// `GPU Adapter Memory` `Shared Usage`. On an APU this is where a model lives. `None`
    /// when the platform has no such figure.
    pub system_used_bytes: Option<u64>,
    /// `true` when the GPU shares system RAM with the CPU (Apple Silicon, GB10, APUs): its
    /// budget is host memory, see [`crate::HostMemory`].
    pub unified_memory: bool,
    /// NVIDIA MIG: the device's MIG devices (one per compute instance), when MIG is enabled
    /// and NVML lists them; empty otherwise. A process's allocation cannot cross a GPU
    /// instance, so on a MIG device what fits is decided per instance (see
    /// [`GpuDeviceInfo::roomiest_mig_instance`]).
    pub mig_instances: Vec<MigInstance>,
    /// How much a new allocation on this device can still get, bytes, decided once here for
    /// every view (`hmn fits`, the summary, the exporter). A discrete GPU: its free memory.
    /// A unified or carve-out device (APU, GB10, Apple, an integrated GPU) allocates from
    /// host RAM: the smallest of the room left under the GPU's own system-memory limit
    /// (amdgpu GTT, Metal's working set, DXGI shared memory), the host's available memory
    /// and the room under the cgroup limit — or its dedicated carve-out's free memory, when
    /// that is larger. `None` when the figures it needs are unknown (reason in
    /// `unavailable`), and on records not read through a [`crate::Probe`] (the backends'
    /// own caches).
    pub budget_bytes: Option<u64>,
    /// Which figure bounded `budget_bytes`. `None` when `budget_bytes` is.
    pub budget_basis: Option<BudgetBasis>,
    /// Why each `None` field above is `None`.
    pub unavailable: Vec<Unavailable<DeviceField>>,
    /// Which backend produced this record.
    pub source: GpuQuerySource,
}

/// One MIG device of a GPU in MIG mode: a compute instance of a GPU instance. Memory belongs
/// to the GPU instance, so the compute instances of one GPU instance show the same figures.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct MigInstance {
    /// GPU instance id (`nvmlDeviceGetGpuInstanceId`), as processes report it. `None` when
    /// NVML would not say.
    pub gpu_instance_id: Option<u32>,
    /// Compute instance id (`nvmlDeviceGetComputeInstanceId`). `None` when NVML would not say.
    pub compute_instance_id: Option<u32>,
    /// `"MIG-…"`. `None` when NVML would not say.
    pub uuid: Option<String>,
    /// The GPU instance's memory, bytes. `None` when unknown or refused as impossible (the
    /// library's rule, [`impossible_memory`]).
    pub total_bytes: Option<u64>,
    /// Of it, memory no context has allocated, bytes. `None` as for `total_bytes`.
    pub free_bytes: Option<u64>,
    /// Of it, memory allocated, bytes. `None` as for `total_bytes`.
    pub used_bytes: Option<u64>,
}

impl MigInstance {
    // Only NVML lists MIG devices.
    #[cfg_attr(not(feature = "nvml"), allow(dead_code))]
    pub(crate) fn new(
        gpu_instance_id: Option<u32>,
        compute_instance_id: Option<u32>,
        uuid: Option<String>,
        memory: Option<(u64, u64, u64, Option<u64>)>,
    ) -> Self {
        let memory = memory.filter(|&(total, free, used, reserved)| {
            impossible_memory(Some(total), Some(free), Some(used), reserved).is_none()
        });
        Self {
            gpu_instance_id,
            compute_instance_id,
            uuid,
            total_bytes: memory.map(|m| m.0),
            free_bytes: memory.map(|m| m.1),
            used_bytes: memory.map(|m| m.2),
        }
    }
}

/// What bounded a device's [`GpuDeviceInfo::budget_bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum BudgetBasis {
    /// The device's free memory (a discrete GPU, or a carve-out larger than what host
    /// memory allows).
    DeviceFree,
    /// NVIDIA MIG: the free memory of the GPU instance with the most room
    /// ([`GpuDeviceInfo::roomiest_mig_instance`]); an allocation cannot cross instances.
    MigInstanceFree,
    /// The GPU's own limit on system memory minus what it holds there (amdgpu GTT total −
    /// GTT used; Metal's recommended working set − in use; DXGI shared − shared usage).
    GpuSystemLimit,
    /// The host's memory available for new allocations.
    HostAvailable,
    /// The cgroup's limit minus its usage (page cache included, so this is conservative).
    CgroupLimit,
}

impl BudgetBasis {
    /// The name used in JSON (`"device_free"`, `"gpu_system_limit"`, `"host_available"`,
    /// `"cgroup_limit"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DeviceFree => "device_free",
            Self::MigInstanceFree => "mig_instance_free",
            Self::GpuSystemLimit => "gpu_system_limit",
            Self::HostAvailable => "host_available",
            Self::CgroupLimit => "cgroup_limit",
        }
    }
}

/// A device's budget and what bounded it, or why it has none. Pure: see
/// [`GpuDeviceInfo::budget_bytes`] for the rule. `host` is needed for unified devices only.
pub(crate) fn decide_budget(
    device: &GpuDeviceInfo,
    host: Option<&crate::HostMemory>,
) -> std::result::Result<(u64, BudgetBasis), String> {
    if let Some(free) = device.roomiest_mig_instance().and_then(|m| m.free_bytes) {
        return Ok((free, BudgetBasis::MigInstanceFree));
    }
    let device_free = device.free_bytes.map(|f| (f, BudgetBasis::DeviceFree));
    if !device.unified_memory {
        return device_free.ok_or_else(|| {
            format!(
                "free memory unknown ({})",
                device
                    .unavailable_reason(DeviceField::FreeBytes)
                    .unwrap_or("no reason given")
            )
        });
    }
    let gpu_limit = device
        .system_total_bytes
        .zip(device.system_used_bytes)
        .map(|(total, used)| (total.saturating_sub(used), BudgetBasis::GpuSystemLimit));
    let host_available = host
        .and_then(|h| h.available_bytes)
        .map(|a| (a, BudgetBasis::HostAvailable));
    let cgroup = host
        .and_then(|h| h.cgroup.as_ref())
        .and_then(|c| c.limit_bytes.zip(c.usage_bytes))
        .map(|(limit, usage)| (limit.saturating_sub(usage), BudgetBasis::CgroupLimit));
    let host_side = [gpu_limit, host_available, cgroup]
        .into_iter()
        .flatten()
        .min_by_key(|(bytes, _)| *bytes);
    match (host_side, device_free) {
        (Some(host), Some(free)) => Ok(if free.0 > host.0 { free } else { host }),
        (Some(one), None) | (None, Some(one)) => Ok(one),
        (None, None) => Err(
            "unified memory, and neither the host's available memory nor the GPU's own system-memory limit is known"
                .to_owned(),
        ),
    }
}

impl GpuDeviceInfo {
    /// NVIDIA MIG: the MIG device whose GPU instance has the most free memory (the lowest
    /// GPU instance id among equals), the one a new allocation is likeliest to fit in. `None`
    /// when MIG is off or no instance's free memory is known.
    #[must_use]
    pub fn roomiest_mig_instance(&self) -> Option<&MigInstance> {
        self.mig_instances
            .iter()
            .filter(|m| m.free_bytes.is_some())
            .max_by(|a, b| {
                a.free_bytes
                    .cmp(&b.free_bytes)
                    .then_with(|| b.gpu_instance_id.cmp(&a.gpu_instance_id))
                    .then_with(|| b.compute_instance_id.cmp(&a.compute_instance_id))
            })
    }

    /// Sets `budget_bytes` and `budget_basis` (see [`decide_budget`]), or the reason.
    pub(crate) fn fill_budget(&mut self, host: Option<&crate::HostMemory>) {
        self.unavailable
            .retain(|u| u.field != DeviceField::BudgetBytes);
        match decide_budget(self, host) {
            Ok((bytes, basis)) => {
                self.budget_bytes = Some(bytes);
                self.budget_basis = Some(basis);
            }
            Err(reason) => {
                self.budget_bytes = None;
                self.budget_basis = None;
                self.mark_unavailable(DeviceField::BudgetBytes, reason);
            }
        }
    }
}

impl GpuDeviceInfo {
    /// A record with only the identity set; every figure `None`.
    pub(crate) fn new(index: u32, vendor: GpuVendor, source: GpuQuerySource) -> Self {
        Self {
            index,
            name: None,
            vendor,
            uuid: None,
            pci_bus_id: None,
            driver_version: None,
            cuda_driver_version: None,
            total_bytes: None,
            free_bytes: None,
            used_bytes: None,
            reserved_bytes: None,
            system_total_bytes: None,
            system_used_bytes: None,
            unified_memory: false,
            mig_instances: Vec::new(),
            budget_bytes: None,
            budget_basis: None,
            unavailable: Vec::new(),
            source,
        }
    }

    /// The name, or `"unknown GPU"`.
    #[must_use]
    pub fn name_or_unknown(&self) -> &str {
        self.name.as_deref().unwrap_or("unknown GPU")
    }

    /// Why `field` is `None`, when a reason was recorded.
    #[must_use]
    pub fn unavailable_reason(&self, field: DeviceField) -> Option<&str> {
        self.unavailable
            .iter()
            .find(|u| u.field == field)
            .map(|u| u.reason.as_str())
    }

    pub(crate) fn mark_unavailable(&mut self, field: DeviceField, reason: impl Into<String>) {
        self.unavailable.push(Unavailable::new(field, reason));
    }

    /// Clears free / used / reserved, with the reason, when [`impossible_memory`] refuses
    /// the figures; the total too when it is itself the "not available" value (otherwise it
    /// is kept: the installed memory is a fact of the hardware, and an impossible split says
    /// that the use figures are garbage). Called by the dispatcher on every backend's records.
    pub(crate) fn refuse_impossible_memory(&mut self) {
        let Some(reason) = impossible_memory(
            self.total_bytes,
            self.free_bytes,
            self.used_bytes,
            self.reserved_bytes,
        ) else {
            return;
        };
        let keep_total = self
            .total_bytes
            .is_some_and(|t| t != NOT_AVAILABLE && t > 0);
        let fields: &[DeviceField] = if keep_total {
            &[
                DeviceField::FreeBytes,
                DeviceField::UsedBytes,
                DeviceField::ReservedBytes,
            ]
        } else {
            &DeviceField::MEMORY
        };
        for &field in fields {
            self.unavailable.retain(|u| u.field != field);
            self.mark_unavailable(field, reason.clone());
        }
        if !keep_total {
            self.total_bytes = None;
        }
        self.free_bytes = None;
        self.used_bytes = None;
        self.reserved_bytes = None;
    }
}

/// Rounding slack allowed when a device's parts are compared with its total: `nvidia-smi`
/// rounds each of reserved, used and free to whole MiB, so honest figures may overshoot by
/// up to that much.
const PARTS_SLACK_BYTES: u128 = 4 << 20;

/// `u64::MAX`, the "not available" value drivers put where they have no figure (NVML's
/// `NVML_VALUE_NOT_AVAILABLE`, a corrupt fdinfo line).
const NOT_AVAILABLE: u64 = u64::MAX;

/// Why a device's memory figures cannot all be true, or `None` when they can: a figure that
/// is the `u64::MAX` "not available" value, a part larger than the total, or reserved + free
/// + used (summed without overflow) past the total by more than rounding.
///
/// Every backend's device record goes through this one rule (see
/// `GpuDeviceInfo::refuse_impossible_memory`), so no view shows figures another refuses.
#[must_use]
pub fn impossible_memory(
    total: Option<u64>,
    free: Option<u64>,
    used: Option<u64>,
    reserved: Option<u64>,
) -> Option<String> {
    let figures = [total, free, used, reserved];
    if !figures.contains(&Some(NOT_AVAILABLE)) {
        let total = total?;
        let parts: u128 = [free, used, reserved]
            .iter()
            .flatten()
            .map(|&b| u128::from(b))
            .sum();
        let part_over = [free, used, reserved].iter().flatten().any(|&b| b > total);
        if !part_over && parts <= u128::from(total) + PARTS_SLACK_BYTES {
            return None;
        }
    }
    let show = |b: Option<u64>| b.map_or_else(|| "unknown".to_owned(), |b| b.to_string());
    Some(format!(
        "the driver reported impossible memory figures (total {}, free {}, used {}, reserved {} bytes: a part exceeds the total or a value is the not-available sentinel); ignored",
        show(total),
        show(free),
        show(used),
        show(reserved),
    ))
}

/// Why a process's figure of `bytes` on a device cannot be true, or `None` when it can: the
/// `u64::MAX` "not available" value, or more than `device_total` (the device's total, when
/// known; larger figures are driver garbage such as R570's).
#[must_use]
pub fn implausible_process_bytes(bytes: u64, device_total: Option<u64>) -> Option<String> {
    if bytes == NOT_AVAILABLE {
        return Some("the driver's not-available value (u64::MAX)".to_owned());
    }
    match device_total {
        Some(total) if bytes > total => Some(format!(
            "{} is more than the device's total of {}",
            gib(bytes),
            gib(total)
        )),
        _ => None,
    }
}

/// `"97.7 GiB (104857600000 bytes)"`, for the sentences of this module.
fn gib(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // display only
    let gib = bytes as f64 / f64::from(1_u32 << 30);
    format!("{gib:.1} GiB ({bytes} bytes)")
}

/// How a process uses a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum GpuProcessKind {
    /// A compute context (CUDA, OpenCL, ...).
    Compute,
    /// A graphics context (OpenGL, Vulkan, a compositor).
    Graphics,
    /// Both a compute and a graphics context on the same device.
    ComputeAndGraphics,
    /// The backend does not say.
    Unknown,
}

impl GpuProcessKind {
    /// The kind of a process seen in both lists `self` and `other`.
    #[must_use]
    pub const fn merge(self, other: Self) -> Self {
        match (self, other) {
            (Self::Unknown, x) | (x, Self::Unknown) => x,
            (Self::Compute, Self::Compute) => Self::Compute,
            (Self::Graphics, Self::Graphics) => Self::Graphics,
            (Self::Compute | Self::Graphics | Self::ComputeAndGraphics, _) => {
                Self::ComputeAndGraphics
            }
        }
    }
}

/// One process holding memory on one GPU. A process on several GPUs has one entry per GPU.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct GpuProcessEntry {
    /// Process id, as seen from this PID namespace when it could be mapped (NVML reports host
    /// PIDs inside containers).
    pub pid: u32,
    /// Process name: the full executable name on Linux (past `comm`'s 15-byte limit), or what
    /// the driver reported. `None` when the process could not be read.
    pub name: Option<String>,
    /// The user running the process (a name, or the numeric uid when the user database does
    /// not know it). `None` when the process could not be read.
    pub user: Option<String>,
    /// The full command line, arguments separated by spaces. `None` when unreadable (another
    /// user's process without privileges, a kernel thread, an exited process).
    pub command: Option<String>,
    /// GPU memory the process holds on this device, bytes: device memory (VRAM) for
    /// discrete GPUs. `None` when the driver does not report per-process figures (Windows
    /// WDDM through NVML, some MIG setups).
    pub used_bytes: Option<u64>,
    /// GPU buffers the process holds in system RAM on this device's behalf, bytes: GTT on
    /// amdgpu, `drm-resident-system` on Intel, PDH `Shared Usage` on Windows. `None` when
    /// the backend has no such figure (NVML).
    pub system_bytes: Option<u64>,
    /// Of `used_bytes + system_bytes`, the part shared with other processes (DRM
    /// `drm-shared-*`), so per-device sums can be reconciled. `None` when unknown.
    pub shared_bytes: Option<u64>,
    /// The device's index (see [`GpuDeviceInfo::index`]).
    pub device_index: u32,
    /// Compute, graphics or both.
    pub kind: GpuProcessKind,
    /// MIG GPU instance id. `None` when MIG is off.
    pub gpu_instance_id: Option<u32>,
    /// MIG compute instance id. `None` when MIG is off.
    pub compute_instance_id: Option<u32>,
    /// How busy the process kept the GPU's compute (SM) engines, percent: NVML's mean
    /// `smUtil` over the samples the driver took since the previous reading of this device
    /// through the same [`crate::Probe`] (the first reading covers every sample the driver
    /// still buffers). `None` when there was no new sample for the process ("no sample since
    /// the last reading": an idle process, or two readings too close together), on MIG,
    /// and for backends without per-process utilization (nvidia-smi, DRM, PDH, Metal).
    pub utilization_percent: Option<f64>,
    /// The process's resident memory, bytes, as [`crate::ProcessMemory::rss_bytes`]; filled
    /// only by a [`crate::Frame`] that asks for process details, `None` otherwise or when
    /// the OS would not say.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub rss_bytes: Option<u64>,
    /// The process's cgroup path (`/kubepods/…/pod<uid>/…`, `/system.slice/docker-….scope`,
    /// `/slurm/uid_…/job_…`): which container, pod or job it belongs to. Filled as
    /// `rss_bytes` is.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub cgroup: Option<String>,
    /// Which backend listed it.
    pub source: GpuQuerySource,
    /// Linux DRM: the clients this process holds on this device that other processes hold
    /// too (an fd inherited across `fork` or passed over a socket). Their memory is in this
    /// row's `used_bytes` / `system_bytes` — every holder shows what it holds — and is
    /// counted once in totals, for the client's [`SharedClient::counted_for`] (see
    /// [`GpuProcessEntry::counted_used_bytes`]). Empty when nothing is shared.
    pub shared_clients: Vec<SharedClient>,
}

/// One DRM client held by several processes.
///
/// Which holder its memory is counted for: the one that started first (`/proc/<pid>/stat`
/// start time), which for an fd inherited across `fork` is the opener, the parent — also
/// after PID wraparound gave the child a lower number; among holders that started in the same
/// clock tick, or whose start time is unreadable, the lowest PID.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SharedClient {
    /// The client's `drm-client-id` (legacy amdgpu: its `pasid`); `None` when the driver
    /// prints no id.
    pub client_id: Option<u64>,
    /// Every process holding it, sorted (this row's among them).
    pub holders: Vec<u32>,
    /// The holder whose row its memory is counted for in totals.
    pub counted_for: u32,
    /// Its resident device memory (VRAM), bytes; `None` when the driver prints none.
    pub used_bytes: Option<u64>,
    /// Its resident system memory (GTT), bytes; `None` when the driver prints none.
    pub system_bytes: Option<u64>,
}

impl GpuProcessEntry {
    /// The other processes this one shares DRM clients with on this device, sorted; empty
    /// when it shares none.
    #[must_use]
    pub fn shared_with(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .shared_clients
            .iter()
            .flat_map(|c| c.holders.iter().copied())
            .filter(|&p| p != self.pid)
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// `used_bytes` without the shared clients counted for another process: what this row
    /// adds to a total, so a client held by several processes is summed once.
    #[must_use]
    pub fn counted_used_bytes(&self) -> Option<u64> {
        self.used_bytes
            .map(|used| used.saturating_sub(self.counted_elsewhere(|c| c.used_bytes)))
    }

    /// `system_bytes` without the shared clients counted for another process (see
    /// [`GpuProcessEntry::counted_used_bytes`]).
    #[must_use]
    pub fn counted_system_bytes(&self) -> Option<u64> {
        self.system_bytes
            .map(|system| system.saturating_sub(self.counted_elsewhere(|c| c.system_bytes)))
    }

    /// The `used_bytes` of `rows` summed with every shared DRM client counted once, whichever
    /// of its holders `rows` has (a process and the children that inherited its client, say);
    /// `None` when a row's figure is unknown. Saturates.
    #[must_use]
    pub fn sum_used_once<'a>(rows: impl IntoIterator<Item = &'a Self>) -> Option<u64> {
        let mut seen: Vec<(u32, Option<u64>, &[u32])> = Vec::new();
        let mut total: u64 = 0;
        for row in rows {
            let mut used = row.used_bytes?;
            for client in &row.shared_clients {
                let key = (
                    row.device_index,
                    client.client_id,
                    client.holders.as_slice(),
                );
                if seen.contains(&key) {
                    used = used.saturating_sub(client.used_bytes.unwrap_or(0));
                } else {
                    seen.push(key);
                }
            }
            total = total.saturating_add(used);
        }
        Some(total)
    }

    fn counted_elsewhere(&self, figure: impl Fn(&SharedClient) -> Option<u64>) -> u64 {
        self.shared_clients
            .iter()
            .filter(|c| c.counted_for != self.pid)
            .filter_map(figure)
            .fold(0, u64::saturating_add)
    }

    // Every backend that lists processes builds its rows with this; a build with none of them
    // (Windows without `pdh`, macOS without `metal`, no NVIDIA feature) has no caller.
    #[cfg_attr(
        not(any(
            test,
            target_os = "linux",
            feature = "nvml",
            feature = "nvidia-smi-fallback",
            feature = "test-helpers",
            all(windows, feature = "pdh"),
            all(target_os = "macos", feature = "metal"),
        )),
        allow(dead_code)
    )]
    pub(crate) fn new(pid: u32, device_index: u32, source: GpuQuerySource) -> Self {
        Self {
            pid,
            name: None,
            user: None,
            command: None,
            used_bytes: None,
            system_bytes: None,
            shared_bytes: None,
            device_index,
            kind: GpuProcessKind::Unknown,
            gpu_instance_id: None,
            compute_instance_id: None,
            utilization_percent: None,
            rss_bytes: None,
            cgroup: None,
            source,
            shared_clients: Vec::new(),
        }
    }
}

/// The calling process's own memory on one GPU.
///
/// Most backends see the process's own figure ([`ProcessGpuInfo::process_bytes`]). The
/// `nvidia-smi` fallback cannot: it only knows how much the whole device has in use, so it
/// leaves `process_bytes` `None` and gives that figure as [`ProcessGpuInfo::device_used_bytes`],
/// an upper bound on the process's share. The two are separate fields so that a device-wide
/// figure is never read as the process's own.
///
/// # From the original crate's `used_bytes` / `is_per_process`
/// The original hypomnesis crate had one `used_bytes: u64` whose meaning depended on
/// `is_per_process`. Both fields are still here, filled as before, and deprecated so the
/// compiler points every reader at the field it meant: `process_bytes` where `is_per_process`
/// was checked, [`ProcessGpuInfo::upper_bound_bytes`] where either meaning was acceptable.
/// They are kept as fields (not replaced by methods) because the original crate's users read
/// them as fields, and a method would stop that code compiling.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ProcessGpuInfo {
    /// This process's own memory on the device, bytes (0 when it holds no context there).
    /// `None` when the backend can only tell the device's use (the `nvidia-smi` fallback,
    /// when NVML cannot be loaded); `device_used_bytes` then bounds it.
    pub process_bytes: Option<u64>,
    /// The whole device's used memory, bytes: an upper bound on this process's share, given
    /// when `process_bytes` is `None`. `None` when `process_bytes` is known.
    pub device_used_bytes: Option<u64>,
    /// The original crate's figure: `process_bytes` when known, else `device_used_bytes`.
    #[deprecated(
        since = "0.1.0",
        note = "means the whole device's use under the nvidia-smi fallback; read `process_bytes` (this process only) or `upper_bound_bytes()` (either)"
    )]
    #[cfg_attr(feature = "serde", serde(skip))]
    pub used_bytes: u64,
    /// The original crate's flag: `true` when `used_bytes` is this process's own figure,
    /// i.e. `process_bytes.is_some()`.
    #[deprecated(since = "0.1.0", note = "read `process_bytes.is_some()`")]
    #[cfg_attr(feature = "serde", serde(skip))]
    pub is_per_process: bool,
    /// The device's index.
    pub device_index: u32,
    /// Which backend produced it.
    pub source: GpuQuerySource,
}

impl ProcessGpuInfo {
    /// The process's own figure, measured.
    #[allow(deprecated)] // fills the original crate's fields too
    #[cfg_attr(
        not(any(
            feature = "nvml",
            target_os = "linux",
            all(windows, feature = "dxgi"),
            all(target_os = "macos", feature = "metal")
        )),
        allow(dead_code) // no backend of this build measures a process's own figure
    )]
    #[must_use]
    pub(crate) const fn own(bytes: u64, device_index: u32, source: GpuQuerySource) -> Self {
        Self {
            process_bytes: Some(bytes),
            device_used_bytes: None,
            used_bytes: bytes,
            is_per_process: true,
            device_index,
            source,
        }
    }

    /// Only the device's use is known: an upper bound on the process's figure.
    #[allow(deprecated)] // fills the original crate's fields too
    #[cfg_attr(not(feature = "nvidia-smi-fallback"), allow(dead_code))] // its only source
    #[must_use]
    pub(crate) const fn device_wide(
        device_used: u64,
        device_index: u32,
        source: GpuQuerySource,
    ) -> Self {
        Self {
            process_bytes: None,
            device_used_bytes: Some(device_used),
            used_bytes: device_used,
            is_per_process: false,
            device_index,
            source,
        }
    }

    /// The most this process can hold on the device, bytes: its own figure when known, else
    /// the device's use. What the original crate's `used_bytes` was.
    #[must_use]
    pub fn upper_bound_bytes(&self) -> u64 {
        self.process_bytes
            .or(self.device_used_bytes)
            .unwrap_or_default()
    }
}

/// Every process holding memory on one GPU, and what the listing could not see.
///
/// [`crate::Probe::processes`] returns the rows only; this also says how many processes
/// could not be inspected and why, so a tool can print "3 processes unreadable — re-run as
/// root" instead of letting a short list pass for a complete one. See
/// [`GpuProcessListing::findings`] for the same facts as structured notes with ready-made
/// sentences, and [`GpuProcessListing::notes`] for the sentences alone.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct GpuProcessListing {
    /// The processes, sorted by pid (as [`crate::Probe::processes`] returns them).
    pub rows: Vec<GpuProcessEntry>,
    /// Processes whose GPU use could not be inspected (Linux DRM: their `/proc/<pid>/fd` or a
    /// DRM fd's `fdinfo` was unreadable, typically another user's process without root),
    /// sorted. They may hold memory on this device that `rows` does not show. The same pids
    /// are reported for every DRM device of one scan.
    pub unreadable_pids: Vec<u32>,
    /// Rows whose process has no PID in the caller's PID namespace (NVML reports host PIDs;
    /// inside a container with its own `/proc` they cannot be mapped). Such a row keeps the
    /// PID the driver reported, and has no name unless the process is visible.
    pub hidden_by_pid_namespace: u32,
    /// Linux: rows whose PID has no directory in this procfs although the namespaces say it
    /// should (the process runs in another container whose PIDs this `/proc` does not show,
    /// or it exited after the driver listed it), sorted. Their user and command line are
    /// unknown; the name is the driver's when NVML could give it.
    pub absent_pids: Vec<u32>,
    /// Linux: rows whose process is in this procfs but whose files could not be read
    /// (another user's process under `hidepid`, or without the privileges an LSM asks for),
    /// sorted.
    pub refused_pids: Vec<u32>,
    /// Whether the caller runs as root (Linux: effective uid 0), so that a hint says "re-run
    /// as root" only where that would help.
    pub running_as_root: bool,
    /// Linux DRM: clients held by more than one process (an fd passed or inherited). Each
    /// holder has a row listing them in [`GpuProcessEntry::shared_clients`]; totals count
    /// each once ([`GpuProcessEntry::counted_used_bytes`]).
    pub shared_clients: u32,
    /// Linux DRM: clients on this device whose fdinfo has no `drm-` keys (nouveau, drivers
    /// and kernels without DRM fdinfo): their holders are listed with unknown memory.
    pub clients_without_figures: u32,
    /// The rows come from `nvidia-smi`, which lists compute processes only: a process with
    /// only a graphics context on the device is missing.
    pub compute_only: bool,
    /// Linux DRM: fdinfo lines that could not be read and were ignored.
    pub malformed_lines: u32,
    /// Other things a person should know about this listing, one English sentence each (ROCm:
    /// processes seen by both fdinfo and KFD and reported once, KFD GPUs without a visible DRM
    /// card). Included in [`GpuProcessListing::notes`].
    pub other_notes: Vec<String>,
    /// Figures refused as implausible (larger than the device, the driver's "not available"
    /// sentinel): the pid and the sentence saying which figure and why; the row's figure is
    /// `None`.
    pub implausible: Vec<(u32, String)>,
}

/// What one [`ListingNote`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum ListingNoteKind {
    /// [`GpuProcessListing::unreadable_pids`].
    Unreadable,
    /// [`GpuProcessListing::hidden_by_pid_namespace`].
    HiddenByPidNamespace,
    /// [`GpuProcessListing::absent_pids`].
    NotInProcfs,
    /// [`GpuProcessListing::refused_pids`].
    NamesRefused,
    /// [`GpuProcessListing::shared_clients`].
    SharedClients,
    /// [`GpuProcessListing::clients_without_figures`].
    NoMemoryFigures,
    /// [`GpuProcessListing::compute_only`].
    ComputeOnly,
    /// [`GpuProcessListing::malformed_lines`].
    MalformedLines,
    /// One of [`GpuProcessListing::implausible`].
    ImplausibleFigure,
    /// One of [`GpuProcessListing::other_notes`].
    Other,
}

impl ListingNoteKind {
    /// The stable name used in JSON (`"not_in_procfs"`, ...).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unreadable => "unreadable",
            Self::HiddenByPidNamespace => "hidden_by_pid_namespace",
            Self::NotInProcfs => "not_in_procfs",
            Self::NamesRefused => "names_refused",
            Self::SharedClients => "shared_clients",
            Self::NoMemoryFigures => "no_memory_figures",
            Self::ComputeOnly => "compute_only",
            Self::MalformedLines => "malformed_lines",
            Self::ImplausibleFigure => "implausible_figure",
            Self::Other => "other",
        }
    }
}

/// One thing a listing could not see, or counted in a particular way.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ListingNote {
    /// What it is about.
    pub kind: ListingNoteKind,
    /// How many processes, clients or lines it concerns.
    pub count: u64,
    /// The processes concerned, sorted, where the listing knows them (empty otherwise).
    pub pids: Vec<u32>,
    /// One English sentence for a person, with what to do about it where something helps.
    pub message: String,
}

impl GpuProcessListing {
    /// A listing with only rows.
    #[cfg_attr(
        not(any(
            feature = "nvml",
            feature = "nvidia-smi-fallback",
            target_os = "linux",
            all(windows, feature = "pdh"),
            all(target_os = "macos", feature = "metal")
        )),
        allow(dead_code) // a build whose backends list no processes
    )]
    pub(crate) fn from_rows(rows: Vec<GpuProcessEntry>) -> Self {
        Self {
            rows,
            ..Self::default()
        }
    }

    /// Sets to `None` every row figure that [`implausible_process_bytes`] refuses for
    /// `device` (device memory against its total, system memory against its system total),
    /// with one note per row saying which and why. Called by the dispatcher on every
    /// backend's listing, so every view shows the same rows.
    pub(crate) fn refuse_implausible_rows(&mut self, device: Option<&GpuDeviceInfo>) {
        let total = device.and_then(|d| d.total_bytes);
        let system_total = device.and_then(|d| d.system_total_bytes);
        for row in &mut self.rows {
            let figures = [
                (&mut row.used_bytes, total, "device"),
                (&mut row.system_bytes, system_total, "system"),
                (&mut row.shared_bytes, None, "shared"),
            ];
            for (figure, limit, what) in figures {
                if let Some(bytes) = *figure
                    && let Some(why) = implausible_process_bytes(bytes, limit)
                {
                    *figure = None;
                    self.implausible.push((
                        row.pid,
                        format!(
                            "pid {}: {what} memory figure on GPU {} ignored as implausible: {why}",
                            row.pid, row.device_index
                        ),
                    ));
                }
            }
        }
    }

    /// English sentences about what the listing could not see or counted once, for a
    /// person (empty when there is nothing to say): the messages of
    /// [`GpuProcessListing::findings`].
    #[must_use]
    pub fn notes(&self) -> Vec<String> {
        self.findings().into_iter().map(|n| n.message).collect()
    }

    /// What the listing could not see or counted once, one note per kind.
    #[must_use]
    pub fn findings(&self) -> Vec<ListingNote> {
        let mut notes = Vec::new();
        let plural = |n: u64, one: &str, many: &str| {
            if n == 1 {
                one.to_owned()
            } else {
                many.to_owned()
            }
        };
        let mut note = |kind, count: u64, pids: &[u32], message: String| {
            if count > 0 {
                notes.push(ListingNote {
                    kind,
                    count,
                    pids: pids.to_vec(),
                    message,
                });
            }
        };
        let len = |v: &[u32]| u64::try_from(v.len()).unwrap_or(u64::MAX);
        let unreadable = len(&self.unreadable_pids);
        let message = if self.running_as_root {
            format!(
                "{unreadable} {} unreadable even as root (hidepid or a security module \
                 refuses): {} GPU memory is not shown",
                plural(unreadable, "process", "processes"),
                plural(unreadable, "its", "their"),
            )
        } else {
            format!(
                "{unreadable} {} unreadable — re-run as root to see {} GPU memory",
                plural(unreadable, "process", "processes"),
                plural(unreadable, "its", "their"),
            )
        };
        note(
            ListingNoteKind::Unreadable,
            unreadable,
            &self.unreadable_pids,
            message,
        );
        let hidden = u64::from(self.hidden_by_pid_namespace);
        note(
            ListingNoteKind::HiddenByPidNamespace,
            hidden,
            &[],
            format!(
                "{hidden} {} outside this PID namespace, shown with the driver's host {} — run \
                 with --pid=host or set HYPOMNESIS_PROC_ROOT to the host's /proc to name {}",
                plural(hidden, "process runs", "processes run"),
                plural(hidden, "PID", "PIDs"),
                plural(hidden, "it", "them"),
            ),
        );
        let absent = len(&self.absent_pids);
        #[cfg(windows)]
        note(
            ListingNoteKind::NotInProcfs,
            absent,
            &self.absent_pids,
            format!(
                "{absent} {} the driver lists {} not running any more (exited since it was \
                 listed): only the driver's name for {} is known",
                plural(absent, "process", "processes"),
                plural(absent, "is", "are"),
                plural(absent, "it", "them"),
            ),
        );
        #[cfg(not(windows))]
        note(
            ListingNoteKind::NotInProcfs,
            absent,
            &self.absent_pids,
            format!(
                "{absent} {} the driver lists {} not in this /proc (another container's, or \
                 exited since) — run with --pid=host or set HYPOMNESIS_PROC_ROOT to the host's \
                 /proc to see {} user and command",
                plural(absent, "process", "processes"),
                plural(absent, "is", "are"),
                plural(absent, "its", "their"),
            ),
        );
        let refused = len(&self.refused_pids);
        let fix = if cfg!(windows) {
            "(protected processes) — re-run elevated (as Administrator) to see them"
        } else if self.running_as_root {
            "even as root (hidepid or an LSM)"
        } else {
            "— re-run as root to see them"
        };
        note(
            ListingNoteKind::NamesRefused,
            refused,
            &self.refused_pids,
            format!(
                "{refused} {} name, user and command could not be read {fix}",
                plural(refused, "process's", "processes'"),
            ),
        );
        let shared = u64::from(self.shared_clients);
        let mut sharing: Vec<u32> = self
            .rows
            .iter()
            .filter(|r| !r.shared_clients.is_empty())
            .map(|r| r.pid)
            .collect();
        sharing.sort_unstable();
        sharing.dedup();
        note(
            ListingNoteKind::SharedClients,
            shared,
            &sharing,
            format!(
                "{shared} GPU {} shared between processes: every holder is listed, the memory \
                 counted once in totals, for the holder that started first",
                plural(shared, "client", "clients"),
            ),
        );
        let bare = u64::from(self.clients_without_figures);
        let mut bare_pids: Vec<u32> = self
            .rows
            .iter()
            .filter(|r| r.used_bytes.is_none() && r.system_bytes.is_none())
            .map(|r| r.pid)
            .collect();
        bare_pids.dedup();
        note(
            ListingNoteKind::NoMemoryFigures,
            bare,
            &bare_pids,
            format!(
                "{bare} GPU {} without memory figures: the driver prints no drm- keys in \
                 fdinfo (nouveau, or a kernel before DRM fdinfo), so {} shown with unknown memory",
                plural(bare, "client", "clients"),
                plural(bare, "its holder is", "their holders are"),
            ),
        );
        note(
            ListingNoteKind::ComputeOnly,
            u64::from(self.compute_only),
            &[],
            "nvidia-smi lists compute processes only: processes with only a graphics context \
             on this GPU are not shown"
                .to_owned(),
        );
        for (pid, why) in &self.implausible {
            note(ListingNoteKind::ImplausibleFigure, 1, &[*pid], why.clone());
        }
        for other in &self.other_notes {
            note(ListingNoteKind::Other, 1, &[], other.clone());
        }
        let malformed = u64::from(self.malformed_lines);
        note(
            ListingNoteKind::MalformedLines,
            malformed,
            &[],
            format!(
                "{malformed} malformed fdinfo {} ignored",
                plural(malformed, "line", "lines"),
            ),
        );
        notes
    }
}

/// The calling process's RAM and, for one GPU, its own and the device's memory.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Snapshot {
    /// Resident set size of the calling process, bytes (Linux: `statm` resident pages ×
    /// page size).
    pub ram_bytes: u64,
    /// The process's own memory on the GPU. `None` when it could not be measured; see
    /// `gpu_error`.
    pub gpu: Option<ProcessGpuInfo>,
    /// The GPU as a whole. `None` when it could not be measured; see `gpu_error`.
    pub gpu_device: Option<GpuDeviceInfo>,
    /// Why `gpu` or `gpu_device` is `None`.
    #[cfg_attr(feature = "serde", serde(serialize_with = "serialize_error_text"))]
    pub gpu_error: Option<HypomnesisError>,
    /// The device's utilization, temperature, power and clocks. Filled only when asked for
    /// ([`crate::Probe::snapshot_all_with_telemetry`]); `None` from [`Snapshot::now`],
    /// [`Snapshot::all`] and [`crate::Probe::snapshot`], which stay as cheap as before, and
    /// when the telemetry reading itself failed (a lost GPU).
    pub telemetry: Option<crate::DeviceTelemetry>,
}

#[cfg(feature = "serde")]
fn serialize_error_text<S: serde::Serializer>(
    error: &Option<HypomnesisError>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match error {
        Some(e) => serializer.serialize_some(&e.to_string()),
        None => serializer.serialize_none(),
    }
}

// `Snapshot::now` and `Snapshot::all` are defined next to the process-wide probe they read
// through (probe.rs), so this data module does not call the probe.
impl Snapshot {
    /// RAM in MiB.
    #[must_use]
    #[allow(clippy::cast_precision_loss)] // display-only: MiB as a float
    pub const fn ram_mb(&self) -> f64 {
        self.ram_bytes as f64 / (1024.0 * 1024.0)
    }

    /// The process's own VRAM in MiB, when measured. `None` also when only the device's use
    /// is known (the `nvidia-smi` fallback: see [`ProcessGpuInfo::device_used_bytes`]); the
    /// original crate gave the device's use here.
    #[must_use]
    #[allow(clippy::cast_precision_loss)] // display-only: MiB as a float
    pub fn vram_mb(&self) -> Option<f64> {
        self.gpu
            .as_ref()
            .and_then(|g| g.process_bytes)
            .map(|bytes| bytes as f64 / (1024.0 * 1024.0))
    }
}

#[cfg(feature = "test-helpers")]
pub use builders::{
    BuilderText, GpuDeviceInfoBuilder, GpuProcessEntryBuilder, ProcessGpuInfoBuilder,
    SnapshotBuilder,
};

#[cfg(feature = "test-helpers")]
mod builders {
    //! Builders so downstream crates can make records in their own tests.
    use super::*;

    impl MigInstance {
        /// A MIG instance (feature `test-helpers`): GPU instance `gpu_instance_id`, compute
        /// instance `compute_instance_id`, and the GPU instance's `(total, free, used)` bytes,
        /// refused as the library refuses impossible figures.
        #[must_use]
        pub fn for_test(
            gpu_instance_id: u32,
            compute_instance_id: u32,
            memory: Option<(u64, u64, u64)>,
        ) -> Self {
            Self::new(
                Some(gpu_instance_id),
                Some(compute_instance_id),
                None,
                memory.map(|(total, free, used)| (total, free, used, None)),
            )
        }
    }

    /// Builds a [`GpuDeviceInfo`] (feature `test-helpers`).
    #[derive(Debug, Clone)]
    pub struct GpuDeviceInfoBuilder(GpuDeviceInfo);

    impl GpuDeviceInfo {
        /// Starts a builder for device 0, NVIDIA, source NVML, all figures `None`.
        #[must_use]
        pub fn builder() -> GpuDeviceInfoBuilder {
            GpuDeviceInfoBuilder(Self::new(0, GpuVendor::Nvidia, GpuQuerySource::Nvml))
        }
    }

    /// A text a builder's name-like setters take: `"H100"` (or `&String`) as this crate's
    /// builders always took, and `Some(String)` / `None` as the original crate's builders did
    /// (`.name(Some("GPU".to_owned()))`), so tests written for either compile. (Not `String`
    /// itself: callers that pass `&format!(…)` would then be told to drop the borrow.)
    pub trait BuilderText {
        /// The field's value.
        fn into_text(self) -> Option<String>;
    }

    impl BuilderText for &str {
        fn into_text(self) -> Option<String> {
            Some(self.to_owned())
        }
    }

    impl BuilderText for &String {
        fn into_text(self) -> Option<String> {
            Some(self.clone())
        }
    }

    impl BuilderText for Option<String> {
        fn into_text(self) -> Self {
            self
        }
    }

    impl BuilderText for Option<&str> {
        fn into_text(self) -> Option<String> {
            self.map(str::to_owned)
        }
    }

    /// Setters for builder fields: `field: Type` sets a plain field, `field [opt]: Type` an
    /// `Option` field to `Some`, `field [text]: _` an `Option<String>` field from any
    /// [`BuilderText`].
    macro_rules! setters {
        ($builder:ident { $($field:ident $([$kind:ident])? : $ty:ty),* $(,)? }) => {
            impl $builder {
                $(
                    #[doc = concat!("Sets `", stringify!($field), "`.")]
                    #[must_use]
                    pub fn $field(mut self, value: $ty) -> Self {
                        self.0.$field = setters!(@wrap value $($kind)?);
                        self
                    }
                )*
            }
        };
        (@wrap $value:ident) => { $value.into() };
        (@wrap $value:ident text) => { BuilderText::into_text($value) };
        (@wrap $value:ident opt) => { Some($value.into()) };
    }

    setters!(GpuDeviceInfoBuilder {
        index: u32,
        name [text]: impl BuilderText,
        vendor: GpuVendor,
        uuid [text]: impl BuilderText,
        pci_bus_id [text]: impl BuilderText,
        driver_version [text]: impl BuilderText,
        cuda_driver_version [text]: impl BuilderText,
        total_bytes [opt]: u64,
        free_bytes [opt]: u64,
        used_bytes [opt]: u64,
        reserved_bytes [opt]: u64,
        system_total_bytes [opt]: u64,
        system_used_bytes [opt]: u64,
        unified_memory: bool,
        budget_bytes [opt]: u64,
        budget_basis [opt]: BudgetBasis,
        source: GpuQuerySource,
    });

    impl GpuDeviceInfoBuilder {
        /// Records why `field` is `None`.
        #[must_use]
        pub fn unavailable(mut self, field: DeviceField, reason: &str) -> Self {
            self.0.mark_unavailable(field, reason);
            self
        }

        /// The finished record.
        #[must_use]
        pub fn build(self) -> GpuDeviceInfo {
            self.0
        }
    }

    /// Builds a [`GpuProcessEntry`] (feature `test-helpers`).
    #[derive(Debug, Clone)]
    pub struct GpuProcessEntryBuilder(GpuProcessEntry);

    impl GpuProcessEntry {
        /// Starts a builder for `pid` on device 0, source NVML.
        #[must_use]
        pub fn builder(pid: u32) -> GpuProcessEntryBuilder {
            GpuProcessEntryBuilder(Self::new(pid, 0, GpuQuerySource::Nvml))
        }
    }

    setters!(GpuProcessEntryBuilder {
        name [text]: impl BuilderText,
        user [text]: impl BuilderText,
        command [text]: impl BuilderText,
        used_bytes [opt]: u64,
        system_bytes [opt]: u64,
        shared_bytes [opt]: u64,
        device_index: u32,
        kind: GpuProcessKind,
        gpu_instance_id [opt]: u32,
        compute_instance_id [opt]: u32,
        utilization_percent [opt]: f64,
        source: GpuQuerySource,
    });

    impl GpuProcessEntryBuilder {
        /// Sets `pid` (the original crate's builder started without one).
        #[must_use]
        pub const fn pid(mut self, pid: u32) -> Self {
            self.0.pid = pid;
            self
        }

        /// The original crate's name for `system_bytes`: PDH's `Shared Usage`, GPU buffers
        /// the process holds in system RAM.
        #[must_use]
        pub const fn shared_used_bytes(mut self, bytes: u64) -> Self {
            self.0.system_bytes = Some(bytes);
            self
        }

        /// The finished record.
        #[must_use]
        pub fn build(self) -> GpuProcessEntry {
            self.0
        }
    }

    impl SharedClient {
        /// A shared DRM client record (feature `test-helpers`).
        #[must_use]
        pub fn new(
            client_id: Option<u64>,
            holders: Vec<u32>,
            counted_for: u32,
            used_bytes: Option<u64>,
            system_bytes: Option<u64>,
        ) -> Self {
            Self {
                client_id,
                holders,
                counted_for,
                used_bytes,
                system_bytes,
            }
        }
    }

    /// Builds a [`ProcessGpuInfo`] (feature `test-helpers`).
    #[derive(Debug, Clone)]
    pub struct ProcessGpuInfoBuilder(ProcessGpuInfo);

    impl ProcessGpuInfo {
        /// Starts a builder: 0 bytes of the process's own, device 0, NVML.
        #[must_use]
        pub const fn builder() -> ProcessGpuInfoBuilder {
            ProcessGpuInfoBuilder(Self::own(0, 0, GpuQuerySource::Nvml))
        }
    }

    setters!(ProcessGpuInfoBuilder {
        device_index: u32,
        source: GpuQuerySource,
    });

    impl ProcessGpuInfoBuilder {
        /// The process's own figure, bytes (clears any device-wide figure).
        #[must_use]
        pub const fn process_bytes(self, bytes: u64) -> Self {
            Self(ProcessGpuInfo::own(
                bytes,
                self.0.device_index,
                self.0.source,
            ))
        }

        /// Only the device's use is known, bytes, as under the `nvidia-smi` fallback (clears
        /// the process's own figure).
        #[must_use]
        pub const fn device_used_bytes(self, bytes: u64) -> Self {
            Self(ProcessGpuInfo::device_wide(
                bytes,
                self.0.device_index,
                self.0.source,
            ))
        }
    }

    impl ProcessGpuInfoBuilder {
        /// The finished record.
        #[must_use]
        pub fn build(self) -> ProcessGpuInfo {
            self.0
        }
    }

    /// Builds a [`Snapshot`] (feature `test-helpers`).
    #[derive(Debug, Clone)]
    pub struct SnapshotBuilder(Snapshot);

    impl Snapshot {
        /// Starts a builder: 0 RAM bytes, no GPU.
        #[must_use]
        pub fn builder() -> SnapshotBuilder {
            SnapshotBuilder(Self {
                ram_bytes: 0,
                gpu: None,
                gpu_device: None,
                gpu_error: None,
                telemetry: None,
            })
        }
    }

    setters!(SnapshotBuilder {
        ram_bytes: u64,
        gpu [opt]: ProcessGpuInfo,
        gpu_device [opt]: GpuDeviceInfo,
        gpu_error [opt]: HypomnesisError,
        telemetry [opt]: crate::DeviceTelemetry,
    });

    impl SnapshotBuilder {
        /// The finished record.
        #[must_use]
        pub fn build(self) -> Snapshot {
            self.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshots_own_vram_is_unknown_when_only_the_devices_use_is_known() {
        let snapshot = |gpu| Snapshot {
            ram_bytes: 0,
            gpu: Some(gpu),
            gpu_device: None,
            gpu_error: None,
            telemetry: None,
        };
        let own = snapshot(ProcessGpuInfo::own(3 << 20, 0, GpuQuerySource::Nvml));
        assert_eq!(own.vram_mb(), Some(3.0));
        let bound = snapshot(ProcessGpuInfo::device_wide(
            3 << 20,
            0,
            GpuQuerySource::NvidiaSmi,
        ));
        assert_eq!(bound.vram_mb(), None);
        assert_eq!(bound.gpu.map(|g| g.upper_bound_bytes()), Some(3 << 20));
    }

    fn holder(pid: u32, used: u64) -> GpuProcessEntry {
        let mut row = GpuProcessEntry::new(pid, 0, GpuQuerySource::Drm);
        row.used_bytes = Some(used);
        row.shared_clients = vec![SharedClient {
            client_id: Some(7),
            holders: vec![300, 900],
            counted_for: 900,
            used_bytes: Some(100),
            system_bytes: None,
        }];
        row
    }

    #[test]
    fn a_client_shared_by_a_parent_and_its_child_is_summed_once() {
        // Both hold the 100-byte client; the child also holds 20 bytes of its own.
        let parent = holder(900, 100);
        let child = holder(300, 120);
        assert_eq!(GpuProcessEntry::sum_used_once([&parent, &child]), Some(120));
        assert_eq!(GpuProcessEntry::sum_used_once([&child]), Some(120));
        assert_eq!(child.counted_used_bytes(), Some(20));
        assert_eq!(parent.counted_used_bytes(), Some(100));
        assert_eq!(child.shared_with(), vec![900]);
        let mut unknown = holder(5, 0);
        unknown.used_bytes = None;
        assert_eq!(GpuProcessEntry::sum_used_once([&parent, &unknown]), None);
    }

    #[cfg(feature = "test-helpers")]
    #[test]
    fn builders_take_the_original_crates_arguments_as_well_as_their_own() {
        let original = GpuProcessEntry::builder(0)
            .pid(1234)
            .name(Some("python.exe".to_owned()))
            .used_bytes(8 << 30)
            .shared_used_bytes(256 << 20)
            .build();
        assert_eq!(original.pid, 1234);
        assert_eq!(original.name.as_deref(), Some("python.exe"));
        assert_eq!(original.system_bytes, Some(256 << 20));
        let own = GpuDeviceInfo::builder()
            .name("H100")
            .uuid(None::<String>)
            .build();
        assert_eq!(own.name.as_deref(), Some("H100"));
        assert_eq!(own.uuid, None);
    }

    #[test]
    fn kinds_seen_in_both_lists_merge_to_both() {
        use GpuProcessKind::*;
        assert_eq!(Compute.merge(Graphics), ComputeAndGraphics);
        assert_eq!(Graphics.merge(Compute), ComputeAndGraphics);
        assert_eq!(Compute.merge(Compute), Compute);
        assert_eq!(Unknown.merge(Graphics), Graphics);
        assert_eq!(ComputeAndGraphics.merge(Compute), ComputeAndGraphics);
    }

    #[test]
    fn device_figures_that_cannot_add_up_are_impossible() {
        let gib = 1_u64 << 30;
        assert_eq!(
            impossible_memory(Some(80 * gib), Some(60 * gib), Some(19 * gib), Some(gib)),
            None
        );
        // nvidia-smi's MiB rounding of three parts is not garbage.
        assert_eq!(
            impossible_memory(
                Some(80 * gib),
                Some(60 * gib),
                Some(20 * gib),
                Some(2 << 20)
            ),
            None
        );
        // Each part below the total, the sum 20 GiB past it.
        assert!(
            impossible_memory(Some(80 * gib), Some(60 * gib), Some(39 * gib), Some(gib)).is_some()
        );
        // Summing sentinels must neither wrap nor panic.
        assert!(impossible_memory(Some(u64::MAX), Some(u64::MAX), Some(u64::MAX), None).is_some());
        assert!(impossible_memory(Some(80 * gib), None, Some(81 * gib), None).is_some());
        assert_eq!(impossible_memory(None, Some(5), None, None), None);
    }

    #[test]
    fn impossible_splits_keep_the_total_and_drop_the_parts_with_a_reason() {
        let mut info = GpuDeviceInfo::new(0, GpuVendor::Amd, GpuQuerySource::Drm);
        info.total_bytes = Some(100);
        info.used_bytes = Some(90);
        info.free_bytes = Some(u64::MAX);
        info.refuse_impossible_memory();
        assert_eq!(info.total_bytes, Some(100));
        assert_eq!((info.used_bytes, info.free_bytes), (None, None));
        assert!(
            info.unavailable_reason(DeviceField::FreeBytes)
                .unwrap()
                .contains("impossible")
        );
    }

    #[test]
    fn rows_larger_than_their_device_are_refused_on_every_backend_with_a_note() {
        for source in [
            GpuQuerySource::Nvml,
            GpuQuerySource::NvidiaSmi,
            GpuQuerySource::Drm,
            GpuQuerySource::Pdh,
            GpuQuerySource::Metal,
        ] {
            let mut device = GpuDeviceInfo::new(0, GpuVendor::Other, source);
            device.total_bytes = Some(32 << 30);
            device.system_total_bytes = Some(16 << 30);
            let mut huge = GpuProcessEntry::new(7, 0, source);
            huge.used_bytes = Some(100_000 << 20);
            huge.system_bytes = Some(1 << 30);
            let mut corrupt = GpuProcessEntry::new(8, 0, source);
            corrupt.system_bytes = Some(u64::MAX);
            let mut fine = GpuProcessEntry::new(9, 0, source);
            fine.used_bytes = Some(32 << 30);
            let mut listing = GpuProcessListing::from_rows(vec![huge, corrupt, fine]);
            listing.refuse_implausible_rows(Some(&device));
            let rows = &listing.rows;
            assert_eq!(rows[0].used_bytes, None, "{source}");
            assert_eq!(rows[0].system_bytes, Some(1 << 30), "{source}");
            assert_eq!(rows[1].system_bytes, None, "{source}");
            assert_eq!(
                rows[2].used_bytes,
                Some(32 << 30),
                "exactly the total is plausible"
            );
            let notes = listing.notes().join("\n");
            assert!(
                notes.contains("pid 7: device memory") && notes.contains("97.7 GiB"),
                "{notes}"
            );
            assert!(notes.contains("pid 8: system memory"), "{notes}");
        }
    }

    const GIB: u64 = 1 << 30;

    fn host(available: u64, cgroup: Option<(u64, u64)>) -> crate::HostMemory {
        crate::HostMemory {
            total_bytes: 64 * GIB,
            available_bytes: Some(available),
            swap_total_bytes: None,
            swap_free_bytes: None,
            pressure: None,
            cgroup: cgroup.map(|(limit, usage)| crate::CgroupMemory {
                version: crate::CgroupVersion::V2,
                path: "/job".into(),
                limit_bytes: Some(limit),
                usage_bytes: Some(usage),
                peak_bytes: None,
            }),
            memory_load_percent: None,
            commit_limit_bytes: None,
            commit_available_bytes: None,
            pressure_level: None,
            page_states: None,
        }
    }

    /// An APU as amdgpu shows it: a 512 MiB carve-out, 48 GiB of GTT of which a process
    /// holds 24 GiB.
    fn apu() -> GpuDeviceInfo {
        let mut d = GpuDeviceInfo::new(0, GpuVendor::Amd, GpuQuerySource::Drm);
        d.total_bytes = Some(512 << 20);
        d.used_bytes = Some(112 << 20);
        d.free_bytes = Some(400 << 20);
        d.system_total_bytes = Some(48 * GIB);
        d.system_used_bytes = Some(24 * GIB);
        d.unified_memory = true;
        d
    }

    #[test]
    fn an_apu_budgets_against_host_memory_not_its_small_carve_out() {
        let mut d = apu();
        d.fill_budget(Some(&host(40 * GIB, None)));
        assert_eq!(d.budget_bytes, Some(24 * GIB), "GTT room binds first");
        assert_eq!(d.budget_basis, Some(BudgetBasis::GpuSystemLimit));
        d.fill_budget(Some(&host(20 * GIB, None)));
        assert_eq!(d.budget_bytes, Some(20 * GIB));
        assert_eq!(d.budget_basis, Some(BudgetBasis::HostAvailable));
        d.fill_budget(Some(&host(40 * GIB, Some((16 * GIB, 6 * GIB)))));
        assert_eq!(d.budget_bytes, Some(10 * GIB));
        assert_eq!(d.budget_basis, Some(BudgetBasis::CgroupLimit));
    }

    #[test]
    fn a_large_carve_out_is_the_budget_when_host_memory_allows_less() {
        let mut d = apu();
        d.total_bytes = Some(96 * GIB);
        d.free_bytes = Some(90 * GIB);
        d.fill_budget(Some(&host(20 * GIB, None)));
        assert_eq!(d.budget_bytes, Some(90 * GIB));
        assert_eq!(d.budget_basis, Some(BudgetBasis::DeviceFree));
    }

    #[test]
    fn a_discrete_gpu_budgets_its_free_memory_whatever_the_host_has() {
        let mut d = apu();
        d.unified_memory = false;
        d.fill_budget(Some(&host(1, Some((1, 1)))));
        assert_eq!(d.budget_bytes, Some(400 << 20));
        assert_eq!(d.budget_basis, Some(BudgetBasis::DeviceFree));
        d.free_bytes = None;
        d.mark_unavailable(DeviceField::FreeBytes, "[Insufficient Permissions]");
        d.fill_budget(None);
        assert_eq!(d.budget_bytes, None);
        let reason = d.unavailable_reason(DeviceField::BudgetBytes).unwrap();
        assert!(reason.contains("[Insufficient Permissions]"), "{reason}");
    }

    #[test]
    fn a_unified_device_without_host_figures_has_no_budget_and_says_why() {
        let mut d = GpuDeviceInfo::new(0, GpuVendor::Nvidia, GpuQuerySource::Nvml);
        d.unified_memory = true;
        d.fill_budget(None);
        assert_eq!(d.budget_bytes, None);
        assert!(d.unavailable_reason(DeviceField::BudgetBytes).is_some());
    }

    #[test]
    fn unavailable_reason_is_found_by_field_name() {
        let mut info = GpuDeviceInfo::new(0, GpuVendor::Nvidia, GpuQuerySource::Nvml);
        info.mark_unavailable(DeviceField::ReservedBytes, "driver predates R510");
        assert_eq!(
            info.unavailable_reason(DeviceField::ReservedBytes),
            Some("driver predates R510")
        );
        assert_eq!(info.unavailable_reason(DeviceField::TotalBytes), None);
        assert_eq!(info.name_or_unknown(), "unknown GPU");
    }
}

//! The library's records as immutable Python objects: the same names, the same fields, the
//! same units (bytes; seconds where the library has a `Duration`). An unknown figure is `None`
//! and, where the library says why, the record's `unavailable` mapping (field name → reason)
//! says it too. Enums become their stable lower-case names (`"nvml"`, `"nvidia"`,
//! `"compute"`), as in `hmn --json`.
//!
//! Each record is copied out of the library's value once, when it is returned: attribute
//! reads then cost what a Python attribute read costs.

use std::collections::HashMap;

use pyo3::prelude::*;

/// Defines a frozen record class with read-only attributes and a `repr` listing them.
macro_rules! record {
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$field_meta:meta])* $field:ident : $ty:ty),* $(,)? }
    ) => {
        $(#[$meta])*
        #[pyclass(frozen, get_all, module = "hypomnesis._native")]
        #[derive(Debug)]
        pub struct $name {
            $($(#[$field_meta])* pub $field: $ty),*
        }

        #[pymethods]
        impl $name {
            fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
                $crate::records::repr_fields(slf.as_any(), stringify!($name), &[$(stringify!($field)),*])
            }
        }
    };
}

/// `Name(a=1, b='x')` from the object's attributes.
pub(crate) fn repr_fields(obj: &Bound<'_, PyAny>, name: &str, fields: &[&str]) -> PyResult<String> {
    let mut out = format!("{name}(");
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(field);
        out.push('=');
        out.push_str(&obj.getattr(*field)?.repr()?.to_cow()?);
    }
    out.push(')');
    Ok(out)
}

record! {
    /// Host memory and the cgroup bounding this process (the library's `HostMemory`).
    HostMemory {
        total_bytes: u64,
        available_bytes: Option<u64>,
        swap_total_bytes: Option<u64>,
        swap_free_bytes: Option<u64>,
        pressure: Option<Py<MemoryPressure>>,
        cgroup: Option<Py<CgroupMemory>>,
        memory_load_percent: Option<u32>,
        commit_limit_bytes: Option<u64>,
        commit_available_bytes: Option<u64>,
        pressure_level: Option<&'static str>,
        page_states: Option<Py<PageStates>>,
    }
}

record! {
    /// Linux pressure stall information for memory (`/proc/pressure/memory`).
    MemoryPressure {
        some_avg10: f64,
        some_avg60: f64,
        some_avg300: f64,
        some_total_us: u64,
        full_avg10: Option<f64>,
        full_avg60: Option<f64>,
        full_avg300: Option<f64>,
        full_total_us: Option<u64>,
    }
}

record! {
    /// The memory cgroup bounding this process.
    CgroupMemory {
        version: &'static str,
        path: String,
        limit_bytes: Option<u64>,
        usage_bytes: Option<u64>,
        peak_bytes: Option<u64>,
    }
}

record! {
    /// macOS page states, bytes.
    PageStates {
        page_size: u64,
        free_bytes: u64,
        active_bytes: u64,
        inactive_bytes: u64,
        speculative_bytes: u64,
        wired_bytes: u64,
        compressed_bytes: u64,
        compressed_original_bytes: u64,
        purgeable_bytes: u64,
        file_backed_bytes: u64,
        anonymous_bytes: u64,
        used_bytes: u64,
    }
}

record! {
    /// RAM of one process (the library's `ProcessMemory`).
    ProcessMemory {
        pid: u32,
        rss_bytes: u64,
        peak_rss_bytes: Option<u64>,
        swap_bytes: Option<u64>,
        rss_anon_bytes: Option<u64>,
        rss_file_bytes: Option<u64>,
        pss_bytes: Option<u64>,
        uss_bytes: Option<u64>,
        private_bytes: Option<u64>,
        resident_bytes: Option<u64>,
        graphics_bytes: Option<u64>,
    }
}

record! {
    /// One GPU: memory, identity, budget (the library's `GpuDeviceInfo`).
    GpuDeviceInfo {
        index: u32,
        name: Option<String>,
        vendor: &'static str,
        uuid: Option<String>,
        pci_bus_id: Option<String>,
        driver_version: Option<String>,
        cuda_driver_version: Option<String>,
        total_bytes: Option<u64>,
        free_bytes: Option<u64>,
        used_bytes: Option<u64>,
        reserved_bytes: Option<u64>,
        system_total_bytes: Option<u64>,
        system_used_bytes: Option<u64>,
        unified_memory: bool,
        mig_instances: Vec<Py<MigInstance>>,
        budget_bytes: Option<u64>,
        budget_basis: Option<&'static str>,
        unavailable: HashMap<&'static str, String>,
        source: &'static str,
    }
}

record! {
    /// A MIG instance of a device.
    MigInstance {
        gpu_instance_id: Option<u32>,
        compute_instance_id: Option<u32>,
        uuid: Option<String>,
        total_bytes: Option<u64>,
        free_bytes: Option<u64>,
        used_bytes: Option<u64>,
    }
}

record! {
    /// One process holding memory on one GPU (the library's `GpuProcessEntry`).
    GpuProcessEntry {
        pid: u32,
        name: Option<String>,
        user: Option<String>,
        command: Option<String>,
        used_bytes: Option<u64>,
        system_bytes: Option<u64>,
        shared_bytes: Option<u64>,
        device_index: u32,
        kind: &'static str,
        gpu_instance_id: Option<u32>,
        compute_instance_id: Option<u32>,
        utilization_percent: Option<f64>,
        rss_bytes: Option<u64>,
        cgroup: Option<String>,
        source: &'static str,
        shared_clients: Vec<Py<SharedClient>>,
    }
}

record! {
    /// A DRM client shared by several processes.
    SharedClient {
        client_id: Option<u64>,
        holders: Vec<u32>,
        counted_for: u32,
        used_bytes: Option<u64>,
        system_bytes: Option<u64>,
    }
}

record! {
    /// The calling process's own memory on one GPU (the library's `ProcessGpuInfo`).
    ProcessGpuInfo {
        process_bytes: Option<u64>,
        device_used_bytes: Option<u64>,
        /// `process_bytes` when known, else the device's whole use: an upper bound.
        upper_bound_bytes: u64,
        device_index: u32,
        source: &'static str,
    }
}

record! {
    /// RAM plus one device and this process's memory on it (the library's `Snapshot`). A GPU
    /// failure does not fail the snapshot: it is `gpu_error`, the exception that
    /// `hypomnesis.device()` would have raised.
    Snapshot {
        ram_bytes: u64,
        gpu: Option<Py<ProcessGpuInfo>>,
        gpu_device: Option<Py<GpuDeviceInfo>>,
        gpu_error: Option<Py<PyAny>>,
        telemetry: Option<Py<DeviceTelemetry>>,
    }
}

record! {
    /// Utilization, temperature, power, clocks of one GPU (the library's `DeviceTelemetry`).
    DeviceTelemetry {
        index: u32,
        gpu_utilization_percent: Option<f64>,
        memory_utilization_percent: Option<f64>,
        encoder_utilization_percent: Option<f64>,
        decoder_utilization_percent: Option<f64>,
        temperature_celsius: Option<f64>,
        power_watts: Option<f64>,
        power_limit_watts: Option<f64>,
        sm_clock_mhz: Option<u32>,
        memory_clock_mhz: Option<u32>,
        fan_percent: Option<f64>,
        pcie_link_generation: Option<u32>,
        pcie_link_width: Option<u32>,
        unavailable: HashMap<&'static str, String>,
        source: &'static str,
    }
}

/// The library's enums by their stable names. The enums are `#[non_exhaustive]`: a variant
/// added later is `"other"` until this layer names it.
pub mod names {
    use hypomnesis::{CgroupVersion, GpuProcessKind, GpuVendor, PressureLevel};

    pub fn vendor(v: GpuVendor) -> &'static str {
        match v {
            GpuVendor::Nvidia => "nvidia",
            GpuVendor::Amd => "amd",
            GpuVendor::Intel => "intel",
            GpuVendor::Apple => "apple",
            _ => "other",
        }
    }

    pub fn kind(k: GpuProcessKind) -> &'static str {
        match k {
            GpuProcessKind::Compute => "compute",
            GpuProcessKind::Graphics => "graphics",
            GpuProcessKind::ComputeAndGraphics => "compute_and_graphics",
            _ => "unknown",
        }
    }

    pub fn pressure_level(p: PressureLevel) -> &'static str {
        match p {
            PressureLevel::Normal => "normal",
            PressureLevel::Warning => "warning",
            PressureLevel::Critical => "critical",
            _ => "other",
        }
    }

    pub fn cgroup_version(v: CgroupVersion) -> &'static str {
        match v {
            CgroupVersion::V1 => "v1",
            _ => "v2",
        }
    }
}

fn opt<T: pyo3::PyClass + Into<pyo3::PyClassInitializer<T>>>(
    py: Python<'_>,
    value: Option<T>,
) -> PyResult<Option<Py<T>>> {
    value.map(|v| Py::new(py, v)).transpose()
}

impl HostMemory {
    pub fn new(py: Python<'_>, h: &hypomnesis::HostMemory) -> PyResult<Self> {
        Ok(Self {
            total_bytes: h.total_bytes,
            available_bytes: h.available_bytes,
            swap_total_bytes: h.swap_total_bytes,
            swap_free_bytes: h.swap_free_bytes,
            pressure: opt(
                py,
                h.pressure.as_ref().map(|p| MemoryPressure {
                    some_avg10: p.some_avg10,
                    some_avg60: p.some_avg60,
                    some_avg300: p.some_avg300,
                    some_total_us: p.some_total_us,
                    full_avg10: p.full_avg10,
                    full_avg60: p.full_avg60,
                    full_avg300: p.full_avg300,
                    full_total_us: p.full_total_us,
                }),
            )?,
            cgroup: opt(py, h.cgroup.as_ref().map(CgroupMemory::from))?,
            memory_load_percent: h.memory_load_percent,
            commit_limit_bytes: h.commit_limit_bytes,
            commit_available_bytes: h.commit_available_bytes,
            pressure_level: h.pressure_level.map(names::pressure_level),
            page_states: opt(
                py,
                h.page_states.as_ref().map(|p| PageStates {
                    page_size: p.page_size,
                    free_bytes: p.free_bytes,
                    active_bytes: p.active_bytes,
                    inactive_bytes: p.inactive_bytes,
                    speculative_bytes: p.speculative_bytes,
                    wired_bytes: p.wired_bytes,
                    compressed_bytes: p.compressed_bytes,
                    compressed_original_bytes: p.compressed_original_bytes,
                    purgeable_bytes: p.purgeable_bytes,
                    file_backed_bytes: p.file_backed_bytes,
                    anonymous_bytes: p.anonymous_bytes,
                    used_bytes: p.used_bytes,
                }),
            )?,
        })
    }
}

impl From<&hypomnesis::CgroupMemory> for CgroupMemory {
    fn from(c: &hypomnesis::CgroupMemory) -> Self {
        Self {
            version: names::cgroup_version(c.version),
            path: c.path.clone(),
            limit_bytes: c.limit_bytes,
            usage_bytes: c.usage_bytes,
            peak_bytes: c.peak_bytes,
        }
    }
}

impl From<&hypomnesis::ProcessMemory> for ProcessMemory {
    fn from(m: &hypomnesis::ProcessMemory) -> Self {
        Self {
            pid: m.pid,
            rss_bytes: m.rss_bytes,
            peak_rss_bytes: m.peak_rss_bytes,
            swap_bytes: m.swap_bytes,
            rss_anon_bytes: m.rss_anon_bytes,
            rss_file_bytes: m.rss_file_bytes,
            pss_bytes: m.pss_bytes,
            uss_bytes: m.uss_bytes,
            private_bytes: m.private_bytes,
            resident_bytes: m.resident_bytes,
            graphics_bytes: m.graphics_bytes,
        }
    }
}

impl GpuDeviceInfo {
    pub fn new(py: Python<'_>, d: hypomnesis::GpuDeviceInfo) -> PyResult<Self> {
        let mig_instances = d
            .mig_instances
            .iter()
            .map(|m| {
                Py::new(
                    py,
                    MigInstance {
                        gpu_instance_id: m.gpu_instance_id,
                        compute_instance_id: m.compute_instance_id,
                        uuid: m.uuid.clone(),
                        total_bytes: m.total_bytes,
                        free_bytes: m.free_bytes,
                        used_bytes: m.used_bytes,
                    },
                )
            })
            .collect::<PyResult<_>>()?;
        Ok(Self {
            index: d.index,
            vendor: names::vendor(d.vendor),
            total_bytes: d.total_bytes,
            free_bytes: d.free_bytes,
            used_bytes: d.used_bytes,
            reserved_bytes: d.reserved_bytes,
            system_total_bytes: d.system_total_bytes,
            system_used_bytes: d.system_used_bytes,
            unified_memory: d.unified_memory,
            mig_instances,
            budget_bytes: d.budget_bytes,
            budget_basis: d.budget_basis.map(hypomnesis::BudgetBasis::as_str),
            unavailable: d
                .unavailable
                .iter()
                .map(|u| (u.field.as_str(), u.reason.clone()))
                .collect(),
            source: d.source.as_str(),
            name: d.name,
            uuid: d.uuid,
            pci_bus_id: d.pci_bus_id,
            driver_version: d.driver_version,
            cuda_driver_version: d.cuda_driver_version,
        })
    }
}

impl GpuProcessEntry {
    pub fn new(py: Python<'_>, p: hypomnesis::GpuProcessEntry) -> PyResult<Self> {
        let shared_clients = p
            .shared_clients
            .iter()
            .map(|c| {
                Py::new(
                    py,
                    SharedClient {
                        client_id: c.client_id,
                        holders: c.holders.clone(),
                        counted_for: c.counted_for,
                        used_bytes: c.used_bytes,
                        system_bytes: c.system_bytes,
                    },
                )
            })
            .collect::<PyResult<_>>()?;
        Ok(Self {
            pid: p.pid,
            used_bytes: p.used_bytes,
            system_bytes: p.system_bytes,
            shared_bytes: p.shared_bytes,
            device_index: p.device_index,
            kind: names::kind(p.kind),
            gpu_instance_id: p.gpu_instance_id,
            compute_instance_id: p.compute_instance_id,
            utilization_percent: p.utilization_percent,
            rss_bytes: p.rss_bytes,
            source: p.source.as_str(),
            shared_clients,
            name: p.name,
            user: p.user,
            command: p.command,
            cgroup: p.cgroup,
        })
    }
}

impl From<&hypomnesis::ProcessGpuInfo> for ProcessGpuInfo {
    fn from(g: &hypomnesis::ProcessGpuInfo) -> Self {
        Self {
            process_bytes: g.process_bytes,
            device_used_bytes: g.device_used_bytes,
            upper_bound_bytes: g.upper_bound_bytes(),
            device_index: g.device_index,
            source: g.source.as_str(),
        }
    }
}

impl From<&hypomnesis::DeviceTelemetry> for DeviceTelemetry {
    fn from(t: &hypomnesis::DeviceTelemetry) -> Self {
        Self {
            index: t.index,
            gpu_utilization_percent: t.gpu_utilization_percent,
            memory_utilization_percent: t.memory_utilization_percent,
            encoder_utilization_percent: t.encoder_utilization_percent,
            decoder_utilization_percent: t.decoder_utilization_percent,
            temperature_celsius: t.temperature_celsius,
            power_watts: t.power_watts,
            power_limit_watts: t.power_limit_watts,
            sm_clock_mhz: t.sm_clock_mhz,
            memory_clock_mhz: t.memory_clock_mhz,
            fan_percent: t.fan_percent,
            pcie_link_generation: t.pcie_link_generation,
            pcie_link_width: t.pcie_link_width,
            unavailable: t
                .unavailable
                .iter()
                .map(|u| (u.field.as_str(), u.reason.clone()))
                .collect(),
            source: t.source.as_str(),
        }
    }
}

impl Snapshot {
    pub fn new(py: Python<'_>, s: hypomnesis::Snapshot) -> PyResult<Self> {
        Ok(Self {
            ram_bytes: s.ram_bytes,
            gpu: opt(py, s.gpu.as_ref().map(ProcessGpuInfo::from))?,
            gpu_device: s
                .gpu_device
                .map(|d| GpuDeviceInfo::new(py, d).and_then(|d| Py::new(py, d)))
                .transpose()?,
            gpu_error: s
                .gpu_error
                .as_ref()
                .map(|e| crate::errors::exception(py, e).map(Bound::unbind))
                .transpose()?,
            telemetry: opt(py, s.telemetry.as_ref().map(DeviceTelemetry::from))?,
        })
    }
}

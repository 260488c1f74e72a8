//! The vocabulary every other module shares: which backend answered, who made a GPU.
//!
//! These types are named by the error type, by every record and by every backend. Kept in a
//! leaf module that imports nothing of the crate, they let `error` name a backend without
//! depending on the records (which themselves carry errors), so the modules above form no
//! import cycle (`tests/module_graph.rs` checks it). Their public paths are
//! `hypomnesis::snapshot::*` and the crate root, as before.

use std::fmt;

/// Which backend produced a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[non_exhaustive]
pub enum GpuQuerySource {
    /// NVIDIA Management Library (`libnvidia-ml.so.1` / `nvml.dll`), loaded at run time.
    Nvml,
    /// The `nvidia-smi` executable, used when NVML is unusable.
    NvidiaSmi,
    /// Linux DRM: sysfs device files and `/proc/<pid>/fdinfo`.
    Drm,
    /// Windows DXGI (adapter enumeration, the calling process's video memory).
    Dxgi,
    /// Windows performance counters (`\GPU Process Memory(*)`).
    Pdh,
    /// Apple Metal and the IOAccelerator registry.
    Metal,
}

impl GpuQuerySource {
    /// A short stable name (`"nvml"`, `"nvidia-smi"`, ...), as used in JSON.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Nvml => "nvml",
            Self::NvidiaSmi => "nvidia-smi",
            Self::Drm => "drm",
            Self::Dxgi => "dxgi",
            Self::Pdh => "pdh",
            Self::Metal => "metal",
        }
    }

    /// Whether this source numbers processes as the root PID namespace does, whatever
    /// namespace asks (the NVIDIA driver does), rather than as the caller's procfs does.
    #[must_use]
    pub const fn reports_host_pids(self) -> bool {
        matches!(self, Self::Nvml | Self::NvidiaSmi)
    }
}

impl fmt::Display for GpuQuerySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Nvml => "NVML",
            Self::NvidiaSmi => "nvidia-smi",
            Self::Drm => "DRM",
            Self::Dxgi => "DXGI",
            Self::Pdh => "PDH",
            Self::Metal => "Metal",
        })
    }
}

/// The company that made a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum GpuVendor {
    /// NVIDIA (PCI vendor 0x10de).
    Nvidia,
    /// AMD (PCI vendor 0x1002).
    Amd,
    /// Intel (PCI vendor 0x8086).
    Intel,
    /// Apple Silicon.
    Apple,
    /// Anything else, or not known.
    Other,
}

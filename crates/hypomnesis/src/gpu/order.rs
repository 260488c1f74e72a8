//! Which backend answers which question first, per platform: data the dispatcher walks.
//!
//! Devices are listed group by group. In a group, the first backend that can be used lists
//! the group's cards (NVIDIA's: NVML, else `nvidia-smi`), and the next groups list only cards
//! not already listed (matched by PCI bus id or UUID), numbered after them. A group none of
//! whose backends could be used, though the caller wanted them, leaves its cards to the
//! backends in `orphans_listed_by` (DRM lists a card bound to `nvidia` with the reason NVIDIA's
//! backends gave). The other questions are asked of a device in the order given, where
//! [`Answer::Lister`] is the backend that listed it.

use std::path::Path;

use super::{Absent, Backend, GpuConfig};
use crate::snapshot::GpuQuerySource::{self, NvidiaSmi, Nvml};

/// Who is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(windows), allow(dead_code))] // named backends answer first only on Windows
pub(crate) enum Answer {
    /// The backend that listed the device.
    Lister,
    /// This backend, whoever listed the device (when it declines, the next is asked).
    Backend(GpuQuerySource),
}

/// Backends that list the same cards: the first that can be used does.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) answered_by: &'static [GpuQuerySource],
    /// When none of `answered_by` can be used: who lists their cards anyway, with the reason.
    pub(crate) orphans_listed_by: &'static [GpuQuerySource],
}

/// A platform's order.
#[derive(Debug)]
pub(crate) struct Order {
    /// Device listing, group by group; devices are numbered in this order.
    pub(crate) devices: &'static [Group],
    /// A device's processes.
    pub(crate) processes: &'static [Answer],
    /// One process's memory on a device.
    pub(crate) own_process: &'static [Answer],
    /// A device's telemetry.
    pub(crate) telemetry: &'static [Answer],
    /// A meter of a device's dedicated and shared memory (spill detection).
    #[cfg_attr(not(all(windows, feature = "pdh")), allow(dead_code))] // PDH only
    pub(crate) spill: &'static [Answer],
}

/// Linux: NVIDIA's cards from NVML (else `nvidia-smi`), every other DRM card after them; a
/// card bound to `nvidia` while NVIDIA's backends are unusable is listed by DRM with why.
#[cfg(target_os = "linux")]
pub(crate) static ORDER: Order = Order {
    devices: &[
        Group {
            answered_by: &[Nvml, NvidiaSmi],
            orphans_listed_by: &[GpuQuerySource::Drm],
        },
        Group {
            answered_by: &[GpuQuerySource::Drm],
            orphans_listed_by: &[],
        },
    ],
    processes: &[Answer::Lister],
    own_process: &[Answer::Lister],
    telemetry: &[Answer::Lister],
    spill: &[],
};

/// Windows: NVIDIA's cards, then DXGI's other adapters. PDH answers processes before NVML
/// (under WDDM NVML lists processes without their memory), and DXGI the calling process's
/// own use (`QueryVideoMemoryInfo`) before PDH. PDH's adapter counters measure spill.
#[cfg(windows)]
pub(crate) static ORDER: Order = Order {
    devices: &[
        Group {
            answered_by: &[Nvml, NvidiaSmi],
            orphans_listed_by: &[],
        },
        Group {
            answered_by: &[GpuQuerySource::Dxgi],
            orphans_listed_by: &[],
        },
    ],
    processes: &[Answer::Backend(GpuQuerySource::Pdh), Answer::Lister],
    own_process: &[
        Answer::Backend(GpuQuerySource::Dxgi),
        Answer::Backend(GpuQuerySource::Pdh),
        Answer::Lister,
    ],
    telemetry: &[Answer::Lister],
    spill: &[Answer::Backend(GpuQuerySource::Pdh)],
};

/// macOS: NVIDIA's backends (which find nothing on current Macs), then Metal's device.
#[cfg(target_os = "macos")]
pub(crate) static ORDER: Order = Order {
    devices: &[
        Group {
            answered_by: &[Nvml, NvidiaSmi],
            orphans_listed_by: &[],
        },
        Group {
            answered_by: &[GpuQuerySource::Metal],
            orphans_listed_by: &[],
        },
    ],
    processes: &[Answer::Lister],
    own_process: &[Answer::Lister],
    telemetry: &[Answer::Lister],
    spill: &[],
};

/// Elsewhere: NVIDIA's backends only.
#[cfg(not(any(target_os = "linux", windows, target_os = "macos")))]
pub(crate) static ORDER: Order = Order {
    devices: &[Group {
        answered_by: &[Nvml, NvidiaSmi],
        orphans_listed_by: &[],
    }],
    processes: &[Answer::Lister],
    own_process: &[Answer::Lister],
    telemetry: &[Answer::Lister],
    spill: &[],
};

/// The backends this build has on this platform for `config`, and why any backend of the
/// order is missing (compiled out, or switched off by the caller).
pub(crate) fn backends(
    config: &GpuConfig,
    proc_root: &Path,
    sys_root: &Path,
) -> (Vec<Box<dyn Backend>>, Vec<Absent>) {
    let _ = sys_root;
    let mut backends: Vec<Box<dyn Backend>> = Vec::new();
    let mut absent = Vec::new();
    super::nvidia::backends(config, proc_root, &mut backends, &mut absent);
    #[cfg(target_os = "linux")]
    backends.push(Box::new(super::drm::DrmBackend::new(proc_root, sys_root)));
    #[cfg(all(windows, feature = "dxgi"))]
    backends.push(Box::new(super::dxgi::DxgiBackend::new()));
    #[cfg(all(windows, feature = "pdh"))]
    backends.push(Box::new(super::dxgi::PdhBackend::new()));
    #[cfg(all(target_os = "macos", feature = "metal"))]
    backends.push(Box::new(super::metal::MetalBackend::new()));
    (backends, absent)
}

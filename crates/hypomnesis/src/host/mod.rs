//! Host memory: what the machine has, what is still available, whether it is under pressure,
//! and the cgroup limit that really bounds this process (a container's limit, not the host's
//! RAM, is what an allocation runs into).
//!
//! Parsers are pure; readers take the `/proc` and `/sys` roots as parameters.

#[cfg(target_os = "linux")]
pub(crate) mod linux;
// Pure and portable; only the Linux readers use them so far (Windows and macOS read APIs).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) mod parse;

/// The machine's memory, and the cgroup that bounds this process.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct HostMemory {
    /// Installed RAM the kernel manages, bytes (`MemTotal`).
    pub total_bytes: u64,
    /// Memory available for new allocations without swapping, bytes (`MemAvailable`, Linux ≥
    /// 3.14). `None` on older kernels.
    pub available_bytes: Option<u64>,
    /// Swap space, bytes (`SwapTotal`). `None` when not reported.
    pub swap_total_bytes: Option<u64>,
    /// Unused swap, bytes (`SwapFree`). `None` when not reported.
    pub swap_free_bytes: Option<u64>,
    /// Memory pressure stall information (`/proc/pressure/memory`). `None` when the kernel has
    /// no PSI (< 4.20, or booted with `psi=0`).
    pub pressure: Option<MemoryPressure>,
    /// The memory cgroup this process is in, when it is not the root. `None` at the root
    /// cgroup or when no memory controller is mounted.
    pub cgroup: Option<CgroupMemory>,
}

/// Share of time tasks were stalled waiting for memory (Linux PSI).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct MemoryPressure {
    /// Percent of the last 10 s in which at least one task stalled on memory (`some avg10`).
    pub some_avg10: f64,
    /// Percent of the last 60 s (`some avg60`).
    pub some_avg60: f64,
    /// Percent of the last 300 s (`some avg300`).
    pub some_avg300: f64,
    /// Total time in which at least one task stalled, microseconds since boot (`some total`).
    pub some_total_us: u64,
    /// Percent of the last 10 s in which all non-idle tasks stalled at once (`full avg10`):
    /// time lost outright. `None` when the kernel has no `full` line.
    pub full_avg10: Option<f64>,
    /// Percent of the last 60 s (`full avg60`). `None` as for `full_avg10`.
    pub full_avg60: Option<f64>,
    /// Percent of the last 300 s (`full avg300`). `None` as for `full_avg10`.
    pub full_avg300: Option<f64>,
    /// Total time in which all non-idle tasks stalled, microseconds since boot (`full total`).
    /// `None` as for `full_avg10`.
    pub full_total_us: Option<u64>,
}

/// Which cgroup hierarchy a figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum CgroupVersion {
    /// cgroup v1 (`/sys/fs/cgroup/memory/...`).
    V1,
    /// cgroup v2, the unified hierarchy (`/sys/fs/cgroup/...`).
    V2,
}

/// The memory cgroup that bounds this process.
///
/// Linux: found through `/proc/self/cgroup`. cgroup v2 is used when the unified hierarchy
/// (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on hybrid systems) has the memory
/// controller; otherwise the v1 memory hierarchy (`/sys/fs/cgroup/memory`). Inside a cgroup
/// namespace or a container, the path in `/proc/self/cgroup` may not exist under
/// `/sys/fs/cgroup` (the container sees its own cgroup mounted as the hierarchy's root); the
/// figures then come from that mounted root, and only limits visible from there count.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CgroupMemory {
    /// v1 or v2.
    pub version: CgroupVersion,
    /// The cgroup's path inside its hierarchy (`/process_api/2e17…`), as `/proc/self/cgroup`
    /// gives it.
    pub path: String,
    /// The limit, bytes: the tightest `memory.max` (v2) / `memory.limit_in_bytes` (v1) of
    /// this cgroup and its visible ancestors. `None` when unlimited: v2 `max`, or v1's
    /// "unlimited" sentinel (any value ≥ 2^62, such as `9223372036854771712`). A finite limit
    /// is reported as is, even when it is larger than the host's RAM and so does not bind.
    pub limit_bytes: Option<u64>,
    /// Current usage, bytes (`memory.current` / `memory.usage_in_bytes`), page cache
    /// included. `None` when the file is missing or unreadable.
    pub usage_bytes: Option<u64>,
    /// Peak usage, bytes (`memory.peak` on Linux ≥ 5.19 / `memory.max_usage_in_bytes`).
    /// `None` when the kernel has no such file.
    pub peak_bytes: Option<u64>,
}

//! Host memory: what the machine has, what is still available, whether it is under pressure,
//! and the cgroup limit that really bounds this process (a container's limit, not the host's
//! RAM, is what an allocation runs into).
//!
//! Parsers are pure; readers take the `/proc` and `/sys` roots as parameters. Windows reads
//! `GlobalMemoryStatusEx` (`windows.rs`); macOS reads `sysctl` and `host_statistics64`
//! (`macos.rs`), whose page arithmetic is pure and tested everywhere.

#[cfg(target_os = "linux")]
pub(crate) mod linux;
pub(crate) mod macos;
pub(crate) mod windows;
// Pure and portable; only the Linux readers use them so far (Windows and macOS read APIs).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) mod parse;

/// The machine's memory, and the cgroup that bounds this process.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct HostMemory {
    /// Installed RAM the kernel manages, bytes. Linux: `MemTotal`. Windows: `ullTotalPhys`.
    /// macOS: `hw.memsize`.
    pub total_bytes: u64,
    /// Memory available for new allocations without swapping, bytes. Linux: `MemAvailable`
    /// (≥ 3.14; `None` on older kernels). Windows: `ullAvailPhys` (free + standby lists).
    /// macOS: `total_bytes` minus Activity Monitor's "Memory Used" (see [`PageStates`]), i.e.
    /// free, file cache and purgeable memory; `None` when the page counts are unreadable.
    pub available_bytes: Option<u64>,
    /// Swap space, bytes. Linux: `SwapTotal`. macOS: `vm.swapusage` `xsu_total` (macOS grows
    /// and shrinks swap files on demand). `None` on Windows, whose page files are part of
    /// the commit limit instead (see `commit_limit_bytes`).
    pub swap_total_bytes: Option<u64>,
    /// Unused swap, bytes. Linux: `SwapFree`. macOS: `xsu_avail`. `None` as above.
    pub swap_free_bytes: Option<u64>,
    /// Memory pressure stall information (`/proc/pressure/memory`). `None` when the kernel has
    /// no PSI (< 4.20, or booted with `psi=0`), and on Windows and macOS.
    pub pressure: Option<MemoryPressure>,
    /// The memory cgroup this process is in, when it is not the root. `None` at the root
    /// cgroup or when no memory controller is mounted, and on Windows and macOS.
    pub cgroup: Option<CgroupMemory>,
    /// Percent of physical memory in use as the OS judges it. Windows: `dwMemoryLoad`.
    /// macOS: 100 − `kern.memorystatus_level` (the "System-wide memory free percentage" that
    /// `memory_pressure` prints). `None` on Linux.
    pub memory_load_percent: Option<u32>,
    /// Windows only: the commit limit — physical memory plus page files — bytes
    /// (`ullTotalPageFile`). Allocations fail once commit reaches it. `None` elsewhere.
    pub commit_limit_bytes: Option<u64>,
    /// Windows only: what can still be committed, bytes (`ullAvailPageFile`). `None`
    /// elsewhere.
    pub commit_available_bytes: Option<u64>,
    /// macOS only: the kernel's memory pressure level
    /// (`kern.memorystatus_vm_pressure_level`). `None` elsewhere or when unreadable.
    pub pressure_level: Option<PressureLevel>,
    /// macOS only: where the pages are (`host_statistics64(HOST_VM_INFO64)`), as `vm_stat`
    /// shows them. `None` elsewhere or when unreadable.
    pub page_states: Option<PageStates>,
}

/// The macOS kernel's memory pressure level (`kern.memorystatus_vm_pressure_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum PressureLevel {
    /// 1: normal.
    Normal,
    /// 2: warning — the system is compressing and swapping to keep up.
    Warning,
    /// 4: critical — the system is about to kill processes to free memory.
    Critical,
}

/// Where macOS's physical pages are, in bytes (page counts × the page size), as `vm_stat`
/// and Activity Monitor show them. From `host_statistics64(HOST_VM_INFO64)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct PageStates {
    /// The VM page size, bytes (16384 on Apple Silicon, 4096 on Intel).
    pub page_size: u64,
    /// Free pages ("Pages free").
    pub free_bytes: u64,
    /// Active pages ("Pages active").
    pub active_bytes: u64,
    /// Inactive pages ("Pages inactive"): reclaimable.
    pub inactive_bytes: u64,
    /// Speculative pages ("Pages speculative"): read ahead, reclaimable.
    pub speculative_bytes: u64,
    /// Wired pages ("Pages wired down"): locked by the kernel, never paged out.
    pub wired_bytes: u64,
    /// Physical memory the compressor occupies ("Pages occupied by compressor").
    pub compressed_bytes: u64,
    /// What the compressed pages would take uncompressed ("Pages stored in compressor").
    pub compressed_original_bytes: u64,
    /// Purgeable pages ("Pages purgeable"): the owner has said they may be discarded.
    pub purgeable_bytes: u64,
    /// File-backed pages ("File-backed pages"): file cache.
    pub file_backed_bytes: u64,
    /// Anonymous pages ("Anonymous pages").
    pub anonymous_bytes: u64,
    /// Activity Monitor's "Memory Used": app memory (anonymous − purgeable) + wired +
    /// compressed.
    pub used_bytes: u64,
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

#[cfg(feature = "test-helpers")]
mod builders {
    //! Constructors so downstream crates can put host figures in frames built by hand.
    use super::{CgroupMemory, CgroupVersion, HostMemory};

    impl HostMemory {
        /// `total_bytes` of RAM and nothing else known (feature `test-helpers`); set the
        /// other public fields as the test needs.
        #[must_use]
        pub fn for_test(total_bytes: u64) -> Self {
            Self::recorded(total_bytes)
        }
    }

    impl CgroupMemory {
        /// A cgroup v2 at `path` with no figure known (feature `test-helpers`).
        #[must_use]
        pub fn for_test(path: &str) -> Self {
            Self {
                version: CgroupVersion::V2,
                path: path.to_owned(),
                limit_bytes: None,
                usage_bytes: None,
                peak_bytes: None,
            }
        }
    }
}

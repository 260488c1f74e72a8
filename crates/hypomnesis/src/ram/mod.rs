//! Process memory: how much RAM a process holds, its peak, its swap, and on request its
//! proportional (PSS) and unique (USS) sets.
//!
//! Parsers are pure functions over text and compile on every OS; the readers that open
//! `/proc` files live in `linux.rs` and take the `/proc` root as a parameter so tests can
//! point them at fixture trees. Windows (`windows.rs`: `K32GetProcessMemoryInfo`) and macOS
//! (`macos.rs`: `task_info`, `proc_pid_rusage`, the kernel ledger) read OS calls instead; their
//! pure parts (struct-size arithmetic, name fallbacks) compile and are tested everywhere.
//!
//! What [`ProcessMemory::rss_bytes`] is differs by platform, on purpose: it is the figure the
//! platform's own tools show as "the process's memory" — Linux `VmRSS` (`top`, `ps`), Windows
//! `WorkingSetSize` (Task Manager's "Working set"), macOS `phys_footprint` (Activity Monitor's
//! "Memory"), which unlike the resident size includes Metal / MLX GPU allocations.

#[cfg(target_os = "linux")]
pub(crate) mod linux;
pub(crate) mod macos;
pub(crate) mod windows;
// Pure and portable; only the Linux readers use them so far (Windows and macOS read APIs).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) mod parse;

/// How much work a process-memory query may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MemoryDetail {
    /// RSS, peak RSS and swap: cheap (`statm` + `status`, microseconds).
    #[default]
    Fast,
    /// Also PSS and USS from `smaps_rollup`, which walks the page tables under the process's
    /// mmap lock: ~50 µs for a small process, tens of milliseconds for one with gigabytes
    /// resident. Ask for it explicitly, never in a loop on a big process.
    WithPss,
}

/// One process's RAM.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ProcessMemory {
    /// The process id. Linux: `Tgid` from `/proc/<pid>/status`, as numbered by the PID
    /// namespace of the `/proc` mount: a thread id resolves to its process's id.
    pub pid: u32,
    /// The process's memory as its platform's tools show it, bytes.
    /// - Linux: resident set size (`VmRSS`, or `statm` resident × page size).
    /// - Windows: the working set (`WorkingSetSize` of `K32GetProcessMemoryInfo`).
    /// - macOS: the physical footprint (`phys_footprint` of `task_info(TASK_VM_INFO)`, or
    ///   `ri_phys_footprint` of `proc_pid_rusage` for another process) — Activity Monitor's
    ///   "Memory" column. It includes Metal / MLX buffers and compressed memory, which the
    ///   resident size misses; the resident size is in `resident_bytes`.
    pub rss_bytes: u64,
    /// Peak of `rss_bytes` since start, bytes. Linux: `VmHWM` (reset by `clear_refs`).
    /// Windows: `PeakWorkingSetSize`. macOS: `ledger_phys_footprint_peak` (own process, macOS
    /// 10.13+) or `ri_lifetime_max_phys_footprint` (another process). `None` when the OS does
    /// not report it.
    pub peak_rss_bytes: Option<u64>,
    /// Swapped-out anonymous memory, bytes (Linux: `VmSwap`). `None` when not reported
    /// (kernel threads, old kernels).
    pub swap_bytes: Option<u64>,
    /// Anonymous resident memory, bytes (Linux ≥ 4.5: `RssAnon`). `None` when not reported.
    pub rss_anon_bytes: Option<u64>,
    /// File-backed resident memory, bytes (Linux ≥ 4.5: `RssFile`). `None` when not reported.
    pub rss_file_bytes: Option<u64>,
    /// Proportional set size, bytes (`smaps_rollup` `Pss`). `None` unless asked for with
    /// [`MemoryDetail::WithPss`], when the kernel (< 4.14) has no `smaps_rollup`, or for a
    /// process without an address space (a kernel thread).
    pub pss_bytes: Option<u64>,
    /// Unique set size, bytes (`Private_Clean + Private_Dirty`). `None` as for `pss_bytes`.
    /// Windows: `PrivateWorkingSetSize` (`PROCESS_MEMORY_COUNTERS_EX2`, Windows 10 / 11 22H2
    /// with the September 2023 update) when asked for with [`MemoryDetail::WithPss`]; `None`
    /// on older Windows and on macOS.
    pub uss_bytes: Option<u64>,
    /// Windows only: private commit ("Private Bytes", `PrivateUsage`), bytes — memory the
    /// process has committed, resident or paged out. `None` on Linux and macOS, and when
    /// Windows does not fill the extended counters.
    pub private_bytes: Option<u64>,
    /// macOS only: the resident size (`resident_size` / `ri_resident_size`), bytes, since
    /// `rss_bytes` is the footprint there. `None` on Linux and Windows, where `rss_bytes`
    /// already is the resident figure.
    pub resident_bytes: Option<u64>,
    /// macOS only: Metal / IOAccelerator memory charged to the process's footprint
    /// (`ledger_tag_graphics_footprint` for the calling process, the kernel ledger's
    /// `graphics_footprint` entry for another), bytes. `None` on Linux and Windows, and when
    /// the kernel refuses or predates it.
    pub graphics_bytes: Option<u64>,
}

//! Process memory: how much RAM a process holds, its peak, its swap, and on request its
//! proportional (PSS) and unique (USS) sets.
//!
//! Parsers are pure functions over text and compile on every OS; the readers that open
//! `/proc` files live in `linux.rs` and take the `/proc` root as a parameter so tests can
//! point them at fixture trees.

#[cfg(target_os = "linux")]
pub(crate) mod linux;
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
    /// Resident set size, bytes (Linux: `VmRSS`, or `statm` resident × page size).
    pub rss_bytes: u64,
    /// Peak resident set size since start (or since the last `clear_refs` reset), bytes
    /// (Linux: `VmHWM`). `None` when the kernel does not report it.
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
    pub uss_bytes: Option<u64>,
}

//! macOS host memory: `sysctl` and `host_statistics64`.
//!
//! - total: `hw.memsize`;
//! - swap: `vm.swapusage` (`xsw_usage`; macOS creates swap files on demand, so the total
//!   grows and shrinks);
//! - pressure: `kern.memorystatus_vm_pressure_level` (1 normal, 2 warning, 4 critical) and
//!   `kern.memorystatus_level`, the free percentage `memory_pressure` prints;
//! - page states: `host_statistics64(HOST_VM_INFO64)`, the counts `vm_stat` prints, turned
//!   into bytes with the VM page size (16 KiB on Apple Silicon).
//!
//! "Used" follows Activity Monitor: app memory (anonymous − purgeable) + wired + compressed.
//! Available is total − used: free pages, file cache and purgeable memory, which the system
//! hands out before it compresses or swaps.
#![cfg_attr(not(target_os = "macos"), allow(dead_code))]

use super::{PageStates, PressureLevel};

/// The page counts of `vm_statistics64` this crate reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct PageCounts {
    pub(crate) free: u64,
    pub(crate) active: u64,
    pub(crate) inactive: u64,
    pub(crate) speculative: u64,
    pub(crate) wired: u64,
    pub(crate) compressor: u64,
    pub(crate) stored_in_compressor: u64,
    pub(crate) purgeable: u64,
    pub(crate) external: u64,
    pub(crate) internal: u64,
}

/// Page counts × `page_size`, and Activity Monitor's "Memory Used".
pub(crate) fn page_states(counts: PageCounts, page_size: u64) -> PageStates {
    let bytes = |pages: u64| pages.saturating_mul(page_size);
    let app = counts.internal.saturating_sub(counts.purgeable);
    let used = app
        .saturating_add(counts.wired)
        .saturating_add(counts.compressor);
    PageStates {
        page_size,
        free_bytes: bytes(counts.free),
        active_bytes: bytes(counts.active),
        inactive_bytes: bytes(counts.inactive),
        speculative_bytes: bytes(counts.speculative),
        wired_bytes: bytes(counts.wired),
        compressed_bytes: bytes(counts.compressor),
        compressed_original_bytes: bytes(counts.stored_in_compressor),
        purgeable_bytes: bytes(counts.purgeable),
        file_backed_bytes: bytes(counts.external),
        anonymous_bytes: bytes(counts.internal),
        used_bytes: bytes(used),
    }
}

/// `kern.memorystatus_vm_pressure_level`'s value as a level; `None` for values the kernel
/// does not document.
pub(crate) const fn pressure_level(raw: i32) -> Option<PressureLevel> {
    match raw {
        1 => Some(PressureLevel::Normal),
        2 => Some(PressureLevel::Warning),
        4 => Some(PressureLevel::Critical),
        _ => None,
    }
}

/// The memory load, percent, from `kern.memorystatus_level` (the free percentage).
pub(crate) fn memory_load_percent(free_percent: i32) -> Option<u32> {
    let free = u32::try_from(free_percent).ok().filter(|&f| f <= 100)?;
    Some(100 - free)
}

/// Whether a Mach reply of `count` 32-bit words covers a field ending `field_end` bytes into
/// the struct. Mach info calls return shorter structs on older kernels.
pub(crate) fn reply_covers(count: u32, field_end: usize) -> bool {
    usize::try_from(count).is_ok_and(|c| c.saturating_mul(4) >= field_end)
}

#[cfg(target_os = "macos")]
pub(crate) use sys::read_host_memory;

#[cfg(target_os = "macos")]
mod sys {
    use std::mem::{offset_of, size_of};

    use super::{PageCounts, memory_load_percent, page_states, pressure_level, reply_covers};
    use crate::error::{HypomnesisError, Result};
    use crate::host::HostMemory;
    use crate::os::macos::{sysctl_value, zeroed};

    /// The host port, deallocated on drop.
    struct HostPort(mach2::port::mach_port_t);

    impl Drop for HostPort {
        fn drop(&mut self) {
            // SAFETY: mach_task_self reads the task's own port name; no preconditions.
            let task = unsafe { mach2::traps::mach_task_self() };
            // SAFETY: `self.0` is a send right this process received from mach_host_self and
            // releases exactly once.
            unsafe { mach2::mach_port::mach_port_deallocate(task, self.0) };
        }
    }

    fn page_counts() -> Option<PageCounts> {
        // SAFETY: mach_host_self has no preconditions; it returns a send right (released by
        // `HostPort`).
        let host = HostPort(unsafe { mach2::mach_init::mach_host_self() });
        let mut stats: libc::vm_statistics64 = zeroed();
        let mut count = libc::HOST_VM_INFO64_COUNT;
        // SAFETY: `stats` is a live vm_statistics64 of `count` 32-bit words; the kernel writes
        // at most `count` words and stores how many it wrote.
        let rc = unsafe {
            libc::host_statistics64(
                host.0,
                libc::HOST_VM_INFO64,
                (&raw mut stats).cast(),
                &raw mut count,
            )
        };
        let last = offset_of!(
            libc::vm_statistics64,
            total_uncompressed_pages_in_compressor
        ) + size_of::<u64>();
        if rc != 0 || !reply_covers(count, last) {
            return None;
        }
        Some(PageCounts {
            free: u64::from(stats.free_count),
            active: u64::from(stats.active_count),
            inactive: u64::from(stats.inactive_count),
            speculative: u64::from(stats.speculative_count),
            wired: u64::from(stats.wire_count),
            compressor: u64::from(stats.compressor_page_count),
            stored_in_compressor: stats.total_uncompressed_pages_in_compressor,
            purgeable: u64::from(stats.purgeable_count),
            external: u64::from(stats.external_page_count),
            internal: u64::from(stats.internal_page_count),
        })
    }

    fn page_size() -> Option<u64> {
        // SAFETY: sysconf has no preconditions.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        u64::try_from(size).ok().filter(|&s| s > 0)
    }

    /// Total, swap, pressure and page states.
    pub(crate) fn read_host_memory() -> Result<HostMemory> {
        let total_bytes: u64 = sysctl_value(c"hw.memsize").ok_or_else(|| {
            HypomnesisError::io("sysctl hw.memsize", &std::io::Error::last_os_error())
        })?;
        let swap: Option<libc::xsw_usage> = sysctl_value(c"vm.swapusage");
        let page_states = page_counts()
            .zip(page_size())
            .map(|(counts, size)| page_states(counts, size));
        Ok(HostMemory {
            total_bytes,
            available_bytes: page_states.map(|p| total_bytes.saturating_sub(p.used_bytes)),
            swap_total_bytes: swap.map(|s| s.xsu_total),
            swap_free_bytes: swap.map(|s| s.xsu_avail),
            pressure: None,
            cgroup: None,
            memory_load_percent: sysctl_value::<i32>(c"kern.memorystatus_level")
                .and_then(memory_load_percent),
            commit_limit_bytes: None,
            commit_available_bytes: None,
            pressure_level: sysctl_value::<i32>(c"kern.memorystatus_vm_pressure_level")
                .and_then(pressure_level),
            page_states,
        })
    }
}

// Moved to the OS layer; the old path stays while callers move over.
#[cfg(all(target_os = "macos", feature = "metal"))]
pub(crate) use crate::os::macos::sysctl_value;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_memory_is_app_plus_wired_plus_compressed_like_activity_monitor() {
        // 16 KiB pages, as on Apple Silicon.
        let counts = PageCounts {
            free: 10_000,
            active: 300_000,
            inactive: 290_000,
            speculative: 5_000,
            wired: 150_000,
            compressor: 40_000,
            stored_in_compressor: 120_000,
            purgeable: 20_000,
            external: 250_000,
            internal: 320_000,
        };
        let p = page_states(counts, 16_384);
        assert_eq!(p.used_bytes, (320_000 - 20_000 + 150_000 + 40_000) * 16_384);
        assert_eq!(p.wired_bytes, 150_000 * 16_384);
        assert_eq!(p.compressed_bytes, 40_000 * 16_384);
        assert_eq!(p.compressed_original_bytes, 120_000 * 16_384);
        assert_eq!(p.file_backed_bytes, 250_000 * 16_384);
        assert_eq!(p.page_size, 16_384);
    }

    #[test]
    fn purgeable_larger_than_anonymous_does_not_underflow() {
        let counts = PageCounts {
            internal: 5,
            purgeable: 9,
            wired: 1,
            ..PageCounts::default()
        };
        assert_eq!(page_states(counts, 4096).used_bytes, 4096);
    }

    #[test]
    fn pressure_levels_are_1_2_4() {
        assert_eq!(pressure_level(1), Some(PressureLevel::Normal));
        assert_eq!(pressure_level(2), Some(PressureLevel::Warning));
        assert_eq!(pressure_level(4), Some(PressureLevel::Critical));
        assert_eq!(pressure_level(3), None);
        assert_eq!(pressure_level(0), None);
    }

    #[test]
    fn load_is_the_complement_of_the_free_percentage() {
        assert_eq!(memory_load_percent(63), Some(37));
        assert_eq!(memory_load_percent(0), Some(100));
        assert_eq!(memory_load_percent(-1), None);
        assert_eq!(memory_load_percent(101), None);
    }

    #[test]
    fn a_short_mach_reply_does_not_cover_later_fields() {
        assert!(reply_covers(38, 152));
        assert!(!reply_covers(36, 152));
        assert!(!reply_covers(0, 1));
    }
}

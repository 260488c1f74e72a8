//! Windows host memory: `GlobalMemoryStatusEx`.
//!
//! Windows has no swap figure of the Linux kind: page files extend the *commit limit*
//! (physical memory plus page files), and an allocation fails when commit reaches it, not
//! when RAM is full. So the commit limit and what remains of it are reported as such, and the
//! swap fields stay `None` rather than carrying a derived guess.
#![cfg_attr(not(windows), allow(dead_code))]

use super::HostMemory;

/// The fields of `MEMORYSTATUSEX` this crate reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemoryStatus {
    pub(crate) memory_load: u32,
    pub(crate) total_phys: u64,
    pub(crate) avail_phys: u64,
    pub(crate) total_page_file: u64,
    pub(crate) avail_page_file: u64,
}

/// The record for a `MEMORYSTATUSEX` reading.
pub(crate) fn host_memory_from(status: MemoryStatus) -> HostMemory {
    HostMemory {
        total_bytes: status.total_phys,
        available_bytes: Some(status.avail_phys),
        swap_total_bytes: None,
        swap_free_bytes: None,
        pressure: None,
        cgroup: None,
        memory_load_percent: Some(status.memory_load.min(100)),
        commit_limit_bytes: Some(status.total_page_file),
        commit_available_bytes: Some(status.avail_page_file),
        pressure_level: None,
        page_states: None,
    }
}

/// Reads `GlobalMemoryStatusEx`.
#[cfg(windows)]
pub(crate) fn read_host_memory() -> crate::error::Result<HostMemory> {
    use windows_sys::Win32::System::SystemInformation::{GlobalMemoryStatusEx, MEMORYSTATUSEX};

    let mut status = MEMORYSTATUSEX {
        dwLength: u32::try_from(std::mem::size_of::<MEMORYSTATUSEX>()).unwrap_or(64),
        ..MEMORYSTATUSEX::default()
    };
    // SAFETY: `status` is a live MEMORYSTATUSEX whose `dwLength` is set, as the API requires.
    let ok = unsafe { GlobalMemoryStatusEx(&raw mut status) };
    if ok == 0 {
        return Err(crate::error::HypomnesisError::io(
            "GlobalMemoryStatusEx",
            &std::io::Error::last_os_error(),
        ));
    }
    Ok(host_memory_from(MemoryStatus {
        memory_load: status.dwMemoryLoad,
        total_phys: status.ullTotalPhys,
        avail_phys: status.ullAvailPhys,
        total_page_file: status.ullTotalPageFile,
        avail_page_file: status.ullAvailPageFile,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_is_reported_as_commit_and_swap_stays_unknown() {
        let host = host_memory_from(MemoryStatus {
            memory_load: 41,
            total_phys: 32 << 30,
            avail_phys: 19 << 30,
            total_page_file: 37 << 30,
            avail_page_file: 20 << 30,
        });
        assert_eq!(host.total_bytes, 32 << 30);
        assert_eq!(host.available_bytes, Some(19 << 30));
        assert_eq!(host.commit_limit_bytes, Some(37 << 30));
        assert_eq!(host.commit_available_bytes, Some(20 << 30));
        assert_eq!(host.memory_load_percent, Some(41));
        assert_eq!(host.swap_total_bytes, None);
        assert_eq!(host.pressure_level, None);
    }
}

//! Windows process memory.
//!
//! Memory comes from `K32GetProcessMemoryInfo` (kernel32's copy of psapi's
//! `GetProcessMemoryInfo`): the working set is what Task Manager shows, the private commit
//! ("Private Bytes") what the process has committed whether resident or paged out. Another
//! process needs a handle opened with `PROCESS_QUERY_LIMITED_INFORMATION`, which an ordinary
//! user gets for its own processes and most others, but not for protected ones.
//!
//! The extended counters (`PrivateUsage`, `PrivateWorkingSetSize`) are only trusted when the
//! OS filled them: they are set to an impossible value (`usize::MAX`) before the call, and a
//! field still holding it was not reported. Wine, for one, fills only the base struct (and
//! says so in `cb`); reading the rest would report a zero that was never measured.
//!
//! Opening a process, whether it runs and what it is called are the OS layer's
//! (`os/windows.rs`), shared with the GPU process rows.
#![cfg_attr(not(windows), allow(dead_code))]

/// What an extended counter field is set to before the call: no process has `usize::MAX`
/// bytes, so a field still holding it was not filled.
pub(crate) const NOT_FILLED: usize = usize::MAX;

/// An extended counter's value, when the OS filled it.
pub(crate) fn filled(value: usize) -> Option<u64> {
    (value != NOT_FILLED).then(|| u64::try_from(value).unwrap_or(u64::MAX))
}

#[cfg(windows)]
pub(crate) use sys::{own_rss, read_process_memory};
// The process facts that lived here, at their old paths while callers move to `crate::os`.
#[allow(unused_imports)]
pub(crate) use crate::os::windows::{ImageName, resolve_name, wide_until_nul};
#[cfg(windows)]
#[allow(unused_imports)]
pub(crate) use crate::os::windows::{image_name, process_exists, snapshot_names};

#[cfg(windows)]
mod sys {
    use std::path::PathBuf;

    use windows_sys::Win32::Foundation::HANDLE;
    use windows_sys::Win32::System::ProcessStatus::{
        K32GetProcessMemoryInfo, PROCESS_MEMORY_COUNTERS, PROCESS_MEMORY_COUNTERS_EX,
        PROCESS_MEMORY_COUNTERS_EX2,
    };
    use windows_sys::Win32::System::Threading::GetCurrentProcess;

    use super::{NOT_FILLED, filled};
    use crate::error::{HypomnesisError, Result};
    use crate::os::windows::{OpenError, open_process, size_u32, still_running};
    use crate::ram::{MemoryDetail, ProcessMemory};

    /// The counters `K32GetProcessMemoryInfo` fills, as far as the OS filled them.
    struct Counters {
        working_set: u64,
        peak_working_set: u64,
        private_usage: Option<u64>,
        private_working_set: Option<u64>,
    }

    fn to_u64(value: usize) -> u64 {
        u64::try_from(value).unwrap_or(u64::MAX)
    }

    /// `PROCESS_MEMORY_COUNTERS_EX2` (Windows 10 / 11 22H2 with the September 2023 update)
    /// when `with_private_ws`, falling back to `_EX`, which every supported Windows fills.
    fn counters(process: HANDLE, with_private_ws: bool) -> std::io::Result<Counters> {
        if with_private_ws {
            let mut ex2 = PROCESS_MEMORY_COUNTERS_EX2 {
                PrivateUsage: NOT_FILLED,
                PrivateWorkingSetSize: NOT_FILLED,
                ..PROCESS_MEMORY_COUNTERS_EX2::default()
            };
            let requested = size_u32::<PROCESS_MEMORY_COUNTERS_EX2>();
            // SAFETY: `ex2` is a live, writable PROCESS_MEMORY_COUNTERS_EX2 of `requested`
            // bytes; the API writes at most `cb` bytes into it.
            let ok = unsafe {
                K32GetProcessMemoryInfo(
                    process,
                    (&raw mut ex2).cast::<PROCESS_MEMORY_COUNTERS>(),
                    requested,
                )
            };
            if ok != 0 {
                return Ok(Counters {
                    working_set: to_u64(ex2.WorkingSetSize),
                    peak_working_set: to_u64(ex2.PeakWorkingSetSize),
                    private_usage: filled(ex2.PrivateUsage),
                    private_working_set: filled(ex2.PrivateWorkingSetSize),
                });
            }
        }
        let mut ex = PROCESS_MEMORY_COUNTERS_EX {
            PrivateUsage: NOT_FILLED,
            ..PROCESS_MEMORY_COUNTERS_EX::default()
        };
        let requested = size_u32::<PROCESS_MEMORY_COUNTERS_EX>();
        // SAFETY: `ex` is a live, writable PROCESS_MEMORY_COUNTERS_EX of `requested` bytes.
        let ok = unsafe {
            K32GetProcessMemoryInfo(
                process,
                (&raw mut ex).cast::<PROCESS_MEMORY_COUNTERS>(),
                requested,
            )
        };
        if ok == 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Counters {
            working_set: to_u64(ex.WorkingSetSize),
            peak_working_set: to_u64(ex.PeakWorkingSetSize),
            private_usage: filled(ex.PrivateUsage),
            private_working_set: None,
        })
    }

    fn call_error(call: &str, err: &std::io::Error) -> HypomnesisError {
        HypomnesisError::io(PathBuf::from(call), err)
    }

    /// The calling process's working set, bytes.
    pub(crate) fn own_rss() -> Result<u64> {
        // SAFETY: GetCurrentProcess returns a pseudo-handle that needs no closing.
        let me = unsafe { GetCurrentProcess() };
        counters(me, false)
            .map(|c| c.working_set)
            .map_err(|e| call_error("K32GetProcessMemoryInfo", &e))
    }

    /// RAM of `pid` (`None` = the calling process).
    pub(crate) fn read_process_memory(
        pid: Option<u32>,
        detail: MemoryDetail,
    ) -> Result<ProcessMemory> {
        let own = std::process::id();
        let with_private_ws = detail == MemoryDetail::WithPss;
        let (pid, counters) = match pid {
            None => {
                // SAFETY: as in `own_rss`.
                let me = unsafe { GetCurrentProcess() };
                (own, counters(me, with_private_ws))
            }
            Some(pid) => {
                let handle = match open_process(pid) {
                    Ok(h) => h,
                    Err(OpenError::Gone) => return Err(HypomnesisError::ProcessNotFound { pid }),
                    Err(OpenError::Denied(e)) => {
                        return Err(HypomnesisError::PermissionDenied {
                            pid,
                            detail: format!(
                                "OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION) refused: {e}; protected processes need an elevated caller"
                            ),
                        });
                    }
                    Err(OpenError::Other(e)) => return Err(call_error("OpenProcess", &e)),
                };
                if still_running(&handle) == Some(false) {
                    return Err(HypomnesisError::ProcessNotFound { pid });
                }
                (pid, counters(handle.raw(), with_private_ws))
            }
        };
        let counters = counters.map_err(|e| call_error("K32GetProcessMemoryInfo", &e))?;
        Ok(ProcessMemory {
            pid,
            rss_bytes: counters.working_set,
            peak_rss_bytes: Some(counters.peak_working_set),
            swap_bytes: None,
            rss_anon_bytes: None,
            rss_file_bytes: None,
            pss_bytes: None,
            uss_bytes: counters.private_working_set,
            private_bytes: counters.private_usage,
            resident_bytes: None,
            graphics_bytes: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_counters_left_untouched_by_the_os_are_not_reported() {
        assert_eq!(filled(NOT_FILLED), None, "Wine fills only the base struct");
        assert_eq!(filled(0), Some(0), "a real 0 stays a measurement");
        assert_eq!(filled(48 << 20), Some(48 << 20));
    }
}

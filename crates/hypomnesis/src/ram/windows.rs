//! Windows process memory and process names.
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
//! Names come from `QueryFullProcessImageNameW` (the executable's file name). When that is
//! refused, one Toolhelp32 snapshot per listing names the leftovers. PID 4 ("System", the
//! kernel) is named `[kernel]`; what no call can name — gone since it was listed, or
//! protected — has no name (`None`), and the listing's notes say which.
#![cfg_attr(not(windows), allow(dead_code))]

use std::collections::HashMap;

/// What `QueryFullProcessImageNameW` said about a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ImageName {
    /// The full path of its executable.
    Found(String),
    /// The process no longer exists (`OpenProcess` said `ERROR_INVALID_PARAMETER`).
    Gone,
    /// The OS would not say (access denied, or the query failed).
    Refused,
}

/// The file name of an image path (`C:\Program Files\x\python.exe` → `python.exe`).
pub(crate) fn image_basename(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

/// The name of `pid`, given what `QueryFullProcessImageNameW` said and, when it was refused,
/// the Toolhelp32 snapshot (`None` when the snapshot itself failed). `None` when nothing
/// could name it — gone since it was listed, or protected — so that the record says
/// "unknown" (`null` in JSON, as on Linux) rather than carrying a placeholder as if it were
/// the process's name; the listing's notes say why.
pub(crate) fn resolve_name(
    pid: u32,
    image: &ImageName,
    snapshot: Option<&HashMap<u32, String>>,
) -> Option<String> {
    if pid == 4 {
        // The "System" process: the kernel, which has no image file.
        return Some("[kernel]".to_owned());
    }
    match image {
        ImageName::Found(path) => Some(image_basename(path).to_owned()),
        ImageName::Gone => None,
        ImageName::Refused => snapshot.and_then(|names| names.get(&pid).cloned()),
    }
}

/// A UTF-16 buffer up to its first NUL, as a `String` (invalid UTF-16 replaced).
pub(crate) fn wide_until_nul(wide: &[u16]) -> String {
    let end = wide.iter().position(|&c| c == 0).unwrap_or(wide.len());
    String::from_utf16_lossy(wide.get(..end).unwrap_or(wide))
}

/// What an extended counter field is set to before the call: no process has `usize::MAX`
/// bytes, so a field still holding it was not filled.
pub(crate) const NOT_FILLED: usize = usize::MAX;

/// An extended counter's value, when the OS filled it.
pub(crate) fn filled(value: usize) -> Option<u64> {
    (value != NOT_FILLED).then(|| u64::try_from(value).unwrap_or(u64::MAX))
}

#[cfg(windows)]
pub(crate) use sys::{image_name, own_rss, process_exists, read_process_memory, snapshot_names};

#[cfg(windows)]
mod sys {
    use std::collections::HashMap;
    use std::mem::size_of;
    use std::path::PathBuf;

    use windows_sys::Win32::Foundation::{
        CloseHandle, ERROR_ACCESS_DENIED, ERROR_INVALID_PARAMETER, HANDLE, INVALID_HANDLE_VALUE,
        STILL_ACTIVE,
    };
    use windows_sys::Win32::System::Diagnostics::ToolHelp::{
        CreateToolhelp32Snapshot, PROCESSENTRY32W, Process32FirstW, Process32NextW,
        TH32CS_SNAPPROCESS,
    };
    use windows_sys::Win32::System::ProcessStatus::{
        K32GetProcessMemoryInfo, PROCESS_MEMORY_COUNTERS, PROCESS_MEMORY_COUNTERS_EX,
        PROCESS_MEMORY_COUNTERS_EX2,
    };
    use windows_sys::Win32::System::Threading::{
        GetCurrentProcess, GetExitCodeProcess, OpenProcess, PROCESS_NAME_WIN32,
        PROCESS_QUERY_LIMITED_INFORMATION, QueryFullProcessImageNameW,
    };

    use super::{ImageName, NOT_FILLED, filled, wide_until_nul};
    use crate::error::{HypomnesisError, Result};
    use crate::ram::{MemoryDetail, ProcessMemory};

    /// A process (or snapshot) handle, closed on drop.
    #[derive(Debug)]
    pub(crate) struct OwnedHandle(HANDLE);

    impl OwnedHandle {
        pub(crate) fn raw(&self) -> HANDLE {
            self.0
        }
    }

    impl Drop for OwnedHandle {
        fn drop(&mut self) {
            // SAFETY: the handle was returned open by OpenProcess / CreateToolhelp32Snapshot
            // and is closed exactly once, here.
            unsafe { CloseHandle(self.0) };
        }
    }

    /// Why a process could not be opened.
    enum OpenError {
        Gone,
        Denied(std::io::Error),
        Other(std::io::Error),
    }

    fn open_process(pid: u32) -> std::result::Result<OwnedHandle, OpenError> {
        // SAFETY: OpenProcess takes plain values and returns a handle or null.
        let handle = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
        if handle.is_null() {
            let err = std::io::Error::last_os_error();
            return Err(
                match err.raw_os_error().and_then(|c| u32::try_from(c).ok()) {
                    Some(ERROR_INVALID_PARAMETER) => OpenError::Gone,
                    Some(ERROR_ACCESS_DENIED) => OpenError::Denied(err),
                    _ => OpenError::Other(err),
                },
            );
        }
        Ok(OwnedHandle(handle))
    }

    /// Whether the process behind `handle` is still running (an open handle keeps an exited
    /// process's object alive).
    fn still_running(handle: &OwnedHandle) -> Option<bool> {
        let mut code = 0_u32;
        // SAFETY: `handle` is open with PROCESS_QUERY_LIMITED_INFORMATION, which
        // GetExitCodeProcess needs; `code` is a live u32.
        let ok = unsafe { GetExitCodeProcess(handle.raw(), &raw mut code) };
        (ok != 0).then(|| i32::try_from(code).ok() == Some(STILL_ACTIVE))
    }

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

    fn size_u32<T>() -> u32 {
        u32::try_from(size_of::<T>()).unwrap_or(u32::MAX)
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

    /// Whether `pid` runs: `OpenProcess` plus `GetExitCodeProcess`. A refused open means the
    /// process exists.
    pub(crate) fn process_exists(pid: u32) -> Option<bool> {
        if pid == 0 || pid == 4 {
            // The idle process and "System" always exist (and refuse every handle).
            return Some(true);
        }
        match open_process(pid) {
            Ok(handle) => still_running(&handle),
            Err(OpenError::Gone) => Some(false),
            Err(OpenError::Denied(_)) => Some(true),
            Err(OpenError::Other(_)) => None,
        }
    }

    /// `QueryFullProcessImageNameW` of `pid`.
    pub(crate) fn image_name(pid: u32) -> ImageName {
        let handle = match open_process(pid) {
            Ok(h) => h,
            Err(OpenError::Gone) => return ImageName::Gone,
            Err(OpenError::Denied(_) | OpenError::Other(_)) => return ImageName::Refused,
        };
        if still_running(&handle) == Some(false) {
            return ImageName::Gone;
        }
        // Long paths (`\\?\`) may exceed MAX_PATH; 32768 UTF-16 units is the documented limit.
        let mut buf = vec![0_u16; 32_768];
        let mut len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        // SAFETY: `buf` holds `len` writable u16s; on success the API writes `len` units and
        // a NUL, and updates `len`.
        let ok = unsafe {
            QueryFullProcessImageNameW(
                handle.raw(),
                PROCESS_NAME_WIN32,
                buf.as_mut_ptr(),
                &raw mut len,
            )
        };
        if ok == 0 {
            return ImageName::Refused;
        }
        let len = usize::try_from(len).unwrap_or(0).min(buf.len());
        ImageName::Found(wide_until_nul(buf.get(..len).unwrap_or(&[])))
    }

    /// Every process's executable name from one Toolhelp32 snapshot (which, unlike
    /// `OpenProcess`, names protected processes too). `None` when the snapshot fails.
    pub(crate) fn snapshot_names() -> Option<HashMap<u32, String>> {
        // SAFETY: CreateToolhelp32Snapshot takes plain values and returns a handle or
        // INVALID_HANDLE_VALUE.
        let raw = unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0) };
        if raw == INVALID_HANDLE_VALUE || raw.is_null() {
            return None;
        }
        let snapshot = OwnedHandle(raw);
        let mut names = HashMap::new();
        let mut entry = PROCESSENTRY32W {
            dwSize: size_u32::<PROCESSENTRY32W>(),
            ..PROCESSENTRY32W::default()
        };
        // SAFETY: `snapshot` is an open process snapshot; `entry` is live with `dwSize` set.
        let mut ok = unsafe { Process32FirstW(snapshot.raw(), &raw mut entry) };
        while ok != 0 {
            names.insert(entry.th32ProcessID, wide_until_nul(&entry.szExeFile));
            // SAFETY: as above.
            ok = unsafe { Process32NextW(snapshot.raw(), &raw mut entry) };
        }
        Some(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_paths_are_cut_to_the_file_name() {
        assert_eq!(
            image_basename(r"C:\Program Files\Python312\python.exe"),
            "python.exe"
        );
        assert_eq!(
            image_basename(r"\\?\D:\models\llama-server.exe"),
            "llama-server.exe"
        );
        assert_eq!(image_basename("plain.exe"), "plain.exe");
    }

    #[test]
    fn pid_4_is_the_kernel_whatever_the_os_says() {
        assert_eq!(
            resolve_name(4, &ImageName::Refused, None).as_deref(),
            Some("[kernel]")
        );
        assert_eq!(
            resolve_name(4, &ImageName::Gone, None).as_deref(),
            Some("[kernel]")
        );
    }

    #[test]
    fn a_refused_name_is_looked_up_in_the_snapshot() {
        let snapshot: HashMap<u32, String> = [(812, "csrss.exe".to_owned())].into();
        assert_eq!(
            resolve_name(812, &ImageName::Refused, Some(&snapshot)).as_deref(),
            Some("csrss.exe")
        );
        assert_eq!(
            resolve_name(900, &ImageName::Refused, Some(&snapshot)),
            None,
            "refused and absent from the snapshot: it exited in between, its name is unknown"
        );
        assert_eq!(
            resolve_name(812, &ImageName::Refused, None),
            None,
            "no snapshot either: nothing could name it"
        );
    }

    #[test]
    fn found_and_gone_names() {
        assert_eq!(
            resolve_name(
                1234,
                &ImageName::Found(r"C:\Windows\System32\dwm.exe".into()),
                None
            )
            .as_deref(),
            Some("dwm.exe")
        );
        assert_eq!(
            resolve_name(1234, &ImageName::Gone, None),
            None,
            "a process gone since it was listed has no name, not a placeholder"
        );
    }

    #[test]
    fn wide_strings_stop_at_the_first_nul() {
        let mut wide: Vec<u16> = "NVIDIA GeForce GTX 470".encode_utf16().collect();
        wide.push(0);
        wide.extend("garbage".encode_utf16());
        assert_eq!(wide_until_nul(&wide), "NVIDIA GeForce GTX 470");
        assert_eq!(wide_until_nul(&[]), "");
    }

    #[cfg(windows)]
    #[test]
    fn names_come_from_the_image_path_or_the_snapshot_and_a_gone_process_has_none() {
        let own = std::process::id();
        let ImageName::Found(path) = image_name(own) else {
            panic!("the calling process can always name itself");
        };
        assert!(
            image_basename(&path).to_ascii_lowercase().ends_with(".exe"),
            "{path}"
        );
        assert_eq!(image_name(0xFFFF_FFF0), ImageName::Gone);
        let snapshot = snapshot_names().expect("a process snapshot");
        assert_eq!(
            resolve_name(own, &ImageName::Refused, Some(&snapshot)).as_deref(),
            Some(image_basename(&path)),
            "the snapshot names the same executable"
        );
    }

    #[test]
    fn extended_counters_left_untouched_by_the_os_are_not_reported() {
        assert_eq!(filled(NOT_FILLED), None, "Wine fills only the base struct");
        assert_eq!(filled(0), Some(0), "a real 0 stays a measurement");
        assert_eq!(filled(48 << 20), Some(48 << 20));
    }
}

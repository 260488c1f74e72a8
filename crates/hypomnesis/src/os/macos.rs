//! macOS process facts and the primitives every macOS reader shares.
//!
//! RAM, host memory, the Metal backend and the sampler all pass structs to the kernel
//! (`sysctl`, `proc_pidinfo`, `proc_pid_rusage`, Mach info calls) that must start all-zero:
//! one marker trait, `PlainData`, says for which types that is sound, so that `unsafe`
//! lives here once. Whether a pid exists is `kill(pid, 0)` (`ESRCH`: no such process,
//! `EPERM`: one we may not signal, so it exists); a process's name is its executable's file
//! name (`proc_pidpath`), else the kernel's short name; its owner comes from
//! `proc_pidinfo(PROC_PIDTBSDINFO)`; and every pid from `proc_listpids`.
#![cfg_attr(not(target_os = "macos"), allow(dead_code))]

/// The file name of an executable path.
#[cfg(any(test, feature = "metal"))] // for `process_name`
pub(crate) fn path_basename(path: &str) -> &str {
    path.rsplit('/').find(|s| !s.is_empty()).unwrap_or(path)
}

#[cfg(all(target_os = "macos", feature = "metal"))]
pub(crate) use sys::{list_pids, process_name, process_uid};
#[cfg(target_os = "macos")]
pub(crate) use sys::{process_exists, sysctl_value, zeroed};

#[cfg(target_os = "macos")]
mod sys {
    use std::ffi::CStr;
    #[cfg(feature = "metal")]
    use std::ffi::c_int;
    use std::mem::size_of;

    #[cfg(feature = "metal")]
    use super::path_basename;

    /// C structs and integers for which all-zero bytes are a valid value, so they can be
    /// zero-initialised before the kernel fills them.
    ///
    /// # Safety
    /// Only for `repr(C)` types made of integers and arrays of integers.
    pub(crate) unsafe trait PlainData: Copy {}
    // SAFETY: integers.
    unsafe impl PlainData for i32 {}
    // SAFETY: an integer.
    unsafe impl PlainData for u64 {}
    // SAFETY: integers only (`xsu_total`, `xsu_avail`, `xsu_used`, `xsu_pagesize`,
    // `xsu_encrypted`).
    unsafe impl PlainData for libc::xsw_usage {}
    // SAFETY: integers only.
    unsafe impl PlainData for libc::vm_statistics64 {}
    // SAFETY: integers and a byte array (`ri_uuid`).
    unsafe impl PlainData for libc::rusage_info_v4 {}

    /// An all-zero `T`.
    pub(crate) fn zeroed<T: PlainData>() -> T {
        // SAFETY: `PlainData` types are valid when all-zero.
        unsafe { std::mem::zeroed() }
    }

    /// A `sysctlbyname` value of exactly `T`'s size; `None` when missing or of another size.
    pub(crate) fn sysctl_value<T: PlainData>(name: &CStr) -> Option<T> {
        let mut value: T = zeroed();
        let mut len = size_of::<T>();
        // SAFETY: `value` is a live `T` of `len` bytes; the kernel writes at most `len` bytes
        // and stores the written length in `len`.
        let rc = unsafe {
            libc::sysctlbyname(
                name.as_ptr(),
                (&raw mut value).cast(),
                &raw mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        (rc == 0 && len == size_of::<T>()).then_some(value)
    }

    // SAFETY: integers and `c_char` arrays.
    unsafe impl PlainData for libc::proc_bsdinfo {}

    /// `PROC_ALL_PIDS` (`<sys/proc_info.h>`).
    #[cfg(feature = "metal")]
    const PROC_ALL_PIDS: u32 = 1;

    fn errno() -> Option<i32> {
        std::io::Error::last_os_error().raw_os_error()
    }

    /// `kill(pid, 0)`: `ESRCH` means no such process, `EPERM` one we may not signal.
    pub(crate) fn process_exists(pid: u32) -> Option<bool> {
        if pid == 0 {
            // kernel_task; kill(0, 0) would signal our own process group instead.
            return Some(true);
        }
        let Ok(raw_pid) = libc::pid_t::try_from(pid) else {
            return Some(false);
        };
        // SAFETY: signal 0 only checks that the process exists and may be signalled.
        let rc = unsafe { libc::kill(raw_pid, 0) };
        if rc == 0 {
            return Some(true);
        }
        match errno() {
            Some(libc::ESRCH) => Some(false),
            Some(libc::EPERM) => Some(true),
            _ => None,
        }
    }

    /// The executable's file name (`proc_pidpath`), else the kernel's short name
    /// (`proc_name`, `p_comm`).
    #[cfg(feature = "metal")]
    pub(crate) fn process_name(pid: u32) -> Option<String> {
        let raw_pid = c_int::try_from(pid).ok()?;
        let mut buf = vec![0_u8; 4 * 1024];
        let size = u32::try_from(buf.len()).unwrap_or(0);
        // SAFETY: `buf` has `size` writable bytes; proc_pidpath writes at most that many.
        let len = unsafe { libc::proc_pidpath(raw_pid, buf.as_mut_ptr().cast(), size) };
        if let Some(path) = usize::try_from(len)
            .ok()
            .filter(|&l| l > 0)
            .and_then(|l| buf.get(..l))
        {
            let path = String::from_utf8_lossy(path);
            return Some(path_basename(&path).to_owned());
        }
        let mut short = [0_u8; 64];
        let size = u32::try_from(short.len()).unwrap_or(0);
        // SAFETY: `short` has `size` writable bytes; proc_name writes at most that many.
        let len = unsafe { libc::proc_name(raw_pid, short.as_mut_ptr().cast(), size) };
        let len = usize::try_from(len).ok().filter(|&l| l > 0)?;
        short
            .get(..len)
            .map(|b| String::from_utf8_lossy(b).trim_end_matches('\0').to_owned())
            .filter(|s| !s.is_empty())
    }

    /// The owner of `pid` (`proc_pidinfo(PROC_PIDTBSDINFO)`); `None` when refused.
    #[cfg(feature = "metal")]
    pub(crate) fn process_uid(pid: u32) -> Option<u32> {
        let raw_pid = c_int::try_from(pid).ok()?;
        let mut info: libc::proc_bsdinfo = zeroed();
        let size = c_int::try_from(size_of::<libc::proc_bsdinfo>()).ok()?;
        // SAFETY: `info` is a live proc_bsdinfo of `size` bytes.
        let len = unsafe {
            libc::proc_pidinfo(
                raw_pid,
                libc::PROC_PIDTBSDINFO,
                0,
                (&raw mut info).cast(),
                size,
            )
        };
        (len == size).then_some(info.pbi_uid)
    }

    /// Every pid (`proc_listpids(PROC_ALL_PIDS)`), or the errno that refused the listing.
    #[cfg(feature = "metal")]
    pub(crate) fn list_pids() -> std::result::Result<Vec<u32>, std::io::Error> {
        // SAFETY: a null buffer asks for the size needed, in bytes.
        let needed = unsafe { libc::proc_listpids(PROC_ALL_PIDS, 0, std::ptr::null_mut(), 0) };
        if needed <= 0 {
            return Err(std::io::Error::last_os_error());
        }
        // Room for processes started between the two calls.
        let slots = usize::try_from(needed).unwrap_or(0) / size_of::<c_int>() + 64;
        let mut pids = vec![0 as c_int; slots];
        let bytes = c_int::try_from(slots * size_of::<c_int>()).unwrap_or(c_int::MAX);
        // SAFETY: `pids` has `bytes` writable bytes; proc_listpids fills at most that many and
        // returns how many it filled.
        let filled =
            unsafe { libc::proc_listpids(PROC_ALL_PIDS, 0, pids.as_mut_ptr().cast(), bytes) };
        if filled <= 0 {
            return Err(std::io::Error::last_os_error());
        }
        let count = usize::try_from(filled).unwrap_or(0) / size_of::<c_int>();
        Ok(pids
            .iter()
            .take(count)
            .filter_map(|&p| u32::try_from(p).ok())
            .filter(|&p| p != 0)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executable_paths_are_cut_to_the_file_name() {
        assert_eq!(
            path_basename("/Applications/Python.app/Contents/MacOS/Python"),
            "Python"
        );
        assert_eq!(path_basename("ollama"), "ollama");
    }
}

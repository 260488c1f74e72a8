//! Windows process facts: does a pid run, what is its executable called.
//!
//! RAM (`ram/windows.rs`), the DXGI/PDH process rows and the sampler ask these of any pid.
//! A process is opened with `PROCESS_QUERY_LIMITED_INFORMATION`, which an ordinary user gets
//! for its own processes and most others, but not for protected ones; an open handle keeps
//! an exited process's object alive, so "exists" also asks `GetExitCodeProcess`. Names come
//! from `QueryFullProcessImageNameW` (the executable's file name), and what that refuses
//! from one Toolhelp32 snapshot per listing. PID 4 ("System", the kernel) is `[kernel]`.
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

#[cfg(windows)]
pub(crate) use sys::{
    OpenError, image_name, open_process, process_exists, size_u32, snapshot_names, still_running,
};

#[cfg(windows)]
mod sys {
    use std::collections::HashMap;
    use std::mem::size_of;

    use windows_sys::Win32::Foundation::{
        CloseHandle, ERROR_ACCESS_DENIED, ERROR_INVALID_PARAMETER, HANDLE, INVALID_HANDLE_VALUE,
        STILL_ACTIVE,
    };
    use windows_sys::Win32::System::Diagnostics::ToolHelp::{
        CreateToolhelp32Snapshot, PROCESSENTRY32W, Process32FirstW, Process32NextW,
        TH32CS_SNAPPROCESS,
    };
    use windows_sys::Win32::System::Threading::{
        GetExitCodeProcess, OpenProcess, PROCESS_NAME_WIN32, PROCESS_QUERY_LIMITED_INFORMATION,
        QueryFullProcessImageNameW,
    };

    use super::{ImageName, wide_until_nul};

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
    pub(crate) enum OpenError {
        Gone,
        Denied(std::io::Error),
        Other(std::io::Error),
    }

    pub(crate) fn open_process(pid: u32) -> std::result::Result<OwnedHandle, OpenError> {
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
    pub(crate) fn still_running(handle: &OwnedHandle) -> Option<bool> {
        let mut code = 0_u32;
        // SAFETY: `handle` is open with PROCESS_QUERY_LIMITED_INFORMATION, which
        // GetExitCodeProcess needs; `code` is a live u32.
        let ok = unsafe { GetExitCodeProcess(handle.raw(), &raw mut code) };
        (ok != 0).then(|| i32::try_from(code).ok() == Some(STILL_ACTIVE))
    }

    /// `size_of::<T>()` as the `u32` Win32 structs carry in their size field.
    pub(crate) fn size_u32<T>() -> u32 {
        u32::try_from(size_of::<T>()).unwrap_or(u32::MAX)
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
}

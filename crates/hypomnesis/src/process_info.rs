//! Who runs a process and with what command line — the columns that let a person recognise
//! a GPU process (`hmn ps`), which the driver does not provide.
//!
//! Linux: the real uid from `/proc/<pid>/status` (`Uid:` line, first field), resolved to a
//! user name through the system's user database (`getpwuid_r`, so LDAP/NSS users resolve
//! too), and the command line from `/proc/<pid>/cmdline` (NUL-separated arguments).

/// The real uid from a `status` file's text: the first number of its `Uid:` line.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn parse_status_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
}

/// A `cmdline` file's arguments joined with spaces; `None` when empty (kernel threads,
/// zombies).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn parse_cmdline(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let joined = text
        .split('\0')
        .filter(|arg| !arg.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!joined.is_empty()).then_some(joined)
}

/// The path a `/proc/<pid>/cgroup` file places the process at: the unified (v2) hierarchy's
/// `0::` line, else the v1 `memory` controller's line, else the first line's. The path names
/// the container, pod or job (`/kubepods/…/pod<uid>/<container>`, `/slurm/…/job_42/…`).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn parse_cgroup_path(text: &str) -> Option<String> {
    let entries: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            Some((parts.next()?, parts.next()?))
        })
        .collect();
    let pick = entries
        .iter()
        .find(|(controllers, _)| controllers.is_empty())
        .or_else(|| {
            entries
                .iter()
                .find(|(controllers, _)| controllers.split(',').any(|c| c == "memory"))
        })
        .or_else(|| entries.first())?;
    let path = pick.1.trim();
    (!path.is_empty()).then(|| path.to_owned())
}

#[cfg(target_os = "linux")]
pub(crate) mod linux {
    use std::collections::HashMap;
    use std::ffi::CStr;
    use std::path::Path;
    use std::sync::{Mutex, OnceLock};
    use std::time::{Duration, Instant};

    /// The user running `pid`: a name when the user database knows the uid, else the uid
    /// as a number. `None` when the process cannot be read.
    pub(crate) fn process_user(proc_root: &Path, pid: u32) -> Option<String> {
        let path = proc_root.join(pid.to_string()).join("status");
        // Lossy: a name that is not UTF-8 must not cost the process its user.
        let status = crate::os::linux::read_proc_text(&path).ok()?;
        let uid = super::parse_status_uid(&status)?;
        Some(cached_user_name(uid).unwrap_or_else(|| uid.to_string()))
    }

    /// How long a looked-up user name is reused: a listing names many processes of few
    /// users, and each `getpwuid_r` reads the user database (`/etc/passwd`, NSS) afresh.
    const USER_NAME_TTL: Duration = Duration::from_secs(60);

    /// [`user_name`], remembered per uid for [`USER_NAME_TTL`].
    fn cached_user_name(uid: u32) -> Option<String> {
        type Names = HashMap<u32, (Instant, Option<String>)>;
        static NAMES: OnceLock<Mutex<Names>> = OnceLock::new();
        let names = NAMES.get_or_init(|| Mutex::new(HashMap::new()));
        if let Some((at, name)) = names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&uid)
            && at.elapsed() < USER_NAME_TTL
        {
            return name.clone();
        }
        // Looked up without the lock held: the user database may be slow (LDAP).
        let name = user_name(uid);
        names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(uid, (Instant::now(), name.clone()));
        name
    }

    /// The command line of `pid`, arguments joined by spaces.
    pub(crate) fn process_command(proc_root: &Path, pid: u32) -> Option<String> {
        use crate::os::linux::{Ends, read_proc_file};
        let path = proc_root.join(pid.to_string()).join("cmdline");
        let raw = read_proc_file(&path, Ends::AtEmptyRead).ok()?;
        super::parse_cmdline(&raw)
    }

    /// The cgroup path of `pid` (see [`super::parse_cgroup_path`]).
    pub(crate) fn process_cgroup(proc_root: &Path, pid: u32) -> Option<String> {
        let path = proc_root.join(pid.to_string()).join("cgroup");
        let text = crate::os::linux::read_proc_text(&path).ok()?;
        super::parse_cgroup_path(&text)
    }

    /// `getpwuid_r`, retried with a larger buffer when the entry does not fit.
    fn user_name(uid: u32) -> Option<String> {
        let mut buffer = vec![0_u8; 1024];
        loop {
            // SAFETY: `passwd` is plain old data; an all-zero value is a valid (empty) one
            // that getpwuid_r overwrites.
            let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
            let mut result: *mut libc::passwd = std::ptr::null_mut();
            // SAFETY: every pointer refers to live, writable memory of the stated size for the
            // duration of the call; getpwuid_r is the re-entrant form and keeps no pointers.
            let code = unsafe {
                libc::getpwuid_r(
                    uid,
                    &raw mut entry,
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    &raw mut result,
                )
            };
            if code == libc::ERANGE && buffer.len() < (1 << 20) {
                buffer.resize(buffer.len() * 4, 0);
                continue;
            }
            if code != 0 || result.is_null() || entry.pw_name.is_null() {
                return None;
            }
            // SAFETY: on success `pw_name` points to a NUL-terminated string inside `buffer`,
            // which is still alive here.
            let name = unsafe { CStr::from_ptr(entry.pw_name) };
            return Some(name.to_string_lossy().into_owned());
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_calling_process_has_a_user_and_a_command_line() {
            let proc_root = Path::new("/proc");
            let pid = std::process::id();
            let user = process_user(proc_root, pid).unwrap();
            // SAFETY: getuid has no preconditions.
            let uid = unsafe { libc::getuid() };
            assert!(user == uid.to_string() || user_name(uid).as_deref() == Some(user.as_str()));
            assert!(process_command(proc_root, pid).is_some());
        }

        #[test]
        fn uid_zero_is_root() {
            assert_eq!(user_name(0).as_deref(), Some("root"));
            // Remembered: the second lookup answers the same.
            assert_eq!(cached_user_name(0).as_deref(), Some("root"));
            assert_eq!(cached_user_name(0).as_deref(), Some("root"));
        }

        #[test]
        fn a_missing_process_has_no_user() {
            assert_eq!(process_user(Path::new("/proc"), u32::MAX), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup_path_is_the_unified_line_then_the_memory_controller_then_the_first() {
        let v2 = "0::/kubepods.slice/kubepods-pod1234.slice/cri-containerd-ab.scope\n";
        assert_eq!(
            parse_cgroup_path(v2).as_deref(),
            Some("/kubepods.slice/kubepods-pod1234.slice/cri-containerd-ab.scope")
        );
        let hybrid =
            "12:cpu,cpuacct:/slurm/job_7\n4:memory:/slurm/uid_1000/job_42\n0::/user.slice\n";
        assert_eq!(parse_cgroup_path(hybrid).as_deref(), Some("/user.slice"));
        let v1 = "12:cpu,cpuacct:/a\n4:memory:/slurm/uid_1000/job_42\n";
        assert_eq!(
            parse_cgroup_path(v1).as_deref(),
            Some("/slurm/uid_1000/job_42")
        );
        assert_eq!(
            parse_cgroup_path("3:pids:/docker/abc\n").as_deref(),
            Some("/docker/abc")
        );
        assert_eq!(parse_cgroup_path(""), None);
        assert_eq!(parse_cgroup_path("garbage without colons"), None);
    }

    #[test]
    fn real_uid_is_the_first_field_of_the_uid_line() {
        let status = "Name:\tpython3\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(parse_status_uid(status), Some(1000));
        assert_eq!(parse_status_uid("Name:\tx\n"), None);
        assert_eq!(parse_status_uid("Uid:\tabc\n"), None);
    }

    #[test]
    fn cmdline_arguments_are_joined_with_spaces() {
        assert_eq!(
            parse_cmdline(b"python3\0train.py\0--epochs\0three\0").as_deref(),
            Some("python3 train.py --epochs three")
        );
        assert_eq!(parse_cmdline(b""), None);
        assert_eq!(parse_cmdline(b"\0"), None);
    }
}

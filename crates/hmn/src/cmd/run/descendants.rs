//! Descendants of CMD that outlive it: a daemon it started, a job it left in the background.
//!
//! Such a process loses its parent when CMD ends, and the kernel gives it a new one: on Linux
//! hmn asks to be that parent (`PR_SET_CHILD_SUBREAPER`, as container inits and `systemd` do),
//! so the orphans of CMD's tree become hmn's children. When CMD has ended, hmn's children
//! other than the GPU helper it runs itself (`nvidia-smi`, told by its process name) are
//! exactly the descendants left. While CMD runs, orphans that end are reaped (their kernel
//! peak joins the largest-process figure), so none lingers as a zombie. Elsewhere orphans go
//! to the system and cannot be found from here; the report says so.
// Only Linux finds descendants; the parsers are tested everywhere.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

/// What is left of CMD's tree.
#[derive(Debug, Default, Clone)]
pub struct Left {
    /// Descendants still running when CMD ended (with `follow`, every one seen since).
    pub pids: Vec<u32>,
    /// The largest kernel peak (`ru_maxrss`) of the orphans reaped, bytes.
    pub max_rss_bytes: Option<u64>,
}

impl Left {
    fn reaped(&mut self, bytes: Option<u64>) {
        if let Some(b) = bytes {
            self.max_rss_bytes = Some(self.max_rss_bytes.map_or(b, |m| m.max(b)));
        }
    }
}

pub use imp::{Reaper, adopt_orphans, follow};

/// The process name (`comm`, 15 bytes at most), state and parent pid of a
/// `/proc/PID/stat` line. The name may hold spaces and parentheses: it ends at the last
/// `)`.
pub fn parse_stat(text: &str) -> Option<(&str, char, u32)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?;
    let mut rest = text.get(close + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((comm, state, ppid))
}

/// The name of hmn's own GPU helper as the kernel keeps it (`comm`: the executable's file
/// name, cut to 15 bytes).
pub fn helper_comm(nvidia_smi: Option<&std::ffi::OsStr>) -> String {
    let name = nvidia_smi
        .and_then(|p| std::path::Path::new(p).file_name())
        .map_or_else(
            || "nvidia-smi".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

#[cfg(target_os = "linux")]
mod imp {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread::JoinHandle;
    use std::time::Duration;

    use super::{Left, helper_comm, parse_stat};

    /// Makes hmn the parent of orphans in its subtree.
    pub fn adopt_orphans() -> std::io::Result<()> {
        // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes one integer argument.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// hmn's children from each thread's `children` list; `None` where the kernel has
    /// none (built without `CONFIG_PROC_CHILDREN`).
    fn listed_children() -> Option<Vec<u32>> {
        let mut listed = false;
        let mut pids = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
                listed = true;
                pids.extend(
                    text.split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
        listed.then_some(pids)
    }

    /// hmn's children found by reading every process's parent (the slow way).
    fn scanned_children() -> Vec<u32> {
        let own = std::process::id();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|text| parse_stat(&text).map(|(_, _, ppid)| ppid == own))
                    .unwrap_or(false)
            })
            .collect()
    }

    /// hmn's children other than `except` and the GPU helper: (pid, is a zombie).
    fn children(except: u32) -> Vec<(u32, bool)> {
        let helper = helper_comm(std::env::var_os("HYPOMNESIS_NVIDIA_SMI").as_deref());
        let mut pids = listed_children().unwrap_or_else(scanned_children);
        pids.sort_unstable();
        pids.dedup();
        pids.into_iter()
            .filter(|&pid| pid != except)
            .filter_map(|pid| {
                let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                let (comm, state, _) = parse_stat(&text)?;
                (comm != helper).then_some((pid, state == 'Z'))
            })
            .collect()
    }

    /// Reaps `pid`, a zombie child; its `ru_maxrss` in bytes.
    fn reap(pid: u32) -> Option<u64> {
        let pid = libc::pid_t::try_from(pid).ok()?;
        let mut status: libc::c_int = 0;
        // SAFETY: a zeroed rusage is a valid buffer for wait4 to fill.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `status` and `usage` are valid for writing; `pid` is our own child.
        let rc = unsafe { libc::wait4(pid, &raw mut status, libc::WNOHANG, &raw mut usage) };
        (rc == pid)
            .then(|| u64::try_from(usage.ru_maxrss).ok().map(|kib| kib * 1024))
            .flatten()
    }

    /// Reaps orphans that end while CMD runs, and lists those left when it has ended.
    #[derive(Debug)]
    pub struct Reaper {
        command: u32,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<Left>>,
    }

    impl Reaper {
        pub fn start(command: u32) -> Self {
            let stop = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&stop);
            let thread = std::thread::Builder::new()
                .name("hmn-reaper".into())
                .spawn(move || {
                    let mut left = Left::default();
                    while !flag.load(Ordering::SeqCst) {
                        for (pid, zombie) in children(command) {
                            if zombie {
                                left.reaped(reap(pid));
                            }
                        }
                        std::thread::park_timeout(Duration::from_millis(250));
                    }
                    left
                })
                .ok();
            Self {
                command,
                stop,
                thread,
            }
        }

        /// Once CMD has been reaped: the descendants still running.
        pub fn stop(mut self) -> Left {
            self.stop.store(true, Ordering::SeqCst);
            let mut left = self
                .thread
                .take()
                .and_then(|t| {
                    t.thread().unpark();
                    t.join().ok()
                })
                .unwrap_or_default();
            for (pid, zombie) in children(self.command) {
                if zombie {
                    left.reaped(reap(pid));
                } else {
                    left.pids.push(pid);
                }
            }
            left
        }
    }

    /// Waits, looking every `interval`, until every descendant left has ended (orphans of
    /// theirs included), or a stop signal (Ctrl-C, SIGTERM) arrives.
    pub fn follow(mut left: Left, interval: Duration) -> Left {
        let stops = crate::signals::stops();
        loop {
            let mut alive = false;
            for (pid, zombie) in children(0) {
                if zombie {
                    left.reaped(reap(pid));
                } else {
                    alive = true;
                    if !left.pids.contains(&pid) {
                        left.pids.push(pid);
                    }
                }
            }
            if !alive || crate::signals::stops() != stops {
                return left;
            }
            std::thread::sleep(interval.max(Duration::from_millis(10)));
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::time::Duration;

    use super::Left;

    pub fn adopt_orphans() -> std::io::Result<()> {
        Err(std::io::Error::other("not on this platform"))
    }

    #[derive(Debug)]
    pub struct Reaper;

    impl Reaper {
        pub fn start(_command: u32) -> Self {
            Self
        }

        pub fn stop(self) -> Left {
            Left::default()
        }
    }

    pub fn follow(left: Left, _interval: Duration) -> Left {
        left
    }
}

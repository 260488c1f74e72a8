//! PID namespaces: which number a person should see for a GPU process.
//!
//! NVIDIA's driver does not know PID namespaces: NVML reports every process by its PID in the
//! root (host) namespace, also to a caller inside a container (nvidia-docker#1483,
//! nvtop#149). The DRM scan reads `/proc` directories, numbered in the namespace of that
//! procfs mount. A person inside a container needs the container's PIDs.
//!
//! The kernel's bridge is `NSpid:` in `/proc/<pid>/status` (Linux ≥ 4.1): the process's PID in
//! every namespace from the procfs mount's own down to the process's innermost one. So:
//!
//! - `<proc>/self/status` tells how deep the caller sits below the procfs's namespace:
//!   `NSpid` with `d + 1` entries means `d` levels (a host `/proc` mounted into a container
//!   and named with `HYPOMNESIS_PROC_ROOT` gives `d = 1`).
//! - A process's PID in the caller's namespace is entry `d` of its `NSpid`; a process with
//!   fewer entries lives outside the caller's namespace (on the host, say) and has no PID
//!   there — it is shown with the procfs's number and counted.
//! - `<proc>/self/ns/pid` names the caller's namespace; the root namespace is always inode
//!   `0xEFFFFFFC` (`PROC_PID_INIT_INO`). A caller in a child namespace whose procfs is its
//!   own (`d = 0`, the usual container) cannot see host PIDs at all: NVML's PIDs cannot be
//!   mapped, are shown as reported and counted, and never matched against unrelated local
//!   processes that happen to have the same number.
//!
//! A procfs from an intermediate namespace (neither the root nor the caller's) is not told
//! apart from the root's; nested containers that mount a parent's `/proc` are rare.

/// Inode number of the root PID namespace (`PROC_PID_INIT_INO` in `include/linux/proc_ns.h`).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const INIT_PID_NS_INODE: u64 = 0xEFFF_FFFC;

/// The `NSpid:` entries of a `status` text, outermost first. `None` when there is no
/// readable `NSpid` line (kernels before 4.1).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn parse_nspid(status: &str) -> Option<Vec<u32>> {
    let rest = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    let pids: Option<Vec<u32>> = rest.split_whitespace().map(|p| p.parse().ok()).collect();
    pids.filter(|p| !p.is_empty())
}

/// The inode of a namespace link target (`pid:[4026531836]`).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn parse_ns_link(target: &str) -> Option<u64> {
    target
        .strip_prefix("pid:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Where a process stands relative to the caller's PID namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) enum Placement {
    /// Visible: `local` is its PID in the caller's namespace, `procfs` its directory under
    /// the procfs root.
    Local {
        /// PID in the caller's namespace.
        local: u32,
        /// PID in the procfs's namespace (the directory name).
        procfs: u32,
    },
    /// In the procfs but outside the caller's namespace (a host process seen through a host
    /// `/proc`): described from `procfs`, shown with that number, counted.
    Outside {
        /// PID in the procfs's namespace.
        procfs: u32,
    },
    /// Not visible from here: shown with the number the driver gave, not described, counted.
    Hidden,
}

#[cfg(target_os = "linux")]
pub(crate) use linux::PidView;

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};

    use super::{INIT_PID_NS_INODE, Placement, parse_ns_link, parse_nspid};

    /// The caller's view of PIDs through one procfs, for one call (it caches `NSpid` reads).
    #[derive(Debug)]
    pub(crate) struct PidView {
        proc_root: PathBuf,
        /// Levels between the procfs's namespace and the caller's.
        depth: usize,
        /// Whether the procfs's numbers are the root namespace's (NVML's).
        procfs_is_root: bool,
        nspid: HashMap<u32, Option<Vec<u32>>>,
    }

    impl PidView {
        /// Reads `<proc_root>/self/status` and `<proc_root>/self/ns/pid`. When either is
        /// missing (a fixture tree, a kernel before 4.1) the procfs is taken to be the root
        /// namespace's and the caller to live in it: PIDs pass through unchanged.
        pub(crate) fn detect(proc_root: &Path) -> Self {
            let self_dir = proc_root.join("self");
            let depth = crate::os::linux::read_proc_text(&self_dir.join("status"))
                .ok()
                .and_then(|s| parse_nspid(&s))
                .map_or(0, |p| p.len().saturating_sub(1));
            let own_ns = std::fs::read_link(self_dir.join("ns/pid"))
                .ok()
                .and_then(|t| t.to_str().and_then(parse_ns_link));
            let procfs_is_root = match own_ns {
                Some(INIT_PID_NS_INODE) | None => true,
                // In a child namespace: the procfs is the root's only when it is an
                // ancestor's (depth ≥ 1); with depth 0 it is the caller's own.
                Some(_) => depth >= 1,
            };
            Self {
                proc_root: proc_root.to_owned(),
                depth,
                procfs_is_root,
                nspid: HashMap::new(),
            }
        }

        /// The calling process's PID in the root namespace (NVML's numbering): the outermost
        /// `NSpid` entry of `<proc>/self` when this procfs is the root's; `None` when the
        /// caller's procfs cannot see the root namespace (an ordinary container).
        #[cfg_attr(not(feature = "nvml"), allow(dead_code))] // NVML's own-process figure
        pub(crate) fn own_host_pid(&self, own_pid: u32) -> Option<u32> {
            if !self.procfs_is_root {
                return None;
            }
            if self.depth == 0 {
                return Some(own_pid);
            }
            crate::os::linux::read_proc_text(&self.proc_root.join("self/status"))
                .ok()
                .and_then(|s| parse_nspid(&s))
                .and_then(|entries| entries.first().copied())
        }

        /// Whether NVML's host PIDs can be looked up in this procfs at all.
        #[cfg(test)]
        pub(crate) fn sees_host_pids(&self) -> bool {
            self.procfs_is_root
        }

        /// A PID in the root namespace (NVML's numbering).
        pub(crate) fn host_pid(&mut self, pid: u32) -> Placement {
            if !self.procfs_is_root {
                return Placement::Hidden;
            }
            self.procfs_pid(pid)
        }

        /// A PID in the procfs's numbering (a directory found by a scan).
        pub(crate) fn procfs_pid(&mut self, pid: u32) -> Placement {
            if self.depth == 0 {
                return Placement::Local {
                    local: pid,
                    procfs: pid,
                };
            }
            let depth = self.depth;
            let proc_root = &self.proc_root;
            let nspid = self.nspid.entry(pid).or_insert_with(|| {
                crate::os::linux::read_proc_text(&proc_root.join(pid.to_string()).join("status"))
                    .ok()
                    .and_then(|s| parse_nspid(&s))
            });
            match nspid {
                None => Placement::Hidden,
                Some(entries) => match entries.get(depth) {
                    Some(&local) => Placement::Local { local, procfs: pid },
                    None => Placement::Outside { procfs: pid },
                },
            }
        }
    }
}

/// Exercises the parsers on arbitrary text (fuzz targets and property tests).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn exercise_all(text: &str) {
    let _ = parse_nspid(text);
    let _ = parse_ns_link(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nspid_lists_outermost_first() {
        let status = "Name:\tpython3\nTgid:\t81234\nNSpid:\t81234\t7\nNStgid:\t81234\t7\n";
        assert_eq!(parse_nspid(status), Some(vec![81234, 7]));
        assert_eq!(parse_nspid("NSpid:\t42\n"), Some(vec![42]));
        assert_eq!(parse_nspid("Name:\tx\n"), None);
        assert_eq!(parse_nspid("NSpid:\t42\tx\n"), None);
        assert_eq!(parse_nspid("NSpid:\n"), None);
    }

    #[test]
    fn namespace_links_name_their_inode() {
        assert_eq!(parse_ns_link("pid:[4026531836]"), Some(INIT_PID_NS_INODE));
        assert_eq!(parse_ns_link("net:[4026531840]"), None);
        assert_eq!(parse_ns_link("pid:[x]"), None);
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(text in ".{0,200}") {
            exercise_all(&text);
        }
    }

    #[cfg(target_os = "linux")]
    mod view {
        use super::super::*;
        use std::path::Path;

        fn process(root: &Path, pid: u32, nspid: &[u32]) {
            let dir = root.join(pid.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            let entries: Vec<String> = nspid.iter().map(u32::to_string).collect();
            std::fs::write(
                dir.join("status"),
                format!("Name:\tx\nNSpid:\t{}\n", entries.join("\t")),
            )
            .unwrap();
        }

        fn caller(root: &Path, pid: u32, ns_inode: u64) {
            std::fs::create_dir_all(root.join(pid.to_string()).join("ns")).unwrap();
            std::os::unix::fs::symlink(
                format!("pid:[{ns_inode}]"),
                root.join(pid.to_string()).join("ns/pid"),
            )
            .unwrap();
            std::os::unix::fs::symlink(pid.to_string(), root.join("self")).unwrap();
        }

        #[test]
        fn on_the_host_pids_pass_through() {
            let root = tempfile::tempdir().unwrap();
            process(root.path(), 500, &[500]);
            caller(root.path(), 500, INIT_PID_NS_INODE);
            let mut view = PidView::detect(root.path());
            assert!(view.sees_host_pids());
            assert_eq!(
                view.host_pid(1234),
                Placement::Local {
                    local: 1234,
                    procfs: 1234
                }
            );
        }

        #[test]
        fn a_host_proc_in_a_container_maps_host_pids_to_the_containers() {
            let root = tempfile::tempdir().unwrap();
            process(root.path(), 9000, &[9000, 1]); // the caller: pid 1 in its container
            caller(root.path(), 9000, 4_026_532_999);
            process(root.path(), 9100, &[9100, 35]); // a container process
            process(root.path(), 700, &[700]); // a host process
            let mut view = PidView::detect(root.path());
            assert!(view.sees_host_pids());
            assert_eq!(
                view.host_pid(9100),
                Placement::Local {
                    local: 35,
                    procfs: 9100
                }
            );
            assert_eq!(view.host_pid(700), Placement::Outside { procfs: 700 });
            assert_eq!(view.host_pid(4242), Placement::Hidden);
        }

        #[test]
        fn a_process_whose_name_is_not_utf8_is_still_mapped() {
            let root = tempfile::tempdir().unwrap();
            process(root.path(), 9000, &[9000, 1]);
            caller(root.path(), 9000, 4_026_532_999);
            let dir = root.path().join("9100");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("status"), b"Name:\tgpu\xff\nNSpid:\t9100\t35\n").unwrap();
            let mut view = PidView::detect(root.path());
            assert_eq!(
                view.host_pid(9100),
                Placement::Local {
                    local: 35,
                    procfs: 9100
                }
            );
        }

        #[test]
        fn a_containers_own_proc_hides_host_pids_even_when_numbers_collide() {
            let root = tempfile::tempdir().unwrap();
            process(root.path(), 1, &[1]);
            process(root.path(), 35, &[35]);
            caller(root.path(), 35, 4_026_532_999);
            let mut view = PidView::detect(root.path());
            assert!(!view.sees_host_pids());
            assert_eq!(view.host_pid(1), Placement::Hidden);
            assert_eq!(
                view.procfs_pid(35),
                Placement::Local {
                    local: 35,
                    procfs: 35
                }
            );
        }
    }
}

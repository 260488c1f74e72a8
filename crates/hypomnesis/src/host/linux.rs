//! Readers for host memory: `/proc/meminfo`, `/proc/pressure/memory` and the memory cgroup of
//! the calling process.
//!
//! Only `meminfo` is required. PSI and the cgroup are extras: when their files are missing,
//! unreadable or malformed, the figure is `None` rather than the whole answer an error.
//!
//! Finding the cgroup (see [`CgroupMemory`] for what the caller is told):
//! 1. `/proc/self/cgroup` gives the v2 path (`0::<path>`) and the v1 memory path
//!    (`N:memory:<path>`).
//! 2. cgroup v2 is used when a unified mount (`<sys>/fs/cgroup`, or `<sys>/fs/cgroup/unified`
//!    on a hybrid system) lists `memory` in `cgroup.controllers`; otherwise v1 under
//!    `<sys>/fs/cgroup/memory` (or `<sys>/fs/cgroup/<controllers>` when memory shares its
//!    hierarchy, e.g. `cpu,memory`).
//! 3. The cgroup directory is `<mount><path>`. When it does not exist (a cgroup namespace or a
//!    container bind-mount shows the process's own cgroup as the mount's root), or the path
//!    climbs out with `..`, the mount root is used instead.
//! 4. The root cgroup is reported as `None`: in v2 it has no `memory.max`; in v1 its
//!    directory is the only one with `release_agent`, so a container's mount root (which has
//!    no `release_agent`) still counts as a real, limitable cgroup.
//! 5. The limit is the smallest finite limit from the cgroup up to the mount root: a parent's
//!    limit bounds all its children.

use std::path::{Component, Path, PathBuf};

use super::parse::{self, CgroupMembership};
use super::{CgroupMemory, CgroupVersion, HostMemory};
use crate::error::{HypomnesisError, Result};

/// Reads `meminfo`, PSI and the cgroup.
pub(crate) fn read_host_memory(proc_root: &Path, sys_root: &Path) -> Result<HostMemory> {
    let meminfo_path = proc_root.join("meminfo");
    let text = std::fs::read_to_string(&meminfo_path)
        .map_err(|e| HypomnesisError::io(&meminfo_path, &e))?;
    let meminfo = parse::parse_meminfo(&text)
        .map_err(|m| HypomnesisError::parse("meminfo", &meminfo_path, m.into_detail()))?;

    // Missing before 4.20; EOPNOTSUPP when booted with psi=0.
    let pressure = std::fs::read_to_string(proc_root.join("pressure/memory"))
        .ok()
        .and_then(|text| parse::parse_pressure(&text).ok());

    let cgroup = crate::os::linux::read_proc_text(&proc_root.join("self/cgroup"))
        .ok()
        .and_then(|text| parse::parse_proc_cgroup(&text).ok())
        .and_then(|membership| read_cgroup(sys_root, &membership));

    Ok(HostMemory {
        total_bytes: meminfo.total,
        available_bytes: meminfo.available,
        swap_total_bytes: meminfo.swap_total,
        swap_free_bytes: meminfo.swap_free,
        pressure,
        cgroup,
        memory_load_percent: None,
        commit_limit_bytes: None,
        commit_available_bytes: None,
        pressure_level: None,
        page_states: None,
    })
}

/// The files of one cgroup version.
struct Files {
    version: CgroupVersion,
    limit: &'static str,
    usage: &'static str,
    peak: &'static str,
}

const V2: Files = Files {
    version: CgroupVersion::V2,
    limit: "memory.max",
    usage: "memory.current",
    peak: "memory.peak",
};

const V1: Files = Files {
    version: CgroupVersion::V1,
    limit: "memory.limit_in_bytes",
    usage: "memory.usage_in_bytes",
    peak: "memory.max_usage_in_bytes",
};

/// The memory cgroup of a process placed by `membership`, or `None` at the root or without a
/// memory controller.
fn read_cgroup(sys_root: &Path, membership: &CgroupMembership) -> Option<CgroupMemory> {
    let hierarchies = sys_root.join("fs/cgroup");
    if let Some(path) = &membership.v2_path {
        let unified = [hierarchies.clone(), hierarchies.join("unified")]
            .into_iter()
            .find(|mount| {
                std::fs::read_to_string(mount.join("cgroup.controllers"))
                    .is_ok_and(|text| parse::lists_memory_controller(&text))
            });
        if let Some(mount) = unified {
            let dir = cgroup_dir(&mount, path);
            // The root cgroup has no memory.max.
            if !dir.join(V2.limit).is_file() {
                return None;
            }
            return Some(read_figures(&V2, &mount, &dir, path));
        }
    }

    let v1 = membership.v1_memory.as_ref()?;
    let mount = [
        hierarchies.join("memory"),
        hierarchies.join(&v1.controllers),
    ]
    .into_iter()
    .find(|mount| mount.join(V1.limit).is_file())?;
    let dir = cgroup_dir(&mount, &v1.path);
    if !dir.join(V1.limit).is_file() || dir.join("release_agent").exists() {
        return None;
    }
    Some(read_figures(&V1, &mount, &dir, &v1.path))
}

/// `<mount><path>` when it exists and stays inside `mount`; else `mount` itself (see the
/// module docs, step 3).
fn cgroup_dir(mount: &Path, path: &str) -> PathBuf {
    let mut dir = mount.to_path_buf();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(name) => dir.push(name),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return mount.to_path_buf(),
        }
    }
    if dir.is_dir() {
        dir
    } else {
        mount.to_path_buf()
    }
}

/// Limit (tightest up to `mount`), usage and peak of the cgroup at `dir`.
fn read_figures(files: &Files, mount: &Path, dir: &Path, path: &str) -> CgroupMemory {
    let limit_bytes = dir
        .ancestors()
        .take_while(|ancestor| ancestor.starts_with(mount))
        .filter_map(|ancestor| read_value(&ancestor.join(files.limit), parse::parse_cgroup_limit))
        .flatten()
        .min();
    CgroupMemory {
        version: files.version,
        path: path.to_owned(),
        limit_bytes,
        usage_bytes: read_value(&dir.join(files.usage), parse::parse_cgroup_bytes),
        peak_bytes: read_value(&dir.join(files.peak), parse::parse_cgroup_bytes),
    }
}

/// One cgroup file parsed, or `None` when it is missing, unreadable or malformed.
fn read_value<T>(
    path: &Path,
    parse: fn(&str) -> std::result::Result<T, crate::ram::parse::Malformed>,
) -> Option<T> {
    let text = std::fs::read_to_string(path).ok()?;
    parse(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cgroup_path_is_joined_under_the_mount_not_replacing_it() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("a/b")).unwrap();
        assert_eq!(cgroup_dir(tmp.path(), "/a/b"), tmp.path().join("a/b"));
    }

    #[test]
    fn a_missing_cgroup_directory_falls_back_to_the_mount_root() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(cgroup_dir(tmp.path(), "/docker/0123abcd"), tmp.path());
    }

    #[test]
    fn a_path_climbing_out_of_the_namespace_falls_back_to_the_mount_root() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("a")).unwrap();
        assert_eq!(
            cgroup_dir(&tmp.path().join("a"), "/../a"),
            tmp.path().join("a")
        );
    }
}

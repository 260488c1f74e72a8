//! Which pod and container a process runs in, from its cgroup path.
//!
//! The kubelet places every pod in a cgroup named after the pod's UID, under a QoS class
//! (guaranteed pods directly under `kubepods`, burstable and best-effort ones in a sub-group),
//! and the container runtime places each container in a cgroup of its own below it. The
//! spelling depends on the kubelet's cgroup driver:
//!
//! - systemd: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/
//!   cri-containerd-<id>.scope`, the UID's dashes written as underscores (systemd reserves
//!   `-` for nesting), the container scope named by the runtime (`cri-containerd-`, `crio-`,
//!   `docker-` for cri-dockerd); a guaranteed pod is `kubepods-pod<uid>.slice`;
//! - cgroupfs: `/kubepods/burstable/pod<uid>/<id>`, a guaranteed pod `/kubepods/pod<uid>/<id>`.
//!
//! The same names appear in the unified (v2) hierarchy and in every v1 controller. A kubelet
//! with another cgroup root (kind: `/kubelet.slice/kubelet-kubepods.slice/…`) only adds
//! components in front; a reader in its own cgroup namespace sees paths relative to its own
//! cgroup, starting with `..`. The parser looks for the pod component anywhere in the path and
//! accepts a UID only in its canonical 8-4-4-4-12 hexadecimal shape, so a path that merely
//! mentions "pod" is not taken for one.

/// Where a process sits in Kubernetes, as its cgroup path says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCgroup {
    /// The pod's UID, with dashes (`3f1e…-…`), as the API server spells it.
    pub pod_uid: String,
    /// The container's id as Kubernetes reports it in a pod's status
    /// (`containerd://<id>`, `cri-o://<id>`, `docker://<id>`), when the path names the runtime
    /// (systemd driver). `None` under the cgroupfs driver, whose path holds the bare id and
    /// not the runtime, and for a process in the pod's own cgroup (outside any container).
    pub container_id: Option<String>,
}

/// The pod a cgroup path (as `/proc/<pid>/cgroup` gives it) places a process in; `None` for a
/// path outside any pod (a host process, a plain Docker container, a Slurm job).
pub fn parse_pod_cgroup(path: &str) -> Option<PodCgroup> {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let (at, pod_uid) = components
        .iter()
        .enumerate()
        .find_map(|(i, c)| Some((i, pod_uid_of(c, &components[..i])?)))?;
    let container_id = components.get(at + 1).and_then(|c| runtime_container_id(c));
    Some(PodCgroup {
        pod_uid,
        container_id,
    })
}

/// The UID a pod component carries: systemd's `kubepods[-<qos>]-pod<uid_with_underscores>.slice`
/// (its prefix names the pod's ancestry, so the component stands on its own), or cgroupfs's
/// `pod<uid>`, accepted only below a `kubepods` component or as the first component a reader
/// in its own cgroup namespace sees (after `..`, or after a QoS class).
fn pod_uid_of(component: &str, ancestors: &[&str]) -> Option<String> {
    if let Some(slice) = component.strip_suffix(".slice") {
        let (prefix, uid) = slice.rsplit_once("-pod")?;
        if !(prefix == "kubepods" || prefix.ends_with("-kubepods") || prefix.contains("kubepods-"))
        {
            return None;
        }
        return canonical_uid(&uid.replace('_', "-"));
    }
    let uid = component.strip_prefix("pod")?;
    let under_kubepods = ancestors.contains(&"kubepods")
        || ancestors
            .iter()
            .all(|a| matches!(*a, ".." | "burstable" | "besteffort"));
    if !under_kubepods {
        return None;
    }
    canonical_uid(uid)
}

/// `uid` when it is a UUID in canonical form (lower- or upper-case hex, 8-4-4-4-12).
fn canonical_uid(uid: &str) -> Option<String> {
    let groups: Vec<&str> = uid.split('-').collect();
    let shaped = groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()));
    shaped.then(|| uid.to_owned())
}

/// A container scope named by its runtime, as `runtime://<id>` (the form of a pod status's
/// `containerID`). CRI-O's `crio-conmon-<id>.scope` holds its monitor, not the container.
fn runtime_container_id(component: &str) -> Option<String> {
    let scope = component.strip_suffix(".scope")?;
    let (runtime, id) = [
        ("cri-containerd-", "containerd"),
        ("crio-", "cri-o"),
        ("docker-", "docker"),
    ]
    .iter()
    .find_map(|(prefix, runtime)| Some((*runtime, scope.strip_prefix(prefix)?)))?;
    let is_id = !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit());
    is_id.then(|| format!("{runtime}://{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "3f1e5b7c-2a4d-4e6f-8a9b-0c1d2e3f4a5b";
    const ID: &str = "8c2f0e9d1b7a6c5e4d3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d";

    fn pod(container_id: Option<String>) -> Option<PodCgroup> {
        Some(PodCgroup {
            pod_uid: UID.to_owned(),
            container_id,
        })
    }

    #[test]
    fn the_systemd_driver_spells_the_uid_with_underscores_under_every_qos_class() {
        let uid_ = UID.replace('-', "_");
        for (path, runtime) in [
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{ID}.scope"
                ),
                "containerd",
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/crio-{ID}.scope"
                ),
                "cri-o",
            ),
            // Guaranteed pods sit directly under kubepods.slice.
            (
                format!("/kubepods.slice/kubepods-pod{uid_}.slice/docker-{ID}.scope"),
                "docker",
            ),
        ] {
            assert_eq!(
                parse_pod_cgroup(&path),
                pod(Some(format!("{runtime}://{ID}"))),
                "{path}"
            );
        }
    }

    #[test]
    fn the_cgroupfs_driver_gives_the_uid_and_a_bare_container_id_without_its_runtime() {
        for path in [
            format!("/kubepods/burstable/pod{UID}/{ID}"),
            format!("/kubepods/besteffort/pod{UID}/{ID}"),
            format!("/kubepods/pod{UID}/{ID}"),
        ] {
            assert_eq!(parse_pod_cgroup(&path), pod(None), "{path}");
        }
    }

    /// `/proc/<pid>/cgroup` of a v1 host lists every controller; the library keeps the
    /// memory controller's path, which has the same shape as the unified one.
    #[test]
    fn cgroup_v1_controller_paths_and_other_cgroup_roots_parse_alike() {
        let uid_ = UID.replace('-', "_");
        for path in [
            // kind: the kubelet's cgroup root is /kubelet.
            format!(
                "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{uid_}.slice/cri-containerd-{ID}.scope"
            ),
            // A reader in its own cgroup namespace, in another pod.
            format!("/../../kubepods-burstable-pod{uid_}.slice/cri-containerd-{ID}.scope"),
        ] {
            assert_eq!(
                parse_pod_cgroup(&path),
                pod(Some(format!("containerd://{ID}"))),
                "{path}"
            );
        }
        assert_eq!(
            parse_pod_cgroup(&format!("/kubelet/kubepods/burstable/pod{UID}/{ID}")),
            pod(None)
        );
        assert_eq!(parse_pod_cgroup(&format!("/../pod{UID}/{ID}")), pod(None));
    }

    #[test]
    fn a_process_in_the_pods_own_cgroup_or_in_cri_os_monitor_has_no_container_id() {
        let uid_ = UID.replace('-', "_");
        assert_eq!(
            parse_pod_cgroup(&format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice"
            )),
            pod(None)
        );
        assert_eq!(
            parse_pod_cgroup(&format!(
                "/kubepods.slice/kubepods-pod{uid_}.slice/crio-conmon-{ID}.scope"
            )),
            pod(None)
        );
    }

    #[test]
    fn paths_outside_kubernetes_or_with_a_malformed_uid_name_no_pod() {
        for path in [
            "/",
            "",
            "/user.slice/user-1000.slice/session-3.scope",
            "/system.slice/docker-8c2f0e9d1b7a.scope",
            "/slurm/uid_1000/job_4242/step_0/task_0",
            // "pod" in a name that is not a pod cgroup.
            "/system.slice/podman-3f1e5b7c-2a4d-4e6f-8a9b-0c1d2e3f4a5b.scope",
            "/machine.slice/libpod-pod3f1e5b7c-2a4d-4e6f-8a9b-0c1d2e3f4a5b.slice",
            "/user.slice/pod3f1e5b7c-2a4d-4e6f-8a9b-0c1d2e3f4a5b/x",
            // Too short, not hexadecimal.
            "/kubepods/burstable/pod123/abc",
            "/kubepods/burstable/podzzzzzzzz-2a4d-4e6f-8a9b-0c1d2e3f4a5b/abc",
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod3f1e.slice",
        ] {
            assert_eq!(parse_pod_cgroup(path), None, "{path}");
        }
    }
}

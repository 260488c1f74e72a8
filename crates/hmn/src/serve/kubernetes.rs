//! `hmn serve --kubernetes`: which pod holds a GPU, and which pod a GPU process runs in.
//!
//! On a Kubernetes node, GPU figures are read by pod: "how much memory does this namespace
//! hold?" Two facts answer it, from two places:
//!
//! - **Devices.** The kubelet gives devices to containers through device plugins (NVIDIA's
//!   advertises `nvidia.com/gpu` by GPU UUID, and `nvidia.com/mig-<profile>` by MIG UUID),
//!   and tells which container holds which device through its pod-resources API
//!   (`v1.PodResourcesLister/List`, gRPC on `/var/lib/kubelet/pod-resources/kubelet.sock`),
//!   the source dcgm-exporter reads too. A GPU given wholly to one container gets its
//!   `namespace`, `pod` and `container` labels, as dcgm-exporter names them. A GPU shared
//!   (time-slicing replicas, ids `GPU-…::N`; the same id in several containers) or cut in
//!   MIG instances held by different containers, or only partly given, is not one
//!   container's: it gets no labels and is counted in
//!   `hypomnesis_kubernetes_unattributed_devices` by reason.
//! - **Processes.** A process's cgroup path names its pod's UID and its container's id
//!   ([`cgroup`]); process series get `pod_uid` (dcgm-exporter's name) and `container_id` (the
//!   `runtime://id` form of a pod status, which kube-state-metrics exports). The List answer
//!   names pods and containers but carries neither UIDs nor container ids, so hmn cannot turn
//!   a UID into a pod name by itself: join on `kube_pod_info{uid}` for that. A process whose
//!   cgroup could not be read, or lies outside any pod, gets no labels and is counted in
//!   `hypomnesis_kubernetes_unattributed_processes` by reason. Nothing is guessed: a process
//!   on a GPU given to a pod is not taken for that pod's (a privileged pod sees every GPU).
//!
//! The kubelet is asked on a thread of its own, every refresh and bounded by a timeout, so a
//! slow or absent kubelet never delays a frame or a scrape: frames use the latest answer,
//! however old (its age is exported), and failures are counted and logged when they begin,
//! change and end.

pub mod cgroup;
pub mod proto;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread;
use std::time::{Duration, Instant};

use hypomnesis::GpuDeviceInfo;

use super::follower::Log;
use proto::{ListError, ListPodResourcesResponse};

/// The container a device is given to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Holder {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

/// One device id's allocation: its holders, and whether the id is a time-slicing replica
/// (`GPU-…::N`), which is a share of the device even when only one replica is given out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Allocation {
    holders: Vec<Holder>,
    replica: bool,
}

/// The List answer reduced to NVIDIA devices: device id (GPU or MIG UUID) → who holds it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Assignments {
    by_id: HashMap<String, Allocation>,
}

/// Whether a device plugin resource is one of NVIDIA's GPUs: `nvidia.com/gpu` (also renamed
/// shares such as `nvidia.com/gpu.shared`) or a MIG profile (`nvidia.com/mig-1g.10gb`), as
/// dcgm-exporter filters them.
fn is_nvidia_gpu_resource(name: &str) -> bool {
    name.starts_with("nvidia.com/gpu") || name.starts_with("nvidia.com/mig-")
}

impl Assignments {
    /// The NVIDIA devices of a List answer.
    pub fn from_answer(answer: &ListPodResourcesResponse) -> Self {
        let mut by_id: HashMap<String, Allocation> = HashMap::new();
        for pod in &answer.pod_resources {
            for container in &pod.containers {
                let holder = Holder {
                    namespace: pod.namespace.clone(),
                    pod: pod.name.clone(),
                    container: container.name.clone(),
                };
                let ids = container
                    .devices
                    .iter()
                    .filter(|d| is_nvidia_gpu_resource(&d.resource_name))
                    .flat_map(|d| &d.device_ids);
                for id in ids {
                    // NVIDIA's plugin names time-slicing replicas `<uuid>::<n>`.
                    let (uuid, replica) = match id.split_once("::") {
                        Some((uuid, _)) => (uuid, true),
                        None => (id.as_str(), false),
                    };
                    let allocation = by_id.entry(uuid.to_owned()).or_default();
                    allocation.replica |= replica;
                    if !allocation.holders.contains(&holder) {
                        allocation.holders.push(holder.clone());
                    }
                }
            }
        }
        Self { by_id }
    }

    /// The one container holding whatever `ids` name (the ids of one device), `None` when
    /// none does; an error when a share of it is held, or two containers hold it.
    fn sole_holder(
        &self,
        ids: impl IntoIterator<Item = String>,
    ) -> Result<Option<&Holder>, DeviceReason> {
        let mut sole: Option<&Holder> = None;
        for allocation in ids.into_iter().filter_map(|id| self.by_id.get(&id)) {
            let [holder] = allocation.holders.as_slice() else {
                return Err(DeviceReason::Shared);
            };
            if allocation.replica || sole.is_some_and(|s| s != holder) {
                return Err(DeviceReason::Shared);
            }
            sole = Some(holder);
        }
        Ok(sole)
    }

    /// Who holds `device`. NVIDIA's device plugin names GPUs by UUID, or by NVML index
    /// (`DEVICE_ID_STRATEGY=index`: `0`, and `0:1` for MIG device 1 of GPU 0). A MIG-enabled
    /// GPU is given wholly when every one of its MIG instances is given to the same container.
    pub fn holder_of(&self, device: &GpuDeviceInfo) -> DeviceHolding<'_> {
        let nvidia = device.vendor == hypomnesis::GpuVendor::Nvidia;
        let index = nvidia.then(|| device.index.to_string());
        match self.sole_holder(device.uuid.iter().cloned().chain(index)) {
            Ok(Some(holder)) => return DeviceHolding::Given(holder),
            Err(reason) => return DeviceHolding::Unattributed(reason),
            Ok(None) => {}
        }
        let mut instances = Vec::new();
        for (at, instance) in device.mig_instances.iter().enumerate() {
            let index = nvidia.then(|| format!("{}:{at}", device.index));
            match self.sole_holder(instance.uuid.iter().cloned().chain(index)) {
                Err(reason) => return DeviceHolding::Unattributed(reason),
                Ok(holder) => instances.push(holder),
            }
        }
        match instances.first() {
            None | Some(None) if instances.iter().all(Option::is_none) => DeviceHolding::Free,
            Some(Some(first)) if instances.iter().all(|h| *h == Some(*first)) => {
                DeviceHolding::Given(first)
            }
            _ => DeviceHolding::Unattributed(DeviceReason::Split),
        }
    }
}

/// What the kubelet says of one GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceHolding<'a> {
    /// Given to no container.
    Free,
    /// Given wholly to this container.
    Given(&'a Holder),
    /// Given, but not wholly to one container.
    Unattributed(DeviceReason),
}

/// Why a GPU given to containers has no pod labels (`reason` of
/// `hypomnesis_kubernetes_unattributed_devices`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeviceReason {
    /// Time-slicing replicas, or the same device id in several containers.
    Shared,
    /// MIG instances held by different containers, or some held and some not.
    Split,
    /// The kubelet has not answered yet: no one knows who holds it.
    NoAnswer,
}

impl DeviceReason {
    pub const ALL: [Self; 3] = [Self::Shared, Self::Split, Self::NoAnswer];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::Split => "mig_split",
            Self::NoAnswer => "no_pod_resources_answer",
        }
    }
}

/// Why a GPU process has no pod labels (`reason` of
/// `hypomnesis_kubernetes_unattributed_processes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProcessReason {
    /// Its cgroup could not be read (it ended, or `/proc` hides it).
    CgroupUnknown,
    /// Its cgroup is outside any pod (a host process, a plain container, a Slurm job).
    NotInAPod,
}

impl ProcessReason {
    pub const ALL: [Self; 2] = [Self::CgroupUnknown, Self::NotInAPod];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CgroupUnknown => "cgroup_unknown",
            Self::NotInAPod => "not_in_a_pod",
        }
    }
}

/// The pod labels of a process with cgroup path `cgroup`, or why it has none.
pub fn process_pod(cgroup: Option<&str>) -> Result<cgroup::PodCgroup, ProcessReason> {
    let path = cgroup.ok_or(ProcessReason::CgroupUnknown)?;
    cgroup::parse_pod_cgroup(path).ok_or(ProcessReason::NotInAPod)
}

/// The latest answer of the kubelet, as frames use it.
#[derive(Debug, Clone, Default)]
pub struct PodSnapshot {
    /// The latest assignments and how old they are; `None` before the first answer.
    pub assignments: Option<(Arc<Assignments>, Duration)>,
    /// Failed List calls since `hmn serve` started.
    pub failures: u64,
}

#[derive(Debug, Default)]
struct PodState {
    latest: Option<(Arc<Assignments>, Instant)>,
    failures: u64,
    /// The failure going on, as logged: a new text is logged, the same one is not.
    failing: Option<String>,
}

/// The kubelet's pod-resources API, asked on a thread of its own. Dropping the last handle
/// ends the thread at its next refresh.
pub struct PodSource {
    state: Mutex<PodState>,
}

impl std::fmt::Debug for PodSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodSource").finish_non_exhaustive()
    }
}

/// How long one List call may take, connecting included.
pub const LIST_TIMEOUT: Duration = Duration::from_secs(5);

/// How often to ask the kubelet: every `interval`, within 1 to 10 s (pods come and go in
/// seconds; a 100 ms interval must not become ten calls a second to the kubelet).
pub fn refresh_every(interval: Duration) -> Duration {
    interval.clamp(Duration::from_secs(1), Duration::from_secs(10))
}

impl PodSource {
    /// Starts asking the kubelet at `socket` at once, then every `refresh`.
    ///
    /// # Errors
    /// When the OS refuses a thread or the thread's runtime.
    pub fn start(socket: PathBuf, refresh: Duration, log: Log) -> std::io::Result<Arc<Self>> {
        let source = Arc::new(Self {
            state: Mutex::new(PodState::default()),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let weak = Arc::downgrade(&source);
        thread::Builder::new()
            .name("hmn-kubelet".into())
            .spawn(move || ask_until_dropped(&weak, &runtime, &socket, refresh, &log))?;
        Ok(source)
    }

    /// A source that has seen `outcomes` and asks no kubelet (for tests of what frames do
    /// with its answers).
    #[cfg(test)]
    pub fn answered(
        outcomes: impl IntoIterator<Item = Result<ListPodResourcesResponse, ListError>>,
    ) -> Arc<Self> {
        let source = Self {
            state: Mutex::new(PodState::default()),
        };
        for outcome in outcomes {
            source.record(outcome);
        }
        Arc::new(source)
    }

    /// What frames label with now.
    pub fn snapshot(&self) -> PodSnapshot {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        PodSnapshot {
            assignments: state
                .latest
                .as_ref()
                .map(|(a, at)| (Arc::clone(a), at.elapsed())),
            failures: state.failures,
        }
    }

    /// Records one List outcome; returns the line to log, if any.
    fn record(&self, outcome: Result<ListPodResourcesResponse, ListError>) -> Option<String> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Ok(answer) => {
                let assignments = Assignments::from_answer(&answer);
                let first = state.latest.is_none();
                let recovered = state.failing.take();
                let line = match (first, recovered) {
                    (_, Some(_)) | (true, None) => Some(format!(
                        "kubelet pod-resources: {} pods, {} NVIDIA device ids given to containers{}",
                        answer.pod_resources.len(),
                        assignments.by_id.len(),
                        if first { "" } else { " (answering again)" }
                    )),
                    (false, None) => None,
                };
                state.latest = Some((Arc::new(assignments), Instant::now()));
                line
            }
            Err(e) => {
                state.failures += 1;
                let text = e.to_string();
                if state.failing.as_deref() == Some(text.as_str()) {
                    return None;
                }
                state.failing = Some(text.clone());
                Some(format!(
                    "{text}; device series get no pod labels{} (counted in \
                     hypomnesis_kubernetes_pod_resources_errors_total; asked again every refresh)",
                    if state.latest.is_some() {
                        " newer than the last answer, whose age \
                         hypomnesis_kubernetes_pod_resources_age_seconds shows"
                    } else {
                        ""
                    }
                ))
            }
        }
    }
}

fn ask_until_dropped(
    source: &Weak<PodSource>,
    runtime: &tokio::runtime::Runtime,
    socket: &std::path::Path,
    refresh: Duration,
    log: &Log,
) {
    loop {
        let outcome = runtime.block_on(proto::list(socket, LIST_TIMEOUT));
        let Some(source) = source.upgrade() else {
            return;
        };
        if let Some(line) = source.record(outcome) {
            log(&line);
        }
        drop(source);
        thread::sleep(refresh);
    }
}

#[cfg(test)]
mod tests {
    use super::proto::{ContainerDevices, ContainerResources, PodResources};
    use super::*;

    const GPU0: &str = "GPU-5a5c4d1e-1f9b-4a7d-9c1e-2b3f4a5b6c7d";
    const GPU1: &str = "GPU-8d0f5e2a-3c4b-4e6f-a1b2-c3d4e5f60718";
    const MIG1: &str = "MIG-1c2d3e4f-5a6b-5c7d-8e9f-0a1b2c3d4e01";
    const MIG2: &str = "MIG-1c2d3e4f-5a6b-5c7d-8e9f-0a1b2c3d4e02";

    fn pod(namespace: &str, name: &str, containers: &[(&str, &str, &[&str])]) -> PodResources {
        PodResources {
            name: name.into(),
            namespace: namespace.into(),
            containers: containers
                .iter()
                .map(|(container, resource, ids)| ContainerResources {
                    name: (*container).into(),
                    devices: vec![ContainerDevices {
                        resource_name: (*resource).into(),
                        device_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
                    }],
                })
                .collect(),
        }
    }

    fn gpu(uuid: &str) -> GpuDeviceInfo {
        GpuDeviceInfo::builder().index(0).uuid(uuid).build()
    }

    fn holder(namespace: &str, pod: &str, container: &str) -> Holder {
        Holder {
            namespace: namespace.into(),
            pod: pod.into(),
            container: container.into(),
        }
    }

    #[test]
    fn a_gpu_given_to_one_container_is_that_containers_and_others_are_free() {
        let answer = ListPodResourcesResponse {
            pod_resources: vec![
                pod("ml", "trainer-0", &[("main", "nvidia.com/gpu", &[GPU0])]),
                // Not an NVIDIA resource: ignored even if its id looked like a GPU's.
                pod("net", "sriov", &[("nic", "intel.com/sriov", &[GPU1])]),
            ],
        };
        let assignments = Assignments::from_answer(&answer);
        let trainer = holder("ml", "trainer-0", "main");
        assert_eq!(
            assignments.holder_of(&gpu(GPU0)),
            DeviceHolding::Given(&trainer)
        );
        assert_eq!(assignments.holder_of(&gpu(GPU1)), DeviceHolding::Free);
    }

    #[test]
    fn a_gpu_in_several_containers_or_given_as_time_slicing_replicas_is_shared() {
        let answer = ListPodResourcesResponse {
            pod_resources: vec![
                pod("a", "one", &[("c", "nvidia.com/gpu", &[GPU0])]),
                pod("b", "two", &[("c", "nvidia.com/gpu", &[GPU0])]),
                pod(
                    "c",
                    "replica",
                    &[("c", "nvidia.com/gpu.shared", &[&format!("{GPU1}::3")])],
                ),
            ],
        };
        let assignments = Assignments::from_answer(&answer);
        for uuid in [GPU0, GPU1] {
            assert_eq!(
                assignments.holder_of(&gpu(uuid)),
                DeviceHolding::Unattributed(DeviceReason::Shared),
                "{uuid}"
            );
        }
    }

    fn mig_gpu() -> GpuDeviceInfo {
        let mut device = gpu(GPU0);
        device.mig_instances = [(1, MIG1), (2, MIG2)]
            .into_iter()
            .map(|(gi, uuid)| {
                let mut instance = hypomnesis::MigInstance::for_test(gi, 0, None);
                instance.uuid = Some(uuid.to_owned());
                instance
            })
            .collect();
        device
    }

    #[test]
    fn a_mig_gpu_is_a_containers_only_when_it_holds_every_instance() {
        let whole = Assignments::from_answer(&ListPodResourcesResponse {
            pod_resources: vec![pod(
                "ml",
                "big",
                &[("main", "nvidia.com/mig-3g.40gb", &[MIG1, MIG2])],
            )],
        });
        let big = holder("ml", "big", "main");
        assert_eq!(whole.holder_of(&mig_gpu()), DeviceHolding::Given(&big));

        let split = Assignments::from_answer(&ListPodResourcesResponse {
            pod_resources: vec![
                pod("ml", "a", &[("main", "nvidia.com/mig-3g.40gb", &[MIG1])]),
                pod("ml", "b", &[("main", "nvidia.com/mig-3g.40gb", &[MIG2])]),
            ],
        });
        let partly = Assignments::from_answer(&ListPodResourcesResponse {
            pod_resources: vec![pod(
                "ml",
                "a",
                &[("main", "nvidia.com/mig-3g.40gb", &[MIG1])],
            )],
        });
        for assignments in [split, partly] {
            assert_eq!(
                assignments.holder_of(&mig_gpu()),
                DeviceHolding::Unattributed(DeviceReason::Split)
            );
        }
        let none = Assignments::default();
        assert_eq!(none.holder_of(&mig_gpu()), DeviceHolding::Free);
    }

    #[test]
    fn gpus_named_by_index_match_the_nvidia_device_of_that_index_and_mig_devices_by_position() {
        let by_index = Assignments::from_answer(&ListPodResourcesResponse {
            pod_resources: vec![
                pod("ml", "a", &[("main", "nvidia.com/gpu", &["0"])]),
                pod(
                    "ml",
                    "b",
                    &[("main", "nvidia.com/mig-3g.40gb", &["1:0", "1:1"])],
                ),
            ],
        });
        let a = holder("ml", "a", "main");
        let b = holder("ml", "b", "main");
        assert_eq!(by_index.holder_of(&gpu(GPU0)), DeviceHolding::Given(&a));
        let mut mig = mig_gpu();
        mig.index = 1;
        mig.uuid = Some(GPU1.to_owned());
        assert_eq!(by_index.holder_of(&mig), DeviceHolding::Given(&b));
        // Another vendor's GPU 0 is not NVIDIA's GPU 0.
        let amd = GpuDeviceInfo::builder()
            .index(0)
            .vendor(hypomnesis::GpuVendor::Amd)
            .build();
        assert_eq!(by_index.holder_of(&amd), DeviceHolding::Free);
        // The same GPU by UUID in one container and by index in another is shared.
        let both = Assignments::from_answer(&ListPodResourcesResponse {
            pod_resources: vec![
                pod("ml", "a", &[("main", "nvidia.com/gpu", &["0"])]),
                pod("ml", "b", &[("main", "nvidia.com/gpu", &[GPU0])]),
            ],
        });
        assert_eq!(
            both.holder_of(&gpu(GPU0)),
            DeviceHolding::Unattributed(DeviceReason::Shared)
        );
    }

    #[test]
    fn a_process_outside_any_pod_or_with_an_unknown_cgroup_says_why_it_has_no_pod() {
        assert_eq!(process_pod(None), Err(ProcessReason::CgroupUnknown));
        assert_eq!(
            process_pod(Some("/user.slice/user-1000.slice/session-2.scope")),
            Err(ProcessReason::NotInAPod)
        );
        assert_eq!(
            process_pod(Some(
                "/kubepods/besteffort/pod3f1e5b7c-2a4d-4e6f-8a9b-0c1d2e3f4a5b/abc"
            ))
            .map(|p| p.pod_uid),
            Ok("3f1e5b7c-2a4d-4e6f-8a9b-0c1d2e3f4a5b".to_owned())
        );
    }

    #[test]
    fn a_failure_is_counted_each_time_logged_when_it_changes_and_the_last_answer_is_kept() {
        let source = PodSource {
            state: Mutex::new(PodState::default()),
        };
        let answer = ListPodResourcesResponse {
            pod_resources: vec![pod("ml", "p", &[("c", "nvidia.com/gpu", &[GPU0])])],
        };
        let first = source.record(Ok(answer.clone())).unwrap();
        assert!(
            first.starts_with("kubelet pod-resources: 1 pods, 1 NVIDIA"),
            "{first}"
        );
        assert_eq!(source.record(Ok(answer.clone())), None);
        let timeout = || Err(ListError::TimedOut(Duration::from_secs(5)));
        let failed = source.record(timeout()).unwrap();
        assert!(
            failed.contains("did not answer List within 5.0 s"),
            "{failed}"
        );
        assert!(failed.contains("whose age"), "{failed}");
        assert_eq!(source.record(timeout()), None);
        let other = source.record(Err(ListError::Call("refused".into())));
        assert!(other.is_some());
        let snapshot = source.snapshot();
        assert_eq!(snapshot.failures, 3);
        let (kept, _age) = snapshot.assignments.unwrap();
        assert_eq!(*kept, Assignments::from_answer(&answer));
        let back = source.record(Ok(answer)).unwrap();
        assert!(back.ends_with("(answering again)"), "{back}");
    }
}

//! Who a GPU and a GPU process belong to: the labels `--kubernetes` and `--job-mapping-dir`
//! add to device and process series.
//!
//! The sources change on their own schedule (the kubelet's answer is refreshed on its own
//! thread, the job files by the scheduler), so each frame takes a [`Labelling`] of them when
//! it is encoded: labels for each device and process of that frame, and the families that say
//! what could not be attributed and how old the kubelet's answer is. Without either flag the
//! labelling is empty and the series are what they were without it.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use hypomnesis::{Frame, GpuDeviceInfo, GpuProcessEntry};
use prometheus_client::encoding::DescriptorEncoder;

use super::follower::Log;
use super::jobs;
#[cfg(all(unix, feature = "kubernetes"))]
use super::kubernetes;
use super::metrics::View;

/// Labels a series gets beyond its own, in order.
pub type Extra = Vec<(&'static str, String)>;

/// The sources of labels `hmn serve` was started with.
#[derive(Default)]
pub struct Attribution {
    #[cfg(all(unix, feature = "kubernetes"))]
    pods: Option<std::sync::Arc<kubernetes::PodSource>>,
    jobs: Option<JobSource>,
}

impl fmt::Debug for Attribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attribution").finish_non_exhaustive()
    }
}

/// The job mapping directory, and the failure to read it going on, logged once.
struct JobSource {
    dir: PathBuf,
    failing: Mutex<Option<String>>,
    log: Log,
}

impl Attribution {
    /// Labels pods from the kubelet `pods` asks.
    #[cfg(all(unix, feature = "kubernetes"))]
    #[must_use]
    pub fn with_pods(mut self, pods: std::sync::Arc<kubernetes::PodSource>) -> Self {
        self.pods = Some(pods);
        self
    }

    /// Labels jobs from the mapping files in `dir`.
    #[must_use]
    pub fn with_jobs(mut self, dir: PathBuf, log: Log) -> Self {
        self.jobs = Some(JobSource {
            dir,
            failing: Mutex::new(None),
            log,
        });
        self
    }

    /// Whether process series need each process's cgroup (the monitor then reads it).
    pub fn needs_cgroups(&self) -> bool {
        self.pod_labelling().is_some()
    }

    /// The kubelet's latest answer, for one frame; `None` without `--kubernetes`.
    #[cfg(all(unix, feature = "kubernetes"))]
    fn pod_labelling(&self) -> Option<PodLabelling> {
        let source = self.pods.as_ref()?;
        Some(PodLabelling::new(source.snapshot()))
    }

    #[cfg(not(all(unix, feature = "kubernetes")))]
    #[allow(clippy::unused_self)]
    fn pod_labelling(&self) -> Option<PodLabelling> {
        None
    }

    /// The labels of `frame`'s series, as `view` shows them, from the sources as they are now.
    pub fn labelling(&self, frame: &Frame, view: View) -> Labelling {
        let mut labelling = Labelling::default();
        let job_map = self.jobs.as_ref().map(JobSource::read);
        let mut pods = self.pod_labelling();
        for device in frame.devices.iter().filter(|d| view.shows(d)) {
            let info = &device.device;
            let extra = pods.as_mut().map(|p| p.device(info)).unwrap_or_default();
            let jobs = job_map.as_ref().map(|m| m.of_gpu(info.index));
            labelling.devices.insert(info.index, with_jobs(extra, jobs));
            if !view.processes {
                continue;
            }
            for process in device.rows() {
                let extra = pods
                    .as_mut()
                    .map(|p| p.process(process))
                    .unwrap_or_default();
                let jobs = job_map
                    .as_ref()
                    .map(|m| m.of_process(process.device_index, process.gpu_instance_id));
                labelling
                    .processes
                    .insert((process.device_index, process.pid), with_jobs(extra, jobs));
            }
        }
        labelling.pods = pods.map(PodLabelling::status);
        labelling
    }
}

impl JobSource {
    /// The mapping as the files say now; empty when the directory cannot be read (said when
    /// that begins and when it ends).
    fn read(&self) -> jobs::JobMap {
        let outcome = jobs::read_job_map(&self.dir);
        let mut failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Ok(map) => {
                if failing.take().is_some() {
                    (self.log)(&format!(
                        "job mapping: {} readable again",
                        self.dir.display()
                    ));
                }
                map
            }
            Err(e) => {
                if failing.as_deref() != Some(e.as_str()) {
                    (self.log)(&format!(
                        "job mapping: {e}; series get no hpc_job label until it can be read"
                    ));
                    *failing = Some(e);
                }
                jobs::JobMap::default()
            }
        }
    }
}

/// `extra` with an `hpc_job` label when there are jobs: their ids in file order, separated by
/// commas. dcgm-exporter repeats the series once per job instead, so a GPU shared by two
/// jobs counts twice in any sum over GPUs; here every device and process keeps one series.
fn with_jobs(mut extra: Extra, jobs: Option<Vec<String>>) -> Extra {
    let jobs = jobs.unwrap_or_default();
    if !jobs.is_empty() {
        extra.push(("hpc_job", jobs.join(",")));
    }
    extra
}

/// One frame's labels and what could not be attributed.
#[derive(Debug, Default)]
pub struct Labelling {
    devices: HashMap<u32, Extra>,
    processes: HashMap<(u32, u32), Extra>,
    pods: Option<PodStatus>,
}

impl Labelling {
    /// The labels `device`'s series get beyond their own.
    pub fn device(&self, device: &GpuDeviceInfo) -> &[(&'static str, String)] {
        self.devices.get(&device.index).map_or(&[], Vec::as_slice)
    }

    /// The labels `process`'s series get beyond their own.
    pub fn process(&self, process: &GpuProcessEntry) -> &[(&'static str, String)] {
        self.processes
            .get(&(process.device_index, process.pid))
            .map_or(&[], Vec::as_slice)
    }

    /// The families about attribution itself (with `--kubernetes`): what could not be
    /// attributed, how old the kubelet's answer is, how often asking it failed.
    pub fn encode(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        match &self.pods {
            Some(status) => status.encode(encoder),
            None => Ok(()),
        }
    }
}

#[cfg(all(unix, feature = "kubernetes"))]
use pods::{PodLabelling, PodStatus};
#[cfg(not(all(unix, feature = "kubernetes")))]
use without_pods::{PodLabelling, PodStatus};

/// Without the `kubernetes` feature (or off Unix, where the kubelet's socket is not a unix
/// socket) there is no pod source: these types have no values, so the code that would label
/// pods is unreachable rather than written twice.
#[cfg(not(all(unix, feature = "kubernetes")))]
mod without_pods {
    use super::*;

    #[derive(Debug)]
    pub enum PodLabelling {}

    #[derive(Debug)]
    pub enum PodStatus {}

    impl PodLabelling {
        pub fn device(&mut self, _: &GpuDeviceInfo) -> Extra {
            match *self {}
        }

        pub fn process(&mut self, _: &GpuProcessEntry) -> Extra {
            match *self {}
        }

        pub fn status(self) -> PodStatus {
            match self {}
        }
    }

    impl PodStatus {
        pub fn encode(&self, _: &mut DescriptorEncoder) -> fmt::Result {
            match *self {}
        }
    }
}

#[cfg(all(unix, feature = "kubernetes"))]
mod pods {
    use super::*;
    use kubernetes::{DeviceHolding, DeviceReason, PodSnapshot, ProcessReason};
    use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric};
    use prometheus_client::metrics::MetricType;
    use prometheus_client::metrics::counter::ConstCounter;
    use prometheus_client::metrics::gauge::ConstGauge;
    use prometheus_client::registry::Unit;
    use std::collections::BTreeMap;

    /// The kubelet's answer as one frame uses it, counting what it cannot attribute.
    pub struct PodLabelling {
        snapshot: PodSnapshot,
        devices: BTreeMap<DeviceReason, i64>,
        processes: BTreeMap<ProcessReason, i64>,
    }

    /// What a frame's pod labelling could not attribute, and the kubelet's state.
    #[derive(Debug)]
    pub struct PodStatus {
        age_seconds: Option<f64>,
        failures: u64,
        devices: BTreeMap<DeviceReason, i64>,
        processes: BTreeMap<ProcessReason, i64>,
    }

    impl PodLabelling {
        pub fn new(snapshot: PodSnapshot) -> Self {
            Self {
                snapshot,
                devices: DeviceReason::ALL.iter().map(|r| (*r, 0)).collect(),
                processes: ProcessReason::ALL.iter().map(|r| (*r, 0)).collect(),
            }
        }

        /// `namespace`, `pod`, `container` of the container `device` is given to wholly.
        pub fn device(&mut self, device: &GpuDeviceInfo) -> Extra {
            let Some((assignments, _)) = &self.snapshot.assignments else {
                *self.devices.entry(DeviceReason::NoAnswer).or_default() += 1;
                return Extra::new();
            };
            match assignments.holder_of(device) {
                DeviceHolding::Free => Extra::new(),
                DeviceHolding::Given(holder) => vec![
                    ("namespace", holder.namespace.clone()),
                    ("pod", holder.pod.clone()),
                    ("container", holder.container.clone()),
                ],
                DeviceHolding::Unattributed(reason) => {
                    *self.devices.entry(reason).or_default() += 1;
                    Extra::new()
                }
            }
        }

        /// `pod_uid` and `container_id` of the pod `process` runs in.
        pub fn process(&mut self, process: &GpuProcessEntry) -> Extra {
            match kubernetes::process_pod(process.cgroup.as_deref()) {
                Ok(pod) => {
                    let mut extra = vec![("pod_uid", pod.pod_uid)];
                    if let Some(id) = pod.container_id {
                        extra.push(("container_id", id));
                    }
                    extra
                }
                Err(reason) => {
                    *self.processes.entry(reason).or_default() += 1;
                    Extra::new()
                }
            }
        }

        pub fn status(self) -> PodStatus {
            PodStatus {
                age_seconds: self
                    .snapshot
                    .assignments
                    .as_ref()
                    .map(|(_, age)| age.as_secs_f64()),
                failures: self.snapshot.failures,
                devices: self.devices,
                processes: self.processes,
            }
        }
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct ReasonLabels {
        reason: &'static str,
    }

    type NoLabels = [(&'static str, &'static str); 0];

    impl PodStatus {
        pub fn encode(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
            if let Some(age) = self.age_seconds {
                let mut family = encoder.encode_descriptor(
                    "hypomnesis_kubernetes_pod_resources_age",
                    "How old the kubelet pod-resources answer behind this sample's pod labels was when the sample was encoded; absent before the first answer.",
                    Some(&Unit::Seconds),
                    MetricType::Gauge,
                )?;
                ConstGauge::new(age).encode(family.encode_family(&NoLabels::default())?)?;
            }
            let mut family = encoder.encode_descriptor(
                "hypomnesis_kubernetes_pod_resources_errors",
                "Failed List calls to the kubelet pod-resources API (no socket, refused, timed out) since hmn serve started.",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(self.failures).encode(family.encode_family(&NoLabels::default())?)?;
            let mut family = encoder.encode_descriptor(
                "hypomnesis_kubernetes_unattributed_devices",
                "GPUs in this sample with no pod labels although given to containers (shared, mig_split), or because the kubelet has not answered (no_pod_resources_answer).",
                None,
                MetricType::Gauge,
            )?;
            for (reason, n) in &self.devices {
                ConstGauge::new(*n).encode(family.encode_family(&ReasonLabels {
                    reason: reason.as_str(),
                })?)?;
            }
            let mut family = encoder.encode_descriptor(
                "hypomnesis_kubernetes_unattributed_processes",
                "GPU process rows in this sample with no pod_uid label: cgroup unreadable (cgroup_unknown) or outside any pod (not_in_a_pod).",
                None,
                MetricType::Gauge,
            )?;
            for (reason, n) in &self.processes {
                ConstGauge::new(*n).encode(family.encode_family(&ReasonLabels {
                    reason: reason.as_str(),
                })?)?;
            }
            Ok(())
        }
    }
}

#[cfg(all(test, unix, feature = "kubernetes"))]
mod tests {
    use super::*;
    use crate::serve::kubernetes::PodSource;
    use crate::serve::kubernetes::proto::ListError;
    use crate::serve::kubernetes::proto::{
        ContainerDevices, ContainerResources, ListPodResourcesResponse, PodResources,
    };
    use crate::serve::metrics::{Format, Health, Sample, encode_labelled, family_names, render};
    use hypomnesis::{DeviceFrame, FrameRequest, GpuProcessListing};
    use std::sync::Arc;
    use std::time::Duration;

    const UUID: &str = "GPU-5a5c4d1e-1f9b-4a7d-9c1e-2b3f4a5b6c7d";

    /// GPU 0 (given to ml/p's container c when the kubelet says so), with a process in a pod
    /// and one on the host.
    fn frame() -> Frame {
        let mut device = DeviceFrame::new(
            GpuDeviceInfo::builder()
                .index(0)
                .uuid(UUID)
                .used_bytes(3_u64)
                .build(),
        );
        let mut in_pod = GpuProcessEntry::builder(7).used_bytes(1_u64).build();
        in_pod.cgroup =
            Some("/kubepods/burstable/pod3f1e5b7c-2a4d-4e6f-8a9b-0c1d2e3f4a5b/abc".to_owned());
        let mut host = GpuProcessEntry::builder(8).used_bytes(2_u64).build();
        host.cgroup = Some("/system.slice/render.service".to_owned());
        let mut listing = GpuProcessListing::default();
        listing.rows = vec![in_pod, host];
        device.processes = Some(listing);
        let mut frame = Frame::empty(FrameRequest::DEVICES.with_processes(true, true));
        frame.devices = vec![device];
        frame
    }

    fn labelled(pods: Arc<PodSource>) -> String {
        let frame = frame();
        let labelling = Attribution::default()
            .with_pods(pods)
            .labelling(&frame, View::default());
        let sample = Sample {
            frame: Arc::new(frame),
            own_rss_bytes: None,
            duration: Duration::ZERO,
        };
        let exposition = encode_labelled(sample, View::default(), labelling);
        render(
            Format::Prometheus,
            &exposition,
            &Health::new(Duration::from_secs(5)),
            Duration::ZERO,
        )
    }

    fn answered() -> Arc<PodSource> {
        let answer = ListPodResourcesResponse {
            pod_resources: vec![PodResources {
                name: "p".into(),
                namespace: "ml".into(),
                containers: vec![ContainerResources {
                    name: "c".into(),
                    devices: vec![ContainerDevices {
                        resource_name: "nvidia.com/gpu".into(),
                        device_ids: vec![UUID.into()],
                    }],
                }],
            }],
        };
        let refused = || Err(ListError::Call("refused".into()));
        PodSource::answered([refused(), Ok(answer), refused()])
    }

    #[test]
    fn pod_labels_follow_the_device_labels_and_unattributed_rows_are_counted() {
        let text = labelled(answered());
        assert!(text.contains(&format!(
            "hypomnesis_gpu_memory_used_bytes{{gpu=\"0\",uuid=\"{UUID}\",name=\"\",vendor=\"nvidia\",namespace=\"ml\",pod=\"p\",container=\"c\"}} 3\n"
        )), "{text}");
        assert!(text.contains(
            "pid=\"7\",process=\"\",user=\"\",kind=\"unknown\",pod_uid=\"3f1e5b7c-2a4d-4e6f-8a9b-0c1d2e3f4a5b\"} 1\n"
        ), "{text}");
        assert!(
            text.contains("pid=\"8\",process=\"\",user=\"\",kind=\"unknown\"} 2\n"),
            "{text}"
        );
        for line in [
            "hypomnesis_kubernetes_pod_resources_errors_total 2",
            "hypomnesis_kubernetes_unattributed_processes{reason=\"not_in_a_pod\"} 1",
            "hypomnesis_kubernetes_unattributed_processes{reason=\"cgroup_unknown\"} 0",
            "hypomnesis_kubernetes_unattributed_devices{reason=\"no_pod_resources_answer\"} 0",
        ] {
            assert!(text.contains(&format!("\n{line}\n")), "{line}:\n{text}");
        }
        // The answer kept through the later failure, with its age.
        assert!(text.contains("\nhypomnesis_kubernetes_pod_resources_age_seconds "));
    }

    #[test]
    fn telemetry_series_carry_the_pod_labels_as_the_memory_series_do() {
        let mut frame = frame();
        let mut telemetry = hypomnesis::DeviceTelemetry::empty(0, hypomnesis::GpuQuerySource::Nvml);
        telemetry.temperature_celsius = Some(61.0);
        frame.devices[0].telemetry = Some(telemetry);
        let labelling = Attribution::default()
            .with_pods(answered())
            .labelling(&frame, View::default());
        let sample = Sample {
            frame: Arc::new(frame),
            own_rss_bytes: None,
            duration: Duration::ZERO,
        };
        let exposition = encode_labelled(sample, View::default(), labelling);
        let text = render(
            Format::Prometheus,
            &exposition,
            &Health::new(Duration::from_secs(5)),
            Duration::ZERO,
        );
        assert!(text.contains(&format!(
            "hypomnesis_gpu_temperature_celsius{{gpu=\"0\",uuid=\"{UUID}\",name=\"\",vendor=\"nvidia\",namespace=\"ml\",pod=\"p\",container=\"c\"}} 61"
        )), "{text}");
    }

    #[test]
    fn before_the_kubelet_answers_every_device_is_counted_and_there_is_no_age() {
        let text = labelled(PodSource::answered([Err(ListError::TimedOut(
            Duration::from_secs(5),
        ))]));
        assert!(!text.contains("pod=\""), "{text}");
        assert!(text.contains(
            "\nhypomnesis_kubernetes_unattributed_devices{reason=\"no_pod_resources_answer\"} 1\n"
        ));
        assert!(!text.contains("hypomnesis_kubernetes_pod_resources_age_seconds"));
        assert!(text.contains("\nhypomnesis_kubernetes_pod_resources_errors_total 1\n"));
    }

    #[test]
    fn every_kubernetes_family_is_documented_in_docs_metrics_md() {
        let docs = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/metrics.md"),
        )
        .unwrap();
        let names = family_names(&labelled(answered()));
        assert!(
            names
                .iter()
                .any(|n| n.starts_with("hypomnesis_kubernetes_"))
        );
        for name in names {
            assert!(
                docs.contains(&format!("`{name}`")),
                "docs/metrics.md does not document `{name}`"
            );
        }
    }
}

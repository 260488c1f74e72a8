//! `hmn serve --kubernetes` and `--job-mapping-dir` end to end: the real binary against the
//! NVML double (four GPUs), a fixture `/proc` whose processes sit in kubepods cgroups, and a
//! fake kubelet: a tonic gRPC server on a unix socket in a temporary directory, speaking
//! `v1.PodResourcesLister/List` with the full messages of kubelet's
//! `pkg/apis/podresources/v1/api.proto` (CPU ids, memory, topology, dynamic resources too,
//! which `hmn` does not declare and must skip).
//!
//! Every server started here is stopped by PID when its guard drops. No test asserts a
//! duration: waits are for events, with generous bounds.
#![cfg(all(target_os = "linux", feature = "kubernetes"))]

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// The kubelet's messages, whole (field numbers of api.proto)

#[derive(Clone, PartialEq, prost::Message)]
struct ListPodResourcesRequest {}

#[derive(Clone, PartialEq, prost::Message)]
struct ListPodResourcesResponse {
    #[prost(message, repeated, tag = "1")]
    pod_resources: Vec<PodResources>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PodResources {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    namespace: String,
    #[prost(message, repeated, tag = "3")]
    containers: Vec<ContainerResources>,
    #[prost(int64, repeated, tag = "4")]
    cpu_ids: Vec<i64>,
    #[prost(message, repeated, tag = "5")]
    memory: Vec<ContainerMemory>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ContainerResources {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, repeated, tag = "2")]
    devices: Vec<ContainerDevices>,
    #[prost(int64, repeated, tag = "3")]
    cpu_ids: Vec<i64>,
    #[prost(message, repeated, tag = "4")]
    memory: Vec<ContainerMemory>,
    #[prost(message, repeated, tag = "5")]
    dynamic_resources: Vec<DynamicResource>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ContainerMemory {
    #[prost(string, tag = "1")]
    memory_type: String,
    #[prost(uint64, tag = "2")]
    size: u64,
    #[prost(message, optional, tag = "3")]
    topology: Option<TopologyInfo>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ContainerDevices {
    #[prost(string, tag = "1")]
    resource_name: String,
    #[prost(string, repeated, tag = "2")]
    device_ids: Vec<String>,
    #[prost(message, optional, tag = "3")]
    topology: Option<TopologyInfo>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TopologyInfo {
    #[prost(message, repeated, tag = "1")]
    nodes: Vec<NumaNode>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct NumaNode {
    #[prost(int64, tag = "1")]
    id: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct DynamicResource {
    #[prost(string, tag = "2")]
    claim_name: String,
    #[prost(string, tag = "3")]
    claim_namespace: String,
    #[prost(message, repeated, tag = "4")]
    claim_resources: Vec<ClaimResource>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ClaimResource {
    #[prost(message, repeated, tag = "1")]
    cdi_devices: Vec<CdiDevice>,
    #[prost(string, tag = "2")]
    driver_name: String,
    #[prost(string, tag = "3")]
    pool_name: String,
    #[prost(string, tag = "4")]
    device_name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct CdiDevice {
    #[prost(string, tag = "1")]
    name: String,
}

// ---------------------------------------------------------------------------------------------
// The fake kubelet

/// `v1.PodResourcesLister` answering every `List` with `answer`; any other method is
/// UNIMPLEMENTED, as a kubelet of the matching version would say.
#[derive(Clone)]
struct FakeKubelet {
    answer: ListPodResourcesResponse,
}

struct List(ListPodResourcesResponse);

impl tonic::server::UnaryService<ListPodResourcesRequest> for List {
    type Response = ListPodResourcesResponse;
    type Future = std::future::Ready<Result<tonic::Response<Self::Response>, tonic::Status>>;

    fn call(&mut self, _: tonic::Request<ListPodResourcesRequest>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(self.0.clone())))
    }
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for FakeKubelet {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        if request.uri().path() == "/v1.PodResourcesLister/List" {
            let answer = self.answer.clone();
            Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<
                    ListPodResourcesResponse,
                    ListPodResourcesRequest,
                >::default());
                Ok(grpc.unary(List(answer), request).await)
            })
        } else {
            Box::pin(async { Ok(tonic::Status::unimplemented("no such method").into_http()) })
        }
    }
}

/// Serves `answer` on a unix socket at `socket` on a thread of its own, for the rest of the
/// test process.
fn start_fake_kubelet(socket: &Path, answer: ListPodResourcesResponse) {
    let listener = std::os::unix::net::UnixListener::bind(socket).unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::UnixListener::from_std(listener).unwrap();
            tonic::transport::Server::builder()
                .serve_with_incoming(
                    FakeKubelet { answer },
                    tokio_stream::wrappers::UnixListenerStream::new(listener),
                )
                .await
                .unwrap();
        });
    });
}

const GPU0: &str = "GPU-5a5c4d1e-1f9b-4a7d-9c1e-2b3f4a5b6c7d";
const GPU1: &str = "GPU-8d0f5e2a-3c4b-4e6f-a1b2-c3d4e5f60718";
const GPU2: &str = "GPU-1e2d3c4b-5a69-4788-97a6-b5c4d3e2f101";
const TRAINER_UID: &str = "3f1e5b7c-2a4d-4e6f-8a9b-0c1d2e3f4a5b";
const HELPER_UID: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
const CONTAINER: &str = "8c2f0e9d1b7a6c5e4d3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d";

/// The node of `four_gpus`: GPUs 0 and 1 given to ml/trainer-0's container `main`, GPU 2 as a
/// time-slicing replica to media/transcode (shared), GPU 3 to no one; every message carries
/// the fields `hmn` does not read.
fn node_answer() -> ListPodResourcesResponse {
    let topology = Some(TopologyInfo {
        nodes: vec![NumaNode { id: 1 }],
    });
    let memory = vec![ContainerMemory {
        memory_type: "hugepages-1Gi".into(),
        size: 1 << 30,
        topology: topology.clone(),
    }];
    let container = |name: &str, resource: &str, ids: &[&str]| ContainerResources {
        name: name.into(),
        devices: vec![
            ContainerDevices {
                resource_name: "example.com/nic".into(),
                device_ids: vec![GPU2.into()],
                topology: topology.clone(),
            },
            ContainerDevices {
                resource_name: resource.into(),
                device_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
                topology: topology.clone(),
            },
        ],
        cpu_ids: vec![2, 3],
        memory: memory.clone(),
        dynamic_resources: vec![DynamicResource {
            claim_name: "claim".into(),
            claim_namespace: "ml".into(),
            claim_resources: vec![ClaimResource {
                cdi_devices: vec![CdiDevice {
                    name: "example.com/dev=one".into(),
                }],
                driver_name: "example.com".into(),
                pool_name: "pool".into(),
                device_name: "dev-0".into(),
            }],
        }],
    };
    let pod = |namespace: &str, name: &str, containers| PodResources {
        name: name.into(),
        namespace: namespace.into(),
        containers,
        cpu_ids: vec![2, 3],
        memory: memory.clone(),
    };
    ListPodResourcesResponse {
        pod_resources: vec![
            pod(
                "ml",
                "trainer-0",
                vec![
                    container("main", "nvidia.com/gpu", &[GPU0, GPU1]),
                    container("sidecar", "nvidia.com/gpu", &[]),
                ],
            ),
            pod(
                "media",
                "transcode",
                vec![container(
                    "ffmpeg",
                    "nvidia.com/gpu.shared",
                    &[&format!("{GPU2}::1")],
                )],
            ),
            pod("kube-system", "coredns", vec![]),
        ],
    }
}

// ---------------------------------------------------------------------------------------------
// The server under test

/// A fixture `/proc` for `four_gpus`: pid 4030001 in trainer-0's container (systemd driver,
/// containerd), 4030002 in another pod (cgroupfs driver), ffmpeg (4030003) on the host.
fn fake_proc(root: &Path) {
    std::fs::write(
        root.join("meminfo"),
        "MemTotal:       65536000 kB\nMemFree:        1000000 kB\nMemAvailable:   32768000 kB\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("self")).unwrap();
    std::fs::write(root.join("self/cgroup"), "0::/\n").unwrap();
    std::fs::write(root.join("self/statm"), "1000 500 100 10 0 400 0\n").unwrap();
    let trainer = format!(
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CONTAINER}.scope\n",
        TRAINER_UID.replace('-', "_")
    );
    // cgroup v1: one line per hierarchy; the memory controller's path places it.
    let helper = format!(
        "12:memory:/kubepods/besteffort/pod{HELPER_UID}/{CONTAINER}\n1:name=systemd:/kubepods/besteffort/pod{HELPER_UID}/{CONTAINER}\n"
    );
    for (pid, comm, cgroup) in [
        (4_030_001, "python3", trainer),
        (4_030_002, "python3", helper),
        (
            4_030_003,
            "ffmpeg",
            "0::/system.slice/transcoder.service\n".to_owned(),
        ),
    ] {
        let dir = root.join(pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
        std::fs::write(dir.join("cgroup"), cgroup).unwrap();
        std::fs::write(
            dir.join("status"),
            format!("Name:\t{comm}\nPid:\t{pid}\nUid:\t0\t0\t0\t0\n"),
        )
        .unwrap();
    }
}

/// A running `hmn serve` on `four_gpus`, killed (by PID) and reaped on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(args: &[&std::ffi::OsStr]) -> Self {
        let scenario = test_support::nvml_scenario("four_gpus");
        let lib = test_support::nvml_double_for(&scenario).join("libnvidia-ml.so.1");
        let dir = tempfile::tempdir().unwrap();
        let proc_root = dir.path().join("proc");
        std::fs::create_dir(&proc_root).unwrap();
        fake_proc(&proc_root);
        let stderr = dir.path().join("stderr");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hmn"))
            .args(["serve", "--listen", "127.0.0.1:0", "--interval", "200ms"])
            .args(args)
            .env("HYPOMNESIS_NVML_LIB", lib)
            .env("NVML_DOUBLE_SCENARIO", &scenario)
            .env("HYPOMNESIS_NVIDIA_SMI", "/nonexistent/nvidia-smi")
            .env("HYPOMNESIS_PROC_ROOT", &proc_root)
            .env("HYPOMNESIS_SYS_ROOT", proc_root.join("sys"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let addr = test_support::serve_address(&mut child, &stderr);
        Self {
            child,
            addr,
            stderr,
            _dir: dir,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn scrape(&self) -> String {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        write!(
            stream,
            "GET /metrics HTTP/1.0\r\nHost: {}\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        let (head, body) = reply.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "{head}"
        );
        body.to_owned()
    }

    /// The first scrape for which `done` holds; fails with the last one and stderr after a
    /// generous bound.
    fn scrape_until(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let body = self.scrape();
            if done(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "no scrape showed {what}; last:\n{body}\nstderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The series of `family` (name with `{`), one per line, labels and value.
fn series<'a>(body: &'a str, family: &str) -> Vec<&'a str> {
    let prefix = format!("{family}{{");
    body.lines().filter(|l| l.starts_with(&prefix)).collect()
}

fn device(gpu: u32, uuid: &str) -> String {
    format!("gpu=\"{gpu}\",uuid=\"{uuid}\",name=\"NVIDIA H100 80GB HBM3\",vendor=\"nvidia\"")
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn devices_given_wholly_to_a_pod_carry_the_fake_kubelets_names_and_processes_their_pod_uid() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("kubelet.sock");
    start_fake_kubelet(&socket, node_answer());
    let server = Server::start(&[
        "--kubernetes".as_ref(),
        "--pod-resources-socket".as_ref(),
        socket.as_os_str(),
    ]);
    let body = server.scrape_until("pod labels", |b| b.contains("pod=\"trainer-0\""));
    let used = series(&body, "hypomnesis_gpu_memory_used_bytes");
    let labelled = |gpu, uuid| {
        format!(
            "hypomnesis_gpu_memory_used_bytes{{{},namespace=\"ml\",pod=\"trainer-0\",container=\"main\"}} ",
            device(gpu, uuid)
        )
    };
    assert!(used[0].starts_with(&labelled(0, GPU0)), "{body}");
    assert!(used[1].starts_with(&labelled(1, GPU1)), "{body}");
    // GPU 2 is a time-slicing replica (shared), GPU 3 is given to no one: no pod labels.
    assert!(
        used[2].starts_with(&format!(
            "hypomnesis_gpu_memory_used_bytes{{{}}} ",
            device(2, GPU2)
        )),
        "{body}"
    );
    assert!(!used[3].contains("pod="), "{body}");
    assert_eq!(used.len(), 4, "{body}");

    let processes = series(&body, "hypomnesis_gpu_process_memory_bytes");
    let trainer = format!("pod_uid=\"{TRAINER_UID}\",container_id=\"containerd://{CONTAINER}\"}} ");
    let of = |gpu: u32, pid: u32| {
        processes
            .iter()
            .find(|l| l.contains(&format!("{{gpu=\"{gpu}\",pid=\"{pid}\"")))
            .unwrap_or_else(|| panic!("no series for pid {pid} on GPU {gpu}:\n{body}"))
    };
    assert!(of(0, 4_030_001).contains(&trainer), "{body}");
    assert!(of(1, 4_030_001).contains(&trainer), "{body}");
    // cgroupfs driver: the pod, but not the runtime of the bare container id.
    assert!(
        of(0, 4_030_002).ends_with(&format!(",pod_uid=\"{HELPER_UID}\"}} 8589934592")),
        "{body}"
    );
    assert!(!of(2, 4_030_003).contains("pod_uid"), "{body}");

    for (line, value) in [
        (
            "hypomnesis_kubernetes_unattributed_devices{reason=\"shared\"}",
            "1",
        ),
        (
            "hypomnesis_kubernetes_unattributed_devices{reason=\"mig_split\"}",
            "0",
        ),
        (
            "hypomnesis_kubernetes_unattributed_devices{reason=\"no_pod_resources_answer\"}",
            "0",
        ),
        (
            "hypomnesis_kubernetes_unattributed_processes{reason=\"not_in_a_pod\"}",
            "1",
        ),
        (
            "hypomnesis_kubernetes_unattributed_processes{reason=\"cgroup_unknown\"}",
            "0",
        ),
        ("hypomnesis_kubernetes_pod_resources_errors_total", "0"),
    ] {
        assert!(
            body.contains(&format!("\n{line} {value}\n")),
            "{line}:\n{body}"
        );
    }
    assert!(
        body.contains("\nhypomnesis_kubernetes_pod_resources_age_seconds "),
        "{body}"
    );
    assert!(
        server
            .stderr()
            .contains("kubelet pod-resources: 3 pods, 3 NVIDIA device ids given to containers"),
        "{}",
        server.stderr()
    );
}

#[test]
fn without_a_kubelet_socket_serve_says_so_counts_it_and_serves_unlabelled_series() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("absent.sock");
    let server = Server::start(&[
        "--kubernetes".as_ref(),
        "--pod-resources-socket".as_ref(),
        socket.as_os_str(),
    ]);
    let body = server.scrape_until("a failed List counted", |b| {
        b.contains("\nhypomnesis_kubernetes_pod_resources_errors_total ")
            && !b.contains("\nhypomnesis_kubernetes_pod_resources_errors_total 0\n")
            && b.contains("hypomnesis_gpu_memory_used_bytes{")
    });
    assert_eq!(series(&body, "hypomnesis_gpu_memory_used_bytes").len(), 4);
    assert!(!body.contains("pod="), "{body}");
    assert!(
        body.contains(
            "\nhypomnesis_kubernetes_unattributed_devices{reason=\"no_pod_resources_answer\"} 4\n"
        ),
        "{body}"
    );
    assert!(
        !body.contains("hypomnesis_kubernetes_pod_resources_age_seconds"),
        "{body}"
    );
    // Processes still get their pod UID: the cgroup needs no kubelet.
    assert!(
        body.contains(&format!("pod_uid=\"{TRAINER_UID}\"")),
        "{body}"
    );
    let stderr = server.stderr();
    let said = format!("no kubelet pod-resources socket at {}", socket.display());
    assert_eq!(stderr.matches(&said).count(), 1, "{stderr}");
}

/// A kubelet that accepts the connection and never answers: the call times out on the
/// kubelet thread while scrapes keep answering with fresh samples.
#[test]
fn a_kubelet_that_never_answers_is_timed_out_and_never_holds_up_scrapes() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("kubelet.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let server = Server::start(&[
        "--kubernetes".as_ref(),
        "--pod-resources-socket".as_ref(),
        socket.as_os_str(),
    ]);
    let first = server.scrape_until("a sample", |b| {
        b.contains("hypomnesis_gpu_memory_used_bytes{")
    });
    assert!(
        first.contains("reason=\"no_pod_resources_answer\"} 4"),
        "{first}"
    );
    server.scrape_until("the timed-out List counted", |b| {
        b.contains("\nhypomnesis_kubernetes_pod_resources_errors_total 1\n")
    });
    assert!(
        server
            .stderr()
            .contains("the kubelet did not answer List within 5.0 s"),
        "{}",
        server.stderr()
    );
}

#[test]
fn job_mapping_files_label_their_gpus_and_processes_keeping_one_series_each() {
    let jobs = tempfile::tempdir().unwrap();
    std::fs::write(jobs.path().join("0"), "4242\n").unwrap();
    std::fs::write(jobs.path().join("2"), "7\n8\n").unwrap();
    std::fs::write(jobs.path().join("README"), "not a mapping\n").unwrap();
    let server = Server::start(&["--job-mapping-dir".as_ref(), jobs.path().as_os_str()]);
    let body = server.scrape_until("job labels", |b| b.contains("hpc_job="));
    let used = series(&body, "hypomnesis_gpu_memory_used_bytes");
    let has = |gpu: u32, uuid: &str, job: &str| {
        let prefix = format!(
            "hypomnesis_gpu_memory_used_bytes{{{},hpc_job=\"{job}\"}} ",
            device(gpu, uuid)
        );
        used.iter().any(|l| l.starts_with(&prefix))
    };
    assert!(has(0, GPU0, "4242"), "{body}");
    assert!(has(2, GPU2, "7,8"), "{body}");
    assert_eq!(used.len(), 4, "{body}");
    assert!(
        !used
            .iter()
            .any(|l| l.contains("gpu=\"1\"") && l.contains("hpc_job")),
        "{body}"
    );
    let processes = series(&body, "hypomnesis_gpu_process_memory_bytes");
    let on = |gpu: u32, job: &str| {
        processes
            .iter()
            .filter(|l| {
                l.starts_with(&format!(
                    "hypomnesis_gpu_process_memory_bytes{{gpu=\"{gpu}\","
                ))
            })
            .filter(|l| l.contains(&format!("hpc_job=\"{job}\"")))
            .count()
    };
    assert_eq!(on(0, "4242"), 2, "{body}");
    assert_eq!(on(2, "7,8"), 1, "{body}");
    // Without --kubernetes there are no Kubernetes families.
    assert!(!body.contains("hypomnesis_kubernetes_"), "{body}");
}

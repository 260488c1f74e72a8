//! The fleet: many machines' memory, read back from the monitoring engines people already run.
//!
//! Operators of many GPU nodes ask "which node has 40 GiB free on some GPU now?" and "who
//! holds memory across the cluster?". They already run Prometheus, and on each node an
//! exporter (`hmn serve`, NVIDIA's dcgm-exporter, all-smi). So the fleet view speaks no
//! protocol of its own: it scrapes the exporters' `/metrics` directly (`--hosts`,
//! `--hostfile`, `--targets-from`), or asks a Prometheus server (`--prometheus`). Every source
//! ends in one model, [`Fleet`] → [`Node`] → [`NodeDevice`] / [`NodeProcess`], which the
//! fleet forms of `hmn`, `ps`, `fits` and `top` read, so each says the same about a node.
//!
//! A node is **up** when it answered with a fresh sample, **stale** when it answered but its
//! sample is older than three of its intervals, and **down** when it did not answer in time
//! or answered with something unreadable; each state has its reason. A stale or down node
//! never delays the others: every node is read at once (up to [`CollectOptions::concurrency`])
//! under one [`CollectOptions::timeout`].
//!
//! Unknown figures stay `None`, as everywhere in hmn: an exporter that does not export a
//! figure (dcgm-exporter has no reserved memory, no host memory) leaves it unknown, never 0.
//!
//! The network code (an HTTP client on tokio and hyper, the text-format parser) is behind the
//! `fleet` feature; without it, [`collect`] says how to get it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::cli::FleetArgs;

pub mod exposition;
pub mod hosts;
#[cfg(feature = "fleet")]
pub mod http;
#[cfg(feature = "fleet")]
pub mod prometheus;
#[cfg(feature = "fleet")]
pub mod targets;

/// Where a fleet is read from, as the command line names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Exporters' `/metrics` endpoints, scraped directly (`--hosts`, `--hostfile`).
    Hosts(Vec<Target>),
    /// The targets a Prometheus server scrapes (its `/api/v1/targets`), then scraped directly
    /// (`--targets-from`).
    TargetsFrom { server: String },
    /// Instant queries to a Prometheus server (`--prometheus`, `--selector`).
    Prometheus {
        server: String,
        /// A label matcher added to every query: `{cluster="a"}`.
        selector: Option<String>,
    },
}

/// One endpoint to scrape, with the labels its list gave it (a `file_sd` group's `labels`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The `/metrics` URL (a bare `host:port` is completed to `http://host:port/metrics`).
    pub url: String,
    /// Labels from the target list (`file_sd`), e.g. `node`, `cluster`.
    pub labels: BTreeMap<String, String>,
}

/// How a fleet is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectOptions {
    /// How long one node (or one Prometheus query) may take before it counts as down.
    pub timeout: Duration,
    /// How many nodes are read at once.
    pub concurrency: usize,
}

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            timeout: Duration::from_secs(2),
            concurrency: 64,
        }
    }
}

/// Many machines, as one source saw them at one time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fleet {
    /// What was read: `hosts`, `targets-from http://prom:9090`, `prometheus http://prom:9090`.
    pub source: String,
    /// When the read finished.
    #[serde(rename = "taken_at_unix_ms", serialize_with = "unix_ms")]
    pub taken_at: SystemTime,
    /// Every node the source named, up or not, by name.
    pub nodes: Vec<Node>,
    /// What the reader has to say about the whole fleet (a Prometheus warning, a series it
    /// could not place on a node).
    pub notes: Vec<String>,
}

/// A time as milliseconds since the Unix epoch (0 for a clock before it).
fn unix_ms<S: serde::Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let ms = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    s.serialize_u64(ms)
}

/// Now, in milliseconds since the Unix epoch (0 for a clock before it).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A duration as whole milliseconds, or `null`.
fn opt_ms<S: serde::Serializer>(duration: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match duration {
        Some(d) => s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        None => s.serialize_none(),
    }
}

/// Whether a node's figures can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Answered with a sample younger than three of its intervals.
    Up,
    /// Answered, but its sample is older than three of its intervals: its figures are shown,
    /// marked, and never counted as free room.
    Stale,
    /// Did not answer in time, or answered with something unreadable: no figures.
    Down,
}

/// Which exporter a node's figures came from: the fields each one has differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Exporter {
    /// `hmn serve`.
    #[serde(rename = "hmn-serve")]
    Hypomnesis,
    /// NVIDIA's dcgm-exporter (`DCGM_FI_*` series; memory in MiB).
    #[serde(rename = "dcgm-exporter")]
    Dcgm,
    /// all-smi's `api` mode.
    #[serde(rename = "all-smi")]
    AllSmi,
}

/// One machine of the fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    /// How the node is shown: its `node`/`hostname` label, else the `instance` (`host:port`).
    pub name: String,
    /// The URL scraped, or the Prometheus `instance` label.
    pub endpoint: String,
    pub state: NodeState,
    /// Why the node is stale or down, in words that say what to do.
    pub reason: Option<String>,
    /// Which exporter answered; `None` when the node is down before anything was read.
    pub exporter: Option<Exporter>,
    /// The age of the node's sample when it was read.
    #[serde(rename = "age_ms", serialize_with = "opt_ms")]
    pub age: Option<Duration>,
    /// How often the node samples, when its exporter says.
    #[serde(rename = "interval_ms", serialize_with = "opt_ms")]
    pub interval: Option<Duration>,
    /// Host memory, when the exporter has it (`hmn serve` does).
    pub host: NodeHost,
    /// Every GPU (and MIG instance) of the node, by index.
    pub devices: Vec<NodeDevice>,
    /// Every GPU process of the node, by (GPU, pid); empty when the exporter exports none.
    pub processes: Vec<NodeProcess>,
    /// Labels the target list or Prometheus gave the node (`cluster`, `node`).
    pub labels: BTreeMap<String, String>,
}

/// A node's host memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeHost {
    pub total_bytes: Option<u64>,
    pub available_bytes: Option<u64>,
}

/// Where a MIG instance sits on its GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigPlacement {
    pub gpu_instance: u32,
    pub compute_instance: Option<u32>,
    /// The profile, `3g.40gb`.
    pub profile: Option<String>,
}

/// The Kubernetes pod a device or process belongs to, as the exporter labelled it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PodRef {
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
}

/// One GPU, or one MIG instance of a GPU, of a node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeDevice {
    /// The GPU's index on its node (a MIG instance has its parent GPU's index).
    pub index: u32,
    /// `Some` for a MIG instance of GPU `index`.
    pub mig: Option<MigPlacement>,
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub vendor: Option<String>,
    pub total_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    pub reserved_bytes: Option<u64>,
    /// What a new allocation can still get, when the exporter says (`hmn serve`'s
    /// `hypomnesis_gpu_memory_budget_bytes`); else [`NodeDevice::room_bytes`] falls back to free.
    pub budget_bytes: Option<u64>,
    /// GPU utilization, 0..=1.
    pub utilization_ratio: Option<f64>,
    pub temperature_celsius: Option<f64>,
    pub power_watts: Option<f64>,
    pub pod: Option<PodRef>,
}

impl NodeDevice {
    /// What a new allocation can get on this device: the budget when known, else free.
    pub fn room_bytes(&self) -> Option<u64> {
        self.budget_bytes.or(self.free_bytes)
    }
}

/// One GPU process of a node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeProcess {
    /// The GPU index on its node.
    pub gpu: u32,
    pub pid: u32,
    pub name: Option<String>,
    pub user: Option<String>,
    /// `compute`, `graphics`, … as the exporter labels it.
    pub kind: Option<String>,
    pub used_bytes: Option<u64>,
    /// GPU buffers in system RAM (GTT, shared).
    pub system_bytes: Option<u64>,
    pub pod: Option<PodRef>,
}

impl Node {
    /// A node that did not answer, and why.
    pub fn down(name: String, endpoint: String, reason: String) -> Node {
        Node {
            name,
            endpoint,
            state: NodeState::Down,
            reason: Some(reason),
            exporter: None,
            age: None,
            interval: None,
            host: NodeHost::default(),
            devices: Vec::new(),
            processes: Vec::new(),
            labels: BTreeMap::new(),
        }
    }

    /// The most room on one device of this node, when any device's is known.
    pub fn largest_room(&self) -> Option<u64> {
        self.devices.iter().filter_map(NodeDevice::room_bytes).max()
    }

    /// The room of all whole GPUs of this node (MIG instances are inside their GPU's figure),
    /// when every whole GPU's is known; `None` for a node with no GPU listed (a down node, or
    /// an exporter with no device series), which has no room rather than zero.
    pub fn total_room(&self) -> Option<u64> {
        let mut whole = self.devices.iter().filter(|d| d.mig.is_none()).peekable();
        whole.peek()?;
        whole.map(NodeDevice::room_bytes).sum()
    }
}

/// Why a fleet could not be read at all (a node that cannot be read is a down [`Node`], not
/// an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetError {
    /// The command line's source is unusable: a hostfile that cannot be read or parsed, a
    /// URL that is no URL. Says what was wrong and what to do.
    BadSource(String),
    /// The Prometheus server refused or failed the query (400, 422, 503…), or could not be
    /// reached. Says what it answered and what to do.
    Prometheus(String),
    /// This hmn was built without the `fleet` feature.
    NotBuilt,
}

impl fmt::Display for FleetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FleetError::BadSource(why) | FleetError::Prometheus(why) => f.write_str(why),
            FleetError::NotBuilt => f.write_str(
                "this hmn was built without the `fleet` feature: rebuild it with \
                 `cargo install --locked --path crates/hmn` (the feature is on by default)",
            ),
        }
    }
}

impl std::error::Error for FleetError {}

impl Source {
    /// The source the command line names, if any: `None` when no fleet flag was given (the
    /// command reads this machine). A hostfile is read here, so a bad one is an error before
    /// any node is contacted.
    pub fn from_args(args: &FleetArgs) -> Option<Result<Source, FleetError>> {
        if let Some(server) = &args.prometheus {
            return Some(Ok(Source::Prometheus {
                server: server.clone(),
                selector: args.selector.clone(),
            }));
        }
        if let Some(server) = &args.targets_from {
            return Some(Ok(Source::TargetsFrom {
                server: server.clone(),
            }));
        }
        if args.hosts.is_empty() && args.hostfile.is_none() {
            return None;
        }
        let mut targets = match hosts::targets_of_hosts(&args.hosts) {
            Ok(targets) => targets,
            Err(e) => return Some(Err(e)),
        };
        if let Some(path) = &args.hostfile {
            match read_hostfile(path) {
                Ok(more) => targets.extend(more),
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok(Source::Hosts(targets)))
    }
}

/// The targets of a hostfile: one URL or `host:port` a line (`#` comments, blank lines), or
/// Prometheus `file_sd` JSON (`[{"targets": [...], "labels": {...}}]`); each completed to
/// `http://host:port/metrics`. A file that cannot be read or parsed is
/// [`FleetError::BadSource`] naming the file, the line and what to do.
pub fn read_hostfile(path: &Path) -> Result<Vec<Target>, FleetError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        FleetError::BadSource(format!(
            "--hostfile {}: cannot read it ({e}); give a readable file of host:port lines or \
             file_sd JSON",
            path.display()
        ))
    })?;
    hosts::parse_hostfile(&text, path)
}

/// Reads the fleet `source` names: every node at once (up to `options.concurrency`), each
/// bounded by `options.timeout`, so a dead node costs one timeout and delays no other. A
/// node that cannot be read is a down [`Node`] with its reason; `Err` only when the source
/// itself fails (a Prometheus server that refuses or does not answer).
pub fn collect(source: &Source, options: &CollectOptions) -> Result<Fleet, FleetError> {
    #[cfg(feature = "fleet")]
    {
        match source {
            Source::Hosts(targets) => {
                let nodes = http::run(async {
                    let client = http::HttpClient::new(options.timeout, options.concurrency);
                    hosts::scrape_all(&client, targets).await
                })
                .map_err(FleetError::BadSource)?;
                Ok(Fleet {
                    source: "hosts".to_owned(),
                    taken_at: SystemTime::now(),
                    nodes,
                    notes: Vec::new(),
                })
            }
            Source::TargetsFrom { server } => targets::collect(server, options),
            Source::Prometheus { server, selector } => {
                prometheus::collect(server, selector.as_deref(), options)
            }
        }
    }
    #[cfg(not(feature = "fleet"))]
    {
        let _ = (source, options);
        Err(FleetError::NotBuilt)
    }
}

#[cfg(all(test, feature = "fleet"))]
mod tests;

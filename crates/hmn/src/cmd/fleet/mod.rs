//! The fleet forms of the summary, `ps` and `fits`: the same questions as on one machine
//! ("what is there?", "who holds memory?", "where does SIZE fit?"), asked of many.
//!
//! Each view reads one [`Fleet`] (from exporters' `/metrics` or a Prometheus server, see
//! [`crate::fleet`]) and shows every node the source named, whatever its state: an **up**
//! node's figures count; a **stale** node's are shown, marked, and never counted as room; a
//! **down** node has no figures and is listed with the reason. Unknown figures print as `n/a`
//! (`?` for a count) and `null` in JSON, never 0. One module per view; what they share (reading
//! the fleet, the states, the footer of nodes that were not up) is here.

pub(crate) mod fits;
pub(crate) mod ps;
pub(crate) mod summary;

use std::time::Duration;

use serde::Serialize;

use crate::cli::FleetArgs;
use crate::fleet::{self, CollectOptions, Fleet, Node, NodeState, Source};
use crate::outcome::Outcome;
use crate::output::Output;
use crate::text::Shown;

/// How long one node may take when `--fleet-timeout` is not given.
pub const DEFAULT_FLEET_TIMEOUT: Duration = Duration::from_secs(2);

/// How many nodes are read at once.
pub const CONCURRENCY: usize = 64;

/// The fleet `args` name, read; `None` when they name none (the command reads this machine).
/// A fleet that cannot be read at all (a bad hostfile, a Prometheus error) is said on stderr
/// and ends in [`Outcome::CouldNotTell`].
pub fn read(args: &FleetArgs, out: &Output) -> Option<Result<Fleet, Outcome>> {
    let source = match Source::from_args(args)? {
        Ok(source) => source,
        Err(e) => {
            out.say(&Shown(&e.to_string()).to_string());
            return Some(Err(Outcome::CouldNotTell));
        }
    };
    let options = CollectOptions {
        timeout: args.fleet_timeout.unwrap_or(DEFAULT_FLEET_TIMEOUT),
        concurrency: CONCURRENCY,
    };
    Some(fleet::collect(&source, &options).map_err(|e| {
        out.say(&Shown(&e.to_string()).to_string());
        Outcome::CouldNotTell
    }))
}

/// `up`, `stale`, `down`: as JSON spells the state.
pub fn state_word(state: NodeState) -> &'static str {
    match state {
        NodeState::Up => "up",
        NodeState::Stale => "stale",
        NodeState::Down => "down",
    }
}

/// A node's sample age for people (`1.20 s`), `n/a` when unknown.
pub fn age_text(age: Option<Duration>) -> String {
    age.map_or_else(
        || "n/a".to_owned(),
        |a| crate::time::seconds(crate::time::millis(a)),
    )
}

/// A node that was not up, as the JSON of every view lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NodeNotUp {
    pub node: String,
    pub endpoint: String,
    /// `stale` or `down`.
    pub state: &'static str,
    pub reason: Option<String>,
}

impl NodeNotUp {
    fn of(node: &Node) -> Self {
        Self {
            node: node.name.clone(),
            endpoint: node.endpoint.clone(),
            state: state_word(node.state),
            reason: node.reason.clone(),
        }
    }
}

/// The nodes of `fleet` in `state`.
pub fn nodes_in(fleet: &Fleet, state: NodeState) -> Vec<NodeNotUp> {
    fleet
        .nodes
        .iter()
        .filter(|n| n.state == state)
        .map(NodeNotUp::of)
        .collect()
}

/// The lines after a listing naming the nodes whose figures it does not count: `stale: …`
/// (shown, not counted) and `down: …` (no figures), each with its reason; empty when every
/// node is up. Escaped: endpoints and reasons come from the network.
pub fn footer(fleet: &Fleet) -> String {
    let mut text = String::new();
    for node in &fleet.nodes {
        let what = match node.state {
            NodeState::Up => continue,
            NodeState::Stale => "stale (shown, not counted)",
            NodeState::Down => "down",
        };
        text.push_str(&format!(
            "{what}: {} ({}): {}\n",
            Shown(&node.name),
            Shown(&node.endpoint),
            Shown(node.reason.as_deref().unwrap_or("no reason given"))
        ));
    }
    text
}

/// The fleet's own notes, on stderr.
pub fn say_notes(fleet: &Fleet, out: &Output) {
    for note in &fleet.notes {
        out.say(&Shown(note).to_string());
    }
}

#[cfg(test)]
pub(crate) mod test_fleet {
    //! Fleets built by hand for the views' tests: three nodes shaped like real ones.

    use std::collections::BTreeMap;
    use std::time::{Duration, SystemTime};

    use crate::fleet::{
        Exporter, Fleet, MigPlacement, Node, NodeDevice, NodeHost, NodeProcess, NodeState, PodRef,
    };

    pub const GIB: u64 = 1 << 30;

    pub fn gpu(index: u32, total: u64, free: Option<u64>) -> NodeDevice {
        NodeDevice {
            index,
            mig: None,
            uuid: Some(format!("GPU-{index:04}")),
            name: Some("NVIDIA H100 80GB HBM3".into()),
            vendor: Some("nvidia".into()),
            total_bytes: Some(total),
            used_bytes: free.map(|f| total - f),
            free_bytes: free,
            reserved_bytes: None,
            budget_bytes: None,
            utilization_ratio: None,
            temperature_celsius: None,
            power_watts: None,
            pod: None,
        }
    }

    pub fn mig(index: u32, gi: u32, total: u64, free: u64) -> NodeDevice {
        NodeDevice {
            mig: Some(MigPlacement {
                gpu_instance: gi,
                compute_instance: Some(0),
                profile: Some("3g.40gb".into()),
            }),
            uuid: Some(format!("MIG-{index}-{gi}")),
            ..gpu(index, total, Some(free))
        }
    }

    pub fn process(gpu: u32, pid: u32, name: &str, used: u64) -> NodeProcess {
        NodeProcess {
            gpu,
            pid,
            name: Some(name.into()),
            user: Some("alice".into()),
            kind: Some("compute".into()),
            used_bytes: Some(used),
            system_bytes: None,
            pod: None,
        }
    }

    pub fn node(name: &str, state: NodeState, devices: Vec<NodeDevice>) -> Node {
        Node {
            name: name.into(),
            endpoint: format!("http://{name}:9464/metrics"),
            state,
            reason: (state == NodeState::Stale)
                .then(|| "sample 31 s old, its interval is 5 s".to_owned()),
            exporter: Some(Exporter::Hypomnesis),
            age: Some(Duration::from_millis(1200)),
            interval: Some(Duration::from_secs(5)),
            host: NodeHost {
                total_bytes: Some(512 * GIB),
                available_bytes: Some(400 * GIB),
            },
            devices,
            processes: Vec::new(),
            labels: BTreeMap::new(),
        }
    }

    /// `gpu-a`: two H100s, 70 and 30 GiB free, a process with a pod; `gpu-b`: an H100 in MIG
    /// mode (instances of 40 GiB with 39.5 and 10 GiB free) and a whole one with 45 GiB free;
    /// `gpu-c`: stale, 79 GiB free; `gpu-d`: down.
    pub fn fleet() -> Fleet {
        let mut a = node(
            "gpu-a",
            NodeState::Up,
            vec![
                gpu(0, 80 * GIB, Some(70 * GIB)),
                gpu(1, 80 * GIB, Some(30 * GIB)),
            ],
        );
        let mut trainer = process(1, 4242, "python3", 50 * GIB);
        trainer.pod = Some(PodRef {
            namespace: Some("ml".into()),
            pod: Some("trainer-0".into()),
            container: Some("main".into()),
        });
        a.processes = vec![process(0, 17, "vllm", 10 * GIB), trainer];
        let mut b = node(
            "gpu-b",
            NodeState::Up,
            vec![
                gpu(0, 80 * GIB, Some(50 * GIB)),
                mig(0, 1, 40 * GIB, 39 * GIB + GIB / 2),
                mig(0, 2, 40 * GIB, 10 * GIB),
                gpu(1, 80 * GIB, Some(45 * GIB)),
            ],
        );
        b.processes = vec![process(0, 99, "infer", 30 * GIB)];
        let mut c = node(
            "gpu-c",
            NodeState::Stale,
            vec![gpu(0, 80 * GIB, Some(79 * GIB))],
        );
        c.processes = vec![process(0, 5, "old", GIB)];
        let d = Node::down(
            "gpu-d".into(),
            "http://gpu-d:9464/metrics".into(),
            "no answer within 2 s".into(),
        );
        Fleet {
            source: "hosts".into(),
            taken_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            nodes: vec![a, b, c, d],
            notes: Vec::new(),
        }
    }
}

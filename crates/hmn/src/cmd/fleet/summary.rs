//! `hmn --hosts…|--prometheus…`: one line per node.
//!
//! What an operator scans first: how many GPUs each node has, the most room on one of them
//! (where the next job could go), the room of all of them, the host memory available, how old
//! the node's sample is, and its state with the reason when it is not up. Room is what a new
//! allocation can get ([`crate::fleet::NodeDevice::room_bytes`]: the exporter's budget, else
//! free); MIG instances are inside their GPU's total and not counted as GPUs. A down node's
//! figures are unknown (`?`, `n/a`; `null` in JSON), never 0. Exit 0 when a node was read, 2
//! when none was.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::fleet::{Exporter, Fleet, Node, NodeState};
use crate::outcome::Outcome;
use crate::output::Output;
use crate::size::format_optional;
use crate::table::{Align, Table};
use crate::text::Shown;

use super::fits::unix_ms;
use super::{age_text, say_notes, state_word};

/// One node as the summary shows it (`docs/json.md`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeLine {
    pub name: String,
    pub endpoint: String,
    pub state: &'static str,
    pub reason: Option<String>,
    pub exporter: Option<Exporter>,
    pub age_ms: Option<u64>,
    pub interval_ms: Option<u64>,
    /// Whole GPUs (MIG instances are inside them); `null` for a down node.
    pub gpus: Option<usize>,
    /// MIG GPU instances (each once, however many compute instances it has).
    pub mig_instances: Option<usize>,
    pub largest_free_bytes: Option<u64>,
    pub total_free_bytes: Option<u64>,
    pub host_total_bytes: Option<u64>,
    pub host_available_bytes: Option<u64>,
    pub labels: BTreeMap<String, String>,
}

impl NodeLine {
    pub fn of(node: &Node) -> Self {
        let down = node.state == NodeState::Down;
        Self {
            name: node.name.clone(),
            endpoint: node.endpoint.clone(),
            state: state_word(node.state),
            reason: node.reason.clone(),
            exporter: node.exporter,
            age_ms: node.age.map(crate::time::millis),
            interval_ms: node.interval.map(crate::time::millis),
            gpus: (!down).then(|| node.devices.iter().filter(|d| d.mig.is_none()).count()),
            mig_instances: (!down).then(|| {
                super::fits::candidates(node)
                    .filter(|d| d.mig.is_some())
                    .count()
            }),
            // Where one allocation can go: a GPU in MIG mode is not, its instances are.
            largest_free_bytes: super::fits::candidates(node)
                .filter_map(crate::fleet::NodeDevice::room_bytes)
                .max(),
            // (A down node has no devices, whose sum would read 0.)
            total_free_bytes: node.total_room().filter(|_| !down),
            host_total_bytes: node.host.total_bytes,
            host_available_bytes: node.host.available_bytes,
            labels: node.labels.clone(),
        }
    }
}

/// `hmn --json` with a fleet.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FleetSummary {
    pub source: String,
    pub taken_at_unix_ms: u64,
    pub nodes: Vec<NodeLine>,
    pub notes: Vec<String>,
}

/// The lines, one per node in the source's order.
pub fn lines(fleet: &Fleet) -> FleetSummary {
    FleetSummary {
        source: fleet.source.clone(),
        taken_at_unix_ms: unix_ms(fleet.taken_at),
        nodes: fleet.nodes.iter().map(NodeLine::of).collect(),
        notes: fleet.notes.clone(),
    }
}

/// The table: NODE, GPUS, LARGEST FREE, TOTAL FREE, HOST AVAIL, AGE, STATE (with the reason).
pub fn render(summary: &FleetSummary, width: Option<usize>) -> String {
    let mut table = Table::new(vec![
        ("NODE", Align::Left),
        ("GPUS", Align::Right),
        ("LARGEST FREE", Align::Right),
        ("TOTAL FREE", Align::Right),
        ("HOST AVAIL", Align::Right),
        ("AGE", Align::Right),
        ("STATE", Align::Left),
    ])
    .flexible("NODE", 12)
    .flexible("STATE", 12)
    .optional("HOST AVAIL", 0)
    .optional("AGE", 1);
    for n in &summary.nodes {
        let gpus = match (n.gpus, n.mig_instances) {
            (None, _) => "?".to_owned(),
            (Some(g), Some(m)) if m > 0 => format!("{g} ({m} MIG)"),
            (Some(g), _) => g.to_string(),
        };
        let state = match &n.reason {
            Some(reason) => format!("{}: {reason}", n.state),
            None => n.state.to_owned(),
        };
        table.push(vec![
            n.name.clone(),
            gpus,
            format_optional(n.largest_free_bytes),
            format_optional(n.total_free_bytes),
            format_optional(n.host_available_bytes),
            age_text(n.age_ms.map(std::time::Duration::from_millis)),
            state,
        ]);
    }
    table.render_within(width)
}

/// `hmn` over `fleet`.
pub fn run(fleet: &Fleet, json: bool, wide: bool, out: &Output) -> Outcome {
    let summary = lines(fleet);
    if json {
        out.json(&summary);
    } else {
        out.data(&render(&summary, crate::output::table_width(wide)));
    }
    say_notes(fleet, out);
    let read = fleet
        .nodes
        .iter()
        .filter(|n| n.state != NodeState::Down)
        .count();
    if read == 0 {
        out.say(&format!(
            "no node of {} could be read ({} named)",
            Shown(&fleet.source),
            fleet.nodes.len()
        ));
        return Outcome::CouldNotTell;
    }
    Outcome::Success
}

#[cfg(test)]
mod tests {
    use super::super::test_fleet::fleet;
    use super::*;
    use crate::cli::ColorChoice;

    #[test]
    fn one_line_per_node_with_room_host_age_and_state() {
        let text = render(&lines(&fleet()), None);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(
            lines[0],
            "NODE        GPUS  LARGEST FREE  TOTAL FREE  HOST AVAIL     AGE  STATE"
        );
        assert_eq!(
            lines[1],
            "gpu-a          2      70.0 GiB   100.0 GiB   400.0 GiB  1.20 s  up"
        );
        assert_eq!(
            lines[2], "gpu-b  2 (2 MIG)      45.0 GiB    95.0 GiB   400.0 GiB  1.20 s  up",
            "the largest free is where one allocation can go: not a GPU in MIG mode"
        );
        assert!(
            lines[3].ends_with("stale: sample 31 s old, its interval is 5 s"),
            "{text}"
        );
        assert_eq!(
            lines[4],
            "gpu-d          ?           n/a         n/a         n/a     n/a  down: no answer within 2 s"
        );
    }

    #[test]
    fn no_node_read_exits_2() {
        let mut f = fleet();
        f.nodes.retain(|n| n.state == NodeState::Down);
        assert_eq!(
            run(&f, true, false, &Output::new(ColorChoice::Never)),
            Outcome::CouldNotTell
        );
    }

    #[test]
    fn the_json_has_exactly_the_documented_fields() {
        use test_support::json_docs::{documented, emitted};
        let value = serde_json::to_value(lines(&fleet())).unwrap();
        assert_eq!(emitted(&value), documented("Fleets", "`hmn --json`"));
        assert_eq!(value["nodes"][3]["gpus"], serde_json::Value::Null);
        assert_eq!(
            value["nodes"][3]["largest_free_bytes"],
            serde_json::Value::Null
        );
    }
}

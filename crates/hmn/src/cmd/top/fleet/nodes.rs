//! The node list: its columns, its order, its filter, and why a figure is `?`.
//!
//! Why apart from drawing: the list and the heat grid show the same nodes in the same order,
//! the keys move through that order, and tests check it without a terminal.
//!
//! Free room is counted on up nodes only: a stale node's figures are shown (marked) but are
//! old, and a down node has none, so sorting by free memory puts every up node with a known
//! figure first and the rest after, by name, in either direction — "largest free first" is
//! where a job fits now.

use std::cmp::Ordering;

use crate::fleet::{Exporter, Fleet, Node, NodeState};

/// A column of the node list, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum NodeColumn {
    Node,
    State,
    Gpus,
    LargestFree,
    TotalFree,
    HostAvail,
    Age,
}

impl NodeColumn {
    /// Every column, left to right.
    pub(crate) const ALL: [Self; 7] = [
        Self::Node,
        Self::State,
        Self::Gpus,
        Self::LargestFree,
        Self::TotalFree,
        Self::HostAvail,
        Self::Age,
    ];

    pub(crate) const fn title(self) -> &'static str {
        match self {
            Self::Node => "NODE",
            Self::State => "STATE",
            Self::Gpus => "GPUS",
            Self::LargestFree => "LARGEST FREE",
            Self::TotalFree => "TOTAL FREE",
            Self::HostAvail => "HOST AVAIL",
            Self::Age => "AGE",
        }
    }

    /// Which way a column sorts when first chosen: room largest first, names and states in
    /// reading order (up before stale before down), ages youngest first.
    pub(crate) const fn default_descending(self) -> bool {
        matches!(
            self,
            Self::Gpus | Self::LargestFree | Self::TotalFree | Self::HostAvail
        )
    }

    pub(crate) fn position(self) -> usize {
        Self::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }
}

/// The list's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NodeSort {
    pub(crate) column: NodeColumn,
    pub(crate) descending: bool,
}

impl Default for NodeSort {
    /// Largest free first.
    fn default() -> Self {
        Self {
            column: NodeColumn::LargestFree,
            descending: true,
        }
    }
}

/// What `/` keeps: every word must match, a word being a state (`up`, `stale`, `down`,
/// `state=down`) or a piece of the node's name or endpoint (case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeFilter {
    words: Vec<Word>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Word {
    State(NodeState),
    Text(String),
}

impl NodeFilter {
    /// The filter `text` says; `None` for blank text (everything).
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let words: Vec<Word> = text
            .split_whitespace()
            .map(|w| {
                let w = w.to_lowercase();
                let state = w.strip_prefix("state=").unwrap_or(&w);
                match state_named(state) {
                    Some(s) => Word::State(s),
                    None => Word::Text(w),
                }
            })
            .collect();
        (!words.is_empty()).then_some(Self { words })
    }

    pub(crate) fn matches(&self, node: &Node) -> bool {
        self.words.iter().all(|w| match w {
            Word::State(s) => node.state == *s,
            Word::Text(t) => {
                node.name.to_lowercase().contains(t.as_str())
                    || node.endpoint.to_lowercase().contains(t.as_str())
            }
        })
    }
}

fn state_named(word: &str) -> Option<NodeState> {
    match word {
        "up" => Some(NodeState::Up),
        "stale" => Some(NodeState::Stale),
        "down" => Some(NodeState::Down),
        _ => None,
    }
}

/// `up`, `stale`, `down`.
pub(crate) const fn state_name(state: NodeState) -> &'static str {
    match state {
        NodeState::Up => "up",
        NodeState::Stale => "stale",
        NodeState::Down => "down",
    }
}

/// Who answered for a node, as the notes name it.
pub(crate) const fn exporter_name(exporter: Option<Exporter>) -> &'static str {
    match exporter {
        Some(Exporter::Hypomnesis) => "hmn serve",
        Some(Exporter::Dcgm) => "dcgm-exporter",
        Some(Exporter::AllSmi) => "all-smi",
        None => "its exporter",
    }
}

/// How many whole GPUs the node has (MIG instances are inside them).
pub(crate) fn gpus(node: &Node) -> usize {
    node.devices.iter().filter(|d| d.mig.is_none()).count()
}

/// The node's device memory, all whole GPUs, when every one's total is known.
pub(crate) fn total_memory(node: &Node) -> Option<u64> {
    node.devices
        .iter()
        .filter(|d| d.mig.is_none())
        .map(|d| d.total_bytes)
        .sum()
}

/// The fraction of the node's device memory that is room, 0..=1, when known.
#[allow(clippy::cast_precision_loss)] // a display fraction
pub(crate) fn free_fraction(node: &Node) -> Option<f64> {
    let total = total_memory(node).filter(|t| *t > 0)?;
    let room = node.total_room()?;
    Some((room as f64 / total as f64).clamp(0.0, 1.0))
}

/// A column's figure of a node as the sort compares it: `None` sorts last either way.
fn figure(node: &Node, column: NodeColumn) -> Option<u64> {
    let up = node.state == NodeState::Up;
    match column {
        NodeColumn::Gpus => (node.state != NodeState::Down).then(|| gpus(node) as u64),
        NodeColumn::LargestFree => node.largest_room().filter(|_| up),
        NodeColumn::TotalFree => node.total_room().filter(|_| up),
        NodeColumn::HostAvail => node.host.available_bytes.filter(|_| up),
        NodeColumn::Age => node
            .age
            .map(|a| u64::try_from(a.as_millis()).unwrap_or(u64::MAX)),
        NodeColumn::Node | NodeColumn::State => None,
    }
}

/// The nodes of `fleet` that `filter` keeps, in `sort`'s order (indices into
/// `fleet.nodes`); ties in name order.
pub(crate) fn arrange(fleet: &Fleet, sort: NodeSort, filter: Option<&NodeFilter>) -> Vec<usize> {
    let mut out: Vec<usize> = (0..fleet.nodes.len())
        .filter(|&i| filter.is_none_or(|f| f.matches(&fleet.nodes[i])))
        .collect();
    let by_name = |a: &Node, b: &Node| a.name.cmp(&b.name).then(a.endpoint.cmp(&b.endpoint));
    let directed = |o: Ordering| if sort.descending { o.reverse() } else { o };
    out.sort_by(|&i, &j| {
        let (a, b) = (&fleet.nodes[i], &fleet.nodes[j]);
        let first = match sort.column {
            NodeColumn::Node => directed(by_name(a, b)),
            NodeColumn::State => directed(a.state.cmp(&b.state)),
            column => match (figure(a, column), figure(b, column)) {
                (Some(x), Some(y)) => directed(x.cmp(&y)),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            },
        };
        first.then_with(|| by_name(a, b))
    });
    out
}

/// How many nodes are in each state: (up, stale, down).
pub(crate) fn counts(fleet: &Fleet) -> (usize, usize, usize) {
    fleet
        .nodes
        .iter()
        .fold((0, 0, 0), |(u, s, d), n| match n.state {
            NodeState::Up => (u + 1, s, d),
            NodeState::Stale => (u, s + 1, d),
            NodeState::Down => (u, s, d + 1),
        })
}

/// Every note the fleet screen shows, most important first: what the source said about the
/// whole fleet, why each node is down or stale, then the reason behind every `?` in the
/// list — the same reason on many nodes said once, "(and 63 more nodes)".
pub(crate) fn notes(fleet: &Fleet) -> Vec<String> {
    let mut out: Vec<String> = fleet.notes.clone();
    for state in [NodeState::Down, NodeState::Stale] {
        for n in fleet.nodes.iter().filter(|n| n.state == state) {
            let why = n.reason.as_deref().unwrap_or("no reason given");
            out.push(format!("{} {}: {why}", n.name, state_name(state)));
        }
    }
    // (column, reason) → the first node and how many more.
    let mut seen: Vec<(&'static str, String, &str, usize)> = Vec::new();
    for n in fleet.nodes.iter().filter(|n| n.state != NodeState::Down) {
        for (column, reason) in unknowns(n) {
            match seen
                .iter_mut()
                .find(|(c, r, _, _)| *c == column && *r == reason)
            {
                Some(entry) => entry.3 += 1,
                None => seen.push((column, reason, &n.name, 0)),
            }
        }
    }
    for (column, reason, first, more) in seen {
        let more = match more {
            0 => String::new(),
            1 => " (and 1 more node)".to_owned(),
            n => format!(" (and {n} more nodes)"),
        };
        out.push(format!("{column} ?: {reason} on {first}{more}"));
    }
    out
}

/// Each `?` a node that answered shows in the list, and why.
fn unknowns(n: &Node) -> Vec<(&'static str, String)> {
    let who = exporter_name(n.exporter);
    let mut out = Vec::new();
    if !n.devices.is_empty() {
        if n.largest_room().is_none() {
            out.push((
                NodeColumn::LargestFree.title(),
                format!("{who} exported no free memory for any GPU"),
            ));
        } else if n.total_room().is_none() {
            out.push((
                NodeColumn::TotalFree.title(),
                format!("{who} exported no free memory for some GPUs"),
            ));
        }
    }
    if n.host.available_bytes.is_none() {
        out.push((
            NodeColumn::HostAvail.title(),
            format!("{who} exports no host memory"),
        ));
    }
    if n.age.is_none() {
        out.push((
            NodeColumn::Age.title(),
            format!("{who} exports no sample age"),
        ));
    }
    out
}

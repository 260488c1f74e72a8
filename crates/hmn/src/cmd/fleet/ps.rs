//! `hmn ps --hosts…|--prometheus…`: who holds GPU memory across the fleet.
//!
//! One row per process and GPU, as on one machine, with the node first (NODE); a POD and a
//! NAMESPACE column appear when any row has them (an exporter run with Kubernetes labels).
//! Exporters carry no command line, so `--full` is refused before anything is read; `--pid`,
//! `--min`, `--filter` (on the name) and `--sort` work as on one machine. A stale node's rows
//! are shown with the node marked; a down node's processes are unknown, so the footer names it
//! and the exit code is 2, as for a device whose processes could not be listed.

use serde::Serialize;

use crate::cli::{PsArgs, SortKey};
use crate::fleet::{Fleet, NodeState};
use crate::outcome::Outcome;
use crate::output::Output;
use crate::size::{format_optional, format_size};
use crate::table::{Align, Table};
use crate::text::Shown;

use super::fits::unix_ms;
use super::{NodeNotUp, footer, nodes_in, say_notes, state_word};

/// One `ps --json` row of a fleet (see `docs/json.md`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FleetPsRow {
    pub node: String,
    pub endpoint: String,
    /// `up` or `stale`.
    pub node_state: &'static str,
    pub gpu: u32,
    pub pid: u32,
    pub name: Option<String>,
    pub user: Option<String>,
    pub kind: Option<String>,
    pub used_bytes: Option<u64>,
    pub system_bytes: Option<u64>,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
}

/// `hmn ps --json` with a fleet.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FleetPs {
    pub source: String,
    pub taken_at_unix_ms: u64,
    pub processes: Vec<FleetPsRow>,
    pub stale: Vec<NodeNotUp>,
    pub down: Vec<NodeNotUp>,
    pub notes: Vec<String>,
}

/// Every process of every node that answered.
pub fn rows(fleet: &Fleet) -> Vec<FleetPsRow> {
    fleet
        .nodes
        .iter()
        .filter(|n| n.state != NodeState::Down)
        .flat_map(|n| {
            n.processes.iter().map(move |p| {
                let pod = p.pod.clone().unwrap_or_default();
                FleetPsRow {
                    node: n.name.clone(),
                    endpoint: n.endpoint.clone(),
                    node_state: state_word(n.state),
                    gpu: p.gpu,
                    pid: p.pid,
                    name: p.name.clone(),
                    user: p.user.clone(),
                    kind: p.kind.clone(),
                    used_bytes: p.used_bytes,
                    system_bytes: p.system_bytes,
                    namespace: pod.namespace,
                    pod: pod.pod,
                    container: pod.container,
                }
            })
        })
        .collect()
}

/// GPU memory a row holds, device and system together; `None` when neither is known.
fn held(row: &FleetPsRow) -> Option<u64> {
    match (row.used_bytes, row.system_bytes) {
        (None, None) => None,
        (u, s) => Some(u.unwrap_or(0).saturating_add(s.unwrap_or(0))),
    }
}

/// `--pid`, `--min`, `--filter` (the name), then `--sort`.
pub fn select_and_sort(mut rows: Vec<FleetPsRow>, args: &PsArgs) -> Vec<FleetPsRow> {
    let patterns: Vec<String> = args.filter.iter().map(|p| p.to_lowercase()).collect();
    rows.retain(|r| {
        (args.pid.is_empty() || args.pid.contains(&r.pid))
            && args.min.is_none_or(|min| held(r).is_some_and(|h| h >= min))
            && (patterns.is_empty()
                || r.name.as_deref().is_some_and(|name| {
                    let name = name.to_lowercase();
                    patterns.iter().any(|p| name.contains(p))
                }))
    });
    let name = |r: &FleetPsRow| {
        (
            r.name.is_none(),
            r.name.as_deref().unwrap_or("").to_lowercase(),
        )
    };
    match args.sort {
        SortKey::Vram => rows.sort_by_cached_key(|r| {
            (
                std::cmp::Reverse(held(r)),
                name(r),
                r.node.clone(),
                r.pid,
                r.gpu,
            )
        }),
        SortKey::Pid => rows.sort_by(|a, b| (a.pid, &a.node, a.gpu).cmp(&(b.pid, &b.node, b.gpu))),
        SortKey::Name => rows.sort_by_cached_key(|r| (name(r), r.node.clone(), r.pid, r.gpu)),
    }
    rows
}

/// The table: NODE first; SYS, NAMESPACE and POD only when some row has them.
pub fn render(rows: &[FleetPsRow], width: Option<usize>) -> String {
    let system = rows.iter().any(|r| r.system_bytes.is_some());
    let pods = rows
        .iter()
        .any(|r| r.pod.is_some() || r.namespace.is_some());
    let mut header = vec![
        ("NODE", Align::Left),
        ("PID", Align::Right),
        ("USER", Align::Left),
        ("NAME", Align::Left),
        ("VRAM", Align::Right),
    ];
    if system {
        header.push(("SYS", Align::Right));
    }
    header.push(("GPU", Align::Right));
    if pods {
        header.push(("NAMESPACE", Align::Left));
        header.push(("POD", Align::Left));
    }
    let mut table = Table::new(header)
        .flexible("NODE", 12)
        .flexible("NAME", 12)
        .flexible("POD", 16)
        .optional("USER", 0)
        .optional("SYS", 1)
        .optional("NAMESPACE", 2);
    let unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
    for r in rows {
        let mut cells = vec![
            if r.node_state == "up" {
                r.node.clone()
            } else {
                format!("{} ({})", r.node, r.node_state)
            },
            r.pid.to_string(),
            unknown(&r.user),
            unknown(&r.name),
            format_optional(r.used_bytes),
        ];
        if system {
            cells.push(format_optional(r.system_bytes));
        }
        cells.push(r.gpu.to_string());
        if pods {
            cells.push(r.namespace.clone().unwrap_or_else(|| "-".into()));
            cells.push(r.pod.clone().unwrap_or_else(|| "-".into()));
        }
        table.push(cells);
    }
    table.render_within(width)
}

/// `12 processes on 3 nodes, 140.0 GiB of GPU memory` (stderr).
fn summary_line(rows: &[FleetPsRow], fleet: &Fleet) -> String {
    let mut nodes: Vec<&str> = rows.iter().map(|r| r.node.as_str()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    let total: u64 = rows.iter().filter_map(held).fold(0, u64::saturating_add);
    let read = fleet
        .nodes
        .iter()
        .filter(|n| n.state != NodeState::Down)
        .count();
    let processes = match rows.len() {
        1 => "1 process".to_owned(),
        n => format!("{n} processes"),
    };
    format!(
        "{processes} on {}, {} of GPU memory ({read} of {} read)",
        super::fits::counted(nodes.len(), "node"),
        format_size(total),
        super::fits::counted(fleet.nodes.len(), "node")
    )
}

/// `hmn ps` over `fleet`.
pub fn run(fleet: &Fleet, json: bool, wide: bool, args: &PsArgs, out: &Output) -> Outcome {
    let rows = select_and_sort(rows(fleet), args);
    let down = nodes_in(fleet, NodeState::Down);
    if json {
        out.json(&FleetPs {
            source: fleet.source.clone(),
            taken_at_unix_ms: unix_ms(fleet.taken_at),
            processes: rows.clone(),
            stale: nodes_in(fleet, NodeState::Stale),
            down: down.clone(),
            notes: fleet.notes.clone(),
        });
    } else {
        let mut text = render(&rows, crate::output::table_width(wide));
        text.push_str(&footer(fleet));
        out.data(&text);
    }
    say_notes(fleet, out);
    out.say(&Shown(&summary_line(&rows, fleet)).to_string());
    if fleet.nodes.is_empty() || !down.is_empty() {
        // A down node may hold processes the listing does not show: never a plain success
        // (and a source that named no node showed nothing).
        return Outcome::CouldNotTell;
    }
    if args.exit_status && rows.is_empty() {
        return Outcome::No;
    }
    Outcome::Success
}

#[cfg(test)]
mod tests {
    use super::super::test_fleet::{GIB, fleet};
    use super::*;

    fn args() -> PsArgs {
        PsArgs::default()
    }

    #[test]
    fn rows_carry_their_node_and_a_stale_node_is_marked() {
        let rows = select_and_sort(rows(&fleet()), &args());
        let who: Vec<(&str, u32)> = rows.iter().map(|r| (r.node.as_str(), r.pid)).collect();
        assert_eq!(
            who,
            [("gpu-a", 4242), ("gpu-b", 99), ("gpu-a", 17), ("gpu-c", 5)],
            "largest first; the down node has no rows"
        );
        let text = render(&rows, None);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NODE"), "{text}");
        assert!(
            lines[0].contains("NAMESPACE") && lines[0].contains("POD"),
            "{text}"
        );
        assert!(
            lines[1].contains("ml") && lines[1].contains("trainer-0"),
            "{text}"
        );
        assert!(
            lines[2].ends_with('-'),
            "a row without a pod shows -: {text}"
        );
        assert!(lines[4].starts_with("gpu-c (stale)"), "{text}");
    }

    #[test]
    fn pod_columns_appear_only_when_a_row_has_a_pod() {
        let mut f = fleet();
        f.nodes[0].processes[1].pod = None;
        let text = render(&rows(&f), None);
        assert!(!text.contains("POD"), "{text}");
        assert!(text.lines().next().unwrap().contains("NODE"), "{text}");
    }

    #[test]
    fn filters_and_sorts_apply_across_nodes() {
        let a = PsArgs {
            min: Some(20 * GIB),
            ..args()
        };
        let rows = select_and_sort(rows(&fleet()), &a);
        assert_eq!(rows.iter().map(|r| r.pid).collect::<Vec<_>>(), [4242, 99]);
        let a = PsArgs {
            filter: vec!["PYTH".into()],
            ..args()
        };
        assert_eq!(select_and_sort(rows_of(), &a).len(), 1);
        let a = PsArgs {
            sort: SortKey::Pid,
            ..args()
        };
        let pids: Vec<u32> = select_and_sort(rows_of(), &a)
            .iter()
            .map(|r| r.pid)
            .collect();
        assert_eq!(pids, [5, 17, 99, 4242]);
    }

    fn rows_of() -> Vec<FleetPsRow> {
        rows(&fleet())
    }

    #[test]
    fn unknown_figures_show_as_n_a_never_0() {
        let mut f = fleet();
        f.nodes[0].processes[0].used_bytes = None;
        f.nodes[0].processes[0].user = None;
        let text = render(&rows(&f), None);
        let line = text.lines().find(|l| l.contains(" 17 ")).unwrap();
        assert!(line.contains("n/a") && line.contains(" ? "), "{line}");
    }

    #[test]
    fn the_json_has_exactly_the_documented_fields() {
        use test_support::json_docs::{documented, emitted};
        let f = fleet();
        let value = serde_json::to_value(FleetPs {
            source: f.source.clone(),
            taken_at_unix_ms: unix_ms(f.taken_at),
            processes: rows(&f),
            stale: nodes_in(&f, NodeState::Stale),
            down: nodes_in(&f, NodeState::Down),
            notes: vec!["a note".into()],
        })
        .unwrap();
        assert_eq!(emitted(&value), documented("Fleets", "`hmn ps --json`"));
    }
}

//! `hmn fits SIZE --hosts…|--prometheus…`: where in the fleet does SIZE fit now?
//!
//! The candidates are every GPU of every node that answered, and every MIG instance: a GPU in
//! MIG mode is not a candidate itself (an allocation cannot cross a GPU instance), its
//! instances are. A candidate's room is what a new allocation can get ([`NodeDevice::room_bytes`]:
//! the exporter's budget, else free); it fits when its room is at least SIZE plus the
//! `--headroom` kept free on it (a percentage of the candidate's own total, or bytes).
//!
//! `--gpus N` asks for N candidates each fitting SIZE, as a data-parallel job needs (a model
//! replicated on N GPUs), not SIZE spread over N; with `--same-node`, all N on one node.
//! Candidates on a stale node are listed, marked, and never counted: its figures may be long
//! gone. Down nodes are listed in the footer with their reasons. Exit 0 when the request
//! fits, 1 when it does not, 2 when no up node had a GPU whose room is known.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cli::FitsArgs;
use crate::fleet::{Fleet, Node, NodeDevice, NodeState};
use crate::outcome::Outcome;
use crate::output::{Output, Tone};
use crate::size::{format_optional, format_size};
use crate::table::{Align, Table};
use crate::text::Shown;
use crate::values::Headroom;

use super::{NodeNotUp, footer, nodes_in, say_notes, state_word};

pub use crate::cmd::fits::Request;

/// One GPU or MIG instance where SIZE fits (`fits --json`'s `devices[]`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Place {
    pub node: String,
    pub endpoint: String,
    /// `up`, or `stale` (shown, never counted).
    pub node_state: &'static str,
    /// Whether it counts towards the answer: only on an up node.
    pub counted: bool,
    /// The GPU's index on its node (a MIG instance's parent GPU).
    pub gpu: u32,
    pub gpu_instance: Option<u32>,
    pub compute_instance: Option<u32>,
    pub mig_profile: Option<String>,
    pub name: Option<String>,
    pub uuid: Option<String>,
    /// What a new allocation can get (the exporter's budget, else free).
    pub free_bytes: u64,
    pub total_bytes: Option<u64>,
    /// `--headroom` on this device, bytes (0 without it).
    pub keep_free_bytes: u64,
    /// `free_bytes - requested_bytes`: what stays free once SIZE is placed.
    pub left_bytes: u64,
}

/// A candidate of an up node whose room is unknown, or whose headroom cannot be computed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Unknown {
    pub node: String,
    pub gpu: u32,
    pub gpu_instance: Option<u32>,
    pub reason: String,
}

/// The candidate with the most room on an up node, fitting or not (the verdict names it).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MostRoom {
    pub node: String,
    pub gpu: u32,
    pub gpu_instance: Option<u32>,
    pub free_bytes: u64,
}

/// `hmn fits SIZE --json` with a fleet (see `docs/json.md`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FleetFits {
    pub source: String,
    pub taken_at_unix_ms: u64,
    /// `true` fits (exit 0), `false` does not (exit 1), `null` could not tell (exit 2).
    pub fits: Option<bool>,
    pub requested_bytes: u64,
    pub gpus: u32,
    pub same_node: bool,
    /// `--headroom` as a percentage of each GPU's total; `null` when not given so.
    pub keep_free_percent: Option<f64>,
    /// `--headroom` as bytes; `null` when not given so.
    pub keep_free_bytes: Option<u64>,
    /// Where SIZE fits, most room first; with `--same-node` only on nodes that take all N.
    pub devices: Vec<Place>,
    /// The nodes that take the request: with `--same-node`, those with N counted devices;
    /// without, every node with a counted device.
    pub nodes: Vec<String>,
    /// How many counted devices fit SIZE.
    pub counted_devices: usize,
    pub most_room: Option<MostRoom>,
    pub unknown: Vec<Unknown>,
    pub stale: Vec<NodeNotUp>,
    pub down: Vec<NodeNotUp>,
    pub notes: Vec<String>,
    /// Why `fits` is `null`.
    pub reason: Option<String>,
}

/// The candidates of `node`: its whole GPUs not in MIG mode, and each MIG GPU instance once
/// (its compute instances share its memory, so two of them are not two places).
pub fn candidates(node: &Node) -> impl Iterator<Item = &NodeDevice> {
    node.devices.iter().enumerate().filter_map(|(i, d)| {
        let keep = match &d.mig {
            Some(m) => !node.devices[..i].iter().any(|e| {
                e.index == d.index
                    && e.mig
                        .as_ref()
                        .is_some_and(|n| n.gpu_instance == m.gpu_instance)
            }),
            None => !node
                .devices
                .iter()
                .any(|m| m.mig.is_some() && m.index == d.index),
        };
        keep.then_some(d)
    })
}

/// Where `request` fits in `fleet`.
pub fn decide(fleet: &Fleet, request: &Request) -> FleetFits {
    let mut places: Vec<Place> = Vec::new();
    let mut unknown: Vec<Unknown> = Vec::new();
    let mut most_room: Option<MostRoom> = None;
    let mut judged = false;
    for node in &fleet.nodes {
        if node.state == NodeState::Down {
            continue;
        }
        let up = node.state == NodeState::Up;
        for d in candidates(node) {
            let gpu_instance = d.mig.as_ref().map(|m| m.gpu_instance);
            let room = d.room_bytes();
            let keep = match request.headroom {
                None => Some(0),
                Some(h) => h.on(d.total_bytes),
            };
            let (room, keep) = match (room, keep) {
                (Some(room), Some(keep)) => (room, keep),
                (room, _) => {
                    if up {
                        unknown.push(Unknown {
                            node: node.name.clone(),
                            gpu: d.index,
                            gpu_instance,
                            reason: if room.is_none() {
                                "its free memory is not exported".into()
                            } else {
                                "its total memory is not exported, so a percentage headroom \
                                 cannot be kept"
                                    .into()
                            },
                        });
                    }
                    continue;
                }
            };
            if up {
                judged = true;
                if most_room.as_ref().is_none_or(|m| room > m.free_bytes) {
                    most_room = Some(MostRoom {
                        node: node.name.clone(),
                        gpu: d.index,
                        gpu_instance,
                        free_bytes: room,
                    });
                }
            }
            if room >= request.size.saturating_add(keep) {
                places.push(Place {
                    node: node.name.clone(),
                    endpoint: node.endpoint.clone(),
                    node_state: state_word(node.state),
                    counted: up,
                    gpu: d.index,
                    gpu_instance,
                    compute_instance: d.mig.as_ref().and_then(|m| m.compute_instance),
                    mig_profile: d.mig.as_ref().and_then(|m| m.profile.clone()),
                    name: d.name.clone(),
                    uuid: d.uuid.clone(),
                    free_bytes: room,
                    total_bytes: d.total_bytes,
                    keep_free_bytes: keep,
                    left_bytes: room - request.size,
                });
            }
        }
    }
    places.sort_by(|a, b| {
        b.free_bytes
            .cmp(&a.free_bytes)
            .then_with(|| b.counted.cmp(&a.counted))
            .then_with(|| a.node.cmp(&b.node))
            .then_with(|| (a.gpu, a.gpu_instance).cmp(&(b.gpu, b.gpu_instance)))
    });
    let counted_devices = places.iter().filter(|p| p.counted).count();
    let wanted = usize::try_from(request.gpus).unwrap_or(usize::MAX);
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    let mut stale_per_node: BTreeMap<String, usize> = BTreeMap::new();
    for p in &places {
        let counts = if p.counted {
            &mut per_node
        } else {
            &mut stale_per_node
        };
        *counts.entry(p.node.clone()).or_default() += 1;
    }
    let (fits, nodes): (bool, Vec<String>) = if request.same_node {
        let nodes: Vec<String> = per_node
            .iter()
            .filter(|&(_, &n)| n >= wanted)
            .map(|(name, _)| name.clone())
            .collect();
        (!nodes.is_empty(), nodes)
    } else {
        (
            counted_devices >= wanted,
            per_node.keys().cloned().collect(),
        )
    };
    if request.same_node {
        // Only the nodes that could take all N (a stale one, shown, would have) are listed.
        places.retain(|p| {
            let counts = if p.counted {
                &per_node
            } else {
                &stale_per_node
            };
            counts.get(p.node.as_str()).is_some_and(|&n| n >= wanted)
        });
    }
    let down = nodes_in(fleet, NodeState::Down);
    let stale = nodes_in(fleet, NodeState::Stale);
    let (fits, reason) = if fits {
        (Some(true), None)
    } else if judged {
        (Some(false), None)
    } else {
        (None, Some(nothing_read(fleet, &down, &stale, &unknown)))
    };
    let (keep_free_percent, keep_free_bytes) = match request.headroom {
        None => (None, None),
        Some(Headroom::Bytes(b)) => (None, Some(b)),
        Some(Headroom::Percent { hundredths }) => (Some(f64::from(hundredths) / 100.0), None),
    };
    FleetFits {
        source: fleet.source.clone(),
        taken_at_unix_ms: unix_ms(fleet.taken_at),
        fits,
        requested_bytes: request.size,
        gpus: request.gpus,
        same_node: request.same_node,
        keep_free_percent,
        keep_free_bytes,
        devices: places,
        nodes,
        counted_devices,
        most_room,
        unknown,
        stale,
        down,
        notes: fleet.notes.clone(),
        reason,
    }
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_ms(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, crate::time::millis)
}

/// Why nothing could be judged: no node, every node down or stale, or no room known.
fn nothing_read(
    fleet: &Fleet,
    down: &[NodeNotUp],
    stale: &[NodeNotUp],
    unknown: &[Unknown],
) -> String {
    if fleet.nodes.is_empty() {
        return format!("{} named no node", fleet.source);
    }
    let mut why = Vec::new();
    if !down.is_empty() {
        why.push(format!(
            "{} of {} nodes down",
            down.len(),
            fleet.nodes.len()
        ));
    }
    if !stale.is_empty() {
        why.push(format!(
            "{} stale (their figures are not counted)",
            stale.len()
        ));
    }
    if !unknown.is_empty() {
        why.push(format!(
            "{} GPUs of up nodes without a free-memory figure",
            unknown.len()
        ));
    }
    if why.is_empty() {
        why.push("no up node has a GPU".into());
    }
    format!(
        "no up node has a GPU whose free memory is known ({})",
        why.join("; ")
    )
}

/// `1 GPU`, `2 GPUs`.
pub fn counted(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// `0`, or `0 gi 1` for MIG GPU instance 1 of GPU 0.
fn gpu_cell(gpu: u32, gpu_instance: Option<u32>) -> String {
    match gpu_instance {
        Some(gi) => format!("{gpu} gi {gi}"),
        None => gpu.to_string(),
    }
}

/// The table of places, then the footer of stale and down nodes.
pub fn render(verdict: &FleetFits, fleet: &Fleet, width: Option<usize>) -> String {
    let mut table = Table::new(vec![
        ("NODE", Align::Left),
        ("GPU", Align::Left),
        ("NAME", Align::Left),
        ("FREE", Align::Right),
        ("TOTAL", Align::Right),
        ("LEFT", Align::Right),
        ("STATE", Align::Left),
    ])
    .flexible("NODE", 12)
    .flexible("NAME", 12)
    .optional("TOTAL", 0);
    for p in &verdict.devices {
        let name = match &p.mig_profile {
            Some(profile) => format!("MIG {profile}"),
            None => p.name.clone().unwrap_or_else(|| "?".into()),
        };
        table.push(vec![
            p.node.clone(),
            gpu_cell(p.gpu, p.gpu_instance),
            name,
            format_size(p.free_bytes),
            format_optional(p.total_bytes),
            format_size(p.left_bytes),
            if p.counted {
                p.node_state.to_owned()
            } else {
                format!("{} (not counted)", p.node_state)
            },
        ]);
    }
    let mut text = if verdict.devices.is_empty() {
        String::new()
    } else {
        table.render_within(width)
    };
    text.push_str(&footer(fleet));
    text
}

/// The verdict, one line for stderr.
pub fn verdict_line(verdict: &FleetFits, request: &Request, out: &Output) -> String {
    let size = format_size(request.size);
    let kept = request.kept_text();
    let each = if request.gpus > 1 { " each" } else { "" };
    let want = if request.gpus > 1 {
        format!("{} GPUs with {size} free{each}{kept}", request.gpus)
    } else {
        format!("{size}{kept}")
    };
    match verdict.fits {
        Some(true) if request.same_node => format!(
            "{} — {want} on one node: {}",
            out.paint("fits", Tone::Good),
            Shown(&verdict.nodes.join(", "))
        ),
        Some(true) => {
            let most = verdict
                .devices
                .iter()
                .find(|p| p.counted)
                .map(|p| {
                    format!(
                        "; most room: {} GPU {} ({} free)",
                        Shown(&p.node),
                        gpu_cell(p.gpu, p.gpu_instance),
                        format_size(p.free_bytes)
                    )
                })
                .unwrap_or_default();
            format!(
                "{} — {want}: {} fit on {}{most}",
                out.paint("fits", Tone::Good),
                counted(verdict.counted_devices, "GPU"),
                counted(verdict.nodes.len(), "node")
            )
        }
        Some(false) => {
            let found = if request.same_node {
                "no node has them".to_owned()
            } else {
                format!("{} fit", counted(verdict.counted_devices, "GPU"))
            };
            let most = verdict
                .most_room
                .as_ref()
                .map(|m| {
                    format!(
                        "; most room: {} GPU {} ({} free)",
                        Shown(&m.node),
                        gpu_cell(m.gpu, m.gpu_instance),
                        format_size(m.free_bytes)
                    )
                })
                .unwrap_or_default();
            format!(
                "{} — {want}: {found}{most}",
                out.paint("does not fit", Tone::Bad)
            )
        }
        None => format!(
            "fits could not tell whether {want} fits: {}",
            Shown(verdict.reason.as_deref().unwrap_or("nothing could be read"))
        ),
    }
}

/// `hmn fits SIZE` over `fleet`.
pub fn run(fleet: &Fleet, json: bool, wide: bool, args: &FitsArgs, out: &Output) -> Outcome {
    let request = Request::of(args);
    let verdict = decide(fleet, &request);
    if json {
        out.json(&verdict);
    } else {
        out.data(&render(&verdict, fleet, crate::output::table_width(wide)));
    }
    for u in &verdict.unknown {
        out.say(&format!(
            "{} GPU {}: not counted: {}",
            Shown(&u.node),
            gpu_cell(u.gpu, u.gpu_instance),
            u.reason
        ));
    }
    say_notes(fleet, out);
    out.say(&verdict_line(&verdict, &request, out));
    match verdict.fits {
        Some(true) => Outcome::Success,
        Some(false) => Outcome::No,
        None => Outcome::CouldNotTell,
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_fleet::{GIB, fleet, gpu, node};
    use super::*;
    use crate::cli::ColorChoice;

    fn ask(size: u64, gpus: u32, same_node: bool, headroom: Option<Headroom>) -> Request {
        Request {
            size,
            gpus,
            same_node,
            headroom,
        }
    }

    fn where_(v: &FleetFits) -> Vec<(String, u32, Option<u32>, bool)> {
        v.devices
            .iter()
            .map(|p| (p.node.clone(), p.gpu, p.gpu_instance, p.counted))
            .collect()
    }

    fn plain() -> Output {
        Output::new(ColorChoice::Never)
    }

    #[test]
    fn fitting_gpus_and_mig_instances_are_listed_largest_free_first_and_stale_ones_not_counted() {
        let v = decide(&fleet(), &ask(40 * GIB, 1, false, None));
        assert_eq!(v.fits, Some(true));
        assert_eq!(
            where_(&v),
            [
                ("gpu-c".into(), 0, None, false),
                ("gpu-a".into(), 0, None, true),
                ("gpu-b".into(), 1, None, true),
            ],
            "the MIG GPU's 50 GiB is not room (instances are), its 39.5 GiB instance is too small"
        );
        assert_eq!(v.counted_devices, 2);
        assert_eq!(v.nodes, ["gpu-a", "gpu-b"]);
        assert_eq!(v.down.len(), 1);
        assert_eq!(v.stale.len(), 1);
        let text = render(&v, &fleet(), None);
        assert!(text.contains("stale (not counted)"), "{text}");
        assert!(
            text.contains("down: gpu-d (http://gpu-d:9464/metrics): no answer within 2 s"),
            "{text}"
        );
    }

    #[test]
    fn two_compute_instances_of_one_gpu_instance_are_one_place() {
        let mut f = fleet();
        let mut second = f.nodes[1].devices[1].clone();
        second.mig.as_mut().unwrap().compute_instance = Some(1);
        f.nodes[1].devices.push(second);
        let v = decide(&f, &ask(39 * GIB, 1, false, None));
        let on_b: Vec<_> = where_(&v)
            .into_iter()
            .filter(|p| p.0 == "gpu-b" && p.2 == Some(1))
            .collect();
        assert_eq!(on_b.len(), 1, "{on_b:?}");
    }

    #[test]
    fn a_mig_instance_is_a_place_of_its_own() {
        let v = decide(&fleet(), &ask(39 * GIB, 1, false, None));
        assert!(
            where_(&v).contains(&("gpu-b".into(), 0, Some(1), true)),
            "{:?}",
            where_(&v)
        );
        let text = render(&v, &fleet(), None);
        assert!(
            text.contains("0 gi 1") && text.contains("MIG 3g.40gb"),
            "{text}"
        );
    }

    #[test]
    fn headroom_is_kept_free_beyond_size_as_a_percentage_of_each_gpu_or_as_bytes() {
        // 45 GiB free on an 80 GiB GPU: 40 GiB + 5% (4 GiB) fits, + 10% (8 GiB) does not.
        let five = Headroom::Percent { hundredths: 500 };
        let ten = Headroom::Percent { hundredths: 1000 };
        let v = decide(&fleet(), &ask(40 * GIB, 1, false, Some(five)));
        assert!(where_(&v).contains(&("gpu-b".into(), 1, None, true)));
        assert_eq!(v.devices[1].keep_free_bytes, 4 * GIB);
        assert_eq!(v.keep_free_percent, Some(5.0));
        let v = decide(&fleet(), &ask(40 * GIB, 1, false, Some(ten)));
        assert!(!where_(&v).contains(&("gpu-b".into(), 1, None, true)));
        let v = decide(
            &fleet(),
            &ask(40 * GIB, 1, false, Some(Headroom::Bytes(5 * GIB))),
        );
        assert!(
            where_(&v).contains(&("gpu-b".into(), 1, None, true)),
            "exactly 45 GiB"
        );
        let v = decide(
            &fleet(),
            &ask(40 * GIB, 1, false, Some(Headroom::Bytes(5 * GIB + 1))),
        );
        assert!(!where_(&v).contains(&("gpu-b".into(), 1, None, true)));
    }

    #[test]
    fn gpus_n_needs_n_gpus_each_fitting_size_anywhere_unless_same_node() {
        // 30 GiB fits on gpu-a 0 and 1, gpu-b 1 and its 39.5 GiB instance: 4 counted.
        let v = decide(&fleet(), &ask(30 * GIB, 4, false, None));
        assert_eq!((v.fits, v.counted_devices), (Some(true), 4));
        let v = decide(&fleet(), &ask(30 * GIB, 5, false, None));
        assert_eq!(v.fits, Some(false), "the stale node's GPU is not counted");
        let v = decide(&fleet(), &ask(30 * GIB, 2, true, None));
        assert_eq!(v.fits, Some(true));
        assert_eq!(v.nodes, ["gpu-a", "gpu-b"]);
        let v = decide(&fleet(), &ask(40 * GIB, 2, true, None));
        assert_eq!(
            v.fits,
            Some(false),
            "40 GiB fits on one GPU of gpu-a and of gpu-b"
        );
        assert!(v.devices.is_empty(), "no node takes both: nothing listed");
        assert_eq!(
            verdict_line(&v, &ask(40 * GIB, 2, true, None), &plain()),
            "does not fit — 2 GPUs with 40.0 GiB free each: no node has them; most room: gpu-a GPU 0 (70.0 GiB free)"
        );
    }

    #[test]
    fn nothing_read_cannot_tell_and_says_why() {
        let mut f = fleet();
        f.nodes.retain(|n| n.state != NodeState::Up);
        let v = decide(&f, &ask(GIB, 1, false, None));
        assert_eq!(v.fits, None);
        let reason = v.reason.unwrap();
        assert!(reason.contains("1 of 2 nodes down"), "{reason}");
        assert!(reason.contains("1 stale"), "{reason}");
    }

    #[test]
    fn unknown_free_memory_is_never_room_and_is_said() {
        let f = Fleet {
            nodes: vec![node("n", NodeState::Up, vec![gpu(0, 80 * GIB, None)])],
            ..fleet()
        };
        let v = decide(&f, &ask(GIB, 1, false, None));
        assert_eq!(v.fits, None);
        assert_eq!(v.unknown.len(), 1);
        assert!(v.reason.unwrap().contains("without a free-memory figure"));
    }

    #[test]
    fn verdicts_say_where_and_how_much() {
        let r = ask(
            40 * GIB,
            1,
            false,
            Some(Headroom::Percent { hundredths: 250 }),
        );
        let v = decide(&fleet(), &r);
        assert_eq!(
            verdict_line(&v, &r, &plain()),
            "fits — 40.0 GiB with 2.5% kept free: 2 GPUs fit on 2 nodes; most room: gpu-a GPU 0 (70.0 GiB free)"
        );
        let r = ask(20 * GIB, 2, true, None);
        assert_eq!(
            verdict_line(&decide(&fleet(), &r), &r, &plain()),
            "fits — 2 GPUs with 20.0 GiB free each on one node: gpu-a, gpu-b"
        );
    }

    #[test]
    fn the_json_has_exactly_the_documented_fields() {
        use test_support::json_docs::{documented, emitted};
        let v = decide(&fleet(), &ask(39 * GIB, 1, false, Some(Headroom::Bytes(0))));
        let mut f = fleet();
        f.nodes[0].devices[1].free_bytes = None;
        let unknown = decide(&f, &ask(39 * GIB, 1, false, None));
        let mut value = serde_json::to_value(&v).unwrap();
        value["unknown"] = serde_json::to_value(&unknown.unknown).unwrap();
        assert_eq!(
            emitted(&value),
            documented("Fleets", "`hmn fits SIZE --json`")
        );
    }
}

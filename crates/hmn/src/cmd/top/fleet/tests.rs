//! The fleet screen over fleets built by hand (every figure derived from the node's number,
//! the read's time fixed): snapshots of the node list at 1 and 8 nodes and of the heat grid
//! at 120, at 80×24 and 200×60, of an open node and of a failed read; scripted keys (sort,
//! filter, Enter / Esc, the keys a read-only screen refuses, grid navigation); the node
//! rebuilt as a frame; the reader retrying after a failed read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crossterm::event::{Event, KeyCode, KeyEvent};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

use super::draw::{self, DROP_ORDER, FLEET_KEYS};
use super::nodes::{NodeColumn, NodeSort};
use super::reader::Reader;
use super::state::{FleetApp, FleetMode, FleetSettings, NO_RECORDING, NO_SIGNALS, View};
use crate::cmd::top::app::Mode as LocalMode;
use crate::fleet::{
    CollectOptions, Exporter, Fleet, FleetError, MigPlacement, Node, NodeDevice, NodeHost,
    NodeProcess, NodeState, Source,
};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// One H100 of node `n`, GPU `i`: used memory derived from both.
fn gpu(n: usize, i: u32, exporter: Exporter) -> NodeDevice {
    let total = 81_559 * MIB;
    let reserved = 512 * MIB;
    let used = ((n as u64 * 7 + u64::from(i) * 13) % 76 + 1) * GIB;
    let free = total - used - reserved;
    let dcgm = exporter == Exporter::Dcgm;
    NodeDevice {
        index: i,
        mig: None,
        uuid: Some(format!("GPU-{n:04}-{i}")),
        name: Some("NVIDIA H100 80GB HBM3".to_owned()),
        vendor: Some("nvidia".to_owned()),
        total_bytes: Some(total),
        used_bytes: Some(used),
        free_bytes: Some(free),
        reserved_bytes: (!dcgm).then_some(reserved),
        budget_bytes: (!dcgm).then_some(free),
        utilization_ratio: Some(f64::from((i * 37 + 11) % 101) / 100.0),
        temperature_celsius: (!dcgm || i != 1).then_some(f64::from(31 + i * 13 % 55)),
        power_watts: Some(f64::from(90 + i * 53 % 600)),
        pod: None,
    }
}

/// Node `n` of a fleet: `gpu-NNN`, 8 GPUs; every 7th (from 3) is stale, every 11th (from 5)
/// down, every 4th (from 2) answered by dcgm-exporter (no host memory, no sample age, no
/// reserved memory); node 0 has MIG instances on GPU 0 and processes.
fn node(n: usize) -> Node {
    let name = format!("gpu-{n:03}");
    let endpoint = format!("http://10.0.{}.{}:9464/metrics", n / 250, n % 250 + 1);
    let state = if n % 11 == 5 {
        NodeState::Down
    } else if n % 7 == 3 {
        NodeState::Stale
    } else {
        NodeState::Up
    };
    if state == NodeState::Down {
        return Node::down(
            name,
            endpoint,
            "no answer within 2s (connection timed out): is hmn serve running there?".into(),
        );
    }
    let exporter = if n % 4 == 2 {
        Exporter::Dcgm
    } else {
        Exporter::Hypomnesis
    };
    let dcgm = exporter == Exporter::Dcgm;
    let mut devices: Vec<NodeDevice> = (0..8).map(|i| gpu(n, i, exporter)).collect();
    let mut processes = Vec::new();
    if n == 0 {
        for (gi, total, used) in [(1, 40, 30), (2, 20, 2)] {
            devices.push(NodeDevice {
                index: 0,
                mig: Some(MigPlacement {
                    gpu_instance: gi,
                    compute_instance: Some(0),
                    profile: Some(format!("{}g.{total}gb", total / 10)),
                }),
                uuid: Some(format!("MIG-0000-{gi}")),
                total_bytes: Some(total * GIB),
                used_bytes: Some(used * GIB),
                free_bytes: Some((total - used) * GIB),
                reserved_bytes: None,
                budget_bytes: None,
                utilization_ratio: None,
                temperature_celsius: None,
                power_watts: None,
                ..gpu(0, 0, exporter)
            });
        }
        for (k, pid) in [4242_u32, 5150, 7001, 8080].into_iter().enumerate() {
            let k = u32::try_from(k).unwrap_or(0);
            processes.push(NodeProcess {
                gpu: k % 3,
                pid,
                name: Some(["python", "vllm", "torchrun", "llama-server"][k as usize].to_owned()),
                user: Some(if k % 2 == 0 { "alice" } else { "bob" }.to_owned()),
                kind: Some("compute".to_owned()),
                used_bytes: (pid != 7001).then_some(u64::from(k + 1) * 9 * GIB),
                system_bytes: None,
                pod: None,
            });
        }
    }
    Node {
        name,
        endpoint,
        state,
        reason: (state == NodeState::Stale)
            .then(|| "its sample is 41s old, more than 3 intervals of 5s".to_owned()),
        exporter: Some(exporter),
        age: (!dcgm).then(|| Duration::from_secs(if state == NodeState::Stale { 41 } else { 2 })),
        interval: Some(Duration::from_secs(5)),
        host: NodeHost {
            total_bytes: (!dcgm).then_some(512 * GIB),
            available_bytes: (!dcgm).then_some((400 + (n as u64 % 100)) * GIB),
        },
        devices,
        processes,
        labels: BTreeMap::new(),
    }
}

/// A read of `n` nodes taken at a fixed time (10:41:03 UTC).
fn fleet(n: usize) -> Fleet {
    Fleet {
        source: format!("hosts ({n} endpoint{})", if n == 1 { "" } else { "s" }),
        taken_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_467_263),
        nodes: (0..n).map(node).collect(),
        notes: Vec::new(),
    }
}

/// The screen showing `fleet` at `w`×`h`, laid out as the terminal loop lays it out.
fn app_with(fleet: Fleet, w: u16, h: u16) -> FleetApp {
    let mut app = FleetApp::new(FleetSettings::default(), "hosts".to_owned());
    app.size = (w, h);
    app.set_fleet(Arc::new(fleet), Instant::now());
    lay_out(&mut app);
    app
}

fn app(n: usize, w: u16, h: u16) -> FleetApp {
    app_with(fleet(n), w, h)
}

fn lay_out(app: &mut FleetApp) {
    let (w, h) = app.size;
    let layout = draw::layout(app, Rect::new(0, 0, w, h));
    app.set_layout(layout);
}

fn render(app: &FleetApp) -> Buffer {
    let (w, h) = app.size;
    let area = Rect::new(0, 0, w, h);
    let mut buf = Buffer::empty(area);
    draw::draw_into(&mut buf, area, app);
    buf
}

/// The buffer's text, one line per row, trailing blanks cut.
fn text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        for x in area.left()..area.right() {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Presses `keys` in order, laying out after each as the loop does; `true` if one quit.
fn press(app: &mut FleetApp, keys: &[KeyCode]) -> bool {
    let mut quit = false;
    for key in keys {
        quit |= app.update(&Event::Key(KeyEvent::from(*key)));
        lay_out(app);
    }
    quit
}

fn type_text(app: &mut FleetApp, text: &str) {
    let keys: Vec<KeyCode> = text.chars().map(KeyCode::Char).collect();
    press(app, &keys);
}

/// The names of the nodes shown, in order.
fn names(app: &FleetApp) -> Vec<String> {
    (0..app.rows.len())
        .filter_map(|i| app.row_node(i).map(|n| n.name.clone()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Snapshots.

#[test]
fn the_node_list_matches_its_snapshots_at_1_and_8_nodes() {
    for n in [1, 8] {
        for (w, h) in [(80, 24), (200, 60)] {
            let app = app(n, w, h);
            assert_eq!(app.layout.view, Some(View::List), "{n} nodes {w}x{h}");
            insta::assert_snapshot!(format!("fleet_{n}_nodes_{w}x{h}"), text(&render(&app)));
        }
    }
}

#[test]
fn past_100_nodes_the_heat_grid_matches_its_snapshots() {
    for (w, h) in [(80, 24), (200, 60)] {
        let app = app(120, w, h);
        assert_eq!(app.layout.view, Some(View::Grid), "{w}x{h}");
        insta::assert_snapshot!(format!("fleet_120_nodes_{w}x{h}"), text(&render(&app)));
    }
}

#[test]
fn an_open_node_shows_its_gpus_mig_instances_and_processes_on_the_local_panels() {
    for (w, h) in [(80, 24), (200, 60)] {
        let mut app = app(8, w, h);
        // Largest free first puts gpu-000 elsewhere: select it by name.
        type_text(&mut app, "/");
        type_text(&mut app, "gpu-000");
        press(&mut app, &[KeyCode::Enter, KeyCode::Enter]);
        let drill = app.drill().expect("Enter opened the node");
        assert_eq!(drill.name, "gpu-000");
        let screen = text(&render(&app));
        insta::assert_snapshot!(format!("fleet_node_{w}x{h}"), screen);
    }
}

#[test]
fn a_failed_read_is_shown_above_the_last_good_one() {
    let mut app = app(8, 80, 24);
    app.set_error(
        "prometheus http://prom:9090 answered 503 Service Unavailable: is it starting up?".into(),
    );
    lay_out(&mut app);
    let screen = text(&render(&app));
    insta::assert_snapshot!("fleet_read_failed_80x24", &screen);
    assert!(screen.contains("gpu-001"), "{screen}");
}

#[test]
fn before_the_first_read_a_failed_read_is_shown_and_the_screen_waits() {
    let mut app = FleetApp::new(
        FleetSettings::default(),
        "prometheus http://prom:9090".into(),
    );
    app.size = (120, 24);
    app.set_error("cannot reach http://prom:9090: connection refused".into());
    lay_out(&mut app);
    let screen = text(&render(&app));
    assert!(screen.contains("waiting for the first read"), "{screen}");
    assert!(
        screen.contains(
            "cannot read the fleet (retrying every 5s): cannot reach http://prom:9090: \
             connection refused"
        ),
        "{screen}"
    );
}

#[test]
fn the_help_lists_every_fleet_key() {
    let mut app = app(8, 120, 40);
    press(&mut app, &[KeyCode::Char('?')]);
    let screen = text(&render(&app));
    for (key, _) in FLEET_KEYS {
        assert!(screen.contains(key), "{key}\n{screen}");
    }
    press(&mut app, &[KeyCode::Esc]);
    assert!(matches!(app.mode, FleetMode::Normal));
}

#[test]
fn unknown_figures_are_question_marks_with_their_reasons_never_zero() {
    let app = app(8, 200, 60);
    let screen = text(&render(&app));
    // gpu-002 and gpu-006 are dcgm-exporter nodes: no host memory, no sample age.
    let row = screen
        .lines()
        .find(|l| l.starts_with("gpu-002"))
        .expect("gpu-002's row");
    let last: Vec<&str> = row.split_whitespace().rev().take(2).collect();
    assert_eq!(last, ["?", "?"], "HOST AVAIL and AGE: {row}");
    assert!(
        screen.contains(
            "HOST AVAIL ?: dcgm-exporter exports no host memory on gpu-002 (and 1 more node)"
        ),
        "{screen}"
    );
    assert!(
        screen.contains("gpu-005 down: no answer within 2s"),
        "{screen}"
    );
    assert!(
        screen.contains("gpu-003 stale: its sample is 41s old"),
        "{screen}"
    );
    let down = screen
        .lines()
        .find(|l| l.starts_with("gpu-005"))
        .expect("gpu-005's row");
    let figures: Vec<&str> = down.split_whitespace().skip(2).collect();
    assert_eq!(
        figures, ["?"; 5],
        "a down node has no figures, never 0: {down}"
    );
}

#[test]
fn states_are_coloured_and_stale_and_down_nodes_are_dimmed() {
    let app = app(8, 80, 24);
    let buf = render(&app);
    let styles = app.settings.theme.styles();
    let find = |name: &str| {
        let screen = text(&buf);
        let y = screen
            .lines()
            .position(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in\n{screen}"));
        u16::try_from(y).unwrap()
    };
    let state_x = draw::columns(80)
        .iter()
        .find(|(c, _, _)| *c == NodeColumn::State)
        .map(|&(_, x, _)| x)
        .unwrap();
    let style_at = |y: u16| buf[(state_x, y)].style();
    assert_eq!(style_at(find("gpu-005")).fg, styles.critical.fg);
    assert_eq!(style_at(find("gpu-003")).fg, styles.warn.fg);
    assert_eq!(style_at(find("gpu-004")).fg, styles.status.fg);
    let name_style = buf[(0, find("gpu-005"))].style();
    assert!(
        name_style
            .add_modifier
            .contains(ratatui::style::Modifier::DIM),
        "{name_style:?}"
    );
}

#[test]
fn narrow_lists_drop_columns_in_the_documented_order() {
    let all: Vec<NodeColumn> = NodeColumn::ALL.to_vec();
    let mut previous = all.len();
    for w in (20..=120).rev() {
        let shown: Vec<NodeColumn> = draw::columns(w).iter().map(|(c, _, _)| *c).collect();
        let dropped = all.len() - shown.len();
        assert!(dropped >= all.len() - previous, "{w}");
        previous = shown.len();
        let expected: Vec<NodeColumn> = all
            .iter()
            .copied()
            .filter(|c| !DROP_ORDER[..dropped].contains(c))
            .collect();
        assert_eq!(shown, expected, "at {w} columns");
        let right = draw::columns(w).last().map_or(0, |&(_, x, cw)| x + cw);
        assert!(right <= w, "{w}: {right}");
    }
    let at_80: Vec<NodeColumn> = draw::columns(80).iter().map(|(c, _, _)| *c).collect();
    assert_eq!(at_80, all, "every column fits at 80");
    // The documented order itself: HOST AVAIL goes first, then AGE; LARGEST FREE stays.
    let at_60: Vec<NodeColumn> = draw::columns(60).iter().map(|(c, _, _)| *c).collect();
    assert!(!at_60.contains(&NodeColumn::HostAvail), "{at_60:?}");
    assert!(at_60.contains(&NodeColumn::Age), "{at_60:?}");
    let at_20: Vec<NodeColumn> = draw::columns(20).iter().map(|(c, _, _)| *c).collect();
    assert_eq!(
        at_20,
        [NodeColumn::Node, NodeColumn::State, NodeColumn::LargestFree]
    );
}

#[test]
fn past_100_nodes_the_grid_is_shown_even_where_every_row_would_fit() {
    assert_eq!(app(100, 200, 200).layout.view, Some(View::List));
    assert_eq!(app(101, 200, 200).layout.view, Some(View::Grid));
}

// ---------------------------------------------------------------------------------------------
// Keys.

#[test]
fn nodes_are_listed_largest_free_first_with_stale_and_down_nodes_last() {
    let app = app(8, 120, 40);
    let shown = names(&app);
    let rank = |name: &str| shown.iter().position(|n| n == name).unwrap();
    // gpu-003 stale, gpu-005 down: after every up node, by name.
    assert_eq!(&shown[6..], ["gpu-003", "gpu-005"], "{shown:?}");
    let fleet = app.fleet.clone().unwrap();
    let largest = |name: &str| {
        fleet
            .nodes
            .iter()
            .find(|n| n.name == name)
            .and_then(Node::largest_room)
            .unwrap()
    };
    for pair in shown[..6].windows(2) {
        assert!(
            largest(&pair[0]) >= largest(&pair[1]),
            "{pair:?} in {shown:?}"
        );
    }
    assert!(rank("gpu-000") < 6);
}

#[test]
fn sort_keys_change_the_order_and_the_selection_stays_on_its_node() {
    let mut app = app(8, 120, 40);
    press(&mut app, &[KeyCode::Down, KeyCode::Down]);
    let selected = app.selected.clone().unwrap();
    // `<` from LARGEST FREE: GPUS (largest first, ties by name).
    press(&mut app, &[KeyCode::Char('<')]);
    assert_eq!(app.sort.column, NodeColumn::Gpus);
    assert_eq!(app.selected.as_deref(), Some(selected.as_str()));
    // The `s` menu: up twice from GPUS is NODE, reading order.
    press(
        &mut app,
        &[KeyCode::Char('s'), KeyCode::Up, KeyCode::Up, KeyCode::Enter],
    );
    assert_eq!(
        app.sort,
        NodeSort {
            column: NodeColumn::Node,
            descending: false
        }
    );
    let by_name: Vec<String> = (0..8).map(|n| format!("gpu-{n:03}")).collect();
    assert_eq!(names(&app), by_name);
    press(&mut app, &[KeyCode::Char('I')]);
    let reversed: Vec<String> = by_name.iter().rev().cloned().collect();
    assert_eq!(names(&app), reversed);
    assert_eq!(app.selected.as_deref(), Some(selected.as_str()));
    // `>` back to STATE: up, then stale, then down.
    press(&mut app, &[KeyCode::Char('>')]);
    assert_eq!(app.sort.column, NodeColumn::State);
    assert_eq!(names(&app).last().map(String::as_str), Some("gpu-005"));
}

#[test]
fn the_filter_keeps_nodes_by_name_and_by_state() {
    let mut app = app(120, 200, 60);
    type_text(&mut app, "/down");
    press(&mut app, &[KeyCode::Enter]);
    let shown = names(&app);
    assert!(!shown.is_empty());
    let fleet = app.fleet.clone().unwrap();
    for name in &shown {
        let n = fleet.nodes.iter().find(|n| &n.name == name).unwrap();
        assert_eq!(n.state, NodeState::Down, "{name}");
    }
    assert_eq!(
        shown.len(),
        fleet
            .nodes
            .iter()
            .filter(|n| n.state == NodeState::Down)
            .count()
    );
    // Backspace the old text, type a name piece and a state: both must match.
    press(&mut app, &[KeyCode::Char('/')]);
    press(&mut app, &[KeyCode::Backspace; 4]);
    type_text(&mut app, "gpu-01 up");
    press(&mut app, &[KeyCode::Enter]);
    let mut shown = names(&app);
    shown.sort();
    assert_eq!(
        shown,
        // gpu-010 and gpu-017 are stale, gpu-016 down.
        [
            "gpu-011", "gpu-012", "gpu-013", "gpu-014", "gpu-015", "gpu-018", "gpu-019"
        ]
    );
    assert!(text(&render(&app)).contains("filter gpu-01 up"));
    // An empty filter shows everything again; Esc while typing keeps the filter in force.
    press(&mut app, &[KeyCode::Char('/')]);
    type_text(&mut app, "zzz");
    press(&mut app, &[KeyCode::Esc]);
    assert_eq!(names(&app).len(), 7);
    press(&mut app, &[KeyCode::Char('/')]);
    press(&mut app, &[KeyCode::Backspace; 12]);
    press(&mut app, &[KeyCode::Enter]);
    assert_eq!(names(&app).len(), 120);
}

#[test]
fn enter_opens_the_selected_node_and_esc_comes_back_to_it() {
    let mut app = app(8, 120, 40);
    press(&mut app, &[KeyCode::Down, KeyCode::Down, KeyCode::Down]);
    let selected = app.selected.clone().unwrap();
    assert!(!press(&mut app, &[KeyCode::Enter]));
    let drill = app.drill().expect("a node is open");
    assert_eq!(drill.name, selected);
    let gpus = drill.app.frame.as_ref().map(|f| f.devices.len());
    assert_eq!(gpus, Some(8));
    assert!(text(&render(&app)).contains(&format!("node {selected}")));
    // Inside, the local screen's keys work: the sort menu opens, Esc closes it, a second Esc
    // goes back to the list with the same node selected.
    press(&mut app, &[KeyCode::Char('s')]);
    assert!(matches!(
        app.drill().map(|d| &d.app.mode),
        Some(LocalMode::SortMenu { .. })
    ));
    assert!(!press(&mut app, &[KeyCode::Esc]));
    assert!(app.drill().is_some(), "Esc closed the menu only");
    assert!(!press(&mut app, &[KeyCode::Esc]));
    assert!(matches!(app.mode, FleetMode::Normal));
    assert_eq!(app.selected.as_deref(), Some(selected.as_str()));
    // On the list, Esc and q quit.
    assert!(press(&mut app, &[KeyCode::Esc]));
}

#[test]
fn a_new_read_refreshes_the_open_node_and_records_its_history() {
    let mut app = app(8, 120, 40);
    type_text(&mut app, "/gpu-000");
    press(&mut app, &[KeyCode::Enter, KeyCode::Enter]);
    let mut next = fleet(8);
    next.nodes[0].devices[0].used_bytes = Some(70 * GIB);
    let later = app.now.unwrap() + Duration::from_secs(5);
    app.set_fleet(Arc::new(next), later);
    let drill = app.drill().unwrap();
    let frame = drill.app.frame.as_ref().unwrap();
    assert_eq!(frame.devices[0].device.used_bytes, Some(70 * GIB));
    assert!(app.histories.contains_key("gpu-000"));
    // The node leaves the fleet: its last figures stay, marked.
    let mut gone = fleet(8);
    gone.nodes.remove(0);
    app.set_fleet(Arc::new(gone), later + Duration::from_secs(5));
    assert!(app.drill().unwrap().gone);
    assert!(text(&render(&app)).contains("no longer listed"));
}

#[test]
fn k_and_r_are_refused_with_the_reason_on_the_list_and_in_a_node() {
    let mut app = app(8, 120, 40);
    press(&mut app, &[KeyCode::Char('k')]);
    assert_eq!(app.status.as_deref(), Some(NO_SIGNALS));
    assert!(matches!(app.mode, FleetMode::Normal));
    press(&mut app, &[KeyCode::Char('R')]);
    assert_eq!(app.status.as_deref(), Some(NO_RECORDING));
    press(&mut app, &[KeyCode::Enter]);
    // The open node has processes: k must not open the signal menu on one of them.
    type_text(&mut app, "k");
    let drill = app.drill().unwrap();
    assert_eq!(drill.app.mode, LocalMode::Normal);
    assert_eq!(drill.app.status.as_deref(), Some(NO_SIGNALS));
    let screen = text(&render(&app));
    assert!(screen.contains("read-only"), "{screen}");
    type_text(&mut app, "R");
    assert_eq!(
        app.drill().unwrap().app.status.as_deref(),
        Some(NO_RECORDING)
    );
    assert!(app.drill().unwrap().app.recording.is_none());
}

#[test]
fn in_an_open_node_no_key_reaches_the_signal_menu() {
    let mut app = app(8, 120, 40);
    type_text(&mut app, "/gpu-000");
    press(&mut app, &[KeyCode::Enter, KeyCode::Enter]);
    assert!(
        !app.drill().unwrap().app.rows.is_empty(),
        "processes to signal"
    );
    for key in [
        KeyCode::Char('k'),
        KeyCode::Down,
        KeyCode::Enter,
        KeyCode::Esc,
        KeyCode::Char('k'),
        KeyCode::Char('y'),
    ] {
        press(&mut app, &[key]);
        if let Some(d) = app.drill() {
            assert!(
                !matches!(
                    d.app.mode,
                    LocalMode::SignalMenu { .. } | LocalMode::ConfirmSignal { .. }
                ),
                "{key:?}"
            );
        }
    }
}

#[test]
fn every_node_of_a_large_grid_is_reachable() {
    let mut app = app(1200, 80, 24);
    assert_eq!(app.layout.view, Some(View::Grid));
    let per_line = app.layout.columns;
    assert!(per_line > 1);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1200 {
        let screen_has_selection = {
            let buf = render(&app);
            let styles = app.settings.theme.styles();
            let body = app.layout.body;
            (body.top()..body.bottom()).any(|y| {
                (body.left()..body.right()).any(|x| {
                    let style = buf[(x, y)].style();
                    (style.fg, style.bg) == (styles.selected.fg, styles.selected.bg)
                })
            })
        };
        assert!(screen_has_selection, "{:?}", app.selected);
        seen.insert(app.selected.clone().unwrap());
        press(&mut app, &[KeyCode::Right]);
    }
    assert_eq!(seen.len(), 1200);
    press(&mut app, &[KeyCode::Home]);
    assert_eq!(app.selected_index(), Some(0));
    press(&mut app, &[KeyCode::Down]);
    assert_eq!(app.selected_index(), Some(per_line));
    press(&mut app, &[KeyCode::End]);
    assert_eq!(app.selected_index(), Some(1199));
    assert!(app.scroll > 0);
}

#[test]
fn g_switches_between_the_list_and_the_grid() {
    let mut app = app(8, 80, 24);
    assert_eq!(app.layout.view, Some(View::List));
    press(&mut app, &[KeyCode::Char('g')]);
    assert_eq!(app.layout.view, Some(View::Grid));
    press(&mut app, &[KeyCode::Char('g')]);
    assert_eq!(app.layout.view, Some(View::List));
    // 40 nodes do not fit 24 lines as rows: the grid, unless g asks for the list.
    let mut app = app_with(fleet(40), 80, 24);
    assert_eq!(app.layout.view, Some(View::Grid));
    press(&mut app, &[KeyCode::Char('g'), KeyCode::End]);
    assert_eq!(app.layout.view, Some(View::List));
    assert!(text(&render(&app)).contains(&names(&app)[39]));
}

#[test]
fn tiny_and_empty_screens_do_not_panic() {
    for (w, h) in [(0, 0), (1, 1), (19, 3), (20, 3), (40, 5), (40, 10)] {
        for n in [0, 1, 120] {
            let mut app = app(n, w, h);
            let _ = render(&app);
            press(&mut app, &[KeyCode::Enter, KeyCode::Down]);
            let _ = render(&app);
        }
    }
}

#[test]
fn the_readme_lists_every_fleet_key() {
    let readme = include_str!("../../../../../../README.md");
    for (key, what) in FLEET_KEYS {
        let row = format!("| `{key}` | {what} |");
        assert!(readme.contains(&row), "README's fleet keys lack {row}");
    }
}

// ---------------------------------------------------------------------------------------------
// A node as a frame.

#[test]
fn a_node_becomes_a_frame_with_mig_instances_under_their_gpu_and_reasons_for_unknowns() {
    let node = node(0);
    let frame = super::drill::frame(&node, Instant::now(), SystemTime::UNIX_EPOCH);
    assert_eq!(frame.devices.len(), 8);
    let migs: Vec<(Option<u32>, Option<u64>)> = frame.devices[0]
        .device
        .mig_instances
        .iter()
        .map(|m| (m.gpu_instance_id, m.free_bytes))
        .collect();
    assert_eq!(migs, [(Some(1), Some(10 * GIB)), (Some(2), Some(18 * GIB))]);
    let pids: Vec<u32> = frame.processes().map(|p| p.pid).collect();
    // Device by device, each by pid.
    assert_eq!(pids, [4242, 8080, 5150, 7001]);
    let unknown = frame.processes().find(|p| p.pid == 7001).unwrap();
    assert_eq!(unknown.used_bytes, None, "unknown stays unknown");
    assert_eq!(
        frame.host, None,
        "the node line shows the host, not the local header"
    );
    // A dcgm-exporter node: reserved memory unknown, GPU 1's temperature unknown, with why.
    let dcgm = super::drill::frame(&self::node(2), Instant::now(), SystemTime::UNIX_EPOCH);
    let t = dcgm.devices[1].telemetry.as_ref().unwrap();
    assert_eq!(t.temperature_celsius, None);
    assert_eq!(
        t.unavailable.first().map(|u| u.reason.as_str()),
        Some("dcgm-exporter exported no figure for it")
    );
}

#[test]
fn a_mig_instance_whose_gpu_is_not_listed_gets_a_gpu_with_unknown_figures() {
    let mut n = node(0);
    n.devices.retain(|d| d.index != 0 || d.mig.is_some());
    let frame = super::drill::frame(&n, Instant::now(), SystemTime::UNIX_EPOCH);
    let gpu0 = frame.device(0).expect("GPU 0 stands for its instances");
    assert_eq!(gpu0.device.total_bytes, None);
    assert_eq!(gpu0.device.mig_instances.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// The reader.

static CALLS: AtomicUsize = AtomicUsize::new(0);

/// Fails its first read (a Prometheus server not up yet), then answers.
fn flaky(_: &Source, _: &CollectOptions) -> Result<Fleet, FleetError> {
    if CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        Err(FleetError::Prometheus("503 Service Unavailable".into()))
    } else {
        Ok(fleet(2))
    }
}

#[test]
fn the_reader_keeps_reading_after_a_failed_read() {
    let reader = Reader::start(
        Source::Prometheus {
            server: "http://prom:9090".into(),
            selector: None,
        },
        CollectOptions::default(),
        Duration::from_millis(10),
        flaky,
    )
    .expect("a thread");
    // Liveness bounds only: each read comes within 10 ms normally.
    let patience = Duration::from_secs(30);
    let first = reader.wait(patience).expect("a first read");
    assert!(first.is_err());
    let second = reader.wait(patience).expect("a second read");
    assert_eq!(second.map(|f| f.nodes.len()), Ok(2));
    let mut app = FleetApp::new(FleetSettings::default(), "prometheus".into());
    app.set_error(first.unwrap_err().to_string());
    assert!(app.error.is_some());
    app.set_fleet(Arc::new(fleet(2)), Instant::now());
    assert!(app.error.is_none(), "a good read clears the error");
}

#[test]
fn ascii_draws_the_list_the_grid_and_a_node_in_ascii_only() {
    for n in [8, 120] {
        let mut app = app(n, 200, 60);
        app.settings.ascii = true;
        let mut screens = vec![text(&render(&app))];
        press(&mut app, &[KeyCode::Enter]);
        screens.push(text(&render(&app)));
        for screen in screens {
            // `Δ`, the local process table's own column title, is the local screen's (it
            // draws it under --ascii too).
            let odd: String = screen
                .chars()
                .filter(|c| !c.is_ascii() && *c != 'Δ')
                .collect();
            assert!(odd.is_empty(), "{odd:?} in\n{screen}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The last hour from Prometheus.

/// The screen over a Prometheus server showing 8 nodes at 200×60, the read arrived two hours
/// into the monotonic clock's future (so an hour back is always placeable), `gpu-000` open.
#[cfg(feature = "fleet")]
fn prometheus_app_with_gpu_000_open() -> FleetApp {
    let settings = FleetSettings {
        history_from_prometheus: true,
        ..FleetSettings::default()
    };
    let mut app = FleetApp::new(settings, "prometheus http://prom:9090".to_owned());
    app.size = (200, 60);
    app.set_fleet(
        Arc::new(fleet(8)),
        Instant::now() + Duration::from_secs(7200),
    );
    lay_out(&mut app);
    type_text(&mut app, "/gpu-000");
    press(&mut app, &[KeyCode::Enter, KeyCode::Enter]);
    assert_eq!(app.drill().map(|d| d.name.as_str()), Some("gpu-000"));
    app
}

#[cfg(feature = "fleet")]
#[test]
fn an_opened_node_starts_its_chart_with_the_last_hour_from_prometheus() {
    use crate::fleet::prometheus::DeviceHistory;
    let mut app = prometheus_app_with_gpu_000_open();
    // Opening the node asks for its hour, once.
    assert_eq!(app.seed_wanted.take().as_deref(), Some("gpu-000"));
    press(&mut app, &[KeyCode::Esc, KeyCode::Enter]);
    assert_eq!(app.seed_wanted, None, "asked again");
    // Prometheus kept a point every 5 s for the hour before the read; 50 minutes before it,
    // one point of 60 GiB.
    let (now, now_wall) = (app.now.unwrap(), app.fleet.as_ref().unwrap().taken_at);
    let peak_at = now_wall - Duration::from_secs(3000);
    let points: Vec<(SystemTime, u64)> = (1..720_u64)
        .map(|k| {
            let t = now_wall - Duration::from_secs(3600) + Duration::from_secs(5 * k);
            (t, if t == peak_at { 60 * GIB } else { 10 * GIB })
        })
        .collect();
    assert!(points.iter().any(|p| p.0 == peak_at));
    let past = vec![DeviceHistory { index: 0, points }];
    app.seed_history("gpu-000", Ok(past), now, now_wall);
    // `-` twice: the hour zoom.
    press(&mut app, &[KeyCode::Char('-'), KeyCode::Char('-')]);
    let drill = app.drill().unwrap();
    let charts = &drill.app.charts;
    assert_eq!(charts.span, Duration::from_secs(3600));
    let (_, gpu0) = charts.device_used.iter().find(|(i, _)| *i == 0).unwrap();
    let peak = now - Duration::from_secs(3000);
    let holding = gpu0.iter().find(|p| p.start <= peak && peak < p.end);
    #[allow(clippy::cast_precision_loss)]
    let want = (60 * GIB) as f64;
    let known = gpu0.iter().filter(|p| p.max.is_some()).count();
    assert_eq!(
        holding.and_then(|p| p.max),
        Some(want),
        "{known} columns known"
    );
    // The newest live figure ends the chart.
    #[allow(clippy::cast_precision_loss)]
    let live = gpu(0, 0, Exporter::Hypomnesis).used_bytes.unwrap() as f64;
    assert_eq!(gpu0.iter().rev().find_map(|p| p.last), Some(live));
}

#[cfg(feature = "fleet")]
#[test]
fn a_failed_history_fetch_keeps_the_live_history_and_says_why() {
    let mut app = prometheus_app_with_gpu_000_open();
    assert_eq!(app.seed_wanted.take().as_deref(), Some("gpu-000"));
    let (now, now_wall) = (app.now.unwrap(), app.fleet.as_ref().unwrap().taken_at);
    let why = "Prometheus at http://prom:9090 answered 503 Service Unavailable";
    app.seed_history(
        "gpu-000",
        Err(FleetError::Prometheus(why.to_owned())),
        now,
        now_wall,
    );
    let drill = app.drill().unwrap();
    let status = drill.app.status.as_deref().unwrap_or_default();
    assert!(status.contains("no history from Prometheus"), "{status}");
    assert!(status.contains(why), "{status}");
    assert_eq!(app.histories["gpu-000"].newest(), Some(now));
    let (_, gpu0) = drill
        .app
        .charts
        .device_used
        .iter()
        .find(|(i, _)| *i == 0)
        .unwrap();
    #[allow(clippy::cast_precision_loss)]
    let live = gpu(0, 0, Exporter::Hypomnesis).used_bytes.unwrap() as f64;
    assert_eq!(gpu0.iter().rev().find_map(|p| p.last), Some(live));
    // Opening the node again asks again.
    press(&mut app, &[KeyCode::Esc, KeyCode::Enter]);
    assert_eq!(app.seed_wanted.as_deref(), Some("gpu-000"));
}

#[cfg(feature = "fleet")]
#[test]
fn an_empty_history_from_prometheus_keeps_the_live_history_and_says_so() {
    let mut app = prometheus_app_with_gpu_000_open();
    let (now, now_wall) = (app.now.unwrap(), app.fleet.as_ref().unwrap().taken_at);
    let mut next = fleet(8);
    next.nodes[0].devices[0].used_bytes = Some(70 * GIB);
    let later = now + Duration::from_secs(5);
    app.set_fleet(Arc::new(next), later);
    app.seed_history("gpu-000", Ok(Vec::new()), later, now_wall);
    let status = app.drill().unwrap().app.status.clone().unwrap_or_default();
    assert!(status.contains("kept no memory history"), "{status}");
    // Both live reads are still charted.
    let (_, gpu0) = app.drill().unwrap().app.charts.device_used[0].clone();
    let readings: u32 = gpu0.iter().map(|p| p.samples).sum();
    assert_eq!(readings, 2);
}

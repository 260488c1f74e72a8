//! Scripted keys and clicks into [`App::update`] over frames built with the library's test
//! builders, checked on the state (the screen slice snapshots the drawing).

use std::time::{Duration, Instant};

use crossterm::event::{KeyEventState, MouseEvent};
use hypomnesis::monitor::HistoryLimits;
use hypomnesis::{
    BudgetBasis, DeviceFrame, FrameRequest, GpuDeviceInfo, GpuProcessEntry, GpuProcessListing,
    History, MigInstance,
};

use super::*;
use crate::cmd::top::signal::{SignalSender, carry_out};

const GIB: u64 = 1 << 30;

/// Parents and starts from a table, as the OS would give them.
#[derive(Debug, Default)]
struct Facts(HashMap<u32, Lineage>);

impl ProcessFacts for Facts {
    fn lineage(&self, pid: u32) -> Lineage {
        self.0.get(&pid).copied().unwrap_or_default()
    }
}

/// Records every signal it is asked to send; refuses when told to.
#[derive(Debug, Default)]
struct FakeSender {
    sent: Vec<(u32, Signal)>,
    refuse: Option<String>,
}

impl SignalSender for FakeSender {
    fn send(&mut self, pid: u32, signal: Signal) -> Result<(), String> {
        self.sent.push((pid, signal));
        self.refuse.clone().map_or(Ok(()), Err)
    }
}

fn process(pid: u32, user: &str, name: &str, device: u32, vram: Option<u64>) -> GpuProcessEntry {
    let mut builder = GpuProcessEntry::builder(pid)
        .user(user)
        .name(name)
        .command(&format!("{name} --pid {pid}"))
        .device_index(device);
    if let Some(vram) = vram {
        builder = builder.used_bytes(vram);
    }
    let mut entry = builder.build();
    entry.rss_bytes = Some(u64::from(pid) << 20);
    entry.cgroup = Some(format!("/user.slice/{user}"));
    entry
}

fn device(info: GpuDeviceInfo, rows: Vec<GpuProcessEntry>) -> DeviceFrame {
    let mut device = DeviceFrame::new(info);
    let mut listing = GpuProcessListing::default();
    listing.rows = rows;
    device.processes = Some(listing);
    device
}

/// Three GPUs: an H100 with 30 GiB to spare; an A100 in MIG mode whose instances have 2 and
/// 15 GiB free; a GPU whose budget is unknown. `python3` (100) holds `vram_100`, its worker
/// 101 runs on GPUs 0 and 1, 401 (the worker's child) on a MIG instance.
fn frame(vram_100: u64, taken: Instant) -> Frame {
    let h100 = GpuDeviceInfo::builder()
        .index(0)
        .name("H100")
        .total_bytes(80 * GIB)
        .free_bytes(30 * GIB)
        .budget_bytes(30 * GIB)
        .budget_basis(BudgetBasis::DeviceFree)
        .build();
    let mut a100 = GpuDeviceInfo::builder()
        .index(1)
        .name("A100")
        .total_bytes(40 * GIB)
        .free_bytes(17 * GIB)
        .budget_bytes(15 * GIB)
        .budget_basis(BudgetBasis::MigInstanceFree)
        .build();
    a100.mig_instances = vec![
        MigInstance::for_test(1, 0, Some((20 * GIB, 2 * GIB, 18 * GIB))),
        MigInstance::for_test(2, 0, Some((20 * GIB, 15 * GIB, 5 * GIB))),
    ];
    let unknown = GpuDeviceInfo::builder().index(2).name("mystery").build();
    // Unified memory whose budget the library could not decide: its free memory counts.
    let apu = GpuDeviceInfo::builder()
        .index(3)
        .name("APU")
        .unified_memory(true)
        .free_bytes(12 * GIB)
        .build();
    let mut on_mig = process(401, "carol", "trainer", 1, Some(3 * GIB));
    on_mig.gpu_instance_id = Some(1);
    on_mig.compute_instance_id = Some(0);
    let mut worker_on_mig = process(101, "alice", "worker", 1, Some(GIB));
    worker_on_mig.gpu_instance_id = Some(2);
    worker_on_mig.compute_instance_id = Some(0);
    let mut frame = Frame::empty(FrameRequest::ALL);
    frame.taken = taken;
    frame.processes_taken = Some(taken);
    frame.devices = vec![
        device(
            h100,
            vec![
                process(100, "alice", "python3", 0, Some(vram_100)),
                process(101, "alice", "worker", 0, Some(4 * GIB)),
                process(200, "bob", "ollama", 0, Some(8 * GIB)),
                process(300, "alice", "Xorg", 0, None),
            ],
        ),
        device(a100, vec![worker_on_mig, on_mig]),
        device(unknown, Vec::new()),
        device(apu, Vec::new()),
    ];
    frame
}

struct Bench {
    app: App,
    history: History,
    t0: Instant,
}

/// An app showing `frame(22 GiB)` then, 3 s later, `frame(20 GiB)`, as alice, with the
/// table 4 rows high.
fn bench(settings: Settings) -> Bench {
    let t0 = Instant::now();
    let mut history = History::new(HistoryLimits::new(
        Duration::from_secs(600),
        Duration::from_secs(1),
        3,
    ));
    let mut app = App::new(Settings {
        me: Some("alice".to_owned()),
        ..settings
    });
    let facts: HashMap<u32, Lineage> = [(100, 1), (101, 100), (200, 1), (300, 100), (401, 101)]
        .into_iter()
        .map(|(pid, parent)| {
            let lineage = Lineage {
                parent: Some(parent),
                started: t0.checked_sub(Duration::from_secs(u64::from(pid))),
            };
            (pid, lineage)
        })
        .collect();
    app.facts = Some(Arc::new(Facts(facts)));
    app.layout.table_rows = Rect::new(0, 11, 80, 4);
    for (vram, at) in [(22 * GIB, t0), (20 * GIB, t0 + Duration::from_secs(3))] {
        let frame = frame(vram, at);
        history.record(&frame);
        app.set_frame(Arc::new(frame), &history, at);
    }
    Bench { app, history, t0 }
}

impl Bench {
    /// Sends `events`, refreshing when asked; returns the other effects.
    fn send(&mut self, events: impl IntoIterator<Item = Event>) -> Vec<Effect> {
        let mut effects = Vec::new();
        for event in events {
            for effect in self.app.update(&event) {
                if effect == Effect::Refresh {
                    self.app.refresh(&self.history);
                } else {
                    effects.push(effect);
                }
            }
        }
        effects
    }

    fn keys(&mut self, text: &str) -> Vec<Effect> {
        self.send(text.chars().map(|c| key(KeyCode::Char(c))))
    }

    /// The table as (pid, gpu) pairs.
    fn order(&self) -> Vec<(u32, u32)> {
        self.app
            .rows
            .iter()
            .map(|r| (r.pid, r.gpu.unwrap_or(u32::MAX)))
            .collect()
    }

    fn row(&self, pid: u32, gpu: u32) -> &ProcessRow {
        self.app
            .rows
            .iter()
            .find(|r| r.pid == pid && r.gpu == Some(gpu))
            .unwrap()
    }
}

fn key(code: KeyCode) -> Event {
    Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn ctrl(c: char) -> Event {
    Event::Key(KeyEvent {
        code: KeyCode::Char(c),
        modifiers: KeyModifiers::CONTROL,
        kind: KeyEventKind::Press,
        state: KeyEventState::NONE,
    })
}

fn mouse(kind: MouseEventKind, column: u16, row: u16) -> Event {
    Event::Mouse(MouseEvent {
        kind,
        column,
        row,
        modifiers: KeyModifiers::NONE,
    })
}

fn click(column: u16, row: u16) -> Event {
    mouse(MouseEventKind::Down(MouseButton::Left), column, row)
}

#[test]
fn each_process_gets_a_row_per_device_with_the_entrys_figures() {
    let b = bench(Settings::default());
    assert_eq!(b.app.rows.len(), 6);
    let python = b.row(100, 0);
    assert_eq!(python.user.as_deref(), Some("alice"));
    assert_eq!(python.command.as_deref(), Some("python3 --pid 100"));
    assert_eq!(python.rss_bytes, Some(100 << 20));
    assert_eq!(python.cgroup.as_deref(), Some("/user.slice/alice"));
    assert!(python.mine);
    assert!(!b.row(200, 0).mine);
    assert_eq!(b.row(401, 1).mig, Some((1, 0)));
    assert_eq!(python.mig, None);
    assert_eq!(python.age, Some(Duration::from_secs(103)));
}

#[test]
fn peak_is_the_historys_and_delta_counts_from_the_first_reading_seen() {
    let b = bench(Settings::default());
    let python = b.row(100, 0);
    assert_eq!(python.vram_bytes, Some(20 * GIB));
    assert_eq!(python.peak_bytes, Some(22 * GIB));
    assert_eq!(python.delta_bytes, Some(-2 * (GIB as i64)));
    assert_eq!(b.row(200, 0).delta_bytes, Some(0));
    // Unknown VRAM: no delta and no peak, never 0.
    let xorg = b.row(300, 0);
    assert_eq!((xorg.delta_bytes, xorg.peak_bytes), (None, None));
}

#[test]
fn without_process_facts_age_is_unknown_not_zero() {
    let mut b = bench(Settings::default());
    b.app.facts = None;
    b.app.lineages.clear();
    b.app.refresh(&b.history);
    assert!(b.app.rows.iter().all(|r| r.age.is_none()));
}

#[test]
fn the_table_starts_by_vram_largest_first_with_unknown_vram_last() {
    let b = bench(Settings::default());
    assert_eq!(
        b.order(),
        [(100, 0), (200, 0), (101, 0), (401, 1), (101, 1), (300, 0)]
    );
}

#[test]
fn the_sort_menu_picks_a_column_and_picking_it_again_flips_it() {
    let mut b = bench(Settings::default());
    b.keys("s");
    assert_eq!(
        b.app.mode,
        Mode::SortMenu {
            choice: Column::Vram.position()
        }
    );
    // VRAM is 4th: up four times is PID.
    b.send([
        key(KeyCode::Up),
        key(KeyCode::Up),
        key(KeyCode::Up),
        key(KeyCode::Up),
    ]);
    b.send([key(KeyCode::Up), key(KeyCode::Enter)]);
    assert_eq!(b.app.mode, Mode::Normal);
    assert_eq!(
        b.app.sort,
        Sort {
            column: Column::Pid,
            descending: false
        }
    );
    assert_eq!(
        b.order(),
        [(100, 0), (101, 0), (101, 1), (200, 0), (300, 0), (401, 1)]
    );
    b.send([key(KeyCode::Char('s')), key(KeyCode::Enter)]);
    assert!(b.app.sort.descending);
    assert_eq!(b.order()[0], (401, 1));
    // Esc leaves the menu without sorting.
    b.send([
        key(KeyCode::Char('s')),
        key(KeyCode::Down),
        key(KeyCode::Esc),
    ]);
    assert_eq!(b.app.sort.column, Column::Pid);
}

#[test]
fn angle_brackets_move_the_sort_column_and_capital_i_inverts() {
    let mut b = bench(Settings::default());
    b.keys(">");
    assert_eq!(
        b.app.sort,
        Sort {
            column: Column::Shared,
            descending: true
        }
    );
    b.keys("<<");
    assert_eq!(
        b.app.sort,
        Sort {
            column: Column::Gpu,
            descending: false
        }
    );
    // GPU then MIG instance, ties by pid.
    assert_eq!(
        b.order(),
        [(100, 0), (101, 0), (200, 0), (300, 0), (401, 1), (101, 1)]
    );
    b.keys("I");
    assert!(b.app.sort.descending);
    assert_eq!(b.order()[0], (101, 1));
    // At the left end `<` stops.
    b.keys("<<<<<<<<");
    assert_eq!(b.app.sort.column, Column::Pid);
}

#[test]
fn unknown_figures_sort_last_in_both_directions() {
    let mut b = bench(Settings::default());
    assert_eq!(b.order().last(), Some(&(300, 0)));
    b.keys("I");
    assert!(!b.app.sort.descending);
    assert_eq!(b.order()[0], (101, 1));
    assert_eq!(b.order().last(), Some(&(300, 0)));
}

#[test]
fn a_filter_typed_after_slash_applies_on_enter() {
    let mut b = bench(Settings::default());
    b.keys("/vram>3GiB and user=alice");
    assert!(
        matches!(&b.app.mode, Mode::Filter { input, error: None } if input == "vram>3GiB and user=alice")
    );
    // Typing changes nothing until Enter.
    assert_eq!(b.app.rows.len(), 6);
    b.send([key(KeyCode::Enter)]);
    assert_eq!(b.app.mode, Mode::Normal);
    assert_eq!(b.order(), [(100, 0), (101, 0)]);
    assert_eq!(
        b.app.filter.as_ref().map(|(text, _)| text.as_str()),
        Some("vram>3GiB and user=alice")
    );
}

#[test]
fn a_filter_that_does_not_parse_stays_open_with_the_error_until_fixed_or_cancelled() {
    let mut b = bench(Settings::default());
    b.keys("/vram>3XB");
    b.send([key(KeyCode::Enter)]);
    let Mode::Filter {
        error: Some(error), ..
    } = &b.app.mode
    else {
        panic!("{:?}", b.app.mode);
    };
    assert!(error.contains("unknown unit `xb`"), "{error}");
    assert_eq!(b.app.filter, None);
    // Backspace edits and clears the error; Esc leaves the filter as it was.
    b.send([key(KeyCode::Backspace)]);
    assert!(matches!(&b.app.mode, Mode::Filter { input, error: None } if input == "vram>3X"));
    b.send([key(KeyCode::Esc)]);
    assert_eq!(b.app.mode, Mode::Normal);
    assert_eq!(b.app.rows.len(), 6);
}

#[test]
fn slash_then_enter_on_nothing_clears_the_filter() {
    let mut b = bench(Settings::default());
    b.keys("/ollama");
    b.send([key(KeyCode::Enter)]);
    assert_eq!(b.order(), [(200, 0)]);
    b.keys("/");
    b.send([key(KeyCode::Enter)]);
    assert_eq!(b.app.filter, None);
    assert_eq!(b.app.rows.len(), 6);
}

#[test]
fn the_tree_puts_children_under_parents_with_subtree_totals_per_device() {
    let mut b = bench(Settings::default());
    b.keys("t");
    assert!(b.app.tree);
    let shape: Vec<(u32, u32, u16)> = b
        .app
        .rows
        .iter()
        .map(|r| (r.pid, r.gpu.unwrap(), r.depth))
        .collect();
    // 100 (root), its worker 101 on both GPUs, 401 under 101; Xorg under 100 too but
    // last (unknown VRAM); 200 a root of its own.
    assert_eq!(
        shape,
        [
            (100, 0, 0),
            (101, 0, 1),
            (101, 1, 1),
            (401, 1, 2),
            (300, 0, 1),
            (200, 0, 0),
        ]
    );
    // 101 on GPU 1: itself (1 GiB) and 401 (3 GiB).
    assert_eq!(b.row(101, 1).subtree_vram_bytes, Some(4 * GIB));
    assert_eq!(b.row(101, 0).subtree_vram_bytes, Some(4 * GIB));
    // 100 on GPU 0 includes Xorg, whose VRAM is unknown: the total is unknown.
    assert_eq!(b.row(100, 0).subtree_vram_bytes, None);
    assert_eq!(b.row(200, 0).subtree_vram_bytes, Some(8 * GIB));
    b.keys("/not xorg");
    b.send([key(KeyCode::Enter)]);
    assert_eq!(b.row(100, 0).subtree_vram_bytes, Some(24 * GIB));
    b.keys("t");
    assert!(
        b.app
            .rows
            .iter()
            .all(|r| r.depth == 0 && r.subtree_vram_bytes.is_none())
    );
}

#[test]
fn a_child_whose_parent_is_filtered_out_becomes_a_root() {
    let mut b = bench(Settings::default());
    b.keys("t/worker or trainer");
    b.send([key(KeyCode::Enter)]);
    let shape: Vec<(u32, u16)> = b.app.rows.iter().map(|r| (r.pid, r.depth)).collect();
    assert_eq!(shape, [(101, 0), (101, 0), (401, 1)]);
}

#[test]
fn u_shows_only_my_processes_and_says_so_when_it_cannot_tell_who_i_am() {
    let mut b = bench(Settings::default());
    b.keys("u");
    assert!(
        b.app
            .rows
            .iter()
            .all(|r| r.user.as_deref() == Some("alice"))
    );
    assert_eq!(b.app.rows.len(), 4);
    b.keys("u");
    assert_eq!(b.app.rows.len(), 6);

    b.app.settings.me = None;
    b.keys("u");
    assert!(!b.app.only_mine);
    assert!(
        b.app
            .status
            .as_deref()
            .unwrap()
            .contains("cannot tell which user")
    );
}

#[test]
fn the_selection_follows_its_process_across_refreshes_and_resorts() {
    let mut b = bench(Settings::default());
    assert_eq!(b.app.selected, Some(100));
    b.send([key(KeyCode::Down)]);
    assert_eq!((b.app.selected, b.app.selected_gpu), (Some(200), Some(0)));
    // ollama's place changes when sorted by pid; the selection stays on it.
    b.keys("s");
    b.send([key(KeyCode::Home)]);
    b.send((0..4).map(|_| key(KeyCode::Up)));
    b.send([key(KeyCode::Enter)]);
    assert_eq!(b.app.sort.column, Column::Pid);
    assert_eq!(b.app.selected, Some(200));
    assert_eq!(b.app.selected_index(), Some(3));
    // A new frame where python3 grew: still on ollama.
    let later = b.t0 + Duration::from_secs(6);
    let next = frame(40 * GIB, later);
    b.history.record(&next);
    b.app.set_frame(Arc::new(next), &b.history, later);
    assert_eq!(b.app.selected, Some(200));
    // The worker's second row is a row of its own: Down moves onto it, then past it.
    b.send([key(KeyCode::Home), key(KeyCode::Down)]);
    assert_eq!((b.app.selected, b.app.selected_gpu), (Some(101), Some(0)));
    b.send([key(KeyCode::Down)]);
    assert_eq!((b.app.selected, b.app.selected_gpu), (Some(101), Some(1)));
    b.send([key(KeyCode::Down)]);
    assert_eq!(b.app.selected, Some(200));
}

#[test]
fn when_the_selected_process_leaves_the_selection_stays_in_place() {
    let mut b = bench(Settings::default());
    b.send([key(KeyCode::Down)]);
    assert_eq!(b.app.selected, Some(200));
    let later = b.t0 + Duration::from_secs(6);
    let mut next = frame(20 * GIB, later);
    next.devices[0]
        .processes
        .as_mut()
        .unwrap()
        .rows
        .retain(|p| p.pid != 200);
    b.history.record(&next);
    b.app.set_frame(Arc::new(next), &b.history, later);
    assert_eq!(b.app.selected_index(), Some(1));
    assert_eq!(b.app.selected, Some(101));
}

#[test]
fn the_table_scrolls_to_keep_the_selection_in_view() {
    let mut b = bench(Settings::default());
    b.send([key(KeyCode::End)]);
    assert_eq!(b.app.selected_index(), Some(5));
    assert_eq!(b.app.table_scroll, 2);
    b.send([key(KeyCode::PageUp)]);
    assert_eq!(b.app.selected_index(), Some(1));
    assert_eq!(b.app.table_scroll, 1);
    b.send([key(KeyCode::Home)]);
    assert_eq!(b.app.table_scroll, 0);
    b.send([key(KeyCode::PageDown)]);
    assert_eq!(b.app.selected_index(), Some(4));
    assert_eq!(b.app.table_scroll, 1);
}

#[test]
fn a_new_selection_asks_for_the_charts_to_be_read_again() {
    let mut b = bench(Settings::default());
    assert_eq!(b.app.update(&key(KeyCode::Down)), [Effect::Refresh]);
    // At the bottom already: nothing changes, nothing to re-read.
    b.send([key(KeyCode::End)]);
    assert_eq!(b.app.update(&key(KeyCode::Down)), []);
}

#[test]
fn the_fits_overlay_parses_the_size_as_it_is_typed() {
    let mut b = bench(Settings::default());
    b.keys("F1");
    assert!(matches!(&b.app.mode, Mode::Fits { size: Some(1), .. }));
    b.keys("0GiB");
    assert_eq!(
        b.app.mode,
        Mode::Fits {
            input: "10GiB".to_owned(),
            size: Some(10 * GIB)
        }
    );
    assert_eq!(b.app.fits_cells()[0], (0, None, true));
    b.keys("x");
    assert!(matches!(&b.app.mode, Mode::Fits { size: None, .. }));
    assert_eq!(b.app.fits_cells(), []);
    b.send([key(KeyCode::Backspace)]);
    assert!(matches!(&b.app.mode, Mode::Fits { size: Some(_), .. }));
    // `q` is text here, Esc closes.
    assert_eq!(b.keys("q"), []);
    b.send([key(KeyCode::Esc)]);
    assert_eq!(b.app.mode, Mode::Normal);
}

#[test]
fn fits_lights_the_devices_and_mig_instances_with_room() {
    let b = bench(Settings::default());
    let frame = b.app.frame.clone().unwrap();
    assert_eq!(
        fits_devices(&frame, 10 * GIB),
        [
            (0, None, true),
            (1, None, true),
            (1, Some((1, 0)), false),
            (1, Some((2, 0)), true),
            // No budget known: not lit.
            (2, None, false),
            (3, None, true),
        ]
    );
    assert_eq!(
        fits_devices(&frame, 20 * GIB),
        [
            (0, None, true),
            (1, None, false),
            (1, Some((1, 0)), false),
            (1, Some((2, 0)), false),
            (2, None, false),
            (3, None, false),
        ]
    );
    assert!(fits_devices(&frame, 2 * GIB).contains(&(1, Some((1, 0)), true)));
}

#[test]
fn plus_and_minus_zoom_in_order_and_ask_for_the_charts_again() {
    let mut b = bench(Settings::default());
    assert_eq!(b.app.zoom, Zoom::TenMinutes);
    assert_eq!(b.app.update(&key(KeyCode::Char('+'))), [Effect::Refresh]);
    assert_eq!(b.app.zoom, Zoom::FiveMinutes);
    b.keys("++++");
    assert_eq!(b.app.zoom, Zoom::OneMinute);
    b.keys("---");
    assert_eq!(b.app.zoom, Zoom::FifteenMinutes);
    b.keys("-----");
    assert_eq!(b.app.zoom, Zoom::OneHour);
    assert_eq!(b.app.update(&key(KeyCode::Char('-'))), []);
}

#[test]
fn enter_shows_the_selected_process_and_esc_goes_back() {
    let mut b = bench(Settings::default());
    b.send([key(KeyCode::Down), key(KeyCode::Enter)]);
    assert_eq!(b.app.mode, Mode::Detail { pid: 200 });
    // Table keys do not move the selection behind the detail.
    b.send([key(KeyCode::Down)]);
    assert_eq!(b.app.selected, Some(200));
    assert_eq!(b.send([key(KeyCode::Esc)]), []);
    assert_eq!(b.app.mode, Mode::Normal);
}

#[test]
fn q_esc_and_ctrl_c_quit_but_esc_closes_an_overlay_first() {
    let mut b = bench(Settings::default());
    assert_eq!(b.keys("q"), [Effect::Quit]);
    assert_eq!(b.send([key(KeyCode::Esc)]), [Effect::Quit]);
    b.keys("?");
    assert_eq!(b.app.mode, Mode::Help);
    assert_eq!(b.send([key(KeyCode::Esc)]), []);
    assert_eq!(b.app.mode, Mode::Normal);
    b.keys("/");
    assert_eq!(b.send([ctrl('c')]), [Effect::Quit]);
    assert_eq!(b.keys("q"), []);
}

#[test]
fn capital_r_toggles_recording_and_question_mark_toggles_help() {
    let mut b = bench(Settings::default());
    assert_eq!(b.keys("R"), [Effect::ToggleRecording]);
    b.keys("?");
    assert_eq!(b.app.mode, Mode::Help);
    b.keys("?");
    assert_eq!(b.app.mode, Mode::Normal);
}

#[test]
fn devices_scroll_with_arrows_and_brackets_within_the_device_count() {
    let mut b = bench(Settings::default());
    b.send([key(KeyCode::Right)]);
    assert_eq!(b.app.device_scroll, 1);
    b.keys("]]]]");
    assert_eq!(b.app.device_scroll, 3);
    b.send([key(KeyCode::Left)]);
    b.keys("[[[[");
    assert_eq!(b.app.device_scroll, 0);
}

#[test]
fn the_signal_menu_sends_only_after_y() {
    let mut b = bench(Settings::default());
    let mut sender = FakeSender::default();
    b.keys("k");
    assert_eq!(
        b.app.mode,
        Mode::SignalMenu {
            pid: 100,
            choice: 0
        }
    );
    b.send([key(KeyCode::Down), key(KeyCode::Enter)]);
    assert_eq!(
        b.app.mode,
        Mode::ConfirmSignal {
            pid: 100,
            signal: Signal::Kill
        }
    );
    let effects = b.keys("y");
    assert_eq!(
        effects,
        [Effect::Signal {
            pid: 100,
            signal: Signal::Kill
        }]
    );
    carry_out(&effects, &mut sender, &mut b.app);
    assert_eq!(sender.sent, [(100, Signal::Kill)]);
    assert_eq!(
        b.app.status.as_deref(),
        Some("sent SIGKILL to 100 (python3)")
    );
    assert_eq!(b.app.mode, Mode::Normal);
}

#[test]
fn anything_but_y_at_the_confirmation_sends_nothing() {
    let mut b = bench(Settings::default());
    let mut sender = FakeSender::default();
    for answer in [
        key(KeyCode::Char('n')),
        key(KeyCode::Enter),
        key(KeyCode::Esc),
        key(KeyCode::Char('k')),
    ] {
        let mut effects = b.send([key(KeyCode::Char('k')), key(KeyCode::Enter)]);
        effects.extend(b.send([answer]));
        carry_out(&effects, &mut sender, &mut b.app);
        assert_eq!(b.app.mode, Mode::Normal);
        assert_eq!(b.app.status.as_deref(), Some("SIGTERM not sent to 100"));
    }
    // Esc in the menu itself closes it.
    let effects = b.send([
        key(KeyCode::Char('k')),
        key(KeyCode::Esc),
        key(KeyCode::Char('y')),
    ]);
    carry_out(&effects, &mut sender, &mut b.app);
    assert!(sender.sent.is_empty());
}

#[test]
fn the_oss_refusal_is_what_the_status_says() {
    let mut b = bench(Settings::default());
    let mut sender = FakeSender {
        refuse: Some("Operation not permitted (os error 1)".to_owned()),
        ..FakeSender::default()
    };
    // bob's process: allowed to try.
    b.send([key(KeyCode::Down)]);
    let effects = b.send([
        key(KeyCode::Char('k')),
        key(KeyCode::Enter),
        key(KeyCode::Char('y')),
    ]);
    carry_out(&effects, &mut sender, &mut b.app);
    assert_eq!(sender.sent, [(200, Signal::Term)]);
    assert_eq!(
        b.app.status.as_deref(),
        Some("could not send SIGTERM to 200 (ollama): Operation not permitted (os error 1)")
    );
}

/// Every key the screen knows, twice over, and clicks: the way someone might hammer it.
fn everything() -> Vec<Event> {
    let mut events: Vec<Event> = "kyk\nyKsy/yFy?y"
        .chars()
        .map(|c| key(KeyCode::Char(c)))
        .collect();
    for _ in 0..2 {
        for code in [
            KeyCode::Char('k'),
            KeyCode::Enter,
            KeyCode::Char('y'),
            KeyCode::Down,
            KeyCode::Char('k'),
            KeyCode::Down,
            KeyCode::Down,
            KeyCode::Enter,
            KeyCode::Char('Y'),
            KeyCode::Esc,
            KeyCode::Enter,
            KeyCode::Char('k'),
            KeyCode::Char('y'),
        ] {
            events.push(key(code));
        }
        events.push(click(2, 12));
        events.push(key(KeyCode::Char('k')));
        events.push(key(KeyCode::Enter));
        events.push(key(KeyCode::Char('y')));
    }
    events
}

#[test]
fn readonly_sends_nothing_whatever_is_pressed() {
    for settings in [
        Settings {
            readonly: true,
            ..Settings::default()
        },
        Settings {
            replay: true,
            ..Settings::default()
        },
    ] {
        let mut b = bench(settings);
        let mut sender = FakeSender::default();
        for event in everything() {
            let effects = b.send([event]);
            assert!(!effects.iter().any(|e| matches!(e, Effect::Signal { .. })));
            carry_out(&effects, &mut sender, &mut b.app);
            if let Mode::Fits { .. } | Mode::Filter { .. } = b.app.mode {
                b.send([key(KeyCode::Esc)]);
            }
        }
        assert!(sender.sent.is_empty(), "{:?}", sender.sent);
        if b.app.mode != Mode::Normal {
            b.send([key(KeyCode::Esc)]);
        }
        b.keys("k");
        assert!(
            b.app
                .status
                .as_deref()
                .unwrap()
                .starts_with("signals are off")
        );
        assert_eq!(b.app.mode, Mode::Normal);
    }
}

#[test]
fn carrying_out_refuses_a_signal_effect_in_a_readonly_session() {
    let mut b = bench(Settings {
        readonly: true,
        ..Settings::default()
    });
    let mut sender = FakeSender::default();
    let effects = [Effect::Signal {
        pid: 100,
        signal: Signal::Kill,
    }];
    carry_out(&effects, &mut sender, &mut b.app);
    assert!(sender.sent.is_empty());
}

/// A table header at y 10 with PID at x 0..8, USER 8..16, VRAM 16..26, rows at y 11..15.
fn with_layout(b: &mut Bench) {
    b.app.layout.columns = vec![
        (Column::Pid, 0, 8),
        (Column::User, 8, 8),
        (Column::Vram, 16, 10),
    ];
    b.app.layout.table = Rect::new(0, 10, 80, 5);
    b.app.layout.table_rows = Rect::new(0, 11, 80, 4);
    b.app.layout.devices = Rect::new(0, 1, 80, 4);
}

#[test]
fn clicking_a_header_sorts_by_it_and_clicking_again_flips_it() {
    let mut b = bench(Settings::default());
    with_layout(&mut b);
    b.send([click(10, 10)]);
    assert_eq!(
        b.app.sort,
        Sort {
            column: Column::User,
            descending: false
        }
    );
    assert_eq!(b.app.rows[0].user.as_deref(), Some("alice"));
    b.send([click(12, 10)]);
    assert!(b.app.sort.descending);
    assert_eq!(b.app.rows[0].user.as_deref(), Some("carol"));
    // Past the last column: nothing.
    b.send([click(40, 10)]);
    assert_eq!(b.app.sort.column, Column::User);
}

#[test]
fn clicking_a_row_selects_it_and_the_wheel_scrolls_table_or_devices() {
    let mut b = bench(Settings::default());
    with_layout(&mut b);
    b.send([click(30, 13)]);
    assert_eq!(b.app.selected_index(), Some(2));
    // Below the last row shown: nothing.
    b.send([click(30, 16)]);
    assert_eq!(b.app.selected_index(), Some(2));
    b.send([mouse(MouseEventKind::ScrollDown, 5, 12)]);
    assert_eq!(b.app.selected_index(), Some(5));
    assert_eq!(b.app.table_scroll, 2);
    // With the table scrolled, a click picks the row shown there.
    b.send([click(0, 11)]);
    assert_eq!(b.app.selected_index(), Some(2));
    b.send([mouse(MouseEventKind::ScrollDown, 5, 2)]);
    assert_eq!(b.app.device_scroll, 1);
    assert_eq!(b.app.selected_index(), Some(2));
    b.send([mouse(MouseEventKind::ScrollUp, 5, 2)]);
    assert_eq!(b.app.device_scroll, 0);
}

#[test]
fn clicks_are_ignored_while_an_overlay_is_open() {
    let mut b = bench(Settings::default());
    with_layout(&mut b);
    b.keys("?");
    b.send([click(10, 10), click(30, 13)]);
    assert_eq!(b.app.sort, Sort::default());
    assert_eq!(b.app.selected_index(), Some(0));
}

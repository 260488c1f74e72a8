//! The screen drawn into ratatui's `TestBackend`: insta snapshots of a documented subset, and
//! the layout rules checked over the whole matrix.
//!
//! The matrix is sizes 0×0, tiny, 20×3, 40×10, 80×24, 120×40, 200×60 and a few odd ones ×
//! 0, 1, 8, 16 and 64 GPUs × the five themes (× `--ascii`). Snapshotting all of it would be
//! hundreds of files nobody reads, so the snapshots are:
//! - every size at 8 GPUs, default theme (`size_*`);
//! - every GPU count at 80×24 and 200×60 (`gpus_*`);
//! - every theme at 80×24, with a map of the styles under the text (`theme_*`), and
//!   `--ascii` at 80×24 (`ascii_80x24`);
//! - every overlay at 80×24 (`overlay_*`);
//! - frames from the NVML double (4 GPUs; MIG) and from the DRM fixture tree (`source_*`).
//!
//! and over the whole matrix, programmatically ([`layout_rules_hold_across_the_matrix`]): no
//! panic; panels inside the screen and never overlapping; no panel drawn empty; table columns
//! are all columns minus a prefix of the drop order, with `PID` and `VRAM` always; every
//! device visible or reachable by scrolling; the chart's buckets are its plot's width.
//!
//! Frames built by hand (the library's test builders) pin everything a machine would
//! change: host memory, users, pids, names; the history is recorded from them at fixed
//! offsets from one instant, so nothing depends on when the test runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyCode, KeyEvent};
use hypomnesis::DeviceMetric;
use hypomnesis::monitor::HistoryLimits;
use hypomnesis::{
    CgroupMemory, DeviceField, DeviceFrame, DeviceTelemetry, Frame, FrameRequest, GpuDeviceInfo,
    GpuProcessEntry, GpuProcessListing, GpuQuerySource, History, HostMemory, MigInstance,
    TelemetryField, Unavailable,
};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};

use super::table::DROP_ORDER;
use super::{DeviceMode, draw, layout, plan};
use crate::cmd::top::app::{App, Mode, Settings, Signal};
use crate::cmd::top::rows::Column;
use crate::cmd::top::theme::Theme;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The host every test frame shows: fixed, so snapshots do not depend on this machine.
fn host() -> HostMemory {
    let mut host = HostMemory::for_test(512 * GIB);
    host.available_bytes = Some(431 * GIB);
    host.swap_total_bytes = Some(8 * GIB);
    host.swap_free_bytes = Some(7 * GIB);
    let mut cgroup = CgroupMemory::for_test("/slurm/job_4242");
    cgroup.limit_bytes = Some(256 * GIB);
    cgroup.usage_bytes = Some(97 * GIB);
    cgroup.peak_bytes = Some(131 * GIB);
    host.cgroup = Some(cgroup);
    host
}

const NAMES: [&str; 5] = ["python", "vllm", "torchrun", "llama-server", "jupyter"];

/// A machine of `gpus` H100s and `processes` processes spread over them, every figure
/// derived from the indices. GPU 1 cannot read its temperature (a `?` with its reason); on 8
/// GPUs, GPU 7 is in MIG mode with three instances; process 3 has no VRAM figure.
pub(crate) fn synthetic(gpus: u32, processes: u32) -> Frame {
    let mut frame = Frame::empty(FrameRequest::ALL);
    frame.host = Some(host());
    let total = 81_559 * MIB;
    let reserved = 512 * MIB;
    for i in 0..gpus {
        let used = (u64::from(i * 7919 % 70) + 3) * GIB;
        let mut info = GpuDeviceInfo::builder()
            .index(i)
            .name("NVIDIA H100 80GB HBM3")
            .total_bytes(total)
            .reserved_bytes(reserved)
            .used_bytes(used)
            .free_bytes(total - used - reserved)
            .budget_bytes(total - used - reserved)
            .build();
        if gpus == 8 && i == 7 {
            info.mig_instances = vec![
                MigInstance::for_test(1, 0, Some((40 * GIB, 30 * GIB, 10 * GIB))),
                MigInstance::for_test(2, 0, Some((20 * GIB, 2 * GIB, 18 * GIB))),
                MigInstance::for_test(3, 0, Some((20 * GIB, 20 * GIB, 0))),
            ];
        }
        let mut device = DeviceFrame::new(info);
        let mut t = DeviceTelemetry::empty(i, GpuQuerySource::Nvml);
        t.gpu_utilization_percent = Some(f64::from(i * 37 % 101));
        t.power_watts = Some(f64::from(90 + i * 53 % 600));
        t.power_limit_watts = Some(700.0);
        if i == 1 {
            t.unavailable.push(Unavailable::new(
                TelemetryField::TemperatureCelsius,
                "not supported by this GPU",
            ));
        } else {
            t.temperature_celsius = Some(f64::from(31 + i * 13 % 55));
        }
        device.telemetry = Some(t);
        device.processes = Some(GpuProcessListing::default());
        frame.devices.push(device);
    }
    for p in 0..processes {
        if gpus == 0 {
            break;
        }
        let gpu = p % gpus;
        let name = NAMES[(p % 5) as usize];
        let mut row = GpuProcessEntry::builder(2000 + p)
            .device_index(gpu)
            .name(name)
            .user(if p % 3 == 0 { "bob" } else { "alice" })
            .command(&format!(
                "/usr/bin/{name} --rank {p} --config /data/runs/{p}.yaml"
            ));
        if p != 3 {
            row = row.used_bytes(u64::from(p * 613 % 20_000 + 256) * MIB);
        }
        let mut row = row.build();
        row.rss_bytes = Some(u64::from(p % 7 + 1) * GIB);
        row.cgroup = Some(format!("/slurm/job_{}", 4000 + p % 4));
        if let Some(listing) = frame.devices[gpu as usize].processes.as_mut() {
            listing.rows.push(row);
        }
    }
    for d in &mut frame.devices {
        if let Some(l) = d.processes.as_mut() {
            l.rows.sort_by_key(|r| r.pid);
            l.running_as_root = true;
        }
    }
    frame
}

/// Ten minutes of history behind `frame` ending at the returned instant: memory used swings,
/// GPU 0 goes missing for half a minute (a gap) and peaks for one second at 5 minutes; the
/// processes are scanned every 3 s for the last minute.
fn history(frame: &Frame) -> (History, Instant) {
    let start = frame.taken;
    let ticks = 600_u32;
    let mut history = History::new(HistoryLimits::new(
        Duration::from_secs(3600),
        Duration::from_secs(1),
        3,
    ));
    let mut devices_only = frame.clone();
    for d in &mut devices_only.devices {
        d.processes = None;
    }
    devices_only.processes_taken = None;
    for t in 0..ticks {
        let at = start + Duration::from_secs(u64::from(t));
        let scan = t + 60 >= ticks && t % 3 == 0;
        let mut f = if scan {
            frame.clone()
        } else {
            devices_only.clone()
        };
        f.taken = at;
        if scan {
            f.processes_taken = Some(at);
        }
        for d in &mut f.devices {
            let i = u64::from(d.device.index);
            if let (Some(used), Some(total)) = (d.device.used_bytes, d.device.total_bytes) {
                let wave = (u64::from(t) + i * 40) % 200;
                let swing = if wave < 100 { wave } else { 200 - wave };
                d.device.used_bytes = Some((used / 2 + used * swing / 200).min(total));
                if i == 0 && t == 300 {
                    d.device.used_bytes = Some(total * 95 / 100);
                }
            }
        }
        if (200..230).contains(&t) {
            f.devices.retain(|d| d.device.index != 0);
        }
        history.record(&f);
    }
    let mut frame = frame.clone();
    frame.taken = start + Duration::from_secs(u64::from(ticks - 1));
    (history, frame.taken)
}

/// The state `top` would have showing `frame` at `w`×`h`: rows and charts read through the
/// app's own refresh, the first row selected, "alice" running it.
fn app_with(frame: Frame, w: u16, h: u16, theme: Theme, ascii: bool) -> App {
    let (history, now) = history(&frame);
    app_over(frame, &history, now, (w, h), theme, ascii)
}

/// [`app_with`] over a history already recorded.
fn app_over(
    frame: Frame,
    history: &History,
    now: Instant,
    (w, h): (u16, u16),
    theme: Theme,
    ascii: bool,
) -> App {
    let mut frame = frame;
    frame.taken = now;
    let mut app = App::new(Settings {
        theme,
        ascii,
        me: Some("alice".to_owned()),
        ..Settings::default()
    });
    app.size = (w, h);
    app.frame = Some(Arc::new(frame));
    app.now = Some(now);
    app.layout = layout(&app, Rect::new(0, 0, w, h));
    app.refresh(history);
    app.selected = app.rows.get(1).map(|r| r.pid);
    app.refresh(history);
    app
}

fn app(gpus: u32, w: u16, h: u16) -> App {
    app_with(synthetic(gpus, gpus * 3), w, h, Theme::Default, false)
}

/// `app` drawn by [`draw`] into a `TestBackend` of `w`×`h`.
fn render(app: &App, w: u16, h: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("a test terminal");
    terminal.draw(|f| draw(f, app)).expect("drawing");
    terminal.backend().buffer().clone()
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

/// The buffer's styles as a map: one letter per distinct style (`.` for none), then the
/// legend. So a theme's snapshot shows which cell gets which colour.
fn style_map(buf: &Buffer) -> String {
    let area = buf.area;
    let mut seen: Vec<Style> = Vec::new();
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        for x in area.left()..area.right() {
            let style = buf[(x, y)].style();
            let plain = style.fg.is_none_or(|c| c == Color::Reset)
                && style.bg.is_none_or(|c| c == Color::Reset)
                && style.add_modifier.is_empty();
            if plain {
                out.push('.');
                continue;
            }
            let k = seen.iter().position(|s| *s == style).unwrap_or_else(|| {
                seen.push(style);
                seen.len() - 1
            });
            out.push(char::from(
                b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"[k % 52],
            ));
        }
        out.push('\n');
    }
    out.push('\n');
    for (k, s) in seen.iter().enumerate() {
        let letter = char::from(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"[k % 52]);
        out.push_str(&format!(
            "{letter}: fg {:?} bg {:?} {:?}\n",
            s.fg, s.bg, s.add_modifier
        ));
    }
    out
}

fn snapshot(name: &str, buf: &Buffer) {
    insta::assert_snapshot!(name, text(buf));
}

const SIZES: [(u16, u16); 5] = [(20, 3), (40, 10), (80, 24), (120, 40), (200, 60)];
const GPU_COUNTS: [u32; 5] = [0, 1, 8, 16, 64];

// ---------------------------------------------------------------------------------------------
// Snapshots.

#[test]
fn every_size_at_eight_gpus_matches_its_snapshot() {
    for (w, h) in SIZES {
        let app = app(8, w, h);
        snapshot(&format!("size_{w}x{h}_8gpus"), &render(&app, w, h));
    }
}

#[test]
fn every_gpu_count_at_80x24_and_200x60_matches_its_snapshot() {
    for gpus in GPU_COUNTS {
        for (w, h) in [(80, 24), (200, 60)] {
            if gpus == 8 {
                continue; // in the size snapshots
            }
            let app = app(gpus, w, h);
            snapshot(&format!("gpus_{gpus}_{w}x{h}"), &render(&app, w, h));
        }
    }
}

#[test]
fn every_theme_at_80x24_matches_its_snapshot_with_its_styles() {
    for theme in Theme::ALL {
        let app = app_with(synthetic(8, 24), 80, 24, theme, false);
        let buf = render(&app, 80, 24);
        let shown = format!("{}\n{}", text(&buf), style_map(&buf));
        insta::assert_snapshot!(format!("theme_{}_80x24", theme.name()), shown);
    }
}

#[test]
fn ascii_draws_only_ascii_and_matches_its_snapshot() {
    let app = app_with(synthetic(8, 24), 80, 24, Theme::Default, true);
    let buf = render(&app, 80, 24);
    let shown = text(&buf);
    let foreign: Vec<char> = shown.chars().filter(|c| !c.is_ascii()).collect();
    assert!(foreign.is_empty(), "not ASCII: {foreign:?}\n{shown}");
    snapshot("ascii_80x24", &buf);
}

#[test]
fn every_overlay_at_80x24_matches_its_snapshot() {
    let base = app(8, 80, 24);
    let pid = base.rows[1].pid;
    let modes = [
        (
            "filter",
            Mode::Filter {
                input: "vram>2GiB and".to_owned(),
                error: Some(
                    "`and` needs a condition after it: vram>2GiB and user=alice".to_owned(),
                ),
            },
        ),
        ("sort", Mode::SortMenu { choice: 4 }),
        ("detail", Mode::Detail { pid }),
        ("signal", Mode::SignalMenu { pid, choice: 1 }),
        (
            "confirm",
            Mode::ConfirmSignal {
                pid,
                signal: Signal::Kill,
            },
        ),
        (
            "fits",
            Mode::Fits {
                input: "24GiB".to_owned(),
                size: Some(24 * GIB),
            },
        ),
        ("help", Mode::Help),
    ];
    for (name, mode) in modes {
        let mut app = base.clone();
        app.mode = mode;
        snapshot(&format!("overlay_{name}_80x24"), &render(&app, 80, 24));
    }
}

// ---------------------------------------------------------------------------------------------
// The layout rules, over the whole matrix.

/// Every panel of `plan` with a name, for messages.
fn panels(plan: &super::Plan) -> [(&'static str, Rect); 6] {
    let s = &plan.screen;
    [
        ("header", s.header),
        ("devices", s.devices),
        ("chart", s.chart),
        ("table", s.table),
        ("notes", plan.notes),
        ("footer", s.footer),
    ]
}

fn blank(buf: &Buffer, r: Rect) -> bool {
    r.positions().all(|p| buf[p].symbol().trim().is_empty())
}

/// The devices shown with the panel scrolled to each position in turn.
fn reachable(app: &App, area: Rect) -> Vec<u32> {
    let n = app.frame.as_ref().map_or(0, |f| f.devices.len());
    let mut seen: Vec<u32> = Vec::new();
    let mut app = app.clone();
    for scroll in 0..n.max(1) {
        app.device_scroll = scroll;
        for (index, _) in layout(&app, area).device_cells {
            if !seen.contains(&index) {
                seen.push(index);
            }
        }
    }
    seen.sort_unstable();
    seen
}

#[test]
fn layout_rules_hold_across_the_matrix() {
    let sizes = [
        (0, 0),
        (1, 1),
        (19, 3),
        (20, 2),
        (20, 3),
        (25, 5),
        (40, 10),
        (33, 7),
        (60, 15),
        (80, 24),
        (100, 30),
        (120, 40),
        (200, 60),
    ];
    for gpus in GPU_COUNTS {
        let frame = synthetic(gpus, gpus * 4);
        let (history, now) = history(&frame);
        for (w, h) in sizes {
            for (theme, ascii) in Theme::ALL
                .iter()
                .map(|t| (*t, false))
                .chain([(Theme::Default, true)])
            {
                let app = app_over(frame.clone(), &history, now, (w, h), theme, ascii);
                let area = Rect::new(0, 0, w, h);
                let buf = render(&app, w, h);
                if theme != Theme::Default || ascii {
                    continue; // the layout does not depend on the theme
                }
                let at = format!("{gpus} GPUs at {w}x{h}");
                let p = plan(&app, area);
                if w < super::MIN_WIDTH || h < super::MIN_HEIGHT {
                    assert!(panels(&p).iter().all(|(_, r)| r.is_empty()), "{at}");
                    if !area.is_empty() {
                        let notice: String = "hmn top needs 20×3 or more"
                            .chars()
                            .take(usize::from(w))
                            .collect();
                        assert!(
                            text(&buf).starts_with(notice.trim_end()),
                            "{at}: {}",
                            text(&buf)
                        );
                    }
                    continue;
                }
                let shown: Vec<_> = panels(&p)
                    .into_iter()
                    .filter(|(_, r)| !r.is_empty())
                    .collect();
                for (i, (a, ra)) in shown.iter().enumerate() {
                    assert_eq!(
                        ra.intersection(area),
                        *ra,
                        "{at}: {a} {ra:?} leaves the screen"
                    );
                    assert!(
                        !blank(&buf, *ra),
                        "{at}: {a} is drawn empty\n{}",
                        text(&buf)
                    );
                    for (b, rb) in &shown[i + 1..] {
                        assert!(!ra.intersects(*rb), "{at}: {a} {ra:?} overlaps {b} {rb:?}");
                    }
                }
                assert!(!p.screen.footer.is_empty(), "{at}: no footer");
                // Columns: all of them but a prefix of the drop order, left to right, inside.
                if !p.screen.table.is_empty() {
                    let cols: Vec<Column> = p.screen.columns.iter().map(|c| c.0).collect();
                    let dropped = Column::ALL.len() - cols.len();
                    let expected: Vec<Column> = Column::ALL
                        .into_iter()
                        .filter(|c| !DROP_ORDER[..dropped].contains(c))
                        .collect();
                    assert_eq!(cols, expected, "{at}");
                    assert!(
                        cols.contains(&Column::Pid) && cols.contains(&Column::Vram),
                        "{at}"
                    );
                    for pair in p.screen.columns.windows(2) {
                        assert!(pair[0].1 + pair[0].2 < pair[1].1, "{at}: {pair:?}");
                    }
                    let last = p.screen.columns.last().expect("a column");
                    assert!(last.1 + last.2 <= w, "{at}: {last:?}");
                }
                // Every device visible, or reachable by scrolling.
                let all: Vec<u32> = (0..gpus).collect();
                assert_eq!(reachable(&app, area), all, "{at}");
                for (_, cell) in &p.screen.device_cells {
                    assert_eq!(cell.intersection(p.screen.devices), *cell, "{at}");
                }
                // The chart reads as many buckets as its plot is wide.
                if !p.screen.chart.is_empty() {
                    assert_eq!(
                        p.screen.chart_buckets,
                        usize::from(super::chart::plot_area(p.screen.chart).width),
                        "{at}"
                    );
                    assert!(p.screen.chart_buckets > 0, "{at}");
                    let points = app.charts.device_used.first().map_or(0, |d| d.1.len());
                    assert_eq!(points, p.screen.chart_buckets, "{at}");
                }
            }
        }
    }
}

#[test]
fn the_devices_panel_degrades_from_two_lines_to_a_scrolled_grid() {
    let mode = |gpus, w, h| plan(&app(gpus, w, h), Rect::new(0, 0, w, h)).device_mode;
    assert_eq!(mode(8, 200, 60), DeviceMode::TwoLines);
    assert_eq!(mode(8, 120, 40), DeviceMode::OneLine);
    assert!(matches!(mode(8, 80, 24), DeviceMode::Grid { shown: 8, .. }));
    assert!(matches!(
        mode(64, 200, 60),
        DeviceMode::Grid { shown: 64, .. }
    ));
    let DeviceMode::Grid { first, shown, .. } = mode(64, 80, 24) else {
        panic!("64 GPUs at 80x24 are a grid");
    };
    assert!(first == 0 && shown < 64, "{first} {shown}");
    let mut scrolled = app(64, 80, 24);
    scrolled.device_scroll = 16;
    let screen = text(&render(&scrolled, 80, 24));
    assert!(
        screen.contains(&format!("GPUs 17–{} of 64 ([ ])", 16 + shown)),
        "{screen}"
    );
}

// ---------------------------------------------------------------------------------------------
// What the screen says.

#[test]
fn unknown_figures_show_as_a_question_mark_with_the_reason_never_as_zero() {
    let mut frame = synthetic(2, 6);
    let d = &mut frame.devices[0].device;
    d.used_bytes = None;
    d.free_bytes = None;
    d.unavailable.push(Unavailable::new(
        DeviceField::UsedBytes,
        "the driver refused the memory query",
    ));
    let app = app_with(frame, 120, 40, Theme::Default, false);
    let screen = text(&render(&app, 120, 40));
    // Two lines per GPU at this size: the bars are on GPU 0's second line.
    let lines: Vec<&str> = screen.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.starts_with("  0 "))
        .expect("GPU 0's line");
    assert!(
        lines[first + 1].contains("?/79.6 GiB"),
        "{}",
        lines[first + 1]
    );
    assert!(!lines[first + 1].contains("0 B/"), "{}", lines[first + 1]);
    assert!(
        screen.contains("the driver refused the memory query"),
        "{screen}"
    );
    assert!(screen.contains("not supported by this GPU"), "{screen}");
    // Process 2003 has no VRAM figure: its row says `?`.
    let row = screen
        .lines()
        .find(|l| l.trim_start().starts_with("2003 "))
        .expect("pid 2003");
    assert!(row.contains(" ? "), "{row}");
    assert!(!row.contains(" 0 B"), "{row}");
}

#[test]
fn the_sort_column_shows_its_direction_and_the_selected_row_is_highlighted() {
    let mut app = app(2, 120, 40);
    let screen = text(&render(&app, 120, 40));
    assert!(screen.contains("VRAM▼"), "{screen}");
    app.sort.descending = false;
    app.sort.column = Column::Pid;
    let buf = render(&app, 120, 40);
    assert!(text(&buf).contains("PID▲"), "{}", text(&buf));
    let rows = app.layout.table_rows;
    let selected = app
        .rows
        .iter()
        .position(|r| Some(r.pid) == app.selected)
        .expect("a selected row");
    let y = rows.y + u16::try_from(selected).expect("small");
    assert_eq!(
        buf[(rows.x + 2, y)].style().bg,
        Theme::Default.styles().selected.bg
    );
    // bob's rows are dimmed for alice.
    let bob = app
        .rows
        .iter()
        .position(|r| r.user.as_deref() == Some("bob"))
        .expect("bob");
    let y = rows.y + u16::try_from(bob).expect("small");
    assert!(
        buf[(rows.x + 2, y)]
            .style()
            .add_modifier
            .contains(ratatui::style::Modifier::DIM)
    );
}

#[test]
fn the_tree_view_indents_children_under_their_parent() {
    let mut app = app(2, 120, 40);
    app.tree = true;
    app.rows[1].depth = 1;
    app.rows[2].depth = 2;
    let screen = text(&render(&app, 120, 40));
    assert!(screen.contains("└ "), "{screen}");
    assert!(screen.contains("  └ "), "{screen}");
}

#[test]
fn the_fits_overlay_lights_up_devices_and_mig_instances_where_the_size_fits() {
    let mut app = app(8, 200, 60);
    app.mode = Mode::Fits {
        input: "19GiB".to_owned(),
        size: Some(19 * GIB),
    };
    let buf = render(&app, 200, 60);
    let fits = Theme::Default.styles().fits;
    let frame = app.frame.clone().expect("a frame");
    for (index, cell) in &app.layout.device_cells {
        let d = frame.device(*index).expect("the device");
        let lit = buf[(cell.x + 1, cell.y)].style().bg == fits.bg;
        // A device lights up where `hmn fits` would say yes (its budget).
        let room = d.device.budget_bytes.expect("a budget");
        assert_eq!(lit, room >= 19 * GIB, "GPU {index}");
        if !d.device.mig_instances.is_empty() {
            // The instances with 30 and 20 GiB free fit, the one with 2 GiB does not.
            let rows: Vec<bool> = (0..3)
                .map(|i| buf[(cell.x + 6, cell.y + 2 + i)].style().bg == fits.bg)
                .collect();
            assert_eq!(rows, [true, false, true], "GPU {index}'s MIG instances");
        }
    }
    assert!(text(&buf).contains("fits on"), "{}", text(&buf));
}

#[test]
fn the_footer_shows_recording_status_and_the_filter_in_force() {
    let mut app = app(2, 120, 40);
    app.recording = Some("/tmp/top-2026.ndjson".into());
    app.status = Some("sent SIGTERM to 2001".to_owned());
    app.filter = Some((
        "user=alice".to_owned(),
        crate::cmd::top::filter::Filter::All,
    ));
    let screen = text(&render(&app, 120, 40));
    let footer = screen.lines().last().expect("a footer");
    assert!(footer.contains("● REC top-2026.ndjson"), "{footer}");
    assert!(footer.contains("sent SIGTERM to 2001"), "{footer}");
    assert!(footer.contains("filter user=alice"), "{footer}");
}

#[test]
fn hostile_process_names_are_escaped_before_they_reach_the_terminal() {
    let mut frame = synthetic(1, 2);
    if let Some(l) = frame.devices[0].processes.as_mut() {
        l.rows[0].name = Some("\u{1b}]0;owned\u{7}".to_owned());
        l.rows[0].command = Some("evil\u{1b}[2J".to_owned());
    }
    let app = app_with(frame, 200, 60, Theme::Default, false);
    let screen = text(&render(&app, 200, 60));
    assert!(!screen.contains('\u{1b}'), "{screen}");
    assert!(screen.contains("\\e]0;owned\\x07"), "{screen}");
}

#[test]
fn the_mono_theme_draws_no_colour() {
    let app = app_with(synthetic(8, 24), 120, 40, Theme::Mono, false);
    let buf = render(&app, 120, 40);
    for p in buf.area.positions() {
        let s = buf[p].style();
        assert!(
            s.fg.is_none_or(|c| c == Color::Reset) && s.bg.is_none_or(|c| c == Color::Reset),
            "{p:?}: {s:?}"
        );
    }
}

#[test]
fn a_zero_size_screen_draws_nothing_and_does_not_panic() {
    let app = app(64, 0, 0);
    let buf = render(&app, 0, 0);
    assert_eq!(buf.area.area(), 0);
    assert_eq!(
        layout(&app, Rect::default()),
        crate::cmd::top::app::ScreenLayout::default()
    );
}

// ---------------------------------------------------------------------------------------------
// Frames read by the library from the NVML double and from the DRM fixture tree.

/// Pins what a frame read on this machine would change: the host, and whether the reader
/// runs as root (which changes the listings' hints).
#[cfg(target_os = "linux")]
fn pin(frame: &mut Frame) {
    frame.host = Some(host());
    frame.host_error = None;
    for d in &mut frame.devices {
        if let Some(l) = d.processes.as_mut() {
            l.running_as_root = true;
        }
    }
}

/// The double's `scenario` read through a `Probe` (in a child process of its own: NVML's
/// state is process-wide), with an empty `/proc` and `/sys` so nothing of this machine shows,
/// drawn at 120×40 and snapshotted as `name`.
#[cfg(target_os = "linux")]
fn nvml_double_snapshot(test: &str, scenario: &str, name: &str) {
    test_support::with_nvml_double(test, scenario, |lib, _| {
        let empty = tempfile::tempdir().expect("a temporary directory");
        let probe = hypomnesis::Probe::builder()
            .ignore_environment()
            .nvml_lib(lib)
            .use_nvidia_smi(false)
            .proc_root(empty.path())
            .sys_root(empty.path())
            .build();
        let mut frame = probe.frame(FrameRequest::ALL);
        pin(&mut frame);
        assert!(frame.gpu_error.is_none(), "{:?}", frame.gpu_error);
        let app = app_with(frame, 120, 40, Theme::Default, false);
        let shown =
            text(&render(&app, 120, 40)).replace(&empty.path().display().to_string(), "[EMPTY]");
        insta::assert_snapshot!(name, shown);
    });
}

#[cfg(target_os = "linux")]
#[test]
fn four_gpus_from_the_nvml_double_match_their_snapshot() {
    nvml_double_snapshot(
        "cmd::top::ui::tests::four_gpus_from_the_nvml_double_match_their_snapshot",
        "four_gpus",
        "source_nvml_four_gpus_120x40",
    );
}

#[cfg(target_os = "linux")]
#[test]
fn mig_instances_from_the_nvml_double_are_child_rows() {
    nvml_double_snapshot(
        "cmd::top::ui::tests::mig_instances_from_the_nvml_double_are_child_rows",
        "mig",
        "source_nvml_mig_120x40",
    );
}

#[cfg(target_os = "linux")]
#[test]
fn telemetry_from_the_nvml_double_shows_in_the_devices_panel() {
    nvml_double_snapshot(
        "cmd::top::ui::tests::telemetry_from_the_nvml_double_shows_in_the_devices_panel",
        "telemetry",
        "source_nvml_telemetry_120x40",
    );
}

#[cfg(target_os = "linux")]
#[path = "../../../../../../fixtures/drm/tree.rs"]
mod drm_tree;

#[cfg(target_os = "linux")]
#[test]
fn drm_gpus_from_the_fixture_tree_match_their_snapshot() {
    let tree = drm_tree::standard();
    let probe = hypomnesis::Probe::builder()
        .ignore_environment()
        .proc_root(tree.proc())
        .sys_root(tree.sys())
        .use_nvml(false)
        .use_nvidia_smi(false)
        .build();
    let mut frame = probe.frame(FrameRequest::ALL);
    pin(&mut frame);
    assert!(!frame.devices.is_empty(), "{:?}", frame.gpu_error);
    let app = app_with(frame, 120, 40, Theme::Default, false);
    let root = tree
        .sys()
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let shown = text(&render(&app, 120, 40)).replace(&root, "[TREE]");
    insta::assert_snapshot!("source_drm_standard_120x40", shown);
}

#[test]
fn a_flat_series_at_the_top_of_the_scale_is_drawn_to_the_top() {
    let mut frame = synthetic(1, 0);
    frame.devices[0].device.used_bytes = Some(4 * GIB);
    let start = frame.taken;
    let mut history = History::new(HistoryLimits::new(
        Duration::from_secs(600),
        Duration::from_secs(1),
        1,
    ));
    for t in 0..30 {
        let mut f = frame.clone();
        f.taken = start + Duration::from_secs(t);
        history.record(&f);
    }
    let end = start + Duration::from_secs(30);
    let points = history.device(0, DeviceMetric::Used, end, Duration::from_secs(30), 30);
    let series = vec![(0, points)];
    let app = app_with(frame, 40, 12, Theme::Default, false);
    let ink = super::Ink::of(&app);
    let area = Rect::new(0, 0, 40, 8);
    let mut buf = Buffer::empty(area);
    #[allow(clippy::cast_precision_loss)] // 4 GiB is exact
    let top = (4 * GIB) as f64;
    super::chart::draw_series(&mut buf, area, &series, top, "30s", &ink);
    let plot = super::chart::plot_area(area);
    let x = plot.right() - 1;
    let column: Vec<&str> = (plot.top()..plot.bottom())
        .map(|y| buf[(x, y)].symbol())
        .collect();
    // The range min..max is one value at the very top: the top cell, full, and nothing below.
    let mut expected = vec![" "; usize::from(plot.height)];
    expected[0] = "█";
    assert_eq!(column, expected, "{}", text(&buf));
}

#[test]
fn the_readme_lists_every_key_the_help_shows() {
    let readme = include_str!("../../../../../../README.md");
    for (key, what) in super::footer::KEYS {
        let shown = if key == "mouse" {
            format!("| mouse | {what} |")
        } else {
            format!("| `{key}` | {what} |")
        };
        assert!(
            readme.contains(&shown),
            "README's hmn top keys lack {shown}"
        );
    }
}

#[test]
fn a_gap_in_the_history_is_a_blank_column_with_a_broken_axis_never_a_zero() {
    // GPU 0 is missing from the frames of seconds 200 to 229 of the ten minutes.
    let app = app(1, 80, 24);
    let buf = render(&app, 80, 24);
    let plot = super::chart::plot_area(app.layout.chart);
    let axis = plot.bottom();
    let (mut gaps, mut data) = (0, 0);
    for x in plot.left()..plot.right() {
        let column_blank = (plot.top()..plot.bottom()).all(|y| buf[(x, y)].symbol() == " ");
        let axis_blank = buf[(x, axis)].symbol() == " ";
        assert_eq!(column_blank, axis_blank, "column {x}\n{}", text(&buf));
        if column_blank {
            gaps += 1;
        } else {
            data += 1;
        }
    }
    // 30 s of 600 in 71 columns of 8.5 s, less the 1.5 s the last reading stands: 2 to 4
    // columns, and nothing else blank (a known 0 would still draw a sliver).
    assert!(
        (2..=4).contains(&gaps),
        "{gaps} gap columns\n{}",
        text(&buf)
    );
    assert!(data > 60, "{data}");
}

#[test]
fn the_same_reason_on_many_gpus_is_one_note() {
    let mut frame = synthetic(16, 0);
    for d in &mut frame.devices {
        if let Some(t) = d.telemetry.as_mut() {
            t.power_watts = None;
            t.unavailable.push(Unavailable::new(
                TelemetryField::PowerWatts,
                "Insufficient Permissions",
            ));
        }
    }
    let app = app_with(frame, 120, 40, Theme::Default, false);
    let notes = super::footer::reasons(&app);
    let power: Vec<&String> = notes.iter().filter(|n| n.contains("power")).collect();
    assert_eq!(
        power,
        ["GPU 0 power: Insufficient Permissions (and 15 more GPUs)"],
        "{notes:?}"
    );
}

#[test]
fn before_the_first_frame_the_screen_says_it_is_waiting() {
    let app = App::new(Settings::default());
    for (w, h) in SIZES {
        let screen = text(&render(&app, w, h));
        if (w, h) != (20, 3) {
            assert!(
                screen.contains("waiting for the first frame"),
                "{w}x{h}\n{screen}"
            );
        }
    }
}

#[test]
fn c_switches_the_chart_to_the_selected_process_and_back() {
    let mut app = app(8, 120, 40);
    let pid = app.selected.expect("a process is selected");
    let per_gpu = text(&render(&app, 120, 40));
    assert!(per_gpu.contains("memory used per GPU"), "{per_gpu}");

    app.update(&Event::Key(KeyEvent::from(KeyCode::Char('c'))));
    let per_process = text(&render(&app, 120, 40));
    let title = format!("VRAM of {pid} (");
    assert!(per_process.contains(&title), "{per_process}");
    assert!(
        !per_process.contains("memory used per GPU"),
        "{per_process}"
    );
    assert!(
        app.charts
            .process_used
            .iter()
            .any(|(_, points)| points.iter().any(|p| p.max.is_some())),
        "the selected process's series has readings to draw"
    );

    app.update(&Event::Key(KeyEvent::from(KeyCode::Char('c'))));
    assert!(text(&render(&app, 120, 40)).contains("memory used per GPU"));
}

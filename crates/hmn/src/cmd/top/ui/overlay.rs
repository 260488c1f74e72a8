//! The overlays, one per [`Mode`]: the filter being typed (with why it does not parse), the
//! sort menu, a process's detail (its history chart, peak, command line, cgroup), the signal
//! menu and its confirmation, the fits prompt (the devices panel lights up where the size
//! fits) and the help.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;

use super::footer::{KEYS, reasons};
use super::{Ink, Plan, chart, put, put_foreign, size, size_or, title_line};
use crate::cmd::top::app::{App, Mode, Signal};
use crate::cmd::top::rows::Column;

/// Draws the overlay of `app.mode` over the screen at `area`.
pub(super) fn draw(buf: &mut Buffer, area: Rect, plan: &Plan, app: &App, ink: &Ink) {
    match &app.mode {
        Mode::Normal => {}
        Mode::Filter { input, error } => filter(buf, area, plan, input, error.as_deref(), ink),
        Mode::SortMenu { choice } => sort_menu(buf, area, app, *choice, ink),
        Mode::Detail { pid } => detail(buf, area, app, *pid, ink),
        Mode::SignalMenu { pid, choice } => signal_menu(buf, area, app, *pid, *choice, ink),
        Mode::ConfirmSignal { pid, signal } => confirm(buf, area, app, *pid, *signal, ink),
        Mode::Fits { input, size } => fits(buf, area, plan, app, input, *size, ink),
        Mode::Help => help(buf, area, app, ink),
    }
}

/// A `width` × `height` box centred in `area` (shrunk to fit).
pub(crate) fn centred(area: Rect, width: u16, height: u16) -> Rect {
    let (w, h) = (width.min(area.width), height.min(area.height));
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

/// A box just above the footer, as wide as the screen.
fn bottom(area: Rect, plan: &Plan, height: u16) -> Rect {
    let footer_y = if plan.screen.footer.is_empty() {
        area.bottom()
    } else {
        plan.screen.footer.y
    };
    let h = height.min(footer_y.saturating_sub(area.y));
    Rect::new(area.x, footer_y - h, area.width, h)
}

/// Clears `rect`, frames it and writes `title` in the top side; returns the inside.
pub(crate) fn framed(buf: &mut Buffer, rect: Rect, title: &str, ink: &Ink) -> Rect {
    if rect.width < 2 || rect.height < 2 {
        return Rect::default();
    }
    let [tl, tr, bl, br, h, v] = ink.glyphs.frame;
    let style = ink.styles.overlay;
    for y in rect.top()..rect.bottom() {
        for x in rect.left()..rect.right() {
            if let Some(cell) = buf.cell_mut((x, y)) {
                cell.reset();
                let edge = match (
                    y == rect.top(),
                    y == rect.bottom() - 1,
                    x == rect.left(),
                    x == rect.right() - 1,
                ) {
                    (true, _, true, _) => Some(tl),
                    (true, _, _, true) => Some(tr),
                    (_, true, true, _) => Some(bl),
                    (_, true, _, true) => Some(br),
                    (true, _, _, _) | (_, true, _, _) => Some(h),
                    (_, _, true, _) | (_, _, _, true) => Some(v),
                    _ => None,
                };
                if let Some(edge) = edge {
                    cell.set_symbol(edge).set_style(style);
                }
            }
        }
    }
    let x = put(buf, rect.x + 2, rect.y, rect.right() - 1, " ", style);
    let x = put(
        buf,
        x,
        rect.y,
        rect.right() - 1,
        title,
        style.patch(ink.styles.title),
    );
    put(buf, x, rect.y, rect.right() - 1, " ", style);
    Rect::new(rect.x + 1, rect.y + 1, rect.width - 2, rect.height - 2)
}

/// A line of `inside`, `i` lines down; `None` past its bottom.
fn line(inside: Rect, i: u16) -> Option<(u16, u16, u16)> {
    let y = inside.y.checked_add(i)?;
    (y < inside.bottom()).then_some((inside.x, y, inside.right()))
}

fn text_line(buf: &mut Buffer, inside: Rect, i: u16, text: &str, style: Style) {
    if let Some((x, y, right)) = line(inside, i) {
        put(buf, x + 1, y, right, text, style);
    }
}

fn filter(buf: &mut Buffer, area: Rect, plan: &Plan, input: &str, error: Option<&str>, ink: &Ink) {
    let inside = framed(
        buf,
        bottom(area, plan, 5),
        "filter (Enter apply, Esc cancel)",
        ink,
    );
    let s = &ink.styles;
    if let Some((x, y, right)) = line(inside, 0) {
        let x = put(buf, x + 1, y, right, "/ ", s.key);
        let x = put(buf, x, y, right, &crate::text::escape(input), s.text);
        put(buf, x, y, right, ink.glyphs.cursor, s.key);
    }
    match error {
        Some(e) => text_line(buf, inside, 1, &crate::text::escape(e), s.critical),
        None => text_line(
            buf,
            inside,
            1,
            "user=alice  gpu=1  vram>2GiB  name~python  and or not ( )",
            s.label,
        ),
    }
}

fn sort_menu(buf: &mut Buffer, area: Rect, app: &App, choice: usize, ink: &Ink) {
    let height = u16::try_from(Column::ALL.len()).unwrap_or(0) + 2;
    let inside = framed(buf, centred(area, 26, height), "sort by", ink);
    let s = &ink.styles;
    for (i, column) in Column::ALL.iter().enumerate() {
        let Some((x, y, right)) = line(inside, u16::try_from(i).unwrap_or(u16::MAX)) else {
            break;
        };
        let style = if i == choice { s.selected } else { s.text };
        buf.set_style(Rect::new(x, y, right - x, 1), style);
        let x = put(buf, x + 1, y, right, column.title(), style);
        if app.sort.column == *column {
            let arrow = if app.sort.descending {
                ink.glyphs.down
            } else {
                ink.glyphs.up
            };
            put(buf, x + 1, y, right, arrow, style.patch(s.key));
        }
    }
}

fn detail(buf: &mut Buffer, area: Rect, app: &App, pid: u32, ink: &Ink) {
    let rect = centred(
        area,
        area.width.saturating_sub(4).max(area.width.min(20)),
        area.height.saturating_sub(2),
    );
    let rows: Vec<_> = app.rows.iter().filter(|r| r.pid == pid).collect();
    let name = rows.iter().find_map(|r| r.name.as_deref()).unwrap_or("?");
    let title = format!("process {pid} {}", crate::text::escape(name));
    let inside = framed(buf, rect, &title, ink);
    let s = &ink.styles;
    let Some(first) = rows.first() else {
        text_line(buf, inside, 0, "the process is gone (Esc to close)", s.text);
        return;
    };
    let mut i = 0;
    let mut field = |buf: &mut Buffer, label: &str, value: Option<&str>| {
        if let Some((x, y, right)) = line(inside, i) {
            let x = put(buf, x + 1, y, right, label, s.label);
            match value {
                Some(v) => put_foreign(buf, x + 1, y, right.saturating_sub(x + 1), v, s.text),
                None => put(buf, x + 1, y, right, "?", s.unknown),
            };
        }
        i += 1;
    };
    field(buf, "user   ", first.user.as_deref());
    field(buf, "command", first.command.as_deref());
    field(buf, "cgroup ", first.cgroup.as_deref());
    let rss = size_or(first.rss_bytes, "?");
    field(buf, "RSS    ", Some(&rss));
    for r in &rows {
        let gpu = match (r.gpu, r.mig) {
            (Some(g), Some((gi, ci))) => format!("GPU {g} MIG {gi}/{ci}"),
            (Some(g), None) => format!("GPU {g}"),
            (None, _) => "GPU -".to_owned(),
        };
        let delta = r.delta_bytes.map_or_else(
            || "?".to_owned(),
            |d| {
                let sign = match d {
                    ..0 => "-",
                    0 => "",
                    _ => "+",
                };
                format!("{sign}{}", size(d.unsigned_abs()))
            },
        );
        let text = format!(
            "{gpu}: VRAM {}  peak {}  Δ {delta}  shared {}",
            size_or(r.vram_bytes, "?"),
            size_or(r.peak_bytes, "?"),
            size_or(r.shared_bytes, "n/a"),
        );
        text_line(buf, inside, i, &text, s.text);
        i += 1;
    }
    let chart_area = Rect::new(
        inside.x,
        inside.y + i.min(inside.height),
        inside.width,
        inside.height.saturating_sub(i),
    );
    if chart_area.height >= 4 {
        let title = format!("VRAM of {pid}, last {}", app.zoom.label());
        title_line(buf, chart_area, &title, ink);
        chart::draw_series(
            buf,
            chart_area,
            &app.charts.process_used,
            0.0,
            app.zoom.label(),
            ink,
        );
    }
}

fn process_label(app: &App, pid: u32) -> String {
    let name = app
        .rows
        .iter()
        .find(|r| r.pid == pid)
        .and_then(|r| r.name.as_deref())
        .unwrap_or("?");
    format!("{pid} ({})", crate::text::escape(name))
}

fn signal_menu(buf: &mut Buffer, area: Rect, app: &App, pid: u32, choice: usize, ink: &Ink) {
    let title = format!("signal to {}", process_label(app, pid));
    let width = u16::try_from(crate::text::width(&title) + 6)
        .unwrap_or(u16::MAX)
        .max(24);
    let inside = framed(buf, centred(area, width, 8), &title, ink);
    let s = &ink.styles;
    for (i, signal) in Signal::ALL.iter().enumerate() {
        let Some((x, y, right)) = line(inside, u16::try_from(i).unwrap_or(u16::MAX)) else {
            break;
        };
        let style = if i == choice { s.selected } else { s.text };
        buf.set_style(Rect::new(x, y, right - x, 1), style);
        put(buf, x + 1, y, right, signal.name(), style);
    }
}

fn confirm(buf: &mut Buffer, area: Rect, app: &App, pid: u32, signal: Signal, ink: &Ink) {
    let question = format!("Send {} to {}?", signal.name(), process_label(app, pid));
    let width = u16::try_from(crate::text::width(&question) + 4)
        .unwrap_or(u16::MAX)
        .max(30);
    let inside = framed(buf, centred(area, width, 4), "confirm", ink);
    text_line(buf, inside, 0, &question, ink.styles.warn);
    text_line(buf, inside, 1, "y send    n / Esc cancel", ink.styles.key);
}

#[allow(clippy::too_many_arguments)]
fn fits(
    buf: &mut Buffer,
    area: Rect,
    plan: &Plan,
    app: &App,
    input: &str,
    bytes: Option<u64>,
    ink: &Ink,
) {
    let inside = framed(buf, bottom(area, plan, 4), "fits (Esc close)", ink);
    let s = &ink.styles;
    if let Some((x, y, right)) = line(inside, 0) {
        let x = put(buf, x + 1, y, right, "size ", s.label);
        let x = put(buf, x, y, right, &crate::text::escape(input), s.text);
        put(buf, x, y, right, ink.glyphs.cursor, s.key);
    }
    let summary = match (bytes, app.frame.as_ref()) {
        (Some(b), Some(frame)) => {
            let cells = app.fits_cells();
            let lit = |mig: bool| {
                cells
                    .iter()
                    .filter(|(_, m, fits)| *fits && m.is_some() == mig)
                    .count()
            };
            let mig = match lit(true) {
                0 => String::new(),
                1 => " and 1 MIG instance".to_owned(),
                n => format!(" and {n} MIG instances"),
            };
            format!(
                "{} fits on {} of {} GPUs now{mig}",
                size(b),
                lit(false),
                frame.devices.len()
            )
        }
        _ => "type a size: 24GiB, 500M, 1.5G".to_owned(),
    };
    text_line(buf, inside, 1, &summary, s.text);
}

fn help(buf: &mut Buffer, area: Rect, app: &App, ink: &Ink) {
    let rect = centred(area, 78, area.height.saturating_sub(2));
    let inside = framed(buf, rect, "hmn top keys (Esc close)", ink);
    let s = &ink.styles;
    let mut i = 0;
    for (key, what) in KEYS {
        if let Some((x, y, right)) = line(inside, i) {
            put(buf, x + 1, y, right, key, s.key);
            put(buf, x + 19, y, right, what, s.text);
        }
        i += 1;
    }
    let notes = reasons(app);
    if !notes.is_empty() {
        i += 1;
        text_line(buf, inside, i, "notes (the reasons behind ?)", s.title);
        i += 1;
        for note in notes {
            text_line(buf, inside, i, &crate::text::escape(&note), s.note);
            i += 1;
        }
    }
}

//! The devices panel: a memory bar per GPU split used / reserved / free (and one for GPU
//! buffers in system RAM where the device has them), utilization, temperature, power and the
//! peak since start; MIG instances as child rows. Degrades two lines → one line → grid →
//! scrolled grid as space runs out (see the parent module).

use hypomnesis::{DeviceFrame, MigInstance};

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;

use super::{DeviceMode, Ink, put, put_foreign, put_right, repeat, size, size_f, title_line};
use crate::cmd::top::app::App;

/// A grid cell's width, and the gap after it.
const CELL_WIDTH: u16 = 16;
const CELL_GAP: u16 = 1;

fn device_count(app: &App) -> usize {
    app.frame.as_ref().map_or(0, |f| f.devices.len())
}

fn mig_rows(app: &App) -> u16 {
    let rows: usize = app.frame.as_ref().map_or(0, |f| {
        f.devices.iter().map(|d| d.device.mig_instances.len()).sum()
    });
    u16::try_from(rows).unwrap_or(u16::MAX)
}

/// Grid columns at width `w` for `n` devices.
fn grid_columns(w: u16, n: usize) -> u16 {
    let fit = ((w + CELL_GAP) / (CELL_WIDTH + CELL_GAP)).max(1);
    fit.min(u16::try_from(n).unwrap_or(u16::MAX)).max(1)
}

/// The mode the panel uses at width `w` with at most `cap` lines, and the lines it takes.
pub(super) fn fit(app: &App, w: u16, cap: u16) -> (DeviceMode, u16) {
    let n = device_count(app);
    if n == 0 {
        return (DeviceMode::OneLine, cap.min(2));
    }
    let n16 = u16::try_from(n).unwrap_or(u16::MAX);
    let mig = mig_rows(app);
    let two = n16.saturating_mul(2).saturating_add(mig).saturating_add(1);
    if two <= cap && w >= 60 {
        return (DeviceMode::TwoLines, two);
    }
    let one = n16.saturating_add(mig).saturating_add(1);
    if one <= cap && w >= 40 {
        return (DeviceMode::OneLine, one);
    }
    let columns = grid_columns(w, n);
    let rows = n16.div_ceil(columns);
    if rows < cap {
        let mode = DeviceMode::Grid {
            columns,
            first: 0,
            shown: n,
        };
        return (mode, rows + 1);
    }
    let rows = cap.saturating_sub(1).max(1);
    let shown = (usize::from(rows) * usize::from(columns)).min(n);
    let first = app.device_scroll.min(n - shown);
    (
        DeviceMode::Grid {
            columns,
            first,
            shown,
        },
        rows + 1,
    )
}

/// Each shown device's area in the panel at `area`.
pub(super) fn cells(app: &App, area: Rect, mode: DeviceMode) -> Vec<(u32, Rect)> {
    let Some(frame) = app.frame.as_ref() else {
        return Vec::new();
    };
    if area.height < 2 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(frame.devices.len());
    let mut y = area.y + 1;
    match mode {
        DeviceMode::TwoLines | DeviceMode::OneLine => {
            let own = if mode == DeviceMode::TwoLines { 2 } else { 1 };
            for d in &frame.devices {
                let lines = own + u16::try_from(d.device.mig_instances.len()).unwrap_or(0);
                if y >= area.bottom() {
                    break;
                }
                let height = lines.min(area.bottom() - y);
                out.push((d.device.index, Rect::new(area.x, y, area.width, height)));
                y += lines;
            }
        }
        DeviceMode::Grid {
            columns,
            first,
            shown,
        } => {
            let width = (area.width + CELL_GAP) / columns - CELL_GAP;
            for (i, d) in frame.devices.iter().skip(first).take(shown).enumerate() {
                let i = u16::try_from(i).unwrap_or(u16::MAX);
                let (row, col) = (i / columns, i % columns);
                let y = area.y + 1 + row;
                if y >= area.bottom() {
                    break;
                }
                let x = area.x + col * (width + CELL_GAP);
                out.push((d.device.index, Rect::new(x, y, width.min(area.width), 1)));
            }
        }
    }
    out
}

/// Draws the panel.
pub(super) fn draw(buf: &mut Buffer, area: Rect, app: &App, ink: &Ink, mode: DeviceMode) {
    if area.is_empty() {
        return;
    }
    let n = device_count(app);
    let title = match mode {
        DeviceMode::Grid { first, shown, .. } if shown < n => format!(
            "GPUs {}{}{} of {n} ([ ])",
            first + 1,
            ink.glyphs.dash,
            first + shown
        ),
        _ if n == 1 => "1 GPU".to_owned(),
        _ => format!("{n} GPUs"),
    };
    let x = title_line(buf, area, &title, ink);
    if n > 0 {
        legend(buf, x, area, app, ink);
    }
    let Some(frame) = app.frame.as_ref() else {
        put(
            buf,
            area.x + 1,
            area.y + 1,
            area.right(),
            "waiting for the first frame…",
            ink.styles.text,
        );
        return;
    };
    if n == 0 {
        let why = frame
            .gpu_error
            .as_ref()
            .map_or_else(|| "no GPU found".to_owned(), |e| format!("no GPU: {e}"));
        put_foreign(
            buf,
            area.x + 1,
            area.y + 1,
            area.width.saturating_sub(1),
            &why,
            ink.styles.unknown,
        );
        return;
    }
    // The fits overlay's answer, per device and MIG instance (empty without one).
    let fits = app.fits_cells();
    let lit = |index: u32, mig: Option<(u32, u32)>| {
        fits.iter()
            .find(|(i, m, _)| *i == index && *m == mig)
            .map(|&(_, _, fits)| fits)
    };
    for (index, cell) in cells(app, area, mode) {
        let Some(d) = frame.device(index) else {
            continue;
        };
        match mode {
            DeviceMode::TwoLines => two_lines(buf, cell, app, d, ink),
            DeviceMode::OneLine => one_line(buf, cell, app, d, ink),
            DeviceMode::Grid { .. } => grid_cell(buf, cell, d, ink),
        }
        if let Some(fits) = lit(index, None) {
            let own_lines = if mode == DeviceMode::TwoLines { 2 } else { 1 };
            let own = Rect::new(cell.x, cell.y, cell.width, cell.height.min(own_lines));
            buf.set_style(
                own,
                if fits {
                    ink.styles.fits
                } else {
                    ink.styles.no_fit
                },
            );
        }
        if !matches!(mode, DeviceMode::Grid { .. }) {
            let skip = if mode == DeviceMode::TwoLines { 2 } else { 1 };
            for (i, m) in d.device.mig_instances.iter().enumerate() {
                let y = cell.y + skip + u16::try_from(i).unwrap_or(u16::MAX);
                if y >= cell.bottom() {
                    break;
                }
                mig_row(buf, Rect::new(cell.x, y, cell.width, 1), m, ink);
                let ids = m.gpu_instance_id.zip(m.compute_instance_id);
                if let Some(fits) = ids.and_then(|ids| lit(index, Some(ids))) {
                    buf.set_style(
                        Rect::new(cell.x, y, cell.width, 1),
                        if fits {
                            ink.styles.fits
                        } else {
                            ink.styles.no_fit
                        },
                    );
                }
            }
        }
    }
}

/// The bar legend at the right of the title line, when it fits.
fn legend(buf: &mut Buffer, after: u16, area: Rect, app: &App, ink: &Ink) {
    let g = &ink.glyphs;
    let s = &ink.styles;
    let gtt = app.frame.as_ref().is_some_and(|f| {
        f.devices
            .iter()
            .any(|d| d.device.system_used_bytes.is_some())
    });
    let parts: [(&str, &str, Style); 4] = [
        (g.used, " used ", s.bar_used),
        (g.reserved, " reserved ", s.bar_reserved),
        (g.free, " free ", s.bar_free),
        (g.system, " system RAM ", s.bar_system),
    ];
    let shown = if gtt { 4 } else { 3 };
    let width: u16 = parts[..shown]
        .iter()
        .map(|(_, t, _)| 1 + u16::try_from(t.len()).unwrap_or(0))
        .sum();
    let right = area.right().saturating_sub(1);
    if right < after + width + 1 {
        return;
    }
    let mut x = right - width;
    for (glyph, text, style) in &parts[..shown] {
        x = put(buf, x, area.y, right, glyph, *style);
        x = put(buf, x, area.y, right, text, s.label);
    }
}

/// A bar `width` cells wide: `used` and `reserved` of `total`, the rest free. An unknown
/// total shows a bar of `?`.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // cells within width
#[allow(clippy::cast_precision_loss)] // display-only fractions
fn bar(
    buf: &mut Buffer,
    (x, y): (u16, u16),
    width: u16,
    (used, reserved, total): (Option<u64>, Option<u64>, Option<u64>),
    ink: &Ink,
    used_glyph: (&str, Style),
) -> u16 {
    let (g, s) = (&ink.glyphs, &ink.styles);
    let (Some(total), Some(used)) = (total, used) else {
        repeat(buf, x, y, width, "?", s.unknown);
        return x + width;
    };
    let total = total.max(1) as f64;
    let cells = |bytes: u64| ((bytes as f64 / total) * f64::from(width)).round() as u16;
    let u = cells(used).min(width);
    let r = cells(used.saturating_add(reserved.unwrap_or(0)))
        .min(width)
        .saturating_sub(u);
    repeat(buf, x, y, u, used_glyph.0, used_glyph.1);
    repeat(buf, x + u, y, r, g.reserved, s.bar_reserved);
    repeat(buf, x + u + r, y, width - u - r, g.free, s.bar_free);
    x + width
}

/// `45.2 GiB/79.6 GiB`, `?` where unknown.
fn memory_text(used: Option<u64>, total: Option<u64>) -> String {
    match (used, total) {
        (Some(u), Some(t)) => format!("{}/{}", size(u), size(t)),
        (None, Some(t)) => format!("?/{}", size(t)),
        (Some(u), None) => format!("{}/?", size(u)),
        (None, None) => "?".to_owned(),
    }
}

/// The telemetry figures, each `?` when unknown.
struct Telemetry {
    util: String,
    temp: String,
    power: String,
    peak: String,
}

fn telemetry(app: &App, d: &DeviceFrame, ink: &Ink) -> Telemetry {
    let t = d.telemetry.as_ref();
    let degrees = ink.glyphs.degrees;
    let util = t
        .and_then(|t| t.gpu_utilization_percent)
        .map_or_else(|| "util ?%".to_owned(), |u| format!("util {u:.0}%"));
    let temp = t
        .and_then(|t| t.temperature_celsius)
        .map_or_else(|| format!("?{degrees}"), |c| format!("{c:.0}{degrees}"));
    let power = match (
        t.and_then(|t| t.power_watts),
        t.and_then(|t| t.power_limit_watts),
    ) {
        (Some(p), Some(l)) => format!("{p:.0}/{l:.0} W"),
        (Some(p), None) => format!("{p:.0} W"),
        (None, _) => "? W".to_owned(),
    };
    let peak = app
        .charts
        .device_peak_used
        .iter()
        .find(|(i, _)| *i == d.device.index)
        .map_or_else(
            || "peak ?".to_owned(),
            |&(_, p)| format!("peak {}", size_f(p)),
        );
    Telemetry {
        util,
        temp,
        power,
        peak,
    }
}

fn name(d: &DeviceFrame) -> &str {
    d.device.name.as_deref().unwrap_or("?")
}

/// Name and telemetry, then the bars.
fn two_lines(buf: &mut Buffer, cell: Rect, app: &App, d: &DeviceFrame, ink: &Ink) {
    let (s, info) = (&ink.styles, &d.device);
    let right = cell.right();
    let y = cell.y;
    let x = put(
        buf,
        cell.x,
        y,
        right,
        &format!("{:>3} ", info.index),
        s.title,
    );
    let t = telemetry(app, d, ink);
    let figures = format!("{}  {}  {}  {}", t.util, t.temp, t.power, t.peak);
    let fw = u16::try_from(crate::text::width(&figures)).unwrap_or(u16::MAX);
    let name_w = right.saturating_sub(x).saturating_sub(fw + 2);
    put_foreign(buf, x, y, name_w, name(d), s.text);
    put_right(buf, x, right.saturating_sub(1), y, &figures, s.text);
    if cell.height < 2 {
        return;
    }
    let y = y + 1;
    let mem = memory_text(info.used_bytes, info.total_bytes);
    let reserved = info
        .reserved_bytes
        .map(|r| format!(" (+{} reserved)", size(r)))
        .unwrap_or_default();
    let system = info.system_used_bytes.map(|u| {
        format!(
            "{} {}",
            if info.unified_memory { "shared" } else { "GTT" },
            memory_text(Some(u), info.system_total_bytes)
        )
    });
    let text_w = u16::try_from(crate::text::width(&mem) + crate::text::width(&reserved) + 1)
        .unwrap_or(u16::MAX);
    let x = cell.x + 4;
    let room = right.saturating_sub(x + 1);
    let (vram_w, sys_w) = match &system {
        Some(sys) => {
            let sw = u16::try_from(crate::text::width(sys) + 1).unwrap_or(u16::MAX);
            let bars = room.saturating_sub(text_w + sw + 2);
            (bars * 2 / 3, bars - bars * 2 / 3)
        }
        None => (room.saturating_sub(text_w), 0),
    };
    // A bar wider than 60 cells reads no better and pushes the figures out of sight.
    let (vram_w, sys_w) = (vram_w.min(60), sys_w.min(30));
    let x = bar(
        buf,
        (x, y),
        vram_w,
        (info.used_bytes, info.reserved_bytes, info.total_bytes),
        ink,
        (ink.glyphs.used, s.bar_used),
    );
    let x = put(buf, x, y, right, " ", s.text);
    let x = put(buf, x, y, right, &mem, s.text);
    let mut x = put(buf, x, y, right, &reserved, s.label);
    if let Some(sys) = system {
        x = put(buf, x, y, right, "  ", s.text);
        x = bar(
            buf,
            (x, y),
            sys_w,
            (info.system_used_bytes, None, info.system_total_bytes),
            ink,
            (ink.glyphs.system, s.bar_system),
        );
        x = put(buf, x, y, right, " ", s.text);
        put(buf, x, y, right, &sys, s.text);
    }
}

/// Everything on one line, least important last: index, bar, memory, utilization,
/// temperature, power, peak, system RAM, name.
fn one_line(buf: &mut Buffer, cell: Rect, app: &App, d: &DeviceFrame, ink: &Ink) {
    let (s, info) = (&ink.styles, &d.device);
    let right = cell.right();
    let y = cell.y;
    let x = put(
        buf,
        cell.x,
        y,
        right,
        &format!("{:>3} ", info.index),
        s.title,
    );
    let mem = memory_text(info.used_bytes, info.total_bytes);
    let t = telemetry(app, d, ink);
    let system = info
        .system_used_bytes
        .map(|u| format!("sys {}", memory_text(Some(u), info.system_total_bytes)));
    let extras: [Option<&str>; 5] = [
        Some(&t.util),
        Some(&t.temp),
        Some(&t.power),
        Some(&t.peak),
        system.as_deref(),
    ];
    let mut tail_w = u16::try_from(crate::text::width(&mem) + 1).unwrap_or(u16::MAX);
    let room = right.saturating_sub(x);
    let mut shown = 0;
    for extra in extras.iter().flatten() {
        let w = u16::try_from(crate::text::width(extra) + 2).unwrap_or(u16::MAX);
        if room < tail_w + w + 12 {
            break;
        }
        tail_w += w;
        shown += 1;
    }
    let bar_w = room
        .saturating_sub(tail_w + 1)
        .clamp(0, 30)
        .max(room.min(4));
    let x = bar(
        buf,
        (x, y),
        bar_w.min(room),
        (info.used_bytes, info.reserved_bytes, info.total_bytes),
        ink,
        (ink.glyphs.used, s.bar_used),
    );
    let x = put(buf, x, y, right, " ", s.text);
    let mut x = put(buf, x, y, right, &mem, s.text);
    for extra in extras.iter().flatten().take(shown) {
        x = put(buf, x, y, right, "  ", s.text);
        x = put(buf, x, y, right, extra, s.text);
    }
    if right > x + 3 {
        put_foreign(buf, x + 2, y, right - x - 2, name(d), s.label);
    }
}

/// ` 3 ██████░░░░  45%`.
#[allow(clippy::cast_precision_loss)] // display-only percent
fn grid_cell(buf: &mut Buffer, cell: Rect, d: &DeviceFrame, ink: &Ink) {
    let (s, info) = (&ink.styles, &d.device);
    let right = cell.right();
    let x = put(
        buf,
        cell.x,
        cell.y,
        right,
        &format!("{:>3} ", info.index),
        s.title,
    );
    let pct = match (info.used_bytes, info.total_bytes) {
        (Some(u), Some(t)) if t > 0 => format!(" {:>3.0}%", u as f64 * 100.0 / t as f64),
        _ => "   ?%".to_owned(),
    };
    let bar_w = right.saturating_sub(x + 5);
    let x = bar(
        buf,
        (x, cell.y),
        bar_w,
        (info.used_bytes, info.reserved_bytes, info.total_bytes),
        ink,
        (ink.glyphs.used, s.bar_used),
    );
    put(buf, x, cell.y, right, &pct, s.text);
}

/// `    └ MIG 1/0 ███░░░ 9.5 GiB/19.5 GiB`.
fn mig_row(buf: &mut Buffer, row: Rect, m: &MigInstance, ink: &Ink) {
    let s = &ink.styles;
    let right = row.right();
    let id = |v: Option<u32>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
    let label = format!(
        "    {}MIG {}/{} ",
        ink.glyphs.branch,
        id(m.gpu_instance_id),
        id(m.compute_instance_id)
    );
    let x = put(buf, row.x, row.y, right, &label, s.label);
    let mem = memory_text(m.used_bytes, m.total_bytes);
    let mem_w = u16::try_from(crate::text::width(&mem) + 1).unwrap_or(u16::MAX);
    let bar_w = right.saturating_sub(x + mem_w + 1).min(30);
    let x = bar(
        buf,
        (x, row.y),
        bar_w,
        (m.used_bytes, None, m.total_bytes),
        ink,
        (ink.glyphs.used, s.bar_used),
    );
    let x = put(buf, x, row.y, right, " ", s.text);
    put(buf, x, row.y, right, &mem, s.text);
}

//! Drawing `hmn top`'s state into a ratatui buffer.
//!
//! Why a pure layout apart from drawing: the mouse needs to know what was where (which header
//! cell, row or device was clicked), the chart needs to know how many columns it has before
//! its history is read, and tests check the layout rules without drawing. [`layout`] decides
//! every rectangle from the state and the size alone; [`draw`] draws into exactly those.
//!
//! Layout, top to bottom: the header (host memory, swap, pressure, cgroup), the devices, the
//! history chart, the process table, a line of notes (the reasons behind every `?`) and the
//! footer (keys, status, filter, recording). Overlays (filter, sort menu, detail, signal menu,
//! fits, help) are drawn over it.
//!
//! How space is shared, so that every device stays visible or reachable and no panel is ever
//! drawn empty:
//! - below 20×3 the screen is one line saying so; at 0×0 nothing is drawn;
//! - the header needs 6 lines of screen; the notes take one line from 16 lines, two from 30,
//!   three from 40 (one note per line, the last line packing the rest); the chart needs a GPU,
//!   12 lines left for the panels and 40 columns;
//! - the devices panel degrades in steps as space runs out: two lines per GPU (name and
//!   telemetry, then the memory bars), one line per GPU, a grid of small cells, and finally
//!   the grid scrolled with `[` / `]` (its title says `GPUs 17–32 of 64 ([ ])`). MIG
//!   instances are child rows in the first two steps;
//! - the process table gets the rest, with its columns dropped on narrow terminals in the
//!   order [`table::DROP_ORDER`]: `Δ`, `AGE`, `COMMAND`, `PEAK`, `SHARED`, `RSS`, `USER`, `NAME`,
//!   `GPU` (the first is dropped first); `PID` and `VRAM` always stay. The last column shown
//!   (`COMMAND`, else `NAME`) takes the width left over.
//!
//! Unknown figures show as `?` (or `n/a` for a figure the platform does not have), never 0,
//! and the notes line says why. Drawing allocates little: visible rows only, no per-frame
//! collections beyond the notes. Text other programs chose (names, command lines) is escaped
//! ([`crate::text::escape`]) before it reaches the buffer.

mod chart;
mod devices;
mod footer;
mod header;
pub(crate) mod overlay;
mod table;
#[cfg(test)]
mod tests;

use ratatui::Frame as Screen;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;

use super::app::{App, Mode, ScreenLayout};
use super::theme::Styles;

/// The smallest screen drawn; below it, one line says so.
pub(crate) const MIN_WIDTH: u16 = 20;
pub(crate) const MIN_HEIGHT: u16 = 3;

/// How the devices panel shows its GPUs (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceMode {
    /// Name and telemetry on one line, the memory bars on the next; MIG instances below.
    TwoLines,
    /// One line per GPU, MIG instances below.
    OneLine,
    /// Small cells, `columns` per line, `first..first + shown` of the devices.
    Grid {
        columns: u16,
        first: usize,
        shown: usize,
    },
}

/// Everything [`layout`] decides, with what drawing needs beyond [`ScreenLayout`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) screen: ScreenLayout,
    /// Below the smallest size: the line with the notice.
    pub(crate) notice: Option<Rect>,
    /// The notes line (reasons behind `?`), when there is room and something to say.
    pub(crate) notes: Rect,
    pub(crate) device_mode: DeviceMode,
}

/// The glyphs drawing uses: Unicode, or plain ASCII for `--ascii`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Glyphs {
    pub(crate) used: &'static str,
    pub(crate) reserved: &'static str,
    pub(crate) free: &'static str,
    pub(crate) system: &'static str,
    pub(crate) rule: &'static str,
    pub(crate) down: &'static str,
    pub(crate) up: &'static str,
    pub(crate) dash: &'static str,
    pub(crate) branch: &'static str,
    pub(crate) record: &'static str,
    pub(crate) cursor: &'static str,
    /// Between notes on one line.
    pub(crate) separator: &'static str,
    /// After a temperature.
    pub(crate) degrees: &'static str,
    /// Chart cells filled from the bottom, one eighth to eight eighths.
    pub(crate) levels: [&'static str; 8],
    /// Box corners and sides: top-left, top-right, bottom-left, bottom-right, horizontal,
    /// vertical.
    pub(crate) frame: [&'static str; 6],
}

const UNICODE: Glyphs = Glyphs {
    used: "█",
    reserved: "▓",
    free: "░",
    system: "▒",
    rule: "─",
    down: "▼",
    up: "▲",
    dash: "–",
    branch: "└ ",
    record: "●",
    cursor: "█",
    separator: " · ",
    degrees: "°C",
    levels: ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"],
    frame: ["┌", "┐", "└", "┘", "─", "│"],
};

const ASCII: Glyphs = Glyphs {
    used: "#",
    reserved: "=",
    free: ".",
    system: "+",
    rule: "-",
    down: "v",
    up: "^",
    dash: "-",
    branch: "`-",
    record: "*",
    cursor: "_",
    separator: " | ",
    degrees: "C",
    levels: ["_", "_", ".", ".", ":", ":", "|", "#"],
    frame: ["+", "+", "+", "+", "-", "|"],
};

impl Glyphs {
    pub(crate) const fn new(ascii: bool) -> Self {
        if ascii { ASCII } else { UNICODE }
    }
}

/// What a draw needs besides the state: the theme's styles and the glyphs.
pub(crate) struct Ink {
    pub(crate) styles: Styles,
    pub(crate) glyphs: Glyphs,
}

impl Ink {
    fn of(app: &App) -> Self {
        Self {
            styles: app.settings.theme.styles(),
            glyphs: Glyphs::new(app.settings.ascii),
        }
    }
}

/// The layout of `app` drawn into `area`.
pub(crate) fn layout(app: &App, area: Rect) -> ScreenLayout {
    plan(app, area).screen
}

/// The lines each part gets, top to bottom, for `app` in `area` (see the module docs).
pub(crate) fn plan(app: &App, area: Rect) -> Plan {
    let mut plan = Plan {
        screen: ScreenLayout::default(),
        notice: None,
        notes: Rect::default(),
        device_mode: DeviceMode::OneLine,
    };
    if area.is_empty() {
        return plan;
    }
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        plan.notice = Some(Rect::new(area.x, area.y, area.width, 1));
        return plan;
    }
    let (w, h) = (area.width, area.height);
    let header_h = u16::from(h >= 6);
    // One line of notes from 16 lines up, two from 30, three from 40; the last packs the rest.
    let most = match h {
        0..16 => 0,
        16..30 => 1,
        30..40 => 2,
        _ => 3,
    };
    let notes_h = u16::try_from(footer::reasons(app).len().min(most)).unwrap_or(0);
    let footer_h = 1;
    let panels = h - header_h - notes_h - footer_h;
    let gpus = app.frame.as_ref().is_some_and(|f| !f.devices.is_empty());
    let chart_h = if gpus && panels >= 12 && w >= 40 {
        (panels / 4).clamp(4, 12)
    } else {
        0
    };
    let rest = panels - chart_h;
    let table_min = match rest {
        6.. => 3,
        4..=5 => 2,
        _ => 0,
    };
    let cap = (rest - table_min)
        .min((rest * 3 / 5).max(2))
        .max(2)
        .min(rest);
    let (device_mode, devices_h) = devices::fit(app, w, cap);
    let mut table_h = rest - devices_h;
    let mut devices_h = devices_h;
    if table_h < 2 {
        // A table with no room for a row would be an empty panel: the devices keep it.
        devices_h += table_h;
        table_h = 0;
    }
    let mut y = area.y;
    let mut take = |lines: u16| {
        let r = Rect::new(area.x, y, w, lines);
        y += lines;
        if lines == 0 { Rect::default() } else { r }
    };
    let s = &mut plan.screen;
    s.header = take(header_h);
    s.devices = take(devices_h);
    s.chart = take(chart_h);
    s.table = take(table_h);
    plan.notes = take(notes_h);
    s.footer = take(footer_h);
    s.device_cells = devices::cells(app, s.devices, device_mode);
    s.chart_buckets = chart::buckets(s.chart);
    if !s.table.is_empty() {
        s.columns = table::columns(w)
            .into_iter()
            .map(|(c, x, cw)| (c, area.x + x, cw))
            .collect();
        s.table_rows = Rect::new(area.x, s.table.y + 1, w, s.table.height - 1);
    }
    plan.device_mode = device_mode;
    plan
}

/// Draws `app` into the whole of `screen`.
pub(crate) fn draw(screen: &mut Screen<'_>, app: &App) {
    let area = screen.area();
    draw_into(screen.buffer_mut(), area, app);
}

/// Draws `app` into `area` of `buf` (what [`draw`] does, without a terminal).
pub(crate) fn draw_into(buf: &mut Buffer, area: Rect, app: &App) {
    let plan = plan(app, area);
    let ink = Ink::of(app);
    if let Some(line) = plan.notice {
        put(
            buf,
            line.x,
            line.y,
            line.right(),
            "hmn top needs 20×3 or more",
            ink.styles.warn,
        );
        return;
    }
    if area.is_empty() {
        return;
    }
    let s = &plan.screen;
    header::draw(buf, s.header, app, &ink);
    devices::draw(buf, s.devices, app, &ink, plan.device_mode);
    if app.chart_of_process {
        chart::draw_process(buf, s.chart, app, &ink);
    } else {
        chart::draw_devices(buf, s.chart, app, &ink);
    }
    table::draw(buf, s, app, &ink);
    footer::draw_notes(buf, plan.notes, app, &ink);
    footer::draw(buf, s.footer, app, &ink);
    if app.mode != Mode::Normal {
        overlay::draw(buf, area, &plan, app, &ink);
    }
}

/// Writes `text` at (`x`, `y`), cut at column `right`; returns the column after it.
pub(crate) fn put(buf: &mut Buffer, x: u16, y: u16, right: u16, text: &str, style: Style) -> u16 {
    if x >= right || !buf.area.contains((x, y).into()) {
        return x;
    }
    let right = right.min(buf.area.right());
    buf.set_stringn(x, y, text, usize::from(right - x), style).0
}

/// Writes `text`, escaped and cut with `…` to `width` columns, at (`x`, `y`); returns the
/// column after it. For text another program chose.
pub(crate) fn put_foreign(
    buf: &mut Buffer,
    x: u16,
    y: u16,
    width: u16,
    text: &str,
    style: Style,
) -> u16 {
    let escaped = crate::text::escape(text);
    let cut = crate::text::truncate(&escaped, usize::from(width));
    put(buf, x, y, x.saturating_add(width), &cut, style)
}

/// Writes `text` right-aligned so that it ends at column `right`, not left of `left`.
pub(crate) fn put_right(
    buf: &mut Buffer,
    left: u16,
    right: u16,
    y: u16,
    text: &str,
    style: Style,
) -> u16 {
    let width = u16::try_from(crate::text::width(text)).unwrap_or(u16::MAX);
    let x = right.saturating_sub(width).max(left);
    put(buf, x, y, right, text, style)
}

/// `n` copies of `glyph` from (`x`, `y`).
pub(crate) fn repeat(buf: &mut Buffer, x: u16, y: u16, n: u16, glyph: &str, style: Style) {
    for i in 0..n {
        if let Some(cell) = buf.cell_mut((x.saturating_add(i), y)) {
            cell.set_symbol(glyph).set_style(style);
        }
    }
}

/// A panel's title line: `─ title ───…` across `area`'s first line.
pub(crate) fn title_line(buf: &mut Buffer, area: Rect, title: &str, ink: &Ink) -> u16 {
    repeat(
        buf,
        area.x,
        area.y,
        area.width,
        ink.glyphs.rule,
        ink.styles.bar_free,
    );
    let x = put(buf, area.x + 1, area.y, area.right(), " ", ink.styles.title);
    let x = put(buf, x, area.y, area.right(), title, ink.styles.title);
    put(buf, x, area.y, area.right(), " ", ink.styles.title)
}

/// Sizes as the screen shows them: `512 MiB`, `1.5 GiB`, `2.0 TiB`.
pub(crate) fn size(bytes: u64) -> String {
    const TIB: u64 = 1 << 40;
    if bytes >= TIB {
        let tenths = (u128::from(bytes) * 10 + u128::from(TIB) / 2) / u128::from(TIB);
        format!("{}.{} TiB", tenths / 10, tenths % 10)
    } else {
        crate::size::format_size(bytes)
    }
}

/// Sizes in four or five columns, for narrow places: `512M`, `7.5G`, `431G`, `1.5T`.
pub(crate) fn short(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    const TIB: u64 = 1 << 40;
    let tenths = |unit: u64| (u128::from(bytes) * 10 + u128::from(unit) / 2) / u128::from(unit);
    if bytes < GIB {
        format!("{}M", bytes / MIB)
    } else if bytes < 10 * GIB {
        let t = tenths(GIB);
        format!("{}.{}G", t / 10, t % 10)
    } else if bytes < TIB {
        format!("{}G", (bytes + GIB / 2) / GIB)
    } else {
        let t = tenths(TIB);
        format!("{}.{}T", t / 10, t % 10)
    }
}

/// [`size`] of a figure kept as `f64` (history readings).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // bytes, non-negative
pub(crate) fn size_f(bytes: f64) -> String {
    size(bytes.max(0.0) as u64)
}

/// `?` for an unknown size.
pub(crate) fn size_or(bytes: Option<u64>, unknown: &str) -> String {
    bytes.map_or_else(|| unknown.to_owned(), size)
}

//! The process table: `PID USER NAME GPU VRAM SHARED RSS Δ PEAK AGE COMMAND`, the sort column
//! marked with its direction, the selected row highlighted, other users' processes dimmed,
//! tree indentation in the NAME column. Columns drop in [`DROP_ORDER`] on narrow terminals.

use ratatui::buffer::Buffer;

use super::{Ink, put, put_foreign, put_right, size};
use crate::cmd::top::app::{App, ScreenLayout};
use crate::cmd::top::rows::{Column, ProcessRow};

/// The order columns are dropped in when the terminal is too narrow for all of them, first
/// dropped first. `PID` and `VRAM` are never dropped. Why this order: `Δ` and `AGE` are read
/// least; `COMMAND` says more than `NAME` but `NAME` says enough in less; `PEAK`, `SHARED`
/// (GTT, shared memory) and `RSS` go before who and what; `GPU` goes last of all as it is
/// what the screen is about.
pub(crate) const DROP_ORDER: [Column; 9] = [
    Column::Delta,
    Column::Age,
    Column::Command,
    Column::Peak,
    Column::Shared,
    Column::Rss,
    Column::User,
    Column::Name,
    Column::Gpu,
];

/// A column's width when shown; the last column shown takes what is left.
const fn width(column: Column) -> u16 {
    match column {
        Column::Pid => 7,
        Column::User => 8,
        Column::Name => 15,
        Column::Gpu => 5,
        Column::Vram | Column::Shared | Column::Rss | Column::Delta | Column::Peak => 9,
        Column::Age => 6,
        Column::Command => 12,
    }
}

/// Whether the column's figures are right-aligned.
const fn numeric(column: Column) -> bool {
    !matches!(
        column,
        Column::User | Column::Name | Column::Gpu | Column::Command
    )
}

/// The columns shown at width `w`, left to right: the column, its x (from the table's left)
/// and its width.
pub(super) fn columns(w: u16) -> Vec<(Column, u16, u16)> {
    let mut dropped = 0;
    let total = |dropped: usize| -> u16 {
        Column::ALL
            .iter()
            .filter(|c| !DROP_ORDER[..dropped].contains(c))
            .map(|&c| width(c) + 1)
            .sum::<u16>()
            .saturating_sub(1)
    };
    while dropped < DROP_ORDER.len() && total(dropped) > w {
        dropped += 1;
    }
    let kept: Vec<Column> = Column::ALL
        .iter()
        .copied()
        .filter(|c| !DROP_ORDER[..dropped].contains(c))
        .collect();
    let mut out = Vec::with_capacity(kept.len());
    let mut x = 0;
    for (i, &c) in kept.iter().enumerate() {
        let last = i + 1 == kept.len();
        let cw = if last {
            w.saturating_sub(x).max(1)
        } else {
            width(c).min(w.saturating_sub(x))
        };
        if cw == 0 {
            break;
        }
        out.push((c, x, cw));
        x = x.saturating_add(cw + 1);
    }
    out
}

/// Draws the header line and the visible rows.
pub(super) fn draw(buf: &mut Buffer, layout: &ScreenLayout, app: &App, ink: &Ink) {
    let area = layout.table;
    if area.is_empty() {
        return;
    }
    let s = &ink.styles;
    buf.set_style(
        ratatui::layout::Rect::new(area.x, area.y, area.width, 1),
        s.table_header,
    );
    for &(column, x, w) in &layout.columns {
        let sorted = app.sort.column == column;
        let style = if sorted {
            s.sort_column
        } else {
            s.table_header
        };
        let mut title = String::from(column.title());
        if sorted {
            title.push_str(if app.sort.descending {
                ink.glyphs.down
            } else {
                ink.glyphs.up
            });
        }
        if numeric(column) {
            put_right(buf, x, x + w, area.y, &title, style);
        } else {
            put(buf, x, area.y, x + w, &title, style);
        }
    }
    let rows = layout.table_rows;
    if app.rows.is_empty() {
        let why = if app.frame.is_none() {
            "waiting for the first frame…"
        } else if app.filter.is_some() || app.only_mine {
            "no GPU process matches the filter"
        } else {
            "no GPU processes"
        };
        put(buf, rows.x + 1, rows.y, rows.right(), why, s.text);
        return;
    }
    let first = app.table_scroll.min(app.rows.len().saturating_sub(1));
    // The selected row: the selected process on the selected device (a process on two GPUs
    // has two rows, and only one is selected).
    let selected = app.selected_index();
    for (i, row) in app
        .rows
        .iter()
        .skip(first)
        .take(usize::from(rows.height))
        .enumerate()
    {
        let y = rows.y + u16::try_from(i).unwrap_or(u16::MAX);
        let style = if selected == Some(first + i) {
            s.selected
        } else if app.settings.me.is_some() && !row.mine {
            s.dimmed
        } else {
            s.text
        };
        let line = ratatui::layout::Rect::new(rows.x, y, rows.width, 1);
        buf.set_style(line, style);
        for &(column, x, w) in &layout.columns {
            cell(buf, (x, y, w), column, row, app, ink, style);
        }
    }
}

/// `?` for an unknown figure.
const UNKNOWN: &str = "?";

/// One cell of one row.
fn cell(
    buf: &mut Buffer,
    (x, y, w): (u16, u16, u16),
    column: Column,
    row: &ProcessRow,
    app: &App,
    ink: &Ink,
    style: ratatui::style::Style,
) {
    let unknown = style.patch(ink.styles.unknown);
    let figure = |buf: &mut Buffer, v: Option<u64>, missing: &str| match v {
        Some(b) => put_right(buf, x, x + w, y, &size(b), style),
        None => put_right(buf, x, x + w, y, missing, unknown),
    };
    match column {
        Column::Pid => put_right(buf, x, x + w, y, &row.pid.to_string(), style),
        Column::User => match &row.user {
            Some(u) => put_foreign(buf, x, y, w, u, style),
            None => put(buf, x, y, x + w, UNKNOWN, unknown),
        },
        Column::Name => {
            let indent = if app.tree && row.depth > 0 {
                (row.depth - 1).saturating_mul(2)
            } else {
                0
            };
            let mut x2 = x + indent.min(w);
            if app.tree && row.depth > 0 {
                x2 = put(buf, x2, y, x + w, ink.glyphs.branch, style);
            }
            let left = (x + w).saturating_sub(x2);
            match &row.name {
                Some(n) => put_foreign(buf, x2, y, left, n, style),
                None => put(buf, x2, y, x + w, UNKNOWN, unknown),
            }
        }
        Column::Gpu => {
            let text = match (row.gpu, row.mig) {
                (Some(g), Some((gi, ci))) => format!("{g}:{gi}/{ci}"),
                (Some(g), None) => g.to_string(),
                (None, _) => String::new(),
            };
            put(buf, x, y, x + w, &text, style)
        }
        Column::Vram => {
            if app.tree
                && let Some(total) = row.subtree_vram_bytes
                && Some(total) != row.vram_bytes
            {
                put_right(buf, x, x + w, y, &format!("Σ{}", size(total)), style)
            } else if row.gpu.is_none() && row.vram_bytes.is_none() {
                x
            } else {
                figure(buf, row.vram_bytes, UNKNOWN)
            }
        }
        // GPU buffers in system RAM: NVIDIA has no such figure per process.
        Column::Shared => figure(buf, row.shared_bytes, "n/a"),
        Column::Rss => figure(buf, row.rss_bytes, UNKNOWN),
        Column::Peak => figure(buf, row.peak_bytes, UNKNOWN),
        Column::Delta => match row.delta_bytes {
            Some(d) => {
                let sign = match d {
                    ..0 => "-",
                    0 => "",
                    _ => "+",
                };
                let text = format!("{sign}{}", size(d.unsigned_abs()));
                put_right(buf, x, x + w, y, &text, style)
            }
            None => put_right(buf, x, x + w, y, UNKNOWN, unknown),
        },
        Column::Age => match row.age {
            Some(age) => put_right(buf, x, x + w, y, &age_text(age), style),
            None => put_right(buf, x, x + w, y, UNKNOWN, unknown),
        },
        Column::Command => match row.command.as_deref().or(row.name.as_deref()) {
            Some(c) => put_foreign(buf, x, y, w, c, style),
            None => put(buf, x, y, x + w, UNKNOWN, unknown),
        },
    };
}

/// `59s`, `12m03`, `5h07`, `3d04h`.
pub(super) fn age_text(age: std::time::Duration) -> String {
    let s = age.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

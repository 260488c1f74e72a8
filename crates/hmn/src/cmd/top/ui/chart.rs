//! The history chart: memory used per device over the zoom's span, one column per bucket.
//!
//! Each column draws its bucket's smallest to largest reading (never an average), so a peak
//! of one second still shows in a one-hour chart; the top cell of a range is filled to the
//! eighth, the rest at whole cells (rounded outward, never inward). A known 0 draws a baseline
//! sliver; a bucket with no reading draws nothing, and the axis under it is broken: a gap is
//! never drawn as 0. Devices overlap in the order of the frame, each in its own colour.

use hypomnesis::HistoryPoint;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

use super::{Ink, put, put_right, repeat, size_f, title_line};
use crate::cmd::top::app::App;

/// Columns the y-axis labels take.
const LABEL_WIDTH: u16 = 9;

/// The plot's area inside a chart panel at `area`: below the title, above the axis, right of
/// the labels.
pub(super) fn plot_area(area: Rect) -> Rect {
    if area.height < 4 || area.width <= LABEL_WIDTH + 1 {
        return Rect::default();
    }
    Rect::new(
        area.x + LABEL_WIDTH,
        area.y + 1,
        area.width - LABEL_WIDTH - 1,
        area.height - 2,
    )
}

/// How many buckets a chart panel at `area` shows: its plot's width.
pub(super) fn buckets(area: Rect) -> usize {
    usize::from(plot_area(area).width)
}

/// The device chart.
#[allow(clippy::cast_precision_loss)] // display-only scale
pub(super) fn draw_devices(buf: &mut Buffer, area: Rect, app: &App, ink: &Ink) {
    if area.is_empty() {
        return;
    }
    let title = format!("memory used per GPU, last {} (+ - zoom)", app.zoom.label());
    title_line(buf, area, &title, ink);
    // The scale is the largest device, so a chart of a quiet machine looks quiet.
    let total = app.frame.as_ref().map_or(0, |f| {
        f.devices
            .iter()
            .filter_map(|d| d.device.total_bytes)
            .max()
            .unwrap_or(0)
    });
    draw_series(
        buf,
        area,
        &app.charts.device_used,
        total as f64,
        app.zoom.label(),
        ink,
    );
}

/// The selected process's chart (`c`): its VRAM on each GPU it holds memory on, scaled to
/// the largest of those GPUs.
#[allow(clippy::cast_precision_loss)] // display-only scale
pub(super) fn draw_process(buf: &mut Buffer, area: Rect, app: &App, ink: &Ink) {
    if area.is_empty() {
        return;
    }
    let Some(pid) = app.selected else {
        title_line(
            buf,
            area,
            "VRAM of the selected process: none selected (c: per GPU)",
            ink,
        );
        return;
    };
    let name = app
        .rows
        .iter()
        .find(|r| r.pid == pid)
        .and_then(|r| r.name.as_deref())
        .map_or_else(|| "?".to_owned(), |n| crate::text::escape(n).into_owned());
    let title = format!(
        "VRAM of {pid} ({name}), last {} (+ - zoom, c: per GPU)",
        app.zoom.label()
    );
    title_line(buf, area, &title, ink);
    let total = app.frame.as_ref().map_or(0, |f| {
        app.charts
            .process_used
            .iter()
            .filter_map(|(index, _)| f.device(*index).and_then(|d| d.device.total_bytes))
            .max()
            .unwrap_or(0)
    });
    draw_series(
        buf,
        area,
        &app.charts.process_used,
        total as f64,
        app.zoom.label(),
        ink,
    );
}

/// Draws `series` (per device, oldest first) in the chart panel at `area` (title line
/// already drawn): labels, columns and the time axis. `top` is the scale's top; a reading
/// above it raises the scale.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)] // cells within the plot
pub(super) fn draw_series(
    buf: &mut Buffer,
    area: Rect,
    series: &[(u32, Vec<HistoryPoint>)],
    top: f64,
    span: &str,
    ink: &Ink,
) {
    let plot = plot_area(area);
    if plot.is_empty() {
        return;
    }
    let (s, g) = (&ink.styles, &ink.glyphs);
    let data_top = series
        .iter()
        .flat_map(|(_, points)| points.iter().filter_map(|p| p.max))
        .fold(0.0_f64, f64::max);
    let top = if top >= data_top && top > 0.0 {
        top
    } else {
        data_top.max(1.0)
    };
    put_right(
        buf,
        area.x,
        area.x + LABEL_WIDTH - 1,
        plot.y,
        &size_f(top),
        s.label,
    );
    put_right(
        buf,
        area.x,
        area.x + LABEL_WIDTH - 1,
        plot.bottom() - 1,
        "0",
        s.label,
    );
    let eighths = f64::from(plot.height) * 8.0;
    let axis_y = plot.bottom();
    let mut any = vec![false; usize::from(plot.width)];
    for (k, (_, points)) in series.iter().enumerate() {
        let style = s.series[k % s.series.len()];
        // The newest bucket at the right edge: a shorter series starts further right, a
        // longer one (read for a wider chart) loses its oldest buckets.
        let width = usize::from(plot.width);
        let offset = width.saturating_sub(points.len());
        let skip = points.len().saturating_sub(width);
        for (i, p) in points.iter().skip(skip).enumerate() {
            let (Some(min), Some(max)) = (p.min, p.max) else {
                continue;
            };
            let column = offset + i;
            any[column] = true;
            let x = plot.x + column as u16;
            let lo = ((min / top) * eighths).floor().clamp(0.0, eighths) as u16;
            let hi = ((max / top) * eighths).ceil().clamp(1.0, eighths) as u16;
            // At least one eighth tall: a flat series (min = max) on a cell boundary would
            // otherwise be an empty range and vanish.
            let lo = lo.min(hi - 1);
            for row in 0..plot.height {
                let (cell_lo, cell_hi) = (row * 8, row * 8 + 8);
                if hi <= cell_lo || lo >= cell_hi {
                    continue;
                }
                let glyph = if hi >= cell_hi {
                    g.levels[7]
                } else {
                    g.levels[usize::from(hi - cell_lo - 1)]
                };
                let y = plot.bottom() - 1 - row;
                if let Some(cell) = buf.cell_mut((x, y)) {
                    cell.set_symbol(glyph).set_style(style);
                }
            }
        }
    }
    for (i, data) in any.iter().enumerate() {
        if *data {
            repeat(buf, plot.x + i as u16, axis_y, 1, g.rule, s.bar_free);
        }
    }
    let left = format!("-{span}");
    put(buf, plot.x, axis_y, plot.right(), &left, s.label);
    put_right(buf, plot.x, plot.right(), axis_y, "now", s.label);
}

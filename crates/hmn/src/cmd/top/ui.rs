//! Drawing `hmn top`'s state into a ratatui buffer.
//!
//! Layout, top to bottom: the header (host memory, swap, pressure, cgroup), the devices, the
//! history chart, the process table, the footer (keys, and the reasons behind every `?`).
//! Overlays (filter, sort menu, detail, signal menu, fits, help) are drawn over it.

use ratatui::Frame as Screen;
use ratatui::layout::Rect;
use ratatui::text::Line;

use super::app::{App, ScreenLayout};

/// The layout of `app` drawn into `area`.
pub(crate) fn layout(_app: &App, area: Rect) -> ScreenLayout {
    ScreenLayout {
        table: area,
        table_rows: area,
        ..ScreenLayout::default()
    }
}

/// Draws `app` into the whole of `screen`.
pub(crate) fn draw(screen: &mut Screen<'_>, app: &App) {
    let area = screen.area();
    let devices = app.frame.as_ref().map_or(0, |f| f.devices.len());
    screen.render_widget(
        Line::from(format!(
            "hmn top: {devices} GPUs, {} processes",
            app.rows.len()
        )),
        area,
    );
}

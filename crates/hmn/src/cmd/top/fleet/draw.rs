//! Drawing the fleet screen into a ratatui buffer, without a terminal.
//!
//! Top to bottom: the header (source, counts up / stale / down, when the fleet was read),
//! the read's error when the last read failed, the nodes (a list, or the heat grid with its
//! legend and a line about the selected node), the notes (why nodes are stale or down, why a
//! figure is `?`) and the footer (status, filter, keys, read-only). Overlays (filter, sort
//! menu, help) go over it. An open node is the local screen's drawing, with this screen's
//! node line over its header and this screen's footer over its own.
//!
//! The list's columns drop on narrow terminals in the order [`DROP_ORDER`]; NODE, STATE and
//! LARGEST FREE always stay. The heat grid shows one cell per node, two characters wide,
//! its glyph and colour saying the node's free fraction (so mono and `--ascii` still tell
//! them apart): every node is reachable by scrolling with the selection.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;

use super::nodes::{self, NodeColumn};
use super::state::{Drill, FleetApp, FleetLayout, FleetMode, View};
use crate::cmd::top::ui::overlay::{centred, framed};
use crate::cmd::top::ui::{self, Glyphs, Ink, put, put_foreign, put_right, repeat, size};
use crate::fleet::{Node, NodeState};

/// The order list columns are dropped in when the terminal is too narrow, first dropped
/// first: the host's memory and the sample's age are read least; GPUS and TOTAL FREE say
/// less than LARGEST FREE, what a job needs.
pub(crate) const DROP_ORDER: [NodeColumn; 4] = [
    NodeColumn::HostAvail,
    NodeColumn::Age,
    NodeColumn::TotalFree,
    NodeColumn::Gpus,
];

/// The footer's word on `k`, after `read-only`.
const READ_ONLY: &str = "(no k: remote processes)";

/// The fewest columns NODE keeps before another column is dropped, and the most it takes
/// (wider, the figures drift away from the names they belong to).
const NODE_MIN: u16 = 14;
const NODE_MAX: u16 = 40;

/// A grid cell's width (two glyphs) and the gap after it.
const CELL: u16 = 2;
const CELL_GAP: u16 = 1;

/// Every key of the fleet screen and what it does, for the help and the README.
pub(crate) const FLEET_KEYS: [(&str, &str); 11] = [
    ("q, Ctrl-C", "quit"),
    (
        "Esc",
        "back from a node (closes an overlay first); quit from the list",
    ),
    (
        "Up Down PgUp PgDn",
        "select a node (Home, End; Left Right in the grid)",
    ),
    (
        "Enter",
        "open the node: its GPUs, MIG instances, processes, history",
    ),
    ("s", "sort menu"),
    ("<, >", "sort by the column to the left / right"),
    ("I", "invert the sort"),
    (
        "/",
        "filter: pieces of node names, up, stale, down (all must match)",
    ),
    ("g", "node list / heat grid"),
    (
        "k, R",
        "off: read-only, the processes run on other machines",
    ),
    (
        "in a node",
        "the local screen's keys: / s < > t u c + - F, Enter detail",
    ),
];

/// Everything [`plan`] decides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) notice: Option<Rect>,
    pub(crate) header: Rect,
    pub(crate) error: Rect,
    /// The list's column titles, or the grid's title line.
    pub(crate) title: Rect,
    /// The grid's legend.
    pub(crate) legend: Rect,
    /// List rows or grid lines.
    pub(crate) body: Rect,
    /// The grid's line about the selected node.
    pub(crate) detail: Rect,
    pub(crate) notes: Rect,
    pub(crate) footer: Rect,
    pub(crate) view: View,
    /// Grid cells per line (1 for the list).
    pub(crate) columns: usize,
}

/// What the keys need of the plan.
pub(crate) fn layout(app: &FleetApp, area: Rect) -> FleetLayout {
    let p = plan(app, area);
    FleetLayout {
        view: Some(p.view),
        body: p.body,
        columns: p.columns,
    }
}

/// The lines each part gets for `app` in `area`.
pub(crate) fn plan(app: &FleetApp, area: Rect) -> Plan {
    let mut p = Plan {
        view: View::List,
        columns: 1,
        ..Plan::default()
    };
    if area.is_empty() {
        return p;
    }
    if area.width < ui::MIN_WIDTH || area.height < ui::MIN_HEIGHT {
        p.notice = Some(Rect::new(area.x, area.y, area.width, 1));
        return p;
    }
    let h = area.height;
    let notes = app.fleet.as_ref().map_or(0, |f| nodes::notes(f).len());
    let most = match h {
        0..16 => 0,
        16..30 => 1,
        30..40 => 2,
        _ => 3,
    };
    let notes_h = u16::try_from(notes.min(most)).unwrap_or(0);
    let error_h = u16::from(app.error.is_some() && h >= 6);
    let header_h = 1;
    let footer_h = 1;
    let rest = h.saturating_sub(header_h + error_h + notes_h + footer_h);
    let list_rows = usize::from(rest.saturating_sub(1));
    p.view = app.view_for(list_rows);
    let (legend_h, detail_h) = match p.view {
        View::List => (0, 0),
        View::Grid => (u16::from(rest >= 5), u16::from(rest >= 4)),
    };
    let title_h = u16::from(rest >= 2);
    let body_h = rest.saturating_sub(title_h + legend_h + detail_h);
    let mut y = area.y;
    let mut take = |lines: u16| {
        let r = Rect::new(area.x, y, area.width, lines);
        y += lines;
        if lines == 0 { Rect::default() } else { r }
    };
    p.header = take(header_h);
    p.error = take(error_h);
    p.title = take(title_h);
    p.legend = take(legend_h);
    p.body = take(body_h);
    p.detail = take(detail_h);
    p.notes = take(notes_h);
    p.footer = take(footer_h);
    if p.view == View::Grid {
        p.columns = usize::from(((area.width + CELL_GAP) / (CELL + CELL_GAP)).max(1));
    }
    p
}

/// The list's columns at width `w`: the column, its x from the left, its width.
pub(crate) fn columns(w: u16) -> Vec<(NodeColumn, u16, u16)> {
    let width = |c: NodeColumn| -> u16 {
        match c {
            NodeColumn::Node => NODE_MIN,
            NodeColumn::State => 5,
            NodeColumn::Gpus => 4,
            NodeColumn::LargestFree => 12,
            NodeColumn::TotalFree | NodeColumn::HostAvail => 10,
            NodeColumn::Age => 6,
        }
    };
    let kept = |dropped: usize| -> Vec<NodeColumn> {
        NodeColumn::ALL
            .iter()
            .copied()
            .filter(|c| !DROP_ORDER[..dropped].contains(c))
            .collect()
    };
    let mut dropped = 0;
    while dropped < DROP_ORDER.len()
        && kept(dropped).iter().map(|&c| width(c) + 1).sum::<u16>() > w + 1
    {
        dropped += 1;
    }
    let kept = kept(dropped);
    let fixed: u16 = kept
        .iter()
        .filter(|&&c| c != NodeColumn::Node)
        .map(|&c| width(c) + 1)
        .sum();
    let mut out = Vec::with_capacity(kept.len());
    let mut x = 0_u16;
    for c in kept {
        let cw = if c == NodeColumn::Node {
            w.saturating_sub(fixed).clamp(1, NODE_MAX)
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

/// Draws `app` into `area` of `buf`.
pub(crate) fn draw_into(buf: &mut Buffer, area: Rect, app: &FleetApp) {
    let ink = Ink {
        styles: app.settings.theme.styles(),
        glyphs: Glyphs::new(app.settings.ascii),
    };
    if let Some(drill) = app.drill() {
        draw_node(buf, area, app, drill, &ink);
        if matches!(app.mode, FleetMode::Help { .. }) {
            help(buf, area, &ink);
        }
        return;
    }
    let p = plan(app, area);
    if let Some(line) = p.notice {
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
    header(buf, p.header, app, &ink);
    if !p.error.is_empty()
        && let Some(e) = &app.error
    {
        let text = format!(
            "cannot read the fleet (retrying every {}): {e}",
            interval_text(app.settings.interval)
        );
        put_foreign(
            buf,
            p.error.x,
            p.error.y,
            p.error.width,
            &text,
            ink.styles.critical,
        );
    }
    match p.view {
        View::List => list(buf, &p, app, &ink),
        View::Grid => grid(buf, &p, app, &ink),
    }
    if let Some(fleet) = &app.fleet {
        notes_lines(buf, p.notes, &nodes::notes(fleet), &ink);
    }
    footer(buf, p.footer, app, &ink);
    match &app.mode {
        FleetMode::Filter { input } => filter(buf, area, &p, input, &ink),
        FleetMode::SortMenu { choice } => sort_menu(buf, area, app, *choice, &ink),
        FleetMode::Help { .. } => help(buf, area, &ink),
        FleetMode::Normal | FleetMode::Node(_) => {}
    }
}

/// `5s`, `500ms`, `1m`.
fn interval_text(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// `59s`, `12m03`, `5h07`, `3d04h`.
pub(crate) fn age_text(age: std::time::Duration) -> String {
    let s = age.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// `10:41:03Z`: when a read finished, UTC.
fn clock(at: std::time::SystemTime) -> String {
    let text = crate::time::wall_clock_text(at);
    text.get(11..19).map_or(text.clone(), |t| format!("{t}Z"))
}

fn state_style(state: NodeState, ink: &Ink) -> Style {
    match state {
        NodeState::Up => ink.styles.status,
        NodeState::Stale => ink.styles.warn,
        NodeState::Down => ink.styles.critical,
    }
}

/// `hmn top  8 nodes: 6 up 1 stale 1 down · read 10:41:03Z every 5s · hosts (8 endpoints)`:
/// the counts first, the source (the longest) last.
fn header(buf: &mut Buffer, area: Rect, app: &FleetApp, ink: &Ink) {
    if area.is_empty() {
        return;
    }
    let s = &ink.styles;
    let (right, y) = (area.right(), area.y);
    let sep = ink.glyphs.separator;
    let mut x = put(buf, area.x, y, right, "hmn top  ", s.title);
    match &app.fleet {
        None => {
            x = put(buf, x, y, right, "waiting for the first read", s.text);
        }
        Some(fleet) => {
            let (up, stale, down) = nodes::counts(fleet);
            let n = fleet.nodes.len();
            x = put(
                buf,
                x,
                y,
                right,
                &format!("{n} node{}:", if n == 1 { "" } else { "s" }),
                s.text,
            );
            for (count, state) in [
                (up, NodeState::Up),
                (stale, NodeState::Stale),
                (down, NodeState::Down),
            ] {
                let style = if count > 0 && state != NodeState::Up {
                    state_style(state, ink)
                } else {
                    s.text
                };
                x = put(
                    buf,
                    x,
                    y,
                    right,
                    &format!(" {count} {}", nodes::state_name(state)),
                    style,
                );
            }
            x = put(buf, x, y, right, sep, s.text);
            x = put(buf, x, y, right, "read ", s.label);
            x = put(buf, x, y, right, &clock(fleet.taken_at), s.text);
        }
    }
    x = put(buf, x, y, right, " every ", s.label);
    x = put(
        buf,
        x,
        y,
        right,
        &interval_text(app.settings.interval),
        s.text,
    );
    x = put(buf, x, y, right, sep, s.text);
    put_foreign(buf, x, y, right.saturating_sub(x), &app.source, s.label);
}

/// A figure of a list row: its text and whether it is unknown.
fn cell_text(node: &Node, column: NodeColumn, ink: &Ink) -> (String, bool) {
    let unknown = |v: Option<String>| v.map_or(("?".to_owned(), true), |t| (t, false));
    // A down node has no figures at all (its reason is on the notes lines).
    let down = node.state == NodeState::Down;
    let no_gpu = node.devices.is_empty() && !down;
    match column {
        NodeColumn::Node => (node.name.clone(), false),
        NodeColumn::State => (nodes::state_name(node.state).to_owned(), false),
        _ if down => unknown(None),
        NodeColumn::Gpus => (nodes::gpus(node).to_string(), false),
        NodeColumn::LargestFree | NodeColumn::TotalFree if no_gpu => {
            (ink.glyphs.dash.to_owned(), false)
        }
        NodeColumn::LargestFree => unknown(node.largest_room().map(size)),
        NodeColumn::TotalFree => unknown(node.total_room().map(size)),
        NodeColumn::HostAvail => unknown(node.host.available_bytes.map(size)),
        NodeColumn::Age => unknown(node.age.map(age_text)),
    }
}

fn list(buf: &mut Buffer, p: &Plan, app: &FleetApp, ink: &Ink) {
    let s = &ink.styles;
    let cols = columns(p.title.width.max(p.body.width));
    if !p.title.is_empty() {
        buf.set_style(p.title, s.table_header);
        for &(c, x, w) in &cols {
            let sorted = app.sort.column == c;
            let style = if sorted {
                s.sort_column
            } else {
                s.table_header
            };
            let mut title = c.title().to_owned();
            if sorted {
                title.push_str(if app.sort.descending {
                    ink.glyphs.down
                } else {
                    ink.glyphs.up
                });
            }
            let (x, y) = (p.title.x + x, p.title.y);
            if matches!(c, NodeColumn::Node | NodeColumn::State) {
                put(buf, x, y, x + w, &title, style);
            } else {
                put_right(buf, x, x + w, y, &title, style);
            }
        }
    }
    let body = p.body;
    if body.is_empty() {
        return;
    }
    if app.rows.is_empty() {
        put(
            buf,
            body.x + 1,
            body.y,
            body.right(),
            empty_why(app),
            s.text,
        );
        return;
    }
    let selected = app.selected_index();
    let first = app.scroll.min(app.rows.len().saturating_sub(1));
    for (i, y) in (first..app.rows.len()).zip(body.top()..body.bottom()) {
        let Some(node) = app.row_node(i) else { break };
        let row_style = if selected == Some(i) {
            s.selected
        } else if node.state == NodeState::Up {
            s.text
        } else {
            s.dimmed
        };
        buf.set_style(Rect::new(body.x, y, body.width, 1), row_style);
        for &(c, x, w) in &cols {
            let x = body.x + x;
            let (text, unknown) = cell_text(node, c, ink);
            let style = if unknown {
                row_style.patch(s.unknown)
            } else if c == NodeColumn::State && selected != Some(i) {
                state_style(node.state, ink)
            } else {
                row_style
            };
            match c {
                NodeColumn::Node => {
                    put_foreign(buf, x, y, w, &text, style);
                }
                NodeColumn::State => {
                    put(buf, x, y, x + w, &text, style);
                }
                _ => {
                    put_right(buf, x, x + w, y, &text, style);
                }
            }
        }
    }
}

fn empty_why(app: &FleetApp) -> &'static str {
    if app.fleet.is_none() {
        "waiting for the first read…"
    } else if app.filter.is_some() {
        "no node matches the filter"
    } else {
        "the source lists no node"
    }
}

/// The glyph of a down node in the grid.
const fn down_glyph(ascii: bool) -> &'static str {
    if ascii { "X" } else { "×" }
}

/// A node's cell in the heat grid: its glyph and style.
fn heat(node: &Node, ink: &Ink, ascii: bool) -> (&'static str, Style) {
    let (g, s) = (&ink.glyphs, &ink.styles);
    match node.state {
        NodeState::Down => (down_glyph(ascii), s.critical),
        NodeState::Stale => ("~", s.warn),
        NodeState::Up => match nodes::free_fraction(node) {
            None => ("?", s.unknown),
            Some(f) if f >= 0.5 => (g.used, s.status),
            Some(f) if f >= 0.25 => (g.reserved, s.status),
            Some(f) if f >= 0.10 => (g.system, s.warn),
            Some(_) => (g.free, s.critical),
        },
    }
}

fn grid(buf: &mut Buffer, p: &Plan, app: &FleetApp, ink: &Ink) {
    let s = &ink.styles;
    let n = app.rows.len();
    let per_line = p.columns.max(1);
    let lines = usize::from(p.body.height);
    let first = app.scroll * per_line;
    let shown = (lines * per_line).min(n.saturating_sub(first));
    if !p.title.is_empty() {
        let title = if shown < n {
            format!(
                "nodes {}{}{} of {n} by free GPU memory (g: list)",
                first + 1,
                ink.glyphs.dash,
                first + shown
            )
        } else {
            format!("{n} nodes by free GPU memory (g: list)")
        };
        ui::title_line(buf, p.title, &title, ink);
    }
    if !p.legend.is_empty() {
        let (g, l) = (&ink.glyphs, p.legend);
        let ascii = app.settings.ascii;
        let down = down_glyph(ascii);
        let (half, quarter, tenth) = if ascii {
            (" >=50% free  ", " 25-50%  ", " 10-25%  ")
        } else {
            (" ≥50% free  ", " 25–50%  ", " 10–25%  ")
        };
        let parts: [(&str, Style, &str); 7] = [
            (g.used, s.status, half),
            (g.reserved, s.status, quarter),
            (g.system, s.warn, tenth),
            (g.free, s.critical, " <10%  "),
            ("~", s.warn, " stale  "),
            (down, s.critical, " down  "),
            ("?", s.unknown, " unknown"),
        ];
        let mut x = l.x + 1;
        for (glyph, style, what) in parts {
            repeat(buf, x, l.y, CELL, glyph, style);
            x = put(buf, x + CELL, l.y, l.right(), what, s.label);
        }
    }
    let body = p.body;
    if app.rows.is_empty() {
        if !body.is_empty() {
            put(
                buf,
                body.x + 1,
                body.y,
                body.right(),
                empty_why(app),
                s.text,
            );
        }
        return;
    }
    let selected = app.selected_index();
    let step = CELL + CELL_GAP;
    for i in first..first + shown {
        let Some(node) = app.row_node(i) else { break };
        let k = i - first;
        let (line, col) = (k / per_line, k % per_line);
        let y = body.y + u16::try_from(line).unwrap_or(u16::MAX);
        let x = body.x + u16::try_from(col).unwrap_or(u16::MAX) * step;
        let (glyph, mut style) = heat(node, ink, app.settings.ascii);
        if selected == Some(i) {
            style = s.selected;
        }
        repeat(buf, x, y, CELL, glyph, style);
    }
    if !p.detail.is_empty()
        && let Some(node) = selected.and_then(|i| app.row_node(i))
    {
        detail_line(buf, p.detail, node, ink, app.settings.ascii);
    }
}

/// The grid's line about the selected node.
fn detail_line(buf: &mut Buffer, area: Rect, node: &Node, ink: &Ink, ascii: bool) {
    let s = &ink.styles;
    let (right, y) = (area.right(), area.y);
    let arrow = if ascii { "> " } else { "▸ " };
    let mut x = put(buf, area.x, y, right, arrow, s.key);
    x = put_foreign(
        buf,
        x,
        y,
        24.min(right.saturating_sub(x)),
        &node.name,
        s.title,
    );
    x = put(buf, x, y, right, " ", s.text);
    x = put(
        buf,
        x,
        y,
        right,
        nodes::state_name(node.state),
        state_style(node.state, ink),
    );
    for c in [
        NodeColumn::Gpus,
        NodeColumn::LargestFree,
        NodeColumn::TotalFree,
        NodeColumn::HostAvail,
        NodeColumn::Age,
    ] {
        let (text, unknown) = cell_text(node, c, ink);
        x = put(buf, x, y, right, "  ", s.text);
        x = put(buf, x, y, right, &c.title().to_lowercase(), s.label);
        x = put(buf, x, y, right, " ", s.text);
        x = put(
            buf,
            x,
            y,
            right,
            &text,
            if unknown { s.unknown } else { s.text },
        );
    }
    if let Some(why) = &node.reason {
        x = put(buf, x, y, right, "  ", s.text);
        put_foreign(buf, x, y, right.saturating_sub(x), why, s.note);
    }
}

/// The notes lines: one note per line, the last packing the rest.
fn notes_lines(buf: &mut Buffer, area: Rect, notes: &[String], ink: &Ink) {
    if area.is_empty() {
        return;
    }
    let s = &ink.styles;
    let lines = usize::from(area.height);
    for (i, y) in (area.top()..area.bottom()).enumerate() {
        let mut x = put(buf, area.x, y, area.right(), "? ", s.unknown);
        let take = if i + 1 == lines { notes.len() } else { i + 1 };
        for (k, note) in notes.iter().enumerate().take(take).skip(i) {
            if k > i {
                x = put(buf, x, y, area.right(), ink.glyphs.separator, s.note);
            }
            x = put(buf, x, y, area.right(), &crate::text::escape(note), s.note);
        }
    }
}

/// The keys, status and filter along the bottom line.
fn footer(buf: &mut Buffer, area: Rect, app: &FleetApp, ink: &Ink) {
    if area.is_empty() {
        return;
    }
    let s = &ink.styles;
    let (right, y) = (area.right(), area.y);
    let mut x = area.x;
    if let Some(status) = &app.status {
        x = put(buf, x, y, right, &crate::text::escape(status), s.status);
        x = put(buf, x, y, right, "  ", s.text);
    }
    if let Some((text, _)) = &app.filter {
        x = put(buf, x, y, right, "filter ", s.label);
        x = put(buf, x, y, right, &crate::text::escape(text), s.status);
        x = put(buf, x, y, right, "  ", s.text);
    }
    let keys: [(&str, &str); 7] = [
        ("q", "quit"),
        ("?", "help"),
        ("Enter", "node"),
        ("/", "filter"),
        ("s", "sort"),
        ("read-only", READ_ONLY),
        ("g", "grid"),
    ];
    keys_line(buf, x, area, &keys, ink);
}

fn keys_line(buf: &mut Buffer, mut x: u16, area: Rect, keys: &[(&str, &str)], ink: &Ink) {
    let s = &ink.styles;
    let (right, y) = (area.right(), area.y);
    for (key, what) in keys {
        if x >= right {
            break;
        }
        x = put(buf, x, y, right, key, s.key);
        x = put(buf, x, y, right, " ", s.text);
        x = put(buf, x, y, right, what, s.text);
        x = put(buf, x, y, right, "  ", s.text);
    }
}

/// Clears one line of `buf`.
fn clear_line(buf: &mut Buffer, area: Rect) {
    for x in area.left()..area.right() {
        if let Some(cell) = buf.cell_mut((x, area.y)) {
            cell.reset();
        }
    }
}

/// An open node: the local screen's drawing of it, under this screen's node line and footer.
fn draw_node(buf: &mut Buffer, area: Rect, app: &FleetApp, drill: &Drill, ink: &Ink) {
    ui::draw_into(buf, area, &drill.app);
    if area.width < ui::MIN_WIDTH || area.height < ui::MIN_HEIGHT {
        return;
    }
    let inner = ui::plan(&drill.app, area).screen;
    let s = &ink.styles;
    if !inner.header.is_empty() {
        let line = Rect::new(inner.header.x, inner.header.y, inner.header.width, 1);
        clear_line(buf, line);
        node_line(buf, line, app, drill, ink);
    }
    if !inner.footer.is_empty() {
        let line = inner.footer;
        clear_line(buf, line);
        let (right, y) = (line.right(), line.y);
        let mut x = line.x;
        let gone = drill
            .gone
            .then(|| "no longer listed by the source: its last figures".to_owned());
        if let Some(status) = drill.app.status.clone().or(gone) {
            x = put(buf, x, y, right, &crate::text::escape(&status), s.status);
            x = put(buf, x, y, right, "  ", s.text);
        }
        if let Some((text, _)) = &drill.app.filter {
            x = put(buf, x, y, right, "filter ", s.label);
            x = put(buf, x, y, right, &crate::text::escape(text), s.status);
            x = put(buf, x, y, right, "  ", s.text);
        }
        let keys: [(&str, &str); 9] = [
            ("Esc", "back"),
            ("q", "quit"),
            ("read-only", READ_ONLY),
            ("?", "help"),
            ("/", "filter"),
            ("s", "sort"),
            ("t", "tree"),
            ("Enter", "detail"),
            ("+-", "zoom"),
        ];
        keys_line(buf, x, line, &keys, ink);
    }
}

/// `hmn top  node gpu-07 up · hmn serve · 2s old · RAM 431G/512G avail · http://…`.
fn node_line(buf: &mut Buffer, area: Rect, app: &FleetApp, drill: &Drill, ink: &Ink) {
    let s = &ink.styles;
    let (right, y) = (area.right(), area.y);
    let mut x = put(buf, area.x, y, right, "hmn top ", s.title);
    x = put(buf, x, y, right, " node ", s.label);
    x = put_foreign(
        buf,
        x,
        y,
        32.min(right.saturating_sub(x)),
        &drill.name,
        s.title,
    );
    let Some(node) = app.node(&drill.name) else {
        put(buf, x, y, right, "  (no longer listed)", s.warn);
        return;
    };
    x = put(buf, x, y, right, " ", s.text);
    x = put(
        buf,
        x,
        y,
        right,
        nodes::state_name(node.state),
        state_style(node.state, ink),
    );
    let sep = ink.glyphs.separator;
    x = put(buf, x, y, right, sep, s.text);
    x = put(
        buf,
        x,
        y,
        right,
        nodes::exporter_name(node.exporter),
        s.text,
    );
    x = put(buf, x, y, right, sep, s.text);
    x = match node.age {
        Some(age) => put(buf, x, y, right, &format!("{} old", age_text(age)), s.text),
        None => put(buf, x, y, right, "age ?", s.unknown),
    };
    x = put(buf, x, y, right, sep, s.text);
    x = put(buf, x, y, right, "RAM ", s.label);
    let short = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), ui::short);
    let ram = format!(
        "{}/{} avail",
        short(node.host.available_bytes),
        short(node.host.total_bytes)
    );
    let known = node.host.available_bytes.is_some() && node.host.total_bytes.is_some();
    x = put(
        buf,
        x,
        y,
        right,
        &ram,
        if known { s.text } else { s.unknown },
    );
    if let Some(why) = &node.reason {
        x = put(buf, x, y, right, sep, s.text);
        x = put_foreign(buf, x, y, right.saturating_sub(x), why, s.note);
    }
    x = put(buf, x, y, right, sep, s.text);
    put_foreign(buf, x, y, right.saturating_sub(x), &node.endpoint, s.label);
}

fn filter(buf: &mut Buffer, area: Rect, p: &Plan, input: &str, ink: &Ink) {
    let footer_y = if p.footer.is_empty() {
        area.bottom()
    } else {
        p.footer.y
    };
    let h = 4.min(footer_y.saturating_sub(area.y));
    let rect = Rect::new(area.x, footer_y - h, area.width, h);
    let inside = framed(buf, rect, "filter nodes (Enter apply, Esc cancel)", ink);
    if inside.is_empty() {
        return;
    }
    let s = &ink.styles;
    let (y, right) = (inside.y, inside.right());
    let x = put(buf, inside.x + 1, y, right, "/ ", s.key);
    let x = put(buf, x, y, right, &crate::text::escape(input), s.text);
    put(buf, x, y, right, ink.glyphs.cursor, s.key);
    if inside.height > 1 {
        put(
            buf,
            inside.x + 1,
            y + 1,
            right,
            "words: a piece of a node's name, up, stale, down; every word must match",
            s.label,
        );
    }
}

fn sort_menu(buf: &mut Buffer, area: Rect, app: &FleetApp, choice: usize, ink: &Ink) {
    let n = u16::try_from(NodeColumn::ALL.len()).unwrap_or(u16::MAX);
    let inside = framed(buf, centred(area, 30, n + 2), "sort nodes by", ink);
    let s = &ink.styles;
    for (i, (c, y)) in NodeColumn::ALL
        .iter()
        .zip(inside.top()..inside.bottom())
        .enumerate()
    {
        let mut text = c.title().to_owned();
        if app.sort.column == *c {
            text.push(' ');
            text.push_str(if app.sort.descending {
                ink.glyphs.down
            } else {
                ink.glyphs.up
            });
        }
        let style = if i == choice { s.selected } else { s.text };
        buf.set_style(Rect::new(inside.x, y, inside.width, 1), style);
        put(buf, inside.x + 1, y, inside.right(), &text, style);
    }
}

fn help(buf: &mut Buffer, area: Rect, ink: &Ink) {
    let n = u16::try_from(FLEET_KEYS.len()).unwrap_or(u16::MAX);
    let inside = framed(
        buf,
        centred(area, 84, n + 2),
        "fleet keys (? or Esc closes)",
        ink,
    );
    let s = &ink.styles;
    for ((key, what), y) in FLEET_KEYS.iter().zip(inside.top()..inside.bottom()) {
        let x = put(buf, inside.x + 1, y, inside.right(), key, s.key);
        let x = x.max(inside.x + 20);
        put(buf, x, y, inside.right(), what, s.text);
    }
}

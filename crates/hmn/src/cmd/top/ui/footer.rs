//! The bottom of the screen: the notes line (the reasons behind every `?` on the screen, from
//! [`hypomnesis::Frame::notes`] and the records' own `unavailable` lists) and the footer (the
//! recording indicator, the status message, the filter in force and the keys).

use hypomnesis::{DeviceField, TelemetryField};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

use super::{Ink, put};
use crate::cmd::top::app::App;

/// The device fields the screen shows, whose reasons it gives.
const SHOWN_DEVICE_FIELDS: [DeviceField; 4] = [
    DeviceField::TotalBytes,
    DeviceField::UsedBytes,
    DeviceField::FreeBytes,
    DeviceField::SystemUsedBytes,
];

/// The telemetry fields the screen shows, whose reasons it gives.
const SHOWN_TELEMETRY_FIELDS: [TelemetryField; 3] = [
    TelemetryField::GpuUtilizationPercent,
    TelemetryField::TemperatureCelsius,
    TelemetryField::PowerWatts,
];

/// Every reason behind a `?` on the screen, host first, each said once: the same reason on 64
/// GPUs is one note ending in "(and 63 more GPUs)".
pub(crate) fn reasons(app: &App) -> Vec<String> {
    let mut out = Vec::new();
    let Some(frame) = app.frame.as_ref() else {
        return out;
    };
    for note in frame.notes() {
        out.push(note.message);
    }
    // (what, reason) → the first GPU it was seen on and how many more.
    let mut seen: Vec<(String, String, u32, u32)> = Vec::new();
    let mut add = |what: &str, reason: &str, index: u32| {
        if let Some(entry) = seen
            .iter_mut()
            .find(|(w, r, _, _)| w == what && r == reason)
        {
            entry.3 += 1;
        } else {
            seen.push((what.to_owned(), reason.to_owned(), index, 0));
        }
    };
    for d in &frame.devices {
        let index = d.device.index;
        for u in &d.device.unavailable {
            if SHOWN_DEVICE_FIELDS.contains(&u.field) {
                add(field_label(FieldName::Device(u.field)), &u.reason, index);
            }
        }
        if let Some(t) = &d.telemetry {
            for u in &t.unavailable {
                if SHOWN_TELEMETRY_FIELDS.contains(&u.field) {
                    add(field_label(FieldName::Telemetry(u.field)), &u.reason, index);
                }
            }
        } else if d.telemetry_error.is_none() && frame.request.telemetry {
            add("telemetry", "not read yet", index);
        }
    }
    for (what, reason, index, more) in seen {
        let more = match more {
            0 => String::new(),
            1 => " (and 1 more GPU)".to_owned(),
            n => format!(" (and {n} more GPUs)"),
        };
        out.push(format!("GPU {index} {what}: {reason}{more}"));
    }
    if let Some(host) = &frame.host {
        super::header::reasons(host, &mut out);
    }
    out
}

/// What a device or telemetry field is called on the notes line.
const fn field_label(field: FieldName) -> &'static str {
    match field {
        FieldName::Device(DeviceField::TotalBytes) => "memory total",
        FieldName::Device(DeviceField::UsedBytes) => "memory used",
        FieldName::Device(DeviceField::FreeBytes) => "memory free",
        FieldName::Device(DeviceField::SystemUsedBytes) => "system RAM used",
        FieldName::Telemetry(TelemetryField::GpuUtilizationPercent) => "utilization",
        FieldName::Telemetry(TelemetryField::TemperatureCelsius) => "temperature",
        FieldName::Telemetry(TelemetryField::PowerWatts) => "power",
        FieldName::Device(_) | FieldName::Telemetry(_) => "figure",
    }
}

/// A field of either record.
#[derive(Clone, Copy)]
enum FieldName {
    Device(DeviceField),
    Telemetry(TelemetryField),
}

/// Draws the notes line.
pub(super) fn draw_notes(buf: &mut Buffer, area: Rect, app: &App, ink: &Ink) {
    if area.is_empty() {
        return;
    }
    let notes = reasons(app);
    let s = &ink.styles;
    let right = area.right();
    let lines = usize::from(area.height);
    for (i, y) in (area.top()..area.bottom()).enumerate() {
        let mut x = put(buf, area.x, y, right, "? ", s.unknown);
        // One note per line; the last line packs the rest, as many as fit (`?` lists all).
        let take = if i + 1 == lines { notes.len() } else { i + 1 };
        for (k, note) in notes.iter().enumerate().take(take).skip(i) {
            if k > i {
                x = put(buf, x, y, right, ink.glyphs.separator, s.note);
            }
            x = put(buf, x, y, right, &crate::text::escape(note), s.note);
        }
    }
}

/// Draws the footer line: recording, status, filter, then the keys as far as they fit.
pub(super) fn draw(buf: &mut Buffer, area: Rect, app: &App, ink: &Ink) {
    if area.is_empty() {
        return;
    }
    let s = &ink.styles;
    let right = area.right();
    let y = area.y;
    let mut x = area.x;
    if let Some(path) = &app.recording {
        x = put(buf, x, y, right, ink.glyphs.record, s.recording);
        x = put(buf, x, y, right, " REC ", s.recording);
        let name = path
            .file_name()
            .map_or_else(|| path.to_string_lossy(), |n| n.to_string_lossy());
        x = put(buf, x, y, right, &crate::text::escape(&name), s.recording);
        x = put(buf, x, y, right, "  ", s.text);
    }
    if app.settings.replay {
        x = put(buf, x, y, right, "REPLAY  ", s.status);
    }
    if let Some(status) = &app.status {
        x = put(buf, x, y, right, &crate::text::escape(status), s.status);
        x = put(buf, x, y, right, "  ", s.text);
    }
    if let Some((text, _)) = &app.filter {
        x = put(buf, x, y, right, "filter ", s.label);
        x = put(buf, x, y, right, &crate::text::escape(text), s.status);
        x = put(buf, x, y, right, "  ", s.text);
    }
    if app.only_mine {
        x = put(buf, x, y, right, "mine only  ", s.status);
    }
    if app.tree {
        x = put(buf, x, y, right, "tree  ", s.status);
    }
    for (key, what) in keys(app) {
        if x >= right {
            break;
        }
        x = put(buf, x, y, right, key, s.key);
        x = put(buf, x, y, right, " ", s.text);
        x = put(buf, x, y, right, what, s.text);
        x = put(buf, x, y, right, "  ", s.text);
    }
}

/// Every key and what it does, for the help overlay and the README (one list, kept with the
/// help that shows it). ASCII only, so `--ascii` shows it as it is.
pub(crate) const KEYS: [(&str, &str); 17] = [
    ("q, Esc, Ctrl-C", "quit (Esc closes an open overlay first)"),
    (
        "Up Down PgUp PgDn",
        "select a process (Home, End: first, last)",
    ),
    (
        "Enter",
        "the process's detail: history, peak, command line, cgroup",
    ),
    ("s", "sort menu"),
    ("<, >", "sort by the column to the left / right"),
    ("I", "invert the sort"),
    (
        "t",
        "tree view: processes under their parents, subtree totals",
    ),
    (
        "/",
        "filter: user=alice gpu=1 vram>2GiB name~py, and or not ( )",
    ),
    ("u", "only my processes"),
    ("k", "send a signal (asks first; not with --readonly)"),
    (
        "F",
        "fits: type a size, the GPUs and MIG instances it fits on light up",
    ),
    ("+, -", "zoom the history: 1m, 5m, 10m, 15m, 1h"),
    (
        "c",
        "chart: each GPU's memory / the selected process's VRAM",
    ),
    (
        "[, ] Left Right",
        "scroll the GPUs when they do not all fit",
    ),
    ("R", "record NDJSON (hmn watch --json's format) / stop"),
    ("?", "this help, and every reason behind a ?"),
    (
        "mouse",
        "click a header to sort (again: reverse), a row to select; wheel",
    ),
];

/// The footer's short key list.
fn keys(app: &App) -> impl Iterator<Item = (&'static str, &'static str)> {
    let readonly = app.settings.readonly || app.settings.replay;
    [
        ("q", "quit"),
        ("?", "help"),
        ("/", "filter"),
        ("s", "sort"),
        ("t", "tree"),
        ("Enter", "detail"),
        ("k", "signal"),
        ("F", "fits"),
        ("+-", "zoom"),
        ("R", "record"),
    ]
    .into_iter()
    .filter(move |(k, _)| !(readonly && *k == "k"))
}

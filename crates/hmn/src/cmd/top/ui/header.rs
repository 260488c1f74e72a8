//! The header: host RAM available / total, swap, memory pressure (Linux PSI), and the cgroup
//! limit / usage / peak that really bounds a job in a container. Unknown figures are `?`, with
//! the reason on the notes line ([`reasons`]).

use hypomnesis::HostMemory;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

use super::{Ink, put, short, size};
use crate::cmd::top::app::App;

/// Draws the header line.
pub(super) fn draw(buf: &mut Buffer, area: Rect, app: &App, ink: &Ink) {
    if area.is_empty() {
        return;
    }
    let s = &ink.styles;
    let right = area.right();
    let y = area.y;
    let mut x = put(buf, area.x, y, right, "hmn top ", s.title);
    let Some(frame) = app.frame.as_ref() else {
        put(buf, x, y, right, " waiting for the first frame…", s.text);
        return;
    };
    let Some(host) = frame.host.as_ref() else {
        x = put(buf, x, y, right, " RAM ", s.label);
        put(buf, x, y, right, "?", s.unknown);
        return;
    };
    // Below 120 columns sizes are short (`431G`), so the cgroup still fits at 80.
    let sz: fn(u64) -> String = if area.width < 120 { short } else { size };
    for (label, value, warn) in items(host, sz) {
        x = put(buf, x, y, right, " ", s.text);
        x = put(buf, x, y, right, label, s.label);
        x = put(buf, x, y, right, " ", s.text);
        let style = match warn {
            Level::Unknown => s.unknown,
            Level::Fine => s.text,
            Level::Warn => s.warn,
            Level::Critical => s.critical,
        };
        x = put(buf, x, y, right, &value, style);
        x = put(buf, x, y, right, " ", s.text);
    }
}

/// How a figure should look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Unknown,
    Fine,
    Warn,
    Critical,
}

/// Level of a fraction used: warn past 85 %, critical past 95 %.
#[allow(clippy::cast_precision_loss)] // display-only fractions
fn level(used: u64, total: u64) -> Level {
    if total == 0 {
        return Level::Fine;
    }
    let f = used as f64 / total as f64;
    if f > 0.95 {
        Level::Critical
    } else if f > 0.85 {
        Level::Warn
    } else {
        Level::Fine
    }
}

/// The header's items: label, value, how it looks.
fn items(host: &HostMemory, size: fn(u64) -> String) -> Vec<(&'static str, String, Level)> {
    let mut out = Vec::with_capacity(4);
    let ram = match host.available_bytes {
        Some(a) => (
            format!("{}/{} avail", size(a), size(host.total_bytes)),
            level(host.total_bytes.saturating_sub(a), host.total_bytes),
        ),
        None => (
            format!("?/{} avail", size(host.total_bytes)),
            Level::Unknown,
        ),
    };
    out.push(("RAM", ram.0, ram.1));
    let swap = match (host.swap_total_bytes, host.swap_free_bytes) {
        (Some(0), _) => ("none".to_owned(), Level::Fine),
        (Some(t), Some(f)) => (
            format!("{}/{}", size(t.saturating_sub(f)), size(t)),
            level(t.saturating_sub(f), t),
        ),
        _ => ("?".to_owned(), Level::Unknown),
    };
    out.push(("swap", swap.0, swap.1));
    let psi = match &host.pressure {
        Some(p) => {
            let l = if p.some_avg10 > 20.0 {
                Level::Critical
            } else if p.some_avg10 > 5.0 {
                Level::Warn
            } else {
                Level::Fine
            };
            let full = p
                .full_avg10
                .map_or_else(String::new, |f| format!(" full {f:.1}%"));
            (format!("some {:.1}%{full}", p.some_avg10), l)
        }
        None => ("?".to_owned(), Level::Unknown),
    };
    out.push(("PSI", psi.0, psi.1));
    if let Some(cg) = &host.cgroup {
        let usage = cg.usage_bytes.map_or_else(|| "?".to_owned(), size);
        let limit = cg.limit_bytes.map_or_else(|| "unlimited".to_owned(), size);
        let peak = cg.peak_bytes.map_or_else(|| "?".to_owned(), size);
        let l = match (cg.usage_bytes, cg.limit_bytes) {
            (Some(u), Some(l)) => level(u, l),
            (None, _) => Level::Unknown,
            _ => Level::Fine,
        };
        out.push(("cgroup", format!("{usage}/{limit} pk {peak}"), l));
    }
    out
}

/// Why each `?` of the header is there, one short sentence each.
pub(super) fn reasons(host: &HostMemory, out: &mut Vec<String>) {
    if host.available_bytes.is_none() {
        out.push("RAM avail ?: the OS does not report available memory (Linux < 3.14)".into());
    }
    if host.swap_total_bytes.is_none() || host.swap_free_bytes.is_none() {
        out.push(
            "swap ?: not reported here (Windows counts page files in its commit limit)".into(),
        );
    }
    if host.pressure.is_none() {
        out.push("PSI ?: no /proc/pressure/memory (Linux < 4.20, psi=0, or not Linux)".into());
    }
    if let Some(cg) = &host.cgroup {
        if cg.usage_bytes.is_none() {
            out.push("cgroup usage ?: its memory.current is unreadable".into());
        }
        if cg.peak_bytes.is_none() {
            out.push("cgroup peak ?: the kernel has no memory.peak (Linux < 5.19)".into());
        }
    }
}

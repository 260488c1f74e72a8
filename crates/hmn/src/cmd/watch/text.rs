//! The text rows of `hmn watch` and the cells of its summary.

use super::listing::{Gpu, Place};
use super::track::Watched;
use crate::size::format_size;

pub(super) fn signed(delta: Option<i128>) -> String {
    match delta {
        None => "n/a".to_owned(),
        Some(d) => {
            let size = format_size(u64::try_from(d.unsigned_abs()).unwrap_or(u64::MAX));
            if d < 0 {
                format!("-{size}")
            } else {
                format!("+{size}")
            }
        }
    }
}

pub(super) fn delta(now: Option<u64>, base: Option<u64>) -> Option<i128> {
    Some(i128::from(now?) - i128::from(base?))
}

pub(super) fn opt_size(v: Option<u64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), format_size)
}

/// `VRAM` and `SYS` as in `hmn ps`; `GPU` the row's device (`-`: none); `NOTE` says how a row
/// without the driver's figures was found, and what of its memory is shared with other
/// processes.
pub(super) const ROW_HEADER: &str = "TIME      PID      NAME              GPU  VRAM       ΔVRAM      SYS        ΔSYS       RSS        ΔRSS       SPILL  NOTE";

/// The text of one row: `base` is the process's baseline on the row's device.
pub(super) fn row_text(
    at: &str,
    w: &Watched,
    place: &Place,
    base: Gpu,
    rss: (Option<u64>, Option<u64>),
    spill: &str,
) -> String {
    let cell = |text: String| format!("{text:<10} ");
    let device = place
        .device
        .map_or_else(|| "-".to_owned(), |d| d.to_string());
    let mut note = place.presence.note().to_owned();
    if let Some(shared) = place.shared.filter(|&s| s > 0) {
        if !note.is_empty() {
            note.push_str("; ");
        }
        note.push_str(&format!(
            "{} shared with other processes",
            format_size(shared)
        ));
    }
    if !place.shared_with.is_empty() {
        if !note.is_empty() {
            note.push_str("; ");
        }
        let pids: Vec<String> = place.shared_with.iter().map(u32::to_string).collect();
        let noun = if pids.len() == 1 { "pid" } else { "pids" };
        note.push_str(&format!(
            "GPU client shared with {noun} {} (its memory is in both rows)",
            pids.join(", ")
        ));
    }
    let line = format!(
        "{at:<9} {:<8} {:<17} {device:<4} {}{}{}{}{}{}{spill:<6} {note}",
        w.pid,
        crate::text::escape(w.name.as_deref().unwrap_or("?")),
        cell(opt_size(place.gpu.used)),
        cell(signed(delta(place.gpu.used, base.used))),
        cell(opt_size(place.gpu.system)),
        cell(signed(delta(place.gpu.system, base.system))),
        cell(opt_size(rss.0)),
        cell(signed(delta(rss.0, rss.1))),
    );
    line.trim_end().to_owned()
}

/// The summary's PAGED cell: `yes`, `no`, `?` (could not tell), `n/a` (cannot be measured
/// here).
pub(super) fn paged_cell(paged: Option<bool>, platform: bool) -> &'static str {
    match (platform, paged) {
        (false, _) => "n/a",
        (true, Some(true)) => "yes",
        (true, Some(false)) => "no",
        (true, None) => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_paged_cell_says_yes_no_unknown_or_not_applicable() {
        assert_eq!(paged_cell(Some(true), true), "yes");
        assert_eq!(paged_cell(Some(false), true), "no");
        assert_eq!(paged_cell(None, true), "?");
        assert_eq!(paged_cell(Some(true), false), "n/a");
        assert_eq!(paged_cell(None, false), "n/a");
    }

    #[test]
    fn deltas_are_signed_sizes() {
        assert_eq!(signed(Some(0)), "+0 B");
        assert_eq!(signed(Some(-(4 << 20))), "-4 MiB");
        assert_eq!(signed(Some(3 << 30)), "+3.0 GiB");
        assert_eq!(signed(None), "n/a");
    }
}

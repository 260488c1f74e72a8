//! The process table's rows: one per process and device, sorted, filtered, or as a tree.
//!
//! Why a row model apart from drawing: sorting, the tree's subtree totals, the filter and
//! the mouse all need the same rows in the same order, and tests check them without a
//! terminal.

use std::time::Instant;

use hypomnesis::Frame;

use super::charts::HistorySource;

/// A column of the process table, in display order. The order columns are dropped in on a
/// narrow terminal is [`Column::DROP_ORDER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Column {
    Pid,
    User,
    Name,
    Gpu,
    Vram,
    Shared,
    Rss,
    Delta,
    Peak,
    Age,
    Command,
}

impl Column {
    /// Every column, left to right.
    pub(crate) const ALL: [Self; 11] = [
        Self::Pid,
        Self::User,
        Self::Name,
        Self::Gpu,
        Self::Vram,
        Self::Shared,
        Self::Rss,
        Self::Delta,
        Self::Peak,
        Self::Age,
        Self::Command,
    ];

    /// The header text.
    pub(crate) const fn title(self) -> &'static str {
        match self {
            Self::Pid => "PID",
            Self::User => "USER",
            Self::Name => "NAME",
            Self::Gpu => "GPU",
            Self::Vram => "VRAM",
            Self::Shared => "SHARED",
            Self::Rss => "RSS",
            Self::Delta => "Δ",
            Self::Peak => "PEAK",
            Self::Age => "AGE",
            Self::Command => "COMMAND",
        }
    }
}

/// The table's order: a column and a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sort {
    pub(crate) column: Column,
    pub(crate) descending: bool,
}

impl Default for Sort {
    /// By VRAM, largest first.
    fn default() -> Self {
        Self {
            column: Column::Vram,
            descending: true,
        }
    }
}

/// How to build the rows.
pub(crate) struct RowQuery<'a> {
    pub(crate) sort: Sort,
    /// Processes under their parents, with subtree totals.
    pub(crate) tree: bool,
    /// Which rows to keep (the filter, "only mine").
    pub(crate) keep: &'a dyn Fn(&ProcessRow) -> bool,
    /// The user running `top`.
    pub(crate) me: Option<&'a str>,
    /// When the frame is shown (for ages).
    pub(crate) now: Instant,
}

/// One process on one device, as the table shows it. `None` is unknown (drawn `?` or `n/a`,
/// with the reason in the footer), never 0.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProcessRow {
    pub(crate) pid: u32,
    pub(crate) user: Option<String>,
    pub(crate) name: Option<String>,
    /// The device index (`None` for a tree row standing for a parent holding no GPU memory).
    pub(crate) gpu: Option<u32>,
    /// The MIG instance, `gi/ci`, when MIG is on.
    pub(crate) mig: Option<(u32, u32)>,
    pub(crate) vram_bytes: Option<u64>,
    /// GPU buffers in system RAM (GTT, shared memory).
    pub(crate) shared_bytes: Option<u64>,
    pub(crate) rss_bytes: Option<u64>,
    /// VRAM now minus VRAM when `top` first saw the process on this device.
    pub(crate) delta_bytes: Option<i64>,
    /// The largest VRAM seen since `top` first saw it.
    pub(crate) peak_bytes: Option<u64>,
    /// How long the process has been running.
    pub(crate) age: Option<std::time::Duration>,
    pub(crate) command: Option<String>,
    pub(crate) cgroup: Option<String>,
    /// Whether it runs as the user running `top`.
    pub(crate) mine: bool,
    /// Depth in the tree view (0 at the top, and always 0 outside it).
    pub(crate) depth: u16,
    /// In the tree view: the subtree's VRAM (this row and all below it).
    pub(crate) subtree_vram_bytes: Option<u64>,
}

/// The rows to show for `frame`: its processes, kept, sorted (or in tree order) as `query`
/// says, with peaks and deltas from `history`.
pub(crate) fn build(
    frame: &Frame,
    query: &RowQuery<'_>,
    _history: &dyn HistorySource,
) -> Vec<ProcessRow> {
    let me = query.me;
    frame
        .processes()
        .map(|p| ProcessRow {
            pid: p.pid,
            user: p.user.clone(),
            name: p.name.clone(),
            gpu: Some(p.device_index),
            mig: p.gpu_instance_id.zip(p.compute_instance_id),
            vram_bytes: p.used_bytes,
            shared_bytes: p.system_bytes,
            rss_bytes: p.rss_bytes,
            delta_bytes: None,
            peak_bytes: None,
            age: None,
            command: p.command.clone(),
            cgroup: p.cgroup.clone(),
            mine: me.is_some() && p.user.as_deref() == me,
            depth: 0,
            subtree_vram_bytes: None,
        })
        .filter(|row| (query.keep)(row))
        .collect()
}

//! The process table's rows: one per process and device, sorted, filtered, or as a tree.
//!
//! Why a row model apart from drawing: sorting, the tree's subtree totals, the filter and
//! the mouse all need the same rows in the same order, and tests check them without a
//! terminal.
//!
//! Building happens in two steps: [`read`] turns a frame into one row per process and device
//! with every figure filled in (peaks from the history, the VRAM delta from the first reading
//! `top` saw, the age and parent from [`Lineage`]); [`arrange`] keeps, sorts and nests those
//! rows. Sorting, filtering and the tree view change only the second step, so a key press
//! re-arranges the rows it already has without touching the history.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::time::Instant;

use hypomnesis::{Frame, ProcessMetric};

use super::charts::HistorySource;

/// A column of the process table, in display order. The order columns are dropped in on a
/// narrow terminal is the screen's, `ui::table::DROP_ORDER`.
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

    /// Which way a column sorts when first chosen: figures largest first, names, pids and
    /// devices in reading order.
    pub(crate) const fn default_descending(self) -> bool {
        matches!(
            self,
            Self::Vram | Self::Shared | Self::Rss | Self::Delta | Self::Peak | Self::Age
        )
    }

    /// Where the column is in [`Column::ALL`].
    pub(crate) fn position(self) -> usize {
        Self::ALL.iter().position(|c| *c == self).unwrap_or(0)
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

/// What `top` knows of a process besides its GPU rows: its parent and when it started. Each
/// is `None` when it cannot be told (off Linux, another user's process under `hidepid`, a
/// recording played back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Lineage {
    /// The parent's process id.
    pub(crate) parent: Option<u32>,
    /// When the process started, on the clock of [`RowQuery::now`].
    pub(crate) started: Option<Instant>,
}

/// How to read the rows ([`read`]); sorting, the tree and the filter are [`arrange`]'s.
pub(crate) struct RowQuery<'a> {
    /// The user running `top`.
    pub(crate) me: Option<&'a str>,
    /// When the frame is shown (for ages).
    pub(crate) now: Instant,
    /// Each process's parent and start, by pid (absent: unknown).
    pub(crate) lineage: &'a HashMap<u32, Lineage>,
    /// The VRAM of each (pid, device) when `top` first saw it with a known figure: the base
    /// of the Δ column.
    pub(crate) first_seen: &'a HashMap<(u32, u32), u64>,
}

/// One process on one device, as the table shows it. `None` is unknown (drawn `?` or `n/a`,
/// with the reason in the footer), never 0.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProcessRow {
    pub(crate) pid: u32,
    pub(crate) user: Option<String>,
    pub(crate) name: Option<String>,
    /// The device index (`None` for a tree row standing for a parent holding no GPU memory;
    /// [`arrange`] makes none: such a parent's children are roots).
    pub(crate) gpu: Option<u32>,
    /// The MIG instance, `gi/ci`, when MIG is on.
    pub(crate) mig: Option<(u32, u32)>,
    pub(crate) vram_bytes: Option<u64>,
    /// GPU buffers in system RAM (GTT, shared memory).
    pub(crate) shared_bytes: Option<u64>,
    pub(crate) rss_bytes: Option<u64>,
    /// VRAM now minus VRAM when `top` first saw the process on this device with a known
    /// figure (kept since then, so it outlives the history's window; a process that leaves
    /// the table and comes back starts again from 0).
    pub(crate) delta_bytes: Option<i64>,
    /// The largest VRAM seen since `top` first saw it (the history's peak of the process's
    /// series; `None` once the series is dropped).
    pub(crate) peak_bytes: Option<u64>,
    /// How long the process has been running.
    pub(crate) age: Option<std::time::Duration>,
    pub(crate) command: Option<String>,
    pub(crate) cgroup: Option<String>,
    /// Whether it runs as the user running `top`.
    pub(crate) mine: bool,
    /// Depth in the tree view (0 at the top, and always 0 outside it).
    pub(crate) depth: u16,
    /// In the tree view: the subtree's VRAM on this row's device (this row and all rows of
    /// its descendants on the same device); `None` when any of them is unknown, and outside
    /// the tree view.
    pub(crate) subtree_vram_bytes: Option<u64>,
}

/// Every process row of `frame`, in the frame's order, figures filled in (peaks and deltas
/// from `history`); [`arrange`] then keeps, sorts and nests them.
pub(crate) fn read(
    frame: &Frame,
    query: &RowQuery<'_>,
    history: &dyn HistorySource,
) -> Vec<ProcessRow> {
    let me = query.me;
    let mut rows: Vec<ProcessRow> = frame
        .processes()
        .map(|p| {
            let lineage = query.lineage.get(&p.pid).copied().unwrap_or_default();
            let first = query.first_seen.get(&(p.pid, p.device_index)).copied();
            ProcessRow {
                pid: p.pid,
                user: p.user.clone(),
                name: p.name.clone(),
                gpu: Some(p.device_index),
                mig: p.gpu_instance_id.zip(p.compute_instance_id),
                vram_bytes: p.used_bytes,
                shared_bytes: p.system_bytes,
                rss_bytes: p.rss_bytes,
                delta_bytes: p
                    .used_bytes
                    .zip(first)
                    .map(|(now, then)| signed_difference(now, then)),
                peak_bytes: None,
                age: lineage
                    .started
                    .and_then(|started| query.now.checked_duration_since(started)),
                command: p.command.clone(),
                cgroup: p.cgroup.clone(),
                mine: me.is_some() && p.user.as_deref() == me,
                depth: 0,
                subtree_vram_bytes: None,
            }
        })
        .collect();
    history.with_history(&mut |h| {
        for row in &mut rows {
            if let Some(gpu) = row.gpu {
                row.peak_bytes = h
                    .process_peak(row.pid, gpu, ProcessMetric::Used)
                    .and_then(bytes_from_reading);
            }
        }
    });
    rows
}

/// `now - then` in bytes, saturating at `i64`'s range.
fn signed_difference(now: u64, then: u64) -> i64 {
    if now >= then {
        i64::try_from(now - then).unwrap_or(i64::MAX)
    } else {
        i64::try_from(then - now).map_or(i64::MIN, |d| -d)
    }
}

/// A history reading of bytes back as bytes (the history stores `f64`; byte counts below
/// 2^53 are exact).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn bytes_from_reading(value: f64) -> Option<u64> {
    (value.is_finite() && value >= 0.0).then(|| value.round() as u64)
}

/// `rows` kept by `keep`, sorted by `sort` with ties broken by (pid, device), and in the
/// tree view nested under their parents (`parent` gives a pid's parent).
///
/// The tree: a process is placed under its parent when the parent has a row that was kept;
/// otherwise (the parent holds no GPU memory, is filtered out, or is unknown) it is a root.
/// Walking further up through processes without GPU memory would need a `/proc` read per
/// ancestor on every refresh; the direct parent is what `top` already knows. Siblings and
/// roots keep the sort order; a process with rows on several devices shows them together, at
/// the place of its first.
pub(crate) fn arrange(
    rows: &[ProcessRow],
    sort: Sort,
    tree: bool,
    keep: &dyn Fn(&ProcessRow) -> bool,
    parent: &dyn Fn(u32) -> Option<u32>,
) -> Vec<ProcessRow> {
    let mut kept: Vec<ProcessRow> = rows.iter().filter(|r| keep(r)).cloned().collect();
    kept.sort_by(|a, b| compare(a, b, sort));
    if tree { nest(kept, parent) } else { kept }
}

/// The table's order: `sort`'s column, unknown figures last in either direction, then pid
/// and device ascending.
pub(crate) fn compare(a: &ProcessRow, b: &ProcessRow, sort: Sort) -> Ordering {
    let d = sort.descending;
    let primary = match sort.column {
        Column::Pid => by(Some(a.pid), Some(b.pid), d),
        Column::User => by(text_key(&a.user), text_key(&b.user), d),
        Column::Name => by(text_key(&a.name), text_key(&b.name), d),
        Column::Gpu => by(a.gpu.map(|g| (g, a.mig)), b.gpu.map(|g| (g, b.mig)), d),
        Column::Vram => by(a.vram_bytes, b.vram_bytes, d),
        Column::Shared => by(a.shared_bytes, b.shared_bytes, d),
        Column::Rss => by(a.rss_bytes, b.rss_bytes, d),
        Column::Delta => by(a.delta_bytes, b.delta_bytes, d),
        Column::Peak => by(a.peak_bytes, b.peak_bytes, d),
        Column::Age => by(a.age, b.age, d),
        Column::Command => by(text_key(&a.command), text_key(&b.command), d),
    };
    primary
        .then_with(|| a.pid.cmp(&b.pid))
        .then_with(|| a.gpu.cmp(&b.gpu))
}

/// Text sorts without regard to case, then by case so the order is total.
fn text_key(text: &Option<String>) -> Option<(String, &str)> {
    text.as_deref().map(|t| (t.to_lowercase(), t))
}

/// Known values in `descending` or ascending order, unknown ones after them either way.
fn by<T: Ord>(a: Option<T>, b: Option<T>, descending: bool) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) if descending => b.cmp(&a),
        (Some(a), Some(b)) => a.cmp(&b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// A subtree's VRAM per device (`None`: some of it unknown).
type DeviceTotals = Vec<(Option<u32>, Option<u64>)>;

/// `sorted` in tree order with depths and subtree totals (see [`arrange`]).
fn nest(sorted: Vec<ProcessRow>, parent: &dyn Fn(u32) -> Option<u32>) -> Vec<ProcessRow> {
    // Processes in the order of their first row, and each one's rows.
    let mut order: Vec<u32> = Vec::new();
    let mut rows_of: HashMap<u32, Vec<ProcessRow>> = HashMap::new();
    for row in sorted {
        let entry = rows_of.entry(row.pid).or_default();
        if entry.is_empty() {
            order.push(row.pid);
        }
        entry.push(row);
    }
    let tree_parent = |pid: u32| parent(pid).filter(|p| *p != pid && rows_of.contains_key(p));
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut roots: Vec<u32> = Vec::new();
    for &pid in &order {
        match tree_parent(pid) {
            Some(p) => children.entry(p).or_default().push(pid),
            None => roots.push(pid),
        }
    }
    // Depth-first, children in sort order. A cycle of parents (impossible in a real process
    // table, possible in a stale one) has no root: its first process becomes one.
    let mut preorder: Vec<(u32, u16)> = Vec::with_capacity(order.len());
    let mut seen: std::collections::HashSet<u32> = std::collections::HashSet::new();
    let mut walk = |root: u32, preorder: &mut Vec<(u32, u16)>| {
        let mut stack = vec![(root, 0_u16)];
        while let Some((pid, depth)) = stack.pop() {
            if !seen.insert(pid) {
                continue;
            }
            preorder.push((pid, depth));
            if let Some(kids) = children.get(&pid) {
                for &kid in kids.iter().rev() {
                    stack.push((kid, depth.saturating_add(1)));
                }
            }
        }
    };
    for &root in &roots {
        walk(root, &mut preorder);
    }
    for &pid in &order {
        walk(pid, &mut preorder);
    }
    // Subtree totals per device, children before parents (reverse preorder).
    let mut totals: HashMap<u32, DeviceTotals> = HashMap::new();
    for &(pid, _) in preorder.iter().rev() {
        let mut sums: DeviceTotals = rows_of
            .get(&pid)
            .map(|rows| rows.iter().map(|r| (r.gpu, r.vram_bytes)).collect())
            .unwrap_or_default();
        for kid in children.get(&pid).into_iter().flatten() {
            for &(gpu, bytes) in totals.get(kid).into_iter().flatten() {
                // A device only descendants use is carried up too, for an ancestor that
                // has a row on it.
                match sums.iter_mut().find(|(g, _)| *g == gpu) {
                    Some((_, sum)) => *sum = sum.zip(bytes).map(|(s, b)| s.saturating_add(b)),
                    None => sums.push((gpu, bytes)),
                }
            }
        }
        totals.insert(pid, sums);
    }
    let mut out = Vec::with_capacity(rows_of.values().map(Vec::len).sum());
    for (pid, depth) in preorder {
        let sums = totals.remove(&pid).unwrap_or_default();
        for mut row in rows_of.remove(&pid).unwrap_or_default() {
            row.depth = depth;
            row.subtree_vram_bytes = sums.iter().find(|(g, _)| *g == row.gpu).and_then(|s| s.1);
            out.push(row);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn row(pid: u32, gpu: u32, vram: Option<u64>) -> ProcessRow {
        ProcessRow {
            pid,
            user: None,
            name: Some(format!("p{pid}")),
            gpu: Some(gpu),
            mig: None,
            vram_bytes: vram,
            shared_bytes: None,
            rss_bytes: None,
            delta_bytes: None,
            peak_bytes: None,
            age: None,
            command: None,
            cgroup: None,
            mine: false,
            depth: 0,
            subtree_vram_bytes: None,
        }
    }

    fn tree(rows: &[ProcessRow], parents: &[(u32, u32)]) -> Vec<(u32, u32, u16, Option<u64>)> {
        let parent = |pid: u32| parents.iter().find(|(c, _)| *c == pid).map(|(_, p)| *p);
        arrange(rows, Sort::default(), true, &|_| true, &parent)
            .into_iter()
            .map(|r| (r.pid, r.gpu.unwrap(), r.depth, r.subtree_vram_bytes))
            .collect()
    }

    #[test]
    fn a_grandchilds_device_counts_for_a_grandparent_on_it_through_a_parent_not_on_it() {
        let rows = [
            row(1, 1, Some(2 * GIB)),
            row(2, 0, Some(GIB)),
            row(3, 1, Some(5 * GIB)),
        ];
        assert_eq!(
            tree(&rows, &[(2, 1), (3, 2)]),
            [
                (1, 1, 0, Some(7 * GIB)),
                (2, 0, 1, Some(GIB)),
                (3, 1, 2, Some(5 * GIB)),
            ]
        );
    }

    #[test]
    fn a_cycle_of_parents_still_shows_every_row_once() {
        let rows = [
            row(1, 0, Some(GIB)),
            row(2, 0, Some(2 * GIB)),
            row(3, 0, None),
        ];
        let shown = tree(&rows, &[(1, 2), (2, 1), (3, 3)]);
        let mut pids: Vec<u32> = shown.iter().map(|r| r.0).collect();
        pids.sort_unstable();
        assert_eq!(pids, [1, 2, 3]);
        // 3 is its own parent: a root.
        assert!(shown.contains(&(3, 0, 0, None)));
    }

    #[test]
    fn equal_figures_fall_back_to_pid_then_device_ascending_either_way() {
        let rows = [
            row(7, 1, Some(GIB)),
            row(7, 0, Some(GIB)),
            row(3, 2, Some(GIB)),
        ];
        for descending in [true, false] {
            let sort = Sort {
                column: Column::Vram,
                descending,
            };
            let order: Vec<(u32, Option<u32>)> = arrange(&rows, sort, false, &|_| true, &|_| None)
                .iter()
                .map(|r| (r.pid, r.gpu))
                .collect();
            assert_eq!(order, [(3, Some(2)), (7, Some(0)), (7, Some(1))]);
        }
    }

    #[test]
    fn text_sorts_without_regard_to_case() {
        let mut rows = [row(1, 0, None), row(2, 0, None), row(3, 0, None)];
        rows[0].name = Some("beta".into());
        rows[1].name = Some("Alpha".into());
        rows[2].name = None;
        let sort = Sort {
            column: Column::Name,
            descending: false,
        };
        let pids: Vec<u32> = arrange(&rows, sort, false, &|_| true, &|_| None)
            .iter()
            .map(|r| r.pid)
            .collect();
        assert_eq!(pids, [2, 1, 3]);
    }
}

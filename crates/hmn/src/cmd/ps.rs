//! `hmn ps`: every process holding GPU memory.
//!
//! One row per process and device (a process on two GPUs appears twice, once per device), so
//! that sums per device add up; the summary counts processes, not rows. A DRM client held by
//! several processes (inherited across `fork`) shows in every holder's row, marked with whom
//! it is shared, and is counted once in the totals (the library decides for which holder:
//! [`GpuProcessEntry::counted_used_bytes`]). The SPILL column says whether the row's device is spilling
//! out of dedicated VRAM into shared system memory (Windows only, see `hypomnesis::spill`):
//! `PAGED` — it is, and this process holds ≥ 256 MiB of shared memory; `device` — it is, but
//! not through this process; `no`; `?` — Windows could not tell (no GPU counters); `n/a` —
//! not measurable on this platform. Names, users and command lines come from the OS (NVML's
//! name when the OS has none); a row the OS would not describe shows `?`, and the notes after
//! the summary say why and what to do about it. Filters narrow rows; the summary echoes them
//! so a script's log says what was asked. `--json` prints one object with the rows, the
//! devices that could not be listed and the same notes, so a script sees what the text puts
//! on stderr (`docs/json.md`).
//!
//! Everything comes from one [`Frame`] with processes and their details: each row carries
//! the process's resident memory (the RSS column, as nvitop users expect, and `rss_bytes`)
//! and its cgroup (`cgroup` in JSON: which container, pod or job), and the notes are the
//! frame's listing notes.

use std::collections::HashSet;

use hypomnesis::spill;
use hypomnesis::{
    DeviceFrame, Frame, FrameNoteKind, FrameRequest, GpuProcessEntry, GpuProcessKind,
    GpuQuerySource, ListingNote, Probe, SharedClient,
};
use serde::Serialize;

use crate::cli::{GlobalArgs, PsArgs, SortKey};
use crate::outcome::Outcome;
use crate::output::Output;
use crate::size::{format_optional, format_size};
use crate::table::{Align, Table};

/// One `ps --json` row. Field meanings are documented in `docs/json.md`.
#[derive(Debug, Clone, Serialize)]
pub struct PsRow {
    pub pid: u32,
    pub user: Option<String>,
    pub name: Option<String>,
    pub command: Option<String>,
    pub used_bytes: Option<u64>,
    pub system_bytes: Option<u64>,
    pub shared_bytes: Option<u64>,
    pub device_index: u32,
    pub device_name: Option<String>,
    pub kind: GpuProcessKind,
    pub gpu_instance_id: Option<u32>,
    pub compute_instance_id: Option<u32>,
    /// SM utilization of the process since the previous reading, percent (NVML); `None`
    /// when there was no new sample or the backend has no per-process figure.
    pub utilization_percent: Option<f64>,
    /// The process's resident memory (host RAM), bytes; `None` when the OS would not say
    /// (another user's or another namespace's process).
    pub rss_bytes: Option<u64>,
    /// The process's cgroup path: which container, pod or job it belongs to (Linux).
    pub cgroup: Option<String>,
    pub source: GpuQuerySource,
    /// Whether the row's device is spilling; `None` when that cannot be measured.
    pub spilling: Option<bool>,
    /// Whether this process is paged out to shared memory on a spilling device (≥ 256 MiB
    /// shared); `None` when not measurable or its shared figure is unknown.
    pub paged: Option<bool>,
    /// Other processes holding some of this row's DRM clients (sorted; empty when none).
    pub shared_with: Vec<u32>,
    /// Those clients, each with every holder and the one it is counted for in totals.
    pub shared_clients: Vec<SharedClient>,
}

impl PsRow {
    fn new(entry: GpuProcessEntry, device_name: Option<String>, spilling: Option<bool>) -> Self {
        let paged = crate::spill::paged(spilling, entry.system_bytes);
        let shared_with = entry.shared_with();
        Self {
            pid: entry.pid,
            user: entry.user,
            name: entry.name,
            command: entry.command,
            used_bytes: entry.used_bytes,
            system_bytes: entry.system_bytes,
            shared_bytes: entry.shared_bytes,
            device_index: entry.device_index,
            device_name,
            kind: entry.kind,
            gpu_instance_id: entry.gpu_instance_id,
            compute_instance_id: entry.compute_instance_id,
            utilization_percent: entry.utilization_percent,
            rss_bytes: entry.rss_bytes,
            cgroup: entry.cgroup,
            source: entry.source,
            spilling,
            paged,
            shared_with,
            shared_clients: entry.shared_clients,
        }
    }
}

/// `hmn ps --json`: the rows and what could not be listed or seen.
#[derive(Debug, Serialize)]
pub struct PsJson<'a> {
    pub processes: &'a [PsRow],
    pub failed_devices: &'a [FailedDevice],
    pub notes: &'a [ListingNote],
}

/// A device whose processes could not be listed.
#[derive(Debug, Clone, Serialize)]
pub struct FailedDevice {
    pub device_index: u32,
    pub error: String,
}

/// What `ps` gathered before filtering: rows, and devices it could not read.
#[derive(Debug, Default)]
pub struct Gathered {
    pub rows: Vec<PsRow>,
    pub skipped: Vec<FailedDevice>,
    pub queried: usize,
    /// What the listings could not see, and why (unreadable processes, PID namespaces,
    /// shared clients), each note once.
    pub notes: Vec<ListingNote>,
}

pub fn run(probe: &Probe, global: &GlobalArgs, args: &PsArgs, out: &Output) -> Outcome {
    let frame = probe.frame(FrameRequest::DEVICES.with_processes(true, true));
    // One spill reading per device, only where spill can be measured at all.
    let spilling = |index| {
        spill::is_spill_measurable()
            .then(|| spill::device_is_spilling(probe, index))
            .flatten()
    };
    let gathered = match gather(&frame, global.device, spilling) {
        Ok(g) => g,
        Err(message) => {
            out.say(&message);
            return Outcome::CouldNotTell;
        }
    };
    for failed in &gathered.skipped {
        out.say(&format!(
            "ps failed to query device {}: {} (skipped)",
            failed.device_index, failed.error
        ));
    }
    if gathered.queried == 0 || (global.device.is_some() && !gathered.skipped.is_empty()) {
        out.say("ps: no device could be queried, so nothing could be listed");
        if global.json {
            out.json(&PsJson {
                processes: &[],
                failed_devices: &gathered.skipped,
                notes: &gathered.notes,
            });
        }
        return Outcome::CouldNotTell;
    }
    for pid in &args.pid {
        if probe.process_exists(*pid) == Some(false) {
            out.say(&format!("pid={pid} names no running process"));
        }
    }
    let mut rows = select(gathered.rows, args);
    sort(&mut rows, args.sort);
    if global.json {
        out.json(&PsJson {
            processes: &rows,
            failed_devices: &gathered.skipped,
            notes: &gathered.notes,
        });
    } else {
        out.data(&render(
            &rows,
            args.full,
            crate::output::table_width(global.wide),
        ));
    }
    out.say(&summary_line(&rows, args, global.device));
    for note in &gathered.notes {
        out.say(&note.message);
    }
    // A device that could not be listed may hold processes the output does not show: never
    // a plain success.
    if !gathered.skipped.is_empty() {
        return Outcome::CouldNotTell;
    }
    if args.exit_status && rows.is_empty() {
        return Outcome::No;
    }
    Outcome::Success
}

/// The rows of every device of `frame` (or only `only`'s), each with its device's `spilling`
/// reading, the devices whose processes could not be listed, and what the listings could not
/// see. `Err` when the frame has no devices because no GPU source answered (and no one device
/// was asked for).
pub fn gather(
    frame: &Frame,
    only: Option<u32>,
    spilling: impl Fn(u32) -> Option<bool>,
) -> Result<Gathered, String> {
    let mut gathered = Gathered::default();
    let devices: Vec<&DeviceFrame> = match (only, &frame.gpu_error) {
        (None, Some(e)) => return Err(format!("ps: no device could be queried: {e}")),
        (None, None) => frame.devices.iter().collect(),
        (Some(index), _) => match frame.device(index) {
            Some(device) => vec![device],
            None => {
                let why = super::missing_device(frame, index);
                gathered.skipped.push(FailedDevice {
                    device_index: index,
                    error: why.to_string(),
                });
                return Ok(gathered);
            }
        },
    };
    for d in &devices {
        let index = d.device.index;
        if let Some(e) = &d.processes_error {
            gathered.skipped.push(FailedDevice {
                device_index: index,
                error: e.to_string(),
            });
            continue;
        }
        gathered.queried += 1;
        let spilling = spilling(index);
        gathered.rows.extend(
            d.rows()
                .iter()
                .map(|e| PsRow::new(e.clone(), d.device.name.clone(), spilling)),
        );
    }
    // What the listings could not see, each finding once (two devices may report the same
    // unreadable process).
    let shown: Vec<u32> = devices.iter().map(|d| d.device.index).collect();
    for note in frame.notes() {
        if let (FrameNoteKind::Listing, Some(index), Some(finding)) =
            (note.kind, note.device, note.listing)
            && shown.contains(&index)
            && !gathered.notes.contains(&finding)
        {
            gathered.notes.push(finding);
        }
    }
    Ok(gathered)
}

/// All GPU memory a row holds: device memory plus GPU buffers in system RAM (GTT, shared).
/// `None` when neither is known.
pub fn held_bytes(row: &PsRow) -> Option<u64> {
    match (row.used_bytes, row.system_bytes) {
        (None, None) => None,
        (used, system) => Some(used.unwrap_or(0).saturating_add(system.unwrap_or(0))),
    }
}

/// The device-memory and system-memory totals of `rows`, each shared DRM client counted
/// once: it is in every holder's row, so it is taken out of each row and added back once per
/// (device, client) — whichever of its holders `rows` still has after filtering. Unknown
/// figures add nothing; the sums saturate.
pub fn counted_totals(rows: &[PsRow]) -> (u64, u64) {
    let mut used: u64 = 0;
    let mut system: u64 = 0;
    let mut seen: HashSet<(u32, Option<u64>, &[u32])> = HashSet::new();
    for row in rows {
        let mut row_used = row.used_bytes.unwrap_or(0);
        let mut row_system = row.system_bytes.unwrap_or(0);
        for client in &row.shared_clients {
            let first_time = seen.insert((row.device_index, client.client_id, &client.holders));
            if !first_time {
                row_used = row_used.saturating_sub(client.used_bytes.unwrap_or(0));
                row_system = row_system.saturating_sub(client.system_bytes.unwrap_or(0));
            }
        }
        used = used.saturating_add(row_used);
        system = system.saturating_add(row_system);
    }
    (used, system)
}

/// Applies `--pid`, `--min` and `--filter`.
pub fn select(rows: Vec<PsRow>, args: &PsArgs) -> Vec<PsRow> {
    let patterns: Vec<String> = args.filter.iter().map(|p| p.to_lowercase()).collect();
    rows.into_iter()
        .filter(|row| args.pid.is_empty() || args.pid.contains(&row.pid))
        .filter(|row| {
            args.min
                .is_none_or(|min| held_bytes(row).is_some_and(|u| u >= min))
        })
        .filter(|row| {
            patterns.is_empty()
                || patterns.iter().any(|pattern| {
                    [row.name.as_deref(), row.command.as_deref()]
                        .into_iter()
                        .flatten()
                        .any(|text| text.to_lowercase().contains(pattern))
                })
        })
        .collect()
}

pub fn sort(rows: &mut [PsRow], key: SortKey) {
    // Unknown names sort after every known one. Keys are computed once per row (a lowercased
    // name per comparison would allocate n log n times in a listing of 60,000 rows).
    let name = |row: &PsRow| {
        (
            row.name.is_none(),
            row.name.as_deref().unwrap_or("").to_lowercase(),
        )
    };
    match key {
        SortKey::Vram => rows.sort_by_cached_key(|r| {
            (
                std::cmp::Reverse(held_bytes(r)),
                name(r),
                r.pid,
                r.device_index,
            )
        }),
        SortKey::Pid => rows.sort_by_key(|r| (r.pid, r.device_index)),
        SortKey::Name => rows.sort_by_cached_key(|r| (name(r), r.pid, r.device_index)),
    }
}

/// The table; `width` fits it to a terminal (`None`: whole). Columns that not every listing
/// has (SYS, RSS, GPU%, GI/CI) appear only when some row has them. Fitting cuts NAME and
/// COMMAND first, then leaves out SPILL, GPU%, RSS, USER, GI/CI, SYS in that order
/// (`cli::PS_WIDTH_HELP`).
pub fn render(rows: &[PsRow], full: bool, width: Option<usize>) -> String {
    let columns = Columns::of(rows, full);
    let mut table = Table::new(columns.header())
        .flexible("NAME", 12)
        .flexible("COMMAND", 20)
        .optional("SPILL", 0)
        .optional("GPU%", 1)
        .optional("RSS", 2)
        .optional("USER", 3)
        .optional("GI/CI", 4)
        .optional("SYS", 5);
    for row in rows {
        table.push(columns.cells(row));
    }
    table.render_within(width)
}

/// Which of the table's columns `rows` call for.
struct Columns {
    /// GPU memory in system RAM (GTT on AMD, Intel's system memory, Windows shared): on an
    /// APU the model lives there, not in VRAM.
    system: bool,
    /// The process's resident host memory, where the OS told it for some row.
    rss: bool,
    /// Per-process utilization (NVML samples).
    util: bool,
    /// MIG: the GPU instance / compute instance a process runs in.
    mig: bool,
    /// `--full`: the command line.
    command: bool,
}

impl Columns {
    fn of(rows: &[PsRow], full: bool) -> Self {
        Self {
            system: rows.iter().any(|r| r.system_bytes.is_some()),
            rss: rows.iter().any(|r| r.rss_bytes.is_some()),
            util: rows.iter().any(|r| r.utilization_percent.is_some()),
            mig: rows
                .iter()
                .any(|r| r.gpu_instance_id.is_some() || r.compute_instance_id.is_some()),
            command: full,
        }
    }

    fn header(&self) -> Vec<(&'static str, Align)> {
        let mut header = vec![
            ("PID", Align::Right),
            ("USER", Align::Left),
            ("NAME", Align::Left),
            ("VRAM", Align::Right),
        ];
        if self.system {
            header.push(("SYS", Align::Right));
        }
        if self.rss {
            header.push(("RSS", Align::Right));
        }
        if self.util {
            header.push(("GPU%", Align::Right));
        }
        header.push(("DEVICE", Align::Left));
        if self.mig {
            header.push(("GI/CI", Align::Left));
        }
        header.push(("SPILL", Align::Left));
        if self.command {
            header.push(("COMMAND", Align::Left));
        }
        header
    }

    fn cells(&self, row: &PsRow) -> Vec<String> {
        let unknown = || "?".to_owned();
        let mut cells = vec![
            row.pid.to_string(),
            row.user.clone().unwrap_or_else(unknown),
            row.name.clone().unwrap_or_else(unknown),
            format_optional(row.used_bytes),
        ];
        if self.system {
            cells.push(format_optional(row.system_bytes));
        }
        if self.rss {
            cells.push(format_optional(row.rss_bytes));
        }
        if self.util {
            cells.push(
                row.utilization_percent
                    .map_or_else(|| "n/a".to_owned(), |u| format!("{u:.0}")),
            );
        }
        cells.push(format!("GPU {}", row.device_index));
        if self.mig {
            let id = |id: Option<u32>| id.map_or_else(|| "-".to_owned(), |i| i.to_string());
            cells.push(
                if row.gpu_instance_id.is_none() && row.compute_instance_id.is_none() {
                    "-".to_owned()
                } else {
                    format!(
                        "{}/{}",
                        id(row.gpu_instance_id),
                        id(row.compute_instance_id)
                    )
                },
            );
        }
        cells.push(spill_cell(row, spill::is_spill_measurable()).to_owned());
        if self.command {
            cells.push(row.command.clone().unwrap_or_else(unknown));
        }
        cells
    }
}

/// The SPILL cell: `PAGED`, `device`, `no`, `?` (could not tell), or `n/a` where the platform
/// cannot measure spill at all.
pub fn spill_cell(row: &PsRow, measurable: bool) -> &'static str {
    crate::spill::cell(row.spilling, row.paged, measurable)
}

/// `2 GPU processes found matching device=0 filter="py" (9.6 GiB total); 1 unnamed.`
pub fn summary_line(rows: &[PsRow], args: &PsArgs, device: Option<u32>) -> String {
    // Processes, not rows: a process on two GPUs has a row per device.
    let count = rows.iter().map(|r| r.pid).collect::<HashSet<u32>>().len();
    let noun = if count == 1 { "process" } else { "processes" };
    let mut line = format!("{count} GPU {noun} found");
    let mut criteria = Vec::new();
    if !args.pid.is_empty() {
        let pids: Vec<String> = args.pid.iter().map(u32::to_string).collect();
        criteria.push(format!("pid={}", pids.join(",")));
    }
    if let Some(index) = device {
        criteria.push(format!("device={index}"));
    }
    if let Some(min) = args.min {
        criteria.push(format!("min={}", format_size(min)));
    }
    if !args.filter.is_empty() {
        let quoted: Vec<String> = args.filter.iter().map(|f| format!("{f:?}")).collect();
        criteria.push(format!("filter={}", quoted.join(",")));
    }
    if !criteria.is_empty() {
        line.push_str(" matching ");
        line.push_str(&criteria.join(" "));
    }
    // Summed without wrapping (saturating, each shared client once); a sum of nothing known
    // is "n/a", never 0, and a total that leaves processes out says how many it covers.
    let (known, system) = counted_totals(rows);
    let with_figure = rows
        .iter()
        .filter(|r| held_bytes(r).is_some())
        .map(|r| r.pid)
        .collect::<HashSet<u32>>()
        .len();
    let unknown_memory = count.saturating_sub(with_figure);
    if count > 0 {
        let device_total = rows
            .iter()
            .any(|r| r.used_bytes.is_some())
            .then(|| format_size(known));
        let system_total = rows
            .iter()
            .any(|r| r.system_bytes.is_some())
            .then(|| format_size(system));
        match (&device_total, &system_total) {
            (None, None) => line.push_str(" (total n/a"),
            _ => line.push_str(&format!(
                " ({} total",
                device_total.as_deref().unwrap_or("n/a")
            )),
        }
        if let Some(system) = &system_total {
            line.push_str(&format!(", {system} in system RAM"));
        }
        if unknown_memory > 0 && unknown_memory < count {
            line.push_str(&format!(
                " covering {} of {count} processes, {unknown_memory} without a memory figure from the driver",
                count - unknown_memory
            ));
        } else if unknown_memory > 0 {
            line.push_str(": no process has a memory figure from the driver");
        }
        line.push(')');
    }
    // Why names are missing (another container's process, privileges) is in the notes.
    let unnamed = rows.iter().filter(|r| r.name.is_none()).count();
    if unnamed > 0 {
        line.push_str(&format!("; {unnamed} unnamed"));
    }
    let mut spilling: Vec<u32> = rows
        .iter()
        .filter(|r| r.spilling == Some(true))
        .map(|r| r.device_index)
        .collect();
    spilling.sort_unstable();
    spilling.dedup();
    for index in spilling {
        let paged = rows
            .iter()
            .filter(|r| r.device_index == index && r.paged == Some(true))
            .count();
        let noun = if paged == 1 { "process" } else { "processes" };
        line.push_str(&format!(
            "; device {index} spilling into shared memory ({paged} {noun} paged)"
        ));
    }
    line.push('.');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pid: u32, name: Option<&str>, used: Option<u64>, device: u32) -> PsRow {
        PsRow {
            pid,
            user: Some("alice".into()),
            name: name.map(str::to_owned),
            command: name.map(|n| format!("/usr/bin/{n} --serve")),
            used_bytes: used,
            system_bytes: None,
            shared_bytes: None,
            device_index: device,
            device_name: Some("NVIDIA H100 80GB HBM3".into()),
            kind: GpuProcessKind::Compute,
            gpu_instance_id: None,
            compute_instance_id: None,
            utilization_percent: None,
            rss_bytes: None,
            cgroup: None,
            source: GpuQuerySource::Nvml,
            spilling: None,
            paged: None,
            shared_with: Vec::new(),
            shared_clients: Vec::new(),
        }
    }

    fn rows() -> Vec<PsRow> {
        vec![
            row(300, Some("python3"), Some(2 << 30), 0),
            row(100, Some("llama-server"), Some(8 << 30), 1),
            row(200, None, Some(512 << 20), 0),
            row(400, Some("Xorg"), None, 0),
        ]
    }

    /// A frame of three devices: 0 listed with a process not in /proc, 1 whose listing
    /// failed, 2 listed with the same kind of note.
    fn frame() -> Frame {
        let mut frame = Frame::empty(FrameRequest::ALL);
        for index in 0..3 {
            let device = hypomnesis::GpuDeviceInfo::builder()
                .index(index)
                .name(&format!("GPU model {index}"))
                .build();
            let mut d = DeviceFrame::new(device);
            if index == 1 {
                d.processes_error =
                    Some(hypomnesis::HypomnesisError::DeviceIndexOutOfRange { index: 1, count: 0 });
            } else {
                let mut entry = GpuProcessEntry::builder(100 + index).build();
                entry.device_index = index;
                entry.rss_bytes = Some(1 << 30);
                let mut listing = hypomnesis::GpuProcessListing::default();
                listing.rows = vec![entry];
                listing.absent_pids = vec![7];
                d.processes = Some(listing);
            }
            frame.devices.push(d);
        }
        frame
    }

    #[test]
    fn gathering_a_frame_keeps_rows_skips_failed_listings_and_says_each_note_once() {
        let gathered = gather(&frame(), None, |index| Some(index == 2)).unwrap();
        let rows: Vec<_> = gathered
            .rows
            .iter()
            .map(|r| {
                let name = r.device_name.as_deref();
                (r.pid, r.device_index, name, r.spilling, r.rss_bytes)
            })
            .collect();
        assert_eq!(
            rows,
            [
                (100, 0, Some("GPU model 0"), Some(false), Some(1 << 30)),
                (102, 2, Some("GPU model 2"), Some(true), Some(1 << 30)),
            ]
        );
        assert_eq!(gathered.queried, 2);
        assert_eq!(gathered.skipped.len(), 1);
        assert_eq!(gathered.skipped[0].device_index, 1);
        assert!(gathered.skipped[0].error.contains("out of range"));
        assert_eq!(gathered.notes.len(), 1, "{:?}", gathered.notes);
        assert_eq!(gathered.notes[0].pids, [7]);
    }

    #[test]
    fn gathering_one_device_the_frame_lacks_says_why() {
        let only = gather(&frame(), Some(2), |_| None).unwrap();
        assert_eq!((only.queried, only.rows.len()), (1, 1));
        let missing = gather(&frame(), Some(5), |_| None).unwrap();
        assert_eq!(missing.queried, 0);
        assert_eq!(
            missing.skipped[0].error,
            "device index 5 out of range (have 3 devices)"
        );
        let mut failed = Frame::empty(FrameRequest::ALL);
        failed.gpu_error = Some(hypomnesis::HypomnesisError::NoGpuSource {
            attempts: Vec::new(),
        });
        let err = gather(&failed, None, |_| None).unwrap_err();
        assert!(err.starts_with("ps: no device could be queried: "), "{err}");
    }

    #[test]
    fn vram_sort_puts_the_largest_first_and_unknown_last() {
        let mut r = rows();
        sort(&mut r, SortKey::Vram);
        let pids: Vec<u32> = r.iter().map(|r| r.pid).collect();
        assert_eq!(pids, vec![100, 300, 200, 400]);
    }

    #[test]
    fn pid_and_name_sorts() {
        let mut r = rows();
        sort(&mut r, SortKey::Pid);
        assert_eq!(
            r.iter().map(|r| r.pid).collect::<Vec<_>>(),
            vec![100, 200, 300, 400]
        );
        sort(&mut r, SortKey::Name);
        assert_eq!(
            r.iter().map(|r| r.pid).collect::<Vec<_>>(),
            vec![100, 300, 400, 200]
        );
    }

    #[test]
    fn filters_combine() {
        let args = PsArgs {
            min: Some(1 << 30),
            ..PsArgs::default()
        };
        assert_eq!(
            select(rows(), &args).len(),
            2,
            "unknown memory never passes --min"
        );
        let args = PsArgs {
            filter: vec!["LLAMA".into(), "xorg".into()],
            ..PsArgs::default()
        };
        let pids: Vec<u32> = select(rows(), &args).iter().map(|r| r.pid).collect();
        assert_eq!(pids, vec![100, 400], "case-insensitive, any pattern");
        let args = PsArgs {
            filter: vec!["serve".into()],
            pid: vec![300],
            ..PsArgs::default()
        };
        let pids: Vec<u32> = select(rows(), &args).iter().map(|r| r.pid).collect();
        assert_eq!(pids, vec![300], "filter matches the command line too");
    }

    #[test]
    fn summary_echoes_filters_totals_and_unreadable_names() {
        let args = PsArgs {
            pid: vec![100, 200],
            filter: vec!["py".into()],
            min: Some(1 << 20),
            ..PsArgs::default()
        };
        let line = summary_line(&rows(), &args, Some(0));
        assert_eq!(
            line,
            "4 GPU processes found matching pid=100,200 device=0 min=1 MiB filter=\"py\" \
             (10.5 GiB total covering 3 of 4 processes, 1 without a memory figure from the driver); \
             1 unnamed."
        );
        assert_eq!(
            summary_line(&[], &PsArgs::default(), None),
            "0 GPU processes found."
        );
    }

    #[test]
    fn totals_near_u64_max_neither_wrap_nor_panic() {
        let rows = vec![
            row(1, Some("a"), Some(u64::MAX - 1), 0),
            row(2, Some("b"), Some(u64::MAX - 1), 1),
        ];
        let line = summary_line(&rows, &PsArgs::default(), None);
        assert!(line.starts_with("2 GPU processes found ("), "{line}");
        assert!(
            !line.contains("(0 B") && !line.contains(" B total"),
            "{line}"
        );
    }

    #[test]
    fn a_total_of_nothing_known_is_n_a_not_zero() {
        let rows = vec![row(1, Some("a"), None, 0), row(2, Some("b"), None, 0)];
        let line = summary_line(&rows, &PsArgs::default(), None);
        assert_eq!(
            line,
            "2 GPU processes found (total n/a: no process has a memory figure from the driver)."
        );
    }

    #[test]
    fn the_summary_counts_a_process_on_two_gpus_once() {
        let rows = vec![
            row(100, Some("trainer"), Some(4 << 30), 0),
            row(100, Some("trainer"), Some(4 << 30), 1),
            row(200, Some("python3"), Some(1 << 30), 1),
        ];
        assert_eq!(
            summary_line(&rows, &PsArgs::default(), None),
            "2 GPU processes found (9.0 GiB total)."
        );
    }

    #[test]
    fn a_shared_client_is_in_every_holders_row_and_in_the_total_once() {
        let client = |holders: Vec<u32>| {
            SharedClient::new(Some(7), holders, 900, Some(1 << 30), Some(2 << 30))
        };
        // Parent 900 and child 300 hold one client of 1 GiB VRAM + 2 GiB GTT; the child
        // also holds a private 512 MiB client.
        let mut parent = row(900, Some("server"), Some(1 << 30), 0);
        parent.system_bytes = Some(2 << 30);
        parent.shared_clients = vec![client(vec![300, 900])];
        let mut child = row(300, Some("server"), Some((1 << 30) + (512 << 20)), 0);
        child.system_bytes = Some(2 << 30);
        child.shared_clients = vec![client(vec![300, 900])];
        let both = vec![parent.clone(), child.clone()];
        assert_eq!(counted_totals(&both), ((1 << 30) + (512 << 20), 2 << 30));
        // The child alone (`--pid 300`) still shows and counts what it holds.
        assert_eq!(counted_totals(&[child]), ((1 << 30) + (512 << 20), 2 << 30));
        assert_eq!(counted_totals(&[parent]), (1 << 30, 2 << 30));
    }

    #[test]
    fn table_shows_question_marks_and_n_a_never_zero() {
        let text = render(&rows(), true, None);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["PID", "USER", "NAME", "VRAM", "DEVICE", "SPILL", "COMMAND"]
        );
        assert!(lines.iter().any(|l| l.contains(" ? ")), "{text}");
        assert!(lines.iter().any(|l| l.contains("n/a")), "{text}");
        assert!(!text.contains(" 0 B"), "{text}");
    }

    #[test]
    fn a_gi_ci_column_appears_only_when_some_row_runs_in_a_mig_instance() {
        assert!(!render(&rows(), false, None).contains("GI/CI"));
        let mut r = rows();
        r[0].gpu_instance_id = Some(2);
        r[0].compute_instance_id = Some(1);
        let text = render(&r, false, None);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["PID", "USER", "NAME", "VRAM", "DEVICE", "GI/CI", "SPILL"]
        );
        assert!(lines[1].contains("GPU 0   2/1"), "{text}");
        assert!(lines[2].contains("GPU 1   -"), "{text}");
    }

    #[test]
    fn an_rss_column_appears_when_some_row_has_one_and_goes_before_user_when_narrow() {
        assert!(!render(&rows(), false, None).contains("RSS"));
        let mut r = rows();
        r[0].rss_bytes = Some(3 << 30);
        let text = render(&r, false, None);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["PID", "USER", "NAME", "VRAM", "RSS", "DEVICE", "SPILL"]
        );
        assert!(lines[1].contains("2.0 GiB  3.0 GiB  GPU 0"), "{text}");
        assert!(lines[2].contains("8.0 GiB      n/a  GPU 1"), "{text}");
        // Without SPILL: PID 3 + USER 5 + NAME 12 + VRAM 7 + RSS 7 + DEVICE 6 + 5 gaps of 2 = 50.
        let narrow = render(&r, false, Some(50));
        assert!(
            narrow.contains("RSS") && narrow.contains("USER"),
            "{narrow}"
        );
        assert!(!narrow.contains("SPILL"), "{narrow}");
        let narrower = render(&r, false, Some(49));
        assert!(
            !narrower.contains("RSS") && narrower.contains("USER"),
            "{narrower}"
        );
    }

    #[test]
    fn names_and_command_lines_are_escaped_in_the_table() {
        let mut r = rows();
        r[0].name = Some("x\x1b]0;pwned\x07\nfake row".into());
        r[0].command = Some("run \u{202e}txt.exe".into());
        let text = render(&r, true, None);
        assert_eq!(text.lines().count(), 1 + r.len(), "{text}");
        assert!(
            !text.contains('\x1b') && !text.contains('\u{202e}'),
            "{text}"
        );
        assert!(text.contains("x\\e]0;pwned\\x07\\nfake row"), "{text}");
        assert!(text.contains("run \\u{202e}txt.exe"), "{text}");
    }

    #[test]
    fn a_narrow_terminal_cuts_names_then_drops_columns_in_the_documented_order() {
        let text = render(&rows(), true, Some(60));
        assert!(
            text.lines()
                .all(|l| unicode_width::UnicodeWidthStr::width(l) <= 60),
            "{text}"
        );
        assert!(!text.contains("SPILL"), "{text}");
        assert!(text.contains('…'), "{text}");
        let text = render(&rows(), true, Some(50));
        assert!(!text.contains("SPILL") && !text.contains("USER"), "{text}");
        assert!(text.contains("PID") && text.contains("DEVICE"), "{text}");
        let whole = render(&rows(), true, None);
        assert!(!whole.contains('…') && whole.contains("SPILL"), "{whole}");
    }

    #[test]
    fn spill_cells_say_paged_device_no_unknown_or_not_applicable() {
        let gib = 1_u64 << 30;
        let on_spilling = |shared: Option<u64>| {
            let mut entry = GpuProcessEntry::builder(7).used_bytes(gib).build();
            entry.system_bytes = shared;
            PsRow::new(entry, None, Some(true))
        };
        assert_eq!(spill_cell(&on_spilling(Some(2 * gib)), true), "PAGED");
        assert_eq!(spill_cell(&on_spilling(Some(100 << 20)), true), "device");
        assert_eq!(spill_cell(&on_spilling(None), true), "device");
        let calm = PsRow::new(GpuProcessEntry::builder(8).build(), None, Some(false));
        assert_eq!(spill_cell(&calm, true), "no");
        assert_eq!(calm.paged, Some(false));
        let unknown = PsRow::new(GpuProcessEntry::builder(9).build(), None, None);
        assert_eq!(spill_cell(&unknown, true), "?");
        assert_eq!(spill_cell(&unknown, false), "n/a");
        assert_eq!(unknown.paged, None);
    }

    #[test]
    fn the_summary_names_spilling_devices_and_paged_processes() {
        let mut r = rows();
        for row in &mut r {
            if row.device_index == 0 {
                row.spilling = Some(true);
                row.paged = Some(row.pid == 300);
            }
        }
        let line = summary_line(&r, &PsArgs::default(), None);
        assert!(
            line.ends_with("; device 0 spilling into shared memory (1 process paged)."),
            "{line}"
        );
    }
}

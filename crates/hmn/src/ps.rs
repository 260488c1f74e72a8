//! `hmn ps`: every process holding GPU memory.
//!
//! One row per process and device (a process on two GPUs appears twice, once per device), so
//! that sums per device add up. Names, users and command lines come from the OS; a row the
//! OS would not describe shows `?` and is counted in the stderr summary with what to do
//! about it. Filters narrow rows; the summary echoes them so a script's log says what was
//! asked.

use hypomnesis::{GpuProcessEntry, GpuProcessKind, GpuQuerySource, Probe};
use serde::Serialize;

use crate::Outcome;
use crate::cli::{GlobalArgs, PsArgs, SortKey};
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
    pub source: GpuQuerySource,
}

impl PsRow {
    fn new(entry: GpuProcessEntry, device_name: Option<String>) -> Self {
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
            source: entry.source,
        }
    }
}

/// What `ps` gathered before filtering: rows, and devices it could not read.
#[derive(Debug, Default)]
pub struct Gathered {
    pub rows: Vec<PsRow>,
    pub skipped: Vec<(u32, String)>,
    pub queried: usize,
}

pub fn run(probe: &Probe, global: &GlobalArgs, args: &PsArgs, out: &Output) -> Outcome {
    let gathered = match gather(probe, global.device) {
        Ok(g) => g,
        Err(message) => {
            out.say(&message);
            return Outcome::CouldNotTell;
        }
    };
    for (index, error) in &gathered.skipped {
        out.say(&format!(
            "ps failed to query device {index}: {error} (skipped)"
        ));
    }
    if gathered.queried == 0 || (global.device.is_some() && !gathered.skipped.is_empty()) {
        out.say("ps: no device could be queried, so nothing could be listed");
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
        out.json(&rows);
    } else {
        out.data(&render(&rows, args.full));
    }
    out.say(&summary_line(&rows, args, global.device));
    if args.exit_status {
        if !gathered.skipped.is_empty() {
            return Outcome::CouldNotTell;
        }
        if rows.is_empty() {
            return Outcome::No;
        }
    }
    Outcome::Success
}

/// Every device's rows (or only `only`'s). `Err` when not even the device count is known.
pub fn gather(probe: &Probe, only: Option<u32>) -> Result<Gathered, String> {
    let indices: Vec<u32> = match only {
        Some(index) => vec![index],
        None => {
            let count = probe
                .device_count()
                .map_err(|e| format!("ps: no device could be queried: {e}"))?;
            (0..count).collect()
        }
    };
    let mut gathered = Gathered::default();
    for index in indices {
        let device_name = probe.device_info(index).ok().and_then(|d| d.name);
        match probe.processes(index) {
            Ok(entries) => {
                gathered.queried += 1;
                gathered.rows.extend(
                    entries
                        .into_iter()
                        .map(|e| PsRow::new(e, device_name.clone())),
                );
            }
            Err(e) => gathered.skipped.push((index, e.to_string())),
        }
    }
    Ok(gathered)
}

/// Applies `--pid`, `--min` and `--filter`.
pub fn select(rows: Vec<PsRow>, args: &PsArgs) -> Vec<PsRow> {
    let patterns: Vec<String> = args.filter.iter().map(|p| p.to_lowercase()).collect();
    rows.into_iter()
        .filter(|row| args.pid.is_empty() || args.pid.contains(&row.pid))
        .filter(|row| {
            args.min
                .is_none_or(|min| row.used_bytes.is_some_and(|u| u >= min))
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
    // Unknown names sort after every known one.
    let name = |row: &PsRow| {
        (
            row.name.is_none(),
            row.name.as_deref().unwrap_or("").to_lowercase(),
        )
    };
    match key {
        SortKey::Vram => rows.sort_by(|a, b| {
            b.used_bytes
                .cmp(&a.used_bytes)
                .then_with(|| name(a).cmp(&name(b)))
                .then(a.pid.cmp(&b.pid))
                .then(a.device_index.cmp(&b.device_index))
        }),
        SortKey::Pid => rows.sort_by_key(|r| (r.pid, r.device_index)),
        SortKey::Name => rows.sort_by(|a, b| {
            name(a)
                .cmp(&name(b))
                .then(a.pid.cmp(&b.pid))
                .then(a.device_index.cmp(&b.device_index))
        }),
    }
}

pub fn render(rows: &[PsRow], full: bool) -> String {
    let mut header = vec![
        ("PID", Align::Right),
        ("USER", Align::Left),
        ("NAME", Align::Left),
        ("VRAM", Align::Right),
        ("DEVICE", Align::Left),
    ];
    if full {
        header.push(("COMMAND", Align::Left));
    }
    let mut table = Table::new(header);
    for row in rows {
        let mut cells = vec![
            row.pid.to_string(),
            row.user.clone().unwrap_or_else(|| "?".to_owned()),
            row.name.clone().unwrap_or_else(|| "?".to_owned()),
            format_optional(row.used_bytes),
            format!("GPU {}", row.device_index),
        ];
        if full {
            cells.push(row.command.clone().unwrap_or_else(|| "?".to_owned()));
        }
        table.push(cells);
    }
    table.render()
}

/// `2 GPU processes found matching device=0 filter="py" (9.6 GiB total); 1 unreadable — re-run as root to see its name.`
pub fn summary_line(rows: &[PsRow], args: &PsArgs, device: Option<u32>) -> String {
    let count = rows.len();
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
    let known: u64 = rows.iter().filter_map(|r| r.used_bytes).sum();
    let unknown_memory = rows.iter().filter(|r| r.used_bytes.is_none()).count();
    if count > 0 {
        line.push_str(&format!(" ({} total", format_size(known)));
        if unknown_memory > 0 {
            line.push_str(&format!(
                ", {unknown_memory} without a memory figure from the driver"
            ));
        }
        line.push(')');
    }
    let unnamed = rows.iter().filter(|r| r.name.is_none()).count();
    if unnamed > 0 {
        let pronoun = if unnamed == 1 {
            "its name"
        } else {
            "their names"
        };
        line.push_str(&format!(
            "; {unnamed} unreadable — re-run as root to see {pronoun}"
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
            source: GpuQuerySource::Nvml,
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
             (10.5 GiB total, 1 without a memory figure from the driver); \
             1 unreadable — re-run as root to see its name."
        );
        assert_eq!(
            summary_line(&[], &PsArgs::default(), None),
            "0 GPU processes found."
        );
    }

    #[test]
    fn table_shows_question_marks_and_n_a_never_zero() {
        let text = render(&rows(), true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["PID", "USER", "NAME", "VRAM", "DEVICE", "COMMAND"]
        );
        assert!(lines.iter().any(|l| l.contains(" ? ")), "{text}");
        assert!(lines.iter().any(|l| l.contains("n/a")), "{text}");
        assert!(!text.contains(" 0 B"), "{text}");
    }
}

//! `hmn run --record FILE`: every sample written as it is taken.
//!
//! NDJSON (one JSON object per line, `docs/json.md`): a `start` record, one `sample` record
//! per sample, and a `summary` record (the `hmn run --json` report) at the end. CSV when the
//! file name ends in `.csv`: a header and one row per sample (no start or summary).
//!
//! Each record is written as soon as it is taken, one whole line per `write`, so a crash or a
//! `kill -9` of hmn loses at most the sample being taken; every complete line is a complete
//! record.
//!
//! A disk that fills (or a file-size limit) can cut a line in two: the file is then cut back
//! to the end of the last whole record, so a recording that stops is still valid NDJSON or
//! CSV. The failure is said on stderr when it happens, once; recording stops there (CMD keeps
//! running), and the run's report and exit status say that the recording is incomplete.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::json::DeviceRecord;
use crate::time::{millis, wall_clock_text};

/// The recording's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
}

impl Format {
    /// CSV for `*.csv` (any case), NDJSON otherwise.
    pub fn for_path(path: &Path) -> Self {
        let csv = path
            .extension()
            .is_some_and(|e| e.to_string_lossy().eq_ignore_ascii_case("csv"));
        if csv { Self::Csv } else { Self::Ndjson }
    }
}

/// One sample's figures.
#[derive(Debug)]
pub struct SampleRecord<'a> {
    pub elapsed: Duration,
    pub wall_clock: SystemTime,
    pub tree_rss_bytes: Option<u64>,
    pub processes: Option<u64>,
    /// Per device: index, the tree's memory on it, the device's memory in use.
    pub gpus: &'a [(u32, Option<u64>, Option<u64>)],
    pub host_available_bytes: Option<u64>,
    pub cgroup_usage_bytes: Option<u64>,
}

#[derive(Serialize)]
struct StartRecord<'a> {
    kind: &'static str,
    t_ms: u64,
    wall_clock: String,
    hmn_version: &'static str,
    command: &'a [String],
    pid: u32,
    interval_ms: u64,
    devices: &'a [DeviceRecord],
    host_total_bytes: Option<u64>,
}

#[derive(Serialize)]
struct GpuRecord {
    device: u32,
    tree_bytes: Option<u64>,
    used_bytes: Option<u64>,
}

#[derive(Serialize)]
struct SampleJson {
    kind: &'static str,
    t_ms: u64,
    wall_clock: String,
    tree_rss_bytes: Option<u64>,
    processes: Option<u64>,
    gpus: Vec<GpuRecord>,
    host_available_bytes: Option<u64>,
    cgroup_usage_bytes: Option<u64>,
}

#[derive(Serialize)]
struct SummaryRecord<'a, R> {
    kind: &'static str,
    #[serde(flatten)]
    report: &'a R,
}

/// Writes records to a file, each whole line in one write; stops at the first failure.
#[derive(Debug)]
pub struct Recorder {
    out: File,
    path: PathBuf,
    format: Format,
    header_written: bool,
    /// Bytes of whole lines in the file.
    written: u64,
    /// Whole records written (CSV: rows, the header not counted).
    records: u64,
    /// Why recording stopped.
    failure: Option<String>,
    /// Whether CMD has ended (the summary is being written).
    ended: bool,
}

impl Recorder {
    pub fn create(path: &Path, format: Format) -> std::io::Result<Self> {
        Ok(Self {
            out: File::create(path)?,
            path: path.to_owned(),
            format,
            header_written: false,
            written: 0,
            records: 0,
            failure: None,
            ended: false,
        })
    }

    /// Writes `text` and a newline as one whole line, or cuts the file back to the last whole
    /// line and stops recording.
    fn line(&mut self, text: &str, is_record: bool) {
        if self.failure.is_some() {
            return;
        }
        let mut buf = Vec::with_capacity(text.len() + 1);
        buf.extend_from_slice(text.as_bytes());
        buf.push(b'\n');
        match self.out.write_all(&buf) {
            Ok(()) => {
                self.written += buf.len() as u64;
                self.records += u64::from(is_record);
            }
            Err(e) => self.fail(&e.to_string()),
        }
    }

    fn fail(&mut self, why: &str) {
        // Part of the line may have reached the file: cut it off.
        let cut = match self.out.set_len(self.written) {
            Ok(()) => String::new(),
            Err(e) => format!(" (and its cut last line could not be removed: {e})"),
        };
        let records = self.records;
        let noun = if records == 1 { "record" } else { "records" };
        let failure = format!(
            "recording to {} stopped: {why}; it holds the {records} whole {noun} written \
             before{cut}",
            self.path.display()
        );
        let running = if self.ended {
            ""
        } else {
            "; the command keeps running"
        };
        let _ = writeln!(std::io::stderr().lock(), "hmn: run: {failure}{running}");
        self.failure = Some(failure);
    }

    fn json<T: Serialize>(&mut self, value: &T) {
        match serde_json::to_string(value) {
            Ok(text) => self.line(&text, true),
            Err(e) => self.fail(&format!("a record could not be encoded ({e})")),
        }
    }

    /// The `start` record (NDJSON only).
    pub fn start(
        &mut self,
        wall_clock: SystemTime,
        command: &[String],
        pid: u32,
        interval: Duration,
        devices: &[DeviceRecord],
        host_total_bytes: Option<u64>,
    ) {
        if self.format != Format::Ndjson {
            return;
        }
        self.json(&StartRecord {
            kind: "start",
            t_ms: 0,
            wall_clock: wall_clock_text(wall_clock),
            hmn_version: env!("CARGO_PKG_VERSION"),
            command,
            pid,
            interval_ms: millis(interval),
            devices,
            host_total_bytes,
        });
    }

    /// One `sample` record, or one CSV row.
    pub fn sample(&mut self, s: &SampleRecord<'_>) {
        let t_ms = millis(s.elapsed);
        match self.format {
            Format::Ndjson => {
                let gpus: Vec<GpuRecord> = s
                    .gpus
                    .iter()
                    .map(|&(device, tree_bytes, used_bytes)| GpuRecord {
                        device,
                        tree_bytes,
                        used_bytes,
                    })
                    .collect();
                self.json(&SampleJson {
                    kind: "sample",
                    t_ms,
                    wall_clock: wall_clock_text(s.wall_clock),
                    tree_rss_bytes: s.tree_rss_bytes,
                    processes: s.processes,
                    gpus,
                    host_available_bytes: s.host_available_bytes,
                    cgroup_usage_bytes: s.cgroup_usage_bytes,
                });
            }
            Format::Csv => {
                if !self.header_written {
                    self.header_written = true;
                    let mut header = String::from(
                        "t_ms,wall_clock,tree_rss_bytes,processes,host_available_bytes,cgroup_usage_bytes",
                    );
                    for (device, _, _) in s.gpus {
                        header.push_str(&format!(",gpu{device}_tree_bytes,gpu{device}_used_bytes"));
                    }
                    self.line(&header, false);
                }
                let cell = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
                let mut row = format!(
                    "{t_ms},{},{},{},{},{}",
                    wall_clock_text(s.wall_clock),
                    cell(s.tree_rss_bytes),
                    cell(s.processes),
                    cell(s.host_available_bytes),
                    cell(s.cgroup_usage_bytes)
                );
                for (_, tree, used) in s.gpus {
                    row.push_str(&format!(",{},{}", cell(*tree), cell(*used)));
                }
                self.line(&row, true);
            }
        }
    }

    /// The `summary` record (NDJSON only): the run report (`hmn run --json`), its fields
    /// flattened after `kind`.
    pub fn summary<R: Serialize>(&mut self, report: &R) {
        self.ended = true;
        if self.format != Format::Ndjson {
            return;
        }
        self.json(&SummaryRecord {
            kind: "summary",
            report,
        });
    }

    /// Why recording stopped before the end, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_follows_the_extension() {
        assert_eq!(Format::for_path(Path::new("run.csv")), Format::Csv);
        assert_eq!(Format::for_path(Path::new("RUN.CSV")), Format::Csv);
        assert_eq!(Format::for_path(Path::new("run.ndjson")), Format::Ndjson);
        assert_eq!(Format::for_path(Path::new("run")), Format::Ndjson);
    }

    #[test]
    fn csv_rows_leave_unknown_cells_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        let mut r = Recorder::create(&path, Format::Csv).unwrap();
        let gpus = [(0, Some(5), None)];
        r.sample(&SampleRecord {
            elapsed: Duration::from_millis(20),
            wall_clock: SystemTime::UNIX_EPOCH,
            tree_rss_bytes: Some(100),
            processes: Some(2),
            gpus: &gpus,
            host_available_bytes: None,
            cgroup_usage_bytes: Some(7),
        });
        assert!(r.failure().is_none());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "t_ms,wall_clock,tree_rss_bytes,processes,host_available_bytes,cgroup_usage_bytes,gpu0_tree_bytes,gpu0_used_bytes\n\
             20,1970-01-01T00:00:00.000Z,100,2,,7,5,\n"
        );
    }
}

//! NVIDIA GPUs through the `nvidia-smi` executable, for when NVML cannot be loaded.
//!
//! NVIDIA says `nvidia-smi`'s output is "not guaranteed to be backwards compatible", so it is
//! only a fallback. Two queries are run, each in the CSV form without header or units, in
//! which cells are separated by `", "` and sizes are MiB:
//!
//! - `--query-gpu=index,uuid,name,pci.bus_id,driver_version,memory.total,memory.used,memory.free,memory.reserved`
//!   (drivers before R510 refuse `memory.reserved` with `Field "memory.reserved" is not a
//!   valid field to query.` and a non-zero exit: the query is then repeated without it);
//! - `--query-compute-apps=pid,process_name,used_memory,gpu_uuid,gpu_bus_id`.
//!
//! Facts the parsers rely on (see the captures in the tests below):
//! - any cell may be a sentinel instead of a value: `[N/A]`, `[Not Supported]`,
//!   `[Insufficient Permissions]`, `[Unknown Error]`, `[Requested functionality has been
//!   deprecated]`, plain `N/A`. Such a field is `None`, with the sentinel in the reason;
//!   nothing is ever reported as 0 in its place (Windows WDDM lists every process with
//!   `[N/A]` memory, GB10 has `[N/A]` device memory, a MIG container without privileges
//!   sees `[Insufficient Permissions]`);
//! - process names are chosen by the workload: recent drivers write `?` for `,`, old ones
//!   leave raw commas, and names hold spaces, quotes and Unicode. Rows are therefore cut
//!   outside-in: the fixed fields are taken from both ends and the name is whatever lies
//!   between them, kept byte for byte. Device names get the same treatment;
//! - the exit code follows the NVML return code: 9 (driver not loaded, the message on
//!   stdout), 18 (driver/library version mismatch), 12 (`libnvidia-ml.so` not found), 6 (no
//!   devices). The message is kept in the error; 6 with "No devices were found" is an answer
//!   (zero GPUs), not a failure.
//!
//! The child runs through [`helper::run`]: never waited for without a bound, both pipes read
//! at once (a chatty child cannot fill a pipe and stall), and nothing it started left behind.

use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::{HypomnesisError, Result};
use crate::gpu::helper::{self, Failure};
use crate::snapshot::{GpuDeviceInfo, GpuProcessEntry, GpuProcessKind, GpuQuerySource, GpuVendor};
use crate::unavailable::DeviceField;

/// The device query, in the order [`parse_query_gpu`] expects.
const QUERY_GPU: &str = "--query-gpu=index,uuid,name,pci.bus_id,driver_version,memory.total,memory.used,memory.free,memory.reserved";
/// The device query for drivers before R510, which have no `memory.reserved`.
const QUERY_GPU_NO_RESERVED: &str =
    "--query-gpu=index,uuid,name,pci.bus_id,driver_version,memory.total,memory.used,memory.free";
/// The process query, in the order [`parse_compute_apps`] expects.
const QUERY_COMPUTE_APPS: &str =
    "--query-compute-apps=pid,process_name,used_memory,gpu_uuid,gpu_bus_id";
/// Machine-readable output: no header line, no `MiB` after numbers.
const FORMAT: &str = "--format=csv,noheader,nounits";

const MIB: u64 = 1024 * 1024;
/// More output than any real `nvidia-smi` query prints (over 10,000 rows of 400 bytes, where
/// a busy node lists hundreds); a child that prints more is stopped rather than read on, and
/// the memory a long-running caller keeps after such a child stays small.
const OUTPUT_LIMIT: usize = 4 * 1024 * 1024;
/// How many lines of a failing run's output are kept in the error.
const MESSAGE_LINES: usize = 3;

const REASON_NO_RESERVED_FIELD: &str = "nvidia-smi on this driver has no memory.reserved field";

/// Runs `nvidia-smi` queries with a timeout.
#[derive(Debug, Clone)]
pub(crate) struct NvidiaSmi {
    path: PathBuf,
    timeout: Duration,
    /// Whether this driver's `nvidia-smi` knows `memory.reserved`, once a query has told.
    knows_reserved: OnceLock<bool>,
}

impl NvidiaSmi {
    pub(crate) fn new(path: PathBuf, timeout: Duration) -> Self {
        Self {
            path,
            timeout,
            knows_reserved: OnceLock::new(),
        }
    }

    /// Every GPU `nvidia-smi` lists. Empty when it answers "No devices were found".
    pub(crate) fn devices(&self) -> Result<Vec<GpuDeviceInfo>> {
        if self.knows_reserved.get() != Some(&false) {
            let run = self.run(QUERY_GPU)?;
            if run.success() {
                let _ = self.knows_reserved.set(true);
                return parse_query_gpu(&run.stdout, true);
            }
            if !rejects_reserved_field(&run) {
                return no_devices_or_error(run, QUERY_GPU);
            }
            let _ = self.knows_reserved.set(false);
        }
        let run = self.run(QUERY_GPU_NO_RESERVED)?;
        if run.success() {
            parse_query_gpu(&run.stdout, false)
        } else {
            no_devices_or_error(run, QUERY_GPU_NO_RESERVED)
        }
    }

    /// Every compute process `nvidia-smi` lists on any of `devices` (as returned by
    /// [`NvidiaSmi::devices`]). Rows for other devices are dropped.
    pub(crate) fn processes(&self, devices: &[GpuDeviceInfo]) -> Result<Vec<GpuProcessEntry>> {
        let run = self.run(QUERY_COMPUTE_APPS)?;
        if !run.success() {
            return no_devices_or_error(run, QUERY_COMPUTE_APPS);
        }
        if let Some(sentinel) = hidden_pids(&run.stdout) {
            return Err(HypomnesisError::NvidiaSmi {
                exit_code: run.code(),
                detail: format!(
                    "{} printed {sentinel} instead of process ids, so the list is incomplete; \
                     re-run as root or outside the container to see GPU processes",
                    short_query(QUERY_COMPUTE_APPS)
                ),
            });
        }
        Ok(parse_compute_apps(&run.stdout, devices))
    }

    /// Runs `nvidia-smi <query> --format=…`, killing it (and whatever it started) at the
    /// timeout or when it prints more than any real query does.
    fn run(&self, query: &str) -> Result<Finished> {
        let mut command = Command::new(&self.path);
        command.arg(query).arg(FORMAT);
        match helper::run(&mut command, self.timeout, OUTPUT_LIMIT) {
            Ok(captured) => {
                let finished = Finished {
                    status: captured.status,
                    stdout: text(captured.stdout),
                    stderr: text(captured.stderr),
                };
                raw!(
                    "nvidia-smi {query}: status={:?} stdout={:?} stderr={:?}",
                    finished.status,
                    finished.stdout,
                    finished.stderr
                );
                Ok(finished)
            }
            Err(Failure::Spawn(e)) => Err(self.spawn_error(&e)),
            Err(Failure::TimedOut) => Err(self.timeout_error(query)),
            Err(Failure::TooMuchOutput { limit }) => Err(HypomnesisError::NvidiaSmi {
                exit_code: None,
                detail: format!(
                    "{} printed more than {} MiB, far more than any real query prints, and \
                     was stopped; check what {} really runs",
                    short_query(query),
                    limit / 1024 / 1024,
                    self.path.display()
                ),
            }),
            Err(Failure::Io(e)) => Err(HypomnesisError::NvidiaSmi {
                exit_code: None,
                detail: format!("cannot run {}: {e}", self.path.display()),
            }),
        }
    }

    fn spawn_error(&self, e: &std::io::Error) -> HypomnesisError {
        let path = self.path.display();
        let bare_name = self.path.components().count() == 1 && !self.path.is_absolute();
        let detail = match e.kind() {
            std::io::ErrorKind::NotFound if bare_name => format!(
                "`{path}` not found on PATH ({e}); install the NVIDIA driver utilities or set \
                 HYPOMNESIS_NVIDIA_SMI to the executable"
            ),
            std::io::ErrorKind::NotFound => format!("{path} not found ({e})"),
            _ => format!("cannot run {path}: {e}"),
        };
        HypomnesisError::NvidiaSmi {
            exit_code: None,
            detail,
        }
    }

    fn timeout_error(&self, query: &str) -> HypomnesisError {
        HypomnesisError::Timeout {
            what: format!("{} {}", self.path.display(), short_query(query)),
            after: self.timeout,
        }
    }
}

/// What a finished run printed.
#[derive(Debug)]
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Finished {
    fn success(&self) -> bool {
        self.status.success()
    }

    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The first few non-empty lines of stdout, then stderr (`nvidia-smi` prints its
    /// failures on stdout).
    fn message(&self) -> String {
        let lines: Vec<&str> = self
            .stdout
            .lines()
            .chain(self.stderr.lines())
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .take(MESSAGE_LINES)
            .collect();
        if lines.is_empty() {
            "no output".to_owned()
        } else {
            lines.join(" / ")
        }
    }
}

/// `Ok(empty)` for the "No devices were found" answer, else the run as an error.
fn no_devices_or_error<T>(run: Finished, query: &str) -> Result<Vec<T>> {
    if run.code() == Some(6) && run.message().contains("No devices were found") {
        Ok(Vec::new())
    } else {
        Err(exit_error(&run, query))
    }
}

fn exit_error(run: &Finished, query: &str) -> HypomnesisError {
    let query = short_query(query);
    let message = run.message();
    let detail = match run.code() {
        Some(code) => format!(
            "{query} exited with code {code}: {message}{}",
            exit_hint(code)
        ),
        None => format!("{query} was ended by a signal ({}): {message}", run.status),
    };
    HypomnesisError::NvidiaSmi {
        exit_code: run.code(),
        detail,
    }
}

/// What a user can do about the exit codes `nvidia-smi` is known to use (they follow NVML's).
fn exit_hint(code: i32) -> &'static str {
    match code {
        9 => " (the NVIDIA kernel driver is not loaded: install or load the NVIDIA driver)",
        18 => {
            " (the NVIDIA library and the kernel driver are different versions: reboot or reinstall the driver)"
        }
        12 => " (libnvidia-ml.so was not found: install the NVIDIA driver's user-space libraries)",
        4 => " (re-run as root or as the owner of the GPU processes)",
        _ => "",
    }
}

/// `--query-gpu` from `--query-gpu=index,…`.
fn short_query(query: &str) -> &str {
    query.split_once('=').map_or(query, |(name, _)| name)
}

/// Whether a run failed because this driver does not know `memory.reserved`.
fn rejects_reserved_field(run: &Finished) -> bool {
    [&run.stdout, &run.stderr]
        .iter()
        .any(|text| text.contains("memory.reserved") && text.contains("is not a valid field"))
}

/// Output as text: moved when it is UTF-8, copied with replacement characters otherwise.
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A cell's value, or the sentinel `nvidia-smi` printed instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell<'a> {
    Value(&'a str),
    Sentinel(&'a str),
}

fn cell(text: &str) -> Cell<'_> {
    let text = text.trim();
    if text == "N/A" || (text.starts_with('[') && text.ends_with(']')) {
        Cell::Sentinel(text)
    } else {
        Cell::Value(text)
    }
}

fn unavailable_reason(sentinel: &str) -> String {
    format!("nvidia-smi reports {sentinel}")
}

/// A row cut outside-in: `B` cells from the left, `A` cells from the right, and the text
/// between them (which may itself hold commas) as the middle, kept as printed. `None` when
/// the row has too few cells.
fn cut_row<const B: usize, const A: usize>(line: &str) -> Option<([&str; B], &str, [&str; A])> {
    let commas: Vec<usize> = line.match_indices(',').map(|(i, _)| i).collect();
    if commas.len() < B + A {
        return None;
    }
    let mut left = [""; B];
    let mut start = 0;
    for (slot, &comma) in left.iter_mut().zip(&commas) {
        *slot = line.get(start..comma)?.trim();
        start = comma + 1;
    }
    let mut right = [""; A];
    let mut end = line.len();
    for (slot, &comma) in right.iter_mut().rev().zip(commas.iter().rev()) {
        *slot = line.get(comma + 1..end)?.trim();
        end = comma;
    }
    Some((left, line.get(start..end)?.trim(), right))
}

/// Parses `--query-gpu=index,uuid,name,pci.bus_id,driver_version,memory.total,memory.used,
/// memory.free[,memory.reserved] --format=csv,noheader,nounits` output.
///
/// Blank lines and lines whose first cell is not an index (a warning printed on stdout) are
/// skipped, but text with no device line at all is an error, as is a device line with too
/// few cells: its columns cannot be trusted. Empty text is an empty list.
pub(crate) fn parse_query_gpu(text: &str, with_reserved: bool) -> Result<Vec<GpuDeviceInfo>> {
    let query = if with_reserved {
        QUERY_GPU
    } else {
        QUERY_GPU_NO_RESERVED
    };
    let malformed = |detail: String| {
        HypomnesisError::parse(
            "nvidia-smi --query-gpu output",
            format!("nvidia-smi {query} {FORMAT}"),
            detail,
        )
    };
    let mut devices = Vec::new();
    let mut first_other_line = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let first = line.split(',').next().unwrap_or_default().trim();
        let Ok(index) = first.parse::<u32>() else {
            first_other_line.get_or_insert(line);
            continue;
        };
        let cells = if with_reserved {
            cut_row::<2, 6>(line).map(
                |([_, uuid], name, [bus, driver, total, used, free, reserved])| {
                    (uuid, name, [bus, driver, total, used, free], Some(reserved))
                },
            )
        } else {
            cut_row::<2, 5>(line).map(|([_, uuid], name, rest)| (uuid, name, rest, None))
        };
        let Some((uuid, name, [bus, driver, total, used, free], reserved)) = cells else {
            let expected = if with_reserved { 9 } else { 8 };
            return Err(malformed(format!(
                "expected {expected} cells, got {line:?}"
            )));
        };
        let mut info = GpuDeviceInfo::new(index, GpuVendor::Nvidia, GpuQuerySource::NvidiaSmi);
        info.uuid = text_field(&mut info, DeviceField::Uuid, uuid);
        info.name = text_field(&mut info, DeviceField::Name, name);
        info.pci_bus_id = text_field(&mut info, DeviceField::PciBusId, bus);
        info.driver_version = text_field(&mut info, DeviceField::DriverVersion, driver);
        info.mark_unavailable(
            DeviceField::CudaDriverVersion,
            "nvidia-smi has no query field for the CUDA version",
        );
        info.total_bytes = mib_field(&mut info, DeviceField::TotalBytes, total);
        info.used_bytes = mib_field(&mut info, DeviceField::UsedBytes, used);
        info.free_bytes = mib_field(&mut info, DeviceField::FreeBytes, free);
        info.reserved_bytes = match reserved {
            Some(reserved) => mib_field(&mut info, DeviceField::ReservedBytes, reserved),
            None => {
                info.mark_unavailable(DeviceField::ReservedBytes, REASON_NO_RESERVED_FIELD);
                None
            }
        };
        check_memory(&mut info);
        devices.push(info);
    }
    match (devices.is_empty(), first_other_line) {
        (true, Some(line)) => Err(malformed(format!("no device line, only {line:?}"))),
        _ => Ok(devices),
    }
}

/// A text cell, or `None` with the sentinel recorded as the reason.
fn text_field(info: &mut GpuDeviceInfo, field: DeviceField, text: &str) -> Option<String> {
    match cell(text) {
        Cell::Value("") => {
            info.mark_unavailable(field, "nvidia-smi printed nothing");
            None
        }
        Cell::Value(value) => Some(value.to_owned()),
        Cell::Sentinel(sentinel) => {
            info.mark_unavailable(field, unavailable_reason(sentinel));
            None
        }
    }
}

/// A MiB cell as bytes, or `None` with the reason recorded.
fn mib_field(info: &mut GpuDeviceInfo, field: DeviceField, text: &str) -> Option<u64> {
    match cell(text) {
        Cell::Value(value) => match parse_mib(value) {
            Some(mib) => Some(mib.saturating_mul(MIB)),
            None => {
                info.mark_unavailable(field, format!("nvidia-smi printed {value:?}, not a number"));
                None
            }
        },
        Cell::Sentinel(sentinel) => {
            info.mark_unavailable(field, unavailable_reason(sentinel));
            None
        }
    }
}

/// `"81559"`, or `"81559 MiB"` from a driver that ignored `nounits`.
fn parse_mib(value: &str) -> Option<u64> {
    let value = value.strip_suffix("MiB").unwrap_or(value).trim();
    value.parse().ok()
}

/// Drops impossible figures, and recognises a unified-memory part that has no device memory
/// of its own to report (GB10 prints `[N/A]`; its budget is host RAM).
fn check_memory(info: &mut GpuDeviceInfo) {
    if let Some(total) = info.total_bytes {
        let parts = [info.used_bytes, info.free_bytes, info.reserved_bytes];
        if parts.iter().flatten().any(|&part| part > total) {
            let reason = format!(
                "nvidia-smi reported impossible figures (total {total}, used {:?}, free {:?}, \
                 reserved {:?} bytes); ignored",
                info.used_bytes, info.free_bytes, info.reserved_bytes
            );
            for field in [
                DeviceField::TotalBytes,
                DeviceField::UsedBytes,
                DeviceField::FreeBytes,
                DeviceField::ReservedBytes,
            ] {
                info.unavailable.retain(|u| u.field != field);
                info.mark_unavailable(field, reason.clone());
            }
            info.total_bytes = None;
            info.used_bytes = None;
            info.free_bytes = None;
            info.reserved_bytes = None;
        }
    } else if info
        .name
        .as_deref()
        .is_some_and(|name| name.contains("GB10"))
    {
        info.unified_memory = true;
        for unavailable in &mut info.unavailable {
            if unavailable.field.is_bytes() {
                unavailable
                    .reason
                    .push_str(" (a unified-memory GPU that shares system RAM: see host memory)");
            }
        }
    }
}

/// Parses `--query-compute-apps=pid,process_name,used_memory,gpu_uuid,gpu_bus_id
/// --format=csv,noheader,nounits` output, keeping the rows of `devices`.
///
/// Rows whose pid is not a number are skipped; rows whose device is not among `devices` (by
/// UUID, else by PCI bus id) are dropped. Empty text is an empty list.
pub(crate) fn parse_compute_apps(text: &str, devices: &[GpuDeviceInfo]) -> Vec<GpuProcessEntry> {
    let mut rows = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Some(([pid], name, [used, uuid, bus_id])) = cut_row::<1, 3>(line) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let Some(device_index) = device_of(devices, uuid, bus_id) else {
            continue;
        };
        let mut row = GpuProcessEntry::new(pid, device_index, GpuQuerySource::NvidiaSmi);
        row.kind = GpuProcessKind::Compute;
        row.name = match cell(name) {
            Cell::Value(value) if !value.is_empty() => Some(value.to_owned()),
            Cell::Value(_) | Cell::Sentinel(_) => None,
        };
        row.used_bytes = match cell(used) {
            Cell::Value(value) => parse_mib(value).map(|mib| mib.saturating_mul(MIB)),
            Cell::Sentinel(_) => None,
        };
        rows.push(row);
    }
    rows
}

/// The sentinel printed in place of a pid (`[Insufficient Permissions]` in an unprivileged
/// MIG container), when there is one: the list then hides processes.
fn hidden_pids(text: &str) -> Option<&str> {
    text.lines()
        .filter_map(|line| line.split(',').next())
        .find_map(|first| match cell(first) {
            Cell::Sentinel(sentinel) => Some(sentinel),
            Cell::Value(_) => None,
        })
}

/// The index of the device with this UUID, else with this PCI bus id.
fn device_of(devices: &[GpuDeviceInfo], uuid: &str, bus_id: &str) -> Option<u32> {
    let matches = |wanted: &str, have: Option<&String>| {
        matches!(cell(wanted), Cell::Value(w) if !w.is_empty())
            && have.is_some_and(|h| h.eq_ignore_ascii_case(wanted.trim()))
    };
    devices
        .iter()
        .find(|d| matches(uuid, d.uuid.as_ref()))
        .or_else(|| {
            devices
                .iter()
                .find(|d| matches(bus_id, d.pci_bus_id.as_ref()))
        })
        .map(|d| d.index)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Memory figures, names, process rows and messages below are the captures of
    // shared/reference/nvidia-smi.md, put into this module's column order; UUIDs the capture
    // elided are filled in with made-up values of the real shape.
    const H100_UUID: &str = "GPU-5b1c7b2e-3f4a-4d7e-9c1a-0b2d3e4f5a6b";
    const H100_IDLE: &str = "0, GPU-5b1c7b2e-3f4a-4d7e-9c1a-0b2d3e4f5a6b, NVIDIA H100 80GB HBM3, 00000000:00:09.0, 590.48.01, 81559, 0, 81081, 479\n";
    const H100_LOADED: &str = "0, GPU-5b1c7b2e-3f4a-4d7e-9c1a-0b2d3e4f5a6b, NVIDIA H100 80GB HBM3, 00000000:00:09.0, 590.48.01, 81559, 19818, 61263, 479\n";

    fn mib(n: u64) -> Option<u64> {
        Some(n * 1_048_576)
    }

    fn h100() -> Vec<GpuDeviceInfo> {
        parse_query_gpu(H100_LOADED, true).unwrap()
    }

    #[test]
    fn idle_h100_figures_are_mib_times_1048576_and_a_real_zero_stays_zero() {
        let devices = parse_query_gpu(H100_IDLE, true).unwrap();
        assert_eq!(devices.len(), 1);
        let d = &devices[0];
        assert_eq!(d.index, 0);
        assert_eq!(d.name.as_deref(), Some("NVIDIA H100 80GB HBM3"));
        assert_eq!(d.uuid.as_deref(), Some(H100_UUID));
        assert_eq!(d.pci_bus_id.as_deref(), Some("00000000:00:09.0"));
        assert_eq!(d.driver_version.as_deref(), Some("590.48.01"));
        assert_eq!(d.vendor, GpuVendor::Nvidia);
        assert_eq!(d.source, GpuQuerySource::NvidiaSmi);
        assert_eq!(d.total_bytes, mib(81559));
        assert_eq!(d.used_bytes, Some(0));
        assert_eq!(d.free_bytes, mib(81081));
        assert_eq!(d.reserved_bytes, mib(479));
        assert!(!d.unified_memory);
        assert_eq!(d.unavailable_reason(DeviceField::TotalBytes), None);
        assert!(
            d.unavailable_reason(DeviceField::CudaDriverVersion)
                .is_some()
        );
    }

    #[test]
    fn loaded_h100_figures_add_up_to_the_total_within_one_mib() {
        let d = &h100()[0];
        assert_eq!(d.used_bytes, mib(19818));
        assert_eq!(d.free_bytes, mib(61263));
        let sum = d.used_bytes.unwrap() + d.free_bytes.unwrap() + d.reserved_bytes.unwrap();
        assert!(d.total_bytes.unwrap().abs_diff(sum) <= 1_048_576);
    }

    #[test]
    fn wddm_and_h200_device_rows_parse_with_their_driver_versions() {
        let text = "0, GPU-0a1b2c3d-0000-1111-2222-333344445555, NVIDIA GeForce RTX 2080 SUPER, 00000000:0C:00.0, 591.86, 8192, 702, 7286, 205\n\
                    1, GPU-0a1b2c3d-6666-7777-8888-99990000aaaa, NVIDIA H200, 00000000:1A:00.0, 591.86, 143771, 32362, 110796, 614\n";
        let devices = parse_query_gpu(text, true).unwrap();
        assert_eq!(devices.len(), 2);
        assert_eq!(
            devices[0].name.as_deref(),
            Some("NVIDIA GeForce RTX 2080 SUPER")
        );
        assert_eq!(devices[0].total_bytes, mib(8192));
        assert_eq!(devices[0].reserved_bytes, mib(205));
        assert_eq!(devices[1].index, 1);
        assert_eq!(devices[1].total_bytes, mib(143_771));
        assert_eq!(devices[1].used_bytes, mib(32362));
        assert_eq!(devices[1].free_bytes, mib(110_796));
        assert_eq!(devices[1].reserved_bytes, mib(614));
    }

    #[test]
    fn insufficient_permissions_in_a_mig_container_leaves_memory_unknown_with_the_reason() {
        let text = "0, GPU-ae37d2f1-8c4b-4e6a-9d3f-1a2b3c4d5e6f, NVIDIA A100-SXM4-40GB, 00000000:07:00.0, 535.161.08, [Insufficient Permissions], [Insufficient Permissions], [Insufficient Permissions], [N/A]\n";
        let d = &parse_query_gpu(text, true).unwrap()[0];
        assert_eq!(d.name.as_deref(), Some("NVIDIA A100-SXM4-40GB"));
        for field in [
            DeviceField::TotalBytes,
            DeviceField::UsedBytes,
            DeviceField::FreeBytes,
        ] {
            let reason = d.unavailable_reason(field).unwrap();
            assert!(
                reason.contains("[Insufficient Permissions]"),
                "{field}: {reason}"
            );
        }
        assert_eq!(d.total_bytes, None);
        assert_eq!(d.used_bytes, None);
        assert_eq!(d.free_bytes, None);
        assert_eq!(d.reserved_bytes, None);
        assert!(
            d.unavailable_reason(DeviceField::ReservedBytes)
                .unwrap()
                .contains("[N/A]")
        );
        assert!(!d.unified_memory);
    }

    #[test]
    fn gb10_reports_no_device_memory_and_is_marked_unified_without_invented_numbers() {
        let text = "0, GPU-d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e5f6, NVIDIA GB10, 0000000F:01:00.0, 580.95.05, [N/A], [N/A], [N/A], [N/A]\n";
        let d = &parse_query_gpu(text, true).unwrap()[0];
        assert_eq!(
            (d.total_bytes, d.used_bytes, d.free_bytes, d.reserved_bytes),
            (None, None, None, None)
        );
        assert!(d.unified_memory);
        let reason = d.unavailable_reason(DeviceField::TotalBytes).unwrap();
        assert!(
            reason.contains("[N/A]") && reason.contains("unified"),
            "{reason}"
        );
    }

    #[test]
    fn every_sentinel_spelling_is_absent_field_by_field() {
        let text = "0, [Unknown Error], [N/A], N/A, [Requested functionality has been deprecated], [Not Supported], 100, N/A, [Unknown Error]\n";
        let d = &parse_query_gpu(text, true).unwrap()[0];
        assert_eq!(d.uuid, None);
        assert_eq!(d.name, None);
        assert_eq!(d.pci_bus_id, None);
        assert_eq!(d.driver_version, None);
        assert_eq!(d.total_bytes, None);
        assert_eq!(d.used_bytes, mib(100));
        assert_eq!(d.free_bytes, None);
        assert_eq!(d.reserved_bytes, None);
        assert!(
            d.unavailable_reason(DeviceField::Uuid)
                .unwrap()
                .contains("[Unknown Error]")
        );
        assert!(
            d.unavailable_reason(DeviceField::Name)
                .unwrap()
                .contains("[N/A]")
        );
        assert!(
            d.unavailable_reason(DeviceField::PciBusId)
                .unwrap()
                .contains("N/A")
        );
        assert!(
            d.unavailable_reason(DeviceField::DriverVersion)
                .unwrap()
                .contains("[Requested functionality has been deprecated]")
        );
        assert!(
            d.unavailable_reason(DeviceField::TotalBytes)
                .unwrap()
                .contains("[Not Supported]")
        );
        assert!(
            d.unavailable_reason(DeviceField::FreeBytes)
                .unwrap()
                .contains("N/A")
        );
        assert_eq!(d.unavailable_reason(DeviceField::UsedBytes), None);
        assert_eq!(d.name_or_unknown(), "unknown GPU");
    }

    #[test]
    fn an_old_driver_row_has_no_reserved_figure_and_says_why() {
        let text = "0, GPU-11112222-3333-4444-5555-666677778888, Tesla V100-SXM2-16GB, 00000000:00:1E.0, 470.182.03, 16160, 3, 16157\n";
        let d = &parse_query_gpu(text, false).unwrap()[0];
        assert_eq!(d.total_bytes, mib(16160));
        assert_eq!(d.used_bytes, mib(3));
        assert_eq!(d.free_bytes, mib(16157));
        assert_eq!(d.reserved_bytes, None);
        assert_eq!(
            d.unavailable_reason(DeviceField::ReservedBytes),
            Some("nvidia-smi on this driver has no memory.reserved field")
        );
    }

    #[test]
    fn a_device_name_with_commas_is_kept_whole_between_the_fixed_cells() {
        let text = "3, GPU-aaaa, Weird, Board,Name, 0000:01:00.0, 590.48.01, 1024, 1, 1000, 23\n";
        let d = &parse_query_gpu(text, true).unwrap()[0];
        assert_eq!(d.index, 3);
        assert_eq!(d.name.as_deref(), Some("Weird, Board,Name"));
        assert_eq!(d.pci_bus_id.as_deref(), Some("0000:01:00.0"));
        assert_eq!(d.reserved_bytes, mib(23));
    }

    #[test]
    fn units_left_in_by_a_driver_that_ignores_nounits_are_tolerated() {
        let text = "0, GPU-aaaa, NVIDIA H100 80GB HBM3, 00000000:00:09.0, 590.48.01, 81559 MiB, 0 MiB, 81081 MiB, 479 MiB\n";
        let d = &parse_query_gpu(text, true).unwrap()[0];
        assert_eq!(d.total_bytes, mib(81559));
        assert_eq!(d.reserved_bytes, mib(479));
    }

    #[test]
    fn huge_figures_saturate_instead_of_overflowing() {
        let text = "0, GPU-aaaa, X, 0:0, 1, 18446744073709551615, 0, 0, 0\n";
        let d = &parse_query_gpu(text, true).unwrap()[0];
        assert_eq!(d.total_bytes, Some(u64::MAX));
    }

    #[test]
    fn figures_larger_than_the_total_are_dropped_with_a_reason() {
        let text = "0, GPU-aaaa, X, 0:0, 1, 100, 200, 0, 0\n";
        let d = &parse_query_gpu(text, true).unwrap()[0];
        assert_eq!((d.total_bytes, d.used_bytes), (None, None));
        assert!(
            d.unavailable_reason(DeviceField::UsedBytes)
                .unwrap()
                .contains("impossible")
        );
        assert_eq!(
            d.unavailable
                .iter()
                .filter(|u| u.field == DeviceField::UsedBytes)
                .count(),
            1
        );
    }

    #[test]
    fn a_garbage_figure_is_absent_with_the_text_it_had() {
        let text = "0, GPU-aaaa, X, 0:0, 1, lots, 0, 0, 0\n";
        let d = &parse_query_gpu(text, true).unwrap()[0];
        assert_eq!(d.total_bytes, None);
        assert!(
            d.unavailable_reason(DeviceField::TotalBytes)
                .unwrap()
                .contains("\"lots\"")
        );
    }

    #[test]
    fn empty_output_is_no_devices_and_blank_lines_and_warnings_are_skipped() {
        assert_eq!(parse_query_gpu("", true).unwrap(), Vec::new());
        assert_eq!(parse_query_gpu("\n  \n", true).unwrap(), Vec::new());
        let text = format!("WARNING: infoROM is corrupted at gpu 0000:00:09.0\n\n{H100_IDLE}");
        assert_eq!(parse_query_gpu(&text, true).unwrap().len(), 1);
    }

    #[test]
    fn a_row_with_too_few_cells_or_no_device_row_at_all_is_a_parse_error() {
        let err = parse_query_gpu("0, GPU-aaaa, NVIDIA H100 80GB HBM3, 81559\n", true).unwrap_err();
        assert!(matches!(err, HypomnesisError::Parse { .. }), "{err:?}");
        assert!(err.to_string().contains("expected 9 cells"), "{err}");
        // Eight cells are right without reserved, wrong with it.
        let eight = "0, GPU-aaaa, X, 0:0, 1, 10, 1, 9\n";
        assert!(parse_query_gpu(eight, true).is_err());
        assert!(parse_query_gpu(eight, false).is_ok());
        let err = parse_query_gpu("Some unexpected text\n", true).unwrap_err();
        assert!(err.to_string().contains("Some unexpected text"), "{err}");
    }

    #[test]
    fn the_gpu_burn_row_becomes_one_compute_process_on_its_device() {
        let text = format!("11345, ./gpu_burn, 15690, {H100_UUID}, 00000000:00:09.0\n");
        let rows = parse_compute_apps(&text, &h100());
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r.pid, 11345);
        assert_eq!(r.name.as_deref(), Some("./gpu_burn"));
        assert_eq!(r.used_bytes, mib(15690));
        assert_eq!(r.device_index, 0);
        assert_eq!(r.kind, GpuProcessKind::Compute);
        assert_eq!(r.source, GpuQuerySource::NvidiaSmi);
        assert_eq!((r.gpu_instance_id, r.compute_instance_id), (None, None));
    }

    #[test]
    fn wddm_rows_have_no_per_process_figure_rather_than_zero() {
        let devices = parse_query_gpu(
            "0, GPU-0a1b2c3d-0000-1111-2222-333344445555, NVIDIA GeForce RTX 2080 SUPER, 00000000:0C:00.0, 591.86, 8192, 702, 7286, 205\n",
            true,
        )
        .unwrap();
        let text = "2056, C:\\Windows\\System32\\dwm.exe, [N/A], GPU-0a1b2c3d-0000-1111-2222-333344445555, 00000000:0C:00.0\n\
                    9876, C:\\Program Files\\Mozilla Firefox\\firefox.exe, [N/A], GPU-0a1b2c3d-0000-1111-2222-333344445555, 00000000:0C:00.0\n";
        let rows = parse_compute_apps(text, &devices);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0].name.as_deref(),
            Some("C:\\Windows\\System32\\dwm.exe")
        );
        assert_eq!(rows[0].used_bytes, None);
        assert_eq!(
            rows[1].name.as_deref(),
            Some("C:\\Program Files\\Mozilla Firefox\\firefox.exe")
        );
        assert_eq!(rows[1].used_bytes, None);
    }

    #[test]
    fn process_names_with_commas_spaces_quotes_unicode_and_question_marks_survive() {
        let names = [
            "python3 train.py --tags a,b, c",
            "my app, \"quoted\", 'too'",
            "Modèle-訓練 🚀",
            "worker?rank=0?world=8",
            "/usr/bin/kwin_wayland",
        ];
        let text: String = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                format!(
                    "{}, {name}, {}, {H100_UUID}, 00000000:00:09.0\n",
                    100 + i,
                    i + 1
                )
            })
            .collect();
        let rows = parse_compute_apps(&text, &h100());
        let got: Vec<_> = rows.iter().map(|r| r.name.as_deref().unwrap()).collect();
        assert_eq!(got, names);
        assert_eq!(rows[4].used_bytes, mib(5));
    }

    #[test]
    fn rows_whose_pid_is_not_a_number_are_skipped() {
        let text = format!(
            "pid, process_name, used_gpu_memory [MiB], gpu_uuid, gpu_bus_id\n\
             [Insufficient Permissions], [Insufficient Permissions], [Insufficient Permissions], {H100_UUID}, 00000000:00:09.0\n\
             -1, ghost, 1, {H100_UUID}, 00000000:00:09.0\n\
             garbage without commas\n\
             77, ok, 1, {H100_UUID}, 00000000:00:09.0\n"
        );
        let rows = parse_compute_apps(&text, &h100());
        assert_eq!(rows.iter().map(|r| r.pid).collect::<Vec<_>>(), [77]);
    }

    #[test]
    fn a_sentinel_in_place_of_pids_is_noticed_as_a_hidden_list() {
        let mig = format!(
            "[Insufficient Permissions], [Insufficient Permissions], [Insufficient Permissions], {H100_UUID}, 00000000:00:09.0\n"
        );
        assert_eq!(hidden_pids(&mig), Some("[Insufficient Permissions]"));
        let normal = format!("11345, ./gpu_burn, 15690, {H100_UUID}, 00000000:00:09.0\n");
        assert_eq!(hidden_pids(&normal), None);
        assert_eq!(hidden_pids(""), None);
    }

    #[test]
    fn rows_map_to_devices_by_uuid_then_by_bus_id_and_unknown_devices_are_dropped() {
        let text = "0, GPU-AAAA, A, 00000000:01:00.0, 1, 10, 1, 9, 0\n\
                    1, GPU-BBBB, B, 00000000:02:00.0, 1, 10, 1, 9, 0\n";
        let devices = parse_query_gpu(text, true).unwrap();
        let apps = "1, by-uuid, 1, gpu-bbbb, 00000000:01:00.0\n\
                    2, by-bus, 2, [N/A], 00000000:01:00.0\n\
                    3, elsewhere, 3, GPU-CCCC, 00000000:03:00.0\n\
                    4, nowhere, 4, [N/A], [N/A]\n";
        let rows = parse_compute_apps(apps, &devices);
        let got: Vec<_> = rows.iter().map(|r| (r.pid, r.device_index)).collect();
        assert_eq!(got, [(1, 1), (2, 0)]);
    }

    #[test]
    fn no_processes_is_empty_output_and_an_empty_list() {
        assert!(parse_compute_apps("", &h100()).is_empty());
        assert!(parse_compute_apps("\n", &h100()).is_empty());
    }

    #[test]
    fn a_sentinel_process_name_is_absent() {
        let text = format!("5, [N/A], 12, {H100_UUID}, 00000000:00:09.0\n");
        let rows = parse_compute_apps(&text, &h100());
        assert_eq!(rows[0].name, None);
        assert_eq!(rows[0].used_bytes, mib(12));
    }

    #[test]
    fn rows_are_cut_outside_in_keeping_the_middle_as_printed() {
        assert_eq!(
            cut_row::<1, 3>("1, a, b,c, 2, u, p"),
            Some((["1"], "a, b,c", ["2", "u", "p"]))
        );
        assert_eq!(
            cut_row::<1, 3>("1, , 2, u, p"),
            Some((["1"], "", ["2", "u", "p"]))
        );
        assert_eq!(cut_row::<1, 3>("1, 2, u"), None);
    }

    #[cfg(unix)]
    fn finished(code: i32, stdout: &str, stderr: &str) -> Finished {
        use std::os::unix::process::ExitStatusExt;
        Finished {
            status: ExitStatus::from_raw(code << 8),
            stdout: stdout.into(),
            stderr: stderr.into(),
        }
    }

    #[cfg(unix)]
    #[test]
    fn exit_9_keeps_the_real_message_and_says_the_driver_is_not_loaded() {
        let run = finished(
            9,
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n\n",
            "",
        );
        let err = exit_error(&run, QUERY_GPU);
        let HypomnesisError::NvidiaSmi { exit_code, detail } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(*exit_code, Some(9));
        assert!(detail.starts_with("--query-gpu exited with code 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."), "{detail}");
        assert!(detail.contains("driver is not loaded"), "{detail}");
    }

    #[cfg(unix)]
    #[test]
    fn exit_18_keeps_both_lines_of_the_version_mismatch_message() {
        let run = finished(
            18,
            "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 535.161\n",
            "",
        );
        let err = exit_error(&run, QUERY_COMPUTE_APPS);
        let text = err.to_string();
        assert!(
            text.contains("--query-compute-apps exited with code 18"),
            "{text}"
        );
        assert!(
            text.contains("Driver/library version mismatch / NVML library version: 535.161"),
            "{text}"
        );
        assert!(text.contains("reboot"), "{text}");
    }

    #[cfg(unix)]
    #[test]
    fn stderr_is_used_when_stdout_is_empty_and_silence_is_said() {
        let err = exit_error(&finished(3, "", "  something broke \n"), QUERY_GPU);
        assert!(
            err.to_string()
                .ends_with("exited with code 3: something broke"),
            "{err}"
        );
        let err = exit_error(&finished(3, "", ""), QUERY_GPU);
        assert!(
            err.to_string().ends_with("exited with code 3: no output"),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn exit_6_no_devices_is_an_empty_answer_but_another_exit_6_is_an_error() {
        let empty: Vec<GpuDeviceInfo> =
            no_devices_or_error(finished(6, "No devices were found\n", ""), QUERY_GPU).unwrap();
        assert!(empty.is_empty());
        let other: Result<Vec<GpuDeviceInfo>> =
            no_devices_or_error(finished(6, "Something else\n", ""), QUERY_GPU);
        assert!(other.is_err());
    }

    #[cfg(unix)]
    #[test]
    fn an_unknown_reserved_field_is_recognised_on_either_stream() {
        let message = "Field \"memory.reserved\" is not a valid field to query.\n";
        assert!(rejects_reserved_field(&finished(2, message, "")));
        assert!(rejects_reserved_field(&finished(2, "", message)));
        assert!(!rejects_reserved_field(&finished(
            2,
            "Field \"memory.total\" is not a valid field to query.\n",
            ""
        )));
    }

    #[cfg(unix)]
    #[test]
    fn an_unbounded_timeout_does_not_overflow_the_clock() {
        let smi = NvidiaSmi::new(PathBuf::from("/bin/false"), Duration::MAX);
        let err = smi.devices().unwrap_err();
        assert!(
            matches!(
                err,
                HypomnesisError::NvidiaSmi {
                    exit_code: Some(1),
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_missing_executable_is_reported_as_not_found_with_its_path() {
        let smi = NvidiaSmi::new(
            PathBuf::from("/nonexistent/hypomnesis-test/nvidia-smi"),
            Duration::from_secs(1),
        );
        let err = smi.devices().unwrap_err();
        let HypomnesisError::NvidiaSmi { exit_code, detail } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(*exit_code, None);
        assert!(
            detail.contains("/nonexistent/hypomnesis-test/nvidia-smi not found"),
            "{detail}"
        );

        let smi = NvidiaSmi::new(
            PathBuf::from("hypomnesis-no-such-nvidia-smi"),
            Duration::from_secs(1),
        );
        let err = smi.devices().unwrap_err().to_string();
        assert!(
            err.contains("`hypomnesis-no-such-nvidia-smi` not found on PATH"),
            "{err}"
        );
    }
}

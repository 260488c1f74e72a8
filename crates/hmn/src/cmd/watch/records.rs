//! The NDJSON records of `hmn watch --json` (`docs/json.md`).

use hypomnesis::DeviceTelemetry;
use serde::Serialize;

use super::listing::Presence;
use super::track::PerPid;
use crate::json::DeviceRecord;
use crate::spill::SpillReport;

/// The shape of the NDJSON records, in the `start` record. 1: one device (`device`,
/// `device_name` in `start`, samples without a device); 2: every device, each sample naming its
/// device and how its figures were found (`docs/json.md`).
pub(super) const FORMAT_VERSION: u32 = 2;

/// `{"kind":"start"}` (`docs/json.md`).
#[derive(Debug, Serialize)]
pub(super) struct StartRecord<'a> {
    pub(super) kind: &'static str,
    pub(super) format_version: u32,
    pub(super) t_ms: u64,
    pub(super) wall_clock: String,
    pub(super) hmn_version: &'static str,
    pub(super) argv: Vec<String>,
    pub(super) devices: &'a [DeviceRecord],
    pub(super) interval_ms: u64,
    pub(super) duration_ms: Option<u64>,
    pub(super) selection: Selection,
    pub(super) spill_measurable: bool,
}

#[derive(Debug, Serialize)]
pub(super) struct Selection {
    pub(super) mode: &'static str,
    pub(super) pids: Vec<u32>,
    pub(super) top: Option<u32>,
    pub(super) filters: Vec<String>,
    pub(super) min_bytes: Option<u64>,
}

/// `{"kind":"sample"}`: one process on one device (or on none) at one sample.
#[derive(Debug, Serialize)]
pub(super) struct SampleRecord {
    pub(super) kind: &'static str,
    pub(super) t_ms: u64,
    pub(super) wall_clock: String,
    pub(super) pid: u32,
    pub(super) name: Option<String>,
    pub(super) device: Option<u32>,
    pub(super) presence: Presence,
    pub(super) used_bytes: Option<u64>,
    pub(super) used_delta_bytes: Option<i64>,
    pub(super) system_bytes: Option<u64>,
    pub(super) system_delta_bytes: Option<i64>,
    pub(super) shared_bytes: Option<u64>,
    pub(super) shared_with: Vec<u32>,
    pub(super) rss_bytes: Option<u64>,
    pub(super) rss_delta_bytes: Option<i64>,
    pub(super) spilling: Option<bool>,
    pub(super) paged: Option<bool>,
}

/// `{"kind":"telemetry"}` (`-a`): a watched device's utilization, temperature, power and
/// clocks at one sample.
#[derive(Serialize)]
pub(super) struct TelemetryRecord<'a> {
    pub(super) kind: &'static str,
    pub(super) t_ms: u64,
    pub(super) wall_clock: String,
    #[serde(flatten)]
    pub(super) telemetry: &'a DeviceTelemetry,
}

/// `{"kind":"summary"}`.
#[derive(Debug, Serialize)]
pub(super) struct SummaryRecord<'a> {
    pub(super) kind: &'static str,
    pub(super) t_ms: u64,
    pub(super) samples: u64,
    pub(super) interrupted: bool,
    pub(super) devices: Vec<DeviceSummary>,
    pub(super) spill_measurable: bool,
    pub(super) spill: &'a SpillReport,
    pub(super) per_pid: &'a [PerPid],
}

/// How often a watched device's process list was read, and how often it could not be.
#[derive(Debug, Clone, Serialize)]
pub(super) struct DeviceSummary {
    pub(super) index: u32,
    pub(super) samples_read: u64,
    pub(super) samples_missing: u64,
    pub(super) last_error: Option<String>,
}

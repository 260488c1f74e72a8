//! One observation of the whole machine, taken at one moment: the thing every view reads.
//!
//! The summary, `ps`, `fits`, `watch`, `run`, the exporter and the terminal UI all ask the
//! same questions — which GPUs, how full, who holds them, how is the host — and used to ask
//! them each in their own way, so they disagreed at the edges. A [`Frame`] answers them all
//! at once, each source read at most once (one `nvidia-smi` run per query, one `/proc` scan
//! for every DRM device), so a fix to how a fact is read reaches every view.
//!
//! A frame never fails as a whole: what could not be read is `None` with the error beside
//! it ([`Frame::host_error`], [`Frame::gpu_error`], [`DeviceFrame::telemetry_error`],
//! [`DeviceFrame::processes_error`]), and [`Frame::notes`] lists everything that could not
//! be seen, device by device.

use std::time::{Instant, SystemTime};

use crate::error::HypomnesisError;
use crate::host::HostMemory;
use crate::snapshot::{
    GpuDeviceInfo, GpuProcessEntry, GpuProcessListing, GpuQuerySource, GpuVendor, ListingNote,
    MigInstance,
};
use crate::telemetry::DeviceTelemetry;

/// Which parts of the machine a frame reads. Device memory and identity are always read;
/// the rest costs more (a process scan reads every process's files) and a monitor asks for
/// it less often.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct FrameRequest {
    /// Read each device's utilization, temperature, power and clocks.
    pub telemetry: bool,
    /// List every device's processes, named from the OS.
    pub processes: bool,
    /// With `processes`: each process's resident memory and cgroup (one more file read per
    /// process).
    pub process_details: bool,
}

impl FrameRequest {
    /// Everything: devices, telemetry, processes with their details.
    pub const ALL: Self = Self {
        telemetry: true,
        processes: true,
        process_details: true,
    };

    /// Device memory and identity only, and the host.
    pub const DEVICES: Self = Self {
        telemetry: false,
        processes: false,
        process_details: false,
    };

    /// This request, also reading telemetry (or not).
    #[must_use]
    pub const fn with_telemetry(mut self, telemetry: bool) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// This request, also listing processes (or not); `details` adds RSS and cgroup.
    #[must_use]
    pub const fn with_processes(mut self, processes: bool, details: bool) -> Self {
        self.processes = processes;
        self.process_details = processes && details;
        self
    }
}

impl Default for FrameRequest {
    fn default() -> Self {
        Self::ALL
    }
}

/// One GPU within a [`Frame`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DeviceFrame {
    /// Memory, identity, MIG instances and budget.
    pub device: GpuDeviceInfo,
    /// Utilization, temperature, power; `None` when not requested or not readable
    /// ([`DeviceFrame::telemetry_error`] says why).
    pub telemetry: Option<DeviceTelemetry>,
    /// Why `telemetry` is `None` although it was requested.
    pub telemetry_error: Option<HypomnesisError>,
    /// The device's processes and what the listing could not see; `None` when the frame did
    /// not scan processes or the listing failed ([`DeviceFrame::processes_error`]).
    pub processes: Option<GpuProcessListing>,
    /// Why `processes` is `None` although processes were requested.
    pub processes_error: Option<HypomnesisError>,
}

impl DeviceFrame {
    /// A device with nothing but its record (telemetry and processes not read).
    #[must_use]
    pub fn new(device: GpuDeviceInfo) -> Self {
        Self {
            device,
            telemetry: None,
            telemetry_error: None,
            processes: None,
            processes_error: None,
        }
    }

    /// The device's process rows; empty when none were listed.
    #[must_use]
    pub fn rows(&self) -> &[GpuProcessEntry] {
        self.processes.as_ref().map_or(&[], |l| l.rows.as_slice())
    }
}

/// Records rebuilt from what a view wrote down (`hmn top --replay` plays a recording back):
/// the library's records are `#[non_exhaustive]`, so a reader outside the crate starts from
/// these and sets the public fields it has figures for; every other figure stays unknown.
impl DeviceFrame {
    /// Device `index` with every figure unknown (set the public fields of `device`).
    #[must_use]
    pub fn recorded(index: u32, vendor: GpuVendor, source: GpuQuerySource) -> Self {
        Self::new(GpuDeviceInfo::new(index, vendor, source))
    }
}

impl GpuProcessEntry {
    /// Process `pid` on device `device_index`, every figure unknown (set the public fields).
    #[must_use]
    pub fn recorded(pid: u32, device_index: u32, source: GpuQuerySource) -> Self {
        Self::new(pid, device_index, source)
    }
}

impl MigInstance {
    /// Compute instance `compute_instance_id` of GPU instance `gpu_instance_id`, every figure
    /// unknown (set the public fields; `hmn top`'s fleet screen rebuilds a node's MIG
    /// instances from an exporter's series).
    #[must_use]
    pub fn recorded(gpu_instance_id: Option<u32>, compute_instance_id: Option<u32>) -> Self {
        Self {
            gpu_instance_id,
            compute_instance_id,
            uuid: None,
            total_bytes: None,
            free_bytes: None,
            used_bytes: None,
        }
    }
}

impl HostMemory {
    /// `total_bytes` of RAM, every other figure unknown (set the public fields).
    #[must_use]
    pub fn recorded(total_bytes: u64) -> Self {
        Self {
            total_bytes,
            available_bytes: None,
            swap_total_bytes: None,
            swap_free_bytes: None,
            pressure: None,
            cgroup: None,
            memory_load_percent: None,
            commit_limit_bytes: None,
            commit_available_bytes: None,
            pressure_level: None,
            page_states: None,
        }
    }
}

/// One observation of the machine: host, devices, processes and what could not be seen.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Frame {
    /// When the frame was taken, wall clock (for records).
    pub taken_at: SystemTime,
    /// When the frame was taken, monotonic (for ages and intervals).
    pub taken: Instant,
    /// What was asked for.
    pub request: FrameRequest,
    /// Host RAM, swap, pressure and the cgroup; `None` when unreadable ([`Frame::host_error`]).
    pub host: Option<HostMemory>,
    /// Why `host` is `None`.
    pub host_error: Option<HypomnesisError>,
    /// Every GPU the backends can see, by index.
    pub devices: Vec<DeviceFrame>,
    /// Why there are no devices: no backend could list any, or the driver did not answer in
    /// time. `None` when the backends answered (possibly with zero devices).
    pub gpu_error: Option<HypomnesisError>,
    /// Devices the backends count but whose record could not be read at all (NVML has a
    /// handle count but no handle for one): left out of `devices`, kept here with why, so a
    /// view says "skipped GPU 3: …" rather than showing seven GPUs of eight in silence.
    pub unreadable_devices: Vec<UnreadableDevice>,
    /// When the process listings in [`DeviceFrame::processes`] were taken, wall clock. A
    /// frame that scanned processes itself says its own `taken_at`; a
    /// [`Monitor`](crate::Monitor) scans processes less often than it reads devices, and its
    /// frames combine the newest device figures with the newest scan, which may be a few
    /// intervals older. `None` when the frame carries no process listings.
    pub processes_taken_at: Option<SystemTime>,
    /// The same moment as `processes_taken_at`, monotonic (for its age:
    /// `frame.taken - processes_taken`).
    pub processes_taken: Option<Instant>,
}

/// A device the backends count but could not read (see [`Frame::unreadable_devices`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnreadableDevice {
    /// Its index, as the readable devices are numbered around it.
    pub index: u32,
    /// Why its record could not be read.
    pub error: HypomnesisError,
}

/// What a frame could not see, for the footer of a view or the `notes` of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FrameNote {
    /// The device it concerns; `None` for the host or the GPU layer as a whole.
    pub device: Option<u32>,
    /// What kind of thing went unseen.
    pub kind: FrameNoteKind,
    /// One sentence for a person, saying what to do where the user can act.
    pub message: String,
    /// For a listing finding, its counts and PIDs.
    pub listing: Option<ListingNote>,
}

/// The kinds of [`FrameNote`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameNoteKind {
    /// Host memory could not be read.
    HostUnreadable,
    /// No GPU backend could list devices.
    GpuUnavailable,
    /// A device the backends count could not be read at all.
    DeviceUnreadable,
    /// A device's telemetry could not be read.
    TelemetryFailed,
    /// A device's process listing failed.
    ListingFailed,
    /// A listing ran but could not see everything (see [`ListingNote::kind`]).
    Listing,
}

impl Frame {
    /// A frame with nothing read yet, stamped now. When `request` lists processes, its
    /// listings are stamped with the same moment.
    #[must_use]
    pub fn empty(request: FrameRequest) -> Self {
        let taken_at = SystemTime::now();
        let taken = Instant::now();
        Self {
            taken_at,
            taken,
            request,
            host: None,
            host_error: None,
            devices: Vec::new(),
            gpu_error: None,
            unreadable_devices: Vec::new(),
            processes_taken_at: request.processes.then_some(taken_at),
            processes_taken: request.processes.then_some(taken),
        }
    }

    /// Whether this frame's process listings were read with the frame itself, rather than
    /// carried over from an earlier scan (see [`Frame::processes_taken`]).
    #[must_use]
    pub fn scanned_processes(&self) -> bool {
        self.processes_taken == Some(self.taken)
    }

    /// Device `index`, when the frame has it.
    #[must_use]
    pub fn device(&self, index: u32) -> Option<&DeviceFrame> {
        self.devices.iter().find(|d| d.device.index == index)
    }

    /// Every process row of every device, device by device, each sorted by pid.
    pub fn processes(&self) -> impl Iterator<Item = &GpuProcessEntry> {
        self.devices.iter().flat_map(DeviceFrame::rows)
    }

    /// Everything the frame could not see, host first, then device by device.
    #[must_use]
    pub fn notes(&self) -> Vec<FrameNote> {
        let mut notes = Vec::new();
        if let Some(e) = &self.host_error {
            notes.push(FrameNote {
                device: None,
                kind: FrameNoteKind::HostUnreadable,
                message: format!("host memory: {e}"),
                listing: None,
            });
        }
        if let Some(e) = &self.gpu_error {
            notes.push(FrameNote {
                device: None,
                kind: FrameNoteKind::GpuUnavailable,
                message: e.to_string(),
                listing: None,
            });
        }
        for u in &self.unreadable_devices {
            notes.push(FrameNote {
                device: Some(u.index),
                kind: FrameNoteKind::DeviceUnreadable,
                message: format!("GPU {}: {}", u.index, u.error),
                listing: None,
            });
        }
        for d in &self.devices {
            let index = d.device.index;
            if let Some(e) = &d.telemetry_error {
                notes.push(FrameNote {
                    device: Some(index),
                    kind: FrameNoteKind::TelemetryFailed,
                    message: format!("GPU {index}: telemetry: {e}"),
                    listing: None,
                });
            }
            if let Some(e) = &d.processes_error {
                notes.push(FrameNote {
                    device: Some(index),
                    kind: FrameNoteKind::ListingFailed,
                    message: format!("GPU {index}: processes: {e}"),
                    listing: None,
                });
            }
            if let Some(listing) = &d.processes {
                for finding in listing.findings() {
                    notes.push(FrameNote {
                        device: Some(index),
                        kind: FrameNoteKind::Listing,
                        message: format!("GPU {index}: {}", finding.message),
                        listing: Some(finding),
                    });
                }
            }
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_rebuilt_from_a_recording_start_with_every_figure_unknown() {
        let d = DeviceFrame::recorded(3, GpuVendor::Amd, GpuQuerySource::Drm);
        assert_eq!(
            (d.device.index, d.device.vendor, d.device.source),
            (3, GpuVendor::Amd, GpuQuerySource::Drm)
        );
        assert_eq!((d.device.total_bytes, d.device.used_bytes), (None, None));
        assert!(d.telemetry.is_none() && d.processes.is_none());
        let p = GpuProcessEntry::recorded(7, 3, GpuQuerySource::Drm);
        assert_eq!((p.pid, p.device_index, p.used_bytes), (7, 3, None));
        assert_eq!((p.user, p.rss_bytes), (None, None));
        let h = HostMemory::recorded(1 << 30);
        assert_eq!(
            (h.total_bytes, h.available_bytes, h.cgroup),
            (1 << 30, None, None)
        );
    }
}

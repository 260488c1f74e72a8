//! What one interval's frame says about each watched process on each watched device: the
//! device's rows summed by pid, and for a process not in a list, whether that means 0, unknown
//! or not seen (`Presence`). Pure: built from the frame's listings, tested on inline rows.

use std::collections::{BTreeMap, BTreeSet};

use hypomnesis::{Frame, GpuProcessListing};
use serde::Serialize;

/// GPU figures of one process on one device at one sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Gpu {
    pub(super) used: Option<u64>,
    pub(super) system: Option<u64>,
}

pub(super) fn max_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

pub(super) fn sum_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.saturating_add(b)),
        (a, b) => a.or(b),
    }
}

impl Gpu {
    pub(super) fn max(self, other: Self) -> Self {
        Self {
            used: max_opt(self.used, other.used),
            system: max_opt(self.system, other.system),
        }
    }
}

/// How a row's GPU figures were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Presence {
    /// In the device's process list: the driver's figures.
    Listed,
    /// Not in the device's list, which was read: the process holds nothing there (0).
    Absent,
    /// In no watched device's list: unknown, not 0.
    NotSeen,
    /// Its GPU use could not be read (Linux DRM: its fds, without root).
    Unreadable,
    /// The device's list could not be read at this interval (a lost or hung GPU).
    Missing,
    /// No GPU to read (RAM only).
    NoGpu,
}

impl Presence {
    /// The table's NOTE cell.
    pub(super) fn note(self) -> &'static str {
        match self {
            Self::Listed => "",
            Self::Absent => "none on this GPU",
            Self::NotSeen => "on no GPU's list",
            Self::Unreadable => "GPU use unreadable",
            Self::Missing => "GPU not read",
            Self::NoGpu => "no GPU",
        }
    }
}

/// One device's rows, by pid (a pid with several rows is summed).
#[derive(Debug, Default)]
pub(super) struct Listing {
    pub(super) by_pid: BTreeMap<u32, Row>,
    /// Processes whose GPU use could not be read (Linux DRM).
    pub(super) unreadable: BTreeSet<u32>,
    /// Whether the backend reports GPU buffers in system RAM (then an absent process holds
    /// 0 there too; NVML has no such figure).
    pub(super) any_system: bool,
    /// Whether the backend reports device memory (VRAM) for its processes: not on a GPU
    /// without VRAM (panfrost, an Intel iGPU), whose rows give only system memory. An absent
    /// process then reads VRAM `n/a` like the listed ones, not a 0 no row shows.
    pub(super) any_used: bool,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Row {
    pub(super) name: Option<String>,
    pub(super) command: Option<String>,
    pub(super) used: Option<u64>,
    pub(super) system: Option<u64>,
    pub(super) shared: Option<u64>,
    /// Other processes holding some of its DRM clients (inherited across `fork`, passed): the
    /// clients' memory is in this row's figures and in theirs.
    pub(super) shared_with: BTreeSet<u32>,
}

impl Listing {
    pub(super) fn new(listing: &GpuProcessListing) -> Self {
        let mut out = Self {
            unreadable: listing.unreadable_pids.iter().copied().collect(),
            ..Self::default()
        };
        // With no rows at all, nothing says the device lacks VRAM: absent reads 0 there.
        out.any_used = listing.rows.is_empty();
        for r in &listing.rows {
            out.any_system |= r.system_bytes.is_some();
            out.any_used |= r.used_bytes.is_some() || r.system_bytes.is_none();
            let row = out.by_pid.entry(r.pid).or_default();
            row.shared_with.extend(r.shared_with());
            row.name = row.name.take().or_else(|| r.name.clone());
            row.command = row.command.take().or_else(|| r.command.clone());
            row.used = sum_opt(row.used, r.used_bytes);
            row.system = sum_opt(row.system, r.system_bytes);
            row.shared = sum_opt(row.shared, r.shared_bytes);
        }
        out
    }
}

/// One interval's process lists: one per watched device, in device order; `Err` holds why the
/// device's list could not be read.
#[derive(Debug, Default)]
pub(super) struct Interval {
    pub(super) devices: Vec<(u32, Result<Listing, String>)>,
}

impl Interval {
    /// The lists of `devices` in one frame. A device the frame does not hold (its description
    /// could not be read this time: a GPU lost mid-watch) reads as missing, for the reason
    /// `why_missing` gives.
    pub(super) fn from_frame(
        frame: &Frame,
        devices: &[u32],
        why_missing: impl Fn(u32) -> String,
    ) -> Self {
        let read = |d: u32| -> Result<Listing, String> {
            if let Some(e) = &frame.gpu_error {
                return Err(e.to_string());
            }
            let Some(device) = frame.device(d) else {
                return Err(why_missing(d));
            };
            match (&device.processes, &device.processes_error) {
                (Some(listing), _) => Ok(Listing::new(listing)),
                (None, Some(e)) => Err(e.to_string()),
                (None, None) => Err("its processes were not listed".to_owned()),
            }
        };
        Self {
            devices: devices.iter().map(|&d| (d, read(d))).collect(),
        }
    }

    pub(super) fn listings(&self) -> impl Iterator<Item = &Listing> {
        self.devices.iter().filter_map(|(_, l)| l.as_ref().ok())
    }

    /// The process's first row on any device (for its name and command line).
    pub(super) fn row(&self, pid: u32) -> Option<&Row> {
        self.listings().find_map(|l| l.by_pid.get(&pid))
    }

    /// The `top` largest processes matching the filters, by GPU memory summed over the
    /// devices.
    pub(super) fn select(&self, top: u32, filters: &[String], min: Option<u64>) -> Vec<u32> {
        let patterns: Vec<String> = filters.iter().map(|f| f.to_lowercase()).collect();
        let mut footprint: BTreeMap<u32, u64> = BTreeMap::new();
        for listing in self.listings() {
            for (&pid, r) in &listing.by_pid {
                let held = r.used.unwrap_or(0).saturating_add(r.system.unwrap_or(0));
                let sum = footprint.entry(pid).or_insert(0);
                *sum = sum.saturating_add(held);
            }
        }
        let mut chosen: Vec<(u64, u32)> = footprint
            .into_iter()
            .filter(|&(pid, _)| {
                patterns.is_empty()
                    || self.row(pid).is_some_and(|r| {
                        patterns.iter().any(|p| {
                            [r.name.as_deref(), r.command.as_deref()]
                                .into_iter()
                                .flatten()
                                .any(|t| t.to_lowercase().contains(p))
                        })
                    })
            })
            .filter(|&(_, held)| min.is_none_or(|m| held >= m))
            .map(|(pid, held)| (held, pid))
            .collect();
        chosen.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        chosen
            .into_iter()
            .take(usize::try_from(top).unwrap_or(usize::MAX))
            .map(|(_, pid)| pid)
            .collect()
    }

    /// The rows of process `pid` at this interval: one per device whose list holds it, per
    /// device it was seen on before (a key of `tracked`: absent now, or missing), and for the
    /// one device `--device` names; one row without a device when that gives none.
    pub(super) fn rows_of<T>(
        &self,
        pid: u32,
        tracked: &BTreeMap<u32, T>,
        single: bool,
    ) -> Vec<Place> {
        let mut rows = Vec::new();
        for (d, read) in &self.devices {
            let wanted = single || tracked.contains_key(d);
            match read {
                Ok(listing) => {
                    if let Some(row) = listing.by_pid.get(&pid) {
                        rows.push(Place::listed(*d, row));
                    } else if wanted && listing.unreadable.contains(&pid) {
                        rows.push(Place::unknown(Some(*d), Presence::Unreadable));
                    } else if wanted {
                        rows.push(Place {
                            device: Some(*d),
                            presence: Presence::Absent,
                            gpu: Gpu {
                                used: listing.any_used.then_some(0),
                                system: listing.any_system.then_some(0),
                            },
                            shared: listing.any_system.then_some(0),
                            shared_with: Vec::new(),
                        });
                    }
                }
                Err(_) if wanted => rows.push(Place::unknown(Some(*d), Presence::Missing)),
                Err(_) => {}
            }
        }
        if rows.is_empty() {
            let presence = if self.devices.is_empty() {
                Presence::NoGpu
            } else if self.listings().any(|l| l.unreadable.contains(&pid)) {
                Presence::Unreadable
            } else if self.devices.iter().any(|(_, l)| l.is_err()) {
                Presence::Missing
            } else {
                Presence::NotSeen
            };
            rows.push(Place::unknown(None, presence));
        }
        rows
    }
}

/// One row's device, how its figures were found, and the figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Place {
    pub(super) device: Option<u32>,
    pub(super) presence: Presence,
    pub(super) gpu: Gpu,
    pub(super) shared: Option<u64>,
    pub(super) shared_with: Vec<u32>,
}

impl Place {
    pub(super) fn listed(device: u32, row: &Row) -> Self {
        Self {
            device: Some(device),
            presence: Presence::Listed,
            gpu: Gpu {
                used: row.used,
                system: row.system,
            },
            shared: row.shared,
            shared_with: row.shared_with.iter().copied().collect(),
        }
    }

    pub(super) fn unknown(device: Option<u32>, presence: Presence) -> Self {
        Self {
            device,
            presence,
            gpu: Gpu::default(),
            shared: None,
            shared_with: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypomnesis::{GpuProcessEntry, GpuQuerySource};

    fn entry(pid: u32, name: &str, used: u64) -> GpuProcessEntry {
        GpuProcessEntry::builder(pid)
            .name(name)
            .used_bytes(used)
            .source(GpuQuerySource::Nvml)
            .build()
    }

    fn listing(rows: Vec<GpuProcessEntry>, unreadable: Vec<u32>) -> Listing {
        let mut raw = GpuProcessListing::default();
        raw.rows = rows;
        raw.unreadable_pids = unreadable;
        Listing::new(&raw)
    }

    fn places(
        interval: &Interval,
        pid: u32,
        tracked: &[u32],
        single: bool,
    ) -> Vec<(Option<u32>, Presence, Option<u64>)> {
        let tracks: BTreeMap<u32, ()> = tracked.iter().map(|&d| (d, ())).collect();
        interval
            .rows_of(pid, &tracks, single)
            .into_iter()
            .map(|p| (p.device, p.presence, p.gpu.used))
            .collect()
    }

    #[test]
    fn the_top_processes_are_the_largest_matching_ones_over_every_device() {
        let interval = Interval {
            devices: vec![
                (
                    0,
                    Ok(listing(
                        vec![
                            entry(1, "python3", 5 << 30),
                            entry(2, "llama-server", 9 << 30),
                            entry(3, "python3", 1 << 30),
                            entry(1, "python3", 1 << 30),
                        ],
                        vec![],
                    )),
                ),
                (1, Ok(listing(vec![entry(1, "python3", 4 << 30)], vec![]))),
                (2, Err("GPU is lost".into())),
            ],
        };
        let Ok(first) = &interval.devices[0].1 else {
            panic!("device 0 was listed")
        };
        assert_eq!(
            first.by_pid[&1].used,
            Some(6 << 30),
            "rows of one pid on one device are summed"
        );
        assert_eq!(
            interval.select(2, &[], None),
            [1, 2],
            "pid 1 holds 6 GiB on GPU 0 and 4 GiB on GPU 1"
        );
        assert_eq!(interval.select(5, &["PYTHON".into()], None), [1, 3]);
        assert_eq!(interval.select(5, &[], Some(2 << 30)), [1, 2]);
    }

    #[test]
    fn a_process_gets_a_row_per_device_it_is_listed_on_and_none_elsewhere() {
        let interval = Interval {
            devices: vec![
                (0, Ok(listing(vec![entry(7, "train", 40 << 30)], vec![]))),
                (1, Ok(listing(vec![entry(7, "train", 30 << 30)], vec![]))),
                (2, Ok(listing(vec![], vec![]))),
            ],
        };
        assert_eq!(
            places(&interval, 7, &[], false),
            [
                (Some(0), Presence::Listed, Some(40 << 30)),
                (Some(1), Presence::Listed, Some(30 << 30)),
            ]
        );
    }

    #[test]
    fn a_process_on_no_device_is_not_seen_and_unknown_not_zero() {
        let interval = Interval {
            devices: vec![
                (0, Ok(listing(vec![entry(7, "train", 40 << 30)], vec![]))),
                (1, Ok(listing(vec![], vec![]))),
            ],
        };
        assert_eq!(
            places(&interval, 8, &[], false),
            [(None, Presence::NotSeen, None)]
        );
    }

    #[test]
    fn with_one_device_named_an_absent_process_holds_a_measured_zero_there() {
        let interval = Interval {
            devices: vec![(1, Ok(listing(vec![entry(7, "train", 1 << 30)], vec![])))],
        };
        assert_eq!(
            places(&interval, 8, &[], true),
            [(Some(1), Presence::Absent, Some(0))]
        );
    }

    #[test]
    fn on_a_gpu_without_vram_an_absent_process_reads_vram_unknown_and_system_zero() {
        let mut igpu_row = GpuProcessEntry::builder(7)
            .name("glxgears")
            .device_index(1)
            .source(GpuQuerySource::Drm)
            .system_bytes(64_u64 << 20)
            .build();
        igpu_row.used_bytes = None;
        let interval = Interval {
            devices: vec![(1, Ok(listing(vec![igpu_row], vec![])))],
        };
        let rows = interval.rows_of(8, &BTreeMap::<u32, ()>::new(), true);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].presence, Presence::Absent);
        assert_eq!(
            rows[0].gpu.used, None,
            "no row of this GPU has a VRAM figure"
        );
        assert_eq!(rows[0].gpu.system, Some(0));
    }

    #[test]
    fn a_device_a_process_was_on_keeps_its_row_zero_when_left_and_unknown_when_lost() {
        let interval = Interval {
            devices: vec![
                (0, Ok(listing(vec![], vec![]))),
                (1, Err("GPU is lost".into())),
            ],
        };
        assert_eq!(
            places(&interval, 7, &[0, 1], false),
            [
                (Some(0), Presence::Absent, Some(0)),
                (Some(1), Presence::Missing, None),
            ]
        );
        assert_eq!(
            places(&interval, 8, &[], false),
            [(None, Presence::Missing, None)],
            "not on the devices read, and one could not be read: unknown, not 'not seen'"
        );
    }

    #[test]
    fn an_unreadable_process_is_unknown_not_zero() {
        let interval = Interval {
            devices: vec![(0, Ok(listing(vec![], vec![9])))],
        };
        assert_eq!(
            places(&interval, 9, &[], true),
            [(Some(0), Presence::Unreadable, None)]
        );
        assert_eq!(
            places(&interval, 9, &[], false),
            [(None, Presence::Unreadable, None)]
        );
    }

    #[test]
    fn without_a_gpu_the_row_says_so() {
        assert_eq!(
            places(&Interval::default(), 9, &[], false),
            [(None, Presence::NoGpu, None)]
        );
    }

    fn frame_of(devices: Vec<hypomnesis::DeviceFrame>) -> Frame {
        let mut frame = Frame::empty(hypomnesis::FrameRequest::DEVICES.with_processes(true, false));
        frame.devices = devices;
        frame
    }

    fn device(index: u32, rows: Vec<GpuProcessEntry>) -> hypomnesis::DeviceFrame {
        let info = hypomnesis::GpuDeviceInfo::builder()
            .index(index)
            .source(GpuQuerySource::Nvml)
            .build();
        let mut d = hypomnesis::DeviceFrame::new(info);
        let mut listing = GpuProcessListing::default();
        listing.rows = rows;
        d.processes = Some(listing);
        d
    }

    fn errors(interval: &Interval) -> Vec<(u32, Option<String>)> {
        interval
            .devices
            .iter()
            .map(|(d, r)| (*d, r.as_ref().err().cloned()))
            .collect()
    }

    #[test]
    fn a_frame_gives_each_watched_device_its_own_list_and_no_other() {
        let frame = frame_of(vec![
            device(0, vec![entry(7, "train", 1 << 30)]),
            device(1, vec![entry(8, "serve", 2 << 30)]),
        ]);
        let interval = Interval::from_frame(&frame, &[1], |_| unreachable!());
        assert_eq!(errors(&interval), [(1, None)]);
        assert_eq!(places(&interval, 8, &[], false)[0].2, Some(2 << 30));
        assert_eq!(places(&interval, 7, &[], false)[0].1, Presence::NotSeen);
    }

    #[test]
    fn a_device_missing_from_the_frame_reads_missing_for_the_reason_asked_of_it() {
        let frame = frame_of(vec![device(0, vec![])]);
        let interval = Interval::from_frame(&frame, &[0, 1], |d| format!("GPU {d} is lost"));
        assert_eq!(
            errors(&interval),
            [(0, None), (1, Some("GPU 1 is lost".to_owned()))]
        );
    }

    #[test]
    fn a_failed_listing_or_a_silent_gpu_layer_reads_missing_with_its_error() {
        let mut failed = device(0, vec![]);
        failed.processes = None;
        failed.processes_error = Some(hypomnesis::HypomnesisError::ProcessNotFound { pid: 3 });
        let interval = Interval::from_frame(&frame_of(vec![failed]), &[0], |_| unreachable!());
        assert!(errors(&interval)[0].1.as_deref().unwrap().contains("pid 3"));

        let mut silent = frame_of(vec![]);
        silent.gpu_error =
            Some(hypomnesis::HypomnesisError::DeviceIndexOutOfRange { index: 0, count: 0 });
        let interval = Interval::from_frame(&silent, &[0, 1], |_| unreachable!());
        assert!(interval.devices.iter().all(|(_, r)| r.is_err()));
        assert_eq!(interval.devices.len(), 2);
    }
}

//! AMD, Intel and every other DRM GPU on Linux, without a vendor library.
//!
//! The kernel already publishes what is needed: amdgpu's VRAM and GTT figures in sysfs
//! ([`sysfs`]), and for every DRM client the memory it holds in `/proc/<pid>/fdinfo/<fd>`
//! (`drm-*` keys, [`fdinfo`]). Peers double count shared buffers, miss the APU case (a model
//! on a Radeon iGPU lives in GTT, so its "VRAM" reads about 0) or show host PIDs in
//! containers; here:
//!
//! - per process and device, `used_bytes` is resident device memory (VRAM, i915 `local`),
//!   `system_bytes` resident GTT / system memory, `shared_bytes` the `drm-shared-*` part, so
//!   an APU's model shows up in `system_bytes` and per-process sums can be reconciled with
//!   the device's `used_bytes` / `system_used_bytes`;
//! - clients are deduplicated by (device, `drm-client-id`) across fds and processes;
//! - the deprecated `drm-memory-*` alias is never added to `drm-resident-*`.
//!
//! NVIDIA cards are left to NVML: a card NVML or `nvidia-smi` listed (same PCI slot) is
//! skipped, and so is any card bound to the `nvidia` driver — that driver publishes no DRM
//! memory figures. When NVIDIA's backends are wanted but unusable (library missing, driver not
//! loaded), such a card is listed after the others with unknown memory and their reasons
//! ([`crate::gpu::Backend::orphans`]), and its process list is an error, so the
//! GPU does not vanish without a word. A card with `nouveau` is a DRM GPU like any other (its
//! clients carry no `drm-` keys: their holders are listed with unknown memory).
//!
//! Devices are numbered after NVIDIA's, in PCI slot order (platform devices such as panfrost
//! last, by name).

pub(crate) mod parse;
pub(crate) mod sensors;

#[cfg(target_os = "linux")]
pub(crate) mod fdinfo;
#[cfg(target_os = "linux")]
pub(crate) mod kfd;
#[cfg(target_os = "linux")]
pub(crate) mod sysfs;
#[cfg(target_os = "linux")]
pub(crate) mod telemetry;

#[cfg(target_os = "linux")]
pub(crate) use linux::DrmBackend;

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex};

    use super::fdinfo::{ProcessMemory, Scan, scan_all, scan_one};
    use super::kfd;
    use super::parse::normalize_pci_slot;
    use super::sysfs::{DrmDevice, Names, read_devices};
    use super::telemetry::{CardPaths, Clock, TelemetryState, read_telemetry};
    use crate::error::{BackendAttempt, HypomnesisError, Result};
    use crate::gpu::{Backend, Devices, Listed, Pass};
    use crate::snapshot::{
        GpuDeviceInfo, GpuProcessEntry, GpuProcessListing, GpuQuerySource, ProcessGpuInfo,
    };
    use crate::telemetry::DeviceTelemetry;
    use crate::unavailable::{DeviceField, TelemetryField};

    /// Where the PCI ids database is looked for, in order.
    const PCI_IDS: [&str; 2] = ["/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids"];

    /// The DRM backend of one probe.
    #[derive(Debug)]
    pub(crate) struct DrmBackend {
        proc_root: PathBuf,
        sys_root: PathBuf,
        names: Names,
        /// Previous energy and engine readings, per device.
        telemetry: TelemetryState,
        /// Where each device's files are, by key (filled on first use).
        cards: Mutex<HashMap<String, CardPaths>>,
        /// The devices as last read, with the `class/drm` entries they were read from: while
        /// those entries stay the same, the device set has not changed (see
        /// [`DrmBackend::known_devices`]).
        known: Mutex<Option<KnownDevices>>,
    }

    /// The `class/drm` entries the devices were read from, and the devices.
    type KnownDevices = (Vec<String>, Arc<Vec<DrmDevice>>);

    /// Every process's DRM clients, scanned once per pass for all devices.
    struct ScanOfPass(Result<Scan>);
    /// The KFD (ROCm) nodes, read once per pass.
    struct KfdNodes(Vec<kfd::KfdNode>);

    impl DrmBackend {
        /// Reads devices under `sys_root` and processes under `proc_root`.
        pub(crate) fn new(proc_root: &Path, sys_root: &Path) -> Self {
            Self::with_pci_ids(
                proc_root,
                sys_root,
                PCI_IDS.iter().map(PathBuf::from).collect(),
            )
        }

        /// As [`DrmBackend::new`], with the PCI ids databases to try.
        pub(crate) fn with_pci_ids(
            proc_root: &Path,
            sys_root: &Path,
            pci_ids: Vec<PathBuf>,
        ) -> Self {
            Self::with_clock(
                proc_root,
                sys_root,
                pci_ids,
                Clock::Monotonic(std::time::Instant::now()),
            )
        }

        /// As [`DrmBackend::with_pci_ids`], with the clock rates are computed against.
        pub(crate) fn with_clock(
            proc_root: &Path,
            sys_root: &Path,
            pci_ids: Vec<PathBuf>,
            clock: Clock,
        ) -> Self {
            Self {
                proc_root: proc_root.to_owned(),
                sys_root: sys_root.to_owned(),
                names: Names::new(pci_ids),
                telemetry: TelemetryState::new(clock),
                cards: Mutex::new(HashMap::new()),
                known: Mutex::new(None),
            }
        }

        /// The devices, read again only when the entries of `<sys>/class/drm` changed (a
        /// card added, removed, or its driver unbound): one directory listing instead of
        /// reading every card's files. Memory figures in the result are as last read: for
        /// finding devices, not for their figures.
        fn known_devices(&self) -> Result<Arc<Vec<DrmDevice>>> {
            let class = self.sys_root.join("class/drm");
            let mut entries: Vec<String> = std::fs::read_dir(&class)
                .map_err(|e| HypomnesisError::io(&class, &e))?
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect();
            entries.sort_unstable();
            let mut known = self
                .known
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((seen, devices)) = known.as_ref()
                && *seen == entries
            {
                return Ok(Arc::clone(devices));
            }
            let devices = Arc::new(read_devices(&self.sys_root, &self.names)?);
            if known.is_some() {
                // The device set changed: paths and open files of the old one go.
                self.cards
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clear();
                self.telemetry.forget_files();
            }
            *known = Some((entries, Arc::clone(&devices)));
            Ok(devices)
        }

        /// Where device `key`'s files are: remembered, else found by reading the devices
        /// again (a GPU that appeared since).
        fn card_paths(&self, key: &str) -> Option<CardPaths> {
            let cards = || {
                self.cards
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            };
            if let Some(found) = cards().get(key) {
                return Some(found.clone());
            }
            // Not under the `cards` lock: a changed device set clears `cards`.
            let devices = self.known_devices().ok()?;
            let mut cards = cards();
            for device in devices.iter() {
                cards.insert(
                    device.key.clone(),
                    CardPaths {
                        dir: device.card.join("device"),
                        card: device.card.clone(),
                        key: device.key.clone(),
                        driver: device.driver.clone(),
                    },
                );
            }
            cards.get(key).cloned()
        }

        /// Adds ROCm/KFD compute processes of device `key` to `listing` (see [`kfd`]).
        fn merge_kfd(
            &self,
            pass: &Pass,
            listing: &mut GpuProcessListing,
            key: &str,
            index: u32,
        ) -> kfd::KfdMerge {
            let nodes = pass.memo(|| KfdNodes(kfd::read_nodes(&self.sys_root)));
            let nodes = &nodes.0;
            if nodes.is_empty() {
                return kfd::KfdMerge::default();
            }
            let mut merge = match nodes.iter().find(|n| n.slot.as_deref() == Some(key)) {
                Some(node) => {
                    kfd::merge_into(listing, &kfd::read_vram(&self.sys_root, node.gpu_id), index)
                }
                None => kfd::KfdMerge::default(),
            };
            let drm_keys: Vec<String> = self
                .known_devices()
                .map(|devices| devices.iter().map(|d| d.key.clone()).collect())
                .unwrap_or_default();
            merge.nodes_without_drm = kfd::nodes_without_drm(nodes, &drm_keys);
            merge
        }

        /// DRM devices, NVIDIA's left out (see the module documentation).
        fn drm_devices(&self, nvidia: &[GpuDeviceInfo]) -> Result<Vec<DrmDevice>> {
            Ok(not_nvidia(
                read_devices(&self.sys_root, &self.names)?,
                nvidia,
            ))
        }

        /// The key fdinfo rows of `device` carry, when `device` is one of ours.
        fn key_of(&self, device: &GpuDeviceInfo) -> Option<String> {
            if device.source != GpuQuerySource::Drm {
                return None;
            }
            if let Some(slot) = device.pci_bus_id.as_deref() {
                return normalize_pci_slot(slot);
            }
            // A platform device: find it again by name (which contains its platform name).
            self.known_devices()
                .ok()?
                .iter()
                .find(|d| d.info.pci_bus_id.is_none() && d.info.name == device.name)
                .map(|d| d.key.clone())
        }

        /// The listing of device `key` (index `index`) from a finished scan.
        pub(crate) fn listing_from_scan(scan: &Scan, key: &str, index: u32) -> GpuProcessListing {
            let rows = scan
                .per_process(key)
                .into_iter()
                .map(|(pid, memory)| {
                    let mut row = GpuProcessEntry::new(pid, index, GpuQuerySource::Drm);
                    row.used_bytes = memory.device;
                    row.system_bytes = memory.system;
                    row.shared_bytes = memory.shared;
                    row.shared_clients = memory.shared_clients;
                    row
                })
                .collect();
            let mut listing = GpuProcessListing::from_rows(rows);
            listing.unreadable_pids.clone_from(&scan.unreadable_pids);
            let on_device = scan.clients.iter().filter(|c| c.device == key);
            let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
            listing.shared_clients =
                count(on_device.clone().filter(|c| c.holders.len() > 1).count());
            listing.clients_without_figures = count(on_device.filter(|c| !c.info.is_drm).count());
            listing.malformed_lines = scan.malformed_lines;
            listing
        }
    }

    /// Why an `nvidia`-bound card's memory is unknown (the start of its reasons).
    const NVIDIA_CARD: &str = "bound to the nvidia driver, which publishes memory figures only \
        through NVML and nvidia-smi, and neither could be used";

    /// For a card [`DrmBackend::orphans`](crate::gpu::Backend::orphans) listed: why its
    /// processes cannot be read.
    fn nvidia_card_error(device: &GpuDeviceInfo) -> Option<HypomnesisError> {
        let reason = device.unavailable_reason(DeviceField::UsedBytes)?;
        reason
            .starts_with(NVIDIA_CARD)
            .then(|| HypomnesisError::NoGpuSource {
                attempts: vec![BackendAttempt::new(
                    GpuQuerySource::Drm,
                    format!("no per-process GPU memory on this card: it is {reason}"),
                )],
            })
    }

    /// `devices` without the cards NVML or `nvidia-smi` listed (`nvidia`, matched by PCI
    /// slot) and without cards bound to the `nvidia` driver.
    fn not_nvidia(devices: Vec<DrmDevice>, nvidia: &[GpuDeviceInfo]) -> Vec<DrmDevice> {
        let listed: Vec<String> = nvidia
            .iter()
            .filter_map(|d| d.pci_bus_id.as_deref().and_then(normalize_pci_slot))
            .collect();
        devices
            .into_iter()
            .filter(|d| d.driver.as_deref() != Some("nvidia") && !listed.contains(&d.key))
            .collect()
    }

    impl Backend for DrmBackend {
        fn source(&self) -> GpuQuerySource {
            GpuQuerySource::Drm
        }

        fn devices(
            &self,
            pass: &Pass,
            claimed: &[GpuDeviceInfo],
        ) -> std::result::Result<Devices, String> {
            let _ = pass;
            self.drm_devices(claimed)
                .map(|found| Devices::numbered(found.into_iter().map(|d| d.info).collect()))
                .map_err(|e| e.backend_reason())
        }

        fn identities(
            &self,
            pass: &Pass,
            claimed: &[GpuDeviceInfo],
        ) -> std::result::Result<Devices, String> {
            let _ = pass;
            let known = self.known_devices().map_err(|e| e.backend_reason())?;
            Ok(Devices::numbered(
                not_nvidia(known.iter().cloned().collect(), claimed)
                    .into_iter()
                    .map(|d| d.info)
                    .collect(),
            ))
        }

        /// One scan of `/proc` per pass answers every DRM device.
        fn process_listing(
            &self,
            pass: &Pass,
            device: &Listed,
        ) -> Option<Result<GpuProcessListing>> {
            let device = &device.info;
            let key = self.key_of(device)?;
            if let Some(error) = nvidia_card_error(device) {
                return Some(Err(error));
            }
            let scan = pass.memo(|| ScanOfPass(scan_all(&self.proc_root, &self.sys_root)));
            Some(scan.0.as_ref().map_err(Clone::clone).map(|scan| {
                let mut listing = Self::listing_from_scan(scan, &key, device.index);
                // What the merge found: processes in both sources, KFD-only rows, KFD GPUs
                // without a DRM card.
                let merge = self.merge_kfd(pass, &mut listing, &key, device.index);
                listing.other_notes.extend(kfd::notes(&merge));
                listing
            }))
        }

        /// Cards bound to the `nvidia` driver, when NVIDIA's backends are `unusable`.
        fn orphans(
            &self,
            pass: &Pass,
            unusable: &[GpuQuerySource],
            why: &str,
        ) -> Vec<GpuDeviceInfo> {
            let _ = pass;
            if !unusable
                .iter()
                .any(|s| matches!(s, GpuQuerySource::Nvml | GpuQuerySource::NvidiaSmi))
            {
                return Vec::new();
            }
            let Ok(devices) = read_devices(&self.sys_root, &self.names) else {
                return Vec::new();
            };
            devices
                .into_iter()
                .filter(|d| d.driver.as_deref() == Some("nvidia"))
                .map(|d| {
                    let mut info = d.info;
                    info.vendor = crate::snapshot::GpuVendor::Nvidia;
                    let reason = format!("{NVIDIA_CARD}; {why}");
                    const MEMORY: [DeviceField; 4] = DeviceField::MEMORY;
                    info.unavailable.retain(|u| !MEMORY.contains(&u.field));
                    for field in MEMORY {
                        info.mark_unavailable(field, reason.clone());
                    }
                    info.total_bytes = None;
                    info.free_bytes = None;
                    info.used_bytes = None;
                    info.reserved_bytes = None;
                    info
                })
                .collect()
        }

        fn telemetry(&self, pass: &Pass, device: &Listed) -> Option<Result<DeviceTelemetry>> {
            let _ = pass;
            let device = &device.info;
            let key = self.key_of(device)?;
            let Some(card) = self.card_paths(&key) else {
                let mut t = DeviceTelemetry::empty(device.index, GpuQuerySource::Drm);
                for field in [
                    TelemetryField::GpuUtilizationPercent,
                    TelemetryField::TemperatureCelsius,
                    TelemetryField::PowerWatts,
                ] {
                    t.mark_unavailable(field, format!("DRM device {key} is no longer in sysfs"));
                }
                return Some(Ok(t));
            };
            Some(Ok(read_telemetry(
                &self.telemetry,
                &card,
                device.index,
                &self.proc_root,
                &self.sys_root,
            )))
        }

        /// Every client the process holds on the device, shared ones included (a client
        /// passed to another process is still held). On a unified-memory device (APU,
        /// integrated GPU) the figure is device + system memory, since both are host RAM
        /// and the model may live in either; on a discrete GPU it is device memory (VRAM).
        fn own_process(
            &self,
            pass: &Pass,
            device: &Listed,
            pid: u32,
        ) -> Option<Result<ProcessGpuInfo>> {
            let _ = pass;
            let device = &device.info;
            let key = self.key_of(device)?;
            if let Some(error) = nvidia_card_error(device) {
                return Some(Err(error));
            }
            let dir = if pid == std::process::id() {
                self.proc_root.join("self")
            } else {
                self.proc_root.join(pid.to_string())
            };
            let scan = scan_one(&dir, pid, &self.sys_root);
            if !scan.unreadable_pids.is_empty() {
                return Some(Err(HypomnesisError::PermissionDenied {
                    pid,
                    detail: format!("{}: its DRM fds cannot be read", dir.display()),
                }));
            }
            // No client on the device: the process holds nothing there (a measurement).
            let memory = scan
                .per_process(&key)
                .remove(&pid)
                .unwrap_or(ProcessMemory {
                    device: Some(0),
                    system: Some(0),
                    ..ProcessMemory::default()
                });
            let used = if device.unified_memory {
                match (memory.device, memory.system) {
                    (None, None) => None,
                    (d, s) => Some(d.unwrap_or(0).saturating_add(s.unwrap_or(0))),
                }
            } else {
                memory.device
            };
            let Some(used) = used else {
                return Some(Err(HypomnesisError::NoGpuSource {
                    attempts: vec![BackendAttempt::new(
                        GpuQuerySource::Drm,
                        format!(
                            "pid {pid} holds DRM clients on {key}, but the driver prints no \
                             memory figure for them in fdinfo"
                        ),
                    )],
                }));
            };
            Some(Ok(ProcessGpuInfo::own(
                used,
                device.index,
                GpuQuerySource::Drm,
            )))
        }
    }
}

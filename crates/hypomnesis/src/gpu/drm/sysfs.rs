//! GPUs from `<sys>/class/drm/card<N>/device/`.
//!
//! Each `card<N>` entry (not the `card0-DP-1` connectors, not `renderD<N>`) whose device also
//! has a render node is a GPU; display-only drivers (simpledrm, bochs, vkms) have none and are
//! skipped. The PCI slot is the file name of the `device` link's target (`0000:03:00.0`), the
//! driver the file name of `device/driver`'s target. Figures, all plain decimal bytes:
//!
//! - amdgpu: `mem_info_vram_{total,used}` → total / used (free = total − used);
//!   `mem_info_gtt_{total,used}` → `system_total_bytes` / `system_used_bytes`. amdgpu counts
//!   what the driver and firmware hold inside `used`, so `reserved_bytes` is `None`.
//! - xe: `tile<N>/physical_vram_size_bytes` (Linux ≥ 6.9, discrete parts) → total; use is
//!   only in a query ioctl (privileged for some figures), so used / free are `None`.
//! - i915 and others: no memory files; every figure `None` with the reason.
//!
//! Unified memory (the GPU's budget is host RAM):
//! - amdgpu, an APU when any of: the device has a `uma/` directory (carve-out control, APUs
//!   only); it has GTT figures but no VRAM figures (no VRAM manager); or
//!   `mem_info_vram_vendor` is absent (the kernel hides it when no VRAM chip vendor is known,
//!   as on APUs' carve-out) **and** VRAM ≤ 1 GiB **and** GTT > VRAM. An APU whose firmware
//!   carves out more than 1 GiB and has no `uma/` directory is not recognised.
//! - Intel: an integrated part, on PCI bus 0 (every Intel iGPU is `0000:00:02.0`).
//! - A GPU that is not a PCI device (panfrost, panthor, msm on an SoC).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::parse::{normalize_pci_slot, parse_pci_id, parse_sysfs_u64, pci_bus, pci_ids_lookup};
use crate::error::{HypomnesisError, Result};
use crate::snapshot::{GpuDeviceInfo, GpuQuerySource, GpuVendor};
use crate::unavailable::DeviceField;

const GIB: u64 = 1024 * 1024 * 1024;

/// PCI vendor ids.
const VENDOR_AMD: u16 = 0x1002;
const VENDOR_INTEL: u16 = 0x8086;
const VENDOR_NVIDIA: u16 = 0x10de;

/// One DRM GPU as read from sysfs.
#[derive(Debug, Clone)]
pub(crate) struct DrmDevice {
    /// The key fdinfo rows are matched on: the PCI slot in NVML's form, or the platform
    /// device's name (`fb000000.gpu`).
    pub(crate) key: String,
    /// The kernel driver (`amdgpu`, `xe`, ...), when the link is readable.
    pub(crate) driver: Option<String>,
    /// `<sys>/class/drm/cardN`.
    pub(crate) card: PathBuf,
    /// The record (index 0; the dispatcher numbers it).
    pub(crate) info: GpuDeviceInfo,
}

/// Where readable names come from, and what was already looked up.
#[derive(Debug)]
pub(crate) struct Names {
    pci_ids: Vec<PathBuf>,
    cache: Mutex<HashMap<(u16, u16), Option<String>>>,
}

impl Names {
    /// Names from the first of `pci_ids` that exists (read lazily, once per id pair).
    pub(crate) fn new(pci_ids: Vec<PathBuf>) -> Self {
        Self {
            pci_ids,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// `"AMD Navi 31 [Radeon RX 7900 XT/7900 XTX/7900 GRE/7900M]"` from the PCI ids
    /// database, or `None` when it has no entry (or there is no database).
    fn lookup(&self, vendor: u16, device: u16) -> Option<String> {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .entry((vendor, device))
            .or_insert_with(|| {
                let text = self.pci_ids.iter().find_map(|p| std::fs::read(p).ok())?;
                let text = String::from_utf8_lossy(&text);
                let (vendor_name, device_name) = pci_ids_lookup(&text, vendor, device)?;
                let device_name = device_name?;
                let short = short_vendor(vendor).unwrap_or(&vendor_name);
                Some(if device_name.starts_with(short) {
                    device_name
                } else {
                    format!("{short} {device_name}")
                })
            })
            .clone()
    }
}

fn short_vendor(vendor: u16) -> Option<&'static str> {
    match vendor {
        VENDOR_AMD => Some("AMD"),
        VENDOR_INTEL => Some("Intel"),
        VENDOR_NVIDIA => Some("NVIDIA"),
        _ => None,
    }
}

/// Every DRM GPU under `<sys_root>/class/drm`, sorted by PCI slot (platform devices after
/// PCI ones, by name). `Err` only when the directory cannot be read.
pub(crate) fn read_devices(sys_root: &Path, names: &Names) -> Result<Vec<DrmDevice>> {
    let class = sys_root.join("class/drm");
    let entries = std::fs::read_dir(&class).map_err(|e| HypomnesisError::io(&class, &e))?;
    let mut devices: Vec<DrmDevice> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_card(name) {
            continue;
        }
        if let Some(device) = read_card(&class.join(name), names)
            && !devices.iter().any(|d| d.key == device.key)
        {
            devices.push(device);
        }
    }
    devices.sort_by(|a, b| {
        let pci = |d: &DrmDevice| d.info.pci_bus_id.is_none();
        pci(a).cmp(&pci(b)).then_with(|| a.key.cmp(&b.key))
    });
    Ok(devices)
}

/// `card0`, `card12` — not `card0-DP-1`, not `renderD128`.
fn is_card(name: &str) -> bool {
    name.strip_prefix("card")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The file name of a symlink's target (`../../0000:03:00.0` → `0000:03:00.0`).
pub(crate) fn link_name(path: &Path) -> Option<String> {
    let target = std::fs::read_link(path).ok()?;
    Some(target.file_name()?.to_str()?.to_owned())
}

fn read_text(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    let path = dir.join(file);
    let text = read_text(&path);
    raw!("DRM sysfs {}: {text:?}", path.display());
    text.and_then(|t| parse_sysfs_u64(&t))
}

/// The device behind `<class>/cardN`, or `None` when it is not a GPU.
fn read_card(card: &Path, names: &Names) -> Option<DrmDevice> {
    let dir = card.join("device");
    let slot = link_name(&dir)?;
    if !has_render_node(&dir) {
        return None;
    }
    let driver = link_name(&dir.join("driver"));
    let vendor_id = read_text(&dir.join("vendor")).and_then(|t| parse_pci_id(&t));
    let device_id = read_text(&dir.join("device")).and_then(|t| parse_pci_id(&t));
    let pci_bus_id = normalize_pci_slot(&slot);
    let vendor = match vendor_id {
        Some(VENDOR_AMD) => GpuVendor::Amd,
        Some(VENDOR_INTEL) => GpuVendor::Intel,
        Some(VENDOR_NVIDIA) => GpuVendor::Nvidia,
        _ => GpuVendor::Other,
    };
    let mut info = GpuDeviceInfo::new(0, vendor, GpuQuerySource::Drm);
    info.name = Some(device_name(
        &dir,
        names,
        vendor_id,
        device_id,
        driver.as_deref(),
        &slot,
    ));
    info.pci_bus_id.clone_from(&pci_bus_id);
    info.mark_unavailable(DeviceField::Uuid, "DRM drivers publish no GPU UUID");
    info.mark_unavailable(
        DeviceField::DriverVersion,
        "an in-kernel DRM driver has no version of its own (it is the kernel's)",
    );
    match driver.as_deref() {
        Some("amdgpu") => amdgpu_memory(&dir, &mut info),
        Some("xe") => xe_memory(&dir, &mut info),
        Some(other) => no_memory_files(&mut info, other),
        None => no_memory_files(&mut info, "this DRM driver"),
    }
    info.unified_memory = match (vendor_id, &pci_bus_id) {
        (_, None) => true,
        (Some(VENDOR_AMD), _) if driver.as_deref() == Some("amdgpu") => amdgpu_is_apu(&dir, &info),
        (Some(VENDOR_INTEL), Some(slot)) => pci_bus(slot) == Some(0),
        _ => false,
    };
    if info.unified_memory && info.total_bytes.is_none() {
        info.unavailable
            .retain(|u| u.field != DeviceField::TotalBytes);
        info.mark_unavailable(
            DeviceField::TotalBytes,
            "integrated GPU: no dedicated memory, it uses host RAM (see host memory)",
        );
    }
    Some(DrmDevice {
        key: pci_bus_id.unwrap_or(slot),
        driver,
        card: card.to_owned(),
        info,
    })
}

/// Whether `<device>/drm/` lists a render node.
fn has_render_node(device: &Path) -> bool {
    std::fs::read_dir(device.join("drm")).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("renderD"))
        })
    })
}

/// `product_name` (amdgpu, from the board's FRU), else the PCI ids database, else
/// `"AMD GPU 0x744c"`; for a platform device `"panfrost GPU fb000000.gpu"`.
fn device_name(
    dir: &Path,
    names: &Names,
    vendor: Option<u16>,
    device: Option<u16>,
    driver: Option<&str>,
    slot: &str,
) -> String {
    if let Some(product) = read_text(&dir.join("product_name"))
        && !product.trim().is_empty()
    {
        return product.trim().to_owned();
    }
    match (vendor, device) {
        (Some(vendor), Some(device)) => names.lookup(vendor, device).unwrap_or_else(|| {
            let short =
                short_vendor(vendor).map_or_else(|| format!("0x{vendor:04x}"), str::to_owned);
            format!("{short} GPU 0x{device:04x}")
        }),
        _ => format!("{} GPU {slot}", driver.unwrap_or("DRM")),
    }
}

fn amdgpu_memory(dir: &Path, info: &mut GpuDeviceInfo) {
    let total = read_u64(dir, "mem_info_vram_total");
    let used = read_u64(dir, "mem_info_vram_used");
    match (total, used) {
        (Some(total), Some(used)) if used <= total => {
            info.total_bytes = Some(total);
            info.used_bytes = Some(used);
            info.free_bytes = Some(total - used);
        }
        (Some(total), Some(used)) => {
            info.total_bytes = Some(total);
            let reason = format!("amdgpu reports {used} bytes used of {total}: not believable");
            info.mark_unavailable(DeviceField::UsedBytes, reason.clone());
            info.mark_unavailable(DeviceField::FreeBytes, reason);
        }
        (total, _) => {
            info.total_bytes = total;
            let reason = "amdgpu has no mem_info_vram_used file (kernel before 4.10, or no VRAM)";
            if total.is_none() {
                info.mark_unavailable(
                    DeviceField::TotalBytes,
                    "amdgpu has no mem_info_vram_total file",
                );
            }
            info.mark_unavailable(DeviceField::UsedBytes, reason);
            info.mark_unavailable(DeviceField::FreeBytes, reason);
        }
    }
    info.mark_unavailable(
        DeviceField::ReservedBytes,
        "amdgpu counts memory the driver and firmware hold inside used",
    );
    info.system_total_bytes = read_u64(dir, "mem_info_gtt_total");
    info.system_used_bytes = read_u64(dir, "mem_info_gtt_used");
    if info.system_total_bytes.is_none() {
        info.mark_unavailable(
            DeviceField::SystemTotalBytes,
            "amdgpu has no mem_info_gtt_total file",
        );
    }
    if info.system_used_bytes.is_none() {
        info.mark_unavailable(
            DeviceField::SystemUsedBytes,
            "amdgpu has no mem_info_gtt_used file",
        );
    }
}

/// See the module documentation for the rule.
fn amdgpu_is_apu(dir: &Path, info: &GpuDeviceInfo) -> bool {
    if dir.join("uma").is_dir() {
        return true;
    }
    match (info.total_bytes, info.system_total_bytes) {
        (None, Some(_)) => true,
        (Some(vram), Some(gtt)) => {
            !dir.join("mem_info_vram_vendor").exists() && vram <= GIB && gtt > vram
        }
        _ => false,
    }
}

fn xe_memory(dir: &Path, info: &mut GpuDeviceInfo) {
    let mut total: Option<u64> = None;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let is_tile = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("tile"))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if is_tile && let Some(bytes) = read_u64(&entry.path(), "physical_vram_size_bytes") {
                total = Some(total.unwrap_or(0).saturating_add(bytes));
            }
        }
    }
    info.total_bytes = total;
    if total.is_none() {
        info.mark_unavailable(
            DeviceField::TotalBytes,
            "xe publishes no tile*/physical_vram_size_bytes here (kernel before 6.9, or no VRAM)",
        );
    }
    let reason = "xe reports VRAM use only through its memory-region query ioctl, not in sysfs";
    info.mark_unavailable(DeviceField::UsedBytes, reason);
    info.mark_unavailable(DeviceField::FreeBytes, reason);
    info.mark_unavailable(DeviceField::ReservedBytes, reason);
    system_unknown(info, "xe");
}

fn no_memory_files(info: &mut GpuDeviceInfo, driver: &str) {
    let reason = match driver {
        "i915" => {
            "i915 reports device memory only through its query ioctl (use needs CAP_PERFMON), \
             not in sysfs"
                .to_owned()
        }
        _ => format!("{driver} publishes no device memory figures in sysfs"),
    };
    for field in [
        DeviceField::TotalBytes,
        DeviceField::FreeBytes,
        DeviceField::UsedBytes,
        DeviceField::ReservedBytes,
    ] {
        info.mark_unavailable(field, reason.clone());
    }
    system_unknown(info, driver);
}

fn system_unknown(info: &mut GpuDeviceInfo, driver: &str) {
    let reason = format!("{driver} publishes no GTT / system-memory figures in sysfs");
    info.mark_unavailable(DeviceField::SystemTotalBytes, reason.clone());
    info.mark_unavailable(DeviceField::SystemUsedBytes, reason);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cards_are_gpus() {
        assert!(is_card("card0"));
        assert!(is_card("card12"));
        assert!(!is_card("card0-DP-1"));
        assert!(!is_card("renderD128"));
        assert!(!is_card("card"));
        assert!(!is_card("version"));
    }

    #[test]
    fn names_fall_back_to_vendor_and_device_id() {
        let root = tempfile::tempdir().unwrap();
        let names = Names::new(vec![root.path().join("missing.ids")]);
        let name = device_name(root.path(), &names, Some(0x1002), Some(0x744c), None, "x");
        assert_eq!(name, "AMD GPU 0x744c");
        let name = device_name(root.path(), &names, Some(0x1af4), Some(0x1050), None, "x");
        assert_eq!(name, "0x1af4 GPU 0x1050");
        let name = device_name(
            root.path(),
            &names,
            None,
            None,
            Some("panfrost"),
            "fb000000.gpu",
        );
        assert_eq!(name, "panfrost GPU fb000000.gpu");
    }

    #[test]
    fn names_come_from_the_pci_ids_database_once() {
        let root = tempfile::tempdir().unwrap();
        let ids = root.path().join("pci.ids");
        std::fs::write(
            &ids,
            "1002  Advanced Micro Devices, Inc. [AMD/ATI]\n\t744c  Navi 31 [Radeon RX 7900 XT]\n\
             8086  Intel Corporation\n\t56a0  DG2 [Arc A770]\n",
        )
        .unwrap();
        let names = Names::new(vec![root.path().join("absent"), ids.clone()]);
        assert_eq!(
            names.lookup(0x1002, 0x744c).as_deref(),
            Some("AMD Navi 31 [Radeon RX 7900 XT]")
        );
        assert_eq!(
            names.lookup(0x8086, 0x56a0).as_deref(),
            Some("Intel DG2 [Arc A770]")
        );
        std::fs::remove_file(&ids).unwrap();
        assert_eq!(
            names.lookup(0x1002, 0x744c).as_deref(),
            Some("AMD Navi 31 [Radeon RX 7900 XT]"),
            "cached"
        );
        assert_eq!(names.lookup(0x1002, 0x1586), None);
    }
}

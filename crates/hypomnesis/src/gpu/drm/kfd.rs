//! ROCm compute processes, from the KFD (`/dev/kfd`) driver's sysfs.
//!
//! A HIP / ROCm job allocates through KFD, and on many kernels that memory does not show up
//! in the DRM fdinfo of the process (or the process holds no DRM fd at all): most tools show
//! an AMD datacenter GPU with no processes. KFD publishes, without privilege:
//!
//! - `<sys>/class/kfd/kfd/topology/nodes/<n>/gpu_id` — 0 for a CPU node, else the GPU's id;
//!   `properties` next to it has `location_id` (`(bus << 8) | (device << 3) | function`) and
//!   `domain`, which place the node on a PCI slot and so on a DRM card;
//! - `<sys>/class/kfd/kfd/proc/<pid>/vram_<gpu_id>` — the process's VRAM on that GPU, bytes
//!   (kernel `kfd_process.c`). The directory is named by the process's PID in the root PID
//!   namespace.
//!
//! Merging with fdinfo never double counts: a process present in both is one row whose
//! `used_bytes` is the larger of the two figures (on kernels where KFD buffers are also in
//! the DRM file's VM the two overlap; where they are not, fdinfo misses them); a process only
//! KFD knows gets a row of its own. KFD nodes whose GPU has no DRM card here (a container
//! given `/dev/kfd` but not the card) are counted, never dropped silently.

use std::collections::BTreeMap;
use std::path::Path;

use super::parse::parse_sysfs_u64;
use super::sensors::parse_kfd_properties;
use crate::snapshot::{GpuProcessEntry, GpuProcessListing, GpuQuerySource};

/// One KFD GPU node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KfdNode {
    /// `gpu_id` (never 0: CPU nodes are left out).
    pub(crate) gpu_id: u32,
    /// Its PCI slot in NVML's form, when `properties` gives a location.
    pub(crate) slot: Option<String>,
}

/// The GPU nodes of the KFD topology; empty without KFD.
pub(crate) fn read_nodes(sys_root: &Path) -> Vec<KfdNode> {
    let nodes_dir = sys_root.join("class/kfd/kfd/topology/nodes");
    let Ok(entries) = std::fs::read_dir(&nodes_dir) else {
        return Vec::new();
    };
    let mut nodes: Vec<KfdNode> = entries
        .flatten()
        .filter_map(|entry| {
            let dir = entry.path();
            let gpu_id = std::fs::read_to_string(dir.join("gpu_id"))
                .ok()
                .and_then(|t| parse_sysfs_u64(&t))
                .and_then(|id| u32::try_from(id).ok())
                .filter(|&id| id != 0)?;
            let slot = std::fs::read_to_string(dir.join("properties"))
                .ok()
                .and_then(|t| parse_kfd_properties(&t).pci_slot());
            Some(KfdNode { gpu_id, slot })
        })
        .collect();
    nodes.sort_by_key(|n| n.gpu_id);
    nodes
}

/// Every KFD process's VRAM on GPU `gpu_id`, bytes, by PID (root namespace).
pub(crate) fn read_vram(sys_root: &Path, gpu_id: u32) -> BTreeMap<u32, u64> {
    let proc_dir = sys_root.join("class/kfd/kfd/proc");
    let Ok(entries) = std::fs::read_dir(&proc_dir) else {
        return BTreeMap::new();
    };
    let file = format!("vram_{gpu_id}");
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let text = std::fs::read_to_string(entry.path().join(&file)).ok()?;
            raw!("KFD pid {pid} {file}: {text:?}");
            Some((pid, parse_sysfs_u64(&text)?))
        })
        .collect()
}

/// What merging KFD into one device's listing did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KfdMerge {
    /// Processes both fdinfo and KFD report (one row each, the larger VRAM figure).
    pub(crate) both_sources: Vec<u32>,
    /// Processes only KFD reports (rows added).
    pub(crate) kfd_only: Vec<u32>,
    /// KFD GPU nodes with no DRM card visible here.
    pub(crate) nodes_without_drm: u32,
}

/// Merges KFD's per-process VRAM (`vram`, by PID) into `listing` of device `index`.
pub(crate) fn merge_into(
    listing: &mut GpuProcessListing,
    vram: &BTreeMap<u32, u64>,
    index: u32,
) -> KfdMerge {
    let mut merge = KfdMerge::default();
    for (&pid, &bytes) in vram {
        if let Some(row) = listing.rows.iter_mut().find(|r| r.pid == pid) {
            row.used_bytes = Some(row.used_bytes.map_or(bytes, |d| d.max(bytes)));
            merge.both_sources.push(pid);
        } else {
            let mut row = GpuProcessEntry::new(pid, index, GpuQuerySource::Drm);
            row.used_bytes = Some(bytes);
            listing.rows.push(row);
            merge.kfd_only.push(pid);
        }
    }
    listing.rows.sort_by_key(|r| r.pid);
    merge
}

/// The KFD GPU nodes none of `drm_keys` (DRM device keys, NVML-form PCI slots) matches.
pub(crate) fn nodes_without_drm(nodes: &[KfdNode], drm_keys: &[String]) -> u32 {
    let count = nodes
        .iter()
        .filter(|n| n.slot.as_ref().is_none_or(|s| !drm_keys.contains(s)))
        .count();
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// Sentences about a merge, for a listing's notes (empty when there is nothing to say).
#[cfg_attr(not(test), allow(dead_code))] // shown once the listing can carry notes
pub(crate) fn notes(merge: &KfdMerge) -> Vec<String> {
    let mut notes = Vec::new();
    let plural = |n: usize, one: &'static str, many: &'static str| if n == 1 { one } else { many };
    let both = merge.both_sources.len();
    if both > 0 {
        notes.push(format!(
            "{both} {} seen by both DRM fdinfo and ROCm/KFD, counted once with the larger \
             VRAM figure",
            plural(both, "process", "processes")
        ));
    }
    let only = merge.kfd_only.len();
    if only > 0 {
        notes.push(format!(
            "{only} ROCm compute {} known to KFD only (no DRM client)",
            plural(only, "process", "processes")
        ));
    }
    let hidden = usize::try_from(merge.nodes_without_drm).unwrap_or(usize::MAX);
    if hidden > 0 {
        notes.push(format!(
            "{hidden} ROCm/KFD {} no DRM card visible here (a container without /dev/dri \
             for {}); {} processes are not listed",
            plural(hidden, "GPU has", "GPUs have"),
            plural(hidden, "it", "them"),
            plural(hidden, "its", "their"),
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pid: u32, used: Option<u64>) -> GpuProcessEntry {
        let mut row = GpuProcessEntry::new(pid, 1, GpuQuerySource::Drm);
        row.used_bytes = used;
        row.system_bytes = Some(7);
        row
    }

    #[test]
    fn a_process_in_both_sources_is_one_row_with_the_larger_figure() {
        let mut listing = GpuProcessListing::from_rows(vec![row(300, Some(100)), row(400, None)]);
        let vram: BTreeMap<u32, u64> = [(300, 8 << 30), (400, 5), (900, 4 << 30)].into();
        let merge = merge_into(&mut listing, &vram, 1);
        assert_eq!(
            listing.rows.iter().map(|r| r.pid).collect::<Vec<_>>(),
            vec![300, 400, 900]
        );
        assert_eq!(listing.rows[0].used_bytes, Some(8 << 30));
        assert_eq!(listing.rows[0].system_bytes, Some(7), "fdinfo's GTT kept");
        assert_eq!(listing.rows[1].used_bytes, Some(5));
        assert_eq!(listing.rows[2].used_bytes, Some(4 << 30));
        assert_eq!(listing.rows[2].system_bytes, None);
        assert_eq!(listing.rows[2].source, GpuQuerySource::Drm);
        assert_eq!(merge.both_sources, vec![300, 400]);
        assert_eq!(merge.kfd_only, vec![900]);

        // A smaller KFD figure does not lower fdinfo's.
        let mut listing = GpuProcessListing::from_rows(vec![row(200, Some(5_476_352))]);
        merge_into(&mut listing, &[(200, 1 << 20)].into(), 3);
        assert_eq!(listing.rows[0].used_bytes, Some(5_476_352));
    }

    #[test]
    fn nodes_without_a_drm_card_are_counted_and_named_in_notes() {
        let nodes = [
            KfdNode {
                gpu_id: 1,
                slot: Some("00000000:03:00.0".to_owned()),
            },
            KfdNode {
                gpu_id: 2,
                slot: Some("00000000:45:00.0".to_owned()),
            },
            KfdNode {
                gpu_id: 3,
                slot: None,
            },
        ];
        let keys = ["00000000:03:00.0".to_owned()];
        assert_eq!(nodes_without_drm(&nodes, &keys), 2);
        let merge = KfdMerge {
            both_sources: vec![300],
            kfd_only: vec![900, 901],
            nodes_without_drm: 1,
        };
        let notes = notes(&merge);
        assert_eq!(notes.len(), 3);
        assert!(notes[0].starts_with("1 process seen by both"));
        assert!(notes[1].starts_with("2 ROCm compute processes"));
        assert!(notes[2].starts_with("1 ROCm/KFD GPU has no DRM card"));
        assert!(super::notes(&KfdMerge::default()).is_empty());
    }
}

//! AMD, Intel and other DRM GPUs through `Probe`, read from fixture trees that
//! `fixtures/drm/tree.rs` builds in temporary directories (sysfs links and files, `/proc/<pid>`
//! fd links and fdinfo texts from `fixtures/drm/fdinfo`). Every expected number is computed by
//! hand from those texts; the arithmetic is written next to it.
#![cfg(target_os = "linux")]

#[path = "../../../fixtures/drm/tree.rs"]
mod tree;

use std::path::PathBuf;

use hypomnesis::{DeviceField, GpuProcessEntry, GpuQuerySource, GpuVendor, HypomnesisError, Probe};
use tree::DrmTree;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// The root PID namespace's inode (`PROC_PID_INIT_INO`) and some container's.
const HOST_NS: u64 = 0xEFFF_FFFC;
const CONTAINER_NS: u64 = 4_026_532_999;

fn probe(tree: &DrmTree) -> Probe {
    Probe::builder()
        .proc_root(tree.proc())
        .sys_root(tree.sys())
        .use_nvml(false)
        .use_nvidia_smi(false)
        .build()
}

fn row(rows: &[GpuProcessEntry], pid: u32) -> &GpuProcessEntry {
    rows.iter()
        .find(|r| r.pid == pid)
        .unwrap_or_else(|| panic!("no row for pid {pid} in {rows:#?}"))
}

fn pids(rows: &[GpuProcessEntry]) -> Vec<u32> {
    rows.iter().map(|r| r.pid).collect()
}

// ---------------------------------------------------------------------------------------------
// Devices.

#[test]
fn gpus_are_numbered_in_pci_slot_order_and_non_gpus_are_skipped() {
    let tree = tree::standard();
    let probe = probe(&tree);
    let devices = probe.devices().unwrap();
    let slots: Vec<Option<&str>> = devices.iter().map(|d| d.pci_bus_id.as_deref()).collect();
    // nvidia (left to NVML), simpledrm (no render node) and the eDP-1 connector are skipped.
    assert_eq!(
        slots,
        vec![
            Some("00000000:00:02.0"),
            Some("00000000:03:00.0"),
            Some("00000000:08:00.0"),
            Some("00000000:C4:00.0"),
            None,
        ]
    );
    assert_eq!(
        devices.iter().map(|d| d.index).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    assert!(devices.iter().all(|d| d.source == GpuQuerySource::Drm));
    assert_eq!(probe.device_count().unwrap(), 5);
}

#[test]
fn amdgpu_discrete_figures_come_from_sysfs() {
    let tree = tree::standard();
    let dev = probe(&tree).device_info(1).unwrap();
    assert_eq!(dev.name.as_deref(), Some("AMD Radeon RX 7900 XTX"));
    assert_eq!(dev.vendor, GpuVendor::Amd);
    assert_eq!(dev.total_bytes, Some(25_753_026_560));
    assert_eq!(dev.used_bytes, Some(2 * GIB));
    // free = total - used = 25 753 026 560 - 2 147 483 648
    assert_eq!(dev.free_bytes, Some(23_605_542_912));
    assert_eq!(dev.reserved_bytes, None);
    assert!(
        dev.unavailable_reason(DeviceField::ReservedBytes)
            .unwrap()
            .contains("inside used")
    );
    assert_eq!(dev.system_total_bytes, Some(16 * GIB));
    assert_eq!(dev.system_used_bytes, Some(100 * MIB));
    assert!(!dev.unified_memory, "VRAM vendor known and 24 GiB of VRAM");
    assert_eq!(dev.uuid, None);
    assert!(dev.unavailable_reason(DeviceField::DriverVersion).is_some());
}

#[test]
fn an_amdgpu_apu_is_unified_and_its_gtt_is_reported() {
    let tree = tree::standard();
    let dev = probe(&tree).device_info(3).unwrap();
    assert_eq!(dev.vendor, GpuVendor::Amd);
    // No product_name: the PCI ids database when installed, else the ids.
    let name = dev.name.clone().unwrap();
    assert!(name.starts_with("AMD"), "{name}");
    assert_eq!(dev.total_bytes, Some(512 * MIB));
    assert_eq!(dev.used_bytes, Some(300 * MIB));
    assert_eq!(dev.free_bytes, Some(212 * MIB));
    assert_eq!(dev.system_total_bytes, Some(60 * GIB));
    assert_eq!(dev.system_used_bytes, Some(24 * GIB));
    // No mem_info_vram_vendor, VRAM ≤ 1 GiB and GTT larger: an APU.
    assert!(dev.unified_memory);
}

#[test]
fn intel_integrated_has_no_memory_figures_and_says_why() {
    let tree = tree::standard();
    let dev = probe(&tree).device_info(0).unwrap();
    assert_eq!(dev.vendor, GpuVendor::Intel);
    assert!(dev.name.as_deref().unwrap().starts_with("Intel"));
    assert!(dev.unified_memory, "Intel on PCI bus 0");
    assert_eq!(dev.total_bytes, None);
    assert!(
        dev.unavailable_reason(DeviceField::TotalBytes)
            .unwrap()
            .contains("integrated")
    );
    assert_eq!(dev.used_bytes, None);
    assert!(
        dev.unavailable_reason(DeviceField::UsedBytes)
            .unwrap()
            .contains("i915")
    );
    assert_eq!(dev.system_total_bytes, None);
    assert!(
        dev.unavailable_reason(DeviceField::SystemTotalBytes)
            .is_some()
    );
}

#[test]
fn xe_discrete_total_is_the_tiles_physical_vram() {
    let tree = tree::standard();
    let dev = probe(&tree).device_info(2).unwrap();
    assert_eq!(dev.vendor, GpuVendor::Intel);
    assert_eq!(dev.total_bytes, Some(12 * GIB));
    assert_eq!(dev.used_bytes, None);
    assert!(
        dev.unavailable_reason(DeviceField::UsedBytes)
            .unwrap()
            .contains("xe")
    );
    assert!(!dev.unified_memory);
}

#[test]
fn a_platform_gpu_is_named_by_driver_and_device() {
    let tree = tree::standard();
    let dev = probe(&tree).device_info(4).unwrap();
    assert_eq!(dev.name.as_deref(), Some("panfrost GPU fb000000.gpu"));
    assert_eq!(dev.vendor, GpuVendor::Other);
    assert_eq!(dev.pci_bus_id, None);
    assert!(dev.unified_memory);
    assert!(
        dev.unavailable_reason(DeviceField::TotalBytes)
            .unwrap()
            .contains("host RAM")
    );
}

#[test]
fn without_any_gpu_the_error_names_the_drm_backend() {
    let tree = DrmTree::new();
    std::fs::remove_dir_all(tree.sys().join("class/drm")).unwrap();
    match probe(&tree).device_count() {
        Err(HypomnesisError::NoGpuSource { attempts }) => {
            let drm = attempts
                .iter()
                .find(|a| a.backend == GpuQuerySource::Drm)
                .unwrap_or_else(|| panic!("no DRM attempt in {attempts:?}"));
            assert!(drm.reason.contains("class/drm"), "{}", drm.reason);
        }
        other => panic!("expected NoGpuSource, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Processes.

#[test]
fn i915_client_through_two_dupd_fds_counts_once_in_system_memory() {
    let tree = tree::standard();
    let rows = probe(&tree).processes(0).unwrap();
    assert_eq!(pids(&rows), vec![100]);
    let xorg = row(&rows, 100);
    assert_eq!(xorg.name.as_deref(), Some("Xorg"));
    assert_eq!(xorg.command.as_deref(), Some("/usr/bin/Xorg --fixture"));
    assert_eq!(xorg.user.as_deref(), Some("root"));
    assert_eq!(
        xorg.used_bytes, None,
        "an integrated GPU has no device memory"
    );
    // drm-resident-system0: 6044 KiB, once although fds 5 and 6 both show client 39.
    assert_eq!(xorg.system_bytes, Some(6044 * KIB));
    assert_eq!(xorg.shared_bytes, Some(0));
    assert_eq!(xorg.device_index, 0);
    assert_eq!(xorg.source, GpuQuerySource::Drm);
}

#[test]
fn amdgpu_clients_sum_without_the_deprecated_alias_and_across_unit_forms() {
    let tree = tree::standard();
    let rows = probe(&tree).processes(1).unwrap();
    // 700 (fdinfo gone), 800 (unreadable), 1000 (no DRM fd) have no rows.
    assert_eq!(pids(&rows), vec![300, 400]);
    let game = row(&rows, 300);
    // client 217: drm-memory-vram 2068 KiB (alias only, so it counts);
    // client 218: drm-resident-vram 100 MiB (its drm-memory-vram 102400 KiB is not added).
    assert_eq!(game.used_bytes, Some(2068 * KIB + 100 * MIB));
    // 217: gtt 8192 KiB + cpu 0; 218: gtt 2 MiB + cpu 0 (doorbell is not memory).
    assert_eq!(game.system_bytes, Some(8192 * KIB + 2 * MIB));
    // 217 prints no drm-shared-*; 218: vram 4 MiB + gtt 0 + cpu 0.
    assert_eq!(game.shared_bytes, Some(4 * MIB));

    let old = row(&rows, 400);
    // amdgpu 5.14: `vram mem: 145620 kB` (kB = KiB), client = pasid 32770 on fds 3 and 4.
    assert_eq!(old.used_bytes, Some(145_620 * KIB));
    assert_eq!(old.system_bytes, Some(11_656 * KIB));
    assert_eq!(old.shared_bytes, None);
}

#[test]
fn xe_reports_vram_gtt_and_shared_separately() {
    let tree = tree::standard();
    let rows = probe(&tree).processes(2).unwrap();
    assert_eq!(pids(&rows), vec![500]);
    let app = row(&rows, 500);
    assert_eq!(app.used_bytes, Some(23_992 * KIB));
    // gtt 192 KiB + system 0.
    assert_eq!(app.system_bytes, Some(192 * KIB));
    assert_eq!(app.shared_bytes, Some(16 * MIB));
}

#[test]
fn an_apus_model_shows_up_in_system_memory_and_a_passed_client_counts_once() {
    let tree = tree::standard();
    let listing = probe(&tree).gpu_process_listing(3).unwrap();
    // 250 holds the same client (id 10 on 0000:c4:00.0) as 200: both are listed, each
    // showing the client, and it is counted once, for 200 (no start times in the fixture:
    // the lower PID).
    assert_eq!(pids(&listing.rows), vec![200, 250]);
    for pid in [200, 250] {
        let holder = row(&listing.rows, pid);
        assert_eq!(holder.used_bytes, Some(5348 * KIB), "pid {pid}");
        assert_eq!(holder.system_bytes, Some(25_258_000 * KIB), "pid {pid}");
        assert_eq!(holder.shared_clients.len(), 1, "pid {pid}");
        assert_eq!(holder.shared_clients[0].holders, vec![200, 250]);
        assert_eq!(holder.shared_clients[0].counted_for, 200);
        assert_eq!(holder.shared_clients[0].client_id, Some(10));
    }
    let llama = row(&listing.rows, 200);
    assert_eq!(llama.name.as_deref(), Some("llama-server"));
    assert_eq!(llama.shared_bytes, Some(MIB));
    assert_eq!(llama.shared_with(), vec![250]);
    assert_eq!(row(&listing.rows, 250).shared_with(), vec![200]);
    // Counted once: 200 counts it, 250 adds nothing.
    assert_eq!(llama.counted_system_bytes(), Some(25_258_000 * KIB));
    assert_eq!(row(&listing.rows, 250).counted_system_bytes(), Some(0));
    assert_eq!(row(&listing.rows, 250).counted_used_bytes(), Some(0));
    assert_eq!(listing.shared_clients, 1);
    assert!(
        listing
            .notes()
            .iter()
            .any(|n| n.contains("1 GPU client shared between processes: every holder is listed")),
        "{:?}",
        listing.notes()
    );
}

#[test]
fn a_client_inherited_after_pid_wraparound_is_counted_for_the_parent_that_opened_it() {
    // The parent (pid 30000) opened the client and forked; PIDs had wrapped, so the child got
    // pid 300. The child started later (stat field 22), so the client counts for the parent.
    let tree = DrmTree::new();
    tree.pci_card(&tree::standard_amdgpu());
    let text = tree::fdinfo("amdgpu-6.13-current");
    let stat = |pid: u32, ppid: u32, start: u64| {
        format!(
            "{pid} (worker) S {ppid} 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 {start} 1000 10\n"
        )
    };
    for (pid, ppid, start) in [(30000, 1, 5_000), (300, 30000, 9_000)] {
        let dir = tree.process(pid, "worker", None);
        std::fs::write(dir.join("stat"), stat(pid, ppid, start)).unwrap();
        tree.fd(pid, 5, "/dev/dri/renderD129", Some(&text));
    }
    // The caller is the child.
    tree.caller(300, HOST_NS);
    let probe = probe(&tree);
    let listing = probe.gpu_process_listing(0).unwrap();
    assert_eq!(
        pids(&listing.rows),
        vec![300, 30000],
        "every holder has a row"
    );
    let child = row(&listing.rows, 300);
    let parent = row(&listing.rows, 30000);
    assert_eq!(
        child.used_bytes,
        Some(100 * MIB),
        "the child holds the client too"
    );
    assert_eq!(child.shared_clients[0].counted_for, 30000);
    assert_eq!(child.shared_with(), vec![30000]);
    assert_eq!(child.counted_used_bytes(), Some(0));
    assert_eq!(parent.counted_used_bytes(), Some(100 * MIB));
    // The library's own-process figure for the child agrees with its row.
    assert_eq!(
        probe.process_gpu_info(0).unwrap().process_bytes,
        Some(100 * MIB)
    );
}

#[test]
fn a_drm_fd_whose_driver_prints_no_fdinfo_keys_lists_its_holder_with_unknown_memory() {
    // nouveau (and drivers on kernels before DRM fdinfo) print only the generic fd lines.
    let tree = DrmTree::new();
    tree.pci_card(&tree::standard_amdgpu());
    tree.process(640, "glxgears", None);
    tree.fd(
        640,
        4,
        "/dev/dri/renderD129",
        Some("pos:\t0\nflags:\t02100002\nmnt_id:\t25\nino:\t1031\n"),
    );
    let listing = probe(&tree).gpu_process_listing(0).unwrap();
    assert_eq!(pids(&listing.rows), vec![640]);
    let holder = row(&listing.rows, 640);
    assert_eq!(holder.name.as_deref(), Some("glxgears"));
    assert_eq!(holder.used_bytes, None);
    assert_eq!(holder.system_bytes, None);
    assert_eq!(listing.clients_without_figures, 1);
    let notes = listing.findings();
    let note = notes
        .iter()
        .find(|n| n.kind == hypomnesis::ListingNoteKind::NoMemoryFigures)
        .unwrap_or_else(|| panic!("{notes:?}"));
    assert_eq!(note.pids, vec![640]);
    assert!(note.message.contains("no drm- keys"), "{}", note.message);
}

#[test]
fn a_large_scan_split_across_threads_counts_every_client_once() {
    // 600 processes: more than a scan reads (256) or names (128) on one thread, so on a
    // machine with two or more cores the processes are split between threads and their
    // findings merged.
    // Each holds a socket and a client of its own (id = pid); the first and the last
    // processes also hold one client between them (id 9999), which lands in different
    // threads' batches. Every client's text says 100 MiB resident VRAM.
    let tree = DrmTree::new();
    tree.pci_card(&tree::standard_amdgpu());
    let text = tree::fdinfo("amdgpu-6.13-current");
    let client = |id: u32| text.replace("drm-client-id:\t218", &format!("drm-client-id:\t{id}"));
    for pid in 1000..1600 {
        tree.process(pid, &format!("worker-{pid}"), None);
        tree.fd(pid, 0, "socket:[40112]", Some("pos:\t0\n"));
        tree.fd(pid, 1, "/dev/dri/renderD129", Some(&client(pid)));
    }
    for pid in [1000, 1599] {
        tree.fd(pid, 2, "/dev/dri/renderD129", Some(&client(9999)));
    }
    let listing = probe(&tree).gpu_process_listing(0).unwrap();
    assert_eq!(listing.rows.len(), 600);
    // Both holders show the shared client; it counts for the lower PID (no start times in
    // the fixture), so the total has it once.
    assert_eq!(row(&listing.rows, 1000).used_bytes, Some(200 * MIB));
    assert_eq!(row(&listing.rows, 1599).used_bytes, Some(200 * MIB));
    assert_eq!(
        row(&listing.rows, 1599).counted_used_bytes(),
        Some(100 * MIB)
    );
    assert_eq!(row(&listing.rows, 1300).used_bytes, Some(100 * MIB));
    let total: u64 = listing
        .rows
        .iter()
        .filter_map(GpuProcessEntry::counted_used_bytes)
        .sum();
    assert_eq!(total, 601 * 100 * MIB);
    assert_eq!(listing.shared_clients, 1);
    // 600 rows are named by several threads: each row gets its own process's name.
    for row in &listing.rows {
        assert_eq!(
            row.name.as_deref(),
            Some(format!("worker-{}", row.pid).as_str())
        );
    }
}

#[test]
fn a_client_without_drm_pdev_is_placed_by_its_render_node() {
    let tree = tree::standard();
    let rows = probe(&tree).processes(4).unwrap();
    assert_eq!(pids(&rows), vec![600]);
    let glmark = row(&rows, 600);
    assert_eq!(glmark.used_bytes, None);
    assert_eq!(glmark.system_bytes, Some(36_496 * KIB));
    assert_eq!(glmark.shared_bytes, Some(0));
}

/// A DRM node under an unfamiliar `/dev` name (a udev alias) is recognised by `stat`: a
/// character device with major 226, whose `<sys>/dev/char/226:<minor>` link names its node.
/// `/dev/..` in the link target lets the fixture point `stat` at a node it made itself.
#[test]
fn a_drm_node_under_another_name_is_found_by_its_device_number() {
    let tree = DrmTree::new();
    let card = tree.pci_card(&tree::standard_amdgpu());
    let root = tree.proc().parent().unwrap().to_path_buf();
    let char_dir = tree.sys().join("dev/char");
    std::fs::create_dir_all(&char_dir).unwrap();
    std::os::unix::fs::symlink(card.join("drm/renderD129"), char_dir.join("226:129")).unwrap();
    let node = root.join("gpu-render");
    let c_node = std::ffi::CString::new(node.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; makedev/mknod have no other preconditions.
    let made = unsafe {
        libc::mknod(
            c_node.as_ptr(),
            libc::S_IFCHR | 0o600,
            libc::makedev(226, 129),
        )
    };
    assert_eq!(
        made,
        0,
        "mknod {}: {} — this test needs CAP_MKNOD (run the tests as root, as CI does)",
        node.display(),
        std::io::Error::last_os_error()
    );
    // Without `drm-pdev`, only the node says which device the client is on.
    let text = tree::fdinfo("amdgpu-6.13-current")
        .lines()
        .filter(|l| !l.starts_with("drm-pdev"))
        .collect::<Vec<_>>()
        .join("\n");
    tree.process(900, "aliased", None);
    tree.fd(900, 3, &format!("/dev/..{}", node.display()), Some(&text));
    // `/dev/null` under a path the name filter does not know: stat says major 1, not DRM, so
    // its fdinfo (another client, had it been read) is not.
    let other = text.replace("drm-client-id:\t218", "drm-client-id:\t999");
    assert_ne!(other, text);
    tree.fd(900, 4, "/dev/../dev/null", Some(&other));
    let rows = probe(&tree).processes(0).unwrap();
    assert_eq!(pids(&rows), vec![900]);
    // The fixture's one client: drm-resident-vram 100 MiB.
    assert_eq!(row(&rows, 900).used_bytes, Some(100 * MIB));
}

#[test]
fn unreadable_processes_and_malformed_lines_are_counted_not_hidden() {
    let tree = tree::standard();
    let listing = probe(&tree).gpu_process_listing(1).unwrap();
    // 800's fdinfo cannot be read; 700 and 710 are gone, which is not unreadable.
    assert_eq!(listing.unreadable_pids, vec![800]);
    // "drm-resident-cpu: lots" and "garbage line" in 300's second client.
    assert_eq!(listing.malformed_lines, 2);
    assert_eq!(listing.hidden_by_pid_namespace, 0);
    let notes = listing.notes();
    // Root is told that re-running as root would not help.
    let expected = if listing.running_as_root {
        "1 process unreadable even as root (hidepid or a security module refuses): its GPU memory is not shown"
    } else {
        "1 process unreadable — re-run as root to see its GPU memory"
    };
    assert!(notes.iter().any(|n| n == expected), "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("2 malformed fdinfo lines")));
    // The rows are those of `processes`.
    assert_eq!(listing.rows, probe(&tree).processes(1).unwrap());
}

#[test]
fn another_users_fd_directory_is_reported_unreadable() {
    // As root (CI), the body runs as `nobody` in a child process: root would read the
    // mode-000 directory anyway, and the `EACCES` from opening `<pid>/fd` would never happen.
    test_support::as_unprivileged_user("another_users_fd_directory_is_reported_unreadable", || {
        use std::os::unix::fs::PermissionsExt;
        let tree = tree::standard();
        let fd_dir = tree.proc().join("500/fd");
        std::fs::set_permissions(&fd_dir, std::fs::Permissions::from_mode(0o000)).unwrap();
        assert_eq!(
            std::fs::read_dir(&fd_dir).map(|_| ()).map_err(|e| e.kind()),
            Err(std::io::ErrorKind::PermissionDenied),
            "the fd directory must really be unreadable to this user"
        );
        let listing = probe(&tree).gpu_process_listing(2).unwrap();
        std::fs::set_permissions(&fd_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(listing.unreadable_pids, vec![500, 800]);
        assert!(listing.rows.is_empty(), "its memory is unknown, not 0");
        let notes = listing.notes();
        assert!(
            notes.iter().any(|n| n.contains("2 processes unreadable")),
            "{notes:?}"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// The calling process's own GPU memory.

/// A tree whose `<proc>/self` is `pid` (the calling process, as the probe sees it).
fn standard_as(pid: u32) -> DrmTree {
    let tree = tree::standard();
    tree.caller(pid, HOST_NS);
    tree
}

#[test]
fn own_memory_on_a_discrete_gpu_is_its_vram() {
    let tree = standard_as(300);
    let own = probe(&tree).process_gpu_info(1).unwrap();
    assert_eq!(own.process_bytes, Some(2068 * KIB + 100 * MIB));
    assert_eq!(own.source, GpuQuerySource::Drm);
    assert_eq!(own.device_index, 1);
}

#[test]
fn own_memory_on_an_apu_includes_gtt() {
    let tree = standard_as(250);
    // 250 holds llama-server's passed client: the memory is held by both, so it counts here.
    let own = probe(&tree).process_gpu_info(3).unwrap();
    assert_eq!(own.process_bytes, Some(5348 * KIB + 25_258_000 * KIB));
    assert_eq!(own.device_index, 3);
}

#[test]
fn own_memory_without_a_client_on_the_device_is_zero() {
    let tree = standard_as(300);
    let own = probe(&tree).process_gpu_info(2).unwrap();
    assert_eq!(own.process_bytes, Some(0));
}

#[test]
fn own_memory_is_an_error_when_the_fds_are_unreadable() {
    let tree = standard_as(800);
    assert!(matches!(
        probe(&tree).process_gpu_info(1),
        Err(HypomnesisError::PermissionDenied { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// PID namespaces.

#[test]
fn drm_rows_get_the_containers_pids_when_a_host_proc_is_read_from_a_container() {
    let tree = tree::standard();
    // The caller is pid 1 of its container, reading the host's /proc (host pid 9000).
    tree.process(9000, "hmn", Some(&[9000, 1]));
    tree.caller(9000, CONTAINER_NS);
    // Process 300 runs in the caller's container as pid 35; 400 is a host process.
    tree.process(300, "game", Some(&[300, 35]));
    let listing = probe(&tree).gpu_process_listing(1).unwrap();
    assert_eq!(pids(&listing.rows), vec![35, 400]);
    assert_eq!(row(&listing.rows, 35).name.as_deref(), Some("game"));
    assert_eq!(
        row(&listing.rows, 35).used_bytes,
        Some(2068 * KIB + 100 * MIB)
    );
    assert_eq!(row(&listing.rows, 400).name.as_deref(), Some("oldgame"));
    assert_eq!(listing.hidden_by_pid_namespace, 1);
    assert!(
        listing
            .notes()
            .iter()
            .any(|n| n.contains("1 process runs outside this PID namespace"))
    );
}

/// A container reading the host's `/proc`: the row of game (host pid 300) is pid 35 in the
/// caller's namespace. Its RSS and cgroup come from `<proc>/300`, not from `<proc>/35`, which
/// is another process of the host.
#[test]
fn a_frames_process_details_are_read_by_the_procfs_pid_not_the_rows_pid() {
    let tree = tree::standard();
    tree.process(9000, "hmn", Some(&[9000, 1]));
    tree.caller(9000, CONTAINER_NS);
    let game = tree.process(300, "game", Some(&[300, 35]));
    std::fs::write(game.join("cgroup"), "0::/docker/game\n").unwrap();
    let other = tree.process(35, "other", None);
    std::fs::write(
        other.join("status"),
        "Name:\tother\nTgid:\t35\nPid:\t35\nNSpid:\t35\nVmRSS:\t  999999 kB\n",
    )
    .unwrap();
    std::fs::write(other.join("cgroup"), "0::/system.slice/other.service\n").unwrap();
    let frame = probe(&tree).frame(hypomnesis::FrameRequest::ALL);
    let rows = frame.devices[1].rows();
    let game = row(rows, 35);
    assert_eq!(game.name.as_deref(), Some("game"));
    // `tree.process` writes `VmRSS: 1024 kB`.
    assert_eq!(game.rss_bytes, Some(1024 * KIB));
    assert_eq!(game.cgroup.as_deref(), Some("/docker/game"));
}

#[test]
fn process_details_are_read_only_when_the_frame_asks_for_them() {
    let tree = tree::standard();
    let request = hypomnesis::FrameRequest::ALL.with_processes(true, false);
    let frame = probe(&tree).frame(request);
    let rows = frame.devices[1].rows();
    assert_eq!(row(rows, 300).name.as_deref(), Some("game"));
    assert!(rows.iter().all(|r| r.rss_bytes.is_none()));
    let frame = probe(&tree).frame(hypomnesis::FrameRequest::ALL);
    assert_eq!(
        row(frame.devices[1].rows(), 300).rss_bytes,
        Some(1024 * KIB)
    );
}

/// NVML's state is process-wide: each NVML case runs in a process of its own with the
/// double loaded with the `one_gpu` scenario.
fn with_nvml_double(test: &str, body: impl FnOnce(PathBuf)) {
    test_support::with_nvml_double(test, "one_gpu", |lib, _scenario| body(lib));
}

/// The `one_gpu` scenario: an H100 at `00000000:00:09.0` with pids 4011345 (gpu_burn) and
/// 4012001 (python3). The sysfs tree also shows that card, under nouveau, and an amdgpu card.
fn nvml_tree() -> DrmTree {
    let tree = DrmTree::new();
    tree.pci_card(&tree::PciCard {
        card: 0,
        render: Some(128),
        slot: "0000:00:09.0",
        driver: "nouveau",
        vendor: 0x10de,
        device: 0x2330,
        files: &[],
    });
    tree.pci_card(&tree::standard_amdgpu());
    tree
}

fn nvml_probe(tree: &DrmTree, lib: PathBuf) -> Probe {
    Probe::builder()
        .nvml_lib(lib)
        .use_nvidia_smi(false)
        .proc_root(tree.proc())
        .sys_root(tree.sys())
        .build()
}

#[test]
fn nvml_lists_the_nvidia_card_once_and_drm_devices_follow() {
    with_nvml_double(
        "nvml_lists_the_nvidia_card_once_and_drm_devices_follow",
        |lib| {
            let tree = nvml_tree();
            let probe = nvml_probe(&tree, lib);
            let devices = probe.devices().unwrap();
            let sources: Vec<GpuQuerySource> = devices.iter().map(|d| d.source).collect();
            assert_eq!(sources, vec![GpuQuerySource::Nvml, GpuQuerySource::Drm]);
            assert_eq!(devices[1].index, 1);
            assert_eq!(devices[1].pci_bus_id.as_deref(), Some("00000000:03:00.0"));
            assert_eq!(probe.device_count().unwrap(), 2);
        },
    );
}

#[test]
fn nvml_host_pids_become_the_containers_pids_through_nspid() {
    with_nvml_double(
        "nvml_host_pids_become_the_containers_pids_through_nspid",
        |lib| {
            let tree = nvml_tree();
            // A host /proc read from a container whose pid 1 is host pid 9000.
            tree.process(9000, "hmn", Some(&[9000, 1]));
            tree.caller(9000, CONTAINER_NS);
            tree.process(4_011_345, "gpu_burn", Some(&[4_011_345, 12]));
            tree.process(4_012_001, "python3", Some(&[4_012_001]));
            let listing = nvml_probe(&tree, lib).gpu_process_listing(0).unwrap();
            assert_eq!(pids(&listing.rows), vec![12, 4_012_001]);
            let burn = row(&listing.rows, 12);
            assert_eq!(burn.name.as_deref(), Some("gpu_burn"));
            assert_eq!(burn.used_bytes, Some(16_452_157_440));
            // python3 runs on the host: named through the host /proc, shown with its host
            // pid, counted.
            assert_eq!(
                row(&listing.rows, 4_012_001).name.as_deref(),
                Some("python3")
            );
            assert_eq!(listing.hidden_by_pid_namespace, 1);
        },
    );
}

#[test]
fn nvml_host_pids_are_not_matched_against_a_containers_own_proc() {
    with_nvml_double(
        "nvml_host_pids_are_not_matched_against_a_containers_own_proc",
        |lib| {
            let tree = nvml_tree();
            // The container's own /proc: the caller is pid 35 there, and by chance a local
            // process has the number NVML reports for python3 on the host.
            tree.process(35, "hmn", None);
            tree.caller(35, CONTAINER_NS);
            tree.process(4_012_001, "bash", None);
            let listing = nvml_probe(&tree, lib).gpu_process_listing(0).unwrap();
            assert_eq!(pids(&listing.rows), vec![4_011_345, 4_012_001]);
            assert!(listing.rows.iter().all(|r| r.name.is_none()), "{listing:?}");
            assert_eq!(listing.hidden_by_pid_namespace, 2);
            let notes = listing.notes();
            assert!(notes.iter().any(|n| n.contains("--pid=host")), "{notes:?}");
        },
    );
}

#[test]
fn on_the_host_nvml_pids_are_shown_as_they_are() {
    with_nvml_double("on_the_host_nvml_pids_are_shown_as_they_are", |lib| {
        let tree = nvml_tree();
        tree.process(77, "hmn", None);
        tree.caller(77, HOST_NS);
        tree.process(4_011_345, "gpu_burn", None);
        let listing = nvml_probe(&tree, lib).gpu_process_listing(0).unwrap();
        assert_eq!(pids(&listing.rows), vec![4_011_345, 4_012_001]);
        assert_eq!(
            row(&listing.rows, 4_011_345).name.as_deref(),
            Some("gpu_burn")
        );
        assert_eq!(listing.hidden_by_pid_namespace, 0);
    });
}

#[test]
fn a_card_bound_to_nvidia_is_shown_with_unknown_memory_when_nvidias_tools_are_unusable() {
    let tree = tree::standard();
    let probe = Probe::builder()
        .proc_root(tree.proc())
        .sys_root(tree.sys())
        .nvml_lib("/nonexistent/libnvidia-ml.so.1")
        .nvidia_smi("/nonexistent/nvidia-smi")
        .build();
    let devices = probe.devices().unwrap();
    assert_eq!(devices.len(), 6, "the DRM GPUs, then the nvidia-bound card");
    let card = &devices[5];
    assert_eq!(card.index, 5);
    assert_eq!(card.vendor, GpuVendor::Nvidia);
    assert_eq!(card.total_bytes, None);
    assert_eq!(card.used_bytes, None);
    let why = card.unavailable_reason(DeviceField::TotalBytes).unwrap();
    assert!(
        why.starts_with("bound to the nvidia driver") && why.contains("/nonexistent"),
        "{why}"
    );
    // Its processes and the own process's memory are errors, never an empty list or 0.
    let listing = probe.gpu_process_listing(5).unwrap_err().to_string();
    assert!(listing.contains("bound to the nvidia driver"), "{listing}");
    assert!(probe.process_gpu_info(5).is_err());
    // The caller switching NVIDIA's backends off leaves the card out, as before.
    assert_eq!(self::probe(&tree).devices().unwrap().len(), 5);
}

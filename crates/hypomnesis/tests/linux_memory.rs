//! Linux process and host memory, read through `Probe` from the fixture trees under
//! `fixtures/proc` and `fixtures/sys` (see their READMEs), from trees built in temporary
//! directories, and from this machine's real `/proc` and `/sys`.
#![cfg(target_os = "linux")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};

use hypomnesis::{CgroupVersion, HypomnesisError, MemoryDetail, Probe};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

// ---------------------------------------------------------------------------------------------
// Allocation counting, to prove that `process_rss` does not allocate.

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

struct CountingAllocator;

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
// thread-local `Cell` that neither allocates nor can be borrowed twice.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations_on_this_thread() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// ---------------------------------------------------------------------------------------------
// Fixture helpers.

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn fixture_proc() -> PathBuf {
    fixtures().join("proc")
}

fn fixture_sys(version: &str) -> PathBuf {
    fixtures().join("sys").join(version)
}

fn probe(proc_root: &Path, sys_root: &Path) -> Probe {
    Probe::builder()
        .proc_root(proc_root)
        .sys_root(sys_root)
        .use_nvml(false)
        .use_nvidia_smi(false)
        .build()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of `fixtures/proc` in which this process's `/proc/self/cgroup` reads `cgroup`.
fn proc_in_cgroup(cgroup: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture_proc(), dir.path());
    std::fs::write(dir.path().join("self/cgroup"), cgroup).unwrap();
    dir
}

/// Writes `files` (path relative to `root`, contents) under `root`.
fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (path, contents) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf takes an integer name and touches no caller memory.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Host memory from fixtures.

#[test]
fn meminfo_figures_are_reported_in_bytes() {
    let host = probe(&fixture_proc(), &fixture_sys("v1"))
        .host_memory()
        .unwrap();
    assert_eq!(host.total_bytes, 24_684_096 * KIB);
    assert_eq!(host.available_bytes, Some(24_335_412 * KIB));
    assert_eq!(host.swap_total_bytes, Some(0));
    assert_eq!(host.swap_free_bytes, Some(0));
}

#[test]
fn memory_pressure_is_read_from_proc_pressure_memory() {
    let host = probe(&fixture_proc(), &fixture_sys("v1"))
        .host_memory()
        .unwrap();
    let pressure = host.pressure.unwrap();
    assert_eq!(pressure.some_avg10, 2.04);
    assert_eq!(pressure.some_avg60, 0.71);
    assert_eq!(pressure.some_avg300, 0.16);
    assert_eq!(pressure.some_total_us, 1_843_270);
    assert_eq!(pressure.full_avg10, Some(1.12));
    assert_eq!(pressure.full_total_us, Some(1_017_355));
}

#[test]
fn a_kernel_without_psi_gives_no_pressure_but_still_answers() {
    let proc_root = proc_in_cgroup("0::/jobs.slice/small.scope\n");
    std::fs::remove_dir_all(proc_root.path().join("pressure")).unwrap();
    let host = probe(proc_root.path(), &fixture_sys("v2"))
        .host_memory()
        .unwrap();
    assert_eq!(host.pressure, None);
    assert_eq!(host.total_bytes, 24_684_096 * KIB);
}

#[test]
fn malformed_meminfo_is_an_error_naming_the_file_and_line() {
    let proc_root = proc_in_cgroup("0::/\n");
    std::fs::write(
        proc_root.path().join("meminfo"),
        "MemTotal:       24684096 kB\nMemAvailable:   plenty kB\n",
    )
    .unwrap();
    let err = probe(proc_root.path(), &fixture_sys("v2"))
        .host_memory()
        .unwrap_err();
    match &err {
        HypomnesisError::Parse {
            what,
            source_path,
            detail,
        } => {
            assert_eq!(*what, "meminfo");
            assert_eq!(source_path, &proc_root.path().join("meminfo"));
            assert_eq!(detail, "line 2 `MemAvailable: plenty kB`: not a number");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    assert!(err.to_string().contains("meminfo"), "{err}");
}

#[test]
fn missing_meminfo_is_an_io_error_naming_the_file() {
    let proc_root = proc_in_cgroup("0::/\n");
    std::fs::remove_file(proc_root.path().join("meminfo")).unwrap();
    let err = probe(proc_root.path(), &fixture_sys("v2"))
        .host_memory()
        .unwrap_err();
    match err {
        HypomnesisError::Io { path, errno, .. } => {
            assert_eq!(path, proc_root.path().join("meminfo"));
            assert_eq!(errno, Some(libc::ENOENT));
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// cgroup v2.

#[test]
fn v2_cgroup_with_its_own_limit_reports_limit_usage_and_peak() {
    let proc_root = proc_in_cgroup("0::/jobs.slice/small.scope\n");
    let cgroup = probe(proc_root.path(), &fixture_sys("v2"))
        .host_memory()
        .unwrap()
        .cgroup
        .unwrap();
    assert_eq!(cgroup.version, CgroupVersion::V2);
    assert_eq!(cgroup.path, "/jobs.slice/small.scope");
    assert_eq!(cgroup.limit_bytes, Some(2 * GIB));
    assert_eq!(cgroup.usage_bytes, Some(GIB));
    assert_eq!(cgroup.peak_bytes, Some(1536 * MIB));
}

#[test]
fn unlimited_v2_cgroup_takes_the_ancestor_limit() {
    let proc_root = proc_in_cgroup("0::/jobs.slice/train.scope\n");
    let cgroup = probe(proc_root.path(), &fixture_sys("v2"))
        .host_memory()
        .unwrap()
        .cgroup
        .unwrap();
    assert_eq!(cgroup.limit_bytes, Some(8 * GIB));
    assert_eq!(cgroup.usage_bytes, Some(2 * GIB));
    assert_eq!(cgroup.peak_bytes, Some(5 * GIB));
}

#[test]
fn v2_cgroup_unlimited_up_to_the_root_has_no_limit_and_old_kernels_no_peak() {
    let proc_root = proc_in_cgroup("0::/user.slice/session-2.scope\n");
    let cgroup = probe(proc_root.path(), &fixture_sys("v2"))
        .host_memory()
        .unwrap()
        .cgroup
        .unwrap();
    assert_eq!(cgroup.version, CgroupVersion::V2);
    assert_eq!(cgroup.limit_bytes, None);
    assert_eq!(cgroup.usage_bytes, Some(100 * MIB));
    assert_eq!(cgroup.peak_bytes, None);
}

#[test]
fn v2_root_cgroup_is_reported_as_no_cgroup() {
    let proc_root = proc_in_cgroup("0::/\n");
    let host = probe(proc_root.path(), &fixture_sys("v2"))
        .host_memory()
        .unwrap();
    assert_eq!(host.cgroup, None);
}

#[test]
fn a_namespaced_v2_cgroup_missing_from_sys_uses_the_mounted_root() {
    // A container with a private cgroup namespace mounts its own cgroup as /sys/fs/cgroup;
    // /proc/self/cgroup may still name a path that does not exist there.
    let sys_root = tempfile::tempdir().unwrap();
    write_tree(
        sys_root.path(),
        &[
            ("fs/cgroup/cgroup.controllers", "cpu io memory pids\n"),
            ("fs/cgroup/memory.max", "1073741824\n"),
            ("fs/cgroup/memory.current", "268435456\n"),
            ("fs/cgroup/memory.peak", "536870912\n"),
        ],
    );
    for line in [
        "0::/kubepods/pod1234/c0ffee\n",
        "0::/\n",
        "0::/../../outside\n",
    ] {
        let proc_root = proc_in_cgroup(line);
        let cgroup = probe(proc_root.path(), sys_root.path())
            .host_memory()
            .unwrap()
            .cgroup
            .unwrap_or_else(|| panic!("no cgroup for {line:?}"));
        assert_eq!(cgroup.version, CgroupVersion::V2, "{line:?}");
        assert_eq!(cgroup.limit_bytes, Some(GIB), "{line:?}");
        assert_eq!(cgroup.usage_bytes, Some(256 * MIB), "{line:?}");
        assert_eq!(cgroup.peak_bytes, Some(512 * MIB), "{line:?}");
    }
}

#[test]
fn v2_without_the_memory_controller_and_no_v1_gives_no_cgroup() {
    let sys_root = tempfile::tempdir().unwrap();
    write_tree(
        sys_root.path(),
        &[
            ("fs/cgroup/cgroup.controllers", "cpu io pids\n"),
            ("fs/cgroup/jobs/memory.max", "1073741824\n"),
        ],
    );
    let proc_root = proc_in_cgroup("0::/jobs\n");
    let host = probe(proc_root.path(), sys_root.path())
        .host_memory()
        .unwrap();
    assert_eq!(host.cgroup, None);
}

#[test]
fn no_cgroup_filesystem_gives_no_cgroup() {
    let sys_root = tempfile::tempdir().unwrap();
    let host = probe(&fixture_proc(), sys_root.path())
        .host_memory()
        .unwrap();
    assert_eq!(host.cgroup, None);
}

// ---------------------------------------------------------------------------------------------
// cgroup v1 (hybrid hierarchy).

#[test]
fn v1_cgroup_with_a_limit_reports_it() {
    let proc_root = proc_in_cgroup("4:memory:/process_api/limited\n1:cpu:/\n0::/\n");
    let cgroup = probe(proc_root.path(), &fixture_sys("v1"))
        .host_memory()
        .unwrap()
        .cgroup
        .unwrap();
    assert_eq!(cgroup.version, CgroupVersion::V1);
    assert_eq!(cgroup.path, "/process_api/limited");
    assert_eq!(cgroup.limit_bytes, Some(4 * GIB));
    assert_eq!(cgroup.usage_bytes, Some(1792 * MIB));
    assert_eq!(cgroup.peak_bytes, Some(3584 * MIB));
}

#[test]
fn v1_unlimited_sentinel_reads_as_no_limit_on_a_hybrid_hierarchy() {
    // The fixture's /proc/self/cgroup is verbatim from a hybrid host: `0::/` is there too, but
    // the unified mount has no memory controller, so v1 must be used.
    let cgroup = probe(&fixture_proc(), &fixture_sys("v1"))
        .host_memory()
        .unwrap()
        .cgroup
        .unwrap();
    assert_eq!(cgroup.version, CgroupVersion::V1);
    assert_eq!(cgroup.path, "/process_api/a257da4addbe2962d111d9688b526a49");
    assert_eq!(cgroup.limit_bytes, None);
    assert_eq!(cgroup.usage_bytes, Some(158_269_440));
    assert_eq!(cgroup.peak_bytes, Some(169_607_168));
}

#[test]
fn v1_root_cgroup_is_reported_as_no_cgroup() {
    let proc_root = proc_in_cgroup("4:memory:/\n0::/\n");
    let host = probe(proc_root.path(), &fixture_sys("v1"))
        .host_memory()
        .unwrap();
    assert_eq!(host.cgroup, None);
}

#[test]
fn v1_limit_of_an_ancestor_bounds_an_unlimited_child() {
    let sys_root = tempfile::tempdir().unwrap();
    write_tree(
        sys_root.path(),
        &[
            (
                "fs/cgroup/memory/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
            ("fs/cgroup/memory/release_agent", ""),
            (
                "fs/cgroup/memory/batch/memory.limit_in_bytes",
                "3221225472\n",
            ),
            (
                "fs/cgroup/memory/batch/job7/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
            (
                "fs/cgroup/memory/batch/job7/memory.usage_in_bytes",
                "1048576\n",
            ),
        ],
    );
    let proc_root = proc_in_cgroup("3:memory:/batch/job7\n");
    let cgroup = probe(proc_root.path(), sys_root.path())
        .host_memory()
        .unwrap()
        .cgroup
        .unwrap();
    assert_eq!(cgroup.limit_bytes, Some(3 * GIB));
    assert_eq!(cgroup.usage_bytes, Some(MIB));
    assert_eq!(cgroup.peak_bytes, None);
}

#[test]
fn v1_container_without_its_host_path_uses_the_bind_mounted_cgroup() {
    // Docker on v1 without a cgroup namespace: /proc/self/cgroup names the host path, and the
    // container's /sys/fs/cgroup/memory is its own cgroup (no `release_agent`: not the root).
    let sys_root = tempfile::tempdir().unwrap();
    write_tree(
        sys_root.path(),
        &[
            ("fs/cgroup/memory/memory.limit_in_bytes", "536870912\n"),
            ("fs/cgroup/memory/memory.usage_in_bytes", "12582912\n"),
            ("fs/cgroup/memory/memory.max_usage_in_bytes", "25165824\n"),
        ],
    );
    let proc_root = proc_in_cgroup("6:memory:/docker/4f1c0ffee\n");
    let cgroup = probe(proc_root.path(), sys_root.path())
        .host_memory()
        .unwrap()
        .cgroup
        .unwrap();
    assert_eq!(cgroup.version, CgroupVersion::V1);
    assert_eq!(cgroup.path, "/docker/4f1c0ffee");
    assert_eq!(cgroup.limit_bytes, Some(512 * MIB));
    assert_eq!(cgroup.usage_bytes, Some(12 * MIB));
    assert_eq!(cgroup.peak_bytes, Some(24 * MIB));
}

#[test]
fn v1_memory_sharing_a_hierarchy_is_found_under_the_joint_mount() {
    let sys_root = tempfile::tempdir().unwrap();
    write_tree(
        sys_root.path(),
        &[
            (
                "fs/cgroup/cpu,memory/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
            ("fs/cgroup/cpu,memory/release_agent", ""),
            (
                "fs/cgroup/cpu,memory/svc/memory.limit_in_bytes",
                "268435456\n",
            ),
        ],
    );
    let proc_root = proc_in_cgroup("2:cpu,memory:/svc\n");
    let cgroup = probe(proc_root.path(), sys_root.path())
        .host_memory()
        .unwrap()
        .cgroup
        .unwrap();
    assert_eq!(cgroup.limit_bytes, Some(256 * MIB));
}

// ---------------------------------------------------------------------------------------------
// Process memory from fixtures.

#[test]
fn process_memory_of_a_fixture_pid_reads_status_and_smaps_rollup() {
    let memory = probe(&fixture_proc(), &fixture_sys("v1"))
        .process_memory(Some(4242), MemoryDetail::WithPss)
        .unwrap();
    assert_eq!(memory.pid, 4242);
    assert_eq!(memory.rss_bytes, 62_352 * KIB);
    assert_eq!(memory.peak_rss_bytes, Some(62_352 * KIB));
    assert_eq!(memory.swap_bytes, Some(0));
    assert_eq!(memory.rss_anon_bytes, Some(55_700 * KIB));
    assert_eq!(memory.rss_file_bytes, Some(6_652 * KIB));
    assert_eq!(memory.pss_bytes, Some(60_957 * KIB));
    assert_eq!(memory.uss_bytes, Some((4_992 + 55_700) * KIB));
}

#[test]
fn fast_detail_does_not_report_pss_or_uss() {
    let memory = probe(&fixture_proc(), &fixture_sys("v1"))
        .process_memory(Some(4242), MemoryDetail::Fast)
        .unwrap();
    assert_eq!(memory.rss_bytes, 62_352 * KIB);
    assert_eq!(memory.pss_bytes, None);
    assert_eq!(memory.uss_bytes, None);
}

#[test]
fn a_kernel_without_smaps_rollup_gives_no_pss_rather_than_an_error() {
    let proc_root = proc_in_cgroup("0::/\n");
    std::fs::remove_file(proc_root.path().join("4242/smaps_rollup")).unwrap();
    let memory = probe(proc_root.path(), &fixture_sys("v1"))
        .process_memory(Some(4242), MemoryDetail::WithPss)
        .unwrap();
    assert_eq!(memory.rss_bytes, 62_352 * KIB);
    assert_eq!(memory.pss_bytes, None);
    assert_eq!(memory.uss_bytes, None);
}

#[test]
fn calling_process_memory_comes_from_proc_self_with_the_pid_from_status() {
    let memory = probe(&fixture_proc(), &fixture_sys("v1"))
        .process_memory(None, MemoryDetail::WithPss)
        .unwrap();
    assert_eq!(memory.pid, 3961);
    assert_eq!(memory.rss_bytes, 1_732 * KIB);
    assert_eq!(memory.pss_bytes, Some(430 * KIB));
    assert_eq!(memory.uss_bytes, Some((60 + 108) * KIB));
}

#[test]
fn a_kernel_thread_has_rss_from_statm_and_no_peak_or_swap() {
    let memory = probe(&fixture_proc(), &fixture_sys("v1"))
        .process_memory(Some(2), MemoryDetail::Fast)
        .unwrap();
    assert_eq!(memory.pid, 2);
    assert_eq!(memory.rss_bytes, 0);
    assert_eq!(memory.peak_rss_bytes, None);
    assert_eq!(memory.swap_bytes, None);
    assert_eq!(memory.rss_anon_bytes, None);
}

#[test]
fn rss_falls_back_to_statm_pages_times_page_size_without_vmrss() {
    let proc_root = proc_in_cgroup("0::/\n");
    write_tree(
        proc_root.path(),
        &[
            ("77/status", "Name:\told\nTgid:\t77\n"),
            ("77/statm", "900 300 20 1 0 250 0\n"),
        ],
    );
    let memory = probe(proc_root.path(), &fixture_sys("v1"))
        .process_memory(Some(77), MemoryDetail::Fast)
        .unwrap();
    assert_eq!(memory.rss_bytes, 300 * page_size());
}

#[test]
fn a_missing_pid_is_process_not_found() {
    let err = probe(&fixture_proc(), &fixture_sys("v1"))
        .process_memory(Some(999_999), MemoryDetail::Fast)
        .unwrap_err();
    assert_eq!(err, HypomnesisError::ProcessNotFound { pid: 999_999 });
}

#[test]
fn malformed_status_is_a_parse_error_naming_the_file_and_line() {
    let proc_root = proc_in_cgroup("0::/\n");
    write_tree(
        proc_root.path(),
        &[(
            "88/status",
            "Name:\tx\nTgid:\t88\nVmHWM:\t 10 kB\nVmRSS:\t abc kB\n",
        )],
    );
    let err = probe(proc_root.path(), &fixture_sys("v1"))
        .process_memory(Some(88), MemoryDetail::Fast)
        .unwrap_err();
    assert_eq!(
        err,
        HypomnesisError::Parse {
            what: "status",
            source_path: proc_root.path().join("88/status"),
            detail: "line 4 `VmRSS: abc kB`: not a number".into(),
        }
    );
}

#[test]
fn process_rss_is_resident_pages_of_self_statm_times_page_size() {
    let rss = probe(&fixture_proc(), &fixture_sys("v1"))
        .process_rss()
        .unwrap();
    assert_eq!(rss, 419 * page_size());
}

#[test]
fn process_rss_without_a_statm_names_the_file() {
    let proc_root = tempfile::tempdir().unwrap();
    let err = probe(proc_root.path(), &fixture_sys("v1"))
        .process_rss()
        .unwrap_err();
    match err {
        HypomnesisError::Io { path, .. } => assert_eq!(path, proc_root.path().join("self/statm")),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn process_exists_for_a_process_but_not_for_one_of_its_threads() {
    let probe = probe(&fixture_proc(), &fixture_sys("v1"));
    assert_eq!(probe.process_exists(4242), Some(true));
    assert_eq!(probe.process_exists(4243), Some(false));
    assert_eq!(probe.process_exists(999_999), Some(false));
    assert_eq!(probe.process_exists(0), Some(false));
}

#[test]
fn process_exists_cannot_tell_from_a_status_without_tgid() {
    let proc_root = proc_in_cgroup("0::/\n");
    write_tree(proc_root.path(), &[("91/status", "Name:\tx\n")]);
    assert_eq!(
        probe(proc_root.path(), &fixture_sys("v1")).process_exists(91),
        None
    );
}

// ---------------------------------------------------------------------------------------------
// The real /proc and /sys of this machine.

/// `VmRSS` of this process, bytes, parsed here independently of the library.
fn own_vmrss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * KIB
}

#[test]
fn real_process_rss_is_close_to_status_vmrss() {
    let probe = Probe::new();
    let rss = probe.process_rss().unwrap();
    let vmrss = own_vmrss();
    assert!(rss > 0);
    assert!(
        rss.abs_diff(vmrss) <= 8 * MIB,
        "statm {rss} vs VmRSS {vmrss}"
    );
}

#[test]
fn real_process_rss_does_not_allocate() {
    let probe = Probe::new();
    probe.process_rss().unwrap();
    let before = allocations_on_this_thread();
    for _ in 0..100 {
        probe.process_rss().unwrap();
    }
    assert_eq!(allocations_on_this_thread() - before, 0);
}

#[test]
fn real_process_memory_with_pss_orders_uss_pss_and_rss() {
    let memory = Probe::new()
        .process_memory(None, MemoryDetail::WithPss)
        .unwrap();
    assert_eq!(memory.pid, std::process::id());
    let pss = memory.pss_bytes.unwrap();
    let uss = memory.uss_bytes.unwrap();
    assert!(memory.rss_bytes > 0);
    // status and smaps_rollup are read a moment apart; allow for the test runner's growth.
    assert!(
        pss <= memory.rss_bytes + 8 * MIB,
        "pss {pss} rss {}",
        memory.rss_bytes
    );
    assert!(uss <= pss, "uss {uss} pss {pss}");
    assert!(memory.peak_rss_bytes.unwrap() >= memory.rss_bytes.saturating_sub(8 * MIB));
}

#[test]
fn real_process_exists_for_this_process_and_not_for_a_thread_id() {
    let probe = Probe::new();
    let me = std::process::id();
    assert_eq!(probe.process_exists(me), Some(true));

    let (stop, wait) = std::sync::mpsc::channel::<()>();
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        // SAFETY: gettid has no arguments and cannot fail.
        let tid = unsafe { libc::gettid() };
        tid_tx.send(u32::try_from(tid).unwrap()).unwrap();
        let _ = wait.recv();
    });
    let tid = tid_rx.recv().unwrap();
    assert_ne!(tid, me);
    assert_eq!(probe.process_exists(tid), Some(false));
    drop(stop);
    thread.join().unwrap();
}

#[test]
fn real_host_memory_has_a_total_an_available_figure_and_this_machines_cgroup() {
    let host = Probe::new().host_memory().unwrap();
    assert!(host.total_bytes > 0);
    let available = host.available_bytes.unwrap();
    assert!(available <= host.total_bytes);

    // Where the memory controller is on v1 (as on the development VMs), the library must find
    // the v1 cgroup named in /proc/self/cgroup.
    let unified_has_memory = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
        .is_ok_and(|c| c.split_whitespace().any(|w| w == "memory"));
    let v1_path = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers
                .split(',')
                .any(|c| c == "memory")
                .then(|| path.to_owned())
        });
    if let Some(path) = v1_path.filter(|p| p != "/" && !unified_has_memory)
        && Path::new("/sys/fs/cgroup/memory")
            .join(path.trim_start_matches('/'))
            .is_dir()
    {
        let cgroup = host.cgroup.expect("a v1 memory cgroup");
        assert_eq!(cgroup.version, CgroupVersion::V1);
        assert_eq!(cgroup.path, path);
        assert!(cgroup.usage_bytes.unwrap() > 0);
    }
}

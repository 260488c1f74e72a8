//! The sampler against real processes with known memory patterns (`ram-pattern` from
//! test-support), against the NVML double with process memory that changes over time, and
//! under a counting allocator that proves a warm tick of process targets allocates nothing.
//!
//! Peaks are compared with the kernel's own figures (the process's `VmHWM`, written by the
//! process itself); no test asserts how long anything took.
#![cfg(target_os = "linux")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hypomnesis::{Metric, PeakSource, Probe, Sampler, Target};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

// ---------------------------------------------------------------------------------------------
// Allocation counting, per thread, so the sampling thread's own allocations can be told apart.

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static LIVE_BYTES: Cell<i64> = const { Cell::new(0) };
}

struct CountingAllocator;

fn count(delta_bytes: i64, allocations: u64) {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + allocations));
    let _ = LIVE_BYTES.try_with(|n| n.set(n.get() + delta_bytes));
}

fn size(layout: Layout) -> i64 {
    i64::try_from(layout.size()).unwrap_or(i64::MAX)
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are
// thread-local `Cell`s with const initialisers, which neither allocate nor can be borrowed
// twice.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(size(layout), 1);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-size(layout), 0);
        // SAFETY: `ptr` was allocated by `System` with `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(
            i64::try_from(new_size).unwrap_or(i64::MAX) - size(layout),
            1,
        );
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Per sample, the sampling thread's allocation count and live bytes, as seen by a callback
/// that allocates nothing itself.
#[derive(Clone)]
struct AllocationLog {
    counts: Arc<Vec<AtomicU64>>,
    bytes: Arc<Vec<AtomicU64>>,
    samples: Arc<AtomicU64>,
}

impl AllocationLog {
    fn new(capacity: usize) -> Self {
        Self {
            counts: Arc::new((0..capacity).map(|_| AtomicU64::new(0)).collect()),
            bytes: Arc::new((0..capacity).map(|_| AtomicU64::new(0)).collect()),
            samples: Arc::new(AtomicU64::new(0)),
        }
    }

    fn record(&self, index: u64) {
        let i = usize::try_from(index).unwrap_or(usize::MAX);
        if let (Some(c), Some(b)) = (self.counts.get(i), self.bytes.get(i)) {
            c.store(ALLOCATIONS.with(Cell::get), Ordering::Relaxed);
            b.store(
                LIVE_BYTES.with(Cell::get).cast_unsigned(),
                Ordering::Relaxed,
            );
            self.samples.store(index + 1, Ordering::Relaxed);
        }
    }

    /// (allocations, net bytes) between samples `from` and `to` (both recorded on the
    /// sampling thread).
    fn between(&self, from: usize, to: usize) -> (u64, i64) {
        let c = |i: usize| self.counts[i].load(Ordering::Relaxed);
        let b = |i: usize| self.bytes[i].load(Ordering::Relaxed).cast_signed();
        (c(to) - c(from), b(to) - b(from))
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn ram_pattern(args: &[&str]) -> Child {
    Command::new(test_support::ram_pattern())
        .args(args)
        .spawn()
        .expect("start ram-pattern")
}

fn read_bytes(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .unwrap()
}

fn within(value: u64, truth: u64, percent: u64) -> bool {
    value.abs_diff(truth) * 100 <= truth * percent
}

fn probe() -> Arc<Probe> {
    Arc::new(
        Probe::builder()
            .use_nvml(false)
            .use_nvidia_smi(false)
            .build(),
    )
}

// ---------------------------------------------------------------------------------------------
// RAM

#[test]
fn a_spike_in_a_grandchild_is_sampled_in_the_tree_and_exact_from_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let report_file = dir.path().join("hwm");
    let mut child = ram_pattern(&[
        "spike",
        "--child",
        "--size",
        "200MiB",
        "--hold-ms",
        "300",
        "--report",
        report_file.to_str().unwrap(),
    ]);
    let mut builder = Sampler::builder()
        .probe(probe())
        .interval(Duration::from_millis(20));
    let tree_id = builder.add(Target::Tree(child.id()));
    let sampler = builder.start().unwrap();
    assert!(child.wait().unwrap().success());
    let report = sampler.stop();
    let kernel = read_bytes(&report_file);
    assert!(kernel >= 200 * MIB, "the spike itself: {kernel}");

    let tree = report.peak(tree_id, Metric::Rss).unwrap();
    assert!(
        within(tree.max, kernel, 5),
        "tree peak {} vs the grandchild's VmHWM {kernel} (+ its small parent)",
        tree.max
    );
    let largest = report.targets[0].largest_process.unwrap();
    assert_eq!(largest.source, PeakSource::KernelHighWaterMark);
    assert_ne!(largest.pid, child.id(), "the grandchild, not the parent");
    assert!(
        largest.peak_rss_bytes >= kernel && within(largest.peak_rss_bytes, kernel, 1),
        "{} vs {kernel}",
        largest.peak_rss_bytes
    );
    assert_eq!(report.target(tree_id).unwrap().processes_seen, 2);
    assert_eq!(report.peak(tree_id, Metric::Processes).unwrap().max, 2);
    assert_eq!(
        report.peak(tree_id, Metric::Rss).unwrap().last,
        0,
        "nothing left at the end"
    );
}

#[test]
fn descendants_forked_after_the_start_are_followed_down_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let report_file = dir.path().join("hwm");
    let mut child = ram_pattern(&[
        "chain",
        "--depth",
        "3",
        "--delay-ms",
        "150",
        "--size",
        "64MiB",
        "--hold-ms",
        "300",
        "--report",
        report_file.to_str().unwrap(),
    ]);
    let mut builder = Sampler::builder()
        .probe(probe())
        .interval(Duration::from_millis(10));
    let tree = builder.add(Target::Tree(child.id()));
    let sampler = builder.start().unwrap();
    assert!(child.wait().unwrap().success());
    let report = sampler.stop();
    assert_eq!(
        report.target(tree).unwrap().processes_seen,
        3,
        "{report:#?}"
    );
    assert_eq!(report.peak(tree, Metric::Processes).unwrap().max, 3);
    let largest = report.targets[0].largest_process.unwrap();
    assert_eq!(largest.source, PeakSource::KernelHighWaterMark);
    assert!(within(largest.peak_rss_bytes, read_bytes(&report_file), 1));
    assert!(report.peak(tree, Metric::Rss).unwrap().max >= 64 * MIB);
}

#[test]
fn a_pid_set_is_summed_and_loses_members_as_they_exit() {
    let spike = [
        "spike",
        "--size",
        "48MiB",
        "--before-ms",
        "0",
        "--hold-ms",
        "500",
    ];
    let mut a = ram_pattern(&spike);
    let mut b = ram_pattern(&spike);
    let mut builder = Sampler::builder()
        .probe(probe())
        .interval(Duration::from_millis(20))
        .timeline(8);
    let pids = builder.add(Target::Pids(vec![a.id(), b.id(), a.id()]));
    let sampler = builder.start().unwrap();
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    let report = sampler.stop();
    assert_eq!(
        report.targets[0].processes_seen, 2,
        "the repeated pid counts once"
    );
    assert!(report.peak(pids, Metric::Rss).unwrap().max >= 96 * MIB);
    assert_eq!(report.peak(pids, Metric::Processes).unwrap().last, 0);
    let timeline = report.timeline.unwrap();
    assert_eq!(timeline.points.len(), 8, "the latest 8 samples are kept");
    assert_eq!(
        timeline.dropped + 8,
        report.samples,
        "every other sample was dropped, oldest first"
    );
    assert!(
        timeline
            .points
            .windows(2)
            .all(|w| w[0].elapsed < w[1].elapsed)
    );
}

#[test]
fn a_pid_that_does_not_exist_is_noted_not_an_error() {
    let mut builder = Sampler::builder().probe(probe());
    let pids = builder.add(Target::Pids(vec![u32::MAX - 1]));
    let report = builder.start().unwrap().stop();
    assert_eq!(report.targets[0].processes_seen, 0);
    assert!(
        report.targets[0].notes[0].contains("did not exist"),
        "{:?}",
        report.targets[0].notes
    );
    assert_eq!(report.peak(pids, Metric::Rss).unwrap().max, 0);
}

// ---------------------------------------------------------------------------------------------
// The sampled peak, from a fixture `/proc` whose figures the test sets between samples

/// A `/proc` root holding process `pid` (and `self`) with the given resident memory; the
/// `status` files carry a `VmHWM` that never rises, so the kernel's mark cannot stand in for
/// the sampled peak and the report must give the largest sample.
struct FakeProc {
    dir: tempfile::TempDir,
    page: u64,
}

impl FakeProc {
    const MARK: u64 = 8 * MIB;

    fn new(pid: u32) -> Self {
        // SAFETY: sysconf takes an integer name and touches no caller memory.
        let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap();
        let fake = Self {
            dir: tempfile::tempdir().unwrap(),
            page,
        };
        for name in [pid.to_string(), "self".to_owned()] {
            let process = fake.dir.path().join(name);
            std::fs::create_dir(&process).unwrap();
            std::fs::write(
                process.join("stat"),
                format!(
                    "{pid} (fake) S 1 {pid} {pid} 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 4242 0 0\n"
                ),
            )
            .unwrap();
            std::fs::write(
                process.join("status"),
                format!(
                    "Name:\tfake\nTgid:\t{pid}\nPid:\t{pid}\nPPid:\t1\nVmHWM:\t{} kB\nVmRSS:\t{} kB\n",
                    Self::MARK / 1024,
                    Self::MARK / 1024
                ),
            )
            .unwrap();
        }
        fake.set_rss(pid, Self::MARK);
        fake
    }

    /// Rewrites `statm` of `pid` and of `self` in place (the sampler keeps them open).
    fn set_rss(&self, pid: u32, bytes: u64) {
        let pages = bytes / self.page;
        for name in [pid.to_string(), "self".to_owned()] {
            std::fs::write(
                self.dir.path().join(name).join("statm"),
                format!("{} {pages} 100 10 0 {pages} 0\n", pages + 1000),
            )
            .unwrap();
        }
    }

    fn probe(&self) -> Arc<Probe> {
        Arc::new(
            Probe::builder()
                .proc_root(self.dir.path())
                .sys_root(self.dir.path().join("sys"))
                .use_nvml(false)
                .use_nvidia_smi(false)
                .build(),
        )
    }
}

/// Samples `target` over a fake `/proc` whose `pid` holds 100, then 300, then 200 MiB (and
/// 150 MiB at the last sample, taken by `finish`); returns the largest process's peak.
fn peak_of_a_rise_and_fall(target: impl FnOnce(u32) -> Target) -> hypomnesis::ProcessPeak {
    let pid = 4242;
    let fake = FakeProc::new(pid);
    let mut sampler = Sampler::builder()
        .probe(fake.probe())
        .target(target(pid))
        .manual();
    for mib in [100, 300, 200] {
        fake.set_rss(pid, mib * MIB);
        sampler.sample();
    }
    fake.set_rss(pid, 150 * MIB);
    let report = sampler.finish();
    report.targets[0]
        .largest_process
        .unwrap_or_else(|| panic!("no largest process in {report:#?}"))
}

#[test]
fn a_pid_sets_sampled_peak_is_its_largest_sample_not_its_last() {
    let peak = peak_of_a_rise_and_fall(|pid| Target::Pids(vec![pid]));
    assert_eq!(peak.source, PeakSource::Sampled, "the mark never rose");
    assert_eq!(peak.pid, 4242);
    assert_eq!(peak.peak_rss_bytes, 300 * MIB);
}

#[test]
fn a_tree_members_sampled_peak_is_its_largest_sample_not_its_last() {
    let peak = peak_of_a_rise_and_fall(Target::Tree);
    assert_eq!(peak.source, PeakSource::Sampled, "the mark never rose");
    assert_eq!(peak.pid, 4242);
    assert_eq!(peak.peak_rss_bytes, 300 * MIB);
}

#[test]
fn the_own_processs_sampled_peak_is_its_largest_sample_not_its_last() {
    let peak = peak_of_a_rise_and_fall(|_| Target::OwnProcess);
    assert_eq!(peak.source, PeakSource::Sampled, "the mark never rose");
    assert_eq!(peak.pid, std::process::id());
    assert_eq!(peak.peak_rss_bytes, 300 * MIB);
}

#[test]
fn measure_reports_the_closures_result_and_an_exact_peak_when_it_raised_the_mark() {
    let size = 160 * MIB;
    let (len, report) = hypomnesis::sampler::SamplerBuilder::default()
        .probe(probe())
        .interval(Duration::from_millis(10))
        .target(Target::OwnProcess)
        .measure(|| {
            let block = vec![0x5A_u8; usize::try_from(size).unwrap()];
            std::thread::sleep(Duration::from_millis(100));
            std::hint::black_box(&block).len()
        });
    assert_eq!(len as u64, size);
    let largest = report.targets[0].largest_process.unwrap();
    assert_eq!(largest.pid, std::process::id());
    assert_eq!(largest.source, PeakSource::KernelHighWaterMark);
    assert!(largest.peak_rss_bytes >= size, "{largest:?}");
    let own = report.target_id(&Target::OwnProcess).unwrap();
    let rss = report.peak(own, Metric::Rss).unwrap();
    assert!(
        rss.max >= size,
        "the block was held for ten intervals: {rss:?}"
    );
    assert!(rss.samples >= 2, "a sample before and one after");
}

#[test]
fn the_callback_sees_every_sample_with_the_series_values() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let mut builder = Sampler::builder()
        .probe(probe())
        .interval(Duration::from_millis(5));
    let own = builder.add(Target::OwnProcess);
    let host_id = builder.add(Target::Host);
    let sampler = builder
        .on_sample(move |s| {
            log.lock().unwrap().push((
                s.index,
                s.get(own, Metric::Rss),
                s.get(host_id, Metric::HostAvailable),
                s.values().len(),
            ));
        })
        .start()
        .unwrap();
    std::thread::sleep(Duration::from_millis(60));
    let mid = sampler.report();
    let report = sampler.stop();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len() as u64, report.samples);
    assert!(mid.samples <= report.samples);
    assert!(seen.iter().enumerate().all(|(i, s)| s.0 == i as u64));
    assert!(seen.iter().all(|s| s.1.is_some() && s.2.is_some()));
    assert!(
        seen.iter().all(|s| s.3 == 4),
        "rss, processes, available, cgroup"
    );
    let host = report.host.clone().unwrap();
    assert!(host.total_bytes.unwrap() > 0);
    let low = report.peak(host_id, Metric::HostAvailable).unwrap();
    assert!(low.min <= low.max && low.max <= host.total_bytes.unwrap());
    assert!(report.sampler_cpu_time.is_some());
}

#[test]
fn each_targets_handle_names_its_own_series_whatever_was_added_before_it() {
    let mut builder = Sampler::builder().probe(probe());
    let host = builder.add(Target::Host);
    let own = builder.add(Target::OwnProcess);
    let mut sampler = builder.manual();
    sampler.sample();
    let report = sampler.finish();
    assert!(report.peak(own, Metric::Rss).is_some_and(|p| p.max > 0));
    assert!(report.peak(host, Metric::HostAvailable).is_some());
    assert_eq!(
        report.peak(host, Metric::Rss),
        None,
        "the host has no RSS series"
    );
    assert_eq!(report.peak(own, Metric::HostAvailable), None);
    assert_eq!(report.target(host).unwrap().target, Target::Host);
    assert_eq!(report.target_id(&Target::OwnProcess), Some(own));
    assert_eq!((host.index(), own.index()), (0, 1));
}

// ---------------------------------------------------------------------------------------------
// Allocation

#[test]
fn a_warm_tick_of_process_targets_allocates_nothing() {
    let log = AllocationLog::new(4096);
    let mut tree = ram_pattern(&[
        "chain",
        "--depth",
        "3",
        "--delay-ms",
        "300",
        "--size",
        "1MiB",
        "--before-ms",
        "0",
        "--hold-ms",
        "2000",
    ]);
    let mut other = ram_pattern(&[
        "spike",
        "--size",
        "1MiB",
        "--before-ms",
        "0",
        "--hold-ms",
        "2600",
    ]);
    let recorder = log.clone();
    let sampler = Sampler::builder()
        .probe(probe())
        .interval(Duration::from_millis(10))
        .target(Target::OwnProcess)
        .target(Target::Pids(vec![other.id()]))
        .target(Target::Tree(tree.id()))
        .timeline(16)
        .on_sample(move |s| recorder.record(s.index))
        .start()
        .unwrap();
    // New processes outside the tree while it runs: discovery probes them by pid.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(150));
        let _ = Command::new(test_support::ram_pattern())
            .args(["exit", "0"])
            .status();
    }
    assert!(tree.wait().unwrap().success());
    let report = sampler.stop();
    assert!(other.wait().unwrap().success());
    assert_eq!(
        report.targets[2].processes_seen, 3,
        "the tree grew while sampled"
    );

    // Sample 0 is taken on the calling thread; the thread's first samples warm up.
    let last = usize::try_from(log.samples.load(Ordering::Relaxed)).unwrap() - 1;
    assert!(
        last > 200,
        "a run past the periodic full listing of /proc: {last}"
    );
    let (allocations, bytes) = log.between(5, last);
    assert_eq!(
        (allocations, bytes),
        (0, 0),
        "samples 5..{last} of own process, a pid set and a growing tree allocated"
    );
}

#[test]
fn a_tick_of_host_targets_allocates_a_bounded_amount_and_frees_it_within_the_tick() {
    let log = AllocationLog::new(1024);
    let recorder = log.clone();
    let sampler = Sampler::builder()
        .probe(probe())
        .interval(Duration::from_millis(5))
        .target(Target::Host)
        .on_sample(move |s| recorder.record(s.index))
        .start()
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    drop(sampler);
    let last = usize::try_from(log.samples.load(Ordering::Relaxed)).unwrap() - 1;
    assert!(last > 10);
    for i in 5..last {
        let (allocations, bytes) = log.between(i, i + 1);
        assert!(allocations <= 256, "sample {i}: {allocations} allocations");
        assert_eq!(bytes, 0, "sample {i} kept {bytes} bytes");
    }
}

// ---------------------------------------------------------------------------------------------
// GPU, against the NVML double. NVML state is process-wide and the scenario names this
// process's pid, so each case re-runs this binary filtered to one `child_*` test, which writes
// its scenario (with its own pid) before NVML is first initialised.

const CHILD: &str = "SAMPLER_TEST_CHILD";

fn run_child(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let lib = test_support::nvml_double_for(&test_support::nvml_scenario("gpu_steps"));
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .env("NVML_DOUBLE_SCENARIO", dir.path().join("scenario.json"))
        .env("HYPOMNESIS_NVML_LIB", lib.join("libnvidia-ml.so.1"))
        .env("HYPOMNESIS_NVIDIA_SMI", "/nonexistent/nvidia-smi")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child {name} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_child(name: &str) -> bool {
    std::env::var(CHILD).as_deref() == Ok(name)
}

/// Writes the scenario the child's NVML will read: this process holds 1 GiB, 6 GiB from
/// 300 ms after init, 2 GiB from 700 ms; another process holds 1 GiB throughout.
fn write_own_scenario() -> PathBuf {
    let path = PathBuf::from(std::env::var_os("NVML_DOUBLE_SCENARIO").unwrap());
    let pid = std::process::id();
    std::fs::write(
        &path,
        format!(
            r#"{{"devices": [{{"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-1",
            "pci_bus_id": "00000000:00:09.0", "pci_device_id": 590352606,
            "memory": {{"total": 85520809984, "reserved": 502267904,
                        "free": 82871058432, "used": 2147483648}},
            "compute_processes": [
              {{"pid": {pid}, "used_gpu_memory": {g1}, "used_gpu_memory_steps":
                 [[300, {g6}], [700, {g2}]]}},
              {{"pid": 4000001, "used_gpu_memory": {g1}}}]}}]}}"#,
            g1 = GIB,
            g2 = 2 * GIB,
            g6 = 6 * GIB,
        ),
    )
    .unwrap();
    path
}

#[test]
fn gpu_peaks_follow_process_memory_that_changes_over_time() {
    run_child("child_gpu_peaks");
}

#[test]
fn child_gpu_peaks() {
    if !is_child("child_gpu_peaks") {
        return;
    }
    write_own_scenario();
    let probe = Arc::new(Probe::new());
    let me = std::process::id();
    let mut builder = Sampler::builder()
        .probe(Arc::clone(&probe))
        .interval(Duration::from_millis(20))
        .gpu_devices([0]);
    let own = builder.add(Target::OwnProcess);
    let pids = builder.add(Target::Pids(vec![me]));
    let device_id = builder.add(Target::Device(0));
    let sampler = builder.start().unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let report = sampler.stop();
    let gpu = Metric::Gpu { device: 0 };
    for target in [own, pids] {
        let peak = report.peak(target, gpu).unwrap();
        assert_eq!(
            (peak.min, peak.max, peak.last),
            (GIB, 6 * GIB, 2 * GIB),
            "target {target:?}"
        );
    }
    let device = report.peak(device_id, Metric::DeviceUsed).unwrap();
    assert_eq!(
        (device.min, device.max, device.last),
        (2 * GIB, 7 * GIB, 3 * GIB),
        "the device's used memory moves with the process"
    );
    assert!(report.notes.is_empty(), "{:?}", report.notes);
}

#[test]
fn measure_samples_the_own_process_on_every_gpu() {
    run_child("child_measure_gpu");
}

#[test]
fn child_measure_gpu() {
    if !is_child("child_measure_gpu") {
        return;
    }
    write_own_scenario();
    let ((), report) = hypomnesis::measure(|| std::thread::sleep(Duration::from_millis(900)));
    let peak = report
        .peak(hypomnesis::MEASURE_TARGET, Metric::Gpu { device: 0 })
        .unwrap();
    assert_eq!((peak.min, peak.max), (GIB, 6 * GIB));
    assert_eq!(report.interval, hypomnesis::sampler::MEASURE_INTERVAL);
}

/// A GPU driver call that stops returning mid-run (the double's memory query sleeps 60 s from
/// 300 ms on) leaves the sampling thread stuck; `stop` still returns — after its bounded
/// wait, not the 60 s — with the figures published before and a note saying why. Were the
/// wait unbounded, `stop` would return after the call ended, without the note, and this
/// test would fail on it.
#[cfg(target_os = "linux")]
#[test]
fn stop_returns_with_a_note_when_a_driver_call_hangs() {
    let path = test_support::nvml_scenario_variant("one_gpu", "sampler_hung_driver", |scenario| {
        scenario["description"] =
            serde_json::json!("one_gpu whose memory query hangs after 300 ms");
        scenario["devices"][0]["delays_ms"] =
            serde_json::json!({ "nvmlDeviceGetMemoryInfo_v2": 60_000 });
        scenario["devices"][0]["delays_from_ms"] = serde_json::json!(300);
    });
    test_support::with_nvml_double_scenario(
        "stop_returns_with_a_note_when_a_driver_call_hangs",
        &path,
        |lib, _| {
            let probe = Arc::new(Probe::builder().nvml_lib(lib).use_nvidia_smi(false).build());
            let mut builder = Sampler::builder()
                .probe(probe)
                .interval(Duration::from_millis(20));
            let device = builder.add(Target::Device(0));
            let sampler = builder.start().unwrap();
            std::thread::sleep(Duration::from_millis(800));
            let report = sampler.stop();
            assert!(
                report.notes.iter().any(|n| n.contains("did not stop")),
                "{:?}",
                report.notes
            );
            // What was sampled before the hang is kept.
            assert!(report.samples > 0);
            assert!(
                report
                    .peak(device, Metric::DeviceUsed)
                    .is_some_and(|p| p.max > 0)
            );
        },
    );
}

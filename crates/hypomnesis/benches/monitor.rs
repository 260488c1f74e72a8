//! Budget (DESIGN §6): a [`Monitor`] at its defaults (1 s interval, process scan every 3rd
//! refresh, telemetry and process details on) costs at most 0.2 % of one core over 60 s on
//! the 4-GPU NVML double with 1,000 extra processes alive.
//!
//! - **overhead**: 1,000 `sleep` children are spawned, then the monitor runs for 60 s
//!   (`$HYPOMNESIS_MONITOR_BENCH_SECS` to change). The cost is the whole process's CPU time
//!   over that time (`getrusage(RUSAGE_SELF)`: the monitor's thread and anything it starts)
//!   minus the **floor**, measured in the same run: the same process, children alive, idle
//!   for the same time. The monitor thread's own on-CPU time (`/proc/self/task/<tid>/schedstat`)
//!   is printed beside it.
//! - **per-frame cost** (criterion): the two kinds of frame the monitor reads (devices with
//!   telemetry; devices, telemetry and a process scan with details), what the thread does
//!   with them (record into the history, combine a device frame with the last scan), and
//!   chart queries of a full hour's history of 64 GPUs and 1,000 processes (10 minutes raw,
//!   the rest in blocks), whose memory is printed too, after 10 minutes and after the hour.
//!
//! Run with `cargo bench -p hypomnesis --bench monitor`. Linux only (children and thread CPU
//! are read through `/proc`).

#[cfg(target_os = "linux")]
mod linux {
    use std::hint::black_box;
    use std::process::{Child, Command, Stdio};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use criterion::{BatchSize, Criterion, criterion_group};
    use hypomnesis::monitor::{HistoryLimits, combine};
    use hypomnesis::{DeviceMetric, Frame, FrameRequest, History, Monitor, Probe, ProcessMetric};

    const EXTRA_PROCESSES: usize = 1_000;

    /// 1,000 sleeping children, killed and reaped on drop.
    struct Sleepers(Vec<Child>);

    impl Sleepers {
        fn spawn() -> Self {
            let children = (0..EXTRA_PROCESSES)
                .map(|_| {
                    Command::new("sleep")
                        .arg("3600")
                        .stdin(Stdio::null())
                        .spawn()
                        .expect("spawn sleep")
                })
                .collect();
            Self(children)
        }
    }

    impl Drop for Sleepers {
        fn drop(&mut self) {
            for child in &mut self.0 {
                let _ = child.kill();
            }
            for child in &mut self.0 {
                let _ = child.wait();
            }
        }
    }

    /// CPU time of the whole process (every thread), user + system.
    fn process_cpu() -> Duration {
        // SAFETY: a zeroed rusage is valid for getrusage to fill.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `usage` is valid for writing; RUSAGE_SELF reads this process's counters.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut usage) };
        let t = |tv: libc::timeval| {
            Duration::from_secs(tv.tv_sec.try_into().unwrap())
                + Duration::from_micros(tv.tv_usec.try_into().unwrap())
        };
        t(usage.ru_utime) + t(usage.ru_stime)
    }

    /// The monitor thread's on-CPU time, from its `schedstat` (nanoseconds).
    fn monitor_thread_cpu() -> Option<Duration> {
        for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim() == "hypomnesis-moni" || comm.trim().starts_with("hypomnesis-mon") {
                let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
                let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
                return Some(Duration::from_nanos(ns));
            }
        }
        None
    }

    fn percent(cpu: Duration, wall: Duration) -> f64 {
        cpu.as_secs_f64() / wall.as_secs_f64() * 100.0
    }

    fn double_probe() -> Arc<Probe> {
        let scenario = test_support::nvml_scenario("four_gpus");
        let lib = test_support::nvml_double_for(&scenario).join("libnvidia-ml.so.1");
        // SAFETY: set before this bench starts any thread that reads the environment.
        unsafe { std::env::set_var("NVML_DOUBLE_SCENARIO", &scenario) };
        Arc::new(
            Probe::builder()
                .nvml_lib(&lib)
                .use_nvidia_smi(false)
                .build(),
        )
    }

    fn overhead(probe: &Arc<Probe>) {
        let secs: u64 = std::env::var("HYPOMNESIS_MONITOR_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60);
        let sleepers = Sleepers::spawn();
        let run = Duration::from_secs(secs);

        let monitor = Monitor::builder().start(Arc::clone(probe));
        let (_, first) = monitor
            .wait_newer(0, Duration::from_secs(10))
            .expect("a first frame");
        assert_eq!(first.devices.len(), 4, "the 4-GPU double");
        let thread_before = monitor_thread_cpu().expect("the monitor thread's schedstat");
        let cpu_before = process_cpu();
        let started = Instant::now();
        std::thread::sleep(run);
        let cpu = process_cpu() - cpu_before;
        let wall = started.elapsed();
        let thread = monitor_thread_cpu().expect("the monitor thread's schedstat") - thread_before;
        let stats = monitor.stats();
        assert!(monitor.stop(), "the monitor thread finished");

        let floor_before = process_cpu();
        let floor_started = Instant::now();
        std::thread::sleep(run);
        let floor = process_cpu() - floor_before;
        let floor_wall = floor_started.elapsed();
        drop(sleepers);

        let cost = percent(cpu, wall) - percent(floor, floor_wall);
        println!(
            "monitor overhead: defaults (1 s, scan every 3rd, telemetry + details), 4-GPU NVML \
             double, {EXTRA_PROCESSES} extra processes, {:.1} s: {} frames, {} process scans, {} \
             skipped ticks",
            wall.as_secs_f64(),
            stats.frames,
            stats.process_scans,
            stats.skipped_ticks
        );
        println!(
            "  process CPU {:.2} ms = {:.4} % of one core; floor (same process idle, same \
             run) {:.2} ms = {:.4} %; monitor = {cost:.4} % of one core — {}",
            cpu.as_secs_f64() * 1e3,
            percent(cpu, wall),
            floor.as_secs_f64() * 1e3,
            percent(floor, floor_wall),
            if cost <= 0.2 {
                "within the 0.2 % budget"
            } else {
                "OVER the 0.2 % budget"
            }
        );
        println!(
            "  the monitor thread itself: {:.2} ms on CPU = {:.4} % of one core, {:.0} µs per \
             frame",
            thread.as_secs_f64() * 1e3,
            percent(thread, wall),
            thread.as_secs_f64() * 1e6 / stats.frames.max(1) as f64
        );
    }

    /// A frame of `gpus` devices and `processes` process rows, made from `model`'s records.
    fn big_frame(model: &Frame, gpus: u32, processes: u32) -> Frame {
        let mut frame = model.clone();
        let device = model.devices[0].clone();
        let row = model.devices[0].rows()[0].clone();
        frame.devices = (0..gpus)
            .map(|index| {
                let mut d = device.clone();
                d.device.index = index;
                if let Some(listing) = d.processes.as_mut() {
                    listing.rows = (0..processes)
                        .filter(|pid| pid % gpus == index)
                        .map(|pid| {
                            let mut r = row.clone();
                            r.pid = 10_000 + pid;
                            r.device_index = index;
                            r.used_bytes = Some(u64::from(pid) << 20);
                            r
                        })
                        .collect();
                }
                d
            })
            .collect();
        frame
    }

    fn rss() -> u64 {
        hypomnesis::process_rss().unwrap()
    }

    fn per_frame(c: &mut Criterion) {
        let probe = double_probe();
        overhead(&probe);
        let devices = FrameRequest::DEVICES.with_telemetry(true);
        let scan = devices.with_processes(true, true);
        let mut group = c.benchmark_group("monitor_frame");
        group.bench_function("device frame (4 GPUs, telemetry)", |b| {
            b.iter(|| black_box(probe.frame(devices)));
        });
        group.bench_function("scan frame (4 GPUs, telemetry, processes + details)", |b| {
            b.iter(|| black_box(probe.frame(scan)));
        });
        let scanned = probe.frame(scan);
        let device_frame = probe.frame(devices);
        group.bench_function("combine a device frame with the last scan", |b| {
            b.iter(|| black_box(combine(device_frame.clone(), Some(&scanned))));
        });
        group.finish();

        // A full 10-minute history of 64 GPUs and 1,000 processes, as `hmn top` keeps.
        let big_scan = big_frame(&scanned, 64, 1_000);
        let mut big_devices = big_scan.clone();
        for d in &mut big_devices.devices {
            d.processes = None;
        }
        big_devices.processes_taken = None;
        let rss_before = rss();
        let mut history = History::new(HistoryLimits::new(
            hypomnesis::monitor::DEFAULT_WINDOW,
            hypomnesis::monitor::DEFAULT_INTERVAL,
            hypomnesis::monitor::DEFAULT_PROCESS_EVERY,
        ));
        let t0 = Instant::now();
        let mut record_time = Duration::ZERO;
        let record = |history: &mut History, k: u32| -> Duration {
            let source = if k.is_multiple_of(3) {
                &big_scan
            } else {
                &big_devices
            };
            let mut frame = source.clone();
            frame.taken = t0 + Duration::from_secs(u64::from(k));
            if k.is_multiple_of(3) {
                frame.processes_taken = Some(frame.taken);
            }
            let started = Instant::now();
            history.record(&frame);
            started.elapsed()
        };
        for k in 0..600_u32 {
            record_time += record(&mut history, k);
        }
        let rss_after = rss();
        println!(
            "history of 64 GPUs and 1,000 processes over 10 minutes: {:.1} MiB more RSS; \
             recording one frame takes {:.0} µs on average",
            (rss_after.saturating_sub(rss_before)) as f64 / 1_048_576.0,
            record_time.as_secs_f64() * 1e6 / 600.0
        );
        // The rest of the hour: 10 minutes raw, 50 in blocks (the monitor's defaults).
        for k in 600..3_600_u32 {
            record_time += record(&mut history, k);
        }
        let rss_hour = rss();
        println!(
            "the same over an hour (10 min raw, 50 min in blocks): {:.1} MiB more RSS; \
             recording one frame takes {:.0} µs on average",
            (rss_hour.saturating_sub(rss_before)) as f64 / 1_048_576.0,
            record_time.as_secs_f64() * 1e6 / 3_600.0
        );
        let end = t0 + Duration::from_secs(3_600);
        let hour = Duration::from_secs(3_600);
        let mut group = c.benchmark_group("monitor_history");
        group.bench_function("chart one GPU, 1 h (raw + blocks) in 200 buckets", |b| {
            b.iter(|| black_box(history.device(7, DeviceMetric::Used, end, hour, 200)));
        });
        group.bench_function(
            "chart one process, 1 h (raw + blocks) in 200 buckets",
            |b| {
                b.iter(|| {
                    black_box(history.process(10_007, 7, ProcessMetric::Used, end, hour, 200))
                });
            },
        );
        group.bench_function("chart one GPU, 10 min in 200 buckets", |b| {
            b.iter(|| {
                black_box(history.device(7, DeviceMetric::Used, end, Duration::from_secs(600), 200))
            });
        });
        group.bench_function("chart one process, 10 min in 200 buckets", |b| {
            b.iter(|| {
                black_box(history.process(
                    10_007,
                    7,
                    ProcessMetric::Used,
                    end,
                    Duration::from_secs(600),
                    200,
                ))
            });
        });
        group.bench_function("record a scan frame (64 GPUs, 1,000 processes)", |b| {
            let mut k = 3_600_u32;
            b.iter_batched(
                || {
                    let mut frame = big_scan.clone();
                    frame.taken = t0 + Duration::from_secs(u64::from(k));
                    frame.processes_taken = Some(frame.taken);
                    k += 1;
                    frame
                },
                |frame| history.record(&frame),
                BatchSize::LargeInput,
            );
        });
        group.finish();
    }

    criterion_group!(benches, per_frame);
}

#[cfg(target_os = "linux")]
criterion::criterion_main!(linux::benches);

#[cfg(not(target_os = "linux"))]
fn main() {}

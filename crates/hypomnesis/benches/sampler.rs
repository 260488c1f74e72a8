//! Budget (DESIGN §6): the sampler at a 10 ms interval watching a 20-process tree costs at
//! most 1 % of one core.
//!
//! Two measurements of a real tree (`sh` and 19 `sleep`s):
//! - **overhead**: a threaded [`Sampler`] runs for a fixed time (10 s, or
//!   `$HYPOMNESIS_SAMPLER_BENCH_SECS`) and its thread's CPU time (`getrusage(RUSAGE_THREAD)`,
//!   reported as `Report::sampler_cpu_time`) is divided by the wall time. Printed before the
//!   criterion groups, with the verdict; then, the same way, the floor (a thread that wakes
//!   every 10 ms and `pread`s the tree's 20 kept-open `statm` files), and a thread that only
//!   wakes every 10 ms with `std::thread::sleep`, `clock_nanosleep(TIMER_ABSTIME)` and a
//!   periodic `timerfd` (the cost of waking alone, whichever timer), and the per-`pread` cost
//!   that the difference gives.
//! - **per-tick cost** (criterion): one [`ManualSampler::sample`] of the tree, of the own
//!   process, and of the host; and, for comparison in the same run, the naive tick a polling
//!   tool does: list `/proc`, read every `stat` to rebuild the tree, read every member's
//!   `status`.
//!
//! Run with `cargo bench -p hypomnesis --bench sampler`. Linux only (the tree is found
//! through `/proc`).

// The overhead measurement reads Linux thread CPU time and /proc; elsewhere the bench is
// empty (it still has to compile for the cross-target clippy checks).
#[cfg(target_os = "linux")]
mod linux {
    use std::hint::black_box;
    use std::process::{Child, Command};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use criterion::{Criterion, criterion_group};
    use hypomnesis::{Metric, Probe, Sampler, Target};

    const TREE_SIZE: u64 = 20;

    /// `sh` with 19 `sleep` children: a 20-process tree that lives until killed.
    struct Tree(Child);

    impl Tree {
        fn spawn() -> Self {
            let child = Command::new("sh")
                .args(["-c", "for i in $(seq 19); do sleep 600 & done; wait"])
                .spawn()
                .expect("start sh");
            let tree = Self(child);
            // Wait until all 20 are there.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let mut builder = Sampler::builder().probe(probe());
                let target = builder.add(Target::Tree(tree.0.id()));
                let mut probe = builder.manual();
                probe.sample();
                let count = probe
                    .report()
                    .peak(target, Metric::Processes)
                    .map(|p| p.last);
                if count == Some(TREE_SIZE) {
                    return tree;
                }
                assert!(Instant::now() < deadline, "tree of {count:?} processes");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            // SAFETY: kill(2) on the process group we created; no memory is involved.
            let _ = Command::new("pkill")
                .args(["-P", &self.0.id().to_string()])
                .status();
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn probe() -> Arc<Probe> {
        Arc::new(
            Probe::builder()
                .use_nvml(false)
                .use_nvidia_smi(false)
                .build(),
        )
    }

    /// CPU time of the calling thread.
    fn thread_cpu() -> Duration {
        // SAFETY: a zeroed rusage is valid for getrusage to fill; RUSAGE_THREAD reads only the
        // caller's counters.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `usage` is valid for writing.
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &raw mut usage) };
        let t = |tv: libc::timeval| {
            Duration::from_secs(tv.tv_sec.try_into().unwrap())
                + Duration::from_micros(tv.tv_usec.try_into().unwrap())
        };
        t(usage.ru_utime) + t(usage.ru_stime)
    }

    /// What a run of a measuring thread cost: its CPU time, the wall time, the wake-ups.
    struct ThreadCost {
        cpu: Duration,
        wall: Duration,
        wakes: u64,
    }

    impl ThreadCost {
        fn percent(&self) -> f64 {
            self.cpu.as_secs_f64() / self.wall.as_secs_f64() * 100.0
        }

        fn micros_per_wake(&self) -> f64 {
            self.cpu.as_secs_f64() * 1e6 / self.wakes.max(1) as f64
        }
    }

    /// How a measuring thread waits for its next 10 ms slot.
    #[derive(Clone, Copy, Debug)]
    enum Timer {
        /// `std::thread::sleep` until the slot (what the sampler does, through a condvar).
        Sleep,
        /// `clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)` to the slot.
        ClockNanosleep,
        /// A periodic `timerfd` (10 ms interval), read once per slot.
        Timerfd,
    }

    /// A thread that wakes every 10 ms for `secs` with `timer` and, after each wake, does
    /// `pread` of each of `files` (none: the cost of waking alone).
    fn wake_loop(timer: Timer, files: Vec<std::fs::File>, secs: u64) -> ThreadCost {
        use std::os::unix::fs::FileExt;
        const PERIOD: Duration = Duration::from_millis(10);
        let handle = std::thread::spawn(move || {
            let timerfd = matches!(timer, Timer::Timerfd).then(|| {
                // SAFETY: timerfd_create takes two integers and returns a new fd or -1.
                let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC) };
                assert!(fd >= 0, "timerfd_create failed");
                let period = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 10_000_000,
                };
                let spec = libc::itimerspec {
                    it_interval: period,
                    it_value: period,
                };
                // SAFETY: `fd` is the timerfd just created; `spec` is a valid itimerspec and the
                // old value is not asked for (null).
                let rc =
                    unsafe { libc::timerfd_settime(fd, 0, &raw const spec, std::ptr::null_mut()) };
                assert_eq!(rc, 0, "timerfd_settime failed");
                fd
            });
            let mut now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: `now` is valid for writing one timespec.
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut now) };
            let mut slot = now;
            let start_cpu = thread_cpu();
            let start = Instant::now();
            let mut next = start;
            let mut wakes = 0;
            let mut buf = [0_u8; 256];
            while start.elapsed() < Duration::from_secs(secs) {
                match timer {
                    Timer::Sleep => {
                        next += PERIOD;
                        std::thread::sleep(next.saturating_duration_since(Instant::now()));
                    }
                    Timer::ClockNanosleep => {
                        slot.tv_nsec += 10_000_000;
                        if slot.tv_nsec >= 1_000_000_000 {
                            slot.tv_nsec -= 1_000_000_000;
                            slot.tv_sec += 1;
                        }
                        // SAFETY: `slot` is a valid timespec; no remaining time is asked for
                        // with TIMER_ABSTIME (null).
                        unsafe {
                            libc::clock_nanosleep(
                                libc::CLOCK_MONOTONIC,
                                libc::TIMER_ABSTIME,
                                &raw const slot,
                                std::ptr::null_mut(),
                            )
                        };
                    }
                    Timer::Timerfd => {
                        let mut expirations = 0_u64;
                        // SAFETY: the timerfd is open; `expirations` is valid for 8 bytes.
                        unsafe {
                            libc::read(
                                timerfd.unwrap(),
                                (&raw mut expirations).cast(),
                                std::mem::size_of::<u64>(),
                            )
                        };
                    }
                }
                wakes += 1;
                for f in &files {
                    black_box(f.read_at(&mut buf, 0).ok());
                }
            }
            let cost = ThreadCost {
                cpu: thread_cpu() - start_cpu,
                wall: start.elapsed(),
                wakes,
            };
            if let Some(fd) = timerfd {
                // SAFETY: the timerfd is open and owned here.
                unsafe { libc::close(fd) };
            }
            cost
        });
        handle.join().unwrap()
    }

    /// The floor on this machine: a thread that wakes every 10 ms and does only the unavoidable
    /// work — one `pread` of each tree process's already-open `statm` — measured the same way.
    fn floor(pids: &[u32], secs: u64) -> ThreadCost {
        let files: Vec<std::fs::File> = pids
            .iter()
            .filter_map(|p| std::fs::File::open(format!("/proc/{p}/statm")).ok())
            .collect();
        wake_loop(Timer::Sleep, files, secs)
    }

    fn overhead(tree: &Tree) {
        let secs: u64 = std::env::var("HYPOMNESIS_SAMPLER_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10);
        let mut builder = Sampler::builder()
            .probe(probe())
            .interval(Duration::from_millis(10));
        let target = builder.add(Target::Tree(tree.0.id()));
        let sampler = builder.start().expect("start the sampler");
        std::thread::sleep(Duration::from_secs(secs));
        let report = sampler.stop();
        let cpu = report.sampler_cpu_time.expect("thread CPU time (Linux)");
        let share = cpu.as_secs_f64() / report.elapsed.as_secs_f64() * 100.0;
        let processes = report.peak(target, Metric::Processes).map_or(0, |p| p.max);
        let mut pids = vec![tree.0.id()];
        pids.extend(
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", tree.0.id()))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
        if pids.len() == 1 {
            // No CONFIG_PROC_CHILDREN: find the children by their parent.
            for entry in std::fs::read_dir("/proc").unwrap().flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let ppid = stat
                    .rfind(')')
                    .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
                    .and_then(|p| p.parse::<u32>().ok());
                if ppid == Some(tree.0.id()) {
                    pids.push(pid);
                }
            }
        }
        let floor_cost = floor(&pids, secs);
        let floor = floor_cost.percent();
        println!(
            "sampler overhead: {processes}-process tree, 10 ms interval, {:.1} s: {} samples \
             ({} late), thread CPU {:.1} ms = {share:.3} % of one core, {:.1} µs per sample — {}",
            report.elapsed.as_secs_f64(),
            report.samples,
            report.late_samples,
            cpu.as_secs_f64() * 1e3,
            cpu.as_secs_f64() * 1e6 / report.samples.max(1) as f64,
            if share <= 1.0 {
                "within the 1 % budget"
            } else {
                "OVER the 1 % budget"
            }
        );
        println!(
            "floor on this machine, same run: a thread waking every 10 ms to pread {} kept-open \
             statm files costs {floor:.3} % of one core",
            pids.len()
        );
        // The wake-up alone, with each timer a sampler could use, and what the reads add.
        let mut sleep_only = None;
        for timer in [Timer::Sleep, Timer::ClockNanosleep, Timer::Timerfd] {
            let cost = wake_loop(timer, Vec::new(), secs);
            println!(
                "a thread that only wakes every 10 ms ({timer:?}): {:.3} % of one core, {:.1} µs \
                 of thread CPU per wake ({} wakes)",
                cost.percent(),
                cost.micros_per_wake(),
                cost.wakes
            );
            sleep_only.get_or_insert(cost);
        }
        if let Some(sleep_only) = sleep_only {
            let reads = floor_cost.micros_per_wake() - sleep_only.micros_per_wake();
            println!(
                "so each of the floor's {} preads right after a wake costs about {:.2} µs \
                 ({:.1} µs per wake with the reads, {:.1} µs without)",
                pids.len(),
                reads / pids.len().max(1) as f64,
                floor_cost.micros_per_wake(),
                sleep_only.micros_per_wake()
            );
        }
    }

    /// What a polling tool does every tick: rebuild the tree from every `stat` in `/proc`, then
    /// read every member's `status` (RSS and high-water mark).
    fn naive_tick(root: u32) -> (u64, usize) {
        let mut parents = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let after = &stat[stat.rfind(')').unwrap() + 1..];
            let ppid: u32 = after.split_whitespace().nth(1).unwrap().parse().unwrap();
            parents.push((pid, ppid));
        }
        let mut members = vec![root];
        let mut grew = true;
        while grew {
            grew = false;
            for &(pid, ppid) in &parents {
                if members.contains(&ppid) && !members.contains(&pid) {
                    members.push(pid);
                    grew = true;
                }
            }
        }
        let mut rss = 0;
        for pid in &members {
            if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                rss += status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                    .unwrap_or(0)
                    * 1024;
            }
        }
        (rss, members.len())
    }

    fn per_tick(c: &mut Criterion) {
        let tree = Tree::spawn();
        overhead(&tree);
        let root = tree.0.id();
        let mut group = c.benchmark_group("sampler_tick");
        let mut builder = Sampler::builder().probe(probe());
        let target = builder.add(Target::Tree(root));
        let mut manual = builder.manual();
        group.bench_function("tree of 20 (ManualSampler::sample)", |b| {
            b.iter(|| manual.sample());
        });
        assert_eq!(
            manual
                .report()
                .peak(target, Metric::Processes)
                .map(|p| p.last),
            Some(TREE_SIZE)
        );
        let mut own = Sampler::builder().probe(probe()).manual();
        group.bench_function("own process", |b| b.iter(|| own.sample()));
        let mut host = Sampler::builder()
            .probe(probe())
            .target(Target::Host)
            .manual();
        group.bench_function("host (meminfo + cgroup, through Probe)", |b| {
            b.iter(|| host.sample());
        });
        group.bench_function("naive: rebuild tree from /proc + read status", |b| {
            b.iter(|| black_box(naive_tick(root)));
        });
        assert_eq!(naive_tick(root).1 as u64, TREE_SIZE);
        group.finish();
        drop(tree);
    }

    criterion_group!(benches, per_tick);
}

#[cfg(target_os = "linux")]
criterion::criterion_main!(linux::benches);

#[cfg(not(target_os = "linux"))]
fn main() {}

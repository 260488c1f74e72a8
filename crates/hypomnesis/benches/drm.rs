//! DRM process scan (DESIGN §6): linear in processes × fds, 1,000 processes × 32 fds ≤ 30 ms
//! median. In the same run:
//! - synthetic trees (`fixtures/drm/tree.rs`): 1,000 × 32 and 4,000 × 32 fds, 5 % of them
//!   DRM clients of one amdgpu card, either *clustered* (one process in twenty holds only DRM
//!   fds: the listing names 50 / 200 rows, so the figure is the scan) or *spread* (every
//!   twentieth fd: every process is a GPU client, and naming 1,000 / 4,000 rows — `comm`,
//!   `status` and user lookup, `cmdline` — is part of the figure);
//! - the same trees read the naive way (every fd's fdinfo opened and parsed, no `readlink`
//!   filter), which is what the filter saves;
//! - the floor of any correct scan, in the same run: every fd's `readlinkat` on one thread,
//!   and again with the DRM fds' fdinfo read, on as many threads as the scan uses — what
//!   this machine's kernel charges for the system calls alone;
//! - this machine's real `/proc`, both ways (the synthetic `/sys` supplies the device, so the
//!   scan runs in full whether or not this machine has a GPU), and again with 1,000 real
//!   processes of 32 fds forked for the purpose (`Crowd`): procfs at the budget's scale,
//!   where each `readlink` and each `getdents` costs more than in the synthetic tree.
//!
//!
//! DRM telemetry (issue 8): one sample of the 4 PCI devices of `telemetry_tree` (amdgpu
//! discrete, i915, xe, amdgpu APU: sysfs, hwmon, `pp_dpm_*`, link files, and for the two
//! Intel devices an fdinfo scan of the tree's processes) through `Probe::telemetry` ≤ 200 µs
//! median.
//!
//! Per-call costs (`drm_syscalls`): `getppid`, and the scan's `readlinkat`, `getdents` and a
//! `stat` through a link, each alone in a hot loop, on a synthetic tree and on the real
//! `/proc/self/fd` — the kernel's price per call that the floor is made of.
//!
//! Run with `cargo bench -p hypomnesis --bench drm` (`HYPOMNESIS_DRM_BENCH_PROCESSES=1000` for
//! the 1,000-process trees only; `-- drm_syscalls` for the per-call costs alone).

#[cfg(target_os = "linux")]
#[path = "../../../fixtures/drm/tree.rs"]
mod tree;

#[cfg(target_os = "linux")]
mod linux {
    use std::hint::black_box;
    use std::path::Path;

    use criterion::{BenchmarkId, Criterion};
    use hypomnesis::Probe;

    use super::tree::DrmTree;

    fn probe(proc_root: &Path, sys_root: &Path) -> Probe {
        Probe::builder()
            .proc_root(proc_root)
            .sys_root(sys_root)
            .use_nvml(false)
            .use_nvidia_smi(false)
            .build()
    }

    /// Opens and parses every fd's fdinfo, keeps the ones with `drm-driver`, sums
    /// `drm-resident-vram` — what a scanner without a filter does.
    fn naive_scan(proc_root: &Path) -> (usize, u64) {
        let mut clients = 0;
        let mut vram = 0_u64;
        let Ok(entries) = std::fs::read_dir(proc_root) else {
            return (0, 0);
        };
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
                .is_none()
            {
                continue;
            }
            let Ok(fdinfos) = std::fs::read_dir(entry.path().join("fdinfo")) else {
                continue;
            };
            for fdinfo in fdinfos.flatten() {
                let Ok(text) = std::fs::read_to_string(fdinfo.path()) else {
                    continue;
                };
                if !text.contains("drm-driver:") {
                    continue;
                }
                clients += 1;
                for line in text.lines() {
                    if let Some(value) = line.strip_prefix("drm-resident-vram:") {
                        let mut words = value.split_whitespace();
                        let n: u64 = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
                        vram += match words.next() {
                            Some("KiB") => n * 1024,
                            Some("MiB") => n * 1024 * 1024,
                            _ => n,
                        };
                    }
                }
            }
        }
        (clients, vram)
    }

    /// The least any correct scan does: list every process's `fd` directory and `readlink`
    /// every entry once (no parsing), with the cheapest calls there are — `openat` +
    /// `getdents` into a kept buffer + `readlinkat` of the bare name, as the scan itself
    /// does. Which fds are DRM clients is only known from their link targets, so no scan can
    /// skip this. With `read_drm_fdinfo`, each fd whose target is a `/dev/dri/` node also has
    /// its fdinfo read (`openat` + one `pread`), as a scan must to learn the client's memory.
    /// `threads` threads take processes in batches of 16, as the scan's do.
    ///
    /// Returns the links read.
    fn floor(proc_root: &Path, threads: usize, read_drm_fdinfo: bool) -> usize {
        use std::mem::MaybeUninit;
        use std::sync::atomic::{AtomicUsize, Ordering};

        use rustix::fs::{CWD, Mode, OFlags, RawDir, openat, readlinkat_raw};
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let Ok(root) = openat(CWD, proc_root, flags, Mode::empty()) else {
            return 0;
        };
        let Ok(entries) = std::fs::read_dir(proc_root) else {
            return 0;
        };
        let pids: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|name| name.parse::<u32>().is_ok())
            .collect();
        let next = AtomicUsize::new(0);
        let work = || {
            let mut dir_buffer = vec![MaybeUninit::<u8>::uninit(); 8192];
            let mut link = vec![0_u8; 1024];
            let mut text = vec![0_u8; 4096];
            let mut links = 0;
            loop {
                let start = next.fetch_add(16, Ordering::Relaxed);
                let Some(batch) = pids.get(start..pids.len().min(start + 16)) else {
                    break;
                };
                if batch.is_empty() {
                    break;
                }
                for pid in batch {
                    let Ok(fds) = openat(&root, format!("{pid}/fd").as_str(), flags, Mode::empty())
                    else {
                        continue;
                    };
                    let mut dir = RawDir::new(&fds, &mut dir_buffer);
                    while let Some(Ok(fd)) = dir.next() {
                        if fd.file_name().to_bytes().starts_with(b".") {
                            continue;
                        }
                        let Ok(length) = readlinkat_raw(&fds, fd.file_name(), &mut link[..]) else {
                            continue;
                        };
                        links += 1;
                        if read_drm_fdinfo && link[..length].starts_with(b"/dev/dri/") {
                            let name = String::from_utf8_lossy(fd.file_name().to_bytes());
                            let path = format!("{pid}/fdinfo/{name}");
                            if let Ok(file) =
                                openat(&root, path.as_str(), OFlags::RDONLY, Mode::empty())
                            {
                                black_box(rustix::io::pread(&file, &mut text, 0).ok());
                            }
                        }
                    }
                }
            }
            links
        };
        std::thread::scope(|scope| {
            let others: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
            work() + others.into_iter().map(|t| t.join().unwrap()).sum::<usize>()
        })
    }

    /// Real processes for the real-/proc benchmark: children forked from here, each holding
    /// the same 32 fds (stdin/out/err and 29 open files; in one child of twenty the files
    /// are named `…/dri/renderD128`, so the scan takes them for DRM nodes and reads their
    /// fdinfo, as it would a GPU client's). Killed and reaped on drop.
    struct Crowd {
        pids: Vec<libc::pid_t>,
        _files: tempfile::TempDir,
    }

    impl Crowd {
        fn spawn(count: usize) -> Self {
            use std::os::fd::IntoRawFd;
            let files = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(files.path().join("dri")).unwrap();
            let drm = files.path().join("dri/renderD128");
            let plain = files.path().join("model.bin");
            std::fs::write(&drm, "x").unwrap();
            std::fs::write(&plain, "x").unwrap();
            let mut pids = Vec::with_capacity(count);
            for (path, share) in [(&drm, count / 20), (&plain, count - count / 20)] {
                let fds: Vec<i32> = (0..29)
                    .map(|_| std::fs::File::open(path).unwrap().into_raw_fd())
                    .collect();
                for _ in 0..share {
                    // SAFETY: the child only calls async-signal-safe functions (pause, _exit)
                    // before it is killed, so forking this multi-threaded process is sound.
                    let pid = unsafe { libc::fork() };
                    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
                    if pid == 0 {
                        // SAFETY: as above.
                        unsafe {
                            libc::pause();
                            libc::_exit(0)
                        }
                    }
                    pids.push(pid);
                }
                for fd in fds {
                    // SAFETY: `fd` was opened above and is closed once.
                    unsafe { libc::close(fd) };
                }
            }
            Self {
                pids,
                _files: files,
            }
        }
    }

    impl Drop for Crowd {
        fn drop(&mut self) {
            for &pid in &self.pids {
                // SAFETY: `pid` is a child of this process, killed and reaped once.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
            }
        }
    }

    pub fn scans(c: &mut Criterion) {
        let mut group = c.benchmark_group("drm_scan");
        group.sample_size(20);
        // Building a tree takes longer than measuring it: `HYPOMNESIS_DRM_BENCH_PROCESSES=1000`
        // builds only the 1,000-process ones.
        let sizes: Vec<u32> = std::env::var("HYPOMNESIS_DRM_BENCH_PROCESSES")
            .ok()
            .map(|list| {
                list.split(',')
                    .filter_map(|n| n.trim().parse().ok())
                    .collect()
            })
            .unwrap_or_else(|| vec![1_000, 4_000]);
        for (processes, spread) in sizes
            .iter()
            .flat_map(|&processes| [(processes, false), (processes, true)])
        {
            let tree = DrmTree::synthetic(processes, 32, spread);
            let probe = probe(&tree.proc(), &tree.sys());
            let listing = probe.gpu_process_listing(0).unwrap();
            let gpu_processes = if spread { processes } else { processes / 20 };
            assert_eq!(listing.rows.len(), gpu_processes as usize);
            let label = format!(
                "{processes}x32 {}",
                if spread { "spread" } else { "clustered" }
            );
            group.bench_function(BenchmarkId::new("hypomnesis listing", &label), |b| {
                b.iter(|| black_box(probe.gpu_process_listing(0).unwrap().rows.len()));
            });
            let (clients, _) = naive_scan(&tree.proc());
            assert_eq!(clients, (processes * 32 / 20) as usize);
            group.bench_function(BenchmarkId::new("naive read every fdinfo", &label), |b| {
                b.iter(|| black_box(naive_scan(&tree.proc())));
            });
            if !spread {
                assert_eq!(floor(&tree.proc(), 1, false), (processes * 32) as usize);
                group.bench_function(
                    BenchmarkId::new("floor: readlinkat every fd, one thread", &label),
                    |b| b.iter(|| black_box(floor(&tree.proc(), 1, false))),
                );
                // The scan's own thread count (`available_parallelism`, at most 4).
                let threads = std::thread::available_parallelism()
                    .map_or(1, std::num::NonZeroUsize::get)
                    .min(4);
                group.bench_function(
                    BenchmarkId::new(
                        format!("floor: readlinkat every fd + DRM fdinfo, {threads} threads"),
                        &label,
                    ),
                    |b| b.iter(|| black_box(floor(&tree.proc(), threads, true))),
                );
            }
        }
        let sys = DrmTree::synthetic(0, 0, true);
        // This machine's real /proc, and again with 1,000 more real processes of 32 fds each.
        let real = probe(Path::new("/proc"), &sys.sys());
        {
            let crowd = Crowd::spawn(1_000);
            real.gpu_process_listing(0).unwrap();
            group.sample_size(10);
            group.bench_function("hypomnesis listing/real /proc + 1000x32 processes", |b| {
                b.iter(|| black_box(real.gpu_process_listing(0).unwrap().rows.len()));
            });
            group.bench_function(
                "naive read every fdinfo/real /proc + 1000x32 processes",
                |b| {
                    b.iter(|| black_box(naive_scan(Path::new("/proc"))));
                },
            );
            drop(crowd);
            group.sample_size(20);
        }
        real.gpu_process_listing(0).unwrap();
        group.bench_function("hypomnesis listing/real /proc", |b| {
            b.iter(|| black_box(real.gpu_process_listing(0).unwrap().rows.len()));
        });
        group.bench_function("naive read every fdinfo/real /proc", |b| {
            b.iter(|| black_box(naive_scan(Path::new("/proc"))));
        });
        group.finish();
    }

    /// The kernel's price per call that the scan's floor is made of, each alone in a hot
    /// loop: BENCHMARKS.md explains the DRM figures with them. `getppid` is the cheapest
    /// system call there is (the cost of entering the kernel); the rest are the scan's own
    /// calls on a synthetic tree (a fixture symlink; an ext4 or tmpfs directory of 32 links)
    /// and on this process's real `/proc/self/fd` (procfs builds the target's path).
    pub fn syscalls(c: &mut Criterion) {
        use std::mem::MaybeUninit;

        use rustix::fs::{
            AtFlags, CWD, Mode, OFlags, RawDir, SeekFrom, openat, readlinkat_raw, seek, statat,
        };
        let mut group = c.benchmark_group("drm_syscalls");
        let directory = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        group.bench_function("getppid", |b| b.iter(|| black_box(libc_getppid())));

        let tree = DrmTree::synthetic(1, 32, false);
        let fds = openat(CWD, tree.proc().join("1000/fd"), directory, Mode::empty()).unwrap();
        let mut link = vec![0_u8; 1024];
        group.bench_function("readlinkat of a fd link, synthetic tree", |b| {
            b.iter(|| black_box(readlinkat_raw(&fds, "3", &mut link[..]).unwrap()));
        });
        let mut dir_buffer = vec![MaybeUninit::<u8>::uninit(); 8192];
        let mut count = |fds: &rustix::fd::OwnedFd| {
            seek(fds, SeekFrom::Start(0)).unwrap();
            let mut dir = RawDir::new(fds, &mut dir_buffer);
            let mut entries = 0;
            while let Some(Ok(_)) = dir.next() {
                entries += 1;
            }
            entries
        };
        assert_eq!(count(&fds), 34, "32 links, . and ..");
        group.bench_function("getdents of a 32-entry fd directory, synthetic tree", |b| {
            b.iter(|| black_box(count(&fds)));
        });

        // 32 open files in this process, as a process of the synthetic tree has.
        let files: Vec<std::fs::File> = (0..29)
            .map(|_| std::fs::File::open(tree.proc().join("1000/fdinfo/3")).unwrap())
            .collect();
        let real = openat(CWD, "/proc/self/fd", directory, Mode::empty()).unwrap();
        let name = {
            use std::os::fd::AsRawFd;
            files[0].as_raw_fd().to_string()
        };
        group.bench_function("readlinkat of a fd link, real /proc/self/fd", |b| {
            b.iter(|| black_box(readlinkat_raw(&real, name.as_str(), &mut link[..]).unwrap()));
        });
        group.bench_function("stat through a fd link, real /proc/self/fd", |b| {
            b.iter(|| black_box(statat(&real, name.as_str(), AtFlags::empty()).unwrap()));
        });
        group.bench_function("getdents of the real /proc/self/fd (about 33 fds)", |b| {
            b.iter(|| black_box(count(&real)));
        });
        group.finish();
        drop(files);
    }

    /// `getppid(2)`, which cannot fail and touches no memory of the caller.
    fn libc_getppid() -> libc::pid_t {
        // SAFETY: getppid has no preconditions and no side effects.
        unsafe { libc::getppid() }
    }

    pub fn telemetry(c: &mut Criterion) {
        let mut group = c.benchmark_group("drm_telemetry");
        let tree = super::tree::telemetry_tree();
        let probe = probe(&tree.proc(), &tree.sys());
        for index in 0..4 {
            probe.telemetry(index).unwrap();
        }
        group.bench_function("4 devices", |b| {
            b.iter(|| {
                for index in 0..4 {
                    black_box(probe.telemetry(index).unwrap());
                }
            });
        });
        // One device listing for all four, as a sampler of every GPU does.
        group.bench_function("4 devices, telemetry_all", |b| {
            b.iter(|| black_box(probe.telemetry_all().unwrap()));
        });
        group.finish();
    }
}

#[cfg(target_os = "linux")]
criterion::criterion_group!(benches, linux::scans, linux::syscalls, linux::telemetry);
#[cfg(target_os = "linux")]
criterion::criterion_main!(benches);

#[cfg(not(target_os = "linux"))]
fn main() {}

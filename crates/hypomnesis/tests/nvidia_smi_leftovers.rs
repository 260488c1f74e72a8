//! What a misbehaving `nvidia-smi` leaves behind in the calling program: nothing. No process
//! (whatever it started included), no thread, and no memory in proportion to what it printed.
//!
//! Each test runs in a process of its own, with a variable in its environment that every
//! `nvidia-smi` it starts inherits, and passes it on to whatever that starts: the processes
//! carrying it after the query are its leftovers, wherever they were reparented. Threads are
//! counted in `/proc/self/task` before and after, in that same process. The stand-in
//! `fixtures/nvidia-smi/bin/nvidia-smi` plays the misbehaviour (`hang`, `linger`, `flood`).
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::time::Duration;

use hypomnesis::{GpuQuerySource, HypomnesisError, Probe};
use test_support::{
    in_own_process, leftover_processes_with_env, own_thread_count, processes_with_env,
};

/// Carried by every process a test's `nvidia-smi` starts.
const TAG: &str = "HYPOMNESIS_TEST_HELPER_TAG";
const TIMEOUT: Duration = Duration::from_secs(2);

/// Runs `body` in a process of its own carrying a [`TAG`] unique to this test run; `body`
/// gets the tag's value.
fn tagged(test: &'static str, body: impl FnOnce(&str)) {
    in_own_process(
        test,
        || vec![(TAG, format!("{test}-{}", std::process::id()).into())],
        || body(&std::env::var(TAG).expect("set by the parent")),
    );
}

/// A probe whose `nvidia-smi` is the stand-in replaying `fixture`, through a symlink in a
/// directory named after it (kept in `dir`), with NVML off and an empty `/proc` root.
fn probe(dir: &Path, fixture: &str, builder: hypomnesis::ProbeBuilder) -> Probe {
    let stand_in = test_support::fixtures_dir().join("nvidia-smi/bin/nvidia-smi");
    let link: PathBuf = dir.join(fixture).join("nvidia-smi");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(stand_in, &link).unwrap();
    std::fs::create_dir_all(dir.join("proc")).unwrap();
    builder
        .use_nvml(false)
        .nvidia_smi(link)
        .proc_root(dir.join("proc"))
        .build()
}

/// The `nvidia-smi` attempt's reason in a `NoGpuSource` error.
fn smi_reason(err: &HypomnesisError) -> String {
    let HypomnesisError::NoGpuSource { attempts } = err else {
        panic!("expected NoGpuSource, got {err:?}");
    };
    attempts
        .iter()
        .find(|a| a.backend == GpuQuerySource::NvidiaSmi)
        .unwrap_or_else(|| panic!("no nvidia-smi attempt in {attempts:?}"))
        .reason
        .clone()
}

fn assert_nothing_left(tag: &str, threads_before: usize) {
    let left = leftover_processes_with_env(TAG, tag);
    assert!(left.is_empty(), "processes left behind: {left:?}");
    // A joined thread may stay listed for a moment; a blocked one stays.
    wait_for("the thread count to come back", || {
        own_thread_count() == threads_before
    });
}

/// Waits up to 10 s for `done`, then fails saying what did not happen.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            std::time::Instant::now() < give_up,
            "waited 10 s for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_hung_nvidia_smi_and_what_it_started_are_killed_at_the_timeout() {
    tagged(
        "a_hung_nvidia_smi_and_what_it_started_are_killed_at_the_timeout",
        |tag| {
            let dir = tempfile::tempdir().unwrap();
            let p = probe(
                dir.path(),
                "hang",
                Probe::builder().nvidia_smi_timeout(Duration::from_secs(1)),
            );
            let threads = own_thread_count();
            for _ in 0..2 {
                let reason = smi_reason(&p.device_count().unwrap_err());
                assert!(reason.contains("did not answer within 1s"), "{reason}");
            }
            assert_nothing_left(tag, threads);
        },
    );
}

#[test]
fn a_wrapper_that_leaves_a_process_holding_stdout_is_answered_and_leaves_nothing_behind() {
    tagged(
        "a_wrapper_that_leaves_a_process_holding_stdout_is_answered_and_leaves_nothing_behind",
        |tag| {
            let dir = tempfile::tempdir().unwrap();
            let p = probe(
                dir.path(),
                "linger",
                Probe::builder().nvidia_smi_timeout(TIMEOUT),
            );
            let threads = own_thread_count();
            for _ in 0..3 {
                // The wrapper exited after printing the answer: that answer is taken.
                let d = p.device_info(0).unwrap();
                assert_eq!(d.total_bytes, Some(81559 * 1_048_576));
                assert!(p.processes(0).unwrap().is_empty());
            }
            assert_nothing_left(tag, threads);
        },
    );
}

#[test]
fn a_flood_of_output_is_cut_at_the_cap_without_memory_growing_with_it() {
    tagged(
        "a_flood_of_output_is_cut_at_the_cap_without_memory_growing_with_it",
        |tag| {
            let dir = tempfile::tempdir().unwrap();
            let p = probe(
                dir.path(),
                "flood",
                Probe::builder().nvidia_smi_timeout(Duration::from_secs(60)),
            );
            let threads = own_thread_count();
            let peak_before = peak_rss_bytes();
            let err = p.device_count().unwrap_err();
            // The stand-in prints 100 MB. Reading up to the 4 MiB cap costs about that much;
            // the peak grew by 48 MiB when the first 16 MiB were kept (and copied) and the
            // rest read and dropped.
            let growth = peak_rss_bytes().saturating_sub(peak_before);
            assert!(
                growth < 16 * 1_048_576,
                "peak RSS grew by {} MiB",
                growth / 1_048_576
            );
            let reason = smi_reason(&err);
            assert!(reason.contains("printed more than 4 MiB"), "{reason}");
            assert_nothing_left(tag, threads);
        },
    );
}

/// `VmHWM` of this process: the peak resident set since it started.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

#[test]
fn kill_helper_processes_ends_a_query_running_on_another_thread() {
    tagged(
        "kill_helper_processes_ends_a_query_running_on_another_thread",
        |tag| {
            let dir = tempfile::tempdir().unwrap();
            let p = probe(
                dir.path(),
                "hang",
                Probe::builder().nvidia_smi_timeout(Duration::from_secs(60)),
            );
            let threads = own_thread_count();
            std::thread::scope(|s| {
                let query = s.spawn(|| p.device_count());
                // Until the query ends: the first calls may come before its helper is running.
                wait_for("the query to end", || {
                    hypomnesis::kill_helper_processes();
                    query.is_finished()
                });
                let reason = smi_reason(&query.join().unwrap().unwrap_err());
                assert!(reason.contains("ended by a signal"), "{reason}");
            });
            assert_nothing_left(tag, threads);
        },
    );
}

/// The program exits (`std::process::exit`) while another thread waits on a hung
/// `nvidia-smi`: no destructor runs, and still nothing it started outlives the program.
#[test]
fn helpers_still_running_when_the_program_exits_are_killed() {
    const TEST: &str = "helpers_still_running_when_the_program_exits_are_killed";
    const EXIT_ENV: &str = "HYPOMNESIS_TEST_EXIT_WITH_A_HELPER_RUNNING";
    if let Some(dir) = std::env::var_os(EXIT_ENV) {
        let tag = std::env::var(TAG).expect("set by the parent");
        let p = probe(
            Path::new(&dir),
            "hang",
            Probe::builder().nvidia_smi_timeout(Duration::from_secs(60)),
        );
        std::thread::spawn(move || p.device_count());
        wait_for("the hung nvidia-smi to sleep", || {
            processes_with_env(TAG, &tag)
                .iter()
                .any(|(_, cmdline)| cmdline.starts_with("sleep"))
        });
        // The script is past its start, so the query is in its read loop by now, registered.
        std::thread::sleep(Duration::from_millis(200));
        std::process::exit(0);
    }
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("{TEST}-{}", std::process::id());
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(EXIT_ENV, dir.path())
        .env(TAG, &tag)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the exiting test process failed: {status}"
    );
    let left = leftover_processes_with_env(TAG, &tag);
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

//! Shared helpers for hypomnesis tests (a dev-dependency only; panics freely).
//!
//! - [`workspace_root`], [`fixtures_dir`], [`nvml_scenario`]: where things are.
//! - [`nvml_double`]: builds `crates/nvml-double` (once per process, serialised across
//!   processes) in its own target dir, so it never waits on the outer `cargo test`'s lock.
//! - [`nvml_double_for`]: a directory holding the double as `libnvidia-ml.so.1`, with the
//!   scenario's `missing_symbols` made unresolvable.
//! - [`pynvml_python`]: a venv with NVIDIA's Python binding, for fidelity checks.
//! - [`in_own_process`]: runs a test's body in a child process of its own (NVML state and
//!   `getrusage(RUSAGE_CHILDREN)` are process-wide; cargo runs tests as threads).
//! - [`as_unprivileged_user`]: runs a test's body where file permissions apply, also as root.
//! - [`ram_pattern`]: builds this crate's `ram-pattern` program (a process whose memory does
//!   known things at known times) for tests of other crates, which cannot name another
//!   package's binary.
//! - [`module_graph`]: a crate's module graph read from its source, and its import cycles.
//! - [`servers`]: `hmn serve` on the double, canned and silent endpoints, and a real
//!   Prometheus scraping them through `file_sd`, for the fleet views' tests and benches.
//!
//! NVML's state is process-wide: run each scenario in its own process (`LD_LIBRARY_PATH=<dir>
//! NVML_DOUBLE_SCENARIO=<file>`, or the absolute path `<dir>/libnvidia-ml.so.1`).

pub mod json_docs;
pub mod module_graph;
pub mod servers;

use std::ffi::OsString;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The file name the copies of the double get in [`nvml_double_for`]'s directory.
#[cfg(windows)]
const NVML_FILE_NAME: &str = "nvml.dll";
#[cfg(not(windows))]
const NVML_FILE_NAME: &str = "libnvidia-ml.so.1";

/// What [`pynvml_python`] installs. Pinned so a new release cannot change CI under us; the
/// fidelity test is what tells whether a newer binding still agrees with the double.
const PYNVML_REQUIREMENT: &str = "nvidia-ml-py==13.615.71";

/// The workspace root (two levels above this crate's manifest).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} has no grandparent", manifest.display()))
        .to_path_buf()
}

/// `<workspace>/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    workspace_root().join("fixtures")
}

/// `<workspace>/fixtures/nvml/<name>.json`; panics if there is no such scenario.
pub fn nvml_scenario(name: &str) -> PathBuf {
    let dir = fixtures_dir().join("nvml");
    let path = dir.join(format!("{name}.json"));
    if !path.is_file() {
        let mut known: Vec<String> = fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let p = e.path();
                        (p.extension()? == "json")
                            .then(|| p.file_stem()?.to_str().map(String::from))?
                    })
                    .collect()
            })
            .unwrap_or_default();
        known.sort();
        panic!(
            "no NVML scenario {name:?}: {} does not exist (scenarios: {})",
            path.display(),
            known.join(", ")
        );
    }
    path
}

fn target_dir() -> PathBuf {
    workspace_root().join("target")
}

/// Scenario `base` changed by `edit` (a hang, an injected error), written to
/// `target/test-scenarios/<name>.json` — outside `fixtures/nvml`, whose every file the
/// pynvml check reads, since a hanging scenario would hang that check. Returns its path.
pub fn nvml_scenario_variant(
    base: &str,
    name: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> PathBuf {
    let text = fs::read_to_string(nvml_scenario(base))
        .unwrap_or_else(|e| panic!("cannot read scenario {base}: {e}"));
    let mut scenario: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("scenario {base} is not JSON: {e}"));
    edit(&mut scenario);
    let dir = target_dir().join("test-scenarios");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let path = dir.join(format!("{name}.json"));
    // Written aside and renamed into place: tests of one binary run at once, and one may
    // read the scenario while another writes the same variant (a reader must never see a
    // half-written or empty file).
    static WRITES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let write = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let aside = dir.join(format!("{name}.json.{}.{write}.tmp", std::process::id()));
    fs::write(&aside, scenario.to_string())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", aside.display()));
    fs::rename(&aside, &path)
        .unwrap_or_else(|e| panic!("cannot rename {} into place: {e}", aside.display()));
    path
}

/// Runs `f` holding an exclusive lock on `<workspace>/target/<name>` (a cross-process lock:
/// several test binaries run at once). The lock is released when `f` returns or panics.
fn with_file_lock<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let dir = target_dir();
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let path = dir.join(name);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open lock file {}: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
    let out = f();
    drop(file); // closing releases the lock
    out
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn run(cmd: &mut Command) -> Result<Output, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("`{}` could not start: {e}", describe(cmd)))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "`{}` failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Builds the NVML double (`cargo build -p nvml-double` in `<workspace>/target/nvml-double-build`)
/// and returns the path of the built library (`libnvml_double.so` on Linux). Builds once per
/// process; concurrent test processes take turns through a file lock (cargo's no-op rebuild
/// then takes a fraction of a second). Panics with cargo's output if the build fails.
pub fn nvml_double() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| with_file_lock("nvml-double-build.lock", build_double))
        .clone()
}

fn build_double() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let target = target_dir().join("nvml-double-build");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "-p", "nvml-double", "--target-dir"])
        .arg(&target)
        // Line tables keep panics' backtraces useful; full debug info would make every
        // per-scenario copy ~8 MB instead of ~1.5 MB.
        .env("CARGO_PROFILE_DEV_DEBUG", "line-tables-only");
    if let Err(e) = run(&mut cmd) {
        panic!("building the NVML double failed: {e}");
    }
    let lib = target.join("debug").join(format!(
        "{}nvml_double{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(
        lib.is_file(),
        "cargo built the NVML double but {} does not exist",
        lib.display()
    );
    lib
}

/// The NVML double built with optimisations, as `<dir>/libnvidia-ml.so.1`, for benches: the
/// test build ([`nvml_double`]) is unoptimised, and its parse of a large scenario would
/// outweigh what is measured (the real library is optimised C and parses nothing).
pub fn nvml_double_optimised() -> PathBuf {
    let target = workspace_root().join("target/nvml-double-release");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(workspace_root())
        .args([
            "build",
            "--release",
            "-q",
            "-p",
            "nvml-double",
            "--target-dir",
        ])
        .arg(&target)
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "building the NVML double failed"
    );
    let dir = target.join("as-libnvidia-ml");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        target.join("release/libnvml_double.so"),
        dir.join("libnvidia-ml.so.1"),
    )
    .unwrap();
    dir
}

/// The `bin` directory of a venv under `target/bench-venv` holding the peer tools the benches
/// compare against (`gpustat`, `nvitop`, from the Python package index), created on first use.
pub fn python_bench_tools() -> PathBuf {
    let venv = workspace_root().join("target/bench-venv");
    let bin = venv.join("bin");
    if !bin.join("gpustat").exists() || !bin.join("nvitop").exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(bin.join("pip"))
                .args(["install", "-q", "gpustat", "nvitop"])
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            ok,
            "could not create {} with gpustat and nvitop",
            venv.display()
        );
    }
    bin
}

/// Builds this crate's `ram-pattern` program (`cargo build -p test-support --bin ram-pattern`
/// in `<workspace>/target/test-programs`, once per process, serialised across processes like
/// [`nvml_double`]) and returns its path. See `src/bin/ram-pattern.rs` for what it does.
pub fn ram_pattern() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| with_file_lock("test-programs-build.lock", build_ram_pattern))
        .clone()
}

fn build_ram_pattern() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let target = target_dir().join("test-programs");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args([
            "build",
            "-p",
            "test-support",
            "--bin",
            "ram-pattern",
            "--target-dir",
        ])
        .arg(&target)
        // Optimised, so that writing a 200 MiB spike takes milliseconds, not a second.
        .env("CARGO_PROFILE_DEV_OPT_LEVEL", "2");
    if let Err(e) = run(&mut cmd) {
        panic!("building ram-pattern failed: {e}");
    }
    let exe = target
        .join("debug")
        .join(format!("ram-pattern{}", std::env::consts::EXE_SUFFIX));
    assert!(
        exe.is_file(),
        "cargo built ram-pattern but {} does not exist",
        exe.display()
    );
    exe
}

/// A directory holding a copy of the double named `libnvidia-ml.so.1`, for `scenario`:
/// `<workspace>/target/nvml-double/<scenario stem>/`, or `<stem>-<hash of its
/// missing_symbols>/` when it has some.
///
/// If the scenario lists `missing_symbols`, the copy is patched so that `dlsym` fails for
/// exactly those names: every `\0<name>\0` in the file gets its first letter replaced by `X`
/// (in the dynamic string table that renames the exported symbol). The file is written to a
/// temporary name and renamed, so a concurrent test never sees it half-written.
pub fn nvml_double_for(scenario: &Path) -> PathBuf {
    let missing = missing_symbols(scenario);
    let source = nvml_double();
    let mut bytes =
        fs::read(&source).unwrap_or_else(|e| panic!("cannot read {}: {e}", source.display()));
    let counts = patch_out_symbols(&mut bytes, &missing);
    for (name, patched) in missing.iter().zip(counts) {
        assert!(
            patched > 0,
            "{}: missing_symbols names {name:?}, which the NVML double does not export",
            scenario.display()
        );
    }
    let stem = scenario
        .file_stem()
        .unwrap_or_else(|| panic!("{} has no file name", scenario.display()))
        .to_string_lossy();
    // Copies differ only by their patched symbols: key the directory by them too, so two
    // scenario files with the same stem can never overwrite each other's copy.
    let leaf = if missing.is_empty() {
        stem.into_owned()
    } else {
        format!("{stem}-{:016x}", fnv1a(missing.join("\n").as_bytes()))
    };
    let dir = target_dir().join("nvml-double").join(leaf);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let dest = dir.join(NVML_FILE_NAME);
    if fs::read(&dest).ok().as_deref() != Some(bytes.as_slice()) {
        write_atomically(&dest, &bytes);
    }
    dir
}

/// The scenario's `missing_symbols`, sorted and deduplicated.
fn missing_symbols(scenario: &Path) -> Vec<String> {
    let text = fs::read_to_string(scenario)
        .unwrap_or_else(|e| panic!("cannot read NVML scenario {}: {e}", scenario.display()));
    let doc: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("NVML scenario {} is not JSON: {e}", scenario.display()));
    let mut names: Vec<String> = match doc.get("missing_symbols") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .unwrap_or_else(|| {
                        panic!(
                            "{}: missing_symbols must hold strings, found {v}",
                            scenario.display()
                        )
                    })
                    .to_string()
            })
            .collect(),
        Some(other) => panic!(
            "{}: missing_symbols must be an array, found {other}",
            scenario.display()
        ),
    };
    names.sort();
    names.dedup();
    names
}

/// Replaces the first byte of every `\0<name>\0` in `bytes` with `X`, for each of `names`;
/// returns how many occurrences of each name were patched. One pass over the NUL-delimited
/// segments of the file (fast even in a debug build of the tests).
fn patch_out_symbols(bytes: &mut [u8], names: &[String]) -> Vec<usize> {
    let mut counts = vec![0; names.len()];
    let longest = names.iter().map(String::len).max().unwrap_or(0);
    let Some(mut nul) = bytes.iter().position(|&b| b == 0) else {
        return counts;
    };
    while let Some(len) = bytes[nul + 1..].iter().position(|&b| b == 0) {
        let segment = nul + 1..nul + 1 + len;
        if (1..=longest).contains(&len)
            && let Some(k) = names
                .iter()
                .position(|n| n.as_bytes() == &bytes[segment.clone()])
        {
            bytes[segment.start] = b'X';
            counts[k] += 1;
        }
        nul = segment.end;
    }
    counts
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn write_atomically(dest: &Path, bytes: &[u8]) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = dest.parent().unwrap_or_else(|| Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        dest.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    fs::write(&tmp, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", tmp.display()));
    if let Err(e) = fs::rename(&tmp, dest) {
        let _ = fs::remove_file(&tmp);
        panic!("cannot rename {} to {}: {e}", tmp.display(), dest.display());
    }
}

/// The Python of a venv (`<workspace>/target/pynvml-venv`) with NVIDIA's `nvidia-ml-py`
/// (module `pynvml`) installed; created on first use, once, under a file lock. Needs `python3`
/// with the venv module and the Python package index the first time. Panics loudly if it
/// cannot be created: the fidelity check must never be skipped silently.
pub fn pynvml_python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| with_file_lock("pynvml-venv.lock", create_pynvml_venv))
        .clone()
}

fn create_pynvml_venv() -> PathBuf {
    let venv = target_dir().join("pynvml-venv");
    let python = if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    };
    let marker = venv.join(".hypomnesis-ready");
    if python.is_file() && fs::read_to_string(&marker).ok().as_deref() == Some(PYNVML_REQUIREMENT) {
        return python;
    }
    let loud = |what: &str, detail: &str| -> ! {
        panic!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !!! cannot create the pynvml venv at {}: {what}\n\
             !!! The NVML double cannot be checked against NVIDIA's Python binding.\n\
             !!! Needs python3 with venv/ensurepip (Debian: apt-get install python3-venv)\n\
             !!! and the Python package index reachable for `pip install {PYNVML_REQUIREMENT}`.\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n{detail}",
            venv.display()
        )
    };
    let system_python = if cfg!(windows) { "python" } else { "python3" };
    let _ = fs::remove_file(&marker);
    if let Err(e) = run(Command::new(system_python)
        .args(["-m", "venv", "--clear"])
        .arg(&venv))
    {
        loud("python3 -m venv failed", &e);
    }
    if let Err(e) = run(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
        PYNVML_REQUIREMENT,
    ])) {
        loud("pip install failed", &e);
    }
    if let Err(e) = run(Command::new(&python).args(["-c", "import pynvml"])) {
        loud("pynvml does not import after installation", &e);
    }
    fs::write(&marker, PYNVML_REQUIREMENT)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", marker.display()));
    python
}

/// The environment variable naming the one test a re-run test binary should execute.
const OWN_PROCESS_ENV: &str = "TEST_SUPPORT_OWN_PROCESS";
/// Printed by the child after the body, so a filter that matches nothing cannot pass.
const OWN_PROCESS_MARKER: &str = "test body ran in its own process:";

/// Runs `body` in a process of its own: the current test binary re-run with the exact filter
/// `test` (the test function's path, e.g. `"my_test"` at the top level of an integration test
/// file), with the variables from `parent_env` set. `parent_env` runs only in the parent, so
/// costly set-up (building the NVML double) happens once. The child prints a marker after the
/// body; the parent asserts the child succeeded and printed it.
///
/// Inside the child, `true` is returned after the body ran; the parent returns `false`. Other
/// tests called in a child (there are none, with an exact filter) do nothing.
pub fn in_own_process(
    test: &str,
    parent_env: impl FnOnce() -> Vec<(&'static str, OsString)>,
    body: impl FnOnce(),
) {
    in_own_process_as(test, None, parent_env, body);
}

/// The user and group id [`as_unprivileged_user`] runs a body as when the tests run as root:
/// `nobody`'s (65534 on Debian and most distributions; the id need not exist in
/// `/etc/passwd` for the kernel's permission checks to apply to it).
#[cfg(unix)]
pub const UNPRIVILEGED_ID: u32 = 65534;

/// Runs `body` where file permissions apply to it: directly when the tests run as an
/// ordinary user, and as root (CI) in a process of its own (see [`in_own_process`]) whose
/// user and group are [`UNPRIVILEGED_ID`] — root reads a mode-000 directory anyway, so an
/// `EACCES` path can only be exercised by someone else. `body` builds its own fixtures (in
/// the temporary directory, writable by anyone), so they belong to whoever runs it.
///
/// Panics, failing the test, when root cannot switch users (a sandbox without
/// `CAP_SETUID`): such a test must not pass without having run.
#[cfg(unix)]
pub fn as_unprivileged_user(test: &str, body: impl FnOnce()) {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    // (The child, unprivileged, goes through `in_own_process_as` too, which prints its marker.)
    if !root && std::env::var_os(OWN_PROCESS_ENV).is_none() {
        body();
        return;
    }
    in_own_process_as(test, Some(UNPRIVILEGED_ID), Vec::new, || {
        // SAFETY: as above.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(euid, UNPRIVILEGED_ID, "the child runs unprivileged");
        body();
    });
}

/// [`in_own_process`], the child running with user and group id `id` when it is `Some`
/// (which needs root).
fn in_own_process_as(
    test: &str,
    id: Option<u32>,
    parent_env: impl FnOnce() -> Vec<(&'static str, OsString)>,
    body: impl FnOnce(),
) {
    match std::env::var(OWN_PROCESS_ENV) {
        Ok(running) if running == test => {
            body();
            println!("{OWN_PROCESS_MARKER} {test}");
            return;
        }
        Ok(_) => return,
        Err(_) => {}
    }
    let exe = std::env::current_exe().expect("the current test binary");
    let mut command = Command::new(exe);
    command
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(OWN_PROCESS_ENV, test)
        .envs(parent_env());
    #[cfg(unix)]
    if let Some(id) = id {
        use std::os::unix::process::CommandExt;
        // std drops the supplementary groups (setgroups) before setuid when root sets a uid.
        command.uid(id).gid(id);
    }
    #[cfg(not(unix))]
    let _ = id;
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("re-running the test binary (as user {id:?}) failed: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains(&format!("{OWN_PROCESS_MARKER} {test}")),
        "{test} failed in its own process\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `body` in a process of its own (see [`in_own_process`]) with the NVML double loaded
/// with scenario `scenario` (a name in `fixtures/nvml/`): `body` receives the path of the
/// double's `libnvidia-ml.so.1` and of the scenario file, and `NVML_DOUBLE_SCENARIO` is set.
pub fn with_nvml_double(test: &str, scenario: &str, body: impl FnOnce(PathBuf, PathBuf)) {
    with_nvml_double_scenario(test, &nvml_scenario(scenario), body);
}

/// As [`with_nvml_double`], with a scenario file anywhere (one a test writes itself, for
/// behaviour no scenario under `fixtures/nvml/` may have — a hang would stall the pynvml
/// check, which reads them all). The file must be at the same path in the child process.
pub fn with_nvml_double_scenario(test: &str, path: &Path, body: impl FnOnce(PathBuf, PathBuf)) {
    const LIB_ENV: &str = "TEST_SUPPORT_NVML_DOUBLE_LIB";
    let path = path.to_path_buf();
    let parent_env = || {
        let lib = nvml_double_for(&path).join("libnvidia-ml.so.1");
        vec![
            (LIB_ENV, lib.into_os_string()),
            ("NVML_DOUBLE_SCENARIO", path.clone().into_os_string()),
        ]
    };
    in_own_process(test, parent_env, || {
        let lib = PathBuf::from(std::env::var_os(LIB_ENV).expect("set by the parent"));
        body(lib, path.clone());
    });
}

/// The processes other than this one whose environment holds `name=value`, as (pid, command
/// line) pairs: everything descended from a process started with that variable, wherever it
/// was reparented. Linux only (reads `/proc/*/environ`); an exited process still waiting to be
/// reaped has no environment and is not counted.
#[cfg(target_os = "linux")]
pub fn processes_with_env(name: &str, value: &str) -> Vec<(u32, String)> {
    let needle = format!("{name}={value}");
    let own = std::process::id();
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc is readable").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own {
            continue;
        }
        let Ok(environ) = fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|&b| b == 0)
            .any(|var| var == needle.as_bytes())
        {
            let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push((pid, cmdline.trim_end().to_owned()));
        }
    }
    found
}

/// [`processes_with_env`] once it is empty, or after 10 s what is still there: a process sent
/// SIGKILL needs a moment to be gone, one that was never killed stays.
#[cfg(target_os = "linux")]
pub fn leftover_processes_with_env(name: &str, value: &str) -> Vec<(u32, String)> {
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left = processes_with_env(name, value);
        if left.is_empty() || std::time::Instant::now() > give_up {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// How many threads this process has now (`/proc/self/task`). Linux only.
#[cfg(target_os = "linux")]
pub fn own_thread_count() -> usize {
    fs::read_dir("/proc/self/task")
        .expect("/proc/self/task is readable")
        .count()
}

/// The address `hmn serve` printed as the first line of its stdout
/// (`http://ADDR/metrics`). Kills `child` and fails with its stderr (read from `stderr`) when
/// the line is anything else.
pub fn serve_address(child: &mut std::process::Child, stderr: &Path) -> std::net::SocketAddr {
    use std::io::BufRead;
    let mut line = String::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
    }
    line.trim()
        .strip_prefix("http://")
        .and_then(|l| l.strip_suffix("/metrics"))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| {
            let _ = child.kill();
            panic!(
                "hmn serve printed {line:?} instead of its URL; stderr:\n{}",
                std::fs::read_to_string(stderr).unwrap_or_default()
            )
        })
}

/// A client that holds a connection to `addr` open and reconnects as soon as it is cut: idle
/// (connects and sends nothing) or slowloris (a request head that never ends, a header line
/// every 200 ms). Runs until `stop`; counts its connections in `connected`. The attacker of
/// `hmn serve`'s connection-flood test and bench.
pub fn hold_connections_open(
    addr: std::net::SocketAddr,
    slowloris: bool,
    stop: &std::sync::atomic::AtomicBool,
    connected: &std::sync::atomic::AtomicUsize,
) {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
            std::thread::sleep(std::time::Duration::from_millis(10));
            continue;
        };
        connected.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_millis(200)));
        if slowloris && stream.write_all(b"GET /metrics HTTP/1.1\r\n").is_err() {
            continue;
        }
        let mut sink = [0_u8; 512];
        while !stop.load(Ordering::Relaxed) {
            match stream.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if slowloris && stream.write_all(b"X-Slow: 1\r\n").is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_replaces_only_whole_nul_delimited_names() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut b = b"nvmlA\0nvmlA\0nvmlA_v2\0xnvmlA\0\0nvmlB\0nvmlA\0nvmlA".to_vec();
        assert_eq!(
            patch_out_symbols(&mut b, &names(&["nvmlA", "nvmlB", "nvmlC"])),
            [2, 1, 0]
        );
        assert_eq!(&b, b"nvmlA\0XvmlA\0nvmlA_v2\0xnvmlA\0\0XvmlB\0XvmlA\0nvmlA");
        assert_eq!(patch_out_symbols(&mut b, &[]), Vec::<usize>::new());
        assert_eq!(patch_out_symbols(&mut [1, 2, 3], &names(&["a"])), [0]);
    }

    #[test]
    fn paths() {
        assert!(workspace_root().join("Cargo.toml").is_file());
        assert!(nvml_scenario("one_gpu").is_file());
    }

    #[test]
    #[should_panic(expected = "no NVML scenario \"no_such_scenario\"")]
    fn unknown_scenario_panics_clearly() {
        nvml_scenario("no_such_scenario");
    }
}

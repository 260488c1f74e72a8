//! The NVML double's C ABI, edge cases included, seen through `libloading` (what the
//! project's own code uses) and through `nvml-wrapper`.
//!
//! NVML state is process-wide and the scenario comes from the environment, so each scenario
//! runs in a child process: a `#[test]` here re-runs this test binary, filtered to one
//! `child_*` test, with `NVML_DOUBLE_SCENARIO` set. In a normal run the `child_*` tests return
//! at once (they only act when `NVML_DOUBLE_ABI_CHILD` names them).

#![warn(clippy::undocumented_unsafe_blocks)]

use std::ffi::{CStr, c_char, c_int, c_uint, c_ulonglong, c_void};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use libloading::Library;

const CHILD: &str = "NVML_DOUBLE_ABI_CHILD";
const LIB_VAR: &str = "NVML_DOUBLE_ABI_LIB";
const MIB: u64 = 1 << 20;

/// Every symbol the double exports.
const EXPORTS: &[&str] = &[
    "nvmlInit_v2",
    "nvmlInitWithFlags",
    "nvmlInit",
    "nvmlShutdown",
    "nvmlErrorString",
    "nvmlSystemGetDriverVersion",
    "nvmlSystemGetNVMLVersion",
    "nvmlSystemGetCudaDriverVersion",
    "nvmlSystemGetCudaDriverVersion_v2",
    "nvmlSystemGetProcessName",
    "nvmlDeviceGetCount_v2",
    "nvmlDeviceGetCount",
    "nvmlDeviceGetHandleByIndex_v2",
    "nvmlDeviceGetHandleByIndex",
    "nvmlDeviceGetIndex",
    "nvmlDeviceGetName",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetPciInfo_v3",
    "nvmlDeviceGetPciInfo_v2",
    "nvmlDeviceGetPciInfo",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetMemoryInfo_v2",
    "nvmlDeviceGetComputeRunningProcesses_v3",
    "nvmlDeviceGetComputeRunningProcesses_v2",
    "nvmlDeviceGetComputeRunningProcesses",
    "nvmlDeviceGetGraphicsRunningProcesses_v3",
    "nvmlDeviceGetGraphicsRunningProcesses_v2",
    "nvmlDeviceGetGraphicsRunningProcesses",
    "nvmlDeviceGetMPSComputeRunningProcesses_v3",
    "nvmlDeviceGetMPSComputeRunningProcesses_v2",
    "nvmlDeviceGetMPSComputeRunningProcesses",
    "nvmlDeviceGetMigMode",
    "nvmlDeviceGetCudaComputeCapability",
    "nvmlDeviceGetConfComputeMemSizeInfo",
    "nvmlDeviceGetRunningProcessDetailList",
];

// ---------------------------------------------------------------------------------------------
// Child-process plumbing

fn is_child(name: &str) -> bool {
    std::env::var(CHILD).as_deref() == Ok(name)
}

/// Runs `child` (a `child_*` test of this binary) in its own process against `lib_dir`'s
/// double and `scenario`; panics with its output unless it passed. Returns its output.
fn run_child(child: &str, lib_dir: &Path, scenario: Option<&Path>) -> Output {
    let exe = std::env::current_exe().expect("current test binary");
    let mut cmd = Command::new(exe);
    cmd.args([child, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, child)
        .env(LIB_VAR, lib_dir.join(lib_file_name()));
    match scenario {
        Some(s) => cmd.env("NVML_DOUBLE_SCENARIO", s),
        None => cmd.env_remove("NVML_DOUBLE_SCENARIO"),
    };
    let out = cmd.output().expect("re-run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child {child} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn lib_file_name() -> &'static str {
    if cfg!(windows) {
        "nvml.dll"
    } else {
        "libnvidia-ml.so.1"
    }
}

fn fixture_child(child: &str, scenario: &str) -> Output {
    let scenario = test_support::nvml_scenario(scenario);
    run_child(
        child,
        &test_support::nvml_double_for(&scenario),
        Some(&scenario),
    )
}

fn child_lib_path() -> PathBuf {
    PathBuf::from(std::env::var_os(LIB_VAR).expect("child runs with NVML_DOUBLE_ABI_LIB"))
}

fn write_scenario(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, body).expect("write scenario");
    path
}

// ---------------------------------------------------------------------------------------------
// The library through libloading

type Dev = *mut c_void;

#[repr(C)]
#[derive(Default, Clone, Copy, Debug, PartialEq)]
struct MemV1 {
    total: c_ulonglong,
    free: c_ulonglong,
    used: c_ulonglong,
}

#[repr(C)]
#[derive(Default, Clone, Copy, Debug, PartialEq)]
struct MemV2 {
    version: c_uint,
    total: c_ulonglong,
    reserved: c_ulonglong,
    free: c_ulonglong,
    used: c_ulonglong,
}

#[repr(C)]
#[derive(Default, Clone, Copy, Debug, PartialEq)]
struct ProcV1 {
    pid: c_uint,
    used: c_ulonglong,
}

#[repr(C)]
#[derive(Default, Clone, Copy, Debug, PartialEq)]
struct Proc {
    pid: c_uint,
    used: c_ulonglong,
    gi: c_uint,
    ci: c_uint,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct Pci {
    bus_id_legacy: [c_char; 16],
    domain: c_uint,
    bus: c_uint,
    device: c_uint,
    pci_device_id: c_uint,
    pci_sub_system_id: c_uint,
    bus_id: [c_char; 32],
}

type FnVoid = unsafe extern "C" fn() -> c_int;
type FnFlags = unsafe extern "C" fn(c_uint) -> c_int;
type FnErrStr = unsafe extern "C" fn(c_int) -> *const c_char;
type FnStr = unsafe extern "C" fn(*mut c_char, c_uint) -> c_int;
type FnInt = unsafe extern "C" fn(*mut c_int) -> c_int;
type FnUint = unsafe extern "C" fn(*mut c_uint) -> c_int;
type FnPidName = unsafe extern "C" fn(c_uint, *mut c_char, c_uint) -> c_int;
type FnHandle = unsafe extern "C" fn(c_uint, *mut Dev) -> c_int;
type FnDevUint = unsafe extern "C" fn(Dev, *mut c_uint) -> c_int;
type FnDevStr = unsafe extern "C" fn(Dev, *mut c_char, c_uint) -> c_int;
type FnPci = unsafe extern "C" fn(Dev, *mut Pci) -> c_int;
type FnMemV1 = unsafe extern "C" fn(Dev, *mut MemV1) -> c_int;
type FnMemV2 = unsafe extern "C" fn(Dev, *mut MemV2) -> c_int;
type FnProcs = unsafe extern "C" fn(Dev, *mut c_uint, *mut Proc) -> c_int;
type FnProcsV1 = unsafe extern "C" fn(Dev, *mut c_uint, *mut ProcV1) -> c_int;
type FnTwoUint = unsafe extern "C" fn(Dev, *mut c_uint, *mut c_uint) -> c_int;
type FnTwoInt = unsafe extern "C" fn(Dev, *mut c_int, *mut c_int) -> c_int;

struct Nvml(Library);

impl Nvml {
    fn open(path: &Path) -> Self {
        // SAFETY: the NVML double runs no initialisation code with preconditions on load.
        match unsafe { Library::new(path) } {
            Ok(lib) => Nvml(lib),
            Err(e) => panic!(
                "cannot load {}: {e} ({:?})",
                path.display(),
                std::error::Error::source(&e)
            ),
        }
    }

    fn has(&self, name: &str) -> bool {
        // SAFETY: only the symbol's address is looked up; `*const c_void` makes no claim.
        unsafe { self.0.get::<*const c_void>(name.as_bytes()) }.is_ok()
    }

    /// The function `name`, typed as `T` (which must be its C signature).
    fn f<T: Copy>(&self, name: &str) -> T {
        // SAFETY: every `T` used in this file is the nvml.h signature of the named function.
        match unsafe { self.0.get::<T>(name.as_bytes()) } {
            Ok(sym) => *sym,
            Err(e) => panic!("{name}: {e}"),
        }
    }

    fn string(&self, name: &str, len: c_uint) -> (c_int, String) {
        let mut buf = vec![0x55 as c_char; len as usize + 8];
        // SAFETY: `buf` has room for `len` bytes.
        let rc = unsafe { self.f::<FnStr>(name)(buf.as_mut_ptr(), len) };
        (rc, c_string(&buf))
    }

    fn dev_string(&self, name: &str, dev: Dev, len: c_uint) -> (c_int, String) {
        let mut buf = vec![0x55 as c_char; len as usize + 8];
        // SAFETY: `buf` has room for `len` bytes.
        let rc = unsafe { self.f::<FnDevStr>(name)(dev, buf.as_mut_ptr(), len) };
        (rc, c_string(&buf))
    }

    fn handle(&self, index: c_uint) -> Dev {
        let mut dev: Dev = std::ptr::null_mut();
        // SAFETY: valid out-pointer.
        let rc = unsafe { self.f::<FnHandle>("nvmlDeviceGetHandleByIndex_v2")(index, &mut dev) };
        assert_eq!(rc, 0, "handle {index}");
        dev
    }

    fn count(&self) -> (c_int, c_uint) {
        let mut n = 12345;
        // SAFETY: valid out-pointer.
        let rc = unsafe { self.f::<FnUint>("nvmlDeviceGetCount_v2")(&mut n) };
        (rc, n)
    }

    fn mem_v1(&self, dev: Dev) -> (c_int, MemV1) {
        let mut m = MemV1 {
            total: u64::MAX,
            free: u64::MAX,
            used: u64::MAX,
        };
        // SAFETY: valid out-pointer.
        let rc = unsafe { self.f::<FnMemV1>("nvmlDeviceGetMemoryInfo")(dev, &mut m) };
        (rc, m)
    }

    fn mem_v2(&self, dev: Dev, version: c_uint) -> (c_int, MemV2) {
        let mut m = MemV2 {
            version,
            total: u64::MAX,
            reserved: u64::MAX,
            free: u64::MAX,
            used: u64::MAX,
        };
        // SAFETY: valid in/out pointer.
        let rc = unsafe { self.f::<FnMemV2>("nvmlDeviceGetMemoryInfo_v2")(dev, &mut m) };
        (rc, m)
    }

    /// Calls a 24-byte process-list function with a buffer of `capacity` (NULL when 0);
    /// returns the code, the count written back and the filled entries.
    fn procs(&self, name: &str, dev: Dev, capacity: c_uint) -> (c_int, c_uint, Vec<Proc>) {
        let mut buf = vec![Proc::default(); capacity as usize];
        let mut count = capacity;
        let ptr = if capacity == 0 {
            std::ptr::null_mut()
        } else {
            buf.as_mut_ptr()
        };
        // SAFETY: `ptr` is NULL or has room for `capacity` entries.
        let rc = unsafe { self.f::<FnProcs>(name)(dev, &mut count, ptr) };
        buf.truncate(if rc == 0 { count as usize } else { 0 });
        (rc, count, buf)
    }
}

fn c_string(buf: &[c_char]) -> String {
    // SAFETY: reinterpreting c_char (i8 or u8) as u8 of the same size.
    let bytes: &[u8] = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast(), buf.len()) };
    match CStr::from_bytes_until_nul(bytes) {
        Ok(s) => s.to_string_lossy().into_owned(),
        Err(_) => "<no NUL>".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Tests: patched symbols (no child needed: nothing is initialised)

#[test]
fn every_export_resolves_in_the_plain_copy() {
    let dir = test_support::nvml_double_for(&test_support::nvml_scenario("one_gpu"));
    let lib = Nvml::open(&dir.join(lib_file_name()));
    for name in EXPORTS {
        assert!(lib.has(name), "{name} is not exported");
    }
    assert!(!lib.has("nvmlDeviceGetMemoryInfo_v3"));
}

#[test]
fn missing_symbols_vanish_exactly() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // All at once, then every other one: each name disappears alone, nothing else does.
    let all: Vec<&str> = EXPORTS.to_vec();
    let half: Vec<&str> = EXPORTS.iter().copied().step_by(2).collect();
    let other_half: Vec<&str> = EXPORTS.iter().copied().skip(1).step_by(2).collect();
    for (label, missing) in [("all", &all), ("even", &half), ("odd", &other_half)] {
        let scenario = write_scenario(
            tmp.path(),
            &format!("missing-{label}"),
            &serde_json::json!({ "devices": [], "missing_symbols": missing }).to_string(),
        );
        let dir = test_support::nvml_double_for(&scenario);
        let lib = Nvml::open(&dir.join(lib_file_name()));
        for name in EXPORTS {
            assert_eq!(
                lib.has(name),
                !missing.contains(name),
                "{label}: {name} should be {}",
                if missing.contains(name) {
                    "missing"
                } else {
                    "present"
                }
            );
        }
    }
}

#[test]
fn concurrent_copies_are_whole() {
    let scenario = test_support::nvml_scenario("pre_r510");
    let dirs: Vec<PathBuf> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| s.spawn(|| test_support::nvml_double_for(&scenario)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert!(dirs.windows(2).all(|w| w[0] == w[1]));
    let lib = Nvml::open(&dirs[0].join(lib_file_name()));
    assert!(!lib.has("nvmlDeviceGetMemoryInfo_v2"));
    assert!(lib.has("nvmlDeviceGetMemoryInfo"));
}

// ---------------------------------------------------------------------------------------------
// The C ABI, one_gpu

#[test]
fn abi_one_gpu() {
    fixture_child("child_abi_one_gpu", "one_gpu");
}

#[test]
fn child_abi_one_gpu() {
    if !is_child("child_abi_one_gpu") {
        return;
    }
    let nvml = Nvml::open(&child_lib_path());
    let init = nvml.f::<FnVoid>("nvmlInit_v2");
    let init_with_flags = nvml.f::<FnFlags>("nvmlInitWithFlags");
    let shutdown = nvml.f::<FnVoid>("nvmlShutdown");
    let error_string = |code| {
        // SAFETY: nvmlErrorString returns a static NUL-terminated string.
        unsafe { CStr::from_ptr(nvml.f::<FnErrStr>("nvmlErrorString")(code)) }
            .to_str()
            .expect("UTF-8")
            .to_string()
    };

    // Before init.
    assert_eq!(nvml.count().0, 1, "count before init: UNINITIALIZED");
    // SAFETY: no arguments.
    assert_eq!(unsafe { shutdown() }, 1, "shutdown before init");
    assert_eq!(error_string(7), "Insufficient Size");
    assert_eq!(
        error_string(18),
        "RM has detected an NVML/RM version mismatch."
    );
    assert_eq!(error_string(123_456), "Unknown Error");
    // SAFETY: no arguments.
    assert_eq!(unsafe { init() }, 0);

    // Strings: "590.48.01" is 9 bytes + NUL.
    assert_eq!(nvml.string("nvmlSystemGetDriverVersion", 9).0, 7);
    assert_eq!(
        nvml.string("nvmlSystemGetDriverVersion", 10),
        (0, "590.48.01".into())
    );
    assert_eq!(
        nvml.string("nvmlSystemGetNVMLVersion", 80),
        (0, "13.590.48.01".into())
    );
    // SAFETY: NULL buffer is the case under test.
    let rc = unsafe { nvml.f::<FnStr>("nvmlSystemGetDriverVersion")(std::ptr::null_mut(), 80) };
    assert_eq!(rc, 2);
    let mut cuda = 0;
    // SAFETY: valid out-pointer.
    let rc = unsafe { nvml.f::<FnInt>("nvmlSystemGetCudaDriverVersion")(&mut cuda) };
    assert_eq!(rc, 0);
    assert_eq!(cuda, 13010);
    // SAFETY: NULL is the case under test.
    let rc = unsafe { nvml.f::<FnInt>("nvmlSystemGetCudaDriverVersion_v2")(std::ptr::null_mut()) };
    assert_eq!(rc, 2);

    // Process names.
    let mut name = [0 as c_char; 64];
    // SAFETY: buffer of 64.
    let rc = unsafe {
        nvml.f::<FnPidName>("nvmlSystemGetProcessName")(4_011_345, name.as_mut_ptr(), 64)
    };
    assert_eq!((rc, c_string(&name)), (0, "./gpu_burn".to_string()));
    // SAFETY: buffer of 64, we claim 5.
    let rc =
        unsafe { nvml.f::<FnPidName>("nvmlSystemGetProcessName")(4_011_345, name.as_mut_ptr(), 5) };
    assert_eq!(rc, 7);
    // SAFETY: buffer of 64. 4194305 is above Linux's PID_MAX_LIMIT.
    let rc = unsafe {
        nvml.f::<FnPidName>("nvmlSystemGetProcessName")(4_194_305, name.as_mut_ptr(), 64)
    };
    assert_eq!(rc, 6, "unknown pid: NOT_FOUND");

    // Count and handles.
    assert_eq!(nvml.count(), (0, 1));
    let mut n = 0;
    // SAFETY: valid out-pointer.
    assert_eq!(unsafe { nvml.f::<FnUint>("nvmlDeviceGetCount")(&mut n) }, 0);
    assert_eq!(n, 1);
    // SAFETY: NULL is the case under test.
    let rc = unsafe { nvml.f::<FnUint>("nvmlDeviceGetCount_v2")(std::ptr::null_mut()) };
    assert_eq!(rc, 2);
    let mut dev: Dev = std::ptr::null_mut();
    let by_index = nvml.f::<FnHandle>("nvmlDeviceGetHandleByIndex_v2");
    // SAFETY: valid out-pointer / NULL under test.
    unsafe {
        assert_eq!(by_index(1, &mut dev), 2, "index past the count");
        assert_eq!(by_index(0, std::ptr::null_mut()), 2);
    }
    let h = nvml.handle(0);
    let mut old: Dev = std::ptr::null_mut();
    // SAFETY: valid out-pointer.
    let rc = unsafe { nvml.f::<FnHandle>("nvmlDeviceGetHandleByIndex")(0, &mut old) };
    assert_eq!(rc, 0);
    assert_eq!(old, h);
    let get_index = nvml.f::<FnDevUint>("nvmlDeviceGetIndex");
    let mut idx = 99;
    let local = 0u64;
    let bad_handles: [Dev; 4] = [
        std::ptr::null_mut(),
        h.wrapping_byte_add(1),
        h.wrapping_byte_add(8), // the slot of device 1, which does not exist
        (&raw const local).cast_mut().cast(),
    ];
    // SAFETY: handles are only compared by the double, never dereferenced.
    unsafe {
        assert_eq!(get_index(h, &mut idx), 0);
        assert_eq!(idx, 0);
        for bad in bad_handles {
            assert_eq!(get_index(bad, &mut idx), 2, "bad handle {bad:?}");
        }
        assert_eq!(get_index(h, std::ptr::null_mut()), 2);
    }

    // Name and UUID: "NVIDIA H100 80GB HBM3" is 21 bytes.
    assert_eq!(nvml.dev_string("nvmlDeviceGetName", h, 21).0, 7);
    assert_eq!(
        nvml.dev_string("nvmlDeviceGetName", h, 22),
        (0, "NVIDIA H100 80GB HBM3".into())
    );
    assert_eq!(
        nvml.dev_string("nvmlDeviceGetName", bad_handles[1], 96).0,
        2
    );
    assert_eq!(
        nvml.dev_string("nvmlDeviceGetUUID", h, 96),
        (0, "GPU-5a5c4d1e-1f9b-4a7d-9c1e-2b3f4a5b6c7d".into())
    );

    // PCI, three symbols, one layout.
    let mut seen = Vec::new();
    for sym in [
        "nvmlDeviceGetPciInfo_v3",
        "nvmlDeviceGetPciInfo_v2",
        "nvmlDeviceGetPciInfo",
    ] {
        // SAFETY: all-zero is a valid Pci.
        let mut p: Pci = unsafe { std::mem::zeroed() };
        // SAFETY: valid out-pointer.
        assert_eq!(unsafe { nvml.f::<FnPci>(sym)(h, &mut p) }, 0);
        seen.push(p);
    }
    let p = seen[0];
    assert!(seen.iter().all(|q| *q == p));
    assert_eq!(c_string(&p.bus_id), "00000000:00:09.0");
    assert_eq!(c_string(&p.bus_id_legacy), "0000:00:09.0");
    assert_eq!((p.domain, p.bus, p.device), (0, 0, 9));
    assert_eq!(p.pci_device_id, 0x2330_10DE);
    assert_eq!(p.pci_sub_system_id, 0x16C1_10DE);

    // Memory.
    assert_eq!(nvml.mem_v2(h, 2).0, 25, "version 2 is not 0x02000028");
    let (rc, v2) = nvml.mem_v2(h, 0x0200_0028);
    assert_eq!(rc, 0);
    assert_eq!(
        v2,
        MemV2 {
            version: 0x0200_0028,
            total: 81559 * MIB,
            reserved: 479 * MIB,
            free: 61263 * MIB,
            used: 19818 * MIB
        }
    );
    let (rc, v1) = nvml.mem_v1(h);
    assert_eq!(rc, 0);
    assert_eq!(
        v1,
        MemV1 {
            total: v2.total,
            free: v2.free,
            used: v2.used + v2.reserved
        }
    );
    // SAFETY: NULL is the case under test.
    unsafe {
        assert_eq!(
            nvml.f::<FnMemV1>("nvmlDeviceGetMemoryInfo")(h, std::ptr::null_mut()),
            2
        );
        assert_eq!(
            nvml.f::<FnMemV2>("nvmlDeviceGetMemoryInfo_v2")(h, std::ptr::null_mut()),
            2
        );
    }

    // Process lists (nvml.h protocol).
    let v3 = "nvmlDeviceGetComputeRunningProcesses_v3";
    let (rc, needed, _) = nvml.procs(v3, h, 0);
    assert_eq!((rc, needed), (7, 2), "size query");
    let (rc, needed, _) = nvml.procs(v3, h, 1);
    assert_eq!((rc, needed), (7, 2), "capacity 1 < 2");
    let (rc, count, entries) = nvml.procs(v3, h, 10);
    assert_eq!((rc, count), (0, 2));
    assert_eq!(
        entries,
        vec![
            Proc {
                pid: 4_011_345,
                used: 15690 * MIB,
                gi: u32::MAX,
                ci: u32::MAX
            },
            Proc {
                pid: 4_012_001,
                used: 3584 * MIB,
                gi: u32::MAX,
                ci: u32::MAX
            },
        ]
    );
    assert_eq!(
        nvml.procs("nvmlDeviceGetComputeRunningProcesses_v2", h, 2)
            .2,
        entries
    );
    let (rc, _, graphics) = nvml.procs("nvmlDeviceGetGraphicsRunningProcesses_v3", h, 5);
    assert_eq!(rc, 0);
    assert_eq!(
        graphics.iter().map(|p| p.pid).collect::<Vec<_>>(),
        [4_012_001]
    );
    let (rc, count, mps) = nvml.procs("nvmlDeviceGetMPSComputeRunningProcesses_v3", h, 0);
    assert_eq!((rc, count, mps.len()), (0, 0, 0), "MPS: empty, SUCCESS");
    let mut count = 5;
    // SAFETY: NULL pointers are the cases under test.
    unsafe {
        assert_eq!(
            nvml.f::<FnProcs>(v3)(h, std::ptr::null_mut(), std::ptr::null_mut()),
            2
        );
        assert_eq!(
            nvml.f::<FnProcs>(v3)(h, &mut count, std::ptr::null_mut()),
            2
        );
    }
    // v1: 16-byte entries.
    let mut v1_buf = [ProcV1::default(); 4];
    let mut count = 4;
    // SAFETY: room for 4 entries.
    let rc = unsafe {
        nvml.f::<FnProcsV1>("nvmlDeviceGetComputeRunningProcesses")(
            h,
            &mut count,
            v1_buf.as_mut_ptr(),
        )
    };
    assert_eq!((rc, count), (0, 2));
    assert_eq!(
        v1_buf[..2],
        [
            ProcV1 {
                pid: 4_011_345,
                used: 15690 * MIB
            },
            ProcV1 {
                pid: 4_012_001,
                used: 3584 * MIB
            }
        ]
    );
    assert_eq!(
        v1_buf[2],
        ProcV1::default(),
        "nothing written past the count"
    );

    // MIG and compute capability.
    let (mut cur, mut pend) = (9, 9);
    let (mut major, mut minor) = (0, 0);
    // SAFETY: valid out-pointers / NULL under test.
    unsafe {
        assert_eq!(
            nvml.f::<FnTwoUint>("nvmlDeviceGetMigMode")(h, &mut cur, &mut pend),
            0
        );
        assert_eq!(
            nvml.f::<FnTwoUint>("nvmlDeviceGetMigMode")(h, &mut cur, std::ptr::null_mut()),
            2
        );
        assert_eq!(
            nvml.f::<FnTwoInt>("nvmlDeviceGetCudaComputeCapability")(h, &mut major, &mut minor),
            0
        );
    }
    assert_eq!((cur, pend, major, minor), (0, 0, 9, 0));

    // Refcount: two inits need two shutdowns; a third is UNINITIALIZED.
    // SAFETY: plain calls.
    unsafe {
        assert_eq!(init_with_flags(0), 0);
        assert_eq!(shutdown(), 0);
        assert_eq!(nvml.count(), (0, 1));
        assert_eq!(shutdown(), 0);
        assert_eq!(nvml.count().0, 1);
        assert_eq!(shutdown(), 1);
        // Re-init works, with the same scenario.
        assert_eq!(nvml.f::<FnVoid>("nvmlInit")(), 0);
        assert_eq!(nvml.count(), (0, 1));
        assert_eq!(shutdown(), 0);
    }
}

// ---------------------------------------------------------------------------------------------
// Unified memory: NOT_SUPPORTED with zeroed structs

#[test]
fn abi_unified_memory() {
    fixture_child("child_abi_unified_memory", "unified_memory");
}

#[test]
fn child_abi_unified_memory() {
    if !is_child("child_abi_unified_memory") {
        return;
    }
    let nvml = Nvml::open(&child_lib_path());
    // SAFETY: plain call.
    assert_eq!(unsafe { nvml.f::<FnFlags>("nvmlInitWithFlags")(0) }, 0);
    let h = nvml.handle(0);
    assert_eq!(nvml.mem_v1(h), (3, MemV1::default()));
    assert_eq!(
        nvml.mem_v2(h, 0x0200_0028),
        (
            3,
            MemV2 {
                version: 0x0200_0028,
                ..MemV2::default()
            }
        )
    );
    let (mut cur, mut pend) = (0, 0);
    // SAFETY: valid out-pointers.
    let rc = unsafe { nvml.f::<FnTwoUint>("nvmlDeviceGetMigMode")(h, &mut cur, &mut pend) };
    assert_eq!(rc, 3);
    let (rc, _, procs) = nvml.procs("nvmlDeviceGetComputeRunningProcesses_v3", h, 8);
    assert_eq!(rc, 0);
    assert_eq!(procs.len(), 1);
    assert_eq!(procs[0].used, 4096 * MIB);
}

// ---------------------------------------------------------------------------------------------
// No scenario, a broken scenario

#[test]
fn abi_without_scenario() {
    let dir = test_support::nvml_double_for(&test_support::nvml_scenario("one_gpu"));
    let out = run_child("child_abi_init_fails_999", &dir, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("NVML_DOUBLE_SCENARIO is not set").count(),
        1,
        "reason printed once: {stderr}"
    );
}

#[test]
fn abi_invalid_scenario() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let scenario = write_scenario(
        tmp.path(),
        "typo",
        r#"{"devices": [], "driver_verison": "1.0"}"#,
    );
    let dir = test_support::nvml_double_for(&scenario);
    let out = run_child("child_abi_init_fails_999", &dir, Some(&scenario));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("unknown key \"driver_verison\"").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn child_abi_init_fails_999() {
    if !is_child("child_abi_init_fails_999") {
        return;
    }
    let nvml = Nvml::open(&child_lib_path());
    // SAFETY: plain calls.
    unsafe {
        assert_eq!(nvml.f::<FnVoid>("nvmlInit_v2")(), 999);
        assert_eq!(nvml.f::<FnFlags>("nvmlInitWithFlags")(0), 999);
        assert_eq!(nvml.f::<FnVoid>("nvmlShutdown")(), 1);
    }
    assert_eq!(nvml.count().0, 1);
}

// ---------------------------------------------------------------------------------------------
// Error injection: exact symbols, top level vs device

#[test]
fn abi_error_injection() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let device = |i: u32, errors: serde_json::Value| {
        serde_json::json!({
            "name": format!("GPU {i}"), "uuid": format!("GPU-{i}"),
            "pci_bus_id": format!("00000000:{:02X}:00.0", 0x1B + i), "pci_device_id": 1,
            "memory": {"total": 4 * MIB, "reserved": MIB, "free": 2 * MIB, "used": MIB},
            "compute_processes": [{"pid": 4_000_001 + i, "used_gpu_memory": MIB}],
            "errors": errors,
        })
    };
    let scenario = write_scenario(
        tmp.path(),
        "error-injection",
        &serde_json::json!({
            "errors": {"nvmlInit_v2": 9, "nvmlSystemGetDriverVersion": 3,
                       "nvmlDeviceGetMemoryInfo_v2": 15},
            "devices": [
                device(0, serde_json::json!({"nvmlDeviceGetMemoryInfo": 4,
                                             "nvmlDeviceGetHandleByIndex_v2": 15})),
                device(1, serde_json::json!({"nvmlDeviceGetName": 999,
                                             "nvmlDeviceGetComputeRunningProcesses_v3": 4})),
            ],
        })
        .to_string(),
    );
    run_child(
        "child_abi_error_injection",
        &test_support::nvml_double_for(&scenario),
        Some(&scenario),
    );
}

#[test]
fn child_abi_error_injection() {
    if !is_child("child_abi_error_injection") {
        return;
    }
    let nvml = Nvml::open(&child_lib_path());
    // SAFETY: plain calls.
    unsafe {
        assert_eq!(nvml.f::<FnVoid>("nvmlInit_v2")(), 9, "init_v2 fails");
        assert_eq!(nvml.count().0, 1, "and did not initialise");
        assert_eq!(nvml.f::<FnVoid>("nvmlInit")(), 0, "the plain symbol works");
        assert_eq!(nvml.f::<FnFlags>("nvmlInitWithFlags")(0), 0);
    }
    assert_eq!(nvml.string("nvmlSystemGetDriverVersion", 80).0, 3);
    assert_eq!(nvml.string("nvmlSystemGetNVMLVersion", 80).0, 0);
    let mut dev: Dev = std::ptr::null_mut();
    // SAFETY: valid out-pointer.
    unsafe {
        assert_eq!(
            nvml.f::<FnHandle>("nvmlDeviceGetHandleByIndex_v2")(0, &mut dev),
            15
        );
        assert_eq!(
            nvml.f::<FnHandle>("nvmlDeviceGetHandleByIndex")(0, &mut dev),
            0
        );
    }
    let (d0, d1) = (dev, nvml.handle(1));
    assert_eq!(nvml.mem_v1(d0).0, 4, "device 0's v1 error");
    assert_eq!(nvml.mem_v2(d0, 0x0200_0028).0, 15, "top-level v2 error");
    assert_eq!(nvml.mem_v1(d1).0, 0, "device 1's v1 works");
    assert_eq!(nvml.mem_v2(d1, 0x0200_0028).0, 15, "top-level v2 error");
    assert_eq!(nvml.dev_string("nvmlDeviceGetName", d0, 96).0, 0);
    assert_eq!(nvml.dev_string("nvmlDeviceGetName", d1, 96).0, 999);
    assert_eq!(
        nvml.procs("nvmlDeviceGetComputeRunningProcesses_v3", d1, 4)
            .0,
        4
    );
    assert_eq!(
        nvml.procs("nvmlDeviceGetComputeRunningProcesses_v2", d1, 4)
            .1,
        1
    );
    assert_eq!(
        nvml.procs("nvmlDeviceGetComputeRunningProcesses_v3", d0, 4)
            .1,
        1
    );
}

// ---------------------------------------------------------------------------------------------
// count_grows: the undercount

#[test]
fn abi_count_grows() {
    fixture_child("child_abi_count_grows", "count_grows");
}

#[test]
fn child_abi_count_grows() {
    if !is_child("child_abi_count_grows") {
        return;
    }
    let nvml = Nvml::open(&child_lib_path());
    // SAFETY: plain call.
    assert_eq!(unsafe { nvml.f::<FnVoid>("nvmlInit_v2")() }, 0);
    let h = nvml.handle(0);
    let v3 = "nvmlDeviceGetComputeRunningProcesses_v3";
    let (rc, reported, _) = nvml.procs(v3, h, 0);
    assert_eq!((rc, reported), (7, 10), "first size query: 80 - 70");
    let (rc, needed, _) = nvml.procs(v3, h, reported + 5);
    assert_eq!((rc, needed), (7, 80), "data call too small: the true count");
    assert_eq!(
        nvml.procs(v3, h, 0).1,
        80,
        "times: 1 — later size queries are true"
    );
    let (rc, count, procs) = nvml.procs(v3, h, 85);
    assert_eq!((rc, count, procs.len()), (0, 80, 80));
    let pids: Vec<u32> = procs.iter().map(|p| p.pid).collect();
    assert_eq!(pids, (4_100_000..4_100_080).collect::<Vec<u32>>());
}

// ---------------------------------------------------------------------------------------------
// nvml-wrapper (what hypomnesis builds on) against the double

#[test]
fn nvml_wrapper_one_gpu() {
    fixture_child("child_nvml_wrapper_one_gpu", "one_gpu");
}

#[test]
fn child_nvml_wrapper_one_gpu() {
    use nvml_wrapper::enums::device::UsedGpuMemory;
    if !is_child("child_nvml_wrapper_one_gpu") {
        return;
    }
    let nvml = nvml_wrapper::Nvml::builder()
        .lib_path(child_lib_path().as_os_str())
        .init()
        .expect("nvml-wrapper init");
    assert_eq!(nvml.sys_driver_version().expect("driver"), "590.48.01");
    assert_eq!(nvml.sys_cuda_driver_version().expect("cuda"), 13010);
    assert_eq!(nvml.device_count().expect("count"), 1);
    let d = nvml.device_by_index(0).expect("device 0");
    assert_eq!(d.name().expect("name"), "NVIDIA H100 80GB HBM3");
    assert_eq!(
        d.uuid().expect("uuid"),
        "GPU-5a5c4d1e-1f9b-4a7d-9c1e-2b3f4a5b6c7d"
    );
    assert_eq!(d.pci_info().expect("pci").bus_id, "00000000:00:09.0");
    let m = d.memory_info().expect("memory (v2)");
    assert_eq!(
        (m.total, m.reserved, m.used, m.free),
        (81559 * MIB, 479 * MIB, 19818 * MIB, 61263 * MIB)
    );
    let compute = d.running_compute_processes().expect("compute");
    assert_eq!(compute.len(), 2);
    assert_eq!(compute[0].pid, 4_011_345);
    assert_eq!(compute[0].used_gpu_memory, UsedGpuMemory::Used(15690 * MIB));
    assert_eq!(compute[0].gpu_instance_id, None);
    let graphics = d.running_graphics_processes().expect("graphics");
    assert_eq!(graphics.len(), 1);
    assert_eq!(d.mig_mode().expect("mig").current, 0);
    drop(nvml); // nvmlShutdown
}

#[test]
fn nvml_wrapper_pre_r510() {
    fixture_child("child_nvml_wrapper_pre_r510", "pre_r510");
}

#[test]
fn child_nvml_wrapper_pre_r510() {
    if !is_child("child_nvml_wrapper_pre_r510") {
        return;
    }
    let nvml = nvml_wrapper::Nvml::builder()
        .lib_path(child_lib_path().as_os_str())
        .init()
        .expect("init works without the missing symbol");
    let d = nvml.device_by_index(0).expect("device 0");
    match d.memory_info() {
        Err(nvml_wrapper::error::NvmlError::FailedToLoadSymbol(msg)) => {
            assert!(msg.contains("nvmlDeviceGetMemoryInfo_v2"), "{msg}");
        }
        other => panic!("memory_info should fail to load its symbol, got {other:?}"),
    }
    assert_eq!(d.running_compute_processes().expect("compute").len(), 1);
}

#[test]
fn nvml_wrapper_count_grows() {
    fixture_child("child_nvml_wrapper_count_grows", "count_grows");
}

#[test]
fn child_nvml_wrapper_count_grows() {
    if !is_child("child_nvml_wrapper_count_grows") {
        return;
    }
    let nvml = nvml_wrapper::Nvml::builder()
        .lib_path(child_lib_path().as_os_str())
        .init()
        .expect("init");
    let d = nvml.device_by_index(0).expect("device 0");
    // nvml-wrapper allocates count + 5 and does not retry: the caller has to.
    match d.running_compute_processes() {
        Err(nvml_wrapper::error::NvmlError::InsufficientSize(_)) => {}
        other => panic!("expected InsufficientSize, got {other:?}"),
    }
    assert_eq!(d.running_compute_processes().expect("retry").len(), 80);
}

#[test]
fn nvml_wrapper_sentinel_and_unified() {
    fixture_child("child_nvml_wrapper_sentinel", "sentinel");
    fixture_child("child_nvml_wrapper_unified", "unified_memory");
}

#[test]
fn child_nvml_wrapper_sentinel() {
    use nvml_wrapper::enums::device::UsedGpuMemory;
    if !is_child("child_nvml_wrapper_sentinel") {
        return;
    }
    let nvml = nvml_wrapper::Nvml::builder()
        .lib_path(child_lib_path().as_os_str())
        .init()
        .expect("init");
    let d = nvml.device_by_index(0).expect("device 0");
    let used: Vec<UsedGpuMemory> = d
        .running_compute_processes()
        .expect("compute")
        .into_iter()
        .map(|p| p.used_gpu_memory)
        .collect();
    assert_eq!(
        used,
        [UsedGpuMemory::Unavailable, UsedGpuMemory::Used(8192 * MIB)]
    );
}

#[test]
fn child_nvml_wrapper_unified() {
    if !is_child("child_nvml_wrapper_unified") {
        return;
    }
    let nvml = nvml_wrapper::Nvml::builder()
        .lib_path(child_lib_path().as_os_str())
        .init()
        .expect("init");
    let d = nvml.device_by_index(0).expect("device 0");
    assert!(matches!(
        d.memory_info(),
        Err(nvml_wrapper::error::NvmlError::NotSupported)
    ));
    assert_eq!(d.running_compute_processes().expect("compute").len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Process memory that changes over time

#[test]
fn nvml_wrapper_steps() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = write_scenario(
        dir.path(),
        "steps",
        r#"{"devices": [{"name": "G", "uuid": "GPU-1", "pci_bus_id": "00000000:1B:00.0",
            "pci_device_id": 1,
            "memory": {"total": 8388608000, "reserved": 0, "free": 7340032000, "used": 1048576000},
            "compute_processes": [{"pid": 4000001, "used_gpu_memory": 1048576000,
                "used_gpu_memory_steps": [[300, 5242880000], [600, 524288000]]}]}]}"#,
    );
    run_child(
        "child_nvml_wrapper_steps",
        &test_support::nvml_double_for(&scenario),
        Some(&scenario),
    );
}

#[test]
fn child_nvml_wrapper_steps() {
    use nvml_wrapper::enums::device::UsedGpuMemory;
    if !is_child("child_nvml_wrapper_steps") {
        return;
    }
    let started = std::time::Instant::now();
    let nvml = nvml_wrapper::Nvml::builder()
        .lib_path(child_lib_path().as_os_str())
        .init()
        .expect("init");
    let d = nvml.device_by_index(0).expect("device 0");
    let read = || {
        let p = d.running_compute_processes().expect("compute");
        let m = d.memory_info().expect("memory");
        (p[0].used_gpu_memory.clone(), m.used, m.free)
    };
    let early = read();
    // Only meaningful when the first reads came before the first step.
    if started.elapsed() < std::time::Duration::from_millis(250) {
        assert_eq!(
            early,
            (UsedGpuMemory::Used(1000 * MIB), 1000 * MIB, 7000 * MIB)
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(400).saturating_sub(started.elapsed()));
    if started.elapsed() < std::time::Duration::from_millis(550) {
        assert_eq!(
            read(),
            (UsedGpuMemory::Used(5000 * MIB), 5000 * MIB, 3000 * MIB),
            "after the first step: the process and the device grew together"
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(700).saturating_sub(started.elapsed()));
    assert_eq!(
        read(),
        (UsedGpuMemory::Used(500 * MIB), 500 * MIB, 7500 * MIB),
        "after the last step, for good"
    );
}

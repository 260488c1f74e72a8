//! A stand-in for NVIDIA's `libnvidia-ml.so.1`, driven by a JSON scenario file.
//!
//! Load it as `libnvidia-ml.so.1` (the build sets that soname) and name a scenario with
//! `NVML_DOUBLE_SCENARIO`; `README.md` next to `Cargo.toml` describes the format and the
//! behaviour of every exported function. The C ABI (names, struct layouts, return codes) follows
//! nvml.h; see the project's NVML reference.
//!
//! Rules kept throughout:
//! - nothing unwinds across the FFI boundary: every export runs inside `catch_unwind` and a
//!   panic becomes `NVML_ERROR_UNKNOWN` (999);
//! - every pointer from the caller is checked for NULL (`NVML_ERROR_INVALID_ARGUMENT`) and
//!   written unaligned-safe;
//! - state (the scenario, the init refcount, the undercount counters) is process-wide, as in
//!   the real library.

#![allow(non_snake_case)] // the exported names are NVML's
#![warn(clippy::undocumented_unsafe_blocks)]

mod scenario;

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use scenario::{Device, MAX_DEVICES, MAX_MIG_DEVICES, MigDevice, Process, Scenario, UtilSample};

/// `nvmlReturn_t`.
type NvmlReturn = c_int;
/// `nvmlDevice_t` (an opaque pointer).
type NvmlDevice = *mut c_void;

const SUCCESS: NvmlReturn = 0;
const ERROR_UNINITIALIZED: NvmlReturn = 1;
const ERROR_INVALID_ARGUMENT: NvmlReturn = 2;
const ERROR_NOT_SUPPORTED: NvmlReturn = 3;
const ERROR_NOT_FOUND: NvmlReturn = 6;
const ERROR_INSUFFICIENT_SIZE: NvmlReturn = 7;
const ERROR_GPU_IS_LOST: NvmlReturn = 15;
const ERROR_ARGUMENT_VERSION_MISMATCH: NvmlReturn = 25;
const ERROR_UNKNOWN: NvmlReturn = 999;

/// `nvmlMemory_v2` = sizeof(nvmlMemory_v2_t) | 2 << 24.
const MEMORY_V2_VERSION: c_uint = 0x0200_0028;

/// Outcome of a function body: `Err` carries the NVML code to return.
type Outcome = Result<(), NvmlReturn>;

// ---------------------------------------------------------------------------------------------
// C structs (nvml.h layouts; sizes asserted below)

/// `nvmlMemory_t` (v1).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct NvmlMemoryV1 {
    total: c_ulonglong,
    free: c_ulonglong,
    used: c_ulonglong,
}

/// `nvmlMemory_v2_t`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct NvmlMemoryV2 {
    version: c_uint,
    total: c_ulonglong,
    reserved: c_ulonglong,
    free: c_ulonglong,
    used: c_ulonglong,
}

/// `nvmlProcessInfo_v1_t`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NvmlProcessInfoV1 {
    pid: c_uint,
    used_gpu_memory: c_ulonglong,
}

/// `nvmlProcessInfo_t` / `nvmlProcessInfo_v2_t` (what the `_v2` and `_v3` functions fill).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NvmlProcessInfo {
    pid: c_uint,
    used_gpu_memory: c_ulonglong,
    gpu_instance_id: c_uint,
    compute_instance_id: c_uint,
}

/// What an early R535 driver (535.54) wrote per `_v3` process entry: the v2 fields and
/// `usedGpuCcProtectedMemory`, 32 bytes, padding spelled out so every byte is defined.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NvmlProcessInfoEarlyR535 {
    pid: c_uint,
    padding: c_uint,
    used_gpu_memory: c_ulonglong,
    gpu_instance_id: c_uint,
    compute_instance_id: c_uint,
    used_gpu_cc_protected_memory: c_ulonglong,
}

/// `nvmlPciInfo_t`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NvmlPciInfo {
    bus_id_legacy: [c_char; 16],
    domain: c_uint,
    bus: c_uint,
    device: c_uint,
    pci_device_id: c_uint,
    pci_sub_system_id: c_uint,
    bus_id: [c_char; 32],
}

/// `nvmlUtilization_t`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct NvmlUtilization {
    gpu: c_uint,
    memory: c_uint,
}

/// `nvmlProcessUtilizationSample_t`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NvmlProcessUtilizationSample {
    pid: c_uint,
    time_stamp: c_ulonglong,
    sm_util: c_uint,
    mem_util: c_uint,
    enc_util: c_uint,
    dec_util: c_uint,
}

const _: () = {
    assert!(size_of::<NvmlUtilization>() == 8);
    assert!(size_of::<NvmlProcessUtilizationSample>() == 32);
    assert!(std::mem::offset_of!(NvmlProcessUtilizationSample, time_stamp) == 8);
    assert!(std::mem::offset_of!(NvmlProcessUtilizationSample, sm_util) == 16);
    assert!(std::mem::offset_of!(NvmlProcessUtilizationSample, dec_util) == 28);
    assert!(size_of::<NvmlMemoryV1>() == 24);
    assert!(size_of::<NvmlMemoryV2>() == 40);
    assert!(std::mem::offset_of!(NvmlMemoryV2, total) == 8);
    assert!(std::mem::offset_of!(NvmlMemoryV2, used) == 32);
    assert!(size_of::<NvmlProcessInfoV1>() == 16);
    assert!(size_of::<NvmlProcessInfo>() == 24);
    assert!(size_of::<NvmlProcessInfoEarlyR535>() == 32);
    assert!(std::mem::offset_of!(NvmlProcessInfo, gpu_instance_id) == 16);
    assert!(std::mem::offset_of!(NvmlProcessInfo, compute_instance_id) == 20);
    assert!(size_of::<NvmlPciInfo>() == 68);
    assert!(std::mem::offset_of!(NvmlPciInfo, pci_device_id) == 28);
    assert!(std::mem::offset_of!(NvmlPciInfo, bus_id) == 36);
};

// ---------------------------------------------------------------------------------------------
// Process-wide state

/// The scenario, read once at the first init (successful or not).
static SCENARIO: OnceLock<Result<Scenario, String>> = OnceLock::new();

struct Runtime {
    /// Successful inits minus shutdowns.
    refcount: u32,
    /// Per device: how many compute-list size queries were already undercounted.
    undercounts_done: [u32; MAX_DEVICES],
}

static RUNTIME: Mutex<Runtime> = Mutex::new(Runtime {
    refcount: 0,
    undercounts_done: [0; MAX_DEVICES],
});

/// When the first init succeeded: the origin of `used_gpu_memory_steps`.
static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Milliseconds since the first successful init (0 before it).
fn now_ms() -> u64 {
    EPOCH.get().map_or(0, |at| {
        u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX)
    })
}

/// Device handles are the addresses of these slots; a handle is valid when it points at slot
/// `i` and the scenario has a device `i`.
static HANDLE_SLOTS: [u64; MAX_DEVICES] = [0; MAX_DEVICES];

/// MIG device handles are the addresses of these slots: slot `d * MAX_MIG_DEVICES + m` is MIG
/// device `m` of device `d`.
static MIG_SLOTS: [u64; MAX_DEVICES * MAX_MIG_DEVICES] = [0; MAX_DEVICES * MAX_MIG_DEVICES];

fn mig_handle_for(device: usize, mig: usize) -> NvmlDevice {
    (&raw const MIG_SLOTS[device * MAX_MIG_DEVICES + mig])
        .cast_mut()
        .cast()
}

/// `(device, MIG device)` of a MIG handle the scenario has, else `None`.
fn mig_of(handle: NvmlDevice, sc: &Scenario) -> Option<(usize, usize)> {
    let offset = handle.addr().checked_sub(MIG_SLOTS.as_ptr().addr())?;
    let slot = size_of::<u64>();
    if offset % slot != 0 {
        return None;
    }
    let (device, mig) = (
        offset / slot / MAX_MIG_DEVICES,
        offset / slot % MAX_MIG_DEVICES,
    );
    (sc.devices.get(device)?.mig_devices.len() > mig).then_some((device, mig))
}

/// A call on a MIG device handle: `Some` with the answer when `handle` is one (the parent
/// device's `errors` apply to it too), `None` when it is not, for the caller to treat
/// `handle` as a whole device.
fn mig_call(
    function: &str,
    handle: NvmlDevice,
    body: impl FnOnce(&'static MigDevice) -> Outcome,
) -> Option<NvmlReturn> {
    let sc = scenario().ok()?;
    let (device, mig) = mig_of(handle, sc)?;
    Some(system_call(function, |sc, _| {
        let dev = &sc.devices[device];
        if let Some(&code) = dev.errors.get(function) {
            return Err(code);
        }
        body(&dev.mig_devices[mig])
    }))
}

fn runtime() -> MutexGuard<'static, Runtime> {
    // A poisoned lock only means an earlier call panicked (and returned 999); the counters
    // themselves are still consistent, so carry on.
    RUNTIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn scenario() -> Result<&'static Scenario, NvmlReturn> {
    SCENARIO
        .get_or_init(|| {
            let loaded = scenario::load_from_env();
            if let Err(reason) = &loaded {
                eprintln!("nvml-double: {reason}; every nvmlInit will return NVML_ERROR_UNKNOWN");
            }
            loaded
        })
        .as_ref()
        .map_err(|_| ERROR_UNKNOWN)
}

fn handle_for(index: usize) -> NvmlDevice {
    (&raw const HANDLE_SLOTS[index]).cast_mut().cast()
}

fn index_of(handle: NvmlDevice, device_count: usize) -> Result<usize, NvmlReturn> {
    let base = HANDLE_SLOTS.as_ptr().addr();
    let offset = handle
        .addr()
        .checked_sub(base)
        .ok_or(ERROR_INVALID_ARGUMENT)?;
    let slot = size_of::<u64>();
    if offset % slot != 0 || offset / slot >= device_count {
        return Err(ERROR_INVALID_ARGUMENT);
    }
    Ok(offset / slot)
}

// ---------------------------------------------------------------------------------------------
// Call scaffolding

/// Runs an export's body; a panic becomes `NVML_ERROR_UNKNOWN`.
fn guarded(body: impl FnOnce() -> Outcome) -> NvmlReturn {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => SUCCESS,
        Ok(Err(code)) => code,
        Err(_) => ERROR_UNKNOWN,
    }
}

/// Initialised library: the scenario, after the function's top-level scenario error.
fn system_call(
    function: &str,
    body: impl FnOnce(&'static Scenario, &mut Runtime) -> Outcome,
) -> NvmlReturn {
    guarded(|| {
        let mut rt = runtime();
        if rt.refcount == 0 {
            return Err(ERROR_UNINITIALIZED);
        }
        let sc = scenario()?;
        if let Some(&code) = sc.errors.get(function) {
            return Err(code);
        }
        body(sc, &mut rt)
    })
}

/// As [`system_call`], plus handle validation and the device's own error for `function`.
fn device_call(
    function: &str,
    handle: NvmlDevice,
    body: impl FnOnce(&'static Device, usize, &mut Runtime) -> Outcome,
) -> NvmlReturn {
    system_call(function, |sc, rt| {
        let index = index_of(handle, sc.devices.len())?;
        let dev = &sc.devices[index];
        if let Some(&ms) = dev.delays_ms.get(function)
            && dev.delays_from_ms.is_none_or(|from| now_ms() >= from)
        {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        if let Some(&code) = dev.errors.get(function) {
            return Err(code);
        }
        if dev.lost_after_ms.is_some_and(|at| now_ms() >= at) {
            return Err(ERROR_GPU_IS_LOST);
        }
        body(dev, index, rt)
    })
}

/// Writes `value` through a caller's out-pointer.
///
/// # Safety
/// `out` must be NULL or valid for a write of a `T` (alignment not required).
unsafe fn put<T>(out: *mut T, value: T) -> Outcome {
    if out.is_null() {
        return Err(ERROR_INVALID_ARGUMENT);
    }
    // SAFETY: non-NULL, and the caller guarantees it is valid for writing a `T`.
    unsafe { out.write_unaligned(value) };
    Ok(())
}

/// Copies `text` and a NUL into a caller's buffer of `length` bytes.
///
/// # Safety
/// `buf` must be NULL or valid for writes of `length` bytes.
unsafe fn put_str(buf: *mut c_char, length: c_uint, text: &str) -> Outcome {
    if buf.is_null() {
        return Err(ERROR_INVALID_ARGUMENT);
    }
    let bytes = text.as_bytes();
    if bytes.len() >= length as usize {
        return Err(ERROR_INSUFFICIENT_SIZE);
    }
    // SAFETY: `buf` is non-NULL and valid for `length` bytes (caller); we write
    // `bytes.len() + 1 <= length` bytes, and a Rust string cannot overlap the caller's buffer.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), bytes.len());
        buf.add(bytes.len()).write(0);
    }
    if strings_without_nul() {
        // SAFETY: as above; the NUL and everything after it, up to `length` bytes in all.
        unsafe {
            buf.add(bytes.len())
                .write_bytes(NO_NUL_FILL as u8, length as usize - bytes.len())
        }
    }
    Ok(())
}

/// What fills a string buffer after the text when the scenario asks for `strings_without_nul`.
const NO_NUL_FILL: c_char = b'_' as c_char;

/// Whether the scenario asks for string buffers filled to their end, without a NUL.
fn strings_without_nul() -> bool {
    scenario().is_ok_and(|sc| sc.strings_without_nul)
}

/// A fixed C char array holding `text` NUL-terminated (truncated if it would not fit), or
/// with `strings_without_nul` the text filled to the array's end without a NUL.
fn c_array<const N: usize>(text: &str) -> [c_char; N] {
    let fill = if strings_without_nul() {
        NO_NUL_FILL
    } else {
        0
    };
    let mut out = [fill; N];
    for (slot, &b) in out.iter_mut().zip(text.as_bytes().iter().take(N - 1)) {
        *slot = b as c_char;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Init and shutdown

fn init(function: &str) -> NvmlReturn {
    guarded(|| {
        let sc = scenario()?;
        if let Some(code) = sc.init_error {
            return Err(code);
        }
        if let Some(&code) = sc.errors.get(function) {
            return Err(code);
        }
        let mut rt = runtime();
        rt.refcount = rt.refcount.saturating_add(1);
        EPOCH.get_or_init(Instant::now);
        Ok(())
    })
}

/// `nvmlReturn_t nvmlInit_v2(void)`.
///
/// # Safety
/// None beyond the C ABI.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlInit_v2() -> NvmlReturn {
    init("Init_v2")
}

/// The old unversioned `nvmlInit`; behaves like `nvmlInit_v2`.
///
/// # Safety
/// None beyond the C ABI.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlInit() -> NvmlReturn {
    init("Init")
}

/// `nvmlReturn_t nvmlInitWithFlags(unsigned int flags)`; the flags are accepted and ignored.
///
/// # Safety
/// None beyond the C ABI.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlInitWithFlags(_flags: c_uint) -> NvmlReturn {
    init("InitWithFlags")
}

/// `nvmlReturn_t nvmlShutdown(void)`: refcounted; UNINITIALIZED when nothing is initialised.
///
/// # Safety
/// None beyond the C ABI.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlShutdown() -> NvmlReturn {
    system_call("Shutdown", |_, rt| {
        rt.refcount -= 1; // system_call checked refcount > 0
        Ok(())
    })
}

/// `const char* nvmlErrorString(nvmlReturn_t result)`: static strings, pynvml's texts where
/// pynvml has one.
///
/// # Safety
/// None beyond the C ABI; the result is a static NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlErrorString(result: NvmlReturn) -> *const c_char {
    let text: &'static std::ffi::CStr = match result {
        0 => c"Success",
        1 => c"Uninitialized",
        2 => c"Invalid Argument",
        3 => c"Not Supported",
        4 => c"Insufficient Permissions",
        5 => c"Already Initialized",
        6 => c"Not Found",
        7 => c"Insufficient Size",
        8 => c"Insufficient External Power",
        9 => c"Driver Not Loaded",
        10 => c"Timeout",
        11 => c"Interrupt Request Issue",
        12 => c"NVML Shared Library Not Found",
        13 => c"Function Not Found",
        14 => c"Corrupted infoROM",
        15 => c"GPU is lost",
        16 => c"GPU requires restart",
        17 => c"The operating system has blocked the request.",
        18 => c"RM has detected an NVML/RM version mismatch.",
        19 => c"In use by another client",
        20 => c"Insufficient Memory",
        21 => c"No data",
        22 => c"The requested vgpu operation is not available on target device, because ECC is enabled",
        23 => c"Insufficient resources",
        24 => c"Frequency not supported",
        25 => c"Argument version mismatch",
        26 => c"Requested functionality has been deprecated",
        27 => c"System is not ready for the request",
        28 => c"GPU not found",
        29 => c"Invalid state",
        30 => c"Reset type not supported",
        _ => c"Unknown Error",
    };
    text.as_ptr()
}

// ---------------------------------------------------------------------------------------------
// System queries

/// `nvmlSystemGetDriverVersion(char *version, unsigned int length)`.
///
/// # Safety
/// `version` must be NULL or valid for writes of `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetDriverVersion(
    version: *mut c_char,
    length: c_uint,
) -> NvmlReturn {
    system_call("SystemGetDriverVersion", |sc, _| {
        // SAFETY: forwarded from this function's contract.
        unsafe { put_str(version, length, &sc.driver_version) }
    })
}

/// `nvmlSystemGetNVMLVersion(char *version, unsigned int length)`.
///
/// # Safety
/// `version` must be NULL or valid for writes of `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetNVMLVersion(
    version: *mut c_char,
    length: c_uint,
) -> NvmlReturn {
    system_call("SystemGetNVMLVersion", |sc, _| {
        // SAFETY: forwarded from this function's contract.
        unsafe { put_str(version, length, &sc.nvml_version) }
    })
}

/// `nvmlSystemGetCudaDriverVersion(int *cudaDriverVersion)`.
///
/// # Safety
/// `version` must be NULL or valid for writing an `int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetCudaDriverVersion(version: *mut c_int) -> NvmlReturn {
    system_call("SystemGetCudaDriverVersion", |sc, _| {
        // SAFETY: forwarded from this function's contract.
        unsafe { put(version, sc.cuda_driver_version) }
    })
}

/// `nvmlSystemGetCudaDriverVersion_v2(int *cudaDriverVersion)`.
///
/// # Safety
/// `version` must be NULL or valid for writing an `int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetCudaDriverVersion_v2(version: *mut c_int) -> NvmlReturn {
    system_call("SystemGetCudaDriverVersion_v2", |sc, _| {
        // SAFETY: forwarded from this function's contract.
        unsafe { put(version, sc.cuda_driver_version) }
    })
}

/// `nvmlSystemGetProcessName(unsigned int pid, char *name, unsigned int length)`: the `name`
/// a scenario process with that pid declares, else `/proc/<pid>/comm`, else NOT_FOUND.
///
/// # Safety
/// `name` must be NULL or valid for writes of `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetProcessName(
    pid: c_uint,
    name: *mut c_char,
    length: c_uint,
) -> NvmlReturn {
    system_call("SystemGetProcessName", |sc, _| {
        let declared = sc.process_names.get(&pid).cloned();
        let found = declared.or_else(|| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .ok()
                .map(|s| s.trim_end_matches('\n').to_string())
        });
        if name.is_null() {
            return Err(ERROR_INVALID_ARGUMENT);
        }
        let found = found.ok_or(ERROR_NOT_FOUND)?;
        // SAFETY: forwarded from this function's contract.
        unsafe { put_str(name, length, &found) }
    })
}

/// `nvmlDeviceGetCount_v2(unsigned int *deviceCount)`.
///
/// # Safety
/// `count` must be NULL or valid for writing an `unsigned int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(count: *mut c_uint) -> NvmlReturn {
    system_call("DeviceGetCount_v2", |sc, _| {
        // SAFETY: forwarded from this function's contract.
        unsafe { put(count, sc.devices.len() as c_uint) }
    })
}

/// The old `nvmlDeviceGetCount`; same as `_v2`.
///
/// # Safety
/// `count` must be NULL or valid for writing an `unsigned int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCount(count: *mut c_uint) -> NvmlReturn {
    system_call("DeviceGetCount", |sc, _| {
        // SAFETY: forwarded from this function's contract.
        unsafe { put(count, sc.devices.len() as c_uint) }
    })
}

// ---------------------------------------------------------------------------------------------
// Handles

fn handle_by_index(function: &str, index: c_uint, device: *mut NvmlDevice) -> NvmlReturn {
    system_call(function, |sc, _| {
        let i = index as usize;
        let dev = sc.devices.get(i).ok_or(ERROR_INVALID_ARGUMENT)?;
        if let Some(&code) = dev.errors.get(function) {
            return Err(code);
        }
        // SAFETY: the callers' contract: `device` is NULL or valid for writing a handle.
        unsafe { put(device, handle_for(i)) }
    })
}

/// `nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)`.
///
/// # Safety
/// `device` must be NULL or valid for writing an `nvmlDevice_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(
    index: c_uint,
    device: *mut NvmlDevice,
) -> NvmlReturn {
    handle_by_index("DeviceGetHandleByIndex_v2", index, device)
}

/// The old `nvmlDeviceGetHandleByIndex`; same as `_v2`.
///
/// # Safety
/// `device` must be NULL or valid for writing an `nvmlDevice_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex(
    index: c_uint,
    device: *mut NvmlDevice,
) -> NvmlReturn {
    handle_by_index("DeviceGetHandleByIndex", index, device)
}

/// `nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index)`.
///
/// # Safety
/// `index` must be NULL or valid for writing an `unsigned int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetIndex(device: NvmlDevice, index: *mut c_uint) -> NvmlReturn {
    device_call("DeviceGetIndex", device, |_, i, _| {
        // SAFETY: forwarded from this function's contract.
        unsafe { put(index, i as c_uint) }
    })
}

// ---------------------------------------------------------------------------------------------
// Identity

/// `nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)`.
///
/// # Safety
/// `name` must be NULL or valid for writes of `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetName(
    device: NvmlDevice,
    name: *mut c_char,
    length: c_uint,
) -> NvmlReturn {
    device_call("DeviceGetName", device, |dev, _, _| {
        // SAFETY: forwarded from this function's contract.
        unsafe { put_str(name, length, &dev.name) }
    })
}

/// `nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)`.
///
/// # Safety
/// `uuid` must be NULL or valid for writes of `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetUUID(
    device: NvmlDevice,
    uuid: *mut c_char,
    length: c_uint,
) -> NvmlReturn {
    mig_call("DeviceGetUUID", device, |mig| {
        // SAFETY: forwarded from this function's contract.
        unsafe { put_str(uuid, length, &mig.uuid) }
    })
    .unwrap_or_else(|| {
        device_call("DeviceGetUUID", device, |dev, _, _| {
            // SAFETY: forwarded from this function's contract.
            unsafe { put_str(uuid, length, &dev.uuid) }
        })
    })
}

fn pci_info(function: &str, device: NvmlDevice, pci: *mut NvmlPciInfo) -> NvmlReturn {
    device_call(function, device, |dev, _, _| {
        let p = &dev.pci;
        let value = NvmlPciInfo {
            bus_id_legacy: c_array(&p.bus_id_legacy),
            domain: p.domain,
            bus: p.bus,
            device: p.device,
            pci_device_id: p.device_id,
            pci_sub_system_id: p.subsystem_id,
            bus_id: c_array(&p.bus_id),
        };
        // SAFETY: the callers' contract: `pci` is NULL or valid for an `nvmlPciInfo_t`.
        unsafe { put(pci, value) }
    })
}

/// `nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci)`.
///
/// # Safety
/// `pci` must be NULL or valid for writing an `nvmlPciInfo_t` (68 bytes).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPciInfo_v3(
    device: NvmlDevice,
    pci: *mut NvmlPciInfo,
) -> NvmlReturn {
    pci_info("DeviceGetPciInfo_v3", device, pci)
}

/// `nvmlDeviceGetPciInfo_v2`: same 68-byte layout as `_v3`.
///
/// # Safety
/// `pci` must be NULL or valid for writing an `nvmlPciInfo_t` (68 bytes).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPciInfo_v2(
    device: NvmlDevice,
    pci: *mut NvmlPciInfo,
) -> NvmlReturn {
    pci_info("DeviceGetPciInfo_v2", device, pci)
}

/// The old `nvmlDeviceGetPciInfo`: same 68-byte layout as `_v3`.
///
/// # Safety
/// `pci` must be NULL or valid for writing an `nvmlPciInfo_t` (68 bytes).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPciInfo(
    device: NvmlDevice,
    pci: *mut NvmlPciInfo,
) -> NvmlReturn {
    pci_info("DeviceGetPciInfo", device, pci)
}

// ---------------------------------------------------------------------------------------------
// Memory

/// `nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)`: as R510+ drivers do,
/// `used` includes the reserved memory. `memory: null` → zeros and NOT_SUPPORTED.
///
/// # Safety
/// `memory` must be NULL or valid for writing an `nvmlMemory_t` (24 bytes).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo(
    device: NvmlDevice,
    memory: *mut NvmlMemoryV1,
) -> NvmlReturn {
    let on_mig = mig_call("DeviceGetMemoryInfo", device, |mig| {
        let m = mig.memory;
        let value = NvmlMemoryV1 {
            total: m.total,
            free: m.free,
            used: m.used.saturating_add(m.reserved),
        };
        // SAFETY: forwarded from this function's contract.
        unsafe { put(memory, value) }
    });
    if let Some(code) = on_mig {
        return code;
    }
    device_call("DeviceGetMemoryInfo", device, |dev, _, _| {
        let (value, outcome) = match dev.memory_at(now_ms()) {
            Some(m) => (
                NvmlMemoryV1 {
                    total: m.total,
                    free: m.free,
                    used: m.used.saturating_add(m.reserved),
                },
                Ok(()),
            ),
            None => (NvmlMemoryV1::default(), Err(ERROR_NOT_SUPPORTED)),
        };
        // SAFETY: forwarded from this function's contract.
        unsafe { put(memory, value) }?;
        outcome
    })
}

/// `nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)`: `version` must
/// be `0x02000028`, else ARGUMENT_VERSION_MISMATCH. `memory: null` → zeros and NOT_SUPPORTED.
///
/// # Safety
/// `memory` must be NULL or valid for reading and writing an `nvmlMemory_v2_t` (40 bytes).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo_v2(
    device: NvmlDevice,
    memory: *mut NvmlMemoryV2,
) -> NvmlReturn {
    let version = || {
        if memory.is_null() {
            return Err(ERROR_INVALID_ARGUMENT);
        }
        // SAFETY: non-NULL and valid for reading an `nvmlMemory_v2_t` (contract); `version`
        // is its first field.
        let version = unsafe { memory.cast::<c_uint>().read_unaligned() };
        if version == MEMORY_V2_VERSION {
            Ok(version)
        } else {
            Err(ERROR_ARGUMENT_VERSION_MISMATCH)
        }
    };
    let on_mig = mig_call("DeviceGetMemoryInfo_v2", device, |mig| {
        let m = mig.memory;
        let value = NvmlMemoryV2 {
            version: version()?,
            total: m.total,
            reserved: m.reserved,
            free: m.free,
            used: m.used,
        };
        // SAFETY: forwarded from this function's contract.
        unsafe { put(memory, value) }
    });
    if let Some(code) = on_mig {
        return code;
    }
    device_call("DeviceGetMemoryInfo_v2", device, |dev, _, _| {
        let version = version()?;
        let (value, outcome) = match dev.memory_at(now_ms()) {
            Some(m) => (
                NvmlMemoryV2 {
                    version,
                    total: m.total,
                    reserved: m.reserved,
                    free: m.free,
                    used: m.used,
                },
                Ok(()),
            ),
            None => (
                NvmlMemoryV2 {
                    version,
                    ..NvmlMemoryV2::default()
                },
                Err(ERROR_NOT_SUPPORTED),
            ),
        };
        // SAFETY: forwarded from this function's contract.
        unsafe { put(memory, value) }?;
        outcome
    })
}

// ---------------------------------------------------------------------------------------------
// Process lists

#[derive(Clone, Copy, PartialEq, Eq)]
enum ListKind {
    Compute,
    Graphics,
    Mps,
}

trait ProcessEntry: Sized {
    /// The entry for `p` at `ms` after the first successful init.
    fn from_process(p: &Process, ms: u64) -> Self;
}

impl ProcessEntry for NvmlProcessInfoV1 {
    fn from_process(p: &Process, ms: u64) -> Self {
        Self {
            pid: p.pid,
            used_gpu_memory: p.used_at(ms),
        }
    }
}

impl ProcessEntry for NvmlProcessInfoEarlyR535 {
    fn from_process(p: &Process, ms: u64) -> Self {
        Self {
            pid: p.pid,
            padding: 0,
            used_gpu_memory: p.used_at(ms),
            gpu_instance_id: p.gpu_instance_id,
            compute_instance_id: p.compute_instance_id,
            used_gpu_cc_protected_memory: 0,
        }
    }
}

impl ProcessEntry for NvmlProcessInfo {
    fn from_process(p: &Process, ms: u64) -> Self {
        Self {
            pid: p.pid,
            used_gpu_memory: p.used_at(ms),
            gpu_instance_id: p.gpu_instance_id,
            compute_instance_id: p.compute_instance_id,
        }
    }
}

/// nvml.h's protocol: a capacity (`*count`) too small for the list sets `*count` to the size
/// needed and returns INSUFFICIENT_SIZE (SUCCESS when the list is empty); otherwise the list
/// is written, `*count` set to its length, SUCCESS.
///
/// `E` is the entry the function is declared with; a `_v3` function (`v3`) of a device whose
/// scenario sets `process_info_stride: 32` writes [`NvmlProcessInfoEarlyR535`] instead, as
/// an early R535 driver did.
///
/// # Safety
/// `count` must be NULL or valid for reading and writing an `unsigned int`; `infos` must be
/// NULL or valid for writes of `*count` entries of `E` — or, for a 32-byte device's `_v3`
/// call, of `*count` 32-byte entries (the caller was told so by the symbols the library
/// exports, as with the real driver).
unsafe fn process_list<E: ProcessEntry>(
    function: &str,
    kind: ListKind,
    v3: bool,
    device: NvmlDevice,
    count: *mut c_uint,
    infos: *mut E,
) -> NvmlReturn {
    device_call(function, device, |dev, index, rt| {
        if count.is_null() {
            return Err(ERROR_INVALID_ARGUMENT);
        }
        // SAFETY: non-NULL and valid for reading (contract).
        let capacity = unsafe { count.read_unaligned() };
        let list: &[Process] = match kind {
            ListKind::Compute => &dev.compute,
            ListKind::Graphics => &dev.graphics,
            ListKind::Mps => &[],
        };
        let len = c_uint::try_from(list.len()).map_err(|_| ERROR_UNKNOWN)?;
        if capacity < len {
            let mut reported = len;
            if let (ListKind::Compute, 0, Some(u)) = (kind, capacity, dev.undercount) {
                let done = &mut rt.undercounts_done[index];
                if *done < u.times {
                    *done += 1;
                    reported = len.saturating_sub(u.by);
                }
            }
            // SAFETY: non-NULL and valid for writing (contract).
            unsafe { count.write_unaligned(reported) };
            return Err(ERROR_INSUFFICIENT_SIZE);
        }
        if len > 0 && infos.is_null() {
            return Err(ERROR_INVALID_ARGUMENT);
        }
        let ms = now_ms();
        let early_r535 = v3 && dev.process_info_stride == 32;
        for (i, p) in list.iter().enumerate() {
            if early_r535 {
                let entry = NvmlProcessInfoEarlyR535::from_process(p, ms);
                // SAFETY: `infos` is non-NULL (checked, as len > 0) and valid for
                // `capacity >= len` 32-byte entries on this device (contract), and `i < len`.
                unsafe {
                    infos
                        .cast::<NvmlProcessInfoEarlyR535>()
                        .add(i)
                        .write_unaligned(entry)
                };
            } else {
                // SAFETY: `infos` is non-NULL (checked, as len > 0) and valid for
                // `capacity >= len` entries (contract), and `i < len`.
                unsafe { infos.add(i).write_unaligned(E::from_process(p, ms)) };
            }
        }
        // SAFETY: non-NULL and valid for writing (contract).
        unsafe { count.write_unaligned(len) };
        Ok(())
    })
}

macro_rules! process_list_export {
    ($(#[$doc:meta])* $name:ident, $short:literal, $kind:expr, $entry:ty) => {
        process_list_export!($(#[$doc])* $name, $short, $kind, $entry, false);
    };
    ($(#[$doc:meta])* $name:ident, $short:literal, $kind:expr, $entry:ty, $v3:expr) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// `infoCount` must be NULL or valid for reading and writing an `unsigned int`;
        /// `infos` must be NULL or valid for writes of `*infoCount` entries.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(
            device: NvmlDevice,
            infoCount: *mut c_uint,
            infos: *mut $entry,
        ) -> NvmlReturn {
            // SAFETY: this function's contract is `process_list`'s.
            unsafe { process_list($short, $kind, $v3, device, infoCount, infos) }
        }
    };
}

process_list_export!(
    /// `nvmlDeviceGetComputeRunningProcesses_v3` (24-byte `nvmlProcessInfo_t`; 32 bytes on
    /// a device with `process_info_stride: 32`).
    nvmlDeviceGetComputeRunningProcesses_v3,
    "DeviceGetComputeRunningProcesses_v3",
    ListKind::Compute,
    NvmlProcessInfo,
    true
);
process_list_export!(
    /// `nvmlDeviceGetComputeRunningProcesses_v2` (24-byte `nvmlProcessInfo_v2_t`).
    nvmlDeviceGetComputeRunningProcesses_v2,
    "DeviceGetComputeRunningProcesses_v2",
    ListKind::Compute,
    NvmlProcessInfo
);
process_list_export!(
    /// `nvmlDeviceGetComputeRunningProcesses` (16-byte `nvmlProcessInfo_v1_t`).
    nvmlDeviceGetComputeRunningProcesses,
    "DeviceGetComputeRunningProcesses",
    ListKind::Compute,
    NvmlProcessInfoV1
);
process_list_export!(
    /// `nvmlDeviceGetGraphicsRunningProcesses_v3` (24-byte `nvmlProcessInfo_t`; 32 bytes on
    /// a device with `process_info_stride: 32`).
    nvmlDeviceGetGraphicsRunningProcesses_v3,
    "DeviceGetGraphicsRunningProcesses_v3",
    ListKind::Graphics,
    NvmlProcessInfo,
    true
);
process_list_export!(
    /// `nvmlDeviceGetGraphicsRunningProcesses_v2` (24-byte `nvmlProcessInfo_v2_t`).
    nvmlDeviceGetGraphicsRunningProcesses_v2,
    "DeviceGetGraphicsRunningProcesses_v2",
    ListKind::Graphics,
    NvmlProcessInfo
);
process_list_export!(
    /// `nvmlDeviceGetGraphicsRunningProcesses` (16-byte `nvmlProcessInfo_v1_t`).
    nvmlDeviceGetGraphicsRunningProcesses,
    "DeviceGetGraphicsRunningProcesses",
    ListKind::Graphics,
    NvmlProcessInfoV1
);
process_list_export!(
    /// `nvmlDeviceGetMPSComputeRunningProcesses_v3`: always an empty list.
    nvmlDeviceGetMPSComputeRunningProcesses_v3,
    "DeviceGetMPSComputeRunningProcesses_v3",
    ListKind::Mps,
    NvmlProcessInfo
);
process_list_export!(
    /// `nvmlDeviceGetMPSComputeRunningProcesses_v2`: always an empty list.
    nvmlDeviceGetMPSComputeRunningProcesses_v2,
    "DeviceGetMPSComputeRunningProcesses_v2",
    ListKind::Mps,
    NvmlProcessInfo
);
process_list_export!(
    /// `nvmlDeviceGetMPSComputeRunningProcesses`: always an empty list.
    nvmlDeviceGetMPSComputeRunningProcesses,
    "DeviceGetMPSComputeRunningProcesses",
    ListKind::Mps,
    NvmlProcessInfoV1
);

// ---------------------------------------------------------------------------------------------
// MIG and compute capability

/// `nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *currentMode, unsigned int
/// *pendingMode)`: NOT_SUPPORTED when the scenario has no `mig_mode`.
///
/// # Safety
/// Both pointers must be NULL or valid for writing an `unsigned int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMigMode(
    device: NvmlDevice,
    current: *mut c_uint,
    pending: *mut c_uint,
) -> NvmlReturn {
    device_call("DeviceGetMigMode", device, |dev, _, _| {
        if current.is_null() || pending.is_null() {
            return Err(ERROR_INVALID_ARGUMENT);
        }
        let (c, p) = dev.mig_mode.ok_or(ERROR_NOT_SUPPORTED)?;
        // SAFETY: forwarded from this function's contract.
        unsafe { put(current, c) }?;
        // SAFETY: forwarded from this function's contract.
        unsafe { put(pending, p) }
    })
}

/// `nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, unsigned int *count)`: 7 on a device
/// with a `mig_mode`, NOT_SUPPORTED without.
///
/// # Safety
/// `count` must be NULL or valid for writing an `unsigned int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMaxMigDeviceCount(
    device: NvmlDevice,
    count: *mut c_uint,
) -> NvmlReturn {
    device_call("DeviceGetMaxMigDeviceCount", device, |dev, _, _| {
        dev.mig_mode.ok_or(ERROR_NOT_SUPPORTED)?;
        // SAFETY: forwarded from this function's contract.
        unsafe { put(count, MAX_MIG_DEVICES as c_uint) }
    })
}

/// `nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned int index, nvmlDevice_t
/// *migDevice)`: the `index`-th of `mig_devices`; NOT_FOUND past them (an empty slot),
/// INVALID_ARGUMENT past the maximum, NOT_SUPPORTED without a `mig_mode`.
///
/// # Safety
/// `mig_device` must be NULL or valid for writing an `nvmlDevice_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMigDeviceHandleByIndex(
    device: NvmlDevice,
    index: c_uint,
    mig_device: *mut NvmlDevice,
) -> NvmlReturn {
    device_call("DeviceGetMigDeviceHandleByIndex", device, |dev, d, _| {
        dev.mig_mode.ok_or(ERROR_NOT_SUPPORTED)?;
        let index = index as usize;
        if index >= MAX_MIG_DEVICES {
            return Err(ERROR_INVALID_ARGUMENT);
        }
        if index >= dev.mig_devices.len() {
            return Err(ERROR_NOT_FOUND);
        }
        // SAFETY: forwarded from this function's contract.
        unsafe { put(mig_device, mig_handle_for(d, index)) }
    })
}

/// `nvmlDeviceGetGpuInstanceId(nvmlDevice_t device, unsigned int *id)`: a MIG device's GPU
/// instance; NOT_SUPPORTED for a whole device.
///
/// # Safety
/// `id` must be NULL or valid for writing an `unsigned int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetGpuInstanceId(
    device: NvmlDevice,
    id: *mut c_uint,
) -> NvmlReturn {
    mig_call("DeviceGetGpuInstanceId", device, |mig| {
        // SAFETY: forwarded from this function's contract.
        unsafe { put(id, mig.gpu_instance_id) }
    })
    .unwrap_or_else(|| {
        device_call("DeviceGetGpuInstanceId", device, |_, _, _| {
            Err(ERROR_NOT_SUPPORTED)
        })
    })
}

/// `nvmlDeviceGetComputeInstanceId(nvmlDevice_t device, unsigned int *id)`: a MIG device's
/// compute instance; NOT_SUPPORTED for a whole device.
///
/// # Safety
/// `id` must be NULL or valid for writing an `unsigned int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetComputeInstanceId(
    device: NvmlDevice,
    id: *mut c_uint,
) -> NvmlReturn {
    mig_call("DeviceGetComputeInstanceId", device, |mig| {
        // SAFETY: forwarded from this function's contract.
        unsafe { put(id, mig.compute_instance_id) }
    })
    .unwrap_or_else(|| {
        device_call("DeviceGetComputeInstanceId", device, |_, _, _| {
            Err(ERROR_NOT_SUPPORTED)
        })
    })
}

/// `nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int *major, int *minor)`.
///
/// # Safety
/// Both pointers must be NULL or valid for writing an `int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCudaComputeCapability(
    device: NvmlDevice,
    major: *mut c_int,
    minor: *mut c_int,
) -> NvmlReturn {
    device_call("DeviceGetCudaComputeCapability", device, |dev, _, _| {
        if major.is_null() || minor.is_null() {
            return Err(ERROR_INVALID_ARGUMENT);
        }
        let (ma, mi) = dev.cuda_compute_capability;
        // SAFETY: forwarded from this function's contract.
        unsafe { put(major, ma) }?;
        // SAFETY: forwarded from this function's contract.
        unsafe { put(minor, mi) }
    })
}

// ---------------------------------------------------------------------------------------------
// Telemetry: utilization, temperature, power, clocks, fan, PCIe link

/// An `unsigned int` figure of `dev`, or NOT_SUPPORTED when the scenario has none.
fn uint_figure(
    function: &str,
    device: NvmlDevice,
    out: *mut c_uint,
    figure: impl FnOnce(&Device) -> Option<c_uint>,
) -> NvmlReturn {
    device_call(function, device, |dev, _, _| {
        if out.is_null() {
            return Err(ERROR_INVALID_ARGUMENT);
        }
        let value = figure(dev).ok_or(ERROR_NOT_SUPPORTED)?;
        // SAFETY: the callers' contract: `out` is valid for writing an `unsigned int`.
        unsafe { put(out, value) }
    })
}

/// `nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization)`.
///
/// # Safety
/// `utilization` must be NULL or valid for writing an `nvmlUtilization_t` (8 bytes).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetUtilizationRates(
    device: NvmlDevice,
    utilization: *mut NvmlUtilization,
) -> NvmlReturn {
    device_call("DeviceGetUtilizationRates", device, |dev, _, _| {
        if utilization.is_null() {
            return Err(ERROR_INVALID_ARGUMENT);
        }
        let (gpu, memory) = dev.utilization.ok_or(ERROR_NOT_SUPPORTED)?;
        // SAFETY: forwarded from this function's contract.
        unsafe { put(utilization, NvmlUtilization { gpu, memory }) }
    })
}

/// `nvmlDeviceGetTemperature(nvmlDevice_t device, nvmlTemperatureSensors_t sensorType,
/// unsigned int *temp)`: only `NVML_TEMPERATURE_GPU` (0) exists; another sensor is
/// INVALID_ARGUMENT.
///
/// # Safety
/// `temp` must be NULL or valid for writing an `unsigned int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTemperature(
    device: NvmlDevice,
    sensor: c_int,
    temp: *mut c_uint,
) -> NvmlReturn {
    if sensor != 0 {
        return device_call("DeviceGetTemperature", device, |_, _, _| {
            Err(ERROR_INVALID_ARGUMENT)
        });
    }
    uint_figure("DeviceGetTemperature", device, temp, |d| d.temperature)
}

/// `nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power)`: milliwatts.
///
/// # Safety
/// `power` must be NULL or valid for writing an `unsigned int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerUsage(
    device: NvmlDevice,
    power: *mut c_uint,
) -> NvmlReturn {
    uint_figure("DeviceGetPowerUsage", device, power, |d| d.power_usage_mw)
}

/// `nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int *limit)`: milliwatts.
///
/// # Safety
/// `limit` must be NULL or valid for writing an `unsigned int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetEnforcedPowerLimit(
    device: NvmlDevice,
    limit: *mut c_uint,
) -> NvmlReturn {
    uint_figure("DeviceGetEnforcedPowerLimit", device, limit, |d| {
        d.power_limit_mw
    })
}

/// `nvmlDeviceGetClockInfo(nvmlDevice_t device, nvmlClockType_t type, unsigned int *clock)`:
/// GRAPHICS (0) and SM (1) answer `clocks.graphics`, MEM (2) `clocks.memory`; VIDEO (3) is
/// NOT_SUPPORTED; anything else INVALID_ARGUMENT. MHz.
///
/// # Safety
/// `clock` must be NULL or valid for writing an `unsigned int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetClockInfo(
    device: NvmlDevice,
    clock_type: c_int,
    clock: *mut c_uint,
) -> NvmlReturn {
    device_call("DeviceGetClockInfo", device, |dev, _, _| {
        if clock.is_null() || !(0..=3).contains(&clock_type) {
            return Err(ERROR_INVALID_ARGUMENT);
        }
        let (graphics, memory) = dev.clocks.ok_or(ERROR_NOT_SUPPORTED)?;
        let value = match clock_type {
            0 | 1 => graphics,
            2 => memory,
            _ => return Err(ERROR_NOT_SUPPORTED),
        };
        // SAFETY: forwarded from this function's contract.
        unsafe { put(clock, value) }
    })
}

/// `nvmlDeviceGetFanSpeed(nvmlDevice_t device, unsigned int *speed)`: percent.
///
/// # Safety
/// `speed` must be NULL or valid for writing an `unsigned int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetFanSpeed(
    device: NvmlDevice,
    speed: *mut c_uint,
) -> NvmlReturn {
    uint_figure("DeviceGetFanSpeed", device, speed, |d| d.fan_speed)
}

/// `nvmlDeviceGetFanSpeed_v2(nvmlDevice_t device, unsigned int fan, unsigned int *speed)`:
/// one fan (index 0); another index is INVALID_ARGUMENT.
///
/// # Safety
/// `speed` must be NULL or valid for writing an `unsigned int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetFanSpeed_v2(
    device: NvmlDevice,
    fan: c_uint,
    speed: *mut c_uint,
) -> NvmlReturn {
    if fan != 0 {
        return device_call("DeviceGetFanSpeed_v2", device, |_, _, _| {
            Err(ERROR_INVALID_ARGUMENT)
        });
    }
    uint_figure("DeviceGetFanSpeed_v2", device, speed, |d| d.fan_speed)
}

/// `nvmlDeviceGetCurrPcieLinkGeneration(nvmlDevice_t device, unsigned int *currLinkGen)`.
///
/// # Safety
/// `gen` must be NULL or valid for writing an `unsigned int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCurrPcieLinkGeneration(
    device: NvmlDevice,
    generation: *mut c_uint,
) -> NvmlReturn {
    uint_figure("DeviceGetCurrPcieLinkGeneration", device, generation, |d| {
        d.pcie.map(|(g, _)| g)
    })
}

/// `nvmlDeviceGetCurrPcieLinkWidth(nvmlDevice_t device, unsigned int *currLinkWidth)`.
///
/// # Safety
/// `width` must be NULL or valid for writing an `unsigned int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCurrPcieLinkWidth(
    device: NvmlDevice,
    width: *mut c_uint,
) -> NvmlReturn {
    uint_figure("DeviceGetCurrPcieLinkWidth", device, width, |d| {
        d.pcie.map(|(_, w)| w)
    })
}

/// The sampling period the double reports for encoder and decoder utilization, µs.
const CODEC_SAMPLING_PERIOD_US: c_uint = 167_000;

/// Encoder or decoder utilization: percent and [`CODEC_SAMPLING_PERIOD_US`].
///
/// # Safety
/// Both pointers must be NULL or valid for writing an `unsigned int`.
unsafe fn codec_utilization(
    function: &str,
    device: NvmlDevice,
    utilization: *mut c_uint,
    period_us: *mut c_uint,
    figure: impl FnOnce(&Device) -> Option<c_uint>,
) -> NvmlReturn {
    device_call(function, device, |dev, _, _| {
        if utilization.is_null() || period_us.is_null() {
            return Err(ERROR_INVALID_ARGUMENT);
        }
        let value = figure(dev).ok_or(ERROR_NOT_SUPPORTED)?;
        // SAFETY: forwarded from this function's contract.
        unsafe { put(utilization, value) }?;
        // SAFETY: forwarded from this function's contract.
        unsafe { put(period_us, CODEC_SAMPLING_PERIOD_US) }
    })
}

/// `nvmlDeviceGetEncoderUtilization(nvmlDevice_t device, unsigned int *utilization,
/// unsigned int *samplingPeriodUs)`.
///
/// # Safety
/// Both pointers must be NULL or valid for writing an `unsigned int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetEncoderUtilization(
    device: NvmlDevice,
    utilization: *mut c_uint,
    period_us: *mut c_uint,
) -> NvmlReturn {
    // SAFETY: this function's contract is `codec_utilization`'s.
    unsafe {
        codec_utilization(
            "DeviceGetEncoderUtilization",
            device,
            utilization,
            period_us,
            |d| d.encoder,
        )
    }
}

/// `nvmlDeviceGetDecoderUtilization(nvmlDevice_t device, unsigned int *utilization,
/// unsigned int *samplingPeriodUs)`.
///
/// # Safety
/// Both pointers must be NULL or valid for writing an `unsigned int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetDecoderUtilization(
    device: NvmlDevice,
    utilization: *mut c_uint,
    period_us: *mut c_uint,
) -> NvmlReturn {
    // SAFETY: this function's contract is `codec_utilization`'s.
    unsafe {
        codec_utilization(
            "DeviceGetDecoderUtilization",
            device,
            utilization,
            period_us,
            |d| d.decoder,
        )
    }
}

/// `nvmlDeviceGetProcessUtilization(nvmlDevice_t device, nvmlProcessUtilizationSample_t
/// *utilization, unsigned int *processSamplesCount, unsigned long long lastSeenTimeStamp)`.
///
/// The samples are those already taken (`timestamp / 1000` ms after the first init or
/// earlier) and newer than `lastSeenTimeStamp`. None: NOT_FOUND. `utilization` NULL or
/// `*processSamplesCount` too small: the count needed and INSUFFICIENT_SIZE. Otherwise the
/// samples are written, the count set, SUCCESS. `processSamplesCount` NULL: INVALID_ARGUMENT.
///
/// # Safety
/// `count` must be NULL or valid for reading and writing an `unsigned int`; `utilization`
/// must be NULL or valid for writes of `*count` 32-byte samples.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetProcessUtilization(
    device: NvmlDevice,
    utilization: *mut NvmlProcessUtilizationSample,
    count: *mut c_uint,
    last_seen: c_ulonglong,
) -> NvmlReturn {
    device_call("DeviceGetProcessUtilization", device, |dev, _, _| {
        if count.is_null() {
            return Err(ERROR_INVALID_ARGUMENT);
        }
        let now_us = now_ms().saturating_mul(1000);
        let fresh: Vec<&UtilSample> = dev
            .process_utilization
            .iter()
            .filter(|s| s.timestamp / 1000 * 1000 <= now_us && s.timestamp > last_seen)
            .collect();
        if fresh.is_empty() {
            return Err(ERROR_NOT_FOUND);
        }
        let len = c_uint::try_from(fresh.len()).map_err(|_| ERROR_UNKNOWN)?;
        // SAFETY: non-NULL and valid for reading (contract).
        let capacity = unsafe { count.read_unaligned() };
        if utilization.is_null() || capacity < len {
            // SAFETY: non-NULL and valid for writing (contract).
            unsafe { count.write_unaligned(len) };
            return Err(ERROR_INSUFFICIENT_SIZE);
        }
        for (i, s) in fresh.iter().enumerate() {
            let sample = NvmlProcessUtilizationSample {
                pid: s.pid,
                time_stamp: s.timestamp,
                sm_util: s.sm_util,
                mem_util: s.mem_util,
                enc_util: s.enc_util,
                dec_util: s.dec_util,
            };
            // SAFETY: non-NULL (checked) and valid for `capacity >= len` samples (contract),
            // and `i < len`.
            unsafe { utilization.add(i).write_unaligned(sample) };
        }
        // SAFETY: non-NULL and valid for writing (contract).
        unsafe { count.write_unaligned(len) };
        Ok(())
    })
}

/// `nvmlDeviceGetConfComputeMemSizeInfo`: confidential computing is off on every scenario
/// device, so NOT_SUPPORTED. Exported because its presence is half of how a reader tells an
/// early R535 driver (this symbol, and no `nvmlDeviceGetRunningProcessDetailList`: 32-byte
/// `_v3` process entries) from a later one; a scenario drops the other symbol to play one.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetConfComputeMemSizeInfo(
    device: NvmlDevice,
    mem_info: *mut c_void,
) -> NvmlReturn {
    let _ = mem_info;
    device_call("DeviceGetConfComputeMemSizeInfo", device, |_, _, _| {
        Err(ERROR_NOT_SUPPORTED)
    })
}

/// `nvmlDeviceGetRunningProcessDetailList` (R535 and later): not modelled, NOT_SUPPORTED.
/// Exported because later R535 drivers have it (see
/// [`nvmlDeviceGetConfComputeMemSizeInfo`]).
#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetRunningProcessDetailList(
    device: NvmlDevice,
    plist: *mut c_void,
) -> NvmlReturn {
    let _ = plist;
    device_call("DeviceGetRunningProcessDetailList", device, |_, _, _| {
        Err(ERROR_NOT_SUPPORTED)
    })
}

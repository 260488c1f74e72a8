//! macOS GPUs through Metal, the IORegistry and the kernel ledger.
//!
//! On Apple Silicon the GPU has no memory of its own: it allocates from the same RAM as the
//! CPU (unified memory), up to a working-set budget the system sets. So the device record
//! says:
//! - `total_bytes`: installed RAM (`hw.memsize`), which the GPU shares;
//! - `system_total_bytes`: Metal's budget, `MTLDevice.recommendedMaxWorkingSetSize` — about
//!   65–75 % of RAM, beyond which the GPU is likely to be overcommitted;
//! - `used_bytes` and `system_used_bytes`: GPU memory in use by all processes, the
//!   IOAccelerator's `PerformanceStatistics` `"In use system memory"` summed over accelerator
//!   entries (`"In use system memory (driver)"` is a different statistic, so keys match
//!   exactly; mmapped model weights are not in it);
//! - `free_bytes`: `None` — what is free for the GPU is what is free in RAM (see
//!   [`crate::HostMemory`]), and `unified_memory` is set so callers judge fits by host memory.
//!
//! `MTLCreateSystemDefaultDevice` returns nothing in a command-line tool unless CoreGraphics is
//! linked, so it is linked here; the device is asked once and its (static) facts kept.
//!
//! Per process, the figure is the kernel ledger's `graphics_footprint`: Metal memory charged
//! to the process, readable for any process the caller's sandbox allows (see `ram/macos.rs`).
//! Processes are listed with `proc_listpids`. A process whose ledger the sandbox refuses
//! (`EPERM`) is counted in the listing's `unreadable_pids` when it is the caller's user's (or
//! its owner cannot be told) — a blind spot, not 0 bytes — and is left out when it belongs to
//! another user, whose processes only root may inspect anyway. When every other process is
//! refused, the listing is an error saying to run outside the sandbox.
#![cfg_attr(not(all(target_os = "macos", feature = "metal")), allow(dead_code))]

use crate::snapshot::{GpuDeviceInfo, GpuQuerySource, GpuVendor};
use crate::telemetry::DeviceTelemetry;
use crate::unavailable::{DeviceField, TelemetryField};

/// The `PerformanceStatistics` key for GPU memory in use by all processes.
pub(crate) const IN_USE_SYSTEM_MEMORY: &str = "In use system memory";

/// GPU memory in use: the sum of `"In use system memory"` over every accelerator entry's
/// `PerformanceStatistics` (given as `(key, value)` pairs). `None` when no entry has the key.
pub(crate) fn in_use_system_memory(entries: &[Vec<(String, i64)>]) -> Option<u64> {
    entries
        .iter()
        .flat_map(|stats| stats.iter())
        .filter(|(key, _)| key == IN_USE_SYSTEM_MEMORY)
        .filter_map(|(_, value)| u64::try_from(*value).ok())
        .fold(None, |sum: Option<u64>, v| {
            Some(sum.unwrap_or(0).saturating_add(v))
        })
}

/// The `PerformanceStatistics` key for the GPU's busy percentage.
pub(crate) const DEVICE_UTILIZATION: &str = "Device Utilization %";
/// The same statistic on older parts, without the `%`.
pub(crate) const DEVICE_UTILIZATION_OLD: &str = "Device Utilization";

/// Why telemetry beyond utilization is missing on macOS.
pub(crate) const NOT_EXPOSED: &str = "not exposed by macOS without private frameworks";

/// GPU utilization, percent: each accelerator entry's `"Device Utilization %"` (or, on older
/// parts, `"Device Utilization"`; keys match exactly, so `"Tiler Utilization %"` and
/// `"Renderer Utilization %"` are not taken), the busiest entry's when there are several.
/// Values outside 0–100 are dropped. `None` when no entry has the statistic.
pub(crate) fn device_utilization_percent(entries: &[Vec<(String, i64)>]) -> Option<f64> {
    entries
        .iter()
        .filter_map(|stats| {
            let find = |want: &str| {
                stats
                    .iter()
                    .find(|(key, value)| key == want && (0..=100).contains(value))
                    .map(|(_, value)| *value)
            };
            find(DEVICE_UTILIZATION).or_else(|| find(DEVICE_UTILIZATION_OLD))
        })
        .max()
        .and_then(|v| u32::try_from(v).ok())
        .map(f64::from)
}

/// The telemetry record of Metal device `index` from the accelerator statistics: utilization
/// when the registry has it, every other figure `None` with the reason.
pub(crate) fn telemetry_record(index: u32, entries: &[Vec<(String, i64)>]) -> DeviceTelemetry {
    let mut t = DeviceTelemetry::empty(index, GpuQuerySource::Metal);
    t.gpu_utilization_percent = device_utilization_percent(entries);
    if t.gpu_utilization_percent.is_none() {
        t.mark_unavailable(
            TelemetryField::GpuUtilizationPercent,
            "the IOAccelerator registry has no \"Device Utilization %\" statistic",
        );
    }
    for field in [
        TelemetryField::MemoryUtilizationPercent,
        TelemetryField::EncoderUtilizationPercent,
        TelemetryField::DecoderUtilizationPercent,
        TelemetryField::TemperatureCelsius,
        TelemetryField::PowerWatts,
        TelemetryField::PowerLimitWatts,
        TelemetryField::SmClockMhz,
        TelemetryField::MemoryClockMhz,
        TelemetryField::FanPercent,
        TelemetryField::PcieLinkGeneration,
        TelemetryField::PcieLinkWidth,
    ] {
        t.mark_unavailable(field, NOT_EXPOSED);
    }
    t
}

/// What Metal says about the default device; fixed for the life of the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MetalFacts {
    pub(crate) name: String,
    /// `recommendedMaxWorkingSetSize`, bytes.
    pub(crate) budget: u64,
    /// `hasUnifiedMemory`.
    pub(crate) unified: bool,
}

/// The vendor of a Metal device: Apple for unified-memory parts, else from its name (Intel
/// Macs' AMD and Intel GPUs).
pub(crate) fn vendor_of(facts: &MetalFacts) -> GpuVendor {
    let name = facts.name.to_ascii_lowercase();
    if facts.unified && name.starts_with("apple") {
        GpuVendor::Apple
    } else if name.contains("amd") || name.contains("radeon") {
        GpuVendor::Amd
    } else if name.contains("intel") {
        GpuVendor::Intel
    } else if name.contains("nvidia") {
        GpuVendor::Nvidia
    } else if facts.unified {
        GpuVendor::Apple
    } else {
        GpuVendor::Other
    }
}

/// The device record from Metal's facts, installed RAM and the accelerator statistics.
pub(crate) fn device_record(
    facts: &MetalFacts,
    memsize: Option<u64>,
    in_use: Option<u64>,
) -> GpuDeviceInfo {
    let mut info = GpuDeviceInfo::new(0, vendor_of(facts), GpuQuerySource::Metal);
    info.name = Some(facts.name.clone()).filter(|n| !n.is_empty());
    info.unified_memory = facts.unified;
    info.system_total_bytes = Some(facts.budget).filter(|&b| b > 0);
    info.mark_unavailable(
        DeviceField::ReservedBytes,
        "Metal reports no driver-reserved figure",
    );
    if facts.unified {
        info.total_bytes = memsize;
        if memsize.is_none() {
            info.mark_unavailable(DeviceField::TotalBytes, "sysctl hw.memsize failed");
        }
        info.used_bytes = in_use;
        info.system_used_bytes = in_use;
        if in_use.is_none() {
            let reason = "the IOAccelerator registry has no \"In use system memory\" statistic";
            info.mark_unavailable(DeviceField::UsedBytes, reason);
            info.mark_unavailable(DeviceField::SystemUsedBytes, reason);
        }
        info.mark_unavailable(
            DeviceField::FreeBytes,
            "unified memory: the GPU allocates from host RAM, so what is free is the host's available memory; the GPU's budget is system_total_bytes",
        );
    } else {
        let reason = "Metal does not report a discrete GPU's memory size or use";
        for field in [
            DeviceField::TotalBytes,
            DeviceField::FreeBytes,
            DeviceField::UsedBytes,
            DeviceField::SystemUsedBytes,
        ] {
            info.mark_unavailable(field, reason);
        }
    }
    if info.system_total_bytes.is_none() {
        info.mark_unavailable(
            DeviceField::SystemTotalBytes,
            "Metal reported no recommended working-set size",
        );
    }
    info
}

#[cfg(all(target_os = "macos", feature = "metal"))]
pub(crate) use sys::MetalBackend;

#[cfg(all(target_os = "macos", feature = "metal"))]
mod sys {
    use std::ffi::{c_char, c_void};
    use std::sync::OnceLock;

    use objc2_metal::{MTLCreateSystemDefaultDevice, MTLDevice};

    use super::{MetalFacts, device_record, in_use_system_memory, telemetry_record};
    use crate::error::{BackendAttempt, HypomnesisError, Result};
    use crate::gpu::{Backend, Devices, Listed, Pass};
    use crate::ram::MemoryDetail;
    use crate::ram::macos::{
        LedgerRead, graphics_footprint, list_pids, process_name, process_uid, read_process_memory,
    };
    use crate::snapshot::{
        GpuDeviceInfo, GpuProcessEntry, GpuProcessListing, GpuQuerySource, ProcessGpuInfo,
    };
    use crate::telemetry::DeviceTelemetry;

    // Without CoreGraphics linked, MTLCreateSystemDefaultDevice returns nil in a CLI tool.
    #[link(name = "CoreGraphics", kind = "framework")]
    unsafe extern "C" {}

    type CFTypeRef = *const c_void;
    type CFIndex = isize;
    type CFTypeID = usize;
    type IoObject = u32;

    const KCF_STRING_ENCODING_UTF8: u32 = 0x0800_0100;
    const KCF_NUMBER_SINT64_TYPE: CFIndex = 4;
    /// `kIOMainPortDefault` (`MACH_PORT_NULL`).
    const IO_MAIN_PORT_DEFAULT: u32 = 0;

    #[link(name = "IOKit", kind = "framework")]
    unsafe extern "C" {
        fn IOServiceMatching(name: *const c_char) -> *mut c_void;
        fn IOServiceGetMatchingServices(
            main_port: u32,
            matching: *mut c_void,
            existing: *mut IoObject,
        ) -> i32;
        fn IOIteratorNext(iterator: IoObject) -> IoObject;
        fn IORegistryEntryCreateCFProperty(
            entry: IoObject,
            key: CFTypeRef,
            allocator: CFTypeRef,
            options: u32,
        ) -> CFTypeRef;
        fn IOObjectRelease(object: IoObject) -> i32;
    }

    #[link(name = "CoreFoundation", kind = "framework")]
    unsafe extern "C" {
        fn CFStringCreateWithCString(
            alloc: CFTypeRef,
            c_str: *const c_char,
            encoding: u32,
        ) -> CFTypeRef;
        fn CFStringGetCString(
            string: CFTypeRef,
            buffer: *mut c_char,
            size: CFIndex,
            encoding: u32,
        ) -> u8;
        fn CFRelease(cf: CFTypeRef);
        fn CFGetTypeID(cf: CFTypeRef) -> CFTypeID;
        fn CFDictionaryGetTypeID() -> CFTypeID;
        fn CFNumberGetTypeID() -> CFTypeID;
        fn CFStringGetTypeID() -> CFTypeID;
        fn CFDictionaryGetCount(dict: CFTypeRef) -> CFIndex;
        fn CFDictionaryGetKeysAndValues(
            dict: CFTypeRef,
            keys: *mut CFTypeRef,
            values: *mut CFTypeRef,
        );
        fn CFNumberGetValue(number: CFTypeRef, the_type: CFIndex, value: *mut c_void) -> u8;
    }

    /// A Core Foundation object this code owns (from a Create call), released on drop.
    struct CfOwned(CFTypeRef);

    impl Drop for CfOwned {
        fn drop(&mut self) {
            // SAFETY: the object came from a Create call (+1 reference) and is released once.
            unsafe { CFRelease(self.0) };
        }
    }

    /// An IOKit object, released on drop.
    struct IoOwned(IoObject);

    impl Drop for IoOwned {
        fn drop(&mut self) {
            // SAFETY: the object came from IOServiceGetMatchingServices / IOIteratorNext and
            // is released once.
            unsafe { IOObjectRelease(self.0) };
        }
    }

    fn cf_string(text: &std::ffi::CStr) -> Option<CfOwned> {
        // SAFETY: `text` is NUL-terminated; a null allocator means the default one.
        let s = unsafe {
            CFStringCreateWithCString(std::ptr::null(), text.as_ptr(), KCF_STRING_ENCODING_UTF8)
        };
        (!s.is_null()).then_some(CfOwned(s))
    }

    fn type_of(cf: CFTypeRef) -> CFTypeID {
        // SAFETY: `cf` is a live CF object.
        unsafe { CFGetTypeID(cf) }
    }

    fn string_value(cf: CFTypeRef) -> Option<String> {
        // SAFETY: no preconditions.
        if type_of(cf) != unsafe { CFStringGetTypeID() } {
            return None;
        }
        let mut buf = [0 as c_char; 256];
        let size = CFIndex::try_from(buf.len()).ok()?;
        // SAFETY: `cf` is a CFString; `buf` has `size` writable bytes.
        let ok =
            unsafe { CFStringGetCString(cf, buf.as_mut_ptr(), size, KCF_STRING_ENCODING_UTF8) };
        (ok != 0).then(|| crate::ram::macos::c_field(&buf))
    }

    fn number_value(cf: CFTypeRef) -> Option<i64> {
        // SAFETY: no preconditions.
        if type_of(cf) != unsafe { CFNumberGetTypeID() } {
            return None;
        }
        let mut value = 0_i64;
        // SAFETY: `cf` is a CFNumber; `value` is a live i64, the type asked for.
        let ok = unsafe { CFNumberGetValue(cf, KCF_NUMBER_SINT64_TYPE, (&raw mut value).cast()) };
        (ok != 0).then_some(value)
    }

    /// A CFDictionary's string keys and number values.
    fn dictionary_numbers(dict: CFTypeRef) -> Vec<(String, i64)> {
        // SAFETY: no preconditions.
        if type_of(dict) != unsafe { CFDictionaryGetTypeID() } {
            return Vec::new();
        }
        // SAFETY: `dict` is a CFDictionary.
        let count = usize::try_from(unsafe { CFDictionaryGetCount(dict) }).unwrap_or(0);
        let mut keys: Vec<CFTypeRef> = vec![std::ptr::null(); count];
        let mut values: Vec<CFTypeRef> = vec![std::ptr::null(); count];
        // SAFETY: both buffers hold `count` pointers, the dictionary's size; the pointers are
        // borrowed from the dictionary, which outlives this function's use of them.
        unsafe { CFDictionaryGetKeysAndValues(dict, keys.as_mut_ptr(), values.as_mut_ptr()) };
        keys.iter()
            .zip(&values)
            .filter(|(k, v)| !k.is_null() && !v.is_null())
            .filter_map(|(k, v)| Some((string_value(*k)?, number_value(*v)?)))
            .collect()
    }

    /// Every IOAccelerator entry's `PerformanceStatistics`.
    fn accelerator_statistics() -> Vec<Vec<(String, i64)>> {
        let mut all = Vec::new();
        // SAFETY: the class name is NUL-terminated; the returned dictionary is consumed by
        // IOServiceGetMatchingServices below.
        let matching = unsafe { IOServiceMatching(c"IOAccelerator".as_ptr()) };
        if matching.is_null() {
            return all;
        }
        let mut iterator: IoObject = 0;
        // SAFETY: `matching` is a fresh matching dictionary (consumed by this call);
        // `iterator` is written on success.
        let kr = unsafe {
            IOServiceGetMatchingServices(IO_MAIN_PORT_DEFAULT, matching, &raw mut iterator)
        };
        if kr != 0 || iterator == 0 {
            return all;
        }
        let iterator = IoOwned(iterator);
        let Some(key) = cf_string(c"PerformanceStatistics") else {
            return all;
        };
        loop {
            // SAFETY: `iterator` is a live io_iterator_t.
            let entry = unsafe { IOIteratorNext(iterator.0) };
            if entry == 0 {
                break;
            }
            let entry = IoOwned(entry);
            // SAFETY: `entry` is a live registry entry and `key` a CFString; the result is a
            // +1 reference (released by CfOwned) or null.
            let stats =
                unsafe { IORegistryEntryCreateCFProperty(entry.0, key.0, std::ptr::null(), 0) };
            if stats.is_null() {
                continue;
            }
            let stats = CfOwned(stats);
            all.push(dictionary_numbers(stats.0));
        }
        all
    }

    fn metal_facts() -> Option<MetalFacts> {
        objc2::rc::autoreleasepool(|_| {
            let device = MTLCreateSystemDefaultDevice()?;
            let facts = MetalFacts {
                name: device.name().to_string(),
                budget: device.recommendedMaxWorkingSetSize(),
                unified: device.hasUnifiedMemory(),
            };
            raw!(
                "Metal {:?}: recommendedMaxWorkingSetSize={} hasUnifiedMemory={}",
                facts.name,
                facts.budget,
                facts.unified
            );
            Some(facts)
        })
    }

    /// The Metal backend: the default device, its processes through the ledger.
    #[derive(Debug, Default)]
    pub(crate) struct MetalBackend {
        facts: OnceLock<Option<MetalFacts>>,
    }

    impl MetalBackend {
        pub(crate) fn new() -> Self {
            Self::default()
        }

        fn facts(&self) -> Option<&MetalFacts> {
            self.facts.get_or_init(metal_facts).as_ref()
        }

        fn list(device: &GpuDeviceInfo) -> Result<GpuProcessListing> {
            let pids = list_pids().map_err(|e| HypomnesisError::NoGpuSource {
                attempts: vec![BackendAttempt::new(
                    GpuQuerySource::Metal,
                    format!("proc_listpids failed: {e}; run outside the sandbox"),
                )],
            })?;
            let own = std::process::id();
            // SAFETY: getuid has no preconditions.
            let me = unsafe { libc::getuid() };
            let mut rows = Vec::new();
            let mut readable_others = 0_usize;
            let mut denied = Vec::new();
            for pid in pids {
                match graphics_footprint(pid) {
                    LedgerRead::Bytes(bytes) => {
                        if pid != own {
                            readable_others += 1;
                        }
                        if bytes > 0 {
                            let mut row =
                                GpuProcessEntry::new(pid, device.index, GpuQuerySource::Metal);
                            row.used_bytes = Some(bytes);
                            row.name = process_name(pid);
                            rows.push(row);
                        }
                    }
                    LedgerRead::Denied => {
                        // Another user's process is not ours to read; our own user's refused
                        // (or unknown-owner) process is a blind spot worth reporting.
                        let owner = process_uid(pid);
                        if me == 0 || owner.is_none_or(|uid| uid == me) {
                            denied.push(pid);
                        }
                    }
                    LedgerRead::Gone | LedgerRead::Unavailable => {}
                }
            }
            if readable_others == 0 && !denied.is_empty() {
                return Err(HypomnesisError::PermissionDenied {
                    pid: denied.first().copied().unwrap_or(0),
                    detail: format!(
                        "the sandbox refused the memory ledger of {} processes and allowed none but this one; run outside the sandbox",
                        denied.len()
                    ),
                });
            }
            denied.sort_unstable();
            denied.dedup();
            Ok(GpuProcessListing {
                rows,
                unreadable_pids: denied,
                ..GpuProcessListing::default()
            })
        }
    }

    impl Backend for MetalBackend {
        fn source(&self) -> GpuQuerySource {
            GpuQuerySource::Metal
        }

        fn devices(
            &self,
            pass: &Pass,
            claimed: &[GpuDeviceInfo],
        ) -> std::result::Result<Devices, String> {
            let _ = (pass, claimed);
            let Some(facts) = self.facts() else {
                return Err(HypomnesisError::Io {
                    path: "MTLCreateSystemDefaultDevice".into(),
                    detail: "returned no device (no Metal GPU, or a session without GPU access)"
                        .to_owned(),
                    errno: None,
                }
                .backend_reason());
            };
            let memsize: Option<u64> = crate::host::macos::sysctl_value(c"hw.memsize");
            let in_use = in_use_system_memory(&accelerator_statistics());
            Ok(Devices::numbered(vec![device_record(
                facts, memsize, in_use,
            )]))
        }

        fn process_listing(
            &self,
            pass: &Pass,
            device: &Listed,
        ) -> Option<Result<GpuProcessListing>> {
            let _ = pass;
            (device.info.source == GpuQuerySource::Metal).then(|| Self::list(&device.info))
        }

        fn telemetry(&self, pass: &Pass, device: &Listed) -> Option<Result<DeviceTelemetry>> {
            let _ = pass;
            (device.info.source == GpuQuerySource::Metal).then(|| {
                Ok(telemetry_record(
                    device.info.index,
                    &accelerator_statistics(),
                ))
            })
        }

        fn own_process(
            &self,
            pass: &Pass,
            device: &Listed,
            pid: u32,
        ) -> Option<Result<ProcessGpuInfo>> {
            let _ = pass;
            let device = &device.info;
            if device.source != GpuQuerySource::Metal {
                return None;
            }
            let used = if pid == std::process::id() {
                read_process_memory(None, MemoryDetail::Fast)
                    .ok()
                    .and_then(|m| m.graphics_bytes)
            } else {
                match graphics_footprint(pid) {
                    LedgerRead::Bytes(b) => Some(b),
                    LedgerRead::Gone => Some(0),
                    LedgerRead::Denied | LedgerRead::Unavailable => None,
                }
            };
            Some(match used {
                Some(used_bytes) => Ok(ProcessGpuInfo::own(
                    used_bytes,
                    device.index,
                    GpuQuerySource::Metal,
                )),
                None => Err(HypomnesisError::NoGpuSource {
                    attempts: vec![BackendAttempt::new(
                        GpuQuerySource::Metal,
                        format!(
                            "the kernel ledger of pid {pid} could not be read (macOS before 10.13, or refused by the sandbox)"
                        ),
                    )],
                }),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn in_use_memory_is_the_exact_key_summed_over_accelerators() {
        // The PerformanceStatistics of a real M1 Pro (AGXAcceleratorG13X), as `ioreg -rc
        // IOAccelerator -d 1` printed it.
        let m1_pro = stats(&[
            ("In use system memory (driver)", 0),
            ("Alloc system memory", 14_511_046_656),
            ("Tiler Utilization %", 34),
            ("recoveryCount", 0),
            ("Renderer Utilization %", 34),
            ("Device Utilization %", 34),
            ("In use system memory", 7_688_503_296),
        ]);
        assert_eq!(
            in_use_system_memory(std::slice::from_ref(&m1_pro)),
            Some(7_688_503_296)
        );
        let second = stats(&[("In use system memory", 1 << 20)]);
        assert_eq!(
            in_use_system_memory(&[m1_pro, second]),
            Some(7_688_503_296 + (1 << 20))
        );
    }

    #[test]
    fn the_driver_statistic_alone_is_not_in_use_memory() {
        let only_driver = stats(&[
            ("In use system memory (driver)", 123),
            ("Alloc system memory", 9),
        ]);
        assert_eq!(in_use_system_memory(&[only_driver]), None);
        assert_eq!(in_use_system_memory(&[]), None);
    }

    #[test]
    fn utilization_is_the_device_statistic_not_tiler_or_renderer() {
        // The real M1 Pro capture (platforms.md D.2): Device Utilization % = 34.
        let m1_pro = stats(&[
            ("In use system memory (driver)", 0),
            ("Alloc system memory", 14_511_046_656),
            ("Tiler Utilization %", 34),
            ("recoveryCount", 0),
            ("Renderer Utilization %", 34),
            ("Device Utilization %", 34),
            ("In use system memory", 7_688_503_296),
        ]);
        assert_eq!(
            device_utilization_percent(std::slice::from_ref(&m1_pro)),
            Some(34.0)
        );
        let t = telemetry_record(0, &[m1_pro]);
        assert_eq!(t.gpu_utilization_percent, Some(34.0));
        assert_eq!(
            t.unavailable_reason(TelemetryField::GpuUtilizationPercent),
            None
        );
        assert_eq!(
            t.unavailable_reason(TelemetryField::PowerWatts),
            Some(NOT_EXPOSED)
        );
        assert_eq!(
            t.unavailable_reason(TelemetryField::TemperatureCelsius),
            Some(NOT_EXPOSED)
        );
        assert_eq!(t.source, GpuQuerySource::Metal);
    }

    #[test]
    fn older_parts_key_without_percent_and_other_keys_do_not_count() {
        let old = stats(&[("Device Utilization", 12), ("Tiler Utilization %", 90)]);
        assert_eq!(
            device_utilization_percent(std::slice::from_ref(&old)),
            Some(12.0)
        );
        // The busiest accelerator entry wins.
        let other = stats(&[("Device Utilization %", 40)]);
        assert_eq!(device_utilization_percent(&[old, other]), Some(40.0));
        let none = stats(&[
            ("Tiler Utilization %", 34),
            ("Renderer Utilization %", 34),
            ("Device Utilization %", 250),
        ]);
        assert_eq!(
            device_utilization_percent(std::slice::from_ref(&none)),
            None
        );
        assert_eq!(device_utilization_percent(&[]), None);
        let t = telemetry_record(1, &[none]);
        assert_eq!(t.gpu_utilization_percent, None);
        assert!(
            t.unavailable_reason(TelemetryField::GpuUtilizationPercent)
                .is_some_and(|r| r.contains("Device Utilization"))
        );
    }

    fn m1() -> MetalFacts {
        MetalFacts {
            name: "Apple M1 Pro".to_owned(),
            budget: 22_906_503_168,
            unified: true,
        }
    }

    #[test]
    fn apple_silicon_is_unified_with_the_budget_as_system_total() {
        let d = device_record(&m1(), Some(32 << 30), Some(7_688_503_296));
        assert!(d.unified_memory);
        assert_eq!(d.vendor, GpuVendor::Apple);
        assert_eq!(d.total_bytes, Some(32 << 30));
        assert_eq!(d.system_total_bytes, Some(22_906_503_168));
        assert_eq!(d.used_bytes, Some(7_688_503_296));
        assert_eq!(d.system_used_bytes, Some(7_688_503_296));
        assert_eq!(d.free_bytes, None);
        assert!(
            d.unavailable_reason(DeviceField::FreeBytes)
                .unwrap()
                .contains("host")
        );
        assert_eq!(d.source, GpuQuerySource::Metal);
    }

    #[test]
    fn missing_statistics_are_unknown_not_zero() {
        let d = device_record(&m1(), Some(16 << 30), None);
        assert_eq!(d.used_bytes, None);
        assert!(d.unavailable_reason(DeviceField::UsedBytes).is_some());
    }

    #[test]
    fn intel_mac_discrete_gpus_are_named_but_not_sized() {
        let facts = MetalFacts {
            name: "AMD Radeon Pro 5500M".to_owned(),
            budget: 4 << 30,
            unified: false,
        };
        let d = device_record(&facts, Some(32 << 30), Some(1));
        assert_eq!(d.vendor, GpuVendor::Amd);
        assert!(!d.unified_memory);
        assert_eq!(d.total_bytes, None);
        assert_eq!(d.used_bytes, None);
        assert_eq!(d.system_total_bytes, Some(4 << 30));
    }
}

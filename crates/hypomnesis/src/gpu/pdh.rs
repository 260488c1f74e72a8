//! Windows GPU memory per process and per adapter, from performance counters (PDH).
//!
//! Under WDDM the NVIDIA driver gives NVML no per-process figures (every row is the
//! `u64::MAX` "not available" sentinel), and DXGI only tells a process about itself. The
//! graphics kernel does count every process's GPU memory, and publishes it — without
//! administrator rights — as the performance counters Task Manager reads:
//!
//! | counter | instance name | reported as |
//! |---|---|---|
//! | `\GPU Process Memory(*)\Dedicated Usage` | `pid_1234_luid_0x00000000_0x0000ABCD_phys_0` | a process's `used_bytes` |
//! | `\GPU Process Memory(*)\Shared Usage` | same | a process's `system_bytes` |
//! | `\GPU Adapter Memory(*)\Dedicated Usage` | `luid_0x00000000_0x0000ABCD_phys_0` | a device's `used_bytes` |
//! | `\GPU Adapter Memory(*)\Shared Usage` | same | a device's `system_used_bytes` |
//!
//! The LUID is printed high part first and matches DXGI's `AdapterLuid`; a process with
//! memory on several physical parts (`phys_N`) of one adapter is summed. Counters are added
//! by their English names (`PdhAddEnglishCounterW`), so a localised Windows works too, and
//! one collection is enough because these are gauges, not rates.
//!
//! When a counter cannot be added — `PDH_CSTATUS_NO_OBJECT` on Windows before 10 1709, and
//! always under Wine — the query is dropped right there: nothing else of PDH is called
//! (Wine's `PdhGetFormattedCounterArrayW` is an unimplemented stub that aborts the process),
//! and the caller falls back. Query handles are closed by RAII.
//!
//! Utilization is `\GPU Engine(*)\Utilization Percentage`, a rate: its query is collected
//! twice, [`ENGINE_SAMPLE_INTERVAL`] (100 ms) apart, before the array is read, and is
//! aggregated per adapter by [`engine_utilization`].
#![cfg_attr(not(all(windows, feature = "pdh")), allow(dead_code))]

use std::collections::BTreeMap;
use std::fmt;

/// A Windows adapter LUID (`LUID { LowPart, HighPart }`), as the PDH instance names print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Luid {
    /// `HighPart`, as its bits.
    pub(crate) high: u32,
    /// `LowPart`.
    pub(crate) low: u32,
}

impl Luid {
    /// From a `LUID`'s parts.
    pub(crate) const fn from_parts(low: u32, high: i32) -> Self {
        Self {
            high: high.cast_unsigned(),
            low,
        }
    }

    /// `HighPart` as the signed value a `LUID` holds.
    pub(crate) const fn high_signed(self) -> i32 {
        self.high.cast_signed()
    }
}

impl fmt::Display for Luid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "luid_0x{:08X}_0x{:08X}", self.high, self.low)
    }
}

/// One `\GPU Process Memory(*)` instance: a process's memory on one physical part of one
/// adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcessInstance {
    pub(crate) pid: u32,
    pub(crate) luid: Luid,
    pub(crate) phys: u32,
}

/// `0x0000ABCD` → `0xABCD`: `0x` (any case) and 1 to 8 hex digits.
fn parse_hex32(text: &str) -> Option<u32> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// `luid_0xH_0xL_phys_S` (the whole text, nothing after it).
fn parse_luid_phys(text: &str) -> Option<(Luid, u32)> {
    let rest = text.strip_prefix("luid_")?;
    let mut parts = rest.split('_');
    let high = parse_hex32(parts.next()?)?;
    let low = parse_hex32(parts.next()?)?;
    if parts.next()? != "phys" {
        return None;
    }
    let phys_text = parts.next()?;
    if parts.next().is_some()
        || phys_text.is_empty()
        || !phys_text.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let phys = phys_text.parse().ok()?;
    Some((Luid { high, low }, phys))
}

/// Parses a `\GPU Process Memory(*)` instance name, `pid_1234_luid_0x00000000_0x0000ABCD_phys_0`.
/// `None` for anything else (engine instances, which end in `_eng_N_engtype_X`, included).
pub(crate) fn parse_process_instance(name: &str) -> Option<ProcessInstance> {
    let rest = name.strip_prefix("pid_")?;
    let (pid_text, rest) = rest.split_once('_')?;
    if pid_text.is_empty() || !pid_text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let pid = pid_text.parse().ok()?;
    let (luid, phys) = parse_luid_phys(rest)?;
    Some(ProcessInstance { pid, luid, phys })
}

/// Parses a `\GPU Adapter Memory(*)` instance name, `luid_0x00000000_0x0000ABCD_phys_0`.
pub(crate) fn parse_adapter_instance(name: &str) -> Option<(Luid, u32)> {
    parse_luid_phys(name)
}

/// One `\GPU Engine(*)` instance: a process's use of one engine of one physical part of one
/// adapter, `pid_1234_luid_0x00000000_0x0000ABCD_phys_0_eng_3_engtype_VideoDecode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EngineInstance {
    pub(crate) pid: u32,
    pub(crate) luid: Luid,
    pub(crate) phys: u32,
    /// The engine's number on its part.
    pub(crate) engine: u32,
    /// The engine type as the driver names it (`3D`, `Copy`, `VideoDecode`, `Compute_0`,
    /// `High Priority 3D`): everything after `_engtype_`, spaces and underscores included.
    pub(crate) engine_type: String,
}

/// Parses a `\GPU Engine(*)` instance name; `None` for anything else.
pub(crate) fn parse_engine_instance(name: &str) -> Option<EngineInstance> {
    let (head, engine_type) = name.split_once("_engtype_")?;
    let (head, engine_text) = head.rsplit_once("_eng_")?;
    if engine_type.is_empty()
        || engine_text.is_empty()
        || !engine_text.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let engine = engine_text.parse().ok()?;
    let process = parse_process_instance(head)?;
    Some(EngineInstance {
        pid: process.pid,
        luid: process.luid,
        phys: process.phys,
        engine,
        engine_type: engine_type.to_owned(),
    })
}

/// One adapter's engine utilization, percent, computed the way Task Manager does: the
/// `Utilization Percentage` of every process on every engine of one type is summed (capped
/// at 100), and the adapter's figure is the busiest type's.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct EngineUtilization {
    /// Busiest engine type, percent; `None` when the adapter has no engine instance.
    pub(crate) busiest_percent: Option<f64>,
    /// The `VideoEncode` type's, when present.
    pub(crate) encode_percent: Option<f64>,
    /// The `VideoDecode` type's, when present.
    pub(crate) decode_percent: Option<f64>,
}

/// Aggregates `(instance, percent)` pairs of `\GPU Engine(*)\Utilization Percentage` for
/// adapter `luid`. Values that are not finite or are negative are dropped.
pub(crate) fn engine_utilization(items: &[(String, f64)], luid: Luid) -> EngineUtilization {
    let mut per_type: BTreeMap<String, f64> = BTreeMap::new();
    for (name, value) in items {
        if !value.is_finite() || *value < 0.0 {
            continue;
        }
        let Some(instance) = parse_engine_instance(name) else {
            continue;
        };
        if instance.luid != luid {
            continue;
        }
        *per_type.entry(instance.engine_type).or_insert(0.0) += value;
    }
    let capped = |v: f64| v.min(100.0);
    let find = |want: &str| {
        per_type
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(want))
            .map(|(_, v)| capped(*v))
    };
    EngineUtilization {
        busiest_percent: per_type
            .values()
            .map(|v| capped(*v))
            .fold(None, |acc: Option<f64>, v| {
                Some(acc.map_or(v, |a| a.max(v)))
            }),
        encode_percent: find("VideoEncode"),
        decode_percent: find("VideoDecode"),
    }
}

/// Exercises the instance-name parsers and the aggregation on arbitrary text (fuzz target,
/// property tests).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn exercise_all(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = parse_process_instance(&text);
    let _ = parse_adapter_instance(&text);
    if let Some(e) = parse_engine_instance(&text) {
        let _ = engine_utilization(&[(text.clone().into_owned(), 50.0)], e.luid);
    }
}

/// A counter's value as bytes; PDH reports these gauges as non-negative 64-bit integers, so a
/// negative one is garbage and is dropped.
fn value_bytes(value: i64) -> Option<u64> {
    u64::try_from(value).ok()
}

/// Per-process sums of a `\GPU Process Memory(*)` counter's `(instance, value)` pairs on the
/// adapter `luid`, over its physical parts.
pub(crate) fn sum_by_pid(items: &[(String, i64)], luid: Luid) -> BTreeMap<u32, u64> {
    let mut sums = BTreeMap::new();
    for (name, value) in items {
        if let Some(instance) = parse_process_instance(name)
            && instance.luid == luid
            && let Some(bytes) = value_bytes(*value)
        {
            let sum: &mut u64 = sums.entry(instance.pid).or_default();
            *sum = sum.saturating_add(bytes);
        }
    }
    sums
}

/// The sum of a `\GPU Adapter Memory(*)` counter over the physical parts of adapter `luid`;
/// `None` when no instance belongs to it.
pub(crate) fn sum_for_adapter(items: &[(String, i64)], luid: Luid) -> Option<u64> {
    items
        .iter()
        .filter(|(name, _)| parse_adapter_instance(name).is_some_and(|(l, _)| l == luid))
        .filter_map(|(_, value)| value_bytes(*value))
        .fold(None, |sum: Option<u64>, v| {
            Some(sum.unwrap_or(0).saturating_add(v))
        })
}

/// One process's GPU memory on one adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcessUsage {
    /// `Dedicated Usage`, bytes.
    pub(crate) dedicated: u64,
    /// `Shared Usage`, bytes; `None` when that counter could not be read.
    pub(crate) shared: Option<u64>,
}

/// Joins the per-pid `Dedicated Usage` and `Shared Usage` sums. A process appearing in one
/// only has 0 in the other (PDH lists an instance per process holding a context, with both
/// counters); when the shared counter was unreadable, `shared` is `None`.
pub(crate) fn join_usage(
    dedicated: &BTreeMap<u32, u64>,
    shared: Option<&BTreeMap<u32, u64>>,
) -> BTreeMap<u32, ProcessUsage> {
    let mut pids: Vec<u32> = dedicated.keys().copied().collect();
    if let Some(shared) = shared {
        pids.extend(shared.keys().copied());
    }
    pids.sort_unstable();
    pids.dedup();
    pids.into_iter()
        .map(|pid| {
            let usage = ProcessUsage {
                dedicated: dedicated.get(&pid).copied().unwrap_or(0),
                shared: shared.map(|s| s.get(&pid).copied().unwrap_or(0)),
            };
            (pid, usage)
        })
        .collect()
}

/// `PDH_CSTATUS_NO_OBJECT`: the counter's object does not exist on this system.
pub(crate) const PDH_CSTATUS_NO_OBJECT: u32 = 0xC000_0BB9;
/// `PDH_CSTATUS_NO_COUNTER`.
pub(crate) const PDH_CSTATUS_NO_COUNTER: u32 = 0xC000_0BBA;
/// `PDH_MORE_DATA`.
pub(crate) const PDH_MORE_DATA: u32 = 0x8000_07D2;

/// The name of a PDH status code, and what it means for the user.
pub(crate) const fn code_text(code: u32) -> &'static str {
    match code {
        PDH_CSTATUS_NO_OBJECT => {
            "PDH_CSTATUS_NO_OBJECT: this system has no GPU performance counters (Windows before 10 1709, or Wine)"
        }
        PDH_CSTATUS_NO_COUNTER => "PDH_CSTATUS_NO_COUNTER: the counter does not exist",
        0xC000_0BC0 => "PDH_CSTATUS_BAD_COUNTERNAME",
        0x8000_07D5 => "PDH_NO_DATA",
        0xC000_0BC6 => "PDH_INVALID_DATA",
        0xC000_0BBD => "PDH_INVALID_ARGUMENT",
        0xC000_0BBB => "PDH_MEMORY_ALLOCATION_FAILURE",
        PDH_MORE_DATA => "PDH_MORE_DATA: the instance list kept growing",
        _ => "unknown PDH status",
    }
}

/// A PDH call that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PdhError {
    /// The PDH function.
    pub(crate) call: &'static str,
    /// The counter path, for calls about one counter.
    pub(crate) path: Option<String>,
    /// The status it returned.
    pub(crate) code: u32,
}

impl fmt::Display for PdhError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{}({path})", self.call)?,
            None => write!(f, "{}", self.call)?,
        }
        write!(
            f,
            " failed with 0x{:08X} ({})",
            self.code,
            code_text(self.code)
        )
    }
}

/// The counter paths of one object's `Dedicated Usage` and `Shared Usage`.
pub(crate) fn usage_paths(object: &str) -> (String, String) {
    (
        format!("\\{object}(*)\\Dedicated Usage"),
        format!("\\{object}(*)\\Shared Usage"),
    )
}

/// `\GPU Process Memory`.
pub(crate) const PROCESS_OBJECT: &str = "GPU Process Memory";
/// `\GPU Adapter Memory`.
pub(crate) const ADAPTER_OBJECT: &str = "GPU Adapter Memory";

/// One reading of an object's `Dedicated Usage` and `Shared Usage` for every instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UsageReading {
    pub(crate) dedicated: Vec<(String, i64)>,
    /// `None` when the `Shared Usage` counter could not be added or read.
    pub(crate) shared: Option<Vec<(String, i64)>>,
}

/// `\GPU Engine(*)\Utilization Percentage`, a rate per process, engine and adapter part.
pub(crate) const ENGINE_UTILIZATION_PATH: &str = "\\GPU Engine(*)\\Utilization Percentage";

/// The time between the two collections a utilization reading takes. Short, so a telemetry
/// call stays cheap; the figure is the engines' busy share over this window.
pub(crate) const ENGINE_SAMPLE_INTERVAL: std::time::Duration =
    std::time::Duration::from_millis(100);

#[cfg(all(windows, feature = "pdh"))]
pub(crate) use sys::{UsageCounters, read_engine_utilization, read_usage};

#[cfg(all(windows, feature = "pdh"))]
mod sys {
    use std::mem::size_of;

    use windows_sys::Win32::System::Performance::{
        PDH_CSTATUS_NEW_DATA, PDH_CSTATUS_VALID_DATA, PDH_FMT, PDH_FMT_COUNTERVALUE,
        PDH_FMT_COUNTERVALUE_ITEM_W, PDH_FMT_DOUBLE, PDH_FMT_LARGE, PDH_HCOUNTER, PDH_HQUERY,
        PdhAddEnglishCounterW, PdhCloseQuery, PdhCollectQueryData, PdhGetFormattedCounterArrayW,
        PdhOpenQueryW,
    };

    use super::{ENGINE_UTILIZATION_PATH, PDH_MORE_DATA, PdhError, UsageReading, usage_paths};

    /// How many times the array is re-read while its instance list keeps growing.
    const ARRAY_ATTEMPTS: usize = 4;

    fn wide(text: &str) -> Vec<u16> {
        text.encode_utf16().chain(std::iter::once(0)).collect()
    }

    /// An open PDH query, closed on drop (which also frees its counters).
    struct Query(PDH_HQUERY);

    impl Drop for Query {
        fn drop(&mut self) {
            // SAFETY: the query was opened by PdhOpenQueryW and is closed exactly once.
            unsafe { PdhCloseQuery(self.0) };
        }
    }

    impl Query {
        fn open() -> Result<Self, PdhError> {
            let mut handle: PDH_HQUERY = std::ptr::null_mut();
            // SAFETY: a null data source means the live counters; `handle` is written on
            // success.
            let rc = unsafe { PdhOpenQueryW(std::ptr::null(), 0, &raw mut handle) };
            if rc != 0 {
                return Err(PdhError {
                    call: "PdhOpenQueryW",
                    path: None,
                    code: rc,
                });
            }
            Ok(Self(handle))
        }

        /// Adds a counter by its English path. The handle is valid while the query is.
        fn add(&self, path: &str) -> Result<PDH_HCOUNTER, PdhError> {
            let path_w = wide(path);
            let mut counter: PDH_HCOUNTER = std::ptr::null_mut();
            // SAFETY: `self.0` is an open query, `path_w` a NUL-terminated UTF-16 string, and
            // `counter` is written on success.
            let rc = unsafe { PdhAddEnglishCounterW(self.0, path_w.as_ptr(), 0, &raw mut counter) };
            if rc != 0 {
                return Err(PdhError {
                    call: "PdhAddEnglishCounterW",
                    path: Some(path.to_owned()),
                    code: rc,
                });
            }
            Ok(counter)
        }

        fn collect(&self) -> Result<(), PdhError> {
            // SAFETY: `self.0` is an open query.
            let rc = unsafe { PdhCollectQueryData(self.0) };
            if rc != 0 {
                return Err(PdhError {
                    call: "PdhCollectQueryData",
                    path: None,
                    code: rc,
                });
            }
            Ok(())
        }
    }

    /// A value formatted with `PDH_FMT_LARGE`.
    fn large_value(value: &PDH_FMT_COUNTERVALUE) -> i64 {
        // SAFETY: the array was read with PDH_FMT_LARGE, which fills the union's `largeValue`.
        unsafe { value.Anonymous.largeValue }
    }

    /// A value formatted with `PDH_FMT_DOUBLE`.
    fn double_value(value: &PDH_FMT_COUNTERVALUE) -> f64 {
        // SAFETY: the array was read with PDH_FMT_DOUBLE, which fills the union's
        // `doubleValue`.
        unsafe { value.Anonymous.doubleValue }
    }

    /// Every instance's value of `counter` (which belongs to a live query), as `(name, value)`,
    /// as 64-bit integers.
    fn read_array(counter: PDH_HCOUNTER, path: &str) -> Result<Vec<(String, i64)>, PdhError> {
        read_array_as(counter, path, PDH_FMT_LARGE, large_value)
    }

    /// Every instance's value of `counter`, formatted as `format` and taken out of the union
    /// by `value`, which must read the member `format` fills.
    fn read_array_as<T: std::fmt::Debug>(
        counter: PDH_HCOUNTER,
        path: &str,
        format: PDH_FMT,
        value: fn(&PDH_FMT_COUNTERVALUE) -> T,
    ) -> Result<Vec<(String, T)>, PdhError> {
        let fail = |code| PdhError {
            call: "PdhGetFormattedCounterArrayW",
            path: Some(path.to_owned()),
            code,
        };
        let mut buffer: Vec<u64> = Vec::new();
        for _ in 0..ARRAY_ATTEMPTS {
            let mut bytes = u32::try_from(buffer.len() * size_of::<u64>()).unwrap_or(u32::MAX);
            let mut count = 0_u32;
            let items_ptr = if buffer.is_empty() {
                std::ptr::null_mut()
            } else {
                buffer.as_mut_ptr().cast::<PDH_FMT_COUNTERVALUE_ITEM_W>()
            };
            // SAFETY: `counter` belongs to an open, collected query; `items_ptr` is null (a
            // size query) or points to `bytes` writable, 8-aligned bytes.
            let rc = unsafe {
                PdhGetFormattedCounterArrayW(
                    counter,
                    format,
                    &raw mut bytes,
                    &raw mut count,
                    items_ptr,
                )
            };
            match rc {
                PDH_MORE_DATA => {
                    let words = usize::try_from(bytes)
                        .unwrap_or(0)
                        .div_ceil(size_of::<u64>());
                    buffer = vec![0; words.max(1)];
                }
                0 if buffer.is_empty() => return Ok(Vec::new()),
                0 => {
                    let items = parse_items(&buffer, count, value);
                    raw!("PDH {path}: {items:?}");
                    return Ok(items);
                }
                code => return Err(fail(code)),
            }
        }
        Err(fail(PDH_MORE_DATA))
    }

    /// The `count` items at the start of `buffer`, whose names point into `buffer`.
    fn parse_items<T>(
        buffer: &[u64],
        count: u32,
        value: fn(&PDH_FMT_COUNTERVALUE) -> T,
    ) -> Vec<(String, T)> {
        let item_size = size_of::<PDH_FMT_COUNTERVALUE_ITEM_W>();
        let byte_len = std::mem::size_of_val(buffer);
        let count = usize::try_from(count)
            .unwrap_or(0)
            .min(byte_len / item_size);
        let base = buffer.as_ptr().cast::<u8>();
        let base_addr = base as usize;
        let units = byte_len / 2;
        // SAFETY: `buffer` is `byte_len` initialised bytes, viewed as u16s (alignment 8 ≥ 2).
        let as_u16: &[u16] = unsafe { std::slice::from_raw_parts(base.cast::<u16>(), units) };
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            // SAFETY: item `i` lies inside `buffer` (checked against `byte_len` above) and the
            // buffer is 8-aligned, as the item struct requires.
            let item = unsafe {
                base.add(i * item_size)
                    .cast::<PDH_FMT_COUNTERVALUE_ITEM_W>()
                    .read()
            };
            let status = item.FmtValue.CStatus;
            if status != PDH_CSTATUS_VALID_DATA && status != PDH_CSTATUS_NEW_DATA {
                continue;
            }
            // The name must point inside the buffer PDH filled; anything else is skipped
            // rather than read.
            let name_addr = item.szName as usize;
            let Some(start) = name_addr
                .checked_sub(base_addr)
                .filter(|off| off % 2 == 0)
                .map(|off| off / 2)
                .filter(|&start| start < units)
            else {
                continue;
            };
            let tail = as_u16.get(start..).unwrap_or(&[]);
            let Some(end) = tail.iter().position(|&c| c == 0) else {
                continue;
            };
            let name = String::from_utf16_lossy(tail.get(..end).unwrap_or(&[]));
            out.push((name, value(&item.FmtValue)));
        }
        out
    }

    /// A long-lived query on one object's `Dedicated Usage` and `Shared Usage` counters
    /// (for repeated sampling, as the spill tracker does). Not `Send`: PDH handles belong
    /// to the thread's query.
    pub(crate) struct UsageCounters {
        dedicated: PDH_HCOUNTER,
        dedicated_path: String,
        shared: Option<(PDH_HCOUNTER, String)>,
        /// Declared last: the counters above are only valid while it is open.
        query: Query,
    }

    impl std::fmt::Debug for UsageCounters {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("UsageCounters")
                .field("dedicated", &self.dedicated_path)
                .field("shared", &self.shared.as_ref().map(|(_, p)| p))
                .finish_non_exhaustive()
        }
    }

    impl UsageCounters {
        /// Opens a query and adds `\<object>(*)\Dedicated Usage` (required) and `Shared
        /// Usage` (optional). When the first cannot be added nothing else is called.
        pub(crate) fn open(object: &str) -> Result<Self, PdhError> {
            let (dedicated_path, shared_path) = usage_paths(object);
            let query = Query::open()?;
            let dedicated = query.add(&dedicated_path)?;
            let shared = query.add(&shared_path).ok().map(|c| (c, shared_path));
            Ok(Self {
                dedicated,
                dedicated_path,
                shared,
                query,
            })
        }

        /// One collection and the values of every instance.
        pub(crate) fn sample(&self) -> Result<UsageReading, PdhError> {
            self.query.collect()?;
            let dedicated = read_array(self.dedicated, &self.dedicated_path)?;
            let shared = self
                .shared
                .as_ref()
                .and_then(|(counter, path)| read_array(*counter, path).ok());
            Ok(UsageReading { dedicated, shared })
        }
    }

    /// Every `\GPU Engine(*)\Utilization Percentage` instance's value, percent, on a query
    /// opened and closed for this call. The counter is a rate, so it is collected twice,
    /// [`ENGINE_SAMPLE_INTERVAL`] apart (the call blocks that long). When the counter cannot be
    /// added (`PDH_CSTATUS_NO_OBJECT` before Windows 10 1709 and under Wine) the error is
    /// returned at once and neither collection nor any array read is attempted.
    pub(crate) fn read_engine_utilization() -> Result<Vec<(String, f64)>, PdhError> {
        let query = Query::open()?;
        let counter = query.add(ENGINE_UTILIZATION_PATH)?;
        query.collect()?;
        std::thread::sleep(super::ENGINE_SAMPLE_INTERVAL);
        query.collect()?;
        read_array_as(
            counter,
            ENGINE_UTILIZATION_PATH,
            PDH_FMT_DOUBLE,
            double_value,
        )
    }

    /// One reading of `object`'s usage counters, on a query opened and closed for it.
    pub(crate) fn read_usage(object: &str) -> Result<UsageReading, PdhError> {
        UsageCounters::open(object)?.sample()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Instance names in the form Windows 10/11 prints them (`typeperf -qx "GPU Process
    // Memory"`); the values are made up for the tests, not captured from hardware.
    const LUID: Luid = Luid {
        high: 0,
        low: 0x0001_29B4,
    };

    #[test]
    fn process_instance_names_parse_into_pid_luid_and_part() {
        assert_eq!(
            parse_process_instance("pid_1234_luid_0x00000000_0x000129B4_phys_0"),
            Some(ProcessInstance {
                pid: 1234,
                luid: LUID,
                phys: 0
            })
        );
        assert_eq!(
            parse_process_instance("pid_7_luid_0xFFFFFFFF_0x0000abcd_phys_12"),
            Some(ProcessInstance {
                pid: 7,
                luid: Luid {
                    high: 0xFFFF_FFFF,
                    low: 0xABCD
                },
                phys: 12
            })
        );
    }

    #[test]
    fn other_instance_names_are_rejected() {
        for name in [
            "pid_1234_luid_0x00000000_0x000129B4_phys_0_eng_3_engtype_Compute",
            "luid_0x00000000_0x000129B4_phys_0",
            "pid__luid_0x00000000_0x000129B4_phys_0",
            "pid_12a_luid_0x00000000_0x000129B4_phys_0",
            "pid_1234_luid_00000000_0x000129B4_phys_0",
            "pid_1234_luid_0x00000000_0x000129B4_phys_",
            "pid_1234_luid_0x100000000_0x000129B4_phys_0",
            "pid_1234_luid_0x00000000_0x000129B4",
            "_Total",
            "",
        ] {
            assert_eq!(parse_process_instance(name), None, "{name}");
        }
    }

    #[test]
    fn adapter_instance_names_parse() {
        assert_eq!(
            parse_adapter_instance("luid_0x00000000_0x000129B4_phys_0"),
            Some((LUID, 0))
        );
        assert_eq!(
            parse_adapter_instance("pid_1_luid_0x00000000_0x000129B4_phys_0"),
            None
        );
    }

    #[test]
    fn the_luid_prints_high_part_first_as_in_instance_names() {
        let luid = Luid::from_parts(0x0000_ABCD, -1);
        assert_eq!(luid.to_string(), "luid_0xFFFFFFFF_0x0000ABCD");
        assert_eq!(luid.high_signed(), -1);
        assert_eq!(LUID.to_string(), "luid_0x00000000_0x000129B4");
    }

    fn items(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
        pairs.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect()
    }

    #[test]
    fn process_memory_is_summed_per_pid_over_parts_on_the_matching_adapter_only() {
        let dedicated = items(&[
            ("pid_4242_luid_0x00000000_0x000129B4_phys_0", 6 << 30),
            ("pid_4242_luid_0x00000000_0x000129B4_phys_1", 1 << 30),
            ("pid_4242_luid_0x00000000_0x0000F00D_phys_0", 5 << 30), // another adapter
            ("pid_42_luid_0x00000000_0x000129B4_phys_0", 300 << 20),
            ("pid_9_luid_0x00000000_0x000129B4_phys_0", -1), // garbage, dropped
            ("_Total", 99),
        ]);
        let sums = sum_by_pid(&dedicated, LUID);
        assert_eq!(sums.get(&4242), Some(&(7 << 30)));
        assert_eq!(sums.get(&42), Some(&(300 << 20)));
        assert_eq!(
            sums.get(&424),
            None,
            "pid_42_ must not match pid_4242_ or vice versa"
        );
        assert_eq!(sums.len(), 2);
    }

    #[test]
    fn dedicated_and_shared_join_per_pid() {
        let dedicated: BTreeMap<u32, u64> = [(10, 100), (20, 200)].into();
        let shared: BTreeMap<u32, u64> = [(20, 5), (30, 7)].into();
        let joined = join_usage(&dedicated, Some(&shared));
        assert_eq!(
            joined.get(&10),
            Some(&ProcessUsage {
                dedicated: 100,
                shared: Some(0)
            })
        );
        assert_eq!(
            joined.get(&30),
            Some(&ProcessUsage {
                dedicated: 0,
                shared: Some(7)
            })
        );
        let no_shared = join_usage(&dedicated, None);
        assert_eq!(no_shared.get(&20).and_then(|u| u.shared), None);
        assert_eq!(no_shared.len(), 2);
    }

    #[test]
    fn adapter_memory_sums_parts_and_is_none_for_an_unknown_adapter() {
        let reading = items(&[
            ("luid_0x00000000_0x000129B4_phys_0", 14 << 30),
            ("luid_0x00000000_0x000129B4_phys_1", 1 << 30),
            ("luid_0x00000000_0x0000F00D_phys_0", 3 << 30),
        ]);
        assert_eq!(sum_for_adapter(&reading, LUID), Some(15 << 30));
        assert_eq!(
            sum_for_adapter(&reading, Luid { high: 0, low: 1 }),
            None,
            "no instance: unknown, not 0"
        );
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn instance_parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
                exercise_all(&data);
            }

            #[test]
            fn engine_names_round_trip_and_figures_stay_in_range(
                pid in any::<u32>(), high in any::<u32>(), low in any::<u32>(), phys in 0_u32..4,
                eng in 0_u32..64, ty in "[A-Za-z0-9 _]{1,24}", values in proptest::collection::vec(-10.0_f64..150.0, 0..6),
            ) {
                let name = format!("pid_{pid}_luid_0x{high:08X}_0x{low:08X}_phys_{phys}_eng_{eng}_engtype_{ty}");
                let e = parse_engine_instance(&name).unwrap();
                prop_assert_eq!((e.pid, e.luid, e.phys, e.engine), (pid, Luid { high, low }, phys, eng));
                prop_assert_eq!(e.engine_type, ty);
                let items: Vec<(String, f64)> = values.iter().map(|v| (name.clone(), *v)).collect();
                if let Some(p) = engine_utilization(&items, Luid { high, low }).busiest_percent {
                    prop_assert!((0.0..=100.0).contains(&p));
                }
            }
        }
    }

    #[test]
    fn engine_instance_names_parse_with_any_engine_type() {
        let e = parse_engine_instance(
            "pid_4321_luid_0x00000000_0x0000D1A5_phys_0_eng_3_engtype_VideoDecode",
        )
        .unwrap();
        assert_eq!(e.pid, 4321);
        assert_eq!(
            e.luid,
            Luid {
                high: 0,
                low: 0xD1A5
            }
        );
        assert_eq!((e.phys, e.engine), (0, 3));
        assert_eq!(e.engine_type, "VideoDecode");
        let e = parse_engine_instance(
            "pid_8_luid_0x00000001_0x0000D1A5_phys_1_eng_12_engtype_High Priority Compute_1",
        )
        .unwrap();
        assert_eq!(e.engine_type, "High Priority Compute_1");
        assert_eq!(e.luid.high, 1);
        for bad in [
            "pid_4321_luid_0x00000000_0x0000D1A5_phys_0",
            "pid_4321_luid_0x00000000_0x0000D1A5_phys_0_eng_x_engtype_3D",
            "pid_4321_luid_0x00000000_0x0000D1A5_phys_0_eng_3_engtype_",
            "luid_0x00000000_0x0000D1A5_phys_0_eng_3_engtype_3D",
            "_Total",
        ] {
            assert_eq!(parse_engine_instance(bad), None, "{bad}");
        }
    }

    #[test]
    fn engine_utilization_sums_per_type_and_takes_the_busiest_type() {
        let luid = Luid {
            high: 0,
            low: 0xD1A5,
        };
        let items: Vec<(String, f64)> = [
            // 3D: 30 + 25 = 55 %.
            (
                "pid_10_luid_0x00000000_0x0000D1A5_phys_0_eng_0_engtype_3D",
                30.0,
            ),
            (
                "pid_11_luid_0x00000000_0x0000D1A5_phys_0_eng_0_engtype_3D",
                25.0,
            ),
            // Copy: 10 %.
            (
                "pid_10_luid_0x00000000_0x0000D1A5_phys_0_eng_1_engtype_Copy",
                10.0,
            ),
            // VideoDecode: 20 + 12.5 = 32.5 %.
            (
                "pid_12_luid_0x00000000_0x0000D1A5_phys_0_eng_3_engtype_VideoDecode",
                20.0,
            ),
            (
                "pid_13_luid_0x00000000_0x0000D1A5_phys_0_eng_3_engtype_VideoDecode",
                12.5,
            ),
            // Another adapter: ignored even though busier.
            (
                "pid_10_luid_0x00000000_0x0000BEEF_phys_0_eng_0_engtype_3D",
                99.0,
            ),
            // Garbage values dropped.
            (
                "pid_14_luid_0x00000000_0x0000D1A5_phys_0_eng_0_engtype_3D",
                f64::NAN,
            ),
            (
                "pid_15_luid_0x00000000_0x0000D1A5_phys_0_eng_0_engtype_3D",
                -3.0,
            ),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v))
        .collect();
        let u = engine_utilization(&items, luid);
        assert_eq!(u.busiest_percent, Some(55.0));
        assert_eq!(u.decode_percent, Some(32.5));
        assert_eq!(u.encode_percent, None);
        // A type summing past 100 (several processes, rounding) is capped.
        let over: Vec<(String, f64)> = vec![
            (
                "pid_1_luid_0x00000000_0x0000D1A5_phys_0_eng_0_engtype_3D".to_owned(),
                70.0,
            ),
            (
                "pid_2_luid_0x00000000_0x0000D1A5_phys_0_eng_0_engtype_3D".to_owned(),
                40.0,
            ),
        ];
        assert_eq!(engine_utilization(&over, luid).busiest_percent, Some(100.0));
        assert_eq!(
            engine_utilization(&[], luid),
            EngineUtilization::default(),
            "no instance: no figure, not 0"
        );
    }

    #[test]
    fn errors_name_the_counter_the_code_and_what_it_means() {
        let err = PdhError {
            call: "PdhAddEnglishCounterW",
            path: Some(usage_paths(PROCESS_OBJECT).0),
            code: PDH_CSTATUS_NO_OBJECT,
        };
        assert_eq!(
            err.to_string(),
            "PdhAddEnglishCounterW(\\GPU Process Memory(*)\\Dedicated Usage) failed with \
             0xC0000BB9 (PDH_CSTATUS_NO_OBJECT: this system has no GPU performance counters \
             (Windows before 10 1709, or Wine))"
        );
    }
}

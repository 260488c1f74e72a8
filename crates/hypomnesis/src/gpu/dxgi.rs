//! Windows GPUs through DXGI, with PDH for what DXGI cannot tell.
//!
//! DXGI enumerates every adapter Windows drives — NVIDIA, AMD, Intel iGPUs — with its name,
//! dedicated video memory, the shared system memory it may map, and its LUID. It does not say
//! how much memory is in use on the adapter (`QueryVideoMemoryInfo` covers the calling process
//! only), so the device-wide figures come from PDH's `\GPU Adapter Memory(*)` counters, and
//! every process's from `\GPU Process Memory(*)` (see `pdh.rs`).
//!
//! How adapters become devices:
//! - software adapters (`DXGI_ADAPTER_FLAG_SOFTWARE`) and Microsoft's Basic Render Driver /
//!   WARP (vendor `0x1414`) are skipped;
//! - an NVIDIA adapter NVML (or `nvidia-smi`) already lists is not listed again: adapters
//!   are matched to NVIDIA devices by PCI location (from `D3DKMTQueryAdapterInfo`), or, when
//!   Windows will not give it, by order among NVIDIA adapters;
//! - every other adapter becomes a device numbered after NVIDIA's, with `total_bytes` =
//!   `DedicatedVideoMemory`, `system_total_bytes` = `SharedSystemMemory`, and `used_bytes` /
//!   `system_used_bytes` from the adapter counters.
//!
//! For any device DXGI can match (NVIDIA's too), this backend answers first for processes:
//! under WDDM NVML reports no per-process figures, while PDH does. When PDH has no GPU
//! counters (before Windows 10 1709, and under Wine), NVIDIA devices fall back to NVML /
//! `nvidia-smi` and DXGI-only devices report why they cannot be listed. The calling process's
//! own figure is DXGI's `QueryVideoMemoryInfo(LOCAL).CurrentUsage`.
//!
//! Telemetry is utilization only, from `\GPU Engine(*)\Utilization Percentage` as Task
//! Manager computes it (see `pdh::engine_utilization`): the counter is a rate, so each call
//! collects twice 100 ms apart (`pdh::ENGINE_SAMPLE_INTERVAL`) and blocks that long. When the
//! counter cannot be added (under Wine, and before Windows 10 1709) utilization is `None` with
//! the PDH error as the reason. Temperature, power, clocks and the rest have no public Windows
//! API outside the vendor's libraries.
//!
//! An adapter's `Description` is a fixed 128-unit UTF-16 array: it is cut at the first NUL
//! (Wine leaves garbage after it).
#![cfg_attr(not(all(windows, feature = "dxgi")), allow(dead_code))]

use crate::gpu::pdh::{EngineUtilization, Luid, engine_utilization};
use crate::snapshot::{GpuDeviceInfo, GpuQuerySource, GpuVendor};
use crate::telemetry::DeviceTelemetry;
use crate::unavailable::{DeviceField, TelemetryField};

/// Why the figures Windows has no public source for are `None`.
pub(crate) const NOT_EXPOSED: &str =
    "not exposed by DXGI or the GPU performance counters (only by the vendor's library)";

/// The telemetry record of device `index` (adapter `luid`) from one reading of
/// `\GPU Engine(*)\Utilization Percentage`, or why there is none (the reason
/// given for the utilization fields).
pub(crate) fn telemetry_record(
    index: u32,
    luid: Luid,
    reading: std::result::Result<&[(String, f64)], String>,
) -> DeviceTelemetry {
    let mut t = DeviceTelemetry::empty(index, GpuQuerySource::Pdh);
    let engines = [
        TelemetryField::GpuUtilizationPercent,
        TelemetryField::EncoderUtilizationPercent,
        TelemetryField::DecoderUtilizationPercent,
    ];
    match reading {
        Ok(items) => {
            let EngineUtilization {
                busiest_percent,
                encode_percent,
                decode_percent,
            } = engine_utilization(items, luid);
            t.gpu_utilization_percent = busiest_percent;
            t.encoder_utilization_percent = encode_percent;
            t.decoder_utilization_percent = decode_percent;
            let reasons = [
                (
                    busiest_percent,
                    "no \\GPU Engine instance for this adapter (no process has a context on it)",
                ),
                (
                    encode_percent,
                    "no VideoEncode engine instance for this adapter",
                ),
                (
                    decode_percent,
                    "no VideoDecode engine instance for this adapter",
                ),
            ];
            for (field, (value, reason)) in engines.into_iter().zip(reasons) {
                if value.is_none() {
                    t.mark_unavailable(field, reason);
                }
            }
        }
        Err(e) => {
            for field in engines {
                t.mark_unavailable(field, e.clone());
            }
        }
    }
    for field in [
        TelemetryField::MemoryUtilizationPercent,
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

/// `DXGI_ADAPTER_FLAG_SOFTWARE`.
pub(crate) const FLAG_SOFTWARE: u32 = 2;
/// Microsoft's PCI vendor id: the Basic Render Driver and WARP.
pub(crate) const VENDOR_MICROSOFT: u32 = 0x1414;
/// NVIDIA's PCI vendor id.
pub(crate) const VENDOR_NVIDIA: u32 = 0x10DE;

/// One adapter as DXGI describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Adapter {
    pub(crate) name: String,
    pub(crate) vendor_id: u32,
    pub(crate) device_id: u32,
    pub(crate) dedicated_video: u64,
    pub(crate) shared_system: u64,
    pub(crate) luid: Luid,
    pub(crate) flags: u32,
    /// `(bus, device, function)`, when `D3DKMTQueryAdapterInfo` gives it.
    pub(crate) pci: Option<(u32, u32, u32)>,
}

impl Adapter {
    /// PCI bus id in NVML's form, `00000000:01:00.0` (domain 0: D3DKMT gives none).
    pub(crate) fn pci_bus_id(&self) -> Option<String> {
        self.pci
            .map(|(bus, dev, func)| format!("00000000:{bus:02X}:{dev:02X}.{func:X}"))
    }
}

/// Whether an adapter is not a real GPU: a software rasteriser or Microsoft's Basic Render
/// Driver.
pub(crate) const fn is_skipped(vendor_id: u32, flags: u32) -> bool {
    vendor_id == VENDOR_MICROSOFT || flags & FLAG_SOFTWARE != 0
}

/// The vendor for a PCI vendor id.
pub(crate) const fn vendor_of(vendor_id: u32) -> GpuVendor {
    match vendor_id {
        VENDOR_NVIDIA => GpuVendor::Nvidia,
        0x1002 | 0x1022 => GpuVendor::Amd,
        0x8086 => GpuVendor::Intel,
        _ => GpuVendor::Other,
    }
}

/// `(bus, device, function)` of a PCI bus id (`00000000:01:00.0`, `0000:01:00.0`, `01:00.0`).
pub(crate) fn parse_bus_id(text: &str) -> Option<(u32, u32, u32)> {
    let mut parts = text.trim().rsplitn(3, ':');
    let dev_func = parts.next()?;
    let bus = parts.next()?;
    let (dev, func) = dev_func.split_once('.')?;
    Some((
        u32::from_str_radix(bus, 16).ok()?,
        u32::from_str_radix(dev, 16).ok()?,
        u32::from_str_radix(func, 16).ok()?,
    ))
}

/// The NVIDIA devices already listed (by NVML or `nvidia-smi`) that `adapters[index]` is,
/// judged by PCI location when both sides have one, else by its order among NVIDIA adapters
/// (the n-th NVIDIA adapter is covered when at least n NVIDIA devices are listed).
pub(crate) fn covered_by_nvidia(
    adapters: &[Adapter],
    index: usize,
    nvidia: &[GpuDeviceInfo],
) -> bool {
    let Some(adapter) = adapters.get(index) else {
        return false;
    };
    if adapter.vendor_id != VENDOR_NVIDIA {
        return false;
    }
    let listed: Vec<&GpuDeviceInfo> = nvidia
        .iter()
        .filter(|d| d.vendor == GpuVendor::Nvidia)
        .collect();
    if let Some(pci) = adapter.pci
        && listed.iter().any(|d| d.pci_bus_id.is_some())
    {
        return listed
            .iter()
            .any(|d| d.pci_bus_id.as_deref().and_then(parse_bus_id) == Some(pci));
    }
    let ordinal = adapters
        .iter()
        .take(index)
        .filter(|a| a.vendor_id == VENDOR_NVIDIA)
        .count();
    ordinal < listed.len()
}

/// The adapter a device record describes: by PCI location; for this backend's own records
/// by name and sizes; for an NVIDIA record without a PCI location, the only NVIDIA adapter.
pub(crate) fn adapter_for_device<'a>(
    device: &GpuDeviceInfo,
    adapters: &'a [Adapter],
) -> Option<&'a Adapter> {
    if let Some(pci) = device.pci_bus_id.as_deref().and_then(parse_bus_id)
        && let Some(found) = adapters.iter().find(|a| a.pci == Some(pci))
    {
        return Some(found);
    }
    if device.source == GpuQuerySource::Dxgi {
        return adapters.iter().find(|a| {
            device.name.as_deref() == Some(a.name.as_str())
                && device.system_total_bytes == nonzero(a.shared_system)
                && (device.total_bytes == nonzero(a.dedicated_video))
        });
    }
    if device.vendor == GpuVendor::Nvidia {
        let mut nvidia = adapters.iter().filter(|a| a.vendor_id == VENDOR_NVIDIA);
        let only = nvidia.next()?;
        return nvidia.next().is_none().then_some(only);
    }
    None
}

const fn nonzero(value: u64) -> Option<u64> {
    if value == 0 { None } else { Some(value) }
}

/// Device-wide use from `\GPU Adapter Memory(*)`, or why it is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AdapterUse {
    pub(crate) dedicated: Result<u64, String>,
    pub(crate) shared: Result<u64, String>,
}

/// The device record for an adapter DXGI lists and NVIDIA's backends do not.
pub(crate) fn device_record(adapter: &Adapter, usage: &AdapterUse) -> GpuDeviceInfo {
    let mut info = GpuDeviceInfo::new(0, vendor_of(adapter.vendor_id), GpuQuerySource::Dxgi);
    if adapter.name.is_empty() {
        info.mark_unavailable(DeviceField::Name, "DXGI gave an empty adapter description");
    } else {
        info.name = Some(adapter.name.clone());
    }
    info.pci_bus_id = adapter.pci_bus_id();
    info.mark_unavailable(
        DeviceField::ReservedBytes,
        "DXGI and the GPU counters report no driver-reserved figure",
    );
    info.total_bytes = nonzero(adapter.dedicated_video);
    if info.total_bytes.is_none() {
        info.unified_memory = true;
        for field in [
            DeviceField::TotalBytes,
            DeviceField::FreeBytes,
            DeviceField::UsedBytes,
        ] {
            info.mark_unavailable(
                field,
                "the adapter has no dedicated video memory: an integrated GPU that uses shared system memory",
            );
        }
    } else {
        match &usage.dedicated {
            Ok(used) => {
                info.used_bytes = Some(*used);
                info.free_bytes = info.total_bytes.map(|t| t.saturating_sub(*used));
            }
            Err(reason) => {
                info.mark_unavailable(DeviceField::UsedBytes, reason.clone());
                info.mark_unavailable(DeviceField::FreeBytes, reason.clone());
            }
        }
    }
    info.system_total_bytes = nonzero(adapter.shared_system);
    if info.system_total_bytes.is_none() {
        info.mark_unavailable(
            DeviceField::SystemTotalBytes,
            "DXGI reports no shared system memory",
        );
    }
    match &usage.shared {
        Ok(used) => info.system_used_bytes = Some(*used),
        Err(reason) => info.mark_unavailable(DeviceField::SystemUsedBytes, reason.clone()),
    }
    info
}

/// The name and meaning of an `HRESULT` a DXGI call returns.
pub(crate) const fn hresult_text(code: u32) -> &'static str {
    match code {
        0x887A_0004 => {
            "DXGI_ERROR_UNSUPPORTED: no display or no DXGI driver (a service session, a headless server, or Wine without an X display)"
        }
        0x887A_0002 => "DXGI_ERROR_NOT_FOUND",
        0x887A_0005 => "DXGI_ERROR_DEVICE_REMOVED",
        0x8000_4002 => "E_NOINTERFACE: IDXGIAdapter3 needs Windows 10",
        0x8007_000E => "E_OUTOFMEMORY",
        0x8000_4005 => "E_FAIL",
        _ => "unknown HRESULT",
    }
}

/// A DXGI call that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DxgiError {
    pub(crate) call: &'static str,
    pub(crate) code: u32,
}

impl std::fmt::Display for DxgiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} failed with 0x{:08X} ({})",
            self.call,
            self.code,
            hresult_text(self.code)
        )
    }
}

#[cfg(all(windows, feature = "dxgi"))]
pub(crate) use sys::DxgiBackend;
#[cfg(all(windows, feature = "pdh"))]
pub(crate) use sys::PdhBackend;

#[cfg(all(windows, feature = "dxgi"))]
mod sys {
    use windows::Win32::Graphics::Dxgi::{
        CreateDXGIFactory1, DXGI_ERROR_NOT_FOUND, DXGI_MEMORY_SEGMENT_GROUP_LOCAL,
        DXGI_QUERY_VIDEO_MEMORY_INFO, IDXGIAdapter1, IDXGIAdapter3, IDXGIFactory1,
    };
    use windows::core::Interface;
    use windows_sys::Wdk::Graphics::Direct3D::{
        D3DKMT_ADAPTERADDRESS, D3DKMT_CLOSEADAPTER, D3DKMT_OPENADAPTERFROMLUID,
        D3DKMT_QUERYADAPTERINFO, D3DKMTCloseAdapter, D3DKMTOpenAdapterFromLuid,
        KMTQAITYPE_ADAPTERADDRESS,
    };
    use windows_sys::Win32::Foundation::{LUID, NTSTATUS};
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};

    use super::{
        Adapter, AdapterUse, DxgiError, adapter_for_device, covered_by_nvidia, device_record,
        is_skipped,
    };
    use crate::error::{BackendAttempt, HypomnesisError, Result};
    use crate::gpu::pdh::Luid;
    use crate::gpu::{Backend, Devices, Listed, Pass};
    use crate::ram::windows::wide_until_nul;
    #[cfg(feature = "pdh")]
    use crate::snapshot::GpuProcessEntry;
    use crate::snapshot::{GpuDeviceInfo, GpuProcessListing, GpuQuerySource, ProcessGpuInfo};
    use crate::telemetry::DeviceTelemetry;

    /// No machine has more adapters than this; a longer enumeration is a driver bug.
    const MAX_ADAPTERS: u32 = 64;

    fn hresult_bits(e: &windows::core::Error) -> u32 {
        e.code().0.cast_unsigned()
    }

    fn factory() -> std::result::Result<IDXGIFactory1, DxgiError> {
        // SAFETY: CreateDXGIFactory1 has no preconditions; the returned COM pointer is
        // released when the wrapper drops.
        unsafe { CreateDXGIFactory1::<IDXGIFactory1>() }.map_err(|e| DxgiError {
            call: "CreateDXGIFactory1",
            code: hresult_bits(&e),
        })
    }

    /// Every adapter DXGI enumerates, as COM objects with their descriptions. An adapter
    /// whose description cannot be read is skipped, not fatal.
    fn walk() -> std::result::Result<Vec<(IDXGIAdapter1, Adapter)>, DxgiError> {
        let factory = factory()?;
        let mut found = Vec::new();
        for i in 0..MAX_ADAPTERS {
            // SAFETY: `factory` is a live IDXGIFactory1.
            let adapter = match unsafe { factory.EnumAdapters1(i) } {
                Ok(a) => a,
                Err(e) if e.code() == DXGI_ERROR_NOT_FOUND => break,
                Err(e) => {
                    return Err(DxgiError {
                        call: "IDXGIFactory1::EnumAdapters1",
                        code: hresult_bits(&e),
                    });
                }
            };
            // SAFETY: `adapter` is a live IDXGIAdapter1.
            let Ok(desc) = (unsafe { adapter.GetDesc1() }) else {
                continue;
            };
            let luid = Luid::from_parts(desc.AdapterLuid.LowPart, desc.AdapterLuid.HighPart);
            let described = Adapter {
                name: wide_until_nul(&desc.Description).trim().to_owned(),
                vendor_id: desc.VendorId,
                device_id: desc.DeviceId,
                dedicated_video: u64::try_from(desc.DedicatedVideoMemory).unwrap_or(u64::MAX),
                shared_system: u64::try_from(desc.SharedSystemMemory).unwrap_or(u64::MAX),
                luid,
                flags: desc.Flags,
                pci: pci_location(luid),
            };
            found.push((adapter, described));
        }
        Ok(found)
    }

    /// The real GPUs DXGI enumerates, in its order.
    pub(crate) fn adapters() -> std::result::Result<Vec<Adapter>, DxgiError> {
        Ok(walk()?
            .into_iter()
            .map(|(_, a)| a)
            .filter(|a| !is_skipped(a.vendor_id, a.flags))
            .collect())
    }

    /// A kernel-mode adapter handle, closed on drop.
    struct KmtAdapter(u32);

    impl Drop for KmtAdapter {
        fn drop(&mut self) {
            let close = D3DKMT_CLOSEADAPTER { hAdapter: self.0 };
            // SAFETY: the handle came from D3DKMTOpenAdapterFromLuid and is closed once.
            unsafe { D3DKMTCloseAdapter(&raw const close) };
        }
    }

    type QueryAdapterInfo = unsafe extern "system" fn(*mut D3DKMT_QUERYADAPTERINFO) -> NTSTATUS;

    /// `D3DKMTQueryAdapterInfo`, looked up at run time: Wine 8's gdi32 does not export it,
    /// and a static import would stop the whole program from loading there.
    fn query_adapter_info() -> Option<QueryAdapterInfo> {
        let name: Vec<u16> = "gdi32.dll".encode_utf16().chain([0]).collect();
        // SAFETY: `name` is a NUL-terminated UTF-16 string; gdi32 is loaded because this
        // module imports D3DKMTOpenAdapterFromLuid from it.
        let module = unsafe { GetModuleHandleW(name.as_ptr()) };
        if module.is_null() {
            return None;
        }
        // SAFETY: `module` is a loaded module and the name a NUL-terminated ANSI string.
        let proc = unsafe { GetProcAddress(module, c"D3DKMTQueryAdapterInfo".as_ptr().cast()) }?;
        // SAFETY: D3DKMTQueryAdapterInfo has this signature (d3dkmthk.h): one pointer to a
        // D3DKMT_QUERYADAPTERINFO, returning an NTSTATUS.
        Some(unsafe {
            std::mem::transmute::<unsafe extern "system" fn() -> isize, QueryAdapterInfo>(proc)
        })
    }

    /// The adapter's PCI bus, device and function (`KMTQAITYPE_ADAPTERADDRESS`).
    fn pci_location(luid: Luid) -> Option<(u32, u32, u32)> {
        let mut open = D3DKMT_OPENADAPTERFROMLUID {
            AdapterLuid: LUID {
                LowPart: luid.low,
                HighPart: luid.high_signed(),
            },
            hAdapter: 0,
        };
        // SAFETY: `open` is a live D3DKMT_OPENADAPTERFROMLUID with the LUID set.
        let status = unsafe { D3DKMTOpenAdapterFromLuid(&raw mut open) };
        if status != 0 {
            return None;
        }
        let adapter = KmtAdapter(open.hAdapter);
        let query = query_adapter_info()?;
        let mut address = D3DKMT_ADAPTERADDRESS::default();
        let mut request = D3DKMT_QUERYADAPTERINFO {
            hAdapter: adapter.0,
            Type: KMTQAITYPE_ADAPTERADDRESS,
            pPrivateDriverData: (&raw mut address).cast(),
            PrivateDriverDataSize: u32::try_from(size_of::<D3DKMT_ADAPTERADDRESS>()).ok()?,
        };
        // SAFETY: `request` names an open adapter and points at a live
        // D3DKMT_ADAPTERADDRESS of the stated size.
        let status = unsafe { query(&raw mut request) };
        (status == 0).then_some((
            address.BusNumber,
            address.DeviceNumber,
            address.FunctionNumber,
        ))
    }

    /// The calling process's `CurrentUsage` of the adapter's local (dedicated) segment group.
    fn own_local_usage(luid: Luid) -> std::result::Result<Option<u64>, DxgiError> {
        for (adapter, described) in walk()? {
            if described.luid != luid {
                continue;
            }
            let adapter3: IDXGIAdapter3 = adapter.cast().map_err(|e| DxgiError {
                call: "QueryInterface(IDXGIAdapter3)",
                code: hresult_bits(&e),
            })?;
            let mut info = DXGI_QUERY_VIDEO_MEMORY_INFO::default();
            // SAFETY: `adapter3` is live; `info` is a writable DXGI_QUERY_VIDEO_MEMORY_INFO.
            unsafe {
                adapter3.QueryVideoMemoryInfo(0, DXGI_MEMORY_SEGMENT_GROUP_LOCAL, &raw mut info)
            }
            .map_err(|e| DxgiError {
                call: "IDXGIAdapter3::QueryVideoMemoryInfo",
                code: hresult_bits(&e),
            })?;
            raw!(
                "DXGI QueryVideoMemoryInfo(LOCAL): CurrentUsage={} Budget={}",
                info.CurrentUsage,
                info.Budget
            );
            return Ok(Some(info.CurrentUsage));
        }
        Ok(None)
    }

    fn no_source(backend: GpuQuerySource, reason: String) -> HypomnesisError {
        HypomnesisError::NoGpuSource {
            attempts: vec![BackendAttempt::new(backend, reason)],
        }
    }

    /// DXGI adapters as devices, PDH for their use and their processes.
    #[derive(Debug, Default)]
    pub(crate) struct DxgiBackend;

    impl DxgiBackend {
        pub(crate) fn new() -> Self {
            Self
        }

        /// Device-wide use per adapter, or why it is unknown.
        fn adapter_use(adapters: &[Adapter]) -> Vec<AdapterUse> {
            #[cfg(feature = "pdh")]
            {
                use crate::gpu::pdh::{ADAPTER_OBJECT, read_usage, sum_for_adapter};
                let missing = |what: &str| {
                    format!(
                        "the \\GPU Adapter Memory counters have no instance for this adapter's {what}"
                    )
                };
                match read_usage(ADAPTER_OBJECT) {
                    Ok(reading) => adapters
                        .iter()
                        .map(|a| AdapterUse {
                            dedicated: sum_for_adapter(&reading.dedicated, a.luid)
                                .ok_or_else(|| missing("dedicated usage")),
                            shared: match &reading.shared {
                                Some(shared) => sum_for_adapter(shared, a.luid)
                                    .ok_or_else(|| missing("shared usage")),
                                None => Err("the \\GPU Adapter Memory(*)\\Shared Usage counter could not be read".to_owned()),
                            },
                        })
                        .collect(),
                    Err(e) => {
                        let reason = format!("PDH: {e}");
                        adapters
                            .iter()
                            .map(|_| AdapterUse {
                                dedicated: Err(reason.clone()),
                                shared: Err(reason.clone()),
                            })
                            .collect()
                    }
                }
            }
            #[cfg(not(feature = "pdh"))]
            {
                let reason = "built without the `pdh` feature: no GPU counters".to_owned();
                adapters
                    .iter()
                    .map(|_| AdapterUse {
                        dedicated: Err(reason.clone()),
                        shared: Err(reason.clone()),
                    })
                    .collect()
            }
        }

        /// Every process on `adapter` from PDH, named.
        #[cfg(feature = "pdh")]
        fn pdh_processes(
            device: &GpuDeviceInfo,
            adapter: &Adapter,
        ) -> std::result::Result<Vec<GpuProcessEntry>, crate::gpu::pdh::PdhError> {
            use crate::gpu::pdh::{PROCESS_OBJECT, join_usage, read_usage, sum_by_pid};
            use crate::ram::windows::{ImageName, image_name, resolve_name, snapshot_names};

            let reading = read_usage(PROCESS_OBJECT)?;
            let dedicated = sum_by_pid(&reading.dedicated, adapter.luid);
            let shared = reading
                .shared
                .as_ref()
                .map(|items| sum_by_pid(items, adapter.luid));
            let usage = join_usage(&dedicated, shared.as_ref());
            let listed: Vec<(u32, crate::gpu::pdh::ProcessUsage)> = usage
                .into_iter()
                .filter(|(_, u)| u.dedicated > 0 || u.shared.is_some_and(|s| s > 0))
                .collect();
            let images: Vec<ImageName> = listed.iter().map(|(pid, _)| image_name(*pid)).collect();
            let snapshot = images
                .contains(&ImageName::Refused)
                .then(snapshot_names)
                .flatten();
            Ok(listed
                .into_iter()
                .zip(images)
                .map(|((pid, u), image)| {
                    let mut row = GpuProcessEntry::new(pid, device.index, GpuQuerySource::Pdh);
                    row.name = resolve_name(pid, &image, snapshot.as_ref());
                    row.used_bytes = Some(u.dedicated);
                    row.system_bytes = u.shared;
                    row
                })
                .collect())
        }
    }

    impl Backend for DxgiBackend {
        fn source(&self) -> GpuQuerySource {
            GpuQuerySource::Dxgi
        }

        fn devices(
            &self,
            pass: &Pass,
            claimed: &[GpuDeviceInfo],
        ) -> std::result::Result<Devices, String> {
            let _ = pass;
            let adapters = adapters().map_err(|e| {
                HypomnesisError::Io {
                    path: e.call.into(),
                    detail: e.to_string(),
                    errno: Some(e.code.cast_signed()),
                }
                .backend_reason()
            })?;
            let mine: Vec<Adapter> = adapters
                .iter()
                .enumerate()
                .filter(|(i, _)| !covered_by_nvidia(&adapters, *i, claimed))
                .map(|(_, a)| a.clone())
                .collect();
            let usage = Self::adapter_use(&mine);
            Ok(Devices::numbered(
                mine.iter()
                    .zip(&usage)
                    .map(|(a, u)| device_record(a, u))
                    .collect(),
            ))
        }

        /// With PDH, [`PdhBackend`] answers first; without it, DXGI's own adapters have no
        /// process list.
        fn process_listing(
            &self,
            pass: &Pass,
            device: &Listed,
        ) -> Option<Result<GpuProcessListing>> {
            let _ = pass;
            #[cfg(feature = "pdh")]
            {
                let _ = device;
                None
            }
            #[cfg(not(feature = "pdh"))]
            {
                (device.info.source == GpuQuerySource::Dxgi).then(|| {
                    Err(no_source(
                        GpuQuerySource::Pdh,
                        "built without the `pdh` feature: processes cannot be listed".to_owned(),
                    ))
                })
            }
        }

        fn telemetry(&self, pass: &Pass, device: &Listed) -> Option<Result<DeviceTelemetry>> {
            let _ = pass;
            let device = &device.info;
            // NVIDIA devices have NVML / nvidia-smi for telemetry; this answers for its own.
            if device.source != GpuQuerySource::Dxgi {
                return None;
            }
            let adapters = match adapters() {
                Ok(a) => a,
                Err(e) => return Some(Err(no_source(GpuQuerySource::Dxgi, e.to_string()))),
            };
            let Some(adapter) = adapter_for_device(device, &adapters) else {
                return Some(Err(no_source(
                    GpuQuerySource::Dxgi,
                    format!("no DXGI adapter matches device {}", device.index),
                )));
            };
            #[cfg(feature = "pdh")]
            let reading = crate::gpu::pdh::read_engine_utilization();
            #[cfg(feature = "pdh")]
            let reading = reading.as_deref().map_err(|e| format!("PDH: {e}"));
            #[cfg(not(feature = "pdh"))]
            let reading: std::result::Result<&[(String, f64)], String> =
                Err("built without the `pdh` feature: no GPU counters".to_owned());
            Some(Ok(super::telemetry_record(
                device.index,
                adapter.luid,
                reading,
            )))
        }

        /// The calling process's own use of any adapter (`QueryVideoMemoryInfo`); other
        /// processes are PDH's.
        fn own_process(
            &self,
            pass: &Pass,
            device: &Listed,
            pid: u32,
        ) -> Option<Result<ProcessGpuInfo>> {
            let _ = pass;
            if pid != std::process::id() {
                return None;
            }
            let device = &device.info;
            let ours = device.source == GpuQuerySource::Dxgi;
            let adapters = match adapters() {
                Ok(a) => a,
                Err(e) if ours => return Some(Err(no_source(GpuQuerySource::Dxgi, e.to_string()))),
                Err(_) => return None,
            };
            let adapter = adapter_for_device(device, &adapters)?;
            match own_local_usage(adapter.luid) {
                Ok(Some(used)) => Some(Ok(ProcessGpuInfo::own(
                    used,
                    device.index,
                    GpuQuerySource::Dxgi,
                ))),
                Ok(None) => None,
                Err(e) if ours => Some(Err(no_source(GpuQuerySource::Dxgi, e.to_string()))),
                Err(_) => None,
            }
        }
    }

    /// The `\GPU Process Memory` counters as a backend: every process on any adapter DXGI
    /// matches, NVIDIA's included (under WDDM NVML lists processes without their memory).
    #[cfg(feature = "pdh")]
    #[derive(Debug, Default)]
    pub(crate) struct PdhBackend;

    #[cfg(feature = "pdh")]
    impl PdhBackend {
        pub(crate) fn new() -> Self {
            Self
        }
    }

    /// One adapter's `\\GPU Adapter Memory` counters, kept open between samples.
    #[cfg(feature = "pdh")]
    #[derive(Debug)]
    struct AdapterMeter {
        luid: Luid,
        limit: u64,
        counters: crate::gpu::pdh::UsageCounters,
    }

    #[cfg(feature = "pdh")]
    impl crate::gpu::SpillMeter for AdapterMeter {
        fn sample(&self) -> Result<crate::gpu::MemoryShares> {
            use crate::gpu::pdh::sum_for_adapter;
            let reading = self
                .counters
                .sample()
                .map_err(|e| no_source(GpuQuerySource::Pdh, e.to_string()))?;
            let missing = |what: &str| {
                no_source(
                    GpuQuerySource::Pdh,
                    format!(
                        "\\GPU Adapter Memory has no {what} instance for {}",
                        self.luid
                    ),
                )
            };
            let dedicated = sum_for_adapter(&reading.dedicated, self.luid)
                .ok_or_else(|| missing("Dedicated Usage"))?;
            let shared = reading
                .shared
                .as_deref()
                .and_then(|items| sum_for_adapter(items, self.luid))
                .ok_or_else(|| missing("Shared Usage"))?;
            Ok(crate::gpu::MemoryShares {
                dedicated_used: dedicated,
                dedicated_limit: self.limit,
                shared_used: shared,
            })
        }
    }

    #[cfg(feature = "pdh")]
    impl Backend for PdhBackend {
        fn source(&self) -> GpuQuerySource {
            GpuQuerySource::Pdh
        }

        /// PDH lists no devices of its own: DXGI does.
        fn devices(
            &self,
            pass: &Pass,
            claimed: &[GpuDeviceInfo],
        ) -> std::result::Result<Devices, String> {
            let _ = (pass, claimed);
            Ok(Devices::default())
        }

        fn process_listing(
            &self,
            pass: &Pass,
            device: &Listed,
        ) -> Option<Result<GpuProcessListing>> {
            let _ = pass;
            let device = &device.info;
            let ours = device.source == GpuQuerySource::Dxgi;
            let adapters = match adapters() {
                Ok(a) => a,
                Err(e) if ours => return Some(Err(no_source(GpuQuerySource::Dxgi, e.to_string()))),
                Err(_) => return None,
            };
            let adapter = adapter_for_device(device, &adapters)?;
            match DxgiBackend::pdh_processes(device, adapter) {
                Ok(rows) => Some(Ok(GpuProcessListing::from_rows(rows))),
                // NVIDIA devices still have NVML / nvidia-smi; DXGI-only ones have nothing.
                Err(e) if ours => Some(Err(no_source(GpuQuerySource::Pdh, e.to_string()))),
                Err(_) => None,
            }
        }

        /// Any adapter DXGI matches, NVIDIA's included: its dedicated limit from DXGI, its
        /// use from the adapter counters.
        fn spill_meter(&self, device: &Listed) -> Option<Result<Box<dyn crate::gpu::SpillMeter>>> {
            use crate::gpu::pdh::{ADAPTER_OBJECT, UsageCounters};
            let device = &device.info;
            Some((|| {
                let adapters =
                    adapters().map_err(|e| no_source(GpuQuerySource::Dxgi, e.to_string()))?;
                let adapter = adapter_for_device(device, &adapters).ok_or_else(|| {
                    no_source(
                        GpuQuerySource::Dxgi,
                        format!("no DXGI adapter matches device {}", device.index),
                    )
                })?;
                let counters = UsageCounters::open(ADAPTER_OBJECT)
                    .map_err(|e| no_source(GpuQuerySource::Pdh, e.to_string()))?;
                let meter: Box<dyn crate::gpu::SpillMeter> = Box::new(AdapterMeter {
                    luid: adapter.luid,
                    limit: adapter.dedicated_video,
                    counters,
                });
                Ok(meter)
            })())
        }

        fn own_process(
            &self,
            pass: &Pass,
            device: &Listed,
            pid: u32,
        ) -> Option<Result<ProcessGpuInfo>> {
            let _ = pass;
            // The calling process is DXGI's (or, when it cannot tell, the device's lister's).
            if pid == std::process::id() {
                return None;
            }
            let device = &device.info;
            let ours = device.source == GpuQuerySource::Dxgi;
            let adapters = match adapters() {
                Ok(a) => a,
                Err(e) if ours => return Some(Err(no_source(GpuQuerySource::Dxgi, e.to_string()))),
                Err(_) => return None,
            };
            let adapter = adapter_for_device(device, &adapters)?;
            match DxgiBackend::pdh_processes(device, adapter) {
                Ok(rows) => Some(Ok(ProcessGpuInfo::own(
                    // Not in the complete list: the process holds nothing on this adapter.
                    rows.iter()
                        .find(|r| r.pid == pid)
                        .and_then(|r| r.used_bytes)
                        .unwrap_or(0),
                    device.index,
                    GpuQuerySource::Pdh,
                ))),
                Err(e) if ours => Some(Err(no_source(GpuQuerySource::Pdh, e.to_string()))),
                Err(_) => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemetry_is_the_busiest_engine_type_of_this_adapter() {
        let luid = Luid {
            high: 0,
            low: 0xD1A5,
        };
        let items: Vec<(String, f64)> = [
            (
                "pid_10_luid_0x00000000_0x0000D1A5_phys_0_eng_0_engtype_3D",
                30.0,
            ),
            (
                "pid_11_luid_0x00000000_0x0000D1A5_phys_0_eng_0_engtype_3D",
                25.0,
            ),
            (
                "pid_12_luid_0x00000000_0x0000D1A5_phys_0_eng_3_engtype_VideoDecode",
                20.0,
            ),
            (
                "pid_10_luid_0x00000000_0x0000BEEF_phys_0_eng_0_engtype_3D",
                99.0,
            ),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v))
        .collect();
        let t = telemetry_record(1, luid, Ok(&items));
        assert_eq!(t.index, 1);
        assert_eq!(t.source, GpuQuerySource::Pdh);
        assert_eq!(t.gpu_utilization_percent, Some(55.0));
        assert_eq!(t.decoder_utilization_percent, Some(20.0));
        assert_eq!(t.encoder_utilization_percent, None);
        assert!(
            t.unavailable_reason(TelemetryField::EncoderUtilizationPercent)
                .is_some()
        );
        assert_eq!(
            t.unavailable_reason(TelemetryField::GpuUtilizationPercent),
            None
        );
        assert_eq!(
            t.unavailable_reason(TelemetryField::PowerWatts),
            Some(NOT_EXPOSED)
        );
        let idle = telemetry_record(1, Luid { high: 0, low: 7 }, Ok(&items));
        assert_eq!(
            idle.gpu_utilization_percent, None,
            "no instance: unknown, not 0"
        );
        assert!(
            idle.unavailable_reason(TelemetryField::GpuUtilizationPercent)
                .is_some()
        );
    }

    #[test]
    fn telemetry_without_the_engine_counter_says_why() {
        let t = telemetry_record(
            0,
            Luid { high: 0, low: 1 },
            Err("PDH: PdhAddEnglishCounterW failed".to_owned()),
        );
        assert_eq!(t.gpu_utilization_percent, None);
        assert_eq!(
            t.unavailable_reason(TelemetryField::GpuUtilizationPercent),
            Some("PDH: PdhAddEnglishCounterW failed")
        );
        assert!(
            t.unavailable_reason(TelemetryField::DecoderUtilizationPercent)
                .is_some()
        );
    }

    fn adapter(name: &str, vendor_id: u32, pci: Option<(u32, u32, u32)>, low: u32) -> Adapter {
        Adapter {
            name: name.to_owned(),
            vendor_id,
            device_id: 0,
            dedicated_video: 8 << 30,
            shared_system: 16 << 30,
            luid: Luid { high: 0, low },
            flags: 0,
            pci,
        }
    }

    fn nvml_device(index: u32, bus: Option<&str>) -> GpuDeviceInfo {
        let mut d = GpuDeviceInfo::new(index, GpuVendor::Nvidia, GpuQuerySource::Nvml);
        d.pci_bus_id = bus.map(str::to_owned);
        d
    }

    #[test]
    fn software_and_basic_render_adapters_are_skipped() {
        assert!(is_skipped(0x1414, 0), "Microsoft Basic Render Driver");
        assert!(is_skipped(0x10DE, FLAG_SOFTWARE));
        assert!(!is_skipped(0x10DE, 0));
        assert!(!is_skipped(0x8086, 1), "remote flag alone is not software");
    }

    #[test]
    fn vendors_come_from_pci_ids() {
        assert_eq!(vendor_of(0x10DE), GpuVendor::Nvidia);
        assert_eq!(vendor_of(0x1002), GpuVendor::Amd);
        assert_eq!(vendor_of(0x8086), GpuVendor::Intel);
        assert_eq!(vendor_of(0x5143), GpuVendor::Other);
    }

    #[test]
    fn bus_ids_compare_by_location_whatever_the_domain_width() {
        assert_eq!(parse_bus_id("00000000:01:00.0"), Some((1, 0, 0)));
        assert_eq!(parse_bus_id("0000:0A:1F.3"), Some((10, 31, 3)));
        assert_eq!(parse_bus_id("0a:00.1"), Some((10, 0, 1)));
        assert_eq!(parse_bus_id("garbage"), None);
        let a = adapter("x", VENDOR_NVIDIA, Some((0x65, 0, 0)), 1);
        assert_eq!(a.pci_bus_id().as_deref(), Some("00000000:65:00.0"));
        assert_eq!(parse_bus_id(&a.pci_bus_id().unwrap()), a.pci);
    }

    #[test]
    fn nvidia_adapters_listed_by_nvml_are_not_listed_twice() {
        let adapters = [
            adapter("Intel(R) UHD Graphics 770", 0x8086, Some((0, 2, 0)), 1),
            adapter("NVIDIA GeForce RTX 4090", VENDOR_NVIDIA, Some((1, 0, 0)), 2),
            adapter("NVIDIA GeForce RTX 4090", VENDOR_NVIDIA, Some((2, 0, 0)), 3),
        ];
        let nvml = [nvml_device(0, Some("00000000:02:00.0"))];
        assert!(
            !covered_by_nvidia(&adapters, 0, &nvml),
            "Intel is never NVML's"
        );
        assert!(
            !covered_by_nvidia(&adapters, 1, &nvml),
            "bus 1 is not the listed GPU"
        );
        assert!(covered_by_nvidia(&adapters, 2, &nvml));
        assert!(
            !covered_by_nvidia(&adapters, 2, &[]),
            "NVML found nothing: DXGI lists it"
        );
    }

    #[test]
    fn without_pci_locations_nvidia_adapters_are_matched_by_order() {
        let adapters = [
            adapter("NVIDIA A", VENDOR_NVIDIA, None, 1),
            adapter("AMD Radeon", 0x1002, None, 2),
            adapter("NVIDIA B", VENDOR_NVIDIA, None, 3),
        ];
        let one = [nvml_device(0, None)];
        assert!(covered_by_nvidia(&adapters, 0, &one));
        assert!(!covered_by_nvidia(&adapters, 1, &one));
        assert!(
            !covered_by_nvidia(&adapters, 2, &one),
            "only one NVIDIA device was listed"
        );
    }

    #[test]
    fn device_records_are_matched_back_to_their_adapter() {
        let adapters = [
            adapter("Intel(R) UHD Graphics 770", 0x8086, None, 1),
            adapter("NVIDIA GeForce RTX 4090", VENDOR_NVIDIA, Some((1, 0, 0)), 2),
        ];
        let usage = AdapterUse {
            dedicated: Ok(1 << 30),
            shared: Ok(0),
        };
        let intel = device_record(&adapters[0], &usage);
        assert_eq!(
            adapter_for_device(&intel, &adapters).map(|a| a.luid.low),
            Some(1)
        );
        let nvml = nvml_device(0, Some("00000000:01:00.0"));
        assert_eq!(
            adapter_for_device(&nvml, &adapters).map(|a| a.luid.low),
            Some(2)
        );
        let nvml_no_bus = nvml_device(0, None);
        assert_eq!(
            adapter_for_device(&nvml_no_bus, &adapters).map(|a| a.luid.low),
            Some(2),
            "the only NVIDIA adapter"
        );
    }

    #[test]
    fn device_records_carry_dxgi_sizes_and_pdh_use() {
        let a = adapter("AMD Radeon RX 7900 XTX", 0x1002, Some((3, 0, 0)), 7);
        let record = device_record(
            &a,
            &AdapterUse {
                dedicated: Ok(3 << 30),
                shared: Ok(200 << 20),
            },
        );
        assert_eq!(record.name.as_deref(), Some("AMD Radeon RX 7900 XTX"));
        assert_eq!(record.vendor, GpuVendor::Amd);
        assert_eq!(record.total_bytes, Some(8 << 30));
        assert_eq!(record.used_bytes, Some(3 << 30));
        assert_eq!(record.free_bytes, Some(5 << 30));
        assert_eq!(record.system_total_bytes, Some(16 << 30));
        assert_eq!(record.system_used_bytes, Some(200 << 20));
        assert_eq!(record.pci_bus_id.as_deref(), Some("00000000:03:00.0"));
        assert_eq!(record.source, GpuQuerySource::Dxgi);
        assert!(
            record
                .unavailable_reason(DeviceField::ReservedBytes)
                .is_some()
        );
    }

    #[test]
    fn without_counters_use_is_unknown_with_the_reason_never_zero() {
        let a = adapter("NVIDIA GeForce GTX 470", VENDOR_NVIDIA, None, 7);
        let reason = "PDH: no counters".to_owned();
        let record = device_record(
            &a,
            &AdapterUse {
                dedicated: Err(reason.clone()),
                shared: Err(reason.clone()),
            },
        );
        assert_eq!(record.total_bytes, Some(8 << 30));
        assert_eq!(record.used_bytes, None);
        assert_eq!(record.free_bytes, None);
        assert_eq!(record.system_used_bytes, None);
        assert_eq!(
            record.unavailable_reason(DeviceField::UsedBytes),
            Some(reason.as_str())
        );
    }

    #[test]
    fn an_adapter_without_dedicated_memory_is_unified() {
        let mut a = adapter("Intel(R) Iris(R) Xe Graphics", 0x8086, None, 9);
        a.dedicated_video = 0;
        let record = device_record(
            &a,
            &AdapterUse {
                dedicated: Ok(0),
                shared: Ok(1 << 30),
            },
        );
        assert!(record.unified_memory);
        assert_eq!(record.total_bytes, None);
        assert_eq!(record.system_used_bytes, Some(1 << 30));
    }

    #[cfg(all(windows, feature = "dxgi"))]
    #[test]
    fn real_adapters_are_named_without_nuls_and_software_ones_are_gone() {
        match sys::adapters() {
            Ok(found) => {
                for a in &found {
                    assert!(!is_skipped(a.vendor_id, a.flags), "{a:?}");
                    assert!(!a.name.contains('\0'), "{a:?}");
                }
            }
            // No display (a service session, Wine without X): the one clean failure.
            Err(e) => assert_eq!(e.code, 0x887A_0004, "{e}"),
        }
    }

    #[test]
    fn hresults_are_named_with_what_to_do() {
        let e = DxgiError {
            call: "CreateDXGIFactory1",
            code: 0x887A_0004,
        };
        assert!(e.to_string().starts_with(
            "CreateDXGIFactory1 failed with 0x887A0004 (DXGI_ERROR_UNSUPPORTED: no display"
        ));
    }
}

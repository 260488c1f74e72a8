//! The metric families `hmn serve` exposes, encoded from one sample.
//!
//! Two parts make a scrape. The *sample part* — devices, processes, host memory, all from one
//! [`Frame`] — is encoded once per frame, in both formats, by the follower thread (see
//! `follower.rs`); a scrape copies it. The *health part* — how old the sample is, how many
//! sampling passes failed — is encoded at scrape time, because a hung driver call must make
//! the sample look older with every scrape even though no new sample arrives.
//!
//! Both parts go through `prometheus-client`: the Prometheus text format (0.0.4) for plain
//! scrapers, OpenMetrics 1.0 when the scraper asks for it. A figure the backend could not
//! measure is left out (no series), never exported as 0. Names and labels are documented in
//! `docs/metrics.md`; the snapshots at the bottom of this file pin them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hypomnesis::{
    DeviceFrame, DeviceTelemetry, Frame, GpuDeviceInfo, GpuProcessEntry, GpuProcessKind,
    GpuQuerySource, GpuVendor,
};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric, GaugeValueEncoder,
    prometheus_text, text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use super::attribution::Labelling;

/// `Content-Type` of an OpenMetrics 1.0 response.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// `Content-Type` of a Prometheus text format (0.0.4) response.
pub const PROMETHEUS_CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The two exposition formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
    Prometheus,
    /// OpenMetrics 1.0 (`application/openmetrics-text; version=1.0.0`), ending in `# EOF`.
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Prometheus => PROMETHEUS_CONTENT_TYPE,
            Self::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// What the exposition shows of every frame, as `hmn serve` was told when it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// Export per-process metrics; `false` (`--no-processes`) leaves their families out.
    pub processes: bool,
    /// Only this GPU (`--device`).
    pub device: Option<u32>,
}

impl Default for View {
    fn default() -> Self {
        Self {
            processes: true,
            device: None,
        }
    }
}

impl View {
    /// Whether the exposition shows `device`.
    pub fn shows(self, device: &DeviceFrame) -> bool {
        self.device.is_none_or(|only| device.device.index == only)
    }
}

/// One frame of the machine, and what only `hmn serve` knows about it. A part of the frame
/// that could not be read is `None` or empty there; the failure itself is counted by the
/// follower (see `follower.rs`), not exported here.
#[derive(Debug, Clone)]
pub struct Sample {
    pub frame: Arc<Frame>,
    /// Resident memory of `hmn serve` itself.
    pub own_rss_bytes: Option<u64>,
    /// How long the pass that took the frame lasted (driver, `/proc` and cgroup reads).
    pub duration: Duration,
}

/// One sample encoded in both formats. The OpenMetrics text has no `# EOF` yet: the health
/// part follows it.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    pub prometheus: String,
    pub openmetrics: String,
}

impl Exposition {
    pub fn get(&self, format: Format) -> &str {
        match format {
            Format::Prometheus => &self.prometheus,
            Format::OpenMetrics => &self.openmetrics,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeviceLabels {
    gpu: u32,
    uuid: String,
    name: String,
    vendor: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeviceInfoLabels {
    gpu: u32,
    uuid: String,
    name: String,
    vendor: &'static str,
    pci_bus_id: String,
    driver_version: String,
    source: &'static str,
    unified_memory: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProcessLabels {
    gpu: u32,
    pid: u32,
    process: String,
    user: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

/// The empty label set, for families of at most one series (present only when measured).
type NoLabels = [(&'static str, &'static str); 0];

fn bytes(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub fn vendor_name(vendor: GpuVendor) -> &'static str {
    match vendor {
        GpuVendor::Nvidia => "nvidia",
        GpuVendor::Amd => "amd",
        GpuVendor::Intel => "intel",
        GpuVendor::Apple => "apple",
        _ => "other",
    }
}

fn kind_name(kind: GpuProcessKind) -> &'static str {
    match kind {
        GpuProcessKind::Compute => "compute",
        GpuProcessKind::Graphics => "graphics",
        GpuProcessKind::ComputeAndGraphics => "compute_and_graphics",
        _ => "unknown",
    }
}

/// One family: its descriptor, then one series per `(labels, metric)`. A family with no series
/// is left out entirely, as `prometheus-client`'s own families are.
fn family<L: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric_type: MetricType,
    series: impl IntoIterator<Item = (L, M)>,
) -> fmt::Result {
    let mut series = series.into_iter().peekable();
    if series.peek().is_none() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, unit, metric_type)?;
    for (labels, value) in series {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn byte_family<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    family(
        encoder,
        name,
        help,
        Some(&Unit::Bytes),
        MetricType::Gauge,
        series
            .into_iter()
            .map(|(labels, value)| (labels, ConstGauge::new(bytes(value)))),
    )
}

/// A device-labelled byte gauge: registered name (without `_bytes`), help, field.
type DeviceField = (
    &'static str,
    &'static str,
    fn(&GpuDeviceInfo) -> Option<u64>,
);

const DEVICE_FIELDS: [DeviceField; 7] = [
    (
        "hypomnesis_gpu_memory_total",
        "Installed device memory (VRAM); absent for unified-memory GPUs with no dedicated memory.",
        |d| d.total_bytes,
    ),
    (
        "hypomnesis_gpu_memory_used",
        "Device memory allocated by contexts, excluding reserved memory (NVML v2 `used`, as nvidia-smi).",
        |d| d.used_bytes,
    ),
    (
        "hypomnesis_gpu_memory_free",
        "Device memory no context has allocated.",
        |d| d.free_bytes,
    ),
    (
        "hypomnesis_gpu_memory_reserved",
        "Device memory reserved by the driver and firmware (inside total); absent before NVIDIA R510.",
        |d| d.reserved_bytes,
    ),
    (
        "hypomnesis_gpu_system_memory_total",
        "System RAM the GPU may map for its buffers (amdgpu GTT size, DXGI shared system memory).",
        |d| d.system_total_bytes,
    ),
    (
        "hypomnesis_gpu_system_memory_used",
        "GPU buffers currently held in system RAM (amdgpu GTT in use, PDH shared usage).",
        |d| d.system_used_bytes,
    ),
    (
        "hypomnesis_gpu_memory_budget",
        "What a new allocation can still get: free memory, or on a unified-memory GPU the smallest of GTT room, host available and cgroup room (see hmn fits).",
        |d| d.budget_bytes,
    ),
];

/// A figure as exported: whole numbers (clocks, PCIe links) without a fraction, the rest as
/// floats.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reading {
    Whole(i64),
    Fraction(f64),
}

impl EncodeGaugeValue for Reading {
    fn encode(&self, encoder: &mut GaugeValueEncoder) -> fmt::Result {
        match self {
            Self::Whole(v) => v.encode(encoder),
            Self::Fraction(v) => v.encode(encoder),
        }
    }
}

/// The unit of a telemetry family, as Prometheus names units: base units, and ratios from 0 to
/// 1 where the library has percentages.
#[derive(Debug, Clone, Copy)]
enum TelemetryUnit {
    Ratio,
    Celsius,
    Watts,
    Hertz,
    /// A count with no unit (PCIe generation, lanes).
    None,
}

impl TelemetryUnit {
    fn unit(self) -> Option<Unit> {
        match self {
            // Not `Unit::Ratios`: that suffix is `_ratios`, and the convention is `_ratio`.
            Self::Ratio => Some(Unit::Other("ratio".to_owned())),
            Self::Celsius => Some(Unit::Celsius),
            Self::Watts => Some(Unit::Other("watts".to_owned())),
            Self::Hertz => Some(Unit::Other("hertz".to_owned())),
            Self::None => None,
        }
    }
}

fn ratio(percent: Option<f64>) -> Option<Reading> {
    percent.map(|p| Reading::Fraction(p / 100.0))
}

fn hertz(mhz: Option<u32>) -> Option<Reading> {
    mhz.map(|m| Reading::Whole(i64::from(m) * 1_000_000))
}

fn whole(n: Option<u32>) -> Option<Reading> {
    n.map(|n| Reading::Whole(i64::from(n)))
}

/// A device-labelled telemetry gauge: registered name (without its unit), help, unit, figure.
type TelemetryFamily = (
    &'static str,
    &'static str,
    TelemetryUnit,
    fn(&DeviceTelemetry) -> Option<Reading>,
);

/// What `hmn -a` shows of each device beyond memory. A figure the backend does not have (a fan
/// on an SXM module, a power limit the driver does not expose, a rate still warming up) has no
/// series.
const TELEMETRY_FIELDS: [TelemetryFamily; 12] = [
    (
        "hypomnesis_gpu_utilization",
        "Share of time the GPU's compute/graphics engines were busy over the driver's last sample period (NVML utilization.gpu, amdgpu gpu_busy_percent), 0 to 1.",
        TelemetryUnit::Ratio,
        |t| ratio(t.gpu_utilization_percent),
    ),
    (
        "hypomnesis_gpu_memory_bandwidth_utilization",
        "Share of time device memory was being read or written (NVML utilization.memory, amdgpu mem_busy_percent), 0 to 1; not how full it is.",
        TelemetryUnit::Ratio,
        |t| ratio(t.memory_utilization_percent),
    ),
    (
        "hypomnesis_gpu_encoder_utilization",
        "Video encoder utilization, 0 to 1.",
        TelemetryUnit::Ratio,
        |t| ratio(t.encoder_utilization_percent),
    ),
    (
        "hypomnesis_gpu_decoder_utilization",
        "Video decoder utilization, 0 to 1.",
        TelemetryUnit::Ratio,
        |t| ratio(t.decoder_utilization_percent),
    ),
    (
        "hypomnesis_gpu_temperature",
        "GPU core temperature (NVML GPU sensor, amdgpu edge).",
        TelemetryUnit::Celsius,
        |t| t.temperature_celsius.map(Reading::Fraction),
    ),
    (
        "hypomnesis_gpu_power",
        "Power draw.",
        TelemetryUnit::Watts,
        |t| t.power_watts.map(Reading::Fraction),
    ),
    (
        "hypomnesis_gpu_power_limit",
        "Enforced power limit.",
        TelemetryUnit::Watts,
        |t| t.power_limit_watts.map(Reading::Fraction),
    ),
    (
        "hypomnesis_gpu_sm_clock",
        "Graphics / shader (SM) clock.",
        TelemetryUnit::Hertz,
        |t| hertz(t.sm_clock_mhz),
    ),
    (
        "hypomnesis_gpu_memory_clock",
        "Memory clock.",
        TelemetryUnit::Hertz,
        |t| hertz(t.memory_clock_mhz),
    ),
    (
        "hypomnesis_gpu_fan_speed",
        "Fan speed, share of its maximum (may pass 1 on some NVIDIA boards).",
        TelemetryUnit::Ratio,
        |t| ratio(t.fan_percent),
    ),
    (
        "hypomnesis_gpu_pcie_link_generation",
        "Current PCIe link generation (it drops when the GPU idles).",
        TelemetryUnit::None,
        |t| whole(t.pcie_link_generation),
    ),
    (
        "hypomnesis_gpu_pcie_link_width",
        "Current PCIe link width, lanes.",
        TelemetryUnit::None,
        |t| whole(t.pcie_link_width),
    ),
];

/// The sample's families, in a fixed order: devices by index, processes by (GPU, PID). At most
/// one series per device and per process and device, so a scrape never has duplicates.
#[derive(Debug)]
struct SampleFamilies {
    sample: Sample,
    view: View,
    /// Pod and job labels (`--kubernetes`, `--job-mapping-dir`); empty without them.
    labelling: Labelling,
}

impl SampleFamilies {
    /// The labels of every per-device series (not of `hypomnesis_gpu_info`, which adds the
    /// rest of the identity): the device's, then its pod and job labels (`--kubernetes`,
    /// `--job-mapping-dir`).
    fn device_labels(&self, device: &GpuDeviceInfo) -> (DeviceLabels, &[(&'static str, String)]) {
        let own = DeviceLabels {
            gpu: device.index,
            uuid: device.uuid.clone().unwrap_or_default(),
            name: device.name.clone().unwrap_or_default(),
            vendor: vendor_name(device.vendor),
        };
        (own, self.labelling.device(device))
    }

    /// The labels of `hypomnesis_gpu_info`.
    fn device_info_labels(&self, device: &GpuDeviceInfo) -> DeviceInfoLabels {
        DeviceInfoLabels {
            gpu: device.index,
            uuid: device.uuid.clone().unwrap_or_default(),
            name: device.name.clone().unwrap_or_default(),
            vendor: vendor_name(device.vendor),
            pci_bus_id: device.pci_bus_id.clone().unwrap_or_default(),
            driver_version: device.driver_version.clone().unwrap_or_default(),
            source: device.source.as_str(),
            unified_memory: device.unified_memory,
        }
    }

    /// The labels of every per-process series: the process's, then its pod and job labels.
    fn process_labels(
        &self,
        process: &GpuProcessEntry,
    ) -> (ProcessLabels, &[(&'static str, String)]) {
        let own = ProcessLabels {
            gpu: process.device_index,
            pid: process.pid,
            process: process.name.clone().unwrap_or_default(),
            user: process.user.clone().unwrap_or_default(),
            kind: kind_name(process.kind),
        };
        (own, self.labelling.process(process))
    }

    /// The devices the view shows, by index, each once.
    fn devices(&self) -> Vec<&DeviceFrame> {
        let mut devices: Vec<&DeviceFrame> = self
            .sample
            .frame
            .devices
            .iter()
            .filter(|d| self.view.shows(d))
            .collect();
        devices.sort_by_key(|d| d.device.index);
        devices.dedup_by_key(|d| d.device.index);
        devices
    }

    /// The process rows of the devices the view shows, by (GPU, PID), each once; none when
    /// the view leaves processes out.
    fn processes(&self) -> Vec<&GpuProcessEntry> {
        if !self.view.processes {
            return Vec::new();
        }
        let mut rows: Vec<&GpuProcessEntry> = self
            .sample
            .frame
            .devices
            .iter()
            .filter(|d| self.view.shows(d))
            .flat_map(DeviceFrame::rows)
            .collect();
        rows.sort_by_key(|p| (p.device_index, p.pid));
        rows.dedup_by_key(|p| (p.device_index, p.pid));
        rows
    }
}

impl Collector for SampleFamilies {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let sample = &self.sample;
        let devices = self.devices();
        family(
            &mut encoder,
            "hypomnesis_gpu",
            "One series per GPU, value 1: identity labels to join on `gpu`.",
            None,
            MetricType::Info,
            devices.iter().map(|d| {
                (
                    self.device_info_labels(&d.device),
                    Info::new(NoLabels::default()),
                )
            }),
        )?;
        for (name, help, field) in DEVICE_FIELDS {
            byte_family(
                &mut encoder,
                name,
                help,
                devices
                    .iter()
                    .filter_map(|d| Some((self.device_labels(&d.device), field(&d.device)?))),
            )?;
        }
        for (name, help, unit, field) in TELEMETRY_FIELDS {
            family(
                &mut encoder,
                name,
                help,
                unit.unit().as_ref(),
                MetricType::Gauge,
                devices.iter().filter_map(|d| {
                    let reading = field(d.telemetry.as_ref()?)?;
                    Some((self.device_labels(&d.device), ConstGauge::new(reading)))
                }),
            )?;
        }
        mig_families(
            &mut encoder,
            sample
                .frame
                .devices
                .iter()
                .filter(|d| self.view.shows(d))
                .map(|d| &d.device),
        )?;

        let processes = self.processes();
        byte_family(
            &mut encoder,
            "hypomnesis_gpu_process_memory",
            "GPU memory a process holds on a device (VRAM on discrete GPUs), as the driver reports it; a DRM client shared by several processes counts for the one that started first, so sums count it once.",
            processes
                .iter()
                .filter_map(|p| Some((self.process_labels(p), p.counted_used_bytes()?))),
        )?;
        byte_family(
            &mut encoder,
            "hypomnesis_gpu_process_system_memory",
            "GPU buffers a process holds in system RAM for a device (amdgpu GTT, Intel system, PDH shared); a shared DRM client counts once, as for hypomnesis_gpu_process_memory_bytes.",
            processes
                .iter()
                .filter_map(|p| Some((self.process_labels(p), p.counted_system_bytes()?))),
        )?;
        family(
            &mut encoder,
            "hypomnesis_gpu_process_sm_utilization",
            "How busy a process kept the GPU's compute (SM) engines since the previous sample, 0 to 1 (NVML process utilization; absent on MIG, for other backends, and for a process without a new driver sample).",
            TelemetryUnit::Ratio.unit().as_ref(),
            MetricType::Gauge,
            processes.iter().filter_map(|p| {
                let reading = ratio(p.utilization_percent)?;
                Some((self.process_labels(p), ConstGauge::new(reading)))
            }),
        )?;

        let host = sample.frame.host.as_ref();
        let cgroup = host.and_then(|h| h.cgroup.as_ref());
        let scalars: [(&str, &str, Option<u64>); 8] = [
            (
                "hypomnesis_host_memory_total",
                "Installed RAM the OS manages (Linux MemTotal).",
                host.map(|h| h.total_bytes),
            ),
            (
                "hypomnesis_host_memory_available",
                "Memory available for new allocations without swapping (Linux MemAvailable).",
                host.and_then(|h| h.available_bytes),
            ),
            (
                "hypomnesis_host_swap_total",
                "Swap space (Linux SwapTotal, macOS vm.swapusage).",
                host.and_then(|h| h.swap_total_bytes),
            ),
            (
                "hypomnesis_host_swap_free",
                "Unused swap (Linux SwapFree).",
                host.and_then(|h| h.swap_free_bytes),
            ),
            (
                "hypomnesis_cgroup_memory_limit",
                "Tightest memory limit of the cgroup bounding hmn serve and its ancestors; absent when unlimited.",
                cgroup.and_then(|c| c.limit_bytes),
            ),
            (
                "hypomnesis_cgroup_memory_usage",
                "Memory use of the cgroup bounding hmn serve, page cache included.",
                cgroup.and_then(|c| c.usage_bytes),
            ),
            (
                "hypomnesis_cgroup_memory_peak",
                "Peak memory use of the cgroup bounding hmn serve (memory.peak, Linux 5.19+; v1 max_usage_in_bytes).",
                cgroup.and_then(|c| c.peak_bytes),
            ),
            (
                "process_resident_memory",
                "Resident memory of hmn serve itself.",
                sample.own_rss_bytes,
            ),
        ];
        for (name, help, value) in scalars {
            byte_family(
                &mut encoder,
                name,
                help,
                value.map(|v| (NoLabels::default(), v)),
            )?;
        }

        self.labelling.encode(&mut encoder)?;
        family(
            &mut encoder,
            "hypomnesis_scrape_duration",
            "How long the latest sampling pass took (driver, /proc and cgroup reads); scrapes of /metrics never wait for it.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
            [(
                NoLabels::default(),
                ConstGauge::new(sample.duration.as_secs_f64()),
            )],
        )
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct MigLabels {
    gpu: u32,
    gpu_instance: String,
    compute_instance: String,
    uuid: String,
}

/// A MIG-instance-labelled byte gauge: registered name (without `_bytes`), help, field.
type MigField = (
    &'static str,
    &'static str,
    fn(&hypomnesis::MigInstance) -> Option<u64>,
);

/// The memory of each MIG instance (`hmn fits` and the fleet view place allocations in them:
/// one cannot cross a GPU instance). A GPU instance's compute instances share its memory, so
/// they repeat its figures.
fn mig_families<'a>(
    encoder: &mut DescriptorEncoder,
    devices: impl Iterator<Item = &'a GpuDeviceInfo> + Clone,
) -> fmt::Result {
    let id = |v: Option<u32>| v.map_or(String::new(), |v| v.to_string());
    let mut seen = std::collections::BTreeSet::new();
    let instances: Vec<(MigLabels, &hypomnesis::MigInstance)> = devices
        .flat_map(|d| d.mig_instances.iter().map(move |m| (d.index, m)))
        .map(|(gpu, m)| {
            let labels = MigLabels {
                gpu,
                gpu_instance: id(m.gpu_instance_id),
                compute_instance: id(m.compute_instance_id),
                uuid: m.uuid.clone().unwrap_or_default(),
            };
            (labels, m)
        })
        .filter(|(labels, _)| seen.insert(labels.clone()))
        .collect();
    let fields: [MigField; 3] = [
        (
            "hypomnesis_gpu_mig_memory_total",
            "Memory of a MIG instance's GPU instance (NVIDIA MIG mode).",
            |m| m.total_bytes,
        ),
        (
            "hypomnesis_gpu_mig_memory_used",
            "Memory allocated in a MIG instance's GPU instance.",
            |m| m.used_bytes,
        ),
        (
            "hypomnesis_gpu_mig_memory_free",
            "Memory no context has allocated in a MIG instance's GPU instance: what an allocation there can get.",
            |m| m.free_bytes,
        ),
    ];
    for (name, help, field) in fields {
        byte_family(
            encoder,
            name,
            help,
            instances
                .iter()
                .filter_map(|(labels, m)| Some((labels.clone(), field(m)?))),
        )?;
    }
    Ok(())
}

/// Encodes one sample in both formats.
#[cfg(test)]
pub fn encode_sample(sample: Sample, view: View) -> Exposition {
    encode_labelled(sample, view, Labelling::default())
}

/// Encodes one sample in both formats, its series labelled by `labelling`.
pub fn encode_labelled(sample: Sample, view: View, labelling: Labelling) -> Exposition {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SampleFamilies {
        sample,
        view,
        labelling,
    }));
    let mut out = Exposition::default();
    // Writing into a String cannot fail.
    let _ = prometheus_text::encode(&mut out.prometheus, &registry);
    let _ = text::encode_registry(&mut out.openmetrics, &registry);
    out
}

/// Sampling errors by backend, counted by the follower and encoded by scrapes.
///
/// Backends: `nvml`, `nvidia-smi`, `drm`, `dxgi`, `pdh`, `metal`; `gpu` when the GPU layer
/// failed without naming one backend; `host` for host, cgroup and own-RSS figures.
///
/// Every backend has a series from the start, at 0: `increase()` and `rate()` need a sample
/// before the first error to see it (a series that appears at 1 looks like no increase).
#[derive(Debug)]
pub struct ErrorCounter(Mutex<BTreeMap<&'static str, u64>>);

/// The `backend` label values of [`ErrorCounter`]: every GPU backend, then the two that name
/// no single backend.
pub const ERROR_BACKENDS: [&str; 8] = [
    GpuQuerySource::Nvml.as_str(),
    GpuQuerySource::NvidiaSmi.as_str(),
    GpuQuerySource::Drm.as_str(),
    GpuQuerySource::Dxgi.as_str(),
    GpuQuerySource::Pdh.as_str(),
    GpuQuerySource::Metal.as_str(),
    "gpu",
    "host",
];

impl Default for ErrorCounter {
    fn default() -> Self {
        Self(Mutex::new(ERROR_BACKENDS.iter().map(|b| (*b, 0)).collect()))
    }
}

impl ErrorCounter {
    pub fn inc(&self, backend: &'static str) {
        *self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(backend)
            .or_default() += 1;
    }

    #[cfg(test)]
    pub fn get(&self, backend: &str) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(backend)
            .copied()
            .unwrap_or(0)
    }
}

/// What the health families read at scrape time.
#[derive(Debug)]
struct HealthState {
    /// The sample age in seconds, as `f64` bits, set just before each encoding.
    age_seconds: AtomicU64,
    /// `--interval`: how old a sample gets when all is well.
    interval: Duration,
    errors: ErrorCounter,
}

#[derive(Debug)]
struct HealthFamilies(Arc<HealthState>);

impl Collector for HealthFamilies {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let age = f64::from_bits(self.0.age_seconds.load(Ordering::Relaxed));
        family(
            &mut encoder,
            "hypomnesis_sample_age",
            "Seconds since the latest sampling pass finished (since hmn serve started, before the first); grows while a backend hangs.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
            [(NoLabels::default(), ConstGauge::new(age))],
        )?;
        family(
            &mut encoder,
            "hypomnesis_sample_interval",
            "How often hmn serve samples the machine (--interval): a sample age past about 3 intervals means sampling is stuck.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
            [(
                NoLabels::default(),
                ConstGauge::new(self.0.interval.as_secs_f64()),
            )],
        )?;
        let errors: Vec<_> = self
            .0
            .errors
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(backend, n)| (BackendLabels { backend }, ConstCounter::new(*n)))
            .collect();
        family(
            &mut encoder,
            "hypomnesis_sample_errors",
            "Sampling failures by backend: a query that returned an error, or a tick at which the previous pass was still waiting on that backend.",
            None,
            MetricType::Counter,
            errors,
        )?;
        family(
            &mut encoder,
            "hypomnesis_build",
            "Value 1, labelled with the version of hmn serving the metrics.",
            None,
            MetricType::Info,
            [(
                VersionLabels {
                    version: env!("CARGO_PKG_VERSION"),
                },
                Info::new(NoLabels::default()),
            )],
        )
    }
}

/// The families encoded at scrape time: sample age and interval, sampling errors, build
/// information.
#[derive(Debug)]
pub struct Health {
    registry: Registry,
    state: Arc<HealthState>,
}

impl Health {
    /// The health families of an exporter sampling every `interval`.
    pub fn new(interval: Duration) -> Self {
        let state = Arc::new(HealthState {
            age_seconds: AtomicU64::default(),
            interval,
            errors: ErrorCounter::default(),
        });
        let mut registry = Registry::default();
        registry.register_collector(Box::new(HealthFamilies(Arc::clone(&state))));
        Self { registry, state }
    }

    pub fn errors(&self) -> &ErrorCounter {
        &self.state.errors
    }

    /// Appends the health families, with `age` as the sample age, and ends an OpenMetrics
    /// exposition with `# EOF`.
    pub fn finish(&self, format: Format, age: Duration, out: &mut String) {
        self.state
            .age_seconds
            .store(age.as_secs_f64().to_bits(), Ordering::Relaxed);
        let _ = match format {
            Format::Prometheus => prometheus_text::encode(out, &self.registry),
            Format::OpenMetrics => {
                text::encode_registry(out, &self.registry).and_then(|()| text::encode_eof(out))
            }
        };
    }
}

/// A whole exposition: the sample part then the health part.
pub fn render(format: Format, sample: &Exposition, health: &Health, age: Duration) -> String {
    let part = sample.get(format);
    let mut out = String::with_capacity(part.len() + 1024);
    out.push_str(part);
    health.finish(format, age, &mut out);
    out
}

/// The names of every family (as they appear after `# TYPE`), for the docs test.
#[cfg(test)]
pub fn family_names(exposition: &str) -> Vec<String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypomnesis::{CgroupMemory, FrameRequest, GpuProcessListing, HostMemory};

    fn h100() -> GpuDeviceInfo {
        GpuDeviceInfo::builder()
            .index(0)
            .name("NVIDIA H100 80GB HBM3")
            .uuid("GPU-5a5c4d1e-1f9b-4a7d-9c1e-2b3f4a5b6c7d")
            .pci_bus_id("00000000:00:09.0")
            .driver_version("590.48.01")
            .total_bytes(85_520_809_984_u64)
            .reserved_bytes(502_267_904_u64)
            .free_bytes(64_238_911_488_u64)
            .used_bytes(20_780_679_168_u64)
            .build()
    }

    /// An APU: no UUID, a name needing escapes, no reserved figure, GTT figures.
    fn apu() -> GpuDeviceInfo {
        GpuDeviceInfo::builder()
            .index(1)
            .name("AMD Radeon \"780M\" \\ iGPU")
            .vendor(GpuVendor::Amd)
            .source(GpuQuerySource::Drm)
            .total_bytes(536_870_912_u64)
            .used_bytes(268_435_456_u64)
            .free_bytes(268_435_456_u64)
            .system_total_bytes(33_554_432_000_u64)
            .system_used_bytes(1_073_741_824_u64)
            .unified_memory(true)
            // The cgroup's room (host() below) binds before GTT and host available.
            .budget_bytes(29_957_607_424_u64)
            .budget_basis(hypomnesis::BudgetBasis::CgroupLimit)
            .unavailable(
                hypomnesis::DeviceField::ReservedBytes,
                "amdgpu has no reserved figure",
            )
            .build()
    }

    fn processes() -> Vec<GpuProcessEntry> {
        vec![
            GpuProcessEntry::builder(4_011_345)
                .name("gpu_burn")
                .user("alice")
                .used_bytes(16_452_157_440_u64)
                .kind(GpuProcessKind::Compute)
                .build(),
            GpuProcessEntry::builder(4_012_001)
                .name("训练脚本")
                .user("4242")
                .used_bytes(4_294_967_296_u64)
                .kind(GpuProcessKind::ComputeAndGraphics)
                .build(),
            // Unreadable: no name, no user, no figure from the driver.
            GpuProcessEntry::builder(77).build(),
            GpuProcessEntry::builder(3_100)
                .name("ollama")
                .user("ollama")
                .device_index(1)
                .source(GpuQuerySource::Drm)
                .used_bytes(104_857_600_u64)
                .system_bytes(2_147_483_648_u64)
                .kind(GpuProcessKind::Compute)
                .build(),
        ]
    }

    fn host() -> HostMemory {
        let mut host = HostMemory::for_test(67_108_864_000);
        host.available_bytes = Some(33_554_432_000);
        host.swap_total_bytes = Some(0);
        host.swap_free_bytes = Some(0);
        let mut cgroup = CgroupMemory::for_test("/job");
        cgroup.limit_bytes = Some(51_539_607_552);
        cgroup.usage_bytes = Some(21_582_000_128);
        cgroup.peak_bytes = Some(22_000_000_000);
        host.cgroup = Some(cgroup);
        host
    }

    /// A device of a frame, with its process listing.
    fn device(info: GpuDeviceInfo, rows: Vec<GpuProcessEntry>) -> DeviceFrame {
        let mut device = DeviceFrame::new(info);
        let mut listing = GpuProcessListing::default();
        listing.rows = rows;
        device.processes = Some(listing);
        device
    }

    /// The H100 with its three processes, the APU with its one, and the host.
    fn frame() -> Frame {
        let (on_apu, on_h100) = processes().into_iter().partition(|p| p.device_index == 1);
        let mut frame = Frame::empty(FrameRequest::DEVICES.with_processes(true, false));
        frame.devices = vec![device(h100(), on_h100), device(apu(), on_apu)];
        frame.host = Some(host());
        frame
    }

    /// An H100 under load, every figure known but the fan (an SXM module has none).
    fn h100_telemetry() -> DeviceTelemetry {
        let mut t = DeviceTelemetry::empty(0, GpuQuerySource::Nvml);
        t.gpu_utilization_percent = Some(87.0);
        t.memory_utilization_percent = Some(41.0);
        t.encoder_utilization_percent = Some(0.0);
        t.decoder_utilization_percent = Some(12.0);
        t.temperature_celsius = Some(64.0);
        t.power_watts = Some(412.345);
        t.power_limit_watts = Some(700.0);
        t.sm_clock_mhz = Some(1_755);
        t.memory_clock_mhz = Some(2_619);
        t.pcie_link_generation = Some(5);
        t.pcie_link_width = Some(16);
        t
    }

    /// An APU whose driver gives busy time and temperature only; the memory busy figure is
    /// still warming up.
    fn apu_telemetry() -> DeviceTelemetry {
        let mut t = DeviceTelemetry::empty(1, GpuQuerySource::Drm);
        t.gpu_utilization_percent = Some(5.0);
        t.temperature_celsius = Some(52.5);
        t.fan_percent = Some(40.0);
        t.mark_unavailable(
            hypomnesis::TelemetryField::MemoryUtilizationPercent,
            "warming up: needs a second reading",
        );
        t
    }

    /// [`frame`] with telemetry on both devices, and `gpu_burn`'s SM utilization.
    fn frame_with_telemetry() -> Frame {
        let mut frame = frame();
        frame.devices[0].telemetry = Some(h100_telemetry());
        frame.devices[1].telemetry = Some(apu_telemetry());
        let rows = &mut frame.devices[0].processes.as_mut().unwrap().rows;
        rows[0].utilization_percent = Some(85.0);
        frame
    }

    fn sample_of(frame: Frame) -> Sample {
        Sample {
            frame: Arc::new(frame),
            own_rss_bytes: Some(6_291_456),
            duration: Duration::from_micros(1_250),
        }
    }

    fn encode(frame: Frame) -> Exposition {
        encode_sample(sample_of(frame), View::default())
    }

    fn health_with_errors() -> Health {
        let health = Health::new(Duration::from_secs(5));
        health.errors().inc("nvml");
        for _ in 0..3 {
            health.errors().inc("host");
        }
        health
    }

    fn full(format: Format) -> String {
        render(
            format,
            &encode(frame_with_telemetry()),
            &health_with_errors(),
            Duration::from_millis(2_500),
        )
        .replace(env!("CARGO_PKG_VERSION"), "[version]")
    }

    #[test]
    fn prometheus_text_exposition_of_a_fixed_sample() {
        insta::assert_snapshot!("prometheus_text", full(Format::Prometheus));
    }

    #[test]
    fn openmetrics_exposition_of_a_fixed_sample() {
        insta::assert_snapshot!("openmetrics", full(Format::OpenMetrics));
    }

    #[test]
    fn every_backend_has_an_error_series_at_zero_before_its_first_error() {
        let text = render(
            Format::Prometheus,
            &Exposition::default(),
            &Health::new(Duration::from_secs(5)),
            Duration::ZERO,
        );
        for backend in ERROR_BACKENDS {
            assert!(
                text.contains(&format!(
                    "hypomnesis_sample_errors_total{{backend=\"{backend}\"}} 0\n"
                )),
                "{backend}:\n{text}"
            );
        }
    }

    #[test]
    fn openmetrics_ends_with_one_eof_and_prometheus_text_has_none() {
        let om = full(Format::OpenMetrics);
        assert!(om.ends_with("# EOF\n"));
        assert_eq!(om.matches("# EOF").count(), 1);
        assert!(!full(Format::Prometheus).contains("# EOF"));
    }

    #[test]
    fn unknown_figures_are_absent_never_zero() {
        let text = full(Format::Prometheus);
        // The APU has no reserved figure; the H100 has no GTT figures.
        assert!(!text.contains("hypomnesis_gpu_memory_reserved_bytes{gpu=\"1\""));
        assert!(!text.contains("hypomnesis_gpu_system_memory_used_bytes{gpu=\"0\""));
        // pid 77 has no figure: no series at all.
        assert!(!text.contains("pid=\"77\""));
        // Unlimited cgroup, no cgroup peak file: no series, and no family without series.
        let mut unlimited = frame();
        let mut cgroup = CgroupMemory::for_test("/job");
        cgroup.usage_bytes = Some(1);
        unlimited.host.as_mut().unwrap().cgroup = Some(cgroup);
        let text = encode(unlimited).prometheus;
        assert!(!text.contains("hypomnesis_cgroup_memory_limit_bytes"));
        assert!(!text.contains("hypomnesis_cgroup_memory_peak_bytes"));
        assert!(text.contains("\nhypomnesis_cgroup_memory_usage_bytes 1\n"));
    }

    /// `hmn ps` lists every holder of a shared DRM client with its memory; the exporter's
    /// series are summed by PromQL (`sum by (gpu)`), so the client counts for one holder.
    #[test]
    fn a_shared_drm_client_is_exported_once_so_sums_count_it_once() {
        let client = hypomnesis::SharedClient::new(
            Some(7),
            vec![3_100, 3_101],
            3_100,
            Some(104_857_600),
            Some(2_147_483_648),
        );
        // The APU's ollama row of `processes()`, held by a parent and its child.
        let holder = |pid: u32| {
            let mut row = processes()[3].clone();
            row.pid = pid;
            row.shared_clients = vec![client.clone()];
            row
        };
        let mut frame = frame();
        frame.devices[1].processes.as_mut().unwrap().rows = vec![holder(3_100), holder(3_101)];
        let text = encode(frame).get(Format::Prometheus).to_owned();
        let value = |family: &str, pid: u32| {
            text.lines()
                .find(|l| l.starts_with(family) && l.contains(&format!("pid=\"{pid}\"")))
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_owned)
        };
        let vram = "hypomnesis_gpu_process_memory_bytes{";
        let gtt = "hypomnesis_gpu_process_system_memory_bytes{";
        assert_eq!(value(vram, 3_100).as_deref(), Some("104857600"), "{text}");
        assert_eq!(value(vram, 3_101).as_deref(), Some("0"), "{text}");
        assert_eq!(value(gtt, 3_100).as_deref(), Some("2147483648"), "{text}");
        assert_eq!(value(gtt, 3_101).as_deref(), Some("0"), "{text}");
    }

    #[test]
    fn process_families_are_absent_when_switched_off() {
        let exposition = encode_sample(
            sample_of(frame()),
            View {
                processes: false,
                device: None,
            },
        );
        for format in [Format::Prometheus, Format::OpenMetrics] {
            assert!(!exposition.get(format).contains("hypomnesis_gpu_process"));
            assert!(!exposition.get(format).contains("gpu_burn"));
        }
    }

    #[test]
    fn series_are_ordered_and_never_duplicated() {
        let mut shuffled = frame();
        for d in &mut shuffled.devices {
            d.processes.as_mut().unwrap().rows.reverse();
        }
        let rows = &mut shuffled.devices[0].processes.as_mut().unwrap().rows;
        rows.push(rows[0].clone());
        shuffled.devices.reverse();
        shuffled.devices.push(frame().devices.remove(0));
        let text = encode(shuffled).prometheus;
        assert_eq!(text, encode(frame()).prometheus);
        assert_eq!(text.matches("pid=\"3100\"").count(), 2, "{text}");
    }

    #[test]
    fn a_device_view_shows_that_gpu_and_only_its_processes() {
        let view = View {
            processes: true,
            device: Some(1),
        };
        let text = encode_sample(sample_of(frame()), view).prometheus;
        assert!(
            text.contains("hypomnesis_gpu_memory_used_bytes{gpu=\"1\""),
            "{text}"
        );
        assert!(text.contains("pid=\"3100\""), "{text}");
        assert!(!text.contains("gpu=\"0\""), "{text}");
        assert!(!text.contains("gpu_burn"), "{text}");
        let none = encode_sample(
            sample_of(frame()),
            View {
                device: Some(3),
                ..view
            },
        )
        .prometheus;
        assert!(!none.contains("{gpu="), "{none}");
        assert!(none.contains("hypomnesis_host_memory_total_bytes 67108864000"));
    }

    #[test]
    fn without_a_gpu_only_host_and_own_figures_are_exported() {
        let mut frame = Frame::empty(FrameRequest::DEVICES.with_processes(true, false));
        frame.host = Some(host());
        let text = encode_sample(
            Sample {
                frame: Arc::new(frame),
                own_rss_bytes: None,
                duration: Duration::ZERO,
            },
            View::default(),
        )
        .prometheus;
        assert!(!text.contains("{gpu="));
        assert!(text.contains("hypomnesis_host_memory_total_bytes 67108864000"));
        assert!(text.contains("hypomnesis_scrape_duration_seconds 0.0"));
    }

    #[test]
    fn sample_age_is_set_at_every_render() {
        let exposition = encode(frame());
        let health = health_with_errors();
        let young = render(Format::Prometheus, &exposition, &health, Duration::ZERO);
        let old = render(
            Format::Prometheus,
            &exposition,
            &health,
            Duration::from_secs(90),
        );
        assert!(
            young.contains("\nhypomnesis_sample_age_seconds 0.0\n"),
            "{young}"
        );
        assert!(
            old.contains("\nhypomnesis_sample_age_seconds 90.0\n"),
            "{old}"
        );
    }

    /// The lines of `text` that start with `family{`.
    fn series<'t>(text: &'t str, family: &str) -> Vec<&'t str> {
        text.lines()
            .filter(|l| l.starts_with(&format!("{family}{{")))
            .collect()
    }

    const H100: &str = r#"gpu="0",uuid="GPU-5a5c4d1e-1f9b-4a7d-9c1e-2b3f4a5b6c7d",name="NVIDIA H100 80GB HBM3",vendor="nvidia""#;

    #[test]
    fn telemetry_is_exported_per_device_in_base_units_and_ratios() {
        let text = encode(frame_with_telemetry()).prometheus;
        for (family, value) in [
            ("hypomnesis_gpu_utilization_ratio", "0.87"),
            ("hypomnesis_gpu_memory_bandwidth_utilization_ratio", "0.41"),
            ("hypomnesis_gpu_encoder_utilization_ratio", "0.0"),
            ("hypomnesis_gpu_decoder_utilization_ratio", "0.12"),
            ("hypomnesis_gpu_temperature_celsius", "64.0"),
            ("hypomnesis_gpu_power_watts", "412.345"),
            ("hypomnesis_gpu_power_limit_watts", "700.0"),
            ("hypomnesis_gpu_sm_clock_hertz", "1755000000"),
            ("hypomnesis_gpu_memory_clock_hertz", "2619000000"),
            ("hypomnesis_gpu_pcie_link_generation", "5"),
            ("hypomnesis_gpu_pcie_link_width", "16"),
        ] {
            let line = format!("{family}{{{H100}}} {value}");
            assert_eq!(
                series(&text, family).first(),
                Some(&line.as_str()),
                "{text}"
            );
        }
        assert!(
            text.contains("# TYPE hypomnesis_gpu_temperature_celsius gauge\n"),
            "{text}"
        );
        let om = encode(frame_with_telemetry()).openmetrics;
        for unit_line in [
            "# UNIT hypomnesis_gpu_utilization_ratio ratio\n",
            "# UNIT hypomnesis_gpu_temperature_celsius celsius\n",
            "# UNIT hypomnesis_gpu_power_watts watts\n",
            "# UNIT hypomnesis_gpu_sm_clock_hertz hertz\n",
        ] {
            assert!(om.contains(unit_line), "{unit_line}{om}");
        }
    }

    #[test]
    fn telemetry_a_backend_does_not_have_has_no_series_never_zero() {
        let text = encode(frame_with_telemetry()).prometheus;
        // The H100 has no fan; the APU only busy time, temperature and fan.
        assert!(
            series(&text, "hypomnesis_gpu_fan_speed_ratio")
                .iter()
                .all(|l| !l.contains(H100))
        );
        assert_eq!(
            series(&text, "hypomnesis_gpu_fan_speed_ratio"),
            [
                r#"hypomnesis_gpu_fan_speed_ratio{gpu="1",uuid="",name="AMD Radeon \"780M\" \\ iGPU",vendor="amd"} 0.4"#
            ]
        );
        for family in [
            "hypomnesis_gpu_memory_bandwidth_utilization_ratio",
            "hypomnesis_gpu_power_watts",
            "hypomnesis_gpu_power_limit_watts",
            "hypomnesis_gpu_sm_clock_hertz",
            "hypomnesis_gpu_pcie_link_width",
        ] {
            assert_eq!(series(&text, family).len(), 1, "{family}:\n{text}");
        }
        assert_eq!(series(&text, "hypomnesis_gpu_temperature_celsius").len(), 2);

        // A frame read without telemetry (or whose telemetry failed): no telemetry family.
        let without = encode(frame()).prometheus;
        for (name, ..) in TELEMETRY_FIELDS {
            assert!(!without.contains(name), "{name}:\n{without}");
        }
        assert!(!without.contains("hypomnesis_gpu_process_sm_utilization"));
    }

    #[test]
    fn process_sm_utilization_is_a_ratio_and_absent_without_a_new_sample() {
        let text = encode(frame_with_telemetry()).prometheus;
        assert_eq!(
            series(&text, "hypomnesis_gpu_process_sm_utilization_ratio"),
            [
                r#"hypomnesis_gpu_process_sm_utilization_ratio{gpu="0",pid="4011345",process="gpu_burn",user="alice",kind="compute"} 0.85"#
            ],
            "{text}"
        );
        let hidden = encode_sample(
            sample_of(frame_with_telemetry()),
            View {
                processes: false,
                device: None,
            },
        );
        assert!(!hidden.prometheus.contains("sm_utilization"));
    }

    #[test]
    fn the_sampling_interval_is_exported_beside_the_sample_age() {
        let text = render(
            Format::Prometheus,
            &Exposition::default(),
            &Health::new(Duration::from_millis(2_500)),
            Duration::from_secs(9),
        );
        assert!(
            text.contains("\nhypomnesis_sample_interval_seconds 2.5\n"),
            "{text}"
        );
        assert!(
            text.contains("\nhypomnesis_sample_age_seconds 9.0\n"),
            "{text}"
        );
    }

    #[test]
    fn mig_instances_are_exported_with_their_gpu_and_compute_instance() {
        let mut a100 = h100();
        let mut first = hypomnesis::MigInstance::for_test(
            1,
            0,
            Some((42_949_672_960, 40_000_000_000, 2_949_672_960)),
        );
        first.uuid = Some("MIG-a".to_owned());
        // NVML would not say the compute instance.
        let mut second =
            hypomnesis::MigInstance::for_test(2, 0, Some((21_474_836_480, 1_024, 21_474_835_456)));
        second.compute_instance_id = None;
        a100.mig_instances = vec![first.clone(), second, first];
        let mut frame = frame();
        frame.devices[0] = device(a100, Vec::new());
        let text = encode(frame).prometheus;
        assert!(text.contains("\nhypomnesis_gpu_mig_memory_free_bytes{gpu=\"0\",gpu_instance=\"1\",compute_instance=\"0\",uuid=\"MIG-a\"} 40000000000\n"), "{text}");
        assert!(text.contains("\nhypomnesis_gpu_mig_memory_total_bytes{gpu=\"0\",gpu_instance=\"2\",compute_instance=\"\",uuid=\"\"} 21474836480\n"), "{text}");
        assert!(
            text.contains("hypomnesis_gpu_mig_memory_used_bytes{gpu=\"0\",gpu_instance=\"2\""),
            "{text}"
        );
        let docs = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/metrics.md"),
        )
        .unwrap();
        for name in family_names(&text) {
            assert!(
                docs.contains(&format!("`{name}`")),
                "docs/metrics.md does not document `{name}`"
            );
        }
        // No MIG: no family.
        assert!(!encode(self::frame()).prometheus.contains("mig"));
    }

    #[test]
    fn every_family_is_documented_in_docs_metrics_md() {
        let docs = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/metrics.md"),
        )
        .unwrap();
        for name in family_names(&full(Format::Prometheus)) {
            assert!(
                docs.contains(&format!("`{name}`")),
                "docs/metrics.md does not document `{name}`"
            );
        }
    }
}

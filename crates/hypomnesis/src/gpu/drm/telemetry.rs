//! How busy, hot and power-hungry a DRM GPU is, from sysfs, hwmon and fdinfo.
//!
//! No vendor library and no privilege: every figure is a file the kernel publishes.
//!
//! | figure | amdgpu | Intel xe / i915 | others |
//! |---|---|---|---|
//! | GPU utilization | `gpu_busy_percent` | fdinfo `drm-engine-*` / `drm-cycles-*` deltas | fdinfo deltas |
//! | memory utilization | `mem_busy_percent` (discrete) | — | — |
//! | temperature | hwmon `temp*_input` labelled `edge`, else `junction`, else the first | hwmon (xe on 6.15+: `pkg`) | hwmon |
//! | power | hwmon `power1_average`, else `power1_input` | hwmon `energy*_input` deltas (`card` channel first) | hwmon |
//! | power limit | hwmon `power1_cap` | hwmon `power1_max` (`card` first) | hwmon |
//! | clocks | `pp_dpm_sclk` / `pp_dpm_mclk` (the `*` level) | i915 `cardN/gt_act_freq_mhz`, xe `tile0/gt0/freq0/act_freq` | — |
//! | fan | hwmon `pwm1` (of `pwm1_max`, else 255), else `fan1_input` of `fan1_max` | — | — |
//! | PCIe link | `current_link_speed` / `current_link_width` | same | same |
//!
//! Rates need two readings: the previous energy reading and engine sample of each device are
//! kept here (behind a mutex, per device key), so the first call reports power from energy
//! and engine utilization as "warming up" and later calls give the average since the
//! previous call. A counter that went backwards (driver reset, wrap) gives no figure for that
//! call — "warming up" again — and never a negative one. Engine utilization covers the
//! clients that could be read: another user's processes are invisible without root.
//!
//! Cost: a planner samples every GPU often, so a sample avoids re-discovering what has not
//! changed. Each device's files are opened once and re-read with `pread` ([`DeviceFiles`]);
//! the engine counters come from the DRM clients' fdinfo files kept open after a full scan of
//! `/proc`, which is repeated once a second ([`FULL_SCAN_NS`]); the backend finds devices
//! from a list it re-reads only when `/sys/class/drm` changes. Four devices cost about
//! 100 µs (`benches/drm.rs`).

use std::cell::{OnceCell, RefCell};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::fdinfo::{KeptClients, Scan, rescan_kept, scan_all_keeping};
use super::parse::{ClientId, parse_sysfs_u64};
use super::sensors::{
    EngineCounters, EngineSample, engine_utilization, fan_percent_from_pwm, fan_percent_from_rpm,
    microwatts_to_watts, millicelsius_to_celsius, parse_dpm_current_mhz, parse_link_generation,
    parse_link_width, parse_sysfs_i64, power_from_energy,
};
use crate::snapshot::GpuQuerySource;
use crate::telemetry::DeviceTelemetry;
use crate::unavailable::TelemetryField;

const WARMING_UP: &str = "warming up: needs a second reading";

/// Where the time between two readings comes from.
#[derive(Debug, Clone)]
pub(crate) enum Clock {
    /// The monotonic clock.
    Monotonic(Instant),
    /// A clock the tests set (nanoseconds).
    #[cfg(test)]
    Manual(std::sync::Arc<std::sync::atomic::AtomicU64>),
}

impl Clock {
    fn now_ns(&self) -> u64 {
        match self {
            Self::Monotonic(start) => u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX),
            #[cfg(test)]
            Self::Manual(ns) => ns.load(std::sync::atomic::Ordering::SeqCst),
        }
    }
}

/// What one device's previous call read.
#[derive(Debug, Default)]
struct Previous {
    /// hwmon energy (µJ) and when it was read (ns).
    energy: Option<(u64, u64)>,
    /// fdinfo engine counters and when they were read (ns).
    engines: Option<(EngineSample<ClientId>, u64)>,
}

/// The telemetry state of one DRM backend: previous readings per device key.
#[derive(Debug)]
pub(crate) struct TelemetryState {
    clock: Clock,
    previous: Mutex<HashMap<String, Previous>>,
    /// The latest fdinfo scan and when it was taken (ns), shared by the devices of one
    /// sample: a scan reads every process, so two Intel GPUs sampled together scan once.
    last_scan: Mutex<Option<(u64, Arc<Scan>)>>,
    /// Each device's open sysfs files, by device key.
    files: Mutex<HashMap<String, DeviceFiles>>,
    /// The DRM clients' fdinfo files the latest full scan kept open, and when it was taken
    /// (ns): read again until [`FULL_SCAN_NS`] has passed.
    kept: Mutex<Option<(u64, KeptClients)>>,
}

/// How long the clients of one full fdinfo scan serve engine samples (read again through
/// their kept-open fdinfo files) before every process is walked again. A client opened in
/// between joins the figure at the next full scan, so utilization may read low for up to
/// this long after a new GPU program starts.
const FULL_SCAN_NS: u64 = 1_000_000_000;

/// How old a scan may be and still serve another device of the same sample.
const SCAN_REUSE_NS: u64 = 100_000_000;

impl TelemetryState {
    pub(crate) fn new(clock: Clock) -> Self {
        Self {
            clock,
            previous: Mutex::new(HashMap::new()),
            last_scan: Mutex::new(None),
            files: Mutex::new(HashMap::new()),
            kept: Mutex::new(None),
        }
    }

    /// A scan taken after `after_ns` (the device's previous sample) and under
    /// [`SCAN_REUSE_NS`] old, else a new one; with the time it was taken.
    fn scan(
        &self,
        after_ns: Option<u64>,
        proc_root: &Path,
        sys_root: &Path,
    ) -> crate::error::Result<(u64, Arc<Scan>)> {
        let mut last = self
            .last_scan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now_ns = self.clock.now_ns();
        if let Some((at, scan)) = last.as_ref()
            && after_ns.is_none_or(|after| *at > after)
            && now_ns.saturating_sub(*at) < SCAN_REUSE_NS
        {
            return Ok((*at, Arc::clone(scan)));
        }
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let scan = match kept.as_mut() {
            Some((full_at, clients)) if now_ns.saturating_sub(*full_at) < FULL_SCAN_NS => {
                rescan_kept(clients, sys_root)
            }
            _ => {
                let (scan, clients) = scan_all_keeping(proc_root, sys_root)?;
                *kept = clients.map(|clients| (now_ns, clients));
                scan
            }
        };
        let scan = Arc::new(scan);
        *last = Some((now_ns, Arc::clone(&scan)));
        Ok((now_ns, scan))
    }

    /// Closes every device's kept files (the device set changed); they are opened again on
    /// the next sample.
    pub(crate) fn forget_files(&self) {
        self.files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    fn with_previous<T>(&self, key: &str, f: impl FnOnce(&mut Previous) -> T) -> T {
        let mut map = self
            .previous
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(map.entry(key.to_owned()).or_default())
    }
}

/// Where a DRM device's files are.
#[derive(Debug, Clone)]
pub(crate) struct CardPaths {
    /// Key fdinfo rows carry (see [`super::sysfs::DrmDevice::key`]).
    pub(crate) key: String,
    /// `<sys>/class/drm/cardN/device`.
    pub(crate) dir: PathBuf,
    /// `<sys>/class/drm/cardN`.
    pub(crate) card: PathBuf,
    /// Kernel driver.
    pub(crate) driver: Option<String>,
}

/// One hwmon directory: its file names and channel labels, listed once per [`DeviceFiles`].
#[derive(Debug)]
struct Hwmon {
    dir: PathBuf,
    files: HashSet<String>,
    /// `<kind>N_label` file name → its text, trimmed and lower-cased.
    labels: HashMap<String, String>,
}

impl Hwmon {
    /// The first `hwmon*` directory under `<device>/hwmon`.
    fn find(device: &Path) -> Option<Self> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(device.join("hwmon"))
            .ok()?
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with("hwmon"))
            })
            .map(|e| e.path())
            .collect();
        dirs.sort();
        let dir = dirs.into_iter().next()?;
        let files: HashSet<String> = std::fs::read_dir(&dir)
            .ok()?
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect();
        // Labels name channels and do not change while the driver is bound.
        let labels = files
            .iter()
            .filter(|f| f.ends_with("_label"))
            .filter_map(|f| {
                let text = std::fs::read_to_string(dir.join(f)).ok()?;
                Some((f.clone(), text.trim().to_ascii_lowercase()))
            })
            .collect();
        Some(Self { dir, files, labels })
    }

    fn has(&self, name: &str) -> bool {
        self.files.contains(name)
    }

    fn u64(&self, files: &DeviceFiles, name: &str) -> Option<u64> {
        if !self.has(name) {
            return None;
        }
        files.u64(&self.dir.join(name))
    }

    fn label(&self, kind: &str, n: u32) -> Option<&str> {
        self.labels
            .get(&format!("{kind}{n}_label"))
            .map(String::as_str)
    }

    /// The channel numbers with a `<kind>N<suffix>` file, ascending.
    fn channels(&self, kind: &str, suffix: &str) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .files
            .iter()
            .filter_map(|f| f.strip_prefix(kind)?.strip_suffix(suffix)?.parse().ok())
            .collect();
        out.sort_unstable();
        out
    }

    /// The channel of `kind` whose label comes first in `preferred`, else the lowest.
    fn pick(&self, kind: &str, suffix: &str, preferred: &[&str]) -> Option<u32> {
        let channels = self.channels(kind, suffix);
        preferred
            .iter()
            .find_map(|want| {
                channels
                    .iter()
                    .find(|&&n| self.label(kind, n) == Some(*want))
                    .copied()
            })
            .or_else(|| channels.first().copied())
    }
}

/// How long a device's open files and hwmon listing serve before they are opened again, so
/// files that appear later (a driver finishing its probe, a hwmon registered late) are
/// found.
const FILES_REFRESH_NS: u64 = 5_000_000_000;

/// One device's sysfs files, opened on first use and re-read with `pread` at offset 0
/// (sysfs regenerates an attribute's text on every read from the start), so a figure costs
/// one system call per sample instead of `open` + `fstat` + `read` + `read` + `close`. A
/// file that does not exist is remembered as absent until the next refresh
/// ([`FILES_REFRESH_NS`]). A read that fails (the device went away) drops the file, and the
/// next sample opens it again.
#[derive(Debug)]
pub(crate) struct DeviceFiles {
    opened_ns: u64,
    files: RefCell<HashMap<PathBuf, Option<File>>>,
    /// The hwmon listing, made on first use.
    hwmon: OnceCell<Option<Hwmon>>,
}

impl DeviceFiles {
    fn new(now_ns: u64) -> Self {
        Self {
            opened_ns: now_ns,
            files: RefCell::new(HashMap::new()),
            hwmon: OnceCell::new(),
        }
    }

    fn text(&self, path: &Path) -> Option<String> {
        let mut files = self.files.borrow_mut();
        let file = files
            .entry(path.to_owned())
            .or_insert_with(|| File::open(path).ok())
            .as_ref()?;
        let mut bytes = Vec::new();
        let mut chunk = [0_u8; 4096];
        loop {
            let offset = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
            match file.read_at(&mut chunk, offset) {
                Ok(0) => break,
                Ok(read) => {
                    bytes.extend_from_slice(chunk.get(..read).unwrap_or_default());
                    // sysfs and procfs fill a read whenever more text remains.
                    if read < chunk.len() {
                        break;
                    }
                }
                Err(_) => {
                    files.remove(path);
                    return None;
                }
            }
        }
        String::from_utf8(bytes).ok()
    }

    fn u64(&self, path: &Path) -> Option<u64> {
        self.text(path).and_then(|t| parse_sysfs_u64(&t))
    }

    /// The hwmon directory of `device` (this device's directory), listed once.
    fn hwmon(&self, device: &Path) -> Option<&Hwmon> {
        self.hwmon.get_or_init(|| Hwmon::find(device)).as_ref()
    }
}

/// Reads device `card`'s telemetry (`index` as the dispatcher numbers it).
pub(crate) fn read_telemetry(
    state: &TelemetryState,
    card: &CardPaths,
    index: u32,
    proc_root: &Path,
    sys_root: &Path,
) -> DeviceTelemetry {
    let mut t = DeviceTelemetry::empty(index, GpuQuerySource::Drm);
    let driver = card.driver.as_deref().unwrap_or("this DRM driver");
    let dir = &card.dir;
    let now_ns = state.clock.now_ns();
    let mut all_files = state
        .files
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let files = all_files
        .entry(card.key.clone())
        .or_insert_with(|| DeviceFiles::new(now_ns));
    if now_ns.saturating_sub(files.opened_ns) >= FILES_REFRESH_NS {
        *files = DeviceFiles::new(now_ns);
    }
    let files: &DeviceFiles = files;
    let hwmon = files.hwmon(dir);
    let no_hwmon = format!(
        "{driver} exposes no hwmon sensors for this GPU ({}/hwmon is missing or empty)",
        dir.display()
    );

    // Utilization.
    match files.u64(&dir.join("gpu_busy_percent")) {
        Some(percent) if percent <= 100 => t.gpu_utilization_percent = Some(percent_f64(percent)),
        _ => engine_figure(state, card, &mut t, proc_root, sys_root),
    }
    match files.u64(&dir.join("mem_busy_percent")) {
        Some(percent) if percent <= 100 => {
            t.memory_utilization_percent = Some(percent_f64(percent));
        }
        _ => t.mark_unavailable(
            TelemetryField::MemoryUtilizationPercent,
            format!("{driver} publishes no mem_busy_percent for this GPU (integrated, or not AMD)"),
        ),
    }
    for field in [
        TelemetryField::EncoderUtilizationPercent,
        TelemetryField::DecoderUtilizationPercent,
    ] {
        t.mark_unavailable(
            field,
            format!("{driver} publishes no video-engine utilization in sysfs"),
        );
    }

    // Sensors.
    match hwmon {
        Some(hwmon) => {
            read_temperature(files, hwmon, &mut t);
            read_power(state, &card.key, files, hwmon, &mut t);
            read_fan(files, hwmon, &mut t);
        }
        None => {
            for field in [
                TelemetryField::TemperatureCelsius,
                TelemetryField::PowerWatts,
                TelemetryField::PowerLimitWatts,
                TelemetryField::FanPercent,
            ] {
                t.mark_unavailable(field, no_hwmon.clone());
            }
        }
    }

    // Clocks.
    let sclk = files
        .text(&dir.join("pp_dpm_sclk"))
        .and_then(|text| parse_dpm_current_mhz(&text))
        .or_else(|| {
            files
                .u64(&card.card.join("gt_act_freq_mhz"))
                .and_then(to_u32)
        })
        .or_else(|| {
            files
                .u64(&dir.join("tile0/gt0/freq0/act_freq"))
                .and_then(to_u32)
        });
    t.sm_clock_mhz = sclk;
    if sclk.is_none() {
        t.mark_unavailable(
            TelemetryField::SmClockMhz,
            format!(
                "{driver} publishes no current graphics clock here (pp_dpm_sclk, \
                 gt_act_freq_mhz, tile0/gt0/freq0/act_freq)"
            ),
        );
    }
    t.memory_clock_mhz = files
        .text(&dir.join("pp_dpm_mclk"))
        .and_then(|text| parse_dpm_current_mhz(&text));
    if t.memory_clock_mhz.is_none() {
        t.mark_unavailable(
            TelemetryField::MemoryClockMhz,
            format!("{driver} publishes no current memory clock (pp_dpm_mclk) for this GPU"),
        );
    }

    // PCIe link.
    let link = |file: &str| files.text(&dir.join(file));
    t.pcie_link_generation = link("current_link_speed").and_then(|s| parse_link_generation(&s));
    t.pcie_link_width = link("current_link_width").and_then(|s| parse_link_width(&s));
    if t.pcie_link_generation.is_none() {
        t.mark_unavailable(
            TelemetryField::PcieLinkGeneration,
            "no readable current_link_speed (not a PCIe device, or the link is down)",
        );
    }
    if t.pcie_link_width.is_none() {
        t.mark_unavailable(
            TelemetryField::PcieLinkWidth,
            "no readable current_link_width (not a PCIe device, or the link is down)",
        );
    }
    t
}

#[allow(clippy::cast_precision_loss)]
fn percent_f64(percent: u64) -> f64 {
    percent as f64
}

fn to_u32(value: u64) -> Option<u32> {
    u32::try_from(value).ok().filter(|&v| v > 0)
}

fn read_temperature(files: &DeviceFiles, hwmon: &Hwmon, t: &mut DeviceTelemetry) {
    let celsius = hwmon
        .pick("temp", "_input", &["edge", "junction", "pkg", "card"])
        .and_then(|n| {
            files
                .text(&hwmon.dir.join(format!("temp{n}_input")))
                .and_then(|s| parse_sysfs_i64(&s))
        })
        .map(millicelsius_to_celsius);
    t.temperature_celsius = celsius;
    if celsius.is_none() {
        t.mark_unavailable(
            TelemetryField::TemperatureCelsius,
            "the GPU's hwmon has no readable temp*_input",
        );
    }
}

fn read_power(
    state: &TelemetryState,
    key: &str,
    files: &DeviceFiles,
    hwmon: &Hwmon,
    t: &mut DeviceTelemetry,
) {
    let preferred = ["card", "ppt", "pkg"];
    // Instantaneous or averaged power, when the driver publishes it.
    let direct = ["power1_average", "power1_input"]
        .into_iter()
        .find_map(|name| hwmon.u64(files, name));
    if let Some(microwatts) = direct {
        t.power_watts = Some(microwatts_to_watts(microwatts));
    } else if let Some(channel) = hwmon.pick("energy", "_input", &preferred) {
        let now_ns = state.clock.now_ns();
        let energy = hwmon.u64(files, &format!("energy{channel}_input"));
        let previous = state.with_previous(key, |p| {
            let before = p.energy;
            if let Some(energy) = energy {
                // Keep the larger: a counter that went backwards starts over from here.
                p.energy = Some((energy, now_ns));
            }
            before
        });
        match (previous, energy) {
            (_, None) => t.mark_unavailable(
                TelemetryField::PowerWatts,
                format!("hwmon energy{channel}_input could not be read"),
            ),
            (None, Some(_)) => t.mark_unavailable(TelemetryField::PowerWatts, WARMING_UP),
            (Some((before, then)), Some(energy)) => {
                match power_from_energy(before, energy, now_ns.saturating_sub(then)) {
                    Ok(watts) => t.power_watts = Some(watts),
                    Err(reason) => t.mark_unavailable(TelemetryField::PowerWatts, reason),
                }
            }
        }
    } else {
        t.mark_unavailable(
            TelemetryField::PowerWatts,
            "the GPU's hwmon has no power1_average, power1_input or energy*_input",
        );
    }
    let cap = hwmon.u64(files, "power1_cap").or_else(|| {
        hwmon
            .pick("power", "_max", &preferred)
            .and_then(|n| hwmon.u64(files, &format!("power{n}_max")))
    });
    match cap.filter(|&c| c > 0) {
        Some(microwatts) => t.power_limit_watts = Some(microwatts_to_watts(microwatts)),
        None => t.mark_unavailable(
            TelemetryField::PowerLimitWatts,
            "the GPU's hwmon has no power1_cap or power*_max (or it reads 0: no limit set)",
        ),
    }
}

fn read_fan(files: &DeviceFiles, hwmon: &Hwmon, t: &mut DeviceTelemetry) {
    let from_pwm = hwmon
        .u64(files, "pwm1")
        .and_then(|pwm| fan_percent_from_pwm(pwm, hwmon.u64(files, "pwm1_max").unwrap_or(255)));
    let from_rpm = || {
        let rpm = hwmon.u64(files, "fan1_input")?;
        fan_percent_from_rpm(rpm, hwmon.u64(files, "fan1_max")?)
    };
    t.fan_percent = from_pwm.or_else(from_rpm);
    if t.fan_percent.is_none() {
        t.mark_unavailable(
            TelemetryField::FanPercent,
            "the GPU's hwmon has no pwm1 or fan1_input with fan1_max (no fan of its own)",
        );
    }
}

/// Utilization from fdinfo engine counters: every readable client of the device, compared
/// with the previous call's sample.
fn engine_figure(
    state: &TelemetryState,
    card: &CardPaths,
    t: &mut DeviceTelemetry,
    proc_root: &Path,
    sys_root: &Path,
) {
    let after_ns = state.with_previous(&card.key, |p| p.engines.as_ref().map(|(_, at)| *at));
    let (now_ns, scan) = match state.scan(after_ns, proc_root, sys_root) {
        Ok(found) => found,
        Err(e) => {
            t.mark_unavailable(
                TelemetryField::GpuUtilizationPercent,
                format!("no gpu_busy_percent, and the fdinfo scan failed: {e}"),
            );
            return;
        }
    };
    let mut sample: EngineSample<ClientId> = EngineSample::new();
    for client in scan.clients.iter().filter(|c| c.device == card.key) {
        let Some(id) = client.info.client() else {
            continue;
        };
        for engine in &client.info.engines {
            if engine.busy_ns.is_none() && engine.cycles.is_none() {
                continue;
            }
            sample.insert(
                (id, engine.name.to_string()),
                EngineCounters {
                    busy_ns: engine.busy_ns,
                    cycles: engine.cycles,
                    total_cycles: engine.total_cycles,
                    capacity: engine.capacity.unwrap_or(1),
                },
            );
        }
    }
    let idle_now = sample.is_empty() && scan.unreadable_pids.is_empty();
    let previous = state.with_previous(&card.key, |p| p.engines.replace((sample.clone(), now_ns)));
    match previous {
        None => t.mark_unavailable(TelemetryField::GpuUtilizationPercent, WARMING_UP),
        Some((before, _)) if before.is_empty() && idle_now => {
            // No DRM client on the device in either reading: nothing can have kept it busy.
            t.gpu_utilization_percent = Some(0.0);
        }
        Some((before, then)) => {
            match engine_utilization(&before, &sample, now_ns.saturating_sub(then)) {
                Ok(percent) => t.gpu_utilization_percent = Some(percent),
                Err(reason) => t.mark_unavailable(TelemetryField::GpuUtilizationPercent, reason),
            }
        }
    }
}

#[cfg(test)]
#[path = "../../../../../fixtures/drm/tree.rs"]
pub(crate) mod tree;

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::tree;
    use super::*;
    use crate::gpu::drm::DrmBackend;
    use crate::gpu::{Backend, Listed, Pass};

    fn backend(tree: &tree::DrmTree, clock: &Arc<AtomicU64>) -> DrmBackend {
        DrmBackend::with_clock(
            &tree.proc(),
            &tree.sys(),
            Vec::new(),
            Clock::Manual(Arc::clone(clock)),
        )
    }

    fn devices(backend: &DrmBackend) -> Vec<Listed> {
        let devices = backend.devices(&Pass::default(), &[]).unwrap();
        devices
            .list
            .into_iter()
            .map(|d| Listed::new(d, crate::GpuQuerySource::Drm))
            .collect()
    }

    /// One reading of `device`, in a pass of its own.
    fn read(backend: &DrmBackend, device: &Listed) -> Option<crate::Result<DeviceTelemetry>> {
        backend.telemetry(&Pass::default(), device)
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn xe_power_comes_from_two_energy_readings_with_hand_computed_watts() {
        let tree = tree::telemetry_tree();
        let clock = Arc::new(AtomicU64::new(1_000_000_000));
        let backend = backend(&tree, &clock);
        let devices = devices(&backend);
        // Order by slot: 00:02.0 i915, 03:00.0 amdgpu, 08:00.0 xe, c4:00.0 APU.
        let xe = &devices[2];
        let first = read(&backend, xe).unwrap().unwrap();
        assert_eq!(first.power_watts, None);
        assert_eq!(
            first.unavailable_reason(TelemetryField::PowerWatts),
            Some("warming up: needs a second reading")
        );
        // power2_max (card) = 190 W.
        assert!(close(first.power_limit_watts, 190.0));
        // 500 ms later the card counter moved 40 J: 40 000 000 µJ / 0.5 s = 80 W.
        tree.write_device_file(
            "0000:08:00.0",
            "hwmon/hwmon4/energy2_input",
            &format!("{}\n", tree::XE_ENERGY_CARD_UJ + 40_000_000),
        );
        clock.fetch_add(500_000_000, Ordering::SeqCst);
        let second = read(&backend, xe).unwrap().unwrap();
        assert!(close(second.power_watts, 80.0), "{:?}", second.power_watts);
        // The counter reset (driver reload): no figure, and never negative.
        tree.write_device_file("0000:08:00.0", "hwmon/hwmon4/energy2_input", "5\n");
        clock.fetch_add(500_000_000, Ordering::SeqCst);
        let third = read(&backend, xe).unwrap().unwrap();
        assert_eq!(third.power_watts, None);
        assert!(
            third
                .unavailable_reason(TelemetryField::PowerWatts)
                .unwrap()
                .contains("backwards")
        );
        // And from the reset value on, figures again: 10 J in 1 s = 10 W.
        tree.write_device_file("0000:08:00.0", "hwmon/hwmon4/energy2_input", "10000005\n");
        clock.fetch_add(1_000_000_000, Ordering::SeqCst);
        let fourth = read(&backend, xe).unwrap().unwrap();
        assert!(close(fourth.power_watts, 10.0), "{:?}", fourth.power_watts);
    }

    #[test]
    fn intel_engine_utilization_is_the_fdinfo_delta_over_elapsed_time() {
        let tree = tree::telemetry_tree();
        let clock = Arc::new(AtomicU64::new(0));
        let backend = backend(&tree, &clock);
        let devices = devices(&backend);
        let i915 = &devices[0];
        let first = read(&backend, i915).unwrap().unwrap();
        assert_eq!(first.gpu_utilization_percent, None);
        assert_eq!(
            first.unavailable_reason(TelemetryField::GpuUtilizationPercent),
            Some("warming up: needs a second reading")
        );
        // Xorg's client: render 346 249 ns → 346 249 + 250 000 000 ns, 1 s later: 25 %.
        let i915_text = tree::fdinfo("i915-integrated").replace("346249 ns", "250346249 ns");
        tree.write_fdinfo(100, 5, &i915_text);
        tree.write_fdinfo(100, 6, &i915_text);
        clock.fetch_add(1_000_000_000, Ordering::SeqCst);
        let second = read(&backend, i915).unwrap().unwrap();
        assert!(
            close(second.gpu_utilization_percent, 25.0),
            "{:?}",
            second.gpu_utilization_percent
        );
        // Integrated i915: no hwmon at all, every sensor says why.
        assert_eq!(second.temperature_celsius, None);
        assert!(
            second
                .unavailable_reason(TelemetryField::PowerWatts)
                .unwrap()
                .contains("hwmon")
        );
        // xe: cycles, not time. rcs moved 250 000 of 1 000 000 timestamp cycles: 25 %.
        let xe = &devices[2];
        read(&backend, xe).unwrap().unwrap();
        let xe_text = tree::fdinfo("xe-discrete")
            .replace("drm-cycles-rcs:\t28257900", "drm-cycles-rcs:\t28507900")
            .replace(
                "drm-total-cycles-rcs:\t7655183225",
                "drm-total-cycles-rcs:\t7656183225",
            );
        tree.write_fdinfo(500, 9, &xe_text);
        clock.fetch_add(7, Ordering::SeqCst);
        let xe_second = read(&backend, xe).unwrap().unwrap();
        assert!(
            close(xe_second.gpu_utilization_percent, 25.0),
            "{:?}",
            xe_second.gpu_utilization_percent
        );
    }

    /// Between full scans the kept clients are read again; a client opened since joins at
    /// the next full scan ([`FULL_SCAN_NS`]), not before.
    #[test]
    fn a_new_client_joins_engine_utilization_at_the_next_full_scan() {
        let tree = tree::telemetry_tree();
        let clock = Arc::new(AtomicU64::new(0));
        let backend = backend(&tree, &clock);
        let i915 = &devices(&backend)[0];
        read(&backend, i915).unwrap().unwrap();
        // A new client of the i915 GPU, busy from here on.
        let busy = |ns: u64| {
            tree::fdinfo("i915-integrated")
                .replace("drm-client-id:\t39", "drm-client-id:\t4000")
                .replace("346249 ns", &format!("{ns} ns"))
        };
        tree.process(150, "new-game", None);
        tree.fd(150, 3, "/dev/dri/card0", Some(&busy(0)));
        clock.store(400_000_000, Ordering::SeqCst);
        let before = read(&backend, i915).unwrap().unwrap();
        tree.write_fdinfo(150, 3, &busy(300_000_000));
        clock.store(900_000_000, Ordering::SeqCst);
        // Kept clients only (Xorg, idle): the new client's 300 ms of render time is not seen.
        let still = read(&backend, i915).unwrap().unwrap();
        assert!(close(before.gpu_utilization_percent, 0.0), "{before:#?}");
        assert!(close(still.gpu_utilization_percent, 0.0), "{still:#?}");
        // The full scan at 1 s finds it (its first reading: no delta yet).
        clock.store(1_000_000_000, Ordering::SeqCst);
        read(&backend, i915).unwrap().unwrap();
        // 500 ms of render time in the next second, read through its kept file: 50 %.
        tree.write_fdinfo(150, 3, &busy(800_000_000));
        clock.store(2_000_000_000, Ordering::SeqCst);
        let joined = read(&backend, i915).unwrap().unwrap();
        assert!(
            close(joined.gpu_utilization_percent, 50.0),
            "{:?}",
            joined.gpu_utilization_percent
        );
    }

    #[test]
    fn a_sensor_file_is_opened_once_and_read_again_each_sample() {
        let tree = tree::telemetry_tree();
        let clock = Arc::new(AtomicU64::new(0));
        let backend = backend(&tree, &clock);
        let amd = &devices(&backend)[1];
        let first = read(&backend, amd).unwrap().unwrap();
        assert!(close(first.gpu_utilization_percent, 37.0));
        // Rewritten in place (sysfs regenerates the text on each read): the kept file sees it.
        tree.write_device_file("0000:03:00.0", "gpu_busy_percent", "81\n");
        tree.write_device_file("0000:03:00.0", "hwmon/hwmon2/temp1_input", "66000\n");
        let second = read(&backend, amd).unwrap().unwrap();
        assert!(close(second.gpu_utilization_percent, 81.0));
        assert!(close(second.temperature_celsius, 66.0));
    }
}

//! Pure parsers and arithmetic for DRM telemetry: amdgpu's `pp_dpm_*` clock tables, PCIe link
//! files, hwmon fan figures, KFD topology `properties`, and the rates computed from two
//! readings of a counter (hwmon `energy*_input`, fdinfo `drm-engine-*` / `drm-cycles-*`).
//!
//! Like [`super::parse`], they take text and numbers, never touch the filesystem, never panic,
//! and build on every OS (tested everywhere, fuzzed in `fuzz/`). Facts they rely on:
//!
//! - hwmon units (kernel `Documentation/hwmon/sysfs-interface.rst`): temperatures in
//!   millidegrees Celsius, power and power caps in microwatts, energy in microjoules, fan
//!   speed in RPM, `pwm*` 0–255.
//! - `pp_dpm_sclk` / `pp_dpm_mclk` list one DPM level per line (`1: 1200Mhz *`); the current
//!   level ends in `*`. amdgpu prints `Mhz`; RDNA parts add a sleep level `S: 19Mhz`.
//! - PCIe `current_link_speed` is `16.0 GT/s PCIe` (older kernels: `8 GT/s`), `Unknown` when
//!   the link is down; the generation follows from the rate (2.5, 5, 8, 16, 32, 64 GT/s →
//!   Gen 1–6). `current_link_width` is the lane count; 0 and 255 mean unknown.
//! - KFD topology nodes print `key value` lines; `location_id` is the PCI
//!   `(bus << 8) | (device << 3) | function`, `domain` the PCI domain.
//! - Counters can go backwards (a driver reset, a wrap, a client that closed and one that
//!   reused its id): such a delta is not a rate — it is skipped, never made negative.

use std::collections::BTreeMap;

use super::parse::{normalize_pci_slot, parse_sysfs_u64};

/// The current level's clock of a `pp_dpm_sclk` / `pp_dpm_mclk` table, MHz: the line marked
/// `*`. `None` when no line is marked or the marked line is unreadable.
pub(crate) fn parse_dpm_current_mhz(text: &str) -> Option<u32> {
    let line = text.lines().find(|l| l.trim_end().ends_with('*'))?;
    let (_, value) = line.split_once(':')?;
    let value = value.trim().trim_end_matches('*').trim();
    let digits_end = value
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(digits_end);
    if number.is_empty() || !unit.trim().eq_ignore_ascii_case("mhz") {
        return None;
    }
    number.parse().ok()
}

/// The PCIe generation of a `current_link_speed` text (`16.0 GT/s PCIe` → 4).
pub(crate) fn parse_link_generation(text: &str) -> Option<u32> {
    let rate = text.split_whitespace().next()?;
    if text.split_whitespace().nth(1) != Some("GT/s") {
        return None;
    }
    let (whole, tenths) = match rate.split_once('.') {
        Some((whole, fraction)) => (whole, fraction.get(..1).unwrap_or("0")),
        None => (rate, "0"),
    };
    let valid = |s: &str| !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit());
    if !valid(whole) || !valid(tenths) {
        return None;
    }
    let decis = whole.parse::<u32>().ok()? * 10 + tenths.parse::<u32>().ok()?;
    match decis {
        25 => Some(1),
        50 => Some(2),
        80 => Some(3),
        160 => Some(4),
        320 => Some(5),
        640 => Some(6),
        _ => None,
    }
}

/// A `current_link_width` text (`16`); `None` for 0 and 255 (unknown) and anything else.
pub(crate) fn parse_link_width(text: &str) -> Option<u32> {
    let lanes = parse_sysfs_u64(text)?;
    (1..=32)
        .contains(&lanes)
        .then(|| u32::try_from(lanes).ok())
        .flatten()
}

/// hwmon microwatts (or microjoules per second) → watts.
#[allow(clippy::cast_precision_loss)] // microwatts stay far below 2^52
pub(crate) fn microwatts_to_watts(microwatts: u64) -> f64 {
    microwatts as f64 / 1_000_000.0
}

/// hwmon millidegrees Celsius → degrees Celsius (hwmon temperatures are signed).
#[allow(clippy::cast_precision_loss)]
pub(crate) fn millicelsius_to_celsius(millicelsius: i64) -> f64 {
    millicelsius as f64 / 1000.0
}

/// A signed hwmon number (`temp*_input` may be negative).
pub(crate) fn parse_sysfs_i64(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let magnitude = i64::try_from(parse_sysfs_u64(digits)?).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

/// Fan speed percent from `pwm1` (0..=`max`, 255 unless `pwm1_max` says otherwise).
#[allow(clippy::cast_precision_loss)]
pub(crate) fn fan_percent_from_pwm(pwm: u64, max: u64) -> Option<f64> {
    (max > 0 && pwm <= max).then(|| pwm as f64 * 100.0 / max as f64)
}

/// Fan speed percent from `fan1_input` RPM against `fan1_max`, capped at 100.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn fan_percent_from_rpm(rpm: u64, max_rpm: u64) -> Option<f64> {
    (max_rpm > 0).then(|| (rpm as f64 * 100.0 / max_rpm as f64).min(100.0))
}

/// What a KFD topology node's `properties` file says about where its GPU is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct KfdLocation {
    /// `location_id`: `(bus << 8) | (device << 3) | function`.
    pub(crate) location_id: Option<u32>,
    /// `domain`: the PCI domain (absent on old kernels: domain 0).
    pub(crate) domain: Option<u32>,
}

impl KfdLocation {
    /// The PCI slot in NVML's form (`00000000:03:00.0`), when `location_id` was printed.
    pub(crate) fn pci_slot(&self) -> Option<String> {
        let location = self.location_id?;
        if location > 0xffff {
            return None;
        }
        let bus = location >> 8;
        let device = (location >> 3) & 0x1f;
        let function = location & 0x7;
        let domain = self.domain.unwrap_or(0);
        normalize_pci_slot(&format!("{domain:04x}:{bus:02x}:{device:02x}.{function:x}"))
    }
}

/// A KFD topology node's `properties` text (`key value` per line).
pub(crate) fn parse_kfd_properties(text: &str) -> KfdLocation {
    let mut out = KfdLocation::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(key), Some(value), None) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let value = parse_sysfs_u64(value).and_then(|v| u32::try_from(v).ok());
        match key {
            "location_id" => out.location_id = value,
            "domain" => out.domain = value,
            _ => {}
        }
    }
    out
}

/// `later - earlier`, `None` when the counter went backwards (reset or wrap).
pub(crate) fn counter_delta(earlier: u64, later: u64) -> Option<u64> {
    later.checked_sub(earlier)
}

/// Average power between two readings of an hwmon energy counter, watts. `Err` says why
/// there is no figure (the counter went backwards, no time passed).
#[allow(clippy::cast_precision_loss)]
pub(crate) fn power_from_energy(
    earlier_microjoules: u64,
    later_microjoules: u64,
    elapsed_ns: u64,
) -> Result<f64, &'static str> {
    let Some(microjoules) = counter_delta(earlier_microjoules, later_microjoules) else {
        return Err("warming up: the energy counter went backwards (reset or wrap)");
    };
    if elapsed_ns == 0 {
        return Err("warming up: no time passed since the previous reading");
    }
    // µJ / ns × 1e9 = µW; / 1e6 = W.
    Ok(microjoules as f64 * 1_000.0 / elapsed_ns as f64)
}

/// One engine of one DRM client at one moment (fdinfo).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct EngineCounters {
    /// `drm-engine-<e>`, ns.
    pub(crate) busy_ns: Option<u64>,
    /// `drm-cycles-<e>`.
    pub(crate) cycles: Option<u64>,
    /// `drm-total-cycles-<e>`.
    pub(crate) total_cycles: Option<u64>,
    /// `drm-engine-capacity-<e>`, 1 when absent.
    pub(crate) capacity: u64,
}

/// Every client's engine counters on one device at one moment, by (client, engine name).
pub(crate) type EngineSample<K> = BTreeMap<(K, String), EngineCounters>;

/// Busy percent of the busiest engine between two samples taken `elapsed_ns` apart, or why
/// there is none. Per engine name, busy time (or busy cycles) of the clients present in both
/// samples is summed and divided by the elapsed time (or the GPU timestamp's advance) times
/// the engine's capacity; a client whose counter went backwards adds nothing.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn engine_utilization<K: Ord + Clone>(
    earlier: &EngineSample<K>,
    later: &EngineSample<K>,
    elapsed_ns: u64,
) -> Result<f64, &'static str> {
    #[derive(Default)]
    struct Sums {
        busy_ns: u64,
        has_busy: bool,
        cycles: u64,
        total_cycles: u64,
        has_cycles: bool,
        capacity: u64,
    }
    let mut engines: BTreeMap<&str, Sums> = BTreeMap::new();
    for ((client, engine), now) in later {
        let Some(before) = earlier.get(&(client.clone(), engine.clone())) else {
            continue;
        };
        let sums = engines.entry(engine.as_str()).or_default();
        sums.capacity = sums.capacity.max(now.capacity.max(1));
        if let (Some(a), Some(b)) = (before.busy_ns, now.busy_ns) {
            sums.has_busy = true;
            sums.busy_ns = sums
                .busy_ns
                .saturating_add(counter_delta(a, b).unwrap_or(0));
        }
        if let (Some(a), Some(b), Some(ta), Some(tb)) = (
            before.cycles,
            now.cycles,
            before.total_cycles,
            now.total_cycles,
        ) && let (Some(cycles), Some(total)) = (counter_delta(a, b), counter_delta(ta, tb))
        {
            sums.has_cycles = true;
            sums.cycles = sums.cycles.saturating_add(cycles);
            sums.total_cycles = sums.total_cycles.max(total);
        }
    }
    let mut busiest: Option<f64> = None;
    for sums in engines.values() {
        let percent = if sums.has_cycles && sums.total_cycles > 0 {
            sums.cycles as f64 * 100.0 / (sums.total_cycles as f64 * sums.capacity as f64)
        } else if sums.has_busy && elapsed_ns > 0 {
            sums.busy_ns as f64 * 100.0 / (elapsed_ns as f64 * sums.capacity as f64)
        } else {
            continue;
        };
        let percent = percent.clamp(0.0, 100.0);
        busiest = Some(busiest.map_or(percent, |b: f64| b.max(percent)));
    }
    busiest.ok_or("warming up: no DRM client had engine counters in both readings")
}

/// Exercises every parser of this module on arbitrary bytes (fuzz targets, property tests).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn exercise_all(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = parse_dpm_current_mhz(&text);
    let _ = parse_link_generation(&text);
    let _ = parse_link_width(&text);
    let _ = parse_sysfs_i64(&text).map(millicelsius_to_celsius);
    let _ = parse_kfd_properties(&text).pci_slot();
    let mut raw = [0_u64; 4];
    for (slot, chunk) in raw.iter_mut().zip(data.chunks(8)) {
        let mut bytes = [0_u8; 8];
        for (b, c) in bytes.iter_mut().zip(chunk) {
            *b = *c;
        }
        *slot = u64::from_le_bytes(bytes);
    }
    let [a, b, c, d] = raw;
    let _ = power_from_energy(a, b, c);
    let _ = (fan_percent_from_pwm(a, b), fan_percent_from_rpm(c, d));
    let _ = microwatts_to_watts(d);
    let counters = |x: u64, y: u64| EngineCounters {
        busy_ns: Some(x),
        cycles: Some(y),
        total_cycles: Some(x ^ y),
        capacity: y % 8,
    };
    let earlier: EngineSample<u8> = [((0, "gfx".to_owned()), counters(a, b))].into();
    let later: EngineSample<u8> = [((0, "gfx".to_owned()), counters(c, d))].into();
    let _ = engine_utilization(&earlier, &later, a ^ d);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starred_dpm_level_is_the_current_clock() {
        let sclk = "0: 500Mhz \n1: 1200Mhz *\n2: 2482Mhz \n";
        assert_eq!(parse_dpm_current_mhz(sclk), Some(1200));
        // RDNA3 with the sleep level current.
        assert_eq!(
            parse_dpm_current_mhz("S: 19Mhz *\n0: 500Mhz \n1: 2526Mhz \n"),
            Some(19)
        );
        assert_eq!(parse_dpm_current_mhz("0: 96Mhz\n1: 1000 MHz *"), Some(1000));
        assert_eq!(parse_dpm_current_mhz("0: 500Mhz \n1: 1200Mhz \n"), None);
        assert_eq!(parse_dpm_current_mhz("1: fast *\n"), None);
        assert_eq!(parse_dpm_current_mhz(""), None);
    }

    #[test]
    fn link_speed_gives_the_pcie_generation() {
        assert_eq!(parse_link_generation("16.0 GT/s PCIe\n"), Some(4));
        assert_eq!(parse_link_generation("2.5 GT/s PCIe"), Some(1));
        assert_eq!(parse_link_generation("5.0 GT/s PCIe"), Some(2));
        assert_eq!(parse_link_generation("8 GT/s\n"), Some(3));
        assert_eq!(parse_link_generation("32.0 GT/s PCIe"), Some(5));
        assert_eq!(parse_link_generation("64.0 GT/s PCIe"), Some(6));
        assert_eq!(parse_link_generation("Unknown\n"), None);
        assert_eq!(parse_link_generation("16.0 Gb/s"), None);
        assert_eq!(parse_link_generation("12.0 GT/s PCIe"), None);
        assert_eq!(parse_link_width("16\n"), Some(16));
        assert_eq!(parse_link_width("0\n"), None);
        assert_eq!(parse_link_width("255\n"), None);
    }

    #[test]
    fn hwmon_units_convert() {
        assert!((microwatts_to_watts(212_000_000) - 212.0).abs() < 1e-9);
        assert_eq!(parse_sysfs_i64("-5000\n"), Some(-5000));
        assert!((millicelsius_to_celsius(45_500) - 45.5).abs() < 1e-9);
        // 128 / 255 × 100 = 50.196…
        let pwm = fan_percent_from_pwm(128, 255).unwrap();
        assert!((pwm - 50.196_078).abs() < 1e-5);
        assert_eq!(fan_percent_from_pwm(300, 255), None);
        assert_eq!(fan_percent_from_rpm(1650, 3300), Some(50.0));
        assert_eq!(fan_percent_from_rpm(4000, 3300), Some(100.0));
        assert_eq!(fan_percent_from_rpm(1000, 0), None);
    }

    #[test]
    fn kfd_location_id_is_bus_device_function() {
        let text = "cpu_cores_count 0\nsimd_count 192\nlocation_id 768\ndomain 0\n\
            drm_render_minor 128\n";
        let location = parse_kfd_properties(text);
        assert_eq!(location.location_id, Some(768));
        // 768 = 0x300: bus 3, device 0, function 0.
        assert_eq!(location.pci_slot().as_deref(), Some("00000000:03:00.0"));
        // (0xc4 << 8) | (1 << 3) | 2 = 50 186: bus c4, device 1, function 2, domain 1.
        let text = "location_id 50186\ndomain 1\n";
        assert_eq!(
            parse_kfd_properties(text).pci_slot().as_deref(),
            Some("00000001:C4:01.2")
        );
        assert_eq!(
            parse_kfd_properties("cpu_cores_count 16\n").pci_slot(),
            None
        );
    }

    #[test]
    fn power_is_the_energy_delta_over_time_and_never_negative() {
        // 30 J in 200 ms = 150 W: 30 000 000 µJ / 200 000 000 ns × 1 000.
        let watts = power_from_energy(1_000_000, 31_000_000, 200_000_000).unwrap();
        assert!((watts - 150.0).abs() < 1e-9);
        assert!(power_from_energy(31_000_000, 1_000_000, 200_000_000).is_err());
        assert!(power_from_energy(1, 2, 0).is_err());
    }

    fn busy(ns: u64, capacity: u64) -> EngineCounters {
        EngineCounters {
            busy_ns: Some(ns),
            capacity,
            ..EngineCounters::default()
        }
    }

    fn key(client: u32, engine: &str) -> (u32, String) {
        (client, engine.to_owned())
    }

    #[test]
    fn engine_busy_time_is_summed_over_clients_and_the_busiest_engine_wins() {
        let earlier: EngineSample<u32> = [
            (key(1, "render"), busy(1_000_000, 1)),
            (key(2, "render"), busy(5_000_000, 1)),
            (key(2, "video"), busy(0, 2)),
        ]
        .into();
        let later: EngineSample<u32> = [
            // +30 ms and +20 ms of render in 100 ms: 50 %.
            (key(1, "render"), busy(31_000_000, 1)),
            (key(2, "render"), busy(25_000_000, 1)),
            // +80 ms of video over two engines in 100 ms: 40 %.
            (key(2, "video"), busy(80_000_000, 2)),
            // New client: no earlier reading, adds nothing.
            (key(3, "render"), busy(90_000_000, 1)),
        ]
        .into();
        let percent = engine_utilization(&earlier, &later, 100_000_000).unwrap();
        assert!((percent - 50.0).abs() < 1e-9, "{percent}");
    }

    #[test]
    fn a_counter_going_backwards_adds_nothing_and_is_never_negative() {
        let earlier: EngineSample<u32> = [
            (key(1, "render"), busy(90_000_000, 1)),
            (key(2, "render"), busy(0, 1)),
        ]
        .into();
        let later: EngineSample<u32> = [
            (key(1, "render"), busy(10_000_000, 1)),
            (key(2, "render"), busy(10_000_000, 1)),
        ]
        .into();
        // Only client 2 counts: 10 ms in 100 ms.
        let percent = engine_utilization(&earlier, &later, 100_000_000).unwrap();
        assert!((percent - 10.0).abs() < 1e-9, "{percent}");
        let only_backwards: EngineSample<u32> = [(key(1, "render"), busy(0, 1))].into();
        let earlier_one: EngineSample<u32> = [(key(1, "render"), busy(5, 1))].into();
        assert_eq!(
            engine_utilization(&earlier_one, &only_backwards, 100).unwrap(),
            0.0
        );
    }

    #[test]
    fn cycles_use_the_gpu_timestamp_not_the_wall_clock() {
        let cycles = |c: u64, t: u64, capacity: u64| EngineCounters {
            cycles: Some(c),
            total_cycles: Some(t),
            capacity,
            ..EngineCounters::default()
        };
        let earlier: EngineSample<u32> = [
            (key(3, "rcs"), cycles(28_257_900, 7_655_183_225, 1)),
            (key(4, "ccs"), cycles(0, 7_655_183_225, 4)),
        ]
        .into();
        let later: EngineSample<u32> = [
            // rcs: 250 000 of 1 000 000 timestamp cycles = 25 %.
            (key(3, "rcs"), cycles(28_507_900, 7_656_183_225, 1)),
            // ccs: 2 000 000 over 4 engines × 1 000 000 = 50 %.
            (key(4, "ccs"), cycles(2_000_000, 7_656_183_225, 4)),
        ]
        .into();
        let percent = engine_utilization(&earlier, &later, 1).unwrap();
        assert!((percent - 50.0).abs() < 1e-9, "{percent}");
    }

    #[test]
    fn without_common_clients_there_is_no_figure() {
        let earlier: EngineSample<u32> = [(key(1, "gfx"), busy(1, 1))].into();
        let later: EngineSample<u32> = [(key(2, "gfx"), busy(2, 1))].into();
        assert!(
            engine_utilization(&earlier, &later, 100)
                .unwrap_err()
                .starts_with("warming up")
        );
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn no_parser_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..256)) {
                exercise_all(&data);
            }

            #[test]
            fn utilization_stays_between_0_and_100(
                a in any::<u64>(), b in any::<u64>(), c in any::<u64>(), d in any::<u64>(),
                capacity in 0_u64..16, elapsed in any::<u64>(),
            ) {
                let counters = |x: u64, y: u64| EngineCounters {
                    busy_ns: Some(x), cycles: Some(y), total_cycles: Some(y / 2 + x / 2), capacity,
                };
                let earlier: EngineSample<u8> = [((0, "gfx".to_owned()), counters(a, b))].into();
                let later: EngineSample<u8> = [((0, "gfx".to_owned()), counters(c, d))].into();
                if let Ok(p) = engine_utilization(&earlier, &later, elapsed) {
                    prop_assert!((0.0..=100.0).contains(&p));
                }
                if let Ok(w) = power_from_energy(a, b, elapsed) {
                    prop_assert!(w >= 0.0);
                }
            }

            #[test]
            fn dpm_tables_round_trip(levels in proptest::collection::vec(1_u32..5000, 1..8), pick in 0_usize..8) {
                let current = pick % levels.len();
                let text: String = levels.iter().enumerate()
                    .map(|(i, mhz)| format!("{i}: {mhz}Mhz {}\n", if i == current { "*" } else { "" }))
                    .collect();
                prop_assert_eq!(parse_dpm_current_mhz(&text), Some(levels[current]));
            }

            #[test]
            fn kfd_locations_round_trip(domain in 0_u32..0x1_0000, bus in 0_u32..256, dev in 0_u32..32, func in 0_u32..8) {
                let location = KfdLocation { location_id: Some((bus << 8) | (dev << 3) | func), domain: Some(domain) };
                let slot = location.pci_slot().unwrap();
                prop_assert_eq!(slot, format!("{domain:08X}:{bus:02X}:{dev:02X}.{func:X}"));
            }
        }
    }
}

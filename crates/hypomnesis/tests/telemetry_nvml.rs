//! NVML telemetry (utilization, temperature, power, clocks, per-process utilization) against
//! the NVML double, one scenario per child process (NVML state is process-wide; see
//! `tests/nvml_double.rs` for the mechanism). Expected figures are read from the scenario.
#![cfg(target_os = "linux")]

use std::time::Duration;

use hypomnesis::{DeviceTelemetry, GpuQuerySource, HypomnesisError, Probe, TelemetryField};
use serde_json::Value;

/// Runs `body` with a probe on the double loaded with `scenario`, in a process of its own;
/// `body` also gets the scenario's declared values.
fn in_scenario(test: &str, scenario: &str, body: impl FnOnce(Probe, Value)) {
    test_support::with_nvml_double(test, scenario, |lib, path| {
        let probe = Probe::builder().nvml_lib(lib).use_nvidia_smi(false).build();
        let declared: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        body(probe, declared);
    });
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn assert_none_because(
    t: &DeviceTelemetry,
    field: TelemetryField,
    value_is_none: bool,
    needle: &str,
) {
    assert!(value_is_none, "{field} should be None: {t:?}");
    let reason = t
        .unavailable_reason(field)
        .unwrap_or_else(|| panic!("{field} has no reason: {t:?}"));
    assert!(
        reason.contains(needle),
        "{field}: {reason:?} lacks {needle:?}"
    );
}

#[test]
fn every_declared_figure_is_reported_in_its_unit() {
    in_scenario(
        "every_declared_figure_is_reported_in_its_unit",
        "telemetry",
        |probe, declared| {
            let d = &declared["devices"][0];
            let t = probe.telemetry(0).unwrap();
            assert_eq!(t.index, 0);
            assert_eq!(t.source, GpuQuerySource::Nvml);
            assert_eq!(
                t.gpu_utilization_percent,
                Some(num(&d["utilization"]["gpu"]))
            );
            assert_eq!(
                t.memory_utilization_percent,
                Some(num(&d["utilization"]["memory"]))
            );
            assert_eq!(t.temperature_celsius, Some(num(&d["temperature"])));
            // Milliwatts become watts.
            assert_eq!(t.power_watts, Some(num(&d["power_usage_mw"]) / 1000.0));
            assert_eq!(t.power_watts, Some(412.345));
            assert_eq!(t.power_limit_watts, Some(700.0));
            assert_eq!(
                t.sm_clock_mhz.map(f64::from),
                Some(num(&d["clocks"]["graphics"]))
            );
            assert_eq!(
                t.memory_clock_mhz.map(f64::from),
                Some(num(&d["clocks"]["memory"]))
            );
            assert_eq!(t.pcie_link_generation, Some(5));
            assert_eq!(t.pcie_link_width, Some(16));
            assert_eq!(t.encoder_utilization_percent, Some(0.0), "0 % is a reading");
            assert_eq!(t.decoder_utilization_percent, Some(num(&d["decoder"])));
            // An SXM H100 has no fan.
            assert_none_because(
                &t,
                TelemetryField::FanPercent,
                t.fan_percent.is_none(),
                "not supported",
            );
            assert_eq!(t.unavailable.len(), 1, "only the fan is missing: {t:?}");
        },
    );
}

#[test]
fn not_supported_figures_are_none_with_the_reason() {
    in_scenario(
        "not_supported_figures_are_none_with_the_reason",
        "telemetry",
        |probe, _| {
            let t = probe.telemetry(1).unwrap();
            assert_eq!(t.fan_percent, Some(30.0));
            assert_eq!(t.gpu_utilization_percent, Some(0.0), "idle is 0, a reading");
            assert_none_because(
                &t,
                TelemetryField::PowerLimitWatts,
                t.power_limit_watts.is_none(),
                "not supported by this GPU/driver",
            );
            // Refused through the scenario's errors map.
            assert_none_because(
                &t,
                TelemetryField::EncoderUtilizationPercent,
                t.encoder_utilization_percent.is_none(),
                "not supported by this GPU/driver",
            );
            assert_eq!(t.decoder_utilization_percent, Some(0.0));
        },
    );
}

#[test]
fn a_driver_with_no_telemetry_gives_reasons_never_zeros() {
    in_scenario(
        "a_driver_with_no_telemetry_gives_reasons_never_zeros",
        "one_gpu",
        |probe, _| {
            let t = probe.telemetry(0).unwrap();
            let fields = [
                (
                    TelemetryField::GpuUtilizationPercent,
                    t.gpu_utilization_percent.is_none(),
                ),
                (
                    TelemetryField::MemoryUtilizationPercent,
                    t.memory_utilization_percent.is_none(),
                ),
                (
                    TelemetryField::EncoderUtilizationPercent,
                    t.encoder_utilization_percent.is_none(),
                ),
                (
                    TelemetryField::DecoderUtilizationPercent,
                    t.decoder_utilization_percent.is_none(),
                ),
                (
                    TelemetryField::TemperatureCelsius,
                    t.temperature_celsius.is_none(),
                ),
                (TelemetryField::PowerWatts, t.power_watts.is_none()),
                (
                    TelemetryField::PowerLimitWatts,
                    t.power_limit_watts.is_none(),
                ),
                (TelemetryField::SmClockMhz, t.sm_clock_mhz.is_none()),
                (TelemetryField::MemoryClockMhz, t.memory_clock_mhz.is_none()),
                (TelemetryField::FanPercent, t.fan_percent.is_none()),
                (
                    TelemetryField::PcieLinkGeneration,
                    t.pcie_link_generation.is_none(),
                ),
                (TelemetryField::PcieLinkWidth, t.pcie_link_width.is_none()),
            ];
            for (field, none) in fields {
                assert_none_because(&t, field, none, "not supported by this GPU/driver");
            }
            // No samples at all: NOT_FOUND is "no sample", not an error and not 0 %.
            let rows = probe.processes(0).unwrap();
            assert!(!rows.is_empty());
            assert!(rows.iter().all(|r| r.utilization_percent.is_none()));
        },
    );
}

#[test]
fn mig_devices_say_utilization_is_unsupported_on_mig() {
    in_scenario(
        "mig_devices_say_utilization_is_unsupported_on_mig",
        "mig",
        |probe, _| {
            let t = probe.telemetry(0).unwrap();
            assert_none_because(
                &t,
                TelemetryField::GpuUtilizationPercent,
                t.gpu_utilization_percent.is_none(),
                "MIG",
            );
        },
    );
}

#[test]
fn per_process_utilization_is_incremental_between_readings() {
    in_scenario(
        "per_process_utilization_is_incremental_between_readings",
        "telemetry",
        |probe, _| {
            let util = |probe: &Probe| -> Vec<(u32, Option<f64>)> {
                probe
                    .processes(0)
                    .unwrap()
                    .iter()
                    .map(|r| (r.pid, r.utilization_percent))
                    .collect()
            };
            // First reading: every buffered sample; pid 4014001 averaged over 80 and 90.
            assert_eq!(
                util(&probe),
                [(4_014_001, Some(85.0)), (4_014_002, Some(12.0))]
            );
            // Straight after: nothing new (NOT_FOUND) → None, never 0.
            assert_eq!(util(&probe), [(4_014_001, None), (4_014_002, None)]);
            // The double takes a new sample of pid 4014001 1.5 s after init.
            std::thread::sleep(Duration::from_millis(1600));
            assert_eq!(util(&probe), [(4_014_001, Some(40.0)), (4_014_002, None)]);
            // The idle L4 has no processes and no samples.
            assert!(probe.processes(1).unwrap().is_empty());
        },
    );
}

#[test]
fn a_gpu_that_stops_answering_fails_alone() {
    in_scenario(
        "a_gpu_that_stops_answering_fails_alone",
        "gpu_lost",
        |probe, _| {
            // Before: both GPUs answer.
            assert_eq!(
                probe.telemetry(1).unwrap().gpu_utilization_percent,
                Some(3.0)
            );
            let before = probe.snapshot_all_with_telemetry().unwrap();
            assert!(before.iter().all(|s| s.telemetry.is_some()));
            // GPU 1 falls off the bus 1.5 s after init.
            std::thread::sleep(Duration::from_millis(1600));
            match probe.telemetry(1) {
                Err(HypomnesisError::Nvml { code: Some(15), .. }) => {}
                other => panic!("expected GPU_IS_LOST, got {other:?}"),
            }
            assert_eq!(
                probe.telemetry(0).unwrap().gpu_utilization_percent,
                Some(55.0)
            );
            let after = probe.snapshot_all_with_telemetry().unwrap();
            assert_eq!(after.len(), 2);
            assert!(after[0].telemetry.is_some(), "GPU 0 goes on");
            assert!(after[1].telemetry.is_none());
            let error = after[1]
                .gpu_error
                .as_ref()
                .expect("GPU 1's failure is reported");
            assert!(error.to_string().contains("GPU is lost"), "{error}");
        },
    );
}

#[test]
fn plain_snapshots_do_not_read_telemetry() {
    in_scenario(
        "plain_snapshots_do_not_read_telemetry",
        "telemetry",
        |probe, _| {
            assert!(
                probe
                    .snapshot_all()
                    .unwrap()
                    .iter()
                    .all(|s| s.telemetry.is_none())
            );
            assert!(probe.snapshot(0).unwrap().telemetry.is_none());
            let with = probe.snapshot_all_with_telemetry().unwrap();
            assert_eq!(with.len(), 2);
            assert_eq!(
                with[0]
                    .telemetry
                    .as_ref()
                    .and_then(|t| t.temperature_celsius),
                Some(64.0)
            );
        },
    );
}

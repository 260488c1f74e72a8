//! DRM telemetry and ROCm/KFD processes through `Probe`, from the fixture tree
//! `fixtures/drm/tree.rs::telemetry_tree` (the standard tree plus hwmon, busy-percent,
//! `pp_dpm_*`, PCIe link and KFD files). Expected numbers are computed by hand from the files
//! the tree writes; the arithmetic is next to each. Rates whose time base is the wall clock
//! are checked exactly by the unit tests in `src/gpu/drm/telemetry.rs` (which set the clock);
//! here they are bounded.
#![cfg(target_os = "linux")]

#[path = "../../../fixtures/drm/tree.rs"]
mod tree;

use hypomnesis::{GpuQuerySource, Probe, TelemetryField};
use tree::DrmTree;

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

fn probe(tree: &DrmTree) -> Probe {
    Probe::builder()
        .proc_root(tree.proc())
        .sys_root(tree.sys())
        .use_nvml(false)
        .use_nvidia_smi(false)
        .build()
}

fn close(value: Option<f64>, expected: f64) -> bool {
    value.is_some_and(|v| (v - expected).abs() < 1e-9)
}

#[test]
fn amdgpu_discrete_reads_busy_percent_hwmon_dpm_and_link() {
    let tree = tree::telemetry_tree();
    let t = probe(&tree).telemetry(1).unwrap();
    assert_eq!(t.index, 1);
    assert_eq!(t.source, GpuQuerySource::Drm);
    assert!(close(t.gpu_utilization_percent, 37.0));
    assert!(close(t.memory_utilization_percent, 12.0));
    // temp1 is labelled edge: 45 000 m°C.
    assert!(close(t.temperature_celsius, 45.0));
    // power1_average 212 000 000 µW, power1_cap 303 000 000 µW.
    assert!(close(t.power_watts, 212.0));
    assert!(close(t.power_limit_watts, 303.0));
    // pwm1 102 of 255 = 40 %.
    assert!(close(t.fan_percent, 40.0));
    assert_eq!(t.sm_clock_mhz, Some(2482));
    assert_eq!(t.memory_clock_mhz, Some(1250));
    // 16.0 GT/s is PCIe Gen 4.
    assert_eq!(t.pcie_link_generation, Some(4));
    assert_eq!(t.pcie_link_width, Some(16));
    assert_eq!(t.encoder_utilization_percent, None);
    assert!(
        t.unavailable_reason(TelemetryField::EncoderUtilizationPercent)
            .is_some()
    );
}

#[test]
fn an_apu_has_sensors_but_no_fan_cap_memory_busy_or_link() {
    let tree = tree::telemetry_tree();
    let t = probe(&tree).telemetry(3).unwrap();
    assert!(close(t.gpu_utilization_percent, 5.0));
    assert!(close(t.temperature_celsius, 52.0));
    // power1_input 15 000 000 µW (no power1_average on this kernel).
    assert!(close(t.power_watts, 15.0));
    assert_eq!(t.sm_clock_mhz, Some(1500));
    assert_eq!(t.memory_clock_mhz, Some(1000));
    for field in [
        TelemetryField::MemoryUtilizationPercent,
        TelemetryField::PowerLimitWatts,
        TelemetryField::FanPercent,
        TelemetryField::PcieLinkGeneration,
        TelemetryField::PcieLinkWidth,
    ] {
        assert!(t.unavailable_reason(field).is_some(), "{field}: {t:#?}");
    }
    assert_eq!(t.fan_percent, None);
    assert_eq!(t.power_limit_watts, None);
}

#[test]
fn missing_hwmon_gives_reasons_not_zeros() {
    let tree = tree::telemetry_tree();
    let t = probe(&tree).telemetry(0).unwrap();
    for field in [
        TelemetryField::TemperatureCelsius,
        TelemetryField::PowerWatts,
        TelemetryField::PowerLimitWatts,
        TelemetryField::FanPercent,
    ] {
        let reason = t
            .unavailable_reason(field)
            .unwrap_or_else(|| panic!("{field}"));
        assert!(reason.contains("hwmon"), "{field}: {reason}");
    }
    assert_eq!(t.temperature_celsius, None);
    assert_eq!(t.power_watts, None);
    // i915's card-level gt_act_freq_mhz.
    assert_eq!(t.sm_clock_mhz, Some(1300));
    // First call: engine utilization needs a second reading.
    assert_eq!(
        t.unavailable_reason(TelemetryField::GpuUtilizationPercent),
        Some("warming up: needs a second reading")
    );
}

#[test]
fn xe_energy_needs_two_readings_and_then_gives_watts() {
    let tree = tree::telemetry_tree();
    let probe = probe(&tree);
    let first = probe.telemetry(2).unwrap();
    assert_eq!(first.power_watts, None);
    assert_eq!(
        first.unavailable_reason(TelemetryField::PowerWatts),
        Some("warming up: needs a second reading")
    );
    // The `card` channel (power2_max, 190 W) wins over `pkg` (power1_max, 150 W).
    assert!(close(first.power_limit_watts, 190.0));
    assert_eq!(first.sm_clock_mhz, Some(2850));
    assert_eq!(first.pcie_link_generation, Some(4));
    assert_eq!(first.pcie_link_width, Some(8));
    assert!(
        first
            .unavailable_reason(TelemetryField::TemperatureCelsius)
            .is_some()
    );
    // 2 J on the card channel after at least 20 ms: at most 2 / 0.02 = 100 W, and more than
    // 0 W (the test runs in well under the 2 000 s that would round it to nothing).
    std::thread::sleep(std::time::Duration::from_millis(20));
    tree.write_device_file(
        "0000:08:00.0",
        "hwmon/hwmon4/energy2_input",
        &format!("{}\n", tree::XE_ENERGY_CARD_UJ + 2_000_000),
    );
    let second = probe.telemetry(2).unwrap();
    let watts = second.power_watts.unwrap();
    assert!(watts > 0.001 && watts <= 100.0, "{watts}");
    // The counter went backwards: no figure, never a negative one.
    tree.write_device_file("0000:08:00.0", "hwmon/hwmon4/energy2_input", "1\n");
    let third = probe.telemetry(2).unwrap();
    assert_eq!(third.power_watts, None);
    assert!(
        third
            .unavailable_reason(TelemetryField::PowerWatts)
            .unwrap()
            .contains("backwards")
    );
}

#[test]
fn engine_counters_going_backwards_never_give_a_negative_figure() {
    let tree = tree::telemetry_tree();
    let probe = probe(&tree);
    probe.telemetry(0).unwrap();
    // Xorg's render counter reset to 0 (346 249 ns before): that client adds nothing.
    let reset = tree::fdinfo("i915-integrated").replace("346249 ns", "0 ns");
    tree.write_fdinfo(100, 5, &reset);
    tree.write_fdinfo(100, 6, &reset);
    let t = probe.telemetry(0).unwrap();
    assert!(close(t.gpu_utilization_percent, 0.0), "{t:#?}");
}

#[test]
fn a_rocm_process_in_both_fdinfo_and_kfd_is_listed_once_with_the_larger_figure() {
    let tree = tree::telemetry_tree();
    let listing = probe(&tree).gpu_process_listing(1).unwrap();
    let pids: Vec<u32> = listing.rows.iter().map(|r| r.pid).collect();
    // 300 and 400 from fdinfo; 900 from KFD only. 300 appears once.
    assert_eq!(pids, vec![300, 400, 900]);
    let game = &listing.rows[0];
    // fdinfo: 2068 KiB + 100 MiB; KFD vram_43521: 8 GiB — the larger.
    assert_eq!(game.used_bytes, Some(8 * GIB));
    // fdinfo's GTT is kept: 8192 KiB + 2 MiB.
    assert_eq!(game.system_bytes, Some(8192 * 1024 + 2 * MIB));
    assert_eq!(game.source, GpuQuerySource::Drm);
    let job = &listing.rows[2];
    assert_eq!(job.name.as_deref(), Some("rocm-job"));
    assert_eq!(job.used_bytes, Some(4 * GIB));
    assert_eq!(job.system_bytes, None);
    // On the APU KFD's 1 MiB is below fdinfo's 5348 KiB: fdinfo's figure stays (for 200 and
    // 250, which hold the same client).
    let apu = probe(&tree).gpu_process_listing(3).unwrap();
    assert_eq!(apu.rows.len(), 2);
    assert_eq!(apu.rows[0].used_bytes, Some(5348 * 1024));
    assert_eq!(apu.rows[1].used_bytes, Some(5348 * 1024));
}

#[test]
fn a_kfd_gpu_without_a_drm_card_adds_no_device_and_no_rows_elsewhere() {
    let tree = tree::telemetry_tree();
    let probe = probe(&tree);
    // gpu_id 9999 at 0000:45:00.0 has no card: still five DRM devices.
    assert_eq!(probe.device_count().unwrap(), 5);
    // pid 900's 1 GiB on it is not attributed to any visible device.
    for index in [0, 2, 3, 4] {
        let listing = probe.gpu_process_listing(index).unwrap();
        assert!(listing.rows.iter().all(|r| r.pid != 900), "device {index}");
    }
}

/// Telemetry finds devices from a list it reads again only when `class/drm` changes: a card
/// that appears is sampled at once, one that goes away is no longer sampled.
#[test]
fn telemetry_follows_cards_that_appear_and_disappear() {
    let tree = tree::telemetry_tree();
    let probe = probe(&tree);
    let (before, errors) = probe.telemetry_all().unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    let hotplugged = tree::PciCard {
        card: 9,
        render: Some(140),
        slot: "0000:0a:00.0",
        driver: "amdgpu",
        vendor: 0x1002,
        device: 0x744c,
        files: &[("gpu_busy_percent", "64\n")],
    };
    tree.pci_card(&hotplugged);
    let (after, _) = probe.telemetry_all().unwrap();
    assert_eq!(after.len(), before.len() + 1);
    // By PCI slot, 0a:00.0 comes after 08:00.0 (xe, index 2): index 3.
    assert!(
        close(after[3].gpu_utilization_percent, 64.0),
        "{:#?}",
        after[3]
    );
    assert!(close(
        probe.telemetry(3).unwrap().gpu_utilization_percent,
        64.0
    ));
    // Unplugged: its class entries go.
    for node in ["card9", "renderD140"] {
        std::fs::remove_dir_all(tree.sys().join("class/drm").join(node)).unwrap();
    }
    let (gone, _) = probe.telemetry_all().unwrap();
    assert_eq!(gone.len(), before.len());
    assert!(
        close(gone[3].gpu_utilization_percent, 5.0),
        "the APU is index 3 again"
    );
}

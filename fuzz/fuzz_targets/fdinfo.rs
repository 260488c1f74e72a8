//! Every DRM / PID-namespace parser on arbitrary bytes: fdinfo text, sizes and units, sysfs
//! numbers and PCI ids, PCI slots, the PCI ids database, fd link targets, `dev_t` splitting,
//! `NSpid` lines and namespace links; the telemetry parsers (`pp_dpm_*` tables, PCIe link
//! files, hwmon numbers, KFD `properties`, counter-delta arithmetic) and the Windows PDH
//! instance names and engine aggregation. They must never panic.
//!
//! The parser files are pure (std only), so they are compiled in here as they are, without a
//! public fuzzing API in the library.
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/hypomnesis/src/gpu/drm/parse.rs"]
mod parse;

#[allow(dead_code)]
#[path = "../../crates/hypomnesis/src/gpu/drm/sensors.rs"]
mod sensors;

#[allow(dead_code)]
#[path = "../../crates/hypomnesis/src/gpu/pdh.rs"]
mod pdh;

#[allow(dead_code, unused_imports)]
#[path = "../../crates/hypomnesis/src/pidns.rs"]
mod pidns;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    parse::exercise_all(data);
    sensors::exercise_all(data);
    pdh::exercise_all(data);
    pidns::exercise_all(&String::from_utf8_lossy(data));
});

//! The `debug-output` feature: the raw values NVML gives reach the application's logger, under
//! the target `hypomnesis::raw` at debug level, so a user can see what the driver said before
//! the library interpreted it — and nothing is written anywhere unless a logger listens.
#![cfg(target_os = "linux")]

use std::sync::{Mutex, PoisonError};

/// A logger keeping what it receives (the `log` facade has no test logger of its own; this is
/// the few lines its documentation shows).
struct Keep(Mutex<Vec<(log::Level, String, String)>>);

impl log::Log for Keep {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push((
            record.level(),
            record.target().to_owned(),
            record.args().to_string(),
        ));
    }
    fn flush(&self) {}
}

static KEPT: Keep = Keep(Mutex::new(Vec::new()));

#[test]
fn nvmls_raw_memory_figures_and_process_rows_reach_a_logger_as_debug_records() {
    test_support::with_nvml_double(
        "nvmls_raw_memory_figures_and_process_rows_reach_a_logger_as_debug_records",
        "one_gpu",
        |lib, _scenario| {
            log::set_logger(&KEPT).unwrap();
            log::set_max_level(log::LevelFilter::Debug);
            let probe = hypomnesis::Probe::builder()
                .nvml_lib(lib)
                .use_nvidia_smi(false)
                .build();
            let device = probe.device_info(0).unwrap();
            probe.processes(0).unwrap();
            let kept = KEPT.0.lock().unwrap().clone();
            let raw: Vec<&(log::Level, String, String)> = kept
                .iter()
                .filter(|(_, target, _)| target == "hypomnesis::raw")
                .collect();
            let memory = raw
                .iter()
                .find(|(_, _, m)| m.contains("nvmlDeviceGetMemoryInfo"))
                .unwrap_or_else(|| panic!("no raw memory record in {kept:?}"));
            assert_eq!(memory.0, log::Level::Debug);
            assert!(
                memory
                    .2
                    .contains(&format!("total={}", device.total_bytes.unwrap())),
                "{memory:?}"
            );
            assert!(
                raw.iter()
                    .any(|(_, _, m)| m.contains("nvmlDeviceGetComputeRunningProcesses")),
                "no raw process rows in {kept:?}"
            );
        },
    );
}

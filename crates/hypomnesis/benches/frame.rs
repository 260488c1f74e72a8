//! Budget: one whole frame of the machine (`Probe::frame(FrameRequest::ALL)`: host memory,
//! every device with telemetry, every process named, with RSS and cgroup) costs at most 1.5×
//! what the separate calls cost that it replaces, measured in the same run: `Probe::devices`
//! + `Probe::gpu_process_listing` per device + `Probe::host_memory` + `Probe::telemetry_all`.
//!
//! NVIDIA is the NVML double with the `four_gpus` scenario; `/proc` and `/sys` are this
//! machine's (so DRM finds whatever cards it has, usually none, and process names are looked
//! up in the real procfs).
//!
//! Run with `cargo bench -p hypomnesis --bench frame`. The double is built on first use.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hypomnesis::{FrameRequest, Probe};

/// The separate calls a view made before frames, on one probe.
fn separate_calls(probe: &Probe) -> usize {
    let devices = probe.devices().unwrap();
    let mut rows = 0;
    for device in &devices {
        rows += probe.gpu_process_listing(device.index).unwrap().rows.len();
    }
    black_box(probe.host_memory().unwrap());
    black_box(probe.telemetry_all().unwrap());
    rows + devices.len()
}

fn frame(c: &mut Criterion) {
    let scenario = test_support::nvml_scenario("four_gpus");
    let lib = test_support::nvml_double_for(&scenario).join("libnvidia-ml.so.1");
    // SAFETY: set before any thread that reads the environment is started by this bench.
    unsafe { std::env::set_var("NVML_DOUBLE_SCENARIO", &scenario) };
    let probe = Probe::builder()
        .nvml_lib(&lib)
        .use_nvidia_smi(false)
        .build();
    let first = probe.frame(FrameRequest::ALL);
    assert_eq!(first.devices.len(), 4, "the four_gpus scenario is loaded");
    assert!(first.devices.iter().all(|d| d.processes.is_some()));
    assert_eq!(
        first.devices.len() + first.processes().count(),
        separate_calls(&probe),
        "the frame and the separate calls see the same devices and rows"
    );
    let mut group = c.benchmark_group("frame_vs_separate_calls");
    group.bench_function("Probe::frame(FrameRequest::ALL)", |b| {
        b.iter(|| black_box(probe.frame(FrameRequest::ALL)));
    });
    group.bench_function(
        "devices + gpu_process_listing per device + host_memory + telemetry_all",
        |b| {
            b.iter(|| black_box(separate_calls(&probe)));
        },
    );
    group.finish();
}

criterion_group!(benches, frame);
criterion_main!(benches);

//! `hmn` end to end: the device summary against the NVML double, and the "no GPU source"
//! message on a machine without NVIDIA.
#![cfg(target_os = "linux")]

use assert_cmd::Command;
use serde_json::Value;

const MIB: u64 = 1024 * 1024;

fn hmn_on(scenario: &str) -> (Command, Value) {
    let path = test_support::nvml_scenario(scenario);
    let lib = test_support::nvml_double_for(&path).join("libnvidia-ml.so.1");
    let declared: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut cmd = Command::cargo_bin("hmn").unwrap();
    cmd.env("HYPOMNESIS_NVML_LIB", lib)
        .env("NVML_DOUBLE_SCENARIO", &path)
        .env("HYPOMNESIS_NVIDIA_SMI", "/nonexistent/nvidia-smi");
    (cmd, declared)
}

#[test]
fn summary_prints_one_line_per_gpu_with_free_total_reserved_and_driver() {
    let (mut cmd, declared) = hmn_on("four_gpus");
    let output = cmd.assert().success().get_output().stdout.clone();
    let stdout = String::from_utf8(output).unwrap();
    let devices = declared["devices"].as_array().unwrap();
    for (i, device) in devices.iter().enumerate() {
        let memory = &device["memory"];
        let line = format!(
            "GPU {i} [{}]: free {} MiB / {} MiB ({} MiB reserved), driver {}",
            device["name"].as_str().unwrap(),
            memory["free"].as_u64().unwrap() / MIB,
            memory["total"].as_u64().unwrap() / MIB,
            memory["reserved"].as_u64().unwrap() / MIB,
            declared["driver_version"].as_str().unwrap(),
        );
        assert!(stdout.contains(&line), "missing `{line}` in\n{stdout}");
    }
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("GPU ")).count(),
        devices.len()
    );
    assert!(stdout.lines().any(|l| l.starts_with("host: ")), "{stdout}");
}

#[test]
fn json_summary_has_bytes_and_null_for_unknown() {
    let (mut cmd, declared) = hmn_on("pre_r510");
    let output = cmd.arg("--json").assert().success().get_output().stdout.clone();
    let doc: Value = serde_json::from_slice(&output).unwrap();
    let device = &doc["devices"][0];
    assert_eq!(
        device["total_bytes"].as_u64(),
        declared["devices"][0]["memory"]["total"].as_u64()
    );
    assert!(device["reserved_bytes"].is_null(), "{device}");
    assert!(doc["host"]["total_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn without_any_nvidia_source_hmn_says_what_it_tried_and_exits_2() {
    let mut cmd = Command::cargo_bin("hmn").unwrap();
    cmd.env("HYPOMNESIS_NVML_LIB", "/nonexistent/libnvidia-ml.so.1")
        .env("HYPOMNESIS_NVIDIA_SMI", "/nonexistent/nvidia-smi");
    let assert = cmd.assert().code(2);
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("no visible GPUs"), "{stderr}");
    assert!(stderr.contains("NVML: /nonexistent/libnvidia-ml.so.1 could not be loaded"), "{stderr}");
    assert!(stderr.contains("No such file"), "the loader's own reason is kept: {stderr}");
    assert!(stderr.contains("nvidia-smi: "), "{stderr}");
    assert!(stderr.contains("not found"), "{stderr}");
}

#[test]
fn a_bad_flag_is_a_usage_error() {
    let assert = Command::cargo_bin("hmn").unwrap().arg("--bogus").assert().code(2);
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("unknown argument `--bogus`"), "{stderr}");
}

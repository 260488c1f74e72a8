//! `hmn spill -- CMD`, the original crate's command: `hmn run` showing only its spill report.
//! Spill is measurable on Windows only, so here every report says why it could not be
//! measured; what these tests hold is the command's contract: CMD runs with hmn's stdio, its
//! exit code passes through, stderr has how it ended and the spill lines (not `hmn run`'s
//! peaks), and `--json` prints the `spill` object alone, as docs/json.md documents it.
#![cfg(target_os = "linux")]

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

/// `hmn` against the NVML double's one GPU, so a device is sampled.
fn hmn_with_one_gpu() -> Command {
    let scenario = test_support::nvml_scenario("one_gpu");
    let lib = test_support::nvml_double_for(&scenario).join("libnvidia-ml.so.1");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hmn"));
    cmd.env_remove("HYPOMNESIS_PROC_ROOT")
        .env_remove("HYPOMNESIS_SYS_ROOT")
        .env("HYPOMNESIS_NVML_LIB", lib)
        .env("NVML_DOUBLE_SCENARIO", &scenario)
        .env("HYPOMNESIS_NVIDIA_SMI", "/nonexistent/nvidia-smi");
    cmd
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

#[test]
fn spill_runs_the_command_passes_its_exit_code_and_reports_only_spill() {
    let out = hmn_with_one_gpu()
        .args(["spill", "--", "sh", "-c", "echo from-cmd; exit 3"])
        .output()
        .unwrap();
    let (stdout, stderr) = (text(out.stdout), text(out.stderr));
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(stdout, "from-cmd\n", "CMD keeps stdout");
    assert!(
        stderr.contains("`sh -c 'echo from-cmd; exit 3'` exited with status 3"),
        "{stderr}"
    );
    assert!(
        stderr.contains("\tSpill: not measurable on this platform"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("Peak RSS") && !stderr.contains("Samples:"),
        "hmn run's other lines are not spill's: {stderr}"
    );
}

#[test]
fn spill_json_is_the_run_reports_spill_object_alone_as_documented() {
    let out = hmn_with_one_gpu()
        .args(["spill", "--json", "--", "sh", "-c", "echo from-cmd"])
        .output()
        .unwrap();
    let (stdout, stderr) = (text(out.stdout), text(out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("from-cmd"),
        "CMD's stdout goes to stderr: {stderr}"
    );
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(report["measurable"], false);
    assert_eq!(
        report["spilled"],
        Value::Null,
        "unknown is null, never false"
    );
    assert_eq!(report["reason"], "not measurable on this platform");
    let devices = report["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1, "the double's GPU is sampled: {report}");
    assert_eq!(devices[0]["index"], 0);
    let documented: BTreeSet<String> =
        test_support::json_docs::documented("`hmn run`", "The report")
            .into_iter()
            .filter_map(|f| f.strip_prefix("spill.").map(str::to_owned))
            .collect();
    assert_eq!(test_support::json_docs::emitted(&report), documented);
}

#[test]
fn spill_says_when_the_command_cannot_be_found_and_exits_127_as_a_shell_does() {
    let out = hmn_with_one_gpu()
        .args(["spill", "--", "/nonexistent/cmd"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(text(out.stderr).contains("/nonexistent/cmd"));
}

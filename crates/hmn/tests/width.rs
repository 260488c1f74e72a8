//! `hmn ps` on a real terminal (a pseudo-terminal of a set width): the table fits it, cutting
//! names with `…` and leaving out columns in the documented order; `--wide` and `COLUMNS`
//! change that as documented.
#![cfg(target_os = "linux")]

use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};

use serde_json::Value;

const LONG_NAME: &str = "a-process-name-far-longer-than-any-terminal-would-show-in-one-column";

/// A fixture `/proc` naming `one_gpu`'s processes `LONG_NAME`.
fn fake_proc() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("meminfo"),
        "MemTotal:       65536000 kB\nMemAvailable:   32768000 kB\n",
    )
    .unwrap();
    let scenario = test_support::nvml_scenario("one_gpu");
    let declared: Value =
        serde_json::from_str(&std::fs::read_to_string(scenario).unwrap()).unwrap();
    for list in ["compute_processes", "graphics_processes"] {
        for process in declared["devices"][0][list].as_array().unwrap() {
            let pid = process["pid"].as_u64().unwrap();
            let p = root.join(pid.to_string());
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("comm"), "a-process-name-\n").unwrap();
            std::fs::write(p.join("cmdline"), format!("{LONG_NAME}\0--serve\0")).unwrap();
            std::fs::write(
                p.join("status"),
                format!("Name:\tx\nTgid:\t{pid}\nPid:\t{pid}\nUid:\t0\t0\t0\t0\n"),
            )
            .unwrap();
        }
    }
    dir
}

/// What `hmn args` prints on a terminal `columns` wide (`COLUMNS` set to `env_columns` when
/// given), with `\r\n` made `\n`.
fn on_terminal(columns: u16, env_columns: Option<&str>, args: &[&str]) -> String {
    let (mut master, mut slave): (libc::c_int, libc::c_int) = (-1, -1);
    let size = libc::winsize {
        ws_row: 40,
        ws_col: columns,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: both out-pointers are valid; a null name and termios are allowed, and `size`
    // outlives the call.
    let rc = unsafe {
        libc::openpty(
            &raw mut master,
            &raw mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &raw const size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty returned two fresh descriptors that nothing else owns.
    let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let proc_root = fake_proc();
    let scenario = test_support::nvml_scenario("one_gpu");
    let lib = test_support::nvml_double_for(&scenario).join("libnvidia-ml.so.1");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hmn"));
    cmd.args(args)
        .env("HYPOMNESIS_NVML_LIB", lib)
        .env("NVML_DOUBLE_SCENARIO", &scenario)
        .env("HYPOMNESIS_NVIDIA_SMI", "/nonexistent/nvidia-smi")
        .env("HYPOMNESIS_PROC_ROOT", proc_root.path())
        .env("HYPOMNESIS_SYS_ROOT", proc_root.path().join("sys"))
        .env_remove("COLUMNS")
        .stdin(Stdio::null())
        .stdout(Stdio::from(slave))
        .stderr(Stdio::null());
    if let Some(c) = env_columns {
        cmd.env("COLUMNS", c);
    }
    let mut child = cmd.spawn().unwrap();
    drop(cmd); // the parent's copy of the slave end: EOF (EIO) once the child is done
    let mut bytes = Vec::new();
    let mut master = master;
    let mut buf = [0_u8; 4096];
    loop {
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break, // EIO: the slave side is closed
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
    }
    child.wait().unwrap();
    String::from_utf8_lossy(&bytes).replace("\r\n", "\n")
}

fn widest(text: &str) -> usize {
    text.lines()
        .map(unicode_width::UnicodeWidthStr::width)
        .max()
        .unwrap_or(0)
}

#[test]
fn ps_fits_a_narrow_terminal_cutting_names_and_dropping_optional_columns() {
    let text = on_terminal(64, None, &["ps", "--full"]);
    assert!(widest(&text) <= 64, "{text}");
    assert!(text.contains('…'), "{text}");
    assert!(!text.contains("SPILL"), "SPILL goes first: {text}");
    assert!(
        text.contains("PID") && text.contains("VRAM") && text.contains("DEVICE"),
        "{text}"
    );
}

#[test]
fn ps_on_a_wide_terminal_is_whole() {
    let text = on_terminal(250, None, &["ps", "--full"]);
    assert!(!text.contains('…'), "{text}");
    assert!(text.contains(&format!("{LONG_NAME} --serve")), "{text}");
}

#[test]
fn wide_opts_out_of_fitting_the_terminal() {
    let text = on_terminal(64, None, &["ps", "--full", "--wide"]);
    assert!(!text.contains('…'), "{text}");
    assert!(text.contains("SPILL") && text.contains(LONG_NAME), "{text}");
}

#[test]
fn columns_overrides_the_terminal_width() {
    let text = on_terminal(250, Some("60"), &["ps", "--full"]);
    assert!(widest(&text) <= 60, "{text}");
    assert!(text.contains('…'), "{text}");
}

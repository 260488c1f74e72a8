//! Pure parsers for `/proc/meminfo`, PSI files and cgroup files.
//!
//! Kept apart from I/O so they build and are tested on every OS; the readers in `linux.rs`
//! add the path to a [`Malformed`].
//!
//! Facts they rely on:
//! - `meminfo` writes `kB` and means KiB. `MemAvailable` exists from Linux 3.14.
//! - PSI (`/proc/pressure/memory`, Linux ≥ 4.20, and cgroup v2 `memory.pressure`) is
//!   `some avg10=… avg60=… avg300=… total=…` then a `full …` line of the same shape; averages
//!   are percents, `total` is microseconds.
//! - `/proc/<pid>/cgroup` lines are `hierarchy-id:controllers:path`: `0::<path>` for cgroup
//!   v2, `N:memory:<path>` (or `N:cpu,memory:<path>` when controllers share a hierarchy) for
//!   v1's memory controller.
//! - An unlimited cgroup v2 limit reads `max`; an unlimited v1 limit reads
//!   `PAGE_COUNTER_MAX × page size` rounded, such as `9223372036854771712` (2^63 − 4096) with
//!   4 KiB pages, and a different number with 16 or 64 KiB pages. Any value ≥ 2^62 is read as
//!   unlimited: no machine has 4 EiB of RAM.

use crate::host::MemoryPressure;
use crate::ram::parse::{Malformed, key_lines};

/// Cgroup limits at or above this many bytes (4 EiB) are the "unlimited" sentinel.
pub(crate) const UNLIMITED_AT_OR_ABOVE: u64 = 1 << 62;

/// The fields of `/proc/meminfo` this crate uses, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meminfo {
    /// `MemTotal` (always present).
    pub(crate) total: u64,
    /// `MemAvailable` (Linux ≥ 3.14).
    pub(crate) available: Option<u64>,
    /// `SwapTotal`.
    pub(crate) swap_total: Option<u64>,
    /// `SwapFree`.
    pub(crate) swap_free: Option<u64>,
}

/// Parses `/proc/meminfo`. `MemTotal` is required.
pub(crate) fn parse_meminfo(text: &str) -> Result<Meminfo, Malformed> {
    let mut total = None;
    let mut available = None;
    let mut swap_total = None;
    let mut swap_free = None;
    for line in key_lines(text) {
        let slot = match line.key {
            "MemTotal" => &mut total,
            "MemAvailable" => &mut available,
            "SwapTotal" => &mut swap_total,
            "SwapFree" => &mut swap_free,
            _ => continue,
        };
        *slot = Some(line.kib_as_bytes()?);
    }
    let total = total.ok_or_else(|| Malformed::new("no `MemTotal` line"))?;
    Ok(Meminfo {
        total,
        available,
        swap_total,
        swap_free,
    })
}

/// One line of a PSI file.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PressureLine {
    avg10: f64,
    avg60: f64,
    avg300: f64,
    total_us: u64,
}

/// Parses a PSI file (`/proc/pressure/memory` or a cgroup's `memory.pressure`). The `some`
/// line is required; the `full` line is optional (it is absent for the CPU controller on
/// older kernels, and this parser does not assume the memory file always has it).
pub(crate) fn parse_pressure(text: &str) -> Result<MemoryPressure, Malformed> {
    let mut some = None;
    let mut full = None;
    for (index, line) in text.lines().enumerate() {
        let mut words = line.split_ascii_whitespace();
        let slot = match words.next() {
            Some("some") => &mut some,
            Some("full") => &mut full,
            _ => continue,
        };
        *slot = Some(parse_pressure_line(index + 1, line, words)?);
    }
    let some = some.ok_or_else(|| Malformed::new("no `some` line"))?;
    Ok(MemoryPressure {
        some_avg10: some.avg10,
        some_avg60: some.avg60,
        some_avg300: some.avg300,
        some_total_us: some.total_us,
        full_avg10: full.map(|f| f.avg10),
        full_avg60: full.map(|f| f.avg60),
        full_avg300: full.map(|f| f.avg300),
        full_total_us: full.map(|f| f.total_us),
    })
}

fn parse_pressure_line<'a>(
    number: usize,
    line: &str,
    words: impl Iterator<Item = &'a str>,
) -> Result<PressureLine, Malformed> {
    let mut avg10 = None;
    let mut avg60 = None;
    let mut avg300 = None;
    let mut total_us = None;
    for word in words {
        let (key, value) = word.split_once('=').ok_or_else(|| {
            Malformed::at_line(number, line, format_args!("`{word}` is not key=value"))
        })?;
        let bad = || Malformed::at_line(number, line, format_args!("`{word}`: not a number"));
        let avg = || {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(bad)
        };
        match key {
            "avg10" => avg10 = Some(avg()?),
            "avg60" => avg60 = Some(avg()?),
            "avg300" => avg300 = Some(avg()?),
            "total" => total_us = Some(value.parse::<u64>().map_err(|_| bad())?),
            _ => {}
        }
    }
    let missing = |key: &str| Malformed::at_line(number, line, format_args!("no `{key}=`"));
    Ok(PressureLine {
        avg10: avg10.ok_or_else(|| missing("avg10"))?,
        avg60: avg60.ok_or_else(|| missing("avg60"))?,
        avg300: avg300.ok_or_else(|| missing("avg300"))?,
        total_us: total_us.ok_or_else(|| missing("total"))?,
    })
}

/// Where `/proc/<pid>/cgroup` places a process, as far as memory is concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CgroupMembership {
    /// The cgroup v2 path (`0::<path>`), whether or not v2 has the memory controller.
    pub(crate) v2_path: Option<String>,
    /// The cgroup v1 hierarchy holding the memory controller.
    pub(crate) v1_memory: Option<V1Membership>,
}

/// The v1 line naming the memory controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct V1Membership {
    /// The controllers sharing the hierarchy, as written (`memory`, `cpu,memory`); the
    /// hierarchy is usually mounted under that name.
    pub(crate) controllers: String,
    /// The cgroup's path in the hierarchy.
    pub(crate) path: String,
}

/// Parses `/proc/<pid>/cgroup`.
pub(crate) fn parse_proc_cgroup(text: &str) -> Result<CgroupMembership, Malformed> {
    let mut membership = CgroupMembership::default();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        // The path is last and may itself contain ':'.
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Malformed::at_line(
                index + 1,
                line,
                "expected `hierarchy-id:controllers:path`",
            ));
        };
        let id: u32 = id
            .parse()
            .map_err(|_| Malformed::at_line(index + 1, line, "hierarchy id is not a number"))?;
        if id == 0 && controllers.is_empty() {
            membership.v2_path = Some(path.to_owned());
        } else if controllers.split(',').any(|c| c == "memory") {
            membership.v1_memory = Some(V1Membership {
                controllers: controllers.to_owned(),
                path: path.to_owned(),
            });
        }
    }
    Ok(membership)
}

/// Whether a cgroup v2 `cgroup.controllers` file lists `memory`.
pub(crate) fn lists_memory_controller(controllers: &str) -> bool {
    controllers.split_ascii_whitespace().any(|c| c == "memory")
}

/// A cgroup memory limit: `max` (v2) or a value at or above [`UNLIMITED_AT_OR_ABOVE`] (v1's
/// sentinel) is `None`; any other number is returned as is, even when it exceeds the host's
/// RAM (such a limit does not bind, but it is what the cgroup says).
pub(crate) fn parse_cgroup_limit(text: &str) -> Result<Option<u64>, Malformed> {
    if text.trim() == "max" {
        return Ok(None);
    }
    let bytes = parse_cgroup_bytes(text)?;
    Ok((bytes < UNLIMITED_AT_OR_ABOVE).then_some(bytes))
}

/// A cgroup byte count (`memory.current`, `memory.usage_in_bytes`, …): one decimal number.
pub(crate) fn parse_cgroup_bytes(text: &str) -> Result<u64, Malformed> {
    let value = text.trim();
    value
        .parse()
        .map_err(|_| Malformed::new(format!("`{value}`: not a number of bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured on a 24 GiB Linux 6.18 VM, trimmed.
    const MEMINFO: &str = "MemTotal:       24684096 kB\nMemFree:        24391776 kB\n\
        MemAvailable:   24372696 kB\nBuffers:             936 kB\nCached:           185368 kB\n\
        SwapCached:            0 kB\nSwapTotal:        2097148 kB\nSwapFree:         2097000 kB\n\
        HugePages_Total:       0\nHugePages_Free:        0\nHugepagesize:       2048 kB\n";

    #[test]
    fn meminfo_figures_are_converted_from_kib_to_bytes() {
        assert_eq!(
            parse_meminfo(MEMINFO),
            Ok(Meminfo {
                total: 24_684_096 * 1024,
                available: Some(24_372_696 * 1024),
                swap_total: Some(2_097_148 * 1024),
                swap_free: Some(2_097_000 * 1024),
            })
        );
    }

    #[test]
    fn meminfo_before_linux_3_14_has_no_available_figure() {
        let info = parse_meminfo("MemTotal:  1000 kB\nMemFree:  500 kB\n").unwrap();
        assert_eq!(info.total, 1_024_000);
        assert_eq!(info.available, None);
        assert_eq!(info.swap_total, None);
        assert_eq!(info.swap_free, None);
    }

    #[test]
    fn meminfo_without_memtotal_is_an_error() {
        let err = parse_meminfo("MemFree:  500 kB\n").unwrap_err();
        assert_eq!(err.to_string(), "no `MemTotal` line");
    }

    #[test]
    fn malformed_meminfo_line_is_named() {
        let err = parse_meminfo("MemTotal:  1000 kB\nMemAvailable:  lots kB\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2 `MemAvailable: lots kB`: not a number"
        );
    }

    #[test]
    fn meminfo_lines_without_a_unit_are_ignored_unless_used() {
        assert!(parse_meminfo("MemTotal: 8 kB\nHugePages_Total:       0\n").is_ok());
    }

    #[test]
    fn pressure_with_some_and_full_lines_is_read() {
        let text = "some avg10=1.50 avg60=0.25 avg300=0.05 total=123456\n\
                    full avg10=0.75 avg60=0.10 avg300=0.01 total=65432\n";
        let p = parse_pressure(text).unwrap();
        assert_eq!(p.some_avg10, 1.5);
        assert_eq!(p.some_avg60, 0.25);
        assert_eq!(p.some_avg300, 0.05);
        assert_eq!(p.some_total_us, 123_456);
        assert_eq!(p.full_avg10, Some(0.75));
        assert_eq!(p.full_avg60, Some(0.10));
        assert_eq!(p.full_avg300, Some(0.01));
        assert_eq!(p.full_total_us, Some(65_432));
    }

    #[test]
    fn pressure_without_a_full_line_has_no_full_figures() {
        let p = parse_pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n").unwrap();
        assert_eq!(p.full_avg10, None);
        assert_eq!(p.full_total_us, None);
    }

    #[test]
    fn pressure_without_a_some_line_is_an_error() {
        let err = parse_pressure("full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n").unwrap_err();
        assert_eq!(err.to_string(), "no `some` line");
    }

    #[test]
    fn pressure_with_a_bad_average_names_the_word() {
        let err = parse_pressure("some avg10=high avg60=0.00 avg300=0.00 total=0\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1 `some avg10=high avg60=0.00 avg300=0.00 total=0`: `avg10=high`: not a number"
        );
    }

    #[test]
    fn pressure_missing_a_key_names_it() {
        let err = parse_pressure("some avg10=0.00 avg60=0.00 avg300=0.00\n").unwrap_err();
        assert!(err.to_string().ends_with("no `total=`"), "{err}");
    }

    #[test]
    fn pressure_word_without_equals_is_rejected() {
        let err = parse_pressure("some avg10 0.00\n").unwrap_err();
        assert!(
            err.to_string().contains("`avg10` is not key=value"),
            "{err}"
        );
    }

    #[test]
    fn cgroup_v2_line_gives_the_unified_path() {
        let m = parse_proc_cgroup("0::/user.slice/user-1000.slice/session-2.scope\n").unwrap();
        assert_eq!(
            m.v2_path.as_deref(),
            Some("/user.slice/user-1000.slice/session-2.scope")
        );
        assert_eq!(m.v1_memory, None);
    }

    #[test]
    fn hybrid_cgroup_file_gives_the_v1_memory_path_and_the_v2_path() {
        let text = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/a257da4a\n\
                    3:cpuset:/\n1:cpu:/\n0::/\n";
        let m = parse_proc_cgroup(text).unwrap();
        assert_eq!(m.v2_path.as_deref(), Some("/"));
        assert_eq!(
            m.v1_memory,
            Some(V1Membership {
                controllers: "memory".into(),
                path: "/process_api/a257da4a".into()
            })
        );
    }

    #[test]
    fn v1_memory_sharing_a_hierarchy_is_found() {
        let m = parse_proc_cgroup("5:cpu,memory:/docker/abc\n").unwrap();
        let v1 = m.v1_memory.unwrap();
        assert_eq!(v1.controllers, "cpu,memory");
        assert_eq!(v1.path, "/docker/abc");
    }

    #[test]
    fn a_named_hierarchy_mentioning_memory_is_not_the_memory_controller() {
        let m = parse_proc_cgroup("7:name=memorywatch:/x\n").unwrap();
        assert_eq!(m.v1_memory, None);
    }

    #[test]
    fn cgroup_paths_may_contain_colons() {
        let m = parse_proc_cgroup("0::/weird:name\n").unwrap();
        assert_eq!(m.v2_path.as_deref(), Some("/weird:name"));
    }

    #[test]
    fn malformed_cgroup_line_is_named() {
        let err = parse_proc_cgroup("0::/\nmemory\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2 `memory`: expected `hierarchy-id:controllers:path`"
        );
        let err = parse_proc_cgroup("x:memory:/\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1 `x:memory:/`: hierarchy id is not a number"
        );
    }

    #[test]
    fn controllers_file_lists_memory_or_not() {
        assert!(lists_memory_controller(
            "cpuset cpu io memory hugetlb pids rdma misc\n"
        ));
        assert!(!lists_memory_controller("hugetlb\n"));
        assert!(!lists_memory_controller(""));
    }

    #[test]
    fn v2_max_is_unlimited() {
        assert_eq!(parse_cgroup_limit("max\n"), Ok(None));
    }

    #[test]
    fn v1_unlimited_sentinels_are_unlimited_for_every_page_size() {
        // 2^63 rounded down to 4 KiB and to 64 KiB pages.
        assert_eq!(parse_cgroup_limit("9223372036854771712\n"), Ok(None));
        assert_eq!(parse_cgroup_limit("9223372036854710272\n"), Ok(None));
        assert_eq!(parse_cgroup_limit("4611686018427387904\n"), Ok(None));
    }

    #[test]
    fn finite_limits_are_kept_even_above_the_host_ram() {
        assert_eq!(parse_cgroup_limit("4294967296\n"), Ok(Some(4_294_967_296)));
        assert_eq!(
            parse_cgroup_limit("4611686018427387903\n"),
            Ok(Some(4_611_686_018_427_387_903))
        );
    }

    #[test]
    fn malformed_cgroup_values_are_errors() {
        let err = parse_cgroup_limit("unlimited\n").unwrap_err();
        assert_eq!(err.to_string(), "`unlimited`: not a number of bytes");
        assert!(parse_cgroup_bytes("").is_err());
        assert_eq!(parse_cgroup_bytes("158269440\n"), Ok(158_269_440));
    }
}

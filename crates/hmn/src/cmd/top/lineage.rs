//! Each process's parent and start time, for the tree view and the AGE column.
//!
//! Why apart from the frame: a GPU listing says which processes hold memory, not who started
//! them or when. Both are fixed for a process's life (bar re-parenting when its parent
//! exits), so `top` asks once per process it sees and keeps the answer while the process is
//! in the table ([`super::app::App`] holds the cache); a process table with 1,000 GPU
//! processes costs 1,000 small reads once, not every refresh.
//!
//! Linux: the parent and the start (clock ticks after boot) come from `/proc/<pid>/stat`
//! through the library ([`hypomnesis::process_parent`], [`hypomnesis::process_start_ticks`]),
//! turned into an [`Instant`] with the boot time read once from `/proc/uptime` and the
//! kernel's clock tick rate (`sysconf(_SC_CLK_TCK)`). Elsewhere both are unknown (`None`).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hypomnesis::Probe;

use super::rows::Lineage;

/// Where lineages come from: the OS for a live screen; nothing for a recording played back
/// (its processes are not this machine's now); a table in tests.
pub(crate) trait ProcessFacts: Debug + Send + Sync {
    /// `pid`'s parent and start; fields `None` when they cannot be told.
    fn lineage(&self, pid: u32) -> Lineage;
}

/// Lineages read from this machine through `probe` (its `/proc` root).
#[derive(Debug)]
pub(crate) struct LiveFacts {
    probe: Arc<Probe>,
    clock: Option<BootClock>,
}

/// Turns clock ticks after boot into instants.
#[derive(Debug, Clone, Copy)]
struct BootClock {
    boot: Instant,
    ticks_per_second: u64,
}

impl BootClock {
    fn instant(self, ticks: u64) -> Option<Instant> {
        let tps = self.ticks_per_second;
        let nanos = (ticks % tps).checked_mul(1_000_000_000)? / tps;
        self.boot
            .checked_add(Duration::from_secs(ticks / tps) + Duration::from_nanos(nanos))
    }
}

impl LiveFacts {
    /// Reads the boot time now (once); the lineages as they are asked for.
    pub(crate) fn new(probe: Arc<Probe>) -> Self {
        let clock = boot_clock(&probe);
        Self { probe, clock }
    }
}

impl ProcessFacts for LiveFacts {
    fn lineage(&self, pid: u32) -> Lineage {
        Lineage {
            parent: hypomnesis::process_parent(&self.probe, pid),
            started: self.clock.and_then(|clock| {
                clock.instant(hypomnesis::process_start_ticks(&self.probe, pid)?)
            }),
        }
    }
}

#[cfg(target_os = "linux")]
fn boot_clock(probe: &Probe) -> Option<BootClock> {
    let text = std::fs::read_to_string(probe.proc_root().join("uptime")).ok()?;
    let uptime = parse_uptime(&text)?;
    // SAFETY: sysconf takes a constant and touches no memory of ours.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(BootClock {
        boot: Instant::now().checked_sub(uptime)?,
        ticks_per_second: u64::try_from(ticks).ok().filter(|t| *t > 0)?,
    })
}

#[cfg(not(target_os = "linux"))]
fn boot_clock(_probe: &Probe) -> Option<BootClock> {
    None
}

/// The first field of `/proc/uptime` (`350735.47 234388.90`): seconds since boot, with a
/// fraction.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_uptime(text: &str) -> Option<Duration> {
    let first = text.split_whitespace().next()?;
    let (whole, fraction) = first.split_once('.').unwrap_or((first, ""));
    let seconds: u64 = whole.parse().ok()?;
    let digits = fraction.get(..fraction.len().min(9))?;
    let nanos = if digits.is_empty() {
        0
    } else {
        let value: u32 = digits.parse().ok()?;
        value * 10_u32.pow(9 - u32::try_from(digits.len()).ok()?)
    };
    Some(Duration::new(seconds, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_is_the_first_field_with_its_fraction() {
        assert_eq!(
            parse_uptime("350735.47 234388.90\n"),
            Some(Duration::from_millis(350_735_470))
        );
        assert_eq!(parse_uptime("12 3"), Some(Duration::from_secs(12)));
        assert_eq!(parse_uptime(""), None);
        assert_eq!(parse_uptime("up 3"), None);
    }

    #[test]
    fn clock_ticks_after_boot_become_instants() {
        let boot = Instant::now();
        let clock = BootClock {
            boot,
            ticks_per_second: 100,
        };
        assert_eq!(clock.instant(250), Some(boot + Duration::from_millis(2500)));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_its_parent_and_a_start_before_now() {
        let probe = Arc::new(Probe::new());
        let lineage = LiveFacts::new(probe).lineage(std::process::id());
        assert_eq!(lineage.parent, Some(std::os::unix::process::parent_id()));
        assert!(lineage.started.is_some(), "{lineage:?}");
    }
}

//! Readers for platforms without `/proc`: each tracked process is read through
//! [`crate::Probe::process_memory`] (Windows `K32GetProcessMemoryInfo`, macOS
//! `proc_pid_rusage`), which also gives the OS's peak (`PeakWorkingSetSize`, the lifetime
//! maximum footprint).
//!
//! There is no process-tree discovery here yet: a tree target samples its root only, and the
//! report says so.

use std::cell::Cell;
use std::time::Duration;

use super::ProbeHandle;
use crate::error::HypomnesisError;
use crate::ram::MemoryDetail;

/// What the sampler's process readers share: the probe.
#[derive(Debug)]
pub(super) struct Env {
    probe: ProbeHandle,
}

impl Env {
    pub(super) fn new(probe: &ProbeHandle) -> Self {
        Self {
            probe: probe.clone(),
        }
    }

    /// A reader for `pid`; `None` when there is no such process.
    pub(super) fn open(&mut self, pid: u32) -> Option<Reader> {
        (self.probe.process_exists(pid) != Some(false)).then(|| Reader {
            pid,
            peak: Cell::new(None),
        })
    }

    pub(super) fn rss(&mut self, reader: &Reader) -> Reading {
        match self
            .probe
            .process_memory(Some(reader.pid), MemoryDetail::Fast)
        {
            Ok(memory) => {
                reader.peak.set(memory.peak_rss_bytes);
                Reading::Rss(memory.rss_bytes)
            }
            Err(HypomnesisError::ProcessNotFound { .. }) => Reading::Gone,
            Err(_) => Reading::Failed,
        }
    }

    /// The OS's peak for the process, read now.
    pub(super) fn hwm(&mut self, reader: &Reader) -> Option<u64> {
        match self.rss(reader) {
            Reading::Rss(_) => reader.peak.get(),
            Reading::Gone | Reading::Failed => None,
        }
    }
}

/// Not measured off Linux.
pub(super) fn thread_cpu_time() -> Option<Duration> {
    None
}

/// What one read of a tracked process gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reading {
    /// Resident bytes (the platform's figure, see [`crate::ProcessMemory::rss_bytes`]).
    Rss(u64),
    /// The process has exited.
    Gone,
    /// This read failed for another reason; try again next tick.
    Failed,
}

/// One tracked process.
#[derive(Debug)]
pub(super) struct Reader {
    pid: u32,
    /// The OS peak seen with the latest read.
    peak: Cell<Option<u64>>,
}

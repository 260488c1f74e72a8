//! Readers for `/proc/<pid>` memory files. (Stub: being written.)
use std::path::Path;

use super::{MemoryDetail, ProcessMemory};
use crate::error::{HypomnesisError, Result};

/// Keeps `<proc>/self/statm` open so RSS is one `pread` and no allocation.
#[derive(Debug)]
pub(crate) struct StatmReader {
    _file: std::fs::File,
}

impl StatmReader {
    pub(crate) fn open(proc_root: &Path) -> Result<Self> {
        let path = proc_root.join("self/statm");
        let file = std::fs::File::open(&path).map_err(|e| HypomnesisError::io(&path, &e))?;
        Ok(Self { _file: file })
    }

    pub(crate) fn rss_bytes(&self) -> Result<u64> {
        Err(HypomnesisError::Unsupported { what: "statm", context: "yet" })
    }
}

pub(crate) fn read_process_memory(
    _proc_root: &Path,
    _pid: Option<u32>,
    _detail: MemoryDetail,
) -> Result<ProcessMemory> {
    Err(HypomnesisError::Unsupported { what: "process memory", context: "yet" })
}

pub(crate) fn process_name(_proc_root: &Path, _pid: u32) -> Option<String> {
    None
}

pub(crate) fn process_exists(_proc_root: &Path, _pid: u32) -> Option<bool> {
    None
}

//! Readers for host memory files. (Stub: being written.)
use std::path::Path;

use super::HostMemory;
use crate::error::{HypomnesisError, Result};

pub(crate) fn read_host_memory(_proc_root: &Path, _sys_root: &Path) -> Result<HostMemory> {
    Err(HypomnesisError::Unsupported { what: "host memory", context: "yet" })
}

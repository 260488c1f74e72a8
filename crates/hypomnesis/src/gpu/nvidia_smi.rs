//! NVIDIA GPUs through the `nvidia-smi` executable. (Stub: being written.)
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{HypomnesisError, Result};
use crate::snapshot::{GpuDeviceInfo, GpuProcessEntry};

/// Runs `nvidia-smi` queries with a timeout.
#[derive(Debug, Clone)]
pub(crate) struct NvidiaSmi {
    path: PathBuf,
    timeout: Duration,
}

impl NvidiaSmi {
    pub(crate) fn new(path: PathBuf, timeout: Duration) -> Self {
        Self { path, timeout }
    }

    pub(crate) fn devices(&self) -> Result<Vec<GpuDeviceInfo>> {
        let _ = (&self.path, self.timeout);
        Err(HypomnesisError::NvidiaSmi { exit_code: None, detail: "not yet".into() })
    }

    pub(crate) fn processes(&self, _devices: &[GpuDeviceInfo]) -> Result<Vec<GpuProcessEntry>> {
        Err(HypomnesisError::NvidiaSmi { exit_code: None, detail: "not yet".into() })
    }
}

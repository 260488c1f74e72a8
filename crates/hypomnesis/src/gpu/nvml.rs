//! NVIDIA GPUs through NVML. (Stub: being written.)
use std::path::Path;

use crate::error::{HypomnesisError, Result};
use crate::snapshot::{GpuDeviceInfo, GpuProcessEntry};

#[derive(Debug)]
pub(crate) struct NvmlBackend {}

impl NvmlBackend {
    pub(crate) fn load(_lib: Option<&Path>) -> Result<Self> {
        Err(HypomnesisError::Nvml { call: "load", code: None, detail: "not yet".into() })
    }
    pub(crate) fn device_count(&self) -> u32 {
        0
    }
    pub(crate) fn device_info(&self, index: u32) -> Result<GpuDeviceInfo> {
        Err(HypomnesisError::DeviceIndexOutOfRange { index, count: 0 })
    }
    pub(crate) fn processes(&self, index: u32) -> Result<Vec<GpuProcessEntry>> {
        Err(HypomnesisError::DeviceIndexOutOfRange { index, count: 0 })
    }
}

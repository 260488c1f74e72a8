//! The JSON records several commands write, defined once (`docs/json.md`).
//!
//! A GPU is named the same way wherever hmn writes it as a record — `watch`'s `start`
//! record, `run`'s report and its recording's `start` record — so a reader of one can read
//! the others, and a fix to one reaches all of them.

use hypomnesis::GpuDeviceInfo;
use serde::Serialize;

/// A GPU as records name it: its index, its name and its memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceRecord {
    pub index: u32,
    pub name: Option<String>,
    pub total_bytes: Option<u64>,
}

impl DeviceRecord {
    /// A device whose description could not be read: known by its index alone.
    pub fn unnamed(index: u32) -> Self {
        Self {
            index,
            name: None,
            total_bytes: None,
        }
    }

    /// `GPU 0 [NVIDIA H100 80GB HBM3]`, or `GPU 0` without a name (raw: escape it for a
    /// terminal).
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("GPU {} [{name}]", self.index),
            None => format!("GPU {}", self.index),
        }
    }
}

impl From<&GpuDeviceInfo> for DeviceRecord {
    fn from(info: &GpuDeviceInfo) -> Self {
        Self {
            index: info.index,
            name: info.name.clone(),
            total_bytes: info.total_bytes,
        }
    }
}

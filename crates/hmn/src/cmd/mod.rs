//! One module per command: each turns a parsed command line into an [`crate::outcome::Outcome`],
//! reading the machine through [`hypomnesis::Frame`]s (or, for long-running commands, a
//! [`hypomnesis::Monitor`]) so every command shows the same facts.

pub(crate) mod completions;
pub(crate) mod fits;
pub(crate) mod fleet;
pub(crate) mod man;
pub(crate) mod ps;
pub(crate) mod run;
pub(crate) mod spill;
pub(crate) mod summary;
#[cfg(feature = "top")]
pub(crate) mod top;
pub(crate) mod watch;

use hypomnesis::{Frame, HypomnesisError};

/// Why `frame` has no device `index`: no GPU source answered (the frame's error), or the
/// index is beyond its devices.
pub(crate) fn missing_device(frame: &Frame, index: u32) -> HypomnesisError {
    if let Some(e) = &frame.gpu_error {
        return e.clone();
    }
    if let Some(unreadable) = frame.unreadable_devices.iter().find(|u| u.index == index) {
        return unreadable.error.clone();
    }
    let count = frame
        .devices
        .len()
        .saturating_add(frame.unreadable_devices.len());
    HypomnesisError::DeviceIndexOutOfRange {
        index,
        count: u32::try_from(count).unwrap_or(u32::MAX),
    }
}

//! The OS layer: process facts and the raw readers every measurement module shares.
//!
//! Whether a pid exists, what a process is called, when it started, and how to read a procfs
//! file whole are questions RAM, the GPU backends, the sampler and the process details all
//! ask. Answered here, one layer below them, the measurement modules depend on the OS layer
//! and never on each other for a file reader (`tests/module_graph.rs` checks the library has
//! no import cycle). The old paths (`ram::linux::read_proc_text`, …) stay as re-exports while
//! callers move over.
//!
//! - `procfs`: pure parsers of procfs texts (bytes in, `Option` out, no allocation), built
//!   and tested on every OS.
//! - `linux`: procfs readers and pid facts (exists, name, start ticks).
//! - `macos`: zero-initialised C structs for the kernel to fill, `sysctlbyname`, pid facts
//!   (exists, name, owner, every pid).
//! - `windows`: process handles, whether a pid runs, executable names.

pub(crate) mod procfs;
// Their pure helpers build (and are tested) everywhere; the OS calls on their OS only.
pub(crate) mod macos;
pub(crate) mod windows;

#[cfg(target_os = "linux")]
pub(crate) mod linux;

//! The original hypomnesis crate's examples, compiled against this crate.
//!
//! A user of the original (candle-mi, hf-fetch-model) expects its code to keep compiling. Each
//! module below is one place the original documents its API (see `original/README.md`); its
//! doc is that place's examples, unchanged, so `cargo test --workspace` compiles every one.
//! Those that cannot compile are marked `compile_fail` with the error they must fail with, next
//! to the reason and the smallest change that compiles — so a change of this crate that breaks
//! or mends parity shows as a failing doctest. `examples/print_demo.rs` is the original's
//! example program, unchanged.

#[doc = include_str!("../original/readme_usage.md")]
pub mod readme_usage {}

#[doc = include_str!("../original/readme_toml.md")]
pub mod readme_toml {}

#[doc = include_str!("../original/lib_quick_start.md")]
pub mod lib_quick_start {}

#[doc = include_str!("../original/device_info_builder.md")]
pub mod device_info_builder {}

#[doc = include_str!("../original/process_entry_builder.md")]
pub mod process_entry_builder {}

#[doc = include_str!("../original/spill.md")]
pub mod spill {}

#[doc = include_str!("../original/adoption.md")]
pub mod adoption {}

/// The original's `examples/print_demo.rs`, run (it is also built as this crate's example):
#[doc = concat!("```rust\n", include_str!("../examples/print_demo.rs"), "```")]
pub mod print_demo {}

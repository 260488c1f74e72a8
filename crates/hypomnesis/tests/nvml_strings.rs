//! Strings from a driver that fills NVML's string buffers to their end without a NUL (the
//! NVML double's `strings_without_nul`) are read within their buffers: exactly the buffer's
//! length, the declared text then the double's `_` filler, and nothing past it.
//!
//! Whether a reader went past its buffer must not depend on what the heap happens to hold
//! there (often a 0, which would end the string by luck). So this test binary's allocator
//! follows every block with 64 bytes of `X`: a read past the end of a heap buffer shows as
//! `X`s in the text, every time.
#![cfg(target_os = "linux")]

use std::alloc::{GlobalAlloc, Layout, System};

use hypomnesis::Probe;

/// The system allocator, with every block followed by [`TAIL`] bytes of `X`.
struct XTailed;

const TAIL: usize = 64;

fn with_tail(layout: Layout) -> Option<Layout> {
    Layout::from_size_align(layout.size().checked_add(TAIL)?, layout.align()).ok()
}

// SAFETY: every block comes from `System` with a layout `TAIL` bytes larger than asked, and
// goes back to it with that same larger layout; the caller only ever sees `layout.size()`.
unsafe impl GlobalAlloc for XTailed {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(tailed) = with_tail(layout) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `tailed` has a non-zero size (at least TAIL).
        let block = unsafe { System.alloc(tailed) };
        if !block.is_null() {
            // SAFETY: the block holds `layout.size() + TAIL` bytes.
            unsafe { block.add(layout.size()).write_bytes(b'X', TAIL) };
        }
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if let Some(tailed) = with_tail(layout) {
            // SAFETY: `block` came from `alloc` above with this same larger layout.
            unsafe { System.dealloc(block, tailed) };
        }
    }
}

#[global_allocator]
static ALLOCATOR: XTailed = XTailed;

/// `text`, then `_` up to `buffer` bytes: what the double writes into a buffer of that size.
fn filled(text: &str, buffer: usize) -> String {
    format!("{text}{}", "_".repeat(buffer - text.len()))
}

#[test]
fn strings_filling_their_whole_buffer_are_read_to_the_buffers_end_and_no_further() {
    let scenario = test_support::nvml_scenario_variant("one_gpu", "strings_without_nul", |s| {
        s["description"] = serde_json::json!("one_gpu whose string buffers have no NUL");
        s["strings_without_nul"] = serde_json::json!(true);
    });
    test_support::with_nvml_double_scenario(
        "strings_filling_their_whole_buffer_are_read_to_the_buffers_end_and_no_further",
        &scenario,
        |lib, _| {
            let probe = Probe::builder().nvml_lib(lib).use_nvidia_smi(false).build();
            let d = probe.device_info(0).unwrap();
            // nvml.h's buffer sizes: NVML_DEVICE_NAME_V2_BUFFER_SIZE, _UUID_V2_, the PCI
            // struct's busId, NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE.
            assert_eq!(d.name, Some(filled("NVIDIA H100 80GB HBM3", 96)));
            assert_eq!(
                d.uuid,
                Some(filled("GPU-5a5c4d1e-1f9b-4a7d-9c1e-2b3f4a5b6c7d", 96))
            );
            assert_eq!(d.pci_bus_id, Some(filled("00000000:00:09.0", 32)));
            assert_eq!(d.driver_version, Some(filled("590.48.01", 80)));
        },
    );
}

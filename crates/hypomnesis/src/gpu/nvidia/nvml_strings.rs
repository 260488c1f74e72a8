//! NVML's strings, read within their buffers.
//!
//! NVML writes device names, UUIDs, PCI bus ids and the driver version into buffers of sizes
//! nvml.h fixes (96, 96, 32 and 80 bytes), NUL-terminated by contract. nvml-wrapper 0.13 reads
//! them back with `CStr::from_ptr`, which trusts that NUL: a driver, or a library standing in
//! for one, that fills a buffer to its end makes it read past the buffer (on the heap for the
//! names, on the stack for the PCI struct), which valgrind reports as invalid reads and which
//! may pick up whatever follows. So these four are read here through the raw functions: the
//! text ends at the first NUL or at the buffer's end, whichever comes first, and bytes that are
//! not UTF-8 are replaced instead of losing the whole field.

use std::ffi::{c_char, c_uint};

use nvml_wrapper::Nvml;
use nvml_wrapper_sys::bindings::{
    NVML_DEVICE_NAME_V2_BUFFER_SIZE, NVML_DEVICE_UUID_V2_BUFFER_SIZE,
    NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE, nvmlDevice_t, nvmlPciInfo_t, nvmlReturn_t,
};

const NVML_SUCCESS: nvmlReturn_t = 0;

/// The text in `buf`: up to its first NUL, or all of it when there is none.
pub(crate) fn text_in(buf: &[c_char]) -> String {
    // `c_char` is `i8` or `u8` by platform; either way one byte.
    let bytes: Vec<u8> = buf
        .iter()
        .map(|&c| c.to_ne_bytes()[0])
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Calls `fill` with a zeroed buffer of `N` bytes and its length; the text, if it succeeded.
fn read<const N: usize>(fill: impl FnOnce(*mut c_char, c_uint) -> nvmlReturn_t) -> Option<String> {
    let mut buf = [0 as c_char; N];
    let length = c_uint::try_from(N).ok()?;
    (fill(buf.as_mut_ptr(), length) == NVML_SUCCESS).then(|| text_in(&buf))
}

const NAME: usize = NVML_DEVICE_NAME_V2_BUFFER_SIZE as usize;
const UUID: usize = NVML_DEVICE_UUID_V2_BUFFER_SIZE as usize;
const DRIVER_VERSION: usize = NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE as usize;

/// `nvmlDeviceGetName`. `device` must be a handle of this `nvml`.
#[doc(alias = "nvmlDeviceGetName")]
pub(crate) fn device_name(nvml: &Nvml, device: nvmlDevice_t) -> Option<String> {
    let symbol = nvml.lib().nvmlDeviceGetName.as_ref().ok()?;
    read::<NAME>(|buf, length| {
        // SAFETY: nvml.h's signature (bindgen); `device` is a live handle of this NVML (the
        // caller's contract); `buf` is writable for `length` bytes for the call's duration.
        unsafe { symbol(device, buf, length) }
    })
}

/// `nvmlDeviceGetUUID`. `device` must be a handle of this `nvml`.
#[doc(alias = "nvmlDeviceGetUUID")]
pub(crate) fn device_uuid(nvml: &Nvml, device: nvmlDevice_t) -> Option<String> {
    let symbol = nvml.lib().nvmlDeviceGetUUID.as_ref().ok()?;
    read::<UUID>(|buf, length| {
        // SAFETY: as in `device_name`.
        unsafe { symbol(device, buf, length) }
    })
}

/// `nvmlDeviceGetPciInfo_v3`'s `busId` (`"00000000:01:00.0"`). `device` must be a handle of
/// this `nvml`.
#[doc(alias = "nvmlDeviceGetPciInfo_v3")]
pub(crate) fn pci_bus_id(nvml: &Nvml, device: nvmlDevice_t) -> Option<String> {
    let symbol = nvml.lib().nvmlDeviceGetPciInfo_v3.as_ref().ok()?;
    let mut pci = nvmlPciInfo_t {
        busIdLegacy: [0; 16],
        domain: 0,
        bus: 0,
        device: 0,
        pciDeviceId: 0,
        pciSubSystemId: 0,
        busId: [0; 32],
    };
    // SAFETY: nvml.h's signature (bindgen); `device` is a live handle of this NVML (the
    // caller's contract); `pci` is a writable nvmlPciInfo_t for the call's duration.
    let code = unsafe { symbol(device, &raw mut pci) };
    (code == NVML_SUCCESS).then(|| text_in(&pci.busId))
}

/// `nvmlSystemGetDriverVersion` (`"590.48.01"`).
#[doc(alias = "nvmlSystemGetDriverVersion")]
pub(crate) fn driver_version(nvml: &Nvml) -> Option<String> {
    let symbol = nvml.lib().nvmlSystemGetDriverVersion.as_ref().ok()?;
    read::<DRIVER_VERSION>(|buf, length| {
        // SAFETY: nvml.h's signature (bindgen); `buf` is writable for `length` bytes for the
        // call's duration.
        unsafe { symbol(buf, length) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(bytes: &[u8]) -> Vec<c_char> {
        bytes.iter().map(|&b| c_char::from_ne_bytes([b])).collect()
    }

    #[test]
    fn text_ends_at_the_first_nul() {
        assert_eq!(text_in(&chars(b"NVIDIA H100\0garbage\0")), "NVIDIA H100");
        assert_eq!(text_in(&chars(b"\0")), "");
    }

    #[test]
    fn a_buffer_without_a_nul_is_read_to_its_end_and_no_further() {
        assert_eq!(text_in(&chars(b"GPU-0123")), "GPU-0123");
        assert_eq!(text_in(&chars(&[b'_'; 96])).len(), 96);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_replaced_not_fatal() {
        assert_eq!(text_in(&chars(b"Tesla \xff\0")), "Tesla \u{fffd}");
    }
}

//! macOS primitives shared by the host, RAM and Metal readers: zero-initialised C structs
//! for the kernel to fill, and `sysctlbyname`.
//!
//! Every macOS reader passes a struct to the kernel (`sysctl`, `proc_pidinfo`,
//! `proc_pid_rusage`, Mach info calls) and must start it all-zero; one marker trait says
//! which types that is sound for, so the `unsafe` lives here once.

use std::ffi::CStr;
use std::mem::size_of;

/// C structs and integers for which all-zero bytes are a valid value, so they can be
/// zero-initialised before the kernel fills them.
///
/// # Safety
/// Only for `repr(C)` types made of integers and arrays of integers.
pub(crate) unsafe trait PlainData: Copy {}
// SAFETY: integers.
unsafe impl PlainData for i32 {}
// SAFETY: an integer.
unsafe impl PlainData for u64 {}
// SAFETY: integers only (`xsu_total`, `xsu_avail`, `xsu_used`, `xsu_pagesize`,
// `xsu_encrypted`).
unsafe impl PlainData for libc::xsw_usage {}
// SAFETY: integers only.
unsafe impl PlainData for libc::vm_statistics64 {}
// SAFETY: integers and a byte array (`ri_uuid`).
unsafe impl PlainData for libc::rusage_info_v4 {}

/// An all-zero `T`.
pub(crate) fn zeroed<T: PlainData>() -> T {
    // SAFETY: `PlainData` types are valid when all-zero.
    unsafe { std::mem::zeroed() }
}

/// A `sysctlbyname` value of exactly `T`'s size; `None` when missing or of another size.
pub(crate) fn sysctl_value<T: PlainData>(name: &CStr) -> Option<T> {
    let mut value: T = zeroed();
    let mut len = size_of::<T>();
    // SAFETY: `value` is a live `T` of `len` bytes; the kernel writes at most `len` bytes
    // and stores the written length in `len`.
    let rc = unsafe {
        libc::sysctlbyname(
            name.as_ptr(),
            (&raw mut value).cast(),
            &raw mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    (rc == 0 && len == size_of::<T>()).then_some(value)
}

//! macOS process memory, process names, and the kernel ledger.
//!
//! The figure macOS itself calls a process's memory is the *physical footprint*: Activity
//! Monitor's "Memory" column, and what the kernel kills by under memory pressure. It counts
//! Metal and MLX buffers (IOAccelerator memory) and compressed pages, which the resident size
//! misses entirely — a 4 GB MLX array leaves RSS near 30 MB and the footprint near 4 GB — so
//! it is the main figure here (`rss_bytes`), with the resident size beside it.
//!
//! - the calling process: `task_info(mach_task_self(), TASK_VM_INFO)`. There is no
//!   `TASK_VM_INFO_COUNT` in Rust's bindings: the count passed is `size_of::<task_vm_info>()
//!   / 4`, and the count the kernel returns says how much of the struct it filled (revision
//!   1 adds `phys_footprint`, revision 3 the ledger peak and the graphics footprint).
//! - another process: `proc_pid_rusage(RUSAGE_INFO_V4)` (`ri_phys_footprint`,
//!   `ri_lifetime_max_phys_footprint`, `ri_resident_size`); no `task_for_pid`, so no root.
//! - graphics memory of any process: the kernel ledger's `graphics_footprint` entry, read
//!   with the `ledger()` system call (`LEDGER_ENTRY_INFO_V2`). Its index is looked up by name
//!   (`LEDGER_TEMPLATE_INFO`) once, since the order of ledger entries is not an ABI. What
//!   decides whether another process's ledger can be read is the caller's sandbox, not who
//!   owns the process: a refusal is `EPERM` and is reported as "unreadable", never as 0.
#![cfg_attr(not(target_os = "macos"), allow(dead_code))]

use std::ffi::c_char;

/// `TASK_VM_INFO_REV1_COUNT`: the reply reaches `phys_footprint`.
pub(crate) const TASK_VM_INFO_REV1_COUNT: u32 = 38;
/// `TASK_VM_INFO_REV3_COUNT`: the reply reaches the ledger fields
/// (`ledger_phys_footprint_peak` … `ledger_tag_neural_nofootprint_compressed`).
pub(crate) const TASK_VM_INFO_REV3_COUNT: u32 = 84;

/// The `count` to pass to `task_info` for a struct of `size` bytes: its size in 32-bit
/// words (`natural_t`), as the C headers' `TASK_VM_INFO_COUNT` computes it.
pub(crate) fn mach_count(size: usize) -> u32 {
    u32::try_from(size / 4).unwrap_or(u32::MAX)
}

/// Which parts of `task_vm_info` a reply of `count` words filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VmInfoReply {
    /// `phys_footprint` (revision 1, macOS 10.11+).
    pub(crate) phys_footprint: bool,
    /// `ledger_phys_footprint_peak` and `ledger_tag_graphics_footprint` (revision 3).
    pub(crate) ledgers: bool,
}

pub(crate) const fn vm_info_reply(count: u32) -> VmInfoReply {
    VmInfoReply {
        phys_footprint: count >= TASK_VM_INFO_REV1_COUNT,
        ledgers: count >= TASK_VM_INFO_REV3_COUNT,
    }
}

/// `LEDGER_INFO` (`<kern/ledger.h>`).
pub(crate) const LEDGER_INFO: i32 = 0;
/// `LEDGER_ENTRY_INFO`: v1 entries (48 bytes), for kernels without v2.
pub(crate) const LEDGER_ENTRY_INFO: i32 = 1;
/// `LEDGER_TEMPLATE_INFO`: the names of the ledger entries.
pub(crate) const LEDGER_TEMPLATE_INFO: i32 = 2;
/// `LEDGER_ENTRY_INFO_V2`: entries with `lei_lifetime_max` (88 bytes).
pub(crate) const LEDGER_ENTRY_INFO_V2: i32 = 4;
/// `LEDGER_NAME_MAX`.
pub(crate) const LEDGER_NAME_MAX: usize = 32;
/// The ledger entry holding a task's Metal / IOAccelerator memory.
pub(crate) const GRAPHICS_FOOTPRINT: &str = "graphics_footprint";

/// `struct ledger_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct LedgerInfo {
    pub(crate) li_name: [c_char; LEDGER_NAME_MAX],
    pub(crate) li_id: i64,
    pub(crate) li_entries: i64,
}

/// `struct ledger_template_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct LedgerTemplateInfo {
    pub(crate) lti_name: [c_char; LEDGER_NAME_MAX],
    pub(crate) lti_group: [c_char; LEDGER_NAME_MAX],
    pub(crate) lti_units: [c_char; LEDGER_NAME_MAX],
}

/// `struct ledger_entry_info_v2`. Its first field is the same as v1's, which is all that is
/// read, so a v1 reply can be read through it as long as the buffer is sized for v1.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LedgerEntryInfoV2 {
    pub(crate) lei_balance: i64,
    pub(crate) lei_credit: i64,
    pub(crate) lei_debit: i64,
    pub(crate) lei_limit: u64,
    pub(crate) lei_refill_period: u64,
    pub(crate) lei_last_refill: u64,
    pub(crate) lei_lifetime_max: i64,
    pub(crate) lei_reserved: [u64; 4],
}

/// `struct ledger_entry_info` (v1).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LedgerEntryInfo {
    pub(crate) lei_balance: i64,
    pub(crate) lei_credit: i64,
    pub(crate) lei_debit: i64,
    pub(crate) lei_limit: u64,
    pub(crate) lei_refill_period: u64,
    pub(crate) lei_last_refill: u64,
}

impl LedgerTemplateInfo {
    pub(crate) const EMPTY: Self = Self {
        lti_name: [0; LEDGER_NAME_MAX],
        lti_group: [0; LEDGER_NAME_MAX],
        lti_units: [0; LEDGER_NAME_MAX],
    };
}

/// A fixed-size C string field up to its first NUL (all of it when there is none).
pub(crate) fn c_field(field: &[c_char]) -> String {
    let bytes: Vec<u8> = field
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c.to_ne_bytes()[0])
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The index of the entry named `name` among the ledger template's entries.
pub(crate) fn ledger_index(templates: &[LedgerTemplateInfo], name: &str) -> Option<usize> {
    templates.iter().position(|t| c_field(&t.lti_name) == name)
}

/// A ledger balance as bytes; a negative balance (a transient accounting state) is 0.
pub(crate) fn balance_bytes(balance: i64) -> u64 {
    u64::try_from(balance).unwrap_or(0)
}

/// What reading another process's ledger gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LedgerRead {
    /// The entry's balance, bytes.
    Bytes(u64),
    /// The process exited (`ESRCH`).
    Gone,
    /// The sandbox (or MAC policy) refused (`EPERM`).
    Denied,
    /// The ledger could not be read for another reason (no such entry on this kernel, ...).
    Unavailable,
}

#[cfg(target_os = "macos")]
pub(crate) use sys::{own_rss, read_process_memory};
// Every process's graphics footprint: for the Metal backend's process rows.
#[cfg(all(target_os = "macos", feature = "metal"))]
pub(crate) use sys::graphics_footprint;
// The process facts that lived here, at their old paths while callers move to `crate::os`.
#[cfg(target_os = "macos")]
#[allow(unused_imports)]
pub(crate) use crate::os::macos::process_exists;
#[cfg(all(target_os = "macos", feature = "metal"))]
#[allow(unused_imports)]
pub(crate) use crate::os::macos::{list_pids, process_name, process_uid};

#[cfg(target_os = "macos")]
mod sys {
    use std::ffi::{c_int, c_void};
    use std::mem::{offset_of, size_of};
    use std::path::PathBuf;
    use std::sync::OnceLock;

    use mach2::task_info::{TASK_VM_INFO, task_vm_info};

    use super::{
        GRAPHICS_FOOTPRINT, LEDGER_ENTRY_INFO, LEDGER_ENTRY_INFO_V2, LEDGER_INFO,
        LEDGER_TEMPLATE_INFO, LedgerEntryInfo, LedgerEntryInfoV2, LedgerInfo, LedgerRead,
        LedgerTemplateInfo, TASK_VM_INFO_REV1_COUNT, TASK_VM_INFO_REV3_COUNT, balance_bytes,
        ledger_index, mach_count, vm_info_reply,
    };
    use crate::error::{HypomnesisError, Result};
    use crate::os::macos::zeroed;
    use crate::ram::{MemoryDetail, ProcessMemory};

    // The revision counts above must match the struct mach2 lays out.
    const _: () = assert!(
        offset_of!(task_vm_info, phys_footprint) + 8 <= TASK_VM_INFO_REV1_COUNT as usize * 4
    );
    const _: () = assert!(
        offset_of!(task_vm_info, ledger_tag_graphics_footprint) + 8
            <= TASK_VM_INFO_REV3_COUNT as usize * 4
    );
    const _: () = assert!(
        offset_of!(task_vm_info, ledger_phys_footprint_peak) + 8
            <= TASK_VM_INFO_REV3_COUNT as usize * 4
    );

    unsafe extern "C" {
        /// The `ledger()` system call's libsystem_kernel stub (`SYS_ledger`, 373); exported
        /// but not declared in the SDK headers.
        fn ledger(cmd: c_int, arg1: *mut c_void, arg2: *mut c_void, arg3: *mut c_void) -> c_int;
    }

    fn errno() -> Option<i32> {
        std::io::Error::last_os_error().raw_os_error()
    }

    /// `task_vm_info` of the calling process, and how many words the kernel filled.
    fn own_vm_info() -> Result<(task_vm_info, u32)> {
        let mut info = task_vm_info::default();
        let mut count = mach_count(size_of::<task_vm_info>());
        // SAFETY: mach_task_self reads the task's own port name; no preconditions.
        let task = unsafe { mach2::traps::mach_task_self() };
        // SAFETY: `info` is a live task_vm_info of `count` 32-bit words; the kernel writes at
        // most `count` words and stores how many it wrote.
        let kr = unsafe {
            mach2::task::task_info(
                task,
                TASK_VM_INFO,
                (&raw mut info).cast::<mach2::vm_types::integer_t>(),
                &raw mut count,
            )
        };
        if kr != mach2::kern_return::KERN_SUCCESS {
            return Err(HypomnesisError::Io {
                path: PathBuf::from("task_info(TASK_VM_INFO)"),
                detail: format!("kern_return_t {kr}"),
                errno: None,
            });
        }
        Ok((info, count))
    }

    /// The calling process's physical footprint (resident size on kernels before 10.11).
    pub(crate) fn own_rss() -> Result<u64> {
        let (info, count) = own_vm_info()?;
        Ok(if vm_info_reply(count).phys_footprint {
            info.phys_footprint
        } else {
            info.resident_size
        })
    }

    fn own_process_memory() -> Result<ProcessMemory> {
        let (info, count) = own_vm_info()?;
        let reply = vm_info_reply(count);
        let footprint = if reply.phys_footprint {
            info.phys_footprint
        } else {
            info.resident_size
        };
        Ok(ProcessMemory {
            pid: std::process::id(),
            rss_bytes: footprint,
            peak_rss_bytes: reply
                .ledgers
                .then(|| balance_bytes(info.ledger_phys_footprint_peak)),
            swap_bytes: None,
            rss_anon_bytes: None,
            rss_file_bytes: None,
            pss_bytes: None,
            uss_bytes: None,
            private_bytes: None,
            resident_bytes: Some(info.resident_size),
            graphics_bytes: reply
                .ledgers
                .then(|| balance_bytes(info.ledger_tag_graphics_footprint)),
        })
    }

    /// RAM of `pid` (`None` = the calling process).
    pub(crate) fn read_process_memory(
        pid: Option<u32>,
        detail: MemoryDetail,
    ) -> Result<ProcessMemory> {
        let _ = detail;
        let own = std::process::id();
        let pid = match pid {
            None => return own_process_memory(),
            Some(p) if p == own => return own_process_memory(),
            Some(p) => p,
        };
        let raw_pid = c_int::try_from(pid).map_err(|_| HypomnesisError::ProcessNotFound { pid })?;
        let mut info: libc::rusage_info_v4 = zeroed();
        // SAFETY: `info` is a live rusage_info_v4, the struct RUSAGE_INFO_V4 fills.
        let rc = unsafe {
            libc::proc_pid_rusage(
                raw_pid,
                libc::RUSAGE_INFO_V4,
                (&raw mut info).cast::<libc::rusage_info_t>(),
            )
        };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::ESRCH) => HypomnesisError::ProcessNotFound { pid },
                Some(libc::EPERM) => HypomnesisError::PermissionDenied {
                    pid,
                    detail: format!(
                        "proc_pid_rusage refused: {err}; a sandbox (or another user's process \
                         without root) blocks it — run outside the sandbox"
                    ),
                },
                _ => HypomnesisError::io("proc_pid_rusage", &err),
            });
        }
        let graphics = match graphics_footprint(pid) {
            LedgerRead::Bytes(b) => Some(b),
            LedgerRead::Gone | LedgerRead::Denied | LedgerRead::Unavailable => None,
        };
        Ok(ProcessMemory {
            pid,
            rss_bytes: info.ri_phys_footprint,
            peak_rss_bytes: Some(info.ri_lifetime_max_phys_footprint),
            swap_bytes: None,
            rss_anon_bytes: None,
            rss_file_bytes: None,
            pss_bytes: None,
            uss_bytes: None,
            private_bytes: None,
            resident_bytes: Some(info.ri_resident_size),
            graphics_bytes: graphics,
        })
    }

    /// The index of `graphics_footprint` among the ledger entries, looked up once.
    fn graphics_index() -> Option<(usize, usize)> {
        static INDEX: OnceLock<Option<(usize, usize)>> = OnceLock::new();
        *INDEX.get_or_init(|| {
            let mut info = LedgerInfo {
                li_name: [0; super::LEDGER_NAME_MAX],
                li_id: 0,
                li_entries: 0,
            };
            let own = c_int::try_from(std::process::id()).ok()?;
            // SAFETY: LEDGER_INFO writes one ledger_info into `info`; arg1 carries the pid.
            let rc = unsafe {
                ledger(
                    LEDGER_INFO,
                    std::ptr::without_provenance_mut(own.unsigned_abs() as usize),
                    (&raw mut info).cast(),
                    std::ptr::null_mut(),
                )
            };
            let entries = usize::try_from(info.li_entries)
                .ok()
                .filter(|&n| n > 0 && n < 4096);
            if rc != 0 {
                return None;
            }
            let entries = entries?;
            let mut templates = vec![LedgerTemplateInfo::EMPTY; entries];
            let mut len = c_int::try_from(entries).ok()?;
            // SAFETY: `templates` holds `len` ledger_template_info structs; the kernel copies
            // at most `len` and stores how many it copied in `len`.
            let rc = unsafe {
                ledger(
                    LEDGER_TEMPLATE_INFO,
                    templates.as_mut_ptr().cast(),
                    (&raw mut len).cast(),
                    std::ptr::null_mut(),
                )
            };
            if rc != 0 {
                return None;
            }
            templates.truncate(usize::try_from(len).unwrap_or(0));
            ledger_index(&templates, GRAPHICS_FOOTPRINT).map(|i| (i, templates.len()))
        })
    }

    /// `graphics_footprint` of `pid`, from its ledger.
    pub(crate) fn graphics_footprint(pid: u32) -> LedgerRead {
        let Some((index, entries)) = graphics_index() else {
            return LedgerRead::Unavailable;
        };
        let Ok(raw_pid) = c_int::try_from(pid) else {
            return LedgerRead::Gone;
        };
        let mut v2 = vec![LedgerEntryInfoV2::default(); entries];
        let mut len = c_int::try_from(entries).unwrap_or(0);
        // SAFETY: `v2` holds `len` ledger_entry_info_v2 structs; the kernel copies at most
        // `len` and stores how many in `len`. arg1 carries the pid.
        let rc = unsafe {
            ledger(
                LEDGER_ENTRY_INFO_V2,
                std::ptr::without_provenance_mut(raw_pid.unsigned_abs() as usize),
                v2.as_mut_ptr().cast(),
                (&raw mut len).cast(),
            )
        };
        if rc == 0 {
            return v2
                .get(index)
                .filter(|_| usize::try_from(len).is_ok_and(|l| l > index))
                .map_or(LedgerRead::Unavailable, |e| {
                    LedgerRead::Bytes(balance_bytes(e.lei_balance))
                });
        }
        match errno() {
            Some(libc::ESRCH) => return LedgerRead::Gone,
            Some(libc::EPERM) => return LedgerRead::Denied,
            Some(libc::EINVAL) => {}
            _ => return LedgerRead::Unavailable,
        }
        // EINVAL: a kernel without LEDGER_ENTRY_INFO_V2; v1 has the balance first too.
        let mut v1 = vec![LedgerEntryInfo::default(); entries];
        let mut len = c_int::try_from(entries).unwrap_or(0);
        // SAFETY: as above, with v1 structs.
        let rc = unsafe {
            ledger(
                LEDGER_ENTRY_INFO,
                std::ptr::without_provenance_mut(raw_pid.unsigned_abs() as usize),
                v1.as_mut_ptr().cast(),
                (&raw mut len).cast(),
            )
        };
        if rc != 0 {
            return match errno() {
                Some(libc::ESRCH) => LedgerRead::Gone,
                Some(libc::EPERM) => LedgerRead::Denied,
                _ => LedgerRead::Unavailable,
            };
        }
        v1.get(index)
            .filter(|_| usize::try_from(len).is_ok_and(|l| l > index))
            .map_or(LedgerRead::Unavailable, |e| {
                LedgerRead::Bytes(balance_bytes(e.lei_balance))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_passed_to_task_info_is_the_struct_size_in_words() {
        // task_vm_info up to revision 7 (ledger_tag_neural_nofootprint_peak): 372 bytes,
        // packed to 4 — 16 header bytes, 16 u64 sizes, phys_footprint, min/max address, 21
        // ledger i64s, limit_bytes_remaining, decompressions (i32), ledger_swapins and the
        // two neural totals.
        assert_eq!(mach_count(372), 93);
        assert_eq!(mach_count(3), 0);
    }

    #[test]
    fn revision_counts_follow_the_headers_arithmetic() {
        // REV0 = REV1 − 2, REV2 = REV1 + 4, REV3 = REV2 + 42 (<mach/task_info.h>).
        let rev0 = TASK_VM_INFO_REV1_COUNT - 2;
        let rev2 = TASK_VM_INFO_REV1_COUNT + 4;
        assert_eq!(rev0, 36, "144 bytes: the header and 16 u64 sizes");
        assert_eq!(TASK_VM_INFO_REV3_COUNT, rev2 + 42);
        assert_eq!(
            vm_info_reply(rev0),
            VmInfoReply {
                phys_footprint: false,
                ledgers: false
            }
        );
        assert_eq!(
            vm_info_reply(rev2),
            VmInfoReply {
                phys_footprint: true,
                ledgers: false
            }
        );
        assert_eq!(
            vm_info_reply(93),
            VmInfoReply {
                phys_footprint: true,
                ledgers: true
            }
        );
    }

    #[test]
    fn ledger_structs_have_the_kernels_sizes() {
        assert_eq!(std::mem::size_of::<LedgerInfo>(), 48);
        assert_eq!(std::mem::size_of::<LedgerTemplateInfo>(), 96);
        assert_eq!(std::mem::size_of::<LedgerEntryInfo>(), 48);
        assert_eq!(std::mem::size_of::<LedgerEntryInfoV2>(), 88);
    }

    fn template(name: &str) -> LedgerTemplateInfo {
        let mut t = LedgerTemplateInfo::EMPTY;
        for (slot, byte) in t.lti_name.iter_mut().zip(name.bytes()) {
            *slot = c_char::from_ne_bytes([byte]);
        }
        t
    }

    #[test]
    fn graphics_footprint_is_found_by_name_not_position() {
        let templates = [
            template("cpu_time"),
            template("tkm_private"),
            template("phys_footprint"),
            template("graphics_footprint_compressed"),
            template("graphics_footprint"),
        ];
        assert_eq!(ledger_index(&templates, GRAPHICS_FOOTPRINT), Some(4));
        assert_eq!(ledger_index(&templates[..4], GRAPHICS_FOOTPRINT), None);
    }

    #[test]
    fn c_fields_stop_at_nul_or_their_end() {
        assert_eq!(
            c_field(&template("phys_footprint").lti_name),
            "phys_footprint"
        );
        let full = template("abcdefghijklmnopqrstuvwxyz012345");
        assert_eq!(c_field(&full.lti_name).len(), 32);
    }

    #[test]
    fn negative_balances_read_as_zero() {
        assert_eq!(balance_bytes(-4096), 0);
        assert_eq!(balance_bytes(1 << 30), 1 << 30);
    }
}

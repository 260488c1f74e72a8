//! Pure, allocation-free parsers for the `/proc` texts read on every sampler tick and DRM scan.
//!
//! They take bytes and return `Option`: the sampler's hot path must not allocate, so a
//! malformed file is "no reading this tick", never an error string. They compile and are
//! tested on every OS; only the Linux readers call them.

#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

/// The fields of `/proc/<pid>/stat` the sampler needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    /// Field 3: `R`, `S`, `D`, `Z` (zombie), `T`, ...
    pub state: u8,
    /// Field 4: the parent's process id (its thread-group id).
    pub ppid: u32,
    /// Field 22: when the process started, in clock ticks after boot. With the pid, it
    /// identifies a process: a reused pid has a later start time.
    pub start_ticks: u64,
    /// Field 24: resident pages (the kernel's same count as `statm`'s second field); `None`
    /// when the text ends before it.
    pub rss_pages: Option<u64>,
}

/// Parses `/proc/<pid>/stat`: `pid (comm) state ppid … starttime …`.
///
/// `comm` may hold spaces and parentheses (`(sd-pam)`, `(a) b (c)`), so the fields are
/// counted after the *last* `)`.
pub(crate) fn parse_stat(text: &[u8]) -> Option<Stat> {
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = text.get(close + 1..)?;
    let mut fields = rest
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let state = *fields.next()?.first()?;
    let ppid = parse_u64(fields.next()?).and_then(|p| u32::try_from(p).ok())?;
    // After ppid (field 4), starttime is field 22: skip fields 5..=21.
    let start_ticks = parse_u64(fields.nth(17)?)?;
    // Field 23 is vsize; field 24 rss.
    let rss_pages = fields.nth(1).and_then(parse_u64);
    Some(Stat {
        state,
        ppid,
        start_ticks,
        rss_pages,
    })
}

/// The last field of `/proc/loadavg` (`0.20 0.18 0.12 1/80 11206`): the pid most recently
/// handed out in the reader's PID namespace. New processes (and threads) take the pids after
/// it, so when it has not moved, no process was created.
pub(crate) fn parse_loadavg_last_pid(text: &[u8]) -> Option<u32> {
    let last = text
        .split(|b| b.is_ascii_whitespace())
        .rfind(|f| !f.is_empty())?;
    parse_u64(last).and_then(|p| u32::try_from(p).ok())
}

/// The resident-pages field (the second) of `statm`.
pub(crate) fn parse_statm_resident(text: &[u8]) -> Option<u64> {
    let mut fields = text
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    fields.next()?;
    parse_u64(fields.next()?)
}

/// A `Key:   1234 kB` line of `/proc/<pid>/status`, in bytes (the kernel's `kB` is KiB).
/// `None` when the line is absent (a kernel thread or a zombie has no `Vm*` lines).
pub(crate) fn status_kib_as_bytes(text: &[u8], key: &[u8]) -> Option<u64> {
    let value = status_value(text, key)?;
    let number = value
        .split(|b| b.is_ascii_whitespace())
        .find(|f| !f.is_empty())?;
    parse_u64(number)?.checked_mul(1024)
}

/// A `Key:\t1234` line of `/proc/<pid>/status` (`Tgid`, `Pid`, `PPid`).
pub(crate) fn status_u32(text: &[u8], key: &[u8]) -> Option<u32> {
    let value = status_value(text, key)?;
    let number = value
        .split(|b| b.is_ascii_whitespace())
        .find(|f| !f.is_empty())?;
    parse_u64(number).and_then(|n| u32::try_from(n).ok())
}

/// The text after `key:` on the line that starts with it.
fn status_value<'a>(text: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    text.split(|&b| b == b'\n').find_map(|line| {
        line.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(b":"))
    })
}

/// A decimal integer made only of ASCII digits.
pub(crate) fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    digits.iter().try_fold(0_u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// The names in a buffer of `linux_dirent64` records, as `getdents64(2)` fills it:
/// `u64 d_ino, i64 d_off, u16 d_reclen, u8 d_type, char d_name[]` (NUL-terminated), each
/// record `d_reclen` bytes long. Stops at the first record that does not fit.
pub(crate) fn dirent_names(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    const NAME_OFFSET: usize = 19;
    let mut rest = buf;
    std::iter::from_fn(move || {
        let reclen = rest.get(16..18)?;
        let reclen = usize::from(u16::from_ne_bytes([*reclen.first()?, *reclen.get(1)?]));
        if reclen <= NAME_OFFSET || reclen > rest.len() {
            return None;
        }
        let record = rest.get(..reclen)?;
        rest = rest.get(reclen..)?;
        let name = record.get(NAME_OFFSET..)?;
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        name.get(..end)
    })
}

/// Writes `n` in decimal into `out`, returning the digits.
pub(crate) fn decimal(n: u32, out: &mut [u8; 10]) -> &[u8] {
    let mut n = n;
    let mut at = out.len();
    loop {
        at -= 1;
        // n % 10 < 10, so the cast cannot truncate.
        out[at] = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
        if n == 0 || at == 0 {
            break;
        }
    }
    &out[at..]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real `/proc/<pid>/stat` of a shell (Linux 6.1), with its fields numbered in proc(5).
    const STAT: &[u8] = b"4242 (bash) S 4100 4242 4242 34816 4300 4194304 1170 3507 0 0 \
        2 1 3 2 20 0 1 0 987654 9011200 1265 18446744073709551615 1 1 0 0 0 0 65536 \
        3686404 1266761467 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    #[test]
    fn stat_gives_state_parent_and_start_time() {
        assert_eq!(
            parse_stat(STAT),
            Some(Stat {
                state: b'S',
                ppid: 4100,
                start_ticks: 987_654,
                rss_pages: Some(1265),
            })
        );
    }

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis_of_comm() {
        let tricky = b"77 (a) b (c) Z 1 77 77 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 31337 0 0";
        let stat = parse_stat(tricky).unwrap();
        assert_eq!((stat.state, stat.ppid, stat.start_ticks), (b'Z', 1, 31_337));
        // A zombie's rss is 0, the field after vsize.
        assert_eq!(stat.rss_pages, Some(0));
    }

    #[test]
    fn truncated_or_garbled_stat_is_none() {
        assert_eq!(parse_stat(b""), None);
        assert_eq!(parse_stat(b"77 (x) S 1 2 3"), None);
        assert_eq!(
            parse_stat(b"77 (x) S -1 77 77 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 5"),
            None
        );
        assert_eq!(parse_stat(b"77 x S 1"), None);
    }

    #[test]
    fn loadavg_last_field_is_the_last_pid() {
        assert_eq!(
            parse_loadavg_last_pid(b"0.20 0.18 0.12 1/80 11206\n"),
            Some(11_206)
        );
        assert_eq!(parse_loadavg_last_pid(b"0.20 0.18 0.12 1/80\n"), None);
        assert_eq!(parse_loadavg_last_pid(b""), None);
    }

    #[test]
    fn statm_second_field_is_resident_pages() {
        assert_eq!(
            parse_statm_resident(b"3012 1265 860 244 0 350 0\n"),
            Some(1265)
        );
        assert_eq!(parse_statm_resident(b"3012\n"), None);
        assert_eq!(parse_statm_resident(b"3012 x1\n"), None);
    }

    #[test]
    fn status_lines_are_found_by_exact_key_in_kib() {
        let status =
            b"Name:\tpython3\nTgid:\t4242\nPid:\t4243\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
        assert_eq!(status_kib_as_bytes(status, b"VmHWM"), Some(200 << 20));
        assert_eq!(status_kib_as_bytes(status, b"VmRSS"), Some(100 << 20));
        assert_eq!(status_kib_as_bytes(status, b"VmSwap"), None);
        assert_eq!(status_u32(status, b"Tgid"), Some(4242));
        assert_eq!(status_u32(status, b"Pid"), Some(4243));
        assert_eq!(
            status_u32(status, b"Tg"),
            None,
            "a prefix of a key is not the key"
        );
    }

    #[test]
    fn integers_are_plain_decimal_without_overflow() {
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b"1.5"), None);
        assert_eq!(parse_u64(b""), None);
    }

    fn dirent(name: &str) -> Vec<u8> {
        let reclen = (19 + name.len() + 1).next_multiple_of(8);
        let mut record = vec![0_u8; reclen];
        record[..8].copy_from_slice(&7_u64.to_ne_bytes());
        record[16..18].copy_from_slice(&u16::try_from(reclen).unwrap().to_ne_bytes());
        record[18] = 4; // DT_DIR
        record[19..19 + name.len()].copy_from_slice(name.as_bytes());
        record
    }

    #[test]
    fn dirent_records_are_walked_by_their_lengths() {
        let mut buf = Vec::new();
        for name in [
            ".",
            "..",
            "1",
            "self",
            "4194304",
            "a-very-long-directory-name",
        ] {
            buf.extend(dirent(name));
        }
        let names: Vec<&[u8]> = dirent_names(&buf).collect();
        assert_eq!(
            names,
            [
                &b"."[..],
                b"..",
                b"1",
                b"self",
                b"4194304",
                b"a-very-long-directory-name"
            ]
        );
    }

    #[test]
    fn a_cut_or_corrupt_dirent_buffer_ends_the_walk() {
        let mut buf = dirent("12");
        buf.extend(&dirent("13")[..10]);
        assert_eq!(dirent_names(&buf).count(), 1);
        let mut zero = dirent("12");
        zero[16] = 0;
        zero[17] = 0;
        assert_eq!(dirent_names(&zero).count(), 0);
    }

    #[test]
    fn decimals_are_written_without_allocating() {
        let mut out = [0; 10];
        assert_eq!(decimal(0, &mut out), b"0");
        assert_eq!(decimal(4_194_304, &mut out), b"4194304");
        assert_eq!(decimal(u32::MAX, &mut out), b"4294967295");
    }
}

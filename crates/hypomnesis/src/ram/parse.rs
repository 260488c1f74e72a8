//! Pure parsers for `/proc/<pid>/{statm,status,smaps_rollup}` text.
//!
//! The readers in `linux.rs` open the files; these functions only turn text into bytes, so
//! they build and are tested on every OS. A malformed text gives a [`Malformed`] saying which
//! line or field is wrong; the reader adds the path.
//!
//! Units (proc(5)): `statm` counts pages; `status` and `smaps_rollup` write `kB`, which means
//! KiB (1024 bytes). Everything returned here is bytes, except [`parse_statm_resident_pages`].
//!
//! The parsers are strict about the fields they use and ignore every other line, so a kernel
//! that adds fields (it often does) does not break them.

use std::fmt;

/// What is wrong with a text. The reader wraps it in
/// [`HypomnesisError::Parse`](crate::HypomnesisError::Parse) with the file's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(String);

impl Malformed {
    /// A problem with the text as a whole (`"no MemTotal line"`).
    pub(crate) fn new(detail: impl Into<String>) -> Self {
        Self(detail.into())
    }

    /// A problem on one line, quoted with its whitespace collapsed
    /// (`line 3 `VmRSS: abc kB`: not a number`).
    pub(crate) fn at_line(number: usize, line: &str, what: impl fmt::Display) -> Self {
        const MAX_QUOTE: usize = 80;
        let mut quoted = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if let Some((cut, _)) = quoted.char_indices().nth(MAX_QUOTE) {
            quoted.truncate(cut);
            quoted.push('…');
        }
        Self(format!("line {number} `{quoted}`: {what}"))
    }

    /// The description, for [`HypomnesisError::parse`](crate::HypomnesisError).
    pub(crate) fn into_detail(self) -> String {
        self.0
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One `Key: value` line of a procfs file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyLine<'a> {
    /// 1-based line number, for error messages.
    pub(crate) number: usize,
    /// The whole line, for error messages.
    pub(crate) line: &'a str,
    /// The text before the first `:`.
    pub(crate) key: &'a str,
    /// The text after the first `:`, trimmed.
    pub(crate) value: &'a str,
}

impl KeyLine<'_> {
    /// An error about this line.
    pub(crate) fn error(&self, what: impl fmt::Display) -> Malformed {
        Malformed::at_line(self.number, self.line, what)
    }

    /// The value as a plain decimal integer (`Tgid:\t4476`).
    pub(crate) fn integer<T: std::str::FromStr>(&self) -> Result<T, Malformed> {
        self.value.parse().map_err(|_| self.error("not a number"))
    }

    /// The value `N kB`, converted to bytes (procfs `kB` is KiB).
    pub(crate) fn kib_as_bytes(&self) -> Result<u64, Malformed> {
        let mut words = self.value.split_ascii_whitespace();
        let number = words.next().ok_or_else(|| self.error("no value"))?;
        let kib: u64 = number.parse().map_err(|_| self.error("not a number"))?;
        match (words.next(), words.next()) {
            (Some("kB"), None) => {}
            (None, _) => return Err(self.error("no unit (expected `kB`)")),
            (Some(unit), None) => {
                return Err(self.error(format_args!("unit `{unit}`, expected `kB`")));
            }
            (Some(_), Some(extra)) => {
                return Err(self.error(format_args!("unexpected `{extra}` after the unit")));
            }
        }
        kib.checked_mul(1024)
            .ok_or_else(|| self.error("too large to count in bytes"))
    }
}

/// The `Key: value` lines of `text`. Lines of another shape (the address range that opens
/// `smaps_rollup`, blank lines) are skipped.
pub(crate) fn key_lines(text: &str) -> impl Iterator<Item = KeyLine<'_>> {
    text.lines().enumerate().filter_map(|(index, line)| {
        let (key, value) = line.split_once(':')?;
        if key.is_empty() || key.contains(char::is_whitespace) {
            return None;
        }
        Some(KeyLine {
            number: index + 1,
            line,
            key,
            value: value.trim(),
        })
    })
}

/// The resident-pages field (the second) of `statm`: `size resident shared text lib data dt`.
///
/// Takes bytes and allocates nothing unless the text is malformed: this is the hot path of
/// `process_rss`.
pub(crate) fn parse_statm_resident_pages(text: &[u8]) -> Result<u64, Malformed> {
    let text = std::str::from_utf8(text)
        .map_err(|_| Malformed::new("not ASCII text (expected `size resident shared …`)"))?;
    let mut fields = text.split_ascii_whitespace();
    if fields.next().is_none() {
        return Err(Malformed::new("empty (expected `size resident shared …`)"));
    }
    let resident = fields
        .next()
        .ok_or_else(|| Malformed::new("only one field (expected `size resident shared …`)"))?;
    resident.parse().map_err(|_| {
        Malformed::new(format!(
            "field 2 (resident pages) `{resident}`: not a number"
        ))
    })
}

/// The fields of `/proc/<pid>/status` this crate uses. Memory fields are bytes; each is
/// `None` when the line is absent (kernel threads have no `Vm*` lines; `Rss*` appeared in
/// Linux 4.5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Status {
    /// `Tgid`: the process id (for a thread's status, the id of its process), as numbered in
    /// the PID namespace of the `/proc` mount.
    pub(crate) tgid: Option<u32>,
    /// `VmRSS`.
    pub(crate) vm_rss: Option<u64>,
    /// `VmHWM`: peak RSS.
    pub(crate) vm_hwm: Option<u64>,
    /// `VmSwap`.
    pub(crate) vm_swap: Option<u64>,
    /// `RssAnon` (Linux ≥ 4.5).
    pub(crate) rss_anon: Option<u64>,
    /// `RssFile` (Linux ≥ 4.5).
    pub(crate) rss_file: Option<u64>,
}

/// Parses `/proc/<pid>/status`.
pub(crate) fn parse_status(text: &str) -> Result<Status, Malformed> {
    let mut status = Status::default();
    for line in key_lines(text) {
        match line.key {
            "Tgid" => status.tgid = Some(line.integer()?),
            "VmRSS" => status.vm_rss = Some(line.kib_as_bytes()?),
            "VmHWM" => status.vm_hwm = Some(line.kib_as_bytes()?),
            "VmSwap" => status.vm_swap = Some(line.kib_as_bytes()?),
            "RssAnon" => status.rss_anon = Some(line.kib_as_bytes()?),
            "RssFile" => status.rss_file = Some(line.kib_as_bytes()?),
            _ => {}
        }
    }
    Ok(status)
}

/// The figures of `/proc/<pid>/smaps_rollup` this crate uses, bytes. The file is empty for a
/// process without an address space (kernel threads, zombies), so each is `None` then.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SmapsRollup {
    /// `Pss`: each resident page divided by the number of processes mapping it.
    pub(crate) pss: Option<u64>,
    /// USS = `Private_Clean + Private_Dirty`: pages mapped by this process only.
    pub(crate) uss: Option<u64>,
}

/// Parses `/proc/<pid>/smaps_rollup` (Linux ≥ 4.14). The first line, an address range
/// ending in `[rollup]`, is skipped.
pub(crate) fn parse_smaps_rollup(text: &str) -> Result<SmapsRollup, Malformed> {
    let mut pss = None;
    let mut private_clean = None;
    let mut private_dirty = None;
    for line in key_lines(text) {
        match line.key {
            "Pss" => pss = Some(line.kib_as_bytes()?),
            "Private_Clean" => private_clean = Some(line.kib_as_bytes()?),
            "Private_Dirty" => private_dirty = Some(line.kib_as_bytes()?),
            _ => {}
        }
    }
    let uss = match (private_clean, private_dirty) {
        (Some(clean), Some(dirty)) => Some(
            clean
                .checked_add(dirty)
                .ok_or_else(|| Malformed::new("Private_Clean + Private_Dirty overflows"))?,
        ),
        _ => None,
    };
    Ok(SmapsRollup { pss, uss })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from a `python3` process holding a 50 MB bytearray (Linux 6.18), trimmed.
    const PYTHON_STATUS: &str = "Name:\tpython3\nUmask:\t0022\nState:\tS (sleeping)\n\
        Tgid:\t4476\nNgid:\t0\nPid:\t4476\nPPid:\t1\nTracerPid:\t0\nUid:\t0\t0\t0\t0\n\
        Groups:\t \nNStgid:\t4476\nNSpid:\t4476\nKthread:\t0\nVmPeak:\t   65396 kB\n\
        VmSize:\t   65396 kB\nVmLck:\t       0 kB\nVmHWM:\t   62352 kB\nVmRSS:\t   62352 kB\n\
        RssAnon:\t   55700 kB\nRssFile:\t    6652 kB\nRssShmem:\t       0 kB\n\
        VmSwap:\t     128 kB\nHugetlbPages:\t       0 kB\nThreads:\t1\n\
        SigQ:\t0/96365\nCpus_allowed_list:\t0-1\n";

    /// Captured from `kthreadd` (pid 2): no `Vm*` or `Rss*` lines.
    const KTHREAD_STATUS: &str = "Name:\tkthreadd\nUmask:\t0022\nState:\tS (sleeping)\n\
        Tgid:\t2\nNgid:\t0\nPid:\t2\nPPid:\t0\nKthread:\t1\nThreads:\t1\n";

    const PYTHON_SMAPS_ROLLUP: &str = "556903b4f000-7fffe36f8000 ---p 00000000 00:00 0                          [rollup]\n\
        Rss:               62352 kB\nPss:               60957 kB\nPss_Dirty:         55700 kB\n\
        Pss_Anon:          55700 kB\nShared_Clean:       1660 kB\nShared_Dirty:          0 kB\n\
        Private_Clean:      4992 kB\nPrivate_Dirty:     55700 kB\nReferenced:        62352 kB\n\
        Swap:                  0 kB\nSwapPss:               0 kB\nLocked:                0 kB\n";

    #[test]
    fn statm_resident_is_the_second_field_in_pages() {
        assert_eq!(
            parse_statm_resident_pages(b"16349 15588 1663 1 0 14227 0\n"),
            Ok(15588)
        );
    }

    #[test]
    fn statm_of_a_kernel_thread_is_zero_pages() {
        assert_eq!(parse_statm_resident_pages(b"0 0 0 0 0 0 0\n"), Ok(0));
    }

    #[test]
    fn statm_with_one_field_says_so() {
        let err = parse_statm_resident_pages(b"16349\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "only one field (expected `size resident shared …`)"
        );
    }

    #[test]
    fn empty_statm_says_it_is_empty() {
        let err = parse_statm_resident_pages(b"").unwrap_err();
        assert!(err.to_string().starts_with("empty"), "{err}");
    }

    #[test]
    fn statm_with_a_bad_resident_field_quotes_it() {
        let err = parse_statm_resident_pages(b"16349 lots 1663 1 0 14227 0\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "field 2 (resident pages) `lots`: not a number"
        );
    }

    #[test]
    fn statm_that_is_not_text_is_rejected() {
        assert!(parse_statm_resident_pages(b"1 \xff\xfe 2\n").is_err());
    }

    #[test]
    fn status_memory_fields_are_converted_from_kib_to_bytes() {
        let status = parse_status(PYTHON_STATUS).unwrap();
        assert_eq!(
            status,
            Status {
                tgid: Some(4476),
                vm_rss: Some(62352 * 1024),
                vm_hwm: Some(62352 * 1024),
                vm_swap: Some(128 * 1024),
                rss_anon: Some(55700 * 1024),
                rss_file: Some(6652 * 1024),
            }
        );
    }

    #[test]
    fn kernel_thread_status_has_no_memory_fields() {
        let status = parse_status(KTHREAD_STATUS).unwrap();
        assert_eq!(
            status,
            Status {
                tgid: Some(2),
                ..Status::default()
            }
        );
    }

    #[test]
    fn status_before_linux_4_5_has_no_rss_split() {
        let status =
            parse_status("Tgid:\t7\nVmHWM:\t 10 kB\nVmRSS:\t 9 kB\nVmSwap:\t 0 kB\n").unwrap();
        assert_eq!(status.vm_rss, Some(9 * 1024));
        assert_eq!(status.rss_anon, None);
        assert_eq!(status.rss_file, None);
    }

    #[test]
    fn status_with_a_non_number_names_the_line() {
        let text = "Name:\tx\nTgid:\t7\nVmRSS:\t abc kB\n";
        let err = parse_status(text).unwrap_err();
        assert_eq!(err.to_string(), "line 3 `VmRSS: abc kB`: not a number");
    }

    #[test]
    fn status_with_a_wrong_unit_names_the_unit() {
        let err = parse_status("VmHWM:\t 12 MB\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1 `VmHWM: 12 MB`: unit `MB`, expected `kB`"
        );
    }

    #[test]
    fn status_without_a_unit_is_rejected() {
        let err = parse_status("VmSwap:\t 12\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1 `VmSwap: 12`: no unit (expected `kB`)"
        );
    }

    #[test]
    fn status_with_a_bad_tgid_names_the_line() {
        let err = parse_status("Name:\tx\nTgid:\t-1\n").unwrap_err();
        assert_eq!(err.to_string(), "line 2 `Tgid: -1`: not a number");
    }

    #[test]
    fn status_value_too_large_for_bytes_is_an_error_not_a_wrap() {
        let err = parse_status("VmRSS:\t18446744073709551615 kB\n").unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
    }

    #[test]
    fn unused_status_lines_may_have_any_shape() {
        let status =
            parse_status("Groups:\t \nweird line\nSigQ:\t0/96365\nVmRSS:\t 4 kB\n").unwrap();
        assert_eq!(status.vm_rss, Some(4096));
    }

    #[test]
    fn long_bad_lines_are_quoted_shortened() {
        let line = format!("VmRSS:\t{} kB", "9x".repeat(100));
        let err = parse_status(&line).unwrap_err().to_string();
        assert!(err.contains('…'), "{err}");
        assert!(err.len() < 140, "{err}");
    }

    #[test]
    fn smaps_rollup_gives_pss_and_uss_as_private_clean_plus_dirty() {
        let rollup = parse_smaps_rollup(PYTHON_SMAPS_ROLLUP).unwrap();
        assert_eq!(rollup.pss, Some(60957 * 1024));
        assert_eq!(rollup.uss, Some((4992 + 55700) * 1024));
    }

    #[test]
    fn empty_smaps_rollup_has_no_figures() {
        assert_eq!(parse_smaps_rollup(""), Ok(SmapsRollup::default()));
    }

    #[test]
    fn smaps_rollup_without_private_dirty_has_no_uss() {
        let rollup = parse_smaps_rollup("Pss:  8 kB\nPrivate_Clean:  4 kB\n").unwrap();
        assert_eq!(rollup.pss, Some(8192));
        assert_eq!(rollup.uss, None);
    }

    #[test]
    fn malformed_smaps_rollup_names_the_line() {
        let text =
            "556903b4f000-7fffe36f8000 ---p 00000000 00:00 0  [rollup]\nRss:  1 kB\nPss: x kB\n";
        let err = parse_smaps_rollup(text).unwrap_err();
        assert_eq!(err.to_string(), "line 3 `Pss: x kB`: not a number");
    }
}

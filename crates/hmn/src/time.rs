//! How hmn writes times: durations for people (`850 ms`, `12.34 s`), milliseconds for JSON,
//! and wall clocks for records (`2026-09-14T10:12:03.482Z`).
//!
//! Several commands and outputs (`run`'s report, the recording, the plot, `watch`, the spill
//! lines) write the same times; they share these so a reader sees one form everywhere.

use std::time::{Duration, SystemTime};

/// `1.23 s`, `850 ms`.
pub fn seconds(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{}.{:02} s", ms / 1000, (ms % 1000) / 10)
    }
}

/// Whole milliseconds, as JSON records carry durations (saturating: a run longer than
/// `u64::MAX` ms reads `u64::MAX`).
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `2026-09-14T10:12:03.482Z` (UTC, milliseconds).
pub fn wall_clock_text(at: SystemTime) -> String {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        (rest % 3600) / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clock_is_utc_with_milliseconds() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_789_380_723_482);
        assert_eq!(wall_clock_text(at), "2026-09-14T10:12:03.482Z");
        assert_eq!(
            wall_clock_text(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(wall_clock_text(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn short_and_long_times_read_naturally() {
        assert_eq!(seconds(850), "850 ms");
        assert_eq!(seconds(12_345), "12.34 s");
    }
}

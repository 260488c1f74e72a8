//! Sizes as people type and read them.
//!
//! Input (`hmn fits 12GiB`, `ps --min 500M`): a number with an optional fraction and an
//! optional unit, with or without a space. `K`/`M`/`G`/`T` and `KiB`/`MiB`/`GiB`/`TiB` are
//! binary (1 GiB = 1024³ bytes), as GPU memory is sold and as `nvidia-smi` counts; `KB`/`MB`/
//! `GB`/`TB` are the SI decimal units; no unit (or `B`) means bytes. Case does not matter.
//!
//! Output: `512 MiB` below 1 GiB, `1.5 GiB` above, always binary.

use std::fmt;

/// The forms `parse_size` accepts, shown in every error.
pub const ACCEPTED_FORMS: &str =
    "accepted forms: 12GiB, 12 GiB, 1.5G, 800MiB, 800M, 2TB (decimal), 1048576 (bytes)";

/// A size that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeError {
    input: String,
    problem: String,
}

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid size `{}`: {} ({ACCEPTED_FORMS})",
            self.input, self.problem
        )
    }
}

impl std::error::Error for SizeError {}

/// Parses `12GiB`, `12 GiB`, `1.5G`, `800MiB`, `2TB`, `1048576` into bytes.
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let error = |problem: &str| SizeError {
        input: input.to_owned(),
        problem: problem.to_owned(),
    };
    let text = input.trim();
    if text.is_empty() {
        return Err(error("empty"));
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(error("it does not start with a number"));
    }
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => return Err(error(&format!("unknown unit `{other}`"))),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.contains('.') || (whole.is_empty() && fraction.is_empty()) {
        return Err(error("not a number"));
    }
    if multiplier == 1 && number.contains('.') {
        // `1.5` is most likely 1.5 GiB meant, not 1 byte: say so rather than guess.
        return Err(error(
            "a fraction needs a unit (1.5G, 1.5GiB, 1.5GB); bytes are whole numbers",
        ));
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| error("number too large"))?
    };
    let mut bytes = whole
        .checked_mul(multiplier)
        .ok_or_else(|| error("too large"))?;
    if !fraction.is_empty() {
        // Exact decimal arithmetic: 1.5G is 1610612736 bytes, not a float's neighbour.
        let digits = u32::try_from(fraction.len()).map_err(|_| error("too many decimals"))?;
        let scale = 10u128
            .checked_pow(digits)
            .ok_or_else(|| error("too many decimals"))?;
        let numerator: u128 = fraction.parse().map_err(|_| error("not a number"))?;
        let part = numerator * u128::from(multiplier) / scale;
        bytes = bytes
            .checked_add(u64::try_from(part).map_err(|_| error("too large"))?)
            .ok_or_else(|| error("too large"))?;
    }
    Ok(bytes)
}

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// `12 B`, `4 KiB`, `512 MiB`, `1.5 GiB`.
pub fn format_size(bytes: u64) -> String {
    if bytes < KIB {
        format!("{bytes} B")
    } else if bytes < MIB {
        format!("{} KiB", bytes / KIB)
    } else if bytes < GIB {
        format!("{} MiB", bytes / MIB)
    } else {
        // One decimal, rounded half up, from integers.
        let tenths = (u128::from(bytes) * 10 + u128::from(GIB) / 2) / u128::from(GIB);
        format!("{}.{} GiB", tenths / 10, tenths % 10)
    }
}

/// `format_size` for a known figure, `n/a` for an unknown one.
pub fn format_optional(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "n/a".to_owned(), format_size)
}

/// Whole MiB, as `nvidia-smi` prints them.
pub fn mib(bytes: u64) -> u64 {
    bytes / MIB
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_form_parses() {
        assert_eq!(parse_size("12GiB"), Ok(12 << 30));
        assert_eq!(parse_size("12 GiB"), Ok(12 << 30));
        assert_eq!(parse_size("1.5G"), Ok(1_610_612_736));
        assert_eq!(parse_size("800MiB"), Ok(800 << 20));
        assert_eq!(parse_size("800m"), Ok(800 << 20));
        assert_eq!(parse_size("2TB"), Ok(2_000_000_000_000));
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_size("512 B"), Ok(512));
        assert_eq!(parse_size(".5K"), Ok(512));
    }

    #[test]
    fn bad_sizes_name_the_input_and_show_the_accepted_forms() {
        for bad in [
            "",
            "GiB",
            "12 XB",
            "1.2.3G",
            "-1G",
            "99999999999999999999",
            "1e9",
            "1.5",
            "1.5 B",
            "0.5b",
            "2.",
        ] {
            let err = parse_size(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
            assert!(err.contains(ACCEPTED_FORMS), "{err}");
        }
        assert!(
            parse_size("12 XB")
                .unwrap_err()
                .to_string()
                .contains("unknown unit `xb`")
        );
        assert!(
            parse_size("1.5")
                .unwrap_err()
                .to_string()
                .contains("a fraction needs a unit"),
            "a bare fraction is not silently one byte"
        );
        assert!(
            parse_size("20000000T").is_err(),
            "overflow is an error, not a wrap"
        );
    }

    #[test]
    fn sizes_print_in_the_largest_sensible_binary_unit() {
        assert_eq!(format_size(12), "12 B");
        assert_eq!(format_size(4096), "4 KiB");
        assert_eq!(format_size(512 << 20), "512 MiB");
        assert_eq!(format_size(1_610_612_736), "1.5 GiB");
        assert_eq!(format_size(80 << 30), "80.0 GiB");
        assert_eq!(format_optional(None), "n/a");
    }
}

//! Every value a flag takes, parsed in one place: sizes, durations, listen addresses and
//! patterns.
//!
//! Each command used to parse its own: `run --interval 1h` was accepted while
//! `serve --interval 1h` was refused, and each said so in its own words. Here each kind of
//! value has one grammar, and every error names the value as typed, what is wrong with it and
//! the forms that are accepted. The parsers are pure (text in, value or [`ValueError`] out)
//! and are what `cli.rs` hands to clap as `value_parser`s.
//!
//! - Sizes (`hmn fits 12GiB`, `ps --min 500M`): a number with an optional fraction and an
//!   optional unit, with or without a space. `K`/`M`/`G`/`T` and `KiB`/`MiB`/`GiB`/`TiB` are
//!   binary (1 GiB = 1024³ bytes), as GPU memory is sold and as `nvidia-smi` counts;
//!   `KB`/`MB`/`GB`/`TB` are the SI decimal units; no unit (or `B`) means bytes. Case does not
//!   matter.
//! - Durations (`--interval`, `--duration`): a number with an optional fraction and a unit,
//!   `ms`, `s`, `m` or `h` (lower case: `m` is minutes, never months or mega); a bare number
//!   is seconds. At least 1 ms; `serve --interval` has its own bounds ([`serve_interval`]).
//! - Listen addresses (`serve --listen`): an IP address and a port, or `localhost:PORT`.
//!
//! Numbers are read as exact decimals (`1.5G` is 1610612736 bytes, `0.1s` is 100 ms), not as
//! floats: the standard parsers accept `inf`, `NaN` and `1e9`, which no one means here.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// The forms [`parse_size`] accepts, shown in every size error.
pub const SIZE_FORMS: &str =
    "accepted forms: 12GiB, 12 GiB, 1.5G, 800MiB, 800M, 2TB (decimal), 1048576 (bytes)";

/// The forms [`parse_duration`] accepts, shown in every duration error.
pub const DURATION_FORMS: &str =
    "accepted forms: 50ms, 0.5s, 2s, 1m, 1h, or a bare number of seconds (2, 0.25)";

/// The forms [`parse_listen`] accepts, shown in every listen-address error.
pub const LISTEN_FORMS: &str = "give an IP address and a port: 127.0.0.1:9464 (this machine \
                                only), [::1]:9464, or 0.0.0.0:9464 (every interface)";

/// The shortest `serve --interval`: sampling walks `/proc` for process names.
pub const SERVE_MIN_INTERVAL: Duration = Duration::from_millis(100);

/// The longest `serve --interval` (Prometheus marks series stale after 5 minutes without a
/// sample, so a longer interval would leave gaps in every graph).
pub const SERVE_MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// A value that could not be understood: which kind, as typed, what is wrong, what would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    /// `size`, `duration`, `interval`, `listen address`.
    kind: &'static str,
    input: String,
    problem: String,
    /// The accepted forms, or what to do instead.
    forms: &'static str,
}

impl ValueError {
    fn new(
        kind: &'static str,
        input: &str,
        problem: impl Into<String>,
        forms: &'static str,
    ) -> Self {
        Self {
            kind,
            input: input.to_owned(),
            problem: problem.into(),
            forms,
        }
    }
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} `{}`: {} ({})",
            self.kind, self.input, self.problem, self.forms
        )
    }
}

impl std::error::Error for ValueError {}

/// A decimal number as typed: whole digits and fraction digits (either may be empty, not
/// both).
struct Decimal<'a> {
    whole: &'a str,
    fraction: &'a str,
    /// Whether it was written with a decimal point (`2.` has one).
    point: bool,
}

impl Decimal<'_> {
    /// `self × unit`, exactly, in the unit's smallest part (bytes, nanoseconds); `None` on
    /// overflow.
    fn times(&self, unit: u64) -> Option<u64> {
        let whole: u64 = if self.whole.is_empty() {
            0
        } else {
            self.whole.parse().ok()?
        };
        let mut value = whole.checked_mul(unit)?;
        if !self.fraction.is_empty() {
            let digits = u32::try_from(self.fraction.len()).ok()?;
            let scale = 10u128.checked_pow(digits)?;
            let numerator: u128 = self.fraction.parse().ok()?;
            let part = numerator.checked_mul(u128::from(unit))? / scale;
            value = value.checked_add(u64::try_from(part).ok()?)?;
        }
        Some(value)
    }

    fn has_point(&self) -> bool {
        self.point
    }
}

/// Splits `text` (trimmed) into its leading decimal number and the unit after it (trimmed).
/// `Err` names what is wrong with the number.
fn split_number(text: &str) -> Result<(Decimal<'_>, &str), &'static str> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty");
    }
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(end);
    if number.is_empty() {
        return Err("it does not start with a number");
    }
    let point = number.contains('.');
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.contains('.') || (whole.is_empty() && fraction.is_empty()) {
        return Err("not a number");
    }
    Ok((
        Decimal {
            whole,
            fraction,
            point,
        },
        unit.trim(),
    ))
}

/// Parses `12GiB`, `12 GiB`, `1.5G`, `800MiB`, `2TB`, `1048576` into bytes.
pub fn parse_size(input: &str) -> Result<u64, ValueError> {
    let error = |problem: &str| ValueError::new("size", input, problem, SIZE_FORMS);
    let (number, unit) = split_number(input).map_err(error)?;
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
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
    if multiplier == 1 && number.has_point() {
        // `1.5` is most likely 1.5 GiB meant, not 1 byte: say so rather than guess.
        return Err(error(
            "a fraction needs a unit (1.5G, 1.5GiB, 1.5GB); bytes are whole numbers",
        ));
    }
    number.times(multiplier).ok_or_else(|| error("too large"))
}

/// Parses `50ms`, `0.5s`, `2s`, `1m`, `1h`, or a bare number of seconds (`2`, `0.25`); at
/// least 1 ms.
pub fn parse_duration(input: &str) -> Result<Duration, ValueError> {
    duration("duration", input)
}

/// A duration of `kind` (the word the errors use), at least 1 ms.
fn duration(kind: &'static str, input: &str) -> Result<Duration, ValueError> {
    const NANOS_PER_MS: u64 = 1_000_000;
    const NANOS_PER_S: u64 = 1_000_000_000;
    let error = |problem: &str| ValueError::new(kind, input, problem, DURATION_FORMS);
    let (number, unit) = split_number(input).map_err(error)?;
    let nanos_per_unit = match unit {
        "ms" => NANOS_PER_MS,
        "" | "s" => NANOS_PER_S,
        "m" => 60 * NANOS_PER_S,
        "h" => 3600 * NANOS_PER_S,
        other => {
            return Err(error(&format!(
                "unknown unit `{other}` (use ms, s, m or h)"
            )));
        }
    };
    let nanos = number
        .times(nanos_per_unit)
        .ok_or_else(|| error("too long"))?;
    if nanos < NANOS_PER_MS {
        return Err(error("at least 1ms"));
    }
    Ok(Duration::from_nanos(nanos))
}

/// `serve --interval`: a duration ([`parse_duration`]'s grammar) from
/// [`SERVE_MIN_INTERVAL`] to [`SERVE_MAX_INTERVAL`].
#[cfg_attr(not(feature = "serve"), allow(dead_code))]
pub fn serve_interval(input: &str) -> Result<Duration, ValueError> {
    let interval = duration("interval", input)?;
    if interval < SERVE_MIN_INTERVAL {
        return Err(ValueError::new(
            "interval",
            input,
            format!(
                "too short: the minimum is {} ms (each sample walks /proc)",
                SERVE_MIN_INTERVAL.as_millis()
            ),
            DURATION_FORMS,
        ));
    }
    if interval > SERVE_MAX_INTERVAL {
        return Err(ValueError::new(
            "interval",
            input,
            format!(
                "too long: the maximum is {} s, 1h (Prometheus marks a series stale after 5 \
                 minutes without a new sample)",
                SERVE_MAX_INTERVAL.as_secs()
            ),
            DURATION_FORMS,
        ));
    }
    Ok(interval)
}

/// Parses `serve --listen`: an IP address and port (`127.0.0.1:9464`, `[::1]:9464`,
/// `0.0.0.0:9464`) or `localhost:PORT`. A bare `:PORT` is refused rather than taken to mean
/// every interface, so exposing the metrics is always a visible choice.
#[cfg_attr(not(feature = "serve"), allow(dead_code))]
pub fn parse_listen(input: &str) -> Result<SocketAddr, ValueError> {
    let error = |problem: &str| ValueError::new("listen address", input, problem, LISTEN_FORMS);
    let text = input.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = text.strip_prefix("localhost:") {
        return port
            .parse::<u16>()
            .map(|p| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p))
            .map_err(|_| error("the port is not a number from 0 to 65535"));
    }
    if text.starts_with(':') {
        return Err(error("it has no address"));
    }
    Err(error("not an IP address and port"))
}

/// The forms [`parse_headroom`] accepts, shown in every headroom error.
pub const HEADROOM_FORMS: &str = "accepted forms: 5% (of each GPU's total memory), 2.5%, or a \
                                  size: 2GiB, 512MiB";

/// `fits --headroom`: how much memory must stay free on a GPU beyond SIZE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Headroom {
    /// Hundredths of a percent of the GPU's (or MIG instance's) total memory: `5%` is 500.
    Percent { hundredths: u32 },
    /// A fixed amount on every GPU.
    Bytes(u64),
}

impl Headroom {
    /// The bytes to keep free on a device of `total` bytes: `None` when the headroom is a
    /// percentage and the total is unknown. Rounded up: never less than asked.
    pub fn on(self, total: Option<u64>) -> Option<u64> {
        match self {
            Headroom::Bytes(bytes) => Some(bytes),
            Headroom::Percent { hundredths } => total.map(|total| {
                let kept = (u128::from(total) * u128::from(hundredths)).div_ceil(10_000);
                u64::try_from(kept).unwrap_or(u64::MAX)
            }),
        }
    }
}

/// Parses `5%`, `2.5%` (of each GPU's total memory, below 100 %) or a size ([`parse_size`]).
pub fn parse_headroom(input: &str) -> Result<Headroom, ValueError> {
    let Some(number) = input.trim().strip_suffix('%') else {
        return parse_size(input)
            .map(Headroom::Bytes)
            .map_err(|e| ValueError::new("headroom", input, e.problem, HEADROOM_FORMS));
    };
    let error = |problem: &str| ValueError::new("headroom", input, problem, HEADROOM_FORMS);
    let (decimal, unit) = split_number(number).map_err(error)?;
    if !unit.is_empty() {
        return Err(error("a percentage is a bare number before `%`"));
    }
    let hundredths = decimal
        .times(100)
        .and_then(|h| u32::try_from(h).ok())
        .filter(|&h| h < 10_000)
        .ok_or_else(|| error("a percentage must be below 100%"))?;
    Ok(Headroom::Percent { hundredths })
}

/// A `--filter` pattern: any text but blank.
pub fn non_blank(input: &str) -> Result<String, ValueError> {
    if input.trim().is_empty() {
        Err(ValueError::new(
            "pattern",
            input,
            "it is blank",
            "give some text to match",
        ))
    } else {
        Ok(input.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_size_form_parses() {
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
            assert!(err.contains(SIZE_FORMS), "{err}");
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
    fn durations_take_ms_s_m_h_or_bare_seconds() {
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("0.5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.1s"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5 s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
    }

    #[test]
    fn bad_durations_name_the_input_and_show_the_accepted_forms() {
        for bad in [
            "",
            "fast",
            "5 parsecs",
            "0ms",
            "0.1ms",
            "-1s",
            "1e3s",
            "NaNs",
            "inf",
            "5S",
            "1.2.3s",
            "1d",
        ] {
            let err = parse_duration(bad).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid duration `{bad}`: ")),
                "{err}"
            );
            assert!(err.contains(DURATION_FORMS), "{err}");
        }
        assert!(
            parse_duration("5 parsecs")
                .unwrap_err()
                .to_string()
                .contains("unknown unit `parsecs` (use ms, s, m or h)")
        );
        assert!(
            parse_duration("0ms")
                .unwrap_err()
                .to_string()
                .contains("at least 1ms")
        );
        assert!(
            parse_duration("99999999999999999h")
                .unwrap_err()
                .to_string()
                .contains("too long"),
            "overflow is an error, not a wrap"
        );
    }

    #[test]
    fn serve_intervals_share_the_duration_grammar_within_their_bounds() {
        assert_eq!(serve_interval("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(serve_interval("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(serve_interval("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(serve_interval("10"), Ok(Duration::from_secs(10)));
        // `run --interval 1h` was accepted while `serve --interval 1h` was refused.
        assert_eq!(serve_interval("1h"), Ok(Duration::from_secs(3600)));
        let short = serve_interval("50ms").unwrap_err().to_string();
        assert!(short.contains("minimum is 100 ms"), "{short}");
        let long = serve_interval("61m").unwrap_err().to_string();
        assert!(long.contains("too long"), "{long}");
        let long = serve_interval("2h").unwrap_err().to_string();
        assert!(long.contains("too long"), "{long}");
        for bad in ["-1s", "NaNs", "", "5 parsecs"] {
            let err = serve_interval(bad).unwrap_err().to_string();
            assert!(err.contains(DURATION_FORMS), "{err}");
        }
    }

    #[test]
    fn listen_addresses_are_ip_and_port_and_never_implicitly_public() {
        assert_eq!(
            parse_listen("127.0.0.1:9464"),
            Ok("127.0.0.1:9464".parse().unwrap())
        );
        assert_eq!(parse_listen("[::1]:0"), Ok("[::1]:0".parse().unwrap()));
        assert_eq!(
            parse_listen("localhost:9464"),
            Ok("127.0.0.1:9464".parse().unwrap())
        );
        let no_address = parse_listen(":9464").unwrap_err().to_string();
        assert!(no_address.contains("has no address"), "{no_address}");
        let host = parse_listen("example.com:9464").unwrap_err().to_string();
        assert!(
            host.starts_with("invalid listen address `example.com:9464`"),
            "{host}"
        );
        assert!(host.contains("127.0.0.1:9464"), "{host}");
        assert!(parse_listen("127.0.0.1").is_err());
        assert!(parse_listen("localhost:99999").is_err());
    }

    #[test]
    fn a_blank_pattern_is_refused() {
        assert_eq!(non_blank("py"), Ok("py".to_owned()));
        let err = non_blank("  ").unwrap_err().to_string();
        assert!(err.contains("blank"), "{err}");
    }

    #[test]
    fn headroom_is_a_percentage_of_each_gpu_or_a_size() {
        assert_eq!(
            parse_headroom("5%"),
            Ok(Headroom::Percent { hundredths: 500 })
        );
        assert_eq!(
            parse_headroom("2.5%"),
            Ok(Headroom::Percent { hundredths: 250 })
        );
        assert_eq!(parse_headroom("2GiB"), Ok(Headroom::Bytes(2 << 30)));
        assert_eq!(
            Headroom::Percent { hundredths: 500 }.on(Some(80 << 30)),
            Some(4 << 30)
        );
        assert_eq!(Headroom::Percent { hundredths: 500 }.on(None), None);
        assert_eq!(Headroom::Bytes(7).on(None), Some(7));
        for bad in ["100%", "150%", "x%", "5 GiB%", "%", "lots"] {
            let err = parse_headroom(bad).unwrap_err().to_string();
            assert!(err.contains("invalid headroom"), "{bad}: {err}");
            assert!(err.contains(HEADROOM_FORMS), "{bad}: {err}");
        }
    }
}

//! Durations and time flags in the syntax Prometheus and Thanos use.
//!
//! Users copy values such as `--min-time=-2w` from Thanos documentation, so
//! this module accepts what Thanos accepts and resolves it the same way.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

/// One optional number per unit, in descending order; the regex engine resolves
/// the `m` / `ms` ambiguity by trying both readings.
static DURATION: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r"^(?:([0-9]+)y)?(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?(?:([0-9]+)ms)?$",
    )
    .unwrap()
});

const MS_PER_DAY: u64 = 24 * 60 * 60 * 1000;
/// Unit sizes in milliseconds, in the order of the capture groups above.
const UNITS: [(&str, u64); 7] = [
    ("y", 365 * MS_PER_DAY),
    ("w", 7 * MS_PER_DAY),
    ("d", MS_PER_DAY),
    ("h", 60 * 60 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];
/// Prometheus stores durations as Go `time.Duration` (signed 64-bit nanoseconds),
/// so anything longer (about 292 years) is out of range there and here too.
const MAX_MILLIS: u128 = i64::MAX as u128 / 1_000_000;

/// Why a duration or time flag could not be parsed; every variant names the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeSpecError {
    /// The text is not in duration syntax; `reason` says how.
    #[error("invalid duration {input:?}: {reason}")]
    InvalidDuration {
        /// The text as the user gave it.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The duration is longer than Prometheus can represent.
    #[error("invalid duration {input:?}: out of range (the maximum is about 292 years)")]
    DurationOutOfRange {
        /// The text as the user gave it.
        input: String,
    },
    /// The text is neither an RFC3339 timestamp nor a relative duration; `reason` says which was expected.
    #[error("invalid time {input:?}: {reason}")]
    InvalidTime {
        /// The text as the user gave it.
        input: String,
        /// What was expected instead.
        reason: String,
    },
}

/// Prometheus duration syntax as model.ParseDuration accepts it: units y w d h m s ms, combined in descending order ("2h45m", "1w", "0s", "5m", "100ms", "1y" = 365d). Rejects empty, unknown units, out-of-order units, negative, overflow.
///
/// A bare `0` is accepted too, as Prometheus does, because it is unambiguous.
pub fn parse_duration(s: &str) -> Result<Duration, TimeSpecError> {
    let invalid = |reason| TimeSpecError::InvalidDuration { input: s.to_owned(), reason };
    match s {
        "" => return Err(invalid("empty duration")),
        "0" => return Ok(Duration::ZERO),
        _ if s.starts_with('-') => return Err(invalid("negative durations are not allowed here")),
        _ => {}
    }
    let caps = DURATION
        .captures(s)
        .ok_or_else(|| invalid("expected numbers with units y, w, d, h, m, s or ms, largest first, e.g. \"1d12h\""))?;
    let mut total: u128 = 0;
    for (group, (_, unit_ms)) in caps.iter().skip(1).zip(UNITS) {
        let Some(digits) = group else { continue };
        // Digits that do not fit in a u128 are certainly out of range.
        let n: u128 = digits.as_str().parse().unwrap_or(u128::MAX);
        total = total.saturating_add(n.saturating_mul(u128::from(unit_ms)));
    }
    if total > MAX_MILLIS {
        return Err(TimeSpecError::DurationOutOfRange { input: s.to_owned() });
    }
    // MAX_MILLIS fits in a u64, so this conversion cannot fail after the check above.
    Ok(Duration::from_millis(u64::try_from(total).unwrap_or(u64::MAX)))
}

/// Formats a duration the way Prometheus prints one (`1w`, `2h45m`, `90d`, `0s`),
/// so values echoed back in logs look like what the user typed.
///
/// Years and weeks are used only when they divide the rest exactly, as in
/// Prometheus; precision below a millisecond is dropped.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, unit_ms) in UNITS {
        let unit_ms = u128::from(unit_ms);
        if (unit == "y" || unit == "w") && ms % unit_ms != 0 {
            continue;
        }
        if ms >= unit_ms {
            out.push_str(&format!("{}{unit}", ms / unit_ms));
            ms %= unit_ms;
        }
    }
    out
}

/// Value of Thanos's --min-time / --max-time: RFC3339 (e.g. 2020-01-02T15:04:05Z, with offset too) or a duration relative to now with optional leading '-' (e.g. "-2w", "2h45m", "-30m").
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TimeOrDuration {
    /// A fixed instant.
    Absolute(DateTime<Utc>),
    /// An offset from the time the flag is resolved.
    Relative {
        /// True for a leading `-`: the instant lies before "now".
        negative: bool,
        /// How far from "now"; Prometheus syntax has millisecond resolution.
        duration: Duration,
    },
}

impl FromStr for TimeOrDuration {
    type Err = TimeSpecError;

    /// Tries RFC3339 first, then a duration, in the same order as Thanos.
    fn from_str(s: &str) -> Result<TimeOrDuration, TimeSpecError> {
        let time_error = match DateTime::parse_from_rfc3339(s) {
            Ok(t) => return Ok(TimeOrDuration::Absolute(t.with_timezone(&Utc))),
            Err(e) => e,
        };
        let (negative, magnitude) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        match parse_duration(magnitude) {
            Ok(duration) => Ok(TimeOrDuration::Relative { negative, duration }),
            // Report the range problem with the sign the user wrote, rather than the generic message.
            Err(TimeSpecError::DurationOutOfRange { .. }) => {
                Err(TimeSpecError::DurationOutOfRange { input: s.to_owned() })
            }
            Err(_) => Err(TimeSpecError::InvalidTime { input: s.to_owned(), reason: time_reason(s, &time_error) }),
        }
    }
}

/// Explains a failed time flag. Chrono's own message ("premature end of input")
/// only helps when the user evidently meant a timestamp, so it is shown only then.
fn time_reason(input: &str, error: &chrono::ParseError) -> String {
    let looks_like_date =
        input.len() > 4 && input.as_bytes()[..4].iter().all(u8::is_ascii_digit) && input.as_bytes()[4] == b'-';
    if looks_like_date {
        format!("not a valid RFC3339 timestamp such as 2020-01-02T15:04:05Z: {error}")
    } else {
        "expected an RFC3339 timestamp such as 2020-01-02T15:04:05Z or a duration relative to now such as -2w or 2h45m"
            .to_owned()
    }
}

impl TimeOrDuration {
    /// Milliseconds since the Unix epoch, resolved against `now`.
    ///
    /// Like Prometheus's `timestamp.FromTime`, this rounds towards negative
    /// infinity; results beyond the `i64` range saturate instead of wrapping.
    pub fn resolve_millis(&self, now: DateTime<Utc>) -> i64 {
        match *self {
            TimeOrDuration::Absolute(t) => t.timestamp_millis(),
            TimeOrDuration::Relative { negative, duration } => {
                // Work in nanoseconds so a sub-millisecond `now` rounds exactly as Go does.
                let now_ns = i128::from(now.timestamp()) * 1_000_000_000 + i128::from(now.timestamp_subsec_nanos());
                let offset = i128::try_from(duration.as_nanos()).unwrap_or(i128::MAX);
                let t = if negative { now_ns.saturating_sub(offset) } else { now_ns.saturating_add(offset) };
                let ms = t.div_euclid(1_000_000).clamp(i128::from(i64::MIN), i128::from(i64::MAX));
                i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX })
            }
        }
    }
}

impl fmt::Display for TimeOrDuration {
    /// Prints a value that parses back to the same `TimeOrDuration` (to the millisecond).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeOrDuration::Absolute(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            TimeOrDuration::Relative { negative, duration } => {
                write!(f, "{}{}", if *negative { "-" } else { "" }, format_duration(*duration))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const MIN: u64 = 60_000;
    const HOUR: u64 = 60 * MIN;
    const DAY: u64 = 24 * HOUR;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_durations() {
        let cases = [
            ("0", 0),
            ("0s", 0),
            ("5m", 5 * MIN),
            ("2h45m", 2 * HOUR + 45 * MIN),
            ("1w", 7 * DAY),
            ("1y", 365 * DAY),
            ("100ms", 100),
            ("1m5ms", MIN + 5),
            ("1y2w3d4h5m6s7ms", 365 * DAY + 14 * DAY + 3 * DAY + 4 * HOUR + 5 * MIN + 6_000 + 7),
            ("90d", 90 * DAY),
            ("0001h", HOUR),
            ("292y", 292 * 365 * DAY),
            ("106751d", 106_751 * DAY),
            ("9223372036854ms", 9_223_372_036_854),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input), Ok(ms(want)), "{input}");
        }
    }

    #[test]
    fn rejects_bad_durations_naming_them() {
        for input in [
            "", "1", "5", "h", "1x", "1h1h", "1m1h", "5s1m", "1ms1s", "-5m", "+5m", "1.5h", " 1h", "1h ", "1H",
            "1d-1h", "1hh", "١h",
        ] {
            let err = parse_duration(input).expect_err(input);
            assert!(matches!(err, TimeSpecError::InvalidDuration { .. }), "{input}: {err:?}");
            assert!(err.to_string().contains(&format!("{input:?}")), "{err}");
        }
        for input in ["293y", "106752d", "9223372036855s", "99999999999999999999999999999999999999999999y", "292y30w"] {
            let err = parse_duration(input).expect_err(input);
            assert_eq!(err, TimeSpecError::DurationOutOfRange { input: input.to_owned() });
            assert!(err.to_string().contains(input), "{err}");
        }
    }

    #[test]
    fn formats_durations_like_prometheus() {
        for (d, want) in [
            (0, "0s"),
            (90 * DAY, "90d"),
            (14 * DAY, "2w"),
            (365 * DAY, "1y"),
            (2 * HOUR + 45 * MIN, "2h45m"),
            (1_005, "1s5ms"),
        ] {
            assert_eq!(format_duration(ms(d)), want);
            assert_eq!(parse_duration(want), Ok(ms(d)));
        }
    }

    #[test]
    fn parses_absolute_times() {
        let t: TimeOrDuration = "2020-01-02T15:04:05Z".parse().unwrap();
        assert_eq!(t, TimeOrDuration::Absolute(Utc.with_ymd_and_hms(2020, 1, 2, 15, 4, 5).unwrap()));
        let t: TimeOrDuration = "2020-01-02T17:04:05.5+02:00".parse().unwrap();
        assert_eq!(t.resolve_millis(Utc::now()), 1_577_977_445_500);
        // Thanos's defaults for --min-time and --max-time.
        let min: TimeOrDuration = "0000-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(min.resolve_millis(Utc::now()), -62_167_219_200_000);
        let max: TimeOrDuration = "9999-12-31T23:59:59Z".parse().unwrap();
        assert_eq!(max.resolve_millis(Utc::now()), 253_402_300_799_000);
        assert_eq!(max.to_string(), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn parses_relative_times() {
        let rel = |negative, d| TimeOrDuration::Relative { negative, duration: ms(d) };
        assert_eq!("-2w".parse(), Ok(rel(true, 14 * DAY)));
        assert_eq!("2h45m".parse(), Ok(rel(false, 2 * HOUR + 45 * MIN)));
        assert_eq!("-30m".parse(), Ok(rel(true, 30 * MIN)));
        assert_eq!("0s".parse(), Ok(rel(false, 0)));
        assert_eq!("-2w".parse::<TimeOrDuration>().unwrap().to_string(), "-2w");
    }

    #[test]
    fn resolves_against_now() {
        let now = Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).unwrap();
        let now_ms = now.timestamp_millis();
        let resolve = |s: &str| s.parse::<TimeOrDuration>().unwrap().resolve_millis(now);
        assert_eq!(resolve("-2w"), now_ms - 14 * DAY as i64);
        assert_eq!(resolve("2h45m"), now_ms + (2 * HOUR + 45 * MIN) as i64);
        assert_eq!(resolve("-30m"), now_ms - 30 * MIN as i64);
        assert_eq!(resolve("0s"), now_ms);
        assert_eq!(resolve("2020-01-02T15:04:05Z"), 1_577_977_445_000);

        // Sub-millisecond parts of `now` round down, before the epoch too.
        let before_epoch = DateTime::from_timestamp(-1, 999_999_999).unwrap();
        assert_eq!(resolve_with("-1ms", before_epoch), -2);
        assert_eq!(resolve_with("1ms", before_epoch), 0);

        // Offsets past the representable range saturate rather than wrap.
        let huge = TimeOrDuration::Relative { negative: false, duration: Duration::MAX };
        assert_eq!(huge.resolve_millis(now), i64::MAX);
        let huge_neg = TimeOrDuration::Relative { negative: true, duration: Duration::MAX };
        assert_eq!(huge_neg.resolve_millis(now), i64::MIN);
    }

    fn resolve_with(s: &str, now: DateTime<Utc>) -> i64 {
        s.parse::<TimeOrDuration>().unwrap().resolve_millis(now)
    }

    #[test]
    fn rejects_bad_times_naming_them() {
        for input in
            ["", "-", "yesterday", "2020-01-02", "2020-13-01T00:00:00Z", "2020-01-02T15:04:05", "--2w", "+2w", "2w-"]
        {
            let err = input.parse::<TimeOrDuration>().expect_err(input);
            assert!(matches!(err, TimeSpecError::InvalidTime { .. }), "{input}: {err:?}");
            assert!(err.to_string().contains(&format!("{input:?}")), "{err}");
        }
        let err = "2020-13-01T00:00:00Z".parse::<TimeOrDuration>().unwrap_err();
        assert!(err.to_string().contains("not a valid RFC3339 timestamp"), "{err}");
        let err = "yesterday".parse::<TimeOrDuration>().unwrap_err();
        assert!(err.to_string().contains("or a duration relative to now"), "{err}");
        let err = "-300y".parse::<TimeOrDuration>().unwrap_err();
        assert_eq!(err, TimeSpecError::DurationOutOfRange { input: "-300y".to_owned() });
    }
}

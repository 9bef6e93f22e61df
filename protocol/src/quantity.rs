//! Durations and sizes as people type them on a command line: `90s`, `5m`, `2h`, `2w`,
//! `250ms`, `64MiB`, `1.5GB`, `512k`. One parser for every duration and size flag of both
//! binaries, so that each accepts the same spellings and refuses with the same explanation.
//!
//! Units:
//! - durations: `ns`, `us`, `ms`, `s`, `m` (minutes), `h`, `d`, `w`;
//! - sizes: `B`; decimal `kB`/`KB`, `MB`, `GB`, `TB` (powers of 1000); binary `KiB`, `MiB`,
//!   `GiB`, `TiB` (powers of 1024), and the one-letter `k`, `M`, `G`, `T` which are binary
//!   too (as in `ulimit` and container runtimes). Size units ignore case.
//!
//! A number may have a decimal fraction (`1.5h`) as long as the result is whole (nanoseconds,
//! bytes). A plain number without a unit takes the unit its flag documents (e.g. seconds for
//! `--timeout`); a flag without one refuses it.

use std::time::Duration;

/// Why a duration or size was refused. Its text names what was typed and what would work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuantityError {
    /// Nothing was given.
    #[error("empty value: expected {examples}")]
    Empty {
        /// Valid spellings of this kind of quantity.
        examples: &'static str,
    },
    /// The text does not start with a non-negative decimal number.
    #[error("{text:?} is not a number with a unit: expected {examples}")]
    NotANumber {
        /// What was typed.
        text: String,
        /// Valid spellings of this kind of quantity.
        examples: &'static str,
    },
    /// A plain number where this flag needs a unit.
    #[error("{text:?} has no unit: expected {examples}")]
    MissingUnit {
        /// What was typed.
        text: String,
        /// Valid spellings of this kind of quantity.
        examples: &'static str,
    },
    /// The unit is not one this kind of quantity knows.
    #[error("{text:?}: unknown unit {unit:?}; use one of {units}")]
    UnknownUnit {
        /// What was typed.
        text: String,
        /// The unit part of it.
        unit: String,
        /// The units accepted.
        units: &'static str,
    },
    /// The fraction does not come out whole in the smallest unit.
    #[error("{text:?} is not a whole number of {smallest}")]
    NotWhole {
        /// What was typed.
        text: String,
        /// Nanoseconds or bytes.
        smallest: &'static str,
    },
    /// Larger than this program can hold.
    #[error("{text:?} is too large")]
    TooLarge {
        /// What was typed.
        text: String,
    },
}

/// The unit a duration flag gives a plain number, or none to refuse plain numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlainDuration {
    /// A plain number is refused: a unit is required.
    Refused,
    /// A plain number counts milliseconds.
    Millis,
    /// A plain number counts seconds.
    Seconds,
}

/// The unit a size flag gives a plain number, or none to refuse plain numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlainSize {
    /// A plain number is refused: a unit is required.
    Refused,
    /// A plain number counts bytes.
    Bytes,
    /// A plain number counts MiB.
    Mebibytes,
}

const DURATION_EXAMPLES: &str = "e.g. 250ms, 90s, 5m, 2h, 1.5d, 2w";
const DURATION_UNITS: &str = "ns, us, ms, s, m, h, d, w";
const SIZE_EXAMPLES: &str = "e.g. 512k, 64MiB, 1.5GB, 4096B";
const SIZE_UNITS: &str = "B, k/KiB, M/MiB, G/GiB, T/TiB (1024s) or kB, MB, GB, TB (1000s)";

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Parses a duration such as `90s`, `1.5h` or `250ms`; a plain number takes `plain`'s unit.
pub fn parse_duration(text: &str, plain: PlainDuration) -> Result<Duration, QuantityError> {
    let (number, unit) = split(text, DURATION_EXAMPLES)?;
    let nanos_per_unit: u128 = match unit {
        "" => match plain {
            PlainDuration::Refused => {
                return Err(QuantityError::MissingUnit {
                    text: text.trim().to_owned(),
                    examples: DURATION_EXAMPLES,
                });
            }
            PlainDuration::Millis => 1_000_000,
            PlainDuration::Seconds => NANOS_PER_SEC,
        },
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => NANOS_PER_SEC,
        "m" => 60 * NANOS_PER_SEC,
        "h" => 3_600 * NANOS_PER_SEC,
        "d" => 86_400 * NANOS_PER_SEC,
        "w" => 7 * 86_400 * NANOS_PER_SEC,
        other => {
            return Err(QuantityError::UnknownUnit {
                text: text.trim().to_owned(),
                unit: other.to_owned(),
                units: DURATION_UNITS,
            });
        }
    };
    let nanos = scale(text, number, nanos_per_unit, "nanoseconds")?;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).map_err(|_| QuantityError::TooLarge {
        text: text.trim().to_owned(),
    })?;
    // The remainder is below 1e9, so it fits.
    let subsec = (nanos % NANOS_PER_SEC) as u32;
    Ok(Duration::new(secs, subsec))
}

/// Parses a size such as `64MiB`, `1.5GB` or `512k` into bytes; a plain number takes `plain`'s
/// unit.
pub fn parse_size(text: &str, plain: PlainSize) -> Result<u64, QuantityError> {
    let (number, unit) = split(text, SIZE_EXAMPLES)?;
    let bytes_per_unit: u128 = match unit.to_ascii_lowercase().as_str() {
        "" => match plain {
            PlainSize::Refused => {
                return Err(QuantityError::MissingUnit {
                    text: text.trim().to_owned(),
                    examples: SIZE_EXAMPLES,
                });
            }
            PlainSize::Bytes => 1,
            PlainSize::Mebibytes => 1 << 20,
        },
        "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(QuantityError::UnknownUnit {
                text: text.trim().to_owned(),
                unit: unit.to_owned(),
                units: SIZE_UNITS,
            });
        }
    };
    let bytes = scale(text, number, bytes_per_unit, "bytes")?;
    u64::try_from(bytes).map_err(|_| QuantityError::TooLarge {
        text: text.trim().to_owned(),
    })
}

/// The shortest exact spelling of `duration` that [`parse_duration`] reads back.
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    const UNITS: [(&str, u128); 8] = [
        ("w", 7 * 86_400 * NANOS_PER_SEC),
        ("d", 86_400 * NANOS_PER_SEC),
        ("h", 3_600 * NANOS_PER_SEC),
        ("m", 60 * NANOS_PER_SEC),
        ("s", NANOS_PER_SEC),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ];
    if nanos == 0 {
        return String::from("0s");
    }
    let (unit, per) = UNITS
        .into_iter()
        .find(|(_, per)| nanos.is_multiple_of(*per))
        .unwrap_or(("ns", 1));
    format!("{}{unit}", nanos / per)
}

/// The shortest exact binary spelling of `bytes` that [`parse_size`] reads back.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    match UNITS
        .into_iter()
        .find(|(_, per)| bytes != 0 && bytes.is_multiple_of(*per))
    {
        Some((unit, per)) => format!("{}{unit}", bytes / per),
        None => format!("{bytes}B"),
    }
}

/// Splits `text` into its decimal number and its unit (spaces between them allowed).
fn split<'t>(text: &'t str, examples: &'static str) -> Result<(&'t str, &'t str), QuantityError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(QuantityError::Empty { examples });
    }
    let end = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(end);
    let digits = number.replace('.', "");
    if digits.is_empty() || number.matches('.').count() > 1 {
        return Err(QuantityError::NotANumber {
            text: trimmed.to_owned(),
            examples,
        });
    }
    Ok((number, unit.trim_start()))
}

/// `number` (decimal, maybe with a fraction) times `per_unit`, if whole.
fn scale(
    text: &str,
    number: &str,
    per_unit: u128,
    smallest: &'static str,
) -> Result<u128, QuantityError> {
    let too_large = || QuantityError::TooLarge {
        text: text.trim().to_owned(),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    // Zeros after the last significant digit change nothing; dropping them keeps `10^len` small.
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > 30 {
        return Err(QuantityError::NotWhole {
            text: text.trim().to_owned(),
            smallest,
        });
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let mut total = whole.checked_mul(per_unit).ok_or_else(too_large)?;
    if !fraction.is_empty() {
        let denominator = 10u128.pow(fraction.len() as u32);
        let numerator: u128 = fraction.parse().map_err(|_| too_large())?;
        let scaled = numerator.checked_mul(per_unit).ok_or_else(too_large)?;
        if !scaled.is_multiple_of(denominator) {
            return Err(QuantityError::NotWhole {
                text: text.trim().to_owned(),
                smallest,
            });
        }
        total = total
            .checked_add(scaled / denominator)
            .ok_or_else(too_large)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations_in_every_unit() {
        let secs = |s| Duration::from_secs(s);
        for (text, expected) in [
            ("10s", secs(10)),
            ("5m", secs(300)),
            ("2h", secs(7_200)),
            ("2w", secs(14 * 86_400)),
            ("1d", secs(86_400)),
            ("250ms", Duration::from_millis(250)),
            ("1.5h", secs(5_400)),
            (" 90 s ", secs(90)),
            ("0.5s", Duration::from_millis(500)),
            ("3us", Duration::from_micros(3)),
        ] {
            assert_eq!(
                parse_duration(text, PlainDuration::Refused),
                Ok(expected),
                "{text}"
            );
        }
        assert_eq!(parse_duration("90", PlainDuration::Seconds), Ok(secs(90)));
        assert_eq!(
            parse_duration("90", PlainDuration::Millis),
            Ok(Duration::from_millis(90))
        );
    }

    #[test]
    fn sizes_in_every_unit() {
        for (text, expected) in [
            ("64MiB", 64 << 20),
            ("64mib", 64 << 20),
            ("1.5GB", 1_500_000_000),
            ("512k", 512 << 10),
            ("512K", 512 << 10),
            ("2M", 2 << 20),
            ("10kB", 10_000),
            ("4096B", 4096),
            ("0.5KiB", 512),
            ("1T", 1 << 40),
        ] {
            assert_eq!(parse_size(text, PlainSize::Refused), Ok(expected), "{text}");
        }
        assert_eq!(parse_size("4096", PlainSize::Bytes), Ok(4096));
        assert_eq!(parse_size("64", PlainSize::Mebibytes), Ok(64 << 20));
    }

    #[test]
    fn refusals_name_the_problem() {
        let err = |text| parse_duration(text, PlainDuration::Refused).unwrap_err();
        assert!(matches!(err(""), QuantityError::Empty { .. }));
        assert!(matches!(err("s"), QuantityError::NotANumber { .. }));
        assert!(matches!(err("-1s"), QuantityError::NotANumber { .. }));
        assert!(matches!(err("1.2.3s"), QuantityError::NotANumber { .. }));
        assert!(matches!(err("10"), QuantityError::MissingUnit { .. }));
        assert!(matches!(err("0.5ns"), QuantityError::NotWhole { .. }));
        assert!(matches!(
            err("99999999999999999999999w"),
            QuantityError::TooLarge { .. }
        ));
        let unknown = err("10y").to_string();
        assert!(
            unknown.contains("unknown unit \"y\"") && unknown.contains("ms, s, m, h, d, w"),
            "{unknown}"
        );
        let size = parse_size("3 parsecs", PlainSize::Bytes)
            .unwrap_err()
            .to_string();
        assert!(size.contains("unknown unit \"parsecs\""), "{size}");
        assert!(matches!(
            parse_size("0.1k", PlainSize::Bytes),
            Err(QuantityError::NotWhole { .. })
        ));
        assert!(matches!(
            parse_size("20000000T", PlainSize::Bytes),
            Err(QuantityError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_size("12", PlainSize::Refused),
            Err(QuantityError::MissingUnit { .. })
        ));
    }

    proptest! {
        #[test]
        fn durations_round_trip(secs in 0u64..(1 << 40), nanos in 0u32..1_000_000_000) {
            let duration = Duration::new(secs, nanos);
            let text = format_duration(duration);
            prop_assert_eq!(parse_duration(&text, PlainDuration::Refused), Ok(duration), "{}", text);
        }

        #[test]
        fn sizes_round_trip(bytes in any::<u64>()) {
            let text = format_size(bytes);
            prop_assert_eq!(parse_size(&text, PlainSize::Refused), Ok(bytes), "{}", text);
        }

        #[test]
        fn whole_units_round_trip(number in 0u64..1_000_000, unit in prop::sample::select(vec!["k", "MiB", "GB", "B"])) {
            let per: u64 = match unit { "k" => 1024, "MiB" => 1 << 20, "GB" => 1_000_000_000, _ => 1 };
            prop_assert_eq!(parse_size(&format!("{number}{unit}"), PlainSize::Refused), Ok(number * per));
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,24}") {
            let _ = parse_duration(&text, PlainDuration::Seconds);
            let _ = parse_size(&text, PlainSize::Bytes);
        }
    }
}

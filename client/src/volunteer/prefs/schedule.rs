//! When work may run: ranges of local time of day, like BOINC's "compute only between".

use std::fmt;

/// Minutes in a day.
const DAY: u16 = 24 * 60;

/// Why a schedule cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// A range is not `HH:MM-HH:MM`.
    #[error(
        "schedule range {0:?} is not HH:MM-HH:MM (24-hour local time, e.g. \"09:00-17:00\"; \
         several ranges separated by commas)"
    )]
    Range(String),
    /// A range starts and ends at the same minute.
    #[error("schedule range {0:?} is empty; leave the schedule out to run at any time")]
    Empty(String),
}

/// Ranges of local time of day when work may run; empty means at any time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// `(start, end)` in minutes after midnight (end up to 1440); `end < start` crosses
    /// midnight.
    ranges: Vec<(u16, u16)>,
}

impl Schedule {
    /// At any time.
    pub fn always() -> Self {
        Self { ranges: Vec::new() }
    }

    /// Reads "09:00-17:00, 22:00-06:00".
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        let mut ranges = Vec::new();
        for range in text.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let bad = || ScheduleError::Range(range.to_owned());
            let (start, end) = range.split_once('-').ok_or_else(bad)?;
            // 24:00 ends a day; as a start it is the next day's midnight.
            let start = minute_of_day(start.trim()).ok_or_else(bad)? % DAY;
            let end = minute_of_day(end.trim()).ok_or_else(bad)?;
            if start == end {
                return Err(ScheduleError::Empty(range.to_owned()));
            }
            ranges.push((start, end));
        }
        Ok(Self { ranges })
    }

    /// Whether work may run at `minute` after local midnight.
    pub fn allows(&self, minute: u16) -> bool {
        self.ranges.is_empty()
            || self.ranges.iter().any(|&(start, end)| {
                if start < end {
                    (start..end).contains(&minute)
                } else {
                    minute >= start || minute < end
                }
            })
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ranges.is_empty() {
            return f.write_str("any time");
        }
        let ranges: Vec<String> = self
            .ranges
            .iter()
            .map(|&(start, end)| {
                format!(
                    "{:02}:{:02}-{:02}:{:02}",
                    start / 60,
                    start % 60,
                    end / 60,
                    end % 60
                )
            })
            .collect();
        f.write_str(&ranges.join(", "))
    }
}

impl serde::Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// "HH:MM" (24:00 is the end of the day).
fn minute_of_day(text: &str) -> Option<u16> {
    let (hours, minutes) = text.split_once(':')?;
    if hours.is_empty() || hours.len() > 2 || minutes.len() != 2 {
        return None;
    }
    let hours: u16 = hours.parse().ok()?;
    let minutes: u16 = minutes.parse().ok()?;
    let total = hours.checked_mul(60)?.checked_add(minutes)?;
    (minutes < 60 && total <= DAY).then_some(total)
}

/// The local time of day now, in minutes after midnight (the `TZ` environment variable and
/// /etc/localtime decide the zone, as for any C program).
#[cfg(unix)]
pub fn local_minute_of_day() -> u16 {
    // SAFETY: `time(NULL)` only reads the clock.
    let now = unsafe { libc::time(std::ptr::null_mut()) };
    // SAFETY: an all-zero `tm` is a valid value (integers and a null zone name).
    let mut local: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; the reentrant variant keeps no shared state.
    let converted = unsafe { libc::localtime_r(&now, &mut local) };
    if converted.is_null() {
        return utc_minute_of_day();
    }
    u16::try_from(local.tm_hour * 60 + local.tm_min).unwrap_or(0)
}

/// The UTC time of day: local time where the zone is unknown.
#[cfg(not(unix))]
pub fn local_minute_of_day() -> u16 {
    utc_minute_of_day()
}

fn utc_minute_of_day() -> u16 {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    u16::try_from(seconds / 60 % u64::from(DAY)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_within_a_day_and_across_midnight() {
        let schedule = Schedule::parse("09:00-17:00, 22:30-06:00").expect("valid");
        assert!(schedule.allows(9 * 60));
        assert!(schedule.allows(16 * 60 + 59));
        assert!(!schedule.allows(17 * 60));
        assert!(!schedule.allows(8 * 60 + 59));
        assert!(schedule.allows(23 * 60));
        assert!(schedule.allows(0));
        assert!(schedule.allows(5 * 60 + 59));
        assert!(!schedule.allows(6 * 60));
        assert!(!schedule.allows(22 * 60 + 29));
        assert_eq!(schedule.to_string(), "09:00-17:00, 22:30-06:00");
        assert!(Schedule::parse("").expect("empty").allows(3));
        let all_day = Schedule::parse("00:00-24:00").expect("the whole day");
        assert!(all_day.allows(0) && all_day.allows(23 * 60 + 59));
        assert_eq!(all_day.to_string(), "00:00-24:00");
        assert!(
            Schedule::parse("18:00-24:00")
                .expect("to midnight")
                .allows(23 * 60 + 59)
        );
    }

    #[test]
    fn malformed_ranges_are_refused_with_the_format() {
        for bad in [
            "9-17",
            "09:00",
            "25:00-26:00",
            "09:60-10:00",
            "x:00-10:00",
            "09:00-09:00",
        ] {
            let error = Schedule::parse(bad).expect_err(bad);
            assert!(error.to_string().contains(bad), "{error}");
        }
    }

    #[test]
    fn the_local_time_is_a_time_of_day() {
        assert!(local_minute_of_day() < DAY);
    }
}

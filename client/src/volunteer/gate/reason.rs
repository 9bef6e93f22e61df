//! Why work is suspended, as the volunteer reads it and as `status --json` gives it.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Why work is suspended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum Reason {
    /// `musketeer pause`, until a time (seconds since the Unix epoch) or until resumed.
    UserPaused {
        /// When it ends by itself.
        until_unix_s: Option<u64>,
    },
    /// The machine runs on battery and the preferences say not to.
    OnBattery,
    /// The local time is outside the schedule.
    OutsideSchedule {
        /// The schedule.
        schedule: String,
    },
    /// The machine's user gave input within the last `idle_minutes`.
    UserActive {
        /// Minutes without input needed.
        idle_minutes: u32,
    },
    /// The data directory is larger than allowed: no work is fetched (running tasks go on).
    DiskFull {
        /// Its size, in MiB.
        used_mib: u64,
        /// The limit, in MiB.
        limit_mib: u64,
    },
}

impl Reason {
    /// Whether running tasks pause for it (a full disk only holds back new work).
    pub(super) fn pauses_tasks(&self) -> bool {
        !matches!(self, Reason::DiskFull { .. })
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::UserPaused { until_unix_s: None } => {
                f.write_str("paused by the volunteer until `musketeer resume`")
            }
            Reason::UserPaused {
                until_unix_s: Some(until),
            } => {
                let left = until.saturating_sub(unix_now());
                write!(f, "paused by the volunteer for {left} s more")
            }
            Reason::OnBattery => f.write_str(
                "on battery (set run_on_battery = true in preferences.toml to compute anyway)",
            ),
            Reason::OutsideSchedule { schedule } => {
                write!(f, "outside the schedule ({schedule}, local time)")
            }
            Reason::UserActive { idle_minutes } => write!(
                f,
                "the computer is in use (work runs after {idle_minutes} min without input)"
            ),
            Reason::DiskFull {
                used_mib,
                limit_mib,
            } => write!(
                f,
                "the data directory holds {used_mib} MiB, more than max_disk_mib = {limit_mib}; \
                 no new work until it shrinks (running tasks go on)"
            ),
        }
    }
}

/// Seconds since the Unix epoch.
pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

//! The volunteer's preferences: how much of the machine musketeer may use, and when.
//!
//! They live in `preferences.toml` in the data directory (strict: an unknown key is refused,
//! so a misspelt preference is said rather than ignored) and may be overridden by `join`
//! flags. The defaults are safe on a laptop: no work on battery. The file is read again when
//! it changes, so a volunteer can edit it without restarting the client.

mod disk;
mod idle;
mod power;
mod schedule;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use disk::bytes_used;
pub use idle::{IdleSource, Logind};
pub use power::on_battery;
pub use schedule::{Schedule, ScheduleError, local_minute_of_day};

/// The name of the preferences file in the data directory.
pub const FILE_NAME: &str = "preferences.toml";
/// Where Linux lists power supplies.
pub const DEFAULT_POWER_SUPPLY_DIR: &str = "/sys/class/power_supply";

/// Why the preferences cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrefsError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or holds an unknown key or a wrong type.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said.
        message: String,
    },
    /// A size limit is zero.
    #[error("{0} must be at least 1 (leave it out for no limit)")]
    Zero(&'static str),
    /// `cpu_percent` is out of range.
    #[error("cpu_percent must be between 1 and 100, not {0}")]
    CpuPercent(u8),
    /// The schedule cannot be read.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
}

/// The preferences as written in `preferences.toml`; every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefsFile {
    /// Share of each second tasks may compute, 1 to 100.
    pub cpu_percent: Option<u8>,
    /// Whether to compute while the machine runs on battery.
    pub run_on_battery: Option<bool>,
    /// Local times when work may run, e.g. "09:00-17:00, 22:00-06:00".
    pub schedule: Option<String>,
    /// Run only after this many minutes without user input (0: whenever).
    pub idle_minutes: Option<u32>,
    /// Memory all slots' tasks may have together, in MiB (read at start-up).
    pub max_memory_mib: Option<u64>,
    /// Size the data directory may reach before no more work is fetched, in MiB.
    pub max_disk_mib: Option<u64>,
    /// Bandwidth all tasks' HTTP reads may use together, in KiB/s (read at start-up).
    pub max_http_kib_per_s: Option<u64>,
}

impl PrefsFile {
    /// Reads `dir/preferences.toml`; a missing file holds no preferences.
    pub fn load(dir: &Path) -> Result<Self, PrefsError> {
        let path = dir.join(FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::default());
            }
            Err(source) => return Err(PrefsError::Read { path, source }),
        };
        toml::from_str(&text).map_err(|error| PrefsError::Syntax {
            path,
            message: error.message().to_owned(),
        })
    }

    /// These preferences, each overridden by `over`'s where it has one.
    pub fn overridden_by(&self, over: &PrefsFile) -> PrefsFile {
        PrefsFile {
            cpu_percent: over.cpu_percent.or(self.cpu_percent),
            run_on_battery: over.run_on_battery.or(self.run_on_battery),
            schedule: over.schedule.clone().or_else(|| self.schedule.clone()),
            idle_minutes: over.idle_minutes.or(self.idle_minutes),
            max_memory_mib: over.max_memory_mib.or(self.max_memory_mib),
            max_disk_mib: over.max_disk_mib.or(self.max_disk_mib),
            max_http_kib_per_s: over.max_http_kib_per_s.or(self.max_http_kib_per_s),
        }
    }

    /// The preferences in effect: the defaults where a key is missing, every value checked.
    pub fn resolve(&self) -> Result<Preferences, PrefsError> {
        let defaults = Preferences::default();
        let cpu_percent = self.cpu_percent.unwrap_or(defaults.cpu_percent);
        if !(1..=100).contains(&cpu_percent) {
            return Err(PrefsError::CpuPercent(cpu_percent));
        }
        Ok(Preferences {
            cpu_percent,
            run_on_battery: self.run_on_battery.unwrap_or(defaults.run_on_battery),
            schedule: match &self.schedule {
                Some(text) => Schedule::parse(text)?,
                None => defaults.schedule,
            },
            idle_minutes: self.idle_minutes.unwrap_or(defaults.idle_minutes),
            max_memory_mib: positive("max_memory_mib", self.max_memory_mib)?,
            max_disk_mib: positive("max_disk_mib", self.max_disk_mib)?,
            max_http_kib_per_s: positive("max_http_kib_per_s", self.max_http_kib_per_s)?,
        })
    }
}

/// The preferences in effect.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Preferences {
    /// Share of each second tasks may compute, 1 to 100.
    pub cpu_percent: u8,
    /// Whether to compute while the machine runs on battery.
    pub run_on_battery: bool,
    /// When work may run.
    pub schedule: Schedule,
    /// Minutes without user input before work runs (0: whenever).
    pub idle_minutes: u32,
    /// Memory all slots' tasks may have together, in MiB.
    pub max_memory_mib: Option<u64>,
    /// Size of the data directory beyond which no work is fetched, in MiB.
    pub max_disk_mib: Option<u64>,
    /// Bandwidth of all tasks' HTTP reads together, in KiB/s.
    pub max_http_kib_per_s: Option<u64>,
}

/// `value`, refused if it is zero.
fn positive(name: &'static str, value: Option<u64>) -> Result<Option<u64>, PrefsError> {
    match value {
        Some(0) => Err(PrefsError::Zero(name)),
        other => Ok(other),
    }
}

impl Default for Preferences {
    /// Safe on a laptop: all of the CPU (at the lowest priority, see `--nice`), never on
    /// battery, at any time, in use or not, memory as `--max-task-memory` says.
    fn default() -> Self {
        Self {
            cpu_percent: 100,
            run_on_battery: false,
            schedule: Schedule::always(),
            idle_minutes: 0,
            max_memory_mib: None,
            max_disk_mib: None,
            max_http_kib_per_s: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) {
        std::fs::write(dir.join(FILE_NAME), text).expect("write preferences");
    }

    #[test]
    fn a_missing_file_gives_the_laptop_defaults() {
        let dir = tempfile::tempdir().expect("temp dir");
        let prefs = PrefsFile::load(dir.path()).expect("no file is fine");
        let resolved = prefs.resolve().expect("defaults");
        assert_eq!(resolved, Preferences::default());
        assert!(!resolved.run_on_battery);
    }

    #[test]
    fn an_unknown_or_misspelt_key_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        write(dir.path(), "cpu_precent = 50\n");
        let error = PrefsFile::load(dir.path()).expect_err("a misspelt key");
        assert!(error.to_string().contains("cpu_precent"), "{error}");
        write(dir.path(), "cpu_percent = \"half\"\n");
        assert!(PrefsFile::load(dir.path()).is_err());
    }

    #[test]
    fn flags_override_the_file_and_values_are_checked() {
        let dir = tempfile::tempdir().expect("temp dir");
        write(
            dir.path(),
            "cpu_percent = 40\nrun_on_battery = true\nschedule = \"09:00-17:00\"\n",
        );
        let file = PrefsFile::load(dir.path()).expect("valid");
        let flags = PrefsFile {
            cpu_percent: Some(70),
            ..PrefsFile::default()
        };
        let resolved = file.overridden_by(&flags).resolve().expect("valid");
        assert_eq!(resolved.cpu_percent, 70);
        assert!(resolved.run_on_battery);
        assert!(resolved.schedule.allows(10 * 60));
        assert!(!resolved.schedule.allows(18 * 60));

        let zero = PrefsFile {
            cpu_percent: Some(0),
            ..PrefsFile::default()
        };
        assert!(matches!(zero.resolve(), Err(PrefsError::CpuPercent(0))));
        let bad = PrefsFile {
            schedule: Some("9-5".into()),
            ..PrefsFile::default()
        };
        assert!(matches!(bad.resolve(), Err(PrefsError::Schedule(_))));
    }
}

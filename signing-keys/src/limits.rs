//! Resource limits a manifest sets for each run of its module.

use serde::{Deserialize, Serialize};

use crate::error::ManifestError;

const MIB: u64 = 1024 * 1024;

/// Per-run resource limits. Every limit must be at least 1 and at most its `MAX_*` constant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Deterministic work budget (wasmtime fuel units).
    pub fuel: u64,
    /// Maximum linear memory, in bytes.
    pub memory_bytes: u64,
    /// Wall-clock deadline, in milliseconds.
    pub wall_time_ms: u64,
    /// Maximum size of the run's output, in bytes.
    pub output_bytes: u64,
}

impl Limits {
    /// Largest accepted `fuel`; far above a day of work, low enough that hosts can add to it
    /// without overflow.
    pub const MAX_FUEL: u64 = 1_000_000_000_000_000;
    /// Largest accepted `memory_bytes` (4 GiB, the 32-bit wasm address space).
    pub const MAX_MEMORY_BYTES: u64 = 4096 * MIB;
    /// Largest accepted `wall_time_ms` (24 hours).
    pub const MAX_WALL_TIME_MS: u64 = 24 * 60 * 60 * 1000;
    /// Largest accepted `output_bytes` (64 MiB).
    pub const MAX_OUTPUT_BYTES: u64 = 64 * MIB;

    /// Checks that every limit is non-zero and within its maximum.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let checks = [
            ("fuel", self.fuel, Limits::MAX_FUEL),
            ("memory_bytes", self.memory_bytes, Limits::MAX_MEMORY_BYTES),
            ("wall_time_ms", self.wall_time_ms, Limits::MAX_WALL_TIME_MS),
            ("output_bytes", self.output_bytes, Limits::MAX_OUTPUT_BYTES),
        ];
        for (name, value, max) in checks {
            if value == 0 || value > max {
                return Err(ManifestError::InvalidLimit { name, value, max });
            }
        }
        Ok(())
    }
}

impl Default for Limits {
    /// 10^10 fuel, 256 MiB memory, 60 s wall time, 1 MiB output.
    fn default() -> Limits {
        Limits {
            fuel: 10_000_000_000,
            memory_bytes: 256 * MIB,
            wall_time_ms: 60_000,
            output_bytes: MIB,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let limits = Limits::default();
        assert_eq!(limits.fuel, 10_000_000_000);
        assert_eq!(limits.memory_bytes, 268_435_456);
        assert_eq!(limits.wall_time_ms, 60_000);
        assert_eq!(limits.output_bytes, 1_048_576);
        limits.validate().unwrap();
    }

    #[test]
    fn maxima_are_accepted_and_zero_or_above_refused() {
        let max = Limits {
            fuel: Limits::MAX_FUEL,
            memory_bytes: Limits::MAX_MEMORY_BYTES,
            wall_time_ms: Limits::MAX_WALL_TIME_MS,
            output_bytes: Limits::MAX_OUTPUT_BYTES,
        };
        max.validate().unwrap();
        type Setter = fn(&mut Limits, u64);
        let setters: [(&str, Setter); 4] = [
            ("fuel", |l, v| l.fuel = v),
            ("memory_bytes", |l, v| l.memory_bytes = v),
            ("wall_time_ms", |l, v| l.wall_time_ms = v),
            ("output_bytes", |l, v| l.output_bytes = v),
        ];
        for (field, set) in setters {
            for bad in [0, u64::MAX] {
                let mut limits = Limits::default();
                set(&mut limits, bad);
                let err = limits.validate().unwrap_err();
                assert!(
                    matches!(err, ManifestError::InvalidLimit { name, value, .. } if name == field && value == bad),
                    "{field}={bad}: {err}"
                );
            }
        }
        let mut over = max.clone();
        over.memory_bytes += 1;
        assert!(over.validate().is_err());
        let mut over = max;
        over.output_bytes += 1;
        assert!(over.validate().is_err());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let json = r#"{"fuel":1,"memory_bytes":1,"wall_time_ms":1,"output_bytes":1,"cpu":1}"#;
        assert!(serde_json::from_str::<Limits>(json).is_err());
    }
}

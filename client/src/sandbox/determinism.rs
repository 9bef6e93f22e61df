//! WASI clocks and randomness that depend only on the run's id, so that replicas of one work
//! unit see the same values on every host and architecture.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// Wall-clock time seen by every task: 2016-05-12T00:00:00Z, the day of the original crawl.
/// Tasks must not depend on real time (replicas would disagree); inputs carry dates.
pub const FIXED_WALL_CLOCK: Duration = Duration::from_secs(1_463_011_200);

/// A wall clock that never moves.
pub struct FixedWallClock;

impl HostWallClock for FixedWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        FIXED_WALL_CLOCK
    }
}

/// A monotonic clock that advances one microsecond per reading: strictly increasing, as
/// programs expect, yet identical for identical executions.
#[derive(Default)]
pub struct VirtualMonotonicClock {
    nanos: AtomicU64,
}

impl HostMonotonicClock for VirtualMonotonicClock {
    fn resolution(&self) -> u64 {
        1_000
    }

    fn now(&self) -> u64 {
        self.nanos.fetch_add(1_000, Ordering::Relaxed) + 1_000
    }
}

/// `len` pseudo-random bytes derived from the run id with SHA-256 in counter mode.
pub fn seeded_bytes(run_id: &str, purpose: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut counter: u64 = 0;
    while out.len() < len {
        let mut hasher = Sha256::new();
        hasher.update(b"musketeer-random-v1\0");
        hasher.update(purpose.as_bytes());
        hasher.update([0]);
        hasher.update(run_id.as_bytes());
        hasher.update(counter.to_le_bytes());
        out.extend_from_slice(&hasher.finalize());
        counter += 1;
    }
    out.truncate(len);
    out
}

/// The `insecure-seed` value for a run.
pub fn seed_u128(run_id: &str) -> u128 {
    let bytes = seeded_bytes(run_id, "insecure-seed", 16);
    let mut array = [0u8; 16];
    array.copy_from_slice(&bytes);
    u128::from_le_bytes(array)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_bytes_depend_on_run_id_only() {
        assert_eq!(seeded_bytes("a", "r", 100), seeded_bytes("a", "r", 100));
        assert_ne!(seeded_bytes("a", "r", 100), seeded_bytes("b", "r", 100));
        assert_ne!(seeded_bytes("a", "r", 32), seeded_bytes("a", "s", 32));
    }

    #[test]
    fn monotonic_clock_increases() {
        let clock = VirtualMonotonicClock::default();
        let first = clock.now();
        assert!(clock.now() > first);
    }
}

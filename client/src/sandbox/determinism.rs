//! WASI clocks and randomness that depend only on the run's id, so that replicas of one work
//! unit see the same values on every host and architecture.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand_core_010::TryRng;
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

/// An endless stream of pseudo-random bytes derived from the run id: SHA-256 in counter mode,
/// computed one block at a time as the task asks, so a run that never reads randomness pays
/// nothing for it.
pub struct SeededRng {
    key: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl SeededRng {
    /// The stream for `purpose` (e.g. `secure`, `insecure`) of run `run_id`.
    pub fn new(run_id: &str, purpose: &str) -> Self {
        let mut key = [0u8; 32];
        key.copy_from_slice(&seeded_bytes(run_id, purpose, 32));
        Self {
            key,
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }

    fn next_byte(&mut self) -> u8 {
        if self.used == self.block.len() {
            let mut hasher = Sha256::new();
            hasher.update(self.key);
            hasher.update(self.counter.to_le_bytes());
            self.block.copy_from_slice(&hasher.finalize());
            self.counter += 1;
            self.used = 0;
        }
        self.used += 1;
        self.block[self.used - 1]
    }
}

impl TryRng for SeededRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut bytes = [0u8; 4];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut bytes = [0u8; 8];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Infallible> {
        for byte in dest {
            *byte = self.next_byte();
        }
        Ok(())
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
    fn seeded_rng_is_a_stream_fixed_by_run_id_and_purpose() {
        let draw = |run: &str, purpose: &str| {
            let mut rng = SeededRng::new(run, purpose);
            let mut bytes = [0u8; 100];
            rng.try_fill_bytes(&mut bytes).unwrap();
            bytes
        };
        assert_eq!(draw("a", "r"), draw("a", "r"));
        assert_ne!(draw("a", "r"), draw("b", "r"));
        assert_ne!(draw("a", "r"), draw("a", "s"));
        // The stream does not cycle: consecutive blocks differ.
        let bytes = draw("a", "r");
        assert_ne!(bytes[..32], bytes[32..64]);
    }

    #[test]
    fn monotonic_clock_increases() {
        let clock = VirtualMonotonicClock::default();
        let first = clock.now();
        assert!(clock.now() > first);
    }
}

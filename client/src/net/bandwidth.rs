//! The volunteer's cap on the bandwidth of tasks' HTTP reads: one token bucket shared by every
//! task of the client, refilled at the cap and holding at most one second of it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// A shared bandwidth cap; clones share the bucket.
#[derive(Debug, Clone)]
pub struct Bandwidth {
    bytes_per_second: u64,
    bucket: Arc<Mutex<Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    /// Bytes that may pass now; negative when readers owe (they are waiting it off).
    tokens: f64,
    updated: Instant,
}

impl Bandwidth {
    /// A cap of `bytes_per_second` (at least 1), starting with a full second's worth.
    pub fn new(bytes_per_second: u64) -> Self {
        let bytes_per_second = bytes_per_second.max(1);
        Self {
            bytes_per_second,
            bucket: Arc::new(Mutex::new(Bucket {
                tokens: bytes_per_second as f64,
                updated: Instant::now(),
            })),
        }
    }

    /// The cap.
    pub fn bytes_per_second(&self) -> u64 {
        self.bytes_per_second
    }

    /// Accounts for `bytes` just read and waits until the cap allows them.
    pub async fn take(&self, bytes: usize) {
        let rate = self.bytes_per_second as f64;
        let wait = {
            let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let refill = now.duration_since(bucket.updated).as_secs_f64() * rate;
            bucket.tokens = (bucket.tokens + refill).min(rate) - bytes as f64;
            bucket.updated = now;
            if bucket.tokens < 0.0 {
                Duration::from_secs_f64(-bucket.tokens / rate)
            } else {
                Duration::ZERO
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_beyond_the_burst_wait_at_the_cap() {
        let cap = Bandwidth::new(200_000);
        let started = std::time::Instant::now();
        // The first second's worth passes at once.
        cap.take(200_000).await;
        assert!(started.elapsed() < Duration::from_millis(500));
        // Then 100 KB more take about half a second, whichever clone reads them.
        let other = cap.clone();
        other.take(50_000).await;
        cap.take(50_000).await;
        assert!(
            started.elapsed() >= Duration::from_millis(450),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(other.bytes_per_second(), 200_000);
    }
}

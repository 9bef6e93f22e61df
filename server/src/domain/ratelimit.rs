//! Per-address token buckets for open host registration.

use std::collections::HashMap;
use std::net::IpAddr;

/// Allows `per_minute` events per address, in bursts of up to `per_minute`.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: HashMap<Option<IpAddr>, (f64, u64)>,
}

const MAX_TRACKED: usize = 100_000;

impl RateLimiter {
    /// A limiter allowing `per_minute` events per address per minute.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: HashMap::new(),
        }
    }

    /// Take one event for `addr` at `now_ms`; false if the address is over its limit.
    pub fn allow(&mut self, addr: Option<IpAddr>, now_ms: u64) -> bool {
        let capacity = f64::from(self.per_minute);
        let refill = capacity / 60_000.0;
        if self.buckets.len() >= MAX_TRACKED {
            // Full buckets carry no information; forget them.
            self.buckets.retain(|_, (tokens, last)| {
                *tokens + (now_ms.saturating_sub(*last)) as f64 * refill < capacity
            });
        }
        let (tokens, last) = self.buckets.entry(addr).or_insert((capacity, now_ms));
        *tokens = (*tokens + now_ms.saturating_sub(*last) as f64 * refill).min(capacity);
        *last = now_ms;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills_per_address() {
        let a = Some("10.0.0.1".parse().unwrap());
        let b = Some("10.0.0.2".parse().unwrap());
        let mut limiter = RateLimiter::new(3);
        assert!((0..3).all(|_| limiter.allow(a, 0)));
        assert!(!limiter.allow(a, 0));
        assert!(limiter.allow(b, 0), "other addresses are not affected");
        assert!(!limiter.allow(a, 19_000));
        assert!(limiter.allow(a, 20_000), "one event refills every 20 s");
    }
}

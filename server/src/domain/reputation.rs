//! What the server believes about each host, from what its results showed: BOINC's adaptive
//! replication and error throttling, with quarantine for hosts caught with a wrong result.
//! Pure: no I/O, no clock (callers pass the time).
//!
//! - A host earns trust by consecutive validated results; a trusted host may run units of a
//!   replicated batch alone, except for random spot checks (decided by a hash of the unit id,
//!   so runs are reproducible).
//! - A result that disagrees with the canonical one quarantines its host: no more work, its
//!   results re-verified (see [`crate::domain::world::World::quarantine`]).
//! - A host's daily quota (BOINC's `max_results_day`) halves with each error or invalid result
//!   and doubles with each valid one, so a host that floods errors drains little work. It bounds
//!   the results a host fetched today that have not validated: each validated result gives its
//!   fetch back, so a fast honest volunteer is never stopped in the middle of a large batch.

use musketeer_protocol::UnitId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const DAY_MS: u64 = 24 * 60 * 60 * 1000;
/// Errors in a row that make a host a suspect (see [`Standing::suspect`]); honest hosts rarely
/// report this many without a valid result between them.
pub const SUSPECT_AFTER_ERRORS: u32 = 3;

/// Tunables of trust and throttling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Consecutive validated results after which a host may run units alone.
    pub trust_after: u64,
    /// Of the units a trusted host would run alone, how many per thousand are still
    /// replicated as spot checks.
    pub spot_checks_per_mille: u32,
    /// The largest daily quota of results a host may fetch.
    pub max_daily_quota: u32,
    /// The daily quota of a new host; it halves with each error and doubles with each valid
    /// result. BOINC starts hosts at the maximum too: a flooder's quota collapses after a few
    /// errors anyway, while a low start would throttle honest hosts whose early results wait
    /// for a quorum.
    pub new_host_quota: u32,
    /// Let trusted hosts run units alone at all.
    pub adaptive_replication: bool,
    /// Most of one batch's replicas, in percent, that one host may hold or have returned
    /// (100: no bound), so one fast party cannot take every copy of a batch.
    pub max_batch_share_percent: u32,
    /// Replicas of a batch any host may take whatever the share, so small batches finish.
    pub batch_share_floor: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            trust_after: 10,
            spot_checks_per_mille: 100,
            max_daily_quota: 10_000,
            new_host_quota: 10_000,
            adaptive_replication: true,
            max_batch_share_percent: 100,
            batch_share_floor: 16,
        }
    }
}

/// Why a host gets no more work until an admin lifts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantine {
    /// For the host's owner and the admin.
    pub reason: String,
    /// The unit whose canonical result the host's disagreed with.
    pub unit: UnitId,
    /// When.
    pub since_ms: u64,
}

/// A host's standing, stored with its row (every field defaults so older rows load).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Standing {
    /// Validated results since the last error or invalid result.
    pub consecutive_valid: u64,
    /// Errors reported since the last validated result.
    pub errors_since_valid: u32,
    /// Results the host may fetch per day (0: not yet set, i.e. the policy's new-host quota).
    pub daily_quota: u32,
    /// The day (since the epoch) `fetched_today` counts.
    pub quota_day: u64,
    /// Replicas fetched on `quota_day`, less those of its results validated since.
    pub fetched_today: u32,
    /// Caught with a wrong result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<Quarantine>,
    /// Banned by an admin, with the reason given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ban: Option<String>,
}

/// Why a host gets no work now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// An admin banned it.
    Banned(String),
    /// It returned a wrong result.
    Quarantined(String),
    /// One of its results disagrees with another host's and waits for more hosts to settle it.
    Disputed {
        /// The unit in dispute.
        unit: UnitId,
    },
    /// It used up today's quota.
    OverQuota {
        /// Today's quota.
        quota: u32,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Banned(reason) => write!(f, "banned by the project: {reason}"),
            Refusal::Quarantined(reason) => write!(f, "quarantined: {reason}"),
            Refusal::Disputed { unit } => write!(
                f,
                "your result for unit {} disagrees with another host's; no new work (other than \
                 settling disputes) until more hosts settle it",
                unit.0
            ),
            Refusal::OverQuota { quota } => write!(
                f,
                "daily quota of {quota} results used (it shrinks with errors and invalid \
                 results and grows back with valid ones)"
            ),
        }
    }
}

impl Standing {
    /// Today's quota under `policy`.
    pub fn quota(&self, policy: &Policy) -> u32 {
        if self.daily_quota == 0 {
            policy.new_host_quota.min(policy.max_daily_quota)
        } else {
            self.daily_quota.min(policy.max_daily_quota)
        }
    }

    /// How many replicas the host may fetch now, or why none.
    pub fn allowance(&self, policy: &Policy, now_ms: u64) -> Result<u32, Refusal> {
        if let Some(reason) = &self.ban {
            return Err(Refusal::Banned(reason.clone()));
        }
        if let Some(q) = &self.quarantine {
            return Err(Refusal::Quarantined(q.reason.clone()));
        }
        let used = if self.quota_day == now_ms / DAY_MS {
            self.fetched_today
        } else {
            0
        };
        let quota = self.quota(policy);
        match quota.saturating_sub(used) {
            0 => Err(Refusal::OverQuota { quota }),
            left => Ok(left),
        }
    }

    /// Count `n` replicas fetched at `now_ms`.
    pub fn fetched(&mut self, n: u32, now_ms: u64) {
        let day = now_ms / DAY_MS;
        if self.quota_day != day {
            self.quota_day = day;
            self.fetched_today = 0;
        }
        self.fetched_today = self.fetched_today.saturating_add(n);
    }

    /// Whether the host's recent reports are all errors ([`SUSPECT_AFTER_ERRORS`] or more since
    /// its last valid result): it may not confirm another host's error or share a unit with
    /// another suspect, so that error flooders cannot agree and fail good units. Missed
    /// deadlines do not count (busy or restarted honest hosts miss them).
    pub fn suspect(&self) -> bool {
        self.errors_since_valid >= SUSPECT_AFTER_ERRORS
    }

    /// Whether the host may run units alone.
    pub fn trusted(&self, policy: &Policy) -> bool {
        policy.adaptive_replication
            && self.ban.is_none()
            && self.quarantine.is_none()
            && self.consecutive_valid >= policy.trust_after
    }

    /// A result of the host was validated: its quota doubles and the fetch it used is given
    /// back, since the quota is there to bound unproven work, not proven throughput.
    pub fn valid(&mut self, policy: &Policy) {
        self.fetched_today = self.fetched_today.saturating_sub(1);
        self.consecutive_valid += 1;
        self.errors_since_valid = 0;
        self.daily_quota = self
            .quota(policy)
            .saturating_mul(2)
            .min(policy.max_daily_quota);
    }

    /// The host missed a deadline: it loses its streak but not its quota, since honest hosts
    /// miss deadlines when busy or restarted and their leases are reissued anyway.
    pub fn missed_deadline(&mut self) {
        self.consecutive_valid = 0;
    }

    /// The host reported an error.
    pub fn error(&mut self, policy: &Policy) {
        self.consecutive_valid = 0;
        self.errors_since_valid = self.errors_since_valid.saturating_add(1);
        self.daily_quota = (self.quota(policy) / 2).max(1);
    }

    /// A result of the host disagreed with the canonical one of `unit`.
    pub fn invalid(&mut self, policy: &Policy, unit: UnitId, now_ms: u64) {
        self.error(policy);
        if self.quarantine.is_none() {
            self.quarantine = Some(Quarantine {
                reason: format!(
                    "its result for unit {} disagreed with the canonical result",
                    unit.0
                ),
                unit,
                since_ms: now_ms,
            });
        }
    }
}

/// Whether a unit a trusted host would run alone is replicated anyway as a spot check: a
/// deterministic draw from the unit id, so that the same world replays the same way.
pub fn spot_check(policy: &Policy, unit: UnitId) -> bool {
    let digest = Sha256::digest(unit.0.to_le_bytes());
    let draw = u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]) % 1000;
    draw < policy.spot_checks_per_mille
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_halves_with_errors_and_doubles_with_valid_results() {
        let policy = Policy {
            max_daily_quota: 64,
            ..Policy::default()
        };
        let mut standing = Standing::default();
        assert_eq!(standing.allowance(&policy, 0), Ok(64));
        for _ in 0..3 {
            standing.error(&policy);
        }
        assert_eq!(standing.quota(&policy), 8);
        standing.fetched(8, 5);
        assert_eq!(
            standing.allowance(&policy, 10),
            Err(Refusal::OverQuota { quota: 8 })
        );
        // A new day gives the quota back.
        assert_eq!(standing.allowance(&policy, DAY_MS + 1), Ok(8));
        standing.valid(&policy);
        assert_eq!(standing.quota(&policy), 16);
        for _ in 0..10 {
            standing.error(&policy);
        }
        assert_eq!(standing.quota(&policy), 1, "never below one a day");
    }

    #[test]
    fn validated_results_give_their_fetches_back() {
        let policy = Policy {
            max_daily_quota: 4,
            ..Policy::default()
        };
        let mut standing = Standing::default();
        standing.fetched(4, 5);
        assert_eq!(
            standing.allowance(&policy, 6),
            Err(Refusal::OverQuota { quota: 4 })
        );
        standing.valid(&policy);
        standing.valid(&policy);
        assert_eq!(standing.allowance(&policy, 7), Ok(2));
        // An error keeps its fetch counted and halves the quota.
        standing.fetched(2, 8);
        standing.error(&policy);
        assert_eq!(
            standing.allowance(&policy, 9),
            Err(Refusal::OverQuota { quota: 2 })
        );
    }

    #[test]
    fn trust_needs_consecutive_valid_results_and_no_quarantine() {
        let policy = Policy::default();
        let mut standing = Standing::default();
        for _ in 0..policy.trust_after - 1 {
            standing.valid(&policy);
        }
        assert!(!standing.trusted(&policy));
        standing.valid(&policy);
        assert!(standing.trusted(&policy));
        standing.error(&policy);
        assert!(!standing.trusted(&policy), "an error resets the streak");
        for _ in 0..policy.trust_after {
            standing.valid(&policy);
        }
        standing.invalid(&policy, UnitId(7), 3);
        assert!(!standing.trusted(&policy));
        assert!(matches!(
            standing.allowance(&policy, 4),
            Err(Refusal::Quarantined(reason)) if reason.contains("unit 7")
        ));
    }

    #[test]
    fn spot_checks_come_at_about_the_policy_rate() {
        let policy = Policy::default();
        let checks = (0..10_000)
            .filter(|&u| spot_check(&policy, UnitId(u)))
            .count();
        assert!((800..1200).contains(&checks), "{checks} spot checks");
    }
}

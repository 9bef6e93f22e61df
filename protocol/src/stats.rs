use serde::{Deserialize, Serialize};

use crate::UnitCounts;

/// `GET /api/v1/stats` answer: server-wide counters for the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stats {
    /// When these counters were read.
    pub now_ms: u64,
    /// Hosts ever registered.
    pub hosts_known: u64,
    /// Hosts that made contact recently.
    pub hosts_online: u64,
    /// Slots of online hosts.
    pub slots_total: u64,
    /// Replicas running now.
    pub slots_busy: u64,
    /// Replicas waiting to be sent.
    pub queue_depth: u64,
    /// Work units by state.
    pub units: UnitCounts,
    /// Results by validation outcome.
    pub results: ResultCounts,
    /// Batches not yet finished or cancelled.
    pub batches_active: u64,
    /// Units finished (done) per minute over the last hour, oldest first (60 entries).
    pub done_per_minute: Vec<u64>,
}

/// Results (replicas) by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResultCounts {
    /// Agreed with the canonical result.
    pub valid: u64,
    /// Disagreed with the canonical result.
    pub invalid: u64,
    /// Reported an error.
    pub errors: u64,
    /// Missed their deadline.
    pub timed_out: u64,
}

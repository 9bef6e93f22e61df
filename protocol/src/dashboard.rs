use serde::{Deserialize, Serialize};

use crate::{BatchId, HostId, HostSummary, ResultId, UnitId, UnitState};

/// Where one replica of a unit is, as the dashboard shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReplicaOutcome {
    /// Waiting for a host.
    Unsent,
    /// Leased to a host, not reported yet.
    Running,
    /// Returned output not compared yet.
    Pending,
    /// Output agreed with the canonical one.
    Valid,
    /// Output disagreed with the canonical one.
    Invalid,
    /// The host reported an error.
    Error,
    /// The deadline passed without a report.
    TimedOut,
    /// The unit ended before this replica was sent.
    NotNeeded,
}

/// One replica of a unit with its host and outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplicaView {
    /// The replica.
    pub result_id: ResultId,
    /// The batch of its unit.
    pub batch_id: BatchId,
    /// The host it is or was leased to.
    pub host: Option<HostId>,
    /// Its outcome so far.
    pub outcome: ReplicaOutcome,
    /// When it was sent (0: never).
    pub sent_ms: u64,
    /// Its deadline (0: never sent).
    pub deadline_ms: u64,
    /// Fuel consumed, when it returned output.
    pub fuel: Option<u64>,
    /// Wall-clock milliseconds, when it returned output.
    pub wall_ms: Option<u64>,
    /// `kind: message` of an error result.
    pub error: Option<String>,
    /// The host's last log lines, if it sent any.
    pub stderr_tail: Option<String>,
}

/// `GET /api/v1/hosts/{id}` answer: a host with its most recent replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostDetail {
    /// The host.
    pub host: HostSummary,
    /// Its most recent replicas, newest first (log tails left out).
    pub recent: Vec<ReplicaView>,
}

/// One unit in a batch's unit list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnitSummary {
    /// The unit.
    pub id: UnitId,
    /// Its state.
    pub state: UnitState,
    /// Replicas created so far.
    pub replicas: u32,
    /// Replicas that ended without output: error reports, missed deadlines, lost leases.
    #[serde(default)]
    pub failed_replicas: u32,
    /// Still active after a failed replica: queued again or running a replacement.
    #[serde(default)]
    pub retrying: bool,
    /// Why it failed or was cancelled.
    pub error: Option<String>,
}

/// `GET /api/v1/batches/{id}/units` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnitList {
    /// Matching units in id order, at most the requested limit.
    pub units: Vec<UnitSummary>,
    /// How many units matched in all.
    pub total: u64,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<UnitId>,
}

/// `GET /api/v1/units/{id}` answer: one unit with every replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnitDetail {
    /// The unit.
    pub id: UnitId,
    /// Its batch.
    pub batch_id: BatchId,
    /// Its state.
    pub state: UnitState,
    /// Its input, shown as in [`ResultRow::input`](crate::ResultRow).
    #[serde(default)]
    pub input: serde_json::Value,
    /// The bytes of a raw input that is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_base64: Option<crate::Base64Bytes>,
    /// Why it failed or was cancelled.
    pub error: Option<String>,
    /// Why it is stalled (waiting, nothing running it, and no online host may take it) and what
    /// happens next; absent when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalled: Option<String>,
    /// Every replica, in creation order.
    pub replicas: Vec<ReplicaView>,
}

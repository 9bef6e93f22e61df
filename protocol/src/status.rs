//! The dashboard's server status (units by app and state, hosts' rates, unit states over time)
//! and its failures view.

use serde::{Deserialize, Serialize};

use crate::{BatchId, HostId, ResultId, UnitState};

/// Fuel in one credit, the human unit of work (as BOINC's cobblestone): 10⁹ units of wasmtime
/// fuel, about a billion WebAssembly instructions. The API keeps raw fuel; pages and the CLI
/// show credits.
pub const FUEL_PER_CREDIT: u64 = 1_000_000_000;

/// `fuel` in credits as people read them (the dashboard, `musketeer hosts list`): two decimals,
/// or three significant digits below one credit, so that small test tasks do not show as zero.
pub fn credits_text(fuel: u64) -> String {
    let value = fuel as f64 / FUEL_PER_CREDIT as f64;
    if value > 0.0 && value < 1.0 {
        let decimals = (2 - value.log10().floor() as i32).max(0) as usize;
        format!("{value:.decimals$}")
    } else {
        format!("{value:.2}")
    }
}

/// Which units a list holds: a [`UnitState`], or `retrying`, the active units (queued or
/// running) that already had a replica fail.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UnitFilter {
    /// Waiting for a host.
    Queued,
    /// At least one replica is running.
    Running,
    /// Queued or running again after a failed replica.
    Retrying,
    /// A canonical result exists.
    Done,
    /// Gave up.
    Failed,
    /// Its batch was cancelled.
    Cancelled,
}

impl UnitFilter {
    /// Whether a unit in `state`, `retrying` or not, matches.
    pub fn matches(self, state: UnitState, retrying: bool) -> bool {
        match self {
            Self::Retrying => retrying,
            Self::Queued => state == UnitState::Queued,
            Self::Running => state == UnitState::Running,
            Self::Done => state == UnitState::Done,
            Self::Failed => state == UnitState::Failed,
            Self::Cancelled => state == UnitState::Cancelled,
        }
    }
}

/// One failed replica: an error report, a missed deadline or a lost lease.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureView {
    /// The replica.
    pub result_id: ResultId,
    /// Its unit's batch.
    pub batch_id: BatchId,
    /// The batch's app.
    pub app: String,
    /// The host it was leased to.
    pub host: Option<HostId>,
    /// Its unit's state now.
    pub unit_state: UnitState,
    /// Whether its unit is being tried again.
    pub retrying: bool,
    /// When it was sent.
    pub sent_ms: u64,
    /// `kind: message`, the task's own words sanitized (control characters escaped, capped).
    pub error: String,
}

/// `GET /api/v1/failures` answer.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureList {
    /// Matching failed replicas in result id order, at most the requested limit.
    pub failures: Vec<FailureView>,
    /// How many matched in all.
    pub total: u64,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<ResultId>,
}

/// Units of one app by state, as BOINC's server status page.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppStatus {
    /// The app.
    pub app: String,
    /// Units waiting for a host.
    pub unsent: u64,
    /// Units with a replica running.
    pub in_progress: u64,
    /// Of the unsent and in progress, those tried again after a failed replica.
    pub retrying: u64,
    /// Units with a canonical result.
    pub done: u64,
    /// Units given up.
    pub failed: u64,
    /// Units of cancelled batches.
    pub cancelled: u64,
}

/// A host's pace over the status window.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRate {
    /// The host.
    pub id: HostId,
    /// Its display name.
    pub name: String,
    /// Whether it made contact recently.
    pub online: bool,
    /// Results it returned (successes and errors) in the window.
    pub results: u64,
    /// Fuel of its results validated in the window.
    pub credit_fuel: u64,
    /// Length of the window in milliseconds (up to an hour; shorter just after start).
    pub window_ms: u64,
}

/// Units by state at one moment, for the state-over-time graph.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSample {
    /// When.
    pub at_ms: u64,
    /// Units waiting for a host (retrying ones included).
    pub queued: u64,
    /// Units with a replica running (retrying ones included).
    pub running: u64,
    /// Active units that had a replica fail.
    pub retrying: u64,
    /// Units done.
    pub done: u64,
    /// Units failed.
    pub failed: u64,
}

/// `GET /api/v1/status` answer.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStatus {
    /// When it was read.
    pub now_ms: u64,
    /// Units by app and state, apps in name order.
    pub apps: Vec<AppStatus>,
    /// Every host's pace, in id order.
    pub hosts: Vec<HostRate>,
    /// Units by state over the last hour, oldest first; the last sample is at most 2 s old.
    pub history: Vec<StateSample>,
}

#[cfg(test)]
mod tests {
    use super::credits_text;

    #[test]
    fn credits_are_fuel_over_a_billion() {
        assert_eq!(credits_text(929_939_720_241), "929.94");
        assert_eq!(credits_text(3_130_000), "0.00313");
        assert_eq!(credits_text(500_000_000), "0.500");
        assert_eq!(credits_text(0), "0.00");
    }
}

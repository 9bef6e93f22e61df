//! Read-only views of the world for the dashboard: a host's recent replicas, a batch's units, a
//! unit with its replicas, and the row counts `/metrics` reports. Callers pass the world, which
//! reads the finished units that left memory from the store.

use musketeer_protocol::{
    BatchId, HostId, ReplicaOutcome, ReplicaView, ResultId, UnitDetail, UnitFilter, UnitId,
    UnitList, UnitSummary,
};

use super::lifecycle::{Replica, ReplicaState, Unit, UnitStatus, Validation, kind_name};
use super::world::World;
use crate::store::StoreError;

/// Most units a host page looks through (newest first) for that host's replicas, so that the page
/// stays cheap on large stores.
pub const HOST_SCAN_LIMIT: usize = 100_000;

/// A replica in wire form; `with_log` keeps its stderr tail.
pub fn replica_view(unit: &Unit, idx: usize, replica: &Replica, with_log: bool) -> ReplicaView {
    let (outcome, fuel, wall_ms, error) = match &replica.state {
        ReplicaState::Unsent => (ReplicaOutcome::Unsent, None, None, None),
        ReplicaState::InProgress => (ReplicaOutcome::Running, None, None, None),
        ReplicaState::TimedOut => (
            ReplicaOutcome::TimedOut,
            None,
            None,
            Some("deadline passed without a report".to_owned()),
        ),
        ReplicaState::NotNeeded => (ReplicaOutcome::NotNeeded, None, None, None),
        ReplicaState::Lost => (
            ReplicaOutcome::TimedOut,
            None,
            None,
            Some("lease lost: the host's fetch no longer listed it; replaced".to_owned()),
        ),
        ReplicaState::Success {
            fuel,
            wall_ms,
            validation,
            ..
        } => {
            let outcome = match validation {
                Validation::Pending => ReplicaOutcome::Pending,
                Validation::Valid => ReplicaOutcome::Valid,
                Validation::Invalid => ReplicaOutcome::Invalid,
            };
            (outcome, Some(*fuel), Some(*wall_ms), None)
        }
        ReplicaState::Error { kind, message } => (
            ReplicaOutcome::Error,
            None,
            None,
            Some(format!("{}: {message}", kind_name(*kind))),
        ),
    };
    ReplicaView {
        result_id: ResultId {
            unit: unit.id,
            replica: idx as u32,
        },
        batch_id: unit.batch,
        host: replica.host,
        outcome,
        sent_ms: replica.sent_ms,
        deadline_ms: replica.deadline_ms,
        fuel,
        wall_ms,
        error,
        stderr_tail: (with_log && !replica.stderr_tail.is_empty())
            .then(|| replica.stderr_tail.clone()),
    }
}

/// Why a unit failed or was cancelled.
pub fn unit_error(unit: &Unit) -> Option<String> {
    match &unit.status {
        UnitStatus::Failed { reason } => Some(reason.clone()),
        UnitStatus::Cancelled => Some("batch cancelled".to_owned()),
        UnitStatus::Active | UnitStatus::Done { .. } => None,
    }
}

/// A unit with every replica, log tails included.
pub fn unit_detail(unit: &Unit) -> UnitDetail {
    let (input, input_base64) = unit.input.shown();
    UnitDetail {
        id: unit.id,
        batch_id: unit.batch,
        state: unit.state(),
        input,
        input_base64,
        error: unit_error(unit),
        // Filled in by the caller, which knows the online hosts.
        stalled: None,
        replicas: unit
            .replicas()
            .iter()
            .enumerate()
            .map(|(idx, r)| replica_view(unit, idx, r, true))
            .collect(),
    }
}

/// Replicas of `unit` that ended without output: error reports, missed deadlines, lost leases.
pub fn failed_replicas(unit: &Unit) -> u32 {
    unit.replicas()
        .iter()
        .filter(|r| is_failure(&r.state))
        .count() as u32
}

/// Whether a replica in `state` ended without output.
pub fn is_failure(state: &ReplicaState) -> bool {
    matches!(
        state,
        ReplicaState::Error { .. } | ReplicaState::TimedOut | ReplicaState::Lost
    )
}

/// Whether `unit` is still active after a failed replica: queued again or running a replacement.
pub fn is_retrying(unit: &Unit) -> bool {
    unit.is_active() && unit.replicas().iter().any(|r| is_failure(&r.state))
}

/// A unit in a unit list.
pub fn unit_summary(unit: &Unit) -> UnitSummary {
    UnitSummary {
        id: unit.id,
        state: unit.state(),
        replicas: unit.replicas().len() as u32,
        failed_replicas: failed_replicas(unit),
        retrying: is_retrying(unit),
        error: unit_error(unit),
    }
}

/// Up to `limit` of a batch's units with ids above `after`, in id order, only those `filter`
/// admits if given, with the number that matched in all (whatever `after`). None if there is no
/// such batch. Reads only the units of the page (and one more), from the store for those that
/// left memory; the total comes from the batch's counters, or for `retrying` (active units
/// only) from memory.
pub fn batch_units(
    world: &World,
    batch: BatchId,
    filter: Option<UnitFilter>,
    after: Option<UnitId>,
    limit: usize,
) -> Result<Option<UnitList>, StoreError> {
    let Some(batch) = world.batch(batch) else {
        return Ok(None);
    };
    let end = UnitId(batch.first_unit.0 + batch.n_units);
    let start = after.map_or(batch.first_unit, |after| {
        UnitId(after.0.saturating_add(1).max(batch.first_unit.0))
    });
    let admits = |unit: &Unit| filter.is_none_or(|f| f.matches(unit.state(), is_retrying(unit)));
    let c = batch.counts;
    let total = match filter {
        None => batch.n_units,
        Some(UnitFilter::Queued) => c.queued,
        Some(UnitFilter::Running) => c.running,
        Some(UnitFilter::Done) => c.done,
        Some(UnitFilter::Failed) => c.failed,
        Some(UnitFilter::Cancelled) => c.cancelled,
        Some(UnitFilter::Retrying) => world
            .memory_units(batch.first_unit..end)
            .filter(|u| is_retrying(u))
            .count() as u64,
        Some(_) => {
            let mut matched = 0;
            world.scan_units(batch.first_unit..end, false, |unit| {
                matched += u64::from(admits(unit));
                true
            })?;
            matched
        }
    };
    let mut units = Vec::new();
    let mut more = false;
    let mut collect = |unit: &Unit| {
        if !admits(unit) {
            return true;
        }
        if units.len() < limit {
            units.push(unit_summary(unit));
            true
        } else {
            more = true;
            false
        }
    };
    match filter {
        // Units in these states are all in memory.
        Some(UnitFilter::Queued | UnitFilter::Running | UnitFilter::Retrying) => {
            for unit in world.memory_units(start..end) {
                if !collect(unit) {
                    break;
                }
            }
        }
        _ if start < end => world.scan_units(start..end, false, collect)?,
        _ => {}
    }
    let next_after = if more {
        units.last().map(|u: &UnitSummary| u.id)
    } else {
        None
    };
    Ok(Some(UnitList {
        units,
        total,
        next_after,
    }))
}

/// Up to `limit` replicas held by `host`, newest unit first, without log tails (host pages may
/// be public). Looks through at most [`HOST_SCAN_LIMIT`] units.
pub fn host_recent(
    world: &World,
    host: HostId,
    limit: usize,
) -> Result<Vec<ReplicaView>, StoreError> {
    let mut recent = Vec::new();
    let mut scanned = 0;
    for batch in world.batches() {
        let end = UnitId(batch.first_unit.0 + batch.n_units);
        world.scan_units(batch.first_unit..end, true, |unit| {
            for (idx, replica) in unit.replicas().iter().enumerate() {
                if replica.host == Some(host) {
                    recent.push(replica_view(unit, idx, replica, false));
                }
            }
            scanned += 1;
            recent.len() < limit && scanned < HOST_SCAN_LIMIT
        })?;
        if recent.len() >= limit || scanned >= HOST_SCAN_LIMIT {
            break;
        }
    }
    recent.truncate(limit);
    Ok(recent)
}

/// Rows of each kind the store holds, as the world mirrors them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCounts {
    /// Host rows.
    pub hosts: u64,
    /// App version rows.
    pub app_versions: u64,
    /// Batch rows.
    pub batches: u64,
    /// Unit rows.
    pub units: u64,
}

/// Count the rows the world mirrors (without visiting units: metrics scrapes stay cheap).
pub fn row_counts(world: &World) -> RowCounts {
    let mut counts = RowCounts {
        hosts: world.hosts().count() as u64,
        app_versions: world.app_versions().count() as u64,
        ..RowCounts::default()
    };
    for batch in world.batches() {
        counts.batches += 1;
        counts.units += batch.n_units;
    }
    counts
}

pub mod failures;
pub mod status;

#[cfg(test)]
mod dashboard_tests;
#[cfg(test)]
mod tests;

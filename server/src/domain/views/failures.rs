//! The failures view: every failed replica (error report, missed deadline, lost lease) of the
//! batches a caller may see, so that errors show while a batch runs, before any unit gives up.

use musketeer_protocol::{BatchId, FailureList, FailureView, ResultId, UnitFilter, UnitId};

use super::{is_failure, is_retrying, replica_view};
use crate::domain::world::{Batch, World};
use crate::store::StoreError;

/// What a failures page asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct FailureQuery {
    /// Only this batch.
    pub batch: Option<BatchId>,
    /// Only failures whose unit this admits (`retrying` or `failed`, typically).
    pub filter: Option<UnitFilter>,
    /// Only results after this one, in result id order.
    pub after: Option<ResultId>,
    /// At most this many.
    pub limit: usize,
}

/// The failed replicas of the batches `visible` admits, in result id order, as `query` asks.
/// The total counts every one, so the finished units of those batches are read from the store;
/// `retrying` needs only the active ones, in memory.
pub fn failures(
    world: &World,
    query: FailureQuery,
    visible: impl Fn(&Batch) -> bool,
) -> Result<FailureList, StoreError> {
    let mut batches: Vec<&Batch> = world
        .batches()
        .filter(|b| visible(b) && query.batch.is_none_or(|id| b.id == id))
        .collect();
    // Unit ids grow with batch ids: ascending batches give ascending result ids.
    batches.sort_unstable_by_key(|b| b.id);
    let mut failures = Vec::new();
    let mut total = 0;
    let mut more = false;
    // Only batches with a failed replica are read (their finished units from the store).
    for batch in batches.into_iter().filter(|b| b.failed_replicas > 0) {
        let mut visit = |unit: &crate::domain::lifecycle::Unit| {
            let retrying = is_retrying(unit);
            if query
                .filter
                .is_some_and(|f| !f.matches(unit.state(), retrying))
            {
                return true;
            }
            for (idx, replica) in unit.replicas().iter().enumerate() {
                if !is_failure(&replica.state) {
                    continue;
                }
                total += 1;
                let view = replica_view(unit, idx, replica, false);
                if query.after.is_some_and(|after| view.result_id <= after) {
                    continue;
                }
                if failures.len() >= query.limit {
                    more = true;
                    continue;
                }
                failures.push(FailureView {
                    result_id: view.result_id,
                    batch_id: batch.id,
                    app: batch.app.clone(),
                    host: view.host,
                    unit_state: unit.state(),
                    retrying,
                    sent_ms: view.sent_ms,
                    error: view.error.unwrap_or_default(),
                });
            }
            true
        };
        let end = UnitId(batch.first_unit.0 + batch.n_units);
        if query.filter == Some(UnitFilter::Retrying) {
            world.memory_units(batch.first_unit..end).for_each(|u| {
                visit(u);
            });
        } else {
            world.scan_units(batch.first_unit..end, false, visit)?;
        }
    }
    let next_after = if more {
        failures.last().map(|f: &FailureView| f.result_id)
    } else {
        None
    };
    Ok(FailureList {
        failures,
        total,
        next_after,
    })
}

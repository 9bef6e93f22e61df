//! Deleting finished batches, so that the store does not grow forever, and the id floor that
//! keeps a deleted batch's ids from being handed out again (unit ids are part of a task's input
//! and appear in hosts' in-flight results, so a reused id would mix up two units).

use musketeer_protocol::{BatchId, UnitId};
use serde::{Deserialize, Serialize};

use super::World;

/// The ids the next batch and its first unit get at least. Stored (meta row `next_ids`) once a
/// batch is deleted: the highest stored ids alone would let the newest batch's ids come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextIds {
    /// The next batch id.
    pub batch: BatchId,
    /// The next batch's first unit id.
    pub unit: UnitId,
}

impl Default for NextIds {
    fn default() -> Self {
        Self {
            batch: BatchId(1),
            unit: UnitId(1),
        }
    }
}

/// A deleted batch: its id and its units' ids, `first_unit .. first_unit + n_units`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedBatch {
    /// The batch.
    pub id: BatchId,
    /// Its first unit.
    pub first_unit: UnitId,
    /// How many units it had.
    pub n_units: u64,
}

/// Why a batch cannot be deleted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeleteError {
    /// There is no such batch.
    #[error("no batch {0}")]
    NotFound(BatchId),
    /// Some of its units are still queued or running.
    #[error(
        "batch {id} has {unfinished} unfinished units: cancel it first or wait for it to finish"
    )]
    NotFinished {
        /// The batch.
        id: BatchId,
        /// Its units not yet done, failed or cancelled.
        unfinished: u64,
    },
}

impl World {
    /// The ids the next submitted batch and its first unit get.
    pub fn next_ids(&self) -> NextIds {
        let batch = self.batches.keys().next_back().map_or(1, |b| b.0 + 1);
        // Unit ids grow with batch ids; finished units may have left memory, batches never do.
        let unit = self
            .batches
            .values()
            .next_back()
            .map_or(1, |b| b.first_unit.0 + b.n_units);
        NextIds {
            batch: BatchId(batch.max(self.id_floor.batch.0)),
            unit: UnitId(unit.max(self.id_floor.unit.0)),
        }
    }

    /// The world restored with its stored [`NextIds`] (from [`World::next_ids`] at the last
    /// deletion), so that deleted ids stay unused after a restart.
    pub fn with_next_ids(mut self, floor: NextIds) -> Self {
        self.id_floor = floor;
        self
    }

    /// Delete a finished batch (every unit done, failed or cancelled) with its units: they leave
    /// every index and counter as if never submitted, except the history of units done per minute
    /// and the hosts' counters and credit, which stay earned. Replicas of its units that hosts
    /// still run (beyond a quorum, or of a cancelled batch) are dropped: their hosts are told to
    /// abort them and reports on them are refused. The store deletes the rows in the next commit.
    pub fn delete_batch(&mut self, id: BatchId) -> Result<DeletedBatch, DeleteError> {
        let batch = self.batches.get(&id).ok_or(DeleteError::NotFound(id))?;
        let unfinished = batch.n_units - batch.counts.finished();
        if unfinished > 0 {
            return Err(DeleteError::NotFinished { id, unfinished });
        }
        let deleted = DeletedBatch {
            id,
            first_unit: batch.first_unit,
            n_units: batch.n_units,
        };
        let end = UnitId(batch.first_unit.0 + batch.n_units);
        let units: Vec<UnitId> = self
            .units
            .range(batch.first_unit..end)
            .map(|(&u, _)| u)
            .collect();
        self.id_floor = self.next_ids();
        for unit in units {
            // Removes its leases, queue entry and counts, with the batch still there to subtract
            // from.
            self.index(unit, false);
            self.units.remove(&unit);
            self.dirty.units.remove(&unit);
        }
        // The units that left memory go out of the counters by the batch's totals.
        self.forget_archived(id);
        self.batches.remove(&id);
        self.dirty.batches.remove(&id);
        self.dirty.deleted.push(deleted);
        Ok(deleted)
    }
}

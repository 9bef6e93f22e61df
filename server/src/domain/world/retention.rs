//! Retention of finished batches: each batch records when it finished (or was cancelled), and
//! batches finished longer ago than the operator's retention are deleted like
//! `DELETE /api/v1/batches/{id}` deletes them, so that credit and host counters stay.

use musketeer_protocol::BatchId;

use super::{Batch, World};

impl Batch {
    /// Every unit is done, failed or cancelled (a cancelled batch's units all are).
    pub fn is_finished(&self) -> bool {
        self.counts.finished() == self.n_units
    }
}

impl World {
    /// Records `now_ms` as the finishing time of every batch that changed since the last commit
    /// (directly or through one of its units) and has just finished. Call before
    /// [`World::take_dirty`], so the stamp goes in the commit that finished the batch.
    pub fn stamp_finished(&mut self, now_ms: u64) {
        let mut changed: Vec<BatchId> = self.dirty.batches.iter().copied().collect();
        let mut last = None;
        for unit in &self.dirty.units {
            // Units of one batch are contiguous ids, so consecutive dirty units mostly share it.
            let Some(batch) = self.units.get(unit).map(|u| u.batch) else {
                continue;
            };
            if last != Some(batch) {
                changed.push(batch);
                last = Some(batch);
            }
        }
        for id in changed {
            let Some(batch) = self.batches.get_mut(&id) else {
                continue;
            };
            if batch.finished_ms.is_none() && batch.is_finished() {
                batch.finished_ms = Some(now_ms);
                self.dirty.batches.insert(id);
            }
        }
    }

    /// Deletes the batches that finished at or before `cutoff_ms`; returns how many units went
    /// with them. The store deletes their rows in the next commit.
    pub fn delete_finished_before(&mut self, cutoff_ms: u64) -> Vec<(BatchId, u64)> {
        let expired: Vec<BatchId> = self
            .batches
            .values()
            .filter(|b| b.finished_ms.is_some_and(|at| at <= cutoff_ms))
            .map(|b| b.id)
            .collect();
        expired
            .into_iter()
            .filter_map(|id| self.delete_batch(id).ok())
            .map(|deleted| (deleted.id, deleted.n_units))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use musketeer_protocol::HostId;

    use super::super::test_support::{submit, world_with_hosts};
    use crate::domain::lifecycle::Reported;

    fn success() -> Reported {
        Reported::Success {
            output: b"\"A\"".to_vec(),
            fuel: 3,
            wall_ms: 1,
            stderr_tail: String::new(),
        }
    }

    #[test]
    fn a_batch_is_stamped_in_the_change_that_finishes_it_and_deleted_after_the_cutoff() {
        let mut world = world_with_hosts(1);
        let id = submit(&mut world, 1, 1);
        world.stamp_finished(10);
        assert_eq!(world.batch(id).unwrap().finished_ms, None, "still running");
        world.take_dirty();
        let fetched = world.fetch(HostId(1), 1, 20);
        world.report(HostId(1), fetched[0], success(), 30);
        world.stamp_finished(40);
        assert_eq!(world.batch(id).unwrap().finished_ms, Some(40));
        assert!(
            world.take_dirty().batches.contains(&id),
            "the stamp is stored"
        );
        // A later change keeps the first stamp.
        world.stamp_finished(50);
        assert_eq!(world.batch(id).unwrap().finished_ms, Some(40));

        assert!(world.delete_finished_before(39).is_empty());
        let running = submit(&mut world, 1, 1);
        assert_eq!(world.delete_finished_before(40), [(id, 1)]);
        assert!(world.batch(id).is_none());
        assert!(world.batch(running).is_some(), "unfinished batches stay");
        assert_eq!(
            world.host(HostId(1)).unwrap().succeeded,
            1,
            "host counters stay"
        );
    }

    #[test]
    fn a_cancelled_batch_is_stamped_when_cancelled() {
        let mut world = world_with_hosts(1);
        let id = submit(&mut world, 2, 1);
        world.take_dirty();
        world.cancel_batch(id, 5);
        world.stamp_finished(6);
        assert_eq!(world.batch(id).unwrap().finished_ms, Some(6));
    }
}

//! Finished units leave memory: once a unit is settled (finished, with no lease running and no
//! dispute) and its row is durable, the world drops it and reads it back from the store's
//! [`UnitArchive`] when asked. Its contributions to the counters stay, so counts are exact
//! without it. A late report on it, or distrust of a host that helped finish it, recalls it
//! into memory for the change; it leaves again once that change is durable.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use musketeer_protocol::{BatchId, HostId, UnitId};

use super::{World, is_final};
use crate::domain::lifecycle::{Unit, UnitStatus};
use crate::store::{StoreError, UnitArchive};

/// Whether `unit` may leave memory: finished, no replica leased, no result in dispute (so it
/// holds no entry in the queue, the lease and deadline indexes or the disputes).
pub(super) fn is_settled(unit: &Unit) -> bool {
    is_final(unit.state()) && unit.leases().next().is_none() && unit.disputants().next().is_none()
}

impl World {
    /// The world, reading the units that left memory from `archive` (and letting them leave).
    /// Set before [`World::restore_unit`], so that settled units are not kept.
    pub fn with_archive(mut self, archive: Arc<dyn UnitArchive>) -> Self {
        self.archive = Some(archive);
        self
    }

    /// Units in memory now (the in-flight ones and those settled but not yet durable).
    pub fn units_in_memory(&self) -> usize {
        self.units.len()
    }

    /// The units in memory with ids in `ids`, ascending.
    pub fn memory_units(&self, ids: Range<UnitId>) -> impl Iterator<Item = &Unit> {
        self.units.range(ids).map(|(_, unit)| &**unit)
    }

    /// Marks the units settled since the last call as written by the commit with writer
    /// `ticket`: once that commit is durable, [`World::evict_settled`] drops them. Call right
    /// after queueing the commit of [`World::take_dirty`]'s rows.
    pub fn seal_settled(&mut self, ticket: u64) {
        if self.settled.is_empty() {
            return;
        }
        let settled = std::mem::take(&mut self.settled);
        for &id in &settled {
            self.awaiting_commit.insert(id, ticket);
        }
        self.evictable.push_back((ticket, settled));
    }

    /// Drops from memory the settled units whose last change is durable: every commit up to
    /// writer ticket `committed` is. Returns how many left.
    pub fn evict_settled(&mut self, committed: u64) -> usize {
        let mut evicted = 0;
        while let Some((ticket, _)) = self.evictable.front() {
            if *ticket > committed {
                break;
            }
            let Some((ticket, ids)) = self.evictable.pop_front() else {
                break;
            };
            for id in ids {
                // A later change (still in flight) or an unsettling one keeps the unit here.
                if self.awaiting_commit.get(&id) != Some(&ticket) {
                    continue;
                }
                self.awaiting_commit.remove(&id);
                if self.units.get(&id).is_some_and(|unit| is_settled(unit))
                    && !self.dirty.units.contains(&id)
                {
                    self.units.remove(&id);
                    evicted += 1;
                }
            }
        }
        evicted
    }

    /// A unit, from memory or else from the archive (only units of batches that exist).
    pub fn stored_unit(&self, id: UnitId) -> Result<Option<Cow<'_, Unit>>, StoreError> {
        if let Some(unit) = self.units.get(&id) {
            return Ok(Some(Cow::Borrowed(&**unit)));
        }
        let Some(archive) = &self.archive else {
            return Ok(None);
        };
        Ok(archive
            .unit(id)?
            .filter(|unit| self.batches.contains_key(&unit.batch))
            .map(Cow::Owned))
    }

    /// The units with ids in `ids` (ascending, or descending if asked), from memory where they
    /// are there and from the archive otherwise, handed to `visit` until it returns false.
    /// The caller picks `ids` within one batch that exists (or several).
    pub fn scan_units(
        &self,
        ids: Range<UnitId>,
        descending: bool,
        mut visit: impl FnMut(&Unit) -> bool,
    ) -> Result<(), StoreError> {
        let range = self.units.range(ids.clone()).map(|(_, unit)| &**unit);
        let mut memory: Box<dyn Iterator<Item = &Unit>> = if descending {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        let mut next = memory.next();
        let mut stopped = false;
        if let Some(archive) = &self.archive {
            // Stored rows of units also in memory may be older: memory wins.
            let comes_first = |a: UnitId, b: UnitId| if descending { a > b } else { a < b };
            archive.scan(ids, descending, &mut |stored| {
                while let Some(unit) = next.filter(|u| comes_first(u.id, stored.id)) {
                    if !visit(unit) {
                        stopped = true;
                        return false;
                    }
                    next = memory.next();
                }
                let keep_going = match next.filter(|u| u.id == stored.id) {
                    Some(unit) => {
                        next = memory.next();
                        visit(unit)
                    }
                    None => visit(&stored),
                };
                stopped = !keep_going;
                keep_going
            })?;
        }
        while let Some(unit) = next.filter(|_| !stopped) {
            stopped = !visit(unit);
            next = memory.next();
        }
        Ok(())
    }

    /// Brings a unit that left memory back for a change (a late report on it). Returns whether
    /// it is in memory now. It leaves again after the next durable commit.
    pub(super) fn recall(&mut self, id: UnitId) -> bool {
        if self.units.contains_key(&id) {
            return true;
        }
        let Some(archive) = &self.archive else {
            return false;
        };
        match archive.unit(id) {
            Ok(Some(unit)) if self.batches.contains_key(&unit.batch) => {
                self.units.insert(id, Box::new(unit));
                self.settled.push(id);
                true
            }
            Ok(_) => false,
            Err(error) => {
                tracing::error!(%error, unit = %id, "cannot read a finished unit back from the store");
                false
            }
        }
    }

    /// Brings back the done units `host` returned a replica of, so that distrusting it can
    /// reopen them. Reads every stored unit: hosts are distrusted rarely.
    pub(super) fn recall_done_by(&mut self, host: HostId) {
        let Some(archive) = self.archive.clone() else {
            return;
        };
        let end = self.next_ids().unit;
        let mut found = Vec::new();
        let scanned = archive.scan(UnitId(0)..end, false, &mut |unit| {
            if matches!(unit.status, UnitStatus::Done { .. })
                && unit.has_host(host)
                && !self.units.contains_key(&unit.id)
                && self.batches.contains_key(&unit.batch)
            {
                found.push(unit);
            }
            true
        });
        if let Err(error) = scanned {
            tracing::error!(%error, host = %host, "cannot read finished units back to re-verify a distrusted host's work");
        }
        for unit in found {
            self.settled.push(unit.id);
            self.units.insert(unit.id, Box::new(unit));
        }
    }

    /// Takes a deleted batch's units that left memory out of the counters (the units in
    /// memory were taken out one by one already).
    pub(super) fn forget_archived(&mut self, batch: BatchId) {
        let Some(b) = self.batches.get_mut(&batch) else {
            return;
        };
        let (counts, results) = (b.counts, std::mem::take(&mut b.results));
        b.counts = Default::default();
        for (total, gone) in [
            (&mut self.counts.queued, counts.queued),
            (&mut self.counts.running, counts.running),
            (&mut self.counts.done, counts.done),
            (&mut self.counts.failed, counts.failed),
            (&mut self.counts.cancelled, counts.cancelled),
            (&mut self.results.valid, results.valid),
            (&mut self.results.invalid, results.invalid),
            (&mut self.results.errors, results.errors),
            (&mut self.results.timed_out, results.timed_out),
        ] {
            *total = total.saturating_sub(gone);
        }
        let hosts: Vec<HostId> = self
            .batch_shares
            .range((batch, HostId(0))..=(batch, HostId(u64::MAX)))
            .map(|(&(_, host), _)| host)
            .collect();
        for host in hosts {
            self.batch_shares.remove(&(batch, host));
        }
    }
}

//! The client's task slots, shared by the projects it serves: a project's work loop takes a
//! slot only when [`Shares`] picks it among the projects with work waiting, so CPU time follows
//! the resource shares. Each change (a slot freed, work waiting) wakes every loop to look again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::watch;

use super::shares::{Shares, Standing};

/// The slots of one client; clones share them.
#[derive(Debug, Clone)]
pub struct SlotPool {
    inner: Arc<Mutex<PoolState>>,
    changes: Arc<watch::Sender<u64>>,
}

#[derive(Debug)]
struct PoolState {
    shares: Shares,
    slots: usize,
    free: BTreeSet<usize>,
    /// The project running in each busy slot.
    owners: BTreeMap<usize, String>,
    /// When [`Shares::advance`] last charged the running tasks.
    charged_at: Instant,
}

impl PoolState {
    fn charge(&mut self) {
        let now = Instant::now();
        self.shares.advance(now.duration_since(self.charged_at));
        self.charged_at = now;
    }
}

impl SlotPool {
    /// `slots` slots, numbered from 1.
    pub fn new(slots: usize) -> Self {
        let slots = slots.max(1);
        Self {
            inner: Arc::new(Mutex::new(PoolState {
                shares: Shares::new(slots),
                slots,
                free: (1..=slots).collect(),
                owners: BTreeMap::new(),
                charged_at: Instant::now(),
            })),
            changes: Arc::new(watch::Sender::new(0)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn changed(&self) {
        self.changes.send_modify(|generation| *generation += 1);
    }

    /// Adds `project` with `share`, or changes its share.
    pub fn attach(&self, project: &str, share: u32) {
        let mut state = self.lock();
        state.charge();
        state.shares.attach(project, share);
        drop(state);
        self.changed();
    }

    /// Forgets `project` (its work loop has ended).
    pub fn detach(&self, project: &str) {
        let mut state = self.lock();
        state.charge();
        state.shares.detach(project);
        drop(state);
        self.changed();
    }

    /// How many projects share the slots.
    pub fn projects(&self) -> usize {
        self.lock().shares.len()
    }

    /// `project`'s standing in CPU time.
    pub fn standing(&self, project: &str) -> Option<Standing> {
        let mut state = self.lock();
        state.charge();
        state.shares.standing(project)
    }

    /// The slots of `project`'s work loop.
    pub fn handle(&self, project: &str) -> PoolHandle {
        PoolHandle {
            pool: self.clone(),
            project: project.to_owned(),
        }
    }
}

/// One project's side of the pool. Dropping it frees the project's slots and forgets it.
#[derive(Debug)]
pub struct PoolHandle {
    pool: SlotPool,
    project: String,
}

impl PoolHandle {
    /// Wakes when a slot frees or the work waiting changes anywhere in the pool.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.pool.changes.subscribe()
    }

    /// Says whether this project has work waiting for a slot.
    pub fn set_waiting(&self, waiting: bool) {
        let mut state = self.pool.lock();
        state.charge();
        let changed = state.shares.set_waiting(&self.project, waiting);
        drop(state);
        // Only a change wakes the loops: each loop says this on every turn.
        if changed {
            self.pool.changed();
        }
    }

    /// A free slot for this project's next task, if it is this project's turn.
    pub fn try_start(&self) -> Option<usize> {
        let mut state = self.pool.lock();
        state.charge();
        if state.free.is_empty() || state.shares.next() != Some(self.project.as_str()) {
            return None;
        }
        let slot = state.free.pop_first()?;
        state.owners.insert(slot, self.project.clone());
        state.shares.started(&self.project);
        Some(slot)
    }

    /// Gives `slot` back (its task ended, or was never started).
    pub fn finish(&self, slot: usize) {
        let mut state = self.pool.lock();
        state.charge();
        if state.owners.get(&slot) == Some(&self.project) {
            state.owners.remove(&slot);
            state.free.insert(slot);
            state.shares.finished(&self.project);
        }
        drop(state);
        self.pool.changed();
    }

    /// Slots free now, for any project.
    pub fn free_slots(&self) -> usize {
        self.pool.lock().free.len()
    }

    /// All slots of the client.
    pub fn slots(&self) -> usize {
        self.pool.lock().slots
    }

    /// Whether other projects share the slots (then each keeps work ready even while all the
    /// slots are busy, or a freed slot would go to whichever has work rather than by share).
    pub fn shared(&self) -> bool {
        self.pool.projects() > 1
    }
}

impl Drop for PoolHandle {
    fn drop(&mut self) {
        let mut state = self.pool.lock();
        state.charge();
        let mine: Vec<usize> = state
            .owners
            .iter()
            .filter(|(_, owner)| **owner == self.project)
            .map(|(slot, _)| *slot)
            .collect();
        for slot in mine {
            state.owners.remove(&slot);
            state.free.insert(slot);
            state.shares.finished(&self.project);
        }
        let _ = state.shares.set_waiting(&self.project, false);
        drop(state);
        self.pool.changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_slot_goes_to_the_project_owed_the_most_and_a_dropped_loop_frees_its_slots() {
        let pool = SlotPool::new(1);
        pool.attach("a", 100);
        pool.attach("b", 300);
        let (a, b) = (pool.handle("a"), pool.handle("b"));
        assert!(a.shared() && a.slots() == 1);
        // Only "a" has work: it takes the slot though its share is smaller.
        a.set_waiting(true);
        let slot = a.try_start().expect("a's turn");
        assert_eq!(a.free_slots(), 0);
        b.set_waiting(true);
        assert_eq!(b.try_start(), None, "no slot is free");
        a.finish(slot);
        // "a" used the slot while "b" waited: "b" is owed the time (and, were no time to have
        // passed, has the larger share) and goes first.
        assert_eq!(a.try_start(), None);
        let slot = b.try_start().expect("b's turn");
        drop(b);
        assert_eq!(a.free_slots(), 1, "a dropped loop frees its slot ({slot})");
        assert!(a.try_start().is_some());
    }
}

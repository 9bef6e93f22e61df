//! A bounded share of a batch per host: one fast party cannot take every copy of a batch.
//! A host past its share of a batch gets a unit of it only when no other online host could
//! take that unit, so the bound never stalls a batch that only this host can finish.

use musketeer_protocol::{BatchId, HostId};

use super::{Batch, ONLINE_WINDOW_MS, World};
use crate::domain::lifecycle::Unit;

impl World {
    /// Most replicas of `batch` one host may hold or have returned before the bound applies:
    /// the policy's share of the batch's initial replicas, at least the policy's floor.
    pub fn batch_share_limit(&self, batch: &Batch) -> u64 {
        let replicas = batch
            .n_units
            .saturating_mul(u64::from(batch.params.target_nresults));
        let share = u64::from(self.policy.max_batch_share_percent.min(100));
        replicas
            .saturating_mul(share)
            .div_ceil(100)
            .max(self.policy.batch_share_floor)
    }

    /// Replicas of `batch` that `host` holds or returned.
    pub fn batch_share_of(&self, batch: BatchId, host: HostId) -> u64 {
        self.batch_shares.get(&(batch, host)).copied().unwrap_or(0)
    }

    /// Whether `other` is online, may fetch, and admits tasks needing `needed_memory` bytes.
    fn may_fetch_now(&self, other: HostId, needed_memory: u64, now_ms: u64) -> bool {
        self.hosts.get(&other).is_some_and(|me| {
            me.last_contact_ms + ONLINE_WINDOW_MS > now_ms
                && me.standing.allowance(&self.policy, now_ms).is_ok()
                && me
                    .platform
                    .as_ref()
                    .and_then(|p| p.max_task_memory)
                    .is_none_or(|cap| needed_memory <= cap)
        })
    }

    /// Whether placement lets `other` take a replica of `unit`.
    fn placement_admits(&self, other: HostId, unit: &Unit) -> bool {
        let Some(me) = self.hosts.get(&other) else {
            return false;
        };
        !unit.has_host(other)
            && unit.replicas().iter().all(|r| {
                r.host
                    .and_then(|h| self.hosts.get(&h))
                    .is_none_or(|holder| !holder.origin.conflicts_with(&me.origin))
            })
    }
}

/// One fetch's view of the bound: per batch, whether the fetching host is past its share and,
/// if so, the other online hosts still within theirs (looked up once per batch per fetch).
#[derive(Debug, Default)]
pub(super) struct ShareCheck {
    batch: Option<BatchId>,
    /// Hosts within their share, when the fetching host is past its own.
    others: Option<Vec<HostId>>,
}

impl ShareCheck {
    /// Whether `host` may take `unit` as far as its share of the unit's batch goes.
    pub(super) fn within(&mut self, world: &World, host: HostId, unit: &Unit, now_ms: u64) -> bool {
        if world.policy.max_batch_share_percent >= 100 {
            return true;
        }
        if self.batch != Some(unit.batch) {
            self.batch = Some(unit.batch);
            self.others = None;
            let Some(batch) = world.batches.get(&unit.batch) else {
                return true;
            };
            let limit = world.batch_share_limit(batch);
            if world.batch_share_of(unit.batch, host) >= limit {
                // Host-wide conditions once per batch, so that each unit costs only the
                // placement check of the hosts that could take it.
                let needed_memory = world.memory_needed(batch);
                self.others = Some(
                    world
                        .hosts
                        .keys()
                        .copied()
                        .filter(|&other| {
                            other != host
                                && world.batch_share_of(unit.batch, other) < limit
                                && world.may_fetch_now(other, needed_memory, now_ms)
                        })
                        .collect(),
                );
            }
        }
        match &self.others {
            None => true,
            Some(others) => !others
                .iter()
                .any(|&other| world.placement_admits(other, unit)),
        }
    }
}

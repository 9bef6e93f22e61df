//! Stalled units: waiting for a host while every online host able to run them already holds or
//! returned a replica, so no batch can hang silently; those stalled past the server's timeout fail
//! with the reason.

use std::collections::BTreeMap;

use musketeer_protocol::{BatchId, HostId, UnitId, UnitState};

use super::{ONLINE_WINDOW_MS, OnlineMemoryLimits, World};

impl World {
    /// Why a unit is stalled, if the last [`World::sweep_stalled`] found it so.
    pub fn stalled_reason(&self, id: UnitId, online: &OnlineMemoryLimits) -> Option<String> {
        let since = self.stalled.get(&id)?;
        let unit = self.units.get(&id)?;
        let able = self
            .batches
            .get(&unit.batch)
            .map_or(0, |batch| online.admitting(self.memory_needed(batch)));
        Some(format!(
            "unit {id} is stalled: nothing runs it and all {able} online host(s) able to run it \
             already returned a replica ({}); stalled since {since} ms (Unix time), it fails \
             after the server's stall timeout unless another host joins",
            unit.results_summary()
        ))
    }

    /// When [`World::sweep_stalled`] last ran.
    pub fn last_stall_sweep_ms(&self) -> Option<u64> {
        self.last_stall_sweep_ms
    }

    /// Find the stalled units — waiting for a host, none of their replicas running, and every
    /// online host able to run them (at least one) already holding or having returned a
    /// replica — and fail those stalled for `timeout_ms` or more, with the reason. With no able
    /// host online nothing is stalled: the batch waits (its `hosts_able` says 0). Returns how
    /// many units failed.
    pub fn sweep_stalled(&mut self, now_ms: u64, timeout_ms: u64) -> usize {
        self.last_stall_sweep_ms = Some(now_ms);
        let online: Vec<(HostId, Option<u64>)> = self
            .hosts
            .values()
            .filter(|h| h.last_contact_ms + ONLINE_WINDOW_MS > now_ms)
            .map(|h| (h.id, h.platform.as_ref().and_then(|p| p.max_task_memory)))
            .collect();
        let mut stalled = BTreeMap::new();
        let mut expired = Vec::new();
        // A batch's units sit together in the queue: look its memory need up once per run.
        let mut need_of: Option<(BatchId, u64)> = None;
        for &(_, id) in &self.queue {
            let Some(unit) = self.units.get(&id) else {
                continue;
            };
            if unit.state() != UnitState::Queued {
                continue;
            }
            let needed = match need_of {
                Some((batch, needed)) if batch == unit.batch => needed,
                _ => {
                    let needed = self
                        .batches
                        .get(&unit.batch)
                        .map_or(0, |b| self.memory_needed(b));
                    need_of = Some((unit.batch, needed));
                    needed
                }
            };
            let mut able = online
                .iter()
                .filter(|(_, cap)| cap.is_none_or(|cap| needed <= cap))
                .map(|(host, _)| *host)
                .peekable();
            if able.peek().is_none() || able.any(|host| !unit.has_host(host)) {
                continue;
            }
            let since = self.stalled.get(&id).copied().unwrap_or(now_ms);
            stalled.insert(id, since);
            if now_ms.saturating_sub(since) >= timeout_ms {
                expired.push(id);
            }
        }
        self.stalled = stalled;
        for &id in &expired {
            self.stalled.remove(&id);
            self.update_unit(id, now_ms, |unit| {
                let reason = format!(
                    "stalled for {} s: every online host able to run it already returned a \
                     replica without agreement ({})",
                    timeout_ms / 1000,
                    unit.results_summary()
                );
                unit.give_up(reason);
            });
        }
        expired.len()
    }
}

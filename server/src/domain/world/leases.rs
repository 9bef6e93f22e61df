//! Leases: handing replicas out to hosts (placement, standing and quota decide which), taking
//! back those a host no longer lists, and expiring those past their deadline.

use super::*;

/// What a fetching host can take, from its fetch request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostAccepts {
    /// The volunteer's per-task memory limit, if it set one.
    pub max_task_memory: Option<u64>,
    /// It declared the raw-input capability; without it, raw units are not handed to it, so a
    /// client that would read them differently never runs or votes on one.
    pub raw_input: bool,
}

impl World {
    /// Lease up to `max` replicas to `host`, as to a client that declares nothing.
    pub fn fetch(&mut self, host: HostId, max: usize, now_ms: u64) -> Vec<ResultId> {
        self.fetch_within(host, max, now_ms, HostAccepts::default())
    }

    /// Lease up to `max` replicas to `host`, only of app versions whose manifest lets a task use
    /// at most the volunteer's memory limit, when there is one, and only of raw units when it
    /// declared the raw-input capability.
    pub fn fetch_within(
        &mut self,
        host: HostId,
        max: usize,
        now_ms: u64,
        accepts: HostAccepts,
    ) -> Vec<ResultId> {
        let fits = |unit: &Unit| {
            (accepts.raw_input || !unit.input.is_raw())
                && accepts.max_task_memory.is_none_or(|cap| {
                    self.batches
                        .get(&unit.batch)
                        .is_some_and(|batch| self.memory_needed(batch) <= cap)
                })
        };
        let Some(me) = self.hosts.get(&host) else {
            return Vec::new();
        };
        let Ok(allowance) = me.standing.allowance(&self.policy, now_ms) else {
            return Vec::new();
        };
        // A host in a dispute gets no fresh work (a fast liar cannot run ahead of the honest
        // hosts that will catch it) but may help settle other disputes.
        let held = self.held_by_dispute(host, now_ms).is_some();
        let max = max.min(allowance as usize);
        let trusted = me.standing.trusted(&self.policy);
        let origin = &me.origin;
        // Error flooders cannot agree on a unit and fail it (see `Standing::suspect`).
        let i_am_suspect = me.standing.suspect();
        // Replicas of one unit go to hosts of different networks and owners.
        let placeable = |unit: &Unit| {
            !unit.has_host(host)
                && unit.replicas().iter().all(|r| {
                    let other = r.host.and_then(|h| self.hosts.get(&h));
                    let errored = matches!(r.state, ReplicaState::Error { .. });
                    other.is_none_or(|other| {
                        !other.origin.conflicts_with(origin)
                            && !(i_am_suspect && (errored || other.standing.suspect()))
                    })
                })
        };
        let mut share = batch_share::ShareCheck::default();
        let mut eligible = |id: &UnitId| {
            self.units.get(id).is_some_and(|u| {
                (!held || u.is_disputed())
                    && placeable(u)
                    && fits(u)
                    && share.within(self, host, u, now_ms)
            })
        };
        // Within a priority, each fetch takes a scattered sample of the first eligible units
        // rather than the very first ones, so that two fast hosts asking together do not take
        // both replicas of the same units.
        let window = max.saturating_mul(4).max(64);
        let mut candidates: Vec<UnitId> = Vec::with_capacity(max);
        let mut group: Vec<UnitId> = Vec::new();
        let mut group_priority = None;
        let take_scattered = |group: &mut Vec<UnitId>, candidates: &mut Vec<UnitId>| {
            let room = max.saturating_sub(candidates.len());
            // With little choice the oldest units go first; scattering would only delay them.
            if group.len() > room + room / 2 {
                group.sort_by_key(|unit| placement::scatter(host, now_ms, *unit));
            }
            candidates.extend(group.drain(..).take(room));
        };
        for &(Reverse(priority), id) in self.queue.iter().take(MAX_SCAN) {
            if candidates.len() >= max {
                break;
            }
            if group_priority != Some(priority) || group.len() >= window {
                take_scattered(&mut group, &mut candidates);
                group_priority = Some(priority);
            }
            if candidates.len() < max && eligible(&id) {
                group.push(id);
            }
        }
        take_scattered(&mut group, &mut candidates);
        // Hand the sample out in queue order (priority, then age), as hosts expect.
        candidates.sort_by_key(|unit| {
            let priority = self
                .units
                .get(unit)
                .and_then(|u| self.batches.get(&u.batch))
                .map_or(0, |b| b.priority);
            (Reverse(priority), *unit)
        });
        let policy = self.policy;
        let leased: Vec<ResultId> = candidates
            .into_iter()
            .filter_map(|unit| {
                let alone = trusted && !reputation::spot_check(&policy, unit);
                let replica = self.update_unit(unit, now_ms, |u| {
                    if alone {
                        u.run_alone();
                    }
                    u.assign(host, now_ms)
                })??;
                Some(ResultId { unit, replica })
            })
            .collect();
        if let Some(h) = self.hosts.get_mut(&host)
            && !leased.is_empty()
        {
            h.standing.fetched(leased.len() as u32, now_ms);
            self.dirty.hosts.insert(host);
        }
        leased
    }

    /// Replace at once the replicas leased to `host` before `asked_ms` that it does not list in
    /// `held` (everything it runs or has finished but not reported): the lease was lost in a
    /// crash or an unanswered fetch. Leases made at or after `asked_ms` may be in an answer the
    /// host has not read yet, so they are kept. Returns how many were replaced.
    pub fn reconcile(
        &mut self,
        host: HostId,
        held: &[ResultId],
        asked_ms: u64,
        now_ms: u64,
    ) -> usize {
        let held: BTreeSet<ResultId> = held.iter().copied().collect();
        let lost: Vec<ResultId> = self
            .leases
            .range(
                (
                    host,
                    ResultId {
                        unit: UnitId(0),
                        replica: 0,
                    },
                )..,
            )
            .take_while(|(h, _)| *h == host)
            .map(|&(_, id)| id)
            .filter(|id| {
                !held.contains(id)
                    && self.units.get(&id.unit).is_some_and(|u| {
                        u.replicas()
                            .get(id.replica as usize)
                            .is_some_and(|r| r.sent_ms < asked_ms)
                    })
            })
            .collect();
        let mut replaced = 0;
        for id in lost {
            if let Some(Some(events)) =
                self.update_unit(id.unit, now_ms, |u| u.lose(id.replica, host))
            {
                replaced += 1;
                self.apply_events(id.unit, &events, now_ms);
            }
        }
        replaced
    }

    /// Which of `in_flight` the host should abort.
    pub fn cancelled_among(&self, host: HostId, in_flight: &[ResultId]) -> Vec<ResultId> {
        in_flight
            .iter()
            .copied()
            .filter(|id| {
                !self
                    .units
                    .get(&id.unit)
                    .is_some_and(|u| u.still_wanted(id.replica, host))
            })
            .collect()
    }

    /// Time out leases whose deadline passed. Returns whether replicas were queued.
    pub fn expire(&mut self, now_ms: u64) -> bool {
        let before = self.unsent_replicas;
        let due: Vec<UnitId> = self
            .deadlines
            .iter()
            .take_while(|(d, _)| *d <= now_ms)
            .map(|(_, r)| r.unit)
            .collect();
        for unit in due {
            if let Some(events) = self.update_unit(unit, now_ms, |u| u.expire(now_ms)) {
                self.apply_events(unit, &events, now_ms);
            }
        }
        self.unsent_replicas > before
    }

    /// The earliest lease deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadlines.first().map(|(d, _)| *d)
    }
}

//! Hosts' standing in the world: what validated, invalid and failed results do to a host's
//! trust, quota and credit; quarantine and bans, and re-verifying a distrusted host's work.

use std::collections::{BTreeSet, VecDeque};

use musketeer_protocol::{HostId, TokenId, UnitId};

use super::World;
use crate::domain::lifecycle::{Event, ReplicaState, UnitStatus, Validation};
use crate::domain::reputation::{Policy, Refusal};

/// How long after its last replica was sent a dispute holds its hosts.
pub const DISPUTE_HOLD_MS: u64 = 5 * 60 * 1000;

/// Credit samples kept per app for the median.
const SAMPLES_KEPT: usize = 101;

/// The credit recently granted for an app's results, whose median bounds the credit of a result
/// that no other replica confirms (a lone host could otherwise claim any fuel up to the limit).
#[derive(Debug, Default, Clone)]
pub struct CreditSamples(VecDeque<u64>);

impl CreditSamples {
    fn push(&mut self, fuel: u64) {
        if self.0.len() == SAMPLES_KEPT {
            self.0.pop_front();
        }
        self.0.push_back(fuel);
    }

    fn median(&self) -> Option<u64> {
        let mut sorted: Vec<u64> = self.0.iter().copied().collect();
        sorted.sort_unstable();
        sorted.get(sorted.len() / 2).copied()
    }
}

/// What an admin asked for a host that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StandingError {
    /// No host has this id.
    #[error("no host with id {0}")]
    UnknownHost(HostId),
}

impl World {
    /// Set the trust and throttling settings (the default until called).
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// The trust and throttling settings.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Record the network a host connects from (see [`crate::domain::placement::NetworkRule`]).
    pub fn set_network(&mut self, host: HostId, network: Option<String>) {
        if let Some(h) = self.hosts.get_mut(&host)
            && h.origin.network != network
        {
            h.origin.network = network;
            self.dirty.hosts.insert(host);
        }
    }

    /// Record the user token a host registered with.
    pub fn set_owner(&mut self, host: HostId, owner: Option<TokenId>) {
        if let Some(h) = self.hosts.get_mut(&host)
            && h.origin.owner != owner
        {
            h.origin.owner = owner;
            self.dirty.hosts.insert(host);
        }
    }

    /// Why `host` gets no work now, if it gets none.
    pub fn fetch_refusal(&self, host: HostId, now_ms: u64) -> Option<Refusal> {
        let standing = &self.hosts.get(&host)?.standing;
        if let Err(refusal) = standing.allowance(&self.policy, now_ms) {
            return Some(refusal);
        }
        self.held_by_dispute(host, now_ms)
            .map(|unit| Refusal::Disputed { unit })
    }

    /// Settle disputed units that no further online host can join (every one already has a
    /// replica, or is kept apart by placement, quarantine or a ban) by plain plurality: with
    /// few hosts the margin could never be met. Returns how many were settled.
    pub fn settle_disputes(&mut self, now_ms: u64) -> usize {
        let disputed: BTreeSet<UnitId> = self.disputes.values().flatten().copied().collect();
        let mut settled = 0;
        for id in disputed {
            let Some(unit) = self.units.get(&id) else {
                continue;
            };
            if !unit.has_unsent() {
                continue;
            }
            let joinable = self.hosts.values().any(|h| {
                h.last_contact_ms + super::ONLINE_WINDOW_MS > now_ms
                    && h.standing.allowance(&self.policy, now_ms).is_ok()
                    && !unit.has_host(h.id)
                    && unit.replicas().iter().all(|r| {
                        r.host
                            .and_then(|other| self.hosts.get(&other))
                            .is_none_or(|other| !other.origin.conflicts_with(&h.origin))
                    })
            });
            if joinable {
                continue;
            }
            if let Some(events) = self.update_unit(id, now_ms, |u| u.settle_by_plurality()) {
                if self.units.get(&id).is_some_and(|u| !u.is_active()) {
                    settled += 1;
                }
                self.apply_events(id, &events, now_ms);
            }
        }
        settled
    }

    /// A unit where `host`'s result disagrees with another's and is being settled: the host
    /// waits, so that a fast liar cannot run ahead of the honest hosts that will catch it. A
    /// dispute no host has taken up for [`DISPUTE_HOLD_MS`] holds nobody (it may never be
    /// settled, e.g. with only two hosts online).
    pub(super) fn held_by_dispute(&self, host: HostId, now_ms: u64) -> Option<UnitId> {
        self.disputes.get(&host)?.iter().copied().find(|id| {
            self.units.get(id).is_some_and(|u| {
                let last_sent = u.replicas().iter().map(|r| r.sent_ms).max().unwrap_or(0);
                now_ms < last_sent.saturating_add(DISPUTE_HOLD_MS)
            })
        })
    }

    /// Ban a host: no more work, and its results re-verified as for a quarantine.
    pub fn ban(&mut self, host: HostId, reason: String, now_ms: u64) -> Result<(), StandingError> {
        let h = self
            .hosts
            .get_mut(&host)
            .ok_or(StandingError::UnknownHost(host))?;
        let first = h.standing.ban.is_none();
        h.standing.ban = Some(reason);
        self.dirty.hosts.insert(host);
        if first {
            self.distrust(host, now_ms);
        }
        Ok(())
    }

    /// Lift a host's ban and quarantine; it starts over as a new host (replicated, no streak).
    pub fn unban(&mut self, host: HostId) -> Result<(), StandingError> {
        let h = self
            .hosts
            .get_mut(&host)
            .ok_or(StandingError::UnknownHost(host))?;
        h.standing.ban = None;
        h.standing.quarantine = None;
        h.standing.consecutive_valid = 0;
        self.dirty.hosts.insert(host);
        Ok(())
    }

    /// Apply what happened to hosts' results in `unit`: counters, standing and credit. A host
    /// caught with an invalid result is quarantined and its work re-verified, which may catch
    /// others in turn.
    pub(super) fn apply_events(&mut self, unit: UnitId, events: &[Event], now_ms: u64) {
        let mut work: VecDeque<(UnitId, Event)> = events.iter().map(|e| (unit, *e)).collect();
        let mut caught = BTreeSet::new();
        while let Some((unit, event)) = work.pop_front() {
            let newly_caught = self.apply_event(unit, event, now_ms);
            if let Some(host) = newly_caught
                && caught.insert(host)
            {
                work.extend(self.distrust(host, now_ms));
            }
        }
    }

    /// One event; returns a host it newly quarantined.
    fn apply_event(&mut self, unit: UnitId, event: Event, now_ms: u64) -> Option<HostId> {
        let host = match event {
            Event::Validated { host, .. }
            | Event::Invalidated { host }
            | Event::TimedOut { host } => host,
        };
        let credit = match event {
            Event::Validated { fuel, .. } => self.bounded_credit(unit, fuel),
            _ => 0,
        };
        let policy = self.policy;
        let h = self.hosts.get_mut(&host)?;
        self.dirty.hosts.insert(host);
        match event {
            Event::Validated { .. } => {
                h.standing.valid(&policy);
                // A result that turned out right after all clears the quarantine it caused.
                if h.standing
                    .quarantine
                    .as_ref()
                    .is_some_and(|q| q.unit == unit)
                {
                    h.standing.quarantine = None;
                }
                if h.standing.quarantine.is_none() && h.standing.ban.is_none() {
                    h.credit += credit;
                }
                None
            }
            Event::Invalidated { .. } => {
                h.invalid += 1;
                let was_quarantined = h.standing.quarantine.is_some();
                h.standing.invalid(&policy, unit, now_ms);
                if !was_quarantined {
                    // Credit earned while lying is forfeit.
                    h.credit = 0;
                    Some(host)
                } else {
                    None
                }
            }
            Event::TimedOut { .. } => {
                h.failed += 1;
                h.standing.missed_deadline();
                None
            }
        }
    }

    /// The credit for a validated result of `unit` claimed at `fuel` (already the smallest
    /// agreeing claim): a result no other replica confirms earns at most the app's median.
    fn bounded_credit(&mut self, unit: UnitId, fuel: u64) -> u64 {
        let Some(u) = self.units.get(&unit) else {
            return 0;
        };
        let confirmations = u
            .replicas()
            .iter()
            .filter(|r| {
                matches!(
                    r.state,
                    ReplicaState::Success {
                        validation: Validation::Valid,
                        ..
                    }
                )
            })
            .count();
        let Some(app) = self.batches.get(&u.batch).map(|b| b.app.clone()) else {
            return 0;
        };
        let samples = self.credit_samples.entry(app).or_default();
        samples.push(fuel);
        if confirmations >= 2 {
            fuel
        } else {
            samples.median().map_or(fuel, |median| fuel.min(median))
        }
    }

    /// Re-verify `host`'s work: its leases and unvalidated results go back to the queue, and
    /// canonical results it agreed with are reopened without its vote. Returns what that did
    /// to other hosts.
    fn distrust(&mut self, host: HostId, now_ms: u64) -> Vec<(UnitId, Event)> {
        self.recall_done_by(host);
        let touched: Vec<UnitId> = self
            .units
            .values()
            .filter(|u| {
                matches!(u.status, UnitStatus::Active | UnitStatus::Done { .. }) && u.has_host(host)
            })
            .map(|u| u.id)
            .collect();
        let mut events = Vec::new();
        for unit in touched {
            let Some(params) = self
                .units
                .get(&unit)
                .and_then(|u| self.batches.get(&u.batch))
                .map(|b| b.params)
            else {
                continue;
            };
            if let Some(new) = self.update_unit(unit, now_ms, |u| u.distrust(host, params)) {
                events.extend(new.into_iter().map(|e| (unit, e)));
            }
        }
        events
    }
}

#[cfg(test)]
mod tests;

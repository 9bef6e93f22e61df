//! What reputation (`domain::reputation`, `world/standing.rs`) may do to a unit: the dispute
//! margin, plurality settling when no further host can join, adaptive replication (a trusted host
//! runs the unit alone) and distrust of a quarantined host's work.

use musketeer_protocol::HostId;

use super::{
    Event, Outcome, PackedParams, Params, Replica, ReplicaState, Unit, UnitStatus, Validation,
};

impl Unit {
    /// Agreeing results a group with `outcome` needs to decide: the quorum, plus one for each
    /// on-time output that differs (late ones were replaced, and errors are cheap to fake, so
    /// neither dissents). One replica per host, so k colluders win a disputed unit only against
    /// fewer than k - quorum + 1 honest hosts, however fast they are.
    pub(super) fn votes_needed(&self, outcome: Outcome<'_>) -> u32 {
        let dissent = self
            .replicas()
            .iter()
            .filter(|r| {
                !r.late && matches!(r.outcome(), Some(o @ Outcome::Output(_)) if o != outcome)
            })
            .count() as u32;
        self.params().min_quorum + dissent
    }

    /// Whether the unit is active with two different task outcomes (outputs or task errors).
    pub fn is_disputed(&self) -> bool {
        let mut outcomes = self.replicas().iter().filter_map(Replica::outcome);
        let first = outcomes.next();
        self.is_active() && outcomes.any(|o| Some(o) != first)
    }

    /// Decide a disputed unit without the margin, when no further host can join it (too few
    /// hosts online): the largest group of at least `min_quorum` wins, as in BOINC.
    pub fn settle_by_plurality(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        if self.is_disputed() {
            self.transition_with(&mut events, false);
        }
        events
    }

    /// Hosts whose unjudged outcome is part of a dispute on this unit.
    pub fn disputants(&self) -> impl Iterator<Item = HostId> + '_ {
        let disputed = self.is_disputed();
        self.replicas().iter().filter_map(move |r| {
            let unjudged = match r.state {
                ReplicaState::Success { validation, .. } => validation == Validation::Pending,
                _ => r.outcome().is_some(),
            };
            (disputed && unjudged).then_some(r.host).flatten()
        })
    }

    /// Let one trusted host run this unit alone (quorum 1, one replica), if no replica was
    /// sent yet. Returns whether it changed.
    pub fn run_alone(&mut self) -> bool {
        let fresh = self
            .replicas()
            .iter()
            .all(|r| r.state == ReplicaState::Unsent);
        if !self.is_active() || !fresh || self.params().min_quorum <= 1 {
            return false;
        }
        self.params = PackedParams::clamped(Params {
            min_quorum: 1,
            target_nresults: 1,
            ..self.params()
        });
        self.replicas_mut().truncate(1);
        true
    }

    /// Stop trusting `host`'s work on this unit: its leased and unvalidated replicas go back to
    /// the queue, and a canonical result it agreed with is reopened under `params` (the batch's
    /// own settings) without its vote. Events are only those new to other hosts.
    pub fn distrust(&mut self, host: HostId, params: Params) -> Vec<Event> {
        let mut events = Vec::new();
        let Some(idx) = self.replicas().iter().position(|r| r.host == Some(host)) else {
            return events;
        };
        match (&self.status, &self.replicas()[idx].state) {
            (UnitStatus::Active, ReplicaState::InProgress | ReplicaState::TimedOut)
            | (
                UnitStatus::Active,
                ReplicaState::Success {
                    validation: Validation::Pending,
                    ..
                },
            ) => {
                self.replicas_mut()[idx] = Replica::UNSENT;
            }
            (
                UnitStatus::Done { .. },
                ReplicaState::Success {
                    validation: Validation::Valid,
                    ..
                },
            ) => {
                // Its vote goes; the host stays recorded so that it never gets the unit again.
                self.replicas_mut()[idx].state = ReplicaState::NotNeeded;
                let before: Vec<(Option<HostId>, Validation)> = self
                    .replicas()
                    .iter()
                    .filter_map(|r| match r.state {
                        ReplicaState::Success { validation, .. } => Some((r.host, validation)),
                        _ => None,
                    })
                    .collect();
                for replica in self.replicas_mut() {
                    if let ReplicaState::Success { validation, .. } = &mut replica.state {
                        *validation = Validation::Pending;
                    }
                }
                self.status = UnitStatus::Active;
                self.params = PackedParams::clamped(params);
                self.transition(&mut events);
                // A host whose verdict stands keeps its counters and credit; only changed
                // verdicts are news.
                events.retain(|event| {
                    let (judged_host, now) = match *event {
                        Event::Validated { host, .. } => (host, Validation::Valid),
                        Event::Invalidated { host } => (host, Validation::Invalid),
                        Event::TimedOut { .. } => return true,
                    };
                    !before.contains(&(Some(judged_host), now))
                });
                return events;
            }
            _ => return events,
        }
        self.transition(&mut events);
        events
    }
}

//! The life of one work unit and its replicas, with BOINC semantics: replicas are leased to hosts
//! with a deadline, missed deadlines count as errors and are replaced, successful outputs are
//! compared byte for byte and the agreeing quorum becomes canonical. Tasks are deterministic, so
//! identical task errors reach a quorum too and fail the unit with the task's own words; failures
//! the host caused are retried instead (see [`is_task_outcome`]). Pure: no I/O, no clock (the
//! caller passes `now_ms`), no HTTP.

use musketeer_protocol::{
    Base64Bytes, BatchId, ErrorKind, HostId, Replication, UnitId, UnitInput, UnitState,
};
use serde::{Deserialize, Serialize};

pub use compact::Input;
use compact::{PackedParams, Replicas};

/// Resolved replication settings of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    /// Agreeing successful results needed for a canonical result.
    pub min_quorum: u32,
    /// Replicas created initially.
    pub target_nresults: u32,
    /// Host-caused errors (missed deadlines, client errors, wall-clock timeouts; see
    /// [`is_task_outcome`]) tolerated; one more fails the unit.
    pub max_error_results: u32,
    /// Replicas ever created; when they are used up without agreement the unit fails.
    pub max_total_results: u32,
    /// A replica's deadline after it is sent, milliseconds.
    pub delay_bound_ms: u64,
}

/// Largest accepted `max_total_results` (and so quorum and target).
pub const MAX_REPLICAS: u32 = 64;
/// Default replica deadline: one hour.
pub const DEFAULT_DELAY_BOUND_MS: u64 = 60 * 60 * 1000;
const MIN_DELAY_BOUND_MS: u64 = 100;
const MAX_DELAY_BOUND_MS: u64 = 30 * 24 * 60 * 60 * 1000;

/// Replication settings that cannot work together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// A field is outside its allowed range.
    #[error("{field} must be between {min} and {max}, got {value}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The given value.
        value: u64,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
}

impl Params {
    /// Fill in defaults and check that the settings can work.
    pub fn resolve(r: &Replication) -> Result<Params, ParamsError> {
        let check = |field, value: u64, min: u64, max: u64| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(ParamsError::OutOfRange {
                    field,
                    value,
                    min,
                    max,
                })
            }
        };
        let min_quorum = r.min_quorum.unwrap_or(1);
        check("min_quorum", min_quorum.into(), 1, MAX_REPLICAS.into())?;
        let target_nresults = r.target_nresults.unwrap_or(min_quorum);
        check(
            "target_nresults",
            target_nresults.into(),
            min_quorum.into(),
            MAX_REPLICAS.into(),
        )?;
        let max_error_results = r.max_error_results.unwrap_or(3);
        check(
            "max_error_results",
            max_error_results.into(),
            0,
            MAX_REPLICAS.into(),
        )?;
        let max_total_results = r
            .max_total_results
            .unwrap_or((target_nresults.max(min_quorum) + 5).min(MAX_REPLICAS));
        check(
            "max_total_results",
            max_total_results.into(),
            target_nresults.into(),
            MAX_REPLICAS.into(),
        )?;
        let delay_bound_ms = r.delay_bound_ms.unwrap_or(DEFAULT_DELAY_BOUND_MS);
        check(
            "delay_bound_ms",
            delay_bound_ms,
            MIN_DELAY_BOUND_MS,
            MAX_DELAY_BOUND_MS,
        )?;
        Ok(Params {
            min_quorum,
            target_nresults,
            max_error_results,
            max_total_results,
            delay_bound_ms,
        })
    }

    /// The settings in wire form.
    pub fn to_wire(self) -> Replication {
        Replication {
            min_quorum: Some(self.min_quorum),
            target_nresults: Some(self.target_nresults),
            max_error_results: Some(self.max_error_results),
            max_total_results: Some(self.max_total_results),
            delay_bound_ms: Some(self.delay_bound_ms),
        }
    }
}

/// Where a unit is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum UnitStatus {
    /// Still needs results.
    Active,
    /// Replica `canonical` holds the agreed output.
    Done {
        /// Index of the canonical replica.
        canonical: u32,
    },
    /// Gave up.
    Failed {
        /// Why, for the researcher.
        reason: String,
    },
    /// Its batch was cancelled.
    Cancelled,
}

/// Whether a successful result agrees with the canonical one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Validation {
    /// Not compared yet (no canonical result, or the unit ended without one).
    Pending,
    /// Equal to the canonical output.
    Valid,
    /// Different from the canonical output.
    Invalid,
}

/// One replica's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ReplicaState {
    /// Waiting for a host.
    Unsent,
    /// Leased to `Replica::host` until `Replica::deadline_ms`.
    InProgress,
    /// The deadline passed without a report; counts as an error unless a late success arrives.
    TimedOut,
    /// The host returned output.
    Success {
        /// The output bytes.
        output: Base64Bytes,
        /// Fuel consumed.
        fuel: u64,
        /// Wall-clock milliseconds.
        wall_ms: u64,
        /// Agreement with the canonical output.
        validation: Validation,
    },
    /// The host reported an error: a task outcome that counts toward a quorum like an output
    /// when [`is_task_outcome`] says so, otherwise a host-caused error.
    Error {
        /// Why.
        kind: ErrorKind,
        /// Details.
        message: String,
    },
    /// The unit ended before this replica was sent.
    NotNeeded,
    /// The host's fetch did not list it although it was leased (lost in a crash or an unanswered
    /// fetch); replaced at once. Not an error: the server may have lost the answer. A late report
    /// still counts, like one after a missed deadline.
    Lost,
}

/// One replica ("result") of a unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    /// The host it is or was leased to.
    pub host: Option<HostId>,
    /// When it was sent.
    pub sent_ms: u64,
    /// Report before this time.
    pub deadline_ms: u64,
    /// The host's last lines of log, if it reported.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stderr_tail: String,
    /// Reported after the replica timed out or was lost (and so after a replacement was made).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late: bool,
    /// Its state.
    #[serde(flatten)]
    pub state: ReplicaState,
}

impl Replica {
    /// A replica waiting for its first host.
    pub const UNSENT: Replica = Replica {
        host: None,
        sent_ms: 0,
        deadline_ms: 0,
        stderr_tail: String::new(),
        late: false,
        state: ReplicaState::Unsent,
    };

    fn is_live(&self) -> bool {
        matches!(self.state, ReplicaState::Unsent | ReplicaState::InProgress)
    }

    /// A failure the host caused: counts toward `max_error_results`, never toward a quorum.
    fn is_host_error(&self) -> bool {
        match &self.state {
            ReplicaState::TimedOut => true,
            ReplicaState::Error { kind, .. } => !is_task_outcome(*kind),
            _ => false,
        }
    }

    fn output(&self) -> Option<&[u8]> {
        match &self.state {
            ReplicaState::Success { output, .. } => Some(output.as_slice()),
            _ => None,
        }
    }

    /// What the task produced, if this replica reported a deterministic outcome.
    fn outcome(&self) -> Option<Outcome<'_>> {
        match &self.state {
            ReplicaState::Success { output, .. } => Some(Outcome::Output(output.as_slice())),
            ReplicaState::Error { kind, message } if is_task_outcome(*kind) => {
                Some(Outcome::TaskError(*kind, message))
            }
            _ => None,
        }
    }
}

/// A deterministic result of running the task: equal on every honest host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome<'a> {
    /// Output bytes.
    Output(&'a [u8]),
    /// A task error, by kind and message.
    TaskError(ErrorKind, &'a str),
}

/// Whether an error of this kind is the task's own deterministic outcome — the same module, input
/// and limits fail the same way on every honest host (fuel metering makes limits exact) — rather
/// than something the host caused. Task outcomes agree into a quorum like outputs; the others
/// (wall-clock timeout and stack overflow, which depend on the host's speed and architecture;
/// refused modules, client errors and unknown kinds) are retried on another host.
pub fn is_task_outcome(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::TaskError
            | ErrorKind::Trap
            | ErrorKind::FuelExhausted
            | ErrorKind::MemoryLimit
            | ErrorKind::OutputTooLarge
            // The sandbox's fixed instantiation budget, an out-of-bounds access, a panic and
            // `exit` are the module's own doing, equal on every backend.
            | ErrorKind::InstantiationFuelExhausted
            | ErrorKind::MemoryFault
            | ErrorKind::Panic
            | ErrorKind::Exit
    )
}

/// A host's report on one replica, as the lifecycle sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    /// Output returned.
    Success {
        /// The output bytes.
        output: Vec<u8>,
        /// Fuel consumed.
        fuel: u64,
        /// Wall-clock milliseconds.
        wall_ms: u64,
        /// Last log lines.
        stderr_tail: String,
    },
    /// The task or sandbox failed.
    Error {
        /// Why.
        kind: ErrorKind,
        /// Details.
        message: String,
        /// Last log lines.
        stderr_tail: String,
    },
    /// Given back unstarted.
    Returned,
}

/// Something that happened to a host's result, for its counters and credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The result agreed with the canonical one; `fuel` is the host's credit.
    Validated {
        /// Whose result.
        host: HostId,
        /// The credit granted: the smallest fuel any agreeing replica claimed (BOINC grants
        /// the same credit to every valid result), so a host that returns the right bytes
        /// cannot inflate its credit by claiming more fuel than an honest peer measured.
        fuel: u64,
    },
    /// The result (output or task error) disagreed with the agreed outcome.
    Invalidated {
        /// Whose result.
        host: HostId,
    },
    /// The host missed the deadline.
    TimedOut {
        /// Whose replica.
        host: HostId,
    },
}

/// What a report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportEffect {
    /// Recorded, with the events it caused.
    Accepted(Vec<Event>),
    /// Recorded earlier; nothing changed.
    Duplicate,
    /// Not recorded.
    Refused(&'static str),
}

/// A work unit: one input, its replicas and its status. Every queued unit is in memory, so it
/// is kept small (`lifecycle/compact.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    /// Its id.
    pub id: UnitId,
    /// Its batch.
    pub batch: BatchId,
    /// Replication settings.
    params: PackedParams,
    /// The input: JSON, or raw bytes (only capable clients get those).
    pub input: Input,
    /// Where it is in its life.
    pub status: UnitStatus,
    /// Replicas created so far, never more than `params.max_total_results`.
    replicas: Replicas,
}

/// A unit row's replication settings are beyond what [`Params::resolve`] allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("replication settings out of range: {0:?}")]
pub struct ParamsOutOfRange(pub Params);

impl Unit {
    /// A new unit with `target_nresults` unsent replicas. `params` come from
    /// [`Params::resolve`]; a field beyond its range there is clamped to it.
    pub fn new(id: UnitId, batch: BatchId, params: Params, input: impl Into<UnitInput>) -> Self {
        let params = PackedParams::clamped(params);
        Self {
            id,
            batch,
            params,
            input: input.into().into(),
            status: UnitStatus::Active,
            replicas: Replicas::Unsent(params.target_nresults()),
        }
    }

    /// A unit from its stored parts (a unit row).
    pub fn from_parts(
        id: UnitId,
        batch: BatchId,
        params: Params,
        input: Input,
        status: UnitStatus,
        replicas: Vec<Replica>,
    ) -> Result<Self, ParamsOutOfRange> {
        Ok(Self {
            id,
            batch,
            params: PackedParams::pack(params).ok_or(ParamsOutOfRange(params))?,
            input,
            status,
            replicas: Replicas::new(replicas),
        })
    }

    /// Replication settings.
    pub fn params(&self) -> Params {
        self.params.unpack()
    }

    /// Replicas created so far, never more than `params().max_total_results`.
    pub fn replicas(&self) -> &[Replica] {
        self.replicas.as_slice()
    }

    /// The replicas, to change them.
    fn replicas_mut(&mut self) -> &mut Vec<Replica> {
        self.replicas.to_mut()
    }

    /// The unit's state as researchers see it.
    pub fn state(&self) -> UnitState {
        match self.status {
            UnitStatus::Done { .. } => UnitState::Done,
            UnitStatus::Failed { .. } => UnitState::Failed,
            UnitStatus::Cancelled => UnitState::Cancelled,
            UnitStatus::Active
                if self
                    .replicas()
                    .iter()
                    .any(|r| r.state == ReplicaState::InProgress) =>
            {
                UnitState::Running
            }
            UnitStatus::Active => UnitState::Queued,
        }
    }

    /// Whether the unit still needs results.
    pub fn is_active(&self) -> bool {
        self.status == UnitStatus::Active
    }

    /// Whether a replica waits for a host.
    pub fn has_unsent(&self) -> bool {
        self.is_active()
            && self
                .replicas()
                .iter()
                .any(|r| r.state == ReplicaState::Unsent)
    }

    /// Whether `host` holds or held a replica of this unit.
    pub fn has_host(&self, host: HostId) -> bool {
        self.replicas().iter().any(|r| r.host == Some(host))
    }

    /// The canonical output, when the unit is done.
    pub fn canonical_output(&self) -> Option<&[u8]> {
        match self.status {
            UnitStatus::Done { canonical } => self.replicas().get(canonical as usize)?.output(),
            _ => None,
        }
    }

    /// Hosts running a replica now, with the replica index and deadline.
    pub fn leases(&self) -> impl Iterator<Item = (u32, HostId, u64)> + '_ {
        self.replicas()
            .iter()
            .enumerate()
            .filter_map(|(idx, r)| match (&r.state, r.host) {
                (ReplicaState::InProgress, Some(host)) => Some((idx as u32, host, r.deadline_ms)),
                _ => None,
            })
    }

    /// Lease an unsent replica to `host`, unless the host already has one of this unit.
    pub fn assign(&mut self, host: HostId, now_ms: u64) -> Option<u32> {
        if !self.is_active() || self.has_host(host) {
            return None;
        }
        let idx = self
            .replicas()
            .iter()
            .position(|r| r.state == ReplicaState::Unsent)?;
        let deadline_ms = now_ms.saturating_add(self.params().delay_bound_ms);
        let replica = &mut self.replicas_mut()[idx];
        replica.host = Some(host);
        replica.sent_ms = now_ms;
        replica.deadline_ms = deadline_ms;
        replica.state = ReplicaState::InProgress;
        Some(idx as u32)
    }

    /// Whether `host`'s replica `idx` should still be computed.
    pub fn still_wanted(&self, idx: u32, host: HostId) -> bool {
        self.is_active()
            && self.replicas().get(idx as usize).is_some_and(|r| {
                r.host == Some(host)
                    && matches!(
                        r.state,
                        ReplicaState::InProgress | ReplicaState::TimedOut | ReplicaState::Lost
                    )
            })
    }

    /// Record `host`'s report on replica `idx`. Idempotent: a second report changes nothing. A
    /// report after the deadline or after the lease was lost is accepted while it can still help
    /// (it counts like any replica, but never outvotes an on-time replica still running) and,
    /// once the unit is done, is only compared with the canonical result.
    pub fn report(&mut self, idx: u32, host: HostId, reported: Reported) -> ReportEffect {
        let Some(replica) = self.replicas_mut().get_mut(idx as usize) else {
            return ReportEffect::Refused("no such result");
        };
        if replica.host != Some(host) {
            return ReportEffect::Refused("result not assigned to this host");
        }
        let late = match replica.state {
            ReplicaState::InProgress => false,
            ReplicaState::TimedOut | ReplicaState::Lost => true,
            ReplicaState::Unsent => {
                return ReportEffect::Refused("result not assigned to this host");
            }
            _ => return ReportEffect::Duplicate,
        };
        match reported {
            Reported::Returned if !late => {
                *replica = Replica::UNSENT;
                if self.status != UnitStatus::Active {
                    self.replicas_mut()[idx as usize].state = ReplicaState::NotNeeded;
                }
            }
            // Given back after it was replaced: its replacement already runs; keep the record.
            Reported::Returned => return ReportEffect::Duplicate,
            Reported::Error {
                kind,
                message,
                stderr_tail,
            } => {
                replica.stderr_tail = stderr_tail;
                replica.late = late;
                replica.state = ReplicaState::Error { kind, message };
            }
            Reported::Success {
                output,
                fuel,
                wall_ms,
                stderr_tail,
            } => {
                replica.stderr_tail = stderr_tail;
                replica.late = late;
                replica.state = ReplicaState::Success {
                    output: Base64Bytes(output),
                    fuel,
                    wall_ms,
                    validation: Validation::Pending,
                };
            }
        }
        let mut events = Vec::new();
        if let UnitStatus::Done { canonical } = self.status {
            self.judge_against_canonical(idx as usize, canonical as usize, &mut events);
        }
        self.transition(&mut events);
        ReportEffect::Accepted(events)
    }

    /// Compare a result reported after the unit was done with the canonical output.
    fn judge_against_canonical(&mut self, idx: usize, canonical: usize, events: &mut Vec<Event>) {
        let granted = self.valid_fuel();
        let canonical_output = self.replicas()[canonical].output().map(<[u8]>::to_vec);
        let replica = &mut self.replicas_mut()[idx];
        let Some(host) = replica.host else { return };
        let is_task_outcome = replica.outcome().is_some();
        match &mut replica.state {
            ReplicaState::Success {
                output,
                fuel,
                validation,
                ..
            } => {
                if canonical_output.as_deref() == Some(output.as_slice()) {
                    *validation = Validation::Valid;
                    events.push(Event::Validated {
                        host,
                        fuel: granted.map_or(*fuel, |f| f.min(*fuel)),
                    });
                } else {
                    *validation = Validation::Invalid;
                    events.push(Event::Invalidated { host });
                }
            }
            // A task error where the task succeeded on a quorum of hosts is a wrong result.
            ReplicaState::Error { .. } if is_task_outcome => {
                events.push(Event::Invalidated { host });
            }
            _ => {}
        }
    }

    /// Time out replicas whose deadline is at or before `now_ms`.
    pub fn expire(&mut self, now_ms: u64) -> Vec<Event> {
        let mut events = Vec::new();
        for replica in self.replicas_mut() {
            if replica.state == ReplicaState::InProgress && replica.deadline_ms <= now_ms {
                replica.state = ReplicaState::TimedOut;
                if let Some(host) = replica.host {
                    events.push(Event::TimedOut { host });
                }
            }
        }
        if !events.is_empty() {
            self.transition(&mut events);
        }
        events
    }

    /// Mark `host`'s running replica `idx` lost (the host no longer holds it) and replace it.
    /// Returns `None` if that replica is not running on that host, else the events it caused.
    pub fn lose(&mut self, idx: u32, host: HostId) -> Option<Vec<Event>> {
        let replica = self.replicas_mut().get_mut(idx as usize)?;
        if replica.host != Some(host) || replica.state != ReplicaState::InProgress {
            return None;
        }
        replica.state = ReplicaState::Lost;
        let mut events = Vec::new();
        self.transition(&mut events);
        Some(events)
    }

    /// Stop the unit: unsent replicas are dropped, running ones are told to abort.
    pub fn cancel(&mut self) {
        if self.is_active() {
            self.status = UnitStatus::Cancelled;
            self.drop_unsent();
        }
    }

    /// Fail the unit for a reason outside its replicas (it stalled too long).
    pub fn give_up(&mut self, reason: String) {
        if self.is_active() {
            self.fail(reason);
        }
    }

    /// A short account of the results so far, for a stalled unit's reason.
    pub fn results_summary(&self) -> String {
        let (mut outputs, mut task_errors, mut other) = (0, 0, 0);
        for replica in self.replicas() {
            match replica.outcome() {
                Some(Outcome::Output(_)) => outputs += 1,
                Some(Outcome::TaskError(..)) => task_errors += 1,
                None if replica.host.is_some() && !replica.is_live() => other += 1,
                None => {}
            }
        }
        format!(
            "{outputs} output(s), {task_errors} task error(s) and {other} other failure(s) so \
             far, {} agreeing needed",
            self.params().min_quorum
        )
    }

    fn drop_unsent(&mut self) {
        for replica in self.replicas_mut() {
            if replica.state == ReplicaState::Unsent {
                replica.state = ReplicaState::NotNeeded;
            }
        }
    }

    /// Validate, then create replicas or fail the unit as needed (BOINC's validator and
    /// transitioner in one step). The rule (docs/protocol.md, "Outcomes and errors"):
    /// 1. Outputs and task errors ([`is_task_outcome`]: same kind and message) are outcomes; the
    ///    largest group of identical outcomes with `min_quorum` members decides: an output becomes
    ///    canonical, an error fails the unit with the task's words. Replicas that disagree with
    ///    the decision are invalid. A group of only late results does not decide while an on-time
    ///    replica still runs.
    /// 2. Otherwise more than `max_error_results` host-caused errors fail the unit.
    /// 3. Otherwise replicas are added, within `max_total_results`, until a quorum is possible;
    ///    when none is left to add and none runs, the unit fails.
    fn transition(&mut self, events: &mut Vec<Event>) {
        self.transition_with(events, true);
    }

    /// [`Unit::transition`], with or without the dispute margin (see `votes_needed`).
    fn transition_with(&mut self, events: &mut Vec<Event>, margin: bool) {
        if !self.is_active() {
            return;
        }
        let running = self
            .replicas()
            .iter()
            .any(|r| r.state == ReplicaState::InProgress);
        // Largest group of identical outcomes, and the largest one that may decide; ties go to
        // a group with an on-time result, then to the earliest replica. (Runs on every report,
        // so it scans in place.)
        let mut largest = 0u32;
        // The fewest further agreeing results any group needs to decide.
        let mut shortfall = self.params().min_quorum;
        let mut decisive: Option<(usize, (u32, bool))> = None; // (first index, (size, on time))
        let mut n_outcomes = 0u32;
        for (i, replica) in self.replicas().iter().enumerate() {
            let Some(outcome) = replica.outcome() else {
                continue;
            };
            n_outcomes += 1;
            let group = self
                .replicas()
                .iter()
                .filter(|r| r.outcome() == Some(outcome));
            let (size, on_time) =
                group.fold((0u32, false), |(n, on_time), r| (n + 1, on_time || !r.late));
            largest = largest.max(size);
            let needed = if margin {
                self.votes_needed(outcome)
            } else {
                self.params().min_quorum
            };
            shortfall = shortfall.min(needed.saturating_sub(size));
            let may_decide = size >= needed && (on_time || !running);
            if may_decide && decisive.is_none_or(|(_, best)| (size, on_time) > best) {
                decisive = Some((i, (size, on_time)));
            }
        }
        if let Some((first, (size, _))) = decisive {
            let Some(outcome) = self.replicas()[first].outcome() else {
                return;
            };
            // The canonical replica is an on-time one whenever the group has one.
            let representative = self
                .replicas()
                .iter()
                .position(|r| !r.late && r.outcome() == Some(outcome))
                .unwrap_or(first);
            match outcome {
                Outcome::Output(_) => self.accept_canonical(representative, events),
                Outcome::TaskError(kind, message) => {
                    let hosts = if size == 1 { "host" } else { "hosts" };
                    let reason = format!(
                        "the task failed with {}: {message} (the same error on {size} {hosts})",
                        kind_name(kind)
                    );
                    self.reject_all_but(representative, events);
                    self.fail(reason);
                }
            }
            return;
        }
        let n_errors = self.replicas().iter().filter(|r| r.is_host_error()).count() as u32;
        if n_errors > self.params().max_error_results {
            let last = self.replicas().iter().rev().find_map(|r| match &r.state {
                ReplicaState::Error { kind, message } if r.is_host_error() => {
                    Some(format!("{}: {message}", kind_name(*kind)))
                }
                _ => None,
            });
            let reason = format!(
                "too many errors: {n_errors} (at most {} allowed); last error: {}",
                self.params().max_error_results,
                last.unwrap_or_else(|| "deadline missed".into())
            );
            self.fail(reason);
            return;
        }
        let live = self.replicas().iter().filter(|r| r.is_live()).count() as u32;
        let need = self
            .params()
            .target_nresults
            .saturating_sub(live + n_outcomes)
            .max(shortfall.saturating_sub(live));
        let room = self
            .params()
            .max_total_results
            .saturating_sub(self.replicas().len() as u32);
        let n_new = need.min(room);
        self.replicas_mut()
            .extend((0..n_new).map(|_| Replica::UNSENT));
        if live + n_new == 0 {
            let reason = if n_outcomes > 0 {
                format!(
                    "no agreement: {n_outcomes} results but at most {largest} agree \
                     (quorum {}); all {} replicas used",
                    self.params().min_quorum,
                    self.params().max_total_results
                )
            } else {
                format!(
                    "all {} replicas used without a result",
                    self.params().max_total_results
                )
            };
            self.fail(reason);
        }
    }

    /// Mark every result that disagrees with replica `agreed` invalid (the unit failed with
    /// the task error `agreed` holds).
    fn reject_all_but(&mut self, agreed: usize, events: &mut Vec<Event>) {
        let Some(outcome) = self.replicas()[agreed].outcome() else {
            return;
        };
        let disagreeing: Vec<usize> = self
            .replicas()
            .iter()
            .enumerate()
            .filter(|(_, r)| r.outcome().is_some_and(|o| o != outcome))
            .map(|(i, _)| i)
            .collect();
        for i in disagreeing {
            let replica = &mut self.replicas_mut()[i];
            if let ReplicaState::Success { validation, .. } = &mut replica.state {
                *validation = Validation::Invalid;
            }
            if let Some(host) = replica.host {
                events.push(Event::Invalidated { host });
            }
        }
    }

    /// The smallest fuel among replicas already validated.
    fn valid_fuel(&self) -> Option<u64> {
        self.replicas()
            .iter()
            .filter_map(|r| match r.state {
                ReplicaState::Success {
                    fuel,
                    validation: Validation::Valid,
                    ..
                } => Some(fuel),
                _ => None,
            })
            .min()
    }

    fn accept_canonical(&mut self, canonical: usize, events: &mut Vec<Event>) {
        let agreeing_fuel = |r: &Replica| match r.state {
            ReplicaState::Success { fuel, .. } => Some(fuel),
            _ => None,
        };
        let granted = self
            .replicas()
            .iter()
            .filter(|r| r.output() == self.replicas()[canonical].output())
            .filter_map(agreeing_fuel)
            .min()
            .unwrap_or(0);
        for i in 0..self.replicas().len() {
            let agrees = self.replicas()[i].output() == self.replicas()[canonical].output();
            let replica = &mut self.replicas_mut()[i];
            let host = replica.host;
            // A task error where the task succeeded on a quorum of hosts is a wrong result.
            if let (ReplicaState::Error { kind, .. }, Some(host)) = (&replica.state, host)
                && is_task_outcome(*kind)
            {
                events.push(Event::Invalidated { host });
            }
            if let ReplicaState::Success { validation, .. } = &mut replica.state
                && let Some(host) = host
            {
                if agrees {
                    *validation = Validation::Valid;
                    events.push(Event::Validated {
                        host,
                        fuel: granted,
                    });
                } else {
                    *validation = Validation::Invalid;
                    events.push(Event::Invalidated { host });
                }
            }
        }
        self.status = UnitStatus::Done {
            canonical: canonical as u32,
        };
        self.drop_unsent();
    }

    fn fail(&mut self, reason: String) {
        self.status = UnitStatus::Failed { reason };
        self.drop_unsent();
    }
}

/// The wire name of an error kind.
pub fn kind_name(kind: ErrorKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "other".into())
}

mod compact;
mod reputation_hooks;
#[cfg(test)]
mod tests;

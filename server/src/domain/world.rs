//! The scheduler's in-memory world: every batch, host and app version, the units in flight,
//! and the indexes that make fetch, expiry and counters cheap. The store persists the rows this
//! module marks dirty; on start the world is rebuilt from them. Finished units leave memory once
//! their rows are durable ([`World::evict_settled`]) and are read back from the store's
//! [`UnitArchive`] when asked for (see `archive`). Callers pass the time.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use musketeer_protocol::{
    Assignment, Base64Bytes, Base64Ref, BatchId, BatchState, BatchStatus, ErrorKind, HostId,
    HostPlatform, HostSummary, Limits, ReportStatus, ResultCounts, ResultId, Stats, TokenId,
    UnitCounts, UnitId, UnitInput, UnitState, guest_text,
};
use semver::Version;
use serde::{Deserialize, Serialize};

use super::lifecycle::{Params, ReplicaState, ReportEffect, Reported, Unit, Validation};
use super::placement::{self, Origin};
use super::reputation::{self, Policy, Standing};
use crate::store::UnitArchive;

mod archive;
mod batch_share;
mod delete;
mod leases;
mod retention;
mod stall;
mod standing;
pub use delete::{DeleteError, DeletedBatch, NextIds};
pub use leases::HostAccepts;
pub use standing::{CreditSamples, StandingError};

/// A host counts as online if it made contact within this time.
pub const ONLINE_WINDOW_MS: u64 = 2 * 60 * 1000;

/// The per-task memory limits of the online hosts, to count those a batch's tasks fit on.
#[derive(Debug, Default)]
pub struct OnlineMemoryLimits {
    /// Hosts that set no limit.
    uncapped: u64,
    /// The others' limits, ascending.
    capped: Vec<u64>,
}

impl OnlineMemoryLimits {
    /// How many of the hosts admit tasks signed with a `needed`-byte memory limit.
    pub fn admitting(&self, needed: u64) -> u64 {
        let below = self.capped.partition_point(|&cap| cap < needed);
        self.uncapped + (self.capped.len() - below) as u64
    }
}
/// Cap on queue entries scanned for one fetch (hosts that already hold many queued units).
const MAX_SCAN: usize = 10_000;
const MINUTES_KEPT: usize = 60;

/// A submitted batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// Its id.
    pub id: BatchId,
    /// The token that submitted it.
    pub owner: TokenId,
    /// Its app.
    pub app: String,
    /// Its app version.
    pub version: Version,
    /// A note.
    pub label: Option<String>,
    /// When it was submitted.
    pub created_ms: u64,
    /// Its first unit; the others follow without gaps.
    pub first_unit: UnitId,
    /// How many units it has.
    pub n_units: u64,
    /// Replication settings of its units.
    pub params: Params,
    /// Higher first.
    pub priority: i32,
    /// Cancelled by its owner or an admin.
    pub cancelled: bool,
    /// When it was first committed finished or cancelled (Unix ms), the start of its
    /// retention; `None` while it runs. Schema 3 added it; migrating a schema-2 store stamps
    /// batches already finished with the time of the migration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    /// Units by state (derived, not stored).
    #[serde(skip)]
    pub counts: UnitCounts,
    /// Its finished units in the order they finished, for `results?after=` (derived, not
    /// stored: a restart rebuilds it in unit id order).
    #[serde(skip)]
    pub finish_order: Vec<UnitId>,
    /// Its units' replicas by outcome (derived, not stored), so that deleting the batch can
    /// take them out of the server's counters without reading its units back.
    #[serde(skip)]
    pub results: ResultCounts,
    /// Its replicas that ended without output: error reports, missed deadlines, lost leases
    /// (derived, not stored), so that the failures view skips batches without any.
    #[serde(skip)]
    pub failed_replicas: u64,
}

impl Batch {
    /// Its units' ids.
    pub fn unit_ids(&self) -> impl Iterator<Item = UnitId> + use<> {
        (self.first_unit.0..self.first_unit.0 + self.n_units).map(UnitId)
    }

    /// Its status in wire form.
    pub fn status(&self) -> BatchStatus {
        let state = if self.cancelled {
            BatchState::Cancelled
        } else if self.counts.finished() == self.n_units {
            BatchState::Finished
        } else {
            BatchState::Running
        };
        BatchStatus {
            id: self.id,
            app: self.app.clone(),
            version: self.version.clone(),
            label: self.label.clone(),
            state,
            created_ms: self.created_ms,
            first_unit: self.first_unit,
            counts: self.counts,
            progress: if self.n_units == 0 {
                1.0
            } else {
                self.counts.finished() as f64 / self.n_units as f64
            },
            replication: self.params.to_wire(),
            priority: self.priority,
            hosts_able: None,
            stalled: 0,
            stalled_reason: None,
        }
    }
}

/// A registered volunteer host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// Its id.
    pub id: HostId,
    /// Display name.
    pub name: String,
    /// sha256 of its token, hex.
    pub token_hash: String,
    /// Platform as last reported.
    pub platform: Option<HostPlatform>,
    /// When it registered.
    pub registered_ms: u64,
    /// Last fetch or report (stored at most once a minute).
    pub last_contact_ms: u64,
    /// Successful results returned.
    pub succeeded: u64,
    /// Errors and missed deadlines.
    pub failed: u64,
    /// Results that disagreed with the canonical one.
    pub invalid: u64,
    /// Fuel of validated results.
    pub credit: u64,
    /// Trust, quota, quarantine and ban.
    #[serde(default)]
    pub standing: Standing,
    /// Its network and owner, for placement.
    #[serde(default)]
    pub origin: Origin,
    /// Replicas running now (derived, not stored).
    #[serde(skip)]
    pub running: u64,
}

/// A published app version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppVersion {
    /// The app.
    pub app: String,
    /// The version.
    pub version: Version,
    /// The signing key.
    pub key_id: String,
    /// Module sha256, hex.
    pub module_sha256: String,
    /// Module size.
    pub module_size: u64,
    /// Allowed HTTP targets.
    pub http_allow: Vec<String>,
    /// Limits.
    pub limits: Limits,
    /// The signed manifest document, as published.
    pub signed_manifest: Box<serde_json::value::RawValue>,
    /// When it was published.
    pub published_ms: u64,
}

impl AppVersion {
    /// Wire form.
    pub fn info(&self) -> musketeer_protocol::AppVersionInfo {
        musketeer_protocol::AppVersionInfo {
            app: self.app.clone(),
            version: self.version.clone(),
            key_id: self.key_id.clone(),
            module_sha256: self.module_sha256.clone(),
            module_size: self.module_size,
            http_allow: self.http_allow.clone(),
            limits: self.limits,
            published_ms: self.published_ms,
            // Published manifests were verified, so they parse; the field is for display only.
            input: musketeer_signing_keys::SignedManifest::from_json(self.signed_manifest.get())
                .ok()
                .and_then(|signed| signed.manifest.input)
                .map(|input| musketeer_protocol::AppInput {
                    description: input.description,
                    example: input.example,
                }),
        }
    }
}

/// [`Assignment`] borrowed from the world (same fields, same order, same JSON).
#[derive(Debug, Clone, Serialize)]
pub struct AssignmentView<'a> {
    /// The replica's id.
    pub result_id: ResultId,
    /// Its unit.
    pub unit_id: UnitId,
    /// The app.
    pub app: &'a str,
    /// The app version.
    pub version: &'a Version,
    /// Module sha256, hex.
    pub module_sha256: &'a str,
    /// Module size.
    pub module_size: u64,
    /// The signed manifest as published.
    pub signed_manifest: &'a serde_json::value::RawValue,
    /// The input of a JSON unit, as its stored compact text; absent for a raw one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<&'a serde_json::value::RawValue>,
    /// The input of a raw unit, base64 (as [`Assignment::input_base64`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_base64: Option<Base64Ref<'a>>,
    /// Report before this time.
    pub deadline_ms: u64,
    /// Limits.
    pub limits: Limits,
}

/// Rows changed since the last `take_dirty`, to be persisted.
#[derive(Debug, Default)]
pub struct Dirty {
    /// Changed units.
    pub units: BTreeSet<UnitId>,
    /// Changed batches.
    pub batches: BTreeSet<BatchId>,
    /// Changed hosts.
    pub hosts: BTreeSet<HostId>,
    /// Newly published app versions.
    pub apps: Vec<(String, Version)>,
    /// The per-minute history of done units changed.
    pub done_per_minute: bool,
    /// Deleted batches, whose batch and unit rows go, with [`World::next_ids`] stored.
    pub deleted: Vec<DeletedBatch>,
}

impl Dirty {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
            && self.batches.is_empty()
            && self.hosts.is_empty()
            && self.apps.is_empty()
            && !self.done_per_minute
            && self.deleted.is_empty()
    }
}

/// A new batch as validated by the caller.
#[derive(Debug, Clone)]
pub struct NewBatch {
    /// Submitting token.
    pub owner: TokenId,
    /// App.
    pub app: String,
    /// App version (must be published).
    pub version: Version,
    /// Inputs, one unit each.
    pub inputs: Vec<UnitInput>,
    /// Replication settings.
    pub params: Params,
    /// Priority.
    pub priority: i32,
    /// Note.
    pub label: Option<String>,
}

/// Everything the scheduler knows.
#[derive(Debug, Default)]
pub struct World {
    /// The units in memory, boxed: map nodes stay small, so their spare slots cost 8 bytes
    /// rather than a whole unit each.
    units: BTreeMap<UnitId, Box<Unit>>,
    batches: BTreeMap<BatchId, Batch>,
    hosts: BTreeMap<HostId, Host>,
    apps: BTreeMap<String, BTreeMap<Version, AppVersion>>,
    /// Units with an unsent replica, highest priority and oldest first.
    queue: BTreeSet<(Reverse<i32>, UnitId)>,
    /// Running replicas by deadline.
    deadlines: BTreeSet<(u64, ResultId)>,
    /// Running replicas by host, to reconcile a host's leases with what it holds.
    leases: BTreeSet<(HostId, ResultId)>,
    /// Replicas each host holds or returned, per batch (derived), for the batch share bound.
    batch_shares: BTreeMap<(BatchId, HostId), u64>,
    counts: UnitCounts,
    results: ResultCounts,
    unsent_replicas: u64,
    /// (minute since epoch, units done in it), last hour.
    done_per_minute: Vec<(u64, u64)>,
    /// Units stalled (see [`World::sweep_stalled`]) and since when; kept in memory only, so the
    /// stall timeout starts again after a restart.
    stalled: BTreeMap<UnitId, u64>,
    /// When stalled units were last looked for.
    last_stall_sweep_ms: Option<u64>,
    /// Ids below these were handed out (and may belong to deleted batches).
    id_floor: NextIds,
    /// Trust and throttling settings.
    policy: Policy,
    /// Recent credit granted per app, for results no replica confirms.
    credit_samples: BTreeMap<String, CreditSamples>,
    /// Per host, active units where its unvalidated result disagrees with another's (derived).
    disputes: BTreeMap<HostId, BTreeSet<UnitId>>,
    /// Names this rebuild of the batches' `finish_order`: a results cursor from another one
    /// (before a restart) reads from the start again.
    finish_epoch: u64,
    dirty: Dirty,
    /// Where units that left memory are read back from (none: every unit stays in memory).
    archive: Option<Arc<dyn UnitArchive>>,
    /// Units [settled](archive::is_settled) since the last [`World::seal_settled`].
    settled: Vec<UnitId>,
    /// Settled units and the writer ticket of the commit holding their last change.
    awaiting_commit: std::collections::HashMap<UnitId, u64>,
    /// (writer ticket, units sealed with it), oldest first.
    evictable: std::collections::VecDeque<(u64, Vec<UnitId>)>,
}

impl World {
    /// Rebuild the world from stored rows. `done_per_minute` is the stored history of
    /// [`World::done_per_minute`]; minutes older than an hour are not shown and are dropped later.
    pub fn restore(
        units: impl IntoIterator<Item = Unit>,
        batches: impl IntoIterator<Item = Batch>,
        hosts: impl IntoIterator<Item = Host>,
        apps: impl IntoIterator<Item = AppVersion>,
        done_per_minute: impl IntoIterator<Item = (u64, u64)>,
    ) -> Self {
        let mut world = World {
            finish_epoch: rand_core::RngCore::next_u64(&mut rand_core::OsRng),
            ..World::default()
        };
        for (minute, done) in done_per_minute {
            // One entry per minute, whatever the caller passed.
            match world.done_per_minute.iter_mut().find(|(m, _)| *m == minute) {
                Some((_, n)) => *n += done,
                None => world.done_per_minute.push((minute, done)),
            }
        }
        for app in apps {
            world
                .apps
                .entry(app.app.clone())
                .or_default()
                .insert(app.version.clone(), app);
        }
        // Derived fields are recomputed by `index`, whatever the rows carried.
        world.batches = batches
            .into_iter()
            .map(|b| {
                (
                    b.id,
                    Batch {
                        counts: UnitCounts::default(),
                        finish_order: Vec::new(),
                        results: ResultCounts::default(),
                        failed_replicas: 0,
                        ..b
                    },
                )
            })
            .collect();
        world.hosts = hosts
            .into_iter()
            .map(|h| (h.id, Host { running: 0, ..h }))
            .collect();
        for unit in units {
            world.restore_unit(unit);
        }
        world
    }

    /// Add a stored unit to a world being rebuilt (after [`World::restore`], in unit id
    /// order): it counts in every index and counter, and stays in memory only if it is not
    /// [settled](archive::is_settled) (a settled unit is read back from the archive).
    pub fn restore_unit(&mut self, unit: Unit) {
        let id = unit.id;
        let finished = is_final(unit.state());
        let settled = archive::is_settled(&unit);
        if let Some(batch) = self.batches.get_mut(&unit.batch)
            && finished
        {
            batch.finish_order.push(id);
        }
        self.units.insert(id, Box::new(unit));
        self.index(id, true);
        if settled && self.archive.is_some() {
            self.units.remove(&id);
        }
    }

    /// The current rebuild of the batches' finishing order (see [`Batch::finish_order`]).
    pub fn finish_epoch(&self) -> u64 {
        self.finish_epoch
    }

    /// The rows changed since the last call.
    pub fn take_dirty(&mut self) -> Dirty {
        std::mem::take(&mut self.dirty)
    }

    /// (minute since the Unix epoch, units done in it) for about the last hour, in no particular
    /// order: the history behind [`Stats::done_per_minute`], as the store keeps it.
    pub fn done_per_minute(&self) -> &[(u64, u64)] {
        &self.done_per_minute
    }

    /// A unit.
    pub fn unit(&self, id: UnitId) -> Option<&Unit> {
        self.units.get(&id).map(|unit| &**unit)
    }

    /// A batch.
    pub fn batch(&self, id: BatchId) -> Option<&Batch> {
        self.batches.get(&id)
    }

    /// Every batch, newest first.
    pub fn batches(&self) -> impl Iterator<Item = &Batch> {
        self.batches.values().rev()
    }

    /// A host.
    pub fn host(&self, id: HostId) -> Option<&Host> {
        self.hosts.get(&id)
    }

    /// Every host.
    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        self.hosts.values()
    }

    /// An app version.
    pub fn app_version(&self, app: &str, version: &Version) -> Option<&AppVersion> {
        self.apps.get(app)?.get(version)
    }

    /// The highest published version of an app.
    pub fn current_version(&self, app: &str) -> Option<&AppVersion> {
        self.apps.get(app)?.values().next_back()
    }

    /// Every app version, by app then version.
    pub fn app_versions(&self) -> impl Iterator<Item = &AppVersion> {
        self.apps.values().flat_map(BTreeMap::values)
    }

    /// Record a published version. The caller checked that it is higher than the current one.
    pub fn publish(&mut self, app: AppVersion) {
        self.dirty.apps.push((app.app.clone(), app.version.clone()));
        self.apps
            .entry(app.app.clone())
            .or_default()
            .insert(app.version.clone(), app);
    }

    /// Register a host.
    pub fn register_host(
        &mut self,
        name: String,
        token_hash: String,
        platform: Option<HostPlatform>,
        now_ms: u64,
    ) -> HostId {
        let id = HostId(self.hosts.keys().next_back().map_or(1, |h| h.0 + 1));
        let host = Host {
            id,
            name,
            token_hash,
            platform,
            registered_ms: now_ms,
            last_contact_ms: now_ms,
            succeeded: 0,
            failed: 0,
            invalid: 0,
            credit: 0,
            standing: Standing::default(),
            origin: Origin::default(),
            running: 0,
        };
        self.hosts.insert(id, host);
        self.dirty.hosts.insert(id);
        id
    }

    /// Note that a host made contact, with its current platform.
    pub fn touch_host(&mut self, id: HostId, platform: Option<&HostPlatform>, now_ms: u64) {
        let Some(host) = self.hosts.get_mut(&id) else {
            return;
        };
        let changed = platform.is_some_and(|p| host.platform.as_ref() != Some(p));
        if changed {
            host.platform = platform.cloned();
        }
        // Contact times are stored coarsely so that polling does not rewrite the row each time.
        if changed || now_ms >= host.last_contact_ms + 60_000 {
            self.dirty.hosts.insert(id);
        }
        host.last_contact_ms = host.last_contact_ms.max(now_ms);
    }

    /// Create a batch and its units.
    pub fn submit(&mut self, new: NewBatch, now_ms: u64) -> &Batch {
        let NextIds {
            batch: id,
            unit: first_unit,
        } = self.next_ids();
        let batch = Batch {
            id,
            owner: new.owner,
            app: new.app,
            version: new.version,
            label: new.label,
            created_ms: now_ms,
            first_unit,
            n_units: new.inputs.len() as u64,
            params: new.params,
            priority: new.priority,
            cancelled: false,
            finished_ms: None,
            counts: UnitCounts::default(),
            finish_order: Vec::new(),
            results: ResultCounts::default(),
            failed_replicas: 0,
        };
        self.batches.insert(id, batch);
        self.dirty.batches.insert(id);
        for (offset, input) in new.inputs.into_iter().enumerate() {
            let unit_id = UnitId(first_unit.0 + offset as u64);
            self.units
                .insert(unit_id, Box::new(Unit::new(unit_id, id, new.params, input)));
            self.index(unit_id, true);
            self.dirty.units.insert(unit_id);
        }
        &self.batches[&id]
    }

    /// The memory limit a batch's tasks are signed with (0 if its version is unknown).
    fn memory_needed(&self, batch: &Batch) -> u64 {
        self.app_version(&batch.app, &batch.version)
            .map_or(0, |version| version.limits.memory_bytes)
    }

    /// The memory limits of the hosts online at `now_ms`, gathered once for any number of
    /// [`World::batch_status`] calls (a batch list asks for every batch).
    pub fn online_memory_limits(&self, now_ms: u64) -> OnlineMemoryLimits {
        let mut limits = OnlineMemoryLimits::default();
        for host in self.hosts.values() {
            if host.last_contact_ms + ONLINE_WINDOW_MS <= now_ms {
                continue;
            }
            match host.platform.as_ref().and_then(|p| p.max_task_memory) {
                Some(cap) => limits.capped.push(cap),
                None => limits.uncapped += 1,
            }
        }
        limits.capped.sort_unstable();
        limits
    }

    /// A batch's status, with how many online hosts could take its waiting units and which of
    /// them are stalled.
    pub fn batch_status(&self, batch: &Batch, online: &OnlineMemoryLimits) -> BatchStatus {
        let mut status = batch.status();
        if status.state == BatchState::Running && status.counts.queued > 0 {
            let able = online.admitting(self.memory_needed(batch));
            status.hosts_able = Some(able);
            let end = UnitId(batch.first_unit.0 + batch.n_units);
            let mut stalled = self.stalled.range(batch.first_unit..end);
            if let Some((&first, _)) = stalled.next() {
                status.stalled = 1 + stalled.count() as u64;
                status.stalled_reason = self.stalled_reason(first, online);
            }
        }
        status
    }

    /// The assignment for a leased replica.
    pub fn assignment(&self, id: ResultId) -> Option<Assignment> {
        let unit = self.units.get(&id.unit)?;
        let replica = unit.replicas().get(id.replica as usize)?;
        let batch = self.batches.get(&unit.batch)?;
        let app = self.app_version(&batch.app, &batch.version)?;
        Some(Assignment {
            result_id: id,
            unit_id: id.unit,
            app: app.app.clone(),
            version: app.version.clone(),
            module_sha256: app.module_sha256.clone(),
            module_size: app.module_size,
            signed_manifest: app.signed_manifest.clone(),
            input: unit.input.json_value().unwrap_or_default(),
            input_base64: unit
                .input
                .raw_bytes()
                .map(|bytes| Base64Bytes(bytes.to_vec())),
            deadline_ms: replica.deadline_ms,
            limits: app.limits,
        })
    }

    /// The assignment for a leased replica, borrowed from the world: serializes exactly like
    /// [`Assignment`] without copying the manifest, input and strings of every unit.
    pub fn assignment_view(&self, id: ResultId) -> Option<AssignmentView<'_>> {
        let unit = self.units.get(&id.unit)?;
        let replica = unit.replicas().get(id.replica as usize)?;
        let batch = self.batches.get(&unit.batch)?;
        let app = self.app_version(&batch.app, &batch.version)?;
        Some(AssignmentView {
            result_id: id,
            unit_id: id.unit,
            app: &app.app,
            version: &app.version,
            module_sha256: &app.module_sha256,
            module_size: app.module_size,
            signed_manifest: &app.signed_manifest,
            input: unit.input.json_raw(),
            input_base64: unit.input.raw_bytes().map(Base64Ref),
            deadline_ms: replica.deadline_ms,
            limits: app.limits,
        })
    }

    /// Record a host's report on one replica.
    pub fn report(
        &mut self,
        host: HostId,
        id: ResultId,
        reported: Reported,
        now_ms: u64,
    ) -> (ReportStatus, Option<&'static str>) {
        // A late report may concern a finished unit that left memory.
        self.recall(id.unit);
        let reported = self.within_limits(id.unit, reported);
        let counter = match &reported {
            Reported::Success { .. } => Some(true),
            Reported::Error { .. } => Some(false),
            Reported::Returned => None,
        };
        let Some(effect) =
            self.update_unit(id.unit, now_ms, |u| u.report(id.replica, host, reported))
        else {
            return (ReportStatus::Refused, Some("no such result"));
        };
        match effect {
            ReportEffect::Accepted(events) => {
                if let Some(h) = self.hosts.get_mut(&host) {
                    match counter {
                        Some(true) => h.succeeded += 1,
                        Some(false) => {
                            h.failed += 1;
                            h.standing.error(&self.policy);
                        }
                        None => {}
                    }
                    self.dirty.hosts.insert(host);
                }
                self.apply_events(id.unit, &events, now_ms);
                (ReportStatus::Accepted, None)
            }
            ReportEffect::Duplicate => (ReportStatus::Duplicate, None),
            ReportEffect::Refused(reason) => (ReportStatus::Refused, Some(reason)),
        }
    }

    /// An honest client never reports a success beyond its manifest's limits; one that does is
    /// recorded as a client error, so that it cannot store oversized output or claim more fuel
    /// (credit) than the author allowed. A client error is host-caused: it is retried elsewhere
    /// and never agrees into a quorum that would fail the unit.
    ///
    /// Guest-written text (error message, stderr tail) is escaped and capped here, before it
    /// is stored, so that no module can forge lines in a log or a terminal that shows it.
    fn within_limits(&self, unit: UnitId, reported: Reported) -> Reported {
        // The API keeps 8 KiB of each text; escaping may at most quadruple it (`\x1b`).
        const GUEST_TEXT_MAX: usize = 32 * 1024;
        let reported = match reported {
            Reported::Success {
                output,
                fuel,
                wall_ms,
                stderr_tail,
            } => Reported::Success {
                output,
                fuel,
                wall_ms,
                stderr_tail: guest_text::sanitize_lines(&stderr_tail, GUEST_TEXT_MAX),
            },
            Reported::Error {
                kind,
                message,
                stderr_tail,
            } => Reported::Error {
                kind,
                message: guest_text::sanitize(&message, GUEST_TEXT_MAX),
                stderr_tail: guest_text::sanitize_lines(&stderr_tail, GUEST_TEXT_MAX),
            },
            Reported::Returned => Reported::Returned,
        };
        let Reported::Success {
            output,
            fuel,
            stderr_tail,
            ..
        } = &reported
        else {
            return reported;
        };
        let Some(limits) = self
            .units
            .get(&unit)
            .and_then(|u| self.batches.get(&u.batch))
            .and_then(|b| self.app_version(&b.app, &b.version))
            .map(|a| &a.limits)
        else {
            return reported;
        };
        let message = if output.len() as u64 > limits.output_bytes {
            format!(
                "reported output of {} bytes exceeds the app's limit of {} bytes",
                output.len(),
                limits.output_bytes
            )
        } else if *fuel > limits.fuel {
            format!(
                "reported fuel {fuel} exceeds the app's limit of {}",
                limits.fuel
            )
        } else {
            return reported;
        };
        Reported::Error {
            kind: ErrorKind::ClientError,
            message,
            stderr_tail: stderr_tail.clone(),
        }
    }

    /// Cancel a batch's unfinished units.
    pub fn cancel_batch(&mut self, id: BatchId, now_ms: u64) -> Option<&Batch> {
        let batch = self.batches.get_mut(&id)?;
        batch.cancelled = true;
        self.dirty.batches.insert(id);
        let ids: Vec<UnitId> = batch.unit_ids().collect();
        for unit in ids {
            self.update_unit(unit, now_ms, Unit::cancel);
        }
        self.batches.get(&id)
    }

    /// Whether a replica waits for a host.
    pub fn has_queued_work(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Server-wide counters.
    pub fn stats(&self, now_ms: u64) -> Stats {
        let online = self
            .hosts
            .values()
            .filter(|h| h.last_contact_ms + ONLINE_WINDOW_MS > now_ms);
        let (hosts_online, slots_total) = online.fold((0, 0), |(n, s), h| {
            (
                n + 1,
                s + h.platform.as_ref().map_or(0, |p| u64::from(p.slots)),
            )
        });
        let minute_now = now_ms / 60_000;
        let done_per_minute = (0..MINUTES_KEPT as u64)
            .rev()
            .map(|ago| {
                let minute = minute_now.saturating_sub(ago);
                self.done_per_minute
                    .iter()
                    .find(|(m, _)| *m == minute)
                    .map_or(0, |(_, n)| *n)
            })
            .collect();
        Stats {
            now_ms,
            hosts_known: self.hosts.len() as u64,
            hosts_online,
            slots_total,
            slots_busy: self.deadlines.len() as u64,
            queue_depth: self.unsent_replicas,
            units: self.counts,
            results: self.results.clone(),
            batches_active: self
                .batches
                .values()
                .filter(|b| !b.cancelled && b.counts.finished() < b.n_units)
                .count() as u64,
            done_per_minute,
        }
    }

    /// A host in wire form.
    pub fn host_summary(&self, host: &Host, now_ms: u64) -> HostSummary {
        HostSummary {
            id: host.id,
            name: host.name.clone(),
            platform: host.platform.clone(),
            registered_ms: host.registered_ms,
            last_contact_ms: host.last_contact_ms,
            online: host.last_contact_ms + ONLINE_WINDOW_MS > now_ms,
            running: host.running,
            succeeded: host.succeeded,
            failed: host.failed,
            invalid: host.invalid,
            credit: host.credit,
            trusted: host.standing.trusted(&self.policy),
            quarantine: host.standing.quarantine.as_ref().map(|q| q.reason.clone()),
            ban: host.standing.ban.clone(),
            daily_quota: host.standing.quota(&self.policy),
        }
    }

    /// Mutate a unit, keeping every index and counter in step and marking it dirty.
    fn update_unit<R>(
        &mut self,
        id: UnitId,
        now_ms: u64,
        f: impl FnOnce(&mut Unit) -> R,
    ) -> Option<R> {
        if !self.units.contains_key(&id) {
            return None;
        }
        let was = self.units[&id].state();
        let was_done = was == UnitState::Done;
        self.index(id, false);
        let unit = self.units.get_mut(&id)?;
        let result = f(unit);
        let now = unit.state();
        let now_done = now == UnitState::Done;
        let batch = unit.batch;
        if self.archive.is_some() && archive::is_settled(unit) {
            self.settled.push(id);
        }
        if is_final(now)
            && !is_final(was)
            && let Some(batch) = self.batches.get_mut(&batch)
        {
            batch.finish_order.push(id);
        }
        self.index(id, true);
        self.dirty.units.insert(id);
        if now_done && !was_done {
            self.count_done(now_ms);
        }
        Some(result)
    }

    /// Add (or remove) a unit's contribution to the indexes and counters.
    fn index(&mut self, id: UnitId, add: bool) {
        let Self {
            units,
            batches,
            hosts,
            queue,
            deadlines,
            leases,
            batch_shares,
            counts,
            results,
            unsent_replicas,
            disputes,
            ..
        } = self;
        let Some(unit) = units.get(&id) else { return };
        let adjust = |n: &mut u64| {
            if add {
                *n += 1
            } else {
                *n = n.saturating_sub(1)
            }
        };
        let state = unit.state();
        adjust(counts.get_mut(state));
        let mut batch = batches.get_mut(&unit.batch);
        let priority = batch.as_ref().map_or(0, |b| b.priority);
        if let Some(batch) = batch.as_mut() {
            adjust(batch.counts.get_mut(state));
        }
        if unit.has_unsent() {
            let n = unit
                .replicas()
                .iter()
                .filter(|r| r.state == ReplicaState::Unsent)
                .count() as u64;
            if add {
                queue.insert((Reverse(priority), id));
                *unsent_replicas += n;
            } else {
                queue.remove(&(Reverse(priority), id));
                *unsent_replicas = unsent_replicas.saturating_sub(n);
            }
        }
        for replica in unit.replicas() {
            if let Some(host) = replica.host {
                let key = (unit.batch, host);
                if add {
                    *batch_shares.entry(key).or_default() += 1;
                } else if let Some(n) = batch_shares.get_mut(&key) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        batch_shares.remove(&key);
                    }
                }
            }
            let counter: Option<fn(&mut ResultCounts) -> &mut u64> = match &replica.state {
                ReplicaState::Success {
                    validation: Validation::Valid,
                    ..
                } => Some(|r| &mut r.valid),
                ReplicaState::Success {
                    validation: Validation::Invalid,
                    ..
                } => Some(|r| &mut r.invalid),
                ReplicaState::Error { .. } => Some(|r| &mut r.errors),
                ReplicaState::TimedOut => Some(|r| &mut r.timed_out),
                _ => None,
            };
            if let Some(counter) = counter {
                adjust(counter(results));
                if let Some(batch) = batch.as_mut() {
                    adjust(counter(&mut batch.results));
                }
            }
            let failed = super::views::is_failure(&replica.state);
            if let Some(batch) = batch.as_mut().filter(|_| failed) {
                adjust(&mut batch.failed_replicas);
            }
        }
        {
            for host in unit.disputants() {
                let units = disputes.entry(host).or_default();
                if add {
                    units.insert(id);
                } else {
                    units.remove(&id);
                    if units.is_empty() {
                        disputes.remove(&host);
                    }
                }
            }
        }
        for (replica, host, deadline) in unit.leases() {
            let result = ResultId { unit: id, replica };
            if add {
                deadlines.insert((deadline, result));
                leases.insert((host, result));
            } else {
                deadlines.remove(&(deadline, result));
                leases.remove(&(host, result));
            }
            if let Some(h) = hosts.get_mut(&host) {
                adjust(&mut h.running);
            }
        }
    }

    fn count_done(&mut self, now_ms: u64) {
        self.dirty.done_per_minute = true;
        let minute = now_ms / 60_000;
        match self.done_per_minute.iter_mut().find(|(m, _)| *m == minute) {
            Some((_, n)) => *n += 1,
            None => {
                self.done_per_minute.push((minute, 1));
                self.done_per_minute
                    .retain(|(m, _)| m + MINUTES_KEPT as u64 > minute);
            }
        }
    }
}

#[cfg(test)]
mod lease_tests;
#[cfg(test)]
mod raw_input_tests;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
pub(crate) mod tests;

/// Whether a unit in `state` has its final result (done, failed or cancelled).
fn is_final(state: UnitState) -> bool {
    matches!(
        state,
        UnitState::Done | UnitState::Failed | UnitState::Cancelled
    )
}

//! Shared server state: the in-memory world behind one lock, the token table, the project
//! settings, and the writer that makes changes durable before handlers answer.

use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, oneshot, watch};

use crate::api::error::ApiError;
use crate::domain::placement::NetworkRule;
use crate::domain::ratelimit::RateLimiter;
use crate::domain::reputation::Policy;
use crate::domain::tokens::TokenTable;
use crate::domain::views::status::StatusHistory;
use crate::domain::world::World;
use crate::store::{
    ProjectConfig, Store, StoreError, UnitRows, Write, Writer, done_per_minute_write, encode,
    next_ids_write,
};

/// Default of [`ServeOptions::stall_timeout_ms`]: ten minutes.
pub const DEFAULT_STALL_TIMEOUT_MS: u64 = 10 * 60 * 1000;
/// Stalled units are looked for at most this often: the scan walks the whole queue under the
/// world lock (about 45 ms for 100,000 queued units in a debug build), and stall timeouts are
/// minutes.
const STALL_SWEEP_MS: u64 = 10_000;

/// Serve-time settings (flags and environment).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Hosts must present this code to register.
    pub invite_code: Option<String>,
    /// Hosts, apps and stats are readable without a token.
    pub public_dashboard: bool,
    /// Host registrations allowed per source address per minute.
    pub register_per_minute: u32,
    /// Longest long-poll wait, milliseconds.
    pub max_wait_ms: u64,
    /// The store's file, whose size `/metrics` reports (None: not reported).
    pub store_file: Option<std::path::PathBuf>,
    /// How peer addresses group into networks for placement.
    pub network_rule: NetworkRule,
    /// Trust, adaptive replication and error throttling.
    pub reputation: Policy,
    /// How long a unit may stay stalled before it fails, milliseconds.
    pub stall_timeout_ms: u64,
    /// Finished batches older than this (milliseconds) are deleted; `None` keeps them.
    pub retain_finished_ms: Option<u64>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            invite_code: None,
            public_dashboard: false,
            register_per_minute: 10,
            max_wait_ms: 30_000,
            store_file: None,
            network_rule: NetworkRule::default(),
            reputation: Policy::default(),
            stall_timeout_ms: DEFAULT_STALL_TIMEOUT_MS,
            retain_finished_ms: None,
        }
    }
}

/// Why the server is not ready (`GET /readyz` answers 503 with this).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotReady {
    /// Shutdown has begun; in-flight requests finish but new work should go elsewhere.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The store's writer thread is gone, so nothing can be made durable.
    #[error("the store writer has stopped; restart the server")]
    WriterStopped,
    /// Another server became the active one on the PostgreSQL store; this one is stopping.
    #[error("another server became the active one on this database; this one is stopping")]
    Superseded,
    /// The last commit failed (e.g. a full disk) and the state is being reloaded from the store.
    #[error(
        "the last store commit failed; writes are refused until the state is reloaded (check disk space and the log)"
    )]
    CommitFailed,
}

/// Cheaply cloneable handle to the server state.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// The server state.
#[derive(Debug)]
pub struct Inner {
    world: Mutex<World>,
    tokens: RwLock<TokenTable>,
    project: RwLock<ProjectConfig>,
    /// The store, for reads (modules).
    pub store: Store,
    writer: Writer,
    /// Signalled when replicas are queued, to wake long-polling fetches.
    pub work_available: Notify,
    /// Bumped after each durable commit that changed units or batches, to wake long-polling
    /// batch status requests (they compare the batch's progress themselves).
    progress: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
    /// Serve-time settings.
    pub options: ServeOptions,
    /// Host registration limiter.
    pub register_limiter: Mutex<RateLimiter>,
    /// Unit states and host totals of the last hour, for the dashboard's status page.
    pub status_history: Mutex<StatusHistory>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// A pending durable commit; await it before answering 2xx.
#[must_use = "await the commit before acknowledging"]
pub struct Pending(Option<Commit>);

/// A queued commit: the writer's answer, the state, and whether batch progress may change.
struct Commit {
    done: oneshot::Receiver<Result<(), ()>>,
    state: AppState,
    changes_progress: bool,
}

impl Pending {
    /// Nothing to wait for.
    pub fn none() -> Self {
        Pending(None)
    }

    fn queued(done: oneshot::Receiver<Result<(), ()>>, state: &AppState, progress: bool) -> Self {
        Pending(Some(Commit {
            done,
            state: state.clone(),
            changes_progress: progress,
        }))
    }

    /// Wait until the rows are durable. If the commit fails, memory is put back to what the
    /// store holds before this returns, so that no read shows the change that was refused.
    pub async fn durable(self) -> Result<(), ApiError> {
        let Some(Commit {
            done,
            state,
            changes_progress,
        }) = self.0
        else {
            return Ok(());
        };
        if let Ok(Ok(())) = done.await {
            // After durability, so that a researcher woken by it never reads a result a failed
            // commit takes back.
            if changes_progress {
                state.progress.send_modify(|seq| *seq = seq.wrapping_add(1));
            }
            return Ok(());
        }
        // Blocks on locks and on the writer's queue: off the async threads.
        let reload = tokio::task::spawn_blocking(move || state.reload_after_failed_commit());
        if let Ok(Err(error)) = reload.await {
            tracing::error!(%error, "cannot reload the state after a failed commit");
        }
        Err(ApiError::from(StoreError::WriterStopped))
    }
}

/// The in-memory state rebuilt from the store's rows: every batch, host and app, and of the
/// units only those not finished (the others count, and are read back when asked for).
fn rebuild(store: &Store) -> Result<(World, TokenTable, ProjectConfig), StoreError> {
    let loaded = store.load()?;
    let mut tokens = TokenTable::default();
    for record in loaded.tokens {
        tokens.put_user(record);
    }
    for host in &loaded.hosts {
        tokens.put_host(&host.token_hash, host.id);
    }
    let mut world = World::restore(
        [],
        loaded.batches,
        loaded.hosts,
        loaded.apps,
        loaded.done_per_minute,
    )
    .with_next_ids(loaded.next_ids)
    .with_archive(Arc::new(store.clone()));
    store.for_each_unit(|unit| world.restore_unit(unit))?;
    Ok((world, tokens, loaded.project))
}

impl AppState {
    /// Load the store into memory and start its writer.
    pub fn load(store: Store, options: ServeOptions) -> Result<AppState, StoreError> {
        let (mut world, tokens, project) = rebuild(&store)?;
        world.set_policy(options.reputation);
        let writer = store.writer();
        let register_limiter = Mutex::new(RateLimiter::new(options.register_per_minute));
        Ok(AppState(Arc::new(Inner {
            world: Mutex::new(world),
            tokens: RwLock::new(tokens),
            project: RwLock::new(project),
            store,
            writer,
            work_available: Notify::new(),
            progress: watch::channel(0).0,
            shutdown: watch::channel(false).0,
            options,
            register_limiter,
            status_history: Mutex::default(),
        })))
    }

    /// Now, in Unix milliseconds.
    pub fn now_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    /// The world, locked. Never hold it across an await.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The token table, for reading.
    pub fn tokens(&self) -> RwLockReadGuard<'_, TokenTable> {
        self.tokens
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The token table, for writing.
    pub fn tokens_mut(&self) -> RwLockWriteGuard<'_, TokenTable> {
        self.tokens
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The project settings.
    pub fn project(&self) -> RwLockReadGuard<'_, ProjectConfig> {
        self.project
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The project settings, for writing (key rotations).
    pub fn project_mut(&self) -> RwLockWriteGuard<'_, ProjectConfig> {
        self.project
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queue the world's dirty rows (plus `extra`, written first) for a durable commit. Call with
    /// the world lock held, so that commits happen in the order of the changes.
    pub fn persist(&self, world: &mut World, extra: Vec<Write>) -> Pending {
        world.evict_settled(self.writer.committed());
        world.stamp_finished(Self::now_ms());
        let dirty = world.take_dirty();
        if dirty.is_empty() && extra.is_empty() {
            return Pending::none();
        }
        let changes_progress =
            !dirty.units.is_empty() || !dirty.batches.is_empty() || !dirty.deleted.is_empty();
        let mut writes = extra;
        writes.reserve(2 + dirty.hosts.len() + dirty.batches.len() + dirty.apps.len());
        for (app, version) in &dirty.apps {
            if let Some(row) = world.app_version(app, version) {
                writes.push(Write::App(format!("{app}@{version}"), encode(row)));
            }
        }
        for id in dirty.batches {
            if let Some(row) = world.batch(id) {
                writes.push(Write::Batch(id.0, encode(row)));
            }
        }
        for id in dirty.hosts {
            if let Some(row) = world.host(id) {
                writes.push(Write::Host(id.0, encode(row)));
            }
        }
        let mut units = UnitRows::with_capacity(dirty.units.len());
        for id in dirty.units {
            if let Some(row) = world.unit(id) {
                units.push(row);
            }
        }
        if !units.is_empty() {
            writes.push(Write::Units(units));
        }
        // In the same commit as the units it counts, so a restart shows what was acknowledged.
        if dirty.done_per_minute {
            writes.push(done_per_minute_write(world.done_per_minute()));
        }
        // The rows go in the same commit as the id floor that keeps their ids from coming back.
        for deleted in &dirty.deleted {
            writes.push(Write::DeleteBatch {
                batch: deleted.id.0,
                first_unit: deleted.first_unit.0,
                n_units: deleted.n_units,
            });
        }
        if !dirty.deleted.is_empty() {
            writes.push(next_ids_write(world.next_ids()));
        }
        if world.has_queued_work() {
            self.work_available.notify_waiters();
        }
        let (done, ticket) = self.writer.submit_ticketed(writes);
        world.seal_settled(ticket);
        Pending::queued(done, self, changes_progress)
    }

    /// How many commits failed so far: read before a read-only request runs, for
    /// [`AppState::settle_reads`].
    pub fn commit_failures(&self) -> u64 {
        self.writer.failures()
    }

    /// Wait until everything queued so far is durable, so that an answer built from memory
    /// shows nothing a crash could take back (other requests' changes are in memory before
    /// their commit ends). A commit that failed since `failures` makes it an error: the answer
    /// may show a change that was refused.
    pub async fn settle_reads(&self, failures: u64) -> Result<(), ApiError> {
        self.writer
            .settle(failures)
            .await
            .map_err(|()| ApiError::from(StoreError::WriterStopped))
    }

    /// Queue rows that are not part of the world (tokens, project settings).
    pub fn persist_rows(&self, writes: Vec<Write>) -> Pending {
        Pending::queued(self.writer.submit(writes), self, false)
    }

    /// A receiver of batch progress: it sees a change after each durable commit that changed
    /// units or batches. Mark it seen before reading the world, so no commit after the read
    /// goes unnoticed.
    pub fn progress_signal(&self) -> watch::Receiver<u64> {
        self.progress.subscribe()
    }

    /// After a failed commit, put memory back to what the store holds and accept commits again.
    /// Holds every lock while the writer refuses what was queued, so that no change slips in
    /// between; a no-op if another request already did it. Blocking.
    pub fn reload_after_failed_commit(&self) -> Result<(), StoreError> {
        let mut world = self.world();
        let mut tokens = self.tokens_mut();
        let mut project = self.project_mut();
        self.writer.drain();
        if !self.writer.has_failed() {
            return Ok(());
        }
        if self.writer.is_superseded() {
            // The store is another server's state now: reloading it would serve that server's
            // changes from a process that can commit none.
            return Err(StoreError::Superseded(
                self.store.database_name().unwrap_or_default(),
            ));
        }
        let (mut stored_world, stored_tokens, stored_project) = rebuild(&self.store)?;
        stored_world.set_policy(*world.policy());
        *world = stored_world;
        *tokens = stored_tokens;
        *project = stored_project;
        self.writer.resume();
        tracing::warn!("state reloaded from the store after a failed commit");
        Ok(())
    }

    /// Make the next `n` commits fail as a full disk would (tests of storage faults).
    #[doc(hidden)]
    pub fn inject_store_failures(&self, n: u32) {
        self.writer.inject_failures(n);
    }

    /// Whether this server can take work now: why not, if it cannot. Cheap (no store access),
    /// so that probes may call it often.
    pub fn readiness(&self) -> Result<(), NotReady> {
        if *self.shutdown.borrow() {
            return Err(NotReady::ShuttingDown);
        }
        if self.writer.is_superseded() {
            return Err(NotReady::Superseded);
        }
        if !self.writer.is_running() {
            return Err(NotReady::WriterStopped);
        }
        if self.writer.has_failed() {
            return Err(NotReady::CommitFailed);
        }
        Ok(())
    }

    /// A receiver that turns true when the server is shutting down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Start shutting down: long polls return.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Wait until every queued write is durable and stop the writer.
    pub fn close(&self) {
        self.writer.close();
    }

    /// Time out expired leases, fail units stalled too long, and persist the changes.
    pub async fn expire_leases(&self) -> Result<(), ApiError> {
        let now = Self::now_ms();
        let pending = {
            let mut world = self.world();
            // Also on an idle server, finished units leave memory once durable.
            world.evict_settled(self.writer.committed());
            let deadline_passed = world.next_deadline().is_some_and(|d| d <= now);
            let sweep_due = world
                .last_stall_sweep_ms()
                .is_none_or(|last| now >= last + STALL_SWEEP_MS);
            if !deadline_passed && !sweep_due {
                return Ok(());
            }
            if deadline_passed {
                world.expire(now);
            }
            if sweep_due {
                world.sweep_stalled(now, self.options.stall_timeout_ms);
                world.settle_disputes(now);
            }
            self.persist(&mut world, Vec::new())
        };
        pending.durable().await
    }
}

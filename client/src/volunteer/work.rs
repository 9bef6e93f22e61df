//! The work loop: fetch while slots are free or the work buffer runs low, start buffered
//! assignments as slots free, and deliver spooled results on the next fetch or a report.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use musketeer_protocol::limits::MAX_ASSIGNMENTS_PER_FETCH;
use musketeer_protocol::{
    ClientCapability, ErrorKind, FetchRequest, HostPlatform, Outcome, ResultId, ResultReport,
};
use musketeer_signing_keys::TrustStore;
use tokio::sync::{Notify, mpsc};
use tokio::task::AbortHandle;

use super::backoff::Backoff;
use super::buffer::{WorkBuffer, max_buffered};
use super::events::Events;
use super::files::{AppVersions, DataDir};
use super::modules::Modules;
use super::pool::PoolHandle;
use super::report::{REPORT_BATCH, forget_acknowledged, report_loop, report_once};
use super::slot::{SlotDone, run_slot};
use super::spool::Spool;
use super::trust::LiveTrust;
use super::{JoinConfig, JoinError};
use crate::api_client::{ApiClient, ApiError};
use crate::fetch_answer::{BadAssignment, FetchAnswer};
use crate::sandbox::Sandbox;

/// Everything the worker needs.
pub struct WorkerSetup {
    pub api: ApiClient,
    pub data: DataDir,
    pub sandbox: Arc<Sandbox>,
    pub trust: TrustStore,
    pub platform: HostPlatform,
    pub events: Events,
    pub config: JoinConfig,
    /// The client's slots, shared with its other projects.
    pub pool: PoolHandle,
}

/// State shared by the slots and the reporter.
pub(super) struct Shared {
    pub(super) api: ApiClient,
    pub(super) data: DataDir,
    pub(super) modules: Modules,
    pub(super) trust: LiveTrust,
    pub(super) versions: Mutex<AppVersions>,
    pub(super) spool: Spool,
    /// Wakes the reporter when a result is spooled.
    pub(super) spooled: Notify,
    /// Results assigned to this host and not yet spooled: running or buffered.
    pub(super) in_flight: Mutex<HashSet<ResultId>>,
    /// Held by the one request that carries results, so no result is in two requests at once.
    pub(super) sending: Arc<tokio::sync::Mutex<()>>,
    /// Whether the next fetch will likely carry the spooled results (fetches find work and the
    /// server takes results on them), so the reporter leaves them a moment.
    pub(super) results_ride_on_fetches: AtomicBool,
    pub(super) events: Events,
    pub(super) config: JoinConfig,
}

/// A fetch under way: its answer and what the worker learns from its request.
type FetchFuture = Pin<Box<dyn Future<Output = Result<(FetchAnswer, FetchSent), ApiError>> + Send>>;

/// What a fetch's request was, beside its answer.
struct FetchSent {
    /// It carried spooled results.
    carried_results: bool,
    /// Assignments it asked for.
    asked_for: usize,
    /// From request to answer.
    took: Duration,
}

/// What runs, by result: its slot and how to abort it.
type Running = HashMap<ResultId, (usize, AbortHandle)>;

/// The worker.
pub struct Worker {
    shared: Arc<Shared>,
    platform: HostPlatform,
    pool: PoolHandle,
}

impl Worker {
    pub fn new(setup: WorkerSetup) -> Result<Self, JoinError> {
        let spool = Spool::open(setup.data.spool_dir())?;
        let versions = setup.data.versions()?;
        let modules = Modules::new(setup.data.modules_dir(), setup.sandbox);
        Ok(Self {
            platform: setup.platform,
            pool: setup.pool,
            shared: Arc::new(Shared {
                api: setup.api,
                data: setup.data,
                modules,
                trust: LiveTrust::new(setup.trust),
                versions: Mutex::new(versions),
                spool,
                spooled: Notify::new(),
                in_flight: Mutex::new(HashSet::new()),
                sending: Arc::new(tokio::sync::Mutex::new(())),
                results_ride_on_fetches: AtomicBool::new(false),
                events: setup.events,
                config: setup.config,
            }),
        })
    }

    pub async fn run(
        self,
        shutdown: Pin<Box<impl Future<Output = ()> + Send>>,
    ) -> Result<(), JoinError> {
        let shared = self.shared.clone();
        let slots = self.pool.slots();
        let mut pool_changes = self.pool.subscribe();
        // Status hook: `musketeer status` counts the spool (weak: the board outlives a worker).
        let weak = Arc::downgrade(&shared);
        let board = shared.config.gate.board();
        board.count_spool(move || weak.upgrade().map_or(0, |shared| shared.spool.len()));
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<SlotDone>();
        let (cancel_tx, mut cancel_rx) = mpsc::unbounded_channel::<Vec<ResultId>>();
        let (fatal_tx, mut fatal_rx) = mpsc::unbounded_channel::<ApiError>();
        let reporter = tokio::spawn(report_loop(
            shared.clone(),
            cancel_tx.clone(),
            fatal_tx.clone(),
        ));
        if !shared.spool.is_empty() {
            shared.events.emit(
                "spool",
                serde_json::json!({"results": shared.spool.len(), "result_ids": shared.spool.ids(MAX_HELD)}),
                format!(
                    "{} finished result(s) from an earlier run wait to be reported",
                    shared.spool.len()
                ),
            );
            shared.spooled.notify_one();
        }

        let mut running: Running = HashMap::new();
        let mut buffer = WorkBuffer::new(shared.config.work_buffer, slots);
        let mut fetch: Option<FetchFuture> = None;
        // Top-up fetches (and results riding on fetches) only while fetches find work: a fetch
        // that finds none long-polls, and must not hold results or spin.
        let mut last_found_work = false;
        // The last fetch got all it asked for: the server has more, so fetches come often and
        // results can wait a moment for one. Otherwise (an idle cluster, a batch's tail) they are
        // reported at once, so a lone unit's round trip is not held up.
        let mut work_flows = false;
        // Cleared when a server answers a fetch with results but without acks (an older one).
        let mut server_takes_results = true;
        let mut backoff = Backoff::new(Duration::from_millis(250), shared.config.max_backoff);
        let mut retry_at = tokio::time::Instant::now();
        let mut waiting_announced = false;
        // The last reason the server gave for sending no work, announced once per change.
        let mut last_refusal: Option<String> = None;
        let mut shutdown = shutdown;
        let mut stop_deadline: Option<tokio::time::Instant> = None;
        let mut fatal: Option<ApiError> = None;

        loop {
            let stopping = stop_deadline.is_some();
            // Preferences hook: no new work, and no buffered work started, while the gate says
            // work is suspended.
            let gate_open = shared.config.gate.is_open();
            if stopping {
                // Buffered work is not started any more: back to the server for others.
                for result_id in buffer.drain() {
                    hand_back(&shared, result_id);
                }
                // Nothing of this project waits for a slot any more: others may take them.
                self.pool.set_waiting(false);
                if running.is_empty() {
                    break;
                }
            } else if gate_open {
                start_buffered(&shared, &mut buffer, &self.pool, &mut running, &done_tx);
            }
            // Status hook: `musketeer status` shows the work queued here.
            board.set_buffered(buffer.len());
            // With other projects on the slots, keep one assignment ready even while every slot
            // is busy: a slot that frees goes to the project owed the most CPU time among those
            // with work, so one without work ready would lose its share.
            let free_slots = if self.pool.shared() {
                self.pool.free_slots().max(1)
            } else {
                self.pool.free_slots()
            };
            let rides = server_takes_results && work_flows && !stopping;
            shared
                .results_ride_on_fetches
                .store(rides, Ordering::Relaxed);
            let fetch_wanted = !stopping
                && gate_open
                && ((free_slots > 0 && buffer.is_empty())
                    || (last_found_work && buffer.wants_top_up()));
            if fetch.is_none() && fetch_wanted && tokio::time::Instant::now() >= retry_at {
                fetch = Some(self.start_fetch(&running, &buffer, free_slots, rides));
            }
            let can_retry_fetch = fetch.is_none() && fetch_wanted;
            tokio::select! {
                result = async { fetch.as_mut().expect("guarded").await }, if fetch.is_some() => {
                    fetch = None;
                    match result {
                        Ok((response, FetchSent { carried_results, asked_for, took })) => {
                            backoff.reset();
                            if carried_results && response.acks.is_empty() {
                                // An older server ignored them: report them the old way.
                                server_takes_results = false;
                                shared.spooled.notify_one();
                            }
                            forget_acknowledged(&shared, &response.acks);
                            abort(&mut running, &mut buffer, &self.pool, &shared, &response.cancelled);
                            if response.refusal != last_refusal {
                                if let Some(reason) = &response.refusal {
                                    shared.events.emit(
                                        "refused",
                                        serde_json::json!({"reason": reason}),
                                        format!("the server gives this host no work: {reason}"),
                                    );
                                }
                                last_refusal = response.refusal.clone();
                            }
                            last_found_work = !response.assignments.is_empty();
                            if last_found_work {
                                // A fetch that finds none may long-poll: only these time the
                                // round trip the buffer must cover.
                                buffer.observe_fetch(took);
                            }
                            work_flows = response.assignments.len()
                                >= asked_for.clamp(1, MAX_ASSIGNMENTS_PER_FETCH as usize);
                            let now = now_ms();
                            let shortest_lease = response
                                .assignments
                                .iter()
                                .filter_map(|a| a.as_ref().ok())
                                .map(|a| a.deadline_ms.saturating_sub(now))
                                .min();
                            if let Some(left) = shortest_lease {
                                buffer.observe_lease(Duration::from_millis(left));
                            }
                            if !last_found_work && running.is_empty() && buffer.is_empty() && !waiting_announced {
                                waiting_announced = true;
                                shared.events.emit("idle", serde_json::json!({}), "no work yet; still waiting");
                            }
                            for assignment in response.assignments {
                                waiting_announced = false;
                                match assignment {
                                    Ok(assignment) if buffer.len() < free_slots + max_buffered() => {
                                        lock(&shared.in_flight).insert(assignment.result_id);
                                        buffer.push(assignment);
                                    }
                                    // More than asked for: give it back rather than overcommit.
                                    Ok(assignment) => hand_back(&shared, assignment.result_id),
                                    Err(bad) => refuse_assignment(&shared, bad),
                                }
                            }
                        }
                        Err(error) if error.is_retryable() => {
                            let delay = backoff.next_delay();
                            retry_at = tokio::time::Instant::now() + delay;
                            let cause = super::events::cause_chain(&error);
                            shared.events.emit(
                                "retry",
                                serde_json::json!({"what": "fetch", "error": cause, "delay_ms": delay.as_millis() as u64}),
                                format!("cannot fetch work ({cause}); retrying in {:.1} s", delay.as_secs_f64()),
                            );
                            // Results it carried stay spooled; the reporter retries them too.
                            shared.spooled.notify_one();
                        }
                        Err(error) => {
                            fatal = Some(error);
                            stop_deadline = Some(tokio::time::Instant::now() + shared.config.shutdown_grace);
                        }
                    }
                }
                () = tokio::time::sleep_until(retry_at), if can_retry_fetch && tokio::time::Instant::now() < retry_at => {}
                () = shared.config.gate.until_open(), if !gate_open && !stopping => {}
                // A slot freed or another project's work changed: maybe this project's turn.
                _ = pool_changes.changed(), if gate_open && !stopping && !buffer.is_empty() => {}
                Some(done) = done_rx.recv() => {
                    if running.remove(&done.result_id).is_some() {
                        self.pool.finish(done.slot);
                        buffer.observe(done.took);
                    }
                }
                Some(cancelled) = cancel_rx.recv() => {
                    abort(&mut running, &mut buffer, &self.pool, &shared, &cancelled);
                }
                Some(error) = fatal_rx.recv() => {
                    fatal = Some(error);
                    fetch = None;
                    stop_deadline.get_or_insert(tokio::time::Instant::now() + shared.config.shutdown_grace);
                }
                () = shutdown.as_mut(), if !stopping => {
                    fetch = None;
                    shared.events.emit(
                        "stopping",
                        serde_json::json!({"running": running.len(), "buffered": buffer.len()}),
                        format!("stopping: no new work; {} buffered assignment(s) handed back; {} running task(s) get {} s to finish", buffer.len(), running.len(), shared.config.shutdown_grace.as_secs()),
                    );
                    super::events::flush();
                    stop_deadline = Some(tokio::time::Instant::now() + shared.config.shutdown_grace);
                }
                () = tokio::time::sleep_until(stop_deadline.unwrap_or_else(tokio::time::Instant::now)), if stopping => {
                    // Out of time: abort what still runs and give it back to the server.
                    for (result_id, (slot, handle)) in running.drain() {
                        handle.abort();
                        self.pool.finish(slot);
                        hand_back(&shared, result_id);
                    }
                }
            }
        }

        // One last attempt to deliver spooled results; what fails stays on disk for next time.
        reporter.abort();
        if !shared.spool.is_empty() {
            // Results written but not yet synced are reported once synced (decision 0007).
            let flush = async {
                shared.spool.synced().await;
                report_once(&shared).await
            };
            let _ = tokio::time::timeout(Duration::from_secs(3), flush).await;
        }
        shared.events.emit(
            "stopped",
            serde_json::json!({"unreported": shared.spool.len()}),
            format!(
                "stopped ({} result(s) kept on disk to report next time)",
                shared.spool.len()
            ),
        );
        match fatal {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }

    /// A fetch for the free slots and the buffer's room; with the spooled results when `rides`
    /// and no report is being sent.
    fn start_fetch(
        &self,
        running: &Running,
        buffer: &WorkBuffer,
        free_slots: usize,
        rides: bool,
    ) -> FetchFuture {
        let shared = &self.shared;
        let in_flight: Vec<ResultId> = running.keys().copied().chain(buffer.ids()).collect();
        let mut sending = rides
            .then(|| shared.sending.clone().try_lock_owned().ok())
            .flatten();
        let results = match sending {
            Some(_) => shared.spool.pending(REPORT_BATCH),
            None => Vec::new(),
        };
        let carries_results = !results.is_empty();
        if carries_results {
            // Their `finished` lines first: whoever sees the server count a result has seen its
            // event.
            super::events::flush();
        } else {
            // A fetch without results may wait long on the server: reports must not wait for it.
            sending = None;
        }
        let asked_for = free_slots + buffer.room();
        let request = FetchRequest {
            free_slots: u32::try_from(asked_for).unwrap_or(u32::MAX),
            platform: self.platform.clone(),
            wait_ms: Some(shared.config.poll_wait.as_millis() as u64),
            held: held(&in_flight, &shared.spool),
            in_flight,
            results,
            // This client hands raw inputs to the task unchanged (slot.rs).
            capabilities: vec![ClientCapability::RawInput],
        };
        let api = shared.api.clone();
        Box::pin(async move {
            let sent_at = std::time::Instant::now();
            let answer = api.fetch(&request).await;
            let took = sent_at.elapsed();
            // Only now may another request carry results.
            drop(sending);
            answer.map(|answer| {
                let sent = FetchSent {
                    carried_results: carries_results,
                    asked_for,
                    took,
                };
                (answer, sent)
            })
        })
    }
}

/// Starts buffered assignments on the slots the pool gives this project; hands back those past
/// their deadline (the server has given them to another host, or will before they could be
/// reported).
fn start_buffered(
    shared: &Arc<Shared>,
    buffer: &mut WorkBuffer,
    pool: &PoolHandle,
    running: &mut Running,
    done: &mpsc::UnboundedSender<SlotDone>,
) {
    loop {
        pool.set_waiting(!buffer.is_empty());
        let Some(slot) = pool.try_start() else {
            return;
        };
        let Some(assignment) = buffer.pop() else {
            pool.finish(slot);
            return;
        };
        if assignment.deadline_ms <= now_ms() {
            shared.events.emit(
                "expired",
                serde_json::json!({"result_id": assignment.result_id, "unit_id": assignment.unit_id}),
                format!(
                    "unit {} waited past its deadline in the work buffer; handed back",
                    assignment.unit_id
                ),
            );
            hand_back(shared, assignment.result_id);
            pool.finish(slot);
            continue;
        }
        let result_id = assignment.result_id;
        let handle = tokio::spawn(run_slot(shared.clone(), assignment, slot, done.clone()));
        running.insert(result_id, (slot, handle.abort_handle()));
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The server takes at most this many held ids; beyond it the host lists none (no reconciliation).
const MAX_HELD: usize = 1024;

/// Every result this host holds, for the server to replace the leases it lost: running and
/// buffered ones (`in_flight`) and those spooled but not yet acknowledged. A result enters the
/// spool before it leaves `running`, so none is missing in between. `None` when there are too
/// many to list.
fn held(in_flight: &[ResultId], spool: &Spool) -> Option<Vec<ResultId>> {
    let mut held = in_flight.to_vec();
    let spooled = spool.ids(MAX_HELD + 1);
    if held.len() + spooled.len() > MAX_HELD {
        return None;
    }
    held.extend(spooled);
    Some(held)
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Aborts cancelled results, running or buffered; they are not reported.
fn abort(
    running: &mut Running,
    buffer: &mut WorkBuffer,
    pool: &PoolHandle,
    shared: &Shared,
    cancelled: &[ResultId],
) {
    for id in buffer.remove(cancelled) {
        lock(&shared.in_flight).remove(&id);
    }
    for id in cancelled {
        if let Some((slot, handle)) = running.remove(id) {
            handle.abort();
            pool.finish(slot);
            lock(&shared.in_flight).remove(id);
            shared.events.emit(
                "cancelled",
                serde_json::json!({"result_id": id, "slot": slot}),
                format!("slot {slot}: result {id} was cancelled by the server; aborted"),
            );
        }
    }
}

/// Spools a `Returned` report: the replica goes back to the server's queue.
fn hand_back(shared: &Shared, result_id: ResultId) {
    lock(&shared.in_flight).remove(&result_id);
    let report = ResultReport {
        result_id,
        outcome: Outcome::Returned,
    };
    if let Err(error) = shared.spool.push_soon(report) {
        tracing::warn!(%error, "cannot spool a returned result");
    }
    shared.spooled.notify_one();
}

/// Reports an assignment this client cannot decode or run as an error of that replica, without
/// taking a slot; the volunteer carries on with the rest.
fn refuse_assignment(shared: &Shared, bad: BadAssignment) {
    let Some(result_id) = bad.result_id else {
        // Nothing to report it against: the server gives the replica to another host when its
        // deadline passes, and that host refuses it the same way.
        shared.events.emit(
            "bad-assignment",
            serde_json::json!({"result_id": null, "reason": bad.reason}),
            format!(
                "skipped an assignment without a readable id: {}",
                bad.reason
            ),
        );
        return;
    };
    shared.events.emit(
        "bad-assignment",
        serde_json::json!({"result_id": result_id, "unit_id": result_id.unit, "kind": ErrorKind::BadAssignment, "reason": bad.reason}),
        format!(
            "unit {} refused, reported as an error: {}",
            result_id.unit, bad.reason
        ),
    );
    let report = ResultReport {
        result_id,
        outcome: Outcome::Error {
            kind: ErrorKind::BadAssignment,
            message: bad.reason,
            fuel_consumed: 0,
            wall_ms: 0,
            stderr_tail: String::new(),
        },
    };
    if let Err(error) = shared.spool.push_soon(report) {
        tracing::warn!(%error, "cannot spool the error of a bad assignment");
    }
    shared.spooled.notify_one();
}

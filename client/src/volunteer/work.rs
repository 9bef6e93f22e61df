//! The work loop: fetch while slots are free, run assignments, spool and report results.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use musketeer_protocol::{
    Assignment, Base64Bytes, ErrorKind, FetchRequest, HostPlatform, Outcome, ReportRequest,
    ResultId, ResultReport,
};
use musketeer_signing_keys::{SignedManifest, TrustStore};
use tokio::sync::{Notify, mpsc};
use tokio::task::AbortHandle;

use super::backoff::Backoff;
use super::events::Events;
use super::files::{AppVersions, DataDir};
use super::modules::{ModuleError, Modules};
use super::spool::Spool;
use super::trust::LiveTrust;
use super::{JoinConfig, JoinError};
use crate::api_client::{ApiClient, ApiError};
use crate::fetch_answer::{BadAssignment, FetchAnswer};
use crate::sandbox::{RunError, RunOptions, Sandbox};

/// Results per report request (the server accepts up to 1024).
const REPORT_BATCH: usize = 256;
/// Kept of a task's stderr in its report.
const STDERR_TAIL: usize = 4096;

/// Everything the worker needs.
pub struct WorkerSetup {
    pub api: ApiClient,
    pub data: DataDir,
    pub sandbox: Arc<Sandbox>,
    pub trust: TrustStore,
    pub platform: HostPlatform,
    pub events: Events,
    pub config: JoinConfig,
}

/// State shared by the slots and the reporter.
struct Shared {
    api: ApiClient,
    data: DataDir,
    modules: Modules,
    trust: LiveTrust,
    versions: Mutex<AppVersions>,
    spool: Spool,
    /// Wakes the reporter when a result is spooled.
    spooled: Notify,
    /// Results assigned to this host and not yet spooled.
    in_flight: Mutex<HashSet<ResultId>>,
    events: Events,
    config: JoinConfig,
}

/// A slot's task finished (its result is in the spool, unless it was cancelled).
struct SlotDone {
    result_id: ResultId,
    slot: usize,
}

type FetchFuture = Pin<Box<dyn Future<Output = Result<FetchAnswer, ApiError>> + Send>>;

/// The worker.
pub struct Worker {
    shared: Arc<Shared>,
    platform: HostPlatform,
}

impl Worker {
    pub fn new(setup: WorkerSetup) -> Result<Self, JoinError> {
        let spool = Spool::open(setup.data.spool_dir())?;
        let versions = setup.data.versions()?;
        let modules = Modules::new(setup.data.modules_dir(), setup.sandbox);
        Ok(Self {
            platform: setup.platform,
            shared: Arc::new(Shared {
                api: setup.api,
                data: setup.data,
                modules,
                trust: LiveTrust::new(setup.trust),
                versions: Mutex::new(versions),
                spool,
                spooled: Notify::new(),
                in_flight: Mutex::new(HashSet::new()),
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
        let slots = shared.config.slots.max(1);
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
                serde_json::json!({"results": shared.spool.len()}),
                format!(
                    "{} finished result(s) from an earlier run wait to be reported",
                    shared.spool.len()
                ),
            );
            shared.spooled.notify_one();
        }

        let mut free: BTreeSet<usize> = (1..=slots).collect();
        let mut running: HashMap<ResultId, (usize, AbortHandle)> = HashMap::new();
        let mut fetch: Option<FetchFuture> = None;
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
            if stopping && running.is_empty() {
                break;
            }
            // Preferences hook: no new work while the gate says work is suspended.
            let gate_open = shared.config.gate.is_open();
            if fetch.is_none()
                && !stopping
                && !free.is_empty()
                && gate_open
                && tokio::time::Instant::now() >= retry_at
            {
                let request = FetchRequest {
                    free_slots: u32::try_from(free.len()).unwrap_or(u32::MAX),
                    platform: self.platform.clone(),
                    wait_ms: Some(shared.config.poll_wait.as_millis() as u64),
                    in_flight: running.keys().copied().collect(),
                    held: held(&running, &shared.spool),
                };
                let api = shared.api.clone();
                fetch = Some(Box::pin(async move { api.fetch(&request).await }));
            }
            let can_retry_fetch = fetch.is_none() && !stopping && !free.is_empty();
            tokio::select! {
                result = async { fetch.as_mut().expect("guarded").await }, if fetch.is_some() => {
                    fetch = None;
                    match result {
                        Ok(response) => {
                            backoff.reset();
                            abort(&mut running, &mut free, &shared, &response.cancelled);
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
                            if response.assignments.is_empty() && running.is_empty() && !waiting_announced {
                                waiting_announced = true;
                                shared.events.emit("idle", serde_json::json!({}), "no work yet; still waiting");
                            }
                            for assignment in response.assignments {
                                waiting_announced = false;
                                let assignment = match assignment {
                                    Ok(assignment) => assignment,
                                    Err(bad) => {
                                        refuse_assignment(&shared, bad);
                                        continue;
                                    }
                                };
                                let Some(slot) = free.pop_first() else {
                                    // More than asked for: give it back rather than overcommit.
                                    hand_back(&shared, assignment.result_id);
                                    continue;
                                };
                                let result_id = assignment.result_id;
                                lock(&shared.in_flight).insert(result_id);
                                let handle = tokio::spawn(run_slot(shared.clone(), assignment, slot, done_tx.clone()));
                                running.insert(result_id, (slot, handle.abort_handle()));
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
                        }
                        Err(error) => {
                            fatal = Some(error);
                            stop_deadline = Some(tokio::time::Instant::now() + shared.config.shutdown_grace);
                        }
                    }
                }
                () = tokio::time::sleep_until(retry_at), if can_retry_fetch && tokio::time::Instant::now() < retry_at => {}
                () = shared.config.gate.until_open(), if !gate_open && !stopping => {}
                Some(done) = done_rx.recv() => {
                    if running.remove(&done.result_id).is_some() {
                        free.insert(done.slot);
                    }
                }
                Some(cancelled) = cancel_rx.recv() => {
                    abort(&mut running, &mut free, &shared, &cancelled);
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
                        serde_json::json!({"running": running.len()}),
                        format!("stopping: no new work; {} running task(s) get {} s to finish", running.len(), shared.config.shutdown_grace.as_secs()),
                    );
                    stop_deadline = Some(tokio::time::Instant::now() + shared.config.shutdown_grace);
                }
                () = tokio::time::sleep_until(stop_deadline.unwrap_or_else(tokio::time::Instant::now)), if stopping => {
                    // Out of time: abort what still runs and give it back to the server.
                    for (result_id, (_, handle)) in running.drain() {
                        handle.abort();
                        hand_back(&shared, result_id);
                    }
                }
            }
        }

        // One last attempt to deliver spooled results; what fails stays on disk for next time.
        reporter.abort();
        if !shared.spool.is_empty() {
            let flush = report_once(&shared);
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
}

/// The server takes at most this many held ids; beyond it the host lists none (no reconciliation).
const MAX_HELD: usize = 1024;

/// Every result this host holds, for the server to replace the leases it lost: the running ones
/// and those spooled but not yet acknowledged. A result moves from running to the spool before
/// it leaves `running`, so none is missing in between. `None` when there are too many to list.
fn held(running: &HashMap<ResultId, (usize, AbortHandle)>, spool: &Spool) -> Option<Vec<ResultId>> {
    let mut held: Vec<ResultId> = running.keys().copied().collect();
    let spooled = spool.ids(MAX_HELD + 1);
    if held.len() + spooled.len() > MAX_HELD {
        return None;
    }
    held.extend(spooled);
    Some(held)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Aborts cancelled results; they are not reported.
fn abort(
    running: &mut HashMap<ResultId, (usize, AbortHandle)>,
    free: &mut BTreeSet<usize>,
    shared: &Shared,
    cancelled: &[ResultId],
) {
    for id in cancelled {
        if let Some((slot, handle)) = running.remove(id) {
            handle.abort();
            free.insert(slot);
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
    if let Err(error) = shared.spool.push(report) {
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
    if let Err(error) = shared.spool.push(report) {
        tracing::warn!(%error, "cannot spool the error of a bad assignment");
    }
    shared.spooled.notify_one();
}

async fn run_slot(
    shared: Arc<Shared>,
    assignment: Assignment,
    slot: usize,
    done: mpsc::UnboundedSender<SlotDone>,
) {
    let result_id = assignment.result_id;
    let unit_id = assignment.unit_id;
    let app = format!("{} {}", assignment.app, assignment.version);
    shared.events.emit(
        "started",
        serde_json::json!({"slot": slot, "result_id": result_id, "unit_id": unit_id, "app": assignment.app, "version": assignment.version.to_string()}),
        format!("slot {slot}: running unit {unit_id} ({app})"),
    );
    let outcome = execute(&shared, assignment).await;
    let (event, text, fields) = match &outcome {
        Outcome::Success {
            fuel_consumed,
            wall_ms,
            ..
        } => (
            "finished",
            format!("slot {slot}: unit {unit_id} done in {wall_ms} ms ({fuel_consumed} fuel)"),
            serde_json::json!({"slot": slot, "result_id": result_id, "unit_id": unit_id, "fuel": fuel_consumed, "wall_ms": wall_ms}),
        ),
        Outcome::Error { kind, message, .. } => (
            "failed",
            format!("slot {slot}: unit {unit_id} failed: {message}"),
            serde_json::json!({"slot": slot, "result_id": result_id, "unit_id": unit_id, "kind": kind, "message": message}),
        ),
        Outcome::Returned => (
            "returned",
            format!("slot {slot}: unit {unit_id} handed back"),
            serde_json::json!({"slot": slot, "result_id": result_id, "unit_id": unit_id}),
        ),
    };
    if let Err(error) = shared.spool.push(ResultReport { result_id, outcome }) {
        shared.events.emit(
            "spool-error",
            serde_json::json!({"result_id": result_id, "error": error.to_string()}),
            format!("cannot keep result {result_id} on disk: {error}"),
        );
    }
    lock(&shared.in_flight).remove(&result_id);
    shared.events.emit(event, fields, text);
    shared.spooled.notify_one();
    let _ = done.send(SlotDone { result_id, slot });
}

/// Verifies, prepares and runs one assignment.
async fn execute(shared: &Shared, assignment: Assignment) -> Outcome {
    let refuse = |message: String| Outcome::Error {
        kind: ErrorKind::RefusedModule,
        message,
        fuel_consumed: 0,
        wall_ms: 0,
        stderr_tail: String::new(),
    };
    let signed = match serde_json::to_string(&assignment.signed_manifest)
        .map_err(|e| e.to_string())
        .and_then(|text| SignedManifest::from_json(&text).map_err(|e| e.to_string()))
    {
        Ok(signed) => signed,
        Err(error) => {
            return refuse(format!(
                "refused module: unreadable signed manifest: {error}"
            ));
        }
    };
    let (app, version) = (signed.manifest.app.clone(), signed.manifest.version.clone());
    if app != assignment.app
        || version != assignment.version
        || signed.manifest.module_sha256 != assignment.module_sha256
    {
        return refuse(format!(
            "refused module: the assignment ({} {}, {}) does not match its signed manifest ({app} {version}, {})",
            assignment.app,
            assignment.version,
            assignment.module_sha256,
            signed.manifest.module_sha256
        ));
    }
    if let Some(highest) = lock(&shared.versions).get(&app)
        && version < *highest
    {
        return refuse(format!(
            "refused module: rollback: {app} {version} is older than {highest}, which this host already ran"
        ));
    }
    let wanted = signed.manifest.limits.memory_bytes;
    if let Some(allowed) = shared.config.max_task_memory
        && wanted > allowed
    {
        // The server should not have sent it (the limit is in every fetch); refuse, not run.
        return refuse(format!(
            "refused module: {app} {version} may use {} MiB of memory; this host allows {} MiB (--max-task-memory)",
            wanted >> 20,
            allowed >> 20
        ));
    }
    let trust = shared
        .trust
        .for_key(
            &signed.key_id,
            &shared.api,
            &shared.data,
            &shared.config,
            &shared.events,
        )
        .await;
    let task = match shared
        .modules
        .prepare(&shared.api, &trust, signed, &assignment.module_sha256)
        .await
    {
        Ok(task) => task,
        Err(ModuleError::Refused(error)) => {
            return Outcome::Error {
                kind: error_kind(&error),
                message: error.to_string(),
                fuel_consumed: 0,
                wall_ms: 0,
                stderr_tail: String::new(),
            };
        }
        Err(error @ ModuleError::WrongBytes { .. }) => {
            return refuse(format!("refused module: {error}"));
        }
        Err(error) => {
            return Outcome::Error {
                kind: ErrorKind::ClientError,
                message: error.to_string(),
                fuel_consumed: 0,
                wall_ms: 0,
                stderr_tail: String::new(),
            };
        }
    };
    record_version(shared, &app, &version);
    // The same bytes on every client, whatever its serde_json features (see the protocol).
    let input = musketeer_protocol::task_input_bytes(&assignment.input);
    // Preferences hook: the gate pauses the task at fuel yields; the board shows it running.
    let on_board = shared
        .config
        .gate
        .board()
        .start(assignment.unit_id.to_string(), format!("{app} {version}"));
    let options = RunOptions {
        // Replicas of one unit must see the same clocks and randomness: seed with the unit id.
        run_id: assignment.unit_id.to_string(),
        progress: Some(on_board.progress_sink()),
        pause: Some(shared.config.gate.pause_token()),
    };
    match shared.modules.sandbox().run(&task, &input, options).await {
        Ok(output) => Outcome::Success {
            output: Base64Bytes(output.output),
            fuel_consumed: output.fuel_consumed,
            wall_ms: output.wall_time.as_millis() as u64,
            stderr_tail: tail(&output.stderr),
        },
        Err(error) => Outcome::Error {
            kind: error_kind(&error),
            message: match error {
                // The kind already says `task-error`: send the task's own words alone.
                RunError::TaskFailed(own) => own,
                other => other.to_string(),
            },
            fuel_consumed: 0,
            wall_ms: 0,
            stderr_tail: String::new(),
        },
    }
}

fn record_version(shared: &Shared, app: &str, version: &semver::Version) {
    let mut versions = lock(&shared.versions);
    if versions.get(app).is_some_and(|v| v >= version) {
        return;
    }
    versions.insert(app.to_owned(), version.clone());
    if let Err(error) = shared.data.save_versions(&versions) {
        tracing::warn!(%error, "cannot record the app version");
    }
}

fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(STDERR_TAIL);
    // Escaped like every guest text; escapes at most quadruple its length (`\x1b`).
    musketeer_protocol::guest_text::sanitize_lines(
        &String::from_utf8_lossy(&bytes[start..]),
        STDERR_TAIL * 4,
    )
}

/// The wire kind of a sandbox error.
pub fn error_kind(error: &RunError) -> ErrorKind {
    match error.kind() {
        "refused-module" | "bad-manifest" | "invalid-module" | "unsupported-imports" => {
            ErrorKind::RefusedModule
        }
        "fuel-exhausted" => ErrorKind::FuelExhausted,
        "wall-timeout" => ErrorKind::WallTimeout,
        "memory-limit" | "resource-limit" => ErrorKind::MemoryLimit,
        "stack-overflow" => ErrorKind::StackOverflow,
        "output-too-large" => ErrorKind::OutputTooLarge,
        "task-error" | "stdio-flood" => ErrorKind::TaskError,
        "trap" => ErrorKind::Trap,
        "instantiation-fuel-exhausted" => ErrorKind::InstantiationFuelExhausted,
        "memory-fault" => ErrorKind::MemoryFault,
        "panic" => ErrorKind::Panic,
        "exit" => ErrorKind::Exit,
        _ => ErrorKind::ClientError,
    }
}

/// Reports spooled results whenever there are some, backing off while the server is away.
async fn report_loop(
    shared: Arc<Shared>,
    cancel: mpsc::UnboundedSender<Vec<ResultId>>,
    fatal: mpsc::UnboundedSender<ApiError>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(250), shared.config.max_backoff);
    loop {
        if shared.spool.is_empty() {
            shared.spooled.notified().await;
        }
        match report_once(&shared).await {
            Ok((cancelled, forgotten)) => {
                backoff.reset();
                if !cancelled.is_empty() {
                    let _ = cancel.send(cancelled);
                }
                if forgotten == 0 && !shared.spool.is_empty() {
                    // The server acknowledged none of them; do not spin.
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
            Err(error) if error.is_retryable() => {
                let delay = backoff.next_delay();
                let cause = super::events::cause_chain(&error);
                shared.events.emit(
                    "retry",
                    serde_json::json!({"what": "report", "error": cause, "delay_ms": delay.as_millis() as u64, "spooled": shared.spool.len()}),
                    format!(
                        "cannot report {} result(s) ({cause}); kept on disk, retrying in {:.1} s",
                        shared.spool.len(),
                        delay.as_secs_f64()
                    ),
                );
                tokio::time::sleep(delay).await;
            }
            Err(error) => {
                let refused_token = error.is_unauthorized();
                let _ = fatal.send(error);
                if refused_token {
                    return;
                }
                tokio::time::sleep(shared.config.max_backoff).await;
            }
        }
    }
}

/// Sends one report of spooled results; forgets every acknowledged one. Returns the cancelled
/// in-flight results and how many spooled results were forgotten.
async fn report_once(shared: &Shared) -> Result<(Vec<ResultId>, usize), ApiError> {
    let results = shared.spool.pending(REPORT_BATCH);
    if results.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let in_flight = lock(&shared.in_flight).iter().copied().collect();
    let response = shared
        .api
        .report(&ReportRequest { results, in_flight })
        .await?;
    for ack in &response.acks {
        if let Some(reason) = &ack.reason {
            shared.events.emit(
                "report-refused",
                serde_json::json!({"result_id": ack.result_id, "status": ack.status, "reason": reason}),
                format!("server did not record result {}: {reason}", ack.result_id),
            );
        }
        shared.spool.remove(ack.result_id);
    }
    Ok((response.cancelled, response.acks.len()))
}

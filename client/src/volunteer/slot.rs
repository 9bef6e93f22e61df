//! One slot's task: verify the assignment's module, run it in the sandbox, spool the outcome.

use std::sync::Arc;
use std::time::{Duration, Instant};

use musketeer_protocol::{Assignment, Base64Bytes, ErrorKind, Outcome, ResultId, ResultReport};
use musketeer_signing_keys::SignedManifest;
use tokio::sync::mpsc;

use super::modules::ModuleError;
use super::status::RunningGuard;
use super::work::{Shared, lock};
use crate::sandbox::{RunError, RunOptions};

/// Kept of a task's stderr in its report.
const STDERR_TAIL: usize = 4096;

/// A slot's task finished (its result is written to the spool, unless it was cancelled; it is
/// reported once synced).
pub struct SlotDone {
    pub result_id: ResultId,
    pub slot: usize,
    /// From start to written result, for sizing the work buffer.
    pub took: Duration,
}

pub async fn run_slot(
    shared: Arc<Shared>,
    assignment: Assignment,
    slot: usize,
    done: mpsc::UnboundedSender<SlotDone>,
) {
    let started = Instant::now();
    let result_id = assignment.result_id;
    let unit_id = assignment.unit_id;
    let app = format!("{} {}", assignment.app, assignment.version);
    shared.events.emit(
        "started",
        serde_json::json!({"slot": slot, "result_id": result_id, "unit_id": unit_id, "app": assignment.app, "version": assignment.version.to_string()}),
        format!("slot {slot}: running unit {unit_id} ({app})"),
    );
    // On the board from the moment the volunteer hears "started", so that `status` shows the
    // unit while its module is fetched and compiled too.
    let on_board = shared
        .config
        .gate
        .board()
        .start(unit_id.to_string(), app.clone());
    let outcome = execute(&shared, assignment, &on_board).await;
    drop(on_board);
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
    if let Err(error) = shared.spool.push(ResultReport { result_id, outcome }).await {
        shared.events.emit(
            "spool-error",
            serde_json::json!({"result_id": result_id, "error": error.to_string()}),
            format!("cannot keep result {result_id} on disk: {error}"),
        );
    }
    lock(&shared.in_flight).remove(&result_id);
    shared.events.emit(event, fields, text);
    // Reported only after its event: whoever sees the server count it has seen the event too.
    shared.spool.release(result_id);
    shared.spooled.notify_one();
    let _ = done.send(SlotDone {
        result_id,
        slot,
        took: started.elapsed(),
    });
}

/// Verifies, prepares and runs one assignment.
async fn execute(shared: &Shared, assignment: Assignment, on_board: &RunningGuard) -> Outcome {
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
    // The same bytes on every client, whatever its serde_json features (see the protocol); a
    // raw input's bytes exactly as submitted.
    let input = match assignment.unit_input() {
        Ok(input) => input.task_bytes().into_owned(),
        Err(why) => {
            return Outcome::Error {
                kind: ErrorKind::BadAssignment,
                message: why.to_owned(),
                fuel_consumed: 0,
                wall_ms: 0,
                stderr_tail: String::new(),
            };
        }
    };
    // Preferences hook: the gate pauses the task at fuel yields.
    on_board.task_begins();
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

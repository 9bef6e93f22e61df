use serde::{Deserialize, Serialize};

use crate::{Base64Bytes, BatchId, UnitId};

/// `POST /api/v1/batches` body (researcher or admin token). Exactly one of `inputs` and
/// `raw_inputs` is given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubmitBatchRequest {
    /// The app to run.
    pub app: String,
    /// The app version; None: the app's current version at submission.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub version: Option<semver::Version>,
    /// One work unit per input (e.g. one per JSON line of the researcher's file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<serde_json::Value>,
    /// Instead of `inputs`: one work unit per byte string, which the task receives unchanged
    /// (`musketeer submit --lines`: one per line). Servers older than raw inputs refuse such a
    /// body for its missing `inputs` (400 `invalid_json`), so it is never stored as JSON; only
    /// volunteers that declare [`ClientCapability::RawInput`](crate::ClientCapability) run them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub raw_inputs: Vec<Base64Bytes>,
    /// Replication and deadline settings; omitted fields take their defaults.
    #[serde(default)]
    pub replication: Replication,
    /// Higher priorities are handed out first; default 0.
    #[serde(default)]
    pub priority: i32,
    /// A note shown with the batch.
    #[serde(default)]
    pub label: Option<String>,
}

/// BOINC-style replication settings of each unit of a batch. Every field is optional on submit;
/// the server answers with the resolved values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Replication {
    /// Agreeing successful results needed for a canonical result (default 1).
    #[serde(default)]
    pub min_quorum: Option<u32>,
    /// Replicas sent initially (default: `min_quorum`).
    #[serde(default)]
    pub target_nresults: Option<u32>,
    /// The unit fails when it has more error results (including missed deadlines) than this
    /// (BOINC's rule; default 3, so the fourth error fails it).
    #[serde(default)]
    pub max_error_results: Option<u32>,
    /// Replicas ever created after which the unit fails (default `target_nresults + 5`).
    #[serde(default)]
    pub max_total_results: Option<u32>,
    /// A replica's deadline after it is sent, milliseconds (default 1 hour).
    #[serde(default)]
    pub delay_bound_ms: Option<u64>,
}

/// `POST /api/v1/batches` answer. The batch is durable when this arrives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubmitBatchResponse {
    /// The new batch.
    pub batch_id: BatchId,
    /// Its units' ids are `first_unit .. first_unit + n_units`, in input order.
    pub first_unit: UnitId,
    /// How many units it has.
    pub n_units: u64,
    /// The app version it runs.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub version: semver::Version,
    /// The resolved replication settings.
    pub replication: Replication,
}

/// A work unit's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum UnitState {
    /// Waiting for a host.
    Queued,
    /// At least one replica is running.
    Running,
    /// A canonical result exists.
    Done,
    /// Gave up (too many errors or no agreement); see the error.
    Failed,
    /// Its batch was cancelled before it finished.
    Cancelled,
}

/// Work units by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnitCounts {
    /// Waiting for a host.
    pub queued: u64,
    /// Running.
    pub running: u64,
    /// Done.
    pub done: u64,
    /// Failed.
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
}

impl UnitCounts {
    /// All units.
    pub fn total(&self) -> u64 {
        self.queued + self.running + self.done + self.failed + self.cancelled
    }

    /// Units in a final state.
    pub fn finished(&self) -> u64 {
        self.done + self.failed + self.cancelled
    }

    /// The counter of one state.
    pub fn get_mut(&mut self, state: UnitState) -> &mut u64 {
        match state {
            UnitState::Queued => &mut self.queued,
            UnitState::Running => &mut self.running,
            UnitState::Done => &mut self.done,
            UnitState::Failed => &mut self.failed,
            UnitState::Cancelled => &mut self.cancelled,
        }
    }
}

/// A batch's overall state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum BatchState {
    /// Some units are not finished.
    Running,
    /// Every unit is done or failed.
    Finished,
    /// Cancelled by its owner or an admin.
    Cancelled,
}

/// `GET /api/v1/batches/{id}` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchStatus {
    /// The batch.
    pub id: BatchId,
    /// Its app.
    pub app: String,
    /// Its app version.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub version: semver::Version,
    /// Its note.
    pub label: Option<String>,
    /// Overall state.
    pub state: BatchState,
    /// When it was submitted.
    pub created_ms: u64,
    /// Its first unit id (the others follow).
    pub first_unit: UnitId,
    /// Units by state; `counts.total()` is the number of units.
    pub counts: UnitCounts,
    /// Finished units / all units, in [0, 1].
    pub progress: f64,
    /// Resolved replication settings.
    pub replication: Replication,
    /// Its priority.
    pub priority: i32,
    /// While units wait to be sent: how many online hosts accept the app version's memory
    /// limit (volunteers' `max_task_memory`). `Some(0)`: no online host can run them now.
    /// Absent when no unit waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts_able: Option<u64>,
    /// Units stalled: waiting, none of their replicas running, and every online host able to
    /// run them already returned a replica. They fail after the server's stall timeout unless
    /// a new host joins. Absent when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stalled: u64,
    /// Why one stalled unit waits and when it fails, when `stalled` > 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalled_reason: Option<String>,
}

impl BatchStatus {
    /// What the long poll of `GET /api/v1/batches/{id}?wait_ms=N&after=TAG` compares: the
    /// state, the counts by state and the stalled count, as
    /// `{state}-{queued}-{running}-{done}-{failed}-{cancelled}-{stalled}` (URL-safe). Equal
    /// tags mean no progress a researcher can see.
    pub fn progress_tag(&self) -> String {
        let c = &self.counts;
        let state = match self.state {
            BatchState::Running => "running",
            BatchState::Finished => "finished",
            BatchState::Cancelled => "cancelled",
        };
        format!(
            "{state}-{}-{}-{}-{}-{}-{}",
            c.queued, c.running, c.done, c.failed, c.cancelled, self.stalled
        )
    }
}

/// Query of `GET /api/v1/batches/{id}`: a long poll when `wait_ms` is given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema, utoipa::IntoParams))]
pub struct BatchStatusQuery {
    /// Wait up to this long (the server caps it at its longest long-poll wait) for the batch to
    /// finish or be cancelled, or, with `after`, for its progress tag to differ from `after`.
    #[serde(default)]
    pub wait_ms: Option<u64>,
    /// A [`BatchStatus::progress_tag`] the caller holds: answer as soon as progress differs.
    #[serde(default)]
    pub after: Option<String>,
}

impl BatchStatusQuery {
    /// The longest `after` accepted: a tag of seven 20-digit numbers and a state fits.
    pub const MAX_AFTER_LEN: usize = 200;
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `GET /api/v1/batches` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchList {
    /// Batches visible to the caller, newest first.
    pub batches: Vec<BatchStatus>,
}

/// `DELETE /api/v1/batches/{id}` answer: the batch and its units are gone for good (durably).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeleteBatchResponse {
    /// The deleted batch.
    pub batch_id: BatchId,
    /// How many units (with their inputs, replicas and outputs) went with it.
    pub deleted_units: u64,
}

/// One line of `GET /api/v1/batches/{id}/results?format=jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResultRow {
    /// The unit.
    pub unit_id: UnitId,
    /// Its input as submitted: a JSON input as itself, a raw input (`submit --lines`) as a
    /// string when it is UTF-8, else `null` with its bytes in `input_base64`.
    #[serde(default)]
    pub input: serde_json::Value,
    /// The bytes of a raw input that is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_base64: Option<Base64Bytes>,
    /// Its state.
    pub state: UnitState,
    /// The canonical output, when it is valid JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    /// The canonical output, when it is not valid JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_base64: Option<Base64Bytes>,
    /// Why the unit failed (or was cancelled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Formats of the batch results download.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ResultsFormat {
    /// One [`ResultRow`] JSON object per line.
    #[default]
    Jsonl,
    /// RFC 4180 CSV: `unit_id`, `input`, `state`, `error`, then one column per key of JSON object
    /// outputs (an array of objects gives one row per element), else one `output` column.
    Csv,
}

impl ResultsFormat {
    /// The `format` query value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jsonl => "jsonl",
            Self::Csv => "csv",
        }
    }
}

/// `GET /api/v1/batches/{id}/results?after=CURSOR[&wait_ms=N]`: the results of units that
/// finished since `after`, in the order they finished. Start with `after=start`; pass each
/// page's `next` as the following `after`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultsPageQuery {
    /// `start`, or the `next` of the previous page.
    pub after: String,
    /// Wait up to this long (capped by the server) for a unit to finish after the cursor, or for
    /// the batch to end, before answering an empty page.
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

impl ResultsPageQuery {
    /// The cursor that reads a batch's finished units from the first.
    pub const START: &'static str = "start";
    /// The longest cursor accepted.
    pub const MAX_AFTER_LEN: usize = 64;
}

/// One page of a batch's finished units, in the order they finished.
///
/// A cursor names a position in the server's record of finishing order, which a server restart
/// rebuilds: a cursor from before the restart reads again from the first finished unit, so a
/// reader that must see each unit once skips unit ids it has already seen (the CLI does).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultsPage {
    /// Finished units (done, failed or cancelled) after the cursor, at most a page's worth.
    pub rows: Vec<ResultRow>,
    /// The cursor of the next page.
    pub next: String,
    /// True when the batch has ended and this page holds its last finished units: there is
    /// nothing more to read.
    pub complete: bool,
    /// The batch's status when the page was read (for progress displays).
    pub status: BatchStatus,
}

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::time::Duration;

use musketeer_protocol::{
    BatchId, BatchList, BatchState, BatchStatus, BatchStatusQuery, DeleteBatchResponse,
    ResultsFormat, ResultsPage, ResultsPageQuery, Role, SubmitBatchRequest, SubmitBatchResponse,
    UnitId, UnitInput,
};
use serde::Deserialize;

use super::check_len;
use super::error::ApiError;
use super::extract::{Caller, JsonBody, PathParam, QueryParam};
use crate::domain::lifecycle::Params;
use crate::domain::results::{CsvColumns, CsvError, jsonl_line, result_row};
use crate::domain::tokens::TokenRecord;
use crate::domain::world::{Batch, DeleteError, NewBatch, World};
use crate::state::AppState;

/// Most units per batch.
pub const MAX_UNITS: usize = 1_000_000;
/// Units rendered per lock acquisition while streaming results.
const CHUNK: u64 = 512;
/// Most rows of one results page (`results?after=`).
const PAGE_ROWS: usize = 1_000;
/// A results page stops taking rows once its JSON passes this many bytes.
const PAGE_BYTES: usize = 8 << 20;

/// `POST /api/v1/batches`: researcher (or admin) token.
pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<SubmitBatchRequest>,
) -> Result<(StatusCode, Json<SubmitBatchResponse>), ApiError> {
    let user = caller.user_with(&[Role::Researcher, Role::Admin])?;
    if !user.allows_app(&request.app) {
        return Err(ApiError::forbidden(format!(
            "this token may not submit work for app {:?}",
            request.app
        )));
    }
    if let Some(label) = &request.label {
        check_len("label", label, 200)?;
    }
    let inputs = unit_inputs(request.inputs, request.raw_inputs)?;
    let params = Params::resolve(&request.replication)?;
    let (response, pending) = {
        let mut world = state.world();
        let version = match &request.version {
            Some(v) => world
                .app_version(&request.app, v)
                .map(|a| a.version.clone()),
            None => world
                .current_version(&request.app)
                .map(|a| a.version.clone()),
        }
        .ok_or_else(|| match &request.version {
            Some(v) => ApiError::not_found(format!(
                "app {:?} has no published version {v}",
                request.app
            )),
            None => ApiError::not_found(format!("app {:?} has no published version", request.app)),
        })?;
        let batch = world.submit(
            NewBatch {
                owner: user.id,
                app: request.app,
                version: version.clone(),
                inputs,
                params,
                priority: request.priority,
                label: request.label,
            },
            AppState::now_ms(),
        );
        let response = SubmitBatchResponse {
            batch_id: batch.id,
            first_unit: batch.first_unit,
            n_units: batch.n_units,
            version,
            replication: params.to_wire(),
        };
        (response, state.persist(&mut world, Vec::new()))
    };
    pending.durable().await?;
    tracing::info!(batch = %response.batch_id, units = response.n_units, "batch submitted");
    Ok((StatusCode::CREATED, Json(response)))
}

/// `GET /api/v1/batches`: the caller's batches (every batch for admin).
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<BatchList>, ApiError> {
    let user = caller.user_with(&[Role::Researcher, Role::Admin])?;
    let world = state.world();
    let online = world.online_memory_limits(AppState::now_ms());
    let batches = world
        .batches()
        .filter(|b| can_see(user, b))
        .map(|b| world.batch_status(b, &online))
        .collect();
    Ok(Json(BatchList { batches }))
}

/// `GET /api/v1/batches/{id}`, and with `?wait_ms=N[&after=TAG]` a long poll: answered as soon
/// as the batch is finished or cancelled, its progress tag differs from `after`, the wait ends
/// (capped at the server's longest long-poll wait) or the server shuts down.
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<BatchId>,
    QueryParam(query): QueryParam<BatchStatusQuery>,
) -> Result<Json<BatchStatus>, ApiError> {
    let user = caller.user_with(&[Role::Researcher, Role::Admin])?;
    if let Some(after) = &query.after {
        check_len("after", after, BatchStatusQuery::MAX_AFTER_LEN)?;
    }
    let wait = Duration::from_millis(query.wait_ms.unwrap_or(0).min(state.options.max_wait_ms));
    let give_up = tokio::time::Instant::now() + wait;
    let mut progress = state.progress_signal();
    let mut shutdown = state.shutdown_signal();
    loop {
        progress.borrow_and_update();
        let status = {
            let world = state.world();
            let online = world.online_memory_limits(AppState::now_ms());
            world.batch_status(visible(&world, user, id)?, &online)
        };
        let moved = status.state != BatchState::Running
            || query
                .after
                .as_deref()
                .is_some_and(|after| after != status.progress_tag());
        if moved || tokio::time::Instant::now() >= give_up || *shutdown.borrow() {
            return Ok(Json(status));
        }
        tokio::select! {
            changed = progress.changed() => {
                // The sender lives as long as the state; gone means shutting down.
                if changed.is_err() {
                    return Ok(Json(status));
                }
            }
            () = tokio::time::sleep_until(give_up) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// `POST /api/v1/batches/{id}/cancel`.
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<BatchId>,
) -> Result<Json<BatchStatus>, ApiError> {
    let user = caller.user_with(&[Role::Researcher, Role::Admin])?;
    let (status, pending) = {
        let mut world = state.world();
        visible(&world, user, id)?;
        let status = world
            .cancel_batch(id, AppState::now_ms())
            .map(Batch::status);
        (status, state.persist(&mut world, Vec::new()))
    };
    pending.durable().await?;
    tracing::info!(batch = %id, "batch cancelled");
    status
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no batch {id}")))
}

/// `DELETE /api/v1/batches/{id}`: a finished or cancelled batch and its units, for good.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<BatchId>,
) -> Result<Json<DeleteBatchResponse>, ApiError> {
    let user = caller.user_with(&[Role::Researcher, Role::Admin])?;
    let (deleted, pending) = {
        let mut world = state.world();
        visible(&world, user, id)?;
        let deleted = world.delete_batch(id).map_err(|error| match error {
            DeleteError::NotFinished { .. } => ApiError::conflict(error.to_string()),
            _ => ApiError::not_found(error.to_string()),
        })?;
        (deleted, state.persist(&mut world, Vec::new()))
    };
    pending.durable().await?;
    tracing::info!(batch = %id, units = deleted.n_units, "batch deleted");
    Ok(Json(DeleteBatchResponse {
        batch_id: id,
        deleted_units: deleted.n_units,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ResultsQuery {
    #[serde(default)]
    #[param(inline)]
    format: ResultsFormat,
    /// With a cursor: one JSON page of the units finished since it ([`ResultsPage`]).
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    wait_ms: Option<u64>,
}

/// `GET /api/v1/batches/{id}/results?format=jsonl|csv`: streamed, one row per unit. With
/// `?after=CURSOR[&wait_ms=N]`: the page of units finished since the cursor, as JSON.
pub async fn results(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<BatchId>,
    QueryParam(query): QueryParam<ResultsQuery>,
) -> Result<Response, ApiError> {
    let user = caller.user_with(&[Role::Researcher, Role::Admin])?;
    if let Some(after) = query.after {
        let query = ResultsPageQuery {
            after,
            wait_ms: query.wait_ms,
        };
        return results_page(state, user, id, query)
            .await
            .map(IntoResponse::into_response);
    }
    let (first, end) = {
        let world = state.world();
        let batch = visible(&world, user, id)?;
        (batch.first_unit.0, batch.first_unit.0 + batch.n_units)
    };
    let format = query.format;
    let columns = match format {
        ResultsFormat::Csv => {
            let mut columns = CsvColumns::default();
            for start in (first..end).step_by(CHUNK as usize) {
                let world = state.world();
                scan_chunk(&world, start, end, |unit| {
                    columns.observe(&result_row(unit))
                })?;
            }
            Some(columns)
        }
        ResultsFormat::Jsonl => None,
    };
    // A CSV download starts with its header record; JSON lines have none.
    let header = columns
        .as_ref()
        .map_or_else(|| Ok(Vec::new()), CsvColumns::header)
        .map_err(DownloadError::from);
    let chunks = futures_util::stream::unfold(Some(first), move |next| {
        let state = state.clone();
        let columns = columns.clone();
        async move {
            let start = next?;
            let text = render_chunk(&state, columns.as_ref(), start, end);
            let next = (start + CHUNK < end).then_some(start + CHUNK);
            Some((text.map(Bytes::from), next))
        }
    });
    let head = futures_util::stream::once(async move { header.map(Bytes::from) });
    let body = Body::from_stream(futures_util::StreamExt::chain(head, chunks));
    let (content_type, extension) = match format {
        ResultsFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        ResultsFormat::Jsonl => ("application/x-ndjson", "jsonl"),
    };
    let disposition = format!("attachment; filename=\"batch-{id}.{extension}\"");
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// Why a download stopped part way (the client sees a cut-off body).
#[derive(Debug, thiserror::Error)]
enum DownloadError {
    /// A row did not render as CSV.
    #[error(transparent)]
    Csv(#[from] CsvError),
    /// Finished units could not be read from the store.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// The result rows of units `start..` (at most [`CHUNK`]), as CSV records or JSON lines.
fn render_chunk(
    state: &AppState,
    columns: Option<&CsvColumns>,
    start: u64,
    end: u64,
) -> Result<Vec<u8>, DownloadError> {
    let mut out = Vec::new();
    let world = state.world();
    let mut rows = Vec::new();
    scan_chunk(&world, start, end, |unit| rows.push(result_row(unit)))?;
    drop(world);
    for row in rows {
        match columns {
            Some(columns) => out.extend(columns.lines(&row)?),
            None => out.extend(jsonl_line(&row).into_bytes()),
        }
    }
    Ok(out)
}

/// A page of the units finished after `query.after`, waiting (a long poll, as for the status)
/// while there is none and the batch runs.
async fn results_page(
    state: AppState,
    user: &TokenRecord,
    id: BatchId,
    query: ResultsPageQuery,
) -> Result<Json<ResultsPage>, ApiError> {
    check_len("after", &query.after, ResultsPageQuery::MAX_AFTER_LEN)?;
    let wait = Duration::from_millis(query.wait_ms.unwrap_or(0).min(state.options.max_wait_ms));
    let give_up = tokio::time::Instant::now() + wait;
    let mut progress = state.progress_signal();
    let mut shutdown = state.shutdown_signal();
    loop {
        progress.borrow_and_update();
        let page = read_page(&state.world(), user, id, &query.after)?;
        if !page.rows.is_empty()
            || page.complete
            || tokio::time::Instant::now() >= give_up
            || *shutdown.borrow()
        {
            return Ok(Json(page));
        }
        tokio::select! {
            changed = progress.changed() => {
                if changed.is_err() {
                    return Ok(Json(page));
                }
            }
            () = tokio::time::sleep_until(give_up) => {}
            _ = shutdown.changed() => {}
        }
    }
}

fn read_page(
    world: &World,
    user: &TokenRecord,
    id: BatchId,
    after: &str,
) -> Result<ResultsPage, ApiError> {
    let batch = visible(world, user, id)?;
    let epoch = world.finish_epoch();
    let finished = &batch.finish_order;
    let start = cursor_position(after, epoch)?
        .filter(|&position| position <= finished.len())
        .unwrap_or(0);
    let mut rows = Vec::new();
    let mut bytes = 0;
    let mut position = start;
    for unit_id in &finished[start..] {
        if rows.len() >= PAGE_ROWS || (bytes >= PAGE_BYTES && !rows.is_empty()) {
            break;
        }
        position += 1;
        if let Some(unit) = world.stored_unit(*unit_id)? {
            let row = result_row(&unit);
            bytes += jsonl_line(&row).len();
            rows.push(row);
        }
    }
    let online = world.online_memory_limits(AppState::now_ms());
    let status = world.batch_status(batch, &online);
    Ok(ResultsPage {
        rows,
        next: format!("{epoch:016x}-{position}"),
        complete: status.state != BatchState::Running && position == finished.len(),
        status,
    })
}

/// The position a cursor names, or None when it comes from another rebuild of the finishing
/// order (before a restart): then reading starts over.
fn cursor_position(after: &str, epoch: u64) -> Result<Option<usize>, ApiError> {
    if after == ResultsPageQuery::START {
        return Ok(Some(0));
    }
    let malformed = || {
        ApiError::invalid(format!(
            "after={after:?} is not a results cursor: pass `{}` or the `next` of the previous page",
            ResultsPageQuery::START
        ))
    };
    let (cursor_epoch, position) = after.split_once('-').ok_or_else(malformed)?;
    let cursor_epoch = u64::from_str_radix(cursor_epoch, 16).map_err(|_| malformed())?;
    let position: usize = position.parse().map_err(|_| malformed())?;
    Ok((cursor_epoch == epoch).then_some(position))
}

/// The units' inputs: the JSON `inputs` or the `raw_inputs` (exactly one of them, 1 to
/// [`MAX_UNITS`]). Refuses a batch with an input that clients could not take (the protocol's
/// input limits), so that no unit can stop the volunteers that fetch it.
fn unit_inputs(
    json: Vec<serde_json::Value>,
    raw: Vec<musketeer_protocol::Base64Bytes>,
) -> Result<Vec<UnitInput>, ApiError> {
    let (field, inputs): (&str, Vec<UnitInput>) = match (json.is_empty(), raw.is_empty()) {
        (false, false) => {
            return Err(ApiError::invalid(
                "give either `inputs` (JSON) or `raw_inputs` (base64 bytes), not both",
            ));
        }
        (_, true) => ("inputs", json.into_iter().map(UnitInput::Json).collect()),
        (true, false) => (
            "raw_inputs",
            raw.into_iter()
                .map(|bytes| UnitInput::Raw(bytes.into_inner()))
                .collect(),
        ),
    };
    if inputs.is_empty() || inputs.len() > MAX_UNITS {
        return Err(ApiError::invalid(format!(
            "a batch needs 1 to {MAX_UNITS} inputs"
        )));
    }
    for (index, input) in inputs.iter().enumerate() {
        if let Err(error) = input.check() {
            return Err(ApiError::invalid(format!(
                "{field}[{index}] (unit {} of the batch): {error}; make it smaller or flatter",
                index + 1
            )));
        }
    }
    Ok(inputs)
}

/// Hands the units `start..` (at most [`CHUNK`], below `end`) to `visit` in id order, from
/// memory or the store.
fn scan_chunk(
    world: &World,
    start: u64,
    end: u64,
    mut visit: impl FnMut(&crate::domain::lifecycle::Unit),
) -> Result<(), crate::store::StoreError> {
    let ids = UnitId(start)..UnitId(end.min(start + CHUNK));
    world.scan_units(ids, false, |unit| {
        visit(unit);
        true
    })
}

/// Whether `user` may see `batch`: its owner, or an admin.
pub(super) fn can_see(user: &TokenRecord, batch: &Batch) -> bool {
    user.role == Role::Admin || batch.owner == user.id
}

/// The batch, if the caller may see it; others' batches look absent.
fn visible<'w>(world: &'w World, user: &TokenRecord, id: BatchId) -> Result<&'w Batch, ApiError> {
    world
        .batch(id)
        .filter(|b| can_see(user, b))
        .ok_or_else(|| ApiError::not_found(format!("no batch {id} for this token")))
}

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use musketeer_protocol::{
    ClientCapability, FetchRequest, HostId, MAX_RESULTS_PER_REQUEST, Outcome, ReportAck,
    ReportRequest, ReportResponse, ResultId, ResultReport,
};
use serde::Serialize;

use super::error::ApiError;
use super::extract::{Caller, ClientIp, JsonBody};
use super::hosts::check_platform;
use crate::domain::lifecycle::Reported;
use crate::domain::world::{AssignmentView, HostAccepts, World};
use crate::state::AppState;

/// Most assignments per fetch.
pub const MAX_ASSIGNMENTS: u32 = musketeer_protocol::limits::MAX_ASSIGNMENTS_PER_FETCH;
/// Most results per report, and in-flight ids per request.
pub const MAX_RESULTS: usize = 1024;
const MAX_STDERR_TAIL: usize = 8 * 1024;

/// A [`musketeer_protocol::FetchResponse`] borrowed from the world, serialized while the world is
/// locked so that no assignment is copied.
#[derive(Serialize)]
struct FetchBody<'a> {
    assignments: Vec<AssignmentView<'a>>,
    cancelled: Vec<ResultId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    acks: Vec<ReportAck>,
}

/// `POST /api/v1/work/fetch`: host token; long-polls when there is no work.
pub async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    ClientIp(ip): ClientIp,
    JsonBody(request): JsonBody<FetchRequest>,
) -> Result<Response, ApiError> {
    let host = caller.host()?;
    let network = ip.and_then(|ip| state.options.network_rule.network_of(ip));
    check_platform(&request.platform)?;
    check_in_flight(&request.in_flight)?;
    let version = semver::Version::parse(&request.platform.client_version).map_err(|e| {
        ApiError::invalid(format!(
            "platform.client_version is not a semver version: {e}"
        ))
    })?;
    let minimum = state.project().min_client_version.clone();
    if version < minimum {
        return Err(ApiError::forbidden(format!(
            "client {version} is older than this project's minimum {minimum}; upgrade musketeer"
        )));
    }
    if let Some(held) = &request.held {
        check_in_flight(held)?;
    }
    if request.capabilities.len() > FetchRequest::MAX_CAPABILITIES {
        return Err(ApiError::invalid(format!(
            "at most {} capabilities per fetch",
            FetchRequest::MAX_CAPABILITIES
        )));
    }
    let accepts = HostAccepts {
        max_task_memory: request.platform.max_task_memory,
        raw_input: request.declares(ClientCapability::RawInput),
    };
    if request.results.len() > MAX_RESULTS_PER_REQUEST {
        return Err(ApiError::invalid(format!(
            "at most {MAX_RESULTS_PER_REQUEST} results per fetch; report the rest with /work/report"
        )));
    }
    // Recorded in the first round, in the same commit as its leases; a fetch with results is
    // answered at once so that their acks are not held up by a long poll.
    let mut results = Some(request.results);
    let carries_results = results.as_ref().is_some_and(|r| !r.is_empty());
    // Leases made after the request arrived may be in an answer the host has not read yet.
    let asked_ms = AppState::now_ms();
    let mut reconciled = false;
    let wanted = request.free_slots.min(MAX_ASSIGNMENTS) as usize;
    let wait = Duration::from_millis(request.wait_ms.unwrap_or(0).min(state.options.max_wait_ms));
    let give_up = tokio::time::Instant::now() + wait;
    let mut shutdown = state.shutdown_signal();
    loop {
        let notified = state.work_available.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (body, answered, pending) = {
            let now = AppState::now_ms();
            let mut world = state.world();
            world.touch_host(host, Some(&request.platform), now);
            world.set_network(host, network.clone());
            let acks = results
                .take()
                .map(|results| record_reports(&mut world, host, results, now))
                .unwrap_or_default();
            // Once per request: a long poll's later rounds may have handed out leases.
            if let Some(held) = request.held.as_deref()
                && !std::mem::replace(&mut reconciled, true)
            {
                world.reconcile(host, held, asked_ms, now);
            }
            let ids = if wanted > 0 {
                world.fetch_within(host, wanted, now, accepts)
            } else {
                Vec::new()
            };
            let cancelled = world.cancelled_among(host, &request.in_flight);
            // A refused host still long-polls as usual (an unban, a new day or a settled
            // dispute may give it work), so that clients do not spin; the answer says why.
            let refusal = world.fetch_refusal(host, now).map(|r| r.to_string());
            let pending = state.persist(&mut world, Vec::new());
            let response = FetchBody {
                refusal,
                assignments: ids
                    .into_iter()
                    .filter_map(|id| world.assignment_view(id))
                    .collect(),
                cancelled,
                acks,
            };
            let answered = !response.assignments.is_empty()
                || !response.cancelled.is_empty()
                || carries_results;
            let mut body = Vec::with_capacity(
                64 + response
                    .assignments
                    .iter()
                    .map(|a| 320 + a.signed_manifest.get().len())
                    .sum::<usize>(),
            );
            // Ids, strings, numbers and JSON values always serialize.
            let _ = serde_json::to_writer(&mut body, &response);
            (body, answered, pending)
        };
        pending.durable().await?;
        let done_waiting = tokio::time::Instant::now() >= give_up || *shutdown.borrow();
        if answered || wanted == 0 || done_waiting {
            return Ok((
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response());
        }
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until(give_up) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// `POST /api/v1/work/report`: host token; idempotent; acknowledged once durable.
pub async fn report(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<ReportRequest>,
) -> Result<Json<ReportResponse>, ApiError> {
    let host = caller.host()?;
    if request.results.len() > MAX_RESULTS {
        return Err(ApiError::invalid(format!(
            "at most {MAX_RESULTS} results per report"
        )));
    }
    check_in_flight(&request.in_flight)?;
    let (response, pending) = {
        let now = AppState::now_ms();
        let mut world = state.world();
        world.touch_host(host, None, now);
        let acks = record_reports(&mut world, host, request.results, now);
        let cancelled = world.cancelled_among(host, &request.in_flight);
        (
            ReportResponse { acks, cancelled },
            state.persist(&mut world, Vec::new()),
        )
    };
    pending.durable().await?;
    Ok(Json(response))
}

/// Records reported results, one ack per result in order (the report and the fetch share it).
fn record_reports(
    world: &mut World,
    host: HostId,
    results: Vec<ResultReport>,
    now: u64,
) -> Vec<ReportAck> {
    results
        .into_iter()
        .map(|result| {
            let (status, reason) =
                world.report(host, result.result_id, reported(result.outcome), now);
            ReportAck {
                result_id: result.result_id,
                status,
                reason: reason.map(str::to_owned),
            }
        })
        .collect()
}

fn check_in_flight(in_flight: &[ResultId]) -> Result<(), ApiError> {
    if in_flight.len() > MAX_RESULTS {
        return Err(ApiError::invalid(format!(
            "at most {MAX_RESULTS} in_flight (or held) ids per request"
        )));
    }
    Ok(())
}

fn reported(outcome: Outcome) -> Reported {
    match outcome {
        Outcome::Success {
            output,
            fuel_consumed,
            wall_ms,
            stderr_tail,
        } => Reported::Success {
            output: output.into_inner(),
            fuel: fuel_consumed,
            wall_ms,
            stderr_tail: tail(stderr_tail),
        },
        Outcome::Error {
            kind,
            message,
            stderr_tail,
            ..
        } => Reported::Error {
            kind,
            message: tail(message),
            stderr_tail: tail(stderr_tail),
        },
        Outcome::Returned => Reported::Returned,
    }
}

/// Keep the end of a long text (the last lines matter most).
fn tail(mut text: String) -> String {
    if text.len() > MAX_STDERR_TAIL {
        let mut start = text.len() - MAX_STDERR_TAIL;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text.drain(..start);
    }
    text
}

//! The HTTP API under `/api/v1`: thin handlers that extract, call the domain and map results.

mod apps;
mod backup;
pub(crate) mod batches;
pub mod error;
pub(crate) mod extract;
mod health;
mod hosts;
mod modules;
mod project;
mod tokens;
pub(crate) mod views;
mod work;

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::handler::Handler as _;
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{delete, get, post};
use musketeer_protocol::paths;

use crate::state::AppState;
use error::ApiError;

/// Body limit of endpoints without a larger one.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// Body limit of work reports (many outputs).
pub const REPORT_BODY_LIMIT: usize = 32 * 1024 * 1024;
/// Body limit of batch submissions (many inputs).
pub const SUBMIT_BODY_LIMIT: usize = 64 * 1024 * 1024;
/// Body limit of publish (a module of up to 64 MiB, base64-encoded).
pub const PUBLISH_BODY_LIMIT: usize = 90 * 1024 * 1024;

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let router = Router::new()
        .route(paths::PROJECT, get(project::info))
        .route(paths::HOSTS_REGISTER, post(hosts::register))
        .route(
            paths::PROJECT_ROTATIONS,
            post(project::rotate.layer(middleware::from_fn(user_token_first))),
        )
        .route(paths::HOSTS, get(hosts::list))
        .route(paths::STATS, get(hosts::stats))
        .route(
            paths::WORK_FETCH,
            post(work::fetch.layer(middleware::from_fn(host_token_first))),
        )
        .route(
            paths::WORK_REPORT,
            post(work::report.layer(middleware::from_fn(host_token_first)))
                .layer(DefaultBodyLimit::max(REPORT_BODY_LIMIT)),
        )
        .route(paths::MODULE, get(modules::download))
        .route(
            paths::APPS,
            get(apps::list)
                .post(apps::publish.layer(middleware::from_fn(user_token_first)))
                .layer(DefaultBodyLimit::max(PUBLISH_BODY_LIMIT)),
        )
        .route(
            paths::BATCHES,
            get(batches::list)
                .post(batches::submit.layer(middleware::from_fn(user_token_first)))
                .layer(DefaultBodyLimit::max(SUBMIT_BODY_LIMIT)),
        )
        .route(paths::BATCH, get(batches::status).delete(batches::delete))
        .route(paths::BATCH_RESULTS, get(batches::results))
        .route(paths::BATCH_CANCEL, post(batches::cancel))
        .route(
            paths::TOKENS,
            get(tokens::list).post(tokens::create.layer(middleware::from_fn(user_token_first))),
        )
        .route(paths::TOKEN, delete(tokens::revoke))
        .route(paths::HOST, get(views::host))
        .route(
            paths::HOST_BAN,
            post(hosts::ban.layer(middleware::from_fn(user_token_first))),
        )
        .route(paths::HOST_UNBAN, post(hosts::unban))
        .route(paths::UNIT, get(views::unit))
        .route(paths::BATCH_UNITS, get(views::batch_units))
        .route(paths::FAILURES, get(views::failures))
        .route(paths::SERVER_STATUS, get(views::server_status))
        .route(paths::ADMIN_BACKUP, get(backup::download))
        .route(paths::HEALTHZ, get(health::live))
        .route(paths::READYZ, get(health::ready))
        .merge(crate::dashboard::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(DEFAULT_BODY_LIMIT));
    crate::dashboard::metrics::instrument(router)
        .layer(middleware::from_fn_with_state(state.clone(), durable_reads))
        .layer(middleware::from_fn(trace))
        .with_state(state)
}

/// Reads (GET, HEAD) answer only with what is durable: memory holds other requests' changes
/// from the moment they are made, before their commit ends, so a read waits for the commits
/// queued when it was answered (one group commit at most), and a commit refused meanwhile
/// turns it into a 503. What a researcher or the dashboard once saw is then never taken back by
/// a crash. Writes already answer after their own commit; the probes do not wait.
async fn durable_reads(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method();
    let path = request.uri().path();
    let is_read = method == axum::http::Method::GET || method == axum::http::Method::HEAD;
    if !is_read || path == paths::HEALTHZ || path == paths::READYZ {
        return next.run(request).await;
    }
    let failures = state.commit_failures();
    let response = next.run(request).await;
    match state.settle_reads(failures).await {
        Ok(()) => response,
        Err(error) => error.into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see docs/protocol.md")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// On a route that needs a host token and takes a body: no Authorization header is a 401 before
/// the body is read, so an anonymous caller learns nothing from body validation and cannot make
/// the server buffer a large body. (A header with a bad token is refused by [`extract::Caller`],
/// which also runs before the body.)
async fn host_token_first(request: Request, next: Next) -> Response {
    token_first(
        request,
        next,
        "this endpoint needs a host token (register first)",
    )
    .await
}

/// [`host_token_first`] for routes that need a user token.
async fn user_token_first(request: Request, next: Next) -> Response {
    token_first(
        request,
        next,
        "this endpoint needs a token: `Authorization: Bearer TOKEN`",
    )
    .await
}

async fn token_first(request: Request, next: Next, message: &'static str) -> Response {
    if request.headers().contains_key(AUTHORIZATION) {
        next.run(request).await
    } else {
        ApiError::unauthorized(message).into_response()
    }
}

async fn trace(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let start = Instant::now();
    let response = next.run(request).await;
    tracing::debug!(%method, %path, status = response.status().as_u16(), elapsed_us = start.elapsed().as_micros() as u64, "request");
    response
}

/// Check a free-text field's length.
fn check_len(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.chars().count() > max {
        return Err(ApiError::invalid(format!(
            "{field} is longer than {max} characters"
        )));
    }
    Ok(())
}

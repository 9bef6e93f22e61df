//! Dashboard detail views: a host with its recent replicas, a batch's units, a unit with its
//! replicas, the failures view and the server status. The views themselves are built in
//! `domain::views`.

use axum::Json;
use axum::extract::State;
use musketeer_protocol::{
    BatchId, FailureList, HostDetail, HostId, ResultId, Role, ServerStatus, UnitDetail, UnitFilter,
    UnitId, UnitList,
};
use serde::Deserialize;

use super::batches::can_see;
use super::error::ApiError;
use super::extract::{Caller, PathParam, QueryParam};
use crate::domain::tokens::TokenRecord;
use crate::domain::views;
use crate::domain::views::failures::{self, FailureQuery};
use crate::domain::world::World;
use crate::state::AppState;

/// Replicas shown on a host page.
const HOST_RECENT: usize = 50;
/// Default and largest page of a unit or failure list.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// `GET /api/v1/hosts/{id}`: dashboard view; a host may always read its own.
pub async fn host(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<HostId>,
) -> Result<Json<HostDetail>, ApiError> {
    // A host may read its own standing (`musketeer status` shows the volunteer's credit).
    if caller.host().ok() != Some(id) {
        caller.viewer(state.options.public_dashboard)?;
    }
    let world = state.world();
    let host = world
        .host(id)
        .ok_or_else(|| ApiError::not_found(format!("no host {id}")))?;
    Ok(Json(HostDetail {
        host: world.host_summary(host, AppState::now_ms()),
        recent: views::host_recent(&world, id, HOST_RECENT)?,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct UnitsQuery {
    #[param(inline)]
    state: Option<UnitFilter>,
    #[param(inline)]
    after: Option<UnitId>,
    limit: Option<usize>,
}

/// `GET /api/v1/batches/{id}/units?state=retrying&after=UNIT&limit=100`: owner or admin.
pub async fn batch_units(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<BatchId>,
    QueryParam(query): QueryParam<UnitsQuery>,
) -> Result<Json<UnitList>, ApiError> {
    let user = caller.user_with(&[Role::Researcher, Role::Admin])?;
    let limit = page_limit(query.limit)?;
    let world = state.world();
    check_batch(&world, user, id)?;
    views::batch_units(&world, id, query.state, query.after, limit)?
        .map(Json)
        .ok_or_else(|| no_batch(id))
}

/// `GET /api/v1/units/{id}`: owner of its batch, or admin.
pub async fn unit(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<UnitId>,
) -> Result<Json<UnitDetail>, ApiError> {
    let user = caller.user_with(&[Role::Researcher, Role::Admin])?;
    let world = state.world();
    let not_found = || ApiError::not_found(format!("no unit {id} for this token"));
    let unit = world.stored_unit(id)?.ok_or_else(not_found)?;
    check_batch(&world, user, unit.batch).map_err(|_| not_found())?;
    let mut detail = views::unit_detail(&unit);
    detail.stalled = world.stalled_reason(id, &world.online_memory_limits(AppState::now_ms()));
    Ok(Json(detail))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct FailuresQuery {
    #[param(inline)]
    batch: Option<BatchId>,
    #[param(inline)]
    state: Option<UnitFilter>,
    #[param(inline)]
    after: Option<ResultId>,
    limit: Option<usize>,
}

/// `GET /api/v1/failures?batch=&state=retrying&after=UNIT.N&limit=100`: the failed replicas of
/// the caller's batches (every batch for admin).
pub async fn failures(
    State(state): State<AppState>,
    caller: Caller,
    QueryParam(query): QueryParam<FailuresQuery>,
) -> Result<Json<FailureList>, ApiError> {
    let user = caller.user_with(&[Role::Researcher, Role::Admin])?;
    let limit = page_limit(query.limit)?;
    let world = state.world();
    if let Some(batch) = query.batch {
        check_batch(&world, user, batch)?;
    }
    let query = FailureQuery {
        batch: query.batch,
        filter: query.state,
        after: query.after,
        limit,
    };
    Ok(Json(failures::failures(&world, query, |b| {
        can_see(user, b)
    })?))
}

/// `GET /api/v1/status`: units by app and state, hosts' rates and unit states over the last
/// hour; whoever may read the dashboard.
pub async fn server_status(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ServerStatus>, ApiError> {
    caller.viewer(state.options.public_dashboard)?;
    let world = state.world();
    let mut history = state
        .status_history
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok(Json(history.status(&world, AppState::now_ms())))
}

/// The page size asked for, [`DEFAULT_PAGE`] if none; at most [`MAX_PAGE`].
fn page_limit(asked: Option<usize>) -> Result<usize, ApiError> {
    let limit = asked.unwrap_or(DEFAULT_PAGE);
    if limit > MAX_PAGE {
        return Err(ApiError::invalid(format!(
            "limit must be at most {MAX_PAGE}"
        )));
    }
    Ok(limit)
}

/// Others' batches look absent, as in the batch endpoints.
fn check_batch(world: &World, user: &TokenRecord, id: BatchId) -> Result<(), ApiError> {
    match world.batch(id) {
        Some(b) if can_see(user, b) => Ok(()),
        _ => Err(no_batch(id)),
    }
}

fn no_batch(id: BatchId) -> ApiError {
    ApiError::not_found(format!("no batch {id} for this token"))
}

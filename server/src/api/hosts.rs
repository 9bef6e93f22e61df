use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use musketeer_protocol::{
    BanRequest, HostId, HostList, HostPlatform, HostSummary, RegisterHostRequest,
    RegisterHostResponse, Role, Stats,
};
use subtle::ConstantTimeEq;

use super::check_len;
use super::error::ApiError;
use super::extract::{Caller, ClientIp, JsonBody, OptionalCaller, PathParam};
use crate::domain::tokens::{self, Principal};
use crate::domain::world::StandingError;
use crate::state::AppState;

/// `POST /api/v1/hosts/register`: open (or invite-only), rate-limited per address. A user
/// token, when sent, becomes the host's owner for placement.
pub async fn register(
    State(state): State<AppState>,
    owner: OptionalCaller,
    ClientIp(ip): ClientIp,
    JsonBody(request): JsonBody<RegisterHostRequest>,
) -> Result<(StatusCode, Json<RegisterHostResponse>), ApiError> {
    let now = AppState::now_ms();
    if let Some(code) = &state.options.invite_code {
        let given = request.invite_code.as_deref().unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(code.as_bytes())) {
            return Err(ApiError::forbidden(
                "this project needs a valid invite code to register",
            ));
        }
    }
    // Registration stays open: a header that names no user token is ignored, as before.
    let owner = match owner.0 {
        Some(Principal::User(record)) => Some(record.id),
        _ => None,
    };
    let name = request.name.unwrap_or_else(|| "volunteer".to_owned());
    check_len("name", &name, 64)?;
    if let Some(platform) = &request.platform {
        check_platform(platform)?;
    }
    let allowed = state
        .register_limiter
        .lock()
        .map(|mut l| l.allow(ip, now))
        .unwrap_or(false);
    if !allowed {
        return Err(ApiError::rate_limited(
            "too many registrations from this address; retry in a minute",
        ));
    }
    let token = tokens::generate(tokens::HOST_PREFIX);
    let hash = hex::encode(tokens::hash(&token));
    let (host_id, pending) = {
        let mut world = state.world();
        let id = world.register_host(name, hash.clone(), request.platform, now);
        world.set_owner(id, owner);
        world.set_network(
            id,
            ip.and_then(|ip| state.options.network_rule.network_of(ip)),
        );
        (id, state.persist(&mut world, Vec::new()))
    };
    pending.durable().await?;
    state.tokens_mut().put_host(&hash, host_id);
    tracing::info!(host = %host_id, "host registered");
    Ok((
        StatusCode::CREATED,
        Json(RegisterHostResponse {
            host_id,
            host_token: token,
        }),
    ))
}

/// Bounds on platform strings.
pub fn check_platform(platform: &HostPlatform) -> Result<(), ApiError> {
    check_len("platform.arch", &platform.arch, 64)?;
    check_len("platform.os", &platform.os, 64)?;
    check_len("platform.client_version", &platform.client_version, 64)?;
    check_len("platform.wasmtime_version", &platform.wasmtime_version, 64)?;
    if platform.slots > 4096 {
        return Err(ApiError::invalid("platform.slots must be at most 4096"));
    }
    Ok(())
}

/// `GET /api/v1/hosts`: dashboard view.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<HostList>, ApiError> {
    caller.viewer(state.options.public_dashboard)?;
    let now = AppState::now_ms();
    let world = state.world();
    Ok(Json(HostList {
        hosts: world.hosts().map(|h| world.host_summary(h, now)).collect(),
    }))
}

/// `GET /api/v1/stats`: dashboard view.
pub async fn stats(State(state): State<AppState>, caller: Caller) -> Result<Json<Stats>, ApiError> {
    caller.viewer(state.options.public_dashboard)?;
    Ok(Json(state.world().stats(AppState::now_ms())))
}

/// `POST /api/v1/hosts/{id}/ban`: admin token; the host gets no more work and its results are
/// re-verified.
pub async fn ban(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<HostId>,
    JsonBody(request): JsonBody<BanRequest>,
) -> Result<Json<HostSummary>, ApiError> {
    caller.user_with(&[Role::Admin])?;
    let reason = request.reason.trim().to_owned();
    if reason.is_empty() {
        return Err(ApiError::invalid(
            "reason must say why the host is banned (it is shown on the dashboard)",
        ));
    }
    check_len("reason", &reason, 200)?;
    change_standing(&state, id, |world, now| world.ban(id, reason, now)).await
}

/// `POST /api/v1/hosts/{id}/unban`: admin token; lifts a ban or quarantine.
pub async fn unban(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<HostId>,
) -> Result<Json<HostSummary>, ApiError> {
    caller.user_with(&[Role::Admin])?;
    change_standing(&state, id, |world, _| world.unban(id)).await
}

async fn change_standing(
    state: &AppState,
    id: HostId,
    change: impl FnOnce(&mut crate::domain::world::World, u64) -> Result<(), StandingError>,
) -> Result<Json<HostSummary>, ApiError> {
    let now = AppState::now_ms();
    let (summary, pending) = {
        let mut world = state.world();
        change(&mut world, now).map_err(|e| match e {
            StandingError::UnknownHost(_) => ApiError::not_found(e.to_string()),
        })?;
        let summary = world
            .host(id)
            .map(|h| world.host_summary(h, now))
            .ok_or_else(|| ApiError::not_found(format!("no host {id}")))?;
        (summary, state.persist(&mut world, Vec::new()))
    };
    pending.durable().await?;
    // Re-verification may have queued replicas.
    state.work_available.notify_waiters();
    Ok(Json(summary))
}

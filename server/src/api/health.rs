//! Probes for supervisors and load balancers: `/healthz` (the process answers) and `/readyz`
//! (it can also make changes durable). Public and cheap: no token, no store access.

use axum::Json;
use axum::extract::State;
use musketeer_protocol::HealthStatus;

use super::error::ApiError;
use crate::state::AppState;

/// `GET /healthz`: 200 whenever the process answers HTTP.
pub async fn live() -> Json<HealthStatus> {
    Json(HealthStatus::ok())
}

/// `GET /readyz`: 200 when the store accepts writes and the server is not shutting down,
/// otherwise 503 with the reason.
pub async fn ready(State(state): State<AppState>) -> Result<Json<HealthStatus>, ApiError> {
    state
        .readiness()
        .map(|()| Json(HealthStatus::ok()))
        .map_err(|reason| ApiError::unavailable(reason.to_string()))
}

use axum::Json;
use axum::extract::State;
use musketeer_protocol::{ProjectInfo, RegistrationPolicy, Role, TrustedKey};
use musketeer_signing_keys::RotationStatement;

use super::error::ApiError;
use super::extract::{Caller, JsonBody};
use crate::state::AppState;
use crate::store::project_write;

/// `GET /api/v1/project`: public.
pub async fn info(State(state): State<AppState>) -> Json<ProjectInfo> {
    let project = state.project();
    Json(ProjectInfo {
        name: project.name.clone(),
        trusted_keys: project
            .trust
            .keys()
            .map(|key| TrustedKey {
                key_id: key.key_id().to_string(),
                public_key: key.to_text(),
                fingerprint: key.fingerprint(),
            })
            .collect(),
        rotations: project
            .rotations
            .iter()
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect(),
        min_client_version: project.min_client_version.clone(),
        server_version: env!("CARGO_PKG_VERSION").to_owned(),
        registration: RegistrationPolicy {
            invite_required: state.options.invite_code.is_some(),
        },
    })
}

/// `POST /api/v1/project/rotations`: admin only. Trusts a new key through a statement signed
/// by a trusted one; answers with the project info clients will now see.
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(statement): JsonBody<RotationStatement>,
) -> Result<Json<ProjectInfo>, ApiError> {
    caller.user_with(&[Role::Admin])?;
    let pending = {
        let mut project = state.project_mut();
        let mut next = project.clone();
        next.rotate(&statement)
            .map_err(|e| ApiError::invalid(format!("the rotation statement was refused: {e}")))?;
        // Queued while the lock is held: anything accepted under the new key commits after it.
        let pending = state.persist_rows(vec![project_write(&next)]);
        *project = next;
        pending
    };
    pending.durable().await?;
    Ok(info(State(state)).await)
}

use axum::Json;
use axum::extract::State;
use musketeer_protocol::{ProjectInfo, RegistrationPolicy, TrustedKey};

use crate::state::AppState;

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

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use musketeer_protocol::{AppList, PublishRequest, PublishResponse};

use super::error::ApiError;
use super::extract::{Caller, JsonBody};
use crate::domain::publish::{check_publish, check_version_higher};
use crate::state::AppState;
use crate::store::Write;

/// Largest module accepted by publish.
pub const MAX_MODULE_BYTES: usize = 64 * 1024 * 1024;

/// `GET /api/v1/apps`: dashboard view; hosts may read it too, to tell their volunteer which
/// apps their memory limit leaves out (they receive these manifests with their work anyway).
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<AppList>, ApiError> {
    if caller.host().is_err() {
        caller.viewer(state.options.public_dashboard)?;
    }
    Ok(Json(AppList {
        versions: state.world().app_versions().map(|a| a.info()).collect(),
    }))
}

/// `POST /api/v1/apps`: publisher (or admin) token, signed manifest, matching module.
pub async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<PublishRequest>,
) -> Result<(StatusCode, Json<PublishResponse>), ApiError> {
    let token = caller.user()?.clone();
    let module = request.module.into_inner();
    if module.len() > MAX_MODULE_BYTES {
        return Err(ApiError::invalid(format!(
            "module is larger than {MAX_MODULE_BYTES} bytes"
        )));
    }
    let trust = state.project().trust.clone();
    let manifest = request.signed_manifest;
    // Hashing and signature checks run outside the world lock.
    let (app, module) = tokio::task::spawn_blocking(move || {
        check_publish(&trust, &token, &manifest, &module, AppState::now_ms())
            .map(|app| (app, module))
    })
    .await
    .map_err(|_| ApiError::invalid("publish check failed"))??;
    let info = app.info();
    let pending = {
        let mut world = state.world();
        check_version_higher(&app, world.current_version(&app.app).map(|a| &a.version))?;
        let module_row = Write::Module(app.module_sha256.clone(), module);
        world.publish(app);
        state.persist(&mut world, vec![module_row])
    };
    pending.durable().await?;
    tracing::info!(app = %info.app, version = %info.version, "app version published");
    Ok((StatusCode::CREATED, Json(PublishResponse { app: info })))
}

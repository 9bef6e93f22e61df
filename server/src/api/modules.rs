use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::extract::PathParam;
use crate::state::AppState;

/// `GET /api/v1/modules/{sha256}`: public, content-addressed, cached forever.
pub async fn download(
    State(state): State<AppState>,
    PathParam(sha256): PathParam<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if sha256.len() != 64
        || !sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(ApiError::invalid(
            "a module is named by its sha256: 64 lowercase hex digits",
        ));
    }
    let etag = format!("\"{sha256}\"");
    let cache = [
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ),
        (
            header::ETAG,
            HeaderValue::from_str(&etag).map_err(|_| ApiError::invalid("bad sha256"))?,
        ),
    ];
    let store = state.store.clone();
    let name = sha256.clone();
    let bytes = tokio::task::spawn_blocking(move || store.module(&name))
        .await
        .map_err(|_| ApiError::from(crate::store::StoreError::WriterStopped))??
        .ok_or_else(|| ApiError::not_found(format!("no module with sha256 {sha256}")))?;
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    Ok((
        cache,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/wasm"),
        )],
        bytes,
    )
        .into_response())
}

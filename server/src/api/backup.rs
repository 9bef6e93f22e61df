//! `GET /api/v1/admin/backup`: an online backup streamed to an admin.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use musketeer_protocol::Role;
use tokio::io::AsyncReadExt as _;

use super::error::ApiError;
use super::extract::Caller;
use crate::state::AppState;
use crate::store::{DB_FILE, StoreError};

/// Bytes per streamed chunk.
const CHUNK: usize = 256 * 1024;

/// Admin only. The copy is made first (one read transaction; serving goes on), then streamed
/// from a temporary file that is removed once the stream ends or the client goes away.
pub async fn download(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.user_with(&[Role::Admin])?;
    if state.store.is_postgres() {
        return Err(ApiError::conflict(
            "this server's store is PostgreSQL: back it up with pg_dump (docs/operator.md, \"PostgreSQL store\")",
        ));
    }
    let copy = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
        let dir = tempfile::tempdir().map_err(|error| StoreError::File {
            path: std::env::temp_dir(),
            error,
        })?;
        let path = dir.path().join(DB_FILE);
        let rows = state.store.backup_to(&path)?;
        Ok((dir, path, rows))
    })
    .await
    .map_err(|_| ApiError::unavailable("the backup could not be taken; see the server log"))??;
    let (dir, path, rows) = copy;
    let file = tokio::fs::File::open(&path).await.map_err(|error| {
        ApiError::from(StoreError::File {
            path: path.clone(),
            error,
        })
    })?;
    let length = file
        .metadata()
        .await
        .map_err(|error| ApiError::from(StoreError::File { path, error }))?
        .len();
    tracing::info!(rows, bytes = length, "backup taken");
    // The directory travels with the stream so that the file lives exactly as long as needed.
    let chunks = stream::unfold((file, dir), |(mut file, dir)| async move {
        let mut buffer = vec![0; CHUNK];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok(buffer), (file, dir)))
            }
            Err(error) => Some((Err(error), (file, dir))),
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{DB_FILE}\""),
            ),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}

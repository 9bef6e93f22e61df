use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use musketeer_protocol::{
    CreateTokenRequest, CreateTokenResponse, Role, TokenId, TokenInfo, TokenList,
};

use super::check_len;
use super::error::ApiError;
use super::extract::{Caller, JsonBody, PathParam};
use crate::domain::tokens::{self, TokenRecord};
use crate::state::AppState;
use crate::store::{Write, encode};

/// `GET /api/v1/tokens`: admin only. Never the secrets nor their hashes.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<TokenList>, ApiError> {
    caller.user_with(&[Role::Admin])?;
    let tokens = state
        .tokens()
        .users()
        .map(|record| TokenInfo {
            id: record.id,
            role: record.role,
            apps: record.apps.clone(),
            expires_ms: record.expires_ms,
            label: record.label.clone(),
            created_ms: record.created_ms,
            revoked: record.revoked,
        })
        .collect();
    Ok(Json(TokenList { tokens }))
}

/// `POST /api/v1/tokens`: admin only.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<CreateTokenRequest>,
) -> Result<(StatusCode, Json<CreateTokenResponse>), ApiError> {
    caller.user_with(&[Role::Admin])?;
    if let Some(label) = &request.label {
        check_len("label", label, 200)?;
    }
    let (token, record) = new_token(&state, request);
    state
        .persist_rows(vec![Write::Token(record.id.0, encode(&record))])
        .durable()
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreateTokenResponse {
            id: record.id,
            token,
        }),
    ))
}

fn new_token(state: &AppState, request: CreateTokenRequest) -> (String, TokenRecord) {
    let token = tokens::generate(tokens::USER_PREFIX);
    let mut table = state.tokens_mut();
    let record = TokenRecord {
        id: table.next_id(),
        hash: hex::encode(tokens::hash(&token)),
        role: request.role,
        apps: request.apps,
        expires_ms: request.expires_ms,
        label: request.label,
        created_ms: AppState::now_ms(),
        revoked: false,
    };
    table.put_user(record.clone());
    (token, record)
}

/// `DELETE /api/v1/tokens/{id}`: admin only.
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<TokenId>,
) -> Result<StatusCode, ApiError> {
    caller.user_with(&[Role::Admin])?;
    let record = {
        let mut table = state.tokens_mut();
        let mut record = table
            .user(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("no token {id}")))?;
        record.revoked = true;
        table.put_user(record.clone());
        record
    };
    state
        .persist_rows(vec![Write::Token(id.0, encode(&record))])
        .durable()
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

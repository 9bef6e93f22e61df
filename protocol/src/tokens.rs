use serde::{Deserialize, Serialize};

use crate::TokenId;

/// What a user token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Submits batches and reads its own batches.
    Researcher,
    /// Publishes app versions.
    Publisher,
    /// Everything, including tokens and every batch.
    Admin,
}

/// `POST /api/v1/tokens` body (admin only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateTokenRequest {
    /// The new token's role.
    pub role: Role,
    /// Restrict the token to these apps (researcher: submit; publisher: publish). None: all.
    #[serde(default)]
    pub apps: Option<Vec<String>>,
    /// The token stops working at this time.
    #[serde(default)]
    pub expires_ms: Option<u64>,
    /// A note for the operator, e.g. who holds it.
    #[serde(default)]
    pub label: Option<String>,
}

/// `POST /api/v1/tokens` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateTokenResponse {
    /// The token's id (for revoking).
    pub id: TokenId,
    /// The secret; shown only once, stored only as a hash.
    pub token: String,
}

/// One user token as `GET /api/v1/tokens` lists it: never the secret nor its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    /// The token's id (for revoking).
    pub id: TokenId,
    /// What it may do.
    pub role: Role,
    /// Apps it is limited to; None: all.
    pub apps: Option<Vec<String>>,
    /// It stops working at this time.
    pub expires_ms: Option<u64>,
    /// The operator's note.
    pub label: Option<String>,
    /// When it was created.
    pub created_ms: u64,
    /// Revoked tokens are kept (they may own batches) but never authenticate.
    pub revoked: bool,
}

/// `GET /api/v1/tokens` answer (admin only), by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenList {
    /// Every user token, revoked ones included.
    pub tokens: Vec<TokenInfo>,
}

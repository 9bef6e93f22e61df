use serde::{Deserialize, Serialize};

/// `GET /api/v1/project` answer: what a client pins on first contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectInfo {
    /// The project's display name.
    pub name: String,
    /// Keys whose signatures on app manifests the project accepts.
    pub trusted_keys: Vec<TrustedKey>,
    /// Key-rotation statements, oldest first, as their signed JSON documents.
    pub rotations: Vec<serde_json::Value>,
    /// Clients older than this are refused work.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub min_client_version: semver::Version,
    /// The server's version.
    pub server_version: String,
    /// How hosts may register.
    pub registration: RegistrationPolicy,
}

/// One trusted public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrustedKey {
    /// `ed25519:<16 hex>`.
    pub key_id: String,
    /// The key in its text form (as in a `.pub` file).
    pub public_key: String,
    /// A human-comparable fingerprint.
    pub fingerprint: String,
}

/// How hosts may register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegistrationPolicy {
    /// Registration needs the operator's invite code.
    pub invite_required: bool,
}

use serde::{Deserialize, Serialize};

use crate::{Base64Bytes, Limits};

/// `POST /api/v1/apps` body (publisher token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublishRequest {
    /// The signed manifest, as the JSON document `musketeer-signing-keys` writes.
    pub signed_manifest: serde_json::Value,
    /// The module's bytes; their sha256 and size must match the manifest.
    pub module: Base64Bytes,
}

/// `POST /api/v1/apps` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublishResponse {
    /// The version now current.
    pub app: AppVersionInfo,
}

/// One published app version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppVersionInfo {
    /// The app's name.
    pub app: String,
    /// Its version.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub version: semver::Version,
    /// The key that signed the manifest.
    pub key_id: String,
    /// The module's sha256, lowercase hex.
    pub module_sha256: String,
    /// The module's size in bytes.
    pub module_size: u64,
    /// Hosts or URL prefixes the task may GET.
    pub http_allow: Vec<String>,
    /// Resource limits from the manifest.
    pub limits: Limits,
    /// When it was published.
    pub published_ms: u64,
    /// The input the task expects, as its author signed it in the manifest (absent if none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<AppInput>,
}

/// The input an app expects, from its signed manifest.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppInput {
    /// A short description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// An example input, as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
}

/// `GET /api/v1/apps` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppList {
    /// Every published version, by app then version.
    pub versions: Vec<AppVersionInfo>,
}

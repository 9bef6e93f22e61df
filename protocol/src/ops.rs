//! Bodies of the operations endpoints: liveness and readiness probes.

use serde::{Deserialize, Serialize};

/// `GET /healthz` and `GET /readyz` answer when the check passes. A failing `/readyz` answers
/// 503 with an [`crate::ApiErrorBody`] saying why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthStatus {
    /// Always `"ok"` in a 200 answer.
    pub status: String,
}

impl HealthStatus {
    /// The passing answer.
    pub fn ok() -> Self {
        Self {
            status: "ok".into(),
        }
    }
}

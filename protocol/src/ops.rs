//! Bodies of the operations endpoints: liveness and readiness probes.

use serde::{Deserialize, Serialize};

/// `GET /healthz` and `GET /readyz` answer when the check passes. A failing `/readyz` answers
/// 503 with an [`crate::ApiErrorBody`] saying why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthStatus {
    /// Always `"ok"` in a 200 answer.
    pub status: String,
    /// Which of several servers on one PostgreSQL database answered: `"active"` (it holds the
    /// state) or `"standby"` (it forwards every request to the active one). Absent on a server
    /// with the embedded store, which runs alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

impl HealthStatus {
    /// The passing answer.
    pub fn ok() -> Self {
        Self {
            status: "ok".into(),
            instance: None,
        }
    }

    /// The passing answer of a server that is `instance` (`"active"` or `"standby"`).
    pub fn ok_as(instance: &str) -> Self {
        Self {
            instance: Some(instance.into()),
            ..Self::ok()
        }
    }
}

use serde::{Deserialize, Serialize};

/// The body of every error answer: `{"error": code, "message": text}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiErrorBody {
    /// Machine-readable reason.
    pub error: ErrorCode,
    /// Human-readable explanation, safe to show to the user.
    pub message: String,
}

/// Machine-readable error codes. Clients should treat an unknown code like its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The body is not valid JSON, or has missing fields or wrong types (400).
    InvalidJson,
    /// The request is well-formed but its values are not acceptable (400 or 422).
    InvalidRequest,
    /// No token, or a token that is unknown, revoked or expired (401).
    Unauthorized,
    /// The token is valid but its role or app scope does not allow this (403).
    Forbidden,
    /// The path or the id in it does not exist (404).
    NotFound,
    /// The method is not allowed on this path (405).
    MethodNotAllowed,
    /// The request conflicts with the current state, e.g. a version that is not higher (409).
    Conflict,
    /// The body is larger than this endpoint accepts (413).
    PayloadTooLarge,
    /// The body is not `application/json` (415).
    UnsupportedMediaType,
    /// A signed manifest failed verification against the project's trusted keys (422).
    SignatureInvalid,
    /// Too many requests from this address; retry later (429).
    RateLimited,
    /// The server cannot serve this now (storage failure or shutting down); retry later (503).
    Unavailable,
    /// A code this version of the protocol does not know.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::InvalidRequest => "invalid_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::SignatureInvalid => "signature_invalid",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_shape() {
        let body = ApiErrorBody {
            error: ErrorCode::NotFound,
            message: "no batch 7".into(),
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":"not_found","message":"no batch 7"}"#
        );
        let unknown: ApiErrorBody =
            serde_json::from_str(r#"{"error":"brand_new","message":"x"}"#).unwrap();
        assert_eq!(unknown.error, ErrorCode::Unknown);
    }

    #[test]
    fn as_str_matches_serde() {
        for code in [
            ErrorCode::InvalidJson,
            ErrorCode::InvalidRequest,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::Conflict,
            ErrorCode::PayloadTooLarge,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::SignatureInvalid,
            ErrorCode::RateLimited,
            ErrorCode::Unavailable,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }
}

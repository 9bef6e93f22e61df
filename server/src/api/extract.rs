//! Extractors whose rejections are [`ApiError`]s, and the caller's identity.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use musketeer_protocol::{HostId, Role};

use super::error::ApiError;
use crate::domain::tokens::{Principal, TokenRecord};
use crate::state::AppState;

/// A JSON body; malformed, mistyped or oversized bodies are JSON errors.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct JsonBody<T>(pub T);

/// Path parameters; unparsable ones are JSON errors.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct PathParam<T>(pub T);

/// Query parameters; unparsable ones are JSON errors.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct QueryParam<T>(pub T);

/// The peer address, when the server knows it (absent in in-process tests): the address a
/// standby forwarded the request for ([`ForwardedClient`]), else the connection's.
pub struct ClientIp(pub Option<IpAddr>);

/// The client address a standby passed on with a request it forwarded to the active server
/// (see [`crate::cluster`]); put in the request's extensions only after the standby's secret
/// was checked, so a header a client sets itself never gets here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardedClient(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let forwarded = parts.extensions.get::<ForwardedClient>().map(|f| f.0);
        Ok(ClientIp(forwarded.or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        })))
    }
}

/// Who is calling: nobody (no Authorization header), a user token or a host token. A header
/// with an unknown, revoked or expired token is refused right away.
#[derive(Debug, Clone)]
pub struct Caller(pub Option<Principal>);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(header) = parts.headers.get(AUTHORIZATION) else {
            return Ok(Caller(None));
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer TOKEN`")
            })?;
        let principal = state
            .tokens()
            .authenticate(token, AppState::now_ms())
            .ok_or_else(|| ApiError::unauthorized("unknown, revoked or expired token"))?;
        Ok(Caller(Some(principal)))
    }
}

/// The caller if its Authorization header names a valid token, else nobody: for open endpoints
/// where a token only adds something (a host's owner at registration).
#[derive(Debug, Clone)]
pub struct OptionalCaller(pub Option<Principal>);

impl FromRequestParts<AppState> for OptionalCaller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(OptionalCaller(
            Caller::from_request_parts(parts, state)
                .await
                .ok()
                .and_then(|caller| caller.0),
        ))
    }
}

impl Caller {
    /// The calling host.
    pub fn host(&self) -> Result<HostId, ApiError> {
        match &self.0 {
            Some(Principal::Host(id)) => Ok(*id),
            Some(Principal::User(_)) => {
                Err(ApiError::forbidden("this endpoint needs a host token"))
            }
            None => Err(ApiError::unauthorized(
                "this endpoint needs a host token (register first)",
            )),
        }
    }

    /// The calling user token, whatever its role.
    pub fn user(&self) -> Result<&TokenRecord, ApiError> {
        match &self.0 {
            Some(Principal::User(record)) => Ok(record),
            Some(Principal::Host(_)) => Err(ApiError::forbidden(
                "this endpoint needs a user token, not a host token",
            )),
            None => Err(ApiError::unauthorized(
                "this endpoint needs a token: `Authorization: Bearer TOKEN`",
            )),
        }
    }

    /// The calling user token, which must have one of `roles`.
    pub fn user_with(&self, roles: &[Role]) -> Result<&TokenRecord, ApiError> {
        let user = self.user()?;
        if roles.contains(&user.role) {
            Ok(user)
        } else {
            let names: Vec<String> = roles
                .iter()
                .map(|r| format!("{r:?}").to_lowercase())
                .collect();
            Err(ApiError::forbidden(format!(
                "this endpoint needs a {} token",
                names.join(" or ")
            )))
        }
    }

    /// Read access to dashboard views: any user token, or anyone if the operator made them public.
    pub fn viewer(&self, public: bool) -> Result<(), ApiError> {
        if public {
            Ok(())
        } else {
            self.user().map(drop)
        }
    }
}

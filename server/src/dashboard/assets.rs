//! The dashboard's files (the page, its JavaScript modules, style and icon), compiled into the
//! binary so that it works offline and needs nothing installed next to the server.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::error::ApiError;
use crate::api::extract::PathParam;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const INDEX_HTML: &str = include_str!("../../assets/index.html");

/// A JavaScript module of `server/assets/`.
macro_rules! script {
    ($name:literal) => {
        Asset {
            name: $name,
            content_type: "text/javascript; charset=utf-8",
            body: include_str!(concat!("../../assets/", $name)),
        }
    };
}

const FILES: &[Asset] = &[
    script!("app.js"),
    script!("core.js"),
    script!("overview.js"),
    script!("hosts.js"),
    script!("batches.js"),
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../assets/style.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../../assets/icon.svg"),
    },
];

/// Scripts and styles only from this server; nothing inline, nothing remote.
const CSP: &str = "default-src 'self'; img-src 'self' data:; connect-src 'self'; \
                   object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// `GET /`: the single page; views are chosen by the URL fragment (`#/hosts`, …).
pub async fn index() -> Response {
    serve("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /assets/{file}`.
pub async fn file(PathParam(name): PathParam<String>) -> Result<Response, ApiError> {
    FILES
        .iter()
        .find(|a| a.name == name)
        .map(|a| serve(a.content_type, a.body))
        .ok_or_else(|| ApiError::not_found(format!("no dashboard file {name:?}")))
}

fn serve(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The files change only with the binary; revalidating is cheap and avoids stale pages.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Names of the embedded files, for tests.
pub fn file_names() -> impl Iterator<Item = &'static str> {
    FILES.iter().map(|a| a.name)
}

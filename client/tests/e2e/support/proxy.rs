//! A loopback HTTP proxy between a client and the real server, for tests that must see or change
//! what crosses the wire: it records every request and may rewrite successful answers.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::background::Background;

/// Rewrites a successful answer: (path and query of the request, answer body) -> new body.
pub type Rewrite = Arc<dyn Fn(&str, Bytes) -> Bytes + Send + Sync>;

/// A request the proxy saw: arrival, method, path and query.
pub type Seen = (Instant, String, String);

#[derive(Clone)]
struct Shared {
    upstream: String,
    http: reqwest::Client,
    rewrite: Rewrite,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// The proxy; it stops with the test, pass or fail.
pub struct Proxy {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    _runtime: Background,
}

impl Proxy {
    /// Forwards every request to `upstream` unchanged, recording it.
    pub fn start(upstream: &str) -> Proxy {
        Proxy::rewriting(upstream, Arc::new(|_, body| body))
    }

    /// Forwards every request to `upstream`, recording it; successful answers pass `rewrite`.
    pub fn rewriting(upstream: &str, rewrite: Rewrite) -> Proxy {
        let runtime = Background::start("proxy");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            upstream: upstream.to_owned(),
            http: reqwest::Client::new(),
            rewrite,
            seen: seen.clone(),
        };
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let app = Router::new().fallback(forward).with_state(shared);
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Proxy {
            url: format!("http://{addr}"),
            seen,
            _runtime: runtime,
        }
    }

    /// Every request seen so far, in arrival order.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("proxy log").clone()
    }
}

async fn forward(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    shared.seen.lock().expect("proxy log").push((
        Instant::now(),
        parts.method.to_string(),
        path.clone(),
    ));
    let Ok(body) = axum::body::to_bytes(body, 64 << 20).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let mut outgoing = shared
        .http
        .request(parts.method.clone(), format!("{}{path}", shared.upstream))
        .body(body);
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
        if let Some(value) = parts.headers.get(&name) {
            outgoing = outgoing.header(name, value);
        }
    }
    let Ok(answer) = outgoing.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer.status();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let Ok(mut bytes) = answer.bytes().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    if status.is_success() {
        bytes = (shared.rewrite)(&path, bytes);
    }
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    response
}

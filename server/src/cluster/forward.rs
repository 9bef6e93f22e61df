//! The standby's reverse proxy: every request, whatever its method and path, goes to the active
//! server named in the active row, bodies streamed both ways and with no overall timeout (long
//! polls last as long as the active server holds them). When the active server cannot be
//! reached the answer is 503 with `Retry-After: 1`, and the row is read again for the next
//! request, so that a server that took over in the meantime is found.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::header::{self, HeaderMap, HeaderName};
use axum::response::Response;
use musketeer_protocol::paths;

use super::active_row::{ACTIVE_EPOCH, add_forwarded_client};
use super::{ClusterError, takeover, unavailable};
use crate::store::{ActiveRow, Store};

/// How long connecting to the active server may take before the request gets a 503.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a standby's readiness probe waits for the active server's.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Headers of one connection, not of the request (RFC 9110, 7.6.1), and `host`, which names the
/// standby; the HTTP client sets its own.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

pub(super) struct Forwarder {
    http: reqwest::Client,
    store_url: String,
    /// This server's own address: a row naming it means this server is taking over.
    own_url: String,
    /// The active row last read; None until read, and after a forwarding failure.
    active: tokio::sync::Mutex<Option<ActiveRow>>,
}

impl Forwarder {
    pub(super) fn new(store_url: &str, own_url: &str) -> Result<Forwarder, ClusterError> {
        let http = reqwest::Client::builder()
            // The active server is reached directly, whatever proxy the environment names.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .build()?;
        Ok(Forwarder {
            http,
            store_url: store_url.to_owned(),
            own_url: own_url.to_owned(),
            active: tokio::sync::Mutex::new(None),
        })
    }

    /// The active server, from the row read last or read now.
    async fn target(&self) -> Result<ActiveRow, String> {
        let mut cached = self.active.lock().await;
        if let Some(row) = &*cached {
            return Ok(row.clone());
        }
        let url = self.store_url.clone();
        let row = takeover::blocking(move || Store::read_active(&url))
            .await
            .map_err(|error| format!("cannot read which server is active: {error}"))?;
        match row {
            None => Err("no server is active on this database yet; retry in a moment".into()),
            Some(row) if row.url == self.own_url => {
                Err("this server is taking over as the active one; retry in a moment".into())
            }
            Some(row) => Ok(cached.insert(row).clone()),
        }
    }

    /// Read the row again for the next request, unless a newer one was read since.
    async fn forget(&self, epoch: u64) {
        let mut cached = self.active.lock().await;
        if cached.as_ref().is_some_and(|row| row.epoch == epoch) {
            *cached = None;
        }
    }

    /// Send `request` to the active server and stream its answer back.
    pub(super) async fn forward(&self, request: Request) -> Response {
        let target = match self.target().await {
            Ok(target) => target,
            Err(why) => return unavailable(why),
        };
        let client = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        let (parts, body) = request.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let url = format!("{}{path}", target.url.trim_end_matches('/'));
        // A body is streamed only if the request has one, so that a GET stays without one.
        let has_body = parts.headers.contains_key(header::CONTENT_LENGTH)
            || parts.headers.contains_key(header::TRANSFER_ENCODING);
        let mut headers = end_to_end(&parts.headers);
        headers.remove(header::HOST);
        add_forwarded_client(&mut headers, client, &target.secret);
        let mut outgoing = self.http.request(parts.method, url).headers(headers);
        if has_body {
            outgoing = outgoing.body(reqwest::Body::wrap_stream(body.into_data_stream()));
        }
        match outgoing.send().await {
            Ok(answer) => {
                let (status, mut headers) = (answer.status(), end_to_end(answer.headers()));
                let epoch = headers.remove(ACTIVE_EPOCH);
                if epoch.is_some_and(|epoch| epoch != target.epoch.to_string().as_str()) {
                    // Another server answers at that address now, with another secret.
                    self.forget(target.epoch).await;
                }
                let mut response = Response::new(Body::from_stream(answer.bytes_stream()));
                *response.status_mut() = status;
                *response.headers_mut() = headers;
                response
            }
            Err(error) => {
                tracing::warn!(%error, active = %target.url, "cannot forward to the active server");
                self.forget(target.epoch).await;
                unavailable(format!(
                    "the active server ({}) cannot be reached; retry in a moment (another \
                     server takes over if it is gone)",
                    target.url
                ))
            }
        }
    }

    /// Whether the active server says it is ready (for this standby's `/readyz`).
    pub(super) async fn active_is_ready(&self) -> Result<(), String> {
        let target = self.target().await?;
        let url = format!("{}{}", target.url.trim_end_matches('/'), paths::READYZ);
        match self.http.get(url).timeout(PROBE_TIMEOUT).send().await {
            Ok(answer) if answer.status().is_success() => Ok(()),
            Ok(answer) => Err(format!(
                "the active server ({}) is not ready ({})",
                target.url,
                answer.status()
            )),
            Err(_) => {
                self.forget(target.epoch).await;
                Err(format!(
                    "the active server ({}) cannot be reached",
                    target.url
                ))
            }
        }
    }
}

/// `headers` without the hop-by-hop ones, including those the `Connection` header names.
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let mut kept = headers.clone();
    for name in HOP_BY_HOP.iter() {
        kept.remove(name);
    }
    for name in named {
        kept.remove(name.as_str());
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// A standby that meets another epoch than the row it read (the active server was replaced
    /// at the same address) reads the row again before the next request, and strips the
    /// header; the same epoch keeps the row.
    #[tokio::test]
    async fn another_epoch_in_an_answer_makes_the_standby_read_the_row_again() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(|request: Request| async move {
            let epoch = request.uri().query().unwrap_or("1").to_owned();
            ([(super::ACTIVE_EPOCH, epoch)], "answer")
        });
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let forwarder = Forwarder::new("postgres://nobody@127.0.0.1:1/none", "http://me").unwrap();
        for (query, kept) in [("1", true), ("2", false)] {
            let row = ActiveRow {
                epoch: 1,
                url: url.clone(),
                secret: "mkf_s".into(),
            };
            *forwarder.active.lock().await = Some(row);
            let request = Request::builder()
                .uri(format!("/anything?{query}"))
                .body(Body::empty())
                .unwrap();
            let response = forwarder.forward(request).await;
            assert_eq!(response.status(), 200);
            assert!(response.headers().get(super::ACTIVE_EPOCH).is_none());
            assert_eq!(
                forwarder.active.lock().await.is_some(),
                kept,
                "epoch {query}"
            );
        }
        server.abort();
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_stay_behind() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let kept = end_to_end(&headers);
        let mut names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["authorization", "content-type"]);
    }
}

//! Network reads against real loopback servers: the allowlist holds against a server that
//! decodes `%2F` before normalising, and API answers past their endpoint's cap are refused.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, Uri, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use musketeer_client::api_client::{ApiClient, ApiError};
use musketeer_client::net::fetch::{FetchError, HttpConfig, HttpFetcher, RequestBudget};
use musketeer_client::net::policy::Allowlist;
use musketeer_protocol::{Backend, FetchRequest, HostPlatform};

use crate::support::serve;

/// Decodes every escape, `%2F` included, then resolves dot segments: what many servers do.
fn decode_then_normalise(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    let mut segments: Vec<String> = Vec::new();
    for segment in String::from_utf8_lossy(&decoded)
        .replace('\\', "/")
        .split('/')
    {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other.to_owned()),
        }
    }
    format!("/{}", segments.join("/"))
}

/// Serves `SECRET` at `/secret` and `public` under `/prefix/`, after decoding the path.
fn decoding_server() -> Router {
    Router::new().fallback(|uri: Uri| async move {
        let path = decode_then_normalise(uri.path());
        if path == "/secret" {
            (StatusCode::OK, "SECRET").into_response()
        } else if path == "/prefix/redirect" {
            let to = "/prefix/..%2fsecret";
            (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
        } else if path.starts_with("/prefix/") || path.starts_with("/prefixEVIL") {
            (StatusCode::OK, "public").into_response()
        } else {
            StatusCode::NOT_FOUND.into_response()
        }
    })
}

#[tokio::test]
async fn encoded_separators_cannot_leave_the_allowed_prefix() {
    let server = serve(decoding_server()).await;
    // The server really does serve the secret through the encoded path.
    let direct = reqwest::get(server.url("/prefix/..%2fsecret"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(direct, "SECRET");

    let fetcher = HttpFetcher::new(HttpConfig::default()).unwrap();
    let allowlist = Allowlist::new(&[server.url("/prefix/")]).unwrap();
    let get = |path: &'static str| {
        let (fetcher, allowlist, url) = (&fetcher, &allowlist, server.url(path));
        async move {
            let mut budget = RequestBudget::new(8);
            fetcher.get(allowlist, &mut budget, &url, &[]).await
        }
    };
    let allowed = get("/prefix/data.json").await.unwrap();
    assert_eq!(
        (allowed.status, allowed.body.as_slice()),
        (200, &b"public"[..])
    );
    for path in [
        "/prefix/..%2fsecret",
        "/prefix/..%2Fsecret",
        "/prefix/%2e%2e%2fsecret",
        "/prefix/..%5csecret",
        "/prefix/..%252fsecret",
        "/prefix/redirect", // the hop to the encoded path is checked too
    ] {
        match get(path).await {
            Err(FetchError::Denied(reason)) => {
                assert!(reason.contains("ambiguous"), "{path}: {reason}")
            }
            other => panic!("{path} should be denied, got {other:?}"),
        }
    }

    // An entry without a trailing slash still matches whole segments only.
    let no_slash = Allowlist::new(&[server.url("/prefix")]).unwrap();
    let mut budget = RequestBudget::new(8);
    let evil = fetcher
        .get(&no_slash, &mut budget, &server.url("/prefixEVIL"), &[])
        .await;
    assert!(matches!(evil, Err(FetchError::Denied(_))), "{evil:?}");
}

fn platform() -> HostPlatform {
    HostPlatform {
        arch: "x86_64".into(),
        os: "linux".into(),
        client_version: "0.1.0".into(),
        wasmtime_version: "48.0.8".into(),
        backend: Backend::Cranelift,
        slots: 1,
        max_task_memory: None,
    }
}

/// An API whose answers never end or are larger than announced.
fn flooding_api() -> Router {
    let endless = || {
        let chunk = bytes_of(64 * 1024);
        Body::from_stream(futures_util::stream::repeat_with(move || {
            Ok::<_, std::io::Error>(chunk.clone())
        }))
    };
    Router::new()
        .route("/api/v1/work/fetch", post(move || async move { endless() }))
        .route("/api/v1/project", get(|| async { vec![b' '; 2 << 20] }))
        .route("/api/v1/modules/{sha}", get(|| async { vec![0u8; 1001] }))
        .route("/api/v1/hosts", get(move || async move { endless() }))
}

fn bytes_of(n: usize) -> axum::body::Bytes {
    axum::body::Bytes::from(vec![b'['; n])
}

#[tokio::test]
async fn answers_past_their_endpoint_cap_are_refused() {
    let server = serve(flooding_api()).await;
    let api = ApiClient::new(&server.url(""), Some("t".into())).unwrap();
    let request = FetchRequest {
        capabilities: Vec::new(),
        free_slots: 1,
        platform: platform(),
        wait_ms: None,
        in_flight: Vec::new(),
        held: None,
        results: Vec::new(),
    };
    let within = Duration::from_secs(120);
    let fetch = tokio::time::timeout(within, api.fetch(&request))
        .await
        .expect("an endless answer is cut off, not read forever");
    let error = fetch.unwrap_err();
    assert!(
        matches!(error, ApiError::TooLarge { max, .. } if max == musketeer_protocol::limits::fetch_answer_cap(1) as u64),
        "{error}"
    );
    assert!(error.to_string().contains("larger than"), "{error}");
    assert!(!error.is_retryable());

    let project = api.project().await.unwrap_err();
    assert!(matches!(project, ApiError::TooLarge { .. }), "{project}");

    let module = api.module(&"ab".repeat(32), 1000).await.unwrap_err();
    assert!(
        matches!(module, ApiError::TooLarge { max: 1000, .. }),
        "{module}"
    );
    assert_eq!(
        api.module(&"ab".repeat(32), 1001).await.unwrap().len(),
        1001
    );

    let view = tokio::time::timeout(within, api.get_json::<serde_json::Value>("/api/v1/hosts"))
        .await
        .expect("an endless view is cut off");
    assert!(matches!(view, Err(ApiError::TooLarge { .. })), "{view:?}");
}

proptest::proptest! {

    /// Whatever path a task writes, if the allowlist lets it through, a server that decodes
    /// every escape and then resolves dot segments still serves something under the prefix.
    #[test]
    fn an_allowed_path_stays_under_the_prefix_after_any_decoding(
        segments in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Just("..".to_owned()),
                proptest::strategy::Just(".".to_owned()),
                "(%2[eEfF]|%5[cC]|%25|%00|[a-z.\\\\]){1,6}",
            ],
            0..6,
        ),
        trailing in proptest::bool::ANY,
    ) {
        let allowlist = Allowlist::new(&["http://h.example/prefix/".to_owned()]).unwrap();
        let mut url = format!("http://h.example/prefix/{}", segments.join("/"));
        if trailing {
            url.push('/');
        }
        if let Ok(target) = allowlist.check(&url) {
            let served = decode_then_normalise(target.url.path());
            proptest::prop_assert!(
                served == "/prefix" || served.starts_with("/prefix/"),
                "{url} was allowed but a decoding server serves {served}"
            );
        }
    }

    /// Arbitrary text never makes the check panic.
    #[test]
    fn the_check_never_panics(text in "\\PC{0,80}") {
        let allowlist = Allowlist::new(&["http://h.example/prefix/".to_owned()]).unwrap();
        let _ = allowlist.check(&text);
        let _ = allowlist.check(&format!("http://h.example/prefix/{text}"));
    }
}

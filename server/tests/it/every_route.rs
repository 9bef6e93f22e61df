//! Every route the server answers (the OpenAPI table, so a new route is covered as soon as it
//! is documented) against the classes of bad input: no token, bad tokens, a wrong method,
//! malformed JSON, an oversized body, malformed and unknown path ids. Each answer must be a 4xx
//! whose body is exactly `{"error", "message"}`, never a 5xx or a panic.

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use musketeer_server::dashboard::openapi::{Access, ROUTES, Route};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::support::{Api, Project};

struct Fixture {
    project: Project,
    api: Api,
    host: String,
}

async fn fixture() -> Fixture {
    let project = Project::new();
    let api = Api::new(&project);
    let host = api.register("h").await;
    Fixture { project, api, host }
}

impl Fixture {
    /// A token the route admits (admin is among every role list), or none for public routes.
    fn token_for(&self, route: &Route) -> Option<HeaderValue> {
        let token = match route.access {
            Access::Public => return None,
            Access::Host => &self.host,
            Access::Viewer | Access::HostOrViewer | Access::Roles(_) => &self.project.admin,
        };
        Some(bearer(token))
    }

    /// Send one request; the status and the body parsed as an error, failing the test with the
    /// request named if the answer is not a 4xx JSON error.
    async fn expect_error(
        &self,
        what: &str,
        method: Method,
        path: &str,
        authorization: Option<HeaderValue>,
        body: Option<(Body, &str)>,
    ) -> (StatusCode, String) {
        let mut request = Request::builder().method(method.clone()).uri(path);
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let body = match body {
            Some((body, content_type)) => {
                request = request.header(header::CONTENT_TYPE, content_type);
                body
            }
            None => Body::empty(),
        };
        let response = self
            .api
            .router
            .clone()
            .oneshot(request.body(body).expect("a valid request"))
            .await
            .expect("the router is infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a body");
        let context = format!(
            "{what}: {method} {path} answered {status} {:?}",
            String::from_utf8_lossy(&bytes)
        );
        assert!(status.is_client_error(), "{context}");
        if method == Method::HEAD {
            return (status, String::new());
        }
        assert!(content_type.starts_with("application/json"), "{context}");
        let value: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("{context}"));
        let fields = value.as_object().map(|o| {
            let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
            keys.sort_unstable();
            keys
        });
        assert_eq!(fields, Some(vec!["error", "message"]), "{context}");
        let message = value["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{context}");
        (
            status,
            value["error"].as_str().unwrap_or_default().to_owned(),
        )
    }
}

fn bearer(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {token}")).expect("tokens are ASCII")
}

/// The route's path with its parameters filled in: `id` with `id`, a module hash, a file name.
fn concrete(route: &Route, id: &str) -> String {
    route
        .path
        .replace("{id}", id)
        .replace("{sha256}", &"0".repeat(64))
        .replace("{file}", "missing.js")
}

fn needs_token(route: &Route) -> bool {
    route.access != Access::Public
}

fn method(route: &Route) -> Method {
    Method::from_bytes(route.method.as_bytes()).expect("the table's methods are valid")
}

#[tokio::test]
async fn every_route_refuses_missing_and_bad_tokens_with_401_json() {
    let f = fixture().await;
    let bad = [
        None,
        Some(bearer(&format!("mku_{}", "0".repeat(64)))),
        Some(bearer(&format!("mkh_{}", "0".repeat(64)))),
        Some(bearer("garbage")),
        Some(HeaderValue::from_static("Basic YWxpY2U6c2VjcmV0")),
        Some(HeaderValue::from_static("Bearer")),
        Some(HeaderValue::from_bytes(b"Bearer \xff\xfe").expect("opaque bytes are a header")),
    ];
    let mut checked = 0;
    let mut wrong = Vec::new();
    for route in ROUTES.iter().filter(|r| needs_token(r)) {
        let path = concrete(route, "1");
        for authorization in &bad {
            let body = route
                .request
                .map(|_| (Body::from("{}"), "application/json"));
            let what = format!("token {authorization:?}");
            let (status, code) = f
                .expect_error(&what, method(route), &path, authorization.clone(), body)
                .await;
            if (status, code.as_str()) != (StatusCode::UNAUTHORIZED, "unauthorized") {
                wrong.push(format!(
                    "{what}: {} {path} answered {status} {code}",
                    route.method
                ));
            }
            checked += 1;
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        checked > 100,
        "only {checked} requests: the table lost routes"
    );
}

#[tokio::test]
async fn every_route_answers_a_wrong_method_with_405_json_and_allow() {
    let f = fixture().await;
    for route in ROUTES {
        let path = concrete(route, "1");
        for wrong in [Method::PATCH, Method::PUT, Method::OPTIONS] {
            let (status, code) = f
                .expect_error("wrong method", wrong, &path, f.token_for(route), None)
                .await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
            assert_eq!(code, "method_not_allowed");
        }
    }
}

#[tokio::test]
async fn every_json_route_answers_bad_json_with_400_and_the_wrong_type_with_415() {
    let f = fixture().await;
    let with_body: Vec<&Route> = ROUTES.iter().filter(|r| r.request.is_some()).collect();
    assert!(
        with_body.len() >= 8,
        "{} routes take a body",
        with_body.len()
    );
    for route in with_body {
        let path = concrete(route, "1");
        for bad in ["", "{", "nul", "[1,", "{\"a\":}", "\u{feff}{}", "{}garbage"] {
            let body = Some((Body::from(bad), "application/json"));
            let (status, code) = f
                .expect_error("bad JSON", method(route), &path, f.token_for(route), body)
                .await;
            assert_eq!(
                (status, code.as_str()),
                (StatusCode::BAD_REQUEST, "invalid_json"),
                "{path} {bad:?}"
            );
        }
        for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
            let body = Some((Body::from("{}"), content_type));
            let (status, code) = f
                .expect_error(
                    "content type",
                    method(route),
                    &path,
                    f.token_for(route),
                    body,
                )
                .await;
            assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path}");
            assert_eq!(code, "unsupported_media_type");
        }
    }
}

#[tokio::test]
async fn every_json_route_answers_a_body_over_its_limit_with_413_json() {
    let f = fixture().await;
    // Over the largest limit (publish), so over every route's; shared, not copied per request.
    let oversized = Bytes::from(vec![b' '; musketeer_server::api::PUBLISH_BODY_LIMIT + 1]);
    for route in ROUTES.iter().filter(|r| r.request.is_some()) {
        let path = concrete(route, "1");
        let body = Some((Body::from(oversized.clone()), "application/json"));
        let (status, code) = f
            .expect_error("oversized", method(route), &path, f.token_for(route), body)
            .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert_eq!(code, "payload_too_large");
    }
}

#[tokio::test]
async fn every_id_route_answers_malformed_ids_with_400_and_unknown_ones_with_404() {
    let f = fixture().await;
    let id_routes: Vec<&Route> = ROUTES.iter().filter(|r| r.path.contains("{id}")).collect();
    assert!(
        id_routes.len() >= 10,
        "{} routes take an id",
        id_routes.len()
    );
    for route in id_routes {
        let body = || {
            route.request.map(|_| {
                (
                    Body::from(json!({"reason": "x"}).to_string()),
                    "application/json",
                )
            })
        };
        for malformed in ["abc", "-1", "1.5", "18446744073709551616", "%00", "0x10"] {
            let path = concrete(route, malformed);
            let (status, code) = f
                .expect_error(
                    "malformed id",
                    method(route),
                    &path,
                    f.token_for(route),
                    body(),
                )
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
            assert_eq!(code, "invalid_request");
        }
        let path = concrete(route, &u64::MAX.to_string());
        let (status, code) = f
            .expect_error(
                "unknown id",
                method(route),
                &path,
                f.token_for(route),
                body(),
            )
            .await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn head_is_answered_like_get_without_a_body() {
    let f = fixture().await;
    for route in ROUTES
        .iter()
        .filter(|r| r.method == "GET" && needs_token(r))
    {
        let path = concrete(route, "1");
        let (status, _) = f
            .expect_error("HEAD without token", Method::HEAD, &path, None, None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
}

#[tokio::test]
async fn query_parameters_out_of_range_or_of_the_wrong_type_are_400() {
    let f = fixture().await;
    let admin = Some(bearer(&f.project.admin));
    let cases = [
        "/api/v1/batches/1?wait_ms=-1",
        "/api/v1/batches/1?wait_ms=1e3",
        "/api/v1/batches/1?wait_ms=99999999999999999999999",
        "/api/v1/batches/1/results?format=xml",
        "/api/v1/batches/1/results?wait_ms=x&after=start",
        "/api/v1/batches/1/units?limit=-5",
        "/api/v1/batches/1/units?state=exploded",
        "/api/v1/failures?after=zz",
        "/api/v1/failures?limit=18446744073709551616",
    ];
    for path in cases {
        let (status, code) = f
            .expect_error("bad query", Method::GET, path, admin.clone(), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(code, "invalid_request");
    }
}

//! Bad input on every endpoint gets a 4xx JSON error, never a 5xx or a panic.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Api, Project, assert_error, platform};

struct Fixture {
    project: Project,
    api: Api,
    host: String,
    batch: u64,
}

async fn fixture() -> Fixture {
    let project = Project::new();
    let api = Api::new(&project);
    api.publish(&project, "demo", "1.0.0", b"m").await;
    let batch = api
        .submit(&project.researcher, "demo", json!([1]), json!({}))
        .await;
    let host = api.register("h").await;
    Fixture {
        project,
        api,
        host,
        batch,
    }
}

impl Fixture {
    /// The token each JSON endpoint needs.
    fn json_endpoints(&self) -> Vec<(&'static str, Option<String>)> {
        vec![
            ("/api/v1/hosts/register", None),
            ("/api/v1/work/fetch", Some(self.host.clone())),
            ("/api/v1/work/report", Some(self.host.clone())),
            ("/api/v1/apps", Some(self.project.publisher.clone())),
            ("/api/v1/batches", Some(self.project.researcher.clone())),
            ("/api/v1/tokens", Some(self.project.admin.clone())),
        ]
    }

    async fn raw(
        &self,
        path: &str,
        token: Option<&str>,
        body: impl Into<Body>,
        content_type: Option<&str>,
    ) -> (StatusCode, Value) {
        let (status, bytes, _) = self
            .api
            .send(Method::POST, path, token, Some(body.into()), content_type)
            .await;
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "{path}: non-JSON error body {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, value)
    }
}

#[tokio::test]
async fn malformed_json_is_400() {
    let f = fixture().await;
    for (path, token) in f.json_endpoints() {
        for body in ["{", "not json", "", "[1,2", "{\"free_slots\": }"] {
            let answer = f
                .raw(path, token.as_deref(), body, Some("application/json"))
                .await;
            assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_json");
        }
    }
}

#[tokio::test]
async fn wrong_types_and_missing_fields_are_400() {
    let f = fixture().await;
    let cases: Vec<(&str, Option<&str>, Value)> = vec![
        ("/api/v1/hosts/register", None, json!({"name": 5})),
        (
            "/api/v1/work/fetch",
            Some(&f.host),
            json!({"free_slots": -1, "platform": platform()}),
        ),
        (
            "/api/v1/work/fetch",
            Some(&f.host),
            json!({"free_slots": 1}),
        ),
        (
            "/api/v1/work/fetch",
            Some(&f.host),
            json!({"free_slots": "two", "platform": platform()}),
        ),
        (
            "/api/v1/work/report",
            Some(&f.host),
            json!({"results": [{"result_id": "x", "outcome": {"status": "returned"}}]}),
        ),
        (
            "/api/v1/work/report",
            Some(&f.host),
            json!({"results": [{"result_id": "1.0", "outcome": {"status": "success", "output": "%%%", "fuel_consumed": 1, "wall_ms": 1}}]}),
        ),
        (
            "/api/v1/work/report",
            Some(&f.host),
            json!({"results": [{"result_id": "1.0", "outcome": {"status": "exploded"}}]}),
        ),
        (
            "/api/v1/apps",
            Some(&f.project.publisher),
            json!({"signed_manifest": {}, "module": 12}),
        ),
        (
            "/api/v1/batches",
            Some(&f.project.researcher),
            json!({"app": "demo", "inputs": "1"}),
        ),
        (
            "/api/v1/batches",
            Some(&f.project.researcher),
            json!({"app": "demo", "inputs": [1], "replication": {"min_quorum": "2"}}),
        ),
        (
            "/api/v1/tokens",
            Some(&f.project.admin),
            json!({"role": "superuser"}),
        ),
    ];
    for (path, token, body) in cases {
        let answer = f.api.post(path, token, body.clone()).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_json");
    }
}

#[tokio::test]
async fn unacceptable_values_are_4xx_with_the_reason() {
    let f = fixture().await;
    let r = Some(f.project.researcher.as_str());
    let cases: Vec<(&str, Option<&str>, Value, StatusCode, &str)> = vec![
        (
            "/api/v1/batches",
            r,
            json!({"app": "demo", "inputs": []}),
            StatusCode::BAD_REQUEST,
            "1 to",
        ),
        (
            "/api/v1/batches",
            r,
            json!({"app": "demo", "inputs": [1], "replication": {"min_quorum": 0}}),
            StatusCode::BAD_REQUEST,
            "min_quorum",
        ),
        (
            "/api/v1/batches",
            r,
            json!({"app": "demo", "inputs": [1], "replication": {"min_quorum": 3, "max_total_results": 2}}),
            StatusCode::BAD_REQUEST,
            "max_total_results",
        ),
        (
            "/api/v1/batches",
            r,
            json!({"app": "nope", "inputs": [1]}),
            StatusCode::NOT_FOUND,
            "no published version",
        ),
        (
            "/api/v1/batches",
            r,
            json!({"app": "demo", "version": "9.9.9", "inputs": [1]}),
            StatusCode::NOT_FOUND,
            "9.9.9",
        ),
        (
            "/api/v1/hosts/register",
            None,
            json!({"name": "x".repeat(65)}),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            "/api/v1/work/fetch",
            Some(&f.host),
            json!({"free_slots": 1, "platform": {"arch": "x", "os": "y", "client_version": "banana", "wasmtime_version": "1", "backend": "pulley", "slots": 1}}),
            StatusCode::BAD_REQUEST,
            "semver",
        ),
    ];
    for (path, token, body, status, needle) in cases {
        let answer = f.api.post(path, token, body).await;
        assert_eq!(answer.0, status, "{path}: {}", answer.1);
        assert!(
            answer.1["message"].as_str().unwrap().contains(needle),
            "{path}: {}",
            answer.1
        );
    }
}

#[tokio::test]
async fn missing_content_type_is_415() {
    let f = fixture().await;
    for (path, token) in f.json_endpoints() {
        let answer = f.raw(path, token.as_deref(), "{}", None).await;
        assert_error(
            &answer,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        );
    }
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let f = fixture().await;
    let limits = [
        (
            "/api/v1/hosts/register",
            musketeer_server::api::DEFAULT_BODY_LIMIT,
        ),
        (
            "/api/v1/work/fetch",
            musketeer_server::api::DEFAULT_BODY_LIMIT,
        ),
        ("/api/v1/tokens", musketeer_server::api::DEFAULT_BODY_LIMIT),
        (
            "/api/v1/work/report",
            musketeer_server::api::REPORT_BODY_LIMIT,
        ),
    ];
    for (path, limit) in limits {
        let token = f
            .json_endpoints()
            .into_iter()
            .find(|(p, _)| *p == path)
            .unwrap()
            .1;
        let body = format!("{{\"name\": \"{}\"}}", "x".repeat(limit + 1));
        let answer = f
            .raw(path, token.as_deref(), body, Some("application/json"))
            .await;
        assert_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    }
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404_and_400() {
    let f = fixture().await;
    let r = Some(f.project.researcher.as_str());
    let a = Some(f.project.admin.as_str());
    let batch = f.batch;
    let unknown = [
        (Method::GET, "/api/v1/batches/999".to_owned(), r),
        (Method::GET, "/api/v1/batches/999/results".to_owned(), r),
        (Method::POST, "/api/v1/batches/999/cancel".to_owned(), r),
        (Method::DELETE, "/api/v1/batches/999".to_owned(), r),
        (Method::DELETE, "/api/v1/tokens/999".to_owned(), a),
        (
            Method::GET,
            format!("/api/v1/modules/{}", "0".repeat(64)),
            None,
        ),
        (Method::GET, "/api/v1/nothing-here".to_owned(), None),
        // `/` is the dashboard; other paths outside the API are JSON 404s.
        (Method::GET, "/nothing-here".to_owned(), None),
        (Method::GET, "/assets/missing.js".to_owned(), None),
    ];
    for (method, path, token) in unknown {
        let body = (method == Method::POST).then(|| json!({}));
        assert_error(
            &f.api.call(method, &path, token, body).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    let malformed = [
        (Method::GET, "/api/v1/batches/abc".to_owned(), r),
        (Method::GET, "/api/v1/batches/-1/results".to_owned(), r),
        (
            Method::GET,
            format!("/api/v1/batches/{batch}/results?format=xml"),
            r,
        ),
        (Method::DELETE, "/api/v1/tokens/x".to_owned(), a),
        (Method::DELETE, "/api/v1/batches/abc".to_owned(), r),
        (Method::GET, "/api/v1/modules/not-a-hash".to_owned(), None),
    ];
    for (method, path, token) in malformed {
        assert_error(
            &f.api.call(method, &path, token, None).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        );
    }
}

#[tokio::test]
async fn wrong_methods_and_tokens_are_json_errors() {
    let f = fixture().await;
    assert_error(
        &f.api.get("/api/v1/work/fetch", Some(&f.host)).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    assert_error(
        &f.api.call(Method::PUT, "/api/v1/batches", None, None).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    for header in ["Basic abc", "Bearer", "Bearer ", "token"] {
        let request = axum::http::Request::get("/api/v1/batches")
            .header("authorization", header)
            .body(Body::empty())
            .unwrap();
        let response = tower::ServiceExt::oneshot(f.api.router.clone(), request)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{header}");
    }
}

/// An input a volunteer could not decode, e.g. nested 125 deep: serde_json still reads the
/// submission (2 levels of envelope + 125 < 128) but not the 3-level fetch answer around it.
fn nested(depth: usize) -> Value {
    serde_json::from_str(&format!("{}1{}", "[".repeat(depth), "]".repeat(depth))).unwrap()
}

#[tokio::test]
async fn inputs_beyond_the_protocol_limits_are_refused_at_submit() {
    let f = fixture().await;
    let deep = nested(125);
    let huge = Value::String("x".repeat(musketeer_protocol::limits::MAX_INPUT_BYTES));
    for (bad, index, words) in [
        (json!([1, deep, 2]), 1, "nested more than 64 levels"),
        (json!([huge, 1]), 0, "larger than"),
    ] {
        let answer = f
            .api
            .post(
                "/api/v1/batches",
                Some(&f.project.researcher),
                json!({"app": "demo", "inputs": bad}),
            )
            .await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_request");
        let message = answer.1["message"].as_str().unwrap();
        assert!(message.contains(&format!("inputs[{index}]")), "{message}");
        assert!(message.contains(words), "{message}");
    }
    // Deeper still, and the submission itself is not JSON serde_json reads: a 400 all the same.
    let deeper = format!(
        r#"{{"app":"demo","inputs":[{}1{}]}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let (status, body) = f
        .raw(
            "/api/v1/batches",
            Some(&f.project.researcher),
            deeper,
            Some("application/json"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // The limit itself is accepted: what passes here, every client can decode.
    f.api
        .submit(
            &f.project.researcher,
            "demo",
            json!([nested(musketeer_protocol::limits::MAX_INPUT_DEPTH)]),
            json!({}),
        )
        .await;
    let assignments = f.api.fetch(&f.host, 4).await;
    assert!(
        assignments
            .iter()
            .any(|a| musketeer_protocol::check_input(&a["input"]).is_ok() && a["input"].is_array()),
        "{assignments:?}"
    );
}

//! The dashboard's HTTP side in process: pages and assets, the detail views and their auth,
//! `/metrics`, and the OpenAPI document checked against the router.

use axum::http::{Method, StatusCode, header};
use musketeer_protocol::paths;
use musketeer_server::dashboard::openapi::{self, ROUTES};
use musketeer_server::state::ServeOptions;
use serde_json::{Value, json};

use crate::support::{Api, Project, assert_error};

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
];

/// A concrete path for a pattern: ids 1, a well-formed sha256, a real asset name.
fn concrete(pattern: &str) -> String {
    pattern
        .replace("{sha256}", &"0".repeat(64))
        .replace("{file}", "app.js")
        .replace("{id}", "1")
}

fn routed(answer: &(StatusCode, Value)) -> bool {
    let fallback_404 = answer.0 == StatusCode::NOT_FOUND
        && answer.1["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("no such endpoint"));
    !fallback_404 && answer.0 != StatusCode::METHOD_NOT_ALLOWED
}

#[tokio::test]
async fn openapi_lists_exactly_the_routes_the_router_serves() {
    let project = Project::new();
    let api = Api::new(&project);
    let mut patterns: Vec<&str> = paths::ALL.to_vec();
    patterns.extend(ROUTES.iter().map(|r| r.path));
    patterns.sort_unstable();
    patterns.dedup();
    for pattern in patterns {
        for method in METHODS {
            let documented = ROUTES
                .iter()
                .any(|r| r.path == pattern && r.method == method.as_str());
            let answer = api
                .call(method.clone(), &concrete(pattern), None, None)
                .await;
            assert_eq!(
                routed(&answer),
                documented,
                "{method} {pattern}: documented {documented}, answered {answer:?}"
            );
        }
    }
    let (status, document) = api.get(paths::OPENAPI, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["openapi"], "3.1.0");
    let listed: usize = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(listed, ROUTES.len(), "one operation per route");
    for route in ROUTES {
        let operation = &document["paths"][route.path][route.method.to_lowercase()];
        assert!(operation["summary"].is_string(), "{route:?}");
        let params: Vec<&str> = openapi::path_params(route.path).collect();
        let in_path = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .count();
        assert_eq!(in_path, params.len(), "{route:?}");
        // Every referenced schema exists.
        for reference in operation.to_string().split("#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap();
            // Each body type has a schema derived from the protocol type (utoipa ToSchema).
            assert!(
                document["components"]["schemas"][name]["properties"].is_object(),
                "{name} of {route:?}"
            );
        }
    }
}

#[tokio::test]
async fn pages_and_assets_are_served_from_the_binary() {
    let project = Project::new();
    let api = Api::new(&project);
    let (status, body, headers) = api.send(Method::GET, "/", None, None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("/assets/app.js") && html.contains("/assets/style.css"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no remote assets"
    );
    assert!(
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    for name in musketeer_server::dashboard::assets::file_names() {
        let (status, body, _) = api
            .send(Method::GET, &format!("/assets/{name}"), None, None, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert!(!body.is_empty());
    }
    let missing = api.get("/assets/nope.js", None).await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");
}

/// Two hosts, a quorum-2 batch of three units: one agreed, one in disagreement, one untouched.
async fn populated(options: ServeOptions) -> (Project, Api, u64, String) {
    let project = Project::new();
    let api = Api::with_options(&project, options);
    api.publish(&project, "demo", "1.0.0", b"m").await;
    let batch = api
        .submit(
            &project.researcher,
            "demo",
            json!([1, 2, 3]),
            json!({"min_quorum": 2, "max_total_results": 2}),
        )
        .await;
    let a = api.register("a").await;
    let b = api.register("b").await;
    let from_a = api.fetch(&a, 2).await;
    let from_b = api.fetch(&b, 2).await;
    api.report_success(&a, &from_a[0]["result_id"], b"same")
        .await;
    api.report_success(&b, &from_b[0]["result_id"], b"same")
        .await;
    api.report_success(&a, &from_a[1]["result_id"], b"one")
        .await;
    api.report_success(&b, &from_b[1]["result_id"], b"other")
        .await;
    (project, api, batch, a)
}

#[tokio::test]
async fn detail_views_follow_the_batch_and_dashboard_rules() {
    let (project, api, batch, host_a) = populated(ServeOptions {
        register_per_minute: 1000,
        ..ServeOptions::default()
    })
    .await;
    // Host pages are dashboard views: a user token, not anonymous (no --public-dashboard).
    assert_error(
        &api.get("/api/v1/hosts/1", None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    // A host reads its own page (its credit, for `musketeer status`), not another host's.
    let (status, own) = api.get("/api/v1/hosts/1", Some(&host_a)).await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(own["host"]["succeeded"], 2);
    assert_error(
        &api.get("/api/v1/hosts/2", Some(&host_a)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let (status, host) = api.get("/api/v1/hosts/1", Some(&project.publisher)).await;
    assert_eq!(status, StatusCode::OK, "{host}");
    assert_eq!(host["host"]["succeeded"], 2);
    assert_eq!(host["recent"].as_array().unwrap().len(), 2);
    assert!(
        host["recent"][0]
            .get("stderr_tail")
            .is_none_or(Value::is_null)
    );
    assert_error(
        &api.get("/api/v1/hosts/9", Some(&project.admin)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &api.get("/api/v1/hosts/x", Some(&project.admin)).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    // Unit lists: failures with their error text.
    let path = format!("/api/v1/batches/{batch}/units?state=failed");
    let (status, failed) = api.get(&path, Some(&project.researcher)).await;
    assert_eq!(status, StatusCode::OK, "{failed}");
    assert_eq!(failed["total"], 1);
    assert!(
        failed["units"][0]["error"]
            .as_str()
            .unwrap()
            .contains("agree"),
        "{failed}"
    );
    let (_, all) = api
        .get(
            &format!("/api/v1/batches/{batch}/units?limit=2"),
            Some(&project.admin),
        )
        .await;
    assert_eq!(
        (all["total"].as_u64(), all["units"].as_array().map(Vec::len)),
        (Some(3), Some(2))
    );
    assert_error(
        &api.get(
            &format!("/api/v1/batches/{batch}/units?limit=5000"),
            Some(&project.admin),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    assert_error(
        &api.get(
            &format!("/api/v1/batches/{batch}/units?state=lost"),
            Some(&project.admin),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    assert_error(
        &api.get(
            &format!("/api/v1/batches/{batch}/units"),
            Some(&project.publisher),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    // Unit pages: the replicas, with input; other researchers see nothing.
    let first = all["units"][0]["id"].as_u64().unwrap();
    let (status, unit) = api
        .get(&format!("/api/v1/units/{first}"), Some(&project.researcher))
        .await;
    assert_eq!(status, StatusCode::OK, "{unit}");
    assert_eq!(unit["state"], "done");
    assert_eq!(unit["input"], 1);
    let outcomes: Vec<&str> = unit["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["valid", "valid"]);
    let (_, other) = api
        .post(
            "/api/v1/tokens",
            Some(&project.admin),
            json!({"role": "researcher"}),
        )
        .await;
    assert_error(
        &api.get(&format!("/api/v1/units/{first}"), other["token"].as_str())
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &api.get("/api/v1/units/999", Some(&project.admin)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn metrics_agree_with_stats() {
    let (_project, api, _, _) = populated(ServeOptions {
        register_per_minute: 1000,
        public_dashboard: true,
        ..ServeOptions::default()
    })
    .await;
    let (_, stats) = api.get("/api/v1/stats", None).await;
    let (status, body, headers) = api.send(Method::GET, "/metrics", None, None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = String::from_utf8(body).unwrap();
    let value = |series: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{series} missing:\n{text}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("musketeer_hosts_online"), stats["hosts_online"]);
    assert_eq!(value("musketeer_slots_busy"), stats["slots_busy"]);
    assert_eq!(value("musketeer_queue_depth"), stats["queue_depth"]);
    assert_eq!(
        value("musketeer_units{state=\"done\"}"),
        stats["units"]["done"]
    );
    assert_eq!(
        value("musketeer_units{state=\"failed\"}"),
        stats["units"]["failed"]
    );
    assert_eq!(
        value("musketeer_results_total{outcome=\"valid\"}"),
        stats["results"]["valid"]
    );
    assert_eq!(
        value("musketeer_results_total{outcome=\"invalid\"}"),
        stats["results"]["invalid"]
    );
    assert_eq!(value("musketeer_store_rows{table=\"units\"}"), 3);
    assert_eq!(value("musketeer_store_rows{table=\"hosts\"}"), 2);
    // The reports above went through the router, so their latencies were recorded by route.
    assert_eq!(
        value(
            "musketeer_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/work/report\"}"
        ),
        4
    );
    // Without --public-dashboard, metrics need a token like the other dashboard views.
    let project = Project::new();
    let private = Api::new(&project);
    assert_error(
        &private.get("/metrics", None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let (status, _, _) = private
        .send(Method::GET, "/metrics", Some(&project.admin), None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

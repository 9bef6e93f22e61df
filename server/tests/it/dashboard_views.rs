//! The dashboard's failures view and status page over the API: who may read them, what they
//! answer while a unit is tried again, and how they refuse bad input.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::{Api, Project, assert_error};

/// A quorum-1 batch of two units whose first replica of unit 1 reports a client error (the
/// host's fault, so the unit is tried again, unlike a task error, which is its result): it is
/// queued again (retrying). Returns the batch id and the failed result id.
async fn with_a_retry(api: &Api, project: &Project) -> (u64, Value) {
    api.publish(project, "demo", "1.0.0", b"m").await;
    let batch = api
        .submit(&project.researcher, "demo", json!([1, 2]), json!({}))
        .await;
    let host = api.register("a").await;
    let leased = api.fetch(&host, 1).await;
    let result_id = leased[0]["result_id"].clone();
    let body = json!({"results": [{"result_id": result_id, "outcome": {
        "status": "error", "kind": "client-error", "message": "no data\u{1b}[2J <b>"}}]});
    let (status, ack) = api.post("/api/v1/work/report", Some(&host), body).await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    (batch, result_id)
}

#[tokio::test]
async fn failures_fill_while_a_unit_is_retried_and_only_for_its_owner() {
    let project = Project::new();
    let api = Api::new(&project);
    let (batch, result_id) = with_a_retry(&api, &project).await;

    let (status, list) = api
        .get("/api/v1/failures?state=retrying", Some(&project.researcher))
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 1, "{list}");
    let failure = &list["failures"][0];
    assert_eq!(failure["result_id"], result_id);
    assert_eq!(failure["batch_id"], batch);
    assert_eq!(failure["retrying"], true);
    assert_eq!(failure["unit_state"], "queued");
    let error = failure["error"].as_str().unwrap();
    assert!(error.contains("no data\\x1b[2J <b>"), "sanitized: {error}");

    let (_, units) = api
        .get(
            &format!("/api/v1/batches/{batch}/units?state=retrying"),
            Some(&project.admin),
        )
        .await;
    assert_eq!(units["total"], 1, "{units}");
    assert_eq!(units["units"][0]["retrying"], true);
    assert_eq!(units["units"][0]["failed_replicas"], 1);

    // Another researcher sees none of it; naming the batch looks like asking for an absent one.
    let other = api.create_token(&project.admin, "researcher").await;
    let other = Some(other.as_str());
    let (status, none) = api.get("/api/v1/failures", other).await;
    assert_eq!((status, none["total"].as_u64()), (StatusCode::OK, Some(0)));
    assert_error(
        &api.get(&format!("/api/v1/failures?batch={batch}"), other)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &api.get("/api/v1/failures", None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &api.get("/api/v1/failures", Some(&project.publisher)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    for bad in ["after=7", "state=lost", "limit=5000", "batch=x"] {
        assert_error(
            &api.get(&format!("/api/v1/failures?{bad}"), Some(&project.admin))
                .await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        );
    }
}

#[tokio::test]
async fn status_counts_units_by_app_and_host_results() {
    let project = Project::new();
    let api = Api::new(&project);
    with_a_retry(&api, &project).await;
    assert_error(
        &api.get("/api/v1/status", None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let (status, body) = api.get("/api/v1/status", Some(&project.publisher)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let demo = &body["apps"][0];
    assert_eq!(
        [
            &demo["app"],
            &demo["unsent"],
            &demo["retrying"],
            &demo["done"]
        ],
        [&json!("demo"), &json!(2), &json!(1), &json!(0)],
        "{body}"
    );
    let history = body["history"].as_array().unwrap();
    assert_eq!(history.last().unwrap()["retrying"], 1, "{body}");
    assert_eq!(body["hosts"][0]["name"], "a");
}

#[tokio::test]
async fn a_token_in_the_query_string_signs_nobody_in() {
    let project = Project::new();
    let api = Api::new(&project);
    for path in ["/api/v1/batches", "/api/v1/failures", "/api/v1/status"] {
        assert_error(
            &api.get(&format!("{path}?token={}", project.admin), None)
                .await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
    }
}

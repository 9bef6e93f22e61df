//! The batch status long poll: `GET /api/v1/batches/{id}?wait_ms=N[&after=TAG]`.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use musketeer_protocol::BatchStatus;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::support::{Api, Project, assert_error};

fn tag_of(status: &Value) -> String {
    let status: BatchStatus = serde_json::from_value(status.clone()).expect("a batch status");
    status.progress_tag()
}

/// Starts a long poll and lets it run until it parks (the test runtime is single-threaded).
async fn parked_poll(api: &Api, token: &str, path: String) -> JoinHandle<(StatusCode, Value)> {
    let poll = {
        let api = api.clone();
        let token = token.to_owned();
        tokio::spawn(async move { api.get(&path, Some(&token)).await })
    };
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(
        !poll.is_finished(),
        "the poll must wait while nothing moves"
    );
    poll
}

/// A project with the `demo` app published and one batch of `inputs` submitted by its
/// researcher; the batch's status path.
async fn demo_batch(inputs: Value) -> (Project, Api, String) {
    let project = Project::new();
    let api = Api::new(&project);
    api.publish(&project, "demo", "1.0.0", b"m").await;
    let batch = api
        .submit(&project.researcher, "demo", inputs, json!({}))
        .await;
    (project, api, format!("/api/v1/batches/{batch}"))
}

async fn answer(poll: JoinHandle<(StatusCode, Value)>) -> Value {
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("the poll answered")
        .expect("the poll did not panic");
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn long_poll_answers_on_progress_and_when_the_unit_finishes() {
    let (project, api, path) = demo_batch(json!([1])).await;
    let host = api.register("h").await;
    let (_, queued) = api.get(&path, Some(&project.researcher)).await;
    let queued_tag = tag_of(&queued);
    assert_eq!(queued_tag, "running-1-0-0-0-0-0");

    let poll = parked_poll(
        &api,
        &project.researcher,
        format!("{path}?wait_ms=20000&after={queued_tag}"),
    )
    .await;
    let assignment = api.fetch(&host, 1).await.remove(0);
    let running = answer(poll).await;
    assert_eq!(running["counts"]["running"], 1, "{running}");

    // Without `after`, the poll waits for the batch to end.
    let poll = parked_poll(&api, &project.researcher, format!("{path}?wait_ms=20000")).await;
    let ack = api
        .report_success(&host, &assignment["result_id"], b"{\"n\":1}")
        .await;
    assert_eq!(ack, "accepted");
    let finished = answer(poll).await;
    assert_eq!(finished["state"], "finished", "{finished}");
    assert_eq!(finished["counts"]["done"], 1, "{finished}");
    // Results are readable right away: the poll answered after the commit.
    let (status, rows) = api
        .get(&format!("{path}/results"), Some(&project.researcher))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(rows.to_string().contains(r#""n":1"#), "{rows}");

    // A finished batch answers at once, whatever the wait.
    let started = Instant::now();
    let (status, again) = api
        .get(&format!("{path}?wait_ms=20000"), Some(&project.researcher))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["state"], "finished");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn long_poll_returns_the_unchanged_status_when_the_wait_ends() {
    let (project, api, path) = demo_batch(json!([1, 2])).await;
    let (_, before) = api.get(&path, Some(&project.researcher)).await;
    let tag = tag_of(&before);
    let started = Instant::now();
    let (status, after) = api
        .get(
            &format!("{path}?wait_ms=300&after={tag}"),
            Some(&project.researcher),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(tag_of(&after), tag);
    // A tag that differs from the batch's answers at once.
    let (status, _) = api
        .get(
            &format!("{path}?wait_ms=20000&after=stale"),
            Some(&project.researcher),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn long_poll_waits_no_longer_than_the_server_allows() {
    let project = Project::new();
    let api = Api::with_options(
        &project,
        musketeer_server::state::ServeOptions {
            max_wait_ms: 200,
            ..musketeer_server::state::ServeOptions::default()
        },
    );
    api.publish(&project, "demo", "1.0.0", b"m").await;
    let batch = api
        .submit(&project.researcher, "demo", json!([1]), json!({}))
        .await;
    let path = format!("/api/v1/batches/{batch}");
    let (_, before) = api.get(&path, Some(&project.researcher)).await;
    let started = Instant::now();
    let (status, _) = tokio::time::timeout(
        Duration::from_secs(10),
        api.get(
            &format!("{path}?wait_ms=3600000&after={}", tag_of(&before)),
            Some(&project.researcher),
        ),
    )
    .await
    .expect("capped at the server's longest wait");
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn long_poll_refuses_bad_parameters_and_unknown_batches() {
    let (project, api, path) = demo_batch(json!([1])).await;
    let researcher = Some(project.researcher.as_str());
    for bad in [
        "wait_ms=soon",
        "wait_ms=-1",
        "wait_ms=99999999999999999999999",
    ] {
        let answer = api.get(&format!("{path}?{bad}"), researcher).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    }
    let long = "x".repeat(201);
    let answer = api
        .get(&format!("{path}?wait_ms=10&after={long}"), researcher)
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    let answer = api.get(&format!("{path}?wait_ms=20000"), None).await;
    assert_eq!(answer.0, StatusCode::UNAUTHORIZED, "{}", answer.1);
    let answer = api
        .get("/api/v1/batches/999?wait_ms=20000", researcher)
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
}

/// The unit ids of a results page's rows, in order.
fn page_units(page: &Value) -> Vec<u64> {
    page["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| row["unit_id"].as_u64().expect("a unit id"))
        .collect()
}

#[tokio::test]
async fn results_pages_follow_the_finishing_order_and_start_over_after_a_restart() {
    let project = Project::new();
    let state = project.state(musketeer_server::state::ServeOptions::default());
    let api = Api::serving(&state);
    let researcher = project.researcher.clone();
    api.publish(&project, "demo", "1.0.0", b"m").await;
    let batch = api
        .submit(&researcher, "demo", json!([1, 2, 3]), json!({}))
        .await;
    let results = format!("/api/v1/batches/{batch}/results");
    let host = api.register("h").await;
    let assignments = api.fetch(&host, 3).await;
    assert_eq!(assignments.len(), 3);
    let unit_of = |a: &Value| a["unit_id"].as_u64().expect("a unit id");
    // The last unit finishes first.
    for index in [2, 0] {
        let result = &assignments[index]["result_id"];
        assert_eq!(api.report_success(&host, result, b"{}").await, "accepted");
    }

    let (status, first) = api
        .get(&format!("{results}?after=start"), Some(&researcher))
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(
        page_units(&first),
        vec![unit_of(&assignments[2]), unit_of(&assignments[0])]
    );
    assert_eq!(first["complete"], false, "{first}");
    assert_eq!(first["status"]["counts"]["done"], 2, "{first}");
    let next = first["next"].as_str().expect("a cursor").to_owned();
    let (_, empty) = api
        .get(&format!("{results}?after={next}"), Some(&researcher))
        .await;
    assert_eq!(page_units(&empty), Vec::<u64>::new());
    assert_eq!(empty["next"], next.as_str());

    // A long poll on the cursor answers with the next unit to finish, and says it is the last.
    let poll = parked_poll(
        &api,
        &researcher,
        format!("{results}?after={next}&wait_ms=20000"),
    )
    .await;
    let result = &assignments[1]["result_id"];
    assert_eq!(api.report_success(&host, result, b"{}").await, "accepted");
    let last = answer(poll).await;
    assert_eq!(page_units(&last), vec![unit_of(&assignments[1])]);
    assert_eq!(last["complete"], true, "{last}");

    for bad in ["nonsense", "zz-1", "00-x"] {
        assert_error(
            &api.get(&format!("{results}?after={bad}"), Some(&researcher))
                .await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        );
    }
    let long = "a".repeat(100);
    assert_error(
        &api.get(&format!("{results}?after={long}"), Some(&researcher))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );

    // After a restart a cursor from before reads every finished unit again.
    let stale = last["next"].as_str().expect("a cursor").to_owned();
    state.close();
    drop((api, state));
    let api = Api::new(&project);
    let (_, again) = api
        .get(&format!("{results}?after={stale}"), Some(&researcher))
        .await;
    let mut units = page_units(&again);
    units.sort_unstable();
    let mut all: Vec<u64> = assignments.iter().map(unit_of).collect();
    all.sort_unstable();
    assert_eq!(units, all, "{again}");
    assert_eq!(again["complete"], true, "{again}");
}

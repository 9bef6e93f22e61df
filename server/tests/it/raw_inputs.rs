//! Raw inputs (`submit --lines`) through the HTTP API: submitted as base64, handed only to
//! hosts that declare the `raw-input` capability, shown as submitted in the results.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::{Api, Project, assert_error, base64_encode, platform};

const TEXT_LINE: &[u8] = b"say \"hi\"\tC:\\dir";
const LATIN1_LINE: &[u8] = b"caf\xe9";

async fn fetch_declaring(api: &Api, host: &str, capabilities: Value) -> (StatusCode, Value) {
    api.post(
        "/api/v1/work/fetch",
        Some(host),
        json!({"free_slots": 8, "platform": platform(), "capabilities": capabilities}),
    )
    .await
}

#[tokio::test]
async fn raw_units_go_only_to_capable_hosts_and_come_back_as_submitted() {
    let project = Project::new();
    let api = Api::new(&project);
    api.publish(&project, "demo", "1.0.0", b"m").await;
    let (status, body) = api
        .post(
            "/api/v1/batches",
            Some(&project.researcher),
            json!({"app": "demo", "raw_inputs": [base64_encode(TEXT_LINE), base64_encode(LATIN1_LINE)]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let batch = body["batch_id"].as_u64().unwrap();

    // A client that declares nothing (every client before raw inputs) gets none of them.
    let old = api.register("old").await;
    assert!(api.fetch(&old, 8).await.is_empty());
    let (status, answer) = fetch_declaring(&api, &old, json!(["teleport"])).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["assignments"], json!([]));

    let new = api.register("new").await;
    let (status, answer) = fetch_declaring(&api, &new, json!(["raw-input"])).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let assignments = answer["assignments"].as_array().unwrap();
    assert_eq!(assignments.len(), 2, "{answer}");
    let mut seen: Vec<&str> = assignments
        .iter()
        .map(|a| {
            assert!(a.get("input").is_none(), "{a}");
            a["input_base64"].as_str().unwrap()
        })
        .collect();
    seen.sort_unstable();
    let mut sent = vec![base64_encode(TEXT_LINE), base64_encode(LATIN1_LINE)];
    sent.sort_unstable();
    assert_eq!(seen, sent);
    for assignment in assignments {
        let ack = api
            .report_success(&new, &assignment["result_id"], b"{\"words\":2}")
            .await;
        assert_eq!(ack, "accepted");
    }

    let (status, jsonl) = api
        .get_bytes(
            &format!("/api/v1/batches/{batch}/results?format=jsonl"),
            Some(&project.researcher),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let rows: Vec<Value> = jsonl
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).unwrap())
        .collect();
    assert_eq!(rows[0]["input"], json!("say \"hi\"\tC:\\dir"));
    assert!(rows[0].get("input_base64").is_none());
    assert_eq!(rows[1]["input"], Value::Null);
    assert_eq!(rows[1]["input_base64"], json!(base64_encode(LATIN1_LINE)));
    assert_eq!(rows[1]["output"], json!({"words": 2}));
}

#[tokio::test]
async fn malformed_raw_submissions_and_fetches_are_4xx() {
    let project = Project::new();
    let api = Api::new(&project);
    api.publish(&project, "demo", "1.0.0", b"m").await;
    let submit = |body: Value| {
        let api = api.clone();
        let token = project.researcher.clone();
        async move { api.post("/api/v1/batches", Some(&token), body).await }
    };
    let both = submit(json!({"app": "demo", "inputs": [1], "raw_inputs": ["eA=="]})).await;
    assert_error(&both, StatusCode::BAD_REQUEST, "invalid_request");
    let not_base64 = submit(json!({"app": "demo", "raw_inputs": ["%%%"]})).await;
    assert_error(&not_base64, StatusCode::BAD_REQUEST, "invalid_json");
    let neither = submit(json!({"app": "demo"})).await;
    assert_error(&neither, StatusCode::BAD_REQUEST, "invalid_request");
    let big = vec![b'x'; musketeer_protocol::limits::MAX_INPUT_BYTES + 1];
    let too_large =
        submit(json!({"app": "demo", "raw_inputs": ["eA==", base64_encode(&big)]})).await;
    assert_error(&too_large, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(
        too_large.1["message"]
            .as_str()
            .unwrap()
            .starts_with("raw_inputs[1] (unit 2 of the batch): input is larger than"),
        "{}",
        too_large.1
    );

    let host = api.register("h").await;
    let many = vec!["raw-input"; 33];
    let answer = fetch_declaring(&api, &host, json!(many)).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_request");
}

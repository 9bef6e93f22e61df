//! End-to-end behaviour of the API in process: the researcher, host and publisher flows.

use std::time::Duration;

use axum::http::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::support::{Api, Project, assert_error, base64_encode, platform};

#[tokio::test]
async fn project_info_lists_the_trusted_key() {
    let project = Project::new();
    let api = Api::new(&project);
    let (status, info) = api.get("/api/v1/project", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["name"], "test project");
    assert_eq!(
        info["trusted_keys"][0]["key_id"],
        project.key.public_key().key_id().to_string()
    );
    assert_eq!(
        info["trusted_keys"][0]["fingerprint"],
        project.key.public_key().fingerprint()
    );
    assert_eq!(info["registration"]["invite_required"], false);
}

#[tokio::test]
async fn submit_fetch_report_results() {
    let project = Project::new();
    let api = Api::new(&project);
    api.publish(&project, "demo", "1.0.0", b"module-bytes")
        .await;
    let batch = api
        .submit(
            &project.researcher,
            "demo",
            json!([{"stock": "2330"}, {"stock": "2317"}, "plain"]),
            json!({}),
        )
        .await;
    let host = api.register("h1").await;
    let assignments = api.fetch(&host, 8).await;
    assert_eq!(assignments.len(), 3);
    let first = &assignments[0];
    assert_eq!(first["app"], "demo");
    assert_eq!(first["version"], "1.0.0");
    assert_eq!(first["input"], json!({"stock": "2330"}));
    assert_eq!(first["limits"]["fuel"], 10_000_000_000u64);
    assert_eq!(first["signed_manifest"]["manifest"]["app"], "demo");
    assert_eq!(first["module_sha256"].as_str().unwrap().len(), 64);
    assert!(api.fetch(&host, 8).await.is_empty(), "nothing left");

    let outputs = [
        json!({"date": "2016-05-03", "close": 150.5}),
        json!({"date": "2016-05-03", "close": 30.1}),
    ];
    for (assignment, output) in assignments.iter().zip(&outputs) {
        let bytes = serde_json::to_vec(output).unwrap();
        assert_eq!(
            api.report_success(&host, &assignment["result_id"], &bytes)
                .await,
            "accepted"
        );
    }
    let failure = json!({"results": [{"result_id": assignments[2]["result_id"], "outcome": {"status": "error", "kind": "wall-timeout", "message": "wall-clock limit reached"}}]});
    let (status, _) = api.post("/api/v1/work/report", Some(&host), failure).await;
    assert_eq!(status, StatusCode::OK);

    let (_, status) = api
        .get(
            &format!("/api/v1/batches/{batch}"),
            Some(&project.researcher),
        )
        .await;
    assert_eq!(
        status["counts"],
        json!({"queued": 1, "running": 0, "done": 2, "failed": 0, "cancelled": 0}),
        "a host-caused error is retried: {status}"
    );

    let (code, bytes, headers) = api
        .send(
            Method::GET,
            &format!("/api/v1/batches/{batch}/results"),
            Some(&project.researcher),
            None,
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/x-ndjson");
    let rows: Vec<Value> = String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["output"], outputs[0]);
    assert_eq!(rows[2]["state"], "queued");

    let (_, bytes, headers) = api
        .send(
            Method::GET,
            &format!("/api/v1/batches/{batch}/results?format=csv"),
            Some(&project.researcher),
            None,
            None,
        )
        .await;
    assert_eq!(headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    let csv = String::from_utf8(bytes).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "unit_id,input,state,error,date,close");
    assert!(lines[1].ends_with(",done,,2016-05-03,150.5"), "{csv}");
    assert!(
        lines[1].contains("\"{\"\"stock\"\":\"\"2330\"\"}\""),
        "{csv}"
    );
    assert_eq!(lines.len(), 4);
}

#[tokio::test]
async fn reports_are_idempotent_and_only_from_the_assigned_host() {
    let project = Project::new();
    let api = Api::new(&project);
    api.publish(&project, "demo", "1.0.0", b"m").await;
    api.submit(&project.researcher, "demo", json!([1]), json!({}))
        .await;
    let h1 = api.register("h1").await;
    let h2 = api.register("h2").await;
    let assignment = api.fetch(&h1, 1).await.remove(0);
    assert_eq!(
        api.report_success(&h2, &assignment["result_id"], b"1")
            .await,
        "refused"
    );
    assert_eq!(
        api.report_success(&h1, &assignment["result_id"], b"1")
            .await,
        "accepted"
    );
    assert_eq!(
        api.report_success(&h1, &assignment["result_id"], b"2")
            .await,
        "duplicate"
    );
    assert_eq!(
        api.report_success(&h1, &json!("999.0"), b"2").await,
        "refused"
    );
    let (_, hosts) = api.get("/api/v1/hosts", Some(&project.admin)).await;
    let h1_row = &hosts["hosts"][0];
    assert_eq!(
        (h1_row["succeeded"].as_u64(), h1_row["credit"].as_u64()),
        (Some(1), Some(7))
    );
    assert_eq!(h1_row["platform"]["wasmtime_version"], "48.0.8");
    assert_eq!(h1_row["online"], true);
}

#[tokio::test]
async fn quorum_two_marks_the_wrong_host_invalid() {
    let project = Project::new();
    let api = Api::new(&project);
    api.publish(&project, "demo", "1.0.0", b"m").await;
    let batch = api
        .submit(
            &project.researcher,
            "demo",
            json!([1]),
            json!({"min_quorum": 2}),
        )
        .await;
    let hosts = [
        api.register("honest-1").await,
        api.register("cheater").await,
        api.register("honest-2").await,
        api.register("honest-3").await,
    ];
    let a = api.fetch(&hosts[0], 1).await.remove(0);
    let b = api.fetch(&hosts[1], 1).await.remove(0);
    api.report_success(&hosts[0], &a["result_id"], b"right")
        .await;
    api.report_success(&hosts[1], &b["result_id"], b"wrong")
        .await;
    // A disputed unit needs the quorum plus one agreeing result per differing output.
    for honest in &hosts[2..] {
        let c = api.fetch(honest, 1).await.remove(0);
        api.report_success(honest, &c["result_id"], b"right").await;
    }
    let cheater_token = hosts[1].clone();
    let (_, status) = api
        .get(
            &format!("/api/v1/batches/{batch}"),
            Some(&project.researcher),
        )
        .await;
    assert_eq!(status["state"], "finished");
    let (_, hosts) = api.get("/api/v1/hosts", Some(&project.admin)).await;
    let cheater = hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "cheater")
        .unwrap();
    assert_eq!(
        (cheater["invalid"].as_u64(), cheater["credit"].as_u64()),
        (Some(1), Some(0))
    );
    assert!(
        cheater["quarantine"]
            .as_str()
            .is_some_and(|r| r.contains("disagreed")),
        "{cheater}"
    );
    // A quarantined host is told why it gets no work.
    let fetched = api.fetch_answer(&cheater_token, 1, &[]).await;
    assert!(
        fetched["refusal"]
            .as_str()
            .is_some_and(|r| r.starts_with("quarantined")),
        "{fetched}"
    );
    let (_, stats) = api.get("/api/v1/stats", Some(&project.admin)).await;
    assert_eq!(
        (
            stats["results"]["valid"].as_u64(),
            stats["results"]["invalid"].as_u64()
        ),
        (Some(3), Some(1))
    );
    assert_eq!(stats["units"]["done"], 1);
}

#[tokio::test]
async fn cancel_stops_handing_out_and_tells_hosts() {
    let project = Project::new();
    let api = Api::new(&project);
    api.publish(&project, "demo", "1.0.0", b"m").await;
    let batch = api
        .submit(&project.researcher, "demo", json!([1, 2, 3]), json!({}))
        .await;
    let host = api.register("h").await;
    let leased = api.fetch(&host, 1).await.remove(0);
    let (status, body) = api
        .post(
            &format!("/api/v1/batches/{batch}/cancel"),
            Some(&project.researcher),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["state"], "cancelled");
    assert_eq!(body["counts"]["cancelled"], 3);
    let fetched = api.fetch_answer(&host, 4, &[&leased["result_id"]]).await;
    assert_eq!(fetched["assignments"], json!([]));
    assert_eq!(fetched["cancelled"], json!([leased["result_id"]]));
}

#[tokio::test]
async fn long_poll_wakes_when_work_arrives() {
    let project = Project::new();
    let api = Api::new(&project);
    api.publish(&project, "demo", "1.0.0", b"m").await;
    let host = api.register("h").await;
    let poll = {
        let api = api.clone();
        tokio::spawn(async move {
            api.post(
                "/api/v1/work/fetch",
                Some(&host),
                json!({"free_slots": 1, "platform": platform(), "wait_ms": 20_000}),
            )
            .await
        })
    };
    // Let the poll run until it parks (the test runtime is single-threaded).
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(
        !poll.is_finished(),
        "a poll with wait_ms must not return empty early"
    );
    api.submit(&project.researcher, "demo", json!([1]), json!({}))
        .await;
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("poll woke")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["assignments"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn publish_refuses_bad_signatures_mismatches_and_old_versions() {
    let project = Project::new();
    let api = Api::new(&project);
    api.publish(&project, "demo", "1.2.0", b"module").await;
    let stranger = musketeer_signing_keys::SecretKey::generate();
    let mut mismatched = project.publish_body("demo", "1.3.0", b"module");
    mismatched["module"] = json!(base64_encode(b"other"));
    let cases = [
        (
            crate::support::publish_body(&stranger, "demo", "1.3.0", b"module"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "signature_invalid",
        ),
        (
            mismatched,
            StatusCode::UNPROCESSABLE_ENTITY,
            "signature_invalid",
        ),
        (
            project.publish_body("demo", "1.2.0", b"module"),
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            project.publish_body("demo", "1.1.9", b"module"),
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            json!({"signed_manifest": {"x": 1}, "module": "AA=="}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (body, status, code) in cases {
        assert_error(
            &api.post("/api/v1/apps", Some(&project.publisher), body)
                .await,
            status,
            code,
        );
    }
    api.publish(&project, "demo", "1.3.0", b"module2").await;
    let (_, apps) = api.get("/api/v1/apps", Some(&project.researcher)).await;
    let versions: Vec<&str> = apps["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1.2.0", "1.3.0"]);
}

#[tokio::test]
async fn modules_download_by_hash_with_immutable_caching() {
    let project = Project::new();
    let api = Api::new(&project);
    api.publish(&project, "demo", "1.0.0", b"\0asm module")
        .await;
    let sha = musketeer_signing_keys::sha256_hex(b"\0asm module");
    let (status, bytes, headers) = api
        .send(
            Method::GET,
            &format!("/api/v1/modules/{sha}"),
            None,
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, b"\0asm module");
    assert_eq!(
        headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(headers[header::CONTENT_TYPE], "application/wasm");
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();
    let request = axum::http::Request::get(format!("/api/v1/modules/{sha}"))
        .header(header::IF_NONE_MATCH, etag)
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(api.router.clone(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn admin_api_creates_scoped_tokens_and_revokes_them() {
    let project = Project::new();
    let api = Api::new(&project);
    api.publish(&project, "demo", "1.0.0", b"m").await;
    api.publish(&project, "other", "1.0.0", b"o").await;
    let (status, created) = api
        .post(
            "/api/v1/tokens",
            Some(&project.admin),
            json!({"role": "researcher", "apps": ["demo"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let token = created["token"].as_str().unwrap().to_owned();
    api.submit(&token, "demo", json!([1]), json!({})).await;
    let refused = api
        .post(
            "/api/v1/batches",
            Some(&token),
            json!({"app": "other", "inputs": [1]}),
        )
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{}", created["id"]),
            Some(&project.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &api.get("/api/v1/batches", Some(&token)).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
}

#[tokio::test]
async fn batches_of_others_are_invisible() {
    let project = Project::new();
    let api = Api::new(&project);
    api.publish(&project, "demo", "1.0.0", b"m").await;
    let (_, other) = api
        .post(
            "/api/v1/tokens",
            Some(&project.admin),
            json!({"role": "researcher"}),
        )
        .await;
    let other = other["token"].as_str().unwrap();
    let batch = api
        .submit(&project.researcher, "demo", json!([1]), json!({}))
        .await;
    for path in [
        format!("/api/v1/batches/{batch}"),
        format!("/api/v1/batches/{batch}/results"),
    ] {
        assert_error(
            &api.get(&path, Some(other)).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
        assert_eq!(api.get(&path, Some(&project.admin)).await.0, StatusCode::OK);
    }
    let (_, mine) = api.get("/api/v1/batches", Some(other)).await;
    assert_eq!(mine["batches"], json!([]));
    let (_, all) = api.get("/api/v1/batches", Some(&project.admin)).await;
    assert_eq!(all["batches"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn hosts_get_only_work_within_their_memory_limit_and_a_stalled_batch_says_so() {
    let project = Project::new();
    let api = Api::new(&project);
    // Signed with the default limits: up to 256 MiB per task.
    api.publish(&project, "demo", "1.0.0", b"m").await;
    let small = api.register("small").await;
    let fetch = |host: String, cap: Value| {
        let api = api.clone();
        async move {
            let mut platform = json!(platform());
            platform["max_task_memory"] = cap;
            api.fetch_as(&host, 4, platform).await.len()
        }
    };
    assert_eq!(
        fetch(small.clone(), json!(100 << 20)).await,
        0,
        "nothing yet"
    );
    let batch = api
        .submit(&project.researcher, "demo", json!([1, 2]), json!({}))
        .await;
    assert_eq!(fetch(small.clone(), json!(100 << 20)).await, 0, "too small");
    let path = format!("/api/v1/batches/{batch}");
    let researcher = Some(project.researcher.as_str());
    assert_eq!(api.get(&path, researcher).await.1["hosts_able"], 0);

    let big = api.register("big").await;
    assert_eq!(
        fetch(big.clone(), json!(256 << 20)).await,
        2,
        "exactly enough"
    );
    // Nothing waits any more: no count.
    assert!(
        api.get(&path, researcher)
            .await
            .1
            .get("hosts_able")
            .is_none()
    );
}

#[tokio::test]
async fn results_ride_on_a_fetch_and_are_acknowledged_at_once() {
    let project = Project::new();
    let api = Api::new(&project);
    api.publish(&project, "demo", "1.0.0", b"m").await;
    api.submit(&project.researcher, "demo", json!([1, 2]), json!({}))
        .await;
    let host = api.register("h1").await;
    let first = api.fetch(&host, 1).await.remove(0);
    let success = |id: &Value| json!({"result_id": id, "outcome": {"status": "success", "output": base64_encode(b"1"), "fuel_consumed": 7, "wall_ms": 1}});
    // A long poll that carries a result answers at once, whether or not there is work.
    let fetch_with = |results: Value| {
        api.post(
            "/api/v1/work/fetch",
            Some(&host),
            json!({"free_slots": 1, "platform": platform(), "wait_ms": 30_000, "results": results}),
        )
    };
    let within = Duration::from_secs(10);
    let (status, answer) =
        tokio::time::timeout(within, fetch_with(json!([success(&first["result_id"])])))
            .await
            .expect("answered without waiting");
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["acks"][0]["status"], "accepted", "{answer}");
    assert_eq!(answer["acks"][0]["result_id"], first["result_id"]);
    assert_eq!(answer["assignments"].as_array().unwrap().len(), 1);

    let (status, again) =
        tokio::time::timeout(within, fetch_with(json!([success(&first["result_id"])])))
            .await
            .expect("answered without waiting although no work is left");
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["acks"][0]["status"], "duplicate", "{again}");
    assert!(again["assignments"].as_array().unwrap().is_empty());

    let too_many: Vec<Value> = (0..257).map(|_| success(&first["result_id"])).collect();
    let answer = fetch_with(json!(too_many)).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_request");

    let (_, hosts) = api.get("/api/v1/hosts", Some(&project.admin)).await;
    assert_eq!(hosts["hosts"][0]["succeeded"].as_u64(), Some(1));
}

//! Operations: the liveness and readiness probes, tokens, the online backup (restored under
//! load) and the retention of finished batches.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use musketeer_protocol::paths;
use musketeer_server::state::ServeOptions;
use musketeer_server::store::Write;
use serde_json::{Value, json};

use crate::socket::serve;
use crate::support::{Api, Project, assert_error};

#[tokio::test]
async fn probes_answer_ok_without_a_token() {
    let project = Project::new();
    let api = Api::new(&project);
    assert_eq!(
        api.get(paths::HEALTHZ, None).await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    assert_eq!(
        api.get(paths::READYZ, None).await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
}

#[tokio::test]
async fn readyz_fails_while_commits_are_refused_and_recovers_after_the_reload() {
    let project = Project::new();
    let state = project.state(ServeOptions::default());
    let api = Api::serving(&state);
    state.inject_store_failures(1);
    let pending = state.persist_rows(vec![Write::Meta("probe".into(), b"x".to_vec())]);
    // The writer thread refuses the commit on its own schedule; wait for readyz to see it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let answer = api.get(paths::READYZ, None).await;
        if answer.0 != StatusCode::OK || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_error(&answer, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(
        answer.1["message"]
            .as_str()
            .unwrap()
            .contains("commit failed"),
        "{}",
        answer.1
    );
    // Liveness is not readiness: the process still answers.
    assert_eq!(api.get(paths::HEALTHZ, None).await.0, StatusCode::OK);
    // Awaiting the failed commit reloads the state from the store and accepts writes again.
    assert!(pending.durable().await.is_err());
    assert_eq!(api.get(paths::READYZ, None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn readyz_fails_once_the_writer_stops() {
    let project = Project::new();
    let state = project.state(ServeOptions::default());
    let api = Api::serving(&state);
    state.close();
    let answer = api.get(paths::READYZ, None).await;
    assert_error(&answer, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(answer.1["message"].as_str().unwrap().contains("writer"));
}

#[tokio::test]
async fn readyz_fails_once_shutdown_begins() {
    let project = Project::new();
    let state = project.state(ServeOptions::default());
    let api = Api::serving(&state);
    state.begin_shutdown();
    let answer = api.get(paths::READYZ, None).await;
    assert_error(&answer, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(
        answer.1["message"]
            .as_str()
            .unwrap()
            .contains("shutting down")
    );
    state.close();
}

#[tokio::test]
async fn admins_list_tokens_without_secrets_and_revocation_is_immediate_and_durable() {
    let project = Project::new();
    let state = project.state(ServeOptions::default());
    let api = Api::serving(&state);
    assert_error(
        &api.get(paths::TOKENS, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &api.get(paths::TOKENS, Some(&project.researcher)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let (status, list) = api.get(paths::TOKENS, Some(&project.admin)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let roles: Vec<(u64, &str, bool)> = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_u64().unwrap(),
                t["role"].as_str().unwrap(),
                t["revoked"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            (1, "admin", false),
            (2, "researcher", false),
            (3, "publisher", false)
        ]
    );
    let text = list.to_string();
    for secret in [&project.admin, &project.researcher, &project.publisher] {
        let hash = hex::encode(musketeer_server::domain::tokens::hash(secret));
        assert!(
            !text.contains(secret.as_str()) && !text.contains(&hash),
            "{text}"
        );
    }
    assert!(list["tokens"][0].get("hash").is_none(), "{text}");

    assert_eq!(
        api.get(paths::BATCHES, Some(&project.researcher)).await.0,
        StatusCode::OK
    );
    let (status, _) = api
        .call(
            axum::http::Method::DELETE,
            &paths::token(musketeer_protocol::TokenId(2)),
            Some(&project.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Effective at once: the very next request with it is refused.
    assert_error(
        &api.get(paths::BATCHES, Some(&project.researcher)).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let (_, list) = api.get(paths::TOKENS, Some(&project.admin)).await;
    assert_eq!(list["tokens"][1]["revoked"], true, "{list}");

    // Durable before the answer: a store reopened from disk still refuses it.
    drop(api);
    state.close();
    drop(state);
    let api = Api::new(&project);
    assert_error(
        &api.get(paths::BATCHES, Some(&project.researcher)).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_eq!(
        api.get(paths::BATCHES, Some(&project.admin)).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_online_backup_restores_the_same_batches_and_nothing_later() {
    let project = Project::on_redb();
    let state = project.state(ServeOptions::default());
    let api = Api::serving(&state);
    api.publish(&project, "echo", "1.0.0", b"\0asm-echo").await;
    let kept = api
        .submit(&project.researcher, "echo", json!(["a", "b"]), json!({}))
        .await;
    let host = api.register("athos").await;
    let assignment = api.fetch(&host, 1).await.remove(0);
    let ack = api
        .report_success(&host, &assignment["result_id"], b"\"A\"")
        .await;
    assert_eq!(ack, "accepted");
    assert_error(
        &api.get(paths::ADMIN_BACKUP, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &api.get(paths::ADMIN_BACKUP, Some(&project.researcher))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let (status, backup, headers) = api
        .send(
            axum::http::Method::GET,
            paths::ADMIN_BACKUP,
            Some(&project.admin),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-length"], backup.len().to_string().as_str());
    let later = api
        .submit(&project.researcher, "echo", json!(["c"]), json!({}))
        .await;

    let restored = tempfile::tempdir().unwrap();
    std::fs::write(restored.path().join("musketeer.redb"), &backup).unwrap();
    let state = musketeer_server::state::AppState::load(
        musketeer_server::store::Store::open(restored.path()).unwrap(),
        ServeOptions::default(),
    )
    .unwrap();
    let restored_api = Api::serving(&state);
    let (status, batch) = restored_api
        .get(
            &format!("/api/v1/batches/{kept}"),
            Some(&project.researcher),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{batch}");
    assert_eq!(
        (&batch["counts"]["done"], &batch["counts"]["queued"]),
        (&json!(1), &json!(1)),
        "{batch}"
    );
    assert_eq!(
        restored_api
            .get(
                &format!("/api/v1/batches/{later}"),
                Some(&project.researcher)
            )
            .await
            .0,
        StatusCode::NOT_FOUND,
        "submitted after the backup"
    );
    assert_eq!(
        restored_api
            .get("/api/v1/apps", Some(&project.admin))
            .await
            .1["versions"][0]["app"],
        "echo"
    );
    state.close();
}

/// Fetches one replica as `host` and reports its input back as its output; how many it ran.
async fn echo_once(api: &Api, host: &str) -> usize {
    let assignments = api.fetch(host, 1).await;
    for assignment in &assignments {
        let output = assignment["input"].to_string();
        let ack = api
            .report_success(host, &assignment["result_id"], output.as_bytes())
            .await;
        assert_eq!(ack, "accepted", "{assignment}");
    }
    assignments.len()
}

async fn batch_status(api: &Api, token: &str, batch: u64) -> (StatusCode, Value) {
    api.get(&format!("/api/v1/batches/{batch}"), Some(token))
        .await
}

/// Polls `condition` until it holds, failing the test after a generous deadline.
async fn eventually(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_batches_go_after_their_retention_and_credit_stays() {
    const RETAIN: Duration = Duration::from_secs(1);
    let project = Project::new();
    let state = project.state(ServeOptions {
        retain_finished_ms: Some(RETAIN.as_millis() as u64),
        ..ServeOptions::default()
    });
    let server = serve(state.clone()).await;
    let api = Api::serving(&state);
    api.publish(&project, "echo", "1.0.0", b"\0asm-echo").await;
    let quorum_1 = json!({"min_quorum": 1});
    let finished = api
        .submit(&project.researcher, "echo", json!(["a"]), quorum_1.clone())
        .await;
    let host = api.register("athos").await;
    let reported = Instant::now();
    assert_eq!(echo_once(&api, &host).await, 1);
    let (status, batch) = batch_status(&api, &project.researcher, finished).await;
    assert_eq!(
        (status, &batch["state"]),
        (StatusCode::OK, &json!("finished"))
    );
    let running = api
        .submit(&project.researcher, "echo", json!(["b", "c"]), quorum_1)
        .await;
    // And a cancelled one, whose units never ran.
    let cancelled = api
        .submit(&project.researcher, "echo", json!(["d"]), json!({}))
        .await;
    let (status, _) = api
        .post(
            &format!("/api/v1/batches/{cancelled}/cancel"),
            Some(&project.researcher),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    for gone in [finished, cancelled] {
        eventually("the retention sweep", async || {
            batch_status(&api, &project.researcher, gone).await.0 == StatusCode::NOT_FOUND
        })
        .await;
    }
    assert!(reported.elapsed() >= RETAIN, "deleted before its retention");
    let (status, batch) = batch_status(&api, &project.researcher, running).await;
    assert_eq!(
        (status, &batch["state"]),
        (StatusCode::OK, &json!("running"))
    );
    let (_, hosts) = api.get("/api/v1/hosts", Some(&project.admin)).await;
    assert_eq!(hosts["hosts"][0]["succeeded"], 1, "{hosts}");
    assert!(hosts["hosts"][0]["credit"].as_u64().unwrap() > 0, "{hosts}");
    server.stop().await;
    drop((api, state));
    // The deletion is durable: a server on the same store does not have them either.
    let api = Api::new(&project);
    assert_eq!(
        batch_status(&api, &project.researcher, finished).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_to_a_server_that_finishes_the_batch() {
    const UNITS: u64 = 120;
    let project = Project::on_redb();
    let state = project.state(ServeOptions::default());
    let server = serve(state.clone()).await;
    let api = Api::serving(&state);
    api.publish(&project, "echo", "1.0.0", b"\0asm-echo").await;
    let inputs: Vec<Value> = (0..UNITS).map(|i| json!(format!("unit {i}"))).collect();
    // A short delay bound: a replica leased when the backup was taken lapses soon on the
    // restored server, which gives it to another host.
    let batch = api
        .submit(
            &project.researcher,
            "echo",
            json!(inputs),
            json!({"min_quorum": 1, "delay_bound_ms": 1000}),
        )
        .await;
    let host = api.register("athos").await;
    let done = async |api: &Api| {
        batch_status(api, &project.researcher, batch).await.1["counts"]["done"]
            .as_u64()
            .unwrap()
    };

    // The volunteer keeps fetching and reporting while the backup is taken.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let volunteer = tokio::spawn({
        let (api, host, stop) = (api.clone(), host.clone(), stop.clone());
        async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if echo_once(&api, &host).await == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }
    });
    eventually("some units done", async || done(&api).await >= 10).await;
    let (status, backup) = api
        .get_bytes(paths::ADMIN_BACKUP, Some(&project.admin))
        .await;
    assert_eq!(status, StatusCode::OK);
    let done_at_backup = done(&api).await;
    eventually("more units done after the backup", async || {
        done(&api).await >= done_at_backup + 10
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    volunteer.await.unwrap();
    server.stop().await;
    drop(state);

    let restored_dir = tempfile::tempdir().unwrap();
    std::fs::write(restored_dir.path().join("musketeer.redb"), &backup).unwrap();
    let restored = musketeer_server::state::AppState::load(
        musketeer_server::store::Store::open(restored_dir.path()).unwrap(),
        ServeOptions::default(),
    )
    .unwrap();
    let restored_server = serve(restored.clone()).await;
    let api = Api::serving(&restored);
    let restored_done = done(&api).await;
    // The in-memory count the test read may be one report ahead of the last durable commit,
    // which is what the backup holds.
    assert!(
        (9..UNITS).contains(&restored_done) && restored_done <= done_at_backup,
        "{restored_done} done in the backup, {done_at_backup} after it"
    );
    // The host of the first server carries on, with a newcomer for what it still held.
    let newcomer = api.register("porthos").await;
    eventually("the restored server to finish the batch", async || {
        echo_once(&api, &host).await;
        echo_once(&api, &newcomer).await;
        batch_status(&api, &project.researcher, batch).await.1["state"] == "finished"
    })
    .await;
    let (status, text) = api
        .get_bytes(
            &format!("/api/v1/batches/{batch}/results"),
            Some(&project.researcher),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let rows: Vec<Value> = String::from_utf8(text)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rows.len() as u64, UNITS);
    for row in rows {
        assert_eq!(
            (&row["state"], &row["output"]),
            (&json!("done"), &row["input"])
        );
    }
    restored_server.stop().await;
}

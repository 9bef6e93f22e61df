//! Operations endpoints: the liveness and readiness probes.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use musketeer_protocol::paths;
use musketeer_server::state::ServeOptions;
use musketeer_server::store::Write;
use serde_json::json;

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
    let project = Project::new();
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

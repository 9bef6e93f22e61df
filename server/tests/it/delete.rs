//! Deleting finished batches: who may, when, and that the rows stay gone after a restart without
//! their ids coming back.

use axum::http::{Method, StatusCode};
use musketeer_protocol::{BatchId, UnitId};
use musketeer_server::domain::world::NextIds;
use musketeer_server::state::ServeOptions;
use serde_json::{Value, json};

use crate::support::{Api, Project, assert_error};

async fn delete(api: &Api, batch: u64, token: Option<&str>) -> (StatusCode, Value) {
    api.call(
        Method::DELETE,
        &format!("/api/v1/batches/{batch}"),
        token,
        None,
    )
    .await
}

/// Cancel a batch, asserting success.
async fn cancel(api: &Api, batch: u64, token: &str) {
    let (status, body) = api
        .post(
            &format!("/api/v1/batches/{batch}/cancel"),
            Some(token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Run every queued replica to a success on one host.
async fn finish_all(api: &Api, host: &str) {
    for assignment in api.fetch(host, 100).await {
        let ack = api
            .report_success(host, &assignment["result_id"], b"42")
            .await;
        assert_eq!(ack, "accepted");
    }
}

#[tokio::test]
async fn only_owners_and_admins_delete_and_only_finished_batches() {
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
    let other = other["token"].as_str().unwrap().to_owned();
    let host = api.register("h").await;
    let finished = api
        .submit(&project.researcher, "demo", json!([1, 2]), json!({}))
        .await;
    finish_all(&api, &host).await;
    let running = api
        .submit(&project.researcher, "demo", json!([3, 4, 5]), json!({}))
        .await;
    let (_, status) = api
        .get(
            &format!("/api/v1/batches/{finished}"),
            Some(&project.researcher),
        )
        .await;
    assert_eq!(status["state"], "finished");
    let first_unit = status["first_unit"].as_u64().unwrap();

    assert_error(
        &delete(&api, finished, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &delete(&api, finished, Some(&project.publisher)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &delete(&api, finished, Some(&host)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    // Another researcher's batch looks absent, as for cancel.
    assert_error(
        &delete(&api, finished, Some(&other)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let refused = delete(&api, running, Some(&project.researcher)).await;
    assert_error(&refused, StatusCode::CONFLICT, "conflict");
    let message = refused.1["message"].as_str().unwrap();
    assert!(
        message.contains("cancel it first or wait for it to finish"),
        "{message}"
    );

    let (status, body) = delete(&api, finished, Some(&project.researcher)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"batch_id": finished, "deleted_units": 2}));
    let researcher = Some(project.researcher.as_str());
    for path in [
        format!("/api/v1/batches/{finished}"),
        format!("/api/v1/batches/{finished}/results"),
        format!("/api/v1/batches/{finished}/units"),
        format!("/api/v1/units/{first_unit}"),
    ] {
        assert_error(
            &api.get(&path, researcher).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    assert_error(
        &delete(&api, finished, researcher).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (_, list) = api.get("/api/v1/batches", researcher).await;
    assert_eq!(list["batches"].as_array().unwrap().len(), 1);
    // The host keeps what it earned; the counters forget the units.
    let (_, hosts) = api.get("/api/v1/hosts", Some(&project.admin)).await;
    assert_eq!(hosts["hosts"][0]["succeeded"], 2);
    let (_, stats) = api.get("/api/v1/stats", Some(&project.admin)).await;
    assert_eq!(stats["units"]["done"], 0);
    assert_eq!(stats["units"]["queued"], 3);

    // An admin may delete anyone's batch once it is cancelled.
    cancel(&api, running, &project.admin).await;
    let (status, body) = delete(&api, running, Some(&project.admin)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["deleted_units"], 3);
    let (_, stats) = api.get("/api/v1/stats", Some(&project.admin)).await;
    assert_eq!(
        stats["units"],
        json!({"queued": 0, "running": 0, "done": 0, "failed": 0, "cancelled": 0})
    );
}

#[tokio::test]
async fn a_deleted_batch_stays_gone_after_a_restart_and_its_ids_are_not_reused() {
    let project = Project::new();
    let state = project.state(ServeOptions::default());
    let api = Api::serving(&state);
    let researcher = Some(project.researcher.as_str());
    api.publish(&project, "demo", "1.0.0", b"m").await;
    let kept = api
        .submit(&project.researcher, "demo", json!([1]), json!({}))
        .await;
    let newest = api
        .submit(&project.researcher, "demo", json!([2, 3]), json!({}))
        .await;
    cancel(&api, newest, &project.researcher).await;
    let (status, body) = delete(&api, newest, researcher).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    state.close();
    drop((api, state));

    // The rows are gone from the store, and the ids they had are remembered.
    let store = project.store();
    let loaded = store.load().unwrap();
    let stored_units = store.units().unwrap();
    drop(store);
    let batches: Vec<BatchId> = loaded.batches.iter().map(|b| b.id).collect();
    let units: Vec<UnitId> = stored_units.iter().map(|u| u.id).collect();
    assert_eq!((batches, units), (vec![BatchId(kept)], vec![UnitId(1)]));
    assert_eq!(
        loaded.next_ids,
        NextIds {
            batch: BatchId(newest + 1),
            unit: UnitId(4)
        }
    );
    drop(loaded);

    let state = project.state(ServeOptions::default());
    let api = Api::serving(&state);
    assert_error(
        &api.get(&format!("/api/v1/batches/{newest}"), researcher)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (status, _) = api
        .get(&format!("/api/v1/batches/{kept}"), researcher)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api
        .post(
            "/api/v1/batches",
            researcher,
            json!({"app": "demo", "inputs": [4]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        (body["batch_id"].as_u64(), body["first_unit"].as_u64()),
        (Some(newest + 1), Some(4)),
        "not the deleted batch's ids"
    );
    state.close();
}

#[tokio::test]
async fn compacting_after_a_deletion_gives_the_space_back_and_keeps_the_rest() {
    let project = Project::on_redb();
    let state = project.state(ServeOptions::default());
    let api = Api::serving(&state);
    api.publish(&project, "demo", "1.0.0", b"m").await;
    let kept = api
        .submit(&project.researcher, "demo", json!(["keep me"]), json!({}))
        .await;
    // About 8 MiB of inputs, then gone.
    let inputs: Vec<String> = (0..2000)
        .map(|i| format!("{i:04}{}", "x".repeat(4096)))
        .collect();
    let bulky = api
        .submit(&project.researcher, "demo", json!(inputs), json!({}))
        .await;
    cancel(&api, bulky, &project.researcher).await;
    assert_eq!(
        delete(&api, bulky, Some(&project.researcher)).await.0,
        StatusCode::OK
    );
    state.close();
    drop(api);
    drop(state);

    let file = project.path().join("musketeer.redb");
    let before = std::fs::metadata(&file).unwrap().len();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_musketeer-server"))
        .args(["compact", "--data-dir"])
        .arg(project.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("MiB ->"),
        "{output:?}"
    );
    let after = std::fs::metadata(&file).unwrap().len();
    assert!(
        after * 4 < before,
        "{before} bytes before compaction, {after} after"
    );
    // What was not deleted is all there.
    let store = project.store();
    let loaded = store.load().unwrap();
    let stored_units = store.units().unwrap();
    assert_eq!(loaded.batches.len(), 1);
    assert_eq!(loaded.batches[0].id.0, kept);
    assert_eq!(stored_units.len(), 1);
    assert_eq!(stored_units[0].input, json!("keep me").into());
}

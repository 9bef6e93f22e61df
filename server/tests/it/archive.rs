//! Finished units leave the server's memory once durable, and every view still serves them
//! from the store: the unit, the units page, the results cursor, the CSV and JSONL downloads and
//! the failures view, before and after a restart (which loads only unfinished units).

use axum::http::{Method, StatusCode};
use musketeer_protocol::UnitId;
use musketeer_server::state::{AppState, ServeOptions};
use serde_json::{Value, json};

use crate::support::{Api, Project};

fn options() -> ServeOptions {
    ServeOptions {
        register_per_minute: 1000,
        ..ServeOptions::default()
    }
}

/// What one view says about the done unit (output "ok-done") and the failed one.
async fn assert_views(api: &Api, project: &Project, batch: u64, done: u64, failed: u64) {
    let token = Some(project.researcher.as_str());
    let (status, unit) = api.get(&format!("/api/v1/units/{done}"), token).await;
    assert_eq!(status, StatusCode::OK, "{unit}");
    assert_eq!(unit["state"], "done", "{unit}");
    assert_eq!(unit["replicas"][0]["outcome"], "valid", "{unit}");

    let (status, page) = api
        .get(&format!("/api/v1/batches/{batch}/units?state=done"), token)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["units"][0]["id"], done, "{page}");
    let (_, all) = api
        .get(&format!("/api/v1/batches/{batch}/units"), token)
        .await;
    let ids: Vec<u64> = all["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{all}");
    assert!(ids.contains(&done) && ids.contains(&failed), "{all}");

    let (status, results) = api
        .get(
            &format!("/api/v1/batches/{batch}/results?after=start"),
            token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{results}");
    let rows = results["rows"].as_array().unwrap();
    let row = |id: u64| rows.iter().find(|r| r["unit_id"] == id).cloned();
    assert_eq!(row(done).unwrap()["output"], "ok-done", "{results}");
    assert_eq!(row(failed).unwrap()["state"], "failed", "{results}");
    assert_eq!(rows.len(), 2, "{results}");

    for format in ["csv", "jsonl"] {
        let (status, body, _) = api
            .send(
                Method::GET,
                &format!("/api/v1/batches/{batch}/results?format={format}"),
                token,
                None,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("ok-done"), "{format}: {text}");
        assert!(text.contains("bad input"), "{format}: {text}");
    }

    let (status, failures) = api
        .get(&format!("/api/v1/failures?batch={batch}"), token)
        .await;
    assert_eq!(status, StatusCode::OK, "{failures}");
    assert_eq!(failures["total"], 1, "{failures}");
    assert_eq!(
        failures["failures"][0]["result_id"],
        format!("{failed}.0"),
        "{failures}"
    );
}

/// Whether unit `id` is in the in-memory world.
fn in_memory(state: &AppState, id: u64) -> bool {
    state.world().unit(UnitId(id)).is_some()
}

#[tokio::test]
async fn a_finished_unit_leaves_memory_and_every_view_still_serves_it_across_a_restart() {
    let project = Project::new();
    let state = project.state(options());
    let api = Api::serving(&state);
    api.publish(&project, "demo", "1.0.0", b"m").await;
    let batch = api
        .submit(&project.researcher, "demo", json!([1, 2, 3]), json!({}))
        .await;
    let host = api.register("h").await;
    let leased = api.fetch(&host, 2).await;
    assert_eq!(leased.len(), 2);
    let unit_of = |a: &Value| a["unit_id"].as_u64().unwrap();
    let (done, failed) = (unit_of(&leased[0]), unit_of(&leased[1]));
    assert_eq!(
        api.report_success(&host, &leased[0]["result_id"], b"\"ok-done\"")
            .await,
        "accepted"
    );
    let body = json!({"results": [{"result_id": leased[1]["result_id"], "outcome": {
        "status": "error", "kind": "task-error", "message": "bad input"}}]});
    let (status, ack) = api.post("/api/v1/work/report", Some(&host), body).await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(ack["acks"][0]["status"], "accepted", "{ack}");

    // Both reports are durable; the next pass over the world lets their units go.
    state.expire_leases().await.unwrap();
    assert!(!in_memory(&state, done) && !in_memory(&state, failed));
    assert_eq!(
        state.world().units_in_memory(),
        1,
        "only the queued unit stays"
    );
    assert_views(&api, &project, batch, done, failed).await;

    state.close();
    drop((api, state));
    let state = project.state(options());
    let api = Api::serving(&state);
    assert!(!in_memory(&state, done) && !in_memory(&state, failed));
    assert_eq!(state.world().units_in_memory(), 1);
    let (_, status) = api
        .get(
            &format!("/api/v1/batches/{batch}"),
            Some(&project.researcher),
        )
        .await;
    assert_eq!(status["counts"]["done"], 1, "{status}");
    assert_eq!(status["counts"]["failed"], 1, "{status}");
    assert_eq!(status["counts"]["queued"], 1, "{status}");
    assert_views(&api, &project, batch, done, failed).await;
    state.close();
}

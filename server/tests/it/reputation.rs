//! Bans, quarantine and placement through the HTTP API.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::{Api, Project, assert_error, platform};

async fn set_up() -> (Project, Api) {
    let project = Project::new();
    let api = Api::new(&project);
    api.publish(&project, "demo", "1.0.0", b"module").await;
    (project, api)
}

async fn host_id(api: &Api, project: &Project, name: &str) -> u64 {
    let (_, hosts) = api.get("/api/v1/hosts", Some(&project.admin)).await;
    hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == name)
        .and_then(|h| h["id"].as_u64())
        .unwrap()
}

#[tokio::test]
async fn an_admin_bans_and_unbans_a_host_with_a_reason() {
    let (project, api) = set_up().await;
    api.submit(&project.researcher, "demo", json!([1, 2]), json!({}))
        .await;
    let host = api.register("spammer").await;
    let id = host_id(&api, &project, "spammer").await;
    let leased = api.fetch(&host, 1).await.remove(0);
    let ban = format!("/api/v1/hosts/{id}/ban");

    let refused = api
        .post(&ban, Some(&project.researcher), json!({"reason": "x"}))
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    let empty = api
        .post(&ban, Some(&project.admin), json!({"reason": "  "}))
        .await;
    assert_error(&empty, StatusCode::BAD_REQUEST, "invalid_request");
    let unknown = api
        .post(
            "/api/v1/hosts/999/ban",
            Some(&project.admin),
            json!({"reason": "x"}),
        )
        .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "not_found");

    let (status, summary) = api
        .post(
            &ban,
            Some(&project.admin),
            json!({"reason": "forged outputs"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["ban"], "forged outputs");
    // The banned host is told why, and to drop the replica it held, which goes to others.
    let fetched = api.fetch_answer(&host, 4, &[&leased["result_id"]]).await;
    assert_eq!(fetched["assignments"], json!([]));
    assert_eq!(fetched["cancelled"], json!([leased["result_id"]]));
    assert!(
        fetched["refusal"]
            .as_str()
            .is_some_and(|r| r.contains("forged outputs")),
        "{fetched}"
    );
    let other = api.register("honest").await;
    assert_eq!(
        api.fetch(&other, 4).await.len(),
        2,
        "both units go to others"
    );

    let (status, summary) = api
        .post(
            &format!("/api/v1/hosts/{id}/unban"),
            Some(&project.admin),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert!(summary.get("ban").is_none(), "{summary}");
    let fetched = api.fetch_answer(&host, 4, &[]).await;
    assert!(fetched.get("refusal").is_none(), "{fetched}");
}

#[tokio::test]
async fn hosts_registered_with_one_user_token_never_share_a_unit() {
    let (project, api) = set_up().await;
    api.submit(
        &project.researcher,
        "demo",
        json!([1]),
        json!({"min_quorum": 2}),
    )
    .await;
    let mut owned = Vec::new();
    for name in ["mine-1", "mine-2"] {
        let (status, body) = api
            .post(
                "/api/v1/hosts/register",
                Some(&project.researcher),
                json!({"name": name, "platform": platform()}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        owned.push(body["host_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(api.fetch(&owned[0], 1).await.len(), 1);
    assert!(api.fetch(&owned[1], 1).await.is_empty(), "same owner");
    let stranger = api.register("stranger").await;
    assert_eq!(api.fetch(&stranger, 1).await.len(), 1);
}

#[tokio::test]
async fn a_host_past_its_batch_share_waits_while_another_online_host_could_take_the_units() {
    let project = Project::new();
    let api = Api::with_options(
        &project,
        musketeer_server::state::ServeOptions {
            reputation: musketeer_server::domain::reputation::Policy {
                max_batch_share_percent: 10,
                batch_share_floor: 2,
                ..Default::default()
            },
            ..Default::default()
        },
    );
    api.publish(&project, "demo", "1.0.0", b"module").await;
    // 20 units at quorum 1: a share of 2 replicas per host.
    let inputs: Vec<u64> = (0..20).collect();
    api.submit(&project.researcher, "demo", json!(inputs), json!({}))
        .await;
    let fast = api.register("fast").await;
    let other = api.register("other").await;
    assert_eq!(api.fetch(&fast, 1).await.len(), 1);
    assert_eq!(api.fetch(&fast, 1).await.len(), 1);
    assert_eq!(
        api.fetch(&fast, 4).await.len(),
        0,
        "`other` could take them"
    );
    assert_eq!(api.fetch(&other, 4).await.len(), 4);
    // Both are past their share now: the bound lifts rather than hang the batch.
    assert_eq!(api.fetch(&fast, 4).await.len(), 4);
}

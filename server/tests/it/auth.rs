//! The auth matrix: every endpoint called as every kind of caller.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Api, Project, platform};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Nobody,
    BadToken,
    Host,
    Researcher,
    Publisher,
    Admin,
}

type Body = Box<dyn Fn(Who) -> Option<Value>>;
type Expect<'a> = Box<dyn Fn(Who) -> StatusCode + 'a>;

const EVERYONE: [Who; 6] = [
    Who::Nobody,
    Who::BadToken,
    Who::Host,
    Who::Researcher,
    Who::Publisher,
    Who::Admin,
];

/// Expected status per caller for endpoints that need a user token of some roles.
fn users(allowed: &[Who], ok: StatusCode) -> impl Fn(Who) -> StatusCode + '_ {
    move |who| match who {
        Who::Nobody | Who::BadToken => StatusCode::UNAUTHORIZED,
        who if allowed.contains(&who) => ok,
        _ => StatusCode::FORBIDDEN,
    }
}

fn host_only(who: Who) -> StatusCode {
    match who {
        Who::Nobody | Who::BadToken => StatusCode::UNAUTHORIZED,
        Who::Host => StatusCode::OK,
        _ => StatusCode::FORBIDDEN,
    }
}

#[tokio::test]
async fn every_endpoint_for_every_caller() {
    let project = Project::new();
    let api = Api::new(&project);
    api.publish(&project, "demo", "1.0.0", b"m").await;
    let batch = api
        .submit(&project.researcher, "demo", json!([1, 2]), json!({}))
        .await;
    // Deleting needs a finished batch: this one stays queued, so allowed callers get 409.
    let running = api
        .submit(&project.researcher, "demo", json!([3]), json!({}))
        .await;
    let host = api.register("h").await;
    let (_, throwaway) = api
        .post(
            "/api/v1/tokens",
            Some(&project.admin),
            json!({"role": "researcher"}),
        )
        .await;
    let throwaway_id = throwaway["id"].as_u64().unwrap();
    let sha = musketeer_signing_keys::sha256_hex(b"m");
    let token_of = |who: Who| -> Option<String> {
        match who {
            Who::Nobody => None,
            Who::BadToken => {
                Some("mku_0000000000000000000000000000000000000000000000000000000000000000".into())
            }
            Who::Host => Some(host.clone()),
            Who::Researcher => Some(project.researcher.clone()),
            Who::Publisher => Some(project.publisher.clone()),
            Who::Admin => Some(project.admin.clone()),
        }
    };
    let viewers = [Who::Researcher, Who::Publisher, Who::Admin];
    // Hosts read the app list too (a client warns when its memory limit leaves apps out).
    let app_readers = [Who::Host, Who::Researcher, Who::Publisher, Who::Admin];
    let batch_users = [Who::Researcher, Who::Admin];
    let publish_versions = |who: Who| match who {
        Who::Admin => "3.0.0",
        _ => "2.0.0",
    };
    let publish_body: Body = {
        let bodies: Vec<(Who, Value)> = EVERYONE
            .iter()
            .map(|&w| (w, project.publish_body("demo", publish_versions(w), b"m2")))
            .collect();
        Box::new(move |who| {
            bodies
                .iter()
                .find(|(w, _)| *w == who)
                .map(|(_, b)| b.clone())
        })
    };
    let cases: Vec<(Method, String, Body, Expect)> = vec![
        (
            Method::GET,
            "/api/v1/project".into(),
            Box::new(|_| None),
            Box::new(|_| StatusCode::OK),
        ),
        (
            Method::POST,
            "/api/v1/hosts/register".into(),
            Box::new(|_| Some(json!({"name": "x"}))),
            Box::new(|_| StatusCode::CREATED),
        ),
        (
            Method::GET,
            "/api/v1/hosts".into(),
            Box::new(|_| None),
            Box::new(users(&viewers, StatusCode::OK)),
        ),
        (
            Method::GET,
            "/api/v1/stats".into(),
            Box::new(|_| None),
            Box::new(users(&viewers, StatusCode::OK)),
        ),
        (
            Method::GET,
            "/api/v1/apps".into(),
            Box::new(|_| None),
            Box::new(users(&app_readers, StatusCode::OK)),
        ),
        (
            Method::POST,
            "/api/v1/apps".into(),
            publish_body,
            Box::new(users(&[Who::Publisher, Who::Admin], StatusCode::CREATED)),
        ),
        (
            Method::GET,
            format!("/api/v1/modules/{sha}"),
            Box::new(|_| None),
            Box::new(|_| StatusCode::OK),
        ),
        (
            Method::POST,
            "/api/v1/work/fetch".into(),
            Box::new(|_| Some(json!({"free_slots": 0, "platform": platform()}))),
            Box::new(host_only),
        ),
        (
            Method::POST,
            "/api/v1/work/report".into(),
            Box::new(|_| Some(json!({"results": []}))),
            Box::new(host_only),
        ),
        (
            Method::POST,
            "/api/v1/batches".into(),
            Box::new(|_| Some(json!({"app": "demo", "inputs": [1]}))),
            Box::new(users(&batch_users, StatusCode::CREATED)),
        ),
        (
            Method::GET,
            "/api/v1/batches".into(),
            Box::new(|_| None),
            Box::new(users(&batch_users, StatusCode::OK)),
        ),
        (
            Method::GET,
            format!("/api/v1/batches/{batch}"),
            Box::new(|_| None),
            Box::new(users(&batch_users, StatusCode::OK)),
        ),
        (
            Method::GET,
            format!("/api/v1/batches/{batch}/results"),
            Box::new(|_| None),
            Box::new(users(&batch_users, StatusCode::OK)),
        ),
        (
            Method::POST,
            format!("/api/v1/batches/{batch}/cancel"),
            Box::new(|_| Some(json!({}))),
            Box::new(users(&batch_users, StatusCode::OK)),
        ),
        (
            Method::DELETE,
            format!("/api/v1/batches/{running}"),
            Box::new(|_| None),
            Box::new(users(&batch_users, StatusCode::CONFLICT)),
        ),
        (
            Method::POST,
            "/api/v1/tokens".into(),
            Box::new(|_| Some(json!({"role": "publisher"}))),
            Box::new(users(&[Who::Admin], StatusCode::CREATED)),
        ),
        (
            Method::DELETE,
            format!("/api/v1/tokens/{throwaway_id}"),
            Box::new(|_| None),
            Box::new(users(&[Who::Admin], StatusCode::NO_CONTENT)),
        ),
    ];
    let mut failures = Vec::new();
    for (method, path, body, expect) in &cases {
        for who in EVERYONE {
            let token = token_of(who);
            let (status, answer) = api
                .call(method.clone(), path, token.as_deref(), body(who))
                .await;
            if status != expect(who) {
                failures.push(format!(
                    "{method} {path} as {who:?}: got {status}, expected {} ({answer})",
                    expect(who)
                ));
            }
            if !status.is_success() {
                assert!(
                    answer["error"].is_string() && answer["message"].is_string(),
                    "{method} {path} {who:?}: {answer}"
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "auth matrix mismatches:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn dashboard_views_can_be_made_public() {
    let project = Project::new();
    let api = Api::with_options(
        &project,
        musketeer_server::state::ServeOptions {
            public_dashboard: true,
            ..Default::default()
        },
    );
    for path in ["/api/v1/hosts", "/api/v1/stats", "/api/v1/apps"] {
        assert_eq!(api.get(path, None).await.0, StatusCode::OK, "{path}");
    }
    assert_eq!(
        api.get("/api/v1/batches", None).await.0,
        StatusCode::UNAUTHORIZED,
        "batches stay private"
    );
}

#[tokio::test]
async fn invite_code_is_required_when_configured() {
    let project = Project::new();
    let api = Api::with_options(
        &project,
        musketeer_server::state::ServeOptions {
            invite_code: Some("s3cret".into()),
            ..Default::default()
        },
    );
    let (_, info) = api.get("/api/v1/project", None).await;
    assert_eq!(info["registration"]["invite_required"], true);
    for body in [json!({}), json!({"invite_code": "wrong"})] {
        let answer = api.post("/api/v1/hosts/register", None, body).await;
        crate::support::assert_error(&answer, StatusCode::FORBIDDEN, "forbidden");
    }
    let (status, _) = api
        .post(
            "/api/v1/hosts/register",
            None,
            json!({"invite_code": "s3cret"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn expired_tokens_and_old_clients_are_refused() {
    let project = Project::new();
    let api = Api::new(&project);
    let (_, created) = api
        .post(
            "/api/v1/tokens",
            Some(&project.admin),
            json!({"role": "researcher", "expires_ms": 1}),
        )
        .await;
    let answer = api.get("/api/v1/batches", created["token"].as_str()).await;
    crate::support::assert_error(&answer, StatusCode::UNAUTHORIZED, "unauthorized");
    let host = api.register("old").await;
    let mut old = platform();
    old.client_version = "0.0.9".into();
    let answer = api
        .post(
            "/api/v1/work/fetch",
            Some(&host),
            json!({"free_slots": 1, "platform": old}),
        )
        .await;
    crate::support::assert_error(&answer, StatusCode::FORBIDDEN, "forbidden");
    assert!(answer.1["message"].as_str().unwrap().contains("upgrade"));
}

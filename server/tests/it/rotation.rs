//! Key rotation while the server runs: `POST /api/v1/project/rotations`.

use axum::http::StatusCode;
use musketeer_protocol::paths;
use musketeer_server::state::ServeOptions;
use musketeer_signing_keys::{RotationStatement, SecretKey};
use serde_json::Value;

use crate::support::{Api, Project, assert_error, publish_body};

fn key_ids(info: &Value) -> Vec<String> {
    info["trusted_keys"]
        .as_array()
        .expect("trusted_keys")
        .iter()
        .map(|k| k["key_id"].as_str().expect("key_id").to_owned())
        .collect()
}

#[tokio::test]
async fn an_admin_rotates_the_key_of_a_running_server_durably() {
    let project = Project::new();
    let state = project.state(ServeOptions::default());
    let api = Api::serving(&state);
    let new = SecretKey::generate();
    let statement = RotationStatement::sign(&project.key, &new.public_key(), true);
    let body = serde_json::to_value(&statement).unwrap();

    // Only an admin may; nothing changes otherwise.
    let anonymous = api.post(paths::PROJECT_ROTATIONS, None, body.clone()).await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "unauthorized");
    for token in [&project.publisher, &project.researcher] {
        let answer = api
            .post(paths::PROJECT_ROTATIONS, Some(token), body.clone())
            .await;
        assert_error(&answer, StatusCode::FORBIDDEN, "forbidden");
    }
    // A statement signed by a key the project does not trust, a tampered one, and garbage.
    let stranger = SecretKey::generate();
    let forged = RotationStatement::sign(&stranger, &new.public_key(), true);
    let mut tampered = body.clone();
    tampered["new_key"] = serde_json::to_value(stranger.public_key()).unwrap();
    for bad in [serde_json::to_value(&forged).unwrap(), tampered] {
        let answer = api
            .post(paths::PROJECT_ROTATIONS, Some(&project.admin), bad)
            .await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_request");
        assert!(
            answer.1["message"].as_str().unwrap().contains("refused"),
            "{answer:?}"
        );
    }
    let garbage = api
        .post(
            paths::PROJECT_ROTATIONS,
            Some(&project.admin),
            serde_json::json!({"new_key": 7}),
        )
        .await;
    assert!(garbage.0.is_client_error(), "{garbage:?}");
    let (_, info) = api.get(paths::PROJECT, None).await;
    assert_eq!(
        key_ids(&info),
        [project.key.public_key().key_id().to_string()]
    );

    // The rotation: the answer and the public project info show only the new key and the
    // statement that vouches for it.
    let (status, answer) = api
        .post(paths::PROJECT_ROTATIONS, Some(&project.admin), body.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, info) = api.get(paths::PROJECT, None).await;
    assert_eq!(answer, info);
    assert_eq!(key_ids(&info), [new.public_key().key_id().to_string()]);
    assert_eq!(info["rotations"], serde_json::json!([body]));
    // Sent twice by a nervous operator: accepted, recorded once.
    let again = api
        .post(paths::PROJECT_ROTATIONS, Some(&project.admin), body.clone())
        .await;
    assert_eq!(again.0, StatusCode::OK, "{}", again.1);
    assert_eq!(again.1["rotations"].as_array().map(Vec::len), Some(1));

    // Publishing follows at once: the new key is accepted, the retired one refused.
    let module = b"\0asm\x01\0\0\0";
    let (status, answer) = api
        .post(
            paths::APPS,
            Some(&project.publisher),
            publish_body(&new, "app", "1.0.0", module),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let old = api
        .post(
            paths::APPS,
            Some(&project.publisher),
            project.publish_body("app", "1.1.0", module),
        )
        .await;
    assert!(old.0.is_client_error(), "{old:?}");

    // Durable: the store has it after the server is gone.
    state.close();
    drop(api);
    drop(state);
    let stored = project.store().load().unwrap().project;
    assert!(stored.trust.contains(&new.public_key().key_id()));
    assert!(!stored.trust.contains(&project.key.public_key().key_id()));
    assert_eq!(stored.rotations, vec![statement]);
}

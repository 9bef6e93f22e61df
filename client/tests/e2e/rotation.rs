//! Key rotation while volunteers run: the author signs a rotation with `musketeer keys rotate`,
//! the operator sends it to the running server (`POST /api/v1/project/rotations`), and a client
//! that pinned the old key runs modules signed by the new one without being restarted.

use musketeer_protocol::{Replication, SubmitBatchRequest, UnitState};
use musketeer_task_artifacts::PRIMES;
use serde_json::json;

use crate::support::{Project, musketeer_ok, path, primes_answer, wait_idle};

fn primes_batch(project: &Project, from: u64, to: u64) -> Vec<musketeer_protocol::ResultRow> {
    let http = project.http();
    let request = SubmitBatchRequest {
        app: "primes".into(),
        version: None,
        inputs: vec![json!({"from": from, "to": to})],
        replication: Replication::default(),
        priority: 0,
        label: None,
        ..SubmitBatchRequest::default()
    };
    let batch = http.submit(&project.researcher, &request).batch_id;
    http.wait_finished(&project.researcher, batch);
    http.results(&project.researcher, batch)
}

#[test]
fn a_running_client_follows_a_key_rotation() {
    let project = Project::start();
    project.publish(PRIMES, "primes", "1.0.0", &[]);
    let client = project.join("dartagnan", 1);
    wait_idle(&client);
    let pid = client.pid();
    let rows = primes_batch(&project, 1, 1000);
    assert_eq!(rows[0].state, UnitState::Done, "{rows:?}");

    // The author makes a new key and signs the rotation with the old one.
    let new_keys = project.dir.path().join("new-keys");
    musketeer_ok(&["keys", "generate", "--out", path(&new_keys)], &[]);
    let statement = project.dir.path().join("rotation.json");
    let out = musketeer_ok(
        &[
            "keys",
            "rotate",
            "--old",
            path(&project.keys_dir().join("musketeer.key")),
            "--new",
            path(&new_keys.join("musketeer.pub")),
            "--out",
            path(&statement),
        ],
        &[],
    );
    assert!(out.contains("retires itself"), "{out}");

    // The operator sends it to the running server with the admin token.
    let body: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&statement).expect("read rotation.json"))
            .expect("rotation.json is JSON");
    let info: musketeer_protocol::ProjectInfo = project
        .http()
        .post(
            musketeer_protocol::paths::PROJECT_ROTATIONS,
            Some(&project.admin),
            &body,
        )
        .expect("the server takes the rotation");
    assert_eq!(info.rotations, vec![body]);

    // A version signed by the new key: the same client process verifies and runs it.
    project.publish_signed_by(
        &new_keys.join("musketeer.key"),
        PRIMES,
        "primes",
        "1.1.0",
        &[],
    );
    let rows = primes_batch(&project, 1000, 3000);
    assert_eq!(rows[0].state, UnitState::Done, "{rows:?}");
    assert_eq!(rows[0].output, Some(primes_answer(1000, 3000)));
    assert_eq!(client.pid(), pid, "the client was not restarted");
    assert_eq!(
        client.stdout.events("keys-rotated").len(),
        1,
        "{:?}",
        client.stdout.snapshot()
    );
    assert!(client.stdout.events("refused").is_empty());
}

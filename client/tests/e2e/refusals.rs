//! A client refuses a tampered or rolled-back module, reports why, and the server gives the unit
//! to another host.

use musketeer_protocol::{BatchId, Replication, SubmitBatchRequest, UnitState};
use musketeer_task_artifacts::PRIMES;

use crate::support::{Project, primes_answer, wait_for, wait_idle};

fn submit(project: &Project, version: Option<&str>, ranges: &[(u64, u64)]) -> BatchId {
    let request = SubmitBatchRequest {
        app: "primes".into(),
        version: version.map(|v| v.parse().unwrap()),
        inputs: ranges
            .iter()
            .map(|(from, to)| serde_json::json!({"from": from, "to": to}))
            .collect(),
        replication: Replication::default(),
        priority: 0,
        label: None,
        ..SubmitBatchRequest::default()
    };
    project
        .http()
        .submit(&project.researcher, &request)
        .batch_id
}

fn assert_correct(project: &Project, batch: BatchId, ranges: &[(u64, u64)]) {
    let http = project.http();
    http.wait_finished(&project.researcher, batch);
    let rows = http.results(&project.researcher, batch);
    assert_eq!(rows.len(), ranges.len());
    for (row, (from, to)) in rows.iter().zip(ranges) {
        assert_eq!(row.state, UnitState::Done, "{row:?}");
        assert_eq!(row.output.as_ref(), Some(&primes_answer(*from, *to)));
    }
}

#[test]
fn tampered_module_is_refused_and_the_unit_runs_elsewhere() {
    let project = Project::start();
    let manifest = project.publish(PRIMES, "primes", "1.0.0", &[]);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
    let sha = manifest["manifest"]["module_sha256"]
        .as_str()
        .expect("module hash")
        .to_owned();
    // Client A's stored copy of the module is altered (same size, one byte flipped).
    let modules = project.project_dir("tampered").join("modules");
    std::fs::create_dir_all(&modules).unwrap();
    let mut bytes = std::fs::read(PRIMES).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    let stored = modules.join(format!("{sha}.wasm"));
    std::fs::write(&stored, &bytes).unwrap();

    let a = project.join("tampered", 1);
    wait_idle(&a);
    let ranges = [(1, 5000)];
    let batch = submit(&project, None, &ranges);
    let refusal = wait_for("the tampered client to refuse", || {
        a.stdout.events("failed").into_iter().next()
    });
    assert_eq!(refusal["kind"], "refused-module", "{refusal}");
    assert!(
        refusal["message"]
            .as_str()
            .unwrap()
            .contains("hash mismatch"),
        "{refusal}"
    );
    assert!(
        !stored.exists(),
        "the altered copy is dropped so it is downloaded again"
    );
    let _b = project.join("clean", 1);
    assert_correct(&project, batch, &ranges);
    let hosts = project.http().hosts(&project.admin);
    let tampered = hosts.hosts.iter().find(|h| h.name == "tampered").unwrap();
    assert!(
        tampered.failed >= 1,
        "the refusal was reported: {tampered:?}"
    );
}

#[test]
fn rolled_back_version_is_refused_and_runs_elsewhere() {
    let project = Project::start();
    project.publish(PRIMES, "primes", "1.0.0", &[]);
    project.publish(PRIMES, "primes", "2.0.0", &[]);
    let a = project.join("upgraded", 2);
    wait_idle(&a);
    let current = [(1, 100)];
    assert_correct(&project, submit(&project, None, &current), &current);

    // A batch pinned to the older version: the client that ran 2.0.0 refuses it.
    let ranges = [(1, 1000), (1, 2000)];
    let batch = submit(&project, Some("1.0.0"), &ranges);
    let refusals = wait_for("the upgraded client to refuse both units", || {
        let failed = a.stdout.events("failed");
        (failed.len() >= 2).then_some(failed)
    });
    for refusal in &refusals {
        assert_eq!(refusal["kind"], "refused-module", "{refusal}");
        assert!(
            refusal["message"].as_str().unwrap().contains("rollback"),
            "{refusal}"
        );
    }
    let _b = project.join("fresh", 2);
    assert_correct(&project, batch, &ranges);
}

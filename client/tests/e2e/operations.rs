//! Operations against a running server through the `musketeer` binary: token list and revoke,
//! online backup and restore.

use std::process::Command;

use musketeer_protocol::{Replication, Role, SubmitBatchRequest, TokenList};
use musketeer_task_artifacts::PRIMES;

use crate::support::{Project, musketeer, musketeer_ok, path, primes_answer, wait_idle};

#[test]
fn an_admin_lists_and_revokes_tokens_of_a_running_server() {
    let mut project = Project::start();
    let admin_env = [
        ("MUSKETEER_SERVER", project.url.as_str()),
        ("MUSKETEER_TOKEN", project.admin.as_str()),
    ];
    let listed: TokenList =
        serde_json::from_str(&musketeer_ok(&["tokens", "list", "--json"], &admin_env))
            .expect("tokens list --json prints a TokenList");
    let researcher = listed
        .tokens
        .iter()
        .find(|t| t.role == Role::Researcher)
        .expect("init made a researcher token");
    assert!(!researcher.revoked);
    let table = musketeer_ok(&["tokens", "list"], &admin_env);
    assert!(
        !table.contains(&project.admin) && !table.contains(&project.researcher),
        "{table}"
    );
    assert!(
        table.contains("researcher") && table.contains("active"),
        "{table}"
    );

    let http = project.http();
    assert!(
        http.get_text("/api/v1/batches", &project.researcher)
            .is_ok()
    );
    let id = researcher.id.0.to_string();
    let out = musketeer_ok(&["tokens", "revoke", &id], &admin_env);
    assert!(out.contains(&format!("revoked token {id}")), "{out}");
    let refused = http
        .get_text("/api/v1/batches", &project.researcher)
        .expect_err("a revoked token is refused at once");
    assert!(refused.starts_with("401"), "{refused}");
    let table = musketeer_ok(&["tokens", "list"], &admin_env);
    assert!(table.contains("revoked"), "{table}");

    // A non-admin is told what is wrong and what to do.
    let denied = Command::new(musketeer())
        .args(["tokens", "list", "--server", &project.url])
        .args(["--token", &project.researcher])
        .output()
        .expect("run musketeer");
    assert!(!denied.status.success());
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(stderr.contains("admin token"), "{stderr}");

    // The revocation was durable before the answer: it survives a restart.
    project.restart_server();
    let refused = project
        .http()
        .get_text("/api/v1/batches", &project.researcher)
        .expect_err("still revoked after a restart");
    assert!(refused.starts_with("401"), "{refused}");
}

#[test]
fn a_backup_taken_while_serving_restores_to_a_server_that_finishes_the_batch() {
    let mut project = Project::start();
    project.publish(PRIMES, "primes", "1.0.0", &[]);
    let http = project.http();
    let ranges = [(1u64, 1000u64), (1000, 3000), (3000, 6000)];
    let request = SubmitBatchRequest {
        app: "primes".into(),
        version: None,
        inputs: ranges
            .iter()
            .map(|(from, to)| serde_json::json!({"from": from, "to": to}))
            .collect(),
        replication: Replication::default(),
        priority: 0,
        label: Some("backed up".into()),
        ..SubmitBatchRequest::default()
    };
    // Taken while serving, before any volunteer: the restored server must finish the batch.
    let batch = http.submit(&project.researcher, &request).batch_id;
    let backup = project.dir.path().join("backup.redb");
    let (url, admin) = (project.url.clone(), project.admin.clone());
    let admin_env = [
        ("MUSKETEER_SERVER", url.as_str()),
        ("MUSKETEER_TOKEN", admin.as_str()),
    ];
    let out = musketeer_ok(&["admin", "backup", "--out", path(&backup)], &admin_env);
    assert!(out.contains("wrote"), "{out}");
    let later = http.submit(&project.researcher, &request).batch_id;

    // Restore: stop the server, put the copy in place, start it again.
    project.server.kill();
    std::fs::copy(&backup, project.dir.path().join("server/musketeer.redb"))
        .expect("put the backup in place");
    project.restart_server();
    let http = project.http();
    let missing = http
        .status(&project.researcher, later)
        .expect_err("a batch submitted after the backup is not in it");
    assert!(missing.starts_with("404"), "{missing}");
    let volunteer = project.join("aramis", 2);
    wait_idle(&volunteer);
    let status = http.wait_finished(&project.researcher, batch);
    assert_eq!(status.counts.done, 3, "{status:?}");
    for row in http.results(&project.researcher, batch) {
        let (from, to) = ranges[(row.unit_id.0 - status.first_unit.0) as usize];
        assert_eq!(row.output, Some(primes_answer(from, to)), "{from}..={to}");
    }

    // An existing --out is refused before anything is downloaded.
    let refused = Command::new(musketeer())
        .args(["admin", "backup", "--out", path(&backup)])
        .envs(admin_env)
        .output()
        .expect("run musketeer");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("exists"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

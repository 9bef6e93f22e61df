//! Operations against a running server through the `musketeer` binary: token list and revoke.

use std::process::Command;

use musketeer_protocol::{Role, TokenList};

use crate::support::{Project, musketeer, musketeer_ok};

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

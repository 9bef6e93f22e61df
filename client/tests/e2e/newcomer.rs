//! What a new volunteer sees: a fresh client says at once that it waits for work, a wrong
//! `--trust-key` or a dead first URL stops it with the reason, a known project keeps being
//! retried with the root cause on each line, and a memory limit no app fits is said.

use std::process::{Command, Output, Stdio};
use std::time::Instant;

use musketeer_task_artifacts::PRIMES;

use crate::support::{DEADLINE, Project, free_port, musketeer, musketeer_ok, path, wait_for};

/// Runs `musketeer ARGS` to its end, killing it if it outlives [`DEADLINE`] (a client that
/// retries forever must fail the test, not hang it).
fn musketeer_to_the_end(args: &[&str]) -> Output {
    let mut child = Command::new(musketeer())
        .args(args)
        .env("MUSKETEER_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run musketeer");
    let start = Instant::now();
    let exited = wait_for("musketeer to exit", || {
        if start.elapsed() > DEADLINE / 2 {
            let _ = child.kill();
            return Some(false);
        }
        child.try_wait().ok().flatten().map(|_| true)
    });
    let output = child
        .wait_with_output()
        .expect("collect musketeer's output");
    assert!(
        exited,
        "musketeer {args:?} did not stop by itself: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    output
}

#[test]
fn a_fresh_client_says_at_once_that_it_waits_for_work() {
    let project = Project::start();
    let client = project.join("newbie", 1);
    let lines = client.stdout.clone();
    // The first fetch waits 2 s on the server for work (20 s by default); the line must not.
    wait_for("the client to say it waits", || {
        (!lines.events("waiting").is_empty()).then_some(())
    });
    let events: Vec<String> = lines
        .snapshot()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["event"].as_str().map(str::to_owned))
        .collect();
    let joined = events.iter().position(|e| e == "joined").expect("joined");
    assert_eq!(
        events.get(joined + 1).map(String::as_str),
        Some("waiting"),
        "{events:?}"
    );
    // Said before the first empty answer, not after it (the order is the client's own).
    if let Some(idle) = events.iter().position(|e| e == "idle") {
        assert!(idle > joined + 1, "{events:?}");
    }
}

#[test]
fn a_trust_key_other_than_the_pinned_one_stops_the_client() {
    let project = Project::start();
    let mut first = project.join("pinner", 1);
    let lines = first.stdout.clone();
    wait_for("the first join", || {
        (!lines.events("waiting").is_empty()).then_some(())
    });
    first.kill();

    let other = project.dir.path().join("other-keys");
    musketeer_ok(&["keys", "generate", "--out", path(&other)], &[]);
    let output = musketeer_to_the_end(&[
        "join",
        &project.url,
        "--data-dir",
        path(&project.client_dir("pinner")),
        "--trust-key",
        path(&other.join("musketeer.pub")),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("is not the key this data directory pinned"),
        "{stderr}"
    );
    assert!(stderr.contains("remove trust.json"), "{stderr}");
}

#[test]
fn a_first_join_to_a_dead_url_stops_with_the_root_cause() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("http://127.0.0.1:{}", free_port());
    let output = musketeer_to_the_end(&[
        "join",
        &url,
        "--data-dir",
        path(&dir.path().join("client")),
        "--log-format",
        "json",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(stderr.contains("check the URL"), "{stderr}");
    assert_eq!(
        stderr.matches("error sending request").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn a_known_project_keeps_being_retried_with_the_root_cause() {
    let mut project = Project::start();
    let mut first = project.join("regular", 1);
    let lines = first.stdout.clone();
    wait_for("the first join", || {
        (!lines.events("waiting").is_empty()).then_some(())
    });
    first.kill();
    project.server.kill();

    let again = project.join("regular", 1);
    let lines = again.stdout.clone();
    let retries = wait_for("the client to retry a few times", || {
        let retries = lines.events("retry");
        (retries.len() >= 4).then_some(retries)
    });
    for retry in &retries {
        let error = retry["error"].as_str().expect("error text");
        assert!(error.contains("Connection refused"), "{error}");
        assert_eq!(error.matches("error sending request").count(), 1, "{error}");
    }
    // Still running, and it joins once the server is back.
    project.restart_server();
    wait_for("the client to join again", || {
        (!lines.events("waiting").is_empty()).then_some(())
    });
}

#[test]
fn a_memory_limit_no_app_fits_is_said_at_join() {
    let project = Project::start();
    project.publish(PRIMES, "primes", "1.0.0", &[]);
    let tight = project.join_with("tight", 1, &["--max-task-memory", "1"]);
    let lines = tight.stdout.clone();
    let warning = wait_for("the memory warning", || {
        lines.events("apps-too-big").into_iter().next()
    });
    assert_eq!(warning["any_app_fits"], false, "{warning}");
    assert_eq!(warning["apps"][0]["app"], "primes", "{warning}");

    // With room enough, nothing is said.
    let roomy = project.join_with("roomy", 1, &["--max-task-memory", "4096"]);
    let lines = roomy.stdout.clone();
    wait_for("the roomy client to poll", || {
        (!lines.events("idle").is_empty()).then_some(())
    });
    assert!(lines.events("apps-too-big").is_empty());
}

#[test]
fn join_help_documents_musketeer_log() {
    let help = musketeer_ok(&["join", "--help"], &[]);
    assert!(help.contains("MUSKETEER_LOG"), "{help}");
}

//! Researcher CLI habits against a real server: results streamed as units finish, `apps list`,
//! `batch list`, `--json` outputs, and the exit status of a batch that ends with failures.

use std::process::Command;

use musketeer_protocol::{BatchId, BatchState};
use musketeer_task_artifacts::NOOP;

use crate::submit_wait::ByHand;
use crate::support::{Proc, Project, musketeer, musketeer_ok, path, wait_for};

/// `musketeer ARGS` as the project's researcher, with no config file from the environment.
fn researcher(project: &Project, args: &[&str]) -> Command {
    let mut command = Command::new(musketeer());
    command
        .args(args)
        .args(["--server", &project.url])
        .env("MUSKETEER_TOKEN", &project.researcher)
        .env("XDG_CONFIG_HOME", project.dir.path())
        .env("MUSKETEER_LOG", "warn");
    command
}

/// The JSON lines of `lines` that are result rows, by unit id.
fn rows(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|value| value.get("unit_id").is_some())
        .collect()
}

#[test]
fn submit_wait_stream_writes_each_result_as_its_unit_finishes() {
    let project = Project::start();
    project.publish(NOOP, "noop", "1.0.0", &[]);
    let inputs = project.dir.path().join("two.jsonl");
    std::fs::write(&inputs, "{\"n\":1}\n{\"n\":2}\n").expect("write the inputs");

    let mut command = researcher(&project, &["submit", "--app", "noop"]);
    command.args(["--inputs", path(&inputs), "--wait", "--stream"]);
    let mut submit = Proc::spawn(command, "submit");
    let batch_id: u64 = wait_for("the batch id on stdout", || {
        submit.stdout.snapshot().first()?.trim().parse().ok()
    });

    let host = ByHand::register(&project.url);
    let [first] = host.take(1).try_into().expect("one assignment");
    host.report(&first, br#"{"echo":"first"}"#);
    // The first row is out while the other unit still runs.
    let streamed = wait_for("the first result on stdout", || {
        let rows = rows(&submit.stdout.snapshot());
        (!rows.is_empty()).then_some(rows)
    });
    assert_eq!(streamed.len(), 1, "{streamed:?}");
    assert_eq!(streamed[0]["output"]["echo"], "first", "{streamed:?}");
    let http = project.http();
    let status = http
        .status(&project.researcher, BatchId(batch_id))
        .expect("the batch status");
    assert_eq!(status.state, BatchState::Running, "{status:?}");

    let [second] = host.take(1).try_into().expect("one assignment");
    host.report(&second, br#"{"echo":"second"}"#);
    let exit = submit.wait_exit();
    let lines = submit.stdout.snapshot();
    assert!(exit.success(), "submit --wait --stream failed: {lines:?}");
    let rows = rows(&lines);
    let mut units: Vec<u64> = rows.iter().filter_map(|r| r["unit_id"].as_u64()).collect();
    units.sort_unstable();
    units.dedup();
    assert_eq!(rows.len(), 2, "each unit once: {lines:?}");
    assert_eq!(units.len(), 2, "{lines:?}");
    assert_eq!(rows[1]["output"]["echo"], "second", "{lines:?}");
}

#[test]
fn apps_and_batches_are_listed_and_json_outputs_parse() {
    let project = Project::start();
    let keys = project.keys_dir();
    let manifest = project.dir.path().join("noop.manifest.json");
    musketeer_ok(
        &[
            "sign",
            "--key",
            path(&keys.join("musketeer.key")),
            "--module",
            NOOP,
            "--app",
            "noop",
            "--version",
            "1.2.0",
            "--memory",
            "32MiB",
            "--timeout",
            "2m",
            "--out",
            path(&manifest),
            "--input-description",
            "any JSON; echoed back",
            "--input-example",
            r#"{"n":1}"#,
        ],
        &[],
    );
    let published = musketeer_ok(
        &[
            "publish",
            "--server",
            &project.url,
            "--manifest",
            path(&manifest),
            "--module",
            NOOP,
            "--json",
        ],
        &[("MUSKETEER_TOKEN", &project.publisher)],
    );
    let published: serde_json::Value =
        serde_json::from_str(&published).expect("publish --json prints one JSON object");
    assert_eq!(published["version"], "1.2.0", "{published}");

    let listed = researcher(&project, &["apps", "list"])
        .output()
        .expect("apps list");
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(
        text.contains("noop 1.2.0: fuel ") && text.contains("memory 32MiB, timeout 2m"),
        "{text}"
    );
    assert!(
        text.contains("\n  input: any JSON; echoed back\n  example: {\"n\":1}"),
        "{text}"
    );

    let inputs = project.dir.path().join("one.jsonl");
    std::fs::write(&inputs, "{\"n\":1}\n").expect("write the inputs");
    let submitted = researcher(&project, &["submit", "--app", "noop", "--json"])
        .args([
            "--inputs",
            path(&inputs),
            "--priority",
            "-2",
            "--deadline",
            "90",
        ])
        .output()
        .expect("submit");
    assert!(
        submitted.status.success(),
        "{}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    let response: serde_json::Value =
        serde_json::from_slice(&submitted.stdout).expect("submit --json prints one JSON object");
    assert_eq!(response["n_units"], 1, "{response}");
    assert_eq!(
        response["replication"]["delay_bound_ms"], 90_000,
        "{response}"
    );
    let id = response["batch_id"].as_u64().expect("a batch id");

    let listed = researcher(&project, &["batch", "list"])
        .output()
        .expect("batch list");
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains(&format!("batch {id} (noop 1.2.0): running")),
        "{text}"
    );

    // A waited-for batch that ends cancelled exits 5.
    let mut command = researcher(&project, &["batch", "status", &id.to_string(), "--wait"]);
    command.arg("-q");
    let mut watch = Proc::spawn(command, "batch status --wait");
    musketeer_ok(
        &["batch", "cancel", &id.to_string(), "--server", &project.url],
        &[("MUSKETEER_TOKEN", &project.researcher)],
    );
    let exit = watch.wait_exit();
    assert_eq!(exit.code(), Some(5), "{:?}", watch.stderr.snapshot());
    let said = watch.stderr.snapshot().join("\n");
    assert!(
        said.contains("ended with 0 failed and 1 cancelled unit(s)"),
        "{said}"
    );
}

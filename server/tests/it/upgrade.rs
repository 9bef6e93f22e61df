//! Upgrades: a store written by the previous release (schema 2, tests/fixtures/v2-store) opens
//! with today's server, which migrates it, keeps its tokens, hosts and results, and finishes its
//! half-run batch.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};

use crate::durability::{ServerProcess, results, wait_for};
use crate::support::{http_json, http_volunteer_round};

#[path = "../../../tasks/primes/src/kernel.rs"]
#[allow(dead_code)]
mod primes_kernel;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v2-store");

/// The primes task's output for `input`, computed by the task's own kernel.
fn primes_output(input: &Value) -> Value {
    let summary = primes_kernel::count_primes(
        input["from"].as_u64().unwrap(),
        input["to"].as_u64().unwrap(),
    );
    json!({"count": summary.count, "last": summary.last})
}

fn server(args: &[&str], data: &Path) -> (Output, String) {
    crate::cli::run(crate::cli::server().args(args).arg("--data-dir").arg(data))
}

/// A copy of the fixture store in a new data dir; (temp dir, data dir, tokens.json).
pub(crate) fn fixture_copy() -> (tempfile::TempDir, std::path::PathBuf, Value) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::copy(
        Path::new(FIXTURE).join("store.redb"),
        data.join("musketeer.redb"),
    )
    .unwrap();
    let tokens =
        serde_json::from_slice(&std::fs::read(Path::new(FIXTURE).join("tokens.json")).unwrap())
            .unwrap();
    (dir, data, tokens)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_the_previous_release_migrates_and_its_batch_finishes() {
    let (_dir, data, tokens) = fixture_copy();
    let backup = data.join("musketeer.redb.pre-v3.bak");
    // Twice: the first dry run left the schema as it was.
    for _ in 0..2 {
        let (output, text) = server(&["migrate", "--dry-run"], &data);
        assert!(output.status.success(), "{text}");
        assert!(
            text.contains("Would migrate") && text.contains("from schema 2 to 3"),
            "{text}"
        );
        assert!(text.contains("stamped 0 finished batch"), "{text}");
        assert!(!backup.exists(), "a dry run copies nothing");
    }

    // `serve` migrates on start, after copying the store aside.
    let mut process = ServerProcess::start(&data);
    let url = process.url.clone();
    assert!(backup.exists(), "the pre-migration copy");
    let http = reqwest::Client::new();
    let researcher = tokens["researcher"].as_str().unwrap();
    let admin = tokens["admin"].as_str().unwrap();
    let batch = tokens["batch"].as_u64().unwrap();
    let batch_url = format!("{url}/api/v1/batches/{batch}");
    let (status, status_before) = http_json(http.get(&batch_url), Some(researcher)).await;
    assert_eq!(status, 200, "{status_before}");
    let done_before = status_before["counts"]["done"].as_u64().unwrap();
    assert!((3..8).contains(&done_before), "{status_before}");
    let old_rows = results(&http, &url, researcher, batch).await;

    // The volunteer carries on with its old host token, as an upgraded client would.
    let host = tokens["host"].as_str().unwrap();
    wait_for("the batch to finish", Duration::from_secs(60), async || {
        http_volunteer_round(&http, &url, host, primes_output).await;
        http_json(http.get(&batch_url), Some(researcher)).await.1["state"] == "finished"
    })
    .await;

    let rows = results(&http, &url, researcher, batch).await;
    assert_eq!(rows.len(), 8);
    for (unit, row) in &rows {
        assert_eq!(row["state"], "done", "{row}");
        assert_eq!(row["output"], primes_output(&row["input"]), "{row}");
        if old_rows[unit]["state"] == "done" {
            assert_eq!(row, &old_rows[unit], "results of the old release stay");
        }
    }
    let (status, list) = http_json(http.get(format!("{url}/api/v1/tokens")), Some(admin)).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["tokens"].as_array().unwrap().len(), 3, "{list}");
    let (_, hosts) = http_json(http.get(format!("{url}/api/v1/hosts")), Some(admin)).await;
    assert_eq!(hosts["hosts"][0]["name"], "old-volunteer", "{hosts}");
    process.kill();

    let (output, text) = server(&["migrate", "--dry-run"], &data);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("at schema 3: nothing to do"), "{text}");
}

#[test]
fn a_store_of_a_newer_schema_is_refused_and_left_alone() {
    let (_dir, data, _) = fixture_copy();
    // As a later release would leave it: migrated, then marked with a schema this one lacks.
    musketeer_server::store::Store::open(&data)
        .unwrap()
        .write_now(vec![musketeer_server::store::Write::Meta(
            "schema_version".into(),
            99u64.to_le_bytes().to_vec(),
        )])
        .unwrap();
    let backup = data.join("musketeer.redb.pre-v3.bak");
    std::fs::remove_file(&backup).unwrap();
    for args in [&["serve"][..], &["migrate"], &["migrate", "--dry-run"]] {
        let (output, text) = server(args, &data);
        assert!(!output.status.success(), "{args:?}: {text}");
        assert!(
            text.contains("schema version 99")
                && text.contains("newer musketeer-server")
                && text.contains("upgrade the binary"),
            "{args:?}: {text}"
        );
    }
    assert!(!backup.exists(), "nothing was migrated");
}

//! Moving a store: `export` a store with a batch half done, `import` it into a new directory or
//! a PostgreSQL database, and serve it there: results, tokens and host carry over and the batch
//! finishes. Damaged exports are refused, naming the line, and leave nothing behind.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use musketeer_server::store::rows::{Commit, RowKey, Table};
use musketeer_server::store::{Store, StoreError, StoreLocation};
use serde_json::{Value, json};

use crate::durability::{ServerProcess, wait_for};
use crate::pg_support::PgCluster;
use crate::support::{base64_encode, http_json, http_volunteer_round, platform, publish_body};

/// `--data-dir DIR`.
fn at_dir(dir: &Path) -> [&OsStr; 2] {
    ["--data-dir".as_ref(), dir.as_os_str()]
}

/// `--store URL`.
fn at_pg(url: &str) -> [&OsStr; 2] {
    ["--store".as_ref(), url.as_ref()]
}

/// `musketeer-server ARGS FILE` on the store `store` names (`at_dir` or `at_pg`).
fn server(args: &[&str], store: &[&OsStr], file: &Path) -> (Output, String) {
    crate::cli::run(crate::cli::server().args(args).arg(file).args(store))
}

/// `export` of the store `store` names to `file`, asserting success.
fn export(store: &[&OsStr], file: &Path) {
    let (output, text) = server(&["export", "--output"], store, file);
    assert!(output.status.success(), "{text}");
}

/// `import` of `file` into the store `store` names: success and what it printed.
fn import(store: &[&OsStr], file: &Path) -> (bool, String) {
    let (output, text) = server(&["import", "--input"], store, file);
    (output.status.success(), text)
}

fn output_of(input: &Value) -> Value {
    json!({"square": input.as_u64().unwrap().pow(2)})
}

async fn csv(http: &reqwest::Client, url: &str, token: &str, batch: u64) -> String {
    let response = http
        .get(format!("{url}/api/v1/batches/{batch}/results?format=csv"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_store_keeps_its_results_tokens_and_host_and_finishes_its_batch() {
    move_a_batch_half_done(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_moved_into_postgres_keeps_its_results_tokens_and_host_and_finishes_its_batch() {
    let cluster = PgCluster::start();
    move_a_batch_half_done(Some(&cluster.database())).await;
}

/// A redb store with a batch half done (units validated, units leased, tokens, a host, an
/// app and its module) exported, imported into a new directory or into the PostgreSQL
/// database `postgres`, and served there until the batch finishes.
async fn move_a_batch_half_done(postgres: Option<&str>) {
    let (dir, data, admin) = crate::cli::init();
    let key =
        musketeer_signing_keys::read_secret_key(&dir.path().join("keys/musketeer.key")).unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut old = ServerProcess::start(&data);
    let url = old.url.clone();
    let (status, body) = http_json(
        http.post(format!("{url}/api/v1/apps")).json(&publish_body(
            &key,
            "noop",
            "1.0.0",
            b"module bytes",
        )),
        Some(&admin),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = http_json(
        http.post(format!("{url}/api/v1/tokens"))
            .json(&json!({"role": "researcher"})),
        Some(&admin),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let researcher = body["token"].as_str().unwrap().to_owned();
    let (status, body) = http_json(
        http.post(format!("{url}/api/v1/batches")).json(&json!({
            "app": "noop", "inputs": (0..8).collect::<Vec<u64>>(), "replication": {"min_quorum": 1}
        })),
        Some(&researcher),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let batch = body["batch_id"].as_u64().unwrap();
    let (status, body) = http_json(
        http.post(format!("{url}/api/v1/hosts/register"))
            .json(&json!({"name": "mover", "platform": platform()})),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let host = body["host_token"].as_str().unwrap().to_owned();
    // Two units validated, two leased and held over the move, four never sent.
    http_volunteer_round(&http, &url, &host, output_of).await;
    let (status, fetched) = http_json(
        http.post(format!("{url}/api/v1/work/fetch"))
            .json(&json!({"free_slots": 2, "platform": platform()})),
        Some(&host),
    )
    .await;
    assert_eq!(status, 200, "{fetched}");
    let held = fetched["assignments"].as_array().unwrap().clone();
    assert_eq!(held.len(), 2, "{fetched}");
    let batch_url = format!("{url}/api/v1/batches/{batch}");
    let (_, before) = http_json(http.get(&batch_url), Some(&researcher)).await;
    assert_eq!(before["counts"]["done"], 2, "{before}");
    let csv_before = csv(&http, &url, &researcher, batch).await;

    let file = dir.path().join("store.jsonl");
    let (output, text) = server(&["export", "--output"], &at_dir(&data), &file);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("in use") && text.contains("server stopped"),
        "{text}"
    );
    assert!(!file.exists(), "a refused export leaves no file");
    old.kill();
    export(&at_dir(&data), &file);

    let moved = dir.path().join("moved");
    let target = match postgres {
        Some(url) => at_pg(url),
        None => at_dir(&moved),
    };
    let (ok, text) = import(&target, &file);
    assert!(ok, "{text}");
    assert!(
        text.contains("units 8") && text.contains("hosts 1"),
        "{text}"
    );
    // What an import makes exports to the same bytes, whichever store holds it.
    let again = dir.path().join("again.jsonl");
    export(&target, &again);
    assert_eq!(
        std::fs::read(&file).unwrap(),
        std::fs::read(&again).unwrap()
    );
    if postgres.is_none() {
        let leftovers: Vec<PathBuf> = std::fs::read_dir(&moved)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        assert_eq!(leftovers, vec![moved.join("musketeer.redb")]);
    }

    let new = ServerProcess::start_on(&target, &[]);
    let url = new.url.clone();
    let batch_url = format!("{url}/api/v1/batches/{batch}");
    assert_eq!(csv(&http, &url, &researcher, batch).await, csv_before);
    let (status, tokens) = http_json(http.get(format!("{url}/api/v1/tokens")), Some(&admin)).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["tokens"].as_array().unwrap().len(), 2, "{tokens}");
    // The host reports what it held across the move, then carries on.
    let results: Vec<Value> = held
        .iter()
        .map(|a| {
            let output = output_of(&a["input"]).to_string();
            json!({"result_id": a["result_id"], "outcome": {"status": "success",
                "output": base64_encode(output.as_bytes()), "fuel_consumed": 1, "wall_ms": 1}})
        })
        .collect();
    let (status, body) = http_json(
        http.post(format!("{url}/api/v1/work/report"))
            .json(&json!({"results": results})),
        Some(&host),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for ack in body["acks"].as_array().unwrap() {
        assert_eq!(ack["status"], "accepted", "{body}");
    }
    wait_for("the batch to finish", Duration::from_secs(60), async || {
        http_volunteer_round(&http, &url, &host, output_of).await;
        http_json(http.get(&batch_url), Some(&researcher)).await.1["state"] == "finished"
    })
    .await;
    let rows = crate::durability::results(&http, &url, &researcher, batch).await;
    assert_eq!(rows.len(), 8);
    for row in rows.values() {
        assert_eq!(row["state"], "done", "{row}");
        assert_eq!(row["output"], output_of(&row["input"]), "{row}");
    }
    let csv_after = csv(&http, &url, &researcher, batch).await;
    let finished_before: Vec<&str> = csv_before
        .lines()
        .filter(|line| line.contains(",done,"))
        .collect();
    assert_eq!(finished_before.len(), 2, "{csv_before}");
    for line in finished_before {
        assert!(csv_after.lines().any(|l| l == line), "{line} kept");
    }
}

/// A fresh store exported: (temp dir, the export's lines).
fn small_export() -> (tempfile::TempDir, Vec<String>) {
    let (dir, data, _) = crate::cli::init();
    let file = dir.path().join("store.jsonl");
    export(&at_dir(&data), &file);
    let text = std::fs::read_to_string(&file).unwrap();
    // Header, meta "project" and "schema_version", the admin token, trailer.
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 5, "{text}");
    (dir, lines)
}

/// The lines as a file's content.
fn join(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// `lines` with one base64 character of the token row (line 4) changed: still a valid row,
/// but not the one the trailer hashed.
fn flip_token_row(lines: &[String]) -> Vec<String> {
    let mut flipped = lines.to_vec();
    let at = flipped[3].find("\"row\":\"").unwrap() + 8;
    let original = flipped[3].as_bytes()[at];
    let replacement = if original == b'A' { "B" } else { "A" };
    flipped[3].replace_range(at..=at, replacement);
    flipped
}

/// Import `content` into a new directory; asserts that it failed, created nothing and said
/// every one of `expected`.
fn assert_refused(dir: &Path, content: &[u8], expected: &[&str]) {
    let file = dir.join("damaged.jsonl");
    std::fs::write(&file, content).unwrap();
    let target = dir.join("target");
    let (ok, text) = import(&at_dir(&target), &file);
    assert!(!ok, "{text}");
    for phrase in expected {
        assert!(text.contains(phrase), "{phrase:?} missing from: {text}");
    }
    assert!(!target.exists(), "nothing created: {text}");
}

#[test]
fn damaged_exports_are_refused_naming_the_line_and_create_nothing() {
    let (dir, lines) = small_export();
    let whole = join(&lines);

    // The intact file imports (so the refusals below are the damage's doing).
    let (ok, text) = import(&at_dir(&dir.path().join("intact")), &{
        let file = dir.path().join("intact.jsonl");
        std::fs::write(&file, &whole).unwrap();
        file
    });
    assert!(ok, "{text}");

    assert_refused(
        dir.path(),
        join(&lines[..4]).as_bytes(),
        &["ends at line 4 without its trailer", "truncated"],
    );
    assert_refused(
        dir.path(),
        &whole.as_bytes()[..whole.len() / 2],
        &["without a newline", "truncated"],
    );

    let mut reordered = lines.clone();
    reordered.swap(1, 2);
    assert_refused(
        dir.path(),
        join(&reordered).as_bytes(),
        &["line 3", "out of order"],
    );

    assert_refused(
        dir.path(),
        join(&flip_token_row(&lines)).as_bytes(),
        &["line 5", "sha256", "changed or damaged"],
    );

    let mut newer_format = lines.clone();
    newer_format[0] = newer_format[0].replace("\"format_version\":1", "\"format_version\":2");
    assert_refused(
        dir.path(),
        join(&newer_format).as_bytes(),
        &["format version 2", "reads version 1"],
    );
    let mut newer_schema = lines.clone();
    newer_schema[0] = newer_schema[0].replace("\"schema_version\":3", "\"schema_version\":99");
    assert_refused(
        dir.path(),
        join(&newer_schema).as_bytes(),
        &["schema version 99", "upgrade the binary"],
    );
    assert_refused(
        dir.path(),
        b"{\"hello\":1}\n",
        &["line 1 is not the header"],
    );

    // An existing store is never overwritten.
    let (_existing_dir, existing, _) = crate::cli::init();
    let file = dir.path().join("intact.jsonl");
    let before = std::fs::read(existing.join("musketeer.redb")).unwrap();
    let (ok, text) = import(&at_dir(&existing), &file);
    assert!(!ok, "{text}");
    assert!(
        text.contains("already exists") && text.contains("empty --data-dir"),
        "{text}"
    );
    assert_eq!(
        std::fs::read(existing.join("musketeer.redb")).unwrap(),
        before
    );
}

#[test]
fn damaged_exports_create_nothing_in_postgres_and_a_store_there_is_never_overwritten() {
    let cluster = PgCluster::start();
    let url = cluster.database();
    let location = StoreLocation::Postgres(url.clone());
    let (dir, lines) = small_export();
    let file = dir.path().join("import.jsonl");
    let refused = |content: String, expected: &[&str]| {
        std::fs::write(&file, content).unwrap();
        let (ok, text) = import(&at_pg(&url), &file);
        assert!(!ok, "{text}");
        for phrase in expected {
            assert!(text.contains(phrase), "{phrase:?} missing from: {text}");
        }
        assert!(
            matches!(
                Store::open_at(&location),
                Err(StoreError::DatabaseUninitialised(_))
            ),
            "nothing created: {text}"
        );
    };
    // Every row written before the trailer is checked: the whole copy rolls back.
    refused(
        join(&flip_token_row(&lines)),
        &["line 5", "changed or damaged", "nothing was created"],
    );
    refused(join(&lines[..4]), &["without its trailer"]);
    let mut older = lines.clone();
    older[0] = older[0].replace("\"schema_version\":3", "\"schema_version\":2");
    refused(join(&older), &["schema 2", "--data-dir first"]);

    std::fs::write(&file, join(&lines)).unwrap();
    let (ok, text) = import(&at_pg(&url), &file);
    assert!(ok, "{text}");
    let (ok, text) = import(&at_pg(&url), &file);
    assert!(!ok, "{text}");
    assert!(text.contains("initialised already"), "{text}");
    // The refused import changed nothing: the store exports as it was imported.
    let again = dir.path().join("again.jsonl");
    export(&at_pg(&url), &again);
    assert_eq!(std::fs::read_to_string(&again).unwrap(), join(&lines));
}

/// `table`'s keys in the order the store visits them.
fn keys_of(store: &Store, table: Table) -> Vec<RowKey> {
    let mut keys = Vec::new();
    store
        .visit_rows::<StoreError>(table, |key, _| {
            keys.push(key.clone());
            Ok(())
        })
        .unwrap();
    keys
}

#[test]
fn postgres_visits_rows_in_redb_key_order_whatever_the_database_collation() {
    let cluster = PgCluster::start();
    // ICU's English collation sorts "a" before "B"; redb, bytewise, "B" (0x42) before "a".
    let url = cluster.database_with(&[
        "--template=template0",
        "--locale-provider=icu",
        "--icu-locale=en",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let stores = [
        Store::create_empty(&dir.path().join("rows.redb")).unwrap(),
        Store::create_empty_postgres(&url).unwrap(),
    ];
    for store in &stores {
        let apps = [("a@1", b"a"), ("B@1", b"b")]
            .map(|(key, row)| (RowKey::Text(key.into()), row.to_vec()));
        store
            .write_rows(Table::Apps, &apps, Commit::Deferred)
            .unwrap();
        let batches =
            [(10, b"ten".to_vec()), (2, b"two".to_vec())].map(|(id, row)| (RowKey::Id(id), row));
        store
            .write_rows(Table::Batches, &batches, Commit::Durable)
            .unwrap();
        assert_eq!(
            keys_of(store, Table::Apps),
            [RowKey::Text("B@1".into()), RowKey::Text("a@1".into())]
        );
        assert_eq!(
            keys_of(store, Table::Batches),
            [RowKey::Id(2), RowKey::Id(10)]
        );
        // A key of the wrong kind fails the chunk before any row of it is written.
        let mixed = [
            (RowKey::Id(1), b"one".to_vec()),
            (RowKey::Text("x".into()), b"x".to_vec()),
        ];
        let refused = store.write_rows(Table::Units, &mixed, Commit::Durable);
        assert!(
            matches!(
                &refused,
                Err(StoreError::WrongKeyKind { table: "units", .. })
            ),
            "{refused:?}"
        );
        assert!(keys_of(store, Table::Units).is_empty());
    }
}

#[test]
fn an_export_of_an_older_schema_imports_as_it_is_and_migrates_when_opened() {
    let (dir, data, _) = crate::upgrade::fixture_copy();
    let file = dir.path().join("v2.jsonl");
    export(&at_dir(&data), &file);
    assert!(
        !data.join("musketeer.redb.pre-v3.bak").exists(),
        "export reads the store as it is"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with(r#"{"format":"musketeer-store-export","format_version":1,"schema_version":2,"project":{"name":"v2 fixture""#),
        "{}",
        &text[..200]
    );
    let moved = dir.path().join("moved");
    let (ok, text) = import(&at_dir(&moved), &file);
    assert!(ok, "{text}");
    assert!(
        text.contains("schema 2") && text.contains("when it first opens"),
        "{text}"
    );
    let (output, text) = crate::cli::run(
        crate::cli::server()
            .args(["migrate", "--dry-run", "--data-dir"])
            .arg(&moved),
    );
    assert!(
        output.status.success() && text.contains("from schema 2 to 3"),
        "{text}"
    );
}

//! The PostgreSQL store against a real PostgreSQL ([`PgCluster`]): its rows round-trip as the
//! redb store's do, one server per database, and the API's flows run on it and survive a
//! restart.

use axum::http::StatusCode;
use musketeer_protocol::{BatchId, Replication, Role, TokenId, UnitId};
use musketeer_server::domain::lifecycle::{Params, Unit};
use musketeer_server::domain::tokens::TokenRecord;
use musketeer_server::state::{AppState, ServeOptions};
use musketeer_server::store::{
    ProjectConfig, Store, StoreError, StoreLocation, UnitArchive as _, UnitRows, Write, encode,
};
use musketeer_signing_keys::{SecretKey, TrustStore};
use serde_json::json;

use crate::pg_support::PgCluster;
use crate::support::{Api, Project, demo_app};

fn project() -> ProjectConfig {
    ProjectConfig {
        name: "pg".into(),
        trust: TrustStore::from(vec![SecretKey::from_seed(&[9; 32]).public_key()]),
        rotations: vec![],
        min_client_version: "0.1.0".parse().unwrap(),
        created_ms: 7,
    }
}

fn unit(id: u64, input: u64) -> Unit {
    let params = Params::resolve(&Replication::default()).unwrap();
    Unit::new(UnitId(id), BatchId(9), params, json!(input))
}

fn units(ids: impl IntoIterator<Item = (u64, u64)>) -> Write {
    let mut rows = UnitRows::with_capacity(8);
    for (id, input) in ids {
        rows.push(&unit(id, input));
    }
    Write::Units(rows)
}

fn scan(store: &Store, ids: std::ops::Range<u64>, descending: bool, most: usize) -> Vec<u64> {
    let mut seen = Vec::new();
    store
        .scan(
            UnitId(ids.start)..UnitId(ids.end),
            descending,
            &mut |unit| {
                seen.push(unit.id.0);
                seen.len() < most
            },
        )
        .unwrap();
    seen
}

/// The same writes and reads on both stores give the same answers.
fn round_trip(location: &StoreLocation) {
    let token = TokenRecord {
        id: TokenId(4),
        hash: "ab".repeat(32),
        role: Role::Researcher,
        apps: None,
        expires_ms: None,
        label: Some("pg".into()),
        created_ms: 1,
        revoked: false,
    };
    let store = Store::create_at(location, &project()).unwrap();
    store
        .write_now(vec![
            Write::Token(4, encode(&token)),
            Write::App("demo@1.0.0".into(), encode(&demo_app())),
            Write::Module("abc".into(), b"module bytes".to_vec()),
            units([(1, 10), (2, 20), (3, 30), (4, 40), (5, 50)]),
            // A later row of the same key in one commit wins.
            units([(3, 33)]),
        ])
        .unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded.project, project());
    assert_eq!(loaded.tokens.len(), 1);
    assert_eq!(loaded.tokens[0].label.as_deref(), Some("pg"));
    assert_eq!(loaded.apps.len(), 1);
    assert_eq!(
        store.module("abc").unwrap().as_deref(),
        Some(&b"module bytes"[..])
    );
    assert_eq!(store.module("nope").unwrap(), None);
    assert_eq!(store.unit(UnitId(3)).unwrap(), Some(unit(3, 33)));
    assert_eq!(store.unit(UnitId(6)).unwrap(), None);
    assert_eq!(scan(&store, 2..5, false, usize::MAX), [2, 3, 4]);
    assert_eq!(scan(&store, 0..u64::MAX, true, 2), [5, 4]);
    store
        .write_now(vec![Write::DeleteBatch {
            batch: 9,
            first_unit: 1,
            n_units: 2,
        }])
        .unwrap();
    assert_eq!(store.units().unwrap().len(), 3);
    // Through the group-committing writer thread: acknowledged once durable.
    let writer = store.writer();
    let durable = writer.submit(vec![Write::Module("w".into(), b"late".to_vec())]);
    assert_eq!(durable.blocking_recv().unwrap(), Ok(()));
    writer.close();
    drop(writer);
    drop(store);
    let reopened = Store::open_at(location).unwrap();
    assert_eq!(reopened.module("w").unwrap().as_deref(), Some(&b"late"[..]));
    assert_eq!(scan(&reopened, 0..u64::MAX, false, usize::MAX), [3, 4, 5]);
}

#[test]
fn rows_round_trip_on_postgres_as_on_redb() {
    let cluster = PgCluster::start();
    let dir = tempfile::tempdir().unwrap();
    round_trip(&StoreLocation::DataDir(dir.path().to_owned()));
    round_trip(&StoreLocation::Postgres(cluster.database()));
}

#[test]
fn one_server_per_database_and_init_never_overwrites() {
    let cluster = PgCluster::start();
    let location = StoreLocation::Postgres(cluster.database());
    assert!(
        matches!(
            Store::open_at(&location),
            Err(StoreError::DatabaseUninitialised(_))
        ),
        "an empty database is no store"
    );
    let first = Store::create_at(&location, &project()).unwrap();
    let second = Store::open_at(&location).unwrap_err();
    assert!(matches!(second, StoreError::DatabaseInUse(_)), "{second}");
    assert!(second.to_string().contains("in use"), "{second}");
    drop(first);
    // The lock goes with the store.
    drop(Store::open_at(&location).unwrap());
    let again = Store::create_at(&location, &project()).unwrap_err();
    assert!(matches!(again, StoreError::DatabaseNotEmpty(_)), "{again}");
    let wrong = Store::open_at(&StoreLocation::Postgres(cluster.url("no_such_db"))).unwrap_err();
    assert!(
        wrong
            .to_string()
            .contains("cannot connect to the PostgreSQL store"),
        "{wrong}"
    );
}

/// A project on the PostgreSQL database at `url`, served in process, with `demo` published.
async fn serving_demo(url: String) -> (Project, AppState, Api) {
    let project = Project::on_postgres(url);
    let state = project.state(ServeOptions {
        register_per_minute: 1000,
        ..ServeOptions::default()
    });
    let api = Api::serving(&state);
    api.publish(&project, "demo", "1.0.0", b"module-bytes")
        .await;
    (project, state, api)
}

/// Publish, submit, fetch, report, validate (quorum 2) and read results on a PostgreSQL store,
/// then the same after a restart that loads everything back from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_flows_run_on_postgres_and_survive_a_restart() {
    let cluster = PgCluster::start();
    let (project, state, api) = serving_demo(cluster.database()).await;
    let batch = api
        .submit(
            &project.researcher,
            "demo",
            json!([1, 2, 3]),
            json!({"min_quorum": 2}),
        )
        .await;
    let hosts = [api.register("a").await, api.register("b").await];
    for host in &hosts {
        let assignments = api.fetch(host, 8).await;
        assert_eq!(assignments.len(), 3, "one replica of each unit per host");
        for assignment in &assignments {
            let output = serde_json::to_vec(&json!({"echo": assignment["input"]})).unwrap();
            let ack = api
                .report_success(host, &assignment["result_id"], &output)
                .await;
            assert_eq!(ack, "accepted");
        }
    }
    let before = results(&api, &project, batch).await;
    assert_eq!(before.lines().count(), 3, "{before}");
    assert!(
        before.lines().all(|row| row.contains("\"done\"")),
        "{before}"
    );
    let (_, status) = api
        .get(&format!("/api/v1/batches/{batch}"), Some(&project.admin))
        .await;
    assert_eq!(status["state"], "finished", "{status}");
    state.close();
    drop((api, state));

    let state = project.state(ServeOptions::default());
    let api = Api::serving(&state);
    assert_eq!(results(&api, &project, batch).await, before);
    let (_, stats) = api.get("/api/v1/stats", Some(&project.admin)).await;
    assert_eq!(stats["results"]["valid"], 6, "{stats}");
    let (_, hosts) = api.get("/api/v1/hosts", Some(&project.admin)).await;
    assert_eq!(hosts["hosts"].as_array().unwrap().len(), 2, "{hosts}");
    // The module is read from PostgreSQL.
    let sha = musketeer_signing_keys::sha256_hex(b"module-bytes");
    let (status, module) = api.get_bytes(&format!("/api/v1/modules/{sha}"), None).await;
    assert_eq!((status, module), (StatusCode::OK, b"module-bytes".to_vec()));
    state.close();
}

async fn results(api: &Api, project: &Project, batch: u64) -> String {
    let (status, bytes) = api
        .get_bytes(
            &format!("/api/v1/batches/{batch}/results"),
            Some(&project.researcher),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    String::from_utf8(bytes).unwrap()
}

/// Every store command takes `--store`; exactly one of it and `--data-dir`; a CLI command on a
/// served database is refused with the reason (a second server joins as a standby: see
/// `cluster`), and so is a server on every address without `--advertise-url`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commands_take_store_urls_and_refuse_a_second_server() {
    use crate::cli::{init_store, server, text};
    use crate::durability::ServerProcess;

    let cluster = PgCluster::start();
    let url = cluster.database();
    let dir = tempfile::tempdir().unwrap();
    let store = ["--store", url.as_str()];
    let admin = init_store(dir.path(), &["--store".as_ref(), url.as_ref()]);
    let run = |args: &[&str]| {
        let output = server().args(args).output().unwrap();
        let (stdout, stderr) = text(&output);
        (output.status.code(), stdout + &stderr)
    };
    let key = dir.path().join("keys/musketeer.pub");
    let key = key.to_str().unwrap();
    let (code, said) = run(&[
        &["init", "--project-name", "x", "--trust-key", key],
        &store[..],
    ]
    .concat());
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("initialised already"), "{said}");
    let (code, said) = run(&[&["token", "create", "--role", "researcher"], &store[..]].concat());
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("mku_"), "{said}");
    let (code, said) = run(&[&["migrate", "--dry-run"], &store[..]].concat());
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("up to date"), "{said}");
    let (code, said) = run(&[&["compact"], &store[..]].concat());
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("Not needed for a PostgreSQL store"), "{said}");

    let serving = ServerProcess::start_on(&["--store".as_ref(), url.as_ref()], &[]);
    let (code, said) = run(&[&["token", "revoke", "2"][..], &store[..]].concat());
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("in use by another musketeer-server"),
        "{said}"
    );
    assert!(
        !said.contains("postgres://postgres:"),
        "no password shown: {said}"
    );
    let (code, said) = run(&[&["serve", "--listen", "0.0.0.0:0"], &store[..]].concat());
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("give --advertise-url"), "{said}");
    // The online backup copies redb files; a PostgreSQL store is backed up with pg_dump.
    let backup = reqwest::Client::new()
        .get(format!("{}/api/v1/admin/backup", serving.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(backup.status(), 409);
    let body: serde_json::Value = backup.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("pg_dump"),
        "{body}"
    );
    drop(serving);

    // Usage errors: both kinds at once, a path given as a URL, neither.
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    for (args, expected) in [
        (
            vec!["serve", "--data-dir", data, "--store", &url],
            "cannot be used with",
        ),
        (vec!["serve", "--store", data], "takes a PostgreSQL URL"),
        (
            vec!["serve", "--store", &url, "--advertise-url", "10.0.0.5:8080"],
            "--advertise-url takes the base URL",
        ),
        (vec!["serve"], "--data-dir <DATA_DIR>|--store <STORE_URL>"),
    ] {
        let output = server()
            .args(&args)
            .env_remove("MUSKETEER_DATA_DIR")
            .env_remove("MUSKETEER_STORE")
            .output()
            .unwrap();
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// Every read waits for the commits queued before it: while a report's commit is held up in
/// the database, a status read that would show its result does not answer, and once the commit
/// is durable the read shows it. (A crash in between would otherwise take back a result some
/// reader had already seen.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_waits_until_the_commit_it_could_show_is_durable() {
    let cluster = PgCluster::start();
    let database = cluster.database();
    let (project, state, api) = serving_demo(database.clone()).await;
    let batch = api
        .submit(&project.researcher, "demo", json!([1]), json!({}))
        .await;
    let host = api.register("a").await;
    let assignment = api.fetch(&host, 1).await.remove(0);
    let status_path = format!("/api/v1/batches/{batch}");

    // Writes to `units` wait on this lock; reads of it do not.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (locked, is_locked) = std::sync::mpsc::channel::<()>();
    let holder = {
        let database = database.clone();
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&database, postgres::NoTls).unwrap();
            let mut transaction = client.transaction().unwrap();
            transaction
                .batch_execute("LOCK TABLE units IN EXCLUSIVE MODE")
                .unwrap();
            locked.send(()).unwrap();
            let _ = released.recv();
            transaction.commit().unwrap();
        })
    };
    is_locked.recv().unwrap();

    let output = serde_json::to_vec(&json!({"echo": 1})).unwrap();
    let report = api.report_success(&host, &assignment["result_id"], &output);
    tokio::pin!(report);
    let commit_waits = async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while waiting_on_locks(&database) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the report's commit never reached the lock"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::select! {
        ack = &mut report => panic!("a report was acknowledged ({ack}) before its commit"),
        () = commit_waits => {}
    }

    let read = api.get(&status_path, Some(&project.researcher));
    tokio::pin!(read);
    tokio::select! {
        answer = &mut read => {
            panic!("a read answered while a commit it may show was not durable: {answer:?}")
        }
        () = tokio::time::sleep(std::time::Duration::from_millis(300)) => {}
    }
    release.send(()).unwrap();
    let (code, status) = read.await;
    assert_eq!(code, StatusCode::OK, "{status}");
    assert_eq!(status["counts"]["done"], 1, "{status}");
    assert_eq!(report.await, "accepted");
    holder.join().unwrap();
    state.close();
}

/// How many sessions of the database at `url` wait for a lock.
fn waiting_on_locks(url: &str) -> i64 {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let row = client
            .query_one("SELECT count(*) FROM pg_locks WHERE NOT granted", &[])
            .unwrap();
        row.get::<_, i64>(0)
    })
    .join()
    .unwrap()
}

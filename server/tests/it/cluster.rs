//! Several `musketeer-server` processes on one PostgreSQL database (decision 0008): the second
//! is a standby that forwards every request to the active one, the API answers the same through
//! either, the registration limit is one for both, a standby takes over when the active one is
//! killed (keeping every acknowledged result), an active whose lock is lost stops acknowledging
//! (fencing), and only the current forwarding secret makes a forwarded client address trusted.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::durability::{ServerProcess, results, wait_for};
use crate::pg_support::PgCluster;
use crate::support::{Project, http_json, http_volunteer_round, platform};

/// How long a standby may take to notice the active one died and load the state.
const TAKEOVER: Duration = Duration::from_secs(60);

/// A `serve --store` process (SIGKILLed and reaped on drop, pass or fail) and its log.
struct Instance {
    process: ServerProcess,
    url: String,
    /// Its standard error (the log), kept for the messages the tests look for.
    log: PathBuf,
}

impl Instance {
    fn start(store: &str, log_dir: &std::path::Path, name: &str, flags: &[&str]) -> Instance {
        let log = log_dir.join(format!("{name}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_musketeer-server"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--store", store])
            .args(flags)
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(&log).unwrap());
        let process = ServerProcess::spawn(command);
        Instance {
            url: process.url.clone(),
            process,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A throwaway PostgreSQL with a project's store, where the tests start instances. Declared
/// before the instances, so that they are killed before PostgreSQL stops.
struct Setup {
    _cluster: PgCluster,
    store: String,
    project: Project,
    logs: tempfile::TempDir,
    http: reqwest::Client,
}

impl Setup {
    fn new() -> Setup {
        let cluster = PgCluster::start();
        let store = cluster.database();
        Setup {
            project: Project::on_postgres(store.clone()),
            store,
            _cluster: cluster,
            logs: tempfile::tempdir().unwrap(),
            http: http(),
        }
    }

    /// Start an instance and wait until it is `role`.
    async fn instance(&self, name: &str, flags: &[&str], role: &str) -> Instance {
        let instance = Instance::start(&self.store, self.logs.path(), name, flags);
        wait_for_role(&self.http, &instance.url, role, Duration::from_secs(30)).await;
        instance
    }
}

/// Wait for `instance` to exit by itself; its exit status.
async fn exit_of(instance: &mut Instance) -> std::process::ExitStatus {
    wait_for("the server to stop", Duration::from_secs(30), async || {
        instance.process.exited().is_some()
    })
    .await;
    instance.process.exited().unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// What `/healthz` says the server is, or None if it does not answer.
async fn role(http: &reqwest::Client, url: &str) -> Option<String> {
    let answer = http.get(format!("{url}/healthz")).send().await.ok()?;
    let body: Value = answer.json().await.ok()?;
    body["instance"].as_str().map(str::to_owned)
}

async fn wait_for_role(http: &reqwest::Client, url: &str, wanted: &str, deadline: Duration) {
    wait_for(&format!("{url} to be {wanted}"), deadline, async || {
        role(http, url).await.as_deref() == Some(wanted)
    })
    .await;
}

async fn register(http: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = http
        .post(format!("{url}/api/v1/hosts/register"))
        .json(&json!({"name": "h", "platform": platform()}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    http_json(request, None).await
}

fn token(answer: &(u16, Value)) -> String {
    assert_eq!(answer.0, 201, "{}", answer.1);
    answer.1["host_token"].as_str().unwrap().to_owned()
}

/// `sql` run on the database at `store`, on a thread of its own (the sync PostgreSQL client
/// must not block a thread that drives async tasks); the first column of each row, as text.
fn query(store: &str, sql: &'static str) -> Vec<String> {
    let store = store.to_owned();
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&store, postgres::NoTls).unwrap();
        let rows = client.query(sql, &[]).unwrap();
        rows.iter().map(|row| row.get::<_, String>(0)).collect()
    })
    .join()
    .unwrap()
}

/// The forwarding secret of the active server, as its standbys read it.
fn forwarding_secret(store: &str) -> String {
    query(store, "SELECT secret FROM musketeer_active WHERE id = 1").remove(0)
}

/// An answer without what the clock moves between two reads (the time, the status page's
/// samples and rate windows, the minute the per-minute chart ends at): the counters stay.
fn steady((status, mut answer): (u16, Value)) -> (u16, Value) {
    if let Some(fields) = answer.as_object_mut() {
        fields.remove("now_ms");
        fields.remove("history");
        if let Some(per_minute) = fields.remove("done_per_minute") {
            let total: u64 = per_minute
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
                .sum();
            fields.insert("done_in_the_chart".into(), total.into());
        }
        for host in fields
            .get_mut("hosts")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(host) = host.as_object_mut() {
                host.remove("window_ms");
            }
        }
    }
    (status, answer)
}

/// The rows of units done, of the results `results` downloaded (unit id -> row).
fn done(rows: &BTreeMap<u64, Value>) -> Vec<&Value> {
    rows.values().filter(|row| row["state"] == "done").collect()
}

async fn get(http: &reqwest::Client, url: &str, path: &str, token: &str) -> (u16, Value) {
    http_json(http.get(format!("{url}{path}")), Some(token)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_forwards_alike_shares_the_limits_and_takes_over_when_the_active_dies() {
    let setup = Setup::new();
    let (project, http) = (&setup.project, setup.http.clone());
    let flags = ["--register-per-minute", "4"];
    let mut active = setup.instance("a", &flags, "active").await;
    let standby = setup.instance("b", &flags, "standby").await;
    let ready = http_json(http.get(format!("{}/readyz", standby.url)), None).await;
    assert_eq!(ready, (200, json!({"status": "ok", "instance": "standby"})));

    // Publish through the active server, submit through the standby.
    let (status, body) = http_json(
        http.post(format!("{}/api/v1/apps", active.url))
            .json(&project.publish_body("demo", "1.0.0", b"module")),
        Some(&project.publisher),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let inputs: Vec<u64> = (0..6).collect();
    let (status, body) = http_json(
        http.post(format!("{}/api/v1/batches", standby.url)).json(
            &json!({"app": "demo", "inputs": inputs, "replication": {"delay_bound_ms": 3000}}),
        ),
        Some(&project.researcher),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let batch = body["batch_id"].as_u64().unwrap();

    // One registration limit for both: 4 a minute from this address, whichever server it hits.
    let through_active = token(&register(&http, &active.url, &[]).await);
    let through_standby = token(&register(&http, &standby.url, &[]).await);
    token(&register(&http, &active.url, &[]).await);
    token(&register(&http, &standby.url, &[]).await);
    let limited = register(&http, &standby.url, &[]).await;
    assert_eq!(limited.0, 429, "{}", limited.1);
    assert_eq!(register(&http, &active.url, &[]).await.0, 429);
    // A forwarded address is trusted with the current secret only (a client's own
    // X-Forwarded-For, or a forged secret, change nothing).
    for forged in [
        vec![("x-forwarded-for", "203.0.113.7")],
        vec![
            ("x-musketeer-forwarded-for", "203.0.113.7"),
            ("x-musketeer-forward-secret", "mkf_guessed"),
        ],
    ] {
        let answer = register(&http, &active.url, &forged).await;
        assert_eq!(answer.0, 429, "{forged:?} was trusted: {}", answer.1);
        let answer = register(&http, &standby.url, &forged).await;
        assert_eq!(answer.0, 429, "{forged:?} was trusted: {}", answer.1);
    }
    let secret = forwarding_secret(&setup.store);
    token(
        &register(
            &http,
            &active.url,
            &[
                ("x-musketeer-forwarded-for", "203.0.113.7"),
                ("x-musketeer-forward-secret", &secret),
            ],
        )
        .await,
    );

    // Work reported through each server (two replicas per round).
    let echo = |input: &Value| input.clone();
    http_volunteer_round(&http, &active.url, &through_active, echo).await;
    http_volunteer_round(&http, &standby.url, &through_standby, echo).await;
    let acknowledged = results(&http, &standby.url, &project.researcher, batch).await;
    assert_eq!(done(&acknowledged).len(), 4, "{acknowledged:?}");
    for path in [
        format!("/api/v1/batches/{batch}"),
        "/api/v1/stats".to_owned(),
        "/api/v1/status".to_owned(),
        format!("/api/v1/batches/{batch}/units"),
    ] {
        let direct = get(&http, &active.url, &path, &project.admin).await;
        let forwarded = get(&http, &standby.url, &path, &project.admin).await;
        assert_eq!(direct.0, 200, "{path}: {}", direct.1);
        assert_eq!(steady(direct), steady(forwarded), "{path}");
    }
    // What the hop costs (printed, not asserted: a shared 2-core box is too noisy for that).
    for url in [&active.url, &standby.url] {
        let mut took = Vec::new();
        for _ in 0..50 {
            let started = std::time::Instant::now();
            get(&http, url, "/api/v1/stats", &project.admin).await;
            took.push(started.elapsed());
        }
        took.sort();
        eprintln!(
            "GET /api/v1/stats via {url}: median {:?}",
            took[took.len() / 2]
        );
    }
    // A bad request gets the same 4xx JSON through either.
    for (path, body) in [
        ("/api/v1/batches", "{not json"),
        ("/api/v1/batches", r#"{"app": "nope", "inputs": [1]}"#),
    ] {
        let send = async |url: &str| {
            http_json(
                http.post(format!("{url}{path}"))
                    .header("content-type", "application/json")
                    .body(body),
                Some(&project.researcher),
            )
            .await
        };
        let direct = send(&active.url).await;
        assert!((400..500).contains(&direct.0), "{}", direct.1);
        assert_eq!(direct, send(&standby.url).await, "{body}");
    }
    let unknown = get(&http, &standby.url, "/api/v1/nowhere", &project.admin).await;
    assert_eq!(
        unknown,
        get(&http, &active.url, "/api/v1/nowhere", &project.admin).await
    );

    // kill -9 of the active one: the standby takes over with every acknowledged result, and
    // meanwhile answers 503 with Retry-After (never a hang or a 500).
    active.process.kill();
    let during = http
        .get(format!("{}/api/v1/stats", standby.url))
        .bearer_auth(&project.admin)
        .send()
        .await
        .unwrap();
    if during.status() != 200 {
        assert_eq!(during.status(), 503);
        assert_eq!(during.headers()["retry-after"], "1");
        let body: Value = during.json().await.unwrap();
        assert_eq!(body["error"], "unavailable", "{body}");
    }
    let killed = std::time::Instant::now();
    wait_for_role(&http, &standby.url, "active", TAKEOVER).await;
    eprintln!("takeover after kill -9: {:?}", killed.elapsed());
    let kept = results(&http, &standby.url, &project.researcher, batch).await;
    for row in done(&acknowledged) {
        let unit = row["unit_id"].as_u64().unwrap();
        assert_eq!(kept.get(&unit), Some(row), "acknowledged result lost");
    }
    http_volunteer_round(&http, &standby.url, &through_active, echo).await;
    let finished = results(&http, &standby.url, &project.researcher, batch).await;
    assert_eq!(done(&finished).len(), inputs.len(), "{finished:?}");
    assert_eq!(finished.len(), inputs.len(), "each unit once: {finished:?}");
}

/// Fencing: an active server whose lock session is terminated while a standby takes over
/// commits nothing more (its requests get 503) and stops, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_server_that_lost_its_lock_stops_acknowledging() {
    let setup = Setup::new();
    let (store, project, http) = (&setup.store, &setup.project, &setup.http);
    let mut old = setup.instance("old", &[], "active").await;
    let new = setup.instance("new", &[], "standby").await;
    token(&register(http, &old.url, &[]).await);

    let terminated = query(
        store,
        "SELECT pg_terminate_backend(pid)::text FROM pg_locks \
         WHERE locktype = 'advisory' AND granted",
    );
    assert_eq!(terminated.len(), 1, "one session holds the lock");
    wait_for_role(http, &new.url, "active", TAKEOVER).await;

    // The old one still runs and answers, but cannot commit: no acknowledgement.
    let refused = register(http, &old.url, &[]).await;
    assert_eq!(refused.0, 503, "{}", refused.1);
    assert_eq!(refused.1["error"], "unavailable", "{}", refused.1);
    let status = exit_of(&mut old).await;
    assert!(!status.success(), "{status}");
    let log = old.log();
    assert!(
        log.contains("another musketeer-server became the active one"),
        "{log}"
    );
    let (status, hosts) = get(http, &new.url, "/api/v1/hosts", &project.admin).await;
    assert_eq!(status, 200, "{hosts}");
    let count = hosts["hosts"].as_array().map_or(0, Vec::len);
    assert_eq!(
        count, 1,
        "only the host registered before the takeover: {hosts}"
    );
}

/// SIGTERM of a standby just stops it; SIGTERM of the active server hands over at once to a
/// standby (the lock is released on the way out), which then holds what the first one had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_standby_or_the_active_server_is_graceful() {
    let setup = Setup::new();
    let http = &setup.http;
    let mut first = setup.instance("first", &[], "active").await;
    let mut leaving = setup.instance("leaving", &[], "standby").await;
    token(&register(http, &leaving.url, &[]).await);
    leaving.process.terminate();
    assert!(exit_of(&mut leaving).await.success(), "{}", leaving.log());

    let second = setup.instance("second", &[], "standby").await;
    first.process.terminate();
    assert!(exit_of(&mut first).await.success(), "{}", first.log());
    wait_for_role(http, &second.url, "active", TAKEOVER).await;
    let (status, hosts) = get(http, &second.url, "/api/v1/hosts", &setup.project.admin).await;
    assert_eq!(status, 200, "{hosts}");
    assert_eq!(hosts["hosts"].as_array().map_or(0, Vec::len), 1, "{hosts}");
}

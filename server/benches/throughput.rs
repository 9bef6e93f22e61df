//! Server throughput: many simulated hosts fetch and report no-op units over real HTTP.
//!
//! Run: `cargo bench -p musketeer-server --bench throughput`
//! (options: `-- --hosts 64 --runs 3 [--only 1,16] [--store redb|postgres|postgres-x2|both|all]`).
//! The server runs in this process on 127.0.0.1 with a durable redb store in a temp dir, or a
//! PostgreSQL store in a throwaway cluster on loopback (fsync and synchronous_commit on; the
//! tests' `PgCluster`); `postgres-x2` runs two servers of a cluster on one database (an active
//! one and a standby, each on its own port and runtime), half the hosts on each. Hosts are
//! reqwest clients on a separate runtime. Each configuration (units per request) runs `--runs`
//! times per store kind, the kinds alternating, each run on a fresh store; the median run by
//! units/s is reported with its request latency percentiles and its ratio to the first kind.

#[path = "../tests/it/pg_support.rs"]
mod pg_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use musketeer_protocol::{Role, TokenId};
use musketeer_server::cluster;
use musketeer_server::domain::tokens::{self, TokenRecord};
use musketeer_server::state::{AppState, ServeOptions};
use musketeer_server::store::{ProjectConfig, Store, StoreLocation, Write, encode};
use musketeer_signing_keys::{Limits, Manifest, SecretKey, TrustStore};
use serde_json::{Value, json};

struct Config {
    hosts: usize,
    per_request: u32,
    units: u64,
}

/// Where the server keeps its state, and how many servers answer the hosts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One server on a redb store in a temp dir.
    Redb,
    /// One server on a PostgreSQL database.
    Postgres,
    /// Two servers on one PostgreSQL database (an active one and a standby, as `serve` starts
    /// them), half the hosts on each.
    PostgresPair,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Redb => "redb",
            Kind::Postgres => "postgres",
            Kind::PostgresPair => "postgres x2",
        }
    }
}

struct Outcome {
    units_per_s: f64,
    fetch: Latencies,
    report: Latencies,
    /// With two servers: fetch and report latencies of the hosts on the active one, then of
    /// those on the standby (each of their requests takes one more hop).
    by_server: Option<[(Latencies, Latencies); 2]>,
}

/// Request latency percentiles, in milliseconds.
#[derive(Clone, Copy)]
struct Latencies {
    p50_ms: f64,
    p99_ms: f64,
}

impl Latencies {
    fn of(samples: &mut [Duration]) -> Latencies {
        Latencies {
            p50_ms: percentile(samples, 0.50),
            p99_ms: percentile(samples, 0.99),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let hosts = arg("--hosts", 64);
    let runs = arg("--runs", 3);
    let store = args
        .iter()
        .position(|a| a == "--store")
        .and_then(|i| args.get(i + 1))
        .map_or("redb", String::as_str);
    let kinds: &[Kind] = match store {
        "redb" => &[Kind::Redb],
        "postgres" => &[Kind::Postgres],
        "postgres-x2" => &[Kind::PostgresPair],
        "both" => &[Kind::Redb, Kind::Postgres],
        "all" => &[Kind::Redb, Kind::Postgres, Kind::PostgresPair],
        other => {
            eprintln!(
                "--store takes redb, postgres, postgres-x2, both (redb and postgres) or all \
                 (the three) (got {other:?})"
            );
            std::process::exit(2);
        }
    };
    // `--only N[,M...]` runs just the configurations with these units per request.
    let only: Vec<u32> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|list| list.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default();
    // One cluster for every PostgreSQL run (each on a new database); stopped at the end.
    let cluster = kinds
        .iter()
        .any(|kind| *kind != Kind::Redb)
        .then(pg_support::PgCluster::start);
    println!(
        "Server throughput: {hosts} simulated hosts, {runs} runs per configuration (the kinds \
         alternating), median run shown"
    );
    println!(
        "| units per request | store | units | units/s (median) | vs {} | fetch p50 / p99 | report p50 / p99 | p50 via the active / via the standby: fetch, report |",
        kinds[0].label()
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (per_request, units) in [
        (1u32, 20_000u64),
        (16, 200_000),
        (32, 200_000),
        (64, 200_000),
    ] {
        if !only.is_empty() && !only.contains(&per_request) {
            continue;
        }
        let config = Config {
            hosts,
            per_request,
            units,
        };
        // Runs alternate between the kinds, so that a burst of load from other work on the
        // machine falls on all of them alike.
        let mut outcomes: Vec<Vec<Outcome>> = kinds.iter().map(|_| Vec::new()).collect();
        for _ in 0..runs {
            for (kind, outcomes) in kinds.iter().zip(&mut outcomes) {
                outcomes.push(run_kind(&config, *kind, cluster.as_ref()));
            }
        }
        let mut first_median = None;
        for (kind, mut outcomes) in kinds.iter().zip(outcomes) {
            outcomes.sort_by(|a, b| a.units_per_s.total_cmp(&b.units_per_s));
            let m = &outcomes[outcomes.len() / 2];
            let first = *first_median.get_or_insert(m.units_per_s);
            let by_server = m.by_server.map_or("-".to_owned(), |[active, standby]| {
                format!(
                    "{:.2} / {:.2} ms, {:.2} / {:.2} ms",
                    active.0.p50_ms, standby.0.p50_ms, active.1.p50_ms, standby.1.p50_ms
                )
            });
            println!(
                "| {per_request} | {} | {units} | {:.0} | {:.2}x | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {by_server} |",
                kind.label(),
                m.units_per_s,
                m.units_per_s / first,
                m.fetch.p50_ms,
                m.fetch.p99_ms,
                m.report.p50_ms,
                m.report.p99_ms,
            );
        }
    }
}

/// One run of `kind` on a fresh store (a temp dir, or a new database of `cluster`).
fn run_kind(config: &Config, kind: Kind, cluster: Option<&pg_support::PgCluster>) -> Outcome {
    let dir = tempfile::tempdir().expect("temp dir");
    let location = match (kind, cluster) {
        (Kind::Redb, _) => StoreLocation::DataDir(dir.path().to_owned()),
        (_, Some(cluster)) => StoreLocation::Postgres(cluster.database()),
        (_, None) => unreachable!("a PostgreSQL cluster is started for the PostgreSQL kinds"),
    };
    let (researcher, key) = create_project(&location);
    let client_runtime = runtime();
    let options = ServeOptions {
        register_per_minute: 1_000_000,
        ..Default::default()
    };
    match (kind, location) {
        (Kind::PostgresPair, StoreLocation::Postgres(store_url)) => {
            // Started one after the other: the first takes the lock and is the active one.
            let active = ClusterServer::start(&store_url, &options);
            let standby = ClusterServer::start(&store_url, &options);
            assert_eq!(active.role, cluster::Role::Active, "first server is active");
            assert_eq!(standby.role, cluster::Role::Standby, "second is a standby");
            let urls = [active.url.clone(), standby.url.clone()];
            let outcome = client_runtime.block_on(drive(config, &urls, &researcher, &key));
            // The standby first, so that it does not take over from the active one stopping.
            standby.stop();
            active.stop();
            outcome
        }
        (_, location) => {
            let server_runtime = runtime();
            let state =
                AppState::load(Store::open_at(&location).expect("store"), options).expect("state");
            let listener = server_runtime
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .expect("bind");
            let url = format!("http://{}", listener.local_addr().expect("addr"));
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = server_runtime.spawn(musketeer_server::run(listener, state, async move {
                let _ = stopped.await;
            }));
            let outcome = client_runtime.block_on(drive(config, &[url], &researcher, &key));
            let _ = stop.send(());
            let _ = server_runtime.block_on(server);
            outcome
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A server of a cluster on its own runtime and 127.0.0.1 port, started as `serve` starts it.
struct ClusterServer {
    runtime: tokio::runtime::Runtime,
    url: String,
    role: cluster::Role,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<cluster::Stopped>>,
}

impl ClusterServer {
    fn start(store_url: &str, serve: &ServeOptions) -> ClusterServer {
        let runtime = runtime();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let node = runtime
            .block_on(cluster::Node::start(cluster::ClusterOptions {
                store_url: store_url.to_owned(),
                advertise_url: url.clone(),
                serve: serve.clone(),
            }))
            .expect("join the cluster");
        let role = node.role();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = runtime.spawn(cluster::run(listener, None, node, async move {
            let _ = stopped.await;
        }));
        ClusterServer {
            runtime,
            url,
            role,
            stop,
            served,
        }
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let served = self.runtime.block_on(self.served);
        assert!(
            matches!(served, Ok(Ok(cluster::Stopped::Shutdown))),
            "the server stopped on the signal"
        );
    }
}

fn create_project(location: &StoreLocation) -> (String, SecretKey) {
    let key = SecretKey::generate();
    let project = ProjectConfig {
        name: "bench".into(),
        trust: TrustStore::from(vec![key.public_key()]),
        rotations: vec![],
        min_client_version: "0.1.0".parse().expect("version"),
        created_ms: 0,
    };
    let store = Store::create_at(location, &project).expect("create store");
    let token = tokens::generate(tokens::USER_PREFIX);
    let record = TokenRecord {
        id: TokenId(1),
        hash: hex::encode(tokens::hash(&token)),
        role: Role::Admin,
        apps: None,
        expires_ms: None,
        label: None,
        created_ms: 0,
        revoked: false,
    };
    store
        .write_now(vec![Write::Token(1, encode(&record))])
        .expect("token");
    (token, key)
}

/// Publish the app and submit the units, register the hosts, then run them to the end; host `i`
/// and submit `i` go to `urls[i % urls.len()]`.
async fn drive(config: &Config, urls: &[String], admin: &str, key: &SecretKey) -> Outcome {
    let url_of = |i: usize| urls[i % urls.len()].as_str();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(config.hosts)
        .build()
        .expect("client");
    let module = b"no-op module".to_vec();
    let manifest = Manifest::for_module(
        "noop",
        "1.0.0".parse().expect("v"),
        &module,
        vec![],
        Limits::default(),
    )
    .expect("manifest");
    let signed: Value = serde_json::from_str(&manifest.sign(key).to_json()).expect("json");
    let body = json!({"signed_manifest": signed, "module": base64::engine::general_purpose::STANDARD.encode(&module)});
    let published = http
        .post(format!("{}/api/v1/apps", url_of(0)))
        .bearer_auth(admin)
        .json(&body)
        .send()
        .await
        .expect("publish");
    assert_eq!(published.status(), 201);
    let inputs: Vec<u64> = (0..config.units).collect();
    for (i, chunk) in inputs.chunks(50_000).enumerate() {
        let submitted = http
            .post(format!("{}/api/v1/batches", url_of(i)))
            .bearer_auth(admin)
            .json(&json!({"app": "noop", "inputs": chunk}))
            .send()
            .await
            .expect("submit");
        assert_eq!(submitted.status(), 201);
    }
    let mut tokens = Vec::new();
    for i in 0..config.hosts {
        let registered: Value = http
            .post(format!("{}/api/v1/hosts/register", url_of(i)))
            .json(&json!({}))
            .send()
            .await
            .expect("register")
            .json()
            .await
            .expect("json");
        tokens.push(registered["host_token"].as_str().expect("token").to_owned());
    }
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, token)| {
            tokio::spawn(host(
                http.clone(),
                url_of(i).to_owned(),
                token,
                config.per_request,
                done.clone(),
            ))
        })
        .collect();
    // Fetch and report latencies of the hosts on each server.
    let mut by_url: Vec<(Vec<Duration>, Vec<Duration>)> =
        urls.iter().map(|_| Default::default()).collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let (f, r) = task.await.expect("host task");
        let (fetch, report) = &mut by_url[i % urls.len()];
        fetch.extend(f);
        report.extend(r);
    }
    let elapsed = start.elapsed();
    assert_eq!(
        done.load(Ordering::Relaxed),
        config.units,
        "every unit reported"
    );
    let mut server_latencies = by_url
        .iter_mut()
        .map(|(fetch, report)| (Latencies::of(fetch), Latencies::of(report)));
    let by_server = match (server_latencies.next(), server_latencies.next()) {
        (Some(active), Some(standby)) => Some([active, standby]),
        _ => None,
    };
    let (mut fetch, mut report): (Vec<Duration>, Vec<Duration>) =
        by_url
            .into_iter()
            .fold(Default::default(), |(mut fetch, mut report), (f, r)| {
                fetch.extend(f);
                report.extend(r);
                (fetch, report)
            });
    Outcome {
        units_per_s: config.units as f64 / elapsed.as_secs_f64(),
        fetch: Latencies::of(&mut fetch),
        report: Latencies::of(&mut report),
        by_server,
    }
}

#[derive(serde::Deserialize)]
struct FetchLite {
    assignments: Vec<AssignmentLite>,
}

#[derive(serde::Deserialize)]
struct AssignmentLite {
    result_id: String,
}

/// One simulated host: fetch up to `per_request`, report them all as successes, until no work.
/// It reads only the result ids, so that the client side costs little of the shared CPU.
async fn host(
    http: reqwest::Client,
    url: String,
    token: String,
    per_request: u32,
    done: Arc<AtomicU64>,
) -> (Vec<Duration>, Vec<Duration>) {
    let platform = json!({"arch": "x86_64", "os": "linux", "client_version": "0.1.0", "wasmtime_version": "48.0.8", "backend": "cranelift", "slots": per_request});
    let fetch_body = serde_json::to_vec(&json!({"free_slots": per_request, "platform": platform}))
        .expect("json");
    let (mut fetch_times, mut report_times) = (Vec::new(), Vec::new());
    loop {
        let t = Instant::now();
        let response = http
            .post(format!("{url}/api/v1/work/fetch"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(fetch_body.clone())
            .send()
            .await
            .expect("fetch");
        let bytes = response.bytes().await.expect("fetch body");
        fetch_times.push(t.elapsed());
        let fetched: FetchLite = serde_json::from_slice(&bytes).expect("fetch json");
        if fetched.assignments.is_empty() {
            return (fetch_times, report_times);
        }
        let results: Vec<String> = fetched
            .assignments
            .iter()
            .map(|a| format!(r#"{{"result_id":"{}","outcome":{{"status":"success","output":"bnVsbA==","fuel_consumed":1,"wall_ms":0}}}}"#, a.result_id))
            .collect();
        let body = format!(r#"{{"results":[{}]}}"#, results.join(","));
        let t = Instant::now();
        let response = http
            .post(format!("{url}/api/v1/work/report"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("report");
        assert_eq!(response.status(), 200);
        let _ = response.bytes().await.expect("report body");
        report_times.push(t.elapsed());
        done.fetch_add(fetched.assignments.len() as u64, Ordering::Relaxed);
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort();
    let idx = ((samples.len() as f64 * p).ceil() as usize)
        .saturating_sub(1)
        .min(samples.len() - 1);
    samples[idx].as_secs_f64() * 1000.0
}

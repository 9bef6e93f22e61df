//! Server throughput: many simulated hosts fetch and report no-op units over real HTTP.
//!
//! Run: `cargo bench -p musketeer-server --bench throughput`
//! (options: `-- --hosts 64 --runs 3 [--only 16] [--store redb|postgres|both]`). The server runs
//! in this process on 127.0.0.1 with a durable redb store in a temp dir, or a PostgreSQL store in
//! a throwaway cluster on loopback (fsync and synchronous_commit on; the tests' `PgCluster`);
//! hosts are reqwest clients on a separate runtime. Each configuration (units per request) runs
//! `--runs` times on a fresh store; the median run by units/s is reported with its request
//! latency percentiles.

#[path = "../tests/it/pg_support.rs"]
mod pg_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use musketeer_protocol::{Role, TokenId};
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

struct Outcome {
    units_per_s: f64,
    fetch_p50_ms: f64,
    fetch_p99_ms: f64,
    report_p50_ms: f64,
    report_p99_ms: f64,
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
    let (redb, postgres) = match store {
        "redb" => (true, false),
        "postgres" => (false, true),
        "both" => (true, true),
        other => {
            eprintln!("--store takes redb, postgres or both (got {other:?})");
            std::process::exit(2);
        }
    };
    // One cluster for every PostgreSQL run (each on a new database); stopped at the end.
    let cluster = postgres.then(pg_support::PgCluster::start);
    println!(
        "Server throughput: {hosts} simulated hosts, {runs} runs per configuration, median run shown"
    );
    println!(
        "| units per request | store | units | units/s (median) | fetch p50 | fetch p99 | report p50 | report p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    // `--only N` runs just the configuration with N units per request (for profiling).
    let only = arg("--only", 0);
    for (per_request, units) in [
        (1u32, 20_000u64),
        (16, 200_000),
        (32, 200_000),
        (64, 200_000),
    ] {
        if only != 0 && only != per_request as usize {
            continue;
        }
        let config = Config {
            hosts,
            per_request,
            units,
        };
        let kinds = [redb.then_some("redb"), cluster.as_ref().map(|_| "postgres")];
        for kind in kinds.into_iter().flatten() {
            let mut outcomes: Vec<Outcome> = (0..runs)
                .map(|_| {
                    let dir = tempfile::tempdir().expect("temp dir");
                    let location = match &cluster {
                        Some(cluster) if kind == "postgres" => {
                            StoreLocation::Postgres(cluster.database())
                        }
                        _ => StoreLocation::DataDir(dir.path().to_owned()),
                    };
                    run(&config, &location)
                })
                .collect();
            outcomes.sort_by(|a, b| a.units_per_s.total_cmp(&b.units_per_s));
            let m = &outcomes[outcomes.len() / 2];
            println!(
                "| {per_request} | {kind} | {units} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
                m.units_per_s, m.fetch_p50_ms, m.fetch_p99_ms, m.report_p50_ms, m.report_p99_ms
            );
        }
    }
}

fn run(config: &Config, location: &StoreLocation) -> Outcome {
    let (researcher, key) = create_project(location);
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let state = AppState::load(
        Store::open_at(location).expect("store"),
        ServeOptions {
            register_per_minute: 1_000_000,
            ..Default::default()
        },
    )
    .expect("state");
    let listener = server_runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = server_runtime.spawn(musketeer_server::run(listener, state, async move {
        let _ = stopped.await;
    }));
    let outcome = client_runtime.block_on(drive(config, &url, &researcher, &key));
    let _ = stop.send(());
    let _ = server_runtime.block_on(server);
    outcome
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

async fn drive(config: &Config, url: &str, admin: &str, key: &SecretKey) -> Outcome {
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
        .post(format!("{url}/api/v1/apps"))
        .bearer_auth(admin)
        .json(&body)
        .send()
        .await
        .expect("publish");
    assert_eq!(published.status(), 201);
    for chunk in (0..config.units).collect::<Vec<_>>().chunks(50_000) {
        let submitted = http
            .post(format!("{url}/api/v1/batches"))
            .bearer_auth(admin)
            .json(&json!({"app": "noop", "inputs": chunk}))
            .send()
            .await
            .expect("submit");
        assert_eq!(submitted.status(), 201);
    }
    let mut tokens = Vec::new();
    for _ in 0..config.hosts {
        let registered: Value = http
            .post(format!("{url}/api/v1/hosts/register"))
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
        .map(|token| {
            tokio::spawn(host(
                http.clone(),
                url.to_owned(),
                token,
                config.per_request,
                done.clone(),
            ))
        })
        .collect();
    let mut fetch = Vec::new();
    let mut report = Vec::new();
    for task in tasks {
        let (f, r) = task.await.expect("host task");
        fetch.extend(f);
        report.extend(r);
    }
    let elapsed = start.elapsed();
    assert_eq!(
        done.load(Ordering::Relaxed),
        config.units,
        "every unit reported"
    );
    Outcome {
        units_per_s: config.units as f64 / elapsed.as_secs_f64(),
        fetch_p50_ms: percentile(&mut fetch, 0.50),
        fetch_p99_ms: percentile(&mut fetch, 0.99),
        report_p50_ms: percentile(&mut report, 0.50),
        report_p99_ms: percentile(&mut report, 0.99),
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

//! Server memory per unit: RSS of a server that holds 1,000,000 queued units, and of one whose
//! store holds 1,000,000 finished units and 10,000 in flight, each measured after a restart (a
//! fresh process loading the store), with the restart time.
//!
//! Run: `cargo bench -p musketeer-server --bench memory` (options: `-- --units N --in-flight M`;
//! `--fill DIR` only fills DIR with that store, finished and in-flight units, and keeps it).
//! The stores are filled through the in-memory world and the real writer (no HTTP: this
//! measures memory, not request handling) in a temp dir; each load runs in a child process
//! (this binary with `--load DIR`) so that the RSS is the loaded state's, not the filler's.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use musketeer_protocol::{Limits, Replication, TokenId};
use musketeer_server::domain::lifecycle::{Params, Reported};
use musketeer_server::domain::reputation::Policy;
use musketeer_server::domain::world::{AppVersion, NewBatch};
use musketeer_server::state::{AppState, ServeOptions};
use musketeer_server::store::{ProjectConfig, Store};
use serde_json::json;

const CHUNK: u64 = 50_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    if let Some(dir) = arg("--load") {
        load(Path::new(dir));
        return;
    }
    let number =
        |name: &str, default: u64| arg(name).and_then(|v| v.parse().ok()).unwrap_or(default);
    let units = number("--units", 1_000_000);
    let in_flight = number("--in-flight", 10_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Only fill a store and keep it (the export/import measurement of docs/benchmarks.md).
    if let Some(dir) = arg("--fill") {
        fill(&runtime, Path::new(dir), units, in_flight);
        return;
    }

    let empty = tempfile::tempdir().expect("temp dir");
    fill(&runtime, empty.path(), 0, 0);
    let base = measure(empty.path());

    let queued = tempfile::tempdir().expect("temp dir");
    fill(&runtime, queued.path(), 0, units);
    let in_flight_only = measure(queued.path());

    let history = tempfile::tempdir().expect("temp dir");
    fill(&runtime, history.path(), units, in_flight);
    let with_history = measure(history.path());

    println!(
        "| store | units in memory | RSS after restart | above an empty store | per in-flight unit | restart |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, m, live) in [
        ("empty", &base, 0),
        (&*format!("{units} queued"), &in_flight_only, units),
        (
            &*format!("{units} finished + {in_flight} queued"),
            &with_history,
            in_flight,
        ),
    ] {
        let above = m.rss_kib.saturating_sub(base.rss_kib);
        let per = (above * 1024)
            .checked_div(live)
            .map_or_else(|| "-".to_owned(), |bytes| format!("{bytes} B"));
        println!(
            "| {name} | {} | {} MiB | {} MiB | {per} | {:.2} s |",
            m.in_memory,
            m.rss_kib / 1024,
            above / 1024,
            m.load_s
        );
    }
}

struct Measured {
    rss_kib: u64,
    in_memory: u64,
    load_s: f64,
}

/// Loads the store in a child process and reads what it printed.
fn measure(dir: &Path) -> Measured {
    let exe = std::env::current_exe().expect("own path");
    let output = Command::new(exe)
        .arg("--load")
        .arg(dir)
        .output()
        .expect("run the loader");
    let text = String::from_utf8_lossy(&output.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert!(
        output.status.success() && fields.len() == 3,
        "loader said: {text} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Measured {
        rss_kib: fields[0].parse().expect("rss"),
        in_memory: fields[1].parse().expect("units"),
        load_s: fields[2].parse().expect("seconds"),
    }
}

/// The child: load the store, print RSS (KiB), units in memory and load seconds.
fn load(dir: &Path) {
    let store = Store::open(dir).expect("store");
    let started = Instant::now();
    let state = AppState::load(store, ServeOptions::default()).expect("load");
    let load_s = started.elapsed().as_secs_f64();
    let in_memory = state.world().units_in_memory();
    println!("{} {in_memory} {load_s:.3}", rss_kib());
    state.close();
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A store with `finished` no-op units done (one host, quorum 1) and `queued` more waiting.
fn fill(runtime: &tokio::runtime::Runtime, dir: &Path, finished: u64, queued: u64) {
    let project = ProjectConfig {
        name: "bench".into(),
        trust: musketeer_signing_keys::TrustStore::from(vec![]),
        rotations: vec![],
        min_client_version: "0.1.0".parse().expect("version"),
        created_ms: 0,
    };
    Store::create(dir, &project).expect("create store");
    let options = ServeOptions {
        reputation: Policy {
            max_daily_quota: u32::MAX,
            new_host_quota: u32::MAX,
            adaptive_replication: false,
            ..Policy::default()
        },
        ..ServeOptions::default()
    };
    let state = AppState::load(Store::open(dir).expect("store"), options).expect("state");
    let now = AppState::now_ms();
    let commit =
        |state: &AppState, change: &mut dyn FnMut(&mut musketeer_server::domain::world::World)| {
            let pending = {
                let mut world = state.world();
                change(&mut world);
                state.persist(&mut world, Vec::new())
            };
            runtime.block_on(pending.durable()).expect("commit");
        };
    let mut host = None;
    commit(&state, &mut |world| {
        world.publish(app());
        host = Some(world.register_host("h".into(), String::new(), None, now));
    });
    let host = host.expect("host");
    let submit = |world: &mut musketeer_server::domain::world::World, n: u64| {
        world.submit(
            NewBatch {
                owner: TokenId(1),
                app: "noop".into(),
                version: "1.0.0".parse().expect("version"),
                inputs: (0..n).map(|i| json!(i).into()).collect(),
                params: Params::resolve(&Replication::default()).expect("params"),
                priority: 0,
                label: None,
            },
            now,
        );
    };
    let mut left = finished;
    while left > 0 {
        let n = left.min(CHUNK);
        commit(&state, &mut |world| submit(world, n));
        // One fetch looks through at most 10,000 queued units.
        commit(&state, &mut |world| {
            let mut leased = Vec::new();
            loop {
                let more = world.fetch(host, n as usize, now);
                if more.is_empty() {
                    break;
                }
                leased.extend(more);
            }
            for id in leased {
                let reported = Reported::Success {
                    output: b"null".to_vec(),
                    fuel: 1,
                    wall_ms: 1,
                    stderr_tail: String::new(),
                };
                world.report(host, id, reported, now);
            }
        });
        left -= n;
    }
    let mut left = queued;
    while left > 0 {
        let n = left.min(CHUNK);
        commit(&state, &mut |world| submit(world, n));
        left -= n;
    }
    state.close();
}

fn app() -> AppVersion {
    AppVersion {
        app: "noop".into(),
        version: "1.0.0".parse().expect("version"),
        key_id: "ed25519:0000000000000000".into(),
        module_sha256: "00".repeat(32),
        module_size: 1,
        http_allow: vec![],
        limits: Limits {
            fuel: 1_000_000,
            memory_bytes: 1,
            wall_time_ms: 1,
            output_bytes: 1024,
        },
        signed_manifest: serde_json::value::RawValue::from_string("{}".into()).expect("json"),
        published_ms: 0,
    }
}

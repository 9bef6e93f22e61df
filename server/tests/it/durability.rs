//! SIGKILL the real server while hosts report; every acknowledged result survives (and is in the
//! overview's units-per-minute chart) and the batch still completes.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{base64_encode, platform, publish_body};

/// The server process; killed (SIGKILL) and reaped when dropped, pass or fail.
pub(crate) struct ServerProcess {
    child: Child,
    pub(crate) url: String,
}

impl ServerProcess {
    pub(crate) fn start(data: &Path) -> ServerProcess {
        Self::start_with(data, &[])
    }

    /// [`ServerProcess::start`] with more `serve` flags.
    pub(crate) fn start_with(data: &Path, flags: &[&str]) -> ServerProcess {
        Self::start_on(&["--data-dir".as_ref(), data.as_os_str()], flags)
    }

    /// Serve the store that `store` names (`--data-dir DIR` or `--store URL`).
    pub(crate) fn start_on(store: &[&OsStr], flags: &[&str]) -> ServerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_musketeer-server"));
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--register-per-minute",
                "1000",
            ])
            .args(store)
            .args(flags)
            .stderr(Stdio::null());
        Self::spawn(command)
    }

    /// Run `command` (a `serve` on 127.0.0.1 port 0) and read the address it prints.
    pub(crate) fn spawn(mut command: Command) -> ServerProcess {
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut process = ServerProcess {
            child,
            url: String::new(),
        };
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server printed its address");
        process.url = line.rsplit(' ').next().unwrap().to_owned();
        assert!(
            process.url.starts_with("http://127.0.0.1:")
                || process.url.starts_with("https://127.0.0.1:"),
            "{line}"
        );
        process
    }

    /// SIGTERM: a graceful stop.
    pub(crate) fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Its exit status, if it has exited.
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// SIGKILL: no shutdown code runs.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn output_for(result_id: &Value) -> Vec<u8> {
    let unit = result_id.as_str().unwrap().split('.').next().unwrap();
    format!("{{\"unit\":{unit}}}").into_bytes()
}

/// A host that fetches and reports in a loop, recording what the server acknowledged.
async fn host_loop(
    http: reqwest::Client,
    url: String,
    token: String,
    acked: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    held: Arc<Mutex<Vec<Value>>>,
) {
    loop {
        let fetched = http
            .post(format!("{url}/api/v1/work/fetch"))
            .bearer_auth(&token)
            .json(&json!({"free_slots": 8, "platform": platform()}))
            .send()
            .await;
        let Ok(fetched) = fetched else { return };
        let Ok(body) = fetched.json::<Value>().await else {
            return;
        };
        let mut batch: Vec<Value> = body["assignments"].as_array().cloned().unwrap_or_default();
        // Results computed before a crash are reported again after it, like a real client does.
        batch.extend(held.lock().unwrap().drain(..));
        if batch.is_empty() {
            tokio::task::yield_now().await;
            continue;
        }
        let results: Vec<Value> = batch
            .iter()
            .map(|a| json!({"result_id": a["result_id"], "outcome": {"status": "success", "output": base64_encode(&output_for(&a["result_id"])), "fuel_consumed": 1, "wall_ms": 1}}))
            .collect();
        let report = http
            .post(format!("{url}/api/v1/work/report"))
            .bearer_auth(&token)
            .json(&json!({"results": results}))
            .send()
            .await;
        let body = match report {
            Ok(r) if r.status() == 200 => r.json::<Value>().await.ok(),
            _ => None,
        };
        let Some(body) = body else {
            held.lock().unwrap().extend(batch);
            return;
        };
        let mut acked = acked.lock().unwrap();
        for ack in body["acks"].as_array().unwrap() {
            assert_ne!(ack["status"], "refused", "{ack}");
            let id = ack["result_id"].as_str().unwrap().to_owned();
            acked.insert(id.clone(), output_for(&ack["result_id"]));
        }
    }
}

pub(crate) async fn wait_for(
    what: &str,
    deadline: Duration,
    mut condition: impl AsyncFnMut() -> bool,
) {
    let end = Instant::now() + deadline;
    while !condition().await {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn results(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    batch: u64,
) -> BTreeMap<u64, Value> {
    let text = http
        .get(format!("{url}/api/v1/batches/{batch}/results"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|row| (row["unit_id"].as_u64().unwrap(), row))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_result() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    sigkill_loses_no_acknowledged_result_on(dir.path(), &["--data-dir".as_ref(), data.as_os_str()])
        .await;
}

/// The same with the store in PostgreSQL: durability is PostgreSQL's commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_result_on_postgres() {
    let cluster = crate::pg_support::PgCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let url = cluster.database();
    sigkill_loses_no_acknowledged_result_on(dir.path(), &["--store".as_ref(), url.as_ref()]).await;
}

/// Three rounds of SIGKILL of `serve` on `store` while hosts fetch and report, then the batch
/// finishes; every acknowledged result is there after each restart.
async fn sigkill_loses_no_acknowledged_result_on(dir: &Path, store: &[&OsStr]) {
    const UNITS: u64 = 400;
    let admin = crate::cli::init_store(dir, store);
    let key = musketeer_signing_keys::read_secret_key(&dir.join("keys/musketeer.key")).unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut server = ServerProcess::start_on(store, &[]);
    let url = server.url.clone();
    let published = http
        .post(format!("{url}/api/v1/apps"))
        .bearer_auth(&admin)
        .json(&publish_body(&key, "noop", "1.0.0", b"m"))
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 201);
    let inputs: Vec<u64> = (0..UNITS).collect();
    // Short deadlines so that replicas leased in a response lost to the crash are reissued.
    let submitted: Value = http
        .post(format!("{url}/api/v1/batches"))
        .bearer_auth(&admin)
        .json(&json!({"app": "noop", "inputs": inputs, "replication": {"delay_bound_ms": 3000}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let batch = submitted["batch_id"].as_u64().unwrap();
    let mut hosts = Vec::new();
    for _ in 0..3 {
        let registered: Value = http
            .post(format!("{url}/api/v1/hosts/register"))
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        hosts.push(registered["host_token"].as_str().unwrap().to_owned());
    }
    let acked: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Arc::default();
    let held: Vec<Arc<Mutex<Vec<Value>>>> = hosts.iter().map(|_| Arc::default()).collect();
    for round in 1..=3 {
        let target = acked.lock().unwrap().len() + 60;
        let tasks: Vec<_> = hosts
            .iter()
            .zip(&held)
            .map(|(token, held)| {
                tokio::spawn(host_loop(
                    http.clone(),
                    server.url.clone(),
                    token.clone(),
                    acked.clone(),
                    held.clone(),
                ))
            })
            .collect();
        wait_for(
            "acknowledged reports",
            Duration::from_secs(60),
            async || acked.lock().unwrap().len() >= target.min(UNITS as usize),
        )
        .await;
        // Kill while the hosts are still fetching and reporting.
        server.kill();
        for task in tasks {
            task.await.unwrap();
        }
        server = ServerProcess::start_on(store, &[]);
        // The overview's chart is committed with the units it counts: after the crash it still
        // shows every unit done (all of them within the last hour).
        let stats: Value = http
            .get(format!("{}/api/v1/stats", server.url))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let charted: u64 = stats["done_per_minute"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .sum();
        let done = stats["units"]["done"].as_u64().unwrap();
        assert!(done > 0, "round {round}: {stats}");
        assert_eq!(charted, done, "round {round}: {stats}");
        let rows = results(&http, &server.url, &admin, batch).await;
        for (result_id, output) in acked.lock().unwrap().iter() {
            let unit: u64 = result_id.split('.').next().unwrap().parse().unwrap();
            let row = &rows[&unit];
            assert_eq!(
                row["state"], "done",
                "round {round}: acknowledged {result_id} lost: {row}"
            );
            assert_eq!(
                serde_json::to_vec(&row["output"]).unwrap(),
                *output,
                "round {round}: {row}"
            );
        }
    }
    // After the last restart, the hosts finish the batch.
    let tasks: Vec<_> = hosts
        .iter()
        .zip(&held)
        .map(|(token, held)| {
            tokio::spawn(host_loop(
                http.clone(),
                server.url.clone(),
                token.clone(),
                acked.clone(),
                held.clone(),
            ))
        })
        .collect();
    let status_url = format!("{}/api/v1/batches/{batch}", server.url);
    wait_for("the batch to finish", Duration::from_secs(90), async || {
        let status: Value = http
            .get(&status_url)
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        status["state"] == "finished"
    })
    .await;
    let rows = results(&http, &server.url, &admin, batch).await;
    assert_eq!(rows.len() as u64, UNITS);
    assert!(
        rows.values().all(|r| r["state"] == "done"),
        "every unit done"
    );
    server.kill();
    for task in tasks {
        task.await.unwrap();
    }
}

/// A store that refuses a commit (a full disk, injected) answers 503, and memory is put back to
/// what the store holds: no read shows a registration, lease or token that was never saved.
#[tokio::test]
async fn a_refused_commit_leaves_no_phantom_state() {
    use axum::http::StatusCode;

    use crate::support::{Api, Project};

    let project = Project::new();
    let state = project.state(musketeer_server::state::ServeOptions::default());
    let api = Api::serving(&state);
    api.publish(&project, "demo", "1.0.0", b"m").await;
    api.submit(&project.researcher, "demo", json!([1, 2, 3]), json!({}))
        .await;
    let host = api.register("h1").await;
    let stats = |api: &Api| {
        let admin = project.admin.clone();
        let api = api.clone();
        async move { api.get("/api/v1/stats", Some(&admin)).await.1 }
    };

    // A fetch whose leases are refused: nothing looks busy afterwards, and the work is still there.
    state.inject_store_failures(1);
    let fetch = json!({"free_slots": 3, "platform": platform()});
    let (status, body) = api
        .post("/api/v1/work/fetch", Some(&host), fetch.clone())
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let after = stats(&api).await;
    assert_eq!(
        (after["slots_busy"].as_u64(), after["queue_depth"].as_u64()),
        (Some(0), Some(3)),
        "{after}"
    );

    // A refused registration leaves no host behind.
    state.inject_store_failures(1);
    let (status, _) = api
        .post(
            "/api/v1/hosts/register",
            None,
            json!({"name": "phantom", "platform": platform()}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (_, hosts) = api.get("/api/v1/hosts", Some(&project.admin)).await;
    assert_eq!(hosts["hosts"].as_array().map(Vec::len), Some(1), "{hosts}");

    // A refused token leaves nothing behind: the next one gets its id.
    let create_token = || {
        api.post(
            "/api/v1/tokens",
            Some(&project.admin),
            json!({"role": "researcher"}),
        )
    };
    state.inject_store_failures(1);
    let (status, body) = create_token().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, body) = create_token().await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["id"].as_u64(), Some(4), "{body}");

    // Once the store accepts writes again, the same requests succeed.
    let (status, body) = api.post("/api/v1/work/fetch", Some(&host), fetch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["assignments"].as_array().map(Vec::len), Some(3));
    assert_eq!(stats(&api).await["slots_busy"].as_u64(), Some(3));
}

//! The server on a real loopback socket: HTTP through reqwest, per-address rate limiting and
//! graceful shutdown.

use std::time::Duration;

use musketeer_server::state::ServeOptions;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::support::{Project, platform};

pub(crate) struct Running {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(project: &Project, options: ServeOptions) -> Running {
    serve(project.state(options)).await
}

/// `musketeer_server::run` on `state` (with its background sweeps) on a free loopback port.
pub(crate) async fn serve(state: musketeer_server::state::AppState) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(musketeer_server::run(listener, state, async move {
        let _ = stopped.await;
    }));
    Running {
        url,
        stop: Some(stop),
        task,
    }
}

impl Running {
    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("server stops")
            .unwrap()
            .unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn full_flow_over_http() {
    let project = Project::new();
    let server = start(&project, ServeOptions::default()).await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", server.url);
    let published = http
        .post(url("/api/v1/apps"))
        .bearer_auth(&project.publisher)
        .json(&project.publish_body("demo", "1.0.0", b"m"))
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 201);
    let submitted: Value = http
        .post(url("/api/v1/batches"))
        .bearer_auth(&project.researcher)
        .json(&json!({"app": "demo", "inputs": [1, 2]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let registered: Value = http
        .post(url("/api/v1/hosts/register"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let host = registered["host_token"].as_str().unwrap();
    let fetched: Value = http
        .post(url("/api/v1/work/fetch"))
        .bearer_auth(host)
        .json(&json!({"free_slots": 4, "platform": platform()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let results: Vec<Value> = fetched["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| json!({"result_id": a["result_id"], "outcome": {"status": "success", "output": "MQ==", "fuel_consumed": 1, "wall_ms": 1}}))
        .collect();
    assert_eq!(results.len(), 2);
    let report = http
        .post(url("/api/v1/work/report"))
        .bearer_auth(host)
        .json(&json!({"results": results}))
        .send()
        .await
        .unwrap();
    assert_eq!(report.status(), 200);
    let status: Value = http
        .get(url(&format!("/api/v1/batches/{}", submitted["batch_id"])))
        .bearer_auth(&project.researcher)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["state"], "finished");
    server.stop().await;
}

#[tokio::test]
async fn registration_is_rate_limited_per_address() {
    let project = Project::new();
    let server = start(
        &project,
        ServeOptions {
            register_per_minute: 3,
            ..Default::default()
        },
    )
    .await;
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = http
            .post(format!("{}/api/v1/hosts/register", server.url))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "rate_limited");
        }
    }
    assert_eq!(statuses, [201, 201, 201, 429]);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_ends_long_polls_and_keeps_the_data() {
    let project = Project::new();
    let server = start(&project, ServeOptions::default()).await;
    let http = reqwest::Client::new();
    let registered: Value = http
        .post(format!("{}/api/v1/hosts/register", server.url))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let host = registered["host_token"].as_str().unwrap().to_owned();
    let poll = tokio::spawn({
        let http = http.clone();
        let url = format!("{}/api/v1/work/fetch", server.url);
        async move {
            http.post(url)
                .bearer_auth(host)
                .json(&json!({"free_slots": 1, "platform": platform(), "wait_ms": 30_000}))
                .send()
                .await
        }
    });
    let started = std::time::Instant::now();
    // Wait until the poll has reached the server (the host's platform gets recorded).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let hosts: Value = http
            .get(format!("{}/api/v1/hosts", server.url))
            .bearer_auth(&project.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !hosts["hosts"][0]["platform"].is_null() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "poll never arrived");
        tokio::task::yield_now().await;
    }
    server.stop().await;
    let response = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("poll ended")
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "shutdown did not wait for the 30 s poll"
    );
    // The writer was closed cleanly: the store reopens with the host.
    let state = project.state(ServeOptions::default());
    assert_eq!(state.world().hosts().count(), 1);
}

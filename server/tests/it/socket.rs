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

/// Over HTTP: publish `demo`, submit `inputs`, register a host and fetch with `slots` free
/// slots; the submission's answer, the host's token and its assignments.
async fn start_work(
    http: &reqwest::Client,
    base: &str,
    project: &Project,
    inputs: Value,
    slots: u32,
) -> (Value, String, Vec<Value>) {
    let url = |p: &str| format!("{base}{p}");
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
        .json(&json!({"app": "demo", "inputs": inputs}))
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
    let host = registered["host_token"].as_str().unwrap().to_owned();
    let fetched: Value = http
        .post(url("/api/v1/work/fetch"))
        .bearer_auth(&host)
        .json(&json!({"free_slots": slots, "platform": platform()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let assignments = fetched["assignments"].as_array().unwrap().clone();
    (submitted, host, assignments)
}

/// Over HTTP: report success for each of `result_ids`; the answer's status.
async fn report_successes(
    http: &reqwest::Client,
    base: &str,
    host: &str,
    result_ids: &[&Value],
) -> u16 {
    let results: Vec<Value> = result_ids
        .iter()
        .map(|id| json!({"result_id": id, "outcome": {"status": "success", "output": "MQ==", "fuel_consumed": 1, "wall_ms": 1}}))
        .collect();
    http.post(format!("{base}/api/v1/work/report"))
        .bearer_auth(host)
        .json(&json!({"results": results}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn full_flow_over_http() {
    let project = Project::new();
    let server = start(&project, ServeOptions::default()).await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", server.url);
    let (submitted, host, assignments) =
        start_work(&http, &server.url, &project, json!([1, 2]), 4).await;
    assert_eq!(assignments.len(), 2);
    let ids: Vec<&Value> = assignments.iter().map(|a| &a["result_id"]).collect();
    assert_eq!(report_successes(&http, &server.url, &host, &ids).await, 200);
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

/// One sample of a scrape by metric name and labels, as a number.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    use prometheus_parse::Value as Sample;
    let found = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)));
    match found.map(|s| &s.value) {
        Some(Sample::Gauge(v) | Sample::Counter(v) | Sample::Untyped(v)) => *v,
        other => panic!("{name}{labels:?}: {other:?}"),
    }
}

#[tokio::test]
async fn metrics_scraped_over_http_match_the_stats() {
    let project = Project::new();
    let options = ServeOptions {
        public_dashboard: true,
        ..ServeOptions::default()
    };
    let server = start(&project, options).await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", server.url);
    let (_, host, assignments) =
        start_work(&http, &server.url, &project, json!([1, 2, 3]), 2).await;
    let first = &assignments[0]["result_id"];
    assert_eq!(
        report_successes(&http, &server.url, &host, &[first]).await,
        200
    );

    let stats: Value = http
        .get(url("/api/v1/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Prometheus asks for OpenMetrics and gets it; others get the 0.0.4 text type.
    let scraped = http
        .get(url("/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), 200);
    assert_eq!(
        scraped.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = scraped.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let number = |v: &Value| v.as_u64().map(|n| n as f64).unwrap();
    for (name, key) in [
        ("musketeer_hosts_known", "hosts_known"),
        ("musketeer_hosts_online", "hosts_online"),
        ("musketeer_slots_total", "slots_total"),
        ("musketeer_slots_busy", "slots_busy"),
        ("musketeer_queue_depth", "queue_depth"),
        ("musketeer_batches_active", "batches_active"),
    ] {
        assert_eq!(sample(&scrape, name, &[]), number(&stats[key]), "{name}");
    }
    for state in ["queued", "running", "done", "failed", "cancelled"] {
        assert_eq!(
            sample(&scrape, "musketeer_units", &[("state", state)]),
            number(&stats["units"][state]),
            "{state}"
        );
    }
    for (outcome, key) in [
        ("valid", "valid"),
        ("invalid", "invalid"),
        ("error", "errors"),
        ("timed_out", "timed_out"),
    ] {
        assert_eq!(
            sample(&scrape, "musketeer_results_total", &[("outcome", outcome)]),
            number(&stats["results"][key]),
            "{outcome}"
        );
    }
    // The run above is not trivially zero: one unit done, one running, one queued.
    assert_eq!(
        sample(&scrape, "musketeer_units", &[("state", "done")]),
        1.0
    );
    assert_eq!(sample(&scrape, "musketeer_hosts_known", &[]), 1.0);
    assert_eq!(
        sample(&scrape, "musketeer_store_rows", &[("table", "units")]),
        3.0
    );
    let reports = [("method", "POST"), ("route", "/api/v1/work/report")];
    assert_eq!(
        sample(
            &scrape,
            "musketeer_http_request_duration_seconds_count",
            &reports
        ),
        1.0
    );
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        if cfg!(target_os = "linux") {
            // Present (`sample` panics otherwise); CPU time may still be under one clock tick.
            assert!(sample(&scrape, name, &[]) >= 0.0, "{name}");
        }
    }
    let plain = http.get(url("/metrics")).send().await.unwrap();
    assert_eq!(
        plain.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    server.stop().await;
}

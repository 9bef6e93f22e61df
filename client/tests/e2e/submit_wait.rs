//! `musketeer submit --wait` follows the batch status long poll instead of polling: a loopback
//! proxy between the CLI and the real server records each request the CLI makes, and the test
//! plays the volunteer through the protocol so that it decides when the unit finishes.

use std::time::Instant;

use musketeer_protocol::{
    Assignment, Backend, Base64Bytes, BatchState, FetchRequest, FetchResponse, HostPlatform,
    Outcome, RegisterHostRequest, RegisterHostResponse, Replication, ReportRequest, ReportResponse,
    ResultReport, SubmitBatchRequest, paths,
};
use musketeer_task_artifacts::NOOP;

use crate::support::{Http, Proc, Project, Proxy, musketeer, path, wait_for};

/// The `GET`s of the batch's status the proxy saw, with their arrival times.
fn status_requests(proxy: &Proxy, batch_path: &str) -> Vec<(Instant, String)> {
    proxy
        .requests()
        .into_iter()
        .filter(|(_, method, path)| {
            method == "GET" && (path == batch_path || path.starts_with(&format!("{batch_path}?")))
        })
        .map(|(at, _, path)| (at, path))
        .collect()
}

/// A volunteer played through the protocol, so that the test decides when each unit finishes.
pub struct ByHand {
    http: Http,
    token: String,
}

impl ByHand {
    pub fn register(url: &str) -> ByHand {
        let http = Http::new(url);
        let registered: RegisterHostResponse = http
            .post(
                paths::HOSTS_REGISTER,
                None,
                &RegisterHostRequest {
                    name: Some("by-hand".into()),
                    invite_code: None,
                    platform: Some(platform()),
                },
            )
            .expect("register a host");
        ByHand {
            http,
            token: registered.host_token,
        }
    }

    /// Fetches `slots` assignments (waiting for them up to 10 s).
    pub fn take(&self, slots: u32) -> Vec<Assignment> {
        let fetched: FetchResponse = self
            .http
            .post(
                paths::WORK_FETCH,
                Some(&self.token),
                &FetchRequest {
                    capabilities: Vec::new(),
                    free_slots: slots,
                    platform: platform(),
                    wait_ms: Some(10_000),
                    in_flight: Vec::new(),
                    held: None,
                    results: Vec::new(),
                },
            )
            .expect("fetch units");
        assert_eq!(fetched.assignments.len(), slots as usize, "{fetched:?}");
        fetched.assignments
    }

    /// Reports `output` as the assignment's successful result.
    pub fn report(&self, assignment: &Assignment, output: &[u8]) {
        let _: ReportResponse = self
            .http
            .post(
                paths::WORK_REPORT,
                Some(&self.token),
                &ReportRequest {
                    results: vec![ResultReport {
                        result_id: assignment.result_id,
                        outcome: Outcome::Success {
                            output: Base64Bytes(output.to_vec()),
                            fuel_consumed: 1,
                            wall_ms: 1,
                            stderr_tail: String::new(),
                        },
                    }],
                    in_flight: Vec::new(),
                },
            )
            .expect("report the result");
    }
}

fn platform() -> HostPlatform {
    HostPlatform {
        arch: "x86_64".into(),
        os: "linux".into(),
        client_version: env!("CARGO_PKG_VERSION").into(),
        wasmtime_version: "48.0.8".into(),
        backend: Backend::Cranelift,
        slots: 1,
        max_task_memory: None,
    }
}

#[test]
fn submit_wait_long_polls_and_ends_with_the_batch() {
    let project = Project::start();
    project.publish(NOOP, "noop", "1.0.0", &[]);
    let proxy = Proxy::start(&project.url);
    let inputs = project.dir.path().join("one.jsonl");
    std::fs::write(&inputs, "{\"n\":1}\n").expect("write the inputs");

    let started = Instant::now();
    let mut command = std::process::Command::new(musketeer());
    command
        .args(["submit", "--server", &proxy.url, "--app", "noop"])
        .args(["--inputs", path(&inputs), "--wait"])
        .env("MUSKETEER_TOKEN", &project.researcher)
        .env("MUSKETEER_LOG", "warn");
    let mut submit = Proc::spawn(command, "submit");
    let batch_id: u64 = wait_for("the batch id on stdout", || {
        submit.stdout.snapshot().first()?.trim().parse().ok()
    });
    let batch_path = paths::batch(musketeer_protocol::BatchId(batch_id));
    // The first status request answers at once; the next one is a long poll.
    wait_for("a long poll of the batch status", || {
        (status_requests(&proxy, &batch_path).len() >= 2).then_some(())
    });

    // Play the volunteer: take the unit and report it.
    let host = ByHand::register(&project.url);
    let [assignment] = host.take(1).try_into().expect("one assignment");
    host.report(&assignment, br#"{"echo":"by hand"}"#);

    let exit = submit.wait_exit();
    let elapsed = started.elapsed();
    let stdout = submit.stdout.snapshot().join("\n");
    assert!(exit.success(), "submit --wait failed: {stdout}");
    assert!(stdout.contains(r#""echo":"by hand""#), "{stdout}");

    let requests = status_requests(&proxy, &batch_path);
    for (_, later) in &requests[1..] {
        assert!(later.contains("wait_ms="), "not a long poll: {later}");
    }
    // Each long poll is held until the batch moves or about 2 s pass: a 500 ms status poll
    // would have made about two requests per second.
    let bound = 2 + elapsed.as_secs() as usize;
    assert!(
        requests.len() <= bound,
        "{} status requests in {elapsed:?}: {requests:?}",
        requests.len()
    );
}

/// A lone unit on an idle cluster: its result reaches the server at once, not when the
/// volunteer's next long poll ends (30 s here). A fetch that carried no results once held the
/// lock that result-carrying requests share for its whole long poll.
#[test]
fn a_lone_units_result_does_not_wait_for_the_volunteers_long_poll() {
    let project = Project::start();
    project.publish(NOOP, "noop", "1.0.0", &[]);
    // Later flags win: this replaces the harness's 2 s poll wait.
    let volunteer = project.join_with("idle", 2, &["--poll-wait-ms", "30s"]);
    wait_for("the volunteer to join", || {
        (!volunteer.stdout.events("waiting").is_empty()).then_some(())
    });
    let http = project.http();
    for n in 0..3 {
        let batch = http.submit(
            &project.researcher,
            &SubmitBatchRequest {
                app: "noop".into(),
                version: None,
                inputs: vec![serde_json::json!({ "n": n })],
                replication: Replication::default(),
                priority: 0,
                label: None,
                ..SubmitBatchRequest::default()
            },
        );
        // Far below the 30 s long poll, far above a no-op unit's round trip.
        let status = http.wait_finished_within(
            &project.researcher,
            batch.batch_id,
            std::time::Duration::from_secs(12),
        );
        assert_eq!(status.state, BatchState::Finished, "{status:?}");
        assert_eq!(status.counts.done, 1, "{status:?}");
    }
}

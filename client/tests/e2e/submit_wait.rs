//! `musketeer submit --wait` and `batch status --wait` follow long polls instead of polling, with
//! as few requests as the output allows: a loopback proxy between the CLI and the real server
//! records each request the CLI makes, and the test plays the volunteer through the protocol so
//! that it decides when each unit finishes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use musketeer_protocol::{
    Assignment, Backend, Base64Bytes, BatchId, BatchState, FetchRequest, FetchResponse,
    HostPlatform, Outcome, RegisterHostRequest, RegisterHostResponse, Replication, ReportRequest,
    ReportResponse, ResultReport, ResultsFormat, ResultsPage, SubmitBatchRequest, paths,
};
use musketeer_task_artifacts::NOOP;

use crate::support::{Http, Proc, Project, Proxy, musketeer, path, wait_for};

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

/// `musketeer submit ... --wait` through `proxy`, with `extra` flags.
fn spawn_submit(project: &Project, proxy: &Proxy, inputs: &Path, extra: &[&str]) -> Proc {
    let mut command = std::process::Command::new(musketeer());
    command
        .args(["submit", "--server", &proxy.url, "--app", "noop"])
        .args(["--inputs", path(inputs), "--wait"])
        .args(extra)
        .env("MUSKETEER_TOKEN", &project.researcher)
        .env("MUSKETEER_LOG", "warn");
    Proc::spawn(command, "submit")
}

/// The batch id `submit` printed first.
fn printed_batch_id(submit: &Proc) -> BatchId {
    BatchId(wait_for("the batch id on stdout", || {
        submit.stdout.snapshot().first()?.trim().parse().ok()
    }))
}

/// The request paths (with queries) the proxy saw, apart from the submit itself.
fn gets(proxy: &Proxy) -> Vec<String> {
    proxy
        .requests()
        .into_iter()
        .filter(|(_, method, _)| method == "GET")
        .map(|(_, _, path)| path)
        .collect()
}

/// Plays a volunteer that takes the one queued unit and reports `{"echo":"by hand"}`.
fn finish_one_by_hand(project: &Project) {
    let host = ByHand::register(&project.url);
    let [assignment] = host.take(1).try_into().expect("one assignment");
    host.report(&assignment, br#"{"echo":"by hand"}"#);
}

/// The results of batch `id` as the server's download gives them.
fn download(project: &Project, id: BatchId, format: ResultsFormat) -> String {
    project
        .http()
        .get_text(&paths::batch_results(id, format), &project.researcher)
        .expect("download the results")
}

fn write_inputs(project: &Project, n: usize) -> PathBuf {
    let inputs = project.dir.path().join(format!("{n}.jsonl"));
    let lines: String = (0..n).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    std::fs::write(&inputs, lines).expect("write the inputs");
    inputs
}

/// A small batch is waited for with its results pages, each a long poll (the first too), and
/// its rows are printed from them: no status request, no download after the wait.
#[test]
fn submit_wait_collects_a_small_batch_from_its_long_polls() {
    let project = Project::start();
    project.publish(NOOP, "noop", "1.0.0", &[]);
    let proxy = Proxy::start(&project.url);
    let inputs = write_inputs(&project, 2);

    let started = Instant::now();
    let mut submit = spawn_submit(&project, &proxy, &inputs, &[]);
    let id = printed_batch_id(&submit);
    let pages = paths::batch(id) + "/results?";
    wait_for("a long poll of the results", || {
        gets(&proxy)
            .iter()
            .any(|p| p.starts_with(&pages))
            .then_some(())
    });

    // Play the volunteer: one unit now, the other after the CLI has seen the first.
    let host = ByHand::register(&project.url);
    let [first, second] = host.take(2).try_into().expect("two assignments");
    host.report(&first, br#"{"echo":"first","b":1,"a":2}"#);
    wait_for("the progress of the first unit", || {
        let said = submit.stderr.snapshot().join("\n");
        said.contains("1/2 done").then_some(())
    });
    host.report(&second, br#"{"echo":"second"}"#);

    let exit = submit.wait_exit();
    let elapsed = started.elapsed();
    let stdout = submit.stdout.snapshot().join("\n");
    assert!(exit.success(), "submit --wait failed: {stdout}");
    // What it printed is the download, byte for byte (key order and unit order kept).
    let download = download(&project, id, ResultsFormat::Jsonl);
    assert_eq!(stdout, format!("{id}\n{}", download.trim_end()));
    assert!(
        download.contains(r#""echo":"first","b":1,"a":2"#),
        "{download}"
    );

    let gets = gets(&proxy);
    for get in &gets {
        assert!(get.starts_with(&pages), "not a results page: {get}");
        assert!(!get.contains("wait_ms=0&"), "not a long poll: {get}");
    }
    // Each long poll is held until a unit finishes or about 2 s pass.
    let bound = 2 + elapsed.as_secs() as usize;
    assert!(
        gets.len() <= bound,
        "{} pages in {elapsed:?}: {gets:?}",
        gets.len()
    );
    let posts = proxy.requests().len() - gets.len();
    assert_eq!(posts, 1, "{:?}", proxy.requests());
}

/// `batch status --wait` long-polls from its first request: an at-once status before it would
/// only add a request to every short wait.
#[test]
fn batch_status_wait_long_polls_from_the_first_request() {
    let project = Project::start();
    project.publish(NOOP, "noop", "1.0.0", &[]);
    let proxy = Proxy::start(&project.url);
    let id = project.submit_json("noop", vec![serde_json::json!({"n": 1})]);
    let mut command = std::process::Command::new(musketeer());
    command
        .args(["batch", "status", &id.to_string(), "--wait"])
        .args(["--server", &proxy.url])
        .env("MUSKETEER_TOKEN", &project.researcher)
        .env("MUSKETEER_LOG", "warn");
    let mut watch = Proc::spawn(command, "batch status --wait");
    wait_for("the first status request", || {
        (!gets(&proxy).is_empty()).then_some(())
    });

    finish_one_by_hand(&project);
    let exit = watch.wait_exit();
    assert!(exit.success(), "{:?}", watch.stderr.snapshot());
    let stdout = watch.stdout.snapshot().join("\n");
    assert!(stdout.contains("finished, 1/1 done"), "{stdout}");
    for get in gets(&proxy) {
        assert!(
            get.starts_with(&format!("{}?wait_ms=", paths::batch(id)))
                && !get.contains("wait_ms=0"),
            "not a status long poll: {get}"
        );
    }
}

/// Results asked for as CSV are not collected: the wait is by status long polls, then the
/// results are downloaded in the file's format.
#[test]
fn submit_wait_into_a_csv_file_downloads_after_the_wait() {
    let project = Project::start();
    project.publish(NOOP, "noop", "1.0.0", &[]);
    let proxy = Proxy::start(&project.url);
    let inputs = write_inputs(&project, 1);
    let csv = project.dir.path().join("out.csv");

    let mut submit = spawn_submit(&project, &proxy, &inputs, &["--output", path(&csv)]);
    let id = printed_batch_id(&submit);
    wait_for("a status long poll", || {
        (!gets(&proxy).is_empty()).then_some(())
    });
    finish_one_by_hand(&project);
    let exit = submit.wait_exit();
    assert!(exit.success(), "{:?}", submit.stderr.snapshot());

    let download = download(&project, id, ResultsFormat::Csv);
    assert_eq!(
        std::fs::read_to_string(&csv).expect("the CSV file"),
        download
    );
    let gets = gets(&proxy);
    let (last, waits) = gets.split_last().expect("requests");
    assert_eq!(last, &paths::batch_results(id, ResultsFormat::Csv));
    assert!(
        waits
            .iter()
            .all(|get| get.starts_with(&format!("{}?wait_ms=", paths::batch(id)))),
        "{gets:?}"
    );
}

/// A batch that ended with rows missing from its pages (here removed on the way) is downloaded
/// whole after the wait, so the output never lacks a unit.
#[test]
fn submit_wait_downloads_rows_its_pages_lacked() {
    let project = Project::start();
    project.publish(NOOP, "noop", "1.0.0", &[]);
    let proxy = Proxy::rewriting(
        &project.url,
        Arc::new(|path, body| {
            if !path.contains("/results?") || !path.contains("after=") {
                return body;
            }
            let mut page: ResultsPage = serde_json::from_slice(&body).expect("a results page");
            page.rows.clear();
            serde_json::to_vec(&page).expect("encode the page").into()
        }),
    );
    let inputs = write_inputs(&project, 1);

    let mut submit = spawn_submit(&project, &proxy, &inputs, &[]);
    let id = printed_batch_id(&submit);
    finish_one_by_hand(&project);
    let exit = submit.wait_exit();
    let stdout = submit.stdout.snapshot().join("\n");
    assert!(exit.success(), "{stdout}");
    assert_eq!(
        stdout,
        format!(
            "{id}\n{}",
            r#"{"unit_id":1,"input":{"n":0},"state":"done","output":{"echo":"by hand"}}"#
        )
    );
    let gets = gets(&proxy);
    assert_eq!(
        gets.last(),
        Some(&paths::batch_results(id, ResultsFormat::Jsonl)),
        "{gets:?}"
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

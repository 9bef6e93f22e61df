//! Quorum 2 against a host that lies: its results are invalid, the canonical ones correct, and
//! it earns no credit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use musketeer_protocol::{
    Backend, Base64Bytes, FetchRequest, FetchResponse, HostPlatform, Outcome, RegisterHostRequest,
    RegisterHostResponse, Replication, ReportRequest, ReportResponse, ResultReport,
    SubmitBatchRequest, UnitState, paths,
};
use musketeer_task_artifacts::PRIMES;

use crate::support::{Http, Project, primes_answer, wait_for, wait_idle};

/// A host speaking the protocol directly that answers every assignment with the same wrong
/// output.
struct Liar {
    stop: Arc<AtomicBool>,
    replicas: Arc<AtomicU64>,
    polls: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
    host_id: u64,
}

impl Liar {
    fn start(url: &str) -> Liar {
        let http = Http::new(url);
        let registered: RegisterHostResponse = http
            .post(
                paths::HOSTS_REGISTER,
                None,
                &RegisterHostRequest {
                    name: Some("liar".into()),
                    invite_code: None,
                    platform: None,
                },
            )
            .expect("register the lying host");
        let (stop, replicas, polls) = Default::default();
        let (stop2, replicas2, polls2): (Arc<AtomicBool>, Arc<AtomicU64>, Arc<AtomicU64>) =
            (Arc::clone(&stop), Arc::clone(&replicas), Arc::clone(&polls));
        let token = registered.host_token;
        let thread = std::thread::spawn(move || {
            let platform = HostPlatform {
                arch: "x86_64".into(),
                os: "linux".into(),
                client_version: "0.1.0".into(),
                wasmtime_version: "48.0.8".into(),
                backend: Backend::Cranelift,
                slots: 8,
                max_task_memory: None,
            };
            while !stop2.load(Ordering::Relaxed) {
                polls2.fetch_add(1, Ordering::Relaxed);
                let fetched: Result<FetchResponse, String> = http.post(
                    paths::WORK_FETCH,
                    Some(&token),
                    &FetchRequest {
                        free_slots: 8,
                        platform: platform.clone(),
                        wait_ms: Some(500),
                        in_flight: Vec::new(),
                        held: None,
                    },
                );
                let Ok(fetched) = fetched else { continue };
                if fetched.assignments.is_empty() {
                    continue;
                }
                let results: Vec<ResultReport> = fetched
                    .assignments
                    .iter()
                    .map(|a| ResultReport {
                        result_id: a.result_id,
                        outcome: Outcome::Success {
                            output: Base64Bytes(br#"{"count":0,"last":null}"#.to_vec()),
                            fuel_consumed: 1_000_000_000,
                            wall_ms: 1,
                            stderr_tail: String::new(),
                        },
                    })
                    .collect();
                replicas2.fetch_add(results.len() as u64, Ordering::Relaxed);
                let _: Result<ReportResponse, String> = http.post(
                    paths::WORK_REPORT,
                    Some(&token),
                    &ReportRequest {
                        results,
                        in_flight: Vec::new(),
                    },
                );
            }
        });
        Liar {
            stop,
            replicas,
            polls,
            thread: Some(thread),
            host_id: registered.host_id.0,
        }
    }
}

impl Drop for Liar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn a_lying_host_is_outvoted_and_earns_nothing() {
    let project = Project::start();
    project.publish(PRIMES, "primes", "1.0.0", &[]);
    let liar = Liar::start(&project.url);
    let a = project.join("honest-a", 2);
    let b = project.join("honest-b", 2);
    wait_idle(&a);
    wait_idle(&b);
    wait_for("the liar to poll", || {
        (liar.polls.load(Ordering::Relaxed) > 0).then_some(())
    });
    let ranges: Vec<(u64, u64)> = (0..6).map(|i| (1 + i * 1000, 2000 + i * 1000)).collect();
    let request = SubmitBatchRequest {
        app: "primes".into(),
        version: None,
        inputs: ranges
            .iter()
            .map(|(from, to)| serde_json::json!({"from": from, "to": to}))
            .collect(),
        replication: Replication {
            min_quorum: Some(2),
            ..Replication::default()
        },
        priority: 0,
        label: None,
    };
    let http = project.http();
    let batch = http.submit(&project.researcher, &request).batch_id;
    http.wait_finished(&project.researcher, batch);
    let rows = http.results(&project.researcher, batch);
    assert_eq!(rows.len(), ranges.len());
    for (row, (from, to)) in rows.iter().zip(&ranges) {
        assert_eq!(row.state, UnitState::Done, "{row:?}");
        assert_eq!(
            row.output.as_ref(),
            Some(&primes_answer(*from, *to)),
            "{row:?}"
        );
    }

    let lies = liar.replicas.load(Ordering::Relaxed);
    assert!(
        lies > 0,
        "the liar never got a replica, so the test proved nothing"
    );
    let hosts = http.hosts(&project.admin);
    let liar_host = hosts
        .hosts
        .iter()
        .find(|h| h.id.0 == liar.host_id)
        .expect("liar listed");
    assert_eq!(liar_host.credit, 0, "{liar_host:?}");
    assert!(liar_host.invalid >= 1, "{liar_host:?}");
    let honest_credit: u64 = hosts
        .hosts
        .iter()
        .filter(|h| h.id.0 != liar.host_id)
        .map(|h| h.credit)
        .sum();
    assert!(honest_credit > 0, "{hosts:?}");
}

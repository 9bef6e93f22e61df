//! Strangers through the real protocol beside real `musketeer join` volunteers: a colluding pair
//! reporting the same forged output is quarantined and no canonical result is wrong; an error
//! flooder drains little and fails no good unit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use musketeer_protocol::{
    Backend, Base64Bytes, ErrorKind, FetchRequest, FetchResponse, HostPlatform, Outcome,
    RegisterHostRequest, RegisterHostResponse, Replication, ReportRequest, ReportResponse,
    ResultReport, SubmitBatchRequest, UnitState, paths,
};
use musketeer_task_artifacts::PRIMES;

use crate::support::{Http, Project, musketeer_ok, primes_answer, wait_for, wait_idle};

/// What a raw-protocol attacker reports for every assignment.
#[derive(Clone, Copy)]
enum Attack {
    /// The same forged output as its accomplices.
    Forge,
    /// A task error.
    Flood,
}

/// A host speaking the protocol directly, as fast as the server lets it.
struct Attacker {
    stop: Arc<AtomicBool>,
    reported: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
    host_id: u64,
}

impl Attacker {
    fn start(url: &str, name: &str, attack: Attack) -> Attacker {
        let http = Http::new(url);
        let registered: RegisterHostResponse = http
            .post(
                paths::HOSTS_REGISTER,
                None,
                &RegisterHostRequest {
                    name: Some(name.into()),
                    invite_code: None,
                    platform: None,
                },
            )
            .expect("register the attacker");
        let stop = Arc::new(AtomicBool::new(false));
        let reported = Arc::new(AtomicU64::new(0));
        let (stop2, reported2) = (Arc::clone(&stop), Arc::clone(&reported));
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
                let fetched: Result<FetchResponse, String> = http.post(
                    paths::WORK_FETCH,
                    Some(&token),
                    &FetchRequest {
                        free_slots: 8,
                        platform: platform.clone(),
                        wait_ms: Some(300),
                        in_flight: Vec::new(),
                        held: None,
                    },
                );
                let Ok(fetched) = fetched else { continue };
                if fetched.refusal.is_some() && fetched.assignments.is_empty() {
                    // Quarantined or throttled: nothing more to do but wait.
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    continue;
                }
                let results: Vec<ResultReport> = fetched
                    .assignments
                    .iter()
                    .map(|a| ResultReport {
                        result_id: a.result_id,
                        outcome: match attack {
                            Attack::Forge => Outcome::Success {
                                output: Base64Bytes(br#"{"count":0,"last":null}"#.to_vec()),
                                fuel_consumed: 1_000_000_000,
                                wall_ms: 1,
                                stderr_tail: String::new(),
                            },
                            Attack::Flood => Outcome::Error {
                                kind: ErrorKind::TaskError,
                                message: "flood".into(),
                                fuel_consumed: 1,
                                wall_ms: 1,
                                stderr_tail: String::new(),
                            },
                        },
                    })
                    .collect();
                if results.is_empty() {
                    continue;
                }
                reported2.fetch_add(results.len() as u64, Ordering::Relaxed);
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
        Attacker {
            stop,
            reported,
            thread: Some(thread),
            host_id: registered.host_id.0,
        }
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `n` primes ranges and their batch at quorum 2.
fn primes_batch(n: u64) -> (Vec<(u64, u64)>, SubmitBatchRequest) {
    let ranges: Vec<(u64, u64)> = (0..n).map(|i| (1 + i * 500, 1000 + i * 500)).collect();
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
    (ranges, request)
}

fn assert_all_right(
    http: &Http,
    project: &Project,
    batch: musketeer_protocol::BatchId,
    ranges: &[(u64, u64)],
) {
    let rows = http.results(&project.researcher, batch);
    assert_eq!(rows.len(), ranges.len());
    for (row, (from, to)) in rows.iter().zip(ranges) {
        assert_eq!(row.state, UnitState::Done, "{row:?}");
        assert_eq!(
            row.output.as_ref(),
            Some(&primes_answer(*from, *to)),
            "{row:?}"
        );
    }
}

#[test]
fn a_colluding_pair_is_quarantined_and_no_canonical_result_is_wrong() {
    let project = Project::start();
    project.publish(PRIMES, "primes", "1.0.0", &[]);
    let volunteers: Vec<_> = ["honest-a", "honest-b", "honest-c"]
        .iter()
        .map(|name| project.join(name, 2))
        .collect();
    for volunteer in &volunteers {
        wait_idle(volunteer);
    }
    let pair = [
        Attacker::start(&project.url, "colluder-1", Attack::Forge),
        Attacker::start(&project.url, "colluder-2", Attack::Forge),
    ];
    let (ranges, request) = primes_batch(16);
    let http = project.http();
    let batch = http.submit(&project.researcher, &request).batch_id;
    http.wait_finished(&project.researcher, batch);
    // Quarantine re-verifies what the pair agreed on, so wait until both are caught and the
    // batch has settled again.
    let hosts = wait_for("both colluders to be quarantined", || {
        let hosts = http.hosts(&project.admin);
        let caught = pair.iter().all(|a| {
            hosts
                .hosts
                .iter()
                .any(|h| h.id.0 == a.host_id && h.quarantine.is_some())
        });
        caught.then_some(hosts)
    });
    http.wait_finished(&project.researcher, batch);
    assert_all_right(&http, &project, batch, &ranges);
    assert!(pair.iter().all(|a| a.reported.load(Ordering::Relaxed) > 0));
    for attacker in &pair {
        let host = hosts
            .hosts
            .iter()
            .find(|h| h.id.0 == attacker.host_id)
            .unwrap();
        assert_eq!(host.credit, 0, "{host:?}");
    }
    assert!(
        hosts
            .hosts
            .iter()
            .all(|h| h.name.starts_with("colluder") || h.quarantine.is_none()),
        "no honest host quarantined: {hosts:?}"
    );
}

#[test]
fn an_error_flooder_drains_little_and_fails_no_good_unit() {
    let project = Project::start();
    project.publish(PRIMES, "primes", "1.0.0", &[]);
    let volunteers: Vec<_> = ["honest-a", "honest-b", "honest-c"]
        .iter()
        .map(|name| project.join(name, 2))
        .collect();
    for volunteer in &volunteers {
        wait_idle(volunteer);
    }
    let flooder = Attacker::start(&project.url, "flooder", Attack::Flood);
    let (ranges, request) = primes_batch(40);
    let http = project.http();
    let batch = http.submit(&project.researcher, &request).batch_id;
    let status = http.wait_finished(&project.researcher, batch);
    assert_eq!(status.counts.failed, 0, "{status:?}");
    assert_all_right(&http, &project, batch, &ranges);
    let drained = flooder.reported.load(Ordering::Relaxed);
    assert!(
        drained > 0,
        "the flooder never got work, so the test proved nothing"
    );
    // Its errors disagree with the success quorum: quarantined after its first settled unit,
    // having taken at most one fetch's worth beyond it.
    assert!(
        drained <= 16,
        "the flooder drained {drained} of 80 replicas"
    );
    let hosts = http.hosts(&project.admin);
    let host = hosts
        .hosts
        .iter()
        .find(|h| h.id.0 == flooder.host_id)
        .unwrap();
    assert!(
        host.quarantine.is_some() || host.daily_quota < 10_000,
        "{host:?}"
    );
}

#[test]
fn an_admin_bans_and_unbans_a_host_from_the_cli() {
    let project = Project::start();
    let suspect = Attacker::start(&project.url, "suspect", Attack::Forge);
    let id = suspect.host_id.to_string();
    let server = [
        "--server",
        project.url.as_str(),
        "--token",
        project.admin.as_str(),
    ];
    let banned = musketeer_ok(
        &[
            &["hosts", "ban", &id, "--reason", "forged results"],
            &server[..],
        ]
        .concat(),
        &[],
    );
    assert!(banned.contains("banned: forged results"), "{banned}");
    let list = musketeer_ok(&[&["hosts", "list"], &server[..]].concat(), &[]);
    let row = list
        .lines()
        .find(|l| l.contains("suspect"))
        .unwrap_or_else(|| panic!("suspect listed: {list}"));
    assert!(row.contains("banned: forged results"), "{row}");
    let unbanned = musketeer_ok(&[&["hosts", "unban", &id], &server[..]].concat(), &[]);
    assert!(unbanned.contains("may work again"), "{unbanned}");
    let list = musketeer_ok(&[&["hosts", "list"], &server[..]].concat(), &[]);
    assert!(!list.contains("banned"), "{list}");
}

//! A host that speaks the work protocol directly instead of running tasks, to stand in for an
//! attacker the real client cannot be made into.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use musketeer_protocol::{
    Backend, Base64Bytes, ErrorKind, FetchRequest, FetchResponse, HostList, HostPlatform,
    HostSummary, Outcome, RegisterHostRequest, RegisterHostResponse, ReportRequest, ReportResponse,
    ResultReport, paths,
};

use super::Http;

/// What a raw-protocol host reports for every assignment.
#[derive(Clone, Copy)]
pub enum Attack {
    /// The same forged primes output every time, so forgers agree with each other.
    Forge,
    /// A task error.
    Flood,
}

/// A registered host fetching and reporting as fast as the server lets it, on its own thread
/// until dropped.
pub struct RawHost {
    stop: Arc<AtomicBool>,
    /// Fetches sent, answered or not.
    pub polls: Arc<AtomicU64>,
    /// Replicas reported.
    pub reported: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub host_id: u64,
}

impl RawHost {
    pub fn start(url: &str, name: &str, attack: Attack) -> RawHost {
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
            .expect("register the raw-protocol host");
        let stop = Arc::new(AtomicBool::new(false));
        let polls = Arc::new(AtomicU64::new(0));
        let reported = Arc::new(AtomicU64::new(0));
        let (stop2, polls2, reported2) =
            (Arc::clone(&stop), Arc::clone(&polls), Arc::clone(&reported));
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
                        capabilities: Vec::new(),
                        free_slots: 8,
                        platform: platform.clone(),
                        wait_ms: Some(300),
                        in_flight: Vec::new(),
                        held: None,
                        results: Vec::new(),
                    },
                );
                let Ok(fetched) = fetched else { continue };
                if fetched.refusal.is_some() && fetched.assignments.is_empty() {
                    // Quarantined or throttled: the server answers at once, so do not spin.
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    continue;
                }
                let results: Vec<ResultReport> = fetched
                    .assignments
                    .iter()
                    .map(|a| ResultReport {
                        result_id: a.result_id,
                        outcome: outcome(attack),
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
        RawHost {
            stop,
            polls,
            reported,
            thread: Some(thread),
            host_id: registered.host_id.0,
        }
    }

    /// This host's row in an admin's host list.
    pub fn listed<'a>(&self, hosts: &'a HostList) -> &'a HostSummary {
        hosts
            .hosts
            .iter()
            .find(|h| h.id.0 == self.host_id)
            .expect("the raw-protocol host is listed")
    }
}

fn outcome(attack: Attack) -> Outcome {
    match attack {
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
    }
}

impl Drop for RawHost {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

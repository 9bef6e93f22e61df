//! Killing clients and the server mid-batch loses nothing and duplicates nothing.

use std::collections::BTreeSet;

use musketeer_protocol::{
    BatchId, BatchStatus, Replication, ResultRow, SubmitBatchRequest, UnitState,
};
use musketeer_task_artifacts::HOSTILE;

use crate::support::{Project, wait_for, wait_idle};

/// Units that take `secs` seconds of real time each (the test-only module sleeps).
fn sleepers(project: &Project, secs: u64, n: usize, deadline_ms: u64) -> BatchId {
    project.publish(HOSTILE, "sleeper", "1.0.0", &[]);
    let request = SubmitBatchRequest {
        app: "sleeper".into(),
        version: None,
        inputs: vec![serde_json::json!({"mode": "sleep", "secs": secs}); n],
        replication: Replication {
            delay_bound_ms: Some(deadline_ms),
            ..Replication::default()
        },
        priority: 0,
        label: Some("kill test".into()),
        ..SubmitBatchRequest::default()
    };
    project
        .http()
        .submit(&project.researcher, &request)
        .batch_id
}

/// Reads show only durable state, so nothing a researcher saw done before a kill may be missing
/// after it.
pub(crate) fn assert_nothing_seen_is_lost(before: &BatchStatus, after: &BatchStatus) {
    assert!(
        after.counts.done >= before.counts.done,
        "acknowledged results lost: {} done before the kill, {} after",
        before.counts.done,
        after.counts.done
    );
}

pub(crate) fn assert_complete(rows: &[ResultRow], secs: u64, n: usize) {
    assert_eq!(rows.len(), n, "one row per unit");
    let ids: BTreeSet<_> = rows.iter().map(|r| r.unit_id).collect();
    assert_eq!(ids.len(), n, "no duplicate rows");
    for row in rows {
        assert_eq!(row.state, UnitState::Done, "{row:?}");
        let output = row
            .output_base64
            .as_ref()
            .expect("the sleeper's text output");
        assert_eq!(output.as_slice(), format!("slept {secs} s").as_bytes());
    }
}

fn unit_ids(events: &[serde_json::Value]) -> BTreeSet<u64> {
    events
        .iter()
        .filter_map(|e| e["unit_id"].as_u64())
        .collect()
}

#[test]
fn killed_client_units_are_reissued_after_their_deadline() {
    let project = Project::start();
    let mut a = project.join("doomed", 2);
    wait_idle(&a);
    let batch = sleepers(&project, 1, 8, 3_000);
    let taken = wait_for("the first client to start two units", || {
        let started = unit_ids(&a.stdout.events("started"));
        (started.len() >= 2).then_some(started)
    });
    a.kill();
    let finished_by_a = unit_ids(&a.stdout.events("finished"));

    let b = project.join("survivor", 2);
    let http = project.http();
    http.wait_finished(&project.researcher, batch);
    assert_complete(&http.results(&project.researcher, batch), 1, 8);
    let finished_by_b = unit_ids(&b.stdout.events("finished"));
    for unit in taken.difference(&finished_by_a) {
        assert!(
            finished_by_b.contains(unit),
            "unit {unit} of the killed client was not reissued"
        );
    }
}

#[test]
fn killed_server_restarts_and_the_batch_completes() {
    killed_server_restarts_and_the_batch_completes_on(Project::start());
}

/// The same with the server's store in PostgreSQL: kill -9 of `serve --store postgres://...`.
#[test]
fn killed_server_on_postgres_restarts_and_the_batch_completes() {
    let cluster = crate::pg_support::PgCluster::start();
    killed_server_restarts_and_the_batch_completes_on(Project::start_on_postgres(
        &cluster.database(),
    ));
}

/// Two volunteers run a batch; the server is killed mid-batch and restarted; nothing
/// acknowledged is lost and the batch completes.
fn killed_server_restarts_and_the_batch_completes_on(mut project: Project) {
    let a = project.join("athos", 2);
    let b = project.join("porthos", 2);
    wait_idle(&a);
    wait_idle(&b);
    let n = 16;
    let batch = sleepers(&project, 1, n, 60_000);
    let http = project.http();
    let before = wait_for("some units to be acknowledged", || {
        http.status(&project.researcher, batch)
            .ok()
            .filter(|s| s.counts.done >= 4)
    });
    let finished = |p: &crate::support::Proc| p.stdout.events("finished").len();
    let finished_before_kill = finished(&a) + finished(&b);
    project.server.kill();
    // Results computed while the server is away stay in the clients' spools.
    wait_for("a unit to finish while the server is down", || {
        (finished(&a) + finished(&b) > finished_before_kill).then_some(())
    });
    project.restart_server();
    let after = wait_for("the restarted server to answer", || {
        http.status(&project.researcher, batch).ok()
    });
    assert_nothing_seen_is_lost(&before, &after);
    http.wait_finished(&project.researcher, batch);
    assert_complete(&http.results(&project.researcher, batch), 1, n);
    assert!(
        !a.stdout.events("retry").is_empty() || !b.stdout.events("retry").is_empty(),
        "the clients never noticed the server was gone"
    );
}

#[cfg(unix)]
#[test]
fn sigterm_hands_work_back_and_exits_zero() {
    let project = Project::start();
    let mut a = project.join("leaving", 2);
    wait_idle(&a);
    let batch = sleepers(&project, 1, 4, 60_000);
    wait_for("the client to start work", || {
        (!a.stdout.events("started").is_empty()).then_some(())
    });
    let started = std::time::Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &a.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let exit = a.wait_exit();
    assert!(exit.success(), "{exit:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(!a.stdout.events("stopped").is_empty());
    // What it finished was reported; what it never started is still there for others.
    let b = project.join("staying", 2);
    project.http().wait_finished(&project.researcher, batch);
    assert_complete(&project.http().results(&project.researcher, batch), 1, 4);
    drop(b);
}

#[test]
fn a_reset_server_gets_its_volunteer_back_as_a_new_host() {
    let mut project = Project::start();
    let a = project.join("aramis", 1);
    wait_idle(&a);
    sleepers(&project, 2, 1, 60_000);
    wait_for("the client to start the unit", || {
        (!a.stdout.events("started").is_empty()).then_some(())
    });
    project.server.kill();
    // Finished, or failed if the kill came before the module download: spooled either way.
    wait_for("the result to be spooled while the server is down", || {
        (!a.stdout.events("finished").is_empty() || !a.stdout.events("failed").is_empty())
            .then_some(())
    });
    // The operator starts over: empty store, same project key, same address. Unit and result
    // ids start again from 1, so the spooled result's id now names other work.
    project.reset_server();
    let event = wait_for("the client to register again", || {
        a.stdout.events("re-register").into_iter().next()
    });
    assert_eq!(event["discarded_results"], 1, "{event}");
    let batch = sleepers(&project, 0, 3, 60_000);
    // A new HTTP client: the old one's pooled connections died with the old server.
    let http = project.http();
    http.wait_finished(&project.researcher, batch);
    // Ids 1.. again, and none of them carries the discarded result's `slept 2 s`.
    assert_complete(&http.results(&project.researcher, batch), 0, 3);
    let hosts = http.hosts(&project.admin).hosts;
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    assert_eq!(hosts[0].name, "aramis");
    assert_eq!(hosts[0].succeeded, 3);
    assert_eq!(
        a.stdout.events("joined").len(),
        2,
        "joined once per identity"
    );
}

/// A volunteer killed and restarted with the same identity no longer holds the units it ran;
/// its first fetch says so and the server reissues them at once, not at their 1-hour deadline.
#[test]
fn a_restarted_volunteers_lost_units_are_reissued_without_waiting_for_the_deadline() {
    let project = Project::start();
    let mut a = project.join("forgetful", 2);
    wait_idle(&a);
    let batch = sleepers(&project, 2, 4, 60 * 60 * 1000);
    let taken = wait_for("the client to start two units", || {
        let started = unit_ids(&a.stdout.events("started"));
        (started.len() >= 2).then_some(started)
    });
    a.kill();
    // The other two units go to b; the two a held can only come back through reconciliation
    // (a host never gets a second replica of a unit).
    let b = project.join("steady", 2);
    let a = project.join("forgetful", 2);
    wait_idle(&a);
    let http = project.http();
    http.wait_finished(&project.researcher, batch);
    assert_complete(&http.results(&project.researcher, batch), 2, 4);
    let finished_by_b = unit_ids(&b.stdout.events("finished"));
    for unit in &taken {
        assert!(
            finished_by_b.contains(unit),
            "unit {unit} lost with the first client was not reissued"
        );
    }
}

/// The server committed a fetch's leases but its answer never reached the volunteer (as when the
/// server is killed between commit and answer): the volunteer's next fetch does not list them,
/// and they are reissued at once, not at their 1-hour deadline.
#[test]
fn leases_from_a_fetch_answer_that_never_arrived_are_reissued_at_once() {
    use musketeer_protocol::{Backend, FetchRequest, FetchResponse, HostPlatform, paths};

    let project = Project::start();
    let a = project.join("unlucky", 1);
    wait_idle(&a);
    let credentials: serde_json::Value = serde_json::from_slice(
        &std::fs::read(project.project_dir("unlucky").join("host.json")).expect("host.json"),
    )
    .expect("host credentials");
    let token = credentials["host_token"].as_str().expect("a host token");
    let batch = sleepers(&project, 1, 3, 60 * 60 * 1000);
    // A fetch in the volunteer's name whose answer is thrown away.
    let lost: FetchResponse = project
        .http()
        .post(
            paths::WORK_FETCH,
            Some(token),
            &FetchRequest {
                capabilities: Vec::new(),
                free_slots: 2,
                platform: HostPlatform {
                    arch: std::env::consts::ARCH.into(),
                    os: std::env::consts::OS.into(),
                    client_version: env!("CARGO_PKG_VERSION").into(),
                    wasmtime_version: "48.0.8".into(),
                    backend: Backend::Cranelift,
                    slots: 2,
                    max_task_memory: None,
                },
                wait_ms: None,
                in_flight: Vec::new(),
                held: None,
                results: Vec::new(),
            },
        )
        .expect("a fetch");
    assert!(!lost.assignments.is_empty(), "nothing was leased");
    // Another volunteer takes the replacements (a host never gets two replicas of one unit).
    let b = project.join("lucky", 1);
    let http = project.http();
    http.wait_finished(&project.researcher, batch);
    assert_complete(&http.results(&project.researcher, batch), 1, 3);
    let finished_by_b = unit_ids(&b.stdout.events("finished"));
    for assignment in &lost.assignments {
        assert!(
            finished_by_b.contains(&assignment.unit_id.0),
            "unit {} of the lost answer was not reissued",
            assignment.unit_id
        );
    }
    drop(a);
}

/// The units of `"unit.replica"` result ids in an event's list.
fn spooled_units(event: &serde_json::Value) -> BTreeSet<u64> {
    event["result_ids"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|id| id.as_str()?.split('.').next()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_killed_buffering_volunteer_keeps_what_it_finished_and_reports_nothing_twice() {
    let mut project = Project::start();
    let mut a = project.join_with("buffered", 4, &["--work-buffer", "30"]);
    wait_idle(&a);
    let n = 16;
    let batch = sleepers(&project, 1, n, 60_000);
    let http = project.http();
    wait_for("some units to be acknowledged", || {
        http.status(&project.researcher, batch)
            .ok()
            .filter(|s| s.counts.done >= 4)
    });
    project.server.kill();
    // With the server gone, buffered units keep running and their results go to the spool.
    let finished_at_kill = unit_ids(&a.stdout.events("finished")).len();
    wait_for("a unit to finish while the server is down", || {
        (unit_ids(&a.stdout.events("finished")).len() > finished_at_kill).then_some(())
    });
    a.kill();
    let finished_before = unit_ids(&a.stdout.events("finished"));

    project.restart_server();
    let http = project.http();
    let acknowledged: BTreeSet<u64> = wait_for("the restarted server to answer", || {
        http.status(&project.researcher, batch).ok()
    })
    .counts
    .done
    .eq(&0)
    .then(BTreeSet::new)
    .unwrap_or_else(|| {
        http.results(&project.researcher, batch)
            .iter()
            .filter(|row| row.state == UnitState::Done)
            .map(|row| row.unit_id.0)
            .collect()
    });

    let b = project.join_with("buffered", 4, &["--work-buffer", "30"]);
    let spool = wait_for("the restarted volunteer to read its spool", || {
        b.stdout.events("spool").into_iter().next()
    });
    let spooled = spooled_units(&spool);
    assert_eq!(
        spool["results"].as_u64(),
        Some(spooled.len() as u64),
        "{spool}"
    );
    // A report that the killed server committed but never answered leaves its results in the
    // spool: they go again and are answered `duplicate` (counted once: checked below). Only
    // that may put an acknowledged result in the spool.
    let reported_again: Vec<&u64> = acknowledged.intersection(&spooled).collect();
    if !reported_again.is_empty() {
        let answer_lost = a.stdout.events("retry").iter().any(|retry| {
            retry["error"]
                .as_str()
                .is_some_and(|error| error.contains("closed before message completed"))
        });
        assert!(
            answer_lost,
            "acknowledged results would be reported again: {reported_again:?}"
        );
    }
    let kept: BTreeSet<u64> = acknowledged.union(&spooled).copied().collect();
    assert!(
        finished_before.is_subset(&kept),
        "finished results lost in the kill: {:?}",
        finished_before.difference(&kept).collect::<Vec<_>>()
    );

    // The units lost in the kill go to another host (a unit is not given twice to one host).
    let _c = project.join_with("second", 4, &["--work-buffer", "30"]);
    http.wait_finished(&project.researcher, batch);
    assert_complete(&http.results(&project.researcher, batch), 1, n);
    let hosts = http.hosts(&project.admin).hosts;
    assert_eq!(hosts.len(), 2, "{hosts:?}");
    // Every unit succeeded once: nothing counted twice, nothing lost.
    let succeeded: u64 = hosts.iter().map(|host| host.succeeded).sum();
    assert_eq!(succeeded, n as u64, "{hosts:?}");
    drop(b);
}

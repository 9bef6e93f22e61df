//! Two `musketeer-server` instances on one PostgreSQL database (docs/operator.md, "Several
//! instances on one database"): volunteers spread over both (one through a round-robin load
//! balancer, one straight to the standby), a researcher batch submitted and followed through
//! the standby, and the active instance killed (SIGKILL) mid-batch. The standby takes over, the
//! batch finishes through it, nothing acknowledged is lost and each unit is in the results once.

use std::process::Command;

use musketeer_protocol::{HealthStatus, Replication, SubmitBatchRequest, paths};
use musketeer_task_artifacts::HOSTILE;

use crate::kills::{assert_complete, assert_nothing_seen_is_lost};
use crate::pg_support::PgCluster;
use crate::support::{
    Balancer, Http, Proc, Project, free_port, musketeer, server_binary, wait_for, wait_idle,
};

/// What `/healthz` at `http` says the server is.
fn instance(http: &Http) -> Option<String> {
    http.get::<HealthStatus>(paths::HEALTHZ, "")
        .ok()
        .and_then(|health| health.instance)
}

#[test]
fn the_batch_finishes_through_the_standby_when_the_active_server_is_killed() {
    let postgres = PgCluster::start();
    let database = postgres.database();
    let mut project = Project::start_on_postgres(&database);
    let active = Http::new(&project.url);
    wait_for("the first server to be active", || {
        (instance(&active).as_deref() == Some("active")).then_some(())
    });
    let standby_port = free_port();
    let standby_url = format!("http://127.0.0.1:{standby_port}");
    let mut command = Command::new(server_binary());
    command
        .args(["serve", "--store", &database])
        .args(["--listen", &format!("127.0.0.1:{standby_port}")])
        .env("MUSKETEER_LOG", "warn");
    let standby_server = Proc::spawn(command, "standby");
    let standby = Http::new(&standby_url);
    wait_for("the second server to stand by", || {
        (instance(&standby).as_deref() == Some("standby")).then_some(())
    });
    let balancer = Balancer::start(vec![
        format!("127.0.0.1:{}", project.port),
        format!("127.0.0.1:{standby_port}"),
    ]);
    let athos = project.join_at(&balancer.url, "athos", 2);
    let porthos = project.join_at(&standby_url, "porthos", 2);
    wait_idle(&athos);
    wait_idle(&porthos);

    project.publish(HOSTILE, "sleeper", "1.0.0", &[]);
    let n = 16;
    let request = SubmitBatchRequest {
        app: "sleeper".into(),
        inputs: vec![serde_json::json!({"mode": "sleep", "secs": 1}); n],
        replication: Replication {
            delay_bound_ms: Some(60_000),
            ..Replication::default()
        },
        label: Some("cluster test".into()),
        ..SubmitBatchRequest::default()
    };
    let batch = standby.submit(&project.researcher, &request).batch_id;
    // The researcher follows it through the standby with the CLI, across the takeover.
    let mut command = Command::new(musketeer());
    command
        .args(["batch", "status", &batch.to_string(), "--wait"])
        .args(["--server", &standby_url])
        .env("MUSKETEER_TOKEN", &project.researcher)
        .env("MUSKETEER_LOG", "warn");
    let mut watch = Proc::spawn(command, "batch status --wait");
    // Reads show only what is durable, so what the researcher saw before the kill must stay.
    let before = wait_for("some units to be done", || {
        standby
            .status(&project.researcher, batch)
            .ok()
            .filter(|s| s.counts.done >= 4)
    });
    project.server.kill();
    wait_for("the standby to take over", || {
        (instance(&standby).as_deref() == Some("active")).then_some(())
    });
    let after = wait_for("the new active server to answer", || {
        standby.status(&project.researcher, batch).ok()
    });
    assert_nothing_seen_is_lost(&before, &after);
    standby.wait_finished(&project.researcher, batch);
    assert_complete(&standby.results(&project.researcher, batch), 1, n);
    let exit = watch.wait_exit();
    assert!(exit.success(), "{:?}", watch.stderr.snapshot());
    let said = watch.stdout.snapshot().join("\n");
    assert!(said.contains(&format!("finished, {n}/{n} done")), "{said}");
    // Both volunteers worked: the one behind the balancer found the survivor by itself.
    for volunteer in [&athos, &porthos] {
        assert!(!volunteer.stdout.events("finished").is_empty());
    }
    drop((athos, porthos, balancer, standby_server));
}

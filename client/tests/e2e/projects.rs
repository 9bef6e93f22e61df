//! Several projects in one client, through the real binaries: resource shares divide the CPU
//! time, `musketeer projects` lists them, `musketeer detach` forgets one, and an older client's
//! single-project data directory keeps working.

use std::path::Path;
use std::process::Command;

use musketeer_protocol::{BatchId, UnitState};
use musketeer_task_artifacts::{HOSTILE, PRIMES};

use crate::support::{Proc, Project, musketeer, musketeer_ok, path, wait_for};

/// A primes range that keeps a slot busy for about half a second, so the time is the task's
/// and not the round trips'.
const RANGE: (u64, u64) = (1, 100_000_000);

fn submit_primes(project: &Project, units: usize) -> BatchId {
    project.submit_json(
        "primes",
        vec![serde_json::json!({"from": RANGE.0, "to": RANGE.1}); units],
    )
}

/// The long-running client of `data`, started by joining `project`.
fn client(project: &Project, data: &Path, slots: u32, extra: &[&str]) -> Proc {
    let mut command = Command::new(musketeer());
    command
        .args(["join", &project.url, "--name", "porthos"])
        .args(["--slots", &slots.to_string(), "--data-dir", path(data)])
        .args(["--log-format", "json", "--poll-wait-ms", "2000"])
        .args(["--max-backoff-ms", "1000"])
        .args(extra)
        .env("MUSKETEER_LOG", "warn");
    Proc::spawn(command, "client")
}

/// The client of `data` started by joining `first`, with `second` (share 300) attached to it
/// through its control socket by a second `join`.
fn client_of_two(
    first: &Project,
    second: &Project,
    data: &Path,
    slots: u32,
    extra: &[&str],
) -> Proc {
    let running = client(first, data, slots, extra);
    wait_for("the client to serve its first project", || {
        musketeer_said(&["status", "--data-dir", path(data)])
            .0
            .then_some(())
    });
    let said = musketeer_ok(
        &[
            "join",
            &second.url,
            "--data-dir",
            path(data),
            "--resource-share",
            "300",
        ],
        &[],
    );
    assert!(said.contains("attached"), "{said}");
    running
}

/// `musketeer ARGS`: whether it succeeded, and its stdout and stderr together.
fn musketeer_said(args: &[&str]) -> (bool, String) {
    let output = Command::new(musketeer())
        .args(args)
        .output()
        .expect("run musketeer");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

fn status(data: &Path) -> serde_json::Value {
    let out = musketeer_ok(&["status", "--data-dir", path(data), "--json"], &[]);
    serde_json::from_str(&out).expect("status JSON")
}

/// The status of the project at `url`.
fn project_status(status: &serde_json::Value, url: &str) -> serde_json::Value {
    status["projects"]
        .as_array()
        .expect("projects")
        .iter()
        .find(|p| p["server"].as_str().map(|s| s.trim_end_matches('/')) == Some(url))
        .cloned()
        .unwrap_or_else(|| panic!("{url} not in {status}"))
}

fn credit(project: &serde_json::Value) -> u64 {
    project["host"]["credit"].as_u64().unwrap_or(0)
}

#[test]
fn two_projects_with_shares_1_to_3_get_a_quarter_and_three_quarters_of_the_cpu() {
    let athos = Project::start();
    let aramis = Project::start();
    for project in [&athos, &aramis] {
        project.publish(PRIMES, "primes", "1.0.0", &[]);
        // More work than the run can finish: both always have some.
        submit_primes(project, 200);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("client");
    let _client = client_of_two(&athos, &aramis, &data, 2, &["--resource-share", "100"]);

    let began = std::time::Instant::now();
    // Measure from the moment both run and neither is owed more than a few slot-seconds' tenth
    // (the first module's download and compilation are paid back), using the servers' credit: fuel the
    // sandbox counted, not the client's own accounting.
    let start_status = wait_for("both projects to run, settled", || {
        let status = status(&data);
        let settled = [&athos.url, &aramis.url].iter().all(|url| {
            let project = project_status(&status, url);
            credit(&project) > 0
                && project["debt_seconds"]
                    .as_f64()
                    .is_some_and(|d| d.abs() < 0.3)
        });
        settled.then_some(status)
    });
    eprintln!("settled after {:?}", began.elapsed());
    let server_credit = |project: &Project| project.http().hosts(&project.admin).hosts[0].credit;
    let start = (server_credit(&athos), server_credit(&aramis));
    // Every unit is the same range, so each earns the same fuel.
    let hosts = athos.http().hosts(&athos.admin);
    let per_unit = (hosts.hosts[0].credit / hosts.hosts[0].succeeded.max(1)).max(1);
    let end = wait_for("120 more units between them", || {
        let (a, b) = (
            server_credit(&athos) - start.0,
            server_credit(&aramis) - start.1,
        );
        (a + b >= 120 * per_unit).then_some((a, b))
    });
    let end_status = status(&data);
    eprintln!("measured after {:?}", began.elapsed());
    let athos_part = end.0 as f64 / (end.0 + end.1) as f64;
    let cpu = |status: &serde_json::Value, url: &str| {
        project_status(status, url)["cpu_seconds"]
            .as_f64()
            .expect("cpu_seconds")
    };
    let athos_cpu = cpu(&end_status, &athos.url) - cpu(&start_status, &athos.url);
    let aramis_cpu = cpu(&end_status, &aramis.url) - cpu(&start_status, &aramis.url);
    let athos_cpu_part = athos_cpu / (athos_cpu + aramis_cpu);
    eprintln!(
        "athos (share 100) earned {} and aramis (share 300) {} fuel: athos had {athos_part:.3} of the work and {athos_cpu_part:.3} of the slot time ({athos_cpu:.1} s of {:.1} s)",
        end.0,
        end.1,
        athos_cpu + aramis_cpu
    );
    // The CPU time (slot-seconds, as `status` reports them) is split 1:3 within +-10% of
    // aramis's three quarters.
    assert!(
        (0.175..=0.325).contains(&athos_cpu_part),
        "athos had {athos_cpu_part:.3} of the slot time, not 0.25 +- 0.075"
    );
    // The fuel follows, less tightly: identical units take from 30 to 600 ms of wall time on a
    // loaded machine. A turn per unit would give athos half of it.
    assert!(
        (0.1..=0.4).contains(&athos_part),
        "athos did {athos_part:.3} of the work, not about a quarter"
    );
    let text = musketeer_ok(&["status", "--data-dir", path(&data)], &[]);
    assert!(
        text.contains("resource share 300") && text.contains("queued: "),
        "{text}"
    );
}

#[test]
fn projects_are_listed_and_detached_and_unreported_results_need_force() {
    let mut athos = Project::start();
    let aramis = Project::start();
    athos.publish(PRIMES, "primes", "1.0.0", &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("client");
    let mut running = client_of_two(&athos, &aramis, &data, 1, &["--work-buffer", "0"]);
    let listed = wait_for("both projects to be listed as running", || {
        let out = musketeer_ok(&["projects", "--data-dir", path(&data)], &[]);
        (out.lines().filter(|l| l.ends_with("running")).count() == 2).then_some(out)
    });
    assert!(
        listed.contains(&format!("{}  share 100", athos.url)),
        "{listed}"
    );
    assert!(listed.contains("share 300"), "{listed}");

    // Detaching the idle project while the client runs forgets it.
    let said = musketeer_ok(&["detach", &aramis.url, "--data-dir", path(&data)], &[]);
    assert!(said.contains("detached"), "{said}");
    let listed = musketeer_ok(&["projects", "--data-dir", path(&data)], &[]);
    assert!(!listed.contains(&aramis.url), "{listed}");
    let aramis_dir = data
        .join("projects")
        .join(format!("127.0.0.1_{}", aramis.port));
    assert!(!aramis_dir.exists());

    // A first unit brings the module in, so that the next one can run without the server.
    athos.publish(HOSTILE, "sleeper", "1.0.0", &[]);
    let warm_up = athos.submit_json("sleeper", vec![serde_json::json!({"mode": "ok"})]);
    athos.http().wait_finished(&athos.researcher, warm_up);
    // A result finished while its server is away stays unreported. The unit sleeps for long
    // enough that the server is gone before it can report, whatever the machine's load.
    let batch = athos.submit_json(
        "sleeper",
        vec![serde_json::json!({"mode": "sleep", "secs": 3})],
    );
    wait_for("the unit to start", || {
        (running.stdout.events("started").len() >= 2).then_some(())
    });
    athos.server.kill();
    wait_for("the unit to finish", || {
        (running.stdout.events("finished").len() >= 2).then_some(())
    });
    running.kill();
    // ...so detaching without the client refuses, and says what to do.
    let (ok, said) = musketeer_said(&["detach", &athos.url, "--data-dir", path(&data)]);
    assert!(
        !ok && said.contains("--force") && said.contains("not been reported"),
        "{said}"
    );
    assert!(athos.project_dir_in(&data).join("host.json").exists());
    // Listing works without a running client too.
    let listed = musketeer_ok(&["projects", "--data-dir", path(&data)], &[]);
    assert!(listed.contains("not running"), "{listed}");
    let said = musketeer_ok(
        &["detach", &athos.url, "--data-dir", path(&data), "--force"],
        &[],
    );
    assert!(said.contains("discarded"), "{said}");
    assert!(!athos.project_dir_in(&data).exists());
    athos.restart_server();
    let rows = athos.http().results(&athos.researcher, batch);
    assert_ne!(rows[0].state, UnitState::Done);
}

#[test]
fn an_older_clients_single_project_data_dir_is_upgraded_in_place() {
    let project = Project::start();
    project.publish(PRIMES, "primes", "1.0.0", &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("client");
    let mut first = client(&project, &data, 1, &[]);
    let joined = wait_for("the client to register", || {
        first.stdout.events("joined").into_iter().next()
    });
    first.kill();
    // Lay the project's files out as an older client did: directly in the data directory.
    let folder = project.project_dir_in(&data);
    for entry in std::fs::read_dir(&folder).expect("project folder") {
        let entry = entry.expect("entry");
        if entry.file_name() != "project.json" {
            std::fs::rename(entry.path(), data.join(entry.file_name())).expect("move back");
        }
    }
    std::fs::remove_dir_all(data.join("projects")).expect("old layout");
    assert!(data.join("host.json").exists());

    // The same host comes back (no new registration), and works.
    let second = client(&project, &data, 1, &[]);
    let rejoined = wait_for("the client to join again", || {
        second.stdout.events("joined").into_iter().next()
    });
    assert_eq!(rejoined["host_id"], joined["host_id"]);
    assert!(folder.join("host.json").exists() && !data.join("host.json").exists());
    let batch = submit_primes(&project, 1);
    let http = project.http();
    http.wait_finished(&project.researcher, batch);
    assert_eq!(
        http.results(&project.researcher, batch)[0].state,
        UnitState::Done
    );
    assert_eq!(http.hosts(&project.admin).hosts.len(), 1);
}

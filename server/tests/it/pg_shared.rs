//! The PostgreSQL pass of the suite (`MUSKETEER_TEST_STORE=postgres`): projects on a database
//! each of one process-wide cluster ([`PgCluster::shared`]), which lives in a static, never
//! drops, and must still go with the test process, whether that exits (all passed, or some
//! failed) or is killed.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use musketeer_server::store::{Store, StoreLocation};

use crate::pg_support::PgCluster;
use crate::support::{Project, testing_on_postgres};

/// Set in a probe: this test then starts the shared cluster, prints where it is and waits.
const PROBE_VAR: &str = "MUSKETEER_PG_SHARED_PROBE";

/// How a probe's line saying where its cluster is starts (the postmaster's pid and directory
/// follow).
const CLUSTER_LINE: &str = "shared cluster: ";

/// How long the watchdog may take to stop PostgreSQL and remove the directory (a busy box).
const GONE_DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn the_shared_cluster_goes_with_the_test_process_whether_it_exits_or_is_killed() {
    if std::env::var_os(PROBE_VAR).is_some() {
        let cluster = PgCluster::shared();
        // On a line of its own: the harness has begun one with the test's name.
        println!(
            "\n{CLUSTER_LINE}{} {}",
            cluster.pid(),
            cluster.directory().display()
        );
        // Until the parent closes stdin (an exit, as after the last test) or kills us.
        let _ = std::io::stdin().read_line(&mut String::new());
        return;
    }
    let (mut exiting, exiting_cluster) = probe();
    let (mut killed, killed_cluster) = probe();
    drop(exiting.stdin.take());
    assert!(exiting.wait().unwrap().success());
    killed.kill().unwrap();
    killed.wait().unwrap();
    for (pid, directory) in [exiting_cluster, killed_cluster] {
        let deadline = Instant::now() + GONE_DEADLINE;
        while is_running(pid) || directory.exists() {
            assert!(
                Instant::now() < deadline,
                "postgres {pid} running: {}, {} still there",
                is_running(pid),
                directory.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// This test in a process of its own, as a probe; with its cluster's postmaster and directory.
fn probe() -> (Child, (u32, PathBuf)) {
    let name = concat!(
        module_path!(),
        "::the_shared_cluster_goes_with_the_test_process_whether_it_exits_or_is_killed"
    );
    // The test's name inside the test binary: without the crate's.
    let name = name.split_once("::").map_or(name, |(_, name)| name);
    let mut probe = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(PROBE_VAR, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(probe.stdout.take().unwrap()).lines();
    while let Some(Ok(line)) = stdout.next() {
        let Some(cluster) = line.strip_prefix(CLUSTER_LINE) else {
            continue;
        };
        let (pid, directory) = cluster.split_once(' ').unwrap();
        // The rest is read, so that the probe's harness can print its result.
        std::thread::spawn(move || stdout.for_each(drop));
        return (probe, (pid.parse().unwrap(), PathBuf::from(directory)));
    }
    let _ = probe.kill();
    panic!(
        "the probe ended without starting its cluster: {:?}",
        probe.wait()
    );
}

/// Whether process `pid` runs (a zombie, dead but not yet reaped by whoever adopted it, does not).
fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the command name, which is in parentheses.
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// `Project::new` follows `MUSKETEER_TEST_STORE`, so that the PostgreSQL pass is one.
#[test]
fn projects_are_on_the_store_the_suite_runs_on() {
    let project = Project::new();
    let on_postgres = matches!(project.location, StoreLocation::Postgres(_));
    assert_eq!(on_postgres, testing_on_postgres(), "{:?}", project.location);
    // The redb-file tests' projects stay on redb in either pass.
    assert!(matches!(
        Project::on_redb().location,
        StoreLocation::DataDir(_)
    ));
}

/// Each project on the shared cluster has a database of its own, which goes with the project
/// even while a store still has it open.
#[test]
fn a_project_on_the_shared_cluster_has_its_own_database_dropped_with_it() {
    let first = Project::on_shared_postgres();
    let second = Project::on_shared_postgres();
    assert_ne!(first.location, second.location);
    let location = first.location.clone();
    let still_open = first.store();
    drop(first);
    let error = Store::open_at(&location).unwrap_err().to_string();
    assert!(error.contains("does not exist"), "{error}");
    drop(still_open);
    // The other one is untouched.
    assert_eq!(second.store().load().unwrap().tokens.len(), 3);
}

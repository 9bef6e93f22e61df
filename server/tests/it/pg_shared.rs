//! The process-wide PostgreSQL cluster of `MUSKETEER_TEST_STORE=postgres`
//! ([`PgCluster::shared`]) lives in a static, which never drops: it must still go with the test
//! process, whether that exits (all passed, or some failed) or is killed.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::pg_support::PgCluster;

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

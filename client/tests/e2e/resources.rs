//! What a volunteer's machine lends: tasks run at the lowest CPU priority unless the volunteer
//! says otherwise, and only work whose signed memory limit the volunteer allows comes to it.

use musketeer_protocol::{Replication, SubmitBatchRequest, UnitState};
use musketeer_task_artifacts::PRIMES;

use crate::support::{Proc, Project, primes_answer, wait_idle};

/// The nice value of every thread of `process` (from /proc: field 19 of each thread's stat).
fn thread_nice_values(process: &Proc) -> Vec<i32> {
    let tasks = format!("/proc/{}/task", process.pid());
    std::fs::read_dir(&tasks)
        .expect("the client's threads")
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("stat")).ok())
        .map(|stat| {
            // After the `(comm)` field, which may hold spaces: state is field 3, nice field 19.
            let after_comm = &stat[stat.rfind(')').expect("stat has (comm)") + 1..];
            after_comm
                .split_whitespace()
                .nth(16)
                .expect("nice")
                .parse()
                .expect("a number")
        })
        .collect()
}

fn run_units(project: &Project, n: u64) {
    let http = project.http();
    let request = SubmitBatchRequest {
        app: "primes".into(),
        version: None,
        inputs: (0..n)
            .map(|_| serde_json::json!({"from": 1, "to": 100_000}))
            .collect(),
        replication: Replication::default(),
        priority: 0,
        label: None,
        ..SubmitBatchRequest::default()
    };
    let batch = http.submit(&project.researcher, &request).batch_id;
    http.wait_finished(&project.researcher, batch);
    let rows = http.results(&project.researcher, batch);
    assert_eq!(rows.len() as u64, n);
    for row in &rows {
        assert_eq!(row.state, UnitState::Done, "{row:?}");
        assert_eq!(row.output, Some(primes_answer(1, 100_000)));
    }
}

#[cfg(target_os = "linux")]
#[test]
fn tasks_run_at_the_lowest_cpu_priority_by_default() {
    let project = Project::start();
    project.publish(PRIMES, "primes", "1.0.0", &[]);
    let own = thread_nice_values(&project.server)[0];
    if own >= 19 {
        eprintln!("skipped: this test already runs at the lowest priority (nice {own})");
        return;
    }

    let volunteer = project.join("athos", 2);
    wait_idle(&volunteer);
    run_units(&project, 1);
    let nice = thread_nice_values(&volunteer);
    assert!(nice.len() > 2, "runtime and epoch threads: {nice:?}");
    assert!(nice.iter().all(|&n| n == 19), "{nice:?}");

    let normal = project.join_with("porthos", 1, &["--nice", "0"]);
    wait_idle(&normal);
    assert!(
        thread_nice_values(&normal).iter().all(|&n| n == own),
        "--nice 0 leaves the priority as it was"
    );
}

#[test]
fn only_work_within_the_volunteers_memory_limit_comes_to_a_host() {
    let project = Project::start();
    // Signed with the default limits: up to 256 MiB of memory per task.
    project.publish(PRIMES, "primes", "1.0.0", &[]);
    let small = project.join_with("planchet", 2, &["--max-task-memory", "100"]);
    let mut big = project.join("athos", 2);
    wait_idle(&small);
    wait_idle(&big);
    run_units(&project, 6);
    assert!(
        small.stdout.events("started").is_empty(),
        "planchet ran work"
    );
    assert_eq!(big.stdout.events("started").len(), 6);
    let hosts = project.http().hosts(&project.admin).hosts;
    let limit_of = |name: &str| {
        let host = hosts.iter().find(|h| h.name == name).expect("listed");
        host.platform.as_ref().and_then(|p| p.max_task_memory)
    };
    assert_eq!(limit_of("planchet"), Some(100 << 20));
    assert!(limit_of("athos").is_some_and(|bytes| bytes >= 256 << 20));

    // With athos gone, a volunteer who allows exactly 256 MiB gets the next batch.
    big.kill();
    let exact = project.join_with("aramis", 2, &["--max-task-memory", "256"]);
    wait_idle(&exact);
    run_units(&project, 2);
    assert_eq!(exact.stdout.events("started").len(), 2);
    assert!(
        small.stdout.events("started").is_empty(),
        "planchet ran work"
    );
}

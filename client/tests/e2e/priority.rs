//! A volunteer's tasks run at the lowest CPU priority unless the volunteer says otherwise.

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

fn run_one_unit(project: &Project) {
    let http = project.http();
    let request = SubmitBatchRequest {
        app: "primes".into(),
        version: None,
        inputs: vec![serde_json::json!({"from": 1, "to": 100_000})],
        replication: Replication::default(),
        priority: 0,
        label: None,
    };
    let batch = http.submit(&project.researcher, &request).batch_id;
    http.wait_finished(&project.researcher, batch);
    let rows = http.results(&project.researcher, batch);
    assert_eq!(rows[0].state, UnitState::Done, "{rows:?}");
    assert_eq!(rows[0].output, Some(primes_answer(1, 100_000)));
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
    run_one_unit(&project);
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

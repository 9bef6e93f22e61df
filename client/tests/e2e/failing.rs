//! A unit whose task deterministically fails, beside units that succeed, with only two
//! volunteers at quorum 2: it fails in seconds with the task's own words instead of hanging.

use std::time::{Duration, Instant};

use musketeer_protocol::UnitState;
use musketeer_task_artifacts::PRIMES;

use crate::support::{Project, musketeer_ok, primes_answer, primes_quorum_batch, wait_idle};

#[test]
fn a_deterministically_failing_unit_fails_in_seconds_with_two_volunteers() {
    let project = Project::start();
    project.publish(PRIMES, "primes", "1.0.0", &[]);
    let a = project.join("athos", 2);
    let b = project.join("porthos", 2);
    wait_idle(&a);
    wait_idle(&b);
    let ranges = [(1, 1000), (1000, 5000), (9, 3), (5000, 9000), (2, 2)];
    let request = primes_quorum_batch(&ranges, Some("one bad range"));
    let http = project.http();
    let started = Instant::now();
    let batch = http.submit(&project.researcher, &request).batch_id;
    let status = http.wait_finished(&project.researcher, batch);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        (status.counts.done, status.counts.failed),
        (4, 1),
        "{status:?}"
    );
    for row in http.results(&project.researcher, batch) {
        let (from, to) = ranges[(row.unit_id.0 - status.first_unit.0) as usize];
        if from > to {
            assert_eq!(row.state, UnitState::Failed, "{row:?}");
            let error = row.error.unwrap_or_default();
            assert!(
                error.contains("invalid input: from = 9 is greater than to = 3")
                    && error.contains("2 hosts"),
                "{error}"
            );
        } else {
            assert_eq!(row.state, UnitState::Done, "{row:?}");
            assert_eq!(row.output, Some(primes_answer(from, to)), "{from}..={to}");
        }
    }
    // The researcher's CLI shows the task's words too.
    let shown = musketeer_ok(
        &[
            "batch",
            "status",
            &batch.to_string(),
            "--server",
            &project.url,
        ],
        &[("MUSKETEER_TOKEN", &project.researcher)],
    );
    assert!(shown.contains("1 failed"), "{shown}");
}

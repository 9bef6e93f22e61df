//! Quorum 2 against a host that lies: its results are invalid, the canonical ones correct, and
//! it earns no credit.

use std::sync::atomic::Ordering;

use musketeer_task_artifacts::PRIMES;

use crate::support::{
    Attack, Project, RawHost, assert_primes_right, primes_quorum_batch, wait_for, wait_idle,
};

#[test]
fn a_lying_host_is_outvoted_and_earns_nothing() {
    let project = Project::start();
    project.publish(PRIMES, "primes", "1.0.0", &[]);
    // Answers every assignment with the same wrong output.
    let liar = RawHost::start(&project.url, "liar", Attack::Forge);
    let a = project.join("honest-a", 2);
    let b = project.join("honest-b", 2);
    wait_idle(&a);
    wait_idle(&b);
    wait_for("the liar to poll", || {
        (liar.polls.load(Ordering::Relaxed) > 0).then_some(())
    });
    let ranges: Vec<(u64, u64)> = (0..6).map(|i| (1 + i * 1000, 2000 + i * 1000)).collect();
    let http = project.http();
    let batch = http
        .submit(&project.researcher, &primes_quorum_batch(&ranges, None))
        .batch_id;
    http.wait_finished(&project.researcher, batch);
    assert_primes_right(&http, &project.researcher, batch, &ranges);

    let lies = liar.reported.load(Ordering::Relaxed);
    assert!(
        lies > 0,
        "the liar never got a replica, so the test proved nothing"
    );
    let hosts = http.hosts(&project.admin);
    let liar_host = liar.listed(&hosts);
    assert_eq!(liar_host.credit, 0, "{liar_host:?}");
    assert!(liar_host.invalid >= 1, "{liar_host:?}");
    let honest_credit: u64 = hosts
        .hosts
        .iter()
        .filter(|h| h.id.0 != liar.host_id)
        .map(|h| h.credit)
        .sum();
    assert!(honest_credit > 0, "{hosts:?}");
}

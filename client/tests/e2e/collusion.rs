//! Strangers through the real protocol beside real `musketeer join` volunteers: a colluding pair
//! reporting the same forged output is quarantined and no canonical result is wrong; an error
//! flooder drains little and fails no good unit.

use std::sync::atomic::Ordering;

use musketeer_task_artifacts::PRIMES;

use crate::support::{
    Attack, Proc, Project, RawHost, assert_primes_right, musketeer_ok, primes_quorum_batch,
    wait_for, wait_idle,
};

/// `n` primes ranges of 1000 numbers, overlapping by half.
fn primes_ranges(n: u64) -> Vec<(u64, u64)> {
    (0..n).map(|i| (1 + i * 500, 1000 + i * 500)).collect()
}

/// A project with primes published and three honest volunteers waiting for work.
fn project_with_honest_volunteers() -> (Project, Vec<Proc>) {
    let project = Project::start();
    project.publish(PRIMES, "primes", "1.0.0", &[]);
    let volunteers: Vec<_> = ["honest-a", "honest-b", "honest-c"]
        .iter()
        .map(|name| project.join(name, 2))
        .collect();
    for volunteer in &volunteers {
        wait_idle(volunteer);
    }
    (project, volunteers)
}

#[test]
fn a_colluding_pair_is_quarantined_and_no_canonical_result_is_wrong() {
    let (project, _volunteers) = project_with_honest_volunteers();
    let pair = [
        RawHost::start(&project.url, "colluder-1", Attack::Forge),
        RawHost::start(&project.url, "colluder-2", Attack::Forge),
    ];
    let ranges = primes_ranges(16);
    let http = project.http();
    let batch = http
        .submit(&project.researcher, &primes_quorum_batch(&ranges, None))
        .batch_id;
    http.wait_finished(&project.researcher, batch);
    // Quarantine re-verifies what the pair agreed on, so wait until both are caught and the
    // batch has settled again.
    let hosts = wait_for("both colluders to be quarantined", || {
        let hosts = http.hosts(&project.admin);
        let caught = pair.iter().all(|a| {
            hosts
                .hosts
                .iter()
                .any(|h| h.id.0 == a.host_id && h.quarantine.is_some())
        });
        caught.then_some(hosts)
    });
    http.wait_finished(&project.researcher, batch);
    assert_primes_right(&http, &project.researcher, batch, &ranges);
    assert!(pair.iter().all(|a| a.reported.load(Ordering::Relaxed) > 0));
    for attacker in &pair {
        let host = attacker.listed(&hosts);
        assert_eq!(host.credit, 0, "{host:?}");
    }
    assert!(
        hosts
            .hosts
            .iter()
            .all(|h| h.name.starts_with("colluder") || h.quarantine.is_none()),
        "no honest host quarantined: {hosts:?}"
    );
}

#[test]
fn an_error_flooder_drains_little_and_fails_no_good_unit() {
    let (project, _volunteers) = project_with_honest_volunteers();
    let flooder = RawHost::start(&project.url, "flooder", Attack::Flood);
    let ranges = primes_ranges(40);
    let http = project.http();
    let batch = http
        .submit(&project.researcher, &primes_quorum_batch(&ranges, None))
        .batch_id;
    let status = http.wait_finished(&project.researcher, batch);
    assert_eq!(status.counts.failed, 0, "{status:?}");
    assert_primes_right(&http, &project.researcher, batch, &ranges);
    let drained = flooder.reported.load(Ordering::Relaxed);
    assert!(
        drained > 0,
        "the flooder never got work, so the test proved nothing"
    );
    // Its errors disagree with the success quorum: quarantined after its first settled unit,
    // having taken at most one fetch's worth beyond it.
    assert!(
        drained <= 16,
        "the flooder drained {drained} of 80 replicas"
    );
    let hosts = http.hosts(&project.admin);
    let host = flooder.listed(&hosts);
    assert!(
        host.quarantine.is_some() || host.daily_quota < 10_000,
        "{host:?}"
    );
}

#[test]
fn an_admin_bans_and_unbans_a_host_from_the_cli() {
    let project = Project::start();
    let suspect = RawHost::start(&project.url, "suspect", Attack::Forge);
    let id = suspect.host_id.to_string();
    let server = [
        "--server",
        project.url.as_str(),
        "--token",
        project.admin.as_str(),
    ];
    let banned = musketeer_ok(
        &[
            &["hosts", "ban", &id, "--reason", "forged results"],
            &server[..],
        ]
        .concat(),
        &[],
    );
    assert!(banned.contains("banned: forged results"), "{banned}");
    let list = musketeer_ok(&[&["hosts", "list"], &server[..]].concat(), &[]);
    let row = list
        .lines()
        .find(|l| l.contains("suspect"))
        .unwrap_or_else(|| panic!("suspect listed: {list}"));
    assert!(row.contains("banned: forged results"), "{row}");
    let unbanned = musketeer_ok(&[&["hosts", "unban", &id], &server[..]].concat(), &[]);
    assert!(unbanned.contains("may work again"), "{unbanned}");
    let list = musketeer_ok(&[&["hosts", "list"], &server[..]].concat(), &[]);
    assert!(!list.contains("banned"), "{list}");
}

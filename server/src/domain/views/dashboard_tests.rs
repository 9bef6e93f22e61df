//! Paging, the retrying state, the failures view and the status page's data.

use musketeer_protocol::{ResultId, UnitState};

use super::failures::{FailureQuery, failures};
use super::status::{StatusHistory, snapshot};
use super::tests::{busy_world, error};
use super::*;

/// The quorum-1 unit still running on host a fails with an error and is queued again.
fn with_a_retry(world: &mut World) -> UnitId {
    let unit = UnitId(6);
    let (idx, host) = world
        .unit(unit)
        .and_then(|u| {
            u.replicas()
                .iter()
                .enumerate()
                .find(|(_, r)| r.state == ReplicaState::InProgress)
                .and_then(|(idx, r)| Some((idx, r.host?)))
        })
        .expect("unit 6 running");
    let id = ResultId {
        unit,
        replica: idx as u32,
    };
    world.report(host, id, error(), 40);
    unit
}

fn all(limit: usize) -> FailureQuery {
    FailureQuery {
        limit,
        ..FailureQuery::default()
    }
}

#[test]
fn unit_pages_follow_after_and_list_every_unit_once() {
    let (world, replicated, _) = busy_world();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = batch_units(&world, replicated, None, after, 1)
            .unwrap()
            .unwrap();
        assert_eq!(page.total, 4, "the total ignores the page");
        seen.extend(page.units.iter().map(|u| u.id));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let expected: Vec<_> = world.batch(replicated).unwrap().unit_ids().collect();
    assert_eq!(seen, expected);
}

#[test]
fn a_unit_queued_again_after_an_error_is_retrying() {
    let (mut world, _, single) = busy_world();
    assert_eq!(
        batch_units(&world, single, Some(UnitFilter::Retrying), None, 10)
            .unwrap()
            .unwrap()
            .total,
        0
    );
    let unit = with_a_retry(&mut world);
    let retrying = batch_units(&world, single, Some(UnitFilter::Retrying), None, 10)
        .unwrap()
        .unwrap();
    assert_eq!(retrying.units.len(), 1, "{retrying:?}");
    let summary = &retrying.units[0];
    assert_eq!(summary.id, unit);
    assert!(summary.retrying);
    assert_eq!(summary.failed_replicas, 1);
    assert_eq!(summary.state, UnitState::Queued);
    let queued = batch_units(&world, single, Some(UnitFilter::Queued), None, 10)
        .unwrap()
        .unwrap();
    assert!(queued.units.iter().any(|u| u.id == unit), "{queued:?}");
}

#[test]
fn failures_list_errors_while_units_retry_with_filter_and_paging() {
    let (mut world, replicated, single) = busy_world();
    let unit = with_a_retry(&mut world);
    let everything = failures(&world, all(100), |_| true).unwrap();
    assert_eq!(everything.total, 2, "{everything:?}");
    assert!(
        everything
            .failures
            .iter()
            .all(|f| f.error.contains("cannot write the module cache") && f.app == "demo")
    );
    let retrying = failures(
        &world,
        FailureQuery {
            filter: Some(UnitFilter::Retrying),
            ..all(100)
        },
        |_| true,
    )
    .unwrap();
    assert_eq!(retrying.failures.len(), 1);
    assert_eq!(retrying.failures[0].result_id.unit, unit);
    assert!(retrying.failures[0].retrying);
    assert_eq!(retrying.failures[0].batch_id, single);
    let failed = failures(
        &world,
        FailureQuery {
            filter: Some(UnitFilter::Failed),
            batch: Some(replicated),
            ..all(100)
        },
        |_| true,
    )
    .unwrap();
    assert_eq!(failed.total, 1);
    assert_eq!(failed.failures[0].unit_state, UnitState::Failed);

    let first = failures(&world, all(1), |_| true).unwrap();
    let next = first.next_after.expect("a second page");
    let second = failures(
        &world,
        FailureQuery {
            after: Some(next),
            ..all(1)
        },
        |_| true,
    )
    .unwrap();
    assert_eq!(second.next_after, None);
    let paged: Vec<_> = first.failures.iter().chain(&second.failures).collect();
    assert_eq!(paged, everything.failures.iter().collect::<Vec<_>>());

    let hidden = failures(&world, all(100), |b| b.id != single).unwrap();
    assert_eq!(hidden.total, 1, "others' batches are left out");
}

#[test]
fn status_counts_units_by_app_and_hosts_results_since_the_oldest_sample() {
    let (mut world, _, _) = busy_world();
    let mut history = StatusHistory::default();
    history.record(&world, 1_000);
    with_a_retry(&mut world);

    let (apps, now) = snapshot(&world, 50);
    assert_eq!(apps.len(), 1);
    let demo = &apps[0];
    let counts = world.stats(0).units;
    assert_eq!(
        (demo.unsent, demo.in_progress, demo.done, demo.failed),
        (counts.queued, counts.running, counts.done, counts.failed)
    );
    assert_eq!(demo.retrying, 1);
    assert_eq!(
        (now.queued, now.running, now.retrying, now.done, now.failed),
        (counts.queued, counts.running, 1, counts.done, counts.failed)
    );

    let status = history.status(&world, 61_000);
    let samples: Vec<_> = status
        .history
        .iter()
        .map(|s| (s.at_ms, s.retrying))
        .collect();
    assert_eq!(samples, [(1_000, 0), (61_000, 1)]);
    let a = status.hosts.iter().find(|h| h.name == "a").unwrap();
    let b = status.hosts.iter().find(|h| h.name == "b").unwrap();
    assert_eq!((a.results, a.window_ms), (1, 60_000), "{a:?}");
    assert_eq!(b.results, 0, "{b:?}");

    // An hour later the first sample is forgotten.
    history.record(&world, 1_000 + status::WINDOW_MS + 1);
    let later = history.status(&world, 2_000 + status::WINDOW_MS);
    assert!(later.history.iter().all(|s| s.at_ms > 1_000), "{later:?}");
}

#[test]
fn a_fresh_snapshot_answers_status_requests_until_it_is_stale() {
    let (mut world, _, _) = busy_world();
    let mut history = StatusHistory::default();
    let first = history.status(&world, 10_000);
    with_a_retry(&mut world);
    let cached = history.status(&world, 10_000 + status::FRESH_MS - 1);
    assert_eq!(
        cached.history, first.history,
        "within FRESH_MS: the same look"
    );
    assert_eq!(cached.apps[0].retrying, 0);
    let fresh = history.status(&world, 10_000 + status::FRESH_MS);
    assert_eq!(fresh.apps[0].retrying, 1);
    assert_eq!(
        fresh.history.last().map(|s| s.at_ms),
        Some(10_000 + status::FRESH_MS)
    );
}

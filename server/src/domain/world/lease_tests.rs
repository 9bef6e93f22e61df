//! The world's side of the lifecycle: error floods, stalled units and lost leases.

use musketeer_protocol::ErrorKind;

use super::test_support::{submit, world_with_hosts};
use super::*;
use crate::domain::lifecycle::UnitStatus;

fn output_of(unit: UnitId) -> Vec<u8> {
    format!("out{}", unit.0).into_bytes()
}

fn success(unit: UnitId) -> Reported {
    Reported::Success {
        output: output_of(unit),
        fuel: 3,
        wall_ms: 1,
        stderr_tail: String::new(),
    }
}

fn task_error(message: String) -> Reported {
    Reported::Error {
        kind: ErrorKind::TaskError,
        message,
        stderr_tail: String::new(),
    }
}

#[test]
fn four_hosts_reporting_errors_for_everything_fail_no_good_unit_at_quorum_2() {
    // Hosts 1-4 flood errors and always fetch first (the fastest hosts); 5-10 are honest.
    let mut world = world_with_hosts(10);
    let batch = submit(&mut world, 100, 2);
    let mut now = 1;
    while world.batch(batch).unwrap().counts.finished() < 100 {
        assert!(now < 1_000, "the batch does not finish");
        for host in (1..=10).map(HostId) {
            for id in world.fetch(host, 8, now) {
                let reported = if host.0 <= 4 {
                    // Each flooder's own words: errors from different hosts do not agree.
                    task_error(format!("refused by host {}", host.0))
                } else {
                    success(id.unit)
                };
                world.report(host, id, reported, now);
            }
        }
        now += 1;
    }
    let batch = world.batch(batch).unwrap();
    assert_eq!(batch.counts.failed, 0, "{:?}", batch.counts);
    for unit in batch.unit_ids() {
        let unit = world.unit(unit).unwrap();
        assert_eq!(unit.canonical_output(), Some(output_of(unit.id).as_slice()));
    }
    for flooder in (1..=4).map(HostId) {
        assert!(world.host(flooder).unwrap().invalid > 0, "{flooder:?}");
    }
}

#[test]
fn leases_a_host_no_longer_holds_are_replaced_at_once() {
    let mut world = world_with_hosts(2);
    submit(&mut world, 3, 1);
    let leased = world.fetch(HostId(1), 3, 10);
    assert_eq!(leased.len(), 3);
    // The host lists only the first: the others were lost (e.g. the answer never arrived).
    assert_eq!(world.reconcile(HostId(1), &leased[..1], 20, 20), 2);
    assert_eq!(world.host(HostId(1)).unwrap().running, 1);
    let reissued = world.fetch(HostId(2), 3, 21);
    assert_eq!(
        reissued.len(),
        2,
        "replacements go out without waiting for the deadline"
    );
    assert_eq!(
        world.stats(21).results.timed_out,
        0,
        "a lost lease is not an error"
    );
    // Listing them all, or leases made after the request was sent, changes nothing.
    assert_eq!(world.reconcile(HostId(2), &reissued, 30, 30), 0);
    assert_eq!(world.reconcile(HostId(2), &[], 21, 30), 0);
    assert_eq!(world.reconcile(HostId(2), &[], 22, 30), 2);
    // A lost lease's late result still counts.
    let (status, _) = world.report(HostId(1), leased[1], success(leased[1].unit), 40);
    assert_eq!(status, ReportStatus::Accepted);
    assert_eq!(world.unit(leased[1].unit).unwrap().state(), UnitState::Done);
}

#[test]
fn reconciled_leases_survive_a_restart_index() {
    let mut world = world_with_hosts(1);
    submit(&mut world, 2, 1);
    world.fetch(HostId(1), 2, 10);
    let mut restored = World::restore(
        world.units.values().map(|u| (**u).clone()),
        world.batches.values().cloned(),
        world.hosts.values().cloned(),
        world.app_versions().cloned(),
        [],
    );
    assert_eq!(restored.reconcile(HostId(1), &[], 20, 20), 2);
    assert_eq!(restored.stats(20).queue_depth, 2);
}

fn one_disagreeing_unit(hosts: u64) -> (World, BatchId) {
    let mut world = world_with_hosts(hosts);
    let batch = submit(&mut world, 1, 2);
    let a = world.fetch(HostId(1), 1, 10)[0];
    let b = world.fetch(HostId(2), 1, 10)[0];
    world.report(HostId(1), a, success(a.unit), 20);
    world.report(HostId(2), b, task_error("no such stock".into()), 20);
    (world, batch)
}

fn status_of(world: &World, batch: BatchId, now_ms: u64) -> BatchStatus {
    let online = world.online_memory_limits(now_ms);
    world.batch_status(world.batch(batch).unwrap(), &online)
}

#[test]
fn a_unit_no_online_host_may_take_is_stalled_and_fails_after_the_timeout() {
    // Two volunteers disagree at quorum 2; the tie-breaker can go to neither.
    let (mut world, batch) = one_disagreeing_unit(2);
    assert_eq!(world.sweep_stalled(100, 1000), 0);
    let status = status_of(&world, batch, 100);
    assert_eq!(status.stalled, 1);
    let reason = status.stalled_reason.unwrap();
    assert!(
        reason.contains("all 2 online host(s)") && reason.contains("1 output(s), 1 task error(s)"),
        "{reason}"
    );
    let unit = world.batch(batch).unwrap().first_unit;
    let online = world.online_memory_limits(100);
    assert_eq!(world.stalled_reason(unit, &online), Some(reason));
    assert_eq!(world.sweep_stalled(1099, 1000), 0, "not yet");
    assert_eq!(world.sweep_stalled(1100, 1000), 1);
    let unit = world.unit(world.batch(batch).unwrap().first_unit).unwrap();
    let UnitStatus::Failed { reason } = &unit.status else {
        panic!("{:?}", unit.status)
    };
    assert!(reason.starts_with("stalled for 1 s"), "{reason}");
    assert_eq!(status_of(&world, batch, 1100).state, BatchState::Finished);
}

#[test]
fn a_new_host_unstalls_a_unit_and_no_host_online_is_not_a_stall() {
    let (mut world, batch) = one_disagreeing_unit(3);
    // Host 3 is online and has not run the unit: nothing is stalled.
    world.sweep_stalled(100, 1000);
    assert_eq!(status_of(&world, batch, 100).stalled, 0);
    // Nobody online (all silent past the window): the batch waits, it does not fail.
    let later = 10 * ONLINE_WINDOW_MS;
    assert_eq!(world.sweep_stalled(later, 0), 0);
    assert_eq!(status_of(&world, batch, later).hosts_able, Some(0));
    // Hosts 1 and 2 come back without host 3: stalled again, from now.
    world.touch_host(HostId(1), None, later);
    world.touch_host(HostId(2), None, later);
    world.sweep_stalled(later, 1000);
    assert_eq!(status_of(&world, batch, later).stalled, 1);
    assert_eq!(world.sweep_stalled(later + 999, 1000), 0);
}

fn share_world(hosts: u64, percent: u32, floor: u64) -> World {
    let mut world = world_with_hosts(hosts);
    world.set_policy(Policy {
        max_batch_share_percent: percent,
        batch_share_floor: floor,
        adaptive_replication: false,
        ..Policy::default()
    });
    world
}

#[test]
fn a_fast_host_takes_no_more_than_its_share_of_a_batch() {
    // 100 units at quorum 2: 200 replicas, a 10% share is 20 of them.
    let mut world = share_world(11, 10, 4);
    let batch = submit(&mut world, 100, 2);
    let first = world.fetch(HostId(1), 15, 0);
    let second = world.fetch(HostId(1), 15, 0);
    assert_eq!(first.len(), 15);
    assert_eq!(second.len(), 15, "the share is checked before a fetch");
    assert!(world.fetch(HostId(1), 15, 0).is_empty());
    assert_eq!(world.batch_share_of(batch, HostId(1)), 30);
    // Others still get work, and the counters survive a restart.
    assert_eq!(world.fetch(HostId(2), 15, 0).len(), 15);
    let restored = super::tests::rebuilt(&world);
    assert_eq!(restored.batch_share_of(batch, HostId(1)), 30);
    assert_eq!(restored.batch_share_of(batch, HostId(2)), 15);
}

#[test]
fn without_a_bound_a_fast_host_takes_a_whole_batch() {
    let mut world = share_world(11, 100, 4);
    submit(&mut world, 100, 2);
    assert_eq!(world.fetch(HostId(1), 100, 0).len(), 100);
}

#[test]
fn a_host_past_its_share_still_gets_units_no_one_else_could_take() {
    // Two hosts, 20 units at quorum 1, a share of 4: once host 2 is offline and host 1 is past
    // its share, host 1 finishes the batch rather than letting it hang.
    let mut world = share_world(2, 10, 4);
    let batch = submit(&mut world, 20, 1);
    assert_eq!(world.fetch(HostId(1), 10, 0).len(), 10);
    assert!(
        world.fetch(HostId(1), 10, 0).is_empty(),
        "host 2 could take them"
    );
    let later = ONLINE_WINDOW_MS + 1;
    assert_eq!(world.fetch(HostId(1), 10, later).len(), 10);
    assert_eq!(world.batch_share_of(batch, HostId(1)), 20);
}

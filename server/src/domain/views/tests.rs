use musketeer_protocol::{ErrorKind, HostPlatform, Replication, UnitState};

use super::*;
use crate::domain::lifecycle::{Params, Reported};
use crate::domain::world::test_support::{app, new_batch};

fn submit(world: &mut World, n: usize, min_quorum: u32, max_error_results: u32) -> BatchId {
    let params = Params::resolve(&Replication {
        min_quorum: Some(min_quorum),
        max_error_results: Some(max_error_results),
        delay_bound_ms: Some(1000),
        ..Default::default()
    })
    .unwrap();
    world.submit(new_batch("demo", n, params, 0), 0).id
}

fn success(output: &str) -> Reported {
    Reported::Success {
        output: output.as_bytes().to_vec(),
        fuel: 5,
        wall_ms: 2,
        stderr_tail: "log line".into(),
    }
}

pub(super) fn error() -> Reported {
    Reported::Error {
        kind: ErrorKind::ClientError,
        message: "cannot write the module cache".into(),
        stderr_tail: "panicked".into(),
    }
}

fn platform(arch: &str) -> HostPlatform {
    HostPlatform {
        arch: arch.into(),
        os: "linux".into(),
        client_version: "0.1.0".into(),
        wasmtime_version: "48.0.8".into(),
        backend: musketeer_protocol::Backend::Cranelift,
        slots: 2,
        max_task_memory: None,
    }
}

/// Two hosts on a quorum-2 batch of 4 units: one agreed, one in disagreement (a third replica
/// is queued), one failed on an error, one still running on host b; plus a quorum-1 batch with
/// one unit done and one still running on host a.
pub(super) fn busy_world() -> (World, BatchId, BatchId) {
    let mut world = World::default();
    world.publish(app());
    let a = world.register_host("a".into(), String::new(), Some(platform("x86_64")), 0);
    let b = world.register_host("b".into(), String::new(), Some(platform("aarch64")), 0);
    let replicated = submit(&mut world, 4, 2, 0);
    let single = submit(&mut world, 2, 1, 3);
    // Fetches take a scattered sample of the queue; order them by unit for the script below.
    let mut from_a = world.fetch(a, 6, 10);
    let mut from_b = world.fetch(b, 6, 10);
    from_a.sort();
    from_b.sort();
    assert_eq!((from_a.len(), from_b.len()), (6, 4));
    // Unit 1: agreement. Unit 2: disagreement. Unit 3: a host-caused error fails it (no errors
    // allowed).
    world.report(a, from_a[0], success("x"), 20);
    world.report(b, from_b[0], success("x"), 20);
    world.report(a, from_a[1], success("y"), 20);
    world.report(b, from_b[1], success("z"), 20);
    world.report(a, from_a[2], error(), 20);
    // The quorum-1 batch (units 5 and 6, both on host a): one finishes, the other stays running.
    let single_units: Vec<_> = from_a.iter().filter(|r| r.unit.0 == 5).collect();
    assert_eq!(single_units.len(), 1, "{from_a:?}");
    world.report(a, *single_units[0], success("1"), 30);
    (world, replicated, single)
}

fn rebuilt(world: &World) -> World {
    let units: Vec<_> = world
        .batches()
        .flat_map(|b| b.unit_ids())
        .filter_map(|id| world.unit(id).cloned())
        .collect();
    World::restore(
        units,
        world.batches().cloned(),
        world.hosts().cloned(),
        world.app_versions().cloned(),
        world.done_per_minute().iter().copied(),
    )
}

#[test]
fn batch_unit_lists_agree_with_the_batch_counters() {
    let (world, replicated, single) = busy_world();
    for id in [replicated, single] {
        let batch = world.batch(id).unwrap();
        let all = batch_units(&world, id, None, None, usize::MAX)
            .unwrap()
            .unwrap();
        assert_eq!(all.total, batch.n_units);
        for (filter, state) in [
            (UnitFilter::Queued, UnitState::Queued),
            (UnitFilter::Running, UnitState::Running),
            (UnitFilter::Done, UnitState::Done),
            (UnitFilter::Failed, UnitState::Failed),
            (UnitFilter::Cancelled, UnitState::Cancelled),
        ] {
            let listed = batch_units(&world, id, Some(filter), None, usize::MAX)
                .unwrap()
                .unwrap();
            let mut counts = batch.counts;
            assert_eq!(listed.total, *counts.get_mut(state), "{state:?} in {id}");
            assert!(listed.units.iter().all(|u| u.state == state));
        }
    }
    let failed = batch_units(&world, replicated, Some(UnitFilter::Failed), None, 10)
        .unwrap()
        .unwrap();
    assert_eq!(failed.total, 1);
    assert!(
        failed.units[0]
            .error
            .as_deref()
            .is_some_and(|e| !e.is_empty()),
        "{failed:?}"
    );
    let limited = batch_units(&world, replicated, None, None, 2)
        .unwrap()
        .unwrap();
    assert_eq!((limited.units.len(), limited.total), (2, 4));
    assert!(
        batch_units(&world, BatchId(99), None, None, 10)
            .unwrap()
            .is_none()
    );
}

#[test]
fn host_pages_agree_with_the_host_counters() {
    let (world, _, _) = busy_world();
    for host in world.hosts() {
        let recent = host_recent(&world, host.id, usize::MAX).unwrap();
        let count = |outcomes: &[ReplicaOutcome]| {
            recent
                .iter()
                .filter(|r| outcomes.contains(&r.outcome))
                .count() as u64
        };
        assert!(recent.iter().all(|r| r.host == Some(host.id)));
        assert_eq!(
            count(&[ReplicaOutcome::Running]),
            host.running,
            "{recent:?}"
        );
        assert_eq!(
            count(&[
                ReplicaOutcome::Valid,
                ReplicaOutcome::Invalid,
                ReplicaOutcome::Pending
            ]),
            host.succeeded
        );
        assert_eq!(count(&[ReplicaOutcome::Invalid]), host.invalid);
        assert_eq!(
            count(&[ReplicaOutcome::Error, ReplicaOutcome::TimedOut]),
            host.failed
        );
        let credit: u64 = recent
            .iter()
            .filter(|r| r.outcome == ReplicaOutcome::Valid)
            .filter_map(|r| r.fuel)
            .sum();
        assert_eq!(credit, host.credit);
        assert!(recent.iter().all(|r| r.stderr_tail.is_none()), "no logs");
        assert!(
            recent
                .windows(2)
                .all(|w| w[0].result_id.unit >= w[1].result_id.unit)
        );
    }
    assert_eq!(host_recent(&world, HostId(1), 2).unwrap().len(), 2);
}

#[test]
fn unit_detail_shows_every_replica_with_errors_and_logs() {
    let (world, replicated, _) = busy_world();
    let first = world.batch(replicated).unwrap().first_unit;
    let done = unit_detail(world.unit(first).unwrap());
    assert_eq!(done.state, UnitState::Done);
    assert_eq!(done.replicas.len(), 2);
    assert!(
        done.replicas
            .iter()
            .all(|r| r.outcome == ReplicaOutcome::Valid)
    );
    assert_eq!(done.replicas[0].stderr_tail.as_deref(), Some("log line"));
    let failed = unit_detail(world.unit(UnitId(first.0 + 2)).unwrap());
    assert_eq!(failed.state, UnitState::Failed);
    let errored = failed
        .replicas
        .iter()
        .find(|r| r.outcome == ReplicaOutcome::Error)
        .unwrap();
    assert_eq!(
        errored.error.as_deref(),
        Some("client-error: cannot write the module cache")
    );
    assert!(failed.error.is_some());
}

#[test]
fn views_and_row_counts_are_the_same_after_reloading_the_stored_rows() {
    let (world, replicated, single) = busy_world();
    let reloaded = rebuilt(&world);
    let rows = row_counts(&world);
    assert_eq!(rows, row_counts(&reloaded));
    assert_eq!(
        rows,
        RowCounts {
            hosts: 2,
            app_versions: 1,
            batches: 2,
            units: 6
        }
    );
    assert_eq!(rows.units, world.stats(30).units.total());
    for id in [replicated, single] {
        assert_eq!(
            batch_units(&world, id, None, None, usize::MAX).unwrap(),
            batch_units(&reloaded, id, None, None, usize::MAX).unwrap()
        );
    }
    for host in world.hosts() {
        assert_eq!(
            host_recent(&world, host.id, 50).unwrap(),
            host_recent(&reloaded, host.id, 50).unwrap()
        );
    }
    // Every counter and the per-minute history are restored.
    assert_eq!(world.stats(30), reloaded.stats(30));
}

#[test]
fn host_pages_and_row_counts_drop_a_deleted_batch_but_keep_the_host_counters() {
    let (mut world, replicated, single) = busy_world();
    let hosts_before: Vec<_> = world.hosts().cloned().collect();
    world.cancel_batch(single, 40);
    world.delete_batch(single).unwrap();
    for host in world.hosts() {
        let recent = host_recent(&world, host.id, usize::MAX).unwrap();
        assert!(
            recent.iter().all(|r| r.batch_id == replicated),
            "{recent:?}"
        );
        let running = recent
            .iter()
            .filter(|r| r.outcome == ReplicaOutcome::Running)
            .count() as u64;
        assert_eq!(running, host.running, "{recent:?}");
        let before = hosts_before.iter().find(|h| h.id == host.id).unwrap();
        assert_eq!(
            (host.succeeded, host.failed, host.invalid, host.credit),
            (
                before.succeeded,
                before.failed,
                before.invalid,
                before.credit
            )
        );
    }
    let rows = row_counts(&world);
    assert_eq!((rows.batches, rows.units), (1, 4));
    assert_eq!(rows, row_counts(&rebuilt(&world)));
    assert!(
        batch_units(&world, single, None, None, 10)
            .unwrap()
            .is_none()
    );
    assert_eq!(world.stats(40), rebuilt(&world).stats(40));
}

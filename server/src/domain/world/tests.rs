use proptest::prelude::*;
use serde_json::json;

use super::test_support::{app, new_batch, world_with_hosts};
use super::*;
use crate::domain::lifecycle::ReplicaState;

fn params(min_quorum: u32) -> Params {
    Params::resolve(&musketeer_protocol::Replication {
        min_quorum: Some(min_quorum),
        delay_bound_ms: Some(1000),
        ..Default::default()
    })
    .unwrap()
}

fn submit(world: &mut World, n: usize, quorum: u32, priority: i32) -> BatchId {
    world
        .submit(new_batch("demo", n, params(quorum), priority), 0)
        .id
}

fn memory_cap(bytes: u64) -> HostAccepts {
    HostAccepts {
        max_task_memory: Some(bytes),
        ..HostAccepts::default()
    }
}

fn success(output: &str) -> Reported {
    Reported::Success {
        output: output.as_bytes().to_vec(),
        fuel: 3,
        wall_ms: 1,
        stderr_tail: String::new(),
    }
}

/// A world rebuilt from its own rows, as after a restart.
pub(super) fn rebuilt(world: &World) -> World {
    World::restore(
        world.units.values().map(|u| (**u).clone()),
        world.batches.values().cloned(),
        world.hosts.values().map(|h| Host {
            running: 0,
            ..h.clone()
        }),
        world.app_versions().cloned(),
        world.done_per_minute.iter().copied(),
    )
    .with_next_ids(world.id_floor)
}

fn assert_same_indexes(a: &World, b: &World) {
    assert_eq!(a.counts, b.counts, "unit counts");
    assert_eq!(a.results, b.results, "result counts");
    assert_eq!(a.unsent_replicas, b.unsent_replicas, "unsent replicas");
    assert_eq!(a.queue, b.queue, "queue");
    assert_eq!(a.deadlines, b.deadlines, "deadlines");
    assert_eq!(a.next_ids(), b.next_ids(), "next ids");
    for (id, batch) in &a.batches {
        assert_eq!(batch.counts, b.batches[id].counts, "batch {id} counts");
    }
    for (id, host) in &a.hosts {
        assert_eq!(host.running, b.hosts[id].running, "host {id} running");
    }
}

#[test]
fn fetch_hands_out_each_replica_once_and_by_priority() {
    let mut world = world_with_hosts(2);
    let low = submit(&mut world, 2, 1, 0);
    let high = submit(&mut world, 2, 1, 5);
    let first = world.fetch(HostId(1), 3, 10);
    assert_eq!(first.len(), 3);
    let high_units: Vec<UnitId> = world.batch(high).unwrap().unit_ids().collect();
    assert!(high_units.contains(&first[0].unit) && high_units.contains(&first[1].unit));
    let second = world.fetch(HostId(2), 3, 10);
    assert_eq!(second.len(), 1, "only one unit left");
    assert!(
        world
            .batch(low)
            .unwrap()
            .unit_ids()
            .any(|u| u == second[0].unit)
    );
    assert!(world.fetch(HostId(2), 3, 10).is_empty());
    assert_eq!(world.stats(10).slots_busy, 4);
}

/// Publishes "big" 1.0.0, signed for 512 MiB per task, and submits `n` units of it.
fn submit_big(world: &mut World, n: usize, priority: i32, now_ms: u64) -> BatchId {
    world.publish(AppVersion {
        app: "big".into(),
        limits: Limits {
            memory_bytes: 512 << 20,
            ..app().limits
        },
        ..app()
    });
    world
        .submit(new_batch("big", n, params(1), priority), now_ms)
        .id
}

#[test]
fn a_host_gets_only_work_within_its_memory_limit() {
    let mut world = world_with_hosts(2);
    let small_units = submit(&mut world, 1, 1, 0);
    // First in the queue, so a host that skips them shows the filter at work.
    let big_units = submit_big(&mut world, 2, 9, 0);
    let unit_of = |world: &World, id: ResultId| world.unit(id.unit).unwrap().batch;
    // Limited to 256 MiB: only the small app's unit, though the big ones come first.
    let limited = world.fetch_within(HostId(1), 5, 0, memory_cap(256 << 20));
    assert_eq!(limited.len(), 1);
    assert_eq!(unit_of(&world, limited[0]), small_units);
    // Exactly the manifest's limit is enough; no limit at all takes anything.
    let exact = world.fetch_within(HostId(2), 1, 0, memory_cap(512 << 20));
    assert_eq!(unit_of(&world, exact[0]), big_units);
    let any = world.fetch_within(HostId(2), 5, 0, HostAccepts::default());
    assert_eq!(any.len(), 1);
    assert_eq!(unit_of(&world, any[0]), big_units);
}

#[test]
fn a_batch_says_how_many_online_hosts_could_take_its_waiting_units() {
    let mut world = world_with_hosts(3);
    let platform = |cap: Option<u64>| musketeer_protocol::HostPlatform {
        arch: "x86_64".into(),
        os: "linux".into(),
        client_version: "0.1.0".into(),
        wasmtime_version: "48.0.8".into(),
        backend: musketeer_protocol::Backend::Cranelift,
        slots: 1,
        max_task_memory: cap,
    };
    let now = 1_000_000;
    world.touch_host(HostId(1), Some(&platform(Some(256 << 20))), now);
    world.touch_host(HostId(2), Some(&platform(Some(512 << 20))), now);
    // Host 3 never made contact since registering at 0: offline.
    let batch = submit_big(&mut world, 1, 0, now);
    let status = |world: &World, at| {
        world.batch_status(world.batch(batch).unwrap(), &world.online_memory_limits(at))
    };
    assert_eq!(status(&world, now).hosts_able, Some(1), "host 2 only");
    assert_eq!(
        status(&world, now + ONLINE_WINDOW_MS).hosts_able,
        Some(0),
        "nobody online"
    );
    // Nothing waits once the unit is out: no count.
    assert_eq!(
        world
            .fetch_within(HostId(2), 1, now, memory_cap(512 << 20))
            .len(),
        1
    );
    assert_eq!(status(&world, now).hosts_able, None);
}

#[test]
fn quorum_two_needs_two_hosts() {
    let mut world = world_with_hosts(2);
    submit(&mut world, 1, 2, 0);
    let a = world.fetch(HostId(1), 5, 0);
    assert_eq!(a.len(), 1, "a host gets one replica of a unit");
    let b = world.fetch(HostId(2), 5, 0);
    assert_eq!(b.len(), 1);
    world.report(HostId(1), a[0], success("x"), 1);
    world.report(HostId(2), b[0], success("x"), 1);
    let stats = world.stats(1);
    assert_eq!((stats.units.done, stats.results.valid), (1, 2));
    assert_eq!(world.host(HostId(1)).unwrap().credit, 3);
}

#[test]
fn successes_beyond_the_manifest_limits_count_as_errors() {
    let mut world = world_with_hosts(2);
    submit(&mut world, 2, 1, 0);
    let leased = world.fetch(HostId(1), 2, 0);
    assert_eq!(leased.len(), 2);
    let oversized = success("seventeen bytes!!");
    let greedy = Reported::Success {
        output: b"x".to_vec(),
        fuel: 1001,
        wall_ms: 1,
        stderr_tail: String::new(),
    };
    for (id, report, kind) in [
        (leased[0], oversized, "client-error"),
        (leased[1], greedy, "client-error"),
    ] {
        assert_eq!(
            world.report(HostId(1), id, report, 1).0,
            ReportStatus::Accepted
        );
        let replica = &world.unit(id.unit).unwrap().replicas()[id.replica as usize];
        let ReplicaState::Error { kind: got, message } = &replica.state else {
            panic!("{replica:?}")
        };
        assert_eq!(crate::domain::lifecycle::kind_name(*got), kind, "{message}");
        assert!(message.contains("exceeds the app's limit"), "{message}");
    }
    let host = world.host(HostId(1)).unwrap();
    assert_eq!((host.succeeded, host.failed, host.credit), (0, 2, 0));
    // Within the limits, the same host's results count.
    let again = world.fetch(HostId(2), 2, 2);
    world.report(HostId(2), again[0], success("sixteen bytes!!!"), 3);
    assert_eq!(world.host(HostId(2)).unwrap().credit, 3);
}

#[test]
fn reported_guest_text_is_stored_escaped() {
    let mut world = world_with_hosts(1);
    submit(&mut world, 1, 1, 0);
    let leased = world.fetch(HostId(1), 1, 0);
    let forged = Reported::Error {
        kind: musketeer_protocol::ErrorKind::TaskError,
        message: "no\n[server] unit accepted\u{1b}[2J".into(),
        stderr_tail: "line one\nline two\r\u{202e}".into(),
    };
    world.report(HostId(1), leased[0], forged, 1);
    let replica = &world.unit(leased[0].unit).unwrap().replicas()[0];
    let ReplicaState::Error { message, .. } = &replica.state else {
        panic!("{replica:?}")
    };
    assert_eq!(message, "no\\n[server] unit accepted\\x1b[2J");
}

#[test]
fn cancelled_batch_units_are_reported_cancelled_to_their_hosts() {
    let mut world = world_with_hosts(1);
    let batch = submit(&mut world, 3, 1, 0);
    let leased = world.fetch(HostId(1), 1, 0);
    world.cancel_batch(batch, 1);
    assert_eq!(world.cancelled_among(HostId(1), &leased), leased);
    assert!(world.fetch(HostId(1), 5, 2).is_empty());
    assert_eq!(world.batch(batch).unwrap().status().counts.cancelled, 3);
    assert_eq!(
        world.batch(batch).unwrap().status().state,
        musketeer_protocol::BatchState::Cancelled
    );
}

#[test]
fn expiry_requeues_and_reports_for_unknown_results_are_refused() {
    let mut world = world_with_hosts(2);
    submit(&mut world, 1, 1, 0);
    let leased = world.fetch(HostId(1), 1, 0);
    assert!(!world.expire(999));
    assert!(world.expire(1000));
    let again = world.fetch(HostId(2), 1, 1000);
    assert_eq!(again.len(), 1);
    assert_ne!(again[0], leased[0]);
    let bogus = ResultId {
        unit: UnitId(99),
        replica: 0,
    };
    assert_eq!(
        world.report(HostId(1), bogus, success("x"), 0).0,
        ReportStatus::Refused
    );
    assert_eq!(
        world.report(HostId(1), again[0], success("x"), 0).0,
        ReportStatus::Refused
    );
}

#[test]
fn a_restored_history_shows_only_the_last_hour_and_is_stored_again_when_it_changes() {
    let now = 1_700_000_000_000;
    let minute = now / 60_000;
    // Stored before the server was down for a while: two minutes are now more than an hour old.
    let stored = [
        (minute - 120, 9),
        (minute - 60, 8),
        (minute - 59, 7),
        (minute, 2),
    ];
    let mut world = World::restore([], [], [], [app()], stored);
    assert!(
        !world.take_dirty().done_per_minute,
        "restoring changes nothing"
    );
    let chart = world.stats(now).done_per_minute;
    assert_eq!(chart.len(), MINUTES_KEPT);
    assert_eq!((chart[0], chart[MINUTES_KEPT - 1]), (7, 2));
    assert_eq!(chart.iter().sum::<u64>(), 9, "{chart:?}");

    // A unit done in the next minute prunes what left the hour and marks the history dirty.
    let host = world.register_host("h".into(), String::new(), None, now);
    submit(&mut world, 1, 1, 0);
    let later = now + 60_000;
    let leased = world.fetch(host, 1, later);
    world.take_dirty();
    assert_eq!(
        world.report(host, leased[0], success("x"), later).0,
        ReportStatus::Accepted
    );
    assert!(world.take_dirty().done_per_minute);
    let mut history = world.done_per_minute().to_vec();
    history.sort_unstable();
    assert_eq!(history, [(minute, 2), (minute + 1, 1)]);
    let chart = world.stats(later).done_per_minute;
    assert_eq!(chart[MINUTES_KEPT - 2..], [2, 1]);
    assert_eq!(chart.iter().sum::<u64>(), 3);
    // A world with nothing done has nothing to store.
    let mut idle = world_with_hosts(1);
    submit(&mut idle, 1, 1, 0);
    idle.fetch(HostId(1), 1, 0);
    assert!(!idle.take_dirty().done_per_minute);
}

#[derive(Debug, Clone)]
enum Op {
    Submit {
        n: usize,
        quorum: u32,
        priority: i32,
    },
    Fetch {
        host: u64,
        n: usize,
    },
    Report {
        host: u64,
        pick: usize,
        outcome: u8,
    },
    Expire(u64),
    Cancel(u64),
    Delete(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (1..5usize, 1..3u32, -1..2i32).prop_map(|(n, quorum, priority)| Op::Submit { n, quorum, priority }),
        3 => (1..4u64, 1..4usize).prop_map(|(host, n)| Op::Fetch { host, n }),
        4 => (1..4u64, any::<usize>(), 0..5u8).prop_map(|(host, pick, outcome)| Op::Report { host, pick, outcome }),
        1 => (0..1500u64).prop_map(Op::Expire),
        1 => (1..4u64).prop_map(Op::Cancel),
        1 => (1..5u64).prop_map(Op::Delete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The incrementally kept indexes and counters always equal those rebuilt from the stored
    /// rows, so the dashboard's counts agree with the store, before and after a restart.
    #[test]
    fn indexes_match_a_rebuild(ops in proptest::collection::vec(op(), 1..40)) {
        let mut world = world_with_hosts(3);
        let mut now = 0;
        for op in ops {
            match op {
                Op::Submit { n, quorum, priority } => { submit(&mut world, n, quorum, priority); }
                Op::Fetch { host, n } => { world.fetch(HostId(host), n, now); }
                Op::Report { host, pick, outcome } => {
                    let leased: Vec<ResultId> = world.units.values().flat_map(|u| {
                        u.replicas().iter().enumerate()
                            .filter(|(_, r)| r.host == Some(HostId(host)) && matches!(r.state, ReplicaState::InProgress | ReplicaState::TimedOut))
                            .map(|(i, _)| ResultId { unit: u.id, replica: i as u32 })
                            .collect::<Vec<_>>()
                    }).collect();
                    if !leased.is_empty() {
                        let reported = match outcome {
                            0 | 1 => success("good"),
                            2 => success("bad"),
                            3 => Reported::Error { kind: musketeer_protocol::ErrorKind::Trap, message: "x".into(), stderr_tail: String::new() },
                            _ => Reported::Returned,
                        };
                        world.report(HostId(host), leased[pick % leased.len()], reported, now);
                    }
                }
                Op::Expire(dt) => { now += dt; world.expire(now); }
                Op::Cancel(batch) => { world.cancel_batch(BatchId(batch), now); }
                Op::Delete(batch) => {
                    let batch_row = world.batch(BatchId(batch));
                    let unfinished = batch_row.map(|b| b.n_units - b.counts.finished());
                    let deleted = world.delete_batch(BatchId(batch));
                    prop_assert_eq!(deleted.is_ok(), unfinished == Some(0), "{:?}", deleted);
                }
            }
            assert_same_indexes(&world, &rebuilt(&world));
            let total: u64 = world.batches.values().map(|b| b.n_units).sum();
            prop_assert_eq!(world.stats(now).units.total(), total);
        }
    }
}

/// A world with a finished quorum-1 batch of 2 units (one done, one failed on its only allowed
/// error, with a replica beyond the quorum still running on host 3) and a running batch.
fn finished_and_running() -> (World, BatchId, BatchId) {
    let mut world = world_with_hosts(3);
    let new = NewBatch {
        owner: TokenId(1),
        app: "demo".into(),
        version: "1.0.0".parse().unwrap(),
        inputs: vec![json!("a").into(), json!("b").into()],
        params: Params::resolve(&musketeer_protocol::Replication {
            target_nresults: Some(2),
            max_error_results: Some(0),
            delay_bound_ms: Some(1000),
            ..Default::default()
        })
        .unwrap(),
        priority: 0,
        label: None,
    };
    let finished = world.submit(new, 0).id;
    let first = world.fetch(HostId(1), 2, 0);
    let second = world.fetch(HostId(2), 1, 0);
    assert_eq!((first.len(), second.len()), (2, 1));
    world.report(HostId(1), first[0], success("x"), 1);
    world.report(
        HostId(1),
        first[1],
        Reported::Error {
            kind: musketeer_protocol::ErrorKind::Trap,
            message: "x".into(),
            stderr_tail: String::new(),
        },
        1,
    );
    let running = submit(&mut world, 2, 1, 5);
    assert_eq!(world.fetch(HostId(3), 1, 2).len(), 1);
    let status = world.batch(finished).unwrap().status();
    assert_eq!(status.state, musketeer_protocol::BatchState::Finished);
    assert_eq!((status.counts.done, status.counts.failed), (1, 1));
    assert_eq!(
        world.host(HostId(2)).unwrap().running,
        1,
        "beyond the quorum"
    );
    (world, finished, running)
}

#[test]
fn deleting_a_finished_batch_leaves_the_world_as_if_it_never_was_but_credit_stays() {
    let (mut world, finished, running) = finished_and_running();
    let units: Vec<UnitId> = world.batch(finished).unwrap().unit_ids().collect();
    let leased_beyond_quorum: Vec<ResultId> = units
        .iter()
        .flat_map(|&u| {
            world
                .unit(u)
                .unwrap()
                .leases()
                .map(move |(replica, _, _)| ResultId { unit: u, replica })
        })
        .collect();
    assert_eq!(leased_beyond_quorum.len(), 1);
    let credit_before = world.host(HostId(1)).unwrap().clone();
    let history = world.done_per_minute().to_vec();
    let next = world.next_ids();
    world.take_dirty();

    let deleted = world.delete_batch(finished).unwrap();
    assert_eq!(
        deleted,
        DeletedBatch {
            id: finished,
            first_unit: units[0],
            n_units: 2
        }
    );
    assert!(world.batch(finished).is_none());
    assert!(units.iter().all(|&u| world.unit(u).is_none()));
    // Every index and counter equals a world rebuilt from the remaining rows.
    assert_same_indexes(&world, &rebuilt(&world));
    let stats = world.stats(2);
    assert_eq!(stats.units.total(), 2, "only the running batch's units");
    assert_eq!((stats.units.done, stats.units.failed), (0, 0));
    assert_eq!((stats.results.valid, stats.results.errors), (0, 0));
    assert_eq!(stats.slots_busy, 1, "the running batch's lease only");
    assert_eq!(world.host(HostId(2)).unwrap().running, 0);
    // History and earned credit stay.
    assert_eq!(world.done_per_minute(), history.as_slice());
    assert_eq!(world.host(HostId(1)).unwrap(), &credit_before);
    // The host still running a replica is told to abort it; its report is refused.
    assert_eq!(
        world.cancelled_among(HostId(2), &leased_beyond_quorum),
        leased_beyond_quorum
    );
    assert_eq!(
        world
            .report(HostId(2), leased_beyond_quorum[0], success("x"), 3)
            .0,
        ReportStatus::Refused
    );
    // The store is told to delete the rows and nothing else about them.
    let dirty = world.take_dirty();
    assert_eq!(dirty.deleted, vec![deleted]);
    assert!(
        dirty.batches.is_empty() && dirty.units.is_empty(),
        "{dirty:?}"
    );
    // Not the newest batch: the next ids are what they were.
    assert_eq!(world.next_ids(), next);
    assert!(world.batch(running).is_some());
}

#[test]
fn running_batches_must_be_cancelled_first_and_deleted_ids_are_never_reused() {
    let (mut world, finished, running) = finished_and_running();
    let next = world.next_ids();
    assert_eq!(
        next,
        NextIds {
            batch: BatchId(3),
            unit: UnitId(5)
        }
    );
    let refused = world.delete_batch(running).unwrap_err();
    assert_eq!(
        refused,
        DeleteError::NotFinished {
            id: running,
            unfinished: 2
        }
    );
    assert!(
        refused
            .to_string()
            .contains("cancel it first or wait for it to finish"),
        "{refused}"
    );
    assert_eq!(
        world.delete_batch(BatchId(9)),
        Err(DeleteError::NotFound(BatchId(9)))
    );
    assert!(world.batch(running).is_some() && world.take_dirty().deleted.is_empty());

    // Cancelled, it can go, with the newest ids: a fresh rebuild would hand them out again
    // without the stored floor.
    world.cancel_batch(running, 3);
    world.delete_batch(running).unwrap();
    world.delete_batch(finished).unwrap();
    assert_eq!(world.stats(3).units.total(), 0);
    assert_eq!(world.stats(3).slots_busy, 0);
    assert!(!world.has_queued_work());
    assert_same_indexes(&world, &rebuilt(&world));
    assert_eq!(world.next_ids(), next);
    let mut restarted = rebuilt(&world);
    for w in [&mut world, &mut restarted] {
        let again = submit(w, 1, 1, 0);
        assert_eq!(again, next.batch);
        assert_eq!(w.batch(again).unwrap().first_unit, next.unit);
    }
}

use super::super::World;
use super::super::test_support::{app, submit};
use crate::domain::lifecycle::{Reported, UnitStatus};
use crate::domain::reputation::{Policy, Refusal};
use musketeer_protocol::{HostId, ResultId, TokenId, UnitId, UnitState};

fn world(hosts: u64, policy: Policy) -> World {
    let mut world = World::default();
    world.set_policy(policy);
    world.publish(app());
    for i in 0..hosts {
        let id = world.register_host(format!("h{i}"), String::new(), None, 0);
        // Every host on its own network unless a test says otherwise.
        world.set_network(id, Some(format!("net{}", id.0)));
    }
    world
}

fn no_adaptive() -> Policy {
    Policy {
        adaptive_replication: false,
        ..Policy::default()
    }
}

fn output(text: &str, fuel: u64) -> Reported {
    Reported::Success {
        output: text.as_bytes().to_vec(),
        fuel,
        wall_ms: 1,
        stderr_tail: String::new(),
    }
}

/// Fetch one replica of `unit` for `host` (the only unit with work, in these tests).
fn take(world: &mut World, host: u64) -> ResultId {
    let leased = world.fetch(HostId(host), 1, 1);
    assert_eq!(leased.len(), 1, "host {host} got no work");
    leased[0]
}

fn canonical(world: &World, unit: UnitId) -> Option<String> {
    world
        .unit(unit)
        .and_then(|u| u.canonical_output())
        .map(|o| String::from_utf8_lossy(o).into_owned())
}

#[test]
fn replicas_of_one_unit_never_go_to_one_network_or_one_owner() {
    let mut world = world(4, no_adaptive());
    world.set_network(HostId(2), Some("net1".into()));
    world.set_owner(HostId(1), Some(TokenId(9)));
    world.set_owner(HostId(3), Some(TokenId(9)));
    submit(&mut world, 1, 2);
    take(&mut world, 1);
    assert!(world.fetch(HostId(2), 1, 1).is_empty(), "same network");
    assert!(world.fetch(HostId(3), 1, 1).is_empty(), "same owner");
    take(&mut world, 4);
}

#[test]
fn a_caught_colluder_is_quarantined_and_the_results_it_agreed_with_are_reverified() {
    let mut world = world(5, no_adaptive());
    submit(&mut world, 2, 2);
    // Hosts 1 and 2 collude on unit 1: a wrong canonical result, for now.
    let a = take(&mut world, 1);
    let b = take(&mut world, 2);
    world.report(HostId(1), a, output("forged", 900), 2);
    world.report(HostId(2), b, output("forged", 900), 2);
    assert_eq!(canonical(&world, a.unit).as_deref(), Some("forged"));
    // On unit 2 host 1 meets honest hosts and loses.
    let c = take(&mut world, 1);
    let d = take(&mut world, 3);
    world.report(HostId(1), c, output("forged", 900), 3);
    world.report(HostId(3), d, output("true", 10), 3);
    // While the dispute is open, its hosts wait, so a fast liar cannot run ahead.
    assert_eq!(
        world.fetch_refusal(HostId(1), 3),
        Some(Refusal::Disputed { unit: c.unit })
    );
    assert!(world.fetch(HostId(3), 1, 3).is_empty());
    // A disputed unit needs a margin: the quorum plus one vote per dissenting result.
    let e = take(&mut world, 4);
    world.report(HostId(4), e, output("true", 10), 4);
    assert_eq!(canonical(&world, c.unit), None);
    let e = take(&mut world, 5);
    world.report(HostId(5), e, output("true", 10), 4);
    assert_eq!(canonical(&world, c.unit).as_deref(), Some("true"));
    let refusal = world.fetch_refusal(HostId(1), 5);
    assert!(
        matches!(&refusal, Some(Refusal::Quarantined(r)) if r.contains("unit 2")),
        "{refusal:?}"
    );
    assert!(world.fetch(HostId(1), 5, 5).is_empty());
    assert_eq!(world.host(HostId(1)).unwrap().credit, 0, "credit forfeit");
    // Unit 1 was reopened without host 1's vote; honest hosts settle it and catch host 2.
    assert_eq!(world.unit(a.unit).unwrap().state(), UnitState::Queued);
    let f = take(&mut world, 3);
    world.report(HostId(3), f, output("true", 10), 6);
    let g = take(&mut world, 4);
    world.report(HostId(4), g, output("true", 10), 7);
    let g = take(&mut world, 5);
    world.report(HostId(5), g, output("true", 10), 7);
    assert_eq!(canonical(&world, a.unit).as_deref(), Some("true"));
    assert!(matches!(
        world.fetch_refusal(HostId(2), 8),
        Some(Refusal::Quarantined(_))
    ));
    assert_eq!(world.host(HostId(2)).unwrap().credit, 0);
    assert!(world.host(HostId(3)).unwrap().credit > 0);
    // An honest host framed by colluders would be cleared the same way: its verdict changes.
    let summary = world.host_summary(world.host(HostId(1)).unwrap(), 8);
    assert!(summary.quarantine.is_some() && !summary.trusted);
}

#[test]
fn trusted_hosts_run_units_alone_but_spot_checks_and_a_lie_reopen_their_work() {
    let policy = Policy {
        trust_after: 3,
        spot_checks_per_mille: 200,
        ..Policy::default()
    };
    let mut world = world(4, policy);
    // Hosts 1 and 2 earn trust together, on one-unit batches.
    for _ in 0..3 {
        submit(&mut world, 1, 2);
        let a = take(&mut world, 1);
        let b = take(&mut world, 2);
        world.report(HostId(1), a, output("ok", 10), 2);
        world.report(HostId(2), b, output("ok", 10), 2);
    }
    let batch = submit(&mut world, 60, 2);
    assert!(
        world
            .host_summary(world.host(HostId(1)).unwrap(), 2)
            .trusted
    );
    // Host 1 now mostly runs units alone; spot checks leave a replica for others.
    let leased = world.fetch(HostId(1), 20, 3);
    assert_eq!(leased.len(), 20);
    let alone: Vec<UnitId> = leased
        .iter()
        .map(|r| r.unit)
        .filter(|u| world.unit(*u).unwrap().replicas().len() == 1)
        .collect();
    assert!(
        (10..20).contains(&alone.len()),
        "{} of 20 alone",
        alone.len()
    );
    // It lies on all of them; the lone lies become canonical until a spot check catches it.
    for id in &leased {
        world.report(HostId(1), *id, output("lie", 10), 4);
    }
    assert_eq!(canonical(&world, alone[0]).as_deref(), Some("lie"));
    let checked = leased
        .iter()
        .find(|r| !alone.contains(&r.unit))
        .copied()
        .unwrap();
    for host in [2, 3, 4] {
        let id = world
            .fetch(HostId(host), 60, 5)
            .into_iter()
            .find(|r| r.unit == checked.unit)
            .unwrap();
        world.report(HostId(host), id, output("ok", 10), 6);
    }
    assert_eq!(canonical(&world, checked.unit).as_deref(), Some("ok"));
    assert!(world.fetch_refusal(HostId(1), 7).is_some());
    for unit in &alone {
        let u = world.unit(*unit).unwrap();
        assert_eq!(u.status, UnitStatus::Active, "unit {unit} reopened");
        assert_eq!(
            u.params(),
            world.batch(batch).unwrap().params,
            "full quorum again"
        );
    }
}

#[test]
fn a_lone_result_earns_at_most_the_apps_median_credit() {
    let mut world = world(3, no_adaptive());
    submit(&mut world, 6, 1);
    for _ in 0..5 {
        let id = take(&mut world, 1);
        world.report(HostId(1), id, output("ok", 100), 2);
    }
    let greedy = take(&mut world, 2);
    world.report(HostId(2), greedy, output("ok", 1000), 3);
    assert_eq!(world.host(HostId(1)).unwrap().credit, 500);
    assert_eq!(world.host(HostId(2)).unwrap().credit, 100);
}

#[test]
fn errors_shrink_a_hosts_daily_quota_and_fetch_says_why() {
    let policy = Policy {
        max_daily_quota: 8,
        ..no_adaptive()
    };
    let mut world = world(1, policy);
    submit(&mut world, 100, 1);
    let leased = world.fetch(HostId(1), 64, 1);
    assert_eq!(leased.len(), 8, "a new host gets the whole quota");
    for id in leased {
        let error = Reported::Error {
            kind: musketeer_protocol::ErrorKind::Trap,
            message: "flood".into(),
            stderr_tail: String::new(),
        };
        world.report(HostId(1), id, error, 2);
    }
    assert!(world.fetch(HostId(1), 64, 3).is_empty());
    assert_eq!(
        world.fetch_refusal(HostId(1), 3),
        Some(Refusal::OverQuota { quota: 1 })
    );
}

#[test]
fn a_host_whose_results_validate_finishes_a_batch_larger_than_its_daily_quota() {
    let policy = Policy {
        max_daily_quota: 8,
        ..no_adaptive()
    };
    let mut world = world(1, policy);
    let batch = submit(&mut world, 100, 1);
    let mut done = 0;
    while done < 100 {
        let leased = world.fetch(HostId(1), 64, 2);
        assert!(!leased.is_empty(), "stopped after {done} results");
        for id in leased {
            world.report(HostId(1), id, output("ok", 10), 3);
            done += 1;
        }
    }
    let first = world.batch(batch).expect("the batch").first_unit.0;
    for unit in first..first + 100 {
        assert_eq!(canonical(&world, UnitId(unit)).as_deref(), Some("ok"));
    }
}

#[test]
fn a_ban_reissues_the_hosts_leases_and_an_unban_lets_it_work_again() {
    let mut world = world(2, no_adaptive());
    submit(&mut world, 1, 1);
    let leased = take(&mut world, 1);
    world.ban(HostId(1), "spam".into(), 2).unwrap();
    assert_eq!(
        world.fetch_refusal(HostId(1), 2),
        Some(Refusal::Banned("spam".into()))
    );
    assert_eq!(world.cancelled_among(HostId(1), &[leased]), vec![leased]);
    take(&mut world, 2);
    assert!(world.ban(HostId(9), "x".into(), 2).is_err());
    world.unban(HostId(1)).unwrap();
    assert_eq!(world.fetch_refusal(HostId(1), 3), None);
}

#[test]
fn a_dispute_no_further_host_can_join_is_settled_by_plurality() {
    let mut world = world(3, no_adaptive());
    submit(&mut world, 1, 2);
    let liar = take(&mut world, 1);
    let a = take(&mut world, 2);
    world.report(HostId(1), liar, output("lie", 10), 2);
    world.report(HostId(2), a, output("ok", 10), 2);
    let b = take(&mut world, 3);
    world.report(HostId(3), b, output("ok", 10), 3);
    assert_eq!(
        canonical(&world, a.unit),
        None,
        "the margin wants a fourth host"
    );
    // Host 4 is online: the unit waits for it.
    let late = world.register_host("late".into(), String::new(), None, 3);
    world.set_network(late, Some("net-late".into()));
    assert_eq!(world.settle_disputes(4), 0);
    // Once no online host can join (hosts 1-3 still poll, host 4 left), plurality decides,
    // as in BOINC.
    let later = 4 + super::super::ONLINE_WINDOW_MS;
    for host in 1..=3 {
        world.touch_host(HostId(host), None, later);
    }
    assert_eq!(world.settle_disputes(later), 1);
    assert_eq!(canonical(&world, a.unit).as_deref(), Some("ok"));
    assert!(matches!(
        world.fetch_refusal(HostId(1), 5),
        Some(Refusal::Quarantined(_))
    ));
}

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn params(min_quorum: u32, target: u32, max_errors: u32, max_total: u32) -> Params {
    Params {
        min_quorum,
        target_nresults: target,
        max_error_results: max_errors,
        max_total_results: max_total,
        delay_bound_ms: 1000,
    }
}

fn unit(p: Params) -> Unit {
    Unit::new(UnitId(1), BatchId(1), p, serde_json::json!({"n": 1}))
}

fn success(output: &[u8]) -> Reported {
    Reported::Success {
        output: output.to_vec(),
        fuel: 10,
        wall_ms: 1,
        stderr_tail: String::new(),
    }
}

fn error() -> Reported {
    Reported::Error {
        kind: ErrorKind::Trap,
        message: "unreachable".into(),
        stderr_tail: String::new(),
    }
}

fn task_error(message: &str) -> Reported {
    Reported::Error {
        kind: ErrorKind::TaskError,
        message: message.into(),
        stderr_tail: String::new(),
    }
}

fn client_error(message: &str) -> Reported {
    Reported::Error {
        kind: ErrorKind::ClientError,
        message: message.into(),
        stderr_tail: String::new(),
    }
}

fn failure_reason(u: &Unit) -> &str {
    match &u.status {
        UnitStatus::Failed { reason } => reason,
        other => panic!("not failed: {other:?}"),
    }
}

const H1: HostId = HostId(1);
const H2: HostId = HostId(2);
const H3: HostId = HostId(3);

#[test]
fn quorum_one_success_is_canonical_and_credited() {
    let mut u = unit(params(1, 1, 3, 6));
    let idx = u.assign(H1, 0).unwrap();
    assert_eq!(u.state(), UnitState::Running);
    let effect = u.report(idx, H1, success(b"42"));
    assert_eq!(
        effect,
        ReportEffect::Accepted(vec![Event::Validated { host: H1, fuel: 10 }])
    );
    assert_eq!(u.state(), UnitState::Done);
    assert_eq!(u.canonical_output(), Some(&b"42"[..]));
}

#[test]
fn repeated_report_changes_nothing() {
    let mut u = unit(params(1, 1, 3, 6));
    let idx = u.assign(H1, 0).unwrap();
    u.report(idx, H1, success(b"a"));
    let before = u.clone();
    assert_eq!(u.report(idx, H1, success(b"b")), ReportEffect::Duplicate);
    assert_eq!(u, before);
}

#[test]
fn report_from_another_host_is_refused() {
    let mut u = unit(params(1, 1, 3, 6));
    let idx = u.assign(H1, 0).unwrap();
    assert!(matches!(
        u.report(idx, H2, success(b"a")),
        ReportEffect::Refused(_)
    ));
    assert!(matches!(
        u.report(7, H1, success(b"a")),
        ReportEffect::Refused(_)
    ));
    assert_eq!(u.state(), UnitState::Running);
}

#[test]
fn host_never_gets_two_replicas_of_a_unit() {
    let mut u = unit(params(2, 3, 3, 6));
    assert!(u.assign(H1, 0).is_some());
    assert_eq!(u.assign(H1, 0), None);
    assert!(u.assign(H2, 0).is_some());
}

#[test]
fn disagreement_needs_a_margin_and_marks_the_minority_invalid() {
    let mut u = unit(params(2, 2, 3, 6));
    let a = u.assign(H1, 0).unwrap();
    let b = u.assign(H2, 0).unwrap();
    u.report(a, H1, success(b"right"));
    u.report(b, H2, success(b"wrong"));
    assert_eq!(
        u.state(),
        UnitState::Queued,
        "a third replica waits for a host"
    );
    let c = u.assign(H3, 0).unwrap();
    u.report(c, H3, success(b"right"));
    // Two against one is not enough: the quorum plus one vote per dissenting result.
    assert_eq!(u.canonical_output(), None);
    assert!(u.is_disputed());
    let h4 = HostId(4);
    let d = u.assign(h4, 0).unwrap();
    let ReportEffect::Accepted(events) = u.report(d, h4, success(b"right")) else {
        panic!()
    };
    assert_eq!(u.canonical_output(), Some(&b"right"[..]));
    assert!(events.contains(&Event::Invalidated { host: H2 }));
    assert!(events.contains(&Event::Validated { host: H1, fuel: 10 }));
    assert!(events.contains(&Event::Validated { host: H3, fuel: 10 }));
}

fn success_with_fuel(output: &[u8], fuel: u64) -> Reported {
    Reported::Success {
        output: output.to_vec(),
        fuel,
        wall_ms: 1,
        stderr_tail: String::new(),
    }
}

#[test]
fn every_valid_result_is_credited_the_smallest_agreeing_fuel() {
    let mut u = unit(params(2, 3, 3, 6));
    let (a, b, c) = (
        u.assign(H1, 0).unwrap(),
        u.assign(H2, 0).unwrap(),
        u.assign(H3, 0).unwrap(),
    );
    // H1 returns the right bytes but claims a thousand times the fuel.
    u.report(a, H1, success_with_fuel(b"right", 10_000));
    let ReportEffect::Accepted(events) = u.report(b, H2, success_with_fuel(b"right", 10)) else {
        panic!()
    };
    assert!(events.contains(&Event::Validated { host: H1, fuel: 10 }));
    assert!(events.contains(&Event::Validated { host: H2, fuel: 10 }));
    // A late agreeing result gets no more than what was granted either.
    let ReportEffect::Accepted(events) = u.report(c, H3, success_with_fuel(b"right", 99)) else {
        panic!()
    };
    assert_eq!(events, vec![Event::Validated { host: H3, fuel: 10 }]);
}

#[test]
fn too_many_host_errors_fail_the_unit_with_the_last_error() {
    let mut u = unit(params(1, 1, 1, 6));
    for host in [H1, H2] {
        let idx = u.assign(host, 0).unwrap();
        u.report(idx, host, client_error("disk full"));
    }
    let UnitStatus::Failed { reason } = &u.status else {
        panic!("{:?}", u.status)
    };
    assert!(
        reason.contains("too many errors") && reason.contains("client-error: disk full"),
        "{reason}"
    );
    assert!(!u.has_unsent());
}

#[test]
fn identical_task_errors_from_a_quorum_fail_the_unit_with_the_tasks_words() {
    // Two volunteers, quorum 2: the deterministic error must not wait for a third host.
    let mut u = unit(params(2, 2, 3, 7));
    let (a, b) = (u.assign(H1, 0).unwrap(), u.assign(H2, 0).unwrap());
    u.report(a, H1, task_error("from 9 is greater than to 3"));
    assert!(u.is_active(), "one host's error alone decides nothing");
    u.report(b, H2, task_error("from 9 is greater than to 3"));
    let reason = failure_reason(&u);
    assert!(
        reason.contains("task-error: from 9 is greater than to 3") && reason.contains("2 hosts"),
        "{reason}"
    );
    assert!(!u.has_unsent());
}

#[test]
fn different_task_errors_do_not_agree() {
    let mut u = unit(params(2, 2, 0, 7));
    let (a, b) = (u.assign(H1, 0).unwrap(), u.assign(H2, 0).unwrap());
    u.report(a, H1, task_error("bad input"));
    u.report(b, H2, task_error("something else"));
    assert!(u.is_active(), "{:?}", u.status);
    assert!(u.has_unsent(), "a third host may break the tie");
}

#[test]
fn a_task_error_against_a_success_quorum_is_invalid() {
    let mut u = unit(params(2, 2, 0, 7));
    let (a, b) = (u.assign(H1, 0).unwrap(), u.assign(H2, 0).unwrap());
    u.report(a, H1, task_error("forged failure"));
    u.report(b, H2, success(b"right"));
    let c = u.assign(H3, 0).unwrap();
    let ReportEffect::Accepted(events) = u.report(c, H3, success(b"right")) else {
        panic!()
    };
    assert_eq!(u.canonical_output(), Some(&b"right"[..]));
    assert!(
        events.contains(&Event::Invalidated { host: H1 }),
        "{events:?}"
    );
    // A task error reported after the unit is done is judged the same way.
    let mut v = unit(params(1, 2, 0, 7));
    let (a, b) = (v.assign(H1, 0).unwrap(), v.assign(H2, 0).unwrap());
    v.report(a, H1, success(b"right"));
    assert_eq!(
        v.report(b, H2, task_error("forged")),
        ReportEffect::Accepted(vec![Event::Invalidated { host: H2 }])
    );
}

#[test]
fn a_success_against_an_error_quorum_is_invalid() {
    let mut u = unit(params(2, 3, 3, 7));
    let (a, b, c) = (
        u.assign(H1, 0).unwrap(),
        u.assign(H2, 0).unwrap(),
        u.assign(H3, 0).unwrap(),
    );
    u.report(a, H1, success(b"forged"));
    u.report(b, H2, task_error("trap"));
    u.report(c, H3, task_error("trap"));
    // An output dissents: the errors need a margin (see `votes_needed`).
    assert!(u.is_active());
    let h4 = HostId(4);
    let d = u.assign(h4, 0).unwrap();
    let ReportEffect::Accepted(events) = u.report(d, h4, task_error("trap")) else {
        panic!()
    };
    assert!(failure_reason(&u).contains("trap"));
    assert_eq!(events, vec![Event::Invalidated { host: H1 }]);
    assert!(matches!(
        u.replicas()[a as usize].state,
        ReplicaState::Success {
            validation: Validation::Invalid,
            ..
        }
    ));
}

#[test]
fn host_caused_errors_are_retried_and_never_agree() {
    // Identical client errors from two hosts at quorum 2 are not a verdict on the task.
    let mut u = unit(params(2, 2, 3, 7));
    let (a, b) = (u.assign(H1, 0).unwrap(), u.assign(H2, 0).unwrap());
    u.report(a, H1, client_error("cannot download the module"));
    u.report(b, H2, client_error("cannot download the module"));
    assert!(u.is_active() && u.has_unsent());
    for (host, output) in [(H3, b"ok"), (HostId(4), b"ok")] {
        let idx = u.assign(host, 0).unwrap();
        u.report(idx, host, success(output));
    }
    assert_eq!(u.canonical_output(), Some(&b"ok"[..]));
    // Wall-clock timeouts and stack overflows depend on the host, too.
    for kind in [
        ErrorKind::WallTimeout,
        ErrorKind::StackOverflow,
        ErrorKind::RefusedModule,
    ] {
        assert!(!is_task_outcome(kind), "{kind:?}");
    }
}

#[test]
fn an_error_flood_does_not_fail_a_unit_honest_hosts_can_finish() {
    // Four flooders take the replicas first, each with its own error; two honest hosts follow.
    let mut u = unit(params(2, 2, 3, 7));
    for flooder in 10..14 {
        let idx = u.assign(HostId(flooder), 0).unwrap();
        u.report(idx, HostId(flooder), task_error(&format!("no ({flooder})")));
        assert!(u.is_active(), "{:?}", u.status);
    }
    for honest in [H1, H2] {
        let idx = u.assign(honest, 0).unwrap();
        u.report(idx, honest, success(b"good"));
    }
    assert_eq!(u.canonical_output(), Some(&b"good"[..]));
}

#[test]
fn a_late_result_never_displaces_an_on_time_one() {
    // Quorum 1: H1 misses its deadline, H2 runs the replacement, then H1 reports late.
    let mut u = unit(params(1, 1, 3, 6));
    let late = u.assign(H1, 0).unwrap();
    u.expire(1000);
    let on_time = u.assign(H2, 1000).unwrap();
    assert_eq!(
        u.report(late, H1, success(b"late")),
        ReportEffect::Accepted(vec![])
    );
    assert!(
        u.is_active(),
        "the late result waits for the on-time replica"
    );
    let ReportEffect::Accepted(events) = u.report(on_time, H2, success(b"on time")) else {
        panic!()
    };
    assert_eq!(u.canonical_output(), Some(&b"on time"[..]));
    assert!(events.contains(&Event::Invalidated { host: H1 }));
    // When the late result agrees with the on-time one, the canonical replica is the on-time one.
    let mut v = unit(params(2, 2, 3, 6));
    let (a, b) = (v.assign(H1, 0).unwrap(), v.assign(H2, 0).unwrap());
    v.expire(1000);
    let c = v.assign(H3, 1000).unwrap();
    v.report(a, H1, success(b"x"));
    v.report(b, H2, success(b"x"));
    assert!(
        v.is_active(),
        "two late results wait while an on-time one runs"
    );
    v.report(c, H3, success(b"x"));
    assert_eq!(v.status, UnitStatus::Done { canonical: c });
}

#[test]
fn a_lost_lease_is_replaced_at_once_without_counting_as_an_error() {
    let mut u = unit(params(1, 1, 0, 3));
    let idx = u.assign(H1, 0).unwrap();
    assert_eq!(u.lose(idx, H2), None, "not H2's replica");
    assert_eq!(u.lose(idx, H1), Some(vec![]));
    assert_eq!(u.lose(idx, H1), None, "already lost");
    assert!(
        u.is_active() && u.has_unsent(),
        "replaced, though no error is allowed"
    );
    let replacement = u.assign(H2, 0).unwrap();
    u.report(replacement, H2, success(b"ok"));
    assert_eq!(u.canonical_output(), Some(&b"ok"[..]));
    // The lost replica's late report is still judged (and credited when right).
    assert!(matches!(
        u.report(idx, H1, success(b"ok")),
        ReportEffect::Accepted(events) if events == vec![Event::Validated { host: H1, fuel: 10 }]
    ));
}

#[test]
fn no_agreement_within_max_total_fails() {
    let mut u = unit(params(2, 2, 5, 3));
    for (host, output) in [(H1, b"a"), (H2, b"b"), (H3, b"c")] {
        let idx = u.assign(host, 0).unwrap();
        u.report(idx, host, success(output));
    }
    let UnitStatus::Failed { reason } = &u.status else {
        panic!("{:?}", u.status)
    };
    assert!(reason.contains("no agreement"), "{reason}");
}

#[test]
fn expired_lease_is_reissued_and_a_late_result_still_counts() {
    let mut u = unit(params(1, 1, 3, 6));
    let idx = u.assign(H1, 0).unwrap();
    assert_eq!(u.expire(999), vec![]);
    assert_eq!(u.expire(1000), vec![Event::TimedOut { host: H1 }]);
    assert!(u.has_unsent(), "a replacement replica is queued");
    assert!(u.still_wanted(idx, H1));
    u.report(idx, H1, success(b"late"));
    assert_eq!(u.canonical_output(), Some(&b"late"[..]));
    assert!(!u.has_unsent());
}

#[test]
fn returned_replica_goes_back_to_the_queue() {
    let mut u = unit(params(1, 1, 0, 1));
    let idx = u.assign(H1, 0).unwrap();
    assert!(matches!(
        u.report(idx, H1, Reported::Returned),
        ReportEffect::Accepted(_)
    ));
    assert!(u.has_unsent());
    assert_eq!(u.state(), UnitState::Queued);
    assert_eq!(u.assign(H2, 5), Some(idx));
}

#[test]
fn cancel_drops_unsent_and_stops_running() {
    let mut u = unit(params(2, 2, 3, 6));
    let idx = u.assign(H1, 0).unwrap();
    u.cancel();
    assert_eq!(u.state(), UnitState::Cancelled);
    assert!(!u.has_unsent());
    assert!(!u.still_wanted(idx, H1));
    assert!(matches!(
        u.report(idx, H1, success(b"x")),
        ReportEffect::Accepted(_)
    ));
    assert_eq!(u.state(), UnitState::Cancelled);
}

#[test]
fn params_defaults_and_bounds() {
    let p = Params::resolve(&Replication::default()).unwrap();
    assert_eq!(
        (
            p.min_quorum,
            p.target_nresults,
            p.max_error_results,
            p.max_total_results
        ),
        (1, 1, 3, 6)
    );
    let q = Params::resolve(&Replication {
        min_quorum: Some(2),
        ..Default::default()
    })
    .unwrap();
    assert_eq!((q.target_nresults, q.max_total_results), (2, 7));
    for bad in [
        Replication {
            min_quorum: Some(0),
            ..Default::default()
        },
        Replication {
            min_quorum: Some(3),
            target_nresults: Some(2),
            ..Default::default()
        },
        Replication {
            target_nresults: Some(4),
            max_total_results: Some(3),
            ..Default::default()
        },
        Replication {
            min_quorum: Some(65),
            ..Default::default()
        },
        Replication {
            delay_bound_ms: Some(1),
            ..Default::default()
        },
    ] {
        assert!(Params::resolve(&bad).is_err(), "{bad:?}");
    }
}

#[derive(Debug, Clone)]
enum Op {
    Assign(u64),
    Report { pick: usize, outcome: u8 },
    Expire(u64),
    Lose(usize),
    Cancel,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..6u64).prop_map(Op::Assign),
        5 => (any::<usize>(), 0..9u8).prop_map(|(pick, outcome)| Op::Report { pick, outcome }),
        2 => (0..1500u64).prop_map(Op::Expire),
        1 => any::<usize>().prop_map(Op::Lose),
        1 => Just(Op::Cancel),
    ]
}

fn any_params() -> impl Strategy<Value = Params> {
    (1..=3u32, 0..=1u32, 0..=3u32, 0..=4u32)
        .prop_map(|(q, extra, e, room)| params(q, q + extra, e, q + extra + room))
}

fn reported(outcome: u8) -> Reported {
    match outcome {
        0 | 1 => success(b"good"),
        2 => success(b"bad"),
        3 => success(b"worse"),
        4 => error(),
        5 => task_error("other words"),
        6 => client_error("disk full"),
        7 => Reported::Error {
            kind: ErrorKind::WallTimeout,
            message: "too slow".into(),
            stderr_tail: String::new(),
        },
        _ => Reported::Returned,
    }
}

/// Invariants that hold after every operation. `accepted` models which output each host's
/// accepted success carried.
fn check_invariants(u: &Unit, accepted: &BTreeMap<HostId, Vec<u8>>) -> Result<(), TestCaseError> {
    let p = u.params();
    prop_assert!(
        u.replicas().len() as u32 <= p.max_total_results,
        "too many replicas"
    );
    let hosts: Vec<HostId> = u.replicas().iter().filter_map(|r| r.host).collect();
    let mut distinct = hosts.clone();
    distinct.sort();
    distinct.dedup();
    prop_assert_eq!(hosts.len(), distinct.len(), "a host holds two replicas");
    match &u.status {
        UnitStatus::Active => {
            prop_assert!(
                u.replicas().iter().any(Replica::is_live),
                "active unit cannot progress"
            );
            for r in u.replicas() {
                if let ReplicaState::Success { validation, .. } = &r.state {
                    prop_assert_eq!(*validation, Validation::Pending);
                }
            }
        }
        UnitStatus::Done { canonical } => {
            let chosen = &u.replicas()[*canonical as usize];
            prop_assert!(
                !chosen.late
                    || !u
                        .replicas()
                        .iter()
                        .any(|r| !r.late && r.output().is_some() && r.output() == chosen.output()),
                "a late replica is canonical over an agreeing on-time one"
            );
            let canonical = u.replicas()[*canonical as usize]
                .output()
                .expect("canonical is a success")
                .to_vec();
            let agreeing = accepted.values().filter(|out| **out == canonical).count() as u32;
            prop_assert!(
                agreeing >= p.min_quorum,
                "canonical without quorum agreement"
            );
            for r in u.replicas() {
                if let ReplicaState::Success {
                    output, validation, ..
                } = &r.state
                {
                    let expect = if output.as_slice() == canonical {
                        Validation::Valid
                    } else {
                        Validation::Invalid
                    };
                    prop_assert_eq!(*validation, expect);
                }
            }
        }
        UnitStatus::Failed { reason } => {
            // A unit fails only for one of the three documented reasons.
            let mut task_errors: std::collections::HashMap<(ErrorKind, &str), u32> =
                std::collections::HashMap::new();
            for r in u.replicas() {
                if let ReplicaState::Error { kind, message } = &r.state
                    && is_task_outcome(*kind)
                {
                    *task_errors.entry((*kind, message)).or_default() += 1;
                }
            }
            // A late result may have replaced a missed deadline since the unit failed.
            let host_errors = u
                .replicas()
                .iter()
                .filter(|r| r.is_host_error() || r.late)
                .count() as u32;
            let error_quorum = task_errors.values().any(|&n| n >= p.min_quorum);
            let exhausted = u.replicas().len() as u32 == p.max_total_results;
            prop_assert!(
                error_quorum || host_errors > p.max_error_results || exhausted,
                "failed without cause: {}",
                reason
            );
            if reason.starts_with("the task failed") {
                prop_assert!(error_quorum, "{}", reason);
            }
        }
        UnitStatus::Cancelled => {}
    }
    if !u.is_active() {
        prop_assert!(!u.replicas().iter().any(|r| r.state == ReplicaState::Unsent));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn lifecycle_invariants_hold_and_every_unit_ends(p in any_params(), ops in proptest::collection::vec(op(), 0..40)) {
        let mut u = unit(p);
        let mut accepted = BTreeMap::new();
        let mut now = 0;
        for op in ops {
            match op {
                Op::Assign(host) => { u.assign(HostId(host), now); }
                Op::Report { pick, outcome } => {
                    let leased: Vec<(u32, HostId)> = u.replicas().iter().enumerate()
                        .filter_map(|(i, r)| r.host.map(|h| (i as u32, h))).collect();
                    if !leased.is_empty() {
                        let (idx, host) = leased[pick % leased.len()];
                        let reported = reported(outcome);
                        let output = match &reported { Reported::Success { output, .. } => Some(output.clone()), _ => None };
                        if let (ReportEffect::Accepted(_), Some(output)) = (u.report(idx, host, reported), output) {
                            accepted.insert(host, output);
                        }
                    }
                }
                Op::Expire(dt) => { now += dt; u.expire(now); }
                Op::Lose(pick) => {
                    let running: Vec<(u32, HostId)> = u.leases().map(|(i, h, _)| (i, h)).collect();
                    if !running.is_empty() {
                        let (idx, host) = running[pick % running.len()];
                        prop_assert!(u.lose(idx, host).is_some());
                    }
                }
                Op::Cancel => u.cancel(),
            }
            check_invariants(&u, &accepted)?;
        }
        // Honest fresh hosts that always answer: the unit must end, within its replica budget.
        let mut next_host = 100;
        for _ in 0..=p.max_total_results {
            if !u.is_active() { break; }
            now += 2000;
            u.expire(now);
            while let Some(idx) = u.assign(HostId(next_host), now) {
                u.report(idx, HostId(next_host), success(b"good"));
                accepted.insert(HostId(next_host), b"good".to_vec());
                next_host += 1;
            }
            check_invariants(&u, &accepted)?;
        }
        prop_assert!(!u.is_active(), "unit never ended: {:?}", u);
    }
}

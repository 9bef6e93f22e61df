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
fn too_many_errors_fail_the_unit_with_the_last_error() {
    let mut u = unit(params(1, 1, 1, 6));
    for host in [H1, H2] {
        let idx = u.assign(host, 0).unwrap();
        u.report(idx, host, error());
    }
    let UnitStatus::Failed { reason } = &u.status else {
        panic!("{:?}", u.status)
    };
    assert!(
        reason.contains("too many errors") && reason.contains("trap: unreachable"),
        "{reason}"
    );
    assert!(!u.has_unsent());
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
    Cancel,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..6u64).prop_map(Op::Assign),
        5 => (any::<usize>(), 0..6u8).prop_map(|(pick, outcome)| Op::Report { pick, outcome }),
        2 => (0..1500u64).prop_map(Op::Expire),
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
        _ => Reported::Returned,
    }
}

/// Invariants that hold after every operation. `accepted` models which output each host's
/// accepted success carried.
fn check_invariants(u: &Unit, accepted: &BTreeMap<HostId, Vec<u8>>) -> Result<(), TestCaseError> {
    let p = u.params;
    prop_assert!(
        u.replicas.len() as u32 <= p.max_total_results,
        "too many replicas"
    );
    let hosts: Vec<HostId> = u.replicas.iter().filter_map(|r| r.host).collect();
    let mut distinct = hosts.clone();
    distinct.sort();
    distinct.dedup();
    prop_assert_eq!(hosts.len(), distinct.len(), "a host holds two replicas");
    match &u.status {
        UnitStatus::Active => {
            prop_assert!(
                u.replicas.iter().any(Replica::is_live),
                "active unit cannot progress"
            );
            for r in &u.replicas {
                if let ReplicaState::Success { validation, .. } = &r.state {
                    prop_assert_eq!(*validation, Validation::Pending);
                }
            }
        }
        UnitStatus::Done { canonical } => {
            let canonical = u.replicas[*canonical as usize]
                .output()
                .expect("canonical is a success")
                .to_vec();
            let agreeing = accepted.values().filter(|out| **out == canonical).count() as u32;
            prop_assert!(
                agreeing >= p.min_quorum,
                "canonical without quorum agreement"
            );
            for r in &u.replicas {
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
        UnitStatus::Failed { .. } | UnitStatus::Cancelled => {}
    }
    if !u.is_active() {
        prop_assert!(!u.replicas.iter().any(|r| r.state == ReplicaState::Unsent));
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
                    let leased: Vec<(u32, HostId)> = u.replicas.iter().enumerate()
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

    #[test]
    fn unit_round_trips_through_storage_json(p in any_params(), ops in proptest::collection::vec(op(), 0..20)) {
        let mut u = unit(p);
        for (i, op) in ops.into_iter().enumerate() {
            if let Op::Report { outcome, .. } = op
                && let Some(idx) = u.assign(HostId(i as u64), 0)
            {
                u.report(idx, HostId(i as u64), reported(outcome));
            }
        }
        let json = serde_json::to_vec(&u).unwrap();
        prop_assert_eq!(serde_json::from_slice::<Unit>(&json).unwrap(), u);
    }
}

//! Units that left memory still take part in what changes them: a late report on one is
//! recorded, banning a host reopens the units it alone decided, and deleting a batch takes its
//! archived units out of every counter. The world is driven directly, through the real writer.

use musketeer_protocol::{HostId, Replication, ReportStatus, ResultId, TokenId, UnitState};
use musketeer_server::domain::lifecycle::{Params, Reported};
use musketeer_server::domain::world::{NewBatch, World};
use musketeer_server::state::{AppState, ServeOptions};
use serde_json::json;

use crate::support::{Project, demo_app, platform};

/// Real time: the periodic expiry in [`commit`] uses the clock.
static NOW: std::sync::LazyLock<u64> = std::sync::LazyLock::new(AppState::now_ms);

fn success() -> Reported {
    Reported::Success {
        output: b"1".to_vec(),
        fuel: 1,
        wall_ms: 1,
        stderr_tail: String::new(),
    }
}

/// Apply `change` to the world, persist it and wait until it is durable; then let the settled
/// units leave memory (as the next request would).
async fn commit<R>(state: &AppState, change: impl FnOnce(&mut World) -> R) -> R {
    let (result, pending) = {
        let mut world = state.world();
        let result = change(&mut world);
        (result, state.persist(&mut world, Vec::new()))
    };
    pending.durable().await.unwrap();
    state.expire_leases().await.unwrap();
    result
}

/// A state with the app, two hosts and a one-unit batch of quorum 1; returns the hosts.
async fn one_unit(state: &AppState) -> (HostId, HostId) {
    commit(state, |world| {
        world.publish(demo_app());
        let a = world.register_host("a".into(), String::new(), Some(platform()), *NOW);
        let b = world.register_host("b".into(), String::new(), Some(platform()), *NOW);
        world.submit(
            NewBatch {
                owner: TokenId(2),
                app: "demo".into(),
                version: "1.0.0".parse().unwrap(),
                inputs: vec![json!(1).into()],
                params: Params::resolve(&Replication::default()).unwrap(),
                priority: 0,
                label: None,
            },
            *NOW,
        );
        (a, b)
    })
    .await
}

#[tokio::test]
async fn a_late_report_on_a_unit_that_left_memory_is_recorded() {
    let project = Project::new();
    let state = project.state(ServeOptions::default());
    let (a, b) = one_unit(&state).await;
    // a misses its deadline; b runs the replacement and finishes the unit.
    let late: ResultId = commit(&state, |world| world.fetch(a, 1, *NOW)[0]).await;
    let deadline = state.world().next_deadline().unwrap();
    commit(&state, |world| {
        world.expire(deadline);
        let replacement = world.fetch(b, 1, deadline)[0];
        world.report(b, replacement, success(), deadline)
    })
    .await;
    assert!(
        state.world().unit(late.unit).is_none(),
        "the done unit left memory"
    );
    let errors_before = state.world().stats(deadline).results.timed_out;

    let (status, _) = commit(&state, |world| world.report(a, late, success(), deadline)).await;
    assert_eq!(status, ReportStatus::Accepted);
    let world = state.world();
    assert_eq!(world.stats(deadline).results.timed_out, errors_before - 1);
    assert_eq!(
        world.stats(deadline).results.valid,
        2,
        "the late output agrees"
    );
    assert!(world.unit(late.unit).is_none(), "it left memory again");
    drop(world);
    state.close();
}

#[tokio::test]
async fn banning_a_host_reopens_a_unit_it_decided_after_the_unit_left_memory() {
    let project = Project::new();
    let state = project.state(ServeOptions::default());
    let (a, _) = one_unit(&state).await;
    let leased = commit(&state, |world| {
        let leased = world.fetch(a, 1, *NOW)[0];
        world.report(a, leased, success(), *NOW);
        leased
    })
    .await;
    assert!(state.world().unit(leased.unit).is_none());

    commit(&state, |world| {
        world.ban(a, "forged results".into(), *NOW).unwrap()
    })
    .await;
    let world = state.world();
    let unit = world.unit(leased.unit).expect("reopened, so in memory");
    assert_eq!(unit.state(), UnitState::Queued);
    assert_eq!(world.stats(*NOW).units.done, 0);
    drop(world);
    state.close();
}

#[tokio::test]
async fn deleting_a_batch_whose_units_left_memory_empties_every_counter() {
    let project = Project::new();
    let state = project.state(ServeOptions::default());
    let (a, _) = one_unit(&state).await;
    commit(&state, |world| {
        let leased = world.fetch(a, 1, *NOW)[0];
        world.report(a, leased, success(), *NOW);
    })
    .await;
    let batch = state.world().batches().next().unwrap().id;
    assert_eq!(state.world().units_in_memory(), 0);
    assert_eq!(state.world().stats(*NOW).units.done, 1);

    commit(&state, |world| world.delete_batch(batch).map(drop))
        .await
        .unwrap();
    let stats = state.world().stats(*NOW);
    assert_eq!(stats.units.total(), 0, "{stats:?}");
    assert_eq!(stats.results.valid, 0, "{stats:?}");
    state.close();
}

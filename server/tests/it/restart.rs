//! What a restart keeps, without HTTP: the world changed and persisted through the real writer,
//! the state dropped, the store reopened from its file and loaded again.

use musketeer_protocol::{Replication, TokenId};
use musketeer_server::domain::lifecycle::{Params, Reported};
use musketeer_server::domain::world::NewBatch;
use musketeer_server::state::{AppState, ServeOptions};
use musketeer_server::store::Write;
use serde_json::json;

use crate::support::{Project, demo_app, platform};

/// Complete `n` units at `at_ms` (submit, lease, report) and wait until that is durable.
async fn complete(state: &AppState, n: usize, at_ms: u64) {
    let pending = {
        let mut world = state.world();
        let existing = world.hosts().next().map(|h| h.id);
        let host = existing.unwrap_or_else(|| {
            world.register_host("h".into(), String::new(), Some(platform()), at_ms)
        });
        let new = NewBatch {
            owner: TokenId(2),
            app: "demo".into(),
            version: "1.0.0".parse().unwrap(),
            inputs: (0..n).map(|i| json!(i).into()).collect(),
            params: Params::resolve(&Replication::default()).unwrap(),
            priority: 0,
            label: None,
        };
        world.submit(new, at_ms);
        for id in world.fetch(host, n, at_ms) {
            let output = b"ok".to_vec();
            let reported = Reported::Success {
                output,
                fuel: 1,
                wall_ms: 1,
                stderr_tail: String::new(),
            };
            world.report(host, id, reported, at_ms);
        }
        state.persist(&mut world, Vec::new())
    };
    pending.durable().await.unwrap();
}

#[tokio::test]
async fn the_throughput_chart_survives_a_restart_and_a_corrupt_history_is_not_fatal() {
    let project = Project::new();
    let now = AppState::now_ms();
    let state = project.state(ServeOptions::default());
    // A store without the history row (every store made before it existed) starts empty.
    assert_eq!(state.world().stats(now).done_per_minute, vec![0; 60]);
    {
        let mut world = state.world();
        world.publish(demo_app());
        state.persist(&mut world, Vec::new())
    }
    .durable()
    .await
    .unwrap();
    // Several commits, each rewriting the history: 2, 3 and 1 units in the last three minutes.
    complete(&state, 2, now - 120_000).await;
    complete(&state, 3, now - 60_000).await;
    complete(&state, 1, now).await;
    let before = state.world().stats(now);
    assert_eq!(before.done_per_minute[57..], [2, 3, 1]);
    assert_eq!(before.units.done, 6);
    // A crash, as far as the world is concerned: nothing but the file survives.
    state.close();
    drop(state);

    let reloaded = project.state(ServeOptions::default());
    assert_eq!(reloaded.world().stats(now), before);
    // The restored history keeps counting in its minute.
    complete(&reloaded, 4, now).await;
    let after = reloaded.world().stats(now);
    assert_eq!(after.done_per_minute[57..], [2, 3, 5]);
    reloaded.close();
    drop(reloaded);

    // A history row that does not decode: the server starts, with an empty chart and every
    // counter intact.
    project
        .store()
        .write_now(vec![Write::Meta("done_per_minute".into(), vec![1, 0xff])])
        .unwrap();
    let damaged = project.state(ServeOptions::default());
    let stats = damaged.world().stats(now);
    assert_eq!(stats.done_per_minute, vec![0; 60]);
    assert_eq!(stats.units.done, 10);
}

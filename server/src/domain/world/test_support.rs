//! Fixtures shared by the world's tests and the views read from it: a small demo app, a world
//! with hosts, and batches of that app.

use musketeer_protocol::{BatchId, Limits, Replication, TokenId};
use serde_json::json;

use super::{AppVersion, NewBatch, World};
use crate::domain::lifecycle::Params;

/// An app version with small limits that the tests' outputs and fuel stay within.
pub(crate) fn app() -> AppVersion {
    AppVersion {
        app: "demo".into(),
        version: "1.0.0".parse().unwrap(),
        key_id: "ed25519:0000000000000000".into(),
        module_sha256: "00".repeat(32),
        module_size: 3,
        http_allow: vec![],
        limits: Limits {
            fuel: 1000,
            memory_bytes: 1,
            wall_time_ms: 1,
            output_bytes: 16,
        },
        signed_manifest: serde_json::value::RawValue::from_string("{}".into()).unwrap(),
        published_ms: 0,
    }
}

/// A world with [`app`] published and hosts `h0`..`h{n-1}` (ids 1..=n) registered.
pub(crate) fn world_with_hosts(n: u64) -> World {
    let mut world = World::default();
    world.publish(app());
    for i in 0..n {
        world.register_host(format!("h{i}"), String::new(), None, 0);
    }
    world
}

/// `n` units of `app` 1.0.0, inputs `0..n`, owned by token 1.
pub(crate) fn new_batch(app: &str, n: usize, params: Params, priority: i32) -> NewBatch {
    NewBatch {
        owner: TokenId(1),
        app: app.into(),
        version: "1.0.0".parse().unwrap(),
        inputs: (0..n).map(|i| json!(i).into()).collect(),
        params,
        priority,
        label: None,
    }
}

/// Submits `n` demo units at time 0 needing `min_quorum` agreeing hosts, with a minute's
/// delay bound so that leases lapse only where a test moves the clock that far.
pub(crate) fn submit(world: &mut World, n: usize, min_quorum: u32) -> BatchId {
    let params = Params::resolve(&Replication {
        min_quorum: Some(min_quorum),
        delay_bound_ms: Some(60_000),
        ..Default::default()
    })
    .unwrap();
    world.submit(new_batch("demo", n, params, 0), 0).id
}

//! The raw-input capability gate at hand-out: a raw unit (`submit --lines`) goes only to hosts
//! that declared they run raw inputs, so an older client never runs one on other bytes nor votes
//! on it against newer clients.

use musketeer_protocol::{Replication, UnitInput};
use serde_json::json;

use super::test_support::{new_batch, world_with_hosts};
use super::*;

fn raw_capable() -> HostAccepts {
    HostAccepts {
        raw_input: true,
        ..HostAccepts::default()
    }
}

/// A batch of quorum 2 whose inputs are `inputs`, at priority `priority`.
fn submit_inputs(world: &mut World, inputs: Vec<UnitInput>, priority: i32) -> BatchId {
    let params = Params::resolve(&Replication {
        min_quorum: Some(2),
        delay_bound_ms: Some(60_000),
        ..Default::default()
    })
    .unwrap();
    let mut batch = new_batch("demo", 0, params, priority);
    batch.inputs = inputs;
    world.submit(batch, 0).id
}

#[test]
fn a_host_without_the_capability_gets_no_raw_unit_but_other_work() {
    let mut world = world_with_hosts(3);
    // The raw units come first in the queue (higher priority).
    let raw = submit_inputs(
        &mut world,
        vec![
            UnitInput::Raw(b"a \"b\"".to_vec()),
            UnitInput::Raw(vec![0xff]),
        ],
        5,
    );
    let json = submit_inputs(&mut world, vec![json!("plain").into()], 0);
    let batch_of = |world: &World, id: ResultId| world.unit(id.unit).unwrap().batch;

    let old = world.fetch_within(HostId(1), 8, 0, HostAccepts::default());
    assert_eq!(old.len(), 1, "{old:?}");
    assert_eq!(batch_of(&world, old[0]), json);
    // Nothing else is left for it: an old client gets no work rather than a raw unit.
    assert!(world.fetch(HostId(1), 8, 0).is_empty());

    let new = world.fetch_within(HostId(2), 8, 0, raw_capable());
    let batches: Vec<BatchId> = new.iter().map(|id| batch_of(&world, *id)).collect();
    assert_eq!(batches, vec![raw, raw, json]);
    let view = serde_json::to_value(world.assignment_view(new[0]).unwrap()).unwrap();
    assert_eq!(view["input_base64"], json!("YSAiYiI="));
    assert!(view.get("input").is_none(), "{view}");
    // The owned assignment reads back to the same input.
    let owned = world.assignment(new[1]).unwrap();
    assert_eq!(owned.unit_input(), Ok(UnitInput::Raw(vec![0xff])));
}

#[test]
fn a_quorum_of_a_raw_unit_is_made_of_capable_hosts_only() {
    let mut world = world_with_hosts(4);
    submit_inputs(&mut world, vec![UnitInput::Raw(b"line".to_vec())], 0);
    let first = world.fetch_within(HostId(1), 1, 0, raw_capable());
    assert_eq!(first.len(), 1);
    // Hosts 2 and 3 declare nothing: the second replica waits for a capable host.
    assert!(world.fetch(HostId(2), 1, 0).is_empty());
    assert!(world.fetch(HostId(3), 1, 0).is_empty());
    let second = world.fetch_within(HostId(4), 1, 0, raw_capable());
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].unit, first[0].unit);
}

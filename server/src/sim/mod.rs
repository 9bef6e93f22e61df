//! A deterministic simulator of volunteers and attackers over the pure domain [`World`] (no
//! HTTP, no store): hosts of mixed speeds fetch and report in simulated time, and the run
//! measures what reputation and placement achieve (wrong canonical results, replicas per unit,
//! how soon attackers are quarantined, their share of credit). `musketeer-sim` prints the
//! standard scenarios; docs/benchmarks.md has the numbers.

pub mod agents;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use musketeer_protocol::{HostId, Limits, Replication, ResultId, TokenId, UnitId, UnitState};

use crate::domain::lifecycle::Params;
use crate::domain::reputation::Policy;
use crate::domain::world::{AppVersion, NewBatch, World};
use agents::{Agent, Behaviour, Rng, outcome, truth};

/// How long an idle host waits before asking again.
const POLL_MS: u64 = 1000;
/// A replica's deadline in the simulation.
const DELAY_BOUND_MS: u64 = 60_000;
/// The app's fuel limit: what a lying host claims.
const MAX_FUEL: u64 = 10_000_000_000;

/// One simulated situation.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its name in the table.
    pub name: String,
    /// The hosts, in registration order (host ids 1, 2, ...).
    pub agents: Vec<Agent>,
    /// Units in the one batch.
    pub units: usize,
    /// The batch's quorum.
    pub quorum: u32,
    /// Trust and throttling.
    pub policy: Policy,
    /// Seed of every random draw.
    pub seed: u64,
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Units done with a wrong canonical result at the end.
    pub wrong: usize,
    /// Units failed (a good unit failed by attackers counts here).
    pub failed: usize,
    /// Units not finished when the run stopped.
    pub unfinished: usize,
    /// Replicas sent per unit, all units.
    pub replicas_per_unit: f64,
    /// Replicas sent per unit in the second half of the batch (hosts trusted by then).
    pub replicas_per_unit_late: f64,
    /// For each attacker, results it reported before it was quarantined (None: never).
    pub units_until_quarantine: Vec<Option<u64>>,
    /// Honest hosts quarantined at the end (framed by colluders and not yet cleared).
    pub honest_quarantined: usize,
    /// Attackers' share of all credit granted.
    pub attacker_credit_share: f64,
    /// Their share of the computing power: what honest work would have earned them.
    pub attacker_fair_share: f64,
    /// Results attackers reported in all.
    pub attacker_results: u64,
    /// Simulated seconds until the batch finished.
    pub seconds: f64,
}

/// Host standing helpers over the simulation's agents.
fn app() -> AppVersion {
    AppVersion {
        app: "sim".into(),
        version: semver::Version::new(1, 0, 0),
        key_id: "ed25519:0000000000000000".into(),
        module_sha256: "00".repeat(32),
        module_size: 1,
        http_allow: vec![],
        limits: Limits {
            fuel: MAX_FUEL,
            memory_bytes: 1 << 20,
            wall_time_ms: 60_000,
            output_bytes: 64,
        },
        signed_manifest: serde_json::value::RawValue::from_string("{}".into())
            .unwrap_or_else(|_| unreachable!("a literal empty object is JSON")),
        published_ms: 0,
    }
}

/// Events in simulated time: a host finishing a replica, or an idle host asking again.
type Event = Reverse<(u64, u64, usize, Option<ResultId>)>;

/// Run one scenario to the end of its batch (or a time bound).
pub fn run(scenario: &Scenario) -> Summary {
    let mut world = World::default();
    world.set_policy(scenario.policy);
    world.publish(app());
    let hosts: Vec<HostId> = scenario
        .agents
        .iter()
        .enumerate()
        .map(|(i, agent)| {
            let id = world.register_host(format!("sim{i}"), String::new(), None, 0);
            world.set_network(id, Some(agent.network.clone()));
            id
        })
        .collect();
    let params = Params::resolve(&Replication {
        min_quorum: Some(scenario.quorum),
        delay_bound_ms: Some(DELAY_BOUND_MS),
        ..Default::default()
    })
    .unwrap_or_else(|e| unreachable!("the simulation's replication is valid: {e}"));
    let batch = world
        .submit(
            NewBatch {
                owner: TokenId(1),
                app: "sim".into(),
                version: semver::Version::new(1, 0, 0),
                inputs: (0..scenario.units)
                    .map(|i| serde_json::json!(i).into())
                    .collect(),
                params,
                priority: 0,
                label: None,
            },
            0,
        )
        .id;
    let mut rng = Rng::new(scenario.seed);
    let mut free: Vec<u32> = scenario.agents.iter().map(|a| a.slots).collect();
    let mut polling = vec![false; hosts.len()];
    let mut reported = vec![0u64; hosts.len()];
    let mut caught_after: Vec<Option<u64>> = vec![None; hosts.len()];
    let mut events: BinaryHeap<Event> = BinaryHeap::new();
    let mut seq = 0u64;
    // Hosts start in a random order, as volunteers would.
    for (i, waiting) in polling.iter_mut().enumerate() {
        let at = rng.below(POLL_MS);
        events.push(Reverse((at, seq, i, None)));
        seq += 1;
        *waiting = true;
    }
    let slowest = scenario.agents.iter().map(|a| a.unit_ms).max().unwrap_or(1);
    let time_limit = (scenario.units as u64 * 4 * slowest).max(3_600_000);
    let mut now = 0;
    while let Some(Reverse((at, _, i, finished))) = events.pop() {
        now = at;
        if now > time_limit
            || world
                .batch(batch)
                .is_some_and(|b| b.status().counts.finished() == b.n_units)
        {
            break;
        }
        world.expire(now);
        match finished {
            Some(id) => {
                free[i] += 1;
                let draw = rng.below(1000) as u32;
                if let Some(report) =
                    outcome(&scenario.agents[i], hosts[i].0, id.unit, draw, MAX_FUEL)
                {
                    world.report(hosts[i], id, report, now);
                    reported[i] += 1;
                }
                for (j, host) in hosts.iter().enumerate() {
                    if caught_after[j].is_none()
                        && world
                            .host(*host)
                            .is_some_and(|h| h.standing.quarantine.is_some())
                    {
                        caught_after[j] = Some(reported[j]);
                    }
                }
            }
            None => polling[i] = false,
        }
        if free[i] > 0 {
            let agent = &scenario.agents[i];
            // As the work API does: a fetch is contact, so the host counts as online.
            world.touch_host(hosts[i], None, now);
            for id in world.fetch(hosts[i], free[i] as usize, now) {
                free[i] -= 1;
                // ±10% around the host's speed.
                let jitter = agent.unit_ms / 10;
                let took = agent.unit_ms - jitter + rng.below(2 * jitter + 1);
                events.push(Reverse((now + took.max(1), seq, i, Some(id))));
                seq += 1;
            }
            if free[i] > 0 && !polling[i] {
                events.push(Reverse((now + POLL_MS, seq, i, None)));
                seq += 1;
                polling[i] = true;
            }
        }
    }
    summarize(
        scenario,
        &world,
        batch,
        &hosts,
        &reported,
        &caught_after,
        now,
    )
}

fn summarize(
    scenario: &Scenario,
    world: &World,
    batch: musketeer_protocol::BatchId,
    hosts: &[HostId],
    reported: &[u64],
    caught_after: &[Option<u64>],
    now: u64,
) -> Summary {
    let Some(batch) = world.batch(batch) else {
        unreachable!("the simulation never deletes its batch")
    };
    let (mut wrong, mut failed, mut unfinished) = (0, 0, 0);
    let (mut replicas, mut replicas_late, mut late_units) = (0usize, 0usize, 0usize);
    let half = batch.first_unit.0 + batch.n_units / 2;
    for id in batch.unit_ids() {
        let Some(unit) = world.unit(id) else { continue };
        match unit.state() {
            UnitState::Done if unit.canonical_output() != Some(truth(UnitId(id.0)).as_slice()) => {
                wrong += 1
            }
            UnitState::Done => {}
            UnitState::Failed => failed += 1,
            _ => unfinished += 1,
        }
        let sent = unit.replicas().iter().filter(|r| r.host.is_some()).count();
        replicas += sent;
        if id.0 >= half {
            replicas_late += sent;
            late_units += 1;
        }
    }
    let attacker = |i: usize| scenario.agents[i].behaviour.is_attacker();
    let credit = |pick: &dyn Fn(usize) -> bool| -> u64 {
        hosts
            .iter()
            .enumerate()
            .filter(|(i, _)| pick(*i))
            .filter_map(|(_, h)| world.host(*h).map(|h| h.credit))
            .sum()
    };
    let total_credit = credit(&|_| true).max(1);
    let power = |pick: &dyn Fn(usize) -> bool| -> f64 {
        (0..hosts.len())
            .filter(|i| pick(*i))
            .map(|i| scenario.agents[i].throughput())
            // An empty f64 sum is -0.0; start from +0.0 so the table shows 0.000.
            .fold(0.0, |total, x| total + x)
    };
    Summary {
        wrong,
        failed,
        unfinished,
        replicas_per_unit: replicas as f64 / batch.n_units.max(1) as f64,
        replicas_per_unit_late: replicas_late as f64 / late_units.max(1) as f64,
        units_until_quarantine: (0..hosts.len())
            .filter(|i| attacker(*i))
            .map(|i| caught_after[i])
            .collect(),
        honest_quarantined: (0..hosts.len())
            .filter(|i| !attacker(*i))
            .filter(|i| {
                world
                    .host(hosts[*i])
                    .is_some_and(|h| h.standing.quarantine.is_some())
            })
            .count(),
        attacker_credit_share: credit(&attacker) as f64 / total_credit as f64,
        attacker_fair_share: power(&attacker) / power(&|_| true).max(f64::MIN_POSITIVE),
        attacker_results: (0..hosts.len())
            .filter(|i| attacker(*i))
            .map(|i| reported[i])
            .sum(),
        seconds: now as f64 / 1000.0,
    }
}

/// An honest host of mixed speed: 1 to 4 slots, 1 to 3 seconds a unit.
fn honest(rng: &mut Rng, network: usize) -> Agent {
    Agent {
        behaviour: Behaviour::Honest,
        slots: 1 + rng.below(4) as u32,
        unit_ms: 1000 + rng.below(2000),
        network: format!("net{network}"),
    }
}

/// A fast attacker: 4 slots, 0.25 s a unit.
fn fast(behaviour: Behaviour, network: String) -> Agent {
    Agent {
        behaviour,
        slots: 4,
        unit_ms: 250,
        network,
    }
}

/// The standard scenarios, each over `units` units at quorum 2.
pub fn scenarios(units: usize, seed: u64) -> Vec<Scenario> {
    let mut rng = Rng::new(seed);
    let mut honest_hosts =
        |n: usize| -> Vec<Agent> { (0..n).map(|i| honest(&mut rng, i)).collect() };
    let with = |name: &str, mut agents: Vec<Agent>, attackers: Vec<Agent>| {
        agents.extend(attackers);
        Scenario {
            name: name.into(),
            agents,
            units,
            quorum: 2,
            policy: Policy::default(),
            seed,
        }
    };
    let colluder = || Behaviour::Colluder { group: 1 };
    vec![
        with("11 honest hosts", honest_hosts(11), vec![]),
        with(
            "fast colluding pair, one network, + 9 honest",
            honest_hosts(9),
            vec![
                fast(colluder(), "evil".into()),
                fast(colluder(), "evil".into()),
            ],
        ),
        with(
            "fast colluding pair, two networks, + 9 honest",
            honest_hosts(9),
            vec![
                fast(colluder(), "evil1".into()),
                fast(colluder(), "evil2".into()),
            ],
        ),
        with(
            "colluding group of 4 networks + 9 honest",
            honest_hosts(9),
            (0..4)
                .map(|i| fast(colluder(), format!("evil{i}")))
                .collect(),
        ),
        with(
            "10% independent liars (2 of 20, lying on half their units)",
            honest_hosts(18),
            (0..2)
                .map(|i| {
                    let mut a = honest(&mut Rng::new(seed + i), 100 + i as usize);
                    a.behaviour = Behaviour::Liar { per_mille: 500 };
                    a
                })
                .collect(),
        ),
        with(
            "4 error flooders + 9 honest",
            honest_hosts(9),
            (0..4)
                .map(|i| fast(Behaviour::ErrorFlooder, format!("flood{i}")))
                .collect(),
        ),
        with(
            "2 crashing hosts (drop 30%) + 9 honest",
            honest_hosts(9),
            (0..2)
                .map(|i| {
                    let mut a = honest(&mut Rng::new(seed + 7 + i), 200 + i as usize);
                    a.behaviour = Behaviour::Crasher { per_mille: 300 };
                    a
                })
                .collect(),
        ),
    ]
}

/// The header of [`row`]'s markdown table.
pub const TABLE_HEADER: &str = "| scenario | wrong canonical | failed | unfinished | replicas/unit | replicas/unit (2nd half) | attackers' results until quarantine | honest quarantined | attackers' credit share (fair share) | sim seconds |\n|---|---|---|---|---|---|---|---|---|---|";

/// One markdown table row.
pub fn row(scenario: &Scenario, s: &Summary) -> String {
    let caught: Vec<String> = s
        .units_until_quarantine
        .iter()
        .map(|c| c.map_or_else(|| "never".to_owned(), |n| n.to_string()))
        .collect();
    format!(
        "| {} | {} ({:.3}%) | {} | {} | {:.3} | {:.3} | {} | {} | {:.4} ({:.3}) | {:.0} |",
        scenario.name,
        s.wrong,
        100.0 * s.wrong as f64 / scenario.units.max(1) as f64,
        s.failed,
        s.unfinished,
        s.replicas_per_unit,
        s.replicas_per_unit_late,
        if caught.is_empty() {
            "-".to_owned()
        } else {
            caught.join(", ")
        },
        s.honest_quarantined,
        s.attacker_credit_share,
        s.attacker_fair_share,
        s.seconds,
    )
}

#[cfg(test)]
mod tests;

//! The server status page's data: units by app and state (as BOINC's server status page), each
//! host's pace over the last hour, and unit states over time (as Flower's monitor), from samples
//! that [`StatusHistory`] keeps in memory (a restart starts the graph afresh).

use std::collections::{BTreeMap, HashMap, VecDeque};

use musketeer_protocol::{AppStatus, HostId, HostRate, ServerStatus, StateSample};

use super::is_retrying;
use crate::domain::world::{Batch, ONLINE_WINDOW_MS, World};

/// How far back the graph and the hosts' rates reach.
pub const WINDOW_MS: u64 = 60 * 60 * 1000;

/// Whether a batch may still have units in progress.
fn is_active(batch: &Batch) -> bool {
    !batch.cancelled && batch.counts.finished() < batch.n_units
}

/// Active units of `batch` that had a replica fail. Finished batches have none, so only
/// active batches' units are visited.
fn retrying_units(world: &World, batch: &Batch) -> u64 {
    if !is_active(batch) {
        return 0;
    }
    let end = musketeer_protocol::UnitId(batch.first_unit.0 + batch.n_units);
    world
        .memory_units(batch.first_unit..end)
        .filter(|u| is_retrying(u))
        .count() as u64
}

/// Units by app and state (apps in name order) and by state overall at `now_ms`, from one look
/// at the active batches' units (the only ones that can be retrying).
pub fn snapshot(world: &World, now_ms: u64) -> (Vec<AppStatus>, StateSample) {
    let mut apps: BTreeMap<&str, AppStatus> = BTreeMap::new();
    for batch in world.batches() {
        let entry = apps.entry(&batch.app).or_insert_with(|| AppStatus {
            app: batch.app.clone(),
            ..AppStatus::default()
        });
        let c = batch.counts;
        entry.unsent += c.queued;
        entry.in_progress += c.running;
        entry.done += c.done;
        entry.failed += c.failed;
        entry.cancelled += c.cancelled;
        entry.retrying += retrying_units(world, batch);
    }
    let apps: Vec<AppStatus> = apps.into_values().collect();
    let sample = StateSample {
        at_ms: now_ms,
        queued: apps.iter().map(|a| a.unsent).sum(),
        running: apps.iter().map(|a| a.in_progress).sum(),
        retrying: apps.iter().map(|a| a.retrying).sum(),
        done: apps.iter().map(|a| a.done).sum(),
        failed: apps.iter().map(|a| a.failed).sum(),
    };
    (apps, sample)
}

/// Each host's running totals at one moment: (results returned, fuel of validated results).
#[derive(Debug, Clone, Default)]
struct HostMarks {
    at_ms: u64,
    totals: HashMap<HostId, (u64, u64)>,
}

impl HostMarks {
    fn read(world: &World, now_ms: u64) -> Self {
        Self {
            at_ms: now_ms,
            totals: world
                .hosts()
                .map(|h| (h.id, (h.succeeded + h.failed, h.credit)))
                .collect(),
        }
    }
}

/// Samples of the last hour: unit states for the graph and host totals for the rates; and the
/// latest snapshot, which answers status requests while it is fresh.
#[derive(Debug, Default)]
pub struct StatusHistory {
    samples: VecDeque<StateSample>,
    marks: VecDeque<HostMarks>,
    latest: Option<(Vec<AppStatus>, StateSample)>,
}

/// How long a snapshot answers status requests: however many dashboards poll, the active units
/// are looked at once per this interval (a snapshot of 200,000 active units took 228 ms in a
/// debug build).
pub const FRESH_MS: u64 = 2_000;

/// Host totals are kept once a minute: the rates need no finer steps.
const MARK_EVERY_MS: u64 = 60 * 1000;

impl StatusHistory {
    /// Record the world as it is at `now_ms`, forgetting what is older than [`WINDOW_MS`].
    pub fn record(&mut self, world: &World, now_ms: u64) {
        let (apps, sample) = snapshot(world, now_ms);
        self.samples.push_back(sample);
        self.latest = Some((apps, sample));
        let due = self
            .marks
            .back()
            .is_none_or(|m| now_ms >= m.at_ms + MARK_EVERY_MS);
        if due {
            self.marks.push_back(HostMarks::read(world, now_ms));
        }
        let oldest = now_ms.saturating_sub(WINDOW_MS);
        while self.samples.front().is_some_and(|s| s.at_ms < oldest) {
            self.samples.pop_front();
        }
        while self.marks.front().is_some_and(|m| m.at_ms < oldest) {
            self.marks.pop_front();
        }
    }

    /// The status at `now_ms`: the recorded samples and the latest snapshot (taken now unless
    /// one is less than [`FRESH_MS`] old); host rates since the oldest mark (a host that joined
    /// since counts from zero).
    pub fn status(&mut self, world: &World, now_ms: u64) -> ServerStatus {
        let (apps, latest) = match &self.latest {
            Some((apps, s)) if s.at_ms <= now_ms && now_ms < s.at_ms + FRESH_MS => {
                (apps.clone(), *s)
            }
            _ => {
                let taken = snapshot(world, now_ms);
                self.latest = Some(taken.clone());
                taken
            }
        };
        let mut history: Vec<StateSample> = self
            .samples
            .iter()
            .filter(|s| s.at_ms < latest.at_ms)
            .copied()
            .collect();
        history.push(latest);
        let since = self.marks.front();
        let window_ms = since.map_or(0, |m| now_ms.saturating_sub(m.at_ms));
        let mut hosts: Vec<HostRate> = world
            .hosts()
            .map(|h| {
                let (results_then, fuel_then) = since
                    .and_then(|m| m.totals.get(&h.id).copied())
                    .unwrap_or_default();
                HostRate {
                    id: h.id,
                    name: h.name.clone(),
                    online: h.last_contact_ms + ONLINE_WINDOW_MS > now_ms,
                    results: (h.succeeded + h.failed).saturating_sub(results_then),
                    credit_fuel: h.credit.saturating_sub(fuel_then),
                    window_ms,
                }
            })
            .collect();
        hosts.sort_unstable_by_key(|h| h.id);
        ServerStatus {
            now_ms,
            apps,
            hosts,
            history,
        }
    }
}

//! The work buffer: assignments fetched beyond the free slots, as BOINC's "store at least /
//! up to", so that a slot that frees starts its next task at once instead of waiting for a fetch,
//! and fetches come in batches rather than one per task.
//!
//! Its size follows the tasks' observed durations: enough for `--work-buffer` seconds of work on
//! every slot, at most [`max_buffered`] assignments, and never more than can start well before
//! the assignments' deadlines (a replica that expires here cannot come back to this host: the
//! server gives a unit to each host once). Until a task has finished nothing is buffered. A
//! top-up fetch is due at a low-water mark: half of the target, or more when the slots would use
//! up more than that while two fetches make their round trip (a fetch is answered only after the
//! server's durable commit, so short tasks would otherwise empty the buffer and wait for it).

use std::collections::VecDeque;
use std::time::Duration;

use musketeer_protocol::{Assignment, ResultId};

/// The most assignments buffered: one fetch answer's worth, so that short tasks keep the slots
/// busy while the next fetch makes its round trip.
pub fn max_buffered() -> usize {
    musketeer_protocol::limits::MAX_ASSIGNMENTS_PER_FETCH as usize
}

/// Fetch round trips the low-water mark covers: the top-up's own and one spare for a slow one.
const ROUND_TRIPS_COVERED: f64 = 2.0;

/// Weight of the newest duration in the running average.
const NEWEST_WEIGHT: f64 = 0.2;

/// Fetched assignments waiting for a slot.
#[derive(Debug)]
pub struct WorkBuffer {
    queue: VecDeque<Assignment>,
    /// Seconds of work to keep per slot; zero disables the buffer.
    seconds: Duration,
    slots: usize,
    /// Running average of a task's wall time, once one finished.
    average: Option<Duration>,
    /// Running average of a fetch's round trip while fetches find work.
    fetch_round_trip: Option<Duration>,
    /// The shortest time to its deadline of the last assignments received.
    lease: Option<Duration>,
}

impl WorkBuffer {
    pub fn new(seconds: Duration, slots: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            seconds,
            slots: slots.max(1),
            average: None,
            fetch_round_trip: None,
            lease: None,
        }
    }

    /// How many assignments to keep: `seconds` of work per slot at the average duration, but
    /// no more than finish within half of the lease; at most [`max_buffered`]. None before a
    /// task finished (nothing to size by).
    pub fn target(&self) -> usize {
        let Some(average) = self.average else {
            return 0;
        };
        let mut per_slot = self.seconds;
        if let Some(lease) = self.lease {
            per_slot = per_slot.min((lease / 2).saturating_sub(average));
        }
        let tasks_per_slot = per_slot.as_secs_f64() / average.as_secs_f64().max(1e-6);
        ((tasks_per_slot * self.slots as f64).floor() as usize).min(max_buffered())
    }

    /// The level at or below which a top-up fetch is due: half of the target, or what the slots
    /// run during [`ROUND_TRIPS_COVERED`] fetch round trips if that is more; at most the target.
    pub fn low_water(&self) -> usize {
        let target = self.target();
        let (Some(average), Some(round_trip)) = (self.average, self.fetch_round_trip) else {
            return target / 2;
        };
        let used_meanwhile = ROUND_TRIPS_COVERED * round_trip.as_secs_f64()
            / average.as_secs_f64().max(1e-6)
            * self.slots as f64;
        (used_meanwhile.ceil() as usize).clamp(target / 2, target)
    }

    /// Whether the buffer is low enough for a top-up fetch.
    pub fn wants_top_up(&self) -> bool {
        self.top_up_due(self.queue.len())
    }

    fn top_up_due(&self, buffered: usize) -> bool {
        self.target() > 0 && buffered <= self.low_water()
    }

    /// Room left below the target.
    pub fn room(&self) -> usize {
        self.target().saturating_sub(self.queue.len())
    }

    /// Records how long a task ran.
    pub fn observe(&mut self, took: Duration) {
        self.average = Some(match self.average {
            None => took,
            Some(average) => average.mul_f64(1.0 - NEWEST_WEIGHT) + took.mul_f64(NEWEST_WEIGHT),
        });
    }

    /// Records how long a fetch that found work took, from request to answer.
    pub fn observe_fetch(&mut self, took: Duration) {
        self.fetch_round_trip = Some(match self.fetch_round_trip {
            None => took,
            Some(average) => average.mul_f64(1.0 - NEWEST_WEIGHT) + took.mul_f64(NEWEST_WEIGHT),
        });
    }

    /// Records the time left to the deadlines of a fetch's assignments (the shortest).
    pub fn observe_lease(&mut self, left: Duration) {
        self.lease = Some(left);
    }

    pub fn push(&mut self, assignment: Assignment) {
        self.queue.push_back(assignment);
    }

    /// The next assignment, oldest first.
    pub fn pop(&mut self) -> Option<Assignment> {
        self.queue.pop_front()
    }

    /// Drops the listed assignments (cancelled by the server); returns the ids dropped.
    pub fn remove(&mut self, ids: &[ResultId]) -> Vec<ResultId> {
        let mut removed = Vec::new();
        self.queue.retain(|assignment| {
            let cancelled = ids.contains(&assignment.result_id);
            if cancelled {
                removed.push(assignment.result_id);
            }
            !cancelled
        });
        removed
    }

    /// Takes every buffered assignment (to hand them back).
    pub fn drain(&mut self) -> Vec<ResultId> {
        self.queue.drain(..).map(|a| a.result_id).collect()
    }

    pub fn ids(&self) -> impl Iterator<Item = ResultId> + '_ {
        self.queue.iter().map(|a| a.result_id)
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_follows_task_durations_within_the_cap() {
        let mut buffer = WorkBuffer::new(Duration::from_secs(4), 4);
        // Nothing observed yet: nothing to size by.
        assert_eq!(buffer.target(), 0);
        buffer.observe(Duration::from_secs(2));
        // 4 s of 2 s tasks on 4 slots.
        assert_eq!(buffer.target(), 8);
        for _ in 0..50 {
            buffer.observe(Duration::from_millis(1));
        }
        assert_eq!(buffer.target(), max_buffered());
        for _ in 0..50 {
            buffer.observe(Duration::from_secs(600));
        }
        // Tasks longer than the buffer's seconds: none kept waiting.
        assert_eq!(buffer.target(), 0);
    }

    #[test]
    fn buffered_work_starts_well_before_its_deadline() {
        let mut buffer = WorkBuffer::new(Duration::from_secs(4), 2);
        buffer.observe(Duration::from_secs(1));
        assert_eq!(buffer.target(), 8);
        // 3 s leases of 1 s tasks: half a second per slot of waiting work, not a whole task.
        buffer.observe_lease(Duration::from_secs(3));
        assert_eq!(buffer.target(), 1);
        buffer.observe_lease(Duration::from_secs(2));
        assert_eq!(buffer.target(), 0);
        buffer.observe_lease(Duration::from_secs(3600));
        assert_eq!(buffer.target(), 8);
    }

    #[test]
    fn zero_seconds_disables_the_buffer() {
        let buffer = WorkBuffer::new(Duration::ZERO, 4);
        assert_eq!(buffer.target(), 0);
        assert_eq!(buffer.room(), 0);
        assert!(!buffer.wants_top_up());
    }

    #[test]
    fn the_cap_is_one_fetch_answer() {
        assert_eq!(
            max_buffered(),
            musketeer_protocol::limits::MAX_ASSIGNMENTS_PER_FETCH as usize
        );
    }

    #[test]
    fn slow_fetches_raise_the_low_water_mark() {
        let mut buffer = WorkBuffer::new(Duration::from_secs(60), 4);
        buffer.observe(Duration::from_millis(1));
        assert_eq!(buffer.target(), 64);
        // No fetch timed yet: top up at half.
        assert_eq!(buffer.low_water(), 32);
        // Fast fetches: the slots use up less than half meanwhile.
        buffer.observe_fetch(Duration::from_micros(500));
        assert_eq!(buffer.low_water(), 32);
        // 5 ms fetches of 1 ms tasks on 4 slots: 20 used per round trip, 40 over two.
        for _ in 0..50 {
            buffer.observe_fetch(Duration::from_millis(5));
        }
        assert_eq!(buffer.low_water(), 40);
        assert!(!buffer.top_up_due(41), "above the mark");
        assert!(buffer.top_up_due(40), "at the mark");
        // Very slow fetches: at most the target.
        for _ in 0..50 {
            buffer.observe_fetch(Duration::from_secs(1));
        }
        assert_eq!(buffer.low_water(), 64);
    }
}

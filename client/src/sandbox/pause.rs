//! Pausing running tasks without losing their work: a task's future is simply not polled while
//! paused. A guest yields to the executor every `FUEL_YIELD_INTERVAL` units of fuel, so a pause
//! takes effect at its next yield point, with its whole state kept in its fiber; fuel and output
//! cannot change, since the guest never sees the pause. The wall-clock limit counts only the
//! time a task was allowed to run.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// One switch for every task that holds a clone: the volunteer's preferences (throttling, on
/// battery, a schedule, `musketeer pause`) flip it.
#[derive(Debug, Clone)]
pub struct PauseToken {
    paused: Arc<watch::Sender<bool>>,
    clock: Arc<Mutex<PausedClock>>,
}

/// How long the token has been paused in all, so that deadlines can leave that time out.
#[derive(Debug, Default)]
struct PausedClock {
    /// Sum of finished pauses.
    total: Duration,
    /// Start of the pause in progress.
    since: Option<Instant>,
}

impl PausedClock {
    fn total_at(&self, now: Instant) -> Duration {
        self.total + self.since.map_or(Duration::ZERO, |since| now - since)
    }
}

impl Default for PauseToken {
    fn default() -> Self {
        Self::new()
    }
}

impl PauseToken {
    /// A token that lets tasks run.
    pub fn new() -> Self {
        Self {
            paused: Arc::new(watch::Sender::new(false)),
            clock: Arc::new(Mutex::new(PausedClock::default())),
        }
    }

    /// Pauses (`true`) or resumes (`false`) every task holding this token.
    pub fn set_paused(&self, paused: bool) {
        let now = Instant::now();
        let mut clock = self.clock.lock().unwrap_or_else(|e| e.into_inner());
        match (paused, clock.since) {
            (true, None) => clock.since = Some(now),
            (false, Some(since)) => {
                clock.total += now - since;
                clock.since = None;
            }
            _ => {}
        }
        self.paused.send_replace(paused);
    }

    /// Whether tasks are paused now.
    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// Time spent paused since the token was made, up to now.
    pub fn paused_total(&self) -> Duration {
        let clock = self.clock.lock().unwrap_or_else(|e| e.into_inner());
        clock.total_at(Instant::now())
    }

    /// Completes once the token is paused (at once if it is).
    async fn until_paused(&self) {
        let mut watcher = self.paused.subscribe();
        // The sender lives in `self`, so the channel cannot close while this waits.
        let _ = watcher.wait_for(|&paused| paused).await;
    }

    /// Completes once the token is running (at once if it is).
    pub async fn until_running(&self) {
        let mut watcher = self.paused.subscribe();
        let _ = watcher.wait_for(|&paused| !paused).await;
    }

    /// Drives `work` only while the token is running. The check comes before every poll, so
    /// `work` stops at the first point where it yields after a pause.
    pub async fn run<F: Future>(&self, work: F) -> F::Output {
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                biased;
                () = self.until_paused() => self.until_running().await,
                output = work.as_mut() => return output,
            }
        }
    }
}

/// Measures the time a task was allowed to run: wall time since its start less the time its
/// token was paused.
#[derive(Debug, Clone)]
pub struct ActiveClock {
    started: Instant,
    token: Option<PauseToken>,
    paused_at_start: Duration,
}

impl ActiveClock {
    /// Starts counting now.
    pub fn start(token: Option<PauseToken>) -> Self {
        let paused_at_start = token
            .as_ref()
            .map_or(Duration::ZERO, PauseToken::paused_total);
        Self {
            started: Instant::now(),
            token,
            paused_at_start,
        }
    }

    /// Time paused since the start.
    pub fn paused(&self) -> Duration {
        self.token.as_ref().map_or(Duration::ZERO, |token| {
            token.paused_total().saturating_sub(self.paused_at_start)
        })
    }

    /// Time allowed to run since the start.
    pub fn active(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.paused())
    }

    /// Runs `work` until it completes or `limit` of active time has passed (`None` then).
    pub async fn timeout<F: Future>(&self, limit: Duration, work: F) -> Option<F::Output> {
        let mut work = std::pin::pin!(work);
        loop {
            let deadline = tokio::time::Instant::from_std(self.started + limit + self.paused());
            tokio::select! {
                output = work.as_mut() => return Some(output),
                () = tokio::time::sleep_until(deadline) => {
                    // A pause since the deadline was set moves it on.
                    if self.active() >= limit {
                        return None;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A future that needs `steps` polls, yielding between them like a guest at fuel yields.
    async fn steps(count: &std::sync::atomic::AtomicU32, steps: u32) {
        for _ in 0..steps {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_paused_task_makes_no_progress_and_resumes_where_it_stopped() {
        let token = PauseToken::new();
        let count = Arc::new(std::sync::atomic::AtomicU32::new(0));
        token.set_paused(true);
        let task = tokio::spawn({
            let (token, count) = (token.clone(), count.clone());
            async move { token.run(steps(&count, 1000)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 0);
        token.set_paused(false);
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("resumed")
            .expect("no panic");
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1000);
    }

    #[tokio::test]
    async fn paused_time_does_not_count_against_the_limit() {
        let token = PauseToken::new();
        let clock = ActiveClock::start(Some(token.clone()));
        token.set_paused(true);
        let resumer = tokio::spawn({
            let token = token.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                token.set_paused(false);
            }
        });
        // 400 ms of wall time, of which about 300 paused: well within a 250 ms active limit.
        let finished = clock
            .timeout(
                Duration::from_millis(250),
                tokio::time::sleep(Duration::from_millis(400)),
            )
            .await;
        resumer.await.expect("no panic");
        assert!(finished.is_some(), "paused time was counted");
        assert!(clock.paused() >= Duration::from_millis(300));
        // Without pauses the limit holds.
        let unpaused = ActiveClock::start(None);
        let timed_out = unpaused
            .timeout(
                Duration::from_millis(50),
                tokio::time::sleep(Duration::from_secs(30)),
            )
            .await;
        assert!(timed_out.is_none());
    }
}

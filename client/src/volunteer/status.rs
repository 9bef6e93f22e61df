//! What the client is doing now, for `musketeer status`: the units running, with their
//! progress, and the results waiting to be reported. The work loop registers each unit with a
//! guard that takes it off the board however the unit ends (finished, cancelled, aborted).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::Serialize;

use crate::sandbox::ProgressSink;

/// Counts the results waiting in the spool (set by the work loop, which owns the spool).
type SpoolCounter = Box<dyn Fn() -> usize + Send + Sync>;

/// The units running now and the spool's size.
#[derive(Clone, Default)]
pub struct StatusBoard {
    inner: Arc<Mutex<BoardState>>,
    next_key: Arc<AtomicU64>,
}

#[derive(Default)]
struct BoardState {
    running: BTreeMap<u64, RunningUnit>,
    spool: Option<SpoolCounter>,
    /// Assignments fetched and waiting for a slot.
    buffered: usize,
}

impl std::fmt::Debug for StatusBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusBoard")
            .field("running", &self.lock().running.len())
            .finish_non_exhaustive()
    }
}

/// One running unit.
#[derive(Debug, Clone)]
struct RunningUnit {
    unit_id: String,
    app: String,
    started: Instant,
    progress: Option<f64>,
    /// Still fetching, verifying or compiling its module: the task itself has not begun.
    preparing: bool,
}

/// A running unit as `musketeer status` shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct RunningView {
    /// The unit's id.
    pub unit_id: String,
    /// The app and version.
    pub app: String,
    /// Seconds since it started (paused time included).
    pub elapsed_s: u64,
    /// The fraction done, if the task reports it.
    pub progress: Option<f64>,
    /// Still fetching, verifying or compiling its module (the task itself has not begun).
    #[serde(default)]
    pub preparing: bool,
}

impl StatusBoard {
    fn lock(&self) -> MutexGuard<'_, BoardState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Shows `unit_id` of `app` as running (preparing its module until
    /// [`RunningGuard::task_begins`]) until the guard is dropped.
    pub fn start(&self, unit_id: String, app: String) -> RunningGuard {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        self.lock().running.insert(
            key,
            RunningUnit {
                unit_id,
                app,
                started: Instant::now(),
                progress: None,
                preparing: true,
            },
        );
        RunningGuard {
            board: self.clone(),
            key,
        }
    }

    /// Where the spool's size comes from.
    pub fn count_spool(&self, counter: impl Fn() -> usize + Send + Sync + 'static) {
        self.lock().spool = Some(Box::new(counter));
    }

    /// The running units, oldest first.
    pub fn running(&self) -> Vec<RunningView> {
        self.lock()
            .running
            .values()
            .map(|unit| RunningView {
                unit_id: unit.unit_id.clone(),
                app: unit.app.clone(),
                elapsed_s: unit.started.elapsed().as_secs(),
                progress: unit.progress,
                preparing: unit.preparing,
            })
            .collect()
    }

    /// Records how many fetched assignments wait for a slot.
    pub fn set_buffered(&self, buffered: usize) {
        self.lock().buffered = buffered;
    }

    /// Fetched assignments waiting for a slot.
    pub fn buffered(&self) -> usize {
        self.lock().buffered
    }

    /// Results finished and not yet acknowledged by the server.
    pub fn spooled(&self) -> usize {
        self.lock().spool.as_ref().map_or(0, |count| count())
    }
}

/// Keeps a unit on the board; takes it off when dropped.
pub struct RunningGuard {
    board: StatusBoard,
    key: u64,
}

impl RunningGuard {
    /// The module is ready and the task itself begins.
    pub fn task_begins(&self) {
        if let Some(unit) = self.board.lock().running.get_mut(&self.key) {
            unit.preparing = false;
        }
    }

    /// Records the task's progress reports on the board.
    pub fn progress_sink(&self) -> ProgressSink {
        let (board, key) = (self.board.clone(), self.key);
        Arc::new(move |fraction| {
            if let Some(unit) = board.lock().running.get_mut(&key) {
                unit.progress = Some(fraction.clamp(0.0, 1.0));
            }
        })
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.board.lock().running.remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_is_shown_while_its_guard_lives_with_its_progress() {
        let board = StatusBoard::default();
        let first = board.start("7".into(), "primes 1.0.0".into());
        let second = board.start("8".into(), "primes 1.0.0".into());
        (first.progress_sink())(0.25);
        let running = board.running();
        assert_eq!(running.len(), 2);
        assert_eq!(running[0].unit_id, "7");
        assert_eq!(running[0].progress, Some(0.25));
        assert_eq!(running[1].progress, None);
        drop(first);
        assert_eq!(board.running().len(), 1);
        drop(second);
        assert!(board.running().is_empty());
        assert_eq!(board.spooled(), 0);
        board.count_spool(|| 3);
        assert_eq!(board.spooled(), 3);
        assert_eq!(board.buffered(), 0);
        board.set_buffered(2);
        assert_eq!(board.buffered(), 2);
    }
}

//! The progress line of `submit --wait` and `batch status --wait`: a bar, counts, and a rate and
//! ETA measured over the last minute, so that a pause (or a watch started late) does not skew
//! them.

use std::collections::VecDeque;
use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use musketeer_protocol::{BatchState, BatchStatus};

/// How far back the rate looks.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Finished-unit counts seen over time; the rate is the change across the window.
#[derive(Debug)]
pub struct RateWindow {
    window: Duration,
    /// (when, units finished then), oldest first; one sample older than the window is kept as
    /// the window's start.
    samples: VecDeque<(Instant, u64)>,
}

impl RateWindow {
    /// A window of `window` length.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            samples: VecDeque::new(),
        }
    }

    /// Records that `finished` units were finished at `at`.
    pub fn observe(&mut self, at: Instant, finished: u64) {
        self.samples.push_back((at, finished));
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|(second, _)| at.duration_since(*second) >= self.window)
        {
            self.samples.pop_front();
        }
    }

    /// Units finished per second across the window; None until two samples span some time.
    pub fn per_second(&self) -> Option<f64> {
        let (first_at, first) = *self.samples.front()?;
        let (last_at, last) = *self.samples.back()?;
        let span = last_at.duration_since(first_at).as_secs_f64();
        (span > 0.0).then(|| last.saturating_sub(first) as f64 / span)
    }
}

/// Shows the progress of a batch on stderr: rewritten in place on a terminal, a line every
/// couple of seconds in a log, nothing with `-q`.
#[derive(Debug)]
pub struct Display {
    terminal: bool,
    rate: RateWindow,
    last_line: String,
    last_print: Option<Instant>,
    /// The batch's end was shown; later statuses (of the same end) are not.
    ended: bool,
}

impl Default for Display {
    fn default() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            rate: RateWindow::new(RATE_WINDOW),
            last_line: String::new(),
            last_print: None,
            ended: false,
        }
    }
}

impl Display {
    /// Whether stderr is a terminal (progress is refreshed more often there).
    pub fn terminal(&self) -> bool {
        self.terminal
    }

    /// Shows `status`.
    pub fn show(&mut self, status: &BatchStatus) {
        self.rate.observe(Instant::now(), status.counts.finished());
        if super::quiet() || self.ended {
            return;
        }
        let line = progress_line(status, self.rate.per_second());
        let finished = status.state != BatchState::Running;
        self.ended = finished;
        if self.terminal {
            eprint!("\r{line}\x1b[K");
            if finished {
                eprintln!();
            }
        } else if finished
            || (line != self.last_line
                && self
                    .last_print
                    .is_none_or(|at| at.elapsed() >= Duration::from_secs(2)))
        {
            eprintln!("{line}");
            self.last_print = Some(Instant::now());
        }
        self.last_line = line;
    }
}

/// `[#####-----] 12/30 done, 0 failed, 3 running, 3.1/s, ETA 6 s`
pub fn progress_line(status: &BatchStatus, per_second: Option<f64>) -> String {
    const WIDTH: usize = 24;
    let c = &status.counts;
    let total = c.total().max(1);
    let finished = c.finished();
    let filled = (finished as usize * WIDTH) / total as usize;
    let rate = match per_second {
        Some(rate) => format!("{rate:.1}/s"),
        None => String::from("--/s"),
    };
    let eta = match per_second {
        Some(rate) if rate > 0.0 && finished < total => {
            format!("{:.0} s", (total - finished) as f64 / rate)
        }
        _ => String::from("--"),
    };
    format!(
        "[{}{}] {}/{} done, {} failed, {} running, {rate}, ETA {eta}{}",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled),
        c.done,
        c.total(),
        c.failed,
        c.running,
        super::batch::stalled_note(status)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_follows_the_last_minute_not_the_whole_watch() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut rate = RateWindow::new(Duration::from_secs(60));
        assert_eq!(rate.per_second(), None);
        // 100 units already finished when the watch starts: they are not this watch's rate.
        rate.observe(at(0), 100);
        assert_eq!(rate.per_second(), None);
        // Then 5 units a second for two minutes.
        for second in 1..=120 {
            rate.observe(at(second), 100 + 5 * second);
        }
        let fast = rate.per_second().unwrap();
        assert!((fast - 5.0).abs() < 1e-9, "{fast}");
        // A pause: after a minute without progress the rate is zero, not the long-run mean.
        for second in 121..=200 {
            rate.observe(at(second), 700);
        }
        assert_eq!(rate.per_second(), Some(0.0));
        // Work resumes at 2 a second; half a minute later the window mixes pause and work.
        for second in 201..=230 {
            rate.observe(at(second), 700 + 2 * (second - 200));
        }
        let mixed = rate.per_second().unwrap();
        assert!(mixed > 0.9 && mixed < 1.1, "{mixed}");
    }

    #[test]
    fn the_eta_divides_the_remaining_units_by_the_window_rate() {
        let status: BatchStatus = serde_json::from_value(serde_json::json!({
            "id": 3, "app": "big", "version": "1.0.0", "label": null, "state": "running",
            "created_ms": 0, "first_unit": 1, "progress": 0.5, "priority": 0,
            "counts": {"queued": 40, "running": 5, "done": 45, "failed": 10, "cancelled": 0},
            "replication": {}, "hosts_able": 2,
        }))
        .expect("a batch status");
        let line = progress_line(&status, Some(4.5));
        assert!(
            line.contains("45/100 done, 10 failed, 5 running, 4.5/s, ETA 10 s"),
            "{line}"
        );
        let unknown = progress_line(&status, None);
        assert!(unknown.contains("--/s, ETA --"), "{unknown}");
        let stopped = progress_line(&status, Some(0.0));
        assert!(stopped.contains("0.0/s, ETA --"), "{stopped}");
    }
}

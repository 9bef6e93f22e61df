//! The gate: one place that decides whether work may run now, and why not.
//!
//! It reads the volunteer's preferences (again whenever `preferences.toml` changes), the power
//! supply, the clock and `musketeer pause`, and says what is suspended and why with an event
//! line when that changes. While anything suspends work, the work loop fetches nothing and
//! running tasks are paused at their next fuel yield (no work lost). Otherwise a CPU limit
//! below 100% is a duty cycle: tasks run for that share of every second and are paused for
//! the rest, like BOINC's CPU throttling.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use super::events::Events;
use super::prefs::{self, IdleSource, Preferences, PrefsError, PrefsFile};
use super::status::StatusBoard;
use crate::sandbox::PauseToken;

mod reason;

pub use reason::Reason;
use reason::unix_now;

/// How often conditions are checked, and the period of the CPU duty cycle.
const TICK: Duration = Duration::from_secs(1);
/// How often the user's idle time is asked for (a process each time).
const IDLE_CHECK: Duration = Duration::from_secs(10);
/// How often the data directory is measured (a walk over its files).
const DISK_CHECK: Duration = Duration::from_secs(30);

/// What the gate reads besides the preferences file.
#[derive(Debug, Clone)]
pub struct GateSetup {
    /// The data directory, which holds `preferences.toml`.
    pub data_dir: PathBuf,
    /// Preferences given as `join` flags; they win over the file.
    pub overrides: PrefsFile,
    /// Where power supplies are listed (`/sys/class/power_supply` on Linux).
    pub power_supply_dir: PathBuf,
    /// How long the user has given no input.
    pub idle: Arc<dyn IdleSource>,
}

/// The gate; clones share it.
#[derive(Debug, Clone)]
pub struct Gate {
    inner: Arc<Inner>,
    /// The units of the project this clone serves (see [`Gate::for_project`]).
    board: StatusBoard,
}

#[derive(Debug)]
struct Inner {
    setup: GateSetup,
    loaded: Mutex<Loaded>,
    user_pause: Mutex<Option<UserPause>>,
    token: PauseToken,
    suspended: watch::Sender<Vec<Reason>>,
    /// Wakes the driver when the volunteer pauses or resumes.
    poke: Notify,
    /// The last idle time read, and when (`None` inside: it could not be told).
    idle: Mutex<Option<(Instant, Option<Duration>)>>,
    /// The data directory's last measured size, and when.
    disk: Mutex<Option<(Instant, u64)>>,
}

/// The preferences in effect and the file text they came from.
#[derive(Debug)]
struct Loaded {
    prefs: Preferences,
    file: PrefsFile,
    /// The last error of a file that could not be used, said once.
    refused_text: Option<String>,
}

/// `musketeer pause`: until a time, or until resumed.
#[derive(Debug, Clone, Copy)]
struct UserPause {
    until_unix_s: Option<u64>,
}

impl Gate {
    /// Reads the preferences; a file that cannot be used is an error here (at start-up the
    /// volunteer is there to fix it; later changes that cannot be used are said and ignored).
    pub fn new(setup: GateSetup) -> Result<Self, PrefsError> {
        let file = PrefsFile::load(&setup.data_dir)?;
        let prefs = file.overridden_by(&setup.overrides).resolve()?;
        Ok(Self {
            inner: Arc::new(Inner {
                setup,
                loaded: Mutex::new(Loaded {
                    prefs,
                    file,
                    refused_text: None,
                }),
                user_pause: Mutex::new(None),
                token: PauseToken::new(),
                suspended: watch::Sender::new(Vec::new()),
                poke: Notify::new(),
                idle: Mutex::new(None),
                disk: Mutex::new(None),
            }),
            board: StatusBoard::default(),
        })
    }

    /// The token every running task of this client holds.
    pub fn pause_token(&self) -> PauseToken {
        self.inner.token.clone()
    }

    /// The units running and the results waiting, for `musketeer status`.
    pub fn board(&self) -> &StatusBoard {
        &self.board
    }

    /// The same gate with a board of its own: each project's work shows apart in `status`.
    pub fn for_project(&self) -> Gate {
        Gate {
            inner: Arc::clone(&self.inner),
            board: StatusBoard::default(),
        }
    }

    /// The preferences in effect.
    pub fn preferences(&self) -> Preferences {
        lock(&self.inner.loaded).prefs.clone()
    }

    /// Whether new work may be fetched and run now.
    pub fn is_open(&self) -> bool {
        self.inner.suspended.borrow().is_empty()
    }

    /// Why work is suspended (empty when it is not).
    pub fn reasons(&self) -> Vec<Reason> {
        self.inner.suspended.borrow().clone()
    }

    /// Completes once work may run (at once if it may).
    pub async fn until_open(&self) {
        let mut watcher = self.inner.suspended.subscribe();
        let _ = watcher.wait_for(Vec::is_empty).await;
    }

    /// `musketeer pause [--for]`.
    pub fn pause(&self, duration: Option<Duration>) {
        let until_unix_s = duration.map(|d| unix_now().saturating_add(d.as_secs().max(1)));
        *lock(&self.inner.user_pause) = Some(UserPause { until_unix_s });
        self.inner.poke.notify_one();
    }

    /// `musketeer resume`.
    pub fn resume(&self) {
        *lock(&self.inner.user_pause) = None;
        self.inner.poke.notify_one();
    }

    /// Checks the conditions now, announces a change and returns the reasons.
    fn evaluate(&self, events: &Events) -> Vec<Reason> {
        self.reload(events);
        let prefs = self.preferences();
        let mut reasons = Vec::new();
        {
            let mut user = lock(&self.inner.user_pause);
            if let Some(pause) = *user {
                if pause.until_unix_s.is_some_and(|until| unix_now() >= until) {
                    *user = None;
                } else {
                    reasons.push(Reason::UserPaused {
                        until_unix_s: pause.until_unix_s,
                    });
                }
            }
        }
        if !prefs.run_on_battery && prefs::on_battery(&self.inner.setup.power_supply_dir) {
            reasons.push(Reason::OnBattery);
        }
        if !prefs.schedule.allows(prefs::local_minute_of_day()) {
            reasons.push(Reason::OutsideSchedule {
                schedule: prefs.schedule.to_string(),
            });
        }
        if prefs.idle_minutes > 0 {
            let needed = Duration::from_secs(u64::from(prefs.idle_minutes) * 60);
            // Unknown (no logind): said once in the status, and work is not held back.
            if self.idle_for(events).is_some_and(|idle| idle < needed) {
                reasons.push(Reason::UserActive {
                    idle_minutes: prefs.idle_minutes,
                });
            }
        }
        if let Some(limit_mib) = prefs.max_disk_mib {
            let used_mib = self.disk_used() >> 20;
            if used_mib > limit_mib {
                reasons.push(Reason::DiskFull {
                    used_mib,
                    limit_mib,
                });
            }
        }
        let changed = *self.inner.suspended.borrow() != reasons;
        if changed {
            announce(events, &reasons);
            self.inner.suspended.send_replace(reasons.clone());
        }
        reasons
    }

    /// The user's idle time, asked for at most every [`IDLE_CHECK`].
    fn idle_for(&self, events: &Events) -> Option<Duration> {
        let mut cached = lock(&self.inner.idle);
        if let Some((at, idle)) = *cached
            && at.elapsed() < IDLE_CHECK
        {
            return idle.map(|idle| idle + at.elapsed());
        }
        let idle = self.inner.setup.idle.idle_for();
        if idle.is_none() && cached.is_none() {
            events.emit(
                "idle-unknown",
                serde_json::json!({}),
                "warning: cannot tell whether the computer is in use (no systemd-logind idle \
                 hint); idle_minutes is not applied",
            );
        }
        *cached = Some((Instant::now(), idle));
        idle
    }

    /// The data directory's size, measured at most every [`DISK_CHECK`].
    fn disk_used(&self) -> u64 {
        let mut cached = lock(&self.inner.disk);
        if let Some((at, used)) = *cached
            && at.elapsed() < DISK_CHECK
        {
            return used;
        }
        let used = prefs::bytes_used(&self.inner.setup.data_dir);
        *cached = Some((Instant::now(), used));
        used
    }

    /// Reads `preferences.toml` again; a change is announced, a file that cannot be used is
    /// said once and the preferences in effect stay.
    fn reload(&self, events: &Events) {
        let setup = &self.inner.setup;
        let resolved = PrefsFile::load(&setup.data_dir)
            .and_then(|file| Ok((file.overridden_by(&setup.overrides).resolve()?, file)));
        let mut loaded = lock(&self.inner.loaded);
        match resolved {
            Ok((prefs, file)) => {
                loaded.refused_text = None;
                if file != loaded.file {
                    events.emit(
                        "preferences",
                        serde_json::json!({"preferences": prefs}),
                        format!("changed: {}", describe(&prefs)),
                    );
                    loaded.file = file;
                    loaded.prefs = prefs;
                }
            }
            Err(error) => {
                let text = error.to_string();
                if loaded.refused_text.as_deref() != Some(&text) {
                    events.emit(
                        "preferences-refused",
                        serde_json::json!({"error": text}),
                        format!("{text}; the preferences in effect are kept until it is fixed"),
                    );
                    loaded.refused_text = Some(text);
                }
            }
        }
    }

    /// Drives the gate until the returned guard is dropped: says the preferences in effect,
    /// then checks the conditions every second (at once on pause and resume) and pauses or
    /// runs the tasks.
    pub fn spawn_driver(&self, events: Events) -> GateDriver {
        let gate = self.clone();
        GateDriver(tokio::spawn(async move {
            let token = &gate.inner.token;
            let prefs = gate.preferences();
            events.emit(
                "preferences",
                serde_json::json!({"preferences": prefs}),
                describe(&prefs),
            );
            loop {
                let reasons = gate.evaluate(&events);
                let cpu_percent = gate.preferences().cpu_percent;
                let running_share = if !reasons.iter().any(Reason::pauses_tasks) {
                    TICK * u32::from(cpu_percent) / 100
                } else {
                    Duration::ZERO
                };
                if !running_share.is_zero() {
                    token.set_paused(false);
                    if gate.sleep_or_poke(running_share).await {
                        continue;
                    }
                }
                let paused_share = TICK - running_share;
                if !paused_share.is_zero() {
                    token.set_paused(true);
                    gate.sleep_or_poke(paused_share).await;
                }
            }
        }))
    }

    /// Sleeps for `duration` or until a pause or resume; true if poked.
    async fn sleep_or_poke(&self, duration: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(duration) => false,
            () = self.inner.poke.notified() => true,
        }
    }
}

/// Stops the gate's driver when dropped.
#[derive(Debug)]
pub struct GateDriver(tokio::task::JoinHandle<()>);

impl Drop for GateDriver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The preferences in one line.
fn describe(prefs: &Preferences) -> String {
    format!(
        "preferences: CPU {}%, on battery: {}, schedule: {} (edit preferences.toml in the data \
         directory to change them)",
        prefs.cpu_percent,
        if prefs.run_on_battery {
            "run"
        } else {
            "suspend"
        },
        prefs.schedule
    )
}

/// Says what is suspended and why, or that work runs again.
fn announce(events: &Events, reasons: &[Reason]) {
    if reasons.is_empty() {
        events.emit(
            "resumed",
            serde_json::json!({}),
            "work runs again (nothing suspends it)",
        );
        return;
    }
    let why: Vec<String> = reasons.iter().map(ToString::to_string).collect();
    events.emit(
        "suspended",
        serde_json::json!({"reasons": reasons}),
        format!(
            "work suspended: {}; running tasks are paused, no new work is fetched",
            why.join("; ")
        ),
    );
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volunteer::events::LogFormat;

    /// An idle time the test sets.
    #[derive(Debug, Default)]
    struct FakeIdle(Mutex<Option<Duration>>);

    impl IdleSource for FakeIdle {
        fn idle_for(&self) -> Option<Duration> {
            *lock(&self.0)
        }
    }

    fn gate(dir: &std::path::Path, overrides: PrefsFile) -> Gate {
        gate_with_idle(dir, overrides, Arc::new(FakeIdle::default()))
    }

    fn gate_with_idle(
        dir: &std::path::Path,
        overrides: PrefsFile,
        idle: Arc<dyn IdleSource>,
    ) -> Gate {
        Gate::new(GateSetup {
            data_dir: dir.to_path_buf(),
            overrides,
            power_supply_dir: dir.join("power"),
            idle,
        })
        .expect("gate")
    }

    fn mains(dir: &std::path::Path, online: bool) {
        let ac = dir.join("power").join("AC");
        std::fs::create_dir_all(&ac).expect("supply");
        std::fs::write(ac.join("type"), "Mains\n").expect("type");
        std::fs::write(ac.join("online"), if online { "1\n" } else { "0\n" }).expect("online");
    }

    #[test]
    fn battery_schedule_and_pause_each_suspend_with_their_reason() {
        let dir = tempfile::tempdir().expect("temp dir");
        let events = Events::new(LogFormat::Json, "test");
        let gate = gate(dir.path(), PrefsFile::default());
        assert!(gate.evaluate(&events).is_empty());
        assert!(gate.is_open());

        mains(dir.path(), false);
        assert_eq!(gate.evaluate(&events), vec![Reason::OnBattery]);
        assert!(!gate.is_open());
        std::fs::write(dir.path().join(prefs::FILE_NAME), "run_on_battery = true\n")
            .expect("prefs");
        assert!(gate.evaluate(&events).is_empty(), "the file is read again");

        // A schedule that excludes this minute: the range starts after it and ends before.
        let now = prefs::local_minute_of_day();
        let (start, end) = ((now + 1) % 1440, now);
        let range = format!(
            "{:02}:{:02}-{:02}:{:02}",
            start / 60,
            start % 60,
            end / 60,
            end % 60
        );
        std::fs::write(
            dir.path().join(prefs::FILE_NAME),
            format!("run_on_battery = true\nschedule = \"{range}\"\n"),
        )
        .expect("prefs");
        let reasons = gate.evaluate(&events);
        // The minute may have turned between reading it and evaluating: then it is allowed.
        if prefs::local_minute_of_day() == now {
            assert!(
                matches!(reasons.as_slice(), [Reason::OutsideSchedule { .. }]),
                "{reasons:?}"
            );
        }
        std::fs::write(dir.path().join(prefs::FILE_NAME), "run_on_battery = true\n")
            .expect("prefs");

        gate.pause(None);
        assert_eq!(
            gate.evaluate(&events),
            vec![Reason::UserPaused { until_unix_s: None }]
        );
        gate.resume();
        assert!(gate.evaluate(&events).is_empty());
    }

    #[test]
    fn a_broken_file_later_keeps_the_preferences_in_effect() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(prefs::FILE_NAME), "cpu_percent = 30\n").expect("prefs");
        let events = Events::new(LogFormat::Json, "test");
        let gate = gate(dir.path(), PrefsFile::default());
        assert_eq!(gate.preferences().cpu_percent, 30);
        std::fs::write(dir.path().join(prefs::FILE_NAME), "cpu_percent = 300\n").expect("prefs");
        gate.evaluate(&events);
        assert_eq!(gate.preferences().cpu_percent, 30);
        std::fs::write(dir.path().join(prefs::FILE_NAME), "cpu_percent = 60\n").expect("prefs");
        gate.evaluate(&events);
        assert_eq!(gate.preferences().cpu_percent, 60);
        // A flag wins over the file.
        let pinned = self::gate(
            dir.path(),
            PrefsFile {
                cpu_percent: Some(90),
                ..PrefsFile::default()
            },
        );
        assert_eq!(pinned.preferences().cpu_percent, 90);
    }

    #[test]
    fn input_within_the_idle_minutes_suspends_and_a_full_disk_holds_back_new_work() {
        let dir = tempfile::tempdir().expect("temp dir");
        let events = Events::new(LogFormat::Json, "test");
        let idle = Arc::new(FakeIdle(Mutex::new(Some(Duration::from_secs(60)))));
        let idle_and_disk = || {
            let prefs = PrefsFile {
                idle_minutes: Some(5),
                max_disk_mib: Some(1),
                ..PrefsFile::default()
            };
            gate_with_idle(dir.path(), prefs, idle.clone())
        };
        assert_eq!(
            idle_and_disk().evaluate(&events),
            vec![Reason::UserActive { idle_minutes: 5 }]
        );
        // Read again only after IDLE_CHECK; a fresh gate sees the user gone for 10 minutes.
        *lock(&idle.0) = Some(Duration::from_secs(600));
        std::fs::write(dir.path().join("big"), vec![0u8; 3 << 20]).expect("file");
        let reasons = idle_and_disk().evaluate(&events);
        assert_eq!(
            reasons,
            vec![Reason::DiskFull {
                used_mib: 3,
                limit_mib: 1
            }]
        );
        assert!(!reasons.iter().any(Reason::pauses_tasks));
        // No idle hint at all: not held back.
        *lock(&idle.0) = None;
        std::fs::remove_file(dir.path().join("big")).expect("remove");
        let unknown = gate_with_idle(
            dir.path(),
            PrefsFile {
                idle_minutes: Some(5),
                ..PrefsFile::default()
            },
            idle,
        );
        assert!(unknown.evaluate(&events).is_empty());
    }

    #[tokio::test]
    async fn a_cpu_limit_pauses_tasks_for_the_rest_of_each_second() {
        let dir = tempfile::tempdir().expect("temp dir");
        let gate = gate(
            dir.path(),
            PrefsFile {
                cpu_percent: Some(25),
                ..PrefsFile::default()
            },
        );
        let token = gate.pause_token();
        let driver = gate.spawn_driver(Events::new(LogFormat::Json, "test"));
        let token = token.clone();
        // Sample the token every 10 ms over about 3 s; wide bounds, as a busy machine delays
        // both the driver and the sampler.
        let mut running = 0u32;
        for _ in 0..300 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if !token.is_paused() {
                running += 1;
            }
        }
        drop(driver);
        assert!(
            (30..=135).contains(&running),
            "ran {running} of 300 samples"
        );
    }
}

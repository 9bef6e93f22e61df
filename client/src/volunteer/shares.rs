//! Resource shares between the projects one client serves, with BOINC's semantics: each
//! project is owed a long-term share of the CPU time, not a turn per unit.
//!
//! Every project keeps a *debt* in CPU-seconds: while it is active (it runs work or has work
//! waiting) it is owed its share of the CPU time all projects used, and pays for the time its own
//! tasks used. When a slot frees, the project with work waiting and the largest debt starts next.
//! A project that has no work is not active and accrues nothing, so coming back it cannot starve
//! the others; debts are also bounded ([`Shares::max_debt`]) and fade with a half-life, like
//! BOINC's recent estimated credit (REC), so an old imbalance is not paid back forever.
//!
//! CPU time is counted as slot-seconds: a running task keeps one core busy (tasks are CPU-bound
//! and each slot runs one). This module is plain bookkeeping; time comes in through
//! [`Shares::advance`], so it is tested without clocks.

use std::collections::BTreeMap;
use std::time::Duration;

/// How fast debts and recent CPU use fade (BOINC's REC half-life is 10 days by default; a
/// client restarts more often than that, and its ledger is not kept across restarts).
pub const DEFAULT_HALF_LIFE: Duration = Duration::from_secs(24 * 3600);

/// Largest debt per slot, in CPU-seconds: how long a project that was under-served may have
/// the whole machine to catch up.
pub const MAX_DEBT_PER_SLOT: f64 = 600.0;

/// The share every project gets unless told otherwise (BOINC's default, too).
pub const DEFAULT_SHARE: u32 = 100;

/// One project's account.
#[derive(Debug, Clone, Default)]
struct Account {
    share: u32,
    /// CPU-seconds owed to it (negative: it used more than its share).
    debt: f64,
    /// Recently used CPU-seconds, decayed with the half-life.
    recent: f64,
    /// CPU-seconds used since it was attached.
    total: f64,
    /// Tasks of it running now.
    running: usize,
    /// Whether it has work waiting for a slot.
    waiting: bool,
}

impl Account {
    fn active(&self) -> bool {
        self.running > 0 || self.waiting
    }
}

/// A project's standing, for `musketeer status`.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    /// Its resource share.
    pub share: u32,
    /// CPU-seconds owed to it.
    pub debt: f64,
    /// Recently used CPU-seconds (decayed).
    pub recent: f64,
    /// CPU-seconds used since it was attached in this run.
    pub total: f64,
}

/// The ledger of every attached project.
#[derive(Debug, Clone)]
pub struct Shares {
    accounts: BTreeMap<String, Account>,
    half_life: Duration,
    max_debt: f64,
}

impl Shares {
    /// A ledger for `slots` slots with the default half-life and debt bound.
    pub fn new(slots: usize) -> Self {
        Self::with_limits(DEFAULT_HALF_LIFE, MAX_DEBT_PER_SLOT * slots.max(1) as f64)
    }

    /// A ledger whose debts fade with `half_life` and stay within `max_debt` CPU-seconds.
    pub fn with_limits(half_life: Duration, max_debt: f64) -> Self {
        Self {
            accounts: BTreeMap::new(),
            half_life,
            max_debt,
        }
    }

    /// The bound on any debt, in CPU-seconds.
    pub fn max_debt(&self) -> f64 {
        self.max_debt
    }

    /// Adds `project` (or changes its share); a share of 0 counts as 1.
    pub fn attach(&mut self, project: &str, share: u32) {
        self.accounts.entry(project.to_owned()).or_default().share = share.max(1);
    }

    /// How many projects are attached.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// Whether no project is attached.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Forgets `project`.
    pub fn detach(&mut self, project: &str) {
        self.accounts.remove(project);
    }

    /// Says whether `project` has work waiting for a slot; whether that changed anything.
    pub fn set_waiting(&mut self, project: &str, waiting: bool) -> bool {
        match self.accounts.get_mut(project) {
            Some(account) if account.waiting != waiting => {
                account.waiting = waiting;
                true
            }
            _ => false,
        }
    }

    /// A task of `project` started.
    pub fn started(&mut self, project: &str) {
        if let Some(account) = self.accounts.get_mut(project) {
            account.running += 1;
        }
    }

    /// A task of `project` ended.
    pub fn finished(&mut self, project: &str) {
        if let Some(account) = self.accounts.get_mut(project) {
            account.running = account.running.saturating_sub(1);
        }
    }

    /// Charges `elapsed` of wall time: each running task used that much CPU time, and every
    /// active project is owed its share of the sum.
    pub fn advance(&mut self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if seconds <= 0.0 {
            return;
        }
        let fade = 0.5f64.powf(seconds / self.half_life.as_secs_f64().max(1.0));
        let used_by_all: f64 = self
            .accounts
            .values()
            .map(|a| a.running as f64 * seconds)
            .sum();
        let active_shares: f64 = self
            .accounts
            .values()
            .filter(|a| a.active())
            .map(|a| f64::from(a.share))
            .sum();
        for account in self.accounts.values_mut() {
            let used = account.running as f64 * seconds;
            account.total += used;
            account.recent = account.recent * fade + used;
            if account.active() && active_shares > 0.0 {
                let owed = used_by_all * f64::from(account.share) / active_shares;
                account.debt += owed - used;
            }
            account.debt = (account.debt * fade).clamp(-self.max_debt, self.max_debt);
        }
    }

    /// Which of the projects with work waiting should start next: the one owed the most CPU
    /// time (ties: the larger share, then the name). `None` when none waits.
    pub fn next(&self) -> Option<&str> {
        self.accounts
            .iter()
            .filter(|(_, a)| a.waiting)
            .max_by(|(name_a, a), (name_b, b)| {
                a.debt
                    .total_cmp(&b.debt)
                    .then(a.share.cmp(&b.share))
                    .then(name_b.cmp(name_a))
            })
            .map(|(name, _)| name.as_str())
    }

    /// `project`'s standing.
    pub fn standing(&self, project: &str) -> Option<Standing> {
        self.accounts.get(project).map(|a| Standing {
            share: a.share,
            debt: a.debt,
            recent: a.recent,
            total: a.total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `slots` slots for `seconds`, in steps of `step`, with tasks of `task` seconds; a
    /// project has work while `has_work(name, t)` says so. Returns the CPU-seconds each used.
    fn simulate(
        shares: &mut Shares,
        slots: usize,
        seconds: f64,
        task: f64,
        has_work: impl Fn(&str, f64) -> bool,
    ) -> BTreeMap<String, f64> {
        let step = 0.05;
        let names: Vec<String> = shares.accounts.keys().cloned().collect();
        let start_total: BTreeMap<String, f64> = names
            .iter()
            .map(|n| (n.clone(), shares.standing(n).map_or(0.0, |s| s.total)))
            .collect();
        // (project, time left) per busy slot.
        let mut busy: Vec<(String, f64)> = Vec::new();
        let mut t = 0.0;
        while t < seconds {
            for name in &names {
                shares.set_waiting(name, has_work(name, t));
            }
            while busy.len() < slots {
                let Some(next) = shares.next().map(str::to_owned) else {
                    break;
                };
                shares.started(&next);
                busy.push((next, task));
            }
            shares.advance(Duration::from_secs_f64(step));
            t += step;
            for (name, left) in &mut busy {
                *left -= step;
                if *left <= 1e-9 {
                    shares.finished(name);
                }
            }
            busy.retain(|(_, left)| *left > 1e-9);
        }
        names
            .iter()
            .map(|n| {
                let used = shares.standing(n).map_or(0.0, |s| s.total) - start_total[n];
                (n.clone(), used)
            })
            .collect()
    }

    fn fraction(used: &BTreeMap<String, f64>, name: &str) -> f64 {
        used[name] / used.values().sum::<f64>()
    }

    #[test]
    fn cpu_time_follows_the_shares_not_a_turn_per_unit() {
        let mut shares = Shares::new(2);
        shares.attach("a", 100);
        shares.attach("b", 300);
        let used = simulate(&mut shares, 2, 600.0, 1.0, |_, _| true);
        let a = fraction(&used, "a");
        assert!((a - 0.25).abs() < 0.01, "a used {a} of the CPU");
    }

    #[test]
    fn shares_hold_when_tasks_differ_in_length() {
        // Round robin per unit would give the long-task project most of the time.
        let mut shares = Shares::new(3);
        shares.attach("long", 100);
        shares.attach("short", 100);
        let mut used = BTreeMap::new();
        let mut busy: Vec<(&str, f64)> = Vec::new();
        for name in ["long", "short"] {
            shares.set_waiting(name, true);
            used.insert(name, 0.0);
        }
        let step = 0.05;
        for _ in 0..20_000 {
            while busy.len() < 3 {
                let next = if shares.next() == Some("long") {
                    "long"
                } else {
                    "short"
                };
                shares.started(next);
                busy.push((next, if next == "long" { 5.0 } else { 0.5 }));
            }
            shares.advance(Duration::from_secs_f64(step));
            for (name, left) in &mut busy {
                *left -= step;
                *used.get_mut(name).expect("known") += step;
                if *left <= 1e-9 {
                    shares.finished(name);
                }
            }
            busy.retain(|(_, left)| *left > 1e-9);
        }
        let long = used["long"] / (used["long"] + used["short"]);
        assert!((long - 0.5).abs() < 0.03, "long used {long} of the CPU");
    }

    #[test]
    fn a_project_without_work_leaves_its_slots_to_the_others() {
        let mut shares = Shares::new(2);
        shares.attach("a", 100);
        shares.attach("b", 100);
        let used = simulate(&mut shares, 2, 100.0, 1.0, |name, _| name == "b");
        assert!(used["a"] == 0.0 && used["b"] > 190.0, "{used:?}");
    }

    #[test]
    fn idle_time_earns_no_claim_that_starves_the_others_later() {
        let mut shares = Shares::new(2);
        shares.attach("a", 100);
        shares.attach("b", 100);
        // "a" has no work for a long time, then comes back.
        simulate(&mut shares, 2, 3000.0, 1.0, |name, _| name == "b");
        let standing = shares.standing("a").expect("attached");
        assert!(standing.debt.abs() < 1e-6, "idle accrued {}", standing.debt);
        let used = simulate(&mut shares, 2, 60.0, 1.0, |_, _| true);
        let a = fraction(&used, "a");
        assert!(
            (a - 0.5).abs() < 0.05,
            "a took {a} of the CPU on its return"
        );
    }

    #[test]
    fn debts_stay_within_their_bound_and_fade() {
        let mut shares = Shares::with_limits(Duration::from_secs(100), 50.0);
        shares.attach("a", 100);
        shares.attach("b", 100);
        // "a" waits but never gets a slot (one slot, always taken by "b" here).
        shares.set_waiting("a", true);
        shares.started("b");
        shares.advance(Duration::from_secs(1000));
        let a = shares.standing("a").expect("attached");
        assert!(a.debt > 0.0 && a.debt <= 50.0, "{a:?}");
        assert_eq!(shares.next(), Some("a"));
        shares.finished("b");
        shares.set_waiting("a", false);
        shares.advance(Duration::from_secs(1000));
        let faded = shares.standing("a").expect("attached").debt;
        assert!(faded < a.debt / 100.0, "{faded}");
    }

    #[test]
    fn a_changed_share_takes_effect_and_detached_projects_are_not_chosen() {
        let mut shares = Shares::new(2);
        shares.attach("a", 100);
        shares.attach("b", 100);
        shares.attach("b", 900);
        let used = simulate(&mut shares, 2, 600.0, 1.0, |_, _| true);
        assert!((fraction(&used, "b") - 0.9).abs() < 0.02, "{used:?}");
        shares.detach("b");
        shares.set_waiting("b", true);
        assert_eq!(shares.next(), Some("a"));
        assert!(shares.standing("b").is_none());
    }
}

//! The simulated hosts: how fast they are and what they report.

use musketeer_protocol::{ErrorKind, UnitId};

use crate::domain::lifecycle::Reported;

/// What a host does with the work it fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Computes every unit right.
    Honest,
    /// Returns its own random wrong output on a share of its units (per mille).
    Liar {
        /// How often it lies.
        per_mille: u32,
    },
    /// Returns the group's agreed forged output on every unit.
    Colluder {
        /// Members of one group forge the same bytes.
        group: u32,
    },
    /// Reports an error for every unit, at once.
    ErrorFlooder,
    /// Computes right but vanishes without reporting on a share of its units (per mille).
    Crasher {
        /// How often it drops a unit.
        per_mille: u32,
    },
}

impl Behaviour {
    /// Whether the host attacks the project (for the credit-share goal).
    pub fn is_attacker(self) -> bool {
        matches!(
            self,
            Behaviour::Liar { .. } | Behaviour::Colluder { .. } | Behaviour::ErrorFlooder
        )
    }
}

/// One simulated host.
#[derive(Debug, Clone)]
pub struct Agent {
    /// What it does.
    pub behaviour: Behaviour,
    /// Units it runs at once.
    pub slots: u32,
    /// Milliseconds one unit takes it.
    pub unit_ms: u64,
    /// Its network (hosts of one network share it).
    pub network: String,
}

impl Agent {
    /// Units per second it would compute, honestly.
    pub fn throughput(&self) -> f64 {
        f64::from(self.slots) * 1000.0 / self.unit_ms as f64
    }
}

/// The right output of a unit.
pub fn truth(unit: UnitId) -> Vec<u8> {
    format!("ok-{}", unit.0).into_bytes()
}

/// Fuel an honest host measures for any unit (the 17,000-fuel task).
pub const HONEST_FUEL: u64 = 17_000;

/// What `agent` reports for `unit`, or `None` if it vanishes. `draw` is uniform in 0..1000.
pub fn outcome(
    agent: &Agent,
    host: u64,
    unit: UnitId,
    draw: u32,
    max_fuel: u64,
) -> Option<Reported> {
    let success = |output: Vec<u8>, fuel| Reported::Success {
        output,
        fuel,
        wall_ms: agent.unit_ms,
        stderr_tail: String::new(),
    };
    match agent.behaviour {
        Behaviour::Honest => Some(success(truth(unit), HONEST_FUEL)),
        Behaviour::Liar { per_mille } if draw < per_mille => Some(success(
            format!("lie-{host}-{}", unit.0).into_bytes(),
            max_fuel,
        )),
        Behaviour::Liar { .. } => Some(success(truth(unit), HONEST_FUEL)),
        Behaviour::Colluder { group } => Some(success(
            format!("forged-{group}-{}", unit.0).into_bytes(),
            max_fuel,
        )),
        Behaviour::ErrorFlooder => Some(Reported::Error {
            kind: ErrorKind::TaskError,
            message: "flood".into(),
            stderr_tail: String::new(),
        }),
        Behaviour::Crasher { per_mille } if draw < per_mille => None,
        Behaviour::Crasher { .. } => Some(success(truth(unit), HONEST_FUEL)),
    }
}

/// A small deterministic generator (SplitMix64), so that every run replays the same way.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

//! How long the machine's user has given no input, for "run only when idle".
//!
//! On Linux the source is systemd-logind's view of the machine's physical seat:
//! `loginctl show-seat seat0` gives `IdleHint` (yes once every session on the seat is idle:
//! the desktop says so, typically when the screen blanks; a text console when its terminal saw
//! no input) and `IdleSinceHint` (when that changed). The seat, not this process's user, so that
//! a system service sees the person at the keyboard too. Input devices themselves (/dev/input,
//! X11 or Wayland idle protocols) are not read: the client has no access to them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the idle time comes from; tests give their own.
pub trait IdleSource: Send + Sync + std::fmt::Debug {
    /// How long there has been no input; `None` when it cannot be told.
    fn idle_for(&self) -> Option<Duration>;
}

/// systemd-logind's idle hint for the machine's seat.
#[derive(Debug, Default)]
pub struct Logind;

impl IdleSource for Logind {
    fn idle_for(&self) -> Option<Duration> {
        let output = std::process::Command::new("loginctl")
            .args(["show-seat", "seat0", "--property=IdleHint"])
            .arg("--property=IdleSinceHint")
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        if !output.status.success() {
            return None;
        }
        let now_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_micros();
        parse_loginctl(&String::from_utf8_lossy(&output.stdout), now_us)
    }
}

/// The idle time in `loginctl show-seat` output, at `now_us` (microseconds since the epoch).
fn parse_loginctl(text: &str, now_us: u128) -> Option<Duration> {
    let value = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
    };
    match value("IdleHint")? {
        "no" => Some(Duration::ZERO),
        "yes" => {
            let since: u128 = value("IdleSinceHint")?.parse().ok()?;
            let idle_us = now_us.checked_sub(since)?;
            Some(Duration::from_micros(u64::try_from(idle_us).ok()?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logind_hints_become_an_idle_time() {
        let now = 1_000_000_000_000u128;
        assert_eq!(
            parse_loginctl("IdleHint=no\nIdleSinceHint=0\n", now),
            Some(Duration::ZERO)
        );
        let idle = format!("IdleHint=yes\nIdleSinceHint={}\n", now - 90_000_000);
        assert_eq!(parse_loginctl(&idle, now), Some(Duration::from_secs(90)));
        assert_eq!(parse_loginctl("IdleHint=maybe\n", now), None);
        assert_eq!(parse_loginctl("", now), None);
        assert_eq!(parse_loginctl("IdleHint=yes\nIdleSinceHint=x\n", now), None);
    }
}

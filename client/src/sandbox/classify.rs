//! Turns the way a run ended into the [`RunError`] that tells the truth about it: which limit,
//! which phase (instantiation or `run`), which kind of trap, in one sanitised line.

use musketeer_protocol::guest_text;
use musketeer_signing_keys::Limits;
use wasmtime::{Trap, WasmBacktrace};
use wasmtime_wasi::I32Exit;

use super::error::RunError;
use super::limiter::LimitHit;

/// Longest reason taken from guest text (a panic message) or from a wasmtime error.
pub const MAX_REASON: usize = 1024;

/// wasmtime 48 reports these only as text (private error types), so they are matched by text.
const RESOURCE_LIMIT_PREFIX: &str = "resource limit exceeded:";
const HOSTCALL_FUEL_TEXT: &str = "fuel allocated for hostcalls has been exhausted";

/// Everything known about a failed run besides the error itself.
pub struct Ending<'a> {
    /// The manifest's limits (memory possibly lowered by the volunteer).
    pub limits: &'a Limits,
    /// The instantiation budget, reported when start-up code exhausts it.
    pub instantiation_fuel: u64,
    /// Whether instantiation had finished (so `run` was called).
    pub instantiated: bool,
    /// Which store limit the limiter refused, if any.
    pub limit_hit: Option<LimitHit>,
    /// The most bytes the host lifts out of the task in one call (output or host-call argument).
    pub lift_cap: usize,
    /// Captured stdout and stderr, and their cap.
    pub stdout: &'a [u8],
    pub stderr: &'a [u8],
    pub stdio_cap: usize,
}

/// Names the cause of `error`.
pub fn classify(error: &wasmtime::Error, ending: &Ending<'_>) -> RunError {
    let limits = ending.limits;
    match ending.limit_hit {
        Some(LimitHit::Memory) => {
            return RunError::MemoryLimit {
                limit: limits.memory_bytes,
            };
        }
        Some(LimitHit::Table) => {
            return RunError::ResourceLimit(format!(
                "a table of the task would exceed {} elements",
                super::limiter::MAX_TABLE_ELEMENTS
            ));
        }
        None => {}
    }
    let trap = error.downcast_ref::<Trap>();
    match trap {
        Some(Trap::OutOfFuel) if !ending.instantiated => {
            return RunError::InstantiationFuelExhausted {
                limit: ending.instantiation_fuel,
            };
        }
        Some(Trap::OutOfFuel) => return RunError::FuelExhausted { limit: limits.fuel },
        Some(Trap::Interrupt) => {
            return RunError::WallTimeout {
                limit_ms: limits.wall_time_ms,
            };
        }
        Some(Trap::StackOverflow) => return RunError::StackOverflow,
        Some(Trap::MemoryOutOfBounds) => return RunError::MemoryFault,
        _ => {}
    }
    // A full pipe makes the guest's print fail; Rust guests then panic and trap.
    for (stream, captured) in [("stdout", ending.stdout), ("stderr", ending.stderr)] {
        if captured.len() >= ending.stdio_cap {
            return RunError::StdioFlood {
                stream,
                cap: ending.stdio_cap,
            };
        }
    }
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return RunError::Exited { code: exit.0 };
    }
    if let Some(Trap::UnreachableCodeReached) = trap {
        return match panic_message(ending.stderr) {
            Some(message) => RunError::Panicked(message),
            None => RunError::Trap(
                "the task reached an `unreachable` instruction (it aborted without a message)"
                    .into(),
            ),
        };
    }
    if let Some(trap) = trap {
        return RunError::Trap(guest_text::sanitize(&trap.to_string(), MAX_REASON));
    }
    let root = guest_text::sanitize(&error.root_cause().to_string(), MAX_REASON);
    if root.starts_with(RESOURCE_LIMIT_PREFIX) {
        return RunError::ResourceLimit(root);
    }
    if root.contains(HOSTCALL_FUEL_TEXT) {
        // An argument of a host call is lifted while the guest's frames are on the stack, so
        // the error carries a wasm backtrace; the output is lifted after `run` returned.
        let during_host_call = error.downcast_ref::<WasmBacktrace>().is_some();
        if ending.instantiated && !during_host_call {
            return RunError::OutputTooLarge {
                limit: limits.output_bytes,
                actual: None,
            };
        }
        return RunError::ResourceLimit(format!(
            "the task passed more than {} bytes to one host call",
            ending.lift_cap
        ));
    }
    RunError::Trap(root)
}

/// The message of a Rust panic as the default hook printed it on stderr
/// (`thread '..' panicked at FILE:LINE:COL:\nMESSAGE\nnote: ...`), on one line.
fn panic_message(stderr: &[u8]) -> Option<String> {
    let stderr = String::from_utf8_lossy(stderr);
    let (_, after) = stderr.rsplit_once("panicked at ")?;
    let mut lines = after.lines();
    let location = lines.next().unwrap_or_default().trim_end_matches(':');
    let message: Vec<&str> = lines
        .take_while(|line| !line.starts_with("note: "))
        .collect();
    let text = format!("{} (at {location})", message.join("\n"));
    Some(guest_text::sanitize(&text, MAX_REASON))
}

#[cfg(test)]
mod tests {
    use super::panic_message;

    #[test]
    fn panic_messages_are_read_from_the_default_hook() {
        let stderr = b"log\nthread '<unnamed>' panicked at src/modes.rs:95:38:\nboom\x1b[2J\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            panic_message(stderr).as_deref(),
            Some("boom\\x1b[2J (at src/modes.rs:95:38)")
        );
        assert_eq!(panic_message(b"no panic here"), None);
    }
}

//! `float-corners`: float arithmetic and NaN corner cases, reported bit for bit.
//!
//! The same module must give the same bytes on every volunteer's machine (x86-64, AArch64,
//! ARMv7 through Pulley); the host's NaN canonicalization is what makes the NaN cases agree.
//! The input is ignored. The output is `{"cases":[{"name":..,"bits":"0x..","value":..},...]}`
//! in a fixed order: NaN producers for f64 and f32 (0/0, inf-inf, sqrt(-1), signaling and
//! payload NaNs, demote/promote), rounding, fused multiply-add, transcendental functions (the
//! software libm compiled into the module), float/int conversions, and long accumulations.
//! `bits` is the raw IEEE bit pattern (or the integer's two's complement) in hex.

mod cases;

musketeer_task_sdk::task!(run);

/// A struct rather than `json!`, so each case keeps its field order (`name`, `bits`, `value`).
#[derive(serde::Serialize)]
struct Output {
    cases: Vec<cases::Case>,
}

fn run(_input: &[u8]) -> Result<Vec<u8>, String> {
    musketeer_task_sdk::to_json(&Output {
        cases: cases::all(),
    })
}

//! The float corner cases and how each is reported.
//!
//! Every operand goes through `black_box`, so the operation runs in the module at run time
//! instead of being folded by the compiler (which would hide what the sandbox does).

// `0/0` and `inf-inf` are the point of this module.
#![allow(clippy::eq_op)]

use std::hint::black_box as bb;

use serde::Serialize;

/// One computed value: its raw bits (hex, two's complement for integers) and Rust's `{:?}`.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct Case {
    /// What was computed, e.g. `f64 0/0`.
    pub name: &'static str,
    /// `0x` + 16 hex digits for f64/i64/u64, 8 for f32/i32/u32.
    pub bits: String,
    /// The value as Rust's `Debug` prints it (`NaN` for every NaN, whatever its bits).
    pub value: String,
}

fn f64_case(name: &'static str, v: f64) -> Case {
    Case {
        name,
        bits: format!("0x{:016x}", v.to_bits()),
        value: format!("{v:?}"),
    }
}

fn f32_case(name: &'static str, v: f32) -> Case {
    Case {
        name,
        bits: format!("0x{:08x}", v.to_bits()),
        value: format!("{v:?}"),
    }
}

fn i64_case(name: &'static str, v: i64) -> Case {
    Case {
        name,
        bits: format!("0x{:016x}", v as u64),
        value: v.to_string(),
    }
}

fn i32_case(name: &'static str, v: i32) -> Case {
    Case {
        name,
        bits: format!("0x{:08x}", v as u32),
        value: v.to_string(),
    }
}

fn u64_case(name: &'static str, v: u64) -> Case {
    Case {
        name,
        bits: format!("0x{v:016x}"),
        value: v.to_string(),
    }
}

/// All cases, in a fixed order.
pub fn all() -> Vec<Case> {
    let mut cases = nan_f64();
    cases.extend(nan_f32());
    cases.extend(rounding());
    cases.extend(fused());
    cases.extend(transcendental());
    cases.extend(conversions());
    cases.extend(accumulated());
    cases
}

fn nan_f64() -> Vec<Case> {
    let zero = bb(0.0f64);
    let one = bb(1.0f64);
    let inf = bb(f64::INFINITY);
    let signaling = bb(f64::from_bits(0x7ff0_0000_0000_0001));
    let payload = bb(f64::from_bits(0x7ff8_dead_beef_0001));
    let negative = bb(f64::from_bits(0xfff8_0000_0000_0000));
    vec![
        f64_case("f64 0/0", zero / zero),
        f64_case("f64 inf-inf", inf - inf),
        f64_case("f64 inf*0", inf * zero),
        f64_case("f64 sqrt(-1)", bb(-1.0f64).sqrt()),
        f64_case("f64 signaling-nan+0", signaling + zero),
        f64_case("f64 payload-nan*1", payload * one),
        f64_case("f64 negative-nan+0", negative + zero),
        f64_case("f64 -(0/0)", -(zero / zero)),
        f64_case("f64 abs(negative-nan)", negative.abs()),
        f64_case("f64 copysign(1,negative-nan)", one.copysign(negative)),
        f64_case("f64 min(nan,1)", payload.min(one)),
        f64_case("f64 max(-0,0)", bb(-0.0f64).max(zero)),
        f64_case("f64 min(-0,0)", bb(-0.0f64).min(zero)),
        f64_case("f64 nan==nan", f64::from(u8::from(payload == payload))),
    ]
}

fn nan_f32() -> Vec<Case> {
    let zero = bb(0.0f32);
    let inf = bb(f32::INFINITY);
    let signaling = bb(f32::from_bits(0x7f80_0001));
    let payload64 = bb(f64::from_bits(0x7ff8_dead_beef_0001));
    let payload32 = bb(f32::from_bits(0x7fc0_1234));
    vec![
        f32_case("f32 0/0", zero / zero),
        f32_case("f32 inf-inf", inf - inf),
        f32_case("f32 sqrt(-1)", bb(-1.0f32).sqrt()),
        f32_case("f32 signaling-nan+0", signaling + zero),
        f32_case("f32 demote(f64 payload-nan)", payload64 as f32),
        f64_case("f64 promote(f32 payload-nan)", f64::from(payload32)),
        f32_case("f32 0.1+0.2", bb(0.1f32) + bb(0.2f32)),
        f32_case("f32 demote(0.1f64)", bb(0.1f64) as f32),
        f32_case("f32 demote(1e39f64)", bb(1e39f64) as f32),
        f32_case("f32 demote(1e-46f64)", bb(1e-46f64) as f32),
    ]
}

fn rounding() -> Vec<Case> {
    vec![
        f64_case("f64 0.1+0.2", bb(0.1f64) + bb(0.2f64)),
        f64_case("f64 1/3", bb(1.0f64) / bb(3.0f64)),
        f64_case("f64 (1e16+1)-1e16", (bb(1e16f64) + 1.0) - 1e16),
        f64_case("f64 round(2.5)", bb(2.5f64).round()),
        f64_case("f64 round(-2.5)", bb(-2.5f64).round()),
        f64_case("f64 round_ties_even(2.5)", bb(2.5f64).round_ties_even()),
        f64_case("f64 floor(-0.5)", bb(-0.5f64).floor()),
        f64_case("f64 ceil(-0.5)", bb(-0.5f64).ceil()),
        f64_case("f64 trunc(-1.7)", bb(-1.7f64).trunc()),
        f64_case("f64 1e308*10", bb(1e308f64) * 10.0),
        f64_case("f64 1e-308*1e-10 (subnormal)", bb(1e-308f64) * 1e-10),
        f64_case(
            "f64 MIN_POSITIVE/2^52",
            bb(f64::MIN_POSITIVE) / 4_503_599_627_370_496.0,
        ),
        f32_case("f32 round(-0.5)", bb(-0.5f32).round()),
        f32_case("f32 1/3", bb(1.0f32) / bb(3.0f32)),
    ]
}

fn fused() -> Vec<Case> {
    let (a, b, c) = (bb(0.1f64), bb(10.0f64), bb(-1.0f64));
    let (x, y, z) = (bb(0.1f32), bb(10.0f32), bb(-1.0f32));
    vec![
        f64_case("f64 mul_add(0.1,10,-1)", a.mul_add(b, c)),
        f64_case("f64 0.1*10-1", a * b + c),
        f32_case("f32 mul_add(0.1,10,-1)", x.mul_add(y, z)),
        f32_case("f32 0.1*10-1", x * y + z),
        f64_case(
            "f64 mul_add(inf,0,nan)",
            bb(f64::INFINITY).mul_add(bb(0.0), bb(f64::NAN)),
        ),
    ]
}

fn transcendental() -> Vec<Case> {
    vec![
        f64_case("f64 sin(1e22)", bb(1e22f64).sin()),
        f64_case("f64 cos(1)", bb(1.0f64).cos()),
        f64_case("f64 tan(pi/2)", bb(std::f64::consts::FRAC_PI_2).tan()),
        f64_case("f64 exp(1)", bb(1.0f64).exp()),
        f64_case("f64 ln(10)", bb(10.0f64).ln()),
        f64_case("f64 log10(2)", bb(2.0f64).log10()),
        f64_case("f64 pow(2,0.5)", bb(2.0f64).powf(0.5)),
        f64_case("f64 pow(-8,1/3)", bb(-8.0f64).powf(1.0 / 3.0)),
        f64_case(
            "f64 powi(1.0000001,1000000)",
            bb(1.000_000_1f64).powi(1_000_000),
        ),
        f64_case("f64 atan2(1,-1)", bb(1.0f64).atan2(bb(-1.0))),
        f64_case("f64 tanh(0.5)", bb(0.5f64).tanh()),
        f64_case("f64 cbrt(27)", bb(27.0f64).cbrt()),
        f64_case("f64 hypot(3e300,4e300)", bb(3e300f64).hypot(bb(4e300))),
        f64_case("f64 exp_m1(1e-10)", bb(1e-10f64).exp_m1()),
        f64_case("f64 ln_1p(1e-10)", bb(1e-10f64).ln_1p()),
        f64_case("f64 asin(2)", bb(2.0f64).asin()),
        f64_case("f64 ln(-1)", bb(-1.0f64).ln()),
        f32_case("f32 sin(1e10)", bb(1e10f32).sin()),
        f32_case("f32 exp(10)", bb(10.0f32).exp()),
    ]
}

fn conversions() -> Vec<Case> {
    vec![
        i32_case("i32 from f64 nan", bb(f64::NAN) as i32),
        i64_case("i64 from f64 1e20", bb(1e20f64) as i64),
        i64_case("i64 from f64 -1e20", bb(-1e20f64) as i64),
        i32_case("i32 from f32 -2.9", bb(-2.9f32) as i32),
        u64_case("u64 from f64 -1.5", bb(-1.5f64) as u64),
        f64_case("f64 from u64::MAX", bb(u64::MAX) as f64),
        f32_case("f32 from u64::MAX", bb(u64::MAX) as f32),
        f64_case("f64 from i64 2^53+1", bb((1i64 << 53) + 1) as f64),
    ]
}

fn accumulated() -> Vec<Case> {
    // Long chains let any per-operation difference grow into a visible one.
    let n = bb(10_000u32);
    let mut sines = 0.0f64;
    let mut harmonic = 0.0f32;
    for i in 0..n {
        sines += f64::from(i).sin();
        harmonic += 1.0 / (i as f32 + 1.0);
    }
    // One Mandelbrot orbit at a boundary point, where rounding differences explode.
    let (cr, ci) = (bb(-0.743_643_887_037_151f64), bb(0.131_825_904_205_33f64));
    let (mut zr, mut zi) = (0.0f64, 0.0f64);
    let mut escaped_at = 0u64;
    for step in 0..bb(1000u64) {
        let t = zr * zr - zi * zi + cr;
        zi = 2.0 * zr * zi + ci;
        zr = t;
        if escaped_at == 0 && zr * zr + zi * zi > 4.0 {
            escaped_at = step;
        }
    }
    vec![
        f64_case("f64 sum sin(0..10000)", sines),
        f32_case("f32 harmonic(10000)", harmonic),
        f64_case("f64 mandelbrot orbit re", zr),
        f64_case("f64 mandelbrot orbit im", zi),
        u64_case("mandelbrot escape step (0: none)", escaped_at),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(name: &str) -> String {
        all().into_iter().find(|c| c.name == name).unwrap().bits
    }

    #[test]
    fn names_are_unique() {
        let cases = all();
        let mut names: Vec<_> = cases.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), cases.len());
    }

    #[test]
    fn platform_independent_results() {
        // IEEE 754 fixes these bits on every platform; NaN bits are the ones that may differ.
        assert_eq!(bits("f64 0.1+0.2"), "0x3fd3333333333334");
        assert_eq!(bits("f64 round_ties_even(2.5)"), "0x4000000000000000");
        assert_eq!(bits("f64 ceil(-0.5)"), "0x8000000000000000");
        assert_eq!(bits("f64 0.1*10-1"), "0x0000000000000000");
        assert_eq!(bits("f64 mul_add(0.1,10,-1)"), "0x3c90000000000000");
        assert_eq!(bits("f64 1e308*10"), "0x7ff0000000000000");
        assert_eq!(bits("i64 from f64 1e20"), "0x7fffffffffffffff");
        assert_eq!(bits("i32 from f64 nan"), "0x00000000");
        assert_eq!(bits("f64 abs(negative-nan)"), "0x7ff8000000000000");
        assert_eq!(bits("f64 nan==nan"), "0x0000000000000000");
    }

    #[test]
    fn nans_are_nans() {
        for c in all() {
            if c.name.ends_with("0/0") || c.name.contains("sqrt(-1)") {
                assert_eq!(c.value, "NaN", "{}", c.name);
            }
        }
    }
}

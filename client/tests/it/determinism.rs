//! Determinism: the same module and input give the same bytes and the same fuel, whatever the
//! backend, and NaNs are canonical.

use musketeer_client::sandbox::{Backend, RunOptions, RunOutput, Sandbox, SandboxConfig};

use crate::support::{Signed, sign, test_limits};

#[path = "../../../tasks/primes/src/kernel.rs"]
#[allow(dead_code)]
mod primes_kernel;

async fn run(sandbox: &Sandbox, signed: &Signed, input: &[u8], run_id: &str) -> RunOutput {
    let task = sandbox
        .prepare(&signed.trust, &signed.manifest, &signed.module)
        .expect("prepare");
    let options = RunOptions {
        run_id: run_id.into(),
        progress: None,
        pause: None,
    };
    sandbox.run(&task, input, options).await.expect("run")
}

fn sandbox(backend: Backend) -> Sandbox {
    Sandbox::new(SandboxConfig {
        backend,
        cache_dir: Some(crate::support::shared_cache_dir()),
        ..SandboxConfig::default()
    })
    .expect("sandbox")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_input_same_bytes_and_fuel_on_both_backends() {
    let cranelift = sandbox(Backend::Auto);
    let pulley = sandbox(Backend::Pulley);
    assert_eq!(pulley.backend_name(), "pulley");
    let cases: [(&str, &[u8]); 4] = [
        (
            musketeer_task_artifacts::PRIMES,
            br#"{"from":1,"to":20000}"#,
        ),
        (
            musketeer_task_artifacts::WORD_COUNT,
            b"one for all, all for one",
        ),
        (musketeer_task_artifacts::FLOAT_CORNERS, b"{}"),
        (musketeer_task_artifacts::HOSTILE, br#"{"mode":"clock"}"#),
    ];
    for (module, input) in cases {
        let signed = sign(module, &[], test_limits());
        let first = run(&cranelift, &signed, input, "unit-7").await;
        let second = run(&cranelift, &signed, input, "unit-7").await;
        let interpreted = run(&pulley, &signed, input, "unit-7").await;
        assert!(first.fuel_consumed > 0);
        for other in [&second, &interpreted] {
            assert_eq!(first.output, other.output, "{module}: output differs");
            assert_eq!(
                first.fuel_consumed, other.fuel_consumed,
                "{module}: fuel differs"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clocks_and_randomness_depend_only_on_the_run_id() {
    let sandbox = sandbox(Backend::Auto);
    let signed = sign(musketeer_task_artifacts::HOSTILE, &[], test_limits());
    let input = br#"{"mode":"clock"}"#;
    let parse = |out: &RunOutput| -> serde_json::Value {
        serde_json::from_slice(&out.output).expect("clock mode answers JSON")
    };
    let a = parse(&run(&sandbox, &signed, input, "unit-1").await);
    let a_again = parse(&run(&sandbox, &signed, input, "unit-1").await);
    let b = parse(&run(&sandbox, &signed, input, "unit-2").await);
    assert_eq!(a, a_again);
    assert_ne!(a["random"], b["random"], "randomness is seeded per run id");
    assert_ne!(a["secure_random"], b["secure_random"]);
    assert!(a["secure_random"].is_array(), "{a}");
    // The wall clock is the fixed instant, whatever the real time is.
    let fixed = musketeer_client::sandbox::FIXED_WALL_CLOCK.as_nanos() as u64;
    assert_eq!(a["system_time_ns"].as_u64(), Some(fixed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nan_bits_are_canonical() {
    let signed = sign(musketeer_task_artifacts::HOSTILE, &[], test_limits());
    for backend in [Backend::Auto, Backend::Pulley] {
        let out = run(&sandbox(backend), &signed, br#"{"mode":"nan"}"#, "nan").await;
        let bits: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&out.output).expect("nan mode answers JSON");
        assert!(!bits.is_empty());
        for (name, value) in bits {
            let hex = value.as_str().expect("hex string");
            let expected = if name.starts_with("f32") {
                "0x7fc00000"
            } else {
                "0x7ff8000000000000"
            };
            assert_eq!(hex, expected, "{name} on {backend:?}");
        }
    }
}

/// wasm32 has a 32-bit `usize`: ranges beyond 2^32 need base primes above 65,535, whose squares
/// overflowed it once and crossed off real primes. The sandboxed build must agree with the same
/// kernel compiled natively (64-bit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primes_beyond_two_to_the_32_agree_with_the_native_kernel() {
    let sandbox = sandbox(Backend::Auto);
    let signed = sign(musketeer_task_artifacts::PRIMES, &[], test_limits());
    for (from, to) in [
        (100_000_000_000u64, 100_039_999_999u64),
        (4_294_967_296, 4_295_067_296),
    ] {
        let input = format!(r#"{{"from":{from},"to":{to}}}"#);
        let output = run(&sandbox, &signed, input.as_bytes(), "unit-1").await;
        let native = primes_kernel::count_primes(from, to);
        let expected = serde_json::json!({"count": native.count, "last": native.last});
        let got: serde_json::Value = serde_json::from_slice(&output.output).expect("json output");
        assert_eq!(got, expected, "{from}..={to}");
    }
}

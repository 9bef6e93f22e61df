//! The Python interpreter's randomness in the sandbox (decision 0006): `random` is seeded per
//! run from the unit's WASI randomness, so it repeats for one run id and changes with another,
//! while `hash` uses the seed frozen into the module at build time, the same for every run.

use musketeer_client::sandbox::RunOutput;
use musketeer_task_artifacts::PY_CORNERS;
use serde_json::Value;

use crate::python_task::run;
use crate::support::{Signed, sandbox, sign};
use musketeer_signing_keys::Limits;

fn limits() -> Limits {
    Limits {
        fuel: 1_000_000_000,
        memory_bytes: 64 * 1024 * 1024,
        wall_time_ms: 20_000,
        output_bytes: 1024 * 1024,
    }
}

async fn answer(signed: &Signed, run_id: &str) -> (Value, RunOutput) {
    let out = run(&sandbox(), signed, "null", run_id).await.expect("run");
    let value = serde_json::from_slice(&out.output).expect("JSON answer");
    (value, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_random_follows_the_run_id_and_the_hash_seed_does_not() {
    let corners = sign(PY_CORNERS, &[], limits());
    let (first, first_run) = answer(&corners, "unit-1").await;
    let (again, again_run) = answer(&corners, "unit-1").await;
    let (other, _) = answer(&corners, "unit-2").await;
    let pair = first["random"].as_array().expect("two numbers");
    assert_ne!(pair[0], pair[1], "{first}");
    assert_eq!(first, again, "same run id, same numbers");
    assert_eq!(first_run.fuel_consumed, again_run.fuel_consumed);
    assert_ne!(
        first["random"], other["random"],
        "another run id, other numbers"
    );
    assert_eq!(
        first["hash"], other["hash"],
        "the hash seed is the module's"
    );
}

//! The volunteer's pooled sandbox: tasks beyond the pool's places wait for one (and the wait is
//! not their wall time) instead of failing to instantiate.

use std::time::{Duration, Instant};

use musketeer_client::sandbox::{Sandbox, SandboxConfig};
use musketeer_signing_keys::Limits;

use crate::support::{kind, run_once, sign, test_limits};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_beyond_the_pool_wait_for_a_place() {
    let sandbox = Sandbox::new(SandboxConfig {
        cache_dir: Some(crate::support::shared_cache_dir()),
        pooled_tasks: Some(1),
        ..SandboxConfig::default()
    })
    .expect("sandbox");
    assert!(sandbox.is_pooled(), "a 64-bit host reserves the pool");
    // Each sleeps 1 s of its 1.5 s: the third waits about 2 s for its place, which must not
    // count against its own limit.
    let limits = Limits {
        wall_time_ms: 1_500,
        ..test_limits()
    };
    let signed = sign(musketeer_task_artifacts::HOSTILE, &[], limits);
    let input = br#"{"mode":"sleep","secs":1}"#;
    let started = Instant::now();
    let (a, b, c) = tokio::join!(
        run_once(&sandbox, &signed, input),
        run_once(&sandbox, &signed, input),
        run_once(&sandbox, &signed, input),
    );
    for result in [&a, &b, &c] {
        assert_eq!(kind(result), "ok", "{:?}", result.as_ref().err());
        assert_eq!(result.as_ref().expect("ran").output, b"slept 1 s");
    }
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "one place runs one task at a time ({:?} for three)",
        started.elapsed()
    );
}

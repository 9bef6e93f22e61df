//! Pausing a running task (the volunteer's CPU throttle, battery, schedule, `musketeer pause`)
//! changes neither its fuel nor its output, and paused time does not count as wall time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use musketeer_client::sandbox::{PauseToken, RunOptions, RunOutput, Sandbox};
use musketeer_signing_keys::Limits;

use crate::support::{Signed, sandbox, sign, test_limits};

const PRIMES_INPUT: &[u8] = br#"{"from":1,"to":100000000}"#;

async fn run(
    sandbox: &Sandbox,
    signed: &Signed,
    input: &[u8],
    pause: Option<PauseToken>,
) -> RunOutput {
    let task = sandbox
        .prepare(&signed.trust, &signed.manifest, &signed.module)
        .expect("prepare");
    let options = RunOptions {
        run_id: "unit-9".into(),
        progress: None,
        pause,
    };
    sandbox.run(&task, input, options).await.expect("run")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_paused_again_and_again_gives_the_same_fuel_and_output() {
    let sandbox = sandbox();
    let limits = Limits {
        fuel: 20_000_000_000,
        ..test_limits()
    };
    let signed = sign(musketeer_task_artifacts::PRIMES, &[], limits);
    let straight = run(&sandbox, &signed, PRIMES_INPUT, None).await;

    let token = PauseToken::new();
    let done = Arc::new(AtomicBool::new(false));
    let pauses = Arc::new(AtomicU32::new(0));
    // A duty cycle much finer than the run: it is paused many times at fuel yields.
    let toggler = tokio::spawn({
        let (token, done, pauses) = (token.clone(), done.clone(), pauses.clone());
        async move {
            while !done.load(Ordering::SeqCst) {
                token.set_paused(true);
                pauses.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(3)).await;
                token.set_paused(false);
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }
    });
    let paused = run(&sandbox, &signed, PRIMES_INPUT, Some(token.clone())).await;
    done.store(true, Ordering::SeqCst);
    toggler.await.expect("toggler");

    assert!(
        pauses.load(Ordering::SeqCst) >= 3,
        "the run was too short to be paused"
    );
    assert!(token.paused_total() > Duration::ZERO);
    assert_eq!(straight.output, paused.output);
    assert_eq!(straight.fuel_consumed, paused.fuel_consumed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_spent_paused_does_not_count_against_the_wall_clock_limit() {
    let sandbox = sandbox();
    let limits = Limits {
        wall_time_ms: 400,
        ..test_limits()
    };
    let signed = sign(musketeer_task_artifacts::PRIMES, &[], limits);
    // Compiled and prepared first, so that the pause below is all in the run.
    run(&sandbox, &signed, br#"{"from":1,"to":10}"#, None).await;
    let task = sandbox
        .prepare(&signed.trust, &signed.manifest, &signed.module)
        .expect("prepare");
    let token = PauseToken::new();
    token.set_paused(true);
    let resumer = tokio::spawn({
        let token = token.clone();
        async move {
            // Three times the task's wall-clock limit, all of it paused.
            tokio::time::sleep(Duration::from_millis(1200)).await;
            token.set_paused(false);
        }
    });
    let options = RunOptions {
        run_id: "unit-9".into(),
        progress: None,
        pause: Some(token),
    };
    let output = sandbox
        .run(&task, br#"{"from":1,"to":2000}"#, options)
        .await
        .expect("a paused task is not timed out");
    resumer.await.expect("resumer");
    // The run may start a little after the resumer's clock; what matters is that it spent well
    // over its 400 ms limit paused and still finished.
    assert!(
        output.wall_time >= Duration::from_millis(1000),
        "the run was paused for only {:?}",
        output.wall_time
    );
}

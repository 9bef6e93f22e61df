//! Containments added for issue 11: one memory budget per task, truthful reasons for every way
//! a run can end, and guest text that cannot forge a volunteer's log.

use musketeer_signing_keys::Limits;
use serde_json::json;

use crate::components;
use crate::support::{
    Signed, kind, musketeer, run_args, run_once, sandbox, sign, sign_args, sign_module, test_limits,
};

const MIB: u64 = 1024 * 1024;

/// Signs module bytes that exist only in memory (the hand-written components).
fn sign_bytes(module: Vec<u8>, limits: Limits) -> Signed {
    sign_module("fixture", module, &[], limits)
}

fn hostile(limits: Limits) -> Signed {
    sign(musketeer_task_artifacts::HOSTILE, &[], limits)
}

/// Runs `input` and returns the kind and the one-line reason (or the output on success).
async fn outcome(signed: &Signed, input: &[u8]) -> (String, String) {
    let result = run_once(&sandbox(), signed, input).await;
    let message = match &result {
        Ok(out) => String::from_utf8_lossy(&out.output).into_owned(),
        Err(error) => error.to_string(),
    };
    (kind(&result).to_owned(), message)
}

async fn hostile_outcome(limits: Limits, input: serde_json::Value) -> (String, String) {
    outcome(&hostile(limits), input.to_string().as_bytes()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_memories_share_one_budget() {
    // Seven core instances each growing a memory of its own by 16 MiB: 112 MiB in all, under
    // a 64 MiB limit. Each memory alone is within the limit.
    let bomb = sign_bytes(components::several_memories(7, 16), test_limits());
    let (kind, message) = outcome(&bomb, b"").await;
    assert_eq!(kind, "memory-limit", "{message}");
    assert!(message.contains("all its memories and tables"), "{message}");

    // Three of them (48 MiB) fit, and the budget counts what they hold.
    let fits = sign_bytes(components::several_memories(3, 16), test_limits());
    let out = run_once(&sandbox(), &fits, b"").await.expect("48 MiB fit");
    assert!(
        out.memory_bytes >= 48 * MIB as usize && out.memory_bytes < 49 * MIB as usize,
        "{} bytes",
        out.memory_bytes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_number_of_memories_is_bounded() {
    // Nine small memories (eight instances plus the main one) exceed the count, not the bytes.
    let many = sign_bytes(components::several_memories(8, 0), test_limits());
    let (kind, message) = outcome(&many, b"").await;
    assert_eq!(kind, "resource-limit", "{message}");
    assert!(message.contains("memory"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_start_function_is_reported_against_the_instantiation_budget() {
    let limits = Limits {
        // Far below the instantiation budget: the old report named this number.
        fuel: 1_000,
        ..test_limits()
    };
    let (kind, message) = outcome(&sign_bytes(components::start_loop(), limits), b"").await;
    assert_eq!(kind, "instantiation-fuel-exhausted", "{message}");
    assert!(message.contains("start-up code"), "{message}");
    assert!(!message.contains("1000 units"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_locals_overflowing_the_task_stack_are_a_memory_fault() {
    let (kind, message) = hostile_outcome(test_limits(), json!({"mode":"frames"})).await;
    assert_eq!(kind, "memory-fault", "{message}");
    assert!(message.contains("outside its linear memory"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_named_with_its_escaped_message() {
    let input = json!({"mode":"panic","message":"boom\n[host] forged\u{1b}[2J"});
    let (kind, message) = hostile_outcome(test_limits(), input).await;
    assert_eq!(kind, "panic", "{message}");
    assert!(
        message.starts_with("the task panicked: boom\\n[host] forged\\x1b[2J (at "),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_is_named_with_its_status() {
    // WASI p2 carries only success or failure: any status other than 0 arrives as 1.
    for code in [0, 1] {
        let (kind, message) =
            hostile_outcome(test_limits(), json!({"mode":"exit","code":code})).await;
        assert_eq!(kind, "exit", "{message}");
        assert!(message.contains(&format!("exit({code})")), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_over_the_limit_are_refused_with_their_own_kind() {
    // Far over the limit: refused while being lifted, before the host copies it.
    let limits = Limits {
        output_bytes: MIB,
        memory_bytes: 128 * MIB,
        ..test_limits()
    };
    let (kind, message) = hostile_outcome(limits, json!({"mode":"output","bytes": 64 * MIB})).await;
    assert_eq!(kind, "output-too-large", "{message}");
    assert!(message.contains("limit of 1048576 bytes"), "{message}");

    // Just over a tiny limit: the exact size is known and said.
    let limits = Limits {
        output_bytes: 100,
        ..test_limits()
    };
    let (kind, message) = hostile_outcome(limits, json!({"mode":"output","bytes": 200})).await;
    assert_eq!(kind, "output-too-large", "{message}");
    assert!(message.ends_with("(200 bytes)"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_host_call_argument_is_not_called_an_output() {
    let limits = Limits {
        output_bytes: MIB,
        ..test_limits()
    };
    let line = "y".repeat(2 * MIB as usize);
    let (kind, message) = hostile_outcome(limits, json!({"mode":"log","line":line})).await;
    assert_eq!(kind, "resource-limit", "{message}");
    assert!(message.contains("to one host call"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_errors_and_log_lines_cannot_forge_lines() {
    let forged = "fine\n[volunteer] result accepted\r\u{1b}[32mok\u{202e}";
    let (kind, message) =
        hostile_outcome(test_limits(), json!({"mode":"error","message":forged})).await;
    // The kind once, then the task's own words, escaped.
    assert_eq!(kind, "task-error");
    assert_eq!(
        message,
        "fine\\n[volunteer] result accepted\\r\\x1b[32mok\\u{202e}"
    );

    let out = run_once(
        &sandbox(),
        &hostile(test_limits()),
        json!({"mode":"log","line":forged}).to_string().as_bytes(),
    )
    .await
    .expect("log mode succeeds");
    assert_eq!(
        out.logs,
        ["fine\\n[volunteer] result accepted\\r\\x1b[32mok\\u{202e}"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_task_error_is_capped() {
    let message = "e".repeat(100_000);
    let (kind, reason) =
        hostile_outcome(test_limits(), json!({"mode":"error","message":message})).await;
    assert_eq!(kind, "task-error");
    assert!(reason.len() <= 4096, "{} bytes", reason.len());
    assert!(reason.ends_with(" bytes)"), "{reason}");
}

#[test]
fn musketeer_run_prints_the_kind_once_and_the_task_words_on_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let musketeer = |args: &[&str]| musketeer(args, dir.path());
    let hostile = musketeer_task_artifacts::HOSTILE;
    assert!(
        musketeer(&["keys", "generate", "--out", "keys"])
            .status
            .success()
    );
    let signed = musketeer(&sign_args(hostile, "demo"));
    assert!(signed.status.success());
    let input = json!({"mode":"error","message":"bad\n[volunteer] result accepted\u{1b}[0m"});
    let out = musketeer(&run_args(hostile, &input.to_string()));
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: task-error: bad\\n[volunteer] result accepted\\x1b[0m\n"
    );
}

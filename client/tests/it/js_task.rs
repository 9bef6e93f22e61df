//! Tasks written in JavaScript (componentize-js): `stock-day-js` against the Rust `stock-day`,
//! byte for byte, in the same sandbox and through `musketeer run`; `js-corners` for the SDK's
//! JSON writer, its errors and the engine's randomness inside the sandbox.

use musketeer_client::sandbox::{Backend, Sandbox, SandboxConfig};
use musketeer_task_artifacts::{JS_CORNERS, STOCK_DAY_JS};
use serde_json::json;

use crate::python_task::{
    assert_port_gives_the_rust_crawlers_bytes, assert_port_repeats_bytes_and_fuel,
    assert_port_through_musketeer_run, outcome, run,
};
use crate::support::{sandbox, shared_cache_dir, sign};
use musketeer_signing_keys::Limits;

/// What `tasks/stock-day-js` asks for in docs/task-author.md ("Tasks in JavaScript").
fn js_limits() -> Limits {
    Limits {
        fuel: 1_000_000_000,
        memory_bytes: 64 * 1024 * 1024,
        wall_time_ms: 20_000,
        output_bytes: 1024 * 1024,
    }
}

fn pulley() -> Sandbox {
    Sandbox::new(SandboxConfig {
        backend: Backend::Pulley,
        cache_dir: Some(shared_cache_dir()),
        ..SandboxConfig::default()
    })
    .expect("pulley sandbox")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_crawler_gives_the_rust_crawlers_bytes_on_the_feed() {
    assert_port_gives_the_rust_crawlers_bytes(STOCK_DAY_JS, js_limits()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_crawler_repeats_bytes_and_fuel_on_both_backends() {
    assert_port_repeats_bytes_and_fuel(STOCK_DAY_JS, js_limits()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_random_follows_the_run_id() {
    let corners = sign(JS_CORNERS, &[], js_limits());
    let sandbox = sandbox();
    let input = json!("random").to_string();
    let first = run(&sandbox, &corners, &input, "unit-1")
        .await
        .expect("run");
    let again = run(&sandbox, &corners, &input, "unit-1")
        .await
        .expect("run");
    let interpreted = run(&pulley(), &corners, &input, "unit-1")
        .await
        .expect("run");
    let other = run(&sandbox, &corners, &input, "unit-2")
        .await
        .expect("run");
    let numbers: serde_json::Value = serde_json::from_slice(&first.output).expect("JSON");
    let pair = numbers["math_random"].as_array().expect("two numbers");
    assert_ne!(pair[0], pair[1], "{numbers}");
    assert!(
        pair.iter()
            .all(|n| n.as_f64().is_some_and(|n| (0.0..1.0).contains(&n)))
    );
    for same in [&again, &interpreted] {
        assert_eq!(first.output, same.output, "same unit, same numbers");
        assert_eq!(first.fuel_consumed, same.fuel_consumed);
    }
    let other: serde_json::Value = serde_json::from_slice(&other.output).expect("JSON");
    assert_ne!(numbers["math_random"], other["math_random"], "another unit");
    assert_ne!(numbers["get_random_values"], other["get_random_values"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_sdk_writes_json_as_serde_json_and_reports_errors() {
    let corners = sign(JS_CORNERS, &[], js_limits());
    let sandbox = sandbox();
    let written = outcome(&sandbox, &corners, "\"json\"", "unit-1").await;
    // JavaScript lists the integer-like key first, then the others in the order written.
    let part = |value: serde_json::Value| serde_json::to_string(&value).expect("JSON");
    let expected = format!(
        "{{\"1\":{},\"integers\":{},\"floats\":{},\"text\":{},\"ordered\":{{\"b\":1,\"a\":2}}}}",
        part(json!("integer-like keys come first in a JavaScript object")),
        part(json!([
            0,
            0,
            9_007_199_254_740_991_i64,
            -9_007_199_254_740_991_i64,
            u64::MAX
        ])),
        part(json!([
            5.0,
            -0.0,
            0.1,
            1e21,
            1e-7,
            9_007_199_254_740_992.0,
            2f64.powi(70),
            null
        ])),
        part(json!(
            "quote \" backslash \\ slash / controls \u{1}\u{1f}\n\t\u{8}\u{c} del \u{7f} é 日本 😀"
        )),
    );
    assert_eq!(written, expected);
    for (input, error) in [
        ("\"task-error\"", "task-error|TWSE: no data"),
        (
            "\"bug\"",
            "task-error|TypeError: can't access property \"field\", request.missing is undefined",
        ),
        (
            "not-bytes",
            "task-error|a task() function must return a Uint8Array, not String",
        ),
        (
            "{",
            "task-error|invalid input JSON: JSON.parse: end of data while reading object contents \
             at line 1 column 2 of the JSON data",
        ),
    ] {
        assert_eq!(outcome(&sandbox, &corners, input, "unit-1").await, error);
    }
}

#[test]
fn js_crawler_through_musketeer_run() {
    assert_port_through_musketeer_run(STOCK_DAY_JS, "stock-day-js");
}

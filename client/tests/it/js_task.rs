//! Tasks written in JavaScript (componentize-js): `stock-day-js` against the Rust `stock-day`,
//! byte for byte, in the same sandbox and through `musketeer run`; `js-corners` for the SDK's
//! JSON writer, its errors and the engine's randomness inside the sandbox.

use musketeer_client::sandbox::{Backend, RunOptions, RunOutput, Sandbox, SandboxConfig};
use musketeer_task_artifacts::twse::{FeedServer, ORIGINAL_STOCK_IDS};
use musketeer_task_artifacts::{JS_CORNERS, STOCK_DAY, STOCK_DAY_JS};
use serde_json::json;

use crate::support::{Signed, musketeer, run_args, sandbox, shared_cache_dir, sign, sign_args};
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

async fn feed() -> FeedServer {
    tokio::task::spawn_blocking(FeedServer::start)
        .await
        .expect("feed thread")
        .expect("feed")
}

/// The run's output bytes, or `kind|message` for an error.
async fn outcome(sandbox: &Sandbox, signed: &Signed, input: &str, run_id: &str) -> String {
    match run(sandbox, signed, input, run_id).await {
        Ok(out) => String::from_utf8(out.output).expect("UTF-8 output"),
        Err(error) => error,
    }
}

async fn run(
    sandbox: &Sandbox,
    signed: &Signed,
    input: &str,
    run_id: &str,
) -> Result<RunOutput, String> {
    let task = sandbox
        .prepare(&signed.trust, &signed.manifest, &signed.module)
        .expect("prepare");
    let options = RunOptions {
        run_id: run_id.into(),
        progress: None,
        pause: None,
    };
    sandbox
        .run(&task, input.as_bytes(), options)
        .await
        .map_err(|error| format!("{}|{error}", error.kind()))
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
    let feed = feed().await;
    let allow = [feed.allow_prefix()];
    let rust = sign(STOCK_DAY, &allow, js_limits());
    let js = sign(STOCK_DAY_JS, &allow, js_limits());
    let sandbox = sandbox();
    let source = feed.base_url();
    let mut inputs: Vec<String> = Vec::new();
    for stock in ORIGINAL_STOCK_IDS {
        for all_days in [false, true] {
            inputs.push(
                json!({"stock_id": stock, "year": 2016, "month": 5, "source": source, "all_days": all_days})
                    .to_string(),
            );
        }
    }
    // TWSE's refusal, the task's own input checks, serde's wording for wrong types, and a host
    // refusal.
    inputs.extend(
        [
            json!({"stock_id": "9999", "year": 2016, "month": 5, "source": source}),
            json!({"stock_id": "2356", "year": 2016, "month": 13, "source": source}),
            json!({"stock_id": "23&x=1", "year": 2016, "month": 5}),
            json!({"stock_id": "2356", "year": 16, "month": 5}),
            json!({"stock_id": "2356", "year": 2016, "month": 5, "source": "ftp://x"}),
            json!({"stock_id": "2356", "year": 2016, "month": 5, "source": "http://127.0.0.1:9"}),
            json!({"stock_id": "2356", "year": 2016, "month": 5, "source": " http://x/ "}),
        ]
        .map(|input| input.to_string()),
    );
    let mut compared_rows = 0;
    for input in &inputs {
        let expected = outcome(&sandbox, &rust, input, "unit-1").await;
        let actual = outcome(&sandbox, &js, input, "unit-1").await;
        assert_eq!(actual, expected, "input {input}");
        compared_rows += usize::from(expected.starts_with('{'));
    }
    assert_eq!(
        compared_rows,
        ORIGINAL_STOCK_IDS.len(),
        "every last day compared"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_crawler_repeats_bytes_and_fuel_on_both_backends() {
    let feed = feed().await;
    let js = sign(STOCK_DAY_JS, &[feed.allow_prefix()], js_limits());
    let cranelift = sandbox();
    // 1104: ten fields and an ex-rights day; all days, so every parsing path runs.
    let input = json!({"stock_id": "1104", "year": 2016, "month": 5, "source": feed.base_url(), "all_days": true})
        .to_string();
    let first = run(&cranelift, &js, &input, "unit-7").await.expect("run");
    let again = run(&cranelift, &js, &input, "unit-7").await.expect("run");
    let interpreted = run(&pulley(), &js, &input, "unit-7").await.expect("run");
    let other_unit = run(&cranelift, &js, &input, "unit-8").await.expect("run");
    assert!(first.fuel_consumed > 0);
    for other in [&again, &interpreted, &other_unit] {
        assert_eq!(first.output, other.output);
        assert_eq!(first.fuel_consumed, other.fuel_consumed);
    }
    assert_eq!(
        first.logs,
        [format!(
            "GET {}/rwd/zh/afterTrading/STOCK_DAY?date=20160501&stockNo=1104&response=json",
            feed.base_url().trim_end_matches('/')
        )]
    );
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
    let feed = FeedServer::start().expect("feed");
    let dir = tempfile::tempdir().expect("temp dir");
    let cli = |args: &[&str]| {
        let out = musketeer(args, dir.path());
        assert!(
            out.status.success(),
            "musketeer {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    cli(&["keys", "generate", "--out", "keys"]);
    let allow = feed.allow_prefix();
    let mut sign = sign_args(STOCK_DAY_JS, "stock-day-js");
    sign.extend(["--allow-http", &allow, "--memory", "67108864"]);
    cli(&sign);
    let input = json!({"stock_id": "1218", "year": 2016, "month": 5, "source": feed.base_url()})
        .to_string();
    let mut run = run_args(STOCK_DAY_JS, &input);
    run.push("--json");
    let report: serde_json::Value = serde_json::from_slice(&cli(&run)).expect("JSON report");
    // 1218 did not trade on the last day: null prices, as the Rust crawler answers.
    assert_eq!(
        report["output"],
        json!({"個股代號":"1218","日期":"105/05/31","成交股數":0,"成交金額":0,"開盤價":null,
               "最高價":null,"最低價":null,"收盤價":null,"漲跌價差":0.0,"成交筆數":0})
    );
    assert!(
        report["fuel_consumed"].as_u64().is_some_and(|f| f > 0),
        "{report}"
    );
}

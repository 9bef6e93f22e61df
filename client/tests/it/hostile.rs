//! Hostile-module suite: every abuse ends in its specific error, and the same sandbox then runs
//! the next task correctly.

use musketeer_client::net::fetch::HttpConfig;
use musketeer_client::sandbox::{Sandbox, SandboxConfig};
use musketeer_signing_keys::Limits;
use serde_json::json;

use crate::support::{Fixture, Signed, kind, network_routes, run_once, serve, sign, test_limits};

fn hostile(limits: Limits, allow: &[String]) -> Signed {
    sign(musketeer_task_artifacts::HOSTILE, allow, limits)
}

/// Runs `input`, returns the error kind and message, then proves the sandbox still works.
async fn contained(
    sandbox: &Sandbox,
    signed: &Signed,
    input: serde_json::Value,
) -> (String, String) {
    let result = run_once(sandbox, signed, input.to_string().as_bytes()).await;
    let kind = kind(&result).to_owned();
    let message = match &result {
        Ok(out) => String::from_utf8_lossy(&out.output).into_owned(),
        Err(error) => error.to_string(),
    };
    let next = run_once(sandbox, signed, br#"{"mode":"ok"}"#)
        .await
        .expect("the sandbox keeps running tasks after containing one");
    assert_eq!(next.output, b"fine");
    (kind, message)
}

fn sandbox_with_http(http: HttpConfig) -> Sandbox {
    Sandbox::new(SandboxConfig {
        http,
        cache_dir: Some(crate::support::shared_cache_dir()),
        pooled_tasks: Some(2),
        ..SandboxConfig::default()
    })
    .expect("sandbox")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_runs_out_of_fuel() {
    let limits = Limits {
        fuel: 50_000_000,
        ..test_limits()
    };
    let (kind, message) = contained(
        &crate::support::sandbox(),
        &hostile(limits, &[]),
        json!({"mode":"loop"}),
    )
    .await;
    assert_eq!(kind, "fuel-exhausted", "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_with_huge_fuel_hits_the_wall_clock() {
    let limits = Limits {
        fuel: 1_000_000_000_000_000,
        wall_time_ms: 500,
        ..test_limits()
    };
    let (kind, message) = contained(
        &crate::support::sandbox(),
        &hostile(limits, &[]),
        json!({"mode":"loop"}),
    )
    .await;
    assert_eq!(kind, "wall-timeout", "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleeping_in_the_host_hits_the_wall_clock() {
    let limits = Limits {
        wall_time_ms: 500,
        ..test_limits()
    };
    let (kind, message) = contained(
        &crate::support::sandbox(),
        &hostile(limits, &[]),
        json!({"mode":"sleep","secs":3600}),
    )
    .await;
    assert_eq!(kind, "wall-timeout", "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_http_response_hits_the_wall_clock_or_request_timeout() {
    let fixture: Fixture = serve(network_routes()).await;
    let limits = Limits {
        wall_time_ms: 700,
        ..test_limits()
    };
    let signed = hostile(limits, &[fixture.allow()]);
    let input = json!({"mode":"sleep","url": fixture.url("/slow")});
    let (kind, message) = contained(&crate::support::sandbox(), &signed, input.clone()).await;
    assert_eq!(kind, "wall-timeout", "{message}");

    // With a per-request timeout shorter than the deadline the task sees `timeout` itself.
    let quick = sandbox_with_http(HttpConfig {
        request_timeout: std::time::Duration::from_millis(200),
        ..HttpConfig::default()
    });
    let (kind, message) = contained(&quick, &signed, input).await;
    assert_eq!(kind, "task-error");
    assert_eq!(message, "Timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bomb_hits_the_memory_limit() {
    let (kind, message) = contained(
        &crate::support::sandbox(),
        &hostile(test_limits(), &[]),
        json!({"mode":"memory"}),
    )
    .await;
    assert_eq!(kind, "memory-limit", "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_recursion_is_a_stack_overflow() {
    let (kind, message) = contained(
        &crate::support::sandbox(),
        &hostile(test_limits(), &[]),
        json!({"mode":"stack"}),
    )
    .await;
    assert_eq!(kind, "stack-overflow", "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_flood_is_refused() {
    let limits = Limits {
        output_bytes: 1024 * 1024,
        ..test_limits()
    };
    let (kind, message) = contained(
        &crate::support::sandbox(),
        &hostile(limits, &[]),
        json!({"mode":"output","bytes": 8 * 1024 * 1024}),
    )
    .await;
    assert_eq!(kind, "output-too-large", "{message}");
    assert!(message.contains("limit of 1048576 bytes"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_and_stderr_floods_are_capped() {
    let sandbox = crate::support::sandbox();
    let signed = hostile(test_limits(), &[]);
    for stream in ["stdout", "stderr"] {
        let (kind, message) = contained(&sandbox, &signed, json!({ "mode": stream })).await;
        assert_eq!(kind, "stdio-flood", "{message}");
        assert!(message.contains(stream), "{message}");
    }
    // A guest that ignores write errors cannot escape the cap either: it runs out of fuel.
    let limits = Limits {
        fuel: 100_000_000,
        ..test_limits()
    };
    let (kind, _) = contained(
        &sandbox,
        &hostile(limits, &[]),
        json!({"mode":"stdout","ignore_errors":true}),
    )
    .await;
    assert_eq!(kind, "fuel-exhausted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_out_of_reach() {
    let sandbox = crate::support::sandbox();
    let signed = hostile(test_limits(), &[]);
    for path in ["/etc/passwd", "/", ".", "../../etc/hostname"] {
        let (kind, message) =
            contained(&sandbox, &signed, json!({"mode":"file","path":path})).await;
        assert_eq!(kind, "task-error", "{path}: {message}");
        assert!(message.starts_with("file: "), "{path}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_and_arguments_are_empty() {
    let (kind, output) = contained(
        &crate::support::sandbox(),
        &hostile(test_limits(), &[]),
        json!({"mode":"env"}),
    )
    .await;
    assert_eq!(kind, "ok");
    assert_eq!(output, r#"{"args":[],"vars":{}}"#);
}

async fn http_result(sandbox: &Sandbox, signed: &Signed, url: &str) -> (String, String) {
    contained(sandbox, signed, json!({"mode":"http","url":url})).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_only_reaches_the_allowlist() {
    let fixture = serve(network_routes()).await;
    let other = serve(network_routes()).await;
    let sandbox = crate::support::sandbox();
    let signed = hostile(test_limits(), &[fixture.allow()]);
    let port = fixture.addr.port();

    let (kind, output) = http_result(&sandbox, &signed, &fixture.url("/hello")).await;
    assert_eq!(kind, "ok");
    assert_eq!(output, r#"{"body_len":5,"requests":1,"status":200}"#);
    // Another spelling of the same allowed IP is the same host.
    let (kind, _) = http_result(
        &sandbox,
        &signed,
        &format!("http://0x7f.0.0.1:{port}/hello"),
    )
    .await;
    assert_eq!(kind, "ok");

    for url in [
        other.url("/hello"),                                   // another port
        format!("https://127.0.0.1:{port}/hello"),             // another scheme
        "http://example.com/".to_owned(),                      // another host
        "http://169.254.169.254/latest/meta-data/".to_owned(), // cloud metadata
        format!("http://[::1]:{port}/hello"),                  // IPv6 loopback
        format!("http://[::ffff:127.0.0.1]:{port}/hello"),     // mapped loopback
        format!("http://127.0.0.1:{port}@169.254.169.254/"),   // userinfo disguise
        format!("http://localhost:{port}/hello"),              // a name, not the literal
        "file:///etc/passwd".to_owned(),
    ] {
        let (kind, message) = http_result(&sandbox, &signed, &url).await;
        assert_eq!(kind, "task-error", "{url}: {message}");
        assert!(message.starts_with("Denied("), "{url}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_resolving_to_private_addresses_are_refused() {
    let fixture = serve(network_routes()).await;
    let port = fixture.addr.port();
    // The allowlist names `localhost`, which resolves to loopback: refused after resolution.
    let signed = hostile(test_limits(), &[format!("http://localhost:{port}/")]);
    let (kind, message) = http_result(
        &crate::support::sandbox(),
        &signed,
        &format!("http://localhost:{port}/hello"),
    )
    .await;
    assert_eq!(kind, "task-error");
    assert!(message.contains("non-public address"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_rechecked() {
    let fixture = serve(network_routes()).await;
    let other = serve(network_routes()).await;
    let sandbox = crate::support::sandbox();
    let signed = hostile(test_limits(), &[fixture.allow()]);
    let redirect = |to: &str| fixture.url(&format!("/redirect?to={}", urlencode(to)));

    let (kind, output) = http_result(&sandbox, &signed, &redirect("/hello")).await;
    assert_eq!(kind, "ok", "{output}");
    assert!(output.contains(r#""body_len":5"#), "{output}");

    for escape in [
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        other.url("/hello"),
        format!("http://[::1]:{}/hello", fixture.addr.port()),
    ] {
        let (kind, message) = http_result(&sandbox, &signed, &redirect(&escape)).await;
        assert_eq!(kind, "task-error", "{escape}: {message}");
        assert!(message.starts_with("Denied("), "{escape}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_volunteers_bandwidth_cap_slows_task_reads() {
    let fixture = serve(network_routes()).await;
    let cap = musketeer_client::net::bandwidth::Bandwidth::new(256 * 1024);
    let capped = sandbox_with_http(HttpConfig {
        bandwidth: Some(cap),
        ..HttpConfig::default()
    });
    let signed = hostile(test_limits(), &[fixture.allow()]);
    let started = std::time::Instant::now();
    // 768 KiB: the first 256 KiB pass at once, the other 512 KiB take two seconds.
    let (kind, output) = http_result(&capped, &signed, &fixture.url("/big/786432")).await;
    assert_eq!(kind, "ok", "{output}");
    assert!(output.contains(r#""body_len":786432"#), "{output}");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1800),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_responses_and_request_floods_are_capped() {
    let fixture = serve(network_routes()).await;
    let sandbox = sandbox_with_http(HttpConfig {
        max_response_bytes: 1024 * 1024,
        max_requests_per_run: 3,
        ..HttpConfig::default()
    });
    let signed = hostile(test_limits(), &[fixture.allow()]);
    let (kind, message) = http_result(&sandbox, &signed, &fixture.url("/big/2000000")).await;
    assert_eq!(kind, "task-error");
    assert_eq!(message, "TooLarge(1048576)");

    let input = json!({"mode":"http","url":fixture.url("/hello"),"repeat":4});
    let (kind, message) = contained(&sandbox, &signed, input).await;
    assert_eq!(kind, "task-error");
    assert_eq!(message, "TooManyRequests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_cannot_set_framing_or_host_headers() {
    let fixture = serve(network_routes()).await;
    let signed = hostile(test_limits(), &[fixture.allow()]);
    let input =
        json!({"mode":"http","url":fixture.url("/hello"),"headers":[["Host","169.254.169.254"]]});
    let (kind, message) = contained(&crate::support::sandbox(), &signed, input).await;
    assert_eq!(kind, "task-error");
    assert!(message.starts_with("Denied("), "{message}");
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

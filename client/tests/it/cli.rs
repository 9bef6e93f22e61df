//! The author-facing CLI: `keys generate`, `sign`, `run`, as a user runs them.

use std::process::Output;

use crate::support::{musketeer, run_args, sign_args};

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

struct Author {
    dir: tempfile::TempDir,
}

impl Author {
    fn new() -> Self {
        let author = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        let out = author.cmd(&["keys", "generate", "--out", "keys"]);
        assert!(out.status.success(), "{}", stderr(&out));
        author
    }

    fn cmd(&self, args: &[&str]) -> Output {
        musketeer(args, self.dir.path())
    }

    fn sign(&self, module: &str, extra: &[&str]) -> Output {
        let mut args = sign_args(module, "demo");
        args.extend_from_slice(extra);
        self.cmd(&args)
    }

    fn run(&self, module: &str, input: &str, extra: &[&str]) -> Output {
        let mut args = run_args(module, input);
        args.extend_from_slice(extra);
        self.cmd(&args)
    }
}

#[test]
fn generate_sign_and_run_with_json_report() {
    let author = Author::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = author.dir.path().join("keys/musketeer.key");
        let mode = std::fs::metadata(key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let module = musketeer_task_artifacts::WORD_COUNT;
    let out = author.sign(module, &["--fuel", "500000000", "--timeout", "10"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = author.run(module, "all for one, one for all", &["--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["fuel_consumed"].as_u64().unwrap() > 0, "{report}");
    assert!(report["wall_time_ms"].as_f64().unwrap() > 0.0, "{report}");
    assert!(
        report["output"].is_object() || report["output"].is_array(),
        "{report}"
    );

    // Plain mode prints just the output; @FILE reads the input from a file.
    std::fs::write(
        author.dir.path().join("input.txt"),
        "all for one, one for all",
    )
    .unwrap();
    let plain = author.run(module, "@input.txt", &[]);
    assert!(plain.status.success(), "{}", stderr(&plain));
    let plain: serde_json::Value = serde_json::from_slice(&plain.stdout).unwrap();
    assert_eq!(plain, report["output"]);
}

#[test]
fn refusals_and_traps_exit_3_with_a_one_line_reason() {
    let author = Author::new();
    let hostile = musketeer_task_artifacts::HOSTILE;
    assert!(
        author
            .sign(hostile, &["--fuel", "10000000"])
            .status
            .success()
    );

    let out = author.run(hostile, r#"{"mode":"loop"}"#, &[]);
    assert_eq!(out.status.code(), Some(3));
    let reason = stderr(&out);
    assert!(reason.starts_with("error: fuel-exhausted:"), "{reason}");
    assert_eq!(reason.trim_end().lines().count(), 1, "{reason}");

    // Another author's key is not trusted.
    let stranger = Author::new();
    std::fs::copy(
        author.dir.path().join("task.manifest.json"),
        stranger.dir.path().join("task.manifest.json"),
    )
    .unwrap();
    let out = stranger.run(hostile, r#"{"mode":"ok"}"#, &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).starts_with("error: refused-module:"),
        "{}",
        stderr(&out)
    );

    // A module that is not the signed one.
    let out = author.run(musketeer_task_artifacts::NOOP, "x", &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("refused-module"), "{}", stderr(&out));

    // A manifest that is not a manifest at all (here: truncated) is named as such.
    let manifest = author.dir.path().join("task.manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, &text[..text.len() / 2]).unwrap();
    let out = author.run(hostile, r#"{"mode":"ok"}"#, &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).starts_with("error: bad-manifest:"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn user_errors_say_what_to_do() {
    let author = Author::new();
    let out = author.cmd(&["keys", "generate", "--out", "keys"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));

    let out = author.sign(musketeer_task_artifacts::NOOP, &[]);
    assert!(out.status.success());
    let mut args = vec!["sign", "--key", "keys/musketeer.key", "--module"];
    args.extend([
        musketeer_task_artifacts::NOOP,
        "--app",
        "demo",
        "--version",
        "one",
    ]);
    args.extend(["--out", "x.json"]);
    let out = author.cmd(&args);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("semantic version"),
        "{}",
        stderr(&out)
    );

    let out = author.run(musketeer_task_artifacts::NOOP, "@missing.txt", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("missing.txt"), "{}", stderr(&out));
}

/// `musketeer ARGS` in `dir` with no server, token or config file from the environment.
fn isolated(args: &[&str], dir: &std::path::Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_musketeer"))
        .args(args)
        .current_dir(dir)
        .env_remove("MUSKETEER_SERVER")
        .env_remove("MUSKETEER_TOKEN")
        .env_remove("MUSKETEER_CONFIG")
        .env("XDG_CONFIG_HOME", dir)
        .output()
        .expect("run musketeer")
}

/// A loopback port nothing listens on.
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    listener.local_addr().expect("its address").port()
}

#[test]
fn limits_take_units_and_bad_units_are_usage_errors() {
    let author = Author::new();
    let module = musketeer_task_artifacts::NOOP;
    let out = author.sign(module, &["--memory", "64MiB", "--timeout", "1.5m"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(author.dir.path().join("task.manifest.json")).unwrap(),
    )
    .unwrap();
    let limits = &manifest["manifest"]["limits"];
    assert_eq!(limits["memory_bytes"], 64 << 20, "{manifest}");
    assert_eq!(limits["wall_time_ms"], 90_000, "{manifest}");
    assert!(
        stderr(&out).starts_with("signed demo 1.0.0"),
        "{}",
        stderr(&out)
    );
    // Plain numbers keep their documented unit: bytes and seconds. `-q` keeps notes off stderr.
    let out = author.sign(module, &["--memory", "33554432", "--timeout", "20", "-q"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    let manifest = std::fs::read_to_string(author.dir.path().join("task.manifest.json")).unwrap();
    assert!(manifest.contains("\"wall_time_ms\": 20000"), "{manifest}");

    let out = author.sign(module, &["--memory", "64 parsecs"]);
    assert_eq!(out.status.code(), Some(2));
    let text = stderr(&out);
    assert!(
        text.contains("--memory") && text.contains("unknown unit \"parsecs\""),
        "{text}"
    );
}

#[test]
fn signing_with_the_public_key_says_which_key_to_use() {
    let author = Author::new();
    let mut args = sign_args(musketeer_task_artifacts::NOOP, "demo");
    args[2] = "keys/musketeer.pub";
    let out = author.cmd(&args);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains("keys/musketeer.pub is a public key") && !text.contains("chmod"),
        "{text}"
    );
}

#[test]
fn an_unreachable_server_is_one_root_cause_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.jsonl"), "{\"n\":1}\n").unwrap();
    let server = format!("http://127.0.0.1:{}", dead_port());
    // A negative priority is a value, not an unknown flag: parsing gets as far as the network.
    let args = [
        "submit",
        "--server",
        &server,
        "--token",
        "mku_x",
        "--app",
        "demo",
        "--inputs",
        "in.jsonl",
        "--priority",
        "-1",
    ];
    let out = isolated(&args, dir.path());
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let text = stderr(&out);
    let lines: Vec<&str> = text.trim_end().lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("error: submitting the batch failed: cannot reach the server at ")
            && lines[0].ends_with("Connection refused (os error 111)"),
        "{text}"
    );
    assert_eq!(
        lines[0].matches("error sending request").count(),
        0,
        "{text}"
    );
    assert!(
        lines[1].starts_with("hint: is the server running"),
        "{text}"
    );
}

#[test]
fn a_config_file_with_an_unknown_key_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("musketeer/config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        r#"{"server": "http://127.0.0.1:9", "tokne": "mku_x"}"#,
    )
    .unwrap();
    let out = isolated(&["batch", "list"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains("unknown field `tokne`") && text.contains("config.json"),
        "{text}"
    );
}

#[test]
fn completions_man_pages_json_and_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let out = isolated(&["completions", "bash"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(
        script.contains("_musketeer()") && script.contains("submit"),
        "{script}"
    );

    let out = isolated(&["man", "--out", "man"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let page = std::fs::read_to_string(dir.path().join("man/musketeer-submit.1")).unwrap();
    assert!(page.contains(".TH") && page.contains("inputs"), "{page}");

    let out = isolated(
        &["-q", "keys", "generate", "--out", "keys", "--json"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["key_id"].as_str().unwrap().starts_with("ed25519:"),
        "{report}"
    );
    assert!(
        report["secret_key_file"]
            .as_str()
            .unwrap()
            .ends_with("musketeer.key")
    );

    let out = isolated(&["--help"], dir.path());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Exit status:") && help.contains("5  the waited-for batch"),
        "{help}"
    );
    assert_eq!(
        isolated(&["submit", "--bogus"], dir.path()).status.code(),
        Some(2)
    );
}

#[test]
fn no_server_or_token_is_a_usage_error_and_a_missing_config_file_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = isolated(&["batch", "list"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("error: no server given: pass --server URL"),
        "{}",
        stderr(&out)
    );
    let server = format!("http://127.0.0.1:{}", dead_port());
    let out = isolated(&["apps", "list", "--server", &server], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("error: no token given: pass --token TOKEN"),
        "{}",
        stderr(&out)
    );
    let out = isolated(&["batch", "list", "--config", "missing.json"], dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains("cannot read config file missing.json") && text.contains("create it with"),
        "{text}"
    );
    let out = isolated(
        &[
            "batch", "status", "1", "--server", "ftp://x", "--token", "t",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("expected e.g. http://127.0.0.1:8080"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn join_flags_out_of_range_and_bad_urls_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = format!("http://127.0.0.1:{}", dead_port());
    for (flags, says) in [
        (&["--slots", "0"][..], "--slots 0: give between 1 and 4096"),
        (
            &["--work-buffer", "2h"][..],
            "--work-buffer must be at most 1h",
        ),
    ] {
        let mut args = vec!["join", server.as_str(), "--data-dir", "data"];
        args.extend_from_slice(flags);
        let out = isolated(&args, dir.path());
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{flags:?}: {}", stderr(&out));
    }
    for url in ["notaurl", "ftp://x", "http://"] {
        let out = isolated(&["join", url, "--data-dir", "data"], dir.path());
        assert_eq!(out.status.code(), Some(2), "{url}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("expected e.g. http://127.0.0.1:8080"),
            "{url}: {}",
            stderr(&out)
        );
        assert!(
            !dir.path().join("data").join("projects").exists(),
            "{url}: a bad URL left a project folder"
        );
    }
}

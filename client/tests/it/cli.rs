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

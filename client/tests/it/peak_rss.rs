//! Peak resident memory of `musketeer run` on memory and output bombs: a task's RSS stays
//! within its memory limit plus the fixed overhead of the client itself (measured here as the
//! peak of a run that does nothing). Numbers go to stderr (`--nocapture`) for docs/security.md.

#![cfg(target_os = "linux")]

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::components;
use crate::support::{run_args, sign_args};

const MIB: u64 = 1024 * 1024;
/// Allowance for allocator and page-table noise between two runs of the client.
const SLACK: u64 = 24 * MIB;

/// The exit code, stderr and peak RSS (bytes) of one `musketeer` run in `dir`.
#[expect(
    clippy::zombie_processes,
    reason = "reaped by wait4, which std's wait cannot replace: it alone returns the rusage"
)]
fn peak_rss(dir: &Path, args: &[&str]) -> (Option<i32>, String, u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_musketeer"))
        .args(args)
        .env("MUSKETEER_CACHE_DIR", crate::support::shared_cache_dir())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start musketeer");
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        // Ends when the child exits (the run is bounded by its own wall-clock limit).
        let _ = pipe.read_to_string(&mut stderr);
    }
    let pid = i32::try_from(child.id()).expect("pid fits");
    let mut status = 0;
    // SAFETY: `rusage` is plain old data, zero is a valid value for every field.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, with valid pointers to locals; reaps it, so `child` is
    // not waited again.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(
        reaped,
        pid,
        "wait4 failed: {}",
        std::io::Error::last_os_error()
    );
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    // Linux reports `ru_maxrss` in KiB.
    let peak = u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024;
    (code, stderr, peak)
}

/// Signs `module` in `dir` with `limits` (extra `sign` flags) and returns the `run` arguments.
fn signed_run<'a>(dir: &Path, module: &'a str, limits: &[&str], input: &'a str) -> Vec<&'a str> {
    let mut sign = sign_args(module, "bomb");
    sign.extend_from_slice(limits);
    let (code, stderr, _) = peak_rss(dir, &sign);
    assert_eq!(code, Some(0), "{stderr}");
    run_args(module, input)
}

/// Peak RSS of the run, measured on its second go so that compiling (cached after the first)
/// is not counted.
fn measured(dir: &Path, run: &[&str]) -> (Option<i32>, String, u64) {
    let _ = peak_rss(dir, run);
    peak_rss(dir, run)
}

#[test]
fn bombs_stay_within_their_limit_plus_the_client_overhead() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (code, stderr, _) = peak_rss(dir.path(), &["keys", "generate", "--out", "keys"]);
    assert_eq!(code, Some(0), "{stderr}");
    let hostile = musketeer_task_artifacts::HOSTILE;
    let memory_64 = (64 * MIB).to_string();

    let run = signed_run(
        dir.path(),
        hostile,
        &["--memory", &memory_64],
        r#"{"mode":"ok"}"#,
    );
    let (code, stderr, baseline) = measured(dir.path(), &run);
    assert_eq!(code, Some(0), "{stderr}");

    // Seven memories of 16 MiB each under one 64 MiB budget.
    std::fs::write(
        dir.path().join("memories.wasm"),
        components::several_memories(7, 16),
    )
    .expect("write fixture");
    let run = signed_run(dir.path(), "memories.wasm", &["--memory", &memory_64], "x");
    let (code, stderr, memories) = measured(dir.path(), &run);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("memory-limit"), "{stderr}");

    // A 64 MiB output under a 1 MiB output limit, with memory enough to build it.
    let memory_128 = (128 * MIB).to_string();
    let bytes = format!(r#"{{"mode":"output","bytes":{}}}"#, 64 * MIB);
    let run = signed_run(
        dir.path(),
        hostile,
        &["--memory", &memory_128, "--max-output", "1048576"],
        &bytes,
    );
    let (code, stderr, output) = measured(dir.path(), &run);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("output-too-large"), "{stderr}");

    let mib = |bytes: u64| bytes as f64 / MIB as f64;
    eprintln!(
        "peak RSS: idle run {:.1} MiB; 7x16 MiB memories under 64 MiB: {:.1} MiB (+{:.1}); \
         64 MiB output under a 1 MiB output limit: {:.1} MiB (+{:.1})",
        mib(baseline),
        mib(memories),
        mib(memories.saturating_sub(baseline)),
        mib(output),
        mib(output.saturating_sub(baseline)),
    );
    assert!(
        memories <= baseline + 64 * MIB + SLACK,
        "memory bomb peaked at {:.1} MiB, idle run {:.1} MiB",
        mib(memories),
        mib(baseline)
    );
    // The task's own 64 MiB buffer is within its memory limit; the host must not add a copy.
    assert!(
        output <= baseline + 64 * MIB + SLACK,
        "output bomb peaked at {:.1} MiB, idle run {:.1} MiB",
        mib(output),
        mib(baseline)
    );
}

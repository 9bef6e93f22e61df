//! What the SDK writer tests (`python_sdk.rs`, `js_sdk.rs`) share: the repository root, a
//! child process fed on stdin, and the floats compared with serde_json.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// Runs `command` with `stdin` as its input and returns its stdout; fails the test if it fails.
pub fn output_of(command: &mut Command, stdin: &str) -> String {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", command.get_program()));
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_owned();
    // Written from a thread: the child answers line by line, and a full stdout pipe would
    // otherwise stop it before it read all of its input.
    let writer = std::thread::spawn(move || input.write_all(stdin.as_bytes()));
    let output = child.wait_with_output().expect("child output");
    writer.join().expect("writer thread").expect("write stdin");
    assert!(
        output.status.success(),
        "{:?} failed: {}",
        command.get_program(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// Floats whose layout differs between the other language's shortest form and serde_json's,
/// corner cases, and a spread of bit patterns.
fn floats() -> Vec<f64> {
    let mut values = vec![
        0.0,
        -0.0,
        1.0,
        -1.5,
        0.1,
        19.5,
        1085.0,
        1e-7,
        1.5e-7,
        1e-6,
        1e-5,
        1.234e-5,
        0.0001,
        0.001234,
        1e15,
        1e16,
        1.5e16,
        1234567890123456.0,
        12345678901234567.0,
        9_007_199_254_740_992.0,
        1e21,
        1e22,
        1.7976931348623157e308,
        5e-324,
        2.2250738585072014e-308,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    values.extend((0..=10_000).map(|cents| f64::from(cents) / 100.0));
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    for _ in 0..5_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        values.push(f64::from_bits(seed));
    }
    values
}

/// Feeds [`floats`] (their bits, one decimal `u64` a line) to `write`, which answers one JSON
/// text a line, and fails the test where a text differs from serde_json's.
pub fn assert_floats_written_as_serde_json(language: &str, write: impl FnOnce(&str) -> String) {
    let values = floats();
    let bits: String = values
        .iter()
        .map(|v| format!("{}\n", v.to_bits()))
        .collect();
    let written = write(&bits);
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!(lines.len(), values.len());
    let differences: Vec<String> = values
        .iter()
        .zip(lines)
        .filter_map(|(value, other)| {
            let serde = serde_json::to_string(value).expect("serde_json writes every f64");
            (other != serde).then(|| format!("{value:e}: {language} {other}, serde_json {serde}"))
        })
        .collect();
    assert!(
        differences.is_empty(),
        "{} of {} floats differ, e.g. {:#?}",
        differences.len(),
        values.len(),
        &differences[..differences.len().min(20)]
    );
}

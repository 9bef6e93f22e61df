//! The Python task SDK's JSON writer (`task-sdk/python/musketeer_task/_json.py`) against
//! serde_json, which the Rust SDK uses: a Python port of a Rust task must give the same bytes.
//! Runs the SDK natively in the componentize-py venv's interpreter, which the build made.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// Runs `script` in the venv's Python with the SDK importable, `stdin` as its input.
fn python(script: &str, stdin: &str) -> String {
    let root = repo_root();
    let mut child = Command::new(root.join("target/componentize-py-venv/bin/python"))
        .args(["-c", script])
        .env("PYTHONPATH", root.join("task-sdk/python"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the venv's python (made by this crate's build script)");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_owned();
    // Written from a thread: Python answers line by line, and a full stdout pipe would
    // otherwise stop it before it read all of its input.
    let writer = std::thread::spawn(move || input.write_all(stdin.as_bytes()));
    let output = child.wait_with_output().expect("python output");
    writer.join().expect("writer thread").expect("write stdin");
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// Floats whose layout differs between Python's `repr` and ryu, corner cases, and a spread of
/// bit patterns.
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
        1e-5,
        1.234e-5,
        0.0001,
        0.001234,
        1e15,
        1e16,
        1.5e16,
        1234567890123456.0,
        12345678901234567.0,
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

#[test]
fn floats_are_written_as_serde_json_writes_them() {
    let values = floats();
    let bits: String = values
        .iter()
        .map(|v| format!("{}\n", v.to_bits()))
        .collect();
    let written = python(
        "import struct, sys\n\
         from musketeer_task import to_json\n\
         for line in sys.stdin:\n    \
             value = struct.unpack('<d', int(line).to_bytes(8, 'little'))[0]\n    \
             sys.stdout.write(to_json(value).decode() + '\\n')\n",
        &bits,
    );
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!(lines.len(), values.len());
    let differences: Vec<String> = values
        .iter()
        .zip(lines)
        .filter_map(|(value, python)| {
            let serde = serde_json::to_string(value).expect("serde_json writes every f64");
            (python != serde).then(|| format!("{value:e}: Python {python}, serde_json {serde}"))
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

/// The Rust tasks build against `tasks/Cargo.lock`, this test against the root one: the
/// comparison above holds for the Rust tasks only while both lock the same serde_json.
#[test]
fn both_workspaces_lock_the_same_serde_json() {
    let root = repo_root();
    let version = |lock: &str| {
        let text = std::fs::read_to_string(root.join(lock)).expect("lock file");
        let at = text
            .find("name = \"serde_json\"\nversion = ")
            .unwrap_or_else(|| panic!("serde_json in {lock}"));
        text[at..].lines().nth(1).map(str::to_owned)
    };
    assert_eq!(version("Cargo.lock"), version("tasks/Cargo.lock"));
}

#[test]
fn documents_are_written_as_serde_json_writes_them() {
    let document = serde_json::json!({
        "個股代號": "2356",
        "text": "quote \" backslash \\ controls \u{1}\u{1f}\n\t\r\u{8}\u{c} del \u{7f} é 日本 😀",
        "nested": [1, -2, 18_446_744_073_709_551_615_u64, null, true, false, [], {}],
        "price": 19.5,
        "change": -0.0,
    });
    let written = python(
        "import json, sys\n\
         from musketeer_task import to_json\n\
         sys.stdout.buffer.write(to_json(json.loads(sys.stdin.read())))\n",
        &document.to_string(),
    );
    // serde_json (without `preserve_order`) writes keys sorted; Python keeps the order it read,
    // which is that sorted order, so the two texts must match exactly.
    assert_eq!(written, serde_json::to_string(&document).expect("JSON"));
}

#[test]
fn non_json_outputs_are_task_errors() {
    let written = python(
        "from musketeer_task import JsonError, to_json\n\
         for value in ({1: 2}, {'a': {1, 2}}, b'bytes'):\n    \
             try:\n        to_json(value)\n    \
             except JsonError as error:\n        print(error)\n",
        "",
    );
    assert_eq!(
        written,
        "cannot encode output as JSON: key 1 is not a string\n\
         cannot encode output as JSON: set is not a JSON type\n\
         cannot encode output as JSON: bytes is not a JSON type\n"
    );
}

#[test]
fn task_failures_become_the_runs_error_message() {
    let written = python(
        "import musketeer_task as sdk\n\
         @sdk.task_json\n\
         def run(request):\n    \
             if request == 'task':\n        raise sdk.TaskError('TWSE: no data')\n    \
             if request == 'bug':\n        return {}['missing']\n    \
             return [request, 0.5]\n\
         for data in (b'\"ok\"', b'\"task\"', b'\"bug\"', b'{'):\n    \
             try:\n        print(sdk._call(data).decode())\n    \
             except Exception as error:\n        print(sdk._error_message(error))\n",
        "",
    );
    assert_eq!(
        written,
        "[\"ok\",0.5]\n\
         TWSE: no data\n\
         KeyError: 'missing'\n\
         invalid input JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)\n"
    );
}

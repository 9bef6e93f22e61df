//! The Python task SDK's JSON writer (`task-sdk/python/musketeer_task/_json.py`) against
//! serde_json, which the Rust SDK uses: a Python port of a Rust task must give the same bytes.
//! Runs the SDK natively in the componentize-py venv's interpreter, which the build made.

mod common;

use std::process::Command;

use common::{assert_floats_written_as_serde_json, output_of, repo_root};

/// Runs `script` in the venv's Python with the SDK importable, `stdin` as its input.
fn python(script: &str, stdin: &str) -> String {
    let root = repo_root();
    output_of(
        Command::new(root.join("target/componentize-py-venv/bin/python"))
            .args(["-c", script])
            .env("PYTHONPATH", root.join("task-sdk/python"))
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        stdin,
    )
}

#[test]
fn floats_are_written_as_serde_json_writes_them() {
    assert_floats_written_as_serde_json("Python", |bits| {
        python(
            "import struct, sys\n\
         from musketeer_task import to_json\n\
         for line in sys.stdin:\n    \
             value = struct.unpack('<d', int(line).to_bytes(8, 'little'))[0]\n    \
             sys.stdout.write(to_json(value).decode() + '\\n')\n",
            bits,
        )
    });
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

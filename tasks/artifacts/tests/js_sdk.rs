//! The JavaScript task SDK's JSON writer (`task-sdk/js/json.js`) against serde_json, which the
//! Rust SDK uses: a JavaScript port of a Rust task must give the same bytes. Runs the writer
//! natively in Node.js (which the build needs for componentize-js); the same JavaScript runs
//! in the module's engine, where the client's `js_task` tests check it again.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// Runs the ES module `script` in Node.js with the SDK's `json.js` imported as `sdk`, `stdin`
/// as its input.
fn node(script: &str, stdin: &str) -> String {
    let json_js = repo_root().join("task-sdk/js/json.js");
    let source = format!(
        "import * as sdk from {:?};\n{script}",
        format!("file://{}", json_js.display())
    );
    let node = std::env::var("NODE").unwrap_or_else(|_| "node".into());
    let mut child = Command::new(node)
        .args(["--input-type=module", "-e", &source])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node (the JavaScript tasks' build needs it too)");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_owned();
    // Written from a thread: a full stdout pipe would otherwise stop node before it read all
    // of its input.
    let writer = std::thread::spawn(move || input.write_all(stdin.as_bytes()));
    let output = child.wait_with_output().expect("node output");
    writer.join().expect("writer thread").expect("write stdin");
    assert!(
        output.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// Floats whose layout differs between JavaScript's `toString` and serde_json, corner cases,
/// and a spread of bit patterns.
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

#[test]
fn floats_are_written_as_serde_json_writes_them() {
    let values = floats();
    let bits: String = values
        .iter()
        .map(|v| format!("{}\n", v.to_bits()))
        .collect();
    let written = node(
        "let text = '';\n\
         for await (const chunk of process.stdin) text += chunk;\n\
         const view = new DataView(new ArrayBuffer(8));\n\
         const out = text.trim().split('\\n').map((line) => {\n  \
             view.setBigUint64(0, BigInt(line));\n  \
             return new TextDecoder().decode(sdk.toJson(sdk.float(view.getFloat64(0))));\n\
         });\n\
         process.stdout.write(out.join('\\n') + '\\n');\n",
        &bits,
    );
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!(lines.len(), values.len());
    let differences: Vec<String> = values
        .iter()
        .zip(lines)
        .filter_map(|(value, js)| {
            let serde = serde_json::to_string(value).expect("serde_json writes every f64");
            (js != serde).then(|| format!("{value:e}: JavaScript {js}, serde_json {serde}"))
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

#[test]
fn documents_are_written_as_serde_json_writes_them() {
    let document = serde_json::json!({
        "個股代號": "2356",
        "text": "quote \" backslash \\ slash / controls \u{1}\u{1f}\n\t\r\u{8}\u{c} del \u{7f} é 日本 😀",
        "nested": [1, -2, 9_007_199_254_740_991_i64, null, true, false, [], {}],
        "price": 19.5,
        "change": -0.5,
    });
    let written = node(
        "let text = '';\n\
         for await (const chunk of process.stdin) text += chunk;\n\
         process.stdout.write(sdk.toJson(JSON.parse(text)));\n",
        &document.to_string(),
    );
    // serde_json (without `preserve_order`) writes keys sorted; `JSON.parse` keeps the order it
    // read, which is that sorted order, so the two texts must match exactly.
    assert_eq!(written, serde_json::to_string(&document).expect("JSON"));
}

#[test]
fn integers_floats_and_big_integers_keep_their_rust_types() {
    let written = node(
        "const values = [5, -0, sdk.float(5), sdk.float(-0), 2 ** 53, (1n << 64n) - 1n, \
         -(1n << 63n), 0.5];\n\
         process.stdout.write(sdk.toJson(values));\n",
        "",
    );
    let expected = serde_json::to_string(&(
        5,
        0,
        5.0,
        -0.0,
        9_007_199_254_740_992.0,
        u64::MAX,
        i64::MIN,
        0.5,
    ))
    .expect("JSON");
    assert_eq!(written, expected);
}

#[test]
fn non_json_outputs_are_errors() {
    let written = node(
        "const cyclic = [];\n\
         cyclic.push(cyclic);\n\
         for (const value of [new Map([[1, 2]]), { a: new Set() }, () => 1, 'lone \\ud800', \
         cyclic, sdk.float('5')]) {\n  \
             try { sdk.toJson(value); console.log('written'); }\n  \
             catch (error) { console.log(`${error.name}: ${error.message}`); }\n\
         }\n",
        "",
    );
    assert_eq!(
        written,
        "JsonError: cannot encode output as JSON: key 1 is not a string\n\
         JsonError: cannot encode output as JSON: Set is not a JSON type\n\
         JsonError: cannot encode output as JSON: function is not a JSON type\n\
         JsonError: cannot encode output as JSON: a string holds a lone surrogate (not Unicode text)\n\
         JsonError: cannot encode output as JSON: the value contains itself\n\
         JsonError: cannot encode output as JSON: float() of a string\n"
    );
}

//! The JavaScript task SDK's JSON writer (`task-sdk/js/json.js`) against serde_json, which the
//! Rust SDK uses: a JavaScript port of a Rust task must give the same bytes. Runs the writer
//! natively in Node.js (which the build needs for componentize-js); the same JavaScript runs
//! in the module's engine, where the client's `js_task` tests check it again.

mod common;

use std::process::Command;

use common::{assert_floats_written_as_serde_json, output_of, repo_root};

/// Runs the ES module `script` in Node.js with the SDK's `json.js` imported as `sdk`, `stdin`
/// as its input.
fn node(script: &str, stdin: &str) -> String {
    let json_js = repo_root().join("task-sdk/js/json.js");
    let source = format!(
        "import * as sdk from {:?};\n{script}",
        format!("file://{}", json_js.display())
    );
    let node = std::env::var("NODE").unwrap_or_else(|_| "node".into());
    output_of(
        Command::new(node).args(["--input-type=module", "-e", &source]),
        stdin,
    )
}

#[test]
fn floats_are_written_as_serde_json_writes_them() {
    assert_floats_written_as_serde_json("JavaScript", |bits| {
        node(
            "let text = '';\n\
         for await (const chunk of process.stdin) text += chunk;\n\
         const view = new DataView(new ArrayBuffer(8));\n\
         const out = text.trim().split('\\n').map((line) => {\n  \
             view.setBigUint64(0, BigInt(line));\n  \
             return new TextDecoder().decode(sdk.toJson(sdk.float(view.getFloat64(0))));\n\
         });\n\
         process.stdout.write(out.join('\\n') + '\\n');\n",
            bits,
        )
    });
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

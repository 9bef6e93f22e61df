//! `musketeer submit --lines`: each line's bytes reach a text task unchanged (no JSON quotes or
//! escapes, CRLF ends read as LF, non-UTF-8 bytes as they are), a client that does not declare
//! raw inputs is given none, and the results show each input as submitted.

use musketeer_protocol::{
    Backend, BatchId, FetchRequest, FetchResponse, HostPlatform, RegisterHostRequest,
    RegisterHostResponse, UnitState, paths,
};
use musketeer_task_artifacts::WORD_COUNT;
use serde_json::{Value, json};

use crate::support::{Http, Project, musketeer_ok, path, wait_idle};

/// A CRLF line, a line with quotes, a backslash and a tab, an empty line, a Latin-1 line.
const LINES: &[u8] = b"The cat\r\nsay \"hi\"\tC:\\dir\n\ncaf\xe9\n";

/// A host that predates raw inputs: it fetches without declaring any capability.
fn old_client_fetch(http: &Http) -> FetchResponse {
    let platform = HostPlatform {
        arch: "x86_64".into(),
        os: "linux".into(),
        client_version: env!("CARGO_PKG_VERSION").into(),
        wasmtime_version: "48.0.8".into(),
        backend: Backend::Cranelift,
        slots: 4,
        max_task_memory: None,
    };
    let registered: RegisterHostResponse = http
        .post(
            paths::HOSTS_REGISTER,
            None,
            &RegisterHostRequest {
                name: Some("old-client".into()),
                invite_code: None,
                platform: Some(platform.clone()),
            },
        )
        .expect("register the old client");
    http.post(
        paths::WORK_FETCH,
        Some(&registered.host_token),
        &FetchRequest {
            free_slots: 4,
            platform,
            wait_ms: None,
            in_flight: Vec::new(),
            held: None,
            results: Vec::new(),
            capabilities: Vec::new(),
        },
    )
    .expect("fetch as the old client")
}

#[test]
fn submit_lines_hands_each_lines_bytes_to_the_task_unchanged() {
    let project = Project::start();
    project.publish(WORD_COUNT, "word-count", "1.0.0", &[]);
    let lines = project.dir.path().join("lines.txt");
    std::fs::write(&lines, LINES).expect("write the lines");
    let token = [("MUSKETEER_TOKEN", project.researcher.as_str())];
    let submitted = musketeer_ok(
        &[
            "submit",
            "--server",
            &project.url,
            "--app",
            "word-count",
            "--lines",
            path(&lines),
        ],
        &token,
    );
    let batch = BatchId(submitted.trim().parse().expect("the batch id"));

    let http = project.http();
    let old = old_client_fetch(&http);
    assert!(old.assignments.is_empty(), "{old:?}");
    assert_eq!(old.refusal, None);

    let volunteer = project.join("v1", 2);
    let status = http.wait_finished(&project.researcher, batch);
    wait_idle(&volunteer);
    assert_eq!(
        (status.counts.done, status.counts.failed),
        (3, 1),
        "{status:?}"
    );

    let jsonl = project.dir.path().join("results.jsonl");
    let csv = project.dir.path().join("results.csv");
    for out in [&jsonl, &csv] {
        let id = batch.0.to_string();
        musketeer_ok(
            &[
                "batch",
                "results",
                &id,
                "--server",
                &project.url,
                "--output",
                path(out),
            ],
            &token,
        );
    }
    let rows: Vec<Value> = std::fs::read_to_string(&jsonl)
        .expect("read the results")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(rows[0]["input"], json!("The cat"));
    assert_eq!(rows[0]["output"]["total"], json!(2));
    // Quoted as JSON the task would have read `"say \"hi\"\tC:\\dir"`, whose `\t` glues a `t`
    // to the `C`; raw, it reads the tab itself.
    assert_eq!(rows[1]["input"], json!("say \"hi\"\tC:\\dir"));
    assert_eq!(
        rows[1]["output"],
        json!({"total": 4, "unique": 4, "words": [
            {"word": "c", "count": 1}, {"word": "dir", "count": 1},
            {"word": "hi", "count": 1}, {"word": "say", "count": 1}
        ]})
    );
    assert_eq!(rows[2]["input"], json!(""));
    assert_eq!(rows[2]["output"]["total"], json!(0));
    // The Latin-1 byte reached the task as it was: word-count refuses text that is not UTF-8.
    assert_eq!(rows[3]["state"], json!(UnitState::Failed));
    assert_eq!(rows[3]["input"], Value::Null);
    assert_eq!(rows[3]["input_base64"], json!("Y2Fm6Q=="));
    let error = rows[3]["error"].as_str().unwrap_or_default();
    assert!(error.contains("input is not UTF-8"), "{error}");

    // RFC 4180: the cell with quotes is quoted, its quotes doubled; the tab stays a tab.
    let csv = std::fs::read_to_string(&csv).expect("read the CSV");
    let records: Vec<&str> = csv.split_terminator("\r\n").collect();
    assert_eq!(records.len(), 5, "{csv}");
    assert!(records[1].contains(",The cat,done,"), "{csv}");
    assert!(
        records[2].contains(",\"say \"\"hi\"\"\tC:\\dir\",done,"),
        "{csv}"
    );
    assert!(records[4].contains(",base64:Y2Fm6Q==,failed,"), "{csv}");
}

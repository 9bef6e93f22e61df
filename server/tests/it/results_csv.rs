//! A CSV download with cells that need quoting (commas, quotes, newlines, non-ASCII) reads back
//! cell for cell with a standard CSV reader.

use axum::http::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::support::{Api, Project};

#[tokio::test]
async fn nasty_cells_survive_a_csv_download() {
    let project = Project::new();
    let api = Api::new(&project);
    api.publish(&project, "demo", "1.0.0", b"m").await;
    let inputs = json!(["plain", "comma, and \"quotes\"", {"multi": "line\r\nbreak"}]);
    let batch = api
        .submit(&project.researcher, "demo", inputs.clone(), json!({}))
        .await;
    let host = api.register("h").await;
    let assignments = api.fetch(&host, 3).await;
    assert_eq!(assignments.len(), 3);
    let outputs = [
        json!({"note": "=1+2, \"not\" a formula\nsecond line", "n": 1}),
        json!({"note": "ünïcödé ✓", "odd, \"key\"": ""}),
        json!("a bare string, with a comma"),
    ];
    // Assignments may come in any order: each unit gets the output of its own index.
    let first = assignments
        .iter()
        .filter_map(|a| a["unit_id"].as_u64())
        .min()
        .unwrap();
    for assignment in &assignments {
        let index = (assignment["unit_id"].as_u64().unwrap() - first) as usize;
        let bytes = serde_json::to_vec(&outputs[index]).unwrap();
        assert_eq!(
            api.report_success(&host, &assignment["result_id"], &bytes)
                .await,
            "accepted"
        );
    }

    let (status, body, headers) = api
        .send(
            Method::GET,
            &format!("/api/v1/batches/{batch}/results?format=csv"),
            Some(&project.researcher),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    let mut reader = csv::Reader::from_reader(body.as_slice());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header,
        [
            "unit_id",
            "input",
            "state",
            "error",
            "note",
            "n",
            "odd, \"key\"",
            "output"
        ]
    );
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(rows.len(), 3, "{}", String::from_utf8_lossy(&body));
    let cells = |row: &Vec<String>| -> Vec<String> { row[1..].to_vec() };
    let expected: [[&str; 7]; 3] = [
        [
            "plain",
            "done",
            "",
            "=1+2, \"not\" a formula\nsecond line",
            "1",
            "",
            "",
        ],
        ["comma, and \"quotes\"", "done", "", "ünïcödé ✓", "", "", ""],
        [
            "{\"multi\":\"line\\r\\nbreak\"}",
            "done",
            "",
            "",
            "",
            "",
            "a bare string, with a comma",
        ],
    ];
    for (row, expected) in rows.iter().zip(expected) {
        assert_eq!(cells(row), expected, "{row:?}");
    }
    assert_eq!(inputs[0], Value::from(rows[0][1].clone()));
}

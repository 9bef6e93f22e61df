//! The original experiment: 4 musketeers on 2 clients crawl the 30 stocks of May 2016.

use musketeer_protocol::{BatchId, ResultsFormat, UnitState, paths};
use musketeer_task_artifacts::STOCK_DAY;
use musketeer_task_artifacts::twse::{COLUMNS, FeedServer, ORIGINAL_STOCK_IDS, stock_day_answer};

use crate::support::{Project, musketeer_ok, path, wait_idle};

#[test]
fn thirty_stocks_on_four_slots() {
    let feed = FeedServer::start().expect("feed");
    let project = Project::start();
    project.publish(STOCK_DAY, "stock-day", "1.0.0", &[feed.allow_prefix()]);
    let a = project.join("musketeer-a", 2);
    let b = project.join("musketeer-b", 2);
    wait_idle(&a);
    wait_idle(&b);

    let ids = project.dir.path().join("ids.txt");
    std::fs::write(&ids, ORIGINAL_STOCK_IDS.join("\n")).unwrap();
    let template = format!(
        r#"{{"stock_id":{{}},"year":2016,"month":5,"source":"{}"}}"#,
        feed.base_url()
    );
    let csv = project.dir.path().join("table.csv");
    let out = musketeer_ok(
        &[
            "submit",
            "--server",
            &project.url,
            "--app",
            "stock-day",
            "--inputs",
            path(&ids),
            "--input-template",
            &template,
            "--wait",
            "--output",
            path(&csv),
        ],
        &[("MUSKETEER_TOKEN", &project.researcher)],
    );
    let batch: u64 = out
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .expect("batch id on stdout");

    let rows = project.http().results(&project.researcher, BatchId(batch));
    assert_eq!(rows.len(), 30);
    for (row, id) in rows.iter().zip(ORIGINAL_STOCK_IDS) {
        assert_eq!(row.state, UnitState::Done, "{row:?}");
        assert_eq!(row.input["stock_id"], id);
        let output = row.output.as_ref().expect("JSON output");
        assert_eq!(output.as_object().unwrap().len(), COLUMNS.len(), "{output}");
        check_against_feed(id, output);
    }
    // The original column order survives the trip (checked on the raw text: the test's JSON
    // maps do not keep key order).
    let raw = project
        .http()
        .get_text(
            &paths::batch_results(BatchId(batch), ResultsFormat::Jsonl),
            &project.researcher,
        )
        .unwrap();
    for line in raw.lines() {
        let positions: Vec<usize> = COLUMNS.iter().map(|c| line.find(c).unwrap()).collect();
        assert!(
            positions.windows(2).all(|p| p[0] < p[1]),
            "column order in {line}"
        );
    }

    // pandas-ready CSV: the input and unit id first, then the original columns in order.
    let table = std::fs::read_to_string(&csv).unwrap();
    let header = table.lines().next().unwrap();
    let position = |name: &str| {
        header
            .find(name)
            .unwrap_or_else(|| panic!("{name} in {header}"))
    };
    assert!(position("unit_id") < position("input"));
    for pair in COLUMNS.windows(2) {
        assert!(position(pair[0]) < position(pair[1]), "{header}");
    }
    assert_eq!(table.lines().count(), 31, "{table}");

    // Every one of the four slots took a share, like the four musketeers.
    for client in [&a, &b] {
        let finished = client.stdout.events("finished");
        for slot in [1, 2] {
            assert!(
                finished.iter().any(|e| e["slot"] == slot),
                "slot {slot} of a client ran nothing: {finished:?}"
            );
        }
    }
    let done: usize = [&a, &b]
        .iter()
        .map(|c| c.stdout.events("finished").len())
        .sum();
    assert_eq!(done, 30, "each unit ran exactly once with quorum 1");
}

/// Checks one output row against the feed's last trading day, converted independently:
/// thousands separators and the ex-rights `X` dropped, `--` as null, the date kept as text.
pub fn check_against_feed(id: &str, output: &serde_json::Value) {
    let answer: serde_json::Value =
        serde_json::from_str(&stock_day_answer(id, "20160501")).unwrap();
    let fields = answer["fields"].as_array().unwrap();
    let last = answer["data"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_array()
        .unwrap();
    assert_eq!(output["個股代號"], id);
    for (field, cell) in fields.iter().zip(last).take(9) {
        let field = field.as_str().unwrap();
        let cell = cell.as_str().unwrap();
        let got = &output[field];
        if field == "日期" {
            assert_eq!(got, cell, "{id} {field}");
        } else if cell.trim() == "--" {
            assert!(got.is_null(), "{id} {field}: {got}");
        } else {
            let expected: f64 = cell
                .trim()
                .trim_start_matches('X')
                .replace(',', "")
                .parse()
                .unwrap();
            assert_eq!(
                got.as_f64(),
                Some(expected),
                "{id} {field}: {cell:?} vs {got}"
            );
        }
    }
}

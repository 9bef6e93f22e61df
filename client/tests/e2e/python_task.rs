//! A task written in Python through a real cluster: `stock-day-py` (componentize-py) is signed,
//! published and run by two unchanged volunteers, each unit by both, which must agree byte for
//! byte and fuel for fuel.

use std::time::Duration;

use musketeer_protocol::{ReplicaOutcome, Replication, SubmitBatchRequest, UnitState};
use musketeer_task_artifacts::STOCK_DAY_PY;
use musketeer_task_artifacts::twse::{FeedServer, ORIGINAL_STOCK_IDS};
use serde_json::json;

use crate::demo::check_against_feed;
use crate::support::{Project, wait_idle};

/// Each volunteer compiles the 18 MB module once (about a minute on a loaded 2-core machine,
/// both at the same time), so this waits longer than `support::DEADLINE`.
const PYTHON_DEADLINE: Duration = Duration::from_secs(600);

#[test]
fn two_volunteers_agree_on_the_python_crawler() {
    two_volunteers_agree_on_a_crawler(STOCK_DAY_PY, "stock-day-py", PYTHON_DEADLINE);
}

/// The crawler `module` (a port of `stock-day`, published as `app`) through a cluster of two
/// volunteers, each unit run by both; shared with `js_task`.
pub fn two_volunteers_agree_on_a_crawler(module: &str, app: &str, deadline: Duration) {
    let feed = FeedServer::start().expect("feed");
    let project = Project::start();
    project.publish(module, app, "1.0.0", &[feed.allow_prefix()]);
    let a = project.join(&format!("{app}-a"), 1);
    let b = project.join(&format!("{app}-b"), 1);
    wait_idle(&a);
    wait_idle(&b);

    // The third stock answers with TWSE's newer ten fields.
    let stocks = &ORIGINAL_STOCK_IDS[..3];
    let request = SubmitBatchRequest {
        app: app.into(),
        version: None,
        inputs: stocks
            .iter()
            .map(|id| json!({"stock_id": id, "year": 2016, "month": 5, "source": feed.base_url()}))
            .collect(),
        replication: Replication {
            min_quorum: Some(2),
            target_nresults: Some(2),
            ..Replication::default()
        },
        priority: 0,
        label: Some(app.into()),
        ..SubmitBatchRequest::default()
    };
    let http = project.http();
    let token = &project.researcher;
    let batch = http.submit(token, &request).batch_id;
    http.wait_finished_within(token, batch, deadline);

    let rows = http.results(token, batch);
    assert_eq!(rows.len(), stocks.len());
    for (row, id) in rows.iter().zip(stocks) {
        assert_eq!(row.state, UnitState::Done, "{row:?}");
        check_against_feed(id, row.output.as_ref().expect("JSON output"));
        let unit = http.unit(token, row.unit_id);
        let valid: Vec<_> = unit
            .replicas
            .iter()
            .filter(|r| r.outcome == ReplicaOutcome::Valid)
            .collect();
        assert_eq!(valid.len(), 2, "both volunteers agreed on {id}: {unit:?}");
        assert_ne!(valid[0].host, valid[1].host, "{unit:?}");
        assert!(valid[0].fuel.is_some(), "{unit:?}");
        assert_eq!(valid[0].fuel, valid[1].fuel, "same fuel on both: {unit:?}");
    }
    for host in http.hosts(&project.admin).hosts {
        assert_eq!(host.invalid, 0, "no result may disagree: {host:?}");
    }
}

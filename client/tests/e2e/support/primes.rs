//! Batches of the primes task at quorum 2 and the check that every unit got the right count.

use musketeer_protocol::{BatchId, Replication, SubmitBatchRequest, UnitState};

use super::{Http, primes_answer};

/// One primes unit per `(from, to)` range, each needing two agreeing hosts.
pub fn primes_quorum_batch(ranges: &[(u64, u64)], label: Option<&str>) -> SubmitBatchRequest {
    SubmitBatchRequest {
        app: "primes".into(),
        version: None,
        inputs: ranges
            .iter()
            .map(|(from, to)| serde_json::json!({"from": from, "to": to}))
            .collect(),
        replication: Replication {
            min_quorum: Some(2),
            ..Replication::default()
        },
        priority: 0,
        label: label.map(Into::into),
        ..SubmitBatchRequest::default()
    }
}

/// Asserts the batch holds one done unit per range, in order, each with the oracle's answer.
pub fn assert_primes_right(http: &Http, token: &str, batch: BatchId, ranges: &[(u64, u64)]) {
    let rows = http.results(token, batch);
    assert_eq!(rows.len(), ranges.len());
    for (row, (from, to)) in rows.iter().zip(ranges) {
        assert_eq!(row.state, UnitState::Done, "{row:?}");
        assert_eq!(
            row.output.as_ref(),
            Some(&primes_answer(*from, *to)),
            "{row:?}"
        );
    }
}

//! Examples of the status page's and failures view's bodies for the OpenAPI document, kept
//! apart from `schemas` so that each file stays short.

use musketeer_protocol::{
    AppStatus, BatchId, FailureList, FailureView, HostId, HostRate, ResultId, ServerStatus,
    StateSample, UnitId, UnitState,
};
use serde_json::Value;

use super::schemas::values;

/// Examples of the body type `name`, or None if it has none here.
pub fn examples(name: &str) -> Option<Vec<Value>> {
    Some(match name {
        "FailureList" => values(&[FailureList {
            failures: vec![FailureView {
                result_id: ResultId {
                    unit: UnitId(102),
                    replica: 0,
                },
                batch_id: BatchId(3),
                app: "stock-day".into(),
                host: Some(HostId(7)),
                unit_state: UnitState::Queued,
                retrying: true,
                sent_ms: 1_760_000_000_000,
                error: "task-error: TWSE: no data".into(),
            }],
            total: 12,
            next_after: Some(ResultId {
                unit: UnitId(102),
                replica: 0,
            }),
        }]),
        "ServerStatus" => values(&[ServerStatus {
            now_ms: 1_760_000_060_000,
            apps: vec![AppStatus {
                app: "stock-day".into(),
                unsent: 400,
                in_progress: 30,
                retrying: 2,
                done: 560,
                failed: 1,
                cancelled: 0,
            }],
            hosts: vec![HostRate {
                id: HostId(7),
                name: "athos".into(),
                online: true,
                results: 120,
                credit_fuel: 93_000_000_000,
                window_ms: 3_600_000,
            }],
            history: vec![
                StateSample {
                    at_ms: 1_760_000_000_000,
                    queued: 420,
                    running: 30,
                    retrying: 1,
                    done: 540,
                    failed: 1,
                },
                StateSample {
                    at_ms: 1_760_000_060_000,
                    queued: 400,
                    running: 30,
                    retrying: 2,
                    done: 560,
                    failed: 1,
                },
            ],
        }]),
        _ => return None,
    })
}

//! JSON Schemas of the API's bodies for the OpenAPI document, inferred from example values of
//! the real `musketeer_protocol` types. The examples are built with struct literals, so a field
//! added to or removed from a wire type breaks the build here until the document follows.

use musketeer_protocol::{
    AppList, AppVersionInfo, Assignment, Backend, BanRequest, Base64Bytes, BatchId, BatchList,
    BatchState, BatchStatus, CreateTokenRequest, CreateTokenResponse, DeleteBatchResponse,
    ErrorKind, FetchRequest, FetchResponse, HostDetail, HostId, HostList, HostPlatform,
    HostSummary, Limits, Outcome, ProjectInfo, PublishRequest, PublishResponse,
    RegisterHostRequest, RegisterHostResponse, RegistrationPolicy, ReplicaOutcome, ReplicaView,
    Replication, ReportAck, ReportRequest, ReportResponse, ReportStatus, ResultId, ResultReport,
    Role, Stats, SubmitBatchRequest, SubmitBatchResponse, TokenId, TrustedKey, UnitCounts,
    UnitDetail, UnitId, UnitList, UnitState, UnitSummary,
};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// The schema of the body type `name`, or None if it has no examples here.
pub fn schema(name: &str) -> Option<Value> {
    let values = examples(name)?;
    let mut schema = infer(&values);
    if let Some(object) = schema.as_object_mut() {
        object.insert(
            "description".into(),
            json!(format!(
                "`musketeer_protocol::{name}`; docs/protocol.md describes each field."
            )),
        );
        object.insert("examples".into(), Value::Array(values));
    }
    Some(schema)
}

/// A JSON Schema that every value in `values` satisfies: object keys present (and non-null) in
/// every example are required, `null` makes a type nullable, mixed types accept anything.
pub fn infer(values: &[Value]) -> Value {
    let nullable = values.iter().any(Value::is_null);
    let present: Vec<&Value> = values.iter().filter(|v| !v.is_null()).collect();
    let kinds: Vec<&str> = present.iter().map(|v| kind(v)).collect();
    let Some(first) = kinds.first() else {
        return json!({});
    };
    if kinds.iter().any(|k| k != first) {
        let numeric = kinds.iter().all(|k| *k == "integer" || *k == "number");
        if !numeric {
            return json!({});
        }
    }
    let ty = if kinds.contains(&"number") {
        "number"
    } else {
        first
    };
    let mut schema = Map::new();
    schema.insert(
        "type".into(),
        if nullable {
            json!([ty, "null"])
        } else {
            json!(ty)
        },
    );
    match ty {
        "object" => {
            let objects: Vec<&Map<String, Value>> =
                present.iter().filter_map(|v| v.as_object()).collect();
            let mut keys: Vec<&String> = objects.iter().flat_map(|o| o.keys()).collect();
            keys.dedup();
            let mut properties = Map::new();
            let mut required = Vec::new();
            for key in keys {
                if properties.contains_key(key) {
                    continue;
                }
                if objects
                    .iter()
                    .all(|o| o.get(key).is_some_and(|v| !v.is_null()))
                {
                    required.push(json!(key));
                }
                let values: Vec<Value> =
                    objects.iter().filter_map(|o| o.get(key).cloned()).collect();
                properties.insert(key.clone(), infer(&values));
            }
            schema.insert("properties".into(), Value::Object(properties));
            schema.insert("required".into(), Value::Array(required));
        }
        "array" => {
            let items: Vec<Value> = present
                .iter()
                .filter_map(|v| v.as_array())
                .flatten()
                .cloned()
                .collect();
            schema.insert("items".into(), infer(&items));
        }
        _ => {}
    }
    Value::Object(schema)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

pub(super) fn values<T: Serialize>(examples: &[T]) -> Vec<Value> {
    examples
        .iter()
        .filter_map(|e| serde_json::to_value(e).ok())
        .collect()
}

fn platform() -> HostPlatform {
    HostPlatform {
        arch: "x86_64".into(),
        os: "linux".into(),
        client_version: "0.1.0".into(),
        wasmtime_version: "48.0.8".into(),
        backend: Backend::Cranelift,
        slots: 4,
        max_task_memory: None,
    }
}

fn limits() -> Limits {
    Limits {
        fuel: 10_000_000_000,
        memory_bytes: 256 << 20,
        wall_time_ms: 60_000,
        output_bytes: 1 << 20,
    }
}

fn version() -> semver::Version {
    semver::Version::new(1, 2, 0)
}

const RESULT: ResultId = ResultId {
    unit: UnitId(12),
    replica: 0,
};

fn app_info() -> AppVersionInfo {
    AppVersionInfo {
        app: "stock-day".into(),
        version: version(),
        key_id: "ed25519:0123456789abcdef".into(),
        module_sha256: "ab".repeat(32),
        module_size: 123_456,
        http_allow: vec!["https://www.twse.com.tw/".into()],
        limits: limits(),
        published_ms: 1_760_000_000_000,
    }
}

fn counts() -> UnitCounts {
    UnitCounts {
        queued: 10,
        running: 4,
        done: 15,
        failed: 1,
        cancelled: 0,
    }
}

fn batch_status() -> BatchStatus {
    BatchStatus {
        id: BatchId(3),
        app: "stock-day".into(),
        version: version(),
        label: Some("May 2016".into()),
        state: BatchState::Running,
        created_ms: 1_760_000_000_000,
        first_unit: UnitId(101),
        counts: counts(),
        progress: 0.53,
        replication: replication(),
        priority: 0,
        hosts_able: Some(4),
        stalled: 0,
        stalled_reason: None,
    }
}

fn replication() -> Replication {
    Replication {
        min_quorum: Some(2),
        target_nresults: Some(2),
        max_error_results: Some(3),
        max_total_results: Some(7),
        delay_bound_ms: Some(3_600_000),
    }
}

fn host_summary() -> HostSummary {
    HostSummary {
        id: HostId(7),
        name: "alice-laptop".into(),
        platform: Some(platform()),
        registered_ms: 1_760_000_000_000,
        last_contact_ms: 1_760_000_060_000,
        online: true,
        running: 2,
        succeeded: 40,
        failed: 1,
        invalid: 0,
        credit: 3_249_360,
        trusted: true,
        quarantine: None,
        ban: None,
        daily_quota: 10_000,
    }
}

fn replica(outcome: ReplicaOutcome, error: Option<&str>) -> ReplicaView {
    ReplicaView {
        result_id: RESULT,
        batch_id: BatchId(3),
        host: Some(HostId(7)),
        outcome,
        sent_ms: 1_760_000_000_000,
        deadline_ms: 1_760_003_600_000,
        fuel: error.is_none().then_some(81_234),
        wall_ms: error.is_none().then_some(35),
        error: error.map(str::to_owned),
        stderr_tail: Some("fetched 1 day".into()),
    }
}

/// Example values of the body type `name`.
fn examples(name: &str) -> Option<Vec<Value>> {
    let manifest = serde_json::value::RawValue::from_string("{\"manifest\": {}}".into()).ok()?;
    Some(match name {
        "ProjectInfo" => values(&[ProjectInfo {
            name: "Musketeers".into(),
            trusted_keys: vec![TrustedKey {
                key_id: "ed25519:0123456789abcdef".into(),
                public_key: "musketeer-ed25519 …".into(),
                fingerprint: "SHA256:…".into(),
            }],
            rotations: vec![],
            min_client_version: semver::Version::new(0, 1, 0),
            server_version: env!("CARGO_PKG_VERSION").into(),
            registration: RegistrationPolicy {
                invite_required: false,
            },
        }]),
        "RegisterHostRequest" => values(&[
            RegisterHostRequest {
                name: Some("alice-laptop".into()),
                invite_code: Some("…".into()),
                platform: Some(platform()),
            },
            RegisterHostRequest {
                name: None,
                invite_code: None,
                platform: None,
            },
        ]),
        "RegisterHostResponse" => values(&[RegisterHostResponse {
            host_id: HostId(7),
            host_token: "mkh_…".into(),
        }]),
        "FetchRequest" => values(&[FetchRequest {
            free_slots: 4,
            platform: platform(),
            wait_ms: Some(30_000),
            in_flight: vec![RESULT],
            held: Some(vec![RESULT]),
        }]),
        "FetchResponse" => values(&[FetchResponse {
            assignments: vec![Assignment {
                result_id: RESULT,
                unit_id: RESULT.unit,
                app: "stock-day".into(),
                version: version(),
                module_sha256: "ab".repeat(32),
                module_size: 123_456,
                signed_manifest: manifest,
                input: json!({"stock": "2330"}),
                deadline_ms: 1_760_003_600_000,
                limits: limits(),
            }],
            cancelled: vec![ResultId {
                unit: UnitId(13),
                replica: 1,
            }],
            refusal: None,
        }]),
        "ReportRequest" => values(&[ReportRequest {
            results: vec![
                ResultReport {
                    result_id: RESULT,
                    outcome: Outcome::Success {
                        output: Base64Bytes(b"{\"close\":150.5}".to_vec()),
                        fuel_consumed: 81_234,
                        wall_ms: 35,
                        stderr_tail: String::new(),
                    },
                },
                ResultReport {
                    result_id: RESULT,
                    outcome: Outcome::Error {
                        kind: ErrorKind::FuelExhausted,
                        message: "all fuel consumed".into(),
                        fuel_consumed: 10_000_000_000,
                        wall_ms: 900,
                        stderr_tail: "…".into(),
                    },
                },
                ResultReport {
                    result_id: RESULT,
                    outcome: Outcome::Returned,
                },
            ],
            in_flight: vec![],
        }]),
        "ReportResponse" => values(&[ReportResponse {
            acks: vec![
                ReportAck {
                    result_id: RESULT,
                    status: ReportStatus::Accepted,
                    reason: None,
                },
                ReportAck {
                    result_id: RESULT,
                    status: ReportStatus::Refused,
                    reason: Some("result not assigned to this host".into()),
                },
            ],
            cancelled: vec![],
        }]),
        "AppList" => values(&[AppList {
            versions: vec![app_info()],
        }]),
        "PublishRequest" => values(&[PublishRequest {
            signed_manifest: json!({"manifest": {}, "signature": "…"}),
            module: Base64Bytes(b"\0asm".to_vec()),
        }]),
        "PublishResponse" => values(&[PublishResponse { app: app_info() }]),
        "BatchList" => values(&[BatchList {
            batches: vec![batch_status()],
        }]),
        // Running with units waiting, and finished (no `hosts_able`).
        "BatchStatus" => values(&[
            batch_status(),
            BatchStatus {
                state: BatchState::Finished,
                progress: 1.0,
                hosts_able: None,
                stalled: 0,
                stalled_reason: None,
                ..batch_status()
            },
        ]),
        "RotationStatement" => {
            // Fixed seeds: the document is the same on every request and every build.
            let old = musketeer_signing_keys::SecretKey::from_seed(&[1; 32]);
            let new = musketeer_signing_keys::SecretKey::from_seed(&[2; 32]);
            values(&[
                musketeer_signing_keys::RotationStatement::sign(&old, &new.public_key(), true),
                musketeer_signing_keys::RotationStatement::sign(&old, &new.public_key(), false),
            ])
        }
        "DeleteBatchResponse" => values(&[DeleteBatchResponse {
            batch_id: BatchId(3),
            deleted_units: 2,
        }]),
        "SubmitBatchRequest" => values(&[SubmitBatchRequest {
            app: "stock-day".into(),
            version: Some(version()),
            inputs: vec![json!({"stock": "2330"}), json!({"stock": "2317"})],
            replication: replication(),
            priority: 0,
            label: Some("May 2016".into()),
        }]),
        "SubmitBatchResponse" => values(&[SubmitBatchResponse {
            batch_id: BatchId(3),
            first_unit: UnitId(101),
            n_units: 2,
            version: version(),
            replication: replication(),
        }]),
        "UnitList" => values(&[UnitList {
            units: vec![
                UnitSummary {
                    id: UnitId(101),
                    state: UnitState::Done,
                    replicas: 2,
                    failed_replicas: 0,
                    retrying: false,
                    error: None,
                },
                UnitSummary {
                    id: UnitId(102),
                    state: UnitState::Failed,
                    replicas: 4,
                    failed_replicas: 4,
                    retrying: false,
                    error: Some("too many errors: 4 (at most 3 allowed); …".into()),
                },
            ],
            total: 2,
            next_after: Some(UnitId(102)),
        }]),
        "UnitDetail" => values(&[UnitDetail {
            id: UnitId(12),
            batch_id: BatchId(3),
            state: UnitState::Done,
            input: json!({"stock": "2330"}),
            error: None,
            stalled: None,
            replicas: vec![
                replica(ReplicaOutcome::Valid, None),
                replica(ReplicaOutcome::Error, Some("trap: unreachable executed")),
            ],
        }]),
        "HostList" => values(&[HostList {
            hosts: vec![host_summary()],
        }]),
        "HostSummary" => values(&[host_summary()]),
        "BanRequest" => values(&[BanRequest {
            reason: "returned forged results".into(),
        }]),
        "HostDetail" => values(&[HostDetail {
            host: host_summary(),
            recent: vec![replica(ReplicaOutcome::Valid, None)],
        }]),
        "Stats" => values(&[Stats {
            now_ms: 1_760_000_000_000,
            hosts_known: 12,
            hosts_online: 9,
            slots_total: 36,
            slots_busy: 30,
            queue_depth: 420,
            units: counts(),
            results: musketeer_protocol::ResultCounts {
                valid: 30,
                invalid: 1,
                errors: 2,
                timed_out: 0,
            },
            batches_active: 1,
            done_per_minute: vec![0, 3, 5],
        }]),
        "CreateTokenRequest" => values(&[CreateTokenRequest {
            role: Role::Researcher,
            apps: Some(vec!["stock-day".into()]),
            expires_ms: Some(1_770_000_000_000),
            label: Some("alice".into()),
        }]),
        "CreateTokenResponse" => values(&[CreateTokenResponse {
            id: TokenId(4),
            token: "mku_…".into(),
        }]),
        "TokenList" => values(&[musketeer_protocol::TokenList {
            tokens: vec![
                musketeer_protocol::TokenInfo {
                    id: TokenId(1),
                    role: Role::Admin,
                    apps: None,
                    expires_ms: None,
                    label: Some("init".into()),
                    created_ms: 1_760_000_000_000,
                    revoked: false,
                },
                musketeer_protocol::TokenInfo {
                    id: TokenId(4),
                    role: Role::Researcher,
                    apps: Some(vec!["stock-day".into()]),
                    expires_ms: Some(1_770_000_000_000),
                    label: Some("alice".into()),
                    created_ms: 1_760_000_100_000,
                    revoked: true,
                },
            ],
        }]),
        "HealthStatus" => values(&[musketeer_protocol::HealthStatus::ok()]),
        _ => return super::status_schemas::examples(name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inferred_schemas_require_what_every_example_has() {
        let schema = infer(&[
            json!({"a": 1, "b": "x", "c": [1.5], "d": null}),
            json!({"a": 2, "b": null, "c": [], "d": {"k": true}}),
        ]);
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["required"], json!(["a", "c"]));
        assert_eq!(schema["properties"]["a"]["type"], "integer");
        assert_eq!(schema["properties"]["b"]["type"], json!(["string", "null"]));
        assert_eq!(schema["properties"]["c"]["items"]["type"], "number");
        assert_eq!(schema["properties"]["d"]["type"], json!(["object", "null"]));
        assert_eq!(infer(&[json!(1), json!("x")]), json!({}), "mixed: anything");
    }

    #[test]
    fn every_example_deserializes_back_into_its_type() {
        fn check<T: serde::de::DeserializeOwned>(name: &str) {
            for value in examples(name).unwrap() {
                serde_json::from_value::<T>(value.clone())
                    .unwrap_or_else(|e| panic!("{name} example {value}: {e}"));
            }
        }
        check::<ProjectInfo>("ProjectInfo");
        check::<RegisterHostRequest>("RegisterHostRequest");
        check::<FetchResponse>("FetchResponse");
        check::<ReportRequest>("ReportRequest");
        check::<UnitDetail>("UnitDetail");
        check::<HostDetail>("HostDetail");
        check::<Stats>("Stats");
        check::<musketeer_protocol::TokenList>("TokenList");
        check::<SubmitBatchRequest>("SubmitBatchRequest");
        check::<DeleteBatchResponse>("DeleteBatchResponse");
        check::<musketeer_signing_keys::RotationStatement>("RotationStatement");
    }
}

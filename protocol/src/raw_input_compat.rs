//! Wire compatibility of raw inputs (`submit --lines`) with servers and clients that predate
//! them: each side of an old/new pair either understands the other or refuses it loudly.

use serde::Deserialize;
use serde_json::json;

use crate::{
    Assignment, Base64Bytes, ClientCapability, FetchRequest, ResultRow, SubmitBatchRequest,
};

/// The submit body as servers before raw inputs read it (`inputs` required, unknown keys
/// ignored).
#[derive(Debug, Deserialize)]
#[allow(dead_code)] // Only whether it decodes matters.
struct OldServerSubmit {
    app: String,
    inputs: Vec<serde_json::Value>,
}

/// An assignment as clients before raw inputs read it (`input` required).
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct OldClientAssignment {
    result_id: crate::ResultId,
    input: serde_json::Value,
}

fn raw_submit() -> SubmitBatchRequest {
    SubmitBatchRequest {
        app: "word-count".into(),
        raw_inputs: vec![Base64Bytes(b"a \"b\"".to_vec()), Base64Bytes(vec![0xff])],
        ..SubmitBatchRequest::default()
    }
}

#[test]
fn an_old_server_refuses_raw_inputs_for_the_missing_inputs_field() {
    let body = serde_json::to_string(&raw_submit()).unwrap();
    assert!(!body.contains("\"inputs\""), "{body}");
    let error = serde_json::from_str::<OldServerSubmit>(&body).unwrap_err();
    assert!(
        error.to_string().contains("missing field `inputs`"),
        "{error}"
    );
    let back: SubmitBatchRequest = serde_json::from_str(&body).unwrap();
    assert_eq!(back, raw_submit());
}

#[test]
fn a_json_submit_is_the_body_old_servers_read() {
    let request = SubmitBatchRequest {
        app: "primes".into(),
        inputs: vec![json!({"from": 1})],
        ..SubmitBatchRequest::default()
    };
    let body = serde_json::to_value(&request).unwrap();
    assert!(body.get("raw_inputs").is_none());
    let old: OldServerSubmit = serde_json::from_value(body).unwrap();
    assert_eq!(old.inputs, vec![json!({"from": 1})]);
}

fn raw_assignment() -> serde_json::Value {
    json!({
        "result_id": "7.0", "unit_id": 7, "app": "word-count", "version": "1.0.0",
        "module_sha256": "ab", "module_size": 3, "signed_manifest": {},
        "input_base64": "YSAiYiI=", "deadline_ms": 1,
        "limits": {"fuel": 1, "memory_bytes": 1, "wall_time_ms": 1, "output_bytes": 1}
    })
}

#[test]
fn an_old_client_cannot_decode_a_raw_assignment_so_never_runs_it_as_json() {
    let error = serde_json::from_value::<OldClientAssignment>(raw_assignment()).unwrap_err();
    assert!(
        error.to_string().contains("missing field `input`"),
        "{error}"
    );
    let new: Assignment = serde_json::from_value(raw_assignment()).unwrap();
    assert_eq!(
        new.unit_input(),
        Ok(crate::UnitInput::Raw(b"a \"b\"".to_vec()))
    );
    let mut both = raw_assignment();
    both["input"] = json!("a");
    let both: Assignment = serde_json::from_value(both).unwrap();
    assert!(both.unit_input().is_err());
}

#[test]
fn capabilities_are_absent_for_old_clients_and_unknown_ones_are_kept_apart() {
    let platform = json!({
        "os": "linux", "arch": "x86_64", "backend": "cranelift", "slots": 1,
        "client_version": "0.1.0", "wasmtime_version": "48.0.8"
    });
    let old: FetchRequest =
        serde_json::from_value(json!({"free_slots": 1, "platform": platform})).unwrap();
    assert!(!old.declares(ClientCapability::RawInput));
    assert!(
        serde_json::to_value(&old)
            .unwrap()
            .get("capabilities")
            .is_none()
    );
    let newer: FetchRequest = serde_json::from_value(json!({
        "free_slots": 1, "platform": platform, "capabilities": ["raw-input", "teleport"]
    }))
    .unwrap();
    assert!(newer.declares(ClientCapability::RawInput));
    assert_eq!(newer.capabilities[1], ClientCapability::Other);
}

#[test]
fn result_rows_of_old_servers_read_and_non_utf8_inputs_carry_base64() {
    let old: ResultRow =
        serde_json::from_str(r#"{"unit_id":1,"input":{"a":1},"state":"queued"}"#).unwrap();
    assert_eq!(old.input_base64, None);
    let raw: ResultRow =
        serde_json::from_str(r#"{"unit_id":2,"input":null,"input_base64":"/w==","state":"done"}"#)
            .unwrap();
    assert_eq!(raw.input_base64, Some(Base64Bytes(vec![0xff])));
}

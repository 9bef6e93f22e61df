use serde::{Deserialize, Serialize};

use crate::{Base64Bytes, HostPlatform, ResultId, UnitId};

/// Resource limits a task runs under (from its signed manifest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Limits {
    /// Wasm fuel units.
    pub fuel: u64,
    /// Linear memory, bytes.
    pub memory_bytes: u64,
    /// Wall-clock time, milliseconds.
    pub wall_time_ms: u64,
    /// Output size, bytes.
    pub output_bytes: u64,
}

/// Most results one report or fetch request may carry.
pub const MAX_RESULTS_PER_REQUEST: usize = 256;

/// `POST /api/v1/work/fetch` body (host token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FetchRequest {
    /// How many assignments the host wants: its free slots plus room in its work buffer (at
    /// most 64 are sent per request). The wire name predates the buffer.
    pub free_slots: u32,
    /// The host's platform, recorded for the dashboard.
    pub platform: HostPlatform,
    /// Wait up to this long (capped at 30 s) for work when there is none. None or 0: answer now.
    #[serde(default)]
    pub wait_ms: Option<u64>,
    /// Results the host is still running; the answer says which of them to abort.
    #[serde(default)]
    pub in_flight: Vec<ResultId>,
    /// Every result the host holds: running, and finished but not yet acknowledged. When
    /// present, replicas leased to this host before this request that it does not list (lost in
    /// a crash or in an unanswered fetch) are replaced at once instead of at their deadline.
    /// Absent (older clients, or more than 1024 held): nothing is reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Vec<ResultId>>,
    /// Finished results riding on this fetch, recorded exactly as `POST /work/report` records
    /// them and in the same commit as this fetch's leases; at most 256. A fetch that carries
    /// results is answered at once (it does not long-poll), with one ack per result.
    /// Empty for older clients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<ResultReport>,
    /// What this client can run beyond the base protocol. The server hands a unit that needs
    /// a capability only to clients that declare it, so an older client never runs (and never
    /// votes on) work it would read differently. Empty for older clients; at most
    /// [`FetchRequest::MAX_CAPABILITIES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<ClientCapability>,
}

impl FetchRequest {
    /// Most capabilities one fetch may declare.
    pub const MAX_CAPABILITIES: usize = 32;

    /// Whether the client declared `capability`.
    pub fn declares(&self, capability: ClientCapability) -> bool {
        self.capabilities.contains(&capability)
    }
}

/// A capability a client declares on each fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ClientCapability {
    /// Runs units of raw input: [`Assignment::input_base64`] handed to the task unchanged.
    RawInput,
    /// A capability this protocol version does not know (a newer client's).
    #[serde(other)]
    Other,
}

/// `POST /api/v1/work/fetch` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FetchResponse {
    /// New work, at most `free_slots` items; empty when the wait ended without work.
    pub assignments: Vec<Assignment>,
    /// Results from `in_flight` that are no longer needed: abort them and do not report them.
    pub cancelled: Vec<ResultId>,
    /// Why the host gets no work at all now (banned, quarantined, daily quota used), if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// One entry per result of the request's `results`, in order, durable when this arrives.
    /// Absent from older servers' answers: a client that sent results and reads no acks keeps
    /// them and reports them with `POST /work/report`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acks: Vec<ReportAck>,
}

/// One replica of a work unit leased to the host.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Assignment {
    /// The replica's id, quoted in the report.
    pub result_id: ResultId,
    /// The work unit it computes.
    pub unit_id: UnitId,
    /// The app to run.
    pub app: String,
    /// The app version to run.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub version: semver::Version,
    /// The module's sha256 (download it from `paths::module`).
    pub module_sha256: String,
    /// The module's size in bytes.
    pub module_size: u64,
    /// The signed manifest to verify against the pinned keys before running, exactly as
    /// published (parse it with `SignedManifest::from_json(signed_manifest.get())`).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub signed_manifest: Box<serde_json::value::RawValue>,
    /// The input of a JSON unit. The task receives it as compact JSON with object keys in byte
    /// order ([`task_input_bytes`](crate::task_input_bytes)), the same bytes on every client.
    /// Absent (read as `null`) when `input_base64` is given: a client that predates raw inputs
    /// then fails to decode the assignment instead of running the task on other bytes.
    #[serde(default)]
    pub input: serde_json::Value,
    /// The input of a raw unit (`submit --lines`): the task receives exactly these bytes. Sent
    /// only to clients that declare [`ClientCapability::RawInput`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_base64: Option<Base64Bytes>,
    /// Report before this time, or the replica is given to another host.
    pub deadline_ms: u64,
    /// Limits to run under (the same as the manifest's).
    pub limits: Limits,
}

impl Assignment {
    /// The unit's input: the raw bytes when `input_base64` is given, else the JSON value.
    /// `Err` when both are (no server sends that), with why.
    pub fn unit_input(&self) -> Result<crate::UnitInput, &'static str> {
        match &self.input_base64 {
            Some(_) if !self.input.is_null() => {
                Err("the assignment has both `input` and `input_base64`")
            }
            Some(bytes) => Ok(crate::UnitInput::Raw(bytes.0.clone())),
            None => Ok(crate::UnitInput::Json(self.input.clone())),
        }
    }
}

/// `POST /api/v1/work/report` body (host token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportRequest {
    /// Finished (or returned) replicas; at most [`MAX_RESULTS_PER_REQUEST`] per request.
    pub results: Vec<ResultReport>,
    /// Results the host is still running; the answer says which of them to abort.
    #[serde(default)]
    pub in_flight: Vec<ResultId>,
}

/// The outcome of one replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResultReport {
    /// Which replica.
    pub result_id: ResultId,
    /// What happened.
    pub outcome: Outcome,
}

/// What happened to a replica on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Outcome {
    /// The task returned output.
    Success {
        /// The output bytes, compared byte for byte between replicas.
        output: Base64Bytes,
        /// Fuel consumed (the host's credit if the result is validated).
        fuel_consumed: u64,
        /// Wall-clock milliseconds.
        wall_ms: u64,
        /// The last lines the task logged.
        #[serde(default)]
        stderr_tail: String,
    },
    /// The task or the sandbox failed.
    Error {
        /// Why.
        kind: ErrorKind,
        /// Details, e.g. the trap message or the task's error string.
        message: String,
        /// Fuel consumed before the failure.
        #[serde(default)]
        fuel_consumed: u64,
        /// Wall-clock milliseconds before the failure.
        #[serde(default)]
        wall_ms: u64,
        /// The last lines the task logged.
        #[serde(default)]
        stderr_tail: String,
    },
    /// The host gives the replica back without running it (e.g. it is shutting down); the
    /// replica goes back to the queue and does not count as an error.
    Returned,
}

/// Why a replica failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The task ran out of fuel.
    FuelExhausted,
    /// The task exceeded its wall-clock limit.
    WallTimeout,
    /// The task exceeded its memory limit.
    MemoryLimit,
    /// The task overflowed its stack.
    StackOverflow,
    /// The task's output exceeded its output limit.
    OutputTooLarge,
    /// The host refused the module (bad signature, hash mismatch, version rollback, ...).
    RefusedModule,
    /// Any other trap.
    Trap,
    /// The task returned an error value.
    TaskError,
    /// The client failed for another reason (download, compile, disk).
    ClientError,
    /// The module's start-up code (instantiation, before `run`) ran out of the sandbox's fixed
    /// instantiation fuel.
    InstantiationFuelExhausted,
    /// The task accessed memory outside its linear memory (for a Rust task, typically its own
    /// stack in linear memory overflowing through large local variables).
    MemoryFault,
    /// The task panicked (aborted); the message says where and why, as the task printed it.
    Panic,
    /// The task called `exit` instead of returning a result.
    Exit,
    /// The client could not decode the assignment, or its input broke the protocol's input
    /// limits (`limits::check_input`); it was not run.
    BadAssignment,
    /// A kind this protocol version does not know.
    #[serde(other)]
    Other,
}

/// `POST /api/v1/work/report` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportResponse {
    /// One entry per reported result, in request order. Every entry is durable when this arrives.
    pub acks: Vec<ReportAck>,
    /// Results from `in_flight` that are no longer needed: abort them and do not report them.
    pub cancelled: Vec<ResultId>,
}

/// What the server did with one reported result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportAck {
    /// Which replica.
    pub result_id: ResultId,
    /// Accepted, duplicate or refused.
    pub status: ReportStatus,
    /// Why it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What the server did with one reported result. In every case the client may forget it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ReportStatus {
    /// Recorded.
    Accepted,
    /// Already recorded by an earlier report; nothing changed.
    Duplicate,
    /// Not recorded: unknown replica, or not assigned to this host.
    Refused,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_wire_shape() {
        let success = Outcome::Success {
            output: Base64Bytes(b"hi".to_vec()),
            fuel_consumed: 5,
            wall_ms: 1,
            stderr_tail: String::new(),
        };
        assert_eq!(
            serde_json::to_value(&success).unwrap(),
            serde_json::json!({"status":"success","output":"aGk=","fuel_consumed":5,"wall_ms":1,"stderr_tail":""})
        );
        let error: Outcome = serde_json::from_value(
            serde_json::json!({"status":"error","kind":"fuel-exhausted","message":"out of fuel"}),
        )
        .unwrap();
        assert!(matches!(
            error,
            Outcome::Error {
                kind: ErrorKind::FuelExhausted,
                ..
            }
        ));
        let returned: Outcome = serde_json::from_str(r#"{"status":"returned"}"#).unwrap();
        assert_eq!(returned, Outcome::Returned);
    }

    fn platform() -> HostPlatform {
        serde_json::from_value(serde_json::json!({
            "os": "linux", "arch": "x86_64", "backend": "cranelift", "slots": 4,
            "client_version": "0.1.0", "wasmtime_version": "48.0.8"
        }))
        .unwrap()
    }

    #[test]
    fn a_fetch_without_results_reads_as_before_both_ways() {
        let old_client = serde_json::json!({"free_slots": 2, "platform": platform()});
        let request: FetchRequest = serde_json::from_value(old_client).unwrap();
        assert!(request.results.is_empty());
        // An empty list is not sent, so an older server sees exactly the old body.
        let sent = serde_json::to_value(&request).unwrap();
        assert!(sent.get("results").is_none());
    }

    #[test]
    fn results_ride_on_a_fetch_and_acks_come_back() {
        let id = ResultId {
            unit: UnitId(3),
            replica: 1,
        };
        let request = FetchRequest {
            free_slots: 4,
            platform: platform(),
            wait_ms: None,
            in_flight: Vec::new(),
            held: None,
            results: vec![ResultReport {
                result_id: id,
                outcome: Outcome::Returned,
            }],
            capabilities: vec![ClientCapability::RawInput],
        };
        let text = serde_json::to_string(&request).unwrap();
        assert_eq!(
            serde_json::from_str::<FetchRequest>(&text).unwrap(),
            request
        );

        // An older server's answer has no acks: the client reads none (and reports the old way).
        let old_server: FetchResponse =
            serde_json::from_str(r#"{"assignments":[],"cancelled":[]}"#).unwrap();
        assert!(old_server.acks.is_empty());
        let new_server: FetchResponse = serde_json::from_str(
            r#"{"assignments":[],"cancelled":[],"acks":[{"result_id":"3.1","status":"accepted"}]}"#,
        )
        .unwrap();
        assert_eq!(
            new_server.acks,
            vec![ReportAck {
                result_id: id,
                status: ReportStatus::Accepted,
                reason: None
            }]
        );
    }
}

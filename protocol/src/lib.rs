//! Wire types shared by the musketeer server and client.
//!
//! Every request and response body of the HTTP API under [`paths::API_PREFIX`] is a type here,
//! serialised as JSON with serde. Times are Unix milliseconds (`*_ms`), byte strings travel as
//! standard base64 ([`Base64Bytes`]), and every error answer has the body [`ApiErrorBody`].
//! `docs/protocol.md` describes each endpoint.
//!
//! ```
//! use musketeer_protocol::{Backend, ClientCapability, FetchRequest, HostPlatform, paths};
//!
//! let request = FetchRequest {
//!     free_slots: 2,
//!     platform: HostPlatform {
//!         arch: "x86_64".into(),
//!         os: "linux".into(),
//!         client_version: "0.1.0".into(),
//!         wasmtime_version: "48.0.8".into(),
//!         backend: Backend::Cranelift,
//!         slots: 2,
//!         max_task_memory: None,
//!     },
//!     wait_ms: Some(30_000),
//!     in_flight: Vec::new(),
//!     held: Some(Vec::new()),
//!     results: Vec::new(),
//!     capabilities: vec![ClientCapability::RawInput],
//! };
//! let body = serde_json::to_string(&request).unwrap();
//! assert!(body.contains("\"free_slots\":2"));
//! assert_eq!(paths::WORK_FETCH, "/api/v1/work/fetch");
//! ```
#![deny(missing_docs)]

mod apps;
mod batch;
mod bytes;
mod dashboard;
mod error;
pub mod guest_text;
mod host;
mod ids;
mod input;
pub mod limits;
#[cfg(feature = "openapi")]
mod openapi;
mod ops;
pub mod paths;
mod project;
pub mod quantity;
#[cfg(test)]
mod raw_input_compat;
mod stats;
mod status;
mod tokens;
mod work;

pub use apps::{AppInput, AppList, AppVersionInfo, PublishRequest, PublishResponse};
pub use batch::{
    BatchList, BatchState, BatchStatus, BatchStatusQuery, DeleteBatchResponse, Replication,
    ResultRow, ResultsFormat, ResultsPage, ResultsPageQuery, SubmitBatchRequest,
    SubmitBatchResponse, UnitCounts, UnitState,
};
pub use bytes::{Base64Bytes, Base64Ref};
pub use dashboard::{HostDetail, ReplicaOutcome, ReplicaView, UnitDetail, UnitList, UnitSummary};
pub use error::{ApiErrorBody, ErrorCode};
pub use host::{
    Backend, BanRequest, HostList, HostPlatform, HostSummary, RegisterHostRequest,
    RegisterHostResponse,
};
pub use ids::{BatchId, HostId, ParseIdError, ResultId, TokenId, UnitId};
pub use input::{UnitInput, task_input_bytes};
pub use limits::{InputLimitError, check_input};
pub use ops::HealthStatus;
pub use project::{ProjectInfo, RegistrationPolicy, TrustedKey};
pub use stats::{ResultCounts, Stats};
pub use status::{
    AppStatus, FUEL_PER_CREDIT, FailureList, FailureView, HostRate, ServerStatus, StateSample,
    UnitFilter, credits_text,
};
pub use tokens::{CreateTokenRequest, CreateTokenResponse, Role, TokenInfo, TokenList};
pub use work::{
    Assignment, ClientCapability, ErrorKind, FetchRequest, FetchResponse, Limits,
    MAX_RESULTS_PER_REQUEST, Outcome, ReportAck, ReportRequest, ReportResponse, ReportStatus,
    ResultReport,
};

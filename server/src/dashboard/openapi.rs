//! The OpenAPI 3.1 document of the HTTP API, generated from [`ROUTES`]. The route table is the
//! single list of endpoints with their auth rule and body types; a test asserts that the router
//! serves exactly these method and path pairs, so the document cannot drift from the code.

use axum::Json;
use musketeer_protocol::paths;
use serde_json::{Map, Value, json};

use self::Access::{Host, HostOrViewer, Public, Roles, Viewer};
use crate::dashboard::{ASSET, INDEX};

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, no token.
    Public,
    /// A host token.
    Host,
    /// Any user token, or anyone when the server runs with `--public-dashboard`.
    Viewer,
    /// A host token, or whoever [`Access::Viewer`] admits.
    HostOrViewer,
    /// A user token with one of the named roles (batch owners, or admin, for batches).
    Roles(&'static str),
}

/// One endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// Axum path pattern (`{name}` segments).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// One line about it.
    pub summary: &'static str,
    /// Request body type (`musketeer_protocol` name), if any.
    pub request: Option<&'static str>,
    /// Success status.
    pub status: u16,
    /// Success body: a `musketeer_protocol` type name, or a media type containing `/`.
    pub response: &'static str,
}

const fn route(
    method: &'static str,
    path: &'static str,
    access: Access,
    summary: &'static str,
    request: Option<&'static str>,
    status: u16,
    response: &'static str,
) -> Route {
    Route {
        method,
        path,
        access,
        summary,
        request,
        status,
        response,
    }
}

/// Every endpoint the server answers, in the order of docs/protocol.md.
pub const ROUTES: &[Route] = &[
    route(
        "GET",
        paths::PROJECT,
        Public,
        "Project name, trusted keys, rotations, minimum client version",
        None,
        200,
        "ProjectInfo",
    ),
    route(
        "POST",
        paths::HOSTS_REGISTER,
        Public,
        "Register a volunteer host (rate-limited; invite code if required)",
        Some("RegisterHostRequest"),
        201,
        "RegisterHostResponse",
    ),
    route(
        "POST",
        paths::WORK_FETCH,
        Host,
        "Long-poll for assignments",
        Some("FetchRequest"),
        200,
        "FetchResponse",
    ),
    route(
        "POST",
        paths::WORK_REPORT,
        Host,
        "Report results (idempotent)",
        Some("ReportRequest"),
        200,
        "ReportResponse",
    ),
    route(
        "GET",
        paths::MODULE,
        Public,
        "A module's bytes by sha256",
        None,
        200,
        "application/wasm",
    ),
    route(
        "GET",
        paths::APPS,
        HostOrViewer,
        "Published app versions",
        None,
        200,
        "AppList",
    ),
    route(
        "POST",
        paths::APPS,
        Roles("publisher, admin"),
        "Publish a signed app version",
        Some("PublishRequest"),
        201,
        "PublishResponse",
    ),
    route(
        "GET",
        paths::BATCHES,
        Roles("researcher, admin"),
        "The caller's batches (admin: all)",
        None,
        200,
        "BatchList",
    ),
    route(
        "POST",
        paths::BATCHES,
        Roles("researcher, admin"),
        "Submit a batch",
        Some("SubmitBatchRequest"),
        201,
        "SubmitBatchResponse",
    ),
    route(
        "GET",
        paths::BATCH,
        Roles("researcher, admin"),
        "One batch's status (owner or admin); ?wait_ms=N[&after=TAG] long-polls until it ends, its progress tag differs from TAG, or N ms pass",
        None,
        200,
        "BatchStatus",
    ),
    route(
        "DELETE",
        paths::BATCH,
        Roles("researcher, admin"),
        "Delete a finished or cancelled batch and its units (owner or admin)",
        None,
        200,
        "DeleteBatchResponse",
    ),
    route(
        "GET",
        paths::BATCH_RESULTS,
        Roles("researcher, admin"),
        "One batch's results, ?format=jsonl|csv, streamed",
        None,
        200,
        "application/x-ndjson",
    ),
    route(
        "POST",
        paths::BATCH_CANCEL,
        Roles("researcher, admin"),
        "Cancel a batch",
        None,
        200,
        "BatchStatus",
    ),
    route(
        "GET",
        paths::BATCH_UNITS,
        Roles("researcher, admin"),
        "A batch's units, ?state=retrying&after=UNIT&limit=100 (owner or admin)",
        None,
        200,
        "UnitList",
    ),
    route(
        "GET",
        paths::FAILURES,
        Roles("researcher, admin"),
        "Failed replicas of the caller's batches, ?batch=&state=&after=UNIT.N&limit=",
        None,
        200,
        "FailureList",
    ),
    route(
        "GET",
        paths::UNIT,
        Roles("researcher, admin"),
        "One unit with its replicas (owner or admin)",
        None,
        200,
        "UnitDetail",
    ),
    route(
        "POST",
        paths::PROJECT_ROTATIONS,
        Roles("admin"),
        "Trust a new signing key through a rotation statement signed by a trusted key",
        Some("RotationStatement"),
        200,
        "ProjectInfo",
    ),
    route(
        "GET",
        paths::HOSTS,
        Viewer,
        "Every host with platform and counters",
        None,
        200,
        "HostList",
    ),
    route(
        "GET",
        paths::HOST,
        Viewer,
        "One host with its recent replicas",
        None,
        200,
        "HostDetail",
    ),
    route(
        "POST",
        paths::HOST_BAN,
        Roles("admin"),
        "Ban a host: no more work, its results re-verified",
        Some("BanRequest"),
        200,
        "HostSummary",
    ),
    route(
        "POST",
        paths::HOST_UNBAN,
        Roles("admin"),
        "Lift a host's ban or quarantine",
        None,
        200,
        "HostSummary",
    ),
    route(
        "GET",
        paths::STATS,
        Viewer,
        "Server-wide counters",
        None,
        200,
        "Stats",
    ),
    route(
        "GET",
        paths::SERVER_STATUS,
        Viewer,
        "Units by app and state, hosts' rates, unit states over the last hour",
        None,
        200,
        "ServerStatus",
    ),
    route(
        "GET",
        paths::TOKENS,
        Roles("admin"),
        "Every user token (id, role, apps, expiry, label, created, revoked; never the secret)",
        None,
        200,
        "TokenList",
    ),
    route(
        "POST",
        paths::TOKENS,
        Roles("admin"),
        "Create a user token",
        Some("CreateTokenRequest"),
        201,
        "CreateTokenResponse",
    ),
    route(
        "DELETE",
        paths::TOKEN,
        Roles("admin"),
        "Revoke a user token",
        None,
        204,
        "",
    ),
    route(
        "GET",
        paths::OPENAPI,
        Public,
        "This document",
        None,
        200,
        "application/json",
    ),
    route(
        "GET",
        paths::METRICS,
        Viewer,
        "Prometheus metrics",
        None,
        200,
        "text/plain",
    ),
    route(
        "GET",
        paths::ADMIN_BACKUP,
        Roles("admin"),
        "A consistent copy of the store taken while serving (a redb file; restore by serving it)",
        None,
        200,
        "application/octet-stream",
    ),
    route(
        "GET",
        paths::HEALTHZ,
        Public,
        "Liveness probe: the process answers",
        None,
        200,
        "HealthStatus",
    ),
    route(
        "GET",
        paths::READYZ,
        Public,
        "Readiness probe: the store accepts writes; 503 with the reason otherwise",
        None,
        200,
        "HealthStatus",
    ),
    route(
        "GET",
        INDEX,
        Public,
        "The dashboard page",
        None,
        200,
        "text/html",
    ),
    route(
        "GET",
        ASSET,
        Public,
        "The dashboard's embedded scripts, styles and icon",
        None,
        200,
        "application/octet-stream",
    ),
];

/// `GET /api/v1/openapi.json`.
pub async fn serve() -> Json<Value> {
    Json(document())
}

/// The OpenAPI document.
pub fn document() -> Value {
    let mut paths_obj = Map::new();
    let mut schemas = Map::new();
    schemas.insert(
        "ApiErrorBody".into(),
        json!({
            "type": "object",
            "required": ["error", "message"],
            "properties": {
                "error": {"type": "string", "description": "machine-readable code, e.g. `not_found`"},
                "message": {"type": "string", "description": "for humans"}
            }
        }),
    );
    for r in ROUTES {
        let mut operation = Map::new();
        operation.insert("summary".into(), json!(r.summary));
        operation.insert(
            "operationId".into(),
            json!(format!("{} {}", r.method, r.path)),
        );
        operation.insert("description".into(), json!(access_text(r.access)));
        if let Some(security) = security(r.access) {
            operation.insert("security".into(), security);
        }
        let parameters: Vec<Value> = path_params(r.path)
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !parameters.is_empty() {
            operation.insert("parameters".into(), Value::Array(parameters));
        }
        if let Some(request) = r.request {
            schemas.insert(request.into(), body_schema(request));
            operation.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": schema_ref(request)}}}),
            );
        }
        let success = if r.response.is_empty() {
            json!({"description": "done"})
        } else if r.response.contains('/') {
            json!({"description": "ok", "content": {r.response: {}}})
        } else {
            schemas.insert(r.response.into(), body_schema(r.response));
            json!({"description": "ok", "content": {"application/json": {"schema": schema_ref(r.response)}}})
        };
        let error = json!({"description": "error; see docs/protocol.md for codes",
            "content": {"application/json": {"schema": schema_ref("ApiErrorBody")}}});
        operation.insert(
            "responses".into(),
            json!({r.status.to_string(): success, "default": error}),
        );
        paths_obj
            .entry(r.path)
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .map(|item| item.insert(r.method.to_lowercase(), Value::Object(operation)));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "musketeer",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Volunteer computing with sandboxed WebAssembly tasks. Bodies are the \
                types of the musketeer-protocol crate; docs/protocol.md has every field."
        },
        "paths": paths_obj,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        }
    })
}

fn access_text(access: Access) -> String {
    match access {
        Access::Public => "Public.".into(),
        Access::Host => "Host token.".into(),
        Access::Viewer => {
            "Any user token; public when the server runs with --public-dashboard.".into()
        }
        Access::HostOrViewer => "A host token or any user token; public when the server runs \
                                 with --public-dashboard."
            .into(),
        Access::Roles(roles) => format!("User token with role: {roles}."),
    }
}

fn security(access: Access) -> Option<Value> {
    match access {
        Access::Public => None,
        Access::Viewer | Access::HostOrViewer => Some(json!([{"bearer": []}, {}])),
        Access::Host | Access::Roles(_) => Some(json!([{"bearer": []}])),
    }
}

/// The `{name}` segments of a path pattern.
pub fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn body_schema(name: &str) -> Value {
    super::schemas::schema(name).unwrap_or_else(
        || json!({"description": format!("`musketeer_protocol::{name}`; see docs/protocol.md.")}),
    )
}

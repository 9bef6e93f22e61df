//! The OpenAPI 3.1 document of the HTTP API. [`ROUTES`] lists every endpoint with its auth rule
//! and body types; a test asserts that the router serves exactly these method and path pairs.
//! The bodies' schemas are derived from the `musketeer_protocol` types themselves (utoipa's
//! `ToSchema`), so neither the endpoints nor the bodies can drift from the code.

use axum::Json;
use musketeer_protocol::{
    ApiErrorBody, AppList, BanRequest, BatchList, BatchStatus, BatchStatusQuery,
    CreateTokenRequest, CreateTokenResponse, DeleteBatchResponse, FailureList, FetchRequest,
    FetchResponse, HealthStatus, HostDetail, HostList, HostSummary, ProjectInfo, PublishRequest,
    PublishResponse, RegisterHostRequest, RegisterHostResponse, ReportRequest, ReportResponse,
    ResultsPage, ServerStatus, Stats, SubmitBatchRequest, SubmitBatchResponse, TokenList,
    UnitDetail, UnitList, paths,
};
use musketeer_signing_keys::RotationStatement;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, Parameter, ParameterBuilder, ParameterIn, PathsBuilder,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ComponentsBuilder, ObjectBuilder, Ref, Schema, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, RefOr, Required};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use self::Access::{Host, HostOrViewer, Public, Roles, Viewer};
use self::Success::{Body, Empty, Media, MediaOrBody};
use crate::api::batches::ResultsQuery;
use crate::api::views::{FailuresQuery, UnitsQuery};
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

/// Schemas the document's components collect, by name.
pub type Schemas = Vec<(String, RefOr<Schema>)>;

/// A JSON body type: adds its schema and the schemas it refers to, answers a reference to it.
pub type BodySchema = fn(&mut Schemas) -> RefOr<Schema>;

/// The body of a successful answer.
#[derive(Debug, Clone, Copy)]
pub enum Success {
    /// JSON of a `musketeer_protocol` type.
    Body(BodySchema),
    /// Bytes of this media type (a page, a module, a download).
    Media(&'static str),
    /// Bytes of one of these media types, or JSON of a `musketeer_protocol` type, as the query
    /// asks (the results: a streamed download, or a JSON page with `?after=`).
    MediaOrBody(&'static [&'static str], BodySchema),
    /// No body.
    Empty,
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
    /// Request body type, if any.
    pub request: Option<BodySchema>,
    /// Success status.
    pub status: u16,
    /// Success body.
    pub response: Success,
}

const fn route(
    method: &'static str,
    path: &'static str,
    access: Access,
    summary: &'static str,
    request: Option<BodySchema>,
    status: u16,
    response: Success,
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

/// A query type's parameters.
pub type QueryParams = fn() -> Vec<Parameter>;

fn query<T: IntoParams>() -> Vec<Parameter> {
    T::into_params(|| Some(ParameterIn::Query))
}

/// The schema of `T` (derived from the type) and of every type it refers to, as a reference.
fn json<T: ToSchema>(schemas: &mut Schemas) -> RefOr<Schema> {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
    RefOr::Ref(Ref::from_schema_name(T::name()))
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
        Body(json::<ProjectInfo>),
    ),
    route(
        "POST",
        paths::HOSTS_REGISTER,
        Public,
        "Register a volunteer host (rate-limited; invite code if required)",
        Some(json::<RegisterHostRequest>),
        201,
        Body(json::<RegisterHostResponse>),
    ),
    route(
        "POST",
        paths::WORK_FETCH,
        Host,
        "Long-poll for assignments",
        Some(json::<FetchRequest>),
        200,
        Body(json::<FetchResponse>),
    ),
    route(
        "POST",
        paths::WORK_REPORT,
        Host,
        "Report results (idempotent)",
        Some(json::<ReportRequest>),
        200,
        Body(json::<ReportResponse>),
    ),
    route(
        "GET",
        paths::MODULE,
        Public,
        "A module's bytes by sha256",
        None,
        200,
        Media("application/wasm"),
    ),
    route(
        "GET",
        paths::APPS,
        HostOrViewer,
        "Published app versions",
        None,
        200,
        Body(json::<AppList>),
    ),
    route(
        "POST",
        paths::APPS,
        Roles("publisher, admin"),
        "Publish a signed app version",
        Some(json::<PublishRequest>),
        201,
        Body(json::<PublishResponse>),
    ),
    route(
        "GET",
        paths::BATCHES,
        Roles("researcher, admin"),
        "The caller's batches (admin: all)",
        None,
        200,
        Body(json::<BatchList>),
    ),
    route(
        "POST",
        paths::BATCHES,
        Roles("researcher, admin"),
        "Submit a batch",
        Some(json::<SubmitBatchRequest>),
        201,
        Body(json::<SubmitBatchResponse>),
    ),
    route(
        "GET",
        paths::BATCH,
        Roles("researcher, admin"),
        "One batch's status (owner or admin); ?wait_ms=N[&after=TAG] long-polls until it ends, its progress tag differs from TAG, or N ms pass",
        None,
        200,
        Body(json::<BatchStatus>),
    ),
    route(
        "DELETE",
        paths::BATCH,
        Roles("researcher, admin"),
        "Delete a finished or cancelled batch and its units (owner or admin)",
        None,
        200,
        Body(json::<DeleteBatchResponse>),
    ),
    route(
        "GET",
        paths::BATCH_RESULTS,
        Roles("researcher, admin"),
        "One batch's results, ?format=jsonl|csv, streamed; ?after=CURSOR[&wait_ms=N]: one JSON page",
        None,
        200,
        MediaOrBody(&["application/x-ndjson", "text/csv"], json::<ResultsPage>),
    ),
    route(
        "POST",
        paths::BATCH_CANCEL,
        Roles("researcher, admin"),
        "Cancel a batch",
        None,
        200,
        Body(json::<BatchStatus>),
    ),
    route(
        "GET",
        paths::BATCH_UNITS,
        Roles("researcher, admin"),
        "A batch's units, ?state=retrying&after=UNIT&limit=100 (owner or admin)",
        None,
        200,
        Body(json::<UnitList>),
    ),
    route(
        "GET",
        paths::FAILURES,
        Roles("researcher, admin"),
        "Failed replicas of the caller's batches, ?batch=&state=&after=UNIT.N&limit=",
        None,
        200,
        Body(json::<FailureList>),
    ),
    route(
        "GET",
        paths::UNIT,
        Roles("researcher, admin"),
        "One unit with its replicas (owner or admin)",
        None,
        200,
        Body(json::<UnitDetail>),
    ),
    route(
        "POST",
        paths::PROJECT_ROTATIONS,
        Roles("admin"),
        "Trust a new signing key through a rotation statement signed by a trusted key",
        Some(json::<RotationStatement>),
        200,
        Body(json::<ProjectInfo>),
    ),
    route(
        "GET",
        paths::HOSTS,
        Viewer,
        "Every host with platform and counters",
        None,
        200,
        Body(json::<HostList>),
    ),
    route(
        "GET",
        paths::HOST,
        Viewer,
        "One host with its recent replicas",
        None,
        200,
        Body(json::<HostDetail>),
    ),
    route(
        "POST",
        paths::HOST_BAN,
        Roles("admin"),
        "Ban a host: no more work, its results re-verified",
        Some(json::<BanRequest>),
        200,
        Body(json::<HostSummary>),
    ),
    route(
        "POST",
        paths::HOST_UNBAN,
        Roles("admin"),
        "Lift a host's ban or quarantine",
        None,
        200,
        Body(json::<HostSummary>),
    ),
    route(
        "GET",
        paths::STATS,
        Viewer,
        "Server-wide counters",
        None,
        200,
        Body(json::<Stats>),
    ),
    route(
        "GET",
        paths::SERVER_STATUS,
        Viewer,
        "Units by app and state, hosts' rates, unit states over the last hour",
        None,
        200,
        Body(json::<ServerStatus>),
    ),
    route(
        "GET",
        paths::TOKENS,
        Roles("admin"),
        "Every user token (id, role, apps, expiry, label, created, revoked; never the secret)",
        None,
        200,
        Body(json::<TokenList>),
    ),
    route(
        "POST",
        paths::TOKENS,
        Roles("admin"),
        "Create a user token",
        Some(json::<CreateTokenRequest>),
        201,
        Body(json::<CreateTokenResponse>),
    ),
    route(
        "DELETE",
        paths::TOKEN,
        Roles("admin"),
        "Revoke a user token",
        None,
        204,
        Empty,
    ),
    route(
        "GET",
        paths::OPENAPI,
        Public,
        "This document",
        None,
        200,
        Media("application/json"),
    ),
    route(
        "GET",
        paths::METRICS,
        Viewer,
        "Prometheus metrics",
        None,
        200,
        Media("text/plain"),
    ),
    route(
        "GET",
        paths::ADMIN_BACKUP,
        Roles("admin"),
        "A consistent copy of the store taken while serving (a redb file; restore by serving it)",
        None,
        200,
        Media("application/octet-stream"),
    ),
    route(
        "GET",
        paths::HEALTHZ,
        Public,
        "Liveness probe: the process answers",
        None,
        200,
        Body(json::<HealthStatus>),
    ),
    route(
        "GET",
        paths::READYZ,
        Public,
        "Readiness probe: the store accepts writes; 503 with the reason otherwise",
        None,
        200,
        Body(json::<HealthStatus>),
    ),
    route(
        "GET",
        INDEX,
        Public,
        "The dashboard page",
        None,
        200,
        Media("text/html"),
    ),
    route(
        "GET",
        ASSET,
        Public,
        "The dashboard's embedded scripts, styles and icon",
        None,
        200,
        Media("application/octet-stream"),
    ),
];

/// The query parameters of the endpoints that take any, from the types their handlers parse.
pub const QUERIES: &[(&str, &str, QueryParams)] = &[
    ("GET", paths::BATCH, query::<BatchStatusQuery>),
    ("GET", paths::BATCH_RESULTS, query::<ResultsQuery>),
    ("GET", paths::BATCH_UNITS, query::<UnitsQuery>),
    ("GET", paths::FAILURES, query::<FailuresQuery>),
];

/// `GET /api/v1/openapi.json`.
pub async fn serve() -> Json<OpenApi> {
    Json(document())
}

/// The OpenAPI document.
pub fn document() -> OpenApi {
    let mut schemas = Schemas::new();
    let error = json::<ApiErrorBody>(&mut schemas);
    let mut paths = PathsBuilder::new().build();
    for r in ROUTES {
        let mut operation = OperationBuilder::new()
            .summary(Some(r.summary))
            .operation_id(Some(format!("{} {}", r.method, r.path)))
            .description(Some(access_text(r.access)));
        for requirement in security(r.access) {
            operation = operation.security(requirement);
        }
        for name in path_params(r.path) {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(path_param_schema(name))),
            );
        }
        let queries = QUERIES
            .iter()
            .filter(|(method, path, _)| *method == r.method && *path == r.path);
        for parameter in queries.flat_map(|(_, _, parameters)| parameters()) {
            operation = operation.parameter(parameter);
        }
        if let Some(request) = r.request {
            let body = RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(request(&mut schemas)))
                        .build(),
                )
                .build();
            operation = operation.request_body(Some(body));
        }
        let success = match r.response {
            Body(body) => ResponseBuilder::new().description("ok").content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(body(&mut schemas)))
                    .build(),
            ),
            Media(media_type) => ResponseBuilder::new()
                .description("ok")
                .content(media_type, ContentBuilder::new().build()),
            MediaOrBody(media_types, body) => media_types.iter().fold(
                ResponseBuilder::new().description("ok").content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(body(&mut schemas)))
                        .build(),
                ),
                |response, media_type| response.content(*media_type, ContentBuilder::new().build()),
            ),
            Empty => ResponseBuilder::new().description("done"),
        };
        let failure = ResponseBuilder::new()
            .description("error; see docs/protocol.md for codes")
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(error.clone())).build(),
            );
        operation = operation
            .response(r.status.to_string(), success)
            .response("default", failure);
        paths.add_path_operation(r.path, vec![http_method(r.method)], operation);
    }
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("musketeer")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Volunteer computing with sandboxed WebAssembly tasks. Bodies are the types \
                     of the musketeer-protocol crate; docs/protocol.md has every field.",
                )),
        )
        .paths(paths)
        .components(Some(components))
        .build()
}

fn http_method(method: &str) -> HttpMethod {
    match method {
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "DELETE" => HttpMethod::Delete,
        "PATCH" => HttpMethod::Patch,
        // The table holds GET, POST and DELETE only (a test checks each against the router).
        _ => HttpMethod::Get,
    }
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

/// Bearer token required, or (for dashboard views) optional: the empty requirement means none.
fn security(access: Access) -> Vec<SecurityRequirement> {
    let bearer = || SecurityRequirement::new("bearer", Vec::<String>::new());
    match access {
        Access::Public => Vec::new(),
        Access::Viewer | Access::HostOrViewer => vec![bearer(), SecurityRequirement::default()],
        Access::Host | Access::Roles(_) => vec![bearer()],
    }
}

/// The `{name}` segments of a path pattern.
pub fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
}

/// Ids are numbers; a module is named by its sha256 in hex; assets by file name.
fn path_param_schema(name: &str) -> RefOr<Schema> {
    match name {
        "id" => u64::schema(),
        // Documented so that clients and fuzzers know what the server accepts (it answers 400
        // to anything else).
        "sha256" => ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9a-f]{64}$"))
            .into(),
        _ => String::schema(),
    }
}

//! Fixtures: a fresh project store, tokens of every role, a published app, request helpers.

use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use musketeer_protocol::{Backend, HostPlatform, Role, TokenId};
use musketeer_server::domain::tokens::{self, TokenRecord};
use musketeer_server::state::{AppState, ServeOptions};
use musketeer_server::store::{ProjectConfig, Store, StoreLocation, Write, encode};
use musketeer_signing_keys::{Limits, Manifest, SecretKey, TrustStore};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::pg_support::PgCluster;

/// The environment variable that picks the store of [`Project::new`]: `postgres` runs the suite
/// on PostgreSQL (a database per project in the process's [`PgCluster::shared`]); unset or
/// `redb`, on a redb file in the project's directory.
pub const TEST_STORE_VAR: &str = "MUSKETEER_TEST_STORE";

/// Whether [`TEST_STORE_VAR`] asks for PostgreSQL; a value it does not know is a panic that says
/// which ones it knows, so that a typo never runs the redb pass twice.
pub fn testing_on_postgres() -> bool {
    match std::env::var(TEST_STORE_VAR) {
        Ok(store) if store == "postgres" => true,
        Ok(store) if store == "redb" || store.is_empty() => false,
        Err(std::env::VarError::NotPresent) => false,
        other => panic!("{TEST_STORE_VAR}={other:?}: expected `postgres` or `redb`"),
    }
}

/// A project with a trusted key and one token per role.
pub struct Project {
    pub dir: tempfile::TempDir,
    /// Where the store is: `dir`, or a PostgreSQL database.
    pub location: StoreLocation,
    /// Whether the store is a database of [`PgCluster::shared`], dropped with the project.
    in_shared_cluster: bool,
    pub key: SecretKey,
    pub admin: String,
    pub researcher: String,
    pub publisher: String,
}

impl Project {
    /// A project on the store the suite runs on ([`TEST_STORE_VAR`]).
    pub fn new() -> Project {
        if testing_on_postgres() {
            Project::on_shared_postgres()
        } else {
            Project::on_redb()
        }
    }

    /// A project on a new database of the process's [`PgCluster::shared`], dropped with it.
    pub fn on_shared_postgres() -> Project {
        let mut project = Project::on_postgres(PgCluster::shared().database());
        project.in_shared_cluster = true;
        project
    }

    /// A project on a redb file in `dir`, whichever store the suite runs on: for tests of the
    /// file itself (its size, compaction, the backup API, opening it by path).
    pub fn on_redb() -> Project {
        let dir = tempfile::tempdir().unwrap();
        let location = StoreLocation::DataDir(dir.path().to_owned());
        Project::at(dir, location)
    }

    /// A project whose store is the PostgreSQL database at `url` (empty until now).
    pub fn on_postgres(url: String) -> Project {
        Project::at(tempfile::tempdir().unwrap(), StoreLocation::Postgres(url))
    }

    fn at(dir: tempfile::TempDir, location: StoreLocation) -> Project {
        let key = SecretKey::generate();
        let project = ProjectConfig {
            name: "test project".into(),
            trust: TrustStore::from(vec![key.public_key()]),
            rotations: vec![],
            min_client_version: "0.1.0".parse().unwrap(),
            created_ms: 0,
        };
        let store = Store::create_at(&location, &project).unwrap();
        let mut writes = Vec::new();
        let mut token = |id: u64, role: Role| {
            let token = tokens::generate(tokens::USER_PREFIX);
            let record = TokenRecord {
                id: TokenId(id),
                hash: hex::encode(tokens::hash(&token)),
                role,
                apps: None,
                expires_ms: None,
                label: None,
                created_ms: 0,
                revoked: false,
            };
            writes.push(Write::Token(id, encode(&record)));
            token
        };
        let admin = token(1, Role::Admin);
        let researcher = token(2, Role::Researcher);
        let publisher = token(3, Role::Publisher);
        store.write_now(writes).unwrap();
        drop(store);
        Project {
            dir,
            location,
            in_shared_cluster: false,
            key,
            admin,
            researcher,
            publisher,
        }
    }

    /// The project's directory: its redb store's, for a project [`Project::on_redb`].
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The store opened directly (no server may have it open).
    pub fn store(&self) -> Store {
        Store::open_at(&self.location).unwrap()
    }

    /// Load the store into a state with the given options.
    pub fn state(&self, options: ServeOptions) -> AppState {
        AppState::load(self.store(), options).unwrap()
    }

    /// A publish request body for `app` at `version` with module `module`.
    pub fn publish_body(&self, app: &str, version: &str, module: &[u8]) -> Value {
        publish_body(&self.key, app, version, module)
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if let (true, StoreLocation::Postgres(url)) = (self.in_shared_cluster, &self.location) {
            PgCluster::shared().drop_database(url);
        }
    }
}

pub fn publish_body(key: &SecretKey, app: &str, version: &str, module: &[u8]) -> Value {
    let manifest = Manifest::for_module(
        app,
        version.parse().unwrap(),
        module,
        vec![],
        Limits::default(),
    )
    .unwrap();
    let signed: Value = serde_json::from_str(&manifest.sign(key).to_json()).unwrap();
    json!({ "signed_manifest": signed, "module": base64_encode(module) })
}

pub fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn platform() -> HostPlatform {
    HostPlatform {
        arch: "x86_64".into(),
        os: "linux".into(),
        client_version: "0.1.0".into(),
        wasmtime_version: "48.0.8".into(),
        backend: Backend::Cranelift,
        slots: 2,
        max_task_memory: None,
    }
}

/// An in-process server: requests go through `oneshot` on the router.
#[derive(Clone)]
pub struct Api {
    pub router: Router,
}

impl Api {
    pub fn new(project: &Project) -> Api {
        Self::with_options(
            project,
            ServeOptions {
                register_per_minute: 1000,
                ..ServeOptions::default()
            },
        )
    }

    /// An API over `state`, which the caller keeps (to close it, or to reload the store).
    pub fn serving(state: &AppState) -> Api {
        Api {
            router: musketeer_server::app(state.clone()),
        }
    }

    pub fn with_options(project: &Project, options: ServeOptions) -> Api {
        Api {
            router: musketeer_server::app(project.state(options)),
        }
    }

    /// Send a request; the body is JSON unless `raw` is given.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Body>,
        content_type: Option<&str>,
    ) -> (StatusCode, Vec<u8>, axum::http::HeaderMap) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request.body(body.unwrap_or_else(Body::empty)).unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, bytes.to_vec(), headers)
    }

    /// A JSON request; the answer parsed as JSON (Null if empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let body = body.map(|b| Body::from(serde_json::to_vec(&b).unwrap()));
        let content_type = body.as_ref().map(|_| "application/json");
        let (status, bytes, _) = self.send(method, path, token, body, content_type).await;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, value)
    }

    /// A GET whose answer is not JSON (a backup, JSON lines): the status and the bytes.
    pub async fn get_bytes(&self, path: &str, token: Option<&str>) -> (StatusCode, Vec<u8>) {
        let (status, bytes, _) = self.send(Method::GET, path, token, None, None).await;
        (status, bytes)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// Publish, asserting success.
    pub async fn publish(&self, project: &Project, app: &str, version: &str, module: &[u8]) {
        let (status, body) = self
            .post(
                "/api/v1/apps",
                Some(&project.publisher),
                project.publish_body(app, version, module),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Register a host; its token.
    pub async fn register(&self, name: &str) -> String {
        let (status, body) = self
            .post(
                "/api/v1/hosts/register",
                None,
                json!({"name": name, "platform": platform()}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["host_token"].as_str().unwrap().to_owned()
    }

    /// Submit a batch, asserting success; its id.
    pub async fn submit(&self, token: &str, app: &str, inputs: Value, replication: Value) -> u64 {
        let (status, body) = self
            .post(
                "/api/v1/batches",
                Some(token),
                json!({"app": app, "inputs": inputs, "replication": replication}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["batch_id"].as_u64().unwrap()
    }

    /// Fetch without waiting; the assignments.
    pub async fn fetch(&self, host: &str, slots: u32) -> Vec<Value> {
        self.fetch_as(host, slots, json!(platform())).await
    }

    /// [`Api::fetch`] reporting `platform`.
    pub async fn fetch_as(&self, host: &str, slots: u32, platform: Value) -> Vec<Value> {
        let (status, body) = self
            .post(
                "/api/v1/work/fetch",
                Some(host),
                json!({"free_slots": slots, "platform": platform}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["assignments"].as_array().unwrap().clone()
    }

    /// Fetch without waiting while still holding `in_flight` result ids; the whole answer
    /// (assignments, ids to drop, refusal).
    pub async fn fetch_answer(&self, host: &str, slots: u32, in_flight: &[&Value]) -> Value {
        let (status, body) = self
            .post(
                "/api/v1/work/fetch",
                Some(host),
                json!({"free_slots": slots, "platform": platform(), "in_flight": in_flight}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// A new user token with `role`, created by `admin`.
    pub async fn create_token(&self, admin: &str, role: &str) -> String {
        let (status, body) = self
            .post("/api/v1/tokens", Some(admin), json!({"role": role}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// Report one success; the ack status.
    pub async fn report_success(&self, host: &str, result_id: &Value, output: &[u8]) -> String {
        let body = json!({"results": [{"result_id": result_id, "outcome": {"status": "success", "output": base64_encode(output), "fuel_consumed": 7, "wall_ms": 1}}]});
        let (status, body) = self.post("/api/v1/work/report", Some(host), body).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["acks"][0]["status"].as_str().unwrap().to_owned()
    }
}

/// Assert an error answer's status and code.
#[track_caller]
pub fn assert_error(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error"], code, "{}", answer.1);
    assert!(
        answer.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        answer.1
    );
}

/// A request over real HTTP, with a bearer token if given: (status, the body as JSON or Null).
pub async fn http_json(request: reqwest::RequestBuilder, token: Option<&str>) -> (u16, Value) {
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// One round of a volunteer over HTTP: fetch up to two replicas as `host`, report `output` of
/// each one's input, and assert that every report was accepted.
pub async fn http_volunteer_round(
    http: &reqwest::Client,
    url: &str,
    host: &str,
    output: impl Fn(&Value) -> Value,
) {
    let (status, fetched) = http_json(
        http.post(format!("{url}/api/v1/work/fetch"))
            .json(&json!({"free_slots": 2, "platform": platform()})),
        Some(host),
    )
    .await;
    assert_eq!(status, 200, "{fetched}");
    let results: Vec<Value> = fetched["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let output = output(&a["input"]).to_string();
            json!({"result_id": a["result_id"], "outcome": {"status": "success",
                "output": base64_encode(output.as_bytes()), "fuel_consumed": 1000, "wall_ms": 5}})
        })
        .collect();
    if results.is_empty() {
        return;
    }
    let (status, body) = http_json(
        http.post(format!("{url}/api/v1/work/report"))
            .json(&json!({"results": results})),
        Some(host),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for ack in body["acks"].as_array().unwrap() {
        assert_eq!(ack["status"], "accepted", "{body}");
    }
}

/// The `demo` app at 1.0.0 as the world holds it, for tests that drive the world directly: its
/// limits leave room for the reports they make (successes beyond the limits count as errors).
pub fn demo_app() -> musketeer_server::domain::world::AppVersion {
    musketeer_server::domain::world::AppVersion {
        app: "demo".into(),
        version: "1.0.0".parse().unwrap(),
        key_id: "ed25519:0000000000000000".into(),
        module_sha256: "00".repeat(32),
        module_size: 3,
        http_allow: vec![],
        limits: musketeer_protocol::Limits {
            fuel: 1_000_000,
            memory_bytes: 1,
            wall_time_ms: 1,
            output_bytes: 1024,
        },
        signed_manifest: serde_json::value::RawValue::from_string("{}".into()).unwrap(),
        published_ms: 0,
    }
}

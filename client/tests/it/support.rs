//! Shared helpers: signing a built task module, a sandbox, and a loopback fixture HTTP server.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use musketeer_client::sandbox::{RunError, RunOptions, RunOutput, Sandbox, SandboxConfig};
use musketeer_signing_keys::{Limits, Manifest, SecretKey, SignedManifest, TrustStore};

/// A module signed by a fresh key that `trust` trusts.
pub struct Signed {
    pub trust: TrustStore,
    pub manifest: SignedManifest,
    pub module: Vec<u8>,
}

pub fn test_limits() -> Limits {
    Limits {
        fuel: 2_000_000_000,
        memory_bytes: 64 * 1024 * 1024,
        wall_time_ms: 20_000,
        output_bytes: 1024 * 1024,
    }
}

pub fn sign(module_path: &str, allow: &[String], limits: Limits) -> Signed {
    let module = std::fs::read(module_path).expect("built task module");
    sign_module("test-app", module, allow, limits)
}

/// Signs `module` as `app` 1.0.0 with a fresh key that the returned trust store trusts.
pub fn sign_module(app: &str, module: Vec<u8>, allow: &[String], limits: Limits) -> Signed {
    let key = SecretKey::generate();
    let manifest = Manifest::for_module(
        app,
        semver::Version::new(1, 0, 0),
        &module,
        allow.to_vec(),
        limits,
    )
    .expect("valid manifest")
    .sign(&key);
    let mut trust = TrustStore::default();
    trust.add(key.public_key());
    Signed {
        trust,
        manifest,
        module,
    }
}

/// Runs the `musketeer` binary in `dir`, sharing the test process's compiled-code cache.
pub fn musketeer(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_musketeer"))
        .args(args)
        .env("MUSKETEER_CACHE_DIR", shared_cache_dir())
        .current_dir(dir)
        .output()
        .expect("run musketeer")
}

/// `musketeer sign` arguments for `module` as `app` 1.0.0, with the key that
/// `musketeer keys generate --out keys` made, writing `task.manifest.json`.
pub fn sign_args<'a>(module: &'a str, app: &'a str) -> Vec<&'a str> {
    vec![
        "sign",
        "--key",
        "keys/musketeer.key",
        "--module",
        module,
        "--app",
        app,
        "--version",
        "1.0.0",
        "--out",
        "task.manifest.json",
    ]
}

/// `musketeer run` arguments for `module` as signed by [`sign_args`], trusting that key.
pub fn run_args<'a>(module: &'a str, input: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        "--manifest",
        "task.manifest.json",
        "--module",
        module,
        "--trust",
        "keys/musketeer.pub",
        "--input",
        input,
    ]
}

/// A sandbox with the volunteer's settings (tasks from a pool, here of two places), sharing one
/// compiled-code cache per test process so each module is compiled once, not once per test.
pub fn sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig {
        cache_dir: Some(shared_cache_dir()),
        pooled_tasks: Some(2),
        ..SandboxConfig::default()
    })
    .expect("sandbox")
}

pub fn shared_cache_dir() -> std::path::PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
        .join("compiled")
}

/// Verifies, compiles and runs `signed` once on `input`.
pub async fn run_once(
    sandbox: &Sandbox,
    signed: &Signed,
    input: &[u8],
) -> Result<RunOutput, RunError> {
    let task = sandbox.prepare(&signed.trust, &signed.manifest, &signed.module)?;
    let options = RunOptions {
        run_id: "test-run".into(),
        progress: None,
        pause: None,
    };
    sandbox.run(&task, input, options).await
}

/// A loopback HTTP server for tests, stopped when dropped.
pub struct Fixture {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Fixture {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The allowlist entry naming this server's IP literal and port.
    pub fn allow(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve(router: Router) -> Fixture {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Fixture { addr, task }
}

#[derive(serde::Deserialize)]
struct RedirectQuery {
    to: String,
}

/// Endpoints used by the hostile-module and network tests.
pub fn network_routes() -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route(
            "/redirect",
            get(|Query(q): Query<RedirectQuery>| async move {
                (StatusCode::FOUND, [(header::LOCATION, q.to)]).into_response()
            }),
        )
        .route(
            "/big/{bytes}",
            get(|Path(bytes): Path<usize>| async move { vec![b'x'; bytes] }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "too late"
            }),
        )
}

/// Convenience for error assertions: `kind` of a failed run, or "ok".
pub fn kind(result: &Result<RunOutput, RunError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(error) => error.kind(),
    }
}

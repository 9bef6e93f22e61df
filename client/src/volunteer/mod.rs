//! The volunteer side: join a project, pin its keys, register, and run its work in N slots.
//!
//! [`join`] contacts the server, decides which keys to trust ([`pinning`]), registers once
//! (credentials kept in the data directory, see [`files`]; again as a new host if the server
//! stops accepting them, e.g. after its store was reset) and runs the work loop: it long-polls
//! for assignments while slots are free, runs each in the sandbox, keeps every finished result in
//! the [`spool`] until the server acknowledges it, and retries with [`backoff`] while the server
//! is away. A shutdown signal stops fetching, hands unstarted and unfinished work back, and
//! returns.

pub mod backoff;
pub mod events;
pub mod files;
pub mod memory;
pub mod modules;
pub mod pinning;
pub mod priority;
pub mod spool;
mod stop;
mod trust;
mod work;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use musketeer_protocol::{Backend, HostPlatform, RegisterHostRequest};
use musketeer_signing_keys::PublicKey;

use crate::api_client::{ApiClient, ApiError};
use crate::sandbox::{Sandbox, SandboxConfig, wasmtime_version};
use backoff::Backoff;
use events::{Events, LogFormat};
use files::{DataDir, HostCredentials};
use stop::StopSignal;

/// Settings of `musketeer join`.
#[derive(Debug, Clone)]
pub struct JoinConfig {
    /// The server's base URL.
    pub server: String,
    /// Concurrent task slots.
    pub slots: usize,
    /// Display name of this host.
    pub name: String,
    /// Credentials, pinned keys, spool, modules and compiled code.
    pub data_dir: PathBuf,
    /// Keys the volunteer expects the project to use (checked on first contact).
    pub trust_keys: Vec<PublicKey>,
    /// The project's invite code, if it needs one.
    pub invite_code: Option<String>,
    /// Output format.
    pub log_format: LogFormat,
    /// How long one fetch waits for work on the server.
    pub poll_wait: Duration,
    /// Longest delay between retries while the server is unreachable.
    pub max_backoff: Duration,
    /// How long running tasks may go on after a shutdown signal before they are aborted.
    pub shutdown_grace: Duration,
    /// The largest manifest memory limit a task may have here (`None`: any).
    pub max_task_memory: Option<u64>,
}

/// Why joining failed for good (transient failures are retried, not returned).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The project's keys are not acceptable.
    #[error(transparent)]
    Trust(#[from] pinning::PinError),
    /// The data directory could not be used.
    #[error(transparent)]
    Files(#[from] files::FileError),
    /// The server refused this host for a reason retrying will not fix.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The sandbox could not start.
    #[error("cannot start the sandbox: {0}")]
    Sandbox(String),
    /// The data directory belongs to another server.
    #[error("the data directory {dir} belongs to {other}; use another --data-dir for {server}")]
    OtherServer {
        /// The directory.
        dir: PathBuf,
        /// The server recorded there.
        other: String,
        /// The server asked for.
        server: String,
    },
}

/// Joins the project at `config.server` and works until `shutdown` resolves.
pub async fn join(
    config: JoinConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), JoinError> {
    let events = Events::new(config.log_format, &config.name);
    let data = DataDir::open(&config.data_dir)?;
    let api = ApiClient::new(&config.server, None)?;
    let stop = StopSignal::new(shutdown);

    let Some(project) = retry(&events, &config, &stop, "read the project", || {
        api.project()
    })
    .await?
    else {
        return Ok(());
    };
    let trust = trust::pin_keys(&data, &config, &project, &events)?;

    let sandbox = Sandbox::new(SandboxConfig {
        cache_dir: Some(data.compiled_dir()),
        ..SandboxConfig::default()
    })
    .map_err(|e| JoinError::Sandbox(e.to_string()))?;
    let platform = HostPlatform {
        arch: std::env::consts::ARCH.to_owned(),
        os: std::env::consts::OS.to_owned(),
        client_version: env!("CARGO_PKG_VERSION").to_owned(),
        wasmtime_version: wasmtime_version().to_owned(),
        backend: if sandbox.backend_name() == "pulley" {
            Backend::Pulley
        } else {
            Backend::Cranelift
        },
        slots: u32::try_from(config.slots).unwrap_or(u32::MAX),
        max_task_memory: config.max_task_memory,
    };

    let sandbox = Arc::new(sandbox);
    // Spaces out new identities if the server keeps refusing fresh tokens.
    let mut reregister = Backoff::new(Duration::from_millis(250), config.max_backoff);
    loop {
        let Some(host) = identity(&api, &data, &platform, &events, &config, &stop).await? else {
            return Ok(());
        };
        events.emit(
            "joined",
            serde_json::json!({
                "host_id": host.host_id,
                "project": project.name,
                "slots": config.slots,
                "backend": sandbox.backend_name(),
                "max_task_memory": config.max_task_memory,
                "data_dir": data.root(),
            }),
            format!(
                "joined {:?} at {} as host {} with {} slot(s) ({} backend{}); data in {}",
                project.name,
                api.base_url(),
                host.host_id,
                config.slots,
                sandbox.backend_name(),
                config
                    .max_task_memory
                    .map(|bytes| format!(", tasks of up to {} MiB", bytes >> 20))
                    .unwrap_or_default(),
                data.root().display()
            ),
        );
        let worker = work::Worker::new(work::WorkerSetup {
            api: api.with_token(host.host_token.clone()),
            data: data.clone(),
            sandbox: sandbox.clone(),
            trust: trust.clone(),
            platform: platform.clone(),
            events: events.clone(),
            config: config.clone(),
        })?;
        match worker.run(stop.requested()).await {
            // The server has forgotten this host (its store was reset, or the host removed):
            // like BOINC, come back as a new host rather than stop volunteering. Unreported
            // results go: they were the old host's, and their ids may mean other work now.
            Err(JoinError::Api(error)) if error.is_unauthorized() && !stop.is_requested() => {
                data.forget_host()?;
                let discarded = spool::Spool::open(data.spool_dir())?.discard_all();
                let delay = reregister.next_delay();
                events.emit(
                    "re-register",
                    serde_json::json!({"old_host_id": host.host_id, "error": error.to_string(), "discarded_results": discarded, "delay_ms": delay.as_millis() as u64}),
                    format!(
                        "the server no longer accepts host {} ({error}); {discarded} unreported result(s) discarded, registering again in {:.1} s",
                        host.host_id,
                        delay.as_secs_f64()
                    ),
                );
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stop.requested() => return Ok(()),
                }
            }
            other => return other,
        }
    }
}

/// This host's credentials at the server: the stored ones, or new ones from registering.
/// `None` when a shutdown came first.
async fn identity(
    api: &ApiClient,
    data: &DataDir,
    platform: &HostPlatform,
    events: &Events,
    config: &JoinConfig,
    stop: &StopSignal,
) -> Result<Option<HostCredentials>, JoinError> {
    match data.host()? {
        Some(host) if host.server == api.base_url() => Ok(Some(host)),
        Some(host) => Err(JoinError::OtherServer {
            dir: data.root().to_path_buf(),
            other: host.server,
            server: api.base_url().to_owned(),
        }),
        None => {
            let request = RegisterHostRequest {
                name: Some(config.name.clone()),
                invite_code: config.invite_code.clone(),
                platform: Some(platform.clone()),
            };
            let Some(registered) =
                retry(events, config, stop, "register", || api.register(&request)).await?
            else {
                return Ok(None);
            };
            let host = HostCredentials {
                server: api.base_url().to_owned(),
                host_id: registered.host_id,
                host_token: registered.host_token,
            };
            data.save_host(&host)?;
            Ok(Some(host))
        }
    }
}

/// Calls `attempt` until it succeeds or fails for good, backing off while the server is away.
/// `None` when `shutdown` came first.
async fn retry<T, F, Fut>(
    events: &Events,
    config: &JoinConfig,
    stop: &StopSignal,
    what: &str,
    mut attempt: F,
) -> Result<Option<T>, JoinError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut backoff = Backoff::new(Duration::from_millis(250), config.max_backoff);
    loop {
        match attempt().await {
            Ok(value) => return Ok(Some(value)),
            Err(error) if error.is_retryable() => {
                let delay = backoff.next_delay();
                events.emit(
                    "retry",
                    serde_json::json!({"what": what, "error": error.to_string(), "delay_ms": delay.as_millis() as u64}),
                    format!("cannot {what} ({error}); retrying in {:.1} s", delay.as_secs_f64()),
                );
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stop.requested() => return Ok(None),
                }
            }
            Err(error) => return Err(error.into()),
        }
    }
}

//! The volunteer side: join a project, pin its keys, register, and run its work in N slots.
//!
//! [`join`] contacts the server, decides which keys to trust ([`pinning`]), registers once
//! (credentials kept in the data directory, see [`files`]; again as a new host if the server
//! stops accepting them, e.g. after its store was reset) and runs the work loop: it long-polls
//! for assignments while slots are free or its work buffer runs low, runs each in the sandbox,
//! keeps every finished result in the [`spool`] until the server acknowledges it (delivered on
//! the next fetch, or by a report of its own), and retries with [`backoff`] while the server is
//! away. A shutdown signal stops fetching, hands unstarted and unfinished work back, and
//! returns.

pub mod backoff;
mod buffer;
#[cfg(unix)]
pub mod control;
pub mod events;
pub mod files;
pub mod gate;
pub mod memory;
pub mod modules;
pub mod pinning;
pub mod prefs;
pub mod priority;
mod report;
mod slot;
pub mod spool;
pub mod status;
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
    /// Seconds of work per slot to keep fetched beyond the free slots (zero: none).
    pub work_buffer: Duration,
    /// Preferences and local control: whether work may run now (see [`gate`]).
    pub gate: gate::Gate,
    /// PEM certificates of the project's own CA, trusted besides the public roots.
    pub ca_cert: Option<Vec<u8>>,
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
    /// This host never joined the server, and the server could not be read: the URL is
    /// probably wrong or the server down, so the client stops instead of retrying forever.
    #[error(
        "{cause}. This data directory has never joined {server}, so the client stops instead \
         of retrying: check the URL (scheme, host and port, as the project publishes it) and \
         that the server is up, then join again"
    )]
    FirstContact {
        /// The server asked for.
        server: String,
        /// What went wrong, with its root cause.
        cause: String,
        /// The last error.
        #[source]
        source: ApiError,
    },
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
    let api = ApiClient::trusting(&config.server, None, config.ca_cert.as_deref())?;
    let stop = StopSignal::new(shutdown);
    // Preferences hook: the gate pauses tasks and holds back fetches while work is suspended.
    let _gate_driver = config.gate.spawn_driver(events.clone());

    // A project joined before keeps being retried (it may be restarting); a first contact that
    // fails is most likely a wrong URL, and a volunteer should hear that rather than wait.
    let known = data.host()?.is_some() || data.pinned()?.is_some();
    let attempts = if known {
        Attempts::Forever
    } else {
        Attempts::AtMost(FIRST_CONTACT_ATTEMPTS)
    };
    let project = match retry(
        &events,
        &config,
        &stop,
        "read the project",
        attempts,
        || api.project(),
    )
    .await
    {
        Ok(Some(project)) => project,
        Ok(None) => return Ok(()),
        Err(JoinError::Api(source)) if !known => {
            return Err(JoinError::FirstContact {
                server: api.base_url().to_owned(),
                cause: events::cause_chain(&source),
                source,
            });
        }
        Err(error) => return Err(error),
    };
    let trust = trust::pin_keys(&data, &config, &project, &events)?;

    // Preferences hook: the volunteer's bandwidth cap on tasks' HTTP reads.
    let bandwidth = config
        .gate
        .preferences()
        .max_http_kib_per_s
        .map(|kib| crate::net::bandwidth::Bandwidth::new(kib.saturating_mul(1024)));
    let sandbox = Sandbox::new(SandboxConfig {
        cache_dir: Some(data.compiled_dir()),
        http: crate::net::fetch::HttpConfig {
            bandwidth,
            ..Default::default()
        },
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
        // Work may take a while to come (the server holds each request until it has some): say
        // so now, or a fresh client looks hung.
        events.emit(
            "waiting",
            serde_json::json!({"poll_wait_ms": config.poll_wait.as_millis() as u64}),
            "waiting for work; each task is shown here as it starts",
        );
        // Local control hook: `musketeer status|pause|resume` while this identity works.
        let _control = start_control(&config, &data, &api, &host, &project.name, &events);
        if let Some(max) = config.max_task_memory {
            warn_about_apps_too_big(&api.with_token(host.host_token.clone()), max, &events).await;
        }
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

/// Opens the control socket; without it the client still works, and says why.
#[cfg(unix)]
fn start_control(
    config: &JoinConfig,
    data: &DataDir,
    api: &ApiClient,
    host: &HostCredentials,
    project: &str,
    events: &Events,
) -> Option<control::ControlServer> {
    let context = control::ControlContext {
        gate: config.gate.clone(),
        api: api.with_token(host.host_token.clone()),
        host_id: host.host_id,
        project: project.to_owned(),
        slots: config.slots,
    };
    match control::serve(data.root(), context) {
        Ok(server) => Some(server),
        Err(error) => {
            events.emit(
                "control-unavailable",
                serde_json::json!({"error": error.to_string()}),
                format!("warning: `musketeer status`, `pause` and `resume` will not reach this client: {error}"),
            );
            None
        }
    }
}

#[cfg(not(unix))]
fn start_control(
    _config: &JoinConfig,
    _data: &DataDir,
    _api: &ApiClient,
    _host: &HostCredentials,
    _project: &str,
    _events: &Events,
) -> Option<()> {
    None
}

/// Says which of the project's apps need more memory than `max_task_memory` allows (the
/// server sends this host none of their work). Best effort: a server that does not list its
/// apps to hosts leaves the volunteer with the limit shown in the "joined" line.
async fn warn_about_apps_too_big(api: &ApiClient, max_task_memory: u64, events: &Events) {
    // Only a hint: a slow answer must not hold up the work.
    let listing = tokio::time::timeout(
        Duration::from_secs(5),
        api.get_json::<musketeer_protocol::AppList>(musketeer_protocol::paths::APPS),
    );
    let apps = match listing.await {
        Ok(Ok(apps)) => apps,
        Ok(Err(error)) => {
            tracing::debug!("cannot list the project's apps: {error}");
            return;
        }
        Err(_) => {
            tracing::debug!("the project's app list took too long; not checked");
            return;
        }
    };
    let (too_big, any_fits) = memory::apps_too_big(&apps, max_task_memory);
    if too_big.is_empty() {
        return;
    }
    let list = too_big
        .iter()
        .map(|app| {
            format!(
                "{} needs {} MiB",
                app.app,
                app.needs_bytes.div_ceil(1 << 20)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let consequence = if any_fits {
        "their work will not be sent here"
    } else {
        "no app of this project fits, so this host will get no work"
    };
    events.emit(
        "apps-too-big",
        serde_json::json!({
            "max_task_memory": max_task_memory,
            "any_app_fits": any_fits,
            "apps": too_big.iter().map(|app| serde_json::json!({"app": app.app, "memory_bytes": app.needs_bytes})).collect::<Vec<_>>(),
        }),
        format!(
            "warning: tasks here may use at most {} MiB ({list}); {consequence}. Raise --max-task-memory (or lower --slots, which raises the default) if this machine can spare it",
            max_task_memory >> 20
        ),
    );
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
                retry(events, config, stop, "register", Attempts::Forever, || {
                    api.register(&request)
                })
                .await?
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

/// Tries of a first contact before the client gives up (about a second in all): enough to
/// ride out a server that is just starting, short enough that a wrong URL is said at once.
const FIRST_CONTACT_ATTEMPTS: u32 = 3;

/// How often [`retry`] tries while the server is away.
#[derive(Debug, Clone, Copy)]
enum Attempts {
    /// Until it succeeds or fails for good.
    Forever,
    /// At most this many times; then the last error is returned.
    AtMost(u32),
}

/// Calls `attempt` until it succeeds or fails for good, backing off while the server is away.
/// `None` when `shutdown` came first.
async fn retry<T, F, Fut>(
    events: &Events,
    config: &JoinConfig,
    stop: &StopSignal,
    what: &str,
    attempts: Attempts,
    mut attempt: F,
) -> Result<Option<T>, JoinError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut backoff = Backoff::new(Duration::from_millis(250), config.max_backoff);
    let mut tried = 0u32;
    loop {
        tried = tried.saturating_add(1);
        match attempt().await {
            Ok(value) => return Ok(Some(value)),
            Err(error)
                if error.is_retryable()
                    && !matches!(attempts, Attempts::AtMost(max) if tried >= max) =>
            {
                let delay = backoff.next_delay();
                let cause = events::cause_chain(&error);
                events.emit(
                    "retry",
                    serde_json::json!({"what": what, "error": cause, "delay_ms": delay.as_millis() as u64}),
                    format!("cannot {what} ({cause}); retrying in {:.1} s", delay.as_secs_f64()),
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

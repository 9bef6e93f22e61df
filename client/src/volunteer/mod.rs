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
pub mod client;
#[cfg(unix)]
pub mod control;
pub mod events;
pub mod files;
pub mod gate;
pub mod memory;
pub mod modules;
pub mod pinning;
pub mod pool;
pub mod prefs;
pub mod priority;
mod project_run;
pub mod projects;
mod report;
pub mod shares;
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
use projects::ClientDir;
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
    /// The client's data directory (its projects' folders, preferences, control socket);
    /// for one project's work, that project's folder.
    pub data_dir: PathBuf,
    /// The project's resource share (`None`: keep the one it has, else the default).
    pub resource_share: Option<u32>,
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
    /// The client running in the data directory refused the project, or could not be asked.
    #[cfg(unix)]
    #[error(transparent)]
    Control(control::ControlError),
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

/// Joins the project at `config.server`: attaches it to the client's data directory (reading
/// the project, pinning its keys and registering on first contact), then hands it to the client
/// already running there, or runs the client for every attached project until `shutdown`.
pub async fn join(
    config: JoinConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), JoinError> {
    let result = join_and_run(config, shutdown).await;
    // Event lines gathered for a pipe or a file are all out before the process goes.
    events::flush();
    result
}

async fn join_and_run(
    config: JoinConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), JoinError> {
    let events = Events::new(config.log_format, &config.name);
    let dir = ClientDir::open(&config.data_dir, Some(&config.server))?;
    let stop = StopSignal::new(shutdown);
    let sandbox = Sandbox::new(SandboxConfig {
        cache_dir: Some(dir.root().join("compiled")),
        http: crate::net::fetch::HttpConfig {
            // Preferences hook: the volunteer's bandwidth cap on tasks' HTTP reads.
            bandwidth: config
                .gate
                .preferences()
                .max_http_kib_per_s
                .map(|kib| crate::net::bandwidth::Bandwidth::new(kib.saturating_mul(1024))),
            ..Default::default()
        },
        // Every slot's task from a pool reserved once, not mapped and unmapped per task.
        pooled_tasks: Some(u32::try_from(config.slots).unwrap_or(u32::MAX)),
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
    if !first_contact(&dir, &config, &platform, &events, &stop).await? {
        return Ok(());
    }
    if let Some(said) = attach_to_running_client(&dir, &config).await? {
        events.emit(
            "attached",
            serde_json::json!({"server": config.server, "data_dir": dir.root(), "message": said}),
            said,
        );
        return Ok(());
    }

    // Preferences hook: the gate pauses tasks and holds back fetches while work is suspended.
    let _gate_driver = config.gate.spawn_driver(events.clone());
    let client = client::Client::new(client::ClientSetup {
        dir: dir.clone(),
        base: config,
        sandbox: Arc::new(sandbox),
        platform,
        events: events.clone(),
        stop,
    });
    // Local control: `musketeer status|pause|resume|projects|detach`, and later joins attach
    // their project through it.
    let _control = start_control(&dir, &client, &events)?;
    client.run().await
}

/// Attaches `config.server` to the data directory: on first contact reads the project (a dead
/// or wrong URL is said at once, not retried), pins its keys and registers. A project joined
/// before is read again (its keys checked against `--trust-key`), retrying while it is away.
/// `false` when a shutdown came first.
async fn first_contact(
    dir: &ClientDir,
    config: &JoinConfig,
    platform: &HostPlatform,
    events: &Events,
    stop: &StopSignal,
) -> Result<bool, JoinError> {
    let data = DataDir::open(&dir.project_dir(&config.server))?;
    let known = data.host()?.is_some() || data.pinned()?.is_some();
    let attempts = if known {
        Attempts::Forever
    } else {
        Attempts::AtMost(FIRST_CONTACT_ATTEMPTS)
    };
    let api = ApiClient::trusting(&config.server, None, config.ca_cert.as_deref())?;
    let read = retry(events, config, stop, "read the project", attempts, || {
        api.project()
    })
    .await;
    let project = match read {
        Ok(Some(project)) => project,
        Ok(None) => return Ok(false),
        Err(JoinError::Api(source)) if !known => {
            // Nothing of a project never reached stays behind.
            dir.forget(&config.server)?;
            return Err(JoinError::FirstContact {
                server: api.base_url().to_owned(),
                cause: events::cause_chain(&source),
                source,
            });
        }
        Err(error) => return Err(error),
    };
    let project_config = JoinConfig {
        data_dir: data.root().to_path_buf(),
        ..config.clone()
    };
    trust::pin_keys(&data, &project_config, &project, events)?;
    if let Some(pem) = &config.ca_cert {
        data.save_ca_cert(pem)?;
    }
    if identity(&api, &data, platform, events, &project_config, stop)
        .await?
        .is_none()
    {
        return Ok(false);
    }
    dir.attach(&config.server, config.resource_share)?;
    Ok(true)
}

/// Hands the project to the client already running in the data directory; what it said, or
/// `None` when no client runs there.
#[cfg(unix)]
async fn attach_to_running_client(
    dir: &ClientDir,
    config: &JoinConfig,
) -> Result<Option<String>, JoinError> {
    let root = dir.root().to_path_buf();
    let request = control::Request::Attach {
        server: config.server.clone(),
    };
    let answer = tokio::task::spawn_blocking(move || control::request(&root, &request))
        .await
        .map_err(|e| JoinError::Control(control::ControlError::Refused(e.to_string())))?;
    match answer {
        Ok(answer) => Ok(Some(
            answer["message"]
                .as_str()
                .unwrap_or("attached to the running client")
                .to_owned(),
        )),
        Err(control::ControlError::NotRunning { .. }) => Ok(None),
        Err(error) => Err(JoinError::Control(error)),
    }
}

#[cfg(not(unix))]
async fn attach_to_running_client(
    _dir: &ClientDir,
    _config: &JoinConfig,
) -> Result<Option<String>, JoinError> {
    Ok(None)
}

/// Opens the control socket. Another client starting in the same data directory at the same
/// moment is an error (the volunteer joins again to attach to it); other failures leave the
/// client working without local control, and say why.
#[cfg(unix)]
fn start_control(
    dir: &ClientDir,
    client: &Arc<client::Client>,
    events: &Events,
) -> Result<Option<control::ControlServer>, JoinError> {
    match control::serve(dir.root(), Arc::clone(client)) {
        Ok(server) => Ok(Some(server)),
        Err(error @ control::ControlError::InUse { .. }) => Err(JoinError::Control(error)),
        Err(error) => {
            events.emit(
                "control-unavailable",
                serde_json::json!({"error": error.to_string()}),
                format!("warning: `musketeer status`, `pause`, `resume`, `projects`, `detach` and further joins will not reach this client: {error}"),
            );
            Ok(None)
        }
    }
}

#[cfg(not(unix))]
fn start_control(
    _dir: &ClientDir,
    _client: &Arc<client::Client>,
    _events: &Events,
) -> Result<Option<()>, JoinError> {
    Ok(None)
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

//! Local control of a running client: `musketeer status`, `pause`, `resume`, `projects`,
//! `detach` and a further `join` talk to it through a Unix socket in the data directory
//! (`control.sock`, mode 0600, so only the volunteer's own user can open it), one JSON object
//! per line each way.
//!
//! Requests: `{"command":"status"}`, `{"command":"pause","for_secs":3600}` (or without
//! `for_secs`: until resumed), `{"command":"resume"}`, `{"command":"attach","server":URL}`
//! (a project `join` has just added to the data directory, or whose share it changed),
//! `{"command":"detach","server":URL,"force":false}`. Answers: `{"ok":true,...}` (attach and
//! detach with a `message`) or `{"error":"...","message":"..."}`.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};

use super::client::{Client, ProjectStatus};
use super::gate::Reason;
use super::prefs::Preferences;

/// The socket's name in the data directory.
pub const SOCKET_NAME: &str = "control.sock";
/// Longest request line; a longer one is refused.
const MAX_REQUEST: u64 = 4096;
/// Pause after a failed accept.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// How long a command waits for the client's answer (a detach waits for running tasks'
/// shutdown grace and a last report).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Why local control is unavailable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// Others could replace the socket: the data directory is group- or world-writable.
    #[error(
        "{dir} is writable by other users, so its control socket could be replaced; run \
         `chmod go-w {dir}`"
    )]
    UnsafeDir {
        /// The data directory.
        dir: PathBuf,
    },
    /// Another client already works in this data directory.
    #[error("another musketeer client is already running with the data directory {dir}")]
    InUse {
        /// The data directory.
        dir: PathBuf,
    },
    /// No client is running in this data directory.
    #[error(
        "no musketeer client is running with the data directory {dir} (start it with \
         `musketeer join`, or pass the --data-dir it uses)"
    )]
    NotRunning {
        /// The data directory.
        dir: PathBuf,
    },
    /// Reading, writing or creating the socket failed.
    #[error("control socket {path}: {source}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The client answered with an error or something unreadable.
    #[error("the client refused the command: {0}")]
    Refused(String),
}

/// A command to the running client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// What the client is doing.
    Status,
    /// Suspend work, for a while or until resumed.
    Pause {
        /// For how long, in seconds; until resumed when absent.
        #[serde(default)]
        for_secs: Option<u64>,
    },
    /// End a pause.
    Resume,
    /// Start a project `join` has added to the data directory (or apply its new share).
    Attach {
        /// The project's server.
        server: String,
    },
    /// Stop working for a project and forget it.
    Detach {
        /// The project's server.
        server: String,
        /// Discard results that cannot be reported.
        #[serde(default)]
        force: bool,
    },
}

/// The answer to `status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// Task slots, shared by the projects.
    pub slots: usize,
    /// Why work is suspended (empty: it runs).
    pub suspended: Vec<Reason>,
    /// The preferences in effect.
    pub preferences: serde_json::Value,
    /// Every attached project.
    pub projects: Vec<ProjectStatus>,
}

/// The part of the server's host view `status` shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostSummaryView {
    /// Fuel of validated results.
    pub credit: u64,
    /// Successful results returned.
    pub succeeded: u64,
    /// Error results returned.
    pub failed: u64,
    /// Results that disagreed with the canonical one.
    pub invalid: u64,
}

/// Serves local control until dropped.
#[derive(Debug)]
pub struct ControlServer {
    task: tokio::task::JoinHandle<()>,
    path: PathBuf,
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Opens `data_dir/control.sock` (mode 0600) and answers commands on it.
pub fn serve(data_dir: &Path, context: Arc<Client>) -> Result<ControlServer, ControlError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ControlError::Io { path, source }
    };
    let mode = std::fs::metadata(data_dir)
        .map_err(io(data_dir))?
        .permissions()
        .mode();
    if mode & 0o022 != 0 {
        return Err(ControlError::UnsafeDir {
            dir: data_dir.to_path_buf(),
        });
    }
    let path = data_dir.join(SOCKET_NAME);
    if path.exists() {
        // A socket that answers belongs to a client still running; one that does not was
        // left by a client that was killed.
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(ControlError::InUse {
                dir: data_dir.to_path_buf(),
            });
        }
        std::fs::remove_file(&path).map_err(io(&path))?;
    }
    let listener = UnixListener::bind(&path).map_err(io(&path))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io(&path))?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of file descriptors, say: try again later rather than spin.
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            };
            tokio::spawn(answer_connection(stream, Arc::clone(&context)));
        }
    });
    Ok(ControlServer { task, path })
}

/// Answers each request line of one connection.
async fn answer_connection(stream: UnixStream, context: Arc<Client>) {
    let (reader, mut writer) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(reader);
    loop {
        let mut line = String::new();
        let read = (&mut reader)
            .take(MAX_REQUEST + 1)
            .read_line(&mut line)
            .await;
        let answer = match read {
            Ok(0) | Err(_) => return,
            Ok(_) if line.len() as u64 > MAX_REQUEST => error(
                "too-large",
                format!("a request is at most {MAX_REQUEST} bytes"),
            ),
            Ok(_) => match serde_json::from_str::<Request>(line.trim_end()) {
                Ok(request) => answer(request, &context).await,
                Err(parse) => error(
                    "bad-request",
                    format!(
                        "{parse}; send {{\"command\":\"status\"}}, {{\"command\":\"pause\",\"for_secs\":N}}, {{\"command\":\"resume\"}}, {{\"command\":\"attach\",\"server\":URL}} or {{\"command\":\"detach\",\"server\":URL,\"force\":false}}"
                    ),
                ),
            },
        };
        let mut text = answer.to_string();
        text.push('\n');
        if writer.write_all(text.as_bytes()).await.is_err() || line.len() as u64 > MAX_REQUEST {
            return;
        }
    }
}

fn error(kind: &str, message: String) -> serde_json::Value {
    serde_json::json!({"error": kind, "message": message})
}

async fn answer(request: Request, client: &Arc<Client>) -> serde_json::Value {
    let gate = client.gate();
    match request {
        Request::Status => {
            let status = Status {
                slots: client.slots(),
                suspended: gate.reasons(),
                preferences: preferences_json(&gate.preferences()),
                projects: client.statuses().await,
            };
            match serde_json::to_value(status) {
                Ok(status) => serde_json::json!({"ok": true, "status": status}),
                Err(failed) => error("internal", failed.to_string()),
            }
        }
        Request::Pause { for_secs } => {
            gate.pause(for_secs.map(Duration::from_secs));
            serde_json::json!({"ok": true})
        }
        Request::Resume => {
            gate.resume();
            serde_json::json!({"ok": true})
        }
        Request::Attach { server } => said(client.attach(&server), "not-attached"),
        Request::Detach { server, force } => said(client.detach(&server, force).await, "kept"),
    }
}

/// The answer of attach and detach: what was done, or why not.
fn said(outcome: Result<String, String>, refusal: &str) -> serde_json::Value {
    match outcome {
        Ok(message) => serde_json::json!({"ok": true, "message": message}),
        Err(message) => error(refusal, message),
    }
}

fn preferences_json(prefs: &Preferences) -> serde_json::Value {
    serde_json::to_value(prefs).unwrap_or_default()
}

/// Sends `request` to the client running with `data_dir` and returns its answer.
pub fn request(data_dir: &Path, request: &Request) -> Result<serde_json::Value, ControlError> {
    let path = data_dir.join(SOCKET_NAME);
    let io = |source| ControlError::Io {
        path: path.clone(),
        source,
    };
    let mut stream = match std::os::unix::net::UnixStream::connect(&path) {
        Ok(stream) => stream,
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ControlError::NotRunning {
                dir: data_dir.to_path_buf(),
            });
        }
        Err(error) => return Err(io(error)),
    };
    stream.set_read_timeout(Some(ANSWER_TIMEOUT)).map_err(io)?;
    let mut line =
        serde_json::to_string(request).map_err(|e| ControlError::Refused(e.to_string()))?;
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(stream.take(1 << 20))
        .read_line(&mut answer)
        .map_err(io)?;
    let value: serde_json::Value = serde_json::from_str(answer.trim_end())
        .map_err(|e| ControlError::Refused(format!("unreadable answer: {e}")))?;
    if value.get("error").is_some() {
        let message = value["message"].as_str().unwrap_or("no reason given");
        return Err(ControlError::Refused(message.to_owned()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::{Sandbox, SandboxConfig};
    use crate::volunteer::JoinConfig;
    use crate::volunteer::client::ClientSetup;
    use crate::volunteer::events::{Events, LogFormat};
    use crate::volunteer::gate::{Gate, GateSetup};
    use crate::volunteer::prefs::PrefsFile;
    use crate::volunteer::projects::ClientDir;
    use crate::volunteer::stop::StopSignal;
    use musketeer_protocol::{Backend, HostPlatform};

    /// A client with no project attached, in `dir`.
    fn context(dir: &Path) -> Arc<Client> {
        let gate = Gate::new(GateSetup {
            data_dir: dir.to_path_buf(),
            overrides: PrefsFile::default(),
            power_supply_dir: dir.join("power"),
            idle: std::sync::Arc::new(crate::volunteer::prefs::Logind),
        })
        .expect("gate");
        let events = Events::new(LogFormat::Json, "test");
        let sandbox = Sandbox::new(SandboxConfig::default()).expect("sandbox");
        let platform = HostPlatform {
            arch: std::env::consts::ARCH.to_owned(),
            os: std::env::consts::OS.to_owned(),
            client_version: "test".into(),
            wasmtime_version: "test".into(),
            backend: Backend::Cranelift,
            slots: 1,
            max_task_memory: None,
        };
        let base = JoinConfig {
            server: "http://127.0.0.1:9".into(),
            slots: 1,
            name: "test".into(),
            data_dir: dir.to_path_buf(),
            resource_share: None,
            trust_keys: Vec::new(),
            invite_code: None,
            log_format: LogFormat::Json,
            poll_wait: Duration::from_secs(1),
            max_backoff: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(1),
            max_task_memory: None,
            work_buffer: Duration::ZERO,
            gate,
            ca_cert: None,
        };
        Client::new(ClientSetup {
            dir: ClientDir::open(dir, None).expect("client dir"),
            base,
            sandbox: Arc::new(sandbox),
            platform,
            events,
            stop: StopSignal::new(std::future::pending()),
        })
    }

    #[tokio::test]
    async fn the_socket_is_private_and_answers_commands_and_bad_requests() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        let context = context(dir.path());
        let server = serve(dir.path(), context.clone()).expect("serve");
        let mode = std::fs::metadata(dir.path().join(SOCKET_NAME))
            .expect("socket")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            serve(dir.path(), context.clone()),
            Err(ControlError::InUse { .. })
        ));

        let _driver = context
            .gate()
            .spawn_driver(crate::volunteer::events::Events::new(
                crate::volunteer::events::LogFormat::Json,
                "test",
            ));
        let root = dir.path().to_path_buf();
        let answers = tokio::task::spawn_blocking(move || {
            let pause = request(&root, &Request::Pause { for_secs: Some(60) });
            // The driver turns the pause into a suspension at once (it is woken).
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            let status = loop {
                let status = request(&root, &Request::Status);
                let suspended = status
                    .as_ref()
                    .is_ok_and(|answer| answer["status"]["suspended"][0].is_object());
                if suspended || std::time::Instant::now() > deadline {
                    break status;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            let mut raw =
                std::os::unix::net::UnixStream::connect(root.join(SOCKET_NAME)).expect("connect");
            raw.write_all(b"{\"command\":\"reboot\"}\n").expect("write");
            let mut bad = String::new();
            BufReader::new(raw).read_line(&mut bad).expect("read");
            let unknown = request(
                &root,
                &Request::Detach {
                    server: "http://127.0.0.1:9".into(),
                    force: false,
                },
            );
            (pause, status, bad, unknown)
        })
        .await
        .expect("no panic");
        answers.0.expect("pause accepted");
        let status: Status =
            serde_json::from_value(answers.1.expect("status")["status"].clone()).expect("status");
        assert!(status.projects.is_empty());
        assert_eq!(status.preferences["cpu_percent"], 100);
        assert!(matches!(
            status.suspended.as_slice(),
            [Reason::UserPaused {
                until_unix_s: Some(_)
            }]
        ));
        let bad: serde_json::Value = serde_json::from_str(&answers.2).expect("JSON");
        assert_eq!(bad["error"], "bad-request");
        assert!(
            matches!(&answers.3, Err(ControlError::Refused(message)) if message.contains("not attached")),
            "{:?}",
            answers.3
        );

        drop(server);
        assert!(!dir.path().join(SOCKET_NAME).exists());
        assert!(matches!(
            tokio::task::spawn_blocking({
                let root = dir.path().to_path_buf();
                move || request(&root, &Request::Status)
            })
            .await
            .expect("no panic"),
            Err(ControlError::NotRunning { .. })
        ));
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let _guard = runtime.enter();
        assert!(matches!(
            serve(dir.path(), context(dir.path())),
            Err(ControlError::UnsafeDir { .. })
        ));
    }
}

//! Local control of a running client: `musketeer status`, `pause` and `resume` talk to it
//! through a Unix socket in the data directory (`control.sock`, mode 0600, so only the
//! volunteer's own user can open it), one JSON object per line each way.
//!
//! Requests: `{"command":"status"}`, `{"command":"pause","for_secs":3600}` (or without
//! `for_secs`: until resumed), `{"command":"resume"}`. Answers: `{"ok":true,...}` or
//! `{"error":"...","message":"..."}`.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use musketeer_protocol::{HostDetail, HostId};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};

use super::gate::{Gate, Reason};
use super::prefs::Preferences;
use super::status::RunningView;
use crate::api_client::ApiClient;

/// The socket's name in the data directory.
pub const SOCKET_NAME: &str = "control.sock";
/// Longest request line; a longer one is refused.
const MAX_REQUEST: u64 = 4096;
/// How long the server is asked for this host's credit before status answers without it.
const CREDIT_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause after a failed accept.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// How long a command waits for the client's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

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
}

/// The answer to `status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// The project's server.
    pub server: String,
    /// The project's name.
    pub project: String,
    /// This host's id at the server.
    pub host_id: HostId,
    /// Task slots.
    pub slots: usize,
    /// Why work is suspended (empty: it runs).
    pub suspended: Vec<Reason>,
    /// The preferences in effect.
    pub preferences: serde_json::Value,
    /// Units running now.
    pub running: Vec<RunningView>,
    /// Finished results waiting for the server's acknowledgement.
    pub spooled: usize,
    /// This host's standing at the server (credit = fuel of its validated results).
    pub host: Option<HostSummaryView>,
    /// Why the standing could not be read.
    pub host_error: Option<String>,
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

/// What the control server answers from.
#[derive(Debug, Clone)]
pub struct ControlContext {
    /// The gate (suspension, preferences, running units).
    pub gate: Gate,
    /// The server's client, with this host's token.
    pub api: ApiClient,
    /// This host's id.
    pub host_id: HostId,
    /// The project's name.
    pub project: String,
    /// Task slots.
    pub slots: usize,
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
pub fn serve(data_dir: &Path, context: ControlContext) -> Result<ControlServer, ControlError> {
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
            tokio::spawn(answer_connection(stream, context.clone()));
        }
    });
    Ok(ControlServer { task, path })
}

/// Answers each request line of one connection.
async fn answer_connection(stream: UnixStream, context: ControlContext) {
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
                        "{parse}; send {{\"command\":\"status\"}}, {{\"command\":\"pause\",\"for_secs\":N}} or {{\"command\":\"resume\"}}"
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

async fn answer(request: Request, context: &ControlContext) -> serde_json::Value {
    match request {
        Request::Status => match serde_json::to_value(status(context).await) {
            Ok(status) => serde_json::json!({"ok": true, "status": status}),
            Err(failed) => error("internal", failed.to_string()),
        },
        Request::Pause { for_secs } => {
            context.gate.pause(for_secs.map(Duration::from_secs));
            serde_json::json!({"ok": true})
        }
        Request::Resume => {
            context.gate.resume();
            serde_json::json!({"ok": true})
        }
    }
}

async fn status(context: &ControlContext) -> Status {
    let path = musketeer_protocol::paths::HOST.replace("{id}", &context.host_id.to_string());
    let view = tokio::time::timeout(CREDIT_TIMEOUT, context.api.get_json::<HostDetail>(&path));
    let (host, host_error) = match view.await {
        Ok(Ok(detail)) => (
            Some(HostSummaryView {
                credit: detail.host.credit,
                succeeded: detail.host.succeeded,
                failed: detail.host.failed,
                invalid: detail.host.invalid,
            }),
            None,
        ),
        Ok(Err(failed)) => (None, Some(super::events::cause_chain(&failed))),
        Err(_) => (None, Some("the server did not answer in time".to_owned())),
    };
    let gate = &context.gate;
    Status {
        server: context.api.base_url().to_owned(),
        project: context.project.clone(),
        host_id: context.host_id,
        slots: context.slots,
        suspended: gate.reasons(),
        preferences: preferences_json(&gate.preferences()),
        running: gate.board().running(),
        spooled: gate.board().spooled(),
        host,
        host_error,
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
    if let Some(message) = value.get("message").and_then(|m| m.as_str()) {
        return Err(ControlError::Refused(message.to_owned()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volunteer::gate::GateSetup;
    use crate::volunteer::prefs::PrefsFile;

    fn context(dir: &Path) -> ControlContext {
        let gate = Gate::new(GateSetup {
            data_dir: dir.to_path_buf(),
            overrides: PrefsFile::default(),
            power_supply_dir: dir.join("power"),
            idle: std::sync::Arc::new(crate::volunteer::prefs::Logind),
        })
        .expect("gate");
        ControlContext {
            gate,
            // Nothing listens there: status says the standing could not be read.
            api: ApiClient::new("http://127.0.0.1:9", None).expect("client"),
            host_id: HostId(1),
            project: "test".into(),
            slots: 1,
        }
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
            .gate
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
            (pause, status, bad)
        })
        .await
        .expect("no panic");
        answers.0.expect("pause accepted");
        let status: Status =
            serde_json::from_value(answers.1.expect("status")["status"].clone()).expect("status");
        assert!(status.host.is_none() && status.host_error.is_some());
        assert_eq!(status.preferences["cpu_percent"], 100);
        assert!(matches!(
            status.suspended.as_slice(),
            [Reason::UserPaused {
                until_unix_s: Some(_)
            }]
        ));
        let bad: serde_json::Value = serde_json::from_str(&answers.2).expect("JSON");
        assert_eq!(bad["error"], "bad-request");

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

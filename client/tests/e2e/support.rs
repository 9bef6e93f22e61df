//! A real cluster on loopback: `musketeer-server` and `musketeer join` processes, killed when
//! their guards drop (pass or fail), with conditions waited on under deadlines.
//!
//! `musketeer-server` is another package's binary, which cargo does not build for this test, so
//! [`server_binary`] runs `cargo build -p musketeer-server` once per test process into the same
//! target directory (cargo releases its build lock while tests run; if another build holds it,
//! this waits).

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use musketeer_protocol::{
    BatchId, BatchState, BatchStatus, HostList, ResultRow, ResultsFormat, SubmitBatchRequest,
    SubmitBatchResponse, UnitDetail, UnitId,
};

mod background;
mod balancer;
mod primes;
mod proxy;
mod raw_host;

pub use balancer::Balancer;
pub use primes::{assert_primes_right, primes_quorum_batch};
pub use proxy::Proxy;
pub use raw_host::{Attack, RawHost};

/// How long any one condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(120);

pub fn musketeer() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_musketeer"))
}

/// The `musketeer-server` binary next to `musketeer`, built on first use.
pub fn server_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = musketeer();
            let profile_dir = exe.parent().expect("target/<profile>").to_path_buf();
            let target_dir = profile_dir.parent().expect("target dir").to_path_buf();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut command = Command::new(cargo);
            command
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "musketeer-server",
                    "--bin",
                    "musketeer-server",
                ])
                .arg("--target-dir")
                .arg(&target_dir)
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                command.arg("--release");
            }
            let status = command
                .status()
                .expect("run cargo to build musketeer-server");
            assert!(status.success(), "building musketeer-server failed");
            let server =
                profile_dir.join(format!("musketeer-server{}", std::env::consts::EXE_SUFFIX));
            assert!(
                server.exists(),
                "{} missing after the build",
                server.display()
            );
            server
        })
        .clone()
}

/// Waits for `condition` to return `Some`, polling, failing the test after [`DEADLINE`].
pub fn wait_for<T>(what: &str, mut condition: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = condition() {
            return value;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Output lines of a child, collected by a thread.
#[derive(Clone, Default)]
pub struct Lines {
    lines: Arc<Mutex<Vec<String>>>,
    /// Set once the stream reached its end: every line the child wrote is in `lines`.
    ended: Arc<AtomicBool>,
}

impl Lines {
    fn follow(&self, stream: impl std::io::Read + Send + 'static, echo: &'static str) {
        let lines = self.lines.clone();
        let ended = self.ended.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                eprintln!("{echo}: {line}");
                lines.lock().unwrap().push(line);
            }
            ended.store(true, Ordering::SeqCst);
        });
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Whether the child's end of the stream is closed and every line read.
    fn has_ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    /// JSON events (from `--log-format json`) named `event`.
    pub fn events(&self, event: &str) -> Vec<serde_json::Value> {
        self.snapshot()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == event)
            .collect()
    }
}

/// A child process killed (SIGKILL) and reaped on drop.
pub struct Proc {
    child: Option<Child>,
    pub stdout: Lines,
    #[allow(dead_code, reason = "kept for debugging failed tests")]
    pub stderr: Lines,
}

impl Proc {
    pub fn spawn(mut command: Command, name: &'static str) -> Proc {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn child process");
        let stdout = Lines::default();
        let stderr = Lines::default();
        stdout.follow(child.stdout.take().expect("stdout"), name);
        stderr.follow(child.stderr.take().expect("stderr"), name);
        Proc {
            child: Some(child),
            stdout,
            stderr,
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Waits for the process to exit by itself; its status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("running");
        let status = wait_for("the process to exit", || child.try_wait().ok().flatten());
        self.child = None;
        // The exit can be seen before the reader threads have read the last lines from the
        // pipes; callers read the output next, so wait until both streams are drained.
        wait_for("the process's output to be read", || {
            (self.stdout.has_ended() && self.stderr.has_ended()).then_some(())
        });
        status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Runs `musketeer ARGS`, expecting success; its stdout.
pub fn musketeer_ok(args: &[&str], envs: &[(&str, &str)]) -> String {
    let output = Command::new(musketeer())
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .expect("run musketeer");
    assert!(
        output.status.success(),
        "musketeer {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A project: keys, a server data dir, tokens, and the running server.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub port: u16,
    pub admin: String,
    pub researcher: String,
    pub publisher: String,
    pub server: Proc,
    /// Where the server's store is: `--data-dir DIR` or `--store URL`.
    store: Vec<String>,
    /// Extra `musketeer-server serve` flags, kept across restarts.
    serve_flags: Vec<String>,
}

impl Project {
    /// Generates a key, inits the server store with it, creates tokens, and serves.
    pub fn start() -> Project {
        Project::start_with(&[])
    }

    /// [`Project::start`] with extra `serve` flags, e.g. `--public-dashboard`.
    pub fn start_with(serve_flags: &[&str]) -> Project {
        Project::start_on(None, serve_flags)
    }

    /// [`Project::start`] with the server's store in the PostgreSQL database at `url`.
    pub fn start_on_postgres(url: &str) -> Project {
        Project::start_on(Some(url), &[])
    }

    fn start_on(store_url: Option<&str>, serve_flags: &[&str]) -> Project {
        let dir = tempfile::tempdir().expect("temp dir");
        let keys = dir.path().join("keys");
        musketeer_ok(&["keys", "generate", "--out", path(&keys)], &[]);
        let store = match store_url {
            Some(url) => vec!["--store".to_owned(), url.to_owned()],
            None => vec![
                "--data-dir".to_owned(),
                path(&dir.path().join("server")).to_owned(),
            ],
        };
        let tokens = init_store(&store, &keys.join("musketeer.pub"));
        let port = free_port();
        let mut project = Project {
            url: format!("http://127.0.0.1:{port}"),
            port,
            admin: tokens.admin,
            researcher: tokens.researcher,
            publisher: tokens.publisher,
            server: Proc {
                child: None,
                stdout: Lines::default(),
                stderr: Lines::default(),
            },
            store,
            serve_flags: serve_flags.iter().map(|f| (*f).to_owned()).collect(),
            dir,
        };
        project.restart_server();
        project
    }

    /// (Re)starts the server on the same port and data dir.
    pub fn restart_server(&mut self) {
        self.server.kill();
        let mut command = Command::new(server_binary());
        command
            .arg("serve")
            .args(&self.store)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(&self.serve_flags)
            .env("MUSKETEER_LOG", "warn");
        self.server = Proc::spawn(command, "server");
        let lines = self.server.stdout.clone();
        wait_for("the server to listen", || {
            lines
                .snapshot()
                .iter()
                .any(|l| l.contains("listening on"))
                .then_some(())
        });
    }

    /// Kills the server, deletes its store, and starts a fresh one with the same project key
    /// on the same port (new tokens): an operator starting over.
    pub fn reset_server(&mut self) {
        self.server.kill();
        let data = self.dir.path().join("server");
        std::fs::remove_dir_all(&data).expect("delete the server's store");
        let tokens = init_store(&self.store, &self.keys_dir().join("musketeer.pub"));
        (self.admin, self.researcher, self.publisher) =
            (tokens.admin, tokens.researcher, tokens.publisher);
        self.restart_server();
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    /// Signs `module` as `app` `version` and publishes it with the publisher token; returns the
    /// manifest path.
    pub fn publish(&self, module: &str, app: &str, version: &str, allow: &[String]) -> PathBuf {
        self.publish_signed_by(
            &self.keys_dir().join("musketeer.key"),
            module,
            app,
            version,
            allow,
        )
    }

    /// Like [`Project::publish`], signed with the private key at `key`.
    pub fn publish_signed_by(
        &self,
        key: &Path,
        module: &str,
        app: &str,
        version: &str,
        allow: &[String],
    ) -> PathBuf {
        let manifest = self
            .dir
            .path()
            .join(format!("{app}-{version}.manifest.json"));
        let mut args = vec![
            "sign",
            "--key",
            path(key),
            "--module",
            module,
            "--app",
            app,
            "--version",
            version,
            "--out",
            path(&manifest),
        ];
        for prefix in allow {
            args.extend(["--allow-http", prefix.as_str()]);
        }
        musketeer_ok(&args, &[]);
        let out = musketeer_ok(
            &[
                "publish",
                "--server",
                &self.url,
                "--manifest",
                path(&manifest),
                "--module",
                module,
            ],
            &[("MUSKETEER_TOKEN", &self.publisher)],
        );
        assert!(out.contains("published"), "{out}");
        manifest
    }

    /// A `musketeer join` client with its own data dir under the project dir.
    pub fn join(&self, name: &str, slots: u32) -> Proc {
        self.join_with(name, slots, &[])
    }

    pub fn join_with(&self, name: &str, slots: u32, extra: &[&str]) -> Proc {
        self.join_program(&[musketeer().into()], name, slots, extra)
    }

    /// A `musketeer join` client of this project reaching it at `url` (another server of the
    /// project's database, or a load balancer in front of them).
    pub fn join_at(&self, url: &str, name: &str, slots: u32) -> Proc {
        self.join_program_at(&[musketeer().into()], url, name, slots, &[])
    }

    /// A `musketeer join` client started as `program` (the client binary, possibly behind an
    /// emulator such as `qemu-arm -L SYSROOT`).
    pub fn join_program(
        &self,
        program: &[std::ffi::OsString],
        name: &str,
        slots: u32,
        extra: &[&str],
    ) -> Proc {
        self.join_program_at(program, &self.url, name, slots, extra)
    }

    fn join_program_at(
        &self,
        program: &[std::ffi::OsString],
        url: &str,
        name: &str,
        slots: u32,
        extra: &[&str],
    ) -> Proc {
        let (program, prefix_args) = program.split_first().expect("a program to run");
        let data = self.client_dir(name);
        let mut command = Command::new(program);
        command
            .args(prefix_args)
            .args(["join", url, "--name", name, "--slots", &slots.to_string()])
            .args(["--data-dir", path(&data), "--log-format", "json"])
            .args(["--poll-wait-ms", "2000", "--max-backoff-ms", "1000"])
            .args(extra)
            .env("MUSKETEER_LOG", "warn");
        Proc::spawn(command, "client")
    }

    pub fn client_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join("clients").join(name)
    }

    /// This project's folder in the client data directory `data`.
    pub fn project_dir_in(&self, data: &Path) -> PathBuf {
        data.join("projects")
            .join(format!("127.0.0.1_{}", self.port))
    }

    /// This project's folder in the data directory of client `name`.
    pub fn project_dir(&self, name: &str) -> PathBuf {
        self.project_dir_in(&self.client_dir(name))
    }

    pub fn http(&self) -> Http {
        Http::new(&self.url)
    }

    /// Submits one unit of `app` (its current version, default replication) per JSON input, as
    /// the researcher.
    pub fn submit_json(&self, app: &str, inputs: Vec<serde_json::Value>) -> BatchId {
        let request = SubmitBatchRequest {
            app: app.into(),
            inputs,
            ..SubmitBatchRequest::default()
        };
        self.http().submit(&self.researcher, &request).batch_id
    }
}

/// Waits until `client` has said it is waiting for work (registered and long-polling).
struct Tokens {
    admin: String,
    researcher: String,
    publisher: String,
}

/// `musketeer-server init` of the store `store` names (`--data-dir DIR` or `--store URL`)
/// trusting `key`, plus a researcher and a publisher token.
fn init_store(store: &[String], key: &Path) -> Tokens {
    let server = server_binary();
    let init = Command::new(&server)
        .args(["init", "--project-name", "e2e"])
        .args(store)
        .args(["--trust-key", path(key)])
        .output()
        .expect("run musketeer-server init");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let token = |role: &str| {
        let out = Command::new(&server)
            .args(["token", "create", "--role", role])
            .args(store)
            .output()
            .expect("run musketeer-server token create");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        last_line(&out.stdout)
    };
    Tokens {
        admin: last_line(&init.stdout),
        researcher: token("researcher"),
        publisher: token("publisher"),
    }
}

pub fn wait_idle(client: &Proc) {
    let lines = client.stdout.clone();
    wait_for("the client to wait for work", || {
        (!lines.events("idle").is_empty()).then_some(())
    });
}

/// A blocking HTTP helper for the test's own calls (researcher, admin, harness host).
pub struct Http {
    base: String,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Http {
    pub fn new(base: &str) -> Http {
        Http {
            base: base.to_owned(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
        }
    }

    fn send(&self, request: reqwest::RequestBuilder) -> Result<String, String> {
        self.runtime.block_on(async {
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            let text = response.text().await.map_err(|e| e.to_string())?;
            if status.is_success() {
                Ok(text)
            } else {
                Err(format!("{status}: {text}"))
            }
        })
    }

    pub fn get_text(&self, path: &str, token: &str) -> Result<String, String> {
        self.send(
            self.client
                .get(format!("{}{path}", self.base))
                .bearer_auth(token),
        )
    }

    pub fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
    ) -> Result<T, String> {
        let text = self.get_text(path, token)?;
        serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
    }

    pub fn post<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&str>,
        body: &B,
    ) -> Result<T, String> {
        let mut request = self.client.post(format!("{}{path}", self.base)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let text = self.send(request)?;
        serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
    }

    pub fn submit(&self, token: &str, request: &SubmitBatchRequest) -> SubmitBatchResponse {
        self.post(musketeer_protocol::paths::BATCHES, Some(token), request)
            .expect("submit batch")
    }

    pub fn status(&self, token: &str, id: BatchId) -> Result<BatchStatus, String> {
        self.get(&musketeer_protocol::paths::batch(id), token)
    }

    /// Waits (through server restarts) until the batch is no longer running.
    pub fn wait_finished(&self, token: &str, id: BatchId) -> BatchStatus {
        wait_for("the batch to finish", || {
            self.status(token, id)
                .ok()
                .filter(|s| s.state != BatchState::Running)
        })
    }

    /// Like [`Http::wait_finished`], for batches that take longer than [`DEADLINE`] (the Python
    /// task's first run compiles an 18 MB module).
    pub fn wait_finished_within(
        &self,
        token: &str,
        id: BatchId,
        deadline: Duration,
    ) -> BatchStatus {
        let started = Instant::now();
        loop {
            match self.status(token, id) {
                Ok(status) if status.state != BatchState::Running => return status,
                unfinished => assert!(
                    started.elapsed() < deadline,
                    "batch {id:?} did not finish in {deadline:?}: {unfinished:?}"
                ),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn results(&self, token: &str, id: BatchId) -> Vec<ResultRow> {
        let text = self
            .get_text(
                &musketeer_protocol::paths::batch_results(id, ResultsFormat::Jsonl),
                token,
            )
            .expect("download results");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("result row"))
            .collect()
    }

    /// A unit with its replicas.
    pub fn unit(&self, token: &str, id: UnitId) -> UnitDetail {
        self.get(
            &musketeer_protocol::paths::UNIT.replace("{id}", &id.0.to_string()),
            token,
        )
        .expect("unit detail")
    }

    pub fn hosts(&self, admin: &str) -> HostList {
        self.get(musketeer_protocol::paths::HOSTS, admin)
            .expect("list hosts")
    }
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Number of primes in `from..=to` and the largest, by trial division (test oracle).
pub fn primes_answer(from: u64, to: u64) -> serde_json::Value {
    let is_prime = |n: u64| {
        if n < 2 {
            return false;
        }
        let mut d = 2;
        while d * d <= n {
            if n.is_multiple_of(d) {
                return false;
            }
            d += 1;
        }
        true
    };
    let primes: Vec<u64> = (from..=to).filter(|&n| is_prime(n)).collect();
    serde_json::json!({"count": primes.len(), "last": primes.last()})
}

//! A throwaway PostgreSQL cluster for tests: `initdb` in a temporary directory, `postgres` on a
//! free loopback port (fsync on, but for the shared one below), stopped when the guard drops,
//! pass or fail. PostgreSQL refuses to run as root, so as root (CI, this machine) it runs as the
//! `postgres` user via `setpriv`.
//! Only PostgreSQL's own programs are used, so the client's e2e suite can include this file too.
//!
//! A watchdog (a shell reading a pipe only this process writes) stops each cluster and removes
//! its directory when the test process ends without dropping it: the process-wide
//! [`PgCluster::shared`] one, which lives in a static, or any after a SIGKILL.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long PostgreSQL may take to accept connections after it starts (a busy 2-core box).
const READY_DEADLINE: Duration = Duration::from_secs(60);

/// The settings of a cluster of one test: durable as production (the tests that kill servers
/// and measure throughput use these).
const SETTINGS: &[&str] = &["fsync=on", "max_connections=50"];

/// The settings of [`PgCluster::shared`], which serves every parallel test of the process (each
/// store takes a few connections). Without fsync none of the pass's hundreds of commits waits
/// for the disk; each still waits for PostgreSQL to write its WAL (synchronous_commit), so what
/// a killed server acknowledged survives as with fsync: only an OS crash, which no test makes,
/// could lose it.
#[allow(dead_code)] // As the shared cluster's functions below.
const SHARED_SETTINGS: &[&str] = &["fsync=off", "max_connections=300"];

/// The watchdog, `sh -c WATCHDOG sh <postmaster pid> <directory>`: it waits for EOF on its stdin
/// (the pipe's writing end closes with the test process, however that ends), then stops
/// PostgreSQL at once (SIGQUIT also ends the backends), waits up to 20 s for it to go (SIGKILL
/// after that) and removes the directory. A zombie counts as gone: whoever adopts the orphaned
/// postmaster may never reap it (a container's init). The watchdog ignores the terminal's
/// signals, which reach the whole process group, so that a Ctrl-C of the tests still leaves it
/// to clean up.
const WATCHDOG: &str = r#"trap '' INT HUP TERM
while read -r _; do :; done
kill -QUIT "$1" 2>/dev/null
tries=0
while [ "$tries" -lt 200 ]; do
    case "$(cat "/proc/$1/stat" 2>/dev/null)" in
        "" | *") Z "*) break ;;
    esac
    sleep 0.1
    tries=$((tries + 1))
done
[ "$tries" -lt 200 ] || kill -KILL "$1" 2>/dev/null
rm -rf "$2""#;

/// A running cluster; SIGQUIT (PostgreSQL's immediate stop) and reaped on drop.
pub struct PgCluster {
    bin: PathBuf,
    port: u16,
    child: Child,
    /// Runs [`WATCHDOG`]; its stdin is the pipe whose end tells it the test process is gone.
    watchdog: Child,
    /// Holds the data directory and the socket; removed after the server stops (fields drop
    /// after [`Drop::drop`] ran).
    dir: tempfile::TempDir,
}

/// The directory of PostgreSQL's server programs, or a panic saying what to install.
fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file() && bin.join("postgres").is_file())
        .collect();
    // The newest major version, if several are installed.
    found.sort_by_key(|bin| {
        bin.parent()
            .and_then(|version| version.file_name())
            .and_then(|name| name.to_str())
            .and_then(|name| name.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL tests need /usr/lib/postgresql/<version>/bin/initdb: install Debian's \
             `postgresql` package (apt-get install postgresql); .ci/run does this"
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

impl PgCluster {
    /// initdb and start a cluster; returns once it accepts connections.
    pub fn start() -> PgCluster {
        PgCluster::start_with(SETTINGS)
    }

    /// initdb and start a cluster with `settings` (`name=value`, as `postgres -c` takes them).
    fn start_with(settings: &[&str]) -> PgCluster {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("musketeer-pg-")
            .tempdir()
            .expect("a temporary directory");
        let run_as = is_root().then(|| "postgres".to_owned());
        if let Some(user) = &run_as {
            let chown = Command::new("chown")
                .arg(format!("{user}:"))
                .arg(dir.path())
                .status()
                .expect("run chown");
            assert!(chown.success(), "chown {user} {}", dir.path().display());
        }
        let data = dir.path().join("data");
        let output = run(
            run_as.as_deref(),
            Command::new(bin.join("initdb"))
                .args([
                    "--auth=trust",
                    "--username=postgres",
                    "--encoding=UTF8",
                    "--no-sync",
                ])
                .arg("-D")
                .arg(&data),
        );
        assert_success("initdb", &output);
        let port = free_port();
        let child = command(run_as.as_deref(), &bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string()])
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "synchronous_commit=on",
            ])
            .args(settings.iter().flat_map(|setting| ["-c", setting]))
            .arg("-k")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        let watchdog = Command::new("sh")
            .args(["-c", WATCHDOG, "sh", &child.id().to_string()])
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let watchdog = match watchdog {
            Ok(watchdog) => watchdog,
            Err(error) => {
                let mut child = child;
                let _ = child.kill();
                let _ = child.wait();
                panic!("start the PostgreSQL watchdog (sh): {error}");
            }
        };
        let mut cluster = PgCluster {
            bin,
            port,
            child,
            watchdog,
            dir,
        };
        cluster.wait_ready();
        cluster
    }

    fn wait_ready(&mut self) {
        let end = Instant::now() + READY_DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "postgres exited while starting ({status}); port {} taken?",
                    self.port
                );
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .is_ok_and(|status| status.success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < end,
                "postgres did not accept connections within {READY_DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A new empty database, as a `--store` URL.
    pub fn database(&self) -> String {
        self.database_with(&[])
    }

    /// A new empty database made with more `createdb` options (a collation, say).
    pub fn database_with(&self, options: &[&str]) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let name = format!("musketeer_{}", NEXT.fetch_add(1, Ordering::SeqCst));
        let output = Command::new(self.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(options)
            .arg(&name)
            .output()
            .expect("run createdb");
        assert_success("createdb", &output);
        self.url(&name)
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

/// What the server's `it` suite uses to run on PostgreSQL (`MUSKETEER_TEST_STORE=postgres`); the
/// client's e2e suite and the throughput bench include this file without using it.
#[allow(dead_code)]
impl PgCluster {
    /// The test process's cluster, started on first use and shared by its tests (each takes a
    /// database of its own). It lives in a static, which never drops: the watchdog stops it and
    /// removes its directory when the process exits, pass, fail or kill.
    pub fn shared() -> &'static PgCluster {
        static SHARED: OnceLock<PgCluster> = OnceLock::new();
        SHARED.get_or_init(|| PgCluster::start_with(SHARED_SETTINGS))
    }

    /// Drop the database that `url` (from [`PgCluster::database`]) names, ending its sessions
    /// (a store a test left open, say); best effort, as it runs when a test's fixtures drop.
    pub fn drop_database(&self, url: &str) {
        let Some(name) = url.rsplit('/').next() else {
            return;
        };
        let _ = Command::new(self.bin.join("dropdb"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "--force", "--if-exists", name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// The process id of the postmaster (to check that it is gone).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory holding the data directory and the socket.
    pub fn directory(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // The watchdog first, so that it never signals a pid reaped below (and maybe reused).
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
        // SIGQUIT: the immediate stop, which also ends the backends (SIGKILL of the postmaster
        // would leave them running).
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `program` run as `user` (setpriv execs it, so the child's pid is the program's).
fn command(user: Option<&str>, program: &Path) -> Command {
    match user {
        Some(user) => {
            let mut command = Command::new("setpriv");
            command
                .arg(format!("--reuid={user}"))
                .arg(format!("--regid={user}"))
                .arg("--init-groups")
                .arg("--")
                .arg(program);
            command
        }
        None => Command::new(program),
    }
}

fn run(user: Option<&str>, prepared: &mut Command) -> Output {
    let program = PathBuf::from(prepared.get_program());
    let mut command = command(user, &program);
    command.args(prepared.get_args());
    command.current_dir("/");
    command
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()))
}

fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

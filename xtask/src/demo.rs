//! `cargo xtask demo`: the 2016 crawler cluster, reproduced on loopback.
//!
//! Builds `musketeer` and `musketeer-server` (release), then: generates a dev signing key, creates
//! a project trusting it, serves it on a free port with its store in a temp dir, starts a local
//! TWSE-format feed, joins two volunteers with 2 slots each (the four musketeers), signs and
//! publishes `stock-day` allowed to reach only the feed, submits the 30 stock ids of the original
//! experiment, shows the progress, and prints the table and the wall time.
//!
//! `cargo xtask demo --python` runs the same crawler written in Python (`tasks/stock-day-py`,
//! built with componentize-py) as the app `stock-day-py`, and `--js` the one written in
//! JavaScript (`tasks/stock-day-js`, componentize-js) as `stock-day-js`; the table is the same,
//! byte for byte.
//!
//! Every child process is held by a [`Child`] guard that kills it on drop, so an error stops
//! everything. Ctrl-C in a terminal reaches the whole foreground process group: the server and
//! the volunteers get it too and shut down by themselves.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use musketeer_twse_feed::{COLUMNS, FeedServer, ORIGINAL_STOCK_IDS};

use crate::{cargo, root};

/// How long a child may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub fn run(args: &[String]) -> Result<(), String> {
    let language = match args {
        [] => Language::Rust,
        [flag] if flag == "--python" => Language::Python,
        [flag] if flag == "--js" => Language::JavaScript,
        [unknown, ..] => {
            return Err(format!(
                "`cargo xtask demo` takes only `--python` or `--js` (got {unknown:?})"
            ));
        }
    };
    let release = build_release()?;
    let tools = Tools {
        musketeer: release.musketeer,
        server: release.server,
        crawler: Crawler::of(language),
    };
    let work = TempDir::create("demo")?;
    demo(&tools, work.path())
}

/// The language of the crawler the demo runs (`--python`, `--js`).
#[derive(Clone, Copy)]
enum Language {
    Rust,
    Python,
    JavaScript,
}

/// The release binaries, built with the task modules.
pub(crate) struct ReleaseBinaries {
    pub musketeer: PathBuf,
    pub server: PathBuf,
}

/// Builds the release `musketeer` and `musketeer-server` and the task modules (adding the wasm
/// target first if the toolchain lacks it).
pub(crate) fn build_release() -> Result<ReleaseBinaries, String> {
    crate::toolchain::ensure_targets(&[crate::WASM_TARGET])?;
    step(&format!(
        "Building musketeer, musketeer-server and the task modules (release; {})",
        crate::FIRST_BUILD_NOTE
    ));
    // Not `--quiet`: cargo's own lines show progress, and "Blocking waiting for file lock" when
    // another build holds the target directory.
    cargo(&[
        "build",
        "--release",
        "-p",
        "musketeer-client",
        "-p",
        "musketeer-server",
        "-p",
        "musketeer-task-artifacts",
    ])?;
    let bin = root().join("target").join("release");
    let exe = std::env::consts::EXE_SUFFIX;
    Ok(ReleaseBinaries {
        musketeer: bin.join(format!("musketeer{exe}")),
        server: bin.join(format!("musketeer-server{exe}")),
    })
}

/// A fresh project's researcher and publisher tokens.
pub(crate) struct ProjectTokens {
    pub researcher: String,
    pub publisher: String,
}

/// Creates a project in `data` trusting `trust_key` and makes its researcher and publisher.
pub(crate) fn init_project(
    server: &Path,
    data: &Path,
    name: &str,
    trust_key: &Path,
) -> Result<ProjectTokens, String> {
    output(
        server,
        &[
            "init",
            "--data-dir",
            &s(data),
            "--project-name",
            name,
            "--trust-key",
            &s(trust_key),
        ],
    )?;
    let token = |role: &str| -> Result<String, String> {
        let out = output(
            server,
            &["token", "create", "--data-dir", &s(data), "--role", role],
        )?;
        Ok(out.trim().to_owned())
    };
    Ok(ProjectTokens {
        researcher: token("researcher")?,
        publisher: token("publisher")?,
    })
}

struct Tools {
    musketeer: PathBuf,
    server: PathBuf,
    crawler: Crawler,
}

/// The crawler the demo publishes: the Rust `stock-day`, or `stock-day-py` (`--python`) or
/// `stock-day-js` (`--js`).
struct Crawler {
    app: &'static str,
    module: PathBuf,
    /// `musketeer sign` limit flags beyond the defaults.
    limits: &'static [&'static str],
    /// What the wall time includes beyond the crawl, for the closing line.
    wall_time_note: &'static str,
}

/// The limits of the interpreted crawlers (`tasks/stock-day-py/README.md`,
/// `tasks/stock-day-js/README.md`): the interpreter's heap (~13 MB) fits 64 MiB, a crawl's fuel
/// (~14 M for Python, ~65 M for JavaScript) fits 1 G many times over.
const INTERPRETER_LIMITS: &[&str] = &[
    "--memory",
    "67108864",
    "--fuel",
    "1000000000",
    "--timeout",
    "30",
];

impl Crawler {
    /// Where tasks/artifacts/build.rs puts the modules (xtask does not link that crate, so that
    /// it runs before the wasm target is known to be installed).
    fn of(language: Language) -> Self {
        let modules = root().join("target").join("wasm-tasks");
        match language {
            Language::Rust => Crawler {
                app: "stock-day",
                module: modules
                    .join(crate::WASM_TARGET)
                    .join("release")
                    .join("musketeer_task_stock_day.wasm"),
                limits: &[],
                wall_time_note: "",
            },
            Language::Python => Crawler {
                app: "stock-day-py",
                module: modules
                    .join("python")
                    .join("musketeer_task_stock_day_py.wasm"),
                limits: INTERPRETER_LIMITS,
                wall_time_note: "; this includes each volunteer compiling the 18 MB Python module once",
            },
            Language::JavaScript => Crawler {
                app: "stock-day-js",
                module: modules.join("js").join("musketeer_task_stock_day_js.wasm"),
                limits: INTERPRETER_LIMITS,
                wall_time_note: "; this includes each volunteer compiling the 12 MB JavaScript module once",
            },
        }
    }
}

fn demo(tools: &Tools, work: &Path) -> Result<(), String> {
    step("Generating a dev signing key (an app author's key; the private half never leaves you)");
    let keys = work.join("keys");
    output(&tools.musketeer, &["keys", "generate", "--out", &s(&keys)])?;
    let public = keys.join("musketeer.pub");

    step("Creating the project (embedded store, trusts only that key)");
    let data = work.join("server");
    let ProjectTokens {
        researcher,
        publisher,
    } = init_project(&tools.server, &data, "musketeer demo", &public)?;

    let mut server_cmd = Command::new(&tools.server);
    server_cmd
        .args([
            "serve",
            "--data-dir",
            &s(&data),
            "--listen",
            "127.0.0.1:0",
            "--public-dashboard",
        ])
        .env("MUSKETEER_LOG", "warn");
    let mut server = Child::spawn(server_cmd, "server", false)?;
    let url = server.server_url()?;
    step(&format!("Server up at {url}"));

    let feed = FeedServer::start().map_err(|e| format!("cannot start the local feed: {e}"))?;
    step(&format!(
        "Local TWSE-format feed at {} (synthetic May 2016 answers; nothing reaches the internet)",
        feed.base_url()
    ));

    let app = tools.crawler.app;
    step(&format!(
        "Signing {app} 1.0.0, allowed to reach only {}",
        feed.allow_prefix()
    ));
    let manifest = work.join(format!("{app}.manifest.json"));
    let module = &s(&tools.crawler.module);
    let mut sign = vec![
        "sign".to_owned(),
        "--key".to_owned(),
        s(&keys.join("musketeer.key")),
        "--module".to_owned(),
        module.clone(),
        "--app".to_owned(),
        app.to_owned(),
        "--version".to_owned(),
        "1.0.0".to_owned(),
        "--allow-http".to_owned(),
        feed.allow_prefix(),
        "--out".to_owned(),
        s(&manifest),
    ];
    sign.extend(tools.crawler.limits.iter().map(|flag| (*flag).to_owned()));
    let sign: Vec<&str> = sign.iter().map(String::as_str).collect();
    output(&tools.musketeer, &sign)?;
    let published = output_env(
        &tools.musketeer,
        &[
            "publish",
            "--server",
            &url,
            "--manifest",
            &s(&manifest),
            "--module",
            module,
        ],
        &[("MUSKETEER_TOKEN", &publisher)],
    )?;
    step(published.trim());

    step("Two volunteers join with 2 slots each: the four musketeers");
    let mut volunteers = Vec::new();
    for name in ["musketeer-1", "musketeer-2"] {
        let mut join = Command::new(&tools.musketeer);
        join.args(["join", &url, "--slots", "2", "--name", name])
            .args(["--data-dir", &s(&work.join(name))]);
        let mut child = Child::spawn(join, name, true)?;
        child.wait_line(|l| l.contains("waiting for work"))?;
        volunteers.push(child);
    }

    step("Submitting the 30 stock ids of the original experiment (May 2016)");
    let ids = work.join("stock-ids.txt");
    std::fs::write(&ids, ORIGINAL_STOCK_IDS.join("\n"))
        .map_err(|e| format!("cannot write {}: {e}", ids.display()))?;
    let template = format!(
        r#"{{"stock_id":{{}},"year":2016,"month":5,"source":"{}"}}"#,
        feed.base_url()
    );
    let table = work.join("table.csv");
    let started = Instant::now();
    let status = Command::new(&tools.musketeer)
        .args([
            "submit",
            "--server",
            &url,
            "--app",
            app,
            "--inputs",
            &s(&ids),
        ])
        .args([
            "--input-template",
            &template,
            "--wait",
            "--output",
            &s(&table),
        ])
        .env("MUSKETEER_TOKEN", &researcher)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run musketeer submit: {e}"))?;
    let wall = started.elapsed();
    if !status.success() {
        return Err("musketeer submit failed (see above)".into());
    }

    let csv = std::fs::read_to_string(&table)
        .map_err(|e| format!("cannot read {}: {e}", table.display()))?;
    // The work directory is removed when the demo ends; keep the table where the user can find it.
    let kept_table = root().join("target").join("demo-table.csv");
    std::fs::write(&kept_table, &csv)
        .map_err(|e| format!("cannot write {}: {e}", kept_table.display()))?;
    let rows = parse_csv(&csv);
    let header = rows.first().ok_or("the results are empty")?;
    let index: Vec<usize> = COLUMNS
        .iter()
        .map(|c| {
            header
                .iter()
                .position(|h| h == c)
                .ok_or(format!("column {c} missing from the results"))
        })
        .collect::<Result<_, _>>()?;
    println!();
    println!("{}", COLUMNS.join("\t"));
    for row in &rows[1..] {
        let cells: Vec<&str> = index
            .iter()
            .map(|&i| row.get(i).map_or("", String::as_str))
            .collect();
        println!("{}", cells.join("\t"));
    }
    println!();
    step(&format!(
        "{} rows in {:.1} s wall time (the 2016 Celery cluster: 30 rows in 19.2 s){}",
        rows.len() - 1,
        wall.as_secs_f64(),
        tools.crawler.wall_time_note
    ));
    let shares: Vec<String> = volunteers
        .iter_mut()
        .map(|v| {
            let units = v.count_lines("done in");
            format!("{}: {units} units", v.name)
        })
        .collect();
    step(&format!("Work shares: {}", shares.join(", ")));

    println!();
    if http_ok(&url, "/") {
        println!("Dashboard: {url}/  (open it while a batch runs; it stops with this demo)");
    }
    println!("JSON views (public in this demo): {url}/api/v1/stats  {url}/api/v1/hosts");
    println!();
    println!("What to try next:");
    println!("  * docs/volunteer.md: `musketeer join URL` on another machine (any CPU, any OS).");
    println!(
        "  * docs/researcher.md: `musketeer submit`, `musketeer batch status|results|cancel|delete`;"
    );
    println!(
        "    the CSV of this run ({}) reads straight into pandas.read_csv.",
        kept_table.display()
    );
    println!("  * docs/task-author.md: write a task, `musketeer sign`, `musketeer publish`.");
    println!("  * `cargo test -p musketeer-client --test e2e`: killed clients, a killed server,");
    println!("    a lying host outvoted by quorum, tampered and rolled-back modules refused.");
    println!();
    step("Stopping the volunteers and the server");
    for volunteer in &mut volunteers {
        volunteer.terminate();
    }
    server.terminate();
    Ok(())
}

pub(crate) fn step(text: &str) {
    eprintln!("==> {text}");
}

pub(crate) fn s(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

pub(crate) fn output(program: &Path, args: &[&str]) -> Result<String, String> {
    output_env(program, args, &[])
}

pub(crate) fn output_env(
    program: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!(
            "`{} {}` failed: {}",
            program.display(),
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A child process that is killed when dropped. Its stdout lines arrive on a channel (and are
/// first-contact lines are echoed, indented, when `echo` is set).
pub(crate) struct Child {
    name: String,
    child: Option<std::process::Child>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Child {
    pub(crate) fn spawn(mut command: Command, name: &str, echo: bool) -> Result<Child, String> {
        command.stdout(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // Only the volunteer's first-contact lines (project, pinned key); the progress
                // bar shows the rest.
                if echo && (line.contains("joined") || line.contains("pinned")) {
                    eprintln!("    {line}");
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Child {
            name: name.to_owned(),
            child: Some(child),
            lines: rx,
            seen: Vec::new(),
        })
    }

    /// The first line matching `wanted`, within [`START_TIMEOUT`].
    pub(crate) fn wait_line(&mut self, wanted: impl Fn(&str) -> bool) -> Result<String, String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return Ok(line);
                    }
                }
                Err(_) => {
                    return Err(format!(
                        "{} did not start (see its output above)",
                        self.name
                    ));
                }
            }
        }
    }

    /// The URL a `musketeer-server` child serves, from the line it prints once it listens.
    pub(crate) fn server_url(&mut self) -> Result<String, String> {
        Ok(self
            .wait_line(|l| l.contains("listening on"))?
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_owned())
    }

    /// The process id, while it has not been stopped.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    fn count_lines(&mut self, needle: &str) -> usize {
        self.seen.extend(self.lines.try_iter());
        self.seen.iter().filter(|l| l.contains(needle)).count()
    }

    /// Asks the process to stop (SIGTERM via `kill` on unix), then kills it if it lingers.
    pub(crate) fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        #[cfg(unix)]
        {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A temp directory removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    /// `musketeer-{purpose}-{pid}` in the system's temp dir.
    pub(crate) fn create(purpose: &str) -> Result<TempDir, String> {
        let path = std::env::temp_dir().join(format!("musketeer-{purpose}-{}", std::process::id()));
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(TempDir(path))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether `GET path` answers 200 (std only: xtask keeps its dependencies minimal).
fn http_ok(base: &str, path: &str) -> bool {
    let Some(addr) = base.strip_prefix("http://") else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// RFC 4180 CSV: quoted fields may hold commas, quotes (doubled) and newlines.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::parse_csv;

    #[test]
    fn csv_with_quotes_commas_and_newlines() {
        let rows = parse_csv("a,b,c\r\n1,\"x, \"\"y\"\"\",\"multi\nline\"\n");
        assert_eq!(
            rows,
            vec![vec!["a", "b", "c"], vec!["1", "x, \"y\"", "multi\nline"]]
        );
    }
}

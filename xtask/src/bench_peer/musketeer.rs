//! The musketeer side: a fresh local cluster (server with its durable store in a temp dir on
//! 127.0.0.1, volunteers joined with `musketeer join`), the no-op task signed and published, then
//! the same three measurements as the Celery driver: N units end to end, sequential one-unit
//! round trips through the CLI, and the same through the HTTP API on one kept-alive connection;
//! besides, the CLI process's own start and exit (`--version`), the floor under its round trip.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{cpu, http, percentile_ms};
use crate::demo::{Child, ProjectTokens, TempDir, init_project, output, output_env, s};

/// The binaries and the task module, built by `bench_peer::run`.
pub struct Tools {
    pub musketeer: PathBuf,
    pub server: PathBuf,
    pub noop: PathBuf,
    /// The Python of a venv where musketeer's Python client is installed; None skips its row.
    pub python: Option<PathBuf>,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct MusketeerRun {
    pub units_per_s: f64,
    pub cli_p50_ms: f64,
    pub cli_p99_ms: f64,
    /// `musketeer --version`: the start and exit of the CLI process alone, no request.
    pub start_p50_ms: f64,
    /// `apply_async(x).get()` of the Python client in one warm process (NaN when skipped).
    pub python_p50_ms: f64,
    pub python_p99_ms: f64,
    pub api_p50_ms: f64,
    pub api_p99_ms: f64,
    /// Server + volunteers during the N-unit batch, per unit (ms).
    pub system_cpu_ms_per_unit: f64,
    /// The `musketeer submit --wait` process of that batch, per unit (ms).
    pub client_cpu_ms_per_unit: f64,
}

/// The server's `--max-daily-quota`: far above what one volunteer runs in a bench run.
const MAX_DAILY_QUOTA: &str = "100000000";

/// Longest a batch may take before the bench gives up (a stuck cluster must not hang it).
const BATCH_DEADLINE: Duration = Duration::from_secs(600);

/// Units of the untimed warm-up batch (the volunteers download and compile the module).
const WARMUP_UNITS: usize = 200;

struct Cluster {
    dir: PathBuf,
    url: String,
    researcher: String,
    server: Child,
    volunteers: Vec<Child>,
    /// Last: fields drop in order, so the processes are stopped before their files go.
    _work: TempDir,
}

impl Cluster {
    fn pids(&self) -> Vec<u32> {
        std::iter::once(&self.server)
            .chain(&self.volunteers)
            .filter_map(Child::pid)
            .collect()
    }
}

/// One run: a fresh cluster, the three measurements, then everything stopped.
pub fn run(
    tools: &Tools,
    units: usize,
    round_trips: usize,
    volunteers: u32,
    slots: u32,
) -> Result<MusketeerRun, String> {
    let mut cluster = start(tools, volunteers, slots)?;
    let result = measure(tools, &cluster, units, round_trips);
    for volunteer in &mut cluster.volunteers {
        volunteer.terminate();
    }
    cluster.server.terminate();
    result
}

fn measure(
    tools: &Tools,
    cluster: &Cluster,
    units: usize,
    round_trips: usize,
) -> Result<MusketeerRun, String> {
    let inputs = |name: &str, count: usize| -> Result<PathBuf, String> {
        let path = cluster.dir.join(name);
        let lines: String = (0..count).map(|i| format!("{{\"i\":{i}}}\n")).collect();
        std::fs::write(&path, lines)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    };
    let submit_wait = |inputs: &Path, results: &Path| -> Result<(), String> {
        let mut submit = Command::new(&tools.musketeer)
            .args(["submit", "--server", &cluster.url, "--app", "noop"])
            .args(["--inputs", &s(inputs), "--wait", "--output", &s(results)])
            .env("MUSKETEER_TOKEN", &cluster.researcher)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run musketeer submit: {e}"))?;
        let status = wait_with_deadline(&mut submit, BATCH_DEADLINE)?;
        if !status.success() {
            return Err(format!(
                "`musketeer submit --wait` of {} failed ({status})",
                inputs.display()
            ));
        }
        Ok(())
    };

    let warmup = inputs("warmup.jsonl", WARMUP_UNITS)?;
    let warmup_results = cluster.dir.join("warmup-results.jsonl");
    submit_wait(&warmup, &warmup_results)?;
    count_done(&warmup_results, WARMUP_UNITS)?;

    eprintln!("    musketeer | {units} no-op units: submit --wait --output results.jsonl");
    let batch = inputs("units.jsonl", units)?;
    let results = cluster.dir.join("results.jsonl");
    let pids = cluster.pids();
    let system_before = cpu::ticks_of(&pids);
    let client_before = cpu::waited_children_ticks();
    let started = Instant::now();
    submit_wait(&batch, &results)?;
    let wall = started.elapsed().as_secs_f64();
    let system_ticks = cpu::ticks_of(&pids).saturating_sub(system_before);
    let client_ticks = cpu::waited_children_ticks().saturating_sub(client_before);
    count_done(&results, units)?;
    let units_per_s = units as f64 / wall;
    let per_unit = |ticks: u64| ticks as f64 * 1000.0 / cpu::ticks_per_second() / units as f64;
    eprintln!("    musketeer | {units_per_s:.0} units/s ({wall:.2} s)");

    eprintln!("    musketeer | {round_trips} round trips of one unit through `submit --wait`");
    let one = inputs("one.jsonl", 1)?;
    let mut cli = Vec::with_capacity(round_trips);
    for _ in 0..round_trips {
        let started = Instant::now();
        let out = Command::new(&tools.musketeer)
            .args(["submit", "--server", &cluster.url, "--app", "noop"])
            .args(["--inputs", &s(&one), "--wait"])
            .env("MUSKETEER_TOKEN", &cluster.researcher)
            .stderr(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run musketeer submit: {e}"))?;
        cli.push(started.elapsed());
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !stdout.contains(r#""state":"done""#) {
            return Err(format!(
                "a one-unit `submit --wait` did not return its result ({}): {stdout}",
                out.status
            ));
        }
    }

    eprintln!("    musketeer | {round_trips} starts and exits of the CLI alone (--version)");
    let mut start = Vec::with_capacity(round_trips);
    for _ in 0..round_trips {
        let started = Instant::now();
        let status = Command::new(&tools.musketeer)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run musketeer --version: {e}"))?;
        start.push(started.elapsed());
        if !status.success() {
            return Err(format!("`musketeer --version` failed ({status})"));
        }
    }

    eprintln!("    musketeer | {round_trips} round trips of one unit through the HTTP API");
    let mut connection = http::Connection::open(&cluster.url, &cluster.researcher)?;
    let mut api = Vec::with_capacity(round_trips);
    for i in 0..round_trips {
        let started = Instant::now();
        api_round_trip(&mut connection, i)?;
        api.push(started.elapsed());
    }

    let mut python = match &tools.python {
        Some(python) => {
            eprintln!("    musketeer | {round_trips} round trips through the Python client");
            python_round_trips(python, cluster, round_trips)?
        }
        None => Vec::new(),
    };

    Ok(MusketeerRun {
        units_per_s,
        cli_p50_ms: percentile_ms(&mut cli, 50.0),
        cli_p99_ms: percentile_ms(&mut cli, 99.0),
        start_p50_ms: percentile_ms(&mut start, 50.0),
        python_p50_ms: percentile_ms(&mut python, 50.0),
        python_p99_ms: percentile_ms(&mut python, 99.0),
        api_p50_ms: percentile_ms(&mut api, 50.0),
        api_p99_ms: percentile_ms(&mut api, 99.0),
        system_cpu_ms_per_unit: per_unit(system_ticks),
        client_cpu_ms_per_unit: per_unit(client_ticks),
    })
}

/// `python_rtt.py` run by `python` against the cluster: its round trip times.
fn python_round_trips(
    python: &Path,
    cluster: &Cluster,
    round_trips: usize,
) -> Result<Vec<Duration>, String> {
    let out = Command::new(python)
        .args(["-c", include_str!("python_rtt.py")])
        .args([&cluster.url, &cluster.researcher, &round_trips.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "the Python client's round trips failed ({})",
            out.status
        ));
    }
    let times: Vec<f64> = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "the Python client's round trips printed no list of times ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    Ok(times
        .into_iter()
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .collect())
}

/// Waits for `child` to exit, killing it when `limit` passes first.
fn wait_with_deadline(
    child: &mut std::process::Child,
    limit: Duration,
) -> Result<ExitStatus, String> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() < deadline => {
                // Checked every 10 ms: under 0.1 % of a 10,000-unit batch's wall time.
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "a batch took over {} s: the cluster is stuck or far too slow for this bench",
                    limit.as_secs()
                ));
            }
            Err(e) => return Err(format!("cannot wait for musketeer submit: {e}")),
        }
    }
}

/// Submit one unit, long-poll its batch until finished, download its result and check it: the
/// shape of Celery's `apply_async((i,)).get()`.
fn api_round_trip(connection: &mut http::Connection, i: usize) -> Result<(), String> {
    let body = format!(r#"{{"app":"noop","inputs":[{{"rtt":{i}}}]}}"#);
    let answer = expect_json(
        connection.request("POST", "/api/v1/batches", Some(&body))?,
        201,
    )?;
    let batch = answer["batch_id"]
        .as_u64()
        .ok_or_else(|| format!("no batch_id in the submit answer: {answer}"))?;
    loop {
        let status = expect_json(
            connection.request(
                "GET",
                &format!("/api/v1/batches/{batch}?wait_ms=30000"),
                None,
            )?,
            200,
        )?;
        match status["state"].as_str() {
            Some("finished") => break,
            Some("running") => continue,
            _ => return Err(format!("batch {batch} did not finish: {status}")),
        }
    }
    let results = expect_json(
        connection.request("GET", &format!("/api/v1/batches/{batch}/results"), None)?,
        200,
    )?;
    if results["state"] != "done" || results["output"]["rtt"] != i {
        return Err(format!(
            "batch {batch}'s result is not its input back: {results}"
        ));
    }
    Ok(())
}

fn expect_json((status, body): (u16, Vec<u8>), wanted: u16) -> Result<serde_json::Value, String> {
    let text = String::from_utf8_lossy(&body);
    if status != wanted {
        return Err(format!("HTTP {status} (expected {wanted}): {text}"));
    }
    serde_json::from_slice(&body).map_err(|e| format!("not one JSON value ({e}): {text}"))
}

/// Checks that a results file holds `expected` rows, every one done.
fn count_done(results: &Path, expected: usize) -> Result<(), String> {
    let text = std::fs::read_to_string(results)
        .map_err(|e| format!("cannot read {}: {e}", results.display()))?;
    let rows = text.lines().filter(|line| !line.is_empty()).count();
    let done = text
        .lines()
        .filter(|line| line.contains(r#""state":"done""#))
        .count();
    if rows != expected || done != expected {
        return Err(format!(
            "{}: {rows} rows, {done} done; expected {expected} done",
            results.display()
        ));
    }
    Ok(())
}

/// Where a child's log goes: the server logs at its default level (info), as an operator runs
/// it, but not onto the bench's table.
fn log_file(dir: &Path, name: &str) -> Result<std::fs::File, String> {
    let path = dir.join(format!("{name}.log"));
    std::fs::File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

fn start(tools: &Tools, volunteers: u32, slots: u32) -> Result<Cluster, String> {
    let work = TempDir::create("bench-peer")?;
    let dir = work.path().to_path_buf();
    let keys = dir.join("keys");
    output(&tools.musketeer, &["keys", "generate", "--out", &s(&keys)])?;
    let data = dir.join("server");
    let ProjectTokens {
        researcher,
        publisher,
    } = init_project(
        &tools.server,
        &data,
        "bench-peer",
        &keys.join("musketeer.pub"),
    )?;

    let mut serve = Command::new(&tools.server);
    serve
        .args(["serve", "--data-dir", &s(&data), "--listen", "127.0.0.1:0"])
        // As measured in docs/benchmarks.md: then, the default daily quota (10,000 results per
        // host) stopped one volunteer mid-batch; validated results now give their fetch back.
        // Kept so that the figures are reproduced with the same settings.
        .args(["--max-daily-quota", MAX_DAILY_QUOTA])
        .stderr(log_file(&dir, "server")?);
    let mut server = Child::spawn(serve, "server", false)?;
    let url = server.server_url()?;

    let manifest = dir.join("noop.manifest.json");
    let module = s(&tools.noop);
    output(
        &tools.musketeer,
        &[
            "sign",
            "--key",
            &s(&keys.join("musketeer.key")),
            "--module",
            &module,
            "--app",
            "noop",
            "--version",
            "1.0.0",
            "--out",
            &s(&manifest),
        ],
    )?;
    output_env(
        &tools.musketeer,
        &[
            "publish",
            "--server",
            &url,
            "--manifest",
            &s(&manifest),
            "--module",
            &module,
        ],
        &[("MUSKETEER_TOKEN", &publisher)],
    )?;

    let slots_each = (slots / volunteers).max(1).to_string();
    let mut joined = Vec::new();
    for index in 1..=volunteers {
        let name = format!("volunteer-{index}");
        let mut join = Command::new(&tools.musketeer);
        join.args(["join", &url, "--slots", &slots_each, "--name", &name])
            .args(["--data-dir", &s(&dir.join(&name))])
            .stderr(log_file(&dir, &name)?);
        let mut child = Child::spawn(join, &name, false)?;
        child.wait_line(|line| line.contains("waiting for work"))?;
        joined.push(child);
    }
    Ok(Cluster {
        dir,
        url,
        researcher,
        server,
        volunteers: joined,
        _work: work,
    })
}

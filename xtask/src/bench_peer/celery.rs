//! The Celery + Redis side: runs the peer's own `run.sh` (it installs what is missing, starts
//! redis-server and the workers, runs its driver and stops everything by PID) and reads its
//! figures from the JSON line it prints last. CPU is read from /proc while it runs: at the
//! driver's progress lines that open and close the no-op throughput phase, the CPU of redis and
//! the workers (the "system") and of the driver (the client) is sampled.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use super::cpu;

/// What one run of the peer measured.
#[derive(Debug, Clone, PartialEq)]
pub struct CeleryRun {
    pub tasks_per_s: f64,
    pub round_trip_p50_ms: f64,
    pub round_trip_p99_ms: f64,
    /// The first round trip after the bulk phase (the result backend's deferred backlog).
    pub settle_ms: f64,
    pub versions: String,
    /// redis-server + worker processes during the no-op phase, per task (ms).
    pub system_cpu_ms_per_task: Option<f64>,
    /// The driver (apply_async + get) during the no-op phase, per task (ms).
    pub client_cpu_ms_per_task: Option<f64>,
}

/// The driver's stderr line just before the no-op phase starts ("warmup: first round trip ...").
const PHASE_START: &str = "warmup: first round trip";
/// Its line as the no-op phase ends ("noop: n=10000 submit=... wall=...").
const PHASE_END: &str = "noop: n=";

/// CPU ticks of (system, client) processes under run.sh at one instant.
fn sample(script_pid: u32) -> (u64, u64) {
    let mut system = 0;
    let mut client = 0;
    for pid in cpu::descendants(script_pid) {
        let ticks = cpu::ticks_of(&[pid]);
        let command = cpu::command_line(pid);
        if command.contains("driver.py") {
            client += ticks;
        } else if command.contains("redis-server") || command.contains("celery") {
            system += ticks;
        }
    }
    (system, client)
}

/// Runs `dir/run.sh` with `tasks` no-op tasks, `round_trips` sequential round trips and
/// `slots` worker slots (2 workers × slots/2 when even, as the peer's README shape).
pub fn run(dir: &Path, tasks: usize, round_trips: usize, slots: u32) -> Result<CeleryRun, String> {
    let script = dir.join("run.sh");
    let (workers, concurrency) = if slots.is_multiple_of(2) {
        (2, slots / 2)
    } else {
        (1, slots)
    };
    let mut child = Command::new(&script)
        .env("N", tasks.to_string())
        .env("RTT", round_trips.to_string())
        .env("WORKERS", workers.to_string())
        .env("CONCURRENCY", concurrency.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let script_pid = child.id();
    let stdout = child.stdout.take().ok_or("no stdout from run.sh")?;
    let stdout_reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let mut phase_start = None;
    let mut phase_end = None;
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with(PHASE_START) && phase_start.is_none() {
                phase_start = Some(sample(script_pid));
            } else if line.starts_with(PHASE_END) && phase_end.is_none() {
                phase_end = Some(sample(script_pid));
            }
            eprintln!("    celery | {line}");
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for run.sh: {e}"))?;
    let stdout_lines = stdout_reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!(
            "{} failed ({status}); its log is above and in /tmp/celery-peer-bench/",
            script.display()
        ));
    }
    let mut figures = parse_last_json_line(&stdout_lines)?;
    if let (Some(start), Some(end)) = (phase_start, phase_end) {
        let per_task = |ticks: u64| cpu_ms(ticks) / tasks as f64;
        figures.system_cpu_ms_per_task = Some(per_task(end.0.saturating_sub(start.0)));
        figures.client_cpu_ms_per_task = Some(per_task(end.1.saturating_sub(start.1)));
    } else {
        eprintln!(
            "    (the driver's phase lines were not seen; Celery's CPU per task is not measured)"
        );
    }
    Ok(figures)
}

fn cpu_ms(ticks: u64) -> f64 {
    ticks as f64 * 1000.0 / cpu::ticks_per_second()
}

/// The figures from run.sh's stdout: its last line is one JSON object.
pub fn parse_last_json_line(lines: &[String]) -> Result<CeleryRun, String> {
    let last = lines
        .iter()
        .rev()
        .find(|line| !line.trim().is_empty())
        .ok_or("run.sh printed nothing on stdout (expected one JSON line)")?;
    let json: serde_json::Value = serde_json::from_str(last)
        .map_err(|e| format!("run.sh's last line is not JSON ({e}): {last}"))?;
    let number = |key: &str| -> Result<f64, String> {
        json.get(key)
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| format!("run.sh's JSON has no number {key:?}: {last}"))
    };
    let errors = number("errors")?;
    if errors != 0.0 {
        return Err(format!("Celery reported {errors} errors: {last}"));
    }
    let text = |key: &str| json.get(key).and_then(|v| v.as_str()).unwrap_or("?");
    Ok(CeleryRun {
        tasks_per_s: number("noop_tasks_per_s")?,
        round_trip_p50_ms: number("rtt_p50_ms")?,
        round_trip_p99_ms: number("rtt_p99_ms")?,
        settle_ms: number("noop_settle_ms")?,
        versions: format!(
            "celery {}, redis {}, python {}",
            text("celery"),
            text("redis"),
            text("python")
        ),
        system_cpu_ms_per_task: None,
        client_cpu_ms_per_task: None,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_last_json_line;

    /// A line in the shape run.sh prints (celery 5.7.0 on this machine; figures from its README).
    const CAPTURED: &str = r#"{"peer": "celery", "celery": "5.7.0", "kombu": "5.7.0", "redis_py": "8.1.0", "redis": "7.0.15", "python": "3.11.7", "workers": 2, "concurrency": 2, "n": 10000, "spin_n": 20000, "noop_submit_s": 12.34, "noop_wall_s": 15.95, "noop_tasks_per_s": 627.0, "noop_settle_ms": 5320.4, "spin_submit_s": 16.31, "spin_wall_s": 23.63, "spin_tasks_per_s": 423.1, "spin_settle_ms": 5720.0, "rtt_n": 200, "rtt_p50_ms": 2.59, "rtt_p99_ms": 6.98, "errors": 0}"#;

    #[test]
    fn figures_from_the_last_line() {
        let lines = vec!["progress".to_owned(), CAPTURED.to_owned(), String::new()];
        let run = parse_last_json_line(&lines).expect("parses");
        assert_eq!(run.tasks_per_s, 627.0);
        assert_eq!(run.round_trip_p50_ms, 2.59);
        assert_eq!(run.round_trip_p99_ms, 6.98);
        assert_eq!(run.settle_ms, 5320.4);
        assert_eq!(run.versions, "celery 5.7.0, redis 7.0.15, python 3.11.7");
    }

    #[test]
    fn errors_or_missing_figures_are_refused() {
        let with_errors = CAPTURED.replace(r#""errors": 0"#, r#""errors": 3"#);
        let message = parse_last_json_line(&[with_errors]).expect_err("errors refused");
        assert!(message.contains("3 errors"), "{message}");
        let without_rtt = CAPTURED.replace("rtt_p50_ms", "rtt_median");
        let message = parse_last_json_line(&[without_rtt]).expect_err("missing refused");
        assert!(message.contains("rtt_p50_ms"), "{message}");
        assert!(parse_last_json_line(&[]).is_err());
        assert!(parse_last_json_line(&["not json".to_owned()]).is_err());
    }
}

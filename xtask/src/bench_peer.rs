//! `cargo xtask bench-peer`: musketeer and Celery + Redis side by side, in one run (issue 13).
//!
//! Builds `musketeer`, `musketeer-server` and the task modules (release), then alternates, run
//! after run, between the peer's own benchmark (`../shared/peers/celery/run.sh`: 2 prefork
//! workers with Redis as broker and result backend) and musketeer on the same shape (a fresh
//! server, volunteers with the same number of slots in total). Each side measures: N no-op
//! units from submit until every result is in the researcher's hands, sequential one-unit round
//! trips on the idle cluster (musketeer: through `musketeer submit --wait`, through the HTTP
//! API and through the Python client's Celery-style `apply_async(x).get()`), and CPU per unit of the system (server + volunteers; redis + workers) and of the
//! client that submitted. Prints the medians over the runs and their ratios, and writes every
//! figure to target/bench-peer/.
//!
//! Children are held by guards that kill them on error; Ctrl-C reaches the whole foreground
//! process group, where the server, the volunteers and run.sh stop by themselves.

mod celery;
mod cpu;
mod http;
mod musketeer;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::root;
use celery::CeleryRun;
use musketeer::MusketeerRun;

const USAGE: &str = "usage: cargo xtask bench-peer [--units N] [--runs R] [--slots S] \
                     [--volunteers V] [--round-trips K] [--celery-dir DIR] [--skip-celery]";

#[derive(Debug, PartialEq)]
struct Options {
    units: usize,
    runs: usize,
    slots: u32,
    volunteers: u32,
    round_trips: usize,
    celery_dir: PathBuf,
    skip_celery: bool,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        units: 10_000,
        runs: 3,
        slots: 4,
        volunteers: 1,
        round_trips: 200,
        celery_dir: root()
            .join("..")
            .join("shared")
            .join("peers")
            .join("celery"),
        skip_celery: false,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        if flag == "--skip-celery" {
            options.skip_celery = true;
            continue;
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = || -> Result<usize, String> {
            value
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{flag} takes a positive number, not {value:?}\n{USAGE}"))
        };
        match flag.as_str() {
            "--units" => options.units = number()?,
            "--runs" => options.runs = number()?,
            "--round-trips" => options.round_trips = number()?,
            "--slots" => options.slots = u32::try_from(number()?).map_err(|e| e.to_string())?,
            "--volunteers" => {
                options.volunteers = u32::try_from(number()?).map_err(|e| e.to_string())?;
            }
            "--celery-dir" => options.celery_dir = PathBuf::from(value),
            _ => return Err(format!("unknown option {flag:?}\n{USAGE}")),
        }
    }
    if !options.slots.is_multiple_of(options.volunteers) {
        return Err(format!(
            "--slots {} cannot be shared evenly by --volunteers {}",
            options.slots, options.volunteers
        ));
    }
    Ok(options)
}

pub fn run(args: &[String]) -> Result<(), String> {
    let options = parse_options(args)?;
    let celery_script = options.celery_dir.join("run.sh");
    let with_celery = !options.skip_celery && celery_script.is_file();
    if !options.skip_celery && !with_celery {
        eprintln!(
            "==> Celery is skipped: {} does not exist (pass --celery-dir DIR where the peer's \
             run.sh is, or --skip-celery to measure musketeer alone)",
            celery_script.display()
        );
    }
    let release = crate::demo::build_release()?;
    let target = root().join("target");
    let tools = musketeer::Tools {
        musketeer: release.musketeer,
        server: release.server,
        noop: target
            .join("wasm-tasks")
            .join(crate::WASM_TARGET)
            .join("release")
            .join("musketeer_task_noop.wasm"),
        python: python_client(),
    };

    let mut musketeer_runs = Vec::new();
    let mut celery_runs = Vec::new();
    for run in 1..=options.runs {
        // Alternate which system goes first, so neither always gets the quieter half.
        let celery_first = run % 2 == 1;
        for celery_turn in [celery_first, !celery_first] {
            if celery_turn && with_celery {
                crate::demo::step(&format!("Run {run}/{}: Celery + Redis", options.runs));
                let figures = celery::run(
                    &options.celery_dir,
                    options.units,
                    options.round_trips,
                    options.slots,
                )?;
                eprintln!("    celery | {figures:?}");
                celery_runs.push(figures);
            } else if !celery_turn {
                crate::demo::step(&format!("Run {run}/{}: musketeer", options.runs));
                let figures = musketeer::run(
                    &tools,
                    options.units,
                    options.round_trips,
                    options.volunteers,
                    options.slots,
                )?;
                eprintln!("    musketeer | {figures:?}");
                musketeer_runs.push(figures);
            }
        }
    }

    let report = Report::new(&options, &musketeer_runs, &celery_runs);
    println!("{}", report.table());
    let saved = save(&options, &musketeer_runs, &celery_runs, &report)?;
    crate::demo::step(&format!("Every figure: {}", saved.display()));
    Ok(())
}

/// The Python of target/python-venv with musketeer's Python client installed from python/
/// (as `cargo xtask python` sets it up), or None, said why, to skip the Python client's row.
fn python_client() -> Option<PathBuf> {
    match crate::python_client_venv("python3", "") {
        Ok(bin) => Some(bin.join("python")),
        Err(error) => {
            eprintln!(
                "==> the Python client's round trips are skipped (Python 3.11+ with venv and pip \
                 is needed): {error}"
            );
            None
        }
    }
}

/// Nearest-rank percentile (as the Celery driver computes it), in milliseconds.
pub fn percentile_ms(samples: &mut [Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort();
    let rank = ((p / 100.0 * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1].as_secs_f64() * 1000.0
}

/// The median of some runs' values (the lower middle one of an even count), NaN if none.
fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[(values.len() - 1) / 2]
}

/// Medians of both systems, one row per measurement.
struct Report {
    rows: Vec<Row>,
    heading: String,
}

struct Row {
    name: &'static str,
    musketeer: f64,
    celery: f64,
}

impl Report {
    fn new(options: &Options, musketeer: &[MusketeerRun], celery: &[CeleryRun]) -> Report {
        let m = |f: fn(&MusketeerRun) -> f64| median(musketeer.iter().map(f).collect());
        let c = |f: fn(&CeleryRun) -> f64| median(celery.iter().map(f).collect());
        let c_opt =
            |f: fn(&CeleryRun) -> Option<f64>| median(celery.iter().filter_map(f).collect());
        let rows = vec![
            Row {
                name: "no-op units/s, end to end",
                musketeer: m(|r| r.units_per_s),
                celery: c(|r| r.tasks_per_s),
            },
            Row {
                name: "round trip p50, CLI / .get() (ms)",
                musketeer: m(|r| r.cli_p50_ms),
                celery: c(|r| r.round_trip_p50_ms),
            },
            Row {
                name: "round trip p99, CLI / .get() (ms)",
                musketeer: m(|r| r.cli_p99_ms),
                celery: c(|r| r.round_trip_p99_ms),
            },
            Row {
                name: "round trip p50, Python / .get() (ms)",
                musketeer: m(|r| r.python_p50_ms),
                celery: c(|r| r.round_trip_p50_ms),
            },
            Row {
                name: "round trip p99, Python / .get() (ms)",
                musketeer: m(|r| r.python_p99_ms),
                celery: c(|r| r.round_trip_p99_ms),
            },
            Row {
                name: "CLI start + exit alone p50 (ms)",
                musketeer: m(|r| r.start_p50_ms),
                celery: f64::NAN,
            },
            Row {
                name: "round trip p50, API / .get() (ms)",
                musketeer: m(|r| r.api_p50_ms),
                celery: c(|r| r.round_trip_p50_ms),
            },
            Row {
                name: "round trip p99, API / .get() (ms)",
                musketeer: m(|r| r.api_p99_ms),
                celery: c(|r| r.round_trip_p99_ms),
            },
            Row {
                name: "CPU ms/unit, system",
                musketeer: m(|r| r.system_cpu_ms_per_unit),
                celery: c_opt(|r| r.system_cpu_ms_per_task),
            },
            Row {
                name: "CPU ms/unit, submitting client",
                musketeer: m(|r| r.client_cpu_ms_per_unit),
                celery: c_opt(|r| r.client_cpu_ms_per_task),
            },
        ];
        let heading = format!(
            "{} no-op units, {} slots (musketeer: {} volunteer(s) × {}; Celery: run.sh's \
             workers), medians of {} run(s) each; system = server + volunteers vs \
             redis-server + workers",
            options.units,
            options.slots,
            options.volunteers,
            options.slots / options.volunteers,
            musketeer.len().max(celery.len()),
        );
        Report { rows, heading }
    }

    fn table(&self) -> String {
        let mut out = format!(
            "\n{}\n\n{:<36} {:>12} {:>12} {:>18}\n",
            self.heading, "", "musketeer", "celery+redis", "musketeer/celery"
        );
        for row in &self.rows {
            out.push_str(&format!(
                "{:<36} {:>12} {:>12} {:>18}\n",
                row.name,
                cell(row.musketeer, ""),
                cell(row.celery, ""),
                cell(row.musketeer / row.celery, "x")
            ));
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        self.rows
            .iter()
            .map(|row| {
                (
                    row.name.to_owned(),
                    serde_json::json!({
                        "musketeer": finite(row.musketeer),
                        "celery": finite(row.celery),
                        "musketeer_over_celery": finite(row.musketeer / row.celery),
                    }),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

/// A figure with three decimals, or "-" when it was not measured (Celery skipped).
fn cell(value: f64, unit: &str) -> String {
    if value.is_finite() {
        format!("{value:.3}{unit}")
    } else {
        "-".to_owned()
    }
}

/// JSON has no NaN: a figure that was not measured is null.
fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

/// Writes every run and the medians to target/bench-peer/bench-peer-<unix time>.json.
fn save(
    options: &Options,
    musketeer: &[MusketeerRun],
    celery: &[CeleryRun],
    report: &Report,
) -> Result<PathBuf, String> {
    let dir = root().join("target").join("bench-peer");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let json = serde_json::json!({
        "unix_time": now,
        "load_average_at_end": load.trim(),
        "units": options.units,
        "slots": options.slots,
        "volunteers": options.volunteers,
        "round_trips": options.round_trips,
        "medians": report.json(),
        "musketeer_runs": musketeer.iter().map(|r| serde_json::json!({
            "units_per_s": r.units_per_s,
            "cli_p50_ms": r.cli_p50_ms, "cli_p99_ms": r.cli_p99_ms,
            "start_p50_ms": r.start_p50_ms,
            "python_p50_ms": finite(r.python_p50_ms), "python_p99_ms": finite(r.python_p99_ms),
            "api_p50_ms": r.api_p50_ms, "api_p99_ms": r.api_p99_ms,
            "system_cpu_ms_per_unit": r.system_cpu_ms_per_unit,
            "client_cpu_ms_per_unit": r.client_cpu_ms_per_unit,
        })).collect::<Vec<_>>(),
        "celery_runs": celery.iter().map(|r| serde_json::json!({
            "versions": r.versions,
            "tasks_per_s": r.tasks_per_s,
            "settle_ms": r.settle_ms,
            "rtt_p50_ms": r.round_trip_p50_ms, "rtt_p99_ms": r.round_trip_p99_ms,
            "system_cpu_ms_per_task": r.system_cpu_ms_per_task,
            "client_cpu_ms_per_task": r.client_cpu_ms_per_task,
        })).collect::<Vec<_>>(),
    });
    let path = dir.join(format!("bench-peer-{now}.json"));
    std::fs::write(&path, format!("{json:#}\n"))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{median, parse_options, percentile_ms};

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn options_and_their_errors() {
        let options = parse_options(&args("--units 500 --slots 4 --volunteers 2 --skip-celery"))
            .expect("valid");
        assert_eq!(
            (options.units, options.slots, options.volunteers),
            (500, 4, 2)
        );
        assert!(options.skip_celery);
        assert_eq!(options.runs, 3);
        for bad in [
            "--units",
            "--units 0",
            "--units many",
            "--slots 3 --volunteers 2",
            "--x 1",
        ] {
            assert!(parse_options(&args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn nearest_rank_percentiles_and_medians() {
        let mut samples: Vec<Duration> = (1..=200).rev().map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&mut samples, 50.0), 100.0);
        assert_eq!(percentile_ms(&mut samples, 99.0), 198.0);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert!(median(Vec::new()).is_nan());
    }

    #[test]
    fn unmeasured_cells_are_dashes() {
        assert_eq!(super::cell(1.61234, "x"), "1.612x");
        assert_eq!(super::cell(f64::NAN, "x"), "-");
        assert_eq!(super::cell(1.0 / 0.0, ""), "-");
    }
}

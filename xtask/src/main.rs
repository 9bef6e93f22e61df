//! Developer workflows, run as `cargo xtask <command>`:
//!
//! - `cargo xtask test`: format check, clippy, and every test of the workspace and of the task
//!   modules, the cross-architecture proof included, and the server's `it` suite a second time
//!   on PostgreSQL (what CI runs).
//! - `cargo xtask cross`: only the cross-architecture proof (ARM clients under qemu-user).
//! - `cargo xtask demo [--python|--js]`: the local demo (see README); `--python` runs the Python
//!   crawler, `--js` the JavaScript one.
//! - `cargo xtask setup`: adds the pinned toolchain's missing targets and builds the task modules
//!   (the first step of `demo` and `test`; CI runs it alone on a toolchain without targets).
//! - `cargo xtask python`: only the Python client's checks and tests (the last step of `test`).
//! - `cargo xtask api-fuzz`: only the API fuzzing against the server's OpenAPI document
//!   (schemathesis; a step of `test`).
//! - `cargo xtask bench-peer`: musketeer and Celery + Redis side by side (docs/benchmarks.md).

mod api_fuzz;
mod bench_peer;
mod cross;
mod demo;
mod toolchain;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("demo") => demo::run(&args[1..]),
        Some("cross") => cross::run(&args[1..]),
        Some("setup") => setup(),
        Some("python") => python_tests(true),
        Some("api-fuzz") => api_fuzz::run_fuzz(true),
        Some("bench-peer") => bench_peer::run(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <test|cross|demo|setup|python|api-fuzz|bench-peer>");
            eprintln!("  test   format check, clippy and all tests (what CI runs)");
            eprintln!("  cross  the cross-architecture test only (ARM clients under qemu-user)");
            eprintln!("  demo   the local demo: crawl 30 stocks from a local TWSE-format feed");
            eprintln!(
                "         (--python: with the crawler written in Python, tasks/stock-day-py;\n\
                 \x20         --js: in JavaScript, tasks/stock-day-js)"
            );
            eprintln!(
                "  setup  add the pinned toolchain's missing targets, build the task modules"
            );
            eprintln!("  python the Python client's checks and tests only (the last step of test)");
            eprintln!(
                "  api-fuzz  schemathesis against the server's OpenAPI document only (a step of test)"
            );
            eprintln!(
                "  bench-peer  musketeer and Celery + Redis side by side (docs/benchmarks.md)"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The repository root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs a cargo command in the repo root, failing with the command line if it fails.
pub fn cargo(args: &[&str]) -> Result<(), String> {
    cargo_with_env(&[], args)
}

/// [`cargo`] with environment variables set (`NAME`, value).
pub fn cargo_with_env(env: &[(&str, &str)], args: &[&str]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let shown: Vec<String> = env
        .iter()
        .map(|(name, value)| format!("{name}={value} "))
        .collect();
    eprintln!("$ {}cargo {}", shown.concat(), args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

/// The wasm target every build of the workspace needs (the task modules).
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// Said before a build that may be the first: otherwise minutes pass in silence on 2 cores.
pub const FIRST_BUILD_NOTE: &str =
    "the first build takes about 10 minutes on 2 cores; later ones take seconds";

fn setup() -> Result<(), String> {
    toolchain::ensure_targets(&[WASM_TARGET])?;
    eprintln!("Building the task modules ({FIRST_BUILD_NOTE})");
    cargo(&["build", "-p", "musketeer-task-artifacts"])
}

fn test() -> Result<(), String> {
    cross::check_system_packages()?;
    let mut targets = vec![WASM_TARGET];
    targets.extend(cross::TARGETS);
    toolchain::ensure_targets(&targets)?;
    eprintln!("Running every check and test ({FIRST_BUILD_NOTE})");
    let tasks = "tasks/Cargo.toml";
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&["fmt", "--manifest-path", tasks, "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&[
        "clippy",
        "--manifest-path",
        tasks,
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    // Unit tests of the tasks' plain logic, natively; the modules themselves are exercised
    // through the sandbox by the workspace tests below.
    cargo(&["test", "--manifest-path", tasks, "--workspace"])?;
    // The server's `it` suite runs on redb here (whatever the caller's environment says), then
    // once more on PostgreSQL (check_system_packages made sure it is installed).
    cargo_with_env(&[(TEST_STORE_VAR, "redb")], &["test", "--workspace"])?;
    postgres_pass()?;
    cross::run(&[])?;
    // `cargo test --workspace` above built both debug binaries (their integration tests run
    // them) and the task modules; another build here could only rebuild crates with other
    // features.
    api_fuzz::run_fuzz(false)?;
    python_tests(false)
}

/// Picks the store of the server's `it` suite (server/tests/it/support.rs).
const TEST_STORE_VAR: &str = "MUSKETEER_TEST_STORE";

/// The server's `it` suite again, every test project on a database of a throwaway PostgreSQL
/// cluster (the tests of the redb file itself stay on redb); says how long it took.
fn postgres_pass() -> Result<(), String> {
    let started = std::time::Instant::now();
    cargo_with_env(
        &[(TEST_STORE_VAR, "postgres")],
        &["test", "-p", "musketeer-server", "--test", "it"],
    )?;
    eprintln!(
        "the server's it suite on PostgreSQL took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The Python client (python/): in a venv under target/, installs it with its test extras, then
/// runs ruff, mypy and pytest (whose tests start the debug `musketeer-server` and volunteers).
/// `build_binaries`: build those binaries and the task modules first (when run alone).
fn python_tests(build_binaries: bool) -> Result<(), String> {
    let root = root();
    let venv = root.join("target").join("python-venv");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    eprintln!("Python client: checks and tests (venv {})", venv.display());
    run(Command::new(&python).arg("--version")).map_err(|error| {
        format!(
            "{error}\nthe Python client's tests need Python >= 3.11 with venv: install it \
             (Debian: apt-get install python3 python3-venv) or point PYTHON at it"
        )
    })?;
    if build_binaries {
        cargo(&["build", "-p", "musketeer-client", "-p", "musketeer-server"])?;
        cargo(&["build", "-p", "musketeer-task-artifacts"])?;
    }
    let bin = python_client_venv(&python, "[test]")?;
    let package = root.join("python");
    run(Command::new(bin.join("ruff"))
        .args(["check", "src", "tests"])
        .current_dir(&package))?;
    run(Command::new(bin.join("ruff"))
        .args(["format", "--check", "src", "tests"])
        .current_dir(&package))?;
    run(Command::new(bin.join("mypy"))
        .args(["src", "tests"])
        .current_dir(&package))?;
    // docs/researcher.md's 2016 loop crawls the local TWSE-format feed (python/tests/test_docs.py);
    // it serves until this function returns.
    let feed = musketeer_twse_feed::FeedServer::start()
        .map_err(|error| format!("cannot start the local TWSE-format feed: {error}"))?;
    let debug = root.join("target").join("debug");
    let exe = std::env::consts::EXE_SUFFIX;
    run(Command::new(bin.join("pytest"))
        .arg("tests")
        .env("MUSKETEER_TWSE_FEED", feed.base_url())
        .env("MUSKETEER_BIN", debug.join(format!("musketeer{exe}")))
        .env(
            "MUSKETEER_SERVER_BIN",
            debug.join(format!("musketeer-server{exe}")),
        )
        .current_dir(&package))
}

/// target/python-venv (made with `python` if missing) with the Python client installed from
/// python/ with `extras` (e.g. "[test]", or ""): the venv's bin directory.
pub(crate) fn python_client_venv(python: &str, extras: &str) -> Result<PathBuf, String> {
    let root = root();
    let venv = root.join("target").join("python-venv");
    if !venv.join("bin").join("python").exists() {
        run(Command::new(python).args(["-m", "venv"]).arg(&venv))?;
    }
    let bin = venv.join("bin");
    run(Command::new(bin.join("python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg(format!("{}{extras}", root.join("python").display())))?;
    Ok(bin)
}

/// Runs a command, saying which first; fails with the command line if it fails.
fn run(command: &mut Command) -> Result<(), String> {
    let line = format!(
        "{} {}",
        command.get_program().to_string_lossy(),
        command
            .get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    eprintln!("$ {line}");
    let status = command
        .status()
        .map_err(|error| format!("cannot run `{line}`: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{line}` failed ({status})"))
    }
}

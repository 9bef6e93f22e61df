//! Builds the task modules of `tasks/` for `wasm32-wasip2` with a nested cargo, so host-side
//! tests always run against modules built from the current sources.
//!
//! The nested build is a separate workspace (`tasks/Cargo.toml`) with its own target directory
//! (`<repo>/target/wasm-tasks`), so it never waits on the outer build's locks.

mod js_tasks;
mod python_tasks;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The module file of each task, as the nested build names it (`<lib name>.wasm`).
const MODULES: &[&str] = &[
    "musketeer_task_stock_day",
    "musketeer_task_word_count",
    "musketeer_task_primes",
    "musketeer_task_noop",
    "musketeer_task_float_corners",
    "musketeer_task_hostile",
];

/// Outer-build settings that must not leak into the nested build: flags and wrappers meant for
/// the host target (clippy's driver, coverage flags, sccache), the outer target and target
/// directory, the outer jobserver, and the per-package variables cargo gives build scripts.
const CLEARED_VARS: &[&str] = &[
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "RUSTC",
    "RUSTDOC",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_LINKER",
    "MAKEFLAGS",
    "MFLAGS",
    "TARGET",
    "HOST",
    "OUT_DIR",
    "PROFILE",
    "OPT_LEVEL",
    "DEBUG",
    "NUM_JOBS",
    "CLIPPY_ARGS",
    "CLIPPY_CONF_DIR",
];

/// `CARGO_*` variables that configure cargo itself (registry access, output) and may stay.
const KEPT_CARGO_PREFIXES: &[&str] = &[
    "CARGO_HOME",
    "CARGO_NET_",
    "CARGO_HTTP_",
    "CARGO_REGISTRIES_",
    "CARGO_REGISTRY_",
    "CARGO_TERM_",
];

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .and_then(Path::parent)
        .expect("tasks/artifacts lives two levels below the repository root")
        .to_path_buf();
    let tasks = root.join("tasks");
    let target_dir = root.join("target").join("wasm-tasks");

    // The fixture feed is a host crate beside the tasks, not part of their build.
    watch(&tasks, &[&manifest_dir, &tasks.join("twse-feed")]);
    // Hidden, so `watch` skips it; it holds the modules' target features (simd128).
    watch_file(&tasks.join(".cargo").join("config.toml"));
    let sdk = root.join("task-sdk");
    // The SDK's own lock file (from testing it alone) plays no part in the tasks build.
    watch(&sdk, &[&sdk.join("Cargo.lock")]);
    watch_file(&root.join("rust-toolchain.toml"));
    // The componentize-js pin, inside this crate's own directory, which `watch` skips.
    watch_file(&manifest_dir.join("js").join("package.json"));
    watch_file(&manifest_dir.join("js").join("package-lock.json"));

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .arg("--manifest-path")
        .arg(tasks.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(&tasks);
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        let cargo_internal = (name.starts_with("CARGO")
            && !KEPT_CARGO_PREFIXES.iter().any(|p| name.starts_with(p)))
            || name.starts_with("__CARGO");
        if cargo_internal || CLEARED_VARS.contains(&name) || name.starts_with("DEP_") {
            command.env_remove(name);
        }
    }
    // RUSTUP_TOOLCHAIN is kept, so the nested build uses the pinned toolchain of the outer one.
    // The tasks' own settings (`tasks/.cargo/config.toml`: simd128) apply because the build runs
    // in `tasks/` and no RUSTFLAGS variable overrides them.

    let output = command.output().unwrap_or_else(|e| {
        panic!(
            "could not start `{}` to build the task modules: {e}",
            Path::new(&cargo).display()
        )
    });
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("wasm32-wasip2") && stderr.contains("not installed")
            || stderr.contains("can't find crate for `core`")
            || stderr.contains("can't find crate for `std`")
        {
            "the wasm32-wasip2 target is missing: run `rustup target add wasm32-wasip2` \
             (or `rustup toolchain install` in the repository root)"
        } else {
            "fix the error above; `cargo build --release --target wasm32-wasip2` in tasks/ \
             reproduces it (if the target is missing: `rustup target add wasm32-wasip2`, or \
             `rustup toolchain install` in the repository root)"
        };
        // An expected condition (a missing target, a compile error in a task): say what to do
        // and stop, without a panic's backtrace note.
        eprintln!(
            "building the task modules failed ({}):\n{stderr}\n{hint}",
            output.status
        );
        std::process::exit(1);
    }

    let wasm_dir = target_dir.join("wasm32-wasip2").join("release");
    for module in MODULES {
        let path = wasm_dir.join(format!("{module}.wasm"));
        let head = std::fs::read(&path)
            .map(|bytes| bytes.into_iter().take(8).collect::<Vec<u8>>())
            .unwrap_or_else(|e| panic!("task module {} missing after build: {e}", path.display()));
        // `\0asm`, then version 0x0d and layer 1: a component, not a core module.
        assert!(
            head == b"\0asm\x0d\x00\x01\x00",
            "{} is not a WebAssembly component",
            path.display()
        );
    }
    let wasm_dir = wasm_dir
        .to_str()
        .expect("the repository path must be valid UTF-8");
    println!("cargo:rustc-env=MUSKETEER_TASKS_WASM_DIR={wasm_dir}");

    let python_dir = target_dir.join("python");
    if let Err(error) = python_tasks::build(&root, &python_dir) {
        eprintln!("building the Python task modules failed: {error}");
        std::process::exit(1);
    }
    let python_dir = python_dir
        .to_str()
        .expect("the repository path must be valid UTF-8");
    println!("cargo:rustc-env=MUSKETEER_PYTHON_TASKS_WASM_DIR={python_dir}");

    let js_dir = target_dir.join("js");
    if let Err(error) = js_tasks::build(&root, &js_dir) {
        eprintln!("building the JavaScript task modules failed: {error}");
        std::process::exit(1);
    }
    let js_dir = js_dir
        .to_str()
        .expect("the repository path must be valid UTF-8");
    println!("cargo:rustc-env=MUSKETEER_JS_TASKS_WASM_DIR={js_dir}");
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo sets {name} for build scripts"))
}

fn watch_file(path: &Path) {
    println!("cargo:rerun-if-changed={}", path.display());
}

/// Emits `rerun-if-changed` for every source file and directory under `dir`, skipping `target`
/// directories, hidden entries and `skip`. Directories are listed too so that new files count.
fn watch(dir: &Path, skip: &[&Path]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut has_target = false;
    let mut children = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == "target" {
            has_target = true;
            continue;
        }
        // Python's bytecode caches and npm's installs are outputs, not sources.
        if name.starts_with('.')
            || name == "__pycache__"
            || name == "node_modules"
            || skip.contains(&path.as_path())
        {
            continue;
        }
        children.push((path, entry.file_type().is_ok_and(|t| t.is_dir())));
    }
    // Cargo scans a watched directory recursively; one holding a build output would make every
    // build look like a change.
    if !has_target && skip.iter().all(|s| !s.starts_with(dir)) {
        watch_file(dir);
    }
    for (path, is_dir) in children {
        if is_dir {
            watch(&path, skip);
        } else {
            watch_file(&path);
        }
    }
}

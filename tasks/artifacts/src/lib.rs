//! Paths of the task modules built from `tasks/`, for host-side tests and benchmarks.
//!
//! The build script runs `cargo build --release --target wasm32-wasip2` on the `tasks/`
//! workspace (target directory `<repo>/target/wasm-tasks`), checks that every module is a
//! component, builds the Python tasks with componentize-py (`python_tasks.rs`: pinned, in a venv
//! under `target/`) and the JavaScript tasks with componentize-js (`js_tasks.rs`: pinned by
//! `js/package-lock.json`, installed under `target/`), and bakes the absolute paths below into this crate. A dependent crate therefore
//! always sees modules built from the current sources of `tasks/` and `task-sdk/`.
//!
//! ```no_run
//! let module = musketeer_task_artifacts::read(musketeer_task_artifacts::NOOP);
//! assert!(module.starts_with(b"\0asm"));
//! ```

/// Directory holding the built `.wasm` files.
pub const WASM_DIR: &str = env!("MUSKETEER_TASKS_WASM_DIR");

/// `stock-day`: the TWSE crawler (`{"stock_id":"2356","year":2016,"month":5}`).
pub const STOCK_DAY: &str = concat!(
    env!("MUSKETEER_TASKS_WASM_DIR"),
    "/musketeer_task_stock_day.wasm"
);

/// `word-count`: UTF-8 text in, word frequencies (JSON) out.
pub const WORD_COUNT: &str = concat!(
    env!("MUSKETEER_TASKS_WASM_DIR"),
    "/musketeer_task_word_count.wasm"
);

/// `primes`: `{"from":u64,"to":u64}` in, `{"count":N,"last":P}` out; the CPU benchmark task.
pub const PRIMES: &str = concat!(
    env!("MUSKETEER_TASKS_WASM_DIR"),
    "/musketeer_task_primes.wasm"
);

/// `noop`: returns its input unchanged; the per-task overhead benchmark task.
pub const NOOP: &str = concat!(
    env!("MUSKETEER_TASKS_WASM_DIR"),
    "/musketeer_task_noop.wasm"
);

/// `float-corners`: float/NaN corner cases with raw bits, for determinism checks.
pub const FLOAT_CORNERS: &str = concat!(
    env!("MUSKETEER_TASKS_WASM_DIR"),
    "/musketeer_task_float_corners.wasm"
);

/// `hostile`: TEST ONLY, misbehaves as its input asks (see `tasks/hostile/src/lib.rs`).
pub const HOSTILE: &str = concat!(
    env!("MUSKETEER_TASKS_WASM_DIR"),
    "/musketeer_task_hostile.wasm"
);

/// Directory holding the Python task modules (componentize-py's output).
pub const PYTHON_WASM_DIR: &str = env!("MUSKETEER_PYTHON_TASKS_WASM_DIR");

/// `stock-day-py`: the TWSE crawler of [`STOCK_DAY`] written in Python (same input, same output
/// bytes), built with componentize-py.
pub const STOCK_DAY_PY: &str = concat!(
    env!("MUSKETEER_PYTHON_TASKS_WASM_DIR"),
    "/musketeer_task_stock_day_py.wasm"
);

/// Directory holding the JavaScript task modules (componentize-js's output).
pub const JS_WASM_DIR: &str = env!("MUSKETEER_JS_TASKS_WASM_DIR");

/// `stock-day-js`: the TWSE crawler of [`STOCK_DAY`] written in JavaScript (same input, same
/// output bytes), built with componentize-js.
pub const STOCK_DAY_JS: &str = concat!(
    env!("MUSKETEER_JS_TASKS_WASM_DIR"),
    "/musketeer_task_stock_day_js.wasm"
);

/// Every module: (task name as in `tasks/`, path).
pub const ALL: &[(&str, &str)] = &[
    ("stock-day", STOCK_DAY),
    ("word-count", WORD_COUNT),
    ("primes", PRIMES),
    ("noop", NOOP),
    ("float-corners", FLOAT_CORNERS),
    ("hostile", HOSTILE),
];

/// `py-corners`: TEST ONLY, the Python interpreter's `random` and `hash` inside the sandbox
/// (see `tasks/py-corners/py_corners.py`).
pub const PY_CORNERS: &str = concat!(
    env!("MUSKETEER_PYTHON_TASKS_WASM_DIR"),
    "/musketeer_task_py_corners.wasm"
);

/// Every Python module: (task name as in `tasks/`, path).
pub const ALL_PYTHON: &[(&str, &str)] =
    &[("stock-day-py", STOCK_DAY_PY), ("py-corners", PY_CORNERS)];

/// `js-corners`: TEST ONLY, the JavaScript SDK's and engine's corner cases as its input asks
/// (see `tasks/js-corners/corners.js`).
pub const JS_CORNERS: &str = concat!(
    env!("MUSKETEER_JS_TASKS_WASM_DIR"),
    "/musketeer_task_js_corners.wasm"
);

/// Every JavaScript module: (task name as in `tasks/`, path).
pub const ALL_JS: &[(&str, &str)] = &[("stock-day-js", STOCK_DAY_JS), ("js-corners", JS_CORNERS)];

/// Reads a module file, for tests and benchmarks.
///
/// # Panics
/// If the file cannot be read (the build script made it, so this means it was removed since).
pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| {
        panic!("cannot read task module {path}: {e}; rebuild with `cargo build -p musketeer-task-artifacts`")
    })
}

/// The local TWSE-format fixture feed (its own crate, so that `xtask` can use it without
/// building the task modules first).
pub use musketeer_twse_feed as twse;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_is_a_component() {
        for (name, path) in ALL {
            let bytes = read(path);
            assert_eq!(&bytes[..8], b"\0asm\x0d\x00\x01\x00", "{name}");
            assert!(path.starts_with(WASM_DIR), "{name}");
        }
    }

    #[test]
    fn every_python_module_is_a_component() {
        for (name, path) in ALL_PYTHON {
            let bytes = read(path);
            assert_eq!(&bytes[..8], b"\0asm\x0d\x00\x01\x00", "{name}");
            assert!(path.starts_with(PYTHON_WASM_DIR), "{name}");
        }
    }

    #[test]
    fn every_js_module_is_a_component() {
        for (name, path) in ALL_JS {
            let bytes = read(path);
            assert_eq!(&bytes[..8], b"\0asm\x0d\x00\x01\x00", "{name}");
            assert!(path.starts_with(JS_WASM_DIR), "{name}");
        }
    }
}

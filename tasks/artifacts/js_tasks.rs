//! The JavaScript task modules: componentize-js (pinned by `js/package-lock.json`, from npm)
//! installed under `target/`, then one `componentize-js` per task against the same WIT world as
//! the Rust tasks.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::python_tasks::run;

/// Each JavaScript task: (directory under `tasks/`, its module file's stem, the entry file that
/// exports `run`).
pub const JS_TASKS: &[(&str, &str, &str)] = &[
    (
        "stock-day-js",
        "musketeer_task_stock_day_js",
        "stock_day.js",
    ),
    ("js-corners", "musketeer_task_js_corners", "corners.js"),
];

/// Builds every JavaScript task into `out_dir`; `root` is the repository root.
pub fn build(root: &Path, out_dir: &Path) -> Result<(), String> {
    let componentize = install_componentize_js(root)?;
    std::fs::create_dir_all(out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    for (dir, stem, entry) in JS_TASKS {
        let output = out_dir.join(format!("{stem}.wasm"));
        let mut command = Command::new(node());
        command
            .arg(&componentize)
            .arg("--wit")
            .arg(root.join("task-sdk").join("wit"))
            .args(["--world-name", "task"])
            // `http` and `fetch-event` would make the module import and export `wasi:http`,
            // which the sandbox does not link: HTTP goes through the host's `http-get`.
            .args(["--disable", "http", "fetch-event"])
            .arg("--out")
            .arg(&output)
            .arg(Path::new("tasks").join(dir).join(entry))
            // componentize-js maps the working directory to the module's `/` while it
            // pre-initialises it, so a task's relative imports of `task-sdk/js` resolve from
            // the repository root.
            .current_dir(root);
        run(&mut command, &format!("componentize-js for tasks/{dir}"))?;
    }
    Ok(())
}

fn node() -> String {
    std::env::var("NODE").unwrap_or_else(|_| "node".into())
}

/// componentize-js's entry script, installed with `npm ci` from the committed lock file on
/// first use and re-installed when the lock file changes.
fn install_componentize_js(root: &Path) -> Result<PathBuf, String> {
    let pinned = root.join("tasks").join("artifacts").join("js");
    let prefix = root.join("target").join("componentize-js");
    let cli = prefix
        .join("node_modules")
        .join("@bytecodealliance")
        .join("componentize-js")
        .join("src")
        .join("cli.js");
    let lock = read(&pinned.join("package-lock.json"))?;
    // Written after a successful `npm ci`: what is installed, not what was last asked for.
    let installed_marker = prefix.join("installed-package-lock.json");
    if cli.exists() && std::fs::read(&installed_marker).is_ok_and(|installed| installed == lock) {
        return Ok(cli);
    }
    std::fs::create_dir_all(&prefix)
        .map_err(|e| format!("cannot create {}: {e}", prefix.display()))?;
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(pinned.join(file), prefix.join(file))
            .map_err(|e| format!("cannot copy {file} to {}: {e}", prefix.display()))?;
    }
    let npm = std::env::var("NPM").unwrap_or_else(|_| "npm".into());
    run(
        Command::new(&npm)
            .args([
                "ci",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--prefix",
            ])
            .arg(&prefix),
        &format!(
            "`{npm} ci` of componentize-js (the JavaScript tasks need Node.js >= 20 with npm: \
             apt-get install nodejs npm, or point NODE and NPM at them; needs network access \
             to registry.npmjs.org once; installs into {})",
            prefix.display()
        ),
    )?;
    std::fs::write(&installed_marker, &lock)
        .map_err(|e| format!("cannot write {}: {e}", installed_marker.display()))?;
    Ok(cli)
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

//! The Python task modules: componentize-py (pinned, from PyPI) in a venv under `target/`, then
//! one `componentize` per task against the same WIT world as the Rust tasks.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The componentize-py release the modules are built with. A different release bundles a
/// different CPython, so module bytes, size and fuel change with it: pinned, not "latest".
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// Each Python task: (directory under `tasks/`, its module file's stem, the Python module that
/// holds the `@task` function).
pub const PYTHON_TASKS: &[(&str, &str, &str)] = &[
    ("stock-day-py", "musketeer_task_stock_day_py", "stock_day"),
    ("py-corners", "musketeer_task_py_corners", "py_corners"),
];

/// Builds every Python task into `out_dir`; `root` is the repository root.
pub fn build(root: &Path, out_dir: &Path) -> Result<(), String> {
    let componentize = install_componentize_py(root)?;
    std::fs::create_dir_all(out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    for (dir, stem, module) in PYTHON_TASKS {
        let output = out_dir.join(format!("{stem}.wasm"));
        let mut command = Command::new(&componentize);
        command
            .arg("--quiet")
            .arg("--wit-path")
            .arg(root.join("task-sdk").join("wit"))
            .args(["--world", "task", "componentize"])
            .arg("--python-path")
            .arg(root.join("task-sdk").join("python"))
            .arg("--python-path")
            .arg(root.join("tasks").join(dir))
            .arg(module)
            .arg("--output")
            .arg(&output)
            // No __pycache__ in the source tree (it would make every build look like a change),
            // and no user venv added to the module's path.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env_remove("VIRTUAL_ENV")
            .env_remove("PYTHONPATH");
        run(&mut command, &format!("componentize-py for tasks/{dir}"))?;
    }
    Ok(())
}

/// The venv's `componentize-py`, installed on first use and re-installed when the pin changes.
fn install_componentize_py(root: &Path) -> Result<PathBuf, String> {
    let venv = root.join("target").join("componentize-py-venv");
    let bin = venv.join("bin");
    let componentize = bin.join("componentize-py");
    let wanted = format!("componentize-py {COMPONENTIZE_PY_VERSION}");
    let installed = Command::new(&componentize)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if installed.as_deref() == Some(wanted.as_str()) {
        return Ok(componentize);
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    if !bin.join("python").exists() {
        run(
            Command::new(&python).args(["-m", "venv"]).arg(&venv),
            &format!(
                "`{python} -m venv` (the Python tasks need Python >= 3.11 with venv: \
                 apt-get install python3 python3-venv, or point PYTHON at one)"
            ),
        )?;
    }
    run(
        Command::new(bin.join("python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg(format!("componentize-py=={COMPONENTIZE_PY_VERSION}")),
        &format!(
            "pip install componentize-py=={COMPONENTIZE_PY_VERSION} from PyPI (needs network \
             access to pypi.org once; the venv is {})",
            venv.display()
        ),
    )?;
    Ok(componentize)
}

/// Runs `command`; on failure, says `what` failed with its exit status and output.
pub fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("{what}: could not start {:?}: {e}", command.get_program()))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

//! One module per subcommand.

pub mod admin;
pub mod apps;
pub mod batch;
pub mod connection;
#[cfg(unix)]
pub mod control;
pub mod follow;
pub mod hosts;
pub mod join;
pub mod keys;
pub mod man;
pub mod progress;
#[cfg(unix)]
pub mod projects;
pub mod publish;
pub mod run;
pub mod sign;
pub mod submit;
pub mod submit_collect;
pub mod submit_lines;
pub mod tokens;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// `-q`: progress and notes stay off stderr. Set once by `main` before any command runs.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Sets the `-q` switch for the commands that follow.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether `-q` was given: progress bars and notes are not shown.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// `eprintln!` unless `-q` was given: for progress and notes, never for errors.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        if !$crate::commands::quiet() {
            eprintln!($($arg)*);
        }
    };
}

/// `$VAR/musketeer` if the XDG variable `var` holds an absolute path, else
/// `~/<home_fallback>/musketeer`: where musketeer keeps one kind of per-user file.
pub fn user_dir(var: &str, home_fallback: &str) -> Option<PathBuf> {
    let base = std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(home_fallback)))?;
    Some(base.join("musketeer"))
}

/// The default compiled-code cache: `$XDG_CACHE_HOME/musketeer/compiled` or
/// `~/.cache/musketeer/compiled`.
pub fn default_cache_dir() -> Option<PathBuf> {
    Some(user_dir("XDG_CACHE_HOME", ".cache")?.join("compiled"))
}

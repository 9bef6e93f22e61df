//! One module per subcommand.

pub mod batch;
pub mod connection;
pub mod join;
pub mod keys;
pub mod publish;
pub mod run;
pub mod sign;
pub mod submit;

use std::path::PathBuf;

/// The default compiled-code cache: `$XDG_CACHE_HOME/musketeer/compiled` or
/// `~/.cache/musketeer/compiled`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("musketeer").join("compiled"))
}

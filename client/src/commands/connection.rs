//! Server URL and token of researcher and author commands: flags, then environment (both via
//! clap), then a JSON config file.

use std::path::PathBuf;

use anyhow::Context;

use crate::api_client::ApiClient;
use crate::cli::ServerArgs;
use crate::exit::UsageError;

/// Unknown keys are refused, so that a misspelt "tokne" is an error naming it, not a silent
/// fallback to no token.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    server: Option<String>,
    token: Option<String>,
}

/// The default config file: `$XDG_CONFIG_HOME/musketeer/config.json` or
/// `~/.config/musketeer/config.json`.
pub fn default_config_file() -> Option<PathBuf> {
    Some(super::user_dir("XDG_CONFIG_HOME", ".config")?.join("config.json"))
}

/// The runtime of a researcher, author or admin command (and of `projects`): one thread. Such
/// a command makes a few requests one after another, so worker threads would only add their
/// start-up and a cross-thread wake-up to every answer (about a millisecond of a short
/// `submit --wait`).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A client of the server named by `args`, with its token.
pub fn client(args: &ServerArgs) -> anyhow::Result<ApiClient> {
    let file = match args.config.clone() {
        Some(path) => Some(read(&path)?),
        None => match default_config_file() {
            Some(path) if path.exists() => Some(read(&path)?),
            _ => None,
        },
    }
    .unwrap_or_default();
    let Some(server) = args.server.clone().or(file.server) else {
        return Err(UsageError(
            "no server given: pass --server URL, set MUSKETEER_SERVER, or put \"server\" in the config file".into(),
        )
        .into());
    };
    let Some(token) = args.token.clone().or(file.token) else {
        return Err(UsageError(
            "no token given: pass --token TOKEN (from the project's operator), set MUSKETEER_TOKEN, or put \"token\" in the config file".into(),
        )
        .into());
    };
    let ca_cert = args.ca_cert.as_deref().map(read_ca_cert).transpose()?;
    ApiClient::trusting(&server, Some(token), ca_cert.as_deref())
        .context("cannot use the server URL or --ca-cert")
}

/// The `--ca-cert` file's bytes.
pub fn read_ca_cert(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| {
        format!(
            "cannot read --ca-cert {}; pass the project's CA certificate (a PEM file)",
            path.display()
        )
    })
}

fn read(path: &PathBuf) -> anyhow::Result<ConfigFile> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read config file {} (named by --config or MUSKETEER_CONFIG): create it \
                 with {{\"server\": \"http://...\", \"token\": \"...\"}}, or name another",
            path.display()
        )
    })?;
    serde_json::from_str(&text).map_err(|error| {
        anyhow::anyhow!(
            "config file {}: {error}; it holds one JSON object with the keys \"server\" and \
             \"token\", e.g. {{\"server\": \"http://...\", \"token\": \"...\"}}",
            path.display()
        )
    })
}

//! Command-line flags (clap derive only; checked in `commands`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use musketeer_protocol::quantity::{self, PlainDuration};
use musketeer_server::store::StoreLocation;

/// A duration flag whose plain numbers count seconds (`600`, `10m`, `30d`, `2w`).
fn seconds_or_duration(text: &str) -> Result<std::time::Duration, quantity::QuantityError> {
    quantity::parse_duration(text, PlainDuration::Seconds)
}

/// The musketeer server.
#[derive(Debug, Parser)]
#[command(name = "musketeer-server", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "MUSKETEER_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the store, record trusted keys and print the first admin token.
    Init(InitArgs),
    /// Serve the HTTP API.
    Serve(ServeArgs),
    /// Create or revoke user tokens (with the server stopped; while it runs, use the admin API).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Apply a key-rotation statement signed by a trusted key (with the server stopped).
    RotateKey(RotateKeyArgs),
    /// Shrink the store file after deleting batches (with the server stopped).
    Compact(CompactArgs),
    /// Bring a store written by an older release to this release's schema (with the server
    /// stopped; `serve` also does it when it starts).
    Migrate(MigrateArgs),
    /// Write the whole store as a stream of JSON lines, to move it to another machine or
    /// store (with the server stopped).
    Export(ExportArgs),
    /// Create a new store from what `export` wrote (with no server on it).
    Import(ImportArgs),
}

/// `export` flags.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The store to export.
    #[command(flatten)]
    pub store: StoreArgs,
    /// A new file to write, or `-` for standard output (the default).
    #[arg(long)]
    pub output: Option<String>,
}

/// `import` flags.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Where the new store goes: a directory or a PostgreSQL database, holding no store.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The file `export` wrote, or `-` for standard input.
    #[arg(long)]
    pub input: String,
}

/// Where the store is: exactly one of `--data-dir` and `--store`.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct StoreArgs {
    /// Directory of the embedded store (the default kind: one file, nothing else to run).
    #[arg(long, env = "MUSKETEER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// A PostgreSQL store instead of --data-dir: postgres://USER[:PASSWORD]@HOST:PORT/DATABASE
    /// (no TLS: PostgreSQL on this machine or a trusted network; docs/operator.md).
    #[arg(long = "store", env = "MUSKETEER_STORE", hide_env_values = true, value_parser = parse_store_url)]
    pub store_url: Option<String>,
}

impl StoreArgs {
    /// The store these flags name.
    pub fn location(&self) -> anyhow::Result<StoreLocation> {
        match (&self.data_dir, &self.store_url) {
            (Some(dir), None) => Ok(StoreLocation::DataDir(dir.clone())),
            (None, Some(url)) => Ok(StoreLocation::Postgres(url.clone())),
            // clap's group lets exactly one through; this says the same if that ever changes.
            _ => anyhow::bail!("give exactly one of --data-dir DIR and --store postgres://..."),
        }
    }
}

/// `--store` takes PostgreSQL URLs only, so that a path given there is not taken for one.
fn parse_store_url(text: &str) -> Result<String, String> {
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        Ok(text.to_owned())
    } else {
        Err(
            "--store takes a PostgreSQL URL such as postgres://musketeer@127.0.0.1:5432/musketeer; \
             for the embedded store give its directory with --data-dir"
                .into(),
        )
    }
}

/// `migrate` flags.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Say what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `compact` flags.
#[derive(Debug, clap::Args)]
pub struct CompactArgs {
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `rotate-key` flags.
#[derive(Debug, clap::Args)]
pub struct RotateKeyArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The rotation statement (JSON) signed by the old key.
    #[arg(long)]
    pub statement: PathBuf,
}

/// `init` flags.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The project's display name.
    #[arg(long)]
    pub project_name: String,
    /// A public key file whose signatures on app manifests are trusted (repeatable).
    #[arg(long = "trust-key", required = true)]
    pub trust_keys: Vec<PathBuf>,
    /// Clients older than this get no work.
    #[arg(long, default_value = "0.1.0")]
    pub min_client_version: semver::Version,
}

/// `serve` flags.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on.
    #[arg(long, env = "MUSKETEER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Require this code to register hosts.
    #[arg(long, env = "MUSKETEER_INVITE_CODE", hide_env_values = true)]
    pub invite_code: Option<String>,
    /// Let anyone read hosts, apps and stats (the dashboard views).
    #[arg(long, env = "MUSKETEER_PUBLIC_DASHBOARD")]
    pub public_dashboard: bool,
    /// Host registrations allowed per source address per minute.
    #[arg(long, env = "MUSKETEER_REGISTER_PER_MINUTE", default_value_t = 10)]
    pub register_per_minute: u32,
    /// How long a unit may stay stalled (waiting, nothing running, and every online host able
    /// to run it already returned a replica) before it fails with the reason: a duration such as
    /// 10m or 1h (a plain number counts seconds).
    #[arg(long, env = "MUSKETEER_STALL_TIMEOUT", default_value = "10m", value_parser = seconds_or_duration)]
    pub stall_timeout: std::time::Duration,
    /// Delete batches finished or cancelled longer ago than this, e.g. `30d`, `12h`, `90m`,
    /// `45s` (default: keep them until deleted by hand). Host credit and counters stay.
    #[arg(long, env = "MUSKETEER_RETAIN_FINISHED", value_parser = parse_retention_ms)]
    pub retain_finished: Option<u64>,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key.
    #[arg(long, env = "MUSKETEER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "MUSKETEER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// With --store (several servers on one database): the URL at which the other servers
    /// reach this one, e.g. http://10.0.0.5:8080 (default: http(s)://the --listen address,
    /// which must then not be 0.0.0.0 or ::).
    #[arg(long, env = "MUSKETEER_ADVERTISE_URL", value_parser = parse_advertise_url)]
    pub advertise_url: Option<String>,
    #[command(flatten)]
    pub reputation: ReputationArgs,
}

/// `--advertise-url` is an http(s) base URL without a path, so that request paths append to it.
fn parse_advertise_url(text: &str) -> Result<String, String> {
    let trimmed = text.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"));
    match rest {
        Some(authority) if !authority.is_empty() && !authority.contains('/') => {
            Ok(trimmed.to_owned())
        }
        _ => Err(
            "--advertise-url takes the base URL the other servers reach this one at, such as \
             http://10.0.0.5:8080 (http or https, no path)"
                .into(),
        ),
    }
}

/// Placement and reputation settings of `serve` (docs/operator.md, "Reputation and bans").
#[derive(Debug, Args)]
pub struct ReputationArgs {
    /// Leading bits of an IPv4 address that name a host's network; replicas of one unit never
    /// go to two hosts of one network (0: off). Loopback peers are never grouped.
    #[arg(long, env = "MUSKETEER_NETWORK_PREFIX_V4", default_value_t = 24, value_parser = clap::value_parser!(u8).range(0..=32))]
    pub network_prefix_v4: u8,
    /// The same for IPv6 (0: off).
    #[arg(long, env = "MUSKETEER_NETWORK_PREFIX_V6", default_value_t = 48, value_parser = clap::value_parser!(u8).range(0..=128))]
    pub network_prefix_v6: u8,
    /// Validated results in a row after which a host may run units alone (with spot checks).
    #[arg(long, env = "MUSKETEER_TRUST_AFTER", default_value_t = 10)]
    pub trust_after: u64,
    /// Of the units a trusted host would run alone, how many per thousand stay replicated.
    #[arg(long, env = "MUSKETEER_SPOT_CHECKS_PER_MILLE", default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub spot_checks_per_mille: u32,
    /// Never let a host run units alone: every unit gets its batch's full quorum.
    #[arg(long, env = "MUSKETEER_NO_ADAPTIVE_REPLICATION")]
    pub no_adaptive_replication: bool,
    /// Most results a host may fetch per day and not yet have validated (each validated result
    /// gives its fetch back); halves with each error or invalid result and doubles with each
    /// valid one.
    #[arg(long, env = "MUSKETEER_MAX_DAILY_QUOTA", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_daily_quota: u32,
    /// Most of one batch's replicas, in percent, one host may hold or have returned (100: no
    /// bound); a host past it still gets units no other online host could take.
    #[arg(long, env = "MUSKETEER_MAX_BATCH_SHARE", default_value_t = 25, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_batch_share: u32,
    /// Replicas of a batch any host may take whatever `--max-batch-share` says.
    #[arg(long, env = "MUSKETEER_BATCH_SHARE_FLOOR", default_value_t = 16)]
    pub batch_share_floor: u64,
}

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it.
    Create(TokenCreateArgs),
    /// Revoke a token by id.
    Revoke(TokenRevokeArgs),
}

/// Roles a token can have.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// Submits and reads its own batches.
    Researcher,
    /// Publishes app versions.
    Publisher,
    /// Everything.
    Admin,
}

/// `token create` flags.
#[derive(Debug, clap::Args)]
pub struct TokenCreateArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The token's role.
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// Limit the token to these apps (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub apps: Option<Vec<String>>,
    /// Expiry: a duration from now such as `30d`, `2w`, `12h`, `90m` (a plain number counts
    /// seconds).
    #[arg(long, value_parser = seconds_or_duration)]
    pub expires: Option<std::time::Duration>,
    /// A note, e.g. who holds the token.
    #[arg(long)]
    pub label: Option<String>,
}

/// `token revoke` flags.
#[derive(Debug, clap::Args)]
pub struct TokenRevokeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The token id printed by `token create`.
    pub id: u64,
}

/// A retention period in milliseconds: a duration with its unit (e.g. `30d`, `12h`), at least 1 s.
fn parse_retention_ms(text: &str) -> Result<u64, String> {
    let duration =
        quantity::parse_duration(text, PlainDuration::Refused).map_err(|e| e.to_string())?;
    if duration < std::time::Duration::from_secs(1) {
        return Err(format!("{text:?}: must be at least 1s"));
    }
    u64::try_from(duration.as_millis()).map_err(|_| format!("{text:?}: too long"))
}

#[cfg(test)]
mod tests {
    use super::parse_retention_ms;

    #[test]
    fn retention_durations() {
        assert_eq!(parse_retention_ms("30d"), Ok(30 * 86_400_000));
        assert_eq!(parse_retention_ms("2s"), Ok(2000));
        assert_eq!(parse_retention_ms("1.5h"), Ok(5_400_000));
        for bad in ["", "d", "0s", "5", "5y", "-1d", "99999999999999999d"] {
            assert!(parse_retention_ms(bad).is_err(), "{bad}");
        }
    }
}

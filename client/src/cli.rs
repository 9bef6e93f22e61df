//! Command-line interface of the `musketeer` binary (clap definitions only).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// musketeer: lend your CPU to science, safely. Runs signed WebAssembly tasks in a sandbox.
#[derive(Debug, Parser)]
#[command(name = "musketeer", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage signing keys (task authors).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Sign a task module: writes a manifest naming the app, version, hash, allowlist and limits.
    Sign(SignArgs),
    /// Verify and run a signed task module locally, in the same sandbox volunteers use.
    Run(RunArgs),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate an ed25519 key pair: DIR/musketeer.key (private, 0600) and DIR/musketeer.pub.
    Generate {
        /// Directory for the key files (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// Private key file (from `musketeer keys generate`).
    #[arg(long)]
    pub key: PathBuf,
    /// The task component (.wasm built for wasm32-wasip2).
    #[arg(long)]
    pub module: PathBuf,
    /// App name: lowercase letters, digits and dashes.
    #[arg(long)]
    pub app: String,
    /// Semantic version, e.g. 1.2.0; must increase with every publication.
    #[arg(long)]
    pub version: String,
    /// URL prefix the task may GET (scheme, host and port must match exactly); repeatable.
    #[arg(long = "allow-http", value_name = "URL_PREFIX")]
    pub allow_http: Vec<String>,
    /// Fuel budget per run (deterministic work units).
    #[arg(long)]
    pub fuel: Option<u64>,
    /// Memory limit per run, in bytes.
    #[arg(long)]
    pub memory: Option<u64>,
    /// Wall-clock limit per run, in seconds.
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Output size limit per run, in bytes.
    #[arg(long)]
    pub max_output: Option<u64>,
    /// Where to write the signed manifest (JSON).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BackendArg {
    /// Cranelift where available, Pulley elsewhere.
    Auto,
    /// The Pulley interpreter.
    Pulley,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Signed manifest (from `musketeer sign`).
    #[arg(long)]
    pub manifest: PathBuf,
    /// The task component (.wasm).
    #[arg(long)]
    pub module: PathBuf,
    /// Public key file to trust; repeatable.
    #[arg(long, required = true)]
    pub trust: Vec<PathBuf>,
    /// Input: inline text (e.g. JSON) or @FILE to read a file.
    #[arg(long)]
    pub input: String,
    /// Print a JSON object with the output, fuel consumed and wall time.
    #[arg(long)]
    pub json: bool,
    /// Seed of the deterministic clocks and randomness (replicas of a unit share it).
    #[arg(long, default_value = "local")]
    pub run_id: String,
    /// Compiled-code cache directory (default: the user's cache dir).
    #[arg(long, env = "MUSKETEER_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile every time instead of using the cache.
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,
    /// Code generator.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
}

//! Command-line interface of the `musketeer` binary (clap definitions only).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use musketeer_protocol::quantity::{self, PlainDuration, PlainSize};

/// musketeer: lend your CPU to science, safely. Runs signed WebAssembly tasks in a sandbox.
#[derive(Debug, Parser)]
#[command(name = "musketeer", version, about, after_help = crate::exit::AFTER_HELP)]
pub struct Cli {
    /// More diagnostics on stderr (-v: info, -vv: debug, -vvv: trace); MUSKETEER_LOG wins.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No progress or notes on stderr, only errors (results and ids still go to stdout).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// A duration flag whose plain numbers count seconds (`90`, `90s`, `5m`, `2h`, `2w`).
pub fn seconds_or_duration(text: &str) -> Result<std::time::Duration, quantity::QuantityError> {
    quantity::parse_duration(text, PlainDuration::Seconds)
}

/// A duration flag whose plain numbers count milliseconds (`250`, `250ms`, `20s`).
pub fn millis_or_duration(text: &str) -> Result<std::time::Duration, quantity::QuantityError> {
    quantity::parse_duration(text, PlainDuration::Millis)
}

/// `join --max-task-memory`: a size whose plain numbers count MiB, from 1 MiB to 4 GiB; in bytes.
pub fn task_memory_size(text: &str) -> Result<u64, String> {
    let bytes = quantity::parse_size(text, PlainSize::Mebibytes).map_err(|e| e.to_string())?;
    if !(1 << 20..=4 << 30).contains(&bytes) {
        return Err(format!(
            "{text:?} is {}; a task's memory must be between 1MiB and 4GiB",
            quantity::format_size(bytes)
        ));
    }
    Ok(bytes)
}

/// A size flag whose plain numbers count bytes (`65536`, `64MiB`, `1.5GB`, `512k`).
pub fn bytes_or_size(text: &str) -> Result<u64, quantity::QuantityError> {
    quantity::parse_size(text, PlainSize::Bytes)
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
    /// Volunteer: join a project and run its work until stopped (Ctrl-C).
    #[command(after_help = JOIN_AFTER_HELP, args_override_self = true)]
    Join(JoinArgs),
    /// Volunteer: what the running client is doing (units, results, credit, what is suspended
    /// and why).
    Status(StatusArgs),
    /// Volunteer: suspend work (running tasks pause, nothing new is fetched) until resumed or
    /// for a while.
    Pause(PauseArgs),
    /// Volunteer: end a pause.
    Resume(ControlArgs),
    /// Volunteer: the projects this client works for (URL, resource share, host id, credit,
    /// state).
    Projects(ProjectsArgs),
    /// Volunteer: stop working for a project, hand its work back and forget it.
    Detach(DetachArgs),
    /// Researcher: submit a batch of inputs to an app; prints the batch id.
    Submit(SubmitArgs),
    /// Researcher: list the published apps with their versions, limits and input format.
    Apps {
        #[command(subcommand)]
        command: AppsCommand,
    },
    /// Researcher: list, watch, collect, cancel or delete batches.
    Batch {
        #[command(subcommand)]
        command: BatchCommand,
    },
    /// Task author: publish a signed app version (manifest from `musketeer sign`).
    Publish(PublishArgs),
    /// Admin: list volunteer hosts with their standing; ban or unban one.
    Hosts {
        #[command(subcommand)]
        command: HostsCommand,
    },
    /// Admin: operate a running server (online backup).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Admin: list or revoke user tokens on a running server.
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Print a shell completion script, e.g. `musketeer completions bash > ~/.local/share/bash-completion/completions/musketeer`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages (musketeer.1 and one per subcommand) into a directory.
    Man {
        /// The directory (created if missing), e.g. ~/.local/share/man/man1.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// Every published app version: limits, allowed URLs and the input it expects.
    List {
        #[command(flatten)]
        server: ServerArgs,
        /// Print the server's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Download a consistent copy of the store, taken while the server serves.
    Backup {
        #[command(flatten)]
        server: ServerArgs,
        /// Where to write it (refused if it exists); restore by serving it as DIR/musketeer.redb.
        #[arg(long)]
        out: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Every user token: id, role, apps, expiry, label, creation, revoked (never the secret).
    List {
        #[command(flatten)]
        server: ServerArgs,
        /// Print the server's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a user token (admin token): it gets 401 from its next request on.
    Revoke {
        #[command(flatten)]
        server: ServerArgs,
        /// The token id (see `musketeer tokens list`).
        id: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum HostsCommand {
    /// Every host with its counters, trust, quarantine and ban.
    List {
        #[command(flatten)]
        server: ServerArgs,
        /// Print the server's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Ban a host (admin token): it gets no more work and its results are re-verified.
    Ban {
        #[command(flatten)]
        server: ServerArgs,
        /// The host id (see `musketeer hosts list`).
        id: u64,
        /// Why; shown to the host and on the dashboard.
        #[arg(long)]
        reason: String,
    },
    /// Lift a host's ban or quarantine (admin token); it starts over as a new host.
    Unban {
        #[command(flatten)]
        server: ServerArgs,
        /// The host id.
        id: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate an ed25519 key pair: DIR/musketeer.key (private, 0600) and DIR/musketeer.pub.
    Generate {
        /// Directory for the key files (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Print one JSON object (paths, key id, fingerprint) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Sign a key rotation: the current key vouches for a new one. The project operator publishes
    /// the statement (`musketeer-server rotate-key`); volunteers who pinned the current key then
    /// accept modules signed by the new one, without restarting.
    Rotate {
        /// The current private key (e.g. keys/musketeer.key).
        #[arg(long)]
        old: PathBuf,
        /// The new public key (from `musketeer keys generate`, e.g. new-keys/musketeer.pub).
        #[arg(long)]
        new: PathBuf,
        /// Keep trusting the current key too (default: it is retired once the new one is
        /// trusted, as after a suspected leak).
        #[arg(long)]
        keep_old: bool,
        /// Where to write the statement (JSON); an existing file is not overwritten.
        #[arg(long)]
        out: PathBuf,
        /// Print one JSON object (statement path, old and new key ids) instead of text.
        #[arg(long)]
        json: bool,
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
    /// Memory limit per run: a size such as 64MiB or 1GB (a plain number counts bytes).
    #[arg(long, value_parser = bytes_or_size)]
    pub memory: Option<u64>,
    /// Wall-clock limit per run: a duration such as 30s or 2m (a plain number counts seconds).
    #[arg(long, value_parser = seconds_or_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Output size limit per run: a size such as 1MiB (a plain number counts bytes).
    #[arg(long, value_parser = bytes_or_size)]
    pub max_output: Option<u64>,
    /// What input the task expects, in a sentence, shown by `musketeer apps list` (signed with
    /// the manifest).
    #[arg(long, value_name = "TEXT")]
    pub input_description: Option<String>,
    /// An example input (JSON), shown by `musketeer apps list` (signed with the manifest).
    #[arg(long, value_name = "JSON")]
    pub input_example: Option<String>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// What `join --help` says after the options: the environment it reads besides them.
const JOIN_AFTER_HELP: &str = "\
Environment:
  MUSKETEER_LOG  diagnostics on stderr, in tracing's filter syntax (default: warn), e.g.
                 MUSKETEER_LOG=debug, or MUSKETEER_LOG=musketeer_client=debug,wasmtime=warn.
                 The volunteer's own lines (stdout, --log-format) do not depend on it.

A first join to a server this data directory never joined stops after a few tries if the
server cannot be read (check the URL); a project joined before is retried until it is back.";

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The project's server, e.g. http://192.168.1.10:8080.
    pub server: String,
    /// Tasks run at once (default: the number of CPU cores).
    #[arg(long)]
    pub slots: Option<usize>,
    /// Name shown on the project's dashboard (default: this machine's host name).
    #[arg(long)]
    pub name: Option<String>,
    /// The client's data directory: every project joined there has its credentials, pinned
    /// keys, modules and unreported results in projects/<server>/ (default:
    /// ~/.local/share/musketeer). Joining while a client runs there adds the project to it.
    #[arg(long, env = "MUSKETEER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// This project's resource share: CPU time is divided between projects in proportion to
    /// their shares, over time (default: the share it has, else 100). Join again with another
    /// value to change it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub resource_share: Option<u32>,
    /// Public key file the project must use (checked on first contact instead of trusting the
    /// keys the server shows); repeatable.
    #[arg(long = "trust-key", value_name = "PUBFILE")]
    pub trust_keys: Vec<PathBuf>,
    /// The project's invite code, if it requires one.
    #[arg(long, env = "MUSKETEER_INVITE_CODE", hide_env_values = true)]
    pub invite_code: Option<String>,
    /// Trust this PEM CA certificate for an https server (a project with its own CA).
    #[arg(long, env = "MUSKETEER_CA_CERT", value_name = "PEMFILE")]
    pub ca_cert: Option<PathBuf>,
    /// Output format of the status lines.
    #[arg(long, value_enum, default_value_t = LogFormatArg::Text)]
    pub log_format: LogFormatArg,
    /// CPU priority of the work, as a nice value: 19 (the default) runs tasks only when nothing
    /// else wants the CPU; 0 runs them at normal priority.
    #[arg(long, default_value_t = crate::volunteer::priority::LOWEST,
          value_parser = clap::value_parser!(u8).range(0..=19))]
    pub nice: u8,
    /// The most memory one task may have, e.g. 512MiB or 2GiB (a plain number counts MiB), from
    /// 1 MiB to 4 GiB: the server sends only work whose signed limit is no higher (default:
    /// three quarters of this machine's memory, shared among the slots).
    #[arg(long, value_name = "SIZE", value_parser = task_memory_size)]
    pub max_task_memory: Option<u64>,
    /// Work per slot to keep fetched ahead of the free slots, e.g. 4s or 1m (a plain number
    /// counts seconds; at most 1h), so a slot that frees starts at once and fetches come in
    /// batches (0: fetch only for free slots). Buffered work is handed back when the client
    /// stops.
    #[arg(long, value_name = "DURATION", default_value = "4s", value_parser = seconds_or_duration)]
    pub work_buffer: std::time::Duration,
    /// Share of each second tasks may compute, 1-100 (default: preferences.toml, else 100).
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(1..=100))]
    pub cpu_percent: Option<u8>,
    /// Compute on battery too (default: preferences.toml, else suspend on battery).
    #[arg(long)]
    pub run_on_battery: bool,
    /// Compute only at these local times, e.g. "09:00-17:00, 22:00-06:00" (default:
    /// preferences.toml, else any time).
    #[arg(long, value_name = "RANGES")]
    pub schedule: Option<String>,
    /// Compute only after this many minutes without input at this computer (systemd-logind's
    /// idle hint; default: preferences.toml, else whenever).
    #[arg(long, value_name = "MINUTES")]
    pub idle_minutes: Option<u32>,
    /// Where the power supplies are listed (for tests and unusual systems).
    #[arg(long, env = "MUSKETEER_POWER_SUPPLY_DIR", hide = true,
          default_value = crate::volunteer::prefs::DEFAULT_POWER_SUPPLY_DIR)]
    pub power_supply_dir: PathBuf,
    /// How long one request waits on the server for work (a plain number counts milliseconds).
    #[arg(long, default_value = "20s", hide = true, value_parser = millis_or_duration)]
    pub poll_wait_ms: std::time::Duration,
    /// Longest pause between retries while the server is unreachable (a plain number counts
    /// milliseconds).
    #[arg(long, default_value = "10s", hide = true, value_parser = millis_or_duration)]
    pub max_backoff_ms: std::time::Duration,
}

/// Which running client `status`, `pause` and `resume` talk to.
#[derive(Debug, Args)]
pub struct ControlArgs {
    /// The data directory the client runs with (as given to `join`; default:
    /// ~/.local/share/musketeer).
    #[arg(long, env = "MUSKETEER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Show only this project (`status`); ignored by `pause` and `resume`, which act on all.
    pub server: Option<String>,
}

#[derive(Debug, Args)]
pub struct ProjectsArgs {
    /// The client's data directory (as given to `join`; default: ~/.local/share/musketeer).
    #[arg(long, env = "MUSKETEER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DetachArgs {
    /// The project's server, as given to `join`.
    pub server: String,
    /// The client's data directory (as given to `join`; default: ~/.local/share/musketeer).
    #[arg(long, env = "MUSKETEER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Detach even if finished results cannot be reported (they are lost).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub client: ControlArgs,
    /// Print the client's JSON answer.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PauseArgs {
    #[command(flatten)]
    pub client: ControlArgs,
    /// Resume by itself after this long, e.g. 90s, 30m, 1h (default: until `musketeer resume`).
    #[arg(long = "for", value_name = "DURATION")]
    pub for_duration: Option<String>,
}

/// Where a researcher or author command finds the server and its token.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The project's server (or MUSKETEER_SERVER, or "server" in the config file).
    #[arg(long, env = "MUSKETEER_SERVER")]
    pub server: Option<String>,
    /// Your researcher/publisher token (or MUSKETEER_TOKEN, or "token" in the config file).
    #[arg(long, env = "MUSKETEER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// JSON config file with "server" and "token" (default: ~/.config/musketeer/config.json).
    #[arg(long, env = "MUSKETEER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Trust this PEM CA certificate for an https server (a project with its own CA).
    #[arg(long, env = "MUSKETEER_CA_CERT", value_name = "PEMFILE")]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The app to run (as published).
    #[arg(long)]
    pub app: String,
    /// A specific app version (default: the current one).
    #[arg(long)]
    pub version: Option<String>,
    /// Inputs, one per line: JSON values, or plain text with --input-template; `-` for stdin.
    #[arg(
        long,
        required_unless_present_any = ["input", "lines"],
        conflicts_with_all = ["input", "lines"]
    )]
    pub inputs: Option<PathBuf>,
    /// Raw inputs, one per line: each line's bytes (without its `\n` or `\r\n`; any bytes,
    /// not only UTF-8) are one unit's input, handed to the task unchanged; `-` for stdin.
    #[arg(long, value_name = "FILE|-", conflicts_with = "input")]
    pub lines: Option<PathBuf>,
    /// One input: inline JSON, or @FILE for a file holding one JSON value (it may span lines);
    /// repeatable, one unit each.
    #[arg(long, value_name = "JSON|@FILE")]
    pub input: Vec<String>,
    /// Turn each plain line into JSON: `{}` is replaced by the line as a JSON string, e.g.
    /// '{"stock_id":{},"year":2016,"month":5}'.
    #[arg(long, requires = "inputs")]
    pub input_template: Option<String>,
    /// Hosts that must return identical outputs before a result is accepted.
    #[arg(long)]
    pub quorum: Option<u32>,
    /// How long a host has for one unit before it is given to another, e.g. 90s, 10m, 1h
    /// (a plain number counts seconds).
    #[arg(long, value_parser = seconds_or_duration)]
    pub deadline: Option<std::time::Duration>,
    /// Higher runs first; negative numbers run after the default 0.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i32,
    /// A note shown with the batch.
    #[arg(long)]
    pub label: Option<String>,
    /// Show progress until the batch ends, then write the results.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: write the results here (.csv or .jsonl; default: JSON lines on stdout).
    #[arg(long, requires = "wait")]
    pub output: Option<PathBuf>,
    /// With --wait: write each unit's result (a JSON line) as soon as it finishes, to --output
    /// (.jsonl) or stdout, while the progress shows on stderr; each unit once.
    #[arg(long, requires = "wait")]
    pub stream: bool,
    /// Print one JSON object (batch id, units, version, replication) instead of the id; with
    /// --wait the results follow it as JSON lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum BatchCommand {
    /// Your batches (every batch for an admin token), newest last.
    List {
        #[command(flatten)]
        server: ServerArgs,
        /// Print the server's JSON instead of one line per batch.
        #[arg(long)]
        json: bool,
    },
    /// Show a batch's progress.
    Status {
        #[command(flatten)]
        server: ServerArgs,
        /// The batch id printed by `musketeer submit`.
        id: u64,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
        /// Keep showing progress until the batch ends.
        #[arg(long)]
        wait: bool,
    },
    /// Download a batch's results: one row per input with its output or error.
    Results {
        #[command(flatten)]
        server: ServerArgs,
        /// The batch id.
        id: u64,
        /// Write here (.csv or .jsonl) instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Format on stdout (a file's extension decides otherwise).
        #[arg(long, value_enum, default_value_t = ResultsFormatArg::Jsonl)]
        format: ResultsFormatArg,
    },
    /// Stop handing out a batch's remaining units.
    Cancel {
        #[command(flatten)]
        server: ServerArgs,
        /// The batch id.
        id: u64,
    },
    /// Delete a finished or cancelled batch with its inputs and results from the server, for
    /// good (download the results first).
    Delete {
        #[command(flatten)]
        server: ServerArgs,
        /// The batch id.
        id: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResultsFormatArg {
    /// One JSON object per line.
    Jsonl,
    /// CSV with one column per output field (pandas.read_csv reads it directly).
    Csv,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Signed manifest (from `musketeer sign`).
    #[arg(long)]
    pub manifest: PathBuf,
    /// The task component it describes.
    #[arg(long)]
    pub module: PathBuf,
    /// Print one JSON object (the published version) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_memory_takes_sizes_and_plain_mebibytes_within_bounds() {
        assert_eq!(task_memory_size("512"), Ok(512 << 20));
        assert_eq!(task_memory_size("2GiB"), Ok(2 << 30));
        assert_eq!(task_memory_size("4GiB"), Ok(4 << 30));
        for bad in ["0", "512k", "5GiB", "lots", "-1"] {
            assert!(task_memory_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn join_durations_keep_their_plain_units() {
        let cli = Cli::try_parse_from([
            "musketeer",
            "join",
            "http://127.0.0.1:1",
            "--work-buffer",
            "1m",
            "--poll-wait-ms",
            "2000",
            "--max-backoff-ms",
            "1s",
        ])
        .expect("parses");
        let Command::Join(join) = cli.command else {
            panic!("join expected");
        };
        assert_eq!(join.work_buffer, std::time::Duration::from_secs(60));
        assert_eq!(join.poll_wait_ms, std::time::Duration::from_millis(2000));
        assert_eq!(join.max_backoff_ms, std::time::Duration::from_secs(1));
    }
}

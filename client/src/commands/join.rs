//! `musketeer join`: the volunteer's one command.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::cli::{JoinArgs, LogFormatArg};
use crate::exit::UsageError;
use crate::volunteer::events::LogFormat;
use crate::volunteer::gate::{Gate, GateSetup};
use crate::volunteer::prefs::{Logind, PrefsFile};
use crate::volunteer::{JoinConfig, join as join_project};

/// How long running tasks may finish after Ctrl-C (the issue promises exit within 10 s).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(7);

pub fn join(args: JoinArgs) -> anyhow::Result<()> {
    let slots = args.slots.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    // A URL that is not one and out-of-range flags are usage errors (exit 2), as clap's own
    // refusals are, before anything starts.
    crate::api_client::ApiClient::new(&args.server, None)?;
    if !(1..=4096).contains(&slots) {
        return Err(UsageError(format!(
            "--slots {slots}: give between 1 and 4096 tasks at once"
        ))
        .into());
    }
    if args.work_buffer > Duration::from_secs(3600) {
        return Err(
            UsageError("--work-buffer must be at most 1h (0 turns the buffer off)".into()).into(),
        );
    }
    let name = args.name.clone().unwrap_or_else(default_name);
    let data_dir = match args.data_dir.clone() {
        Some(dir) => dir,
        None => default_data_dir()
            .context("cannot find a home directory for the data directory; pass --data-dir DIR")?,
    };
    let mut trust_keys = Vec::new();
    for path in &args.trust_keys {
        trust_keys.push(
            musketeer_signing_keys::read_public_key(path)
                .with_context(|| format!("cannot read public key {}", path.display()))?,
        );
    }
    let gate = Gate::new(GateSetup {
        data_dir: data_dir.clone(),
        overrides: PrefsFile {
            cpu_percent: args.cpu_percent,
            run_on_battery: args.run_on_battery.then_some(true),
            schedule: args.schedule.clone(),
            idle_minutes: args.idle_minutes,
            ..PrefsFile::default()
        },
        power_supply_dir: args.power_supply_dir.clone(),
        idle: std::sync::Arc::new(Logind),
    })
    .context("cannot use the preferences (fix the flag or preferences.toml, then join again)")?;
    let ca_cert = args
        .ca_cert
        .as_deref()
        .map(super::connection::read_ca_cert)
        .transpose()?;
    let config = JoinConfig {
        server: args.server.clone(),
        slots,
        name,
        data_dir,
        resource_share: args.resource_share,
        trust_keys,
        invite_code: args.invite_code.clone(),
        log_format: match args.log_format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        },
        poll_wait: args.poll_wait_ms,
        max_backoff: args.max_backoff_ms.max(Duration::from_millis(100)),
        shutdown_grace: SHUTDOWN_GRACE,
        max_task_memory: task_memory_limit(
            args.max_task_memory
                .or_else(|| crate::volunteer::memory::default_task_memory(slots)),
            gate.preferences().max_memory_mib,
            slots,
        ),
        gate,
        ca_cert,
        work_buffer: args.work_buffer,
    };
    // Before the runtime starts its threads: they inherit this thread's priority.
    match crate::volunteer::priority::lower_cpu_priority(args.nice) {
        Ok(nice) if i32::from(args.nice) != nice => {
            eprintln!("note: running at nice {nice} (asked for {})", args.nice)
        }
        Ok(_) => {}
        Err(error) => eprintln!(
            "warning: cannot lower the CPU priority ({error}); tasks run at normal priority"
        ),
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime
        .block_on(join_project(config, shutdown_signal()))
        .with_context(|| format!("cannot work for {}", args.server))
}

/// The most memory one task may have: the per-task limit, lowered so that all slots at it fit
/// in the volunteer's total (`max_memory_mib` in preferences.toml).
fn task_memory_limit(per_task: Option<u64>, total_mib: Option<u64>, slots: usize) -> Option<u64> {
    let share = total_mib.map(|mib| (mib << 20) / slots.max(1) as u64);
    match (per_task, share) {
        (Some(per_task), Some(share)) => Some(per_task.min(share)),
        (per_task, share) => per_task.or(share),
    }
}

fn default_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "volunteer".to_owned())
        .chars()
        .take(64)
        .collect()
}

/// `~/.local/share/musketeer` (or under `$XDG_DATA_HOME`): the client's data directory, with
/// each project in `projects/<server>/`.
pub(super) fn default_data_dir() -> Option<PathBuf> {
    super::user_dir("XDG_DATA_HOME", ".local/share")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::task_memory_limit;

    #[test]
    fn the_total_memory_cap_is_shared_among_the_slots() {
        let mib = 1u64 << 20;
        assert_eq!(
            task_memory_limit(Some(512 * mib), Some(1024), 4),
            Some(256 * mib)
        );
        assert_eq!(
            task_memory_limit(Some(128 * mib), Some(1024), 4),
            Some(128 * mib)
        );
        assert_eq!(task_memory_limit(None, Some(1024), 2), Some(512 * mib));
        assert_eq!(task_memory_limit(Some(64 * mib), None, 2), Some(64 * mib));
        assert_eq!(task_memory_limit(None, None, 2), None);
    }
}

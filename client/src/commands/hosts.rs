//! `musketeer hosts list|ban|unban`: an admin's view of volunteer hosts and their standing.

use anyhow::Context;
use musketeer_protocol::{HostId, HostSummary, credits_text};

use crate::cli::HostsCommand;

pub fn hosts(command: HostsCommand) -> anyhow::Result<()> {
    let runtime = super::connection::runtime()?;
    runtime.block_on(async {
        match command {
            HostsCommand::List { server, json } => {
                let api = super::connection::client(&server)?;
                let list = api.hosts().await.context(
                    "cannot list hosts (the dashboard views need an admin token unless the \
                     project's dashboard is public)",
                )?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                } else {
                    println!(
                        "{:>5}  {:<20} {:>7} {:>6} {:>7} {:>12} {:>7}  standing",
                        "id", "name", "valid", "errors", "invalid", "credits", "quota"
                    );
                    for host in &list.hosts {
                        println!("{}", row(host));
                    }
                }
                Ok(())
            }
            HostsCommand::Ban { server, id, reason } => {
                let api = super::connection::client(&server)?;
                let host = api
                    .ban_host(HostId(id), &reason)
                    .await
                    .with_context(|| format!("cannot ban host {id} (an admin token is needed)"))?;
                println!("banned host {}: {}", host.id, standing(&host));
                Ok(())
            }
            HostsCommand::Unban { server, id } => {
                let api = super::connection::client(&server)?;
                let host = api.unban_host(HostId(id)).await.with_context(|| {
                    format!("cannot unban host {id} (an admin token is needed)")
                })?;
                println!("host {} may work again: {}", host.id, standing(&host));
                Ok(())
            }
        }
    })
}

/// One line of `hosts list`.
fn row(host: &HostSummary) -> String {
    let name: String = host.name.chars().take(20).collect();
    format!(
        "{:>5}  {:<20} {:>7} {:>6} {:>7} {:>12} {:>7}  {}",
        host.id.0,
        name,
        host.succeeded,
        host.failed,
        host.invalid,
        // Credits of 10⁹ fuel (docs/volunteer.md); `--json` keeps raw fuel.
        credits_text(host.credit),
        host.daily_quota,
        standing(host)
    )
}

/// Banned, quarantined, trusted or new, with the reason.
fn standing(host: &HostSummary) -> String {
    if let Some(reason) = &host.ban {
        format!("banned: {reason}")
    } else if let Some(reason) = &host.quarantine {
        format!("quarantined: {reason}")
    } else if host.trusted {
        "trusted (runs units alone, with spot checks)".to_owned()
    } else {
        "replicated (not yet trusted)".to_owned()
    }
}

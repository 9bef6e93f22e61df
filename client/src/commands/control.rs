//! `musketeer status`, `pause` and `resume`: talk to the running client through its control
//! socket (see `volunteer::control`).

use std::path::PathBuf;

use anyhow::Context;

use crate::cli::{ControlArgs, PauseArgs, StatusArgs};
use crate::volunteer::control::{self, Request, Status};

pub fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let dir = data_dir(&args.client)?;
    let answer = control::request(&dir, &Request::Status)?;
    if args.json {
        println!("{}", answer["status"]);
        return Ok(());
    }
    let status: Status = serde_json::from_value(answer["status"].clone())
        .context("the client's status is unreadable (is it another musketeer version?)")?;
    print!("{}", render(&status));
    Ok(())
}

pub fn pause(args: &PauseArgs) -> anyhow::Result<()> {
    let for_secs = args
        .for_duration
        .as_deref()
        .map(|text| {
            musketeer_protocol::quantity::parse_duration(
                text,
                musketeer_protocol::quantity::PlainDuration::Seconds,
            )
            .map(|duration| duration.as_secs().max(1))
            .context("--for takes a duration such as 90s, 30m or 1h")
        })
        .transpose()?;
    let dir = data_dir(&args.client)?;
    control::request(&dir, &Request::Pause { for_secs })?;
    match for_secs {
        Some(secs) => {
            println!("paused for {secs} s (running tasks wait; `musketeer resume` ends it sooner)")
        }
        None => println!("paused until `musketeer resume` (running tasks wait where they are)"),
    }
    Ok(())
}

pub fn resume(args: &ControlArgs) -> anyhow::Result<()> {
    let dir = data_dir(args)?;
    control::request(&dir, &Request::Resume)?;
    println!("resumed (work still waits if a preference suspends it; see `musketeer status`)");
    Ok(())
}

/// The data directory given, that of the server given, or the only one with a running client.
fn data_dir(args: &ControlArgs) -> anyhow::Result<PathBuf> {
    if let Some(dir) = &args.data_dir {
        return Ok(dir.clone());
    }
    if let Some(server) = &args.server {
        return super::join::default_data_dir(server)
            .context("cannot find a home directory; pass --data-dir DIR");
    }
    let root = super::user_dir("XDG_DATA_HOME", ".local/share")
        .context("cannot find a home directory; pass --data-dir DIR")?;
    let running: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|dir| dir.join(control::SOCKET_NAME).exists())
                .collect()
        })
        .unwrap_or_default();
    match running.as_slice() {
        [one] => Ok(one.clone()),
        [] => anyhow::bail!(
            "no running client found under {}; pass --data-dir DIR (as given to `musketeer join`)",
            root.display()
        ),
        several => anyhow::bail!(
            "several clients run ({}); pass --data-dir DIR or the server URL",
            several
                .iter()
                .map(|dir| dir.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The human-readable status.
fn render(status: &Status) -> String {
    let mut text = format!(
        "project {:?} at {} (host {}, {} slot(s))\n",
        status.project, status.server, status.host_id, status.slots
    );
    if status.suspended.is_empty() {
        text.push_str("work: running\n");
    } else {
        for reason in &status.suspended {
            text.push_str(&format!("work: suspended: {reason}\n"));
        }
    }
    text.push_str(&format!(
        "preferences: CPU {}%, on battery: {}, schedule: {}\n",
        status.preferences["cpu_percent"],
        if status.preferences["run_on_battery"] == true {
            "run"
        } else {
            "suspend"
        },
        status.preferences["schedule"].as_str().unwrap_or("?")
    ));
    if status.running.is_empty() {
        text.push_str("running: none\n");
    }
    for unit in &status.running {
        let progress = unit
            .progress
            .map(|p| format!(", {:.0}% done", p * 100.0))
            .unwrap_or_default();
        text.push_str(&format!(
            "running: unit {} ({}) for {} s{progress}\n",
            unit.unit_id, unit.app, unit.elapsed_s
        ));
    }
    text.push_str(&format!(
        "results waiting to be reported: {}\n",
        status.spooled
    ));
    match (&status.host, &status.host_error) {
        (Some(host), _) => text.push_str(&format!(
            "credit: {} (fuel of validated results); {} succeeded, {} failed, {} invalid\n",
            host.credit, host.succeeded, host.failed, host.invalid
        )),
        (None, Some(error)) => text.push_str(&format!("credit: unknown ({error})\n")),
        (None, None) => text.push_str("credit: unknown\n"),
    }
    text
}

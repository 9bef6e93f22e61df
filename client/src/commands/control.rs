//! `musketeer status`, `pause` and `resume`: talk to the running client through its control
//! socket (see `volunteer::control`).

use std::path::PathBuf;

use anyhow::Context;

use crate::cli::{ControlArgs, PauseArgs, StatusArgs};
use crate::volunteer::client::ProjectStatus;
use crate::volunteer::control::{self, Request, Status};
use crate::volunteer::projects::project_slug;

pub fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let dir = data_dir(args.client.data_dir.as_ref())?;
    let answer = control::request(&dir, &Request::Status)?;
    if args.json {
        println!("{}", answer["status"]);
        return Ok(());
    }
    let status: Status = serde_json::from_value(answer["status"].clone())
        .context("the client's status is unreadable (is it another musketeer version?)")?;
    print!("{}", render(&status, args.client.server.as_deref()));
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
    let dir = data_dir(args.client.data_dir.as_ref())?;
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
    let dir = data_dir(args.data_dir.as_ref())?;
    control::request(&dir, &Request::Resume)?;
    println!("resumed (work still waits if a preference suspends it; see `musketeer status`)");
    Ok(())
}

/// The data directory given, else the default one.
pub(super) fn data_dir(given: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(dir) => Ok(dir.clone()),
        None => super::join::default_data_dir().context(
            "cannot find a home directory; pass --data-dir DIR (as given to `musketeer join`)",
        ),
    }
}

/// The human-readable status.
fn render(status: &Status, only: Option<&str>) -> String {
    let mut text = format!(
        "{} slot(s) shared by {} project(s)\n",
        status.slots,
        status.projects.len()
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
    let slug = only.map(project_slug);
    for project in &status.projects {
        if slug
            .as_ref()
            .is_some_and(|slug| *slug != project_slug(&project.server))
        {
            continue;
        }
        text.push_str(&render_project(project));
    }
    text
}

fn render_project(project: &ProjectStatus) -> String {
    let mut text = format!(
        "\nproject {} at {} (host {}, resource share {}): {}\n",
        project
            .project
            .as_deref()
            .map_or_else(|| "?".to_owned(), |name| format!("{name:?}")),
        project.server,
        project
            .host_id
            .map_or_else(|| "not registered".to_owned(), |id| id.to_string()),
        project.resource_share,
        project.state
    );
    if project.running.is_empty() {
        text.push_str("  running: none\n");
    }
    for unit in &project.running {
        let progress = unit
            .progress
            .map(|p| format!(", {:.0}% done", p * 100.0))
            .unwrap_or_default();
        let preparing = if unit.preparing {
            ", preparing its module"
        } else {
            ""
        };
        text.push_str(&format!(
            "  running: unit {} ({}) for {} s{progress}{preparing}\n",
            unit.unit_id, unit.app, unit.elapsed_s
        ));
    }
    text.push_str(&format!(
        "  queued: {} unit(s) fetched and waiting for a slot\n  results waiting to be reported: {}\n  CPU time: {:.0} s since the client started ({:+.0} s owed under the shares)\n",
        project.buffered, project.spooled, project.cpu_seconds, project.debt_seconds
    ));
    match (&project.host, &project.host_error) {
        (Some(host), _) => text.push_str(&format!(
            "  credit: {} (fuel of validated results); {} succeeded, {} failed, {} invalid\n",
            host.credit, host.succeeded, host.failed, host.invalid
        )),
        (None, Some(error)) => text.push_str(&format!("  credit: unknown ({error})\n")),
        (None, None) => text.push_str("  credit: unknown\n"),
    }
    text
}

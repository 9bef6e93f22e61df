//! `musketeer projects` and `musketeer detach`: the projects attached to the client's data
//! directory, asked of the running client when there is one, else read from the directory.

use anyhow::Context;

use crate::api_client::ApiClient;
use crate::cli::{DetachArgs, ProjectsArgs};
use crate::volunteer::client::{ProjectStatus, credit};
use crate::volunteer::control::{self, ControlError, Request, Status};
use crate::volunteer::projects::{AttachedProject, ClientDir};
use crate::volunteer::spool::Spool;

pub fn projects(args: &ProjectsArgs) -> anyhow::Result<()> {
    let dir = super::control::data_dir(args.data_dir.as_ref())?;
    let listed = match control::request(&dir, &Request::Status) {
        Ok(answer) => {
            serde_json::from_value::<Status>(answer["status"].clone())
                .context("the client's status is unreadable (is it another musketeer version?)")?
                .projects
        }
        Err(ControlError::NotRunning { .. }) => {
            anyhow::ensure!(
                dir.is_dir(),
                "{} holds no client yet; join a project with `musketeer join URL`",
                dir.display()
            );
            let client = ClientDir::open(&dir, None)
                .with_context(|| format!("cannot read the data directory {}", dir.display()))?;
            offline_statuses(&client.projects()?)?
        }
        Err(error) => return Err(error.into()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&listed)?);
        return Ok(());
    }
    if listed.is_empty() {
        println!("no projects; join one with `musketeer join URL`");
    }
    for project in &listed {
        let credit = match (&project.host, &project.host_error) {
            (Some(host), _) => host.credit.to_string(),
            (None, Some(error)) => format!("unknown ({error})"),
            (None, None) => "unknown".to_owned(),
        };
        println!(
            "{}  share {}  host {}  credit {}  {}",
            project.server,
            project.resource_share,
            project
                .host_id
                .map_or_else(|| "-".to_owned(), |id| id.to_string()),
            credit,
            project.state
        );
    }
    Ok(())
}

/// The attached projects as their folders tell, with the credit asked of each server.
fn offline_statuses(attached: &[AttachedProject]) -> anyhow::Result<Vec<ProjectStatus>> {
    let runtime = super::connection::runtime()?;
    let mut listed = Vec::new();
    for project in attached {
        let host = project.data.host()?;
        let spooled = Spool::open(project.data.spool_dir())?.len();
        let mut status = ProjectStatus {
            server: project.entry.server.clone(),
            project: project.data.pinned()?.map(|pinned| pinned.project),
            host_id: host.as_ref().map(|host| host.host_id),
            resource_share: project.entry.resource_share,
            state: "not running (`musketeer join URL` starts the client)".to_owned(),
            running: Vec::new(),
            buffered: 0,
            spooled,
            cpu_seconds: 0.0,
            debt_seconds: 0.0,
            host: None,
            host_error: None,
        };
        if let Some(host) = host {
            let ca = project.data.ca_cert()?;
            match ApiClient::trusting(&host.server, Some(host.host_token), ca.as_deref()) {
                Ok(api) => {
                    (status.host, status.host_error) = runtime.block_on(credit(&api, host.host_id));
                }
                Err(error) => status.host_error = Some(error.to_string()),
            }
        }
        listed.push(status);
    }
    Ok(listed)
}

pub fn detach(args: &DetachArgs) -> anyhow::Result<()> {
    let dir = super::control::data_dir(args.data_dir.as_ref())?;
    let request = Request::Detach {
        server: args.server.clone(),
        force: args.force,
    };
    match control::request(&dir, &request) {
        Ok(answer) => {
            println!("{}", answer["message"].as_str().unwrap_or("detached"));
            return Ok(());
        }
        Err(ControlError::NotRunning { .. }) => {}
        Err(ControlError::Refused(message)) => anyhow::bail!("{message}"),
        Err(error) => return Err(error.into()),
    }
    // No client runs: nothing is held but what the spool keeps.
    let client = ClientDir::open(&dir, None)
        .with_context(|| format!("cannot read the data directory {}", dir.display()))?;
    let Some(project) = client.find(&args.server)? else {
        anyhow::bail!(
            "{} is not attached to the client in {}; `musketeer projects` lists those that are",
            args.server,
            dir.display()
        );
    };
    let unreported = Spool::open(project.data.spool_dir())?.len();
    if unreported > 0 && !args.force {
        anyhow::bail!(
            "{unreported} finished result(s) of {} have not been reported yet; start the client \
             (`musketeer join {} --data-dir {}`) so it delivers them, then detach while it runs, \
             or add --force to discard them",
            args.server,
            args.server,
            dir.display()
        );
    }
    client.forget(&args.server)?;
    match unreported {
        0 => println!(
            "detached {} (no client was running, so it held no work); its keys, identity and files are removed",
            args.server
        ),
        n => println!(
            "detached {}; {n} unreported result(s) discarded (--force)",
            args.server
        ),
    }
    Ok(())
}

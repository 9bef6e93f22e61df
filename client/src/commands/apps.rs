//! `musketeer apps list`: what a researcher can submit to, and what each app expects.

use anyhow::Context;
use musketeer_protocol::{AppList, AppVersionInfo, paths, quantity};

use crate::cli::AppsCommand;

pub fn apps(command: AppsCommand) -> anyhow::Result<()> {
    let runtime = super::connection::runtime()?;
    runtime.block_on(async {
        match command {
            AppsCommand::List { server, json } => {
                let api = super::connection::client(&server)?;
                let list: AppList = api
                    .get_json(paths::APPS)
                    .await
                    .context("cannot list the apps")?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                    return Ok(());
                }
                if list.versions.is_empty() {
                    crate::note!(
                        "no app is published yet (authors publish with `musketeer publish`)"
                    );
                }
                for version in &list.versions {
                    println!("{}", describe(version));
                }
                Ok(())
            }
        }
    })
}

/// One app version: name, version, limits and allowed URLs on a line.
pub fn describe(app: &AppVersionInfo) -> String {
    let limits = &app.limits;
    let mut text = format!(
        "{} {}: fuel {}, memory {}, timeout {}, output {}",
        app.app,
        app.version,
        limits.fuel,
        quantity::format_size(limits.memory_bytes),
        quantity::format_duration(std::time::Duration::from_millis(limits.wall_time_ms)),
        quantity::format_size(limits.output_bytes),
    );
    if !app.http_allow.is_empty() {
        text.push_str(&format!(", may GET {}", app.http_allow.join(" ")));
    }
    if let Some(input) = &app.input {
        if let Some(description) = &input.description {
            text.push_str(&format!("\n  input: {description}"));
        }
        if let Some(example) = &input.example {
            text.push_str(&format!("\n  example: {example}"));
        }
    }
    text
}

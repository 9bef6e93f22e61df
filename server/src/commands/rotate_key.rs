use anyhow::Context as _;
use musketeer_server::store::{Store, project_write};
use musketeer_signing_keys::RotationStatement;

use crate::cli::RotateKeyArgs;

/// Rotation statements are published in the project info, so that clients that pinned the old
/// key learn the new one. For a stopped server; a running one takes the statement through
/// `POST /api/v1/project/rotations`.
pub fn run(args: RotateKeyArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.statement).with_context(|| {
        format!(
            "cannot read the rotation statement {} (the file `musketeer keys rotate` wrote)",
            args.statement.display()
        )
    })?;
    let statement: RotationStatement = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a rotation statement", args.statement.display()))?;
    let store = Store::open_at(&args.store.location()?)?;
    let mut project = store.load()?.project;
    project
        .rotate(&statement)
        .context("the rotation statement was refused")?;
    store
        .write_now(vec![project_write(&project)])
        .context("storing the rotation")?;
    println!(
        "Now trusting {}{}",
        statement.new_key.key_id(),
        if statement.retire_old {
            format!("; retired {}", statement.old_key_id)
        } else {
            String::new()
        }
    );
    Ok(())
}

//! `musketeer admin backup`: an online backup of a running server's store.

use std::io::Write as _;

use anyhow::Context;

use crate::cli::AdminCommand;

pub fn admin(command: AdminCommand) -> anyhow::Result<()> {
    let runtime = super::connection::runtime()?;
    runtime.block_on(async {
        match command {
            AdminCommand::Backup { server, out } => {
                if out.exists() {
                    anyhow::bail!(
                        "{} exists; choose another --out or remove it",
                        out.display()
                    );
                }
                let api = super::connection::client(&server)?;
                // Written beside the target and renamed at the end, so that `out` is either
                // absent or a whole copy, never a torn one.
                let mut partial_name = out.as_os_str().to_owned();
                partial_name.push(".partial");
                let partial = std::path::PathBuf::from(partial_name);
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&partial)
                    .with_context(|| {
                        format!(
                            "cannot create {} (remove it if a previous backup was interrupted)",
                            partial.display()
                        )
                    })?;
                let written = api.backup(&mut file).await;
                let written = match written {
                    Ok(n) => n,
                    Err(error) => {
                        let _ = std::fs::remove_file(&partial);
                        return Err(error)
                            .context("cannot take a backup (an admin token is needed)");
                    }
                };
                file.flush()?;
                file.sync_all()
                    .with_context(|| format!("cannot sync {}", partial.display()))?;
                if out.exists() {
                    let _ = std::fs::remove_file(&partial);
                    anyhow::bail!(
                        "{} exists; choose another --out or remove it",
                        out.display()
                    );
                }
                std::fs::rename(&partial, &out).with_context(|| {
                    format!("cannot rename {} to {}", partial.display(), out.display())
                })?;
                println!(
                    "wrote {} ({written} bytes); restore: stop the server, put it in place as \
                     DATA_DIR/musketeer.redb, start the server",
                    out.display()
                );
                Ok(())
            }
        }
    })
}

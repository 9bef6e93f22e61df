//! The pinned toolchain's targets, made present before anything is built.
//!
//! rustup installs the targets listed in rust-toolchain.toml only when it installs the toolchain
//! itself; a machine that already had the pinned version (installed for another project, or with
//! `--profile minimal`) lacks them, and the first build then fails deep inside a build script.

use std::process::Command;

use crate::root;

/// The channel pinned in rust-toolchain.toml (e.g. `1.95.0`).
pub fn pinned_channel() -> Result<String, String> {
    let path = root().join("rust-toolchain.toml");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("channel"))
        .filter_map(|rest| rest.trim().strip_prefix('='))
        .map(|value| value.trim().trim_matches('"').to_string())
        .find(|value| !value.is_empty())
        .ok_or_else(|| format!("{} names no channel", path.display()))
}

/// Adds those of `targets` that the pinned toolchain lacks, saying so in one line. Without
/// rustup (a toolchain from elsewhere) nothing can be added: the build then names what is missing.
pub fn ensure_targets(targets: &[&str]) -> Result<(), String> {
    let channel = pinned_channel()?;
    let listed = Command::new("rustup")
        .args(["target", "list", "--installed", "--toolchain", &channel])
        .current_dir(root())
        .output();
    let installed = match listed {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(out) => {
            return Err(format!(
                "`rustup target list --installed --toolchain {channel}` failed: {}\n\
                 install the pinned toolchain with `rustup toolchain install` in the repository root",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Err(_) => {
            eprintln!(
                "note: rustup not found; make sure the toolchain has the targets {}",
                targets.join(", ")
            );
            return Ok(());
        }
    };
    let missing = missing_targets(&installed, targets);
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!(
        "Adding rustup targets the pinned toolchain {channel} lacks: {}",
        missing.join(", ")
    );
    let status = Command::new("rustup")
        .args(["target", "add", "--toolchain", &channel])
        .args(&missing)
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run rustup: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`rustup target add --toolchain {channel} {}` failed ({status}); run it by hand to see why",
            missing.join(" ")
        ))
    }
}

/// Those of `wanted` that are not lines of rustup's `--installed` listing.
fn missing_targets<'a>(installed: &str, wanted: &[&'a str]) -> Vec<&'a str> {
    wanted
        .iter()
        .copied()
        .filter(|target| !installed.lines().any(|line| line.trim() == *target))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_only_targets_absent_from_the_listing() {
        let installed = "x86_64-unknown-linux-gnu\nwasm32-wasip2\n";
        assert_eq!(
            missing_targets(installed, &["wasm32-wasip2", "aarch64-unknown-linux-gnu"]),
            vec!["aarch64-unknown-linux-gnu"]
        );
        assert!(missing_targets(installed, &["wasm32-wasip2"]).is_empty());
        // A prefix of an installed target is not that target.
        assert_eq!(missing_targets(installed, &["wasm32"]), vec!["wasm32"]);
    }

    #[test]
    fn reads_the_pinned_channel() {
        let channel = pinned_channel().expect("the repository pins a channel");
        assert!(channel.chars().next().is_some_and(|c| c.is_ascii_digit()));
    }
}

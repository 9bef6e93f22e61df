//! `musketeer man`: the man pages, rendered from the same clap definitions as `--help`.

use std::path::Path;

use anyhow::Context;

/// Writes `musketeer.1` and one page per subcommand (`musketeer-submit.1`, ...) into `out`.
pub fn write_man_pages(command: clap::Command, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the directory {}", out.display()))?;
    clap_mangen::generate_to(command, out)
        .with_context(|| format!("cannot write man pages into {}", out.display()))?;
    crate::note!(
        "man pages written to {}; read one with `man -l {}/musketeer.1`",
        out.display(),
        out.display()
    );
    Ok(())
}

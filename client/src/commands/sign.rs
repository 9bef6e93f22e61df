//! `musketeer sign`.

use anyhow::Context;
use musketeer_signing_keys::{InputFormat, Limits, Manifest};

use crate::cli::SignArgs;

pub fn sign(args: &SignArgs) -> anyhow::Result<()> {
    let key = super::keys::read_secret_key(&args.key, "--key")
        .with_context(|| format!("cannot use private key {}", args.key.display()))?;
    let module = std::fs::read(&args.module)
        .with_context(|| format!("cannot read module {}", args.module.display()))?;
    let version = semver::Version::parse(&args.version).with_context(|| {
        format!(
            "`{}` is not a semantic version; use MAJOR.MINOR.PATCH, e.g. 1.2.0",
            args.version
        )
    })?;
    let defaults = Limits::default();
    let limits = Limits {
        fuel: args.fuel.unwrap_or(defaults.fuel),
        memory_bytes: args.memory.unwrap_or(defaults.memory_bytes),
        wall_time_ms: args.timeout.map_or(defaults.wall_time_ms, |timeout| {
            u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
        }),
        output_bytes: args.max_output.unwrap_or(defaults.output_bytes),
    };
    let mut manifest =
        Manifest::for_module(&args.app, version, &module, args.allow_http.clone(), limits)
            .context("cannot build the manifest")?;
    if args.input_description.is_some() || args.input_example.is_some() {
        manifest.input = Some(InputFormat {
            description: args.input_description.clone(),
            example: args.input_example.clone(),
        });
        manifest.validate().context(
            "--input-description takes a sentence, --input-example one JSON value (e.g. \
             '{\"n\": 1}')",
        )?;
    }
    for entry in &args.allow_http {
        if let Some(warning) = allow_entry_warning(entry) {
            crate::note!("{warning}");
        }
    }
    let signed = manifest.sign(&key);
    std::fs::write(&args.out, signed.to_json())
        .with_context(|| format!("cannot write manifest {}", args.out.display()))?;
    crate::note!(
        "signed {} {} (sha256 {}, {} bytes) with key {} -> {}",
        signed.manifest.app,
        signed.manifest.version,
        signed.manifest.module_sha256,
        signed.manifest.module_size,
        signed.key_id,
        args.out.display()
    );
    Ok(())
}

/// A one-line warning for an `--allow-http` entry that is not a directory prefix (its path does
/// not end in `/`): it allows that path and everything below it, which is rarely what is meant.
fn allow_entry_warning(entry: &str) -> Option<String> {
    let url = url::Url::parse(entry).ok()?;
    let path = url.path();
    if path.ends_with('/') {
        return None;
    }
    Some(format!(
        "warning: --allow-http {entry} is not a directory prefix: tasks may fetch {path} and \
         anything under {path}/; end it with / to allow a directory (e.g. {entry}/)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_that_are_not_directory_prefixes_get_a_warning() {
        for directory in [
            "https://api.example.org/",
            "https://api.example.org",
            "http://127.0.0.1:8080/v1/",
        ] {
            assert_eq!(allow_entry_warning(directory), None, "{directory}");
        }
        let warning = allow_entry_warning("https://api.example.org/v1").unwrap();
        assert!(
            warning.starts_with("warning: --allow-http https://api.example.org/v1 "),
            "{warning}"
        );
        assert!(
            warning.contains("https://api.example.org/v1/)"),
            "{warning}"
        );
        assert!(!warning.contains('\n'));
    }
}

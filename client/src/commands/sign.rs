//! `musketeer sign`.

use anyhow::Context;
use musketeer_signing_keys::{Limits, Manifest};

use crate::cli::SignArgs;

pub fn sign(args: &SignArgs) -> anyhow::Result<()> {
    let key = musketeer_signing_keys::read_secret_key(&args.key)
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
        wall_time_ms: args
            .timeout
            .map_or(defaults.wall_time_ms, |secs| secs.saturating_mul(1000)),
        output_bytes: args.max_output.unwrap_or(defaults.output_bytes),
    };
    let manifest =
        Manifest::for_module(&args.app, version, &module, args.allow_http.clone(), limits)
            .context("cannot build the manifest")?;
    let signed = manifest.sign(&key);
    std::fs::write(&args.out, signed.to_json())
        .with_context(|| format!("cannot write manifest {}", args.out.display()))?;
    eprintln!(
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

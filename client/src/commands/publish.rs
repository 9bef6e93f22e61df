//! `musketeer publish`: upload a signed app version.

use anyhow::Context;
use musketeer_protocol::{Base64Bytes, PublishRequest};

use crate::cli::PublishArgs;

pub fn publish(args: PublishArgs) -> anyhow::Result<()> {
    let api = super::connection::client(&args.server)?;
    let manifest_text = musketeer_signing_keys::read_manifest_text(&args.manifest)
        .with_context(|| format!("cannot use manifest {}", args.manifest.display()))?;
    let signed_manifest: serde_json::Value =
        serde_json::from_str(&manifest_text).with_context(|| {
            format!(
                "{} is not a signed manifest (JSON from `musketeer sign`)",
                args.manifest.display()
            )
        })?;
    let module = std::fs::read(&args.module)
        .with_context(|| format!("cannot read module {}", args.module.display()))?;
    let request = PublishRequest {
        signed_manifest,
        module: Base64Bytes(module),
    };
    let runtime = super::connection::runtime()?;
    let response = runtime
        .block_on(api.publish(&request))
        .context("publishing failed")?;
    let app = response.app;
    if args.json {
        println!("{}", serde_json::to_string(&app)?);
        return Ok(());
    }
    println!(
        "published {} {} (module sha256 {}, {} bytes, signed by {})",
        app.app, app.version, app.module_sha256, app.module_size, app.key_id
    );
    Ok(())
}
